//! The socket calls on the host sockets of `--network=host` (see
//! [`crate::net::host`]). `syscalls/inet.rs` sends every call on such a socket
//! here. Each call checks what the program asks (address family, the metadata
//! server, the option) before the host call, which never blocks: a call that would
//! block waits in the sentry on the socket's queue.

use std::sync::Arc;
use std::time::Duration;

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::CAP_NET_BIND_SERVICE;
use crate::kernel::Task;
use crate::mm::io;
use crate::net::addr::Family;
use crate::net::host::{self, HostSocket, HostSocketFile};
use crate::sys::confine::host_sockopt_allowed;
use crate::sys::hostnet;
use crate::syscalls::fs::read_iovecs;
use crate::syscalls::pipe::install_file;
use crate::syscalls::sockaddr::{get_sockaddr, put_sockaddr};
use crate::syscalls::socket::{gather, read_msghdr, scatter, wait_until};
use crate::syscalls::Args;
use crate::vfs::OpenFile;

const MSG_OOB: i32 = 0x1;
const MSG_PEEK: i32 = 0x2;
const MSG_CTRUNC: i32 = 0x8;
const MSG_TRUNC: i32 = 0x20;
const MSG_DONTWAIT: i32 = 0x40;
const MSG_WAITALL: i32 = 0x100;
const MSG_NOSIGNAL: i32 = 0x4000;
const MSG_MORE: i32 = 0x8000;
const MSG_ERRQUEUE: i32 = 0x2000;
/// `sizeof(struct sock_extended_err)`.
const EXTENDED_ERR: usize = 16;
/// `net.ipv4.ip_unprivileged_port_start`.
const UNPRIVILEGED_PORT_START: u16 = 1024;
/// How much of a send is gathered from the application at a time.
const CHUNK: usize = 256 * 1024;
/// Most bytes one host receive takes (a stream read asks again for the rest only
/// with `MSG_WAITALL`).
const RECV_CHUNK: usize = 1 << 20;
/// Largest UDP payload over IPv6 (jumbograms aside).
const MAX_DATAGRAM: usize = 65_535;
/// `SO_RCVTIMEO_NEW`, `SO_SNDTIMEO_NEW` (64-bit `struct timeval` either way on x86-64).
const SO_RCVTIMEO_NEW: i32 = 66;
const SO_SNDTIMEO_NEW: i32 = 67;

const POLLIN: u32 = libc::POLLIN as u32;
const POLLOUT: u32 = libc::POLLOUT as u32;
const POLLERR: u32 = libc::POLLERR as u32;
const POLLHUP: u32 = libc::POLLHUP as u32;

/// The host socket behind an open file, if it is one.
pub fn of(f: &OpenFile) -> Option<&Arc<HostSocket>> {
    host::host_of(f)
}

/// Whether the sandbox is in host mode (new internet sockets are host sockets).
pub fn enabled() -> bool {
    host::host().is_some()
}

/// `socket(2)` for `AF_INET`/`AF_INET6` in host mode; `ty` without the flags.
pub fn socket(task: &mut Task, domain: i32, ty: i32, protocol: i32, flags: i32) -> SysResult<u64> {
    let Some(hn) = host::host() else {
        return Err(Errno::EAFNOSUPPORT);
    };
    let family = if domain == libc::AF_INET {
        Family::V4
    } else {
        Family::V6
    };
    match ty {
        libc::SOCK_STREAM if protocol == 0 || protocol == libc::IPPROTO_TCP => {}
        libc::SOCK_DGRAM if protocol == 0 || protocol == libc::IPPROTO_UDP => {}
        libc::SOCK_RAW | libc::SOCK_DGRAM => {
            // Raw and ping sockets would reach the host's network below TCP and UDP.
            let e = if ty == libc::SOCK_RAW {
                Errno::EPERM
            } else {
                Errno::EPROTONOSUPPORT
            };
            tracing::warn!(
                ty,
                protocol,
                "--network=host: only TCP and UDP sockets are host sockets: {e:?}"
            );
            return Err(e);
        }
        libc::SOCK_STREAM => return Err(Errno::EPROTONOSUPPORT),
        _ => return Err(Errno::ESOCKTNOSUPPORT),
    }
    let fd = hostnet::socket(domain, ty)?;
    let s = hn.adopt(fd, family, ty, &task.kernel.net)?;
    let file = OpenFile::new(
        Box::new(HostSocketFile(s)),
        None,
        libc::O_RDWR | (flags & libc::O_NONBLOCK),
    );
    Ok(install_file(task, file, flags & libc::O_CLOEXEC != 0)? as u64)
}

