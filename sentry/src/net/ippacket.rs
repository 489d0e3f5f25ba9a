//! IP packets as the ICMP layer builds and parses them: the headers raw sockets
//! receive and the pod's interface carries, and the Internet checksum.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU16, Ordering};

/// Largest IP datagram.
pub const MAX_DATAGRAM: usize = 65_535;

/// One IP packet as the ICMP layer handles it (addresses canonical: see `addr`).
#[derive(Clone, Debug)]
pub struct Packet {
    /// Source address (canonical).
    pub src: IpAddr,
    /// Destination address (canonical).
    pub dst: IpAddr,
    /// IP protocol (next header).
    pub proto: u8,
    /// TTL or hop limit.
    pub ttl: u8,
    /// Type of service (traffic class).
    pub tos: u8,
    /// The payload after the IP header.
    pub payload: Vec<u8>,
}

/// One's-complement sum of `b` as big-endian 16-bit words (an odd last byte
/// padded with zero), added to `sum`, not yet folded: the Internet checksum's
/// running sum, shared by every header and pseudo-header the stacks write.
pub fn sum16(mut sum: u32, b: &[u8]) -> u32 {
    let mut it = b.chunks_exact(2);
    for w in &mut it {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = it.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// A [`sum16`] folded to 16 bits, not complemented (a checksum is its `!`; an
/// offloaded partial checksum is stored as it is).
pub fn fold16(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The Internet checksum of `data` (with IPv6's pseudo-header for ICMPv6 and
/// other v6 protocols; IPv4's ICMP has none).
pub fn checksum(src: IpAddr, dst: IpAddr, proto: u8, data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    if let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) {
        sum = sum16(sum, &s.octets());
        sum = sum16(sum, &d.octets());
        sum = sum16(sum, &(data.len() as u32).to_be_bytes());
        sum = sum16(sum, &[0, 0, 0, proto]);
    }
    !fold16(sum16(sum, data))
}

/// An IPv4 header for `pkt` (20 bytes, checksummed).
pub fn v4_header(pkt: &Packet, id: u16) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (pkt.src, pkt.dst) else {
        return Vec::new();
    };
    let total = (20 + pkt.payload.len()).min(MAX_DATAGRAM) as u16;
    let mut h = vec![0x45, pkt.tos];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&[0x40, 0, pkt.ttl, pkt.proto, 0, 0]);
    h.extend_from_slice(&s.octets());
    h.extend_from_slice(&d.octets());
    let sum = checksum(pkt.src, pkt.dst, 0, &h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

/// An IPv6 header for `pkt` (40 bytes).
pub fn v6_header(pkt: &Packet) -> Vec<u8> {
    let to6 = |ip: IpAddr| match ip {
        IpAddr::V6(a) => a,
        IpAddr::V4(a) => a.to_ipv6_mapped(),
    };
    let mut h = vec![0x60 | (pkt.tos >> 4), pkt.tos << 4, 0, 0];
    h.extend_from_slice(&(pkt.payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[pkt.proto, pkt.ttl]);
    h.extend_from_slice(&to6(pkt.src).octets());
    h.extend_from_slice(&to6(pkt.dst).octets());
    h
}

/// Parses an IPv4 datagram (a raw socket's `IP_HDRINCL` send, or one from the pod's
/// interface).
pub fn parse_v4(b: &[u8]) -> Option<Packet> {
    if b.len() < 20 || b[0] >> 4 != 4 {
        return None;
    }
    let ihl = (b[0] & 0xf) as usize * 4;
    let total = (u16::from_be_bytes([b[2], b[3]]) as usize).min(b.len());
    if ihl < 20 || total < ihl {
        return None;
    }
    Some(Packet {
        src: IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15])),
        dst: IpAddr::V4(Ipv4Addr::new(b[16], b[17], b[18], b[19])),
        proto: b[9],
        ttl: b[8],
        tos: b[1],
        payload: b[ihl..total].to_vec(),
    })
}

/// Parses an IPv6 packet without extension headers (one from the pod's interface).
pub fn parse_v6(b: &[u8]) -> Option<Packet> {
    if b.len() < 40 || b[0] >> 4 != 6 {
        return None;
    }
    let len = (u16::from_be_bytes([b[4], b[5]]) as usize).min(b.len() - 40);
    let addr = |o: usize| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[o..o + 16]);
        crate::net::addr::canonical(IpAddr::V6(Ipv6Addr::from(a)))
    };
    Some(Packet {
        src: addr(8),
        dst: addr(24),
        proto: b[6],
        ttl: b[7],
        tos: (b[0] << 4) | (b[1] >> 4),
        payload: b[40..40 + len].to_vec(),
    })
}

/// The whole datagram of `pkt` as it goes on the wire.
pub fn encode(pkt: &Packet) -> Vec<u8> {
    static ID: AtomicU16 = AtomicU16::new(1);
    let mut out = if pkt.dst.is_ipv4() {
        v4_header(pkt, ID.fetch_add(1, Ordering::Relaxed))
    } else {
        v6_header(pkt)
    };
    out.extend_from_slice(&pkt.payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_round_trip() {
        let v4 = Packet {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            proto: 1,
            ttl: 9,
            tos: 0x10,
            payload: b"abc".to_vec(),
        };
        let d = encode(&v4);
        assert_eq!((d.len(), checksum(v4.src, v4.dst, 0, &d[..20])), (23, 0));
        let back = parse_v4(&d).unwrap();
        assert_eq!(
            (back.src, back.dst, back.ttl, back.tos),
            (v4.src, v4.dst, 9, 0x10)
        );
        assert_eq!(back.payload, b"abc");
        let v6 = Packet {
            src: IpAddr::V6(Ipv6Addr::LOCALHOST),
            dst: IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
            proto: 58,
            ttl: 255,
            tos: 0xa0,
            payload: vec![1, 2, 3, 4],
        };
        let back = parse_v6(&encode(&v6)).unwrap();
        assert_eq!(
            (back.src, back.dst, back.proto, back.tos),
            (v6.src, v6.dst, 58, 0xa0)
        );
        assert_eq!(back.payload, v6.payload);
        // Short or truncated input is refused, not read past.
        assert!(parse_v4(&d[..19]).is_none() && parse_v6(&[0x60; 39]).is_none());
    }
}
