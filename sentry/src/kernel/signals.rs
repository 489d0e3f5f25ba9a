//! Signal state: dispositions (shared by the threads of a process), per-thread masks
//! and pending queues, and the `siginfo` that travels with each signal.

use std::collections::VecDeque;

use crate::errno::{Errno, SysResult};

/// Highest signal number (`_NSIG - 1`).
pub const MAX_SIGNAL: u32 = 64;
/// First real-time signal.
pub const SIGRTMIN: u32 = 32;
pub use abi::signal::{
    SA_NOCLDSTOP, SA_NOCLDWAIT, SA_NODEFER, SA_ONSTACK, SA_RESETHAND, SA_RESTART, SA_RESTORER,
    SA_SIGINFO, SIG_DFL, SIG_IGN,
};

/// `si_code` values.
pub mod code {
    pub use abi::signal::{
        CLD_CONTINUED, CLD_DUMPED, CLD_EXITED, CLD_KILLED, CLD_STOPPED, SI_KERNEL, SI_QUEUE,
        SI_TIMER, SI_TKILL, SI_USER,
    };
}

/// The kernel's `struct sigaction` on x86-64 (not glibc's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    /// Handler address, `SIG_DFL` or `SIG_IGN`.
    pub handler: u64,
    /// `SA_*` flags.
    pub flags: u64,
    /// `sa_restorer`.
    pub restorer: u64,
    /// Signals blocked while the handler runs.
    pub mask: u64,
}

impl SigAction {
    /// Size of the kernel struct.
    pub const SIZE: usize = 32;

    /// Decodes the kernel layout.
    pub fn from_bytes(b: &[u8; 32]) -> Self {
        let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        SigAction {
            handler: w(0),
            flags: w(1),
            restorer: w(2),
            mask: w(3),
        }
    }

    /// Encodes the kernel layout.
    pub fn to_bytes(self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, v) in [self.handler, self.flags, self.restorer, self.mask]
            .iter()
            .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }
}

/// The bit of signal `sig` in a 64-bit mask.
pub fn bit(sig: u32) -> u64 {
    if sig == 0 || sig > MAX_SIGNAL {
        0
    } else {
        1u64 << (sig - 1)
    }
}

/// Signals that can be neither caught nor blocked.
pub const UNBLOCKABLE: u64 = (1 << (libc::SIGKILL - 1)) | (1 << (libc::SIGSTOP - 1));

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

/// One signal with the information that travels with it (`siginfo_t`).
pub use abi::signal::SigInfo;

/// `info` as a receiver in pid namespace `ns` sees it: the sender's id (of a
/// `kill`, `tkill` or a child's SIGCHLD, which the sandbox records by its sandbox
/// id) in `ns`, 0 for a sender outside it.
pub fn seen_in(mut info: SigInfo, ns: &crate::kernel::ns::PidNs) -> SigInfo {
    let child = info.signo == libc::SIGCHLD && (1..=6).contains(&info.code);
    if info.code == code::SI_USER || info.code == code::SI_TKILL || child {
        info.pid = ns.shown(info.pid);
    }
    info
}

/// Pending signals: standard signals are queued once, real-time ones every time.
#[derive(Clone, Debug, Default)]
pub struct SigQueue {
    queue: VecDeque<SigInfo>,
}

/// Most real-time signals queued per task before `EAGAIN` (RLIMIT_SIGPENDING-like).
const MAX_QUEUED: usize = 1024;

impl SigQueue {
    /// Adds a signal; a standard signal already pending is not queued twice.
    pub fn push(&mut self, info: SigInfo) -> SysResult<()> {
        let sig = info.signo as u32;
        if sig < SIGRTMIN && self.queue.iter().any(|i| i.signo == info.signo) {
            return Ok(());
        }
        if self.queue.len() >= MAX_QUEUED {
            return Err(Errno::EAGAIN);
        }
        self.queue.push_back(info);
        Ok(())
    }

    /// The set of pending signals.
    pub fn set(&self) -> u64 {
        self.queue.iter().fold(0, |m, i| m | bit(i.signo as u32))
    }

    /// Takes the lowest-numbered pending signal not in `blocked` (synchronous
    /// signals first, as Linux prefers them).
    pub fn take(&mut self, blocked: u64) -> Option<SigInfo> {
        let deliverable = self.set() & !blocked;
        if deliverable == 0 {
            return None;
        }
        const SYNC: u64 = (1 << (libc::SIGSEGV - 1))
            | (1 << (libc::SIGBUS - 1))
            | (1 << (libc::SIGILL - 1))
            | (1 << (libc::SIGTRAP - 1))
            | (1 << (libc::SIGFPE - 1))
            | (1 << (libc::SIGSYS - 1));
        let pick = if deliverable & SYNC != 0 {
            deliverable & SYNC
        } else {
            deliverable
        };
        let sig = pick.trailing_zeros() as i32 + 1;
        let pos = self.queue.iter().position(|i| i.signo == sig)?;
        self.queue.remove(pos)
    }

