//! An address space: one stub process, edited through its syscall thread
//! ([`Syscaller`]); and its application threads, each with its own region (slot).

use std::collections::HashSet;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::platform::common;
use crate::platform::death_watch::{DeathHooks, Watched};
use crate::platform::{AddressSpace, Backing, PAGE_SIZE};

use super::stub::{
    self, slot_base, MAX_SLOTS, OFF_REQ_NR, OFF_REQ_RESULT, OFF_SENTRY_SLEEPING, OFF_SIGNO,
    OFF_STATE, OFF_STUB_NOSPIN, OFF_STUB_SLEEPING, OFF_TID, OFF_UCONTEXT, READY_RIP, REGION_SIZE,
    STATE_PARKED,
};
use super::sys::{self, SharedMapping};
use super::syscaller::{Call, Commands, Syscaller};
use super::MAX_USER_ADDRESS;

/// How long the sentry spins on a hand-off word before it sleeps on the futex. The
/// cross-process spin hand-off costs ~2-3 us here and the futex path ~80 us, so a
/// short system call must be caught while spinning; a longer stretch of application
/// code costs this much sentry CPU once.
pub(super) const SENTRY_SPIN: Duration = Duration::from_micros(50);
/// How long one futex sleep lasts before the sentry checks that the stub is alive.
const LIVENESS_PERIOD: Duration = Duration::from_millis(200);
/// How long a new stub or thread may take to report in.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether region state `v` hands the thread to the sentry: parked in its signal
/// handler, or in the patched-syscall trampoline.
fn parked(v: u32) -> bool {
    v == STATE_PARKED || v == stub::STATE_FAST
}

/// The sentry's view of one application thread's shared region and the hand-off
/// protocol on it.
pub(super) struct Channel {
    pub(super) region: SharedMapping,
    /// The stub address the region is mapped at in the stub (its slot's).
    base: u64,
    /// Set (under the channel's lock) when its thread is told to exit: a request
    /// released on it afterwards would wait for a thread that is gone. Someone who
    /// picked the thread from a list made before it ended must look here first.
    ended: bool,
    /// How the sentry's and the handler's spins have been doing lately.
    spins: SpinStats,
}

/// Adaptive spinning: each side of a channel spins for the other only while recent
/// spins caught the hand-off. A score goes up with each caught hand-off and down
/// faster with each missed one; at zero or below that side sleeps at once, and
/// tries spinning again every [`SPIN_PROBE`]th hand-off.
#[derive(Default)]
struct SpinStats {
    sentry: std::sync::atomic::AtomicI32,
    stub: std::sync::atomic::AtomicI32,
    /// Hand-offs counted while the side's score says sleep, one counter per side: a
    /// shared counter, bumped by both sides on every hand-off while both scores said
    /// sleep, gave one side only odd counts, so that side never probed and the
    /// channel stayed in futex ping-pong for the rest of the process (getpid 20-28
    /// us a call instead of 0.3 us, in about half the runs; see
    /// docs/security-systrap.md).
    sentry_probe: std::sync::atomic::AtomicU32,
    stub_probe: std::sync::atomic::AtomicU32,
    /// The sentry was (about to go) asleep when the handler last parked: the
    /// handler then wakes it and sleeps at once, without spinning, so its sleep
    /// says nothing about its spins.
    sentry_slept: AtomicBool,
}

/// The highest score, and what the first hand-offs start from.
const SPIN_SCORE_MAX: i32 = 8;
/// What a missed hand-off takes off a score.
const SPIN_MISS: i32 = 4;
/// One hand-off in this many spins whatever the score says (to notice the host has
/// calmed down).
const SPIN_PROBE: u32 = 32;

impl SpinStats {
    fn new() -> Self {
        SpinStats {
            sentry: SPIN_SCORE_MAX.into(),
            stub: SPIN_SCORE_MAX.into(),
            sentry_probe: 0.into(),
            stub_probe: 0.into(),
            sentry_slept: AtomicBool::new(false),
        }
    }

    fn worth(score: &std::sync::atomic::AtomicI32, probe: &std::sync::atomic::AtomicU32) -> bool {
        score.load(Ordering::Relaxed) > 0
            || probe
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(SPIN_PROBE)
    }

    fn record(score: &std::sync::atomic::AtomicI32, caught: bool) {
        let s = score.load(Ordering::Relaxed);
        let n = if caught {
            (s.max(0) + 1).min(SPIN_SCORE_MAX)
        } else {
            (s - SPIN_MISS).max(-SPIN_SCORE_MAX)
        };
        score.store(n, Ordering::Relaxed);
    }
}

impl Channel {
    /// Hands the stub over (`state` is RESUME or REQUEST) and wakes it if it sleeps.
    pub(super) fn release(&self, state: u32) {
        // Written only when it changes: a store on the hot path would pull the line
        // the handler spins on away from it once more.
        let nospin = self.region.word(OFF_STUB_NOSPIN);
        let told = nospin.load(Ordering::Relaxed) != 0;
        let sleeping = self.region.word(OFF_STUB_SLEEPING);
        if !told && !self.spins.sentry_slept.load(Ordering::Relaxed) {
            // The handler was free to spin: did it still spin when we answered?
            SpinStats::record(&self.spins.stub, sleeping.load(Ordering::Relaxed) == 0);
        }
        let want = u32::from(!SpinStats::worth(&self.spins.stub, &self.spins.stub_probe));
        if u32::from(told) != want {
            nospin.store(want, Ordering::Relaxed);
        }
        self.region.word(OFF_STATE).swap(state, Ordering::SeqCst);
        if sleeping.load(Ordering::SeqCst) != 0 {
            sys::futex_wake(self.region.word(OFF_STATE));
        }
    }

