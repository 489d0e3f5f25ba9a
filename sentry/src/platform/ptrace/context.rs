//! A context: one stub thread, run with `PTRACE_SYSEMU` until the next event; and the
//! hand-over of new stub threads and forked stubs between host threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use crate::errno::{Errno, SysResult};
use crate::platform::{AddressSpace, Context, Event, Interrupter, PendingContext, Regs};

use super::space::{PtraceSpace, FAULT_SIGNALS};
use super::sys::{self, ThreadSignaller, NT_PRFPREG, NT_X86_XSTATE};

/// The signal [`Interrupter::interrupt`] sends to a running stub. Stubs have no
/// handlers; the signal only produces a ptrace stop and is suppressed on resume.
pub(super) use crate::platform::common::INTERRUPT_SIGNAL;

/// `si_code` the kernel uses for faults it raises itself (e.g. a general protection
/// fault).
use abi::signal::SI_KERNEL;

/// Large enough for any XSAVE layout the kernel reports (AMX included); the kernel
/// trims the iovec to the real size.
const XSTATE_BUF: usize = 32 * 1024;
/// The legacy FXSAVE area.
const FXSAVE_SIZE: usize = 512;

/// The context of one stub thread, driven by the host thread that traces it.
pub(super) struct PtraceContext {
    space: Arc<PtraceSpace>,
    /// The stub thread.
    tid: i32,
    /// The host thread that traces it.
    tracer: i32,
    intr: Arc<PtraceInterrupter>,
    /// Whether the host supports the XSAVE register set (decided on first use).
    xstate: Option<bool>,
}

