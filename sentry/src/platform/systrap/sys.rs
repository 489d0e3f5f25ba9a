//! Thin, checked wrappers around the host calls the systrap platform makes.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use crate::errno::{Errno, SysResult};

/// The errno of the last failed libc call.
pub(super) fn last_errno() -> Errno {
    Errno(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

pub(super) use crate::platform::common::{pidfd_open, pidfd_signal};
pub(super) use crate::platform::death_watch::pidfd_exited;

/// `FUTEX_WAIT` (shared: the word lies in memory mapped by two processes) while
/// `word` holds `val`, for at most `timeout`. Spurious returns are the caller's to
/// handle (it re-checks the word).
pub(super) fn futex_wait(word: &AtomicU32, val: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a valid, aligned u32 for the whole call; `ts` is a valid
    // timespec the kernel only reads.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            val,
            &ts as *const libc::timespec,
        )
    };
}

/// `FUTEX_WAKE` of one waiter on `word` (shared futex).
pub(super) fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE only uses its address.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1) };
}

/// A fresh memfd of `size` bytes (close-on-exec).
pub(super) fn memfd_sized(name: &std::ffi::CStr, size: u64) -> SysResult<OwnedFd> {
    // SAFETY: `name` is NUL-terminated; flags are integers.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ftruncate on an fd we own with an integer size.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), size as libc::off_t) } < 0 {
        return Err(last_errno());
    }
    Ok(fd)
}

/// A shared read-write mapping of `len` bytes of `fd` in the sentry.
pub(super) struct SharedMapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; every access through it goes through
// atomics or volatile copies that tolerate concurrent writers.
unsafe impl Send for SharedMapping {}
// SAFETY: as above.
unsafe impl Sync for SharedMapping {}

impl SharedMapping {
    /// Maps `fd` from offset 0.
    pub(super) fn new(fd: &OwnedFd, len: usize) -> SysResult<Self> {
        // SAFETY: a fresh mapping chosen by the kernel; it touches no existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(last_errno());
        }
        Ok(SharedMapping { ptr: p.cast(), len })
    }

    /// Where the mapping lies in the sentry.
    #[cfg(test)]
    pub(super) fn addr(&self) -> usize {
        self.ptr as usize
    }

    /// The mapping's length.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The 32-bit word at `off` (4-aligned, in bounds: checked).
    pub(super) fn word(&self, off: usize) -> &AtomicU32 {
        assert!(off.is_multiple_of(4) && off + 4 <= self.len);
        // SAFETY: in bounds and aligned (checked); the mapping lives as long as
        // `self`, and AtomicU32 tolerates the other process writing concurrently.
        unsafe { AtomicU32::from_ptr(self.ptr.add(off).cast()) }
    }

    /// Copies `buf.len()` bytes at `off` out of the mapping. Panics if out of bounds
    /// (callers check offsets that come from the stub first).
    pub(super) fn read(&self, off: usize, buf: &mut [u8]) {
        assert!(off.checked_add(buf.len()).is_some_and(|e| e <= self.len));
        // Word by word where aligned: the frame copies of every hand-off are on the
        // hot path, and byte-wise volatile copies cost ~8x as many accesses.
        let mut i = 0;
        while i < buf.len() {
            let p = off + i;
            if p.is_multiple_of(8) && i + 8 <= buf.len() {
                // SAFETY: in bounds (checked) and 8-aligned (the mapping is
                // page-aligned); a volatile read tolerates the stub writing
                // concurrently (the value is then only garbage, never UB for an u64).
                let w = unsafe { std::ptr::read_volatile(self.ptr.add(p).cast::<u64>()) };
                buf[i..i + 8].copy_from_slice(&w.to_ne_bytes());
                i += 8;
            } else {
                // SAFETY: in bounds (checked); as above, for one byte.
                buf[i] = unsafe { std::ptr::read_volatile(self.ptr.add(p)) };
                i += 1;
            }
        }
    }

    /// Copies `buf` into the mapping at `off`. Panics if out of bounds.
    pub(super) fn write(&self, off: usize, buf: &[u8]) {
        assert!(off.checked_add(buf.len()).is_some_and(|e| e <= self.len));
        let mut i = 0;
        while i < buf.len() {
            let p = off + i;
            if p.is_multiple_of(8) && i + 8 <= buf.len() {
                let mut w = [0u8; 8];
                w.copy_from_slice(&buf[i..i + 8]);
                // SAFETY: in bounds (checked) and 8-aligned; see `read`.
                unsafe {
                    std::ptr::write_volatile(self.ptr.add(p).cast::<u64>(), u64::from_ne_bytes(w))
                };
                i += 8;
            } else {
                // SAFETY: in bounds (checked); see `read`.
                unsafe { std::ptr::write_volatile(self.ptr.add(p), buf[i]) };
                i += 1;
            }
        }
    }

    /// The u64 at `off`.
    pub(super) fn get_u64(&self, off: usize) -> u64 {
        let mut b = [0u8; 8];
        self.read(off, &mut b);
        u64::from_le_bytes(b)
    }

    /// Stores `v` at `off`.
    pub(super) fn put_u64(&self, off: usize, v: u64) {
        self.write(off, &v.to_le_bytes());
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once; nothing borrows it past `self`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

pub(super) use crate::platform::common::{allowed_cpus, pin, pin_to};

/// The host's one-minute load average, in runnable threads (rounded down), if
/// `sysinfo` answers.
pub(super) fn load_average() -> Option<u64> {
    // SAFETY: struct sysinfo is plain integers; zeroed is a valid value.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable struct sysinfo.
    if unsafe { libc::sysinfo(&mut info) } < 0 {
        return None;
    }
    // Fixed point with SI_LOAD_SHIFT (16) fractional bits.
    Some(info.loads[0] as u64 >> 16)
}

/// `lseek(fd, off, whence)`: the file offset afterwards.
pub(super) fn seek(fd: BorrowedFd<'_>, off: u64, whence: i32) -> SysResult<u64> {
    // SAFETY: lseek on an fd we hold, with integer arguments.
    let r = unsafe { libc::lseek(fd.as_raw_fd(), off as libc::off_t, whence) };
    if r < 0 {
        return Err(last_errno());
    }
    Ok(r as u64)
}

/// The CPU the calling thread runs on (glibc reads it through the vDSO, no system
/// call), if known.
pub(super) fn current_cpu() -> Option<usize> {
    // SAFETY: no arguments; returns a CPU number or -1.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}
