//! The hidden subcommands `boot` (the sentry) and `gofer` (the file server), which
//! the CLI starts with `/proc/self/exe`.

use std::fs::File;
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

/// Exit status of `boot` or `gofer` after a panic (sysexits' EX_SOFTWARE). A program
/// may exit with it too: for `boot` the runtime also checks the report fd, which only
/// the panic hook writes.
pub const PANICKED: i32 = 70;

/// Makes any panic of this process end it at once: one log line with the message and
/// where it happened (to the debug log; to stderr as well unless `report` takes it to
/// the runtime), the message written into `report`, then exit with [`PANICKED`]. No
/// unwinding: a task thread that panicked would otherwise leave the sentry's other
/// threads waiting for it forever. For the sentry, its exit ends every stub (it is
/// init of their pid namespace; they also die with it by `PR_SET_PDEATHSIG`).
fn exit_on_panic(role: &'static str, report: Option<File>) {
    std::panic::set_hook(Box::new(move |info| {
        let what = info.payload_as_str().unwrap_or("(no message)");
        let msg = match info.location() {
            Some(l) => format!("{what} at {}:{}", l.file(), l.line()),
            None => what.to_string(),
        };
        let msg = crate::one_line(&msg);
        match &report {
            Some(f) => {
                use std::os::unix::fs::FileExt;
                let _ = f.write_all_at(msg.as_bytes(), 0);
            }
            None => crate::print_err(&format!("rvisor {role}: {role} panicked: {msg}")),
        }
        tracing::error!(target: logging::FAILURE_TARGET, "{role} panicked: {msg}");
        sentry::sys::isolation::exit_now(PANICKED);
    }));
}

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
    let report = match args.report_fd {
        Some(n) => Some(File::from(adopt_fd(n, "--report-fd")?)),
        None => None,
    };
    let net_device = match args.net_fd {
        Some(n) => Some(adopt_fd(n, "--net-fd")?),
        None => None,
    };
    exit_on_panic("sentry", report);
    let mut text = String::new();
    File::from(config_fd)
        .read_to_string(&mut text)
        .context("--config-fd: read")?;
    let config: BootConfig =
        serde_json::from_str(&text).context("--config-fd: invalid boot config")?;
    logging::init(Role::Boot, &config.id, g, config.strace)?;
    tracing::info!(id = %config.id, platform = %config.platform, "booting sandbox");
    // With a control channel the sentry reports setup failures there, and the
    // runtime prints them; stderr is the container's.
    let quiet = control.is_some();
    match sentry::boot::run(config, gofer, control, net_device) {
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
    exit_on_panic("gofer", None);
    logging::init(Role::Gofer, &args.id, g, false)?;
    tracing::info!(root = %args.root.display(), readonly = args.readonly, "gofer serving");
    // Confinement (own mount namespace holding only the root, seccomp allow-list)
    // happens here, while the process is still single-threaded.
    let upper = args
        .upper_fd
        .map(|n| adopt_fd(n, "--upper-fd"))
        .transpose()?;
    let server = gofer::confine::confine_with_upper(
        &args.root,
        &args.mounts,
        sock.as_fd(),
        args.readonly,
        gofer::confine::ConfineOptions {
            weak: g.unsafe_weak_confinement,
            ..Default::default()
        },
        upper,
    )
    .with_context(|| format!("confine the gofer to {}", args.root.display()))?;
    server
        .run(sock)
        .with_context(|| format!("serve {}", args.root.display()))?;
    tracing::info!("sentry hung up; gofer exiting");
    Ok(0)
}
