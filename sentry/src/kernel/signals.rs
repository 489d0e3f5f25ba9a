//! Signal dispositions and masks. For now they are recorded and reported back
//! (`rt_sigaction`, `rt_sigprocmask`); delivery arrives with the processes work.

use crate::errno::{Errno, SysResult};

/// Highest signal number (`_NSIG - 1`).
pub const MAX_SIGNAL: u32 = 64;
/// `SIG_DFL`.
pub const SIG_DFL: u64 = 0;
/// `SIG_IGN`.
pub const SIG_IGN: u64 = 1;

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
    1u64 << (sig - 1)
}

/// Signals that can be neither caught nor blocked.
pub const UNBLOCKABLE: u64 = (1 << (libc::SIGKILL - 1)) | (1 << (libc::SIGSTOP - 1));

/// Per-process dispositions and the thread's mask.
#[derive(Clone, Debug)]
pub struct SignalState {
    actions: [SigAction; MAX_SIGNAL as usize],
    /// Blocked signals.
    pub mask: u64,
}

impl Default for SignalState {
    fn default() -> Self {
        SignalState {
            actions: [SigAction::default(); MAX_SIGNAL as usize],
            mask: 0,
        }
    }
}

impl SignalState {
    /// The disposition of `sig`.
    pub fn action(&self, sig: u32) -> SysResult<SigAction> {
        if sig == 0 || sig > MAX_SIGNAL {
            return Err(Errno::EINVAL);
        }
        Ok(self.actions[sig as usize - 1])
    }

    /// Replaces the disposition of `sig`; SIGKILL and SIGSTOP refuse.
    pub fn set_action(&mut self, sig: u32, act: SigAction) -> SysResult<SigAction> {
        let old = self.action(sig)?;
        if sig == libc::SIGKILL as u32 || sig == libc::SIGSTOP as u32 {
            return Err(Errno::EINVAL);
        }
        let mut act = act;
        act.mask &= !UNBLOCKABLE;
        self.actions[sig as usize - 1] = act;
        Ok(old)
    }

    /// `rt_sigprocmask`: returns the old mask.
    pub fn change_mask(&mut self, how: i32, set: u64) -> SysResult<u64> {
        let old = self.mask;
        self.mask = match how {
            libc::SIG_BLOCK => old | set,
            libc::SIG_UNBLOCK => old & !set,
            libc::SIG_SETMASK => set,
            _ => return Err(Errno::EINVAL),
        } & !UNBLOCKABLE;
        Ok(old)
    }
}
