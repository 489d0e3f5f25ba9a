//! The pod's interface under `--network=sandbox`: a userspace TCP/IP stack
//! (smoltcp) on the packet socket the runtime opened on the container's network
//! namespace interface before confinement.
//!
//! The runtime took the interface's addresses away from the host kernel (so the
//! kernel neither answers ARP nor resets connections for them) and handed them to
//! the sentry in the boot config; from then on the host kernel sees only frames.
//! smoltcp answers ARP, NDP and ICMP echo itself. Sockets of the socket layer whose
//! destination is not local ([`super::Netstack::is_external`]) are smoltcp sockets
//! named by a [`SocketHandle`]; loopback traffic stays in-memory as before.
//!
//! One lock guards the stack. A driver thread polls it whenever a frame arrives or a
//! timer (retransmission, delayed ACK, TIME-WAIT) is due; a task that changes a
//! socket (send, receive, close) polls it inline so its segments leave at once, and
//! kicks the driver when that moved the next timer earlier. Work that needs other
//! locks (queueing an accepted connection on its listener, delivering a datagram
//! through the UDP port table, waking waiters) is collected under the lock and done
//! after it is released: sockets take their own lock before this one.
//!
//! Checksums of received frames are not verified: over a veth the sender's kernel
//! leaves them to "hardware" (CHECKSUM_PARTIAL), so what the packet socket sees is
//! not final; frames reach the interface from the host only, never from a wire.
//! For the same reason a received frame may be a GSO aggregate larger than the MTU.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant as StdInstant;

use smoltcp::iface::{Config, Interface as SmolIface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{raw, tcp, udp};
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint, IpProtocol,
    IpVersion,
};

use crate::config::NetDevConfig;
use crate::errno::{Errno, SysResult};
use crate::net::addr::SockAddr;
use crate::net::gso;
use crate::net::packet as sockets;
use crate::net::twack;
use crate::net::Netstack;
use crate::sys::packet;
use crate::wait::WaitQueue;

/// Receive and send buffer of each TCP socket. A veth's bandwidth-delay product is
/// tens of KiB; 4 MiB measured no faster there (docs/networking.md).
pub const TCP_BUF: usize = 256 << 10;
/// Listening smoltcp sockets kept per listening port (each takes one SYN).
const LISTEN_POOL: usize = 8;
/// How long a connection attempt or unacknowledged data may wait (Linux gives up on
/// a SYN after about 2 minutes).
const TCP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// UDP datagrams and bytes queued per bound port, each way.
const UDP_SLOTS: usize = 256;
const UDP_BYTES: usize = 1 << 20;
/// Largest frame read from the packet socket: a GSO aggregate of 64 KiB, its
/// Ethernet header and a VLAN tag.
const RX_FRAME: usize = 65536 + 14 + 4;

/// Starts the pod's interface of `net` on `fd`, the packet socket the runtime
/// opened (`boot --net-fd`), with the interface as the runtime described it, and
/// its driver thread.
pub fn start(net: &Arc<Netstack>, cfg: &NetDevConfig, fd: OwnedFd) -> Result<(), String> {
    let ext = Arc::new(External::new(cfg, fd, Arc::downgrade(net))?);
    net.packet_sockets.set_external(cfg.mac, ext.mtu());
    if net.external.set(ext.clone()).is_err() {
        return Err("--network=sandbox: the interface is already set up".into());
    }
    let driver = ext.clone();
    std::thread::Builder::new()
        .name("netstack".into())
        .spawn(move || driver.drive())
        .map_err(|e| format!("--network=sandbox: driver thread: {e}"))?;
    tracing::info!(
        iface = %cfg.name, mtu = cfg.mtu, addrs = ?cfg.addrs,
        gateway4 = ?cfg.gateway4, gateway6 = ?cfg.gateway6,
        "sandbox network: userspace stack attached"
    );
    Ok(())
}

/// The packet socket as a smoltcp device.
struct PacketDev {
    mtu: usize,
    rx: Vec<u8>,
    /// Bytes before each received frame: the `virtio_net_hdr` when the socket has
    /// `PACKET_VNET_HDR`, else 0.
    rx_skip: usize,
    rx_bytes: u64,
    rx_packets: u64,
    tx: TxSide,
    /// Ports whose every listener has a full accept queue: SYNs to them are
    /// dropped before the stack sees them, as Linux's `tcp_conn_request` drops
    /// them, so the client sends them again instead of meeting a reset.
    syn_drop: std::collections::HashSet<u16>,
    /// Connections in TIME-WAIT on a port that also has a listener (local
    /// address and port, remote address and port): a new SYN for one is held
    /// back from the stack (smoltcp's TIME-WAIT socket would ignore it) and given
    /// again once that socket is gone, so the listener takes it, as Linux's
    /// `tcp_timewait_state_process` (`TCP_TW_SYN`) does.
    tw_listened: std::collections::HashSet<(SockAddr, SockAddr)>,
    /// The SYNs held back so (whole frames as read, header room included).
    tw_syns: Vec<Vec<u8>>,
    /// Frames to give the stack before reading more (the held SYNs, once their
    /// TIME-WAIT socket is gone).
    inject: Vec<Vec<u8>>,
    /// The network's protocol counters (`/proc/net/snmp`).
    snmp: Arc<crate::net::snmp::Snmp>,
    /// Connections in TIME-WAIT whose smoltcp socket is gone, by (local,
    /// remote): their sequence numbers and when the TIME-WAIT ends. The device
    /// answers their late segments itself (net/twack.rs).
    tw_gone: HashMap<(SockAddr, SockAddr), (twack::Seqs, StdInstant)>,
    /// Those a reset or a new SYN ended, for the stack to mark over.
    tw_killed: Vec<(SockAddr, SockAddr)>,
}

/// The TCP segment in `frame` (Ethernet): (source, destination, flags).
fn tcp_of(frame: &[u8]) -> Option<(SockAddr, SockAddr, u8)> {
    let (src, dst, tcp) = match frame.get(12..14)? {
        [0x08, 0x00] => {
            let v = *frame.get(14)?;
            if frame.get(23) != Some(&6) || v >> 4 != 4 {
                return None;
            }
            let a: [u8; 4] = frame.get(26..30)?.try_into().ok()?;
            let b: [u8; 4] = frame.get(30..34)?.try_into().ok()?;
            (
                IpAddr::from(Ipv4Addr::from(a)),
                IpAddr::from(Ipv4Addr::from(b)),
                frame.get(14 + (v as usize & 0xf) * 4..)?,
            )
        }
        [0x86, 0xdd] if frame.get(20) == Some(&6) => {
            let a: [u8; 16] = frame.get(22..38)?.try_into().ok()?;
            let b: [u8; 16] = frame.get(38..54)?.try_into().ok()?;
            (
                IpAddr::from(Ipv6Addr::from(a)),
                IpAddr::from(Ipv6Addr::from(b)),
                frame.get(54..)?,
            )
        }
        _ => return None,
    };
    if tcp.len() < 14 {
        return None;
    }
    Some((
        SockAddr::new(src, u16::from_be_bytes([tcp[0], tcp[1]])),
        SockAddr::new(dst, u16::from_be_bytes([tcp[2], tcp[3]])),
        tcp[13],
    ))
}

