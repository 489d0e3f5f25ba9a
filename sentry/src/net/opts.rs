//! Socket options common to TCP and UDP (`SOL_SOCKET`, `IPPROTO_IP`, `IPPROTO_IPV6`)
//! and the TCP ones that are only stored (`IPPROTO_TCP`). Values are kept as Linux
//! reports them back (buffer sizes doubled, floors applied).

use std::time::Duration;

use crate::errno::{Errno, SysResult};
use crate::net::addr::Family;

/// `net.core.rmem_max` / `wmem_max` as the sandbox reports them (Linux's defaults).
pub const BUF_MAX: i32 = 212_992;
/// `SOCK_MIN_RCVBUF`.
const MIN_RCVBUF: i32 = 2304;
/// `SOCK_MIN_SNDBUF`.
const MIN_SNDBUF: i32 = 4608;

/// Option values of one socket.
#[derive(Clone, Debug)]
pub struct SockOpts {
    /// `SO_REUSEADDR`.
    pub reuseaddr: bool,
    /// `SO_REUSEPORT`.
    pub reuseport: bool,
    /// `SO_KEEPALIVE`.
    pub keepalive: bool,
    /// `SO_BROADCAST`.
    pub broadcast: bool,
    /// `SO_OOBINLINE`.
    pub oobinline: bool,
    /// `SO_LINGER` (on, seconds).
    pub linger: (bool, i32),
    /// `SO_RCVBUF` as reported.
    pub rcvbuf: i32,
    /// `SO_SNDBUF` as reported.
    pub sndbuf: i32,
    /// Whether `SO_RCVBUF` was set (it then bounds the receive queue).
    pub rcvbuf_set: bool,
    /// `SO_RCVTIMEO`.
    pub rcvtimeo: Option<Duration>,
    /// `SO_SNDTIMEO`.
    pub sndtimeo: Option<Duration>,
    /// `SO_RCVLOWAT`.
    pub rcvlowat: i32,
    /// `SO_PRIORITY`.
    pub priority: i32,
    /// `SO_MARK`.
    pub mark: i32,
    /// `SO_TIMESTAMP` and friends, as stored flags.
    pub timestamp: bool,
    /// `SO_PASSCRED`.
    pub passcred: bool,
    /// `IP_TOS` / `IPV6_TCLASS`.
    pub tos: i32,
    /// `IP_TTL` / `IPV6_UNICAST_HOPS` (-1: the default, reported as 64).
    pub ttl: i32,
    /// `IPV6_V6ONLY`.
    pub v6only: bool,
    /// `bind` named the port (Linux's `SOCK_BINDPORT_LOCK`, inherited by accepted
    /// sockets; `NETLINK_SOCK_DIAG`'s `INET_DIAG_BC_AUTO` tests it).
    pub bindport_lock: bool,
    /// `IP_RECVERR`: errors about IPv4 traffic (on an IPv6 socket, its
    /// v4-mapped traffic) are queued.
    pub recverr: bool,
    /// `IPV6_RECVERR`: errors about IPv6 traffic are queued. Linux keeps the two
    /// apart (`inet->recverr`, `np->recverr`).
    pub recverr6: bool,
    /// `IP_PKTINFO`.
    pub pktinfo: bool,
    /// `IP_RECVTOS`.
    pub recvtos: bool,
    /// `IP_RECVTTL`.
    pub recvttl: bool,
    /// `IPV6_RECVPKTINFO`.
    pub pktinfo6: bool,
    /// `IPV6_RECVHOPLIMIT`.
    pub recvhoplimit: bool,
    /// `IPV6_RECVTCLASS`.
    pub recvtclass: bool,
    /// `IP_MULTICAST_TTL`.
    pub mcast_ttl: i32,
    /// `IP_MULTICAST_LOOP`.
    pub mcast_loop: bool,
    /// `TCP_NODELAY`.
    pub nodelay: bool,
    /// `TCP_CORK`.
    pub cork: bool,
    /// `TCP_KEEPIDLE`.
    pub keepidle: i32,
    /// `TCP_KEEPINTVL`.
    pub keepintvl: i32,
    /// `TCP_KEEPCNT`.
    pub keepcnt: i32,
    /// `TCP_QUICKACK`.
    pub quickack: bool,
    /// `TCP_DEFER_ACCEPT` (seconds).
    pub defer_accept: i32,
    /// `TCP_USER_TIMEOUT` (ms).
    pub user_timeout: i32,
    /// `TCP_MAXSEG` as set (0: the default).
    pub maxseg: i32,
    /// `TCP_SYNCNT`.
    pub syncnt: i32,
    /// `TCP_LINGER2`.
    pub linger2: i32,
    /// `TCP_WINDOW_CLAMP`.
    pub window_clamp: i32,
    /// `TCP_NOTSENT_LOWAT`.
    pub notsent_lowat: i32,
}

