//! `--network=host`: the program sees the host's interfaces, as its sockets reach
//! them. Netlink route requests for links, addresses, routes, neighbours and
//! policy rules are answered with the host's own answers (`RTM_GETLINK`,
//! `RTM_GETADDR`, `RTM_GETROUTE`, `RTM_GETNEIGH`, `RTM_GETRULE` dumps and a single
//! link), `/proc/net`'s interface and socket files are the host's
//! (`sys::hostnet::VIEW_FILES`), and the interface ioctls and `/sys/class/net`
//! describe the host's links through [`links`] and [`addrs`], parsed from those
//! answers. Read-only: changes stay refused as in the other modes.
//!
//! The host calls go through one netlink route socket opened at boot
//! (`sys::hostnet::open_view`), which only ever carries requests the sentry builds
//! here: the program's fixed header (family, index) and, for links, its
//! `IFLA_EXT_MASK` and `IFLA_IFNAME`; never a request that changes anything.
//! Outside host mode nothing here is used and the sandbox's own view stays.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use crate::errno::{Errno, SysResult};
use crate::net::iflist::{Addr, Link};
use crate::sys::hostnet;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// `RTM_GETLINK`, `RTM_GETADDR`, `RTM_GETROUTE`.
pub const RTM_GETLINK: u16 = 18;
/// See [`RTM_GETLINK`].
pub const RTM_GETADDR: u16 = 22;
/// See [`RTM_GETLINK`].
pub const RTM_GETROUTE: u16 = 26;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const IFLA_IFNAME: u16 = 3;
const IFLA_EXT_MASK: u16 = 29;
/// Largest datagram an answer is cut into (Linux's `NLMSG_GOODSIZE` on 4 KiB
/// pages), so a reader with a page-sized buffer (glibc's `getifaddrs`) never gets
/// a truncated one.
const DATAGRAM_MAX: usize = 3776;

/// One request at a time on the host socket.
static LOCK: Mutex<()> = Mutex::new(());
static SEQ: AtomicU32 = AtomicU32::new(1);

/// Whether the program sees the host's interfaces (host mode).
pub fn active() -> bool {
    hostnet::view_open()
}

fn attrs(data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off + 4 > data.len() {
            return None;
        }
        let len = u16::from_le_bytes([data[off], data[off + 1]]) as usize;
        let kind = u16::from_le_bytes([data[off + 2], data[off + 3]]) & 0x3fff;
        if len < 4 || off + len > data.len() {
            return None;
        }
        let v = &data[off + 4..off + len];
        off += (len + 3) & !3;
        Some((kind, v))
    })
}

/// The messages of a netlink buffer: (type, whole message).
fn messages(data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off + NLMSG_HDRLEN > data.len() {
            return None;
        }
        let len =
            u32::from_le_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]]) as usize;
        if len < NLMSG_HDRLEN || off + len > data.len() {
            return None;
        }
        let kind = u16::from_le_bytes([data[off + 4], data[off + 5]]);
        let m = &data[off..off + len];
        off += (len + 3) & !3;
        Some((kind, m))
    })
}

/// The size of the fixed header of a request of `kind`: `ifinfomsg`,
/// `ifaddrmsg`, and 12 for `rtmsg`, `ndmsg` (`RTM_GETNEIGH`) and `fib_rule_hdr`
/// (`RTM_GETRULE`).
fn fixed_len(kind: u16) -> usize {
    match kind {
        RTM_GETLINK => 16,
        RTM_GETADDR => 8,
        _ => 12,
    }
}

/// Builds the host request for the program's request of `kind` with `body`.
fn request(kind: u16, dump: bool, body: &[u8], seq: u32) -> Vec<u8> {
    let mut b = vec![0u8; fixed_len(kind)];
    let n = body.len().min(b.len());
    b[..n].copy_from_slice(&body[..n]);
    if kind == RTM_GETLINK {
        for (k, v) in attrs(body.get(16..).unwrap_or(&[])) {
            if k == IFLA_EXT_MASK || (k == IFLA_IFNAME && !dump) {
                let v = &v[..v.len().min(64)];
                b.extend_from_slice(&((4 + v.len()) as u16).to_le_bytes());
                b.extend_from_slice(&k.to_le_bytes());
                b.extend_from_slice(v);
                while !b.len().is_multiple_of(4) {
                    b.push(0);
                }
            }
        }
    }
    let flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
    let mut m = Vec::with_capacity(NLMSG_HDRLEN + b.len());
    m.extend_from_slice(&((NLMSG_HDRLEN + b.len()) as u32).to_le_bytes());
    m.extend_from_slice(&kind.to_le_bytes());
    m.extend_from_slice(&flags.to_le_bytes());
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(&b);
    m
}

