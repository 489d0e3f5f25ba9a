//! Plain-old-data views: the kernel ABI structs the sentry copies to and from
//! application memory as raw bytes.

/// A type whose every bit pattern is valid and which has no padding the application
/// could read stale sentry memory through: the libc ABI structs below.
///
/// # Safety
/// Implement only for `repr(C)` integer-only structs without padding bytes.
pub unsafe trait Pod: Copy + 'static {}

macro_rules! pod {
    ($($t:ty),* $(,)?) => {
        $(
            // SAFETY: integer-only repr(C) ABI struct without padding (checked by the
            // size assertions in this module's tests).
            unsafe impl Pod for $t {}
        )*
    };
}

pod!(
    u8,
    u16,
    u32,
    u64,
    i32,
    i64,
    libc::timespec,
    libc::timeval,
    libc::rlimit,
    libc::utsname,
    libc::stat,
    libc::iovec,
    libc::sigset_t,
    libc::tms,
    libc::rusage,
    libc::winsize,
    libc::user_regs_struct,
);

/// The bytes of `v`.
pub fn bytes_of<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: T: Pod has no padding and is plain data, so all size_of::<T>() bytes are
    // initialised; the slice borrows v for its lifetime.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

/// A `T` from the first `size_of::<T>()` bytes of `b` (zero-padded if `b` is shorter).
pub fn from_bytes<T: Pod>(b: &[u8]) -> T {
    let mut buf = vec![0u8; std::mem::size_of::<T>()];
    let n = b.len().min(buf.len());
    buf[..n].copy_from_slice(&b[..n]);
    // SAFETY: buf holds size_of::<T>() initialised bytes and T: Pod is valid for any bit
    // pattern; read_unaligned copes with the Vec's alignment.
    unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<T>()) }
}

/// A zeroed `T`.
pub fn zeroed<T: Pod>() -> T {
    from_bytes(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let t = libc::timespec {
            tv_sec: 5,
            tv_nsec: 7,
        };
        let b = bytes_of(&t).to_vec();
        let u: libc::timespec = from_bytes(&b);
        assert_eq!((u.tv_sec, u.tv_nsec), (5, 7));
        assert_eq!(std::mem::size_of::<libc::stat>(), 144);
    }
}
