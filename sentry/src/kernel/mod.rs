//! Kernel-wide state and the task model. One [`Task`] per application thread, each
//! driven by its own sentry host thread (see [`task::Task::run`]); processes are
//! [`process::ThreadGroup`]s in the sandbox's pid namespace ([`process::Registry`]).

pub mod aio;
pub mod containers;
pub mod exec;
pub mod futex;
pub mod ipc;
pub mod limits;
pub mod msg;
pub mod ns;
pub mod patch;
pub mod pidfd;
pub mod proc_mem;
pub mod process;
pub mod ptrace;
pub mod resources;
pub mod rseq;
pub mod sched;
pub mod seccomp;
pub mod seccomp_spec;
pub mod sem;
pub mod shm;
pub mod sigframe;
pub mod signals;
pub mod spawn;
pub mod task;
pub mod timers;
pub mod vdso;
pub mod yama;
/// Credentials and wait queues live below the files and sockets that use them
/// (docs/architecture.md); the kernel's paths to them stay.
pub use crate::{cbpf, creds, wait};

use std::collections::HashSet;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::errno::{Errno, SysResult};
use crate::platform::Platform;
use crate::vfs::Dentry;

pub use task::{ExitStatus, Task};

/// The system calls the kernel serves: the ABI floor above it (`syscalls`) hands
/// its table to the kernel when the sandbox boots, so the kernel never names it.
pub trait SyscallTable: Send + Sync {
    /// Runs system call `nr` with the six argument registers `args` for `task`.
    fn dispatch(&self, task: &mut Task, nr: u64, args: [u64; 6]) -> SysResult<u64>;
    /// The name of system call `nr`, when it has one (for logs).
    fn name(&self, nr: u64) -> Option<&'static str>;
    /// The number of the system call called `name`.
    fn number_of(&self, name: &str) -> Option<u64>;
}

/// The kernel release `uname` reports: fixed, so the container sees the same kernel
/// whatever the host runs.
pub const RELEASE: &str = "4.4.0";
/// The `uname` version string.
pub const VERSION: &str = "#1 SMP Sun Jan 10 15:06:54 PST 2016";
/// Largest pid handed out before wrapping (`/proc/sys/kernel/pid_max`).
pub const PID_MAX: i32 = 4_194_304;

/// State shared by every task of a sandbox.
pub struct Kernel {
    /// How app code runs.
    pub platform: Arc<dyn Platform>,
    /// The container's root directory.
    pub root: Arc<Dentry>,
    /// The sandbox's first namespaces (mount, UTS with the hostname, IPC with the
    /// System V objects), which the first process starts in.
    pub root_ns: ns::NsSet,
    /// Ids of the namespaces made inside the sandbox.
    pub ns_ids: ns::NsIds,
    /// Print every syscall.
    pub strace: bool,
    /// When the sandbox booted (for `sysinfo` uptime).
    pub boot_time: Instant,
    /// CPUs the sandbox has, counted once at boot: those the sentry may run on
    /// (the count reads host cgroup files, which the confined sentry can no longer
    /// open), cut to the container's CPU quota or cpuset.
    pub ncpus: usize,
    /// The container's limits and where its usage is read.
    pub resources: resources::Resources,
    /// Every futex of the sandbox.
    pub futexes: futex::FutexTable,
    /// Signal-sending timers (alarm, setitimer, POSIX timers).
    pub timers: Arc<timers::TimerService>,
    /// POSIX timer ids handed out.
    pub next_timer_id: AtomicI32,
    registry: Mutex<process::Registry>,
    next_tid: AtomicI32,
    live_threads: Mutex<usize>,
    /// Notified when a task thread ends or init exits.
    pub lifecycle: wait::WaitQueue,
    init_status: Mutex<Option<ExitStatus>>,
    reported_unimplemented: Mutex<HashSet<u64>>,
    /// `--net-raw`: processes keep CAP_NET_RAW when their config gives it.
    pub net_raw: std::sync::atomic::AtomicBool,
    /// `--syscall-patching`: trapped system call sites may become jumps to the
    /// platform's trampoline (see [`patch`]); set by boot before any process.
    pub syscall_patching: std::sync::atomic::AtomicBool,
    /// The network of the sandbox's first network namespace (the one the runtime
    /// configures): its interfaces, port tables and sockets. A process's own is
    /// `task.ns.net.stack`.
    pub net: Arc<crate::net::Netstack>,
    /// The sandbox's unix sockets (their names, `/proc/net/unix`).
    pub unix: Arc<crate::fs::unix::UnixSpace>,
    /// What the sandbox's files share: FIFO pipes, locks, inotify watches,
    /// anonymous inode numbers.
    pub files: Arc<crate::fs::space::FileSpace>,
    /// The system call table tasks' calls go through.
    pub syscalls: &'static dyn SyscallTable,
    /// Linux AIO contexts and `aio-nr`.
    pub aio: aio::AioTable,
    /// Which container each process belongs to, and host kills by container.
    pub containers: containers::Book,
    /// The sandbox's memory for tmpfs files, shared memory and memfds (its pages
    /// count in the sandbox's memory use).
    pub mem: Arc<crate::fs::memfile::MemoryFile>,
    /// `kernel.yama.ptrace_scope`.
    pub yama: yama::Yama,
    /// The sandbox's vDSO, made on first use (boot makes it before confinement);
    /// `None` inside if it could not be made.
    vdso: std::sync::OnceLock<Option<Arc<vdso::Vdso>>>,
}

