//! `--network=sandbox`: taking over the container's network interface before the
//! sentry starts.
//!
//! In the container's network namespace (the spec's `linux.namespaces` path, or the
//! CLI's own for `do`) this reads the interface's MAC, MTU, addresses and default
//! gateways, opens an `AF_PACKET` socket bound to it (`ETH_P_ALL`), and removes the
//! addresses from the host kernel's side of it, so the kernel neither answers ARP
//! for them nor resets connections meant for the sandbox: from then on the sentry's
//! userspace stack owns them and the kernel only carries frames (as runsc does). The
//! addresses (and default routes) are given back when the sandbox ends
//! ([`restore`]), so a namespace outliving one sandbox (`do` run twice, a container
//! restarted in its pod) can be attached again.
//!
//! The work runs on a thread of its own: a network namespace is per thread, so
//! `setns` there leaves the CLI where it was, and `/proc/thread-self/net` shows
//! the namespace joined.

use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sentry::config::{BootConfig, NetDevConfig};

/// The network namespace `do --network=sandbox` attaches to: the CLI's own.
pub const OWN_NETNS: &str = "/proc/self/ns/net";

/// The pod annotation that lets a sandbox reach the cloud metadata server.
pub const METADATA_ANNOTATION: &str = "dev.rvisor.metadata";

/// Whether the metadata server stays reachable: `--allow-metadata`, or the
/// annotation set to `allow`.
pub fn metadata_allowed(g: &crate::cli::GlobalOpts, spec: &oci_spec::runtime::Spec) -> bool {
    g.allow_metadata
        || spec
            .annotations()
            .as_ref()
            .and_then(|a| a.get(METADATA_ANNOTATION))
            .is_some_and(|v| v == "allow")
}

/// Fills `config.netdev` for `--network=sandbox` and returns the packet socket for
/// `boot --net-fd`. Without a namespace path (a bundle asking for a new, empty
/// namespace) the sandbox has loopback only.
pub fn attach(config: &mut BootConfig) -> Result<Option<OwnedFd>> {
    if config.network != "sandbox" {
        return Ok(None);
    }
    let Some(path) = config.netns_path.clone() else {
        tracing::info!("--network=sandbox: no network namespace path; loopback only");
        return Ok(None);
    };
    let path = PathBuf::from(path);
    refuse_host_netns(&path)?;
    let found = std::thread::spawn(move || in_netns(&path))
        .join()
        .map_err(|_| anyhow::anyhow!("--network=sandbox: the attach thread panicked"))??;
    match found {
        Some((fd, dev)) => {
            tracing::info!(iface = %dev.name, addrs = ?dev.addrs, gateway4 = ?dev.gateway4,
                "--network=sandbox: interface taken over");
            config.netdev = Some(dev);
            Ok(Some(fd))
        }
        None => {
            tracing::info!("--network=sandbox: no interface besides lo; loopback only");
            Ok(None)
        }
    }
}

/// Taking the addresses of the host's own interfaces would cut the node off:
/// refuse the namespace of pid 1. `do`'s own namespace must also be known not to be
/// the host's: pid 1's differs, or it is a named namespace (`ip netns`, CNI's
/// `/run/netns/*`); where pid 1's cannot be read (a container's own pid 1 under
/// another owner), only the named one is taken.
fn refuse_host_netns(path: &Path) -> Result<()> {
    let ns = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    let id = (ns.dev(), ns.ino());
    let init = std::fs::metadata("/proc/1/ns/net")
        .ok()
        .map(|m| (m.dev(), m.ino()));
    let refuse = || {
        anyhow::anyhow!(
            "--network=sandbox: {} may be the host's network namespace; the sandbox would take over the host's interface. Run it in the container's namespace (e.g. ip netns exec NAME rvisor ...), or use --network=none",
            path.display()
        )
    };
    if init == Some(id) {
        return Err(refuse());
    }
    if path != Path::new(OWN_NETNS) || init.is_some() {
        return Ok(());
    }
    let named = ["/run/netns", "/var/run/netns"].iter().any(|d| {
        std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| std::fs::metadata(e.path()).is_ok_and(|m| (m.dev(), m.ino()) == id))
    });
    if named {
        Ok(())
    } else {
        Err(refuse())
    }
}

fn join(path: &Path) -> Result<()> {
    let f = File::open(path).with_context(|| format!("open {}", path.display()))?;
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("setns {}", path.display()))?;
    Ok(())
}

/// Calls [`restore`] when dropped.
pub struct GiveBack(pub BootConfig);

impl Drop for GiveBack {
    fn drop(&mut self) {
        restore(&self.0);
    }
}

