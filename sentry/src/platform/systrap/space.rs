//! An address space: one stub process, edited through requests its signal handler
//! executes; and its threads, each with its own region (slot).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::platform::common;
use crate::platform::{AddressSpace, Backing, PAGE_SIZE};

use super::stub::{
    self, slot_base, MAX_SLOTS, OFF_CTLFD, OFF_PID, OFF_REQ_NR, OFF_REQ_RESULT, OFF_SCRATCH,
    OFF_SENTRY_SLEEPING, OFF_SIGNO, OFF_STATE, OFF_STUB_NOSPIN, OFF_STUB_SLEEPING, OFF_TID,
    OFF_UCONTEXT, READY_RIP, REGION, REGION_SIZE, STATE_PARKED,
};
use super::sys::{self, SharedMapping};
use super::MAX_USER_ADDRESS;

/// How long the sentry spins on the state word before it sleeps on the futex. The
/// cross-process spin hand-off costs ~2-3 us here and the futex path ~80 us, so a
/// short system call must be caught while spinning; a longer stretch of application
/// code costs this much sentry CPU once.
pub(super) const SENTRY_SPIN: Duration = Duration::from_micros(50);
/// How long one futex sleep lasts before the sentry checks that the stub is alive.
const LIVENESS_PERIOD: Duration = Duration::from_millis(200);
/// How long a new stub may take to report in.
const START_TIMEOUT: Duration = Duration::from_secs(10);

// Region scratch layout for a `recvmsg` request (stub addresses).
const SCRATCH_MSGHDR: usize = OFF_SCRATCH;
const SCRATCH_IOV: usize = OFF_SCRATCH + 64;
const SCRATCH_DATA: usize = OFF_SCRATCH + 128;
const SCRATCH_CMSG: usize = OFF_SCRATCH + 256;
/// How many queued leftovers of failed fd transfers one transfer skips at most.
const MAX_STALE_MESSAGES: usize = 4;
/// `CMSG_SPACE(sizeof(int))` on x86-64.
const CMSG_SPACE_FD: usize = 24;
/// `CMSG_SPACE(2 * sizeof(int))` on x86-64 (also its `CMSG_LEN`, which the forked
/// child checks).
const CMSG_SPACE_FDS2: usize = 24;

/// The sentry's view of one stub thread's shared region and the hand-off protocol
/// on it.
pub(super) struct Channel {
    pub(super) region: SharedMapping,
    /// The stub address the region is mapped at in the stub (its slot's).
    base: u64,
    /// Set (under the channel's lock) when its thread is told to exit: a request
    /// released on it afterwards would wait for a thread that is gone. Someone who
    /// picked the thread from a list made before it ended must look here first.
    ended: bool,
    /// The sentry's end of this thread's own control socket (fds travel through
    /// it). Each stub thread has its own fd table and socket, so an fd passed to one
    /// thread is never within reach of another thread's application code.
    control: OwnedFd,
    /// The stub's fd number of its end of that socket (known once the stub has it).
    ctl_fd: u64,
}

