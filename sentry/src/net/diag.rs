//! `NETLINK_SOCK_DIAG` (`socket(AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG)`): the
//! `SOCK_DIAG_BY_FAMILY` requests `ss` makes, answered from the sandbox's own
//! sockets. `AF_INET`/`AF_INET6` (`inet_diag_req_v2`) for TCP, UDP and UDP-Lite:
//! dumps with the state, port and family filters, the `INET_DIAG_REQ_BYTECODE`
//! filter, and single sockets by their 4-tuple; `AF_UNIX` (`unix_diag_req`): dumps
//! by state and single sockets by inode, with `UDIAG_SHOW_NAME`, `_VFS`, `_PEER`,
//! `_ICONS`, `_RQLEN`, `_MEMINFO`, `_UID`. The messages are Linux's
//! (`inet_sk_diag_fill`, `inet_twsk_diag_fill`, `sk_diag_fill` of `unix_diag.c`), in
//! the order Linux puts their attributes. Families and protocols Linux would not
//! find a handler for are `ENOENT`, other message types `EINVAL`, and
//! `SOCK_DESTROY` `EOPNOTSUPP` (a kernel without `CONFIG_INET_DIAG_DESTROY`), as
//! `sock_diag_rcv_msg` answers them.

use std::net::IpAddr;

use crate::errno::{Errno, SysResult};
use crate::net::addr::{Family, SockAddr};
use crate::net::Netstack;

/// `SOCK_DIAG_BY_FAMILY`.
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `SOCK_DESTROY`.
pub const SOCK_DESTROY: u16 = 21;
/// `TCPDIAG_GETSOCK`, `DCCPDIAG_GETSOCK`: the old `inet_diag_req` requests.
const TCPDIAG_GETSOCK: u16 = 18;
const DCCPDIAG_GETSOCK: u16 = 19;
/// `AF_MAX`.
const AF_MAX: u8 = 46;

/// `sizeof(struct inet_diag_req_v2)`.
const INET_REQ_LEN: usize = 56;
/// `sizeof(struct unix_diag_req)`.
const UNIX_REQ_LEN: usize = 24;

const INET_DIAG_REQ_BYTECODE: u16 = 1;
const INET_DIAG_MEMINFO: u16 = 1;
const INET_DIAG_INFO: u16 = 2;
const INET_DIAG_CONG: u16 = 4;
const INET_DIAG_TOS: u16 = 5;
const INET_DIAG_TCLASS: u16 = 6;
const INET_DIAG_SKMEMINFO: u16 = 7;
const INET_DIAG_SHUTDOWN: u16 = 8;
const INET_DIAG_SKV6ONLY: u16 = 11;
const INET_DIAG_MARK: u16 = 15;
const INET_DIAG_CLASS_ID: u16 = 17;
const INET_DIAG_SOCKOPT: u16 = 22;

const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_VFS: u16 = 1;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_ICONS: u16 = 3;
const UNIX_DIAG_RQLEN: u16 = 4;
const UNIX_DIAG_MEMINFO: u16 = 5;
const UNIX_DIAG_SHUTDOWN: u16 = 6;
const UNIX_DIAG_UID: u16 = 7;
const UDIAG_SHOW_NAME: u32 = 0x1;
const UDIAG_SHOW_VFS: u32 = 0x2;
const UDIAG_SHOW_PEER: u32 = 0x4;
const UDIAG_SHOW_ICONS: u32 = 0x8;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UDIAG_SHOW_MEMINFO: u32 = 0x20;
const UDIAG_SHOW_UID: u32 = 0x40;

/// `INET_DIAG_NOCOOKIE`.
const NOCOOKIE: u64 = u64::MAX;

/// `TCP_LISTEN`, `TCP_CLOSE`, `TCP_SYN_RECV`, `TCP_NEW_SYN_RECV`.
const TCP_LISTEN: u8 = 10;
const TCP_CLOSE: u8 = 7;
const TCP_SYN_RECV: u8 = 3;
const TCP_NEW_SYN_RECV: u8 = 12;

