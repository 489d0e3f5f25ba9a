//! File syscalls that change the tree or attributes: mkdir, mknod, unlink, rmdir,
//! rename, link, symlink, chmod, chown, utimes, with Linux's permission rules
//! (write and search on the parent, sticky directories, CAP_CHOWN, CAP_FOWNER,
//! CAP_FSETID, protected hard links) and read-only mounts giving `EROFS`.

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::{CAP_CHOWN, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID};
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::{at_dir, file_arg, path_arg, Args};
use crate::vfs::acl::{self, Acl};
use crate::vfs::path::{walk, walk_parent, Follow, WalkOpts};
use crate::vfs::perm::{self, MAY_READ, MAY_WRITE};
use crate::vfs::{Dentry, Inode, Owner, SetAttr, SetTime, Stat};

const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;

fn opts(task: &Task) -> WalkOpts<'_> {
    WalkOpts {
        creds: Some(&task.creds),
        resolve: 0,
    }
}

/// The dentry a path-or-fd call names: `path` from `dirfd`, or with
/// `AT_EMPTY_PATH` and an empty path the fd itself.
pub(super) fn target(task: &Task, dirfd: i32, path: &[u8], flags: i32) -> SysResult<Arc<Dentry>> {
    if path.is_empty() {
        if flags & libc::AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        if dirfd == libc::AT_FDCWD {
            return Ok(task.fs.cwd.clone());
        }
        return file_arg(task, dirfd as u64)?
            .dentry()
            .cloned()
            .ok_or(Errno::EBADF);
    }
    let start = at_dir(task, dirfd, path)?;
    let follow = if flags & libc::AT_SYMLINK_NOFOLLOW != 0 {
        Follow::No
    } else {
        Follow::Yes
    };
    walk(&task.fs, &start, path, follow, opts(task))
}

fn in_group(task: &Task, gid: u32) -> bool {
    perm::in_group(&task.creds, gid)
}

fn is_owner(task: &Task, st: &Stat) -> bool {
    task.creds.fsuid == st.uid || task.creds.has_cap_over(CAP_FOWNER, st.uid, st.gid)
}

/// Applies an attribute change and reports it to inotify.
pub(super) fn set_attr(task: &Task, d: &Dentry, attr: &SetAttr) -> SysResult<()> {
    d.inode().setattr(attr)?;
    task.kernel.files.inotify.setattr(d, attr);
    Ok(())
}

/// May the caller add an entry to `dir`?
pub(super) fn may_create(task: &Task, dir: &Dentry) -> SysResult<()> {
    perm::may_create(&task.creds, dir)
}

fn may_delete(task: &Task, dir: &Dentry, victim: &Stat) -> SysResult<()> {
    perm::may_delete(&task.creds, dir, victim)
}

/// Owner and final mode of a new object in `dir` (see [`perm::new_owner`]).
pub(super) fn new_owner(
    task: &Task,
    dir: &Dentry,
    mode: u32,
    is_dir: bool,
) -> SysResult<(Owner, u32)> {
    perm::new_owner(&task.creds, &dir.inode().stat()?, mode, is_dir)
}

/// The ACLs a new object inherits from its directory's default ACL.
#[derive(Default)]
pub(super) struct Inherited {
    access: Option<Acl>,
    default: Option<Acl>,
}

impl Inherited {
    /// Gives the new `inode` its ACLs.
    pub(super) fn apply(self, inode: &Arc<dyn Inode>) -> SysResult<()> {
        if let Some(a) = self.access {
            inode.setxattr(acl::ACCESS, &a.to_xattr(), 0)?;
        }
        if let Some(a) = self.default {
            inode.setxattr(acl::DEFAULT, &a.to_xattr(), 0)?;
        }
        Ok(())
    }
}

