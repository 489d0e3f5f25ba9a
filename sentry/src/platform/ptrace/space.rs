//! An address space: one stub process, edited through remote system calls.

use std::fs::File;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::errno::{Errno, SysResult};
use crate::platform::{AddressSpace, Backing, Regs, PAGE_SIZE};

use super::stub::{self, StubImage, SCRATCH, STUB_CONTROL_FD};
use super::sys::{self, WaitStatus};
use super::MAX_USER_ADDRESS;

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
/// How many queued leftovers of failed fd transfers one transfer skips at most.
const MAX_STALE_MESSAGES: usize = 4;
/// `CMSG_SPACE(sizeof(int))` on x86-64.
const CMSG_SPACE_FD: u64 = 24;

/// One stub process and everything needed to drive it.
pub(super) struct PtraceSpace {
    /// The stub's pid (its only thread).
    pub pid: i32,
    /// The host thread that traces the stub; only it may issue ptrace requests.
    pub tracer: i32,
    /// The address of the landing pad's `syscall` and of the rip after its `int3`.
    pad: u64,
    pad_trap: u64,
    /// The stub's registers at start-up: valid segment selectors for new contexts.
    pub initial_regs: Regs,
    /// The sentry's end of the control socket (fds travel through it).
    pub control: OwnedFd,
    /// `/proc/<pid>/mem`, bound to the stub's mm: reaches pages `process_vm_*` won't.
    pub mem: File,
    /// A pidfd: signals through it can never hit a recycled pid.
    pub pidfd: OwnedFd,
    /// Set once the stub has been reaped (by a wait on the tracer thread).
    pub reaped: AtomicBool,
    /// Whether the one context of this space has been handed out.
    pub context_taken: AtomicBool,
    /// Sequence number of the next fd transfer.
    fd_seq: AtomicU64,
}

impl PtraceSpace {
    /// Starts a stub and brings it to its post-start-up trap, with the scratch page
    /// mapped. Called on the thread that will trace it.
    pub(super) fn new(exe: BorrowedFd<'_>, image: &StubImage) -> SysResult<Self> {
        let (control, stub_end) = socketpair()?;
        let pid = stub::spawn(exe, stub_end.as_fd())?;
        drop(stub_end);
        let mut gone = false;
        match Self::start(pid, control, image, &mut gone) {
            Ok(space) => Ok(space),
            Err(e) => {
                if !gone {
                    // SAFETY: `pid` is our child and not reaped yet, so the number
                    // cannot have been recycled.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    reap(pid);
                }
                tracing::warn!(pid, error = %e.name(), "ptrace stub failed to start");
                Err(e)
            }
        }
    }