/// Whether `frame` (Ethernet) is a TCP SYN without ACK to a port in `ports`.
fn is_syn_to(frame: &[u8], ports: &std::collections::HashSet<u16>) -> bool {
    let tcp = match frame.get(12..14) {
        Some([0x08, 0x00]) => {
            let Some(&v) = frame.get(14) else {
                return false;
            };
            if frame.get(23) != Some(&6) || v >> 4 != 4 {
                return false;
            }
            frame.get(14 + (v as usize & 0xf) * 4..)
        }
        Some([0x86, 0xdd]) if frame.get(20) == Some(&6) => frame.get(54..),
        _ => None,
    };
    match tcp {
        Some(t) if t.len() >= 14 => {
            t[13] & 0x12 == 0x02 && ports.contains(&u16::from_be_bytes([t[2], t[3]]))
        }
        _ => false,
    }
}

/// The sending half of the device.
struct TxSide {
    fd: Arc<OwnedFd>,
    /// Frames are built at `gso::VNET_LEN` and go through the coalescer (the socket
    /// has `PACKET_VNET_HDR`); else they are sent one by one as they are.
    gso: Option<gso::Coalescer>,
    buf: Vec<u8>,
    bytes: u64,
    packets: u64,
    /// The sandbox's packet sockets, which see every frame sent.
    taps: Arc<sockets::PacketTable>,
    /// The network's protocol counters.
    snmp: Arc<crate::net::snmp::Snmp>,
    /// The active closers' connections, by (local, remote): the sequence
    /// numbers of the last segment sent for each (`snd_nxt`, `rcv_nxt`), kept
    /// for TIME-WAIT once smoltcp lets go of the socket.
    watch: HashMap<(SockAddr, SockAddr), twack::Seqs>,
}

impl TxSide {
    #[allow(clippy::too_many_arguments)]
    fn send(
        fd: &OwnedFd,
        taps: &sockets::PacketTable,
        snmp: &crate::net::snmp::Snmp,
        bytes: &mut u64,
        packets: &mut u64,
        skip: usize,
        (buf, frames, wire): gso::Out<'_>,
    ) {
        if taps.any_open() {
            if let (Some(link), Some(f)) = (taps.link(sockets::EXT_INDEX), buf.get(skip..)) {
                taps.tap(&link, f, sockets::PACKET_OUTGOING, None);
            }
        }
        // A full host queue drops the frame, as a NIC would; TCP resends it.
        if packet::send_frame(fd.as_fd(), buf).is_ok() {
            *bytes += wire;
            *packets += frames;
            if let Some(f) = buf.get(skip..) {
                snmp.frame(f, true, frames);
            }
        }
    }

    /// Sends the TCP aggregate being built, if any (after each pass of the stack).
    fn flush(&mut self) {
        let TxSide {
            fd,
            gso,
            bytes,
            packets,
            taps,
            snmp,
            ..
        } = self;
        if let Some(c) = gso {
            c.flush(&mut |out| Self::send(fd, taps, snmp, bytes, packets, gso::VNET_LEN, out));
        }
    }
}

struct Rx<'a>(&'a [u8]);

impl phy::RxToken for Rx<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.0)
    }
}

struct Tx<'a>(&'a mut TxSide);

impl phy::TxToken for Tx<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let TxSide {
            fd,
            gso,
            buf,
            bytes,
            packets,
            taps,
            snmp,
            watch,
        } = self.0;
        let room = if gso.is_some() { gso::VNET_LEN } else { 0 };
        if buf.len() < room + len {
            buf.resize(room + len, 0);
        }
        let r = f(&mut buf[room..room + len]);
        if !watch.is_empty() {
            if let Some(seg) = twack::segment(&buf[room..room + len]) {
                if let Some(w) = watch.get_mut(&(seg.from, seg.to)) {
                    *w = twack::Seqs {
                        snd: seg.end,
                        rcv: seg.ack,
                    };
                }
            }
        }
        match gso {
            Some(c) => c.push(buf, len, &mut |out| {
                TxSide::send(fd, taps, snmp, bytes, packets, gso::VNET_LEN, out)
            }),
            None => TxSide::send(
                fd,
                taps,
                snmp,
                bytes,
                packets,
                0,
                (&buf[..len], 1, len as u64),
            ),
        }
        r
    }
}

impl PacketDev {
    /// Whether the frame read (`n` bytes) was for a connection in TIME-WAIT
    /// whose smoltcp socket is gone, and so answered (or dropped) here as Linux's
    /// timewait socket would: it then never reaches smoltcp, which would reset.
    fn time_wait(&mut self, n: usize) -> bool {
        let frame = &self.rx[self.rx_skip..n];
        let Some(seg) = twack::segment(frame) else {
            return false;
        };
        let key = (seg.to, seg.from);
        let Some(&(seqs, until)) = self.tw_gone.get(&key) else {
            return false;
        };
        if StdInstant::now() >= until {
            self.tw_gone.remove(&key);
            return false;
        }
        match twack::answer(frame, &seg, seqs) {
            twack::Answer::Drop => true,
            twack::Answer::Kill => {
                self.tw_gone.remove(&key);
                self.tw_killed.push(key);
                true
            }
            twack::Answer::Syn => {
                // The 4-tuple is taken again: smoltcp's listener (if any) has it.
                self.tw_gone.remove(&key);
                self.tw_killed.push(key);
                false
            }
            twack::Answer::Ack(ack) => {
                self.tx.flush();
                let room = if self.tx.gso.is_some() {
                    gso::VNET_LEN
                } else {
                    0
                };
                let mut out = vec![0u8; room];
                out.extend_from_slice(&ack);
                let len = ack.len() as u64;
                let TxSide {
                    fd,
                    bytes,
                    packets,
                    taps,
                    snmp,
                    ..
                } = &mut self.tx;
                TxSide::send(fd, taps, snmp, bytes, packets, room, (&out, 1, len));
                true
            }
        }
    }
}

impl Device for PacketDev {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _now: SmolInstant) -> Option<(Rx<'_>, Tx<'_>)> {
        if let Some(f) = self.inject.pop() {
            // A held SYN (already counted and tapped when it was read).
            let n = f.len().min(self.rx.len());
            self.rx[..n].copy_from_slice(&f[..n]);
            return Some((Rx(&self.rx[self.rx_skip..n]), Tx(&mut self.tx)));
        }
        loop {
            match packet::recv_frame(self.tx.fd.as_fd(), &mut self.rx) {
                Ok(Some(n)) if n <= self.rx.len() && n >= self.rx_skip => {
                    self.rx_bytes += (n - self.rx_skip) as u64;
                    self.rx_packets += 1;
                    self.snmp.frame(&self.rx[self.rx_skip..n], false, 1);
                    let taps = &self.tx.taps;
                    if taps.any_open() {
                        // The program's packet sockets get a copy of every frame.
                        if let Some(link) = taps.link(sockets::EXT_INDEX) {
                            let f = &self.rx[self.rx_skip..n];
                            taps.tap(&link, f, sockets::rx_pkttype(&link, f), None);
                        }
                    }
                    if !self.syn_drop.is_empty()
                        && is_syn_to(&self.rx[self.rx_skip..n], &self.syn_drop)
                    {
                        continue;
                    }
                    if !self.tw_gone.is_empty() && self.time_wait(n) {
                        continue;
                    }
                    if !self.tw_listened.is_empty() {
                        if let Some((from, to, flags)) = tcp_of(&self.rx[self.rx_skip..n]) {
                            // SYN without ACK (nor RST) for a TIME-WAIT connection.
                            if flags & 0x16 == 0x02 && self.tw_listened.contains(&(to, from)) {
                                self.tw_syns.push(self.rx[..n].to_vec());
                                continue;
                            }
                        }
                    }
                    return Some((Rx(&self.rx[self.rx_skip..n]), Tx(&mut self.tx)));
                }
                // The host's own frames on the interface, oversized ones, and (with
                // the virtio header) ones the kernel could not describe and dropped.
                Ok(_) | Err(Errno::EINVAL) => continue,
                Err(_) => return None,
            }
        }
    }

    fn transmit(&mut self, _now: SmolInstant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + 14;
        let mut sum = ChecksumCapabilities::default();
        sum.ipv4 = Checksum::Tx;
        sum.udp = Checksum::Tx;
        // With the virtio header the kernel completes TCP checksums (gso.rs).
        sum.tcp = if self.tx.gso.is_some() {
            Checksum::None
        } else {
            Checksum::Tx
        };
        sum.icmpv4 = Checksum::Tx;
        sum.icmpv6 = Checksum::Tx;
        caps.checksum = sum;
        caps
    }
}

