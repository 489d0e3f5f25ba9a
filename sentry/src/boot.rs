//! `rvisor boot`: the sentry's entry point. Builds the kernel from a [`BootConfig`],
//! starts the container's first process and returns how it ended.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::config::BootConfig;
use crate::control;
use crate::fs::gofer::GoferFs;
use crate::fs::host::HostStream;
use crate::fs::synthetic::MaskedRoot;
use crate::kernel::creds::Credentials;
use crate::kernel::exec::{self, ExecRequest};
use crate::kernel::limits::{Limit, Limits};
use crate::kernel::task::TaskInit;
use crate::kernel::{ExitStatus, Kernel, Task};
use crate::platform;
use crate::sys::{confine, host};
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
    run_inner(config, gofer, control.map(control::Server::new))
}

fn run_inner(
    config: BootConfig,
    gofer: OwnedFd,
    control: Option<control::Server>,
) -> Result<SandboxExit, String> {
    let fail = |e: String| {
        if let Some(c) = &control {
            c.failed(&e);
        }
        e
    };
    let platform = platform::by_name(&config.platform)
        .map_err(|e| format!("platform {:?}: cannot start: {e}", config.platform))
        .map_err(fail)?;
    let client = gofer::Client::new(gofer)
        .map_err(|e| format!("gofer: handshake failed: {e}"))
        .map_err(fail)?;
    // The overlay is not built yet, so the root is always read-only for now.
    let root_inode = GoferFs::mount(Arc::new(client), true)
        .map_err(|e| format!("gofer: cannot attach the root: {e}"))
        .map_err(fail)?;
    let root = Dentry::new_root(MaskedRoot::new(root_inode));
    let kernel = Kernel::new(
        platform,
        root.clone(),
        config.hostname.clone(),
        config.strace,
    );

    let fds = stdio_table().map_err(fail)?;
    // From here on the sentry needs nothing the allow-list does not name.
    confine::unshare_namespaces().map_err(fail)?;
    confine::install_sentry_filter().map_err(fail)?;
    let proc_cfg = config.process.clone();
    let worker = std::thread::Builder::new()
        .name("task-1".into())
        .spawn(move || -> Result<ExitStatus, String> {
            let task = start_init(kernel, root, fds, &proc_cfg);
            let mut task = match (task, control) {
                (Ok(t), None) => t,
                (Err(e), c) => {
                    if let Some(c) = c {
                        c.failed(&e);
                    }
                    return Err(e);
                }
                (Ok(t), Some(c)) => {
                    let go = c.created()?;
                    if go.recv() != Ok(control::Go::Start) {
                        return Err("the runtime went away before start".into());
                    }
                    t
                }
            };
            Ok(task.run())
        })
        .map_err(|e| format!("cannot start the task thread: {e}"))?;
    let status = worker
        .join()
        .map_err(|_| "the task thread panicked (a sentry bug)".to_string())??;
    Ok(match status {
        ExitStatus::Exited(c) => SandboxExit::Exited(c),
        ExitStatus::Signaled { signo, .. } => SandboxExit::Signaled(signo),
    })
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

/// Builds the container's init task on the calling thread (the platform binds the
/// new address space to it).
fn start_init(
    kernel: Arc<Kernel>,
    root: Arc<Dentry>,
    fds: FdTable,
    p: &crate::config::ProcessConfig,
) -> Result<Task, String> {
    if p.args.is_empty() {
        return Err("process.args: must not be empty".into());
    }
    let start = FsContext {
        root: root.clone(),
        cwd: root.clone(),
        umask: 0o022,
    };
    let cwd = resolve(&start, &root, p.cwd.as_bytes(), Follow::Yes)
        .map_err(|e| format!("process.cwd {:?}: {e}", p.cwd))?;
    if !cwd.inode().stat().map(|s| s.is_dir()).unwrap_or(false) {
        return Err(format!("process.cwd {:?}: not a directory", p.cwd));
    }
    let fs = FsContext {
        root: root.clone(),
        cwd,
        umask: 0o022,
    };
    let creds = Credentials::new(p.uid, p.gid, p.additional_gids.clone());
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
    let argv: Vec<Vec<u8>> = p.args.iter().map(|a| a.as_bytes().to_vec()).collect();
    let envp: Vec<Vec<u8>> = p.env.iter().map(|e| e.as_bytes().to_vec()).collect();
    let path =
        exec::lookup_path(&fs, &envp, &argv[0]).map_err(|e| format!("{}: {e}", p.args[0]))?;
    let stack_limit = limits.soft(libc::RLIMIT_STACK);
    let image = exec::load(
        &kernel,
        &fs,
        &creds,
        stack_limit,
        ExecRequest { path, argv, envp },
    )
    .map_err(|e| format!("cannot execute {}: {e}", p.args[0]))?;
    let ctx = kernel
        .platform
        .new_context(image.mm.space())
        .map_err(|e| format!("platform: cannot create the first thread: {e}"))?;
    let tid = kernel.alloc_tid();
    Ok(Task::new(
        kernel,
        TaskInit {
            tid,
            ppid: 0,
            regs: image.regs,
            ctx,
            mm: image.mm,
            fds,
            fs,
            creds,
            limits,
            exe: image.exe,
        },
    ))
}
