//! What the files of one sandbox share, held by its kernel (`Kernel::files`): the
//! pipes behind its FIFOs, its record and `flock` locks, its inotify watches and
//! the inode numbers of its anonymous files. Two sandboxes (or two test kernels)
//! in one process each have their own, so nothing here is a process-wide static.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::fs::inotify::Inotify;
use crate::fs::pipe::Fifos;
use crate::vfs::lock::LockManager;

/// The per-sandbox state of its files.
#[derive(Default)]
pub struct FileSpace {
    /// The pipe behind every open FIFO.
    pub fifos: Fifos,
    /// POSIX, OFD and `flock` locks.
    pub locks: Arc<LockManager>,
    /// inotify watches and instances.
    pub inotify: Arc<Inotify>,
    /// Inode numbers of anonymous files.
    pub inos: AnonInos,
}

impl FileSpace {
    /// A fresh space: no FIFO open, no lock, no watch.
    pub fn new() -> Arc<FileSpace> {
        Arc::new(FileSpace::default())
    }
}

/// The kinds of anonymous files, each numbered from its own range so that the
/// kind of an inode number can be told in a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnonKind {
    /// Pipes (`pipe2`; FIFOs show their filesystem's inode instead).
    Pipe,
    /// Unix sockets.
    Unix,
    /// epoll instances.
    Epoll,
    /// eventfds.
    EventFd,
    /// inotify instances.
    Inotify,
    /// timerfds.
    TimerFd,
    /// memfds.
    MemFd,
    /// signalfds.
    SignalFd,
}

impl AnonKind {
    /// The first number of the kind's range.
    const fn base(self) -> u64 {
        match self {
            AnonKind::Pipe => 0x1000,
            AnonKind::Unix => 0x10_0000,
            AnonKind::Epoll => 0x2000_0000,
            AnonKind::EventFd => 0x3000_0000,
            AnonKind::Inotify => 0x3800_0000,
            AnonKind::TimerFd => 0x4000_0000,
            AnonKind::MemFd => 0x5000_0000,
            AnonKind::SignalFd => 0x6000_0000,
        }
    }

    const ALL: [AnonKind; 8] = [
        AnonKind::Pipe,
        AnonKind::Unix,
        AnonKind::Epoll,
        AnonKind::EventFd,
        AnonKind::Inotify,
        AnonKind::TimerFd,
        AnonKind::MemFd,
        AnonKind::SignalFd,
    ];
}

/// The inode number counters of one sandbox's anonymous files, one per kind.
pub struct AnonInos {
    next: [AtomicU64; AnonKind::ALL.len()],
}

impl Default for AnonInos {
    fn default() -> Self {
        AnonInos {
            next: AnonKind::ALL.map(|k| AtomicU64::new(k.base())),
        }
    }
}

impl AnonInos {
    /// The next inode number of kind `k`.
    pub fn next(&self, k: AnonKind) -> u64 {
        let i = AnonKind::ALL.iter().position(|&x| x == k).unwrap_or(0);
        self.next[i].fetch_add(1, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::pipe::new_pipe;
    use crate::vfs::lock::{Kind, LockOwner};
    use crate::vfs::{Owner, Stat};

    const OWNER: Owner = Owner { uid: 0, gid: 0 };

    fn fifo_stat() -> Stat {
        Stat {
            dev: 7,
            ino: 42,
            mode: libc::S_IFIFO | 0o644,
            ..Default::default()
        }
    }

    /// Two sandboxes' file spaces share nothing: the same FIFO inode reaches a
    /// different pipe in each, a lock taken in one does not conflict in the
    /// other, a watch in one is not counted by the other, and anonymous inode
    /// numbers are counted separately.
    #[test]
    fn spaces_are_separate() {
        let (a, b) = (FileSpace::new(), FileSpace::new());

        let (pa, pa2, pb) = (
            a.fifos.pipe(&a.inos, &fifo_stat()).unwrap(),
            a.fifos.pipe(&a.inos, &fifo_stat()).unwrap(),
            b.fifos.pipe(&b.inos, &fifo_stat()).unwrap(),
        );
        assert!(Arc::ptr_eq(&pa, &pa2), "one sandbox: one pipe per FIFO");
        assert!(!Arc::ptr_eq(&pa, &pb), "two sandboxes: two pipes");

        let key = (7, 42);
        let (one, two) = (LockOwner::Process(1), LockOwner::Process(2));
        assert!(a.locks.set(key, one, 1, 1, Kind::Write, 0, 10).unwrap());
        assert!(a
            .locks
            .test(key, two, Kind::Write, 0, 10)
            .unwrap()
            .is_some());
        assert!(b
            .locks
            .test(key, two, Kind::Write, 0, 10)
            .unwrap()
            .is_none());
        assert!(b.locks.set(key, two, 2, 2, Kind::Write, 0, 10).unwrap());

        let ia = crate::fs::inotify::InotifyFile::new(&a.inotify, &a.inos, 0).unwrap();
        ia.add_watch(&fifo_stat(), crate::fs::inotify::IN_ALL_EVENTS)
            .unwrap();
        assert_eq!(a.inotify.watches(), 1);
        assert_eq!(b.inotify.watches(), 0);

        let (ra, _wa) = new_pipe(&a.inos, OWNER).unwrap();
        let (rb, _wb) = new_pipe(&b.inos, OWNER).unwrap();
        assert_eq!(ra.stat().unwrap().ino, rb.stat().unwrap().ino);
        let (ra2, _) = new_pipe(&a.inos, OWNER).unwrap();
        assert_eq!(ra2.stat().unwrap().ino, ra.stat().unwrap().ino + 1);
    }

    #[test]
    fn kinds_have_their_own_ranges() {
        let inos = AnonInos::default();
        assert_eq!(inos.next(AnonKind::Pipe), 0x1000);
        assert_eq!(inos.next(AnonKind::Pipe), 0x1001);
        assert_eq!(inos.next(AnonKind::SignalFd), 0x6000_0000);
        assert_eq!(inos.next(AnonKind::Epoll), 0x2000_0000);
    }
}
