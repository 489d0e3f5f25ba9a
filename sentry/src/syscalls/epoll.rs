//! `epoll_create`, `epoll_create1`, `epoll_ctl`, `epoll_wait`, `epoll_pwait`,
//! `epoll_pwait2`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::fs::epoll::{self, epoll_of, EPOLLERR, EPOLLEXCLUSIVE, EPOLLHUP, EPOLLWAKEUP};
use crate::kernel::wait::Interrupted;
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::pipe::install_anon;
use crate::syscalls::poll::{read_timespec, wait_on_files, MaskGuard};
use crate::syscalls::{file_arg, Args};

/// Size of `struct epoll_event` on x86-64 (packed).
const EVENT_SIZE: usize = 12;
/// Event bits EPOLLEXCLUSIVE may be combined with.
const EXCLUSIVE_OK: u32 = (libc::EPOLLIN
    | libc::EPOLLOUT
    | libc::EPOLLRDNORM
    | libc::EPOLLRDBAND
    | libc::EPOLLWRNORM
    | libc::EPOLLWRBAND
    | libc::EPOLLPRI
    | libc::EPOLLERR
    | libc::EPOLLHUP
    | libc::EPOLLWAKEUP
    | libc::EPOLLET
    | libc::EPOLLEXCLUSIVE) as u32;

fn create(task: &Task, flags: i32) -> SysResult<u64> {
    if flags & !libc::EPOLL_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    let cloexec = if flags & libc::EPOLL_CLOEXEC != 0 {
        libc::O_CLOEXEC
    } else {
        0
    };
    Ok(install_anon(
        task,
        epoll::new_epoll(&task.kernel.files.inos),
        libc::O_RDWR | cloexec,
    )? as u64)
}

/// `epoll_create(2)`: `size` must be positive and is otherwise ignored.
pub fn epoll_create(task: &mut Task, a: &Args) -> SysResult<u64> {
    if (a[0] as i32) <= 0 {
        return Err(Errno::EINVAL);
    }
    create(task, 0)
}

/// `epoll_create1(2)`.
pub fn epoll_create1(task: &mut Task, a: &Args) -> SysResult<u64> {
    create(task, a[0] as i32)
}

/// `epoll_ctl(2)`.
pub fn epoll_ctl(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (epfd, op, fd) = (a[0] as i32, a[1] as i32, a[2] as i32);
    let epf = file_arg(task, epfd as u64)?;
    let target = file_arg(task, fd as u64)?;
    let (mut events, data) = if op == libc::EPOLL_CTL_ADD || op == libc::EPOLL_CTL_MOD {
        let mut b = [0u8; EVENT_SIZE];
        io::read_exact(task.mem(), a[3], &mut b)?;
        (
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u64::from_le_bytes(b[4..12].try_into().map_err(|_| Errno::EFAULT)?),
        )
    } else {
        (0, 0)
    };
    // Files that cannot be polled (regular files, directories) are refused; a
    // message queue is a regular file that polls.
    let st = target.stat()?;
    if (st.is_regular() && !crate::fs::mqueue::is_queue(target.imp())) || st.is_dir() {
        return Err(Errno::EPERM);
    }
    let ep = epoll_of(&epf).ok_or(Errno::EINVAL)?;
    if Arc::ptr_eq(&epf, &target) {
        return Err(Errno::EINVAL);
    }
    let inner = epoll_of(&target);
    if events & EPOLLEXCLUSIVE != 0 {
        if op == libc::EPOLL_CTL_MOD {
            return Err(Errno::EINVAL);
        }
        if op == libc::EPOLL_CTL_ADD && (inner.is_some() || events & !EXCLUSIVE_OK != 0) {
            return Err(Errno::EINVAL);
        }
    }
    // EPOLLWAKEUP needs CAP_BLOCK_SUSPEND; without it Linux silently drops the bit.
    if !task.creds.has_cap(36) {
        events &= !EPOLLWAKEUP;
    }
    events |= EPOLLERR | EPOLLHUP;
    match op {
        libc::EPOLL_CTL_ADD => {
            if let Some(inner) = &inner {
                if ep.would_loop(inner) {
                    return Err(Errno::ELOOP);
                }
            }
            ep.add(fd, &target, events, data)?;
        }
        libc::EPOLL_CTL_MOD => ep.modify(fd, &target, events, data)?,
        libc::EPOLL_CTL_DEL => ep.remove(fd, &target)?,
        _ => return Err(Errno::EINVAL),
    }
    Ok(0)
}

fn do_wait(task: &Task, a: &Args, deadline: Option<Instant>) -> SysResult<u64> {
    let max = a[2] as i32;
    if max <= 0 || max as usize > i32::MAX as usize / EVENT_SIZE {
        return Err(Errno::EINVAL);
    }
    let epf = file_arg(task, a[0])?;
    let ep = epoll_of(&epf).ok_or(Errno::EINVAL)?;
    let max = max as usize;
    let evs = loop {
        let v = ep.harvest(max)?;
        if !v.is_empty() || deadline.is_some_and(|d| d <= Instant::now()) {
            break v;
        }
        // Block on the instance's own queue, which any watched file's event wakes:
        // the waiter holds none of the watched files (one removed and closed
        // meanwhile must close for real, and its peer see the hang-up).
        match wait_on_files(task, std::slice::from_ref(&epf), deadline, || {
            let v = ep.harvest(max)?;
            Ok((!v.is_empty()).then_some(v))
        }) {
            Ok(r) => {
                let v = r?;
                if !v.is_empty() {
                    break v;
                }
            }
            Err(Interrupted::Timeout) => break ep.harvest(max)?,
            Err(Interrupted::Signal) => return Err(Errno::EINTR),
        }
    };
    let mut out = Vec::with_capacity(evs.len() * EVENT_SIZE);
    for (e, d) in &evs {
        out.extend_from_slice(&e.to_le_bytes());
        out.extend_from_slice(&d.to_le_bytes());
    }
    io::write_all(task.mem(), a[1], &out)?;
    Ok(evs.len() as u64)
}

fn ms_deadline(ms: i32) -> Option<Instant> {
    if ms < 0 {
        None
    } else {
        Instant::now().checked_add(Duration::from_millis(ms as u64))
    }
}

/// `epoll_wait(2)`.
pub fn epoll_wait(task: &mut Task, a: &Args) -> SysResult<u64> {
    do_wait(task, a, ms_deadline(a[3] as i32))
}

/// `epoll_pwait(2)`: with a signal mask for the wait.
pub fn epoll_pwait(task: &mut Task, a: &Args) -> SysResult<u64> {
    let guard = MaskGuard::apply(task, a[4], a[5])?;
    let r = do_wait(task, a, ms_deadline(a[3] as i32));
    guard.restore(task);
    r
}

/// `epoll_pwait2(2)`: timespec timeout.
pub fn epoll_pwait2(task: &mut Task, a: &Args) -> SysResult<u64> {
    let deadline = if a[3] != 0 {
        Instant::now().checked_add(read_timespec(task, a[3])?)
    } else {
        None
    };
    let guard = MaskGuard::apply(task, a[4], a[5])?;
    let r = do_wait(task, a, deadline);
    guard.restore(task);
    r
}
