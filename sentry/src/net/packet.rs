//! Packet sockets (`AF_PACKET`, `SOCK_RAW` and `SOCK_DGRAM`), as Linux has them:
//! the frames of the sandbox's interfaces, copied to every socket whose protocol
//! and interface match, and frames (or, `SOCK_DGRAM`, payloads given a link-layer
//! header here) sent on an interface.
//!
//! The sockets of one sandbox are in its stack's [`PacketTable`]. Frames reach
//! [`PacketTable::tap`] from two places: the loopback paths of UDP and ICMP (which
//! build the frames only while a packet socket is open, [`PacketTable::any_open`]; see
//! [`crate::net::frame`]) and the pod's interface under `--network=sandbox`
//! ([`crate::net::external`]: every frame it receives, and every frame the stack
//! sends). A frame a program sends on `lo` comes back as received (as Linux's `lo`
//! loops it) and is handed to the sandbox's IP input; one sent on the pod's
//! interface leaves through the interface's packet socket, unless it is addressed
//! to the cloud metadata server ([`crate::net::frame::to_metadata`]).
//!
//! `SO_ATTACH_FILTER` programs run on each frame in the sentry
//! ([`crate::cbpf`]). Memory-mapped rings (`PACKET_RX_RING`,
//! `PACKET_TX_RING`) are not built.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use crate::cbpf::{self, Insn};
use crate::errno::{Errno, SysResult};
use crate::net::addr::Family;
use crate::net::frame::{self, ETH_HLEN};
use crate::net::loopback::{LO_INDEX, LO_MTU};
use crate::net::opts::{int_of, Ctx, SockOpts};
use crate::net::{next_ino, Netstack};
use crate::wait::WaitQueue;

/// `ETH_P_ALL`.
pub const ETH_P_ALL: u16 = 0x0003;
/// `SOL_PACKET`.
pub const SOL_PACKET: i32 = 263;
/// `PACKET_HOST`.
pub const PACKET_HOST: u8 = 0;
/// `PACKET_BROADCAST`.
pub const PACKET_BROADCAST: u8 = 1;
/// `PACKET_MULTICAST`.
pub const PACKET_MULTICAST: u8 = 2;
/// `PACKET_OTHERHOST`.
pub const PACKET_OTHERHOST: u8 = 3;
/// `PACKET_OUTGOING`.
pub const PACKET_OUTGOING: u8 = 4;
/// `ARPHRD_ETHER`.
pub const ARPHRD_ETHER: u16 = 1;
/// `ARPHRD_LOOPBACK`.
pub const ARPHRD_LOOPBACK: u16 = 772;
/// Interface index of the pod's interface inside the sandbox (`lo` is 1).
pub const EXT_INDEX: u32 = 2;
/// `offsetof(struct sockaddr_ll, sll_addr)`.
pub const SLL_ADDR_OFF: usize = 12;
/// `sizeof(struct sockaddr_ll)`.
pub const SOCKADDR_LL_LEN: usize = 20;

const PACKET_ADD_MEMBERSHIP: i32 = 1;
const PACKET_DROP_MEMBERSHIP: i32 = 2;
const PACKET_RX_RING: i32 = 5;
const PACKET_STATISTICS: i32 = 6;
const PACKET_AUXDATA: i32 = 8;
const PACKET_VERSION: i32 = 10;
const PACKET_HDRLEN: i32 = 11;
const PACKET_RESERVE: i32 = 12;
const PACKET_TX_RING: i32 = 13;
const PACKET_VNET_HDR: i32 = 15;
const PACKET_FANOUT: i32 = 18;
const PACKET_IGNORE_OUTGOING: i32 = 23;
/// `sizeof(struct packet_mreq)`.
const MREQ_LEN: usize = 16;
/// What a queued frame costs beyond its bytes (an skb's overhead).
const OVERHEAD: usize = 768;
/// `SKF_AD_OFF` and the ancillary loads a filter may make.
const SKF_AD_OFF: u32 = (-0x1000i32) as u32;
const SKF_AD_PROTOCOL: u32 = 0;
const SKF_AD_PKTTYPE: u32 = 4;
const SKF_AD_IFINDEX: u32 = 8;
const SKF_AD_HATYPE: u32 = 28;
const SKF_AD_VLAN_TAG: u32 = 44;
const SKF_AD_VLAN_TAG_PRESENT: u32 = 48;
/// `SKF_NET_OFF` and `SKF_LL_OFF`: loads relative to the network and link headers.
const SKF_NET_OFF: u32 = (-0x10_0000i32) as u32;
const SKF_LL_OFF: u32 = (-0x20_0000i32) as u32;

