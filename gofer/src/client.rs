//! The sentry's side of the gofer protocol.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;

use nix::errno::Errno;
use tracing::error;

use crate::host;
use crate::protocol::{decode_reply, Op, ReplyBody, Request, MAGIC, MAX_MSG, MAX_WALK, VERSION};
use crate::{Dirent, Fid, SetAttr, Stat, StatFs};

/// A connection to the gofer. Safe to share between threads; requests are serialised.
///
/// When the connection breaks (the gofer died, or sent something that is not a valid
/// reply) every later request fails with `EIO`.
pub struct Client {
    inner: Mutex<Inner>,
}

struct Inner {
    sock: OwnedFd,
    next_tag: u32,
    broken: bool,
    buf: Vec<u8>,
}

impl Inner {
    fn call(&mut self, req: &Request) -> Result<(ReplyBody, Option<OwnedFd>), Errno> {
        if self.broken {
            return Err(Errno::EIO);
        }
        let tag = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1);
        // Encoding errors (a name too long) are the caller's, not the connection's.
        let frame = req.encode(tag)?;
        let res = self.exchange(&frame, tag, req.op());
        if res.is_err() {
            self.broken = true;
            error!("gofer connection lost during {:?}", req.op());
        }
        let (body, fd) = res?;
        Ok((body?, fd))
    }

    /// One round trip. The outer error means the connection is unusable.
    #[allow(clippy::type_complexity)]
    fn exchange(
        &mut self,
        frame: &[u8],
        tag: u32,
        op: Op,
    ) -> Result<(Result<ReplyBody, Errno>, Option<OwnedFd>), Errno> {
        host::send_frame(self.sock.as_fd(), frame, None).map_err(|_| Errno::EIO)?;
        let got = host::recv_frame(self.sock.as_fd(), &mut self.buf).map_err(|_| Errno::EIO)?;
        if got.len == 0 || got.truncated || got.len > MAX_MSG || got.fds.len() > 1 {
            return Err(Errno::EIO);
        }
        let (rtag, result) = decode_reply(&self.buf[..got.len], op).map_err(|_| Errno::EIO)?;
        if rtag != tag {
            return Err(Errno::EIO);
        }
        Ok((result, got.fds.into_iter().next()))
    }
}

fn node(body: ReplyBody) -> Result<(Fid, Stat), Errno> {
    match body {
        ReplyBody::Node(fid, st) => Ok((fid, st)),
        _ => Err(Errno::EIO),
    }
}

fn unit(body: ReplyBody) -> Result<(), Errno> {
    match body {
        ReplyBody::Unit => Ok(()),
        _ => Err(Errno::EIO),
    }
}

impl Client {
    /// Connects over an already-connected socket and checks the protocol version.
    /// A gofer speaking another version is refused with `EPROTONOSUPPORT` (and logged).
    pub fn new(sock: OwnedFd) -> Result<Client, Errno> {
        let client = Client {
            inner: Mutex::new(Inner {
                sock,
                next_tag: 1,
                broken: false,
                buf: vec![0u8; MAX_MSG + 1],
            }),
        };
        client.handshake(VERSION)?;
        Ok(client)
    }

    /// Sends the version handshake with `version` (separate so tests can lie).
    pub(crate) fn handshake(&self, version: u32) -> Result<(), Errno> {
        match self.call(&Request::Version {
            magic: MAGIC,
            version,
        }) {
            Ok((ReplyBody::Version(v), _)) if v == version => Ok(()),
            Ok((ReplyBody::Version(v), _)) => {
                error!("gofer speaks protocol version {v}, we speak {version}");
                Err(Errno::EPROTONOSUPPORT)
            }
            Ok(_) => Err(Errno::EIO),
            Err(e) => {
                error!("gofer refused protocol version {version}: {e}");
                Err(e)
            }
        }
    }

    /// Builds a client on `sock` without the handshake (tests of the server's checks).
    #[cfg(test)]
    pub(crate) fn without_handshake(sock: OwnedFd) -> Client {
        Client {
            inner: Mutex::new(Inner {
                sock,
                next_tag: 1,
                broken: false,
                buf: vec![0u8; MAX_MSG + 1],
            }),
        }
    }

    fn call(&self, req: &Request) -> Result<(ReplyBody, Option<OwnedFd>), Errno> {
        // A panic elsewhere while holding the lock leaves no half-done exchange behind
        // that `broken` does not already record, so a poisoned lock is still usable.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.call(req)
    }

    fn call_body(&self, req: &Request) -> Result<ReplyBody, Errno> {
        Ok(self.call(req)?.0)
    }

    fn call_fd(&self, req: &Request) -> Result<(ReplyBody, OwnedFd), Errno> {
        match self.call(req)? {
            (body, Some(fd)) => Ok((body, fd)),
            (_, None) => Err(Errno::EIO),
        }
    }

    /// The root of the served tree.
    pub fn attach(&self) -> Result<(Fid, Stat), Errno> {
        node(self.call_body(&Request::Attach)?)
    }