/// A socket address the program passed, checked: its family is the socket's (or
/// `AF_UNSPEC`, which the host takes as Linux does), its length is the family's,
/// and it is not the concealed metadata server.
fn read_addr(task: &Task, s: &HostSocket, addr: u64, len: u64) -> SysResult<Vec<u8>> {
    let b = get_sockaddr(task, addr, len)?;
    if b.len() < 2 {
        return Err(Errno::EINVAL);
    }
    let fam = i32::from(u16::from_le_bytes([b[0], b[1]]));
    if fam == libc::AF_UNSPEC {
        return Ok(b);
    }
    if fam != s.family().linux() {
        // An AF_UNIX or any other address never reaches the host call.
        return Err(Errno::EAFNOSUPPORT);
    }
    let need = match s.family() {
        Family::V4 => 16,
        Family::V6 => 24,
    };
    if b.len() < need {
        return Err(Errno::EINVAL);
    }
    if let Some(ip) = ip_of(&b) {
        if crate::net::is_metadata(ip) && !s.net.metadata_allowed() {
            // Concealed as in the other modes: as if no route led there.
            return Err(Errno::ENETUNREACH);
        }
    }
    Ok(b)
}

/// The address in a raw `sockaddr_in`/`sockaddr_in6`.
fn ip_of(b: &[u8]) -> Option<std::net::IpAddr> {
    let fam = i32::from(u16::from_le_bytes([*b.first()?, *b.get(1)?]));
    if fam == libc::AF_INET && b.len() >= 8 {
        let o: [u8; 4] = b[4..8].try_into().ok()?;
        Some(std::net::IpAddr::from(o))
    } else if fam == libc::AF_INET6 && b.len() >= 24 {
        let o: [u8; 16] = b[8..24].try_into().ok()?;
        Some(std::net::IpAddr::from(o))
    } else {
        None
    }
}

fn port_of(b: &[u8]) -> u16 {
    if b.len() >= 4 {
        u16::from_be_bytes([b[2], b[3]])
    } else {
        0
    }
}

/// Writes the host's address `a` at `addr`, cut to the room at `len_addr`, and
/// stores its full length there.
fn write_addr(task: &Task, addr: u64, len_addr: u64, a: &[u8]) -> SysResult<()> {
    put_sockaddr(task, addr, len_addr, a, a.len())
}

/// Waits until the socket's host readiness has one of `bits`.
fn wait_for(task: &Task, s: &HostSocket, bits: u32, send: bool) -> SysResult<()> {
    wait_until(task, s.queue(), s.timeout(send), || {
        s.poll_now() & bits != 0
    })
}

/// `bind(2)`.
pub fn bind(task: &mut Task, s: &HostSocket, a: &Args) -> SysResult<u64> {
    let b = read_addr(task, s, a[1], a[2])?;
    let port = port_of(&b);
    if port != 0 && port < UNPRIVILEGED_PORT_START && !task.creds.has_cap(CAP_NET_BIND_SERVICE) {
        return Err(Errno::EACCES);
    }
    hostnet::bind(s.fd(), &b)?;
    Ok(0)
}

/// `listen(2)`.
pub fn listen(s: &HostSocket, a: &Args) -> SysResult<u64> {
    if !s.is_stream() {
        return Err(Errno::EOPNOTSUPP);
    }
    hostnet::listen(s.fd(), a[1] as i32)?;
    Ok(0)
}

