//! `signalfd`, `signalfd4`.

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::fs::signalfd::{new_signalfd, signalfd_of};
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::pipe::install_anon;
use crate::syscalls::{file_arg, Args};

fn do_signalfd(task: &mut Task, fd: i32, mask_addr: u64, size: u64, flags: i32) -> SysResult<u64> {
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    if flags & !(libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    let mask = io::read_u64(task.mem(), mask_addr)?;
    if fd != -1 {
        let file = file_arg(task, fd as u64)?;
        let st = signalfd_of(&file).ok_or(Errno::EINVAL)?;
        st.set_mask(mask);
        return Ok(fd as u64);
    }
    let source = Arc::new(crate::kernel::process::GroupSignals {
        tg: task.tg.clone(),
        thread: task.handle.clone(),
    });
    let fl = libc::O_RDWR | (flags & (libc::O_NONBLOCK | libc::O_CLOEXEC));
    Ok(install_anon(
        task,
        new_signalfd(&task.kernel.files.inos, mask, source as Arc<_>),
        fl,
    )? as u64)
}

/// `signalfd(2)`.
pub fn signalfd(task: &mut Task, a: &Args) -> SysResult<u64> {
    do_signalfd(task, a[0] as i32, a[1], a[2], 0)
}

/// `signalfd4(2)`.
pub fn signalfd4(task: &mut Task, a: &Args) -> SysResult<u64> {
    do_signalfd(task, a[0] as i32, a[1], a[2], a[3] as i32)
}
