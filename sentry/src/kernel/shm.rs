//! System V shared memory (`shmget`, `shmat`, `shmdt`, `shmctl`), one namespace per
//! sandbox. A segment's bytes are an extent of its own (a host memfd the size of
//! the segment, rounded up to pages), so every attach maps the same pages
//! MAP_SHARED and nothing past the segment; the segment lives while it is in the table
//! or mapped anywhere (each mapping holds it), which is Linux's "destroyed after the
//! last detach" for removed segments.

use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::errno::{Errno, SysResult};
use crate::fs::memfile::{Extent, MemoryFile};
use crate::kernel::creds::Credentials;
use crate::kernel::ipc::free_id;
pub use crate::kernel::ipc::{check_access, now, owns, IpcPerm, IPC_PRIVATE};
use crate::mm::Mappable;

/// Largest segment.
pub const SHMMAX: u64 = 64 << 30;
/// Most pages of all segments together (`SHMALL`): Linux's default, no bound but
/// the sandbox's memory (segments are charged to that, and to no filesystem).
pub const SHMALL: u64 = u64::MAX - (1 << 24);
/// Most segments in the sandbox (`SHMMNI`).
pub const SHMMNI: usize = 4096;
/// Device number segments report (so `shmdt` can tell their mappings apart).
pub const SHM_DEV: u64 = 0x5;

/// Times and pids `shmctl(IPC_STAT)` reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShmTimes {
    /// Last attach, seconds since the epoch.
    pub atime: i64,
    /// Last detach.
    pub dtime: i64,
    /// Last change.
    pub ctime: i64,
    /// Creator.
    pub cpid: i32,
    /// Last attach or detach.
    pub lpid: i32,
}

/// One segment.
pub struct Segment {
    /// Its id.
    pub id: i32,
    /// Size asked for (mappings are rounded up to pages).
    pub size: u64,
    extent: Extent,
    meta: Mutex<(IpcPerm, ShmTimes)>,
    /// Still named by its id (not yet `IPC_RMID`ed).
    listed: std::sync::atomic::AtomicBool,
}

impl Segment {
    /// Owner, mode and times.
    pub fn meta(&self) -> SysResult<MutexGuard<'_, (IpcPerm, ShmTimes)>> {
        self.meta.lock().map_err(|_| Errno::EIO)
    }

    /// Mappings that hold it: every reference but the table's and the caller's.
    pub fn attaches(self: &Arc<Self>) -> usize {
        let table = usize::from(self.listed.load(Ordering::Relaxed));
        Arc::strong_count(self).saturating_sub(1 + table)
    }
}

impl Mappable for Segment {
    fn host_fd(&self) -> BorrowedFd<'_> {
        self.extent.fd()
    }
    fn display_name(&self) -> String {
        let key = self.meta().map(|m| m.0.key).unwrap_or(0);
        format!("/SYSV{key:08x} (deleted)")
    }
    fn dev_ino(&self) -> (u64, u64) {
        (SHM_DEV, self.id as u64)
    }
}

/// What `shmget` asks for.
pub struct GetRequest {
    /// Key, or [`IPC_PRIVATE`].
    pub key: i32,
    /// Size in bytes.
    pub size: u64,
    /// `IPC_CREAT`, `IPC_EXCL` and the permission bits.
    pub flags: i32,
}

/// A table slot: a segment, or one removed with `IPC_RMID` that stays visible by
/// id (not by key) until its last mapping goes, as on Linux.
enum Slot {
    Live(Arc<Segment>),
    Removed(std::sync::Weak<Segment>),
}

impl Slot {
    fn get(&self) -> Option<Arc<Segment>> {
        match self {
            Slot::Live(s) => Some(s.clone()),
            Slot::Removed(w) => w.upgrade(),
        }
    }
}

/// Every segment of the sandbox.
#[derive(Default)]
pub struct ShmTable {
    segs: Mutex<BTreeMap<i32, Slot>>,
    next: AtomicUsize,
}

