//! The OCI create/start split and the commands that act on an existing container.
//!
//! `create` claims `ROOT/<id>`, validates the bundle and spawns the *supervisor*
//! (hidden subcommand `supervise`): a long-lived process, in its own process group,
//! that is the parent of the sandbox's gofer and boot (both die with it). Its pid is
//! the container's OCI pid and it exits with the container's status, so a shim that
//! reaps it (as a subreaper) learns how the container ended. The supervisor:
//! - gives boot the sentry's end of the control channel (see `sentry::control`) and
//!   waits for `created`, runs the createRuntime/prestart/createContainer hooks, writes
//!   the state `created` and tells `create` through an inherited pipe;
//! - serves `ROOT/<id>/control.sock`: one JSON request line, one JSON reply line,
//!   relayed to the sentry, except what it carries out on the host itself (SIGKILL:
//!   it kills boot; `start` also runs the startContainer and poststart hooks);
//! - writes `stopped` and the exit status when boot exits.
//!
//! Requests may carry descriptors (`SCM_RIGHTS` on the request line): `exec` sends
//! the process's stdio and a status socket, which the supervisor passes on to the
//! sentry. A container whose annotations place it in a pod sandbox
//! (`io.kubernetes.cri.container-type: container`, `io.kubernetes.cri.sandbox-id`)
//! gets a supervisor of its own that joins the sandbox's sentry instead of booting
//! one (see [`supervise_added`]).
//!
//! `delete` removes the directory (killing the supervisor first with --force) and runs
//! the poststop hooks.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::Pid;
use oci_spec::runtime::{Hook, Spec};
use sentry::config::{BootConfig, ProcessConfig};
use sentry::control::{self, Event, Reply, Request};

use crate::cli::{
    CreateArgs, DeleteArgs, ExecArgs, GlobalOpts, IdArg, KillArgs, ListArgs, OutputFormat, PsArgs,
    SuperviseArgs,
};
use crate::state::Status;
use crate::state::{self, Record};
use crate::{bundle, console, internal, sandbox};

/// Name of the supervisor's socket in the container's state directory.
const CONTROL_SOCK: &str = "control.sock";
/// How long a CLI request may take to arrive or be answered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `delete --force` waits for a killed sandbox to go.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// The OCI runtime spec version the state documents follow.
const OCI_VERSION: &str = "1.0.2";

fn spec_error(e: bundle::SpecError) -> anyhow::Error {
    anyhow!("{e}")
}

// ---- create ----

pub fn create(g: &GlobalOpts, a: &CreateArgs) -> Result<i32> {
    let dir = state::claim(&g.root, &a.id)?;
    let r = create_claimed(g, a);
    if r.is_err() {
        if let Err(e) = crate::cgroup::remove_for(&dir) {
            tracing::warn!("{e:#}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    r
}

fn create_claimed(g: &GlobalOpts, a: &CreateArgs) -> Result<i32> {
    g.sandbox_network(crate::cli::Network::Sandbox)?;
    let bundle_dir = std::fs::canonicalize(&a.bundle)
        .map_err(|e| anyhow!("--bundle {}: {}", a.bundle.display(), bundle::io_msg(&e)))?;
    // Validated here too so a bad bundle fails before any process starts.
    let b = bundle::load(&bundle_dir).map_err(spec_error)?;
    g.check_policy(&b, &bundle_dir, sandbox_of(&b.spec).is_some())
        .map_err(spec_error)?;
    if let Some(sandbox) = sandbox_of(&b.spec) {
        let s = state::load(&g.root, &sandbox)
            .with_context(|| format!("{SANDBOX_ID} names sandbox {sandbox:?}"))?;
        if s.status != Status::Running {
            bail_kind!(
                FailedPrecondition,
                "sandbox {sandbox:?} ({SANDBOX_ID}) is {}, not running",
                s.status
            );
        }
    }
    let terminal = b
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if terminal && a.console_socket.is_none() {
        bail!("process.terminal is true but no --console-socket was given");
    }
    if !terminal && a.console_socket.is_some() {
        bail!("--console-socket given but process.terminal is false");
    }

    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe for create")?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("rvisor")
        .args(g.forwarded())
        .arg("--root")
        .arg(&g.root)
        .arg("supervise")
        .arg("--bundle")
        .arg(&bundle_dir)
        .arg(format!("--ready-fd={}", ready_w.as_raw_fd()))
        .arg("--id")
        .arg(&a.id)
        // Out of the caller's process group, so a terminal's ^C to `create` does not
        // take the sandbox with it.
        .process_group(0);
    if let Some(cs) = &a.console_socket {
        cmd.arg("--console-socket").arg(cs);
    }
    let mut child = sandbox::spawn_with_fds(&mut cmd, &[&ready_w], "supervisor")?;
    drop(ready_w);
    let mut answer = String::new();
    let _ = File::from(ready_r).read_to_string(&mut answer);
    let answer = answer.trim();
    if answer != "ok" {
        // The supervisor exits right after reporting; reap it so nothing is left.
        let _ = child.wait();
        if answer.is_empty() {
            bail!("the sandbox supervisor exited during create");
        }
        bail!("{answer}");
    }
    if let Some(p) = &a.pid_file {
        write_pid_file(p, child.id())?;
    }
    Ok(0)
}

fn write_pid_file(path: &Path, pid: u32) -> Result<()> {
    let tmp = path.with_extension("rvisor-tmp");
    std::fs::write(&tmp, pid.to_string())
        .map_err(|e| anyhow!("--pid-file {}: {}", path.display(), bundle::io_msg(&e)))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| anyhow!("--pid-file {}: {}", path.display(), bundle::io_msg(&e)))
}

// ---- the supervisor ----

/// CRI annotations placing a container in an existing pod sandbox.
const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// The sandbox a bundle's container joins (`container-type: container` with a
/// `sandbox-id`), if it is not a sandbox of its own.
fn sandbox_of(spec: &Spec) -> Option<String> {
    let a = spec.annotations().as_ref()?;
    if a.get(CONTAINER_TYPE).map(String::as_str) != Some("container") {
        return None;
    }
    a.get(SANDBOX_ID).filter(|s| !s.is_empty()).cloned()
}

/// Waits until `a` or `b` has something to read (or a signal interrupts); says which.
fn wait_either(
    a: BorrowedFd<'_>,
    b: BorrowedFd<'_>,
    timeout: Option<std::time::Duration>,
) -> Result<(bool, bool)> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut pfds = [
        PollFd::new(a, PollFlags::POLLIN),
        PollFd::new(b, PollFlags::POLLIN),
    ];
    let ms = match timeout {
        Some(t) => PollTimeout::try_from(t.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX),
        None => PollTimeout::NONE,
    };
    match poll(&mut pfds, ms) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
        Err(e) => return Err(e).context("poll"),
    }
    let ready = |p: &PollFd| p.revents().is_some_and(|r| !r.is_empty());
    Ok((ready(&pfds[0]), ready(&pfds[1])))
}

