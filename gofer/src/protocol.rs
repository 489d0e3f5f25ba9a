//! The gofer wire protocol.
//!
//! One request or reply per `SOCK_SEQPACKET` datagram, little-endian throughout.
//!
//! ```text
//! request: len u32 | tag u32 | op u8 | body
//! reply:   len u32 | tag u32 | op u8 | status u32 | body (only when status == 0)
//! ```
//! `len` is the whole frame's length and must equal the datagram's; frames are at most
//! [`MAX_MSG`] bytes. `status` is 0 or an errno. The reply echoes the request's tag and
//! op. Byte strings are a u16 length and the bytes. The first exchange is
//! [`Request::Version`]; the server answers with its own version, or with
//! `EPROTONOSUPPORT` and hangs up when it does not speak the client's.
//! Descriptors (open, create) travel beside the reply as `SCM_RIGHTS`.
//!
//! Decoding is total: any byte string yields a value or an `Errno`, never a panic.

use nix::errno::Errno;

use crate::{Dirent, Fid, SetAttr, SetTime, Stat, StatFs};

/// The protocol version this build speaks.
pub const VERSION: u32 = 4;
/// Sent with the version so that a stray peer is recognised at once ("RVGF").
pub const MAGIC: u32 = 0x4656_5652;
/// Largest frame in either direction.
pub const MAX_MSG: usize = 64 * 1024;
/// Most names in one walk request (keeps the reply well under [`MAX_MSG`]).
pub const MAX_WALK: usize = 64;
/// Size of a request header.
pub const REQUEST_HEADER: usize = 9;
/// Size of a reply header.
pub const REPLY_HEADER: usize = 13;
/// Encoded size of a [`Stat`].
pub const STAT_SIZE: usize = 116;
/// Largest extended attribute value or name list carried in one frame (a reply must
/// fit in [`MAX_MSG`] with its header); Linux allows 64 KiB, so a larger one on the
/// host is refused with `E2BIG`.
pub const MAX_XATTR: usize = MAX_MSG - 1024;
/// Encoded size of a directory entry without its name.
pub const DIRENT_FIXED: usize = 19;

/// Operation codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// Version handshake.
    Version = 1,
    /// Root of the served tree.
    Attach = 2,
    /// Walk names from a directory.
    Walk = 3,
    /// Attributes.
    Stat = 4,
    /// Open, donating a host fd.
    Open = 5,
    /// Symlink target.
    Readlink = 6,
    /// Directory entries.
    Getdents = 7,
    /// Filesystem statistics.
    Statfs = 8,
    /// Release a fid.
    Clunk = 9,
    /// Create and open a regular file, donating a host fd.
    Create = 10,
    /// Make a directory.
    Mkdir = 11,
    /// Make a FIFO or socket node.
    Mknod = 12,
    /// Remove a name (or an empty directory with `AT_REMOVEDIR`).
    Unlink = 13,
    /// Rename with `renameat2` flags.
    Rename = 14,
    /// Hard link.
    Link = 15,
    /// Symbolic link.
    Symlink = 16,
    /// Change attributes.
    Setattr = 17,
    /// Flush to storage.
    Fsync = 18,
    /// Root of one of the spec's bind mounts (protocol version 2).
    AttachMount = 19,
    /// Value of an extended attribute (protocol version 3).
    GetXattr = 20,
    /// Set an extended attribute (protocol version 3).
    SetXattr = 21,
    /// Names of the extended attributes (protocol version 3).
    ListXattr = 22,
    /// Remove an extended attribute (protocol version 3).
    RemoveXattr = 23,
    /// A new unnamed file for the sentry's root overlay upper layer
    /// (`--overlay=self`), donating its fd.
    UpperFile = 24,
    /// Walk one name and, for a regular file, donate a read-only fd of it
    /// (protocol version 4).
    WalkOpen = 25,
}

impl Op {
    /// The op for a wire byte.
    pub fn from_u8(b: u8) -> Option<Op> {
        use Op::*;
        Some(match b {
            1 => Version,
            2 => Attach,
            3 => Walk,
            4 => Stat,
            5 => Open,
            6 => Readlink,
            7 => Getdents,
            8 => Statfs,
            9 => Clunk,
            10 => Create,
            11 => Mkdir,
            12 => Mknod,
            13 => Unlink,
            14 => Rename,
            15 => Link,
            16 => Symlink,
            17 => Setattr,
            18 => Fsync,
            19 => AttachMount,
            20 => GetXattr,
            21 => SetXattr,
            22 => ListXattr,
            23 => RemoveXattr,
            24 => UpperFile,
            25 => WalkOpen,
            _ => return None,
        })
    }

