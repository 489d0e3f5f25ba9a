//! System V semaphore sets (`semget`, `semop`, `semctl`), one namespace per sandbox.
//! A `semop` applies all its operations at once or none; a caller that cannot go on
//! waits on the set's queue and retries whenever a value changes. `SEM_UNDO`
//! adjustments are kept per process and applied when its last thread exits.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::errno::{Errno, SysResult};
use crate::kernel::ipc::{self, IpcObject, IpcPerm, Registry};
use crate::kernel::wait::WaitQueue;

/// Most semaphores in one set (`SEMMSL`).
pub const SEMMSL: usize = 32000;
/// Most sets in the sandbox (`SEMMNI`).
pub const SEMMNI: usize = 32000;
/// Most semaphores in the sandbox (`SEMMNS`).
pub const SEMMNS: usize = SEMMSL * SEMMNI;
/// Most operations in one `semop` (`SEMOPM`).
pub const SEMOPM: usize = 500;
/// Largest semaphore value (`SEMVMX`).
pub const SEMVMX: i32 = 32767;
/// Largest undo adjustment (`SEMAEM`).
pub const SEMAEM: i32 = SEMVMX;
/// `sem_flg` bit: undo this operation when the process exits.
pub const SEM_UNDO: i16 = 0x1000;
const IPC_NOWAIT: i16 = 0o4000;

/// One semaphore.
#[derive(Clone, Copy, Default)]
struct Sem {
    val: i32,
    /// The process that last changed it.
    pid: i32,
    /// Callers waiting for it to grow.
    ncnt: u32,
    /// Callers waiting for it to reach zero.
    zcnt: u32,
}

struct SetState {
    perm: IpcPerm,
    sems: Vec<Sem>,
    otime: i64,
    ctime: i64,
    removed: bool,
}

/// One semaphore set.
pub struct SemSet {
    /// Its id.
    pub id: i32,
    state: Mutex<SetState>,
    /// Callers blocked in `semop` on this set.
    pub queue: WaitQueue,
}

impl IpcObject for SemSet {
    fn perm(&self) -> IpcPerm {
        self.state.lock().map(|s| s.perm).unwrap_or_default()
    }
}

/// One `struct sembuf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemOp {
    /// Which semaphore.
    pub num: u16,
    /// What to add (negative: take; zero: wait for zero).
    pub op: i16,
    /// `IPC_NOWAIT`, `SEM_UNDO`.
    pub flags: i16,
}

/// What one attempt at a `semop` came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Applied.
    Done,
    /// Must wait: semaphore `num` must grow (`zero` false) or reach zero.
    Wait {
        /// Which semaphore holds it up.
        num: u16,
        /// Whether it waits for zero.
        zero: bool,
    },
}

/// The fields `semctl(IPC_STAT)` reports.
pub struct SetStat {
    /// Owner and mode.
    pub perm: IpcPerm,
    /// Last `semop`.
    pub otime: i64,
    /// Last change.
    pub ctime: i64,
    /// Semaphores in the set.
    pub nsems: usize,
}

/// Which per-semaphore figure `semctl` reads.
#[derive(Clone, Copy)]
pub enum SemField {
    /// `GETVAL`.
    Val,
    /// `GETPID`.
    Pid,
    /// `GETNCNT`.
    Ncnt,
    /// `GETZCNT`.
    Zcnt,
}

