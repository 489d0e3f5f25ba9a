//! TCP sockets. Over loopback a connection is a [`Conn`]: two byte queues, one per
//! direction, and the flags TCP's segments would carry (FIN: no more data; RST:
//! reset). A `connect` to a listener completes at once: the listener gets the
//! server end in its accept queue and both ends are established, as the three-way
//! handshake over `lo` would leave them. Errors follow Linux's TCP: writing after the
//! peer closed is accepted once and then `EPIPE` (the peer's RST), closing with
//! unread data resets the peer (`ECONNRESET`), a refused connect reports
//! `ECONNREFUSED` (through `SO_ERROR` when non-blocking).
//!
//! The accept queue holds the backlog plus one connection, as Linux's
//! `sk_acceptq_is_full`; a connect beyond it waits, as a client whose SYN the full
//! listener dropped retransmits it, until `accept` makes room (then it completes)
//! or the listener closes (`ECONNREFUSED`).
//!
//! The side that closes first lingers once closed ([`Orphans`]): FIN_WAIT2, then
//! TIME_WAIT for [`TIME_WAIT_LEN`], holding its port.
//!
//! Limits: each direction queues up to [`QUEUE_DEFAULT`] bytes (or twice
//! `SO_RCVBUF` when the receiver set it).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::net::addr::{self, Family, Local, SockAddr};
use crate::net::external::Linger;
use crate::net::opts::{Ctx, SockOpts};
use crate::net::ports::BindOpts;
use crate::net::{next_ino, Netstack};
use crate::wait::WaitQueue;
use smoltcp::iface::SocketHandle;

/// Bytes one direction of a connection queues when the receiver did not set
/// `SO_RCVBUF`.
pub const QUEUE_DEFAULT: usize = 1 << 20;
/// `net.core.somaxconn`.
pub const SOMAXCONN: usize = 4096;
/// MSS over `lo` (MTU 65536 less IP and TCP headers with timestamps).
const LO_MSS: u32 = 65483;
/// How long a closed connection stays in TIME_WAIT (Linux's `TCP_TIMEWAIT_LEN`).
pub const TIME_WAIT_LEN: Duration = Duration::from_secs(60);
/// How long an orphaned connection waits in FIN_WAIT2 for the peer's FIN
/// (`net.ipv4.tcp_fin_timeout`).
const FIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Closed loopback connections still holding their 4-tuple and port: the active
/// closer's FIN_WAIT2 and TIME_WAIT (Linux's timewait sockets). Each is the closed
/// socket itself, kept with its binding (so `bind` conflicts with it and
/// `/proc/net/tcp` lists it) until [`Orphans::reap`] finds its time over.
pub struct Orphans {
    list: Mutex<Vec<(Arc<TcpInner>, Instant)>>,
    /// TIME_WAIT's length (tests shorten it).
    tw_len: Mutex<Duration>,
    /// When the list was last gone through (at most every [`REAP_EVERY`]: each
    /// bind and close asks, and a busy server may hold thousands).
    reaped: Mutex<Option<Instant>>,
}

/// How often [`Orphans::reap`] goes through the list.
const REAP_EVERY: Duration = Duration::from_millis(20);

impl Default for Orphans {
    fn default() -> Self {
        Orphans {
            list: Mutex::new(Vec::new()),
            tw_len: Mutex::new(TIME_WAIT_LEN),
            reaped: Mutex::new(None),
        }
    }
}

impl Orphans {
    fn add(&self, s: Arc<TcpInner>) {
        if let Ok(mut l) = self.list.lock() {
            l.push((s, Instant::now()));
        }
    }

    /// Sets TIME_WAIT's length.
    pub fn set_time_wait(&self, d: Duration) {
        if let Ok(mut t) = self.tw_len.lock() {
            *t = d;
        }
    }

    /// Drops the connections whose time is over: their ports become free.
    pub fn reap(&self) {
        match self.reaped.lock() {
            Ok(mut at) => {
                if at.is_some_and(|t| t.elapsed() < REAP_EVERY) {
                    return;
                }
                *at = Some(Instant::now());
            }
            Err(_) => return,
        }
        let tw_len = self.tw_len.lock().map(|t| *t).unwrap_or(TIME_WAIT_LEN);
        let done: Vec<Arc<TcpInner>> = match self.list.lock() {
            Ok(mut l) => {
                let mut done = Vec::new();
                l.retain(|(s, at)| {
                    let over = s.linger_over(*at, tw_len);
                    if over {
                        done.push(s.clone());
                    }
                    !over
                });
                done
            }
            Err(_) => return,
        };
        for s in done {
            if let Ok(mut st) = s.lock() {
                if let Phase::Lingering { id, .. } = std::mem::replace(&mut st.phase, Phase::Idle) {
                    if let Some(ext) = s.net.external() {
                        ext.tcp_release(id);
                    }
                }
                if let Some((_, _, id)) = st.bound.take() {
                    s.net.tcp.unbind(id);
                }
            }
        }
    }

    /// How many connections linger.
    pub fn len(&self) -> usize {
        self.list.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// Whether none lingers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Linux's TCP states (`/proc/net/tcp`'s `st`, `tcpi_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Data flows both ways.
    Established = 1,
    /// Our SYN is out (`--network=sandbox`).
    SynSent = 2,
    /// A peer's SYN was answered.
    SynRecv = 3,
    /// We shut down writing; the peer has not acknowledged yet.
    FinWait1 = 4,
    /// We shut down writing and the peer acknowledged.
    FinWait2 = 5,
    /// Both sides closed, we first.
    TimeWait = 6,
    /// Not connected.
    Close = 7,
    /// The peer shut down writing.
    CloseWait = 8,
    /// Both sides closed, the peer first.
    LastAck = 9,
    /// Listening.
    Listen = 10,
    /// Both sides closed at once.
    Closing = 11,
}

impl State {
    fn of(s: smoltcp::socket::tcp::State) -> State {
        use smoltcp::socket::tcp::State as S;
        match s {
            S::Closed => State::Close,
            S::Listen => State::Listen,
            S::SynSent => State::SynSent,
            S::SynReceived => State::SynRecv,
            S::Established => State::Established,
            S::FinWait1 => State::FinWait1,
            S::FinWait2 => State::FinWait2,
            S::CloseWait => State::CloseWait,
            S::Closing => State::Closing,
            S::LastAck => State::LastAck,
            S::TimeWait => State::TimeWait,
        }
    }
}

#[derive(Default)]
struct ConnState {
    /// `buf[i]`: bytes on their way to side `i`.
    buf: [VecDeque<u8>; 2],
    cap: [usize; 2],
    /// Side `i` will get no more data (its peer sent FIN).
    fin: [bool; 2],
    /// Side `i` shut down writing (sent FIN).
    sent_fin: [bool; 2],
    /// Side `i` closed its socket.
    closed: [bool; 2],
    /// Side `i` shut down reading.
    shut_rd: [bool; 2],
    /// Side `i` was reset: no more I/O either way.
    reset: [bool; 2],
    /// Error to report to side `i` once (`SO_ERROR`).
    err: [Option<Errno>; 2],
    /// Bytes side `i` sent and received (`tcp_info`).
    sent: [u64; 2],
    received: [u64; 2],
    /// Which side shut down writing first (for the closing states).
    first_fin: Option<usize>,
    /// When the second FIN went out: the first closer's TIME_WAIT began.
    both_fin_at: Option<Instant>,
    /// Side `i` read past the peer's FIN (Linux's `copied_seq` then counts it).
    fin_read: [bool; 2],
}

impl ConnState {
    /// Side `side` sends its FIN.
    fn send_fin(&mut self, side: usize) {
        self.sent_fin[side] = true;
        self.fin[1 - side] = true;
        self.first_fin.get_or_insert(side);
        if self.sent_fin[1 - side] {
            self.both_fin_at.get_or_insert_with(Instant::now);
        }
    }
}

/// One loopback connection: side 0 is the connecting socket, side 1 the accepted.
pub struct Conn {
    st: Mutex<ConnState>,
    q: [Arc<WaitQueue>; 2],
    /// The network that carries it (its counters).
    net: Arc<Netstack>,
    /// The family of its packets (an index of `net.snmp`'s counters).
    fam: usize,
}

impl Conn {
    fn lock(&self) -> SysResult<MutexGuard<'_, ConnState>> {
        self.st.lock().map_err(|_| Errno::EIO)
    }

    fn wake(&self, side: usize) {
        self.q[side].notify_all();
    }

