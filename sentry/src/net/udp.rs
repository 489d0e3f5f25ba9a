//! UDP sockets. A datagram over loopback goes straight into the receiving socket's
//! queue (the bound socket the port table finds for its destination); a full queue
//! drops it, as Linux does. A datagram nobody receives refuses a connected sender
//! (`ECONNREFUSED` on its next call, Linux's ICMP port-unreachable), and with
//! `IP_RECVERR` any sender, which then also finds the error in its error queue
//! (`recvmsg` with `MSG_ERRQUEUE`).
//!
//! A UDP-Lite socket (RFC 3828, `IPPROTO_UDPLITE`) is the same code over a port
//! table of its own, with the checksum coverage options; it stays on loopback (the
//! pod interface carries no UDP-Lite: `ENETUNREACH`).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::errno::{Errno, SysResult};
use crate::net::addr::{Family, Local, SockAddr};
use crate::net::cmsg::{self, Cmsg, Rx, Tx};
use crate::net::ippacket::Packet;
use crate::net::mcast::McastOpts;
use crate::net::opts::{Ctx, SockOpts};
use crate::net::ports::{BindOpts, PortTable};
use crate::net::{next_ino, Netstack};
use crate::wait::WaitQueue;

/// Largest UDP payload over IPv4 (65535 less the IP and UDP headers).
pub const MAX_V4: usize = 65_507;
/// Largest UDP payload over IPv6 (no jumbograms).
pub const MAX_V6: usize = 65_527;
/// What Linux charges per queued datagram beyond its bytes (an skb's overhead), so
/// that a receive buffer holds a realistic number of small datagrams.
const OVERHEAD: usize = 768;

struct Dgram {
    from: SockAddr,
    data: Vec<u8>,
    /// Its destination, hop limit and traffic class.
    rx: Rx,
}

/// Linux's `SO_EE_ORIGIN_ICMP`.
const ORIGIN_ICMP: u8 = 2;
/// Linux's `SO_EE_ORIGIN_ICMP6`.
const ORIGIN_ICMP6: u8 = 3;
/// What an ICMP message about a loopback datagram quotes of its payload: the
/// message is at most 576 bytes (IPv4: less its IP, ICMP, quoted IP and UDP
/// headers) or the IPv6 minimum MTU of 1280 (less 40 + 8 + 40 + 8), as Linux's
/// `icmp_send` and `icmp6_send` cut it.
const QUOTED_V4: usize = 576 - 20 - 8 - 20 - UDP_HDR;
const QUOTED_V6: usize = 1280 - 40 - 8 - 40 - UDP_HDR;

/// An ICMP port unreachable about a datagram the sandbox sent: what a socket with
/// `IP_RECVERR` finds in its error queue (Linux's `sock_extended_err` with
/// `ECONNREFUSED`, the offender and the quoted payload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpError {
    /// The datagram's source: the socket that sent it.
    pub from: SockAddr,
    /// The datagram's destination.
    pub to: SockAddr,
    /// The ICMP message's source.
    pub offender: IpAddr,
    /// The datagram's payload, as much as the message quoted.
    pub payload: Vec<u8>,
}

impl IcmpError {
    /// The `IP_RECVERR` (`v6`: `IPV6_RECVERR`) control message a socket of that
    /// family reads: `struct sock_extended_err`, then the offender's `sockaddr`.
    fn cmsg(&self, family: Family) -> Cmsg {
        // An IPv4 address is canonical here, so the message was ICMP, not ICMPv6.
        let (origin, ty, code) = if self.offender.is_ipv4() {
            (ORIGIN_ICMP, 3, 3)
        } else {
            (ORIGIN_ICMP6, 1, 4)
        };
        let mut data = (Errno::ECONNREFUSED.0 as u32).to_le_bytes().to_vec();
        data.extend_from_slice(&[origin, ty, code, 0]);
        // ee_info and ee_data: nothing for a port unreachable.
        data.extend_from_slice(&[0; 8]);
        data.extend_from_slice(&crate::net::addr::encode(
            family,
            SockAddr::new(self.offender, 0),
        ));
        let (level, ty) = match family {
            Family::V4 => (libc::IPPROTO_IP, libc::IP_RECVERR),
            Family::V6 => (libc::IPPROTO_IPV6, libc::IPV6_RECVERR),
        };
        Cmsg { level, ty, data }
    }

    /// What the receive buffer is charged for it.
    fn cost(&self) -> usize {
        self.payload.len() + OVERHEAD
    }
}

/// The state of a UDP socket behind its lock.
struct UdpState {
    opts: SockOpts,
    bound: Option<(Local, u16, u64)>,
    peer: Option<SockAddr>,
    /// Our address as the peer sees it once connected.
    conn_local: Option<IpAddr>,
    queue: VecDeque<Dgram>,
    /// The error queue (`IP_RECVERR`), charged to the receive buffer as Linux does.
    errq: VecDeque<IcmpError>,
    charged: usize,
    err: Option<Errno>,
    shut_rd: bool,
    shut_wr: bool,
    /// `bind` named the port: a disconnect keeps it (Linux's SOCK_BINDPORT_LOCK).
    port_locked: bool,
    /// The port also bound on the pod's interface (`--network=sandbox`).
    ext_port: Option<u16>,
    /// Multicast memberships and options.
    mcast: McastOpts,
    /// UDP-Lite's `UDPLITE_SEND_CSCOV` (0: the whole datagram).
    send_cscov: i32,
    /// UDP-Lite's `UDPLITE_RECV_CSCOV` once set: the least coverage taken.
    recv_cscov: Option<i32>,
}

impl UdpState {
    fn unbind(&mut self, net: &Netstack, lite: bool) {
        if let Some((_, _, id)) = self.bound.take() {
            ports_of(net, lite).unbind(id);
        }
        if let (Some(p), Some(ext)) = (self.ext_port.take(), net.external()) {
            ext.udp_unbind(p);
        }
    }
}

