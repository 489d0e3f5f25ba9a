//! The interface ioctls any socket answers (`SIOCGIF*` with a `struct ifreq`):
//! `if_nametoindex`, `if_indextoname`, `ifconfig`-style queries: `lo`, and under
//! `--network=sandbox` the pod's interface (index 2) for the name, index, flags,
//! MTU and hardware address queries packet sockets need.

use crate::errno::{Errno, SysResult};
use crate::mm::io;
use crate::net::iflist::lo_flags;
use crate::net::loopback::{LoConfig, LO_INDEX, LO_MTU};
use crate::net::packet::{ARPHRD_ETHER, EXT_INDEX};
use crate::net::Netstack;
use crate::platform::AddressSpace;

const SIOCGIFNAME: u64 = 0x8910;
const SIOCGIFCONF: u64 = 0x8912;
const SIOCGIFFLAGS: u64 = 0x8913;
const SIOCGIFADDR: u64 = 0x8915;
const SIOCGIFNETMASK: u64 = 0x891b;
const SIOCGIFMTU: u64 = 0x8921;
const SIOCGIFHWADDR: u64 = 0x8927;
const SIOCGIFINDEX: u64 = 0x8933;
/// `sizeof(struct ifreq)`.
const IFREQ_LEN: usize = 40;
/// `IFF_UP | IFF_LOOPBACK | IFF_RUNNING`.
pub const LO_FLAGS: u32 = 0x1 | 0x8 | 0x40;
/// `ARPHRD_LOOPBACK`.
pub const ARPHRD_LOOPBACK: u16 = 772;

/// The queries answered (the rest of `SIOCGIF*` is `ENOTTY`).
const GETS: [u64; 7] = [
    SIOCGIFNAME,
    SIOCGIFFLAGS,
    SIOCGIFADDR,
    SIOCGIFNETMASK,
    SIOCGIFMTU,
    SIOCGIFHWADDR,
    SIOCGIFINDEX,
];

fn sockaddr_in(ip: [u8; 4]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..2].copy_from_slice(&(libc::AF_INET as u16).to_le_bytes());
    a[4..8].copy_from_slice(&ip);
    a
}

/// `ifr_name`: `name` cut to 15 bytes and NUL-padded.
fn put_name(ifr: &mut [u8], name: &str) {
    ifr[..16].fill(0);
    let n = name.len().min(15);
    ifr[..n].copy_from_slice(&name.as_bytes()[..n]);
}

/// `SIOCGIFADDR`'s address or `SIOCGIFNETMASK`'s mask of `ip`/`prefix`.
fn addr_or_mask(req: u64, ip: std::net::Ipv4Addr, prefix: u8) -> [u8; 16] {
    let v = if req == SIOCGIFADDR {
        ip.octets()
    } else {
        (u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)).to_be_bytes()
    };
    sockaddr_in(v)
}

/// `SIOCGIFCONF` over `entries` (name, IPv4 address): as many as the caller's
/// buffer holds; with no buffer, the length all would take.
fn write_ifconf(entries: &[(String, [u8; 4])], arg: u64, mem: &dyn AddressSpace) -> SysResult<u64> {
    let mut ifc = [0u8; 16];
    io::read_exact(mem, arg, &mut ifc)?;
    let len = i32::from_le_bytes([ifc[0], ifc[1], ifc[2], ifc[3]]);
    let buf = u64::from_le_bytes(ifc[8..16].try_into().map_err(|_| Errno::EINVAL)?);
    if buf == 0 {
        let all = (entries.len() * IFREQ_LEN) as i32;
        io::write_all(mem, arg, &all.to_le_bytes())?;
        return Ok(0);
    }
    let mut used = 0i32;
    for (name, ip) in entries {
        if len - used < IFREQ_LEN as i32 {
            break;
        }
        let mut ifr = [0u8; IFREQ_LEN];
        put_name(&mut ifr, name);
        ifr[16..32].copy_from_slice(&sockaddr_in(*ip));
        io::write_all(mem, buf + used as u64, &ifr)?;
        used += IFREQ_LEN as i32;
    }
    io::write_all(mem, arg, &used.to_le_bytes())?;
    Ok(0)
}