    /// Waits until the stub parks: spins for [`SENTRY_SPIN`] if `spin`, then sleeps
    /// on the futex. `alive` is asked after each sleep period; `deadline` bounds the
    /// wait. The sentry spins even when it just woke the stub: measured here, a
    /// sentry that sleeps whenever the stub slept locks both sides into futex
    /// ping-pong (45-60 us a getpid) while spinning through the stub's wake-up gets
    /// back to spin hand-offs (8-19 us in the same minutes).
    pub(super) fn wait_parked(
        &self,
        alive: impl Fn() -> bool,
        deadline: Option<Instant>,
        spin: bool,
    ) -> SysResult<()> {
        let state = self.region.word(OFF_STATE);
        if spin && SpinStats::worth(&self.spins.sentry, &self.spins.sentry_probe) {
            let start = Instant::now();
            let mut n = 0u32;
            loop {
                if parked(state.load(Ordering::Acquire)) {
                    SpinStats::record(&self.spins.sentry, true);
                    self.spins.sentry_slept.store(false, Ordering::Relaxed);
                    return Ok(());
                }
                std::hint::spin_loop();
                n += 1;
                if n.is_multiple_of(64) && start.elapsed() >= SENTRY_SPIN {
                    break;
                }
            }
            SpinStats::record(&self.spins.sentry, false);
        }
        let sleeping = self.region.word(OFF_SENTRY_SLEEPING);
        self.spins.sentry_slept.store(true, Ordering::Relaxed);
        loop {
            sleeping.swap(1, Ordering::SeqCst);
            let cur = state.load(Ordering::SeqCst);
            if !parked(cur) {
                sys::futex_wait(state, cur, LIVENESS_PERIOD);
            }
            sleeping.store(0, Ordering::SeqCst);
            if parked(state.load(Ordering::SeqCst)) {
                return Ok(());
            }
            // A whole liveness period without the stub parking: wake it in case it
            // sleeps on a hand-over it missed. Its sleeping flag lives in memory the
            // application can write, so the wake-up `release` skips when the flag says
            // awake may have been lost (a sandbox hung that way under the fuzzer).
            sys::futex_wake(state);
            if !alive() {
                return Err(Errno::ESRCH);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Errno::ETIMEDOUT);
            }
        }
    }

    /// The stub address the region is mapped at.
    pub(super) fn base(&self) -> u64 {
        self.base
    }

    /// Translates a stub address inside the region to a region offset, if
    /// `[addr, addr+len)` lies in the signal stack part of the region. The stub (that
    /// is, the application) can write anything there: nothing is trusted unchecked.
    pub(super) fn offset_of(&self, addr: u64, len: usize) -> Option<usize> {
        let lo = self.base + stub::OFF_ALTSTACK_BASE as u64;
        let end = addr.checked_add(len as u64)?;
        if addr < lo || end > self.base + self.region.len() as u64 {
            return None;
        }
        Some((addr - self.base) as usize)
    }

    /// A fresh region for `slot`: the region's memfd (to map in the stub) and the
    /// channel on it, with the nonce that proves which thread maps it.
    fn new(slot: usize) -> SysResult<(OwnedFd, Channel)> {
        let memfd = sys::memfd_sized(c"rvisor-systrap-region", REGION_SIZE)?;
        let region = SharedMapping::new(&memfd, REGION_SIZE as usize)?;
        let mut nonce = [0u8; stub::NONCE_LEN];
        if crate::sys::host::random_bytes(&mut nonce, 0)? != stub::NONCE_LEN {
            return Err(Errno::EIO);
        }
        region.write(stub::OFF_NONCE, &nonce);
        Ok((
            memfd,
            Channel {
                region,
                base: slot_base(slot),
                ended: false,
                spins: SpinStats::new(),
            },
        ))
    }

    /// Whether the sentry's spins have lately caught the stub parking: `Some(true)`
    /// after a run of caught hand-offs, `Some(false)` once they miss (it then
    /// sleeps at once), `None` in between.
    pub(super) fn spin_trend(&self) -> Option<bool> {
        match self.spins.sentry.load(Ordering::Relaxed) {
            SPIN_SCORE_MAX => Some(true),
            s if s <= 0 => Some(false),
            _ => None,
        }
    }

    /// Tells the parked handler to stop spinning and sleep: the answer will be long.
    pub(super) fn stop_spinning(&self) {
        self.region
            .word(OFF_STUB_NOSPIN)
            .store(1, Ordering::Relaxed);
    }

    /// Whether the stub parked with the "ready" report of a new stub or thread: a
    /// SIGILL at the `ud2` of its start-up code.
    pub(super) fn reported_ready(&self) -> bool {
        let signo = self.region.get_u64(OFF_SIGNO) as i32;
        let uc = self.region.get_u64(OFF_UCONTEXT);
        let rip = self
            .offset_of(uc, super::context::UC_SIZE)
            .map(|o| self.region.get_u64(o + super::context::UC_RIP));
        signo == libc::SIGILL && rip == Some(READY_RIP)
    }

    /// Whether host process or thread `id` maps this region at its slot: the nonce
    /// written at [`Channel::new`] reads back through `id`. Only the new thread or
    /// child that mapped the region (or a copy of its own process) can pass, so a pid
    /// or tid reported through the application-writable region is trusted only then.
    pub(super) fn mapped_by(&self, id: i32) -> bool {
        let mut want = [0u8; stub::NONCE_LEN];
        self.region.read(stub::OFF_NONCE, &mut want);
        let mut got = [0u8; stub::NONCE_LEN];
        let at = self.base + stub::OFF_NONCE as u64;
        common::read_process(id, at, &mut got) == Ok(stub::NONCE_LEN) && got == want
    }

    /// Waits (bounded by `deadline`) until the thread that owned this region has
    /// exited: the kernel clears [`OFF_TID`] then.
    fn wait_exited(&self, alive: impl Fn() -> bool, deadline: Instant) -> bool {
        let word = self.region.word(OFF_TID);
        loop {
            let tid = word.load(Ordering::SeqCst);
            if tid == 0 {
                return true;
            }
            if !alive() || Instant::now() >= deadline {
                return false;
            }
            sys::futex_wait(word, tid, Duration::from_millis(20));
        }
    }
}

