//! ICMP sockets: ping sockets (`SOCK_DGRAM` with `IPPROTO_ICMP`/`IPPROTO_ICMPV6`)
//! and raw sockets (`SOCK_RAW`), as Linux has them.
//!
//! Every ICMP message of the sandbox goes through [`transmit`]: to a local address
//! (loopback, or the sandbox's own address on the pod interface) it comes straight
//! back in through [`input`], which hands a copy to each matching raw socket, an
//! echo reply to the ping socket whose identifier it carries, and answers an echo
//! request as Linux's ICMP layer does; to any other address it leaves through the
//! pod's interface ([`crate::net::external`]), whose echo replies and other ICMP
//! messages come back in through [`input`] too (the stack there answers echo
//! requests to the sandbox's address itself).
//!
//! A ping socket sends and receives ICMP headers and payloads: the kernel checks
//! the type (echo request only), writes the socket's identifier (its bound "port")
//! and the checksum. A raw IPv4 socket receives whole IP datagrams and sends ICMP
//! messages it checksums itself (or whole datagrams with `IP_HDRINCL`); a raw IPv6
//! socket sends and receives ICMPv6 messages without the IP header, the checksum
//! filled in by the kernel.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::SystemTime;

use crate::errno::{Errno, SysResult};
use crate::net::addr::{Family, SockAddr};
pub use crate::net::ippacket::Packet;
use crate::net::ippacket::{checksum, encode, parse_v4, parse_v6, v4_header, MAX_DATAGRAM};
use crate::net::opts::{int_of, Ctx, SockOpts};
use crate::net::{next_ino, Netstack};
use crate::wait::WaitQueue;

/// `IPPROTO_ICMP`.
pub const PROTO_ICMP: u8 = 1;
/// `IPPROTO_ICMPV6`.
pub const PROTO_ICMPV6: u8 = 58;
/// `IPPROTO_RAW`: a send-only raw socket whose datagrams carry their IP header.
pub const PROTO_RAW: u8 = 255;

const ECHO_REPLY: u8 = 0;
const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY_V6: u8 = 129;
const ECHO_REQUEST_V6: u8 = 128;

/// `SOL_RAW`.
const SOL_RAW: i32 = 255;
/// `ICMP_FILTER` (level `SOL_RAW`).
const ICMP_FILTER: i32 = 1;
/// `ICMP6_FILTER` (level `IPPROTO_ICMPV6`).
const ICMP6_FILTER: i32 = 1;
/// `IPV6_CHECKSUM` (levels `IPPROTO_IPV6` and `SOL_RAW`).
const IPV6_CHECKSUM: i32 = 7;
/// `IPV6_RECVHOPLIMIT`.
const IPV6_RECVHOPLIMIT: i32 = 51;
/// `IP_RECVTTL`.
const IP_RECVTTL: i32 = 12;
/// What a queued message costs beyond its bytes (an skb's overhead), as for UDP.
const OVERHEAD: usize = 768;
/// The TTL (hop limit) of messages the sandbox's ICMP layer sends.
const DEFAULT_TTL: u8 = 64;

/// Which kind of ICMP socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A ping socket (`SOCK_DGRAM`).
    Ping,
    /// A raw socket of the given IP protocol (`SOCK_RAW`).
    Raw(u8),
}

struct Msg {
    from: IpAddr,
    data: Vec<u8>,
    at: SystemTime,
}

struct State {
    opts: SockOpts,
    /// The bound local address (`None`: any).
    bound: Option<IpAddr>,
    peer: Option<IpAddr>,
    queue: VecDeque<Msg>,
    charged: usize,
    shut_rd: bool,
    shut_wr: bool,
    hdrincl: bool,
    /// `ICMP_FILTER`: a set bit drops that ICMP type.
    filter4: u32,
    /// `ICMP6_FILTER`: a set bit drops that ICMPv6 type.
    filter6: [u32; 8],
    /// `IPV6_CHECKSUM` offset (-1: none; ICMPv6 always 2).
    csum_off: i32,
    recvttl: bool,
    /// When the last message read arrived (`SIOCGSTAMP`).
    stamp: Option<SystemTime>,
}

/// An ICMP (ping or raw) socket.
pub struct IcmpInner {
    family: Family,
    kind: Kind,
    ino: u64,
    uid: u32,
    /// A ping socket's identifier (0: not bound yet); changed only under
    /// [`ident_lock`], read by other sockets' allocations without their locks.
    ident: AtomicU16,
    wq: WaitQueue,
    st: Mutex<State>,
    /// The network the socket was made in.
    pub(crate) net: Arc<Netstack>,
}

