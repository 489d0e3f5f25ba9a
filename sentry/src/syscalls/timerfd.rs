//! `timerfd_create`, `timerfd_settime`, `timerfd_gettime`.

use std::time::Duration;

use crate::errno::{Errno, SysResult};
use crate::fs::timerfd::{new_timerfd, timer_of};
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::pipe::install_anon;
use crate::syscalls::{file_arg, Args};

/// `TFD_TIMER_ABSTIME`.
const TFD_TIMER_ABSTIME: i32 = 1;
/// `TFD_TIMER_CANCEL_ON_SET`: accepted; the sandbox's realtime clock is never set,
/// so there is nothing to cancel on.
const TFD_TIMER_CANCEL_ON_SET: i32 = 2;

/// `timerfd_create(2)`.
pub fn timerfd_create(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (clock, flags) = (a[0] as i32, a[1] as i32);
    match clock {
        libc::CLOCK_REALTIME
        | libc::CLOCK_MONOTONIC
        | libc::CLOCK_BOOTTIME
        | libc::CLOCK_REALTIME_ALARM
        | libc::CLOCK_BOOTTIME_ALARM => {}
        _ => return Err(Errno::EINVAL),
    }
    if flags & !(libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let fl = libc::O_RDWR | (flags & (libc::O_NONBLOCK | libc::O_CLOEXEC));
    Ok(install_anon(task, new_timerfd(&task.kernel.files.inos, clock), fl)? as u64)
}

fn ts_duration(ts: &libc::timespec) -> SysResult<Duration> {
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

fn write_itimerspec(
    task: &Task,
    addr: u64,
    (value, interval): (Duration, Duration),
) -> SysResult<()> {
    let mut b = Vec::with_capacity(32);
    for d in [interval, value] {
        b.extend_from_slice(&(d.as_secs() as i64).to_le_bytes());
        b.extend_from_slice(&(d.subsec_nanos() as i64).to_le_bytes());
    }
    io::write_all(task.mem(), addr, &b)
}

/// `timerfd_settime(2)`.
pub fn timerfd_settime(task: &mut Task, a: &Args) -> SysResult<u64> {
    let flags = a[1] as i32;
    if flags & !(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) != 0 {
        return Err(Errno::EINVAL);
    }
    let file = file_arg(task, a[0])?;
    let timer = timer_of(&file).ok_or(Errno::EINVAL)?;
    let interval: libc::timespec = io::read_struct(task.mem(), a[2])?;
    let value: libc::timespec = io::read_struct(task.mem(), a[2] + 16)?;
    let interval = ts_duration(&interval)?;
    let mut value = ts_duration(&value)?;
    if flags & TFD_TIMER_ABSTIME != 0 && !value.is_zero() {
        // Now as the caller reads the clock (in its time namespace).
        let now = task.clock_now(timer.clock())?;
        let now = Duration::new(now.tv_sec.max(0) as u64, now.tv_nsec as u32);
        // A deadline already past fires at once (1ns from now).
        value = value
            .checked_sub(now)
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_nanos(1));
    }
    let old = timer.set(value, interval);
    if a[3] != 0 {
        write_itimerspec(task, a[3], old)?;
    }
    Ok(0)
}

/// `timerfd_gettime(2)`.
pub fn timerfd_gettime(task: &mut Task, a: &Args) -> SysResult<u64> {
    let file = file_arg(task, a[0])?;
    let timer = timer_of(&file).ok_or(Errno::EINVAL)?;
    write_itimerspec(task, a[1], timer.get())?;
    Ok(0)
}
