//! The extended attribute calls (`getxattr(2)`, `setxattr(2)`, `listxattr(2)`,
//! `removexattr(2)` and their `l*` and `f*` forms), with Linux's checks in its
//! order: the name and value are copied in (`ERANGE`, `E2BIG`), the path is
//! resolved, a write needs a writable mount (`EROFS`), then the namespace rules
//! (`trusted.` needs `CAP_SYS_ADMIN`, `user.` only on regular files and
//! directories, `security.` writes need `CAP_SYS_ADMIN`) and the file's
//! permission bits, and last the filesystem (`EOPNOTSUPP` where it keeps none).
//! The two POSIX ACL names (`system.posix_acl_access`, `..._default`) go through
//! [`set_acl`], which checks and applies them as Linux (see [`crate::vfs::acl`]).

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::{CAP_FOWNER, CAP_FSETID, CAP_SYS_ADMIN};
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::fs_mut::target;
use crate::syscalls::{file_arg, path_arg, Args};
use crate::vfs::acl::{self, Acl};
use crate::vfs::perm::{self, MAY_READ, MAY_WRITE};
use crate::vfs::xattr::{
    XATTR_CREATE, XATTR_LIST_MAX, XATTR_NAME_MAX, XATTR_REPLACE, XATTR_SIZE_MAX,
};
use crate::vfs::{Dentry, SetAttr};

/// `CAP_SETFCAP`: writing `security.capability` (file capabilities) needs it.
const CAP_SETFCAP: u32 = 31;

/// Which file a call names.
enum Target {
    /// A path, following a final symlink or not.
    Path(u64, bool),
    /// An open file.
    Fd(u64),
}

/// Copies in an attribute name: empty or longer than `XATTR_NAME_MAX` is `ERANGE`.
fn name_arg(task: &Task, addr: u64) -> SysResult<Vec<u8>> {
    let name = match io::read_cstring(task.mem(), addr, XATTR_NAME_MAX) {
        Err(Errno::ENAMETOOLONG) => return Err(Errno::ERANGE),
        r => r?,
    };
    if name.is_empty() {
        return Err(Errno::ERANGE);
    }
    Ok(name)
}

fn resolve(task: &Task, t: &Target) -> SysResult<Arc<Dentry>> {
    match *t {
        Target::Path(addr, follow) => {
            let path = path_arg(task, addr)?;
            let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
            target(task, libc::AT_FDCWD, &path, flags)
        }
        Target::Fd(fd) => {
            let f = file_arg(task, fd)?;
            if f.is_path() {
                return Err(Errno::EBADF);
            }
            // Files with no name in the tree (pipes, sockets, memfds) have no
            // store for attributes.
            f.dentry().cloned().ok_or(Errno::EOPNOTSUPP)
        }
    }
}

/// Linux's `xattr_permission` and the capability module's check of `security.`
/// writes, for access `want` (`MAY_READ` or `MAY_WRITE`).
fn permitted(task: &Task, d: &Dentry, name: &[u8], want: u32) -> SysResult<()> {
    let st = d.inode().stat()?;
    let write = want & MAY_WRITE != 0;
    if name.starts_with(b"trusted.") {
        if !task.creds.has_cap(CAP_SYS_ADMIN) {
            return Err(if write { Errno::EPERM } else { Errno::ENODATA });
        }
        return Ok(());
    }
    if name.starts_with(b"security.") {
        if write {
            let cap = if name == b"security.capability" {
                CAP_SETFCAP
            } else {
                CAP_SYS_ADMIN
            };
            if !task.creds.has_cap(cap) {
                return Err(Errno::EPERM);
            }
        }
        return Ok(());
    }
    if name.starts_with(b"system.") {
        return Ok(());
    }
    if name.starts_with(b"user.") {
        if !st.is_regular() && !st.is_dir() {
            return Err(if write { Errno::EPERM } else { Errno::ENODATA });
        }
        if st.is_dir()
            && st.mode & libc::S_ISVTX != 0
            && write
            && st.uid != task.creds.fsuid
            && !task.creds.has_cap(CAP_FOWNER)
        {
            return Err(Errno::EPERM);
        }
    }
    perm::check_on(&task.creds, &st, &**d.inode(), want, false)
}

