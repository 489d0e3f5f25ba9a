//! Mounts: each mounted filesystem's root dentry hangs off the dentry it covers (its
//! mountpoint); the path walk crosses into it ([`Dentry::cross_mounts`]) and `..`
//! from its root climbs out through the mountpoint ([`Dentry::up`]). The boot code
//! builds the table from the config's mount list with [`MountTable::mount_all`],
//! taking each filesystem's root from a map of constructors by kind, so devfs,
//! procfs, sysfs and bind mounts plug in by name.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::MountConfig;
use crate::errno::{Errno, SysResult};
use crate::vfs::path::{resolve, Follow};
use crate::vfs::{Dentry, DirEntry, FileImpl, FsContext, Inode, Owner, Stat};

/// Flags a mount option string may set.
const FLAG_OPTIONS: [(&str, u64); 4] = [
    ("ro", libc::MS_RDONLY),
    ("nosuid", libc::MS_NOSUID),
    ("nodev", libc::MS_NODEV),
    ("noexec", libc::MS_NOEXEC),
];

/// Kinds that fall back to an empty tmpfs when no constructor is registered (the
/// pseudo filesystems a container expects, before they exist).
const TMPFS_STANDINS: [&str; 5] = ["proc", "sysfs", "devtmpfs", "devpts", "mqueue"];

/// Makes a filesystem's root from its mount entry.
pub type FsConstructor = Box<dyn Fn(&MountConfig) -> SysResult<Arc<dyn Inode>> + Send + Sync>;

/// One mounted filesystem.
pub struct Mount {
    id: u64,
    flags: AtomicU64,
    mountpoint: Option<Arc<Dentry>>,
    kind: String,
    source: String,
}

static NEXT_MOUNT_ID: AtomicU64 = AtomicU64::new(1);

impl Mount {
    /// The root mount (no mountpoint), read-write.
    pub fn root() -> Arc<Mount> {
        Self::new(None, 0, "rootfs", "rootfs")
    }

    /// The root mount with `flags` (`MS_RDONLY` for a read-only rootfs).
    pub fn root_with_flags(flags: u64) -> Arc<Mount> {
        Self::new(None, flags, "rootfs", "rootfs")
    }

    fn new(mountpoint: Option<Arc<Dentry>>, flags: u64, kind: &str, source: &str) -> Arc<Mount> {
        Arc::new(Mount {
            id: NEXT_MOUNT_ID.fetch_add(1, Ordering::Relaxed),
            flags: AtomicU64::new(flags),
            mountpoint,
            kind: kind.to_string(),
            source: source.to_string(),
        })
    }

    /// The mount id (`/proc/self/mountinfo`, `statx`'s `stx_mnt_id`).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// `MS_*` flags.
    pub fn flags(&self) -> u64 {
        self.flags.load(Ordering::Relaxed)
    }

    /// The dentry this mount covers (`None` for the root mount).
    pub fn mountpoint(&self) -> Option<Arc<Dentry>> {
        self.mountpoint.clone()
    }

