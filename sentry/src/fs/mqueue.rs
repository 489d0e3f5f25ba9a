//! POSIX message queues and the `mqueue` filesystem that shows them. Each IPC
//! namespace owns one [`MqNamespace`]: its queues by name, its limits (the
//! `/proc/sys/fs/mqueue` files) and the root of its filesystem, which every
//! `mount -t mqueue` in that namespace shows. A queue is both a file of that
//! filesystem and what `mq_open` returns a descriptor to; reading either gives
//! Linux's status line (`QSIZE:... NOTIFY:... SIGNO:... NOTIFY_PID:...`).
//!
//! Messages are kept by priority, highest first and in arrival order within one.
//! Senders and receivers wait on the queue's wait queue (the system calls in
//! `syscalls/mqueue.rs` do the blocking); a message arriving on an empty queue
//! with nobody waiting to receive fires the registered notification once.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use crate::creds::{Credentials, CAP_SYS_RESOURCE};
use crate::errno::{Errno, SysResult};
use crate::fs::procfs::node::{GenDir, GenFile};
use crate::vfs::perm::{self, MAY_READ, MAY_WRITE};
use crate::vfs::{FileImpl, Inode, Owner, SetAttr, Stat, StatFs};
use crate::wait::WaitQueue;

/// Priorities are below this (`MQ_PRIO_MAX`).
pub const MQ_PRIO_MAX: u32 = 32768;
/// `MQUEUE_MAGIC`, what `statfs` reports.
pub const MQUEUE_MAGIC: i64 = 0x1980_0202;
/// `st_dev` of the filesystem's objects.
const MQUEUE_DEV: u64 = 0x1b;
/// The size a queue file reports (Linux's `FILENT_SIZE`).
const FILENT_SIZE: i64 = 80;
/// Bounds of the limits, as Linux's sysctl tables and `HARD_*` constants set them.
const HARD_MSGMAX: i64 = 65536;
const HARD_MSGSIZEMAX: i64 = 16 * 1024 * 1024;
const MIN_MSGSIZEMAX: i64 = 128;
const HARD_QUEUESMAX: i64 = 1024;
/// Longest queue name.
use abi::limits::NAME_MAX;

/// `SIGEV_SIGNAL`, `SIGEV_NONE`.
pub const SIGEV_SIGNAL: i32 = 0;
/// No notification beyond the registration.
pub const SIGEV_NONE: i32 = 1;

/// Sends a notification: called with the sender's pid and uid.
pub type Deliver = Box<dyn Fn(i32, u32) + Send + Sync>;

/// A process registered for notification (`mq_notify`).
pub struct Notify {
    /// The registering process.
    pub owner: i32,
    /// `sigev_notify`.
    pub kind: i32,
    /// `sigev_signo` (with `SIGEV_SIGNAL`).
    pub signo: i32,
    /// What to do when it fires.
    pub deliver: Deliver,
    /// Whether the registering process still lives (an exited one's registration
    /// is gone, as its descriptors' closes remove it on Linux).
    pub alive: Box<dyn Fn() -> bool + Send + Sync>,
}

/// The tunables of `/proc/sys/fs/mqueue`.
pub struct MqLimits {
    /// `msg_max`: the most messages an unprivileged creator may ask for.
    pub msg_max: AtomicI64,
    /// `msgsize_max`: the largest message size an unprivileged creator may ask for.
    pub msgsize_max: AtomicI64,
    /// `queues_max`: queues in the namespace (beyond it only with CAP_SYS_RESOURCE).
    pub queues_max: AtomicI64,
    /// `msg_default`: `mq_maxmsg` when no attributes are given.
    pub msg_default: AtomicI64,
    /// `msgsize_default`: `mq_msgsize` when no attributes are given.
    pub msgsize_default: AtomicI64,
}

impl Default for MqLimits {
    fn default() -> Self {
        MqLimits {
            msg_max: AtomicI64::new(10),
            msgsize_max: AtomicI64::new(8192),
            queues_max: AtomicI64::new(256),
            msg_default: AtomicI64::new(10),
            msgsize_default: AtomicI64::new(8192),
        }
    }
}

