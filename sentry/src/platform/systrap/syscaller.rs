//! The syscall thread of a stub process, as the sentry drives it: the one thread of
//! the stub that edits its address space (maps, unmaps, protects, receives and
//! closes fds, makes threads and forks) and never runs application code.
//!
//! Commands go through the command page, which the stub maps read-only: no
//! application thread can change a command once written, nor write one. A command
//! is a batch of up to [`C_MAX_CALLS`] calls (an fd's transfer, its use and its
//! close; a thread's region and its `clone`), run in order until one fails or
//! returns other than what the sentry expects of it. Results come back through the
//! kernel: the syscall thread sets the file offset of its command memfd (`lseek`:
//! the last call's result + [`RESULT_BIAS`], its index and the command's sequence
//! number), and only its own fd table holds that file (application threads close
//! their copy before their first instruction, and their filter forbids `lseek`
//! from the code page; anywhere else it traps to the sentry). The progress and
//! sleeping words of the writable page only say when to look: a forged one costs
//! the application its own time.
//!
//! Commands are rare next to application system calls and come from whichever
//! sentry thread edits the space, so the syscall thread does not spin: it sleeps
//! on its futex, and is pinned to the CPU of the sentry thread that sends a command
//! (re-pinned when another one does), which then sleeps until the report wakes it.
//! Waking a thread on one's own CPU costs a few microseconds; waking one on an idle
//! CPU costs up to a hundred and more on the virtual machines this runs on, which
//! made a fork cost 1.6x the hand-off design where the application thread made its
//! own edits. The sentry does not yield to the syscall thread in a loop either: on
//! a loaded host each yield can hand the CPU to another process for a whole slice.
//!
//! Received fds are not read back from the stub either: the sentry keeps a model of
//! the syscall thread's fd table, which nothing else changes, and a received fd
//! takes the lowest free number as the kernel gives it.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};

use super::space::{lock, socketpair};
use super::stub::{
    self, CMD_SIZE, C_ALTSTACK, C_CHILD_CMD, C_CHILD_CTL, C_CHILD_REGION, C_COUNT, C_EXPECT,
    C_MAX_CALLS, C_NR, C_SEQ, C_STRIDE, RESULT_BIAS, RESULT_MASK, R_DONE, R_SCRATCH,
    R_SENTRY_SLEEPING, R_STUB_SLEEPING, SYSRW,
};
use super::sys::{self, SharedMapping};

/// How long one futex sleep lasts, at most, before the sentry checks that the stub
/// is alive.
const LIVENESS_PERIOD: Duration = Duration::from_millis(200);
/// The first wait for a report before the sentry looks again and re-wakes the
/// syscall thread; each further wait doubles, up to [`LIVENESS_PERIOD`].
const FIRST_REWAKE: Duration = Duration::from_millis(1);
/// Offset of the writable page in the command memfd (and in the sentry's mapping).
const RW: usize = 4096;
/// `CMSG_SPACE(3 * sizeof(int))` on x86-64: room for every transfer (at most 3 fds).
const CMSG_SPACE_MAX: usize = 32;
// The scratch layout of a `recvmsg` command (offsets in the writable page).
const SCRATCH_MSGHDR: usize = R_SCRATCH;
const SCRATCH_IOV: usize = R_SCRATCH + 64;
const SCRATCH_DATA: usize = R_SCRATCH + 128;
const SCRATCH_CMSG: usize = R_SCRATCH + 192;
/// Fds the syscall thread holds for good: its control socket (0) and its command
/// memfd (1).
const CONTROL_FD: u32 = 0;
const STANDING_FDS: [u32; 2] = [CONTROL_FD, 1];

