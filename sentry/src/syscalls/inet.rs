//! The socket calls for `AF_INET` and `AF_INET6` sockets (see [`crate::net`]).
//! `syscalls/socket.rs` sends every call on such a socket here.

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::kernel::Task;
use crate::mm::io;
use crate::net::addr::{self, Family, Parsed, SockAddr};
use crate::net::cmsg::{self, Cmsg, Tx};
use crate::net::file::InetSocket;
use crate::net::icmp::{self, IcmpInner, Kind};
use crate::net::tcp::{Connected, TcpInner};
use crate::net::udp::UdpInner;
use crate::syscalls::fs::read_iovecs;
use crate::syscalls::hostsock;
use crate::syscalls::pipe::install_file;
use crate::syscalls::sockaddr::{get_sockaddr, put_sockaddr};
use crate::syscalls::socket::{gather, read_msghdr, scatter, wait_until};
use crate::syscalls::Args;
use crate::vfs::OpenFile;

const MSG_OOB: i32 = 0x1;
const MSG_PEEK: i32 = 0x2;
const MSG_CTRUNC: i32 = 0x8;
/// The most control data `sendmsg` takes (Linux's `net.core.optmem_max`).
const OPTMEM_MAX: u64 = 20_480;
const MSG_TRUNC: i32 = 0x20;
const MSG_DONTWAIT: i32 = 0x40;
const MSG_WAITALL: i32 = 0x100;
const MSG_NOSIGNAL: i32 = 0x4000;
const MSG_ERRQUEUE: i32 = 0x2000;
use crate::kernel::creds::{may_open_raw, CAP_NET_BIND_SERVICE};
/// `net.ipv4.ip_unprivileged_port_start`.
const UNPRIVILEGED_PORT_START: u16 = 1024;
/// How much of a stream send is gathered from the application at a time.
const STREAM_CHUNK: usize = 256 * 1024;

/// The internet socket behind an open file, if it is one.
pub fn inet_of(file: &OpenFile) -> Option<&InetSocket> {
    file.imp()
        .as_any()
        .and_then(|a| a.downcast_ref::<InetSocket>())
}

/// `socket(2)` for `AF_INET`/`AF_INET6`; `ty` without the flags.
pub fn socket(task: &mut Task, domain: i32, ty: i32, protocol: i32, flags: i32) -> SysResult<u64> {
    // A network namespace made inside the sandbox has its own stack, even in host
    // mode.
    if hostsock::enabled() && !task.ns.net.stack.is_namespaced() {
        return hostsock::socket(task, domain, ty, protocol, flags);
    }
    let family = if domain == libc::AF_INET {
        Family::V4
    } else {
        Family::V6
    };
    let uid = task.creds.euid;
    let net = task.ns.net.stack.clone();
    let icmp_proto = match family {
        Family::V4 => libc::IPPROTO_ICMP,
        Family::V6 => libc::IPPROTO_ICMPV6,
    };
    let sock = match ty {
        libc::SOCK_STREAM if protocol == 0 || protocol == libc::IPPROTO_TCP => {
            InetSocket::Tcp(TcpInner::new(&net, family, uid))
        }
        libc::SOCK_DGRAM if protocol == 0 || protocol == libc::IPPROTO_UDP => {
            InetSocket::Udp(UdpInner::new(&net, family, uid))
        }
        libc::SOCK_DGRAM if protocol == libc::IPPROTO_UDPLITE => {
            InetSocket::Udp(UdpInner::new_lite(&net, family, uid))
        }
        // Ping sockets: for the groups in `net.ipv4.ping_group_range` (Linux's
        // default "1 0" is nobody).
        libc::SOCK_DGRAM if protocol == icmp_proto => {
            if !icmp::ping_allowed(&net, task.creds.egid, &task.creds.groups) {
                return Err(Errno::EACCES);
            }
            InetSocket::Icmp(IcmpInner::new(&net, family, Kind::Ping, uid))
        }
        libc::SOCK_RAW => {
            if !may_open_raw(&task.creds) {
                return Err(Errno::EPERM);
            }
            if !(0..=255).contains(&protocol) {
                return Err(Errno::EINVAL);
            }
            let raw_ok = protocol == icmp_proto
                || (family == Family::V4 && protocol == icmp::PROTO_RAW as i32);
            if !raw_ok {
                // Raw TCP, UDP and other protocols would need those protocols'
                // packets copied out of the in-memory paths: not built.
                tracing::warn!(
                    protocol,
                    "raw internet sockets of this protocol are not implemented: EPROTONOSUPPORT"
                );
                return Err(Errno::EPROTONOSUPPORT);
            }
            InetSocket::Icmp(IcmpInner::new(&net, family, Kind::Raw(protocol as u8), uid))
        }
        libc::SOCK_STREAM | libc::SOCK_DGRAM => return Err(Errno::EPROTONOSUPPORT),
        _ => return Err(Errno::ESOCKTNOSUPPORT),
    };
    let file = OpenFile::new(
        Box::new(sock),
        None,
        libc::O_RDWR | (flags & libc::O_NONBLOCK),
    );
    Ok(install_file(task, file, flags & libc::O_CLOEXEC != 0)? as u64)
}

