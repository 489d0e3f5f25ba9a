//! ptrace between the sandbox's own tasks. Nothing here touches host ptrace: a tracee
//! is a task whose sentry thread parks itself in a *ptrace-stop* (syscall entry or
//! exit, signal delivery, group stop, a `PTRACE_EVENT_*`), publishing its registers,
//! FP state, siginfo and address space in its [`Tracee`] record; the tracer's
//! `ptrace(2)` calls read and change that record, and a resume request wakes the
//! tracee, which takes the (possibly edited) registers back and goes on.
//!
//! The link lives on both sides: the tracee's [`Tracee::tracer`] (a tgid) and the
//! tracer process's [`crate::kernel::process::GroupState::tracees`], which `wait4`
//! scans for stops and for the exits of tracees that are not its children.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::errno::Errno;
use crate::kernel::process::{self, ThreadGroup, ThreadHandle};
use crate::kernel::signals::{self, SigInfo};
use crate::kernel::{ExitStatus, Kernel, Task};
use crate::platform::{AddressSpace, Regs};

/// `PTRACE_O_TRACESYSGOOD`: syscall stops report `SIGTRAP | 0x80`.
pub const O_TRACESYSGOOD: u32 = 1;
/// `PTRACE_O_EXITKILL`: SIGKILL every tracee when the tracer exits.
pub const O_EXITKILL: u32 = 1 << 20;
/// `PTRACE_O_SUSPEND_SECCOMP`.
pub const O_SUSPEND_SECCOMP: u32 = 1 << 21;
/// Every option `PTRACE_SETOPTIONS` accepts.
pub const O_MASK: u32 = 0xff | O_EXITKILL | O_SUSPEND_SECCOMP;

/// `PTRACE_EVENT_FORK`.
pub const EVENT_FORK: u32 = 1;
/// `PTRACE_EVENT_VFORK`.
pub const EVENT_VFORK: u32 = 2;
/// `PTRACE_EVENT_CLONE`.
pub const EVENT_CLONE: u32 = 3;
/// `PTRACE_EVENT_EXEC`.
pub const EVENT_EXEC: u32 = 4;
/// `PTRACE_EVENT_VFORK_DONE`.
pub const EVENT_VFORK_DONE: u32 = 5;
/// `PTRACE_EVENT_EXIT`.
pub const EVENT_EXIT: u32 = 6;
/// `PTRACE_EVENT_STOP` (seized tracees: group stops, `PTRACE_INTERRUPT`, new children).
pub const EVENT_STOP: u32 = 128;

/// `si_code` of `SIGCHLD` for a ptrace stop.
pub use abi::signal::CLD_TRAPPED;
/// `si_code` of a SIGTRAP from a single step.
use abi::signal::TRAP_TRACE;

/// Which ptrace-stop a tracee is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopKind {
    /// Syscall-enter stop.
    SyscallEntry,
    /// Syscall-exit stop.
    SyscallExit,
    /// Signal-delivery stop.
    Signal,
    /// A `PTRACE_EVENT_*` stop (including `PTRACE_EVENT_STOP` for interrupts).
    Event(u32),
    /// Group stop (a stop signal took effect).
    Group,
}

/// How the tracer resumed the tracee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// `PTRACE_CONT` (and `PTRACE_DETACH`).
    Cont,
    /// `PTRACE_SYSCALL`: stop at the next syscall entry or exit.
    Syscall,
    /// `PTRACE_SINGLESTEP`: stop after one instruction.
    Step,
    /// `PTRACE_LISTEN`: stay stopped, report the next event.
    Listen,
}