/// One internet socket as the diag messages describe it.
#[derive(Clone, Debug)]
pub struct InetEntry {
    /// Its family.
    pub family: Family,
    /// `TCP_*` state (UDP: 1 connected, 7 not).
    pub state: u8,
    /// Local address and port.
    pub local: SockAddr,
    /// Peer address and port (the family's wildcard and 0 when none).
    pub remote: SockAddr,
    /// `idiag_rqueue`/`idiag_wqueue` (a listener: queued connections, backlog).
    pub rq: u32,
    /// See `rq`.
    pub wq: u32,
    /// Owner and inode (0 for a closed connection that lingers).
    pub uid: u32,
    /// See `uid`.
    pub ino: u64,
    /// A number naming the socket for as long as it lives (`sock_gen_cookie`).
    pub cookie: u64,
    /// `sk_shutdown`: `RCV_SHUTDOWN` 1, `SEND_SHUTDOWN` 2.
    pub shutdown: u8,
    /// `IP_TOS` and `IPV6_TCLASS` (one option here).
    pub tos: u8,
    /// `IPV6_V6ONLY`.
    pub v6only: bool,
    /// `SO_MARK`, `SO_PRIORITY`.
    pub mark: u32,
    /// See `mark`.
    pub priority: u32,
    /// `IP_RECVERR`.
    pub recverr: bool,
    /// Bytes queued to be read and to be acknowledged; the buffer sizes.
    pub rmem: u32,
    /// See `rmem`.
    pub wmem: u32,
    /// See `rmem`.
    pub rcvbuf: u32,
    /// See `rmem`.
    pub sndbuf: u32,
    /// A closed connection lingering in FIN-WAIT-2 or TIME-WAIT: described as
    /// Linux's timewait sockets are (`inet_twsk_diag_fill`).
    pub timewait: bool,
    /// `bind` named the port (`SOCK_BINDPORT_LOCK`; `INET_DIAG_BC_AUTO`).
    pub port_locked: bool,
    /// `struct tcp_info` (TCP; `None` for UDP).
    pub tcp_info: Option<Vec<u8>>,
}

/// One unix socket as the diag messages describe it.
#[derive(Clone, Debug, Default)]
pub struct UnixEntry {
    /// `SOCK_STREAM`, `SOCK_DGRAM`, `SOCK_SEQPACKET`.
    pub ty: u8,
    /// `TCP_LISTEN`, `TCP_ESTABLISHED` (connected) or `TCP_CLOSE`.
    pub state: u8,
    /// Its inode.
    pub ino: u64,
    /// Its name as `sockaddr_un`'s path bytes (abstract: a leading 0), if bound.
    pub name: Option<Vec<u8>>,
    /// The socket file's (inode, kernel device number), for a path name.
    pub vfs: Option<(u32, u32)>,
    /// The peer's inode (0 when the peer is gone), if connected.
    pub peer: Option<u64>,
    /// A listener: the inodes of the sockets whose connections wait for `accept`.
    pub icons: Option<Vec<u64>>,
    /// `unix_diag_rqlen` (a listener: queued connections, backlog).
    pub rq: u32,
    /// See `rq`.
    pub wq: u32,
    /// `sk_shutdown`.
    pub shutdown: u8,
    /// Its owner.
    pub uid: u32,
    /// The buffer sizes.
    pub rcvbuf: u32,
    /// See `rcvbuf`.
    pub sndbuf: u32,
}

/// Lists the sandbox's unix sockets (the kernel's unix space provides it).
pub type UnixLister = std::sync::Arc<dyn Fn() -> Vec<UnixEntry> + Send + Sync>;

/// Who asks: whether the requester administers the network (`INET_DIAG_MARK` is
/// given only then, as Linux's `netlink_net_capable`).
#[derive(Clone, Copy)]
pub struct Asker {
    /// `CAP_NET_ADMIN` over the network namespace's owner.
    pub net_admin: bool,
}

