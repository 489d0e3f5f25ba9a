//! System V message queues (`msgget`, `msgsnd`, `msgrcv`, `msgctl`), one namespace
//! per sandbox. Senders wait while a queue is full, receivers while nothing
//! matches; both wait on the queue's wait queue and retry on every change.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::{Credentials, CAP_SYS_RESOURCE};
use crate::kernel::ipc::{self, IpcObject, IpcPerm, Registry};
use crate::kernel::wait::WaitQueue;

/// Largest message (`MSGMAX`).
pub const MSGMAX: usize = 8192;
/// Default and unprivileged maximum bytes in one queue (`MSGMNB`).
pub const MSGMNB: u64 = 16384;
/// Most queues in the sandbox (`MSGMNI`).
pub const MSGMNI: usize = 32000;

/// One message.
pub struct Message {
    /// Its type (positive).
    pub mtype: i64,
    /// Its text.
    pub text: Vec<u8>,
}

struct QueueState {
    perm: IpcPerm,
    msgs: VecDeque<Message>,
    cbytes: u64,
    qbytes: u64,
    stime: i64,
    rtime: i64,
    ctime: i64,
    lspid: i32,
    lrpid: i32,
    removed: bool,
}

/// The fields `msgctl(IPC_STAT)` reports.
pub struct QueueStat {
    /// Owner and mode.
    pub perm: IpcPerm,
    /// Last send, receive, change.
    pub times: [i64; 3],
    /// Bytes queued.
    pub cbytes: u64,
    /// Messages queued.
    pub qnum: u64,
    /// Most bytes it may hold.
    pub qbytes: u64,
    /// Last sender and receiver.
    pub lspid: i32,
    /// Last receiver.
    pub lrpid: i32,
}

/// Which message `msgrcv` takes.
#[derive(Clone, Copy, Debug)]
pub enum Select {
    /// `msgtyp` 0: the first.
    First,
    /// `msgtyp` > 0: the first of this type.
    Type(i64),
    /// `msgtyp` > 0 with `MSG_EXCEPT`: the first of another type.
    NotType(i64),
    /// `msgtyp` < 0: the first of the lowest type up to this.
    AtMost(i64),
    /// `MSG_COPY`: a copy of the message at this position, left queued.
    Copy(usize),
}

/// One message queue.
pub struct MsgQueue {
    /// Its id.
    pub id: i32,
    state: Mutex<QueueState>,
    /// Senders and receivers blocked on it.
    pub queue: WaitQueue,
}

impl IpcObject for MsgQueue {
    fn perm(&self) -> IpcPerm {
        self.state.lock().map(|s| s.perm).unwrap_or_default()
    }
}

impl MsgQueue {
    fn state(&self) -> SysResult<MutexGuard<'_, QueueState>> {
        let s = self.state.lock().map_err(|_| Errno::EIO)?;
        if s.removed {
            return Err(Errno::EIDRM);
        }
        Ok(s)
    }

    /// Queues `msg` from process `pid` if it fits; gives it back if not.
    pub fn try_send(&self, msg: Message, pid: i32) -> SysResult<Option<Message>> {
        let mut s = self.state()?;
        let len = msg.text.len() as u64;
        if s.cbytes + len > s.qbytes || s.msgs.len() as u64 + 1 > s.qbytes {
            return Ok(Some(msg));
        }
        s.cbytes += len;
        s.msgs.push_back(msg);
        s.lspid = pid;
        s.stime = ipc::now();
        drop(s);
        self.queue.notify_all();
        Ok(None)
    }

    /// Takes (or copies) the message `sel` picks for process `pid`, if there is one.
    /// A message longer than `max` stays queued and gives `E2BIG` unless
    /// `truncate`, which cuts it.
    pub fn try_receive(
        &self,
        sel: Select,
        max: usize,
        truncate: bool,
        pid: i32,
    ) -> SysResult<Option<Message>> {
        let mut s = self.state()?;
        let at = match sel {
            Select::First => (!s.msgs.is_empty()).then_some(0),
            Select::Type(t) => s.msgs.iter().position(|m| m.mtype == t),
            Select::NotType(t) => s.msgs.iter().position(|m| m.mtype != t),
            Select::AtMost(t) => s
                .msgs
                .iter()
                .enumerate()
                .filter(|(_, m)| m.mtype <= t)
                .min_by_key(|(i, m)| (m.mtype, *i))
                .map(|(i, _)| i),
            Select::Copy(i) => (i < s.msgs.len()).then_some(i),
        };
        let Some(at) = at else {
            return Ok(None);
        };
        if s.msgs[at].text.len() > max && !truncate {
            return Err(Errno::E2BIG);
        }
        let mut msg = if let Select::Copy(_) = sel {
            Message {
                mtype: s.msgs[at].mtype,
                text: s.msgs[at].text.clone(),
            }
        } else {
            let m = s.msgs.remove(at).ok_or(Errno::EIO)?;
            s.cbytes -= m.text.len() as u64;
            s.lrpid = pid;
            s.rtime = ipc::now();
            m
        };
        drop(s);
        msg.text.truncate(max);
        if !matches!(sel, Select::Copy(_)) {
            self.queue.notify_all();
        }
        Ok(Some(msg))
    }

    /// Owner, mode, times and counts.
    pub fn stat(&self) -> SysResult<QueueStat> {
        let s = self.state()?;
        Ok(QueueStat {
            perm: s.perm,
            times: [s.stime, s.rtime, s.ctime],
            cbytes: s.cbytes,
            qnum: s.msgs.len() as u64,
            qbytes: s.qbytes,
            lspid: s.lspid,
            lrpid: s.lrpid,
        })
    }

    /// `IPC_SET`: owner and mode from the structure's first 24 bytes, and the
    /// byte limit (above [`MSGMNB`] only with `CAP_SYS_RESOURCE`).
    pub fn set(&self, b: &[u8; 24], qbytes: u64, creds: &Credentials) -> SysResult<()> {
        let mut s = self.state()?;
        if !ipc::owns(creds, &s.perm) {
            return Err(Errno::EPERM);
        }
        if qbytes > MSGMNB && !creds.has_cap(CAP_SYS_RESOURCE) {
            return Err(Errno::EPERM);
        }
        s.perm.set_from(b);
        s.qbytes = qbytes;
        s.ctime = ipc::now();
        drop(s);
        // A larger limit may let a blocked sender go.
        self.queue.notify_all();
        Ok(())
    }

    /// Messages and bytes queued.
    pub fn totals(&self) -> (u64, u64) {
        self.state
            .lock()
            .map(|s| (s.msgs.len() as u64, s.cbytes))
            .unwrap_or((0, 0))
    }
}

