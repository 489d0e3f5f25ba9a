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
#[derive(Clone, Default)]
pub struct FdTable {
    slots: Vec<Option<FdEntry>>,
}

impl FdTable {
    /// An empty table.
    pub fn new() -> Self {
        FdTable { slots: Vec::new() }
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
        if fd >= self.slots.len() {
            self.slots.resize(fd + 1, None);
        }
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
        if i >= self.slots.len() {
            self.slots.resize(i + 1, None);
        }
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
}
