//! Internet sockets (`AF_INET`, `AF_INET6`): TCP and UDP, served inside the sentry.
//!
//! The socket layer ([`tcp`], [`udp`]) implements the Linux socket API; it reaches
//! other sockets through the [`Netstack`]: one port table per protocol ([`ports`])
//! and the network interface below ([`Interface`]). With `--network=none` the only
//! interface is [`loopback::Loopback`], and a connection between two sockets of the
//! sandbox is an in-memory pair of byte queues (no packets are built): see
//! docs/networking.md. A later `--network=sandbox` puts a TCP/IP stack under the same
//! seam: a destination that is not local is then the interface's to carry, and the
//! loopback path stays as it is. Nothing here makes a host system call.

pub mod addr;
pub mod file;
pub mod ifreq;
pub mod loopback;
pub mod netlink;
pub mod opts;
pub mod ports;
pub mod procfs;
pub mod tcp;
pub mod udp;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

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

/// The network state of the sandbox: port tables and interfaces.
pub struct Netstack {
    iface: Box<dyn Interface>,
    /// Bound TCP sockets.
    pub tcp: ports::PortTable<tcp::TcpInner>,
    /// Bound UDP sockets.
    pub udp: ports::PortTable<udp::UdpInner>,
    /// Every TCP socket (accepted ones hold no binding), for `/proc/net/tcp`.
    tcp_all: std::sync::Mutex<Vec<std::sync::Weak<tcp::TcpInner>>>,
    /// Bytes and packets through the interface (`/proc/net/dev`).
    bytes: std::sync::atomic::AtomicU64,
    packets: std::sync::atomic::AtomicU64,
}

/// The sandbox's network stack (one sentry serves one sandbox, one network
/// namespace).
pub fn stack() -> &'static Netstack {
    static STACK: OnceLock<Netstack> = OnceLock::new();
    STACK.get_or_init(|| Netstack {
        iface: Box::new(loopback::Loopback),
        tcp: ports::PortTable::default(),
        udp: ports::PortTable::default(),
        tcp_all: std::sync::Mutex::new(Vec::new()),
        bytes: std::sync::atomic::AtomicU64::new(0),
        packets: std::sync::atomic::AtomicU64::new(0),
    })
}

impl Netstack {
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
        if addr::is_any(ip) || self.iface.is_local(ip) {
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
        let src = self.iface.source_for(dst)?;
        Ok((dst, src))
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
