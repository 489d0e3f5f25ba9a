//! The *memory file*: one sandbox-wide host memfd holding every byte of memory the
//! sentry owns for the application (tmpfs file data today; shared anonymous memory
//! and memfd later). A user of it gets an [`Extent`], a fixed-size window of the
//! memfd at a page-aligned base, and addresses its data as `base + offset`.
//!
//! Layout choice: every extent is one contiguous window of [`EXTENT_SIZE`] bytes of
//! *address space* in the memfd (the memfd is sparse: a window costs nothing until
//! pages are written). So a file's data is always contiguous, grows and shrinks in
//! place, and a shared mapping of file offset `o` is simply (memfd, `base + o`): the
//! pages a mapping sees are the very pages `read`/`write` use, whatever truncate or
//! extend does later. The price is a maximum file size of [`EXTENT_SIZE`] (`EFBIG`
//! beyond), far above what a sandbox's memory allows anyway.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock};

use nix::fcntl::{fallocate, FallocateFlags};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

use crate::errno::{Errno, SysResult};
use crate::sys::host;

/// Bytes of address space each extent spans (64 GiB): the largest tmpfs file.
pub const EXTENT_SIZE: u64 = 1 << 36;
/// Extents the memory file can hold (its size is `EXTENT_SIZE * MAX_EXTENTS`, 2^62
/// bytes: within the host's `MAX_LFS_FILESIZE`).
const MAX_EXTENTS: u64 = 1 << 26;

/// The sandbox's memory file.
pub struct MemoryFile {
    fd: OwnedFd,
    slots: Mutex<Slots>,
}

struct Slots {
    next: u64,
    free: Vec<u64>,
}

/// One window of the memory file, returned to the free list (and its pages to the
/// host) when dropped.
pub struct Extent {
    mf: Arc<MemoryFile>,
    base: u64,
}

impl MemoryFile {
    /// Creates a memory file (a fresh, sparse host memfd).
    pub fn new() -> SysResult<Arc<MemoryFile>> {
        let fd = memfd_create(c"rvisor-memory", MemFdCreateFlag::MFD_CLOEXEC)?;
        nix::unistd::ftruncate(fd.as_fd(), (EXTENT_SIZE * MAX_EXTENTS) as i64)?;
        Ok(Arc::new(MemoryFile {
            fd,
            slots: Mutex::new(Slots {
                next: 0,
                free: Vec::new(),
            }),
        }))
    }

    /// The sandbox-wide instance, created on first use (boot creates it before the
    /// sentry confines itself).
    pub fn global() -> SysResult<Arc<MemoryFile>> {
        static GLOBAL: OnceLock<Arc<MemoryFile>> = OnceLock::new();
        if let Some(m) = GLOBAL.get() {
            return Ok(m.clone());
        }
        let m = MemoryFile::new()?;
        Ok(GLOBAL.get_or_init(|| m).clone())
    }

    /// The host fd (for mapping into stubs).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A new, zero-filled extent; `ENOSPC` once every window is in use.
    pub fn alloc(self: &Arc<Self>) -> SysResult<Extent> {
        let mut s = self.slots.lock().map_err(|_| Errno::EIO)?;
        let slot = match s.free.pop() {
            Some(x) => x,
            None => {
                if s.next >= MAX_EXTENTS {
                    return Err(Errno::ENOSPC);
                }
                s.next += 1;
                s.next - 1
            }
        };
        Ok(Extent {
            mf: self.clone(),
            base: slot * EXTENT_SIZE,
        })
    }

    fn punch(&self, off: u64, len: u64) -> SysResult<()> {
        if len == 0 {
            return Ok(());
        }
        fallocate(
            self.fd.as_raw_fd(),
            FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
            off as i64,
            len as i64,
        )?;
        Ok(())
    }
}

impl Extent {
    /// Offset of the extent's first byte in the memory file.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The memory file.
    pub fn memory_file(&self) -> &Arc<MemoryFile> {
        &self.mf
    }

    fn check(off: u64, len: usize) -> SysResult<()> {
        match off.checked_add(len as u64) {
            Some(end) if end <= EXTENT_SIZE => Ok(()),
            _ => Err(Errno::EFBIG),
        }
    }

    /// Reads at `off`, filling all of `buf` (holes read as zeros).
    pub fn read(&self, off: u64, buf: &mut [u8]) -> SysResult<()> {
        Self::check(off, buf.len())?;
        let mut done = 0;
        while done < buf.len() {
            let n = host::pread(
                self.mf.fd(),
                &mut buf[done..],
                self.base + off + done as u64,
            )?;
            if n == 0 {
                return Err(Errno::EIO);
            }
            done += n;
        }
        Ok(())
    }

    /// Writes all of `buf` at `off`.
    pub fn write(&self, off: u64, buf: &[u8]) -> SysResult<()> {
        Self::check(off, buf.len())?;
        let mut done = 0;
        while done < buf.len() {
            let n = host::pwrite(self.mf.fd(), &buf[done..], self.base + off + done as u64)?;
            if n == 0 {
                return Err(Errno::ENOSPC);
            }
            done += n;
        }
        Ok(())
    }

    /// Zeroes `[off, off+len)` and gives whole pages in it back to the host.
    pub fn zero(&self, off: u64, len: u64) -> SysResult<()> {
        let end = off.saturating_add(len).min(EXTENT_SIZE);
        if off >= end {
            return Ok(());
        }
        self.mf.punch(self.base + off, end - off)
    }

    /// Whether `[off, off+len)` fits in an extent.
    pub fn fits(off: u64, len: u64) -> bool {
        off.checked_add(len).is_some_and(|e| e <= EXTENT_SIZE)
    }
}

impl Drop for Extent {
    fn drop(&mut self) {
        if let Err(e) = self.mf.punch(self.base, EXTENT_SIZE) {
            // The window is leaked rather than handed out again with stale data.
            tracing::warn!(
                "memory file: cannot release extent at {:#x}: {e}",
                self.base
            );
            return;
        }
        if let Ok(mut s) = self.mf.slots.lock() {
            s.free.push(self.base / EXTENT_SIZE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_are_separate_zeroed_and_recycled() {
        let mf = MemoryFile::new().unwrap();
        let a = mf.alloc().unwrap();
        let b = mf.alloc().unwrap();
        assert_ne!(a.base(), b.base());
        a.write(10, b"hello").unwrap();
        b.write(10, b"world").unwrap();
        let mut buf = [0u8; 5];
        a.read(10, &mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        // Far offsets are sparse and read as zeros.
        let mut far = [1u8; 8];
        a.read(EXTENT_SIZE - 8, &mut far).unwrap();
        assert_eq!(far, [0; 8]);
        assert_eq!(a.write(EXTENT_SIZE - 2, b"abc"), Err(Errno::EFBIG));
        a.zero(11, 2).unwrap();
        a.read(10, &mut buf).unwrap();
        assert_eq!(&buf, b"h\0\0lo");
        let base = a.base();
        drop(a);
        let c = mf.alloc().unwrap();
        assert_eq!(c.base(), base, "freed windows are reused");
        c.read(10, &mut buf).unwrap();
        assert_eq!(buf, [0; 5], "a reused window starts zeroed");
    }
}