fn read_sockaddr(task: &Task, family: Family, addr: u64, len: u64) -> SysResult<Parsed> {
    addr::parse(family, &get_sockaddr(task, addr, len)?)
}

/// Writes `a` as a `sockaddr` of `family` at `addr`, cut to the room at `len_addr`,
/// and stores its full length there (as Linux does).
fn write_sockaddr(
    task: &Task,
    addr: u64,
    len_addr: u64,
    family: Family,
    a: Option<SockAddr>,
) -> SysResult<()> {
    let out = a.map(|a| addr::encode(family, a)).unwrap_or_default();
    put_sockaddr(task, addr, len_addr, &out, out.len())
}

/// `bind(2)`.
pub fn bind(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    if let Some(h) = hostsock::of(f) {
        return hostsock::bind(task, h, a);
    }
    let s = inet_of(f).ok_or(Errno::ENOTSOCK)?;
    let sa = match read_sockaddr(task, s.family(), a[1], a[2])? {
        Parsed::Inet(sa) => sa,
        Parsed::Unspec { zero: true } if s.family() == Family::V4 => {
            let mut lb = [0u8; 2];
            io::read_exact(task.mem(), a[1] + 2, &mut lb)?;
            SockAddr::new(Family::V4.any(), u16::from_be_bytes(lb))
        }
        Parsed::Unspec { .. } => return Err(Errno::EAFNOSUPPORT),
    };
    if sa.port != 0
        && sa.port < UNPRIVILEGED_PORT_START
        && !task.creds.has_cap(CAP_NET_BIND_SERVICE)
    {
        return Err(Errno::EACCES);
    }
    match s {
        InetSocket::Tcp(t) => t.bind(sa)?,
        InetSocket::Udp(u) => u.bind(sa)?,
        InetSocket::Icmp(i) => i.bind(sa)?,
    }
    Ok(0)
}

/// `listen(2)`.
pub fn listen(_task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    if let Some(h) = hostsock::of(f) {
        return hostsock::listen(h, a);
    }
    match inet_of(f).ok_or(Errno::ENOTSOCK)? {
        InetSocket::Tcp(t) => t.listen(a[1] as i32)?,
        InetSocket::Udp(_) | InetSocket::Icmp(_) => return Err(Errno::EOPNOTSUPP),
    }
    Ok(0)
}

/// `connect(2)`.
pub fn connect(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    if let Some(h) = hostsock::of(f) {
        return hostsock::connect(task, f, h, a);
    }
    let s = inet_of(f).ok_or(Errno::ENOTSOCK)?;
    let parsed = read_sockaddr(task, s.family(), a[1], a[2])?;
    match (s, parsed) {
        (InetSocket::Udp(u), Parsed::Unspec { .. }) => u.disconnect()?,
        (InetSocket::Tcp(_), Parsed::Unspec { .. }) => return Err(Errno::EAFNOSUPPORT),
        (InetSocket::Udp(u), Parsed::Inet(sa)) => u.connect(sa)?,
        (InetSocket::Icmp(i), Parsed::Unspec { .. }) => i.disconnect()?,
        (InetSocket::Icmp(i), Parsed::Inet(sa)) => i.connect(sa)?,
        (InetSocket::Tcp(t), Parsed::Inet(sa)) => match t.connect(sa, f.nonblocking())? {
            Connected::Now => {}
            Connected::InProgress => return Err(Errno::EINPROGRESS),
            Connected::Pending => {
                // A handshake through the pod's interface: wait for its outcome
                // (SO_SNDTIMEO bounds the wait; then EINPROGRESS, as Linux).
                match wait_until(task, t.queue(), t.timeout(true), || t.connect_settled()) {
                    Ok(()) => {}
                    Err(Errno::EAGAIN) => return Err(Errno::EINPROGRESS),
                    Err(e) => return Err(e),
                }
                match t.connect(sa, false)? {
                    Connected::Now => {}
                    _ => return Err(Errno::EINPROGRESS),
                }
            }
        },
    }
    Ok(0)
}

