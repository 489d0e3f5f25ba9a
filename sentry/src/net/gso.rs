//! Large TCP sends on the packet socket of `--network=sandbox`: the segments smoltcp
//! emits back to back for one connection (at the peer's MSS, 1460 bytes over Ethernet)
//! are joined into one frame of up to 64 KiB carrying a `virtio_net_hdr` that asks the
//! host kernel to cut it again (GSO) and to fill in the TCP checksum. One `sendto`
//! then carries a whole burst, and over a veth the aggregate reaches the peer's TCP
//! whole, as the host's own TCP hands a veth its TSO segments.
//!
//! The packet socket must have `PACKET_VNET_HDR` set (the runtime does it before
//! confinement and says so in the boot config); every frame sent then starts with the
//! 10-byte header, all zero for frames the kernel must take as they are.
//!
//! What may be joined is what the kernel's segmentation gives back unchanged: frames
//! of one flow (same Ethernet and IP headers but for the lengths, same ports,
//! acknowledgement, window and options) whose sequence numbers follow each other, all
//! but the last carrying exactly the first one's payload size, with no flag but ACK
//! (PSH allowed on the last, which ends the aggregate). Anything else is sent on its
//! own after the aggregate before it, so frames leave in the order smoltcp made them.
//! smoltcp leaves every TCP checksum to the kernel here (`NEEDS_CSUM` with the
//! pseudo-header sum in the checksum field, as a NIC with checksum offload expects).

use crate::net::ippacket::{fold16, sum16};

/// Size of `struct virtio_net_hdr` (the packet socket's header without `num_buffers`).
pub const VNET_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at `csum_start + csum_offset` is the
/// pseudo-header's, the kernel completes it.
const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;

const ETH_LEN: usize = 14;
const IPV6_LEN: usize = 40;
const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;
/// Largest IP datagram an aggregate may become (the IPv4 and IPv6 length fields).
const MAX_IP: usize = 65535;

/// Where the headers of a TCP frame are.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Tcp {
    v6: bool,
    /// Offset of the TCP header.
    l4: usize,
    /// Offset of the payload.
    data: usize,
    /// End of the IP datagram (the frame may be longer).
    end: usize,
    flags: u8,
    seq: u32,
}

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

fn put16(b: &mut [u8], at: usize, v: usize) {
    b[at..at + 2].copy_from_slice(&(v as u16).to_be_bytes());
}

/// The TCP headers of an Ethernet frame, when it carries an unfragmented TCP segment
/// with consistent lengths.
fn parse(f: &[u8]) -> Option<Tcp> {
    if f.len() < ETH_LEN {
        return None;
    }
    let (v6, l4, end) = match be16(f, 12) {
        0x0800 => {
            let ip = f.get(ETH_LEN..ETH_LEN + 20)?;
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            // Protocol TCP; neither more fragments nor a fragment offset.
            if ip[0] >> 4 != 4 || ihl < 20 || ip[9] != 6 || be16(ip, 6) & 0x3fff != 0 {
                return None;
            }
            (false, ETH_LEN + ihl, ETH_LEN + be16(ip, 2))
        }
        0x86dd => {
            let ip = f.get(ETH_LEN..ETH_LEN + IPV6_LEN)?;
            // No extension headers (smoltcp sends none before TCP).
            if ip[0] >> 4 != 6 || ip[6] != 6 {
                return None;
            }
            (true, ETH_LEN + IPV6_LEN, ETH_LEN + IPV6_LEN + be16(ip, 4))
        }
        _ => return None,
    };
    let th = f.get(l4..l4 + 20)?;
    let data = l4 + usize::from(th[12] >> 4) * 4;
    if data < l4 + 20 || data > end || end > f.len() {
        return None;
    }
    Some(Tcp {
        v6,
        l4,
        data,
        end,
        flags: th[13],
        seq: u32::from_be_bytes([th[4], th[5], th[6], th[7]]),
    })
}