impl MqLimits {
    /// The files of `/proc/sys/fs/mqueue`: name, the limit, its valid range.
    fn entries(&self) -> [(&'static str, &AtomicI64, i64, i64); 5] {
        [
            ("msg_default", &self.msg_default, 1, HARD_MSGMAX),
            ("msg_max", &self.msg_max, 1, HARD_MSGMAX),
            (
                "msgsize_default",
                &self.msgsize_default,
                MIN_MSGSIZEMAX,
                HARD_MSGSIZEMAX,
            ),
            (
                "msgsize_max",
                &self.msgsize_max,
                MIN_MSGSIZEMAX,
                HARD_MSGSIZEMAX,
            ),
            ("queues_max", &self.queues_max, 0, i32::MAX as i64),
        ]
    }
}

struct QState {
    msgs: BTreeMap<u32, VecDeque<Vec<u8>>>,
    count: i64,
    qsize: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    notify: Option<Notify>,
    receivers: usize,
    times: [(i64, i64); 3],
}

/// Bytes charged per user against `RLIMIT_MSGQUEUE`.
type Usage = Arc<Mutex<std::collections::HashMap<u32, u64>>>;

/// A queue's charge: given back when the queue goes.
struct Charge {
    usage: Weak<Mutex<std::collections::HashMap<u32, u64>>>,
    uid: u32,
    bytes: u64,
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(u) = self.usage.upgrade() {
            if let Ok(mut m) = u.lock() {
                if let Some(v) = m.get_mut(&self.uid) {
                    *v = v.saturating_sub(self.bytes);
                }
            }
        }
    }
}

/// The bytes Linux charges a queue against `RLIMIT_MSGQUEUE`: its messages at
/// full size and a 48-byte header and tree node per message (and priority).
pub fn queue_bytes(maxmsg: i64, msgsize: i64) -> u64 {
    let (m, s) = (maxmsg.max(0) as u64, msgsize.max(0) as u64);
    m.saturating_mul(s)
        .saturating_add(m * 48)
        .saturating_add(m.min(MQ_PRIO_MAX as u64) * 48)
}

/// One message queue.
pub struct Queue {
    ino: u64,
    _charge: Option<Charge>,
    /// `mq_maxmsg`.
    pub maxmsg: i64,
    /// `mq_msgsize`.
    pub msgsize: i64,
    state: Mutex<QState>,
    /// Blocked senders and receivers, pollers.
    pub waiters: WaitQueue,
}

fn now() -> (i64, i64) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos() as i64)
}

impl Queue {
    fn new(
        ino: u64,
        maxmsg: i64,
        msgsize: i64,
        mode: u32,
        owner: Owner,
        charge: Option<Charge>,
    ) -> Arc<Queue> {
        let t = now();
        Arc::new(Queue {
            ino,
            _charge: charge,
            maxmsg,
            msgsize,
            state: Mutex::new(QState {
                msgs: BTreeMap::new(),
                count: 0,
                qsize: 0,
                mode: mode & 0o7777,
                uid: owner.uid,
                gid: owner.gid,
                notify: None,
                receivers: 0,
                times: [t; 3],
            }),
            waiters: WaitQueue::new(),
        })
    }

