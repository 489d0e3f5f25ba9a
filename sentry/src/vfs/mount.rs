//! Mounts: each mounted filesystem's root dentry hangs off the dentry it covers (its
//! mountpoint); the path walk crosses into it ([`Dentry::cross_mounts`]) and `..`
//! from its root climbs out through the mountpoint ([`Dentry::up`]). The boot code
//! builds the table from the config's mount list with [`MountTable::mount_all`],
//! taking each filesystem's root from a map of constructors by kind, so devfs,
//! procfs, sysfs and bind mounts plug in by name.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::config::MountConfig;
use crate::errno::{Errno, SysResult};
use crate::vfs::{Dentry, DirEntry, FileImpl, Inode, Owner, Stat, MAX_SYMLINKS, NAME_MAX};

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

/// How a mount takes part in mount propagation (`MS_SHARED`, `MS_SLAVE`,
/// `MS_PRIVATE`, `MS_UNBINDABLE`). Recorded and shown in `/proc/PID/mountinfo`;
/// events are not propagated between peers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Propagation {
    /// Peer group of a shared mount (0: not shared).
    pub shared: u64,
    /// Peer group this mount receives from (0: not a slave).
    pub master: u64,
    /// Cannot be bind-mounted.
    pub unbindable: bool,
}

/// One mounted filesystem.
pub struct Mount {
    id: u64,
    flags: AtomicU64,
    /// The filesystem (superblock) is read-only, not just this mount.
    super_ro: AtomicBool,
    mountpoint: Mutex<Option<Arc<Dentry>>>,
    kind: String,
    source: String,
    /// The filesystem's own options (`mode=`, `size=`, ...), as configured.
    data: Vec<String>,
    /// Where the mount's root lies in its filesystem (`/`, or the bound directory
    /// of a bind mount).
    root_path: Vec<u8>,
    propagation: Mutex<Propagation>,
    /// Set when another mount shows the same filesystem objects (a bind mount, a
    /// mount namespace's copy): cached names are checked against the filesystem,
    /// since a change made through the other mount updates only its own cache.
    aliased: AtomicBool,
    /// The root dentry (which owns this mount, hence weak).
    root: Mutex<Weak<Dentry>>,
    /// Mounts whose mountpoint lies in this one. Weak: a child's mountpoint dentry
    /// holds this mount, and the child lives as long as it stays mounted.
    children: Mutex<Vec<Weak<Mount>>>,
}

static NEXT_MOUNT_ID: AtomicU64 = AtomicU64::new(1);

/// What a new mount is made of.
pub struct MountSpec<'a> {
    /// `MS_*` per-mount flags.
    pub flags: u64,
    /// Filesystem kind.
    pub kind: &'a str,
    /// Source as shown.
    pub source: &'a str,
    /// The filesystem's own options.
    pub data: Vec<String>,
    /// Where the root lies in the filesystem.
    pub root_path: Vec<u8>,
    /// The filesystem is read-only.
    pub super_ro: bool,
}

impl Mount {
    /// The root mount (no mountpoint), read-write.
    pub fn root() -> Arc<Mount> {
        Self::new(None, 0, "rootfs", "rootfs", Vec::new())
    }

    /// The root mount with `flags` (`MS_RDONLY` for a read-only rootfs). Its
    /// filesystem type is shown as what its root's `statfs` says.
    pub fn root_with_flags(flags: u64) -> Arc<Mount> {
        Self::new(None, flags, "rootfs", "rootfs", Vec::new())
    }

    fn new(
        mountpoint: Option<Arc<Dentry>>,
        flags: u64,
        kind: &str,
        source: &str,
        data: Vec<String>,
    ) -> Arc<Mount> {
        Self::with_spec(
            mountpoint,
            MountSpec {
                flags,
                kind,
                source,
                data,
                root_path: b"/".to_vec(),
                super_ro: flags & libc::MS_RDONLY != 0,
            },
        )
    }

    /// A mount made from `spec` on `mountpoint` (not attached yet).
    pub(crate) fn with_spec(mountpoint: Option<Arc<Dentry>>, spec: MountSpec<'_>) -> Arc<Mount> {
        Arc::new(Mount {
            id: NEXT_MOUNT_ID.fetch_add(1, Ordering::Relaxed),
            flags: AtomicU64::new(spec.flags),
            super_ro: AtomicBool::new(spec.super_ro),
            mountpoint: Mutex::new(mountpoint),
            kind: spec.kind.to_string(),
            source: spec.source.to_string(),
            data: spec.data,
            root_path: spec.root_path,
            propagation: Mutex::new(Propagation::default()),
            aliased: AtomicBool::new(false),
            root: Mutex::new(Weak::new()),
            children: Mutex::new(Vec::new()),
        })
    }

