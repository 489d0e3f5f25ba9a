//! What the System V IPC objects (shared memory, semaphore sets, message queues)
//! share: keys, owner and mode, the permission checks, the `struct ipc64_perm`
//! their `*ctl(IPC_STAT)` reports, and a table of objects by id and key.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::{Credentials, CAP_IPC_OWNER, CAP_SYS_ADMIN};

/// `IPC_PRIVATE`: always a new object.
pub const IPC_PRIVATE: i32 = 0;
/// The `*ctl` command flag asking for the 64-bit structures (the only ones on x86-64).
pub const IPC_64: i32 = 0x100;

/// Owner and permissions of one object (`struct ipc64_perm`).
#[derive(Clone, Copy, Debug, Default)]
pub struct IpcPerm {
    /// The key it was made with ([`IPC_PRIVATE`] once removed).
    pub key: i32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Creator.
    pub cuid: u32,
    /// Creator's group.
    pub cgid: u32,
    /// The low 9 bits are permissions (shared memory adds state bits above).
    pub mode: u32,
}

impl IpcPerm {
    /// The owner record of an object `creds` create with `flags`.
    pub fn new(key: i32, flags: i32, creds: &Credentials) -> Self {
        IpcPerm {
            key,
            uid: creds.euid,
            gid: creds.egid,
            cuid: creds.euid,
            cgid: creds.egid,
            mode: (flags as u32) & 0o777,
        }
    }

