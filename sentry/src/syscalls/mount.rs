//! `mount(2)`, `umount2(2)` and `pivot_root(2)` on the caller's mount tree, with
//! Linux's flag decoding, order of checks and errors. The tree operations are in
//! [`crate::vfs::mount_ops`].

use std::sync::Arc;

use crate::config::MountConfig;
use crate::errno::{Errno, SysResult};
use crate::kernel::creds::CAP_SYS_ADMIN;
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::{path_arg, Args};
use crate::vfs::mount::MountSpec;
use crate::vfs::mount_ops;
use crate::vfs::path::{walk, Follow, WalkOpts};
use crate::vfs::{Dentry, Inode};

/// The old magic number some callers put in the flags' top half.
const MS_MGC_MSK: u64 = 0xffff_0000;
const MS_MGC_VAL: u64 = 0xc0ed_0000;
const MS_NOUSER: u64 = 1 << 31;
/// The propagation kinds; exactly one at a time.
const PROPAGATION: u64 = libc::MS_SHARED | libc::MS_PRIVATE | libc::MS_SLAVE | libc::MS_UNBINDABLE;
/// Per-mount flags kept on the mount.
const MOUNT_FLAGS: u64 = libc::MS_RDONLY
    | libc::MS_NOSUID
    | libc::MS_NODEV
    | libc::MS_NOEXEC
    | libc::MS_NOATIME
    | libc::MS_NODIRATIME
    | libc::MS_STRICTATIME;
const ATIME: u64 = libc::MS_NOATIME | libc::MS_RELATIME | libc::MS_STRICTATIME;
/// Longest filesystem type name read.
const FSTYPE_MAX: usize = 255;
/// Filesystem data is read up to a page, as Linux copies it.
const DATA_MAX: usize = 4095;

/// umount2 flags.
const MNT_FORCE: u64 = 1;
const MNT_DETACH: u64 = 2;
const MNT_EXPIRE: u64 = 4;
const UMOUNT_NOFOLLOW: u64 = 8;

fn lookup(task: &Task, path: &[u8], follow: Follow) -> SysResult<Arc<Dentry>> {
    let opts = WalkOpts {
        creds: Some(&task.creds),
        resolve: 0,
    };
    walk(&task.fs, &task.fs.cwd, path, follow, opts)
}

fn opt_string(task: &Task, addr: u64, max: usize) -> SysResult<Option<Vec<u8>>> {
    if addr == 0 {
        return Ok(None);
    }
    io::read_cstring(task.mem(), addr, max).map(Some)
}

/// CAP_SYS_ADMIN over the user namespace owning the caller's mount namespace.
fn may_mount(task: &Task) -> bool {
    let owner = crate::kernel::ns::owner(&task.ns.mnt.owner);
    task.creds.has_cap_in(owner, CAP_SYS_ADMIN)
}

