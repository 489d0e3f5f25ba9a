//! The context of a stub thread: hand-offs through its shared region.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::platform::{AddressSpace, Context, Event, Interrupter, PendingContext, Regs};

use super::space::{lock, Channel, StubThread, SystrapSpace};
use super::stub::{
    self, AUDIT_ARCH_X86_64, OFF_SIGINFO, OFF_SIGNO, OFF_STATE, OFF_UCONTEXT, STATE_FAST,
    STATE_FAST_RESUME, STATE_FAST_TRAP, STATE_PARKED, T_REGS, T_SEQ,
};

/// The signal [`Interrupter::interrupt`] sends to a running stub; its handler reports
/// it like any other signal and the context turns it into [`Event::Interrupted`].
pub(super) use crate::platform::common::INTERRUPT_SIGNAL;

use abi::signal::{SI_KERNEL, SYS_SECCOMP};
/// The signals that are application faults when the kernel raised them.
const FAULT_SIGNALS: [i32; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGTRAP,
];

// The kernel's `struct ucontext` on x86-64 (offsets from its start): flags, link,
// stack_t, then `struct sigcontext` (the general registers), then the signal mask.
/// Offset of the first register (r8).
const UC_GREGS: usize = 40;
/// Size of the general registers in the frame (r8 .. rsp, rip, eflags).
const GREGS_LEN: usize = 18 * 8;
/// Offset of rip.
pub(super) const UC_RIP: usize = 168;
/// Offset of the fpstate pointer.
const UC_FPSTATE: usize = 224;
/// Offset of the blocked-signal mask restored by rt_sigreturn.
const UC_SIGMASK: usize = 296;
/// Size of the part of the ucontext we touch.
pub(super) const UC_SIZE: usize = 304;
/// The legacy FXSAVE area, and where the kernel's software-reserved bytes (the
/// XSAVE frame descriptor) sit in it.
const FXSAVE_SIZE: usize = 512;
const FX_SW_BYTES: usize = 464;
/// `FP_XSTATE_MAGIC1`: the frame holds an XSAVE image, described by the sw bytes.
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;

/// The selectors of 64-bit user code and data on Linux x86-64.
const USER_CS: u64 = 0x33;
const USER_SS: u64 = 0x2b;
/// Slots of the trampoline's save area (`sigcontext` order, as the frame's).
const SLOT_RAX: usize = 13;
const SLOT_RCX: usize = 14;
const SLOT_RSP: usize = 15;

/// The context of one stub thread.
pub(super) struct SystrapContext {
    space: Arc<SystrapSpace>,
    thread: Arc<StubThread>,
    intr: Arc<SystrapInterrupter>,
    /// The stub thread's fs and gs bases as the application last set them (not part
    /// of the signal frame). The host gs base of a thread whose application value is
    /// 0 is its region (the trampoline finds its region through it).
    fs_base: u64,
    gs_base: u64,
    /// The registers of the system call the thread waits on in the patched-syscall
    /// trampoline (no signal frame then), if it does.
    fast: Option<Regs>,
    /// The trampoline entry count ([`T_SEQ`]) of the last entry the sentry took.
    last_seq: u64,
    /// Whether this pair (the driving thread and the stub thread) is pinned apart:
    /// only while its hand-offs are caught by spinning (see [`Channel::spin_trend`]).
    pinned: bool,
    /// Switches left before pinning is tried again after a try that found the host
    /// overloaded.
    pin_backoff: u32,
}

/// How many switches a context waits before it tries pinning again after a try
/// that found the host overloaded (each try may cost two `sched_setaffinity`).
const PIN_RETRY_SWITCHES: u32 = 4096;

/// Reads the u64 at byte `off` of `b`.
fn get(b: &[u8], off: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(w)
}

