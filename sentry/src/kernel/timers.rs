//! Timers that send signals: `alarm`, `setitimer` and POSIX timers, and the
//! RLIMIT_CPU watch. One service thread per sandbox sleeps until the earliest
//! deadline (never spins) and sends the signal when a timer fires.
//!
//! CPU-time timers (ITIMER_VIRTUAL, ITIMER_PROF, timers on a CPU clock, RLIMIT_CPU)
//! run on the process's CPU clock, which the service reads when it wakes: a process
//! uses at most one CPU second per wall second per host CPU, so the service sleeps
//! the CPU time left divided by the host's CPUs and looks again.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::kernel::process::{self, ThreadGroup, ThreadHandle};
use crate::kernel::signals::{code, SigInfo};
use crate::kernel::vdso::Vdso;
use crate::platform::AddressSpace;

/// Who a timer signals.
#[derive(Clone)]
pub enum Target {
    /// The process (SIGEV_SIGNAL, itimers).
    Process(Weak<ThreadGroup>),
    /// One thread (SIGEV_THREAD_ID).
    Thread(Weak<ThreadHandle>, Weak<ThreadGroup>),
    /// Nobody (SIGEV_NONE): the timer only counts.
    None,
}

/// Reads a process's CPU clock; `None` once the process (its address space) is gone.
pub type CpuClock = Arc<dyn Fn() -> Option<Duration> + Send + Sync>;

/// The CPU clock of the process running in `space`: user time only
/// (ITIMER_VIRTUAL), or user and system time. It stops (reads `None`) once that
/// address space is gone (exit, or exec replacing the image).
pub fn space_cpu_clock(space: &Arc<dyn AddressSpace>, user_only: bool) -> CpuClock {
    let space = Arc::downgrade(space);
    Arc::new(move || {
        let (u, s) = space.upgrade()?.cpu_time()?;
        Some(if user_only { u } else { u + s })
    })
}

/// The scheduler-runtime clock (`CPUCLOCK_SCHED`, as `clock_gettime` reads
/// `CLOCK_PROCESS_CPUTIME_ID`) of the process running in `space`, precise where the
/// platform knows it and user plus system time otherwise; a timer on that clock
/// fires by the same figure the program reads. Stops as [`space_cpu_clock`].
pub fn space_runtime_clock(space: &Arc<dyn AddressSpace>) -> CpuClock {
    let space = Arc::downgrade(space);
    Arc::new(move || space.upgrade()?.sched_time())
}

/// One armed-or-not timer.
pub struct Timer {
    /// Next expiry, if armed (wall-clock timers).
    pub next: Option<Instant>,
    /// The CPU clock this timer counts, `None` for the wall clock.
    pub cpu: Option<CpuClock>,
    /// Next expiry on [`Timer::cpu`], if armed.
    pub cpu_next: Option<Duration>,
    /// RLIMIT_CPU's hard limit: past it, SIGKILL instead of [`Timer::signo`].
    pub kill_at: Option<Duration>,
    /// Re-arm interval (zero: one-shot).
    pub interval: Duration,
    /// Signal to send.
    pub signo: i32,
    /// `sigev_value`.
    pub value: u64,
    /// Who gets it.
    pub target: Target,
    /// Expirations missed since the last delivery (`timer_getoverrun`).
    pub overrun: i32,
    /// POSIX timer id (for si_timerid), or -1 for itimers.
    pub id: i32,
    /// The clock a wall timer's absolute deadlines are read on (`TIMER_ABSTIME`).
    pub clock: libc::clockid_t,
}

/// The key of a timer: (process, kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKey {
    /// `ITIMER_REAL`/`ITIMER_VIRTUAL`/`ITIMER_PROF` (0, 1, 2) of a process.
    Itimer(i32, i32),
    /// POSIX timer `id` of a process.
    Posix(i32, i32),
    /// The RLIMIT_CPU watch of a process.
    CpuLimit(i32),
}

impl Timer {
    /// A disarmed timer on the wall clock, or on `cpu`.
    pub fn new(signo: i32, value: u64, target: Target, id: i32, cpu: Option<CpuClock>) -> Timer {
        Timer {
            next: None,
            cpu,
            cpu_next: None,
            kill_at: None,
            interval: Duration::ZERO,
            signo,
            value,
            target,
            overrun: 0,
            id,
            clock: libc::CLOCK_MONOTONIC,
        }
    }

    /// The same timer, its absolute deadlines read on `clock`.
    pub fn on_clock(mut self, clock: libc::clockid_t) -> Timer {
        self.clock = clock;
        self
    }

