//! An address space: one stub process, edited through remote system calls.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::errno::{Errno, SysResult};
use crate::platform::common;
use crate::platform::death_watch::{pidfd_exited, DeathHooks, Watched};
use crate::platform::{AddressSpace, Backing, Regs, PAGE_SIZE};

use super::stub::{self, SCRATCH, STUB_CONTROL_FD};
use super::sys::{self, WaitStatus};
use super::{Shared, MAX_USER_ADDRESS};

/// Host-fault signals: a stop for one of these with a kernel `si_code` is an
/// application fault, not a stray signal.
pub(super) const FAULT_SIGNALS: [i32; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGTRAP,
];

/// How often a remote syscall lets a stray signal stop pass before giving up, so a
/// signal storm cannot keep the sentry spinning forever.
const MAX_STRAY_STOPS: usize = 1000;

// Scratch-page layout for a remote recvmsg.
const SCRATCH_MSGHDR: u64 = SCRATCH;
const SCRATCH_IOV: u64 = SCRATCH + 64;
const SCRATCH_DATA: u64 = SCRATCH + 128;
const SCRATCH_CMSG: u64 = SCRATCH + 256;
/// The `struct pollfd` parked stub threads wait on: `{ fd: 0, events: 0 }`. Nothing
/// writes there (the page starts zero-filled, and a fork copies it), except the
/// kernel's `revents` when the process is going away anyway.
const SCRATCH_POLLFD: u64 = SCRATCH + 2048;
/// How many queued leftovers of failed fd transfers one transfer skips at most.
const MAX_STALE_MESSAGES: usize = 4;
/// `CMSG_SPACE(sizeof(int))` on x86-64.
const CMSG_SPACE_FD: u64 = 24;

/// The ptrace options of every stub thread: syscall stops marked, the stub killed if
/// its tracer thread dies, and the children of remote `clone`s traced from birth.
pub(super) const OPTIONS: libc::c_int = libc::PTRACE_O_TRACESYSGOOD
    | libc::PTRACE_O_EXITKILL
    | libc::PTRACE_O_TRACEFORK
    | libc::PTRACE_O_TRACECLONE;

/// The `clone` flags of stub threads and forked stubs: defined with the sentry's
/// seccomp list, which allows exactly these.
use crate::sys::confine::{
    PTRACE_STUB_FORK_FLAGS as FORK_FLAGS, PTRACE_STUB_THREAD_FLAGS as THREAD_FLAGS,
};

/// One stub process and everything needed to drive its threads.
pub(super) struct PtraceSpace {
    /// The stub's pid (its first thread, the thread-group leader).
    pub pid: i32,
    /// What every space of the platform shares (stub addresses, CPU pinning).
    pub shared: Arc<Shared>,
    /// The stub's registers at start-up: valid segment selectors for new contexts.
    pub initial_regs: Regs,
    /// The sentry's end of the control socket (fds travel through it).
    pub control: OwnedFd,
    /// A pidfd of the process: signals through it can never hit a recycled pid.
    pub pidfd: OwnedFd,
    /// Some stub thread was found gone: the whole process is dying or dead (stub
    /// threads only end through [`PtraceSpace::end_thread`] or with the process).
    pub dead: AtomicBool,
    /// The leader has been reaped: its pid may be reused, never wait on it again.
    leader_reaped: AtomicBool,
    /// The stub thread memory copies go through (`process_vm_*` take a thread id):
    /// the leader until it exits with other threads left, then a live one.
    mem_tid: AtomicI32,
    /// Stub threads traced by some host thread of ours and not yet reaped or detached
    /// at their exit: the ones that must be reaped before the leader can be.
    live: Mutex<HashSet<i32>>,
    /// How many stub threads have not been made to exit: the last one is parked
    /// instead, so the space (its memory) lives as long as the sentry holds it.
    alive: Mutex<usize>,
    /// Host thread id -> the stub thread it traces: where that host thread's
    /// address-space operations run.
    threads: Mutex<HashMap<i32, i32>>,
    /// Whether the leader's context has been handed out (by `new_context` or as a
    /// forked child).
    pub context_taken: AtomicBool,
    /// Memory copies hold it shared while they name a stub thread by number; a dead
    /// stub thread is reaped (its number freed for any host process) only with it
    /// held exclusively, so no copy can reach a recycled pid.
    reap_lock: RwLock<()>,
    /// Serializes use of the control socket and of the scratch page, and keeps
    /// received fds from existing at the moment of a fork.
    fd_lock: Mutex<()>,
    /// Sequence number of the next fd transfer.
    fd_seq: AtomicU64,
    /// A thread pidfd per stub thread that only a death can end (every one but
    /// those the sentry is making exit): the death watcher polls them, as a traced
    /// stub's process pidfd stays unreadable while a traced thread is unreaped.
    watch: Mutex<HashMap<i32, OwnedFd>>,
    /// What to run once the stub is found dead (see [`AddressSpace::on_death`]).
    death_hooks: DeathHooks,
}