/// Stores `v` at byte `off` of `b`.
fn put(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// The general registers of `Regs` in sigcontext order (r8 .. rsp, rip, eflags).
fn greg_slots(r: &mut Regs) -> [&mut u64; 18] {
    [
        &mut r.r8,
        &mut r.r9,
        &mut r.r10,
        &mut r.r11,
        &mut r.r12,
        &mut r.r13,
        &mut r.r14,
        &mut r.r15,
        &mut r.rdi,
        &mut r.rsi,
        &mut r.rbp,
        &mut r.rbx,
        &mut r.rdx,
        &mut r.rax,
        &mut r.rcx,
        &mut r.rsp,
        &mut r.rip,
        &mut r.eflags,
    ]
}

impl SystrapContext {
    /// The context of `thread`, whose fs and gs bases are `fs_base` and `gs_base`
    /// (a new thread's are its creator's).
    pub(super) fn new(
        space: Arc<SystrapSpace>,
        thread: Arc<StubThread>,
        fs_base: u64,
        gs_base: u64,
        pinned: bool,
    ) -> Self {
        let intr = Arc::new_cyclic(|me| SystrapInterrupter {
            me: me.clone(),
            space: Arc::downgrade(&space),
            thread: Arc::downgrade(&thread),
            pending: AtomicBool::new(false),
            running: AtomicBool::new(false),
            ended: AtomicBool::new(false),
        });
        SystrapContext {
            space,
            thread,
            intr,
            fs_base,
            gs_base,
            fast: None,
            last_seq: 0,
            pinned,
            pin_backoff: 0,
        }
    }

    /// Pins the pair apart once its hand-offs are caught by spinning again, lets
    /// it run anywhere once they are not (see [`super::Cpus::unpin_pair`]).
    fn follow_spin_trend(&mut self, chan: &Channel) {
        match (self.pinned, chan.spin_trend()) {
            (true, Some(false)) => {
                self.space.cpus.unpin_pair(self.thread.tid);
                self.pinned = false;
            }
            (false, Some(true)) if self.space.spin => {
                if self.pin_backoff > 0 {
                    self.pin_backoff -= 1;
                    return;
                }
                self.pinned = self.space.cpus.pin_pair(self.thread.tid);
                if !self.pinned {
                    self.pin_backoff = PIN_RETRY_SWITCHES;
                }
            }
            _ => {}
        }
    }

    /// Reads the trampoline's save area into `regs` as the state right after the
    /// `syscall` instruction it stands for: `rip` and `rcx` the return address,
    /// `r11` the flags. (The application can write the area, like its own
    /// registers: nothing read here is more than a register value.)
    fn read_saved(&self, chan: &Channel, regs: &mut Regs) {
        let mut b = [0u8; GREGS_LEN];
        chan.region.read(T_REGS, &mut b);
        for (i, slot) in greg_slots(regs).into_iter().enumerate() {
            *slot = get(&b, 8 * i);
        }
        regs.cs = USER_CS;
        regs.ss = USER_SS;
        regs.ds = 0;
        regs.es = 0;
        regs.fs = 0;
        regs.gs = 0;
        regs.fs_base = self.fs_base;
        regs.gs_base = self.gs_base;
        regs.orig_rax = regs.rax;
        regs.rcx = regs.rip;
        regs.r11 = regs.eflags;
    }

    /// Whether a thread parked in the trampoline on the call `saved` can return to
    /// the application with `regs` by the trampoline's own exit: nothing but `rax`
    /// (the result) changed.
    fn fast_resumable(&self, saved: &Regs, regs: &Regs) -> bool {
        let mut a = *saved;
        let mut b = *regs;
        a.rax = 0;
        b.rax = 0;
        let same = greg_slots(&mut a)
            .into_iter()
            .zip(greg_slots(&mut b))
            .all(|(x, y)| *x == *y);
        same && regs.fs_base == self.fs_base && regs.gs_base == self.gs_base
    }

    /// Turns a thread parked in the trampoline into one parked in its signal
    /// handler, with a full frame: the trampoline traps (`ud2`) when told to. A
    /// report of the interrupt signal instead (sent before it parked) also leaves a
    /// frame; inside a switch it counts as the interruption (returns true).
    fn trap_for_frame(
        &mut self,
        chan: &Channel,
        in_switch: bool,
        deadline: Option<Instant>,
    ) -> SysResult<bool> {
        chan.release(STATE_FAST_TRAP);
        chan.wait_parked(|| self.space.alive(), deadline, self.space.spin)?;
        let bad = || {
            tracing::warn!("systrap stub left the trampoline unexpectedly");
            Errno::EFAULT
        };
        if chan.region.word(OFF_STATE).load(Ordering::SeqCst) != STATE_PARKED {
            return Err(bad());
        }
        let uc = Self::uc(chan)?;
        let rip = chan.region.get_u64(uc + UC_RIP);
        if !(stub::TRAMP_COMMIT + 1..stub::TRAMP_END).contains(&rip) {
            return Err(bad());
        }
        let signo = chan.region.get_u64(OFF_SIGNO) as i32;
        if in_switch && signo == INTERRUPT_SIGNAL {
            self.intr.pending.store(false, Ordering::SeqCst);
            return Ok(true);
        }
        Ok(false)
    }

    /// Gives a thread parked in the trampoline a signal frame (for its FP state,
    /// a request of its own, or a copy of it).
    fn ensure_frame(&mut self, chan: &Channel) -> SysResult<()> {
        if self.fast.take().is_some() {
            self.trap_for_frame(chan, false, None)?;
        }
        Ok(())
    }

    /// The region offset of the current signal frame's ucontext.
    fn uc(chan: &Channel) -> SysResult<usize> {
        let uc = chan.region.get_u64(OFF_UCONTEXT);
        chan.offset_of(uc, UC_SIZE).ok_or_else(|| {
            tracing::warn!("systrap stub reported a bad ucontext pointer");
            Errno::EFAULT
        })
    }

    /// The region offset and length of the current frame's FP state.
    fn fp_area(chan: &Channel) -> SysResult<(usize, usize)> {
        let uc = Self::uc(chan)?;
        let fp = chan.region.get_u64(uc + UC_FPSTATE);
        let off = chan.offset_of(fp, FXSAVE_SIZE).ok_or(Errno::EFAULT)?;
        let mut sw = [0u8; 24];
        chan.region.read(off + FX_SW_BYTES, &mut sw);
        let magic = u32::from_le_bytes([sw[0], sw[1], sw[2], sw[3]]);
        let xstate_size = u32::from_le_bytes([sw[16], sw[17], sw[18], sw[19]]) as usize;
        if magic != FP_XSTATE_MAGIC1 {
            return Ok((off, FXSAVE_SIZE));
        }
        if xstate_size < FXSAVE_SIZE || chan.offset_of(fp, xstate_size).is_none() {
            return Err(Errno::EFAULT);
        }
        Ok((off, xstate_size))
    }

    /// The FP state of `chan`'s frame: a new thread or fork starts with its
    /// creator's FP/SSE/AVX state, as on Linux (the stub thread's own is the
    /// handler's reset one), written with [`SystrapContext::put_fp`].
    fn read_fp(chan: &Channel) -> SysResult<Vec<u8>> {
        let (src, len) = Self::fp_area(chan)?;
        let mut buf = vec![0u8; len];
        chan.region.read(src, &mut buf);
        Ok(buf)
    }

    /// Writes FP state `buf` (read by [`SystrapContext::read_fp`] from a frame of
    /// the same layout) into `to`'s frame.
    fn put_fp(to: &Channel, buf: &[u8]) -> SysResult<()> {
        let len = buf.len();
        let (dst, dst_len) = Self::fp_area(to)?;
        if len != dst_len {
            return Err(Errno::EINVAL);
        }
        // The destination frame keeps its own layout descriptor (see set_fp_state).
        to.region.write(dst, &buf[..FX_SW_BYTES]);
        if len > FXSAVE_SIZE {
            to.region.write(dst + FXSAVE_SIZE, &buf[FXSAVE_SIZE..]);
        }
        Ok(())
    }

    fn run(&mut self, chan: &Channel, regs: &mut Regs) -> SysResult<Event> {
        if let Some(saved) = self.fast.take() {
            if self.fast_resumable(&saved, regs) {
                chan.region.put_u64(T_REGS + 8 * SLOT_RAX, regs.rax);
                chan.release(STATE_FAST_RESUME);
                chan.wait_parked(|| self.space.alive(), None, self.space.spin)?;
                let target = *regs;
                return self.parked(chan, regs, Some(target));
            }
            if self.trap_for_frame(chan, true, None)? {
                return Ok(Event::Interrupted);
            }
        }
        // The thread pointer registers are not in the signal frame: set them from the
        // trampoline when the sentry changed them.
        if regs.fs_base != self.fs_base {
            self.space.request_locked(
                chan,
                libc::SYS_arch_prctl,
                [0x1002, regs.fs_base, 0, 0, 0, 0],
            )?;
            self.fs_base = regs.fs_base;
        }
        if regs.gs_base != self.gs_base {
            // The application's 0 is the region (see `fs_base`).
            let host = if regs.gs_base == 0 {
                chan.base()
            } else {
                regs.gs_base
            };
            self.space
                .request_locked(chan, libc::SYS_arch_prctl, [0x1001, host, 0, 0, 0, 0])?;
            self.gs_base = regs.gs_base;
        }
        // Only what changes is written (the general registers and the mask), and only
        // what is needed read back: these copies are on every hand-off.
        let uc = Self::uc(chan)?;
        let mut gregs = [0u8; GREGS_LEN];
        let mut r = *regs;
        if r.rip >= 5 && self.space.is_patched(r.rip - 5) {
            // A system call restarted at a patched site, whose `syscall` is gone: the
            // trampoline makes it, as that instruction would (rcx: where it returns).
            r.rcx = r.rip + 2;
            r.rip = stub::TRAMP;
        }
        for (i, slot) in greg_slots(&mut r).into_iter().enumerate() {
            put(&mut gregs, 8 * i, *slot);
        }
        chan.region.write(uc + UC_GREGS, &gregs);
        // Nothing the application stored in the region may block signals for it.
        chan.region.put_u64(uc + UC_SIGMASK, 0);
        chan.release(stub::STATE_RESUME);
        chan.wait_parked(|| self.space.alive(), None, self.space.spin)?;
        self.parked(chan, regs, None)
    }

    /// Reads the event of a thread that just parked. `target`: the registers the
    /// switch returned it to the application with through the trampoline's exit.
    fn parked(
        &mut self,
        chan: &Channel,
        regs: &mut Regs,
        target: Option<Regs>,
    ) -> SysResult<Event> {
        if chan.region.word(OFF_STATE).load(Ordering::SeqCst) == STATE_FAST {
            // A patched site's system call, without a signal.
            self.last_seq = chan.region.get_u64(T_SEQ);
            self.read_saved(chan, regs);
            self.fast = Some(*regs);
            return Ok(Event::Syscall);
        }
        let signo = chan.region.get_u64(OFF_SIGNO) as i32;
        let uc = Self::uc(chan)?;
        // The general registers, then the segment selectors.
        let mut frame = [0u8; GREGS_LEN + 8];
        chan.region.read(uc + UC_GREGS, &mut frame);
        for (i, slot) in greg_slots(regs).into_iter().enumerate() {
            *slot = get(&frame, 8 * i);
        }
        let sel = get(&frame, GREGS_LEN);
        regs.cs = sel & 0xffff;
        regs.ss = (sel >> 48) & 0xffff;
        regs.ds = 0;
        regs.es = 0;
        regs.fs = 0;
        regs.gs = 0;
        regs.fs_base = self.fs_base;
        regs.gs_base = self.gs_base;
        regs.orig_rax = u64::MAX;
        let info = chan.region.get_u64(OFF_SIGINFO);
        let Some(info) = chan.offset_of(info, 32) else {
            tracing::warn!("systrap stub reported a bad siginfo pointer");
            return Err(Errno::EFAULT);
        };
        let mut si = [0u8; 32];
        chan.region.read(info, &mut si);
        let code = i32::from_le_bytes([si[8], si[9], si[10], si[11]]);
        if (stub::TRAMP..stub::TRAMP_END).contains(&regs.rip) {
            if let Some(ev) = self.in_trampoline(chan, regs, signo, target) {
                return Ok(ev);
            }
        }
        if signo == libc::SIGILL && code > 0 && regs.rip >= 5 && self.space.is_patched(regs.rip - 5)
        {
            // The invalid byte a patch leaves where the `syscall` was: a thread that
            // ran the old first instruction, or read half a patch, starts the site
            // over (the jump, or the whole old pair).
            regs.rip -= 5;
            return Ok(Event::Interrupted);
        }
        if signo == libc::SIGSYS && code == SYS_SECCOMP {
            let nr = i32::from_le_bytes([si[24], si[25], si[26], si[27]]);
            let arch = u32::from_le_bytes([si[28], si[29], si[30], si[31]]);
            if arch != AUDIT_ARCH_X86_64 {
                // `int $0x80`: 32-bit system calls are not supported. Report what a
                // kernel without IA-32 emulation would: a #GP at the instruction.
                regs.rip = regs.rip.wrapping_sub(2);
                regs.rax = nr as u32 as u64;
                return Ok(Event::Fault {
                    signo: libc::SIGSEGV,
                    code: SI_KERNEL,
                    addr: 0,
                });
            }
            regs.orig_rax = nr as u32 as u64;
            return Ok(Event::Syscall);
        }
        if FAULT_SIGNALS.contains(&signo) && code > 0 {
            return Ok(Event::Fault {
                signo,
                code,
                addr: get(&si, 16),
            });
        }
        if signo == INTERRUPT_SIGNAL {
            self.intr.pending.store(false, Ordering::SeqCst);
        }
        Ok(Event::Interrupted)
    }
}

impl SystrapContext {
    /// A signal frame taken inside the trampoline (`regs` from the frame). Before
    /// the commit, the thread's registers are the application's but for what the
    /// trampoline saved first: the signal stands for the system call itself. After
    /// it, the sentry either has not seen the commit (the handler's report replaced
    /// it: the call is in the save area, complete) or has, and then the thread is
    /// wherever the sentry put it (`target`, the registers the trampoline's exit was
    /// taking it back with). `None`: application code jumped there itself.
    fn in_trampoline(
        &mut self,
        chan: &Channel,
        regs: &mut Regs,
        signo: i32,
        target: Option<Regs>,
    ) -> Option<Event> {
        let rip = regs.rip;
        let slot = |i: usize| chan.region.get_u64(T_REGS + 8 * i);
        if signo == INTERRUPT_SIGNAL {
            self.intr.pending.store(false, Ordering::SeqCst);
        }
        if rip <= stub::TRAMP_COMMIT {
            if rip > stub::TRAMP_LEA {
                regs.rsp = slot(SLOT_RSP);
            }
            if rip > stub::TRAMP_RCX {
                regs.rcx = slot(SLOT_RCX);
            }
            if rip >= stub::TRAMP_RAX {
                regs.rax = slot(SLOT_RAX);
            }
            regs.orig_rax = regs.rax;
            regs.rip = regs.rcx;
            regs.r11 = regs.eflags;
            return Some(Event::Syscall);
        }
        let seq = chan.region.get_u64(T_SEQ);
        if seq != self.last_seq {
            self.last_seq = seq;
            self.read_saved(chan, regs);
            return Some(Event::Syscall);
        }
        let t = target?;
        *regs = t;
        Some(Event::Interrupted)
    }
}

impl Context for SystrapContext {
    fn switch(&mut self, regs: &mut Regs) -> SysResult<Event> {
        let space = self.space.clone();
        let thread = self.thread.clone();
        let chan = space.lock_thread(&thread)?;
        self.intr.running.store(true, Ordering::SeqCst);
        if self.intr.pending.swap(false, Ordering::SeqCst) {
            self.intr.running.store(false, Ordering::SeqCst);
            return Ok(Event::Interrupted);
        }
        let r = self.run(&chan, regs);
        self.intr.running.store(false, Ordering::SeqCst);
        self.follow_spin_trend(&chan);
        r
    }

    fn fp_state(&mut self) -> SysResult<Vec<u8>> {
        let space = self.space.clone();
        let thread = self.thread.clone();
        let chan = space.lock_thread(&thread)?;
        self.ensure_frame(&chan)?;
        let (off, len) = Self::fp_area(&chan)?;
        let mut buf = vec![0u8; len];
        chan.region.read(off, &mut buf);
        Ok(buf)
    }

    fn set_fp_state(&mut self, state: &[u8]) -> SysResult<()> {
        let space = self.space.clone();
        let thread = self.thread.clone();
        let chan = space.lock_thread(&thread)?;
        self.ensure_frame(&chan)?;
        let (off, len) = Self::fp_area(&chan)?;
        if state.len() != len && state.len() != FXSAVE_SIZE {
            return Err(Errno::EINVAL);
        }
        // The frame's own descriptor of its layout stays: the kernel checks it on
        // rt_sigreturn and a foreign one would make the stub's return fail.
        chan.region.write(off, &state[..FX_SW_BYTES]);
        if state.len() > FXSAVE_SIZE {
            chan.region.write(off + FXSAVE_SIZE, &state[FXSAVE_SIZE..]);
        }
        Ok(())
    }

    fn interrupter(&self) -> Arc<dyn Interrupter> {
        self.intr.clone()
    }

    fn fork(&mut self) -> SysResult<(Arc<dyn AddressSpace>, Box<dyn PendingContext>)> {
        let space = self.space.clone();
        let thread = self.thread.clone();
        let chan = space.lock_thread(&thread)?;
        self.ensure_frame(&chan)?;
        // The child's first thread starts with this FP state, written into its
        // frame once it has come up (when its context is adopted); the fork
        // itself is the syscall thread's.
        let fp = Self::read_fp(&chan)?;
        drop(chan);
        let child = space.fork()?;
        space.registry.register(&child);
        let as_space: Arc<dyn AddressSpace> = child.clone();
        Ok((
            as_space,
            Box::new(PendingThread {
                space: Some(child),
                start: Start::Fork,
                fp,
            }),
        ))
    }

    fn new_thread(&mut self) -> SysResult<Box<dyn PendingContext>> {
        let space = self.space.clone();
        let thread = self.thread.clone();
        let chan = space.lock_thread(&thread)?;
        self.ensure_frame(&chan)?;
        let fp = Self::read_fp(&chan)?;
        drop(chan);
        // The new thread comes up while this task goes on; its own host thread
        // waits for it when it adopts the context.
        let slot = space.start_thread()?;
        Ok(Box::new(PendingThread {
            space: Some(space),
            start: Start::Thread(slot),
            fp,
        }))
    }
}

impl Drop for SystrapContext {
    fn drop(&mut self) {
        // A thread parked in the trampoline takes its exit request in its handler.
        if self.fast.is_some() {
            let space = self.space.clone();
            let thread = self.thread.clone();
            let chan = space.lock_thread(&thread);
            if let Ok(chan) = chan.as_ref() {
                // Bounded: a sibling that took over this region (a gs base of its
                // own) may never let it trap; the exit request then times out too,
                // and the stub is killed.
                self.fast = None;
                let deadline = Instant::now() + KILL_GRACE;
                let _ = self.trap_for_frame(chan, false, Some(deadline));
            }
            drop(chan);
        }
        // The last user of the space kills the whole stub when it drops it. The last
        // thread of a space (a process's exit or exec) is not told to exit either:
        // the space goes right after (its task drops its memory manager next), no
        // other thread can ever resume it, and the exit handshake cost a round trip
        // to the stub on every process's exit path (85-135 us under load).
        if Arc::strong_count(&self.space) > 1 && !self.space.is_last_thread(&self.thread) {
            self.space.end_thread(&self.thread);
        }
        // Only now: a kill's watchdog must still see a task whose end waits on the
        // stub.
        self.intr.ended.store(true, Ordering::SeqCst);
    }
}

/// A stub thread made by [`Context::fork`] or [`Context::new_thread`], parked until
/// its context is adopted. It comes up while its creator's task goes on: the
/// adopting host thread waits for its start-up report.
struct PendingThread {
    space: Option<Arc<SystrapSpace>>,
    start: Start,
    /// The FP state the thread starts with, its creator's.
    fp: Vec<u8>,
}

/// Where a pending thread comes from.
#[derive(Clone, Copy)]
enum Start {
    /// The first thread of a forked space ([`SystrapSpace::settle`]).
    Fork,
    /// A new thread at this slot ([`SystrapSpace::settle_thread`]).
    Thread(usize),
}

impl PendingContext for PendingThread {
    fn adopt(mut self: Box<Self>) -> SysResult<Box<dyn Context>> {
        let space = self.space.take().ok_or(Errno::EINVAL)?;
        let thread = match self.start {
            Start::Fork => {
                space.settle()?;
                space.first_thread().ok_or(Errno::ESRCH)?
            }
            Start::Thread(slot) => space.settle_thread(slot)?,
        };
        SystrapContext::put_fp(&lock(&thread.chan), &self.fp)?;
        let pinned = space.cpus.pin_pair(thread.tid);
        // Cloned by the syscall thread, whose thread pointers are zero: the first
        // switch sets the task's.
        Ok(Box::new(SystrapContext::new(space, thread, 0, 0, pinned)))
    }
}

impl Drop for PendingThread {
    fn drop(&mut self) {
        if let Some(space) = self.space.take() {
            // A fork's child not adopted goes with its space (which kills it); a
            // thread is ended once it is up.
            if let Start::Thread(slot) = self.start {
                if Arc::strong_count(&space) > 1 {
                    if let Ok(thread) = space.settle_thread(slot) {
                        space.end_thread(&thread);
                    }
                }
            }
        }
    }
}

/// How long a context told to end by [`Interrupter::kill`] may take to come back
/// before its whole stub is killed. The interrupt signal ends a switch within
/// microseconds unless the application blocked it (from the stub's own code, or
/// with a forged signal frame), or broke the hand-off of a request; the bound only
/// has to be well above a loaded host's scheduling delays.
const KILL_GRACE: Duration = Duration::from_secs(1);
/// How late after its grace period a killed context may be checked, so that the
/// watchdog checks the kills of a burst of exits in one wake-up.
const KILL_BATCH: Duration = Duration::from_millis(250);

/// Interrupts a [`SystrapContext`] from any thread.
pub(super) struct SystrapInterrupter {
    /// Itself, for the kill watchdog.
    me: Weak<SystrapInterrupter>,
    space: Weak<SystrapSpace>,
    thread: Weak<StubThread>,
    /// An interruption was requested and not yet reported.
    pending: AtomicBool,
    /// The context is inside `switch` (the stub may be running).
    running: AtomicBool,
    /// The context is gone (its task ended).
    ended: AtomicBool,
}

impl SystrapInterrupter {
    /// Called [`KILL_GRACE`] after a kill: a context that still exists (its task has
    /// not ended: a switch that did not come back, a request on any thread of the stub
    /// that was never answered, or the thread's own end waiting on the stub) is ended
    /// by killing its stub process; SIGKILL cannot be blocked. Every wait on the stub
    /// then sees the death within a liveness period. (Waiting only for this thread's
    /// own channel missed a task stuck in a request on a sibling's channel or in its
    /// own end: the fuzzer hung the sandbox that way.)
    fn overdue(&self) {
        if self.ended.load(Ordering::SeqCst) {
            return;
        }
        let (Some(space), Some(thread)) = (self.space.upgrade(), self.thread.upgrade()) else {
            return;
        };
        if space.dead.load(Ordering::SeqCst) {
            return;
        }
        tracing::warn!(
            pid = space.pid,
            tid = thread.tid,
            "systrap stub thread ignored its kill: killing the stub"
        );
        space.kill();
    }
}

/// Checks killed contexts once their grace period is over, on one thread of its own
/// (started on the first kill).
struct KillWatchdog {
    due: Mutex<Vec<(Instant, Weak<SystrapInterrupter>)>>,
    cv: Condvar,
}

impl KillWatchdog {
    fn get() -> &'static KillWatchdog {
        static WATCHDOG: OnceLock<&'static KillWatchdog> = OnceLock::new();
        WATCHDOG.get_or_init(|| {
            let w: &'static KillWatchdog = Box::leak(Box::new(KillWatchdog {
                due: Mutex::new(Vec::new()),
                cv: Condvar::new(),
            }));
            if let Err(e) = std::thread::Builder::new()
                .name("systrap-kill".into())
                .spawn(move || w.run())
            {
                tracing::warn!("cannot start the systrap kill watchdog: {e}");
            }
            w
        })
    }

    fn arm(&self, intr: Weak<SystrapInterrupter>) {
        let mut due = lock(&self.due);
        let idle = due.is_empty();
        due.push((Instant::now() + KILL_GRACE, intr));
        drop(due);
        // Every deadline is KILL_GRACE after its arming, so one armed before is due
        // first and the watchdog already wakes for it: only an idle watchdog needs
        // a wake-up. (Every process exit arms one: a wake-up of this thread per
        // exit was a futex wake and a context switch on a fork+exit+wait.)
        if idle {
            self.cv.notify_one();
        }
    }

    fn run(&self) {
        let mut due = lock(&self.due);
        loop {
            let now = Instant::now();
            let (ripe, later): (Vec<_>, Vec<_>) = due.drain(..).partition(|(t, _)| *t <= now);
            *due = later;
            if !ripe.is_empty() {
                drop(due);
                for (_, w) in ripe {
                    if let Some(i) = w.upgrade() {
                        i.overdue();
                    }
                }
                due = lock(&self.due);
                continue;
            }
            let next = due.iter().map(|(t, _)| *t).min();
            due = match next {
                Some(t) => {
                    // Later deadlines within KILL_BATCH are checked in the same
                    // wake-up, not one wake-up each.
                    let wait = (t + KILL_BATCH).saturating_duration_since(now);
                    self.cv
                        .wait_timeout(due, wait)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0)
                }
                None => self.cv.wait(due).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }
}

