//! Unix domain sockets (`AF_UNIX`): stream, datagram and seqpacket, connected pairs
//! and listeners, abstract and filesystem names, file descriptors and credentials
//! carried with the data. Everything stays inside the sentry: no host socket is made.
//!
//! Each socket owns an [`Inbox`], the queue of what was sent to it. A connected
//! socket holds its peer's inbox and writes there; reading makes room and wakes the
//! peer's writers. Closing a connected socket ends the peer's input (EOF) and makes
//! the peer's writes fail with `EPIPE`. Names live in two sandbox-wide maps: abstract
//! names by bytes, filesystem names by the socket file's (device, inode).
//!
//! Limits: an inbox holds [`BUF_SIZE`] bytes; a datagram is at most that big; at most
//! [`MAX_INFLIGHT`] descriptors may be in flight in the whole sandbox (past it,
//! `ETOOMANYREFS`). A socket sent through itself is not collected until the sandbox
//! ends (Linux has a garbage collector for that case; here the in-flight cap bounds it).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::errno::{Errno, SysResult};
use crate::fs::space::{AnonInos, AnonKind};
use crate::platform::AddressSpace;
use crate::vfs::{FileImpl, OpenFile, Stat};
use crate::wait::WaitQueue;

/// Bytes an inbox holds (Linux's default socket buffer, `net.core.wmem_default`).
pub const BUF_SIZE: usize = 212_992;
/// Descriptors in flight (sent, not yet received) in the whole sandbox.
pub const MAX_INFLIGHT: usize = 16_384;
/// Descriptors one message may carry (`SCM_MAX_FD`).
pub const SCM_MAX_FD: usize = 253;
/// Largest `listen` backlog (`net.core.somaxconn`).
pub const SOMAXCONN: usize = 4096;
/// Device number `fstat` reports for sockets (the sockfs superblock).
const SOCKFS_DEV: u64 = 0x8;

/// Bound sockets by name.
type NameMap<K> = HashMap<K, Weak<Core>>;

/// The unix sockets of one sandbox (it lives on the kernel): their names, the
/// list `/proc/net/unix` shows, and the descriptors in flight. Sockets of two
/// sandboxes never reach each other.
#[derive(Default)]
pub struct UnixSpace {
    /// Descriptors queued in messages, at most [`MAX_INFLIGHT`].
    inflight: AtomicUsize,
    /// Sockets bound to abstract names.
    abstract_names: Mutex<NameMap<Vec<u8>>>,
    /// Sockets bound to socket files, by (device, inode).
    paths: Mutex<NameMap<(u64, u64)>>,
    /// Every socket, for `/proc/net/unix`.
    all: Mutex<Vec<Weak<Core>>>,
    /// The sandbox's network, whose interfaces a unix socket's `SIOCGIF*`
    /// ioctls describe (glibc's `if_nametoindex` asks a unix socket).
    net: std::sync::OnceLock<Weak<crate::net::Netstack>>,
    /// Inode numbers of the sockets, and autobind names.
    inos: AnonInos,
}

impl UnixSpace {
    /// An empty space.
    pub fn new() -> Arc<UnixSpace> {
        Arc::new(UnixSpace::default())
    }

    /// Ties the space to the sandbox's network (for the interface ioctls).
    pub fn attach_net(&self, net: &Arc<crate::net::Netstack>) {
        let _ = self.net.set(Arc::downgrade(net));
    }
}

/// Socket type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `SOCK_STREAM`: a byte stream.
    Stream,
    /// `SOCK_DGRAM`: messages, connectionless.
    Dgram,
    /// `SOCK_SEQPACKET`: messages over a connection.
    SeqPacket,
}

impl Kind {
    /// From the type argument of `socket(2)` (flags removed).
    pub fn from_type(t: i32) -> SysResult<Kind> {
        match t {
            libc::SOCK_STREAM => Ok(Kind::Stream),
            // Linux treats SOCK_RAW on AF_UNIX as a datagram socket.
            libc::SOCK_DGRAM | libc::SOCK_RAW => Ok(Kind::Dgram),
            libc::SOCK_SEQPACKET => Ok(Kind::SeqPacket),
            _ => Err(Errno::ESOCKTNOSUPPORT),
        }
    }

    /// The `SOCK_*` value.
    pub fn linux(self) -> i32 {
        match self {
            Kind::Stream => libc::SOCK_STREAM,
            Kind::Dgram => libc::SOCK_DGRAM,
            Kind::SeqPacket => libc::SOCK_SEQPACKET,
        }
    }

    fn connection_based(self) -> bool {
        self != Kind::Dgram
    }
}

/// Who is at the other end (`SO_PEERCRED`, `SCM_CREDENTIALS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ucred {
    /// Process id in the sandbox.
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// A socket address as applications see it: empty (unnamed), abstract (leading NUL)
/// or a path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Name(pub Vec<u8>);

impl Name {
    /// Whether it is an abstract name.
    pub fn is_abstract(&self) -> bool {
        self.0.first() == Some(&0)
    }
}

/// What one send carries besides bytes.
#[derive(Default)]
pub struct Ancillary {
    /// Open files (`SCM_RIGHTS`).
    pub rights: Vec<Arc<OpenFile>>,
    /// The sender (delivered when the receiver asked with `SO_PASSCRED`).
    pub creds: Ucred,
}

/// One message (datagram, seqpacket record, or a stream segment).
struct Segment {
    data: Vec<u8>,
    read: usize,
    rights: Vec<Arc<OpenFile>>,
    creds: Ucred,
    from: Name,
    /// The space whose in-flight count `rights` are part of (when there are any).
    space: Option<Arc<UnixSpace>>,
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let Some(s) = &self.space {
            s.inflight.fetch_sub(self.rights.len(), Ordering::Relaxed);
        }
    }
}

