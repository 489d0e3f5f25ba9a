//! `rvisor boot`: the sentry's entry point. Builds the kernel from a [`BootConfig`],
//! starts the container's first process and returns how it ended.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::config::BootConfig;
use crate::fs::gofer::GoferFs;
use crate::fs::host::HostStream;
use crate::fs::memfile::MemoryFile;
use crate::fs::tmpfs::Tmpfs;
use crate::kernel::creds::Credentials;
use crate::kernel::exec::{self, ExecRequest};
use crate::kernel::limits::{Limit, Limits};
use crate::kernel::task::TaskInit;
use crate::kernel::{ExitStatus, Kernel, Task};
use crate::platform;
use crate::sys::{confine, host};
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
pub fn run(config: BootConfig, gofer: OwnedFd) -> Result<SandboxExit, String> {
    let platform = platform::by_name(&config.platform)
        .map_err(|e| format!("platform {:?}: cannot start: {e}", config.platform))?;
    let client = gofer::Client::new(gofer).map_err(|e| format!("gofer: handshake failed: {e}"))?;
    // The overlay is not built yet, so the root is always read-only for now.
    let root_inode = GoferFs::mount(Arc::new(client), true)
        .map_err(|e| format!("gofer: cannot attach the root: {e}"))?;
    let readonly_root = true;
    let root = Dentry::mount_root(
        root_inode,
        Mount::root_with_flags(if readonly_root { libc::MS_RDONLY } else { 0 }),
    );
    // The memory file exists before confinement; tmpfs data goes there.
    MemoryFile::global().map_err(|e| format!("memory file: {e}"))?;
    let mounts = MountTable::new();
    mounts.mount_all(
        &root,
        &mount::with_defaults(&config.mounts, readonly_root, &root),
        &fs_constructors(),
    )?;
    let kernel = Kernel::new(
        platform,
        root.clone(),
        config.hostname.clone(),
        config.strace,
    );

    let fds = stdio_table()?;
    // From here on the sentry needs nothing the allow-list does not name.
    confine::unshare_namespaces()?;
    confine::install_sentry_filter()?;
    let proc_cfg = config.process.clone();
    let worker = std::thread::Builder::new()
        .name("task-1".into())
        .spawn(move || -> Result<ExitStatus, String> {
            let mut task = start_init(kernel, root, fds, &proc_cfg)?;
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

/// Filesystem constructors by mount kind. `proc`, `sysfs`, `devtmpfs`, `devpts` and
/// `mqueue` fall back to an empty tmpfs until their own filesystems register here.
fn fs_constructors() -> HashMap<String, FsConstructor> {
    let mut m = HashMap::new();
    m.insert("tmpfs".to_string(), Tmpfs::constructor());
    m
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