/// What the socket layer keeps of a smoltcp TCP socket it owns.
struct Rec {
    wq: Weak<WaitQueue>,
    last: tcp::State,
    wr_shut: bool,
    rd_shut: bool,
    err: Option<Errno>,
    started: StdInstant,
}

struct Listener {
    refs: usize,
    /// How many of the `refs` listeners have a full accept queue.
    full: usize,
    addr: Option<IpAddr>,
    pool: Vec<SocketHandle>,
}

struct State {
    iface: SmolIface,
    dev: PacketDev,
    sockets: SocketSet<'static>,
    conns: HashMap<SocketHandle, Rec>,
    listeners: HashMap<u16, Listener>,
    /// Closed by the program, still finishing (FIN, unsent data, TIME-WAIT).
    orphans: HashMap<SocketHandle, Orphan>,
    /// The active closers' connections the socket layer holds, by id.
    lingering: HashMap<u64, Lingering>,
    next_linger: u64,
    /// Bound UDP ports: (bindings, socket).
    udp: HashMap<u16, (usize, SocketHandle)>,
    /// When the driver wakes next (`None`: only for a frame).
    driver_at: Option<SmolInstant>,
    /// Raw smoltcp sockets copying ICMP and ICMPv6 in and carrying the sandbox's
    /// ICMP sockets' datagrams out (`net::icmp`).
    icmp: [SocketHandle; 2],
    /// UDP-Lite (IP protocol 136, which smoltcp does not know) in and out, as raw
    /// IPv4 and IPv6 sockets (`net::udp`).
    lite: [SocketHandle; 2],
}

/// A connection the program closed, while smoltcp finishes it (FIN, unsent
/// data, TIME-WAIT).
struct Orphan {
    /// The socket layer's record of it, when this side closed first.
    linger: Option<u64>,
    /// Kept through smoltcp's TIME-WAIT (at most [`TW_KEPT`] at once).
    tw_kept: bool,
}

/// How many connections smoltcp keeps in TIME-WAIT at once (each holds its
/// buffers), answering late segments (a FIN sent again gets its ACK); beyond,
/// one entering TIME-WAIT leaves the stack at once, as all did before. Their
/// 4-tuples and ports are held for the full [`crate::net::tcp::TIME_WAIT_LEN`]
/// either way ([`Lingering`]).
const TW_KEPT: usize = 64;

/// What the socket layer holds of a connection it closed first, by id: the
/// FIN-WAIT-2 and TIME-WAIT of Linux's timewait sockets (the port and the
/// 4-tuple stay taken) until [`External::tcp_release`].
struct Lingering {
    /// (local, remote).
    tuple: (SockAddr, SockAddr),
    /// When it entered TIME-WAIT.
    tw_at: Option<StdInstant>,
    /// Ended without TIME-WAIT (reset, timed out), or a new SYN took its 4-tuple.
    over: bool,
    /// Its smoltcp socket while in the set.
    h: Option<SocketHandle>,
}

/// Where a connection the program closed (as the active closer) stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linger {
    /// Still closing (FIN-WAIT-1, FIN-WAIT-2, CLOSING).
    Closing,
    /// In TIME-WAIT since then.
    TimeWait(StdInstant),
    /// Ended: reset, timed out, or a new connection took its 4-tuple.
    Over,
}

/// Work found under the stack's lock, done after it is released.
#[derive(Default)]
struct Events {
    accepted: Vec<(SocketHandle, SockAddr, SockAddr)>,
    dgrams: Vec<(SockAddr, SockAddr, Vec<u8>)>,
    /// ICMP datagrams received (IP header included).
    icmp: Vec<Vec<u8>>,
    /// UDP-Lite datagrams received (whole IP packets).
    lite: Vec<Vec<u8>>,
    /// ICMP port unreachable for UDP.
    unreachable: Vec<super::udp::IcmpError>,
    wake: Vec<Arc<WaitQueue>>,
}

/// A connection's state as the socket layer reads it.
pub struct Snapshot {
    /// The TCP state.
    pub state: tcp::State,
    /// `poll` bits.
    pub readiness: u32,
    /// Bytes received and not read.
    pub rx_queued: usize,
    /// Bytes sent and not acknowledged.
    pub tx_queued: usize,
}

/// The pod's interface and the stack on it.
pub struct External {
    name: String,
    mtu: u32,
    mac: [u8; 6],
    v4: Vec<(Ipv4Addr, u8)>,
    v6: Vec<(Ipv6Addr, u8)>,
    gw4: Option<Ipv4Addr>,
    gw6: Option<Ipv6Addr>,
    fd: Arc<OwnedFd>,
    /// Frames sent on the packet socket start with a `virtio_net_hdr`.
    vnet: bool,
    kick: OwnedFd,
    epoch: StdInstant,
    st: Mutex<State>,
    /// The stack this interface belongs to (which owns it), for delivering what
    /// arrives to the socket layer's port tables.
    net: Weak<Netstack>,
}

fn endpoint(a: SockAddr) -> IpEndpoint {
    IpEndpoint::new(IpAddress::from(a.ip), a.port)
}

fn sockaddr(e: IpEndpoint) -> SockAddr {
    SockAddr::new(IpAddr::from(e.addr), e.port)
}

fn bits(b: i16) -> u32 {
    b as u16 as u32
}

