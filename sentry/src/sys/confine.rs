//! The sentry's seccomp allow-list (its namespaces and root are `sys::isolation`).
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

use super::isolation::{STUB_GID, STUB_UID};
use crate::sys::host::{PIDFD_SIGNAL_THREAD, PIDFD_THREAD};

/// Which platform a row is for. The ptrace platform forks its stubs from the sentry
/// after confinement, so they run under the sentry's filter, and so do the remote
/// system calls the sentry makes them execute (mmap of application code with
/// `PROT_EXEC`, `clone`, `dup2`, `ppoll`, ...). Systrap forks its zygote before the
/// filter (`platform::by_name` runs before `install_sentry_filter`) and every stub
/// from it, so under systrap the sentry gets none of the ptrace rows and a stricter
/// `mmap`/`mprotect`/`clone`.
///
/// A stricter filter layered on the sentry's own threads under ptrace is not sound:
/// stubs are forked by whichever task thread starts an address space (`exec`), and a
/// fork inherits the forking thread's filters, so every thread that may fork a stub
/// must keep the stub-compatible filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum On {
    /// Both platforms.
    Both,
    /// Only under the ptrace platform (its stubs run under this filter).
    Ptrace,
    /// Only under systrap (a stricter form of a row the ptrace stubs need wider).
    Systrap,
}

/// One comparison of a system call argument (by index, 0..=5).
#[derive(Clone, Copy, Debug)]
pub enum Cmp {
    /// The argument's low 32 bits (an `int` argument) equal the value.
    Eq(u8, u32),
    /// The whole 64-bit argument (a `long` or pointer) equals the value.
    Eq64(u8, u64),
    /// The argument's low 32 bits have no bit outside the mask.
    Within(u8, u32),
    /// The whole 64-bit argument has no bit outside the mask.
    Within64(u8, u64),
    /// The argument's low 32 bits, masked, equal the value.
    Masked(u8, u32, u32),
    /// The argument's low 32 bits, unsigned, lie in `lo..=hi`.
    Range(u8, u32, u32),
    /// The argument's low 32 bits equal the sentry's own pid (known when the filter is
    /// built; a forked stub has another pid, so it never matches there).
    OwnPid(u8),
    /// The argument's low 32 bits equal the sentry's `personality` at build time with
    /// the given flags added.
    Personality(u8, u32),
    /// The argument's low 32 bits equal the fd of the `--network=sandbox` packet
    /// socket (known when the filter is built; without one, -1, which no call passes
    /// as a descriptor that works).
    PacketFd(u8),
    /// The argument's low 32 bits equal the fd of the `--network=host` view's netlink
    /// route socket (`sys::hostnet::open_view`, opened before the filter is built;
    /// without one, -1).
    HostViewFd(u8),
    /// The argument's low 32 bits equal the root descriptor of one of the host tmpfs
    /// instances made at boot (`sys::host_tmpfs`; known when the filter is built,
    /// after which no instance is made). Without any, -1.
    HostTmpfsDir(u8),
    /// The argument's low 32 bits lie in the run of consecutive descriptors of the
    /// spare host tmpfs instances made at confinement (`sys::host_tmpfs::spare_fds`,
    /// kept open for the sentry's life, so no other file ever has those numbers).
    /// Without spares, -1 only.
    HostTmpfsSpare(u8),
}

/// How a row's arguments are checked.
#[derive(Clone, Copy, Debug)]
pub enum Args {
    /// Any arguments.
    Any,
    /// Allowed when every comparison of at least one alternative holds.
    OneOf(&'static [&'static [Cmp]]),
    /// Never runs: fails with this errno instead (no kill).
    Fail(i32),
}

/// One allowed host syscall and why.
pub struct Allowed {
    /// The syscall number.
    pub nr: i64,
    /// Why the sentry needs it (and why its argument rule is what it is).
    pub why: &'static str,
    /// The arguments it may take.
    pub args: Args,
    /// The platform it is for.
    pub on: On,
}

macro_rules! allow {
    ($($(#[$on:ident])? $name:ident $(($args:expr))?: $why:literal),* $(,)?) => {
        &[$(Allowed {
            nr: libc::$name,
            why: $why,
            args: allow!(@args $($args)?),
            on: allow!(@on $($on)?),
        }),*]
    };
    (@args) => { Args::Any };
    (@args $a:expr) => { $a };
    (@on) => { On::Both };
    (@on ptrace) => { On::Ptrace };
    (@on systrap) => { On::Systrap };
}

const fn one_of(alts: &'static [&'static [Cmp]]) -> Args {
    Args::OneOf(alts)
}

/// Highest value of a positive pid: kill(-1) and process-group kills (pid <= 0) are
/// refused.
const PID_MAX: u32 = i32::MAX as u32;
/// glibc's `pthread_create` flags (std threads), for `clone` once `clone3` fails.
pub const GLIBC_THREAD_FLAGS: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM
    | libc::CLONE_SETTLS
    | libc::CLONE_PARENT_SETTID
    | libc::CLONE_CHILD_CLEARTID) as u64;
/// glibc's `fork()` flags: how the ptrace platform forks a new stub.
pub const GLIBC_FORK_FLAGS: u64 =
    (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID | libc::SIGCHLD) as u64;
/// The ptrace platform's options: set at start, on adoption (`PTRACE_SEIZE`), and with
/// `PTRACE_O_TRACEEXIT` when a stub thread is made to exit. Never
/// `PTRACE_O_SUSPEND_SECCOMP`, which would let a stub run outside this filter.
const PTRACE_OPTIONS: u32 = (libc::PTRACE_O_TRACESYSGOOD
    | libc::PTRACE_O_EXITKILL
    | libc::PTRACE_O_TRACEFORK
    | libc::PTRACE_O_TRACECLONE) as u32;
/// The platforms' interrupt signal, as the filter compares it.
/// The signal both platforms send to interrupt a running stub thread (the filter
/// allows exactly this one for it).
pub(crate) const INTERRUPT_SIGNAL: i32 = libc::SIGUSR2;

/// `clone` flags of a new ptrace stub thread: a thread of the same stub process.
pub(crate) const PTRACE_STUB_THREAD_FLAGS: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM) as u64;
/// `clone` flags of a forked ptrace stub. CLONE_PARENT makes it a child of the
/// sentry, like every stub: its exit is reported to (and reaped by) the sentry,
/// never left as a zombie in a stub that does not wait.
pub(crate) const PTRACE_STUB_FORK_FLAGS: u64 = (libc::CLONE_PARENT | libc::SIGCHLD) as u64;
/// `PTRACE_GET_SYSCALL_INFO` (not in every libc).
const PTRACE_GET_SYSCALL_INFO: u64 = 0x420e;
/// Register-set notes the ptrace platform reads and writes (FXSAVE, XSAVE).
const NT_PRFPREG: u64 = 2;
const NT_X86_XSTATE: u64 = 0x202;
/// `mmap` flags the sentry and its ptrace stubs use: never `MAP_HUGETLB`,
/// `MAP_GROWSDOWN`, `MAP_32BIT`, `MAP_SYNC` or `MAP_UNINITIALIZED`.
const MMAP_FLAGS: u32 = (libc::MAP_SHARED
    | libc::MAP_PRIVATE
    | libc::MAP_FIXED
    | libc::MAP_ANONYMOUS
    | libc::MAP_NORESERVE
    | libc::MAP_STACK
    | libc::MAP_POPULATE
    | libc::MAP_FIXED_NOREPLACE) as u32;
/// The futex command bits without `FUTEX_PRIVATE_FLAG` and `FUTEX_CLOCK_REALTIME`.
const FUTEX_CMD: u32 = !((libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME) as u32);
/// Seccomp user-notification ioctls (`linux/seccomp.h`).
pub const SECCOMP_IOCTL_NOTIF_RECV: u32 = 0xc050_2100;
/// See [`SECCOMP_IOCTL_NOTIF_RECV`].
pub const SECCOMP_IOCTL_NOTIF_SEND: u32 = 0xc018_2101;
/// See [`SECCOMP_IOCTL_NOTIF_RECV`].
pub const SECCOMP_IOCTL_NOTIF_ID_VALID: u32 = 0x4008_2102;
/// See [`SECCOMP_IOCTL_NOTIF_RECV`].
pub const SECCOMP_IOCTL_NOTIF_SET_FLAGS: u32 = 0x4008_2104;

