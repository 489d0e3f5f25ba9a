//! The ptrace platform: application code runs in stub processes traced with
//! `PTRACE_SYSEMU`.
//!
//! # How it works
//! - The stub program is a one-page static ELF generated at start-up (`stub`) and
//!   kept in a sealed memfd; each new address space is a fresh stub process, started
//!   with fork + `execveat(memfd, "", AT_EMPTY_PATH)`. On start the stub unmaps
//!   everything but its own code page (stack, vdso, vvar are gone), so the sentry lays
//!   out the whole application address space below [`MAX_USER_ADDRESS`]. The region
//!   from `0x7fff_fe00_0000` (code page, then a scratch page) belongs to the platform.
//! - Each application thread runs in its own stub thread, traced by the host thread
//!   that drives its context. Address-space edits (`map`, `unmap`, `remap`,
//!   `protect`) are *remote system calls* on the calling host thread's own stub
//!   thread: its registers are saved, rip is pointed at the `syscall; int3` landing
//!   pad, and it runs until the `int3`. File mappings first pass the fd through a
//!   socketpair whose other end is fd 0 in the stub (`SCM_RIGHTS`, then a remote
//!   `recvmsg`, `mmap`, `close`, all under one per-space lock).
//! - `fork` is a remote `clone(CLONE_PARENT|SIGCHLD)` and a new thread a remote
//!   `clone(CLONE_VM|CLONE_THREAD|...)`; the child (traced from birth through
//!   `PTRACE_O_TRACEFORK`/`TRACECLONE`) is set up by the parent's host thread — a
//!   forked stub gets its own control socket, passed over the shared one and `dup2`ed
//!   onto fd 0 — then *parked*: detached while blocked in a `ppoll` on its control
//!   socket that only a hang-up ends. The adopting host thread takes it over with
//!   `PTRACE_SEIZE` + `PTRACE_INTERRUPT`. Should the sentry die meanwhile, the hang-up
//!   ends the wait and the parked thread runs into an `exit_group`.
//! - Memory is copied with `process_vm_readv`/`writev`, which obey the app's page
//!   protections (the sentry keeps no `/proc`, so nothing reaches around them).
//! - A context runs its stub thread with `PTRACE_SYSEMU`: every application system
//!   call stops before it runs and is serviced by the sentry. Its interrupter signals
//!   exactly that thread (a thread pidfd, or `tgkill` before Linux 6.9).
//! - A stub killed from outside is noticed at once, even while every task of its
//!   process waits inside the sentry: the platform's death watcher
//!   ([`death_watch`](super::death_watch)) polls a thread pidfd per stub thread (the
//!   process pidfd of a traced stub stays unreadable while any traced thread is
//!   unreaped), marks the space dead and runs its death hooks.
//! - Ending a context makes its stub thread `exit` (stopped at its exit event and
//!   detached there, so nothing is left to reap); the last user of a space kills the
//!   whole stub and reaps it.
//!
//! # Threading rules
//! ptrace requests are only accepted from the tracer. The first thread of a space is
//! traced by the host thread that called [`Platform::new_address_space`], which must
//! also create its context (`new_context`); a forked or new thread is traced by the
//! host thread that adopts it. A context must be driven (`switch`, `fp_state`, `fork`,
//! `new_thread`) and dropped on its tracer; `map`/`unmap`/`remap`/`protect` work on
//! any host thread that drives a context of the space, anything else gets `EPERM`. If
//! a tracer thread dies with its context, the stub is killed (`PTRACE_O_EXITKILL`).
//! `read`, `write`, the interrupter and dropping the space work from any thread.
//! Nothing else in the process may `waitpid(-1)`/`wait()` for any child, or it could
//! steal a stub's stops.

mod context;
mod space;
/// The `clone` flags of remote thread clones and forks in ptrace stubs (the sentry's
/// seccomp filter allows exactly these).
mod stub;
mod sys;
#[cfg(test)]
mod tests;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::platform::death_watch::Registry;
use crate::platform::{AddressSpace, Context, Platform};

use context::PtraceContext;
use space::PtraceSpace;

/// One past the highest application address; the gap up to the stub at
/// `0x7fff_fe00_0000` is left unmapped.
pub const MAX_USER_ADDRESS: u64 = 0x7fff_0000_0000;
const _: () = assert!(MAX_USER_ADDRESS < stub::STUB_BASE);

