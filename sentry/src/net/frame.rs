//! Ethernet frames for packet sockets: the frames the sandbox's loopback traffic
//! would have been (built only while a packet socket is open, since the in-memory
//! paths carry no packets), what a frame a program writes on `lo` delivers to the
//! sandbox's own IP input, and the check that keeps frames for the cloud metadata
//! server from leaving through the pod's interface.
//!
//! Linux's `lo` has an Ethernet header of zeros (`ARPHRD_LOOPBACK`); the frames
//! built here have that header and an IP header as Linux writes one (IPv4: DF set,
//! TTL 64), with the UDP checksum filled in.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::net::addr::SockAddr;
use crate::net::ippacket::{encode, fold16, parse_v4, parse_v6, sum16, Packet};
use crate::net::Netstack;

/// `ETH_P_IP`.
pub const ETH_P_IP: u16 = 0x0800;
/// `ETH_P_IPV6`.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// `ETH_P_ARP`.
pub const ETH_P_ARP: u16 = 0x0806;
/// Length of an Ethernet header.
pub const ETH_HLEN: usize = 14;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const PROTO_UDP: u8 = 17;
const PROTO_IPIP: u8 = 4;
const PROTO_IPV6: u8 = 41;
/// How many headers deep [`to_metadata`] looks (VLAN tags, IP in IP).
const MAX_DEPTH: usize = 8;

/// The ethertype of a frame (0 when it is shorter than a header).
pub fn ethertype(frame: &[u8]) -> u16 {
    match frame.get(12..14) {
        Some(b) => u16::from_be_bytes([b[0], b[1]]),
        None => 0,
    }
}

/// A frame on `lo` carrying `pkt`: both MAC addresses zero.
pub fn loopback_frame(pkt: &Packet) -> Vec<u8> {
    let ty = if pkt.dst.is_ipv4() {
        ETH_P_IP
    } else {
        ETH_P_IPV6
    };
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&ty.to_be_bytes());
    f.extend_from_slice(&encode(pkt));
    f
}