    /// Whether the op changes the tree (refused with `EROFS` by a read-only server).
    pub fn mutates(self) -> bool {
        use Op::*;
        matches!(
            self,
            Create
                | Mkdir
                | Mknod
                | Unlink
                | Rename
                | Link
                | Symlink
                | Setattr
                | SetXattr
                | RemoveXattr
        )
    }
}

/// A request from the sentry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Handshake: the client's magic and version.
    Version {
        /// Must be [`MAGIC`].
        magic: u32,
        /// The client's protocol version.
        version: u32,
    },
    /// A new fid for the root.
    Attach,
    /// A new, empty, unnamed regular file on the rootfs's filesystem, for the sentry's
    /// overlay upper layer; its fd travels with the reply (`EOPNOTSUPP` from a gofer
    /// given no upper directory).
    UpperFile,
    /// A new fid for the root of bind mount `index` (in the gofer's `--mount` order).
    AttachMount {
        /// 0-based mount number.
        index: u32,
    },
    /// Walk `names` from directory `dir`.
    Walk {
        /// Starting directory.
        dir: Fid,
        /// Components, at most [`MAX_WALK`].
        names: Vec<Vec<u8>>,
    },
    /// Walk the one name `name` from directory `dir`, as [`Request::Walk`]; when it
    /// names a regular file, the reply also carries a read-only fd of it (none if
    /// the host would not open it: the error then comes at [`Request::Open`]).
    WalkOpen {
        /// Starting directory.
        dir: Fid,
        /// The component.
        name: Vec<u8>,
    },
    /// Attributes of `fid`.
    Stat {
        /// The file.
        fid: Fid,
    },
    /// Open `fid` with `open(2)` flags.
    Open {
        /// The file.
        fid: Fid,
        /// `O_*` flags.
        flags: u32,
    },
    /// Target of symlink `fid`.
    Readlink {
        /// The symlink.
        fid: Fid,
    },
    /// Entries of directory `fid` from `cookie`.
    Getdents {
        /// The directory.
        fid: Fid,
        /// Where to continue (0 = start).
        cookie: u64,
        /// Reply budget in bytes.
        max_bytes: u32,
    },
    /// Filesystem statistics.
    Statfs {
        /// Any file on the filesystem.
        fid: Fid,
    },
    /// Release `fid`.
    Clunk {
        /// The fid.
        fid: Fid,
    },
    /// Create regular file `name` in `dir` (always exclusive) and open it.
    Create {
        /// Parent directory.
        dir: Fid,
        /// New name.
        name: Vec<u8>,
        /// `O_*` flags for the donated fd.
        flags: u32,
        /// Permission bits.
        mode: u32,
        /// Owner ([`crate::KEEP_ID`] = the gofer's).
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// Make directory `name` in `dir`.
    Mkdir {
        /// Parent directory.
        dir: Fid,
        /// New name.
        name: Vec<u8>,
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// Make a FIFO or socket node `name` in `dir`.
    Mknod {
        /// Parent directory.
        dir: Fid,
        /// New name.
        name: Vec<u8>,
        /// `S_IFIFO` or `S_IFSOCK` | permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// Remove `name` from `dir`.
    Unlink {
        /// Parent directory.
        dir: Fid,
        /// Name.
        name: Vec<u8>,
        /// 0 or `AT_REMOVEDIR`.
        flags: u32,
    },
    /// Rename.
    Rename {
        /// Source directory.
        old_dir: Fid,
        /// Source name.
        old_name: Vec<u8>,
        /// Target directory.
        new_dir: Fid,
        /// Target name.
        new_name: Vec<u8>,
        /// `RENAME_NOREPLACE` / `RENAME_EXCHANGE`.
        flags: u32,
    },
    /// Give `target` the extra name `name` in `dir`.
    Link {
        /// Existing file.
        target: Fid,
        /// Directory of the new name.
        dir: Fid,
        /// New name.
        name: Vec<u8>,
    },
    /// Make symlink `name` in `dir` pointing to `target`.
    Symlink {
        /// Parent directory.
        dir: Fid,
        /// New name.
        name: Vec<u8>,
        /// Link contents.
        target: Vec<u8>,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// Change attributes of `fid`.
    Setattr {
        /// The file.
        fid: Fid,
        /// Changes.
        attr: SetAttr,
    },
    /// Flush `fid`.
    Fsync {
        /// The file.
        fid: Fid,
        /// Data only (`fdatasync`).
        datasync: bool,
    },
    /// Value of extended attribute `name` of `fid`.
    GetXattr {
        /// The file.
        fid: Fid,
        /// Full name, namespace included.
        name: Vec<u8>,
    },
    /// Set extended attribute `name` of `fid`.
    SetXattr {
        /// The file.
        fid: Fid,
        /// Full name.
        name: Vec<u8>,
        /// Value, at most [`MAX_XATTR`] bytes.
        value: Vec<u8>,
        /// `XATTR_CREATE` / `XATTR_REPLACE`.
        flags: u32,
    },
    /// Names of the extended attributes of `fid`, each NUL-terminated.
    ListXattr {
        /// The file.
        fid: Fid,
    },
    /// Remove extended attribute `name` of `fid`.
    RemoveXattr {
        /// The file.
        fid: Fid,
        /// Full name.
        name: Vec<u8>,
    },
}

/// The body of a successful reply; its shape is fixed by the op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyBody {
    /// No data (open, clunk, unlink, rename, setattr, fsync).
    Unit,
    /// The server's version.
    Version(u32),
    /// One new fid (attach, create, mkdir, mknod, link, symlink).
    Node(Fid, Stat),
    /// Fids reached by a walk.
    Nodes(Vec<(Fid, Stat)>),
    /// Attributes.
    Stat(Stat),
    /// Symlink target.
    Bytes(Vec<u8>),
    /// Directory entries.
    Dirents(Vec<Dirent>),
    /// Filesystem statistics.
    StatFs(StatFs),
}

/// What a frame's header says, when it could be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The request's tag.
    pub tag: u32,
    /// The raw op byte.
    pub op: u8,
}

/// A request that could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The header, if it was sound (then the sender can be answered).
    pub header: Option<Header>,
    /// Why.
    pub errno: Errno,
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) -> Result<(), Errno> {
        let n = u16::try_from(b.len()).map_err(|_| Errno::ENAMETOOLONG)?;
        self.u16(n);
        self.0.extend_from_slice(b);
        Ok(())
    }
    fn stat(&mut self, s: &Stat) {
        self.u64(s.dev);
        self.u64(s.ino);
        self.u32(s.mode);
        self.u64(s.nlink);
        self.u32(s.uid);
        self.u32(s.gid);
        self.u64(s.rdev);
        self.i64(s.size);
        self.i64(s.blksize);
        self.i64(s.blocks);
        for t in [s.atime, s.mtime, s.ctime] {
            self.i64(t.0);
            self.i64(t.1);
        }
    }
    fn time(&mut self, t: SetTime) {
        let (s, ns) = t.to_timespec();
        self.i64(s);
        self.i64(ns);
    }
    /// Fills in the length field and checks the size bound.
    fn finish(mut self) -> Result<Vec<u8>, Errno> {
        if self.0.len() > MAX_MSG {
            return Err(Errno::EMSGSIZE);
        }
        let len = (self.0.len() as u32).to_le_bytes();
        self.0[..4].copy_from_slice(&len);
        Ok(self.0)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Errno> {
        if self.buf.len() < n {
            return Err(Errno::EBADMSG);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], Errno> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, Errno> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Errno> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32, Errno> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, Errno> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn i64(&mut self) -> Result<i64, Errno> {
        Ok(i64::from_le_bytes(self.arr()?))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, Errno> {
        let n = self.u16()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn stat(&mut self) -> Result<Stat, Errno> {
        Ok(Stat {
            dev: self.u64()?,
            ino: self.u64()?,
            mode: self.u32()?,
            nlink: self.u64()?,
            uid: self.u32()?,
            gid: self.u32()?,
            rdev: self.u64()?,
            size: self.i64()?,
            blksize: self.i64()?,
            blocks: self.i64()?,
            atime: (self.i64()?, self.i64()?),
            mtime: (self.i64()?, self.i64()?),
            ctime: (self.i64()?, self.i64()?),
        })
    }
    fn time(&mut self) -> Result<SetTime, Errno> {
        let s = self.i64()?;
        let ns = self.i64()?;
        Ok(match ns {
            libc::UTIME_OMIT => SetTime::Omit,
            libc::UTIME_NOW => SetTime::Now,
            _ => SetTime::At(s, ns),
        })
    }
    fn end(&self) -> Result<(), Errno> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Errno::EBADMSG)
        }
    }
}