/// Makes the frame's lengths, IPv4 header checksum and TCP pseudo-header checksum
/// final for its current size `len`, and writes the `virtio_net_hdr` in the
/// `VNET_LEN` bytes before it: `gso_size` 0 for a single segment.
fn finish(buf: &mut [u8], t: &Tcp, len: usize, gso_size: usize) {
    let (hdr, f) = buf.split_at_mut(VNET_LEN);
    let f = &mut f[..len];
    let tcp_len = len - t.l4;
    let pseudo = if t.v6 {
        put16(f, ETH_LEN + 4, len - ETH_LEN - IPV6_LEN);
        sum16(6, &f[ETH_LEN + 8..ETH_LEN + 40]) + tcp_len as u32
    } else {
        put16(f, ETH_LEN + 2, len - ETH_LEN);
        put16(f, ETH_LEN + 10, 0);
        let c = !fold16(sum16(0, &f[ETH_LEN..t.l4]));
        put16(f, ETH_LEN + 10, usize::from(c));
        sum16(6, &f[ETH_LEN + 12..ETH_LEN + 20]) + tcp_len as u32
    };
    put16(f, t.l4 + 16, usize::from(fold16(pseudo)));
    let gso_type = match (gso_size, t.v6) {
        (0, _) => GSO_NONE,
        (_, false) => GSO_TCPV4,
        (_, true) => GSO_TCPV6,
    };
    hdr[0] = F_NEEDS_CSUM;
    hdr[1] = gso_type;
    hdr[2..4].copy_from_slice(&(t.data as u16).to_ne_bytes());
    hdr[4..6].copy_from_slice(&(gso_size as u16).to_ne_bytes());
    hdr[6..8].copy_from_slice(&(t.l4 as u16).to_ne_bytes());
    hdr[8..10].copy_from_slice(&16u16.to_ne_bytes());
}

/// The aggregate being built.
struct Agg {
    tcp: Tcp,
    /// Frame length so far (excluding the header room).
    len: usize,
    /// Payload size of every segment but the last.
    seg: usize,
    /// Frames joined, and their bytes as smoltcp made them (for the interface counters).
    frames: u64,
    wire: u64,
    next_seq: u32,
}

/// Joins consecutive TCP segments into GSO frames (see the module's documentation).
#[derive(Default)]
pub struct Coalescer {
    buf: Vec<u8>,
    agg: Option<Agg>,
}

/// What is handed to the sender: the buffer (header then frame), and how many frames of
/// how many bytes in all it stands for.
pub type Out<'a> = (&'a [u8], u64, u64);

impl Coalescer {
    /// Takes one frame smoltcp made, in `buf[VNET_LEN..VNET_LEN + len]` (the bytes before
    /// are room for the header), and sends what must leave now through `send`.
    pub fn push(&mut self, buf: &mut [u8], len: usize, send: &mut dyn FnMut(Out<'_>)) {
        let frame = &buf[VNET_LEN..VNET_LEN + len];
        let Some(t) = parse(frame) else {
            // Not TCP: the kernel takes it as it is (smoltcp made its checksums).
            self.flush(send);
            buf[..VNET_LEN].fill(0);
            send((&buf[..VNET_LEN + len], 1, len as u64));
            return;
        };
        let payload = t.end - t.data;
        let joinable = t.flags & !TCP_PSH == TCP_ACK && payload > 0;
        if joinable && self.join(frame, &t) {
            if t.flags & TCP_PSH != 0 {
                self.flush(send);
            }
            return;
        }
        self.flush(send);
        if joinable && t.flags & TCP_PSH == 0 {
            self.buf.clear();
            self.buf.extend_from_slice(&buf[..VNET_LEN + t.end]);
            self.agg = Some(Agg {
                tcp: t,
                len: t.end,
                seg: payload,
                frames: 1,
                wire: len as u64,
                next_seq: t.seq.wrapping_add(payload as u32),
            });
            return;
        }
        finish(buf, &t, t.end, 0);
        send((&buf[..VNET_LEN + t.end], 1, len as u64));
    }

    /// Appends `f` to the aggregate when it continues it.
    fn join(&mut self, f: &[u8], t: &Tcp) -> bool {
        let Some(a) = &mut self.agg else {
            return false;
        };
        let head = &self.buf[VNET_LEN..VNET_LEN + a.tcp.data];
        let payload = t.end - t.data;
        let same = t.v6 == a.tcp.v6
            && t.l4 == a.tcp.l4
            && t.data == a.tcp.data
            && t.seq == a.next_seq
            && payload <= a.seg
            // The last segment so far was a full one.
            && (a.len - a.tcp.data) % a.seg == 0
            && a.len - ETH_LEN + payload <= MAX_IP
            && f[..ETH_LEN] == head[..ETH_LEN]
            && (if t.v6 {
                // Traffic class, flow label; the addresses.
                f[ETH_LEN..ETH_LEN + 4] == head[ETH_LEN..ETH_LEN + 4]
                    && f[ETH_LEN + 6..t.l4] == head[ETH_LEN + 6..t.l4]
            } else {
                // Version, TOS; TTL, protocol; the addresses and options.
                f[ETH_LEN..ETH_LEN + 2] == head[ETH_LEN..ETH_LEN + 2]
                    && f[ETH_LEN + 8..ETH_LEN + 10] == head[ETH_LEN + 8..ETH_LEN + 10]
                    && f[ETH_LEN + 12..t.l4] == head[ETH_LEN + 12..t.l4]
            })
            // Ports; acknowledgement, data offset, window; options.
            && f[t.l4..t.l4 + 4] == head[t.l4..t.l4 + 4]
            && f[t.l4 + 8..t.l4 + 13] == head[t.l4 + 8..t.l4 + 13]
            && f[t.l4 + 14..t.l4 + 16] == head[t.l4 + 14..t.l4 + 16]
            && f[t.l4 + 20..t.data] == head[t.l4 + 20..t.data];
        if !same {
            return false;
        }
        self.buf.extend_from_slice(&f[t.data..t.end]);
        // PSH of the last segment goes on the aggregate (the kernel puts it on the
        // last segment it cuts).
        let flags = t.l4 + 13;
        self.buf[VNET_LEN + flags] |= f[flags] & TCP_PSH;
        a.len += payload;
        a.frames += 1;
        a.wire += (t.end) as u64;
        a.next_seq = a.next_seq.wrapping_add(payload as u32);
        true
    }

    /// Sends the aggregate being built, if any.
    pub fn flush(&mut self, send: &mut dyn FnMut(Out<'_>)) {
        let Some(a) = self.agg.take() else {
            return;
        };
        let gso = if a.frames > 1 { a.seg } else { 0 };
        finish(&mut self.buf, &a.tcp, a.len, gso);
        send((&self.buf[..VNET_LEN + a.len], a.frames, a.wire));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet/IPv4/TCP frame with room for the header before it.
    fn v4(seq: u32, flags: u8, payload: &[u8], ack: u32) -> Vec<u8> {
        let mut b = vec![0u8; VNET_LEN];
        b.extend_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]);
        let total = 20 + 20 + payload.len();
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 7, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1,
        ];
        put16(&mut ip, 2, total);
        let c = !fold16(sum16(0, &ip));
        put16(&mut ip, 10, usize::from(c));
        b.extend_from_slice(&ip);
        let mut th = vec![0x30, 0x39, 0x23, 0x28];
        th.extend_from_slice(&seq.to_be_bytes());
        th.extend_from_slice(&ack.to_be_bytes());
        th.extend_from_slice(&[0x50, flags, 0x10, 0x00, 0, 0, 0, 0]);
        b.extend_from_slice(&th);
        b.extend_from_slice(payload);
        b
    }

