//! The socket system calls. `AF_UNIX` sockets are served here (see
//! [`crate::fs::unix`]); calls on `AF_INET`/`AF_INET6` sockets go to
//! [`crate::syscalls::inet`]. Other families get `EAFNOSUPPORT`, Linux's answer for
//! a family the kernel does not have, and are logged once each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::fs::unix::{self, Ancillary, Kind, Name, Target, Ucred, UnixSocket, SCM_MAX_FD};
use crate::kernel::creds::{CAP_SETGID, CAP_SETUID, CAP_SYS_ADMIN};
use crate::kernel::wait::WaitQueue;
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::fs::read_iovecs;
use crate::syscalls::pipe::{install_file, install_pair};
use crate::syscalls::{at_dir, file_arg, fs_mut, inet, netlink, packet, Args};
use crate::vfs::path::{walk, Follow, WalkOpts};
use crate::vfs::perm::{self, MAY_WRITE};
use crate::vfs::OpenFile;

const MSG_OOB: i32 = 0x1;
const MSG_PEEK: i32 = 0x2;
const MSG_CTRUNC: i32 = 0x8;
const MSG_TRUNC: i32 = 0x20;
const MSG_DONTWAIT: i32 = 0x40;
const MSG_WAITALL: i32 = 0x100;
const MSG_NOSIGNAL: i32 = 0x4000;
const MSG_CMSG_CLOEXEC: i32 = 0x4000_0000;
const SCM_RIGHTS: i32 = 1;
const SCM_CREDENTIALS: i32 = 2;
/// `sizeof(struct sockaddr_un)`.
const SOCKADDR_UN_LEN: usize = 110;
/// One past the highest socket type number (`SOCK_MAX`).
const SOCK_MAX: i32 = 11;
/// How much of a stream send is gathered from the application at a time.
const STREAM_CHUNK: usize = 256 * 1024;

/// An address read from the application.
enum Addr {
    /// Only the family (bind: pick a name).
    Unnamed,
    /// `AF_UNSPEC` (connect: dissolve a datagram association).
    Unspec,
    /// An abstract name, leading NUL included.
    Abstract(Vec<u8>),
    /// A filesystem path.
    Path(Vec<u8>),
}

fn read_addr(task: &Task, addr: u64, len: u64) -> SysResult<Addr> {
    let len = len as usize;
    if !(2..=SOCKADDR_UN_LEN).contains(&len) {
        return Err(Errno::EINVAL);
    }
    let mut b = vec![0u8; len];
    io::read_exact(task.mem(), addr, &mut b)?;
    let family = u16::from_le_bytes([b[0], b[1]]) as i32;
    if family == libc::AF_UNSPEC {
        return Ok(Addr::Unspec);
    }
    if family != libc::AF_UNIX {
        return Err(Errno::EINVAL);
    }
    let name = &b[2..];
    if name.is_empty() {
        return Ok(Addr::Unnamed);
    }
    if name[0] == 0 {
        return Ok(Addr::Abstract(name.to_vec()));
    }
    let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
    Ok(Addr::Path(name[..end].to_vec()))
}

/// Writes `name` as a `sockaddr_un` to `addr`, cut to the caller's length at
/// `len_addr`, and stores the full length there (as Linux does).
fn write_addr(task: &Task, addr: u64, len_addr: u64, name: &Name) -> SysResult<()> {
    if addr == 0 {
        return Ok(());
    }
    let mut out = (libc::AF_UNIX as u16).to_le_bytes().to_vec();
    out.extend_from_slice(&name.0);
    if !name.0.is_empty() && !name.is_abstract() {
        out.push(0);
    }
    super::sockaddr::put_sockaddr(task, addr, len_addr, &out, out.len())
}

fn sock_of(file: &OpenFile) -> SysResult<&UnixSocket> {
    file.imp()
        .as_any()
        .and_then(|a| a.downcast_ref::<UnixSocket>())
        .ok_or(Errno::ENOTSOCK)
}

/// The internet socket behind `fd`, if it is one (its calls go to `inet`).
fn inet_arg(task: &Task, fd: u64) -> SysResult<Option<Arc<OpenFile>>> {
    let f = file_arg(task, fd)?;
    Ok((inet::inet_of(&f).is_some() || super::hostsock::of(&f).is_some()).then_some(f))
}

/// The netlink socket behind `fd`, if it is one (its calls go to `netlink`).
fn netlink_arg(task: &Task, fd: u64) -> SysResult<Option<Arc<OpenFile>>> {
    let f = file_arg(task, fd)?;
    Ok(netlink::netlink_of(&f).is_some().then_some(f))
}

/// The packet socket behind `fd`, if it is one (its calls go to `packet`).
fn packet_arg(task: &Task, fd: u64) -> SysResult<Option<Arc<OpenFile>>> {
    let f = file_arg(task, fd)?;
    Ok(packet::packet_of(&f).is_some().then_some(f))
}

fn sock_arg(task: &Task, fd: u64) -> SysResult<Arc<OpenFile>> {
    let f = file_arg(task, fd)?;
    sock_of(&f)?;
    Ok(f)
}

fn ucred(task: &Task) -> Ucred {
    Ucred {
        pid: task.tgid,
        uid: task.creds.uid,
        gid: task.creds.gid,
    }
}