/// A UDP socket.
pub struct UdpInner {
    family: Family,
    ino: u64,
    uid: u32,
    wq: WaitQueue,
    st: Mutex<UdpState>,
    /// UDP-Lite (else UDP).
    lite: bool,
    /// The network the socket was made in.
    pub(crate) net: Arc<Netstack>,
}

/// The UDP (or UDP-Lite) counters of the family of a datagram to `dst`.
fn ports_mib(net: &Netstack, lite: bool, dst: IpAddr) -> &crate::net::snmp::UdpMib {
    let f = crate::net::snmp::fam_of(dst);
    if lite {
        &net.snmp.udplite[f]
    } else {
        &net.snmp.udp[f]
    }
}

fn ports_of(net: &Netstack, lite: bool) -> &PortTable<UdpInner> {
    if lite {
        &net.udplite
    } else {
        &net.udp
    }
}

/// `SOL_UDPLITE`.
const SOL_UDPLITE: i32 = libc::IPPROTO_UDPLITE;
/// `UDPLITE_SEND_CSCOV`.
const UDPLITE_SEND_CSCOV: i32 = 10;
/// `UDPLITE_RECV_CSCOV`.
const UDPLITE_RECV_CSCOV: i32 = 11;
/// The UDP header's length.
const UDP_HDR: usize = 8;
/// UDP-Lite's IP protocol number.
const UDPLITE_PROTO: u8 = 136;

impl Drop for UdpInner {
    fn drop(&mut self) {
        let lite = self.lite;
        if let Ok(st) = self.st.get_mut() {
            st.unbind(&self.net, lite);
            st.mcast.leave_all(&self.net);
        }
    }
}

/// What one receive returned.
pub struct Received {
    /// The bytes copied (at most what was asked for).
    pub data: Vec<u8>,
    /// The datagram's full length.
    pub full_len: usize,
    /// The sender.
    pub from: SockAddr,
    /// The control messages the socket asked for.
    pub cmsgs: Vec<Cmsg>,
}

impl UdpInner {
    /// A new socket of `net`, of `family`, owned by `uid`.
    pub fn new(net: &Arc<Netstack>, family: Family, uid: u32) -> Arc<UdpInner> {
        Self::make(net, family, uid, false)
    }

    /// A new UDP-Lite socket of `net`, of `family`, owned by `uid`.
    pub fn new_lite(net: &Arc<Netstack>, family: Family, uid: u32) -> Arc<UdpInner> {
        Self::make(net, family, uid, true)
    }

    fn make(net: &Arc<Netstack>, family: Family, uid: u32, lite: bool) -> Arc<UdpInner> {
        Arc::new(UdpInner {
            lite,
            net: net.clone(),
            family,
            ino: next_ino(),
            uid,
            wq: WaitQueue::new(),
            st: Mutex::new(UdpState {
                opts: SockOpts::new(false),
                bound: None,
                peer: None,
                conn_local: None,
                queue: VecDeque::new(),
                errq: VecDeque::new(),
                charged: 0,
                err: None,
                shut_rd: false,
                shut_wr: false,
                port_locked: false,
                ext_port: None,
                mcast: McastOpts::default(),
                send_cscov: 0,
                recv_cscov: None,
            }),
        })
    }

    /// `SO_PROTOCOL`.
    pub fn protocol(&self) -> i32 {
        if self.lite {
            libc::IPPROTO_UDPLITE
        } else {
            libc::IPPROTO_UDP
        }
    }

    fn ports(&self) -> &PortTable<UdpInner> {
        ports_of(&self.net, self.lite)
    }