impl Interrupter for SystrapInterrupter {
    fn interrupt(&self) {
        // Flag first, then look at `running`: either the switch sees the flag before
        // resuming, or we see it running and the signal stops it (or both, and the
        // next switch reports one extra, harmless, interruption).
        self.pending.store(true, Ordering::SeqCst);
        if !self.running.load(Ordering::SeqCst) {
            return;
        }
        let (Some(space), Some(thread)) = (self.space.upgrade(), self.thread.upgrade()) else {
            return;
        };
        if space.dead.load(Ordering::SeqCst) {
            return;
        }
        // Only this thread: another one may be parked in its handler, where the
        // signal would wait (blocked) and then cut its next run short for nothing.
        if let Err(e) = thread.signaller.signal(INTERRUPT_SIGNAL) {
            tracing::debug!(pid = space.pid, tid = thread.tid, error = %e.name(), "interrupting systrap stub");
        }
    }

    fn kill(&self) {
        self.interrupt();
        if !self.ended.load(Ordering::SeqCst) {
            KillWatchdog::get().arm(self.me.clone());
        }
    }

    fn blocking(&self) {
        // Only when nobody drives the thread (its task is in a system call): an
        // edit holding the channel just leaves the handler spinning a little longer.
        let Some(thread) = self.thread.upgrade() else {
            return;
        };
        if let Ok(chan) = thread.chan.try_lock() {
            chan.stop_spinning();
        };
    }
}