#[derive(Default)]
struct InboxState {
    segs: VecDeque<Segment>,
    bytes: usize,
    /// No more data will arrive (the peer closed or shut down writing).
    eof: bool,
    /// The owner closed or shut down reading: senders get `EPIPE`.
    closed: bool,
    /// An error to report once (`ECONNRESET` when the peer closed with unread data).
    err: Option<Errno>,
}

/// What was sent to one socket, and the queue its waiters sleep on.
#[derive(Default)]
pub struct Inbox {
    st: Mutex<InboxState>,
    wq: WaitQueue,
}

impl Inbox {
    fn lock(&self) -> SysResult<MutexGuard<'_, InboxState>> {
        self.st.lock().map_err(|_| Errno::EIO)
    }

    fn set_eof(&self, reset: bool) {
        if let Ok(mut s) = self.lock() {
            s.eof = true;
            if reset {
                s.err = Some(Errno::ECONNRESET);
            }
        }
        self.wq.notify_all();
    }
}

struct Peer {
    inbox: Arc<Inbox>,
    core: Weak<Core>,
}

#[derive(Default)]
struct SockState {
    name: Option<Name>,
    /// The socket file of a filesystem name, to drop from the space's paths on
    /// close.
    node: Option<(u64, u64)>,
    peer: Option<Peer>,
    /// `Some` once `listen` was called: the connections waiting for `accept`.
    backlog: Option<VecDeque<Arc<Core>>>,
    max_backlog: usize,
    shut_rd: bool,
    shut_wr: bool,
    passcred: bool,
    peercred: Option<Ucred>,
    sndbuf: usize,
    rcvbuf: usize,
    rcvtimeo: Option<std::time::Duration>,
    sndtimeo: Option<std::time::Duration>,
}

/// The shared part of a socket.
pub struct Core {
    kind: Kind,
    ino: u64,
    inbox: Arc<Inbox>,
    st: Mutex<SockState>,
    /// The sandbox's unix sockets this one is one of.
    space: Arc<UnixSpace>,
    /// Who made it (the socket inode's owner, `UNIX_DIAG_UID`).
    uid: std::sync::atomic::AtomicU32,
}

impl Core {
    fn new(space: &Arc<UnixSpace>, kind: Kind) -> Arc<Core> {
        let core = Arc::new(Core {
            space: space.clone(),
            kind,
            uid: std::sync::atomic::AtomicU32::new(0),
            ino: space.inos.next(AnonKind::Unix),
            inbox: Arc::new(Inbox::default()),
            st: Mutex::new(SockState {
                sndbuf: BUF_SIZE,
                rcvbuf: BUF_SIZE,
                ..Default::default()
            }),
        });
        if let Ok(mut all) = space.all.lock() {
            if all.len() >= 64 && all.len().is_power_of_two() {
                all.retain(|w| w.strong_count() > 0);
            }
            all.push(Arc::downgrade(&core));
        }
        core
    }

    fn lock(&self) -> SysResult<MutexGuard<'_, SockState>> {
        self.st.lock().map_err(|_| Errno::EIO)
    }

    fn wake_peer(&self) {
        let peer = self
            .lock()
            .ok()
            .and_then(|s| s.peer.as_ref().map(|p| p.inbox.clone()));
        if let Some(i) = peer {
            i.wq.notify_all();
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        let st = match self.st.get_mut() {
            Ok(s) => std::mem::take(s),
            Err(_) => return,
        };
        let unread = match self.inbox.st.lock() {
            Ok(mut s) => {
                s.closed = true;
                let unread = !s.segs.is_empty();
                // Files in flight to a socket nobody can read any more are closed.
                s.segs.clear();
                s.bytes = 0;
                unread
            }
            Err(_) => false,
        };
        self.inbox.wq.notify_all();
        if let Some(p) = &st.peer {
            if self.kind.connection_based() {
                p.inbox.set_eof(unread);
            } else {
                p.inbox.wq.notify_all();
            }
        }
        if let Some(n) = &st.name {
            if n.is_abstract() {
                forget(&self.space.abstract_names, &n.0);
            }
        }
        if let Some(node) = st.node {
            forget(&self.space.paths, &node);
        }
    }
}

fn forget<K: std::hash::Hash + Eq>(map: &Mutex<NameMap<K>>, key: &K) {
    if let Ok(mut m) = map.lock() {
        if m.get(key).is_some_and(|w| w.strong_count() == 0) {
            m.remove(key);
        }
    }
}

/// Where a datagram goes, or what `connect` reaches.
pub enum Target {
    /// An abstract name.
    Abstract(Vec<u8>),
    /// A socket file, by (device, inode), with the path as given (for `recvfrom`).
    Node(u64, u64),
}

fn lookup(space: &UnixSpace, t: &Target) -> SysResult<Arc<Core>> {
    let found = match t {
        Target::Abstract(n) => space
            .abstract_names
            .lock()
            .map_err(|_| Errno::EIO)?
            .get(n)
            .and_then(Weak::upgrade),
        Target::Node(d, i) => space
            .paths
            .lock()
            .map_err(|_| Errno::EIO)?
            .get(&(*d, *i))
            .and_then(Weak::upgrade),
    };
    found.ok_or(Errno::ECONNREFUSED)
}

/// What one receive returned.
pub struct Received {
    /// Bytes copied.
    pub data: Vec<u8>,
    /// The full length of the message (datagrams: more than `data` if truncated).
    pub full_len: usize,
    /// Files that came with it.
    pub rights: Vec<Arc<OpenFile>>,
    /// The sender, if the receiver asked for credentials.
    pub creds: Option<Ucred>,
    /// The sender's address (datagrams).
    pub from: Name,
}