/// The state record of a container whose supervisor (`me`) is setting it up.
fn creating_record(a: &SuperviseArgs, b: &bundle::Bundle, me: u32) -> Record {
    Record {
        oci_version: OCI_VERSION.into(),
        id: a.id.clone(),
        status: Status::Creating,
        pid: i64::from(me),
        bundle: a.bundle.clone(),
        rootfs: b.rootfs.clone(),
        created: state::now_rfc3339(),
        owner: String::new(),
        annotations: b
            .spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        start_time: state::start_time_of(i64::from(me)).unwrap_or(0),
        exit_status: None,
    }
}

/// The supervisor of a container added to a running sandbox: it serves the
/// container's rootfs with a gofer of its own, whose socket it hands the sandbox's
/// sentry with the container's stdio (`create-container`, relayed by the sandbox's
/// supervisor), then serves this container's requests by relaying them there with
/// the container's id. Like the sandbox's, its pid is the container's OCI pid and
/// it exits with the container's status, which the sentry writes on a status
/// socket; killed, it takes the container's processes with it (the sentry sees the
/// socket close).
fn supervise_added(
    g: &GlobalOpts,
    a: &SuperviseArgs,
    ready: &mut Option<File>,
    dir: &Path,
    b: &bundle::Bundle,
    sandbox: &str,
) -> Result<i32> {
    let me = std::process::id();
    let rec = RefCell::new(creating_record(a, b, me));
    state::store(dir, &rec.borrow())?;
    let stdio: Vec<OwnedFd> = match &a.console_socket {
        Some(cs) => {
            let slave = console::send_new_pty(cs)?;
            vec![slave.try_clone()?, slave.try_clone()?, slave]
        }
        None => vec![stdio_or_null(0)?, stdio_or_null(1)?, stdio_or_null(2)?],
    };
    let (gofer_end, sentry_end) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair for the gofer")?;
    // The gofer joins the pod's core-scheduling cookie (its launcher's).
    if let Ok(pod) = state::load(&g.root, sandbox) {
        crate::core_scheduling::join(g, pod.pid as i32)?;
    }
    let mut gofer = sandbox::spawn_gofer(
        g,
        &a.id,
        &b.rootfs,
        b.readonly,
        &b.binds,
        &gofer_end,
        g.overlay.mode == crate::cli::Overlay::SelfFile,
    )?;
    drop(gofer_end);
    let adj = b.spec.process().as_ref().and_then(|p| p.oom_score_adj());
    crate::oom_adj::apply_to_gofer(gofer.id(), adj);
    let result = supervise_added_inner(g, a, ready, dir, b, sandbox, &rec, stdio, sentry_end);
    let _ = gofer.kill();
    let _ = gofer.wait();
    let status = result?;
    let mut r = rec.borrow_mut();
    r.status = Status::Stopped;
    r.exit_status = Some(status);
    if dir.exists() {
        let _ = state::store(dir, &r);
    }
    // The sandbox's processes follow the containers left.
    if let Err(e) = crate::oom_adj::apply_to_sandbox(g, sandbox) {
        tracing::warn!("{e:#}");
    }
    tracing::info!(status, "container stopped");
    Ok(status)
}

