//! timerfd: a timer whose expirations are read as a count. Readiness is computed from
//! the deadline; one sentry-wide alarm thread only notifies a timer's wait queue when
//! its next deadline passes, so blocked readers and pollers wake without anyone
//! spinning, and an unread periodic timer costs nothing per period.

use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::fs::space::{AnonInos, AnonKind};
use crate::vfs::{FileImpl, OpenFile, Stat};
use crate::wait::WaitQueue;

#[derive(Default)]
struct Arm {
    next: Option<Instant>,
    interval: Duration,
}

/// The state of one timerfd.
pub struct Timer {
    clock: i32,
    arm: Mutex<Arm>,
    queue: WaitQueue,
    ino: u64,
}

/// The sentry-wide alarm list: (deadline, timer) pairs a single thread waits on.
struct Alarms {
    list: Mutex<Vec<(Instant, Weak<Timer>)>>,
    cv: Condvar,
}

fn alarms() -> &'static Alarms {
    static A: OnceLock<&'static Alarms> = OnceLock::new();
    A.get_or_init(|| {
        let a: &'static Alarms = Box::leak(Box::new(Alarms {
            list: Mutex::new(Vec::new()),
            cv: Condvar::new(),
        }));
        let spawned = std::thread::Builder::new()
            .name("timerfd-alarms".into())
            .spawn(move || alarm_loop(a));
        if let Err(e) = spawned {
            tracing::error!("timerfd alarm thread: {e}; timers will only fire when read");
        }
        a
    })
}

fn alarm_loop(a: &'static Alarms) {
    let Ok(mut list) = a.list.lock() else {
        return;
    };
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        list.retain(|(t, w)| {
            if *t <= now {
                due.push(w.clone());
                false
            } else {
                w.strong_count() > 0
            }
        });
        if !due.is_empty() {
            drop(list);
            for w in due {
                if let Some(t) = w.upgrade() {
                    t.queue.notify_all();
                }
            }
            list = match a.list.lock() {
                Ok(l) => l,
                Err(_) => return,
            };
            continue;
        }
        let next = list.iter().map(|(t, _)| *t).min();
        list = match next {
            None => match a.cv.wait(list) {
                Ok(l) => l,
                Err(_) => return,
            },
            Some(t) => match a.cv.wait_timeout(list, t.saturating_duration_since(now)) {
                Ok((l, _)) => l,
                Err(_) => return,
            },
        };
    }
}

fn schedule(timer: &Arc<Timer>, at: Instant) {
    let a = alarms();
    if let Ok(mut l) = a.list.lock() {
        l.push((at, Arc::downgrade(timer)));
    }
    a.cv.notify_all();
}

/// The open file of a timerfd.
pub struct TimerFile {
    timer: Arc<Timer>,
}

/// A disarmed timer on `clock` (already validated), numbered from `inos`.
pub fn new_timerfd(inos: &AnonInos, clock: i32) -> Box<dyn FileImpl> {
    let timer = Arc::new(Timer {
        clock,
        arm: Mutex::new(Arm::default()),
        queue: WaitQueue::new(),
        ino: inos.next(AnonKind::TimerFd),
    });
    Box::new(TimerFile { timer })
}

/// The timer behind an open file.
pub fn timer_of(file: &OpenFile) -> Option<Arc<Timer>> {
    file.imp()
        .as_any()?
        .downcast_ref::<TimerFile>()
        .map(|f| f.timer.clone())
}

fn expirations(arm: &Arm, now: Instant) -> u64 {
    match arm.next {
        Some(n) if now >= n => {
            if arm.interval.is_zero() {
                1
            } else {
                1 + ((now - n).as_nanos() / arm.interval.as_nanos()) as u64
            }
        }
        _ => 0,
    }
}

impl Timer {
    /// The clock it was created on.
    pub fn clock(&self) -> i32 {
        self.clock
    }

    /// (time to the next expiration, interval); zero when disarmed.
    pub fn get(&self) -> (Duration, Duration) {
        let Ok(arm) = self.arm.lock() else {
            return Default::default();
        };
        let now = Instant::now();
        match arm.next {
            None => (Duration::ZERO, arm.interval),
            Some(n) => {
                // An expired periodic timer reports the time to its next period.
                let mut left = n.saturating_duration_since(now);
                if n <= now && !arm.interval.is_zero() {
                    let k = expirations(&arm, now) as u32;
                    left = (n + arm.interval * k).saturating_duration_since(now);
                }
                (left, arm.interval)
            }
        }
    }