/// A tracee parked in a ptrace-stop, as the tracer sees it.
pub struct Stop {
    /// Which stop.
    pub kind: StopKind,
    /// The stop part of the wait status (`signal | event << 8`; the status is
    /// `word << 8 | 0x7f`).
    pub word: i32,
    /// Already reported by `wait`.
    pub reported: bool,
    /// The tracee's registers; written back when it resumes.
    pub regs: Regs,
    /// Its FP state (XSAVE layout); written back if `fp_dirty`.
    pub fp: Vec<u8>,
    /// The tracer changed `fp`.
    pub fp_dirty: bool,
    /// `PTRACE_GETSIGINFO`'s answer (none for a group stop).
    pub siginfo: Option<SigInfo>,
    /// The tracee's memory.
    pub space: Arc<dyn AddressSpace>,
    /// A forced write for the tracee's own thread to make (a platform may only
    /// change page protections from the thread that drives the space).
    pub poke: Option<PokeRequest>,
    /// The outcome of the last `poke`.
    pub poke_result: Option<Result<(), Errno>>,
    /// Set by the tracer: how to go on, with which signal.
    pub resume: Option<(Resume, i32)>,
}

/// One thread's ptrace state.
#[derive(Default)]
pub struct Tracee {
    /// The tracing process (tgid), 0 when untraced.
    pub tracer: i32,
    /// Attached with `PTRACE_SEIZE`.
    pub seized: bool,
    /// `PTRACE_SETOPTIONS`.
    pub options: u32,
    /// How the tracer last resumed it (syscall stops only follow `PTRACE_SYSCALL`).
    pub mode: Option<Resume>,
    /// The ptrace-stop it is in, if any.
    pub stop: Option<Stop>,
    /// `PTRACE_GETEVENTMSG`.
    pub event_msg: u64,
    /// `PTRACE_INTERRUPT` (or a seize of a stopped task) not yet acted on.
    pub interrupt: bool,
    /// The thread has exited and the tracer (not its parent) has yet to be told.
    pub exited: Option<ExitStatus>,
    /// Its process (for wait's process-group selection and the tracer's reap).
    pub tg: Option<std::sync::Weak<ThreadGroup>>,
    /// The siginfo of the last stop as the tracer left it (`PTRACE_SETSIGINFO`).
    pub last_siginfo: Option<SigInfo>,
}

impl Tracee {
    /// The tracer resumed it (or gave it up).
    fn released(&self) -> bool {
        self.stop.as_ref().is_none_or(|s| s.resume.is_some())
    }
}

/// A `PTRACE_POKETEXT` into memory that is not writable, served by the tracee.
pub struct PokeRequest {
    /// Where.
    pub addr: u64,
    /// The word.
    pub data: [u8; 8],
    /// Wakes the tracer once `poke_result` is set.
    pub waker: Arc<crate::kernel::wait::Waker>,
}

/// Writes `buf` at `addr` of a stopped tracee as a debugger may (Linux's
/// FOLL_FORCE): a private mapping is written even where it is not writable (a
/// breakpoint in program text). The host maps private memory copy-on-write, so
/// the file behind it never changes; the pages get their protection back at once.
/// Only a thread of the process that owns `space` may call it.
pub(crate) fn force_write(
    space: &Arc<dyn AddressSpace>,
    mm: &std::sync::Mutex<crate::mm::MemoryManager>,
    addr: u64,
    buf: &[u8],
) -> Result<(), Errno> {
    if crate::mm::io::write_all(&**space, addr, buf).is_ok() {
        return Ok(());
    }
    let end = addr.checked_add(buf.len() as u64).ok_or(Errno::EIO)?;
    let mm = mm.lock().map_err(|_| Errno::EIO)?;
    let first = crate::platform::page_round_down(addr);
    let mut pages = Vec::new();
    let mut p = first;
    while p < end {
        let vma = mm.vma_at(p).ok_or(Errno::EIO)?;
        if vma.shared || vma.prot & libc::PROT_READ == 0 {
            return Err(Errno::EIO);
        }
        pages.push((p, vma.prot));
        p += 4096;
    }
    for &(p, prot) in &pages {
        space.protect(p, 4096, prot | libc::PROT_WRITE)?;
    }
    let r = crate::mm::io::write_all(&**space, addr, buf);
    for &(p, prot) in &pages {
        space.protect(p, 4096, prot)?;
    }
    r.map_err(|_| Errno::EIO)
}

