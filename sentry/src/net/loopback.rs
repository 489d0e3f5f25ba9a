//! The loopback interface `lo`: MTU 65536, 127.0.0.1/8 and ::1 while it is up.
//! With `--network=none` it is the sandbox's only interface, so every destination
//! that is not one of its addresses is unreachable.
//!
//! The sandbox's first network namespace starts with `lo` up and addressed, as a
//! container's does. A network namespace made inside the sandbox starts, as on
//! Linux, with `lo` down and without addresses: nothing is local and every
//! destination is unreachable until a program brings it up (`ip link set lo up`,
//! which adds 127.0.0.1/8 and ::1 as Linux's `NETDEV_UP` handlers do) or adds
//! addresses itself (bubblewrap does both through netlink).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::errno::{Errno, SysResult};
use crate::net::Interface;

/// Interface index of `lo`, as on Linux.
pub const LO_INDEX: u32 = 1;
/// MTU of `lo`.
pub const LO_MTU: u32 = 65536;

/// What can change of `lo`: whether it is up, and its addresses (with prefix
/// lengths) in the order they were added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoConfig {
    /// `IFF_UP`.
    pub up: bool,
    /// IPv4 addresses.
    pub v4: Vec<(Ipv4Addr, u8)>,
    /// IPv6 addresses.
    pub v6: Vec<(Ipv6Addr, u8)>,
    /// It has been up once (its queueing discipline is then `noqueue`, before
    /// `noop`).
    pub was_up: bool,
    /// An IPv4 address has been added once (Linux then has a local table).
    pub had_v4: bool,
}

impl LoConfig {
    /// `lo` of a container: up, 127.0.0.1/8 and ::1/128.
    pub fn configured() -> LoConfig {
        LoConfig {
            up: true,
            v4: vec![(Ipv4Addr::LOCALHOST, 8)],
            v6: vec![(Ipv6Addr::LOCALHOST, 128)],
            was_up: true,
            had_v4: true,
        }
    }

    /// `lo` of a new network namespace: down, no addresses.
    pub fn fresh() -> LoConfig {
        LoConfig {
            up: false,
            v4: Vec::new(),
            v6: Vec::new(),
            was_up: false,
            had_v4: false,
        }
    }

    /// No IPv4 address was ever added: Linux has no local routing table yet.
    pub fn v4_table_missing(&self) -> bool {
        !self.had_v4
    }

    /// Brings the interface up or down. Up adds 127.0.0.1/8 and ::1 when they are
    /// missing (Linux's `inetdev_event` and `addrconf_notify` for a loopback
    /// device); down drops the IPv6 addresses (`addrconf_ifdown`) and keeps the
    /// IPv4 ones, whose routes go away with the link.
    pub fn set_up(&mut self, up: bool) {
        if up == self.up {
            return;
        }
        self.up = up;
        if up {
            self.was_up = true;
            self.had_v4 = true;
            if !self
                .v4
                .iter()
                .any(|&(a, p)| a == Ipv4Addr::LOCALHOST && p == 8)
            {
                self.v4.push((Ipv4Addr::LOCALHOST, 8));
            }
            if !self.v6.iter().any(|&(a, _)| a == Ipv6Addr::LOCALHOST) {
                self.v6.insert(0, (Ipv6Addr::LOCALHOST, 128));
            }
        } else {
            self.v6.clear();
        }
    }

    /// Adds `ip`/`prefix`; `EEXIST` when the address is there already, unless
    /// `replace` (which then takes the new prefix).
    pub fn add(&mut self, ip: IpAddr, prefix: u8, replace: bool) -> SysResult<()> {
        match ip {
            IpAddr::V4(a) => {
                if prefix > 32 {
                    return Err(Errno::EINVAL);
                }
                // Linux matches an IPv4 address by address and mask.
                match self.v4.iter_mut().find(|(x, p)| *x == a && *p == prefix) {
                    Some(_) if !replace => return Err(Errno::EEXIST),
                    Some(_) => {}
                    None => self.v4.push((a, prefix)),
                }
                self.had_v4 = true;
            }
            IpAddr::V6(a) => {
                if prefix > 128 {
                    return Err(Errno::EINVAL);
                }
                match self.v6.iter_mut().find(|(x, _)| *x == a) {
                    Some(_) if !replace => return Err(Errno::EEXIST),
                    Some(e) => e.1 = prefix,
                    None => self.v6.push((a, prefix)),
                }
            }
        }
        Ok(())
    }