    /// The root of the spec's bind mount number `index` (0-based, in the order the
    /// gofer was given them); `ENOENT` if there is no such mount.
    pub fn attach_mount(&self, index: u32) -> Result<(Fid, Stat), Errno> {
        node(self.call_body(&Request::AttachMount { index })?)
    }

    /// Walks `names` one component at a time from directory `dir`. Returns a fid and
    /// stat for each component reached; it stops early (fewer results than names) at
    /// a symlink or a non-directory, returning that component, and returns the errno
    /// of the first component that could not be reached when that is the first name.
    pub fn walk(&self, dir: Fid, names: &[&[u8]]) -> Result<Vec<(Fid, Stat)>, Errno> {
        let mut out: Vec<(Fid, Stat)> = Vec::new();
        let mut from = dir;
        for chunk in names.chunks(MAX_WALK) {
            let req = Request::Walk {
                dir: from,
                names: chunk.iter().map(|n| n.to_vec()).collect(),
            };
            let got = match self.call_body(&req) {
                Ok(ReplyBody::Nodes(v)) => v,
                Ok(_) => return Err(Errno::EIO),
                Err(e) if out.is_empty() => return Err(e),
                Err(_) => break,
            };
            if got.len() > chunk.len() {
                return Err(Errno::EIO);
            }
            let complete = got.len() == chunk.len();
            out.extend_from_slice(&got);
            match out.last() {
                Some(&(fid, st)) if complete && st.mode & libc::S_IFMT == libc::S_IFDIR => {
                    from = fid
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// Walks the one name `name` from directory `dir`: its fid and stat and, for a
    /// regular file the host let the gofer open, a read-only fd of it (what
    /// [`Client::open`] with `O_RDONLY` would give).
    pub fn walk_open(&self, dir: Fid, name: &[u8]) -> Result<(Fid, Stat, Option<OwnedFd>), Errno> {
        let (body, fd) = self.call(&Request::WalkOpen {
            dir,
            name: name.to_vec(),
        })?;
        let (fid, st) = node(body)?;
        if fd.is_some() && st.mode & libc::S_IFMT != libc::S_IFREG {
            // Only regular files come with one: anything else is a broken gofer.
            let _ = self.clunk(fid);
            return Err(Errno::EIO);
        }
        Ok((fid, st, fd))
    }

    /// Attributes of `fid`.
    pub fn stat(&self, fid: Fid) -> Result<Stat, Errno> {
        match self.call_body(&Request::Stat { fid })? {
            ReplyBody::Stat(st) => Ok(st),
            _ => Err(Errno::EIO),
        }
    }

    /// Opens `fid` with `open(2)` access flags and returns the donated host fd.
    /// Symlinks give `ELOOP`, device nodes `EPERM`; FIFOs are opened `O_NONBLOCK`.
    pub fn open(&self, fid: Fid, flags: i32) -> Result<OwnedFd, Errno> {
        let (body, fd) = self.call_fd(&Request::Open {
            fid,
            flags: flags as u32,
        })?;
        unit(body)?;
        Ok(fd)
    }

    /// A new, empty, unnamed regular file for the sentry's overlay upper layer
    /// (`--overlay=self`); `EOPNOTSUPP` from a gofer that has no upper directory.
    pub fn upper_file(&self) -> Result<OwnedFd, Errno> {
        let (body, fd) = self.call_fd(&Request::UpperFile)?;
        unit(body)?;
        Ok(fd)
    }

    /// The target of symlink `fid`.
    pub fn readlink(&self, fid: Fid) -> Result<Vec<u8>, Errno> {
        match self.call_body(&Request::Readlink { fid })? {
            ReplyBody::Bytes(b) => Ok(b),
            _ => Err(Errno::EIO),
        }
    }

    /// Up to `max_bytes` worth of entries of directory `fid`, from `cookie` (0 = start).
    /// "." and ".." are not included. An empty result means the end of the directory.
    pub fn getdents(&self, fid: Fid, cookie: u64, max_bytes: u32) -> Result<Vec<Dirent>, Errno> {
        match self.call_body(&Request::Getdents {
            fid,
            cookie,
            max_bytes,
        })? {
            ReplyBody::Dirents(d) => Ok(d),
            _ => Err(Errno::EIO),
        }
    }

    /// Filesystem statistics for the filesystem holding `fid`.
    pub fn statfs(&self, fid: Fid) -> Result<StatFs, Errno> {
        match self.call_body(&Request::Statfs { fid })? {
            ReplyBody::StatFs(s) => Ok(s),
            _ => Err(Errno::EIO),
        }
    }

    /// Releases `fid`.
    pub fn clunk(&self, fid: Fid) -> Result<(), Errno> {
        unit(self.call_body(&Request::Clunk { fid })?)
    }

    /// Creates regular file `name` in `dir` (exclusively: an existing name is `EEXIST`)
    /// with permission bits `mode` and owner `uid`/`gid` ([`crate::KEEP_ID`] keeps the
    /// gofer's), opens it with `flags` and returns its fid, stat and the donated fd.
    pub fn create(
        &self,
        dir: Fid,
        name: &[u8],
        flags: i32,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(Fid, Stat, OwnedFd), Errno> {
        let (body, fd) = self.call_fd(&Request::Create {
            dir,
            name: name.to_vec(),
            flags: flags as u32,
            mode,
            uid,
            gid,
        })?;
        let (fid, st) = node(body)?;
        Ok((fid, st, fd))
    }

    /// Makes directory `name` in `dir`.
    pub fn mkdir(
        &self,
        dir: Fid,
        name: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(Fid, Stat), Errno> {
        node(self.call_body(&Request::Mkdir {
            dir,
            name: name.to_vec(),
            mode,
            uid,
            gid,
        })?)
    }

    /// Makes a FIFO or unix socket node (`mode` holds `S_IFIFO` or `S_IFSOCK`); any
    /// other type is `EPERM`.
    pub fn mknod(
        &self,
        dir: Fid,
        name: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(Fid, Stat), Errno> {
        node(self.call_body(&Request::Mknod {
            dir,
            name: name.to_vec(),
            mode,
            uid,
            gid,
        })?)
    }

    /// Removes `name` from `dir`; `flags` is 0 or `AT_REMOVEDIR`.
    pub fn unlink(&self, dir: Fid, name: &[u8], flags: i32) -> Result<(), Errno> {
        unit(self.call_body(&Request::Unlink {
            dir,
            name: name.to_vec(),
            flags: flags as u32,
        })?)
    }

    /// Renames `old_dir/old_name` to `new_dir/new_name` with `renameat2` flags
    /// (`RENAME_NOREPLACE`, `RENAME_EXCHANGE`).
    pub fn rename(
        &self,
        old_dir: Fid,
        old_name: &[u8],
        new_dir: Fid,
        new_name: &[u8],
        flags: u32,
    ) -> Result<(), Errno> {
        unit(self.call_body(&Request::Rename {
            old_dir,
            old_name: old_name.to_vec(),
            new_dir,
            new_name: new_name.to_vec(),
            flags,
        })?)
    }

    /// Gives the file `target` the new name `name` in `dir`; returns a fid for it.
    pub fn link(&self, target: Fid, dir: Fid, name: &[u8]) -> Result<(Fid, Stat), Errno> {
        node(self.call_body(&Request::Link {
            target,
            dir,
            name: name.to_vec(),
        })?)
    }

    /// Makes symlink `name` in `dir` with contents `target`.
    pub fn symlink(
        &self,
        dir: Fid,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> Result<(Fid, Stat), Errno> {
        node(self.call_body(&Request::Symlink {
            dir,
            name: name.to_vec(),
            target: target.to_vec(),
            uid,
            gid,
        })?)
    }

    /// Changes attributes of `fid`.
    pub fn setattr(&self, fid: Fid, attr: &SetAttr) -> Result<(), Errno> {
        unit(self.call_body(&Request::Setattr { fid, attr: *attr })?)
    }

    /// Flushes `fid` (a regular file or directory) to storage.
    pub fn fsync(&self, fid: Fid, datasync: bool) -> Result<(), Errno> {
        unit(self.call_body(&Request::Fsync { fid, datasync })?)
    }

    /// The value of extended attribute `name` of `fid`.
    pub fn getxattr(&self, fid: Fid, name: &[u8]) -> Result<Vec<u8>, Errno> {
        let name = name.to_vec();
        match self.call_body(&Request::GetXattr { fid, name })? {
            ReplyBody::Bytes(b) => Ok(b),
            _ => Err(Errno::EIO),
        }
    }

    /// Sets extended attribute `name` of `fid` (`flags`: `XATTR_CREATE`,
    /// `XATTR_REPLACE`); `E2BIG` for a value over [`crate::protocol::MAX_XATTR`].
    pub fn setxattr(&self, fid: Fid, name: &[u8], value: &[u8], flags: u32) -> Result<(), Errno> {
        unit(self.call_body(&Request::SetXattr {
            fid,
            name: name.to_vec(),
            value: value.to_vec(),
            flags,
        })?)
    }

    /// The names of the extended attributes of `fid`.
    pub fn listxattr(&self, fid: Fid) -> Result<Vec<Vec<u8>>, Errno> {
        match self.call_body(&Request::ListXattr { fid })? {
            ReplyBody::Bytes(b) => Ok(b
                .split(|&c| c == 0)
                .filter(|n| !n.is_empty())
                .map(<[u8]>::to_vec)
                .collect()),
            _ => Err(Errno::EIO),
        }
    }

    /// Removes extended attribute `name` of `fid`.
    pub fn removexattr(&self, fid: Fid, name: &[u8]) -> Result<(), Errno> {
        let name = name.to_vec();
        unit(self.call_body(&Request::RemoveXattr { fid, name })?)
    }
}