fn get(task: &Task, t: Target, name: u64, value: u64, size: u64) -> SysResult<u64> {
    let name = name_arg(task, name)?;
    let d = resolve(task, &t)?;
    permitted(task, &d, &name, MAY_READ)?;
    let v = d.inode().getxattr(&name)?;
    let size = (size as usize).min(XATTR_SIZE_MAX);
    if size == 0 {
        return Ok(v.len() as u64);
    }
    if v.len() > size {
        return Err(if size >= XATTR_SIZE_MAX {
            Errno::E2BIG
        } else {
            Errno::ERANGE
        });
    }
    io::write_all(task.mem(), value, &v)?;
    Ok(v.len() as u64)
}

fn set(task: &Task, t: Target, a: &[u64]) -> SysResult<u64> {
    let (name, value, size, flags) = (a[0], a[1], a[2] as usize, a[3] as i32);
    if a[3] & !((XATTR_CREATE | XATTR_REPLACE) as u64) != 0 {
        return Err(Errno::EINVAL);
    }
    let name = name_arg(task, name)?;
    if size > XATTR_SIZE_MAX {
        return Err(Errno::E2BIG);
    }
    let mut v = vec![0u8; size];
    io::read_exact(task.mem(), value, &mut v)?;
    let d = resolve(task, &t)?;
    d.check_writable()?;
    if acl::is_acl_name(&name) {
        // XATTR_CREATE and XATTR_REPLACE mean nothing to an ACL (as Linux).
        set_acl(task, &d, &name, &v)?;
        task.kernel.files.inotify.attrib(&d);
        return Ok(0);
    }
    permitted(task, &d, &name, MAY_WRITE)?;
    d.inode().setxattr(&name, &v, flags)?;
    task.kernel.files.inotify.attrib(&d);
    Ok(0)
}

fn list(task: &Task, t: Target, list: u64, size: u64) -> SysResult<u64> {
    let d = resolve(task, &t)?;
    let admin = task.creds.has_cap(CAP_SYS_ADMIN);
    let mut out = Vec::new();
    for n in d.inode().listxattr()? {
        // Linux lists `trusted.` names only to a caller who may read them.
        if n.starts_with(b"trusted.") && !admin {
            continue;
        }
        out.extend_from_slice(&n);
        out.push(0);
    }
    let size = (size as usize).min(XATTR_LIST_MAX);
    if size == 0 {
        return Ok(out.len() as u64);
    }
    if out.len() > size {
        return Err(if size >= XATTR_LIST_MAX {
            Errno::E2BIG
        } else {
            Errno::ERANGE
        });
    }
    io::write_all(task.mem(), list, &out)?;
    Ok(out.len() as u64)
}

fn remove(task: &Task, t: Target, name: u64) -> SysResult<u64> {
    let name = name_arg(task, name)?;
    let d = resolve(task, &t)?;
    d.check_writable()?;
    if acl::is_acl_name(&name) {
        set_acl(task, &d, &name, &[])?;
        task.kernel.files.inotify.attrib(&d);
        return Ok(0);
    }
    permitted(task, &d, &name, MAY_WRITE)?;
    d.inode().removexattr(&name)?;
    task.kernel.files.inotify.attrib(&d);
    Ok(0)
}

