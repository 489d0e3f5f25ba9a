//! `alarm`, `setitimer`/`getitimer` and POSIX timers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::errno::{Errno, SysResult};
use crate::kernel::timers::{
    space_cpu_clock, space_runtime_clock, CpuClock, Target, Timer, TimerKey,
};
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::Args;

fn itimer_signal(which: i32) -> SysResult<i32> {
    match which {
        0 => Ok(libc::SIGALRM),
        1 => Ok(libc::SIGVTALRM),
        2 => Ok(libc::SIGPROF),
        _ => Err(Errno::EINVAL),
    }
}

fn read_timeval(task: &Task, addr: u64) -> SysResult<Duration> {
    let tv: libc::timeval = io::read_struct(task.mem(), addr)?;
    if tv.tv_sec < 0 || !(0..1_000_000).contains(&tv.tv_usec) {
        return Err(Errno::EINVAL);
    }
    Ok(Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000))
}

fn timeval_bytes(d: Duration) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&(d.as_secs() as i64).to_le_bytes());
    // Round up so a running timer never reads as zero.
    let us = d.subsec_nanos().div_ceil(1000) as i64;
    b[8..16].copy_from_slice(&us.to_le_bytes());
    b
}

/// The CPU clock of the caller's process (see [`space_cpu_clock`]).
pub fn cpu_clock(task: &Task, user_only: bool) -> CpuClock {
    space_cpu_clock(task.space(), user_only)
}

/// The clock an itimer counts: wall (ITIMER_REAL), user CPU time (ITIMER_VIRTUAL)
/// or user and system CPU time (ITIMER_PROF).
fn itimer_clock(task: &Task, which: i32) -> Option<CpuClock> {
    match which {
        1 => Some(cpu_clock(task, true)),
        2 => Some(cpu_clock(task, false)),
        _ => None,
    }
}

fn process_timer(task: &Task, signo: i32, cpu: Option<CpuClock>) -> impl FnOnce() -> Timer {
    let tg = Arc::downgrade(&task.tg);
    move || Timer::new(signo, 0, Target::Process(tg), -1, cpu)
}

/// `setitimer(2)`.
pub fn setitimer(task: &mut Task, a: &Args) -> SysResult<u64> {
    let which = a[0] as i32;
    let sig = itimer_signal(which)?;
    let (interval, value) = if a[1] != 0 {
        (read_timeval(task, a[1])?, read_timeval(task, a[1] + 16)?)
    } else {
        (Duration::ZERO, Duration::ZERO)
    };
    let key = TimerKey::Itimer(task.tgid, which);
    let old = task.kernel.timers.set(
        key,
        (!value.is_zero()).then_some(value),
        interval,
        process_timer(task, sig, itimer_clock(task, which)),
    )?;
    if a[2] != 0 {
        let mut b = [0u8; 32];
        b[..16].copy_from_slice(&timeval_bytes(old.1));
        b[16..].copy_from_slice(&timeval_bytes(old.0));
        io::write_all(task.mem(), a[2], &b)?;
    }
    Ok(0)
}

/// `getitimer(2)`.
pub fn getitimer(task: &mut Task, a: &Args) -> SysResult<u64> {
    let which = a[0] as i32;
    itimer_signal(which)?;
    let (value, interval) = task.kernel.timers.get(TimerKey::Itimer(task.tgid, which))?;
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(&timeval_bytes(interval));
    b[16..].copy_from_slice(&timeval_bytes(value));
    io::write_all(task.mem(), a[1], &b)?;
    Ok(0)
}

/// `alarm(2)`: returns the seconds left on the previous alarm.
pub fn alarm(task: &mut Task, a: &Args) -> SysResult<u64> {
    let secs = a[0] as u32 as u64;
    let key = TimerKey::Itimer(task.tgid, 0);
    let old = task.kernel.timers.set(
        key,
        (secs != 0).then(|| Duration::from_secs(secs)),
        Duration::ZERO,
        process_timer(task, libc::SIGALRM, None),
    )?;
    // Linux rounds the remainder to the nearest second, but never reports a running
    // alarm as 0.
    let left = old.0;
    let mut secs = left.as_secs();
    if left.subsec_nanos() >= 500_000_000 || (secs == 0 && !left.is_zero()) {
        secs += 1;
    }
    Ok(secs)
}

const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;
const SIGEV_THREAD_ID: i32 = 4;