impl Kernel {
    /// A kernel over `platform` serving `root` through `syscalls`, without resource
    /// limits.
    pub fn new(
        platform: Arc<dyn Platform>,
        syscalls: &'static dyn SyscallTable,
        root: Arc<Dentry>,
        hostname: String,
        strace: bool,
    ) -> Arc<Kernel> {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self::with_resources(
            platform,
            syscalls,
            root,
            hostname,
            strace,
            resources::Resources::unlimited(cpus),
        )
    }

    /// A kernel over `platform` serving `root` through `syscalls`, with the
    /// container's `resources`.
    pub fn with_resources(
        platform: Arc<dyn Platform>,
        syscalls: &'static dyn SyscallTable,
        root: Arc<Dentry>,
        hostname: String,
        strace: bool,
        resources: resources::Resources,
    ) -> Arc<Kernel> {
        let net = crate::net::Netstack::new();
        let unix = crate::fs::unix::UnixSpace::new();
        unix.attach_net(&net);
        let ns_ids = ns::NsIds::default();
        let time_root = ns::TimeNs::root();
        let root_ns = ns::NsSet {
            mnt: ns::MntNs::new(ns_ids.next(), root.clone(), None),
            uts: ns::UtsNs::new(ns_ids.next(), hostname, "(none)".to_string()),
            ipc: ns::IpcNs::new(ns_ids.next(), None),
            net: ns::NetNs::new(ns_ids.next(), net.clone(), None),
            cgroup: ns::CgroupNs::new(ns_ids.next(), None),
            pid_children: ns::PidNs::root(ns_ids.next()),
            time: time_root.clone(),
            time_children: time_root,
        };
        Arc::new(Kernel {
            platform,
            root,
            root_ns,
            ns_ids,
            strace,
            boot_time: Instant::now(),
            ncpus: resources.ncpus(),
            resources,
            futexes: futex::FutexTable::new(),
            timers: timers::TimerService::start(),
            next_timer_id: AtomicI32::new(0),
            registry: Mutex::new(process::Registry::default()),
            next_tid: AtomicI32::new(1),
            live_threads: Mutex::new(0),
            lifecycle: wait::WaitQueue::new(),
            init_status: Mutex::new(None),
            reported_unimplemented: Mutex::new(HashSet::new()),
            net_raw: std::sync::atomic::AtomicBool::new(false),
            syscall_patching: std::sync::atomic::AtomicBool::new(true),
            net: net.clone(),
            unix,
            files: crate::fs::space::FileSpace::new(),
            syscalls,
            aio: aio::AioTable::default(),
            containers: containers::Book::default(),
            mem: crate::fs::memfile::MemoryFile::new(),
            yama: yama::Yama::default(),
            vdso: std::sync::OnceLock::new(),
        })
    }