/// One application thread of a stub: its slot, its region and how to signal it.
pub(super) struct StubThread {
    /// Its region's slot.
    pub slot: usize,
    /// Its host thread id.
    pub tid: i32,
    /// The region; whoever holds the lock may drive the thread.
    pub chan: Mutex<Channel>,
    /// Signals exactly this thread (the interrupt).
    pub signaller: common::ThreadSignaller,
}

/// One stub process and the sentry's handles on it.
pub(super) struct SystrapSpace {
    /// The stub's pid: its syscall thread, which never exits before the process, so
    /// memory copies through this pid always find the address space.
    pub pid: i32,
    /// A pidfd: signals through it can never hit a recycled pid.
    pub pidfd: OwnedFd,
    /// The syscall thread: every edit of the address space goes through it.
    sys: Syscaller,
    /// The application threads by slot.
    threads: Mutex<Slots>,
    /// Set once the stub is known to be dead.
    pub dead: AtomicBool,
    /// Whether the first context of this space has been handed out.
    pub context_taken: AtomicBool,
    /// Whether to spin before sleeping (not on a single CPU, where it only delays
    /// the stub).
    pub spin: bool,
    /// Where to place new thread pairs.
    pub cpus: Arc<super::Cpus>,
    /// The platform's list of spaces, where forks are recorded too.
    pub registry: Arc<super::Registry>,
    /// Where the dead stub is handed for reaping once this space is gone.
    zygote: Arc<super::Zygote>,
    /// What to run once the stub is found dead (see [`AddressSpace::on_death`]).
    death_hooks: DeathHooks,
    /// Sites whose `mov; syscall` the sentry patched into a jump to the trampoline
    /// (see [`AddressSpace::note_patched_syscall`]); a fork's child inherits them
    /// with the code.
    patched: Mutex<HashSet<u64>>,
    /// A forked space whose start-up report has not been taken yet: its first
    /// thread's region (slot 0, taken), and when it must have reported by. Taken by
    /// [`SystrapSpace::settle`], which every use of the syscall thread or the thread
    /// table runs first.
    start: Mutex<Option<(Channel, Instant)>>,
    /// Whether `start` may hold something (the fast path of `settle`).
    starting: AtomicBool,
    /// The last child forked from this space: it reads its fd numbers from our
    /// command page right after the fork, so a later fork that would write other
    /// numbers there settles it first.
    last_child: Mutex<std::sync::Weak<SystrapSpace>>,
    /// Threads cloned but not yet seen up: slot, region, thread id, deadline (see
    /// [`SystrapSpace::start_thread`]).
    starting_threads: Mutex<Vec<(usize, Channel, i32, Instant)>>,
}

/// Which slots hold what.
#[derive(Default)]
struct Slots {
    /// The live threads by slot (index).
    used: Vec<Option<Arc<StubThread>>>,
    /// Slots taken: a live thread's, or one being set up or ended.
    busy: Vec<bool>,
    /// Free slots whose ended thread's region is still mapped in the stub: a new
    /// thread's region is mapped over it (`MAP_FIXED` replaces it), and the next
    /// edit of the space unmaps the rest in the same command. Nothing reads such a
    /// region any more (its thread has exited, and the sentry dropped its view).
    stale: Vec<bool>,
}

