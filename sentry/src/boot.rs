//! `rvisor boot`: the sentry's entry point. Builds the kernel from a [`BootConfig`],
//! starts the container's first process and returns how it ended.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::config::BootConfig;
use crate::control::{self, setup::fs_constructors, setup::process_spec};
use crate::fs::host::HostStream;
use crate::kernel::spawn::{self, StartError};
use crate::kernel::{ExitStatus, Kernel};
use crate::platform;
use crate::sys::{confine, host, isolation};
use crate::vfs::mount::{self, Mount, MountTable};
use crate::vfs::{Dentry, FdTable, OpenFile};

/// How the sandbox ended, for the CLI to turn into its own exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SandboxExit {
    /// The first process exited with this status.
    Exited(i32),
    /// The first process was killed by this signal.
    Signaled(i32),
}

impl SandboxExit {
    /// The status a shell would report: the code, or 128 + the signal.
    pub fn shell_status(self) -> i32 {
        match self {
            SandboxExit::Exited(c) => c & 0xff,
            SandboxExit::Signaled(s) => 128 + s,
        }
    }
}

/// Runs a sandbox. `gofer` is the connected socket to this sandbox's gofer; the
/// caller's fds 0, 1 and 2 become the application's stdio. `net_device` is the
/// packet socket on the pod's interface under `--network=sandbox`. Errors are setup failures
/// (bad config, platform unavailable, program not found), each naming what failed.
///
/// With a `control` socket (OCI `create`), the first process is loaded and then held
/// before its first instruction until the runtime sends `start` (see [`control`]);
/// setup failures are also reported there, and if the runtime hangs up before
/// `start` the process never runs.
pub fn run(
    config: BootConfig,
    gofer: OwnedFd,
    control: Option<OwnedFd>,
    net_device: Option<OwnedFd>,
) -> Result<SandboxExit, String> {
    let control = control.map(control::Server::new);
    // First, while the process is single-threaded: from here on this is the sentry,
    // pid 1 of the sandbox's own pid namespace (the caller's process waits for it).
    let mut confinement = isolation::Confinement::new(config.weak_confinement);
    // The memory file needs a host fd per file with data: RLIMIT_NOFILE's hard limit
    // is raised, which only the host's user namespace may do, before the sentry
    // leaves it.
    crate::fs::memfile::raise_nofile_limit();
    if config.network == "host" {
        // The program's sockets are made in the namespace the sentry runs in: the
        // spec's, when it names one, else the one it was started in.
        confinement.keep_host_network();
        if let Some(path) = &config.netns_path {
            if let Err(e) = crate::sys::hostnet::join_netns(path) {
                return Err(format!("--network=host: join {path}: {e}"));
            }
        }
    }
    if let Err(e) = confine::no_core_dumps().and_then(|()| confinement.enter_namespaces()) {
        if let Some(c) = &control {
            (c.failure_reporter())(&e);
        }
        return Err(e);
    }
    // In the namespaces' process (a fork's descriptor table is only as large as
    // its open descriptors need), before any thread.
    crate::sys::host_tmpfs::grow_fd_table();
    set_testonly_panic();
    // `RVISOR_TESTONLY_FILLER_FAILS`: every spare's filler fails to allocate, as
    // when the sandbox's memory limit is reached (only for the test of that case).
    if std::env::var_os("RVISOR_TESTONLY_FILLER_FAILS").is_some() {
        tracing::warn!("RVISOR_TESTONLY_FILLER_FAILS: no spare host tmpfs gets a filler");
        crate::sys::host_tmpfs::set_testonly_filler_fails();
    }
    run_inner(config, gofer, control, net_device, confinement)
}