impl SemSet {
    fn state(&self) -> SysResult<MutexGuard<'_, SetState>> {
        let s = self.state.lock().map_err(|_| Errno::EIO)?;
        if s.removed {
            return Err(Errno::EIDRM);
        }
        Ok(s)
    }

    /// How many semaphores it holds.
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.sems.len()).unwrap_or(0)
    }

    /// Whether it holds none (never true of a live set).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tries `ops` all at once for process `pid`. `undo` receives each `SEM_UNDO`
    /// operation's adjustment once they applied; it may refuse them (`ERANGE`).
    pub fn try_ops(
        &self,
        ops: &[SemOp],
        pid: i32,
        undo: impl FnOnce(&[(u16, i32)]) -> SysResult<()>,
    ) -> SysResult<Attempt> {
        let mut s = self.state()?;
        let mut vals: Vec<i32> = s.sems.iter().map(|x| x.val).collect();
        let mut adjust = Vec::new();
        for o in ops {
            let v = vals.get_mut(usize::from(o.num)).ok_or(Errno::EFBIG)?;
            let op = i32::from(o.op);
            let wait = || {
                if o.flags & IPC_NOWAIT != 0 {
                    Err(Errno::EAGAIN)
                } else {
                    Ok(Attempt::Wait {
                        num: o.num,
                        zero: op == 0,
                    })
                }
            };
            if op == 0 {
                if *v != 0 {
                    return wait();
                }
                continue;
            }
            if *v + op < 0 {
                return wait();
            }
            if *v + op > SEMVMX {
                return Err(Errno::ERANGE);
            }
            *v += op;
            if o.flags & SEM_UNDO != 0 {
                adjust.push((o.num, -op));
            }
        }
        undo(&adjust)?;
        let changed = ops.iter().any(|o| o.op != 0);
        for o in ops {
            let sem = &mut s.sems[usize::from(o.num)];
            sem.val = vals[usize::from(o.num)];
            sem.pid = pid;
        }
        s.otime = ipc::now();
        drop(s);
        if changed {
            self.queue.notify_all();
        }
        Ok(Attempt::Done)
    }

    /// Counts (`delta` 1) or uncounts (-1) a caller waiting on semaphore `num`.
    pub fn count_waiter(&self, num: u16, zero: bool, delta: i32) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        if let Some(sem) = s.sems.get_mut(usize::from(num)) {
            let c = if zero { &mut sem.zcnt } else { &mut sem.ncnt };
            *c = c.saturating_add_signed(delta);
        }
    }

    /// One figure of semaphore `num`.
    pub fn field(&self, num: i32, f: SemField) -> SysResult<i32> {
        let s = self.state()?;
        let i = usize::try_from(num).map_err(|_| Errno::EINVAL)?;
        let sem = s.sems.get(i).ok_or(Errno::EINVAL)?;
        Ok(match f {
            SemField::Val => sem.val,
            SemField::Pid => sem.pid,
            SemField::Ncnt => sem.ncnt as i32,
            SemField::Zcnt => sem.zcnt as i32,
        })
    }

    /// Every value (`GETALL`).
    pub fn values(&self) -> SysResult<Vec<u16>> {
        Ok(self.state()?.sems.iter().map(|s| s.val as u16).collect())
    }

    /// Sets semaphore `num` (`SETVAL`), or every one (`SETALL`, `num` None), as
    /// process `pid`.
    pub fn set(&self, num: Option<i32>, vals: &[i32], pid: i32) -> SysResult<()> {
        let mut s = self.state()?;
        if vals.iter().any(|v| !(0..=SEMVMX).contains(v)) {
            return Err(Errno::ERANGE);
        }
        match num {
            Some(n) => {
                let i = usize::try_from(n).map_err(|_| Errno::EINVAL)?;
                let sem = s.sems.get_mut(i).ok_or(Errno::EINVAL)?;
                sem.val = vals[0];
                sem.pid = pid;
            }
            None => {
                for (sem, &v) in s.sems.iter_mut().zip(vals) {
                    sem.val = v;
                    sem.pid = pid;
                }
            }
        }
        s.ctime = ipc::now();
        drop(s);
        self.queue.notify_all();
        Ok(())
    }

    /// Owner, mode, times and size.
    pub fn stat(&self) -> SysResult<SetStat> {
        let s = self.state()?;
        Ok(SetStat {
            perm: s.perm,
            otime: s.otime,
            ctime: s.ctime,
            nsems: s.sems.len(),
        })
    }

    /// `IPC_SET` from the structure's first 24 bytes, if `creds` own the set.
    pub fn set_perm(
        &self,
        b: &[u8; 24],
        creds: &crate::kernel::creds::Credentials,
    ) -> SysResult<()> {
        let mut s = self.state()?;
        if !ipc::owns(creds, &s.perm) {
            return Err(Errno::EPERM);
        }
        s.perm.set_from(b);
        s.ctime = ipc::now();
        Ok(())
    }

    /// Marks it removed and wakes its waiters (they fail with `EIDRM`).
    fn retire(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.removed = true;
        }
        self.queue.notify_all();
    }

    /// Applies an exiting process's adjustment `adj` to semaphore `num`, clamped to
    /// the valid range as Linux does.
    fn undo(&self, num: u16, adj: i32, pid: i32) {
        let Ok(mut s) = self.state() else {
            return;
        };
        if let Some(sem) = s.sems.get_mut(usize::from(num)) {
            sem.val = (sem.val + adj).clamp(0, SEMVMX);
            sem.pid = pid;
            drop(s);
            self.queue.notify_all();
        }
    }
}

/// One process's `SEM_UNDO` record: by (set id, semaphore), what to add when it
/// exits.
type UndoList = HashMap<(i32, u16), i32>;

/// Every semaphore set of the sandbox, and the processes' undo adjustments.
pub struct SemTable {
    sets: Registry<SemSet>,
    /// By process.
    undo: Mutex<HashMap<i32, UndoList>>,
}

impl Default for SemTable {
    fn default() -> Self {
        SemTable {
            sets: Registry::new(SEMMNI),
            undo: Mutex::new(HashMap::new()),
        }
    }
}

impl SemTable {
    /// `semget(2)`.
    pub fn get(
        &self,
        key: i32,
        nsems: i32,
        flags: i32,
        creds: &crate::kernel::creds::Credentials,
    ) -> SysResult<i32> {
        if nsems < 0 || nsems as usize > SEMMSL {
            return Err(Errno::EINVAL);
        }
        let n = nsems as usize;
        // Counted before the table is locked (`make` runs under its lock).
        let total: usize = self.sets.all().iter().map(|s| s.len()).sum();
        self.sets.get(
            key,
            flags,
            creds,
            |set| {
                if n > set.len() {
                    Err(Errno::EINVAL)
                } else {
                    Ok(())
                }
            },
            |id, perm| {
                if n == 0 {
                    return Err(Errno::EINVAL);
                }
                if total + n > SEMMNS {
                    return Err(Errno::ENOSPC);
                }
                Ok(SemSet {
                    id,
                    state: Mutex::new(SetState {
                        perm,
                        sems: vec![Sem::default(); n],
                        otime: 0,
                        ctime: ipc::now(),
                        removed: false,
                    }),
                    queue: WaitQueue::new(),
                })
            },
        )
    }

