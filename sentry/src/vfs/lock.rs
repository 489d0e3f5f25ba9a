//! Advisory file locks: POSIX record locks (`F_SETLK`, owned by a process),
//! open-file-description locks (`F_OFD_SETLK`, owned by the description) and
//! `flock` locks (owned by the description). Locks are keyed by the file's
//! (device, inode), so every name and every open of a file shares them.
//!
//! Release rules: a process's POSIX locks on a file go when it closes any fd of
//! that file ([`LockManager::release_posix`]); OFD and flock locks go when the
//! description is freed ([`LockManager::release_description`], which also drops
//! POSIX locks taken through that description, covering a process that exits
//! without closing). Waiters sleep on one queue that every release notifies.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::errno::{Errno, SysResult};
use crate::wait::WaitQueue;

/// Who holds a record lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockOwner {
    /// A process (thread group id), for classic POSIX locks.
    Process(i32),
    /// An open file description (its address), for OFD locks.
    Description(usize),
}

/// Lock kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Shared.
    Read,
    /// Exclusive.
    Write,
    /// Remove.
    Unlock,
}

/// A conflicting lock, as `F_GETLK` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// Its kind (never `Unlock`).
    pub kind: Kind,
    /// First byte.
    pub start: u64,
    /// One past the last byte (`u64::MAX`: to the end of the file, and beyond).
    pub end: u64,
    /// Holding process (`-1` for OFD locks).
    pub pid: i32,
}

#[derive(Clone, Copy, Debug)]
struct Range {
    owner: LockOwner,
    via: usize,
    pid: i32,
    start: u64,
    end: u64,
    write: bool,
}

#[derive(Clone, Copy, Debug)]
struct Flock {
    file: usize,
    exclusive: bool,
}

#[derive(Default)]
struct FileLocks {
    ranges: Vec<Range>,
    flocks: Vec<Flock>,
}

/// The sandbox's lock table (one per sandbox, on its kernel's file space; an open
/// file that took a lock through itself keeps a weak reference to it, see
/// [`crate::vfs::OpenFile::locked_in`]).
#[derive(Default)]
pub struct LockManager {
    files: Mutex<HashMap<(u64, u64), FileLocks>>,
    queue: WaitQueue,
}

fn overlaps(a: &Range, start: u64, end: u64) -> bool {
    a.start < end && start < a.end
}

impl LockManager {
    /// The queue to wait on for a blocked lock request.
    pub fn queue(&self) -> &WaitQueue {
        &self.queue
    }

    /// The first lock of another owner that a `kind` lock on `[start, end)` would
    /// conflict with.
    pub fn test(
        &self,
        key: (u64, u64),
        owner: LockOwner,
        kind: Kind,
        start: u64,
        end: u64,
    ) -> SysResult<Option<Conflict>> {
        let files = self.files.lock().map_err(|_| Errno::EIO)?;
        let Some(fl) = files.get(&key) else {
            return Ok(None);
        };
        Ok(fl
            .ranges
            .iter()
            .find(|r| {
                r.owner != owner && overlaps(r, start, end) && (r.write || kind == Kind::Write)
            })
            .map(|r| Conflict {
                kind: if r.write { Kind::Write } else { Kind::Read },
                start: r.start,
                end: r.end,
                pid: r.pid,
            }))
    }

    /// Sets (or with `Unlock` removes) `owner`'s lock on `[start, end)`: `false` if
    /// another owner's lock conflicts (nothing changes then). `via` is the
    /// description used, `pid` the caller's process.
    #[allow(clippy::too_many_arguments)]
    pub fn set(
        &self,
        key: (u64, u64),
        owner: LockOwner,
        via: usize,
        pid: i32,
        kind: Kind,
        start: u64,
        end: u64,
    ) -> SysResult<bool> {
        if kind != Kind::Unlock && self.test(key, owner, kind, start, end)?.is_some() {
            return Ok(false);
        }
        let mut files = self.files.lock().map_err(|_| Errno::EIO)?;
        let fl = files.entry(key).or_default();
        // Cut the owner's own locks out of the range (splitting where needed).
        let mut kept = Vec::with_capacity(fl.ranges.len() + 1);
        for r in fl.ranges.drain(..) {
            if r.owner != owner || !overlaps(&r, start, end) {
                kept.push(r);
                continue;
            }
            if r.start < start {
                kept.push(Range { end: start, ..r });
            }
            if r.end > end {
                kept.push(Range { start: end, ..r });
            }
        }
        if kind != Kind::Unlock {
            kept.push(Range {
                owner,
                via,
                pid,
                start,
                end,
                write: kind == Kind::Write,
            });
        }
        fl.ranges = kept;
        Self::tidy(&mut files, key);
        drop(files);
        self.queue.notify_all();
        Ok(true)
    }

    fn tidy(files: &mut HashMap<(u64, u64), FileLocks>, key: (u64, u64)) {
        if files
            .get(&key)
            .is_some_and(|f| f.ranges.is_empty() && f.flocks.is_empty())
        {
            files.remove(&key);
        }
    }