/// The ICMP sockets of one network stack.
#[derive(Default)]
pub struct IcmpTable {
    /// Every socket made (dead ones swept now and then).
    all: Mutex<Vec<Weak<IcmpInner>>>,
    /// Serializes identifier allocation.
    ident_lock: Mutex<()>,
    /// Where the search for a free ping identifier starts.
    rover: AtomicU16,
    /// The IPv4 identification of the headers raw sockets receive.
    ip_id: AtomicU16,
}

impl IcmpTable {
    fn registry(&self) -> MutexGuard<'_, Vec<Weak<IcmpInner>>> {
        self.all.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live(&self) -> Vec<Arc<IcmpInner>> {
        let mut v = self.registry();
        v.retain(|w| w.strong_count() > 0);
        v.iter().filter_map(Weak::upgrade).collect()
    }
}

/// What one receive returned.
pub struct Received {
    /// The bytes copied (at most what was asked for).
    pub data: Vec<u8>,
    /// The message's full length.
    pub full_len: usize,
    /// The sender (port 0, as Linux reports).
    pub from: SockAddr,
}

/// The ICMP protocol of a family.
fn icmp_proto(family: Family) -> u8 {
    match family {
        Family::V4 => PROTO_ICMP,
        Family::V6 => PROTO_ICMPV6,
    }
}

/// Whether the group `gid` (or one of `groups`) may open ping sockets under
/// `net`'s `net.ipv4.ping_group_range`.
pub fn ping_allowed(net: &Netstack, egid: u32, groups: &[u32]) -> bool {
    let (lo, hi) = crate::net::procfs::ping_group_range(net);
    let ok = |g: u32| lo <= g && g <= hi;
    ok(egid) || groups.iter().any(|&g| ok(g))
}

impl IcmpInner {
    /// A new socket of `net`; `proto` is the protocol asked for (checked by the
    /// caller).
    pub fn new(net: &Arc<Netstack>, family: Family, kind: Kind, uid: u32) -> Arc<IcmpInner> {
        let s = Arc::new(IcmpInner {
            family,
            kind,
            ino: next_ino(),
            uid,
            ident: AtomicU16::new(0),
            wq: WaitQueue::new(),
            st: Mutex::new(State {
                opts: SockOpts::new(false),
                bound: None,
                peer: None,
                queue: VecDeque::new(),
                charged: 0,
                shut_rd: false,
                shut_wr: false,
                hdrincl: kind == Kind::Raw(PROTO_RAW),
                filter4: 0,
                filter6: [0; 8],
                csum_off: if kind == Kind::Raw(PROTO_ICMPV6) {
                    2
                } else {
                    -1
                },
                recvttl: false,
                stamp: None,
            }),
            net: net.clone(),
        });
        let mut all = net.icmp.registry();
        if all.len() >= 64 && all.len().is_power_of_two() {
            all.retain(|w| w.strong_count() > 0);
        }
        all.push(Arc::downgrade(&s));
        drop(all);
        s
    }

