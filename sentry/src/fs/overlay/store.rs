//! Where the root overlay's upper layer keeps regular file data: one host file
//! per upper file, either a memfd (`--overlay=memory`: the data is sandbox
//! memory, charged to the pod's cgroup like any other) or an unnamed file on the
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
//! store then keeps that overlay's upper layer in memory, and says so once.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::sys::host;

/// The upper layer's file data store of one overlay.
pub enum Store {
    /// Host memfds (sandbox memory).
    Memory,
    /// Unnamed files the gofer makes on the rootfs's filesystem.
    Disk {
        /// The container's gofer.
        client: Arc<gofer::Client>,
        /// Set once the gofer said it cannot: memfds from then on.
        in_memory: AtomicBool,
    },
}

impl Store {
    /// The store `--overlay=MODE` asks for (`self` or anything else: memory).
    pub fn for_mode(mode: &str, client: Arc<gofer::Client>) -> Store {
        match mode {
            "self" => Store::Disk {
                client,
                in_memory: AtomicBool::new(false),
            },
            _ => Store::Memory,
        }
    }

    /// Whether new files go to disk (`self`, as long as the gofer can make them).
    pub fn on_disk(&self) -> bool {
        match self {
            Store::Memory => false,
            Store::Disk { in_memory, .. } => !in_memory.load(Ordering::Relaxed),
        }
    }

    /// A new, empty host file for one upper file's data.
    pub fn new_file(&self) -> SysResult<OwnedFd> {
        let Store::Disk { client, in_memory } = self else {
            return new_memfd();
        };
        if in_memory.load(Ordering::Relaxed) {
            return new_memfd();
        }
        match client.upper_file() {
            Ok(fd) => {
                check_donated(&fd)?;
                Ok(fd)
            }
            Err(nix::errno::Errno::EOPNOTSUPP) => {
                if !in_memory.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "overlay=self: the gofer cannot make upper-layer files; this overlay's upper layer stays in memory"
                    );
                }
                new_memfd()
            }
            // Out of descriptors or disk space, the filesystem is full as far as the
            // application can tell.
            Err(nix::errno::Errno::EMFILE | nix::errno::Errno::ENFILE) => Err(Errno::ENOSPC),
            Err(e) => Err(Errno::from(e)),
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

fn new_memfd() -> SysResult<OwnedFd> {
    nix::sys::memfd::memfd_create(
        c"rvisor-overlay",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .map_err(|e| match e {
        nix::errno::Errno::EMFILE | nix::errno::Errno::ENFILE => Errno::ENOSPC,
        e => Errno::from(e),
    })
}