    /// `flock`: takes, converts or (with `Unlock`) drops the description's lock;
    /// `false` if another description's lock conflicts. A conversion first drops
    /// the old lock, as Linux does.
    pub fn flock(&self, key: (u64, u64), file: usize, kind: Kind) -> SysResult<bool> {
        let mut files = self.files.lock().map_err(|_| Errno::EIO)?;
        let fl = files.entry(key).or_default();
        let had = fl.flocks.iter().position(|f| f.file == file);
        let result = match kind {
            Kind::Unlock => {
                if let Some(i) = had {
                    fl.flocks.remove(i);
                }
                true
            }
            _ => {
                let exclusive = kind == Kind::Write;
                if let Some(i) = had {
                    if fl.flocks[i].exclusive == exclusive {
                        return Ok(true);
                    }
                    fl.flocks.remove(i);
                }
                let conflict = fl
                    .flocks
                    .iter()
                    .any(|f| f.file != file && (f.exclusive || exclusive));
                if !conflict {
                    fl.flocks.push(Flock { file, exclusive });
                }
                !conflict
            }
        };
        Self::tidy(&mut files, key);
        drop(files);
        self.queue.notify_all();
        Ok(result)
    }

    /// True if any lock is held anywhere (lets `close` skip the lookup).
    pub fn any(&self) -> bool {
        self.files.lock().map(|f| !f.is_empty()).unwrap_or(false)
    }

    /// Drops process `pid`'s POSIX locks on the file (any close of it by `pid`).
    pub fn release_posix(&self, key: (u64, u64), pid: i32) {
        if let Ok(mut files) = self.files.lock() {
            if let Some(fl) = files.get_mut(&key) {
                fl.ranges.retain(|r| r.owner != LockOwner::Process(pid));
            }
            Self::tidy(&mut files, key);
        }
        self.queue.notify_all();
    }

    /// Drops every lock tied to the description at `file` (it is being freed).
    pub fn release_description(&self, file: usize) {
        if !self.any() {
            return;
        }
        let mut changed = false;
        if let Ok(mut files) = self.files.lock() {
            files.retain(|_, fl| {
                let before = fl.ranges.len() + fl.flocks.len();
                fl.ranges
                    .retain(|r| r.via != file && r.owner != LockOwner::Description(file));
                fl.flocks.retain(|f| f.file != file);
                changed |= fl.ranges.len() + fl.flocks.len() != before;
                !(fl.ranges.is_empty() && fl.flocks.is_empty())
            });
        }
        if changed {
            self.queue.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: (u64, u64) = (1, 2);
    const P1: LockOwner = LockOwner::Process(1);
    const P2: LockOwner = LockOwner::Process(2);

    #[test]
    fn record_locks() {
        let m = LockManager::default();
        assert!(m.set(K, P1, 10, 1, Kind::Read, 0, 100).unwrap());
        assert!(
            m.set(K, P2, 20, 2, Kind::Read, 50, 60).unwrap(),
            "readers share"
        );
        assert!(!m.set(K, P2, 20, 2, Kind::Write, 90, 110).unwrap());
        let c = m.test(K, P2, Kind::Write, 95, 96).unwrap().unwrap();
        assert_eq!((c.kind, c.start, c.end, c.pid), (Kind::Read, 0, 100, 1));
        // P1 unlocks the middle: its lock splits in two.
        assert!(m.set(K, P1, 10, 1, Kind::Unlock, 40, 70).unwrap());
        assert!(m.set(K, P2, 20, 2, Kind::Write, 40, 50).unwrap());
        assert!(m.test(K, P2, Kind::Write, 70, 71).unwrap().is_some());
        // Upgrading its own lock needs no one else in the way.
        assert!(!m.set(K, P1, 10, 1, Kind::Write, 0, u64::MAX).unwrap());
        m.release_posix(K, 2);
        assert!(m.set(K, P1, 10, 1, Kind::Write, 0, u64::MAX).unwrap());
        let ofd = LockOwner::Description(30);
        assert!(!m.set(K, ofd, 30, 3, Kind::Read, 5, 6).unwrap());
        m.release_description(10);
        assert!(m.set(K, ofd, 30, 3, Kind::Read, 5, 6).unwrap());
        m.release_description(30);
        assert!(m.files.lock().unwrap().is_empty(), "nothing left behind");
    }

    #[test]
    fn flocks() {
        let m = LockManager::default();
        assert!(m.flock(K, 1, Kind::Read).unwrap());
        assert!(m.flock(K, 2, Kind::Read).unwrap());
        assert!(!m.flock(K, 3, Kind::Write).unwrap());
        assert!(!m.flock(K, 1, Kind::Write).unwrap(), "2 still shares");
        m.release_description(2);
        assert!(m.flock(K, 3, Kind::Write).unwrap());
        assert!(m.flock(K, 3, Kind::Unlock).unwrap());
        assert!(m.flock(K, 1, Kind::Write).unwrap());
        m.release_description(1);
        assert!(m.files.lock().unwrap().is_empty());
    }
}