    /// Records the mount's root dentry (done by [`Dentry::mount_root`]).
    pub(crate) fn set_root(&self, root: &Arc<Dentry>) {
        if let Ok(mut r) = self.root.lock() {
            *r = Arc::downgrade(root);
        }
    }

    /// The mount's root dentry, while it exists.
    pub fn root_dentry(&self) -> Option<Arc<Dentry>> {
        self.root.lock().ok().and_then(|r| r.upgrade())
    }

    /// The filesystem's own options, as configured.
    pub fn data(&self) -> &[String] {
        &self.data
    }

    /// Where the mount's root lies in its filesystem.
    pub fn root_path(&self) -> &[u8] {
        &self.root_path
    }

    /// The mounts below this one that are still mounted, by id.
    pub fn children(&self) -> Vec<Arc<Mount>> {
        let Ok(mut c) = self.children.lock() else {
            return Vec::new();
        };
        c.retain(|w| w.strong_count() > 0);
        let mut v: Vec<Arc<Mount>> = c.iter().filter_map(Weak::upgrade).collect();
        v.sort_by_key(|m| m.id);
        v
    }

    fn add_child(&self, m: &Arc<Mount>) -> SysResult<()> {
        self.children
            .lock()
            .map_err(|_| Errno::EIO)?
            .push(Arc::downgrade(m));
        Ok(())
    }

    fn remove_child(&self, m: &Mount) {
        if let Ok(mut c) = self.children.lock() {
            c.retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), m));
        }
    }

    /// The mount whose tree holds this one's mountpoint (`None` for a root mount
    /// or a detached one).
    pub fn parent(&self) -> Option<Arc<Mount>> {
        self.mountpoint().map(|d| d.mount().clone())
    }

    /// The mount id (`/proc/self/mountinfo`, `statx`'s `stx_mnt_id`).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// `MS_*` flags.
    pub fn flags(&self) -> u64 {
        self.flags.load(Ordering::Relaxed)
    }

    /// Replaces the per-mount flags (remount).
    pub fn set_flags(&self, flags: u64) {
        self.flags.store(flags, Ordering::Relaxed);
    }

    /// True if the filesystem itself is read-only.
    pub fn super_ro(&self) -> bool {
        self.super_ro.load(Ordering::Relaxed)
    }

    /// Makes the filesystem read-only or writable (a remount without `MS_BIND`).
    pub fn set_super_ro(&self, ro: bool) {
        self.super_ro.store(ro, Ordering::Relaxed);
    }

    /// The mount's propagation settings.
    pub fn propagation(&self) -> Propagation {
        self.propagation.lock().map(|p| *p).unwrap_or_default()
    }

    /// Replaces the propagation settings.
    pub fn set_propagation(&self, p: Propagation) {
        if let Ok(mut cur) = self.propagation.lock() {
            *cur = p;
        }
    }

    /// True if another mount shows the same filesystem objects.
    pub fn aliased(&self) -> bool {
        self.aliased.load(Ordering::Relaxed)
    }

    /// Marks the mount as sharing its filesystem objects with another.
    pub fn set_aliased(&self) {
        self.aliased.store(true, Ordering::Relaxed);
    }

    /// The dentry this mount covers (`None` for the root mount or a detached one).
    pub fn mountpoint(&self) -> Option<Arc<Dentry>> {
        self.mountpoint.lock().ok().and_then(|m| m.clone())
    }

    /// Hangs the mount (whose root dentry is `root`) on `at`, which must be
    /// uncovered.
    pub(crate) fn attach(self: &Arc<Self>, root: &Arc<Dentry>, at: &Arc<Dentry>) -> SysResult<()> {
        *self.mountpoint.lock().map_err(|_| Errno::EIO)? = Some(at.clone());
        at.mount().add_child(self)?;
        at.set_mounted(root.clone())
    }

    /// Takes the mount off its mountpoint (umount, the old place of a move). Its
    /// own children stay attached to it.
    pub(crate) fn detach(&self) {
        let mp = self.mountpoint.lock().ok().and_then(|mut m| m.take());
        if let Some(mp) = mp {
            mp.clear_mounted();
            mp.mount().remove_child(self);
        }
    }

    /// Filesystem kind as configured.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Source as configured.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The spec a copy of this mount is made from (bind mounts, namespace copies),
    /// rooted at `root_path` in the filesystem.
    pub(crate) fn copy_spec(&self, root_path: Vec<u8>) -> MountSpec<'_> {
        MountSpec {
            flags: self.flags(),
            kind: &self.kind,
            source: &self.source,
            data: self.data.clone(),
            root_path,
            super_ro: self.super_ro(),
        }
    }
}

