//! The systrap platform: application system calls trap with seccomp
//! (`SECCOMP_RET_TRAP`) into a signal handler inside the stub, which hands them to
//! the sentry through memory shared by both processes. No ptrace anywhere.
//!
//! # How it works
//! - A *zygote* process is started from the generated stub ELF ([`stub`]) when the
//!   platform is created, before the sentry installs its own seccomp filter (a filter
//!   is inherited and its KILL would win over the stub's TRAP). Each new address
//!   space is a fork of the zygote: the sentry sends it a fresh *region* memfd and a
//!   control socket; the child maps the region MAP_SHARED at [`stub::REGION`], makes
//!   its tail the alternate signal stack, installs one handler for every signal and
//!   its seccomp filter, and reports in with a `ud2`.
//! - Every signal (a trapped system call's SIGSYS, a fault, the interrupt signal) runs
//!   the handler on that alternate stack, so the kernel's frame — registers, FP state,
//!   siginfo — lies in the region, which the sentry maps too. The handler publishes
//!   the frame pointers, sets the state word to PARKED and waits; the sentry reads and
//!   edits the frame in place and sets RESUME (the handler returns through
//!   `rt_sigreturn`, loading the edited registers) or REQUEST (the handler executes
//!   the system call in the region's request slots — mmap, munmap, mprotect, mremap,
//!   recvmsg of a file's fd, close, arch_prctl — and parks again).
//! - Each side spins on the state word for a bounded time, then sleeps on it with a
//!   shared futex (the word is in a MAP_SHARED memfd page, so both processes' futex
//!   keys agree); whoever flips the word wakes the other only if it sleeps.
//! - The stub's filter allows a short list of system calls from its own code page
//!   only; from anywhere else every call traps.
//! - Spin hand-offs need both sides on a CPU at once, so each context's driving
//!   thread and its stub are pinned to two different CPUs (round-robin); with one
//!   CPU nobody spins. Measured on the 2-CPU development machine (shared with other
//!   builds): getpid round trip 3.8-9.8 us (ptrace: 12.6-15.2 us in the same
//!   minutes); an idle sandbox uses no CPU (both sides asleep on the futex).
//!
//! # Threading rules
//! Any host thread may drive a context or edit a space; the region's lock serializes
//! them, so a `map` from another thread waits until a running `switch` returns. One
//! context per space (no `fork`/`new_thread` yet).
//!
//! # Limitations
//! The application can jump into the stub's code page and make the allowed host
//! calls itself (on its own address space and fds only: the stub holds nothing but
//! its control socket), and can scribble over its region (the sentry validates every
//! pointer it reads there). A SIGSTOP sent to a stub from outside stops it until
//! SIGCONT.

mod context;
mod space;
mod stub;
mod sys;
#[cfg(test)]
mod tests;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, Weak};

use crate::errno::{Errno, SysResult};
use crate::platform::{AddressSpace, Context, Platform};

use context::SystrapContext;
use space::SystrapSpace;

/// One past the highest application address (as on the ptrace platform).
pub const MAX_USER_ADDRESS: u64 = 0x7fff_0000_0000;
const _: () = assert!(MAX_USER_ADDRESS < stub::STUB_BASE);

/// The systrap backend.
pub struct SystrapPlatform {
    /// The sentry's end of the zygote's control socket.
    zygote: Mutex<OwnedFd>,
    /// A pidfd of the zygote.
    zygote_pidfd: OwnedFd,
    /// The zygote's pid (our child: reaped on drop).
    zygote_pid: i32,
    /// Every live space this platform made, to find the concrete space behind an
    /// `Arc<dyn AddressSpace>` in `new_context`.
    spaces: Mutex<Vec<Weak<SystrapSpace>>>,
    /// CPUs to spread sentry-thread/stub pairs over.
    cpus: Vec<usize>,
    /// Round-robin position in `cpus`.
    next_cpu: std::sync::atomic::AtomicUsize,
}