    /// An Ethernet/IPv6/TCP frame with room for the header before it.
    fn v6(seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; VNET_LEN];
        b.extend_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd]);
        let mut ip = vec![0x60, 0, 0, 0, 0, 0, 6, 64];
        put16(&mut ip, 4, 20 + payload.len());
        ip.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        ip.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        b.extend_from_slice(&ip);
        let mut th = vec![0x30, 0x39, 0x23, 0x28];
        th.extend_from_slice(&seq.to_be_bytes());
        th.extend_from_slice(&1u32.to_be_bytes());
        th.extend_from_slice(&[0x50, TCP_ACK, 0x10, 0x00, 0, 0, 0, 0]);
        b.extend_from_slice(&th);
        b.extend_from_slice(payload);
        b
    }

    fn run(frames: Vec<Vec<u8>>) -> Vec<(Vec<u8>, u64)> {
        let mut c = Coalescer::default();
        let mut out = Vec::new();
        for mut f in frames {
            let len = f.len() - VNET_LEN;
            c.push(&mut f, len, &mut |(b, n, _)| out.push((b.to_vec(), n)));
        }
        c.flush(&mut |(b, n, _)| out.push((b.to_vec(), n)));
        out
    }

    #[test]
    fn consecutive_segments_become_one_gso_frame() {
        let p = [7u8; 100];
        let out = run(vec![
            v4(1000, TCP_ACK, &p, 5),
            v4(1100, TCP_ACK, &p, 5),
            v4(1200, TCP_ACK | TCP_PSH, &p[..40], 5),
        ]);
        assert_eq!(out.len(), 1);
        let (b, n) = &out[0];
        assert_eq!(*n, 3);
        let (hdr, f) = b.split_at(VNET_LEN);
        assert_eq!(hdr[0], F_NEEDS_CSUM);
        assert_eq!(hdr[1], GSO_TCPV4);
        assert_eq!(u16::from_ne_bytes([hdr[4], hdr[5]]), 100);
        assert_eq!(u16::from_ne_bytes([hdr[2], hdr[3]]), 54);
        assert_eq!(u16::from_ne_bytes([hdr[6], hdr[7]]), 34);
        assert_eq!(u16::from_ne_bytes([hdr[8], hdr[9]]), 16);
        assert_eq!(f.len(), 54 + 240);
        assert_eq!(be16(f, 16), 20 + 20 + 240);
        // The IPv4 header checksum is valid again.
        assert_eq!(fold16(sum16(0, &f[14..34])), 0xffff);
        // PSH of the last segment is kept, the sequence number is the first's.
        assert_eq!(f[34 + 13], TCP_ACK | TCP_PSH);
        assert_eq!(u32::from_be_bytes([f[38], f[39], f[40], f[41]]), 1000);
        // The pseudo-header sum: adding the segment's own sum completes it.
        let t = parse(f).unwrap();
        let pseudo = sum16(6, &f[26..34]) + 260;
        assert_eq!(be16(f, t.l4 + 16), usize::from(fold16(pseudo)));
        let mut full = f.to_vec();
        put16(&mut full, t.l4 + 16, 0);
        let c = !fold16(sum16(pseudo, &full[t.l4..t.end]));
        put16(&mut full, t.l4 + 16, usize::from(c));
        assert_eq!(fold16(sum16(pseudo, &full[t.l4..t.end])), 0xffff);
    }

    #[test]
    fn gaps_other_acks_and_control_segments_are_not_joined() {
        let p = [1u8; 50];
        // A sequence gap, then a different acknowledgement, then a FIN.
        let out = run(vec![
            v4(0, TCP_ACK, &p, 1),
            v4(60, TCP_ACK, &p, 1),
            v4(110, TCP_ACK, &p, 2),
            v4(160, TCP_ACK | 0x01, &[], 2),
        ]);
        assert_eq!(out.len(), 4);
        for (b, n) in &out {
            assert_eq!(*n, 1);
            assert_eq!(b[1], GSO_NONE, "single segments carry no GSO type");
            assert_eq!(b[0], F_NEEDS_CSUM);
        }
        // A short segment ends the aggregate: the next full one starts another.
        let out = run(vec![
            v4(0, TCP_ACK, &p, 1),
            v4(50, TCP_ACK, &p[..10], 1),
            v4(60, TCP_ACK, &p, 1),
        ]);
        assert_eq!(out.iter().map(|o| o.1).collect::<Vec<_>>(), [2, 1]);
        // A larger segment than the first cannot be joined.
        let out = run(vec![v4(0, TCP_ACK, &p[..10], 1), v4(10, TCP_ACK, &p, 1)]);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn aggregates_stop_at_64k_and_other_frames_pass_unchanged() {
        let p = vec![3u8; 1460];
        let frames: Vec<Vec<u8>> = (0..60u32).map(|i| v4(i * 1460, TCP_ACK, &p, 9)).collect();
        let out = run(frames);
        assert!(out.len() >= 2);
        assert_eq!(out.iter().map(|o| o.1).sum::<u64>(), 60);
        for (b, _) in &out {
            assert!(b.len() - VNET_LEN - ETH_LEN <= MAX_IP);
        }
        assert_eq!(out[0].1, 44);
        // An ARP frame goes out after the pending aggregate, with an all-zero header.
        let mut arp = vec![0u8; VNET_LEN + 42];
        arp[VNET_LEN + 12] = 0x08;
        arp[VNET_LEN + 13] = 0x06;
        let out = run(vec![v4(0, TCP_ACK, &p, 1), arp.clone()]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0[1], GSO_NONE);
        assert_eq!(out[1].0[..VNET_LEN], [0; VNET_LEN]);
        assert_eq!(out[1].0[VNET_LEN..], arp[VNET_LEN..]);
    }

    #[test]
    fn ipv6_segments_join_with_the_v6_gso_type() {
        let p = [5u8; 1000];
        let out = run(vec![v6(7, &p), v6(1007, &p), v6(2007, &p)]);
        assert_eq!(out.len(), 1);
        let (b, n) = &out[0];
        assert_eq!(*n, 3);
        assert_eq!(b[1], GSO_TCPV6);
        let f = &b[VNET_LEN..];
        assert_eq!(be16(f, ETH_LEN + 4), 20 + 3000);
        let pseudo = sum16(6, &f[ETH_LEN + 8..ETH_LEN + 40]) + 3020;
        assert_eq!(be16(f, 54 + 16), usize::from(fold16(pseudo)));
    }
}