    /// Now, on the clock this timer's absolute deadlines are read on: its CPU clock, or
    /// its wall clock as the application reads it (through the sandbox's vDSO `vdso`).
    fn clock_now(&self, vdso: Option<&Vdso>) -> SysResult<Duration> {
        match &self.cpu {
            Some(clock) => clock().ok_or(Errno::EINVAL),
            None => {
                let ts = crate::kernel::vdso::clock_now(vdso, self.clock)?;
                Ok(Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec as u32))
            }
        }
    }

    /// Time left until expiry (zero when disarmed).
    fn remaining(&self, now: Instant) -> Duration {
        match &self.cpu {
            None => self
                .next
                .map(|n| n.saturating_duration_since(now))
                .unwrap_or_default(),
            Some(clock) => match (self.cpu_next, clock()) {
                (Some(n), Some(c)) => n.saturating_sub(c).max(Duration::from_nanos(1)),
                _ => Duration::ZERO,
            },
        }
    }

    /// Arms for `value` from now, or disarms.
    fn arm(&mut self, value: Option<Duration>, now: Instant) {
        match &self.cpu {
            None => self.next = value.map(|v| now + v),
            Some(clock) => {
                self.cpu_next = match (value, clock()) {
                    (Some(v), Some(c)) => Some(c + v),
                    _ => None,
                }
            }
        }
    }

    /// If due at `now` (wall) / `cpu_now` (its CPU clock), re-arms it and returns
    /// the expirations missed besides this one; `None` if not due.
    fn expire(&mut self, now: Instant, cpu_now: Option<Duration>) -> Option<i32> {
        let mut missed = 0i32;
        if self.cpu.is_none() {
            let next = self.next.filter(|n| *n <= now)?;
            if self.interval.is_zero() {
                self.next = None;
            } else {
                let mut n = next + self.interval;
                while n <= now {
                    n += self.interval;
                    missed = missed.saturating_add(1);
                }
                self.next = Some(n);
            }
        } else {
            let c = cpu_now?;
            let next = self.cpu_next.filter(|n| *n <= c)?;
            if self.interval.is_zero() {
                self.cpu_next = None;
            } else {
                let mut n = next + self.interval;
                while n <= c {
                    n += self.interval;
                    missed = missed.saturating_add(1);
                }
                self.cpu_next = Some(n);
            }
        }
        Some(missed)
    }
}

/// How long the service may sleep before `t` can be due.
fn wall_wait(t: &Timer, now: Instant, cpu_now: Option<Duration>, cpus: u32) -> Option<Duration> {
    match &t.cpu {
        None => t.next.map(|n| n.saturating_duration_since(now)),
        Some(_) => {
            let left = t.cpu_next?.saturating_sub(cpu_now?);
            Some((left / cpus.max(1)).max(Duration::from_millis(1)))
        }
    }
}

#[derive(Default)]
struct State {
    timers: BTreeMap<TimerKey, Timer>,
    stop: bool,
}

/// The sandbox's timer service.
pub struct TimerService {
    state: Mutex<State>,
    cv: Condvar,
}

impl TimerService {
    /// Starts the service thread.
    pub fn start() -> Arc<TimerService> {
        let svc = Arc::new(TimerService {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        });
        let weak = Arc::downgrade(&svc);
        let _ = std::thread::Builder::new()
            .name("timers".into())
            .spawn(move || run(weak));
        svc
    }