/// Credentials as the reader `task` sees them: the pid in its pid namespace (0
/// when the process is not in it) and the ids in its user namespace (the
/// overflow id when unmapped), as Linux's `pid_vnr` and `from_kuid_munged`.
fn seen_by(task: &Task, c: Ucred) -> Ucred {
    let ns = task.creds.user_ns();
    // -1: no credentials (an unconnected socket's SO_PEERCRED), in every namespace.
    let id = |k: u32, f: fn(&crate::creds::userns::UserNs, u32) -> u32| {
        if k == u32::MAX {
            k
        } else {
            f(ns, k)
        }
    };
    Ucred {
        pid: task.pid_shown(c.pid),
        uid: id(c.uid, crate::creds::userns::UserNs::uid_shown),
        gid: id(c.gid, crate::creds::userns::UserNs::gid_shown),
    }
}

fn install_sock(task: &Task, s: UnixSocket, flags: i32) -> SysResult<i32> {
    let nb = flags & libc::O_NONBLOCK;
    let file = OpenFile::new(Box::new(s), None, libc::O_RDWR | nb);
    install_file(task, file, flags & libc::O_CLOEXEC != 0)
}

fn split_flags(t: u64) -> SysResult<(i32, i32)> {
    let t = t as i32;
    let flags = t & (libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    let base = t & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    if !(0..SOCK_MAX).contains(&base) {
        return Err(Errno::EINVAL);
    }
    Ok((base, flags))
}

fn split_type(t: u64) -> SysResult<(Kind, i32)> {
    let t = t as i32;
    let flags = t & (libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    let base = t & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    // Types past SOCK_PACKET do not exist at all; known ones AF_UNIX lacks are
    // "not supported".
    if !(0..SOCK_MAX).contains(&base) {
        return Err(Errno::EINVAL);
    }
    let kind = Kind::from_type(base)?;
    Ok((kind, flags))
}

fn check_domain(task: &Task, domain: u64, protocol: u64) -> SysResult<()> {
    let d = domain as i32;
    if d != libc::AF_UNIX {
        if (0..64).contains(&d) {
            task.kernel.warn_once(
                crate::kernel::warn_key::SOCKET_FAMILY + d as u64,
                &format!(
                    "socket family {d} not supported in the sandbox (only AF_UNIX, AF_INET, AF_INET6): EAFNOSUPPORT"
                ),
            );
        }
        return Err(Errno::EAFNOSUPPORT);
    }
    if protocol != 0 && protocol as i32 != libc::PF_UNIX {
        return Err(Errno::EPROTONOSUPPORT);
    }
    Ok(())
}

/// `socket(2)`.
pub fn socket(task: &mut Task, a: &Args) -> SysResult<u64> {
    let d = a[0] as i32;
    if d == libc::AF_INET || d == libc::AF_INET6 {
        let (ty, flags) = split_flags(a[1])?;
        return inet::socket(task, d, ty, a[2] as i32, flags);
    }
    if d == libc::AF_NETLINK {
        let (ty, flags) = split_flags(a[1])?;
        return netlink::socket(task, ty, a[2] as i32, flags);
    }
    if d == libc::AF_PACKET {
        let (ty, flags) = split_flags(a[1])?;
        if !crate::kernel::creds::may_open_raw(&task.creds) {
            return Err(Errno::EPERM);
        }
        return packet::socket(task, ty, a[2] as i32, flags);
    }
    check_domain(task, a[0], a[2])?;
    let (kind, flags) = split_type(a[1])?;
    let sock = UnixSocket::new(&task.kernel.unix, kind);
    sock.set_owner(task.creds.euid);
    Ok(install_sock(task, sock, flags)? as u64)
}

/// `socketpair(2)`.
pub fn socketpair(task: &mut Task, a: &Args) -> SysResult<u64> {
    let d = a[0] as i32;
    if d == libc::AF_INET || d == libc::AF_INET6 {
        split_flags(a[1])?;
        return Err(Errno::EOPNOTSUPP);
    }
    check_domain(task, a[0], a[2])?;
    let (kind, flags) = split_type(a[1])?;
    let (x, y) = UnixSocket::pair(&task.kernel.unix, kind, ucred(task))?;
    x.set_owner(task.creds.euid);
    y.set_owner(task.creds.euid);
    let nb = flags & libc::O_NONBLOCK;
    let x = OpenFile::new(Box::new(x), None, libc::O_RDWR | nb);
    let y = OpenFile::new(Box::new(y), None, libc::O_RDWR | nb);
    install_pair(task, x, y, flags & libc::O_CLOEXEC != 0, a[3])
}

/// The socket a path names: the caller needs write permission on the socket file.
fn path_target(task: &Task, path: &[u8]) -> SysResult<Target> {
    let start = at_dir(task, libc::AT_FDCWD, path)?;
    let opts = WalkOpts {
        creds: Some(&task.creds),
        resolve: 0,
    };
    let d = walk(&task.fs, &start, path, Follow::Yes, opts)?;
    let st = d.inode().stat()?;
    perm::check_on(&task.creds, &st, &**d.inode(), MAY_WRITE, false)?;
    if st.file_type() != libc::S_IFSOCK {
        return Err(Errno::ECONNREFUSED);
    }
    Ok(Target::Node(st.dev, st.ino))
}

fn path_exists(task: &Task, path: &[u8]) -> bool {
    let Ok(start) = at_dir(task, libc::AT_FDCWD, path) else {
        return false;
    };
    let opts = WalkOpts {
        creds: Some(&task.creds),
        resolve: 0,
    };
    walk(&task.fs, &start, path, Follow::No, opts).is_ok()
}

fn target_of(task: &Task, addr: Addr) -> SysResult<Target> {
    match addr {
        Addr::Abstract(n) => Ok(Target::Abstract(n)),
        Addr::Path(p) => path_target(task, &p),
        Addr::Unnamed | Addr::Unspec => Err(Errno::EINVAL),
    }
}

/// `bind(2)`.
pub fn bind(task: &mut Task, a: &Args) -> SysResult<u64> {
    if let Some(f) = inet_arg(task, a[0])? {
        return inet::bind(task, &f, a);
    }
    if let Some(f) = netlink_arg(task, a[0])? {
        return netlink::bind(task, &f, a);
    }
    if let Some(f) = packet_arg(task, a[0])? {
        return packet::bind(task, &f, a);
    }
    let f = sock_arg(task, a[0])?;
    let s = sock_of(&f)?;
    match read_addr(task, a[1], a[2])? {
        Addr::Unnamed => s.autobind()?,
        Addr::Unspec => return Err(Errno::EINVAL),
        Addr::Abstract(n) => s.bind_abstract(n)?,
        Addr::Path(p) => {
            // Linux makes the socket file first: a taken path wins over "already
            // bound".
            if s.is_bound()? {
                return Err(match path_exists(task, &p) {
                    true => Errno::EADDRINUSE,
                    false => Errno::EINVAL,
                });
            }
            let st = match fs_mut::make_node(task, libc::AT_FDCWD, &p, libc::S_IFSOCK | 0o777) {
                Err(Errno::EEXIST) => return Err(Errno::EADDRINUSE),
                r => r?,
            };
            s.bind_node(st.dev, st.ino, p)?;
        }
    }
    Ok(0)
}

/// `listen(2)`.
pub fn listen(task: &mut Task, a: &Args) -> SysResult<u64> {
    if let Some(f) = inet_arg(task, a[0])? {
        return inet::listen(task, &f, a);
    }
    if let Some(f) = netlink_arg(task, a[0])? {
        return netlink::listen(task, &f, a);
    }
    if let Some(f) = packet_arg(task, a[0])? {
        return packet::unsupported(task, &f);
    }
    let f = sock_arg(task, a[0])?;
    sock_of(&f)?.listen(a[1] as i32, ucred(task))?;
    Ok(0)
}

/// Blocks until `ready` or the deadline (`EAGAIN`, as a socket timeout reports) or a
/// signal (`EINTR` when a timeout is set, else a restart).
pub(super) fn wait_until(
    task: &Task,
    queue: &WaitQueue,
    timeout: Option<Duration>,
    mut ready: impl FnMut() -> bool,
) -> SysResult<()> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let _reg = queue.register(&task.waker);
    match crate::kernel::wait::block(
        &task.waker,
        deadline,
        || task.signal_pending(),
        || Ok(ready().then_some(())),
    ) {
        Ok(r) => r,
        Err(crate::kernel::wait::Interrupted::Timeout) => Err(Errno::EAGAIN),
        Err(crate::kernel::wait::Interrupted::Signal) if timeout.is_some() => Err(Errno::EINTR),
        Err(crate::kernel::wait::Interrupted::Signal) => Err(Errno::ERESTARTSYS),
    }
}

/// `connect(2)`.
pub fn connect(task: &mut Task, a: &Args) -> SysResult<u64> {
    if let Some(f) = inet_arg(task, a[0])? {
        return inet::connect(task, &f, a);
    }
    if let Some(f) = netlink_arg(task, a[0])? {
        return netlink::connect(task, &f, a);
    }
    if let Some(f) = packet_arg(task, a[0])? {
        return packet::unsupported(task, &f);
    }
    let f = sock_arg(task, a[0])?;
    let s = sock_of(&f)?;
    let addr = read_addr(task, a[1], a[2])?;
    if let Addr::Unspec = addr {
        s.disconnect()?;
        return Ok(0);
    }
    let target = target_of(task, addr)?;
    let creds = ucred(task);
    loop {
        match s.connect(&target, creds) {
            Err(Errno::EAGAIN) if !f.nonblocking() => {
                let inbox = unix::target_inbox(&task.kernel.unix, &target)?;
                wait_until(task, inbox.queue(), s.timeout(true), || {
                    s.connect_would_not_block(&target)
                })?;
            }
            r => return r.map(|_| 0),
        }
    }
}

fn do_accept(task: &mut Task, a: &Args, flags: i32) -> SysResult<u64> {
    if let Some(f) = inet_arg(task, a[0])? {
        return inet::accept(task, &f, a, flags);
    }
    if let Some(f) = netlink_arg(task, a[0])? {
        return netlink::accept(task, &f, a, flags);
    }
    if let Some(f) = packet_arg(task, a[0])? {
        return packet::unsupported(task, &f);
    }
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let f = sock_arg(task, a[0])?;
    let s = sock_of(&f)?;
    let conn = loop {
        match s.accept() {
            Err(Errno::EAGAIN) if !f.nonblocking() => {
                let q = f.imp().wait_queue().ok_or(Errno::EINVAL)?;
                wait_until(task, q, s.timeout(false), || {
                    f.imp().readiness() & libc::POLLIN as u32 != 0
                })?;
            }
            r => break r?,
        }
    };
    let peer = conn.peer_name().unwrap_or_default();
    let fd = install_sock(task, conn, flags)?;
    if let Err(e) = write_addr(task, a[1], a[2], &peer) {
        drop(task.fds()?.remove(fd));
        return Err(e);
    }
    Ok(fd as u64)
}

/// `accept(2)`.
pub fn accept(task: &mut Task, a: &Args) -> SysResult<u64> {
    do_accept(task, a, 0)
}

/// `accept4(2)`.
pub fn accept4(task: &mut Task, a: &Args) -> SysResult<u64> {
    do_accept(task, a, a[3] as i32)
}

/// `getsockname(2)`.
pub fn getsockname(task: &mut Task, a: &Args) -> SysResult<u64> {
    if let Some(f) = inet_arg(task, a[0])? {
        return inet::getsockname(task, &f, a);
    }
    if let Some(f) = netlink_arg(task, a[0])? {
        return netlink::getsockname(task, &f, a);
    }
    if let Some(f) = packet_arg(task, a[0])? {
        return packet::getsockname(task, &f, a);
    }
    let f = sock_arg(task, a[0])?;
    let n = sock_of(&f)?.name()?.unwrap_or_default();
    write_addr(task, a[1], a[2], &n)?;
    Ok(0)
}

/// `getpeername(2)`.
pub fn getpeername(task: &mut Task, a: &Args) -> SysResult<u64> {
    if let Some(f) = inet_arg(task, a[0])? {
        return inet::getpeername(task, &f, a);
    }
    if let Some(f) = netlink_arg(task, a[0])? {
        return netlink::getpeername(task, &f, a);
    }
    if let Some(f) = packet_arg(task, a[0])? {
        return packet::unsupported(task, &f);
    }
    let f = sock_arg(task, a[0])?;
    let n = sock_of(&f)?.peer_name()?;
    write_addr(task, a[1], a[2], &n)?;
    Ok(0)
}

/// `shutdown(2)`.
pub fn shutdown(task: &mut Task, a: &Args) -> SysResult<u64> {
    if let Some(f) = inet_arg(task, a[0])? {
        return inet::shutdown(task, &f, a);
    }
    if let Some(f) = netlink_arg(task, a[0])? {
        return netlink::shutdown(task, &f, a);
    }
    if let Some(f) = packet_arg(task, a[0])? {
        return packet::unsupported(task, &f);
    }
    let f = sock_arg(task, a[0])?;
    sock_of(&f)?.shutdown(a[1] as i32)?;
    Ok(0)
}

/// Gathers `len` bytes from the iovecs starting `skip` bytes in.
pub(super) fn gather(
    task: &Task,
    iov: &[(u64, usize)],
    skip: usize,
    len: usize,
) -> SysResult<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    let mut pos = 0usize;
    for &(base, l) in iov {
        if out.len() == len {
            break;
        }
        let (seg_start, seg_end) = (pos, pos + l);
        pos = seg_end;
        if seg_end <= skip {
            continue;
        }
        let from = skip.max(seg_start) - seg_start;
        let take = (l - from).min(len - out.len());
        let at = out.len();
        out.resize(at + take, 0);
        io::read_exact(task.mem(), base + from as u64, &mut out[at..])?;
    }
    Ok(out)
}