    fn lock(&self) -> SysResult<MutexGuard<'_, State>> {
        self.st.lock().map_err(|_| Errno::EIO)
    }

    /// The socket's family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Ping or raw, and the protocol.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// `SO_PROTOCOL`.
    pub fn protocol(&self) -> i32 {
        match self.kind {
            Kind::Ping => icmp_proto(self.family) as i32,
            Kind::Raw(p) => p as i32,
        }
    }

    /// The queue notified when readiness may change.
    pub fn queue(&self) -> &WaitQueue {
        &self.wq
    }

    /// `fstat`'s inode number.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The ping identifier (0 before binding).
    fn ident(&self) -> u16 {
        self.ident.load(Ordering::Relaxed)
    }

    /// The socket's owner (`/proc/net/icmp`).
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// Gives a ping socket an identifier: `want`, or a free one when 0
    /// (`EADDRINUSE` when `want` is taken, `EAGAIN` when all are).
    fn take_ident(&self, st: &State, want: u16) -> SysResult<u16> {
        let table = &self.net.icmp;
        let _g = table.ident_lock.lock().unwrap_or_else(|e| e.into_inner());
        let others = table.live();
        let used = |id: u16| {
            others.iter().any(|o| {
                !std::ptr::eq(&**o, self)
                    && o.kind == Kind::Ping
                    && o.family == self.family
                    && o.ident() == id
            })
        };
        let id = if want != 0 {
            // Linux shares an identifier only between sockets that both set
            // SO_REUSEADDR; a taken one is refused unless this socket set it.
            if used(want) && !st.opts.reuseaddr {
                return Err(Errno::EADDRINUSE);
            }
            want
        } else {
            (0..=u16::MAX as u32)
                .map(|_| table.rover.fetch_add(1, Ordering::Relaxed).wrapping_add(1))
                .find(|&id| id != 0 && !used(id))
                .ok_or(Errno::EAGAIN)?
        };
        self.ident.store(id, Ordering::Relaxed);
        Ok(id)
    }

    fn check_dst_family(&self, ip: IpAddr) -> SysResult<()> {
        match (self.family, ip) {
            (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_)) => Ok(()),
            // A v6 ICMP socket cannot reach an IPv4 (mapped) address.
            (Family::V6, IpAddr::V4(_)) => Err(Errno::EINVAL),
            (Family::V4, IpAddr::V6(_)) => Err(Errno::EAFNOSUPPORT),
        }
    }

    /// `bind(2)`: the local address, and a ping socket's identifier (the port).
    pub fn bind(&self, addr: SockAddr) -> SysResult<()> {
        self.check_dst_family(addr.ip)?;
        let mut st = self.lock()?;
        if st.bound.is_some() || self.ident() != 0 {
            return Err(Errno::EINVAL);
        }
        self.net.check_bindable(addr.ip)?;
        if self.kind == Kind::Ping {
            self.take_ident(&st, addr.port)?;
        }
        st.bound = (!addr.ip.is_unspecified()).then_some(addr.ip);
        Ok(())
    }

    /// `connect(2)`: the default destination (and, for raw sockets, the only
    /// accepted source).
    pub fn connect(&self, dst: SockAddr) -> SysResult<()> {
        self.check_dst_family(dst.ip)?;
        let (dst_ip, _) = self.net.route(dst.ip)?;
        let mut st = self.lock()?;
        if self.kind == Kind::Ping && self.ident() == 0 {
            self.take_ident(&st, 0)?;
        }
        st.peer = Some(dst_ip);
        Ok(())
    }

    /// `connect` with `AF_UNSPEC`.
    pub fn disconnect(&self) -> SysResult<()> {
        self.lock()?.peer = None;
        Ok(())
    }

    /// Sends one message to `to` (or the connected peer). `data` is the ICMP
    /// message (a whole IP datagram with `IP_HDRINCL`).
    pub fn send(&self, data: &[u8], to: Option<SockAddr>) -> SysResult<usize> {
        if self.kind == Kind::Ping {
            // Linux checks the message before the destination.
            let (req, hdr) = match self.family {
                Family::V4 => (ECHO_REQUEST, 8 + 20),
                Family::V6 => (ECHO_REQUEST_V6, 8 + 40),
            };
            if data.len() + hdr > MAX_DATAGRAM {
                return Err(Errno::EMSGSIZE);
            }
            if data.len() < 8 || data[0] != req || data[1] != 0 {
                return Err(Errno::EINVAL);
            }
        }
        let st = self.lock()?;
        if st.shut_wr {
            return Err(Errno::EPIPE);
        }
        let dst = match to {
            Some(d) => {
                self.check_dst_family(d.ip)?;
                d.ip
            }
            None => st.peer.ok_or(Errno::EDESTADDRREQ)?,
        };
        if data.len() > MAX_DATAGRAM {
            return Err(Errno::EMSGSIZE);
        }
        if st.hdrincl && self.family == Family::V4 {
            // The kernel writes the total length, whatever the caller put there.
            let mut d = data.to_vec();
            if d.len() >= 4 {
                let len = (d.len() as u16).to_be_bytes();
                d[2..4].copy_from_slice(&len);
            }
            let pkt = parse_v4(&d).ok_or(Errno::EINVAL)?;
            if pkt.proto != PROTO_ICMP {
                // Only ICMP is carried as packets; a TCP or UDP datagram written by
                // hand would have to be fed to those in-memory protocols.
                tracing::warn!(
                    proto = pkt.proto,
                    "IP_HDRINCL datagram of a protocol other than ICMP: EPROTONOSUPPORT"
                );
                return Err(Errno::EPROTONOSUPPORT);
            }
            // The destination is the one routed (and checked against the concealed
            // metadata address), whatever the header says, as Linux routes it.
            let (dst_ip, src_ip) = self.net.route(dst)?;
            let src = if pkt.src.is_unspecified() {
                src_ip
            } else {
                pkt.src
            };
            drop(st);
            transmit(
                &self.net,
                Packet {
                    src,
                    dst: dst_ip,
                    ..pkt
                },
            )?;
            return Ok(data.len());
        }
        let proto = match self.kind {
            Kind::Ping => icmp_proto(self.family),
            Kind::Raw(p) => p,
        };
        let mut msg = data.to_vec();
        if self.kind == Kind::Ping {
            let ident = match self.ident() {
                0 => self.take_ident(&st, 0)?,
                id => id,
            };
            msg[4..6].copy_from_slice(&ident.to_be_bytes());
        } else if self.family == Family::V4 && msg.len() + 20 > MAX_DATAGRAM {
            return Err(Errno::EMSGSIZE);
        }
        let (dst_ip, route_src) = self.net.route(dst)?;
        let src = st.bound.unwrap_or(route_src);
        let ttl = match st.opts.ttl {
            t if (1..=255).contains(&t) => t as u8,
            _ => DEFAULT_TTL,
        };
        let tos = st.opts.tos as u8;
        let csum_off = match self.kind {
            Kind::Ping => 2,
            Kind::Raw(_) if self.family == Family::V6 => st.csum_off,
            Kind::Raw(_) => -1,
        };
        drop(st);
        if csum_off >= 0 {
            let off = csum_off as usize;
            if off + 1 >= msg.len() {
                return Err(Errno::EINVAL);
            }
            msg[off..off + 2].fill(0);
            let sum = checksum(src, dst_ip, proto, &msg);
            msg[off..off + 2].copy_from_slice(&sum.to_be_bytes());
        }
        transmit(
            &self.net,
            Packet {
                src,
                dst: dst_ip,
                proto,
                ttl,
                tos,
                payload: msg,
            },
        )?;
        Ok(data.len())
    }

    /// Whether this socket takes `pkt` (before any filtering of raw sockets by
    /// their filters), and what it would queue.
    fn accepts(&self, pkt: &Packet, v4_header: &[u8]) -> Option<Vec<u8>> {
        let st = self.st.lock().ok()?;
        if st.shut_rd || st.bound.is_some_and(|b| b != pkt.dst) {
            return None;
        }
        let pkt_family = if pkt.src.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        };
        if pkt_family != self.family {
            return None;
        }
        match self.kind {
            Kind::Ping => {
                let reply = match self.family {
                    Family::V4 => ECHO_REPLY,
                    Family::V6 => ECHO_REPLY_V6,
                };
                let p = &pkt.payload;
                let ok = pkt.proto == icmp_proto(self.family)
                    && p.len() >= 8
                    && p[0] == reply
                    && self.ident() != 0
                    && u16::from_be_bytes([p[4], p[5]]) == self.ident();
                ok.then(|| p.clone())
            }
            Kind::Raw(proto) => {
                if proto != pkt.proto || proto == PROTO_RAW || st.peer.is_some_and(|p| p != pkt.src)
                {
                    return None;
                }
                let ty = *pkt.payload.first()?;
                match self.family {
                    Family::V4 => {
                        if proto == PROTO_ICMP && ty < 32 && st.filter4 & (1 << ty) != 0 {
                            return None;
                        }
                        let mut d = v4_header.to_vec();
                        d.extend_from_slice(&pkt.payload);
                        Some(d)
                    }
                    Family::V6 => {
                        if proto == PROTO_ICMPV6
                            && st.filter6[(ty >> 5) as usize] & (1 << (ty & 31)) != 0
                        {
                            return None;
                        }
                        Some(pkt.payload.clone())
                    }
                }
            }
        }
    }

    fn deliver(&self, from: IpAddr, data: Vec<u8>) {
        let Ok(mut st) = self.lock() else {
            return;
        };
        let cost = data.len() + OVERHEAD;
        if st.charged + cost > st.opts.rcvbuf.max(0) as usize && !st.queue.is_empty() {
            return;
        }
        st.charged += cost;
        st.queue.push_back(Msg {
            from,
            data,
            at: SystemTime::now(),
        });
        drop(st);
        self.wq.notify_all();
    }

    /// Takes (or, `peek`, copies) the next message, up to `len` bytes of it.
    pub fn recv(&self, len: usize, peek: bool) -> SysResult<Received> {
        let mut st = self.lock()?;
        let Some(m) = st.queue.front() else {
            if st.shut_rd {
                return Ok(Received {
                    data: Vec::new(),
                    full_len: 0,
                    from: SockAddr::new(self.family.any(), 0),
                });
            }
            return Err(Errno::EAGAIN);
        };
        let n = len.min(m.data.len());
        let out = Received {
            data: m.data[..n].to_vec(),
            full_len: m.data.len(),
            from: SockAddr::new(m.from, 0),
        };
        let at = m.at;
        st.stamp = Some(at);
        if !peek {
            if let Some(m) = st.queue.pop_front() {
                st.charged = st.charged.saturating_sub(m.data.len() + OVERHEAD);
            }
        }
        Ok(out)
    }

    /// When the last message read arrived (`SIOCGSTAMP`; `ENOENT` before any).
    pub fn stamp(&self) -> SysResult<SystemTime> {
        self.lock()?.stamp.ok_or(Errno::ENOENT)
    }

    /// `shutdown(2)`: only a connected socket may (`ENOTCONN`).
    pub fn shutdown(&self, how: i32) -> SysResult<()> {
        let mut st = self.lock()?;
        if st.peer.is_none() {
            return Err(Errno::ENOTCONN);
        }
        if how != libc::SHUT_WR {
            st.shut_rd = true;
        }
        if how != libc::SHUT_RD {
            st.shut_wr = true;
        }
        drop(st);
        self.wq.notify_all();
        Ok(())
    }

    /// `poll` bits (Linux's `datagram_poll`).
    pub fn readiness(&self) -> u32 {
        let Ok(st) = self.lock() else {
            return libc::POLLERR as u32;
        };
        let mut r = (libc::POLLOUT | libc::POLLWRNORM) as u32;
        if st.shut_rd {
            r |= (libc::POLLIN | libc::POLLRDNORM | libc::POLLRDHUP) as u32;
        }
        if st.shut_rd && st.shut_wr {
            r |= libc::POLLHUP as u32;
        }
        if !st.queue.is_empty() {
            r |= (libc::POLLIN | libc::POLLRDNORM) as u32;
        }
        r
    }

    /// The local address (`getsockname`): a ping socket's port is its identifier,
    /// a raw socket's its protocol (as Linux shows them).
    pub fn local(&self) -> SockAddr {
        let Ok(st) = self.lock() else {
            return SockAddr::new(self.family.any(), 0);
        };
        let port = match self.kind {
            Kind::Ping => self.ident(),
            Kind::Raw(p) => p as u16,
        };
        SockAddr::new(st.bound.unwrap_or(self.family.any()), port)
    }

    /// The peer (`getpeername`).
    pub fn peer(&self) -> SysResult<SockAddr> {
        self.lock()?
            .peer
            .map(|p| SockAddr::new(p, 0))
            .ok_or(Errno::ENOTCONN)
    }

    /// (size of the next message, bytes queued).
    pub fn pending(&self) -> (usize, usize) {
        self.lock()
            .map(|s| {
                (
                    s.queue.front().map(|d| d.data.len()).unwrap_or(0),
                    s.queue.iter().map(|d| d.data.len()).sum(),
                )
            })
            .unwrap_or((0, 0))
    }

    /// The socket's timeouts.
    pub fn timeout(&self, send: bool) -> Option<std::time::Duration> {
        self.lock().ok().and_then(|s| s.opts.timeout(send))
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            family: self.family,
            tcp: false,
            bound: false,
        }
    }

    fn is_raw(&self) -> bool {
        matches!(self.kind, Kind::Raw(_))
    }

    /// `setsockopt(2)`.
    pub fn setsockopt(&self, level: i32, name: i32, v: &[u8]) -> SysResult<()> {
        let mut st = self.lock()?;
        let raw_icmp4 = self.kind == Kind::Raw(PROTO_ICMP) && self.family == Family::V4;
        let raw_icmp6 = self.kind == Kind::Raw(PROTO_ICMPV6) && self.family == Family::V6;
        match (level, name) {
            (SOL_RAW, ICMP_FILTER) if self.family == Family::V4 && self.is_raw() => {
                if !raw_icmp4 {
                    return Err(Errno::EOPNOTSUPP);
                }
                let mut b = [0u8; 4];
                let n = v.len().min(4);
                b[..n].copy_from_slice(&v[..n]);
                st.filter4 = u32::from_le_bytes(b);
                Ok(())
            }
            (libc::IPPROTO_ICMPV6, ICMP6_FILTER) if self.family == Family::V6 => {
                if !raw_icmp6 {
                    return Err(Errno::EOPNOTSUPP);
                }
                let mut f = [0u32; 8];
                for (i, w) in v.chunks(4).take(8).enumerate() {
                    let mut b = [0u8; 4];
                    b[..w.len()].copy_from_slice(w);
                    f[i] = u32::from_le_bytes(b);
                }
                st.filter6 = f;
                Ok(())
            }
            (libc::IPPROTO_IPV6 | SOL_RAW, IPV6_CHECKSUM)
                if self.family == Family::V6 && self.is_raw() =>
            {
                if raw_icmp6 && level == libc::IPPROTO_IPV6 {
                    return Err(Errno::EINVAL);
                }
                let x = int_of(v)?;
                if x > 0 && x & 1 != 0 {
                    return Err(Errno::EINVAL);
                }
                st.csum_off = if x < 0 { -1 } else { x };
                Ok(())
            }
            (libc::IPPROTO_IP, libc::IP_HDRINCL) if self.family == Family::V4 => {
                if !self.is_raw() {
                    return Err(Errno::ENOPROTOOPT);
                }
                if self.kind == Kind::Raw(PROTO_RAW) {
                    return Ok(());
                }
                st.hdrincl = int_of(v)? != 0;
                Ok(())
            }
            (libc::IPPROTO_IP, IP_RECVTTL) if self.family == Family::V4 => {
                st.recvttl = int_of(v)? != 0;
                Ok(())
            }
            (libc::IPPROTO_IPV6, IPV6_RECVHOPLIMIT) if self.family == Family::V6 => {
                st.recvttl = int_of(v)? != 0;
                Ok(())
            }
            _ => {
                let ctx = self.ctx();
                if st.opts.set(ctx, level, name, v)? {
                    Ok(())
                } else {
                    Err(Errno::ENOPROTOOPT)
                }
            }
        }
    }

    /// `getsockopt(2)`.
    pub fn getsockopt(&self, level: i32, name: i32) -> SysResult<Vec<u8>> {
        let st = self.lock()?;
        let int = |x: i32| x.to_le_bytes().to_vec();
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_ERROR) | (libc::SOL_SOCKET, libc::SO_ACCEPTCONN) => {
                Ok(int(0))
            }
            (SOL_RAW, ICMP_FILTER) if self.family == Family::V4 && self.is_raw() => {
                if self.kind != Kind::Raw(PROTO_ICMP) {
                    return Err(Errno::EOPNOTSUPP);
                }
                Ok(st.filter4.to_le_bytes().to_vec())
            }
            (libc::IPPROTO_ICMPV6, ICMP6_FILTER) if self.family == Family::V6 => {
                if self.kind != Kind::Raw(PROTO_ICMPV6) {
                    return Err(Errno::EOPNOTSUPP);
                }
                Ok(st.filter6.iter().flat_map(|w| w.to_le_bytes()).collect())
            }
            (libc::IPPROTO_IPV6 | SOL_RAW, IPV6_CHECKSUM)
                if self.family == Family::V6 && self.is_raw() =>
            {
                Ok(int(st.csum_off))
            }
            (libc::IPPROTO_IP, libc::IP_HDRINCL) if self.family == Family::V4 => {
                if !self.is_raw() {
                    return Err(Errno::ENOPROTOOPT);
                }
                Ok(int(st.hdrincl as i32))
            }
            (libc::IPPROTO_IP, IP_RECVTTL) if self.family == Family::V4 => {
                Ok(int(st.recvttl as i32))
            }
            (libc::IPPROTO_IPV6, IPV6_RECVHOPLIMIT) if self.family == Family::V6 => {
                Ok(int(st.recvttl as i32))
            }
            _ => st
                .opts
                .get(self.ctx(), level, name)
                .ok_or(Errno::ENOPROTOOPT),
        }
    }
}