impl Channel {
    /// Hands the stub over (`state` is RESUME or REQUEST) and wakes it if it sleeps.
    pub(super) fn release(&self, state: u32) {
        // Written only when set: a store on the hot path would pull the line the
        // handler spins on away from it once more.
        let nospin = self.region.word(OFF_STUB_NOSPIN);
        if nospin.load(Ordering::Relaxed) != 0 {
            nospin.store(0, Ordering::Relaxed);
        }
        self.region.word(OFF_STATE).swap(state, Ordering::SeqCst);
        if self.region.word(OFF_STUB_SLEEPING).load(Ordering::SeqCst) != 0 {
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
        if spin {
            let start = Instant::now();
            let mut n = 0u32;
            loop {
                if state.load(Ordering::Acquire) == STATE_PARKED {
                    return Ok(());
                }
                std::hint::spin_loop();
                n += 1;
                if n.is_multiple_of(64) && start.elapsed() >= SENTRY_SPIN {
                    break;
                }
            }
        }
        let sleeping = self.region.word(OFF_SENTRY_SLEEPING);
        loop {
            sleeping.swap(1, Ordering::SeqCst);
            let cur = state.load(Ordering::SeqCst);
            if cur != STATE_PARKED {
                sys::futex_wait(state, cur, LIVENESS_PERIOD);
            }
            sleeping.store(0, Ordering::SeqCst);
            if state.load(Ordering::SeqCst) == STATE_PARKED {
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

    /// The stub address of offset `off` of the region.
    fn addr(&self, off: usize) -> u64 {
        self.base + off as u64
    }

    /// A fresh region for `slot` and control socket: the region's memfd and the
    /// socket's stub end (both to pass to the stub), and the channel on them, with
    /// the header the stub's start-up code reads.
    fn new(slot: usize) -> SysResult<(OwnedFd, OwnedFd, Channel)> {
        let memfd = sys::memfd_sized(c"rvisor-systrap-region", REGION_SIZE)?;
        let region = SharedMapping::new(&memfd, REGION_SIZE as usize)?;
        let mut header = vec![0u8; stub::OFF_ALTSTACK_BASE];
        stub::init_region(&mut header, slot);
        let nonce = &mut header[stub::OFF_NONCE..stub::OFF_NONCE + stub::NONCE_LEN];
        if crate::sys::host::random_bytes(nonce, 0)? != stub::NONCE_LEN {
            return Err(Errno::EIO);
        }
        region.write(0, &header);
        let (control, stub_end) = socketpair()?;
        Ok((
            memfd,
            stub_end,
            Channel {
                region,
                base: slot_base(slot),
                ended: false,
                control,
                ctl_fd: 0,
            },
        ))
    }

    /// The sentry's end of this thread's control socket.
    pub(super) fn control(&self) -> BorrowedFd<'_> {
        self.control.as_fd()
    }

    /// Tells the parked handler to stop spinning and sleep: the answer will be long.
    pub(super) fn stop_spinning(&self) {
        self.region
            .word(OFF_STUB_NOSPIN)
            .store(1, Ordering::Relaxed);
    }

    /// Whether the stub parked with the "ready" report of a new stub or thread: a
    /// SIGILL at the `ud2` of its start-up code.
    fn reported_ready(&self) -> bool {
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

    /// Writes a `struct msghdr` and its one `iovec` for a recvmsg into the scratch
    /// area (8 data bytes, `cmsg_space` bytes of control, zeroed).
    fn prepare_recvmsg(&self, cmsg_space: usize) {
        // struct msghdr { name, namelen(+pad), iov, iovlen, control, controllen, flags }
        let mut hdr = [0u8; 56];
        hdr[16..24].copy_from_slice(&self.addr(SCRATCH_IOV).to_le_bytes());
        hdr[24..32].copy_from_slice(&1u64.to_le_bytes());
        hdr[32..40].copy_from_slice(&self.addr(SCRATCH_CMSG).to_le_bytes());
        hdr[40..48].copy_from_slice(&(cmsg_space as u64).to_le_bytes());
        let mut iovec = [0u8; 16];
        iovec[0..8].copy_from_slice(&self.addr(SCRATCH_DATA).to_le_bytes());
        iovec[8..16].copy_from_slice(&8u64.to_le_bytes());
        self.region.write(SCRATCH_IOV, &iovec);
        self.region.write(SCRATCH_MSGHDR, &hdr);
        self.region.write(SCRATCH_CMSG, &vec![0u8; cmsg_space]);
    }
}

/// One stub thread: its slot, its region and how to signal it.
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
    /// The stub's pid (its first thread, which never exits before the process: so
    /// memory copies through this pid always find the address space).
    pub pid: i32,
    /// A pidfd: signals through it can never hit a recycled pid.
    pub pidfd: OwnedFd,
    /// Serializes use of the control socket across the threads' channels, and keeps
    /// received fds from existing in the stub at the moment of a fork.
    fd_lock: Mutex<()>,
    /// The threads by slot.
    threads: Mutex<Slots>,
    /// Set once the stub is known to be dead.
    pub dead: AtomicBool,
    /// Whether the first context of this space has been handed out.
    pub context_taken: AtomicBool,
    /// Sequence number of the next fd transfer.
    fd_seq: AtomicU64,
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
    death_hooks: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
}

/// Which slots hold what.
#[derive(Default)]
struct Slots {
    /// The live threads by slot (index).
    used: Vec<Option<Arc<StubThread>>>,
    /// Slots taken: a live thread's, or one being set up or ended.
    busy: Vec<bool>,
    /// Free slots whose region is still mapped in the stub (unmapped at the next
    /// space edit, unless reused first, which maps over it).
    stale: Vec<usize>,
}

impl Slots {
    fn live(&self) -> Vec<Arc<StubThread>> {
        self.used.iter().flatten().cloned().collect()
    }
}

/// Locks `m`, ignoring poisoning: the guarded data stays consistent on its own.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SystrapSpace {
    /// Asks the zygote for a new stub and waits until it reports in.
    pub(super) fn new(
        zygote: &Arc<super::Zygote>,
        zygote_alive: impl Fn() -> bool,
        spin: bool,
        cpus: Arc<super::Cpus>,
        registry: Arc<super::Registry>,
    ) -> SysResult<Self> {
        // The child takes the socket as fd 0, the channel's `ctl_fd`.
        let (memfd, stub_end, chan) = Channel::new(0)?;
        zygote.spawn(&[memfd.as_raw_fd(), stub_end.as_raw_fd()])?;
        drop(stub_end);
        drop(memfd);
        let deadline = Instant::now() + START_TIMEOUT;
        if let Err(e) = chan.wait_parked(zygote_alive, Some(deadline), false) {
            tracing::warn!(error = %e.name(), "systrap stub did not start");
            // A child that got as far as publishing its pid must not linger.
            let pid = chan.region.get_u64(OFF_PID) as i32;
            if pid > 0 {
                if let Ok(fd) = sys::pidfd_open(pid) {
                    let _ = sys::pidfd_signal(&fd, libc::SIGKILL);
                    zygote.reap(pid);
                }
            }
            return Err(e);
        }
        let pid = chan.region.get_u64(OFF_PID) as i32;
        let pidfd = sys::pidfd_open(pid)?;
        let kill = |e: Errno| {
            let _ = sys::pidfd_signal(&pidfd, libc::SIGKILL);
            zygote.reap(pid);
            e
        };
        if !chan.reported_ready() {
            tracing::warn!(pid, "systrap stub reported in with a bad frame");
            return Err(kill(Errno::EIO));
        }
        let thread = Self::thread(0, pid, pid, chan).map_err(kill)?;
        Ok(Self::with(
            pid,
            pidfd,
            thread,
            spin,
            cpus,
            registry,
            zygote.clone(),
        ))
    }

    fn with(
        pid: i32,
        pidfd: OwnedFd,
        first: Arc<StubThread>,
        spin: bool,
        cpus: Arc<super::Cpus>,
        registry: Arc<super::Registry>,
        zygote: Arc<super::Zygote>,
    ) -> Self {
        let slot = first.slot;
        let mut threads = Slots {
            used: vec![None; slot + 1],
            busy: vec![false; slot + 1],
            stale: Vec::new(),
        };
        threads.used[slot] = Some(first);
        threads.busy[slot] = true;
        SystrapSpace {
            pid,
            pidfd,
            fd_lock: Mutex::new(()),
            threads: Mutex::new(threads),
            dead: AtomicBool::new(false),
            context_taken: AtomicBool::new(false),
            fd_seq: AtomicU64::new(0),
            spin,
            cpus,
            registry,
            zygote,
            death_hooks: Mutex::new(Vec::new()),
        }
    }

    fn thread(slot: usize, pid: i32, tid: i32, chan: Channel) -> SysResult<Arc<StubThread>> {
        Ok(Arc::new(StubThread {
            slot,
            tid,
            chan: Mutex::new(chan),
            signaller: common::ThreadSignaller::new(pid, tid)?,
        }))
    }

    /// The live threads, as a space edit lists them.
    #[cfg(test)]
    pub(super) fn live_threads(&self) -> Vec<Arc<StubThread>> {
        lock(&self.threads).live()
    }

    /// The process's first thread (the only one of a new space).
    pub(super) fn first_thread(&self) -> Option<Arc<StubThread>> {
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

    /// Runs `f` with the channel of some parked thread of the stub: one nobody
    /// drives right now if there is one (a task's own thread is parked while its
    /// task edits the space), else the first thread's once it is free. The first
    /// thread never ends while the process lives (see [`SystrapSpace::end_thread`]),
    /// so waiting for it cannot end on a thread that is gone.
    fn with_channel<R>(&self, f: impl FnOnce(&Channel) -> SysResult<R>) -> SysResult<R> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(Errno::ESRCH);
        }
        let threads = lock(&self.threads).live();
        if let Some(chan) = self.any_parked(&threads) {
            self.flush_stale(&chan);
            return f(&chan);
        }
        let first = threads
            .iter()
            .find(|t| t.tid == self.pid)
            .ok_or(Errno::ESRCH)?;
        let chan = lock(&first.chan);
        self.flush_stale(&chan);
        f(&chan)
    }

    /// The channel of a thread of `threads` that nobody drives right now and that
    /// has not ended since the list was made.
    pub(super) fn any_parked<'a>(
        &self,
        threads: &'a [Arc<StubThread>],
    ) -> Option<MutexGuard<'a, Channel>> {
        threads
            .iter()
            .filter_map(|t| t.chan.try_lock().ok())
            .find(|chan| !chan.ended)
    }

    /// Unmaps the regions of ended threads that could not be unmapped at their end,
    /// through the parked thread of `chan`. Under the slot lock, so no slot is taken
    /// meanwhile.
    fn flush_stale(&self, chan: &Channel) {
        let mut threads = lock(&self.threads);
        for slot in std::mem::take(&mut threads.stale) {
            if threads.busy.get(slot) == Some(&false) {
                let unmap = [slot_base(slot), REGION_SIZE, 0, 0, 0, 0];
                if let Err(e) = self.request_locked(chan, libc::SYS_munmap, unmap) {
                    tracing::debug!(pid = self.pid, error = %e.name(), "unmapping an ended thread's region");
                }
            }
        }
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

    /// Runs (once) the hooks registered for the stub's death; the death watcher's.
    pub(super) fn run_death_hooks(&self) {
        let hooks = std::mem::take(&mut *lock(&self.death_hooks));
        for h in hooks {
            h();
        }
    }

    /// Records that the stub is gone.
    pub(super) fn note_dead(&self) {
        if !self.dead.swap(true, Ordering::SeqCst) {
            tracing::warn!(pid = self.pid, "systrap stub died");
        }
    }

    /// Runs system call `nr` inside the parked stub (the caller holds the channel).
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

    /// Runs system call `nr` inside the stub.
    fn request(&self, nr: i64, args: [u64; 6]) -> SysResult<u64> {
        self.with_channel(|chan| self.request_locked(chan, nr, args))
    }

    /// Runs a `clone` with `args` on the parked thread of `chan`; returns the new
    /// task's id.
    fn clone_locked(&self, chan: &Channel, args: [u64; 5]) -> SysResult<i32> {
        chan.region.put_u64(OFF_REQ_NR, libc::SYS_clone as u64);
        for (i, a) in args.iter().enumerate() {
            chan.region.put_u64(OFF_REQ_NR + 8 * (i + 1), *a);
        }
        chan.release(stub::STATE_CLONE);
        chan.wait_parked(|| self.alive(), None, self.spin)?;
        let ret = chan.region.get_u64(OFF_REQ_RESULT) as i64;
        if (-4095..0).contains(&ret) {
            return Err(Errno(-ret as i32));
        }
        i32::try_from(ret).map_err(|_| Errno::EIO)
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
                threads.busy.len() - 1
            }
        };
        threads.busy[slot] = true;
        // Its new region replaces any stale one.
        threads.stale.retain(|&s| s != slot);
        Ok(slot)
    }

    /// Gives back a slot taken by [`SystrapSpace::take_slot`]; `mapped`: its region
    /// may still be mapped in the stub.
    fn free_slot(&self, slot: usize, mapped: bool) {
        let mut threads = lock(&self.threads);
        threads.busy[slot] = false;
        if mapped {
            threads.stale.push(slot);
        }
    }

    /// A new thread of this stub, cloned by the thread parked on `chan` (held by
    /// the caller): a new region mapped at a free slot, then a clone request; the
    /// child installs its alternate stack there and reports in.
    pub(super) fn new_thread(&self, chan: &Channel) -> SysResult<Arc<StubThread>> {
        let slot = self.take_slot()?;
        // Reserved while it is set up (a later free_slot only trims empty tails).
        let r = self.new_thread_in(chan, slot);
        if r.is_err() {
            self.free_slot(slot, true);
        }
        r
    }

    fn new_thread_in(&self, chan: &Channel, slot: usize) -> SysResult<Arc<StubThread>> {
        let (memfd, stub_end, mut new) = Channel::new(slot)?;
        let base = slot_base(slot);
        self.map_fd_locked(
            chan,
            memfd.as_fd(),
            [
                base,
                REGION_SIZE,
                (libc::PROT_READ | libc::PROT_WRITE) as u64,
            ],
            (libc::MAP_SHARED | libc::MAP_FIXED) as u64,
            0,
        )?;
        drop(memfd);
        let unmap = [base, REGION_SIZE, 0, 0, 0, 0];
        // The new thread's own control socket: received by the parent, so the
        // clone (which copies the parent's fd table) hands it over at the same number;
        // then each side closes the other's.
        let fd_guard = lock(&self.fd_lock);
        let theirs = match self.send_fd(chan, stub_end.as_fd()) {
            Ok(n) => n,
            Err(e) => {
                let _ = self.request_locked(chan, libc::SYS_munmap, unmap);
                return Err(e);
            }
        };
        drop(stub_end);
        let stack = base + stub::OFF_ALTSTACK_BASE as u64;
        let ctid = base + OFF_TID as u64;
        let cloned = self.clone_locked(chan, [stub::THREAD_FLAGS, stack, 0, ctid, 0]);
        let closed = self.request_locked(chan, libc::SYS_close, [theirs, 0, 0, 0, 0, 0]);
        drop(fd_guard);
        let tid = match (cloned, closed) {
            (Ok(tid), Ok(_)) => tid,
            (Err(e), _) => {
                let _ = self.request_locked(chan, libc::SYS_munmap, unmap);
                return Err(e);
            }
            (Ok(_), Err(e)) => {
                // The parent would keep the child's socket: not a state to go on in.
                tracing::warn!(pid = self.pid, error = %e.name(), "systrap parent kept a thread's socket");
                self.kill();
                return Err(Errno::EAGAIN);
            }
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let ready = new
            .wait_parked(|| self.alive(), Some(deadline), false)
            .map(|()| new.reported_ready());
        if ready != Ok(true) {
            tracing::warn!(pid = self.pid, tid, "systrap stub thread did not start");
            // A half-started thread cannot be told apart from a broken stub.
            self.kill();
            return Err(Errno::EAGAIN);
        }
        if !new.mapped_by(tid) {
            // The clone's result comes from the application-writable region: a tid
            // that is not the new thread would aim interrupts and pinning elsewhere.
            tracing::warn!(
                pid = self.pid,
                tid,
                "systrap stub reported a thread id that is not its new thread"
            );
            self.kill();
            return Err(Errno::EAGAIN);
        }
        // Before it ever runs application code, it drops the parent's socket.
        let close_parents = [chan.ctl_fd, 0, 0, 0, 0, 0];
        if let Err(e) = self.request_locked(&new, libc::SYS_close, close_parents) {
            tracing::warn!(pid = self.pid, tid, error = %e.name(), "systrap thread kept its parent's socket");
            self.kill();
            return Err(Errno::EAGAIN);
        }
        new.ctl_fd = theirs;
        let thread = Self::thread(slot, self.pid, tid, new).inspect_err(|_| self.kill())?;
        lock(&self.threads).used[slot] = Some(thread.clone());
        Ok(thread)
    }

    /// Ends `thread` unless it is the process's first, which stays parked as long as
    /// the process lives (so the pid always names a thread with the address space):
    /// it leaves the slot table, runs `exit` from its handler, and once the kernel
    /// reports it gone its region is unmapped and the slot can be reused.
    pub(super) fn end_thread(&self, thread: &Arc<StubThread>) {
        if thread.tid == self.pid || self.dead.load(Ordering::SeqCst) {
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
        // Unmapped now only through a thread parked right now (waiting for a running
        // one could wait on the application), else at the next space edit.
        self.free_slot(thread.slot, true);
        let threads = lock(&self.threads).live();
        let parked = self.any_parked(&threads);
        if let Some(chan) = parked {
            self.flush_stale(&chan);
        }
    }

    /// A copy-on-write copy of this stub holding one thread, forked by the thread
    /// parked on `chan` (held by the caller), in that thread's slot. The child gets
    /// its own region and control socket before it reports in, and has the other
    /// threads' regions unmapped; shared file mappings stay shared.
    pub(super) fn fork(&self, chan: &Channel, slot: usize) -> SysResult<SystrapSpace> {
        let (memfd, stub_end, mut new) = Channel::new(slot)?;
        // Held across the fork: no fd received for a mapping is open in the stub
        // then, and nobody else reads the control socket the child shares.
        let _fd = lock(&self.fd_lock);
        send_fds(
            chan.control(),
            &[memfd.as_raw_fd(), stub_end.as_raw_fd()],
            u64::MAX,
        )?;
        drop(stub_end);
        drop(memfd);
        // The child's recvmsg uses the header prepared here in the parent's region
        // (the parent stays parked until the child has its own).
        chan.prepare_recvmsg(CMSG_SPACE_FDS2);
        // Where the child finds the socket it shares with us.
        chan.region
            .word(OFF_CTLFD)
            .store(chan.ctl_fd as u32, Ordering::SeqCst);
        let stack = slot_base(slot) + stub::OFF_ALTSTACK_BASE as u64;
        let pid = match self.clone_locked(chan, [stub::FORK_FLAGS, stack, 0, 0, 0]) {
            Ok(pid) => pid,
            Err(e) => {
                // Nobody took the message: drop it and the fds it carries.
                self.drain_control(chan);
                return Err(e);
            }
        };
        let pidfd = sys::pidfd_open(pid)?;
        // The pid comes from the application-writable region, so it may name another
        // process of the sandbox: it is killed (and handed to the zygote to reap) only
        // once it proves to map the child's fresh region; a forged one is left alone
        // (the real child, the application's own copy, stays parked until the end).
        let kill = |e: Errno| {
            if new.mapped_by(pid) {
                let _ = sys::pidfd_signal(&pidfd, libc::SIGKILL);
                self.zygote.reap(pid);
            } else {
                tracing::warn!(
                    pid,
                    "forked systrap stub reported a pid that is not its child"
                );
            }
            e
        };
        let alive = || !sys::pidfd_exited(&pidfd);
        let deadline = Instant::now() + START_TIMEOUT;
        if let Err(e) = new.wait_parked(alive, Some(deadline), false) {
            tracing::warn!(pid, error = %e.name(), "forked systrap stub did not start");
            return Err(kill(Errno::EAGAIN));
        }
        if !new.reported_ready() {
            tracing::warn!(pid, "forked systrap stub reported in with a bad frame");
            return Err(kill(Errno::EIO));
        }
        if !new.mapped_by(pid) {
            return Err(kill(Errno::EAGAIN));
        }
        // From here on `pid` is known to be the child.
        let kill = |e: Errno| {
            let _ = sys::pidfd_signal(&pidfd, libc::SIGKILL);
            self.zygote.reap(pid);
            e
        };
        new.ctl_fd = u64::from(new.region.word(OFF_CTLFD).load(Ordering::SeqCst));
        let thread = Self::thread(slot, pid, pid, new).map_err(kill)?;
        let child = SystrapSpace::with(
            pid,
            pidfd,
            thread.clone(),
            self.spin,
            self.cpus.clone(),
            self.registry.clone(),
            self.zygote.clone(),
        );
        // From here on the Drop of `child` kills it.
        child.context_taken.store(true, Ordering::SeqCst);
        let chan = lock(&thread.chan);
        let base = slot_base(slot);
        if base > REGION {
            let unmap = [REGION, base - REGION, 0, 0, 0, 0];
            child.request_locked(&chan, libc::SYS_munmap, unmap)?;
        }
        let after = base + REGION_SIZE;
        if after < stub::STUB_END {
            let unmap = [after, stub::STUB_END - after, 0, 0, 0, 0];
            child.request_locked(&chan, libc::SYS_munmap, unmap)?;
        }
        drop(chan);
        Ok(child)
    }

    /// Reads and closes whatever is queued on the control socket in the stub (a
    /// fork's message nobody took).
    fn drain_control(&self, chan: &Channel) {
        for _ in 0..MAX_STALE_MESSAGES {
            chan.prepare_recvmsg(CMSG_SPACE_FDS2);
            let flags = (libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) as u64;
            let args = [chan.ctl_fd, chan.addr(SCRATCH_MSGHDR), flags, 0, 0, 0];
            if self.request_locked(chan, libc::SYS_recvmsg, args).is_err() {
                return;
            }
            let mut cmsg = [0u8; CMSG_SPACE_FDS2];
            chan.region.read(SCRATCH_CMSG, &mut cmsg);
            let mut len = [0u8; 8];
            len.copy_from_slice(&cmsg[0..8]);
            let len = (u64::from_le_bytes(len) as usize).min(CMSG_SPACE_FDS2);
            let mut off = 16;
            while off + 4 <= len {
                let mut fd = [0u8; 4];
                fd.copy_from_slice(&cmsg[off..off + 4]);
                let fd = i32::from_le_bytes(fd) as u64;
                let _ = self.request_locked(chan, libc::SYS_close, [fd, 0, 0, 0, 0, 0]);
                off += 4;
            }
        }
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

    /// Passes `fd` into the stub; returns its number there.
    fn send_fd(&self, chan: &Channel, fd: BorrowedFd<'_>) -> SysResult<u64> {
        debug_assert!(self.fd_lock.try_lock().is_err(), "send_fd without fd_lock");
        // Each message carries a sequence number: should an earlier transfer have
        // failed half-way and left its message queued, it is recognized and dropped
        // instead of mapping the wrong file.
        let seq = self.fd_seq.fetch_add(1, Ordering::SeqCst);
        send_fds(chan.control(), &[fd.as_raw_fd()], seq)?;
        for _ in 0..MAX_STALE_MESSAGES {
            // recvmsg updates msg_controllen and msg_flags: rewrite them every time.
            chan.prepare_recvmsg(CMSG_SPACE_FD);
            let flags = (libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) as u64;
            let n = self.request_locked(
                chan,
                libc::SYS_recvmsg,
                [chan.ctl_fd, chan.addr(SCRATCH_MSGHDR), flags, 0, 0, 0],
            )?;
            let mut cmsg = [0u8; CMSG_SPACE_FD];
            chan.region.read(SCRATCH_CMSG, &mut cmsg);
            let data = chan.region.get_u64(SCRATCH_DATA);
            let word = |r: std::ops::Range<usize>| {
                let mut b = [0u8; 4];
                b.copy_from_slice(&cmsg[r]);
                i32::from_le_bytes(b)
            };
            let mut l = [0u8; 8];
            l.copy_from_slice(&cmsg[0..8]);
            let len = u64::from_le_bytes(l);
            let (level, ty, remote) = (word(8..12), word(12..16), word(16..20));
            let has_fd = level == libc::SOL_SOCKET && ty == libc::SCM_RIGHTS && len == 20;
            if n == 8 && has_fd && data == seq {
                return Ok(remote as u64);
            }
            tracing::warn!(
                n,
                level,
                ty,
                len,
                "dropping a stale fd-passing message in the stub"
            );
            if has_fd {
                self.request_locked(chan, libc::SYS_close, [remote as u64, 0, 0, 0, 0, 0])?;
            }
        }
        Err(Errno::EIO)
    }

    /// Maps file `fd` in the stub through the parked thread of `chan`: `[addr, len,
    /// prot]`, `flags` (MAP_FIXED included), at `offset`.
    fn map_fd_locked(
        &self,
        chan: &Channel,
        fd: BorrowedFd<'_>,
        [addr, len, prot]: [u64; 3],
        flags: u64,
        offset: u64,
    ) -> SysResult<()> {
        // Held until the received fd is closed again (see `fork`).
        let _fd = lock(&self.fd_lock);
        let remote = self.send_fd(chan, fd)?;
        let r = self.request_locked(
            chan,
            libc::SYS_mmap,
            [addr, len, prot, flags, remote, offset],
        );
        let c = self.request_locked(chan, libc::SYS_close, [remote, 0, 0, 0, 0, 0]);
        r?;
        c?;
        Ok(())
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
    fn on_death(&self, hook: Box<dyn FnOnce() + Send>) {
        lock(&self.death_hooks).push(hook);
        // The watcher runs it at once if the stub is already known dead.
        if self.dead.load(Ordering::SeqCst) {
            self.registry.poke();
        }
    }

    fn cpu_time(&self) -> Option<(std::time::Duration, std::time::Duration)> {
        crate::platform::common::process_cpu_time(self.pid)
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
            Backing::Anonymous => {
                let flags = (kind | libc::MAP_ANONYMOUS | libc::MAP_FIXED) as u64;
                self.request(libc::SYS_mmap, [addr, len, prot, flags, u64::MAX, 0])?;
            }
            Backing::File { fd, offset } => {
                if !offset.is_multiple_of(PAGE_SIZE) {
                    return Err(Errno::EINVAL);
                }
                let flags = (kind | libc::MAP_FIXED) as u64;
                self.with_channel(|chan| {
                    self.map_fd_locked(chan, fd, [addr, len, prot], flags, offset)
                })?;
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

/// A SOCK_SEQPACKET pair: (sentry end, stub end), both close-on-exec.
pub(super) fn socketpair() -> SysResult<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Errno(e as i32))
}
