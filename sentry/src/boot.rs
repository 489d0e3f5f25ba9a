//! `rvisor boot`: the sentry's entry point. Builds the kernel from a [`BootConfig`],
//! starts the container's first process and returns how it ended.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::config::BootConfig;
use crate::control;
use crate::fs::host::HostStream;
use crate::fs::memfile::MemoryFile;
use crate::fs::tmpfs::Tmpfs;
use crate::kernel::creds::{CapSets, Credentials, ALL_CAPS, CAP_NET_RAW};
use crate::kernel::limits::{Limit, Limits};
use crate::kernel::spawn::{self, ProcessSpec, StartError};
use crate::kernel::{ExitStatus, Kernel};
use crate::platform;
use crate::sys::{confine, host, isolation};
use crate::vfs::mount::{self, FsConstructor, Mount, MountTable};
use crate::vfs::path::{resolve, Follow};
use crate::vfs::{Dentry, FdTable, FsContext, OpenFile};

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
/// caller's fds 0, 1 and 2 become the application's stdio. Errors are setup failures
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
) -> Result<SandboxExit, String> {
    let control = control.map(control::Server::new);
    // First, while the process is single-threaded: from here on this is the sentry,
    // pid 1 of the sandbox's own pid namespace (the caller's process waits for it).
    let mut confinement = isolation::Confinement::new(config.weak_confinement);
    // The memory file raises RLIMIT_NOFILE's hard limit, which only the host's user
    // namespace may do: before the sentry leaves it.
    if let Err(e) = MemoryFile::global() {
        return Err(format!("memory file: {e}"));
    }
    if let Err(e) = confine::no_core_dumps().and_then(|()| confinement.enter_namespaces()) {
        if let Some(c) = &control {
            (c.failure_reporter())(&e);
        }
        return Err(e);
    }
    set_testonly_panic();
    run_inner(config, gofer, control, confinement)
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
    // The memory file exists before confinement; tmpfs data goes there.
    MemoryFile::global().map_err(|e| format!("memory file: {e}"))?;
    // The vDSO reads the host's clock source while /sys is still there.
    crate::kernel::vdso::start();
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
        root.clone(),
        config.hostname.clone(),
        config.strace,
        resources,
    );
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
    crate::net::configure(&config).map_err(fail)?;
    // From here on the sentry needs nothing the allow-list does not name.
    confinement.isolate_filesystem().map_err(fail)?;
    confinement
        .drop_sentry_privileges(stub_forks)
        .map_err(fail)?;
    confine::install_sentry_filter(platform_name).map_err(fail)?;

    kernel
        .net_raw
        .store(config.net_raw, std::sync::atomic::Ordering::Relaxed);
    let mut spec = process_spec(&root, fds, &config.process, 0, config.net_raw).map_err(fail)?;
    let mut shared = None;
    if let Some(c) = control {
        c.set_sandbox(&config.id, &config.overlay);
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

/// Filesystem constructors by mount kind (`mqueue` is the root IPC namespace's
/// queues). `proc`, `sysfs`, `devtmpfs` and `devpts` fall back to an empty tmpfs until their own filesystems register here.
///
/// `bind` entries are the gofer's bind mounts, attached by position: the runtime
/// passes the gofer one `--mount` per `bind` entry of `config.mounts`, in the same
/// order, and the mount table builds the entries in order, so the n-th `bind`
/// constructed is the gofer's mount n.
///
/// `devices` are the spec's emulated `linux.devices`, added to devfs; a clash with
/// devfs's own entries is an error naming the path.
pub(crate) fn fs_constructors(
    kernel: &Arc<Kernel>,
    client: &Arc<gofer::Client>,
    devices: &[crate::config::DeviceConfig],
) -> Result<HashMap<String, FsConstructor>, String> {
    let mut m: HashMap<String, FsConstructor> = HashMap::new();
    // A tmpfs without `size=` gets half the machine's memory, as on Linux; with a
    // memory limit that machine is the limit, so filling a tmpfs ends in ENOSPC
    // before the host cgroup runs out (its pages, written by the sentry, count for
    // no process the host's OOM killer could pick but the sentry).
    let tmpfs = Tmpfs::constructor();
    let half = kernel.resources.memory_limit().map(|l| l / 2);
    m.insert(
        "tmpfs".to_string(),
        Box::new(move |mc| match half {
            Some(h) if !mc.options.iter().any(|o| o.starts_with("size=")) => {
                let mut sized = mc.clone();
                sized.options.push(format!("size={h}"));
                tmpfs(&sized)
            }
            _ => tmpfs(mc),
        }),
    );
    let mq = kernel.root_ns.ipc.mq.clone();
    m.insert("mqueue".to_string(), Box::new(move |_| Ok(mq.root())));
    let next_bind = std::sync::atomic::AtomicU32::new(0);
    let client = client.clone();
    m.insert(
        "bind".to_string(),
        Box::new(move |mc| {
            let index = next_bind.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (flags, _) = mount::parse_options(&mc.options);
            crate::fs::gofer::GoferFs::mount_bind(
                client.clone(),
                index,
                flags & libc::MS_RDONLY != 0,
            )
        }),
    );
    let k = Arc::downgrade(kernel);
    m.insert(
        "proc".to_string(),
        Box::new(move |_| {
            k.upgrade()
                .map(|k| crate::fs::procfs::new_root(&k))
                .ok_or(crate::errno::Errno::EIO)
        }),
    );
    // devfs carries its own pts directory (so /dev/ptmx and /dev/pts share ptys);
    // a separate devpts mount over /dev/pts is therefore the same tree.
    let devfs =
        crate::fs::devfs::new_root_with(devices).map_err(|e| format!("linux.devices: {e}"))?;
    let devfs2 = devfs.clone();
    m.insert("devtmpfs".to_string(), Box::new(move |_| Ok(devfs.clone())));
    m.insert(
        "devpts".to_string(),
        Box::new(move |_| devfs2.lookup(b"pts")),
    );
    let kc = Arc::downgrade(kernel);
    let cgroupfs: FsConstructor = Box::new(move |_| {
        kc.upgrade()
            .map(|k| crate::fs::cgroupfs::new_root(&k))
            .ok_or(crate::errno::Errno::EIO)
    });
    m.insert("cgroup2".to_string(), cgroupfs);
    let ncpus = kernel.ncpus;
    m.insert(
        "sysfs".to_string(),
        Box::new(move |_| Ok(crate::fs::sysfs::new_root(ncpus))),
    );
    Ok(m)
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

/// The credentials a process started from outside the sandbox has just before its
/// program is exec'd (see [`Credentials::for_container`]).
pub fn process_creds(p: &crate::config::ProcessConfig, net_raw: bool) -> Credentials {
    let groups = p.additional_gids.clone();
    let mut caps = match &p.capabilities {
        Some(c) => CapSets {
            bounding: c.bounding,
            effective: c.effective,
            inheritable: c.inheritable,
            permitted: c.permitted,
            ambient: c.ambient,
        },
        None => {
            let all = if p.uid == 0 { ALL_CAPS } else { 0 };
            CapSets {
                bounding: ALL_CAPS,
                effective: all,
                permitted: all,
                ..Default::default()
            }
        }
    };
    if !net_raw {
        caps = caps.without(CAP_NET_RAW);
    }
    Credentials::for_container(p.uid, p.gid, groups, &caps, p.no_new_privs)
}

/// A process started from outside the sandbox (the first one, or an exec'd one),
/// from its config, with root `root`, open files `fds` and parent `parent` (0: none
/// in the sandbox). Without `net_raw` (the runtime's `--net-raw`), CAP_NET_RAW is
/// taken from every capability set whatever the config asks.
pub fn process_spec(
    root: &Arc<Dentry>,
    fds: FdTable,
    p: &crate::config::ProcessConfig,
    parent: i32,
    net_raw: bool,
) -> Result<ProcessSpec, String> {
    if p.args.is_empty() {
        return Err("process.args: must not be empty".into());
    }
    let start = FsContext {
        root: root.clone(),
        cwd: root.clone(),
        umask: 0o022,
    };
    let cwd = resolve(&start, root, p.cwd.as_bytes(), Follow::Yes)
        .map_err(|e| format!("process.cwd {:?}: {e}", p.cwd))?;
    if !cwd.inode().stat().map(|s| s.is_dir()).unwrap_or(false) {
        return Err(format!("process.cwd {:?}: not a directory", p.cwd));
    }
    let fs = FsContext {
        root: root.clone(),
        cwd,
        umask: 0o022,
    };
    let creds = process_creds(p, net_raw);
    let mut limits = Limits::default();
    for r in &p.rlimits {
        limits
            .set(
                r.resource,
                Limit {
                    cur: r.soft,
                    max: r.hard,
                },
                true,
            )
            .map_err(|e| format!("process.rlimits: resource {}: {e}", r.resource))?;
    }
    Ok(ProcessSpec {
        argv: p.args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        envp: p.env.iter().map(|e| e.as_bytes().to_vec()).collect(),
        fs,
        creds,
        limits,
        fds,
        parent,
        oom_score_adj: p.oom_score_adj,
        gate: None,
        seccomp: p
            .seccomp
            .as_ref()
            .map(crate::kernel::seccomp_spec::compile)
            .transpose()?,
    })
}
