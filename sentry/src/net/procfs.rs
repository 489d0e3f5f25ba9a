//! The text of `/proc/net/*`, `/proc/sys/net/*` and `/sys/class/net/*/*`, in
//! Linux's formats, generated from the sandbox's sockets. The files themselves are
//! made by procfs and sysfs.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::net::addr::{Family, SockAddr};
use crate::net::iflist::{self, Link};
use crate::net::loopback::LO_MTU;
use crate::net::tcp::State;
use crate::net::Netstack;

/// `/proc/sys/net` files: (path below `net/`, contents).
pub const SYSCTLS: &[(&str, &str)] = &[
    ("core/somaxconn", "4096\n"),
    ("core/rmem_default", "212992\n"),
    ("core/rmem_max", "212992\n"),
    ("core/wmem_default", "212992\n"),
    ("core/wmem_max", "212992\n"),
    ("core/netdev_max_backlog", "1000\n"),
    ("ipv4/ip_local_port_range", "32768\t60999\n"),
    ("ipv4/ip_unprivileged_port_start", "1024\n"),
    ("ipv4/ip_forward", "0\n"),
    ("ipv4/tcp_rmem", "4096\t131072\t6291456\n"),
    ("ipv4/tcp_wmem", "4096\t16384\t4194304\n"),
    ("ipv4/tcp_mem", "88413\t117885\t176826\n"),
    ("ipv4/tcp_fin_timeout", "60\n"),
    ("ipv4/tcp_keepalive_time", "7200\n"),
    ("ipv4/tcp_keepalive_intvl", "75\n"),
    ("ipv4/tcp_keepalive_probes", "9\n"),
    ("ipv4/tcp_max_syn_backlog", "4096\n"),
    ("ipv4/tcp_syncookies", "1\n"),
    ("ipv4/tcp_timestamps", "1\n"),
    ("ipv4/tcp_sack", "1\n"),
    ("ipv4/tcp_window_scaling", "1\n"),
    ("ipv4/tcp_congestion_control", "cubic\n"),
    ("ipv4/udp_mem", "176826\t235770\t353652\n"),
];

/// The largest group `ping_group_range` takes (`GID_T_MAX`: an int's range).
const PING_GID_MAX: u32 = i32::MAX as u32;

/// `net.ipv4.ping_group_range` of `net`: the groups that may open ping sockets,
/// inclusive, (low, high); Linux's default "1 0" means nobody.
pub fn ping_group_range(net: &Netstack) -> (u32, u32) {
    *net.ping_group_range
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The text of `/proc/sys/net/ipv4/ping_group_range`.
pub fn ping_group_range_text(net: &Netstack) -> String {
    let (lo, hi) = ping_group_range(net);
    format!("{lo}\t{hi}\n")
}

/// A write of `/proc/sys/net/ipv4/ping_group_range`: up to two groups, each at
/// most `GID_T_MAX` (`EINVAL` otherwise); a group not given keeps its value, and a
/// high below the low means nobody ("1 0"), as Linux stores it.
pub fn set_ping_group_range(net: &Netstack, buf: &[u8]) -> crate::errno::SysResult<()> {
    use crate::errno::Errno;
    let text = std::str::from_utf8(buf).map_err(|_| Errno::EINVAL)?;
    let mut cur = ping_group_range(net);
    let mut given = 0;
    for (i, w) in text.split_ascii_whitespace().take(2).enumerate() {
        let v: i64 = w.parse().map_err(|_| Errno::EINVAL)?;
        if !(0..=PING_GID_MAX as i64).contains(&v) {
            return Err(Errno::EINVAL);
        }
        if i == 0 {
            cur.0 = v as u32;
        } else {
            cur.1 = v as u32;
        }
        given += 1;
    }
    if given == 0 {
        return Err(Errno::EINVAL);
    }
    let v = if cur.1 < cur.0 { (1, 0) } else { cur };
    *net.ping_group_range
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = v;
    Ok(())
}

/// The attributes of `/sys/class/net/NAME` for `link`: (file, contents).
pub fn sysfs_attrs(link: &Link) -> Vec<(&'static str, String)> {
    let mac = |m: &[u8; 6]| {
        let hex: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}\n", hex.join(":"))
    };
    let up = link.flags & 0x1 != 0;
    vec![
        ("address", mac(&link.mac)),
        ("addr_len", "6\n".into()),
        ("broadcast", mac(&link.broadcast)),
        ("carrier", format!("{}\n", up as u8)),
        ("dev_id", "0x0\n".into()),
        // The 16-bit flags (IFF_LOWER_UP is netlink's alone).
        ("flags", format!("{:#x}\n", link.flags & 0xffff)),
        ("ifindex", format!("{}\n", link.index)),
        ("iflink", format!("{}\n", link.index)),
        ("mtu", format!("{}\n", link.mtu)),
        (
            "operstate",
            if link.hatype == crate::net::ifreq::ARPHRD_LOOPBACK {
                "unknown\n".into()
            } else if up {
                "up\n".into()
            } else {
                "down\n".into()
            },
        ),
        ("tx_queue_len", "1000\n".into()),
        ("type", format!("{}\n", link.hatype)),
    ]
}

