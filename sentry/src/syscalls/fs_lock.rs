//! `fcntl` record locks (POSIX and OFD) and `flock`, over [`crate::vfs::lock`].

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::kernel::wait::{block, restart_errno};
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::{file_arg, Args};
use crate::vfs::lock::{Kind, LockOwner};
use crate::vfs::OpenFile;

fn key(file: &OpenFile) -> SysResult<(u64, u64)> {
    let st = file.stat()?;
    Ok((st.dev, st.ino))
}

/// After `close` of one of the caller's fds: its process's POSIX locks on that
/// file go, as POSIX requires (whichever fd they were taken through).
pub(super) fn closed(task: &Task, file: &Arc<OpenFile>) {
    let m = &task.kernel.files.locks;
    if !m.any() {
        return;
    }
    if let Ok(k) = key(file) {
        m.release_posix(k, task.tgid);
    }
}

/// Waits until `attempt` succeeds (`F_SETLKW`, blocking `flock`).
fn wait_for(task: &Task, mut attempt: impl FnMut() -> SysResult<bool>) -> SysResult<()> {
    let m = &task.kernel.files.locks;
    let _reg = m.queue().register(&task.waker);
    match block(
        &task.waker,
        None,
        || task.signal_pending(),
        || Ok(attempt()?.then_some(())),
    ) {
        Ok(r) => r,
        Err(i) => Err(restart_errno(i)),
    }
}

/// `F_GETLK`, `F_SETLK`, `F_SETLKW` and their `F_OFD_*` forms.
pub(super) fn fcntl_lock(task: &Task, fd: i32, cmd: i32, addr: u64) -> SysResult<u64> {
    let file = task.fds()?.get(fd)?;
    if file.is_path() {
        return Err(Errno::EBADF);
    }
    let mut raw = [0u8; 32];
    io::read_exact(task.mem(), addr, &mut raw)?;
    let l_type = i16::from_le_bytes([raw[0], raw[1]]) as i32;
    let whence = i16::from_le_bytes([raw[2], raw[3]]) as i32;
    let l_start = i64::from_le_bytes(raw[8..16].try_into().map_err(|_| Errno::EFAULT)?);
    let l_len = i64::from_le_bytes(raw[16..24].try_into().map_err(|_| Errno::EFAULT)?);
    let l_pid = i32::from_le_bytes(raw[24..28].try_into().map_err(|_| Errno::EFAULT)?);
    let ofd = matches!(
        cmd,
        libc::F_OFD_GETLK | libc::F_OFD_SETLK | libc::F_OFD_SETLKW
    );
    if ofd && l_pid != 0 {
        return Err(Errno::EINVAL);
    }
    let kind = match l_type {
        libc::F_RDLCK => Kind::Read,
        libc::F_WRLCK => Kind::Write,
        libc::F_UNLCK => Kind::Unlock,
        _ => return Err(Errno::EINVAL),
    };
    let base = match whence {
        libc::SEEK_SET => 0,
        libc::SEEK_CUR => file.position() as i64,
        libc::SEEK_END => file.stat()?.size,
        _ => return Err(Errno::EINVAL),
    };
    let start = base.checked_add(l_start).ok_or(Errno::EOVERFLOW)?;
    let (start, end) = if l_len > 0 {
        (start, start.checked_add(l_len).ok_or(Errno::EOVERFLOW)?)
    } else if l_len == 0 {
        (start, i64::MAX)
    } else {
        (start.checked_add(l_len).ok_or(Errno::EINVAL)?, start)
    };
    if start < 0 {
        return Err(Errno::EINVAL);
    }
    let (start, end) = (
        start as u64,
        if end == i64::MAX {
            u64::MAX
        } else {
            end as u64
        },
    );
    let via = Arc::as_ptr(&file) as usize;
    let owner = if ofd {
        LockOwner::Description(via)
    } else {
        LockOwner::Process(task.tgid)
    };
    let k = key(&file)?;
    let m = &task.kernel.files.locks;
    if matches!(cmd, libc::F_GETLK | libc::F_OFD_GETLK) {
        if kind == Kind::Unlock {
            return Err(Errno::EINVAL);
        }
        let mut out = raw;
        match m.test(k, owner, kind, start, end)? {
            None => out[0..2].copy_from_slice(&(libc::F_UNLCK as i16).to_le_bytes()),
            Some(c) => {
                let t = if c.kind == Kind::Write {
                    libc::F_WRLCK
                } else {
                    libc::F_RDLCK
                };
                out[0..2].copy_from_slice(&(t as i16).to_le_bytes());
                out[2..4].copy_from_slice(&(libc::SEEK_SET as i16).to_le_bytes());
                out[8..16].copy_from_slice(&(c.start as i64).to_le_bytes());
                let len = if c.end == u64::MAX {
                    0
                } else {
                    (c.end - c.start) as i64
                };
                out[16..24].copy_from_slice(&len.to_le_bytes());
                out[24..28].copy_from_slice(&c.pid.to_le_bytes());
            }
        }
        io::write_all(task.mem(), addr, &out)?;
        return Ok(0);
    }
    let acc = file.flags() & libc::O_ACCMODE;
    match kind {
        Kind::Read if acc == libc::O_WRONLY => return Err(Errno::EBADF),
        Kind::Write if acc == libc::O_RDONLY => return Err(Errno::EBADF),
        _ => {}
    }
    let pid = if ofd { -1 } else { task.tgid };
    file.locked_in(m);
    let attempt = || m.set(k, owner, via, pid, kind, start, end);
    if matches!(cmd, libc::F_SETLKW | libc::F_OFD_SETLKW) {
        wait_for(task, attempt)?;
    } else if !attempt()? {
        return Err(Errno::EAGAIN);
    }
    Ok(0)
}

/// `flock(2)`.
pub fn flock(task: &mut Task, a: &Args) -> SysResult<u64> {
    let file = file_arg(task, a[0])?;
    if file.is_path() {
        return Err(Errno::EBADF);
    }
    let op = a[1] as i32;
    let nb = op & libc::LOCK_NB != 0;
    let kind = match op & !libc::LOCK_NB {
        libc::LOCK_SH => Kind::Read,
        libc::LOCK_EX => Kind::Write,
        libc::LOCK_UN => Kind::Unlock,
        _ => return Err(Errno::EINVAL),
    };
    let k = key(&file)?;
    let via = Arc::as_ptr(&file) as usize;
    let m = &task.kernel.files.locks;
    file.locked_in(m);
    let attempt = || m.flock(k, via, kind);
    if nb || kind == Kind::Unlock {
        if !attempt()? {
            return Err(Errno::EAGAIN);
        }
    } else {
        wait_for(task, attempt)?;
    }
    Ok(0)
}