#[allow(clippy::too_many_arguments)]
fn supervise_added_inner(
    g: &GlobalOpts,
    a: &SuperviseArgs,
    ready: &mut Option<File>,
    dir: &Path,
    b: &bundle::Bundle,
    sandbox: &str,
    rec: &RefCell<Record>,
    stdio: Vec<OwnedFd>,
    gofer_sock: OwnedFd,
) -> Result<i32> {
    let (status_ours, status_theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair for the exit status")?;
    let req = Request::CreateContainer {
        id: a.id.clone(),
        process: b.process.clone(),
        mounts: b.mounts.clone(),
        readonly_rootfs: b.readonly,
        masked_paths: b.masked_paths.clone(),
        readonly_paths: b.readonly_paths.clone(),
        devices: crate::policy::emulated_devices(&b.spec),
        limits: crate::cgroup::container_limits(
            b.spec.linux().as_ref().and_then(|l| l.resources().as_ref()),
        ),
    };
    let fds = [
        stdio[0].as_fd(),
        stdio[1].as_fd(),
        stdio[2].as_fd(),
        status_theirs.as_fd(),
        gofer_sock.as_fd(),
    ];
    let pid = match request_with_fds(g, sandbox, &req, &fds)? {
        Reply::Pid { pid } => pid,
        Reply::Error { msg } => bail!("{msg}"),
        other => bail!("unexpected reply {other:?}"),
    };
    drop(status_theirs);
    drop(gofer_sock);
    drop(stdio);
    tracing::info!(pid, sandbox, "container added to the sandbox");
    if let Err(e) = crate::oom_adj::apply_to_sandbox(g, sandbox) {
        tracing::warn!("{e:#}");
    }
    let hooks = b.spec.hooks().clone().unwrap_or_default();
    {
        let r = rec.borrow();
        let st = r.oci_json();
        run_hooks(hooks.create_runtime(), &st, "createRuntime")?;
        run_hooks(hooks.prestart(), &st, "prestart")?;
        run_hooks(hooks.create_container(), &st, "createContainer")?;
    }
    let sock_path = dir.join(CONTROL_SOCK);
    let _ = std::fs::remove_file(&sock_path);
    let listener =
        unix_path::bind(&sock_path).with_context(|| format!("bind {}", sock_path.display()))?;
    listener.set_nonblocking(true).context("listener")?;
    rec.borrow_mut().status = Status::Created;
    state::store(dir, &rec.borrow())?;
    if let Some(mut f) = ready.take() {
        writeln!(f, "ok").context("tell create")?;
    }
    let mut got = Vec::new();
    loop {
        let (status_ready, request_ready) = wait_either(
            status_ours.as_fd(),
            listener.as_fd(),
            Some(crate::own_oom::PERIOD),
        )?;
        // Its own memory limit, if it has one (see own_oom).
        if rec.borrow().status == Status::Running {
            if let Err(e) = crate::own_oom::check(g, sandbox, &a.id) {
                tracing::debug!("own memory limit: {e:#}");
            }
        }
        if request_ready {
            serve_one(&listener, |req, fds| {
                let mut r = rec.borrow_mut();
                on_added_request(g, req, fds, sandbox, dir, &mut r, &hooks)
            });
        }
        if status_ready {
            let mut buf = [0u8; 32];
            match nix::unistd::read(status_ours.as_raw_fd(), &mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(e).context("read the exit status"),
            }
            if got.contains(&b'\n') {
                break;
            }
        }
    }
    let _ = std::fs::remove_file(&sock_path);
    Ok(std::str::from_utf8(&got)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        // The sandbox went away: its containers were killed with it.
        .unwrap_or(128 + libc::SIGKILL))
}

/// A request for an added container: carried out by the sandbox's sentry, through
/// the sandbox's supervisor, with this container's id.
fn on_added_request(
    g: &GlobalOpts,
    req: Request,
    fds: Vec<OwnedFd>,
    sandbox: &str,
    dir: &Path,
    rec: &mut Record,
    hooks: &oci_spec::runtime::Hooks,
) -> Reply {
    let err = |msg: String| Reply::Error { msg };
    let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    let forward = |req: &Request| match request_with_fds(g, sandbox, req, &borrowed) {
        Ok(r) => r,
        Err(e) => err(format!("{e:#}")),
    };
    match req {
        Request::Start => {
            if rec.status != Status::Created {
                return err(format!("container is {}, not created", rec.status));
            }
            if let Err(e) = run_hooks(hooks.start_container(), &rec.oci_json(), "startContainer") {
                return err(format!("{e:#}"));
            }
            let reply = forward(&Request::StartContainer { id: rec.id.clone() });
            if reply == Reply::Ok {
                rec.status = Status::Running;
                let _ = state::store(dir, rec);
                if let Err(e) = run_hooks(hooks.poststart(), &rec.oci_json(), "poststart") {
                    tracing::warn!("{e:#}");
                }
            }
            reply
        }
        Request::ExecProcess { .. } if rec.status != Status::Running => {
            err(format!("container is {}, not running", rec.status))
        }
        Request::Signal {
            signo, all, pid, ..
        } => forward(&Request::Signal {
            container: rec.id.clone(),
            signo,
            all,
            pid,
        }),
        Request::Ps { .. } => forward(&Request::Ps {
            container: rec.id.clone(),
        }),
        Request::Stats { .. } => forward(&Request::Stats {
            container: rec.id.clone(),
        }),
        Request::ExecProcess { process, .. } => forward(&Request::ExecProcess {
            container: rec.id.clone(),
            process,
        }),
        Request::Wait { pid, .. } => forward(&Request::Wait {
            container: rec.id.clone(),
            pid,
        }),
        Request::CreateContainer { .. }
        | Request::StartContainer { .. }
        | Request::UpdateContainer { .. }
        | Request::NoteLimitKill { .. } => {
            err("not a sandbox: containers are added to the pod's sandbox container".into())
        }
    }
}

pub fn supervise(g: &GlobalOpts, a: &SuperviseArgs) -> Result<i32> {
    let ready = File::from(internal::adopt_fd(a.ready_fd, "--ready-fd")?);
    crate::logging::init(crate::logging::Role::Supervisor, &a.id, g, false)?;
    let mut ready = Some(ready);
    let r = supervise_inner(g, a, &mut ready);
    if let Err(e) = &r {
        // Files only: the caller prints the one line.
        tracing::error!(target: crate::logging::FAILURE_TARGET, "{e:#}");
        if let Some(mut f) = ready.take() {
            let _ = writeln!(f, "{}", crate::one_line(&format!("{e:#}")));
            // create reports it; this process stays quiet.
            return Ok(1);
        }
    }
    r
}

fn supervise_inner(g: &GlobalOpts, a: &SuperviseArgs, ready: &mut Option<File>) -> Result<i32> {
    let dir = state::dir_of(&g.root, &a.id)?;
    nix::sys::prctl::set_child_subreaper(true).context("prctl(PR_SET_CHILD_SUBREAPER)")?;
    let b = bundle::load(&a.bundle).map_err(spec_error)?;
    if let Some(sandbox) = sandbox_of(&b.spec) {
        return supervise_added(g, a, ready, &dir, &b, &sandbox);
    }
    let me = std::process::id();
    let rec = RefCell::new(creating_record(a, &b, me));
    state::store(&dir, &rec.borrow())?;

    let stdio = match &a.console_socket {
        Some(cs) => Some(console::send_new_pty(cs)?),
        None => None,
    };
    let (ours, sentry_end): (OwnedFd, OwnedFd) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair for the control channel")?;
    let sock_path = dir.join(CONTROL_SOCK);
    let _ = std::fs::remove_file(&sock_path);
    let listener =
        unix_path::bind(&sock_path).with_context(|| format!("bind {}", sock_path.display()))?;
    listener.set_nonblocking(true).context("listener")?;

    let mut hostname = b.hostname.clone().unwrap_or_default();
    if hostname.is_empty() {
        hostname = a.id.chars().take(bundle::HOST_NAME_MAX).collect();
    }
    let network = g.sandbox_network(crate::cli::Network::Sandbox)?;
    let mut config = BootConfig {
        id: a.id.clone(),
        platform: g.sandbox_platform()?,
        strace: g.strace,
        hostname,
        process: b.process.clone(),
        overlay: g.overlay.name(),
        overlay_size: g.overlay.size,
        network: network.name(),
        readonly_rootfs: b.readonly,
        mounts: b.mounts.clone(),
        weak_confinement: g.unsafe_weak_confinement,
        syscall_patching: g.syscall_patching == crate::cli::Switch::On,
        net_raw: g.net_raw,
        masked_paths: b.masked_paths.clone(),
        readonly_paths: b.readonly_paths.clone(),
        netns_path: g
            .check_policy(&b, &a.bundle, false)
            .map_err(spec_error)?
            .netns_path
            .map(|p| p.to_string_lossy().into_owned()),
        resources: Default::default(),
        netdev: None,
        allow_metadata: crate::netdev::metadata_allowed(g, &b.spec),
        devices: crate::policy::emulated_devices(&b.spec),
    };
    let hooks = b.spec.hooks().clone().unwrap_or_default();
    // Entered now so gofer and boot are forked inside; left once they run.
    let placement = crate::cgroup::place(&b.spec, &a.id, g.systemd_cgroup, &dir)?;
    config.resources = crate::cgroup::boot_resources(
        b.spec.linux().as_ref().and_then(|l| l.resources().as_ref()),
        placement.as_ref().map(|p| &p.cgroup),
    );
    let launch = sandbox::Launch {
        config,
        rootfs: &b.rootfs,
        readonly: b.readonly,
        binds: b.binds.clone(),
        control: Some(sentry_end),
        stdio,
        oom_score_adj: b.spec.process().as_ref().and_then(|p| p.oom_score_adj()),
    };

    let mut on_start = |_boot: u32| -> Result<()> {
        if let Some(p) = &placement {
            p.leave();
        }
        match control::recv::<Event>(&ours) {
            Ok(Some(Event::Created)) => {}
            Ok(Some(Event::Failed { msg })) => bail!("{msg}"),
            Ok(None) => bail!("the sentry exited during setup"),
            Err(e) => bail!("control channel: {e}"),
        }
        if let Err(e) = crate::oom_adj::apply_to_sandbox(g, &a.id) {
            tracing::warn!("{e:#}");
        }
        {
            let r = rec.borrow();
            let st = r.oci_json();
            run_hooks(hooks.create_runtime(), &st, "createRuntime")?;
            run_hooks(hooks.prestart(), &st, "prestart")?;
            run_hooks(hooks.create_container(), &st, "createContainer")?;
        }
        rec.borrow_mut().status = Status::Created;
        state::store(&dir, &rec.borrow())?;
        if let Some(mut f) = ready.take() {
            writeln!(f, "ok").context("tell create")?;
        }
        tracing::info!("container created");
        Ok(())
    };
    let mut handle = |boot: Pid| {
        serve_one(&listener, |req, fds| {
            let mut r = rec.borrow_mut();
            on_request(req, fds, &ours, boot, &dir, &mut r, &hooks)
        })
    };
    let service = sandbox::Service {
        fd: listener.as_fd(),
        handle: &mut handle,
    };
    let result = sandbox::run(g, launch, &mut on_start, Some(service));
    if let Some(p) = &placement {
        p.leave();
    }
    let _ = std::fs::remove_file(&sock_path);
    reap_orphans();
    let status = result?;
    let mut r = rec.borrow_mut();
    r.status = Status::Stopped;
    r.exit_status = Some(status);
    // The directory is gone if a `delete --force` raced us; nothing left to record.
    if dir.exists() {
        let _ = state::store(&dir, &r);
    }
    tracing::info!(status, "container stopped");
    Ok(status)
}

/// The supervisor is the sandbox's subreaper: stub processes orphaned when the
/// sentry dies come here (and die of their parent-death signal), so reap them
/// rather than leave zombies for whatever init the host has.
fn reap_orphans() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {
                if Instant::now() > deadline {
                    tracing::warn!("sandbox processes still running after the sentry exited");
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

/// Accepts one CLI connection and answers its single request (one JSON line, with
/// the descriptors an exec hands over riding on it).
fn serve_one(listener: &UnixListener, mut answer: impl FnMut(Request, Vec<OwnedFd>) -> Reply) {
    let Ok((stream, _)) = listener.accept() else {
        return;
    };
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(REQUEST_TIMEOUT));
    let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
    let reply = match read_request(&stream) {
        Err(msg) => Reply::Error { msg },
        Ok((line, fds)) => match serde_json::from_slice::<Request>(&line) {
            Ok(req) => answer(req, fds),
            Err(e) => Reply::Error {
                msg: format!("malformed request: {e}"),
            },
        },
    };
    let mut text = serde_json::to_string(&reply).unwrap_or_default();
    text.push('\n');
    let _ = (&stream).write_all(text.as_bytes());
}

/// Reads up to the first newline, collecting every descriptor that arrives.
fn read_request(stream: &UnixStream) -> std::result::Result<(Vec<u8>, Vec<OwnedFd>), String> {
    let mut line = Vec::new();
    let mut fds = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let got = gofer::recv_frame(stream.as_fd(), &mut buf)
            .map_err(|e| format!("read request: {e}"))?;
        fds.extend(got.fds);
        if got.len == 0 {
            return Err("read request: the caller hung up".into());
        }
        let part = &buf[..got.len];
        if let Some(i) = part.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&part[..i]);
            return Ok((line, fds));
        }
        line.extend_from_slice(part);
        if line.len() > control::MAX_MESSAGE {
            return Err("request too large".into());
        }
    }
}

