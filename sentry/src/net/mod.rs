//! Internet sockets (`AF_INET`, `AF_INET6`): TCP and UDP, served inside the sentry.
//!
//! The socket layer ([`tcp`], [`udp`]) implements the Linux socket API; it reaches
//! other sockets through the [`Netstack`]: one port table per protocol ([`ports`])
//! and the network interface below ([`Interface`]). With `--network=none` the only
//! interface is [`loopback::Loopback`], and a connection between two sockets of the
//! sandbox is an in-memory pair of byte queues (no packets are built): see
//! docs/networking.md. A later `--network=sandbox` puts a TCP/IP stack under the same
//! seam: a destination that is not local is then the interface's to carry, and the
//! loopback path stays as it is. With `--network=sandbox` that stack is
//! [`external`]: smoltcp on a packet socket bound to the pod's interface.
//!
//! The cloud metadata server (169.254.169.254, fd00:ec2::254) is unreachable in
//! every mode unless the runtime allows it ([`configure`]).

pub mod addr;
pub mod cmsg;
pub mod diag;
pub mod external;
pub mod file;
pub mod frame;
pub mod gso;
pub mod host;
pub mod hostview;
pub mod icmp;
pub mod iflist;
pub mod ifreq;
pub mod ippacket;
pub mod loopback;
pub mod mcast;
pub mod netlink;
pub mod opts;
pub mod packet;
pub mod ports;
pub mod procfs;
pub mod snmp;
pub mod tcp;
pub mod twack;
pub mod udp;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::errno::{Errno, SysResult};

/// A network interface under the socket layer.
pub trait Interface: Send + Sync {
    /// Its name (`lo`).
    fn name(&self) -> &str;
    /// Its index (`if_nametoindex`).
    fn index(&self) -> u32;
    /// Its MTU.
    fn mtu(&self) -> u32;
    /// Whether `ip` (canonical) is one of the sandbox's own addresses.
    fn is_local(&self, ip: IpAddr) -> bool;
    /// The source address for a packet to `dst`; `ENETUNREACH` when no route leads
    /// there.
    fn source_for(&self, dst: IpAddr) -> SysResult<IpAddr>;
}

/// Sets the sandbox's network `net` up from its boot config: the metadata policy,
/// and the pod's interface under `--network=sandbox` on `device`, the packet socket
/// the runtime handed over (`boot --net-fd`).
pub fn configure(
    net: &Arc<Netstack>,
    config: &crate::config::BootConfig,
    device: Option<OwnedFd>,
) -> Result<(), String> {
    net.allow_metadata
        .store(config.allow_metadata, AtomicOrdering::Relaxed);
    match (&config.netdev, config.network.as_str(), device) {
        (Some(dev), "sandbox", Some(fd)) => external::start(net, dev, fd),
        (Some(_), "sandbox", None) => {
            Err("--network=sandbox: no packet socket was handed over".into())
        }
        (Some(_), other, _) => Err(format!(
            "--network={other}: an interface was handed over, which only sandbox uses"
        )),
        (None, "host", _) => host::start(),
        (None, _, _) => Ok(()),
    }
}

/// Whether `ip` is the cloud metadata server's address (169.254.169.254 or
/// fd00:ec2::254, also as a v4-mapped address).
pub fn is_metadata(ip: IpAddr) -> bool {
    const V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
    const V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    match ip {
        IpAddr::V4(a) => a == V4,
        IpAddr::V6(a) => a == V6 || a.to_ipv4_mapped() == Some(V4),
    }
}

