//! Host calls on the host sockets of `--network=host` ([`crate::net::host`]): TCP
//! and UDP sockets the sentry makes in the host's network namespace on the
//! program's behalf, always non-blocking and close-on-exec, and the epoll set whose
//! events wake the tasks waiting on them. Each call is in the sentry's seccomp
//! allow-list only when the sandbox is in host mode (`sys::confine::HOST_NET_ALLOWED`),
//! with the arguments that list allows: the `*_FLAGS` constants below are what it
//! compares.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::errno::{Errno, SysResult};

/// The flags every host socket is made with (`socket` and `accept4`).
pub const SOCK_FLAGS: i32 = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
/// The flags of every `sendmsg` on a host socket (plus the caller's `MSG_MORE`).
pub const SEND_FLAGS: i32 = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
/// The `recvmsg` flags a caller may add to `MSG_DONTWAIT` (`MSG_ERRQUEUE`: the
/// socket's error queue, filled only under `IP_RECVERR`/`IPV6_RECVERR`).
pub const RECV_FLAGS: i32 = libc::MSG_PEEK | libc::MSG_TRUNC | libc::MSG_OOB | libc::MSG_ERRQUEUE;
/// The `sendmsg` flags a caller may add to [`SEND_FLAGS`]: `MSG_MORE`, and
/// `MSG_OOB` (TCP urgent data).
pub const SEND_EXTRA: i32 = libc::MSG_MORE | libc::MSG_OOB;
/// Most control bytes passed in or out of one host call.
pub const CONTROL_ROOM: usize = 4096;
/// Largest socket address passed in or out (`sockaddr_storage`).
const ADDR_ROOM: usize = 128;

