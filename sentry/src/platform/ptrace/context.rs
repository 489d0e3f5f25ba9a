//! A context: the stub's thread, run with `PTRACE_SYSEMU` until the next event.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use crate::errno::{Errno, SysResult};
use crate::platform::{Context, Event, Interrupter, Regs};

use super::space::{PtraceSpace, FAULT_SIGNALS};
use super::sys::{self, NT_PRFPREG, NT_X86_XSTATE};

/// The signal [`Interrupter::interrupt`] sends to a running stub. Stubs have no
/// handlers; the signal only produces a ptrace stop and is suppressed on resume.
pub(super) const INTERRUPT_SIGNAL: i32 = libc::SIGUSR2;

/// `si_code` the kernel uses for faults it raises itself (e.g. a general protection
/// fault).
const SI_KERNEL: i32 = 0x80;

/// Large enough for any XSAVE layout the kernel reports (AMX included); the kernel
/// trims the iovec to the real size.
const XSTATE_BUF: usize = 32 * 1024;
/// The legacy FXSAVE area.
const FXSAVE_SIZE: usize = 512;

/// The single context of a stub.
pub(super) struct PtraceContext {
    space: Arc<PtraceSpace>,
    intr: Arc<PtraceInterrupter>,
    /// Whether the host supports the XSAVE register set (decided on first use).
    xstate: Option<bool>,
}

impl PtraceContext {
    pub(super) fn new(space: Arc<PtraceSpace>) -> Self {
        let intr = Arc::new(PtraceInterrupter {
            space: Arc::downgrade(&space),
            pending: AtomicBool::new(false),
            running: AtomicBool::new(false),
        });
        PtraceContext {
            space,
            intr,
            xstate: None,
        }
    }

    fn run(&mut self, regs: &mut Regs) -> SysResult<Event> {
        let pid = self.space.pid;
        let mut r = *regs;
        // Never let the host kernel restart a "syscall" on its own when it suppresses a
        // signal: restarts are the sentry's business.
        r.orig_rax = u64::MAX;
        // Fresh register sets built by the sentry may leave selectors zero, which
        // SETREGS refuses; use the stub's.
        if r.cs == 0 {
            r.cs = self.space.initial_regs.cs;
        }
        if r.ss == 0 {
            r.ss = self.space.initial_regs.ss;
        }
        sys::set_regs(pid, &r).map_err(|e| self.space.died(e))?;
        sys::ptrace_plain(libc::PTRACE_SYSEMU, pid, 0, 0).map_err(|e| self.space.died(e))?;
        let (sig, event) = self.space.wait_stop()?;
        sys::get_regs(pid, regs).map_err(|e| self.space.died(e))?;
        if sig == libc::SIGTRAP | 0x80 {
            if !sys::syscall_is_64bit(pid)? {
                // `int $0x80`: 32-bit system calls are not supported. Report what a
                // kernel without IA-32 emulation would: a #GP at the instruction.
                regs.rip = regs.rip.wrapping_sub(2);
                regs.rax = regs.orig_rax;
                regs.orig_rax = u64::MAX;
                return Ok(Event::Fault {
                    signo: libc::SIGSEGV,
                    code: SI_KERNEL,
                    addr: 0,
                });
            }
            return Ok(Event::Syscall);
        }
        if event != 0 {
            return Ok(Event::Interrupted);
        }
        if FAULT_SIGNALS.contains(&sig) {
            let si = sys::get_siginfo(pid).map_err(|e| self.space.died(e))?;
            // A positive si_code means the kernel raised it for an instruction; zero or
            // negative codes are signals someone sent, which are only interruptions.
            if si.si_code > 0 {
                // SAFETY: for these signals with a kernel si_code, the union holds the
                // fault fields, so si_addr is the member to read.
                let addr = unsafe { si.si_addr() } as u64;
                return Ok(Event::Fault {
                    signo: sig,
                    code: si.si_code,
                    addr,
                });
            }
        }
        if sig == INTERRUPT_SIGNAL {
            self.intr.pending.store(false, Ordering::SeqCst);
        }
        Ok(Event::Interrupted)
    }
}

impl Context for PtraceContext {
    fn switch(&mut self, regs: &mut Regs) -> SysResult<Event> {
        self.space.check_tracer()?;
        self.intr.running.store(true, Ordering::SeqCst);
        if self.intr.pending.swap(false, Ordering::SeqCst) {
            self.intr.running.store(false, Ordering::SeqCst);
            return Ok(Event::Interrupted);
        }
        let r = self.run(regs);
        self.intr.running.store(false, Ordering::SeqCst);
        r
    }

    fn fp_state(&mut self) -> SysResult<Vec<u8>> {
        self.space.check_tracer()?;
        let pid = self.space.pid;
        if self.xstate != Some(false) {
            let mut buf = vec![0u8; XSTATE_BUF];
            match sys::get_regset(pid, NT_X86_XSTATE, &mut buf) {
                Ok(n) => {
                    self.xstate = Some(true);
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(e) if e == Errno::EINVAL || e == Errno::ENODEV || e == Errno::EIO => {
                    self.xstate = Some(false);
                }
                Err(e) => return Err(self.space.died(e)),
            }
        }
        let mut buf = vec![0u8; FXSAVE_SIZE];
        let n = sys::get_regset(pid, NT_PRFPREG, &mut buf).map_err(|e| self.space.died(e))?;
        buf.truncate(n);
        Ok(buf)
    }

    fn set_fp_state(&mut self, state: &[u8]) -> SysResult<()> {
        self.space.check_tracer()?;
        let note = if state.len() == FXSAVE_SIZE {
            NT_PRFPREG
        } else if state.len() > FXSAVE_SIZE {
            NT_X86_XSTATE
        } else {
            return Err(Errno::EINVAL);
        };
        // The kernel wants the XSAVE image in exactly its own size (EFAULT otherwise).
        sys::set_regset(self.space.pid, note, state).map_err(|e| match e {
            Errno::EFAULT => Errno::EINVAL,
            e => self.space.died(e),
        })
    }

    fn interrupter(&self) -> Arc<dyn Interrupter> {
        self.intr.clone()
    }
}

/// Interrupts a [`PtraceContext`] from any thread.
pub(super) struct PtraceInterrupter {
    space: Weak<PtraceSpace>,
    /// An interruption was requested and not yet reported.
    pending: AtomicBool,
    /// The context is inside `switch` (the stub may be running).
    running: AtomicBool,
}

impl Interrupter for PtraceInterrupter {
    fn interrupt(&self) {
        // Flag first, then look at `running`: either the switch sees the flag before
        // resuming, or we see it running and the signal stops it (or both, and the
        // next switch reports one extra, harmless, interruption).
        self.pending.store(true, Ordering::SeqCst);
        if !self.running.load(Ordering::SeqCst) {
            return;
        }
        let Some(space) = self.space.upgrade() else {
            return;
        };
        if space.reaped.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = sys::pidfd_signal(&space.pidfd, INTERRUPT_SIGNAL) {
            tracing::debug!(pid = space.pid, error = %e.name(), "interrupting ptrace stub");
        }
    }
}