/// An open Unix socket: the [`FileImpl`] behind a socket fd.
pub struct UnixSocket {
    core: Arc<Core>,
}

impl UnixSocket {
    /// A new unconnected socket of `space`.
    pub fn new(space: &Arc<UnixSpace>, kind: Kind) -> UnixSocket {
        UnixSocket {
            core: Core::new(space, kind),
        }
    }

    /// A connected pair (`socketpair(2)`) of `space`, both made by `creds`.
    pub fn pair(
        space: &Arc<UnixSpace>,
        kind: Kind,
        creds: Ucred,
    ) -> SysResult<(UnixSocket, UnixSocket)> {
        let a = Core::new(space, kind);
        let b = Core::new(space, kind);
        connect_cores(&a, &b, creds, creds)?;
        Ok((UnixSocket { core: a }, UnixSocket { core: b }))
    }

    /// Records the socket's owner (`UNIX_DIAG_UID`), the uid that made it.
    pub fn set_owner(&self, uid: u32) {
        self.core.uid.store(uid, Ordering::Relaxed);
    }

    /// The socket type.
    pub fn kind(&self) -> Kind {
        self.core.kind
    }

    /// The name it is bound to, if any.
    pub fn name(&self) -> SysResult<Option<Name>> {
        Ok(self.core.lock()?.name.clone())
    }

    /// The peer's name (`getpeername`): `ENOTCONN` when not connected.
    pub fn peer_name(&self) -> SysResult<Name> {
        let st = self.core.lock()?;
        let p = st.peer.as_ref().ok_or(Errno::ENOTCONN)?;
        let Some(peer) = p.core.upgrade() else {
            return Ok(Name::default());
        };
        drop(st);
        let n = peer.lock()?.name.clone().unwrap_or_default();
        Ok(n)
    }

    /// Binds to an abstract name. `EADDRINUSE` if taken, `EINVAL` if already bound.
    pub fn bind_abstract(&self, name: Vec<u8>) -> SysResult<()> {
        let mut st = self.core.lock()?;
        if st.name.is_some() {
            return Err(Errno::EINVAL);
        }
        let mut m = self
            .core
            .space
            .abstract_names
            .lock()
            .map_err(|_| Errno::EIO)?;
        if m.get(&name).is_some_and(|w| w.strong_count() > 0) {
            return Err(Errno::EADDRINUSE);
        }
        m.insert(name.clone(), Arc::downgrade(&self.core));
        st.name = Some(Name(name));
        Ok(())
    }

    /// Binds with no name given: picks a free abstract name of five hex digits.
    pub fn autobind(&self) -> SysResult<()> {
        for _ in 0..0x10_0000 {
            let n = self.core.space.inos.next(AnonKind::Unix) & 0xf_ffff;
            let mut name = vec![0u8];
            name.extend_from_slice(format!("{n:05x}").as_bytes());
            match self.bind_abstract(name) {
                Err(Errno::EADDRINUSE) => continue,
                r => return r,
            }
        }
        Err(Errno::ENOSPC)
    }

    /// Binds to the socket file `(dev, ino)` just made at `path`.
    pub fn bind_node(&self, dev: u64, ino: u64, path: Vec<u8>) -> SysResult<()> {
        let mut st = self.core.lock()?;
        if st.name.is_some() {
            return Err(Errno::EINVAL);
        }
        let mut m = self.core.space.paths.lock().map_err(|_| Errno::EIO)?;
        m.insert((dev, ino), Arc::downgrade(&self.core));
        st.name = Some(Name(path));
        st.node = Some((dev, ino));
        Ok(())
    }

    /// Whether the socket already has a name (bind must fail before making a file).
    pub fn is_bound(&self) -> SysResult<bool> {
        Ok(self.core.lock()?.name.is_some())
    }

    /// `listen(2)`.
    pub fn listen(&self, backlog: i32, creds: Ucred) -> SysResult<()> {
        if !self.core.kind.connection_based() {
            return Err(Errno::EOPNOTSUPP);
        }
        let mut st = self.core.lock()?;
        if st.name.is_none() || st.peer.is_some() {
            return Err(Errno::EINVAL);
        }
        st.max_backlog = (backlog.max(0) as usize).min(SOMAXCONN);
        if st.backlog.is_none() {
            st.backlog = Some(VecDeque::new());
        }
        st.peercred = Some(creds);
        Ok(())
    }

    /// Connects to the socket `target` names. Stream and seqpacket sockets need a
    /// listener with room (`EAGAIN` when its backlog is full: the caller waits on
    /// the listener's queue, see `UnixSocket::listener_queue`); datagram sockets
    /// just remember the destination. Blocked connectors wait on the listener's
    /// [`target_inbox`] queue.
    pub fn connect(&self, target: &Target, creds: Ucred) -> SysResult<()> {
        let other = lookup(&self.core.space, target)?;
        if other.kind != self.core.kind {
            return Err(Errno::EPROTOTYPE);
        }
        if !self.core.kind.connection_based() {
            let mut st = self.core.lock()?;
            st.peer = Some(Peer {
                inbox: other.inbox.clone(),
                core: Arc::downgrade(&other),
            });
            return Ok(());
        }
        {
            let st = self.core.lock()?;
            if st.peer.is_some() {
                return Err(Errno::EISCONN);
            }
            if st.backlog.is_some() {
                return Err(Errno::EINVAL);
            }
        }
        let mut lst = other.lock()?;
        let listener_creds = lst.peercred.unwrap_or_default();
        let max = lst.max_backlog;
        let listener_name = lst.name.clone();
        let Some(backlog) = lst.backlog.as_mut() else {
            return Err(Errno::ECONNREFUSED);
        };
        if backlog.len() > max {
            return Err(Errno::EAGAIN);
        }
        let server = Core::new(&self.core.space, self.core.kind);
        server
            .uid
            .store(other.uid.load(Ordering::Relaxed), Ordering::Relaxed);
        server.lock()?.name = listener_name;
        connect_cores(&self.core, &server, creds, listener_creds)?;
        backlog.push_back(server);
        drop(lst);
        other.inbox.wq.notify_all();
        Ok(())
    }