/// The answer to one request (an error goes back as `NLMSG_ERROR` instead).
pub struct Answer {
    /// The messages' bodies, sent with the request's type (with `NLM_F_MULTI` in a
    /// dump).
    pub msgs: Vec<Vec<u8>>,
    /// A dump (ends with `NLMSG_DONE`, never acknowledged).
    pub dump: bool,
    /// The error a dump's `NLMSG_DONE` carries (a protocol without a handler:
    /// Linux finds the handler once the dump runs).
    pub done_err: i32,
}

fn put_attr(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&((4 + data.len()) as u16).to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// The attributes after the fixed part of a request: (type, payload).
fn attrs(b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut v = Vec::new();
    let mut off = 0;
    while off + 4 <= b.len() {
        let len = u16::from_le_bytes([b[off], b[off + 1]]) as usize;
        let kind = u16::from_le_bytes([b[off + 2], b[off + 3]]) & 0x3fff;
        if len < 4 || off + len > b.len() {
            break;
        }
        v.push((kind, &b[off + 4..off + len]));
        off += (len + 3) & !3;
    }
    v
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Answers one request of type `kind` with flags `flags` and payload `body`, for a
/// socket of the network `net` (`unix` lists the unix sockets).
pub fn request(
    net: &Netstack,
    unix: Option<&UnixLister>,
    kind: u16,
    flags: u16,
    body: &[u8],
    who: Asker,
) -> SysResult<Answer> {
    let dump = flags & 0x300 != 0;
    match kind {
        TCPDIAG_GETSOCK | DCCPDIAG_GETSOCK => {
            // The old request format (`inet_diag_req`): not kept by iproute2 since
            // 2012.
            tracing::debug!(kind, "sock_diag: old inet_diag_req request: EOPNOTSUPP");
            Err(Errno::EOPNOTSUPP)
        }
        SOCK_DIAG_BY_FAMILY | SOCK_DESTROY => {
            if body.len() < 2 {
                return Err(Errno::EINVAL);
            }
            let family = body[0];
            if family >= AF_MAX {
                return Err(Errno::EINVAL);
            }
            match i32::from(family) {
                libc::AF_INET | libc::AF_INET6 => {
                    if body.len() < INET_REQ_LEN {
                        return Err(Errno::EINVAL);
                    }
                    if kind == SOCK_DESTROY {
                        tracing::debug!("sock_diag: SOCK_DESTROY is not supported");
                        return Err(Errno::EOPNOTSUPP);
                    }
                    inet(net, body, dump, who)
                }
                libc::AF_UNIX => {
                    if kind == SOCK_DESTROY {
                        return Err(Errno::EOPNOTSUPP);
                    }
                    if body.len() < UNIX_REQ_LEN {
                        return Err(Errno::EINVAL);
                    }
                    let all = unix.map(|l| l()).unwrap_or_default();
                    unix_answer(&all, body, dump)
                }
                _ => {
                    tracing::debug!(family, "sock_diag: no handler for the family: ENOENT");
                    Err(Errno::ENOENT)
                }
            }
        }
        _ => Err(Errno::EINVAL),
    }
}

/// The sockets of `protocol` in `net`, listeners first (Linux walks its listening
/// hash before the established one).
fn inet_entries(net: &Netstack, protocol: u8) -> SysResult<Vec<InetEntry>> {
    let mut v: Vec<InetEntry> = match i32::from(protocol) {
        libc::IPPROTO_TCP => net.tcp_sockets().iter().filter_map(|s| s.diag()).collect(),
        libc::IPPROTO_UDP => net.udp.all().iter().map(|s| s.diag()).collect(),
        libc::IPPROTO_UDPLITE => net.udplite.all().iter().map(|s| s.diag()).collect(),
        _ => {
            tracing::debug!(protocol, "sock_diag: no handler for the protocol: ENOENT");
            return Err(Errno::ENOENT);
        }
    };
    v.sort_by_key(|e| e.state != TCP_LISTEN);
    Ok(v)
}

/// The request's socket id: (source port, destination port, source address,
/// destination address, interface, cookie).
struct SockId {
    sport: u16,
    dport: u16,
    src: [u8; 16],
    dst: [u8; 16],
    cookie: u64,
}

fn sock_id(b: &[u8]) -> SockId {
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&b[12..28]);
    dst.copy_from_slice(&b[28..44]);
    SockId {
        sport: u16::from_be_bytes([b[8], b[9]]),
        dport: u16::from_be_bytes([b[10], b[11]]),
        src,
        dst,
        cookie: u64::from(u32_at(b, 48)) | (u64::from(u32_at(b, 52)) << 32),
    }
}

/// An address as the diag messages carry it: 16 bytes, an IPv4 address in the
/// first 4 (an IPv6 socket's IPv4 peer v4-mapped).
fn addr16(family: Family, ip: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match (family, ip) {
        (Family::V4, IpAddr::V4(a)) => out[..4].copy_from_slice(&a.octets()),
        (Family::V4, IpAddr::V6(_)) => {}
        (Family::V6, IpAddr::V4(a)) if a.is_unspecified() => {}
        (Family::V6, IpAddr::V4(a)) => out = a.to_ipv6_mapped().octets(),
        (Family::V6, IpAddr::V6(a)) => out = a.octets(),
    }
    out
}

fn inet(net: &Netstack, body: &[u8], dump: bool, who: Asker) -> SysResult<Answer> {
    let family = body[0];
    let protocol = body[1];
    let ext = body[2];
    let mut states = u32_at(body, 4);
    let id = sock_id(body);
    let bytecode = attrs(&body[INET_REQ_LEN..])
        .into_iter()
        .find(|(k, _)| *k == INET_DIAG_REQ_BYTECODE)
        .map(|(_, v)| v.to_vec());
    if dump {
        if let Some(bc) = &bytecode {
            audit(bc, who)?;
        }
    }
    let all = match inet_entries(net, protocol) {
        Ok(v) => v,
        Err(e) if dump => {
            return Ok(Answer {
                msgs: Vec::new(),
                dump: true,
                done_err: -e.0,
            })
        }
        Err(e) => return Err(e),
    };
    if !dump {
        // One socket by its 4-tuple (and cookie, when given): Linux's
        // `inet_diag_find_one_icsk`.
        let want = |e: &InetEntry| {
            e.family.linux() == i32::from(family)
                && e.local.port == id.sport
                && e.remote.port == id.dport
                && addr16(e.family, e.local.ip) == id.src
                && addr16(e.family, e.remote.ip) == id.dst
        };
        let e = all.iter().find(|e| want(e)).ok_or(Errno::ENOENT)?;
        if id.cookie != NOCOOKIE && id.cookie != e.cookie {
            return Err(Errno::ENOENT);
        }
        return Ok(Answer {
            msgs: vec![inet_msg(e, ext, who)],
            dump: false,
            done_err: 0,
        });
    }
    if states & (1 << TCP_SYN_RECV) != 0 {
        states |= 1 << TCP_NEW_SYN_RECV;
    }
    let tcp = i32::from(protocol) == libc::IPPROTO_TCP;
    let msgs = all
        .iter()
        .filter(|e| {
            if states & (1u32 << e.state) == 0 {
                return false;
            }
            if family != 0 && e.family.linux() != i32::from(family) {
                return false;
            }
            if id.sport != 0 && id.sport != e.local.port {
                return false;
            }
            // Listeners are skipped when a destination port is asked for.
            if id.dport != 0 && (id.dport != e.remote.port || (tcp && e.state == TCP_LISTEN)) {
                return false;
            }
            bytecode.as_deref().is_none_or(|bc| run_bytecode(bc, e))
        })
        .map(|e| inet_msg(e, ext, who))
        .collect();
    Ok(Answer {
        msgs,
        dump: true,
        done_err: 0,
    })
}

/// `struct inet_diag_msg` and its attributes for `e`.
fn inet_msg(e: &InetEntry, ext: u8, who: Asker) -> Vec<u8> {
    // `idiag_ext` is 8 bits: the extensions past the eighth are never asked for.
    let want = |a: u16| a <= 8 && ext & (1 << (a - 1)) != 0;
    let mut m = Vec::with_capacity(256);
    m.push(e.family.linux() as u8);
    m.push(e.state);
    m.push(if e.timewait { 3 } else { 0 }); // idiag_timer
    m.push(0); // idiag_retrans
    m.extend_from_slice(&e.local.port.to_be_bytes());
    m.extend_from_slice(&e.remote.port.to_be_bytes());
    m.extend_from_slice(&addr16(e.family, e.local.ip));
    m.extend_from_slice(&addr16(e.family, e.remote.ip));
    m.extend_from_slice(&0u32.to_le_bytes()); // idiag_if
    m.extend_from_slice(&(e.cookie as u32).to_le_bytes());
    m.extend_from_slice(&((e.cookie >> 32) as u32).to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes()); // idiag_expires
    m.extend_from_slice(&e.rq.to_le_bytes());
    m.extend_from_slice(&e.wq.to_le_bytes());
    m.extend_from_slice(&e.uid.to_le_bytes());
    m.extend_from_slice(&(e.ino as u32).to_le_bytes());
    if e.timewait {
        if who.net_admin {
            put_attr(&mut m, INET_DIAG_MARK, &0u32.to_le_bytes());
        }
        return m;
    }
    put_attr(&mut m, INET_DIAG_SHUTDOWN, &[e.shutdown]);
    if want(INET_DIAG_TOS) {
        put_attr(&mut m, INET_DIAG_TOS, &[e.tos]);
    }
    if e.family == Family::V6 {
        if want(INET_DIAG_TCLASS) {
            put_attr(&mut m, INET_DIAG_TCLASS, &[e.tos]);
        }
        if e.state == TCP_LISTEN || e.state == TCP_CLOSE {
            put_attr(&mut m, INET_DIAG_SKV6ONLY, &[e.v6only as u8]);
        }
    }
    if who.net_admin {
        put_attr(&mut m, INET_DIAG_MARK, &e.mark.to_le_bytes());
    }
    if want(INET_DIAG_CLASS_ID) || want(INET_DIAG_TCLASS) {
        // No cgroup class ids here: the socket's priority, as Linux falls back to.
        put_attr(&mut m, INET_DIAG_CLASS_ID, &e.priority.to_le_bytes());
    }
    // struct inet_diag_sockopt: recverr (IPv4's), is_icsk, mc_loop and mc_all
    // (inet_create turns both on, inet6_create only mc_loop).
    let tcp = e.tcp_info.is_some();
    let mc_all = e.family == Family::V4;
    let opt0 = e.recverr as u8 | (tcp as u8) << 1 | 1 << 4 | (mc_all as u8) << 6;
    put_attr(&mut m, INET_DIAG_SOCKOPT, &[opt0, 0]);
    if want(INET_DIAG_MEMINFO) {
        let mut b = Vec::with_capacity(16);
        for v in [e.rmem, e.wmem, 0, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        put_attr(&mut m, INET_DIAG_MEMINFO, &b);
    }
    if want(INET_DIAG_SKMEMINFO) {
        put_attr(
            &mut m,
            INET_DIAG_SKMEMINFO,
            &meminfo(e.rmem, e.rcvbuf, e.sndbuf, e.wmem),
        );
    }
    if let Some(info) = &e.tcp_info {
        if want(INET_DIAG_INFO) {
            put_attr(&mut m, INET_DIAG_INFO, info);
        }
        if want(INET_DIAG_CONG) {
            put_attr(&mut m, INET_DIAG_CONG, b"cubic\0");
        }
    }
    m
}

/// `SK_MEMINFO_*`: rmem_alloc, rcvbuf, wmem_alloc, sndbuf, fwd_alloc, wmem_queued,
/// optmem, backlog, drops.
fn meminfo(rmem: u32, rcvbuf: u32, sndbuf: u32, queued: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(36);
    for v in [rmem, rcvbuf, 0, sndbuf, 0, queued, 0, 0, 0] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

// The filter program (`INET_DIAG_REQ_BYTECODE`): `struct inet_diag_bc_op { u8 code;
// u8 yes; u16 no; }` and operands, as `inet_diag_bc_run` reads them.
const BC_NOP: u8 = 0;
const BC_JMP: u8 = 1;
const BC_S_GE: u8 = 2;
const BC_S_LE: u8 = 3;
const BC_D_GE: u8 = 4;
const BC_D_LE: u8 = 5;
const BC_AUTO: u8 = 6;
const BC_S_COND: u8 = 7;
const BC_D_COND: u8 = 8;
const BC_DEV_COND: u8 = 9;
const BC_MARK_COND: u8 = 10;
const BC_S_EQ: u8 = 11;
const BC_D_EQ: u8 = 12;
const BC_CGROUP_COND: u8 = 13;

/// Checks a filter as `inet_diag_bc_audit` does: each operand fits, every jump
/// lands on an instruction or just past the end (`EINVAL`); a mark condition
/// needs `CAP_NET_ADMIN` (`EPERM`).
fn audit(bc: &[u8], who: Asker) -> SysResult<()> {
    if bc.len() < 4 {
        return Err(Errno::EINVAL);
    }
    let total = bc.len() as isize;
    let mut off = 0usize;
    let mut len = total;
    while len > 0 {
        if off + 4 > bc.len() {
            return Err(Errno::EINVAL);
        }
        let code = bc[off];
        let yes = bc[off + 1] as isize;
        let no = u16::from_le_bytes([bc[off + 2], bc[off + 3]]) as isize;
        let min = match code {
            BC_S_COND | BC_D_COND => {
                // struct inet_diag_hostcond: family, prefix_len, port, address.
                if len < 4 + 8 {
                    return Err(Errno::EINVAL);
                }
                let alen = match i32::from(bc[off + 4]) {
                    0 => 0,
                    libc::AF_INET => 4,
                    libc::AF_INET6 => 16,
                    _ => return Err(Errno::EINVAL),
                };
                if len < 4 + 8 + alen || isize::from(bc[off + 5]) > alen * 8 {
                    return Err(Errno::EINVAL);
                }
                4 + 8 + alen
            }
            BC_S_GE | BC_S_LE | BC_D_GE | BC_D_LE | BC_S_EQ | BC_D_EQ | BC_DEV_COND => {
                if len < 8 {
                    return Err(Errno::EINVAL);
                }
                8
            }
            BC_MARK_COND => {
                if !who.net_admin {
                    return Err(Errno::EPERM);
                }
                if len < 12 {
                    return Err(Errno::EINVAL);
                }
                12
            }
            BC_CGROUP_COND => {
                if len < 12 {
                    return Err(Errno::EINVAL);
                }
                12
            }
            BC_AUTO | BC_JMP | BC_NOP => 4,
            _ => return Err(Errno::EINVAL),
        };
        if code != BC_NOP {
            if no < min || no > len + 4 || no & 3 != 0 {
                return Err(Errno::EINVAL);
            }
            if no < len && !valid_cc(bc, total, len - no) {
                return Err(Errno::EINVAL);
            }
        }
        if yes < min || yes > len + 4 || yes & 3 != 0 {
            return Err(Errno::EINVAL);
        }
        off += yes as usize;
        len -= yes;
    }
    if len == 0 {
        Ok(())
    } else {
        Err(Errno::EINVAL)
    }
}

/// Whether the instruction `cc` bytes before the end is one the "yes" chain
/// reaches (`valid_cc`).
fn valid_cc(bc: &[u8], mut len: isize, cc: isize) -> bool {
    let mut off = 0usize;
    while len >= 0 {
        if cc > len {
            return false;
        }
        if cc == len {
            return true;
        }
        let Some(&yes) = bc.get(off + 1) else {
            return false;
        };
        if yes < 4 || yes & 3 != 0 {
            return false;
        }
        len -= isize::from(yes);
        off += usize::from(yes);
    }
    false
}

/// Whether `e` passes the filter (`inet_diag_bc_run`; audited before).
fn run_bytecode(bc: &[u8], e: &InetEntry) -> bool {
    let mut off = 0usize;
    let mut len = bc.len() as isize;
    while len > 0 {
        let o = off;
        let Some(op) = bc.get(o..o + 4) else {
            return false;
        };
        let (code, yes_jump) = (op[0], isize::from(op[1]));
        let no_jump = u16::from_le_bytes([op[2], op[3]]) as isize;
        // The operand of a port comparison: the next op's `no` field.
        let port = || {
            bc.get(o + 6..o + 8)
                .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
        };
        let word = |i: usize| bc.get(o + 4 + i..o + 8 + i).map_or(0, |b| u32_at(b, 0));
        let yes = match code {
            BC_NOP => true,
            BC_JMP => false,
            BC_S_EQ => e.local.port == port(),
            BC_S_GE => e.local.port >= port(),
            BC_S_LE => e.local.port <= port(),
            BC_D_EQ => e.remote.port == port(),
            BC_D_GE => e.remote.port >= port(),
            BC_D_LE => e.remote.port <= port(),
            BC_AUTO => !e.port_locked,
            BC_S_COND | BC_D_COND => bc
                .get(o + 4..)
                .is_some_and(|c| hostcond(c, e, code == BC_S_COND)),
            BC_DEV_COND => word(0) == 0,
            BC_MARK_COND => e.mark & word(4) == word(0),
            // No cgroup ids are kept for sockets: none is in the one asked for.
            BC_CGROUP_COND => false,
            _ => false,
        };
        let step = if yes { yes_jump } else { no_jump };
        len -= step;
        off = off.wrapping_add(step as usize);
    }
    len == 0
}

/// `S_COND`/`D_COND`: a port (-1: any) and an address prefix (family 0: any; an
/// IPv4 condition matches an IPv6 socket's v4-mapped address).
fn hostcond(c: &[u8], e: &InetEntry, src: bool) -> bool {
    if c.len() < 8 {
        return false;
    }
    let fam = i32::from(c[0]);
    let plen = c[1] as usize;
    let port = i32::from_le_bytes([c[4], c[5], c[6], c[7]]);
    let a = if src { e.local } else { e.remote };
    if port != -1 && port != i32::from(a.port) {
        return false;
    }
    let addr = addr16(e.family, a.ip);
    let want = &c[8..];
    if fam != 0 && fam != e.family.linux() {
        let mapped = addr[..10].iter().all(|&b| b == 0) && addr[10..12] == [0xff, 0xff];
        return e.family == Family::V6
            && fam == libc::AF_INET
            && mapped
            && prefix_eq(&addr[12..], want, plen);
    }
    plen == 0 || prefix_eq(&addr, want, plen)
}

fn prefix_eq(a: &[u8], b: &[u8], bits: usize) -> bool {
    let full = bits / 8;
    if a.len() < full || b.len() < full || a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a.get(full)
        .zip(b.get(full))
        .is_some_and(|(x, y)| x & mask == y & mask)
}

fn unix_answer(all: &[UnixEntry], body: &[u8], dump: bool) -> SysResult<Answer> {
    let states = u32_at(body, 4);
    let ino = u32_at(body, 8);
    let show = u32_at(body, 12);
    let cookie = u64::from(u32_at(body, 16)) | (u64::from(u32_at(body, 20)) << 32);
    if !dump {
        let e = all
            .iter()
            .find(|e| e.ino as u32 == ino)
            .ok_or(Errno::ENOENT)?;
        if cookie != NOCOOKIE && cookie != e.ino {
            return Err(Errno::ESTALE);
        }
        return Ok(Answer {
            msgs: vec![unix_msg(e, show)],
            dump: false,
            done_err: 0,
        });
    }
    let msgs = all
        .iter()
        .filter(|e| states & (1u32 << e.state) != 0)
        .map(|e| unix_msg(e, show))
        .collect();
    Ok(Answer {
        msgs,
        dump: true,
        done_err: 0,
    })
}

/// `struct unix_diag_msg` and the attributes `show` asks for.
fn unix_msg(e: &UnixEntry, show: u32) -> Vec<u8> {
    let mut m = vec![libc::AF_UNIX as u8, e.ty, e.state, 0];
    m.extend_from_slice(&(e.ino as u32).to_le_bytes());
    m.extend_from_slice(&(e.ino as u32).to_le_bytes());
    m.extend_from_slice(&((e.ino >> 32) as u32).to_le_bytes());
    if show & UDIAG_SHOW_NAME != 0 {
        if let Some(n) = &e.name {
            put_attr(&mut m, UNIX_DIAG_NAME, n);
        }
    }
    if show & UDIAG_SHOW_VFS != 0 {
        if let Some((ino, dev)) = e.vfs {
            let mut b = ino.to_le_bytes().to_vec();
            b.extend_from_slice(&dev.to_le_bytes());
            put_attr(&mut m, UNIX_DIAG_VFS, &b);
        }
    }
    if show & UDIAG_SHOW_PEER != 0 {
        if let Some(p) = e.peer {
            put_attr(&mut m, UNIX_DIAG_PEER, &(p as u32).to_le_bytes());
        }
    }
    if show & UDIAG_SHOW_ICONS != 0 {
        if let Some(icons) = &e.icons {
            let b: Vec<u8> = icons
                .iter()
                .flat_map(|i| (*i as u32).to_le_bytes())
                .collect();
            put_attr(&mut m, UNIX_DIAG_ICONS, &b);
        }
    }
    if show & UDIAG_SHOW_RQLEN != 0 {
        let mut b = e.rq.to_le_bytes().to_vec();
        b.extend_from_slice(&e.wq.to_le_bytes());
        put_attr(&mut m, UNIX_DIAG_RQLEN, &b);
    }
    if show & UDIAG_SHOW_MEMINFO != 0 {
        let rmem = if e.state == TCP_LISTEN { 0 } else { e.rq };
        put_attr(
            &mut m,
            UNIX_DIAG_MEMINFO,
            &meminfo(rmem, e.rcvbuf, e.sndbuf, 0),
        );
    }
    put_attr(&mut m, UNIX_DIAG_SHUTDOWN, &[e.shutdown]);
    if show & UDIAG_SHOW_UID != 0 {
        put_attr(&mut m, UNIX_DIAG_UID, &e.uid.to_le_bytes());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn entry(state: u8, lport: u16, rport: u16) -> InetEntry {
        InetEntry {
            family: Family::V4,
            state,
            local: SockAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), lport),
            remote: SockAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), rport),
            rq: 0,
            wq: 0,
            uid: 0,
            ino: 5,
            cookie: 5,
            shutdown: 0,
            tos: 0,
            v6only: false,
            mark: 0,
            priority: 0,
            recverr: false,
            rmem: 0,
            wmem: 0,
            rcvbuf: 0,
            sndbuf: 0,
            timewait: false,
            port_locked: true,
            tcp_info: Some(vec![1; 8]),
        }
    }

    /// `sport = :80` as `ss` compiles it: S_EQ 80 (yes 8, no 12: past the end).
    #[test]
    fn bytecode_port_filter() {
        let bc = vec![BC_S_EQ, 8, 12, 0, 0, 0, 80, 0];
        let who = Asker { net_admin: false };
        assert!(audit(&bc, who).is_ok());
        assert!(run_bytecode(&bc, &entry(1, 80, 5000)));
        assert!(!run_bytecode(&bc, &entry(1, 81, 5000)));
        // A jump into the middle of an operand is refused.
        let bad = vec![BC_S_EQ, 6, 12, 0, 80, 0, 0, 0];
        assert_eq!(audit(&bad, who), Err(Errno::EINVAL));
        assert_eq!(audit(&[99, 4, 8, 0], who), Err(Errno::EINVAL));
        let mark = vec![BC_MARK_COND, 12, 16, 0, 1, 0, 0, 0, 1, 0, 0, 0];
        assert_eq!(audit(&mark, who), Err(Errno::EPERM));
    }

    #[test]
    fn timewait_messages_have_no_attributes() {
        let mut e = entry(6, 80, 5000);
        e.timewait = true;
        let m = inet_msg(&e, 0xff, Asker { net_admin: false });
        assert_eq!(m.len(), 72);
        assert_eq!(m[2], 3);
        let m = inet_msg(&entry(1, 80, 5000), 0, Asker { net_admin: false });
        // The fixed part, SHUTDOWN (8 bytes), SOCKOPT (8 bytes).
        assert_eq!(m.len(), 72 + 8 + 8);
    }
}