/// The permission bits of a new object in `dir` asked for as `mode`, and the
/// ACLs it inherits (Linux's `posix_acl_create`): without a default ACL on
/// `dir` the umask applies; with one, the ACL masks the mode instead, becomes
/// the object's access ACL unless the mode says it all, and a new directory
/// inherits it as its own default.
pub(super) fn create_mode(task: &Task, dir: &Dentry, mode: u32, is_dir: bool) -> (u32, Inherited) {
    match dir.inode().posix_acl(true) {
        None => (mode & !task.fs.umask, Inherited::default()),
        Some(def) => {
            let (mode, access) = def.create(mode);
            let default = is_dir.then_some(def);
            (mode, Inherited { access, default })
        }
    }
}

/// Resolves the parent of a name to create; `EEXIST` if it exists.
fn create_parent(task: &Task, dirfd: i32, path: &[u8]) -> SysResult<(Arc<Dentry>, Vec<u8>)> {
    let start = at_dir(task, dirfd, path)?;
    let (parent, name) = walk_parent(&task.fs, &start, path, opts(task))?;
    if name == b"." || name == b".." {
        return Err(Errno::EEXIST);
    }
    match parent.child(&name) {
        Ok(_) => return Err(Errno::EEXIST),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(e),
    }
    may_create(task, &parent)?;
    Ok((parent, name))
}

fn do_mkdir(task: &Task, dirfd: i32, path: &[u8], mode: u32) -> SysResult<u64> {
    let (parent, name) = create_parent(task, dirfd, path)?;
    let (mode, acls) = create_mode(task, &parent, mode & 0o1777, true);
    let (owner, mode) = new_owner(task, &parent, mode, true)?;
    let inode = parent.inode().mkdir(&name, mode, owner)?;
    acls.apply(&inode)?;
    task.kernel.files.inotify.created(&parent, &name, &inode);
    parent.add_child(&name, inode)?;
    Ok(0)
}

/// `mkdir(2)`.
pub fn mkdir(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    do_mkdir(task, libc::AT_FDCWD, &path, a[1] as u32)
}

/// `mkdirat(2)`.
pub fn mkdirat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[1])?;
    do_mkdir(task, a[0] as i32, &path, a[2] as u32)
}

fn do_mknod(task: &Task, dirfd: i32, path: &[u8], mode: u32) -> SysResult<u64> {
    make_node(task, dirfd, path, mode).map(|_| 0)
}

/// Makes a filesystem node as `mknodat(2)` does and returns its attributes (bind of
/// a Unix socket makes its socket file this way).
pub(super) fn make_node(task: &Task, dirfd: i32, path: &[u8], mode: u32) -> SysResult<Stat> {
    let kind = mode & libc::S_IFMT;
    match kind {
        0 | libc::S_IFREG | libc::S_IFIFO | libc::S_IFSOCK => {}
        libc::S_IFCHR | libc::S_IFBLK => {
            // Device nodes are never created inside the sandbox.
            create_parent(task, dirfd, path)?;
            return Err(Errno::EPERM);
        }
        libc::S_IFDIR => return Err(Errno::EPERM),
        _ => return Err(Errno::EINVAL),
    }
    let (parent, name) = create_parent(task, dirfd, path)?;
    let (perm_bits, acls) = create_mode(task, &parent, mode & 0o7777, false);
    let (owner, perm_bits) = new_owner(task, &parent, perm_bits, false)?;
    let kind = if kind == 0 { libc::S_IFREG } else { kind };
    let inode = parent.inode().mknod(&name, kind | perm_bits, owner)?;
    acls.apply(&inode)?;
    let st = inode.stat()?;
    task.kernel.files.inotify.created(&parent, &name, &inode);
    parent.add_child(&name, inode)?;
    Ok(st)
}

/// `mknod(2)`.
pub fn mknod(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    do_mknod(task, libc::AT_FDCWD, &path, a[1] as u32)
}

/// `mknodat(2)`.
pub fn mknodat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[1])?;
    do_mknod(task, a[0] as i32, &path, a[2] as u32)
}

