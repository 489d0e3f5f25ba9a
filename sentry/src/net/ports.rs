//! The port table of one transport protocol: which sockets are bound to which
//! (address, port), Linux's sharing rules (`SO_REUSEADDR`, `SO_REUSEPORT` among
//! sockets of one user), ephemeral ports from `ip_local_port_range`, and the lookup
//! that finds the socket a packet for (address, port) reaches.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Weak};

use crate::errno::{Errno, SysResult};
use crate::net::addr::Local;

/// First ephemeral port (`net.ipv4.ip_local_port_range`).
pub const EPHEMERAL_FIRST: u16 = 32768;
/// Last ephemeral port.
pub const EPHEMERAL_LAST: u16 = 60999;

/// What a bind asks for besides the address.
#[derive(Clone, Copy, Debug)]
pub struct BindOpts {
    /// `SO_REUSEADDR`.
    pub reuseaddr: bool,
    /// `SO_REUSEPORT`.
    pub reuseport: bool,
    /// The socket's owner (`SO_REUSEPORT` shares only within one user).
    pub uid: u32,
    /// Whether the protocol is TCP: `SO_REUSEADDR` then does not share with a
    /// listener.
    pub tcp: bool,
    /// The port is chosen for a `connect` (TCP): a port held only by connections
    /// in TIME_WAIT may be taken again (Linux's `tcp_tw_reuse`, on for loopback).
    pub connect: bool,
}

struct Binding<T> {
    port: u16,
    local: Local,
    opts: BindOpts,
    listening: bool,
    /// Held by a closed connection in TIME_WAIT (or an orphaned FIN_WAIT2).
    timewait: bool,
    owner: Weak<T>,
}

/// Bound sockets of one protocol, by binding id.
pub struct PortTable<T> {
    bindings: Mutex<BTreeMap<u64, Binding<T>>>,
    next_id: AtomicU64,
    /// Where the next ephemeral search starts (spreads ports as Linux's offset does).
    hint: AtomicU64,
    /// Round-robin counter for choosing within a `SO_REUSEPORT` group.
    rr: AtomicU64,
}

impl<T> Default for PortTable<T> {
    fn default() -> Self {
        PortTable {
            bindings: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            hint: AtomicU64::new(0),
            rr: AtomicU64::new(0),
        }
    }
}

impl<T> PortTable<T> {
    fn conflicts(map: &BTreeMap<u64, Binding<T>>, port: u16, local: &Local, o: &BindOpts) -> bool {
        map.values().any(|b| {
            if b.port != port || !b.local.overlaps(local) || b.owner.strong_count() == 0 {
                return false;
            }
            let share_port = o.reuseport && b.opts.reuseport && o.uid == b.opts.uid;
            let share_addr = o.reuseaddr && b.opts.reuseaddr && !(o.tcp && b.listening);
            !(share_port || share_addr)
        })
    }

    /// Binds `owner` to `local`:`port` (`port` 0: an ephemeral port). Returns the
    /// binding id and the port. `EADDRINUSE` when taken (or, for port 0, when no
    /// ephemeral port is free).
    pub fn bind(
        &self,
        local: Local,
        port: u16,
        opts: BindOpts,
        owner: Weak<T>,
    ) -> SysResult<(u64, u16)> {
        let mut map = self.bindings.lock().map_err(|_| Errno::EIO)?;
        map.retain(|_, b| b.owner.strong_count() > 0);
        let port = if port != 0 {
            if Self::conflicts(&map, port, &local, &opts) {
                return Err(Errno::EADDRINUSE);
            }
            port
        } else {
            let span = (EPHEMERAL_LAST - EPHEMERAL_FIRST) as u64 + 1;
            let start = self.hint.fetch_add(1, Ordering::Relaxed);
            // An ephemeral port is never shared, whatever the options say.
            (0..span)
                .map(|i| EPHEMERAL_FIRST + ((start + i) % span) as u16)
                .find(|&p| {
                    !map.values()
                        .any(|b| b.port == p && !(opts.connect && b.timewait))
                })
                .ok_or(Errno::EADDRINUSE)?
        };
        let id = self.insert(&mut map, port, local, opts, false, owner);
        Ok((id, port))
    }