    fn start(pid: i32, control: OwnedFd, image: &StubImage, gone: &mut bool) -> SysResult<Self> {
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
        let opts = libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_EXITKILL;
        sys::ptrace_plain(libc::PTRACE_SETOPTIONS, pid, 0, opts as usize)?;
        sys::ptrace_plain(libc::PTRACE_CONT, pid, 0, 0)?;
        let mut regs = zero_regs();
        loop {
            match wait(gone)? {
                WaitStatus::Stopped {
                    sig: libc::SIGTRAP,
                    event: 0,
                } => {
                    sys::get_regs(pid, &mut regs)?;
                    if regs.rip == image.start_trap {
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
        let mem = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))
            .map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::EIO)))?;
        let pidfd = sys::pidfd_open(pid)?;
        let space = PtraceSpace {
            pid,
            tracer: sys::gettid(),
            pad: image.pad,
            pad_trap: image.pad_trap,
            initial_regs: regs,
            control,
            mem,
            pidfd,
            reaped: AtomicBool::new(false),
            context_taken: AtomicBool::new(false),
            fd_seq: AtomicU64::new(0),
        };
        let prot = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED) as u64;
        // From here on the Drop of `space` kills and reaps the process.
        *gone = true;
        space.remote_syscall(
            libc::SYS_mmap as u64,
            [SCRATCH, PAGE_SIZE, prot, flags, u64::MAX, 0],
        )?;
        Ok(space)
    }

    /// Errors unless called on the tracer thread with the stub alive.
    pub(super) fn check_tracer(&self) -> SysResult<()> {
        if self.reaped.load(Ordering::SeqCst) {
            return Err(Errno::ESRCH);
        }
        let tid = sys::gettid();
        if tid != self.tracer {
            tracing::error!(
                tid,
                tracer = self.tracer,
                "ptrace platform used from a thread that does not trace the stub"
            );
            return Err(Errno::EPERM);
        }
        Ok(())
    }

    /// Waits for the next stop of the stub; a dead stub is recorded and reported as
    /// ESRCH.
    pub(super) fn wait_stop(&self) -> SysResult<(i32, i32)> {
        match sys::wait(self.pid) {
            Ok(WaitStatus::Stopped { sig, event }) => Ok((sig, event)),
            Ok(WaitStatus::Gone) | Err(_) => {
                self.reaped.store(true, Ordering::SeqCst);
                tracing::warn!(pid = self.pid, "ptrace stub died");
                Err(Errno::ESRCH)
            }
        }
    }

    /// Passes a failed ptrace request's error through. ESRCH from a stub we trace and
    /// hold stopped means it is dying (a SIGKILL from outside): reap it now so every
    /// later call reports the death at once.
    pub(super) fn died(&self, e: Errno) -> Errno {
        if e == Errno::ESRCH && !self.reaped.load(Ordering::SeqCst) && sys::gettid() == self.tracer
        {
            let _ = self.wait_stop();
        }
        e
    }

    /// A ptrace request on the stub, turning "no such process" into a recorded death
    /// where that is what it means.
    fn ptrace(&self, req: libc::c_uint, data: usize) -> SysResult<()> {
        sys::ptrace_plain(req, self.pid, 0, data).map_err(|e| self.died(e))
    }

    /// Runs system call `nr` with `args` inside the stub and returns its result. The
    /// stub's registers are saved and restored around it.
    pub(super) fn remote_syscall(&self, nr: u64, args: [u64; 6]) -> SysResult<u64> {
        self.check_tracer()?;
        let mut saved = zero_regs();
        sys::get_regs(self.pid, &mut saved).map_err(|e| self.died(e))?;
        let mut r = saved;
        r.rax = nr;
        r.orig_rax = u64::MAX;
        r.rdi = args[0];
        r.rsi = args[1];
        r.rdx = args[2];
        r.r10 = args[3];
        r.r8 = args[4];
        r.r9 = args[5];
        r.rip = self.pad;
        sys::set_regs(self.pid, &r).map_err(|e| self.died(e))?;
        self.ptrace(libc::PTRACE_CONT, 0)?;
        let mut stray = 0;
        loop {
            let (sig, _event) = self.wait_stop()?;
            if sig == libc::SIGTRAP {
                sys::get_regs(self.pid, &mut r)?;
                if r.rip == self.pad_trap {
                    break;
                }
            } else if FAULT_SIGNALS.contains(&sig) {
                // The pad cannot fault unless the stub's own page was tampered with.
                let si = sys::get_siginfo(self.pid)?;
                if si.si_code > 0 {
                    tracing::error!(
                        pid = self.pid,
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
            self.ptrace(libc::PTRACE_CONT, 0)?;
        }
        sys::set_regs(self.pid, &saved)?;
        let ret = r.rax as i64;
        if (-4095..0).contains(&ret) {
            return Err(Errno(-ret as i32));
        }
        Ok(r.rax)
    }

    /// Passes `fd` into the stub; returns its number there.
    fn send_fd(&self, fd: BorrowedFd<'_>) -> SysResult<u64> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        // Each message carries a sequence number: should an earlier transfer have
        // failed half-way and left its message queued, it is recognized and dropped
        // instead of mapping the wrong file.
        let seq = self.fd_seq.fetch_add(1, Ordering::SeqCst).to_le_bytes();
        let raw = [fd.as_raw_fd()];
        let iov = [std::io::IoSlice::new(&seq)];
        let cmsg = [ControlMessage::ScmRights(&raw)];
        sendmsg::<()>(
            self.control.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
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
            let n = self.remote_syscall(
                libc::SYS_recvmsg as u64,
                [STUB_CONTROL_FD, SCRATCH_MSGHDR, flags, 0, 0, 0],
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
                self.remote_syscall(libc::SYS_close as u64, [remote as u64, 0, 0, 0, 0, 0])?;
            }
        }
        Err(Errno::EIO)
    }

    fn read_all(&self, addr: u64, buf: &mut [u8]) -> SysResult<()> {
        if self.read(addr, buf)? != buf.len() {
            return Err(Errno::EFAULT);
        }
        Ok(())
    }

    fn write_all(&self, addr: u64, buf: &[u8]) -> SysResult<()> {
        if self.write(addr, buf)? != buf.len() {
            return Err(Errno::EFAULT);
        }
        Ok(())
    }

    /// The `/proc/<pid>/mem` path of a copy: ignores protections (FOLL_FORCE), stops at
    /// the first unmapped page.
    fn mem_rw(
        &self,
        addr: u64,
        len: usize,
        mut op: impl FnMut(u64, usize) -> std::io::Result<usize>,
    ) -> usize {
        let mut done = 0;
        while done < len {
            let Ok(off) = i64::try_from(addr + done as u64) else {
                break;
            };
            match op(off as u64, done) {
                Ok(0) | Err(_) => break,
                Ok(n) => done += n,
            }
        }
        done
    }
}

/// Validates `[addr, addr+len)` for a mapping operation; returns the page-rounded
/// length.
fn check_range(addr: u64, len: u64) -> SysResult<u64> {
    if !addr.is_multiple_of(PAGE_SIZE) || len == 0 {
        return Err(Errno::EINVAL);
    }
    let len = crate::platform::page_round_up(len).ok_or(Errno::ENOMEM)?;
    match addr.checked_add(len) {
        Some(end) if end <= MAX_USER_ADDRESS => Ok(len),
        _ => Err(Errno::ENOMEM),
    }
}

impl AddressSpace for PtraceSpace {
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
                self.remote_syscall(libc::SYS_mmap as u64, [addr, len, prot, flags, u64::MAX, 0])?;
            }
            Backing::File { fd, offset } => {
                if !offset.is_multiple_of(PAGE_SIZE) {
                    return Err(Errno::EINVAL);
                }
                self.check_tracer()?;
                let remote = self.send_fd(fd)?;
                let flags = (kind | libc::MAP_FIXED) as u64;
                let r = self.remote_syscall(
                    libc::SYS_mmap as u64,
                    [addr, len, prot, flags, remote, offset],
                );
                let c = self.remote_syscall(libc::SYS_close as u64, [remote, 0, 0, 0, 0, 0]);
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
        if self.reaped.load(Ordering::SeqCst) {
            return Err(Errno::EFAULT);
        }
        let len = buf.len().min((u64::MAX - addr) as usize);
        let local = [IoSliceMut::new(&mut buf[..len])];
        let remote = [libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: len,
        }];
        // SAFETY: `local` describes writable memory we own; `remote` is only an address
        // in the stub, checked by the kernel.
        let n = unsafe {
            libc::process_vm_readv(self.pid, local.as_ptr().cast(), 1, remote.as_ptr(), 1, 0)
        };
        let mut done = n.max(0) as usize;
        if done < len {
            // PROT_NONE pages, or a short copy: the mem file copies page by page.
            let start = done;
            done += self.mem_rw(addr + start as u64, len - start, |off, d| {
                self.mem.read_at(&mut buf[start + d..len], off)
            });
        }
        if done == 0 {
            return Err(Errno::EFAULT);
        }
        Ok(done)
    }

    fn write(&self, addr: u64, buf: &[u8]) -> SysResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.reaped.load(Ordering::SeqCst) {
            return Err(Errno::EFAULT);
        }
        let len = buf.len().min((u64::MAX - addr) as usize);
        let local = [libc::iovec {
            iov_base: buf.as_ptr() as *mut libc::c_void,
            iov_len: len,
        }];
        let remote = [libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: len,
        }];
        // SAFETY: `local` describes memory we own that the kernel only reads; `remote`
        // is only an address in the stub, checked by the kernel.
        let n =
            unsafe { libc::process_vm_writev(self.pid, local.as_ptr(), 1, remote.as_ptr(), 1, 0) };
        let mut done = n.max(0) as usize;
        if done < len {
            // Read-only pages (e.g. code the loader fills): the mem file writes with
            // FOLL_FORCE, breaking copy-on-write as a debugger's poke does.
            let start = done;
            done += self.mem_rw(addr + start as u64, len - start, |off, d| {
                self.mem.write_at(&buf[start + d..len], off)
            });
        }
        if done == 0 {
            return Err(Errno::EFAULT);
        }
        Ok(done)
    }
}

impl Drop for PtraceSpace {
    fn drop(&mut self) {
        if self.reaped.load(Ordering::SeqCst) {
            return;
        }
        // Through the pidfd: even from a non-tracer thread this cannot hit another
        // process. SIGKILL ends a ptrace-stopped tracee too.
        if let Err(e) = sys::pidfd_signal(&self.pidfd, libc::SIGKILL) {
            tracing::warn!(pid = self.pid, error = %e.name(), "killing ptrace stub");
        }
        reap(self.pid);
        self.reaped.store(true, Ordering::SeqCst);
    }
}

/// Waits until `pid` (already killed) is gone. Any thread of our process may reap it.
fn reap(pid: i32) {
    loop {
        match sys::wait(pid) {
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

/// A SOCK_SEQPACKET pair: (sentry end, stub end), both close-on-exec here (the child
/// re-creates the stub end without the flag at its fixed number).
fn socketpair() -> SysResult<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Errno(e as i32))
}