fn do_unlink(task: &Task, dirfd: i32, path: &[u8], rmdir: bool) -> SysResult<u64> {
    let start = at_dir(task, dirfd, path)?;
    let (parent, name) = walk_parent(&task.fs, &start, path, opts(task))?;
    if name == b"." {
        return Err(if rmdir { Errno::EINVAL } else { Errno::EISDIR });
    }
    if name == b".." {
        return Err(if rmdir {
            Errno::ENOTEMPTY
        } else {
            Errno::EISDIR
        });
    }
    let child = parent.child(&name)?;
    let st = child.inode().stat()?;
    if !rmdir && path.ends_with(b"/") {
        return Err(if st.is_dir() {
            Errno::EISDIR
        } else {
            Errno::ENOTDIR
        });
    }
    if rmdir && !st.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    may_delete(task, &parent, &st)?;
    if child.is_mountpoint() {
        return Err(Errno::EBUSY);
    }
    if rmdir && Arc::ptr_eq(&child, &task.fs.root) {
        return Err(Errno::EBUSY);
    }
    parent.inode().unlink(&name, rmdir)?;
    parent.forget_child(&name);
    task.kernel
        .files
        .inotify
        .removed(&parent, &name, child, &st);
    Ok(0)
}

/// `unlink(2)`.
pub fn unlink(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    do_unlink(task, libc::AT_FDCWD, &path, false)
}

/// `rmdir(2)`.
pub fn rmdir(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    do_unlink(task, libc::AT_FDCWD, &path, true)
}

/// `unlinkat(2)`.
pub fn unlinkat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let flags = a[2] as i32;
    if flags & !libc::AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    let path = path_arg(task, a[1])?;
    do_unlink(task, a[0] as i32, &path, flags & libc::AT_REMOVEDIR != 0)
}

fn do_rename(
    task: &Task,
    olddfd: i32,
    old: &[u8],
    newdfd: i32,
    new: &[u8],
    flags: u32,
) -> SysResult<u64> {
    let known = libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE | libc::RENAME_WHITEOUT;
    if flags & !known != 0
        || flags & libc::RENAME_WHITEOUT != 0
        || (flags & libc::RENAME_EXCHANGE != 0 && flags & libc::RENAME_NOREPLACE != 0)
    {
        return Err(Errno::EINVAL);
    }
    let exchange = flags & libc::RENAME_EXCHANGE != 0;
    let ostart = at_dir(task, olddfd, old)?;
    let nstart = at_dir(task, newdfd, new)?;
    let (opar, oname) = walk_parent(&task.fs, &ostart, old, opts(task))?;
    let (npar, nname) = walk_parent(&task.fs, &nstart, new, opts(task))?;
    let dots = |n: &[u8]| n == b"." || n == b"..";
    if dots(&oname) || dots(&nname) {
        return Err(Errno::EBUSY);
    }
    if !Arc::ptr_eq(opar.mount(), npar.mount()) {
        return Err(Errno::EXDEV);
    }
    let src = opar.child(&oname)?;
    let sst = src.inode().stat()?;
    let dst = match npar.child(&nname) {
        Ok(d) => Some(d),
        Err(Errno::ENOENT) if !exchange => None,
        Err(e) => return Err(e),
    };
    let dst_st = match &dst {
        Some(d) => Some(d.inode().stat()?),
        None => None,
    };
    if flags & libc::RENAME_NOREPLACE != 0 && dst.is_some() {
        return Err(Errno::EEXIST);
    }
    if !sst.is_dir() && (old.ends_with(b"/") || new.ends_with(b"/")) {
        return Err(Errno::ENOTDIR);
    }
    may_delete(task, &opar, &sst)?;
    match &dst_st {
        Some(d) => may_delete(task, &npar, d)?,
        None => may_create(task, &npar)?,
    }
    let moves_dir = !Arc::ptr_eq(&opar, &npar);
    if moves_dir && sst.is_dir() {
        // Its ".." changes.
        perm::check_on(&task.creds, &sst, &**src.inode(), MAY_WRITE, false)?;
    }
    if let (true, Some(d), Some(dd)) = (moves_dir && exchange, &dst_st, &dst) {
        if d.is_dir() {
            perm::check_on(&task.creds, d, &**dd.inode(), MAY_WRITE, false)?;
        }
    }
    if src.is_mountpoint() || dst.as_ref().is_some_and(|d| d.is_mountpoint()) {
        return Err(Errno::EBUSY);
    }
    opar.inode().rename(&oname, npar.inode(), &nname, flags)?;
    Dentry::renamed(&opar, &oname, &npar, &nname, exchange);
    drop(src);
    let target = dst.zip(dst_st);
    task.kernel
        .files
        .inotify
        .renamed((&opar, &oname), (&npar, &nname), exchange, &sst, target);
    Ok(0)
}

