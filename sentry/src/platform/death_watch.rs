//! The death watcher both stub-process platforms share: one host thread per
//! platform sleeps in a single `ppoll` on pidfds of every live stub, and as soon as
//! one says its stub is gone, records the death and runs the space's death hooks
//! (the kernel's: end the processes running there). A task waiting inside the
//! sentry therefore learns of its process's death at once, not at its next switch,
//! and every later copy to or from the dead stub fails.
//!
//! A platform says which pidfds to poll and how to tell a death from any other
//! wake-up ([`Watched`]): a systrap stub's process pidfd polls readable once the
//! process is gone, while a traced stub's process pidfd stays unreadable as long as
//! a traced thread is left unreaped, so the ptrace platform watches a thread pidfd
//! per stub thread instead.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::errno::{Errno, SysResult};

/// A stub process as the watcher sees it.
pub(crate) trait Watched: Send + Sync + 'static {
    /// Whether the stub is already known to be dead (found by a switch or a copy).
    fn known_dead(&self) -> bool;
    /// Appends the fds to poll: any of them becoming ready may mean a death.
    fn watch_fds(&self, out: &mut Vec<RawFd>);
    /// Checks, after a wake-up on one of its fds, whether the stub is dead, and
    /// records it if so. A wake-up for any other reason (an fd number closed and
    /// reused meanwhile) must answer `false`.
    fn check_dead(&self) -> bool;
    /// The space's death hooks.
    fn hooks(&self) -> &DeathHooks;
}

/// What to run, once, when a space's stub is found dead.
#[derive(Default)]
pub(crate) struct DeathHooks(Mutex<Vec<Box<dyn FnOnce() + Send>>>);

impl DeathHooks {
    /// Adds `hook`.
    pub(crate) fn add(&self, hook: Box<dyn FnOnce() + Send>) {
        lock(&self.0).push(hook);
    }

    /// Runs (once) every hook added so far.
    pub(crate) fn run(&self) {
        let hooks = std::mem::take(&mut *lock(&self.0));
        for h in hooks {
            h();
        }
    }
}

/// Every live space of a platform, and the watcher thread that polls them.
pub(crate) struct Registry<S: Watched> {
    spaces: Mutex<Vec<Weak<S>>>,
    /// Our end of the watcher's wake-up socket: a message makes it take the list
    /// again; closing it (the registry's end) ends the watcher.
    wake: OwnedFd,
}

/// How often the watcher takes the list of spaces again: a new space is watched from
/// the next round on. Not poking the watcher for each new space keeps it off the
/// fork path (two wake-ups of a third thread per fork+exit cost about a tenth of a
/// fork+exit+wait on two CPUs); a stub that dies younger than this is still seen at
/// once by a switch or a copy, and by the watcher at its next round.
const WATCH_PERIOD: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 50_000_000,
};

impl<S: Watched> Registry<S> {
    /// A registry and its watcher thread, named `name`.
    pub(crate) fn new(name: &str) -> SysResult<Arc<Self>> {
        let (wake, watcher_end) = super::common::seqpacket_pair()?;
        let registry = Arc::new(Registry {
            spaces: Mutex::new(Vec::new()),
            wake,
        });
        let weak = Arc::downgrade(&registry);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || watch(weak, watcher_end))
            .map_err(|_| Errno::EAGAIN)?;
        Ok(registry)
    }

    /// Records `space` (the watcher takes it up within [`WATCH_PERIOD`]).
    pub(crate) fn register(&self, space: &Arc<S>) {
        let mut spaces = lock(&self.spaces);
        spaces.retain(|w| w.strong_count() > 0);
        spaces.push(Arc::downgrade(space));
    }

    /// The live space whose `Arc` points at `ptr` (how a platform finds its concrete
    /// space behind an `Arc<dyn AddressSpace>`).
    pub(crate) fn find(&self, ptr: *const ()) -> Option<Arc<S>> {
        lock(&self.spaces)
            .iter()
            .filter(|w| Weak::as_ptr(w) as *const () == ptr)
            .find_map(Weak::upgrade)
    }

    /// Adds a death hook to `space`; it runs at once (on the watcher) if the space
    /// is already known dead.
    pub(crate) fn on_death(&self, space: &S, hook: Box<dyn FnOnce() + Send>) {
        space.hooks().add(hook);
        if space.known_dead() {
            self.poke();
        }
    }

    /// Makes the watcher take the list again.
    pub(crate) fn poke(&self) {
        super::common::wake_up(self.wake.as_fd());
    }
}

/// The watcher: sleeps in one `ppoll` on every live space's fds and on its wake-up
/// socket, and runs a dead space's hooks at once. It holds no space alive across the
/// poll (only fd numbers: one closed and reused meanwhile only causes a check that
/// answers no) and ends with the registry.
fn watch<S: Watched>(registry: Weak<Registry<S>>, wake: OwnedFd) {
    let mut fds: Vec<RawFd> = Vec::new();
    loop {
        // Per space, the range of `fds` that is its own.
        let mut watched: Vec<(std::ops::Range<usize>, Weak<S>)> = Vec::new();
        let mut due = Vec::new();
        fds.clear();
        fds.push(wake.as_raw_fd());
        {
            let Some(reg) = registry.upgrade() else {
                return;
            };
            let spaces = lock(&reg.spaces);
            for w in spaces.iter() {
                let Some(space) = w.upgrade() else { continue };
                if space.known_dead() {
                    // Found dead elsewhere (a switch, a copy): only its hooks are left.
                    due.push(space);
                } else {
                    let start = fds.len();
                    space.watch_fds(&mut fds);
                    watched.push((start..fds.len(), w.clone()));
                }
            }
        }
        for space in due.drain(..) {
            space.hooks().run();
        }
        let mut polled: Vec<libc::pollfd> = fds
            .iter()
            .map(|&fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `polled` is a valid array of `polled.len()` pollfds; the timeout is
        // a valid timespec; no mask.
        let r = unsafe {
            libc::ppoll(
                polled.as_mut_ptr(),
                polled.len() as libc::nfds_t,
                &WATCH_PERIOD,
                std::ptr::null(),
            )
        };
        if r < 0 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            tracing::warn!("stub death watcher: ppoll failed: {}", Errno::last());
            return;
        }
        if polled[0].revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            return;
        }
        if polled[0].revents & libc::POLLIN != 0 {
            super::common::drain_wake_ups(wake.as_fd());
        }
        for (range, w) in &watched {
            if polled[range.clone()].iter().all(|p| p.revents == 0) {
                continue;
            }
            let Some(space) = w.upgrade() else { continue };
            if space.check_dead() {
                space.hooks().run();
            }
        }
    }
}

/// Whether the process or thread of `pidfd` has exited. A signal through the pidfd
/// is no test: it reaches a zombie too, and dead stubs stay zombies until the sentry
/// lets them be reaped. A pidfd polls readable once its process (or, a thread pidfd,
/// its thread) is gone.
pub(crate) fn pidfd_exited(pidfd: &OwnedFd) -> bool {
    let mut p = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: one valid pollfd and a valid zero timeout; no signal mask.
    let r = unsafe { libc::ppoll(&mut p, 1, &ts, std::ptr::null()) };
    // A failed poll says nothing: the caller asks again later.
    r > 0 && p.revents & (libc::POLLIN | libc::POLLHUP) != 0
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