/// A mount as one process sees it (a line of `/proc/PID/mountinfo`).
pub struct VisibleMount {
    /// The mount.
    pub mount: Arc<Mount>,
    /// Id of the mount holding its mountpoint (0 for the process's root mount when
    /// it is a root mount itself).
    pub parent_id: u64,
    /// Where the process's root lies within the mount's filesystem (`/` except for
    /// the mount holding a chroot'ed process's root).
    pub root: Vec<u8>,
    /// Where the process sees the mount.
    pub mount_point: Vec<u8>,
}

/// The mounts visible from the root `root` (a process's `/`), in mount order: the
/// mount holding `root` (shown at `/`) and every mount whose mountpoint lies below
/// it. Mounts of other trees (another container's, or above a chroot) are absent.
pub fn visible_mounts(root: &Arc<Dentry>) -> Vec<VisibleMount> {
    let base = root.mount().clone();
    let mut all = Vec::new();
    let mut stack = vec![base.clone()];
    while let Some(m) = stack.pop() {
        stack.extend(m.children());
        all.push(m);
    }
    all.sort_by_key(|m| m.id());
    let mut out = Vec::with_capacity(all.len());
    for m in all {
        let parent_id = m.parent().map_or(0, |p| p.id());
        if Arc::ptr_eq(&m, &base) {
            let within = m.root_dentry().map_or_else(
                || b"/".to_vec(),
                |r| join_path(m.root_path(), &root.path_from(&r)),
            );
            out.push(VisibleMount {
                mount: m,
                parent_id,
                root: within,
                mount_point: b"/".to_vec(),
            });
        } else if let Some(mp) = m.mountpoint() {
            if mp.is_descendant_of(root) {
                out.push(VisibleMount {
                    mount_point: mp.path_from(root),
                    root: m.root_path().to_vec(),
                    mount: m,
                    parent_id,
                });
            }
        }
    }
    out
}

/// `base` followed by the absolute path `rest` (`/` + `/x` is `/x`).
pub fn join_path(base: &[u8], rest: &[u8]) -> Vec<u8> {
    if base == b"/" {
        return rest.to_vec();
    }
    if rest == b"/" {
        return base.to_vec();
    }
    [base, rest].concat()
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
    // A spec without mounts (`rvisor do`) gets the read-only cgroup filesystem
    // Docker gives a container; a spec with mounts has its own say (and a /sys of
    // its own would cover this one).
    if spec.is_empty() {
        out.push(MountConfig {
            destination: "/sys/fs/cgroup".into(),
            kind: "cgroup2".into(),
            source: "cgroup".into(),
            options: ["ro", "nosuid", "noexec", "nodev"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        });
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
        self.mount_with_data(at, path, root_inode, flags, kind, source, Vec::new())
    }

    /// [`MountTable::mount`] with the filesystem's own options `data` (shown in
    /// `/proc/mounts`). A directory goes on a directory and anything else on a
    /// non-directory (a single-file bind mount), `ENOTDIR` otherwise, as Linux.
    #[allow(clippy::too_many_arguments)]
    pub fn mount_with_data(
        &self,
        at: &Arc<Dentry>,
        path: &[u8],
        root_inode: Arc<dyn Inode>,
        flags: u64,
        kind: &str,
        source: &str,
        data: Vec<String>,
    ) -> SysResult<Arc<Dentry>> {
        // Stack on top of whatever is already mounted here.
        let at = at.cross_mounts();
        if at.inode().stat()?.is_dir() != root_inode.stat()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let m = Mount::new(None, flags, kind, source, data);
        let root = Dentry::mount_root(root_inode, m.clone());
        m.attach(&root, &at)?;
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
        let (flags, data) = parse_options(&mc.options);
        let dir = inode.stat()?.is_dir();
        let at = mountpoint(root, dest, dir)?;
        let root = self.mount_with_data(&at, dest, inode, flags, &mc.kind, &mc.source, data)?;
        if mc.kind == "mqueue" {
            // Queues come and go through mq_open and mq_unlink, past this mount.
            root.mount().set_aliased();
        }
        Ok(())
    }
}

/// Finds (or makes) the mountpoint at absolute `dest`: a directory, or with `dir`
/// false an empty regular file for a single-file mount (as runc makes them). Walked
/// component by component inside the container's tree: symlinks are followed
/// (absolute ones from `root`, at most [`MAX_SYMLINKS`] of them) and `..` never
/// climbs above `root`, so a dangling symlink in the image makes its target, as
/// runc's secure join does, and nothing lands outside the container.
fn mountpoint(root: &Arc<Dentry>, dest: &[u8], dir: bool) -> SysResult<Arc<Dentry>> {
    let split = |p: &[u8]| -> VecDeque<Vec<u8>> {
        p.split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .map(|c| c.to_vec())
            .collect()
    };
    let mut todo = split(dest);
    if todo.iter().any(|c| c == b"." || c == b"..") {
        return Err(Errno::EINVAL);
    }
    let owner = Owner { uid: 0, gid: 0 };
    let mut links = 0u32;
    let mut cur = root.clone();
    while let Some(name) = todo.pop_front() {
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        if !cur.inode().stat()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if name == b"." {
            continue;
        }
        if name == b".." {
            cur = cur.up(root);
            continue;
        }
        let last = todo.is_empty();
        let child = match cur.child(&name) {
            Ok(d) => d.cross_mounts(),
            Err(Errno::ENOENT) => {
                let made = if last && !dir {
                    cur.inode().create(&name, 0o755, owner)
                } else {
                    cur.inode().mkdir(&name, 0o755, owner)
                };
                match made {
                    Ok(i) => cur.add_child(&name, i)?,
                    // A read-only filesystem below: show a placeholder instead.
                    Err(_) => cur.add_child(&name, Arc::new(Placeholder { dir: dir || !last }))?,
                }
            }
            Err(e) => return Err(e),
        };
        if child.inode().stat()?.is_symlink() {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(Errno::ELOOP);
            }
            let target = child.inode().readlink()?;
            if target.first() == Some(&b'/') {
                cur = root.clone();
            }
            let mut parts = split(&target);
            parts.extend(todo);
            todo = parts;
            continue;
        }
        cur = child;
    }
    Ok(cur)
}

