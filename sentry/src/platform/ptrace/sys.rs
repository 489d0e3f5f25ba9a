//! Thin, checked wrappers around the host calls the ptrace platform makes.

use std::io;

use crate::errno::{Errno, SysResult};
use crate::platform::Regs;

/// `PTRACE_GET_SYSCALL_INFO` (Linux 5.3).
const PTRACE_GET_SYSCALL_INFO: libc::c_uint = 0x420e;
/// `ptrace_syscall_info.op` at a syscall-entry stop.
const PTRACE_SYSCALL_INFO_ENTRY: u8 = 1;
/// `AUDIT_ARCH_X86_64`: a 64-bit `syscall` instruction.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// Note type of the XSAVE register set.
pub(super) const NT_X86_XSTATE: libc::c_int = 0x202;
/// Note type of the FXSAVE register set.
pub(super) const NT_PRFPREG: libc::c_int = 2;

/// The errno of the last failed libc call.
pub(super) fn last_errno() -> Errno {
    Errno(
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

/// Turns a libc `-1`-on-error result into a `SysResult`.
fn check(ret: libc::c_long) -> SysResult<libc::c_long> {
    if ret < 0 {
        Err(last_errno())
    } else {
        Ok(ret)
    }
}

/// The calling host thread's id.
pub(super) fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// A ptrace request whose `data` is an integer and `addr` unused or an integer.
pub(super) fn ptrace_plain(req: libc::c_uint, pid: i32, addr: usize, data: usize) -> SysResult<()> {
    // SAFETY: the request kinds passed here take integer arguments only and touch no
    // memory of ours.
    check(unsafe { libc::ptrace(req, pid, addr, data) }).map(|_| ())
}

/// `PTRACE_GETREGS`.
pub(super) fn get_regs(pid: i32, regs: &mut Regs) -> SysResult<()> {
    // SAFETY: `regs` is a valid, writable user_regs_struct for the kernel to fill.
    check(unsafe { libc::ptrace(libc::PTRACE_GETREGS, pid, 0usize, regs as *mut Regs) }).map(|_| ())
}

/// `PTRACE_SETREGS`.
pub(super) fn set_regs(pid: i32, regs: &Regs) -> SysResult<()> {
    // SAFETY: `regs` is a valid user_regs_struct the kernel only reads.
    check(unsafe { libc::ptrace(libc::PTRACE_SETREGS, pid, 0usize, regs as *const Regs) })
        .map(|_| ())
}

/// `PTRACE_GETSIGINFO`.
pub(super) fn get_siginfo(pid: i32) -> SysResult<libc::siginfo_t> {
    // SAFETY: siginfo_t is plain old data; all-zero is a valid value.
    let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `si` is a valid, writable siginfo_t for the kernel to fill.
    check(unsafe {
        libc::ptrace(
            libc::PTRACE_GETSIGINFO,
            pid,
            0usize,
            &mut si as *mut libc::siginfo_t,
        )
    })?;
    Ok(si)
}

/// Whether the tracee stopped at a syscall-entry stop of a 64-bit `syscall`
/// instruction. `Ok(false)` means it was a 32-bit entry (`int $0x80`).
pub(super) fn syscall_is_64bit(pid: i32) -> SysResult<bool> {
    // struct ptrace_syscall_info: op (u8), pad, arch (u32), ip, sp, then the union.
    let mut buf = [0u64; 11];
    let size = std::mem::size_of_val(&buf);
    // SAFETY: `buf` is writable for `size` bytes; the kernel writes at most that many.
    let ret = unsafe {
        libc::ptrace(
            PTRACE_GET_SYSCALL_INFO,
            pid,
            size,
            buf.as_mut_ptr() as *mut u8,
        )
    };
    check(ret)?;
    let op = (buf[0] & 0xff) as u8;
    let arch = (buf[0] >> 32) as u32;
    if op != PTRACE_SYSCALL_INFO_ENTRY {
        return Err(Errno::EIO);
    }
    Ok(arch == AUDIT_ARCH_X86_64)
}

/// `PTRACE_GETREGSET` into `buf`; returns the length the kernel filled.
pub(super) fn get_regset(pid: i32, note: libc::c_int, buf: &mut [u8]) -> SysResult<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `iov` describes `buf`, writable for its whole length.
    check(unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGSET,
            pid,
            note as usize,
            &mut iov as *mut libc::iovec,
        )
    })?;
    Ok(iov.iov_len)
}

/// `PTRACE_SETREGSET` from `buf`.
pub(super) fn set_regset(pid: i32, note: libc::c_int, buf: &[u8]) -> SysResult<()> {
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `iov` describes `buf`, which the kernel only reads for this request.
    check(unsafe {
        libc::ptrace(
            libc::PTRACE_SETREGSET,
            pid,
            note as usize,
            &mut iov as *mut libc::iovec,
        )
    })
    .map(|_| ())
}

/// How a `waitpid` on the stub came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WaitStatus {
    /// A ptrace stop: the signal (with 0x80 for TRACESYSGOOD syscall stops) and the
    /// `PTRACE_EVENT_*` number.
    Stopped { sig: i32, event: i32 },
    /// The process is gone and reaped.
    Gone,
}

/// Blocks until `pid` stops or dies, like [`wait`], but leaves a dead thread
/// unreaped (its number stays taken): `Ok(None)` then, and [`wait`] reaps it.
/// Memory copies name stub threads by number, so whoever reaps one must first shut
/// them out.
pub(super) fn wait_unreaped(pid: i32) -> SysResult<Option<WaitStatus>> {
    loop {
        // SAFETY: siginfo_t is plain data; all-zero is valid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid siginfo_t for the kernel to fill.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WSTOPPED | libc::__WALL | libc::WNOWAIT,
            )
        };
        if r < 0 {
            let e = last_errno();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        if matches!(
            info.si_code,
            libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED
        ) {
            return Ok(None);
        }
        // A stop (or a continue): take it, the same event waitpid now reports.
        return wait(pid).map(Some);
    }
}

/// Blocks until `pid` stops or dies. Retries on EINTR.
pub(super) fn wait(pid: i32) -> SysResult<WaitStatus> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid int for the kernel to write.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if r < 0 {
            let e = last_errno();
            if e == Errno::EINTR {
                continue;
            }
            // ECHILD: someone else reaped it; either way it is gone for us.
            return Err(e);
        }
        if libc::WIFSTOPPED(status) {
            return Ok(WaitStatus::Stopped {
                sig: libc::WSTOPSIG(status),
                event: status >> 16,
            });
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            return Ok(WaitStatus::Gone);
        }
        // WIFCONTINUED is not requested; anything else, wait again.
    }
}

pub(super) use crate::platform::common::{
    allowed_cpus, pidfd_open, pidfd_signal, pin, ThreadSignaller,
};

/// `PTRACE_GETEVENTMSG`: at a fork/clone event stop, the new task's id.
pub(super) fn event_msg(tid: i32) -> SysResult<u64> {
    let mut msg: libc::c_ulong = 0;
    // SAFETY: `msg` is a valid, writable unsigned long for the kernel to fill.
    check(unsafe {
        libc::ptrace(
            libc::PTRACE_GETEVENTMSG,
            tid,
            0usize,
            &mut msg as *mut libc::c_ulong,
        )
    })?;
    Ok(msg as u64)
}
