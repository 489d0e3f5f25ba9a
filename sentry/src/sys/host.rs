//! Host file operations on fds the sentry holds (gofer-donated files, the caller's
//! stdio). Every call here is also in the sentry's seccomp allow-list.

use std::os::fd::{AsRawFd, BorrowedFd};

use crate::errno::{Errno, SysResult};
use crate::sys::pod::zeroed;

/// `PIDFD_THREAD` (Linux 6.9): a pidfd naming one thread rather than a process.
pub(crate) const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;
/// `PIDFD_SIGNAL_THREAD` (Linux 6.9): `pidfd_send_signal` to the named thread only.
pub(crate) const PIDFD_SIGNAL_THREAD: libc::c_uint = 1;

fn check(r: isize) -> SysResult<usize> {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

/// `pread64` on a host fd, retried on EINTR.
pub fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], off: u64) -> SysResult<usize> {
    loop {
        // SAFETY: buf is a valid writable slice of buf.len() bytes for the duration
        // of the call; fd is a live borrowed descriptor.
        let r = unsafe {
            libc::pread64(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                off as i64,
            )
        };
        match check(r) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// `pwrite64` on a host fd, retried on EINTR.
pub fn pwrite(fd: BorrowedFd<'_>, buf: &[u8], off: u64) -> SysResult<usize> {
    loop {
        // SAFETY: buf is a valid readable slice; fd is a live borrowed descriptor.
        let r =
            unsafe { libc::pwrite64(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), off as i64) };
        match check(r) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// `read` on a host fd (stream), retried on EINTR.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> SysResult<usize> {
    loop {
        // SAFETY: buf is a valid writable slice of buf.len() bytes; fd is live.
        let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match check(r) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// `write` on a host fd (stream), retried on EINTR.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> SysResult<usize> {
    loop {
        // SAFETY: buf is a valid readable slice; fd is live.
        let r = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        match check(r) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// `ppoll` on host fds: waits up to `timeout` (`None`: forever; zero: just looks)
/// for the events each `(fd, events)` asks, and returns the events each got.
/// Interrupted by a signal, it reports no events.
pub fn poll(
    fds: &[(BorrowedFd<'_>, i16)],
    timeout: Option<std::time::Duration>,
) -> SysResult<Vec<i16>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|(fd, events)| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: *events,
            revents: 0,
        })
        .collect();
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `p` is a valid array of `p.len()` pollfds whose fds are live borrows;
    // `tsp` is null or points at a valid timespec; no signal mask.
    let r = unsafe {
        libc::ppoll(
            p.as_mut_ptr(),
            p.len() as libc::nfds_t,
            tsp,
            std::ptr::null(),
        )
    };
    match check(r as isize) {
        Ok(_) | Err(Errno::EINTR) => Ok(p.iter().map(|x| x.revents).collect()),
        Err(e) => Err(e),
    }
}

/// `fsync` on a host fd, retried on EINTR.
pub fn fsync(fd: BorrowedFd<'_>) -> SysResult<()> {
    loop {
        // SAFETY: fd is a live borrowed descriptor; no memory is passed.
        let r = unsafe { libc::fsync(fd.as_raw_fd()) };
        match check(r as isize) {
            Err(Errno::EINVAL) => return Ok(()), // a file that cannot be synced has nothing to sync
            Err(Errno::EINTR) => continue,
            other => return other.map(|_| ()),
        }
    }
}

/// `fallocate` on a host fd (a gofer-donated file, an overlay memfd), retried on
/// EINTR. Only the modes the sentry's seccomp filter lets through: 0,
/// `FALLOC_FL_KEEP_SIZE` and `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`; any other
/// is `EOPNOTSUPP` without a host call.
pub fn fallocate(fd: BorrowedFd<'_>, mode: i32, off: u64, len: u64) -> SysResult<()> {
    let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    if mode != 0 && mode != libc::FALLOC_FL_KEEP_SIZE && mode != punch {
        return Err(Errno::EOPNOTSUPP);
    }
    let off = i64::try_from(off).map_err(|_| Errno::EFBIG)?;
    let len = i64::try_from(len).map_err(|_| Errno::EFBIG)?;
    loop {
        // SAFETY: fd is a live borrowed descriptor; no memory is passed.
        let r = unsafe { libc::fallocate64(fd.as_raw_fd(), mode, off, len) };
        match check(r as isize) {
            Err(Errno::EINTR) => continue,
            other => return other.map(|_| ()),
        }
    }
}

/// `fstat` on a host fd.
pub fn fstat(fd: BorrowedFd<'_>) -> SysResult<libc::stat> {
    let mut st: libc::stat = zeroed();
    // SAFETY: st is a valid, writable struct stat; fd is live.
    let r = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(st)
}

/// The terminal requests the sentry forwards to a host terminal: they only read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtyQuery {
    /// `TCGETS`: the kernel `struct termios` (36 bytes).
    Termios,
    /// `TIOCGWINSZ`: `struct winsize` (8 bytes).
    WinSize,
}

/// Asks a host terminal for its settings; `ENOTTY` if `fd` is not a terminal.
pub fn tty_query(fd: BorrowedFd<'_>, q: TtyQuery) -> SysResult<Vec<u8>> {
    let (req, len) = match q {
        TtyQuery::Termios => (libc::TCGETS, 36usize),
        TtyQuery::WinSize => (libc::TIOCGWINSZ, 8usize),
    };
    // Larger than either struct, so the host can never write past it.
    let mut buf = [0u8; 64];
    // SAFETY: both requests write at most `len` (<= 64) bytes into buf, which lives
    // across the call; fd is live.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req, buf.as_mut_ptr()) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(buf[..len].to_vec())
}

/// Fills `buf` from the host's random source (`getrandom`, never blocking once the
/// pool is initialised).
pub fn random_bytes(buf: &mut [u8], flags: u32) -> SysResult<usize> {
    loop {
        // SAFETY: buf is a valid writable slice of buf.len() bytes.
        let r = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), flags) };
        match check(r) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// `AT_HWCAP` as Linux reports it on x86-64: CPUID leaf 1, EDX.
pub fn hwcap() -> u64 {
    #[allow(unused_unsafe)]
    // SAFETY: CPUID leaf 1 exists on every x86-64 processor and has no side effects.
    let r = unsafe { std::arch::x86_64::__cpuid(1) };
    r.edx as u64
}

/// Reads a host clock.
pub fn clock_gettime(clock: libc::clockid_t) -> SysResult<libc::timespec> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid writable timespec.
    let r = unsafe { libc::clock_gettime(clock, &mut ts) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(ts)
}

/// The resolution of a host clock.
pub fn clock_getres(clock: libc::clockid_t) -> SysResult<libc::timespec> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid writable timespec.
    let r = unsafe { libc::clock_getres(clock, &mut ts) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(ts)
}

/// The host's memory and load figures, for `sysinfo(2)`.
pub struct HostSysinfo {
    /// 1, 5 and 15 minute load averages (fixed point, 1 << 16).
    pub loads: [u64; 3],
    /// Total RAM in `mem_unit`s.
    pub totalram: u64,
    /// Free RAM.
    pub freeram: u64,
    /// Shared RAM.
    pub sharedram: u64,
    /// Buffer RAM.
    pub bufferram: u64,
    /// Unit size in bytes.
    pub mem_unit: u32,
}

/// Host `sysinfo`.
pub fn sysinfo() -> SysResult<HostSysinfo> {
    // SAFETY: libc::sysinfo is a plain C struct; zeroed is a valid value for it.
    let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: si is a valid writable struct sysinfo.
    let r = unsafe { libc::sysinfo(&mut si) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(HostSysinfo {
        loads: [si.loads[0], si.loads[1], si.loads[2]],
        totalram: si.totalram,
        freeram: si.freeram,
        sharedram: si.sharedram,
        bufferram: si.bufferram,
        mem_unit: si.mem_unit,
    })
}

/// Duplicates host fd number `fd` (close-on-exec), for the stdio the sentry was
/// started with. Fails with `EBADF` if `fd` is not open.
pub fn dup_raw(fd: i32) -> SysResult<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_DUPFD_CLOEXEC only reads the descriptor table; on success it returns a
    // fresh descriptor that nothing else owns.
    let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: r is a newly created descriptor owned by no one else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(r) })
}