/// `connect(2)`: a blocking connect waits for the handshake in the sentry
/// (`SO_SNDTIMEO` bounds it, then `EINPROGRESS`, as Linux).
pub fn connect(task: &mut Task, f: &OpenFile, s: &HostSocket, a: &Args) -> SysResult<u64> {
    let b = read_addr(task, s, a[1], a[2])?;
    match hostnet::connect(s.fd(), &b) {
        Ok(()) => return Ok(0),
        Err(Errno::EINPROGRESS | Errno::EALREADY) if s.is_stream() && !f.nonblocking() => {}
        Err(e) => return Err(e),
    }
    match wait_for(task, s, POLLOUT | POLLERR | POLLHUP, true) {
        Ok(()) => {}
        Err(Errno::EAGAIN) => return Err(Errno::EINPROGRESS),
        Err(e) => return Err(e),
    }
    let err = hostnet::getsockopt(s.fd(), libc::SOL_SOCKET, libc::SO_ERROR, 4)?;
    match i32::from_le_bytes(err.try_into().unwrap_or([0; 4])) {
        0 => Ok(0),
        e => Err(Errno(e)),
    }
}

/// `accept4(2)`.
pub fn accept(
    task: &mut Task,
    f: &OpenFile,
    s: &HostSocket,
    a: &Args,
    flags: i32,
) -> SysResult<u64> {
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    if !s.is_stream() {
        return Err(Errno::EOPNOTSUPP);
    }
    let hn = host::host().ok_or(Errno::EINVAL)?;
    let (fd, peer) = loop {
        match hostnet::accept(s.fd()) {
            Err(Errno::EAGAIN) if !f.nonblocking() => {
                wait_for(task, s, POLLIN | POLLERR | POLLHUP, false)?
            }
            r => break r?,
        }
    };
    let conn = hn.adopt(fd, s.family(), libc::SOCK_STREAM, &s.net)?;
    let file = OpenFile::new(
        Box::new(HostSocketFile(conn)),
        None,
        libc::O_RDWR | (flags & libc::O_NONBLOCK),
    );
    let fd = install_file(task, file, flags & libc::O_CLOEXEC != 0)?;
    if a[1] != 0 {
        if let Err(e) = write_addr(task, a[1], a[2], &peer) {
            drop(task.fds()?.remove(fd));
            return Err(e);
        }
    }
    Ok(fd as u64)
}

/// `getsockname(2)` (`peer` false) and `getpeername(2)`.
pub fn name(task: &mut Task, s: &HostSocket, a: &Args, peer: bool) -> SysResult<u64> {
    let b = hostnet::name(s.fd(), peer)?;
    write_addr(task, a[1], a[2], &b)?;
    Ok(0)
}

/// `shutdown(2)`.
pub fn shutdown(s: &HostSocket, a: &Args) -> SysResult<u64> {
    let how = a[1] as i32;
    if !(libc::SHUT_RD..=libc::SHUT_RDWR).contains(&how) {
        return Err(Errno::EINVAL);
    }
    hostnet::shutdown(s.fd(), how)?;
    // Waiters on the other direction see the change at once.
    s.queue().notify_all();
    Ok(0)
}

/// Sends the bytes of `iov`; `to` is a datagram's destination.
pub fn send(
    task: &mut Task,
    f: &OpenFile,
    s: &HostSocket,
    iov: &[(u64, usize)],
    to: Option<(u64, u64)>,
    flags: i32,
) -> SysResult<u64> {
    send_with(task, f, s, iov, to, &[], flags)
}

