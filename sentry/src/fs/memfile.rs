//! Memory the sentry owns for the application: tmpfs file data and System V shared
//! memory segments. Each user gets an [`Extent`]: a host memfd of its own whose size
//! is the file's (or segment's) size, so a shared mapping of file offset `o` is
//! simply (that memfd, `o`).
//!
//! Why one host memfd per file rather than windows of one sandbox-wide memfd: the
//! host kernel then enforces, for every mapping a stub holds, exactly the rules Linux
//! gives a tmpfs file. A mapping can only ever reach its own file's pages (an offset
//! past the end is past the memfd's end, never the next file); a page past end of
//! file raises SIGBUS (`BUS_ADRERR`), becomes valid when the file grows, and is
//! taken away from every mapping when the file shrinks; a new file's pages are zero
//! because the memfd is new, and a freed file's pages go back to the host when its
//! memfd is closed. The host also counts the pages each memfd really holds, those
//! written through mappings included ([`Extent::pages`]), which is what tmpfs
//! charges against its `size=` limit. The price is one host descriptor per file
//! that has data (about a kilobyte of host kernel memory, as a tmpfs inode costs on
//! Linux), charged like the pages to the sandbox's cgroup.
//!
//! Where the pages live ([`MemoryFile::alloc_in`]): a file of a sandbox tmpfs that
//! has a host tmpfs of its own ([`crate::sys::host_tmpfs`], made at boot with the
//! mount's size) is an unnamed file there, so the host refuses a page past the
//! mount's `size=` wherever it is asked for: `ENOSPC` (or a short write) for
//! `write` and `fallocate`, SIGBUS (`BUS_ADRERR`) for a fault through a shared
//! mapping, as Linux's tmpfs does (a tmpfs mounted once the sentry is confined
//! takes a spare host tmpfs made before). Everything else (System V segments,
//! memfds) is a host memfd, limited, as on Linux, only by the sandbox's memory.
//!
//! There is one [`MemoryFile`] per sandbox, a field of its kernel
//! (`kernel::Kernel::mem`), so two kernels (two sandboxes in one process, unit
//! tests) never count each other's pages.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nix::fcntl::{fallocate, FallocateFlags};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use nix::unistd::{lseek, Whence};

use crate::errno::{Errno, SysResult};
use crate::sys::host;
use crate::sys::host_tmpfs::HostTmpfs;

/// Every file with data holds a host fd, so the sentry's `RLIMIT_NOFILE` is raised
/// at boot: to Linux's default `fs.nr_open` while the sentry may still raise its
/// hard limit (in the host's user namespace, before confinement), else to the hard
/// limit.
pub fn raise_nofile_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    const NR_OPEN: u64 = 1 << 20;
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let want = hard.max(NR_OPEN);
        if soft < want && setrlimit(Resource::RLIMIT_NOFILE, want, want).is_err() {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!("memory: cannot raise RLIMIT_NOFILE to {hard}: {e}");
            }
        }
    }
}

/// Bytes per page of the memory the extents hold.
pub const PAGE: u64 = 4096;

/// Largest file size (Linux's `MAX_LFS_FILESIZE` on 64-bit): the host memfd's own
/// limit, so tmpfs files reach the same size as on Linux.
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// The sandbox's memory: makes extents and counts the pages they hold.
pub struct MemoryFile {
    /// Pages held by extents alive now, as last counted (each extent's count is
    /// refreshed by its owner: after its own writes, and when its filesystem
    /// reports usage).
    pages: AtomicU64,
}

/// One file's (or segment's) memory: a host memfd, closed (and its pages given
/// back to the host) when dropped.
pub struct Extent {
    mf: Arc<MemoryFile>,
    fd: OwnedFd,
    /// Pages this extent held when last counted (included in `mf.pages`).
    counted: AtomicU64,
    /// Page-aligned byte ranges allocated by [`Extent::allocate`], sorted and
    /// disjoint: the host holds those pages, but `SEEK_DATA` shows a page that was
    /// allocated and never written as a hole, so [`Extent::nth_hole`] needs them.
    fallocated: Mutex<Vec<(u64, u64)>>,
}