/// Scatters `data` into the iovecs.
pub(super) fn scatter(task: &Task, iov: &[(u64, usize)], data: &[u8]) -> SysResult<()> {
    let mut done = 0usize;
    for &(base, l) in iov {
        if done == data.len() {
            break;
        }
        let k = l.min(data.len() - done);
        io::write_all(task.mem(), base, &data[done..done + k])?;
        done += k;
    }
    Ok(())
}

/// Reads the control messages of a `sendmsg`.
fn read_control(task: &Task, addr: u64, len: u64) -> SysResult<Ancillary> {
    let mut anc = Ancillary {
        rights: Vec::new(),
        creds: ucred(task),
    };
    if addr == 0 || len == 0 {
        return Ok(anc);
    }
    if len > 64 * 1024 {
        return Err(Errno::ENOBUFS);
    }
    let mut b = vec![0u8; len as usize];
    io::read_exact(task.mem(), addr, &mut b)?;
    let mut off = 0usize;
    while off + 16 <= b.len() {
        let clen =
            u64::from_le_bytes(b[off..off + 8].try_into().map_err(|_| Errno::EINVAL)?) as usize;
        let level = i32::from_le_bytes(b[off + 8..off + 12].try_into().map_err(|_| Errno::EINVAL)?);
        let kind = i32::from_le_bytes(
            b[off + 12..off + 16]
                .try_into()
                .map_err(|_| Errno::EINVAL)?,
        );
        if clen < 16 || off + clen > b.len() {
            return Err(Errno::EINVAL);
        }
        let data = &b[off + 16..off + clen];
        if level != libc::SOL_SOCKET {
            return Err(Errno::EINVAL);
        }
        match kind {
            SCM_RIGHTS => {
                let n = data.len() / 4;
                if anc.rights.len() + n > SCM_MAX_FD {
                    return Err(Errno::EINVAL);
                }
                for c in data.chunks_exact(4) {
                    let fd = i32::from_le_bytes(c.try_into().map_err(|_| Errno::EINVAL)?);
                    let file = task.fds()?.get(fd)?;
                    if file.is_path() {
                        return Err(Errno::EBADF);
                    }
                    anc.rights.push(file);
                }
            }
            SCM_CREDENTIALS => {
                if data.len() != 12 {
                    return Err(Errno::EINVAL);
                }
                let pid = i32::from_le_bytes(data[..4].try_into().map_err(|_| Errno::EINVAL)?);
                let uid = u32::from_le_bytes(data[4..8].try_into().map_err(|_| Errno::EINVAL)?);
                let gid = u32::from_le_bytes(data[8..].try_into().map_err(|_| Errno::EINVAL)?);
                // The ids are the sender's view (its pid and user namespaces); what
                // travels is the sandbox's (as Linux's scm_check_creds).
                let c = &task.creds;
                let ns = c.user_ns();
                let (Some(kuid), Some(kgid)) = (ns.uid_down(uid), ns.gid_down(gid)) else {
                    return Err(Errno::EINVAL);
                };
                let pid_admin = crate::kernel::ns::owner(&task.tg.pid_ns.owner);
                if pid != task.pid_shown(task.tgid) && !c.has_cap_in(pid_admin, CAP_SYS_ADMIN) {
                    return Err(Errno::EPERM);
                }
                if ![c.uid, c.euid, c.suid].contains(&kuid) && !c.has_ns_cap(CAP_SETUID) {
                    return Err(Errno::EPERM);
                }
                if ![c.gid, c.egid, c.sgid].contains(&kgid) && !c.has_ns_cap(CAP_SETGID) {
                    return Err(Errno::EPERM);
                }
                let gpid = task.pid_global(pid)?;
                anc.creds = Ucred {
                    pid: gpid,
                    uid: kuid,
                    gid: kgid,
                };
            }
            _ => return Err(Errno::EINVAL),
        }
        off += (clen + 7) & !7;
    }
    Ok(anc)
}