/// `accept4(2)` (and `accept` with no flags).
pub fn accept(task: &mut Task, f: &OpenFile, a: &Args, flags: i32) -> SysResult<u64> {
    if let Some(h) = hostsock::of(f) {
        return hostsock::accept(task, f, h, a, flags);
    }
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let t = match inet_of(f).ok_or(Errno::ENOTSOCK)? {
        InetSocket::Tcp(t) => t.clone(),
        InetSocket::Udp(_) | InetSocket::Icmp(_) => return Err(Errno::EOPNOTSUPP),
    };
    let conn = loop {
        match t.accept() {
            Err(Errno::EAGAIN) if !f.nonblocking() => {
                wait_until(task, t.queue(), t.timeout(false), || {
                    t.readiness() & libc::POLLIN as u32 != 0 || !t.is_listening()
                })?;
            }
            r => break r?,
        }
    };
    let peer = conn.peer().ok();
    let family = conn.family();
    let file = OpenFile::new(
        Box::new(InetSocket::Tcp(conn)),
        None,
        libc::O_RDWR | (flags & libc::O_NONBLOCK),
    );
    let fd = install_file(task, file, flags & libc::O_CLOEXEC != 0)?;
    if a[1] != 0 {
        if let Err(e) = write_sockaddr(task, a[1], a[2], family, peer) {
            drop(task.fds()?.remove(fd));
            return Err(e);
        }
    }
    Ok(fd as u64)
}

/// `getsockname(2)`.
pub fn getsockname(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    if let Some(h) = hostsock::of(f) {
        return hostsock::name(task, h, a, false);
    }
    let s = inet_of(f).ok_or(Errno::ENOTSOCK)?;
    let local = match s {
        InetSocket::Tcp(t) => t.local(),
        InetSocket::Udp(u) => u.local(),
        InetSocket::Icmp(i) => i.local(),
    };
    write_sockaddr(task, a[1], a[2], s.family(), Some(local))?;
    Ok(0)
}

/// `getpeername(2)`.
pub fn getpeername(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    if let Some(h) = hostsock::of(f) {
        return hostsock::name(task, h, a, true);
    }
    let s = inet_of(f).ok_or(Errno::ENOTSOCK)?;
    let peer = match s {
        InetSocket::Tcp(t) => t.peer()?,
        InetSocket::Udp(u) => u.peer()?,
        InetSocket::Icmp(i) => i.peer()?,
    };
    write_sockaddr(task, a[1], a[2], s.family(), Some(peer))?;
    Ok(0)
}

/// `shutdown(2)`.
pub fn shutdown(_task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    if let Some(h) = hostsock::of(f) {
        return hostsock::shutdown(h, a);
    }
    let how = a[1] as i32;
    if !(libc::SHUT_RD..=libc::SHUT_RDWR).contains(&how) {
        return Err(Errno::EINVAL);
    }
    match inet_of(f).ok_or(Errno::ENOTSOCK)? {
        InetSocket::Tcp(t) => t.shutdown(how)?,
        InetSocket::Udp(u) => u.shutdown(how)?,
        InetSocket::Icmp(i) => i.shutdown(how)?,
    }
    Ok(0)
}

/// Sends the bytes of `iov` on `f`; `to` is a datagram's destination.
pub fn send(
    task: &mut Task,
    f: &OpenFile,
    iov: &[(u64, usize)],
    to: Option<(u64, u64)>,
    flags: i32,
) -> SysResult<u64> {
    if let Some(h) = hostsock::of(f) {
        return hostsock::send(task, f, h, iov, to, flags);
    }
    send_tx(task, f, iov, to, flags, &[])
}