/// [`send`] with the checked control messages `control` ([`check_control`]).
fn send_with(
    task: &mut Task,
    f: &OpenFile,
    s: &HostSocket,
    iov: &[(u64, usize)],
    to: Option<(u64, u64)>,
    control: &[u8],
    flags: i32,
) -> SysResult<u64> {
    // MSG_MORE and MSG_OOB go to the host with every piece of the send (UDP's
    // answer to MSG_OOB, EOPNOTSUPP, is the host's).
    let extra = flags & (MSG_MORE | MSG_OOB);
    let total: usize = iov
        .iter()
        .map(|&(_, l)| l)
        .sum::<usize>()
        .min(crate::syscalls::MAX_RW_COUNT as usize);
    let nonblock = f.nonblocking() || flags & MSG_DONTWAIT != 0;
    let r = if s.is_stream() {
        // A destination on a stream socket is ignored, as Linux does once connected
        // (and refused by the host otherwise).
        send_stream(task, s, iov, total, nonblock, control, extra)
    } else {
        let dst = match to {
            Some((addr, len)) => Some(read_addr(task, s, addr, len)?),
            None => None,
        };
        if total > MAX_DATAGRAM {
            return Err(Errno::EMSGSIZE);
        }
        let data = gather(task, iov, 0, total)?;
        loop {
            match s.send(&data, dst.as_deref(), control, extra) {
                Err(Errno::EAGAIN) if !nonblock => wait_for(task, s, POLLOUT | POLLERR, true)?,
                r => break r.map(|n| n as u64),
            }
        }
    };
    if r == Err(Errno::EPIPE) && flags & MSG_NOSIGNAL == 0 {
        task.raise_signal(libc::SIGPIPE);
    }
    r
}

fn send_stream(
    task: &Task,
    s: &HostSocket,
    iov: &[(u64, usize)],
    total: usize,
    nonblock: bool,
    control: &[u8],
    extra: i32,
) -> SysResult<u64> {
    if total == 0 {
        return s.send(&[], None, control, extra).map(|n| n as u64);
    }
    let mut sent = 0usize;
    let done = |sent: usize, e: Errno| if sent > 0 { Ok(sent as u64) } else { Err(e) };
    while sent < total {
        let data = gather(task, iov, sent, (total - sent).min(CHUNK))?;
        let mut off = 0usize;
        while off < data.len() {
            let last = sent + data.len() == total;
            let more = if last { 0 } else { MSG_MORE };
            // The control messages go with the first piece only.
            let control = if sent + off == 0 { control } else { &[] };
            match s.send(&data[off..], None, control, extra | more) {
                Ok(n) => off += n,
                Err(Errno::EAGAIN) if nonblock => return done(sent + off, Errno::EAGAIN),
                Err(Errno::EAGAIN) => {
                    if let Err(e) = wait_for(task, s, POLLOUT | POLLERR | POLLHUP, true) {
                        return done(sent + off, e);
                    }
                }
                Err(e) => return done(sent + off, e),
            }
        }
        sent += off;
    }
    Ok(sent as u64)
}

/// What a receive delivered.
pub struct Got {
    /// The bytes.
    pub data: Vec<u8>,
    /// The count to return.
    pub ret: usize,
    /// `msg_flags` (`MSG_TRUNC` for a cut datagram).
    pub flags: i32,
    /// The sender's address (datagrams), as the host gave it.
    pub from: Vec<u8>,
    /// The control messages the host gave (with room for `control_room`).
    pub control: Vec<u8>,
}

/// Receives up to `len` bytes, with room for `control_room` bytes of control
/// messages.
pub fn recv(
    task: &Task,
    f: &OpenFile,
    s: &HostSocket,
    len: usize,
    flags: i32,
    control_room: usize,
) -> SysResult<Got> {
    let got = recv_host(task, f, s, len, flags, control_room);
    if got.is_ok() && s.urgent_seen() {
        // The read may have taken the urgent byte (or read past it inline): the
        // owner's SIGURG hook looks again, so the next urgent byte is signalled.
        s.queue().notify_all();
    }
    got
}

