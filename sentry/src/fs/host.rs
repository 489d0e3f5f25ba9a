//! The caller's stdio, passed through: the sentry reads and writes the host fds it
//! was given on behalf of the application's fds 0, 1 and 2.

use std::os::fd::{AsFd, OwnedFd};

use crate::errno::{Errno, SysResult};
use crate::mm::io::write_all;
use crate::platform::AddressSpace;
use crate::sys::host::{self, TtyQuery};
use crate::vfs::{FileImpl, Stat};

/// A host stream (terminal, pipe or file) the sentry was handed at boot.
pub struct HostStream {
    fd: OwnedFd,
}

impl HostStream {
    /// Wraps a host fd.
    pub fn new(fd: OwnedFd) -> Self {
        HostStream { fd }
    }
}

impl FileImpl for HostStream {
    fn read(&self, buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        host::read(self.fd.as_fd(), buf)
    }

    fn write(&self, buf: &[u8], _offset: u64) -> SysResult<usize> {
        host::write(self.fd.as_fd(), buf)
    }

    fn seekable(&self) -> bool {
        false
    }

    fn stat(&self) -> SysResult<Stat> {
        let h = host::fstat(self.fd.as_fd())?;
        Ok(Stat {
            // Host device and inode numbers are not the container's business.
            dev: 0x16,
            ino: 1,
            mode: h.st_mode,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: h.st_rdev,
            size: h.st_size,
            blksize: h.st_blksize,
            blocks: h.st_blocks,
            atime: (h.st_atime, h.st_atime_nsec),
            mtime: (h.st_mtime, h.st_mtime_nsec),
            ctime: (h.st_ctime, h.st_ctime_nsec),
        })
    }

    fn ioctl(&self, req: u64, arg: u64, mem: &dyn AddressSpace) -> SysResult<u64> {
        let q = match req {
            r if r == libc::TCGETS => TtyQuery::Termios,
            r if r == libc::TIOCGWINSZ => TtyQuery::WinSize,
            _ => return Err(Errno::ENOTTY),
        };
        let data = host::tty_query(self.fd.as_fd(), q)?;
        write_all(mem, arg, &data)?;
        Ok(0)
    }
}