/// One interface as packet sockets see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// Its index.
    pub index: u32,
    /// `ARPHRD_*`.
    pub hatype: u16,
    /// Its hardware address (zeros for `lo`).
    pub mac: [u8; 6],
    /// Its MTU.
    pub mtu: u32,
}

/// A `struct sockaddr_ll`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkAddr {
    /// `sll_protocol` (host order here).
    pub protocol: u16,
    /// `sll_ifindex`.
    pub ifindex: u32,
    /// `sll_hatype`.
    pub hatype: u16,
    /// `sll_pkttype`.
    pub pkttype: u8,
    /// `sll_halen`.
    pub halen: u8,
    /// `sll_addr`.
    pub addr: [u8; 8],
}

impl LinkAddr {
    /// Parses a `sockaddr_ll` (the caller checked its length).
    pub fn parse(b: &[u8]) -> LinkAddr {
        let mut addr = [0u8; 8];
        let n = b.len().min(SOCKADDR_LL_LEN).saturating_sub(SLL_ADDR_OFF);
        addr[..n].copy_from_slice(&b[SLL_ADDR_OFF..SLL_ADDR_OFF + n]);
        LinkAddr {
            protocol: u16::from_be_bytes([b[2], b[3]]),
            ifindex: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            hatype: u16::from_le_bytes([b[8], b[9]]),
            pkttype: b[10],
            halen: b[11],
            addr,
        }
    }

    /// The 20 bytes of the structure.
    pub fn encode(&self) -> [u8; SOCKADDR_LL_LEN] {
        let mut b = [0u8; SOCKADDR_LL_LEN];
        b[..2].copy_from_slice(&(libc::AF_PACKET as u16).to_le_bytes());
        b[2..4].copy_from_slice(&self.protocol.to_be_bytes());
        b[4..8].copy_from_slice(&self.ifindex.to_le_bytes());
        b[8..10].copy_from_slice(&self.hatype.to_le_bytes());
        b[10] = self.pkttype;
        b[11] = self.halen;
        b[12..].copy_from_slice(&self.addr);
        b
    }
}

struct Msg {
    data: Vec<u8>,
    full_len: usize,
    from: LinkAddr,
}

/// A `struct packet_mreq` kept by `PACKET_ADD_MEMBERSHIP`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Membership {
    ifindex: u32,
    kind: u16,
    alen: u16,
    addr: [u8; 8],
}

struct State {
    /// The protocol received (host order; 0: nothing until a bind names one).
    proto: u16,
    /// The bound interface (0: every one).
    ifindex: u32,
    opts: SockOpts,
    queue: VecDeque<Msg>,
    charged: usize,
    filter: Option<Arc<[Insn]>>,
    memberships: Vec<Membership>,
    ignore_outgoing: bool,
    /// `PACKET_STATISTICS`: frames queued and dropped since last read.
    packets: u32,
    drops: u32,
}

/// A packet socket.
pub struct PacketInner {
    /// The stack the socket was made in (its interfaces and sockets).
    net: Arc<Netstack>,
    dgram: bool,
    ino: u64,
    wq: WaitQueue,
    st: Mutex<State>,
}

/// What one receive returned.
pub struct Received {
    /// The bytes copied.
    pub data: Vec<u8>,
    /// The frame's (or payload's) full length.
    pub full_len: usize,
    /// Where it came from.
    pub from: LinkAddr,
}

/// The packet sockets of one sandbox's network (its [`Netstack`]'s), and the
/// interfaces they see.
#[derive(Default)]
pub struct PacketTable {
    /// Sockets open (frames are built for them only then).
    open: AtomicUsize,
    all: Mutex<Vec<Weak<PacketInner>>>,
    /// The pod's interface, once `--network=sandbox` has attached it.
    ext: OnceLock<Link>,
}

impl PacketTable {
    fn registry(&self) -> MutexGuard<'_, Vec<Weak<PacketInner>>> {
        self.all.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether any packet socket is open (frames are built for them only then).
    pub fn any_open(&self) -> bool {
        self.open.load(Ordering::Relaxed) > 0
    }