impl External {
    fn new(cfg: &NetDevConfig, fd: OwnedFd, net: Weak<Netstack>) -> Result<External, String> {
        let bad = |what: &str| format!("--network=sandbox: bad {what} in the boot config");
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for a in &cfg.addrs {
            let (ip, prefix) = a.split_once('/').ok_or_else(|| bad("address"))?;
            let prefix: u8 = prefix.parse().map_err(|_| bad("prefix"))?;
            match ip.parse::<IpAddr>().map_err(|_| bad("address"))? {
                IpAddr::V4(ip) if prefix <= 32 => v4.push((ip, prefix)),
                IpAddr::V6(ip) if prefix <= 128 => v6.push((ip, prefix)),
                _ => return Err(bad("prefix")),
            }
        }
        let gw4 = match &cfg.gateway4 {
            Some(g) => Some(g.parse::<Ipv4Addr>().map_err(|_| bad("gateway"))?),
            None => None,
        };
        let gw6 = match &cfg.gateway6 {
            Some(g) => Some(g.parse::<Ipv6Addr>().map_err(|_| bad("gateway"))?),
            None => None,
        };
        let mtu = cfg.mtu.clamp(576, 65535);
        let fd = Arc::new(fd);
        let rx_skip = if cfg.vnet_hdr { gso::VNET_LEN } else { 0 };
        let mut dev = PacketDev {
            mtu: mtu as usize,
            rx: vec![0; rx_skip + RX_FRAME],
            rx_skip,
            rx_bytes: 0,
            rx_packets: 0,
            syn_drop: Default::default(),
            tw_listened: Default::default(),
            tw_syns: Vec::new(),
            inject: Vec::new(),
            snmp: net.upgrade().map(|n| n.snmp.clone()).unwrap_or_default(),
            tw_gone: HashMap::new(),
            tw_killed: Vec::new(),
            tx: TxSide {
                watch: HashMap::new(),
                snmp: net.upgrade().map(|n| n.snmp.clone()).unwrap_or_default(),
                fd: fd.clone(),
                gso: cfg.vnet_hdr.then(gso::Coalescer::default),
                buf: vec![0; rx_skip + mtu as usize + 14],
                bytes: 0,
                packets: 0,
                taps: net
                    .upgrade()
                    .map(|n| n.packet_sockets.clone())
                    .unwrap_or_default(),
            },
        };
        let mac = EthernetAddress(cfg.mac);
        if !mac.is_unicast() {
            return Err(bad("MAC address"));
        }
        let mut config = Config::new(HardwareAddress::Ethernet(mac));
        let mut seed = [0u8; 8];
        let _ = crate::sys::host::random_bytes(&mut seed, 0);
        config.random_seed = u64::from_ne_bytes(seed);
        let epoch = StdInstant::now();
        let mut iface = SmolIface::new(config, &mut dev, SmolInstant::from_micros(0));
        iface.update_ip_addrs(|addrs| {
            for (ip, p) in &v4 {
                let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(*ip), *p));
            }
            for (ip, p) in &v6 {
                let _ = addrs.push(IpCidr::new(IpAddress::Ipv6(*ip), *p));
            }
        });
        if let Some(g) = gw4 {
            iface
                .routes_mut()
                .add_default_ipv4_route(g)
                .map_err(|_| bad("gateway"))?;
        }
        if let Some(g) = gw6 {
            iface
                .routes_mut()
                .add_default_ipv6_route(g)
                .map_err(|_| bad("gateway"))?;
        }
        let kick = packet::eventfd().map_err(|e| format!("--network=sandbox: eventfd: {e}"))?;
        let mut sockets = SocketSet::new(Vec::new());
        let icmp = [
            sockets.add(icmp_socket(IpVersion::Ipv4, IpProtocol::Icmp)),
            sockets.add(icmp_socket(IpVersion::Ipv6, IpProtocol::Icmpv6)),
        ];
        let lite = [
            sockets.add(icmp_socket(IpVersion::Ipv4, IpProtocol::Unknown(UDPLITE))),
            sockets.add(icmp_socket(IpVersion::Ipv6, IpProtocol::Unknown(UDPLITE))),
        ];
        Ok(External {
            name: cfg.name.clone(),
            mtu,
            mac: cfg.mac,
            v4,
            v6,
            gw4,
            gw6,
            fd,
            vnet: cfg.vnet_hdr,
            kick,
            epoch,
            st: Mutex::new(State {
                iface,
                dev,
                sockets,
                conns: HashMap::new(),
                listeners: HashMap::new(),
                orphans: HashMap::new(),
                lingering: HashMap::new(),
                next_linger: 1,
                udp: HashMap::new(),
                driver_at: None,
                icmp,
                lite,
            }),
            net,
        })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its MTU.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// Its MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Its addresses with their prefix lengths.
    pub fn addrs(&self) -> Vec<(IpAddr, u8)> {
        let v4 = self.v4.iter().map(|(a, p)| (IpAddr::V4(*a), *p));
        let v6 = self.v6.iter().map(|(a, p)| (IpAddr::V6(*a), *p));
        v4.chain(v6).collect()
    }

    /// Its default gateways (IPv4, IPv6), as the runtime found them.
    pub fn gateways(&self) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
        (self.gw4, self.gw6)
    }

    /// Whether `ip` is one of the interface's addresses.
    pub fn is_local(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.v4.iter().any(|(b, _)| *b == a),
            IpAddr::V6(a) => self.v6.iter().any(|(b, _)| *b == a),
        }
    }

    /// The source address for `dst` (on a connected prefix or behind a gateway);
    /// `ENETUNREACH` when no route leads there.
    pub fn source_for(&self, dst: IpAddr) -> SysResult<IpAddr> {
        match dst {
            IpAddr::V4(d) => {
                let on_link = self.v4.iter().find(|(a, p)| {
                    let mask = u32::MAX.checked_shl(32 - u32::from(*p)).unwrap_or(0);
                    u32::from(*a) & mask == u32::from(d) & mask
                });
                match (on_link, self.v4.first(), self.gw4) {
                    (Some((a, _)), _, _) => Ok(IpAddr::V4(*a)),
                    (None, Some((a, _)), Some(_)) => Ok(IpAddr::V4(*a)),
                    _ => Err(Errno::ENETUNREACH),
                }
            }
            IpAddr::V6(d) => {
                let link_local = |a: &Ipv6Addr| a.segments()[0] & 0xffc0 == 0xfe80;
                let on_link = self.v6.iter().find(|(a, p)| {
                    let mask = u128::MAX.checked_shl(128 - u32::from(*p)).unwrap_or(0);
                    u128::from(*a) & mask == u128::from(d) & mask
                });
                let global = self.v6.iter().find(|(a, _)| !link_local(a));
                match (on_link, global, self.gw6) {
                    (Some((a, _)), _, _) => Ok(IpAddr::V6(*a)),
                    (None, Some((a, _)), Some(_)) => Ok(IpAddr::V6(*a)),
                    _ => Err(Errno::ENETUNREACH),
                }
            }
        }
    }

    /// (bytes, packets) received and sent on the interface.
    pub fn counters(&self) -> ((u64, u64), (u64, u64)) {
        match self.st.lock() {
            Ok(s) => (
                (s.dev.rx_bytes, s.dev.rx_packets),
                (s.dev.tx.bytes, s.dev.tx.packets),
            ),
            Err(_) => ((0, 0), (0, 0)),
        }
    }

    fn now(&self) -> SmolInstant {
        SmolInstant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    fn lock(&self) -> SysResult<MutexGuard<'_, State>> {
        self.st.lock().map_err(|_| Errno::EIO)
    }

    /// One pass of the stack: frames in and out, then what changed for the socket
    /// layer.
    fn poll_locked(&self, st: &mut State) -> Events {
        let now = self.now();
        let State {
            iface,
            dev,
            sockets,
            conns,
            listeners,
            orphans,
            lingering,
            udp,
            icmp,
            lite,
            ..
        } = st;
        let mut changed = iface.poll(now, dev, sockets) == PollResult::SocketStateChanged;
        for key in std::mem::take(&mut dev.tw_killed) {
            // A reset or a new SYN ended a TIME-WAIT the device answered for.
            for l in lingering.values_mut().filter(|l| l.tuple == key) {
                l.over = true;
            }
            dev.tx.watch.remove(&key);
        }
        if !dev.tw_syns.is_empty() {
            // New SYNs for connections in TIME-WAIT on a listened port: the
            // TIME-WAIT socket goes and the SYN is given again, to the listener.
            let syns = std::mem::take(&mut dev.tw_syns);
            for f in &syns {
                let Some((from, to, _)) = f.get(dev.rx_skip..).and_then(tcp_of) else {
                    continue;
                };
                let hit: Vec<SocketHandle> = orphans
                    .keys()
                    .copied()
                    .filter(|&h| tuple_of(sockets.get::<tcp::Socket>(h)) == Some((to, from)))
                    .collect();
                for h in hit {
                    sockets.remove(h);
                    if let Some(l) = orphans.remove(&h).and_then(|o| o.linger) {
                        if let Some(l) = lingering.get_mut(&l) {
                            l.over = true;
                            l.h = None;
                        }
                    }
                }
                dev.tw_listened.remove(&(to, from));
            }
            dev.inject = syns;
            dev.inject.reverse();
            changed |= iface.poll(now, dev, sockets) == PollResult::SocketStateChanged;
        }
        dev.tx.flush();
        let mut ev = Events::default();
        for (port, l) in listeners.iter_mut() {
            let mut listening = 0;
            let mut gone = Vec::new();
            l.pool.retain(|&h| {
                let s = sockets.get::<tcp::Socket>(h);
                match s.state() {
                    tcp::State::Listen => {
                        listening += 1;
                        true
                    }
                    tcp::State::SynReceived => true,
                    tcp::State::Closed => {
                        gone.push(h);
                        false
                    }
                    _ => {
                        match (s.local_endpoint(), s.remote_endpoint()) {
                            (Some(l), Some(r)) => ev.accepted.push((h, sockaddr(l), sockaddr(r))),
                            _ => gone.push(h),
                        }
                        false
                    }
                }
            });
            for h in gone {
                sockets.remove(h);
            }
            while listening < LISTEN_POOL {
                match listen_socket(*port, l.addr) {
                    Some(s) => l.pool.push(sockets.add(s)),
                    None => break,
                }
                listening += 1;
            }
        }
        for (h, rec) in conns.iter_mut() {
            let state = sockets.get::<tcp::Socket>(*h).state();
            if state != rec.last {
                if state == tcp::State::Closed {
                    rec.err = match rec.last {
                        tcp::State::SynSent | tcp::State::SynReceived
                            if rec.started.elapsed() >= TCP_TIMEOUT =>
                        {
                            Some(Errno::ETIMEDOUT)
                        }
                        tcp::State::SynSent | tcp::State::SynReceived => Some(Errno::ECONNREFUSED),
                        tcp::State::TimeWait | tcp::State::LastAck | tcp::State::Closing => None,
                        _ if rec.wr_shut => None,
                        _ => Some(Errno::ECONNRESET),
                    };
                }
                rec.last = state;
            }
        }
        if changed {
            ev.wake = conns.values().filter_map(|r| r.wq.upgrade()).collect();
        }
        for (port, (_, h)) in udp.iter() {
            let s = sockets.get_mut::<udp::Socket>(*h);
            while let Ok((data, meta)) = s.recv() {
                let local = meta
                    .local_address
                    .map(IpAddr::from)
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                ev.dgrams.push((
                    SockAddr::new(local, *port),
                    sockaddr(meta.endpoint),
                    data.to_vec(),
                ));
            }
        }
        let keep = self
            .net
            .upgrade()
            .is_some_and(|n| super::icmp::any_open(&n));
        for h in icmp.iter() {
            let s = sockets.get_mut::<raw::Socket>(*h);
            while let Ok(d) = s.recv() {
                // A port unreachable for one of our UDP datagrams goes to its
                // socket whether or not ICMP sockets are open.
                if let Some(e) = super::udp::port_unreachable(d) {
                    ev.unreachable.push(e);
                }
                if keep {
                    ev.icmp.push(d.to_vec());
                }
            }
        }
        for h in lite.iter() {
            let s = sockets.get_mut::<raw::Socket>(*h);
            while let Ok(d) = s.recv() {
                ev.lite.push(d.to_vec());
            }
        }
        // Orphans stay in the set through smoltcp's TIME-WAIT (at most TW_KEPT
        // of them), so late segments are answered; the socket layer's record of
        // an active closer learns when it entered TIME-WAIT or ended without.
        let mut kept = orphans.values().filter(|o| o.tw_kept).count();
        let before = kept;
        orphans.retain(|&h, o| {
            let state = sockets.get::<tcp::Socket>(h).state();
            let rec = o.linger.and_then(|l| lingering.get_mut(&l));
            let mut keep = match state {
                tcp::State::Closed => false,
                tcp::State::TimeWait if !o.tw_kept => {
                    if kept < TW_KEPT {
                        o.tw_kept = true;
                        kept += 1;
                    }
                    o.tw_kept
                }
                _ => true,
            };
            if let Some(l) = rec {
                if state == tcp::State::TimeWait && l.tw_at.is_none() {
                    l.tw_at = Some(StdInstant::now());
                }
                if state == tcp::State::Closed && l.tw_at.is_none() {
                    l.over = true;
                }
                if !keep {
                    l.h = None;
                    // Out of smoltcp in TIME-WAIT: the device answers for it until
                    // its TIME-WAIT ends.
                    let seqs = dev.tx.watch.get(&l.tuple).copied();
                    let seen = seqs.filter(|s| s.snd != 0 || s.rcv != 0);
                    if let (Some(at), false, Some(seqs)) = (l.tw_at, l.over, seen) {
                        let until = at + crate::net::tcp::TIME_WAIT_LEN;
                        dev.tw_gone.insert(l.tuple, (seqs, until));
                    }
                }
            } else if state == tcp::State::Closed {
                keep = false;
            }
            if !keep {
                if o.tw_kept {
                    kept -= 1;
                }
                sockets.remove(h);
            }
            keep
        });
        if kept != before || !dev.tw_listened.is_empty() {
            dev.tw_listened = orphans
                .iter()
                .filter(|(_, o)| o.tw_kept)
                .filter_map(|(&h, _)| tuple_of(sockets.get::<tcp::Socket>(h)))
                .filter(|(l, _)| listeners.contains_key(&l.port))
                .collect();
        }
        ev
    }

    /// Polls after a change a task made; the driver is kicked when its next wake-up
    /// must come earlier.
    fn after(&self, mut st: MutexGuard<'_, State>) {
        let ev = self.poll_locked(&mut st);
        let now = self.now();
        let at = {
            let st = &mut *st;
            st.iface.poll_at(now, &st.sockets)
        };
        let kick = match (at, st.driver_at) {
            (Some(a), Some(d)) => a < d,
            (Some(_), None) => true,
            _ => false,
        };
        if kick {
            st.driver_at = at;
        }
        drop(st);
        if kick {
            packet::kick(self.kick.as_fd());
        }
        self.dispatch(ev);
    }

    /// Makes the interface accept multicast `group` (smoltcp's next poll reports
    /// the membership: IGMP, MLD).
    /// `ENOBUFS` when smoltcp's group table is full.
    pub fn join_group(&self, group: IpAddr) -> SysResult<()> {
        let mut st = self.lock()?;
        let r = st.iface.join_multicast_group(IpAddress::from(group));
        // The driver sends the report: the caller holds its socket's lock, which
        // delivering what a poll brings in could need.
        drop(st);
        packet::kick(self.kick.as_fd());
        r.map_err(|e| {
            tracing::debug!(%group, ?e, "pod interface: multicast group not joined");
            Errno::ENOBUFS
        })
    }

    /// Stops accepting multicast `group`.
    pub fn leave_group(&self, group: IpAddr) {
        let Ok(mut st) = self.lock() else {
            return;
        };
        let _ = st.iface.leave_multicast_group(IpAddress::from(group));
        drop(st);
        packet::kick(self.kick.as_fd());
    }

    /// The packet socket's fd (the seccomp allow-list names it).
    pub fn packet_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    fn dispatch(&self, ev: Events) {
        // Without the stack (the sandbox is going away) nothing is delivered.
        let net = self.net.upgrade();
        for (h, local, peer) in ev.accepted {
            let listener = net
                .as_ref()
                .and_then(|n| n.tcp.lookup(local.ip, local.port, |_, listening| listening));
            let ok = match listener {
                Some(l) => l.enqueue_remote(h, local, peer).is_ok(),
                None => false,
            };
            if !ok {
                self.abort_unadopted(h);
            }
        }
        if let Some(net) = &net {
            for (to, from, data) in ev.dgrams {
                super::udp::deliver_external(net, to, from, &data);
            }
            for d in ev.icmp {
                super::icmp::input_external(net, &d);
            }
            for d in ev.lite {
                super::udp::input_lite_external(net, &d);
            }
            for e in ev.unreachable {
                super::udp::refused(net, e);
            }
        }
        for q in ev.wake {
            q.notify_all();
        }
    }

    fn drive(self: Arc<Self>) {
        loop {
            let (ev, delay) = match self.st.lock() {
                Ok(mut st) => {
                    let ev = self.poll_locked(&mut st);
                    let now = self.now();
                    let delay = {
                        let st = &mut *st;
                        st.iface.poll_delay(now, &st.sockets)
                    };
                    st.driver_at = delay.map(|d| now + d);
                    (ev, delay)
                }
                Err(_) => return,
            };
            self.dispatch(ev);
            let timeout = delay.map(|d| std::time::Duration::from_micros(d.total_micros()));
            packet::wait(self.fd.as_fd(), self.kick.as_fd(), timeout);
            packet::drain(self.kick.as_fd());
        }
    }

    fn new_tcp() -> tcp::Socket<'static> {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_BUF]),
            tcp::SocketBuffer::new(vec![0; TCP_BUF]),
        );
        s.set_timeout(Some(SmolDuration::from_micros(
            TCP_TIMEOUT.as_micros() as u64
        )));
        s
    }

    /// Starts a connection from `local` to `peer`; `wq` is woken as it changes.
    /// A 4-tuple a live connection has is `EADDRNOTAVAIL`; one a connection this
    /// side closed first still holds (TIME-WAIT) is taken over when the program
    /// bound the port itself (`bound`), as Linux's `tcp_twsk_unique` lets a
    /// connect with timestamps do, and is `EADDRNOTAVAIL` for an ephemeral port
    /// (the caller picks another: `tcp_tw_reuse` is for loopback only).
    pub fn tcp_connect(
        &self,
        local: SockAddr,
        peer: SockAddr,
        wq: &Arc<WaitQueue>,
        nodelay: bool,
        bound: bool,
    ) -> SysResult<SocketHandle> {
        let mut st = self.lock()?;
        let t = (local, peer);
        let live = st
            .conns
            .keys()
            .any(|&h| tuple_of(st.sockets.get::<tcp::Socket>(h)) == Some(t));
        // Still closing (FIN-WAIT), a connection is as live as any.
        let closing = st
            .lingering
            .values()
            .any(|l| l.tuple == t && !l.over && l.tw_at.is_none());
        let held: Vec<u64> = st
            .lingering
            .iter()
            .filter(|(_, l)| l.tuple == t && !l.over && l.tw_at.is_some())
            .map(|(&id, _)| id)
            .collect();
        if live || closing || (!held.is_empty() && !bound) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        if !held.is_empty() {
            // The device no longer answers for the old connection.
            st.dev.tw_gone.remove(&t);
            st.dev.tx.watch.remove(&t);
        }
        for id in held {
            let State {
                lingering,
                orphans,
                sockets,
                ..
            } = &mut *st;
            if let Some(l) = lingering.get_mut(&id) {
                l.over = true;
                if let Some(h) = l.h.take() {
                    // Its TIME-WAIT socket must not take the new connection's
                    // segments.
                    orphans.remove(&h);
                    sockets.remove(h);
                }
            }
        }
        let mut s = Self::new_tcp();
        s.set_nagle_enabled(!nodelay);
        let State { iface, sockets, .. } = &mut *st;
        s.connect(iface.context(), endpoint(peer), endpoint(local))
            .map_err(|e| match e {
                tcp::ConnectError::InvalidState => Errno::EISCONN,
                tcp::ConnectError::Unaddressable => Errno::ENETUNREACH,
            })?;
        let h = sockets.add(s);
        st.conns.insert(
            h,
            Rec {
                wq: Arc::downgrade(wq),
                last: tcp::State::SynSent,
                wr_shut: false,
                rd_shut: false,
                err: None,
                started: StdInstant::now(),
            },
        );
        self.after(st);
        Ok(h)
    }

    /// Takes over an accepted connection for a socket whose queue is `wq`.
    pub fn adopt(&self, h: SocketHandle, wq: &Arc<WaitQueue>) {
        if let Ok(mut st) = self.lock() {
            let last = st.sockets.get::<tcp::Socket>(h).state();
            st.conns.insert(
                h,
                Rec {
                    wq: Arc::downgrade(wq),
                    last,
                    wr_shut: false,
                    rd_shut: false,
                    err: None,
                    started: StdInstant::now(),
                },
            );
        }
    }

    /// Whether the connection is still being set up.
    pub fn tcp_connecting(&self, h: SocketHandle) -> bool {
        self.lock()
            .map(|st| {
                st.conns.contains_key(&h)
                    && matches!(
                        st.sockets.get::<tcp::Socket>(h).state(),
                        tcp::State::SynSent | tcp::State::SynReceived
                    )
            })
            .unwrap_or(false)
    }

    /// Queues `data` for sending (`EAGAIN` when the send buffer is full).
    pub fn tcp_send(&self, h: SocketHandle, data: &[u8], nodelay: bool) -> SysResult<usize> {
        let mut st = self.lock()?;
        let State { sockets, conns, .. } = &mut *st;
        let rec = conns.get_mut(&h).ok_or(Errno::EPIPE)?;
        if let Some(e) = rec.err.take() {
            return Err(e);
        }
        let s = sockets.get_mut::<tcp::Socket>(h);
        match s.state() {
            tcp::State::SynSent | tcp::State::SynReceived => return Err(Errno::EAGAIN),
            _ if rec.wr_shut || !s.may_send() => return Err(Errno::EPIPE),
            _ => {}
        }
        if data.is_empty() {
            return Ok(0);
        }
        s.set_nagle_enabled(!nodelay);
        let n = s.send_slice(data).map_err(|_| Errno::EPIPE)?;
        if n == 0 {
            return Err(Errno::EAGAIN);
        }
        self.after(st);
        Ok(n)
    }

    /// Takes (or copies, `peek`) up to `len` received bytes: empty at the end of
    /// the stream, `EAGAIN` when nothing is there yet.
    pub fn tcp_recv(&self, h: SocketHandle, len: usize, peek: bool) -> SysResult<Vec<u8>> {
        let mut st = self.lock()?;
        let State { sockets, conns, .. } = &mut *st;
        let rec = conns.get_mut(&h).ok_or(Errno::ENOTCONN)?;
        let s = sockets.get_mut::<tcp::Socket>(h);
        if s.recv_queue() > 0 && len > 0 && !rec.rd_shut {
            let mut out = vec![0u8; len.min(s.recv_queue())];
            let n = if peek {
                s.peek_slice(&mut out)
            } else {
                s.recv_slice(&mut out)
            }
            .unwrap_or(0);
            out.truncate(n);
            if !peek {
                // The window opened: the peer may need to hear it.
                self.after(st);
            }
            return Ok(out);
        }
        if let Some(e) = rec.err.take() {
            return Err(e);
        }
        match s.state() {
            tcp::State::SynSent | tcp::State::SynReceived if !rec.rd_shut => Err(Errno::EAGAIN),
            _ if rec.rd_shut || !s.may_recv() || len == 0 => Ok(Vec::new()),
            _ => Err(Errno::EAGAIN),
        }
    }

    /// `shutdown(2)`: reading stops locally; writing sends FIN after queued data.
    pub fn tcp_shutdown(&self, h: SocketHandle, rd: bool, wr: bool) -> SysResult<()> {
        let mut st = self.lock()?;
        let State { sockets, conns, .. } = &mut *st;
        let rec = conns.get_mut(&h).ok_or(Errno::ENOTCONN)?;
        rec.rd_shut |= rd;
        if wr && !rec.wr_shut {
            rec.wr_shut = true;
            sockets.get_mut::<tcp::Socket>(h).close();
        }
        let wq = rec.wq.upgrade();
        self.after(st);
        if let Some(q) = wq {
            q.notify_all();
        }
        Ok(())
    }

    /// The socket's last file closed: FIN after queued data, or RST (`abort`:
    /// unread data, `SO_LINGER` 0); smoltcp finishes the connection on its own.
    /// When this side closes first (its FIN goes before the peer's), the id of
    /// the record the socket layer then holds (FIN-WAIT-2, TIME-WAIT: see
    /// [`External::tcp_linger`]) until it calls [`External::tcp_release`].
    pub fn tcp_close(&self, h: SocketHandle, abort: bool) -> Option<u64> {
        let Ok(mut st) = self.lock() else {
            return None;
        };
        // A handle is valid while the socket layer owns it (in `conns`); closed
        // once, the socket may be gone from the set already.
        st.conns.remove(&h)?;
        self.finish(st, h, abort)
    }

    /// A connection nobody adopted (its listener went away): reset it.
    fn abort_unadopted(&self, h: SocketHandle) {
        if let Ok(st) = self.lock() {
            self.finish(st, h, true);
        }
    }

    fn finish(&self, mut st: MutexGuard<'_, State>, h: SocketHandle, abort: bool) -> Option<u64> {
        let s = st.sockets.get_mut::<tcp::Socket>(h);
        let unread = s.recv_queue() > 0;
        let tuple = tuple_of(s);
        // The peer's FIN not yet received: ours goes (or went) first.
        let active = matches!(
            s.state(),
            tcp::State::Established
                | tcp::State::SynReceived
                | tcp::State::FinWait1
                | tcp::State::FinWait2
                | tcp::State::Closing
                | tcp::State::TimeWait
        );
        let reset = abort || unread;
        if reset {
            s.abort();
        } else {
            // The peer's FIN is acknowledged at once (Linux does not delay that
            // ACK): a peer reconnecting from the same port as soon as it closed
            // must not find its side still in LAST-ACK.
            s.set_ack_delay(None);
            s.close();
        }
        let linger = match tuple {
            Some(tuple) if active && !reset => {
                let id = st.next_linger;
                st.next_linger += 1;
                st.dev
                    .tx
                    .watch
                    .insert(tuple, twack::Seqs { snd: 0, rcv: 0 });
                st.lingering.insert(
                    id,
                    Lingering {
                        tuple,
                        tw_at: None,
                        over: false,
                        h: Some(h),
                    },
                );
                Some(id)
            }
            _ => None,
        };
        st.orphans.insert(
            h,
            Orphan {
                linger,
                tw_kept: false,
            },
        );
        self.after(st);
        linger
    }

    /// Where connection `id` ([`External::tcp_close`]) stands.
    pub fn tcp_linger(&self, id: u64) -> Linger {
        let Ok(st) = self.lock() else {
            return Linger::Over;
        };
        match st.lingering.get(&id) {
            Some(l) if l.over => Linger::Over,
            Some(l) => l.tw_at.map_or(Linger::Closing, Linger::TimeWait),
            None => Linger::Over,
        }
    }

    /// The socket layer lets go of connection `id`: its 4-tuple is free again;
    /// one still closing is reset (its FIN-WAIT-2 timed out).
    pub fn tcp_release(&self, id: u64) {
        let Ok(mut st) = self.lock() else {
            return;
        };
        let Some(l) = st.lingering.remove(&id) else {
            return;
        };
        if !st.lingering.values().any(|o| o.tuple == l.tuple) {
            st.dev.tx.watch.remove(&l.tuple);
            st.dev.tw_gone.remove(&l.tuple);
        }
        if let Some(h) = l.h {
            if let Some(o) = st.orphans.get_mut(&h) {
                o.linger = None;
                if l.tw_at.is_none() {
                    st.sockets.get_mut::<tcp::Socket>(h).abort();
                }
            }
        }
        self.after(st);
    }

    /// The connection's state for `poll`, `/proc/net/tcp` and `TCP_INFO`.
    pub fn tcp_snapshot(&self, h: SocketHandle) -> Snapshot {
        let Ok(st) = self.lock() else {
            return Snapshot {
                state: tcp::State::Closed,
                readiness: bits(libc::POLLERR),
                rx_queued: 0,
                tx_queued: 0,
            };
        };
        let Some(rec) = st.conns.get(&h) else {
            return Snapshot {
                state: tcp::State::Closed,
                readiness: bits(libc::POLLHUP | libc::POLLIN | libc::POLLOUT),
                rx_queued: 0,
                tx_queued: 0,
            };
        };
        let s = st.sockets.get::<tcp::Socket>(h);
        let (rd_shut, wr_shut) = (rec.rd_shut, rec.wr_shut);
        let state = s.state();
        let mut r = match state {
            tcp::State::SynSent | tcp::State::SynReceived | tcp::State::Listen => 0,
            tcp::State::Closed => bits(
                libc::POLLHUP
                    | libc::POLLIN
                    | libc::POLLRDNORM
                    | libc::POLLRDHUP
                    | libc::POLLOUT
                    | libc::POLLWRNORM,
            ),
            _ => {
                let mut r = 0;
                let rcv_shut = rd_shut || !s.may_recv();
                if s.recv_queue() > 0 {
                    r |= bits(libc::POLLIN | libc::POLLRDNORM);
                }
                if rcv_shut {
                    r |= bits(libc::POLLIN | libc::POLLRDNORM | libc::POLLRDHUP);
                }
                if wr_shut || s.can_send() {
                    r |= bits(libc::POLLOUT | libc::POLLWRNORM);
                }
                if rcv_shut && wr_shut {
                    r |= bits(libc::POLLHUP);
                }
                r
            }
        };
        if rec.err.is_some() {
            r |= bits(libc::POLLERR);
        }
        Snapshot {
            state,
            readiness: r,
            rx_queued: s.recv_queue(),
            tx_queued: s.send_queue(),
        }
    }

    /// Takes the connection's pending error (`SO_ERROR`).
    pub fn tcp_take_err(&self, h: SocketHandle) -> Option<Errno> {
        self.lock()
            .ok()
            .and_then(|mut st| st.conns.get_mut(&h).and_then(|r| r.err.take()))
    }

    /// Accepts connections to `port` (on `addr`, or every address) from outside.
    pub fn tcp_listen(&self, port: u16, addr: Option<IpAddr>) {
        let Ok(mut st) = self.lock() else {
            return;
        };
        let State {
            sockets, listeners, ..
        } = &mut *st;
        let l = listeners.entry(port).or_insert_with(|| Listener {
            refs: 0,
            full: 0,
            addr,
            pool: Vec::new(),
        });
        l.refs += 1;
        if l.addr != addr {
            // Two listeners sharing a port on different addresses: take both.
            l.addr = None;
            for h in l.pool.drain(..) {
                sockets.remove(h);
            }
        }
        while l.pool.len() < LISTEN_POOL {
            match listen_socket(port, l.addr) {
                Some(s) => l.pool.push(sockets.add(s)),
                None => break,
            }
        }
    }

    /// One listener of `port` stopped; the last resets the connections not yet
    /// accepted.
    pub fn tcp_unlisten(&self, port: u16, was_full: bool) {
        let Ok(mut st) = self.lock() else {
            return;
        };
        let State {
            sockets,
            listeners,
            orphans,
            dev,
            ..
        } = &mut *st;
        if let Some(l) = listeners.get_mut(&port) {
            l.refs = l.refs.saturating_sub(1);
            if was_full {
                l.full = l.full.saturating_sub(1);
            }
            if l.refs == 0 || l.full < l.refs {
                dev.syn_drop.remove(&port);
            }
            if l.refs == 0 {
                if let Some(l) = listeners.remove(&port) {
                    for h in l.pool {
                        sockets.get_mut::<tcp::Socket>(h).abort();
                        orphans.insert(
                            h,
                            Orphan {
                                linger: None,
                                tw_kept: false,
                            },
                        );
                    }
                }
            }
        }
        self.after(st);
    }

    /// A listener on `port` found its accept queue full (`full`) or made room in
    /// it: while every listener on the port is full, SYNs to it are dropped.
    pub fn tcp_backlog_full(&self, port: u16, full: bool) {
        let Ok(mut st) = self.lock() else {
            return;
        };
        let State { listeners, dev, .. } = &mut *st;
        if let Some(l) = listeners.get_mut(&port) {
            if full {
                l.full = (l.full + 1).min(l.refs);
            } else {
                l.full = l.full.saturating_sub(1);
            }
            if l.refs > 0 && l.full >= l.refs {
                dev.syn_drop.insert(port);
            } else {
                dev.syn_drop.remove(&port);
            }
        }
    }

    /// A UDP socket bound `port` on every address (or one of the interface's).
    pub fn udp_bind(&self, port: u16) {
        let Ok(mut st) = self.lock() else {
            return;
        };
        if let Some((refs, _)) = st.udp.get_mut(&port) {
            *refs += 1;
            return;
        }
        let buf = || {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_SLOTS],
                vec![0u8; UDP_BYTES],
            )
        };
        let mut s = udp::Socket::new(buf(), buf());
        if s.bind(IpListenEndpoint { addr: None, port }).is_ok() {
            let h = st.sockets.add(s);
            st.udp.insert(port, (1, h));
        }
    }

    /// One binding of `port` went away.
    pub fn udp_unbind(&self, port: u16) {
        let Ok(mut st) = self.lock() else {
            return;
        };
        if let Some((refs, h)) = st.udp.get_mut(&port) {
            *refs -= 1;
            if *refs == 0 {
                let h = *h;
                st.udp.remove(&port);
                st.sockets.remove(h);
            }
        }
    }

    /// Sends a frame a program's packet socket wrote, as it is (the caller checked
    /// it is not for the metadata server). A full host queue is `ENOBUFS`.
    pub fn send_frame(&self, frame: &[u8]) -> SysResult<()> {
        let r = if self.vnet {
            // An all-zero virtio header: the kernel takes the frame as it is.
            let mut b = vec![0u8; gso::VNET_LEN + frame.len()];
            b[gso::VNET_LEN..].copy_from_slice(frame);
            packet::send_frame(self.fd.as_fd(), &b)
        } else {
            packet::send_frame(self.fd.as_fd(), frame)
        };
        match r {
            Ok(_) => Ok(()),
            Err(Errno::EAGAIN) => Err(Errno::ENOBUFS),
            Err(e) => Err(e),
        }
    }

    /// Sends one ICMP or ICMPv6 datagram (its IP header included) out of the
    /// interface (`net::icmp`).
    pub fn ip_send(&self, datagram: &[u8]) -> SysResult<()> {
        self.raw_send(datagram, false)
    }

    /// Sends one UDP-Lite datagram (its IP header included).
    pub fn lite_send(&self, datagram: &[u8]) -> SysResult<()> {
        self.raw_send(datagram, true)
    }

    fn raw_send(&self, datagram: &[u8], lite: bool) -> SysResult<()> {
        let mut st = self.lock()?;
        let hs = if lite { st.lite } else { st.icmp };
        let h = match datagram.first().map(|b| b >> 4) {
            Some(4) => hs[0],
            Some(6) => hs[1],
            _ => return Err(Errno::EINVAL),
        };
        st.sockets
            .get_mut::<raw::Socket>(h)
            .send_slice(datagram)
            .map_err(|_| Errno::ENOBUFS)?;
        self.after(st);
        Ok(())
    }

    /// Sends one datagram from `from` (a port bound with [`External::udp_bind`]).
    pub fn udp_send(&self, from: SockAddr, to: SockAddr, data: &[u8]) -> SysResult<usize> {
        let mut st = self.lock()?;
        let h = st
            .udp
            .get(&from.port)
            .map(|(_, h)| *h)
            .ok_or(Errno::EINVAL)?;
        let s = st.sockets.get_mut::<udp::Socket>(h);
        let meta = udp::UdpMetadata {
            endpoint: endpoint(to),
            local_address: Some(IpAddress::from(from.ip)),
            meta: Default::default(),
        };
        s.send_slice(data, meta).map_err(|e| match e {
            udp::SendError::BufferFull => Errno::ENOBUFS,
            udp::SendError::Unaddressable => Errno::ENETUNREACH,
        })?;
        self.after(st);
        Ok(data.len())
    }
}

/// UDP-Lite's IP protocol number (RFC 3828).
const UDPLITE: u8 = 136;

/// A raw smoltcp socket for one ICMP protocol (or UDP-Lite).
fn icmp_socket(v: IpVersion, p: IpProtocol) -> raw::Socket<'static> {
    let buf = || raw::PacketBuffer::new(vec![raw::PacketMetadata::EMPTY; 64], vec![0u8; 256 << 10]);
    raw::Socket::new(Some(v), Some(p), buf(), buf())
}

/// A connection's (local, remote), while it has them.
fn tuple_of(s: &tcp::Socket<'_>) -> Option<(SockAddr, SockAddr)> {
    s.local_endpoint()
        .zip(s.remote_endpoint())
        .map(|(l, r)| (sockaddr(l), sockaddr(r)))
}

fn listen_socket(port: u16, addr: Option<IpAddr>) -> Option<tcp::Socket<'static>> {
    let mut s = External::new_tcp();
    s.listen(IpListenEndpoint {
        addr: addr.map(IpAddress::from),
        port,
    })
    .ok()?;
    Some(s)
}