    /// Filesystem kind as configured.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Source as configured.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Splits `options` into `MS_*` flags and the filesystem's own options.
pub fn parse_options(options: &[String]) -> (u64, Vec<String>) {
    let mut flags = 0;
    let mut rest = Vec::new();
    for o in options {
        if let Some((_, f)) = FLAG_OPTIONS.iter().find(|(n, _)| *n == o) {
            flags |= f;
        } else if o == "rw" {
            flags &= !libc::MS_RDONLY;
        } else if !matches!(
            o.as_str(),
            "suid"
                | "dev"
                | "exec"
                | "rbind"
                | "bind"
                | "private"
                | "rprivate"
                | "relatime"
                | "strictatime"
        ) {
            rest.push(o.clone());
        }
    }
    (flags, rest)
}

/// The mounts a container gets when its spec names none (and the ones it keeps
/// when the spec leaves them out): `/proc`, `/dev`, `/dev/pts`, `/dev/shm`, a
/// read-only `/sys`; plus a tmpfs `/tmp` when `tmp` is set (the sentry sets it when
/// the spec has no mounts at all and the rootfs is read-only, so `rvisor do` has a
/// writable scratch directory).
pub fn default_mounts(tmp: bool) -> Vec<MountConfig> {
    let m = |dest: &str, kind: &str, opts: &[&str]| MountConfig {
        destination: dest.into(),
        kind: kind.into(),
        source: kind.into(),
        options: opts.iter().map(|s| s.to_string()).collect(),
    };
    let mut v = vec![
        m("/proc", "proc", &["nosuid", "noexec", "nodev"]),
        m("/dev", "devtmpfs", &["nosuid"]),
        m("/dev/pts", "devpts", &["nosuid", "noexec"]),
        m("/dev/shm", "tmpfs", &["nosuid", "nodev", "mode=1777"]),
        m("/sys", "sysfs", &["ro", "nosuid", "noexec", "nodev"]),
    ];
    if tmp {
        v.push(m("/tmp", "tmpfs", &["nosuid", "nodev", "mode=1777"]));
    }
    v
}

/// `spec` completed with the defaults it lacks (see [`default_mounts`]). A tmpfs
/// `/tmp` is added when the spec has no mounts at all, the rootfs is read-only and
/// its own `/tmp` is empty or absent (as gVisor does: a `/tmp` with files in it is
/// left visible rather than hidden).
pub fn with_defaults(
    spec: &[MountConfig],
    readonly_root: bool,
    root: &Arc<Dentry>,
) -> Vec<MountConfig> {
    let tmp = spec.is_empty() && readonly_root && dir_is_empty(root, b"tmp");
    let mut out: Vec<MountConfig> = Vec::new();
    for d in default_mounts(tmp) {
        if !spec.iter().any(|m| m.destination == d.destination) {
            out.push(d);
        }
    }
    // Defaults first so a spec mount below /dev lands on the new /dev.
    out.extend(spec.iter().cloned());
    out
}

/// True if `root/name` is absent or an empty directory.
fn dir_is_empty(root: &Arc<Dentry>, name: &[u8]) -> bool {
    let Ok(d) = root.child(name) else {
        return true;
    };
    let Ok(f) = d.inode().open(libc::O_RDONLY | libc::O_DIRECTORY) else {
        return false;
    };
    match f.getdents(0, 4096) {
        Ok(ents) => ents.iter().all(|e| e.name == b"." || e.name == b".."),
        Err(_) => false,
    }
}

/// Every mount of the sandbox, in mount order.
#[derive(Default)]
pub struct MountTable {
    mounts: Mutex<Vec<(Vec<u8>, Arc<Mount>)>>,
}

impl MountTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Mounts `root_inode` on `at` with `flags`; returns the new mount's root.
    pub fn mount(
        &self,
        at: &Arc<Dentry>,
        path: &[u8],
        root_inode: Arc<dyn Inode>,
        flags: u64,
        kind: &str,
        source: &str,
    ) -> SysResult<Arc<Dentry>> {
        if !at.inode().stat()?.is_dir() || !root_inode.stat()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        // Stack on top of whatever is already mounted here.
        let at = at.cross_mounts();
        let m = Mount::new(Some(at.clone()), flags, kind, source);
        let root = Dentry::mount_root(root_inode, m.clone());
        at.set_mounted(root.clone())?;
        self.mounts
            .lock()
            .map_err(|_| Errno::EIO)?
            .push((path.to_vec(), m));
        Ok(root)
    }

