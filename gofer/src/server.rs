//! The gofer's side of the protocol: serves one directory tree.
//!
//! Every fid is an `O_PATH` descriptor of a file under the root, reached one component
//! at a time from the root with `O_NOFOLLOW` (and `openat2`'s `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS` on top). Names with a slash, empty names,
//! `.` and `..` are refused, so no request can name anything but a child of a fid.
//!
//! Re-opening a fid for I/O: a directory through its own `O_PATH` descriptor (`"."`),
//! anything else through the directory it was reached from and its name there, with
//! `O_NOFOLLOW` and `O_NONBLOCK` (a FIFO swapped in cannot block the server), and the
//! result's dev/ino must be the fid's (`ESTALE` otherwise: the name was swapped or
//! removed since). `O_TRUNC` is applied only after that check. The server renames
//! its own fids' names along with `rename`. The gofer holds no host `/proc`: a
//! `/proc/self/fd` directory would reach `/proc/1/root`, the whole host. A bind-mounted
//! regular file has no parent to re-open through; its descriptors are opened once at
//! start ([`Bind::open`]). Symlinks and device nodes are refused before any re-open.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use nix::errno::Errno;
use tracing::{debug, info, warn};

use crate::host;
use crate::protocol::{
    encode_reply, Header, ReplyBody, Request, MAGIC, MAX_MSG, MAX_WALK, MAX_XATTR, REPLY_HEADER,
    VERSION,
};
use crate::{Dirent, Fid, SetAttr, Stat, KEEP_ID};

use abi::limits::{NAME_MAX, PATH_MAX};

/// `O_*` flags a client may pass to open/create; anything else is refused or dropped.
const OPEN_ALLOWED: i32 = libc::O_ACCMODE
    | libc::O_TRUNC
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | libc::O_DSYNC
    | libc::O_SYNC
    | libc::O_DIRECT
    | libc::O_NOATIME
    | libc::O_LARGEFILE
    | libc::O_DIRECTORY;
/// Flags dropped silently: they mean nothing for a re-open, or we set them ourselves.
const OPEN_IGNORED: i32 = libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NOFOLLOW | libc::O_EXCL;

use abi::resolve::{RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS};

/// Where a fid was reached: the directory and the name to re-open it through.
struct Origin {
    /// `O_PATH` descriptor of the directory (shared with its own fid).
    parent: Arc<OwnedFd>,
    /// The directory's dev/ino, to follow renames in it.
    parent_id: (u64, u64),
    /// The fid's name in it.
    name: CString,
}

struct Node {
    /// `O_PATH` descriptor of the file.
    path: Arc<OwnedFd>,
    /// How to re-open it; `None` for attach points.
    origin: Option<Origin>,
    /// Attributes at walk time: the file type never changes, dev/ino identify it.
    stat: Stat,
    /// A readable directory descriptor for getdents, opened on first use.
    dir: Option<OwnedFd>,
    /// The attach point it was reached from: 0 the root, `i + 1` bind mount `i`.
    mount: u32,
}

impl Node {
    fn kind(&self) -> u32 {
        self.stat.mode & libc::S_IFMT
    }
    fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }
}

/// The exact `openat` flags of an upper-layer file (the seccomp row allows only
/// these, only on the upper directory).
pub const UPPER_FILE_FLAGS: i32 = libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC;

/// A file server for one tree. Build it with [`Server::new`] (or [`Server::from_parts`]
/// after confinement) and run it with [`Server::run`].
pub struct Server {
    root: OwnedFd,
    readonly: bool,
    /// The spec's bind mounts.
    binds: Vec<Bind>,
    /// Where [`Request::UpperFile`] makes unnamed files (`--overlay=self`): a
    /// directory of the rootfs's own filesystem, opened by the runtime outside the
    /// gofer's mount namespace (so writable even when the served tree is not).
    upper: Option<OwnedFd>,
    fids: BTreeMap<Fid, Node>,
    next_fid: Fid,
    negotiated: bool,
}

/// What the loop should do after a request.
enum Flow {
    Continue,
    Hangup,
}

impl Server {
    /// Opens `root`; does not serve yet.
    pub fn new(root: &Path, readonly: bool) -> io::Result<Server> {
        let root = open_root(root)?;
        Ok(Server::from_parts(root, readonly))
    }

    /// A server for the directory `root` (any descriptor of it).
    ///
    /// Sets the process umask to 0: the sentry applies the application's umask itself,
    /// so files are created with exactly the mode it asks for.
    pub fn from_parts(root: OwnedFd, readonly: bool) -> Server {
        host::umask(0);
        Server {
            root,
            readonly,
            binds: Vec::new(),
            upper: None,
            fids: BTreeMap::new(),
            next_fid: 1,
            negotiated: false,
        }
    }