/// Asks the host (`kind` one of [`RTM_GETLINK`], [`RTM_GETADDR`],
/// [`RTM_GETROUTE`], or a neighbour or rule dump) and returns its raw answer.
fn ask(kind: u16, dump: bool, body: &[u8]) -> SysResult<Vec<u8>> {
    let _g = LOCK.lock().map_err(|_| Errno::EIO)?;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let req = request(kind, dump, body, seq);
    hostnet::view_request(&req, dump)
}

/// What the host answered to a program's request, ready for its socket.
pub struct Answer {
    /// The datagrams of the answer (messages renumbered to the program's `seq`
    /// and port), without a final error.
    pub datagrams: Vec<Vec<u8>>,
    /// The host's error (a negative errno), or 0.
    pub error: i32,
}

/// Answers the program's `kind` request (header `hdr`, 16 bytes; `body` after it)
/// with the host's: each message with the program's `seq` and `port`. `index`,
/// when not 0, keeps only the addresses of that interface (a strict address dump).
pub fn answer(hdr: &[u8], body: &[u8], dump: bool, port: u32, index: u32) -> SysResult<Answer> {
    let kind = u16::from_le_bytes([hdr[4], hdr[5]]);
    let seq = u32::from_le_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]);
    let raw = ask(kind, dump, body)?;
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    let mut cur = Vec::new();
    let mut error = 0;
    for (k, m) in messages(&raw) {
        if k == NLMSG_ERROR {
            error = m
                .get(16..20)
                .map(|e| i32::from_le_bytes([e[0], e[1], e[2], e[3]]))
                .unwrap_or(-libc::EIO);
            break;
        }
        if k == RTM_NEWADDR && index != 0 {
            let i = m
                .get(20..24)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            if i != Some(index) {
                continue;
            }
        }
        let mut m = m.to_vec();
        m[8..12].copy_from_slice(&seq.to_le_bytes());
        m[12..16].copy_from_slice(&port.to_le_bytes());
        while !m.len().is_multiple_of(4) {
            m.push(0);
        }
        if !cur.is_empty() && cur.len() + m.len() > DATAGRAM_MAX {
            datagrams.push(std::mem::take(&mut cur));
        }
        cur.extend_from_slice(&m);
        if k == NLMSG_DONE {
            break;
        }
    }
    if !cur.is_empty() {
        datagrams.push(cur);
    }
    Ok(Answer { datagrams, error })
}