    fn lock(&self) -> SysResult<std::sync::MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| Errno::EIO)
    }

    /// Arms (or with `value == None` disarms) `key`, returning the old remaining time
    /// and interval. `make` builds the timer if it does not exist yet.
    pub fn set(
        &self,
        key: TimerKey,
        value: Option<Duration>,
        interval: Duration,
        make: impl FnOnce() -> Timer,
    ) -> SysResult<(Duration, Duration)> {
        let mut st = self.lock()?;
        let now = Instant::now();
        let t = st.timers.entry(key).or_insert_with(make);
        let old = (t.remaining(now), t.interval);
        t.arm(value, now);
        t.interval = interval;
        t.overrun = 0;
        drop(st);
        self.cv.notify_all();
        Ok(old)
    }

    /// The remaining time and interval of `key` (zeros if absent or disarmed).
    pub fn get(&self, key: TimerKey) -> SysResult<(Duration, Duration)> {
        let st = self.lock()?;
        let now = Instant::now();
        Ok(st
            .timers
            .get(&key)
            .map(|t| (t.remaining(now), t.interval))
            .unwrap_or_default())
    }

    /// Turns `deadline`, an absolute time on `key`'s own clock (`TIMER_ABSTIME`), into
    /// the time left until it: at least 1 ns, so a deadline already past fires at once.
    pub fn until(
        &self,
        key: TimerKey,
        deadline: Duration,
        vdso: Option<&Vdso>,
    ) -> SysResult<Duration> {
        let now = self
            .lock()?
            .timers
            .get(&key)
            .ok_or(Errno::EINVAL)?
            .clock_now(vdso)?;
        Ok(deadline.saturating_sub(now).max(Duration::from_nanos(1)))
    }

    /// The wall clock timer `key`'s absolute deadlines are read on (`None` for a
    /// CPU-time timer; `EINVAL` if there is no such timer).
    pub fn clock_of(&self, key: TimerKey) -> SysResult<Option<libc::clockid_t>> {
        let st = self.lock()?;
        let t = st.timers.get(&key).ok_or(Errno::EINVAL)?;
        Ok(t.cpu.is_none().then_some(t.clock))
    }

    /// True if `key` exists.
    pub fn exists(&self, key: TimerKey) -> bool {
        self.lock()
            .map(|s| s.timers.contains_key(&key))
            .unwrap_or(false)
    }

    /// Creates POSIX timer `key` (disarmed).
    pub fn create(&self, key: TimerKey, t: Timer) -> SysResult<()> {
        let mut st = self.lock()?;
        if st.timers.contains_key(&key) {
            return Err(Errno::EAGAIN);
        }
        st.timers.insert(key, t);
        Ok(())
    }

    /// Deletes `key`.
    pub fn delete(&self, key: TimerKey) -> SysResult<()> {
        self.lock()?
            .timers
            .remove(&key)
            .map(|_| ())
            .ok_or(Errno::EINVAL)
    }

    /// The overrun count of `key`.
    pub fn overrun(&self, key: TimerKey) -> SysResult<i32> {
        self.lock()?
            .timers
            .get(&key)
            .map(|t| t.overrun)
            .ok_or(Errno::EINVAL)
    }

    /// Removes every timer of process `tgid` (exit, exec for POSIX timers).
    pub fn remove_process(&self, tgid: i32) {
        if let Ok(mut st) = self.state.lock() {
            st.timers.retain(|k, _| match k {
                TimerKey::Itimer(p, _) | TimerKey::Posix(p, _) | TimerKey::CpuLimit(p) => {
                    *p != tgid
                }
            });
        }
    }

    /// Watches RLIMIT_CPU for process `tgid` on `clock`: SIGXCPU when it has used
    /// `soft` and every second after, SIGKILL at `hard`, as Linux. An infinite soft
    /// limit (`None`) removes the watch.
    pub fn watch_cpu_limit(
        &self,
        tgid: i32,
        target: Target,
        clock: CpuClock,
        soft: Option<Duration>,
        hard: Option<Duration>,
    ) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let key = TimerKey::CpuLimit(tgid);
        match soft {
            None => {
                // Nothing to tell the service thread when there was no watch (every
                // new process without a CPU limit comes here: waking the thread for
                // it cost a futex wake and a context switch per fork).
                if st.timers.remove(&key).is_none() {
                    return;
                }
            }
            Some(soft) => {
                let mut t = Timer::new(libc::SIGXCPU, 0, target, -1, Some(clock));
                t.cpu_next = Some(soft);
                t.interval = Duration::from_secs(1);
                t.kill_at = hard;
                st.timers.insert(key, t);
            }
        }
        drop(st);
        self.cv.notify_all();
    }

    /// Stops the service thread.
    pub fn stop(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.stop = true;
        }
        self.cv.notify_all();
    }
}

fn run(weak: Weak<TimerService>) {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    loop {
        let Some(svc) = weak.upgrade() else { return };
        let mut fire: Vec<(SigInfo, Target)> = Vec::new();
        {
            let Ok(mut st) = svc.state.lock() else { return };
            if st.stop {
                return;
            }
            let now = Instant::now();
            let mut earliest: Option<Duration> = None;
            for t in st.timers.values_mut() {
                let cpu_now = match &t.cpu {
                    Some(clock) if t.cpu_next.is_some() => {
                        let c = clock();
                        if c.is_none() {
                            // The process is gone: nothing left to count.
                            t.cpu_next = None;
                        }
                        c
                    }
                    _ => None,
                };
                if let Some(missed) = t.expire(now, cpu_now) {
                    t.overrun = missed;
                    let over_hard = matches!((t.kill_at, cpu_now), (Some(h), Some(c)) if c >= h);
                    let signo = if over_hard { libc::SIGKILL } else { t.signo };
                    if over_hard {
                        t.cpu_next = None;
                    }
                    let info = SigInfo {
                        signo,
                        code: if t.id >= 0 {
                            code::SI_TIMER
                        } else {
                            code::SI_KERNEL
                        },
                        pid: t.id.max(0),
                        uid: missed as u32,
                        value: t.value,
                        ..Default::default()
                    };
                    fire.push((info, t.target.clone()));
                }
                if let Some(w) = wall_wait(t, now, cpu_now, cpus) {
                    earliest = Some(earliest.map_or(w, |e| e.min(w)));
                }
            }
            if fire.is_empty() {
                let wait = earliest.unwrap_or(Duration::from_secs(3600));
                // Holding only a weak reference while asleep lets the kernel go away.
                let cv = &svc.cv;
                let _ = cv.wait_timeout(st, wait);
                continue;
            }
        }
        for (info, target) in fire {
            let r = match target {
                Target::Process(g) => g.upgrade().map(|g| process::send_to_group(&g, info)),
                Target::Thread(t, g) => match (t.upgrade(), g.upgrade()) {
                    (Some(t), Some(g)) => Some(process::send_to_thread(&t, &g, info)),
                    _ => None,
                },
                Target::None => None,
            };
            if let Some(Err(e)) = r {
                tracing::debug!("timer signal not delivered: {e}");
            }
        }
    }
}