/// Every message queue of the sandbox.
pub struct MsgTable {
    queues: Registry<MsgQueue>,
}

impl Default for MsgTable {
    fn default() -> Self {
        MsgTable {
            queues: Registry::new(MSGMNI),
        }
    }
}

impl MsgTable {
    /// `msgget(2)`.
    pub fn get(&self, key: i32, flags: i32, creds: &Credentials) -> SysResult<i32> {
        self.queues.get(
            key,
            flags,
            creds,
            |_| Ok(()),
            |id, perm| {
                Ok(MsgQueue {
                    id,
                    state: Mutex::new(QueueState {
                        perm,
                        msgs: VecDeque::new(),
                        cbytes: 0,
                        qbytes: MSGMNB,
                        stime: 0,
                        rtime: 0,
                        ctime: ipc::now(),
                        lspid: 0,
                        lrpid: 0,
                        removed: false,
                    }),
                    queue: WaitQueue::new(),
                })
            },
        )
    }

    /// The queue `id`.
    pub fn queue(&self, id: i32) -> SysResult<Arc<MsgQueue>> {
        self.queues.lookup(id)
    }

    /// The `index`th queue (`MSG_STAT`).
    pub fn nth(&self, index: i32) -> SysResult<Arc<MsgQueue>> {
        self.queues.nth(index)
    }

    /// Every queue.
    pub fn all(&self) -> Vec<Arc<MsgQueue>> {
        self.queues.all()
    }

    /// `IPC_RMID`: queued messages go, waiters fail with `EIDRM`.
    pub fn remove(&self, id: i32, creds: &Credentials) -> SysResult<()> {
        let q = self.queues.remove(id, creds)?;
        if let Ok(mut s) = q.state.lock() {
            s.removed = true;
            s.msgs.clear();
        }
        q.queue.notify_all();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(mtype: i64, text: &str) -> Message {
        Message {
            mtype,
            text: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn selection_limits_and_removal() {
        let t = MsgTable::default();
        let root = Credentials::new(0, 0, Vec::new());
        let id = t.get(ipc::IPC_PRIVATE, 0o600, &root).unwrap();
        let q = t.queue(id).unwrap();
        for (ty, s) in [(3, "c"), (1, "a"), (2, "bb")] {
            assert!(q.try_send(msg(ty, s), 1).unwrap().is_none());
        }
        let take = |sel, max, trunc| {
            q.try_receive(sel, max, trunc, 2)
                .map(|m| m.map(|m| (m.mtype, String::from_utf8(m.text).unwrap())))
        };
        assert_eq!(take(Select::Copy(2), 10, false), Ok(Some((2, "bb".into()))));
        assert_eq!(
            take(Select::AtMost(2), 10, false),
            Ok(Some((1, "a".into())))
        );
        assert_eq!(take(Select::Type(2), 1, false), Err(Errno::E2BIG));
        assert_eq!(take(Select::Type(2), 1, true), Ok(Some((2, "b".into()))));
        assert_eq!(take(Select::NotType(3), 10, false), Ok(None));
        assert_eq!(take(Select::First, 10, false), Ok(Some((3, "c".into()))));
        let big = Message {
            mtype: 1,
            text: vec![0; MSGMNB as usize],
        };
        assert!(q.try_send(big, 1).unwrap().is_none());
        assert!(q.try_send(msg(1, "x"), 1).unwrap().is_some());
        t.remove(id, &root).unwrap();
        assert_eq!(q.try_send(msg(1, "x"), 1).err(), Some(Errno::EIDRM));
    }
}
