//! `AF_NETLINK` sockets of protocol `NETLINK_ROUTE`, read-only: dumps of links
//! (`RTM_GETLINK`), addresses (`RTM_GETADDR`) and routes (`RTM_GETROUTE`) describe
//! the sandbox's interfaces, so glibc's `getifaddrs`, `if_nameindex` and iproute2's
//! `ip link`/`ip addr`/`ip route` work. Each request is answered at once into the
//! socket's queue; changes (`RTM_NEW*`, `RTM_DEL*`) are refused (`EPERM` without
//! `CAP_NET_ADMIN`, else `EOPNOTSUPP`), as are multicast groups.

use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::errno::{Errno, SysResult};
use crate::net::diag::{self, UnixLister};
use crate::net::iflist::{self, Link, Route};
use crate::net::{next_ino, Netstack, SOCKFS_DEV};
use crate::vfs::{FileImpl, Stat};
use crate::wait::WaitQueue;

/// `sizeof(struct sockaddr_nl)`.
pub const SOCKADDR_NL_LEN: usize = 12;
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
/// Neighbours (`ip neigh`) and policy rules (`ip rule`): answered by the host in
/// host mode, empty dumps otherwise.
const RTM_GETNEIGH: u16 = 30;
const RTM_GETRULE: u16 = 34;
/// The id a network namespace has in this one (`ip link`'s `link-netns NAME`).
const RTM_GETNSID: u16 = 90;
const RTM_NEWNSID: u16 = 88;
const RTM_NEWRULE: u16 = 32;
/// The most one datagram of a dump carries (Linux's `NLMSG_GOODSIZE` on 4 KiB pages).
const DUMP_CHUNK: usize = 3776;
/// Bytes a socket's queue holds before answers are dropped (`ENOBUFS`).
const QUEUE_MAX: usize = 1 << 20;

/// The port ids of one network stack's netlink sockets.
pub struct PortIds {
    /// Those in use.
    used: Mutex<HashSet<u32>>,
    /// Where the search for a free negative id continues.
    next: AtomicU64,
}

impl Default for PortIds {
    fn default() -> Self {
        PortIds {
            used: Mutex::new(HashSet::new()),
            next: AtomicU64::new(0x8000_0000),
        }
    }
}

/// A netlink route socket.
pub struct NetlinkSocket {
    ino: u64,
    wq: WaitQueue,
    st: Mutex<NlState>,
    /// The network it describes.
    net: Arc<Netstack>,
    /// `NETLINK_ROUTE` or `NETLINK_SOCK_DIAG`.
    proto: i32,
    /// The sandbox's unix sockets (`NETLINK_SOCK_DIAG`'s `AF_UNIX` requests).
    unix: Option<UnixLister>,
}

struct NlState {
    port: u32,
    queue: VecDeque<Vec<u8>>,
    queued: usize,
    rcvbuf: i32,
    sndbuf: i32,
    err: Option<Errno>,
    ext_ack: bool,
    strict: bool,
}

impl Drop for NetlinkSocket {
    fn drop(&mut self) {
        let port = self.st.get_mut().map(|s| s.port).unwrap_or(0);
        if port != 0 {
            if let Ok(mut ids) = self.ids().used.lock() {
                ids.remove(&port);
            }
        }
    }
}

fn put_attr(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn message(kind: u16, flags: u16, seq: u32, port: u32, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(NLMSG_HDRLEN + body.len());
    m.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_le_bytes());
    m.extend_from_slice(&kind.to_le_bytes());
    m.extend_from_slice(&flags.to_le_bytes());
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(&port.to_le_bytes());
    m.extend_from_slice(body);
    while !m.len().is_multiple_of(4) {
        m.push(0);
    }
    m
}

