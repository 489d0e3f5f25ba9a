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

/// What a signal does when its disposition is `SIG_DFL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    /// End the process.
    Terminate,
    /// End the process with a core dump.
    Core,
    /// Nothing.
    Ignore,
    /// Stop the process.
    Stop,
    /// Continue a stopped process.
    Continue,
}

/// Linux's default action for `sig`.
pub fn default_action(sig: u32) -> DefaultAction {
    match sig as i32 {
        libc::SIGQUIT
        | libc::SIGILL
        | libc::SIGTRAP
        | libc::SIGABRT
        | libc::SIGBUS
        | libc::SIGFPE
        | libc::SIGSEGV
        | libc::SIGXCPU
        | libc::SIGXFSZ
        | libc::SIGSYS => DefaultAction::Core,
        libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH => DefaultAction::Ignore,
        libc::SIGCONT => DefaultAction::Continue,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => DefaultAction::Stop,
        _ => DefaultAction::Terminate,
    }
}

/// Sends `sig` to the calling task itself. Only the task itself exists as a target
/// until processes arrive; delivery to a handler arrives with signal delivery, so a
/// caught signal is refused with ENOSYS (logged) rather than silently dropped.
fn signal_self(task: &mut Task, sig: u32) -> SysResult<u64> {
    if sig == 0 {
        return Ok(0);
    }
    let act = task.signals.action(sig)?;
    let blocked = task.signals.mask & crate::kernel::signals::bit(sig) != 0;
    if act.handler == crate::kernel::signals::SIG_IGN {
        return Ok(0);
    }
    if act.handler != crate::kernel::signals::SIG_DFL || blocked {
        tracing::warn!(
            sig,
            "signal to a handler or blocked signal: delivery not implemented yet (ENOSYS)"
        );
        return Err(Errno::ENOSYS);
    }
    match default_action(sig) {
        DefaultAction::Ignore | DefaultAction::Continue => Ok(0),
        DefaultAction::Stop => {
            tracing::warn!(sig, "stop signals are not implemented yet (ENOSYS)");
            Err(Errno::ENOSYS)
        }
        a => {
            task.exit = Some(crate::kernel::ExitStatus::Signaled {
                signo: sig as i32,
                core: a == DefaultAction::Core,
            });
            Ok(0)
        }
    }
}

/// Kernel-generated signal to the task itself (SIGPIPE, SIGXFSZ): takes effect as
/// the default action or is recorded as pending until delivery exists.
pub fn raise(task: &mut Task, sig: u32) {
    if let Err(e) = signal_self(task, sig) {
        tracing::debug!(sig, "raised signal not acted on: {e}");
    }
}

fn check_signal(sig: u64) -> SysResult<u32> {
    if sig > crate::kernel::signals::MAX_SIGNAL as u64 {
        return Err(Errno::EINVAL);
    }
    Ok(sig as u32)
}

/// `kill(2)`.
pub fn kill(task: &mut Task, a: &Args) -> SysResult<u64> {
    let sig = check_signal(a[1])?;
    let pid = a[0] as i32;
    // pid 0 / -1 / -pgid all include only the caller in a one-process sandbox.
    if pid == task.tgid || pid == 0 || pid == -1 || pid == -task.tgid {
        return signal_self(task, sig);
    }
    Err(Errno::ESRCH)
}

/// `tkill(2)`.
pub fn tkill(task: &mut Task, a: &Args) -> SysResult<u64> {
    let sig = check_signal(a[1])?;
    if (a[0] as i32) <= 0 {
        return Err(Errno::EINVAL);
    }
    if a[0] as i32 != task.tid {
        return Err(Errno::ESRCH);
    }
    signal_self(task, sig)
}

/// `tgkill(2)`.
pub fn tgkill(task: &mut Task, a: &Args) -> SysResult<u64> {
    let sig = check_signal(a[2])?;
    if (a[0] as i32) <= 0 || (a[1] as i32) <= 0 {
        return Err(Errno::EINVAL);
    }
    if a[0] as i32 != task.tgid || a[1] as i32 != task.tid {
        return Err(Errno::ESRCH);
    }
    signal_self(task, sig)
}
