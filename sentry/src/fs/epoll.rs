//! epoll instances. An interest is keyed by (fd, open file) as in Linux and holds the
//! file weakly: when the last fd of the description closes, the interest goes.
//!
//! Readiness is re-evaluated from each file's `readiness()` when a waiter wakes.
//! Each interest keeps its own [`Waker`] registered on the file's wait queue for its
//! whole life; waking it wakes the instance's own queue, which is all a waiter in
//! `epoll_wait` (or in `poll` of the epoll fd) registers on. A waiter therefore holds
//! no reference to the watched files, as on Linux: a file removed and closed while
//! someone waits is really closed (its pipe peer sees the hang-up at once).
//! Edge-triggered interests need to know whether something happened since the last
//! report: they compare the interest waker's generation (for pipes, the pipe's own
//! input/output event counters, which match Linux's keyed wake-ups).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

use crate::errno::{Errno, SysResult};
use crate::fs::space::{AnonInos, AnonKind};
use crate::vfs::{FileImpl, OpenFile, Stat};
use crate::wait::{WaitQueue, Waker};

/// `EPOLLIN` and friends, as u32.
pub const EPOLLIN: u32 = libc::EPOLLIN as u32;
/// See `epoll_ctl(2)`.
pub const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
/// See `epoll_ctl(2)`.
pub const EPOLLERR: u32 = libc::EPOLLERR as u32;
/// See `epoll_ctl(2)`.
pub const EPOLLHUP: u32 = libc::EPOLLHUP as u32;
/// See `epoll_ctl(2)`.
pub const EPOLLET: u32 = libc::EPOLLET as u32;
/// See `epoll_ctl(2)`.
pub const EPOLLONESHOT: u32 = libc::EPOLLONESHOT as u32;
/// See `epoll_ctl(2)`.
pub const EPOLLEXCLUSIVE: u32 = libc::EPOLLEXCLUSIVE as u32;
/// See `epoll_ctl(2)`.
pub const EPOLLWAKEUP: u32 = libc::EPOLLWAKEUP as u32;
/// Bits that select behaviour rather than events.
const CONTROL: u32 = EPOLLET | EPOLLONESHOT | EPOLLEXCLUSIVE | EPOLLWAKEUP;
/// Nesting depth Linux allows (`EP_MAX_NESTS`).
const MAX_NESTS: usize = 4;

struct Interest {
    file: Weak<OpenFile>,
    events: u32,
    data: u64,
    /// Stays registered on the file's queue while the interest lives.
    waker: Arc<Waker>,
    /// Generation (or pipe edge counters) at the last report, for EPOLLET.
    last_edge: (u64, u64),
    /// EPOLLONESHOT fired: no reports until EPOLL_CTL_MOD.
    disabled: bool,
}

/// One epoll instance.
pub struct Epoll {
    interests: Mutex<BTreeMap<(i32, usize), Interest>>,
    queue: WaitQueue,
    ino: u64,
}

/// The open file of an epoll instance.
pub struct EpollFile {
    ep: Arc<Epoll>,
}

/// A new epoll instance as a file implementation, numbered from `inos`.
pub fn new_epoll(inos: &AnonInos) -> Box<dyn FileImpl> {
    let ep = Arc::new(Epoll {
        interests: Mutex::new(BTreeMap::new()),
        queue: WaitQueue::new(),
        ino: inos.next(AnonKind::Epoll),
    });
    Box::new(EpollFile { ep })
}

/// The epoll instance behind an open file.
pub fn epoll_of(file: &OpenFile) -> Option<Arc<Epoll>> {
    file.imp()
        .as_any()?
        .downcast_ref::<EpollFile>()
        .map(|f| f.ep.clone())
}

/// The current edge marker of a file: pipe event counters, or the interest waker's
/// generation for every other file.
fn edge_of(file: &OpenFile, waker: &Waker, events: u32) -> (u64, u64) {
    if let Some(p) = crate::fs::pipe::pipe_of(file) {
        let (i, o) = p.edges();
        return (
            if events & EPOLLIN != 0 { i } else { 0 },
            if events & EPOLLOUT != 0 { o } else { 0 },
        );
    }
    (waker.generation(), 0)
}

fn file_key(file: &Arc<OpenFile>) -> usize {
    Arc::as_ptr(file) as *const () as usize
}