    fn state(&self) -> SysResult<MutexGuard<'_, QState>> {
        self.state.lock().map_err(|_| Errno::EIO)
    }

    /// Messages queued now (`mq_curmsgs`).
    pub fn count(&self) -> i64 {
        self.state().map(|s| s.count).unwrap_or(0)
    }

    /// Queues `msg` at `prio` if there is room (`Ok(false)`: full). A message into
    /// an empty queue that nobody waits on fires the notification, sent by process
    /// `pid` of real uid `uid`.
    pub fn try_send(&self, msg: &[u8], prio: u32, pid: i32, uid: u32) -> SysResult<bool> {
        let fire = {
            let mut s = self.state()?;
            if s.count >= self.maxmsg {
                return Ok(false);
            }
            s.msgs.entry(prio).or_default().push_back(msg.to_vec());
            s.count += 1;
            s.qsize += msg.len() as u64;
            let t = now();
            s.times[1] = t;
            s.times[2] = t;
            if s.count == 1 && s.receivers == 0 {
                s.notify.take()
            } else {
                None
            }
        };
        self.waiters.notify_all();
        if let Some(n) = fire {
            (n.deliver)(pid, uid);
        }
        Ok(true)
    }

    /// Takes the oldest message of the highest priority, if any.
    pub fn try_receive(&self) -> SysResult<Option<(Vec<u8>, u32)>> {
        let got = {
            let mut s = self.state()?;
            let Some(mut e) = s.msgs.last_entry() else {
                return Ok(None);
            };
            let prio = *e.key();
            let msg = e.get_mut().pop_front().ok_or(Errno::EIO)?;
            if e.get().is_empty() {
                e.remove();
            }
            s.count -= 1;
            s.qsize -= msg.len() as u64;
            let t = now();
            s.times[0] = t;
            s.times[2] = t;
            (msg, prio)
        };
        self.waiters.notify_all();
        Ok(Some(got))
    }

    /// Counts a receiver as blocked (`true`) or no longer (`false`): a message that
    /// a blocked receiver will take fires no notification.
    pub fn receiver_waiting(&self, on: bool) {
        if let Ok(mut s) = self.state() {
            if on {
                s.receivers += 1;
            } else {
                s.receivers = s.receivers.saturating_sub(1);
            }
        }
    }

    /// `mq_notify` with a sigevent: `EBUSY` if another process is registered.
    pub fn register(&self, n: Notify) -> SysResult<()> {
        let mut s = self.state()?;
        if s.notify.as_ref().is_some_and(|n| (n.alive)()) {
            return Err(Errno::EBUSY);
        }
        s.notify = Some(n);
        Ok(())
    }

    /// `mq_notify(NULL)`: drops the registration if `owner` made it.
    pub fn unregister(&self, owner: i32) -> SysResult<()> {
        let mut s = self.state()?;
        if s.notify.as_ref().is_some_and(|n| n.owner == owner) {
            s.notify = None;
        }
        Ok(())
    }

    /// Checks `want` (`MAY_*`) against the queue's owner and mode.
    pub fn check_access(&self, creds: &Credentials, want: u32) -> SysResult<()> {
        perm::check(creds, &self.attrs()?, want, false)
    }

    fn attrs(&self) -> SysResult<Stat> {
        let s = self.state()?;
        Ok(Stat {
            dev: MQUEUE_DEV,
            ino: self.ino,
            mode: libc::S_IFREG | s.mode,
            nlink: 1,
            uid: s.uid,
            gid: s.gid,
            size: FILENT_SIZE,
            blksize: 4096,
            atime: s.times[0],
            mtime: s.times[1],
            ctime: s.times[2],
            ..Default::default()
        })
    }

    /// chmod and chown of the queue's file.
    pub fn setattr(&self, attr: &SetAttr) -> SysResult<()> {
        let mut s = self.state()?;
        if let Some(m) = attr.mode {
            s.mode = m & 0o7777;
        }
        if let Some(u) = attr.uid {
            s.uid = u;
        }
        if let Some(g) = attr.gid {
            s.gid = g;
        }
        s.times[2] = now();
        Ok(())
    }
    /// The line a read of the queue's file gives.
    pub fn status(&self) -> SysResult<String> {
        let s = self.state()?;
        let (kind, signo, pid) = match &s.notify {
            Some(n) if (n.alive)() => (
                n.kind,
                if n.kind == SIGEV_SIGNAL { n.signo } else { 0 },
                n.owner,
            ),
            _ => (0, 0, 0),
        };
        Ok(format!(
            "QSIZE:{:<10} NOTIFY:{:<5} SIGNO:{:<5} NOTIFY_PID:{:<6}\n",
            s.qsize, kind, signo, pid
        ))
    }
}

/// A queue as the filesystem holds it: opens give a [`MqFile`] on the same queue.
struct QueueNode(Arc<Queue>);

