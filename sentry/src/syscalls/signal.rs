//! Signal syscalls. Dispositions and masks are recorded and reported; delivery
//! arrives with the processes work.

use crate::errno::{Errno, SysResult};
use crate::kernel::signals::SigAction;
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::Args;

/// `rt_sigaction(2)`.
pub fn rt_sigaction(task: &mut Task, a: &Args) -> SysResult<u64> {
    if a[3] != 8 {
        return Err(Errno::EINVAL);
    }
    let sig = a[0] as u32;
    let old = task.signals.action(sig)?;
    if a[1] != 0 {
        let mut b = [0u8; SigAction::SIZE];
        io::read_exact(task.mem(), a[1], &mut b)?;
        task.signals.set_action(sig, SigAction::from_bytes(&b))?;
    }
    if a[2] != 0 {
        io::write_all(task.mem(), a[2], &old.to_bytes())?;
    }
    Ok(0)
}

/// `rt_sigprocmask(2)`.
pub fn rt_sigprocmask(task: &mut Task, a: &Args) -> SysResult<u64> {
    if a[3] != 8 {
        return Err(Errno::EINVAL);
    }
    let old = task.signals.mask;
    if a[1] != 0 {
        let set = io::read_u64(task.mem(), a[1])?;
        task.signals.change_mask(a[0] as i32, set)?;
    }
    if a[2] != 0 {
        io::write_u64(task.mem(), a[2], old)?;
    }
    Ok(0)
}