/// Locks `m`, ignoring poisoning: the guarded data stays consistent on its own.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SystrapSpace {
    /// Asks the zygote for a new stub, waits until its syscall thread reports in,
    /// and starts its first application thread (slot 0).
    pub(super) fn new(
        zygote: &Arc<super::Zygote>,
        zygote_alive: impl Fn() -> bool,
        spin: bool,
        cpus: Arc<super::Cpus>,
        registry: Arc<super::Registry>,
    ) -> SysResult<Self> {
        // The syscall thread follows its sender's CPU only where pairs are pinned.
        let (stub_end, sys) = Syscaller::new(spin && !cpus.overloaded())?;
        zygote.spawn(&[sys.memfd().as_raw_fd(), stub_end.as_raw_fd()])?;
        drop(stub_end);
        let deadline = Instant::now() + START_TIMEOUT;
        // The pid comes from the kernel (the syscall thread's getpid, reported as the
        // offset of a file only it holds), before any application code exists.
        let pid = sys.first_report(zygote_alive, deadline).inspect_err(|e| {
            tracing::warn!(error = %e.name(), "systrap stub did not start");
        })?;
        let pidfd = match sys::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                zygote.reap(pid);
                return Err(e);
            }
        };
        let space = Self::with(pid, pidfd, sys, spin, cpus, registry, zygote.clone());
        // From here on the Drop of `space` kills and reaps the stub.
        space.new_thread()?;
        Ok(space)
    }

    fn with(
        pid: i32,
        pidfd: OwnedFd,
        sys: Syscaller,
        spin: bool,
        cpus: Arc<super::Cpus>,
        registry: Arc<super::Registry>,
        zygote: Arc<super::Zygote>,
    ) -> Self {
        SystrapSpace {
            pid,
            pidfd,
            sys,
            threads: Mutex::new(Slots::default()),
            dead: AtomicBool::new(false),
            context_taken: AtomicBool::new(false),
            spin,
            cpus,
            registry,
            zygote,
            death_hooks: DeathHooks::default(),
            patched: Mutex::new(HashSet::new()),
            start: Mutex::new(None),
            starting: AtomicBool::new(false),
            last_child: Mutex::new(std::sync::Weak::new()),
            starting_threads: Mutex::new(Vec::new()),
        }
    }

    /// Takes a forked space's start-up report if it has not been taken: waits
    /// (bounded) until the child has reported in with its pid and its first
    /// thread's id, checks them against the kernel's (the pid the parent's `clone`
    /// returned, the thread by its region's nonce) and puts the thread in slot 0.
    /// A child that fails to come up is killed (ESRCH from then on). Nothing runs
    /// application code in the child before this has passed: its only thread is
    /// parked at its start-up report until its context's first switch.
    pub(super) fn settle(&self) -> SysResult<()> {
        if !self.starting.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut start = lock(&self.start);
        let Some((chan, deadline)) = start.take() else {
            // Settled by another thread meanwhile (or failed: then dead).
            return if self.dead.load(Ordering::SeqCst) {
                Err(Errno::ESRCH)
            } else {
                Ok(())
            };
        };
        let r = self.finish_fork(chan, deadline);
        self.starting.store(false, Ordering::Release);
        r
    }

    /// The second half of [`SystrapSpace::fork`], in the child's space.
    fn finish_fork(&self, chan: Channel, deadline: Instant) -> SysResult<()> {
        let alive = || self.alive();
        // Its first thread parks after the report, usually: waiting for the park
        // first costs one sleep instead of two.
        let _ = chan.wait_parked(alive, Some(deadline), false);
        let reported = self.sys.first_report_ids(alive, deadline);
        let tid = match reported {
            Ok((p, tid)) if p == self.pid && tid > 0 => tid,
            _ => 0,
        };
        if tid == 0 {
            tracing::warn!(
                pid = self.pid,
                ?reported,
                "forked systrap stub did not start"
            );
            self.kill();
            return Err(Errno::EAGAIN);
        }
        // Its first thread's region is mapped at slot 0 already (and every slot of
        // the parent's unmapped).
        self.await_thread(0, chan, tid, deadline).map(|_| ())
    }

    /// The sentry's fd of the syscall thread's control socket.
    #[cfg(test)]
    pub(super) fn control_fd(&self) -> i32 {
        self.sys.control().as_raw_fd()
    }

    /// Runs `calls` as one command on the syscall thread.
    #[cfg(test)]
    pub(super) fn batch(&self, calls: &[Call]) -> SysResult<(usize, SysResult<u64>)> {
        self.settle()?;
        let mut st = self.sys.lock();
        self.sys.batch(&mut st, calls, &|| self.alive())
    }

    /// The first live application thread (the only one of a new space; a forked
    /// space's once settled).
    pub(super) fn first_thread(&self) -> Option<Arc<StubThread>> {
        self.settle().ok()?;
        lock(&self.threads).used.iter().flatten().next().cloned()
    }

    /// Locks `thread`'s channel; a dead stub or an ended thread is ESRCH.
    pub(super) fn lock_thread<'a>(
        &self,
        thread: &'a StubThread,
    ) -> SysResult<MutexGuard<'a, Channel>> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(Errno::ESRCH);
        }
        let chan = lock(&thread.chan);
        if chan.ended {
            return Err(Errno::ESRCH);
        }
        Ok(chan)
    }

    /// Whether the stub still exists; records its death.
    pub(super) fn alive(&self) -> bool {
        if self.dead.load(Ordering::SeqCst) {
            return false;
        }
        if sys::pidfd_exited(&self.pidfd) {
            self.note_dead();
            return false;
        }
        true
    }

    /// Records that the stub is gone.
    pub(super) fn note_dead(&self) {
        if !self.dead.swap(true, Ordering::SeqCst) {
            tracing::warn!(pid = self.pid, "systrap stub died");
        }
    }

    /// Runs system call `nr` for the parked application thread of `chan` itself (the
    /// caller holds the channel): what only the thread can do to itself, `arch_prctl`
    /// of its thread pointers and `exit`. The result comes from application-writable
    /// memory: nothing may depend on it but the thread's own state.
    pub(super) fn request_locked(&self, chan: &Channel, nr: i64, args: [u64; 6]) -> SysResult<u64> {
        chan.region.put_u64(OFF_REQ_NR, nr as u64);
        for (i, a) in args.iter().enumerate() {
            chan.region.put_u64(OFF_REQ_NR + 8 * (i + 1), *a);
        }
        chan.release(stub::STATE_REQUEST);
        chan.wait_parked(|| self.alive(), None, self.spin)?;
        let ret = chan.region.get_u64(OFF_REQ_RESULT) as i64;
        if (-4095..0).contains(&ret) {
            return Err(Errno(-ret as i32));
        }
        Ok(ret as u64)
    }

    /// Runs system call `nr` on the syscall thread, under its lock.
    fn call(&self, st: &mut Commands, nr: i64, args: [u64; 6]) -> SysResult<u64> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(Errno::ESRCH);
        }
        self.sys.call(st, nr, args, &|| self.alive())
    }

    /// Runs system call `nr` on the syscall thread, after unmapping the regions of
    /// ended threads in the same command.
    fn request(&self, nr: i64, args: [u64; 6]) -> SysResult<u64> {
        self.settle()?;
        let mut st = self.sys.lock();
        if self.dead.load(Ordering::SeqCst) {
            return Err(Errno::ESRCH);
        }
        let (mut calls, slots) = self.take_stale(stub::C_MAX_CALLS - 1);
        if calls.is_empty() {
            return self.call(&mut st, nr, args);
        }
        let n = calls.len();
        calls.push(Call::new(nr, args));
        match self.sys.batch(&mut st, &calls, &|| self.alive())? {
            (i, r) if i == n => r,
            (i, r) => {
                // Unmapping a region failed: its slots stay taken (a new region is
                // never mapped over memory in an unknown state), and the call runs
                // on its own.
                tracing::debug!(pid = self.pid, index = i, result = ?r, "unmapping ended threads' regions");
                let mut threads = lock(&self.threads);
                for &slot in &slots {
                    threads.busy[slot] = true;
                }
                drop(threads);
                self.call(&mut st, nr, args)
            }
        }
    }

    /// Takes the free slots whose region is still mapped: the `munmap` calls of at
    /// most `max` runs of them, and the slots (taken until the calls have run).
    fn take_stale(&self, max: usize) -> (Vec<Call>, Vec<usize>) {
        let mut threads = lock(&self.threads);
        let mut calls = Vec::new();
        let mut slots = Vec::new();
        let mut run: Option<(usize, usize)> = None;
        let n = threads.stale.len();
        for slot in 0..=n {
            let take = slot < n && threads.stale[slot] && !threads.busy[slot];
            match (take, run) {
                (true, Some((start, _))) => run = Some((start, slot + 1)),
                (true, None) if calls.len() < max => run = Some((slot, slot + 1)),
                (true, None) => {}
                (false, Some((start, end))) => {
                    let len = (end - start) as u64 * REGION_SIZE;
                    calls.push(Call::new(
                        libc::SYS_munmap,
                        [slot_base(start), len, 0, 0, 0, 0],
                    ));
                    run = None;
                }
                (false, None) => {}
            }
            if take && run.is_some() {
                threads.stale[slot] = false;
                slots.push(slot);
            }
        }
        (calls, slots)
    }

    /// Closes `fd` in the syscall thread.
    fn close(&self, st: &mut Commands, fd: u64) -> SysResult<()> {
        self.sys.close(st, fd, &|| self.alive())
    }

    /// Passes `fds` to the syscall thread and runs the calls `then` makes of their
    /// numbers there in the same command (see [`Syscaller::with_fds`]). A transfer
    /// that went wrong leaves the stub's fd table unknown, so the stub is given up.
    fn with_fds(
        &self,
        st: &mut Commands,
        fds: &[i32],
        then: impl FnOnce(&[u64]) -> Vec<Call>,
    ) -> SysResult<(Vec<u64>, usize, SysResult<u64>)> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(Errno::ESRCH);
        }
        self.sys
            .with_fds(st, fds, then, &|| self.alive())
            .inspect_err(|_| self.kill())
    }

    /// Takes the lowest free slot for a new thread.
    fn take_slot(&self) -> SysResult<usize> {
        let mut threads = lock(&self.threads);
        let slot = match threads.busy.iter().position(|b| !b) {
            Some(i) => i,
            None if threads.busy.len() >= MAX_SLOTS => return Err(Errno::EAGAIN),
            None => {
                threads.busy.push(false);
                threads.used.push(None);
                threads.stale.push(false);
                threads.busy.len() - 1
            }
        };
        threads.busy[slot] = true;
        threads.stale[slot] = false;
        Ok(slot)
    }

    /// Gives back a slot taken by [`SystrapSpace::take_slot`] whose region is no
    /// longer mapped (or never was).
    fn free_slot(&self, slot: usize) {
        lock(&self.threads).busy[slot] = false;
    }

    /// Unmaps the region of `slot` and frees the slot; a region that cannot be
    /// unmapped keeps its slot taken (a new region is never mapped over a live one).
    fn release_slot(&self, st: &mut Commands, slot: usize) {
        let unmap = [slot_base(slot), REGION_SIZE, 0, 0, 0, 0];
        match self.call(st, libc::SYS_munmap, unmap) {
            Ok(_) => self.free_slot(slot),
            Err(e) => {
                tracing::debug!(pid = self.pid, error = %e.name(), "unmapping an ended thread's region")
            }
        }
    }

    /// A new application thread: a fresh region mapped at a free slot, then a
    /// `clone` command; the thread closes its copy of the syscall thread's fds,
    /// installs its alternate stack and the application filter, and reports in.
    pub(super) fn new_thread(&self) -> SysResult<Arc<StubThread>> {
        let slot = self.start_thread()?;
        self.settle_thread(slot)
    }

    /// Makes a new application thread (see [`SystrapSpace::new_thread`]) without
    /// waiting for it to come up: returns its slot, for
    /// [`SystrapSpace::settle_thread`] (the thread's own host thread, when it
    /// adopts its context) to wait for its start-up report. The caller's task goes
    /// on meanwhile.
    pub(super) fn start_thread(&self) -> SysResult<usize> {
        self.settle()?;
        let slot = self.take_slot()?;
        let mut st = self.sys.lock();
        // A thread still starting reads its alternate stack from the command page,
        // which this thread's replaces: it must be up first.
        self.settle_threads();
        let r = self.start_thread_in(&mut st, slot);
        match r {
            Ok((chan, tid)) => {
                let deadline = Instant::now() + START_TIMEOUT;
                lock(&self.starting_threads).push((slot, chan, tid, deadline));
                Ok(slot)
            }
            Err(e) => {
                self.release_slot(&mut st, slot);
                Err(e)
            }
        }
    }

    /// Waits until the thread [`SystrapSpace::start_thread`] made at `slot` has
    /// reported in (if no one has seen it yet) and returns it. A thread that does
    /// not come up kills the stub (ESRCH).
    pub(super) fn settle_thread(&self, slot: usize) -> SysResult<Arc<StubThread>> {
        // Held while waiting: whoever looks for the thread meanwhile finds it in
        // the table once this is done.
        let mut starting = lock(&self.starting_threads);
        if let Some(i) = starting.iter().position(|s| s.0 == slot) {
            let (slot, chan, tid, deadline) = starting.swap_remove(i);
            return self.await_thread(slot, chan, tid, deadline);
        }
        drop(starting);
        let threads = lock(&self.threads);
        threads
            .used
            .get(slot)
            .cloned()
            .flatten()
            .ok_or(Errno::ESRCH)
    }

    /// Waits for every thread still starting (see [`SystrapSpace::settle_thread`]).
    fn settle_threads(&self) {
        let mut starting = lock(&self.starting_threads);
        for (slot, chan, tid, deadline) in std::mem::take(&mut *starting) {
            // A thread that does not come up kills the stub.
            let _ = self.await_thread(slot, chan, tid, deadline);
        }
    }

    /// One command: the region's memfd is received, mapped at the slot and closed,
    /// and the thread cloned onto it. Returns the region's channel and the thread's
    /// id; the thread reads its alternate stack from the command page until it
    /// reports in.
    fn start_thread_in(&self, st: &mut Commands, slot: usize) -> SysResult<(Channel, i32)> {
        let (memfd, new) = Channel::new(slot)?;
        let base = slot_base(slot);
        let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        let shared = (libc::MAP_SHARED | libc::MAP_FIXED) as u64;
        self.sys.set_thread_altstack(st, slot);
        let stack = base + stub::OFF_ALTSTACK_BASE as u64;
        let ctid = base + OFF_TID as u64;
        let (theirs, i, r) = self.with_fds(st, &[memfd.as_raw_fd()], |fds| {
            vec![
                Call::expecting(
                    libc::SYS_mmap,
                    [base, REGION_SIZE, rw, shared, fds[0], 0],
                    base,
                ),
                Call::new(libc::SYS_close, [fds[0], 0, 0, 0, 0, 0]),
                Call::new(libc::SYS_clone, [stub::THREAD_FLAGS, stack, 0, ctid, 0, 0]),
            ]
        })?;
        drop(memfd);
        if i >= 1 {
            self.sys.closed(st, &theirs);
        } else {
            // The mapping failed (or mapped elsewhere): the fd is still open.
            self.close(st, theirs[0])?;
        }
        let tid = match (i, r) {
            (2, r) => r?,
            (0, Ok(_)) => return Err(Errno::EIO),
            (_, r) => return Err(r.err().unwrap_or(Errno::EIO)),
        };
        let tid = i32::try_from(tid).map_err(|_| Errno::EIO)?;
        Ok((new, tid))
    }

    /// Waits until thread `tid`, cloned onto the region of `new` (mapped at
    /// `slot`), reports in, and takes it into the slot table.
    fn await_thread(
        &self,
        slot: usize,
        new: Channel,
        tid: i32,
        deadline: Instant,
    ) -> SysResult<Arc<StubThread>> {
        let ready = new
            .wait_parked(|| self.alive(), Some(deadline), false)
            .map(|()| new.reported_ready());
        // The tid comes from the kernel; the nonce check costs one small copy and
        // also catches a thread that reported in through some other region.
        if ready != Ok(true) || !new.mapped_by(tid) {
            tracing::warn!(pid = self.pid, tid, "systrap stub thread did not start");
            // A half-started thread cannot be told apart from a broken stub.
            self.kill();
            return Err(Errno::EAGAIN);
        }
        let thread = Arc::new(StubThread {
            slot,
            tid,
            chan: Mutex::new(new),
            signaller: common::ThreadSignaller::new(self.pid, tid).inspect_err(|_| self.kill())?,
        });
        lock(&self.threads).used[slot] = Some(thread.clone());
        Ok(thread)
    }

    /// Whether `site` is a patched system call site (see
    /// [`AddressSpace::note_patched_syscall`]).
    pub(super) fn is_patched(&self, site: u64) -> bool {
        lock(&self.patched).contains(&site)
    }

    /// Whether `thread` is the only thread of this space, counting threads being
    /// made (a thread is only made from a live one, so none can follow).
    pub(super) fn is_last_thread(&self, thread: &StubThread) -> bool {
        let threads = lock(&self.threads);
        threads.busy.iter().filter(|b| **b).count() == 1
            && threads.busy.get(thread.slot) == Some(&true)
    }

    /// Ends application thread `thread`: it leaves the slot table, runs `exit` from
    /// its handler, and once the kernel reports it gone the slot can be reused (its
    /// region is unmapped with the next edit, or replaced by the next thread's).
    pub(super) fn end_thread(&self, thread: &Arc<StubThread>) {
        if self.dead.load(Ordering::SeqCst) {
            return;
        }
        {
            let mut threads = lock(&self.threads);
            match threads.used.get(thread.slot) {
                Some(Some(t)) if Arc::ptr_eq(t, thread) => threads.used[thread.slot] = None,
                _ => return,
            }
        }
        let mut chan = lock(&thread.chan);
        chan.ended = true;
        chan.region.put_u64(OFF_REQ_NR, libc::SYS_exit as u64);
        chan.region.put_u64(OFF_REQ_NR + 8, 0);
        chan.release(stub::STATE_REQUEST);
        let deadline = Instant::now() + START_TIMEOUT;
        if !chan.wait_exited(|| self.alive(), deadline) {
            if !self.dead.load(Ordering::SeqCst) {
                tracing::warn!(
                    pid = self.pid,
                    tid = thread.tid,
                    "systrap stub thread did not exit"
                );
                self.kill();
            }
            return;
        }
        drop(chan);
        // Its region goes with the next edit of the space, or a new thread's
        // region replaces it: no command of its own.
        let mut threads = lock(&self.threads);
        threads.stale[thread.slot] = true;
        threads.busy[thread.slot] = false;
    }

    /// A copy-on-write copy of this stub, forked by its syscall thread: the child
    /// starts as a copy of that thread alone, takes its own command memfd and
    /// control socket, unmaps the parent's regions, maps its first thread's region
    /// (all three fds sent with the fork), clones its first application thread
    /// there and reports in with both ids. This returns as soon as the fork is
    /// made: the child sets itself up while the parent's task goes on, and its
    /// report is taken (and checked against the kernel's ids) by
    /// [`SystrapSpace::settle`] before anything uses the child's syscall thread or
    /// threads, at the latest when its first context is adopted. Shared file
    /// mappings stay shared.
    pub(super) fn fork(&self) -> SysResult<Arc<SystrapSpace>> {
        self.settle()?;
        let (stub_end, child_sys) = Syscaller::new(self.spin && !self.cpus.overloaded())?;
        let (region, chan) = Channel::new(0)?;
        let mut st = self.sys.lock();
        let fds = [
            child_sys.memfd().as_raw_fd(),
            stub_end.as_raw_fd(),
            region.as_raw_fd(),
        ];
        // The child clones its first application thread itself, at slot 0, with the
        // alternate stack its own command page names.
        child_sys.set_thread_altstack(&mut child_sys.lock(), 0);
        // One command: the fds are received, then the fork made.
        let (theirs, i, cloned) = self.with_fds(&mut st, &fds, |theirs| {
            let numbers = [theirs[0], theirs[1], theirs[2]];
            // The last child reads its numbers from our command page right after
            // its fork: other numbers wait until it has (usually they are the same,
            // the lowest free ones).
            if self.sys.child_fds() != numbers {
                let last = lock(&self.last_child).upgrade();
                if let Some(last) = last {
                    let _ = last.settle();
                }
            }
            self.sys.set_child_fds(numbers);
            vec![Call::new(
                libc::SYS_clone,
                [stub::FORK_FLAGS, 0, 0, 0, 0, 0],
            )]
        })?;
        drop((stub_end, region));
        debug_assert_eq!(i, 0);
        match cloned {
            // The syscall thread closed them right after the fork.
            Ok(_) => self.sys.closed(&mut st, &theirs),
            Err(_) => {
                for fd in theirs {
                    if let Err(e) = self.close(&mut st, fd) {
                        // It would keep the child's fds: not a state to go on in.
                        tracing::warn!(pid = self.pid, error = %e.name(), "systrap stub kept a fork's fds");
                        self.kill();
                    }
                }
            }
        }
        drop(st);
        let pid = i32::try_from(cloned?).map_err(|_| Errno::EIO)?;
        let deadline = Instant::now() + START_TIMEOUT;
        let pidfd = match sys::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                // SAFETY: an unreaped child of the zygote (which reaps only when
                // told): the number is still the child's.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                self.zygote.reap(pid);
                return Err(e);
            }
        };
        let child = Arc::new(SystrapSpace::with(
            pid,
            pidfd,
            child_sys,
            self.spin,
            self.cpus.clone(),
            self.registry.clone(),
            self.zygote.clone(),
        ));
        // The child's code is a copy of ours, patched sites included.
        *lock(&child.patched) = lock(&self.patched).clone();
        // From here on the Drop of `child` kills it.
        child.context_taken.store(true, Ordering::SeqCst);
        let slot = child.take_slot()?;
        debug_assert_eq!(slot, 0);
        *lock(&child.start) = Some((chan, deadline));
        child.starting.store(true, Ordering::Release);
        *lock(&self.last_child) = Arc::downgrade(&child);
        Ok(child)
    }

    /// A failed memory copy: ESRCH means the stub died (its pid is still ours, held
    /// as a zombie until this space is gone), which is recorded, and reported as
    /// the EFAULT of memory that is not there.
    fn copy_failed(&self, e: Errno) -> Errno {
        if e == Errno::ESRCH {
            self.note_dead();
            return Errno::EFAULT;
        }
        e
    }

    /// Kills the stub (a thread that cannot be brought up or ended leaves it in an
    /// unknown state).
    pub(super) fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
        let _ = sys::pidfd_signal(&self.pidfd, libc::SIGKILL);
    }

    /// Maps file `fd` in the stub through the syscall thread: `[addr, len, prot]`,
    /// `flags` (MAP_FIXED included), at `offset`.
    fn map_fd_locked(
        &self,
        st: &mut Commands,
        fd: BorrowedFd<'_>,
        [addr, len, prot]: [u64; 3],
        flags: u64,
        offset: u64,
    ) -> SysResult<()> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(Errno::ESRCH);
        }
        let (theirs, i, r) = self.with_fds(st, &[fd.as_raw_fd()], |fds| {
            vec![
                Call::expecting(
                    libc::SYS_mmap,
                    [addr, len, prot, flags, fds[0], offset],
                    addr,
                ),
                Call::new(libc::SYS_close, [fds[0], 0, 0, 0, 0, 0]),
            ]
        })?;
        if i == 1 {
            self.sys.closed(st, &theirs);
            return r.map(|_| ());
        }
        let c = self.close(st, theirs[0]);
        match r {
            Ok(_) => Err(Errno::EIO),
            Err(e) => Err(e),
        }?;
        c
    }
}

