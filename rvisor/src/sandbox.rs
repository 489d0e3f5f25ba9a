//! Starting one sandbox: the gofer and the sentry (`boot`) as children of the CLI.
//!
//! The CLI makes a `SOCK_SEQPACKET` socketpair, hands one end to `rvisor gofer` and
//! the other, with the JSON [`BootConfig`] in a memfd, to `rvisor boot`, then waits for
//! boot and passes its exit status on. SIGINT and SIGTERM sent to the CLI by another
//! process are forwarded to boot; the ones a terminal sends already reach boot itself
//! (it stays in the terminal's foreground process group), so those are not doubled.
//! The gofer gets its own process group so a terminal's ^C cannot kill it under a
//! running sentry.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use sentry::config::BootConfig;

use crate::cli::GlobalOpts;
use crate::internal::PANICKED;

/// Environment variable telling `boot` and `gofer` which pid must stay their parent.
pub const PARENT_PID_ENV: &str = "RVISOR_PARENT_PID";

// `si_code` of a signal the kernel itself raised (e.g. a terminal's ^C).
use abi::signal::SI_KERNEL;

/// How long the gofer may take to notice the sentry hung up before it is killed.
const GOFER_GRACE: Duration = Duration::from_secs(1);

/// What to serve and run.
pub struct Launch<'a> {
    pub config: BootConfig,
    pub rootfs: &'a Path,
    pub readonly: bool,
    /// The spec's bind mounts, served by the gofer besides the rootfs; the sentry
    /// attaches them by position (the `bind` entries of `config.mounts`, in order).
    pub binds: Vec<gofer::BindMount>,
    /// The sentry's end of the control channel (OCI create): boot holds the first
    /// process until `start`.
    pub control: Option<OwnedFd>,
    /// The application's stdin, stdout and stderr (a terminal's slave); else the
    /// CLI's own.
    pub stdio: Option<OwnedFd>,
    /// The container's `process.oomScoreAdj`, which its gofer gets.
    pub oom_score_adj: Option<i32>,
}

/// Requests served while boot runs: `handle` is called (with boot's pid) whenever
/// `fd` is readable.
pub struct Service<'a> {
    pub fd: std::os::fd::BorrowedFd<'a>,
    pub handle: &'a mut dyn FnMut(Pid),
}

/// Called with boot's pid once it runs (to record container state).
pub type OnStart<'a> = &'a mut dyn FnMut(u32) -> Result<()>;

fn set_inheritable(fd: &OwnedFd, inherit: bool) -> Result<()> {
    let flags = if inherit {
        FdFlag::empty()
    } else {
        FdFlag::FD_CLOEXEC
    };
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(flags)).context("fcntl(F_SETFD)")?;
    Ok(())
}

/// Marks every descriptor above stdio that this process inherited close-on-exec, so
/// none of them reaches the gofer or the sentry: whatever the caller leaked (a CI
/// runner's lock file, a shim's socket) would otherwise sit open in the sandbox's
/// processes, a host handle outside the boundary. Children get exactly the fds
/// [`spawn_with_fds`] names.
pub fn seal_inherited_fds() -> Result<()> {
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .context("list /proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // The directory's own fd is gone by now (EBADF), and already close-on-exec.
        match fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)) {
            Ok(_) | Err(nix::errno::Errno::EBADF) => {}
            Err(e) => return Err(e).with_context(|| format!("fcntl({fd}, F_SETFD)")),
        }
    }
    Ok(())
}

/// Spawns `cmd` with `fds` (normally close-on-exec) inherited by it alone. The CLI
/// is single-threaded here, so no other spawn can see the flags cleared.
pub fn spawn_with_fds(cmd: &mut Command, fds: &[&OwnedFd], what: &str) -> Result<Child> {
    for fd in fds {
        set_inheritable(fd, true)?;
    }
    let child = cmd.spawn().with_context(|| format!("spawn {what}"));
    for fd in fds {
        set_inheritable(fd, false)?;
    }
    child
}

fn self_command(g: &GlobalOpts, sub: &str) -> Command {
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("rvisor")
        .args(g.forwarded())
        .arg(sub)
        .env(PARENT_PID_ENV, std::process::id().to_string());
    cmd
}

fn pid_of(c: &Child) -> Pid {
    Pid::from_raw(c.id() as i32)
}