fn recv_host(
    task: &Task,
    f: &OpenFile,
    s: &HostSocket,
    len: usize,
    flags: i32,
    control_room: usize,
) -> SysResult<Got> {
    if flags & MSG_ERRQUEUE != 0 {
        // The error queue never waits (EAGAIN when empty), as Linux's
        // ip_recv_error/ipv6_recv_error: one host call.
        let mut buf = vec![0u8; len.min(MAX_DATAGRAM)];
        let r = s.recv(&mut buf, MSG_ERRQUEUE, control_room)?;
        buf.truncate(r.n.min(buf.len()));
        return Ok(Got {
            ret: buf.len(),
            data: buf,
            flags: r.flags & (MSG_TRUNC | MSG_CTRUNC | MSG_ERRQUEUE),
            from: r.from,
            control: errqueue_control(&r.control),
        });
    }
    if flags & MSG_OOB != 0 {
        // Urgent data never waits: the host answers at once (EINVAL when there
        // is none or it is read inline, EAGAIN before it arrives), as Linux.
        let mut buf = vec![0u8; len.min(RECV_CHUNK)];
        let r = s.recv(
            &mut buf,
            flags & (MSG_OOB | MSG_PEEK | MSG_TRUNC),
            control_room,
        )?;
        buf.truncate(r.n.min(buf.len()));
        return Ok(Got {
            ret: buf.len(),
            data: buf,
            flags: r.flags & (MSG_TRUNC | MSG_CTRUNC | MSG_OOB),
            from: r.from,
            control: r.control,
        });
    }
    let nonblock = f.nonblocking() || flags & MSG_DONTWAIT != 0;
    let peek = flags & MSG_PEEK != 0;
    let host_flags = flags & (MSG_PEEK | MSG_TRUNC);
    let mut control = Vec::new();
    let waitall = s.is_stream() && flags & MSG_WAITALL != 0 && !peek;
    let len = if s.is_stream() {
        len
    } else {
        len.min(MAX_DATAGRAM)
    };
    // The buffer grows with what arrives (at most RECV_CHUNK per host call), never to
    // the size a program merely asks for.
    let mut buf = Vec::new();
    let mut got = 0usize;
    let mut from = Vec::new();
    let mut out_flags = 0;
    let mut ret = 0usize;
    loop {
        let room = (len - got).min(RECV_CHUNK);
        buf.resize(got + room, 0);
        // Control messages come with the first piece only.
        let croom = if got == 0 { control_room } else { 0 };
        match s.recv(&mut buf[got..], host_flags, croom) {
            Ok(r) => {
                if got == 0 {
                    control = r.control;
                }
                let eof = r.n == 0;
                let stored = r.n.min(room);
                got += stored;
                ret += if s.is_stream() { stored } else { r.n };
                from = r.from;
                out_flags = r.flags;
                if !waitall || eof || got >= len {
                    break;
                }
            }
            Err(Errno::EAGAIN) if !nonblock => {
                if let Err(e) = wait_for(task, s, POLLIN | POLLERR | POLLHUP, false) {
                    if got == 0 {
                        return Err(e);
                    }
                    break;
                }
            }
            Err(e) if got == 0 => return Err(e),
            Err(_) => break,
        }
    }
    buf.truncate(got);
    if s.is_stream() && flags & MSG_TRUNC != 0 {
        // TCP's MSG_TRUNC discarded what it read.
        buf.clear();
    }
    Ok(Got {
        data: buf,
        ret,
        flags: out_flags & (MSG_TRUNC | MSG_CTRUNC),
        from,
        control,
    })
}

/// `recvfrom(2)`.
pub fn recvfrom(task: &mut Task, f: &OpenFile, s: &HostSocket, a: &Args) -> SysResult<u64> {
    let len = (a[2] as usize).min(crate::syscalls::MAX_RW_COUNT as usize);
    let got = recv(task, f, s, len, a[3] as i32, 0)?;
    io::write_all(task.mem(), a[1], &got.data)?;
    if a[4] != 0 && !s.is_stream() {
        write_addr(task, a[4], a[5], &got.from)?;
    } else if a[5] != 0 && a[4] != 0 {
        io::write_u32(task.mem(), a[5], 0)?;
    }
    Ok(got.ret as u64)
}

/// `recvmsg(2)` of one message.
pub fn recvmsg(
    task: &mut Task,
    f: &OpenFile,
    s: &HostSocket,
    msg: u64,
    flags: i32,
) -> SysResult<u64> {
    let h = read_msghdr(task, msg)?;
    let iov = read_iovecs(task, h.iov, h.iovlen)?;
    let len: usize = iov
        .iter()
        .map(|&(_, l)| l)
        .sum::<usize>()
        .min(crate::syscalls::MAX_RW_COUNT as usize);
    let room = if h.control == 0 {
        0
    } else {
        (h.controllen as usize).min(hostnet::CONTROL_ROOM)
    };
    let got = recv(task, f, s, len, flags, room)?;
    scatter(task, &iov, &got.data)?;
    // The host's control messages, as it laid them out (the same ABI).
    if !got.control.is_empty() {
        io::write_all(task.mem(), h.control, &got.control)?;
    }
    io::write_u64(task.mem(), msg + 40, got.control.len() as u64)?;
    io::write_u32(task.mem(), msg + 48, got.flags as u32)?;
    if h.name != 0 && !s.is_stream() {
        write_addr(task, h.name, msg + 8, &got.from)?;
    } else {
        io::write_u32(task.mem(), msg + 8, 0)?;
    }
    Ok(got.ret as u64)
}

