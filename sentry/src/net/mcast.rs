//! IP multicast for UDP sockets: group membership (`IP_ADD_MEMBERSHIP`,
//! `IP_DROP_MEMBERSHIP`, `IPV6_JOIN_GROUP`, `IPV6_LEAVE_GROUP`), the sending
//! options (`IP_MULTICAST_IF/TTL/LOOP/ALL` and their IPv6 twins), which interface
//! a datagram to a group leaves by, and who receives it.
//!
//! Linux's model: a socket's membership makes its interface accept the group;
//! a datagram for the group that an interface accepts goes to every UDP socket
//! bound to its port (on the wildcard or the group), except sockets that joined
//! other groups only when `IP_MULTICAST_ALL` is off. Over `lo` a datagram sent to
//! a group comes back in once whatever `IP_MULTICAST_LOOP` says (the device itself
//! loops it), and IPv6 multicast has no route there (`lo` is not a multicast
//! device). On the pod's interface the datagram leaves through the stack and a
//! copy comes back in when `IP_MULTICAST_LOOP` is on and the interface accepts the
//! group.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;

use crate::errno::{Errno, SysResult};
use crate::net::addr::canonical;
use crate::net::loopback::LO_INDEX;
use crate::net::packet::EXT_INDEX;
use crate::net::Netstack;

/// Memberships one socket may hold (`net.ipv4.igmp_max_memberships`).
const MAX_MEMBERSHIPS: usize = 20;

/// `MCAST_JOIN_GROUP`, `MCAST_LEAVE_GROUP` and the size of their `struct group_req`.
const MCAST_JOIN_GROUP: i32 = 42;
const MCAST_LEAVE_GROUP: i32 = 45;
const GROUP_REQ_LEN: usize = 136;

/// `IP_MULTICAST_ALL`, `IPV6_MULTICAST_ALL`.
const IP_MULTICAST_ALL: i32 = 49;
const IPV6_MULTICAST_ALL: i32 = 29;

/// Per interface, how many sockets joined each group (the interface accepts a
/// group while the count is above 0).
#[derive(Default)]
pub struct Groups {
    joined: Mutex<HashMap<(u32, IpAddr), usize>>,
}

impl Groups {
    /// Whether interface `index` accepts `group`.
    pub fn accepts(&self, index: u32, group: IpAddr) -> bool {
        self.joined
            .lock()
            .map(|m| m.get(&(index, group)).is_some_and(|n| *n > 0))
            .unwrap_or(false)
    }

    /// Counts a member of `group` on `index`; the pod's interface joins it with
    /// the first (`ENOBUFS` when its group table is full).
    fn add(&self, net: &Netstack, index: u32, group: IpAddr) -> SysResult<()> {
        let mut m = self.joined.lock().map_err(|_| Errno::EIO)?;
        let n = m.get(&(index, group)).copied().unwrap_or(0);
        if n == 0 && index == EXT_INDEX {
            if let Some(e) = net.external() {
                e.join_group(group)?;
            }
        }
        m.insert((index, group), n + 1);
        Ok(())
    }

    fn remove(&self, net: &Netstack, index: u32, group: IpAddr) {
        let Ok(mut m) = self.joined.lock() else {
            return;
        };
        if let Some(n) = m.get_mut(&(index, group)) {
            *n -= 1;
            if *n == 0 {
                m.remove(&(index, group));
                if index == EXT_INDEX {
                    if let Some(e) = net.external() {
                        e.leave_group(group);
                    }
                }
            }
        }
    }
}

/// One socket's multicast state.
pub struct McastOpts {
    /// (group, interface index) joined.
    joined: Vec<(IpAddr, u32)>,
    /// `IP_MULTICAST_IF`: interface index and address (0 and unspecified: none).
    if4: (u32, Ipv4Addr),
    /// `IPV6_MULTICAST_IF`.
    if6: u32,
    /// `IP_MULTICAST_TTL`, `IPV6_MULTICAST_HOPS`.
    ttl4: i32,
    hops6: i32,
    /// `IP_MULTICAST_LOOP`, `IPV6_MULTICAST_LOOP`.
    loop4: bool,
    loop6: bool,

