//! The sandbox's interfaces, addresses and routes as netlink, `/proc/net` and
//! sysfs describe them: `lo` (index 1) and, under `--network=sandbox`, the pod's
//! interface (index 2) with the name, MAC, MTU, addresses, gateways and counters
//! the sentry's stack holds. One description, so `ip addr`, `/proc/net/if_inet6`,
//! `getifaddrs` and `/sys/class/net` agree. Under `--network=host` links and
//! addresses are the host's (`net::hostview`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::net::ifreq::{ARPHRD_LOOPBACK, LO_FLAGS};
use crate::net::loopback::{LoConfig, LO_INDEX, LO_MTU};
use crate::net::packet::{ARPHRD_ETHER, EXT_INDEX};
use crate::net::Netstack;

/// `IFF_LOWER_UP` (link messages only; not in the 16-bit ifreq flags).
pub const IFF_LOWER_UP: u32 = 0x1_0000;
/// `IFF_UP | IFF_BROADCAST | IFF_RUNNING | IFF_MULTICAST` of an Ethernet link.
pub const ETHER_FLAGS: u32 = 0x1 | 0x2 | 0x40 | 0x1000;
/// `IF_OPER_UNKNOWN` (`lo`) and `IF_OPER_UP`.
const OPER_UNKNOWN: u8 = 0;
/// `IF_OPER_DOWN`: `lo` brought down (or never up, in a new namespace).
const OPER_DOWN: u8 = 2;
const OPER_UP: u8 = 6;
/// Route scopes (`RT_SCOPE_*`).
pub const SCOPE_UNIVERSE: u8 = 0;
/// Scope of a directly connected prefix, or a link-local address.
pub const SCOPE_LINK: u8 = 253;
/// Scope of the host's own addresses.
pub const SCOPE_HOST: u8 = 254;
/// Route tables (`RT_TABLE_MAIN`, `RT_TABLE_LOCAL`).
pub const TABLE_MAIN: u8 = 254;
/// The table of local and broadcast routes.
pub const TABLE_LOCAL: u8 = 255;
/// Route types (`RTN_*`).
pub const RTN_UNICAST: u8 = 1;
/// A route to one of the host's own addresses.
pub const RTN_LOCAL: u8 = 2;
/// A multicast route.
pub const RTN_MULTICAST: u8 = 5;
/// Route origins (`RTPROT_*`): made by the kernel for an address, or set up at
/// boot (a default route added by `ip route add` or the runtime).
pub const PROTO_KERNEL: u8 = 2;
/// See [`PROTO_KERNEL`].
pub const PROTO_BOOT: u8 = 3;

/// One interface.
pub struct Link {
    /// `ifindex`.
    pub index: u32,
    /// Its name.
    pub name: String,
    /// `ARPHRD_*`.
    pub hatype: u16,
    /// `IFF_*` flags (with `IFF_LOWER_UP`).
    pub flags: u32,
    /// MTU.
    pub mtu: u32,
    /// Hardware address and broadcast address.
    pub mac: [u8; 6],
    /// See [`Link::mac`].
    pub broadcast: [u8; 6],
    /// `IF_OPER_*`.
    pub operstate: u8,
    /// (bytes, packets) received.
    pub rx: (u64, u64),
    /// (bytes, packets) sent.
    pub tx: (u64, u64),
    /// Its queueing discipline (`IFLA_QDISC`).
    pub qdisc: &'static str,
}

/// `lo`'s link flags: `IFF_LOOPBACK`, with `IFF_UP | IFF_RUNNING | IFF_LOWER_UP`
/// while it is up.
pub fn lo_flags(lo: &LoConfig) -> u32 {
    if lo.up {
        LO_FLAGS | IFF_LOWER_UP
    } else {
        LO_FLAGS & !(0x1 | 0x40)
    }
}

/// One address of an interface.
pub struct Addr {
    /// The interface's index.
    pub index: u32,
    /// The interface's name (the IPv4 label).
    pub name: String,
    /// The address.
    pub ip: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
    /// `RT_SCOPE_*`.
    pub scope: u8,
}

