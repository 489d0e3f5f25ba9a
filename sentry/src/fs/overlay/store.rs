//! Where the root overlay's upper layer keeps regular file data: one host file
//! per upper file, either a file of an in-memory tmpfs of the overlay's bound
//! ([`InMemory`], `--overlay=memory`: the data is sandbox memory, charged to the
//! pod's cgroup like any other) or an unnamed file on the
//! rootfs's own filesystem (`--overlay=self`, as gVisor's `root:self`: the data is
//! on disk, and only its page cache, which the host can write back and reclaim, is
//! charged to the pod).
//!
//! `self` files are made by the container's gofer, in the rootfs directory, with
//! `O_TMPFILE` (see `gofer::server::UPPER_FILE_FLAGS`), and donated: the sentry
//! opens no path for them and needs no new host call. A file has no name at any
//! time, so nothing the container writes is visible in the rootfs from the host
//! (no `docker diff`: a write is only bytes of an unnamed inode, with the names and
//! metadata in the sentry), and the host frees each file's blocks when the sentry
//! closes it: at the latest when the sandbox ends, even if it is killed, so nothing
//! is left to remove at delete. Each upper file being a host file of its own, a
//! mapping of it reaches only its own bytes and gets SIGBUS past its end, exactly as
//! with a memfd.
//!
//! A gofer that cannot make such files (a filesystem without `O_TMPFILE`, like
//! overlayfs before Linux 6.6; no upper directory given) answers `EOPNOTSUPP`; the
//! store then keeps that overlay's new files in memory, under the same bound as
//! `memory`, and says so once (files already on disk stay there).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::errno::{Errno, SysResult};
use crate::fs::gofer::HostMappable;
use crate::fs::tmpfs::{self, TmpInode};
use crate::mm::Mappable;
use crate::sys::host;
use crate::sys::host_tmpfs;
use crate::vfs::{Inode, StatFs};

/// The upper layer's file data store of one overlay.
pub enum Store {
    /// In memory (a tmpfs of the bound's size).
    Memory(InMemory),
    /// Unnamed files the gofer makes on the rootfs's filesystem.
    Disk {
        /// The container's gofer.
        client: Arc<gofer::Client>,
        /// Set once the gofer said it cannot: in memory from then on.
        in_memory: AtomicBool,
        /// Where new files go from then on.
        memory: InMemory,
    },
}

/// The in-memory upper layer's file data: a tmpfs that nothing mounts, of the
/// overlay's bound, so every page the upper layer holds (written, allocated, or
/// taken by a fault through a mapping) counts against it as against a tmpfs's
/// `size=`: `ENOSPC` (or a short write) for `write` and `fallocate`, SIGBUS for a
/// fault past it, and `statfs` of the overlay shows the bound and its use. Its data
/// is in a host tmpfs instance of that size (see `sys::host_tmpfs`: made at boot,
/// or a spare once the sentry is confined), so the host kernel itself holds it.
pub struct InMemory {
    /// The bound in bytes.
    bound: u64,
    /// The tmpfs's root, made at the first need.
    fs: OnceLock<Arc<TmpInode>>,
}

impl InMemory {
    /// A bound of `bound` bytes; its tmpfs is made when first needed.
    pub fn new(bound: u64) -> InMemory {
        InMemory {
            bound,
            fs: OnceLock::new(),
        }
    }

    /// The tmpfs, made now if it was not: with a host tmpfs of the bound's size
    /// (before confinement), or a spare (after); without either (no privilege to
    /// mount, no spare left) in memfds whose mapped files count at their size.
    fn fs(&self) -> &Arc<TmpInode> {
        self.fs.get_or_init(|| {
            let host = match host_tmpfs::mount(self.bound) {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(
                        "overlay: no host tmpfs for the in-memory upper layer ({e}): its mapped files count at their size"
                    );
                    None
                }
            };
            tmpfs::for_data(self.bound, host)
        })
    }

    /// Makes the tmpfs now (at boot, while a host tmpfs of the exact size can be).
    pub fn make_now(&self) {
        self.fs();
    }

    fn new_file(&self) -> SysResult<Data> {
        Ok(Data::Memory(self.fs().unnamed_file()?))
    }

    /// Its size and use, once made.
    fn statfs(&self) -> Option<SysResult<StatFs>> {
        self.fs.get().map(|r| r.statfs())
    }
}

impl Store {
    /// The store `--overlay=MODE` asks for (`self` or anything else: memory), with
    /// an in-memory part of `bound` bytes.
    pub fn for_mode(mode: &str, client: Arc<gofer::Client>, bound: u64) -> Store {
        match mode {
            "self" => Store::Disk {
                client,
                in_memory: AtomicBool::new(false),
                memory: InMemory::new(bound),
            },
            _ => {
                let m = InMemory::new(bound);
                m.make_now();
                Store::Memory(m)
            }
        }
    }