/// Answers an interface ioctl; `ENOTTY` for requests that are not one.
/// `net` is the stack of the socket asked (its pod interface, if any).
pub fn ioctl(net: Option<&Netstack>, req: u64, arg: u64, mem: &dyn AddressSpace) -> SysResult<u64> {
    if net.map_or_else(crate::net::hostview::active, |n| n.host_view()) {
        return host_ioctl(req, arg, mem);
    }
    if req == SIOCGIFCONF {
        return ifconf(net, arg, mem);
    }
    if !GETS.contains(&req) {
        return Err(Errno::ENOTTY);
    }
    let mut ifr = [0u8; IFREQ_LEN];
    io::read_exact(mem, arg, &mut ifr)?;
    let ext = net.and_then(|n| n.external());
    if req == SIOCGIFNAME {
        let idx = i32::from_le_bytes([ifr[16], ifr[17], ifr[18], ifr[19]]);
        let name = match ext {
            Some(e) if idx == EXT_INDEX as i32 => e.name(),
            _ if idx == LO_INDEX as i32 => "lo",
            _ => return Err(Errno::ENODEV),
        };
        put_name(&mut ifr, name);
        io::write_all(mem, arg, &ifr)?;
        return Ok(0);
    }
    let name: Vec<u8> = ifr[..16].iter().copied().take_while(|&c| c != 0).collect();
    if let Some(e) = ext.filter(|e| e.name().as_bytes() == name.as_slice()) {
        let out = &mut ifr[16..];
        match req {
            SIOCGIFINDEX => out[..4].copy_from_slice(&(EXT_INDEX as i32).to_le_bytes()),
            // IFF_UP | IFF_BROADCAST | IFF_RUNNING | IFF_MULTICAST
            SIOCGIFFLAGS => out[..2].copy_from_slice(&(0x1u16 | 0x2 | 0x40 | 0x1000).to_le_bytes()),
            SIOCGIFMTU => out[..4].copy_from_slice(&(e.mtu() as i32).to_le_bytes()),
            SIOCGIFHWADDR => {
                out[..16].fill(0);
                out[..2].copy_from_slice(&ARPHRD_ETHER.to_le_bytes());
                out[2..8].copy_from_slice(&e.mac());
            }
            // Addresses: the IPv4 ones of the interface.
            SIOCGIFADDR | SIOCGIFNETMASK => {
                let (ip, prefix) = e
                    .addrs()
                    .into_iter()
                    .find_map(|(a, p)| match a {
                        std::net::IpAddr::V4(v4) => Some((v4, p)),
                        _ => None,
                    })
                    .ok_or(Errno::EADDRNOTAVAIL)?;
                out[..16].copy_from_slice(&addr_or_mask(req, ip, prefix));
            }
            _ => return Err(Errno::ENOTTY),
        }
        io::write_all(mem, arg, &ifr)?;
        return Ok(0);
    }
    if name != b"lo" {
        return Err(Errno::ENODEV);
    }
    let lo = net
        .map(|n| n.lo_config())
        .unwrap_or_else(LoConfig::configured);
    // The first IPv4 address (a socket of no stack sees the sandbox's `lo`).
    let first = lo.v4.first().copied();
    let out = &mut ifr[16..];
    match req {
        SIOCGIFINDEX => out[..4].copy_from_slice(&(LO_INDEX as i32).to_le_bytes()),
        SIOCGIFFLAGS => out[..2].copy_from_slice(&(lo_flags(&lo) as u16).to_le_bytes()),
        SIOCGIFMTU => out[..4].copy_from_slice(&(LO_MTU as i32).to_le_bytes()),
        SIOCGIFADDR => {
            let (a, _) = first.ok_or(Errno::EADDRNOTAVAIL)?;
            out[..16].copy_from_slice(&sockaddr_in(a.octets()));
        }
        SIOCGIFNETMASK => {
            let (_, p) = first.ok_or(Errno::EADDRNOTAVAIL)?;
            let m = u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0);
            out[..16].copy_from_slice(&sockaddr_in(m.to_be_bytes()));
        }
        SIOCGIFHWADDR => {
            out[..16].fill(0);
            out[..2].copy_from_slice(&ARPHRD_LOOPBACK.to_le_bytes());
        }
        _ => return Err(Errno::ENOTTY),
    }
    io::write_all(mem, arg, &ifr)?;
    Ok(0)
}

/// `SIOCSIFFLAGS` from a caller with (`admin`) or without CAP_NET_ADMIN over
/// `net`'s namespace. Only `lo` changes, and only `IFF_UP`: brought up or down as
/// through netlink; another flag a program may change (promiscuous, no-ARP...)
/// is `EOPNOTSUPP`, as is any change of the pod's interface. In host mode the
/// interfaces are the host's and read-only (`EPERM`).
pub fn set_flags(net: &Netstack, admin: bool, arg: u64, mem: &dyn AddressSpace) -> SysResult<u64> {
    // Linux checks the capability before it looks the device up.
    if !admin || net.host_view() {
        return Err(Errno::EPERM);
    }
    let mut ifr = [0u8; IFREQ_LEN];
    io::read_exact(mem, arg, &mut ifr)?;
    let name: Vec<u8> = ifr[..16].iter().copied().take_while(|&c| c != 0).collect();
    if name != b"lo" {
        let pod = net
            .external()
            .is_some_and(|e| e.name().as_bytes() == name.as_slice());
        return Err(if pod {
            Errno::EOPNOTSUPP
        } else {
            Errno::ENODEV
        });
    }
    let want = u32::from(u16::from_le_bytes([ifr[16], ifr[17]]));
    let cur = lo_flags(&net.lo_config());
    // The flags `dev_change_flags` lets a program set, but for IFF_UP.
    const OTHERS: u32 = 0x4 | 0x20 | 0x80 | 0x100 | 0x200 | 0x1000 | 0x2000 | 0x4000 | 0x8000;
    if (want ^ cur) & OTHERS != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    net.change_lo(|lo| {
        lo.set_up(want & 0x1 != 0);
        Ok(0)
    })
}