/// Gives the interface's addresses and default routes back to the host kernel
/// once the sandbox has ended (failures are logged: the sandbox is over either way).
pub fn restore(config: &BootConfig) {
    let (Some(dev), Some(path)) = (config.netdev.clone(), config.netns_path.clone()) else {
        return;
    };
    let r = std::thread::spawn(move || -> Result<()> {
        join(Path::new(&path))?;
        let ctl = Ctl::new()?;
        let index = ctl.index(&dev.name)?;
        for a in &dev.addrs {
            let Some((ip, prefix)) = a.split_once('/') else {
                continue;
            };
            let prefix: u8 = prefix.parse().unwrap_or(0);
            match ip.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(ip)) => ctl.set_addr4(&dev.name, ip, prefix)?,
                Ok(std::net::IpAddr::V6(ip)) => ctl.addr6(libc::SIOCSIFADDR, index, ip, prefix)?,
                Err(_) => {}
            }
        }
        if let Some(g) = dev.gateway4.as_deref().and_then(|g| g.parse().ok()) {
            ctl.add_default4(&dev.name, g)?;
        }
        Ok(())
    })
    .join();
    match r {
        Ok(Ok(())) => tracing::info!("--network=sandbox: interface given back"),
        Ok(Err(e)) => tracing::warn!("--network=sandbox: giving the interface back: {e:#}"),
        Err(_) => tracing::warn!("--network=sandbox: giving the interface back: thread panicked"),
    }
}

fn in_netns(path: &Path) -> Result<Option<(OwnedFd, NetDevConfig)>> {
    join(path)?;
    let ctl = Ctl::new()?;
    let dev = std::fs::read_to_string("/proc/thread-self/net/dev")
        .context("read /proc/thread-self/net/dev")?;
    let names: Vec<String> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_string()))
        .collect();
    let mut candidates = Vec::new();
    for n in names {
        let flags = ctl.flags(&n)?;
        if flags & libc::IFF_LOOPBACK == 0 {
            candidates.push(n);
        }
    }
    let Some(name) = candidates.first().cloned() else {
        return Ok(None);
    };
    if candidates.len() > 1 {
        tracing::warn!(
            ?candidates,
            "--network=sandbox: several interfaces; only {name} is attached"
        );
    }
    let index = ctl.index(&name)?;
    let mac = ctl.mac(&name)?;
    let mtu = ctl.mtu(&name)?;
    let mut addrs = Vec::new();
    let v4 = ctl.addr4(&name);
    if let Some((ip, prefix)) = v4 {
        addrs.push(format!("{ip}/{prefix}"));
    }
    let v6 = read_v6_addrs(&name);
    for (ip, prefix) in &v6 {
        addrs.push(format!("{ip}/{prefix}"));
    }
    let gateway4 = read_gateway4(&name).map(|g| g.to_string());
    let gateway6 = read_gateway6(&name).map(|g| g.to_string());
    let (fd, vnet_hdr) = open_packet_socket(index)?;
    // Only now that everything is read: the kernel lets go of the addresses.
    if v4.is_some() {
        ctl.clear_addr4(&name)?;
    }
    for (ip, prefix) in &v6 {
        ctl.addr6(libc::SIOCDIFADDR, index, *ip, *prefix)?;
    }
    Ok(Some((
        fd,
        NetDevConfig {
            name,
            mac,
            mtu,
            addrs,
            gateway4,
            gateway6,
            vnet_hdr,
        },
    )))
}

/// Sockets for interface ioctls, made in the joined namespace.
struct Ctl {
    v4: OwnedFd,
    v6: Option<OwnedFd>,
}

