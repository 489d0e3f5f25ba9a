//! Control messages of internet datagram sockets: the ones `recvmsg` delivers
//! (`IP_PKTINFO`, `IP_TTL`, `IP_TOS`, `IPV6_PKTINFO`, `IPV6_HOPLIMIT`,
//! `IPV6_TCLASS`, RFC 3542) laid out with Linux's truncation rules, and the ones
//! `sendmsg` takes to set a datagram's hop limit, traffic class or source.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::errno::{Errno, SysResult};

/// `sizeof(struct cmsghdr)` on x86-64 (a `size_t` length, two ints).
const HDR: usize = 16;
/// `SCM_TXTIME` (a departure time, for qdiscs).
const SCM_TXTIME: i32 = 61;

fn align(n: usize) -> usize {
    (n + 7) & !7
}

/// One control message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmsg {
    /// `cmsg_level`.
    pub level: i32,
    /// `cmsg_type`.
    pub ty: i32,
    /// The payload.
    pub data: Vec<u8>,
}

impl Cmsg {
    fn int(level: i32, ty: i32, v: i32) -> Cmsg {
        Cmsg {
            level,
            ty,
            data: v.to_le_bytes().to_vec(),
        }
    }
}

/// Lays `cmsgs` out in a buffer of `room` bytes as Linux's `put_cmsg` does: a
/// message that does not fit is cut (its `cmsg_len` says how much is there) and
/// the result flagged `MSG_CTRUNC`; less than a header's room takes nothing.
/// Returns the bytes to write and whether anything was cut.
pub fn encode(cmsgs: &[Cmsg], room: usize) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut left = room;
    let mut cut = false;
    for c in cmsgs {
        if left < HDR {
            cut = true;
            continue;
        }
        let mut len = HDR + c.data.len();
        if left < len {
            cut = true;
            len = left;
        }
        out.extend_from_slice(&(len as u64).to_le_bytes());
        out.extend_from_slice(&c.level.to_le_bytes());
        out.extend_from_slice(&c.ty.to_le_bytes());
        out.extend_from_slice(&c.data[..len - HDR]);
        let step = align(HDR + c.data.len()).min(left);
        out.resize(out.len() + step - len, 0);
        left -= step;
    }
    (out, cut)
}

/// Splits a `sendmsg` control buffer into its messages (`EINVAL` for a header
/// whose length is short or runs past the buffer, as Linux checks).
pub fn parse(buf: &[u8]) -> SysResult<Vec<Cmsg>> {
    let mut out = Vec::new();
    let mut off = 0;
    while buf.len() - off >= HDR {
        let h = &buf[off..off + HDR];
        let len = u64::from_le_bytes(h[..8].try_into().map_err(|_| Errno::EINVAL)?);
        if len < HDR as u64 || len > (buf.len() - off) as u64 {
            return Err(Errno::EINVAL);
        }
        let len = len as usize;
        out.push(Cmsg {
            level: i32::from_le_bytes(h[8..12].try_into().map_err(|_| Errno::EINVAL)?),
            ty: i32::from_le_bytes(h[12..16].try_into().map_err(|_| Errno::EINVAL)?),
            data: buf[off + HDR..off + len].to_vec(),
        });
        off = (off + align(len)).min(buf.len());
    }
    Ok(out)
}

/// What `sendmsg`'s control messages ask of one datagram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tx {
    /// `IPV6_HOPLIMIT` / `IP_TTL`.
    pub hops: Option<u8>,
    /// `IPV6_TCLASS` / `IP_TOS`.
    pub tclass: Option<u8>,
    /// The source address of `IPV6_PKTINFO` / `IP_PKTINFO` (`None`: unspecified).
    pub src: Option<IpAddr>,
}

fn int_exact(c: &Cmsg) -> SysResult<i32> {
    let b: [u8; 4] = c.data.as_slice().try_into().map_err(|_| Errno::EINVAL)?;
    Ok(i32::from_le_bytes(b))
}