    /// Records the pod's interface (its MAC and MTU) when it is attached.
    pub fn set_external(&self, mac: [u8; 6], mtu: u32) {
        let _ = self.ext.set(Link {
            index: EXT_INDEX,
            hatype: ARPHRD_ETHER,
            mac,
            mtu,
        });
    }

    /// The sandbox's interface of index `index` (`ENXIO`-style `None` when none is).
    pub fn link(&self, index: u32) -> Option<Link> {
        match index {
            LO_INDEX => Some(Link {
                index: LO_INDEX,
                hatype: ARPHRD_LOOPBACK,
                mac: [0; 6],
                mtu: LO_MTU,
            }),
            EXT_INDEX => self.ext.get().copied(),
            _ => None,
        }
    }

    /// A frame to or from the interface `link`: a copy to every packet socket that
    /// takes it. `sender` (a frame a packet socket sent) does not see its own
    /// outgoing copy, as on Linux.
    pub fn tap(&self, link: &Link, frame: &[u8], pkttype: u8, sender: Option<&PacketInner>) {
        if !self.any_open() || frame.len() < ETH_HLEN {
            return;
        }
        let socks: Vec<Arc<PacketInner>> =
            self.registry().iter().filter_map(Weak::upgrade).collect();
        for s in socks {
            if pkttype == PACKET_OUTGOING && sender.is_some_and(|x| std::ptr::eq(x, &*s)) {
                continue;
            }
            s.deliver(link, frame, pkttype);
        }
    }

    /// A frame sent on `lo` by the sandbox (its loopback traffic): the outgoing copy,
    /// then the copy `lo` receives.
    pub fn tap_loopback(&self, frame: &[u8]) {
        if let Some(lo) = self.link(LO_INDEX) {
            self.tap(&lo, frame, PACKET_OUTGOING, None);
            self.tap(&lo, frame, PACKET_HOST, None);
        }
    }
}

/// The packet type of a frame the interface `link` received, from its
/// destination address.
pub fn rx_pkttype(link: &Link, frame: &[u8]) -> u8 {
    let dst = &frame[..6.min(frame.len())];
    if dst == [0xff; 6] {
        PACKET_BROADCAST
    } else if dst.first().is_some_and(|b| b & 1 != 0) {
        PACKET_MULTICAST
    } else if dst == link.mac || link.hatype == ARPHRD_LOOPBACK {
        PACKET_HOST
    } else {
        PACKET_OTHERHOST
    }
}

/// A packet's reading of a frame for a socket filter.
struct FilterInput<'a> {
    /// From the link header (`SOCK_RAW`) or the network header (`SOCK_DGRAM`).
    data: &'a [u8],
    frame: &'a [u8],
    link: &'a Link,
    pkttype: u8,
}

impl FilterInput<'_> {
    fn bytes(b: &[u8], size: u16, off: usize) -> Option<u32> {
        let n = match size {
            cbpf::op::B => 1,
            cbpf::op::H => 2,
            _ => 4,
        };
        let b = b.get(off..off.checked_add(n)?)?;
        Some(b.iter().fold(0, |v, &x| (v << 8) | u32::from(x)))
    }
}

impl cbpf::Input for FilterInput<'_> {
    fn load(&self, size: u16, off: u32) -> Option<u32> {
        if off < SKF_LL_OFF {
            return Self::bytes(self.data, size, off as usize);
        }
        if off >= SKF_AD_OFF {
            return match off - SKF_AD_OFF {
                SKF_AD_PROTOCOL => Some(u32::from(frame::ethertype(self.frame))),
                SKF_AD_PKTTYPE => Some(u32::from(self.pkttype)),
                SKF_AD_IFINDEX => Some(self.link.index),
                SKF_AD_HATYPE => Some(u32::from(self.link.hatype)),
                SKF_AD_VLAN_TAG | SKF_AD_VLAN_TAG_PRESENT => Some(0),
                _ => None,
            };
        }
        if off >= SKF_NET_OFF {
            return Self::bytes(
                self.frame.get(ETH_HLEN..)?,
                size,
                (off - SKF_NET_OFF) as usize,
            );
        }
        Self::bytes(self.frame, size, (off - SKF_LL_OFF) as usize)
    }

    fn bpf_len(&self) -> u32 {
        self.data.len() as u32
    }
}

