//! `semget`, `semop`, `semtimedop`, `semctl`: System V semaphores over
//! [`crate::kernel::sem`].

use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::kernel::ipc::{self, IPC_64};
use crate::kernel::sem::{
    Attempt, SemField, SemOp, SemSet, SEMAEM, SEMMNI, SEMMNS, SEMMSL, SEMOPM, SEMVMX,
};
use crate::kernel::wait::{self, Interrupted};
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::Args;

const GETPID: i32 = 11;
const GETVAL: i32 = 12;
const GETALL: i32 = 13;
const GETNCNT: i32 = 14;
const GETZCNT: i32 = 15;
const SETVAL: i32 = 16;
const SETALL: i32 = 17;
const SEM_STAT: i32 = 18;
const SEM_INFO: i32 = 19;
const SEM_STAT_ANY: i32 = 20;
/// `SEMUSZ`, which `IPC_INFO` reports (the size of Linux's undo structure).
const SEMUSZ: i32 = 20;

/// `semget(2)`.
pub fn semget(task: &mut Task, a: &Args) -> SysResult<u64> {
    let id = task
        .ns
        .ipc
        .sem
        .get(a[0] as i32, a[1] as i32, a[2] as i32, &task.creds)?;
    Ok(id as u64)
}

/// `semop(2)`.
pub fn semop(task: &mut Task, a: &Args) -> SysResult<u64> {
    run_ops(task, a[0] as i32, a[1], a[2], None)
}

/// `semtimedop(2)`: `semop` whose wait ends with `EAGAIN` after the timeout.
pub fn semtimedop(task: &mut Task, a: &Args) -> SysResult<u64> {
    let timeout = if a[3] == 0 {
        None
    } else {
        Some(crate::syscalls::poll::read_timespec(task, a[3])?)
    };
    run_ops(task, a[0] as i32, a[1], a[2], timeout)
}

fn run_ops(
    task: &mut Task,
    id: i32,
    sops: u64,
    nsops: u64,
    timeout: Option<Duration>,
) -> SysResult<u64> {
    if nsops == 0 || id < 0 {
        return Err(Errno::EINVAL);
    }
    if nsops > SEMOPM as u64 {
        return Err(Errno::E2BIG);
    }
    let mut raw = vec![0u8; nsops as usize * 6];
    io::read_exact(task.mem(), sops, &mut raw)?;
    let ops: Vec<SemOp> = raw
        .chunks_exact(6)
        .map(|c| SemOp {
            num: u16::from_le_bytes([c[0], c[1]]),
            op: i16::from_le_bytes([c[2], c[3]]),
            flags: i16::from_le_bytes([c[4], c[5]]),
        })
        .collect();
    let set = task.ns.ipc.sem.set(id)?;
    if ops.iter().any(|o| usize::from(o.num) >= set.len()) {
        return Err(Errno::EFBIG);
    }
    let want = if ops.iter().any(|o| o.op != 0) { 2 } else { 4 };
    ipc::check_access(&task.creds, &set.stat()?.perm, want)?;
    let deadline = timeout.and_then(|d| Instant::now().checked_add(d));
    let ipc = task.ns.ipc.clone();
    let pid = task.tgid;
    let _reg = set.queue.register(&task.waker);
    // The semaphore this caller is counted as waiting on (semncnt / semzcnt).
    let mut counted: Option<(u16, bool)> = None;
    let r = wait::block(
        &task.waker,
        deadline,
        || task.signal_pending(),
        || match ipc.sem.try_ops(&set, &ops, pid)? {
            Attempt::Done => Ok(Some(())),
            Attempt::Wait { num, zero } => {
                if counted != Some((num, zero)) {
                    if let Some((n, z)) = counted {
                        set.count_waiter(n, z, -1);
                    }
                    set.count_waiter(num, zero, 1);
                    counted = Some((num, zero));
                }
                Ok(None)
            }
        },
    );
    if let Some((n, z)) = counted {
        set.count_waiter(n, z, -1);
    }
    match r {
        Ok(r) => r.map(|()| 0),
        // semop is never restarted, whatever SA_RESTART says.
        Err(Interrupted::Signal) => Err(Errno::EINTR),
        Err(Interrupted::Timeout) => Err(Errno::EAGAIN),
    }
}