    /// The machine's memory as the sandbox sees it (see
    /// [`resources::Resources::mem_view`]).
    pub fn mem_view(&self) -> SysResult<resources::MemView> {
        let own = self.mem.pages() * crate::fs::memfile::PAGE;
        let mut v = self.resources.mem_view(own)?;
        // A container of a pod with a smaller limit of its own sees that as the
        // machine's memory; what is in use is the pod's (the sentry does not
        // split it by container), so free and available are never overstated.
        if let Some(lim) = self.current_limits().memory.filter(|&l| l < v.total) {
            let used = v.total.saturating_sub(v.free);
            let unavailable = v.total.saturating_sub(v.available);
            v.total = lim;
            v.free = lim.saturating_sub(used);
            v.available = lim.saturating_sub(unavailable);
        }
        Ok(v)
    }

    /// The container process `tgid` belongs to ([`containers::FIRST`] for the
    /// sandbox's first container).
    pub fn container_of(&self, tgid: i32) -> String {
        match self.registry() {
            Ok(reg) => self.containers.owner(tgid, |p| {
                reg.group(p)
                    .and_then(|g| g.state().ok().map(|s| s.parent))
                    .unwrap_or(0)
            }),
            Err(_) => containers::FIRST.to_string(),
        }
    }

    /// The own limits of the calling task's container (none for the first
    /// container, whose limits are the sandbox's, and outside a task).
    pub fn current_limits(&self) -> containers::ContainerLimits {
        let (tgid, _) = process::current();
        if tgid <= 0 {
            return Default::default();
        }
        self.containers.limits(&self.container_of(tgid))
    }

    /// The memory limit the calling task's container sees: the smaller of the
    /// sandbox's and its own.
    pub fn memory_limit_view(&self) -> Option<u64> {
        containers::tighter(self.resources.memory_limit(), self.current_limits().memory)
    }

    /// The CPU quota and period the calling task's container sees: the smaller
    /// share of the sandbox's and its own.
    pub fn cpu_max_view(&self) -> Option<(u64, u64)> {
        match (self.resources.cpu_max(), self.current_limits().cpu) {
            (Some(pod), Some(own)) => {
                let share = |(q, p): (u64, u64)| q as f64 / p.max(1) as f64;
                Some(if share(own) < share(pod) { own } else { pod })
            }
            (pod, own) => own.or(pod),
        }
    }

    /// The pids limit the calling task's container sees.
    pub fn pids_limit_view(&self) -> Option<u64> {
        containers::tighter(self.resources.pids_limit(), self.current_limits().pids)
    }

    /// The memory the sandbox uses (see [`resources::Resources::memory_usage`]).
    pub fn memory_usage(&self) -> resources::MemUsage {
        let own = self.mem.pages() * crate::fs::memfile::PAGE;
        self.resources.memory_usage(own)
    }