    /// `IP_MULTICAST_ALL`, `IPV6_MULTICAST_ALL`.
    all4: bool,
    all6: bool,
}

impl Default for McastOpts {
    fn default() -> Self {
        McastOpts {
            joined: Vec::new(),
            if4: (0, Ipv4Addr::UNSPECIFIED),
            if6: 0,
            ttl4: 1,
            hops6: 1,
            loop4: true,
            loop6: true,
            all4: true,
            all6: true,
        }
    }
}

fn int_of(v: &[u8]) -> SysResult<i32> {
    match v.len() {
        0 => Err(Errno::EINVAL),
        1..=3 => Ok(i32::from(v[0])),
        _ => Ok(i32::from_le_bytes([v[0], v[1], v[2], v[3]])),
    }
}

fn v4_at(v: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(v[at], v[at + 1], v[at + 2], v[at + 3])
}

/// Whether `net` has an interface of index `index`.
fn has_index(net: &Netstack, index: u32) -> bool {
    index == LO_INDEX || (index == EXT_INDEX && net.external().is_some())
}

/// The interface holding IPv4 address `a`.
fn index_of_addr(net: &Netstack, a: Ipv4Addr) -> Option<u32> {
    if a.is_loopback() {
        Some(LO_INDEX)
    } else if net.is_ext_local(IpAddr::V4(a)) {
        Some(EXT_INDEX)
    } else {
        None
    }
}

/// The interface a route to `group` leaves by: the pod's interface when it has a
/// default route of that family (multicast is never on a connected prefix).
fn routed_index(net: &Netstack, group: IpAddr) -> Option<u32> {
    let e = net.external()?;
    let (g4, g6) = e.gateways();
    let on = match group {
        IpAddr::V4(_) => g4.is_some(),
        // ff00::/8 is on every IPv6 multicast interface.
        IpAddr::V6(_) => g6.is_some() || e.addrs().iter().any(|(a, _)| a.is_ipv6()),
    };
    on.then_some(EXT_INDEX)
}

impl McastOpts {
    /// Whether the socket takes a datagram for `group` arriving on `index`.
    pub fn admits(&self, group: IpAddr, index: u32) -> bool {
        if self.joined.iter().any(|&(g, i)| g == group && i == index) {
            return true;
        }
        match group {
            IpAddr::V4(_) => self.all4,
            IpAddr::V6(_) => self.all6,
        }
    }

    /// Leaves every group (the socket is closing).
    pub fn leave_all(&mut self, net: &Netstack) {
        for (g, i) in self.joined.drain(..) {
            net.mcast.remove(net, i, g);
        }
    }