    fn lock(&self) -> SysResult<MutexGuard<'_, UdpState>> {
        self.st.lock().map_err(|_| Errno::EIO)
    }

    /// The socket's family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The queue notified when readiness may change.
    pub fn queue(&self) -> &WaitQueue {
        &self.wq
    }

    /// `fstat`'s inode number.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    fn bind_locked(self: &Arc<Self>, st: &mut UdpState, ip: IpAddr, port: u16) -> SysResult<()> {
        if st.bound.is_some() {
            return Err(Errno::EINVAL);
        }
        // A multicast group may be bound too: the socket then takes only what is
        // sent to the group.
        if !crate::net::addr::canonical(ip).is_multicast() {
            self.net.check_bindable(ip)?;
        }
        let local = Local::of(self.family, ip, st.opts.v6only);
        let opts = BindOpts {
            reuseaddr: st.opts.reuseaddr,
            reuseport: st.opts.reuseport,
            uid: self.uid,
            tcp: false,
            connect: false,
        };
        let (id, port) = self.ports().bind(local, port, opts, Arc::downgrade(self))?;
        st.bound = Some((local, port, id));
        if let (Some(ext), true, false) =
            (self.net.external(), self.net.covers_external(ip), self.lite)
        {
            ext.udp_bind(port);
            st.ext_port = Some(port);
        }
        Ok(())
    }

    /// `bind(2)`.
    pub fn bind(self: &Arc<Self>, addr: SockAddr) -> SysResult<()> {
        let mut st = self.lock()?;
        if self.family == Family::V6
            && st.opts.v6only
            && addr.ip.is_ipv4()
            && !addr.ip.is_unspecified()
        {
            return Err(Errno::EADDRNOTAVAIL);
        }
        self.bind_locked(&mut st, addr.ip, addr.port)?;
        st.port_locked = addr.port != 0;
        // A specific IPv6 address makes the socket IPv6-only (`inet6_bind`).
        st.opts.v6only |= crate::net::addr::binds_v6_only(addr.ip);
        Ok(())
    }

    /// `connect(2)`: sets the default destination and the only accepted source.
    pub fn connect(self: &Arc<Self>, dst: SockAddr) -> SysResult<()> {
        let mut st = self.lock()?;
        if self.family == Family::V6 && dst.ip.is_ipv4() && st.opts.v6only {
            return Err(Errno::ENETUNREACH);
        }
        let (dst_ip, src_ip) = self.net.route(dst.ip)?;
        let src_ip = match st.bound {
            Some((Local::Ip(ip), _, _)) => ip,
            _ => src_ip,
        };
        if st.bound.is_none() {
            let any = self.family.any();
            self.bind_locked(&mut st, any, 0)?;
        }
        st.peer = Some(SockAddr::new(dst_ip, dst.port));
        st.conn_local = Some(src_ip);
        Ok(())
    }

    /// `connect` with `AF_UNSPEC`: forgets the peer.
    pub fn disconnect(&self) -> SysResult<()> {
        let mut st = self.lock()?;
        st.peer = None;
        st.conn_local = None;
        if !st.port_locked {
            // An automatically chosen port goes back with the association.
            st.unbind(&self.net, self.lite);
        }
        Ok(())
    }

    /// Sends one datagram to `to` (or the connected peer).
    pub fn send(self: &Arc<Self>, data: &[u8], to: Option<SockAddr>) -> SysResult<usize> {
        self.send_tx(data, to, Tx::default())
    }

    /// Sends one datagram to `to` (or the connected peer) with what `sendmsg`'s
    /// control messages asked of it.
    pub fn send_tx(
        self: &Arc<Self>,
        data: &[u8],
        to: Option<SockAddr>,
        tx: Tx,
    ) -> SysResult<usize> {
        let max = match self.family {
            Family::V4 => MAX_V4,
            Family::V6 => MAX_V6,
        };
        let mut st = self.lock()?;
        if let Some(e) = st.err.take() {
            return Err(e);
        }
        if st.shut_wr {
            return Err(Errno::EPIPE);
        }
        let dst = match to {
            Some(d) => {
                if self.family == Family::V6 && d.ip.is_ipv4() && st.opts.v6only {
                    return Err(Errno::ENETUNREACH);
                }
                d
            }
            None => st.peer.ok_or(Errno::EDESTADDRREQ)?,
        };
        if dst.port == 0 {
            return Err(Errno::EINVAL);
        }
        let max = if dst.ip.is_ipv4() { MAX_V4 } else { max };
        if data.len() > max {
            return Err(Errno::EMSGSIZE);
        }
        if let Some(src) = tx.src {
            self.net.check_bindable(src)?;
        }
        let group = crate::net::addr::canonical(dst.ip);
        if group.is_multicast() {
            return self.send_group(st, group, dst.port, data, tx);
        }
        let (dst_ip, src_ip) = self.net.route(dst.ip)?;
        if st.bound.is_none() {
            let any = self.family.any();
            self.bind_locked(&mut st, any, 0)?;
        }
        let src_ip = match (st.bound, st.conn_local, tx.src) {
            (_, _, Some(ip)) => ip,
            (Some((Local::Ip(ip), _, _)), _, _) => ip,
            (_, Some(ip), _) if to.is_none() => ip,
            _ => src_ip,
        };
        let from = SockAddr::new(src_ip, st.bound.map(|b| b.1).unwrap_or(0));
        let rx = Rx {
            cscov: self.coverage(&st, data.len()),
            dst: dst_ip,
            ifindex: crate::net::loopback::LO_INDEX,
            hops: tx.hops.unwrap_or(if st.opts.ttl < 0 {
                64
            } else {
                st.opts.ttl as u8
            }),
            tclass: tx.tclass.unwrap_or(st.opts.tos as u8),
        };
        drop(st);
        if let (true, Some(ext)) = (self.net.is_external(dst_ip), self.net.external()) {
            let to = SockAddr::new(dst_ip, dst.port);
            if self.lite {
                // smoltcp has no UDP-Lite: the datagram leaves whole through a raw
                // socket of the pod's interface.
                let pkt = lite_packet(from, to, data, rx.cscov, rx.hops, rx.tclass);
                ext.lite_send(&crate::net::ippacket::encode(&pkt))?;
                crate::net::snmp::inc(&self.mib(dst_ip).out_datagrams);
                return Ok(data.len());
            }
            let n = ext.udp_send(from, to, data)?;
            crate::net::snmp::inc(&self.mib(dst_ip).out_datagrams);
            return Ok(n);
        }
        if self.net.packet_sockets.any_open() {
            // Packet sockets see the frame `lo` would have carried.
            let pkt = crate::net::frame::udp_packet(from, SockAddr::new(dst_ip, dst.port), data);
            self.net
                .packet_sockets
                .tap_loopback(&crate::net::frame::loopback_frame(&pkt));
        }
        crate::net::snmp::inc(&self.mib(dst_ip).out_datagrams);
        let f = crate::net::snmp::fam_of(dst_ip);
        self.net.snmp.looped(f);
        // The filter runs under the port table's lock: no socket lock in it.
        match self.ports().lookup(dst_ip, dst.port, |_, _| true) {
            Some(r) => r.deliver(from, data, rx),
            None => {
                // Port unreachable: counted, and the ICMP error `lo` carries back.
                crate::net::snmp::inc(&self.mib(dst_ip).no_ports);
                let snmp = &self.net.snmp;
                let ty = if f == 0 { 3 } else { 1 };
                snmp.icmp_msg(f, ty, true);
                snmp.icmp_msg(f, ty, false);
                snmp.looped(f);
                // Loopback's ICMP comes from the address the datagram went to.
                let quoted = if crate::net::addr::canonical(dst_ip).is_ipv4() {
                    QUOTED_V4
                } else {
                    QUOTED_V6
                };
                self.icmp_error(IcmpError {
                    from,
                    to: SockAddr::new(dst_ip, dst.port),
                    offender: dst_ip,
                    payload: data[..data.len().min(quoted)].to_vec(),
                });
            }
        }
        Ok(data.len())
    }

    /// Sends a datagram to multicast `group`: out of the interface the multicast
    /// options or the routes choose, and back in where the sandbox accepts it.
    fn send_group(
        self: &Arc<Self>,
        mut st: MutexGuard<'_, UdpState>,
        group: IpAddr,
        port: u16,
        data: &[u8],
        tx: Tx,
    ) -> SysResult<usize> {
        let bound = match st.bound {
            Some((Local::Ip(ip), _, _)) => ip,
            _ => self.family.any(),
        };
        let (index, src) = st.mcast.route(&self.net, group, bound)?;
        if st.bound.is_none() {
            let any = self.family.any();
            self.bind_locked(&mut st, any, 0)?;
        }
        let from = SockAddr::new(tx.src.unwrap_or(src), st.bound.map(|b| b.1).unwrap_or(0));
        let to = SockAddr::new(group, port);
        let looped = st.mcast.loops(group, index);
        let hops = tx.hops.unwrap_or(st.mcast.hops(group));
        let rx = Rx {
            cscov: self.coverage(&st, data.len()),
            dst: group,
            ifindex: index,
            hops,
            tclass: tx.tclass.unwrap_or(st.opts.tos as u8),
        };
        drop(st);
        // A TTL of 0 keeps the datagram in the sandbox.
        if index == crate::net::packet::EXT_INDEX && hops > 0 && !self.lite {
            if let Some(ext) = self.net.external() {
                ext.udp_send(from, to, data)?;
            }
        } else if index == crate::net::loopback::LO_INDEX && self.net.packet_sockets.any_open() {
            let pkt = crate::net::frame::udp_packet(from, to, data);
            self.net
                .packet_sockets
                .tap_loopback(&crate::net::frame::loopback_frame(&pkt));
        }
        crate::net::snmp::inc(&self.mib(group).out_datagrams);
        if looped && self.net.mcast.accepts(index, group) {
            deliver_group(self.ports(), index, to, from, data, rx);
        }
        Ok(data.len())
    }

    fn deliver(&self, from: SockAddr, data: &[u8], rx: Rx) {
        let Ok(mut st) = self.lock() else {
            return;
        };
        if st.peer.is_some_and(|p| p != from) || st.shut_rd {
            return;
        }
        // UDP-Lite: a partly covered datagram must cover what the receiver asks.
        let partial = rx.cscov != 0 && (rx.cscov as usize) < data.len() + UDP_HDR;
        if let (Some(min), true) = (st.recv_cscov, partial) {
            if min == 0 || (rx.cscov as i32) < min {
                return;
            }
        }
        let cost = data.len() + OVERHEAD;
        let mib = ports_mib(&self.net, self.lite, rx.dst);
        if st.charged + cost > st.opts.rcvbuf.max(0) as usize && !st.queue.is_empty() {
            crate::net::snmp::inc(&mib.rcvbuf_errors);
            crate::net::snmp::inc(&mib.in_errors);
            return;
        }
        crate::net::snmp::inc(&mib.in_datagrams);
        st.charged += cost;
        self.net.count(data.len());
        st.queue.push_back(Dgram {
            from,
            data: data.to_vec(),
            rx,
        });
        drop(st);
        self.wq.notify_all();
    }

    /// Takes (or, `peek`, copies) the next datagram, up to `len` bytes of it.
    pub fn recv(&self, len: usize, peek: bool) -> SysResult<Received> {
        let mut st = self.lock()?;
        if let Some(e) = st.err.take() {
            return Err(e);
        }
        let Some(d) = st.queue.front() else {
            if st.shut_rd {
                return Ok(Received {
                    data: Vec::new(),
                    full_len: 0,
                    from: SockAddr::new(self.family.any(), 0),
                    cmsgs: Vec::new(),
                });
            }
            return Err(Errno::EAGAIN);
        };
        let n = len.min(d.data.len());
        let out = Received {
            data: d.data[..n].to_vec(),
            full_len: d.data.len(),
            from: d.from,
            cmsgs: cmsg::received(st.opts.want(), d.rx, self.family == Family::V6),
        };
        if !peek {
            if let Some(d) = st.queue.pop_front() {
                st.charged = st.charged.saturating_sub(d.data.len() + OVERHEAD);
            }
        }
        Ok(out)
    }

    /// An ICMP port unreachable for a datagram this socket sent, as Linux's
    /// `__udp4_lib_err`/`__udp6_lib_err` take it: with `IP_RECVERR` it is queued and
    /// the socket's pending error set whether or not the socket is connected;
    /// without, only a socket connected to the datagram's destination hears of it.
    /// Returns whether the socket took it.
    fn icmp_error(&self, e: IcmpError) -> bool {
        let Ok(mut st) = self.lock() else {
            return false;
        };
        let connected = st.peer.is_some_and(|p| p == e.to);
        // An ICMP (IPv4) error is queued under `IP_RECVERR`, an ICMPv6 one under
        // `IPV6_RECVERR`: an IPv6 socket's v4-mapped traffic needs the former.
        let wanted = if crate::net::addr::canonical(e.offender).is_ipv4() {
            st.opts.recverr
        } else {
            st.opts.recverr6
        };
        if wanted {
            // A full receive buffer drops the error (sock_queue_err_skb's ENOMEM).
            if st.charged + e.cost() < st.opts.rcvbuf.max(0) as usize {
                st.charged += e.cost();
                st.errq.push_back(e);
            }
        } else if !connected {
            return false;
        }
        st.err = Some(Errno::ECONNREFUSED);
        drop(st);
        self.wq.notify_all();
        true
    }

    /// Whether the socket is connected to `to`.
    fn connected_to(&self, to: SockAddr) -> bool {
        self.lock()
            .map(|st| st.peer.is_some_and(|p| p == to))
            .unwrap_or(false)
    }

    /// `recvmsg` with `MSG_ERRQUEUE`: takes the oldest queued ICMP error, up to
    /// `len` bytes of its payload (`EAGAIN` when none; it never waits), `from`
    /// being the datagram's destination. As Linux's `sock_dequeue_err_skb`, the
    /// pending error becomes the next queued one's, or none.
    pub fn recv_err(&self, len: usize) -> SysResult<Received> {
        let mut st = self.lock()?;
        let e = st.errq.pop_front().ok_or(Errno::EAGAIN)?;
        st.charged = st.charged.saturating_sub(e.cost());
        st.err = (!st.errq.is_empty()).then_some(Errno::ECONNREFUSED);
        let n = len.min(e.payload.len());
        Ok(Received {
            data: e.payload[..n].to_vec(),
            full_len: e.payload.len(),
            from: e.to,
            cmsgs: vec![e.cmsg(self.family)],
        })
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
        let mut r = 0u32;
        if st.err.is_some() || !st.errq.is_empty() {
            r |= libc::POLLERR as u32;
        }
        if st.shut_rd {
            r |= (libc::POLLIN | libc::POLLRDNORM | libc::POLLRDHUP) as u32;
        }
        if st.shut_rd && st.shut_wr {
            r |= libc::POLLHUP as u32;
        }
        if !st.queue.is_empty() {
            r |= (libc::POLLIN | libc::POLLRDNORM) as u32;
        }
        r | (libc::POLLOUT | libc::POLLWRNORM) as u32
    }

    /// The local address (`getsockname`).
    pub fn local(&self) -> SockAddr {
        let Ok(st) = self.lock() else {
            return SockAddr::new(self.family.any(), 0);
        };
        match st.bound {
            Some((l, port, _)) => {
                let ip = match (l, st.conn_local) {
                    (Local::Any { .. }, Some(ip)) => ip,
                    _ => l.ip(self.family),
                };
                SockAddr::new(ip, port)
            }
            None => SockAddr::new(self.family.any(), 0),
        }
    }

    /// The peer (`getpeername`).
    pub fn peer(&self) -> SysResult<SockAddr> {
        self.lock()?.peer.ok_or(Errno::ENOTCONN)
    }

    /// (size of the next datagram, bytes queued).
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

    fn ctx(&self, st: &UdpState) -> Ctx {
        Ctx {
            family: self.family,
            tcp: false,
            bound: st.bound.is_some(),
        }
    }

    /// `setsockopt(2)`.
    pub fn setsockopt(&self, level: i32, name: i32, v: &[u8]) -> SysResult<()> {
        let mut st = self.lock()?;
        if self.lite
            && (level == SOL_UDPLITE || level == libc::SOL_UDP)
            && (name == UDPLITE_SEND_CSCOV || name == UDPLITE_RECV_CSCOV)
        {
            if v.len() < 4 {
                return Err(Errno::EINVAL);
            }
            let x = crate::net::opts::int_of(v)?;
            // Linux: at least the header, at most 16 bits; 0 is the whole datagram.
            let x = if x != 0 && x < UDP_HDR as i32 {
                UDP_HDR as i32
            } else {
                x.min(0xffff)
            };
            if name == UDPLITE_SEND_CSCOV {
                st.send_cscov = x;
            } else {
                st.recv_cscov = Some(x);
            }
            return Ok(());
        }
        let ctx = self.ctx(&st);
        if (level == libc::IPPROTO_IP || self.family == Family::V6)
            && st.mcast.set(&self.net, level, name, v)?
        {
            return Ok(());
        }
        if st.opts.set(ctx, level, name, v)? {
            let off = match (level, name) {
                (libc::IPPROTO_IP, libc::IP_RECVERR) => !st.opts.recverr,
                (libc::IPPROTO_IPV6, libc::IPV6_RECVERR) => !st.opts.recverr6,
                _ => false,
            };
            if off {
                // Turning either option off empties the whole error queue (the
                // pending error stays), as on Linux.
                let freed: usize = st.errq.drain(..).map(|e| e.cost()).sum();
                st.charged = st.charged.saturating_sub(freed);
            }
            return Ok(());
        }
        Err(Errno::ENOPROTOOPT)
    }

    /// `getsockopt(2)`.
    pub fn getsockopt(&self, level: i32, name: i32) -> SysResult<Vec<u8>> {
        let mut st = self.lock()?;
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_ERROR) => {
                let e = st.err.take().map(|e| e.0).unwrap_or(0);
                return Ok(e.to_le_bytes().to_vec());
            }
            (libc::SOL_SOCKET, libc::SO_ACCEPTCONN) => return Ok(0i32.to_le_bytes().to_vec()),
            // Linux answers these on UDP too (with its zeros).
            (SOL_UDPLITE | libc::SOL_UDP, UDPLITE_SEND_CSCOV) => {
                return Ok(st.send_cscov.to_le_bytes().to_vec())
            }
            (SOL_UDPLITE | libc::SOL_UDP, UDPLITE_RECV_CSCOV) => {
                return Ok(st.recv_cscov.unwrap_or(0).to_le_bytes().to_vec())
            }
            _ => {}
        }
        let ctx = self.ctx(&st);
        if level == libc::IPPROTO_IP || self.family == Family::V6 {
            if let Some(v) = st.mcast.get(level, name) {
                return Ok(v);
            }
        }
        st.opts.get(ctx, level, name).ok_or(Errno::ENOPROTOOPT)
    }

    /// The checksum coverage a datagram of `len` bytes goes with (0: all of it;
    /// always 0 for UDP).
    fn coverage(&self, st: &UdpState, len: usize) -> u16 {
        let c = st.send_cscov as usize;
        if self.lite && c > 0 && c < len + UDP_HDR {
            c as u16
        } else {
            0
        }
    }

    /// This socket as `NETLINK_SOCK_DIAG` describes it (state 1 when connected,
    /// else 7, as Linux's UDP sockets).
    pub fn diag(&self) -> crate::net::diag::InetEntry {
        let (local, remote, tx, rx, uid, ino) = self.proc_entry();
        let st = self.lock();
        let (opts, shutdown, locked) = match &st {
            Ok(s) => (
                s.opts.clone(),
                s.shut_rd as u8 | (s.shut_wr as u8) << 1,
                s.port_locked,
            ),
            Err(_) => (SockOpts::new(false), 0, false),
        };
        drop(st);
        crate::net::diag::InetEntry {
            family: self.family,
            state: if remote.port != 0 { 1 } else { 7 },
            local,
            remote,
            rq: rx as u32,
            wq: tx as u32,
            uid,
            ino,
            cookie: ino,
            shutdown,
            tos: opts.tos as u8,
            v6only: opts.v6only,
            mark: opts.mark as u32,
            priority: opts.priority as u32,
            // inet_diag_sockopt's is IPv4's `IP_RECVERR`, on either family.
            recverr: opts.recverr,
            rmem: rx as u32,
            wmem: tx as u32,
            rcvbuf: opts.rcvbuf as u32,
            sndbuf: opts.sndbuf as u32,
            timewait: false,
            port_locked: locked,
            tcp_info: None,
        }
    }

    /// This socket's counters for a datagram to or from `ip`.
    fn mib(&self, ip: IpAddr) -> &crate::net::snmp::UdpMib {
        ports_mib(&self.net, self.lite, ip)
    }

    /// Fields of this socket's `/proc/net/udp` line: local, remote, tx queue, rx
    /// queue, uid, inode.
    pub fn proc_entry(&self) -> (SockAddr, SockAddr, usize, usize, u32, u64) {
        let local = self.local();
        let remote = self.peer().unwrap_or(SockAddr::new(self.family.any(), 0));
        let rx = self.lock().map(|s| s.charged).unwrap_or(0);
        (local, remote, 0, rx, self.uid, self.ino)
    }
}