fn socket(family: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: no pointer arguments.
    let fd = unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor this thread owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq(name: &str) -> Result<libc::ifreq> {
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    let b = name.as_bytes();
    if b.len() >= r.ifr_name.len() {
        bail!("interface name {name:?} too long");
    }
    for (d, s) in r.ifr_name.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    Ok(r)
}

impl Ctl {
    fn new() -> Result<Ctl> {
        Ok(Ctl {
            v4: socket(libc::AF_INET).context("socket(AF_INET)")?,
            v6: socket(libc::AF_INET6).ok(),
        })
    }

    fn ioctl(&self, fd: &OwnedFd, req: libc::c_ulong, r: &mut libc::ifreq) -> std::io::Result<()> {
        // SAFETY: r is a live ifreq, the argument every request used here takes.
        if unsafe { libc::ioctl(fd.as_raw_fd(), req, r as *mut libc::ifreq) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    fn get(&self, name: &str, req: libc::c_ulong, what: &str) -> Result<libc::ifreq> {
        let mut r = ifreq(name)?;
        self.ioctl(&self.v4, req, &mut r)
            .with_context(|| format!("{what} of {name}"))?;
        Ok(r)
    }

    fn flags(&self, name: &str) -> Result<i32> {
        let r = self.get(name, libc::SIOCGIFFLAGS, "flags")?;
        // SAFETY: SIOCGIFFLAGS filled the flags member.
        Ok(unsafe { r.ifr_ifru.ifru_flags } as i32)
    }

    fn index(&self, name: &str) -> Result<i32> {
        let r = self.get(name, libc::SIOCGIFINDEX, "index")?;
        // SAFETY: SIOCGIFINDEX filled the index member.
        Ok(unsafe { r.ifr_ifru.ifru_ifindex })
    }

    fn mtu(&self, name: &str) -> Result<u32> {
        let r = self.get(name, libc::SIOCGIFMTU, "MTU")?;
        // SAFETY: SIOCGIFMTU filled the mtu member.
        Ok(unsafe { r.ifr_ifru.ifru_mtu } as u32)
    }

    fn mac(&self, name: &str) -> Result<[u8; 6]> {
        let r = self.get(name, libc::SIOCGIFHWADDR, "MAC address")?;
        // SAFETY: SIOCGIFHWADDR filled the hwaddr member.
        let sa = unsafe { r.ifr_ifru.ifru_hwaddr };
        if sa.sa_family != libc::ARPHRD_ETHER {
            bail!("--network=sandbox: {name} is not an Ethernet interface");
        }
        let mut mac = [0u8; 6];
        for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
            *m = *b as u8;
        }
        Ok(mac)
    }

    fn sin(r: &libc::ifreq) -> Ipv4Addr {
        // SAFETY: the request filled the addr member with a sockaddr_in, which fits
        // in the union and has no invalid bit patterns.
        let sa: libc::sockaddr_in = unsafe {
            std::ptr::read_unaligned((&r.ifr_ifru.ifru_addr as *const libc::sockaddr).cast())
        };
        Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr))
    }

    fn addr4(&self, name: &str) -> Option<(Ipv4Addr, u8)> {
        let a = self.get(name, libc::SIOCGIFADDR, "address").ok()?;
        let m = self.get(name, libc::SIOCGIFNETMASK, "netmask").ok()?;
        Some((Self::sin(&a), u32::from(Self::sin(&m)).count_ones() as u8))
    }

    /// Removes the interface's IPv4 addresses (setting 0.0.0.0 deletes one).
    fn clear_addr4(&self, name: &str) -> Result<()> {
        for _ in 0..64 {
            if self.addr4(name).is_none() {
                return Ok(());
            }
            let mut r = ifreq(name)?;
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr { s_addr: 0 },
                sin_zero: [0; 8],
            };
            // SAFETY: a sockaddr_in fits in the union's sockaddr.
            unsafe {
                std::ptr::write_unaligned(
                    (&mut r.ifr_ifru.ifru_addr as *mut libc::sockaddr).cast(),
                    sin,
                )
            };
            self.ioctl(&self.v4, libc::SIOCSIFADDR, &mut r)
                .with_context(|| format!("--network=sandbox: remove the address of {name}"))?;
        }
        bail!("--network=sandbox: {name} keeps IPv4 addresses")
    }

    fn set4(&self, name: &str, req: libc::c_ulong, ip: Ipv4Addr) -> Result<()> {
        let mut r = ifreq(name)?;
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: a sockaddr_in fits in the union's sockaddr.
        unsafe {
            std::ptr::write_unaligned(
                (&mut r.ifr_ifru.ifru_addr as *mut libc::sockaddr).cast(),
                sin,
            )
        };
        self.ioctl(&self.v4, req, &mut r)
            .with_context(|| format!("set {ip} on {name}"))
    }

    fn set_addr4(&self, name: &str, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        self.set4(name, libc::SIOCSIFADDR, ip)?;
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        self.set4(name, libc::SIOCSIFNETMASK, Ipv4Addr::from(mask))
    }

    fn add_default4(&self, name: &str, gw: Ipv4Addr) -> Result<()> {
        let sin = |ip: Ipv4Addr| {
            let s = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(ip).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in and sockaddr have the same size; plain data.
            unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(s) }
        };
        let mut dev: Vec<u8> = name.bytes().chain([0]).collect();
        // SAFETY: rtentry is plain data (and a null pointer); all-zero is valid.
        let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
        rt.rt_dst = sin(Ipv4Addr::UNSPECIFIED);
        rt.rt_genmask = sin(Ipv4Addr::UNSPECIFIED);
        rt.rt_gateway = sin(gw);
        rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
        rt.rt_dev = dev.as_mut_ptr().cast();
        // SAFETY: rt is a live rtentry whose rt_dev points to a NUL-terminated name
        // that outlives the call.
        if unsafe {
            libc::ioctl(
                self.v4.as_raw_fd(),
                libc::SIOCADDRT,
                &mut rt as *mut libc::rtentry,
            )
        } < 0
        {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(e).context(format!("default route via {gw}"));
            }
        }
        Ok(())
    }

    /// Adds (`SIOCSIFADDR`) or deletes (`SIOCDIFADDR`) an IPv6 address.
    fn addr6(&self, req: libc::c_ulong, index: i32, ip: Ipv6Addr, prefix: u8) -> Result<()> {
        #[repr(C)]
        struct In6Ifreq {
            addr: libc::in6_addr,
            prefixlen: u32,
            ifindex: i32,
        }
        let Some(fd) = &self.v6 else {
            return Ok(());
        };
        let mut r = In6Ifreq {
            addr: libc::in6_addr {
                s6_addr: ip.octets(),
            },
            prefixlen: u32::from(prefix),
            ifindex: index,
        };
        // SAFETY: r is a live in6_ifreq, what SIOCSIFADDR and SIOCDIFADDR take on
        // an AF_INET6 socket.
        if unsafe { libc::ioctl(fd.as_raw_fd(), req, &mut r as *mut In6Ifreq) } < 0 {
            let e = std::io::Error::last_os_error();
            // Already gone, or already back (a link-local address the kernel
            // re-added itself).
            if !matches!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL | libc::EEXIST)) {
                return Err(e).context(format!("--network=sandbox: {ip}/{prefix}"));
            }
        }
        Ok(())
    }
}