    /// `setsockopt` of a multicast option of a UDP socket. `Ok(false)`: not one.
    pub fn set(&mut self, net: &Netstack, level: i32, name: i32, v: &[u8]) -> SysResult<bool> {
        match (level, name) {
            (libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP | libc::IP_DROP_MEMBERSHIP) => {
                // struct ip_mreq, or ip_mreqn when long enough.
                if v.len() < 8 {
                    return Err(Errno::EINVAL);
                }
                let group = v4_at(v, 0);
                let addr = v4_at(v, 4);
                let ifindex = if v.len() >= 12 {
                    i32::from_le_bytes([v[8], v[9], v[10], v[11]])
                } else {
                    0
                };
                let found = if ifindex != 0 {
                    u32::try_from(ifindex).ok().filter(|&i| has_index(net, i))
                } else if !addr.is_unspecified() {
                    index_of_addr(net, addr)
                } else {
                    routed_index(net, IpAddr::V4(group))
                };
                let group = IpAddr::V4(group);
                if name == libc::IP_ADD_MEMBERSHIP {
                    if !group.is_multicast() {
                        return Err(Errno::EINVAL);
                    }
                    let index = found.ok_or(Errno::ENODEV)?;
                    self.join(net, group, index)?;
                } else {
                    let index = match found {
                        Some(i) => i,
                        None if ifindex == 0 && addr.is_unspecified() => return Err(Errno::ENODEV),
                        None => return Err(Errno::EADDRNOTAVAIL),
                    };
                    self.leave(net, group, index)?;
                }
            }
            (libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP | libc::IPV6_DROP_MEMBERSHIP) => {
                // struct ipv6_mreq: the group, then an interface index.
                if v.len() < 20 {
                    return Err(Errno::EINVAL);
                }
                let mut g = [0u8; 16];
                g.copy_from_slice(&v[..16]);
                let group = IpAddr::V6(Ipv6Addr::from(g));
                let ifindex = i32::from_le_bytes([v[16], v[17], v[18], v[19]]);
                if !group.is_multicast() {
                    return Err(Errno::EINVAL);
                }
                let same = |&(jg, ji): &(IpAddr, u32)| {
                    jg == group && (ifindex == 0 || ji as i32 == ifindex)
                };
                if name == libc::IPV6_ADD_MEMBERSHIP {
                    if self.joined.iter().any(same) {
                        return Err(Errno::EADDRINUSE);
                    }
                    let index = if ifindex == 0 {
                        routed_index(net, group)
                    } else {
                        u32::try_from(ifindex).ok().filter(|&i| has_index(net, i))
                    }
                    .ok_or(Errno::ENODEV)?;
                    self.join(net, group, index)?;
                } else {
                    let at = self
                        .joined
                        .iter()
                        .position(same)
                        .ok_or(Errno::EADDRNOTAVAIL)?;
                    let (g, i) = self.joined.remove(at);
                    net.mcast.remove(net, i, g);
                }
            }
            (libc::IPPROTO_IP | libc::IPPROTO_IPV6, MCAST_JOIN_GROUP | MCAST_LEAVE_GROUP) => {
                // struct group_req: an interface index, then a sockaddr_storage.
                if v.len() < GROUP_REQ_LEN {
                    return Err(Errno::EINVAL);
                }
                let index = i32::from_le_bytes([v[0], v[1], v[2], v[3]]);
                let family = i32::from(u16::from_le_bytes([v[8], v[9]]));
                let (opt, req) = match (level, family) {
                    (libc::IPPROTO_IP, libc::AF_INET) => {
                        // As an ip_mreqn: the group, no address, the index.
                        let mut m = v[12..16].to_vec();
                        m.extend_from_slice(&[0; 4]);
                        m.extend_from_slice(&index.to_le_bytes());
                        let join = name == MCAST_JOIN_GROUP;
                        let opt = if join {
                            libc::IP_ADD_MEMBERSHIP
                        } else {
                            libc::IP_DROP_MEMBERSHIP
                        };
                        (opt, m)
                    }
                    (libc::IPPROTO_IPV6, libc::AF_INET6) => {
                        let mut m = v[16..32].to_vec();
                        m.extend_from_slice(&index.to_le_bytes());
                        let join = name == MCAST_JOIN_GROUP;
                        let opt = if join {
                            libc::IPV6_ADD_MEMBERSHIP
                        } else {
                            libc::IPV6_DROP_MEMBERSHIP
                        };
                        (opt, m)
                    }
                    _ => return Err(Errno::EINVAL),
                };
                return self.set(net, level, opt, &req);
            }
            (libc::IPPROTO_IP, libc::IP_MULTICAST_IF) => {
                if v.len() < 4 {
                    return Err(Errno::EINVAL);
                }
                // An in_addr, an ip_mreq (its interface address) or an ip_mreqn.
                let (addr, ifindex) = match v.len() {
                    12.. => (v4_at(v, 4), i32::from_le_bytes([v[8], v[9], v[10], v[11]])),
                    8..=11 => (v4_at(v, 4), 0),
                    _ => (v4_at(v, 0), 0),
                };
                if ifindex == 0 && addr.is_unspecified() {
                    self.if4 = (0, addr);
                } else {
                    let index = if ifindex != 0 {
                        u32::try_from(ifindex).ok().filter(|&i| has_index(net, i))
                    } else {
                        index_of_addr(net, addr)
                    };
                    self.if4 = (index.ok_or(Errno::EADDRNOTAVAIL)?, addr);
                }
            }
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF) => {
                let i = int_of(v)?;
                if v.len() < 4 {
                    return Err(Errno::EINVAL);
                }
                if i != 0 && !u32::try_from(i).is_ok_and(|i| has_index(net, i)) {
                    return Err(Errno::ENODEV);
                }
                self.if6 = i as u32;
            }
            (libc::IPPROTO_IP, libc::IP_MULTICAST_TTL) => {
                let t = int_of(v)?;
                let t = if t == -1 { 1 } else { t };
                if !(0..=255).contains(&t) {
                    return Err(Errno::EINVAL);
                }
                self.ttl4 = t;
            }
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS) => {
                if v.len() < 4 {
                    return Err(Errno::EINVAL);
                }
                let t = int_of(v)?;
                if !(-1..=255).contains(&t) {
                    return Err(Errno::EINVAL);
                }
                self.hops6 = if t == -1 { 1 } else { t };
            }
            (libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP) => self.loop4 = int_of(v)? != 0,
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP) => {
                if v.len() < 4 {
                    return Err(Errno::EINVAL);
                }
                let b = int_of(v)?;
                if b != 0 && b != 1 {
                    return Err(Errno::EINVAL);
                }
                self.loop6 = b == 1;
            }
            (libc::IPPROTO_IP, IP_MULTICAST_ALL) => self.all4 = int_of(v)? != 0,
            (libc::IPPROTO_IPV6, IPV6_MULTICAST_ALL) => {
                if v.len() < 4 {
                    return Err(Errno::EINVAL);
                }
                self.all6 = int_of(v)? != 0;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `getsockopt` of a multicast option; `None`: not one.
    pub fn get(&self, level: i32, name: i32) -> Option<Vec<u8>> {
        let int = |v: i32| v.to_le_bytes().to_vec();
        Some(match (level, name) {
            (libc::IPPROTO_IP, libc::IP_MULTICAST_IF) => self.if4.1.octets().to_vec(),
            (libc::IPPROTO_IP, libc::IP_MULTICAST_TTL) => int(self.ttl4),
            (libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP) => int(self.loop4 as i32),
            (libc::IPPROTO_IP, IP_MULTICAST_ALL) => int(self.all4 as i32),
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF) => int(self.if6 as i32),
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS) => int(self.hops6),
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP) => int(self.loop6 as i32),
            (libc::IPPROTO_IPV6, IPV6_MULTICAST_ALL) => int(self.all6 as i32),
            _ => return None,
        })
    }

    fn join(&mut self, net: &Netstack, group: IpAddr, index: u32) -> SysResult<()> {
        if self.joined.contains(&(group, index)) {
            return Err(Errno::EADDRINUSE);
        }
        if self.joined.len() >= MAX_MEMBERSHIPS {
            return Err(Errno::ENOBUFS);
        }
        net.mcast.add(net, index, group)?;
        self.joined.push((group, index));
        Ok(())
    }

    fn leave(&mut self, net: &Netstack, group: IpAddr, index: u32) -> SysResult<()> {
        let at = self
            .joined
            .iter()
            .position(|&j| j == (group, index))
            .ok_or(Errno::EADDRNOTAVAIL)?;
        self.joined.remove(at);
        net.mcast.remove(net, index, group);
        Ok(())
    }

    /// Where a datagram to `group` from a socket bound to `bound` (unspecified:
    /// any) leaves: (interface index, source address), `ENETUNREACH` when no
    /// interface takes it.
    pub fn route(&self, net: &Netstack, group: IpAddr, bound: IpAddr) -> SysResult<(u32, IpAddr)> {
        match canonical(group) {
            IpAddr::V4(_) => {
                let src = if !bound.is_unspecified() {
                    Some(bound)
                } else if !self.if4.1.is_unspecified() {
                    Some(IpAddr::V4(self.if4.1))
                } else {
                    None
                };
                let index = if self.if4.0 != 0 {
                    Some(self.if4.0)
                } else if let Some(IpAddr::V4(s)) = src {
                    index_of_addr(net, s)
                } else {
                    routed_index(net, group)
                }
                .ok_or(Errno::ENETUNREACH)?;
                let src = match (src, index) {
                    (Some(s), _) => s,
                    // Linux picks a source of universe scope on the device: `lo`
                    // has none (127.0.0.1 is of host scope).
                    (None, LO_INDEX) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    (None, _) => net
                        .external()
                        .and_then(|e| e.addrs().into_iter().find(|(a, _)| a.is_ipv4()))
                        .map(|(a, _)| a)
                        .ok_or(Errno::ENETUNREACH)?,
                };
                Ok((index, src))
            }
            IpAddr::V6(_) => {
                // `lo` is no multicast device: only the pod's interface carries IPv6
                // multicast.
                let index = match self.if6 {
                    0 => routed_index(net, group),
                    EXT_INDEX => Some(EXT_INDEX),
                    _ => None,
                }
                .ok_or(Errno::ENETUNREACH)?;
                let src = if !bound.is_unspecified() {
                    bound
                } else {
                    net.external()
                        .and_then(|e| {
                            let a = e.addrs();
                            let v6 = a.iter().filter(|(a, _)| a.is_ipv6());
                            v6.clone()
                                .find(|(a, _)| !is_link_local(*a))
                                .or_else(|| v6.clone().next())
                                .map(|(a, _)| *a)
                        })
                        .ok_or(Errno::ENETUNREACH)?
                };
                Ok((index, src))
            }
        }
    }

    /// Whether a copy of what the socket sends to `group` on `index` comes back
    /// into the sandbox (before checking that the interface accepts the group).
    pub fn loops(&self, group: IpAddr, index: u32) -> bool {
        let lp = match group {
            IpAddr::V4(_) => self.loop4,
            IpAddr::V6(_) => self.loop6,
        };
        // Sent on `lo`, the datagram comes back in through the device whatever
        // the loop option and the TTL say (seen natively).
        index == LO_INDEX || lp
    }

    /// The IPv4 TTL or IPv6 hop limit of a datagram to a group.
    pub fn hops(&self, group: IpAddr) -> u8 {
        match group {
            IpAddr::V4(_) => self.ttl4 as u8,
            IpAddr::V6(_) => self.hops6 as u8,
        }
    }
}

