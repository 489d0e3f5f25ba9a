//! How application code runs and how it traps back into the sentry.
//!
//! A [`Platform`] creates [`AddressSpace`]s (one per application process) and
//! [`Context`]s (one per application thread). The sentry drives a context with
//! [`Context::switch`]: the application runs until it makes a system call, faults or is
//! interrupted, and the event comes back with the register state. Every backend —
//! ptrace today, systrap and kvm next — implements the same three traits, so nothing
//! above this module knows which one is in use.
//!
//! Threading rule: a context is driven by one host thread for its whole life (the one
//! that created or adopted it), and address-space operations (`map`, `unmap`, `remap`,
//! `protect`) are issued from any host thread that drives a context of that address
//! space (so every thread of a multi-threaded app can mmap). Memory reads and writes
//! may come from any thread.

pub mod common;
mod death_watch;
pub mod ptrace;
mod stub_process;
pub mod systrap;

use std::os::fd::BorrowedFd;
use std::sync::Arc;

use crate::errno::SysResult;

/// The x86-64 general-purpose registers, in the kernel's `user_regs_struct` layout.
pub type Regs = libc::user_regs_struct;

/// The size of a page on x86-64.
pub const PAGE_SIZE: u64 = 4096;

/// What stopped the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The application executed a system call instruction. `orig_rax` holds the
    /// number, `rdi, rsi, rdx, r10, r8, r9` the arguments; `rip` is already past the
    /// instruction. The sentry writes the result to `rax` before switching back.
    Syscall,
    /// A synchronous fault in application code (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
    /// SIGTRAP), with the kernel's `si_code` and faulting address.
    Fault {
        /// Signal number.
        signo: i32,
        /// `si_code` as the host kernel reported it.
        code: i32,
        /// `si_addr`: the faulting data address, or the instruction for SIGILL/SIGFPE.
        addr: u64,
    },
    /// The switch was cut short by [`Interrupter::interrupt`]; nothing happened in the
    /// application that the sentry must handle.
    Interrupted,
}

/// What backs a new mapping.
pub enum Backing<'a> {
    /// Zero-filled anonymous memory.
    Anonymous,
    /// Zero-filled anonymous memory mapped with MAP_NORESERVE: the host commits no
    /// swap space for it (the application asked so).
    AnonymousNoReserve,
    /// A host file (a gofer-donated fd, or the memory file) at a page-aligned offset.
    File {
        /// The host file.
        fd: BorrowedFd<'a>,
        /// Page-aligned offset in the file.
        offset: u64,
    },
}

/// A platform backend.
pub trait Platform: Send + Sync {
    /// The name given to `--platform`.
    fn name(&self) -> &'static str;

    /// The lowest address an application mapping may start at.
    fn min_user_address(&self) -> u64 {
        0x10000
    }

    /// One past the highest address an application mapping may end at; the platform
    /// keeps what lies above for itself.
    fn max_user_address(&self) -> u64;

    /// Creates an empty address space (nothing of the application mapped yet).
    fn new_address_space(&self) -> SysResult<Arc<dyn AddressSpace>>;

    /// Creates the context for a thread running in `space`. It must be called on the
    /// host thread that will drive it; the first context of a space is its initial
    /// thread.
    fn new_context(&self, space: &Arc<dyn AddressSpace>) -> SysResult<Box<dyn Context>>;
}

/// An application address space: where app memory lives and how the sentry edits it.
pub trait AddressSpace: Send + Sync {
    /// Maps `[addr, addr+len)` exactly (MAP_FIXED semantics: it replaces what was there).
    /// `prot` is `PROT_*`; `shared` selects MAP_SHARED over MAP_PRIVATE.
    fn map(
        &self,
        addr: u64,
        len: u64,
        prot: i32,
        shared: bool,
        backing: Backing<'_>,
    ) -> SysResult<()>;