const SA_MODE: u8 = 1;
const SA_UID: u8 = 2;
const SA_GID: u8 = 4;
const SA_SIZE: u8 = 8;

impl Request {
    /// The request's op.
    pub fn op(&self) -> Op {
        match self {
            Request::Version { .. } => Op::Version,
            Request::Attach => Op::Attach,
            Request::UpperFile => Op::UpperFile,
            Request::AttachMount { .. } => Op::AttachMount,
            Request::Walk { .. } => Op::Walk,
            Request::WalkOpen { .. } => Op::WalkOpen,
            Request::Stat { .. } => Op::Stat,
            Request::Open { .. } => Op::Open,
            Request::Readlink { .. } => Op::Readlink,
            Request::Getdents { .. } => Op::Getdents,
            Request::Statfs { .. } => Op::Statfs,
            Request::Clunk { .. } => Op::Clunk,
            Request::Create { .. } => Op::Create,
            Request::Mkdir { .. } => Op::Mkdir,
            Request::Mknod { .. } => Op::Mknod,
            Request::Unlink { .. } => Op::Unlink,
            Request::Rename { .. } => Op::Rename,
            Request::Link { .. } => Op::Link,
            Request::Symlink { .. } => Op::Symlink,
            Request::Setattr { .. } => Op::Setattr,
            Request::Fsync { .. } => Op::Fsync,
            Request::GetXattr { .. } => Op::GetXattr,
            Request::SetXattr { .. } => Op::SetXattr,
            Request::ListXattr { .. } => Op::ListXattr,
            Request::RemoveXattr { .. } => Op::RemoveXattr,
        }
    }