fn relay(ours: &OwnedFd, req: &Request, fds: &[OwnedFd]) -> Reply {
    let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    if let Err(msg) = control::send_with_fds(ours, req, &borrowed) {
        return Reply::Error { msg };
    }
    match control::recv::<Reply>(ours) {
        Ok(Some(r)) => r,
        Ok(None) => Reply::Error {
            msg: "the sentry has exited".into(),
        },
        Err(msg) => Reply::Error { msg },
    }
}

fn on_request(
    req: Request,
    fds: Vec<OwnedFd>,
    ours: &OwnedFd,
    boot: Pid,
    dir: &Path,
    rec: &mut Record,
    hooks: &oci_spec::runtime::Hooks,
) -> Reply {
    let err = |msg: String| Reply::Error { msg };
    match req {
        Request::Start => {
            if rec.status != Status::Created {
                return err(format!("container is {}, not created", rec.status));
            }
            if let Err(e) = run_hooks(hooks.start_container(), &rec.oci_json(), "startContainer") {
                return err(format!("{e:#}"));
            }
            let reply = relay(ours, &Request::Start, &[]);
            if reply == Reply::Ok {
                rec.status = Status::Running;
                let _ = state::store(dir, rec);
                if let Err(e) = run_hooks(hooks.poststart(), &rec.oci_json(), "poststart") {
                    tracing::warn!("{e:#}");
                }
            }
            reply
        }
        // The whole sandbox belongs to its init: SIGKILL ends it on the host side,
        // which works whatever the sentry is doing.
        Request::Signal {
            signo,
            pid: None,
            ref container,
            ..
        } if signo == libc::SIGKILL && (*container == rec.id || container.is_empty()) => {
            match kill(boot, Signal::SIGKILL) {
                Ok(()) => Reply::Ok,
                Err(e) => err(format!("kill: {e}")),
            }
        }
        Request::ExecProcess { .. } if rec.status != Status::Running => {
            err(format!("container is {}, not running", rec.status))
        }
        other => relay(ours, &other, &fds),
    }
}