/// A datagram from `net`'s pod interface for `to`: queued on the socket bound
/// there (dropped when none is, as the stack answers nothing for UDP).
pub fn deliver_external(net: &Netstack, to: SockAddr, from: SockAddr, data: &[u8]) {
    let rx = Rx {
        cscov: 0,
        dst: to.ip,
        ifindex: crate::net::packet::EXT_INDEX,
        // The pod interface does not pass the header's fields up.
        hops: 64,
        tclass: 0,
    };
    if to.ip.is_multicast() {
        deliver_group(&net.udp, crate::net::packet::EXT_INDEX, to, from, data, rx);
        return;
    }
    match net.udp.lookup(to.ip, to.port, |_, _| true) {
        Some(r) => r.deliver(from, data, rx),
        None => crate::net::snmp::inc(&ports_mib(net, false, to.ip).no_ports),
    }
}

/// A UDP-Lite datagram from `from` to `to` as an IP packet: coverage `cscov`
/// (0: all of it) in the length field, the checksum over the pseudo-header (with
/// the whole length, RFC 3828) and the covered bytes.
fn lite_packet(from: SockAddr, to: SockAddr, data: &[u8], cscov: u16, ttl: u8, tos: u8) -> Packet {
    let (src, dst) = (
        crate::net::addr::canonical(from.ip),
        crate::net::addr::canonical(to.ip),
    );
    let len = UDP_HDR + data.len();
    let mut u = Vec::with_capacity(len);
    u.extend_from_slice(&from.port.to_be_bytes());
    u.extend_from_slice(&to.port.to_be_bytes());
    u.extend_from_slice(&cscov.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    let covered = if cscov == 0 {
        len
    } else {
        (cscov as usize).min(len)
    };
    let mut pseudo = Vec::with_capacity(40 + covered);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, UDPLITE_PROTO]);
            pseudo.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            let six = |ip: IpAddr| match ip {
                IpAddr::V6(a) => a,
                IpAddr::V4(a) => a.to_ipv6_mapped(),
            };
            pseudo.extend_from_slice(&six(src).octets());
            pseudo.extend_from_slice(&six(dst).octets());
            pseudo.extend_from_slice(&(len as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, UDPLITE_PROTO]);
        }
    }
    pseudo.extend_from_slice(&u[..covered]);
    // The sum without a pseudo-header of its own (the bytes above carry it).
    let c = match crate::net::ippacket::checksum(
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        0,
        &pseudo,
    ) {
        0 => 0xffff,
        c => c,
    };
    u[6..8].copy_from_slice(&c.to_be_bytes());
    Packet {
        src,
        dst,
        proto: UDPLITE_PROTO,
        ttl,
        tos,
        payload: u,
    }
}