impl ShmTable {
    fn lock(&self) -> SysResult<MutexGuard<'_, BTreeMap<i32, Slot>>> {
        let mut m = self.segs.lock().map_err(|_| Errno::EIO)?;
        // Removed segments whose last mapping went are gone for good.
        m.retain(|_, s| match s {
            Slot::Live(_) => true,
            Slot::Removed(w) => w.strong_count() > 0,
        });
        Ok(m)
    }

    /// `shmget(2)`; a new segment's memory comes from `mem` (the sandbox's).
    pub fn get(
        &self,
        req: &GetRequest,
        creds: &Credentials,
        pid: i32,
        mem: &Arc<MemoryFile>,
    ) -> SysResult<i32> {
        let mut segs = self.lock()?;
        if req.key != IPC_PRIVATE {
            let found = segs.values().filter_map(Slot::get).find(|s| {
                s.meta()
                    .map(|m| m.0.key == req.key && m.0.mode & 0o1000 == 0)
                    .unwrap_or(false)
            });
            if let Some(s) = found {
                if req.flags & libc::IPC_CREAT != 0 && req.flags & libc::IPC_EXCL != 0 {
                    return Err(Errno::EEXIST);
                }
                if req.size > s.size {
                    return Err(Errno::EINVAL);
                }
                let want = ((req.flags as u32) >> 6) & 7;
                check_access(creds, &s.meta()?.0, want)?;
                return Ok(s.id);
            }
            if req.flags & libc::IPC_CREAT == 0 {
                return Err(Errno::ENOENT);
            }
        }
        if req.size == 0 || req.size > SHMMAX {
            return Err(Errno::EINVAL);
        }
        if segs.len() >= SHMMNI {
            return Err(Errno::ENOSPC);
        }
        let extent = mem.alloc()?;
        extent.set_size(req.size.next_multiple_of(crate::fs::memfile::PAGE))?;
        let id = free_id(&self.next, &segs);
        let perm = IpcPerm::new(req.key, req.flags, creds);
        let times = ShmTimes {
            ctime: now(),
            cpid: pid,
            ..Default::default()
        };
        segs.insert(
            id,
            Slot::Live(Arc::new(Segment {
                id,
                size: req.size,
                extent,
                meta: Mutex::new((perm, times)),
                listed: std::sync::atomic::AtomicBool::new(true),
            })),
        );
        Ok(id)
    }

    /// The segment `id` (`EINVAL` if there is none).
    pub fn segment(&self, id: i32) -> SysResult<Arc<Segment>> {
        self.lock()?
            .get(&id)
            .and_then(Slot::get)
            .ok_or(Errno::EINVAL)
    }

    /// `IPC_RMID`: the key stops naming it; the id does until the last mapping goes,
    /// and so does the memory.
    pub fn remove(&self, id: i32, creds: &Credentials) -> SysResult<()> {
        let mut segs = self.lock()?;
        let s = segs.get(&id).and_then(Slot::get).ok_or(Errno::EINVAL)?;
        {
            let mut m = s.meta()?;
            if !owns(creds, &m.0) {
                return Err(Errno::EPERM);
            }
            m.0.mode |= 0o1000;
            m.0.key = IPC_PRIVATE;
            m.1.ctime = now();
        }
        s.listed.store(false, Ordering::Relaxed);
        segs.insert(id, Slot::Removed(Arc::downgrade(&s)));
        Ok(())
    }

    /// Records an attach or detach by `pid`.
    pub fn touch(seg: &Segment, pid: i32, attach: bool) {
        if let Ok(mut m) = seg.meta() {
            if attach {
                m.1.atime = now();
            } else {
                m.1.dtime = now();
            }
            m.1.lpid = pid;
        }
    }

    /// Every listed segment, by id (for `SHM_INFO` and `SHM_STAT`).
    pub fn all(&self) -> Vec<Arc<Segment>> {
        self.lock()
            .map(|s| s.values().filter_map(Slot::get).collect())
            .unwrap_or_default()
    }
}