/// `struct semid64_ds` as x86-64 lays it out.
fn semid_ds(set: &SemSet) -> SysResult<Vec<u8>> {
    let st = set.stat()?;
    let mut b = Vec::with_capacity(104);
    b.extend_from_slice(&st.perm.to_bytes(set.id));
    for v in [
        st.otime as u64,
        0,
        st.ctime as u64,
        0,
        st.nsems as u64,
        0,
        0,
    ] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    Ok(b)
}

/// `struct seminfo`: ten ints.
fn seminfo(task: &Task, cmd: i32) -> Vec<u8> {
    let sets = task.ns.ipc.sem.all();
    let (usz, aem) = if cmd == SEM_INFO {
        (
            sets.len() as i32,
            sets.iter().map(|s| s.len()).sum::<usize>() as i32,
        )
    } else {
        (SEMUSZ, SEMAEM)
    };
    let clamp = |v: usize| v.min(i32::MAX as usize) as i32;
    let fields = [
        clamp(SEMMNS),
        clamp(SEMMNI),
        clamp(SEMMNS),
        clamp(SEMMNS),
        clamp(SEMMSL),
        clamp(SEMOPM),
        clamp(SEMOPM),
        usz,
        SEMVMX,
        aem,
    ];
    fields.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `semctl(2)`.
pub fn semctl(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (id, num, cmd, arg) = (a[0] as i32, a[1] as i32, a[2] as i32 & !IPC_64, a[3]);
    let table = &task.ns.ipc.sem;
    // Read (4) or alter (2) permission on the set.
    let may = |set: &SemSet, want| ipc::check_access(&task.creds, &set.stat()?.perm, want);
    match cmd {
        libc::IPC_INFO | SEM_INFO => {
            io::write_all(task.mem(), arg, &seminfo(task, cmd))?;
            Ok(table.all().len().saturating_sub(1) as u64)
        }
        libc::IPC_STAT | SEM_STAT | SEM_STAT_ANY => {
            let set = if cmd == libc::IPC_STAT {
                table.set(id)?
            } else {
                table.nth(id)?
            };
            if cmd != SEM_STAT_ANY {
                may(&set, 4)?;
            }
            io::write_all(task.mem(), arg, &semid_ds(&set)?)?;
            Ok(if cmd == libc::IPC_STAT {
                0
            } else {
                set.id as u64
            })
        }
        libc::IPC_SET => {
            let set = table.set(id)?;
            let mut b = [0u8; 24];
            io::read_exact(task.mem(), arg, &mut b)?;
            set.set_perm(&b, &task.creds)?;
            Ok(0)
        }
        libc::IPC_RMID => {
            table.remove(id, &task.creds)?;
            Ok(0)
        }
        GETVAL | GETPID | GETNCNT | GETZCNT => {
            let set = table.set(id)?;
            may(&set, 4)?;
            let f = match cmd {
                GETVAL => SemField::Val,
                GETPID => SemField::Pid,
                GETNCNT => SemField::Ncnt,
                _ => SemField::Zcnt,
            };
            Ok(set.field(num, f)? as u64)
        }
        GETALL => {
            let set = table.set(id)?;
            may(&set, 4)?;
            let vals: Vec<u8> = set.values()?.iter().flat_map(|v| v.to_le_bytes()).collect();
            io::write_all(task.mem(), arg, &vals)?;
            Ok(0)
        }
        SETVAL => {
            // The union's int member: the low half of the register.
            let val = arg as u32 as i32;
            if !(0..=SEMVMX).contains(&val) {
                return Err(Errno::ERANGE);
            }
            let set = table.set(id)?;
            may(&set, 2)?;
            set.set(Some(num), &[val], task.tgid)?;
            table.forget(id, u16::try_from(num).ok());
            Ok(0)
        }
        SETALL => {
            let set = table.set(id)?;
            may(&set, 2)?;
            let mut raw = vec![0u8; set.len() * 2];
            io::read_exact(task.mem(), arg, &mut raw)?;
            let vals: Vec<i32> = raw
                .chunks_exact(2)
                .map(|c| i32::from(u16::from_le_bytes([c[0], c[1]])))
                .collect();
            set.set(None, &vals, task.tgid)?;
            table.forget(id, None);
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}
