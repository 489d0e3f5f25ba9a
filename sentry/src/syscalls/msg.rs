//! `msgget`, `msgsnd`, `msgrcv`, `msgctl`: System V message queues over
//! [`crate::kernel::msg`].

use crate::errno::{Errno, SysResult};
use crate::kernel::ipc::{self, IPC_64};
use crate::kernel::msg::{Message, MsgQueue, Select, MSGMAX, MSGMNB, MSGMNI};
use crate::kernel::wait::{self, Interrupted};
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::Args;

const IPC_NOWAIT: i32 = 0o4000;
const MSG_NOERROR: i32 = 0o10000;
const MSG_EXCEPT: i32 = 0o20000;
const MSG_COPY: i32 = 0o40000;
const MSG_STAT: i32 = 11;
const MSG_INFO: i32 = 12;
const MSG_STAT_ANY: i32 = 13;
/// `MSGSSZ` and `MSGSEG`, which `IPC_INFO` reports (Linux's segment accounting).
const MSGSSZ: i32 = 16;
const MSGSEG: u16 = 0xffff;

/// `msgget(2)`.
pub fn msgget(task: &mut Task, a: &Args) -> SysResult<u64> {
    Ok(task.ns.ipc.msg.get(a[0] as i32, a[1] as i32, &task.creds)? as u64)
}

/// Blocks until `attempt` yields, the flags forbid waiting (`nowait`), or a signal
/// comes (System V message calls are never restarted).
fn wait_for<T>(
    task: &Task,
    q: &MsgQueue,
    nowait: Errno,
    flags: i32,
    mut attempt: impl FnMut() -> SysResult<Option<T>>,
) -> SysResult<T> {
    if let Some(v) = attempt()? {
        return Ok(v);
    }
    if flags & IPC_NOWAIT != 0 {
        return Err(nowait);
    }
    let _reg = q.queue.register(&task.waker);
    match wait::block(&task.waker, None, || task.signal_pending(), attempt) {
        Ok(r) => r,
        Err(Interrupted::Signal) | Err(Interrupted::Timeout) => Err(Errno::EINTR),
    }
}

/// `msgsnd(2)`.
pub fn msgsnd(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (id, msgp, size, flags) = (a[0] as i32, a[1], a[2] as i64, a[3] as i32);
    let mtype = io::read_u64(task.mem(), msgp)? as i64;
    if size < 0 || size as usize > MSGMAX || id < 0 || mtype < 1 {
        return Err(Errno::EINVAL);
    }
    let mut text = vec![0u8; size as usize];
    io::read_exact(task.mem(), msgp.wrapping_add(8), &mut text)?;
    let q = task.ns.ipc.msg.queue(id)?;
    ipc::check_access(&task.creds, &q.stat()?.perm, 2)?;
    let pid = task.tgid;
    let mut pending = Some(Message { mtype, text });
    wait_for(task, &q, Errno::EAGAIN, flags, || {
        let Some(m) = pending.take() else {
            return Err(Errno::EIO);
        };
        pending = q.try_send(m, pid)?;
        Ok(pending.is_none().then_some(()))
    })?;
    Ok(0)
}

/// `msgrcv(2)`.
pub fn msgrcv(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (id, msgp, size, msgtyp, flags) =
        (a[0] as i32, a[1], a[2] as i64, a[3] as i64, a[4] as i32);
    if size < 0 || id < 0 {
        return Err(Errno::EINVAL);
    }
    let sel = if flags & MSG_COPY != 0 {
        if flags & MSG_EXCEPT != 0 || flags & IPC_NOWAIT == 0 {
            return Err(Errno::EINVAL);
        }
        // A negative position names no message.
        Select::Copy(usize::try_from(msgtyp).unwrap_or(usize::MAX))
    } else if msgtyp == 0 {
        Select::First
    } else if msgtyp > 0 && flags & MSG_EXCEPT != 0 {
        Select::NotType(msgtyp)
    } else if msgtyp > 0 {
        Select::Type(msgtyp)
    } else {
        Select::AtMost(msgtyp.saturating_neg())
    };
    let q = task.ns.ipc.msg.queue(id)?;
    ipc::check_access(&task.creds, &q.stat()?.perm, 4)?;
    let (max, truncate, pid) = (size as usize, flags & MSG_NOERROR != 0, task.tgid);
    let msg = wait_for(task, &q, Errno::ENOMSG, flags, || {
        q.try_receive(sel, max, truncate, pid)
    })?;
    io::write_u64(task.mem(), msgp, msg.mtype as u64)?;
    io::write_all(task.mem(), msgp.wrapping_add(8), &msg.text)?;
    Ok(msg.text.len() as u64)
}