    /// Arms to first fire after `value` (zero disarms), then every `interval`;
    /// returns the old setting as [`Timer::get`] would have.
    pub fn set(self: &Arc<Self>, value: Duration, interval: Duration) -> (Duration, Duration) {
        let old = self.get();
        let next = if value.is_zero() {
            None
        } else {
            Instant::now().checked_add(value)
        };
        if let Ok(mut arm) = self.arm.lock() {
            arm.next = next;
            arm.interval = if next.is_some() {
                interval
            } else {
                Duration::ZERO
            };
        }
        if let Some(n) = next {
            schedule(self, n);
        }
        self.queue.notify_all();
        old
    }

    fn take(self: &Arc<Self>) -> SysResult<u64> {
        let mut arm = self.arm.lock().map_err(|_| Errno::EIO)?;
        let now = Instant::now();
        let n = expirations(&arm, now);
        if n == 0 {
            return Err(Errno::EAGAIN);
        }
        if arm.interval.is_zero() {
            arm.next = None;
        } else if let Some(first) = arm.next {
            let next = first + arm.interval * (n.min(u32::MAX as u64) as u32);
            arm.next = Some(next);
            drop(arm);
            schedule(self, next);
        }
        self.queue.notify_all();
        Ok(n)
    }
}

impl FileImpl for TimerFile {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn read(&self, buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL);
        }
        let n = self.timer.take()?;
        buf[..8].copy_from_slice(&n.to_ne_bytes());
        Ok(8)
    }
    fn seekable(&self) -> bool {
        false
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(Stat {
            dev: 0xd,
            ino: self.timer.ino,
            mode: 0o600,
            nlink: 1,
            blksize: 4096,
            ..Default::default()
        })
    }
    fn readiness(&self) -> u32 {
        let ready = self
            .timer
            .arm
            .lock()
            .map(|a| expirations(&a, Instant::now()) > 0)
            .unwrap_or(false);
        if ready {
            (libc::POLLIN | libc::POLLRDNORM) as u32
        } else {
            0
        }
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.timer.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::{block, Waker};

    #[test]
    fn one_shot_periodic_and_wakeup() {
        let f = OpenFile::new(
            new_timerfd(&AnonInos::default(), libc::CLOCK_MONOTONIC),
            None,
            libc::O_RDWR,
        );
        let t = timer_of(&f).unwrap();
        let mut b = [0u8; 8];
        assert_eq!(f.read(&mut b), Err(Errno::EAGAIN));
        t.set(Duration::from_millis(20), Duration::ZERO);
        assert_eq!(f.imp().readiness(), 0);
        // A blocked waiter is woken by the alarm thread, not by polling.
        let w = Waker::new();
        let _reg = f.imp().wait_queue().unwrap().register(&w);
        let start = Instant::now();
        let r = block(
            &w,
            Some(start + Duration::from_secs(5)),
            || false,
            || Ok((f.imp().readiness() != 0).then_some(())),
        );
        assert_eq!(r, Ok(Ok(())));
        assert!(start.elapsed() >= Duration::from_millis(19));
        assert!(start.elapsed() < Duration::from_secs(4));
        assert_eq!(f.read(&mut b), Ok(8));
        assert_eq!(u64::from_ne_bytes(b), 1);
        assert_eq!(f.read(&mut b), Err(Errno::EAGAIN));

        t.set(Duration::from_millis(10), Duration::from_millis(10));
        std::thread::sleep(Duration::from_millis(55));
        f.read(&mut b).unwrap();
        let n = u64::from_ne_bytes(b);
        assert!((4..=6).contains(&n), "{n}");
        let (left, iv) = t.get();
        assert_eq!(iv, Duration::from_millis(10));
        assert!(left <= Duration::from_millis(10));
        let old = t.set(Duration::ZERO, Duration::ZERO);
        assert_eq!(old.1, Duration::from_millis(10));
        assert_eq!(t.get(), (Duration::ZERO, Duration::ZERO));
    }
}
