//! Clocks and sleeps. Time is the host's: the sandbox has no clock of its own to
//! keep, only to report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::kernel::wait::{self, Interrupted};
use crate::kernel::Task;
use crate::mm::io;
use crate::platform::AddressSpace;
use crate::sys::host;
use crate::syscalls::Args;

/// Maps an application clock id to the host clock that answers for it.
fn host_clock(clock: i32) -> SysResult<libc::clockid_t> {
    match clock {
        // Resolution and CPU-time timers come from the host's own CPU clocks
        // (`clock_gettime` itself reads the application's stub).
        libc::CLOCK_PROCESS_CPUTIME_ID | libc::CLOCK_THREAD_CPUTIME_ID => {
            Ok(libc::CLOCK_THREAD_CPUTIME_ID)
        }
        _ => crate::kernel::vdso::host_wall_clock(clock),
    }
}

/// Which CPU time a CPU clock counts (Linux's `CPUCLOCK_WHICH`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuWhich {
    /// User and system time (`CPUCLOCK_PROF`).
    Prof,
    /// User time (`CPUCLOCK_VIRT`).
    Virt,
    /// Scheduler runtime (`CPUCLOCK_SCHED`): user and system time here.
    Sched,
}

/// A CPU-time clock id, decoded as Linux encodes them: the two standard ids, or
/// `~pid << 3 | per-thread << 2 | which` from `clock_getcpuclockid` and
/// `pthread_getcpuclockid` (pid 0: the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuClockId {
    /// The process or thread id, 0 for the caller.
    pub pid: i32,
    /// A thread's clock rather than a process's.
    pub thread: bool,
    /// What it counts.
    pub which: CpuWhich,
}

/// Decodes `clock` if it names a CPU-time clock (`Ok(None)` otherwise); `EINVAL`
/// for an encoded id that is no CPU clock (a dynamic clock's fd, `which` 3).
pub fn cpu_clock_id(clock: i32) -> SysResult<Option<CpuClockId>> {
    let which_of = |w: i32| match w {
        0 => Ok(CpuWhich::Prof),
        1 => Ok(CpuWhich::Virt),
        2 => Ok(CpuWhich::Sched),
        _ => Err(Errno::EINVAL),
    };
    Ok(match clock {
        libc::CLOCK_PROCESS_CPUTIME_ID => Some(CpuClockId {
            pid: 0,
            thread: false,
            which: CpuWhich::Sched,
        }),
        libc::CLOCK_THREAD_CPUTIME_ID => Some(CpuClockId {
            pid: 0,
            thread: true,
            which: CpuWhich::Sched,
        }),
        c if c < 0 => Some(CpuClockId {
            pid: !(c >> 3),
            thread: c & 4 != 0,
            which: which_of(c & 3)?,
        }),
        _ => None,
    })
}

/// Whose CPU time a clock reads.
enum CpuSource {
    /// A live process's stub: the caller's own or another of the sandbox.
    Space(Arc<dyn AddressSpace>),
    /// A figure fixed already (an exited process's, or none at all).
    Fixed((Duration, Duration)),
}

impl CpuSource {
    fn usage(&self) -> (Duration, Duration) {
        match self {
            CpuSource::Space(space) => space.cpu_time().unwrap_or_default(),
            CpuSource::Fixed(v) => *v,
        }
    }
}

/// Resolves `id` for `task`'s view: its own process, one of its threads (threads
/// share the process's figure: the stub's time is per process), or another process
/// of the sandbox; `EINVAL` for a thread of another process or nobody, as Linux.
fn cpu_clock_source(task: &Task, id: CpuClockId) -> SysResult<CpuSource> {
    if id.pid == 0 || (id.pid == task.tgid && (!id.thread || id.pid == task.tid)) {
        return Ok(CpuSource::Space(task.space().clone()));
    }
    let reg = task.kernel.registry()?;
    if id.thread {
        let (_, tg) = reg.thread(id.pid).ok_or(Errno::EINVAL)?;
        if tg.tgid != task.tgid {
            return Err(Errno::EINVAL);
        }
        return Ok(CpuSource::Space(task.space().clone()));
    }
    let tg = reg.group(id.pid).ok_or(Errno::EINVAL)?;
    drop(reg);
    let st = tg.state()?;
    if st.zombie.is_some() {
        return Ok(CpuSource::Fixed(st.exit_cpu));
    }
    let mm = st.view.mm.as_ref().and_then(|m| m.upgrade());
    drop(st);
    let Some(mm) = mm else {
        return Ok(CpuSource::Fixed(Default::default()));
    };
    let space = mm.lock().map_err(|_| Errno::EIO)?.space().clone();
    Ok(CpuSource::Space(space))
}

