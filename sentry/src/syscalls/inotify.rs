//! `inotify_init`, `inotify_init1`, `inotify_add_watch`, `inotify_rm_watch`; the
//! instances and event delivery live in [`crate::fs::inotify`].

use crate::errno::{Errno, SysResult};
use crate::fs::inotify::{check_mask, InotifyFile, IN_DONT_FOLLOW, IN_ONLYDIR};
use crate::kernel::Task;
use crate::syscalls::fs_mut::target;
use crate::syscalls::pipe::install_anon;
use crate::syscalls::{file_arg, path_arg, Args};
use crate::vfs::perm::{self, MAY_READ};

fn init(task: &Task, flags: u64) -> SysResult<u64> {
    let allowed = (libc::IN_CLOEXEC | libc::IN_NONBLOCK) as u64;
    if flags & !allowed != 0 {
        return Err(Errno::EINVAL);
    }
    let files = &task.kernel.files;
    let f = InotifyFile::new(&files.inotify, &files.inos, task.creds.uid)?;
    Ok(install_anon(task, Box::new(f), libc::O_RDONLY | flags as i32)? as u64)
}

/// `inotify_init(2)`.
pub fn inotify_init(task: &mut Task, _a: &Args) -> SysResult<u64> {
    init(task, 0)
}

/// `inotify_init1(2)`.
pub fn inotify_init1(task: &mut Task, a: &Args) -> SysResult<u64> {
    init(task, a[0])
}

/// `inotify_add_watch(2)`: the mask is checked first, then the fd, then the path
/// (which needs read permission).
pub fn inotify_add_watch(task: &mut Task, a: &Args) -> SysResult<u64> {
    let mask = a[2] as u32;
    check_mask(mask)?;
    let f = file_arg(task, a[0])?;
    let ino = f
        .imp()
        .as_any()
        .and_then(|x| x.downcast_ref::<InotifyFile>())
        .ok_or(Errno::EINVAL)?;
    let path = path_arg(task, a[1])?;
    let flags = if mask & IN_DONT_FOLLOW != 0 {
        libc::AT_SYMLINK_NOFOLLOW
    } else {
        0
    };
    let d = target(task, libc::AT_FDCWD, &path, flags)?;
    let st = d.inode().stat()?;
    if mask & IN_ONLYDIR != 0 && !st.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    perm::check_on(&task.creds, &st, &**d.inode(), MAY_READ, false)?;
    Ok(ino.add_watch(&st, mask)? as u64)
}

/// `inotify_rm_watch(2)`.
pub fn inotify_rm_watch(task: &mut Task, a: &Args) -> SysResult<u64> {
    let f = file_arg(task, a[0])?;
    let ino = f
        .imp()
        .as_any()
        .and_then(|x| x.downcast_ref::<InotifyFile>())
        .ok_or(Errno::EINVAL)?;
    ino.rm_watch(a[1] as i32)?;
    Ok(0)
}