impl SockOpts {
    /// The receive-side control messages asked for.
    pub fn want(&self) -> crate::net::cmsg::Want {
        crate::net::cmsg::Want {
            pktinfo: self.pktinfo,
            ttl: self.recvttl,
            tos: self.recvtos,
            pktinfo6: self.pktinfo6,
            hoplimit: self.recvhoplimit,
            tclass: self.recvtclass,
        }
    }

    /// `SO_SNDTIMEO` if `send`, else `SO_RCVTIMEO`.
    pub fn timeout(&self, send: bool) -> Option<Duration> {
        if send {
            self.sndtimeo
        } else {
            self.rcvtimeo
        }
    }

    /// Linux's defaults for a new socket (`tcp`: TCP's buffer sizes).
    pub fn new(tcp: bool) -> SockOpts {
        SockOpts {
            reuseaddr: false,
            reuseport: false,
            keepalive: false,
            broadcast: false,
            oobinline: false,
            linger: (false, 0),
            rcvbuf: if tcp { 131_072 } else { BUF_MAX },
            sndbuf: if tcp { 16_384 } else { BUF_MAX },
            rcvbuf_set: false,
            rcvtimeo: None,
            sndtimeo: None,
            rcvlowat: 1,
            priority: 0,
            mark: 0,
            bindport_lock: false,
            timestamp: false,
            passcred: false,
            tos: 0,
            ttl: -1,
            v6only: false,
            recverr: false,
            recverr6: false,
            pktinfo: false,
            recvtos: false,
            recvttl: false,
            pktinfo6: false,
            recvhoplimit: false,
            recvtclass: false,
            mcast_ttl: 1,
            mcast_loop: true,
            nodelay: false,
            cork: false,
            keepidle: 7200,
            keepintvl: 75,
            keepcnt: 9,
            quickack: true,
            defer_accept: 0,
            user_timeout: 0,
            maxseg: 0,
            syncnt: 6,
            linger2: 60,
            window_clamp: 0,
            notsent_lowat: -1,
        }
    }
}

/// An option's value read from the application (`optval`, `optlen` bytes).
pub fn int_of(v: &[u8]) -> SysResult<i32> {
    if v.len() < 4 {
        // Linux takes a single byte for a few IP options; others need an int.
        return match v.first() {
            Some(&b) => Ok(b as i32),
            None => Err(Errno::EINVAL),
        };
    }
    Ok(i32::from_le_bytes([v[0], v[1], v[2], v[3]]))
}

fn timeval_of(v: &[u8]) -> SysResult<Option<Duration>> {
    if v.len() < 16 {
        return Err(Errno::EINVAL);
    }
    let sec = i64::from_le_bytes(v[..8].try_into().map_err(|_| Errno::EINVAL)?);
    let usec = i64::from_le_bytes(v[8..16].try_into().map_err(|_| Errno::EINVAL)?);
    if !(0..1_000_000).contains(&usec) {
        return Err(Errno::EDOM);
    }
    if sec < 0 || (sec == 0 && usec == 0) {
        return Ok(None);
    }
    Ok(Some(Duration::new(sec as u64, usec as u32 * 1000)))
}

fn timeval(t: Option<Duration>) -> Vec<u8> {
    let t = t.unwrap_or_default();
    let mut v = (t.as_secs() as i64).to_le_bytes().to_vec();
    v.extend_from_slice(&(t.subsec_micros() as i64).to_le_bytes());
    v
}

