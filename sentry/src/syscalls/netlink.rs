//! The socket calls for `AF_NETLINK` (route) sockets (see [`crate::net::netlink`]).

use crate::errno::{Errno, SysResult};
use crate::kernel::Task;
use crate::mm::io;
use crate::net::netlink::{NetlinkSocket, SOCKADDR_NL_LEN};
use crate::syscalls::fs::read_iovecs;
use crate::syscalls::pipe::install_file;
use crate::syscalls::socket::{gather, read_msghdr, scatter, wait_until};
use crate::syscalls::Args;
use crate::vfs::{FileImpl, OpenFile};

const MSG_PEEK: i32 = 0x2;
const MSG_TRUNC: i32 = 0x20;
const MSG_DONTWAIT: i32 = 0x40;
use crate::kernel::creds::CAP_NET_ADMIN;

/// The netlink socket behind an open file, if it is one.
pub fn netlink_of(file: &OpenFile) -> Option<&NetlinkSocket> {
    file.imp()
        .as_any()
        .and_then(|a| a.downcast_ref::<NetlinkSocket>())
}

fn sock(f: &OpenFile) -> SysResult<&NetlinkSocket> {
    netlink_of(f).ok_or(Errno::ENOTSOCK)
}

/// `socket(AF_NETLINK, ty, protocol)`: `NETLINK_ROUTE` and `NETLINK_SOCK_DIAG`.
/// Under `--network=host` the program's internet sockets are the host's, which the
/// sandbox's diag answers could not describe and the host's would show beyond the
/// program's own: `NETLINK_SOCK_DIAG` is then `EPROTONOSUPPORT` (as on a kernel
/// without it), and `ss` reads `/proc/net` instead.
pub fn socket(task: &mut Task, ty: i32, protocol: i32, flags: i32) -> SysResult<u64> {
    if ty != libc::SOCK_RAW && ty != libc::SOCK_DGRAM {
        return Err(Errno::ESOCKTNOSUPPORT);
    }
    let net = task.ns.net.stack.clone();
    let sock = match protocol {
        libc::NETLINK_ROUTE => NetlinkSocket::new(&net),
        libc::NETLINK_SOCK_DIAG if !net.host_view() => {
            let unix = task.kernel.unix.clone();
            let lister: crate::net::diag::UnixLister =
                std::sync::Arc::new(move || crate::fs::unix::diag_entries(&unix));
            NetlinkSocket::with_protocol(&net, protocol, Some(lister))
        }
        _ => {
            tracing::debug!(protocol, "netlink protocol not supported: EPROTONOSUPPORT");
            return Err(Errno::EPROTONOSUPPORT);
        }
    };
    let file = OpenFile::new(
        Box::new(sock),
        None,
        libc::O_RDWR | (flags & libc::O_NONBLOCK),
    );
    Ok(install_file(task, file, flags & libc::O_CLOEXEC != 0)? as u64)
}

/// The caller's process id in its own pid namespace: the port id Linux's
/// autobind tries first (`task_tgid_vnr`), which programs compare replies'
/// `nlmsg_pid` with (bubblewrap in a new pid namespace).
fn own_pid(task: &Task) -> i32 {
    task.pid_shown(task.tgid)
}

/// Reads a `sockaddr_nl`: (pid, groups).
fn read_nl(task: &Task, addr: u64, len: u64) -> SysResult<(u32, u32)> {
    if (len as usize) < SOCKADDR_NL_LEN {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; SOCKADDR_NL_LEN];
    io::read_exact(task.mem(), addr, &mut b)?;
    if u16::from_le_bytes([b[0], b[1]]) as i32 != libc::AF_NETLINK {
        return Err(Errno::EINVAL);
    }
    Ok((
        u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
    ))
}

fn write_nl(task: &Task, addr: u64, len_addr: u64, pid: u32) -> SysResult<()> {
    let mut out = [0u8; SOCKADDR_NL_LEN];
    out[..2].copy_from_slice(&(libc::AF_NETLINK as u16).to_le_bytes());
    out[4..8].copy_from_slice(&pid.to_le_bytes());
    super::sockaddr::put_sockaddr(task, addr, len_addr, &out, SOCKADDR_NL_LEN)
}

/// `bind(2)`.
pub fn bind(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    let (pid, groups) = read_nl(task, a[1], a[2])?;
    sock(f)?.bind(pid, groups, own_pid(task))?;
    Ok(0)
}

/// `listen(2)`.
pub fn listen(_task: &mut Task, f: &OpenFile, _a: &Args) -> SysResult<u64> {
    sock(f)?;
    Err(Errno::EOPNOTSUPP)
}

/// `connect(2)`: only the kernel (port 0) can be a peer.
pub fn connect(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    let (pid, _) = read_nl(task, a[1], a[2])?;
    if pid != 0 {
        return Err(Errno::ECONNREFUSED);
    }
    sock(f)?.bind(0, 0, own_pid(task))?;
    Ok(0)
}

/// `accept(2)`.
pub fn accept(_task: &mut Task, f: &OpenFile, _a: &Args, _flags: i32) -> SysResult<u64> {
    sock(f)?;
    Err(Errno::EOPNOTSUPP)
}

/// `getsockname(2)`.
pub fn getsockname(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    let port = sock(f)?.port();
    write_nl(task, a[1], a[2], port)?;
    Ok(0)
}

/// `getpeername(2)`: the kernel.
pub fn getpeername(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    sock(f)?;
    write_nl(task, a[1], a[2], 0)?;
    Ok(0)
}