/// `RVISOR_TESTONLY_PANIC_ON_SYSCALL=NAME`: the sentry panics in the task thread that
/// handles the application's system call `NAME`. Only for the test that shows a panic
/// ends the sandbox; read once at boot.
fn set_testonly_panic() {
    if let Ok(name) = std::env::var("RVISOR_TESTONLY_PANIC_ON_SYSCALL") {
        match crate::syscalls::number_of(&name) {
            Some(nr) => {
                tracing::warn!("RVISOR_TESTONLY_PANIC_ON_SYSCALL: the sentry panics on {name}");
                crate::syscalls::set_testonly_panic(nr);
            }
            None => {
                tracing::warn!("RVISOR_TESTONLY_PANIC_ON_SYSCALL: unknown system call {name:?}")
            }
        }
    }
}

fn run_inner(
    config: BootConfig,
    gofer: OwnedFd,
    control: Option<control::Server>,
    net_device: Option<OwnedFd>,
    confinement: isolation::Confinement,
) -> Result<SandboxExit, String> {
    let control_failed = control.as_ref().map(|c| c.failure_reporter());
    let report = |m: &str| {
        if let Some(r) = &control_failed {
            r(m);
        }
    };
    let fail = |e: String| {
        report(&e);
        e
    };
    confinement.prepare_stub_identity().map_err(fail)?;
    let platform = platform::by_name(&config.platform)
        .map_err(|e| format!("platform {:?}: cannot start: {e}", config.platform))
        .map_err(fail)?;
    // The platform actually running (`auto` resolved): its seccomp allow-list.
    let platform_name = platform.name();
    // ptrace stubs are forked from the sentry later (each exec), so it keeps what they
    // need to drop their own ids; systrap stubs come from the zygote, already dropped.
    let stub_forks = platform_name == "ptrace";
    // The spare host tmpfs instances for tmpfs mounts made once confined (about a
    // hundred mounts: tens of milliseconds on a busy host), made while the sentry may
    // still mount, in a thread of their own meanwhile the gofer handshake and the
    // mounts go on. After the platform: the systrap zygote is forked without them.
    let spares = std::thread::Builder::new()
        .name("tmpfs-spares".into())
        .spawn(crate::sys::host_tmpfs::make_spares)
        .map_err(|e| fail(format!("host tmpfs: cannot start the spares' thread: {e}")))?;
    let client = gofer::Client::new(gofer)
        .map_err(|e| format!("gofer: handshake failed: {e}"))
        .map_err(fail)?;
    let client = Arc::new(client);
    let root_inode = crate::fs::overlay::root_for(&config, client.clone()).map_err(fail)?;
    let readonly_root = config.readonly_rootfs;
    let root = Dentry::mount_root(
        root_inode,
        Mount::root_with_flags(if readonly_root { libc::MS_RDONLY } else { 0 }),
    );
    // Before confinement: the host cgroup's usage files are opened here.
    // With a CPU quota of its own, the sandbox gets ceil(quota/period) of the CPUs
    // it may run on: the count must not already be cut (and rounded down, as std
    // does) by that quota on the host cgroup.
    let host_cpus = if config.resources.cpu_quota.is_some() {
        affinity_cpus()
    } else {
        None
    }
    .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
    .unwrap_or(1);
    let resources = crate::kernel::resources::Resources::from_config(&config.resources, host_cpus);
    let kernel = Kernel::with_resources(
        platform,
        &crate::syscalls::TABLE,
        root.clone(),
        config.hostname.clone(),
        config.strace,
        resources,
    );
    // The vDSO reads the host's clock source while /sys is still there.
    if let Some(v) = kernel.vdso() {
        crate::kernel::vdso::start(v);
    }
    let mounts = MountTable::new();
    mounts
        .mount_all(
            &root,
            &mount::with_defaults(&config.mounts, readonly_root, &root),
            &fs_constructors(&kernel, &client, &config.devices).map_err(fail)?,
        )
        .map_err(fail)?;
    crate::vfs::protect::apply(&mounts, &root, &config.masked_paths, &config.readonly_paths)
        .map_err(fail)?;

    let fds = stdio_table().map_err(fail)?;
    // The pod's interface (its packet socket, its eventfd) before the filter, which
    // names that socket's fd.
    crate::net::configure(&kernel.net, &config, net_device).map_err(fail)?;
    // The spares are all made (their thread ends) before the sentry drops its
    // capabilities.
    let waited = std::time::Instant::now();
    let joined = spares.join();
    tracing::debug!(
        micros = waited.elapsed().as_micros() as u64,
        "host tmpfs: waited for the spares"
    );
    if joined.is_err() {
        return Err(fail(
            "host tmpfs: the thread making the spares panicked".into(),
        ));
    }
    // From here on the sentry needs nothing the allow-list does not name.
    confinement.isolate_filesystem().map_err(fail)?;
    confinement
        .drop_sentry_privileges(stub_forks)
        .map_err(fail)?;
    confine::install_sentry_filter(
        platform_name,
        kernel.net.packet_fd(),
        crate::net::host::host().is_some(),
    )
    .map_err(fail)?;

    kernel
        .net_raw
        .store(config.net_raw, std::sync::atomic::Ordering::Relaxed);
    kernel.syscall_patching.store(
        config.syscall_patching,
        std::sync::atomic::Ordering::Relaxed,
    );
    let mut spec = process_spec(&root, fds, &config.process, 0, config.net_raw).map_err(fail)?;
    let mut shared = None;
    if let Some(c) = control {
        c.set_sandbox(&config.id, &config.overlay, config.overlay_size);
        shared = Some(c.shared());
        // OCI create: the first process is loaded, then held until `start`.
        let k = Arc::downgrade(&kernel);
        spec.gate = Some(Box::new(move || match c.created(k) {
            Ok(go) => go.recv() == Ok(control::Go::Start),
            Err(e) => {
                tracing::warn!("control channel: {e}");
                false
            }
        }));
    }
    match spawn::start_process(&kernel, spec) {
        Ok(_) => {}
        Err(StartError::NotFound(m)) => {
            // With a control channel the runtime prints it; otherwise it is ours to say.
            if control_failed.is_some() {
                report(&m);
            } else {
                eprintln!("rvisor: {m}");
            }
            return Ok(SandboxExit::Exited(127));
        }
        Err(StartError::NotExecutable(m)) => {
            // With a control channel the runtime prints it; otherwise it is ours to say.
            if control_failed.is_some() {
                report(&m);
            } else {
                eprintln!("rvisor: {m}");
            }
            return Ok(SandboxExit::Exited(126));
        }
        Err(StartError::Setup(m)) => return Err(fail(m)),
    }
    if let Some(sh) = &shared {
        // Added containers' first processes still held when init ends would keep
        // their threads (and so the sandbox) alive.
        wait_init_exit(&kernel);
        sh.abandon_all();
    }
    let status = spawn::wait_for_init(&kernel);
    kernel.timers.stop();
    Ok(match status {
        ExitStatus::Exited(c) => SandboxExit::Exited(c),
        ExitStatus::Signaled { signo, .. } => SandboxExit::Signaled(signo),
    })
}

/// CPUs this thread may run on, by its affinity mask.
fn affinity_cpus() -> Option<usize> {
    use nix::sched::{sched_getaffinity, CpuSet};
    let set = sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()?;
    let n = (0..CpuSet::count())
        .filter(|&i| set.is_set(i).unwrap_or(false))
        .count();
    (n > 0).then_some(n)
}

/// Blocks until the container's init has exited (its other tasks may still run).
fn wait_init_exit(kernel: &Arc<Kernel>) {
    let w = crate::kernel::wait::Waker::new();
    let _reg = kernel.lifecycle.register(&w);
    let _ = crate::kernel::wait::block(&w, None, || false, || Ok(kernel.init_status()));
}

/// The first process's fd table: the caller's stdio, passed through.
fn stdio_table() -> Result<FdTable, String> {
    let mut fds = FdTable::new();
    for fd in 0..3 {
        // A closed stdio fd stays closed for the app, as it was for the caller.
        if let Ok(own) = host::dup_raw(fd) {
            let file = OpenFile::new(Box::new(HostStream::new(own)), None, libc::O_RDWR);
            fds.insert_at(fd, file, false, 3)
                .map_err(|e| format!("stdio fd {fd}: {e}"))?;
        }
    }
    Ok(fds)
}