    /// The pid namespace.
    pub fn registry(&self) -> SysResult<MutexGuard<'_, process::Registry>> {
        self.registry.lock().map_err(|_| Errno::EIO)
    }

    /// A fresh thread id in the container's pid namespace (the first is 1); ids in
    /// use by a live thread or an unreaped process are skipped.
    pub fn alloc_tid(&self) -> SysResult<i32> {
        let reg = self.registry()?;
        for _ in 0..PID_MAX {
            let mut t = self.next_tid.fetch_add(1, Ordering::Relaxed);
            if t >= PID_MAX {
                self.next_tid.store(2, Ordering::Relaxed);
                t = 2;
            }
            if !reg.threads.contains_key(&t) && !reg.groups.contains_key(&t) {
                return Ok(t);
            }
        }
        Err(Errno::EAGAIN)
    }

    /// Counts a task thread that has started.
    pub fn thread_started(&self) {
        if let Ok(mut n) = self.live_threads.lock() {
            *n += 1;
        }
    }

    /// Counts a task thread that has ended.
    pub fn thread_exited(&self) {
        if let Ok(mut n) = self.live_threads.lock() {
            *n = n.saturating_sub(1);
        }
        self.lifecycle.notify_all();
    }

    /// Task threads still running.
    pub fn live_threads(&self) -> usize {
        self.live_threads.lock().map(|n| *n).unwrap_or(0)
    }

    /// Records how the container's init ended.
    pub fn init_exited(&self, tgid: i32, status: ExitStatus) {
        if tgid == 1 {
            if let Ok(mut s) = self.init_status.lock() {
                *s = Some(status);
            }
            self.lifecycle.notify_all();
        }
    }

    /// How init ended, once it has.
    pub fn init_status(&self) -> Option<ExitStatus> {
        self.init_status.lock().ok().and_then(|s| *s)
    }

    /// Counts process `tgid`, killed from outside the sandbox (its stub died), for
    /// the container it belongs to.
    pub fn note_host_kill(&self, tgid: i32) {
        let owner = self.container_of(tgid);
        tracing::warn!(tgid, container = %owner, "process killed from outside the sandbox");
        self.containers.note_host_kill(&owner);
    }

    /// SIGKILLs every process but `keep`.
    pub fn kill_all_except(&self, keep: i32) {
        let groups: Vec<Arc<process::ThreadGroup>> = match self.registry() {
            Ok(r) => r
                .groups
                .values()
                .filter(|g| g.tgid != keep)
                .cloned()
                .collect(),
            Err(_) => return,
        };
        for g in groups {
            process::kill_group(
                &g,
                ExitStatus::Signaled {
                    signo: libc::SIGKILL,
                    core: false,
                },
            );
        }
    }

    /// The sandbox's vDSO (made at the first call), or `None` if it has none.
    pub fn vdso(&self) -> Option<&Arc<vdso::Vdso>> {
        self.vdso.get_or_init(vdso::for_sandbox).as_ref()
    }

    /// What `clock_gettime(clock)` answers for the clocks that do not count CPU
    /// time: the sandbox's vDSO line where it serves, else the host's clock.
    pub fn clock_now(&self, clock: i32) -> SysResult<libc::timespec> {
        vdso::clock_now(self.vdso().map(|v| &**v), clock)
    }

    /// Logs `msg` once per `key` (one of [`warn_key`], kept apart from syscall
    /// numbers) in this sandbox: for refusals a program may retry in a loop.
    pub fn warn_once(&self, key: u64, msg: &str) {
        if let Ok(mut seen) = self.reported_unimplemented.lock() {
            if seen.insert(key | 1 << 32) {
                tracing::warn!("{msg}");
            }
        }
    }

    /// Logs an unimplemented syscall once per number.
    pub fn report_unimplemented(&self, nr: u64, name: &str) {
        if let Ok(mut seen) = self.reported_unimplemented.lock() {
            if seen.insert(nr) {
                tracing::warn!(nr, "unimplemented syscall {name} ({nr}): returning ENOSYS");
            }
        }
    }
}

/// The keys of [`Kernel::warn_once`]: each refusal a program may retry in a loop
/// is logged once per sandbox (not per host process: two sandboxes or test
/// kernels each log their own).
pub mod warn_key {
    /// `mq_notify` with `SIGEV_THREAD`.
    pub const MQ_NOTIFY_THREAD: u64 = 1 << 42;
    /// `seccomp` with `SECCOMP_FILTER_FLAG_NEW_LISTENER`.
    pub const SECCOMP_LISTENER: u64 = 1 << 43;
    /// A socket family the sandbox refuses: this plus the family number.
    pub const SOCKET_FAMILY: u64 = 1 << 44;
    /// `PTRACE_POKEUSER` setting a debug register (a hardware breakpoint or
    /// watchpoint).
    pub const PTRACE_DEBUGREG: u64 = 1 << 45;
}
