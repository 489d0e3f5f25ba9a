//! An address space: one stub process, edited through requests its signal handler
//! executes.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::platform::common;
use crate::platform::{AddressSpace, Backing, PAGE_SIZE};

use super::stub::{
    self, OFF_PID, OFF_REQ_NR, OFF_REQ_RESULT, OFF_SCRATCH, OFF_SENTRY_SLEEPING, OFF_SIGNO,
    OFF_STATE, OFF_STUB_SLEEPING, OFF_UCONTEXT, READY_RIP, REGION, REGION_SIZE, STATE_PARKED,
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

/// The sentry's view of one stub's shared region and the hand-off protocol on it.
pub(super) struct Channel {
    pub(super) region: SharedMapping,
}

impl Channel {
    /// Hands the stub over (`state` is RESUME or REQUEST) and wakes it if it sleeps.
    pub(super) fn release(&self, state: u32) {
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
        let lo = REGION + stub::OFF_ALTSTACK_BASE as u64;
        let end = addr.checked_add(len as u64)?;
        if addr < lo || end > REGION + self.region.len() as u64 {
            return None;
        }
        Some((addr - REGION) as usize)
    }
}

/// One stub process and the sentry's handles on it.
pub(super) struct SystrapSpace {
    /// The stub's pid.
    pub pid: i32,
    /// A pidfd: signals through it can never hit a recycled pid.
    pub pidfd: OwnedFd,
    /// `/proc/<pid>/mem`: reaches pages `process_vm_*` won't.
    pub mem: File,
    /// The sentry's end of the stub's control socket (fds travel through it).
    pub control: OwnedFd,
    /// The shared region; whoever holds the lock may drive the stub.
    pub(super) chan: Mutex<Channel>,
    /// Set once the stub is known to be dead.
    pub dead: AtomicBool,
    /// Whether the one context of this space has been handed out.
    pub context_taken: AtomicBool,
    /// Sequence number of the next fd transfer.
    fd_seq: AtomicU64,
    /// Whether to spin before sleeping (not on a single CPU, where it only delays
    /// the stub).
    pub spin: bool,
}

impl SystrapSpace {
    /// Asks the zygote for a new stub and waits until it reports in.
    pub(super) fn new(
        zygote: BorrowedFd<'_>,
        zygote_alive: impl Fn() -> bool,
        spin: bool,
    ) -> SysResult<Self> {
        let memfd = sys::memfd_sized(c"rvisor-systrap-region", REGION_SIZE)?;
        let region = SharedMapping::new(&memfd, REGION_SIZE as usize)?;
        let mut header = vec![0u8; stub::OFF_ALTSTACK_BASE];
        stub::init_region(&mut header);
        region.write(0, &header);
        let (control, stub_end) = socketpair()?;
        send_fds(zygote, &[memfd.as_raw_fd(), stub_end.as_raw_fd()], 0)?;
        drop(stub_end);
        drop(memfd);
        let chan = Channel { region };
        let deadline = Instant::now() + START_TIMEOUT;
        if let Err(e) = chan.wait_parked(zygote_alive, Some(deadline), false) {
            tracing::warn!(error = %e.name(), "systrap stub did not start");
            // A child that got as far as publishing its pid must not linger.
            let pid = chan.region.get_u64(OFF_PID) as i32;
            if pid > 0 {
                if let Ok(fd) = sys::pidfd_open(pid) {
                    let _ = sys::pidfd_signal(&fd, libc::SIGKILL);
                }
            }
            return Err(e);
        }
        let pid = chan.region.get_u64(OFF_PID) as i32;
        let pidfd = sys::pidfd_open(pid)?;
        let ready = {
            let signo = chan.region.get_u64(OFF_SIGNO) as i32;
            let uc = chan.region.get_u64(OFF_UCONTEXT);
            let rip = chan
                .offset_of(uc, super::context::UC_SIZE)
                .map(|o| chan.region.get_u64(o + super::context::UC_RIP));
            signo == libc::SIGILL && rip == Some(READY_RIP)
        };
        let mem = if ready {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("/proc/{pid}/mem"))
                .map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::EIO)))
        } else {
            tracing::warn!(pid, "systrap stub reported in with a bad frame");
            Err(Errno::EIO)
        };
        let mem = match mem {
            Ok(mem) => mem,
            Err(e) => {
                let _ = sys::pidfd_signal(&pidfd, libc::SIGKILL);
                return Err(e);
            }
        };
        Ok(SystrapSpace {
            pid,
            pidfd,
            mem,
            control,
            chan: Mutex::new(chan),
            dead: AtomicBool::new(false),
            context_taken: AtomicBool::new(false),
            fd_seq: AtomicU64::new(0),
            spin,
        })
    }

    /// Locks the channel; a dead stub is ESRCH.
    pub(super) fn lock(&self) -> SysResult<MutexGuard<'_, Channel>> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(Errno::ESRCH);
        }
        self.chan.lock().map_err(|_| Errno::EIO)
    }

    /// Whether the stub still exists; records its death.
    pub(super) fn alive(&self) -> bool {
        if self.dead.load(Ordering::SeqCst) {
            return false;
        }
        if sys::pidfd_signal(&self.pidfd, 0) == Err(Errno::ESRCH) {
            tracing::warn!(pid = self.pid, "systrap stub died");
            self.dead.store(true, Ordering::SeqCst);
            return false;
        }
        true
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
        let chan = self.lock()?;
        self.request_locked(&chan, nr, args)
    }

    /// Passes `fd` into the stub; returns its number there.
    fn send_fd(&self, chan: &Channel, fd: BorrowedFd<'_>) -> SysResult<u64> {
        // Each message carries a sequence number: should an earlier transfer have
        // failed half-way and left its message queued, it is recognized and dropped
        // instead of mapping the wrong file.
        let seq = self.fd_seq.fetch_add(1, Ordering::SeqCst);
        send_fds(self.control.as_fd(), &[fd.as_raw_fd()], seq)?;
        let at = |off: usize| REGION + off as u64;
        // struct msghdr { name, namelen(+pad), iov, iovlen, control, controllen, flags }
        let mut hdr = [0u8; 56];
        hdr[16..24].copy_from_slice(&at(SCRATCH_IOV).to_le_bytes());
        hdr[24..32].copy_from_slice(&1u64.to_le_bytes());
        hdr[32..40].copy_from_slice(&at(SCRATCH_CMSG).to_le_bytes());
        hdr[40..48].copy_from_slice(&(CMSG_SPACE_FD as u64).to_le_bytes());
        let mut iovec = [0u8; 16];
        iovec[0..8].copy_from_slice(&at(SCRATCH_DATA).to_le_bytes());
        iovec[8..16].copy_from_slice(&8u64.to_le_bytes());
        for _ in 0..MAX_STALE_MESSAGES {
            // recvmsg updates msg_controllen and msg_flags: rewrite them every time.
            chan.region.write(SCRATCH_IOV, &iovec);
            chan.region.write(SCRATCH_MSGHDR, &hdr);
            chan.region.write(SCRATCH_CMSG, &[0u8; CMSG_SPACE_FD]);
            let flags = (libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) as u64;
            let n = self.request_locked(
                chan,
                libc::SYS_recvmsg,
                [0, at(SCRATCH_MSGHDR), flags, 0, 0, 0],
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
}

/// Sends `fds` with an 8-byte `seq` on `sock`.
fn send_fds(sock: BorrowedFd<'_>, fds: &[i32], seq: u64) -> SysResult<()> {
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
                let chan = self.lock()?;
                let remote = self.send_fd(&chan, fd)?;
                let flags = (kind | libc::MAP_FIXED) as u64;
                let r = self.request_locked(
                    &chan,
                    libc::SYS_mmap,
                    [addr, len, prot, flags, remote, offset],
                );
                let c = self.request_locked(&chan, libc::SYS_close, [remote, 0, 0, 0, 0, 0]);
                r?;
                c?;
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
        common::read_process(self.pid, &self.mem, addr, buf)
    }

    fn write(&self, addr: u64, buf: &[u8]) -> SysResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.dead.load(Ordering::SeqCst) {
            return Err(Errno::EFAULT);
        }
        common::write_process(self.pid, &self.mem, addr, buf)
    }
}

impl Drop for SystrapSpace {
    fn drop(&mut self) {
        // The zygote reaps its children itself (SA_NOCLDWAIT); a SIGKILL through the
        // pidfd is all it takes, and cannot hit a recycled pid.
        if let Err(e) = sys::pidfd_signal(&self.pidfd, libc::SIGKILL) {
            if e != Errno::ESRCH {
                tracing::warn!(pid = self.pid, error = %e.name(), "killing systrap stub");
            }
        }
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
