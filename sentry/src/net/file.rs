//! The open file of an internet socket: what `read`, `write`, `poll`, `ioctl` and
//! `fstat` see. The socket calls proper live in `syscalls/inet.rs`.

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::kernel::wait::WaitQueue;
use crate::net::addr::Family;
use crate::net::tcp::TcpInner;
use crate::net::udp::UdpInner;
use crate::net::SOCKFS_DEV;
use crate::platform::AddressSpace;
use crate::vfs::{FileImpl, Stat};

/// `SIOCINQ` (= `FIONREAD`).
const SIOCINQ: u64 = 0x541B;
/// `SIOCOUTQ` (= `TIOCOUTQ`).
const SIOCOUTQ: u64 = 0x5411;
/// `SIOCOUTQNSD`.
const SIOCOUTQNSD: u64 = 0x894B;

/// An `AF_INET`/`AF_INET6` socket.
pub enum InetSocket {
    /// `SOCK_STREAM`.
    Tcp(Arc<TcpInner>),
    /// `SOCK_DGRAM`.
    Udp(Arc<UdpInner>),
}

impl InetSocket {
    /// The family.
    pub fn family(&self) -> Family {
        match self {
            InetSocket::Tcp(t) => t.family(),
            InetSocket::Udp(u) => u.family(),
        }
    }

    /// `SO_TYPE`.
    pub fn sock_type(&self) -> i32 {
        match self {
            InetSocket::Tcp(_) => libc::SOCK_STREAM,
            InetSocket::Udp(_) => libc::SOCK_DGRAM,
        }
    }

    /// `SO_PROTOCOL`.
    pub fn protocol(&self) -> i32 {
        match self {
            InetSocket::Tcp(_) => libc::IPPROTO_TCP,
            InetSocket::Udp(_) => libc::IPPROTO_UDP,
        }
    }

    fn ino(&self) -> u64 {
        match self {
            InetSocket::Tcp(t) => t.ino(),
            InetSocket::Udp(u) => u.ino(),
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
        };
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }

    fn write(&self, buf: &[u8], _offset: u64) -> SysResult<usize> {
        match self {
            InetSocket::Tcp(t) => t.send(buf),
            InetSocket::Udp(u) => u.send(buf, None),
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
            _ => return crate::net::ifreq::ioctl(req, arg, mem),
        };
        crate::mm::io::write_all(mem, arg, &(v.min(i32::MAX as usize) as i32).to_le_bytes())?;
        Ok(0)
    }

    fn readiness(&self) -> u32 {
        match self {
            InetSocket::Tcp(t) => t.readiness(),
            InetSocket::Udp(u) => u.readiness(),
        }
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(match self {
            InetSocket::Tcp(t) => t.queue(),
            InetSocket::Udp(u) => u.queue(),
        })
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}