/// `rename(2)`.
pub fn rename(task: &mut Task, a: &Args) -> SysResult<u64> {
    let old = path_arg(task, a[0])?;
    let new = path_arg(task, a[1])?;
    do_rename(task, libc::AT_FDCWD, &old, libc::AT_FDCWD, &new, 0)
}

/// `renameat(2)`.
pub fn renameat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let old = path_arg(task, a[1])?;
    let new = path_arg(task, a[3])?;
    do_rename(task, a[0] as i32, &old, a[2] as i32, &new, 0)
}

/// `renameat2(2)`.
pub fn renameat2(task: &mut Task, a: &Args) -> SysResult<u64> {
    let old = path_arg(task, a[1])?;
    let new = path_arg(task, a[3])?;
    do_rename(task, a[0] as i32, &old, a[2] as i32, &new, a[4] as u32)
}

fn do_link(
    task: &Task,
    olddfd: i32,
    old: &[u8],
    newdfd: i32,
    new: &[u8],
    flags: i32,
) -> SysResult<u64> {
    if flags & !(libc::AT_SYMLINK_FOLLOW | libc::AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    if old.is_empty()
        && flags & libc::AT_EMPTY_PATH != 0
        && !task.creds.has_cap(CAP_DAC_READ_SEARCH)
    {
        return Err(Errno::ENOENT);
    }
    let follow_flag = if flags & libc::AT_SYMLINK_FOLLOW != 0 {
        0
    } else {
        libc::AT_SYMLINK_NOFOLLOW
    };
    let src = target(
        task,
        olddfd,
        old,
        follow_flag | (flags & libc::AT_EMPTY_PATH),
    )?;
    let st = src.inode().stat()?;
    if st.is_dir() {
        return Err(Errno::EPERM);
    }
    let (parent, name) = create_parent(task, newdfd, new)?;
    if !Arc::ptr_eq(parent.mount(), src.mount()) {
        return Err(Errno::EXDEV);
    }
    // fs.protected_hardlinks: only the owner links a file it cannot read and write.
    if task.creds.fsuid != st.uid && !task.creds.has_cap_over(CAP_FOWNER, st.uid, st.gid) {
        let safe = st.is_regular()
            && st.mode & libc::S_ISUID == 0
            && (st.mode & (libc::S_ISGID | libc::S_IXGRP)) != (libc::S_ISGID | libc::S_IXGRP)
            && perm::check_on(
                &task.creds,
                &st,
                &**src.inode(),
                MAY_READ | MAY_WRITE,
                false,
            )
            .is_ok();
        if !safe {
            return Err(Errno::EPERM);
        }
    }
    parent.inode().link(&name, src.inode())?;
    task.kernel
        .files
        .inotify
        .linked(&parent, &name, src.inode());
    parent.add_child(&name, src.inode().clone())?;
    Ok(0)
}

/// `link(2)`.
pub fn link(task: &mut Task, a: &Args) -> SysResult<u64> {
    let old = path_arg(task, a[0])?;
    let new = path_arg(task, a[1])?;
    do_link(task, libc::AT_FDCWD, &old, libc::AT_FDCWD, &new, 0)
}

/// `linkat(2)`.
pub fn linkat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let old = path_arg(task, a[1])?;
    let new = path_arg(task, a[3])?;
    do_link(task, a[0] as i32, &old, a[2] as i32, &new, a[4] as i32)
}