    /// The frame for this request. Fails with `EMSGSIZE`/`ENAMETOOLONG`/`EINVAL` when it
    /// cannot be represented.
    pub fn encode(&self, tag: u32) -> Result<Vec<u8>, Errno> {
        let mut w = Writer(Vec::with_capacity(64));
        w.u32(0);
        w.u32(tag);
        w.u8(self.op() as u8);
        match self {
            Request::Version { magic, version } => {
                w.u32(*magic);
                w.u32(*version);
            }
            Request::Attach | Request::UpperFile => {}
            Request::AttachMount { index } => w.u32(*index),
            Request::Walk { dir, names } => {
                if names.len() > MAX_WALK {
                    return Err(Errno::EINVAL);
                }
                w.u64(*dir);
                w.u16(names.len() as u16);
                for n in names {
                    w.bytes(n)?;
                }
            }
            Request::WalkOpen { dir, name } => {
                w.u64(*dir);
                w.bytes(name)?;
            }
            Request::Stat { fid }
            | Request::Readlink { fid }
            | Request::Statfs { fid }
            | Request::Clunk { fid } => w.u64(*fid),
            Request::Open { fid, flags } => {
                w.u64(*fid);
                w.u32(*flags);
            }
            Request::Getdents {
                fid,
                cookie,
                max_bytes,
            } => {
                w.u64(*fid);
                w.u64(*cookie);
                w.u32(*max_bytes);
            }
            Request::Create {
                dir,
                name,
                flags,
                mode,
                uid,
                gid,
            } => {
                w.u64(*dir);
                w.bytes(name)?;
                w.u32(*flags);
                w.u32(*mode);
                w.u32(*uid);
                w.u32(*gid);
            }
            Request::Mkdir {
                dir,
                name,
                mode,
                uid,
                gid,
            }
            | Request::Mknod {
                dir,
                name,
                mode,
                uid,
                gid,
            } => {
                w.u64(*dir);
                w.bytes(name)?;
                w.u32(*mode);
                w.u32(*uid);
                w.u32(*gid);
            }
            Request::Unlink { dir, name, flags } => {
                w.u64(*dir);
                w.bytes(name)?;
                w.u32(*flags);
            }
            Request::Rename {
                old_dir,
                old_name,
                new_dir,
                new_name,
                flags,
            } => {
                w.u64(*old_dir);
                w.bytes(old_name)?;
                w.u64(*new_dir);
                w.bytes(new_name)?;
                w.u32(*flags);
            }
            Request::Link { target, dir, name } => {
                w.u64(*target);
                w.u64(*dir);
                w.bytes(name)?;
            }
            Request::Symlink {
                dir,
                name,
                target,
                uid,
                gid,
            } => {
                w.u64(*dir);
                w.bytes(name)?;
                w.bytes(target)?;
                w.u32(*uid);
                w.u32(*gid);
            }
            Request::Setattr { fid, attr } => {
                w.u64(*fid);
                let mut mask = 0;
                if attr.mode.is_some() {
                    mask |= SA_MODE;
                }
                if attr.uid.is_some() {
                    mask |= SA_UID;
                }
                if attr.gid.is_some() {
                    mask |= SA_GID;
                }
                if attr.size.is_some() {
                    mask |= SA_SIZE;
                }
                w.u8(mask);
                w.u32(attr.mode.unwrap_or(0));
                w.u32(attr.uid.unwrap_or(0));
                w.u32(attr.gid.unwrap_or(0));
                w.u64(attr.size.unwrap_or(0));
                w.time(attr.atime);
                w.time(attr.mtime);
            }
            Request::Fsync { fid, datasync } => {
                w.u64(*fid);
                w.u8(u8::from(*datasync));
            }
            Request::GetXattr { fid, name } | Request::RemoveXattr { fid, name } => {
                w.u64(*fid);
                w.bytes(name)?;
            }
            Request::SetXattr {
                fid,
                name,
                value,
                flags,
            } => {
                if value.len() > MAX_XATTR {
                    return Err(Errno::E2BIG);
                }
                w.u64(*fid);
                w.bytes(name)?;
                w.bytes(value)?;
                w.u32(*flags);
            }
            Request::ListXattr { fid } => w.u64(*fid),
        }
        w.finish()
    }