    /// Whether a blocked `connect` to `target` may try again: the listener has room
    /// in its backlog, or is gone (the retry then reports why).
    pub fn connect_would_not_block(&self, target: &Target) -> bool {
        let Ok(other) = lookup(&self.core.space, target) else {
            return true;
        };
        let Ok(st) = other.lock() else {
            return true;
        };
        match &st.backlog {
            Some(b) => b.len() <= st.max_backlog,
            None => true,
        }
    }

    /// Takes a waiting connection (`EAGAIN` if none, `EINVAL` if not listening).
    pub fn accept(&self) -> SysResult<UnixSocket> {
        if !self.core.kind.connection_based() {
            return Err(Errno::EOPNOTSUPP);
        }
        let mut st = self.core.lock()?;
        let backlog = st.backlog.as_mut().ok_or(Errno::EINVAL)?;
        let core = backlog.pop_front().ok_or(Errno::EAGAIN)?;
        drop(st);
        // A connector blocked on a full backlog may go on.
        self.core.inbox.wq.notify_all();
        Ok(UnixSocket { core })
    }

    /// Disconnects a datagram socket (`connect` with `AF_UNSPEC`).
    pub fn disconnect(&self) -> SysResult<()> {
        if self.core.kind.connection_based() {
            return Err(Errno::EINVAL);
        }
        self.core.lock()?.peer = None;
        Ok(())
    }

    /// `shutdown(2)`: `how` is `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`.
    pub fn shutdown(&self, how: i32) -> SysResult<()> {
        if !(0..=2).contains(&how) {
            return Err(Errno::EINVAL);
        }
        let mut st = self.core.lock()?;
        if st.peer.is_none() && self.core.kind.connection_based() {
            return Err(Errno::ENOTCONN);
        }
        let rd = how != libc::SHUT_WR;
        let wr = how != libc::SHUT_RD;
        st.shut_rd |= rd;
        st.shut_wr |= wr;
        let peer = st.peer.as_ref().map(|p| p.inbox.clone());
        drop(st);
        if rd {
            if let Ok(mut s) = self.core.inbox.lock() {
                s.closed = true;
                s.eof = true;
            }
            self.core.inbox.wq.notify_all();
        }
        if let Some(p) = peer {
            if wr && self.core.kind.connection_based() {
                p.set_eof(false);
            }
            p.wq.notify_all();
        }
        Ok(())
    }

    /// Sends `data` with `anc` to the connected peer or to `to`. Returns how many
    /// bytes went (streams may send part when the peer's inbox is nearly full);
    /// `EAGAIN` when nothing fits; `EPIPE` when the peer is gone.
    /// The files in `anc` are taken only when something was sent.
    pub fn send(&self, data: &[u8], anc: &mut Ancillary, to: Option<&Target>) -> SysResult<usize> {
        let st = self.core.lock()?;
        if st.shut_wr {
            return Err(Errno::EPIPE);
        }
        let (inbox, from) = match to {
            Some(t) if !self.core.kind.connection_based() => {
                let other = lookup(&self.core.space, t)?;
                if other.kind != self.core.kind {
                    return Err(Errno::EPROTOTYPE);
                }
                (other.inbox.clone(), st.name.clone().unwrap_or_default())
            }
            Some(_) => {
                return Err(if st.peer.is_some() {
                    Errno::EISCONN
                } else {
                    Errno::EOPNOTSUPP
                })
            }
            None => match &st.peer {
                Some(p) => {
                    if !self.core.kind.connection_based() && p.core.strong_count() == 0 {
                        return Err(Errno::ECONNREFUSED);
                    }
                    (p.inbox.clone(), st.name.clone().unwrap_or_default())
                }
                None => return Err(Errno::ENOTCONN),
            },
        };
        drop(st);
        if anc.rights.len() > SCM_MAX_FD {
            return Err(Errno::EINVAL);
        }
        let mut ib = inbox.lock()?;
        if ib.closed {
            return Err(if self.core.kind.connection_based() {
                Errno::EPIPE
            } else {
                Errno::ECONNREFUSED
            });
        }
        let room = BUF_SIZE.saturating_sub(ib.bytes);
        let n = if self.core.kind == Kind::Stream {
            if room == 0 && !data.is_empty() {
                return Err(Errno::EAGAIN);
            }
            data.len().min(room)
        } else {
            if data.len() > BUF_SIZE {
                return Err(Errno::EMSGSIZE);
            }
            if data.len() > room || ib.segs.len() >= 4096 {
                return Err(Errno::EAGAIN);
            }
            data.len()
        };
        if self.core.kind == Kind::Stream && n == 0 && anc.rights.is_empty() {
            return Ok(0);
        }
        let count = anc.rights.len();
        let inflight = &self.core.space.inflight;
        if inflight.fetch_add(count, Ordering::Relaxed) + count > MAX_INFLIGHT {
            inflight.fetch_sub(count, Ordering::Relaxed);
            return Err(Errno::ETOOMANYREFS);
        }
        ib.segs.push_back(Segment {
            space: (count > 0).then(|| self.core.space.clone()),
            data: data[..n].to_vec(),
            read: 0,
            rights: std::mem::take(&mut anc.rights),
            creds: anc.creds,
            from,
        });
        ib.bytes += n;
        drop(ib);
        inbox.wq.notify_all();
        Ok(n)
    }