/// Locks `m`, ignoring poisoning: the guarded data stays consistent on its own.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PtraceSpace {
    /// Starts a stub and brings it to its post-start-up trap, with the scratch page
    /// mapped. Called on the thread that will trace it.
    pub(super) fn new(exe: BorrowedFd<'_>, shared: &Arc<Shared>) -> SysResult<Self> {
        let (control, stub_end) = socketpair()?;
        let pid = stub::spawn(exe, stub_end.as_fd())?;
        drop(stub_end);
        let mut gone = false;
        match Self::start(pid, control, shared, &mut gone) {
            Ok(space) => Ok(space),
            Err(e) => {
                if !gone {
                    // SAFETY: `pid` is our child and not reaped yet, so the number
                    // cannot have been recycled.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    wait_gone(pid);
                }
                tracing::warn!(pid, error = %e.name(), "ptrace stub failed to start");
                Err(e)
            }
        }
    }

    fn start(pid: i32, control: OwnedFd, shared: &Arc<Shared>, gone: &mut bool) -> SysResult<Self> {
        let wait = |gone: &mut bool| {
            let r = sys::wait(pid);
            if !matches!(r, Ok(WaitStatus::Stopped { .. })) {
                *gone = true;
            }
            r
        };
        // The exec stop, after possibly some stray signal stops before it.
        let mut stray = 0;
        loop {
            match wait(gone)? {
                WaitStatus::Stopped {
                    sig: libc::SIGTRAP,
                    event: 0,
                } => break,
                WaitStatus::Stopped { .. } if stray < MAX_STRAY_STOPS => {
                    stray += 1;
                    sys::ptrace_plain(libc::PTRACE_CONT, pid, 0, 0)?;
                }
                // Exec failed (the child exited) or a signal storm.
                _ => return Err(Errno::ENOEXEC),
            }
        }
        sys::ptrace_plain(libc::PTRACE_SETOPTIONS, pid, 0, OPTIONS as usize)?;
        sys::ptrace_plain(libc::PTRACE_CONT, pid, 0, 0)?;
        let mut regs = zero_regs();
        loop {
            match wait(gone)? {
                WaitStatus::Stopped {
                    sig: libc::SIGTRAP,
                    event: 0,
                } => {
                    sys::get_regs(pid, &mut regs)?;
                    if regs.rip == shared.start_trap {
                        break;
                    }
                    sys::ptrace_plain(libc::PTRACE_CONT, pid, 0, 0)?;
                }
                WaitStatus::Stopped { .. } => sys::ptrace_plain(libc::PTRACE_CONT, pid, 0, 0)?,
                WaitStatus::Gone => return Err(Errno::ENOEXEC),
            }
        }
        // r12, r13: the results of the two start-up munmaps.
        if regs.r12 != 0 || regs.r13 != 0 {
            tracing::warn!(
                r12 = regs.r12,
                r13 = regs.r13,
                "stub start-up munmap failed"
            );
            return Err(Errno::ENOMEM);
        }
        let pidfd = sys::pidfd_open(pid)?;
        let space = PtraceSpace::with(pid, shared, regs, control, pidfd);
        lock(&space.live).insert(pid);
        space.watch_thread(pid);
        lock(&space.threads).insert(sys::gettid(), pid);
        let prot = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED) as u64;
        // From here on the Drop of `space` kills and reaps the process.
        *gone = true;
        space.remote_syscall(
            libc::SYS_mmap as u64,
            [SCRATCH, PAGE_SIZE, prot, flags, u64::MAX, 0],
        )?;
        // PR_SET_PDEATHSIG guarded the start-up, until the stub was traced with
        // EXITKILL. It follows the host *thread* that spawned the stub, which may end
        // long before the app process does (its first thread exits, others go on):
        // from now on EXITKILL on every traced stub thread, and the hang-up a parked
        // one waits for, tie the stub's life to the sentry instead.
        space.remote_syscall(
            libc::SYS_prctl as u64,
            [libc::PR_SET_PDEATHSIG as u64, 0, 0, 0, 0, 0],
        )?;
        Ok(space)
    }

    fn with(
        pid: i32,
        shared: &Arc<Shared>,
        initial_regs: Regs,
        control: OwnedFd,
        pidfd: OwnedFd,
    ) -> Self {
        PtraceSpace {
            pid,
            shared: shared.clone(),
            initial_regs,
            control,
            pidfd,
            dead: AtomicBool::new(false),
            leader_reaped: AtomicBool::new(false),
            reap_lock: RwLock::new(()),
            mem_tid: AtomicI32::new(pid),
            live: Mutex::new(HashSet::new()),
            alive: Mutex::new(1),
            threads: Mutex::new(HashMap::new()),
            context_taken: AtomicBool::new(false),
            fd_lock: Mutex::new(()),
            fd_seq: AtomicU64::new(0),
            watch: Mutex::new(HashMap::new()),
            death_hooks: DeathHooks::default(),
        }
    }

    /// The stub thread traced by the calling host thread. Errors if the stub is dead
    /// (ESRCH) or the caller drives no context of this space (EPERM).
    pub(super) fn stub_tid(&self) -> SysResult<i32> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(Errno::ESRCH);
        }
        let host = sys::gettid();
        match lock(&self.threads).get(&host) {
            Some(&tid) => Ok(tid),
            None => {
                tracing::error!(
                    host,
                    pid = self.pid,
                    "ptrace platform used from a thread that drives no context of the space"
                );
                Err(Errno::EPERM)
            }
        }
    }

    /// Records that the calling host thread traces stub thread `tid`.
    fn register(&self, tid: i32) -> SysResult<()> {
        let mut threads = lock(&self.threads);
        match threads.entry(sys::gettid()) {
            std::collections::hash_map::Entry::Occupied(_) => Err(Errno::EBUSY),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(tid);
                Ok(())
            }
        }
    }

    /// Forgets the stub thread of host thread `host`.
    pub(super) fn unregister(&self, host: i32) {
        lock(&self.threads).remove(&host);
    }

    /// Has the death watcher watch stub thread `tid`. Without thread pidfds (Linux
    /// before 6.9) a death is only seen at a switch, a copy or a wait.
    fn watch_thread(&self, tid: i32) {
        match common::thread_pidfd(tid) {
            Ok(fd) => {
                lock(&self.watch).insert(tid, fd);
            }
            Err(e) => {
                tracing::debug!(pid = self.pid, tid, error = %e.name(), "no thread pidfd to watch a ptrace stub thread")
            }
        }
    }

    /// Stops watching stub thread `tid`: the sentry is making it exit.
    fn unwatch_thread(&self, tid: i32) {
        lock(&self.watch).remove(&tid);
    }

    /// Records that stub thread `tid` is gone and reaped.
    fn note_gone(&self, tid: i32) {
        self.unwatch_thread(tid);
        self.dead.store(true, Ordering::SeqCst);
        lock(&self.live).remove(&tid);
        if tid == self.pid {
            self.leader_reaped.store(true, Ordering::SeqCst);
        }
    }

    /// Waits for the next stop of stub thread `tid` (traced by the caller); a dead
    /// thread is recorded and reported as ESRCH.
    pub(super) fn wait_stop(&self, tid: i32) -> SysResult<(i32, i32)> {
        match sys::wait_unreaped(tid) {
            Ok(Some(WaitStatus::Stopped { sig, event })) => Ok((sig, event)),
            Ok(Some(WaitStatus::Gone)) | Ok(None) | Err(_) => {
                let known = {
                    let _no_copies = self.reap_lock.write().unwrap_or_else(|p| p.into_inner());
                    let known = self.dead.swap(true, Ordering::SeqCst);
                    let _ = sys::wait(tid);
                    known
                };
                self.note_gone(tid);
                // Said once: the death watcher may have seen it first.
                if !known {
                    tracing::warn!(pid = self.pid, tid, "ptrace stub died");
                }
                Err(Errno::ESRCH)
            }
        }
    }

    /// Passes a failed ptrace request on `tid` through. ESRCH from a thread the caller
    /// traces and holds stopped means it is dying (a SIGKILL from outside): reap it
    /// now so every later call reports the death at once.
    pub(super) fn died(&self, tid: i32, e: Errno) -> Errno {
        if e == Errno::ESRCH && lock(&self.live).contains(&tid) {
            let _ = self.wait_stop(tid);
        }
        e
    }

    /// Runs system call `nr` with `args` inside the stub, on the calling host thread's
    /// own stub thread, and returns its result.
    pub(super) fn remote_syscall(&self, nr: u64, args: [u64; 6]) -> SysResult<u64> {
        let tid = self.stub_tid()?;
        self.remote_call(tid, nr, args, &mut None)
    }

    /// Runs system call `nr` with `args` on stub thread `tid`, which the caller traces
    /// and holds stopped. Its registers are saved and restored around the call. A
    /// fork or clone event on the way stores the new task's id in `child`.
    fn remote_call(
        &self,
        tid: i32,
        nr: u64,
        args: [u64; 6],
        child: &mut Option<i32>,
    ) -> SysResult<u64> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(Errno::ESRCH);
        }
        let mut saved = zero_regs();
        sys::get_regs(tid, &mut saved).map_err(|e| self.died(tid, e))?;
        let mut r = saved;
        r.rax = nr;
        r.orig_rax = u64::MAX;
        r.rdi = args[0];
        r.rsi = args[1];
        r.rdx = args[2];
        r.r10 = args[3];
        r.r8 = args[4];
        r.r9 = args[5];
        r.rip = self.shared.pad;
        sys::set_regs(tid, &r).map_err(|e| self.died(tid, e))?;
        self.cont(tid)?;
        let mut stray = 0;
        loop {
            let (sig, event) = self.wait_stop(tid)?;
            if sig == libc::SIGTRAP && event != 0 {
                if event == libc::PTRACE_EVENT_FORK || event == libc::PTRACE_EVENT_CLONE {
                    // The new task is already traced by us, stopped or about to be.
                    *child = Some(sys::event_msg(tid).map_err(|e| self.died(tid, e))? as i32);
                    self.cont(tid)?;
                    continue;
                }
            } else if sig == libc::SIGTRAP {
                sys::get_regs(tid, &mut r).map_err(|e| self.died(tid, e))?;
                if r.rip == self.shared.pad_trap {
                    break;
                }
            } else if FAULT_SIGNALS.contains(&sig) {
                // The pad cannot fault unless the stub's own page was tampered with.
                let si = sys::get_siginfo(tid).map_err(|e| self.died(tid, e))?;
                if si.si_code > 0 {
                    tracing::error!(
                        pid = self.pid,
                        tid,
                        sig,
                        "ptrace stub faulted in a remote syscall"
                    );
                    return Err(Errno::EFAULT);
                }
            }
            // The interrupt signal or a stray one: suppress it and go on. A pending
            // interruption stays recorded in the context's flag.
            stray += 1;
            if stray > MAX_STRAY_STOPS {
                return Err(Errno::EINTR);
            }
            self.cont(tid)?;
        }
        sys::set_regs(tid, &saved).map_err(|e| self.died(tid, e))?;
        let ret = r.rax as i64;
        if (-4095..0).contains(&ret) {
            return Err(Errno(-ret as i32));
        }
        Ok(r.rax)
    }

    /// `PTRACE_CONT` without a signal.
    fn cont(&self, tid: i32) -> SysResult<()> {
        sys::ptrace_plain(libc::PTRACE_CONT, tid, 0, 0).map_err(|e| self.died(tid, e))
    }

    /// Passes `fd` into the stub through the sending end `via` (whose peer is fd
    /// [`STUB_CONTROL_FD`] of this stub) and stub thread `tid`; returns its number in
    /// the stub. The caller holds the lock of the space that owns `via`.
    fn send_fd(
        &self,
        tid: i32,
        via: &OwnedFd,
        seq: &AtomicU64,
        fd: BorrowedFd<'_>,
    ) -> SysResult<u64> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        // Each message carries a sequence number: should an earlier transfer have
        // failed half-way and left its message queued, it is recognized and dropped
        // instead of mapping the wrong file.
        let seq = seq.fetch_add(1, Ordering::SeqCst).to_le_bytes();
        let raw = [fd.as_raw_fd()];
        let iov = [std::io::IoSlice::new(&seq)];
        let cmsg = [ControlMessage::ScmRights(&raw)];
        sendmsg::<()>(via.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
            .map_err(|e| Errno(e as i32))?;
        // struct msghdr { name, namelen(+pad), iov, iovlen, control, controllen, flags }
        let mut hdr = [0u8; 56];
        hdr[16..24].copy_from_slice(&SCRATCH_IOV.to_le_bytes());
        hdr[24..32].copy_from_slice(&1u64.to_le_bytes());
        hdr[32..40].copy_from_slice(&SCRATCH_CMSG.to_le_bytes());
        hdr[40..48].copy_from_slice(&CMSG_SPACE_FD.to_le_bytes());
        let mut iovec = [0u8; 16];
        iovec[0..8].copy_from_slice(&SCRATCH_DATA.to_le_bytes());
        iovec[8..16].copy_from_slice(&(seq.len() as u64).to_le_bytes());
        self.write_all(SCRATCH_IOV, &iovec)?;
        for _ in 0..MAX_STALE_MESSAGES {
            // recvmsg updates msg_controllen and msg_flags: rewrite them every time.
            self.write_all(SCRATCH_MSGHDR, &hdr)?;
            self.write_all(SCRATCH_CMSG, &[0u8; CMSG_SPACE_FD as usize])?;
            let flags = (libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) as u64;
            let n = self.remote_call(
                tid,
                libc::SYS_recvmsg as u64,
                [STUB_CONTROL_FD, SCRATCH_MSGHDR, flags, 0, 0, 0],
                &mut None,
            )?;
            let mut cmsg = [0u8; CMSG_SPACE_FD as usize];
            self.read_all(SCRATCH_CMSG, &mut cmsg)?;
            let mut data = [0u8; 8];
            self.read_all(SCRATCH_DATA, &mut data)?;
            let word = |r: std::ops::Range<usize>| {
                let mut b = [0u8; 4];
                b.copy_from_slice(&cmsg[r]);
                i32::from_le_bytes(b)
            };
            let len = cmsg[0..8]
                .iter()
                .rev()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            let (level, ty, remote) = (word(8..12), word(12..16), word(16..20));
            let has_fd = level == libc::SOL_SOCKET && ty == libc::SCM_RIGHTS && len == 20;
            if n == seq.len() as u64 && has_fd && data == seq {
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
                self.remote_call(
                    tid,
                    libc::SYS_close as u64,
                    [remote as u64, 0, 0, 0, 0, 0],
                    &mut None,
                )?;
            }
        }
        Err(Errno::EIO)
    }

    /// Runs a remote `clone(flags)` on stub thread `tid` (traced by the caller) and
    /// waits for the child's first stop: the child is then traced by the caller,
    /// stopped at the landing pad's `int3`. Returns the child's id.
    fn clone_on(&self, tid: i32, flags: u64) -> SysResult<i32> {
        let thread = flags & libc::CLONE_THREAD as u64 != 0;
        let mut child = None;
        let r = self.remote_call(
            tid,
            libc::SYS_clone as u64,
            [flags, 0, 0, 0, 0, 0],
            &mut child,
        );
        let c = match (r, child) {
            (Ok(c), _) => c as i32,
            (Err(e), None) => return Err(e),
            (Err(e), Some(c)) => {
                // The parent failed after the clone: end the child we now trace.
                if thread {
                    lock(&self.live).insert(c);
                    *lock(&self.alive) += 1;
                    if first_stop(c) {
                        self.end_thread(c);
                    } else {
                        self.note_gone(c);
                    }
                } else {
                    kill_child(c);
                }
                return Err(e);
            }
        };
        if !first_stop(c) {
            // Gone before its first stop (and reaped by that wait): the process of a
            // thread is dying; a forked child was killed from outside.
            if thread {
                self.dead.store(true, Ordering::SeqCst);
            }
            return Err(Errno::ESRCH);
        }
        if thread {
            lock(&self.live).insert(c);
            self.watch_thread(c);
            *lock(&self.alive) += 1;
        }
        Ok(c)
    }

    /// A new thread of this stub, cloned from stub thread `tid` (traced by the
    /// caller) and parked for [`PtraceSpace::attach`] on another host thread.
    pub(super) fn new_thread_from(&self, tid: i32) -> SysResult<i32> {
        let c = self.clone_on(tid, THREAD_FLAGS)?;
        if let Err(e) = self.park(c) {
            self.end_thread(c);
            return Err(e);
        }
        Ok(c)
    }

    /// A copy-on-write copy of this stub holding one thread, forked from stub thread
    /// `tid` (traced by the caller), with its own control socket and pidfd;
    /// its thread is parked for [`PtraceSpace::attach`] on another host thread.
    pub(super) fn fork_from(&self, tid: i32) -> SysResult<PtraceSpace> {
        // Held across the fork: no fd received for a mapping is open in the stub at
        // that moment (the child would keep it), and the child's new socket comes
        // through the control socket it shares with this stub.
        let _fd = lock(&self.fd_lock);
        let c = self.clone_on(tid, FORK_FLAGS)?;
        let parts = (|| {
            let (control, stub_end) = socketpair()?;
            Ok((control, stub_end, sys::pidfd_open(c)?))
        })();
        let (control, stub_end, pidfd) = match parts {
            Ok(p) => p,
            Err(e) => {
                kill_child(c);
                return Err(e);
            }
        };
        let child = PtraceSpace::with(c, &self.shared, self.initial_regs, control, pidfd);
        // From here on the Drop of `child` kills and reaps it.
        lock(&child.live).insert(c);
        child.watch_thread(c);
        child.context_taken.store(true, Ordering::SeqCst);
        let n = child.send_fd(c, &self.control, &self.fd_seq, stub_end.as_fd())?;
        child.remote_call(
            c,
            libc::SYS_dup2 as u64,
            [n, STUB_CONTROL_FD, 0, 0, 0, 0],
            &mut None,
        )?;
        child.remote_call(c, libc::SYS_close as u64, [n, 0, 0, 0, 0, 0], &mut None)?;
        drop(stub_end);
        child.park(c)?;
        Ok(child)
    }

    /// Leaves stub thread `tid` (traced by the caller, stopped) untraced and blocked
    /// in `ppoll` on the control socket until a host thread attaches to it. The poll
    /// asks for no event, so it only returns on a hang-up: when the sentry's end of
    /// the socket closes (the sentry died), the thread goes on to an `exit_group`. A
    /// parked stub cannot outlive us. (An attach interrupts the wait; every later
    /// resume sets rip first, so the `exit_group` is never reached otherwise.)
    fn park(&self, tid: i32) -> SysResult<()> {
        let mut r = zero_regs();
        sys::get_regs(tid, &mut r).map_err(|e| self.died(tid, e))?;
        r.rip = self.shared.park;
        r.rax = libc::SYS_ppoll as u64;
        r.orig_rax = u64::MAX;
        r.rdi = SCRATCH_POLLFD;
        r.rsi = 1;
        r.rdx = 0; // no timeout
        r.r10 = 0; // no signal mask change
        r.r8 = 8;
        sys::set_regs(tid, &r).map_err(|e| self.died(tid, e))?;
        sys::ptrace_plain(libc::PTRACE_DETACH, tid, 0, 0).map_err(|e| self.died(tid, e))?;
        lock(&self.live).remove(&tid);
        Ok(())
    }

    /// Makes the calling host thread the tracer of parked stub thread `tid` and
    /// brings it to a stop.
    pub(super) fn attach(&self, tid: i32) -> SysResult<()> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(Errno::ESRCH);
        }
        sys::ptrace_plain(libc::PTRACE_SEIZE, tid, 0, OPTIONS as usize).map_err(|e| {
            tracing::warn!(pid = self.pid, tid, error = %e.name(), "cannot attach to a parked stub thread");
            self.dead.store(true, Ordering::SeqCst);
            Errno::ESRCH
        })?;
        lock(&self.live).insert(tid);
        let r = (|| {
            sys::ptrace_plain(libc::PTRACE_INTERRUPT, tid, 0, 0).map_err(|e| self.died(tid, e))?;
            let mut stray = 0;
            loop {
                let (_sig, event) = self.wait_stop(tid)?;
                if event == libc::PTRACE_EVENT_STOP {
                    return Ok(());
                }
                // A signal that was pending: suppress it; the interrupt still stands.
                stray += 1;
                if stray > MAX_STRAY_STOPS {
                    return Err(Errno::EINTR);
                }
                self.cont(tid)?;
            }
        })();
        if r.is_err() {
            self.end_thread(tid);
        }
        r
    }

    /// Attaches parked thread `tid` on the calling host thread and makes it that
    /// thread's stub thread in this space.
    pub(super) fn adopt(&self, tid: i32) -> SysResult<()> {
        // Pinned first: the parked thread then wakes for the interrupt on the CPU where
        // its new tracer waits for it.
        self.shared.pin_with(tid);
        self.attach(tid)?;
        if let Err(e) = self.register(tid) {
            tracing::error!(
                pid = self.pid,
                tid,
                "a host thread adopts a second context of one space"
            );
            self.end_thread(tid);
            return Err(e);
        }
        Ok(())
    }

    /// Ends stub thread `tid` (traced by the caller, stopped) without touching the
    /// others: a remote `exit`, stopped at its exit event and detached there, so the
    /// thread needs no reaping (or, the leader, is reaped with the process). The last
    /// thread is parked instead: the space stays usable until it is dropped. A dead
    /// process's thread is only reaped.
    pub(super) fn end_thread(&self, tid: i32) {
        if !lock(&self.live).contains(&tid) {
            return;
        }
        if !self.dead.load(Ordering::SeqCst) {
            let last = {
                let mut alive = lock(&self.alive);
                let last = *alive <= 1;
                if !last {
                    *alive -= 1;
                }
                last
            };
            let r = if last {
                self.park(tid)
            } else {
                self.exit_thread(tid)
            };
            match r {
                Ok(()) => return,
                Err(e) => {
                    tracing::debug!(pid = self.pid, tid, error = %e.name(), "ending a stub thread")
                }
            }
        }
        // The process is dying: a non-leader thread's exit is reported to us at once;
        // the leader's only once the whole group is gone, which the space's Drop
        // waits for.
        if tid != self.pid && lock(&self.live).contains(&tid) {
            {
                let _no_copies = self.reap_lock.write().unwrap_or_else(|p| p.into_inner());
                self.dead.store(true, Ordering::SeqCst);
                wait_gone(tid);
            }
            self.note_gone(tid);
        }
    }

    fn exit_thread(&self, tid: i32) -> SysResult<()> {
        self.unwatch_thread(tid);
        let opts = OPTIONS | libc::PTRACE_O_TRACEEXIT;
        sys::ptrace_plain(libc::PTRACE_SETOPTIONS, tid, 0, opts as usize)
            .map_err(|e| self.died(tid, e))?;
        let mut r = zero_regs();
        sys::get_regs(tid, &mut r).map_err(|e| self.died(tid, e))?;
        r.rip = self.shared.pad;
        r.rax = libc::SYS_exit as u64;
        r.orig_rax = u64::MAX;
        r.rdi = 0;
        sys::set_regs(tid, &r).map_err(|e| self.died(tid, e))?;
        self.cont(tid)?;
        let mut stray = 0;
        loop {
            let (sig, event) = self.wait_stop(tid)?;
            if sig == libc::SIGTRAP && event == libc::PTRACE_EVENT_EXIT {
                break;
            }
            stray += 1;
            if stray > MAX_STRAY_STOPS {
                return Err(Errno::EINTR);
            }
            self.cont(tid)?;
        }
        // Detached, an exiting thread is reaped by the kernel at once and its number
        // may be reused: no copy may be naming it then, and it leaves `live` and
        // `mem_tid` (where memory copies look for a thread) before copies resume.
        let no_copies = self.reap_lock.write().unwrap_or_else(|p| p.into_inner());
        let mut live = lock(&self.live);
        if let Err(e) = sys::ptrace_plain(libc::PTRACE_DETACH, tid, 0, 0) {
            drop(live);
            drop(no_copies);
            return Err(self.died(tid, e));
        }
        live.remove(&tid);
        let _ = self
            .mem_tid
            .compare_exchange(tid, self.pid, Ordering::SeqCst, Ordering::SeqCst);
        Ok(())
    }

    /// Runs a memory copy `op` through a thread of the stub. The thread it last
    /// used may be gone (an app whose first thread exits before the others leaves
    /// a leader without memory): then through the caller's own stub thread or a
    /// traced one, whose number cannot be reused while it is ours to reap.
    fn copy(&self, mut op: impl FnMut(i32) -> SysResult<usize>) -> SysResult<usize> {
        // Held until the copy is done: no thread it may name is reaped meanwhile.
        let _no_reaping = self.reap_lock.read().unwrap_or_else(|p| p.into_inner());
        if self.dead.load(Ordering::SeqCst) {
            return Err(Errno::EFAULT);
        }
        let tid = self.mem_tid.load(Ordering::SeqCst);
        match op(tid) {
            Err(Errno::ESRCH) => {}
            r => return r,
        }
        let own = lock(&self.threads).get(&sys::gettid()).copied();
        // Held while copying, so no candidate is detached meanwhile.
        let live = lock(&self.live);
        for t in own.into_iter().chain(live.iter().copied()) {
            if t == tid {
                continue;
            }
            match op(t) {
                Err(Errno::ESRCH) => continue,
                r => {
                    self.mem_tid.store(t, Ordering::SeqCst);
                    return r;
                }
            }
        }
        Err(Errno::EFAULT)
    }

    /// Reads the platform's own scratch memory in the stub (above the application's
    /// range, where [`AddressSpace::read`] refuses to go).
    fn read_all(&self, addr: u64, buf: &mut [u8]) -> SysResult<()> {
        if self.copy(|tid| common::read_process(tid, addr, &mut *buf))? != buf.len() {
            return Err(Errno::EFAULT);
        }
        Ok(())
    }

    /// Writes the platform's own scratch memory in the stub.
    fn write_all(&self, addr: u64, buf: &[u8]) -> SysResult<()> {
        if self.copy(|tid| common::write_process(tid, addr, buf))? != buf.len() {
            return Err(Errno::EFAULT);
        }
        Ok(())
    }
}