impl MemoryFile {
    /// Creates an empty memory.
    pub fn new() -> Arc<MemoryFile> {
        Arc::new(MemoryFile {
            pages: AtomicU64::new(0),
        })
    }

    /// A new, empty (size 0) extent: a fresh host memfd, so it can hold nothing
    /// another file held before.
    pub fn alloc(self: &Arc<Self>) -> SysResult<Extent> {
        self.alloc_in(None)
    }

    /// A new, empty (size 0) extent in `host` (a new unnamed file there, whose pages
    /// count against that instance's size), or a fresh host memfd without one.
    pub fn alloc_in(self: &Arc<Self>, host: Option<&HostTmpfs>) -> SysResult<Extent> {
        // Out of host descriptors, the filesystem is full as far as the application
        // can tell (as when Linux's tmpfs runs out of inodes).
        let full = |e: Errno| match e {
            Errno::EMFILE | Errno::ENFILE => Errno::ENOSPC,
            e => e,
        };
        let fd = match host {
            Some(h) => h.create_file().map_err(full)?,
            None => memfd_create(c"rvisor-memory", MemFdCreateFlag::MFD_CLOEXEC)
                .map_err(|e| full(e.into()))?,
        };
        Ok(Extent {
            mf: self.clone(),
            fd,
            counted: AtomicU64::new(0),
            fallocated: Mutex::new(Vec::new()),
        })
    }

    /// Pages held by all live extents, as last counted: the sandbox's share of
    /// memory for files and shared memory.
    pub fn pages(&self) -> u64 {
        self.pages.load(Ordering::Relaxed)
    }
}

impl Extent {
    /// The host fd (for mapping into stubs; file offset `o` is memfd offset `o`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Reads at `off`, filling all of `buf` (holes and bytes past the end read as
    /// zeros).
    pub fn read(&self, off: u64, buf: &mut [u8]) -> SysResult<()> {
        let mut done = 0;
        while done < buf.len() {
            let at = off.checked_add(done as u64).ok_or(Errno::EFBIG)?;
            let n = host::pread(self.fd(), &mut buf[done..], at)?;
            if n == 0 {
                buf[done..].fill(0);
                break;
            }
            done += n;
        }
        Ok(())
    }