fn int(v: i32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// What the protocol of the socket is, for the options that depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctx {
    /// The family.
    pub family: Family,
    /// TCP (else UDP).
    pub tcp: bool,
    /// Already bound (`IPV6_V6ONLY` may no longer change).
    pub bound: bool,
}

impl SockOpts {
    /// `setsockopt` of an option this module keeps. `Ok(false)`: not one of them.
    pub fn set(&mut self, ctx: Ctx, level: i32, name: i32, v: &[u8]) -> SysResult<bool> {
        let b = |v: &[u8]| int_of(v).map(|i| i != 0);
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_REUSEADDR) => self.reuseaddr = b(v)?,
            (libc::SOL_SOCKET, libc::SO_REUSEPORT) => self.reuseport = b(v)?,
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => self.keepalive = b(v)?,
            (libc::SOL_SOCKET, libc::SO_BROADCAST) => self.broadcast = b(v)?,
            (libc::SOL_SOCKET, libc::SO_OOBINLINE) => self.oobinline = b(v)?,
            (libc::SOL_SOCKET, libc::SO_PASSCRED) => self.passcred = b(v)?,
            (libc::SOL_SOCKET, libc::SO_TIMESTAMP)
            | (libc::SOL_SOCKET, libc::SO_TIMESTAMPNS)
            | (libc::SOL_SOCKET, libc::SO_TIMESTAMPING) => self.timestamp = b(v)?,
            (libc::SOL_SOCKET, libc::SO_PRIORITY) => self.priority = int_of(v)?,
            (libc::SOL_SOCKET, libc::SO_MARK) => self.mark = int_of(v)?,
            (libc::SOL_SOCKET, libc::SO_RCVLOWAT) => self.rcvlowat = int_of(v)?.max(1),
            (libc::SOL_SOCKET, libc::SO_LINGER) => {
                if v.len() < 8 {
                    return Err(Errno::EINVAL);
                }
                self.linger = (int_of(&v[..4])? != 0, int_of(&v[4..8])?.max(0));
            }
            (libc::SOL_SOCKET, libc::SO_RCVBUF | libc::SO_RCVBUFFORCE) => {
                let x = int_of(v)?.clamp(0, BUF_MAX);
                self.rcvbuf = (x * 2).max(MIN_RCVBUF);
                self.rcvbuf_set = true;
            }
            (libc::SOL_SOCKET, libc::SO_SNDBUF | libc::SO_SNDBUFFORCE) => {
                let x = int_of(v)?.clamp(0, BUF_MAX);
                self.sndbuf = (x * 2).max(MIN_SNDBUF);
            }
            (libc::SOL_SOCKET, libc::SO_RCVTIMEO) => self.rcvtimeo = timeval_of(v)?,
            (libc::SOL_SOCKET, libc::SO_SNDTIMEO) => self.sndtimeo = timeval_of(v)?,
            (libc::SOL_SOCKET, libc::SO_BINDTODEVICE) => {
                let name: Vec<u8> = v.iter().copied().take_while(|&c| c != 0).collect();
                if !name.is_empty() && name != b"lo" {
                    return Err(Errno::ENODEV);
                }
            }
            (libc::IPPROTO_IP, libc::IP_TOS) => {
                let t = int_of(v)? & 0xff;
                // TCP keeps the ECN bits to itself.
                self.tos = if ctx.tcp { t & !3 } else { t };
            }
            (libc::IPPROTO_IP, libc::IP_TTL) => {
                let t = int_of(v)?;
                if t != -1 && !(1..=255).contains(&t) {
                    return Err(Errno::EINVAL);
                }
                self.ttl = t;
            }
            (libc::IPPROTO_IP, libc::IP_RECVERR) => self.recverr = b(v)?,
            (libc::IPPROTO_IP, libc::IP_PKTINFO) => self.pktinfo = b(v)?,
            (libc::IPPROTO_IP, libc::IP_RECVTOS) => self.recvtos = b(v)?,
            (libc::IPPROTO_IP, libc::IP_RECVTTL) => self.recvttl = b(v)?,
            // Multicast belongs to datagram sockets (UDP answers these in
            // `net::mcast` before coming here).
            (libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP | libc::IP_DROP_MEMBERSHIP) if ctx.tcp => {
                return Err(Errno::EPROTO)
            }
            (libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP | libc::IPV6_DROP_MEMBERSHIP)
                if ctx.tcp && ctx.family == Family::V6 =>
            {
                return Err(if v.len() < 20 {
                    Errno::EINVAL
                } else {
                    Errno::EPROTO
                })
            }
            (libc::IPPROTO_IP, libc::IP_MULTICAST_TTL | libc::IP_MULTICAST_IF) if ctx.tcp => {
                return Err(Errno::EINVAL)
            }
            (libc::IPPROTO_IP, libc::IP_MULTICAST_TTL) => self.mcast_ttl = int_of(v)?,
            (libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP) => self.mcast_loop = b(v)?,
            (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) if ctx.family == Family::V6 => {
                if ctx.bound {
                    return Err(Errno::EINVAL);
                }
                self.v6only = b(v)?;
            }
            (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) if ctx.family == Family::V6 => {
                let t = int_of(v)?;
                if !(-1..=255).contains(&t) {
                    return Err(Errno::EINVAL);
                }
                self.tos = t.max(0);
            }
            (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS) if ctx.family == Family::V6 => {
                let t = int_of(v)?;
                if !(-1..=255).contains(&t) {
                    return Err(Errno::EINVAL);
                }
                self.ttl = t;
            }
            (libc::IPPROTO_IPV6, libc::IPV6_RECVERR) if ctx.family == Family::V6 => {
                self.recverr6 = b(v)?
            }
            (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO) if ctx.family == Family::V6 => {
                self.pktinfo6 = b(v)?
            }
            (libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT) if ctx.family == Family::V6 => {
                self.recvhoplimit = b(v)?
            }
            (libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS) if ctx.family == Family::V6 => {
                self.recvtclass = b(v)?
            }
            (libc::IPPROTO_TCP, o) if ctx.tcp => return self.set_tcp(o, v),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn set_tcp(&mut self, name: i32, v: &[u8]) -> SysResult<bool> {
        if v.len() < 4 {
            return Err(Errno::EINVAL);
        }
        let x = int_of(v)?;
        match name {
            libc::TCP_NODELAY => self.nodelay = x != 0,
            libc::TCP_CORK => self.cork = x != 0,
            libc::TCP_KEEPIDLE | libc::TCP_KEEPINTVL => {
                if !(1..=32767).contains(&x) {
                    return Err(Errno::EINVAL);
                }
                if name == libc::TCP_KEEPIDLE {
                    self.keepidle = x;
                } else {
                    self.keepintvl = x;
                }
            }
            libc::TCP_KEEPCNT => {
                if !(1..=127).contains(&x) {
                    return Err(Errno::EINVAL);
                }
                self.keepcnt = x;
            }
            libc::TCP_QUICKACK => self.quickack = x != 0,
            libc::TCP_DEFER_ACCEPT => self.defer_accept = x.max(0),
            libc::TCP_USER_TIMEOUT => {
                if x < 0 {
                    return Err(Errno::EINVAL);
                }
                self.user_timeout = x;
            }
            libc::TCP_MAXSEG => {
                if x != 0 && !(88..=65535).contains(&x) {
                    return Err(Errno::EINVAL);
                }
                self.maxseg = x;
            }
            libc::TCP_SYNCNT => {
                if !(1..=127).contains(&x) {
                    return Err(Errno::EINVAL);
                }
                self.syncnt = x;
            }
            libc::TCP_LINGER2 => self.linger2 = x,
            libc::TCP_WINDOW_CLAMP => self.window_clamp = x.max(0),
            libc::TCP_NOTSENT_LOWAT => self.notsent_lowat = x,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `getsockopt` of an option this module keeps; `None`: not one of them.
    pub fn get(&self, ctx: Ctx, level: i32, name: i32) -> Option<Vec<u8>> {
        let v = match (level, name) {
            (libc::SOL_SOCKET, libc::SO_REUSEADDR) => int(self.reuseaddr as i32),
            (libc::SOL_SOCKET, libc::SO_REUSEPORT) => int(self.reuseport as i32),
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => int(self.keepalive as i32),
            (libc::SOL_SOCKET, libc::SO_BROADCAST) => int(self.broadcast as i32),
            (libc::SOL_SOCKET, libc::SO_OOBINLINE) => int(self.oobinline as i32),
            (libc::SOL_SOCKET, libc::SO_PASSCRED) => int(self.passcred as i32),
            (libc::SOL_SOCKET, libc::SO_TIMESTAMP) => int(self.timestamp as i32),
            (libc::SOL_SOCKET, libc::SO_PRIORITY) => int(self.priority),
            (libc::SOL_SOCKET, libc::SO_MARK) => int(self.mark),
            (libc::SOL_SOCKET, libc::SO_RCVLOWAT) => int(self.rcvlowat),
            (libc::SOL_SOCKET, libc::SO_SNDLOWAT) => int(1),
            (libc::SOL_SOCKET, libc::SO_LINGER) => {
                let mut v = int(self.linger.0 as i32);
                v.extend_from_slice(&self.linger.1.to_le_bytes());
                v
            }
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => int(self.rcvbuf),
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => int(self.sndbuf),
            (libc::SOL_SOCKET, libc::SO_RCVTIMEO) => timeval(self.rcvtimeo),
            (libc::SOL_SOCKET, libc::SO_SNDTIMEO) => timeval(self.sndtimeo),
            (libc::IPPROTO_IP, libc::IP_TOS) => int(self.tos),
            (libc::IPPROTO_IP, libc::IP_TTL) => int(if self.ttl < 0 { 64 } else { self.ttl }),
            (libc::IPPROTO_IP, libc::IP_RECVERR) => int(self.recverr as i32),
            (libc::IPPROTO_IP, libc::IP_PKTINFO) => int(self.pktinfo as i32),
            (libc::IPPROTO_IP, libc::IP_RECVTOS) => int(self.recvtos as i32),
            (libc::IPPROTO_IP, libc::IP_RECVTTL) => int(self.recvttl as i32),
            (libc::IPPROTO_IP, libc::IP_MULTICAST_TTL) => int(self.mcast_ttl),
            (libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP) => int(self.mcast_loop as i32),
            (libc::IPPROTO_IPV6, o) if ctx.family == Family::V6 => match o {
                libc::IPV6_V6ONLY => int(self.v6only as i32),
                libc::IPV6_TCLASS => int(self.tos),
                libc::IPV6_UNICAST_HOPS => int(if self.ttl < 0 { 64 } else { self.ttl }),
                libc::IPV6_RECVERR => int(self.recverr6 as i32),
                libc::IPV6_RECVPKTINFO => int(self.pktinfo6 as i32),
                libc::IPV6_RECVHOPLIMIT => int(self.recvhoplimit as i32),
                libc::IPV6_RECVTCLASS => int(self.recvtclass as i32),
                _ => return None,
            },
            (libc::IPPROTO_TCP, o) if ctx.tcp => match o {
                libc::TCP_NODELAY => int(self.nodelay as i32),
                libc::TCP_CORK => int(self.cork as i32),
                libc::TCP_KEEPIDLE => int(self.keepidle),
                libc::TCP_KEEPINTVL => int(self.keepintvl),
                libc::TCP_KEEPCNT => int(self.keepcnt),
                libc::TCP_QUICKACK => int(self.quickack as i32),
                libc::TCP_DEFER_ACCEPT => int(self.defer_accept),
                libc::TCP_USER_TIMEOUT => int(self.user_timeout),
                libc::TCP_SYNCNT => int(self.syncnt),
                libc::TCP_LINGER2 => int(self.linger2),
                libc::TCP_WINDOW_CLAMP => int(self.window_clamp),
                libc::TCP_NOTSENT_LOWAT => int(self.notsent_lowat.max(0)),
                libc::TCP_CONGESTION => b"cubic\0\0\0\0\0\0\0\0\0\0\0".to_vec(),
                _ => return None,
            },
            _ => return None,
        };
        Some(v)
    }
}