/// The bound packet socket, and whether it carries a `virtio_net_hdr` before each
/// frame (`PACKET_VNET_HDR`: the sentry then sends TCP bursts as GSO frames).
fn open_packet_socket(index: i32) -> Result<(OwnedFd, bool)> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: no pointer arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .context("--network=sandbox: socket(AF_PACKET) (needs CAP_NET_RAW)");
    }
    // SAFETY: fd is a new descriptor this thread owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = index;
    // SAFETY: sll is a live sockaddr_ll of the size given.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).context("--network=sandbox: bind(AF_PACKET)");
    }
    // Room for bursts both ways (the FORCE variants pass rmem_max as root); the
    // host's own frames on the interface are not wanted (Linux 4.20+). Both are
    // optimisations: failures are ignored.
    let opt = |level: i32, name: i32, v: i32| {
        // SAFETY: v is a live int of the size given.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                level,
                name,
                (&v as *const i32).cast(),
                std::mem::size_of::<i32>() as u32,
            )
        }
    };
    opt(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8 << 20);
    opt(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 8 << 20);
    opt(libc::SOL_PACKET, 23 /* PACKET_IGNORE_OUTGOING */, 1);
    // Large TCP frames the kernel cuts to the MTU (and completes checksums of), and on
    // receive the offload state of each frame.
    let vnet_hdr = opt(libc::SOL_PACKET, 15 /* PACKET_VNET_HDR */, 1) == 0;
    Ok((fd, vnet_hdr))
}

/// The default IPv4 gateway through `name` (`/proc/thread-self/net/route`).
fn read_gateway4(name: &str) -> Option<Ipv4Addr> {
    let text = std::fs::read_to_string("/proc/thread-self/net/route").ok()?;
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 8 || f[0] != name || f[1] != "00000000" || f[7] != "00000000" {
            return None;
        }
        let g = u32::from_str_radix(f[2], 16).ok()?;
        (g != 0).then(|| Ipv4Addr::from(u32::from_be(g)))
    })
}

fn hex128(s: &str) -> Option<Ipv6Addr> {
    u128::from_str_radix(s, 16).ok().map(Ipv6Addr::from)
}

/// The IPv6 addresses of `name` (`/proc/thread-self/net/if_inet6`).
fn read_v6_addrs(name: &str) -> Vec<(Ipv6Addr, u8)> {
    let Ok(text) = std::fs::read_to_string("/proc/thread-self/net/if_inet6") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 || f[5] != name {
                return None;
            }
            Some((hex128(f[0])?, u8::from_str_radix(f[2], 16).ok()?))
        })
        .collect()
}

/// The default IPv6 gateway through `name` (`/proc/thread-self/net/ipv6_route`).
fn read_gateway6(name: &str) -> Option<Ipv6Addr> {
    let text = std::fs::read_to_string("/proc/thread-self/net/ipv6_route").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 10 || f[9] != name || f[1] != "00" || hex128(f[0])? != Ipv6Addr::UNSPECIFIED {
            return None;
        }
        let g = hex128(f[4])?;
        (!g.is_unspecified()).then_some(g)
    })
}