/// Sends `fds` with an 8-byte `seq` on `sock`.
pub(super) fn send_fds(sock: BorrowedFd<'_>, fds: &[i32], seq: u64) -> SysResult<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let data = seq.to_le_bytes();
    let iov = [std::io::IoSlice::new(&data)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
        .map_err(|e| Errno(e as i32))?;
    Ok(())
}

/// Validates `[addr, addr+len)` for a mapping operation; returns the page-rounded
/// length.
fn check_range(addr: u64, len: u64) -> SysResult<u64> {
    common::check_range(addr, len, MAX_USER_ADDRESS)
}

impl AddressSpace for SystrapSpace {
    fn syscall_trampoline(&self) -> Option<u64> {
        Some(stub::TRAMP)
    }

    fn note_patched_syscall(&self, site: u64) {
        lock(&self.patched).insert(site);
    }

    fn on_death(&self, hook: Box<dyn FnOnce() + Send>) {
        self.registry.on_death(self, hook);
    }

    fn gone(&self) -> bool {
        !self.alive()
    }

    fn cpu_time(&self) -> Option<(std::time::Duration, std::time::Duration)> {
        crate::platform::common::process_cpu_time(self.pid)
    }

    fn cpu_runtime(&self) -> Option<std::time::Duration> {
        crate::platform::common::process_cpu_runtime(self.pid)
    }

    fn stub_pid(&self) -> Option<i32> {
        Some(self.pid)
    }

    fn map(
        &self,
        addr: u64,
        len: u64,
        prot: i32,
        shared: bool,
        backing: Backing<'_>,
    ) -> SysResult<()> {
        let len = check_range(addr, len)?;
        let kind = if shared {
            libc::MAP_SHARED
        } else {
            libc::MAP_PRIVATE
        };
        let prot = prot as u32 as u64;
        match backing {
            Backing::Anonymous | Backing::AnonymousNoReserve => {
                let noreserve = if matches!(backing, Backing::AnonymousNoReserve) {
                    libc::MAP_NORESERVE
                } else {
                    0
                };
                let flags = (kind | libc::MAP_ANONYMOUS | libc::MAP_FIXED | noreserve) as u64;
                self.request(libc::SYS_mmap, [addr, len, prot, flags, u64::MAX, 0])?;
            }
            Backing::File { fd, offset } => {
                if !offset.is_multiple_of(PAGE_SIZE) {
                    return Err(Errno::EINVAL);
                }
                let flags = (kind | libc::MAP_FIXED) as u64;
                self.settle()?;
                let mut st = self.sys.lock();
                self.map_fd_locked(&mut st, fd, [addr, len, prot], flags, offset)?;
            }
        }
        Ok(())
    }

    fn map_anonymous(&self, parts: &[(u64, u64, i32)]) -> SysResult<()> {
        let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED) as u64;
        let mut calls = Vec::with_capacity(parts.len());
        for &(addr, len, prot) in parts {
            let len = check_range(addr, len)?;
            let prot = prot as u32 as u64;
            calls.push(Call::expecting(
                libc::SYS_mmap,
                [addr, len, prot, flags, u64::MAX, 0],
                addr,
            ));
        }
        self.settle()?;
        for chunk in calls.chunks(stub::C_MAX_CALLS) {
            let mut st = self.sys.lock();
            if self.dead.load(Ordering::SeqCst) {
                return Err(Errno::ESRCH);
            }
            // A batch stops at the first call that fails (or maps elsewhere,
            // which MAP_FIXED never does): that call's result.
            match self.sys.batch(&mut st, chunk, &|| self.alive())? {
                (i, Ok(at)) if i + 1 == chunk.len() && at == chunk[i].expect => {}
                (_, Err(e)) => return Err(e),
                (_, Ok(_)) => return Err(Errno::EIO),
            }
        }
        Ok(())
    }

    fn unmap(&self, addr: u64, len: u64) -> SysResult<()> {
        let len = check_range(addr, len)?;
        self.request(libc::SYS_munmap, [addr, len, 0, 0, 0, 0])
            .map(|_| ())
    }

    fn remap(&self, old: u64, old_len: u64, new: u64, new_len: u64) -> SysResult<()> {
        let old_len = check_range(old, old_len)?;
        let new_len = check_range(new, new_len)?;
        let flags = (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64;
        self.request(libc::SYS_mremap, [old, old_len, new_len, flags, new, 0])
            .map(|_| ())
    }

    fn protect(&self, addr: u64, len: u64, prot: i32) -> SysResult<()> {
        let len = check_range(addr, len)?;
        let prot = prot as u32 as u64;
        self.request(libc::SYS_mprotect, [addr, len, prot, 0, 0, 0])
            .map(|_| ())
    }

    fn read(&self, addr: u64, buf: &mut [u8]) -> SysResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.dead.load(Ordering::SeqCst) {
            return Err(Errno::EFAULT);
        }
        let n = common::user_span(addr, buf.len(), MAX_USER_ADDRESS)?;
        common::read_process(self.pid, addr, &mut buf[..n]).map_err(|e| self.copy_failed(e))
    }

    fn write(&self, addr: u64, buf: &[u8]) -> SysResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.dead.load(Ordering::SeqCst) {
            return Err(Errno::EFAULT);
        }
        let n = common::user_span(addr, buf.len(), MAX_USER_ADDRESS)?;
        common::write_process(self.pid, addr, &buf[..n]).map_err(|e| self.copy_failed(e))
    }
}