fn do_symlink(task: &Task, target_path: &[u8], dirfd: i32, path: &[u8]) -> SysResult<u64> {
    if target_path.is_empty() {
        return Err(Errno::ENOENT);
    }
    let (parent, name) = create_parent(task, dirfd, path)?;
    let (owner, _) = new_owner(task, &parent, 0o777, false)?;
    let inode = parent.inode().symlink(&name, target_path, owner)?;
    task.kernel.files.inotify.created(&parent, &name, &inode);
    parent.add_child(&name, inode)?;
    Ok(0)
}

/// `symlink(2)`.
pub fn symlink(task: &mut Task, a: &Args) -> SysResult<u64> {
    let t = path_arg(task, a[0])?;
    let p = path_arg(task, a[1])?;
    do_symlink(task, &t, libc::AT_FDCWD, &p)
}

/// `symlinkat(2)`.
pub fn symlinkat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let t = path_arg(task, a[0])?;
    let p = path_arg(task, a[2])?;
    do_symlink(task, &t, a[1] as i32, &p)
}

fn chmod_dentry(task: &Task, d: &Dentry, mode: u32) -> SysResult<u64> {
    let st = d.inode().stat()?;
    d.check_writable()?;
    if !is_owner(task, &st) {
        return Err(Errno::EPERM);
    }
    let mut mode = mode & 0o7777;
    if mode & libc::S_ISGID != 0 && !in_group(task, st.gid) && !task.creds.has_cap(CAP_FSETID) {
        mode &= !libc::S_ISGID;
    }
    set_attr(
        task,
        d,
        &SetAttr {
            mode: Some(mode),
            ..Default::default()
        },
    )?;
    // Linux's posix_acl_chmod: the access ACL's owner, mask and other entries
    // follow the new mode.
    if let Some(mut a) = d.inode().posix_acl(false) {
        a.chmod(mode);
        d.inode().setxattr(acl::ACCESS, &a.to_xattr(), 0)?;
    }
    Ok(0)
}

/// `chmod(2)`.
pub fn chmod(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    let d = target(task, libc::AT_FDCWD, &path, 0)?;
    chmod_dentry(task, &d, a[1] as u32)
}

/// The dentry behind an fd for fchmod/fchown (`EBADF` for `O_PATH`).
fn fd_dentry(task: &Task, fd: u64) -> SysResult<Arc<Dentry>> {
    let f = file_arg(task, fd)?;
    if f.is_path() {
        return Err(Errno::EBADF);
    }
    f.dentry().cloned().ok_or(Errno::EPERM)
}

/// `fchmod(2)`.
pub fn fchmod(task: &mut Task, a: &Args) -> SysResult<u64> {
    let d = fd_dentry(task, a[0])?;
    chmod_dentry(task, &d, a[1] as u32)
}

fn do_fchmodat(task: &Task, dirfd: i32, path: &[u8], mode: u32, flags: i32) -> SysResult<u64> {
    if flags & !(libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let d = target(task, dirfd, path, flags)?;
    if d.inode().stat()?.is_symlink() {
        return Err(Errno::EOPNOTSUPP);
    }
    chmod_dentry(task, &d, mode)
}

/// `fchmodat(2)` (no flags argument).
pub fn fchmodat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[1])?;
    do_fchmodat(task, a[0] as i32, &path, a[2] as u32, 0)
}

/// `fchmodat2(2)`.
pub fn fchmodat2(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[1])?;
    do_fchmodat(task, a[0] as i32, &path, a[2] as u32, a[3] as i32)
}