impl Epoll {
    fn lock(&self) -> SysResult<std::sync::MutexGuard<'_, BTreeMap<(i32, usize), Interest>>> {
        self.interests.lock().map_err(|_| Errno::EIO)
    }

    /// `EPOLL_CTL_ADD`.
    pub fn add(
        self: &Arc<Self>,
        fd: i32,
        file: &Arc<OpenFile>,
        events: u32,
        data: u64,
    ) -> SysResult<()> {
        let key = (fd, file_key(file));
        let mut m = self.lock()?;
        if m.contains_key(&key) {
            return Err(Errno::EEXIST);
        }
        // Any event on the file wakes this instance's waiters (Linux's
        // ep_poll_callback); the hook holds the instance weakly, so an interest
        // never keeps its epoll alive.
        let me = Arc::downgrade(self);
        let waker = Waker::with_hook(Box::new(move || {
            if let Some(ep) = me.upgrade() {
                ep.queue.notify_all();
            }
        }));
        if let Some(q) = file.imp().wait_queue() {
            // The registration lives as long as the interest's waker: the queue drops
            // dead entries itself, so the guard is not kept (it would borrow the file).
            std::mem::forget(q.register(&waker));
        }
        let cur = edge_of(file, &waker, events);
        m.insert(
            key,
            Interest {
                file: Arc::downgrade(file),
                events,
                data,
                waker,
                // Anything already ready is reported once even when edge-triggered.
                last_edge: (cur.0.wrapping_sub(1), cur.1.wrapping_sub(1)),
                disabled: false,
            },
        );
        drop(m);
        self.queue.notify_all();
        Ok(())
    }

    /// `EPOLL_CTL_MOD`.
    pub fn modify(&self, fd: i32, file: &Arc<OpenFile>, events: u32, data: u64) -> SysResult<()> {
        let mut m = self.lock()?;
        let it = m.get_mut(&(fd, file_key(file))).ok_or(Errno::ENOENT)?;
        if it.events & EPOLLEXCLUSIVE != 0 {
            return Err(Errno::EINVAL);
        }
        it.events = events;
        it.data = data;
        it.disabled = false;
        let cur = edge_of(file, &it.waker, events);
        it.last_edge = (cur.0.wrapping_sub(1), cur.1.wrapping_sub(1));
        drop(m);
        self.queue.notify_all();
        Ok(())
    }

    /// `EPOLL_CTL_DEL`.
    pub fn remove(&self, fd: i32, file: &Arc<OpenFile>) -> SysResult<()> {
        self.lock()?
            .remove(&(fd, file_key(file)))
            .ok_or(Errno::ENOENT)?;
        Ok(())
    }

    /// Up to `max` ready events (events, data), consuming edges and one-shots.
    pub fn harvest(&self, max: usize) -> SysResult<Vec<(u32, u64)>> {
        let mut out = Vec::new();
        let mut m = self.lock()?;
        m.retain(|_, it| it.file.strong_count() > 0);
        for it in m.values_mut() {
            if out.len() >= max {
                break;
            }
            if it.disabled {
                continue;
            }
            let Some(file) = it.file.upgrade() else {
                continue;
            };
            let want = (it.events & !CONTROL) | EPOLLERR | EPOLLHUP;
            let edge = edge_of(&file, &it.waker, it.events);
            let r = file.imp().readiness() & want;
            if r == 0 {
                continue;
            }
            if it.events & EPOLLET != 0 {
                let fresh_in = edge.0 != it.last_edge.0;
                let fresh_out = edge.1 != it.last_edge.1;
                let is_pipe = crate::fs::pipe::pipe_of(&file).is_some();
                let fresh = if is_pipe {
                    (fresh_in && r & (EPOLLIN | EPOLLHUP | EPOLLERR) != 0)
                        || (fresh_out && r & (EPOLLOUT | EPOLLERR) != 0)
                } else {
                    fresh_in
                };
                if !fresh {
                    continue;
                }
                it.last_edge = edge;
            }
            if it.events & EPOLLONESHOT != 0 {
                it.disabled = true;
            }
            out.push((r, it.data));
        }
        Ok(out)
    }

    /// True if some interest would be reported (without consuming anything).
    fn ready(&self) -> bool {
        let Ok(m) = self.lock() else {
            return false;
        };
        m.values().any(|it| {
            if it.disabled {
                return false;
            }
            let Some(file) = it.file.upgrade() else {
                return false;
            };
            let want = (it.events & !CONTROL) | EPOLLERR | EPOLLHUP;
            let r = file.imp().readiness() & want;
            if r == 0 {
                return false;
            }
            if it.events & EPOLLET == 0 {
                return true;
            }
            let e = edge_of(&file, &it.waker, it.events);
            e != it.last_edge
        })
    }

    /// The files this instance watches.
    fn files(&self) -> Vec<Arc<OpenFile>> {
        self.lock()
            .map(|m| m.values().filter_map(|it| it.file.upgrade()).collect())
            .unwrap_or_default()
    }

    /// True if adding `target` to this instance would close a loop or nest too deep.
    pub fn would_loop(self: &Arc<Self>, target: &Arc<Epoll>) -> bool {
        fn depth_from(ep: &Arc<Epoll>, me: &Arc<Epoll>, depth: usize) -> bool {
            if Arc::ptr_eq(ep, me) || depth > MAX_NESTS {
                return true;
            }
            ep.files()
                .iter()
                .any(|f| epoll_of(f).is_some_and(|inner| depth_from(&inner, me, depth + 1)))
        }
        depth_from(target, self, 1)
    }

    /// Wakes waiters of this instance: a new or modified interest, or an event on
    /// any watched file.
    pub fn wait_queue(&self) -> &WaitQueue {
        &self.queue
    }
}

