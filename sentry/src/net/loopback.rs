//! The loopback interface `lo`: 127.0.0.0/8 and ::1, MTU 65536. With
//! `--network=none` it is the sandbox's only interface, so every destination that
//! is not one of its addresses is unreachable.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::errno::{Errno, SysResult};
use crate::net::Interface;

/// `lo`.
pub struct Loopback;

/// Interface index of `lo`, as on Linux.
pub const LO_INDEX: u32 = 1;
/// MTU of `lo`.
pub const LO_MTU: u32 = 65536;

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
        match ip {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
        }
    }

    fn source_for(&self, dst: IpAddr) -> SysResult<IpAddr> {
        match dst {
            // The kernel's local route for 127/8 carries `src 127.0.0.1`.
            IpAddr::V4(v4) if v4.is_loopback() => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            IpAddr::V6(v6) if v6 == Ipv6Addr::LOCALHOST => Ok(dst),
            _ => Err(Errno::ENETUNREACH),
        }
    }
}