    /// Receives up to `len` bytes. `EAGAIN` when nothing is there yet; end of input
    /// gives an empty result. `peek` leaves the data queued.
    pub fn recv(&self, len: usize, peek: bool) -> SysResult<Received> {
        let st = self.core.lock()?;
        let connected = st.peer.is_some();
        let passcred = st.passcred;
        let listening = st.backlog.is_some();
        drop(st);
        if self.core.kind.connection_based() && !connected {
            return Err(if listening || self.core.kind == Kind::Stream {
                Errno::EINVAL
            } else {
                Errno::ENOTCONN
            });
        }
        let mut ib = self.core.inbox.lock()?;
        if let Some(e) = ib.err.take() {
            return Err(e);
        }
        let mut out = Received {
            data: Vec::new(),
            full_len: 0,
            rights: Vec::new(),
            creds: None,
            from: Name::default(),
        };
        if ib.segs.is_empty() {
            return if ib.eof { Ok(out) } else { Err(Errno::EAGAIN) };
        }
        if self.core.kind == Kind::Stream {
            let mut taken = 0usize;
            let mut idx = 0usize;
            while taken < len && idx < ib.segs.len() {
                let seg = &ib.segs[idx];
                // Files mark a boundary: they come with the first byte of their
                // segment and a read never runs past a segment that carried some.
                if !seg.rights.is_empty() && taken > 0 {
                    break;
                }
                if passcred && taken > 0 && out.creds != Some(seg.creds) {
                    break;
                }
                let avail = &seg.data[seg.read..];
                let k = avail.len().min(len - taken);
                out.data.extend_from_slice(&avail[..k]);
                if passcred {
                    out.creds = Some(seg.creds);
                }
                taken += k;
                let had_rights = !seg.rights.is_empty();
                if !peek {
                    let seg = &mut ib.segs[idx];
                    seg.read += k;
                    out.rights.append(&mut seg.rights);
                    if seg.read == seg.data.len() {
                        ib.segs.pop_front();
                    } else {
                        idx += 1;
                    }
                    ib.bytes -= k;
                } else {
                    out.rights.extend(seg.rights.iter().cloned());
                    idx += 1;
                }
                if had_rights {
                    break;
                }
            }
            out.full_len = out.data.len();
        } else {
            let seg = if peek {
                ib.segs.front().ok_or(Errno::EAGAIN)?
            } else {
                &ib.segs[0]
            };
            let k = seg.data.len().min(len);
            out.data.extend_from_slice(&seg.data[..k]);
            out.full_len = seg.data.len();
            out.from = seg.from.clone();
            if passcred {
                out.creds = Some(seg.creds);
            }
            if peek {
                out.rights = seg.rights.clone();
            } else if let Some(mut seg) = ib.segs.pop_front() {
                ib.bytes -= seg.data.len();
                out.rights = std::mem::take(&mut seg.rights);
                self.core
                    .space
                    .inflight
                    .fetch_sub(out.rights.len(), Ordering::Relaxed);
            }
        }
        if !peek && self.core.kind == Kind::Stream {
            self.core
                .space
                .inflight
                .fetch_sub(out.rights.len(), Ordering::Relaxed);
        }
        drop(ib);
        if !peek {
            // Room was made: the peer's writers may go on.
            self.core.inbox.wq.notify_all();
            self.core.wake_peer();
        }
        Ok(out)
    }

    /// Bytes waiting to be read (`FIONREAD`): all of a stream, the next datagram.
    pub fn pending(&self) -> usize {
        let Ok(ib) = self.core.inbox.lock() else {
            return 0;
        };
        match self.core.kind {
            Kind::Stream => ib.bytes,
            _ => ib.segs.front().map(|s| s.data.len()).unwrap_or(0),
        }
    }

    /// Bytes sent but not yet read by the peer (`TIOCOUTQ`), as an upper bound.
    pub fn unread_by_peer(&self) -> usize {
        let st = match self.core.lock() {
            Ok(s) => s,
            Err(_) => return 0,
        };
        st.peer
            .as_ref()
            .and_then(|p| p.inbox.lock().ok().map(|s| s.bytes))
            .unwrap_or(0)
    }

    /// The credentials of the peer (`SO_PEERCRED`); unconnected sockets report none
    /// (pid 0, uid and gid -1) as Linux does.
    pub fn peer_cred(&self) -> SysResult<Ucred> {
        Ok(self.core.lock()?.peercred.unwrap_or(Ucred {
            pid: 0,
            uid: u32::MAX,
            gid: u32::MAX,
        }))
    }

    /// Whether `listen` was called.
    pub fn is_listening(&self) -> bool {
        self.core
            .lock()
            .map(|s| s.backlog.is_some())
            .unwrap_or(false)
    }

    /// `SO_PASSCRED`.
    pub fn set_passcred(&self, on: bool) -> SysResult<()> {
        self.core.lock()?.passcred = on;
        Ok(())
    }

    /// `SO_PASSCRED` as set.
    pub fn passcred(&self) -> bool {
        self.core.lock().map(|s| s.passcred).unwrap_or(false)
    }

    /// `SO_SNDBUF`/`SO_RCVBUF` (Linux doubles what is set and has a floor).
    pub fn set_buf(&self, send: bool, v: i32) -> SysResult<()> {
        let v = (v.max(0) as usize)
            .saturating_mul(2)
            .clamp(4608, 2 * BUF_SIZE);
        let mut st = self.core.lock()?;
        if send {
            st.sndbuf = v;
        } else {
            st.rcvbuf = v;
        }
        Ok(())
    }