/// `sendmsg(2)` of one message.
pub fn sendmsg(
    task: &mut Task,
    f: &OpenFile,
    s: &HostSocket,
    msg: u64,
    flags: i32,
) -> SysResult<u64> {
    let h = read_msghdr(task, msg)?;
    let control = if h.control != 0 && h.controllen != 0 {
        if h.controllen > OPTMEM_MAX {
            return Err(Errno::ENOBUFS);
        }
        let mut c = vec![0u8; h.controllen as usize];
        io::read_exact(task.mem(), h.control, &mut c)?;
        check_control(&c)?
    } else {
        Vec::new()
    };
    let to = (h.name != 0 && h.namelen != 0).then_some((h.name, h.namelen));
    let iov = read_iovecs(task, h.iov, h.iovlen)?;
    send_with(task, f, s, &iov, to, &control, flags)
}

/// `net.core.optmem_max`: the most control bytes one `sendmsg` takes.
const OPTMEM_MAX: u64 = 20_480;
/// `sizeof(struct cmsghdr)`.
const CMSG_HDR: usize = 16;

/// The per-packet IP options passed between the program and the host, both ways:
/// sent with `sendmsg` and received with the error queue.
const PASSED: [(i32, i32); 6] = [
    (libc::SOL_IP, libc::IP_PKTINFO),
    (libc::SOL_IP, libc::IP_TTL),
    (libc::SOL_IP, libc::IP_TOS),
    (libc::SOL_IPV6, libc::IPV6_PKTINFO),
    (libc::SOL_IPV6, libc::IPV6_HOPLIMIT),
    (libc::SOL_IPV6, libc::IPV6_TCLASS),
];

/// The control messages of a `sendmsg` that go to the host: at `SOL_IP`
/// `IP_PKTINFO`, `IP_TTL`, `IP_TOS` and at `SOL_IPV6` `IPV6_PKTINFO`,
/// `IPV6_HOPLIMIT`, `IPV6_TCLASS` (each as the program wrote it; the host checks
/// the values), re-packed. A malformed header is `EINVAL`; `SCM_RIGHTS` and
/// `SCM_CREDENTIALS` mean nothing to an internet socket and are skipped, as Linux
/// skips them (never passed: no descriptor reaches the host); other `SOL_SOCKET`
/// messages (`SO_MARK`, `SCM_TXTIME`, `SO_TIMESTAMPING`) and other IP options
/// (routing headers, IP options, ...) are `EINVAL` (not passed, logged); other
/// levels are skipped, as Linux does.
pub fn check_control(c: &[u8]) -> SysResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + CMSG_HDR <= c.len() {
        let len = u64::from_le_bytes(c[off..off + 8].try_into().map_err(|_| Errno::EINVAL)?);
        let level = i32::from_le_bytes(c[off + 8..off + 12].try_into().map_err(|_| Errno::EINVAL)?);
        let ty = i32::from_le_bytes(
            c[off + 12..off + 16]
                .try_into()
                .map_err(|_| Errno::EINVAL)?,
        );
        if len < CMSG_HDR as u64 || len > (c.len() - off) as u64 {
            return Err(Errno::EINVAL);
        }
        let len = len as usize;
        if level == libc::SOL_SOCKET && (ty == libc::SCM_RIGHTS || ty == libc::SCM_CREDENTIALS) {
            // Skipped, as Linux's __sock_cmsg_send does on an internet socket.
        } else if level == libc::SOL_SOCKET {
            tracing::warn!(ty, "--network=host: SOL_SOCKET control message: EINVAL");
            return Err(Errno::EINVAL);
        } else if PASSED.contains(&(level, ty)) {
            out.extend_from_slice(&c[off..off + len]);
            while !out.len().is_multiple_of(8) {
                out.push(0);
            }
        } else if level == libc::SOL_IP || level == libc::SOL_IPV6 {
            tracing::warn!(
                level,
                ty,
                "--network=host: control message not passed to the host: EINVAL"
            );
            return Err(Errno::EINVAL);
        }
        off += (len + 7) & !7;
    }
    Ok(out)
}