    fn send(&self, side: usize, data: &[u8]) -> SysResult<usize> {
        let peer = 1 - side;
        let mut s = self.lock()?;
        if let Some(e) = s.err[side].take() {
            return Err(e);
        }
        if s.sent_fin[side] || s.reset[side] {
            return Err(Errno::EPIPE);
        }
        if data.is_empty() {
            return Ok(0);
        }
        if s.closed[peer] {
            // The peer is gone: its stack answers this segment with RST, which
            // closes us with EPIPE for the next write (and ends the peer's
            // orphaned FIN_WAIT2 or TIME_WAIT).
            let snmp = &self.net.snmp;
            snmp.tcp_looped(self.fam, 2);
            crate::net::snmp::inc(&snmp.tcp.out_rsts);
            if !s.sent_fin[side] {
                // Reset in ESTABLISHED or CLOSE-WAIT.
                crate::net::snmp::inc(&snmp.tcp.estab_resets);
            }
            s.reset[side] = true;
            s.reset[peer] = true;
            s.fin[side] = true;
            s.err[side] = Some(Errno::EPIPE);
            drop(s);
            self.wake(side);
            return Ok(data.len());
        }
        let room = s.cap[peer].saturating_sub(s.buf[peer].len());
        if room == 0 {
            return Err(Errno::EAGAIN);
        }
        let n = room.min(data.len());
        s.buf[peer].extend(&data[..n]);
        self.net.count(n);
        // Its segments and the ACK that answers them.
        self.net
            .snmp
            .tcp_looped(self.fam, n.div_ceil(LO_MSS as usize) as u64 + 1);
        s.sent[side] += n as u64;
        s.received[peer] += n as u64;
        drop(s);
        self.wake(peer);
        Ok(n)
    }

    fn recv(&self, side: usize, len: usize, peek: bool) -> SysResult<Vec<u8>> {
        let mut s = self.lock()?;
        if !s.buf[side].is_empty() {
            // The peer's writers (and pollers for POLLOUT) wait only while this
            // queue is full: only then does draining it concern them. Waking them on
            // every read woke a request/response peer blocked in its own read for
            // nothing, twice a round trip.
            let was_full = s.buf[side].len() >= s.cap[side];
            let n = len.min(s.buf[side].len());
            let mut out = Vec::with_capacity(n);
            let (a, b) = s.buf[side].as_slices();
            let k = a.len().min(n);
            out.extend_from_slice(&a[..k]);
            out.extend_from_slice(&b[..n - k]);
            if !peek {
                s.buf[side].drain(..n);
                // A read that asks for more than is queued goes on to the FIN.
                if n < len && s.buf[side].is_empty() && s.fin[side] {
                    s.fin_read[side] = true;
                }
            }
            drop(s);
            if !peek && was_full {
                // Room was made: the peer's writers may go on.
                self.wake(1 - side);
            }
            return Ok(out);
        }
        if let Some(e) = s.err[side].take() {
            return Err(e);
        }
        if s.fin[side] || s.shut_rd[side] || s.reset[side] || len == 0 {
            if s.fin[side] && len > 0 && !peek {
                s.fin_read[side] = true;
            }
            return Ok(Vec::new());
        }
        Err(Errno::EAGAIN)
    }

    fn shutdown(&self, side: usize, rd: bool, wr: bool) -> SysResult<()> {
        let mut s = self.lock()?;
        if rd {
            s.shut_rd[side] = true;
        }
        if wr && !s.sent_fin[side] {
            s.send_fin(side);
            // The FIN and its ACK.
            self.net.snmp.tcp_looped(self.fam, 2);
        }
        drop(s);
        self.wake(side);
        self.wake(1 - side);
        Ok(())
    }

    /// Side `side` closes: FIN to the peer, or RST when data was left unread (or
    /// `abort`: `SO_LINGER` with a zero timeout, an unaccepted connection dropped).
    fn close(&self, side: usize, abort: bool) {
        let peer = 1 - side;
        if let Ok(mut s) = self.lock() {
            s.closed[side] = true;
            let unread = !s.buf[side].is_empty();
            s.buf[side].clear();
            if (unread || abort) && !s.reset[side] && !s.closed[peer] {
                let snmp = &self.net.snmp;
                snmp.tcp_looped(self.fam, 1);
                crate::net::snmp::inc(&snmp.tcp.out_rsts);
                // Each side leaving ESTABLISHED or CLOSE-WAIT for CLOSED.
                for x in [side, peer] {
                    if !s.sent_fin[x] {
                        crate::net::snmp::inc(&snmp.tcp.estab_resets);
                    }
                }
                s.reset[peer] = true;
                s.fin[peer] = true;
                // A peer that already got our FIN is in CLOSE_WAIT: Linux says EPIPE.
                s.err[peer] = Some(if s.sent_fin[side] {
                    Errno::EPIPE
                } else {
                    Errno::ECONNRESET
                });
            } else if !s.sent_fin[side] {
                s.send_fin(side);
                self.net.snmp.tcp_looped(self.fam, 2);
            }
        }
        self.wake(peer);
    }

    /// Whether side `side`, closed, lingers as Linux's active closer does: it sent
    /// the first FIN and was not reset (FIN_WAIT2, then TIME_WAIT).
    fn lingers(&self, side: usize) -> bool {
        self.lock()
            .map(|s| !s.reset[side] && s.first_fin == Some(side))
            .unwrap_or(false)
    }

    /// Whether side `side`, closed at `closed_at`, is done lingering: reset, in
    /// TIME_WAIT for `tw_len`, or in FIN_WAIT2 for `tcp_fin_timeout`.
    fn linger_over(&self, side: usize, closed_at: Instant, tw_len: Duration) -> bool {
        let Ok(s) = self.lock() else {
            return true;
        };
        if s.reset[side] {
            return true;
        }
        match s.both_fin_at {
            Some(t) => t.elapsed() >= tw_len,
            None => closed_at.elapsed() >= FIN_TIMEOUT,
        }
    }

    fn state(&self, side: usize) -> State {
        let Ok(s) = self.lock() else {
            return State::Close;
        };
        if s.reset[side] {
            return State::Close;
        }
        match (s.sent_fin[side], s.fin[side]) {
            (false, false) => State::Established,
            (true, false) => State::FinWait2,
            (false, true) => State::CloseWait,
            (true, true) if s.first_fin == Some(side) => State::TimeWait,
            (true, true) => State::LastAck,
        }
    }

    /// `poll` bits for side `side` (Linux's `tcp_poll`).
    fn readiness(&self, side: usize) -> u32 {
        let Ok(s) = self.lock() else {
            return libc::POLLERR as u32;
        };
        let peer = 1 - side;
        let rcv_shut = s.fin[side] || s.shut_rd[side] || s.reset[side];
        let snd_shut = s.sent_fin[side] || s.reset[side];
        let mut r = 0u32;
        if rcv_shut && snd_shut {
            r |= libc::POLLHUP as u32;
        }
        if rcv_shut {
            r |= (libc::POLLIN | libc::POLLRDNORM | libc::POLLRDHUP) as u32;
        }
        if !s.buf[side].is_empty() {
            r |= (libc::POLLIN | libc::POLLRDNORM) as u32;
        }
        if snd_shut || s.closed[peer] || s.buf[peer].len() < s.cap[peer] {
            r |= (libc::POLLOUT | libc::POLLWRNORM) as u32;
        }
        if s.err[side].is_some() {
            r |= libc::POLLERR as u32;
        }
        r
    }

    /// `sk_shutdown` of side `side`: `RCV_SHUTDOWN` 1 (the peer's FIN, a reset or
    /// `SHUT_RD`), `SEND_SHUTDOWN` 2 (our FIN or a reset).
    fn shutdown_bits(&self, side: usize) -> u8 {
        self.lock()
            .map(|s| {
                let rcv = s.fin[side] || s.shut_rd[side] || s.reset[side];
                let snd = s.sent_fin[side] || s.reset[side];
                rcv as u8 | (snd as u8) << 1
            })
            .unwrap_or(3)
    }

    /// Whether side `side` has the peer's FIN and has not read up to it: Linux's
    /// `rcv_nxt - copied_seq` (`/proc/net/tcp`'s and `ss`'s receive queue) then
    /// counts it as one more byte.
    fn fin_unread(&self, side: usize) -> bool {
        self.lock()
            .map(|s| s.fin[side] && s.sent_fin[1 - side] && !s.reset[side] && !s.fin_read[side])
            .unwrap_or(false)
    }

    fn queued(&self, side: usize) -> (usize, usize) {
        self.lock()
            .map(|s| (s.buf[side].len(), s.buf[1 - side].len()))
            .unwrap_or((0, 0))
    }

    fn counters(&self, side: usize) -> (u64, u64) {
        self.lock()
            .map(|s| (s.sent[side], s.received[side]))
            .unwrap_or((0, 0))
    }
}