/// Makes SIGCHLD take its default action in this process. A caller that ignores
/// SIGCHLD passes that on through exec, and with it ignored the kernel reaps children
/// itself: their exit statuses are lost and a wait for them never ends. Called at
/// start-up, before any child exists and before the seccomp filter.
pub fn default_sigchld() -> SysResult<()> {
    // SAFETY: SIG_DFL installs no handler, so no code of ours runs on the signal; the
    // call only changes this process's disposition of SIGCHLD.
    if unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) } == libc::SIG_ERR {
        return Err(Errno::last());
    }
    Ok(())
}

fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    #[allow(unused_unsafe)]
    // SAFETY: CPUID has no side effects; leaves above the maximum return zeros or the
    // highest basic leaf, which callers tolerate.
    let r = unsafe { std::arch::x86_64::__cpuid_count(leaf, sub) };
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// The CPU vendor string (CPUID leaf 0).
pub fn cpu_vendor() -> String {
    let (_, b, c, d) = cpuid(0, 0);
    let bytes: Vec<u8> = [b, d, c].iter().flat_map(|r| r.to_le_bytes()).collect();
    String::from_utf8_lossy(&bytes).to_string()
}

/// The CPU brand string (CPUID 0x80000002..4).
pub fn cpu_brand() -> String {
    let (max, ..) = cpuid(0x8000_0000, 0);
    if max < 0x8000_0004 {
        return "unknown".into();
    }
    let mut bytes = Vec::with_capacity(48);
    for leaf in 0x8000_0002..=0x8000_0004u32 {
        let (a, b, c, d) = cpuid(leaf, 0);
        for r in [a, b, c, d] {
            bytes.extend_from_slice(&r.to_le_bytes());
        }
    }
    String::from_utf8_lossy(&bytes)
        .trim_matches(char::from(0))
        .trim()
        .to_string()
}

