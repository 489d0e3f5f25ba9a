//! Internet socket addresses: parsing `sockaddr_in`/`sockaddr_in6` from the
//! application, writing them back, and the one canonical form the rest of the stack
//! compares. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is held as the IPv4
//! address it maps, so a v4 socket and a dual-stack v6 socket meet on the same key;
//! the socket's own family decides how it is shown again.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::errno::{Errno, SysResult};

/// `sizeof(struct sockaddr_in)`.
pub const SOCKADDR_IN_LEN: usize = 16;
/// `sizeof(struct sockaddr_in6)`.
pub const SOCKADDR_IN6_LEN: usize = 28;
/// The shortest `sockaddr_in6` Linux accepts (`SIN6_LEN_RFC2133`, no scope id).
const SOCKADDR_IN6_MIN: usize = 24;

/// A socket's address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// `AF_INET`.
    V4,
    /// `AF_INET6`.
    V6,
}

impl Family {
    /// The `AF_*` number.
    pub fn linux(self) -> i32 {
        match self {
            Family::V4 => libc::AF_INET,
            Family::V6 => libc::AF_INET6,
        }
    }

    /// The wildcard address of the family.
    pub fn any(self) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }
}

/// An address and port, the address in canonical form (see the module comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SockAddr {
    /// The address.
    pub ip: IpAddr,
    /// The port, host order.
    pub port: u16,
}

impl SockAddr {
    /// `ip:port` with `ip` made canonical.
    pub fn new(ip: IpAddr, port: u16) -> SockAddr {
        SockAddr {
            ip: canonical(ip),
            port,
        }
    }
}

/// Maps `::ffff:a.b.c.d` to `a.b.c.d`; everything else is left alone.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Whether `ip` is the family's wildcard (`0.0.0.0`, `::`).
pub fn is_any(ip: IpAddr) -> bool {
    ip.is_unspecified()
}

/// What an application passed as an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// `AF_UNSPEC`: `connect` dissolves an association; `bind` of a v4 socket takes
    /// it as `INADDR_ANY` when the address bytes are zero.
    Unspec {
        /// Whether the bytes after the family are an all-zero `sockaddr_in` address.
        zero: bool,
    },
    /// An address of the socket's family.
    Inet(SockAddr),
}

/// Parses the `len` bytes `b` of a socket address for a socket of `family`.
/// Errors as Linux: short addresses `EINVAL`, another family `EAFNOSUPPORT`.
pub fn parse(family: Family, b: &[u8]) -> SysResult<Parsed> {
    if b.len() < 2 {
        return Err(Errno::EINVAL);
    }
    let af = u16::from_le_bytes([b[0], b[1]]) as i32;
    match family {
        Family::V4 => {
            if b.len() < SOCKADDR_IN_LEN {
                return Err(Errno::EINVAL);
            }
            let port = u16::from_be_bytes([b[2], b[3]]);
            let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
            if af == libc::AF_UNSPEC {
                return Ok(Parsed::Unspec {
                    zero: ip.is_unspecified(),
                });
            }
            if af != libc::AF_INET {
                return Err(Errno::EAFNOSUPPORT);
            }
            Ok(Parsed::Inet(SockAddr::new(IpAddr::V4(ip), port)))
        }
        Family::V6 => {
            if af == libc::AF_UNSPEC {
                return Ok(Parsed::Unspec { zero: false });
            }
            if b.len() < SOCKADDR_IN6_MIN {
                return Err(Errno::EINVAL);
            }
            if af != libc::AF_INET6 {
                return Err(Errno::EAFNOSUPPORT);
            }
            let port = u16::from_be_bytes([b[2], b[3]]);
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[8..24]);
            Ok(Parsed::Inet(SockAddr::new(
                IpAddr::V6(Ipv6Addr::from(a)),
                port,
            )))
        }
    }
}