/// `struct msqid64_ds` as x86-64 lays it out.
fn msqid_ds(q: &MsgQueue) -> SysResult<Vec<u8>> {
    let st = q.stat()?;
    let mut b = Vec::with_capacity(120);
    b.extend_from_slice(&st.perm.to_bytes(q.id));
    for v in [st.times[0], st.times[1], st.times[2]] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for v in [st.cbytes, st.qnum, st.qbytes] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&st.lspid.to_le_bytes());
    b.extend_from_slice(&st.lrpid.to_le_bytes());
    b.extend_from_slice(&[0u8; 16]);
    Ok(b)
}

/// `struct msginfo`: seven ints and a short.
fn msginfo(task: &Task, cmd: i32) -> Vec<u8> {
    let queues = task.ns.ipc.msg.all();
    let (pool, map, tql) = if cmd == MSG_INFO {
        let (n, bytes) = queues
            .iter()
            .map(|q| q.totals())
            .fold((0u64, 0u64), |(a, b), (n, c)| (a + n, b + c));
        (
            queues.len() as i32,
            n as i32,
            bytes.min(i32::MAX as u64) as i32,
        )
    } else {
        let pool = (MSGMNI as u64 * MSGMNB / 1024) as i32;
        (pool, MSGMNB as i32, MSGMNB as i32)
    };
    let mut b = Vec::with_capacity(32);
    for v in [
        pool,
        map,
        MSGMAX as i32,
        MSGMNB as i32,
        MSGMNI as i32,
        MSGSSZ,
        tql,
    ] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&MSGSEG.to_le_bytes());
    b.extend_from_slice(&[0u8; 2]);
    b
}

/// `msgctl(2)`.
pub fn msgctl(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (id, cmd, buf) = (a[0] as i32, a[1] as i32 & !IPC_64, a[2]);
    let table = &task.ns.ipc.msg;
    match cmd {
        libc::IPC_INFO | MSG_INFO => {
            io::write_all(task.mem(), buf, &msginfo(task, cmd))?;
            Ok(table.all().len().saturating_sub(1) as u64)
        }
        libc::IPC_STAT | MSG_STAT | MSG_STAT_ANY => {
            let q = if cmd == libc::IPC_STAT {
                table.queue(id)?
            } else {
                table.nth(id)?
            };
            if cmd != MSG_STAT_ANY {
                ipc::check_access(&task.creds, &q.stat()?.perm, 4)?;
            }
            io::write_all(task.mem(), buf, &msqid_ds(&q)?)?;
            Ok(if cmd == libc::IPC_STAT {
                0
            } else {
                q.id as u64
            })
        }
        libc::IPC_SET => {
            let q = table.queue(id)?;
            let mut b = [0u8; 96];
            io::read_exact(task.mem(), buf, &mut b)?;
            let mut perm = [0u8; 24];
            perm.copy_from_slice(&b[..24]);
            let mut qbytes = [0u8; 8];
            qbytes.copy_from_slice(&b[88..96]);
            q.set(&perm, u64::from_le_bytes(qbytes), &task.creds)?;
            Ok(0)
        }
        libc::IPC_RMID => {
            table.remove(id, &task.creds)?;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}