impl Inode for QueueNode {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        self.0.attrs()
    }
    fn open(&self, _flags: i32) -> SysResult<Box<dyn FileImpl>> {
        Ok(Box::new(MqFile(self.0.clone())))
    }
    fn setattr(&self, attr: &SetAttr) -> SysResult<()> {
        self.0.setattr(attr)
    }
    fn statfs(&self) -> SysResult<StatFs> {
        Ok(mqueue_statfs())
    }
}

/// An open queue: a message queue descriptor, or a file of the filesystem.
pub struct MqFile(pub Arc<Queue>);

impl FileImpl for MqFile {
    fn read(&self, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        let text = self.0.status()?.into_bytes();
        let off = (offset as usize).min(text.len());
        let n = buf.len().min(text.len() - off);
        buf[..n].copy_from_slice(&text[off..off + n]);
        Ok(n)
    }
    fn stat(&self) -> SysResult<Stat> {
        self.0.attrs()
    }
    fn readiness(&self) -> u32 {
        let c = self.0.count();
        let mut r = 0;
        if c > 0 {
            r |= libc::POLLIN | libc::POLLRDNORM;
        }
        if c < self.0.maxmsg {
            r |= libc::POLLOUT | libc::POLLWRNORM;
        }
        r as u32
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.0.waiters)
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// Whether `f` is an open message queue (a regular file that can be polled).
pub fn is_queue(f: &dyn FileImpl) -> bool {
    f.as_any()
        .is_some_and(|x| x.downcast_ref::<MqFile>().is_some())
}

fn mqueue_statfs() -> StatFs {
    StatFs {
        kind: MQUEUE_MAGIC,
        bsize: 4096,
        namelen: NAME_MAX as i64,
        frsize: 4096,
        ..Default::default()
    }
}

/// The queues of one IPC namespace.
#[derive(Default)]
pub struct MqNamespace {
    queues: Mutex<BTreeMap<Vec<u8>, Arc<Queue>>>,
    /// `/proc/sys/fs/mqueue`.
    pub limits: MqLimits,
    next_ino: AtomicU64,
    root: OnceLock<Arc<dyn Inode>>,
    usage: Usage,
}

/// Attributes asked for at creation: `mq_maxmsg`, `mq_msgsize`.
pub type CreateAttr = (i64, i64);

impl MqNamespace {
    fn queues(&self) -> SysResult<MutexGuard<'_, BTreeMap<Vec<u8>, Arc<Queue>>>> {
        self.queues.lock().map_err(|_| Errno::EIO)
    }

    /// Checks a name as `mq_open` and `mq_unlink` get it (without glibc's `/`).
    pub fn check_name(name: &[u8]) -> SysResult<()> {
        if name.is_empty() {
            return Err(Errno::ENOENT);
        }
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        if name.contains(&b'/') || name == b"." || name == b".." {
            return Err(Errno::EACCES);
        }
        Ok(())
    }