    /// Reads a request frame.
    pub fn decode(frame: &[u8]) -> Result<(Header, Request), DecodeError> {
        let header = parse_header(frame, REQUEST_HEADER).map_err(|errno| DecodeError {
            header: None,
            errno,
        })?;
        let fail = |errno| DecodeError {
            header: Some(header),
            errno,
        };
        let op = Op::from_u8(header.op).ok_or(fail(Errno::ENOSYS))?;
        let mut r = Reader {
            buf: &frame[REQUEST_HEADER..],
        };
        let req = Self::decode_body(op, &mut r).map_err(fail)?;
        r.end().map_err(fail)?;
        Ok((header, req))
    }

    fn decode_body(op: Op, r: &mut Reader<'_>) -> Result<Request, Errno> {
        Ok(match op {
            Op::Version => Request::Version {
                magic: r.u32()?,
                version: r.u32()?,
            },
            Op::Attach => Request::Attach,
            Op::UpperFile => Request::UpperFile,
            Op::AttachMount => Request::AttachMount { index: r.u32()? },
            Op::Walk => {
                let dir = r.u64()?;
                let n = r.u16()? as usize;
                if n > MAX_WALK {
                    return Err(Errno::EINVAL);
                }
                let mut names = Vec::with_capacity(n);
                for _ in 0..n {
                    names.push(r.bytes()?);
                }
                Request::Walk { dir, names }
            }
            Op::WalkOpen => Request::WalkOpen {
                dir: r.u64()?,
                name: r.bytes()?,
            },
            Op::Stat => Request::Stat { fid: r.u64()? },
            Op::Readlink => Request::Readlink { fid: r.u64()? },
            Op::Statfs => Request::Statfs { fid: r.u64()? },
            Op::Clunk => Request::Clunk { fid: r.u64()? },
            Op::Open => Request::Open {
                fid: r.u64()?,
                flags: r.u32()?,
            },
            Op::Getdents => Request::Getdents {
                fid: r.u64()?,
                cookie: r.u64()?,
                max_bytes: r.u32()?,
            },
            Op::Create => Request::Create {
                dir: r.u64()?,
                name: r.bytes()?,
                flags: r.u32()?,
                mode: r.u32()?,
                uid: r.u32()?,
                gid: r.u32()?,
            },
            Op::Mkdir => Request::Mkdir {
                dir: r.u64()?,
                name: r.bytes()?,
                mode: r.u32()?,
                uid: r.u32()?,
                gid: r.u32()?,
            },
            Op::Mknod => Request::Mknod {
                dir: r.u64()?,
                name: r.bytes()?,
                mode: r.u32()?,
                uid: r.u32()?,
                gid: r.u32()?,
            },
            Op::Unlink => Request::Unlink {
                dir: r.u64()?,
                name: r.bytes()?,
                flags: r.u32()?,
            },
            Op::Rename => Request::Rename {
                old_dir: r.u64()?,
                old_name: r.bytes()?,
                new_dir: r.u64()?,
                new_name: r.bytes()?,
                flags: r.u32()?,
            },
            Op::Link => Request::Link {
                target: r.u64()?,
                dir: r.u64()?,
                name: r.bytes()?,
            },
            Op::Symlink => Request::Symlink {
                dir: r.u64()?,
                name: r.bytes()?,
                target: r.bytes()?,
                uid: r.u32()?,
                gid: r.u32()?,
            },
            Op::Setattr => {
                let fid = r.u64()?;
                let mask = r.u8()?;
                if mask & !(SA_MODE | SA_UID | SA_GID | SA_SIZE) != 0 {
                    return Err(Errno::EINVAL);
                }
                let mode = r.u32()?;
                let uid = r.u32()?;
                let gid = r.u32()?;
                let size = r.u64()?;
                let atime = r.time()?;
                let mtime = r.time()?;
                let pick = |bit, v| (mask & bit != 0).then_some(v);
                Request::Setattr {
                    fid,
                    attr: SetAttr {
                        mode: pick(SA_MODE, mode),
                        uid: pick(SA_UID, uid),
                        gid: pick(SA_GID, gid),
                        size: (mask & SA_SIZE != 0).then_some(size),
                        atime,
                        mtime,
                    },
                }
            }
            Op::Fsync => Request::Fsync {
                fid: r.u64()?,
                datasync: match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(Errno::EINVAL),
                },
            },
            Op::GetXattr => Request::GetXattr {
                fid: r.u64()?,
                name: r.bytes()?,
            },
            Op::RemoveXattr => Request::RemoveXattr {
                fid: r.u64()?,
                name: r.bytes()?,
            },
            Op::SetXattr => Request::SetXattr {
                fid: r.u64()?,
                name: r.bytes()?,
                value: r.bytes()?,
                flags: r.u32()?,
            },
            Op::ListXattr => Request::ListXattr { fid: r.u64()? },
        })
    }
}