/// Sends the bytes of `iov` on `f`; returns the count.
fn send_iov(
    task: &mut Task,
    f: &OpenFile,
    iov: &[(u64, usize)],
    mut anc: Ancillary,
    to: Option<Target>,
    flags: i32,
) -> SysResult<u64> {
    if flags & MSG_OOB != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let s = sock_of(f)?;
    let total: usize = iov
        .iter()
        .map(|&(_, l)| l)
        .sum::<usize>()
        .min(crate::syscalls::MAX_RW_COUNT as usize);
    let nonblock = f.nonblocking() || flags & MSG_DONTWAIT != 0;
    let stream = s.kind() == Kind::Stream;
    if !stream && total > unix::BUF_SIZE {
        return Err(Errno::EMSGSIZE);
    }
    let mut sent = 0usize;
    let r = loop {
        let chunk = if stream {
            (total - sent).min(STREAM_CHUNK)
        } else {
            total
        };
        let data = gather(task, iov, sent, chunk)?;
        let mut off = 0usize;
        let step = loop {
            match s.send(&data[off..], &mut anc, to.as_ref()) {
                Ok(n) => {
                    off += n;
                    if off == data.len() || !stream {
                        break Ok(());
                    }
                }
                Err(Errno::EAGAIN) if !nonblock => {
                    let inbox = match &to {
                        Some(t) if s.kind() == Kind::Dgram => {
                            unix::target_inbox(&task.kernel.unix, t)
                        }
                        _ => unix::peer_inbox(s).ok_or(Errno::ENOTCONN),
                    };
                    let inbox = match inbox {
                        Ok(i) => i,
                        Err(e) => break Err(e),
                    };
                    let want = if stream { 1 } else { data.len() - off };
                    if let Err(e) = wait_until(task, inbox.queue(), s.timeout(true), || {
                        inbox.has_room(want)
                    }) {
                        break Err(e);
                    }
                }
                Err(e) => break Err(e),
            }
            if off > 0 && nonblock {
                // A non-blocking stream send takes what fits.
                break Ok(());
            }
        };
        sent += off;
        match step {
            Err(e) => break Err(e),
            Ok(()) if sent >= total || off < data.len() || !stream => break Ok(()),
            Ok(()) => {}
        }
    };
    match r {
        Ok(()) => Ok(sent as u64),
        Err(_) if sent > 0 => Ok(sent as u64),
        Err(Errno::EPIPE) => {
            if flags & MSG_NOSIGNAL == 0 {
                task.raise_signal(libc::SIGPIPE);
            }
            Err(Errno::EPIPE)
        }
        Err(e) => Err(e),
    }
}

