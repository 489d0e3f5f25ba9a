//! The sentry's side of the gofer protocol.

use std::os::fd::OwnedFd;

use nix::errno::Errno;

use crate::{Dirent, Fid, Stat, StatFs};

/// A connection to the gofer. Safe to share between threads; requests are serialised.
pub struct Client {
    _sock: OwnedFd,
}

impl Client {
    /// Connects over an already-connected socket and checks the protocol version.
    pub fn new(sock: OwnedFd) -> Result<Client, Errno> {
        Ok(Client { _sock: sock })
    }

    /// The root of the served tree.
    pub fn attach(&self) -> Result<(Fid, Stat), Errno> {
        Err(Errno::ENOSYS)
    }

    /// Walks `names` one component at a time from directory `dir`. Returns a fid and
    /// stat for each component reached; it stops early (fewer results than names) at
    /// a symlink or a non-directory, returning that component, and returns the errno
    /// of the first component that could not be reached when that is the first name.
    pub fn walk(&self, _dir: Fid, _names: &[&[u8]]) -> Result<Vec<(Fid, Stat)>, Errno> {
        Err(Errno::ENOSYS)
    }

    /// Attributes of `fid`.
    pub fn stat(&self, _fid: Fid) -> Result<Stat, Errno> {
        Err(Errno::ENOSYS)
    }

    /// Opens `fid` with `open(2)` access flags and returns the donated host fd.
    pub fn open(&self, _fid: Fid, _flags: i32) -> Result<OwnedFd, Errno> {
        Err(Errno::ENOSYS)
    }

    /// The target of symlink `fid`.
    pub fn readlink(&self, _fid: Fid) -> Result<Vec<u8>, Errno> {
        Err(Errno::ENOSYS)
    }

    /// Up to `max_bytes` worth of entries of directory `fid`, from `cookie` (0 = start).
    pub fn getdents(&self, _fid: Fid, _cookie: u64, _max_bytes: u32) -> Result<Vec<Dirent>, Errno> {
        Err(Errno::ENOSYS)
    }

    /// Filesystem statistics for the filesystem holding `fid`.
    pub fn statfs(&self, _fid: Fid) -> Result<StatFs, Errno> {
        Err(Errno::ENOSYS)
    }

    /// Releases `fid`.
    pub fn clunk(&self, _fid: Fid) -> Result<(), Errno> {
        Err(Errno::ENOSYS)
    }
}