/// The control messages of a host `recvmsg(MSG_ERRQUEUE)` the program gets: the
/// error itself (`IP_RECVERR`: `struct sock_extended_err` and the offender's
/// `sockaddr_in`; `IPV6_RECVERR`: the same with a `sockaddr_in6`, also for an
/// IPv6 socket's v4-mapped traffic) and the receive options the program may set
/// (`IP_PKTINFO`, `IP_TTL`, `IP_TOS`, the IPv6 ones), laid out as the host wrote
/// them (the same ABI). Anything else (no option the program can set produces
/// one) is dropped, logged; a message the host cut (`MSG_CTRUNC`) stays cut.
fn errqueue_control(c: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + CMSG_HDR <= c.len() {
        let word = |at: usize| -> [u8; 4] { c[at..at + 4].try_into().unwrap_or_default() };
        let len = u64::from_le_bytes(c[off..off + 8].try_into().unwrap_or_default());
        let level = i32::from_le_bytes(word(off + 8));
        let ty = i32::from_le_bytes(word(off + 12));
        if len < CMSG_HDR as u64 {
            break;
        }
        let end = (off as u64 + len).min(c.len() as u64) as usize;
        let is_err = (level, ty) == (libc::SOL_IP, libc::IP_RECVERR)
            || (level, ty) == (libc::SOL_IPV6, libc::IPV6_RECVERR);
        // An error message holds at least its sock_extended_err unless cut.
        let whole = end - off >= CMSG_HDR + EXTENDED_ERR || end == c.len();
        if (is_err && whole) || PASSED.contains(&(level, ty)) {
            out.extend_from_slice(&c[off..end]);
            while !out.len().is_multiple_of(8) && end < c.len() {
                out.push(0);
            }
        } else {
            tracing::warn!(
                level,
                ty,
                "--network=host: error-queue control message not passed on"
            );
        }
        off = off.saturating_add(((len as usize).saturating_add(7)) & !7);
    }
    out
}

fn timeval(v: &[u8]) -> SysResult<Option<Duration>> {
    if v.len() < 16 {
        return Err(Errno::EINVAL);
    }
    let sec = i64::from_le_bytes(v[0..8].try_into().map_err(|_| Errno::EINVAL)?);
    let usec = i64::from_le_bytes(v[8..16].try_into().map_err(|_| Errno::EINVAL)?);
    if !(0..1_000_000).contains(&usec) {
        return Err(Errno::EDOM);
    }
    if sec < 0 || (sec == 0 && usec == 0) {
        // A negative time is no timeout (Linux), zero is none either.
        return Ok(None);
    }
    Ok(Some(
        Duration::from_secs(sec as u64) + Duration::from_micros(usec as u64),
    ))
}