impl Tx {
    /// Reads the messages a datagram socket of IPv6 (`v6`) or IPv4 takes; messages
    /// of another protocol's level are skipped, as Linux skips them.
    pub fn of(cmsgs: &[Cmsg], v6: bool) -> SysResult<Tx> {
        let mut tx = Tx::default();
        for c in cmsgs {
            match c.level {
                libc::SOL_SOCKET => match c.ty {
                    // Linux takes these on any socket; none changes what loopback
                    // delivers (descriptors and credentials go only over AF_UNIX).
                    libc::SCM_RIGHTS
                    | libc::SCM_CREDENTIALS
                    | libc::SO_MARK
                    | libc::SO_TIMESTAMPING
                    | libc::SO_PRIORITY
                    | SCM_TXTIME => {}
                    _ => return Err(Errno::EINVAL),
                },
                libc::IPPROTO_IPV6 if v6 => match c.ty {
                    libc::IPV6_HOPLIMIT | libc::IPV6_TCLASS => {
                        let v = int_exact(c)?;
                        if !(-1..=255).contains(&v) {
                            return Err(Errno::EINVAL);
                        }
                        if c.ty == libc::IPV6_HOPLIMIT {
                            // -1: the socket's hop limit.
                            tx.hops = (v >= 0).then_some(v as u8);
                        } else {
                            // Linux stores -1 as it is: the header gets 0xff.
                            tx.tclass = Some(v as u8);
                        }
                    }
                    libc::IPV6_PKTINFO => {
                        if c.data.len() != 20 {
                            return Err(Errno::EINVAL);
                        }
                        let mut a = [0u8; 16];
                        a.copy_from_slice(&c.data[..16]);
                        let ip = Ipv6Addr::from(a);
                        tx.src = (!ip.is_unspecified()).then_some(IpAddr::V6(ip));
                    }
                    _ => return Err(Errno::EINVAL),
                },
                libc::IPPROTO_IP if !v6 => match c.ty {
                    libc::IP_TTL => {
                        let v = int_exact(c)?;
                        if !(1..=255).contains(&v) {
                            return Err(Errno::EINVAL);
                        }
                        tx.hops = Some(v as u8);
                    }
                    libc::IP_TOS => {
                        let v = match c.data.len() {
                            1 => c.data[0] as i32,
                            _ => int_exact(c)?,
                        };
                        if !(0..=255).contains(&v) {
                            return Err(Errno::EINVAL);
                        }
                        tx.tclass = Some(v as u8);
                    }
                    libc::IP_PKTINFO => {
                        if c.data.len() != 12 {
                            return Err(Errno::EINVAL);
                        }
                        let mut a = [0u8; 4];
                        a.copy_from_slice(&c.data[4..8]);
                        let ip = Ipv4Addr::from(a);
                        tx.src = (!ip.is_unspecified()).then_some(IpAddr::V4(ip));
                    }
                    _ => return Err(Errno::EINVAL),
                },
                _ => {}
            }
        }
        Ok(tx)
    }
}

/// What a datagram carried besides its bytes, for the receive-side messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rx {
    /// The destination address of the packet.
    pub dst: IpAddr,
    /// The interface it came in on.
    pub ifindex: u32,
    /// Its hop limit (TTL).
    pub hops: u8,
    /// Its traffic class (TOS).
    pub tclass: u8,
    /// UDP-Lite's checksum coverage (0: all of it).
    pub cscov: u16,
}

/// Which receive-side messages a socket asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Want {
    /// `IP_PKTINFO`.
    pub pktinfo: bool,
    /// `IP_RECVTTL`.
    pub ttl: bool,
    /// `IP_RECVTOS`.
    pub tos: bool,
    /// `IPV6_RECVPKTINFO`.
    pub pktinfo6: bool,
    /// `IPV6_RECVHOPLIMIT`.
    pub hoplimit: bool,
    /// `IPV6_RECVTCLASS`.
    pub tclass: bool,
}