/// `RTM_NEWLINK` body for `link`.
fn link_body(link: &Link) -> Vec<u8> {
    let mut b = vec![0u8; 16];
    b[2..4].copy_from_slice(&link.hatype.to_le_bytes());
    b[4..8].copy_from_slice(&(link.index as i32).to_le_bytes());
    b[8..12].copy_from_slice(&link.flags.to_le_bytes());
    let mut name = link.name.as_bytes().to_vec();
    name.push(0);
    put_attr(&mut b, 3, &name); // IFLA_IFNAME
    put_attr(&mut b, 13, &1000u32.to_le_bytes()); // IFLA_TXQLEN
    put_attr(&mut b, 16, &[link.operstate]); // IFLA_OPERSTATE
    put_attr(&mut b, 17, &[0]); // IFLA_LINKMODE
    put_attr(&mut b, 4, &link.mtu.to_le_bytes()); // IFLA_MTU
    put_attr(&mut b, 27, &0u32.to_le_bytes()); // IFLA_GROUP
    put_attr(&mut b, 30, &0u32.to_le_bytes()); // IFLA_PROMISCUITY
    put_attr(&mut b, 31, &1u32.to_le_bytes()); // IFLA_NUM_TX_QUEUES
    put_attr(&mut b, 32, &1u32.to_le_bytes()); // IFLA_NUM_RX_QUEUES
    put_attr(&mut b, 33, &[1]); // IFLA_CARRIER
    let mut qdisc = link.qdisc.as_bytes().to_vec();
    qdisc.push(0);
    put_attr(&mut b, 6, &qdisc); // IFLA_QDISC
    put_attr(&mut b, 1, &link.mac); // IFLA_ADDRESS
    put_attr(&mut b, 2, &link.broadcast); // IFLA_BROADCAST
                                          // rtnl_link_stats (24 x u32) and rtnl_link_stats64 (24 x u64): rx packets,
                                          // tx packets, rx bytes, tx bytes are the first four fields.
    let mut s32 = vec![0u8; 96];
    let mut s64 = vec![0u8; 192];
    for (i, v) in [link.rx.1, link.tx.1, link.rx.0, link.tx.0]
        .into_iter()
        .enumerate()
    {
        s32[i * 4..i * 4 + 4].copy_from_slice(&(v as u32).to_le_bytes());
        s64[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    put_attr(&mut b, 7, &s32); // IFLA_STATS
    put_attr(&mut b, 23, &s64); // IFLA_STATS64
    b
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// `RTM_NEWADDR` bodies for the addresses of `net` of `family` (0: all), of the
/// interface `index` (0: all).
fn addr_bodies(net: &Netstack, family: u8, index: u32) -> Vec<Vec<u8>> {
    let mut cache = Vec::new();
    for v in [u32::MAX, u32::MAX, 0, 0] {
        cache.extend_from_slice(&v.to_le_bytes());
    }
    iflist::addrs(net)
        .into_iter()
        .filter(|a| family == 0 || iflist::family_of(a.ip) == family)
        .filter(|a| index == 0 || a.index == index)
        .map(|a| {
            // ifaddrmsg: family, prefix length, flags (IFA_F_PERMANENT), scope, index.
            let mut b = vec![iflist::family_of(a.ip), a.prefix, 0x80, a.scope, 0, 0, 0, 0];
            b[4..8].copy_from_slice(&a.index.to_le_bytes());
            let ip = ip_bytes(a.ip);
            put_attr(&mut b, 1, &ip); // IFA_ADDRESS
            if a.ip.is_ipv4() {
                put_attr(&mut b, 2, &ip); // IFA_LOCAL
                let mut label = a.name.as_bytes().to_vec();
                label.push(0);
                put_attr(&mut b, 3, &label); // IFA_LABEL
            }
            put_attr(&mut b, 8, &0x80u32.to_le_bytes()); // IFA_FLAGS: permanent
            put_attr(&mut b, 6, &cache); // IFA_CACHEINFO
            b
        })
        .collect()
}

/// `RTM_NEWROUTE` bodies: the routes of `net` of `family` (0: all).
fn route_bodies(net: &Netstack, family: u8) -> Vec<Vec<u8>> {
    iflist::routes(net)
        .into_iter()
        .filter(|r| family == 0 || r.family() == family)
        .map(|r| route_body(&r))
        .collect()
}

/// `RTM_NEWRULE` bodies: the policy rules every Linux network namespace starts
/// with, of `family` (0: all): IPv4 `0: lookup local`, `32766: lookup main`,
/// `32767: lookup default`; IPv6 the first two. Laid out as Linux's
/// `fib_nl_fill_rule` writes them (no `FRA_PRIORITY` for preference 0).
fn rule_bodies(family: u8) -> Vec<Vec<u8>> {
    const RULES: [(u8, u8, u32); 5] = [
        (libc::AF_INET as u8, 255, 0),
        (libc::AF_INET as u8, 254, 32766),
        (libc::AF_INET as u8, 253, 32767),
        (libc::AF_INET6 as u8, 255, 0),
        (libc::AF_INET6 as u8, 254, 32766),
    ];
    RULES
        .iter()
        .filter(|(f, _, _)| family == 0 || *f == family)
        .map(|&(f, table, pref)| {
            // fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2,
            // action (FR_ACT_TO_TBL), flags.
            let mut b = vec![f, 0, 0, 0, table, 0, 0, 1, 0, 0, 0, 0];
            put_attr(&mut b, 15, &u32::from(table).to_le_bytes()); // FRA_TABLE
            put_attr(&mut b, 14, &u32::MAX.to_le_bytes()); // FRA_SUPPRESS_PREFIXLEN
            put_attr(&mut b, 21, &[2]); // FRA_PROTOCOL: kernel
            if pref != 0 {
                put_attr(&mut b, 6, &pref.to_le_bytes()); // FRA_PRIORITY
            }
            b
        })
        .collect()
}

fn route_body(r: &Route) -> Vec<u8> {
    // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    let mut b = vec![
        r.family(),
        r.dst_len,
        0,
        0,
        r.table,
        r.protocol,
        r.scope,
        r.kind,
        0,
        0,
        0,
        0,
    ];
    put_attr(&mut b, 15, &u32::from(r.table).to_le_bytes()); // RTA_TABLE
    if r.dst_len != 0 {
        put_attr(&mut b, 1, &ip_bytes(r.dst)); // RTA_DST
    }
    if let Some(m) = r.metric {
        put_attr(&mut b, 6, &m.to_le_bytes()); // RTA_PRIORITY
    }
    if let Some(p) = r.prefsrc {
        put_attr(&mut b, 7, &ip_bytes(p)); // RTA_PREFSRC
    }
    if let Some(g) = r.gateway {
        put_attr(&mut b, 5, &ip_bytes(g)); // RTA_GATEWAY
    }
    put_attr(&mut b, 4, &r.oif.to_le_bytes()); // RTA_OIF
    if r.dst.is_ipv6() {
        put_attr(&mut b, 20, &[0]); // RTA_PREF: medium
    }
    b
}

/// How a request names other namespaces: the path of the sender's descriptor
/// (`NETNSA_FD`), whether a process id is one the sender sees (`NETNSA_PID`).
pub struct NsRefs<'a> {
    /// The path of the sender's descriptor, if open.
    pub fd_path: &'a dyn Fn(i32) -> Option<Vec<u8>>,
    /// Whether the sender sees a thread of that id.
    pub pid_exists: &'a dyn Fn(i32) -> bool,
}

/// The answer to `RTM_GETNSID` (`rtnl_net_getid`), the namespace named by process
/// (`NETNSA_PID`), by descriptor (`NETNSA_FD`) or by id (`NETNSA_NSID`), in that
/// order of preference. By descriptor: in host mode, the id the host gives the
/// namespace `/run/netns/NAME` (or `/var/run/netns/NAME`) when the descriptor is
/// that file (`sys::hostnet::view_nsid`), else -1 (`NETNSA_NSID_NOT_ASSIGNED`:
/// the sandbox's own namespace, or one with no id); a descriptor that is not open
/// is `EBADF`. By process: -1, the namespace of every process of the sandbox
/// having no id (`ESRCH` for a process the sender does not see). By id: the id
/// when host mode's view has it, else `ENOENT`. None of them: `EINVAL`.
fn nsid_request(body: &[u8], host_view: bool, refs: &NsRefs<'_>) -> SysResult<i32> {
    let attrs = attr_list(body.get(4..).unwrap_or(&[])).ok_or(Errno::EINVAL)?;
    let int = |kind: u16| {
        attrs
            .iter()
            .find(|(k, v)| *k == kind && v.len() >= 4)
            .map(|(_, v)| i32::from_le_bytes([v[0], v[1], v[2], v[3]]))
    };
    if let Some(pid) = int(2) {
        return if pid > 0 && (refs.pid_exists)(pid) {
            Ok(-1)
        } else {
            Err(Errno::ESRCH)
        };
    }
    let Some(fd) = int(3) else {
        return match int(1) {
            Some(id) if host_view && crate::sys::hostnet::view_has_nsid(id) => Ok(id),
            Some(_) => Err(Errno::ENOENT),
            None => Err(Errno::EINVAL),
        };
    };
    let path = (refs.fd_path)(fd).ok_or(Errno::EBADF)?;
    let name = ["/run/netns/", "/var/run/netns/"]
        .iter()
        .find_map(|p| path.strip_prefix(p.as_bytes()))
        .and_then(|n| std::str::from_utf8(n).ok());
    Ok(match name {
        Some(n) if host_view => crate::sys::hostnet::view_nsid(n).unwrap_or(-1),
        _ => -1,
    })
}

/// The interface an address dump asks for (`ifa_index` of its `ifaddrmsg`; 0:
/// all), heeded only with `NETLINK_GET_STRICT_CHK`, as Linux does.
fn dump_index(body: &[u8]) -> u32 {
    match body.get(4..8) {
        Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

/// The attributes of a request: (type without the nested and byte-order bits,
/// payload); `None` for a malformed list.
fn attr_list(attrs: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let mut v = Vec::new();
    let mut off = 0;
    while off + 4 <= attrs.len() {
        let len = u16::from_le_bytes([attrs[off], attrs[off + 1]]) as usize;
        let kind = u16::from_le_bytes([attrs[off + 2], attrs[off + 3]]) & 0x3fff;
        if len < 4 || off + len > attrs.len() {
            return None;
        }
        v.push((kind, &attrs[off + 4..off + len]));
        off += (len + 3) & !3;
    }
    Some(v)
}

/// The link flags a program may change (`dev_change_flags`); the others (running,
/// lower up, loopback...) are the device's.
const IFF_CHANGEABLE: u32 =
    0x1 | 0x4 | 0x20 | 0x80 | 0x100 | 0x200 | 0x1000 | 0x2000 | 0x4000 | 0x8000;

/// Finds `IFLA_IFNAME` in a link request's attributes.
fn ifname_attr(attrs: &[u8]) -> Option<Vec<u8>> {
    let mut off = 0;
    while off + 4 <= attrs.len() {
        let len = u16::from_le_bytes([attrs[off], attrs[off + 1]]) as usize;
        let kind = u16::from_le_bytes([attrs[off + 2], attrs[off + 3]]);
        if len < 4 || off + len > attrs.len() {
            return None;
        }
        if kind == 3 {
            let v = &attrs[off + 4..off + len];
            return Some(v.iter().copied().take_while(|&c| c != 0).collect());
        }
        off += (len + 3) & !3;
    }
    None
}

impl NetlinkSocket {
    /// A new route socket describing `net`.
    pub fn new(net: &Arc<Netstack>) -> NetlinkSocket {
        Self::with_protocol(net, libc::NETLINK_ROUTE, None)
    }

    /// A new socket of `proto` (`NETLINK_ROUTE`, `NETLINK_SOCK_DIAG`) on `net`;
    /// `unix` lists the unix sockets a diag socket describes.
    pub fn with_protocol(
        net: &Arc<Netstack>,
        proto: i32,
        unix: Option<UnixLister>,
    ) -> NetlinkSocket {
        NetlinkSocket {
            net: net.clone(),
            proto,
            unix,
            ino: next_ino(),
            wq: WaitQueue::new(),
            st: Mutex::new(NlState {
                port: 0,
                queue: VecDeque::new(),
                queued: 0,
                rcvbuf: 212_992,
                sndbuf: 212_992,
                err: None,
                ext_ack: false,
                strict: false,
            }),
        }
    }

    fn lock(&self) -> SysResult<MutexGuard<'_, NlState>> {
        self.st.lock().map_err(|_| Errno::EIO)
    }

    /// The port ids of this socket's protocol.
    fn ids(&self) -> &PortIds {
        if self.proto == libc::NETLINK_SOCK_DIAG {
            &self.net.diag_ports
        } else {
            &self.net.netlink_ports
        }
    }

    fn autobind(&self, st: &mut NlState, want: u32, tgid: i32) -> SysResult<()> {
        if st.port != 0 {
            return if want == 0 || want == st.port {
                Ok(())
            } else {
                Err(Errno::EINVAL)
            };
        }
        let table = self.ids();
        let mut ids = table.used.lock().map_err(|_| Errno::EIO)?;
        let port = if want != 0 {
            if ids.contains(&want) {
                return Err(Errno::EADDRINUSE);
            }
            want
        } else if tgid > 0 && !ids.contains(&(tgid as u32)) {
            tgid as u32
        } else {
            // Linux hands out negative ids once the process id is taken.
            loop {
                let p = table.next.fetch_add(1, Ordering::Relaxed) as u32 | 0x8000_0000;
                if !ids.contains(&p) {
                    break p;
                }
            }
        };
        ids.insert(port);
        st.port = port;
        Ok(())
    }

    /// A change request (`RTM_NEWLINK`, `RTM_NEWADDR`, `RTM_DELADDR`) from a
    /// program with `CAP_NET_ADMIN` over the network's namespace. Only `lo` can be
    /// changed: brought up or down, addresses added and removed. The pod's
    /// interface is the runtime's (`EOPNOTSUPP`), as are routes and new links.
    fn change(&self, kind: u16, flags: u16, body: &[u8]) -> SysResult<()> {
        use crate::net::loopback::LO_INDEX;
        match kind {
            RTM_NEWADDR | RTM_DELADDR => {
                // ifaddrmsg: family, prefix length, flags, scope, index.
                if body.len() < 8 {
                    return Err(Errno::EINVAL);
                }
                let family = i32::from(body[0]);
                let prefix = body[1];
                let index = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                let attrs = attr_list(&body[8..]).ok_or(Errno::EINVAL)?;
                let find = |k: u16| attrs.iter().find(|(t, _)| *t == k).map(|(_, v)| *v);
                // IPv4 names the address by IFA_LOCAL, IPv6 by either.
                let raw = match family {
                    libc::AF_INET => find(2).or(if kind == RTM_DELADDR { find(1) } else { None }),
                    libc::AF_INET6 => find(2).or(find(1)),
                    _ => return Err(Errno::EOPNOTSUPP),
                };
                let ip: IpAddr = match (family, raw) {
                    (libc::AF_INET, Some(v)) if v.len() >= 4 => {
                        IpAddr::from([v[0], v[1], v[2], v[3]])
                    }
                    (libc::AF_INET6, Some(v)) if v.len() >= 16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(&v[..16]);
                        IpAddr::from(a)
                    }
                    _ => return Err(Errno::EINVAL),
                };
                if index != LO_INDEX {
                    return Err(
                        if iflist::links(&self.net).iter().any(|l| l.index == index) {
                            Errno::EOPNOTSUPP
                        } else {
                            Errno::ENODEV
                        },
                    );
                }
                self.net.change_lo(|lo| {
                    if kind == RTM_DELADDR {
                        lo.remove(ip, (prefix != 0).then_some(prefix))
                    } else {
                        let replace = flags & NLM_F_REPLACE != 0 && flags & NLM_F_EXCL == 0;
                        lo.add(ip, prefix, replace)
                    }
                })
            }
            RTM_NEWLINK => {
                // ifinfomsg: family, type, index, flags, change.
                if body.len() < 16 {
                    return Err(Errno::EINVAL);
                }
                let index = i32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                let want = u32::from_le_bytes([body[8], body[9], body[10], body[11]]);
                let change = u32::from_le_bytes([body[12], body[13], body[14], body[15]]);
                let attrs = attr_list(&body[16..]).ok_or(Errno::EINVAL)?;
                let name = body.get(16..).and_then(ifname_attr);
                let link = iflist::links(&self.net).into_iter().find(|l| {
                    index == l.index as i32
                        || (index == 0 && name.as_deref() == Some(l.name.as_bytes()))
                });
                let Some(link) = link else {
                    // Making links (veth, bridges...) is not supported.
                    return Err(if flags & NLM_F_CREATE != 0 {
                        Errno::EOPNOTSUPP
                    } else {
                        Errno::ENODEV
                    });
                };
                if link.index != LO_INDEX {
                    return Err(Errno::EOPNOTSUPP);
                }
                // Besides naming the link, no attribute (MTU, address, name...)
                // can be changed.
                if attrs.iter().any(|(t, _)| !matches!(*t, 3 | 29)) {
                    return Err(Errno::EOPNOTSUPP);
                }
                if want == 0 && change == 0 {
                    return Ok(());
                }
                // `ifi_change` 0 means every flag (rtnl_dev_combine_flags).
                let mask = if change == 0 { u32::MAX } else { change };
                let new = (want & mask) | (link.flags & !mask);
                if (new ^ link.flags) & IFF_CHANGEABLE & !0x1 != 0 {
                    return Err(Errno::EOPNOTSUPP);
                }
                self.net.change_lo(|lo| {
                    lo.set_up(new & 0x1 != 0);
                    Ok(())
                })
            }
            _ => Err(Errno::EOPNOTSUPP),
        }
    }

    /// `bind(2)` to `port` (0: chosen) with multicast `groups` (none supported).
    pub fn bind(&self, port: u32, groups: u32, tgid: i32) -> SysResult<()> {
        if groups != 0 {
            tracing::debug!(groups, "netlink multicast groups are not supported");
            return Err(Errno::EPERM);
        }
        let mut st = self.lock()?;
        self.autobind(&mut st, port, tgid)
    }

    /// The port id (`getsockname`'s `nl_pid`).
    pub fn port(&self) -> u32 {
        self.lock().map(|s| s.port).unwrap_or(0)
    }

    /// Takes the requests in `data` and queues their answers.
    pub fn send(&self, data: &[u8], tgid: i32, net_admin: bool) -> SysResult<usize> {
        let refs = NsRefs {
            fd_path: &|_| None,
            pid_exists: &|_| false,
        };
        self.send_with(data, tgid, net_admin, &refs)
    }

    /// [`NetlinkSocket::send`], with `refs` resolving the sender's descriptors and
    /// process ids (`RTM_GETNSID` names a namespace by one).
    pub fn send_with(
        &self,
        data: &[u8],
        tgid: i32,
        net_admin: bool,
        refs: &NsRefs<'_>,
    ) -> SysResult<usize> {
        let mut st = self.lock()?;
        self.autobind(&mut st, 0, tgid)?;
        let port = st.port;
        let strict = st.strict;
        let mut off = 0;
        let mut reply = Vec::new();
        // Datagrams queued before `reply` (the host's answers in host mode, cut as
        // the host cuts them).
        let mut datagrams: Vec<Vec<u8>> = Vec::new();
        let host_view = self.net.host_view();
        while off + NLMSG_HDRLEN <= data.len() {
            let h = &data[off..];
            let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
            if len < NLMSG_HDRLEN || off + len > data.len() {
                break;
            }
            let kind = u16::from_le_bytes([h[4], h[5]]);
            let flags = u16::from_le_bytes([h[6], h[7]]);
            let seq = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
            let body = &h[NLMSG_HDRLEN..len];
            let answer = |reply: &mut Vec<u8>, msgs: Vec<Vec<u8>>, err: i32| {
                for m in msgs {
                    reply.extend_from_slice(&m);
                }
                if err != 0 || flags & NLM_F_ACK != 0 {
                    let mut e = err.to_le_bytes().to_vec();
                    e.extend_from_slice(&h[..NLMSG_HDRLEN]);
                    reply.extend_from_slice(&message(NLMSG_ERROR, 0, seq, port, &e));
                }
            };
            let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
            if flags & NLM_F_REQUEST == 0 {
                // Linux ignores messages that are not requests.
            } else if self.proto == libc::NETLINK_SOCK_DIAG {
                let who = diag::Asker { net_admin };
                match diag::request(&self.net, self.unix.as_ref(), kind, flags, body, who) {
                    Ok(a) if a.dump => {
                        // A dump: its messages, cut into datagrams as Linux's
                        // `netlink_dump` fills one buffer at a time, then DONE;
                        // never acknowledged.
                        for b in a.msgs {
                            let m = message(kind, NLM_F_MULTI, seq, port, &b);
                            if !reply.is_empty() && reply.len() + m.len() > DUMP_CHUNK {
                                datagrams.push(std::mem::take(&mut reply));
                            }
                            reply.extend_from_slice(&m);
                        }
                        let done = message(
                            NLMSG_DONE,
                            NLM_F_MULTI,
                            seq,
                            port,
                            &a.done_err.to_le_bytes(),
                        );
                        if !reply.is_empty() && reply.len() + done.len() > DUMP_CHUNK {
                            datagrams.push(std::mem::take(&mut reply));
                        }
                        reply.extend_from_slice(&done);
                    }
                    Ok(a) => {
                        let msgs = a
                            .msgs
                            .iter()
                            .map(|b| message(kind, 0, seq, port, b))
                            .collect();
                        answer(&mut reply, msgs, 0);
                    }
                    Err(e) => answer(&mut reply, Vec::new(), -e.0),
                }
            } else if host_view
                && (matches!(
                    kind,
                    RTM_GETLINK | RTM_GETADDR | RTM_GETROUTE | RTM_GETNEIGH | RTM_GETRULE
                ) && dump
                    || kind == RTM_GETLINK)
            {
                // Host mode: the host's own answer (net::hostview).
                let index = if strict && kind == RTM_GETADDR {
                    dump_index(body)
                } else {
                    0
                };
                match crate::net::hostview::answer(h, body, dump, port, index) {
                    Ok(a) => {
                        if !reply.is_empty() {
                            datagrams.push(std::mem::take(&mut reply));
                        }
                        datagrams.extend(a.datagrams);
                        answer(&mut reply, Vec::new(), a.error);
                    }
                    Err(e) => answer(&mut reply, Vec::new(), -e.0),
                }
            } else if flags & NLM_F_DUMP == NLM_F_DUMP && kind % 4 == 2 {
                let family = body.first().copied().unwrap_or(0);
                let bodies: Vec<(u16, Vec<u8>)> = match kind {
                    RTM_GETLINK => {
                        if family == 0 || family == libc::AF_PACKET as u8 {
                            iflist::links(&self.net)
                                .iter()
                                .map(|l| (RTM_NEWLINK, link_body(l)))
                                .collect()
                        } else {
                            Vec::new()
                        }
                    }
                    RTM_GETADDR => {
                        addr_bodies(&self.net, family, if strict { dump_index(body) } else { 0 })
                            .into_iter()
                            .map(|b| (RTM_NEWADDR, b))
                            .collect()
                    }
                    RTM_GETROUTE => route_bodies(&self.net, family)
                        .into_iter()
                        .map(|b| (RTM_NEWROUTE, b))
                        .collect(),
                    RTM_GETRULE => rule_bodies(family)
                        .into_iter()
                        .map(|b| (RTM_NEWRULE, b))
                        .collect(),
                    // Neighbours, qdiscs...: none to report.
                    _ => Vec::new(),
                };
                let mut msgs: Vec<Vec<u8>> = bodies
                    .into_iter()
                    .map(|(k, b)| message(k, NLM_F_MULTI, seq, port, &b))
                    .collect();
                msgs.push(message(
                    NLMSG_DONE,
                    NLM_F_MULTI,
                    seq,
                    port,
                    &0i32.to_le_bytes(),
                ));
                answer(&mut reply, msgs, 0);
            } else if kind == RTM_GETLINK {
                let index = if body.len() >= 8 {
                    i32::from_le_bytes([body[4], body[5], body[6], body[7]])
                } else {
                    0
                };
                let name = body.get(16..).and_then(ifname_attr);
                let link = iflist::links(&self.net).into_iter().find(|l| {
                    index == l.index as i32
                        || (index == 0 && name.as_deref() == Some(l.name.as_bytes()))
                });
                match link {
                    Some(l) => answer(
                        &mut reply,
                        vec![message(RTM_NEWLINK, 0, seq, port, &link_body(&l))],
                        0,
                    ),
                    None => answer(&mut reply, Vec::new(), -libc::ENODEV),
                }
            } else if kind == RTM_GETNSID {
                match nsid_request(body, host_view, refs) {
                    Ok(id) => {
                        let mut b = vec![0u8; 4]; // rtgenmsg: AF_UNSPEC
                        put_attr(&mut b, 1, &id.to_le_bytes()); // NETNSA_NSID
                        answer(&mut reply, vec![message(RTM_NEWNSID, 0, seq, port, &b)], 0)
                    }
                    Err(e) => answer(&mut reply, Vec::new(), -e.0),
                }
            } else if kind % 4 == 2 {
                // A single GET of an address or route.
                answer(&mut reply, Vec::new(), -libc::EOPNOTSUPP);
            } else if (16..=127).contains(&kind) {
                let e = if !net_admin {
                    libc::EPERM
                } else if host_view {
                    // The host's interfaces are read-only.
                    libc::EOPNOTSUPP
                } else {
                    match self.change(kind, flags, body) {
                        Ok(()) => 0,
                        Err(e) => e.0,
                    }
                };
                if e != 0 {
                    tracing::debug!(kind, e, "netlink route change refused");
                }
                answer(&mut reply, Vec::new(), -e);
            } else {
                answer(&mut reply, Vec::new(), -libc::EOPNOTSUPP);
            }
            off += (len + 3) & !3;
        }
        if !reply.is_empty() {
            datagrams.push(reply);
        }
        for d in datagrams {
            if st.queued + d.len() > QUEUE_MAX {
                st.err = Some(Errno::ENOBUFS);
                break;
            }
            st.queued += d.len();
            st.queue.push_back(d);
        }
        drop(st);
        self.wq.notify_all();
        Ok(data.len())
    }

    /// The next answer, up to `len` bytes of it: (bytes, its full length).
    pub fn recv(&self, len: usize, peek: bool) -> SysResult<(Vec<u8>, usize)> {
        let mut st = self.lock()?;
        if let Some(e) = st.err.take() {
            return Err(e);
        }
        let Some(front) = st.queue.front() else {
            return Err(Errno::EAGAIN);
        };
        let full = front.len();
        let out = front[..len.min(full)].to_vec();
        if !peek {
            st.queue.pop_front();
            st.queued -= full;
        }
        Ok((out, full))
    }

    /// `setsockopt(2)`.
    pub fn setsockopt(&self, level: i32, name: i32, v: i32) -> SysResult<()> {
        let mut st = self.lock()?;
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_RCVBUF | libc::SO_RCVBUFFORCE) => {
                st.rcvbuf = (v.clamp(0, 212_992) * 2).max(2304)
            }
            (libc::SOL_SOCKET, libc::SO_SNDBUF | libc::SO_SNDBUFFORCE) => {
                st.sndbuf = (v.clamp(0, 212_992) * 2).max(4608)
            }
            // NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK: kept; answers carry no
            // extended attributes either way.
            (libc::SOL_NETLINK, 11) => st.ext_ack = v != 0,
            (libc::SOL_NETLINK, 12) => st.strict = v != 0,
            _ => return Err(Errno::ENOPROTOOPT),
        }
        Ok(())
    }

    /// `getsockopt(2)` of an int option.
    pub fn getsockopt(&self, level: i32, name: i32) -> SysResult<i32> {
        let st = self.lock()?;
        Ok(match (level, name) {
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => st.rcvbuf,
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => st.sndbuf,
            (libc::SOL_SOCKET, libc::SO_TYPE) => libc::SOCK_RAW,
            (libc::SOL_SOCKET, libc::SO_DOMAIN) => libc::AF_NETLINK,
            (libc::SOL_SOCKET, libc::SO_PROTOCOL) => self.proto,
            (libc::SOL_SOCKET, libc::SO_ERROR) => 0,
            (libc::SOL_NETLINK, 11) => st.ext_ack as i32,
            (libc::SOL_NETLINK, 12) => st.strict as i32,
            _ => return Err(Errno::ENOPROTOOPT),
        })
    }

    /// The queue readers wait on.
    pub fn queue(&self) -> &WaitQueue {
        &self.wq
    }
}