/// The ptrace backend.
pub struct PtracePlatform {
    /// The stub executable (read-only, sealed memfd).
    exe: OwnedFd,
    /// What the spaces share.
    shared: Arc<Shared>,
}

/// What every space of a platform shares.
pub(super) struct Shared {
    /// Address of the landing pad's `syscall`.
    pad: u64,
    /// rip at the landing pad's `int3` stop.
    pad_trap: u64,
    /// rip at the stop that ends a new stub's start-up.
    start_trap: u64,
    /// Where parked threads wait (see [`stub::StubImage::park`]).
    park: u64,
    /// Every live space of the platform, to find the concrete space behind an
    /// `Arc<dyn AddressSpace>` in `new_context`, watched for deaths.
    spaces: Arc<Registry<PtraceSpace>>,
    /// CPUs to pin stub/tracer pairs to.
    cpus: Vec<usize>,
    /// Round-robin position in `cpus`.
    next_cpu: AtomicUsize,
}

impl Shared {
    /// Records a new space (the death watcher takes it up).
    fn register(&self, space: &Arc<PtraceSpace>) {
        self.spaces.register(space);
    }

    /// Pins the calling host thread and stub thread `tid`, which it traces, to the
    /// same CPU. Each ptrace stop wakes the tracer and each resume wakes the stub;
    /// when the two sit on different CPUs every hand-off pays a cross-CPU wake-up,
    /// which on this machine class costs ~6x the whole round trip (86 us vs 14 us for
    /// getpid). New pairs are spread over the allowed CPUs round-robin; a host thread
    /// already pinned (it drove another context before, e.g. before an exec) keeps
    /// its CPU, as moving a thread costs a wait on a busy run queue.
    pub(super) fn pin_with(&self, tid: i32) {
        let current = sys::allowed_cpus();
        let cpu = match current[..] {
            [cpu] if self.cpus.len() > 1 && self.cpus.contains(&cpu) => cpu,
            _ => self.cpus[self.next_cpu.fetch_add(1, Ordering::Relaxed) % self.cpus.len()],
        };
        for t in [0, tid] {
            if let Err(e) = sys::pin(t, cpu) {
                tracing::debug!(tid = t, cpu, "cannot pin the stub next to its tracer: {e}");
            }
        }
    }
}

impl PtracePlatform {
    /// Prepares the backend (builds the stub program).
    pub fn new() -> SysResult<Self> {
        let image = stub::build();
        let exe = stub::memfd(&image.bytes)?;
        Ok(PtracePlatform {
            exe,
            shared: Arc::new(Shared {
                pad: image.pad,
                pad_trap: image.pad_trap,
                start_trap: image.start_trap,
                park: image.park,
                spaces: Registry::new("ptrace-deaths")?,
                cpus: sys::allowed_cpus(),
                next_cpu: AtomicUsize::new(0),
            }),
        })
    }
}

impl Platform for PtracePlatform {
    fn name(&self) -> &'static str {
        "ptrace"
    }

    fn max_user_address(&self) -> u64 {
        MAX_USER_ADDRESS
    }

    /// Starts a stub, traced by the calling thread (see the module's threading rules).
    fn new_address_space(&self) -> SysResult<Arc<dyn AddressSpace>> {
        let space = Arc::new(PtraceSpace::new(self.exe.as_fd(), &self.shared)?);
        self.shared.register(&space);
        Ok(space)
    }

    /// Returns the stub's first thread as a context, on the thread that created the
    /// space. Further threads come from [`Context::new_thread`]: a second call gets
    /// `EINVAL`.
    fn new_context(&self, space: &Arc<dyn AddressSpace>) -> SysResult<Box<dyn Context>> {
        let found = self.shared.spaces.find(Arc::as_ptr(space) as *const ());
        // Not one of ours (another platform's space): nothing we can run in it.
        let space = found.ok_or(Errno::EINVAL)?;
        if space.stub_tid()? != space.pid {
            return Err(Errno::EINVAL);
        }
        if space.context_taken.swap(true, Ordering::SeqCst) {
            return Err(Errno::EINVAL);
        }
        let pid = space.pid;
        self.shared.pin_with(pid);
        Ok(Box::new(PtraceContext::new(space, pid)?))
    }
}