/// Sets (or with an empty or entry-less `value`, removes) the POSIX ACL `name`
/// of `d`, as Linux's `set_posix_acl` and `posix_acl_update_mode`: the value is
/// parsed and checked (`EOPNOTSUPP` for another version, `EINVAL` for a bad
/// one), a default ACL goes only on a directory (`EACCES`), only the owner or
/// `CAP_FOWNER` may set either (`EPERM`). An access ACL the mode can say alone
/// is not kept; otherwise the group bits become its mask, and the set-group-id
/// bit goes when the caller is neither in the group nor holds `CAP_FSETID`.
fn set_acl(task: &Task, d: &Dentry, name: &[u8], value: &[u8]) -> SysResult<()> {
    let parsed = Acl::from_xattr(value)?;
    if let Some(a) = &parsed {
        a.validate()?;
    }
    let st = d.inode().stat()?;
    if name == acl::DEFAULT && !st.is_dir() {
        return if parsed.is_some() {
            Err(Errno::EACCES)
        } else {
            Ok(())
        };
    }
    if task.creds.fsuid != st.uid && !task.creds.has_cap_over(CAP_FOWNER, st.uid, st.gid) {
        return Err(Errno::EPERM);
    }
    let inode = d.inode();
    let drop_acl = |n: &[u8]| match inode.removexattr(n) {
        Err(Errno::ENODATA) => Ok(()),
        r => r,
    };
    if name == acl::DEFAULT {
        return match parsed {
            Some(a) => inode.setxattr(name, &a.to_xattr(), 0),
            None => drop_acl(name),
        };
    }
    let Some(a) = parsed else {
        return drop_acl(name);
    };
    let (mut mode, equiv) = a.equiv_mode(st.mode & 0o7777);
    if !perm::in_group(&task.creds, st.gid) && !task.creds.has_cap_over(CAP_FSETID, st.uid, st.gid)
    {
        mode &= !libc::S_ISGID;
    }
    if equiv {
        drop_acl(name)?;
    } else {
        inode.setxattr(name, &a.to_xattr(), 0)?;
    }
    if mode != st.mode & 0o7777 {
        inode.setattr(&SetAttr {
            mode: Some(mode),
            ..Default::default()
        })?;
    }
    Ok(())
}

/// `getxattr(2)`.
pub fn getxattr(task: &mut Task, a: &Args) -> SysResult<u64> {
    get(task, Target::Path(a[0], true), a[1], a[2], a[3])
}

/// `lgetxattr(2)`.
pub fn lgetxattr(task: &mut Task, a: &Args) -> SysResult<u64> {
    get(task, Target::Path(a[0], false), a[1], a[2], a[3])
}

/// `fgetxattr(2)`.
pub fn fgetxattr(task: &mut Task, a: &Args) -> SysResult<u64> {
    get(task, Target::Fd(a[0]), a[1], a[2], a[3])
}

/// `setxattr(2)`.
pub fn setxattr(task: &mut Task, a: &Args) -> SysResult<u64> {
    set(task, Target::Path(a[0], true), &a[1..5])
}

/// `lsetxattr(2)`.
pub fn lsetxattr(task: &mut Task, a: &Args) -> SysResult<u64> {
    set(task, Target::Path(a[0], false), &a[1..5])
}

/// `fsetxattr(2)`.
pub fn fsetxattr(task: &mut Task, a: &Args) -> SysResult<u64> {
    set(task, Target::Fd(a[0]), &a[1..5])
}

/// `listxattr(2)`.
pub fn listxattr(task: &mut Task, a: &Args) -> SysResult<u64> {
    list(task, Target::Path(a[0], true), a[1], a[2])
}

/// `llistxattr(2)`.
pub fn llistxattr(task: &mut Task, a: &Args) -> SysResult<u64> {
    list(task, Target::Path(a[0], false), a[1], a[2])
}

/// `flistxattr(2)`.
pub fn flistxattr(task: &mut Task, a: &Args) -> SysResult<u64> {
    list(task, Target::Fd(a[0]), a[1], a[2])
}

/// `removexattr(2)`.
pub fn removexattr(task: &mut Task, a: &Args) -> SysResult<u64> {
    remove(task, Target::Path(a[0], true), a[1])
}

/// `lremovexattr(2)`.
pub fn lremovexattr(task: &mut Task, a: &Args) -> SysResult<u64> {
    remove(task, Target::Path(a[0], false), a[1])
}

/// `fremovexattr(2)`.
pub fn fremovexattr(task: &mut Task, a: &Args) -> SysResult<u64> {
    remove(task, Target::Fd(a[0]), a[1])
}