/// A UDP datagram from `from` to `to` (both canonical, same family) as an IP
/// packet, checksummed with the pseudo-header.
pub fn udp_packet(from: SockAddr, to: SockAddr, data: &[u8]) -> Packet {
    let len = (8 + data.len()).min(0xffff);
    let mut u = Vec::with_capacity(len);
    u.extend_from_slice(&from.port.to_be_bytes());
    u.extend_from_slice(&to.port.to_be_bytes());
    u.extend_from_slice(&(len as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    let mut sum = sum16(0, &u);
    match (from.ip, to.ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            sum = sum16(sum, &s.octets());
            sum = sum16(sum, &d.octets());
        }
        (s, d) => {
            let six = |ip: IpAddr| match ip {
                IpAddr::V6(a) => a,
                IpAddr::V4(a) => a.to_ipv6_mapped(),
            };
            sum = sum16(sum, &six(s).octets());
            sum = sum16(sum, &six(d).octets());
        }
    }
    sum += u32::from(PROTO_UDP) + len as u32;
    let c = match !fold16(sum) {
        0 => 0xffff,
        c => c,
    };
    u[6..8].copy_from_slice(&c.to_be_bytes());
    Packet {
        src: from.ip,
        dst: to.ip,
        proto: PROTO_UDP,
        ttl: 64,
        tos: 0,
        payload: u,
    }
}

/// A frame a program sent on `lo` comes back in: its IP datagram goes to the
/// sandbox's UDP sockets or ICMP layer, as Linux's `lo` hands it to the IP stack
/// (IPv4 from or to 127/8 is dropped there as martian).
/// TCP segments, ARP and other protocols are dropped (the in-memory TCP has no
/// segments to take them).
pub fn input_loopback(net: &Netstack, frame: &[u8]) {
    let Some(l3) = frame.get(ETH_HLEN..) else {
        return;
    };
    let pkt = match ethertype(frame) {
        ETH_P_IP => parse_v4(l3),
        ETH_P_IPV6 => parse_v6(l3),
        _ => None,
    };
    let Some(pkt) = pkt else {
        return;
    };
    let local = |ip: IpAddr| net.iface().is_local(ip) || net.is_ext_local(ip);
    // Linux's input route takes 127/8 as martian on a frame that arrives (not
    // looped by the stack's own output): dropped, unless for an IPv6 address.
    let martian = |ip: IpAddr| matches!(ip, IpAddr::V4(v4) if v4.is_loopback());
    if !local(pkt.dst) || martian(pkt.src) || martian(pkt.dst) {
        return;
    }
    match pkt.proto {
        PROTO_UDP if pkt.payload.len() >= 8 => {
            let p = &pkt.payload;
            let sport = u16::from_be_bytes([p[0], p[1]]);
            let dport = u16::from_be_bytes([p[2], p[3]]);
            let ulen = usize::from(u16::from_be_bytes([p[4], p[5]]));
            if ulen < 8 || ulen > p.len() {
                return;
            }
            crate::net::udp::deliver_external(
                net,
                SockAddr::new(pkt.dst, dport),
                SockAddr::new(pkt.src, sport),
                &p[8..ulen],
            );
        }
        p if p == crate::net::icmp::PROTO_ICMP || p == crate::net::icmp::PROTO_ICMPV6 => {
            crate::net::icmp::input(net, pkt, true);
        }
        _ => {}
    }
}

/// Whether `frame` carries an IP datagram for the cloud metadata server (its
/// destination, an address of an IPv6 routing header, or either of those in an IP
/// datagram carried inside, behind any number of VLAN tags), or an ARP message
/// whose target is its IPv4 address.
pub fn to_metadata(frame: &[u8]) -> bool {
    let mut ty = ethertype(frame);
    let mut at = ETH_HLEN;
    for _ in 0..MAX_DEPTH {
        match ty {
            ETH_P_8021Q | ETH_P_8021AD => {
                let Some(b) = frame.get(at + 2..at + 4) else {
                    return false;
                };
                ty = u16::from_be_bytes([b[0], b[1]]);
                at += 4;
            }
            // An ARP request or reply about the address: no probing for who has it.
            ETH_P_ARP => {
                return frame.get(at + 24..at + 28).is_some_and(|t| {
                    crate::net::is_metadata(IpAddr::V4(Ipv4Addr::new(t[0], t[1], t[2], t[3])))
                })
            }
            ETH_P_IP => return ip_to_metadata(frame.get(at..).unwrap_or(&[]), 0),
            ETH_P_IPV6 => return ip_to_metadata(frame.get(at..).unwrap_or(&[]), 0),
            _ => return false,
        }
    }
    // Deeper than any real frame: refused as if it were one.
    true
}

fn ip_to_metadata(d: &[u8], depth: usize) -> bool {
    use crate::net::is_metadata;
    if depth >= MAX_DEPTH {
        return true;
    }
    match d.first().map(|b| b >> 4) {
        Some(4) if d.len() >= 20 => {
            let dst = IpAddr::V4(Ipv4Addr::new(d[16], d[17], d[18], d[19]));
            if is_metadata(dst) {
                return true;
            }
            let ihl = usize::from(d[0] & 0xf) * 4;
            match d[9] {
                PROTO_IPIP | PROTO_IPV6 => ip_to_metadata(d.get(ihl..).unwrap_or(&[]), depth + 1),
                _ => false,
            }
        }
        Some(6) if d.len() >= 40 => {
            let addr = |b: &[u8]| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&b[..16]);
                IpAddr::V6(Ipv6Addr::from(a))
            };
            if is_metadata(addr(&d[24..40])) {
                return true;
            }
            // Extension headers: hop-by-hop, routing (every address in it), fragment,
            // destination options.
            let mut next = d[6];
            let mut at = 40;
            for _ in 0..MAX_DEPTH {
                match next {
                    0 | 43 | 44 | 60 => {
                        let Some(h) = d.get(at..at + 8) else {
                            return false;
                        };
                        let len = if next == 44 {
                            8
                        } else {
                            (usize::from(h[1]) + 1) * 8
                        };
                        if next == 43 {
                            let body = d.get(at + 8..at + len).unwrap_or(&[]);
                            if body.chunks_exact(16).any(|a| is_metadata(addr(a))) {
                                return true;
                            }
                        }
                        next = h[0];
                        at += len;
                    }
                    PROTO_IPIP | PROTO_IPV6 => {
                        return ip_to_metadata(d.get(at..).unwrap_or(&[]), depth + 1)
                    }
                    _ => return false,
                }
            }
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(dst: [u8; 4], proto: u8) -> Packet {
        Packet {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            dst: IpAddr::V4(Ipv4Addr::from(dst)),
            proto,
            ttl: 64,
            tos: 0,
            payload: vec![0; 20],
        }
    }

    #[test]
    fn metadata_frames_are_found_behind_tags_and_tunnels() {
        let md = [169, 254, 169, 254];
        let plain = loopback_frame(&v4(md, 6));
        assert!(to_metadata(&plain));
        assert!(!to_metadata(&loopback_frame(&v4([10, 0, 0, 1], 6))));
        // Behind a VLAN tag.
        let mut tagged = plain[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0, 0, 5]);
        tagged.extend_from_slice(&plain[12..]);
        assert!(to_metadata(&tagged));
        // IPv4 in IPv4 to another address.
        let mut outer = v4([10, 0, 0, 1], PROTO_IPIP);
        outer.payload = encode(&v4(md, 17));
        assert!(to_metadata(&loopback_frame(&outer)));
        // IPv6 with the address in a routing header.
        let md6 = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
        let mut rh = vec![6u8, 2, 4, 1, 0, 0, 0, 0];
        rh.extend_from_slice(&md6.octets());
        rh.extend_from_slice(&[0; 20]);
        let six = Packet {
            src: IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
            dst: IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
            proto: 43,
            ttl: 64,
            tos: 0,
            payload: rh,
        };
        assert!(to_metadata(&loopback_frame(&six)));
        let direct = Packet {
            dst: IpAddr::V6(md6),
            proto: 6,
            payload: vec![0; 20],
            ..six.clone()
        };
        assert!(to_metadata(&loopback_frame(&direct)));
        // Short frames are not IP; ARP only when it targets the address.
        assert!(!to_metadata(&[0u8; 10]));
        let mut arp = vec![0xffu8; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 10, 0, 0, 2, 0, 0, 0, 0, 0, 0]);
        arp.extend_from_slice(&[10, 0, 0, 1]);
        assert!(!to_metadata(&arp));
        let n = arp.len();
        arp[n - 4..].copy_from_slice(&md);
        assert!(to_metadata(&arp));
    }

    #[test]
    fn udp_packets_carry_a_valid_checksum() {
        let a = SockAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4000);
        let b = SockAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53);
        let p = udp_packet(a, b, b"hello");
        assert_eq!(p.payload.len(), 13);
        let mut sum = sum16(0, &p.payload);
        sum = sum16(sum, &[127, 0, 0, 1, 127, 0, 0, 1]);
        sum += 17 + 13;
        assert_eq!(fold16(sum), 0xffff);
        let f = loopback_frame(&p);
        assert_eq!((ethertype(&f), &f[..12]), (ETH_P_IP, &[0u8; 12][..]));
    }
}
