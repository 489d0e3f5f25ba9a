//! `--network=host`: the program's TCP and UDP sockets are host sockets the sentry
//! makes and holds in the host's network namespace (for trusted workloads and
//! benchmarks; weaker isolation, see docs/networking.md). The host descriptors
//! never reach the program or its stubs: every call goes through the sentry
//! (`syscalls/hostsock.rs`), which checks addresses (the metadata server stays
//! concealed) and options before it makes the host call.
//!
//! Every host socket is non-blocking; a call that would block waits in the sentry
//! on the socket's [`WaitQueue`], so it is interruptible and killable like any
//! other wait. One host epoll set watches every socket (edge-triggered) and a
//! thread of its own wakes the socket's queue on each event; readiness itself is
//! asked of the host (`ppoll` with no wait) each time it is needed.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use crate::errno::{Errno, SysResult};
use crate::net::addr::Family;
use crate::net::{Netstack, SOCKFS_DEV};
use crate::platform::AddressSpace;
use crate::sys::hostnet;
use crate::vfs::{FileImpl, Stat};
use crate::wait::WaitQueue;

/// `SIOCINQ` (= `FIONREAD`).
pub const SIOCINQ: u64 = 0x541B;
/// `SIOCOUTQ` (= `TIOCOUTQ`).
pub const SIOCOUTQ: u64 = 0x5411;
pub use crate::sys::hostnet::SIOCOUTQNSD;

/// The host network of a sandbox in host mode: the epoll set and the sockets it
/// watches.
pub struct HostNet {
    epoll: OwnedFd,
    sockets: Mutex<HashMap<u64, Weak<HostSocket>>>,
    next: AtomicU64,
}

/// The host network, once [`start`] made it (host mode only).
static HOST: OnceLock<Arc<HostNet>> = OnceLock::new();

/// Starts host mode: the epoll set and its thread. Called at boot, before the
/// seccomp filter, which then takes the host-mode rows.
pub fn start() -> Result<(), String> {
    let epoll = hostnet::epoll_create().map_err(|e| format!("--network=host: epoll: {e}"))?;
    let net = Arc::new(HostNet {
        epoll,
        sockets: Mutex::new(HashMap::new()),
        next: AtomicU64::new(1),
    });
    if HOST.set(net.clone()).is_err() {
        return Err("--network=host: already started".into());
    }
    std::thread::Builder::new()
        .name("hostnet".into())
        .spawn(move || net.drive())
        .map_err(|e| format!("--network=host: poller thread: {e}"))?;
    // The program sees the host's interfaces (net::hostview).
    hostnet::open_view().map_err(|e| format!("--network=host: the host's interfaces: {e}"))?;
    tracing::info!("host network: the program's TCP and UDP sockets are host sockets");
    Ok(())
}

/// The host network when the sandbox is in host mode.
pub fn host() -> Option<&'static Arc<HostNet>> {
    HOST.get()
}

impl HostNet {
    /// Wakes the queue of each socket with a host event, forever.
    fn drive(&self) {
        loop {
            let tokens = match hostnet::epoll_wait(self.epoll.as_fd(), 64) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(
                        "host network: epoll_wait: {e}; host sockets no longer wake their waiters"
                    );
                    return;
                }
            };
            let woken: Vec<Arc<HostSocket>> = match self.sockets.lock() {
                Ok(m) => tokens
                    .iter()
                    .filter_map(|t| m.get(t).and_then(Weak::upgrade))
                    .collect(),
                Err(_) => return,
            };
            for s in woken {
                s.queue.notify_all();
            }
        }
    }

    /// Wraps the host socket `fd` and watches it.
    pub fn adopt(
        self: &Arc<Self>,
        fd: OwnedFd,
        family: Family,
        ty: i32,
        net: &Arc<Netstack>,
    ) -> SysResult<Arc<HostSocket>> {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        let s = Arc::new(HostSocket {
            fd,
            family,
            ty,
            token,
            queue: WaitQueue::new(),
            timeouts: Mutex::new((None, None)),
            linger: Mutex::new(None),
            urgent_seen: AtomicBool::new(false),
            ino: crate::net::next_ino(),
            host: self.clone(),
            net: net.clone(),
        });
        self.sockets
            .lock()
            .map_err(|_| Errno::EIO)?
            .insert(token, Arc::downgrade(&s));
        if let Err(e) = hostnet::epoll_add(self.epoll.as_fd(), s.fd.as_fd(), token) {
            // Dropping `s` takes it out of the map again.
            tracing::warn!("host network: epoll_ctl(ADD): {e}");
            return Err(e);
        }
        Ok(s)
    }
}

/// One host socket of the program.
pub struct HostSocket {
    fd: OwnedFd,
    family: Family,
    ty: i32,
    token: u64,
    queue: WaitQueue,
    /// `SO_RCVTIMEO`, `SO_SNDTIMEO`: kept here, as the sentry does the waiting.
    timeouts: Mutex<(Option<Duration>, Option<Duration>)>,
    /// `SO_LINGER` with a time: kept here, never given to the host, whose `close`
    /// would then block the sentry's thread for up to that time.
    linger: Mutex<Option<[u8; 8]>>,
    /// Urgent data was seen pending (`POLLPRI`) and its `SIGURG` sent; cleared
    /// once the host no longer reports it.
    urgent_seen: AtomicBool,
    ino: u64,
    host: Arc<HostNet>,
    /// The sandbox's network (its metadata policy, the interface ioctls).
    pub net: Arc<Netstack>,
}

impl Drop for HostSocket {
    fn drop(&mut self) {
        let _ = hostnet::epoll_del(self.host.epoll.as_fd(), self.fd.as_fd());
        if let Ok(mut m) = self.host.sockets.lock() {
            m.remove(&self.token);
        }
    }
}