/// `sendto(2)`.
pub fn sendto(task: &mut Task, a: &Args) -> SysResult<u64> {
    if let Some(f) = inet_arg(task, a[0])? {
        let to = (a[4] != 0).then_some((a[4], a[5]));
        return inet::send(task, &f, &[(a[1], a[2] as usize)], to, a[3] as i32);
    }
    if let Some(f) = netlink_arg(task, a[0])? {
        let to = (a[4] != 0).then_some((a[4], a[5]));
        return netlink::send(task, &f, &[(a[1], a[2] as usize)], to, a[3] as i32);
    }
    if let Some(f) = packet_arg(task, a[0])? {
        let to = (a[4] != 0).then_some((a[4], a[5]));
        return packet::send(task, &f, &[(a[1], a[2] as usize)], to, a[3] as i32);
    }
    let f = sock_arg(task, a[0])?;
    let to = if a[4] != 0 {
        Some(target_of(task, read_addr(task, a[4], a[5])?)?)
    } else {
        None
    };
    let iov = [(a[1], a[2] as usize)];
    let anc = Ancillary {
        rights: Vec::new(),
        creds: ucred(task),
    };
    send_iov(task, &f, &iov, anc, to, a[3] as i32)
}

/// The fields of a `struct msghdr` the calls use.
pub(super) struct MsgHdr {
    pub(super) name: u64,
    pub(super) namelen: u64,
    pub(super) iov: u64,
    pub(super) iovlen: u64,
    pub(super) control: u64,
    pub(super) controllen: u64,
}