/// The sentry's handle on one stub process's syscall thread.
pub(super) struct Syscaller {
    /// The command memfd, mapped here read-write (both pages).
    pages: SharedMapping,
    /// The command memfd itself: the same open file as the stub's fd 1, so its file
    /// offset is the result the syscall thread reports.
    memfd: OwnedFd,
    /// Our end of the syscall thread's control socket (fds travel through it).
    control: OwnedFd,
    /// Held for a command, or for a sequence that must not interleave.
    state: Mutex<Commands>,
    /// Whether the host has several CPUs (the syscall thread then follows the
    /// sentry thread that sends a command).
    spin: bool,
    /// The syscall thread's id (the stub's pid), once it has reported in.
    tid: AtomicI32,
    /// The CPU the syscall thread is pinned to (`usize::MAX`: none yet).
    cpu: AtomicUsize,
}

/// One system call of a command: its number, arguments, and the result it must
/// return for the command's next call to run (0: any result but an error).
#[derive(Clone, Copy)]
pub(super) struct Call {
    pub nr: i64,
    pub args: [u64; 6],
    pub expect: u64,
}

impl Call {
    /// A call that only has to succeed.
    pub(super) fn new(nr: i64, args: [u64; 6]) -> Call {
        Call {
            nr,
            args,
            expect: 0,
        }
    }

    /// A call that must return `expect`.
    pub(super) fn expecting(nr: i64, args: [u64; 6], expect: u64) -> Call {
        Call { nr, args, expect }
    }
}

/// The command sequence and the model of the syscall thread's fd table.
pub(super) struct Commands {
    seq: u32,
    fds: BTreeSet<u32>,
}

impl Syscaller {
    /// A command memfd and control socket for a new stub process, and the handle on
    /// them. Returns the socket's stub end, to pass with [`Syscaller::memfd`].
    pub(super) fn new(spin: bool) -> SysResult<(OwnedFd, Syscaller)> {
        let memfd = sys::memfd_sized(c"rvisor-systrap-cmd", CMD_SIZE)?;
        let pages = SharedMapping::new(&memfd, CMD_SIZE as usize)?;
        let mut page = vec![0u8; RW];
        stub::init_cmd_page(&mut page);
        pages.write(0, &page);
        // Until the stub's first report (seq 0) nothing is done.
        pages.word(RW + R_DONE).store(u32::MAX, Ordering::SeqCst);
        let (control, stub_end) = socketpair()?;
        Ok((
            stub_end,
            Syscaller {
                pages,
                memfd,
                control,
                state: Mutex::new(Commands {
                    seq: 0,
                    fds: STANDING_FDS.into_iter().collect(),
                }),
                spin,
                tid: AtomicI32::new(0),
                cpu: AtomicUsize::new(usize::MAX),
            },
        ))
    }