/// `shutdown(2)`.
pub fn shutdown(_task: &mut Task, f: &OpenFile, _a: &Args) -> SysResult<u64> {
    sock(f)?;
    Err(Errno::EOPNOTSUPP)
}

/// Sends requests (`to` must name the kernel).
pub fn send(
    task: &mut Task,
    f: &OpenFile,
    iov: &[(u64, usize)],
    to: Option<(u64, u64)>,
    _flags: i32,
) -> SysResult<u64> {
    let s = sock(f)?;
    if let Some((addr, len)) = to {
        let (pid, _) = read_nl(task, addr, len)?;
        if pid != 0 {
            return Err(Errno::ECONNREFUSED);
        }
    }
    let total: usize = iov.iter().map(|&(_, l)| l).sum();
    if total > 1 << 20 {
        return Err(Errno::EMSGSIZE);
    }
    let data = gather(task, iov, 0, total)?;
    // CAP_NET_ADMIN over the user namespace owning the socket's network (a
    // program that made a user and a network namespace administers its own).
    let owner = crate::kernel::ns::owner(&task.ns.net.owner).clone();
    let admin = task.creds.has_cap_in(&owner, CAP_NET_ADMIN);
    // RTM_GETNSID names a namespace by one of the sender's descriptors: its path.
    let fd_path = |fd: i32| -> Option<Vec<u8>> {
        let file = task.fds().ok()?.get(fd).ok()?;
        let root = task.fs.root.clone();
        Some(
            file.dentry()
                .map(|d| d.path_from(&root))
                .unwrap_or_default(),
        )
    };
    // RTM_GETNSID's NETNSA_PID: a thread the sender sees.
    let pid_exists = |pid: i32| -> bool {
        let Ok(g) = task.pid_global(pid) else {
            return false;
        };
        task.kernel.registry().is_ok_and(|r| r.thread(g).is_some())
    };
    let refs = crate::net::netlink::NsRefs {
        fd_path: &fd_path,
        pid_exists: &pid_exists,
    };
    Ok(s.send_with(&data, own_pid(task), admin, &refs)? as u64)
}

/// `sendmsg(2)`.
pub fn sendmsg(task: &mut Task, f: &OpenFile, msg: u64, flags: i32) -> SysResult<u64> {
    let h = read_msghdr(task, msg)?;
    let to = (h.name != 0 && h.namelen != 0).then_some((h.name, h.namelen));
    let iov = read_iovecs(task, h.iov, h.iovlen)?;
    send(task, f, &iov, to, flags)
}

fn recv(task: &Task, f: &OpenFile, len: usize, flags: i32) -> SysResult<(Vec<u8>, usize)> {
    let s = sock(f)?;
    let nonblock = f.nonblocking() || flags & MSG_DONTWAIT != 0;
    loop {
        match s.recv(len, flags & MSG_PEEK != 0) {
            Err(Errno::EAGAIN) if !nonblock => {
                wait_until(task, s.queue(), None, || {
                    s.readiness() & (libc::POLLIN | libc::POLLERR) as u32 != 0
                })?;
            }
            r => return r,
        }
    }
}

/// `recvfrom(2)`.
pub fn recvfrom(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    let flags = a[3] as i32;
    let (d, full) = recv(task, f, a[2] as usize, flags)?;
    io::write_all(task.mem(), a[1], &d)?;
    if a[4] != 0 {
        write_nl(task, a[4], a[5], 0)?;
    }
    Ok(if flags & MSG_TRUNC != 0 {
        full
    } else {
        d.len()
    } as u64)
}

/// `recvmsg(2)`.
pub fn recvmsg(task: &mut Task, f: &OpenFile, msg: u64, flags: i32) -> SysResult<u64> {
    let h = read_msghdr(task, msg)?;
    let iov = read_iovecs(task, h.iov, h.iovlen)?;
    let len: usize = iov.iter().map(|&(_, l)| l).sum();
    let (d, full) = recv(task, f, len, flags)?;
    scatter(task, &iov, &d)?;
    io::write_u64(task.mem(), msg + 40, 0)?;
    let out_flags = if full > d.len() { MSG_TRUNC } else { 0 };
    io::write_u32(task.mem(), msg + 48, out_flags as u32)?;
    if h.name != 0 {
        write_nl(task, h.name, msg + 8, 0)?;
    }
    Ok(if flags & MSG_TRUNC != 0 {
        full
    } else {
        d.len()
    } as u64)
}

/// `setsockopt(2)`.
pub fn setsockopt(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    let s = sock(f)?;
    if (a[4] as i32) < 4 {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 4];
    io::read_exact(task.mem(), a[3], &mut b)?;
    s.setsockopt(a[1] as i32, a[2] as i32, i32::from_le_bytes(b))?;
    Ok(0)
}

/// `getsockopt(2)`.
pub fn getsockopt(task: &mut Task, f: &OpenFile, a: &Args) -> SysResult<u64> {
    let v = sock(f)?.getsockopt(a[1] as i32, a[2] as i32)?;
    let mut lb = [0u8; 4];
    io::read_exact(task.mem(), a[4], &mut lb)?;
    let room = i32::from_le_bytes(lb);
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let n = 4.min(room as usize);
    io::write_all(task.mem(), a[3], &v.to_le_bytes()[..n])?;
    io::write_u32(task.mem(), a[4], n as u32)?;
    Ok(0)
}
