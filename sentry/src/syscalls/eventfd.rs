//! `eventfd`, `eventfd2`.

use crate::errno::{Errno, SysResult};
use crate::fs::eventfd::EventFd;
use crate::kernel::Task;
use crate::syscalls::pipe::install_anon;
use crate::syscalls::Args;

/// `EFD_SEMAPHORE`.
const EFD_SEMAPHORE: i32 = 1;

fn create(task: &Task, init: u64, flags: i32) -> SysResult<u64> {
    if flags & !(EFD_SEMAPHORE | libc::O_NONBLOCK | libc::O_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let e = EventFd::new(
        &task.kernel.files.inos,
        init & 0xffff_ffff,
        flags & EFD_SEMAPHORE != 0,
    );
    let fl = libc::O_RDWR | (flags & (libc::O_NONBLOCK | libc::O_CLOEXEC));
    Ok(install_anon(task, Box::new(e), fl)? as u64)
}

/// `eventfd(2)`.
pub fn eventfd(task: &mut Task, a: &Args) -> SysResult<u64> {
    create(task, a[0], 0)
}

/// `eventfd2(2)`.
pub fn eventfd2(task: &mut Task, a: &Args) -> SysResult<u64> {
    create(task, a[0], a[1] as i32)
}