/// Sends `pkt` over `net`: back into the sandbox when its destination is local,
/// else out through the pod's interface.
pub fn transmit(net: &Netstack, pkt: Packet) -> SysResult<()> {
    if net.is_external(pkt.dst) {
        let ext = net.external().ok_or(Errno::ENETUNREACH)?;
        ext.ip_send(&encode(&pkt))?;
        return Ok(());
    }
    net.count(pkt.payload.len());
    count_looped(net, &pkt);
    if net.packet_sockets.any_open() {
        net.packet_sockets
            .tap_loopback(&crate::net::frame::loopback_frame(&pkt));
    }
    input(net, pkt, true);
    Ok(())
}

/// Counts a packet carried over loopback (`/proc/net/snmp`): an IP datagram both
/// ways and, for an ICMP message, its type sent and received.
fn count_looped(net: &Netstack, pkt: &Packet) {
    let f = crate::net::snmp::fam_of(pkt.dst);
    net.snmp.looped(f);
    let icmp = if f == 0 { PROTO_ICMP } else { PROTO_ICMPV6 };
    if let (true, Some(&ty)) = (pkt.proto == icmp, pkt.payload.first()) {
        net.snmp.icmp_msg(f, ty, true);
        net.snmp.icmp_msg(f, ty, false);
    }
}