pub(super) fn read_msghdr(task: &Task, addr: u64) -> SysResult<MsgHdr> {
    let mut b = [0u8; 56];
    io::read_exact(task.mem(), addr, &mut b)?;
    let q = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    Ok(MsgHdr {
        name: q(0),
        namelen: q(8) & 0xffff_ffff,
        iov: q(16),
        iovlen: q(24),
        control: q(32),
        controllen: q(40),
    })
}

fn do_sendmsg(task: &mut Task, fd: u64, msg: u64, flags: i32) -> SysResult<u64> {
    if let Some(f) = inet_arg(task, fd)? {
        return inet::sendmsg(task, &f, msg, flags);
    }
    if let Some(f) = netlink_arg(task, fd)? {
        return netlink::sendmsg(task, &f, msg, flags);
    }
    if let Some(f) = packet_arg(task, fd)? {
        return packet::sendmsg(task, &f, msg, flags);
    }
    let f = sock_arg(task, fd)?;
    let h = read_msghdr(task, msg)?;
    let to = if h.name != 0 && h.namelen != 0 {
        Some(target_of(task, read_addr(task, h.name, h.namelen)?)?)
    } else {
        None
    };
    let iov = read_iovecs(task, h.iov, h.iovlen)?;
    let anc = read_control(task, h.control, h.controllen)?;
    send_iov(task, &f, &iov, anc, to, flags)
}

/// `sendmsg(2)`.
pub fn sendmsg(task: &mut Task, a: &Args) -> SysResult<u64> {
    do_sendmsg(task, a[0], a[1], a[2] as i32)
}