fn chown_dentry(task: &Task, d: &Dentry, uid: u32, gid: u32) -> SysResult<u64> {
    let st = d.inode().stat()?;
    d.check_writable()?;
    // The new owner as the caller names it, in kernel ids.
    let ns = task.creds.user_ns();
    let uid = match uid {
        u32::MAX => None,
        u => Some(ns.uid_down(u).ok_or(Errno::EINVAL)?),
    };
    let gid = match gid {
        u32::MAX => None,
        g => Some(ns.gid_down(g).ok_or(Errno::EINVAL)?),
    };
    if !task.creds.has_cap_over(CAP_CHOWN, st.uid, st.gid) {
        let owner = task.creds.fsuid == st.uid;
        if uid.is_some_and(|u| u != st.uid) {
            return Err(Errno::EPERM);
        }
        if let Some(g) = gid {
            if g != st.gid && !(owner && in_group(task, g)) {
                return Err(Errno::EPERM);
            }
            if g == st.gid && !owner {
                return Err(Errno::EPERM);
            }
        }
        if uid.is_some() && !owner {
            return Err(Errno::EPERM);
        }
    }
    let mut mode = None;
    if !st.is_dir() && (uid.is_some() || gid.is_some()) {
        let mut m = st.mode & 0o7777;
        m &= !libc::S_ISUID;
        if m & libc::S_IXGRP != 0 {
            m &= !libc::S_ISGID;
        }
        if m != st.mode & 0o7777 {
            mode = Some(m);
        }
    }
    set_attr(
        task,
        d,
        &SetAttr {
            uid,
            gid,
            mode,
            ..Default::default()
        },
    )?;
    Ok(0)
}

/// `chown(2)`.
pub fn chown(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    let d = target(task, libc::AT_FDCWD, &path, 0)?;
    chown_dentry(task, &d, a[1] as u32, a[2] as u32)
}

/// `lchown(2)`.
pub fn lchown(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    let d = target(task, libc::AT_FDCWD, &path, libc::AT_SYMLINK_NOFOLLOW)?;
    chown_dentry(task, &d, a[1] as u32, a[2] as u32)
}

/// `fchown(2)`.
pub fn fchown(task: &mut Task, a: &Args) -> SysResult<u64> {
    let d = fd_dentry(task, a[0])?;
    chown_dentry(task, &d, a[1] as u32, a[2] as u32)
}

/// `fchownat(2)`.
pub fn fchownat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let flags = a[4] as i32;
    if flags & !(libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = path_arg(task, a[1])?;
    let d = target(task, a[0] as i32, &path, flags)?;
    chown_dentry(task, &d, a[2] as u32, a[3] as u32)
}

fn set_times(task: &Task, d: &Dentry, atime: SetTime, mtime: SetTime) -> SysResult<u64> {
    if atime == SetTime::Omit && mtime == SetTime::Omit {
        return Ok(0);
    }
    let st = d.inode().stat()?;
    d.check_writable()?;
    let to_now = matches!(atime, SetTime::Now | SetTime::Omit)
        && matches!(mtime, SetTime::Now | SetTime::Omit);
    if !is_owner(task, &st) {
        if !to_now {
            return Err(Errno::EPERM);
        }
        perm::check_on(&task.creds, &st, &**d.inode(), MAY_WRITE, false)?;
    }
    set_attr(
        task,
        d,
        &SetAttr {
            atime,
            mtime,
            ..Default::default()
        },
    )?;
    Ok(0)
}

