//! `pipe`, `pipe2`, and the helper that installs a new anonymous file in the fd table
//! (shared by eventfd, timerfd, signalfd and epoll).

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::fs::pipe::new_pipe;
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::Args;
use crate::vfs::{FileImpl, OpenFile, Owner};

/// Installs `imp` as a new fd with `open(2)`-style `flags` (access mode, `O_NONBLOCK`,
/// `O_CLOEXEC`).
pub fn install_anon(task: &Task, imp: Box<dyn FileImpl>, flags: i32) -> SysResult<i32> {
    let file = OpenFile::new(imp, None, flags);
    install_file(task, file, flags & libc::O_CLOEXEC != 0)
}

/// Installs an open file at the lowest free fd, within `RLIMIT_NOFILE`.
pub fn install_file(task: &Task, file: Arc<OpenFile>, cloexec: bool) -> SysResult<i32> {
    let limit = task.limits()?.soft(libc::RLIMIT_NOFILE);
    task.fds()?.insert(file, cloexec, limit)
}

/// The owner new anonymous files get.
pub fn owner_of(task: &Task) -> Owner {
    Owner {
        uid: task.creds.euid,
        gid: task.creds.egid,
    }
}

fn do_pipe(task: &mut Task, addr: u64, flags: i32) -> SysResult<u64> {
    // O_NOTIFICATION_PIPE (O_EXCL) needs watch queues, which the sentry lacks.
    if flags & !(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_DIRECT) != 0 {
        return Err(Errno::EINVAL);
    }
    let (r, w) = new_pipe(&task.kernel.files.inos, owner_of(task))?;
    let keep = flags & (libc::O_NONBLOCK | libc::O_DIRECT | libc::O_CLOEXEC);
    let r = OpenFile::new(r, None, libc::O_RDONLY | keep);
    let w = OpenFile::new(w, None, libc::O_WRONLY | keep);
    install_pair(task, r, w, keep & libc::O_CLOEXEC != 0, addr)
}

/// Installs two new files and writes their fds as `int[2]` at `addr`; on any
/// failure neither stays installed (pipe2, socketpair).
pub fn install_pair(
    task: &Task,
    a: Arc<OpenFile>,
    b: Arc<OpenFile>,
    cloexec: bool,
    addr: u64,
) -> SysResult<u64> {
    let fa = install_file(task, a, cloexec)?;
    let fb = match install_file(task, b, cloexec) {
        Ok(fd) => fd,
        Err(e) => {
            drop(task.fds()?.remove(fa));
            return Err(e);
        }
    };
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&fa.to_le_bytes());
    buf[4..].copy_from_slice(&fb.to_le_bytes());
    if let Err(e) = io::write_all(task.mem(), addr, &buf) {
        let files = {
            let mut fds = task.fds()?;
            (fds.remove(fa), fds.remove(fb))
        };
        drop(files);
        return Err(e);
    }
    Ok(0)
}

/// `pipe(2)`.
pub fn pipe(task: &mut Task, a: &Args) -> SysResult<u64> {
    do_pipe(task, a[0], 0)
}

/// `pipe2(2)`.
pub fn pipe2(task: &mut Task, a: &Args) -> SysResult<u64> {
    do_pipe(task, a[0], a[1] as i32)
}
