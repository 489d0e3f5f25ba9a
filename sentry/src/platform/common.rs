//! Host-side pieces every stub-process backend shares: copying application memory
//! and placing stub threads on CPUs.

use std::io::IoSliceMut;

use crate::errno::{Errno, SysResult};

/// Copies from application memory in process `pid` with `process_vm_readv`, which
/// obeys the application's page protections as a user access would: a page the app
/// cannot read (PROT_NONE, unmapped) ends the copy. Returns the bytes copied, short at
/// the first such page; `EFAULT` if none; `ESRCH` if `pid` names no thread with an
/// address space (gone, or an exited thread-group leader: callers retry on a live
/// thread of the process).
pub fn read_process(pid: i32, addr: u64, buf: &mut [u8]) -> SysResult<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    let len = buf.len().min((u64::MAX - addr) as usize);
    let local = [IoSliceMut::new(&mut buf[..len])];
    let remote = [libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    }];
    // SAFETY: `local` describes writable memory we own; `remote` is only an address in
    // the other process, checked by the kernel.
    let n = unsafe { libc::process_vm_readv(pid, local.as_ptr().cast(), 1, remote.as_ptr(), 1, 0) };
    copied(n)
}

/// Copies into application memory in process `pid` with `process_vm_writev`: a page
/// the app cannot write (read-only, PROT_NONE, unmapped) ends the copy, as for a
/// user access. Same return rules as [`read_process`]. The sentry has no way around
/// page protections (no `/proc/<pid>/mem`): what must land in a read-only page is
/// written while the page is still writable, then protected (see the ELF loader).
pub fn write_process(pid: i32, addr: u64, buf: &[u8]) -> SysResult<usize> {
    if buf.is_empty() {
        return Ok(0);
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
    // SAFETY: `local` describes memory we own that the kernel only reads; `remote` is
    // only an address in the other process, checked by the kernel.
    let n = unsafe { libc::process_vm_writev(pid, local.as_ptr(), 1, remote.as_ptr(), 1, 0) };
    copied(n)
}

/// The result of a `process_vm_*` call that returned `n`.
fn copied(n: isize) -> SysResult<usize> {
    if n > 0 {
        return Ok(n as usize);
    }
    if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return Err(Errno::ESRCH);
    }
    Err(Errno::EFAULT)
}

/// How many of `len` bytes at `addr` lie below `max` (the backend's highest
/// application address): application memory is copied only there. Above it lies the
/// platform's own reserved range (the systrap stub's code and regions), which the
/// sentry must never read or write on the application's behalf (a buffer pointing
/// there once let a system call's output overwrite a stub's hand-off words); as on
/// Linux, a range that starts there is EFAULT and one that runs into it is cut short.
pub fn user_span(addr: u64, len: usize, max: u64) -> SysResult<usize> {
    if addr >= max {
        return Err(Errno::EFAULT);
    }
    Ok(len.min((max - addr).min(usize::MAX as u64) as usize))
}

/// Validates `[addr, addr+len)` for a mapping operation below `max` (the backend's
/// highest application address); returns the page-rounded length.
pub fn check_range(addr: u64, len: u64, max: u64) -> SysResult<u64> {
    if !addr.is_multiple_of(crate::platform::PAGE_SIZE) || len == 0 {
        return Err(Errno::EINVAL);
    }
    let len = crate::platform::page_round_up(len).ok_or(Errno::ENOMEM)?;
    match addr.checked_add(len) {
        Some(end) if end <= max => Ok(len),
        _ => Err(Errno::ENOMEM),
    }
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is a plain bitmask; zeroed is its empty value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid, writable cpu_set_t of the size passed.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r < 0 {
        return vec![0];
    }
    // SAFETY: CPU_ISSET only reads the set for indices below CPU_SETSIZE.
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect();
    if cpus.is_empty() {
        vec![0]
    } else {
        cpus
    }
}

/// Restricts thread or process `tid` (0: the calling thread) to `cpu` (one of
/// [`allowed_cpus`]).
pub fn pin(tid: i32, cpu: usize) -> SysResult<()> {
    pin_to(tid, &[cpu])
}

/// Lets thread or process `tid` (0: the calling thread) run on `cpus` (taken from
/// [`allowed_cpus`]).
pub fn pin_to(tid: i32, cpus: &[usize]) -> SysResult<()> {
    // SAFETY: cpu_set_t is a plain bitmask; zeroed is its empty value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu < libc::CPU_SETSIZE as usize {
            // SAFETY: cpu < CPU_SETSIZE, checked just above.
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
    }
    // SAFETY: set is a valid cpu_set_t of the size passed.
    let r = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

pub(crate) use crate::sys::confine::INTERRUPT_SIGNAL;
use crate::sys::host::{PIDFD_SIGNAL_THREAD, PIDFD_THREAD};

/// A way to send a signal to exactly one stub thread.
pub enum ThreadSignaller {
    /// A thread pidfd: can never hit a recycled id.
    Pidfd(std::os::fd::OwnedFd),
    /// Kernels before 6.9 have no thread pidfds: `tgkill` with the stub's tgid, so a
    /// recycled tid can only ever be another thread of the same stub.
    Tgkill { tgid: i32, tid: i32 },
}