fn ip_of(v: &[u8]) -> Option<IpAddr> {
    match v.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3]))),
        16 => {
            let o: [u8; 16] = v.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

fn cstr(v: &[u8]) -> String {
    String::from_utf8_lossy(&v[..v.iter().position(|&c| c == 0).unwrap_or(v.len())]).into_owned()
}

fn u32_of(v: &[u8]) -> u32 {
    v.get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

fn u64_at(v: &[u8], i: usize) -> u64 {
    v.get(i * 8..i * 8 + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// The host's interfaces now (empty when the host cannot be asked).
pub fn links() -> Vec<Link> {
    let Ok(raw) = ask(RTM_GETLINK, true, &[0u8; 16]) else {
        return Vec::new();
    };
    messages(&raw)
        .filter(|(k, m)| *k == RTM_NEWLINK && m.len() >= NLMSG_HDRLEN + 16)
        .map(|(_, m)| {
            let b = &m[NLMSG_HDRLEN..];
            let mut l = Link {
                index: u32_of(&b[4..8]),
                name: String::new(),
                hatype: u16::from_le_bytes([b[2], b[3]]),
                flags: u32_of(&b[8..12]),
                mtu: 0,
                mac: [0; 6],
                broadcast: [0; 6],
                operstate: 0,
                rx: (0, 0),
                tx: (0, 0),
                qdisc: "noqueue",
            };
            for (k, v) in attrs(&b[16..]) {
                let mac = |v: &[u8]| {
                    let mut a = [0u8; 6];
                    let n = v.len().min(6);
                    a[..n].copy_from_slice(&v[..n]);
                    a
                };
                match k {
                    1 => l.mac = mac(v),
                    2 => l.broadcast = mac(v),
                    3 => l.name = cstr(v),
                    4 => l.mtu = u32_of(v),
                    16 => l.operstate = v.first().copied().unwrap_or(0),
                    // rtnl_link_stats64: rx/tx packets, rx/tx bytes first.
                    23 => {
                        l.rx = (u64_at(v, 2), u64_at(v, 0));
                        l.tx = (u64_at(v, 3), u64_at(v, 1));
                    }
                    _ => {}
                }
            }
            l
        })
        .collect()
}

/// The host's addresses now, IPv4 before IPv6 as the host dumps them.
pub fn addrs() -> Vec<Addr> {
    let names: Vec<(u32, String)> = links().into_iter().map(|l| (l.index, l.name)).collect();
    let Ok(raw) = ask(RTM_GETADDR, true, &[0u8; 8]) else {
        return Vec::new();
    };
    messages(&raw)
        .filter(|(k, m)| *k == RTM_NEWADDR && m.len() >= NLMSG_HDRLEN + 8)
        .filter_map(|(_, m)| {
            let b = &m[NLMSG_HDRLEN..];
            let index = u32_of(&b[4..8]);
            let (mut local, mut address, mut label) = (None, None, None);
            for (k, v) in attrs(&b[8..]) {
                match k {
                    1 => address = ip_of(v),
                    2 => local = ip_of(v),
                    3 => label = Some(cstr(v)),
                    _ => {}
                }
            }
            let name = label.unwrap_or_else(|| {
                names
                    .iter()
                    .find(|(i, _)| *i == index)
                    .map(|(_, n)| n.clone())
                    .unwrap_or_default()
            });
            Some(Addr {
                index,
                name,
                ip: local.or(address)?,
                prefix: b[1],
                scope: b[3],
            })
        })
        .collect()
}

/// The host's `/proc/net/NAME`, when host mode shows it.
pub fn proc_file(name: &str) -> Option<Vec<u8>> {
    if !active() {
        return None;
    }
    hostnet::view_file(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_keeps_only_the_header_and_allowed_attributes() {
        // ifinfomsg, then IFLA_EXT_MASK, IFLA_MTU (dropped) and IFLA_IFNAME.
        let mut body = vec![0u8; 16];
        body[4] = 7;
        for (k, v) in [
            (29u16, vec![1, 0, 0, 0]),
            (4, vec![0, 5, 0, 0]),
            (3, b"eth0\0".to_vec()),
        ] {
            body.extend_from_slice(&((4 + v.len()) as u16).to_le_bytes());
            body.extend_from_slice(&k.to_le_bytes());
            body.extend_from_slice(&v);
            while !body.len().is_multiple_of(4) {
                body.push(0);
            }
        }
        let r = request(RTM_GETLINK, false, &body, 9);
        let kinds: Vec<u16> = attrs(&r[32..]).map(|(k, _)| k).collect();
        assert_eq!(kinds, vec![29, 3]);
        assert_eq!(r[NLMSG_HDRLEN + 4], 7);
        let d = request(RTM_GETLINK, true, &body, 9);
        let kinds: Vec<u16> = attrs(&d[32..]).map(|(k, _)| k).collect();
        assert_eq!(kinds, vec![29]);
        assert_eq!(u16::from_le_bytes([d[6], d[7]]), NLM_F_REQUEST | NLM_F_DUMP);
        // An address request is its 8-byte header only, whatever follows; a
        // neighbour (30) or rule (34) dump its 12-byte one.
        let a = request(RTM_GETADDR, true, &[2u8; 40], 1);
        assert_eq!(a.len(), NLMSG_HDRLEN + 8);
        for kind in [30, 34] {
            let n = request(kind, true, &[2u8; 40], 1);
            assert_eq!(n.len(), NLMSG_HDRLEN + 12);
        }
    }
}
