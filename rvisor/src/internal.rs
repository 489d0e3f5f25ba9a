//! The hidden subcommands `boot` (the sentry) and `gofer` (the file server), which
//! the CLI starts with `/proc/self/exe`.

use std::io::{stdin, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use anyhow::{bail, Context, Result};
use nix::fcntl::{fcntl, FcntlArg};
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::{close, dup2, getppid};
use sentry::config::BootConfig;

use crate::cli::{BootArgs, GlobalOpts, GoferArgs};
use crate::logging::{self, Role};
use crate::sandbox::PARENT_PID_ENV;

/// Exit status of `boot` when the sentry could not set the sandbox up (like docker's
/// 125 for the runtime's own failures, so it differs from most program statuses).
pub const BOOT_SETUP_FAILED: i32 = 125;

/// Dies with the CLI: nothing of a sandbox may outlive the command that started it.
///
/// Also clears the signal mask: the CLI blocks SIGINT, SIGTERM and SIGCHLD before
/// spawning its children, and std's spawn does not always reset the mask.
fn die_with_parent() -> Result<()> {
    SigSet::empty().thread_set_mask().context("sigprocmask")?;
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("prctl(PR_SET_PDEATHSIG)")?;
    // The parent may have died before the prctl took effect.
    if let Ok(want) = std::env::var(PARENT_PID_ENV) {
        if want != getppid().to_string() {
            bail!("parent {want} exited before startup");
        }
    }
    Ok(())
}

/// Takes ownership of inherited fd `n`, leaving a close-on-exec copy and closing `n`.
///
/// Safe Rust can only obtain an `OwnedFd` for a raw number by duplicating one of the
/// standard streams, and unsafe code has no place in this crate, so fd 0 is borrowed
/// for a moment: `n` is put on fd 0, duplicated, and fd 0 restored. This runs before
/// anything else in the process, on its only thread.
pub fn adopt_fd(n: RawFd, flag: &str) -> Result<OwnedFd> {
    if n <= 2 {
        bail!("{flag}={n}: must not be a standard stream");
    }
    fcntl(n, FcntlArg::F_GETFD).with_context(|| format!("{flag}={n}: not an open fd"))?;
    let saved = stdin().as_fd().try_clone_to_owned().ok();
    dup2(n, 0).with_context(|| format!("{flag}={n}: dup2"))?;
    let owned = stdin().as_fd().try_clone_to_owned();
    match &saved {
        Some(s) => {
            dup2(s.as_raw_fd(), 0).context("restore stdin")?;
        }
        None => {
            let _ = close(0);
        }
    }
    drop(saved);
    let _ = close(n);
    owned.with_context(|| format!("{flag}={n}: dup"))
}

/// `rvisor boot`: returns the sandbox's shell-style exit status.
pub fn boot(g: &GlobalOpts, args: &BootArgs) -> Result<i32> {
    die_with_parent()?;
    let config_fd = adopt_fd(args.config_fd, "--config-fd")?;
    let gofer = adopt_fd(args.gofer_fd, "--gofer-fd")?;
    let control = match args.control_fd {
        Some(n) => Some(adopt_fd(n, "--control-fd")?),
        None => None,
    };
    let mut text = String::new();
    std::fs::File::from(config_fd)
        .read_to_string(&mut text)
        .context("--config-fd: read")?;
    let config: BootConfig =
        serde_json::from_str(&text).context("--config-fd: invalid boot config")?;
    logging::init(Role::Boot, &config.id, g, config.strace)?;
    tracing::info!(id = %config.id, platform = %config.platform, "booting sandbox");
    // With a control channel the sentry reports setup failures there, and the
    // runtime prints them; stderr is the container's.
    let quiet = control.is_some();
    match sentry::boot::run(config, gofer, control) {
        Ok(exit) => {
            tracing::info!(?exit, "sandbox exited");
            Ok(exit.shell_status())
        }
        Err(e) => {
            tracing::error!(target: logging::FAILURE_TARGET, "sentry setup failed: {e}");
            if !quiet {
                crate::print_err(&format!("rvisor boot: {e}"));
            }
            Ok(BOOT_SETUP_FAILED)
        }
    }
}

/// `rvisor gofer`: serves the rootfs until the sentry hangs up.
pub fn gofer(g: &GlobalOpts, args: &GoferArgs) -> Result<i32> {
    die_with_parent()?;
    let sock = adopt_fd(args.sock_fd, "--sock-fd")?;
    logging::init(Role::Gofer, &args.id, g, false)?;
    tracing::info!(root = %args.root.display(), readonly = args.readonly, "gofer serving");
    // Confinement (own mount namespace holding only the root, seccomp allow-list)
    // happens here, while the process is still single-threaded.
    let server = gofer::confine::confine_with_binds(
        &args.root,
        &args.mounts,
        sock.as_fd(),
        args.readonly,
        gofer::confine::ConfineOptions::default(),
    )
    .with_context(|| format!("confine the gofer to {}", args.root.display()))?;
    server
        .run(sock)
        .with_context(|| format!("serve {}", args.root.display()))?;
    tracing::info!("sentry hung up; gofer exiting");
    Ok(0)
}
