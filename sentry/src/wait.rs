//! Blocking without spinning. A task that must wait (pipe read, wait4, futex, sleep)
//! parks its sentry thread on its [`Waker`]; whatever may end the wait — the event
//! itself through a [`WaitQueue`], a signal, a timeout — wakes it, and the task then
//! re-checks its condition. A generation counter makes wake-ups that race with the
//! check impossible to lose.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Instant;

use crate::errno::{Errno, SysResult};
use crate::platform::Interrupter;

/// One task's alarm clock.
#[derive(Default)]
pub struct Waker {
    generation: Mutex<u64>,
    cv: Condvar,
    /// The platform context running the task's code, if any: interrupted by
    /// [`Waker::interrupt`], and told before each sleep so it can stop spinning for
    /// an answer that will not come soon.
    context: Mutex<Option<Arc<dyn Interrupter>>>,
    /// Run on every wake-up: for wakers that stand for an event consumer rather
    /// than a sleeping task (O_ASYNC's SIGIO). It must not take locks a waker's
    /// caller may hold.
    hook: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Waker {
    /// A new waker.
    pub fn new() -> Arc<Waker> {
        Arc::new(Waker::default())
    }

    /// The current generation; a later [`Waker::wait`] with it returns as soon as
    /// anything calls [`Waker::wake`] after this read.
    pub fn generation(&self) -> u64 {
        self.generation.lock().map(|g| *g).unwrap_or(0)
    }

    /// A waker that runs `hook` each time it is woken (nobody sleeps on it).
    pub fn with_hook(hook: Box<dyn Fn() + Send + Sync>) -> Arc<Waker> {
        let w = Waker::default();
        let _ = w.hook.set(hook);
        Arc::new(w)
    }

    /// Wakes the owner if it waits, or makes its next wait return at once.
    pub fn wake(&self) {
        if let Ok(mut g) = self.generation.lock() {
            *g = g.wrapping_add(1);
        }
        self.cv.notify_all();
        if let Some(h) = self.hook.get() {
            h();
        }
    }

    /// Sets the platform context that runs the task's code (at start and exec).
    pub fn set_context(&self, i: Arc<dyn Interrupter>) {
        if let Ok(mut c) = self.context.lock() {
            *c = Some(i);
        }
    }

    /// Runs `f` on the task's platform context, if it has one.
    fn with_context(&self, f: impl FnOnce(&dyn Interrupter)) {
        if let Ok(c) = self.context.lock() {
            if let Some(c) = c.as_ref() {
                f(c.as_ref());
            }
        }
    }

    /// Cuts the task's running application code short (see [`Interrupter`]).
    pub fn interrupt(&self) {
        self.with_context(|c| c.interrupt());
    }

    /// Ends the task's running application code for good (see
    /// [`Interrupter::kill`]).
    pub fn kill(&self) {
        self.with_context(|c| c.kill());
    }

    /// Sleeps until woken after generation `seen`, or until `deadline`.
    pub fn wait(&self, seen: u64, deadline: Option<Instant>) {
        self.with_context(|c| c.blocking());
        let Ok(mut g) = self.generation.lock() else {
            return;
        };
        while *g == seen {
            match deadline {
                None => match self.cv.wait(g) {
                    Ok(ng) => g = ng,
                    Err(_) => return,
                },
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return;
                    }
                    match self.cv.wait_timeout(g, d - now) {
                        Ok((ng, _)) => g = ng,
                        Err(_) => return,
                    }
                }
            }
        }
    }
}

/// Tasks waiting for one kind of event.
#[derive(Default)]
pub struct WaitQueue {
    waiters: Mutex<Vec<Weak<Waker>>>,
}

impl WaitQueue {
    /// An empty queue.
    pub fn new() -> Self {
        WaitQueue::default()
    }

    /// Adds `w` until the returned guard is dropped.
    pub fn register<'a>(&'a self, w: &Arc<Waker>) -> Registration<'a> {
        if let Ok(mut v) = self.waiters.lock() {
            v.retain(|x| x.strong_count() > 0);
            v.push(Arc::downgrade(w));
        }
        Registration {
            queue: self,
            waker: Arc::downgrade(w),
        }
    }

    /// Wakes every registered task; each re-checks its own condition.
    pub fn notify_all(&self) {
        let list: Vec<Arc<Waker>> = match self.waiters.lock() {
            Ok(v) => v.iter().filter_map(|w| w.upgrade()).collect(),
            Err(_) => return,
        };
        for w in list {
            w.wake();
        }
    }

    /// True if nobody waits.
    pub fn is_empty(&self) -> bool {
        self.waiters
            .lock()
            .map(|v| v.iter().all(|w| w.strong_count() == 0))
            .unwrap_or(true)
    }
}

/// Keeps a waker on a queue; removes it when dropped.
pub struct Registration<'a> {
    queue: &'a WaitQueue,
    waker: Weak<Waker>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Ok(mut v) = self.queue.waiters.lock() {
            v.retain(|x| !x.ptr_eq(&self.waker) && x.strong_count() > 0);
        }
    }
}

/// Why a blocking wait ended without its condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupted {
    /// A signal is pending for the task.
    Signal,
    /// The deadline passed.
    Timeout,
}

/// Blocks on `waker` until `ready` yields a value, `interrupted` says a signal is
/// pending, or `deadline` passes. `ready` is re-run after every wake-up; register
/// on the relevant [`WaitQueue`]s before calling.
pub fn block<T>(
    waker: &Waker,
    deadline: Option<Instant>,
    mut interrupted: impl FnMut() -> bool,
    mut ready: impl FnMut() -> SysResult<Option<T>>,
) -> Result<SysResult<T>, Interrupted> {
    loop {
        let seen = waker.generation();
        match ready() {
            Ok(Some(v)) => return Ok(Ok(v)),
            Err(e) => return Ok(Err(e)),
            Ok(None) => {}
        }
        if interrupted() {
            return Err(Interrupted::Signal);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Interrupted::Timeout);
        }
        waker.wait(seen, deadline);
    }
}

/// The errno a wait interrupted by a signal returns when the call may be restarted
/// under SA_RESTART.
pub fn restart_errno(i: Interrupted) -> Errno {
    match i {
        Interrupted::Signal => Errno::ERESTARTSYS,
        Interrupted::Timeout => Errno::ETIMEDOUT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn wake_through_queue_and_timeout() {
        let q = Arc::new(WaitQueue::new());
        let flag = Arc::new(AtomicBool::new(false));
        let w = Waker::new();
        let _reg = q.register(&w);
        let (q2, f2) = (q.clone(), flag.clone());
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            f2.store(true, Ordering::SeqCst);
            q2.notify_all();
        });
        let r = block(
            &w,
            None,
            || false,
            || Ok(flag.load(Ordering::SeqCst).then_some(7)),
        );
        assert_eq!(r, Ok(Ok(7)));
        t.join().unwrap();

        let start = Instant::now();
        let r: Result<SysResult<()>, _> = block(
            &w,
            Some(start + Duration::from_millis(30)),
            || false,
            || Ok(None),
        );
        assert_eq!(r, Err(Interrupted::Timeout));
        assert!(start.elapsed() >= Duration::from_millis(30));

        let r: Result<SysResult<()>, _> = block(&w, None, || true, || Ok(None));
        assert_eq!(r, Err(Interrupted::Signal));
        drop(_reg);
        assert!(q.is_empty());
    }
}