impl FileImpl for EpollFile {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn seekable(&self) -> bool {
        false
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(Stat {
            dev: 0xd,
            ino: self.ep.ino,
            mode: 0o600,
            nlink: 1,
            blksize: 4096,
            ..Default::default()
        })
    }
    fn readiness(&self) -> u32 {
        if self.ep.ready() {
            (libc::POLLIN | libc::POLLRDNORM) as u32
        } else {
            0
        }
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.ep.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::pipe::new_pipe;
    use crate::vfs::Owner;

    fn pipe_files() -> (Arc<OpenFile>, Arc<OpenFile>) {
        let (r, w) = new_pipe(&AnonInos::default(), Owner { uid: 0, gid: 0 }).unwrap();
        (
            OpenFile::new(r, None, libc::O_RDONLY),
            OpenFile::new(w, None, libc::O_WRONLY),
        )
    }

    #[test]
    fn level_edge_oneshot() {
        let epf = OpenFile::new(new_epoll(&AnonInos::default()), None, libc::O_RDWR);
        let ep = epoll_of(&epf).unwrap();
        let (r, w) = pipe_files();
        ep.add(3, &r, EPOLLIN, 7).unwrap();
        assert_eq!(ep.add(3, &r, EPOLLIN, 7), Err(Errno::EEXIST));
        assert!(ep.harvest(8).unwrap().is_empty());
        w.write(b"ab").unwrap();
        assert_eq!(ep.harvest(8).unwrap(), vec![(EPOLLIN, 7)]);
        // Level-triggered: still reported.
        assert_eq!(ep.harvest(8).unwrap(), vec![(EPOLLIN, 7)]);
        assert_ne!(epf.imp().readiness(), 0);

        ep.modify(3, &r, EPOLLIN | EPOLLET, 8).unwrap();
        assert_eq!(ep.harvest(8).unwrap(), vec![(EPOLLIN, 8)]);
        assert!(ep.harvest(8).unwrap().is_empty());
        // A partial read is not an input edge.
        let mut b = [0u8; 1];
        r.read(&mut b).unwrap();
        assert!(ep.harvest(8).unwrap().is_empty());
        w.write(b"c").unwrap();
        assert_eq!(ep.harvest(8).unwrap(), vec![(EPOLLIN, 8)]);

        ep.modify(3, &r, EPOLLIN | EPOLLONESHOT, 9).unwrap();
        assert_eq!(ep.harvest(8).unwrap(), vec![(EPOLLIN, 9)]);
        assert!(ep.harvest(8).unwrap().is_empty());
        ep.remove(3, &r).unwrap();
        assert_eq!(ep.remove(3, &r), Err(Errno::ENOENT));

        // Closing the last reference drops the interest.
        ep.add(4, &w, EPOLLOUT, 1).unwrap();
        assert_eq!(ep.harvest(8).unwrap(), vec![(EPOLLOUT, 1)]);
        drop(r);
        assert_eq!(ep.harvest(8).unwrap(), vec![(EPOLLOUT | EPOLLERR, 1)]);
        drop(w);
        assert!(ep.harvest(8).unwrap().is_empty());
    }

    #[test]
    fn watched_file_events_wake_the_instance_queue() {
        let epf = OpenFile::new(new_epoll(&AnonInos::default()), None, libc::O_RDWR);
        let ep = epoll_of(&epf).unwrap();
        let (r, w) = pipe_files();
        ep.add(3, &r, EPOLLIN | EPOLLET, 1).unwrap();
        ep.add(4, &w, EPOLLOUT | EPOLLET, 2).unwrap();
        assert_eq!(ep.harvest(8).unwrap(), vec![(EPOLLOUT, 2)]);
        // A waiter registers on the instance alone and holds no watched file.
        let waiter = Waker::new();
        let reg = ep.wait_queue().register(&waiter);
        let seen = waiter.generation();
        ep.remove(4, &w).unwrap();
        let weak_w = Arc::downgrade(&w);
        drop(w);
        assert!(weak_w.upgrade().is_none(), "the write end is really closed");
        assert_ne!(waiter.generation(), seen, "the hang-up woke the waiter");
        assert_eq!(ep.harvest(8).unwrap(), vec![(EPOLLHUP, 1)]);
        drop(reg);
        // The interest's hook holds the instance weakly.
        let weak_ep = Arc::downgrade(&ep);
        drop((ep, epf));
        assert!(weak_ep.upgrade().is_none());
        drop(r);
    }

    #[test]
    fn loops_refused() {
        let a = OpenFile::new(new_epoll(&AnonInos::default()), None, libc::O_RDWR);
        let b = OpenFile::new(new_epoll(&AnonInos::default()), None, libc::O_RDWR);
        let (ea, eb) = (epoll_of(&a).unwrap(), epoll_of(&b).unwrap());
        assert!(!ea.would_loop(&eb));
        ea.add(5, &b, EPOLLIN, 0).unwrap();
        assert!(eb.would_loop(&ea));
        assert!(ea.would_loop(&ea));
    }
}