    /// (path, mount) for every mount, in order.
    pub fn list(&self) -> Vec<(Vec<u8>, Arc<Mount>)> {
        self.mounts.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Mounts each entry of `mounts` below `root`, building filesystems with
    /// `ctors` (by kind; `tmpfs` and the pseudo filesystems without a constructor
    /// get `tmpfs`'s). A missing mountpoint is created if the filesystem below
    /// allows it, else a placeholder directory is shown in its place. Errors name
    /// the entry.
    pub fn mount_all(
        &self,
        root: &Arc<Dentry>,
        mounts: &[MountConfig],
        ctors: &HashMap<String, FsConstructor>,
    ) -> Result<(), String> {
        for mc in mounts {
            self.mount_one(root, mc, ctors)
                .map_err(|e| format!("mount {:?} ({}): {e}", mc.destination, mc.kind))?;
        }
        Ok(())
    }

    fn mount_one(
        &self,
        root: &Arc<Dentry>,
        mc: &MountConfig,
        ctors: &HashMap<String, FsConstructor>,
    ) -> SysResult<()> {
        let dest = mc.destination.as_bytes();
        if dest.first() != Some(&b'/') || dest.contains(&0) {
            return Err(Errno::EINVAL);
        }
        let inode = match ctors.get(&mc.kind) {
            Some(c) => c(mc)?,
            None if TMPFS_STANDINS.contains(&mc.kind.as_str()) => {
                // The stand-in's root gets the real filesystem's root mode.
                let mode = match mc.kind.as_str() {
                    "proc" | "sysfs" => "mode=555",
                    "mqueue" => "mode=1777",
                    _ => "mode=755",
                };
                let mut standin = mc.clone();
                standin.options.retain(|o| !o.starts_with("mode="));
                standin.options.push(mode.to_string());
                ctors.get("tmpfs").ok_or(Errno::ENODEV)?(&standin)?
            }
            None => return Err(Errno::ENODEV),
        };
        let (flags, _) = parse_options(&mc.options);
        let at = mountpoint(root, dest)?;
        self.mount(&at, dest, inode, flags, &mc.kind, &mc.source)?;
        Ok(())
    }
}

/// Finds (or makes) the directory at absolute `dest`, component by component.
fn mountpoint(root: &Arc<Dentry>, dest: &[u8]) -> SysResult<Arc<Dentry>> {
    let fs = FsContext {
        root: root.clone(),
        cwd: root.clone(),
        umask: 0o022,
    };
    let mut cur = root.clone();
    for name in dest.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if name == b"." || name == b".." {
            return Err(Errno::EINVAL);
        }
        cur = match resolve(&fs, &cur, name, Follow::Yes) {
            Ok(d) => d,
            Err(Errno::ENOENT) => {
                let owner = Owner { uid: 0, gid: 0 };
                match cur.inode().mkdir(name, 0o755, owner) {
                    Ok(i) => cur.add_child(name, i)?.cross_mounts(),
                    // A read-only filesystem below: show a placeholder instead.
                    Err(_) => cur.add_child(name, Arc::new(Placeholder))?,
                }
            }
            Err(e) => return Err(e),
        };
    }
    Ok(cur)
}

/// An empty directory standing in for a mountpoint the filesystem below lacks.
struct Placeholder;

impl Inode for Placeholder {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(Stat {
            dev: 0x12,
            ino: 2,
            mode: libc::S_IFDIR | 0o755,
            nlink: 2,
            blksize: 4096,
            ..Default::default()
        })
    }
    fn lookup(&self, _name: &[u8]) -> SysResult<Arc<dyn Inode>> {
        Err(Errno::ENOENT)
    }
    fn open(&self, _flags: i32) -> SysResult<Box<dyn FileImpl>> {
        Ok(Box::new(PlaceholderFile))
    }
}

struct PlaceholderFile;

impl FileImpl for PlaceholderFile {
    fn read(&self, _buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EISDIR)
    }
    fn stat(&self) -> SysResult<Stat> {
        Placeholder.stat()
    }
    fn getdents(&self, pos: u64, _max: usize) -> SysResult<Vec<DirEntry>> {
        let all = [(b".".to_vec(), 2u64), (b"..".to_vec(), 1)];
        Ok(all
            .into_iter()
            .enumerate()
            .skip(pos as usize)
            .map(|(i, (name, ino))| DirEntry {
                ino,
                next: i as u64 + 1,
                kind: libc::DT_DIR,
                name,
            })
            .collect())
    }
}