    /// Maps fresh private anonymous memory over each `(addr, len, prot)` of `parts`
    /// (as [`AddressSpace::map`] with [`Backing::Anonymous`], one after the other;
    /// a failure stops there). A platform that edits a space by commands to another
    /// process sends them together (`madvise(MADV_DONTNEED)` of a thread's stack and
    /// its guard page is two).
    fn map_anonymous(&self, parts: &[(u64, u64, i32)]) -> SysResult<()> {
        for &(addr, len, prot) in parts {
            self.map(addr, len, prot, false, Backing::Anonymous)?;
        }
        Ok(())
    }

    /// Removes `[addr, addr+len)`.
    fn unmap(&self, addr: u64, len: u64) -> SysResult<()>;

    /// Moves the pages of `[old, old+old_len)` to `[new, new+new_len)` (host `mremap`
    /// with MREMAP_MAYMOVE|MREMAP_FIXED), keeping their contents; growth is backed like
    /// the original mapping.
    fn remap(&self, old: u64, old_len: u64, new: u64, new_len: u64) -> SysResult<()>;

    /// Changes the protection of `[addr, addr+len)`.
    fn protect(&self, addr: u64, len: u64, prot: i32) -> SysResult<()>;

    /// Copies application memory at `addr` into `buf`, as a user-mode read would:
    /// returns the bytes copied, short at the first page the application cannot read
    /// (unmapped or PROT_NONE); `EFAULT` if none.
    fn read(&self, addr: u64, buf: &mut [u8]) -> SysResult<usize>;

    /// Copies `buf` into application memory at `addr`, as a user-mode write would:
    /// returns the bytes copied, short at the first page the application cannot write
    /// (unmapped, read-only or PROT_NONE); `EFAULT` if none. The sentry has no way
    /// around protections: contents of read-only pages are written before the page
    /// loses its write bit.
    fn write(&self, addr: u64, buf: &[u8]) -> SysResult<usize>;

    /// Asks for `hook` to run, once and on a thread of the platform's own, as soon as
    /// the platform learns that the host process behind this space died (killed from
    /// outside, or by its own program through the stub). The kernel registers the
    /// end of the processes running in the space, so a task waiting inside the sentry
    /// does not go on until its next switch. Platforms that learn of deaths only at a
    /// switch ignore it.
    fn on_death(&self, hook: Box<dyn FnOnce() + Send>) {
        drop(hook);
    }

    /// Whether the host process behind this space is dead (known, or found so now).
    /// A copy into the application's memory that fails because the process was
    /// killed from outside must end the task as that kill did, not as a fault of
    /// the program's own. Platforms with no host process answer `false`.
    fn gone(&self) -> bool {
        false
    }

    /// CPU time the host has charged so far to the stub process that runs this
    /// address space's code, as (user, system); `None` where nothing runs it (test
    /// doubles) or the stub is gone.
    fn cpu_time(&self) -> Option<(std::time::Duration, std::time::Duration)> {
        None
    }

    /// The stub's scheduler runtime (`CPUCLOCK_SCHED`), exact to the nanosecond where
    /// [`AddressSpace::cpu_time`] advances by clock ticks: a program that ran for less
    /// than a tick still sees its CPU clock move. `None` as for `cpu_time`.
    fn cpu_runtime(&self) -> Option<std::time::Duration> {
        None
    }

    /// What the `CPUCLOCK_SCHED` clocks read: [`AddressSpace::cpu_runtime`] where the
    /// platform knows it, else user plus system time.
    fn sched_time(&self) -> Option<std::time::Duration> {
        self.cpu_runtime()
            .or_else(|| self.cpu_time().map(|(u, s)| u + s))
    }

    /// Syscall patching: the address a patched site's table entry jumps to (with
    /// `rax` the system call number and `rcx` the return address, as a `syscall`
    /// instruction leaves them), if the backend has such a trampoline.
    fn syscall_trampoline(&self) -> Option<u64> {
        None
    }

    /// Syscall patching: the 7 bytes at `site` (an instruction, then the `syscall`
    /// at `site + 5`) are about to become a jump to the trampoline. From now on a
    /// fault at `site + 5` (the patch's invalid-opcode byte: a thread that was past
    /// the first instruction, or read half a patch) restarts the thread at `site`,
    /// and a resume at `site + 5` (a restarted system call) runs the call itself.
    fn note_patched_syscall(&self, site: u64) {
        let _ = site;
    }

