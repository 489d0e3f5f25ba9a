//! TIME-WAIT on the pod's interface after smoltcp lets go: Linux's timewait socket
//! answers late segments for the whole `TCP_TIMEWAIT_LEN` (60 s), while smoltcp
//! keeps a connection's socket for 10 s of TIME-WAIT at most (and the sandbox keeps
//! at most 64 such sockets), after which it would answer with a reset. Once the
//! socket is gone, the device answers segments for the 4-tuple itself, as
//! `tcp_timewait_state_process` does: a bare ACK at the expected sequence number
//! is dropped, a reset ends the TIME-WAIT, a SYN goes on to a listener, and every
//! other segment (a FIN sent again, data) gets an ACK carrying the connection's
//! last sequence numbers, which the device noted from the last segment smoltcp
//! sent for it.

use std::net::IpAddr;

use crate::net::addr::SockAddr;
use crate::net::ippacket::{fold16, sum16};

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// A TCP segment of an Ethernet frame: the fields TIME-WAIT looks at.
#[derive(Debug, PartialEq, Eq)]
pub struct Segment {
    /// Source and destination.
    pub from: SockAddr,
    /// See `from`.
    pub to: SockAddr,
    /// Its sequence number.
    pub seq: u32,
    /// The sequence number after it (data, SYN and FIN count).
    pub end: u32,
    /// Its acknowledgement number (meaningful with `ACK`).
    pub ack: u32,
    /// Its flags.
    pub flags: u8,
}

/// Parses the TCP segment in `frame` (Ethernet, IPv4 or IPv6 without extension
/// headers).
pub fn segment(frame: &[u8]) -> Option<Segment> {
    let (src, dst, tcp, len) = match frame.get(12..14)? {
        [0x08, 0x00] => {
            let v = *frame.get(14)?;
            if v >> 4 != 4 || frame.get(23) != Some(&6) {
                return None;
            }
            let ihl = (v as usize & 0xf) * 4;
            let total = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]) as usize;
            let a: [u8; 4] = frame.get(26..30)?.try_into().ok()?;
            let b: [u8; 4] = frame.get(30..34)?.try_into().ok()?;
            (
                IpAddr::from(a),
                IpAddr::from(b),
                frame.get(14 + ihl..)?,
                total.checked_sub(ihl)?,
            )
        }
        [0x86, 0xdd] if frame.get(20) == Some(&6) => {
            let plen = u16::from_be_bytes([*frame.get(18)?, *frame.get(19)?]) as usize;
            let a: [u8; 16] = frame.get(22..38)?.try_into().ok()?;
            let b: [u8; 16] = frame.get(38..54)?.try_into().ok()?;
            (IpAddr::from(a), IpAddr::from(b), frame.get(54..)?, plen)
        }
        _ => return None,
    };
    if tcp.len() < 20 {
        return None;
    }
    let doff = (tcp[12] >> 4) as usize * 4;
    let data = len.checked_sub(doff)?;
    let flags = tcp[13];
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let extra = u32::from(flags & SYN != 0) + u32::from(flags & FIN != 0);
    Some(Segment {
        from: SockAddr::new(src, u16::from_be_bytes([tcp[0], tcp[1]])),
        to: SockAddr::new(dst, u16::from_be_bytes([tcp[2], tcp[3]])),
        seq,
        end: seq.wrapping_add(data as u32).wrapping_add(extra),
        ack: u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]),
        flags,
    })
}

/// A connection in TIME-WAIT whose smoltcp socket is gone: the next sequence
/// number it sends and the one it expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seqs {
    /// `snd_nxt`.
    pub snd: u32,
    /// `rcv_nxt`.
    pub rcv: u32,
}

/// What TIME-WAIT does with a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Nothing (a bare ACK, an out-of-window reset).
    Drop,
    /// A reset at the expected sequence number ends the TIME-WAIT (Linux with
    /// `tcp_rfc1337` 0, its default).
    Kill,
    /// A new SYN: the TIME-WAIT ends and the SYN goes on (to a listener).
    Syn,
    /// This frame, an ACK, goes back.
    Ack(Vec<u8>),
}

/// Linux's `tcp_timewait_state_process` in TIME-WAIT for `seg` (of `frame`).
pub fn answer(frame: &[u8], seg: &Segment, s: Seqs) -> Answer {
    let rst = seg.flags & RST != 0;
    if seg.seq == s.rcv && (seg.seq == seg.end || rst) {
        return if rst { Answer::Kill } else { Answer::Drop };
    }
    if seg.flags & (SYN | RST | ACK) == SYN && (seg.seq.wrapping_sub(s.rcv) as i32) > 0 {
        return Answer::Syn;
    }
    if rst {
        return Answer::Drop;
    }
    match ack_frame(frame, seg, s) {
        Some(f) => Answer::Ack(f),
        None => Answer::Drop,
    }
}