/// A `PTRACE_POKETEXT` into memory that is not writable, by the tracer thread `me`
/// of process `my_tg`: the stopped tracee `h` makes the write (see [`PokeRequest`])
/// while the tracer waits. Also used by writes to `/proc/PID/mem`.
pub fn forced_poke_by(
    me: &ThreadHandle,
    my_tg: &ThreadGroup,
    h: &ThreadHandle,
    addr: u64,
    data: u64,
) -> crate::errno::SysResult<u64> {
    {
        let mut t = h.ptrace.lock().map_err(|_| Errno::EIO)?;
        match t.stop.as_mut() {
            Some(s) if s.resume.is_none() => {
                s.poke_result = None;
                s.poke = Some(PokeRequest {
                    addr,
                    data: data.to_le_bytes(),
                    waker: me.waker.clone(),
                });
            }
            _ => return Err(Errno::ESRCH),
        }
    }
    h.waker.wake();
    // The tracee's end (exit, SIGKILL) is announced on this queue too.
    let _reg = my_tg.child_events.register(&me.waker);
    let r = crate::kernel::wait::block(
        &me.waker,
        None,
        || me.killed.load(Ordering::Acquire),
        || {
            let mut t = h.ptrace.lock().map_err(|_| Errno::EIO)?;
            match t.stop.as_mut() {
                // Killed or let go meanwhile.
                None => Err(Errno::ESRCH),
                Some(s) => Ok(s.poke_result.take()),
            }
        },
    );
    match r {
        Ok(Ok(res)) => res.map(|_| 0).map_err(|_| Errno::EIO),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Errno::EINTR),
    }
}

/// The `wait` status of a stop word.
pub fn stop_status(word: i32) -> i32 {
    (word << 8) | 0x7f
}

/// Tells tracer process `tracer` that one of its tracees has something to report:
/// its waiters wake, and it gets `SIGCHLD` (`CLD_TRAPPED`) unless it set SA_NOCLDSTOP.
pub fn notify_tracer(kernel: &Kernel, tracer: i32, tid: i32, uid: u32, code: i32, status: i32) {
    let Some(ttg) = kernel.registry().ok().and_then(|r| r.group(tracer)) else {
        return;
    };
    ttg.child_events.notify_all();
    ttg.events.notify_all();
    let nocldstop = ttg
        .actions()
        .map(|a| {
            a.get(libc::SIGCHLD as u32)
                .map(|x| x.flags & signals::SA_NOCLDSTOP != 0)
                .unwrap_or(false)
        })
        .unwrap_or(false);
    if code == CLD_TRAPPED && nocldstop {
        return;
    }
    let info = SigInfo {
        signo: libc::SIGCHLD,
        code,
        pid: tid,
        uid,
        status: status as i64,
        ..Default::default()
    };
    let _ = process::send_to_group(&ttg, info);
}

/// Makes `tracer` trace thread `h` of `tg`; `EPERM` if something already traces it.
pub fn link(
    tracer: &Arc<ThreadGroup>,
    h: &Arc<ThreadHandle>,
    tg: &Arc<ThreadGroup>,
    seized: bool,
    options: u32,
) -> Result<(), Errno> {
    {
        let mut t = h.ptrace.lock().map_err(|_| Errno::EIO)?;
        if t.tracer != 0 {
            return Err(Errno::EPERM);
        }
        *t = Tracee {
            tracer: tracer.tgid,
            seized,
            options,
            tg: Some(Arc::downgrade(tg)),
            ..Default::default()
        };
    }
    h.traced.store(true, Ordering::Release);
    tracer.state()?.tracees.insert(h.tid(), h.clone());
    Ok(())
}