/// A new filesystem of type `kind` made from a user namespace below the sandbox's
/// first: only the kinds Linux lets such a namespace mount (`FS_USERNS_MOUNT`),
/// and proc and sysfs only by a process with CAP_SYS_ADMIN over the owner of the
/// pid or network namespace they show (the sandbox's first pid namespace, and the
/// caller's network namespace).
fn userns_may_mount(task: &Task, kind: &str) -> SysResult<()> {
    if task.creds.has_cap(CAP_SYS_ADMIN) {
        return Ok(());
    }
    let ok = match kind {
        "tmpfs" | "ramfs" | "devpts" | "mqueue" | "cgroup" | "cgroup2" => true,
        // A procfs shows the mounter's pid namespace: the owner of that must
        // grant it.
        "proc" => {
            let owner = crate::kernel::ns::owner(&task.tg.pid_ns.owner);
            task.creds.has_cap_in(owner, CAP_SYS_ADMIN)
        }
        "sysfs" => {
            let owner = crate::kernel::ns::owner(&task.ns.net.owner);
            task.creds.has_cap_in(owner, CAP_SYS_ADMIN)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// `mount(2)`.
pub fn mount(task: &mut Task, a: &Args) -> SysResult<u64> {
    let mut flags = a[3];
    if flags & MS_MGC_MSK == MS_MGC_VAL {
        flags &= !MS_MGC_MSK;
    }
    // The strings are copied in before anything else, as Linux does.
    let source = opt_string(task, a[0], crate::vfs::PATH_MAX - 1)?;
    let target = path_arg(task, a[1])?;
    let fstype = opt_string(task, a[2], FSTYPE_MAX)?;
    let data = opt_string(task, a[4], DATA_MAX)?;
    let at = lookup(task, &target, Follow::Yes)?;
    if flags & MS_NOUSER != 0 {
        return Err(Errno::EINVAL);
    }
    if !may_mount(task) {
        return Err(Errno::EPERM);
    }
    if flags & libc::MS_REMOUNT != 0 {
        remount(&at, flags)?;
    } else if flags & libc::MS_BIND != 0 {
        let source = source.filter(|s| !s.is_empty()).ok_or(Errno::EINVAL)?;
        let src = lookup(task, &source, Follow::Yes)?;
        if src.mount().propagation().unbindable {
            return Err(Errno::EINVAL);
        }
        let at = at.cross_mounts();
        mount_ops::copy_tree(&src, Some(&at), flags & libc::MS_REC != 0, true)?;
    } else if flags & PROPAGATION != 0 {
        let kind = flags & !(libc::MS_REC | libc::MS_SILENT);
        if !kind.is_power_of_two() || kind & PROPAGATION == 0 {
            return Err(Errno::EINVAL);
        }
        if !mount_ops::is_mount_root(&at) {
            return Err(Errno::EINVAL);
        }
        mount_ops::change_propagation(at.mount(), kind, flags & libc::MS_REC != 0);
    } else if flags & libc::MS_MOVE != 0 {
        let source = source.filter(|s| !s.is_empty()).ok_or(Errno::EINVAL)?;
        let src = lookup(task, &source, Follow::Yes)?;
        mount_ops::move_mount(&src, &at)?;
    } else {
        let fstype = fstype.ok_or(Errno::EINVAL)?;
        let kind = String::from_utf8(fstype).map_err(|_| Errno::ENODEV)?;
        let options: Vec<String> = data
            .map(|d| String::from_utf8_lossy(&d).into_owned())
            .unwrap_or_default()
            .split(',')
            .filter(|o| !o.is_empty())
            .map(str::to_string)
            .collect();
        let source = source.map_or_else(
            || "none".to_string(),
            |s| String::from_utf8_lossy(&s).into_owned(),
        );
        let mc = MountConfig {
            destination: String::from_utf8_lossy(&target).into_owned(),
            kind: kind.clone(),
            source: source.clone(),
            options: options.clone(),
        };
        userns_may_mount(task, &kind)?;
        let inode = new_filesystem(task, &mc)?;
        let data = if kind == "tmpfs" { options } else { Vec::new() };
        let root = mount_ops::mount_new(
            &at,
            inode,
            MountSpec {
                flags: new_flags(flags, 0),
                kind: &kind,
                source: &source,
                data,
                root_path: b"/".to_vec(),
                super_ro: flags & libc::MS_RDONLY != 0,
            },
        )?;
        if kind == "mqueue" {
            // mq_open and mq_unlink change the filesystem without going through
            // this mount's dentries.
            root.mount().set_aliased();
        }
    }
    Ok(0)
}

/// The per-mount flags `flags` asks for; without an atime flag, `old`'s atime
/// setting stays (a remount) or relatime is the default (a new mount, `old` 0).
fn new_flags(flags: u64, old: u64) -> u64 {
    let atime = if flags & ATIME != 0 {
        flags & (libc::MS_NOATIME | libc::MS_STRICTATIME)
    } else {
        old & (libc::MS_NOATIME | libc::MS_STRICTATIME)
    };
    (flags & MOUNT_FLAGS & !(libc::MS_NOATIME | libc::MS_STRICTATIME)) | atime
}

/// `MS_REMOUNT`: new per-mount flags; without `MS_BIND` the filesystem's own
/// read-only state changes too.
fn remount(at: &Arc<Dentry>, flags: u64) -> SysResult<()> {
    if !mount_ops::is_mount_root(at) {
        return Err(Errno::EINVAL);
    }
    let m = at.mount();
    m.set_flags(new_flags(flags, m.flags()));
    if flags & libc::MS_BIND == 0 {
        m.set_super_ro(flags & libc::MS_RDONLY != 0);
    }
    Ok(())
}

/// A new instance of filesystem `mc.kind`: `ENODEV` for kinds the sandbox has not.
fn new_filesystem(task: &Task, mc: &MountConfig) -> SysResult<Arc<dyn Inode>> {
    let k = &task.kernel;
    match mc.kind.as_str() {
        "tmpfs" => {
            // Without size=, half the machine's memory (the sandbox's limit), as at boot.
            let mut sized = mc.clone();
            if let Some(limit) = k.resources.memory_limit() {
                if !mc.options.iter().any(|o| o.starts_with("size=")) {
                    sized.options.push(format!("size={}", limit / 2));
                }
            }
            crate::fs::tmpfs::Tmpfs::constructor(k.mem.clone())(&sized)
        }
        // The mounter's pid namespace's processes, as Linux's.
        "proc" => Ok(crate::fs::procfs::new_root(k, task.tg.pid_ns.clone())),
        // The mounter's network namespace's interfaces, as Linux's.
        "sysfs" => Ok(crate::fs::sysfs::new_root(k.ncpus, &task.ns.net.stack)),
        "cgroup2" => Ok(crate::fs::cgroupfs::new_root(k)),
        "mqueue" => Ok(task.ns.ipc.mq.root()),
        "devpts" => {
            // The sandbox has one devpts instance, the one its first /dev carries
            // (whose ptys /dev/ptmx opens): a new devpts mount shows it, as a mount
            // without `newinstance` did before Linux 4.7 made each mount a new one.
            let top = k.root_ns.mnt.root()?;
            let fs = crate::vfs::FsContext {
                root: top.clone(),
                cwd: top.clone(),
                umask: 0,
            };
            let opts = WalkOpts {
                creds: None,
                resolve: 0,
            };
            let pts = walk(&fs, &top, b"/dev/pts", Follow::Yes, opts).map_err(|_| Errno::ENODEV)?;
            Ok(pts.cross_mounts().inode().clone())
        }
        other => {
            tracing::warn!(
                "mount: filesystem type {other:?} is not available in the sandbox (ENODEV)"
            );
            Err(Errno::ENODEV)
        }
    }
}

/// `umount2(2)`.
pub fn umount2(task: &mut Task, a: &Args) -> SysResult<u64> {
    let flags = a[1];
    if flags & !(MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MNT_EXPIRE != 0 && flags & (MNT_FORCE | MNT_DETACH) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = path_arg(task, a[0])?;
    let follow = if flags & UMOUNT_NOFOLLOW != 0 {
        Follow::No
    } else {
        Follow::Yes
    };
    // The last component crosses into what is mounted there (`umount .` works).
    let d = lookup(task, &path, follow)?.cross_mounts();
    if !may_mount(task) {
        return Err(Errno::EPERM);
    }
    if !mount_ops::is_mount_root(&d) {
        return Err(Errno::EINVAL);
    }
    if flags & MNT_EXPIRE != 0 {
        // The first MNT_EXPIRE only marks the mount; nothing here keeps the mark.
        return Err(Errno::EAGAIN);
    }
    // MNT_FORCE asks filesystems to abort pending requests; none here has any.
    mount_ops::umount(&d, flags & MNT_DETACH != 0, 1)?;
    Ok(0)
}

/// `pivot_root(2)`: the caller's mount namespace gets `new_root` as its root and
/// the old root is mounted on `put_old`; the caller's root and working directory
/// move with it when they were the old root. (Other processes of the namespace
/// keep theirs.)
pub fn pivot_root(task: &mut Task, a: &Args) -> SysResult<u64> {
    let new_path = path_arg(task, a[0])?;
    let old_path = path_arg(task, a[1])?;
    if !may_mount(task) {
        return Err(Errno::EPERM);
    }
    let new_root = lookup(task, &new_path, Follow::Yes)?;
    let put_old = lookup(task, &old_path, Follow::Yes)?;
    let root = task.fs.root.clone();
    if !new_root.is_descendant_of(&root) {
        return Err(Errno::EINVAL);
    }
    let was_top = root.mount().mountpoint().is_none();
    mount_ops::pivot(&root, &new_root, &put_old)?;
    if was_top {
        task.ns.mnt.set_root(new_root.clone())?;
    }
    if Arc::ptr_eq(&task.fs.root, &root) {
        task.fs.root = new_root.clone();
    }
    if Arc::ptr_eq(&task.fs.cwd, &root) {
        task.fs.cwd = new_root;
    }
    Ok(0)
}