/// The (user, system) time a CPU clock reads for `task` (see [`cpu_clock_source`]);
/// tick-sampled, as `getrusage` and `times` report it.
pub fn cpu_clock_usage(task: &Task, id: CpuClockId) -> SysResult<(Duration, Duration)> {
    Ok(cpu_clock_source(task, id)?.usage())
}

/// What `clock_gettime` shows for a CPU clock: the `CPUCLOCK_SCHED` clocks read
/// the stub's precise runtime (as Linux's sum_exec_runtime), the others the
/// tick-sampled user and system times.
pub fn cpu_clock_read(task: &Task, id: CpuClockId) -> SysResult<Duration> {
    let source = cpu_clock_source(task, id)?;
    if let (CpuWhich::Sched, CpuSource::Space(space)) = (id.which, &source) {
        return Ok(space.sched_time().unwrap_or_default());
    }
    Ok(cpu_clock_value(id.which, source.usage()))
}

/// The time a CPU clock shows for (user, system) usage.
pub fn cpu_clock_value(which: CpuWhich, (u, s): (Duration, Duration)) -> Duration {
    match which {
        CpuWhich::Virt => u,
        CpuWhich::Prof | CpuWhich::Sched => u + s,
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
    let ts = if let Some(id) = cpu_clock_id(clock)? {
        let t = cpu_clock_read(task, id)?;
        libc::timespec {
            tv_sec: t.as_secs() as i64,
            tv_nsec: t.subsec_nanos() as i64,
        }
    } else {
        // The vDSO's clock, so that a program mixing both sees one clock (moved
        // by the task's time namespace, as the vDSO's page moves it).
        task.clock_now(clock)?
    };
    io::write_struct(task.mem(), a[1], &ts)?;
    Ok(0)
}

/// `clock_getres(2)`.
pub fn clock_getres(task: &mut Task, a: &Args) -> SysResult<u64> {
    let clock = a[0] as i32;
    let ts = match cpu_clock_id(clock)? {
        Some(id) if clock < 0 => {
            // An encoded id must name someone, as for clock_gettime; the resolution
            // is the host's for the same kind of clock (its own, pid 0).
            cpu_clock_usage(task, id)?;
            host::clock_getres((!0i32 << 3) | (clock & 7))?
        }
        _ => host::clock_getres(host_clock(clock)?)?,
    };
    if a[1] != 0 {
        io::write_struct(task.mem(), a[1], &ts)?;
    }
    Ok(0)
}

/// `gettimeofday(2)`.
pub fn gettimeofday(task: &mut Task, a: &Args) -> SysResult<u64> {
    if a[0] != 0 {
        let ts = task.kernel.clock_now(libc::CLOCK_REALTIME)?;
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
    let secs = task.kernel.clock_now(libc::CLOCK_REALTIME)?.tv_sec;
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
        // The deadline is on the clock the program reads (the vDSO's, in its
        // time namespace).
        let now = task.clock_now(hclock)?;
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

/// `CAP_SYS_TIME`.
const CAP_SYS_TIME: u32 = 25;

/// `clock_settime(2)`. Only CLOCK_REALTIME and the encoded CPU clocks have a
/// setter on Linux (others: `EINVAL`); a CPU clock refuses (`EPERM`). The sandbox shares the host's
/// clock and may not set it, so CLOCK_REALTIME is `EPERM` too, even with
/// CAP_SYS_TIME (after Linux's own argument checks).
pub fn clock_settime(task: &mut Task, a: &Args) -> SysResult<u64> {
    let clock = a[0] as i32;
    // The encoded CPU clocks refuse to be set; the two standard ids have no setter.
    if let (true, Some(id)) = (clock < 0, cpu_clock_id(clock)?) {
        cpu_clock_usage(task, id)?;
        return Err(Errno::EPERM);
    }
    if clock != libc::CLOCK_REALTIME {
        return Err(Errno::EINVAL);
    }
    let ts: libc::timespec = io::read_struct(task.mem(), a[1])?;
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    if task.creds.has_cap(CAP_SYS_TIME) {
        tracing::info!("clock_settime: the sandbox may not set the host's clock");
    }
    Err(Errno::EPERM)
}

/// `settimeofday(2)`: as `clock_settime`, the time cannot be set from the sandbox
/// (`EPERM` once the arguments pass Linux's checks).
pub fn settimeofday(task: &mut Task, a: &Args) -> SysResult<u64> {
    if a[0] != 0 {
        let tv: libc::timeval = io::read_struct(task.mem(), a[0])?;
        if tv.tv_sec < 0 || !(0..1_000_000).contains(&tv.tv_usec) {
            return Err(Errno::EINVAL);
        }
    }
    if a[1] != 0 {
        let mut tz = [0u8; 8];
        io::read_exact(task.mem(), a[1], &mut tz)?;
    }
    Err(Errno::EPERM)
}