impl ThreadSignaller {
    /// Prepares signalling thread `tid` of stub process `tgid`.
    pub fn new(tgid: i32, tid: i32) -> SysResult<Self> {
        match thread_pidfd(tid) {
            Ok(fd) => Ok(ThreadSignaller::Pidfd(fd)),
            Err(Errno::EINVAL) => Ok(ThreadSignaller::Tgkill { tgid, tid }),
            Err(e) => Err(e),
        }
    }

    /// Sends `sig` to the thread.
    pub fn signal(&self, sig: i32) -> SysResult<()> {
        use std::os::fd::AsRawFd;
        let r = match self {
            // SAFETY: integers and a NULL siginfo, which means "as tgkill(2) would".
            ThreadSignaller::Pidfd(fd) => unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    sig,
                    std::ptr::null::<libc::siginfo_t>(),
                    PIDFD_SIGNAL_THREAD,
                )
            },
            // SAFETY: tgkill takes integers only.
            ThreadSignaller::Tgkill { tgid, tid } => unsafe {
                libc::syscall(libc::SYS_tgkill, *tgid, *tid, sig)
            },
        };
        if r < 0 {
            return Err(Errno::last());
        }
        Ok(())
    }
}

/// CPU time (user, system) of host process `pid` so far, from its process CPU clocks
/// (readable for any process the sentry can see; no /proc needed).
pub fn process_cpu_time(pid: i32) -> Option<(std::time::Duration, std::time::Duration)> {
    // The kernel's encoding of a process CPU clock: (~pid << 3) | kind, where kind 0
    // is user+system (PROF) and 1 is user only (VIRT).
    let clock = |kind: i32| -> Option<std::time::Duration> {
        let id: libc::clockid_t = ((!pid) << 3) | kind;
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a valid, writable timespec; the clock id names a process clock.
        let r = unsafe { libc::clock_gettime(id, &mut ts) };
        (r == 0).then(|| std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    };
    let total = clock(0)?;
    let user = clock(1)?.min(total);
    Some((user, total - user))
}

/// CPU time host process `pid` has run so far, to the nanosecond (its scheduler
/// clock; [`process_cpu_time`]'s user and system times advance by clock ticks, so a
/// process that ran less than a tick shows none there).
pub fn process_cpu_runtime(pid: i32) -> Option<std::time::Duration> {
    // (~pid << 3) | 2: the process's CPUCLOCK_SCHED.
    let id: libc::clockid_t = ((!pid) << 3) | 2;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec; the clock id names a process clock.
    let r = unsafe { libc::clock_gettime(id, &mut ts) };
    (r == 0).then(|| std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// `pidfd_open(pid, flags)`.
fn pidfd_open_flags(pid: i32, flags: libc::c_uint) -> SysResult<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes two integers.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// `pidfd_open(pid)`: a pidfd of process `pid`.
pub fn pidfd_open(pid: i32) -> SysResult<std::os::fd::OwnedFd> {
    pidfd_open_flags(pid, 0)
}

/// A pidfd of thread `tid` alone (`PIDFD_THREAD`, Linux 6.9): it polls readable once
/// that thread has exited, whatever its siblings do.
pub fn thread_pidfd(tid: i32) -> SysResult<std::os::fd::OwnedFd> {
    pidfd_open_flags(tid, PIDFD_THREAD)
}

/// `pidfd_send_signal(pidfd, sig)`: signals the process the pidfd names, never a
/// recycled pid; signal 0 only checks that the process exists.
pub fn pidfd_signal(pidfd: &std::os::fd::OwnedFd, sig: i32) -> SysResult<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: integers and a NULL siginfo, which means "as kill(2) would".
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// A `SOCK_SEQPACKET` pair, both ends close-on-exec (a stub's end is re-created at
/// its fixed number without the flag, or passed with `SCM_RIGHTS`).
pub fn seqpacket_pair() -> SysResult<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Errno(e as i32))
}

/// Sends a one-byte wake-up on `sock` without blocking: a full queue already holds
/// one, which is all the reader needs.
pub fn wake_up(sock: std::os::fd::BorrowedFd<'_>) {
    use nix::sys::socket::{sendmsg, MsgFlags};
    use std::os::fd::AsRawFd;
    let iov = [std::io::IoSlice::new(&[1u8])];
    let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
    let _ = sendmsg::<()>(sock.as_raw_fd(), &iov, &[], flags, None);
}

/// Reads every wake-up queued on `sock`, without blocking.
pub fn drain_wake_ups(sock: std::os::fd::BorrowedFd<'_>) {
    use nix::sys::socket::{recvmsg, MsgFlags};
    use std::os::fd::AsRawFd;
    let mut b = [0u8; 16];
    loop {
        let mut iov = [std::io::IoSliceMut::new(&mut b)];
        if recvmsg::<()>(sock.as_raw_fd(), &mut iov, None, MsgFlags::MSG_DONTWAIT).is_err() {
            return;
        }
    }
}