    /// The attributes a new queue gets: `attr`'s, checked against the limits, or
    /// the defaults.
    fn new_attr(&self, attr: Option<CreateAttr>, creds: &Credentials) -> SysResult<CreateAttr> {
        let l = &self.limits;
        let (msg_max, size_max) = (
            l.msg_max.load(Ordering::Relaxed),
            l.msgsize_max.load(Ordering::Relaxed),
        );
        let Some((maxmsg, msgsize)) = attr else {
            return Ok((
                l.msg_default.load(Ordering::Relaxed).min(msg_max),
                l.msgsize_default.load(Ordering::Relaxed).min(size_max),
            ));
        };
        if maxmsg <= 0 || msgsize <= 0 {
            return Err(Errno::EINVAL);
        }
        let privileged = creds.has_cap(CAP_SYS_RESOURCE);
        if (!privileged && (maxmsg > msg_max || msgsize > size_max))
            || maxmsg > HARD_MSGMAX
            || msgsize > HARD_MSGSIZEMAX
        {
            return Err(Errno::EINVAL);
        }
        Ok((maxmsg, msgsize))
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &self,
        map: &mut BTreeMap<Vec<u8>, Arc<Queue>>,
        name: &[u8],
        mode: u32,
        owner: Owner,
        attr: CreateAttr,
        creds: &Credentials,
        rlimit: Option<u64>,
    ) -> SysResult<Arc<Queue>> {
        let max = self.limits.queues_max.load(Ordering::Relaxed);
        if map.len() as i64 >= max && !creds.has_cap(CAP_SYS_RESOURCE) {
            return Err(Errno::ENOSPC);
        }
        if map.len() as i64 >= HARD_QUEUESMAX.max(max) {
            return Err(Errno::ENOSPC);
        }
        let charge = match rlimit {
            Some(limit) => {
                let bytes = queue_bytes(attr.0, attr.1);
                let mut u = self.usage.lock().map_err(|_| Errno::EIO)?;
                let used = u.entry(creds.uid).or_insert(0);
                if used.saturating_add(bytes) > limit {
                    return Err(Errno::EMFILE);
                }
                *used += bytes;
                Some(Charge {
                    usage: Arc::downgrade(&self.usage),
                    uid: creds.uid,
                    bytes,
                })
            }
            None => None,
        };
        let ino = 2 + self.next_ino.fetch_add(1, Ordering::Relaxed);
        let q = Queue::new(ino, attr.0, attr.1, mode, owner, charge);
        map.insert(name.to_vec(), q.clone());
        Ok(q)
    }

    /// `mq_open`: the queue `name`, made with `mode` and `attr` under `O_CREAT`
    /// and charged to the caller's real uid within `rlimit` (`RLIMIT_MSGQUEUE`,
    /// `EMFILE` past it). `flags`' access mode is checked against the queue's mode.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        &self,
        name: &[u8],
        flags: i32,
        mode: u32,
        attr: Option<CreateAttr>,
        creds: &Credentials,
        rlimit: u64,
    ) -> SysResult<Arc<Queue>> {
        Self::check_name(name)?;
        let want = match flags & libc::O_ACCMODE {
            libc::O_RDONLY => MAY_READ,
            libc::O_WRONLY => MAY_WRITE,
            libc::O_RDWR => MAY_READ | MAY_WRITE,
            _ => return Err(Errno::EINVAL),
        };
        let mut map = self.queues()?;
        if let Some(q) = map.get(name) {
            if flags & libc::O_CREAT != 0 && flags & libc::O_EXCL != 0 {
                return Err(Errno::EEXIST);
            }
            q.check_access(creds, want)?;
            return Ok(q.clone());
        }
        if flags & libc::O_CREAT == 0 {
            return Err(Errno::ENOENT);
        }
        let attr = self.new_attr(attr, creds)?;
        let owner = Owner {
            uid: creds.fsuid,
            gid: creds.fsgid,
        };
        self.insert(&mut map, name, mode, owner, attr, creds, Some(rlimit))
    }

    /// `mq_unlink`: the name goes; open descriptors keep the queue. Only the
    /// queue's owner (or CAP_FOWNER) may remove it: `EACCES` for others, as Linux
    /// answers.
    pub fn unlink(&self, name: &[u8], creds: &Credentials) -> SysResult<()> {
        Self::check_name(name)?;
        let mut map = self.queues()?;
        let q = map.get(name).ok_or(Errno::ENOENT)?;
        let st = q.attrs()?;
        if creds.fsuid != st.uid && creds.fsuid != 0 && !creds.has_cap(crate::creds::CAP_FOWNER) {
            return Err(Errno::EACCES);
        }
        map.remove(name);
        Ok(())
    }

    /// The root directory of this namespace's `mqueue` filesystem.
    pub fn root(self: &Arc<Self>) -> Arc<dyn Inode> {
        self.root
            .get_or_init(|| {
                Arc::new(MqRoot {
                    ns: Arc::downgrade(self),
                })
            })
            .clone()
    }

    /// `/proc/sys/fs/mqueue` for the namespace `ns` gives (that of the reader).
    pub fn sysctl_dir(ns: Arc<dyn Fn() -> Arc<MqNamespace> + Send + Sync>) -> Arc<dyn Inode> {
        let mut kids: Vec<(&'static str, Arc<dyn Inode>)> = Vec::new();
        let names = MqLimits::default().entries().map(|e| e.0);
        for (i, name) in names.into_iter().enumerate() {
            let (g, p) = (ns.clone(), ns.clone());
            let pick = move |l: &MqLimits| {
                l.entries()
                    .into_iter()
                    .find(|e| e.0 == name)
                    .map(|e| (e.1.load(Ordering::Relaxed), e.2, e.3))
            };
            let gen = Arc::new(move || {
                let v = pick(&g().limits).ok_or(Errno::EIO)?.0;
                Ok(format!("{v}\n").into_bytes())
            });
            let put = Arc::new(move |b: &[u8]| {
                let v: i64 = std::str::from_utf8(b)
                    .map_err(|_| Errno::EINVAL)?
                    .trim()
                    .parse()
                    .map_err(|_| Errno::EINVAL)?;
                let ns = p();
                let e = ns
                    .limits
                    .entries()
                    .into_iter()
                    .find(|e| e.0 == name)
                    .ok_or(Errno::EIO)?;
                if v < e.2 || v > e.3 {
                    return Err(Errno::EINVAL);
                }
                e.1.store(v, Ordering::Relaxed);
                Ok(())
            });
            kids.push((
                name,
                GenFile::writable(171 + i as u64, 0o644, (0, 0), gen, put) as Arc<dyn Inode>,
            ));
        }
        GenDir::fixed(170, kids)
    }
}