    /// Writes `buf` at `off` (the host file grows to cover it): all of it, or as
    /// much as fits when the host runs out of room (a host tmpfs at its size), or
    /// `ENOSPC` when not a byte does.
    pub fn write(&self, off: u64, buf: &[u8]) -> SysResult<usize> {
        if off
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > MAX_FILE_SIZE)
        {
            return Err(Errno::EFBIG);
        }
        let mut done = 0;
        while done < buf.len() {
            match host::pwrite(self.fd(), &buf[done..], off + done as u64) {
                Ok(0) | Err(Errno::ENOSPC) if done > 0 => break,
                Ok(0) => return Err(Errno::ENOSPC),
                Ok(n) => done += n,
                Err(e) if done > 0 => {
                    tracing::debug!("memory: write stopped after {done} bytes: {e}");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Sets the size: pages past a shrink are freed (and taken from every mapping,
    /// which then gets SIGBUS there, as on Linux); the tail of a partial last page
    /// is zeroed; growing adds a hole.
    pub fn set_size(&self, size: u64) -> SysResult<()> {
        if size > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        nix::unistd::ftruncate(self.fd(), size as i64)?;
        self.forget_allocated(size.next_multiple_of(PAGE), u64::MAX);
        Ok(())
    }

    /// Allocates the pages of `[off, off+len)` (`fallocate` mode 0, or
    /// `FALLOC_FL_KEEP_SIZE` when `keep_size`).
    pub fn allocate(&self, off: u64, len: u64, keep_size: bool) -> SysResult<()> {
        let end = off.checked_add(len).ok_or(Errno::EFBIG)?;
        if end > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let flags = if keep_size {
            FallocateFlags::FALLOC_FL_KEEP_SIZE
        } else {
            FallocateFlags::empty()
        };
        fallocate(self.fd.as_raw_fd(), flags, off as i64, len as i64)?;
        let (start, end) = (off - off % PAGE, end.next_multiple_of(PAGE));
        if let Ok(mut r) = self.fallocated.lock() {
            let mut merged = (start, end);
            r.retain(|&(a, b)| {
                let apart = b < merged.0 || a > merged.1;
                if !apart {
                    merged = (merged.0.min(a), merged.1.max(b));
                }
                apart
            });
            let at = r.partition_point(|&(a, _)| a < merged.0);
            r.insert(at, merged);
        }
        Ok(())
    }

    /// Drops `[start, end)` (page aligned) from the allocated ranges.
    fn forget_allocated(&self, start: u64, end: u64) {
        if let Ok(mut r) = self.fallocated.lock() {
            let mut kept = Vec::with_capacity(r.len() + 1);
            for &(a, b) in r.iter() {
                if a < start {
                    kept.push((a, b.min(start)));
                }
                if b > end {
                    kept.push((a.max(end), b));
                }
            }
            *r = kept;
        }
    }

    /// Zeroes `[off, off+len)` and gives whole pages in it back to the host.
    pub fn zero(&self, off: u64, len: u64) -> SysResult<()> {
        let end = off.saturating_add(len).min(MAX_FILE_SIZE);
        if off >= end {
            return Ok(());
        }
        fallocate(
            self.fd.as_raw_fd(),
            FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
            off as i64,
            (end - off) as i64,
        )?;
        self.forget_allocated(off.next_multiple_of(PAGE), end - end % PAGE);
        Ok(())
    }

    /// Pages the host memfd holds now (those written through mappings included),
    /// and records the count (the memory file's total follows it).
    pub fn pages(&self) -> SysResult<u64> {
        let st = host::fstat(self.fd())?;
        let now = (st.st_blocks as u64 * 512).div_ceil(PAGE);
        let before = self.counted.swap(now, Ordering::Relaxed);
        if now >= before {
            self.mf.pages.fetch_add(now - before, Ordering::Relaxed);
        } else {
            self.mf.pages.fetch_sub(before - now, Ordering::Relaxed);
        }
        Ok(now)
    }

    /// Pages the extent held when last counted by [`Extent::pages`].
    pub fn counted(&self) -> u64 {
        self.counted.load(Ordering::Relaxed)
    }

    /// Where the first of `want` missing pages lies past `off`: the offset at which
    /// writing `[off, ..)` would need its `want + 1`-th new page, or `None` if
    /// `[off, end)` has at most `want` holes (pages the host does not hold). Found
    /// with `SEEK_HOLE`/`SEEK_DATA`, one pair of calls per hole, less the pages
    /// `fallocate` allocated.
    pub fn nth_hole(&self, off: u64, end: u64, want: u64) -> SysResult<Option<u64>> {
        let allocated = self.fallocated.lock().map_err(|_| Errno::EIO)?.clone();
        let stop = end.next_multiple_of(PAGE);
        let mut pos = off - off % PAGE;
        let mut left = want;
        while pos < end {
            let hole = match lseek(self.fd.as_raw_fd(), pos as i64, Whence::SeekHole) {
                // The hole at the end of a file starts at its size, which may lie
                // inside a page the file holds.
                Ok(h) => (h as u64).next_multiple_of(PAGE),
                // Past the host size: all hole.
                Err(nix::errno::Errno::ENXIO) => pos,
                Err(e) => return Err(e.into()),
            };
            if hole >= end {
                return Ok(None);
            }
            let data = match lseek(self.fd.as_raw_fd(), hole as i64, Whence::SeekData) {
                Ok(d) => (d as u64).min(stop),
                Err(nix::errno::Errno::ENXIO) => stop,
                Err(e) => return Err(e.into()),
            };
            // The hole's pieces that fallocate did not fill, in order.
            let mut at = hole;
            let mut pieces = Vec::new();
            for &(a, b) in allocated.iter().filter(|&&(a, b)| b > hole && a < data) {
                if a > at {
                    pieces.push((at, a));
                }
                at = at.max(b);
            }
            if at < data {
                pieces.push((at, data));
            }
            for (a, b) in pieces {
                let pages = (b - a) / PAGE;
                if pages > left {
                    return Ok(Some((a + left * PAGE).max(off)));
                }
                left -= pages;
            }
            pos = data;
        }
        Ok(None)
    }
}

impl Drop for Extent {
    fn drop(&mut self) {
        // Closing the memfd (with the struct) frees its pages.
        let held = self.counted.load(Ordering::Relaxed);
        self.mf.pages.fetch_sub(held, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_are_separate_zeroed_and_counted() {
        let mf = MemoryFile::new();
        let a = mf.alloc().unwrap();
        let b = mf.alloc().unwrap();
        a.write(10, b"hello").unwrap();
        b.write(10, b"world").unwrap();
        let mut buf = [0u8; 5];
        a.read(10, &mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        // Past the end reads as zeros.
        let mut far = [1u8; 8];
        a.read(1 << 40, &mut far).unwrap();
        assert_eq!(far, [0; 8]);
        a.zero(11, 2).unwrap();
        a.read(10, &mut buf).unwrap();
        assert_eq!(&buf, b"h\0\0lo");
        assert_eq!(a.pages().unwrap(), 1);
        assert_eq!(b.pages().unwrap(), 1);
        assert_eq!(mf.pages(), 2);
        drop(a);
        assert_eq!(mf.pages(), 1, "a dropped extent gives its pages back");
        let c = mf.alloc().unwrap();
        c.set_size(15).unwrap();
        c.read(10, &mut buf).unwrap();
        assert_eq!(buf, [0; 5], "a new extent starts zeroed");
        assert_eq!(c.pages().unwrap(), 0, "a hole costs nothing");
    }

    #[test]
    fn holes_are_found_page_by_page() {
        let mf = MemoryFile::new();
        let e = mf.alloc().unwrap();
        e.set_size(10 * PAGE).unwrap();
        e.write(2 * PAGE, &[1; PAGE as usize]).unwrap();
        e.write(5 * PAGE + 1, &[1; 2]).unwrap();
        // Holes in [0, 10 pages): 0 1 3 4 6 7 8 9.
        assert_eq!(e.nth_hole(0, 10 * PAGE, 8).unwrap(), None);
        assert_eq!(e.nth_hole(0, 10 * PAGE, 0).unwrap(), Some(0));
        assert_eq!(e.nth_hole(0, 10 * PAGE, 2).unwrap(), Some(3 * PAGE));
        assert_eq!(e.nth_hole(0, 10 * PAGE, 4).unwrap(), Some(6 * PAGE));
        assert_eq!(e.nth_hole(2 * PAGE + 7, 3 * PAGE, 0).unwrap(), None);
        assert_eq!(e.nth_hole(2 * PAGE, 12 * PAGE, 7).unwrap(), Some(11 * PAGE));
        // Allocated pages are held though SEEK_DATA shows them as holes.
        e.allocate(3 * PAGE + 5, PAGE, true).unwrap();
        e.allocate(7 * PAGE, 2 * PAGE, true).unwrap();
        // Holes now: 0 1 6 9.
        assert_eq!(e.nth_hole(0, 10 * PAGE, 4).unwrap(), None);
        assert_eq!(e.nth_hole(0, 10 * PAGE, 2).unwrap(), Some(6 * PAGE));
        assert_eq!(e.nth_hole(0, 10 * PAGE, 3).unwrap(), Some(9 * PAGE));
        // A shrink forgets what it cut; a regrow is holes again.
        e.set_size(8 * PAGE).unwrap();
        e.set_size(10 * PAGE).unwrap();
        assert_eq!(e.nth_hole(0, 10 * PAGE, 3).unwrap(), Some(8 * PAGE));
        // Unaligned size: the last, partial page is held.
        let f = mf.alloc().unwrap();
        f.write(0, &[1; 5000]).unwrap();
        assert_eq!(f.nth_hole(0, 3 * PAGE, 0).unwrap(), Some(2 * PAGE));
    }
}