/// Waits for the first stop of a task just cloned by a traced stub thread. False if
/// it died first (and was reaped by this wait).
fn first_stop(tid: i32) -> bool {
    matches!(sys::wait(tid), Ok(WaitStatus::Stopped { .. }))
}

/// Kills and reaps forked stub `pid`, a child we trace and have not reaped (so the
/// number is still its own).
fn kill_child(pid: i32) {
    // SAFETY: kill takes integers; see above for why `pid` names our child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_gone(pid);
}

/// Validates `[addr, addr+len)` for a mapping operation; returns the page-rounded
/// length.
fn check_range(addr: u64, len: u64) -> SysResult<u64> {
    common::check_range(addr, len, MAX_USER_ADDRESS)
}

impl Watched for PtraceSpace {
    fn known_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    fn watch_fds(&self, out: &mut Vec<RawFd>) {
        out.push(self.pidfd.as_raw_fd());
        out.extend(lock(&self.watch).values().map(|fd| fd.as_raw_fd()));
    }

    fn check_dead(&self) -> bool {
        if self.dead.load(Ordering::SeqCst) {
            return true;
        }
        let died = pidfd_exited(&self.pidfd) || lock(&self.watch).values().any(pidfd_exited);
        if died && !self.dead.swap(true, Ordering::SeqCst) {
            tracing::warn!(pid = self.pid, "ptrace stub died");
        }
        died
    }

