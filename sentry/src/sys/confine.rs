//! The sentry's own confinement: its seccomp allow-list (its namespaces, root and
//! capabilities: [`super::isolation`]).
//!
//! The allow-list is data: one row per host syscall with the reason the sentry needs
//! it. Anything else kills the sentry (and with it every stub), so a compromised
//! sentry cannot reach the host through a call it never needed. Stubs are forked from
//! the sentry and inherit the filter; application syscalls never reach it, because
//! the platform intercepts them first (ptrace SYSEMU skips seccomp).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// One allowed host syscall and why.
pub struct Allowed {
    /// The syscall number.
    pub nr: i64,
    /// Why the sentry needs it.
    pub why: &'static str,
}

macro_rules! allow {
    ($($name:ident: $why:literal),* $(,)?) => {
        &[$(Allowed { nr: libc::$name, why: $why }),*]
    };
}

/// Every host syscall the sentry may make.
pub const SENTRY_ALLOWED: &[Allowed] = allow![
    // Memory of the sentry itself (allocator, thread stacks).
    SYS_mmap: "allocator and thread stacks; also remote mmap in stubs inherits this filter",
    SYS_munmap: "allocator; stubs' own start-up unmapping",
    SYS_mprotect: "thread stack guard pages; remote mprotect in stubs",
    SYS_mremap: "allocator growth; remote mremap in stubs",
    SYS_madvise: "allocator returning memory",
    SYS_brk: "allocator",
    // Threads and their synchronisation.
    SYS_futex: "mutexes, condition variables, thread join",
    SYS_clone: "task threads; stub processes (fork); remote fork and thread clones in stubs",
    SYS_clone3: "task threads (std tries clone3 first)",
    SYS_set_robust_list: "libc thread start-up",
    SYS_rseq: "libc thread start-up",
    SYS_sigaltstack: "Rust's stack-overflow guard on each thread",
    SYS_rt_sigprocmask: "thread start-up and the stub fork path",
    SYS_rt_sigaction: "Rust runtime signal set-up",
    SYS_rt_sigreturn: "returning from the runtime's signal handlers",
    SYS_sched_yield: "sched_yield on the app's behalf; spin loops",
    SYS_sched_getaffinity: "CPU count at boot",
    SYS_sched_setaffinity: "ptrace: pinning a stub next to its tracer thread (6x faster hand-off); systrap: keeping a stub and its sentry thread on different CPUs for spin hand-offs",
    SYS_prctl: "thread names; PR_SET_PDEATHSIG in new stubs (set, then cleared remotely)",
    SYS_gettid: "the ptrace platform checks which thread is the tracer",
    SYS_getpid: "stub fork path and logging",
    SYS_getppid: "a new stub checks its parent is still alive after PR_SET_PDEATHSIG",
    SYS_exit: "thread exit; remote exit of an ended stub thread",
    SYS_exit_group: "sentry exit",
    // Time.
    SYS_clock_gettime: "app clocks (when the vDSO falls back)",
    SYS_clock_getres: "clock_getres on the app's behalf",
    SYS_clock_nanosleep: "app sleeps park the task thread",
    SYS_nanosleep: "app sleeps park the task thread",
    SYS_getrandom: "AT_RANDOM, getrandom on the app's behalf, hash seeds",
    SYS_sysinfo: "sysinfo on the app's behalf",
    // Files the sentry already holds: stdio, gofer-donated fds, log files.
    SYS_read: "app stdio passthrough",
    SYS_write: "app stdio passthrough, logs",
    SYS_pread64: "reading gofer-donated files",
    SYS_pwrite64: "writing gofer-donated files",
    SYS_fsync: "fsync/fdatasync/msync of a gofer-donated file the application wrote (--overlay=none, bind mounts): durability on the host file",
    SYS_lseek: "log file set-up by the runtime",
    SYS_close: "closing donated fds",
    SYS_fstat: "stat of donated fds and stdio",
    SYS_newfstatat: "libc's fstat goes through fstatat(AT_EMPTY_PATH)",
    SYS_statx: "std's metadata calls on held fds",
    SYS_fcntl: "duplicating stdio at boot, close-on-exec",
    SYS_ioctl: "TCGETS/TIOCGWINSZ on the caller's terminal",
    SYS_sendmsg: "gofer requests; passing fds to stubs",
    SYS_recvmsg: "gofer replies with donated fds",
    SYS_socketpair: "the control channel of each new stub",
    // The ptrace platform.
    SYS_ptrace: "driving stub threads",
    SYS_wait4: "stub stops and exits",
    SYS_waitid: "stub stops and exits",
    SYS_kill: "killing stubs",
    SYS_pidfd_open: "a pidfd per stub and per stub thread, so kills and interrupts never hit a recycled id",
    SYS_pidfd_send_signal: "interrupting a running stub through its pidfd",
    SYS_tgkill: "interrupting a running stub thread (kernels without thread pidfds)",
    SYS_ppoll: "ptrace: a stub thread waiting to be adopted by its new tracer blocks in a remote ppoll on its control socket (stubs inherit this filter)",
    SYS_process_vm_readv: "reading app memory",
    SYS_process_vm_writev: "writing app memory",
    SYS_memfd_create: "the stub executable image; the memory file",
    SYS_ftruncate: "sizing the memory file (tmpfs data), the overlay's memfd-held files (O_TRUNC, truncate) and each systrap stub's shared region",
    SYS_fallocate: "releasing memory-file pages on truncate, unlink and extent reuse",
    SYS_execveat: "starting a stub from its sealed memfd (no host path)",
    SYS_close_range: "a new stub closes every inherited fd",
    SYS_dup2: "a new or forked stub moves its control socket to fd 0",
    SYS_dup3: "a new stub moves its control socket to fd 0",
    SYS_setsid: "a new stub leaves the terminal's session",
    SYS_personality: "a new stub disables address randomisation before its exec",
    // Privilege separation (sys::isolation): a new ptrace stub, forked after this
    // filter is in place, drops to the unprivileged stub identity before its exec.
    SYS_setgroups: "a new stub empties its supplementary groups; only setgroups(0, ..) (see arg_rules)",
    SYS_setresgid: "a new stub takes the stub gid; only to isolation::STUB_GID (see arg_rules)",
    SYS_setresuid: "a new stub takes the stub uid; only to isolation::STUB_UID (see arg_rules)",
    SYS_capset: "a new stub empties its inheritable set (capset can only lower what is held)",
    SYS_openat: "std internals probe files by path (available_parallelism's cgroup quota files; seen when a thread spawn fails under a pids limit): in the empty root they get ENOENT; read-only, only with OPENAT_FLAGS (see arg_rules)",
];