    /// The set `id`.
    pub fn set(&self, id: i32) -> SysResult<std::sync::Arc<SemSet>> {
        self.sets.lookup(id)
    }

    /// The `index`th set (`SEM_STAT`).
    pub fn nth(&self, index: i32) -> SysResult<std::sync::Arc<SemSet>> {
        self.sets.nth(index)
    }

    /// Every set.
    pub fn all(&self) -> Vec<std::sync::Arc<SemSet>> {
        self.sets.all()
    }

    /// `IPC_RMID`: waiters fail with `EIDRM`; undo records of the set are dropped.
    pub fn remove(&self, id: i32, creds: &crate::kernel::creds::Credentials) -> SysResult<()> {
        let set = self.sets.remove(id, creds)?;
        set.retire();
        self.forget(id, None);
        Ok(())
    }

    /// Drops the undo adjustments of semaphore `num` of set `id` (every one of the
    /// set for None) in every process: what `SETVAL`/`SETALL` and `IPC_RMID` do.
    pub fn forget(&self, id: i32, num: Option<u16>) {
        if let Ok(mut u) = self.undo.lock() {
            for per in u.values_mut() {
                per.retain(|&(s, n), _| s != id || num.is_some_and(|x| x != n));
            }
        }
    }

    /// Runs `semop` on set `id` for process `pid`, recording its undo adjustments.
    pub fn try_ops(&self, set: &SemSet, ops: &[SemOp], pid: i32) -> SysResult<Attempt> {
        set.try_ops(ops, pid, |adjust| {
            if adjust.is_empty() {
                return Ok(());
            }
            let mut u = self.undo.lock().map_err(|_| Errno::EIO)?;
            let per = u.entry(pid).or_default();
            // All checked before any is recorded: one out of range refuses the call.
            let mut next: UndoList = HashMap::new();
            for &(num, adj) in adjust {
                let key = (set.id, num);
                let cur = next.get(&key).or(per.get(&key)).copied().unwrap_or(0);
                let v = cur + adj;
                if !(-SEMAEM - 1..=SEMAEM).contains(&v) {
                    return Err(Errno::ERANGE);
                }
                next.insert(key, v);
            }
            for (k, v) in next {
                if v == 0 {
                    per.remove(&k);
                } else {
                    per.insert(k, v);
                }
            }
            Ok(())
        })
    }

    /// Process `pid` has exited: its adjustments are applied and forgotten.
    pub fn exit_process(&self, pid: i32) {
        let Some(per) = self.undo.lock().ok().and_then(|mut u| u.remove(&pid)) else {
            return;
        };
        for ((id, num), adj) in per {
            if let Ok(set) = self.sets.lookup(id) {
                set.undo(num, adj, pid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::creds::Credentials;

    fn op(num: u16, op: i16, flags: i16) -> SemOp {
        SemOp { num, op, flags }
    }

    #[test]
    fn all_or_nothing_and_undo() {
        let t = SemTable::default();
        let root = Credentials::new(0, 0, Vec::new());
        let id = t.get(ipc::IPC_PRIVATE, 2, 0o600, &root).unwrap();
        let set = t.set(id).unwrap();
        assert_eq!(t.try_ops(&set, &[op(0, 1, 0)], 5), Ok(Attempt::Done));
        // The second operation cannot go: the first is not applied either.
        assert_eq!(
            t.try_ops(&set, &[op(0, -1, 0), op(1, -1, 0)], 5),
            Ok(Attempt::Wait {
                num: 1,
                zero: false
            })
        );
        assert_eq!(set.field(0, SemField::Val), Ok(1));
        assert_eq!(
            t.try_ops(&set, &[op(1, 0, 0), op(0, 0, IPC_NOWAIT)], 5),
            Err(Errno::EAGAIN)
        );
        assert_eq!(t.try_ops(&set, &[op(2, 1, 0)], 5), Err(Errno::EFBIG));
        assert_eq!(
            t.try_ops(&set, &[op(0, SEMVMX as i16, 0)], 5),
            Err(Errno::ERANGE)
        );
        assert_eq!(t.try_ops(&set, &[op(1, 3, SEM_UNDO)], 9), Ok(Attempt::Done));
        assert_eq!(set.field(1, SemField::Pid), Ok(9));
        t.exit_process(9);
        assert_eq!(set.values(), Ok(vec![1, 0]));
        t.remove(id, &root).unwrap();
        assert_eq!(t.try_ops(&set, &[op(0, 1, 0)], 5), Err(Errno::EIDRM));
    }
}