/// Runs OCI hooks in order; each gets the state document on stdin.
fn run_hooks(hooks: &Option<Vec<Hook>>, st: &state::OciState<'_>, what: &str) -> Result<()> {
    for h in hooks.iter().flatten() {
        run_hook(h, st).with_context(|| format!("{what} hook {}", h.path().display()))?;
    }
    Ok(())
}

fn run_hook(h: &Hook, st: &state::OciState<'_>) -> Result<()> {
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some(a0) = args.first() {
            cmd.arg0(a0);
        }
        cmd.args(args.iter().skip(1));
    }
    cmd.env_clear();
    for e in h.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().map_err(|e| anyhow!("{}", bundle::io_msg(&e)))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is not an error.
        let _ = stdin.write_all(serde_json::to_string(st).unwrap_or_default().as_bytes());
    }
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        if let Some(s) = child.try_wait().context("wait")? {
            if s.success() {
                return Ok(());
            }
            bail!("failed: {s}");
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---- commands talking to a supervisor ----

pub(crate) fn request(g: &GlobalOpts, id: &str, req: &Request) -> Result<Reply> {
    request_with_fds(g, id, req, &[])
}

/// Sends one request line with `fds` riding on it and reads the reply line.
fn request_with_fds(
    g: &GlobalOpts,
    id: &str,
    req: &Request,
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> Result<Reply> {
    let path = state::dir_of(&g.root, id)?.join(CONTROL_SOCK);
    let stream = match unix_path::connect(&path) {
        Ok(s) => s,
        Err(_) => bail_kind!(NotRunning, "container {id:?} is not running"),
    };
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    let mut text = serde_json::to_string(req).context("encode request")?;
    text.push('\n');
    let sent = gofer::send_frame_fds(stream.as_fd(), text.as_bytes(), fds)
        .with_context(|| format!("container {id:?}: send request"))?;
    (&stream)
        .write_all(&text.as_bytes()[sent..])
        .with_context(|| format!("container {id:?}: send request"))?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .with_context(|| format!("container {id:?}: read reply"))?;
    if line.is_empty() {
        bail!("container {id:?}: the sandbox closed the connection");
    }
    serde_json::from_str(&line).with_context(|| format!("container {id:?}: bad reply"))
}

fn expect_ok(r: Reply) -> Result<()> {
    match r {
        Reply::Ok => Ok(()),
        Reply::Error { msg } => bail!("{msg}"),
        other => bail!("unexpected reply {other:?}"),
    }
}

pub fn start(g: &GlobalOpts, a: &IdArg) -> Result<i32> {
    let rec = state::load(&g.root, &a.id)?;
    if rec.status != Status::Created {
        bail!("cannot start container {:?}: it is {}", a.id, rec.status);
    }
    expect_ok(request(g, &a.id, &Request::Start)?).with_context(|| format!("start {:?}", a.id))?;
    Ok(0)
}

pub fn state_cmd(g: &GlobalOpts, a: &IdArg) -> Result<i32> {
    let rec = state::load(&g.root, &a.id)?;
    let text = serde_json::to_string_pretty(&rec.oci_json()).context("encode state")?;
    println!("{text}");
    Ok(0)
}

/// `KILL`, `SIGKILL`, `kill` or `9`.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal {s:?}");
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| anyhow!("invalid signal {s:?}"))
}