/// Every host syscall the sentry may make, with the arguments it may pass.
pub const SENTRY_ALLOWED: &[Allowed] = allow![
    // Memory of the sentry itself (allocator, thread stacks).
    #[systrap] SYS_mmap(one_of(&[&[Cmp::Within(2, (libc::PROT_READ | libc::PROT_WRITE) as u32), Cmp::Within(3, MMAP_FLAGS)]])): "allocator, thread stacks, the memory file, stub regions: never executable (systrap stubs map application code themselves), no MAP_HUGETLB/GROWSDOWN/32BIT",
    #[ptrace] SYS_mmap(one_of(&[&[Cmp::Within(3, MMAP_FLAGS)]])): "allocator, thread stacks, the memory file; ptrace stubs run under this filter and map application code with PROT_EXEC by remote mmap, so PROT_EXEC cannot be refused here; no MAP_HUGETLB/GROWSDOWN/32BIT",
    SYS_munmap: "allocator; stubs' own start-up unmapping",
    #[systrap] SYS_mprotect(one_of(&[&[Cmp::Within(2, (libc::PROT_READ | libc::PROT_WRITE) as u32)]])): "thread stack guard pages: never executable",
    #[ptrace] SYS_mprotect: "thread stack guard pages; remote mprotect of application memory (any protection, PROT_EXEC included) in ptrace stubs, which run under this filter",
    SYS_mremap(one_of(&[&[Cmp::Within(3, (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u32)]])): "allocator growth; remote mremap in stubs: MREMAP_MAYMOVE|MREMAP_FIXED only (no MREMAP_DONTUNMAP)",
    SYS_madvise(one_of(&[&[Cmp::Eq(2, libc::MADV_DONTNEED as u32)], &[Cmp::Eq(2, libc::MADV_FREE as u32)], &[Cmp::Eq(2, libc::MADV_REMOVE as u32)]])): "allocator and thread stacks returning memory (DONTNEED, FREE; REMOVE for memory-file pages): never MADV_HWPOISON/SOFT_OFFLINE, which take host pages away",
    SYS_brk: "allocator",
    // Threads and their synchronisation.
    SYS_futex(one_of(&[&[Cmp::Masked(1, FUTEX_CMD, libc::FUTEX_WAIT as u32)], &[Cmp::Masked(1, FUTEX_CMD, libc::FUTEX_WAKE as u32)], &[Cmp::Masked(1, FUTEX_CMD, libc::FUTEX_WAIT_BITSET as u32)], &[Cmp::Masked(1, FUTEX_CMD, libc::FUTEX_WAKE_BITSET as u32)]])): "mutexes, condition variables, thread join, systrap's shared state words: WAIT/WAKE(_BITSET) only, no requeue, PI or WAKE_OP",
    #[systrap] SYS_clone(one_of(&[&[Cmp::Eq64(0, GLIBC_THREAD_FLAGS)]])): "task threads: glibc's pthread flags exactly (systrap forks nothing once confined)",
    #[ptrace] SYS_clone(one_of(&[&[Cmp::Eq64(0, GLIBC_THREAD_FLAGS)], &[Cmp::Eq64(0, GLIBC_FORK_FLAGS)], &[Cmp::Eq64(0, PTRACE_STUB_THREAD_FLAGS)], &[Cmp::Eq64(0, PTRACE_STUB_FORK_FLAGS)]])): "task threads (glibc's pthread flags); a new stub (glibc's fork flags); remote thread clone and fork in stubs: those four flag sets exactly, so no namespace, CLONE_NEWUSER or CLONE_PTRACE",
    SYS_clone3(Args::Fail(libc::ENOSYS)): "refused with ENOSYS: its flags sit in memory where seccomp cannot read them; glibc then falls back to clone, whose flags are checked",
    SYS_set_robust_list: "libc thread start-up",
    SYS_rseq: "libc thread start-up",
    SYS_sigaltstack: "Rust's stack-overflow guard on each thread",
    SYS_rt_sigprocmask: "thread start-up and the stub fork path",
    SYS_rt_sigaction: "Rust runtime signal set-up",
    SYS_rt_sigreturn: "returning from the runtime's signal handlers",
    SYS_restart_syscall: "the kernel resumes an interrupted clock_nanosleep/futex wait through it after a stop (SIGSTOP/SIGCONT, a tracer's attach): seen killing a task thread in a main-branch run",
    SYS_sched_yield: "sched_yield on the app's behalf; spin loops",
    SYS_membarrier(one_of(&[&[Cmp::Eq(0, 1 /* MEMBARRIER_CMD_GLOBAL */), Cmp::Eq(1, 0)]])): "membarrier on the app's behalf: MEMBARRIER_CMD_GLOBAL with no flags only (every host thread, the app's stubs included, passes a full barrier; nothing else changes)",
    SYS_sched_getaffinity: "CPU count at boot",
    SYS_sched_setaffinity: "ptrace: pinning a stub next to its tracer thread (6x faster hand-off); systrap: keeping a stub and its sentry thread on different CPUs for spin hand-offs",
    #[systrap] SYS_prctl(one_of(&[&[Cmp::Eq(0, libc::PR_SET_NAME as u32)]])): "thread names only",
    #[ptrace] SYS_prctl(one_of(&[&[Cmp::Eq(0, libc::PR_SET_NAME as u32)], &[Cmp::Eq(0, libc::PR_SET_PDEATHSIG as u32), Cmp::Eq(1, libc::SIGKILL as u32)], &[Cmp::Eq(0, libc::PR_SET_PDEATHSIG as u32), Cmp::Eq(1, 0)], &[Cmp::Eq(0, libc::PR_CAPBSET_DROP as u32), Cmp::Range(1, 0, 63)], &[Cmp::Eq(0, libc::PR_SET_NO_NEW_PRIVS as u32), Cmp::Eq(1, 1)]])): "thread names; PR_SET_PDEATHSIG(SIGKILL) in a new stub, cleared (0) remotely once traced; a new stub empties its bounding set (PR_CAPBSET_DROP) and sets no_new_privs (sys::isolation::drop_privileges_raw); nothing else (no PR_SET_DUMPABLE, PR_SET_SECCOMP, PR_SET_PTRACER...)",
    SYS_gettid: "the ptrace platform checks which thread is the tracer",
    SYS_getpid: "stub fork path, abort and logging",
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
    SYS_lseek: "log file set-up by the runtime; the results of systrap syscall threads (the offset of their command memfd)",
    SYS_close: "closing donated fds",
    SYS_fstat: "stat of donated fds and stdio",
    SYS_newfstatat: "libc's fstat goes through fstatat(AT_EMPTY_PATH)",
    SYS_statx: "std's metadata calls on held fds",
    SYS_fcntl(one_of(&[&[Cmp::Eq(1, libc::F_GETFD as u32)], &[Cmp::Eq(1, libc::F_SETFD as u32)], &[Cmp::Eq(1, libc::F_GETFL as u32)], &[Cmp::Eq(1, libc::F_DUPFD_CLOEXEC as u32)], &[Cmp::Eq(1, libc::F_ADD_SEALS as u32)], &[Cmp::Eq(1, libc::F_GET_SEALS as u32)]])): "duplicating stdio at boot and a stub's fds (F_DUPFD_CLOEXEC), close-on-exec (F_GETFD/F_SETFD; std's debug check before close), sealing memfds: no F_SETOWN/F_SETSIG (SIGIO to any host process), no locks or leases",
    SYS_ioctl(one_of(&[&[Cmp::Eq(1, libc::TCGETS as u32)], &[Cmp::Eq(1, libc::TIOCGWINSZ as u32)], &[Cmp::Eq(1, SECCOMP_IOCTL_NOTIF_RECV)], &[Cmp::Eq(1, SECCOMP_IOCTL_NOTIF_SEND)], &[Cmp::Eq(1, SECCOMP_IOCTL_NOTIF_ID_VALID)], &[Cmp::Eq(1, SECCOMP_IOCTL_NOTIF_SET_FLAGS)]])): "TCGETS/TIOCGWINSZ on the caller's terminal (the only host ioctls, sys::host::tty_query); systrap: request gate (seccomp user notification): NOTIF_RECV/SEND/ID_VALID/SET_FLAGS. No TIOCSTI, TIOCSCTTY or any other request",
    SYS_sendmsg(one_of(&[&[Cmp::Within(2, (libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) as u32)]])): "gofer requests; passing fds to stubs: MSG_NOSIGNAL (and MSG_DONTWAIT) only",
    SYS_recvmsg(one_of(&[&[Cmp::Within(2, (libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT | libc::MSG_PEEK | libc::MSG_TRUNC) as u32)]])): "gofer replies with donated fds (MSG_CMSG_CLOEXEC); remote recvmsg in ptrace stubs (MSG_DONTWAIT|MSG_CMSG_CLOEXEC)",
    SYS_recvfrom(one_of(&[&[Cmp::PacketFd(0), Cmp::Eq(3, crate::sys::packet::RECV_FLAGS as u32)]])): "--network=sandbox: frames from the pod's interface (sys::packet): only on the packet socket the runtime opened, MSG_DONTWAIT|MSG_TRUNC only",
    SYS_sendto(one_of(&[&[Cmp::PacketFd(0), Cmp::Eq(3, crate::sys::packet::SEND_FLAGS as u32), Cmp::Eq64(4, 0)]])): "--network=sandbox: frames to the pod's interface (sys::packet): only on the packet socket the runtime opened (bound to that interface), MSG_DONTWAIT, no destination address",
    SYS_socketpair(one_of(&[&[Cmp::Eq(0, libc::AF_UNIX as u32)]])): "the control channel of each new stub: AF_UNIX only (no network socket can be made)",
    // The platforms.
    #[ptrace] SYS_ptrace(one_of(&[
        &[Cmp::Eq64(0, libc::PTRACE_TRACEME as u64)],
        &[Cmp::Eq64(0, libc::PTRACE_CONT as u64), Cmp::Eq64(3, 0)],
        &[Cmp::Eq64(0, libc::PTRACE_SYSEMU as u64), Cmp::Eq64(3, 0)],
        &[Cmp::Eq64(0, libc::PTRACE_DETACH as u64), Cmp::Eq64(3, 0)],
        &[Cmp::Eq64(0, libc::PTRACE_INTERRUPT as u64)],
        &[Cmp::Eq64(0, libc::PTRACE_SEIZE as u64), Cmp::Eq64(3, PTRACE_OPTIONS as u64)],
        &[Cmp::Eq64(0, libc::PTRACE_SETOPTIONS as u64), Cmp::Eq64(3, PTRACE_OPTIONS as u64)],
        &[Cmp::Eq64(0, libc::PTRACE_SETOPTIONS as u64), Cmp::Eq64(3, (PTRACE_OPTIONS | libc::PTRACE_O_TRACEEXIT as u32) as u64)],
        &[Cmp::Eq64(0, libc::PTRACE_GETREGS as u64)],
        &[Cmp::Eq64(0, libc::PTRACE_SETREGS as u64)],
        &[Cmp::Eq64(0, libc::PTRACE_GETREGSET as u64), Cmp::Eq64(2, NT_PRFPREG)],
        &[Cmp::Eq64(0, libc::PTRACE_GETREGSET as u64), Cmp::Eq64(2, NT_X86_XSTATE)],
        &[Cmp::Eq64(0, libc::PTRACE_SETREGSET as u64), Cmp::Eq64(2, NT_PRFPREG)],
        &[Cmp::Eq64(0, libc::PTRACE_SETREGSET as u64), Cmp::Eq64(2, NT_X86_XSTATE)],
        &[Cmp::Eq64(0, libc::PTRACE_GETSIGINFO as u64)],
        &[Cmp::Eq64(0, libc::PTRACE_GETEVENTMSG as u64)],
        &[Cmp::Eq64(0, PTRACE_GET_SYSCALL_INFO)],
    ])): "driving stub threads: the requests ptrace::sys makes, resumed without injecting a signal (data 0), options exactly the platform's (never PTRACE_O_SUSPEND_SECCOMP), register sets FXSAVE/XSAVE only; no PEEK/POKE, ATTACH or PTRACE_SECCOMP_GET_FILTER",
    SYS_wait4: "stub stops and exits",
    SYS_waitid: "stub stops and exits",
    SYS_kill(one_of(&[&[Cmp::Range(0, 1, PID_MAX), Cmp::Eq(1, libc::SIGKILL as u32)]])): "killing a stub that failed to start: SIGKILL to one positive pid only (no kill(-1), no process groups)",
    SYS_pidfd_open(one_of(&[&[Cmp::Within(1, PIDFD_THREAD | libc::O_NONBLOCK as u32)]])): "a pidfd per stub and per stub thread, so kills and interrupts never hit a recycled id",
    SYS_pidfd_send_signal(one_of(&[
        &[Cmp::Eq(1, libc::SIGKILL as u32), Cmp::Eq64(2, 0), Cmp::Within(3, PIDFD_SIGNAL_THREAD)],
        &[Cmp::Eq(1, INTERRUPT_SIGNAL as u32), Cmp::Eq64(2, 0), Cmp::Within(3, PIDFD_SIGNAL_THREAD)],
        &[Cmp::Eq(1, 0), Cmp::Eq64(2, 0), Cmp::Within(3, PIDFD_SIGNAL_THREAD)],
    ])): "killing a stub (SIGKILL), interrupting a running stub thread (the platforms' SIGUSR2), liveness probes (0); no forged siginfo (NULL only)",
    SYS_tgkill(one_of(&[
        &[Cmp::Range(0, 1, PID_MAX), Cmp::Range(1, 1, PID_MAX), Cmp::Eq(2, INTERRUPT_SIGNAL as u32)],
        &[Cmp::OwnPid(0), Cmp::Eq(2, libc::SIGABRT as u32)],
    ])): "interrupting a running stub thread (kernels without thread pidfds): SIGUSR2 only; SIGABRT to the sentry itself (abort after a double panic)",
    SYS_ppoll: "systrap: the stub death watcher waits on every stub's pidfd; ptrace: a stub thread waiting to be adopted by its new tracer blocks in a remote ppoll on its control socket (stubs inherit this filter)",
    SYS_process_vm_readv(one_of(&[&[Cmp::Range(0, 1, PID_MAX), Cmp::Eq64(2, 1), Cmp::Eq64(4, 1), Cmp::Eq64(5, 0)]])): "reading app memory: one local and one remote iovec (platform::common), flags 0",
    SYS_process_vm_writev(one_of(&[&[Cmp::Range(0, 1, PID_MAX), Cmp::Eq64(2, 1), Cmp::Eq64(4, 1), Cmp::Eq64(5, 0)]])): "writing app memory: one local and one remote iovec (platform::common), flags 0",
    SYS_memfd_create(one_of(&[&[Cmp::Eq(1, libc::MFD_CLOEXEC)], &[Cmp::Eq(1, libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)], &[Cmp::Eq(1, libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING | libc::MFD_EXEC)]])): "the memory file, memfd-held overlay files, systrap regions (MFD_CLOEXEC); the sealed stub image: no MFD_HUGETLB",
    SYS_ftruncate: "sizing the memory file (tmpfs data), the overlay's memfd-held files (O_TRUNC, truncate) and each systrap stub's shared region",
    SYS_fallocate(one_of(&[&[Cmp::Eq(1, (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE) as u32)], &[Cmp::Eq(1, 0)], &[Cmp::Eq(1, libc::FALLOC_FL_KEEP_SIZE as u32)]])): "a tmpfs file's memfd: releasing pages on truncate and hole punching (PUNCH_HOLE|KEEP_SIZE), allocating them for the application's fallocate (mode 0 or KEEP_SIZE); the same modes for the application's fallocate on an overlay file's memfd or a gofer-donated host file; no COLLAPSE/INSERT/ZERO_RANGE",
    #[ptrace] SYS_execveat(one_of(&[&[Cmp::Eq(4, libc::AT_EMPTY_PATH as u32)]])): "starting a stub from its sealed memfd (no host path): AT_EMPTY_PATH only",
    #[ptrace] SYS_close_range(one_of(&[&[Cmp::Eq(2, 0)]])): "a new stub closes every inherited fd (no flags)",
    #[ptrace] SYS_dup2: "a new or forked stub moves its control socket to fd 0",
    #[ptrace] SYS_setsid: "a new stub leaves the terminal's session",
    #[ptrace] SYS_personality(one_of(&[&[Cmp::Eq(0, 0xffff_ffff)], &[Cmp::Personality(0, 0x0004_0000)]])): "a new stub queries its personality and adds ADDR_NO_RANDOMIZE before its exec, nothing else (no READ_IMPLIES_EXEC)",
    // Privilege separation (sys::isolation): a new ptrace stub, forked after this
    // filter is in place, drops to the unprivileged stub identity before its exec.
    #[ptrace] SYS_setgroups(one_of(&[&[Cmp::Eq64(0, 0)]])): "a new stub empties its supplementary groups: setgroups(0, ..) only",
    #[ptrace] SYS_setresgid(one_of(&[&[Cmp::Eq(0, STUB_GID), Cmp::Eq(1, STUB_GID), Cmp::Eq(2, STUB_GID)]])): "a new stub takes the stub gid: only to isolation::STUB_GID",
    #[ptrace] SYS_setresuid(one_of(&[&[Cmp::Eq(0, STUB_UID), Cmp::Eq(1, STUB_UID), Cmp::Eq(2, STUB_UID)]])): "a new stub takes the stub uid: only to isolation::STUB_UID",
    #[ptrace] SYS_capset: "a new stub empties its capability sets (capset can only lower what is held; its sets are in memory, so no argument rule)",
    SYS_openat(one_of(&[&[Cmp::Within(2, OPENAT_FLAGS as u32)], &[Cmp::HostTmpfsDir(0), Cmp::Eq(2, crate::sys::host_tmpfs::TMPFILE_FLAGS as u32), Cmp::Eq(3, crate::sys::host_tmpfs::TMPFILE_MODE)], &[Cmp::HostTmpfsSpare(0), Cmp::Eq(2, crate::sys::host_tmpfs::TMPFILE_FLAGS as u32), Cmp::Eq(3, crate::sys::host_tmpfs::TMPFILE_MODE)]])): "std internals probe files by path (available_parallelism's cgroup quota files; seen when a thread spawn fails under a pids limit): in the empty root they get ENOENT; read-only, only with OPENAT_FLAGS. A tmpfs file's data: an unnamed file (O_TMPFILE|O_RDWR|O_CLOEXEC, mode 0600) in one of the sandbox's own host tmpfs instances only (sys::host_tmpfs: those made at boot, and the run of spares a tmpfs mounted once confined takes), never in another directory",
    SYS_fstatfs(one_of(&[&[Cmp::HostTmpfsDir(0)], &[Cmp::HostTmpfsSpare(0)]])): "statfs of a sandbox tmpfs: its host tmpfs instance's size and free pages (sys::host_tmpfs, boot instances and spares), on those descriptors only",
];