fn check(r: isize) -> SysResult<usize> {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

fn fd_of(fd: BorrowedFd<'_>) -> i32 {
    fd.as_raw_fd()
}

/// A new non-blocking, close-on-exec host socket: `domain` `AF_INET`/`AF_INET6`,
/// `ty` `SOCK_STREAM`/`SOCK_DGRAM`, protocol 0 (the allow-list takes nothing else).
pub fn socket(domain: i32, ty: i32) -> SysResult<OwnedFd> {
    // SAFETY: no pointer arguments.
    let r = unsafe { libc::socket(domain, ty | SOCK_FLAGS, 0) };
    check(r as isize)?;
    // SAFETY: a descriptor the kernel just returned, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// `bind` to the socket address `addr` (raw bytes, already checked by the caller).
pub fn bind(fd: BorrowedFd<'_>, addr: &[u8]) -> SysResult<()> {
    // SAFETY: addr is a readable slice of addr.len() bytes.
    let r = unsafe { libc::bind(fd_of(fd), addr.as_ptr().cast(), addr.len() as u32) };
    check(r as isize).map(|_| ())
}

/// `connect` to `addr` (raw bytes, already checked); `EINPROGRESS` as the host says.
pub fn connect(fd: BorrowedFd<'_>, addr: &[u8]) -> SysResult<()> {
    // SAFETY: addr is a readable slice of addr.len() bytes.
    let r = unsafe { libc::connect(fd_of(fd), addr.as_ptr().cast(), addr.len() as u32) };
    check(r as isize).map(|_| ())
}

/// `listen`.
pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> SysResult<()> {
    // SAFETY: no pointer arguments.
    let r = unsafe { libc::listen(fd_of(fd), backlog) };
    check(r as isize).map(|_| ())
}

/// `accept4` without blocking: the new socket (non-blocking, close-on-exec) and
/// its peer's address.
pub fn accept(fd: BorrowedFd<'_>) -> SysResult<(OwnedFd, Vec<u8>)> {
    let mut buf = [0u8; ADDR_ROOM];
    let mut len = ADDR_ROOM as libc::socklen_t;
    // SAFETY: buf has room for len bytes; len is a live local.
    let r = unsafe { libc::accept4(fd_of(fd), buf.as_mut_ptr().cast(), &mut len, SOCK_FLAGS) };
    check(r as isize)?;
    // SAFETY: a descriptor the kernel just returned, owned by nobody else.
    let new = unsafe { OwnedFd::from_raw_fd(r) };
    Ok((new, buf[..(len as usize).min(ADDR_ROOM)].to_vec()))
}

/// `getsockname` (`peer` false) or `getpeername` (`peer` true).
pub fn name(fd: BorrowedFd<'_>, peer: bool) -> SysResult<Vec<u8>> {
    let mut buf = [0u8; ADDR_ROOM];
    let mut len = ADDR_ROOM as libc::socklen_t;
    // SAFETY: buf has room for len bytes; len is a live local.
    let r = unsafe {
        if peer {
            libc::getpeername(fd_of(fd), buf.as_mut_ptr().cast(), &mut len)
        } else {
            libc::getsockname(fd_of(fd), buf.as_mut_ptr().cast(), &mut len)
        }
    };
    check(r as isize)?;
    Ok(buf[..(len as usize).min(ADDR_ROOM)].to_vec())
}

/// `shutdown`.
pub fn shutdown(fd: BorrowedFd<'_>, how: i32) -> SysResult<()> {
    // SAFETY: no pointer arguments.
    let r = unsafe { libc::shutdown(fd_of(fd), how) };
    check(r as isize).map(|_| ())
}

/// `setsockopt` with the value `v`.
pub fn setsockopt(fd: BorrowedFd<'_>, level: i32, name: i32, v: &[u8]) -> SysResult<()> {
    // SAFETY: v is a readable slice of v.len() bytes.
    let r = unsafe { libc::setsockopt(fd_of(fd), level, name, v.as_ptr().cast(), v.len() as u32) };
    check(r as isize).map(|_| ())
}

/// `getsockopt` with room for `room` bytes: the value the host wrote.
pub fn getsockopt(fd: BorrowedFd<'_>, level: i32, name: i32, room: usize) -> SysResult<Vec<u8>> {
    let mut v = vec![0u8; room];
    let mut len = room as libc::socklen_t;
    // SAFETY: v has room for len bytes; len is a live local.
    let r = unsafe { libc::getsockopt(fd_of(fd), level, name, v.as_mut_ptr().cast(), &mut len) };
    check(r as isize)?;
    v.truncate((len as usize).min(room));
    Ok(v)
}

/// Sends `data` without blocking, to `to` (raw socket address bytes) if given,
/// with the control messages `control` (already checked by the caller); `extra`
/// within [`SEND_EXTRA`]. Never raises SIGPIPE (`EPIPE` is returned).
pub fn send(
    fd: BorrowedFd<'_>,
    data: &[u8],
    to: Option<&[u8]>,
    control: &[u8],
    extra: i32,
) -> SysResult<usize> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(to) = to {
        msg.msg_name = to.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = to.len() as u32;
    }
    if !control.is_empty() {
        msg.msg_control = control.as_ptr() as *mut libc::c_void;
        msg.msg_controllen = control.len().min(CONTROL_ROOM);
    }
    let flags = SEND_FLAGS | (extra & SEND_EXTRA);
    // SAFETY: msg points at one iovec over the readable `data` and, if set, at the
    // readable `to` and `control`; the kernel only reads them.
    let r = unsafe { libc::sendmsg(fd_of(fd), &msg, flags) };
    check(r as isize)
}

/// What [`recv`] got.
pub struct Received {
    /// The count the host returned (with `MSG_TRUNC`, the full length).
    pub n: usize,
    /// The sender's address (datagrams), as the host wrote it.
    pub from: Vec<u8>,
    /// The `msg_flags` the host set (`MSG_TRUNC` for a cut datagram, `MSG_CTRUNC`,
    /// `MSG_OOB`).
    pub flags: i32,
    /// The control messages the host wrote.
    pub control: Vec<u8>,
}

/// Receives into `buf` without blocking, with room for `control_room` bytes of
/// control messages (at most [`CONTROL_ROOM`]); `flags` within [`RECV_FLAGS`].
pub fn recv(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: i32,
    control_room: usize,
) -> SysResult<Received> {
    let mut from = [0u8; ADDR_ROOM];
    let mut control = vec![0u8; control_room.min(CONTROL_ROOM)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_name = from.as_mut_ptr().cast();
    msg.msg_namelen = ADDR_ROOM as u32;
    if !control.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control.len();
    }
    let flags = libc::MSG_DONTWAIT | (flags & RECV_FLAGS);
    // SAFETY: msg points at one iovec over the writable `buf`, at the writable
    // `from` of msg_namelen bytes and, if any, at the writable `control` of
    // msg_controllen bytes.
    let r = unsafe { libc::recvmsg(fd_of(fd), &mut msg, flags) };
    let n = check(r as isize)?;
    control.truncate(msg.msg_controllen.min(control.len()));
    Ok(Received {
        n,
        from: from[..(msg.msg_namelen as usize).min(ADDR_ROOM)].to_vec(),
        flags: msg.msg_flags,
        control,
    })
}

/// `SIOCOUTQNSD`: the bytes of a stream socket's send queue not yet sent (the libc
/// crate does not name it).
pub const SIOCOUTQNSD: u64 = 0x894B;

/// `SIOCATMARK`: whether a TCP socket's reading is at the urgent mark.
pub const SIOCATMARK: u64 = 0x8905;

/// A queue-size `ioctl` (`SIOCINQ`, `SIOCOUTQ`, `SIOCOUTQNSD`) or `SIOCATMARK`: its
/// `int`.
pub fn ioctl_int(fd: BorrowedFd<'_>, req: u64) -> SysResult<i32> {
    let mut v: libc::c_int = 0;
    // SAFETY: the four requests write one int, which v is.
    let r = unsafe { libc::ioctl(fd_of(fd), req as _, &mut v) };
    check(r as isize)?;
    Ok(v)
}

/// A new close-on-exec epoll set.
pub fn epoll_create() -> SysResult<OwnedFd> {
    // SAFETY: no pointer arguments.
    let r = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    check(r as isize)?;
    // SAFETY: a descriptor the kernel just returned, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// The events a host socket is watched for: edge-triggered input, output, peer
/// shutdown and urgent data (errors and hang-ups are always reported).
const WATCH: u32 =
    (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLPRI | libc::EPOLLET) as u32;

/// Adds `fd` to the epoll set `ep` with `token`.
pub fn epoll_add(ep: BorrowedFd<'_>, fd: BorrowedFd<'_>, token: u64) -> SysResult<()> {
    let mut ev = libc::epoll_event {
        events: WATCH,
        u64: token,
    };
    // SAFETY: ev is a live local the kernel reads.
    let r = unsafe { libc::epoll_ctl(fd_of(ep), libc::EPOLL_CTL_ADD, fd_of(fd), &mut ev) };
    check(r as isize).map(|_| ())
}

/// Removes `fd` from the epoll set `ep`.
pub fn epoll_del(ep: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> SysResult<()> {
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: ev is a live local (ignored by EPOLL_CTL_DEL on current kernels).
    let r = unsafe { libc::epoll_ctl(fd_of(ep), libc::EPOLL_CTL_DEL, fd_of(fd), &mut ev) };
    check(r as isize).map(|_| ())
}

/// Waits (without a time limit) for events on `ep`: the tokens of the sockets
/// that had one. Interrupted by a signal, it returns none.
pub fn epoll_wait(ep: BorrowedFd<'_>, max: usize) -> SysResult<Vec<u64>> {
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; max.max(1)];
    // SAFETY: evs has room for evs.len() events; -1 waits without a time limit.
    let r = unsafe {
        libc::syscall(
            libc::SYS_epoll_wait,
            fd_of(ep),
            evs.as_mut_ptr(),
            evs.len() as libc::c_int,
            -1 as libc::c_int,
        )
    };
    match check(r as isize) {
        Ok(n) => Ok(evs[..n].iter().map(|e| e.u64).collect()),
        Err(Errno::EINTR) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Moves the calling (still single-threaded) boot process into the network
/// namespace at `path` (the spec's, under `--network=host`), before confinement.
pub fn join_netns(path: &str) -> SysResult<()> {
    let f = std::fs::File::open(path).map_err(Errno::from)?;
    // SAFETY: no pointer arguments; f is a live descriptor.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    check(r as isize).map(|_| ())
}

// ---------------------------------------------------------------------------
// The host's view of its interfaces (`net::hostview`): one netlink route socket
// and the namespace's `/proc/net` files, opened at boot before confinement. The
// netlink socket only ever receives dump and get requests the sentry builds
// itself; its two calls are in the allow-list only on its descriptor
// (`Cmp::HostViewFd`).

/// The netlink route socket and `/proc/net` files of the host's view.
struct View {
    netlink: OwnedFd,
    files: Vec<(&'static str, std::fs::File)>,
    /// The named network namespaces (`/run/netns/NAME`, as `ip netns` names
    /// them) that have an id in this one (`RTM_GETNSID` at boot): what `ip link`
    /// prints as a veth's `link-netns NAME`.
    nsids: Vec<(String, i32)>,
}

static VIEW: std::sync::OnceLock<View> = std::sync::OnceLock::new();

/// The `/proc/net` files host mode shows as the host has them: interfaces,
/// routes, and the namespace's internet sockets.
pub const VIEW_FILES: &[&str] = &[
    "dev",
    "if_inet6",
    "route",
    "ipv6_route",
    "tcp",
    "tcp6",
    "udp",
    "udp6",
    "udplite",
    "udplite6",
    "raw",
    "raw6",
    "sockstat",
    "sockstat6",
    "snmp",
    "snmp6",
    "netstat",
    "igmp",
    "igmp6",
    "arp",
    "dev_mcast",
];

/// `MSG_DONTWAIT`: the only flag of the view socket's `recvfrom`.
pub const VIEW_RECV_FLAGS: i32 = libc::MSG_DONTWAIT;

/// Opens the host's view (host mode, at boot, in the namespace the sandbox's
/// sockets are made in, before the filter). A `/proc/net` file that cannot be
/// opened is left out (it then reads as missing).
pub fn open_view() -> SysResult<()> {
    // SAFETY: no pointer arguments.
    let r = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    check(r as isize)?;
    // SAFETY: a descriptor the kernel just returned, owned by nobody else.
    let netlink = unsafe { OwnedFd::from_raw_fd(r) };
    let files = VIEW_FILES
        .iter()
        .filter_map(|n| {
            std::fs::File::open(format!("/proc/thread-self/net/{n}"))
                .ok()
                .map(|f| (*n, f))
        })
        .collect();
    let nsids = named_nsids(netlink.as_raw_fd());
    VIEW.set(View {
        netlink,
        files,
        nsids,
    })
    .map_err(|_| Errno::EBUSY)
}

/// `RTM_GETNSID`, `RTM_NEWNSID`, `NETNSA_NSID`, `NETNSA_FD`.
const RTM_GETNSID: u16 = 90;
const RTM_NEWNSID: u16 = 88;
const NETNSA_NSID: u16 = 1;
const NETNSA_FD: u16 = 3;

/// The ids this namespace gives the named network namespaces (those under
/// `/run/netns` and `/var/run/netns`, iproute2's directory), asked of the host at
/// boot (before the filter; a namespace named later is not known).
fn named_nsids(netlink: i32) -> Vec<(String, i32)> {
    let mut out: Vec<(String, i32)> = Vec::new();
    for dir in ["/run/netns", "/var/run/netns"] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if out.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let Ok(f) = std::fs::File::open(e.path()) else {
                continue;
            };
            if let Some(id) = nsid_of(netlink, f.as_raw_fd()) {
                out.push((name, id));
            }
        }
    }
    out
}

/// The id this namespace gives the namespace `ns` (a descriptor of it), if any.
fn nsid_of(netlink: i32, ns: i32) -> Option<i32> {
    let mut req = Vec::with_capacity(28);
    req.extend_from_slice(&28u32.to_le_bytes());
    req.extend_from_slice(&RTM_GETNSID.to_le_bytes());
    req.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_le_bytes());
    req.extend_from_slice(&1u32.to_le_bytes());
    req.extend_from_slice(&0u32.to_le_bytes());
    // rtgenmsg (AF_UNSPEC), aligned, then NETNSA_FD.
    req.extend_from_slice(&[0; 4]);
    req.extend_from_slice(&8u16.to_le_bytes());
    req.extend_from_slice(&NETNSA_FD.to_le_bytes());
    req.extend_from_slice(&ns.to_le_bytes());
    // SAFETY: req is a readable slice of req.len() bytes; no destination address.
    let r = unsafe {
        libc::sendto(
            netlink,
            req.as_ptr().cast(),
            req.len(),
            0,
            std::ptr::null(),
            0,
        )
    };
    check(r as isize).ok()?;
    let mut buf = [0u8; 512];
    // SAFETY: buf has room for buf.len() bytes; no source address wanted. Boot
    // time, before the filter: the answer comes at once (blocking read).
    let r = unsafe {
        libc::recvfrom(
            netlink,
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    let n = check(r as isize).ok()?.min(buf.len());
    let m = &buf[..n];
    if m.len() < 20 || u16::from_le_bytes([m[4], m[5]]) != RTM_NEWNSID {
        return None;
    }
    let mut off = 20;
    while off + 8 <= m.len() {
        let len = u16::from_le_bytes([m[off], m[off + 1]]) as usize;
        let kind = u16::from_le_bytes([m[off + 2], m[off + 3]]) & 0x3fff;
        if len < 4 {
            break;
        }
        if kind == NETNSA_NSID {
            let id = i32::from_le_bytes([m[off + 4], m[off + 5], m[off + 6], m[off + 7]]);
            return (id >= 0).then_some(id);
        }
        off += (len + 3) & !3;
    }
    None
}

/// The id this namespace gives the network namespace named `name`
/// (`/run/netns/NAME`), when it has one (host mode).
pub fn view_nsid(name: &str) -> Option<i32> {
    VIEW.get()?
        .nsids
        .iter()
        .find(|(n, _)| n == name)
        .map(|&(_, id)| id)
}

/// Whether `id` is the id this namespace gives one of the named network
/// namespaces (host mode).
pub fn view_has_nsid(id: i32) -> bool {
    VIEW.get()
        .is_some_and(|v| v.nsids.iter().any(|&(_, i)| i == id))
}

/// The view's netlink descriptor, once opened (for the filter's argument rule).
pub fn view_fd() -> Option<i32> {
    VIEW.get().map(|v| v.netlink.as_raw_fd())
}

/// Whether the host's view is open (host mode).
pub fn view_open() -> bool {
    VIEW.get().is_some()
}

/// Sends one request the sentry built to the host's netlink (to the kernel: no
/// address) and returns the answer's messages until the dump's `NLMSG_DONE`, an
/// `NLMSG_ERROR`, or (`dump` false) the first message. The caller serialises calls.
pub fn view_request(req: &[u8], dump: bool) -> SysResult<Vec<u8>> {
    let v = VIEW.get().ok_or(Errno::ENODEV)?;
    let fd = v.netlink.as_raw_fd();
    // SAFETY: req is a readable slice of req.len() bytes; no destination address.
    let r = unsafe { libc::sendto(fd, req.as_ptr().cast(), req.len(), 0, std::ptr::null(), 0) };
    check(r as isize)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    // A dump is bounded by the host's interfaces; this bounds a misbehaving one.
    for _ in 0..4096 {
        // SAFETY: buf has room for buf.len() bytes; no source address wanted.
        let r = unsafe {
            libc::recvfrom(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                VIEW_RECV_FLAGS,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        let n = check(r as isize)?.min(buf.len());
        let chunk = &buf[..n];
        out.extend_from_slice(chunk);
        let mut off = 0;
        while off + 16 <= chunk.len() {
            let len =
                u32::from_le_bytes([chunk[off], chunk[off + 1], chunk[off + 2], chunk[off + 3]])
                    as usize;
            let kind = u16::from_le_bytes([chunk[off + 4], chunk[off + 5]]);
            if kind == libc::NLMSG_DONE as u16 || kind == libc::NLMSG_ERROR as u16 || !dump {
                return Ok(out);
            }
            if len < 16 {
                break;
            }
            off += (len + 3) & !3;
        }
    }
    Err(Errno::EIO)
}

/// The current text of the host's `/proc/net/NAME` (one of [`VIEW_FILES`]), read
/// from its start with `pread`, which makes the kernel write it anew.
pub fn view_file(name: &str) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = &VIEW.get()?.files.iter().find(|(n, _)| *n == name)?.1;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match f.read_at(&mut buf, out.len() as u64) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Some(out),
        }
        if out.len() > 16 << 20 {
            return Some(out);
        }
    }
}