    /// Removes `ip` (with `prefix`, when given); `EADDRNOTAVAIL` when it is not
    /// there.
    pub fn remove(&mut self, ip: IpAddr, prefix: Option<u8>) -> SysResult<()> {
        let before = self.v4.len() + self.v6.len();
        match ip {
            IpAddr::V4(a) => {
                if let Some(i) = self
                    .v4
                    .iter()
                    .position(|&(x, p)| x == a && prefix.is_none_or(|q| q == p))
                {
                    self.v4.remove(i);
                }
            }
            IpAddr::V6(a) => self.v6.retain(|&(x, _)| x != a),
        }
        if self.v4.len() + self.v6.len() == before {
            return Err(Errno::EADDRNOTAVAIL);
        }
        Ok(())
    }

    /// The IPv4 address whose local route covers `a`: on a loopback device the
    /// route of an address's whole prefix is local (`fib_add_ifaddr`).
    fn v4_covering(&self, a: Ipv4Addr) -> Option<Ipv4Addr> {
        if !self.up {
            return None;
        }
        self.v4.iter().find_map(|&(x, p)| {
            let mask = u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0);
            (u32::from(x) & mask == u32::from(a) & mask).then_some(x)
        })
    }
}

/// `lo`, with its state shared with the stack that holds it.
pub struct Loopback(Arc<Mutex<LoConfig>>);

impl Loopback {
    /// `lo` in state `cfg`, and the handle to change it by.
    pub fn new(cfg: LoConfig) -> (Loopback, Arc<Mutex<LoConfig>>) {
        let st = Arc::new(Mutex::new(cfg));
        (Loopback(st.clone()), st)
    }

    fn cfg(&self) -> Option<MutexGuard<'_, LoConfig>> {
        self.0.lock().ok()
    }
}

impl Interface for Loopback {
    fn name(&self) -> &str {
        "lo"
    }

    fn index(&self) -> u32 {
        LO_INDEX
    }

    fn mtu(&self) -> u32 {
        LO_MTU
    }

    fn is_local(&self, ip: IpAddr) -> bool {
        let Some(c) = self.cfg() else {
            return false;
        };
        match ip {
            IpAddr::V4(v4) => c.v4_covering(v4).is_some(),
            IpAddr::V6(v6) => c.up && c.v6.iter().any(|&(a, _)| a == v6),
        }
    }

    fn source_for(&self, dst: IpAddr) -> SysResult<IpAddr> {
        let c = self.cfg().ok_or(Errno::EIO)?;
        match dst {
            // The kernel's local route for 127/8 carries `src 127.0.0.1`.
            IpAddr::V4(v4) => c.v4_covering(v4).map(IpAddr::V4).ok_or(Errno::ENETUNREACH),
            IpAddr::V6(v6) if c.up && c.v6.iter().any(|&(a, _)| a == v6) => Ok(dst),
            // Without any IPv6 address there is no source address to pick (Linux's
            // `ip6_dst_lookup` in a new namespace, whatever the destination).
            IpAddr::V6(_) if c.v6.is_empty() => Err(Errno::EADDRNOTAVAIL),
            _ => Err(Errno::ENETUNREACH),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_lo_is_down_until_brought_up() {
        let (lo, st) = Loopback::new(LoConfig::fresh());
        let l4 = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5));
        assert!(!lo.is_local(l4));
        assert_eq!(lo.source_for(l4), Err(Errno::ENETUNREACH));
        st.lock()
            .unwrap()
            .add(IpAddr::V4(Ipv4Addr::LOCALHOST), 8, false)
            .unwrap();
        assert!(!lo.is_local(l4), "addresses of a down link are not local");
        st.lock().unwrap().set_up(true);
        assert!(lo.is_local(l4));
        assert_eq!(lo.source_for(l4), Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(lo.is_local(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        let c = st.lock().unwrap().clone();
        assert_eq!(c.v4.len(), 1, "up does not add 127.0.0.1/8 twice");
        assert_eq!(
            st.lock()
                .unwrap()
                .add(IpAddr::V4(Ipv4Addr::LOCALHOST), 8, false),
            Err(Errno::EEXIST)
        );
        st.lock().unwrap().set_up(false);
        assert!(!lo.is_local(l4));
        assert_eq!(st.lock().unwrap().v4.len(), 1);
        assert!(st.lock().unwrap().v6.is_empty());
    }
}