/// `setsockopt(2)`: timeouts kept in the sentry, the allow-listed options passed
/// to the host, the rest `ENOPROTOOPT`.
pub fn setsockopt(task: &mut Task, s: &HostSocket, a: &Args) -> SysResult<u64> {
    let (level, name) = (a[1] as i32, a[2] as i32);
    let len = a[4] as i32;
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let mut v = vec![0u8; (len as usize).min(256)];
    io::read_exact(task.mem(), a[3], &mut v)?;
    if level == libc::SOL_SOCKET {
        match name {
            libc::SO_RCVTIMEO | SO_RCVTIMEO_NEW => {
                s.set_timeout(false, timeval(&v)?);
                return Ok(0);
            }
            libc::SO_SNDTIMEO | SO_SNDTIMEO_NEW => {
                s.set_timeout(true, timeval(&v)?);
                return Ok(0);
            }
            libc::SO_LINGER => {
                let l: [u8; 8] = v
                    .get(..8)
                    .ok_or(Errno::EINVAL)?
                    .try_into()
                    .map_err(|_| Errno::EINVAL)?;
                let on = i32::from_le_bytes([l[0], l[1], l[2], l[3]]) != 0;
                let secs = i32::from_le_bytes([l[4], l[5], l[6], l[7]]);
                if on && secs > 0 {
                    // A lingering close would block the sentry in the host's close:
                    // kept here (the host closes in the background, as without it).
                    s.set_linger(Some(l));
                    hostnet::setsockopt(s.fd(), level, name, &[0u8; 8])?;
                    return Ok(0);
                }
                s.set_linger(None);
            }
            _ => {}
        }
    }
    if !host_sockopt_allowed(level, name) {
        tracing::warn!(
            level,
            name,
            "--network=host: socket option not passed to the host: ENOPROTOOPT"
        );
        return Err(Errno::ENOPROTOOPT);
    }
    hostnet::setsockopt(s.fd(), level, name, &v)?;
    Ok(0)
}

/// `getsockopt(2)`.
pub fn getsockopt(task: &mut Task, s: &HostSocket, a: &Args) -> SysResult<u64> {
    let (level, name) = (a[1] as i32, a[2] as i32);
    let mut lb = [0u8; 4];
    io::read_exact(task.mem(), a[4], &mut lb)?;
    let room = i32::from_le_bytes(lb);
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let tv = |t: Option<Duration>| {
        let t = t.unwrap_or_default();
        let mut b = (t.as_secs() as i64).to_le_bytes().to_vec();
        b.extend_from_slice(&i64::from(t.subsec_micros()).to_le_bytes());
        b
    };
    let val = match (level, name) {
        (libc::SOL_SOCKET, libc::SO_RCVTIMEO | SO_RCVTIMEO_NEW) => tv(s.timeout(false)),
        (libc::SOL_SOCKET, libc::SO_SNDTIMEO | SO_SNDTIMEO_NEW) => tv(s.timeout(true)),
        (libc::SOL_SOCKET, libc::SO_LINGER) if s.linger().is_some() => {
            s.linger().unwrap_or_default().to_vec()
        }
        _ if host_sockopt_allowed(level, name) => {
            hostnet::getsockopt(s.fd(), level, name, (room as usize).min(512))?
        }
        _ => {
            tracing::warn!(
                level,
                name,
                "--network=host: socket option not read from the host: ENOPROTOOPT"
            );
            return Err(Errno::ENOPROTOOPT);
        }
    };
    let n = val.len().min(room as usize);
    io::write_all(task.mem(), a[3], &val[..n])?;
    io::write_u32(task.mem(), a[4], n as u32)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmsg(level: i32, ty: i32, data: &[u8]) -> Vec<u8> {
        let mut m = ((CMSG_HDR + data.len()) as u64).to_le_bytes().to_vec();
        m.extend_from_slice(&level.to_le_bytes());
        m.extend_from_slice(&ty.to_le_bytes());
        m.extend_from_slice(data);
        while !m.len().is_multiple_of(8) {
            m.push(0);
        }
        m
    }

    #[test]
    fn error_queue_messages_keep_the_error_and_the_asked_ones() {
        let err = cmsg(libc::SOL_IP, libc::IP_RECVERR, &[7u8; 32]);
        let ttl = cmsg(libc::SOL_IP, libc::IP_TTL, &64i32.to_le_bytes());
        let other = cmsg(libc::SOL_SOCKET, 37, &[1u8; 48]);
        let all = [err.clone(), other, ttl.clone()].concat();
        assert_eq!(errqueue_control(&all), [err.clone(), ttl].concat());
        // A message the host cut (MSG_CTRUNC) stays as cut.
        let cut = &err[..20];
        assert_eq!(errqueue_control(cut), cut.to_vec());
        // A malformed length ends the walk.
        let mut bad = err.clone();
        bad[0] = 3;
        assert!(errqueue_control(&bad).is_empty());
    }
}