/// `SIOCGIFCONF`: the IPv4 addresses of the interfaces (`lo`'s, then the pod
/// interface's), as many as fit; with no buffer, the length all would take.
fn ifconf(net: Option<&Netstack>, arg: u64, mem: &dyn AddressSpace) -> SysResult<u64> {
    let lo = net
        .map(|n| n.lo_config())
        .unwrap_or_else(LoConfig::configured);
    let mut entries: Vec<(String, [u8; 4])> = lo
        .v4
        .iter()
        .map(|(a, _)| ("lo".to_string(), a.octets()))
        .collect();
    if let Some(e) = net.and_then(|n| n.external()) {
        for (ip, _) in e.addrs() {
            if let std::net::IpAddr::V4(v4) = ip {
                entries.push((e.name().to_string(), v4.octets()));
            }
        }
    }
    write_ifconf(&entries, arg, mem)
}

/// Changes to an interface or the routes (`SIOCADDRT`, `SIOCDELRT`, `SIOCSIFFLAGS`,
/// `SIOCSIFADDR`, `SIOCSIFDSTADDR`, `SIOCSIFBRDADDR`, `SIOCSIFNETMASK`,
/// `SIOCSIFMETRIC`, `SIOCSIFMTU`, `SIOCSIFNAME`, `SIOCSIFHWADDR`, `SIOCSIFTXQLEN`):
/// refused in host mode, where the interfaces are the host's and read-only.
const SIOCS: [u64; 12] = [
    0x890b, 0x890c, 0x8914, 0x8916, 0x8918, 0x891a, 0x891c, 0x891e, 0x8922, 0x8923, 0x8924, 0x8943,
];

/// The interface ioctls under `--network=host`: the host's links and their IPv4
/// addresses (`net::hostview`); the `SIOCSIF*` changes are `EPERM`.
fn host_ioctl(req: u64, arg: u64, mem: &dyn AddressSpace) -> SysResult<u64> {
    use crate::net::hostview;
    let v4 = |index: u32| {
        hostview::addrs()
            .into_iter()
            .filter(move |a| a.index == index)
            .find_map(|a| match a.ip {
                std::net::IpAddr::V4(ip) => Some((ip, a.prefix)),
                _ => None,
            })
    };
    if req == SIOCGIFCONF {
        // Linux lists each IPv4 address under its label, in the order of the
        // links (so `lo` first).
        let links = hostview::links();
        let mut addrs = hostview::addrs();
        addrs.retain(|a| a.ip.is_ipv4());
        addrs.sort_by_key(|a| links.iter().position(|l| l.index == a.index));
        let entries: Vec<(String, [u8; 4])> = addrs
            .into_iter()
            .filter_map(|a| match a.ip {
                std::net::IpAddr::V4(ip) => Some((a.name, ip.octets())),
                _ => None,
            })
            .collect();
        return write_ifconf(&entries, arg, mem);
    }
    if !GETS.contains(&req) {
        if SIOCS.contains(&req) {
            tracing::debug!(req, "--network=host: interface change refused");
            return Err(Errno::EPERM);
        }
        return Err(Errno::ENOTTY);
    }
    let mut ifr = [0u8; IFREQ_LEN];
    io::read_exact(mem, arg, &mut ifr)?;
    let links = hostview::links();
    if req == SIOCGIFNAME {
        let idx = i32::from_le_bytes([ifr[16], ifr[17], ifr[18], ifr[19]]);
        let l = links
            .iter()
            .find(|l| l.index as i32 == idx)
            .ok_or(Errno::ENODEV)?;
        put_name(&mut ifr, &l.name);
        io::write_all(mem, arg, &ifr)?;
        return Ok(0);
    }
    let name: Vec<u8> = ifr[..16].iter().copied().take_while(|&c| c != 0).collect();
    let l = links
        .iter()
        .find(|l| l.name.as_bytes() == name.as_slice())
        .ok_or(Errno::ENODEV)?;
    let out = &mut ifr[16..];
    match req {
        SIOCGIFINDEX => out[..4].copy_from_slice(&(l.index as i32).to_le_bytes()),
        SIOCGIFFLAGS => out[..2].copy_from_slice(&(l.flags as u16).to_le_bytes()),
        SIOCGIFMTU => out[..4].copy_from_slice(&(l.mtu as i32).to_le_bytes()),
        SIOCGIFHWADDR => {
            out[..16].fill(0);
            out[..2].copy_from_slice(&l.hatype.to_le_bytes());
            out[2..8].copy_from_slice(&l.mac);
        }
        _ => {
            let (ip, prefix) = v4(l.index).ok_or(Errno::EADDRNOTAVAIL)?;
            out[..16].copy_from_slice(&addr_or_mask(req, ip, prefix));
        }
    }
    io::write_all(mem, arg, &ifr)?;
    Ok(0)
}