impl SystrapPlatform {
    /// Builds the stub program and starts the zygote. Must run before the sentry's
    /// seccomp filter is installed; the zygote dies with the calling thread.
    pub fn new() -> SysResult<Self> {
        let exe = stub::memfd(&stub::build())?;
        let (control, zygote_end) = space::socketpair()?;
        let pid = stub::spawn_zygote(exe.as_fd(), zygote_end.as_fd())?;
        drop(zygote_end);
        drop(exe);
        let zygote_pidfd = match sys::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                // SAFETY: `pid` is our unreaped child, so the number is still its.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                reap(pid);
                return Err(e);
            }
        };
        Ok(SystrapPlatform {
            zygote: Mutex::new(control),
            zygote_pidfd,
            zygote_pid: pid,
            spaces: Mutex::new(Vec::new()),
            cpus: sys::allowed_cpus(),
            // Sandboxes start their round-robin at different places, so two of them
            // on two CPUs do not put both sentries on one CPU and both stubs on the
            // other.
            next_cpu: std::sync::atomic::AtomicUsize::new(std::process::id() as usize),
        })
    }
}

/// Waits for our child `pid` to be gone.
fn reap(pid: i32) {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid int for the kernel to write.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if r >= 0 || sys::last_errno() != Errno::EINTR {
            return;
        }
    }
}

impl Drop for SystrapPlatform {
    fn drop(&mut self) {
        // Closing its socket ends the zygote's loop; the kill covers a zygote stuck
        // anywhere else. Stubs die with it (PR_SET_PDEATHSIG).
        let _ = sys::pidfd_signal(&self.zygote_pidfd, libc::SIGKILL);
        reap(self.zygote_pid);
    }
}

impl Platform for SystrapPlatform {
    fn name(&self) -> &'static str {
        "systrap"
    }

    fn max_user_address(&self) -> u64 {
        MAX_USER_ADDRESS
    }

    fn new_address_space(&self) -> SysResult<Arc<dyn AddressSpace>> {
        let space = {
            let zygote = self.zygote.lock().map_err(|_| Errno::EIO)?;
            let alive = || sys::pidfd_signal(&self.zygote_pidfd, 0).is_ok();
            Arc::new(SystrapSpace::new(
                zygote.as_fd(),
                alive,
                self.cpus.len() > 1,
            )?)
        };
        let mut spaces = self.spaces.lock().map_err(|_| Errno::EIO)?;
        spaces.retain(|w| w.strong_count() > 0);
        spaces.push(Arc::downgrade(&space));
        Ok(space)
    }

    /// Returns the stub's only thread as a context; a second call gets `EINVAL`.
    fn new_context(&self, space: &Arc<dyn AddressSpace>) -> SysResult<Box<dyn Context>> {
        let want = Arc::as_ptr(space) as *const ();
        let found = {
            let spaces = self.spaces.lock().map_err(|_| Errno::EIO)?;
            spaces
                .iter()
                .filter(|w| Weak::as_ptr(w) as *const () == want)
                .find_map(Weak::upgrade)
        };
        let space = found.ok_or(Errno::EINVAL)?;
        if space
            .context_taken
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(Errno::EINVAL);
        }
        // Spin hand-offs need both sides running at once: keep the driving thread
        // and its stub on different CPUs, so the scheduler never stacks them on one
        // (measured: 8-12 us a getpid pinned apart, 12-19 us unpinned, same minutes).
        if self.cpus.len() > 1 {
            let i = self
                .next_cpu
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let n = self.cpus.len();
            for (tid, cpu) in [(0, self.cpus[i % n]), (space.pid, self.cpus[(i + 1) % n])] {
                if let Err(e) = sys::pin(tid, cpu) {
                    tracing::debug!(tid, cpu, "cannot pin a systrap context: {e}");
                }
            }
        }
        Ok(Box::new(SystrapContext::new(space)))
    }
}