/// `timer_create(2)`.
pub fn timer_create(task: &mut Task, a: &Args) -> SysResult<u64> {
    let clock = a[0] as i32;
    let cpu_id = super::time::cpu_clock_id(clock)?;
    match (clock, cpu_id) {
        (libc::CLOCK_REALTIME | libc::CLOCK_MONOTONIC | libc::CLOCK_BOOTTIME, _) => {}
        // CPU clocks of the caller's own process and threads (all count the
        // process's time here).
        (_, Some(id)) => {
            super::time::cpu_clock_usage(task, id)?;
            let own = id.pid == 0 || id.pid == task.tgid || id.thread;
            if !own {
                return Err(Errno::EINVAL);
            }
        }
        _ => return Err(Errno::EINVAL),
    }
    let id = task.kernel.next_timer_id.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff;
    let (signo, value, target) = if a[1] == 0 {
        (
            libc::SIGALRM,
            id as u64,
            Target::Process(Arc::downgrade(&task.tg)),
        )
    } else {
        // struct sigevent: value (8), signo (4), notify (4), tid (4).
        let mut b = [0u8; 24];
        io::read_exact(task.mem(), a[1], &mut b)?;
        let value = u64::from_le_bytes(b[0..8].try_into().map_err(|_| Errno::EFAULT)?);
        let signo = i32::from_le_bytes(b[8..12].try_into().map_err(|_| Errno::EFAULT)?);
        let notify = i32::from_le_bytes(b[12..16].try_into().map_err(|_| Errno::EFAULT)?);
        let tid = i32::from_le_bytes(b[16..20].try_into().map_err(|_| Errno::EFAULT)?);
        let target = match notify {
            SIGEV_NONE => Target::None,
            SIGEV_SIGNAL => Target::Process(Arc::downgrade(&task.tg)),
            SIGEV_THREAD_ID => {
                let (th, tg) = task.kernel.registry()?.thread(tid).ok_or(Errno::EINVAL)?;
                if tg.tgid != task.tgid {
                    return Err(Errno::EINVAL);
                }
                Target::Thread(Arc::downgrade(&th), Arc::downgrade(&tg))
            }
            _ => return Err(Errno::EINVAL),
        };
        if notify != SIGEV_NONE && !(1..=64).contains(&signo) {
            return Err(Errno::EINVAL);
        }
        (signo, value, target)
    };
    let cpu = cpu_id.map(|id| match id.which {
        super::time::CpuWhich::Sched => space_runtime_clock(task.space()),
        which => cpu_clock(task, which == super::time::CpuWhich::Virt),
    });
    let t = Timer::new(signo, value, target, id, cpu).on_clock(clock);
    task.kernel
        .timers
        .create(TimerKey::Posix(task.tgid, id), t)?;
    io::write_u32(task.mem(), a[2], id as u32)?;
    Ok(0)
}

fn read_itimerspec(task: &Task, addr: u64) -> SysResult<(Duration, Duration)> {
    let mut b = [0u8; 32];
    io::read_exact(task.mem(), addr, &mut b)?;
    let ts = |o: usize| -> SysResult<Duration> {
        let s = i64::from_le_bytes(b[o..o + 8].try_into().map_err(|_| Errno::EFAULT)?);
        let n = i64::from_le_bytes(b[o + 8..o + 16].try_into().map_err(|_| Errno::EFAULT)?);
        if s < 0 || !(0..1_000_000_000).contains(&n) {
            return Err(Errno::EINVAL);
        }
        Ok(Duration::new(s as u64, n as u32))
    };
    Ok((ts(0)?, ts(16)?))
}

fn itimerspec_bytes(value: Duration, interval: Duration) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (o, d) in [(0, interval), (16, value)] {
        b[o..o + 8].copy_from_slice(&(d.as_secs() as i64).to_le_bytes());
        b[o + 8..o + 16].copy_from_slice(&(d.subsec_nanos() as i64).to_le_bytes());
    }
    b
}

/// `timer_settime(2)`.
pub fn timer_settime(task: &mut Task, a: &Args) -> SysResult<u64> {
    let key = TimerKey::Posix(task.tgid, a[0] as i32);
    if !task.kernel.timers.exists(key) {
        return Err(Errno::EINVAL);
    }
    let (interval, mut value) = read_itimerspec(task, a[2])?;
    if a[1] as i32 & libc::TIMER_ABSTIME != 0 && !value.is_zero() {
        // The deadline is on the caller's view of the clock (its time namespace):
        // on the sandbox's, it is that much earlier or later.
        let clock = task.kernel.timers.clock_of(key)?;
        let off = clock.map_or(0, |c| task.clock_offset(c)) as i128;
        let host = (value.as_nanos() as i128 - off).clamp(1, u64::MAX as i128);
        value = task.kernel.timers.until(
            key,
            Duration::from_nanos(host as u64),
            task.kernel.vdso().map(|v| &**v),
        )?;
    }
    let tg = Arc::downgrade(&task.tg);
    let old = task.kernel.timers.set(
        key,
        (!value.is_zero()).then_some(value),
        interval,
        move || Timer::new(libc::SIGALRM, 0, Target::Process(tg), a[0] as i32, None),
    )?;
    if a[3] != 0 {
        io::write_all(task.mem(), a[3], &itimerspec_bytes(old.0, old.1))?;
    }
    Ok(0)
}

/// `timer_gettime(2)`.
pub fn timer_gettime(task: &mut Task, a: &Args) -> SysResult<u64> {
    let key = TimerKey::Posix(task.tgid, a[0] as i32);
    if !task.kernel.timers.exists(key) {
        return Err(Errno::EINVAL);
    }
    let (value, interval) = task.kernel.timers.get(key)?;
    io::write_all(task.mem(), a[1], &itimerspec_bytes(value, interval))?;
    Ok(0)
}

/// `timer_getoverrun(2)`.
pub fn timer_getoverrun(task: &mut Task, a: &Args) -> SysResult<u64> {
    Ok(task
        .kernel
        .timers
        .overrun(TimerKey::Posix(task.tgid, a[0] as i32))? as u64)
}

/// `timer_delete(2)`.
pub fn timer_delete(task: &mut Task, a: &Args) -> SysResult<u64> {
    task.kernel
        .timers
        .delete(TimerKey::Posix(task.tgid, a[0] as i32))?;
    Ok(0)
}