impl PacketInner {
    /// A new socket: `dgram` for `SOCK_DGRAM`; `proto` the protocol in host order
    /// (0 receives nothing until bound with one).
    pub fn new(net: &Arc<Netstack>, dgram: bool, proto: u16) -> Arc<PacketInner> {
        let s = Arc::new(PacketInner {
            net: net.clone(),
            dgram,
            ino: next_ino(),
            wq: WaitQueue::new(),
            st: Mutex::new(State {
                proto,
                ifindex: 0,
                opts: SockOpts::new(false),
                queue: VecDeque::new(),
                charged: 0,
                filter: None,
                memberships: Vec::new(),
                ignore_outgoing: false,
                packets: 0,
                drops: 0,
            }),
        });
        let table = &net.packet_sockets;
        let mut all = table.registry();
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&s));
        table.open.fetch_add(1, Ordering::Relaxed);
        s
    }

    fn lock(&self) -> SysResult<MutexGuard<'_, State>> {
        self.st.lock().map_err(|_| Errno::EIO)
    }

    /// `SOCK_DGRAM` (else `SOCK_RAW`).
    pub fn is_dgram(&self) -> bool {
        self.dgram
    }

    /// The queue notified when readiness may change.
    pub fn queue(&self) -> &WaitQueue {
        &self.wq
    }

    /// `fstat`'s inode number.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    fn deliver(&self, link: &Link, frame: &[u8], pkttype: u8) {
        let Ok(mut st) = self.st.lock() else {
            return;
        };
        let ty = frame::ethertype(frame);
        let proto_ok = st.proto == ETH_P_ALL || (st.proto != 0 && st.proto == ty);
        // Outgoing frames reach only ETH_P_ALL sockets (Linux's ptype_all taps).
        let out_ok = pkttype != PACKET_OUTGOING || (st.proto == ETH_P_ALL && !st.ignore_outgoing);
        if !proto_ok || !out_ok || (st.ifindex != 0 && st.ifindex != link.index) {
            return;
        }
        let data = if self.dgram {
            &frame[ETH_HLEN..]
        } else {
            frame
        };
        let snap = match &st.filter {
            Some(prog) => {
                let input = FilterInput {
                    data,
                    frame,
                    link,
                    pkttype,
                };
                cbpf::exec(prog, &input) as usize
            }
            None => usize::MAX,
        };
        if snap == 0 {
            return;
        }
        let kept = &data[..data.len().min(snap)];
        let cost = kept.len() + OVERHEAD;
        // Linux drops once the queued memory has reached the buffer's size.
        if st.charged >= st.opts.rcvbuf.max(0) as usize {
            st.drops = st.drops.saturating_add(1);
            return;
        }
        st.charged += cost;
        st.packets = st.packets.saturating_add(1);
        let mut addr = [0u8; 8];
        addr[..6].copy_from_slice(&frame[6..12]);
        st.queue.push_back(Msg {
            data: kept.to_vec(),
            full_len: kept.len(),
            from: LinkAddr {
                protocol: ty,
                ifindex: link.index,
                hatype: link.hatype,
                pkttype,
                halen: 6,
                addr,
            },
        });
        drop(st);
        self.wq.notify_all();
    }

    /// `bind(2)` to an interface (0: all) and protocol (0: keep the current one);
    /// `ENODEV` for an interface the sandbox does not have.
    pub fn bind(&self, a: &LinkAddr) -> SysResult<()> {
        if a.ifindex != 0 && self.net.packet_sockets.link(a.ifindex).is_none() {
            return Err(Errno::ENODEV);
        }
        let mut st = self.lock()?;
        st.ifindex = a.ifindex;
        if a.protocol != 0 {
            st.proto = a.protocol;
        }
        Ok(())
    }

    /// `getsockname`: the protocol, the bound interface and its address.
    pub fn local(&self) -> LinkAddr {
        let Ok(st) = self.lock() else {
            return LinkAddr::default();
        };
        let mut a = LinkAddr {
            protocol: st.proto,
            ifindex: st.ifindex,
            ..Default::default()
        };
        if let Some(l) = self.net.packet_sockets.link(st.ifindex) {
            a.hatype = l.hatype;
            a.halen = 6;
            a.addr[..6].copy_from_slice(&l.mac);
        }
        a
    }

    /// Sends `data`: a whole frame (`SOCK_RAW`), or a payload given the link
    /// header for `to`'s address and protocol (`SOCK_DGRAM`). Without `to`, the
    /// bound interface and protocol.
    pub fn send(&self, data: &[u8], to: Option<LinkAddr>) -> SysResult<usize> {
        let (ifindex, proto) = match (to, self.lock()?) {
            (Some(a), _) => (a.ifindex, a.protocol),
            (None, st) => (st.ifindex, st.proto),
        };
        let packets = &self.net.packet_sockets;
        let link = packets.link(ifindex).ok_or(Errno::ENXIO)?;
        let frame = if self.dgram {
            if data.len() > link.mtu as usize {
                return Err(Errno::EMSGSIZE);
            }
            let mut f = Vec::with_capacity(ETH_HLEN + data.len());
            match to {
                Some(a) => f.extend_from_slice(&a.addr[..6]),
                None => f.extend_from_slice(&[0; 6]),
            }
            f.extend_from_slice(&link.mac);
            f.extend_from_slice(&proto.to_be_bytes());
            f.extend_from_slice(data);
            f
        } else {
            if data.len() < ETH_HLEN {
                return Err(Errno::EINVAL);
            }
            if data.len() > link.mtu as usize + ETH_HLEN {
                return Err(Errno::EMSGSIZE);
            }
            data.to_vec()
        };
        match link.index {
            LO_INDEX => {
                packets.tap(&link, &frame, PACKET_OUTGOING, Some(self));
                packets.tap(&link, &frame, PACKET_HOST, None);
                frame::input_loopback(&self.net, &frame);
            }
            _ => {
                if frame::to_metadata(&frame) && !self.net.metadata_allowed() {
                    tracing::warn!(
                        "packet socket: frame for the cloud metadata server dropped: ENETUNREACH"
                    );
                    return Err(Errno::ENETUNREACH);
                }
                let ext = self.net.external().ok_or(Errno::ENXIO)?;
                packets.tap(&link, &frame, PACKET_OUTGOING, Some(self));
                ext.send_frame(&frame)?;
            }
        }
        Ok(data.len())
    }

    /// Takes (or copies, `peek`) the next frame, up to `len` bytes of it.
    pub fn recv(&self, len: usize, peek: bool) -> SysResult<Received> {
        let mut st = self.lock()?;
        let m = if peek {
            st.queue.front().map(|m| Msg {
                data: m.data[..m.data.len().min(len)].to_vec(),
                full_len: m.full_len,
                from: m.from,
            })
        } else {
            st.queue.pop_front().map(|mut m| {
                m.data.truncate(len);
                m
            })
        };
        let m = m.ok_or(Errno::EAGAIN)?;
        if !peek {
            st.charged = st.charged.saturating_sub(m.full_len + OVERHEAD);
        }
        Ok(Received {
            data: m.data,
            full_len: m.full_len,
            from: m.from,
        })
    }

    /// `poll` bits (`datagram_poll`).
    pub fn readiness(&self) -> u32 {
        let Ok(st) = self.lock() else {
            return libc::POLLERR as u32;
        };
        let mut r = (libc::POLLOUT | libc::POLLWRNORM | libc::POLLWRBAND) as u32;
        if !st.queue.is_empty() {
            r |= (libc::POLLIN | libc::POLLRDNORM) as u32;
        }
        r
    }

    /// The size of the next frame (`SIOCINQ`).
    pub fn next_len(&self) -> usize {
        self.lock()
            .map(|s| s.queue.front().map(|m| m.data.len()).unwrap_or(0))
            .unwrap_or(0)
    }

    /// The socket's timeouts.
    pub fn timeout(&self, send: bool) -> Option<std::time::Duration> {
        self.lock().ok().and_then(|s| s.opts.timeout(send))
    }

    fn ctx() -> Ctx {
        Ctx {
            family: Family::V4,
            tcp: false,
            bound: false,
        }
    }

    /// `SO_ATTACH_FILTER` with a checked program (`None`: `SO_DETACH_FILTER`,
    /// `ENOENT` when none is attached).
    pub fn set_filter(&self, prog: Option<Vec<Insn>>) -> SysResult<()> {
        let mut st = self.lock()?;
        match prog {
            Some(p) => {
                cbpf::check_socket(&p)?;
                st.filter = Some(p.into());
            }
            None => {
                if st.filter.take().is_none() {
                    return Err(Errno::ENOENT);
                }
            }
        }
        Ok(())
    }

    /// `setsockopt(2)` (`SO_ATTACH_FILTER` comes through [`Self::set_filter`]).
    pub fn setsockopt(&self, level: i32, name: i32, v: &[u8]) -> SysResult<()> {
        let mut st = self.lock()?;
        if level == libc::SOL_SOCKET {
            return match st.opts.set(Self::ctx(), level, name, v)? {
                true => Ok(()),
                false => {
                    tracing::warn!(
                        name,
                        "packet socket: SOL_SOCKET option not supported: ENOPROTOOPT"
                    );
                    Err(Errno::ENOPROTOOPT)
                }
            };
        }
        if level != SOL_PACKET {
            return Err(Errno::ENOPROTOOPT);
        }
        match name {
            PACKET_ADD_MEMBERSHIP | PACKET_DROP_MEMBERSHIP => {
                if v.len() < MREQ_LEN {
                    return Err(Errno::EINVAL);
                }
                let alen = u16::from_le_bytes([v[6], v[7]]);
                if v.len() < 8 + usize::from(alen) || alen > 8 {
                    return Err(Errno::EINVAL);
                }
                let mut addr = [0u8; 8];
                addr[..usize::from(alen)].copy_from_slice(&v[8..8 + usize::from(alen)]);
                let m = Membership {
                    ifindex: u32::from_le_bytes([v[0], v[1], v[2], v[3]]),
                    kind: u16::from_le_bytes([v[4], v[5]]),
                    alen,
                    addr,
                };
                let dev = self
                    .net
                    .packet_sockets
                    .link(m.ifindex)
                    .ok_or(Errno::ENODEV)?;
                if name == PACKET_DROP_MEMBERSHIP {
                    let at = st
                        .memberships
                        .iter()
                        .position(|x| {
                            x.ifindex == m.ifindex
                                && x.kind == m.kind
                                && x.alen == m.alen
                                && x.addr == m.addr
                        })
                        .ok_or(Errno::EADDRNOTAVAIL)?;
                    st.memberships.remove(at);
                    return Ok(());
                }
                // PACKET_MR_MULTICAST, _PROMISC, _ALLMULTI, _UNICAST. The sandbox's
                // interfaces already hand every frame they get to packet sockets (a
                // veth delivers frames for other hosts too), so promiscuous mode
                // and multicast lists change nothing they receive.
                if m.kind > 3 || usize::from(m.alen) > dev.mac.len() {
                    return Err(Errno::EINVAL);
                }
                if st.memberships.len() >= 64 {
                    return Err(Errno::ENOBUFS);
                }
                st.memberships.push(m);
                Ok(())
            }
            PACKET_IGNORE_OUTGOING => {
                st.ignore_outgoing = match int_of(v)? {
                    0 => false,
                    1 => true,
                    _ => return Err(Errno::EINVAL),
                };
                Ok(())
            }
            PACKET_RX_RING | PACKET_TX_RING | PACKET_VERSION | PACKET_RESERVE => {
                tracing::warn!(
                    name,
                    "packet socket: memory-mapped rings are not implemented: ENOPROTOOPT"
                );
                Err(Errno::ENOPROTOOPT)
            }
            PACKET_AUXDATA | PACKET_VNET_HDR | PACKET_FANOUT => {
                tracing::warn!(name, "packet socket option not implemented: ENOPROTOOPT");
                Err(Errno::ENOPROTOOPT)
            }
            _ => {
                tracing::warn!(name, "packet socket option not known: ENOPROTOOPT");
                Err(Errno::ENOPROTOOPT)
            }
        }
    }

    /// `getsockopt(2)`.
    pub fn getsockopt(&self, level: i32, name: i32) -> SysResult<Vec<u8>> {
        let mut st = self.lock()?;
        let int = |x: i32| x.to_le_bytes().to_vec();
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_ERROR) => Ok(int(0)),
            (libc::SOL_SOCKET, _) => st
                .opts
                .get(Self::ctx(), level, name)
                .ok_or(Errno::ENOPROTOOPT),
            (SOL_PACKET, PACKET_STATISTICS) => {
                // tp_packets counts the dropped ones too, as Linux's does; both reset.
                let mut v = st.packets.saturating_add(st.drops).to_le_bytes().to_vec();
                v.extend_from_slice(&st.drops.to_le_bytes());
                st.packets = 0;
                st.drops = 0;
                Ok(v)
            }
            (SOL_PACKET, PACKET_IGNORE_OUTGOING) => Ok(int(st.ignore_outgoing as i32)),
            (SOL_PACKET, PACKET_HDRLEN | PACKET_VERSION | PACKET_AUXDATA | PACKET_VNET_HDR) => {
                tracing::warn!(name, "packet socket option not implemented: ENOPROTOOPT");
                Err(Errno::ENOPROTOOPT)
            }
            _ => Err(Errno::ENOPROTOOPT),
        }
    }
}

