//! `mq_open`, `mq_unlink`, `mq_timedsend`, `mq_timedreceive`, `mq_notify`,
//! `mq_getsetattr`: POSIX message queues over [`crate::fs::mqueue`], in the
//! caller's IPC namespace. Descriptors are ordinary fds (poll, dup, fork, close).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::errno::{Errno, SysResult};
use crate::fs::mqueue::{MqFile, Notify, Queue, MQ_PRIO_MAX, SIGEV_NONE, SIGEV_SIGNAL};
use crate::kernel::process::send_to_group;
use crate::kernel::signals::{SigInfo, MAX_SIGNAL};
use crate::kernel::wait::{self, Interrupted};
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::pipe::install_file;
use crate::syscalls::Args;
use crate::vfs::OpenFile;

/// `SI_MESGQ`: the `si_code` of a queue notification.
use abi::signal::SI_MESGQ;
/// `SIGEV_THREAD`: notification through a netlink socket (glibc's helper thread).
const SIGEV_THREAD: i32 = 2;
/// Longest name `mq_open` copies in (Linux's `getname` limit).
use abi::limits::PATH_MAX;

fn name_arg(task: &Task, addr: u64) -> SysResult<Vec<u8>> {
    let name = io::read_cstring(task.mem(), addr, PATH_MAX)?;
    if name.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(name)
}

/// `mq_open(2)`.
pub fn mq_open(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (flags, mode, attr_addr) = (a[1] as i32, a[2] as u32, a[3]);
    let name = name_arg(task, a[0])?;
    let attr = if flags & libc::O_CREAT != 0 && attr_addr != 0 {
        let mut b = [0u8; 32];
        io::read_exact(task.mem(), attr_addr, &mut b)?;
        let at = |i: usize| i64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        Some((at(1), at(2)))
    } else {
        None
    };
    let mode = mode & 0o7777 & !task.fs.umask;
    let rlimit = task.limits()?.soft(libc::RLIMIT_MSGQUEUE);
    let q = task
        .ns
        .ipc
        .mq
        .open(&name, flags, mode, attr, &task.creds, rlimit)?;
    let fl = flags & (libc::O_ACCMODE | libc::O_NONBLOCK);
    let file = OpenFile::new(Box::new(MqFile(q)), None, fl);
    Ok(install_file(task, file, flags & libc::O_CLOEXEC != 0)? as u64)
}

/// `mq_unlink(2)`.
pub fn mq_unlink(task: &mut Task, a: &Args) -> SysResult<u64> {
    let name = name_arg(task, a[0])?;
    task.ns.ipc.mq.unlink(&name, &task.creds)?;
    Ok(0)
}

/// The queue behind `fd` and its open file (`EBADF` for other files).
fn queue_of(task: &Task, fd: i32) -> SysResult<(Arc<OpenFile>, Arc<Queue>)> {
    let file = task.fds()?.get(fd)?;
    let q = file
        .imp()
        .as_any()
        .and_then(|x| x.downcast_ref::<MqFile>())
        .map(|m| m.0.clone())
        .ok_or(Errno::EBADF)?;
    Ok((file, q))
}

/// The deadline of an absolute `CLOCK_REALTIME` timeout at `addr` (0: none).
fn deadline(task: &Task, addr: u64) -> SysResult<Option<Instant>> {
    if addr == 0 {
        return Ok(None);
    }
    let ts: libc::timespec = io::read_struct(task.mem(), addr)?;
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    let at = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let left = at.saturating_sub(now);
    // A deadline too far to represent is no deadline.
    Ok(Instant::now().checked_add(left))
}

/// Runs `attempt` until it yields; with `nonblock` one try (`EAGAIN`), else a
/// wait that a signal interrupts (restartable) and `deadline` ends (`ETIMEDOUT`).
fn wait_on<T>(
    task: &Task,
    q: &Queue,
    nonblock: bool,
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> SysResult<Option<T>>,
) -> SysResult<T> {
    if let Some(v) = attempt()? {
        return Ok(v);
    }
    if nonblock {
        return Err(Errno::EAGAIN);
    }
    let _reg = q.waiters.register(&task.waker);
    match wait::block(&task.waker, deadline, || task.signal_pending(), attempt) {
        Ok(r) => r,
        Err(Interrupted::Timeout) => Err(Errno::ETIMEDOUT),
        Err(i) => Err(wait::restart_errno(i)),
    }
}

/// `mq_timedsend(2)`.
pub fn mq_timedsend(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (fd, ptr, len, prio) = (a[0] as i32, a[1], a[2] as usize, a[3]);
    if prio >= MQ_PRIO_MAX as u64 {
        return Err(Errno::EINVAL);
    }
    let deadline = deadline(task, a[4])?;
    let (file, q) = queue_of(task, fd)?;
    if file.flags() & libc::O_ACCMODE == libc::O_RDONLY {
        return Err(Errno::EBADF);
    }
    if len > q.msgsize as usize {
        return Err(Errno::EMSGSIZE);
    }
    let mut msg = vec![0u8; len];
    io::read_exact(task.mem(), ptr, &mut msg)?;
    let (pid, uid) = (task.tgid, task.creds.uid);
    wait_on(task, &q, file.nonblocking(), deadline, || {
        Ok(q.try_send(&msg, prio as u32, pid, uid)?.then_some(()))
    })?;
    Ok(0)
}