impl HostSocket {
    /// The host descriptor (for the calls of `sys::hostnet`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// `SOCK_STREAM` or `SOCK_DGRAM`.
    pub fn sock_type(&self) -> i32 {
        self.ty
    }

    /// Whether it is a TCP socket.
    pub fn is_stream(&self) -> bool {
        self.ty == libc::SOCK_STREAM
    }

    /// The queue woken on every host event.
    pub fn queue(&self) -> &WaitQueue {
        &self.queue
    }

    /// The receive (`send` false) or send timeout.
    pub fn timeout(&self, send: bool) -> Option<Duration> {
        self.timeouts
            .lock()
            .ok()
            .and_then(|t| if send { t.1 } else { t.0 })
    }

    /// Sets the receive or send timeout.
    pub fn set_timeout(&self, send: bool, t: Option<Duration>) {
        if let Ok(mut g) = self.timeouts.lock() {
            if send {
                g.1 = t;
            } else {
                g.0 = t;
            }
        }
    }

    /// The `struct linger` the program set with a time, if it did.
    pub fn linger(&self) -> Option<[u8; 8]> {
        self.linger.lock().ok().and_then(|l| *l)
    }

    /// Keeps (`Some`) or forgets the program's `struct linger` with a time.
    pub fn set_linger(&self, v: Option<[u8; 8]>) {
        if let Ok(mut l) = self.linger.lock() {
            *l = v;
        }
    }

    /// The host's poll bits now.
    pub fn poll_now(&self) -> u32 {
        let ask = libc::POLLIN
            | libc::POLLOUT
            | libc::POLLPRI
            | libc::POLLRDHUP
            | libc::POLLRDNORM
            | libc::POLLWRNORM
            | libc::POLLRDBAND
            | libc::POLLWRBAND;
        match crate::sys::host::poll(&[(self.fd.as_fd(), ask)], Some(Duration::ZERO)) {
            Ok(r) => r.first().map_or(0, |&b| b as u16 as u32),
            Err(_) => libc::POLLERR as u32,
        }
    }

    /// Whether urgent data is pending at the host now and was not when last asked
    /// (TCP only): the edge that sends the file's owner `SIGURG`. The host reports
    /// urgent data as `POLLPRI` until it is read (or, inline, read past); a second
    /// urgent byte arriving before the first was read sends no second signal
    /// (Linux would send one).
    pub fn urgent_edge(&self) -> bool {
        if !self.is_stream() {
            return false;
        }
        if self.poll_now() & libc::POLLPRI as u32 != 0 {
            !self.urgent_seen.swap(true, Ordering::AcqRel)
        } else {
            self.urgent_seen.store(false, Ordering::Release);
            false
        }
    }

    /// Whether urgent data was seen and not yet known to be read.
    pub fn urgent_seen(&self) -> bool {
        self.urgent_seen.load(Ordering::Acquire)
    }

    /// Receives into `buf` without blocking, with room for `control_room` bytes of
    /// control messages.
    pub fn recv(
        &self,
        buf: &mut [u8],
        flags: i32,
        control_room: usize,
    ) -> SysResult<hostnet::Received> {
        hostnet::recv(self.fd.as_fd(), buf, flags, control_room)
    }

    /// Sends `data` without blocking, with the (checked) control messages
    /// `control`; `extra` within `hostnet::SEND_EXTRA`.
    pub fn send(
        &self,
        data: &[u8],
        to: Option<&[u8]>,
        control: &[u8],
        extra: i32,
    ) -> SysResult<usize> {
        hostnet::send(self.fd.as_fd(), data, to, control, extra)
    }
}

/// The open file of a host socket.
pub struct HostSocketFile(pub Arc<HostSocket>);

impl FileImpl for HostSocketFile {
    fn read(&self, buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        self.0.recv(buf, 0, 0).map(|r| r.n.min(buf.len()))
    }

    fn write(&self, buf: &[u8], _offset: u64) -> SysResult<usize> {
        // A datagram without a destination: the host wants it connected.
        self.0.send(buf, None, &[], 0)
    }

    fn seekable(&self) -> bool {
        false
    }

    fn stat(&self) -> SysResult<Stat> {
        Ok(Stat {
            dev: SOCKFS_DEV,
            ino: self.0.ino,
            mode: libc::S_IFSOCK | 0o777,
            nlink: 1,
            blksize: 4096,
            ..Default::default()
        })
    }

    fn ioctl(&self, req: u64, arg: u64, mem: &dyn AddressSpace) -> SysResult<u64> {
        match req {
            SIOCINQ | SIOCOUTQ | SIOCOUTQNSD | hostnet::SIOCATMARK => {
                if req == SIOCOUTQNSD && !self.0.is_stream() {
                    return Err(Errno::ENOTTY);
                }
                let v = hostnet::ioctl_int(self.0.fd(), req)?;
                crate::mm::io::write_all(mem, arg, &v.to_le_bytes())?;
                Ok(0)
            }
            // Interface requests answer from the sandbox's own view (its
            // interfaces), as netlink and /proc/net do: see docs/networking.md.
            _ => crate::net::ifreq::ioctl(Some(&self.0.net), req, arg, mem),
        }
    }

    fn readiness(&self) -> u32 {
        self.0.poll_now()
    }

    fn urgent_arrived(&self) -> bool {
        self.0.urgent_edge()
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.0.queue)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// The host socket behind an open file, if it is one.
pub fn host_of(file: &crate::vfs::OpenFile) -> Option<&Arc<HostSocket>> {
    file.imp()
        .as_any()
        .and_then(|a| a.downcast_ref::<HostSocketFile>())
        .map(|h| &h.0)
}