    /// `SO_RCVTIMEO` (`send == false`) or `SO_SNDTIMEO`; `None` waits forever.
    pub fn set_timeout(&self, send: bool, t: Option<std::time::Duration>) -> SysResult<()> {
        let mut st = self.core.lock()?;
        if send {
            st.sndtimeo = t;
        } else {
            st.rcvtimeo = t;
        }
        Ok(())
    }

    /// The timeout set with [`UnixSocket::set_timeout`].
    pub fn timeout(&self, send: bool) -> Option<std::time::Duration> {
        self.core
            .lock()
            .ok()
            .and_then(|s| if send { s.sndtimeo } else { s.rcvtimeo })
    }

    /// `SO_SNDBUF`/`SO_RCVBUF` as set (informational; the inbox size is fixed).
    pub fn buf(&self, send: bool) -> usize {
        self.core
            .lock()
            .map(|s| if send { s.sndbuf } else { s.rcvbuf })
            .unwrap_or(BUF_SIZE)
    }
}

/// Joins two sockets: each writes into the other's inbox; `ca` and `cb` are the
/// credentials each side's peer will report.
fn connect_cores(a: &Arc<Core>, b: &Arc<Core>, ca: Ucred, cb: Ucred) -> SysResult<()> {
    {
        let mut sa = a.lock()?;
        sa.peer = Some(Peer {
            inbox: b.inbox.clone(),
            core: Arc::downgrade(b),
        });
        sa.peercred = Some(cb);
    }
    let mut sb = b.lock()?;
    sb.peer = Some(Peer {
        inbox: a.inbox.clone(),
        core: Arc::downgrade(a),
    });
    sb.peercred = Some(ca);
    Ok(())
}

impl FileImpl for UnixSocket {
    fn read(&self, buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        // Files sent with the data are dropped by a plain read, as on Linux.
        let r = self.recv(buf.len(), false)?;
        buf[..r.data.len()].copy_from_slice(&r.data);
        Ok(r.data.len())
    }

    fn write(&self, buf: &[u8], _offset: u64) -> SysResult<usize> {
        self.send(buf, &mut Ancillary::default(), None)
    }

    fn seekable(&self) -> bool {
        false
    }

    fn stat(&self) -> SysResult<Stat> {
        Ok(Stat {
            dev: SOCKFS_DEV,
            ino: self.core.ino,
            mode: libc::S_IFSOCK | 0o777,
            nlink: 1,
            blksize: 4096,
            ..Default::default()
        })
    }

    fn ioctl(&self, req: u64, arg: u64, mem: &dyn AddressSpace) -> SysResult<u64> {
        let v = match req {
            r if r == libc::FIONREAD => self.pending(),
            r if r == libc::TIOCOUTQ => self.unread_by_peer(),
            // Interface queries work on any socket (glibc's if_nametoindex uses one).
            _ => {
                let net = self.core.space.net.get().and_then(Weak::upgrade);
                return crate::net::ifreq::ioctl(net.as_deref(), req, arg, mem);
            }
        };
        crate::mm::io::write_all(mem, arg, &(v.min(i32::MAX as usize) as i32).to_le_bytes())?;
        Ok(0)
    }

    fn readiness(&self) -> u32 {
        let (pollin, pollout, pollrdnorm, pollwrnorm) = (
            libc::POLLIN as u32,
            libc::POLLOUT as u32,
            libc::POLLRDNORM as u32,
            libc::POLLWRNORM as u32,
        );
        let Ok(st) = self.core.lock() else {
            return libc::POLLERR as u32;
        };
        if let Some(b) = &st.backlog {
            return if b.is_empty() { 0 } else { pollin | pollrdnorm };
        }
        let peer = st.peer.as_ref().map(|p| p.inbox.clone());
        let shut_wr = st.shut_wr;
        drop(st);
        let mut r = 0u32;
        if let Ok(ib) = self.core.inbox.lock() {
            if !ib.segs.is_empty() {
                r |= pollin | pollrdnorm;
            }
            if ib.eof {
                r |= pollin | pollrdnorm | libc::POLLRDHUP as u32;
            }
            if ib.err.is_some() {
                r |= libc::POLLERR as u32;
            }
            if ib.eof && (ib.closed || peer.is_none()) && self.core.kind.connection_based() {
                r |= libc::POLLHUP as u32;
            }
        }
        match peer {
            None if self.core.kind.connection_based() => {
                // Never connected: Linux reports hang-up and writable.
                r |= libc::POLLHUP as u32 | pollout | pollwrnorm;
            }
            None => r |= pollout | pollwrnorm,
            Some(p) => {
                let (room, gone) = p
                    .lock()
                    .map(|s| (BUF_SIZE.saturating_sub(s.bytes), s.closed))
                    .unwrap_or((0, true));
                if gone && self.core.kind.connection_based() {
                    r |= libc::POLLHUP as u32;
                }
                if (room > 0 || gone) && !shut_wr {
                    r |= pollout | pollwrnorm;
                }
            }
        }
        r
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.core.inbox.wq)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// `/proc/net/unix`: one line per socket of `space`, in Linux's format (the
/// kernel address shown as zeros, as with `kptr_restrict`).
pub fn proc_net_unix(space: &UnixSpace) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("Num       RefCount Protocol Flags    Type St Inode Path\n");
    let cores: Vec<Arc<Core>> = match space.all.lock() {
        Ok(mut all) => {
            all.retain(|w| w.strong_count() > 0);
            all.iter().filter_map(Weak::upgrade).collect()
        }
        Err(_) => return out,
    };
    for c in cores {
        let Ok(st) = c.lock() else {
            continue;
        };
        let listening = st.backlog.is_some();
        // __SO_ACCEPTCON marks a listener; SS_UNCONNECTED 1, SS_CONNECTED 3.
        let flags = if listening { 0x1_0000 } else { 0 };
        let state = if !listening && st.peer.is_some() {
            3
        } else {
            1
        };
        let ty = match c.kind {
            Kind::Stream => 1,
            Kind::Dgram => 2,
            Kind::SeqPacket => 5,
        };
        let _ = write!(
            out,
            "0000000000000000: 00000002 00000000 {flags:08X} {ty:04X} {state:02X} {:5}",
            c.ino
        );
        if let Some(n) = st.name.as_ref().filter(|n| !n.0.is_empty()) {
            let shown: String =
                n.0.iter()
                    .map(|&b| if b == 0 { '@' } else { b as char })
                    .collect();
            let _ = write!(out, " {shown}");
        }
        out.push('\n');
    }
    out
}