/// [`send`] with `sendmsg`'s control messages (only UDP uses them).
fn send_tx(
    task: &mut Task,
    f: &OpenFile,
    iov: &[(u64, usize)],
    to: Option<(u64, u64)>,
    flags: i32,
    control: &[Cmsg],
) -> SysResult<u64> {
    let s = inet_of(f).ok_or(Errno::ENOTSOCK)?;
    let total: usize = iov
        .iter()
        .map(|&(_, l)| l)
        .sum::<usize>()
        .min(crate::syscalls::MAX_RW_COUNT as usize);
    let nonblock = f.nonblocking() || flags & MSG_DONTWAIT != 0;
    let r = match s {
        InetSocket::Udp(u) => {
            let dst = match to {
                Some((addr, len)) => match read_sockaddr(task, u.family(), addr, len)? {
                    Parsed::Inet(sa) => Some(sa),
                    Parsed::Unspec { .. } => None,
                },
                None => None,
            };
            if total > crate::net::udp::MAX_V6 {
                return Err(Errno::EMSGSIZE);
            }
            let v6 = match dst {
                Some(d) => addr::canonical(d.ip).is_ipv6(),
                None => u.family() == Family::V6,
            };
            let tx = Tx::of(control, v6)?;
            let data = gather(task, iov, 0, total)?;
            u.send_tx(&data, dst, tx).map(|n| n as u64)
        }
        InetSocket::Icmp(i) => {
            let dst = match to {
                Some((addr, len)) => match read_sockaddr(task, i.family(), addr, len)? {
                    Parsed::Inet(sa) => Some(sa),
                    Parsed::Unspec { .. } => None,
                },
                None => None,
            };
            if total > 0xffff {
                return Err(Errno::EMSGSIZE);
            }
            let data = gather(task, iov, 0, total)?;
            i.send(&data, dst).map(|n| n as u64)
        }
        InetSocket::Tcp(t) => {
            if flags & MSG_OOB != 0 {
                tracing::debug!("TCP urgent data is not supported: EOPNOTSUPP");
                return Err(Errno::EOPNOTSUPP);
            }
            send_stream(task, t, iov, total, nonblock)
        }
    };
    if r == Err(Errno::EPIPE) && flags & MSG_NOSIGNAL == 0 {
        task.raise_signal(libc::SIGPIPE);
    }
    r
}

fn send_stream(
    task: &Task,
    t: &Arc<TcpInner>,
    iov: &[(u64, usize)],
    total: usize,
    nonblock: bool,
) -> SysResult<u64> {
    let mut sent = 0usize;
    if total == 0 {
        return t.send(&[]).map(|_| 0);
    }
    while sent < total {
        let data = gather(task, iov, sent, (total - sent).min(STREAM_CHUNK))?;
        let mut off = 0usize;
        while off < data.len() {
            match t.send(&data[off..]) {
                Ok(n) => off += n,
                Err(Errno::EAGAIN) if !nonblock => {
                    let r = wait_until(task, t.queue(), t.timeout(true), || {
                        t.readiness() & (libc::POLLOUT | libc::POLLERR) as u32 != 0
                    });
                    if let Err(e) = r {
                        sent += off;
                        return if sent > 0 { Ok(sent as u64) } else { Err(e) };
                    }
                }
                Err(e) => {
                    sent += off;
                    return if sent > 0 { Ok(sent as u64) } else { Err(e) };
                }
            }
            if nonblock && off < data.len() {
                // A non-blocking send takes what fits.
                let _ = t.readiness();
                sent += off;
                return if sent > 0 {
                    Ok(sent as u64)
                } else {
                    Err(Errno::EAGAIN)
                };
            }
        }
        sent += off;
    }
    Ok(sent as u64)
}

/// What a receive delivered.
pub struct Got {
    /// The bytes (fewer than asked for with `MSG_TRUNC` on a stream: none kept).
    pub data: Vec<u8>,
    /// The count to return.
    pub ret: usize,
    /// The datagram was longer than the buffer.
    pub truncated: bool,
    /// The sender (datagrams).
    pub from: Option<SockAddr>,
    /// The control messages for `recvmsg`.
    pub cmsgs: Vec<Cmsg>,
    /// It came from the error queue (`MSG_ERRQUEUE` in `msg_flags`).
    pub errqueue: bool,
}