/// One route, as an `rtmsg` and its attributes carry it.
pub struct Route {
    /// Destination prefix.
    pub dst: IpAddr,
    /// Its length.
    pub dst_len: u8,
    /// The next hop, when not directly connected.
    pub gateway: Option<IpAddr>,
    /// `RT_TABLE_*`.
    pub table: u8,
    /// `RTPROT_*`.
    pub protocol: u8,
    /// `RT_SCOPE_*`.
    pub scope: u8,
    /// `RTN_*`.
    pub kind: u8,
    /// The preferred source address.
    pub prefsrc: Option<IpAddr>,
    /// `RTA_PRIORITY` (IPv6 routes always carry one).
    pub metric: Option<u32>,
    /// The output interface.
    pub oif: u32,
}

impl Route {
    /// Its address family (`AF_INET`, `AF_INET6`).
    pub fn family(&self) -> u8 {
        family_of(self.dst)
    }
}

/// `AF_INET` or `AF_INET6` for `ip`.
pub fn family_of(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

/// The sandbox's interfaces, `lo` first.
pub fn links(net: &Netstack) -> Vec<Link> {
    if net.host_view() {
        return crate::net::hostview::links();
    }
    // Loopback counts each packet once sent and once received.
    let (bytes, packets) = net.counters();
    let lo = net.lo_config();
    let mut v = vec![Link {
        index: LO_INDEX,
        name: "lo".into(),
        hatype: ARPHRD_LOOPBACK,
        flags: lo_flags(&lo),
        mtu: LO_MTU,
        mac: [0; 6],
        broadcast: [0; 6],
        operstate: if lo.up { OPER_UNKNOWN } else { OPER_DOWN },
        rx: (bytes, packets),
        tx: (bytes, packets),
        qdisc: if lo.was_up { "noqueue" } else { "noop" },
    }];
    if let Some(e) = net.external() {
        let (rx, tx) = e.counters();
        v.push(Link {
            index: EXT_INDEX,
            name: e.name().to_string(),
            hatype: ARPHRD_ETHER,
            flags: ETHER_FLAGS | IFF_LOWER_UP,
            mtu: e.mtu(),
            mac: e.mac(),
            broadcast: [0xff; 6],
            operstate: OPER_UP,
            rx,
            tx,
            qdisc: "noqueue",
        });
    }
    v
}

fn v6_scope(a: Ipv6Addr) -> u8 {
    if a.is_loopback() {
        SCOPE_HOST
    } else if a.segments()[0] & 0xffc0 == 0xfe80 {
        SCOPE_LINK
    } else {
        SCOPE_UNIVERSE
    }
}

/// The addresses of the sandbox's interfaces: IPv4 ones (of every interface)
/// before IPv6 ones, as a Linux dump of all families orders them.
pub fn addrs(net: &Netstack) -> Vec<Addr> {
    if net.host_view() {
        return crate::net::hostview::addrs();
    }
    let lo = net.lo_config();
    let lo_addr = |ip: IpAddr, prefix: u8| Addr {
        index: LO_INDEX,
        name: "lo".into(),
        ip,
        prefix,
        // Linux gives 127/8 and ::1 host scope, others on `lo` global scope.
        scope: if ip.is_loopback() {
            SCOPE_HOST
        } else {
            SCOPE_UNIVERSE
        },
    };
    let mut v4: Vec<Addr> = lo
        .v4
        .iter()
        .map(|&(a, p)| lo_addr(IpAddr::V4(a), p))
        .collect();
    let mut v6: Vec<Addr> = lo
        .v6
        .iter()
        .map(|&(a, p)| lo_addr(IpAddr::V6(a), p))
        .collect();
    if let Some(e) = net.external() {
        for (ip, prefix) in e.addrs() {
            let a = Addr {
                index: EXT_INDEX,
                name: e.name().to_string(),
                ip,
                prefix,
                scope: match ip {
                    IpAddr::V4(_) => SCOPE_UNIVERSE,
                    IpAddr::V6(a) => v6_scope(a),
                },
            };
            match ip {
                IpAddr::V4(_) => v4.push(a),
                IpAddr::V6(_) => v6.push(a),
            }
        }
    }
    v4.extend(v6);
    v4
}

/// `ip` with the bits past `len` cleared.
pub fn prefix_of(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

/// The routes Linux would hold for the sandbox's interfaces and addresses: the
/// kernel's routes for each address (the connected prefix in the main table, the
/// address itself in the local table), the default routes through the pod's
/// gateways, and IPv6 multicast on the pod's interface. IPv4 before IPv6.
pub fn routes(net: &Netstack) -> Vec<Route> {
    let lo = net.lo_config();
    let local = |dst: IpAddr, dst_len: u8, src: Option<IpAddr>, oif: u32| Route {
        dst,
        dst_len,
        gateway: None,
        table: TABLE_LOCAL,
        protocol: PROTO_KERNEL,
        scope: if src.is_some() {
            SCOPE_HOST
        } else {
            SCOPE_UNIVERSE
        },
        kind: RTN_LOCAL,
        prefsrc: src,
        metric: src.is_none().then_some(0),
        oif,
    };
    // `lo`'s addresses: each is a local route, and on a loopback device its whole
    // prefix too once the link has been up (Linux keeps both when it goes down).
    let mut v4 = Vec::new();
    for &(a, p) in &lo.v4 {
        let ip = IpAddr::V4(a);
        if p < 32 && lo.was_up {
            v4.push(local(prefix_of(ip, p), p, Some(ip), LO_INDEX));
        }
        v4.push(local(ip, 32, Some(ip), LO_INDEX));
    }
    // `::1` has no prefix route in the main table (Linux 6.x, seen natively).
    let v6: Vec<Route> = lo
        .v6
        .iter()
        .map(|&(a, _)| local(IpAddr::V6(a), 128, None, LO_INDEX))
        .collect();
    let Some(e) = net.external() else {
        v4.extend(v6);
        return v4;
    };
    let oif = EXT_INDEX;
    let (gw4, gw6) = e.gateways();
    let addrs = e.addrs();
    let mut main4 = Vec::new();
    let mut main6 = Vec::new();
    let mut local6 = Vec::new();
    if let Some(g) = gw4 {
        main4.push(Route {
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst_len: 0,
            gateway: Some(IpAddr::V4(g)),
            table: TABLE_MAIN,
            protocol: PROTO_BOOT,
            scope: SCOPE_UNIVERSE,
            kind: RTN_UNICAST,
            prefsrc: None,
            metric: None,
            oif,
        });
    }
    for &(ip, len) in &addrs {
        match ip {
            IpAddr::V4(_) => {
                if len < 32 {
                    main4.push(Route {
                        dst: prefix_of(ip, len),
                        dst_len: len,
                        gateway: None,
                        table: TABLE_MAIN,
                        protocol: PROTO_KERNEL,
                        scope: SCOPE_LINK,
                        kind: RTN_UNICAST,
                        prefsrc: Some(ip),
                        metric: None,
                        oif,
                    });
                }
                v4.push(local(ip, 32, Some(ip), oif));
            }
            IpAddr::V6(_) => {
                let dst = prefix_of(ip, len);
                if len < 128
                    && !main6
                        .iter()
                        .any(|r: &Route| r.dst == dst && r.dst_len == len)
                {
                    main6.push(Route {
                        dst,
                        dst_len: len,
                        gateway: None,
                        table: TABLE_MAIN,
                        protocol: PROTO_KERNEL,
                        scope: SCOPE_UNIVERSE,
                        kind: RTN_UNICAST,
                        prefsrc: None,
                        metric: Some(256),
                        oif,
                    });
                }
                local6.push(local(ip, 128, None, oif));
            }
        }
    }
    if let Some(g) = gw6 {
        main6.push(Route {
            dst: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            dst_len: 0,
            gateway: Some(IpAddr::V6(g)),
            table: TABLE_MAIN,
            protocol: PROTO_BOOT,
            scope: SCOPE_UNIVERSE,
            kind: RTN_UNICAST,
            prefsrc: None,
            metric: Some(1024),
            oif,
        });
    }
    if !addrs.iter().all(|(ip, _)| ip.is_ipv4()) {
        // ff00::/8 on every IPv6 interface but `lo`.
        local6.push(Route {
            dst: IpAddr::V6(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0)),
            dst_len: 8,
            gateway: None,
            table: TABLE_LOCAL,
            protocol: PROTO_KERNEL,
            scope: SCOPE_UNIVERSE,
            kind: RTN_MULTICAST,
            prefsrc: None,
            metric: Some(256),
            oif,
        });
    }
    // The main table first, in prefix order as a dump walks it.
    main4.sort_by_key(|r| (r.dst, r.dst_len));
    let mut out = main4;
    out.extend(v4);
    out.extend(main6);
    out.extend(v6);
    out.extend(local6);
    out
}