/// The root of an `mqueue` mount: the namespace's queues as files. Creating a
/// file makes a queue with the default attributes; removing one unlinks it.
struct MqRoot {
    ns: Weak<MqNamespace>,
}

impl MqRoot {
    fn ns(&self) -> SysResult<Arc<MqNamespace>> {
        self.ns.upgrade().ok_or(Errno::ENOENT)
    }

    fn listing(&self) -> Arc<GenDir> {
        let (a, b) = (self.ns.clone(), self.ns.clone());
        GenDir::new(
            1,
            0o1777,
            (0, 0),
            Arc::new(move |name| {
                let ns = a.upgrade().ok_or(Errno::ENOENT)?;
                let q = ns.queues()?.get(name).cloned().ok_or(Errno::ENOENT)?;
                Ok(Arc::new(QueueNode(q)) as Arc<dyn Inode>)
            }),
            Arc::new(move || {
                let ns = b.upgrade().ok_or(Errno::ENOENT)?;
                let map = ns.queues()?;
                Ok(map
                    .iter()
                    .map(|(n, q)| (q.ino, libc::DT_REG, n.clone()))
                    .collect())
            }),
        )
    }
}

impl Inode for MqRoot {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        let mut st = self.listing().stat()?;
        st.dev = MQUEUE_DEV;
        Ok(st)
    }
    fn lookup(&self, name: &[u8]) -> SysResult<Arc<dyn Inode>> {
        self.listing().lookup(name)
    }
    fn open(&self, flags: i32) -> SysResult<Box<dyn FileImpl>> {
        self.listing().open(flags)
    }
    fn create(&self, name: &[u8], mode: u32, owner: Owner) -> SysResult<Arc<dyn Inode>> {
        let ns = self.ns()?;
        MqNamespace::check_name(name)?;
        let creds = Credentials::default();
        let attr = ns.new_attr(None, &creds)?;
        let mut map = ns.queues()?;
        if map.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        // The VFS has checked write access to the directory; only `queues_max`
        // remains, which the creator's capabilities do not lift here.
        let q = ns.insert(&mut map, name, mode, owner, attr, &creds, None)?;
        Ok(Arc::new(QueueNode(q)))
    }
    fn unlink(&self, name: &[u8], dir: bool) -> SysResult<()> {
        if dir {
            return Err(Errno::ENOTDIR);
        }
        let ns = self.ns()?;
        let gone = ns.queues()?.remove(name);
        gone.map(|_| ()).ok_or(Errno::ENOENT)
    }
    fn statfs(&self) -> SysResult<StatFs> {
        Ok(mqueue_statfs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_creds() -> Credentials {
        Credentials {
            cap_effective: u64::MAX,
            ..Default::default()
        }
    }

    #[test]
    fn priorities_and_fifo() {
        let ns = Arc::new(MqNamespace::default());
        let c = root_creds();
        let q = ns
            .open(
                b"q",
                libc::O_RDWR | libc::O_CREAT,
                0o600,
                Some((4, 16)),
                &c,
                u64::MAX,
            )
            .unwrap();
        assert!(q.try_send(b"a", 1, 1, 0).unwrap());
        assert!(q.try_send(b"b", 5, 1, 0).unwrap());
        assert!(q.try_send(b"c", 1, 1, 0).unwrap());
        assert!(q.try_send(b"d", 5, 1, 0).unwrap());
        assert!(!q.try_send(b"e", 9, 1, 0).unwrap());
        let got: Vec<_> = std::iter::from_fn(|| q.try_receive().unwrap()).collect();
        assert_eq!(
            got,
            vec![
                (b"b".to_vec(), 5),
                (b"d".to_vec(), 5),
                (b"a".to_vec(), 1),
                (b"c".to_vec(), 1)
            ]
        );
        assert!(q.status().unwrap().starts_with("QSIZE:0 "));
    }

    #[test]
    fn names_limits_and_unlink() {
        let ns = Arc::new(MqNamespace::default());
        let user = Credentials {
            uid: 1000,
            euid: 1000,
            fsuid: 1000,
            ..Default::default()
        };
        let c = root_creds();
        assert_eq!(
            ns.open(b"", 0, 0, None, &c, u64::MAX).err(),
            Some(Errno::ENOENT)
        );
        assert_eq!(
            ns.open(b"a/b", 0, 0, None, &c, u64::MAX).err(),
            Some(Errno::EACCES)
        );
        assert_eq!(
            ns.open(b"x", 0, 0, None, &c, u64::MAX).err(),
            Some(Errno::ENOENT)
        );
        let cr = libc::O_CREAT | libc::O_RDWR;
        assert_eq!(
            ns.open(b"x", cr, 0o600, Some((11, 10)), &user, u64::MAX)
                .err(),
            Some(Errno::EINVAL)
        );
        assert_eq!(
            ns.open(b"x", cr, 0o600, Some((0, 10)), &c, u64::MAX).err(),
            Some(Errno::EINVAL)
        );
        let q = ns.open(b"x", cr, 0o600, None, &c, u64::MAX).unwrap();
        assert_eq!((q.maxmsg, q.msgsize), (10, 8192));
        assert_eq!(
            ns.open(b"x", cr | libc::O_EXCL, 0o600, None, &c, u64::MAX)
                .err(),
            Some(Errno::EEXIST)
        );
        assert_eq!(
            ns.open(b"x", libc::O_RDONLY, 0, None, &user, u64::MAX)
                .err(),
            Some(Errno::EACCES)
        );
        assert_eq!(ns.unlink(b"x", &user), Err(Errno::EACCES));
        ns.unlink(b"x", &c).unwrap();
        assert_eq!(ns.unlink(b"x", &c), Err(Errno::ENOENT));
        // The open queue lives on.
        assert!(q.try_send(b"m", 0, 1, 0).unwrap());
    }

    #[test]
    fn rlimit_msgqueue() {
        let ns = Arc::new(MqNamespace::default());
        let c = root_creds();
        let cr = libc::O_CREAT | libc::O_RDWR;
        // Linux's default limit holds nine default queues.
        let limit = 819200;
        assert_eq!(queue_bytes(10, 8192), 82880);
        let qs: Vec<_> = (0..9)
            .map(|i| ns.open(format!("q{i}").as_bytes(), cr, 0o600, None, &c, limit))
            .collect::<SysResult<_>>()
            .unwrap();
        assert_eq!(
            ns.open(b"q9", cr, 0o600, None, &c, limit).err(),
            Some(Errno::EMFILE)
        );
        // Unlinked and closed, a queue gives its bytes back.
        ns.unlink(b"q0", &c).unwrap();
        drop(qs);
        ns.open(b"q9", cr, 0o600, None, &c, limit).unwrap();
    }
}