    /// The pid (in the sandbox's host pid namespace) of the stub process holding
    /// this address space's memory; `None` where no host process does (test doubles).
    fn stub_pid(&self) -> Option<i32> {
        None
    }
}

/// One application thread's execution state on the platform.
pub trait Context: Send {
    /// Runs the application with `regs` until the next event; on return `regs` holds
    /// the application's registers at that event.
    fn switch(&mut self, regs: &mut Regs) -> SysResult<Event>;

    /// Reads the FP/SSE/AVX state in XSAVE layout (at least the 512-byte FXSAVE area).
    fn fp_state(&mut self) -> SysResult<Vec<u8>>;

    /// Replaces the FP/SSE/AVX state with one read by [`Context::fp_state`].
    fn set_fp_state(&mut self, state: &[u8]) -> SysResult<()>;

    /// A handle that other threads use to cut a running [`Context::switch`] short.
    fn interrupter(&self) -> Arc<dyn Interrupter>;

    /// `fork`: makes a copy-on-write copy of this context's address space holding one
    /// thread, for a new process. Called on this context's host thread while the
    /// application is stopped; the child's registers are set by the sentry when it
    /// first switches. Backends without fork support return `ENOSYS`.
    fn fork(&mut self) -> SysResult<(Arc<dyn AddressSpace>, Box<dyn PendingContext>)> {
        Err(crate::errno::Errno::ENOSYS)
    }

    /// A new thread in this context's address space (`clone` with `CLONE_VM`: threads,
    /// and `vfork`/`posix_spawn` children that share memory). Called on this context's
    /// host thread. Backends without thread support return `ENOSYS`.
    fn new_thread(&mut self) -> SysResult<Box<dyn PendingContext>> {
        Err(crate::errno::Errno::ENOSYS)
    }
}

/// A context prepared by one host thread for another ([`Context::fork`],
/// [`Context::new_thread`]).
pub trait PendingContext: Send {
    /// Called on the host thread that will drive the new context, which from then on
    /// follows the threading rule of the module docs.
    fn adopt(self: Box<Self>) -> SysResult<Box<dyn Context>>;
}

/// Makes a context's current or next `switch` return [`Event::Interrupted`] promptly.
pub trait Interrupter: Send + Sync {
    /// Requests the interruption; safe to call from any thread, any number of times.
    fn interrupt(&self);

    /// The context's task must end (SIGKILL, a group exit, another thread's exec):
    /// like [`Interrupter::interrupt`], but it must work whatever the application
    /// did to the host signal mask of its stub. A platform whose stubs can block the
    /// interrupt kills the stub process itself when the context does not come back
    /// in time.
    fn kill(&self) {
        self.interrupt();
    }

    /// The context's task is about to wait for an event inside a system call: a
    /// platform whose stub spins for the sentry's answer may stop spinning now.
    fn blocking(&self) {}
}

/// Rounds `v` up to a page boundary, or `None` on overflow.
pub fn page_round_up(v: u64) -> Option<u64> {
    v.checked_add(PAGE_SIZE - 1).map(|x| x & !(PAGE_SIZE - 1))
}

/// Rounds `v` down to a page boundary.
pub fn page_round_down(v: u64) -> u64 {
    v & !(PAGE_SIZE - 1)
}

/// Creates the platform named by `--platform`. `auto` is systrap where the kernel
/// lets a stub install its seccomp filter, else ptrace (the fallback is logged).
pub fn by_name(name: &str) -> SysResult<Arc<dyn Platform>> {
    match name {
        "auto" => match systrap::SystrapPlatform::new() {
            Ok(p) => Ok(Arc::new(p)),
            Err(e) => {
                tracing::warn!("systrap unavailable ({e}); using ptrace");
                Ok(Arc::new(ptrace::PtracePlatform::new()?))
            }
        },
        "ptrace" => Ok(Arc::new(ptrace::PtracePlatform::new()?)),
        "systrap" => Ok(Arc::new(systrap::SystrapPlatform::new()?)),
        _ => Err(crate::errno::Errno::EINVAL),
    }
}