/// Ends the tracing of `h` (detach, tracer exit): it resumes from a stop with
/// signal `sig`, or is killed if `kill`.
pub fn unlink(kernel: &Arc<Kernel>, h: &Arc<ThreadHandle>, sig: i32, kill: bool) {
    let (tracer, tg) = match h.ptrace.lock() {
        Ok(mut t) => {
            let tracer = t.tracer;
            t.tracer = 0;
            t.mode = None;
            t.interrupt = false;
            t.options = 0;
            if let Some(s) = t.stop.as_mut() {
                if s.resume.is_none() {
                    s.resume = Some((Resume::Cont, sig));
                }
            }
            (tracer, t.tg.as_ref().and_then(|w| w.upgrade()))
        }
        Err(_) => return,
    };
    h.traced.store(false, Ordering::Release);
    if let Some(ttg) = kernel.registry().ok().and_then(|r| r.group(tracer)) {
        if let Ok(mut st) = ttg.state() {
            st.tracees.remove(&h.tid());
        }
    }
    if kill {
        if let Some(tg) = &tg {
            process::kill_group(
                tg,
                ExitStatus::Signaled {
                    signo: libc::SIGKILL,
                    core: false,
                },
            );
        }
    }
    h.waker.wake();
    // An exit held back for the tracer now goes to the parent.
    if let Some(tg) = tg {
        let held = match tg.state() {
            Ok(mut s) => {
                let held = std::mem::replace(&mut s.held_for_tracer, false);
                held.then_some(s.zombie.map(|z| (z, s.uids.0))).flatten()
            }
            Err(_) => None,
        };
        if let Some((status, uid)) = held {
            crate::kernel::task::notify_parent_of_exit(kernel, &tg, status, uid);
        }
    }
}

/// The tracer process `tg` is gone: its tracees are set free (or killed, with
/// `PTRACE_O_EXITKILL`).
pub fn tracer_exited(kernel: &Arc<Kernel>, tg: &ThreadGroup) {
    let tracees: Vec<Arc<ThreadHandle>> = match tg.state() {
        Ok(mut st) => std::mem::take(&mut st.tracees).into_values().collect(),
        Err(_) => return,
    };
    for h in tracees {
        let kill = h
            .ptrace
            .lock()
            .map(|t| t.options & O_EXITKILL != 0 && t.exited.is_none())
            .unwrap_or(false);
        unlink(kernel, &h, 0, kill);
    }
}

/// Thread `h` of `tg` exits with `status`: a tracer that is not its parent
/// keeps it until `wait` reports the exit; the parent's own wait sees the process.
pub fn tracee_exited(
    kernel: &Arc<Kernel>,
    h: &Arc<ThreadHandle>,
    tg: &ThreadGroup,
    status: ExitStatus,
) {
    if !h.traced.load(Ordering::Acquire) {
        return;
    }
    let tid = h.tid();
    let parent = tg.state().map(|s| s.parent).unwrap_or(0);
    let tracer = match h.ptrace.lock() {
        Ok(mut t) => {
            if t.tracer == 0 {
                return;
            }
            t.stop = None;
            if tid == tg.tgid && t.tracer == parent {
                // The tracer reaps it as its child.
                None
            } else {
                t.exited = Some(status);
                if tid == tg.tgid {
                    if let Ok(mut st) = tg.state() {
                        st.held_for_tracer = true;
                    }
                }
                Some(t.tracer)
            }
        }
        Err(_) => return,
    };
    match tracer {
        None => unlink(kernel, h, 0, false),
        Some(tracer) => {
            let (code, st) = match status {
                ExitStatus::Exited(c) => (signals::code::CLD_EXITED, c),
                ExitStatus::Signaled { signo, .. } => (signals::code::CLD_KILLED, signo),
            };
            // Only a process's exit signals the tracer; a thread's is seen by wait.
            if tid == tg.tgid {
                notify_tracer(kernel, tracer, tid, 0, code, st);
            } else if let Some(ttg) = kernel.registry().ok().and_then(|r| r.group(tracer)) {
                ttg.child_events.notify_all();
            }
        }
    }
}