impl Drop for SystrapSpace {
    fn drop(&mut self) {
        // Through the pidfd, so the signal cannot hit a recycled pid; then, the pid no
        // longer used for memory copies, the zygote may reap the zombie.
        if let Err(e) = sys::pidfd_signal(&self.pidfd, libc::SIGKILL) {
            if e != Errno::ESRCH {
                tracing::warn!(pid = self.pid, error = %e.name(), "killing systrap stub");
            }
        }
        self.zygote.reap(self.pid);
    }
}

pub(super) use crate::platform::common::seqpacket_pair as socketpair;

impl Watched for SystrapSpace {
    fn known_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    fn watch_fds(&self, out: &mut Vec<RawFd>) {
        out.push(self.pidfd.as_raw_fd());
    }

    fn check_dead(&self) -> bool {
        !self.alive()
    }

    fn hooks(&self) -> &DeathHooks {
        &self.death_hooks
    }
}

#[cfg(test)]
mod spin_tests {
    use super::{SpinStats, SPIN_PROBE, SPIN_SCORE_MAX};
    use std::sync::atomic::Ordering;

    /// Both sides' scores say sleep, and each hand-off asks the handler's side (at the
    /// release) and then the sentry's (at the wait): each side still probes once in
    /// [`SPIN_PROBE`] of its own hand-offs, so a calmer host is noticed by both.
    #[test]
    fn both_sides_probe_while_both_scores_say_sleep() {
        let s = SpinStats::new();
        s.sentry.store(-SPIN_SCORE_MAX, Ordering::Relaxed);
        s.stub.store(-SPIN_SCORE_MAX, Ordering::Relaxed);
        let (mut stub, mut sentry) = (0, 0);
        for _ in 0..4 * SPIN_PROBE {
            stub += u32::from(SpinStats::worth(&s.stub, &s.stub_probe));
            sentry += u32::from(SpinStats::worth(&s.sentry, &s.sentry_probe));
        }
        assert_eq!((stub, sentry), (4, 4));
    }

    /// A caught probe makes the side spin again at once; misses take it back down.
    #[test]
    fn a_caught_probe_turns_spinning_back_on() {
        let s = SpinStats::new();
        SpinStats::record(&s.sentry, false);
        SpinStats::record(&s.sentry, false);
        assert!(s.sentry.load(Ordering::Relaxed) <= 0);
        SpinStats::record(&s.sentry, true);
        assert!(SpinStats::worth(&s.sentry, &s.sentry_probe));
    }
}
