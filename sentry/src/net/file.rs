//! The open file of an internet socket: what `read`, `write`, `poll`, `ioctl` and
//! `fstat` see. The socket calls proper live in `syscalls/inet.rs`.

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::net::addr::Family;
use crate::net::icmp::{IcmpInner, Kind};
use crate::net::tcp::TcpInner;
use crate::net::udp::UdpInner;
use crate::net::SOCKFS_DEV;
use crate::platform::AddressSpace;
use crate::vfs::{FileImpl, Stat};
use crate::wait::WaitQueue;

/// `SIOCINQ` (= `FIONREAD`).
const SIOCINQ: u64 = 0x541B;
/// `SIOCOUTQ` (= `TIOCOUTQ`).
const SIOCOUTQ: u64 = 0x5411;
/// `SIOCGSTAMP`: when the last datagram read arrived (a `struct timeval`).
const SIOCGSTAMP: u64 = 0x8906;
/// `SIOCOUTQNSD`.
const SIOCOUTQNSD: u64 = 0x894B;

/// An `AF_INET`/`AF_INET6` socket.
pub enum InetSocket {
    /// `SOCK_STREAM`.
    Tcp(Arc<TcpInner>),
    /// `SOCK_DGRAM`.
    Udp(Arc<UdpInner>),
    /// A ping socket (`SOCK_DGRAM`, ICMP) or a raw socket (`SOCK_RAW`).
    Icmp(Arc<IcmpInner>),
}

impl InetSocket {
    /// The family.
    pub fn family(&self) -> Family {
        match self {
            InetSocket::Tcp(t) => t.family(),
            InetSocket::Udp(u) => u.family(),
            InetSocket::Icmp(i) => i.family(),
        }
    }

    /// `SO_TYPE`.
    pub fn sock_type(&self) -> i32 {
        match self {
            InetSocket::Tcp(_) => libc::SOCK_STREAM,
            InetSocket::Udp(_) => libc::SOCK_DGRAM,
            InetSocket::Icmp(i) if i.kind() == Kind::Ping => libc::SOCK_DGRAM,
            InetSocket::Icmp(_) => libc::SOCK_RAW,
        }
    }

    /// `SO_PROTOCOL`.
    pub fn protocol(&self) -> i32 {
        match self {
            InetSocket::Tcp(_) => libc::IPPROTO_TCP,
            InetSocket::Udp(u) => u.protocol(),
            InetSocket::Icmp(i) => i.protocol(),
        }
    }

    fn ino(&self) -> u64 {
        match self {
            InetSocket::Tcp(t) => t.ino(),
            InetSocket::Udp(u) => u.ino(),
            InetSocket::Icmp(i) => i.ino(),
        }
    }
}

impl Drop for InetSocket {
    fn drop(&mut self) {
        if let InetSocket::Tcp(t) = self {
            t.close(false);
        }
    }
}

impl FileImpl for InetSocket {
    fn read(&self, buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        let data = match self {
            InetSocket::Tcp(t) => t.recv(buf.len(), false)?,
            InetSocket::Udp(u) => u.recv(buf.len(), false)?.data,
            InetSocket::Icmp(i) => i.recv(buf.len(), false)?.data,
        };
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }

    fn write(&self, buf: &[u8], _offset: u64) -> SysResult<usize> {
        match self {
            InetSocket::Tcp(t) => t.send(buf),
            InetSocket::Udp(u) => u.send(buf, None),
            InetSocket::Icmp(i) => i.send(buf, None),
        }
    }

    fn seekable(&self) -> bool {
        false
    }

    fn stat(&self) -> SysResult<Stat> {
        Ok(Stat {
            dev: SOCKFS_DEV,
            ino: self.ino(),
            mode: libc::S_IFSOCK | 0o777,
            nlink: 1,
            blksize: 4096,
            ..Default::default()
        })
    }

    fn ioctl(&self, req: u64, arg: u64, mem: &dyn AddressSpace) -> SysResult<u64> {
        let v = match (self, req) {
            (InetSocket::Tcp(t), SIOCINQ) => {
                if t.is_listening() {
                    return Err(Errno::EINVAL);
                }
                t.queued().0
            }
            // Over loopback the peer's stack has the data (and has acknowledged it)
            // as soon as it is sent: nothing is ever unacknowledged.
            (InetSocket::Tcp(t), SIOCOUTQ | SIOCOUTQNSD) => {
                if t.is_listening() {
                    return Err(Errno::EINVAL);
                }
                0
            }
            (InetSocket::Udp(u), SIOCINQ) => u.pending().0,
            (InetSocket::Udp(_), SIOCOUTQ) => 0,
            (InetSocket::Icmp(i), SIOCINQ) => i.pending().0,
            (InetSocket::Icmp(_), SIOCOUTQ) => 0,
            (InetSocket::Icmp(i), SIOCGSTAMP) => {
                let t = i
                    .stamp()?
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let mut tv = (t.as_secs() as i64).to_le_bytes().to_vec();
                tv.extend_from_slice(&(t.subsec_micros() as i64).to_le_bytes());
                crate::mm::io::write_all(mem, arg, &tv)?;
                return Ok(0);
            }
            _ => {
                let net = match self {
                    InetSocket::Tcp(t) => &t.net,
                    InetSocket::Udp(u) => &u.net,
                    InetSocket::Icmp(i) => &i.net,
                };
                return crate::net::ifreq::ioctl(Some(net), req, arg, mem);
            }
        };
        crate::mm::io::write_all(mem, arg, &(v.min(i32::MAX as usize) as i32).to_le_bytes())?;
        Ok(0)
    }

    fn readiness(&self) -> u32 {
        match self {
            InetSocket::Tcp(t) => t.readiness(),
            InetSocket::Udp(u) => u.readiness(),
            InetSocket::Icmp(i) => i.readiness(),
        }
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(match self {
            InetSocket::Tcp(t) => t.queue(),
            InetSocket::Udp(u) => u.queue(),
            InetSocket::Icmp(i) => i.queue(),
        })
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}