enum Phase {
    /// Not connected (new, or after a refused connect or a reset).
    Idle,
    /// `listen` was called: established connections waiting for `accept`.
    Listen {
        queue: VecDeque<Arc<TcpInner>>,
        max: usize,
    },
    /// Connected.
    Connected {
        conn: Arc<Conn>,
        side: usize,
        local: SockAddr,
        peer: SockAddr,
    },
    /// Connecting or connected through the pod's interface (`--network=sandbox`):
    /// a socket of the userspace stack.
    Remote {
        h: SocketHandle,
        local: SockAddr,
        peer: SockAddr,
    },
    /// Closed first by this side through the pod's interface: FIN-WAIT-2 or
    /// TIME-WAIT, the connection's record `id` on the interface
    /// (`External::tcp_linger`).
    Lingering {
        id: u64,
        local: SockAddr,
        peer: SockAddr,
    },
}

/// The state of a TCP socket behind its lock.
pub struct TcpState {
    opts: SockOpts,
    /// The binding: address, port, and its id in the port table.
    bound: Option<(Local, u16, u64)>,
    phase: Phase,
    /// An error not tied to a connection (a refused connect), for `SO_ERROR`.
    err: Option<Errno>,
    /// A non-blocking connect was started and not yet confirmed by a second
    /// `connect` (Linux then answers 0 once, `EISCONN` after).
    connecting: bool,
    /// A connect failed or the connection died: Linux's `tcp_done` state, which
    /// polls as hung up, readable and writable.
    dead: bool,
    /// The port this listener also takes from the pod's interface.
    ext_listen: Option<u16>,
    /// A connect waiting for room in a full listener's accept queue.
    syn_wait: Option<SynWait>,
    /// Connects waiting for room in this listener's accept queue, oldest first.
    syn_waiters: VecDeque<std::sync::Weak<TcpInner>>,
    /// Closed, lingering in FIN_WAIT2 or TIME_WAIT ([`Orphans`]).
    orphan: bool,
    /// [`TcpInner::retry_syn`] is under way.
    syn_retrying: bool,
    /// This listener told the pod's interface its accept queue is full.
    ext_full: bool,
}

/// A connect to a listener whose accept queue was full (Linux drops the SYN and
/// the client sends it again).
#[derive(Clone)]
struct SynWait {
    listener: std::sync::Weak<TcpInner>,
    local: SockAddr,
    peer: SockAddr,
    rcvcap: usize,
}

/// A TCP socket: shared by its file and, while it waits to be accepted, its
/// listener's queue.
pub struct TcpInner {
    family: Family,
    ino: u64,
    uid: u32,
    wq: Arc<WaitQueue>,
    st: Mutex<TcpState>,
    /// The network the socket was made in.
    pub(crate) net: Arc<Netstack>,
}

impl Drop for TcpInner {
    fn drop(&mut self) {
        if let Ok(st) = self.st.get_mut() {
            if let Some((_, _, id)) = st.bound {
                self.net.tcp.unbind(id);
            }
        }
    }
}

/// What a `connect` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Connected {
    /// Established.
    Now,
    /// Non-blocking: established or refused, reported later (`EINPROGRESS`).
    InProgress,
    /// Blocking, through the pod's interface: wait on the queue until
    /// [`TcpInner::connect_settled`], then `connect` again for the outcome.
    Pending,
}

impl TcpInner {
    /// A new socket of `net`, of `family`, owned by `uid`.
    pub fn new(net: &Arc<Netstack>, family: Family, uid: u32) -> Arc<TcpInner> {
        Self::with(net, family, uid, SockOpts::new(true))
    }

    fn with(net: &Arc<Netstack>, family: Family, uid: u32, opts: SockOpts) -> Arc<TcpInner> {
        let s = Arc::new(TcpInner {
            net: net.clone(),
            family,
            ino: next_ino(),
            uid,
            wq: Arc::new(WaitQueue::new()),
            st: Mutex::new(TcpState {
                opts,
                bound: None,
                phase: Phase::Idle,
                err: None,
                connecting: false,
                dead: false,
                ext_listen: None,
                syn_wait: None,
                syn_waiters: VecDeque::new(),
                orphan: false,
                syn_retrying: false,
                ext_full: false,
            }),
        });
        net.track_tcp(&s);
        s
    }