fn read_i64s(task: &Task, addr: u64, n: usize) -> SysResult<Vec<i64>> {
    let mut raw = vec![0u8; n * 8];
    io::read_exact(task.mem(), addr, &mut raw)?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

fn timespec_change(sec: i64, nsec: i64) -> SysResult<SetTime> {
    match nsec {
        UTIME_NOW => Ok(SetTime::Now),
        UTIME_OMIT => Ok(SetTime::Omit),
        n if (0..1_000_000_000).contains(&n) => Ok(SetTime::At(sec, n)),
        _ => Err(Errno::EINVAL),
    }
}

/// `utimensat(2)`; a null path means the fd itself (`futimens`).
pub fn utimensat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let flags = a[3] as i32;
    if flags & !(libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let (at, mt) = if a[2] == 0 {
        (SetTime::Now, SetTime::Now)
    } else {
        let v = read_i64s(task, a[2], 4)?;
        (timespec_change(v[0], v[1])?, timespec_change(v[2], v[3])?)
    };
    let d = if a[1] == 0 {
        if a[0] as i32 == libc::AT_FDCWD {
            return Err(Errno::EFAULT);
        }
        let f = file_arg(task, a[0])?;
        f.dentry().cloned().ok_or(Errno::EPERM)?
    } else {
        let path = path_arg(task, a[1])?;
        target(task, a[0] as i32, &path, flags)?
    };
    set_times(task, &d, at, mt)
}

fn timeval_pair(task: &Task, addr: u64) -> SysResult<(SetTime, SetTime)> {
    if addr == 0 {
        return Ok((SetTime::Now, SetTime::Now));
    }
    let v = read_i64s(task, addr, 4)?;
    let tv = |s: i64, us: i64| {
        if !(0..1_000_000).contains(&us) {
            return Err(Errno::EINVAL);
        }
        Ok(SetTime::At(s, us * 1000))
    };
    Ok((tv(v[0], v[1])?, tv(v[2], v[3])?))
}

/// `utimes(2)`.
pub fn utimes(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    let (at, mt) = timeval_pair(task, a[1])?;
    let d = target(task, libc::AT_FDCWD, &path, 0)?;
    set_times(task, &d, at, mt)
}

/// `futimesat(2)`.
pub fn futimesat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[1])?;
    let (at, mt) = timeval_pair(task, a[2])?;
    let d = target(task, a[0] as i32, &path, 0)?;
    set_times(task, &d, at, mt)
}

/// `utime(2)`.
pub fn utime(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    let (at, mt) = if a[1] == 0 {
        (SetTime::Now, SetTime::Now)
    } else {
        let v = read_i64s(task, a[1], 2)?;
        (SetTime::At(v[0], 0), SetTime::At(v[1], 0))
    };
    let d = target(task, libc::AT_FDCWD, &path, 0)?;
    set_times(task, &d, at, mt)
}

/// `truncate(2)`.
pub fn truncate(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    let len = a[1] as i64;
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let d = target(task, libc::AT_FDCWD, &path, 0)?;
    let st = d.inode().stat()?;
    if st.is_dir() {
        return Err(Errno::EISDIR);
    }
    if !st.is_regular() {
        return Err(Errno::EINVAL);
    }
    perm::check_on(&task.creds, &st, &**d.inode(), MAY_WRITE, false)?;
    d.check_writable()?;
    set_attr(
        task,
        &d,
        &SetAttr {
            size: Some(len as u64),
            mode: perm::mode_after_write(&task.creds, &st),
            ..Default::default()
        },
    )?;
    Ok(0)
}

/// `ftruncate(2)`.
pub fn ftruncate(task: &mut Task, a: &Args) -> SysResult<u64> {
    let f = file_arg(task, a[0])?;
    if f.is_path() {
        return Err(Errno::EBADF);
    }
    let len = a[1] as i64;
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    if f.flags() & libc::O_ACCMODE == libc::O_RDONLY {
        return Err(Errno::EINVAL);
    }
    let st = f.stat()?;
    if !st.is_regular() {
        return Err(Errno::EINVAL);
    }
    let Some(d) = f.dentry().cloned() else {
        f.imp().truncate(len as u64)?;
        return Ok(0);
    };
    d.check_writable()?;
    set_attr(
        task,
        &d,
        &SetAttr {
            size: Some(len as u64),
            mode: perm::mode_after_write(&task.creds, &st),
            ..Default::default()
        },
    )?;
    Ok(0)
}