/// A UDP-Lite datagram from the pod's interface (a whole IPv4 or IPv6 packet):
/// to the socket bound to its port (dropped when none is, or when shorter than
/// its header or its coverage).
pub fn input_lite_external(net: &Netstack, datagram: &[u8]) {
    let pkt = match datagram.first().map(|b| b >> 4) {
        Some(4) => crate::net::ippacket::parse_v4(datagram),
        Some(6) => crate::net::ippacket::parse_v6(datagram),
        _ => None,
    };
    let Some(pkt) = pkt else {
        return;
    };
    let p = &pkt.payload;
    if pkt.proto != UDPLITE_PROTO || p.len() < UDP_HDR {
        return;
    }
    let sport = u16::from_be_bytes([p[0], p[1]]);
    let dport = u16::from_be_bytes([p[2], p[3]]);
    let cscov = u16::from_be_bytes([p[4], p[5]]);
    if cscov != 0 && ((cscov as usize) < UDP_HDR || cscov as usize > p.len()) {
        return;
    }
    let rx = Rx {
        cscov,
        dst: pkt.dst,
        ifindex: crate::net::packet::EXT_INDEX,
        hops: pkt.ttl,
        tclass: pkt.tos,
    };
    if let Some(r) = net.udplite.lookup(pkt.dst, dport, |_, _| true) {
        r.deliver(SockAddr::new(pkt.src, sport), &p[UDP_HDR..], rx);
    }
}