/// An empty directory (or, for a single-file mount, an empty file) standing in for
/// a mountpoint the filesystem below lacks.
struct Placeholder {
    dir: bool,
}

/// An empty directory (`dir`) or an empty regular file, with nothing to write to:
/// what a masked path shows (`vfs::protect`).
pub fn empty_node(dir: bool) -> Arc<dyn Inode> {
    Arc::new(Placeholder { dir })
}

impl Placeholder {
    fn attrs(dir: bool) -> Stat {
        Stat {
            dev: 0x12,
            ino: 2,
            mode: if dir {
                libc::S_IFDIR | 0o755
            } else {
                libc::S_IFREG | 0o644
            },
            nlink: if dir { 2 } else { 1 },
            blksize: 4096,
            ..Default::default()
        }
    }
}

impl Inode for Placeholder {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(Self::attrs(self.dir))
    }
    fn lookup(&self, _name: &[u8]) -> SysResult<Arc<dyn Inode>> {
        Err(if self.dir {
            Errno::ENOENT
        } else {
            Errno::ENOTDIR
        })
    }
    fn open(&self, _flags: i32) -> SysResult<Box<dyn FileImpl>> {
        Ok(Box::new(PlaceholderFile { dir: self.dir }))
    }
}

struct PlaceholderFile {
    dir: bool,
}

impl FileImpl for PlaceholderFile {
    fn read(&self, _buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        if self.dir {
            Err(Errno::EISDIR)
        } else {
            Ok(0)
        }
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(Placeholder::attrs(self.dir))
    }
    fn getdents(&self, pos: u64, _max: usize) -> SysResult<Vec<DirEntry>> {
        if !self.dir {
            return Err(Errno::ENOTDIR);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::memfile::MemoryFile;
    use crate::fs::tmpfs::Tmpfs;
    use crate::vfs::path::{resolve, Follow};
    use crate::vfs::FsContext;

    /// A mount two levels down survives its ancestors' dentry caches filling up.
    #[test]
    fn mounts_outlive_dentry_cache_eviction() {
        let owner = Owner { uid: 0, gid: 0 };
        let fs_root = Tmpfs::new_root(MemoryFile::new(), 0o755, owner, 0);
        let root = Dentry::new_root(fs_root.clone());
        let mut ctors: HashMap<String, FsConstructor> = HashMap::new();
        ctors.insert("tmpfs".into(), Tmpfs::constructor(MemoryFile::new()));
        let mc = MountConfig {
            destination: "/a/b".into(),
            kind: "tmpfs".into(),
            source: "tmpfs".into(),
            options: vec![],
        };
        MountTable::new().mount_all(&root, &[mc], &ctors).unwrap();
        for i in 0..4200 {
            let name = format!("f{i}");
            fs_root.create(name.as_bytes(), 0o644, owner).unwrap();
            root.child(name.as_bytes()).unwrap();
        }
        let fs = FsContext {
            root: root.clone(),
            cwd: root.clone(),
            umask: 0,
        };
        let b = resolve(&fs, &root, b"/a/b", Follow::Yes).unwrap();
        assert!(!Arc::ptr_eq(b.mount(), root.mount()));
        assert_eq!(visible_mounts(&root).len(), 2);
    }
}