    /// Also serves `binds`, reachable with [`crate::Client::attach_mount`] by index.
    pub fn with_binds(mut self, binds: Vec<Bind>) -> Server {
        self.binds = binds;
        self
    }

    /// Also makes unnamed files in directory `upper` for the sentry's overlay upper
    /// layer ([`Request::UpperFile`]).
    pub fn with_upper(mut self, upper: Option<OwnedFd>) -> Server {
        self.upper = upper;
        self
    }

    /// The upper directory's descriptor, if any (for the seccomp filter).
    pub fn upper_fd(&self) -> Option<BorrowedFd<'_>> {
        self.upper.as_ref().map(|f| f.as_fd())
    }

    /// Whether attach point `mount` refuses changes.
    fn mount_ro(&self, mount: u32) -> bool {
        match mount {
            0 => self.readonly,
            i => self.binds.get(i as usize - 1).is_none_or(|b| b.readonly),
        }
    }

    /// Whether every attach point is read-only.
    fn all_ro(&self) -> bool {
        self.readonly && self.binds.iter().all(|b| b.readonly)
    }

    /// The errno a change touching these fids gets before it is tried: `EROFS` on a
    /// read-only attach point, `EXDEV` across two of them. Unknown fids are left to
    /// the operation itself (`EBADF`).
    fn check_change(&self, fids: &[Fid]) -> Result<(), Errno> {
        let mounts: Vec<u32> = fids
            .iter()
            .filter_map(|f| self.fids.get(f).map(|n| n.mount))
            .collect();
        if mounts.iter().any(|&m| self.mount_ro(m)) {
            return Err(Errno::EROFS);
        }
        if mounts.windows(2).any(|w| w[0] != w[1]) {
            return Err(Errno::EXDEV);
        }
        Ok(())
    }

    /// Serves requests on `sock` until the peer hangs up (then `Ok`) or the socket
    /// fails. A request that cannot be parsed at all ends the connection.
    pub fn run(mut self, sock: OwnedFd) -> io::Result<()> {
        // One spare byte so that an oversized datagram is seen as truncated.
        let mut buf = vec![0u8; MAX_MSG + 1];
        loop {
            let got = match host::recv_frame(sock.as_fd(), &mut buf) {
                Ok(g) => g,
                Err(Errno::ECONNRESET) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            // The client never donates descriptors; whatever came is closed here.
            drop(got.fds);
            if got.len == 0 {
                debug!("gofer: peer hung up");
                return Ok(());
            }
            let frame = &buf[..got.len.min(MAX_MSG)];
            if got.truncated || got.len > MAX_MSG {
                // Answer the tag if we can read one, then carry on: the frame is gone.
                warn!("gofer: oversized request ({} bytes)", got.len);
                if frame.len() >= 9 {
                    let tag = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
                    let h = Header { tag, op: frame[8] };
                    if !self.reply(&sock, h, Err(Errno::EMSGSIZE), None) {
                        return Ok(());
                    }
                    continue;
                }
                return Ok(());
            }
            let (h, req) = match Request::decode(frame) {
                Ok(x) => x,
                Err(e) => match e.header {
                    Some(h) => {
                        debug!("gofer: bad request op {}: {}", h.op, e.errno);
                        if !self.reply(&sock, h, Err(e.errno), None) {
                            return Ok(());
                        }
                        continue;
                    }
                    None => {
                        warn!("gofer: unparseable frame, closing the connection");
                        return Ok(());
                    }
                },
            };
            let (result, fd, flow) = self.handle(req);
            if !self.reply(&sock, h, result, fd) {
                return Ok(());
            }
            if let Flow::Hangup = flow {
                return Ok(());
            }
        }
    }

    /// Sends a reply; false when the peer is gone.
    fn reply(
        &self,
        sock: &OwnedFd,
        h: Header,
        result: Result<ReplyBody, Errno>,
        fd: Option<OwnedFd>,
    ) -> bool {
        let frame = match encode_reply(h.tag, h.op, &result) {
            Ok(f) => f,
            Err(e) => {
                // Only possible for a reply we failed to bound; answer with the errno.
                warn!("gofer: reply for op {} does not fit: {e}", h.op);
                match encode_reply(h.tag, h.op, &Err(e)) {
                    Ok(f) => f,
                    Err(_) => return false,
                }
            }
        };
        let fd = if result.is_ok() { fd } else { None };
        match host::send_frame(sock.as_fd(), &frame, fd.as_ref().map(|f| f.as_fd())) {
            Ok(()) => true,
            Err(e) => {
                debug!("gofer: send failed: {e}");
                false
            }
        }
    }

    fn handle(&mut self, req: Request) -> (Result<ReplyBody, Errno>, Option<OwnedFd>, Flow) {
        let op = req.op();
        if let Request::Version { magic, version } = req {
            if magic != MAGIC || version != VERSION {
                warn!(
                    "gofer: client speaks protocol version {version} (magic {magic:#x}); \
                     this gofer speaks {VERSION}"
                );
                return (Err(Errno::EPROTONOSUPPORT), None, Flow::Hangup);
            }
            self.negotiated = true;
            return (Ok(ReplyBody::Version(VERSION)), None, Flow::Continue);
        }
        if !self.negotiated {
            return (Err(Errno::EPROTO), None, Flow::Continue);
        }
        if op.mutates() {
            let fids: Vec<Fid> = match &req {
                Request::Create { dir, .. }
                | Request::Mkdir { dir, .. }
                | Request::Mknod { dir, .. }
                | Request::Unlink { dir, .. }
                | Request::Symlink { dir, .. } => vec![*dir],
                Request::Rename {
                    old_dir, new_dir, ..
                } => vec![*old_dir, *new_dir],
                Request::Link { target, dir, .. } => vec![*target, *dir],
                Request::Setattr { fid, .. }
                | Request::SetXattr { fid, .. }
                | Request::RemoveXattr { fid, .. } => vec![*fid],
                _ => vec![],
            };
            let res = if self.all_ro() {
                Err(Errno::EROFS)
            } else {
                self.check_change(&fids)
            };
            if let Err(e) = res {
                return (Err(e), None, Flow::Continue);
            }
        }
        let (res, fd) = match self.dispatch(req) {
            Ok((body, fd)) => (Ok(body), fd),
            Err(e) => (Err(e), None),
        };
        (res, fd, Flow::Continue)
    }

    fn dispatch(&mut self, req: Request) -> Result<(ReplyBody, Option<OwnedFd>), Errno> {
        let plain = |b| Ok((b, None));
        match req {
            Request::Version { .. } => Err(Errno::EPROTO),
            Request::Attach => {
                let fd = host::openat(
                    self.root.as_fd(),
                    c".",
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    0,
                )?;
                let (fid, st) = self.insert_in(fd, 0, None)?;
                plain(ReplyBody::Node(fid, st))
            }
            Request::UpperFile => {
                let dir = self.upper.as_ref().ok_or(Errno::EOPNOTSUPP)?;
                // Unnamed (never linked: no name to find, and the host frees it when
                // the sentry closes its last descriptor), read-write, owner-only.
                let fd = host::openat(dir.as_fd(), c".", UPPER_FILE_FLAGS, 0o600)?;
                Ok((ReplyBody::Unit, Some(fd)))
            }
            Request::AttachMount { index } => {
                let src = self.binds.get(index as usize).ok_or(Errno::ENOENT)?;
                // A fresh O_PATH descriptor of the very source (a file or a directory).
                let fd = host::dup(src.path.as_fd())?;
                let (fid, st) = self.insert_in(fd, index + 1, None)?;
                plain(ReplyBody::Node(fid, st))
            }
            Request::Walk { dir, names } => plain(ReplyBody::Nodes(self.walk(dir, &names)?)),
            Request::WalkOpen { dir, name } => {
                let (fid, st) = self
                    .walk(dir, std::slice::from_ref(&name))?
                    .pop()
                    .ok_or(Errno::ENOENT)?;
                // Only regular files, read-only: what `Open` gives for O_RDONLY, saving
                // the sentry the second round trip of a lookup followed by an open.
                // A refusal is not this request's: `Open` reports it if asked.
                let fd = if st.mode & libc::S_IFMT == libc::S_IFREG {
                    self.open(fid, libc::O_RDONLY).ok()
                } else {
                    None
                };
                Ok((ReplyBody::Node(fid, st), fd))
            }
            Request::Stat { fid } => {
                let st = host::fstat(self.node(fid)?.path.as_fd())?;
                plain(ReplyBody::Stat(st))
            }
            Request::Open { fid, flags } => {
                let fd = self.open(fid, flags as i32)?;
                Ok((ReplyBody::Unit, Some(fd)))
            }
            Request::Readlink { fid } => {
                let n = self.node(fid)?;
                if n.kind() != libc::S_IFLNK {
                    return Err(Errno::EINVAL);
                }
                plain(ReplyBody::Bytes(host::readlink_fd(n.path.as_fd())?))
            }
            Request::Getdents {
                fid,
                cookie,
                max_bytes,
            } => plain(ReplyBody::Dirents(self.getdents(fid, cookie, max_bytes)?)),
            Request::Statfs { fid } => plain(ReplyBody::StatFs(host::fstatfs(
                self.node(fid)?.path.as_fd(),
            )?)),
            Request::Clunk { fid } => {
                self.fids.remove(&fid).ok_or(Errno::EBADF)?;
                plain(ReplyBody::Unit)
            }
            Request::Create {
                dir,
                name,
                flags,
                mode,
                uid,
                gid,
            } => {
                let (fid, st, fd) = self.create(dir, &name, flags as i32, mode, uid, gid)?;
                Ok((ReplyBody::Node(fid, st), Some(fd)))
            }
            Request::Mkdir {
                dir,
                name,
                mode,
                uid,
                gid,
            } => {
                let d = self.dir(dir)?;
                let cname = check_name(&name)?;
                host::mkdirat(d, &cname, mode & 0o7777)?;
                plain(self.adopt_new(dir, &cname, mode, uid, gid)?)
            }
            Request::Mknod {
                dir,
                name,
                mode,
                uid,
                gid,
            } => {
                let kind = mode & libc::S_IFMT;
                // Device nodes would hand the container raw host devices.
                if kind != libc::S_IFIFO && kind != libc::S_IFSOCK {
                    return Err(Errno::EPERM);
                }
                let d = self.dir(dir)?;
                let cname = check_name(&name)?;
                host::mknodat(d, &cname, kind | (mode & 0o7777))?;
                plain(self.adopt_new(dir, &cname, mode, uid, gid)?)
            }
            Request::Unlink { dir, name, flags } => {
                if flags & !(libc::AT_REMOVEDIR as u32) != 0 {
                    return Err(Errno::EINVAL);
                }
                let d = self.dir(dir)?;
                host::unlinkat(d, &check_name(&name)?, flags as i32)?;
                plain(ReplyBody::Unit)
            }
            Request::Rename {
                old_dir,
                old_name,
                new_dir,
                new_name,
                flags,
            } => {
                if flags & !(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) != 0 {
                    return Err(Errno::EINVAL);
                }
                let od = self.dir(old_dir)?;
                let nd = self.dir(new_dir)?;
                let (old_c, new_c) = (check_name(&old_name)?, check_name(&new_name)?);
                host::renameat2(od, &old_c, nd, &new_c, flags)?;
                self.renamed(old_dir, &old_c, new_dir, &new_c, flags)?;
                plain(ReplyBody::Unit)
            }
            Request::Link { target, dir, name } => {
                let t = self.node(target)?;
                if t.is_dir() {
                    return Err(Errno::EPERM);
                }
                let d = self.dir(dir)?;
                let cname = check_name(&name)?;
                host::link_fd(t.path.as_fd(), d, &cname)?;
                let fd = self.open_child(dir, &cname)?;
                let (fid, st) = self.insert(fd, dir, &cname)?;
                plain(ReplyBody::Node(fid, st))
            }
            Request::Symlink {
                dir,
                name,
                target,
                uid,
                gid,
            } => {
                if target.is_empty() {
                    return Err(Errno::ENOENT);
                }
                if target.len() >= PATH_MAX {
                    return Err(Errno::ENAMETOOLONG);
                }
                let ctarget = CString::new(target).map_err(|_| Errno::EINVAL)?;
                let d = self.dir(dir)?;
                let cname = check_name(&name)?;
                host::symlinkat(&ctarget, d, &cname)?;
                plain(self.adopt_new(dir, &cname, 0, uid, gid)?)
            }
            Request::Setattr { fid, attr } => {
                self.setattr(fid, &attr)?;
                plain(ReplyBody::Unit)
            }
            Request::GetXattr { fid, name } => {
                let fd = self.xattr_fd(fid)?;
                let v = host::fgetxattr(fd.as_fd(), &xattr_name(&name)?)?;
                if v.len() > MAX_XATTR {
                    return Err(Errno::E2BIG);
                }
                plain(ReplyBody::Bytes(v))
            }
            Request::SetXattr {
                fid,
                name,
                value,
                flags,
            } => {
                let fd = self.xattr_fd(fid)?;
                host::fsetxattr(fd.as_fd(), &xattr_name(&name)?, &value, flags as i32)?;
                plain(ReplyBody::Unit)
            }
            Request::ListXattr { fid } => {
                let fd = self.xattr_fd(fid)?;
                let v = host::flistxattr(fd.as_fd())?;
                if v.len() > MAX_XATTR {
                    return Err(Errno::E2BIG);
                }
                plain(ReplyBody::Bytes(v))
            }
            Request::RemoveXattr { fid, name } => {
                let fd = self.xattr_fd(fid)?;
                host::fremovexattr(fd.as_fd(), &xattr_name(&name)?)?;
                plain(ReplyBody::Unit)
            }
            Request::Fsync { fid, datasync } => {
                let n = self.node(fid)?;
                let k = n.kind();
                if k != libc::S_IFREG && k != libc::S_IFDIR {
                    return Err(Errno::EINVAL);
                }
                let fd = self.reopen(fid, libc::O_RDONLY)?;
                host::fsync(fd.as_fd(), datasync)?;
                plain(ReplyBody::Unit)
            }
        }
    }

    fn node(&self, fid: Fid) -> Result<&Node, Errno> {
        self.fids.get(&fid).ok_or(Errno::EBADF)
    }

    /// The `O_PATH` descriptor of directory `fid`.
    fn dir(&self, fid: Fid) -> Result<BorrowedFd<'_>, Errno> {
        let n = self.node(fid)?;
        if !n.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(n.path.as_fd())
    }

    /// A fid for `path`, child `name` of directory `from` (same attach point).
    fn insert(&mut self, path: OwnedFd, from: Fid, name: &CStr) -> Result<(Fid, Stat), Errno> {
        let d = self.node(from)?;
        let origin = Origin {
            parent: d.path.clone(),
            parent_id: (d.stat.dev, d.stat.ino),
            name: name.to_owned(),
        };
        let mount = d.mount;
        self.insert_in(path, mount, Some(origin))
    }

    fn insert_in(
        &mut self,
        path: OwnedFd,
        mount: u32,
        origin: Option<Origin>,
    ) -> Result<(Fid, Stat), Errno> {
        let stat = host::fstat(path.as_fd())?;
        let fid = self.next_fid;
        self.next_fid = self.next_fid.checked_add(1).ok_or(Errno::ENFILE)?;
        self.fids.insert(
            fid,
            Node {
                path: Arc::new(path),
                origin,
                stat,
                dir: None,
                mount,
            },
        );
        Ok((fid, stat))
    }

    /// After `rename(old_dir/old, new_dir/new)`: the fids reached by the old name now
    /// re-open through the new one (and the other way round for an exchange). A fid
    /// the rename replaced keeps its stale name; its re-open fails with `ESTALE`.
    fn renamed(
        &mut self,
        old_dir: Fid,
        old: &CStr,
        new_dir: Fid,
        new: &CStr,
        flags: u32,
    ) -> Result<(), Errno> {
        let od = self.node(old_dir)?;
        let nd = self.node(new_dir)?;
        let (od_id, nd_id) = ((od.stat.dev, od.stat.ino), (nd.stat.dev, nd.stat.ino));
        let (od_fd, nd_fd) = (od.path.clone(), nd.path.clone());
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        for n in self.fids.values_mut() {
            let Some(o) = n.origin.as_mut() else { continue };
            if o.parent_id == od_id && o.name.as_c_str() == old {
                o.parent = nd_fd.clone();
                o.parent_id = nd_id;
                o.name = new.to_owned();
            } else if exchange && o.parent_id == nd_id && o.name.as_c_str() == new {
                o.parent = od_fd.clone();
                o.parent_id = od_id;
                o.name = old.to_owned();
            }
        }
        Ok(())
    }

    /// `O_PATH` descriptor of child `name` of directory `dir`, never following it.
    fn open_child(&self, dir: Fid, name: &std::ffi::CStr) -> Result<OwnedFd, Errno> {
        host::openat2(
            self.dir(dir)?,
            name,
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        )
    }

    fn walk(&mut self, dir: Fid, names: &[Vec<u8>]) -> Result<Vec<(Fid, Stat)>, Errno> {
        if names.len() > MAX_WALK {
            return Err(Errno::EINVAL);
        }
        self.dir(dir)?;
        let mut out = Vec::with_capacity(names.len());
        let mut cur = dir;
        for (i, name) in names.iter().enumerate() {
            let step = check_name(name).and_then(|c| Ok((self.open_child(cur, &c)?, c)));
            let (fd, cname) = match step {
                Ok(x) => x,
                Err(e) if i == 0 => return Err(e),
                Err(_) => break,
            };
            let (fid, st) = match self.insert(fd, cur, &cname) {
                Ok(x) => x,
                Err(e) if i == 0 => return Err(e),
                Err(_) => break,
            };
            out.push((fid, st));
            if st.mode & libc::S_IFMT != libc::S_IFDIR {
                break;
            }
            cur = fid;
        }
        Ok(out)
    }

    /// A fresh descriptor of the very file `fid` holds, opened with `flags`.
    fn reopen(&self, fid: Fid, flags: i32) -> Result<OwnedFd, Errno> {
        let n = self.node(fid)?;
        let flags = flags | libc::O_CLOEXEC | libc::O_NOCTTY;
        if n.is_dir() {
            // Its own descriptor reaches it without any name.
            return host::openat(n.path.as_fd(), c".", flags | libc::O_DIRECTORY, 0);
        }
        let trunc = flags & libc::O_TRUNC != 0;
        let fd = match &n.origin {
            Some(o) => {
                let open = (flags & !libc::O_TRUNC) | libc::O_NOFOLLOW | libc::O_NONBLOCK;
                let fd = host::openat(o.parent.as_fd(), &o.name, open, 0).map_err(|e| {
                    if e == Errno::ENOENT {
                        Errno::ESTALE
                    } else {
                        e
                    }
                })?;
                let st = host::fstat(fd.as_fd())?;
                if st.dev != n.stat.dev || st.ino != n.stat.ino {
                    debug!("gofer: fid {fid}'s name now names another file");
                    return Err(Errno::ESTALE);
                }
                if flags & libc::O_NONBLOCK == 0 && n.kind() == libc::S_IFREG {
                    host::set_status_flags(fd.as_fd(), open & !libc::O_NONBLOCK)?;
                }
                fd
            }
            None => {
                // A bind-mounted file: its descriptors were opened at start.
                let b = self.binds.get(n.mount as usize - 1).ok_or(Errno::ESTALE)?;
                let (ro, rw) = b.file.as_ref().ok_or(Errno::ESTALE)?;
                let src = if flags & libc::O_ACCMODE == libc::O_RDONLY && !trunc {
                    ro
                } else {
                    rw.as_ref().ok_or(Errno::EROFS)?
                };
                host::dup(src.as_fd())?
            }
        };
        if trunc && n.kind() == libc::S_IFREG {
            host::ftruncate(fd.as_fd(), 0)?;
        }
        Ok(fd)
    }

    fn open(&self, fid: Fid, flags: i32) -> Result<OwnedFd, Errno> {
        let n = self.node(fid)?;
        // O_TMPFILE contains the O_DIRECTORY bit, so it is tested as a whole.
        if flags & (libc::O_CREAT | libc::O_PATH) != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE
        {
            return Err(Errno::EINVAL);
        }
        if flags & !(OPEN_ALLOWED | OPEN_IGNORED) != 0 {
            return Err(Errno::EINVAL);
        }
        let mut flags = flags & OPEN_ALLOWED;
        let acc = flags & libc::O_ACCMODE;
        if acc == libc::O_ACCMODE {
            return Err(Errno::EINVAL);
        }
        let writes = acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        match n.kind() {
            libc::S_IFLNK => return Err(Errno::ELOOP),
            // The gofer runs with host privileges: never hand out host devices.
            libc::S_IFCHR | libc::S_IFBLK => return Err(Errno::EPERM),
            libc::S_IFSOCK => return Err(Errno::ENXIO),
            libc::S_IFDIR if writes => return Err(Errno::EISDIR),
            // A FIFO open must not block the single-threaded server; the sentry may clear
            // O_NONBLOCK on the donated fd with fcntl.
            libc::S_IFIFO => flags |= libc::O_NONBLOCK,
            libc::S_IFDIR | libc::S_IFREG => {}
            _ => return Err(Errno::EINVAL),
        }
        if n.kind() != libc::S_IFDIR && flags & libc::O_DIRECTORY != 0 {
            return Err(Errno::ENOTDIR);
        }
        if self.mount_ro(n.mount) && writes {
            return Err(Errno::EROFS);
        }
        self.reopen(fid, flags)
    }

    fn getdents(&mut self, fid: Fid, cookie: u64, max_bytes: u32) -> Result<Vec<Dirent>, Errno> {
        let n = self.fids.get_mut(&fid).ok_or(Errno::EBADF)?;
        if !n.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if n.dir.is_none() {
            n.dir = Some(host::openat(
                n.path.as_fd(),
                c".",
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                0,
            )?);
        }
        let Some(dfd) = n.dir.as_ref() else {
            return Err(Errno::EBADF);
        };
        // Each host record (19 bytes + name + NUL, 8-aligned) is at least as long as its
        // encoding (19 bytes + name), so this budget keeps the reply within MAX_MSG.
        let budget = (max_bytes as usize).min(MAX_MSG - REPLY_HEADER - 4);
        let mut buf = vec![0u8; budget];
        host::seek_set(dfd.as_fd(), cookie)?;
        let mut out = Vec::new();
        loop {
            let got = host::getdents64(dfd.as_fd(), &mut buf)?;
            if got == 0 {
                break;
            }
            parse_dirents(&buf[..got], &mut out)?;
            if !out.is_empty() {
                break;
            }
            // Only "." and ".." so far: read on rather than signal end of directory.
        }
        Ok(out)
    }

    fn create(
        &mut self,
        dir: Fid,
        name: &[u8],
        flags: i32,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(Fid, Stat, OwnedFd), Errno> {
        if flags & !(OPEN_ALLOWED | OPEN_IGNORED | libc::O_CREAT) != 0
            || flags & libc::O_DIRECTORY != 0
        {
            return Err(Errno::EINVAL);
        }
        if flags & libc::O_ACCMODE == libc::O_ACCMODE {
            return Err(Errno::EINVAL);
        }
        let d = self.dir(dir)?;
        let cname = check_name(name)?;
        // Always exclusive: an existing name (a FIFO, a device) must never be opened here;
        // the sentry walks first and retries the walk on EEXIST.
        let oflags = (flags & OPEN_ALLOWED)
            | libc::O_CREAT
            | libc::O_EXCL
            | libc::O_NOFOLLOW
            | libc::O_NOCTTY
            | libc::O_CLOEXEC;
        let fd = host::openat(d, &cname, oflags, mode & 0o7777)?;
        let path = (|| {
            if uid != KEEP_ID || gid != KEEP_ID {
                host::fchown(fd.as_fd(), uid, gid)?;
                if mode & (libc::S_ISUID | libc::S_ISGID) != 0 {
                    // chown cleared the set-id bits the caller asked for.
                    host::fchmod(fd.as_fd(), mode & 0o7777)?;
                }
            }
            // The fid must name the file we created, not whatever `name` is by now.
            let p = self.open_child(dir, &cname)?;
            let (a, b) = (host::fstat(p.as_fd())?, host::fstat(fd.as_fd())?);
            if (a.dev, a.ino) != (b.dev, b.ino) {
                return Err(Errno::ESTALE);
            }
            Ok(p)
        })();
        match path.and_then(|p| self.insert(p, dir, &cname)) {
            Ok((fid, st)) => Ok((fid, st, fd)),
            Err(e) => {
                if let Ok(d) = self.dir(dir) {
                    let _ = host::unlinkat(d, &cname, 0);
                }
                Err(e)
            }
        }
    }

    /// Takes a fid for a name just made in `dir` and gives it its owner; removes the name
    /// again if that fails, so no half-made file is left behind.
    fn adopt_new(
        &mut self,
        dir: Fid,
        cname: &std::ffi::CStr,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<ReplyBody, Errno> {
        let res = (|| {
            let fd = self.open_child(dir, cname)?;
            if uid != KEEP_ID || gid != KEEP_ID {
                host::chown_fd(fd.as_fd(), uid, gid)?;
                let kind = host::fstat(fd.as_fd())?.mode & libc::S_IFMT;
                if kind != libc::S_IFLNK && mode & (libc::S_ISUID | libc::S_ISGID) != 0 {
                    host::chmod_fd(fd.as_fd(), mode & 0o7777)?;
                }
            }
            Ok(fd)
        })();
        match res {
            Ok(fd) => {
                let (fid, st) = self.insert(fd, dir, cname)?;
                Ok(ReplyBody::Node(fid, st))
            }
            Err(e) => {
                if let Ok(d) = self.dir(dir) {
                    let _ = host::unlinkat(d, cname, 0);
                    let _ = host::unlinkat(d, cname, libc::AT_REMOVEDIR);
                }
                Err(e)
            }
        }
    }

    /// A descriptor the `f*xattr` calls take (they refuse `O_PATH` ones): a verified
    /// re-open of a regular file or directory. Other kinds cannot be re-opened
    /// safely, so their attributes are out of reach (`EOPNOTSUPP`).
    fn xattr_fd(&self, fid: Fid) -> Result<OwnedFd, Errno> {
        match self.node(fid)?.kind() {
            libc::S_IFREG | libc::S_IFDIR => self
                .reopen(fid, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOATIME)
                .or_else(|_| self.reopen(fid, libc::O_RDONLY | libc::O_NONBLOCK)),
            _ => Err(Errno::EOPNOTSUPP),
        }
    }

    fn setattr(&self, fid: Fid, attr: &SetAttr) -> Result<(), Errno> {
        let n = self.node(fid)?;
        let kind = n.kind();
        if let Some(size) = attr.size {
            match kind {
                libc::S_IFREG => {}
                libc::S_IFDIR => return Err(Errno::EISDIR),
                _ => return Err(Errno::EINVAL),
            }
            let fd = self.reopen(fid, libc::O_WRONLY)?;
            host::ftruncate(fd.as_fd(), size)?;
        }
        if attr.uid.is_some() || attr.gid.is_some() {
            host::chown_fd(
                n.path.as_fd(),
                attr.uid.unwrap_or(KEEP_ID),
                attr.gid.unwrap_or(KEEP_ID),
            )?;
        }
        if let Some(mode) = attr.mode {
            if kind == libc::S_IFLNK {
                return Err(Errno::EOPNOTSUPP);
            }
            match host::chmod_fd(n.path.as_fd(), mode & 0o7777) {
                // Kernels before 6.6 lack fchmodat2: chmod a verified re-open instead.
                Err(Errno::ENOSYS) => {
                    let fd = self.reopen(fid, libc::O_RDONLY | libc::O_NONBLOCK)?;
                    host::fchmod(fd.as_fd(), mode & 0o7777)?;
                }
                r => r?,
            }
        }
        if attr.atime != crate::SetTime::Omit || attr.mtime != crate::SetTime::Omit {
            host::utimens_fd(
                n.path.as_fd(),
                attr.atime.to_timespec(),
                attr.mtime.to_timespec(),
            )?;
        }
        Ok(())
    }
}

/// An attribute name as a C string: `ERANGE` for what Linux would refuse as a name.
fn xattr_name(name: &[u8]) -> Result<CString, Errno> {
    if name.is_empty() || name.len() > NAME_MAX {
        return Err(Errno::ERANGE);
    }
    CString::new(name).map_err(|_| Errno::EINVAL)
}

/// Checks one path component and makes it a C string.
fn check_name(name: &[u8]) -> Result<CString, Errno> {
    if name.is_empty() {
        return Err(Errno::ENOENT);
    }
    if name == b"." || name == b".." || name.contains(&b'/') {
        return Err(Errno::EINVAL);
    }
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    CString::new(name).map_err(|_| Errno::EINVAL)
}

/// Appends the `linux_dirent64` records in `buf` to `out`, without "." and ".." (the
/// sentry makes those itself: ".." of the root must not describe the host).
fn parse_dirents(buf: &[u8], out: &mut Vec<Dirent>) -> Result<(), Errno> {
    let mut off = 0;
    while off < buf.len() {
        let rec = &buf[off..];
        if rec.len() < 19 {
            return Err(Errno::EIO);
        }
        let ino = u64::from_ne_bytes(rec[0..8].try_into().map_err(|_| Errno::EIO)?);
        let next = u64::from_ne_bytes(rec[8..16].try_into().map_err(|_| Errno::EIO)?);
        let reclen = u16::from_ne_bytes([rec[16], rec[17]]) as usize;
        if reclen < 19 || reclen > rec.len() {
            return Err(Errno::EIO);
        }
        let kind = rec[18];
        let name_field = &rec[19..reclen];
        let name_len = name_field
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_field.len());
        let name = &name_field[..name_len];
        if name != b"." && name != b".." {
            out.push(Dirent {
                ino,
                next_cookie: next,
                kind,
                name: name.to_vec(),
            });
        }
        off += reclen;
    }
    Ok(())
}