/// The kernel's device number (`MAJOR << 20 | MINOR`) of a `stat` device number.
fn kernel_dev(dev: u64) -> u32 {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    ((major << 20) | (minor & 0xfffff)) as u32
}

/// The unix sockets of `space` as `NETLINK_SOCK_DIAG` describes them
/// (`unix_diag.c`'s `sk_diag_fill`).
pub fn diag_entries(space: &UnixSpace) -> Vec<crate::net::diag::UnixEntry> {
    let cores: Vec<Arc<Core>> = match space.all.lock() {
        Ok(mut all) => {
            all.retain(|w| w.strong_count() > 0);
            all.iter().filter_map(Weak::upgrade).collect()
        }
        Err(_) => return Vec::new(),
    };
    let mut out = Vec::with_capacity(cores.len());
    for c in cores {
        let Ok(st) = c.lock() else {
            continue;
        };
        let (inbox_bytes, first_len, eof) = c
            .inbox
            .lock()
            .map(|i| {
                (
                    i.bytes,
                    i.segs.front().map_or(0, |s| s.data.len() - s.read),
                    i.eof,
                )
            })
            .unwrap_or((0, 0, false));
        // What we sent that the peer has not read yet (Linux counts the buffers'
        // memory, `sk_wmem_alloc`).
        let (peer_ino, peer_closed, unread_by_peer) = match &st.peer {
            Some(p) => {
                let (closed, bytes) = p
                    .inbox
                    .lock()
                    .map(|i| (i.closed, i.bytes))
                    .unwrap_or((true, 0));
                (Some(p.core.upgrade().map_or(0, |pc| pc.ino)), closed, bytes)
            }
            None => (None, false, 0),
        };
        let listening = st.backlog.is_some();
        // TCP_LISTEN, TCP_ESTABLISHED (connected), TCP_CLOSE.
        let state = if listening {
            10
        } else if st.peer.is_some() {
            1
        } else {
            7
        };
        let (rq, wq) = match &st.backlog {
            Some(b) => (b.len() as u32, st.max_backlog as u32),
            None if c.kind == Kind::Dgram => (first_len as u32, unread_by_peer as u32),
            None => (inbox_bytes as u32, unread_by_peer as u32),
        };
        let icons = st.backlog.as_ref().map(|b| {
            b.iter()
                .map(|s| {
                    s.lock()
                        .ok()
                        .and_then(|ss| ss.peer.as_ref().and_then(|p| p.core.upgrade()))
                        .map_or(0, |pc| pc.ino)
                })
                .collect()
        });
        let rcv = st.shut_rd || eof;
        let snd = st.shut_wr || (c.kind.connection_based() && peer_closed);
        out.push(crate::net::diag::UnixEntry {
            ty: c.kind.linux() as u8,
            state,
            ino: c.ino,
            name: st
                .name
                .as_ref()
                .filter(|n| !n.0.is_empty())
                .map(|n| n.0.clone()),
            vfs: st.node.map(|(dev, ino)| (ino as u32, kernel_dev(dev))),
            peer: peer_ino,
            icons,
            rq,
            wq,
            shutdown: rcv as u8 | (snd as u8) << 1,
            uid: c.uid.load(Ordering::Relaxed),
            rcvbuf: st.rcvbuf as u32,
            sndbuf: st.sndbuf as u32,
        });
    }
    out
}

/// The peer inbox's wait queue of a connected socket, for senders that wait for room.
pub fn peer_inbox(sock: &UnixSocket) -> Option<Arc<Inbox>> {
    sock.core
        .lock()
        .ok()
        .and_then(|s| s.peer.as_ref().map(|p| p.inbox.clone()))
}

/// Looks up the inbox of a socket named in `space` (for datagram senders that
/// wait for room).
pub fn target_inbox(space: &UnixSpace, t: &Target) -> SysResult<Arc<Inbox>> {
    Ok(lookup(space, t)?.inbox.clone())
}

impl Inbox {
    /// The queue notified whenever this inbox changes.
    pub fn queue(&self) -> &WaitQueue {
        &self.wq
    }