impl FileImpl for NetlinkSocket {
    fn read(&self, buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        let (d, _) = self.recv(buf.len(), false)?;
        buf[..d.len()].copy_from_slice(&d);
        Ok(d.len())
    }

    fn write(&self, buf: &[u8], _offset: u64) -> SysResult<usize> {
        self.send(buf, 0, false)
    }

    fn seekable(&self) -> bool {
        false
    }

    fn stat(&self) -> SysResult<Stat> {
        Ok(Stat {
            dev: SOCKFS_DEV,
            ino: self.ino,
            mode: libc::S_IFSOCK | 0o777,
            nlink: 1,
            blksize: 4096,
            ..Default::default()
        })
    }

    fn readiness(&self) -> u32 {
        let Ok(st) = self.lock() else {
            return libc::POLLERR as u32;
        };
        let mut r = (libc::POLLOUT | libc::POLLWRNORM) as u32;
        if !st.queue.is_empty() {
            r |= (libc::POLLIN | libc::POLLRDNORM) as u32;
        }
        if st.err.is_some() {
            r |= libc::POLLERR as u32;
        }
        r
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.wq)
    }

    fn ioctl(&self, req: u64, arg: u64, mem: &dyn crate::platform::AddressSpace) -> SysResult<u64> {
        crate::net::ifreq::ioctl(Some(&self.net), req, arg, mem)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_dump_and_done() {
        let s = NetlinkSocket::new(&Netstack::new());
        let mut req = message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 7, 0, &[0u8; 16]);
        req.extend_from_slice(&message(
            RTM_GETADDR,
            NLM_F_REQUEST | NLM_F_DUMP,
            8,
            0,
            &[2, 0, 0, 0, 0, 0, 0, 0],
        ));
        s.send(&req, 0, false).unwrap();
        let (d, full) = s.recv(1 << 16, false).unwrap();
        assert_eq!(d.len(), full);
        let kinds: Vec<u16> = {
            let mut v = Vec::new();
            let mut off = 0;
            while off + 16 <= d.len() {
                let len = u32::from_le_bytes(d[off..off + 4].try_into().unwrap()) as usize;
                v.push(u16::from_le_bytes([d[off + 4], d[off + 5]]));
                off += (len + 3) & !3;
            }
            v
        };
        assert_eq!(
            kinds,
            vec![RTM_NEWLINK, NLMSG_DONE, RTM_NEWADDR, NLMSG_DONE]
        );
        assert_eq!(s.recv(10, false).err(), Some(Errno::EAGAIN));
    }
}