/// Checks the length field and minimum size, and reads tag and op.
fn parse_header(frame: &[u8], min: usize) -> Result<Header, Errno> {
    if frame.len() < min || frame.len() > MAX_MSG {
        return Err(Errno::EBADMSG);
    }
    let mut r = Reader { buf: frame };
    let len = r.u32()? as usize;
    if len != frame.len() {
        return Err(Errno::EBADMSG);
    }
    Ok(Header {
        tag: r.u32()?,
        op: r.u8()?,
    })
}

/// The frame for a reply to request `tag`/`op`.
pub fn encode_reply(tag: u32, op: u8, result: &Result<ReplyBody, Errno>) -> Result<Vec<u8>, Errno> {
    let mut w = Writer(Vec::with_capacity(128));
    w.u32(0);
    w.u32(tag);
    w.u8(op);
    match result {
        Err(e) => {
            // An errno of 0 would read as success; map it to something that cannot.
            let e = if *e as i32 <= 0 { Errno::EIO } else { *e };
            w.u32(e as i32 as u32);
        }
        Ok(body) => {
            w.u32(0);
            match body {
                ReplyBody::Unit => {}
                ReplyBody::Version(v) => w.u32(*v),
                ReplyBody::Node(fid, st) => {
                    w.u64(*fid);
                    w.stat(st);
                }
                ReplyBody::Nodes(nodes) => {
                    let n = u16::try_from(nodes.len()).map_err(|_| Errno::EMSGSIZE)?;
                    w.u16(n);
                    for (fid, st) in nodes {
                        w.u64(*fid);
                        w.stat(st);
                    }
                }
                ReplyBody::Stat(st) => w.stat(st),
                ReplyBody::Bytes(b) => w.bytes(b)?,
                ReplyBody::Dirents(ents) => {
                    w.u32(ents.len() as u32);
                    for d in ents {
                        w.u64(d.ino);
                        w.u64(d.next_cookie);
                        w.u8(d.kind);
                        w.bytes(&d.name)?;
                    }
                }
                ReplyBody::StatFs(s) => {
                    w.i64(s.kind);
                    w.i64(s.bsize);
                    w.u64(s.blocks);
                    w.u64(s.bfree);
                    w.u64(s.bavail);
                    w.u64(s.files);
                    w.u64(s.ffree);
                    w.i64(s.namelen);
                    w.i64(s.frsize);
                    w.i64(s.flags);
                }
            }
        }
    }
    w.finish()
}