/// An address as `/proc/net/tcp` prints it: the 32-bit words of the network-order
/// address, each as the host reads it (little-endian), in hex.
fn hex_addr(family: Family, a: SockAddr) -> String {
    let words: Vec<u8> = match (family, a.ip) {
        (Family::V4, IpAddr::V4(v4)) => v4.octets().to_vec(),
        (Family::V4, IpAddr::V6(_)) => vec![0; 4],
        (Family::V6, IpAddr::V4(v4)) if v4.is_unspecified() => vec![0; 16],
        (Family::V6, IpAddr::V4(v4)) => v4.to_ipv6_mapped().octets().to_vec(),
        (Family::V6, IpAddr::V6(v6)) => v6.octets().to_vec(),
    };
    let mut out = String::new();
    for w in words.chunks(4) {
        let _ = write!(out, "{:08X}", u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    }
    let _ = write!(out, ":{:04X}", a.port);
    out
}

fn header(family: Family, udp: bool) -> String {
    let addrs = match family {
        Family::V4 => "local_address rem_address  ",
        Family::V6 => "local_address                         remote_address                       ",
    };
    let sl = if udp { "   sl" } else { "  sl" };
    let tail = if udp { " ref pointer drops" } else { "" };
    format!("{sl}  {addrs} st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode{tail}\n")
}

/// `/proc/net/tcp` (`Family::V4`) or `tcp6`.
pub fn tcp(net: &Netstack, family: Family) -> String {
    let mut out = header(family, false);
    let mut n = 0;
    for s in net.tcp_sockets() {
        if s.family() != family {
            continue;
        }
        let (local, remote, state, tx, rx, uid, ino) = s.proc_entry();
        if state == State::Close {
            continue;
        }
        let _ = writeln!(
            out,
            "{n:4}: {} {} {:02X} {tx:08X}:{rx:08X} 00:00000000 00000000 {uid:5} {:8} {ino} 1 0000000000000000 20 4 30 10 -1",
            hex_addr(family, local),
            hex_addr(family, remote),
            state as u8,
            0
        );
        n += 1;
    }
    out
}

/// `/proc/net/udp` or `udp6`.
pub fn udp(net: &Netstack, family: Family) -> String {
    udp_table(&net.udp, family)
}

/// `/proc/net/udplite` or `udplite6` (the UDP format, UDP-Lite's sockets).
pub fn udplite(net: &Netstack, family: Family) -> String {
    udp_table(&net.udplite, family)
}

fn udp_table(
    table: &crate::net::ports::PortTable<crate::net::udp::UdpInner>,
    family: Family,
) -> String {
    let mut out = header(family, true);
    let mut n = 0;
    for s in table.all() {
        if s.family() != family {
            continue;
        }
        let (local, remote, tx, rx, uid, ino) = s.proc_entry();
        let st = if remote.port != 0 { 1 } else { 7 };
        let _ = writeln!(
            out,
            "{n:5}: {} {} {st:02X} {tx:08X}:{rx:08X} 00:00000000 00000000 {uid:5} {:8} {ino} 2 0000000000000000 0",
            hex_addr(family, local),
            hex_addr(family, remote),
            0
        );
        n += 1;
    }
    out
}

/// `/proc/net/dev`: a line per interface (Linux's `dev_seq_printf_stats`).
pub fn dev(net: &Netstack) -> String {
    let mut out = String::from(
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n",
    );
    for l in iflist::links(net) {
        let ((rb, rp), (tb, tp)) = (l.rx, l.tx);
        let _ = writeln!(
            out,
            "{:>6}:{rb:>8} {rp:>7} {:>4} {:>4} {:>4} {:>5} {:>10} {:>9} {tb:>8} {tp:>7} {:>4} {:>4} {:>4} {:>5} {:>7} {:>10}",
            l.name, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        );
    }
    out
}

/// `/proc/net/if_inet6`: each IPv6 address, its interface, prefix, scope
/// (`IPV6_ADDR_LOOPBACK` 0x10, `_LINKLOCAL` 0x20, global 0) and flags
/// (`IFA_F_PERMANENT`).
pub fn if_inet6(net: &Netstack) -> String {
    let mut out = String::new();
    for a in iflist::addrs(net) {
        let IpAddr::V6(ip) = a.ip else { continue };
        let scope = match a.scope {
            iflist::SCOPE_HOST => 0x10,
            iflist::SCOPE_LINK => 0x20,
            _ => 0,
        };
        let hex: String = ip.octets().iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(
            out,
            "{hex} {:02x} {:02x} {scope:02x} 80 {:>8}",
            a.index, a.prefix, a.name
        );
    }
    out
}

/// A line of `/proc/net/route`, padded to 127 columns as Linux pads it.
fn route_line(text: &str) -> String {
    format!("{text:<127}\n")
}

/// `/proc/net/route`: the IPv4 routes of the main table (those of `lo` are in the
/// local table, which this file does not show).
pub fn route(net: &Netstack) -> String {
    let mut out = route_line(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT",
    );
    let links = iflist::links(net);
    // The network-order address as the host reads it (little-endian).
    let word = |ip: Option<IpAddr>| match ip {
        Some(IpAddr::V4(a)) => u32::from_le_bytes(a.octets()),
        _ => 0,
    };
    for r in iflist::routes(net) {
        if r.table != iflist::TABLE_MAIN || !r.dst.is_ipv4() {
            continue;
        }
        let Some(l) = links.iter().find(|l| l.index == r.oif) else {
            continue;
        };
        let mask = u32::MAX
            .checked_shl(32 - u32::from(r.dst_len.min(32)))
            .unwrap_or(0);
        // RTF_UP, and RTF_GATEWAY for a route through a next hop.
        let flags = if r.gateway.is_some() { 0x3 } else { 0x1 };
        out.push_str(&route_line(&format!(
            "{}\t{:08X}\t{:08X}\t{flags:04X}\t0\t0\t{}\t{:08X}\t0\t0\t0",
            l.name,
            word(Some(r.dst)),
            word(r.gateway),
            r.metric.unwrap_or(0),
            u32::from_le_bytes(mask.to_be_bytes()),
        )));
    }
    out
}

/// `/proc/net/snmp`: the network's counters (net/snmp.rs).
pub fn snmp(net: &Netstack) -> String {
    let estab = net
        .tcp_sockets()
        .iter()
        .filter(|s| matches!(s.state(), State::Established | State::CloseWait))
        .count();
    crate::net::snmp::snmp(&net.snmp, false, estab as u64)
}

/// `/proc/net/snmp6`.
pub fn snmp6(net: &Netstack) -> String {
    crate::net::snmp::snmp6(&net.snmp)
}

/// `/proc/net/netstat`.
pub fn netstat(net: &Netstack) -> String {
    crate::net::snmp::netstat(&net.snmp)
}

/// `/proc/net/sockstat` counts sockets.
pub fn sockstat(net: &Netstack) -> String {
    let tcp = net.tcp_sockets();
    let inuse = tcp.iter().filter(|s| s.state() != State::Close).count();
    let udp = net.udp.all().len();
    format!(
        "sockets: used {}\nTCP: inuse {inuse} orphan 0 tw 0 alloc {} mem 0\nUDP: inuse {udp} mem 0\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n",
        tcp.len() + udp,
        tcp.len()
    )
}

/// The MTU `lo` reports (for sysfs and netlink).
pub fn lo_mtu() -> u32 {
    LO_MTU
}
