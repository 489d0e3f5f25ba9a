//! Clocks and sleeps. Time is the host's: the sandbox has no clock of its own to
//! keep, only to report.

use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::kernel::wait::{self, Interrupted};
use crate::kernel::Task;
use crate::mm::io;
use crate::sys::host;
use crate::syscalls::Args;

/// Maps an application clock id to the host clock that answers for it.
fn host_clock(clock: i32) -> SysResult<libc::clockid_t> {
    match clock {
        libc::CLOCK_REALTIME
        | libc::CLOCK_MONOTONIC
        | libc::CLOCK_MONOTONIC_RAW
        | libc::CLOCK_REALTIME_COARSE
        | libc::CLOCK_MONOTONIC_COARSE
        | libc::CLOCK_BOOTTIME
        | libc::CLOCK_TAI => Ok(clock),
        libc::CLOCK_REALTIME_ALARM => Ok(libc::CLOCK_REALTIME),
        libc::CLOCK_BOOTTIME_ALARM => Ok(libc::CLOCK_BOOTTIME),
        // Resolution and CPU-time timers come from the host's own CPU clocks
        // (`clock_gettime` itself reads the application's stub).
        libc::CLOCK_PROCESS_CPUTIME_ID | libc::CLOCK_THREAD_CPUTIME_ID => {
            Ok(libc::CLOCK_THREAD_CPUTIME_ID)
        }
        _ => Err(Errno::EINVAL),
    }
}

fn read_timespec(task: &Task, addr: u64) -> SysResult<libc::timespec> {
    let ts: libc::timespec = io::read_struct(task.mem(), addr)?;
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    Ok(ts)
}

/// `clock_gettime(2)`. The CPU-time clocks read the process's stub (see
/// `getrusage`); per process, so the thread clock reads the process too.
pub fn clock_gettime(task: &mut Task, a: &Args) -> SysResult<u64> {
    let clock = a[0] as i32;
    let ts = if clock == libc::CLOCK_PROCESS_CPUTIME_ID || clock == libc::CLOCK_THREAD_CPUTIME_ID {
        let (u, s) = task.cpu_usage();
        let t = u + s;
        libc::timespec {
            tv_sec: t.as_secs() as i64,
            tv_nsec: t.subsec_nanos() as i64,
        }
    } else {
        host::clock_gettime(host_clock(clock)?)?
    };
    io::write_struct(task.mem(), a[1], &ts)?;
    Ok(0)
}

/// `clock_getres(2)`.
pub fn clock_getres(task: &mut Task, a: &Args) -> SysResult<u64> {
    let ts = host::clock_getres(host_clock(a[0] as i32)?)?;
    if a[1] != 0 {
        io::write_struct(task.mem(), a[1], &ts)?;
    }
    Ok(0)
}

/// `gettimeofday(2)`.
pub fn gettimeofday(task: &mut Task, a: &Args) -> SysResult<u64> {
    if a[0] != 0 {
        let ts = host::clock_gettime(libc::CLOCK_REALTIME)?;
        let tv = libc::timeval {
            tv_sec: ts.tv_sec,
            tv_usec: ts.tv_nsec / 1000,
        };
        io::write_struct(task.mem(), a[0], &tv)?;
    }
    if a[1] != 0 {
        // The sandbox runs in UTC.
        io::write_all(task.mem(), a[1], &[0u8; 8])?;
    }
    Ok(0)
}

/// `time(2)`.
pub fn time(task: &mut Task, a: &Args) -> SysResult<u64> {
    let secs = host::clock_gettime(libc::CLOCK_REALTIME)?.tv_sec;
    if a[0] != 0 {
        io::write_u64(task.mem(), a[0], secs as u64)?;
    }
    Ok(secs as u64)
}

fn to_duration(ts: &libc::timespec) -> Duration {
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Parks the task until `deadline` or a signal. On a signal, the time left is
/// written to `rem` (if given) and the call ends with `restart` (which becomes EINTR
/// when a handler runs).
fn sleep_until(task: &Task, deadline: Instant, rem: u64, restart: Errno) -> SysResult<u64> {
    let r: Result<SysResult<()>, Interrupted> = wait::block(
        &task.waker,
        Some(deadline),
        || task.signal_pending(),
        || Ok(None),
    );
    match r {
        Err(Interrupted::Timeout) => Ok(0),
        Ok(res) => res.map(|_| 0),
        Err(Interrupted::Signal) => {
            if rem != 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                let ts = libc::timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: left.subsec_nanos() as i64,
                };
                io::write_struct(task.mem(), rem, &ts)?;
            }
            Err(restart)
        }
    }
}

/// `nanosleep(2)`. The sentry thread sleeps; nothing spins.
pub fn nanosleep(task: &mut Task, a: &Args) -> SysResult<u64> {
    let ts = read_timespec(task, a[0])?;
    // Restarting a relative sleep starts it again in full; Linux would continue with
    // the remainder through restart_syscall.
    sleep_until(
        task,
        Instant::now() + to_duration(&ts),
        a[1],
        Errno::ERESTART_RESTARTBLOCK,
    )
}

/// `clock_nanosleep(2)`, relative or with TIMER_ABSTIME.
pub fn clock_nanosleep(task: &mut Task, a: &Args) -> SysResult<u64> {
    let clock = a[0] as i32;
    let flags = a[1] as i32;
    let hclock = match clock {
        libc::CLOCK_REALTIME | libc::CLOCK_MONOTONIC | libc::CLOCK_BOOTTIME | libc::CLOCK_TAI => {
            clock
        }
        libc::CLOCK_PROCESS_CPUTIME_ID => return Err(Errno::EOPNOTSUPP),
        libc::CLOCK_THREAD_CPUTIME_ID => return Err(Errno::EINVAL),
        _ => return Err(Errno::EINVAL),
    };
    let ts = read_timespec(task, a[2])?;
    let dur = if flags & libc::TIMER_ABSTIME != 0 {
        let now = host::clock_gettime(hclock)?;
        let now_ns = now.tv_sec as i128 * 1_000_000_000 + now.tv_nsec as i128;
        let then_ns = ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128;
        Duration::from_nanos((then_ns - now_ns).clamp(0, u64::MAX as i128) as u64)
    } else {
        to_duration(&ts)
    };
    let absolute = flags & libc::TIMER_ABSTIME != 0;
    let rem = if absolute { 0 } else { a[3] };
    // An absolute sleep restarts exactly; a relative one as nanosleep does.
    let restart = if absolute {
        Errno::ERESTARTNOHAND
    } else {
        Errno::ERESTART_RESTARTBLOCK
    };
    sleep_until(task, Instant::now() + dur, rem, restart)
}
