//! Timers that send signals: `alarm`, `setitimer` and POSIX timers. One service
//! thread per sandbox sleeps until the earliest deadline (never spins) and sends the
//! signal when a timer fires.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::kernel::process::{self, ThreadGroup, ThreadHandle};
use crate::kernel::signals::{code, SigInfo};

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

/// One armed-or-not timer.
pub struct Timer {
    /// Next expiry, if armed.
    pub next: Option<Instant>,
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
}

/// The key of a timer: (process, kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKey {
    /// `ITIMER_REAL`/`ITIMER_VIRTUAL`/`ITIMER_PROF` (0, 1, 2) of a process.
    Itimer(i32, i32),
    /// POSIX timer `id` of a process.
    Posix(i32, i32),
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
        let old = (
            t.next
                .map(|n| n.saturating_duration_since(now))
                .unwrap_or_default(),
            t.interval,
        );
        t.next = value.map(|v| now + v);
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
            .map(|t| {
                (
                    t.next
                        .map(|n| n.saturating_duration_since(now))
                        .unwrap_or_default(),
                    t.interval,
                )
            })
            .unwrap_or_default())
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
                TimerKey::Itimer(p, _) | TimerKey::Posix(p, _) => *p != tgid,
            });
        }
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
    loop {
        let Some(svc) = weak.upgrade() else { return };
        let mut fire: Vec<(SigInfo, Target)> = Vec::new();
        {
            let Ok(mut st) = svc.state.lock() else { return };
            if st.stop {
                return;
            }
            let now = Instant::now();
            for t in st.timers.values_mut() {
                let Some(next) = t.next else { continue };
                if next > now {
                    continue;
                }
                let mut missed = 0i32;
                if t.interval.is_zero() {
                    t.next = None;
                } else {
                    let mut n = next + t.interval;
                    while n <= now {
                        n += t.interval;
                        missed = missed.saturating_add(1);
                    }
                    t.next = Some(n);
                }
                t.overrun = missed;
                let info = SigInfo {
                    signo: t.signo,
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
            let earliest = st.timers.values().filter_map(|t| t.next).min();
            if fire.is_empty() {
                let wait = earliest
                    .map(|e| e.saturating_duration_since(now))
                    .unwrap_or(Duration::from_secs(3600));
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