fn is_link_local(a: IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::addr::{Family, SockAddr};
    use crate::net::udp::UdpInner;

    /// On `lo` a datagram to a group needs `IP_MULTICAST_IF` (no route), arrives
    /// only once the interface accepts the group, and the interface leaves the
    /// group with its last member.
    #[test]
    fn membership_decides_delivery_on_lo() {
        let net = Netstack::new();
        let r = UdpInner::new(&net, Family::V4, 0);
        r.bind(SockAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5007))
            .unwrap();
        let s = UdpInner::new(&net, Family::V4, 0);
        let g = SockAddr::new(IpAddr::V4(Ipv4Addr::new(239, 1, 2, 3)), 5007);
        assert_eq!(s.send(b"x", Some(g)), Err(Errno::ENETUNREACH));
        s.setsockopt(libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &[127, 0, 0, 1])
            .unwrap();
        assert_eq!(s.send(b"a", Some(g)), Ok(1));
        assert_eq!(r.recv(10, false).err(), Some(Errno::EAGAIN));
        let mreq = [239, 1, 2, 3, 127, 0, 0, 1];
        let bad = [10, 0, 0, 1, 127, 0, 0, 1];
        let join = libc::IP_ADD_MEMBERSHIP;
        assert_eq!(
            r.setsockopt(libc::IPPROTO_IP, join, &bad),
            Err(Errno::EINVAL)
        );
        r.setsockopt(libc::IPPROTO_IP, join, &mreq).unwrap();
        assert_eq!(
            r.setsockopt(libc::IPPROTO_IP, join, &mreq),
            Err(Errno::EADDRINUSE)
        );
        assert!(net.mcast.accepts(LO_INDEX, g.ip));
        assert_eq!(s.send(b"b", Some(g)), Ok(1));
        assert_eq!(r.recv(10, false).unwrap().data, b"b");
        drop(r);
        assert!(!net.mcast.accepts(LO_INDEX, g.ip));
    }
}