/// The messages a socket (`v6`: an IPv6 one) that wants `w` gets with a datagram
/// that carried `rx`, in Linux's order. An IPv4 packet on an IPv6 socket gets
/// `IPV6_PKTINFO` (its address mapped) and then the IPv4 messages.
pub fn received(w: Want, rx: Rx, v6: bool) -> Vec<Cmsg> {
    let mut out = Vec::new();
    let dst4 = match rx.dst {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(a) => a.to_ipv4_mapped(),
    };
    if v6 && w.pktinfo6 {
        let a = match rx.dst {
            IpAddr::V4(a) => a.to_ipv6_mapped(),
            IpAddr::V6(a) => a,
        };
        let mut d = a.octets().to_vec();
        d.extend_from_slice(&rx.ifindex.to_le_bytes());
        out.push(Cmsg {
            level: libc::IPPROTO_IPV6,
            ty: libc::IPV6_PKTINFO,
            data: d,
        });
    }
    match dst4 {
        Some(a) => {
            if w.pktinfo {
                let mut d = rx.ifindex.to_le_bytes().to_vec();
                d.extend_from_slice(&a.octets());
                d.extend_from_slice(&a.octets());
                out.push(Cmsg {
                    level: libc::IPPROTO_IP,
                    ty: libc::IP_PKTINFO,
                    data: d,
                });
            }
            if w.ttl {
                out.push(Cmsg::int(libc::IPPROTO_IP, libc::IP_TTL, rx.hops as i32));
            }
            if w.tos {
                out.push(Cmsg {
                    level: libc::IPPROTO_IP,
                    ty: libc::IP_TOS,
                    data: vec![rx.tclass],
                });
            }
        }
        _ => {
            if w.hoplimit {
                out.push(Cmsg::int(
                    libc::IPPROTO_IPV6,
                    libc::IPV6_HOPLIMIT,
                    rx.hops as i32,
                ));
            }
            if w.tclass {
                out.push(Cmsg::int(
                    libc::IPPROTO_IPV6,
                    libc::IPV6_TCLASS,
                    rx.tclass as i32,
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(v: i32) -> Cmsg {
        Cmsg::int(libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT, v)
    }

    #[test]
    fn truncation_follows_put_cmsg() {
        let two = [hop(7), Cmsg::int(libc::IPPROTO_IPV6, libc::IPV6_TCLASS, 3)];
        let (b, cut) = encode(&two, 48);
        assert_eq!((b.len(), cut), (48, false));
        assert_eq!(encode(&two, 44).0.len(), 44);
        let (b, cut) = encode(&two, 40);
        assert_eq!((b.len(), cut), (40, true));
        // The second header fits, its payload does not: cmsg_len says 16.
        assert_eq!(u64::from_le_bytes(b[24..32].try_into().unwrap()), 16);
        let (b, cut) = encode(&two, 15);
        assert_eq!((b.len(), cut), (0, true));
        let (b, cut) = encode(&two, 18);
        assert_eq!((b.len(), cut), (18, true));
        assert_eq!(encode(&[], 0), (Vec::new(), false));
    }

    #[test]
    fn parse_checks_lengths() {
        let (b, _) = encode(&[hop(9)], 24);
        assert_eq!(parse(&b).unwrap(), vec![hop(9)]);
        let mut bad = b.clone();
        bad[0] = 40;
        assert_eq!(parse(&bad), Err(Errno::EINVAL));
        bad[0] = 8;
        assert_eq!(parse(&bad), Err(Errno::EINVAL));
        assert_eq!(Tx::of(&[hop(256)], true), Err(Errno::EINVAL));
        assert_eq!(Tx::of(&[hop(-1)], true).unwrap().hops, None);
        let tc = Cmsg::int(libc::IPPROTO_IPV6, libc::IPV6_TCLASS, -1);
        assert_eq!(Tx::of(&[tc], true).unwrap().tclass, Some(255));
        assert_eq!(Tx::of(&[hop(5)], true).unwrap().hops, Some(5));
        // An IPv4 socket skips IPv6 messages.
        assert_eq!(Tx::of(&[hop(5)], false).unwrap(), Tx::default());
    }
}