    /// Adds a binding (not listening) and returns its id.
    fn insert(
        &self,
        map: &mut BTreeMap<u64, Binding<T>>,
        port: u16,
        local: Local,
        opts: BindOpts,
        timewait: bool,
        owner: Weak<T>,
    ) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        map.insert(
            id,
            Binding {
                port,
                local,
                opts,
                listening: false,
                timewait,
                owner,
            },
        );
        id
    }

    /// Changes binding `id`, if it is still there.
    fn update(&self, id: u64, f: impl FnOnce(&mut Binding<T>)) {
        if let Ok(mut m) = self.bindings.lock() {
            if let Some(b) = m.get_mut(&id) {
                f(b);
            }
        }
    }

    /// Keeps `local`:`port` taken for a closed connection in TIME_WAIT whose socket
    /// had no binding of its own (an accepted one): no conflict check, the
    /// listener that shared the port may still hold it. Returns the binding id.
    pub fn bind_timewait(&self, local: Local, port: u16, opts: BindOpts, owner: Weak<T>) -> u64 {
        match self.bindings.lock() {
            Ok(mut map) => self.insert(&mut map, port, local, opts, true, owner),
            // A poisoned table holds nothing more; the id is still unique.
            Err(_) => self.next_id.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Marks binding `id` as held by a closed connection in TIME_WAIT.
    pub fn set_timewait(&self, id: u64) {
        self.update(id, |b| b.timewait = true);
    }

    /// Drops binding `id` (the socket closed).
    pub fn unbind(&self, id: u64) {
        if let Ok(mut m) = self.bindings.lock() {
            m.remove(&id);
        }
    }

    /// Marks binding `id` as a listener (TCP): `SO_REUSEADDR` no longer shares it.
    pub fn set_listening(&self, id: u64, on: bool) {
        self.update(id, |b| b.listening = on);
    }

    /// The socket a packet for `dst`:`port` reaches: a binding to exactly `dst` wins
    /// over a wildcard; within a `SO_REUSEPORT` group one is chosen in turn.
    /// `filter` skips bindings that would not take it (not listening, connected
    /// elsewhere).
    pub fn lookup(
        &self,
        dst: IpAddr,
        port: u16,
        mut filter: impl FnMut(&T, bool) -> bool,
    ) -> Option<std::sync::Arc<T>> {
        let map = self.bindings.lock().ok()?;
        let mut exact = Vec::new();
        let mut wild = Vec::new();
        for b in map.values() {
            if b.port != port || !b.local.accepts(dst) {
                continue;
            }
            let Some(o) = b.owner.upgrade() else {
                continue;
            };
            if !filter(&o, b.listening) {
                continue;
            }
            if b.local.is_specific() {
                exact.push(o);
            } else {
                wild.push(o);
            }
        }
        drop(map);
        let mut pick = if exact.is_empty() { wild } else { exact };
        if pick.is_empty() {
            return None;
        }
        let i = (self.rr.fetch_add(1, Ordering::Relaxed) as usize) % pick.len();
        Some(pick.swap_remove(i))
    }

    /// Every socket bound to `port` that takes a datagram for `dst` (all of them,
    /// as a multicast datagram reaches every one).
    pub fn lookup_all(&self, dst: IpAddr, port: u16) -> Vec<std::sync::Arc<T>> {
        let Ok(map) = self.bindings.lock() else {
            return Vec::new();
        };
        map.values()
            .filter(|b| b.port == port && b.local.accepts(dst))
            .filter_map(|b| b.owner.upgrade())
            .collect()
    }

    /// Every live bound socket (for `/proc/net`).
    pub fn all(&self) -> Vec<std::sync::Arc<T>> {
        self.bindings
            .lock()
            .map(|m| m.values().filter_map(|b| b.owner.upgrade()).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::addr::Family;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    fn opts(reuseaddr: bool, reuseport: bool, uid: u32) -> BindOpts {
        BindOpts {
            reuseaddr,
            reuseport,
            uid,
            tcp: true,
            connect: false,
        }
    }

    #[test]
    fn sharing_rules() {
        let t: PortTable<u8> = PortTable::default();
        let (a, b, c) = (Arc::new(1u8), Arc::new(2u8), Arc::new(3u8));
        let any = Local::of(Family::V4, Family::V4.any(), false);
        let lo = Local::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let (ida, p) = t
            .bind(any, 0, opts(false, true, 1), Arc::downgrade(&a))
            .unwrap();
        assert!((EPHEMERAL_FIRST..=EPHEMERAL_LAST).contains(&p));
        assert_eq!(
            t.bind(lo, p, opts(false, false, 1), Arc::downgrade(&b))
                .err(),
            Some(Errno::EADDRINUSE)
        );
        assert_eq!(
            t.bind(any, p, opts(false, true, 2), Arc::downgrade(&b))
                .err(),
            Some(Errno::EADDRINUSE)
        );
        t.bind(any, p, opts(false, true, 1), Arc::downgrade(&b))
            .unwrap();
        t.set_listening(ida, true);
        let got = t
            .lookup(IpAddr::V4(Ipv4Addr::LOCALHOST), p, |_, l| l)
            .unwrap();
        assert_eq!(*got, 1);
        drop((a, got));
        assert!(t
            .lookup(IpAddr::V4(Ipv4Addr::LOCALHOST), p, |_, l| l)
            .is_none());
        t.bind(lo, 5000, opts(true, false, 1), Arc::downgrade(&c))
            .unwrap();
        t.bind(lo, 5000, opts(true, false, 1), Arc::downgrade(&b))
            .unwrap();
    }
}