/// The socket options a program's host socket may set and read under
/// `--network=host` (level, name), each an alternative of the `setsockopt` and
/// `getsockopt` rows of [`HOST_NET_ALLOWED`]; `syscalls/hostsock.rs` refuses the
/// rest with `ENOPROTOOPT` before any host call. Left out on purpose: filters
/// (`SO_ATTACH_FILTER`/`BPF`), `SO_BINDTODEVICE`, `SO_MARK`, `TCP_CONGESTION`
/// (loads modules), `TCP_ULP` (kernel TLS), `TCP_MD5SIG`, `TCP_REPAIR`,
/// `IP_TRANSPARENT`, `IP_HDRINCL`, `IP_OPTIONS`, and what fills the error queue
/// with more than ICMP errors about the socket's own datagrams (`SO_TIMESTAMPING`,
/// `SO_ZEROCOPY`, `IP_RECVERR_RFC4884`).
macro_rules! sockopts {
    ($(($level:expr, $name:expr)),* $(,)?) => {
        &[$(&[Cmp::Eq(1, $level as u32), Cmp::Eq(2, $name as u32)]),*]
    };
}
const HOST_SOCKOPTS: &[&[Cmp]] = sockopts![
    (libc::SOL_SOCKET, libc::SO_REUSEADDR),
    (libc::SOL_SOCKET, libc::SO_TYPE),
    (libc::SOL_SOCKET, libc::SO_ERROR),
    (libc::SOL_SOCKET, libc::SO_BROADCAST),
    (libc::SOL_SOCKET, libc::SO_SNDBUF),
    (libc::SOL_SOCKET, libc::SO_RCVBUF),
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    (libc::SOL_SOCKET, libc::SO_OOBINLINE),
    (libc::SOL_SOCKET, libc::SO_LINGER),
    (libc::SOL_SOCKET, libc::SO_REUSEPORT),
    (libc::SOL_SOCKET, libc::SO_RCVLOWAT),
    (libc::SOL_SOCKET, libc::SO_ACCEPTCONN),
    (libc::SOL_SOCKET, libc::SO_PROTOCOL),
    (libc::SOL_SOCKET, libc::SO_DOMAIN),
    (libc::SOL_SOCKET, libc::SO_TIMESTAMP),
    (libc::SOL_SOCKET, libc::SO_TIMESTAMPNS),
    (libc::SOL_SOCKET, SO_TIMESTAMP_NEW),
    (libc::SOL_SOCKET, SO_TIMESTAMPNS_NEW),
    (libc::IPPROTO_TCP, libc::TCP_NODELAY),
    (libc::IPPROTO_TCP, libc::TCP_MAXSEG),
    (libc::IPPROTO_TCP, libc::TCP_CORK),
    (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
    (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
    (libc::IPPROTO_TCP, libc::TCP_SYNCNT),
    (libc::IPPROTO_TCP, libc::TCP_LINGER2),
    (libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT),
    (libc::IPPROTO_TCP, libc::TCP_WINDOW_CLAMP),
    (libc::IPPROTO_TCP, libc::TCP_INFO),
    (libc::IPPROTO_TCP, libc::TCP_QUICKACK),
    (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
    (libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT),
    (libc::IPPROTO_IP, libc::IP_TOS),
    (libc::IPPROTO_IP, libc::IP_TTL),
    (libc::IPPROTO_IP, libc::IP_PKTINFO),
    (libc::IPPROTO_IP, libc::IP_RECVTTL),
    (libc::IPPROTO_IP, libc::IP_RECVTOS),
    (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
    (libc::IPPROTO_IP, libc::IP_MTU),
    (libc::IPPROTO_IP, libc::IP_RECVERR),
    (libc::IPPROTO_IP, libc::IP_MULTICAST_IF),
    (libc::IPPROTO_IP, libc::IP_MULTICAST_TTL),
    (libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP),
    (libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP),
    (libc::IPPROTO_IP, libc::IP_DROP_MEMBERSHIP),
    (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS),
    (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF),
    (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS),
    (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP),
    (libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP),
    (libc::IPPROTO_IPV6, libc::IPV6_DROP_MEMBERSHIP),
    (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER),
    (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
    (libc::IPPROTO_IPV6, libc::IPV6_TCLASS),
    (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
    (libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT),
    (libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS),
    (libc::IPPROTO_IPV6, libc::IPV6_RECVERR),
];
/// `SO_TIMESTAMP_NEW`, `SO_TIMESTAMPNS_NEW` (64-bit times; the libc crate does not
/// name them for x86-64).
const SO_TIMESTAMP_NEW: i32 = 63;
const SO_TIMESTAMPNS_NEW: i32 = 64;

/// Whether a host socket may set and read option `name` of `level` (see
/// [`HOST_SOCKOPTS`]).
pub fn host_sockopt_allowed(level: i32, name: i32) -> bool {
    HOST_SOCKOPTS.iter().any(|alt| {
        matches!(alt, [Cmp::Eq(1, l), Cmp::Eq(2, n)] if *l == level as u32 && *n == name as u32)
    })
}

/// `socket` types of a host socket (always non-blocking and close-on-exec).
const HOST_STREAM: u32 = (libc::SOCK_STREAM | crate::sys::hostnet::SOCK_FLAGS) as u32;
const HOST_DGRAM: u32 = (libc::SOCK_DGRAM | crate::sys::hostnet::SOCK_FLAGS) as u32;

/// The rows `--network=host` adds (`sys::hostnet`, `net::host`): the program's TCP
/// and UDP sockets are host sockets the sentry holds. A row for a call already in
/// [`SENTRY_ALLOWED`] adds its alternatives to that row's. None of these calls can
/// be limited to the host sockets' descriptors (they are made after the filter),
/// and bind/connect addresses sit in memory seccomp cannot read: the sentry checks
/// them (family, metadata server) before each call. Weaker isolation, as
/// docs/networking.md says.
pub const HOST_NET_ALLOWED: &[Allowed] = allow![
    SYS_socket(one_of(&[
        &[Cmp::Eq(0, libc::AF_INET as u32), Cmp::Eq(1, HOST_STREAM), Cmp::Eq(2, 0)],
        &[Cmp::Eq(0, libc::AF_INET as u32), Cmp::Eq(1, HOST_DGRAM), Cmp::Eq(2, 0)],
        &[Cmp::Eq(0, libc::AF_INET6 as u32), Cmp::Eq(1, HOST_STREAM), Cmp::Eq(2, 0)],
        &[Cmp::Eq(0, libc::AF_INET6 as u32), Cmp::Eq(1, HOST_DGRAM), Cmp::Eq(2, 0)],
    ])): "--network=host: the program's TCP and UDP sockets: AF_INET/AF_INET6 only, SOCK_STREAM or SOCK_DGRAM with SOCK_NONBLOCK|SOCK_CLOEXEC exactly, protocol 0; no raw, packet, netlink or unix socket",
    SYS_bind: "--network=host: bind of a host socket (the sentry checks the address is of the socket's family first; in memory, so no argument rule)",
    SYS_connect: "--network=host: connect of a host socket (the sentry checks the family and refuses the metadata server first; in memory, so no argument rule)",
    SYS_listen: "--network=host: listen on a host TCP socket",
    SYS_accept4(one_of(&[&[Cmp::Eq(3, crate::sys::hostnet::SOCK_FLAGS as u32)]])): "--network=host: a connection on a host listening socket, non-blocking and close-on-exec exactly",
    SYS_getsockname: "--network=host: a host socket's address",
    SYS_getpeername: "--network=host: a host socket's peer",
    SYS_shutdown(one_of(&[&[Cmp::Range(1, libc::SHUT_RD as u32, libc::SHUT_RDWR as u32)]])): "--network=host: half-close of a host socket: SHUT_RD/WR/RDWR",
    SYS_setsockopt(one_of(HOST_SOCKOPTS)): "--network=host: the allow-listed options (HOST_SOCKOPTS) only: no socket filters, device binding, marks, congestion modules or kernel TLS",
    SYS_getsockopt(one_of(HOST_SOCKOPTS)): "--network=host: reading the same options (and SO_ERROR after a non-blocking connect)",
    SYS_sendmsg(one_of(&[&[Cmp::Within(2, (crate::sys::hostnet::SEND_FLAGS | crate::sys::hostnet::SEND_EXTRA) as u32)]])): "--network=host: data on a host socket: MSG_DONTWAIT|MSG_NOSIGNAL and the program's MSG_MORE and MSG_OOB (TCP urgent data) only; control messages limited by the sentry to IP_PKTINFO/TTL/TOS and IPV6_PKTINFO/HOPLIMIT/TCLASS (in memory, so no argument rule)",
    SYS_recvmsg(one_of(&[&[Cmp::Within(2, (libc::MSG_DONTWAIT | crate::sys::hostnet::RECV_FLAGS) as u32)]])): "--network=host: data from a host socket: MSG_DONTWAIT with the program's MSG_PEEK, MSG_TRUNC, MSG_OOB (urgent data) and MSG_ERRQUEUE (ICMP errors queued under IP_RECVERR/IPV6_RECVERR; their control messages are checked by the sentry) only",
    SYS_ioctl(one_of(&[&[Cmp::Eq(1, libc::FIONREAD as u32)], &[Cmp::Eq(1, libc::TIOCOUTQ as u32)], &[Cmp::Eq(1, crate::sys::hostnet::SIOCOUTQNSD as u32)], &[Cmp::Eq(1, crate::sys::hostnet::SIOCATMARK as u32)]])): "--network=host: a host socket's queue sizes (SIOCINQ, SIOCOUTQ, SIOCOUTQNSD) and urgent mark (SIOCATMARK), which only read an int",
    SYS_epoll_ctl(one_of(&[&[Cmp::Eq(1, libc::EPOLL_CTL_ADD as u32)], &[Cmp::Eq(1, libc::EPOLL_CTL_DEL as u32)]])): "--network=host: adding and removing host sockets to and from that set (ADD, DEL)",
    SYS_epoll_wait: "--network=host: the thread that wakes the tasks waiting on host sockets",
    SYS_sendto(one_of(&[&[Cmp::HostViewFd(0), Cmp::Eq(3, 0), Cmp::Eq64(4, 0)]])): "--network=host: the host's interfaces shown to the program (net::hostview): a dump or get request the sentry builds, only on the view's netlink route socket opened at boot, to the kernel (no address)",
    SYS_recvfrom(one_of(&[&[Cmp::HostViewFd(0), Cmp::Eq(3, crate::sys::hostnet::VIEW_RECV_FLAGS as u32), Cmp::Eq64(4, 0)]])): "--network=host: the answers to those requests, only on the view's netlink socket, MSG_DONTWAIT, no source address",
];

/// The only `openat` flags the sentry may pass once confined: read-only opens of what
/// already exists. No write access, `O_CREAT`, `O_TRUNC`, `O_PATH` or `O_TMPFILE`, so
/// the sentry could neither make nor clobber a host file even if its root were not
/// empty.
pub const OPENAT_FLAGS: i32 = libc::O_CLOEXEC | libc::O_LARGEFILE | libc::O_NOCTTY;

/// Values known only when the filter is built.
struct Runtime {
    pid: u32,
    personality: u32,
    packet_fd: u32,
    view_fd: u32,
    tmpfs_dirs: Vec<u32>,
    /// The spares' descriptors, first and last.
    tmpfs_spares: (u32, u32),
}

impl Runtime {
    fn now(packet_fd: Option<i32>) -> Runtime {
        // SAFETY: getpid cannot fail; personality(0xffffffff) only queries.
        let (pid, personality) = unsafe { (libc::getpid(), libc::personality(0xffff_ffff)) };
        Runtime {
            pid: pid as u32,
            personality: personality as u32,
            packet_fd: packet_fd.unwrap_or(-1) as u32,
            view_fd: crate::sys::hostnet::view_fd().unwrap_or(-1) as u32,
            tmpfs_dirs: crate::sys::host_tmpfs::dir_fds()
                .into_iter()
                .map(|fd| fd as u32)
                .collect(),
            tmpfs_spares: crate::sys::host_tmpfs::spare_fds()
                .map(|(a, b)| (a as u32, b as u32))
                .unwrap_or((u32::MAX, u32::MAX)),
        }
    }
}

fn condition(c: Cmp, rt: &Runtime) -> Result<Vec<SeccompCondition>, String> {
    use SeccompCmpArgLen::{Dword, Qword};
    let err = |e: seccompiler::BackendError| format!("seccomp rule: {e}");
    let one = |arg, len, op, v| SeccompCondition::new(arg, len, op, v).map_err(err);
    Ok(match c {
        Cmp::Eq(a, v) => vec![one(a, Dword, SeccompCmpOp::Eq, u64::from(v))?],
        Cmp::Eq64(a, v) => vec![one(a, Qword, SeccompCmpOp::Eq, v)?],
        Cmp::Within(a, m) => vec![one(a, Dword, SeccompCmpOp::MaskedEq(u64::from(!m)), 0)?],
        Cmp::Within64(a, m) => vec![one(a, Qword, SeccompCmpOp::MaskedEq(!m), 0)?],
        Cmp::Masked(a, m, v) => vec![one(
            a,
            Dword,
            SeccompCmpOp::MaskedEq(u64::from(m)),
            u64::from(v),
        )?],
        Cmp::Range(a, lo, hi) => vec![
            one(a, Dword, SeccompCmpOp::Ge, u64::from(lo))?,
            one(a, Dword, SeccompCmpOp::Le, u64::from(hi))?,
        ],
        Cmp::OwnPid(a) => vec![one(a, Dword, SeccompCmpOp::Eq, u64::from(rt.pid))?],
        Cmp::PacketFd(a) => vec![one(a, Dword, SeccompCmpOp::Eq, u64::from(rt.packet_fd))?],
        Cmp::HostViewFd(a) => vec![one(a, Dword, SeccompCmpOp::Eq, u64::from(rt.view_fd))?],
        // One descriptor here: `rules` makes an alternative per instance.
        Cmp::HostTmpfsDir(a) => vec![one(
            a,
            Dword,
            SeccompCmpOp::Eq,
            u64::from(rt.tmpfs_dirs.first().copied().unwrap_or(u32::MAX)),
        )?],
        Cmp::HostTmpfsSpare(a) => vec![
            one(a, Dword, SeccompCmpOp::Ge, u64::from(rt.tmpfs_spares.0))?,
            one(a, Dword, SeccompCmpOp::Le, u64::from(rt.tmpfs_spares.1))?,
        ],
        Cmp::Personality(a, add) => vec![one(
            a,
            Dword,
            SeccompCmpOp::Eq,
            u64::from(rt.personality | add),
        )?],
    })
}

fn rules(args: &Args, rt: &Runtime) -> Result<Vec<SeccompRule>, String> {
    let err = |e: seccompiler::BackendError| format!("seccomp rule: {e}");
    match args {
        Args::Any | Args::Fail(_) => Ok(vec![]),
        Args::OneOf(alts) => {
            let mut out = Vec::new();
            for alt in alts.iter() {
                // An alternative naming a host tmpfs descriptor stands for one rule
                // per instance (one with -1 when there is none, which nothing passes).
                let per_dir = alt.iter().any(|c| matches!(c, Cmp::HostTmpfsDir(_)));
                let dirs: Vec<u32> = match (per_dir, rt.tmpfs_dirs.is_empty()) {
                    (false, _) => vec![0],
                    (true, true) => vec![u32::MAX],
                    (true, false) => rt.tmpfs_dirs.clone(),
                };
                for d in dirs {
                    let one_dir = Runtime {
                        tmpfs_dirs: vec![d],
                        ..*rt
                    };
                    let mut conds = Vec::new();
                    for &c in alt.iter() {
                        conds.extend(condition(c, &one_dir)?);
                    }
                    out.push(SeccompRule::new(conds).map_err(err)?);
                }
            }
            Ok(out)
        }
    }
}

/// The platform a filter is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// `--platform=ptrace`.
    Ptrace,
    /// `--platform=systrap`.
    Systrap,
}

impl Platform {
    /// The platform named `name` (as `--platform` spells it).
    pub fn by_name(name: &str) -> Result<Platform, String> {
        match name {
            "ptrace" => Ok(Platform::Ptrace),
            "systrap" => Ok(Platform::Systrap),
            other => Err(format!("no seccomp allow-list for platform {other:?}")),
        }
    }

    /// Whether a row is part of this platform's list.
    pub fn takes(self, on: On) -> bool {
        matches!(
            (self, on),
            (_, On::Both) | (Platform::Ptrace, On::Ptrace) | (Platform::Systrap, On::Systrap)
        )
    }
}

/// The rows of `list` for `platform`.
pub fn rows_for(
    list: &'static [Allowed],
    platform: Platform,
) -> impl Iterator<Item = &'static Allowed> {
    list.iter().filter(move |a| platform.takes(a.on))
}

/// Builds the sentry's filter for `platform`: the allow-list above, everything else
/// kills the process. `packet_fd` is the pod interface's packet socket, when the
/// sandbox has one (the only fd its frame calls may name).
pub fn sentry_filter(platform: Platform, packet_fd: Option<i32>) -> Result<BpfProgram, String> {
    build(SENTRY_ALLOWED, &[], platform, packet_fd)
}

/// [`sentry_filter`], with the rows of [`HOST_NET_ALLOWED`] when `host_net`
/// (`--network=host`).
pub fn sentry_filter_for(
    platform: Platform,
    packet_fd: Option<i32>,
    host_net: bool,
) -> Result<BpfProgram, String> {
    let extra: &'static [Allowed] = if host_net { HOST_NET_ALLOWED } else { &[] };
    build(SENTRY_ALLOWED, extra, platform, packet_fd)
}

fn build(
    list: &'static [Allowed],
    extra: &'static [Allowed],
    platform: Platform,
    packet_fd: Option<i32>,
) -> Result<BpfProgram, String> {
    build_with(list, extra, platform, &Runtime::now(packet_fd))
}

fn build_with(
    list: &'static [Allowed],
    extra: &'static [Allowed],
    platform: Platform,
    rt: &Runtime,
) -> Result<BpfProgram, String> {
    let mut map: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut fails = Vec::new();
    for a in rows_for(list, platform) {
        if let Args::Fail(e) = a.args {
            fails.push((a.nr, e));
            continue;
        }
        if map.insert(a.nr, rules(&a.args, rt)?).is_some() {
            return Err(format!("seccomp: two rows for syscall {}", a.nr));
        }
    }
    // A mode's rows widen the base list: an alternative more for a call already
    // there (a call allowed with any arguments stays so), a new row otherwise.
    for a in rows_for(extra, platform) {
        let more = match a.args {
            Args::OneOf(_) => rules(&a.args, rt)?,
            Args::Any => vec![],
            Args::Fail(_) => return Err(format!("seccomp: errno row {} in a mode's list", a.nr)),
        };
        match map.get_mut(&a.nr) {
            Some(r) if r.is_empty() => {}
            Some(r) if more.is_empty() => r.clear(),
            Some(r) => r.extend(more),
            None if fails.iter().any(|&(nr, _)| nr == a.nr) => {
                return Err(format!("seccomp: mode row {} for an errno row", a.nr))
            }
            None => {
                map.insert(a.nr, more);
            }
        }
    }
    let prog = kill_by_default(map).map_err(|e| format!("seccomp filter: {e}"))?;
    Ok(with_errno_prefix(&fails, prog))
}

/// An x86-64 filter that allows `rules` and kills the process for any other call
/// (the sentry's list, and the boot waiter's).
pub(crate) fn kill_by_default(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
) -> Result<BpfProgram, String> {
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .map_err(|e| e.to_string())?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())
}

/// Puts `nr -> errno` answers in front of `prog` (seccompiler gives every rule of a
/// filter the same action). On another architecture the prefix falls through to
/// `prog`, which checks the architecture itself and kills.
fn with_errno_prefix(fails: &[(i64, i32)], prog: BpfProgram) -> BpfProgram {
    use seccompiler::sock_filter;
    if fails.is_empty() {
        return prog;
    }
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let ins = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    // Two instructions per errno row, after the arch check and the nr load.
    let rest = (2 * fails.len()) as u8;
    let mut out = vec![
        ins(LD_W_ABS, 0, 0, 4),
        ins(JEQ_K, 0, rest + 1, AUDIT_ARCH_X86_64),
        ins(LD_W_ABS, 0, 0, 0),
    ];
    for &(nr, errno) in fails {
        out.push(ins(JEQ_K, 0, 1, nr as u32));
        out.push(ins(
            RET_K,
            0,
            0,
            u32::from(SeccompAction::Errno(errno as u32)),
        ));
    }
    out.extend(prog);
    out
}

/// Installs the sentry's filter for `platform` (as `--platform` names it) on every
/// thread of the process; `packet_fd` as [`sentry_filter`] takes it.
pub fn install_sentry_filter(
    platform: &str,
    packet_fd: Option<i32>,
    host_net: bool,
) -> Result<(), String> {
    let platform = Platform::by_name(platform)?;
    // The filter names every host tmpfs instance there is; it allows no new one.
    crate::sys::host_tmpfs::seal();
    let prog = sentry_filter_for(platform, packet_fd, host_net)?;
    seccompiler::apply_filter_all_threads(&prog).map_err(|e| format!("seccomp install: {e}"))?;
    tracing::info!(
        syscalls = rows_for(SENTRY_ALLOWED, platform).count(),
        ?platform,
        host_net,
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
    use crate::errno::Errno;

    const BOTH: [Platform; 2] = [Platform::Ptrace, Platform::Systrap];

    #[test]
    fn filters_build_and_rows_are_unique_per_platform() {
        for p in BOTH {
            assert!(sentry_filter(p, None).is_ok());
            let mut seen = std::collections::HashSet::new();
            for a in rows_for(SENTRY_ALLOWED, p) {
                assert!(seen.insert(a.nr), "{p:?}: duplicate row {}", a.nr);
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
                libc::SYS_open,
                libc::SYS_openat2,
                libc::SYS_pivot_root,
                libc::SYS_umount2,
                libc::SYS_unshare,
                libc::SYS_setns,
                libc::SYS_seccomp,
                libc::SYS_rt_sigqueueinfo,
                libc::SYS_rt_tgsigqueueinfo,
                libc::SYS_process_madvise,
                libc::SYS_kexec_load,
                libc::SYS_bpf,
            ] {
                assert!(
                    !seen.contains(&forbidden),
                    "{p:?}: {forbidden} must not be allowed"
                );
            }
        }
        // Systrap's sentry forks and traces nothing once confined.
        let systrap: Vec<i64> = rows_for(SENTRY_ALLOWED, Platform::Systrap)
            .map(|a| a.nr)
            .collect();
        for nr in [
            libc::SYS_ptrace,
            libc::SYS_execveat,
            libc::SYS_personality,
            libc::SYS_setsid,
        ] {
            assert!(!systrap.contains(&nr), "systrap must not allow {nr}");
        }
    }

    /// How a child that installed the filter and ran a probe ended.
    #[derive(Debug, PartialEq, Eq)]
    enum End {
        /// Killed by the filter.
        Sigsys,
        /// Exited with this status (0: the probe saw what an allowed call gives).
        Exit(i32),
        /// Killed by another signal.
        Signal(i32),
    }

    /// Forks a child that installs `platform`'s filter, then runs `probe` and exits
    /// with its result.
    fn run(platform: Platform, probe: impl FnOnce() -> i32) -> End {
        run_prog(sentry_filter(platform, None).expect("filter"), probe)
    }

    /// [`run`] under `prog`.
    fn run_prog(prog: BpfProgram, probe: impl FnOnce() -> i32) -> End {
        // SAFETY: the child only installs the filter, runs the probe (raw system
        // calls) and `_exit`s; it never returns into the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            // No core file from the deaths below, whatever the harness's limit.
            let _ = no_core_dumps();
            let code = match seccompiler::apply_filter(&prog) {
                Ok(()) => probe(),
                Err(_) => 100,
            };
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(code) }
        }
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a valid int.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        if libc::WIFSIGNALED(status) {
            match libc::WTERMSIG(status) {
                libc::SIGSYS => End::Sigsys,
                s => End::Signal(s),
            }
        } else {
            End::Exit(libc::WEXITSTATUS(status))
        }
    }

    /// `0` when a raw syscall result `r` failed with `errno`, else a status naming it.
    fn failed_with(r: libc::c_long, errno: i32) -> i32 {
        if r == -1 && Errno::last() == Errno(errno) {
            0
        } else {
            3
        }
    }

    fn raw(nr: i64, a: [u64; 6]) -> libc::c_long {
        // SAFETY: every probe passes integers or pointers to its own memory; the calls
        // either are refused by the filter or fail harmlessly.
        unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) }
    }

    /// A pid that names no process (the largest one).
    const NO_PID: u64 = i32::MAX as u64;

    #[test]
    fn signals_only_the_ones_the_platforms_send() {
        for p in BOTH {
            // Allowed: SIGKILL to one pid (none here: ESRCH).
            assert_eq!(
                run(p, || failed_with(
                    raw(libc::SYS_kill, [NO_PID, 9, 0, 0, 0, 0]),
                    libc::ESRCH
                )),
                End::Exit(0)
            );
            // Refused: another signal, or a process group.
            assert_eq!(
                run(p, || failed_with(
                    raw(libc::SYS_kill, [NO_PID, libc::SIGTERM as u64, 0, 0, 0, 0]),
                    libc::ESRCH
                )),
                End::Sigsys
            );
            let group = (-(i32::MAX as i64 - 1)) as u64;
            assert_eq!(
                run(p, || failed_with(
                    raw(libc::SYS_kill, [group, 9, 0, 0, 0, 0]),
                    libc::ESRCH
                )),
                End::Sigsys
            );
            // tgkill: the interrupt signal to any thread, SIGABRT only to ourselves.
            assert_eq!(
                run(p, || failed_with(
                    raw(
                        libc::SYS_tgkill,
                        [NO_PID, NO_PID, INTERRUPT_SIGNAL as u64, 0, 0, 0]
                    ),
                    libc::ESRCH
                )),
                End::Exit(0)
            );
            assert_eq!(
                run(p, || failed_with(
                    raw(
                        libc::SYS_tgkill,
                        [NO_PID, NO_PID, libc::SIGTERM as u64, 0, 0, 0]
                    ),
                    libc::ESRCH
                )),
                End::Sigsys
            );
            assert_eq!(
                run(p, || failed_with(
                    raw(
                        libc::SYS_tgkill,
                        [NO_PID, NO_PID, libc::SIGABRT as u64, 0, 0, 0]
                    ),
                    libc::ESRCH
                )),
                End::Sigsys
            );
            // The filter was built in the parent: the child's own pid differs, so its
            // SIGABRT is refused too (stubs inherit the filter the same way).
            assert_eq!(
                run(p, || {
                    // SAFETY: getpid and gettid cannot fail.
                    let (me, tid) = unsafe { (libc::getpid(), libc::gettid()) };
                    failed_with(
                        raw(
                            libc::SYS_tgkill,
                            [me as u64, tid as u64, libc::SIGABRT as u64, 0, 0, 0],
                        ),
                        0,
                    )
                }),
                End::Sigsys
            );
            // pidfd_send_signal: only SIGKILL, SIGUSR2 and 0, no siginfo.
            let probe = |sig: i32, info: u64| {
                move || {
                    // SAFETY: pidfd_open of our own pid.
                    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
                    if fd < 0 {
                        return 4;
                    }
                    let r = raw(
                        libc::SYS_pidfd_send_signal,
                        [fd as u64, sig as u64, info, 0, 0, 0],
                    );
                    if r == 0 {
                        0
                    } else {
                        3
                    }
                }
            };
            assert_eq!(run(p, probe(0, 0)), End::Exit(0));
            assert_eq!(run(p, probe(libc::SIGTERM, 0)), End::Sigsys);
            let info = [0u8; 128];
            assert_eq!(run(p, probe(0, info.as_ptr() as u64)), End::Sigsys);
        }
    }

    #[test]
    fn ioctl_only_known_requests() {
        for p in BOTH {
            let null = |req: u64| {
                move || {
                    // SAFETY: open of a NUL-terminated path, before any ioctl.
                    let fd = unsafe {
                        libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC)
                    };
                    let mut buf = [0u8; 64];
                    failed_with(
                        raw(
                            libc::SYS_ioctl,
                            [fd as u64, req, buf.as_mut_ptr() as u64, 0, 0, 0],
                        ),
                        libc::ENOTTY,
                    )
                }
            };
            assert_eq!(run(p, null(libc::TCGETS)), End::Exit(0));
            assert_eq!(run(p, null(libc::TIOCGWINSZ)), End::Exit(0));
            assert_eq!(run(p, null(libc::FIONBIO)), End::Sigsys);
            assert_eq!(run(p, null(libc::TIOCSTI)), End::Sigsys);
            assert_eq!(run(p, null(0x1234)), End::Sigsys);
            // The request gate's ioctls pass the filter (and fail on /dev/null).
            for req in [
                SECCOMP_IOCTL_NOTIF_RECV,
                SECCOMP_IOCTL_NOTIF_SEND,
                SECCOMP_IOCTL_NOTIF_ID_VALID,
                SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            ] {
                assert_ne!(run(p, null(u64::from(req))), End::Sigsys, "{req:#x}");
            }
        }
    }

    #[test]
    fn clone_only_the_flag_sets_in_use() {
        for p in BOTH {
            // std threads: clone3 gets ENOSYS, glibc falls back to clone.
            assert_eq!(
                run(p, || {
                    let t = std::thread::spawn(|| 7);
                    if t.join().ok() == Some(7) {
                        0
                    } else {
                        3
                    }
                }),
                End::Exit(0)
            );
            assert_eq!(
                run(p, || failed_with(
                    raw(libc::SYS_clone3, [0, 0, 0, 0, 0, 0]),
                    libc::ENOSYS
                )),
                End::Exit(0)
            );
            // A new user namespace, or any other flag set, is refused.
            let user = (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64;
            assert_eq!(
                run(p, || failed_with(
                    raw(libc::SYS_clone, [user, 0, 0, 0, 0, 0]),
                    libc::EPERM
                )),
                End::Sigsys
            );
            let traced = GLIBC_FORK_FLAGS | libc::CLONE_PTRACE as u64;
            assert_eq!(
                run(p, || failed_with(
                    raw(libc::SYS_clone, [traced, 0, 0, 0, 0, 0]),
                    libc::EPERM
                )),
                End::Sigsys
            );
        }
        // fork: only the ptrace platform forks once confined.
        let fork = || {
            // SAFETY: the grandchild exits at once.
            match unsafe { libc::fork() } {
                // SAFETY: the grandchild ends at once.
                0 => unsafe { libc::_exit(0) },
                c if c > 0 => {
                    let mut st = 0;
                    // SAFETY: our own child.
                    unsafe { libc::waitpid(c, &mut st, 0) };
                    0
                }
                _ => 3,
            }
        };
        assert_eq!(run(Platform::Ptrace, fork), End::Exit(0));
        assert_eq!(run(Platform::Systrap, fork), End::Sigsys);
    }

    #[test]
    fn memory_calls_keep_to_their_arguments() {
        let vm = |flags: u64, iovs: u64| {
            move || {
                let src = [1u8; 8];
                let mut dst = [0u8; 8];
                let local = libc::iovec {
                    iov_base: dst.as_mut_ptr().cast(),
                    iov_len: 8,
                };
                let remote = libc::iovec {
                    iov_base: src.as_ptr() as *mut _,
                    iov_len: 8,
                };
                // SAFETY: getpid cannot fail.
                let me = unsafe { libc::getpid() } as u64;
                let r = raw(
                    libc::SYS_process_vm_readv,
                    [
                        me,
                        &local as *const _ as u64,
                        iovs,
                        &remote as *const _ as u64,
                        1,
                        flags,
                    ],
                );
                if r == 8 && dst == src {
                    0
                } else {
                    3
                }
            }
        };
        let mmap = |prot: i32, flags: i32| {
            move || {
                // SAFETY: a fresh anonymous mapping.
                let p = unsafe { libc::mmap(std::ptr::null_mut(), 4096, prot, flags, -1, 0) };
                if p == libc::MAP_FAILED {
                    3
                } else {
                    0
                }
            }
        };
        let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        for p in BOTH {
            assert_eq!(run(p, vm(0, 1)), End::Exit(0));
            assert_eq!(run(p, vm(1, 1)), End::Sigsys);
            assert_eq!(run(p, vm(0, 2)), End::Sigsys);
            assert_eq!(
                run(p, mmap(libc::PROT_READ | libc::PROT_WRITE, anon)),
                End::Exit(0)
            );
            assert_eq!(
                run(p, mmap(libc::PROT_READ, anon | libc::MAP_HUGETLB)),
                End::Sigsys
            );
            let madv = |advice: i32| {
                move || {
                    // SAFETY: a fresh anonymous mapping, advised and left.
                    let m = unsafe {
                        libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ, anon, -1, 0)
                    };
                    // SAFETY: as above.
                    if unsafe { libc::madvise(m, 4096, advice) } == 0 {
                        0
                    } else {
                        3
                    }
                }
            };
            assert_eq!(run(p, madv(libc::MADV_DONTNEED)), End::Exit(0));
            assert_eq!(run(p, madv(libc::MADV_MERGEABLE)), End::Sigsys);
            let futex = |op: i32| {
                move || {
                    let word = 0u32;
                    let r = raw(
                        libc::SYS_futex,
                        [&word as *const u32 as u64, op as u64, 1, 0, 0, 0],
                    );
                    if r >= 0 {
                        0
                    } else {
                        3
                    }
                }
            };
            assert_eq!(
                run(p, futex(libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG)),
                End::Exit(0)
            );
            assert_eq!(run(p, futex(libc::FUTEX_CMP_REQUEUE)), End::Sigsys);
            assert_eq!(run(p, futex(libc::FUTEX_LOCK_PI)), End::Sigsys);
        }
        // Executable memory: only for ptrace stubs, which map application code.
        let exec = libc::PROT_READ | libc::PROT_EXEC;
        assert_eq!(run(Platform::Ptrace, mmap(exec, anon)), End::Exit(0));
        assert_eq!(run(Platform::Systrap, mmap(exec, anon)), End::Sigsys);
        let mprotect_exec = move || {
            // SAFETY: a fresh anonymous mapping made executable.
            let m = unsafe { libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ, anon, -1, 0) };
            // SAFETY: as above.
            if unsafe { libc::mprotect(m, 4096, exec) } == 0 {
                0
            } else {
                3
            }
        };
        assert_eq!(run(Platform::Ptrace, mprotect_exec), End::Exit(0));
        assert_eq!(run(Platform::Systrap, mprotect_exec), End::Sigsys);
    }

    #[test]
    fn process_and_descriptor_calls_keep_to_their_arguments() {
        for p in BOTH {
            let prctl = |opt: i32, arg: u64| {
                move || {
                    if raw(libc::SYS_prctl, [opt as u64, arg, 0, 0, 0, 0]) == 0 {
                        0
                    } else {
                        3
                    }
                }
            };
            assert_eq!(
                run(p, prctl(libc::PR_SET_NAME, c"probe".as_ptr() as u64)),
                End::Exit(0)
            );
            assert_eq!(run(p, prctl(libc::PR_SET_DUMPABLE, 0)), End::Sigsys);
            // A new ptrace stub sets no_new_privs under this filter before its exec
            // (sys::isolation); the systrap list has no use for it.
            let nnp = if p == Platform::Ptrace {
                End::Exit(0)
            } else {
                End::Sigsys
            };
            assert_eq!(run(p, prctl(libc::PR_SET_NO_NEW_PRIVS, 1)), nnp);
            assert_eq!(run(p, prctl(libc::PR_SET_NO_NEW_PRIVS, 2)), End::Sigsys);
            let pair = |domain: i32| {
                move || {
                    let mut fds = [0i32; 2];
                    // SAFETY: `fds` has room for the two descriptors.
                    let r =
                        unsafe { libc::socketpair(domain, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
                    if r == 0 {
                        0
                    } else {
                        3
                    }
                }
            };
            assert_eq!(run(p, pair(libc::AF_UNIX)), End::Exit(0));
            assert_eq!(run(p, pair(libc::AF_INET)), End::Sigsys);
            let fcntl = |cmd: i32, arg: u64| {
                move || {
                    if raw(libc::SYS_fcntl, [1, cmd as u64, arg, 0, 0, 0]) >= 0 {
                        0
                    } else {
                        3
                    }
                }
            };
            assert_eq!(run(p, fcntl(libc::F_DUPFD_CLOEXEC, 3)), End::Exit(0));
            assert_eq!(run(p, fcntl(libc::F_SETOWN, 1)), End::Sigsys);
            assert_eq!(
                run(p, fcntl(libc::F_SETFL, libc::O_APPEND as u64)),
                End::Sigsys
            );
            // execveat only from a descriptor (AT_EMPTY_PATH), and only where stubs are
            // started (ptrace).
            let exec = |flags: i32| {
                move || {
                    failed_with(
                        raw(
                            libc::SYS_execveat,
                            [u64::MAX, c"".as_ptr() as u64, 0, 0, flags as u64, 0],
                        ),
                        libc::EBADF,
                    )
                }
            };
            assert_eq!(run(p, exec(0)), End::Sigsys);
            let expect = if p == Platform::Ptrace {
                End::Exit(0)
            } else {
                End::Sigsys
            };
            assert_eq!(run(p, exec(libc::AT_EMPTY_PATH)), expect);
        }
        // ptrace: only the platform's requests and options.
        let pt = |req: u32, addr: u64, data: u64| {
            move || {
                failed_with(
                    raw(libc::SYS_ptrace, [u64::from(req), NO_PID, addr, data, 0, 0]),
                    libc::ESRCH,
                )
            }
        };
        let p = Platform::Ptrace;
        assert_eq!(run(p, pt(libc::PTRACE_GETREGS, 0, 0)), End::Exit(0));
        assert_eq!(
            run(p, pt(libc::PTRACE_SETOPTIONS, 0, u64::from(PTRACE_OPTIONS))),
            End::Exit(0)
        );
        assert_eq!(run(p, pt(libc::PTRACE_ATTACH, 0, 0)), End::Sigsys);
        assert_eq!(run(p, pt(libc::PTRACE_POKEDATA, 0, 0)), End::Sigsys);
        assert_eq!(
            run(p, pt(libc::PTRACE_CONT, 0, libc::SIGTERM as u64)),
            End::Sigsys
        );
        let suspend = u64::from(PTRACE_OPTIONS) | libc::PTRACE_O_SUSPEND_SECCOMP as u64;
        assert_eq!(run(p, pt(libc::PTRACE_SETOPTIONS, 0, suspend)), End::Sigsys);
        assert_eq!(
            run(Platform::Systrap, pt(libc::PTRACE_GETREGS, 0, 0)),
            End::Sigsys
        );
    }

    /// `O_TMPFILE` and `fstatfs` only on the sandbox's host tmpfs instances, with the
    /// exact flags and mode; a host directory the sentry holds takes neither.
    #[test]
    fn tmpfile_only_in_the_host_tmpfs_instances() {
        let Ok(_inst) = crate::sys::host_tmpfs::mount(1 << 20) else {
            eprintln!("no privilege to mount a tmpfs: skipped");
            return;
        };
        let fd = *crate::sys::host_tmpfs::dir_fds()
            .last()
            .expect("the instance") as u64;
        // A host directory (what a compromised sentry would like to create in).
        // SAFETY: a NUL-terminated path; the descriptor is closed below.
        let other = unsafe { libc::open(c"/tmp".as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY) };
        assert!(other >= 0);
        let flags = crate::sys::host_tmpfs::TMPFILE_FLAGS as u64;
        let tmpfile = |dir: u64, flags: u64, mode: u64| {
            move || {
                if raw(
                    libc::SYS_openat,
                    [dir, c".".as_ptr() as u64, flags, mode, 0, 0],
                ) >= 0
                {
                    0
                } else {
                    3
                }
            }
        };
        let statfs = |dir: u64| {
            move || {
                // SAFETY: an all-zero statfs is valid for the kernel to overwrite.
                let mut sf: libc::statfs = unsafe { std::mem::zeroed() };
                let at = &mut sf as *mut libc::statfs as u64;
                if raw(libc::SYS_fstatfs, [dir, at, 0, 0, 0, 0]) == 0 {
                    0
                } else {
                    3
                }
            }
        };
        for p in BOTH {
            assert_eq!(run(p, tmpfile(fd, flags, 0o600)), End::Exit(0));
            assert_eq!(run(p, tmpfile(other as u64, flags, 0o600)), End::Sigsys);
            assert_eq!(run(p, tmpfile(fd, flags, 0o644)), End::Sigsys);
            let no_cloexec = flags & !(libc::O_CLOEXEC as u64);
            assert_eq!(run(p, tmpfile(fd, no_cloexec, 0o600)), End::Sigsys);
            assert_eq!(run(p, statfs(fd)), End::Exit(0));
            assert_eq!(run(p, statfs(other as u64)), End::Sigsys);
        }
        // SAFETY: closes the descriptor opened above.
        unsafe { libc::close(other) };
    }

    /// The spares' run (a tmpfs mounted once confined takes one): `O_TMPFILE` and
    /// `fstatfs` on each of its descriptors, with the exact flags and mode; not on the
    /// numbers just outside it, nor on a host directory.
    #[test]
    fn tmpfile_in_the_spares_run_only() {
        let Some((first, last)) = crate::sys::host_tmpfs::test_spares(&[1, 2, 4], 400) else {
            eprintln!("no privilege to mount a tmpfs: skipped");
            return;
        };
        // A host directory on each side of the run: just below, just above.
        // SAFETY: a NUL-terminated path; F_DUPFD_CLOEXEC returns new descriptors.
        let dir = unsafe { libc::open(c"/tmp".as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY) };
        assert!(dir >= 0);
        // SAFETY: as above.
        let above = unsafe { libc::fcntl(dir, libc::F_DUPFD_CLOEXEC, last + 1) };
        assert_eq!(above, last + 1, "the number after the run is free");
        let flags = crate::sys::host_tmpfs::TMPFILE_FLAGS as u64;
        let tmpfile = |dir: i32, mode: u64| {
            move || {
                let r = raw(
                    libc::SYS_openat,
                    [dir as u64, c".".as_ptr() as u64, flags, mode, 0, 0],
                );
                if r >= 0 {
                    0
                } else {
                    3
                }
            }
        };
        let statfs = |dir: i32| {
            move || {
                // SAFETY: an all-zero statfs is valid for the kernel to overwrite.
                let mut sf: libc::statfs = unsafe { std::mem::zeroed() };
                let at = &mut sf as *mut libc::statfs as u64;
                if raw(libc::SYS_fstatfs, [dir as u64, at, 0, 0, 0, 0]) == 0 {
                    0
                } else {
                    3
                }
            }
        };
        for p in BOTH {
            let mut rt = Runtime::now(None);
            rt.tmpfs_spares = (first as u32, last as u32);
            let prog = || build_with(SENTRY_ALLOWED, &[], p, &rt).expect("filter");
            for fd in first..=last {
                assert_eq!(run_prog(prog(), tmpfile(fd, 0o600)), End::Exit(0), "{fd}");
                assert_eq!(run_prog(prog(), statfs(fd)), End::Exit(0), "{fd}");
            }
            assert_eq!(run_prog(prog(), tmpfile(first, 0o644)), End::Sigsys);
            for outside in [above, dir] {
                assert_eq!(run_prog(prog(), tmpfile(outside, 0o600)), End::Sigsys);
                assert_eq!(run_prog(prog(), statfs(outside)), End::Sigsys);
            }
            // Without spares, nothing passes the row but -1.
            let none = Runtime::now(None);
            let prog = build_with(SENTRY_ALLOWED, &[], p, &none).expect("filter");
            assert_eq!(run_prog(prog, tmpfile(first, 0o600)), End::Sigsys);
        }
        // SAFETY: closing the two descriptors opened above.
        unsafe {
            libc::close(dir);
            libc::close(above);
        }
    }

    /// `--network=host` adds host TCP and UDP sockets and nothing below them: no raw,
    /// packet, netlink or unix socket, no socket filter, congestion module or kernel
    /// TLS, and without host mode not even an internet socket.
    #[test]
    fn host_network_rows_keep_to_their_arguments() {
        let sock = |domain: i32, ty: i32, proto: i32| {
            move || {
                let r = raw(
                    libc::SYS_socket,
                    [domain as u64, ty as u64, proto as u64, 0, 0, 0],
                );
                if r >= 0 {
                    0
                } else {
                    3
                }
            }
        };
        let flags = crate::sys::hostnet::SOCK_FLAGS;
        let tcp = libc::SOCK_STREAM | flags;
        let udp = libc::SOCK_DGRAM | flags;
        // An option on a fresh TCP socket: 0 when the call went through.
        let opt = |level: i32, name: i32, v: &'static [u8]| {
            move || {
                // SAFETY: no pointer arguments; a socket as the sentry makes them.
                let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | flags, 0) };
                let r = raw(
                    libc::SYS_setsockopt,
                    [
                        fd as u64,
                        level as u64,
                        name as u64,
                        v.as_ptr() as u64,
                        v.len() as u64,
                        0,
                    ],
                );
                // Refused by the host (an unknown congestion module) is still "passed".
                if r == 0 || Errno::last() != Errno::EPERM {
                    0
                } else {
                    3
                }
            }
        };
        for p in BOTH {
            let host = || sentry_filter_for(p, None, true).expect("host filter");
            assert_eq!(run_prog(host(), sock(libc::AF_INET, tcp, 0)), End::Exit(0));
            assert_eq!(run_prog(host(), sock(libc::AF_INET6, udp, 0)), End::Exit(0));
            // Without host mode the same call kills.
            assert_eq!(run(p, sock(libc::AF_INET, tcp, 0)), End::Sigsys);
            for (d, t, pr) in [
                (libc::AF_INET, libc::SOCK_RAW | flags, libc::IPPROTO_ICMP),
                (libc::AF_INET, libc::SOCK_DGRAM | flags, libc::IPPROTO_ICMP),
                (libc::AF_INET, tcp, libc::IPPROTO_TCP),
                (libc::AF_INET, libc::SOCK_STREAM, 0),
                (libc::AF_PACKET, libc::SOCK_RAW | flags, 0),
                (
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | flags,
                    libc::NETLINK_ROUTE,
                ),
                (libc::AF_UNIX, tcp, 0),
            ] {
                assert_eq!(
                    run_prog(host(), sock(d, t, pr)),
                    End::Sigsys,
                    "{p:?} {d} {t} {pr}"
                );
            }
            let one: &'static [u8] = &[1, 0, 0, 0];
            assert_eq!(
                run_prog(host(), opt(libc::IPPROTO_TCP, libc::TCP_NODELAY, one)),
                End::Exit(0)
            );
            for (level, name) in [
                (libc::SOL_SOCKET, libc::SO_ATTACH_FILTER),
                (libc::SOL_SOCKET, libc::SO_ATTACH_BPF),
                (libc::SOL_SOCKET, libc::SO_BINDTODEVICE),
                (libc::SOL_SOCKET, libc::SO_MARK),
                (libc::IPPROTO_TCP, libc::TCP_CONGESTION),
                (libc::IPPROTO_TCP, libc::TCP_ULP),
                (libc::IPPROTO_IP, libc::IP_TRANSPARENT),
            ] {
                assert_eq!(
                    run_prog(host(), opt(level, name, one)),
                    End::Sigsys,
                    "{p:?} {level} {name}"
                );
                assert!(!host_sockopt_allowed(level, name));
            }
            // accept4 only non-blocking and close-on-exec.
            let accept = |fl: i32| {
                move || {
                    failed_with(
                        raw(libc::SYS_accept4, [u64::MAX, 0, 0, fl as u64, 0, 0]),
                        libc::EBADF,
                    )
                }
            };
            assert_eq!(run_prog(host(), accept(flags)), End::Exit(0));
            assert_eq!(run_prog(host(), accept(0)), End::Sigsys);
            // sendmsg: the program's MSG_MORE, never MSG_OOB.
            let send = |fl: i32| {
                move || {
                    failed_with(
                        raw(libc::SYS_sendmsg, [u64::MAX, 0, fl as u64, 0, 0, 0]),
                        libc::EBADF,
                    )
                }
            };
            assert_eq!(
                run_prog(
                    host(),
                    send(crate::sys::hostnet::SEND_FLAGS | libc::MSG_MORE)
                ),
                End::Exit(0)
            );
            assert_eq!(
                run_prog(
                    host(),
                    send(crate::sys::hostnet::SEND_FLAGS | libc::MSG_OOB)
                ),
                End::Exit(0)
            );
            assert_eq!(run_prog(host(), send(libc::MSG_FASTOPEN)), End::Sigsys);
            assert_eq!(run_prog(host(), send(libc::MSG_ZEROCOPY)), End::Sigsys);
            assert_eq!(run(p, send(libc::MSG_MORE)), End::Sigsys);
            // recvmsg: MSG_OOB and MSG_ERRQUEUE only in host mode.
            let recv = |fl: i32| {
                move || {
                    failed_with(
                        raw(libc::SYS_recvmsg, [u64::MAX, 0, fl as u64, 0, 0, 0]),
                        libc::EBADF,
                    )
                }
            };
            let oob = libc::MSG_DONTWAIT | libc::MSG_OOB;
            assert_eq!(run_prog(host(), recv(oob)), End::Exit(0));
            assert_eq!(run(p, recv(oob)), End::Sigsys);
            let errq = libc::MSG_DONTWAIT | libc::MSG_ERRQUEUE;
            assert_eq!(run_prog(host(), recv(errq)), End::Exit(0));
            assert_eq!(run(p, recv(errq)), End::Sigsys);
            // No other flag (MSG_WAITALL would not change a non-blocking socket's
            // answer; it stays out all the same).
            assert_eq!(
                run_prog(host(), recv(libc::MSG_DONTWAIT | libc::MSG_WAITALL)),
                End::Sigsys
            );
            // The view's netlink calls only on its descriptor (none was opened here,
            // so no descriptor matches).
            let sendto = || failed_with(raw(libc::SYS_sendto, [7, 0, 0, 0, 0, 0]), libc::EBADF);
            assert_eq!(run_prog(host(), sendto), End::Sigsys);
            let recvfrom = || {
                let fl = crate::sys::hostnet::VIEW_RECV_FLAGS as u64;
                failed_with(raw(libc::SYS_recvfrom, [7, 0, 0, fl, 0, 0]), libc::EBADF)
            };
            assert_eq!(run_prog(host(), recvfrom), End::Sigsys);
        }
    }

    /// The README's allow-list table states the sentry's rows and how many carry
    /// argument filters (or an errno answer) per platform.
    #[test]
    fn readme_states_the_sentry_list_sizes() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("README.md");
        for (p, name) in [(Platform::Systrap, "systrap"), (Platform::Ptrace, "ptrace")] {
            let rows = rows_for(SENTRY_ALLOWED, p).count();
            let filtered = rows_for(SENTRY_ALLOWED, p)
                .filter(|a| !matches!(a.args, Args::Any))
                .count();
            let line = format!("| sentry, `--platform={name}` | {rows} | {filtered} |");
            assert!(readme.contains(&line), "README.md lacks the line {line:?}");
        }
        let host = HOST_NET_ALLOWED;
        let filtered = host.iter().filter(|a| !matches!(a.args, Args::Any)).count();
        let line = format!(
            "| sentry, `--network=host` adds (both platforms) | {} | {filtered} |",
            host.len()
        );
        assert!(readme.contains(&line), "README.md lacks the line {line:?}");
    }

    /// A sleep interrupted by a stop and a continue resumes through
    /// `restart_syscall`, which the kernel makes on the thread's behalf.
    #[test]
    fn a_stopped_and_continued_sleep_resumes() {
        for p in BOTH {
            let prog = sentry_filter(p, None).expect("filter");
            // SAFETY: the child installs the filter, sleeps with raw calls and exits.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                let code = match seccompiler::apply_filter(&prog) {
                    Ok(()) => {
                        let ts = libc::timespec {
                            tv_sec: 0,
                            tv_nsec: 300_000_000,
                        };
                        // SAFETY: a valid timespec; no remainder wanted.
                        let r = unsafe { libc::syscall(libc::SYS_nanosleep, &ts, 0usize) };
                        if r == 0 {
                            0
                        } else {
                            3
                        }
                    }
                    Err(_) => 100,
                };
                // SAFETY: ends the child at once.
                unsafe { libc::_exit(code) }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            // SAFETY: signals to our own child.
            unsafe {
                libc::kill(pid, libc::SIGSTOP);
                std::thread::sleep(std::time::Duration::from_millis(50));
                libc::kill(pid, libc::SIGCONT);
            }
            let mut status = 0;
            // SAFETY: our own child.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "{p:?}: status {status:#x}"
            );
        }
    }
}