    /// `struct ipc64_perm` as x86-64 lays it out (48 bytes); `id` gives the
    /// sequence field.
    pub fn to_bytes(&self, id: i32) -> [u8; 48] {
        let mut b = [0u8; 48];
        b[0..4].copy_from_slice(&self.key.to_le_bytes());
        for (i, v) in [self.uid, self.gid, self.cuid, self.cgid]
            .iter()
            .enumerate()
        {
            b[4 + 4 * i..8 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        b[20..22].copy_from_slice(&(self.mode as u16).to_le_bytes());
        b[24..26].copy_from_slice(&((id as u32 >> 15) as u16).to_le_bytes());
        b
    }

    /// Applies the owner, group and permission bits an `IPC_SET` carries in the
    /// first 24 bytes of its structure (the `ipc64_perm` at its start).
    pub fn set_from(&mut self, b: &[u8; 24]) {
        let word = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        self.uid = word(4);
        self.gid = word(8);
        let mode = u16::from_le_bytes([b[20], b[21]]) as u32;
        self.mode = (self.mode & !0o777) | (mode & 0o777);
    }
}

/// Whether `creds` may use an object with `perm` for `want` (4 read, 2 write).
pub fn permitted(creds: &Credentials, perm: &IpcPerm, want: u32) -> bool {
    if creds.has_cap(CAP_IPC_OWNER) {
        return true;
    }
    let bits = if creds.euid == perm.uid || creds.euid == perm.cuid {
        perm.mode >> 6
    } else if creds.egid == perm.gid
        || creds.egid == perm.cgid
        || creds.groups.contains(&perm.gid)
        || creds.groups.contains(&perm.cgid)
    {
        perm.mode >> 3
    } else {
        perm.mode
    };
    bits & want & 7 == want
}

/// [`permitted`] as a result: `EACCES` when `creds` may not.
pub fn check_access(creds: &Credentials, perm: &IpcPerm, want: u32) -> SysResult<()> {
    if permitted(creds, perm, want) {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

/// A fresh id from the counter `next` that no entry of `taken` holds. Ids are not
/// reused soon: a stale id must not name a new object.
pub fn free_id<V>(next: &AtomicUsize, taken: &BTreeMap<i32, V>) -> i32 {
    loop {
        let n = (next.fetch_add(1, Ordering::Relaxed) % (i32::MAX as usize)) as i32;
        if !taken.contains_key(&n) {
            return n;
        }
    }
}

/// Whether `creds` own the object (may `IPC_SET`/`IPC_RMID` it).
pub fn owns(creds: &Credentials, perm: &IpcPerm) -> bool {
    creds.euid == perm.uid || creds.euid == perm.cuid || creds.has_cap(CAP_SYS_ADMIN)
}

/// Seconds since the epoch, as IPC times are kept.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An object a [`Registry`] holds.
pub trait IpcObject: Send + Sync {
    /// Its owner record as of now.
    fn perm(&self) -> IpcPerm;
}

/// One kind of object of the sandbox, by id; live objects are found by key too.
pub struct Registry<T> {
    objs: Mutex<BTreeMap<i32, Arc<T>>>,
    next: AtomicUsize,
    max: usize,
}

impl<T: IpcObject> Registry<T> {
    /// An empty table of at most `max` objects.
    pub fn new(max: usize) -> Self {
        Registry {
            objs: Mutex::new(BTreeMap::new()),
            next: AtomicUsize::new(0),
            max,
        }
    }

    fn lock(&self) -> SysResult<MutexGuard<'_, BTreeMap<i32, Arc<T>>>> {
        self.objs.lock().map_err(|_| Errno::EIO)
    }

    /// The `*get(2)` lookup: the object `key` names (checked by `fits` and for
    /// the access the mode bits of `flags` ask), or a new one from `make` when
    /// `IPC_CREAT` allows. The errors are Linux's, in its order.
    pub fn get(
        &self,
        key: i32,
        flags: i32,
        creds: &Credentials,
        fits: impl FnOnce(&T) -> SysResult<()>,
        make: impl FnOnce(i32, IpcPerm) -> SysResult<T>,
    ) -> SysResult<i32> {
        let mut objs = self.lock()?;
        if key != IPC_PRIVATE {
            let found = objs.iter().find(|(_, o)| o.perm().key == key);
            if let Some((&id, o)) = found {
                if flags & libc::IPC_CREAT != 0 && flags & libc::IPC_EXCL != 0 {
                    return Err(Errno::EEXIST);
                }
                check_access(creds, &o.perm(), ((flags as u32) >> 6) & 7)?;
                fits(o)?;
                return Ok(id);
            }
            if flags & libc::IPC_CREAT == 0 {
                return Err(Errno::ENOENT);
            }
        }
        if objs.len() >= self.max {
            return Err(Errno::ENOSPC);
        }
        let id = free_id(&self.next, &objs);
        let obj = make(id, IpcPerm::new(key, flags, creds))?;
        objs.insert(id, Arc::new(obj));
        Ok(id)
    }

    /// The object `id` (`EINVAL` if there is none).
    pub fn lookup(&self, id: i32) -> SysResult<Arc<T>> {
        self.lock()?.get(&id).cloned().ok_or(Errno::EINVAL)
    }

    /// The `index`th object by id (the `*_STAT` commands' numbering).
    pub fn nth(&self, index: i32) -> SysResult<Arc<T>> {
        let i = usize::try_from(index).map_err(|_| Errno::EINVAL)?;
        self.lock()?.values().nth(i).cloned().ok_or(Errno::EINVAL)
    }

    /// Takes `id` out of the table if `creds` own it (`IPC_RMID`).
    pub fn remove(&self, id: i32, creds: &Credentials) -> SysResult<Arc<T>> {
        let mut objs = self.lock()?;
        let o = objs.get(&id).ok_or(Errno::EINVAL)?;
        if !owns(creds, &o.perm()) {
            return Err(Errno::EPERM);
        }
        objs.remove(&id).ok_or(Errno::EINVAL)
    }

    /// Every object, by id.
    pub fn all(&self) -> Vec<Arc<T>> {
        self.lock()
            .map(|o| o.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Obj(IpcPerm);
    impl IpcObject for Obj {
        fn perm(&self) -> IpcPerm {
            self.0
        }
    }

    #[test]
    fn keys_flags_and_limits() {
        let root = Credentials::new(0, 0, Vec::new());
        let r: Registry<Obj> = Registry::new(2);
        let make = |_, p| Ok(Obj(p));
        assert_eq!(r.get(7, 0, &root, |_| Ok(()), make), Err(Errno::ENOENT));
        let a = r
            .get(7, libc::IPC_CREAT | 0o600, &root, |_| Ok(()), make)
            .unwrap();
        assert_eq!(r.get(7, 0, &root, |_| Ok(()), make), Ok(a));
        let excl = libc::IPC_CREAT | libc::IPC_EXCL;
        assert_eq!(r.get(7, excl, &root, |_| Ok(()), make), Err(Errno::EEXIST));
        assert_eq!(
            r.get(7, 0, &root, |_| Err(Errno::EINVAL), make),
            Err(Errno::EINVAL)
        );
        let b = r.get(IPC_PRIVATE, 0, &root, |_| Ok(()), make).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            r.get(IPC_PRIVATE, 0, &root, |_| Ok(()), make),
            Err(Errno::ENOSPC)
        );
        assert_eq!(r.nth(1).unwrap().0.key, IPC_PRIVATE);
        r.remove(a, &root).unwrap();
        assert_eq!(r.lookup(a).err(), Some(Errno::EINVAL));
        assert_eq!(r.get(7, 0, &root, |_| Ok(()), make), Err(Errno::ENOENT));
    }
}