/// Reads a reply frame to a request with op `expect`. The outer error means the frame
/// itself is malformed (the connection can no longer be trusted); the inner result is
/// the server's answer.
pub fn decode_reply(frame: &[u8], expect: Op) -> Result<(u32, Result<ReplyBody, Errno>), Errno> {
    let h = parse_header(frame, REPLY_HEADER)?;
    if h.op != expect as u8 {
        return Err(Errno::EBADMSG);
    }
    let mut r = Reader {
        buf: &frame[REQUEST_HEADER..],
    };
    let status = r.u32()?;
    if status != 0 {
        r.end()?;
        if status > 4095 {
            return Err(Errno::EBADMSG);
        }
        return Ok((h.tag, Err(Errno::from_raw(status as i32))));
    }
    let body = match expect {
        Op::Open
        | Op::UpperFile
        | Op::Clunk
        | Op::Unlink
        | Op::Rename
        | Op::Setattr
        | Op::Fsync
        | Op::SetXattr
        | Op::RemoveXattr => ReplyBody::Unit,
        Op::Version => ReplyBody::Version(r.u32()?),
        Op::Attach
        | Op::AttachMount
        | Op::Create
        | Op::Mkdir
        | Op::Mknod
        | Op::Link
        | Op::Symlink
        | Op::WalkOpen => ReplyBody::Node(r.u64()?, r.stat()?),
        Op::Walk => {
            let n = r.u16()? as usize;
            if n > MAX_WALK {
                return Err(Errno::EBADMSG);
            }
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push((r.u64()?, r.stat()?));
            }
            ReplyBody::Nodes(v)
        }
        Op::Stat => ReplyBody::Stat(r.stat()?),
        Op::Readlink | Op::GetXattr | Op::ListXattr => ReplyBody::Bytes(r.bytes()?),
        Op::Getdents => {
            let n = r.u32()? as usize;
            // Each entry takes at least DIRENT_FIXED bytes, so this bounds the allocation.
            if n > r.buf.len() / DIRENT_FIXED {
                return Err(Errno::EBADMSG);
            }
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(Dirent {
                    ino: r.u64()?,
                    next_cookie: r.u64()?,
                    kind: r.u8()?,
                    name: r.bytes()?,
                });
            }
            ReplyBody::Dirents(v)
        }
        Op::Statfs => ReplyBody::StatFs(StatFs {
            kind: r.i64()?,
            bsize: r.i64()?,
            blocks: r.u64()?,
            bfree: r.u64()?,
            bavail: r.u64()?,
            files: r.u64()?,
            ffree: r.u64()?,
            namelen: r.i64()?,
            frsize: r.i64()?,
            flags: r.i64()?,
        }),
    };
    r.end()?;
    Ok((h.tag, Ok(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_requests() -> Vec<Request> {
        vec![
            Request::Version {
                magic: MAGIC,
                version: VERSION,
            },
            Request::Attach,
            Request::UpperFile,
            Request::AttachMount { index: 3 },
            Request::Walk {
                dir: 7,
                names: vec![b"usr".to_vec(), b"bin".to_vec()],
            },
            Request::WalkOpen {
                dir: 7,
                name: b"python3".to_vec(),
            },
            Request::Open { fid: 3, flags: 2 },
            Request::Getdents {
                fid: 3,
                cookie: 99,
                max_bytes: 4096,
            },
            Request::Create {
                dir: 1,
                name: b"f".to_vec(),
                flags: 2,
                mode: 0o644,
                uid: 5,
                gid: 6,
            },
            Request::Rename {
                old_dir: 1,
                old_name: b"a".to_vec(),
                new_dir: 2,
                new_name: b"b".to_vec(),
                flags: 1,
            },
            Request::Symlink {
                dir: 1,
                name: b"l".to_vec(),
                target: b"../x".to_vec(),
                uid: 0,
                gid: 0,
            },
            Request::Setattr {
                fid: 4,
                attr: SetAttr {
                    mode: Some(0o600),
                    uid: None,
                    gid: Some(3),
                    size: Some(10),
                    atime: SetTime::Now,
                    mtime: SetTime::At(5, 6),
                },
            },
            Request::Fsync {
                fid: 4,
                datasync: true,
            },
            Request::GetXattr {
                fid: 4,
                name: b"user.a".to_vec(),
            },
            Request::SetXattr {
                fid: 4,
                name: b"user.a".to_vec(),
                value: b"v\0w".to_vec(),
                flags: 1,
            },
            Request::ListXattr { fid: 5 },
            Request::RemoveXattr {
                fid: 6,
                name: b"trusted.b".to_vec(),
            },
        ]
    }

    #[test]
    fn requests_round_trip() {
        for (i, req) in sample_requests().into_iter().enumerate() {
            let frame = req.encode(i as u32).unwrap();
            let (h, got) = Request::decode(&frame).unwrap();
            assert_eq!(h.tag, i as u32);
            assert_eq!(got, req);
        }
    }

    #[test]
    fn truncated_and_padded_requests_are_rejected() {
        for req in sample_requests() {
            let frame = req.encode(1).unwrap();
            for cut in 0..frame.len() {
                let mut short = frame[..cut].to_vec();
                assert!(Request::decode(&short).is_err(), "{req:?} cut at {cut}");
                // Even with a consistent length field a short body must fail.
                if cut >= 4 {
                    short[..4].copy_from_slice(&(cut as u32).to_le_bytes());
                    if cut >= REQUEST_HEADER && cut < frame.len() {
                        let e = Request::decode(&short).unwrap_err();
                        assert_eq!(e.header.map(|h| h.tag), Some(1));
                    }
                }
            }
            let mut long = frame.clone();
            long.push(0);
            let n = long.len() as u32;
            long[..4].copy_from_slice(&n.to_le_bytes());
            assert!(Request::decode(&long).is_err());
        }
    }

    #[test]
    fn garbage_never_panics() {
        // A small deterministic generator: no external crates needed.
        let mut x: u64 = 0x1234_5678_9abc_def0;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let len = (next() % 200) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len >= REPLY_HEADER && next() % 2 == 0 {
                f[..4].copy_from_slice(&(len as u32).to_le_bytes());
                f[8] = (next() % 20) as u8;
            }
            let _ = Request::decode(&f);
            if let Some(op) = f.get(8).and_then(|b| Op::from_u8(*b)) {
                let _ = decode_reply(&f, op);
            }
        }
    }

    #[test]
    fn oversized_frames_are_rejected() {
        let big = Request::Symlink {
            dir: 1,
            name: vec![b'a'; 60_000],
            target: vec![b'b'; 10_000],
            uid: 0,
            gid: 0,
        };
        assert_eq!(big.encode(1), Err(Errno::EMSGSIZE));
        let mut f = vec![0u8; MAX_MSG + 1];
        f[..4].copy_from_slice(&((MAX_MSG + 1) as u32).to_le_bytes());
        assert!(Request::decode(&f).is_err());
        let walk = Request::Walk {
            dir: 1,
            names: vec![b"a".to_vec(); MAX_WALK + 1],
        };
        assert_eq!(walk.encode(1), Err(Errno::EINVAL));
    }

    #[test]
    fn replies_round_trip() {
        let st = Stat {
            ino: 42,
            mode: 0o100644,
            size: -1,
            ..Stat::default()
        };
        let cases = vec![
            (Op::Version, Ok(ReplyBody::Version(VERSION))),
            (Op::Walk, Ok(ReplyBody::Nodes(vec![(1, st), (2, st)]))),
            (Op::Stat, Ok(ReplyBody::Stat(st))),
            (Op::Readlink, Ok(ReplyBody::Bytes(b"/etc/passwd".to_vec()))),
            (
                Op::Getdents,
                Ok(ReplyBody::Dirents(vec![Dirent {
                    ino: 1,
                    next_cookie: 2,
                    kind: 4,
                    name: b"x".to_vec(),
                }])),
            ),
            (Op::Create, Ok(ReplyBody::Node(9, st))),
            (Op::Unlink, Err(Errno::ENOTEMPTY)),
            (Op::Open, Ok(ReplyBody::Unit)),
        ];
        for (op, res) in cases {
            let f = encode_reply(77, op as u8, &res).unwrap();
            assert_eq!(decode_reply(&f, op).unwrap(), (77, res.clone()));
            // Wrong op, truncation and trailing bytes are all malformed.
            let other = if op == Op::Stat { Op::Open } else { Op::Stat };
            assert!(decode_reply(&f, other).is_err());
            for cut in 0..f.len() {
                assert!(decode_reply(&f[..cut], op).is_err());
            }
        }
    }

    #[test]
    fn dirent_count_cannot_force_huge_allocation() {
        let mut f = encode_reply(1, Op::Getdents as u8, &Ok(ReplyBody::Dirents(vec![]))).unwrap();
        let n = f.len();
        f[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_reply(&f, Op::Getdents), Err(Errno::EBADMSG));
    }
}