/// The only `openat` flags the sentry may pass once confined: read-only opens of what
/// already exists. No write access, `O_CREAT`, `O_TRUNC`, `O_PATH` or `O_TMPFILE`, so
/// the sentry could neither make nor clobber a host file even if its root were not
/// empty.
pub const OPENAT_FLAGS: i32 = libc::O_CLOEXEC | libc::O_LARGEFILE | libc::O_NOCTTY;

/// Argument rules for the rows that have them (every other row is unconditional).
fn arg_rules(nr: i64) -> Result<Vec<SeccompRule>, String> {
    let err = |e: seccompiler::BackendError| format!("seccomp rule: {e}");
    if nr == libc::SYS_openat {
        let forbidden = !(OPENAT_FLAGS as u32) as u64;
        let c = SeccompCondition::new(
            2,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(forbidden),
            0,
        )
        .map_err(err)?;
        return Ok(vec![SeccompRule::new(vec![c]).map_err(err)?]);
    }
    if nr == libc::SYS_setgroups {
        let c =
            SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, 0).map_err(err)?;
        return Ok(vec![SeccompRule::new(vec![c]).map_err(err)?]);
    }
    let id = match nr {
        libc::SYS_setresuid => Some(super::isolation::STUB_UID),
        libc::SYS_setresgid => Some(super::isolation::STUB_GID),
        _ => None,
    };
    if let Some(id) = id {
        let conds = (0..3)
            .map(|arg| {
                SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, id as u64)
                    .map_err(err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(vec![SeccompRule::new(conds).map_err(err)?]);
    }
    Ok(vec![])
}

/// Builds the sentry's filter: the allow-list above, everything else kills the
/// process.
pub fn sentry_filter() -> Result<BpfProgram, String> {
    build(SENTRY_ALLOWED)
}

fn build(list: &[Allowed]) -> Result<BpfProgram, String> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> = list
        .iter()
        .map(|a| Ok((a.nr, arg_rules(a.nr)?)))
        .collect::<Result<_, String>>()?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .map_err(|e| format!("seccomp filter: {e}"))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| format!("seccomp filter: {e}"))
}

/// Installs the sentry's filter on every thread of the process.
pub fn install_sentry_filter() -> Result<(), String> {
    let prog = sentry_filter()?;
    seccompiler::apply_filter_all_threads(&prog).map_err(|e| format!("seccomp install: {e}"))?;
    tracing::info!(
        syscalls = SENTRY_ALLOWED.len(),
        "sentry seccomp allow-list installed"
    );
    Ok(())
}

/// No core dumps of the sentry: its memory is the sandbox's kernel state and the
/// application's file data, which must never reach a core file or the host's
/// core-dump helper. Call it before the platform starts: the stubs it forks inherit the
/// limit (they run under the sentry's filter, which forbids setting it).
pub fn no_core_dumps() -> Result<(), String> {
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)
        .map_err(|e| format!("setrlimit(RLIMIT_CORE): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_builds_and_list_is_unique() {
        assert!(sentry_filter().is_ok());
        let mut seen = std::collections::HashSet::new();
        for a in SENTRY_ALLOWED {
            assert!(seen.insert(a.nr), "duplicate row {}", a.nr);
            assert!(!a.why.is_empty());
        }
        // Calls the sentry must never be able to make.
        for forbidden in [
            libc::SYS_execve,
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_mount,
            libc::SYS_socket,
            libc::SYS_connect,
            libc::SYS_ptrace + 10_000,
            libc::SYS_open,
            libc::SYS_openat2,
            libc::SYS_pivot_root,
            libc::SYS_umount2,
            libc::SYS_unshare,
        ] {
            assert!(
                !seen.contains(&forbidden),
                "{forbidden} must not be allowed"
            );
        }
    }
}