/// `mq_timedreceive(2)`.
pub fn mq_timedreceive(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (fd, ptr, len, prio_addr) = (a[0] as i32, a[1], a[2] as usize, a[3]);
    let deadline = deadline(task, a[4])?;
    let (file, q) = queue_of(task, fd)?;
    if file.flags() & libc::O_ACCMODE == libc::O_WRONLY {
        return Err(Errno::EBADF);
    }
    if len < q.msgsize as usize {
        return Err(Errno::EMSGSIZE);
    }
    let got = match q.try_receive()? {
        Some(m) => m,
        None if file.nonblocking() => return Err(Errno::EAGAIN),
        None => {
            q.receiver_waiting(true);
            let r = wait_on(task, &q, false, deadline, || q.try_receive());
            q.receiver_waiting(false);
            r?
        }
    };
    let (msg, prio) = got;
    // Linux has taken the message off the queue by now: a bad buffer loses it.
    io::write_all(task.mem(), ptr, &msg)?;
    if prio_addr != 0 {
        io::write_u32(task.mem(), prio_addr, prio)?;
    }
    Ok(msg.len() as u64)
}

/// `mq_notify(2)`: `SIGEV_SIGNAL` and `SIGEV_NONE`. `SIGEV_THREAD` (a cookie sent
/// to a netlink socket) is not implemented: `ENOSYS`, logged.
pub fn mq_notify(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (fd, sev) = (a[0] as i32, a[1]);
    let sigev = if sev != 0 {
        let mut b = [0u8; 64];
        io::read_exact(task.mem(), sev, &mut b)?;
        let value = u64::from_le_bytes(b[0..8].try_into().map_err(|_| Errno::EFAULT)?);
        let signo = i32::from_le_bytes(b[8..12].try_into().map_err(|_| Errno::EFAULT)?);
        let kind = i32::from_le_bytes(b[12..16].try_into().map_err(|_| Errno::EFAULT)?);
        match kind {
            SIGEV_NONE => {}
            SIGEV_SIGNAL if signo > 0 && signo as u32 <= MAX_SIGNAL => {}
            SIGEV_SIGNAL => return Err(Errno::EINVAL),
            SIGEV_THREAD => {
                task.kernel.warn_once(
                    crate::kernel::warn_key::MQ_NOTIFY_THREAD,
                    "mq_notify: SIGEV_THREAD (netlink notification) is not implemented (ENOSYS)",
                );
                return Err(Errno::ENOSYS);
            }
            _ => return Err(Errno::EINVAL),
        }
        Some((value, signo, kind))
    } else {
        None
    };
    let (_, q) = queue_of(task, fd)?;
    let Some((value, signo, kind)) = sigev else {
        q.unregister(task.tgid)?;
        return Ok(0);
    };
    let target = Arc::downgrade(&task.tg);
    let watched = target.clone();
    let alive = Box::new(move || {
        watched
            .upgrade()
            .is_some_and(|tg| tg.state().is_ok_and(|s| s.zombie.is_none()))
    });
    let deliver: crate::fs::mqueue::Deliver = if kind == SIGEV_SIGNAL {
        Box::new(move |pid, uid| {
            if let Some(tg) = target.upgrade() {
                let info = SigInfo {
                    signo,
                    code: SI_MESGQ,
                    pid,
                    uid,
                    value,
                    ..Default::default()
                };
                let _ = send_to_group(&tg, info);
            }
        })
    } else {
        Box::new(|_, _| {})
    };
    q.register(Notify {
        owner: task.tgid,
        kind,
        signo,
        deliver,
        alive,
    })?;
    Ok(0)
}

/// After `close` of one of the caller's fds: a notification its process
/// registered on that queue goes (Linux's `mqueue_flush_file`).
pub fn closed(task: &Task, file: &OpenFile) {
    if let Some(m) = file.imp().as_any().and_then(|x| x.downcast_ref::<MqFile>()) {
        let _ = m.0.unregister(task.tgid);
    }
}

/// `mq_getsetattr(2)`: only `O_NONBLOCK` of `mq_flags` can change.
pub fn mq_getsetattr(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (fd, new, old) = (a[0] as i32, a[1], a[2]);
    let set = if new != 0 {
        let mut b = [0u8; 64];
        io::read_exact(task.mem(), new, &mut b)?;
        let flags = i64::from_le_bytes(b[0..8].try_into().map_err(|_| Errno::EFAULT)?);
        if flags & !(libc::O_NONBLOCK as i64) != 0 {
            return Err(Errno::EINVAL);
        }
        Some(flags)
    } else {
        None
    };
    let (file, q) = queue_of(task, fd)?;
    let mut out = [0u8; 64];
    for (i, v) in [
        (file.flags() & libc::O_NONBLOCK) as i64,
        q.maxmsg,
        q.msgsize,
        q.count(),
    ]
    .into_iter()
    .enumerate()
    {
        out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    if let Some(f) = set {
        file.set_flags((file.flags() & !libc::O_NONBLOCK) | f as i32);
    }
    if old != 0 {
        io::write_all(task.mem(), old, &out)?;
    }
    Ok(0)
}