/// `sendmmsg(2)`: each `struct mmsghdr` is a msghdr followed by its sent length.
pub fn sendmmsg(task: &mut Task, a: &Args) -> SysResult<u64> {
    let n = (a[2] as usize).min(1024);
    let mut done = 0usize;
    for i in 0..n {
        let at = a[1] + (i as u64) * 64;
        match do_sendmsg(task, a[0], at, a[3] as i32) {
            Ok(len) => {
                io::write_u32(task.mem(), at + 56, len as u32)?;
                done += 1;
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done as u64)
}

/// What a receive delivered, for the caller to copy out.
struct Got {
    len: usize,
    full_len: usize,
    data: Vec<u8>,
    from: Name,
    rights: Vec<Arc<OpenFile>>,
    creds: Option<Ucred>,
}

fn recv_from(task: &Task, f: &OpenFile, len: usize, flags: i32) -> SysResult<Got> {
    if flags & MSG_OOB != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let s = sock_of(f)?;
    let nonblock = f.nonblocking() || flags & MSG_DONTWAIT != 0;
    let peek = flags & MSG_PEEK != 0;
    let waitall = flags & MSG_WAITALL != 0 && s.kind() == Kind::Stream && !peek;
    let mut got = Got {
        len: 0,
        full_len: 0,
        data: Vec::new(),
        from: Name::default(),
        rights: Vec::new(),
        creds: None,
    };
    loop {
        match s.recv(len - got.data.len(), peek) {
            Ok(r) => {
                let eof = r.data.is_empty() && r.full_len == 0;
                let with_rights = !r.rights.is_empty();
                got.full_len += r.full_len;
                got.data.extend_from_slice(&r.data);
                got.rights.extend(r.rights);
                got.from = r.from;
                if got.creds.is_none() {
                    got.creds = r.creds;
                }
                if !waitall || eof || with_rights || got.data.len() >= len {
                    break;
                }
            }
            Err(Errno::EAGAIN) if !nonblock => {
                let q = f.imp().wait_queue().ok_or(Errno::EINVAL)?;
                let r = wait_until(task, q, s.timeout(false), || {
                    f.imp().readiness() & (libc::POLLIN | libc::POLLERR) as u32 != 0
                });
                if let Err(e) = r {
                    if got.data.is_empty() {
                        return Err(e);
                    }
                    break;
                }
            }
            Err(e) if got.data.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    got.len = got.data.len();
    Ok(got)
}

/// `recvfrom(2)`.
pub fn recvfrom(task: &mut Task, a: &Args) -> SysResult<u64> {
    if let Some(f) = inet_arg(task, a[0])? {
        return inet::recvfrom(task, &f, a);
    }
    if let Some(f) = netlink_arg(task, a[0])? {
        return netlink::recvfrom(task, &f, a);
    }
    if let Some(f) = packet_arg(task, a[0])? {
        return packet::recvfrom(task, &f, a);
    }
    let f = sock_arg(task, a[0])?;
    let flags = a[3] as i32;
    let len = (a[2] as usize).min(crate::syscalls::MAX_RW_COUNT as usize);
    let got = recv_from(task, &f, len, flags)?;
    io::write_all(task.mem(), a[1], &got.data)?;
    write_addr(task, a[4], a[5], &got.from)?;
    Ok(if flags & MSG_TRUNC != 0 {
        got.full_len
    } else {
        got.len
    } as u64)
}

fn do_recvmsg(task: &mut Task, fd: u64, msg: u64, flags: i32) -> SysResult<u64> {
    if let Some(f) = inet_arg(task, fd)? {
        return inet::recvmsg(task, &f, msg, flags);
    }
    if let Some(f) = netlink_arg(task, fd)? {
        return netlink::recvmsg(task, &f, msg, flags);
    }
    if let Some(f) = packet_arg(task, fd)? {
        return packet::recvmsg(task, &f, msg, flags);
    }
    let f = sock_arg(task, fd)?;
    let h = read_msghdr(task, msg)?;
    let iov = read_iovecs(task, h.iov, h.iovlen)?;
    let len: usize = iov.iter().map(|&(_, l)| l).sum();
    let got = recv_from(task, &f, len, flags)?;
    scatter(task, &iov, &got.data)?;
    let mut out_flags = 0;
    if got.full_len > got.len && sock_of(&f)?.kind() != Kind::Stream {
        out_flags |= MSG_TRUNC;
    }
    // Control messages: credentials first, then files, as Linux orders them.
    let mut ctl = Vec::new();
    let room = h.controllen as usize;
    if let Some(c) = got.creds {
        if room >= ctl.len() + 28 {
            ctl.extend_from_slice(&28u64.to_le_bytes());
            ctl.extend_from_slice(&libc::SOL_SOCKET.to_le_bytes());
            ctl.extend_from_slice(&SCM_CREDENTIALS.to_le_bytes());
            let c = seen_by(task, c);
            ctl.extend_from_slice(&c.pid.to_le_bytes());
            ctl.extend_from_slice(&c.uid.to_le_bytes());
            ctl.extend_from_slice(&c.gid.to_le_bytes());
            ctl.resize(ctl.len() + 4, 0);
        } else {
            out_flags |= MSG_CTRUNC;
        }
    }
    if !got.rights.is_empty() {
        let avail = room.saturating_sub(ctl.len() + 16) / 4;
        let n = got.rights.len().min(avail);
        if n < got.rights.len() {
            out_flags |= MSG_CTRUNC;
        }
        if n > 0 {
            let cloexec = flags & MSG_CMSG_CLOEXEC != 0;
            let mut fds = Vec::with_capacity(n);
            for file in got.rights.iter().take(n) {
                match install_file(task, file.clone(), cloexec) {
                    Ok(fd) => fds.push(fd),
                    Err(_) => {
                        out_flags |= MSG_CTRUNC;
                        break;
                    }
                }
            }
            let clen = 16 + 4 * fds.len();
            ctl.extend_from_slice(&(clen as u64).to_le_bytes());
            ctl.extend_from_slice(&libc::SOL_SOCKET.to_le_bytes());
            ctl.extend_from_slice(&SCM_RIGHTS.to_le_bytes());
            for fd in &fds {
                ctl.extend_from_slice(&fd.to_le_bytes());
            }
        }
    }
    let ctl_len = ctl.len().min(room);
    if ctl_len > 0 {
        io::write_all(task.mem(), h.control, &ctl[..ctl_len])?;
    }
    io::write_u64(task.mem(), msg + 40, ctl_len as u64)?;
    io::write_u32(task.mem(), msg + 48, out_flags as u32)?;
    if h.name != 0 {
        // msg_namelen (offset 8) holds the room; write_addr stores the full length.
        write_addr(task, h.name, msg + 8, &got.from)?;
    }
    Ok(if flags & MSG_TRUNC != 0 {
        got.full_len
    } else {
        got.len
    } as u64)
}

/// `recvmsg(2)`.
pub fn recvmsg(task: &mut Task, a: &Args) -> SysResult<u64> {
    do_recvmsg(task, a[0], a[1], a[2] as i32)
}

/// `recvmmsg(2)`: the timeout argument is honoured only between messages.
pub fn recvmmsg(task: &mut Task, a: &Args) -> SysResult<u64> {
    // The timeout is read and checked before anything else, as Linux does (an
    // invalid one once left the call blocking).
    if a[4] != 0 {
        let ts: libc::timespec = io::read_struct(task.mem(), a[4])?;
        if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
            return Err(Errno::EINVAL);
        }
    }
    let n = (a[2] as usize).min(1024);
    let mut done = 0usize;
    let mut flags = a[3] as i32;
    for i in 0..n {
        let at = a[1] + (i as u64) * 64;
        match do_recvmsg(task, a[0], at, flags) {
            Ok(len) => {
                io::write_u32(task.mem(), at + 56, len as u32)?;
                done += 1;
                // MSG_WAITFORONE: block for the first message only.
                if flags & 0x10000 != 0 {
                    flags |= MSG_DONTWAIT;
                }
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done as u64)
}

fn read_int_opt(task: &Task, addr: u64, len: u64) -> SysResult<i32> {
    if len < 4 {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 4];
    io::read_exact(task.mem(), addr, &mut b)?;
    Ok(i32::from_le_bytes(b))
}

fn read_timeval_opt(task: &Task, addr: u64, len: u64) -> SysResult<Option<Duration>> {
    if len < 16 {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 16];
    io::read_exact(task.mem(), addr, &mut b)?;
    let sec = i64::from_le_bytes(b[..8].try_into().map_err(|_| Errno::EINVAL)?);
    let usec = i64::from_le_bytes(b[8..].try_into().map_err(|_| Errno::EINVAL)?);
    if !(0..1_000_000).contains(&usec) {
        return Err(Errno::EDOM);
    }
    if sec < 0 || (sec == 0 && usec == 0) {
        return Ok(None);
    }
    Ok(Some(Duration::new(sec as u64, usec as u32 * 1000)))
}

/// `setsockopt(2)` at `SOL_SOCKET`.
pub fn setsockopt(task: &mut Task, a: &Args) -> SysResult<u64> {
    if let Some(f) = inet_arg(task, a[0])? {
        return inet::setsockopt(task, &f, a);
    }
    if let Some(f) = netlink_arg(task, a[0])? {
        return netlink::setsockopt(task, &f, a);
    }
    if let Some(f) = packet_arg(task, a[0])? {
        return packet::setsockopt(task, &f, a);
    }
    let f = sock_arg(task, a[0])?;
    let s = sock_of(&f)?;
    if a[1] as i32 != libc::SOL_SOCKET {
        return Err(Errno::EOPNOTSUPP);
    }
    match a[2] as i32 {
        libc::SO_PASSCRED => s.set_passcred(read_int_opt(task, a[3], a[4])? != 0)?,
        libc::SO_SNDBUF | libc::SO_SNDBUFFORCE => {
            s.set_buf(true, read_int_opt(task, a[3], a[4])?)?
        }
        libc::SO_RCVBUF | libc::SO_RCVBUFFORCE => {
            s.set_buf(false, read_int_opt(task, a[3], a[4])?)?
        }
        libc::SO_RCVTIMEO => s.set_timeout(false, read_timeval_opt(task, a[3], a[4])?)?,
        libc::SO_SNDTIMEO => s.set_timeout(true, read_timeval_opt(task, a[3], a[4])?)?,
        // Accepted and without effect on a Unix socket, as on Linux.
        libc::SO_REUSEADDR | libc::SO_KEEPALIVE | libc::SO_LINGER | libc::SO_BROADCAST => {
            if a[4] < 4 {
                return Err(Errno::EINVAL);
            }
        }
        _ => return Err(Errno::ENOPROTOOPT),
    }
    Ok(0)
}

/// `getsockopt(2)` at `SOL_SOCKET`.
pub fn getsockopt(task: &mut Task, a: &Args) -> SysResult<u64> {
    if let Some(f) = inet_arg(task, a[0])? {
        return inet::getsockopt(task, &f, a);
    }
    if let Some(f) = netlink_arg(task, a[0])? {
        return netlink::getsockopt(task, &f, a);
    }
    if let Some(f) = packet_arg(task, a[0])? {
        return packet::getsockopt(task, &f, a);
    }
    let f = sock_arg(task, a[0])?;
    let s = sock_of(&f)?;
    if a[1] as i32 != libc::SOL_SOCKET {
        return Err(Errno::EOPNOTSUPP);
    }
    let int = |v: i32| v.to_le_bytes().to_vec();
    let val: Vec<u8> = match a[2] as i32 {
        libc::SO_TYPE => int(s.kind().linux()),
        libc::SO_DOMAIN => int(libc::AF_UNIX),
        libc::SO_PROTOCOL => int(0),
        libc::SO_ERROR => int(0),
        libc::SO_ACCEPTCONN => int(s.is_listening() as i32),
        libc::SO_PASSCRED => int(s.passcred() as i32),
        libc::SO_SNDBUF => int(s.buf(true) as i32),
        libc::SO_RCVBUF => int(s.buf(false) as i32),
        libc::SO_REUSEADDR | libc::SO_KEEPALIVE | libc::SO_BROADCAST => int(0),
        libc::SO_LINGER => vec![0u8; 8],
        libc::SO_PEERCRED => {
            let c = seen_by(task, s.peer_cred()?);
            let mut v = c.pid.to_le_bytes().to_vec();
            v.extend_from_slice(&c.uid.to_le_bytes());
            v.extend_from_slice(&c.gid.to_le_bytes());
            v
        }
        o @ (libc::SO_RCVTIMEO | libc::SO_SNDTIMEO) => {
            let t = s.timeout(o == libc::SO_SNDTIMEO).unwrap_or_default();
            let mut v = (t.as_secs() as i64).to_le_bytes().to_vec();
            v.extend_from_slice(&(t.subsec_micros() as i64).to_le_bytes());
            v
        }
        _ => return Err(Errno::ENOPROTOOPT),
    };
    let mut lb = [0u8; 4];
    io::read_exact(task.mem(), a[4], &mut lb)?;
    let room = i32::from_le_bytes(lb);
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let n = val.len().min(room as usize);
    io::write_all(task.mem(), a[3], &val[..n])?;
    io::write_u32(task.mem(), a[4], n as u32)?;
    Ok(0)
}