    /// Whether `len` more bytes fit (at least one byte for streams).
    pub fn has_room(&self, len: usize) -> bool {
        self.lock()
            .map(|s| s.closed || BUF_SIZE.saturating_sub(s.bytes) >= len.clamp(1, BUF_SIZE))
            .unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Ucred {
        Ucred {
            pid: 7,
            uid: 1,
            gid: 2,
        }
    }

    #[test]
    fn stream_pair_eof_epipe_and_reset() {
        let sp = UnixSpace::new();
        let (a, b) = UnixSocket::pair(&sp, Kind::Stream, me()).unwrap();
        assert_eq!(a.send(b"hello", &mut Ancillary::default(), None), Ok(5));
        assert_eq!(b.pending(), 5);
        assert_eq!(b.recv(3, true).unwrap().data, b"hel");
        assert_eq!(b.recv(3, false).unwrap().data, b"hel");
        assert_eq!(b.recv(10, false).unwrap().data, b"lo");
        assert_eq!(b.recv(10, false).err(), Some(Errno::EAGAIN));
        assert_eq!(b.peer_cred().unwrap(), me());
        a.shutdown(libc::SHUT_WR).unwrap();
        assert!(b.recv(10, false).unwrap().data.is_empty());
        assert_ne!(b.readiness() & libc::POLLRDHUP as u32, 0);
        drop(a);
        assert_eq!(
            b.send(b"x", &mut Ancillary::default(), None).err(),
            Some(Errno::EPIPE)
        );

        // Closing with unread data resets the peer once.
        let (a, b) = UnixSocket::pair(&sp, Kind::Stream, me()).unwrap();
        b.send(b"unread", &mut Ancillary::default(), None).unwrap();
        drop(a);
        assert_eq!(b.recv(10, false).err(), Some(Errno::ECONNRESET));
        assert!(b.recv(10, false).unwrap().data.is_empty());
    }

    #[test]
    fn stream_fills_to_the_buffer_size() {
        let sp = UnixSpace::new();
        let (a, b) = UnixSocket::pair(&sp, Kind::Stream, me()).unwrap();
        let big = vec![7u8; BUF_SIZE + 100];
        assert_eq!(a.send(&big, &mut Ancillary::default(), None), Ok(BUF_SIZE));
        assert_eq!(a.readiness() & libc::POLLOUT as u32, 0);
        assert_eq!(
            a.send(b"x", &mut Ancillary::default(), None).err(),
            Some(Errno::EAGAIN)
        );
        assert_eq!(b.recv(100, false).unwrap().data.len(), 100);
        assert_ne!(a.readiness() & libc::POLLOUT as u32, 0);
    }

    #[test]
    fn datagrams_keep_boundaries_and_truncate() {
        let sp = UnixSpace::new();
        let (a, b) = UnixSocket::pair(&sp, Kind::SeqPacket, me()).unwrap();
        a.send(b"one", &mut Ancillary::default(), None).unwrap();
        a.send(b"three", &mut Ancillary::default(), None).unwrap();
        let r = b.recv(2, false).unwrap();
        assert_eq!((r.data.as_slice(), r.full_len), (&b"on"[..], 3));
        assert_eq!(b.recv(100, false).unwrap().data, b"three");
        assert_eq!(
            a.send(&vec![0u8; BUF_SIZE + 1], &mut Ancillary::default(), None)
                .err(),
            Some(Errno::EMSGSIZE)
        );
    }

    #[test]
    fn names_listen_connect_accept() {
        let sp = UnixSpace::new();
        let l = UnixSocket::new(&sp, Kind::Stream);
        assert_eq!(l.listen(5, me()).err(), Some(Errno::EINVAL));
        let name = b"\0rvisor-test-listener".to_vec();
        l.bind_abstract(name.clone()).unwrap();
        let other = UnixSocket::new(&sp, Kind::Stream);
        assert_eq!(
            other.bind_abstract(name.clone()).err(),
            Some(Errno::EADDRINUSE)
        );
        let target = Target::Abstract(name.clone());
        let c = UnixSocket::new(&sp, Kind::Stream);
        assert_eq!(c.connect(&target, me()).err(), Some(Errno::ECONNREFUSED));
        l.listen(0, me()).unwrap();
        c.connect(&target, me()).unwrap();
        assert_eq!(c.connect(&target, me()).err(), Some(Errno::EISCONN));
        assert_ne!(l.readiness() & libc::POLLIN as u32, 0);
        let s = l.accept().unwrap();
        assert_eq!(l.accept().err(), Some(Errno::EAGAIN));
        assert_eq!(c.peer_name().unwrap().0, name);
        c.send(b"ping", &mut Ancillary::default(), None).unwrap();
        assert_eq!(s.recv(10, false).unwrap().data, b"ping");
        let d = UnixSocket::new(&sp, Kind::Dgram);
        assert_eq!(d.connect(&target, me()).err(), Some(Errno::EPROTOTYPE));
        drop(l);
        let c2 = UnixSocket::new(&sp, Kind::Stream);
        assert_eq!(c2.connect(&target, me()).err(), Some(Errno::ECONNREFUSED));
        // The name is free again once the listener is gone.
        UnixSocket::new(&sp, Kind::Stream)
            .bind_abstract(name)
            .unwrap();
    }

    #[test]
    fn unconnected_datagrams_by_name() {
        let sp = UnixSpace::new();
        let r = UnixSocket::new(&sp, Kind::Dgram);
        r.bind_abstract(b"\0rvisor-test-dgram".to_vec()).unwrap();
        let s = UnixSocket::new(&sp, Kind::Dgram);
        s.autobind().unwrap();
        let t = Target::Abstract(b"\0rvisor-test-dgram".to_vec());
        assert_eq!(s.send(b"hi", &mut Ancillary::default(), Some(&t)), Ok(2));
        let got = r.recv(10, false).unwrap();
        assert_eq!(got.data, b"hi");
        assert_eq!(got.from, s.name().unwrap().unwrap());
        assert_eq!(
            s.send(b"x", &mut Ancillary::default(), None).err(),
            Some(Errno::ENOTCONN)
        );
    }
}