/// The UDP datagram an ICMP "port unreachable" (`datagram`: an IPv4 or IPv6
/// packet carrying ICMP or ICMPv6) is about, the message's source and what it
/// quotes of the payload.
pub fn port_unreachable(datagram: &[u8]) -> Option<IcmpError> {
    let (icmp, quoted_v6, offender) = match datagram.first()? >> 4 {
        4 => {
            let ihl = (*datagram.first()? as usize & 0xf) * 4;
            let icmp = datagram.get(ihl..)?;
            // Destination unreachable, port unreachable.
            if datagram.get(9) != Some(&1) || icmp.first() != Some(&3) || icmp.get(1) != Some(&3) {
                return None;
            }
            let a: [u8; 4] = datagram.get(12..16)?.try_into().ok()?;
            (icmp, false, IpAddr::from(std::net::Ipv4Addr::from(a)))
        }
        6 => {
            let icmp = datagram.get(40..)?;
            if datagram.get(6) != Some(&58) || icmp.first() != Some(&1) || icmp.get(1) != Some(&4) {
                return None;
            }
            let a: [u8; 16] = datagram.get(8..24)?.try_into().ok()?;
            (icmp, true, IpAddr::from(std::net::Ipv6Addr::from(a)))
        }
        _ => return None,
    };
    let inner = icmp.get(8..)?;
    let (src, dst, at) = if quoted_v6 {
        // Only a UDP header right after the fixed header is looked at.
        if inner.get(6) != Some(&17) {
            return None;
        }
        let a: [u8; 16] = inner.get(8..24)?.try_into().ok()?;
        let b: [u8; 16] = inner.get(24..40)?.try_into().ok()?;
        (
            IpAddr::from(std::net::Ipv6Addr::from(a)),
            IpAddr::from(std::net::Ipv6Addr::from(b)),
            40,
        )
    } else {
        if inner.first()? >> 4 != 4 || inner.get(9) != Some(&17) {
            return None;
        }
        let ihl = (inner[0] as usize & 0xf) * 4;
        let a: [u8; 4] = inner.get(12..16)?.try_into().ok()?;
        let b: [u8; 4] = inner.get(16..20)?.try_into().ok()?;
        (
            IpAddr::from(std::net::Ipv4Addr::from(a)),
            IpAddr::from(std::net::Ipv4Addr::from(b)),
            ihl,
        )
    };
    let udp = inner.get(at..at + UDP_HDR)?;
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    Some(IcmpError {
        from: SockAddr::new(src, sport),
        to: SockAddr::new(dst, dport),
        offender: crate::net::addr::canonical(offender),
        payload: inner[at + UDP_HDR..].to_vec(),
    })
}

