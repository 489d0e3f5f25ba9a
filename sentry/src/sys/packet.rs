//! Host calls on the packet socket of `--network=sandbox` (an `AF_PACKET` socket
//! the runtime bound to the pod's interface before confinement) and on the eventfd
//! that wakes the stack's driver thread. Each is in the sentry's seccomp allow-list,
//! `recvfrom`/`sendto` only on the packet socket's own fd.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::errno::{Errno, SysResult};

/// `recvfrom` flags of [`recv_frame`] (the allow-list checks them).
pub const RECV_FLAGS: i32 = libc::MSG_DONTWAIT | libc::MSG_TRUNC;
/// `sendto` flags of [`send_frame`].
pub const SEND_FLAGS: i32 = libc::MSG_DONTWAIT;

/// One frame from the packet socket into `buf`, without blocking: `Ok(Some(n))` a
/// frame the interface received (`n` its full length, which may exceed `buf`),
/// `Ok(None)` a frame the host itself sent on the interface (skipped), `EAGAIN`
/// when none is waiting.
pub fn recv_frame(fd: BorrowedFd<'_>, buf: &mut [u8]) -> SysResult<Option<usize>> {
    loop {
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: buf is a writable slice of buf.len() bytes, from and len are live
        // locals of the sizes given; fd is a borrowed live descriptor.
        let r = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                RECV_FLAGS,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if r < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e),
            }
        }
        if from.sll_pkttype == libc::PACKET_OUTGOING {
            return Ok(None);
        }
        return Ok(Some(r as usize));
    }
}

/// Sends one frame on the packet socket (the interface it is bound to).
pub fn send_frame(fd: BorrowedFd<'_>, frame: &[u8]) -> SysResult<usize> {
    loop {
        // SAFETY: frame is a readable slice; no address is passed (the socket is
        // bound to its interface); fd is a borrowed live descriptor.
        let r = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                SEND_FLAGS,
                std::ptr::null(),
                0,
            )
        };
        if r < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e),
            }
        }
        return Ok(r as usize);
    }
}

/// A new non-blocking eventfd (made before confinement).
pub fn eventfd() -> SysResult<OwnedFd> {
    // SAFETY: no pointer arguments.
    let r = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: r is a new descriptor this process owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// Adds one to an eventfd (wakes a [`wait`] on it).
pub fn kick(fd: BorrowedFd<'_>) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: one is a readable 8-byte buffer; fd is a borrowed live descriptor. A
    // full counter (EAGAIN) already means a wake-up is pending.
    let _ = unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), 8) };
}

/// Resets an eventfd's counter.
pub fn drain(fd: BorrowedFd<'_>) {
    let mut v = [0u8; 8];
    // SAFETY: v is a writable 8-byte buffer; fd is a borrowed live descriptor.
    let _ = unsafe { libc::read(fd.as_raw_fd(), v.as_mut_ptr().cast(), 8) };
}

/// Waits until `a` or `b` is readable or `timeout` passes (`None`: no limit).
pub fn wait(a: BorrowedFd<'_>, b: BorrowedFd<'_>, timeout: Option<Duration>) {
    let mut fds = [
        libc::pollfd {
            fd: a.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: b.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: t.subsec_nanos() as i64,
    });
    let tp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: fds is a live array of two pollfds; tp is null or points to a live
    // timespec; no signal mask is passed.
    let _ = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, tp, std::ptr::null()) };
}