/// Whether the exit of process `tg` is still held back for a tracer that is not
/// its parent (its parent's wait must not see it yet, as on Linux).
pub fn exit_held_for_tracer(tg: &ThreadGroup) -> bool {
    tg.state().map(|s| s.held_for_tracer).unwrap_or(false)
}

impl Task {
    /// Whether something traces this thread.
    pub fn is_traced(&self) -> bool {
        self.handle.traced.load(Ordering::Acquire)
    }

    /// The tracer's options, 0 when untraced.
    pub fn ptrace_options(&self) -> u32 {
        if !self.is_traced() {
            return 0;
        }
        self.handle.ptrace.lock().map(|t| t.options).unwrap_or(0)
    }

    /// Whether the tracer asked for syscall stops (`PTRACE_SYSCALL`).
    pub fn ptrace_syscall_stops(&self) -> bool {
        self.is_traced()
            && self
                .handle
                .ptrace
                .lock()
                .map(|t| t.mode == Some(Resume::Syscall))
                .unwrap_or(false)
    }

    /// Enters a ptrace-stop and sleeps until the tracer resumes the thread, lets it
    /// go, or it is killed. Returns the signal the tracer resumed it with, `None`
    /// when it was not traced or was killed.
    pub fn ptrace_stop(
        &mut self,
        kind: StopKind,
        word: i32,
        siginfo: Option<SigInfo>,
    ) -> Option<i32> {
        if !self.is_traced() || self.handle.killed.load(Ordering::Acquire) {
            return None;
        }
        // A traced process runs its own code as loaded: its tracer reads the text
        // and writes breakpoints into it, so patched syscall sites go back before
        // the tracer can look, and none are made while it (or a fork) lives.
        if self.space().syscall_trampoline().is_some() {
            if let Ok(mut mm) = self.mm() {
                crate::kernel::patch::forbid(&mut mm);
            }
        }
        let fp = self.ctx.fp_state().unwrap_or_default();
        let tracer = {
            let mut t = self.handle.ptrace.lock().ok()?;
            if t.tracer == 0 {
                return None;
            }
            t.stop = Some(Stop {
                kind,
                word,
                reported: false,
                regs: self.regs,
                fp,
                fp_dirty: false,
                siginfo,
                space: self.space().clone(),
                poke: None,
                poke_result: None,
                resume: None,
            });
            t.tracer
        };
        notify_tracer(
            &self.kernel,
            tracer,
            self.tid,
            self.creds.uid,
            CLD_TRAPPED,
            word & 0x7f,
        );
        let handle = self.handle.clone();
        let killed = loop {
            let r = crate::kernel::wait::block(
                &self.waker,
                None,
                || handle.killed.load(Ordering::Acquire),
                || {
                    let t = handle.ptrace.lock().map_err(|_| Errno::EIO)?;
                    let poke = t.stop.as_ref().is_some_and(|s| s.poke.is_some());
                    Ok((t.released() || poke).then_some(()))
                },
            );
            if !matches!(r, Ok(Ok(()))) {
                break true;
            }
            let req = match handle.ptrace.lock() {
                Ok(mut t) if !t.released() => t.stop.as_mut().and_then(|s| s.poke.take()),
                _ => None,
            };
            let Some(req) = req else { break false };
            // The tracer's forced write, made from this thread (see PokeRequest).
            let res = force_write(self.space(), self.mm_shared(), req.addr, &req.data);
            if let Ok(mut t) = handle.ptrace.lock() {
                if let Some(s) = t.stop.as_mut() {
                    s.poke_result = Some(res);
                }
            }
            req.waker.wake();
        };
        let stop = self.handle.ptrace.lock().ok()?.stop.take()?;
        if let Some(req) = &stop.poke {
            // A tracer still waiting for a forced write learns the stop is over.
            req.waker.wake();
        }
        if killed {
            return None;
        }
        self.regs = stop.regs;
        if stop.fp_dirty {
            if let Err(e) = self.ctx.set_fp_state(&stop.fp) {
                tracing::debug!(tid = self.tid, "tracer's FP state refused: {e}");
            }
        }
        let (mode, sig) = stop.resume.unwrap_or((Resume::Cont, 0));
        if let Ok(mut t) = self.handle.ptrace.lock() {
            if t.tracer != 0 {
                t.mode = Some(mode);
            }
            t.last_siginfo = stop.siginfo;
        }
        // A single step sets the trap flag; the trap comes back as a SIGTRAP fault.
        if mode == Resume::Step {
            self.regs.eflags |= TRAP_FLAG;
        }
        if mode == Resume::Listen {
            self.ptrace_listen();
        }
        Some(sig)
    }