    fn hooks(&self) -> &DeathHooks {
        &self.death_hooks
    }
}

impl AddressSpace for PtraceSpace {
    fn on_death(&self, hook: Box<dyn FnOnce() + Send>) {
        self.shared.spaces.on_death(self, hook);
    }

    fn gone(&self) -> bool {
        self.check_dead()
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
                self.remote_syscall(libc::SYS_mmap as u64, [addr, len, prot, flags, u64::MAX, 0])?;
            }
            Backing::File { fd, offset } => {
                if !offset.is_multiple_of(PAGE_SIZE) {
                    return Err(Errno::EINVAL);
                }
                let tid = self.stub_tid()?;
                // Held until the received fd is closed again (see `fork_from`).
                let _fd = lock(&self.fd_lock);
                let remote = self.send_fd(tid, &self.control, &self.fd_seq, fd)?;
                let flags = (kind | libc::MAP_FIXED) as u64;
                let r = self.remote_call(
                    tid,
                    libc::SYS_mmap as u64,
                    [addr, len, prot, flags, remote, offset],
                    &mut None,
                );
                let c = self.remote_call(
                    tid,
                    libc::SYS_close as u64,
                    [remote, 0, 0, 0, 0, 0],
                    &mut None,
                );
                r?;
                c?;
            }
        }
        Ok(())
    }

    fn unmap(&self, addr: u64, len: u64) -> SysResult<()> {
        let len = check_range(addr, len)?;
        self.remote_syscall(libc::SYS_munmap as u64, [addr, len, 0, 0, 0, 0])
            .map(|_| ())
    }

    fn remap(&self, old: u64, old_len: u64, new: u64, new_len: u64) -> SysResult<()> {
        let old_len = check_range(old, old_len)?;
        let new_len = check_range(new, new_len)?;
        let flags = (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64;
        self.remote_syscall(
            libc::SYS_mremap as u64,
            [old, old_len, new_len, flags, new, 0],
        )
        .map(|_| ())
    }

    fn protect(&self, addr: u64, len: u64, prot: i32) -> SysResult<()> {
        let len = check_range(addr, len)?;
        let prot = prot as u32 as u64;
        self.remote_syscall(libc::SYS_mprotect as u64, [addr, len, prot, 0, 0, 0])
            .map(|_| ())
    }

    fn read(&self, addr: u64, buf: &mut [u8]) -> SysResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = common::user_span(addr, buf.len(), MAX_USER_ADDRESS)?;
        self.copy(|tid| common::read_process(tid, addr, &mut buf[..n]))
    }

    fn write(&self, addr: u64, buf: &[u8]) -> SysResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = common::user_span(addr, buf.len(), MAX_USER_ADDRESS)?;
        self.copy(|tid| common::write_process(tid, addr, &buf[..n]))
    }
}