    /// The command memfd, to pass to the new stub.
    pub(super) fn memfd(&self) -> BorrowedFd<'_> {
        self.memfd.as_fd()
    }

    /// Our end of the control socket.
    #[cfg(test)]
    pub(super) fn control(&self) -> BorrowedFd<'_> {
        self.control.as_fd()
    }

    /// Takes the command channel.
    pub(super) fn lock(&self) -> MutexGuard<'_, Commands> {
        lock(&self.state)
    }

    /// Waits for the stub's first report, the syscall thread's pid (bounded by
    /// `deadline`; `alive` is asked once per liveness period).
    pub(super) fn first_report(
        &self,
        alive: impl Fn() -> bool,
        deadline: Instant,
    ) -> SysResult<i32> {
        match self.first_report_ids(alive, deadline)? {
            (pid, 0) => Ok(pid),
            _ => Err(Errno::EIO),
        }
    }

    /// Waits for the first report of a forked stub, which carries its pid and the
    /// id of the application thread it cloned itself (0 if none), as
    /// `pid | tid << 24` (ids are below 2^22).
    pub(super) fn first_report_ids(
        &self,
        alive: impl Fn() -> bool,
        deadline: Instant,
    ) -> SysResult<(i32, i32)> {
        let st = self.lock();
        let r = self.wait_result(st.seq, &alive, Some(deadline))?.1?;
        let pid = i32::try_from(r & 0xff_ffff).map_err(|_| Errno::EIO)?;
        let tid = i32::try_from(r >> 24).map_err(|_| Errno::EIO)?;
        self.tid.store(pid, Ordering::Relaxed);
        Ok((pid, tid))
    }

    /// Runs system call `nr` with `args` on the syscall thread.
    pub(super) fn call(
        &self,
        st: &mut Commands,
        nr: i64,
        args: [u64; 6],
        alive: &dyn Fn() -> bool,
    ) -> SysResult<u64> {
        self.batch(st, &[Call::new(nr, args)], alive)?.1
    }

    /// Runs `calls` (at most [`C_MAX_CALLS`]) in order on the syscall thread as one
    /// command, up to the first that fails or returns other than its expected
    /// result: the index of the last call that ran and its result. An `Err` says
    /// the command's outcome is unknown (the stub died, or its report was bad).
    pub(super) fn batch(
        &self,
        st: &mut Commands,
        calls: &[Call],
        alive: &dyn Fn() -> bool,
    ) -> SysResult<(usize, SysResult<u64>)> {
        debug_assert!((1..=C_MAX_CALLS).contains(&calls.len()));
        self.follow_caller();
        for (i, c) in calls.iter().enumerate() {
            let at = C_NR + i * C_STRIDE;
            self.pages.put_u64(at, c.nr as u64);
            for (j, a) in c.args.iter().enumerate() {
                self.pages.put_u64(at + 8 * (j + 1), *a);
            }
            self.pages.put_u64(at + C_EXPECT, c.expect);
        }
        self.pages
            .word(C_COUNT)
            .store(calls.len() as u32, Ordering::Relaxed);
        st.seq = st.seq.wrapping_add(1);
        let seq = self.pages.word(C_SEQ);
        seq.swap(st.seq, Ordering::SeqCst);
        if self.pages.word(RW + R_STUB_SLEEPING).load(Ordering::SeqCst) != 0 {
            sys::futex_wake(seq);
        }
        match self.wait_result(st.seq, alive, None)? {
            (i, r) if i < calls.len() => Ok((i, r)),
            _ => Err(Errno::EIO),
        }
    }

    /// Pins the syscall thread to the calling sentry thread's CPU (where driving
    /// threads are pinned, that is their CPU) if it is elsewhere.
    fn follow_caller(&self) {
        if !self.spin {
            return;
        }
        let Some(here) = sys::current_cpu() else {
            return;
        };
        let tid = self.tid.load(Ordering::Relaxed);
        if tid <= 0 || self.cpu.load(Ordering::Relaxed) == here {
            return;
        }
        match sys::pin(tid, here) {
            Ok(()) => self.cpu.store(here, Ordering::Relaxed),
            Err(e) => tracing::debug!(tid, cpu = here, "cannot pin a systrap syscall thread: {e}"),
        }
    }

    /// Waits until the syscall thread has reported command `seq`: the index of the
    /// last call it ran and its result.
    ///
    /// It does not spin: the syscall thread usually runs on our CPU, and a sentry
    /// thread that yields to it in a loop hands the CPU to every other runnable
    /// process as well (on a loaded host a thread creation took milliseconds that
    /// way). It sleeps on the progress word at once; the syscall thread wakes it.
    fn wait_result(
        &self,
        seq: u32,
        alive: &dyn Fn() -> bool,
        deadline: Option<Instant>,
    ) -> SysResult<(usize, SysResult<u64>)> {
        let done = self.pages.word(RW + R_DONE);
        let sleeping = self.pages.word(RW + R_SENTRY_SLEEPING);
        let mut period = FIRST_REWAKE;
        loop {
            if done.load(Ordering::Acquire) == seq {
                if let Some(r) = self.result(seq)? {
                    return Ok(r);
                }
            }
            sleeping.swap(1, Ordering::SeqCst);
            let cur = done.load(Ordering::SeqCst);
            if cur != seq {
                sys::futex_wait(done, cur, period);
            }
            sleeping.store(0, Ordering::SeqCst);
            if let Some(r) = self.result(seq)? {
                return Ok(r);
            }
            if done.load(Ordering::SeqCst) == seq {
                // Marked done with no result: the application wrote the word, and
                // the report's wake-up will find nobody waiting. It only delays
                // itself; look again a little later.
                std::thread::sleep(period);
            } else {
                // No report within the period: a long call, or the syscall thread
                // sleeps on a command its (application-writable) sleeping flag
                // hid, or it reported without waking us because the application
                // cleared our sleeping flag. Wake it and look again.
                sys::futex_wake(self.pages.word(C_SEQ));
            }
            // Short re-wakes first (a forged flag costs its application about a
            // millisecond a command, not a liveness period), growing to one
            // liveness period for a call that really takes long.
            period = (period * 2).min(LIVENESS_PERIOD);
            if !alive() {
                return Err(Errno::ESRCH);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Errno::ETIMEDOUT);
            }
        }
    }

    /// The reported result of command `seq`, if the syscall thread has reported
    /// it: the index of its last call that ran and that call's result. The file
    /// offset is set only by the syscall thread's `lseek` (only its fd table and
    /// ours hold the file), and carries the command's sequence number, so a result
    /// of the command before never passes for this one's.
    fn result(&self, seq: u32) -> SysResult<Option<(usize, SysResult<u64>)>> {
        let pos = sys::seek(self.memfd.as_fd(), 0, libc::SEEK_CUR)?;
        let biased = pos & RESULT_MASK;
        if biased == 0 || (pos >> 48) & 0xfff != u64::from(seq & 0xfff) {
            return Ok(None);
        }
        let index = ((pos >> 60) & 3) as usize;
        let r = biased.wrapping_sub(RESULT_BIAS) as i64;
        if (-4095..0).contains(&r) {
            return Ok(Some((index, Err(Errno(-r as i32)))));
        }
        Ok(Some((index, Ok(r as u64))))
    }

    /// Passes `fds` into the syscall thread's fd table and, in the same command, runs
    /// the calls `then` makes of their numbers there (at most
    /// [`C_MAX_CALLS`]` - 1`). Returns the numbers, the index among `then`'s calls of
    /// the last one that ran, and its result. Any outcome but the whole message
    /// received leaves the table unknown: that is an `Err`, and the caller must
    /// give the stub up. The received fds stay open: the caller closes them (a call
    /// of `then`'s that closes one must be recorded with [`Syscaller::closed`]).
    pub(super) fn with_fds(
        &self,
        st: &mut Commands,
        fds: &[i32],
        then: impl FnOnce(&[u64]) -> Vec<Call>,
        alive: &dyn Fn() -> bool,
    ) -> SysResult<(Vec<u64>, usize, SysResult<u64>)> {
        debug_assert!(fds.len() <= 3);
        // The kernel installs received fds at the lowest free numbers, in order.
        let mut got = Vec::with_capacity(fds.len());
        let mut table = st.fds.clone();
        for _ in fds {
            let free = (0u32..).find(|n| !table.contains(n)).unwrap_or(u32::MAX);
            table.insert(free);
            got.push(u64::from(free));
        }
        super::space::send_fds(self.control.as_fd(), fds, 0)?;
        self.prepare_recvmsg();
        let msghdr = SYSRW + SCRATCH_MSGHDR as u64;
        let flags = libc::MSG_DONTWAIT as u64;
        let mut calls = vec![Call::expecting(
            libc::SYS_recvmsg,
            [u64::from(CONTROL_FD), msghdr, flags, 0, 0, 0],
            8,
        )];
        calls.extend(then(&got));
        let outcome = self.batch(st, &calls, alive);
        // Whatever happened, the table may hold them now (a failed transfer gives
        // the stub up anyway).
        st.fds = table;
        match outcome? {
            (0, Ok(8)) if calls.len() == 1 => Ok((got, 0, Ok(8))),
            (0, Ok(n)) => {
                tracing::warn!(n, "systrap syscall thread received a short fd message");
                Err(Errno::EIO)
            }
            (0, Err(e)) => {
                tracing::warn!(error = %e.name(), "systrap syscall thread failed to receive fds");
                Err(Errno::EIO)
            }
            (i, r) => Ok((got, i - 1, r)),
        }
    }

    /// Closes `fd` in the syscall thread's fd table.
    pub(super) fn close(
        &self,
        st: &mut Commands,
        fd: u64,
        alive: &dyn Fn() -> bool,
    ) -> SysResult<()> {
        if let Ok(n) = u32::try_from(fd) {
            st.fds.remove(&n);
        }
        self.call(st, libc::SYS_close, [fd, 0, 0, 0, 0, 0], alive)
            .map(|_| ())
    }

    /// Writes the `recvmsg` header for one 8-byte message and up to
    /// [`CMSG_SPACE_MAX`] bytes of control data into the writable page.
    fn prepare_recvmsg(&self) {
        let at = |off: usize| SYSRW + off as u64;
        // struct msghdr { name, namelen(+pad), iov, iovlen, control, controllen, flags }
        let mut hdr = [0u8; 56];
        hdr[16..24].copy_from_slice(&at(SCRATCH_IOV).to_le_bytes());
        hdr[24..32].copy_from_slice(&1u64.to_le_bytes());
        hdr[32..40].copy_from_slice(&at(SCRATCH_CMSG).to_le_bytes());
        hdr[40..48].copy_from_slice(&(CMSG_SPACE_MAX as u64).to_le_bytes());
        let mut iovec = [0u8; 16];
        iovec[0..8].copy_from_slice(&at(SCRATCH_DATA).to_le_bytes());
        iovec[8..16].copy_from_slice(&8u64.to_le_bytes());
        self.pages.write(RW + SCRATCH_IOV, &iovec);
        self.pages.write(RW + SCRATCH_MSGHDR, &hdr);
        self.pages.write(RW + SCRATCH_CMSG, &[0u8; CMSG_SPACE_MAX]);
    }

    /// Sets the alternate stack the next application thread installs (slot `slot`).
    pub(super) fn set_thread_altstack(&self, _st: &mut Commands, slot: usize) {
        let mut ss = [0u8; 24];
        stub::set_thread_altstack(&mut ss, slot);
        self.pages.write(C_ALTSTACK, &ss);
    }

    /// Sets the fd numbers (in this stub) of a fork's child's command memfd, control
    /// socket and first region (the caller holds the command channel).
    pub(super) fn set_child_fds(&self, [cmd, ctl, region]: [u64; 3]) {
        self.pages.put_u64(C_CHILD_CMD, cmd);
        self.pages.put_u64(C_CHILD_CTL, ctl);
        self.pages.put_u64(C_CHILD_REGION, region);
    }

    /// The fd numbers [`Syscaller::set_child_fds`] last wrote (read back from our
    /// own mapping of the command page, which only the sentry writes).
    pub(super) fn child_fds(&self) -> [u64; 3] {
        [
            self.pages.get_u64(C_CHILD_CMD),
            self.pages.get_u64(C_CHILD_CTL),
            self.pages.get_u64(C_CHILD_REGION),
        ]
    }

    /// Records that the syscall thread closed `fds` on its own (a fork's parent
    /// closes the child's right after the fork).
    pub(super) fn closed(&self, st: &mut Commands, fds: &[u64]) {
        for fd in fds {
            if let Ok(n) = u32::try_from(*fd) {
                st.fds.remove(&n);
            }
        }
    }
}