    /// A new, empty file for one upper file's data.
    pub fn new_file(&self) -> SysResult<Data> {
        let (client, in_memory, memory) = match self {
            Store::Memory(m) => return m.new_file(),
            Store::Disk {
                client,
                in_memory,
                memory,
            } => (client, in_memory, memory),
        };
        if in_memory.load(Ordering::Relaxed) {
            return memory.new_file();
        }
        match client.upper_file() {
            Ok(fd) => {
                check_donated(&fd)?;
                Ok(Data::Disk(Arc::new(fd)))
            }
            Err(nix::errno::Errno::EOPNOTSUPP) => {
                if !in_memory.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "overlay=self: the gofer cannot make upper-layer files; this overlay's upper layer stays in memory"
                    );
                }
                memory.new_file()
            }
            // Out of descriptors or disk space, the filesystem is full as far as the
            // application can tell.
            Err(nix::errno::Errno::EMFILE | nix::errno::Errno::ENFILE) => Err(Errno::ENOSPC),
            Err(e) => Err(Errno::from(e)),
        }
    }

    /// The in-memory part's size and use, when new files go there (`memory`, or
    /// `self` fallen back): the figures `statfs` shows for the overlay.
    pub fn memory_statfs(&self) -> Option<SysResult<StatFs>> {
        match self {
            Store::Memory(m) => m.statfs(),
            Store::Disk {
                in_memory, memory, ..
            } if in_memory.load(Ordering::Relaxed) => memory.statfs(),
            Store::Disk { .. } => None,
        }
    }
}

/// One upper file's data: a donated disk file (`self`) or a file of the
/// in-memory part. Which one is the file's own, whatever the store does for new
/// files later.
#[derive(Clone)]
pub enum Data {
    /// An unnamed file on the rootfs's disk.
    Disk(Arc<OwnedFd>),
    /// A file of the in-memory part's tmpfs.
    Memory(Arc<TmpInode>),
}

impl Data {
    /// Size and 512-byte blocks held.
    pub fn size_blocks(&self) -> SysResult<(i64, i64)> {
        match self {
            Data::Disk(fd) => {
                let h = host::fstat(fd.as_fd())?;
                Ok((h.st_size, h.st_blocks))
            }
            Data::Memory(n) => {
                let st = n.stat()?;
                Ok((st.size, st.blocks))
            }
        }
    }

    /// Reads at `off` (short at end of file).
    pub fn read(&self, buf: &mut [u8], off: u64) -> SysResult<usize> {
        match self {
            Data::Disk(fd) => host::pread(fd.as_fd(), buf, off),
            Data::Memory(n) => n.read_at(buf, off),
        }
    }

    /// Writes at `off`: all, or short (then `ENOSPC`) when the filesystem is full.
    pub fn write(&self, buf: &[u8], off: u64) -> SysResult<usize> {
        match self {
            Data::Disk(fd) => host::pwrite(fd.as_fd(), buf, off),
            Data::Memory(n) => n.write_at(buf, off),
        }
    }

    /// Sets the size.
    pub fn truncate(&self, size: u64) -> SysResult<()> {
        match self {
            Data::Disk(fd) => {
                let len = i64::try_from(size).map_err(|_| Errno::EFBIG)?;
                nix::unistd::ftruncate(fd.as_fd(), len).map_err(Errno::from)
            }
            Data::Memory(n) => n.truncate(size),
        }
    }

    /// `fallocate` with `mode` (0, `FALLOC_FL_KEEP_SIZE`, or hole punching).
    pub fn allocate(&self, mode: i32, off: u64, len: u64) -> SysResult<()> {
        match self {
            // The disk's filesystem allocates and punches holes, or says it cannot.
            Data::Disk(fd) => host::fallocate(fd.as_fd(), mode, off, len),
            Data::Memory(n) => match mode {
                0 => n.allocate(off, len, false),
                libc::FALLOC_FL_KEEP_SIZE => n.allocate(off, len, true),
                m if m == libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE => {
                    n.punch_hole(off, len)
                }
                _ => Err(Errno::EOPNOTSUPP),
            },
        }
    }

    /// The data as a mapping source that shows as the overlay file `(dev, ino)`.
    pub fn mappable(&self, dev: u64, ino: u64) -> SysResult<Arc<dyn Mappable>> {
        match self {
            Data::Disk(fd) => Ok(Arc::new(HostMappable::new(fd.clone(), dev, ino))),
            Data::Memory(n) => n.mapping_as(dev, ino),
        }
    }
}

/// A donated upper file must be what was asked for: an empty regular file with no
/// name (so no other path reaches its bytes).
fn check_donated(fd: &OwnedFd) -> SysResult<()> {
    let st = host::fstat(fd.as_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_size != 0 || st.st_nlink != 0 {
        tracing::warn!("overlay=self: the gofer donated something else than a new unnamed file");
        return Err(Errno::EIO);
    }
    Ok(())
}