impl PtraceContext {
    /// The context of stub thread `tid`, traced by the calling host thread.
    pub(super) fn new(space: Arc<PtraceSpace>, tid: i32) -> SysResult<Self> {
        let intr = Arc::new(PtraceInterrupter {
            space: Arc::downgrade(&space),
            thread: ThreadSignaller::new(space.pid, tid)?,
            pending: AtomicBool::new(false),
            running: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        Ok(PtraceContext {
            space,
            tid,
            tracer: sys::gettid(),
            intr,
            xstate: None,
        })
    }

    /// Errors unless called on the tracer with the stub alive.
    fn check(&self) -> SysResult<()> {
        if self.space.dead.load(Ordering::SeqCst) {
            return Err(Errno::ESRCH);
        }
        let tid = sys::gettid();
        if tid != self.tracer {
            tracing::error!(
                tid,
                tracer = self.tracer,
                "ptrace context used from a thread that does not trace its stub thread"
            );
            return Err(Errno::EPERM);
        }
        Ok(())
    }

    fn died(&self, e: Errno) -> Errno {
        self.space.died(self.tid, e)
    }

    fn run(&mut self, regs: &mut Regs) -> SysResult<Event> {
        let tid = self.tid;
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
        sys::set_regs(tid, &r).map_err(|e| self.died(e))?;
        sys::ptrace_plain(libc::PTRACE_SYSEMU, tid, 0, 0).map_err(|e| self.died(e))?;
        let (sig, event) = self.space.wait_stop(tid)?;
        sys::get_regs(tid, regs).map_err(|e| self.died(e))?;
        if sig == libc::SIGTRAP | 0x80 {
            if !sys::syscall_is_64bit(tid).map_err(|e| self.died(e))? {
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
            let si = sys::get_siginfo(tid).map_err(|e| self.died(e))?;
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
        self.check()?;
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
        self.check()?;
        let tid = self.tid;
        if self.xstate != Some(false) {
            let mut buf = vec![0u8; XSTATE_BUF];
            match sys::get_regset(tid, NT_X86_XSTATE, &mut buf) {
                Ok(n) => {
                    self.xstate = Some(true);
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(e) if e == Errno::EINVAL || e == Errno::ENODEV || e == Errno::EIO => {
                    self.xstate = Some(false);
                }
                Err(e) => return Err(self.died(e)),
            }
        }
        let mut buf = vec![0u8; FXSAVE_SIZE];
        let n = sys::get_regset(tid, NT_PRFPREG, &mut buf).map_err(|e| self.died(e))?;
        buf.truncate(n);
        Ok(buf)
    }

    fn set_fp_state(&mut self, state: &[u8]) -> SysResult<()> {
        self.check()?;
        let note = if state.len() == FXSAVE_SIZE {
            NT_PRFPREG
        } else if state.len() > FXSAVE_SIZE {
            NT_X86_XSTATE
        } else {
            return Err(Errno::EINVAL);
        };
        // The kernel wants the XSAVE image in exactly its own size (EFAULT otherwise).
        sys::set_regset(self.tid, note, state).map_err(|e| match e {
            Errno::EFAULT => Errno::EINVAL,
            e => self.died(e),
        })
    }

    fn interrupter(&self) -> Arc<dyn Interrupter> {
        self.intr.clone()
    }

    /// A remote fork in this context's stub thread; the child is handed over to the
    /// adopting host thread (see the module docs).
    fn fork(&mut self) -> SysResult<(Arc<dyn AddressSpace>, Box<dyn PendingContext>)> {
        self.check()?;
        let child = Arc::new(self.space.fork_from(self.tid)?);
        self.space.shared.register(&child);
        let tid = child.pid;
        let space: Arc<dyn AddressSpace> = child.clone();
        Ok((
            space,
            Box::new(PendingThread {
                space: Some(child),
                tid,
            }),
        ))
    }

    /// A remote thread clone in this context's stub thread, handed over to the
    /// adopting host thread.
    fn new_thread(&mut self) -> SysResult<Box<dyn PendingContext>> {
        self.check()?;
        let tid = self.space.new_thread_from(self.tid)?;
        Ok(Box::new(PendingThread {
            space: Some(self.space.clone()),
            tid,
        }))
    }
}

impl Drop for PtraceContext {
    fn drop(&mut self) {
        self.intr.closed.store(true, Ordering::SeqCst);
        self.space.unregister(self.tracer);
        if sys::gettid() != self.tracer {
            // Only the tracer can end the thread; the space's Drop kills it with the
            // rest of the stub.
            tracing::error!(
                tid = self.tid,
                tracer = self.tracer,
                "ptrace context dropped away from its host thread"
            );
            return;
        }
        if Arc::strong_count(&self.space) == 1 {
            // The last user of the space: its Drop kills the whole stub at once.
            return;
        }
        self.space.end_thread(self.tid);
    }
}

/// A stub thread parked for adoption: a new thread of a space, or the only thread
/// of a forked space.
struct PendingThread {
    /// Taken by `adopt`.
    space: Option<Arc<PtraceSpace>>,
    tid: i32,
}

impl PendingContext for PendingThread {
    fn adopt(mut self: Box<Self>) -> SysResult<Box<dyn Context>> {
        let space = self.space.take().ok_or(Errno::EINVAL)?;
        space.adopt(self.tid)?;
        match PtraceContext::new(space.clone(), self.tid) {
            Ok(ctx) => Ok(Box::new(ctx)),
            Err(e) => {
                space.unregister(sys::gettid());
                space.end_thread(self.tid);
                Err(e)
            }
        }
    }
}

impl Drop for PendingThread {
    fn drop(&mut self) {
        let Some(space) = self.space.take() else {
            return;
        };
        if Arc::strong_count(&space) == 1 {
            // The space goes too: its Drop kills the parked thread with the stub.
            return;
        }
        // The space lives on: end just this thread, from here.
        if space.attach(self.tid).is_ok() {
            space.end_thread(self.tid);
        }
    }
}

/// Interrupts a [`PtraceContext`] from any thread.
pub(super) struct PtraceInterrupter {
    space: Weak<PtraceSpace>,
    /// Signals exactly the context's stub thread.
    thread: ThreadSignaller,
    /// An interruption was requested and not yet reported.
    pending: AtomicBool,
    /// The context is inside `switch` (the stub may be running).
    running: AtomicBool,
    /// The context is gone: its thread id means nothing any more.
    closed: AtomicBool,
}

impl Interrupter for PtraceInterrupter {
    fn interrupt(&self) {
        // Flag first, then look at `running`: either the switch sees the flag before
        // resuming, or we see it running and the signal stops it (or both, and the
        // next switch reports one extra, harmless, interruption).
        self.pending.store(true, Ordering::SeqCst);
        if !self.running.load(Ordering::SeqCst) || self.closed.load(Ordering::SeqCst) {
            return;
        }
        let Some(space) = self.space.upgrade() else {
            return;
        };
        if space.dead.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = self.thread.signal(INTERRUPT_SIGNAL) {
            tracing::debug!(pid = space.pid, error = %e.name(), "interrupting ptrace stub");
        }
    }
}