    fn lock(&self) -> SysResult<MutexGuard<'_, TcpState>> {
        self.st.lock().map_err(|_| Errno::EIO)
    }

    /// The socket's family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The queue notified when readiness may change.
    pub fn queue(&self) -> &WaitQueue {
        &self.wq
    }

    /// `fstat`'s inode number (also `/proc/net/tcp`'s).
    pub fn ino(&self) -> u64 {
        self.ino
    }

    fn bind_locked(
        self: &Arc<Self>,
        st: &mut TcpState,
        ip: std::net::IpAddr,
        port: u16,
        connect_autobind: bool,
    ) -> SysResult<()> {
        if st.bound.is_some() {
            return Err(Errno::EINVAL);
        }
        self.net.check_bindable(ip)?;
        // Connections whose TIME_WAIT is over give their ports back first.
        self.net.tcp_orphans.reap();
        let local = Local::of(self.family, ip, st.opts.v6only);
        let opts = BindOpts {
            reuseaddr: st.opts.reuseaddr,
            reuseport: st.opts.reuseport,
            uid: self.uid,
            tcp: true,
            connect: connect_autobind,
        };
        let (id, port) = self.net.tcp.bind(local, port, opts, Arc::downgrade(self))?;
        st.bound = Some((local, port, id));
        Ok(())
    }

    /// `bind(2)`.
    pub fn bind(self: &Arc<Self>, addr: SockAddr) -> SysResult<()> {
        let mut st = self.lock()?;
        if self.family == Family::V6
            && st.opts.v6only
            && addr.ip.is_ipv4()
            && !addr.ip.is_unspecified()
        {
            return Err(Errno::EADDRNOTAVAIL);
        }
        self.bind_locked(&mut st, addr.ip, addr.port, false)?;
        st.opts.bindport_lock = addr.port != 0;
        // A specific IPv6 address makes the socket IPv6-only (`inet6_bind`).
        st.opts.v6only |= crate::net::addr::binds_v6_only(addr.ip);
        Ok(())
    }

    /// `listen(2)`: binds an ephemeral port first if needed.
    pub fn listen(self: &Arc<Self>, backlog: i32) -> SysResult<()> {
        let mut st = self.lock()?;
        let max = (backlog.max(0) as usize).min(SOMAXCONN);
        let connecting = st.connecting;
        match &mut st.phase {
            Phase::Listen { max: m, .. } => {
                *m = max;
                return Ok(());
            }
            Phase::Connected { .. } | Phase::Remote { .. } | Phase::Lingering { .. } => {
                return Err(Errno::EINVAL)
            }
            Phase::Idle if connecting => return Err(Errno::EINVAL),
            Phase::Idle => {}
        }
        if st.bound.is_none() {
            let any = self.family.any();
            self.bind_locked(&mut st, any, 0, false)?;
        }
        if let Some((local, port, id)) = st.bound {
            self.net.tcp.set_listening(id, true);
            let ip = local.ip(self.family);
            if let (Some(ext), true) = (self.net.external(), self.net.covers_external(ip)) {
                ext.tcp_listen(port, (!addr::is_any(ip)).then_some(ip));
                st.ext_listen = Some(port);
            }
        }
        st.phase = Phase::Listen {
            queue: VecDeque::new(),
            max,
        };
        st.dead = false;
        Ok(())
    }

    /// Whether `listen` was called.
    pub fn is_listening(&self) -> bool {
        self.lock()
            .map(|s| matches!(s.phase, Phase::Listen { .. }))
            .unwrap_or(false)
    }

    /// `connect(2)` to `dst`. A non-blocking connect starts and reports
    /// [`Connected::InProgress`]; its outcome is read with a second `connect` or
    /// `SO_ERROR`.
    pub fn connect(self: &Arc<Self>, dst: SockAddr, nonblock: bool) -> SysResult<Connected> {
        let mut st = self.lock()?;
        match st.phase {
            Phase::Listen { .. } => return Err(Errno::EISCONN),
            Phase::Connected { .. } if st.connecting => {
                st.connecting = false;
                return Ok(Connected::Now);
            }
            Phase::Connected { .. } => return Err(Errno::EISCONN),
            Phase::Remote { h, .. } if st.connecting => {
                let Some(ext) = self.net.external() else {
                    return Err(Errno::EIO);
                };
                if ext.tcp_connecting(h) {
                    // A blocking connect restarted after a signal waits on.
                    return if nonblock {
                        Err(Errno::EALREADY)
                    } else {
                        Ok(Connected::Pending)
                    };
                }
                st.connecting = false;
                if let Some(e) = ext.tcp_take_err(h) {
                    crate::net::snmp::inc(&self.net.snmp.tcp.attempt_fails);
                    st.phase = Phase::Idle;
                    st.dead = true;
                    drop(st);
                    ext.tcp_close(h, true);
                    return Err(e);
                }
                return Ok(Connected::Now);
            }
            Phase::Remote { .. } | Phase::Lingering { .. } => return Err(Errno::EISCONN),
            Phase::Idle if st.connecting && st.syn_wait.is_some() => {
                return if nonblock {
                    Err(Errno::EALREADY)
                } else {
                    Ok(Connected::Pending)
                };
            }
            Phase::Idle if st.connecting => {
                st.connecting = false;
                return Err(st.err.take().unwrap_or(Errno::ECONNREFUSED));
            }
            Phase::Idle => {}
        }
        if self.family == Family::V6 && dst.ip.is_ipv4() && st.opts.v6only {
            return Err(Errno::ENETUNREACH);
        }
        let (dst_ip, src_ip) = self.net.route(dst.ip)?;
        if dst.port == 0 {
            return Err(Errno::ECONNREFUSED);
        }
        let src_ip = match st.bound {
            Some((Local::Ip(ip), _, _)) => ip,
            _ => src_ip,
        };
        let auto = st.bound.is_none();
        if auto {
            self.bind_locked(&mut st, src_ip, 0, true)?;
        }
        let src_port = st.bound.map(|(_, p, _)| p).unwrap_or(0);
        let mut local = SockAddr::new(src_ip, src_port);
        let peer = SockAddr::new(dst_ip, dst.port);
        if let (true, Some(ext)) = (self.net.is_external(dst_ip), self.net.external()) {
            let h = match ext.tcp_connect(local, peer, &self.wq, st.opts.nodelay, !auto) {
                Err(Errno::EADDRNOTAVAIL) if auto => {
                    // The ephemeral port's 4-tuple to this peer is in TIME-WAIT
                    // (reusable over loopback only): another port, one no
                    // closed connection holds.
                    if let Some((_, _, id)) = st.bound.take() {
                        self.net.tcp.unbind(id);
                    }
                    self.bind_locked(&mut st, src_ip, 0, false)?;
                    local.port = st.bound.map(|(_, p, _)| p).unwrap_or(0);
                    ext.tcp_connect(local, peer, &self.wq, st.opts.nodelay, false)?
                }
                r => r?,
            };
            st.phase = Phase::Remote { h, local, peer };
            st.dead = false;
            st.connecting = true;
            crate::net::snmp::inc(&self.net.snmp.tcp.active_opens);
            return Ok(if nonblock {
                Connected::InProgress
            } else {
                Connected::Pending
            });
        }
        let rcvcap = queue_cap(&st.opts);
        drop(st);
        crate::net::snmp::inc(&self.net.snmp.tcp.active_opens);

        // The filter runs under the port table's lock: it must not take a
        // socket's (sockets take the table's under theirs).
        let listener = self
            .net
            .tcp
            .lookup(peer.ip, peer.port, |_, listening| listening);
        let result = match &listener {
            Some(l) => l.enqueue(local, peer, rcvcap, self.wq.clone()),
            None => Err(Errno::ECONNREFUSED),
        };
        if let (Err(Errno::EAGAIN), Some(l)) = (&result, listener) {
            // The accept queue is full: wait for room.
            {
                let mut st = self.lock()?;
                st.syn_wait = Some(SynWait {
                    listener: Arc::downgrade(&l),
                    local,
                    peer,
                    rcvcap,
                });
                st.connecting = true;
                st.dead = false;
            }
            l.add_syn_waiter(self);
            // Room may have been made before this socket was listed.
            self.retry_syn();
            return Ok(if nonblock {
                Connected::InProgress
            } else {
                Connected::Pending
            });
        }
        let mut st = self.lock()?;
        match result {
            Ok(conn) => {
                st.phase = Phase::Connected {
                    conn,
                    side: 0,
                    local,
                    peer,
                };
                st.dead = false;
                st.connecting = nonblock;
                drop(st);
                self.wq.notify_all();
                Ok(if nonblock {
                    Connected::InProgress
                } else {
                    Connected::Now
                })
            }
            Err(e) => {
                st.dead = true;
                // The SYN and the RST that refused it.
                let snmp = &self.net.snmp;
                crate::net::snmp::inc(&snmp.tcp.attempt_fails);
                crate::net::snmp::inc(&snmp.tcp.out_rsts);
                snmp.tcp_looped(crate::net::snmp::fam_of(peer.ip), 2);
                if nonblock {
                    st.err = Some(e);
                    st.connecting = true;
                    drop(st);
                    self.wq.notify_all();
                    Ok(Connected::InProgress)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// The listener's half of a connect: makes the server socket and queues it.
    fn enqueue(
        self: &Arc<Self>,
        client: SockAddr,
        local: SockAddr,
        client_cap: usize,
        client_q: Arc<WaitQueue>,
    ) -> SysResult<Arc<Conn>> {
        let mut st = self.lock()?;
        let opts = st.opts.clone();
        let Phase::Listen { queue, max } = &mut st.phase else {
            return Err(Errno::ECONNREFUSED);
        };
        if queue.len() > *max {
            return Err(Errno::EAGAIN);
        }
        let server = TcpInner::with(&self.net, self.family, self.uid, opts.clone());
        let fam = crate::net::snmp::fam_of(local.ip);
        let snmp = &self.net.snmp;
        crate::net::snmp::inc(&snmp.tcp.passive_opens);
        // SYN, SYN-ACK, ACK.
        snmp.tcp_looped(fam, 3);
        let conn = Arc::new(Conn {
            fam,
            net: self.net.clone(),
            st: Mutex::new(ConnState {
                cap: [client_cap, queue_cap(&opts)],
                ..Default::default()
            }),
            q: [client_q, server.wq.clone()],
        });
        {
            // The accepted socket shares the listener's port without a binding of
            // its own (Linux's inherited bind bucket).
            let mut ss = server.lock()?;
            ss.phase = Phase::Connected {
                conn: conn.clone(),
                side: 1,
                local,
                peer: client,
            };
        }
        queue.push_back(server);
        drop(st);
        self.wq.notify_all();
        Ok(conn)
    }

    /// A connection from outside reached this listener (`--network=sandbox`): it
    /// becomes a new socket in the accept queue.
    pub fn enqueue_remote(
        self: &Arc<Self>,
        h: SocketHandle,
        local: SockAddr,
        peer: SockAddr,
    ) -> SysResult<()> {
        let ext = self.net.external().ok_or(Errno::EIO)?;
        let mut st = self.lock()?;
        let opts = st.opts.clone();
        let Phase::Listen { queue, max } = &mut st.phase else {
            return Err(Errno::ECONNREFUSED);
        };
        // The queue may pass its bound by the handshakes that were under way when
        // it filled (at most the pool's); new SYNs are dropped from then on
        // (`External::tcp_backlog_full`), so no connection is reset.
        let server = TcpInner::with(&self.net, self.family, self.uid, opts);
        crate::net::snmp::inc(&self.net.snmp.tcp.passive_opens);
        ext.adopt(h, &server.wq);
        server.lock()?.phase = Phase::Remote { h, local, peer };
        queue.push_back(server);
        let now_full = queue.len() > *max;
        if let (true, false, Some(port)) = (now_full, st.ext_full, st.ext_listen) {
            st.ext_full = true;
            ext.tcp_backlog_full(port, true);
        }
        drop(st);
        self.wq.notify_all();
        Ok(())
    }

    /// Whether a connection is no longer being set up (established or failed):
    /// through the pod's interface, or waiting for room in a listener's queue.
    pub fn connect_settled(&self) -> bool {
        let Ok(st) = self.lock() else {
            return true;
        };
        if st.syn_wait.is_some() {
            // Waiting for room in a full accept queue.
            return false;
        }
        let Phase::Remote { h, .. } = st.phase else {
            return true;
        };
        drop(st);
        !self.net.external().is_some_and(|e| e.tcp_connecting(h))
    }

    /// `accept(2)`: the oldest established connection (`EAGAIN` when none,
    /// `EINVAL` when not listening).
    pub fn accept(&self) -> SysResult<Arc<TcpInner>> {
        let mut st = self.lock()?;
        let (got, room) = match &mut st.phase {
            Phase::Listen { queue, max } => {
                let got = queue.pop_front().ok_or(Errno::EAGAIN)?;
                (got, queue.len() <= *max)
            }
            _ => return Err(Errno::EINVAL),
        };
        if let (true, true, Some(port), Some(ext)) =
            (room, st.ext_full, st.ext_listen, self.net.external())
        {
            // SYNs from outside are taken again.
            st.ext_full = false;
            ext.tcp_backlog_full(port, false);
        }
        drop(st);
        // A slot is free: the oldest connect still waiting takes it (its next SYN).
        loop {
            let Some(w) = self.lock()?.syn_waiters.pop_front() else {
                break;
            };
            if w.upgrade().is_some_and(|w| w.retry_syn()) {
                break;
            }
        }
        Ok(got)
    }

    /// Lists `client` as waiting for room in this listener's accept queue.
    fn add_syn_waiter(&self, client: &Arc<TcpInner>) {
        if let Ok(mut st) = self.lock() {
            st.syn_waiters
                .retain(|w| w.strong_count() > 0 && w.as_ptr() != Arc::as_ptr(client));
            st.syn_waiters.push_back(Arc::downgrade(client));
        }
    }

    /// Tries again a connect that found its listener's accept queue full: it
    /// completes when there is room now, fails with `ECONNREFUSED` when the
    /// listener is gone, and otherwise waits on (listed again). `false`: it was
    /// not waiting.
    fn retry_syn(self: &Arc<Self>) -> bool {
        let Ok(mut st) = self.lock() else {
            return false;
        };
        // The socket stays in SYN_SENT (`syn_wait` kept) until the outcome is in:
        // seen between, as not connecting, a reader got ENOTCONN and a blocking
        // connect ECONNREFUSED. One retry at a time (`syn_retrying`): a second
        // would make a second connection.
        let w = match &st.syn_wait {
            Some(w) if !st.syn_retrying => w.clone(),
            _ => return false,
        };
        st.syn_retrying = true;
        drop(st);
        let result = match w.listener.upgrade() {
            Some(l) => l.enqueue(w.local, w.peer, w.rcvcap, self.wq.clone()),
            None => Err(Errno::ECONNREFUSED),
        };
        let Ok(mut st) = self.lock() else {
            return true;
        };
        st.syn_retrying = false;
        if !matches!(st.phase, Phase::Idle) || !st.connecting || st.syn_wait.is_none() {
            // Closed meanwhile: a connection made now is closed with it.
            if let Ok(conn) = result {
                conn.close(0, true);
            }
            return true;
        }
        match result {
            Ok(conn) => {
                st.syn_wait = None;
                st.phase = Phase::Connected {
                    conn,
                    side: 0,
                    local: w.local,
                    peer: w.peer,
                };
            }
            Err(Errno::EAGAIN) => {
                let l = w.listener.upgrade();
                drop(st);
                if let Some(l) = l {
                    l.add_syn_waiter(self);
                }
                return true;
            }
            Err(e) => {
                st.syn_wait = None;
                st.err = Some(e);
                st.dead = true;
            }
        }
        drop(st);
        self.wq.notify_all();
        true
    }

    /// Sends; `EAGAIN` when the peer's queue is full.
    pub fn send(&self, data: &[u8]) -> SysResult<usize> {
        let mut st = self.lock()?;
        match &st.phase {
            Phase::Connected { conn, side, .. } => {
                let (conn, side) = (conn.clone(), *side);
                drop(st);
                conn.send(side, data)
            }
            Phase::Remote { h, .. } => {
                let (h, nodelay) = (*h, st.opts.nodelay);
                drop(st);
                self.net
                    .external()
                    .ok_or(Errno::EIO)?
                    .tcp_send(h, data, nodelay)
            }
            // SYN_SENT (waiting for room in the listener's queue): a blocking
            // sender waits for the connection, as Linux's `sk_stream_wait_connect`.
            Phase::Idle if st.syn_wait.is_some() => Err(Errno::EAGAIN),
            _ => match st.err.take() {
                Some(e) => Err(e),
                None => Err(Errno::EPIPE),
            },
        }
    }

    /// Receives up to `len` bytes; empty at end of stream, `EAGAIN` when nothing
    /// is there yet.
    pub fn recv(&self, len: usize, peek: bool) -> SysResult<Vec<u8>> {
        let mut st = self.lock()?;
        match &st.phase {
            Phase::Connected { conn, side, .. } => {
                let (conn, side) = (conn.clone(), *side);
                drop(st);
                conn.recv(side, len, peek)
            }
            Phase::Remote { h, .. } => {
                let h = *h;
                drop(st);
                self.net
                    .external()
                    .ok_or(Errno::EIO)?
                    .tcp_recv(h, len, peek)
            }
            // SYN_SENT: nothing yet (Linux waits, or EAGAIN when non-blocking).
            Phase::Idle if st.syn_wait.is_some() => Err(Errno::EAGAIN),
            _ => match st.err.take() {
                Some(e) => Err(e),
                None if st.dead => Ok(Vec::new()),
                None => Err(Errno::ENOTCONN),
            },
        }
    }

    /// `shutdown(2)` (`how` already checked).
    pub fn shutdown(&self, how: i32) -> SysResult<()> {
        let st = self.lock()?;
        match &st.phase {
            Phase::Connected { conn, side, .. } => {
                let (conn, side) = (conn.clone(), *side);
                drop(st);
                conn.shutdown(side, how != libc::SHUT_WR, how != libc::SHUT_RD)
            }
            Phase::Remote { h, .. } => {
                let h = *h;
                drop(st);
                self.net.external().ok_or(Errno::EIO)?.tcp_shutdown(
                    h,
                    how != libc::SHUT_WR,
                    how != libc::SHUT_RD,
                )
            }
            Phase::Listen { .. } if how != libc::SHUT_WR => {
                // Linux stops a listener on SHUT_RD: it becomes an unbound-for-
                // connections closed socket; waiters in accept wake with EINVAL.
                drop(st);
                self.stop_listening();
                Ok(())
            }
            _ => Err(Errno::ENOTCONN),
        }
    }

    fn stop_listening(&self) {
        let queued = match self.lock() {
            Ok(mut st) => {
                if let Some((_, _, id)) = st.bound {
                    self.net.tcp.set_listening(id, false);
                }
                if let (Some(port), Some(ext)) = (st.ext_listen.take(), self.net.external()) {
                    ext.tcp_unlisten(port, std::mem::take(&mut st.ext_full));
                }
                match std::mem::replace(&mut st.phase, Phase::Idle) {
                    Phase::Listen { queue, .. } => queue,
                    other => {
                        st.phase = other;
                        VecDeque::new()
                    }
                }
            }
            Err(_) => VecDeque::new(),
        };
        for s in queued {
            s.close(true);
        }
        self.wq.notify_all();
    }

    /// An active close: the socket lingers (FIN_WAIT2, then TIME_WAIT) holding its
    /// port, an accepted one taking its listener's port for itself.
    fn linger(self: &Arc<Self>, phase: Phase, local: SockAddr) {
        let Ok(mut st) = self.lock() else {
            return;
        };
        st.phase = phase;
        st.orphan = true;
        match st.bound {
            Some((_, _, id)) => self.net.tcp.set_timewait(id),
            None => {
                let opts = BindOpts {
                    reuseaddr: st.opts.reuseaddr,
                    reuseport: st.opts.reuseport,
                    uid: self.uid,
                    tcp: true,
                    connect: false,
                };
                let l = Local::of(self.family, local.ip, st.opts.v6only);
                let id = self
                    .net
                    .tcp
                    .bind_timewait(l, local.port, opts, Arc::downgrade(self));
                st.bound = Some((l, local.port, id));
            }
        }
        drop(st);
        self.net.tcp_orphans.add(self.clone());
        self.net.tcp_orphans.reap();
        self.wq.notify_all();
    }

    /// Whether this orphan's FIN_WAIT2 or TIME_WAIT is over.
    fn linger_over(&self, closed_at: Instant, tw_len: Duration) -> bool {
        let Ok(st) = self.lock() else {
            return true;
        };
        match &st.phase {
            Phase::Connected { conn, side, .. } => conn.linger_over(*side, closed_at, tw_len),
            Phase::Lingering { id, .. } => {
                let id = *id;
                drop(st);
                match self.net.external().map(|e| e.tcp_linger(id)) {
                    Some(Linger::Closing) => closed_at.elapsed() >= FIN_TIMEOUT,
                    Some(Linger::TimeWait(t)) => t.elapsed() >= tw_len,
                    Some(Linger::Over) | None => true,
                }
            }
            _ => true,
        }
    }

    /// The socket's last file closed.
    pub fn close(self: &Arc<Self>, abort: bool) {
        let (phase, linger0, waiters) = match self.lock() {
            Ok(mut st) => {
                if st.orphan {
                    return;
                }
                let linger0 = st.opts.linger == (true, 0);
                let p = std::mem::replace(&mut st.phase, Phase::Idle);
                st.syn_wait = None;
                st.connecting = false;
                let waiters = std::mem::take(&mut st.syn_waiters);
                if let (Some(port), Some(ext)) = (st.ext_listen.take(), self.net.external()) {
                    ext.tcp_unlisten(port, std::mem::take(&mut st.ext_full));
                }
                (p, linger0, waiters)
            }
            Err(_) => return,
        };
        let phase = match phase {
            Phase::Connected {
                conn,
                side,
                local,
                peer,
            } => {
                // The connection's lock is taken (and the peer woken) outside ours.
                let abort = abort || linger0;
                conn.close(side, abort);
                if !abort && conn.lingers(side) {
                    let phase = Phase::Connected {
                        conn,
                        side,
                        local,
                        peer,
                    };
                    self.linger(phase, local);
                    return;
                }
                Phase::Idle
            }
            Phase::Remote { h, local, peer } if !(abort || linger0) => {
                // The port is kept (as for loopback) while the interface finishes
                // the connection, when this side closed first.
                let id = self.net.external().and_then(|ext| ext.tcp_close(h, false));
                if let Some(id) = id {
                    self.linger(Phase::Lingering { id, local, peer }, local);
                    return;
                }
                Phase::Idle
            }
            other => other,
        };
        if let Ok(mut st) = self.lock() {
            if let Some((_, _, id)) = st.bound.take() {
                self.net.tcp.unbind(id);
            }
        }
        match phase {
            Phase::Connected { .. } | Phase::Lingering { .. } => {}
            Phase::Remote { h, .. } => {
                if let Some(ext) = self.net.external() {
                    ext.tcp_close(h, abort || linger0);
                }
            }
            Phase::Listen { queue, .. } => {
                for s in queue {
                    s.close(true);
                }
            }
            Phase::Idle => {}
        }
        // Connects waiting for room are refused (their next SYN meets no listener).
        for w in waiters.into_iter().filter_map(|w| w.upgrade()) {
            w.retry_syn();
        }
        self.wq.notify_all();
    }

    /// `poll` bits.
    pub fn readiness(&self) -> u32 {
        let Ok(st) = self.lock() else {
            return libc::POLLERR as u32;
        };
        match &st.phase {
            Phase::Listen { queue, .. } => {
                if queue.is_empty() {
                    0
                } else {
                    (libc::POLLIN | libc::POLLRDNORM) as u32
                }
            }
            Phase::Connected { conn, side, .. } => {
                let (conn, side) = (conn.clone(), *side);
                drop(st);
                conn.readiness(side)
            }
            Phase::Remote { h, .. } => {
                let h = *h;
                drop(st);
                self.net
                    .external()
                    .map_or(libc::POLLERR as u32, |e| e.tcp_snapshot(h).readiness)
            }
            // SYN_SENT: nothing to report yet.
            Phase::Idle if st.syn_wait.is_some() => 0,
            Phase::Idle => {
                let mut r = (libc::POLLOUT | libc::POLLWRNORM | libc::POLLHUP) as u32;
                if st.dead {
                    r |= (libc::POLLIN | libc::POLLRDNORM | libc::POLLRDHUP) as u32;
                }
                if st.err.is_some() {
                    r |= libc::POLLERR as u32;
                }
                r
            }
            // Closed (no file polls it any more).
            Phase::Lingering { .. } => (libc::POLLHUP | libc::POLLIN | libc::POLLOUT) as u32,
        }
    }

    /// The local address (`getsockname`).
    pub fn local(&self) -> SockAddr {
        let Ok(st) = self.lock() else {
            return SockAddr::new(self.family.any(), 0);
        };
        match (&st.phase, st.bound) {
            (Phase::Connected { local, .. }, _)
            | (Phase::Remote { local, .. }, _)
            | (Phase::Lingering { local, .. }, _) => *local,
            (_, Some((l, port, _))) => SockAddr::new(l.ip(self.family), port),
            _ => SockAddr::new(self.family.any(), 0),
        }
    }

    /// The peer's address (`getpeername`): `ENOTCONN` when not connected.
    pub fn peer(&self) -> SysResult<SockAddr> {
        match &self.lock()?.phase {
            Phase::Connected {
                peer, conn, side, ..
            } => {
                if conn.lock().map(|s| s.reset[*side]).unwrap_or(true) {
                    return Err(Errno::ENOTCONN);
                }
                Ok(*peer)
            }
            Phase::Remote { h, peer, .. } => {
                let state = self.net.external().map(|e| e.tcp_snapshot(*h).state);
                match state {
                    Some(smoltcp::socket::tcp::State::Closed) | None => Err(Errno::ENOTCONN),
                    _ => Ok(*peer),
                }
            }
            Phase::Lingering { peer, .. } => Ok(*peer),
            _ => Err(Errno::ENOTCONN),
        }
    }

    /// The TCP state.
    pub fn state(&self) -> State {
        let Ok(st) = self.lock() else {
            return State::Close;
        };
        match &st.phase {
            Phase::Listen { .. } => State::Listen,
            Phase::Idle if st.syn_wait.is_some() => State::SynSent,
            Phase::Idle => State::Close,
            Phase::Connected { conn, side, .. } => {
                let (conn, side) = (conn.clone(), *side);
                drop(st);
                conn.state(side)
            }
            Phase::Remote { h, .. } => {
                let h = *h;
                drop(st);
                self.net
                    .external()
                    .map_or(State::Close, |e| State::of(e.tcp_snapshot(h).state))
            }
            Phase::Lingering { id, .. } => {
                let id = *id;
                drop(st);
                match self.net.external().map(|e| e.tcp_linger(id)) {
                    Some(Linger::Closing) => State::FinWait2,
                    Some(Linger::TimeWait(_)) => State::TimeWait,
                    _ => State::Close,
                }
            }
        }
    }

    /// (bytes waiting to be read, bytes sent but unread by the peer); a listener
    /// reports (queued connections, backlog).
    pub fn queued(&self) -> (usize, usize) {
        let Ok(st) = self.lock() else {
            return (0, 0);
        };
        match &st.phase {
            Phase::Connected { conn, side, .. } => {
                let (conn, side) = (conn.clone(), *side);
                drop(st);
                conn.queued(side)
            }
            Phase::Listen { queue, max } => (queue.len(), *max),
            Phase::Remote { h, .. } => {
                let h = *h;
                drop(st);
                self.net.external().map_or((0, 0), |e| {
                    let s = e.tcp_snapshot(h);
                    (s.rx_queued, s.tx_queued)
                })
            }
            Phase::Idle | Phase::Lingering { .. } => (0, 0),
        }
    }

    /// Takes the pending error (`SO_ERROR`).
    pub fn take_error(&self) -> i32 {
        let Ok(mut st) = self.lock() else {
            return 0;
        };
        if let Some(e) = st.err.take() {
            return e.0;
        }
        if let Phase::Connected { conn, side, .. } = &st.phase {
            if let Ok(mut s) = conn.lock() {
                if let Some(e) = s.err[*side].take() {
                    return e.0;
                }
            }
        }
        if let Phase::Remote { h, .. } = &st.phase {
            let h = *h;
            drop(st);
            return self
                .net
                .external()
                .and_then(|e| e.tcp_take_err(h))
                .map_or(0, |e| e.0);
        }
        0
    }

    /// The socket's timeouts (`SO_RCVTIMEO`, `SO_SNDTIMEO`).
    pub fn timeout(&self, send: bool) -> Option<std::time::Duration> {
        self.lock().ok().and_then(|s| s.opts.timeout(send))
    }

    fn ctx(&self, st: &TcpState) -> Ctx {
        Ctx {
            family: self.family,
            tcp: true,
            bound: st.bound.is_some(),
        }
    }

    /// `setsockopt(2)`.
    pub fn setsockopt(&self, level: i32, name: i32, v: &[u8]) -> SysResult<()> {
        let mut st = self.lock()?;
        let ctx = self.ctx(&st);
        if st.opts.set(ctx, level, name, v)? {
            return Ok(());
        }
        Err(Errno::ENOPROTOOPT)
    }

    /// `getsockopt(2)` of the options that need the connection.
    pub fn getsockopt(&self, level: i32, name: i32) -> SysResult<Vec<u8>> {
        let int = |v: i32| v.to_le_bytes().to_vec();
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_ERROR) => return Ok(int(self.take_error())),
            (libc::SOL_SOCKET, libc::SO_ACCEPTCONN) => return Ok(int(self.is_listening() as i32)),
            (libc::IPPROTO_TCP, libc::TCP_INFO) => return Ok(self.tcp_info()),
            (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => {
                let st = self.lock()?;
                let connected = matches!(st.phase, Phase::Connected { .. } | Phase::Remote { .. });
                let mss = match st.opts.maxseg {
                    0 if connected => LO_MSS as i32,
                    0 => 536,
                    m => m,
                };
                return Ok(int(mss));
            }
            _ => {}
        }
        let st = self.lock()?;
        st.opts
            .get(self.ctx(&st), level, name)
            .ok_or(Errno::ENOPROTOOPT)
    }

    /// `struct tcp_info` (232 bytes, Linux 5.x layout).
    pub fn tcp_info(&self) -> Vec<u8> {
        let state = self.state();
        let (rx, tx) = self.queued();
        let (sent, received) = match self.lock() {
            Ok(st) => match &st.phase {
                Phase::Connected { conn, side, .. } => {
                    let (c, s) = (conn.clone(), *side);
                    drop(st);
                    c.counters(s)
                }
                _ => (0, 0),
            },
            Err(_) => (0, 0),
        };
        let mut b = vec![0u8; 232];
        let put32 =
            |b: &mut Vec<u8>, off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
        let put64 =
            |b: &mut Vec<u8>, off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_le_bytes());
        b[0] = state as u8;
        let connected = !matches!(state, State::Listen | State::Close);
        if connected {
            b[5] = 0x7; // timestamps, SACK, window scaling
            b[6] = 0x77; // snd_wscale 7, rcv_wscale 7
            put32(&mut b, 8, 200_000); // rto (us)
            put32(&mut b, 12, 40_000); // ato
            put32(&mut b, 16, LO_MSS); // snd_mss
            put32(&mut b, 20, 536); // rcv_mss
            put32(&mut b, 60, 65_535); // pmtu
            put32(&mut b, 64, LO_MSS); // rcv_ssthresh
            put32(&mut b, 68, 20); // rtt (us)
            put32(&mut b, 72, 10); // rttvar
            put32(&mut b, 76, 0x7fff_ffff); // snd_ssthresh
            put32(&mut b, 80, 10); // snd_cwnd
            put32(&mut b, 84, LO_MSS); // advmss
            put32(&mut b, 88, 3); // reordering
            put32(&mut b, 96, LO_MSS); // rcv_space
            put64(&mut b, 120, sent); // bytes_acked
            put64(&mut b, 128, received); // bytes_received
            put32(&mut b, 148, 10); // min_rtt
            put64(&mut b, 200, sent); // bytes_sent
        } else if state == State::Listen {
            put32(&mut b, 24, rx as u32); // unacked: accept queue length
            put32(&mut b, 28, tx as u32); // sacked: backlog
        }
        let _ = (rx, tx);
        b
    }

    /// Fields of this socket's `/proc/net/tcp` line: local, remote, state, tx
    /// queue, rx queue, uid, inode.
    pub fn proc_entry(&self) -> (SockAddr, SockAddr, State, usize, usize, u32, u64) {
        let local = self.local();
        let remote = self.peer().unwrap_or(SockAddr::new(self.family.any(), 0));
        let state = self.state();
        // Nothing is ever unacknowledged over loopback: the send queue is empty
        // there; through the pod's interface it is what waits for an ACK.
        let remote_tx = match self.lock().map(|s| matches!(s.phase, Phase::Remote { .. })) {
            Ok(true) => self.queued().1,
            _ => 0,
        };
        let fin = match self.lock().map(|s| match &s.phase {
            Phase::Connected { conn, side, .. } => Some((conn.clone(), *side)),
            _ => None,
        }) {
            Ok(Some((conn, side))) => conn.fin_unread(side) as usize,
            _ => 0,
        };
        let rx = self.queued().0 + fin;
        // A closed connection that lingers belongs to nobody (Linux's timewait
        // sockets show uid 0 and inode 0).
        if self.lock().map(|s| s.orphan).unwrap_or(false) {
            return (local, remote, state, remote_tx, rx, 0, 0);
        }
        (local, remote, state, remote_tx, rx, self.uid, self.ino)
    }
}

impl TcpInner {
    /// This socket as `NETLINK_SOCK_DIAG` describes it; `None` for one
    /// `/proc/net/tcp` does not list either (not bound or connected).
    pub fn diag(&self) -> Option<crate::net::diag::InetEntry> {
        let (local, remote, state, tx, rx, uid, ino) = self.proc_entry();
        if state == State::Close {
            return None;
        }
        let (rq, wq) = if state == State::Listen {
            self.queued()
        } else {
            (rx, tx)
        };
        let rx_bytes = self.queued().0;
        let tcp_info = Some(self.tcp_info());
        let st = self.lock().ok()?;
        let shutdown = match &st.phase {
            Phase::Connected { conn, side, .. } => {
                let (conn, side) = (conn.clone(), *side);
                drop(st);
                let bits = conn.shutdown_bits(side);
                let mut e =
                    self.diag_entry(state, local, remote, (rq, wq), uid, ino, bits, tcp_info);
                e.rmem = rx_bytes as u32;
                return Some(e);
            }
            Phase::Remote { .. } | Phase::Lingering { .. } => {
                let snd = matches!(
                    state,
                    State::FinWait1
                        | State::FinWait2
                        | State::Closing
                        | State::TimeWait
                        | State::LastAck
                );
                let rcv = matches!(
                    state,
                    State::CloseWait | State::LastAck | State::Closing | State::TimeWait
                );
                rcv as u8 | (snd as u8) << 1
            }
            _ => 0,
        };
        drop(st);
        let mut e = self.diag_entry(state, local, remote, (rq, wq), uid, ino, shutdown, tcp_info);
        if state != State::Listen {
            e.rmem = rx_bytes as u32;
        }
        Some(e)
    }

    #[allow(clippy::too_many_arguments)]
    fn diag_entry(
        &self,
        state: State,
        local: SockAddr,
        remote: SockAddr,
        (rq, wq): (usize, usize),
        uid: u32,
        ino: u64,
        shutdown: u8,
        tcp_info: Option<Vec<u8>>,
    ) -> crate::net::diag::InetEntry {
        let st = self.lock();
        let opts = st
            .as_ref()
            .map(|s| s.opts.clone())
            .unwrap_or_else(|_| SockOpts::new(true));
        let orphan = st.as_ref().map(|s| s.orphan).unwrap_or(false);
        drop(st);
        crate::net::diag::InetEntry {
            family: self.family,
            state: state as u8,
            local,
            remote,
            rq: rq as u32,
            wq: wq as u32,
            uid,
            ino,
            cookie: self.ino,
            shutdown,
            tos: opts.tos as u8,
            v6only: opts.v6only,
            mark: opts.mark as u32,
            priority: opts.priority as u32,
            recverr: opts.recverr,
            rmem: 0,
            wmem: if state == State::Listen { 0 } else { wq as u32 },
            rcvbuf: opts.rcvbuf as u32,
            sndbuf: opts.sndbuf as u32,
            timewait: orphan,
            port_locked: opts.bindport_lock,
            tcp_info,
        }
    }
}

/// How many bytes a receiver queues: twice `SO_RCVBUF` if it was set (what Linux
/// then reports), else [`QUEUE_DEFAULT`].
fn queue_cap(o: &SockOpts) -> usize {
    if o.rcvbuf_set {
        o.rcvbuf.max(1) as usize
    } else {
        QUEUE_DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn lo(port: u16) -> SockAddr {
        SockAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    fn pair(net: &Arc<Netstack>) -> (Arc<TcpInner>, Arc<TcpInner>, Arc<TcpInner>) {
        let l = TcpInner::new(net, Family::V4, 0);
        l.bind(lo(0)).unwrap();
        l.listen(4).unwrap();
        let c = TcpInner::new(net, Family::V4, 0);
        assert_eq!(c.connect(l.local(), false), Ok(Connected::Now));
        let s = l.accept().unwrap();
        (l, c, s)
    }

    #[test]
    fn data_eof_and_states() {
        let net = Netstack::new();
        let (l, c, s) = pair(&net);
        assert_eq!(l.state(), State::Listen);
        assert_eq!(c.state(), State::Established);
        assert_eq!(s.peer().unwrap(), c.local());
        assert_eq!(c.send(b"ping"), Ok(4));
        assert_eq!(s.recv(2, true).unwrap(), b"pi");
        assert_eq!(s.recv(10, false).unwrap(), b"ping");
        assert_eq!(s.recv(10, false), Err(Errno::EAGAIN));
        c.shutdown(libc::SHUT_WR).unwrap();
        assert_eq!(c.state(), State::FinWait2);
        assert_eq!(s.state(), State::CloseWait);
        assert!(s.recv(10, false).unwrap().is_empty());
        assert_eq!(c.send(b"x"), Err(Errno::EPIPE));
        assert_eq!(s.send(b"back"), Ok(4));
        assert_eq!(c.recv(10, false).unwrap(), b"back");
        s.close(false);
        assert!(c.recv(10, false).unwrap().is_empty());
        assert_ne!(c.readiness() & libc::POLLHUP as u32, 0);
    }

    #[test]
    fn reset_refused_and_full_queue() {
        let net = Netstack::new();
        let (l, c, s) = pair(&net);
        c.send(b"unread").unwrap();
        s.close(false);
        assert_eq!(c.recv(10, false), Err(Errno::ECONNRESET));
        assert!(c.recv(10, false).unwrap().is_empty());
        assert_eq!(c.send(b"x"), Err(Errno::EPIPE));
        let port = l.local().port;
        l.close(false);
        let d = TcpInner::new(&net, Family::V4, 0);
        assert_eq!(d.connect(lo(port), false), Err(Errno::ECONNREFUSED));
        let e = TcpInner::new(&net, Family::V4, 0);
        assert_eq!(e.connect(lo(port), true), Ok(Connected::InProgress));
        assert_eq!(e.take_error(), libc::ECONNREFUSED);

        let (_l, c, s) = pair(&net);
        let big = vec![1u8; QUEUE_DEFAULT + 10];
        assert_eq!(c.send(&big), Ok(QUEUE_DEFAULT));
        assert_eq!(c.send(b"x"), Err(Errno::EAGAIN));
        assert_eq!(c.readiness() & libc::POLLOUT as u32, 0);
        assert_eq!(s.recv(100, false).unwrap().len(), 100);
        assert_ne!(c.readiness() & libc::POLLOUT as u32, 0);
    }

    /// `listen(0)` holds one connection; the next waits until `accept` makes room,
    /// and a waiting connect is refused when the listener closes.
    #[test]
    fn backlog_bounds_the_accept_queue() {
        let net = Netstack::new();
        let l = TcpInner::new(&net, Family::V4, 0);
        l.bind(lo(0)).unwrap();
        l.listen(0).unwrap();
        let port = l.local().port;
        let c1 = TcpInner::new(&net, Family::V4, 0);
        assert_eq!(c1.connect(lo(port), true), Ok(Connected::InProgress));
        assert_eq!(c1.state(), State::Established);
        let c2 = TcpInner::new(&net, Family::V4, 0);
        assert_eq!(c2.connect(lo(port), true), Ok(Connected::InProgress));
        assert_eq!(c2.readiness(), 0);
        assert_eq!(c2.state(), State::SynSent);
        assert!(!c2.connect_settled());
        assert_eq!(c2.connect(lo(port), true), Err(Errno::EALREADY));
        let c3 = TcpInner::new(&net, Family::V4, 0);
        assert_eq!(c3.connect(lo(port), false), Ok(Connected::Pending));
        assert!(l.accept().is_ok());
        assert!(c2.connect_settled());
        assert_eq!(c2.connect(lo(port), true), Ok(Connected::Now));
        assert!(!c3.connect_settled());
        l.close(false);
        assert!(c3.connect_settled());
        assert_eq!(c3.connect(lo(port), false), Err(Errno::ECONNREFUSED));
    }

    /// The active closer's port stays taken in TIME_WAIT (a bind without
    /// `SO_REUSEADDR` on both is `EADDRINUSE`) until TIME_WAIT ends; the passive
    /// closer and a reset leave nothing; an orphan in FIN_WAIT2 reaching data ends.
    #[test]
    fn timewait_holds_the_port_and_ends() {
        let net = Netstack::new();
        net.tcp_orphans.set_time_wait(Duration::from_millis(200));
        let (l, c, s) = pair(&net);
        let port = l.local().port;
        l.close(false);
        s.send(b"bye").unwrap();
        s.close(false);
        assert_eq!(s.state(), State::FinWait2);
        assert_eq!(c.recv(10, false).unwrap(), b"bye");
        assert!(c.recv(10, false).unwrap().is_empty());
        c.close(false);
        assert_eq!(s.state(), State::TimeWait);
        assert_eq!(net.tcp_orphans.len(), 1);
        assert_eq!(s.proc_entry().6, 0, "a TIME_WAIT entry has no inode");
        let d = TcpInner::new(&net, Family::V4, 0);
        assert_eq!(d.bind(lo(port)), Err(Errno::EADDRINUSE));
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(d.bind(lo(port)), Ok(()));
        assert!(net.tcp_orphans.is_empty());
        assert_eq!(s.state(), State::Close);

        // SO_LINGER 0: a reset, nothing lingers.
        let (_l, c, s) = pair(&net);
        c.close(true);
        s.close(false);
        assert!(net.tcp_orphans.is_empty());
        // Data sent to an orphan in FIN_WAIT2 resets it.
        let (_l, c, s) = pair(&net);
        c.close(false);
        assert_eq!(net.tcp_orphans.len(), 1);
        assert_eq!(s.send(b"late"), Ok(4));
        assert_eq!(s.send(b"late"), Err(Errno::EPIPE));
        std::thread::sleep(REAP_EVERY);
        net.tcp_orphans.reap();
        assert!(net.tcp_orphans.is_empty());
    }

    /// A connect waiting for room stays in SYN_SENT while it is retried: never
    /// seen as unconnected (`ENOTCONN` to a read, `EPIPE` to a send).
    #[test]
    fn waiting_connect_reads_and_sends_would_block() {
        let net = Netstack::new();
        let l = TcpInner::new(&net, Family::V4, 0);
        l.bind(lo(0)).unwrap();
        l.listen(0).unwrap();
        let port = l.local().port;
        let c1 = TcpInner::new(&net, Family::V4, 0);
        assert_eq!(c1.connect(lo(port), true), Ok(Connected::InProgress));
        let c2 = TcpInner::new(&net, Family::V4, 0);
        assert_eq!(c2.connect(lo(port), true), Ok(Connected::InProgress));
        assert_eq!(c2.recv(10, false), Err(Errno::EAGAIN));
        assert_eq!(c2.send(b"x"), Err(Errno::EAGAIN));
        let _a = l.accept().unwrap();
        assert_eq!(c2.send(b"x"), Ok(1));
    }

    /// Two sandboxes' stacks share nothing: the same port is free in each, and a
    /// connection from one never reaches a listener of the other.
    #[test]
    fn stacks_are_separate() {
        let (a, b) = (Netstack::new(), Netstack::new());
        let la = TcpInner::new(&a, Family::V4, 0);
        la.bind(lo(0)).unwrap();
        la.listen(4).unwrap();
        let port = la.local().port;
        let lb = TcpInner::new(&b, Family::V4, 0);
        lb.bind(lo(port)).unwrap();
        let cb = TcpInner::new(&b, Family::V4, 0);
        assert_eq!(cb.connect(lo(port), false), Err(Errno::ECONNREFUSED));
        let ca = TcpInner::new(&a, Family::V4, 0);
        assert_eq!(ca.connect(lo(port), false), Ok(Connected::Now));
        assert_eq!(a.tcp_sockets().len(), 3);
        assert_eq!(b.tcp_sockets().len(), 2);
    }

    /// A read wakes the peer's waiters only when it makes room in a full queue:
    /// a request/response peer blocked in its own read is not woken for nothing,
    /// a writer blocked on a full queue is.
    #[test]
    fn reads_wake_the_peer_only_for_room() {
        use crate::kernel::wait::Waker;
        let net = Netstack::new();
        let (_l, c, s) = pair(&net);
        let w = Waker::new();
        let _reg = c.queue().register(&w);
        let g = w.generation();
        assert_eq!(c.send(b"req"), Ok(3));
        assert_eq!(s.recv(10, false).unwrap(), b"req");
        assert_eq!(
            w.generation(),
            g,
            "a read of a queue with room woke the peer"
        );
        assert_eq!(s.send(b"r"), Ok(1));
        assert_ne!(w.generation(), g, "data for the peer did not wake it");

        let big = vec![1u8; QUEUE_DEFAULT + 10];
        assert_eq!(c.send(&big), Ok(QUEUE_DEFAULT));
        assert_eq!(c.send(b"x"), Err(Errno::EAGAIN));
        let g2 = w.generation();
        assert_eq!(s.recv(10, true).unwrap().len(), 10);
        assert_eq!(w.generation(), g2, "a peek made room");
        assert_eq!(s.recv(10, false).unwrap().len(), 10);
        assert_ne!(
            w.generation(),
            g2,
            "room in a full queue did not wake its writer"
        );
    }
}
