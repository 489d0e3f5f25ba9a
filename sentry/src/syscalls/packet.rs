//! The socket calls for `AF_PACKET` sockets (see [`crate::net::packet`]).
//! `syscalls/socket.rs` sends every call on such a socket here.

use std::sync::Arc;

use crate::cbpf::{self, Insn};
use crate::errno::{Errno, SysResult};
use crate::kernel::Task;
use crate::mm::io;
use crate::net::packet::{
    LinkAddr, PacketInner, PacketSocket, SLL_ADDR_OFF, SOCKADDR_LL_LEN, SOL_PACKET,
};
use crate::syscalls::fs::read_iovecs;
use crate::syscalls::pipe::install_file;
use crate::syscalls::socket::{gather, read_msghdr, scatter, wait_until};
use crate::syscalls::Args;
use crate::vfs::OpenFile;

const MSG_PEEK: i32 = 0x2;
const MSG_TRUNC: i32 = 0x20;
const MSG_DONTWAIT: i32 = 0x40;
/// The obsolete `SOCK_PACKET` type.
const SOCK_PACKET: i32 = 10;
const SO_ATTACH_FILTER: i32 = 26;
const SO_DETACH_FILTER: i32 = 27;
/// `sizeof(struct sock_fprog)`.
const FPROG_LEN: usize = 16;

/// The packet socket behind an open file, if it is one.
pub fn packet_of(file: &OpenFile) -> Option<&Arc<PacketInner>> {
    file.imp()
        .as_any()
        .and_then(|a| a.downcast_ref::<PacketSocket>())
        .map(|p| &p.0)
}

fn sock(f: &OpenFile) -> SysResult<&Arc<PacketInner>> {
    packet_of(f).ok_or(Errno::ENOTSOCK)
}

/// `socket(AF_PACKET, ty, protocol)`; the caller checked `CAP_NET_RAW`. The
/// protocol is an ethertype in network order, as Linux takes it (truncated to 16
/// bits).
pub fn socket(task: &mut Task, ty: i32, protocol: i32, flags: i32) -> SysResult<u64> {
    let dgram = match ty {
        libc::SOCK_RAW => false,
        libc::SOCK_DGRAM => true,
        SOCK_PACKET => {
            tracing::warn!("AF_PACKET SOCK_PACKET (obsolete) is not implemented: ESOCKTNOSUPPORT");
            return Err(Errno::ESOCKTNOSUPPORT);
        }
        _ => return Err(Errno::ESOCKTNOSUPPORT),
    };
    let proto = u16::from_be(protocol as u16);
    let file = OpenFile::new(
        Box::new(PacketSocket(PacketInner::new(
            &task.ns.net.stack,
            dgram,
            proto,
        ))),
        None,
        libc::O_RDWR | (flags & libc::O_NONBLOCK),
    );
    Ok(install_file(task, file, flags & libc::O_CLOEXEC != 0)? as u64)
}

/// Reads a `sockaddr_ll` (`EINVAL` when shorter than the structure).
fn read_ll(task: &Task, addr: u64, len: u64) -> SysResult<(LinkAddr, u16)> {
    if (len as usize) < SOCKADDR_LL_LEN || len > 128 {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; SOCKADDR_LL_LEN];
    io::read_exact(task.mem(), addr, &mut b)?;
    Ok((LinkAddr::parse(&b), u16::from_le_bytes([b[0], b[1]])))
}

/// Writes `a` (`len` bytes of it meaningful) at `addr`, cut to the room at
/// `len_addr`, and stores `len` there.
fn write_ll(task: &Task, addr: u64, len_addr: u64, a: &LinkAddr, len: usize) -> SysResult<()> {
    let out = a.encode();
    let bytes = &out[..len.min(out.len())];
    super::sockaddr::put_sockaddr(task, addr, len_addr, bytes, len)
}

/// `bind(2)`: `sll_ifindex` (0: every interface) and `sll_protocol` (0: keep).
pub fn bind(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    let s = sock(f)?;
    let (ll, family) = read_ll(task, a[1], a[2])?;
    if i32::from(family) != libc::AF_PACKET {
        return Err(Errno::EINVAL);
    }
    s.bind(&ll)?;
    Ok(0)
}

/// `listen(2)`, `connect(2)`, `accept(2)`, `shutdown(2)`: not for packet sockets.
pub fn unsupported(_task: &mut Task, f: &OpenFile) -> SysResult<u64> {
    sock(f)?;
    Err(Errno::EOPNOTSUPP)
}

/// `getsockname(2)`: the length covers the hardware address of the bound
/// interface (none when unbound).
pub fn getsockname(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    let me = sock(f)?.local();
    write_ll(task, a[1], a[2], &me, SLL_ADDR_OFF + usize::from(me.halen))?;
    Ok(0)
}

/// Sends a frame (or payload) from `iov`; `to` is a `sockaddr_ll`.
pub fn send(
    task: &mut Task,
    f: &OpenFile,
    iov: &[(u64, usize)],
    to: Option<(u64, u64)>,
    _flags: i32,
) -> SysResult<u64> {
    let s = sock(f)?;
    let dst = match to {
        Some((addr, len)) => {
            let (ll, _) = read_ll(task, addr, len)?;
            if (len as usize) < SLL_ADDR_OFF + usize::from(ll.halen) {
                return Err(Errno::EINVAL);
            }
            Some(ll)
        }
        None => None,
    };
    let total: usize = iov.iter().map(|&(_, l)| l).sum();
    if total > 1 << 20 {
        return Err(Errno::EMSGSIZE);
    }
    let data = gather(task, iov, 0, total)?;
    Ok(s.send(&data, dst)? as u64)
}