/// A bind mount source the server serves.
pub struct Bind {
    /// `O_PATH` descriptor of the source (a directory or a regular file).
    pub path: OwnedFd,
    /// Refuse every change under it.
    pub readonly: bool,
    /// For a regular file: descriptors open for reading and (if writable) for reading
    /// and writing. A file reached through no directory cannot be re-opened by name,
    /// so these are made once, at start, and duplicated for each open.
    pub file: Option<(OwnedFd, Option<OwnedFd>)>,
}

impl Bind {
    /// Takes `path` (an `O_PATH` descriptor of a directory or a regular file); for a
    /// file, opens its descriptors through the host's `/proc/self/fd` magic link,
    /// which names exactly that inode. Call it before confinement; the `/proc` it
    /// goes through is not kept.
    pub fn open(path: OwnedFd, readonly: bool) -> io::Result<Bind> {
        let st = host::fstat(path.as_fd())?;
        let file = if st.mode & libc::S_IFMT == libc::S_IFREG {
            let link = CString::new(format!("/proc/self/fd/{}", path.as_raw_fd()))
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            let open = |flags| {
                let fd = host::openat(
                    host_cwd(),
                    &link,
                    flags | libc::O_CLOEXEC | libc::O_NOCTTY,
                    0,
                )?;
                let got = host::fstat(fd.as_fd())?;
                if (got.dev, got.ino) != (st.dev, st.ino) {
                    return Err(io::Error::from_raw_os_error(libc::ESTALE));
                }
                Ok::<_, io::Error>(fd)
            };
            let ro = open(libc::O_RDONLY)?;
            let rw = if readonly {
                None
            } else {
                Some(open(libc::O_RDWR)?)
            };
            Some((ro, rw))
        } else {
            None
        };
        Ok(Bind {
            path,
            readonly,
            file,
        })
    }
}

/// An `O_PATH` descriptor of the directory `root`.
pub fn open_root(root: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(root.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fd = host::openat(
        host_cwd(),
        &c,
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    )?;
    info!("gofer: serving {}", root.display());
    Ok(fd)
}

fn host_cwd() -> BorrowedFd<'static> {
    // AT_FDCWD is a valid "descriptor" for every *at call and is never closed.
    host::at_fdcwd()
}

/// Serves `root` on `sock` until the sentry hangs up. With `readonly`, every request
/// that would change the tree gets `EROFS`. Returns an error only for setup failures.
pub fn serve(root: &Path, sock: OwnedFd, readonly: bool) -> io::Result<()> {
    Server::new(root, readonly)?.run(sock)
}