/// Linux's names for the CPU feature bits it reports in /proc/cpuinfo (a subset).
pub fn cpu_flags() -> Vec<&'static str> {
    let (_, _, c1, d1) = cpuid(1, 0);
    let (_, b7, c7, _) = cpuid(7, 0);
    let (_, _, ce, de) = cpuid(0x8000_0001, 0);
    let table: [(u32, u32, &str); 30] = [
        (d1, 0, "fpu"),
        (d1, 4, "tsc"),
        (d1, 8, "cx8"),
        (d1, 15, "cmov"),
        (d1, 19, "clflush"),
        (d1, 23, "mmx"),
        (d1, 24, "fxsr"),
        (d1, 25, "sse"),
        (d1, 26, "sse2"),
        (d1, 28, "ht"),
        (c1, 0, "pni"),
        (c1, 1, "pclmulqdq"),
        (c1, 9, "ssse3"),
        (c1, 12, "fma"),
        (c1, 13, "cx16"),
        (c1, 19, "sse4_1"),
        (c1, 20, "sse4_2"),
        (c1, 22, "movbe"),
        (c1, 23, "popcnt"),
        (c1, 25, "aes"),
        (c1, 26, "xsave"),
        (c1, 28, "avx"),
        (c1, 29, "f16c"),
        (c1, 30, "rdrand"),
        (b7, 3, "bmi1"),
        (b7, 5, "avx2"),
        (b7, 8, "bmi2"),
        (b7, 16, "avx512f"),
        (c7, 1, "avx512vbmi"),
        (ce, 5, "abm"),
    ];
    let mut v: Vec<&'static str> = table
        .iter()
        .filter(|(r, b, _)| r & (1 << b) != 0)
        .map(|(_, _, n)| *n)
        .collect();
    if de & (1 << 29) != 0 {
        v.push("lm");
    }
    if de & (1 << 20) != 0 {
        v.push("nx");
    }
    v
}

/// The CPU the calling thread runs on. glibc answers from the thread's rseq area
/// or the vDSO, with no system call.
pub fn current_cpu() -> u32 {
    // SAFETY: sched_getcpu takes no arguments and touches no caller memory.
    let c = unsafe { libc::sched_getcpu() };
    c.max(0) as u32
}

/// `membarrier(MEMBARRIER_CMD_GLOBAL)`: returns once every thread on the host has
/// passed a full memory barrier (the application's stub threads among them).
pub fn membarrier_global() -> SysResult<()> {
    // SAFETY: membarrier takes no pointers; the command and flags are constants.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, 1, 0, 0) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// The time-stamp counter, read after every earlier load and before every later
/// one (`lfence; rdtsc; lfence`), as the vDSO reads it.
pub fn tsc_ordered() -> u64 {
    use std::arch::x86_64::{_mm_lfence, _rdtsc};
    #[allow(unused_unsafe)]
    // SAFETY: lfence and rdtsc have no memory operands and exist on every x86-64
    // processor (SSE2 is part of the base ISA); rdtsc only faults under
    // PR_SET_TSC(PR_TSC_SIGSEGV), which the sentry never sets.
    unsafe {
        _mm_lfence();
        let t = _rdtsc();
        _mm_lfence();
        t
    }
}

/// One page of a file mapped shared and writable into the sentry, as words (the
/// vDSO's data page, which the sentry writes and every process maps read-only);
/// unmapped when dropped.
pub struct SharedWords {
    ptr: std::ptr::NonNull<std::sync::atomic::AtomicU64>,
}

/// The mapped page's size.
const SHARED_WORDS_PAGE: usize = 4096;

// SAFETY: the page is only ever reached through atomics, which any thread may use.
unsafe impl Send for SharedWords {}
// SAFETY: as for Send: shared access goes through `&[AtomicU64]` only.
unsafe impl Sync for SharedWords {}

impl std::ops::Deref for SharedWords {
    type Target = [std::sync::atomic::AtomicU64];
    fn deref(&self) -> &Self::Target {
        // SAFETY: the page stays mapped while `self` lives (unmapped only in drop, and
        // the slice borrows `self`); it is page aligned and one page long, so it holds
        // that many aligned u64 words; AtomicU64 has u64's layout, and every access
        // goes through atomics (the applications' reads happen in other processes).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), SHARED_WORDS_PAGE / 8) }
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: the mapping is this value's own (made by map_shared_words) and no
        // borrow of it outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), SHARED_WORDS_PAGE) };
    }
}

/// Maps one page of `fd` (offset 0) shared and writable into the sentry, as words.
pub fn map_shared_words(fd: BorrowedFd<'_>) -> SysResult<SharedWords> {
    // SAFETY: a fresh shared mapping chosen by the kernel, so nothing else of the
    // sentry's memory is touched; the fd is live for the call.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            SHARED_WORDS_PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    let ptr = std::ptr::NonNull::new(p.cast()).ok_or(Errno::ENOMEM)?;
    Ok(SharedWords { ptr })
}