impl Drop for PtraceSpace {
    fn drop(&mut self) {
        if self.leader_reaped.load(Ordering::SeqCst) {
            // The whole group is gone, every thread with it.
            return;
        }
        // Through the pidfd: even from a non-tracer thread this cannot hit another
        // process. SIGKILL ends ptrace-stopped and parked threads alike.
        if let Err(e) = sys::pidfd_signal(&self.pidfd, libc::SIGKILL) {
            tracing::warn!(pid = self.pid, error = %e.name(), "killing ptrace stub");
        }
        // Traced non-leader threads first: the leader is only reported once every
        // other thread has been reaped. Any thread of ours may reap any of them.
        let live: Vec<i32> = lock(&self.live).drain().collect();
        for tid in live {
            if tid != self.pid {
                wait_gone(tid);
            }
        }
        wait_gone(self.pid);
        self.leader_reaped.store(true, Ordering::SeqCst);
    }
}

/// Waits until `tid` (already killed, or exiting) is gone. Any thread of our process
/// may reap it; one that is not ours to wait for returns at once.
fn wait_gone(tid: i32) {
    loop {
        match sys::wait(tid) {
            Ok(WaitStatus::Gone) | Err(_) => return,
            Ok(WaitStatus::Stopped { .. }) => {}
        }
    }
}

/// All-zero registers.
pub(super) fn zero_regs() -> Regs {
    // SAFETY: user_regs_struct is plain integers; all-zero is valid.
    unsafe { std::mem::zeroed() }
}

use crate::platform::common::seqpacket_pair as socketpair;
