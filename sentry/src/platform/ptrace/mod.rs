//! The ptrace platform: application code runs in stub processes traced with
//! `PTRACE_SYSEMU`.
//!
//! # How it works
//! - The stub program is a one-page static ELF generated at start-up ([`stub`]) and
//!   kept in a sealed memfd; each address space is a fresh stub process, started with
//!   fork + `execveat(memfd, "", AT_EMPTY_PATH)`. On start the stub unmaps everything
//!   but its own code page (stack, vdso, vvar are gone), so the sentry lays out the
//!   whole application address space below [`MAX_USER_ADDRESS`]. The region from
//!   `0x7fff_fe00_0000` (code page, then a scratch page) belongs to the platform.
//! - Address-space edits (`map`, `unmap`, `remap`, `protect`) are *remote system
//!   calls*: the stub's registers are saved, rip is pointed at its `syscall; int3`
//!   landing pad, and the stub runs until the `int3`. File mappings first pass the fd
//!   through a socketpair whose other end is fd 0 in the stub (`SCM_RIGHTS`, then a
//!   remote `recvmsg`, `mmap`, `close`).
//! - Memory is copied with `process_vm_readv`/`writev`, falling back to
//!   `/proc/<pid>/mem` (which ignores page protections) for what those refuse.
//! - A context runs the stub with `PTRACE_SYSEMU`: every application system call stops
//!   before it runs and is serviced by the sentry.
//!
//! # Threading rules
//! ptrace requests are only accepted from the tracer, and the tracer of a stub is the
//! host thread that called [`Platform::new_address_space`] for it. That thread must
//! also create the context (`new_context`), drive it (`switch`, `fp_state`), and issue
//! every `map`/`unmap`/`remap`/`protect` of that space; any other thread gets `EPERM`.
//! If the tracer thread exits, the stub is killed (`PR_SET_PDEATHSIG` and
//! `PTRACE_O_EXITKILL`). `read`, `write`, the interrupter and dropping the space work
//! from any thread. Nothing else in the process may `waitpid(-1)`/`wait()` for any
//! child, or it could steal a stub's stops.

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
    /// The generated image, for the addresses of its landing pad and traps.
    image: stub::StubImage,
    /// Every live space this platform made, to find the concrete space behind an
    /// `Arc<dyn AddressSpace>` in `new_context`.
    spaces: Mutex<Vec<Weak<PtraceSpace>>>,
    /// CPUs to pin stub/tracer pairs to.
    cpus: Vec<usize>,
    /// Round-robin position in `cpus`.
    next_cpu: std::sync::atomic::AtomicUsize,
}

impl PtracePlatform {
    /// Prepares the backend (builds the stub program).
    pub fn new() -> SysResult<Self> {
        let image = stub::build();
        let exe = stub::memfd(&image.bytes)?;
        Ok(PtracePlatform {
            exe,
            image,
            spaces: Mutex::new(Vec::new()),
            cpus: sys::allowed_cpus(),
            next_cpu: std::sync::atomic::AtomicUsize::new(0),
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
        let space = Arc::new(PtraceSpace::new(self.exe.as_fd(), &self.image)?);
        let mut spaces = self.spaces.lock().map_err(|_| Errno::EIO)?;
        spaces.retain(|w| w.strong_count() > 0);
        spaces.push(Arc::downgrade(&space));
        Ok(space)
    }

    /// Returns the stub's only thread as a context. One context per space for now: a
    /// second call gets `EINVAL`.
    fn new_context(&self, space: &Arc<dyn AddressSpace>) -> SysResult<Box<dyn Context>> {
        let want = Arc::as_ptr(space) as *const ();
        let found = {
            let spaces = self.spaces.lock().map_err(|_| Errno::EIO)?;
            spaces
                .iter()
                .filter(|w| Weak::as_ptr(w) as *const () == want)
                .find_map(Weak::upgrade)
        };
        // Not one of ours (another platform's space): nothing we can run in it.
        let space = found.ok_or(Errno::EINVAL)?;
        space.check_tracer()?;
        if space
            .context_taken
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(Errno::EINVAL);
        }
        // Each ptrace stop wakes the tracer and each resume wakes the stub; when the
        // two sit on different CPUs every hand-off pays a cross-CPU wake-up, which on
        // this machine class costs ~6x the whole round trip (86 us vs 14 us for
        // getpid). Keep a stub and its tracer thread together, spreading contexts
        // over the allowed CPUs round-robin.
        let cpu = self.cpus[self
            .next_cpu
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % self.cpus.len()];
        for tid in [0, space.pid] {
            if let Err(e) = sys::pin(tid, cpu) {
                tracing::debug!(tid, cpu, "cannot pin the stub next to its tracer: {e}");
            }
        }
        Ok(Box::new(PtraceContext::new(space)))
    }
}