/// Receives up to `len` bytes from `f`.
pub fn recv(task: &Task, f: &OpenFile, len: usize, flags: i32) -> SysResult<Got> {
    let s = inet_of(f).ok_or(Errno::ENOTSOCK)?;
    let nonblock = f.nonblocking() || flags & MSG_DONTWAIT != 0;
    let peek = flags & MSG_PEEK != 0;
    if flags & MSG_ERRQUEUE != 0 {
        // The error queue never waits; only UDP fills one (`IP_RECVERR`).
        let InetSocket::Udp(u) = s else {
            return Err(Errno::EAGAIN);
        };
        let r = u.recv_err(len)?;
        // Linux's ip_recv_error returns what it copied even under MSG_TRUNC.
        return Ok(Got {
            ret: r.data.len(),
            truncated: r.full_len > r.data.len(),
            data: r.data,
            from: Some(r.from),
            cmsgs: r.cmsgs,
            errqueue: true,
        });
    }
    match s {
        InetSocket::Udp(u) => {
            let r = loop {
                match u.recv(len, peek) {
                    Err(Errno::EAGAIN) if !nonblock => {
                        wait_until(task, u.queue(), u.timeout(false), || {
                            u.readiness() & (libc::POLLIN | libc::POLLERR) as u32 != 0
                        })?;
                    }
                    r => break r?,
                }
            };
            let truncated = r.full_len > r.data.len();
            Ok(Got {
                ret: if flags & MSG_TRUNC != 0 {
                    r.full_len
                } else {
                    r.data.len()
                },
                data: r.data,
                truncated,
                from: Some(r.from),
                cmsgs: r.cmsgs,
                errqueue: false,
            })
        }
        InetSocket::Icmp(i) => {
            let r = loop {
                match i.recv(len, peek) {
                    Err(Errno::EAGAIN) if !nonblock => {
                        wait_until(task, i.queue(), i.timeout(false), || {
                            i.readiness() & (libc::POLLIN | libc::POLLERR) as u32 != 0
                        })?;
                    }
                    r => break r?,
                }
            };
            let truncated = r.full_len > r.data.len();
            Ok(Got {
                ret: if flags & MSG_TRUNC != 0 {
                    r.full_len
                } else {
                    r.data.len()
                },
                data: r.data,
                truncated,
                from: Some(r.from),
                cmsgs: Vec::new(),
                errqueue: false,
            })
        }
        InetSocket::Tcp(t) => {
            if flags & MSG_OOB != 0 {
                return Err(Errno::EINVAL);
            }
            let waitall = flags & MSG_WAITALL != 0 && !peek;
            let mut data = Vec::new();
            loop {
                match t.recv(len - data.len(), peek) {
                    Ok(d) => {
                        let eof = d.is_empty();
                        data.extend_from_slice(&d);
                        if !waitall || eof || data.len() >= len {
                            break;
                        }
                    }
                    Err(Errno::EAGAIN) if !nonblock => {
                        let r = wait_until(task, t.queue(), t.timeout(false), || {
                            t.readiness() & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) as u32
                                != 0
                        });
                        if let Err(e) = r {
                            if data.is_empty() {
                                return Err(e);
                            }
                            break;
                        }
                    }
                    Err(e) if data.is_empty() => return Err(e),
                    Err(_) => break,
                }
            }
            let ret = data.len();
            if flags & MSG_TRUNC != 0 {
                // TCP's MSG_TRUNC discards what it reads.
                data.clear();
            }
            Ok(Got {
                data,
                ret,
                truncated: false,
                from: None,
                cmsgs: Vec::new(),
                errqueue: false,
            })
        }
    }
}

/// `recvfrom(2)`.
pub fn recvfrom(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    if let Some(h) = hostsock::of(f) {
        return hostsock::recvfrom(task, f, h, a);
    }
    let len = (a[2] as usize).min(crate::syscalls::MAX_RW_COUNT as usize);
    let family = inet_of(f).ok_or(Errno::ENOTSOCK)?.family();
    let got = recv(task, f, len, a[3] as i32)?;
    io::write_all(task.mem(), a[1], &got.data)?;
    if a[4] != 0 {
        write_sockaddr(task, a[4], a[5], family, got.from)?;
    }
    Ok(got.ret as u64)
}