    /// Takes the first pending signal from `set` (sigtimedwait).
    pub fn take_from(&mut self, set: u64) -> Option<SigInfo> {
        self.take(!set)
    }

    /// Drops every pending instance of `sig` (it became ignored, or SIGCONT/stop
    /// interplay).
    pub fn discard(&mut self, sig: u32) {
        self.queue.retain(|i| i.signo as u32 != sig);
    }

    /// True if nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// The dispositions of a process's signals (shared by its threads).
#[derive(Clone, Debug)]
pub struct SignalActions {
    actions: [SigAction; MAX_SIGNAL as usize],
}

impl Default for SignalActions {
    fn default() -> Self {
        SignalActions {
            actions: [SigAction::default(); MAX_SIGNAL as usize],
        }
    }
}

impl SignalActions {
    /// The disposition of `sig`.
    pub fn get(&self, sig: u32) -> SysResult<SigAction> {
        if sig == 0 || sig > MAX_SIGNAL {
            return Err(Errno::EINVAL);
        }
        Ok(self.actions[sig as usize - 1])
    }

    /// Replaces the disposition of `sig`; SIGKILL and SIGSTOP refuse.
    pub fn set(&mut self, sig: u32, act: SigAction) -> SysResult<SigAction> {
        let old = self.get(sig)?;
        if sig == libc::SIGKILL as u32 || sig == libc::SIGSTOP as u32 {
            return Err(Errno::EINVAL);
        }
        let mut act = act;
        act.mask &= !UNBLOCKABLE;
        self.actions[sig as usize - 1] = act;
        Ok(old)
    }

    /// True if `sig` would be ignored if delivered now.
    pub fn ignores(&self, sig: u32) -> bool {
        match self.get(sig) {
            Ok(a) if a.handler == SIG_IGN => true,
            Ok(a) if a.handler == SIG_DFL => default_action(sig) == DefaultAction::Ignore,
            _ => false,
        }
    }

    /// After exec: handled signals go back to their default; ignored stay ignored.
    pub fn reset_for_exec(&mut self) {
        for a in self.actions.iter_mut() {
            if a.handler != SIG_IGN {
                *a = SigAction::default();
            }
        }
    }
}

/// A thread's alternate signal stack (`sigaltstack`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AltStack {
    /// Base.
    pub sp: u64,
    /// `SS_*` flags as set (SS_AUTODISARM).
    pub flags: i32,
    /// Size.
    pub size: u64,
}

/// `SS_ONSTACK`.
pub const SS_ONSTACK: i32 = 1;
/// `SS_DISABLE`.
pub const SS_DISABLE: i32 = 2;
/// `SS_AUTODISARM`.
pub const SS_AUTODISARM: i32 = 1 << 31;
/// `MINSIGSTKSZ` on x86-64.
pub const MINSIGSTKSZ: u64 = 2048;

impl AltStack {
    /// True if configured.
    pub fn enabled(&self) -> bool {
        self.size != 0 && self.flags & SS_DISABLE == 0
    }

    /// True if `sp` is on this stack.
    pub fn contains(&self, sp: u64) -> bool {
        self.enabled() && sp > self.sp && sp <= self.sp.wrapping_add(self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_rules() {
        let mut q = SigQueue::default();
        q.push(SigInfo::kernel(libc::SIGUSR1)).unwrap();
        q.push(SigInfo::kernel(libc::SIGUSR1)).unwrap();
        q.push(SigInfo::kernel(40)).unwrap();
        q.push(SigInfo::kernel(40)).unwrap();
        q.push(SigInfo::kernel(libc::SIGSEGV)).unwrap();
        assert_eq!(
            q.take(0).map(|i| i.signo),
            Some(libc::SIGSEGV),
            "synchronous first"
        );
        assert_eq!(q.take(bit(libc::SIGUSR1 as u32)).map(|i| i.signo), Some(40));
        assert_eq!(q.take(0).map(|i| i.signo), Some(libc::SIGUSR1));
        assert_eq!(q.take(0).map(|i| i.signo), Some(40));
        assert!(q.take(0).is_none());
        let mut a = SignalActions::default();
        assert_eq!(
            a.set(libc::SIGKILL as u32, SigAction::default()),
            Err(Errno::EINVAL)
        );
        assert!(a.ignores(libc::SIGCHLD as u32));
        assert!(!a.ignores(libc::SIGTERM as u32));
        let si = SigInfo {
            signo: 11,
            code: 1,
            addr: 0xdead,
            ..Default::default()
        };
        assert_eq!(&si.to_bytes()[16..24], &0xdeadu64.to_le_bytes());
    }
}