/// The ACK answering `seg`: back to the sender's MAC from the one it was sent
/// to, `snd`/`rcv` as its sequence and acknowledgement numbers, no options (the
/// sandbox's connections do not use TCP timestamps).
fn ack_frame(frame: &[u8], seg: &Segment, s: Seqs) -> Option<Vec<u8>> {
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&seg.to.port.to_be_bytes());
    tcp[2..4].copy_from_slice(&seg.from.port.to_be_bytes());
    tcp[4..8].copy_from_slice(&s.snd.to_be_bytes());
    tcp[8..12].copy_from_slice(&s.rcv.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = ACK;
    tcp[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    let (src, dst) = (seg.to.ip, seg.from.ip);
    let mut out = Vec::with_capacity(14 + 40 + 20);
    out.extend_from_slice(frame.get(6..12)?);
    out.extend_from_slice(frame.get(0..6)?);
    match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let pseudo = sum16(sum16(sum16(0, &a.octets()), &b.octets()), &[0, 6, 0, 20]);
            let c = !fold16(sum16(pseudo, &tcp));
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
            out.extend_from_slice(&[0x08, 0x00]);
            let mut ip = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
            ip.extend_from_slice(&a.octets());
            ip.extend_from_slice(&b.octets());
            let c = !fold16(sum16(0, &ip));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            out.extend_from_slice(&ip);
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let pseudo = sum16(
                sum16(sum16(0, &a.octets()), &b.octets()),
                &[0, 0, 0, 20, 0, 0, 0, 6],
            );
            let c = !fold16(sum16(pseudo, &tcp));
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
            out.extend_from_slice(&[0x86, 0xdd]);
            out.extend_from_slice(&[0x60, 0, 0, 0, 0, 20, 6, 64]);
            out.extend_from_slice(&a.octets());
            out.extend_from_slice(&b.octets());
        }
        _ => return None,
    }
    out.extend_from_slice(&tcp);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// An Ethernet+IPv4+TCP frame from 10.0.0.1:80 to 10.0.0.2:5000.
    fn frame(seq: u32, flags: u8, data: &[u8]) -> Vec<u8> {
        let seg = Segment {
            from: SockAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 5000),
            to: SockAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 80),
            seq: 0,
            end: 0,
            ack: 0,
            flags: 0,
        };
        let mac = [[2u8, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]].concat();
        // An ACK "from" 10.0.0.1 built by ack_frame, then rewritten.
        let mut f = ack_frame(&mac, &seg, Seqs { snd: seq, rcv: 7 }).unwrap();
        f[14 + 20 + 13] = flags;
        f.extend_from_slice(data);
        let total = (40 + data.len()) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f
    }

    #[test]
    fn parses_and_answers_as_linux() {
        let s = Seqs {
            snd: 1000,
            rcv: 500,
        };
        let fin = frame(499, FIN | ACK, b"");
        let seg = segment(&fin).unwrap();
        assert_eq!(seg.end, 500);
        assert_eq!(seg.from.port, 80);
        // A FIN sent again: an ACK back with the connection's numbers.
        let Answer::Ack(a) = answer(&fin, &seg, s) else {
            panic!("no ACK");
        };
        let back = segment(&a).unwrap();
        assert_eq!((back.seq, back.ack, back.flags), (1000, 500, ACK));
        assert_eq!((back.from, back.to), (seg.to, seg.from));
        assert_eq!(&a[0..6], &fin[6..12]);
        // Its checksums verify.
        assert_eq!(!fold16(sum16(0, &a[14..34])), 0);
        // A bare ACK at rcv_nxt is dropped, a reset there ends TIME-WAIT, one
        // elsewhere is dropped, data is answered, a new SYN goes on.
        let bare = frame(500, ACK, b"");
        assert_eq!(answer(&bare, &segment(&bare).unwrap(), s), Answer::Drop);
        let rst = frame(500, RST, b"");
        assert_eq!(answer(&rst, &segment(&rst).unwrap(), s), Answer::Kill);
        let far = frame(9000, RST, b"");
        assert_eq!(answer(&far, &segment(&far).unwrap(), s), Answer::Drop);
        let data = frame(500, ACK | 0x08, b"late");
        assert!(matches!(
            answer(&data, &segment(&data).unwrap(), s),
            Answer::Ack(_)
        ));
        let syn = frame(90_000, SYN, b"");
        assert_eq!(answer(&syn, &segment(&syn).unwrap(), s), Answer::Syn);
    }
}