/// `recvmsg(2)` of one message (`msg` is the `struct msghdr`).
pub fn recvmsg(task: &mut Task, f: &OpenFile, msg: u64, flags: i32) -> SysResult<u64> {
    if let Some(h) = hostsock::of(f) {
        return hostsock::recvmsg(task, f, h, msg, flags);
    }
    let family = inet_of(f).ok_or(Errno::ENOTSOCK)?.family();
    let h = read_msghdr(task, msg)?;
    let iov = read_iovecs(task, h.iov, h.iovlen)?;
    let len: usize = iov.iter().map(|&(_, l)| l).sum();
    let got = recv(task, f, len, flags)?;
    scatter(task, &iov, &got.data)?;
    let mut out_flags = if got.truncated { MSG_TRUNC } else { 0 };
    if got.errqueue {
        out_flags |= MSG_ERRQUEUE;
    }
    let room = if h.control == 0 { 0 } else { h.controllen };
    let (control, cut) = cmsg::encode(&got.cmsgs, room.min(usize::MAX as u64) as usize);
    if cut {
        out_flags |= MSG_CTRUNC;
    }
    io::write_all(task.mem(), h.control, &control)?;
    io::write_u64(task.mem(), msg + 40, control.len() as u64)?;
    io::write_u32(task.mem(), msg + 48, out_flags as u32)?;
    if h.name != 0 {
        // msg_namelen (offset 8) holds the room; the full length is stored.
        write_sockaddr(task, h.name, msg + 8, family, got.from)?;
    } else {
        io::write_u32(task.mem(), msg + 8, 0)?;
    }
    Ok(got.ret as u64)
}

/// `sendmsg(2)` of one message.
pub fn sendmsg(task: &mut Task, f: &OpenFile, msg: u64, flags: i32) -> SysResult<u64> {
    if let Some(h) = hostsock::of(f) {
        return hostsock::sendmsg(task, f, h, msg, flags);
    }
    let h = read_msghdr(task, msg)?;
    let to = (h.name != 0 && h.namelen != 0).then_some((h.name, h.namelen));
    let iov = read_iovecs(task, h.iov, h.iovlen)?;
    if h.controllen > OPTMEM_MAX {
        return Err(Errno::ENOBUFS);
    }
    let mut control = vec![0u8; h.controllen as usize];
    io::read_exact(task.mem(), h.control, &mut control)?;
    let control = cmsg::parse(&control)?;
    send_tx(task, f, &iov, to, flags, &control)
}

/// `setsockopt(2)`.
pub fn setsockopt(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    if let Some(h) = hostsock::of(f) {
        return hostsock::setsockopt(task, h, a);
    }
    let s = inet_of(f).ok_or(Errno::ENOTSOCK)?;
    let (level, name) = (a[1] as i32, a[2] as i32);
    let len = a[4] as i32;
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    if level == libc::SOL_SOCKET && len < 4 && name != libc::SO_BINDTODEVICE {
        return Err(Errno::EINVAL);
    }
    let mut v = vec![0u8; (len as usize).min(256)];
    io::read_exact(task.mem(), a[3], &mut v)?;
    match s {
        InetSocket::Tcp(t) => t.setsockopt(level, name, &v)?,
        InetSocket::Udp(u) => u.setsockopt(level, name, &v)?,
        InetSocket::Icmp(i) => i.setsockopt(level, name, &v)?,
    }
    Ok(0)
}

/// `getsockopt(2)`.
pub fn getsockopt(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    if let Some(h) = hostsock::of(f) {
        return hostsock::getsockopt(task, h, a);
    }
    let s = inet_of(f).ok_or(Errno::ENOTSOCK)?;
    let (level, name) = (a[1] as i32, a[2] as i32);
    let mut lb = [0u8; 4];
    io::read_exact(task.mem(), a[4], &mut lb)?;
    let room = i32::from_le_bytes(lb);
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let int = |v: i32| v.to_le_bytes().to_vec();
    let val = match (level, name) {
        (libc::SOL_SOCKET, libc::SO_TYPE) => int(s.sock_type()),
        (libc::SOL_SOCKET, libc::SO_DOMAIN) => int(s.family().linux()),
        (libc::SOL_SOCKET, libc::SO_PROTOCOL) => int(s.protocol()),
        _ => match s {
            InetSocket::Tcp(t) => t.getsockopt(level, name)?,
            InetSocket::Udp(u) => u.getsockopt(level, name)?,
            InetSocket::Icmp(i) => i.getsockopt(level, name)?,
        },
    };
    let n = val.len().min(room as usize);
    io::write_all(task.mem(), a[3], &val[..n])?;
    io::write_u32(task.mem(), a[4], n as u32)?;
    Ok(0)
}