    /// `PTRACE_LISTEN`: stays stopped until the group is continued, an interrupt
    /// arrives or the tracer lets go, then reports a `PTRACE_EVENT_STOP`.
    fn ptrace_listen(&mut self) {
        let handle = self.handle.clone();
        let tg = self.tg.clone();
        let _reg = tg.events.register(&self.waker);
        let r = crate::kernel::wait::block(
            &self.waker,
            None,
            || handle.killed.load(Ordering::Acquire),
            || {
                let t = handle.ptrace.lock().map_err(|_| Errno::EIO)?;
                let continued = tg.state()?.stopped.is_none();
                Ok((t.tracer == 0 || t.interrupt || continued).then_some(()))
            },
        );
        if r.is_ok() {
            if let Ok(mut t) = self.handle.ptrace.lock() {
                t.interrupt = false;
            }
            let word = libc::SIGTRAP | (EVENT_STOP << 8) as i32;
            let info = SigInfo {
                signo: libc::SIGTRAP,
                code: word,
                ..Default::default()
            };
            self.ptrace_stop(StopKind::Event(EVENT_STOP), word, Some(info));
        }
    }

    /// A syscall-enter or syscall-exit stop, if the tracer asked for them.
    pub fn ptrace_syscall_stop(&mut self, entry: bool) {
        if !self.ptrace_syscall_stops() {
            return;
        }
        let sysgood = self.ptrace_options() & O_TRACESYSGOOD != 0;
        let word = libc::SIGTRAP | if sysgood { 0x80 } else { 0 };
        let info = SigInfo {
            signo: libc::SIGTRAP,
            code: word,
            ..Default::default()
        };
        let kind = if entry {
            StopKind::SyscallEntry
        } else {
            StopKind::SyscallExit
        };
        // A signal given at a syscall stop is sent as an ordinary one.
        if let Some(sig) = self.ptrace_stop(kind, word, Some(info)) {
            if sig > 0 {
                self.raise_signal(sig);
            }
        }
    }

    /// A `PTRACE_EVENT_*` stop for `event` (with `msg` for `PTRACE_GETEVENTMSG`), if
    /// the tracer's options ask for it. Returns whether the stop happened.
    pub fn ptrace_event(&mut self, event: u32, msg: u64) -> bool {
        if self.ptrace_options() & (1 << event) == 0 {
            return false;
        }
        if let Ok(mut t) = self.handle.ptrace.lock() {
            t.event_msg = msg;
        }
        let word = libc::SIGTRAP | (event << 8) as i32;
        let info = SigInfo {
            signo: libc::SIGTRAP,
            code: word,
            ..Default::default()
        };
        if let Some(sig) = self.ptrace_stop(StopKind::Event(event), word, Some(info)) {
            if sig > 0 {
                self.raise_signal(sig);
            }
        }
        true
    }