fn status_code(s: WaitStatus) -> Option<i32> {
    match s {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Runs the sandbox to completion and returns the exit status for the CLI.
pub fn run(
    g: &GlobalOpts,
    mut launch: Launch<'_>,
    on_start: OnStart<'_>,
    service: Option<Service<'_>>,
) -> Result<i32> {
    let (gofer_end, sentry_end) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair")?;
    // --network=sandbox: the interface is read and its packet socket opened here,
    // before the config is written (it carries the interface's addresses).
    let net = crate::netdev::attach(&mut launch.config)?;
    // Whichever way this returns, the interface goes back to the host kernel.
    let _give_back = crate::netdev::GiveBack(launch.config.clone());

    let config_fd = memfd_create(c"rvisor-boot-config", MemFdCreateFlag::MFD_CLOEXEC)
        .context("memfd_create")?;
    let mut config_file = File::from(config_fd);
    // One write: serde_json writes each token on its own (hundreds of system calls).
    let json = serde_json::to_vec(&launch.config).context("write boot config")?;
    config_file.write_all(&json).context("write boot config")?;
    config_file.rewind().context("write boot config")?;
    let config_fd = OwnedFd::from(config_file);
    // Where a panicking sentry leaves its message (see internal::exit_on_panic).
    let report = memfd_create(c"rvisor-boot-report", MemFdCreateFlag::MFD_CLOEXEC)
        .context("memfd_create")?;

    // Blocked before any child exists so no SIGCHLD or forwarded signal is missed;
    // boot and gofer clear the mask they inherit (see internal::die_with_parent).
    let mut mask = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGCHLD] {
        mask.add(s);
    }
    mask.thread_block().context("sigprocmask")?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("signalfd")?;

    // Before the first child: the gofer, boot and every stub inherit the cookie.
    crate::core_scheduling::apply(g)?;
    let mut gofer = spawn_gofer(
        g,
        &launch.config.id,
        launch.rootfs,
        launch.readonly,
        &launch.binds,
        &gofer_end,
        launch.config.overlay == crate::cli::Overlay::SelfFile.name(),
    )?;
    drop(gofer_end);
    tracing::info!(id = %launch.config.id, pid = gofer.id(), "gofer started");
    crate::oom_adj::apply_to_gofer(gofer.id(), launch.oom_score_adj);

    let mut boot_cmd = self_command(g, "boot");
    boot_cmd.args([
        OsString::from(format!("--config-fd={}", config_fd.as_raw_fd())),
        OsString::from(format!("--gofer-fd={}", sentry_end.as_raw_fd())),
    ]);
    boot_cmd.arg(format!("--report-fd={}", report.as_raw_fd()));
    let mut inherit = vec![&config_fd, &sentry_end, &report];
    if let Some(c) = &launch.control {
        boot_cmd.arg(format!("--control-fd={}", c.as_raw_fd()));
        inherit.push(c);
    }
    if let Some(n) = &net {
        boot_cmd.arg(format!("--net-fd={}", n.as_raw_fd()));
        inherit.push(n);
    }
    if let Some(t) = &launch.stdio {
        let dup = |what| {
            t.try_clone()
                .map(Stdio::from)
                .with_context(|| format!("dup terminal for {what}"))
        };
        boot_cmd
            .stdin(dup("stdin")?)
            .stdout(dup("stdout")?)
            .stderr(dup("stderr")?);
    }
    let boot = match spawn_with_fds(&mut boot_cmd, &inherit, "boot") {
        Ok(b) => b,
        Err(e) => {
            let _ = gofer.kill();
            let _ = gofer.wait();
            return Err(e);
        }
    };
    drop(sentry_end);
    drop(config_fd);
    drop(launch.control);
    drop(launch.stdio);
    tracing::info!(pid = boot.id(), "boot started");

    let mut waiter = Waiter {
        sfd,
        boot: pid_of(&boot),
        gofer: pid_of(&gofer),
        gofer_status: None,
        gofer_panicked: false,
        boot_done: false,
    };
    if let Err(e) = on_start(boot.id()) {
        let _ = kill(waiter.boot, Signal::SIGKILL);
        let _ = waiter.wait_boot(None);
        waiter.finish_gofer();
        return Err(e);
    }
    let status = waiter.wait_boot(service);
    waiter.finish_gofer();
    let status = status?;
    if status == PANICKED {
        let mut msg = String::new();
        let _ = File::from(report).read_to_string(&mut msg);
        if !msg.is_empty() {
            anyhow::bail!("sandbox failed: sentry panicked: {}", crate::one_line(&msg));
        }
    }
    if waiter.gofer_panicked {
        anyhow::bail!("sandbox failed: gofer panicked (its message is above)");
    }
    Ok(status)
}

/// Starts `rvisor gofer` serving `rootfs` (and `binds`) on `sock`, in its own
/// process group; it dies with this process. With `upper_files` (the sandbox's
/// overlay is `self`) it also makes the overlay's upper-layer files.
pub fn spawn_gofer(
    g: &GlobalOpts,
    id: &str,
    rootfs: &Path,
    readonly: bool,
    binds: &[gofer::BindMount],
    sock: &OwnedFd,
    upper_files: bool,
) -> Result<Child> {
    let mut gofer_cmd = self_command(g, "gofer");
    gofer_cmd
        .arg("--root")
        .arg(rootfs)
        .arg(format!("--sock-fd={}", sock.as_raw_fd()))
        .arg(format!("--id={id}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0);
    if readonly {
        gofer_cmd.arg("--readonly");
    }
    // --overlay=self: the gofer makes the sentry's upper-layer files (unnamed) in
    // the rootfs directory, through this descriptor opened here, outside the
    // gofer's mount namespace (where the tree is read-only). Not for `do` on the
    // host's root, whose upper layer is in memory: the gofer would make (and throw
    // away) a probe file on the host's root filesystem at every start.
    let upper = if upper_files {
        let fd = gofer::open_bind_source(rootfs)?;
        let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            anyhow::bail!("rootfs {}: not a directory", rootfs.display());
        }
        gofer_cmd.arg(format!("--upper-fd={}", fd.as_raw_fd()));
        Some(fd)
    } else {
        None
    };
    // Each source is opened here, once, without following any symlink (the bundle
    // check canonicalized it: a symlink now was swapped in since), and the gofer
    // serves that descriptor; no path of a bind source is resolved again.
    let sources = binds
        .iter()
        .map(|b| gofer::open_bind_source(&b.src))
        .collect::<std::io::Result<Vec<OwnedFd>>>()?;
    for (b, fd) in binds.iter().zip(&sources) {
        let mut a = OsString::from("--mount=");
        a.push(b.arg_with_fd(fd.as_raw_fd()));
        gofer_cmd.arg(a);
    }
    let mut fds: Vec<&OwnedFd> = vec![sock];
    fds.extend(sources.iter());
    fds.extend(upper.iter());
    spawn_with_fds(&mut gofer_cmd, &fds, "gofer")
}

struct Waiter {
    sfd: SignalFd,
    boot: Pid,
    gofer: Pid,
    gofer_status: Option<i32>,
    /// The gofer exited with [`PANICKED`] while boot ran; boot was killed.
    gofer_panicked: bool,
    /// Boot was reaped (its pid may belong to another process now).
    boot_done: bool,
}

impl Waiter {
    fn reap_gofer(&mut self) {
        if self.gofer_status.is_none() {
            if let Ok(s) = waitpid(self.gofer, Some(WaitPidFlag::WNOHANG)) {
                if let Some(c) = status_code(s) {
                    tracing::debug!(status = c, "gofer exited");
                    self.gofer_status = Some(c);
                    if c == PANICKED && matches!(s, WaitStatus::Exited(..)) && !self.boot_done {
                        // Without its file server the sandbox cannot go on: end it now
                        // rather than let every file access fail.
                        self.gofer_panicked = true;
                        let _ = kill(self.boot, Signal::SIGKILL);
                    }
                }
            }
        }
    }

    /// Handles pending signals; returns once boot has exited.
    fn wait_boot(&mut self, mut service: Option<Service<'_>>) -> Result<i32> {
        loop {
            match waitpid(self.boot, Some(WaitPidFlag::WNOHANG)) {
                Ok(s) => {
                    if let Some(c) = status_code(s) {
                        self.boot_done = true;
                        tracing::info!(status = c, "boot exited");
                        return Ok(c);
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("waitpid(boot)"),
            }
            self.reap_gofer();
            let mut fds = vec![PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN)];
            if let Some(s) = &service {
                fds.push(PollFd::new(s.fd, PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("poll"),
            }
            let ready = fds
                .get(1)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty());
            if let (true, Some(s)) = (ready, service.as_mut()) {
                (s.handle)(self.boot);
            }
            while let Ok(Some(info)) = self.sfd.read_signal() {
                let signo = info.ssi_signo as i32;
                if (signo == libc::SIGINT || signo == libc::SIGTERM) && info.ssi_code != SI_KERNEL {
                    if let Ok(sig) = Signal::try_from(signo) {
                        tracing::debug!(?sig, "forwarding to boot");
                        let _ = kill(self.boot, sig);
                    }
                }
            }
        }
    }

    /// The gofer exits when the sentry's end of the socket closes; give it a moment,
    /// then make sure.
    fn finish_gofer(&mut self) {
        let deadline = Instant::now() + GOFER_GRACE;
        loop {
            self.reap_gofer();
            if self.gofer_status.is_some() {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(ms));
            while let Ok(Some(_)) = self.sfd.read_signal() {}
        }
        tracing::warn!("gofer still running {GOFER_GRACE:?} after the sentry exited; killing it");
        let _ = kill(self.gofer, Signal::SIGKILL);
        if let Ok(s) = waitpid(self.gofer, None) {
            self.gofer_status = status_code(s);
        }
    }
}