/// An ICMP port unreachable came back from the pod's interface: to the socket
/// that sent the datagram (one connected to its destination first, as Linux's
/// lookup scores it), see [`UdpInner::icmp_error`].
pub fn refused(net: &Netstack, e: IcmpError) {
    let socks = net.udp.lookup_all(e.from.ip, e.from.port);
    let to = e.to;
    if let Some(s) = socks.iter().find(|s| s.connected_to(to)).or(socks.first()) {
        s.icmp_error(e);
    }
}

/// A datagram for group `to` that interface `index` accepted: to every socket
/// bound to its port that admits the group.
fn deliver_group(
    ports: &PortTable<UdpInner>,
    index: u32,
    to: SockAddr,
    from: SockAddr,
    data: &[u8],
    rx: Rx,
) {
    for r in ports.lookup_all(to.ip, to.port) {
        let admits = r
            .lock()
            .map(|st| st.mcast.admits(to.ip, index))
            .unwrap_or(false);
        if admits {
            r.deliver(from, data, rx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn datagrams_between_families() {
        let net = Netstack::new();
        let r = UdpInner::new(&net, Family::V6, 0);
        r.bind(SockAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0))
            .unwrap();
        let port = r.local().port;
        let s = UdpInner::new(&net, Family::V4, 0);
        let to = SockAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        assert_eq!(s.send(b"hello", Some(to)), Ok(5));
        let got = r.recv(3, false).unwrap();
        assert_eq!((got.data.as_slice(), got.full_len), (&b"hel"[..], 5));
        assert_eq!(
            got.from,
            SockAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), s.local().port)
        );
        assert_eq!(r.recv(3, false).err(), Some(Errno::EAGAIN));
        assert_eq!(s.send(&vec![0; MAX_V4 + 1], Some(to)), Err(Errno::EMSGSIZE));
        assert_eq!(s.send(b"x", None), Err(Errno::EDESTADDRREQ));
    }

    #[test]
    fn recverr_queues_port_unreachable() {
        let net = Netstack::new();
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let closed = SockAddr::new(lo, 9);
        let on = 1i32.to_le_bytes();
        let s = UdpInner::new(&net, Family::V4, 0);
        assert_eq!(s.recv_err(64).err(), Some(Errno::EAGAIN));
        // Without the option an unconnected sender hears nothing.
        assert_eq!(s.send(b"lost", Some(closed)), Ok(4));
        assert_eq!(s.readiness() & libc::POLLERR as u32, 0);
        s.setsockopt(libc::IPPROTO_IP, libc::IP_RECVERR, &on)
            .unwrap();
        assert_eq!(s.send(&[7; 600], Some(closed)), Ok(600));
        assert_ne!(s.readiness() & libc::POLLERR as u32, 0);
        let e = s.recv_err(1000).unwrap();
        // The ICMP message quotes 520 bytes of the payload.
        assert_eq!(
            (e.data.len(), e.full_len, e.from),
            (QUOTED_V4, QUOTED_V4, closed)
        );
        let c = &e.cmsgs[0];
        assert_eq!(
            (c.level, c.ty, c.data.len()),
            (libc::IPPROTO_IP, libc::IP_RECVERR, 32)
        );
        assert_eq!(&c.data[..8], &[111, 0, 0, 0, ORIGIN_ICMP, 3, 3, 0]);
        assert_eq!(&c.data[20..24], &[127, 0, 0, 1]);
        // Reading the only error clears the pending one.
        assert_eq!(s.readiness() & libc::POLLERR as u32, 0);
        assert_eq!(s.send(b"x", Some(closed)), Ok(1));
        // Turning the option off empties the queue and keeps the pending error.
        s.setsockopt(libc::IPPROTO_IP, libc::IP_RECVERR, &0i32.to_le_bytes())
            .unwrap();
        assert_eq!(s.recv_err(64).err(), Some(Errno::EAGAIN));
        assert_eq!(s.recv(8, false).err(), Some(Errno::ECONNREFUSED));
    }

    #[test]
    fn recverr_options_are_kept_apart() {
        use std::net::Ipv6Addr;
        let net = Netstack::new();
        let on = 1i32.to_le_bytes();
        let mapped = SockAddr::new(IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()), 9);
        let v6 = SockAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 9);
        let s = UdpInner::new(&net, Family::V6, 0);
        // IP_RECVERR queues errors about v4-mapped traffic only.
        s.setsockopt(libc::IPPROTO_IP, libc::IP_RECVERR, &on)
            .unwrap();
        assert_eq!(s.send(b"six", Some(v6)), Ok(3));
        assert_eq!(s.recv_err(64).err(), Some(Errno::EAGAIN));
        assert_eq!(s.send(b"four", Some(mapped)), Ok(4));
        let e = s.recv_err(64).unwrap();
        assert_eq!(e.data, b"four");
        let c = &e.cmsgs[0];
        assert_eq!((c.level, c.ty), (libc::IPPROTO_IPV6, libc::IPV6_RECVERR));
        assert_eq!(c.data[4], ORIGIN_ICMP);
        // IPV6_RECVERR alone, the other way round; turning IP_RECVERR off (the
        // other option) empties the queue too.
        s.setsockopt(libc::IPPROTO_IP, libc::IP_RECVERR, &0i32.to_le_bytes())
            .unwrap();
        s.setsockopt(libc::IPPROTO_IPV6, libc::IPV6_RECVERR, &on)
            .unwrap();
        assert_eq!(s.send(b"four", Some(mapped)), Ok(4));
        assert_eq!(s.recv_err(64).err(), Some(Errno::EAGAIN));
        assert_eq!(s.send(b"six", Some(v6)), Ok(3));
        s.setsockopt(libc::IPPROTO_IP, libc::IP_RECVERR, &0i32.to_le_bytes())
            .unwrap();
        assert_eq!(s.recv_err(64).err(), Some(Errno::EAGAIN));
        // The pending error stayed.
        assert_eq!(
            s.getsockopt(libc::SOL_SOCKET, libc::SO_ERROR),
            Ok(111i32.to_le_bytes().to_vec())
        );
        assert_eq!(s.send(b"six", Some(v6)), Ok(3));
        assert_eq!(s.recv_err(64).unwrap().cmsgs[0].data[4], ORIGIN_ICMP6);
        assert_eq!(
            s.getsockopt(libc::IPPROTO_IP, libc::IP_RECVERR),
            Ok(0i32.to_le_bytes().to_vec())
        );
        assert_eq!(
            s.getsockopt(libc::IPPROTO_IPV6, libc::IPV6_RECVERR),
            Ok(1i32.to_le_bytes().to_vec())
        );
    }

    #[test]
    fn port_unreachable_names_sender_offender_and_payload() {
        let mut d = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 9, 10, 0, 0, 2,
        ];
        d.extend_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0]);
        d.extend_from_slice(&[
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 9,
        ]);
        d.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 11, 0, 0]);
        d.extend_from_slice(b"abc");
        let e = port_unreachable(&d).unwrap();
        let ip = |x| IpAddr::V4(Ipv4Addr::new(10, 0, 0, x));
        assert_eq!(e.from, SockAddr::new(ip(2), 12345));
        assert_eq!(e.to, SockAddr::new(ip(9), 53));
        assert_eq!((e.offender, e.payload.as_slice()), (ip(9), &b"abc"[..]));
        // Another code (host unreachable) is not taken.
        d[21] = 1;
        assert_eq!(port_unreachable(&d), None);
    }

    #[test]
    fn udplite_has_its_own_ports_and_coverage() {
        let net = Netstack::new();
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let r = UdpInner::new_lite(&net, Family::V4, 0);
        r.bind(SockAddr::new(lo, 0)).unwrap();
        let to = SockAddr::new(lo, r.local().port);
        let u = UdpInner::new(&net, Family::V4, 0);
        assert_eq!(u.bind(to), Ok(()));
        let s = UdpInner::new_lite(&net, Family::V4, 0);
        assert_eq!(s.send(b"lite", Some(to)), Ok(4));
        assert_eq!(u.recv(8, false).err(), Some(Errno::EAGAIN));
        assert_eq!(r.recv(8, false).unwrap().data, b"lite");
        let int = |v: i32| v.to_le_bytes();
        r.setsockopt(SOL_UDPLITE, UDPLITE_RECV_CSCOV, &int(12))
            .unwrap();
        s.setsockopt(SOL_UDPLITE, UDPLITE_SEND_CSCOV, &int(3))
            .unwrap();
        assert_eq!(
            s.getsockopt(SOL_UDPLITE, UDPLITE_SEND_CSCOV),
            Ok(int(8).to_vec())
        );
        // 8 bytes covered of 18: fewer than the 12 asked for.
        assert_eq!(s.send(b"0123456789", Some(to)), Ok(10));
        assert_eq!(r.recv(16, false).err(), Some(Errno::EAGAIN));
        s.setsockopt(SOL_UDPLITE, UDPLITE_SEND_CSCOV, &int(12))
            .unwrap();
        assert_eq!(s.send(b"0123456789", Some(to)), Ok(10));
        assert_eq!(r.recv(16, false).unwrap().full_len, 10);
        assert_eq!(
            u.setsockopt(SOL_UDPLITE, UDPLITE_SEND_CSCOV, &int(8)),
            Err(Errno::ENOPROTOOPT)
        );
    }
}