/// `addr` as the `sockaddr` a socket of `family` reports: a v6 socket shows an
/// IPv4 address as `::ffff:a.b.c.d`.
pub fn encode(family: Family, addr: SockAddr) -> Vec<u8> {
    match family {
        Family::V4 => {
            let mut out = vec![0u8; SOCKADDR_IN_LEN];
            out[..2].copy_from_slice(&(libc::AF_INET as u16).to_le_bytes());
            out[2..4].copy_from_slice(&addr.port.to_be_bytes());
            let ip = match addr.ip {
                IpAddr::V4(v4) => v4,
                IpAddr::V6(v6) => v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
            };
            out[4..8].copy_from_slice(&ip.octets());
            out
        }
        Family::V6 => {
            let mut out = vec![0u8; SOCKADDR_IN6_LEN];
            out[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_le_bytes());
            out[2..4].copy_from_slice(&addr.port.to_be_bytes());
            let ip = match addr.ip {
                IpAddr::V6(v6) => v6,
                IpAddr::V4(v4) if v4.is_unspecified() => Ipv6Addr::UNSPECIFIED,
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            };
            out[8..24].copy_from_slice(&ip.octets());
            out
        }
    }
}

/// What a socket is bound to: a wildcard for one or both families, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Local {
    /// `INADDR_ANY` / `in6addr_any`: every local address of the families that are set.
    Any {
        /// IPv4 addresses too (a v4 socket, or a v6 socket without `IPV6_V6ONLY`).
        v4: bool,
        /// IPv6 addresses.
        v6: bool,
    },
    /// One address (canonical).
    Ip(IpAddr),
}

impl Local {
    /// The binding a socket of `family` gets for `ip` (`v6only` as set).
    pub fn of(family: Family, ip: IpAddr, v6only: bool) -> Local {
        let ip = canonical(ip);
        if is_any(ip) {
            match (family, ip) {
                (Family::V4, _) | (Family::V6, IpAddr::V4(_)) => Local::Any {
                    v4: true,
                    v6: false,
                },
                (Family::V6, IpAddr::V6(_)) => Local::Any {
                    v4: !v6only,
                    v6: true,
                },
            }
        } else {
            Local::Ip(ip)
        }
    }

    /// Whether a packet for `dst` (canonical) reaches this binding.
    pub fn accepts(&self, dst: IpAddr) -> bool {
        match *self {
            Local::Any { v4, v6 } => match dst {
                IpAddr::V4(_) => v4,
                IpAddr::V6(_) => v6,
            },
            Local::Ip(ip) => ip == dst,
        }
    }

    /// Whether two bindings of one port could both receive the same packet.
    pub fn overlaps(&self, other: &Local) -> bool {
        match (*self, *other) {
            (Local::Any { v4, v6 }, Local::Any { v4: w4, v6: w6 }) => (v4 && w4) || (v6 && w6),
            (Local::Any { .. }, Local::Ip(ip)) => self.accepts(ip),
            (Local::Ip(ip), Local::Any { .. }) => other.accepts(ip),
            (Local::Ip(a), Local::Ip(b)) => a == b,
        }
    }

    /// Whether it names one address (not a wildcard).
    pub fn is_specific(&self) -> bool {
        matches!(self, Local::Ip(_))
    }

    /// The address `getsockname` reports.
    pub fn ip(&self, family: Family) -> IpAddr {
        match *self {
            Local::Ip(ip) => ip,
            Local::Any { .. } => family.any(),
        }
    }
}

/// Whether binding `ip` (canonical) makes an IPv6 socket IPv6-only, as Linux's
/// `inet6_bind` does for an address that is neither the wildcard nor v4-mapped.
pub fn binds_v6_only(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(a) if !a.is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_are_ipv4() {
        let v6 = encode(
            Family::V6,
            SockAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 80),
        );
        match parse(Family::V6, &v6).unwrap() {
            Parsed::Inet(a) => {
                assert_eq!(a.ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
                assert_eq!(a.port, 80);
            }
            p => panic!("{p:?}"),
        }
        assert_eq!(parse(Family::V4, &v6[..8]), Err(Errno::EINVAL));
        assert_eq!(parse(Family::V4, &v6[..16]), Err(Errno::EAFNOSUPPORT));
    }

    #[test]
    fn wildcards_overlap_by_family() {
        let any4 = Local::of(Family::V4, Family::V4.any(), false);
        let any6only = Local::of(Family::V6, Family::V6.any(), true);
        let dual = Local::of(Family::V6, Family::V6.any(), false);
        let lo = Local::of(Family::V4, IpAddr::V4(Ipv4Addr::LOCALHOST), false);
        assert!(!any4.overlaps(&any6only));
        assert!(any4.overlaps(&dual));
        assert!(lo.overlaps(&dual));
        assert!(!lo.overlaps(&any6only));
        assert!(dual.accepts(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }
}