    /// After a successful exec: `PTRACE_EVENT_EXEC`, or the legacy SIGTRAP.
    pub fn ptrace_exec(&mut self, old_tid: i32) {
        if !self.is_traced() {
            return;
        }
        if !self.ptrace_event(EVENT_EXEC, old_tid as u64) {
            let seized = self.handle.ptrace.lock().map(|t| t.seized).unwrap_or(true);
            if !seized {
                // Linux sends it as from the tracee itself (SI_USER).
                let info = SigInfo::user(libc::SIGTRAP, self.tgid, self.creds.uid);
                let _ = process::send_to_thread(&self.handle, &self.tg, info);
            }
        }
    }

    /// A pending `PTRACE_INTERRUPT` (or the first stop of an auto-attached seized
    /// child): a `PTRACE_EVENT_STOP`.
    pub fn ptrace_interrupt_stop(&mut self) {
        if !self.is_traced() {
            return;
        }
        let pending = match self.handle.ptrace.lock() {
            Ok(mut t) => std::mem::replace(&mut t.interrupt, false),
            Err(_) => false,
        };
        if !pending {
            return;
        }
        let seized = self.handle.ptrace.lock().map(|t| t.seized).unwrap_or(false);
        let stopped = self.tg.state().ok().and_then(|s| s.stopped);
        let sig = stopped.unwrap_or(libc::SIGTRAP);
        // An attach (not a seize) to a stopped process reports the plain stop.
        let word = if seized {
            sig | (EVENT_STOP << 8) as i32
        } else {
            sig
        };
        let kind = if stopped.is_some() {
            StopKind::Group
        } else {
            StopKind::Event(EVENT_STOP)
        };
        let info = seized.then_some(SigInfo {
            signo: sig,
            code: word,
            ..Default::default()
        });
        if let Some(sig) = self.ptrace_stop(kind, word, info) {
            if sig > 0 {
                self.raise_signal(sig);
            }
        }
    }

    /// The group stop of a traced thread: reported to the tracer as a ptrace-stop,
    /// which only the tracer ends.
    pub fn ptrace_group_stop(&mut self, sig: i32) {
        let seized = self.handle.ptrace.lock().map(|t| t.seized).unwrap_or(false);
        let word = if seized {
            sig | (EVENT_STOP << 8) as i32
        } else {
            sig
        };
        // Only a seized tracee's group stop has a siginfo (GETSIGINFO: EINVAL).
        let info = seized.then_some(SigInfo {
            signo: sig,
            code: word,
            ..Default::default()
        });
        if let Some(s) = self.ptrace_stop(StopKind::Group, word, info) {
            if s > 0 {
                self.raise_signal(s);
            }
        }
    }

    /// The signal a signal-delivery stop resumed with `sig` delivers: the siginfo as
    /// the tracer left it, or, for another signal, one sent by the tracer.
    pub fn ptrace_delivered_info(&self, sig: i32, original: SigInfo) -> SigInfo {
        let (last, tracer) = self
            .handle
            .ptrace
            .lock()
            .map(|t| (t.last_siginfo, t.tracer))
            .unwrap_or((None, 0));
        let info = last.unwrap_or(original);
        if info.signo == sig {
            return info;
        }
        SigInfo::user(sig, tracer, 0)
    }

    /// A single step ended with a trap: clear the flag and report it as a SIGTRAP.
    pub fn ptrace_step_trap(&mut self) -> Option<SigInfo> {
        if self.regs.eflags & TRAP_FLAG == 0 {
            return None;
        }
        self.regs.eflags &= !TRAP_FLAG;
        Some(SigInfo {
            signo: libc::SIGTRAP,
            code: TRAP_TRACE,
            addr: self.regs.rip,
            ..Default::default()
        })
    }
}

/// The x86 trap flag (single step).
pub const TRAP_FLAG: u64 = 0x100;