/// An IP packet arriving at the sandbox: copies to the raw sockets that match,
/// echo replies to their ping socket, and (`local`: from the sandbox itself) an
/// echo request answered.
pub fn input(net: &Netstack, pkt: Packet, local: bool) {
    let v4h = if pkt.src.is_ipv4() {
        // Starts at 1, as the counter did when it was process-wide.
        let id = net
            .icmp
            .ip_id
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        v4_header(&pkt, id)
    } else {
        Vec::new()
    };
    for s in net.icmp.live() {
        if let Some(d) = s.accepts(&pkt, &v4h) {
            s.deliver(pkt.src, d);
        }
    }
    let (req, rep) = if pkt.src.is_ipv4() {
        (ECHO_REQUEST, ECHO_REPLY)
    } else {
        (ECHO_REQUEST_V6, ECHO_REPLY_V6)
    };
    let icmp = if pkt.src.is_ipv4() {
        PROTO_ICMP
    } else {
        PROTO_ICMPV6
    };
    if local && pkt.proto == icmp && pkt.payload.len() >= 8 && pkt.payload[0] == req {
        // The ICMP layer's answer, as Linux's icmp_echo gives it.
        let mut msg = pkt.payload.clone();
        msg[0] = rep;
        msg[1] = 0;
        msg[2..4].fill(0);
        let sum = checksum(pkt.dst, pkt.src, icmp, &msg);
        msg[2..4].copy_from_slice(&sum.to_be_bytes());
        let reply = Packet {
            src: pkt.dst,
            dst: pkt.src,
            proto: icmp,
            ttl: DEFAULT_TTL,
            tos: pkt.tos,
            payload: msg,
        };
        net.count(reply.payload.len());
        count_looped(net, &reply);
        if net.packet_sockets.any_open() {
            net.packet_sockets
                .tap_loopback(&crate::net::frame::loopback_frame(&reply));
        }
        input(net, reply, false);
    }
}