pub fn kill_cmd(g: &GlobalOpts, a: &KillArgs) -> Result<i32> {
    let signo = parse_signal(&a.signal)?;
    let rec = state::load(&g.root, &a.id)?;
    if rec.status == Status::Stopped {
        bail_kind!(NotRunning, "container {:?} is not running", a.id);
    }
    // A frozen sentry cannot take a signal; SIGKILL is carried out on the host.
    let paused = rec.status == Status::Paused;
    if paused && signo != libc::SIGKILL {
        bail_kind!(
            FailedPrecondition,
            "container {:?} is paused: only SIGKILL can be sent until it is resumed",
            a.id
        );
    }
    let req = Request::Signal {
        container: a.id.clone(),
        signo,
        all: a.all,
        pid: None,
    };
    expect_ok(request(g, &a.id, &req)?).with_context(|| format!("kill {:?}", a.id))?;
    if paused {
        crate::events::thaw_after_kill(g, &a.id)?;
    }
    Ok(0)
}

pub fn delete(g: &GlobalOpts, a: &DeleteArgs) -> Result<i32> {
    let rec = match state::load(&g.root, &a.id) {
        Ok(r) => r,
        Err(e) if a.force && crate::kind_of(&e) == rvisor_api::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let dir = state::dir_of(&g.root, &a.id)?;
    match rec.status {
        Status::Stopped => {}
        // Never started: nothing of the container has run yet, so it may go.
        Status::Created | Status::Creating => kill_sandbox(&rec)?,
        s if a.force => {
            tracing::info!(status = %s, "force-deleting");
            kill_sandbox(&rec)?
        }
        s => bail!(
            "cannot delete container {:?} that is {s}; stop it or use --force",
            a.id
        ),
    }
    crate::cgroup::remove_for(&dir)?;
    std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    // The bundle may be gone already; poststop hooks run when it is readable.
    if let Ok(text) = std::fs::read_to_string(rec.bundle.join("config.json")) {
        if let Ok(spec) = serde_json::from_str::<Spec>(&text) {
            let mut st = rec.clone();
            st.status = Status::Stopped;
            if let Some(h) = spec.hooks() {
                if let Err(e) = run_hooks(h.poststop(), &st.oci_json(), "poststop") {
                    tracing::warn!("{e:#}");
                }
            }
        }
    }
    Ok(0)
}

/// SIGKILLs the supervisor (its gofer and boot die with it) and waits until it is
/// gone.
fn kill_sandbox(rec: &Record) -> Result<()> {
    if !state::process_alive(rec.pid, rec.start_time) {
        return Ok(());
    }
    let pid = Pid::from_raw(i32::try_from(rec.pid).context("pid")?);
    match kill(pid, Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => bail!("kill the sandbox (pid {pid}): {e}"),
    }
    let deadline = Instant::now() + KILL_WAIT;
    while state::process_alive(rec.pid, rec.start_time) {
        if Instant::now() > deadline {
            bail!("the sandbox (pid {pid}) did not exit after SIGKILL");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

pub fn list(g: &GlobalOpts, a: &ListArgs) -> Result<i32> {
    let mut recs = Vec::new();
    for id in state::ids(&g.root)? {
        match state::load(&g.root, &id) {
            Ok(r) => recs.push(r),
            Err(e) => tracing::warn!("{e:#}"),
        }
    }
    if a.quiet {
        for r in &recs {
            println!("{}", r.id);
        }
        return Ok(0);
    }
    match a.format {
        OutputFormat::Json => {
            let v: Vec<_> = recs.iter().map(Record::oci_json).collect();
            println!("{}", serde_json::to_string(&v).context("encode")?);
        }
        OutputFormat::Table => {
            let rows: Vec<[String; 6]> = recs
                .iter()
                .map(|r| {
                    let pid = if r.status == Status::Stopped {
                        0
                    } else {
                        r.pid
                    };
                    [
                        r.id.clone(),
                        pid.to_string(),
                        r.status.to_string(),
                        r.bundle.display().to_string(),
                        r.created.clone(),
                        if r.owner.is_empty() {
                            "root".into()
                        } else {
                            r.owner.clone()
                        },
                    ]
                })
                .collect();
            print!(
                "{}",
                table(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], &rows)
            );
        }
    }
    Ok(0)
}

/// Columns padded like Go's tabwriter with padding 3, as runc prints them.
fn table<const N: usize>(head: [&str; N], rows: &[[String; N]]) -> String {
    let mut w = head.map(str::len);
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}", width = w[i] + 3));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(head.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

pub fn ps(g: &GlobalOpts, a: &PsArgs) -> Result<i32> {
    let rec = state::load(&g.root, &a.id)?;
    if rec.status == Status::Stopped {
        bail_kind!(NotRunning, "container {:?} is not running", a.id);
    }
    // The process list comes from the sentry, which a frozen sandbox cannot run.
    if rec.status == Status::Paused {
        bail_kind!(
            FailedPrecondition,
            "container {:?} is paused; resume it first",
            a.id
        );
    }
    let req = Request::Ps {
        container: a.id.clone(),
    };
    match request(g, &a.id, &req)? {
        Reply::Pids { pids } => {
            match a.format {
                OutputFormat::Json => println!("{}", serde_json::to_string(&pids)?),
                OutputFormat::Table => {
                    println!("PID");
                    for p in pids {
                        println!("{p}");
                    }
                }
            }
            Ok(0)
        }
        Reply::Error { msg } => bail!("ps {:?}: {msg}", a.id),
        other => bail!("ps {:?}: unexpected reply {other:?}", a.id),
    }
}

/// What an `exec` runs: the process and whether it gets a terminal.
#[derive(serde::Serialize, serde::Deserialize)]
struct ExecPlan {
    process: ProcessConfig,
    terminal: bool,
    console_socket: Option<std::path::PathBuf>,
}

/// The process `exec` asks for: `--process FILE` (an OCI process object) or the
/// arguments with `--cwd`, `--env`, `--user`.
fn exec_plan(a: &ExecArgs) -> Result<ExecPlan> {
    if let Some(path) = &a.process {
        if !a.command.is_empty() {
            bail!("exec: give either --process or the command, not both");
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("--process {}: {}", path.display(), bundle::io_msg(&e)))?;
        let p: oci_spec::runtime::Process = serde_json::from_str(&text)
            .map_err(|e| anyhow!("--process {}: invalid process JSON: {e}", path.display()))?;
        let args = p.args().clone().unwrap_or_default();
        if args.is_empty() || args[0].is_empty() {
            bail!("--process {}: args must not be empty", path.display());
        }
        let cwd = p.cwd().to_string_lossy().into_owned();
        if !cwd.starts_with('/') {
            bail!(
                "--process {}: cwd must be an absolute path, got {cwd:?}",
                path.display()
            );
        }
        let mut rlimits = Vec::new();
        for r in p.rlimits().iter().flatten() {
            let name = serde_json::to_value(r.typ())
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let resource = bundle::rlimit_number(&name)
                .ok_or_else(|| anyhow!("--process {}: unknown rlimit {name:?}", path.display()))?;
            rlimits.push(sentry::config::Rlimit {
                resource,
                soft: r.soft(),
                hard: r.hard(),
            });
        }
        return Ok(ExecPlan {
            process: ProcessConfig {
                args,
                env: p.env().clone().unwrap_or_default(),
                cwd,
                uid: p.user().uid(),
                gid: p.user().gid(),
                additional_gids: p.user().additional_gids().clone().unwrap_or_default(),
                rlimits,
                capabilities: match p.capabilities() {
                    Some(c) => Some(
                        crate::caps::from_json(
                            &serde_json::to_value(c).unwrap_or_default(),
                            "capabilities",
                        )
                        .map_err(|(f, m)| anyhow!("--process {}: {f}: {m}", path.display()))?,
                    ),
                    None => None,
                },
                no_new_privs: p.no_new_privileges().unwrap_or(false),
                oom_score_adj: p.oom_score_adj().unwrap_or(0),
                seccomp: None,
            },
            terminal: a.tty || p.terminal().unwrap_or(false),
            console_socket: a.console_socket.clone(),
        });
    }
    if a.command.is_empty() {
        bail!("exec: give the command, or --process FILE");
    }
    let (uid, gid) = match &a.user {
        Some(u) => crate::parse_user(u)?,
        None => (0, 0),
    };
    for e in &a.env {
        if !e.contains('=') || e.starts_with('=') {
            bail!("--env: must be KEY=VALUE, got {e:?}");
        }
    }
    let cwd = a.cwd.clone().unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        bail!("--cwd: must be an absolute path, got {cwd:?}");
    }
    Ok(ExecPlan {
        process: ProcessConfig {
            args: a.command.clone(),
            env: a.env.clone(),
            cwd,
            uid,
            gid,
            additional_gids: Vec::new(),
            rlimits: Vec::new(),
            // Taken from the container's own process (see `exec`).
            ..Default::default()
        },
        terminal: a.tty,
        console_socket: a.console_socket.clone(),
    })
}

/// `exec`: starts the process in the sandbox with this command's stdio (or a new
/// terminal's slave, its master sent to --console-socket) and waits for it, exiting
/// with its status; this command's pid is the process's host-visible pid
/// (--pid-file), as the supervisor's is the container's. Signals this command gets
/// are passed on to the process, and if this command is killed the sentry kills the
/// process. `--detach` starts a copy of this command in the background to do the
/// waiting and writes that copy's pid.
pub fn exec(g: &GlobalOpts, a: &ExecArgs) -> Result<i32> {
    // The detached copy: its plan and a pipe to report back on come from the parent.
    let (mut plan, mut ready) = match (a.internal_plan_fd, a.internal_ready_fd) {
        (Some(p), Some(r)) => {
            let plan_fd = internal::adopt_fd(p, "--internal-plan-fd")?;
            let ready = File::from(internal::adopt_fd(r, "--internal-ready-fd")?);
            let mut text = String::new();
            File::from(plan_fd)
                .read_to_string(&mut text)
                .context("read the exec plan")?;
            let plan: ExecPlan = serde_json::from_str(&text).context("exec plan")?;
            (plan, Some(ready))
        }
        (None, None) => (exec_plan(a)?, None),
        _ => bail!("--internal-plan-fd and --internal-ready-fd go together"),
    };
    if plan.terminal && plan.console_socket.is_none() {
        bail!("exec: a terminal (--tty or process.terminal) needs --console-socket");
    }
    if !plan.terminal && plan.console_socket.is_some() {
        bail!("exec: --console-socket given but no terminal was asked for (--tty)");
    }
    let rec = state::load(&g.root, &a.id)?;
    if rec.status != Status::Running {
        bail!("cannot exec in container {:?}: it is {}", a.id, rec.status);
    }
    // As runc: a process that states no capabilities gets the container's, and its
    // no_new_privs and oom_score_adj.
    if plan.process.capabilities.is_none() {
        if let Ok(b) = bundle::load(&rec.bundle) {
            plan.process.capabilities = b.process.capabilities;
            plan.process.no_new_privs |= b.process.no_new_privs;
            if plan.process.oom_score_adj == 0 {
                plan.process.oom_score_adj = b.process.oom_score_adj;
            }
        }
    }
    if plan.process.seccomp.is_none() {
        plan.process.seccomp = crate::seccomp_config::for_exec(&rec.bundle)?;
    }
    if a.detach && ready.is_none() {
        return exec_detached(g, a, &plan);
    }
    let r = exec_and_wait(g, a, &plan, &mut ready);
    if let (Err(e), Some(mut f)) = (&r, ready.take()) {
        let _ = writeln!(f, "{}", crate::one_line(&format!("{e:#}")));
        return Ok(1);
    }
    r
}

fn exec_detached(g: &GlobalOpts, a: &ExecArgs, plan: &ExecPlan) -> Result<i32> {
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    let plan_fd =
        memfd_create(c"rvisor-exec-plan", MemFdCreateFlag::MFD_CLOEXEC).context("memfd_create")?;
    let mut f = File::from(plan_fd);
    serde_json::to_writer(&mut f, plan).context("write the exec plan")?;
    f.flush().context("write the exec plan")?;
    std::io::Seek::rewind(&mut f).context("write the exec plan")?;
    let plan_fd = OwnedFd::from(f);
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe for exec")?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("rvisor")
        .args(g.forwarded())
        .arg("--root")
        .arg(&g.root)
        .arg("exec")
        .arg(format!("--internal-plan-fd={}", plan_fd.as_raw_fd()))
        .arg(format!("--internal-ready-fd={}", ready_w.as_raw_fd()))
        .arg(&a.id)
        // Out of the caller's process group: a terminal's ^C to the caller is not
        // the process's.
        .process_group(0);
    let mut child = sandbox::spawn_with_fds(&mut cmd, &[&plan_fd, &ready_w], "exec")?;
    drop(ready_w);
    drop(plan_fd);
    let mut answer = String::new();
    let _ = File::from(ready_r).read_to_string(&mut answer);
    let answer = answer.trim();
    if !answer.starts_with("ok") {
        let _ = child.wait();
        if answer.is_empty() {
            bail!("exec in {:?}: the waiting process exited early", a.id);
        }
        bail!("{answer}");
    }
    if let Some(p) = &a.pid_file {
        write_pid_file(p, child.id())?;
    }
    Ok(0)
}

/// The caller's stdio fd `n`, or /dev/null where it is closed.
fn stdio_or_null(n: i32) -> Result<OwnedFd> {
    use std::os::fd::AsFd;
    let fd = match n {
        0 => std::io::stdin().as_fd().try_clone_to_owned(),
        1 => std::io::stdout().as_fd().try_clone_to_owned(),
        _ => std::io::stderr().as_fd().try_clone_to_owned(),
    };
    match fd {
        Ok(f) => Ok(f),
        Err(_) => Ok(OwnedFd::from(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .context("open /dev/null")?,
        )),
    }
}

fn exec_and_wait(
    g: &GlobalOpts,
    a: &ExecArgs,
    plan: &ExecPlan,
    ready: &mut Option<File>,
) -> Result<i32> {
    use nix::sys::signal::SigSet;
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    // Blocked before the process exists, so none is lost; passed on below.
    let forwarded = [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ];
    let mut mask = SigSet::empty();
    for s in forwarded {
        mask.add(s);
    }
    mask.thread_block().context("sigprocmask")?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("signalfd")?;

    let stdio: Vec<OwnedFd> = match &plan.console_socket {
        Some(cs) if plan.terminal => {
            let slave = console::send_new_pty(cs)?;
            vec![slave.try_clone()?, slave.try_clone()?, slave]
        }
        _ => vec![stdio_or_null(0)?, stdio_or_null(1)?, stdio_or_null(2)?],
    };
    let (status_ours, status_theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair for the exit status")?;
    let req = Request::ExecProcess {
        container: a.id.clone(),
        process: plan.process.clone(),
    };
    let fds = [
        stdio[0].as_fd(),
        stdio[1].as_fd(),
        stdio[2].as_fd(),
        status_theirs.as_fd(),
    ];
    let pid = match request_with_fds(g, &a.id, &req, &fds)? {
        Reply::Pid { pid } => pid,
        Reply::Error { msg } => bail!("exec in {:?}: {msg}", a.id),
        other => bail!("exec in {:?}: unexpected reply {other:?}", a.id),
    };
    drop(status_theirs);
    drop(stdio);
    tracing::info!(pid, "exec'd process started");
    if let Some(p) = &a.pid_file {
        write_pid_file(p, std::process::id())?;
    }
    if let Some(mut f) = ready.take() {
        let _ = writeln!(f, "ok {pid}");
    }
    let mut got = Vec::new();
    loop {
        let (status_ready, _) = wait_either(status_ours.as_fd(), sfd.as_fd(), None)?;
        while let Ok(Some(info)) = sfd.read_signal() {
            let req = Request::Signal {
                container: a.id.clone(),
                signo: info.ssi_signo as i32,
                all: false,
                pid: Some(pid),
            };
            if let Err(e) = request(g, &a.id, &req) {
                tracing::warn!("pass signal {} on: {e:#}", info.ssi_signo);
            }
        }
        if !status_ready {
            continue;
        }
        let mut buf = [0u8; 32];
        match nix::unistd::read(status_ours.as_raw_fd(), &mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(e) => return Err(e).context("read the exit status"),
        }
        if got.contains(&b'\n') {
            break;
        }
    }
    match std::str::from_utf8(&got)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
    {
        Some(status) => Ok(status),
        None => {
            // The sandbox went away under the process: it was killed with it.
            tracing::warn!("the sandbox ended before the exec'd process reported its status");
            Ok(128 + libc::SIGKILL)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("sigterm").unwrap(), 15);
        assert_eq!(parse_signal("SIGUSR1").unwrap(), 10);
        assert_eq!(parse_signal("9").unwrap(), 9);
        for bad in ["", "0", "65", "NOPE", "-1"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn table_pads_like_runc() {
        let t = table(["ID", "PID"], &[["abc".into(), "1".into()]]);
        assert_eq!(t, "ID    PID\nabc   1\n");
    }
}