impl Drop for PacketInner {
    fn drop(&mut self) {
        self.net.packet_sockets.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `SIOCINQ` (= `FIONREAD`).
const SIOCINQ: u64 = 0x541B;
/// `SIOCOUTQ`.
const SIOCOUTQ: u64 = 0x5411;

/// The open file of a packet socket.
pub struct PacketSocket(pub Arc<PacketInner>);

impl crate::vfs::FileImpl for PacketSocket {
    fn read(&self, buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        let got = self.0.recv(buf.len(), false)?;
        buf[..got.data.len()].copy_from_slice(&got.data);
        Ok(got.data.len())
    }

    fn write(&self, buf: &[u8], _offset: u64) -> SysResult<usize> {
        self.0.send(buf, None)
    }

    fn seekable(&self) -> bool {
        false
    }

    fn stat(&self) -> SysResult<crate::vfs::Stat> {
        Ok(crate::vfs::Stat {
            dev: crate::net::SOCKFS_DEV,
            ino: self.0.ino(),
            mode: libc::S_IFSOCK | 0o777,
            nlink: 1,
            blksize: 4096,
            ..Default::default()
        })
    }

    fn ioctl(&self, req: u64, arg: u64, mem: &dyn crate::platform::AddressSpace) -> SysResult<u64> {
        let v = match req {
            SIOCINQ => self.0.next_len(),
            SIOCOUTQ => 0,
            _ => return crate::net::ifreq::ioctl(Some(&self.0.net), req, arg, mem),
        };
        crate::mm::io::write_all(mem, arg, &(v.min(i32::MAX as usize) as i32).to_le_bytes())?;
        Ok(0)
    }

    fn readiness(&self) -> u32 {
        self.0.readiness()
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(self.0.queue())
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::addr::SockAddr;
    use crate::net::frame::{loopback_frame, udp_packet, ETH_P_ARP, ETH_P_IP};
    use std::net::{IpAddr, Ipv4Addr};

    /// A frame of a UDP datagram on `lo` to `port` (each test its own port: tests
    /// run at once and every socket sees every frame).
    fn udp(port: u16) -> Vec<u8> {
        let a = SockAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1000);
        let b = SockAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        loopback_frame(&udp_packet(a, b, b"data"))
    }

    /// A filter taking only UDP frames to `port`, `snap` bytes of them.
    fn port_filter(port: u16, snap: u32) -> Vec<Insn> {
        use cbpf::op::*;
        vec![
            Insn::stmt(LD | H | ABS, 36),
            Insn::jump(JMP | JEQ | K, u32::from(port), 0, 1),
            Insn::stmt(RET | K, snap),
            Insn::stmt(RET | K, 0),
        ]
    }

    #[test]
    fn raw_and_dgram_sockets_see_frames_with_their_address() {
        let net = Netstack::new();
        let raw = PacketInner::new(&net, false, ETH_P_ALL);
        let dgram = PacketInner::new(&net, true, ETH_P_IP);
        raw.set_filter(Some(port_filter(7001, 0xffff))).unwrap();
        let mut f = port_filter(7001, 0xffff);
        f[0].k = 22;
        dgram.set_filter(Some(f)).unwrap();
        net.packet_sockets.tap_loopback(&udp(7001));
        // ETH_P_ALL sees the outgoing copy and the received one.
        let a = raw.recv(1000, false).unwrap();
        let b = raw.recv(1000, false).unwrap();
        assert_eq!(
            (a.from.pkttype, b.from.pkttype),
            (PACKET_OUTGOING, PACKET_HOST)
        );
        assert_eq!(a.data.len(), 14 + 20 + 8 + 4);
        assert_eq!(
            (a.from.protocol, a.from.ifindex, a.from.hatype, a.from.halen),
            (ETH_P_IP, 1, ARPHRD_LOOPBACK, 6)
        );
        assert_eq!(raw.recv(1000, false).err(), Some(Errno::EAGAIN));
        // A protocol socket only the received one, without the link header.
        let c = dgram.recv(1000, true).unwrap();
        assert_eq!(
            (c.from.pkttype, c.data[0], c.full_len),
            (PACKET_HOST, 0x45, 32)
        );
        let c = dgram.recv(3, false).unwrap();
        assert_eq!((c.data.len(), c.full_len), (3, 32));
        assert_eq!(dgram.recv(1000, false).err(), Some(Errno::EAGAIN));
    }

    #[test]
    fn filters_snap_and_drop() {
        let net = Netstack::new();
        let raw = PacketInner::new(&net, false, ETH_P_ALL);
        raw.set_filter(Some(port_filter(7002, 20))).unwrap();
        net.packet_sockets.tap_loopback(&udp(7003));
        assert_eq!(raw.recv(1000, false).err(), Some(Errno::EAGAIN));
        net.packet_sockets.tap_loopback(&udp(7002));
        assert_eq!(raw.recv(1000, false).unwrap().data.len(), 20);
        assert_eq!(raw.set_filter(None), Ok(()));
        assert_eq!(raw.set_filter(None), Err(Errno::ENOENT));
        // A program that fails the check is refused.
        assert_eq!(raw.set_filter(Some(Vec::new())), Err(Errno::EINVAL));
    }

    #[test]
    fn bind_picks_interface_and_protocol() {
        let net = Netstack::new();
        let s = PacketInner::new(&net, false, 0);
        s.set_filter(Some(port_filter(7004, 0xffff))).unwrap();
        net.packet_sockets.tap_loopback(&udp(7004));
        assert_eq!(s.recv(1000, false).err(), Some(Errno::EAGAIN));
        let bad = LinkAddr {
            ifindex: 99,
            ..Default::default()
        };
        assert_eq!(s.bind(&bad), Err(Errno::ENODEV));
        s.bind(&LinkAddr {
            ifindex: 1,
            protocol: ETH_P_ARP,
            ..Default::default()
        })
        .unwrap();
        net.packet_sockets.tap_loopback(&udp(7004));
        assert_eq!(s.recv(1000, false).err(), Some(Errno::EAGAIN));
        s.bind(&LinkAddr {
            ifindex: 1,
            protocol: ETH_P_IP,
            ..Default::default()
        })
        .unwrap();
        net.packet_sockets.tap_loopback(&udp(7004));
        assert_eq!(s.recv(1000, false).unwrap().from.pkttype, PACKET_HOST);
        let me = s.local();
        assert_eq!(
            (me.ifindex, me.hatype, me.protocol),
            (1, ARPHRD_LOOPBACK, ETH_P_IP)
        );
        // Sending needs an interface.
        let u = PacketInner::new(&net, false, ETH_P_ALL);
        assert_eq!(u.send(&udp(7005), None), Err(Errno::ENXIO));
        assert_eq!(u.send(&[0; 10], Some(me)), Err(Errno::EINVAL));
    }

    #[test]
    fn a_frame_sent_on_lo_reaches_a_udp_socket_unless_martian() {
        use std::net::Ipv6Addr;
        let net = Netstack::new();
        let s = PacketInner::new(&net, false, ETH_P_ALL);
        let to = LinkAddr {
            ifindex: 1,
            ..Default::default()
        };
        // 127/8 arriving on lo is a martian for Linux's input route: dropped.
        let r = crate::net::udp::UdpInner::new(&net, Family::V4, 0);
        let lo9 = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
        r.bind(SockAddr::new(lo9, 7006)).unwrap();
        let f = loopback_frame(&udp_packet(
            SockAddr::new(lo9, 999),
            SockAddr::new(lo9, 7006),
            b"frame",
        ));
        assert_eq!(s.send(&f, Some(to)), Ok(f.len()));
        assert_eq!(r.recv(100, false).err(), Some(Errno::EAGAIN));
        // ::1 is delivered.
        let r6 = crate::net::udp::UdpInner::new(&net, Family::V6, 0);
        let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        r6.bind(SockAddr::new(lo6, 7007)).unwrap();
        let f = loopback_frame(&udp_packet(
            SockAddr::new(lo6, 999),
            SockAddr::new(lo6, 7007),
            b"frame6",
        ));
        assert_eq!(frame::ethertype(&f), frame::ETH_P_IPV6);
        assert_eq!(s.send(&f, Some(to)), Ok(f.len()));
        let got = r6.recv(100, false).unwrap();
        assert_eq!((got.data.as_slice(), got.from.port), (&b"frame6"[..], 999));
    }
}