/// The network state of one sandbox (one network namespace): port tables and
/// interfaces, the pod's interface when it has one, and the policies set at boot.
/// It lives on the [`crate::kernel::Kernel`]; each socket holds the stack it was
/// made in.
pub struct Netstack {
    iface: Box<dyn Interface>,
    /// Bound TCP sockets.
    pub tcp: ports::PortTable<tcp::TcpInner>,
    /// Bound UDP sockets.
    pub udp: ports::PortTable<udp::UdpInner>,
    /// Bound UDP-Lite sockets (RFC 3828: UDP's code, a port space of its own).
    pub udplite: ports::PortTable<udp::UdpInner>,
    /// Every TCP socket (accepted ones hold no binding), for `/proc/net/tcp`.
    tcp_all: std::sync::Mutex<Vec<std::sync::Weak<tcp::TcpInner>>>,
    /// Closed TCP connections lingering in FIN_WAIT2 or TIME_WAIT.
    pub(crate) tcp_orphans: tcp::Orphans,
    /// Bytes and packets through the interface (`/proc/net/dev`).
    bytes: std::sync::atomic::AtomicU64,
    packets: std::sync::atomic::AtomicU64,
    /// Whether the cloud metadata server may be reached (`--allow-metadata`).
    allow_metadata: AtomicBool,
    /// The pod's interface under `--network=sandbox`, once started.
    external: OnceLock<Arc<external::External>>,
    /// Every ICMP socket (the pod interface's receive path fans replies out).
    pub(crate) icmp: icmp::IcmpTable,
    /// `net.ipv4.ping_group_range`: who may make ping sockets.
    pub(crate) ping_group_range: Mutex<(u32, u32)>,
    /// Netlink port ids in use, and the next one to hand out.
    pub(crate) netlink_ports: netlink::PortIds,
    /// Its protocol counters (`/proc/net/snmp`).
    pub snmp: Arc<snmp::Snmp>,
    /// The port ids of its `NETLINK_SOCK_DIAG` sockets (each protocol has its own).
    pub(crate) diag_ports: netlink::PortIds,
    /// The packet sockets and the interfaces they see.
    pub(crate) packet_sockets: Arc<packet::PacketTable>,
    /// The multicast groups each interface accepts.
    pub(crate) mcast: mcast::Groups,
    /// `lo`'s state (up, addresses), shared with `iface`.
    lo: Arc<Mutex<loopback::LoConfig>>,
    /// A network namespace made inside the sandbox: its own `lo` only, never the
    /// host's interfaces or sockets (`--network=host` applies to the first).
    namespaced: bool,
}

impl Default for Netstack {
    fn default() -> Self {
        Netstack::with_lo(loopback::LoConfig::configured(), false)
    }
}

impl Netstack {
    fn with_lo(cfg: loopback::LoConfig, namespaced: bool) -> Netstack {
        let (lo_iface, lo) = loopback::Loopback::new(cfg);
        Netstack {
            iface: Box::new(lo_iface),
            tcp: ports::PortTable::default(),
            udp: ports::PortTable::default(),
            udplite: ports::PortTable::default(),
            tcp_all: Mutex::new(Vec::new()),
            tcp_orphans: tcp::Orphans::default(),
            bytes: std::sync::atomic::AtomicU64::new(0),
            packets: std::sync::atomic::AtomicU64::new(0),
            allow_metadata: AtomicBool::new(false),
            external: OnceLock::new(),
            icmp: icmp::IcmpTable::default(),
            // Linux's default: nobody (the range is empty).
            ping_group_range: Mutex::new((1, 0)),
            netlink_ports: netlink::PortIds::default(),
            diag_ports: netlink::PortIds::default(),
            snmp: Arc::default(),
            packet_sockets: Arc::default(),
            mcast: mcast::Groups::default(),
            lo,
            namespaced,
        }
    }

    /// A sandbox's network with only the loopback interface.
    pub fn new() -> Arc<Netstack> {
        Arc::new(Netstack::default())
    }

    /// The network of a namespace made inside the sandbox (`CLONE_NEWNET`): `lo`
    /// down and without addresses, as Linux makes it.
    pub fn new_namespace() -> Arc<Netstack> {
        Arc::new(Netstack::with_lo(loopback::LoConfig::fresh(), true))
    }

    /// Whether this is a namespace made inside the sandbox.
    pub fn is_namespaced(&self) -> bool {
        self.namespaced
    }

    /// Whether the program sees the host's interfaces through this stack
    /// (`--network=host`, the sandbox's first namespace).
    pub fn host_view(&self) -> bool {
        !self.namespaced && hostview::active()
    }