/// A datagram from `net`'s pod interface (its IP header included).
pub fn input_external(net: &Netstack, datagram: &[u8]) {
    let pkt = match datagram.first().map(|b| b >> 4) {
        Some(4) => parse_v4(datagram),
        Some(6) => parse_v6(datagram),
        _ => None,
    };
    if let Some(pkt) = pkt {
        input(net, pkt, false);
    }
}

/// Whether any ICMP socket of `net` is open (the pod interface copies ICMP only
/// then).
pub fn any_open(net: &Netstack) -> bool {
    net.icmp.registry().iter().any(|w| w.strong_count() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn lo4() -> IpAddr {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }

    #[test]
    fn ping_socket_gets_its_echo_reply_on_loopback() {
        let net = Netstack::new();
        let s = IcmpInner::new(&net, Family::V4, Kind::Ping, 0);
        let mut req = vec![ECHO_REQUEST, 0, 0, 0, 0, 0, 0, 7];
        req.extend_from_slice(b"payload");
        assert_eq!(s.send(&req, Some(SockAddr::new(lo4(), 0))), Ok(15));
        let ident = s.local().port;
        assert_ne!(ident, 0);
        let got = s.recv(100, false).unwrap();
        assert_eq!(got.data[0], ECHO_REPLY);
        assert_eq!(u16::from_be_bytes([got.data[4], got.data[5]]), ident);
        assert_eq!(&got.data[6..8], &[0, 7]);
        assert_eq!(&got.data[8..], b"payload");
        assert_eq!(checksum(lo4(), lo4(), 0, &got.data), 0);
        assert_eq!(got.from.ip, lo4());
        // Only echo requests may be sent.
        let bad = vec![13u8, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            s.send(&bad, Some(SockAddr::new(lo4(), 0))),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            s.send(&req[..7], Some(SockAddr::new(lo4(), 0))),
            Err(Errno::EINVAL)
        );
    }

    /// A loopback address of the test's own (each test has a stack of its own
    /// now; the addresses still tell the tests' packets apart when read).
    fn lo(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
    }

    #[test]
    fn raw_socket_sees_request_and_reply_with_ip_header() {
        let net = Netstack::new();
        let raw = IcmpInner::new(&net, Family::V4, Kind::Raw(PROTO_ICMP), 0);
        raw.bind(SockAddr::new(lo(5), 0)).unwrap();
        let mut req = vec![ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 1];
        let sum = checksum(lo4(), lo4(), 0, &req);
        req[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(raw.send(&req, Some(SockAddr::new(lo(5), 0))), Ok(8));
        let a = raw.recv(100, false).unwrap();
        let b = raw.recv(100, false).unwrap();
        assert_eq!((a.data.len(), a.data[0], a.data[9]), (28, 0x45, PROTO_ICMP));
        assert_eq!((a.data[20], b.data[20]), (ECHO_REQUEST, ECHO_REPLY));
        assert_eq!(&b.data[24..26], &[0x12, 0x34]);
        // ICMP_FILTER drops the types whose bit is set.
        raw.setsockopt(SOL_RAW, ICMP_FILTER, &(1u32 << ECHO_REQUEST).to_le_bytes())
            .unwrap();
        raw.send(&req, Some(SockAddr::new(lo(5), 0))).unwrap();
        assert_eq!(raw.recv(100, false).unwrap().data[20], ECHO_REPLY);
        assert_eq!(raw.recv(100, false).err(), Some(Errno::EAGAIN));
    }

    #[test]
    fn the_metadata_server_is_not_reached_by_icmp() {
        let net = Netstack::new();
        let md = IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254));
        let s = IcmpInner::new(&net, Family::V4, Kind::Ping, 0);
        let req = vec![ECHO_REQUEST, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            s.send(&req, Some(SockAddr::new(md, 0))),
            Err(Errno::ENETUNREACH)
        );
        let raw = IcmpInner::new(&net, Family::V4, Kind::Raw(PROTO_RAW), 0);
        let mut d = v4_header(
            &Packet {
                src: lo4(),
                dst: md,
                proto: PROTO_ICMP,
                ttl: 64,
                tos: 0,
                payload: req.clone(),
            },
            0,
        );
        d.extend_from_slice(&req);
        assert_eq!(
            raw.send(&d, Some(SockAddr::new(md, 0))),
            Err(Errno::ENETUNREACH)
        );
        // A header naming the metadata server, sent to loopback: it goes where it
        // was routed, and is answered from there.
        let watch = IcmpInner::new(&net, Family::V4, Kind::Raw(PROTO_ICMP), 0);
        watch.bind(SockAddr::new(lo(6), 0)).unwrap();
        assert_eq!(raw.send(&d, Some(SockAddr::new(lo(6), 0))), Ok(d.len()));
        let got = watch.recv(100, false).unwrap();
        assert_eq!(&got.data[16..20], &[127, 0, 0, 6]);
        assert_eq!(got.data[20], ECHO_REQUEST);
        // Other protocols are not carried.
        d[9] = 17;
        assert_eq!(
            raw.send(&d, Some(SockAddr::new(lo4(), 0))),
            Err(Errno::EPROTONOSUPPORT)
        );
    }

    #[test]
    fn ping_group_range_decides_who_may_ping() {
        let net = Netstack::new();
        use crate::net::procfs::{ping_group_range, set_ping_group_range};
        assert_eq!(ping_group_range(&net), (1, 0));
        assert!(!ping_allowed(&net, 0, &[]));
        assert_eq!(set_ping_group_range(&net, b"-1 5"), Err(Errno::EINVAL));
        assert_eq!(
            set_ping_group_range(&net, b"0 2147483648"),
            Err(Errno::EINVAL)
        );
        assert_eq!(set_ping_group_range(&net, b""), Err(Errno::EINVAL));
        set_ping_group_range(&net, b"100 200\n").unwrap();
        assert!(
            ping_allowed(&net, 150, &[])
                && ping_allowed(&net, 7, &[8, 100])
                && !ping_allowed(&net, 0, &[])
        );
        // One number changes the low end only; a high below the low is nobody.
        set_ping_group_range(&net, b"300").unwrap();
        assert_eq!(ping_group_range(&net), (1, 0));
        set_ping_group_range(&net, b"1 0").unwrap();
    }

    #[test]
    fn v6_ping_checksums_with_the_pseudo_header() {
        let net = Netstack::new();
        let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let s = IcmpInner::new(&net, Family::V6, Kind::Ping, 0);
        let req = vec![ECHO_REQUEST_V6, 0, 0, 0, 0, 0, 0, 3, 9];
        assert_eq!(s.send(&req, Some(SockAddr::new(lo6, 0))), Ok(9));
        let got = s.recv(100, false).unwrap();
        assert_eq!(got.data[0], ECHO_REPLY_V6);
        assert_eq!(checksum(lo6, lo6, PROTO_ICMPV6, &got.data), 0);
        assert_eq!(
            s.send(&req, Some(SockAddr::new(lo4(), 0))),
            Err(Errno::EINVAL)
        );
    }
}
