//! A process's file descriptor table.

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::vfs::OpenFile;

/// One slot: the description and the per-fd close-on-exec flag.
#[derive(Clone)]
pub struct FdEntry {
    /// The open file description.
    pub file: Arc<OpenFile>,
    /// `FD_CLOEXEC`.
    pub cloexec: bool,
}

/// Fds are small integers; the lowest free one is handed out first, bounded by the
/// caller's `RLIMIT_NOFILE`.
///
/// The table also keeps Linux's *capacity* (`max_fds`): it starts at 64 slots, doubles
/// to fit the highest fd ever installed, never shrinks, and a copy (fork, or exec
/// leaving a shared table) is sized to the highest fd open at the time. Programs see it
/// as `FDSize` in /proc/PID/status and through `select`, which ignores bits at or past
/// it instead of failing them with `EBADF`.
pub struct FdTable {
    slots: Vec<Option<FdEntry>>,
    capacity: usize,
}

/// Linux's smallest table (`NR_OPEN_DEFAULT`, one long of bits).
const MIN_CAPACITY: usize = 64;

/// The capacity Linux gives a table that must hold `fd`: the next power of two above
/// it, at least 64 (measured on Linux 6.x: fd 63 -> 64, 64 -> 128, 5000 -> 8192).
fn capacity_for(fd: usize) -> usize {
    (fd + 1).next_power_of_two().max(MIN_CAPACITY)
}

impl Default for FdTable {
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for FdTable {
    /// A copy is sized to the highest open fd, as Linux's `dup_fd` does; the original's
    /// larger capacity is not inherited. (`slots` never ends in an empty slot: `remove`
    /// trims them, so its last index is the highest open fd.)
    fn clone(&self) -> Self {
        FdTable {
            slots: self.slots.clone(),
            capacity: self
                .slots
                .len()
                .checked_sub(1)
                .map_or(MIN_CAPACITY, capacity_for),
        }
    }
}

impl FdTable {
    /// An empty table.
    pub fn new() -> Self {
        FdTable {
            slots: Vec::new(),
            capacity: MIN_CAPACITY,
        }
    }

    /// Linux's `max_fds` for this table (see the type's doc).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn grow_to_hold(&mut self, fd: usize) {
        if fd >= self.slots.len() {
            self.slots.resize(fd + 1, None);
        }
        if fd >= self.capacity {
            self.capacity = capacity_for(fd);
        }
    }

    /// The description behind `fd`, or `EBADF`.
    pub fn get(&self, fd: i32) -> SysResult<Arc<OpenFile>> {
        self.entry(fd).map(|e| e.file.clone())
    }

    /// The slot behind `fd`, or `EBADF`.
    pub fn entry(&self, fd: i32) -> SysResult<&FdEntry> {
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        self.slots
            .get(fd as usize)
            .and_then(|s| s.as_ref())
            .ok_or(Errno::EBADF)
    }

    /// Installs `file` at the lowest free fd `>= min`, below `limit` (else `EMFILE`).
    pub fn insert_from(
        &mut self,
        min: i32,
        file: Arc<OpenFile>,
        cloexec: bool,
        limit: u64,
    ) -> SysResult<i32> {
        let min = min.max(0) as usize;
        let limit = limit.min(i32::MAX as u64) as usize;
        let mut fd = min;
        while fd < self.slots.len() && self.slots[fd].is_some() {
            fd += 1;
        }
        if fd >= limit {
            return Err(Errno::EMFILE);
        }
        self.grow_to_hold(fd);
        self.slots[fd] = Some(FdEntry { file, cloexec });
        Ok(fd as i32)
    }

    /// Installs `file` at the lowest free fd.
    pub fn insert(&mut self, file: Arc<OpenFile>, cloexec: bool, limit: u64) -> SysResult<i32> {
        self.insert_from(0, file, cloexec, limit)
    }

    /// Installs `file` exactly at `fd` (replacing what was there, as `dup2` does);
    /// returns the replaced description so the caller can drop it outside the lock.
    pub fn insert_at(
        &mut self,
        fd: i32,
        file: Arc<OpenFile>,
        cloexec: bool,
        limit: u64,
    ) -> SysResult<Option<FdEntry>> {
        if fd < 0 || fd as u64 >= limit {
            return Err(Errno::EBADF);
        }
        let i = fd as usize;
        self.grow_to_hold(i);
        Ok(self.slots[i].replace(FdEntry { file, cloexec }))
    }

    /// Removes `fd`, returning its entry.
    pub fn remove(&mut self, fd: i32) -> SysResult<FdEntry> {
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        let e = self
            .slots
            .get_mut(fd as usize)
            .and_then(|s| s.take())
            .ok_or(Errno::EBADF)?;
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        Ok(e)
    }

    /// Sets or clears `FD_CLOEXEC`.
    pub fn set_cloexec(&mut self, fd: i32, on: bool) -> SysResult<()> {
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        match self.slots.get_mut(fd as usize).and_then(|s| s.as_mut()) {
            Some(e) => {
                e.cloexec = on;
                Ok(())
            }
            None => Err(Errno::EBADF),
        }
    }

    /// Every open fd with its entry.
    pub fn iter(&self) -> impl Iterator<Item = (i32, &FdEntry)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|e| (i as i32, e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::{FileImpl, Stat};

    struct Dummy;
    impl FileImpl for Dummy {
        fn stat(&self) -> SysResult<Stat> {
            Ok(Stat::default())
        }
    }

    fn f() -> Arc<OpenFile> {
        OpenFile::new(Box::new(Dummy), None, libc::O_RDONLY)
    }

    #[test]
    fn lowest_free_and_limit() {
        let mut t = FdTable::new();
        assert_eq!(t.insert(f(), false, 3).unwrap(), 0);
        assert_eq!(t.insert(f(), false, 3).unwrap(), 1);
        assert_eq!(t.insert(f(), false, 3).unwrap(), 2);
        assert_eq!(t.insert(f(), false, 3).err(), Some(Errno::EMFILE));
        t.remove(1).unwrap();
        assert_eq!(t.insert(f(), true, 3).unwrap(), 1);
        assert!(t.entry(1).unwrap().cloexec);
        assert_eq!(t.remove(7).err(), Some(Errno::EBADF));
        assert_eq!(t.get(-1).err(), Some(Errno::EBADF));
        assert_eq!(t.insert_from(5, f(), false, 10).unwrap(), 5);
        assert!(t.insert_at(10, f(), false, 10).is_err());
    }

    #[test]
    fn capacity_grows_like_linux_and_copies_shrink_to_fit() {
        let mut t = FdTable::new();
        assert_eq!(t.capacity(), 64);
        t.insert_at(63, f(), false, 1 << 20).unwrap();
        assert_eq!(t.capacity(), 64);
        t.insert_at(64, f(), false, 1 << 20).unwrap();
        assert_eq!(t.capacity(), 128);
        t.insert_at(5000, f(), false, 1 << 20).unwrap();
        assert_eq!(t.capacity(), 8192);
        assert_eq!(t.clone().capacity(), 8192);
        t.remove(5000).unwrap();
        // Closing never shrinks the table; a copy fits what is still open.
        assert_eq!(t.capacity(), 8192);
        assert_eq!(t.clone().capacity(), 128);
        t.remove(64).unwrap();
        t.remove(63).unwrap();
        assert_eq!(t.clone().capacity(), 64);
        assert_eq!(FdTable::new().clone().capacity(), 64);
    }
}