    /// A copy of `lo`'s state.
    pub fn lo_config(&self) -> loopback::LoConfig {
        self.lo
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|_| loopback::LoConfig::fresh())
    }

    /// Changes `lo`'s state with `f`.
    pub fn change_lo<T>(
        &self,
        f: impl FnOnce(&mut loopback::LoConfig) -> SysResult<T>,
    ) -> SysResult<T> {
        f(&mut *self.lo.lock().map_err(|_| Errno::EIO)?)
    }

    /// Whether the runtime lets the sandbox reach the cloud metadata server.
    pub fn metadata_allowed(&self) -> bool {
        self.allow_metadata.load(AtomicOrdering::Relaxed)
    }

    /// The pod's interface, when the sandbox has one.
    pub fn external(&self) -> Option<&Arc<external::External>> {
        self.external.get()
    }

    /// The packet socket's fd (for the seccomp allow-list), when the pod's
    /// interface is up.
    pub fn packet_fd(&self) -> Option<i32> {
        self.external().map(|e| e.packet_fd())
    }

    /// The interface (only `lo` so far).
    pub fn iface(&self) -> &dyn Interface {
        &*self.iface
    }

    /// Records a new TCP socket (for `/proc/net/tcp`).
    pub fn track_tcp(&self, s: &std::sync::Arc<tcp::TcpInner>) {
        if let Ok(mut v) = self.tcp_all.lock() {
            if v.len() >= 64 && v.len().is_power_of_two() {
                v.retain(|w| w.strong_count() > 0);
            }
            v.push(std::sync::Arc::downgrade(s));
        }
    }

    /// Every live TCP socket.
    pub fn tcp_sockets(&self) -> Vec<std::sync::Arc<tcp::TcpInner>> {
        self.tcp_orphans.reap();
        match self.tcp_all.lock() {
            Ok(mut v) => {
                v.retain(|w| w.strong_count() > 0);
                v.iter().filter_map(|w| w.upgrade()).collect()
            }
            Err(_) => Vec::new(),
        }
    }

    /// Counts `len` bytes carried over the interface in one packet.
    pub fn count(&self, len: usize) {
        use std::sync::atomic::Ordering;
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.packets.fetch_add(1, Ordering::Relaxed);
    }

    /// (bytes, packets) carried so far.
    pub fn counters(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        (
            self.bytes.load(Ordering::Relaxed),
            self.packets.load(Ordering::Relaxed),
        )
    }

    /// Whether a socket may bind `ip`: the wildcard, or a local address
    /// (`EADDRNOTAVAIL` otherwise).
    pub fn check_bindable(&self, ip: IpAddr) -> SysResult<()> {
        if addr::is_any(ip) || self.iface.is_local(ip) || self.is_ext_local(ip) {
            Ok(())
        } else if ip.is_ipv4() && self.lo_config().v4_table_missing() {
            // Linux's local routing table of a new namespace is made with its
            // first IPv4 address; before, `inet_addr_type` finds no table and any
            // IPv4 address may be bound (seen natively).
            Ok(())
        } else {
            Err(Errno::EADDRNOTAVAIL)
        }
    }

    /// Where a packet addressed to `dst` goes: the wildcard means this host, as on
    /// Linux. `ENETUNREACH` for an address no interface reaches.
    pub fn route(&self, dst: IpAddr) -> SysResult<(IpAddr, IpAddr)> {
        let dst = match dst {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            d => d,
        };
        if is_metadata(dst) && !self.metadata_allowed() {
            // Concealed: as if no route led there, whatever the interface's routes.
            return Err(Errno::ENETUNREACH);
        }
        if self.is_ext_local(dst) {
            // The sandbox's own address on the pod interface: delivered inside, as
            // Linux routes it through `lo`.
            return Ok((dst, dst));
        }
        match (self.iface.source_for(dst), self.external()) {
            (Ok(src), _) => Ok((dst, src)),
            (Err(_), Some(ext)) => Ok((dst, ext.source_for(dst)?)),
            (Err(e), None) => Err(e),
        }
    }

    /// Whether `ip` is one of the pod interface's addresses.
    pub fn is_ext_local(&self, ip: IpAddr) -> bool {
        self.external().is_some_and(|e| e.is_local(ip))
    }

    /// Whether a packet to `dst` (a routed destination) leaves through the pod's
    /// interface rather than staying in the sandbox.
    pub fn is_external(&self, dst: IpAddr) -> bool {
        self.external().is_some() && !self.iface.is_local(dst) && !self.is_ext_local(dst)
    }

    /// Whether a socket bound to `ip` also takes traffic from the pod's interface.
    pub fn covers_external(&self, ip: IpAddr) -> bool {
        self.external().is_some() && (addr::is_any(ip) || self.is_ext_local(ip))
    }
}

/// A unique inode number for `fstat` of a socket.
pub fn next_ino() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0x40_0000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Device number `fstat` reports for sockets (the sockfs superblock).
pub const SOCKFS_DEV: u64 = 0x8;