/// `sendmsg(2)`.
pub fn sendmsg(task: &mut Task, f: &OpenFile, msg: u64, flags: i32) -> SysResult<u64> {
    let h = read_msghdr(task, msg)?;
    let to = (h.name != 0 && h.namelen != 0).then_some((h.name, h.namelen));
    let iov = read_iovecs(task, h.iov, h.iovlen)?;
    send(task, f, &iov, to, flags)
}

fn recv(
    task: &Task,
    f: &OpenFile,
    len: usize,
    flags: i32,
) -> SysResult<crate::net::packet::Received> {
    let s = sock(f)?;
    let nonblock = f.nonblocking() || flags & MSG_DONTWAIT != 0;
    loop {
        match s.recv(len, flags & MSG_PEEK != 0) {
            Err(Errno::EAGAIN) if !nonblock => {
                wait_until(task, s.queue(), s.timeout(false), || {
                    s.readiness() & (libc::POLLIN | libc::POLLERR) as u32 != 0
                })?;
            }
            r => return r,
        }
    }
}

/// The length Linux stores for a received frame's address: the structure at
/// least, more for longer hardware addresses.
fn from_len(a: &LinkAddr) -> usize {
    (SLL_ADDR_OFF + usize::from(a.halen)).max(SOCKADDR_LL_LEN)
}

/// `recvfrom(2)`.
pub fn recvfrom(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    let flags = a[3] as i32;
    let len = (a[2] as usize).min(crate::syscalls::MAX_RW_COUNT as usize);
    let got = recv(task, f, len, flags)?;
    io::write_all(task.mem(), a[1], &got.data)?;
    if a[4] != 0 {
        write_ll(task, a[4], a[5], &got.from, from_len(&got.from))?;
    }
    Ok(if flags & MSG_TRUNC != 0 {
        got.full_len
    } else {
        got.data.len()
    } as u64)
}

/// `recvmsg(2)`.
pub fn recvmsg(task: &mut Task, f: &OpenFile, msg: u64, flags: i32) -> SysResult<u64> {
    let h = read_msghdr(task, msg)?;
    let iov = read_iovecs(task, h.iov, h.iovlen)?;
    let len: usize = iov.iter().map(|&(_, l)| l).sum();
    let got = recv(task, f, len, flags)?;
    scatter(task, &iov, &got.data)?;
    io::write_u64(task.mem(), msg + 40, 0)?;
    let out_flags = if got.full_len > got.data.len() {
        MSG_TRUNC
    } else {
        0
    };
    io::write_u32(task.mem(), msg + 48, out_flags as u32)?;
    if h.name != 0 {
        write_ll(task, h.name, msg + 8, &got.from, from_len(&got.from))?;
    } else {
        io::write_u32(task.mem(), msg + 8, 0)?;
    }
    Ok(if flags & MSG_TRUNC != 0 {
        got.full_len
    } else {
        got.data.len()
    } as u64)
}

/// Reads the classic BPF program of a `struct sock_fprog`.
fn read_fprog(task: &Task, addr: u64, len: usize) -> SysResult<Vec<Insn>> {
    if len != FPROG_LEN {
        return Err(Errno::EINVAL);
    }
    let mut hdr = [0u8; FPROG_LEN];
    io::read_exact(task.mem(), addr, &mut hdr)?;
    let n = usize::from(u16::from_le_bytes([hdr[0], hdr[1]]));
    let ptr = u64::from_le_bytes(hdr[8..16].try_into().map_err(|_| Errno::EFAULT)?);
    if n == 0 || n > cbpf::MAX_INSNS {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; n * 8];
    io::read_exact(task.mem(), ptr, &mut raw)?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| Insn::from_bytes(c.try_into().unwrap_or(&[0; 8])))
        .collect())
}

/// `setsockopt(2)`.
pub fn setsockopt(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    let s = sock(f)?;
    let (level, name) = (a[1] as i32, a[2] as i32);
    let len = a[4] as i32;
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    match (level, name) {
        (libc::SOL_SOCKET, SO_ATTACH_FILTER) => {
            let prog = read_fprog(task, a[3], len as usize)?;
            s.set_filter(Some(prog))?;
            return Ok(0);
        }
        (libc::SOL_SOCKET, SO_DETACH_FILTER) => {
            s.set_filter(None)?;
            return Ok(0);
        }
        (libc::SOL_SOCKET, _) if len < 4 => return Err(Errno::EINVAL),
        (SOL_PACKET, _) | (libc::SOL_SOCKET, _) => {}
        _ => return Err(Errno::ENOPROTOOPT),
    }
    let mut v = vec![0u8; (len as usize).min(256)];
    io::read_exact(task.mem(), a[3], &mut v)?;
    s.setsockopt(level, name, &v)?;
    Ok(0)
}

/// `getsockopt(2)`.
pub fn getsockopt(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    let s = sock(f)?;
    let (level, name) = (a[1] as i32, a[2] as i32);
    let mut lb = [0u8; 4];
    io::read_exact(task.mem(), a[4], &mut lb)?;
    let room = i32::from_le_bytes(lb);
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let int = |v: i32| v.to_le_bytes().to_vec();
    let val = match (level, name) {
        (libc::SOL_SOCKET, libc::SO_TYPE) => int(if s.is_dgram() {
            libc::SOCK_DGRAM
        } else {
            libc::SOCK_RAW
        }),
        (libc::SOL_SOCKET, libc::SO_DOMAIN) => int(libc::AF_PACKET),
        // Linux leaves a packet socket's sk_protocol 0.
        (libc::SOL_SOCKET, libc::SO_PROTOCOL) => int(0),
        _ => s.getsockopt(level, name)?,
    };
    let n = val.len().min(room as usize);
    io::write_all(task.mem(), a[3], &val[..n])?;
    io::write_u32(task.mem(), a[4], n as u32)?;
    Ok(0)
}
