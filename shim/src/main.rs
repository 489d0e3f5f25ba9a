//! `containerd-shim-rvisor-v1`: the containerd shim v2 for rvisor (runtime_type
//! `io.containerd.rvisor.v1`), built on the `containerd-shim` crate.
//!
//! The shim drives the `rvisor` CLI (create/start/kill/delete/exec/ps/pause/resume)
//! and never touches a sandbox directly. `rvisor create` leaves a supervisor process
//! whose exit status is the container's; the shim is a subreaper, so the supervisor
//! is reparented here when `create` exits and the crate's SIGCHLD thread reports its
//! exit through the monitor. One dispatcher thread receives every exit: CLI children
//! the shim waits for, and containers, whose exit becomes a `/tasks/exit` event.
//!
//! Container state for rvisor lives in `<bundle>/../.rvisor` (inside containerd's own
//! state dir, per namespace). Options come from a TOML file (like runsc.toml): the
//! path in `$RVISOR_SHIM_CONFIG`, else `/etc/containerd/rvisor.toml` when it exists.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};

use containerd_shim as shim;
use containerd_shim::event::Event;
use containerd_shim::monitor::{ExitEvent, Subject, Topic};
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{api, Config, DeleteResponse, ExitSignal, Flags, TtrpcContext, TtrpcResult};
use containerd_shim_protos::cgroups::metrics;
use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskPaused, TaskResumed,
    TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::ttrpc::{Code, Status as RpcStatus};
use serde::Deserialize;

/// The CRI annotation naming the pod sandbox a container belongs to.
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// rvisor options, as in runsc.toml.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Options {
    /// Path of the `rvisor` binary [default: beside the shim, else on PATH].
    binary: Option<PathBuf>,
    platform: Option<String>,
    /// rvisor's `--network`: unset, rvisor's default for containers (`sandbox`).
    network: Option<String>,
    overlay: Option<String>,
    debug_log: Option<PathBuf>,
    #[serde(default)]
    strace: bool,
    #[serde(default)]
    debug: bool,
    /// rvisor's `--net-raw`: processes keep CAP_NET_RAW when their spec gives it.
    #[serde(default)]
    net_raw: bool,
    /// rvisor's `--allow-metadata`: the cloud metadata server stays reachable from
    /// every pod (one pod at a time: the annotation dev.rvisor.metadata=allow).
    #[serde(default)]
    allow_metadata: bool,
    /// rvisor's `--allow-mount-source DIR` for each: host directories bind mounts
    /// may come from, besides the bundle and the kubelet's and containerd's volumes.
    #[serde(default)]
    allowed_mount_sources: Vec<PathBuf>,
    /// rvisor's `--unsafe-weak-confinement`: skip confinement steps the host refuses
    /// (for a containerd running nested without the privileges).
    #[serde(default)]
    unsafe_weak_confinement: bool,
    /// rvisor's `--core-scheduling`: `auto` (default), `required` or `off`.
    core_scheduling: Option<String>,
}

fn load_options() -> Result<Options, String> {
    let path = std::env::var_os("RVISOR_SHIM_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/containerd/rvisor.toml"));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let o: Options =
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(o)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Options::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn rpc_err(code: Code, msg: impl Into<String>) -> containerd_shim_protos::ttrpc::Error {
    containerd_shim_protos::ttrpc::Error::RpcStatus(RpcStatus {
        code: code.into(),
        message: msg.into(),
        ..Default::default()
    })
}

fn internal(msg: impl Into<String>) -> containerd_shim_protos::ttrpc::Error {
    rpc_err(Code::INTERNAL, msg)
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut t = Timestamp::new();
    t.seconds = d.as_secs() as i64;
    t.nanos = d.subsec_nanos() as i32;
    t
}

/// Exits the shim waits for: CLI children by pid, container supervisors by pid.
#[derive(Default)]
struct Exits {
    /// CLI children: their exit status goes to the sender.
    cli: HashMap<i32, Sender<i32>>,
    /// Supervisor pid -> container id.
    containers: HashMap<i32, String>,
    /// Waiting `rvisor exec` pid -> (container id, exec id).
    execs: HashMap<i32, (String, String)>,
    /// Exits that arrived before anyone registered (a CLI that exited very fast is
    /// registered under the same lock as its spawn, so only supervisors land here).
    early: HashMap<i32, i32>,
}

#[derive(Clone, Default)]
struct Exit {
    status: Option<(u32, Timestamp)>,
}

/// The exit status and time a StateResponse reports (0 and none while running).
fn exit_fields(exit: &(Mutex<Exit>, Condvar)) -> (u32, MessageField<Timestamp>) {
    exit.0
        .lock()
        .ok()
        .and_then(|x| x.status.clone())
        .map(|(s, t)| (s, MessageField::some(t)))
        .unwrap_or((0, MessageField::none()))
}

struct Container {
    bundle: String,
    pid: u32,
    status: api::Status,
    stdin: String,
    stdout: String,
    stderr: String,
    terminal: bool,
    exit: Arc<(Mutex<Exit>, Condvar)>,
    /// The terminal's master, when the container has one (resize-pty).
    console: Option<Arc<OwnedFd>>,
    rootfs_mounted: bool,
    /// Processes added with `exec`, by exec id.
    execs: HashMap<String, ExecProc>,
}

/// A process added to a container with `exec`. Its pid is the host pid of the
/// `rvisor exec` that waits for it (and exits with its status, passing signals on).
struct ExecProc {
    pid: u32,
    status: api::Status,
    /// The OCI process JSON, in the bundle until the exec is deleted.
    spec_path: String,
    stdin: String,
    stdout: String,
    stderr: String,
    terminal: bool,
    exit: Arc<(Mutex<Exit>, Condvar)>,
    console: Option<Arc<OwnedFd>>,
}

#[derive(Clone)]
struct Service {
    exit: Arc<ExitSignal>,
    namespace: String,
    publisher: Option<Arc<RemotePublisher>>,
    containers: Arc<Mutex<HashMap<String, Container>>>,
    exits: Arc<Mutex<Exits>>,
    opts: Arc<Result<Options, String>>,
}

impl Service {
    fn opts(&self) -> TtrpcResult<&Options> {
        self.opts
            .as_ref()
            .as_ref()
            .map_err(|e| rpc_err(Code::INVALID_ARGUMENT, e.clone()))
    }

    fn rvisor_binary(&self) -> TtrpcResult<PathBuf> {
        if let Some(b) = &self.opts()?.binary {
            return Ok(b.clone());
        }
        if let Ok(me) = std::env::current_exe() {
            let sib = me.with_file_name("rvisor");
            if sib.exists() {
                return Ok(sib);
            }
        }
        Ok(PathBuf::from("rvisor"))
    }

    /// `rvisor --root <state> <global flags> ARGS...`.
    fn rvisor(&self, bundle: &str, args: &[&str]) -> TtrpcResult<Command> {
        let o = self.opts()?;
        let mut cmd = Command::new(self.rvisor_binary()?);
        cmd.arg("--root").arg(state_root(bundle));
        if let Some(p) = &o.platform {
            cmd.arg(format!("--platform={p}"));
        }
        if let Some(n) = &o.network {
            cmd.arg(format!("--network={n}"));
        }
        if let Some(v) = &o.overlay {
            cmd.arg(format!("--overlay={v}"));
        }
        if let Some(c) = &o.core_scheduling {
            cmd.arg(format!("--core-scheduling={c}"));
        }
        if let Some(d) = &o.debug_log {
            cmd.arg("--debug-log").arg(d);
        }
        if o.strace {
            cmd.arg("--strace");
        }
        if o.debug {
            cmd.arg("--debug");
        }
        if o.unsafe_weak_confinement {
            cmd.arg("--unsafe-weak-confinement");
        }
        if o.allow_metadata {
            cmd.arg("--allow-metadata");
        }
        if o.net_raw {
            cmd.arg("--net-raw");
        }
        for d in &o.allowed_mount_sources {
            cmd.arg("--allow-mount-source").arg(d);
        }
        cmd.args(args);
        Ok(cmd)
    }

    /// Runs a CLI command to completion; its exit arrives through the monitor
    /// (the SIGCHLD thread reaps every child), so it is registered under the lock
    /// the dispatcher takes.
    fn run(&self, mut cmd: Command) -> TtrpcResult<String> {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let (tx, rx) = channel();
        let mut child = {
            let mut ex = self.exits.lock().map_err(|_| internal("lock"))?;
            let child = cmd
                .spawn()
                .map_err(|e| internal(format!("run rvisor: {e}")))?;
            ex.cli.insert(child.id() as i32, tx);
            child
        };
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let code = rx
            .recv()
            .map_err(|_| internal("lost the exit status of rvisor"))?;
        if code != 0 {
            let msg = err.trim().trim_start_matches("rvisor: ").to_string();
            let code = if msg.contains("does not exist") {
                Code::NOT_FOUND
            } else if msg.contains("already exists") {
                Code::ALREADY_EXISTS
            } else if msg.contains("not implemented") || msg.contains("not yet") {
                Code::UNIMPLEMENTED
            } else if msg.contains("not running") {
                Code::NOT_FOUND
            } else {
                Code::UNKNOWN
            };
            return Err(rpc_err(code, msg));
        }
        Ok(out)
    }

    fn publish(&self, ev: Box<dyn Event>) {
        let Some(p) = &self.publisher else { return };
        let topic = ev.topic();
        if let Err(e) = p.publish(
            containerd_shim::Context::default(),
            &topic,
            &self.namespace,
            ev,
        ) {
            log::warn!("publish {topic}: {e}");
        }
    }

    /// Records a container's exit and tells containerd.
    fn container_exited(&self, id: &str, pid: i32, code: i32) {
        let ts = now();
        let exit = {
            let Ok(mut cs) = self.containers.lock() else {
                return;
            };
            let Some(c) = cs.get_mut(id) else { return };
            c.status = api::Status::STOPPED;
            c.exit.clone()
        };
        if let Ok(mut e) = exit.0.lock() {
            e.status = Some((code as u32, ts.clone()));
        }
        exit.1.notify_all();
        let ev = TaskExit {
            container_id: id.to_string(),
            id: id.to_string(),
            pid: pid as u32,
            exit_status: code as u32,
            exited_at: MessageField::some(ts),
            ..Default::default()
        };
        self.publish(Box::new(ev));
    }

    /// Records an exec'd process's exit and tells containerd.
    fn exec_exited(&self, id: &str, exec_id: &str, pid: i32, code: i32) {
        let ts = now();
        let exit = {
            let Ok(mut cs) = self.containers.lock() else {
                return;
            };
            let Some(e) = cs.get_mut(id).and_then(|c| c.execs.get_mut(exec_id)) else {
                return;
            };
            e.status = api::Status::STOPPED;
            e.exit.clone()
        };
        if let Ok(mut e) = exit.0.lock() {
            e.status = Some((code as u32, ts.clone()));
        }
        exit.1.notify_all();
        self.publish(Box::new(TaskExit {
            container_id: id.to_string(),
            id: exec_id.to_string(),
            pid: pid as u32,
            exit_status: code as u32,
            exited_at: MessageField::some(ts),
            ..Default::default()
        }));
    }

    fn dispatch_exits(self) {
        let sub = match containerd_shim::monitor::monitor_subscribe(Topic::Pid) {
            Ok(s) => s,
            Err(e) => {
                log::error!("monitor: {e}");
                return;
            }
        };
        while let Ok(ExitEvent { subject, exit_code }) = sub.rx.recv() {
            let Subject::Pid(pid) = subject else { continue };
            let (target, exec) = {
                let Ok(mut ex) = self.exits.lock() else {
                    return;
                };
                if let Some(tx) = ex.cli.remove(&pid) {
                    let _ = tx.send(exit_code);
                    (None, None)
                } else if let Some(id) = ex.containers.remove(&pid) {
                    (Some(id), None)
                } else if let Some(e) = ex.execs.remove(&pid) {
                    (None, Some(e))
                } else {
                    ex.early.insert(pid, exit_code);
                    (None, None)
                }
            };
            if let Some(id) = target {
                self.container_exited(&id, pid, exit_code);
            }
            if let Some((id, exec_id)) = exec {
                self.exec_exited(&id, &exec_id, pid, exit_code);
            }
        }
    }

    fn get<T>(&self, id: &str, f: impl FnOnce(&mut Container) -> T) -> TtrpcResult<T> {
        let mut cs = self.containers.lock().map_err(|_| internal("lock"))?;
        let c = cs
            .get_mut(id)
            .ok_or_else(|| rpc_err(Code::NOT_FOUND, format!("container {id} not found")))?;
        Ok(f(c))
    }
}

/// rvisor's state directory for the containers of one containerd namespace.
fn state_root(bundle: &str) -> PathBuf {
    Path::new(bundle)
        .parent()
        .map(|p| p.join(".rvisor"))
        .unwrap_or_else(|| PathBuf::from("/run/containerd/rvisor"))
}

/// Opens a stdio FIFO without blocking on its other end (O_RDWR never waits).
fn open_fifo(path: &str) -> TtrpcResult<Option<File>> {
    if path.is_empty() {
        return Ok(None);
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map(Some)
        .map_err(|e| internal(format!("open {path}: {e}")))
}

/// Makes the console socket at `path`, which lies in the bundle directory and may be
/// longer than a `sockaddr_un` holds (Kubernetes bundle paths carry a 64-digit id).
fn bind_console(path: &str) -> TtrpcResult<UnixListener> {
    let _ = std::fs::remove_file(path);
    unix_path::bind(Path::new(path)).map_err(|e| internal(format!("console socket {path}: {e}")))
}

/// Takes the pty master rvisor sends on `listener` and pumps it to and from
/// containerd's FIFOs.
fn attach_console(
    listener: &UnixListener,
    path: &str,
    stdin: Option<File>,
    stdout: Option<File>,
) -> TtrpcResult<Arc<OwnedFd>> {
    let master = Arc::new(recv_console(listener)?);
    let _ = std::fs::remove_file(path);
    let m = File::from(master.try_clone().map_err(|e| internal(e.to_string()))?);
    if let Some(o) = stdout {
        copy(m.try_clone().map_err(|e| internal(e.to_string()))?, o);
    }
    if let Some(i) = stdin {
        copy(i, m);
    }
    Ok(master)
}

/// Receives the terminal master rvisor sends over the console socket.
fn recv_console(listener: &UnixListener) -> TtrpcResult<OwnedFd> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let (conn, _) = listener
        .accept()
        .map_err(|e| internal(format!("console socket: {e}")))?;
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut buf = [0u8; 4096];
    recvmsg(
        &conn,
        &mut [std::io::IoSliceMut::new(&mut buf)],
        &mut cmsg,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| internal(format!("console socket: {e}")))?;
    for m in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(internal("console socket: no terminal received"))
}

fn copy(mut from: impl Read + Send + 'static, mut to: impl std::io::Write + Send + 'static) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
    });
}

impl shim::Shim for Service {
    type T = Service;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        Service {
            exit: Arc::new(ExitSignal::default()),
            namespace: args.namespace.clone(),
            publisher: None,
            containers: Arc::default(),
            exits: Arc::default(),
            opts: Arc::new(load_options()),
        }
    }

    fn start_shim(&mut self, opts: shim::StartOpts) -> Result<String, shim::Error> {
        // One shim per pod: containers that name a sandbox share its shim.
        let grouping = std::fs::read_to_string(Path::new("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["annotations"][SANDBOX_ID].as_str().map(str::to_string))
            .unwrap_or_else(|| opts.id.clone());
        let (_pid, address) = shim::spawn(opts, &grouping, Vec::new())?;
        Ok(address)
    }

    fn delete_shim(&mut self) -> Result<DeleteResponse, shim::Error> {
        // containerd calls this when the shim is gone: clean what rvisor left.
        let bundle = std::env::current_dir()
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default();
        let id = Path::new(&bundle)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Ok(mut cmd) = self.rvisor(&bundle, &["delete", "--force", &id]) {
            let _ = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = shim::mount::umount_recursive(Some(&format!("{bundle}/rootfs")), libc::MNT_DETACH);
        let mut r = DeleteResponse::new();
        r.exit_status = 128 + libc::SIGKILL as u32;
        r.exited_at = MessageField::some(now());
        Ok(r)
    }

    fn wait(&mut self) {
        self.exit.wait();
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> Self::T {
        let mut s = self.clone();
        s.publisher = Some(Arc::new(publisher));
        let d = s.clone();
        std::thread::spawn(move || d.dispatch_exits());
        s
    }
}

impl shim::Task for Service {
    fn connect(
        &self,
        _: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        let pid = self.get(&req.id, |c| c.pid).unwrap_or(0);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: pid,
            version: "rvisor".into(),
            ..Default::default()
        })
    }

    fn create(
        &self,
        _: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        let id = req.id.clone();
        let bundle = req.bundle.clone();
        let rootfs = format!("{bundle}/rootfs");
        let mut mounted = false;
        for m in &req.rootfs {
            let _ = std::fs::create_dir_all(&rootfs);
            shim::mount::mount_rootfs(
                Some(m.type_.as_str()).filter(|t| !t.is_empty()),
                Some(m.source.as_str()).filter(|s| !s.is_empty()),
                &m.options,
                &rootfs,
            )
            .map_err(|e| internal(format!("mount rootfs: {e}")))?;
            mounted = true;
        }
        let pid_file = format!("{bundle}/rvisor.pid");
        let mut args = vec!["create", "--bundle", &bundle, "--pid-file", &pid_file];
        let console_path = format!("{bundle}/console.sock");
        let listener = if req.terminal {
            let l = bind_console(&console_path)?;
            args.extend(["--console-socket", &console_path]);
            Some(l)
        } else {
            None
        };
        args.push(&id);
        let log = format!("{bundle}/rvisor-create.log");
        let _ = std::fs::remove_file(&log);
        let mut full = vec!["--log", &log, "--log-format", "json"];
        full.extend(args);
        let mut cmd = self.rvisor(&bundle, &full)?;
        cmd.current_dir(&bundle);
        let stdin = open_fifo(&req.stdin)?;
        let stdout = open_fifo(&req.stdout)?;
        let stderr = open_fifo(&req.stderr)?;
        let result = if req.terminal {
            self.run_create(cmd, None, None, None, &log)
        } else {
            self.run_create(cmd, stdin.as_ref(), stdout.as_ref(), stderr.as_ref(), &log)
        };
        if let Err(e) = result {
            if mounted {
                let _ = shim::mount::umount_recursive(Some(&rootfs), libc::MNT_DETACH);
            }
            return Err(e);
        }
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| internal("rvisor create wrote no pid"))?;
        let console = match &listener {
            Some(l) => Some(attach_console(l, &console_path, stdin, stdout)?),
            None => None,
        };
        let c = Container {
            bundle: bundle.clone(),
            pid,
            status: api::Status::CREATED,
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
            exit: Arc::new((Mutex::new(Exit::default()), Condvar::new())),
            console,
            rootfs_mounted: mounted,
            execs: HashMap::new(),
        };
        self.containers
            .lock()
            .map_err(|_| internal("lock"))?
            .insert(id.clone(), c);
        let early = {
            let mut ex = self.exits.lock().map_err(|_| internal("lock"))?;
            match ex.early.remove(&(pid as i32)) {
                Some(code) => Some(code),
                None => {
                    ex.containers.insert(pid as i32, id.clone());
                    None
                }
            }
        };
        if let Some(code) = early {
            self.container_exited(&id, pid as i32, code);
        }
        self.publish(Box::new(TaskCreate {
            container_id: id.clone(),
            bundle,
            pid,
            ..Default::default()
        }));
        Ok(api::CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    fn start(&self, _: &TtrpcContext, req: api::StartRequest) -> TtrpcResult<api::StartResponse> {
        if !req.exec_id.is_empty() {
            return self.start_exec(&req.id, &req.exec_id);
        }
        let bundle = self.get(&req.id, |c| c.bundle.clone())?;
        self.run(self.rvisor(&bundle, &["start", &req.id])?)?;
        let pid = self.get(&req.id, |c| {
            if c.status == api::Status::CREATED {
                c.status = api::Status::RUNNING;
            }
            c.pid
        })?;
        self.publish(Box::new(TaskStart {
            container_id: req.id.clone(),
            pid,
            ..Default::default()
        }));
        Ok(api::StartResponse {
            pid,
            ..Default::default()
        })
    }

    fn state(&self, _: &TtrpcContext, req: api::StateRequest) -> TtrpcResult<api::StateResponse> {
        if !req.exec_id.is_empty() {
            return self.exec_get(&req.id, &req.exec_id, |c, e| {
                let (exit_status, exited_at) = exit_fields(&e.exit);
                api::StateResponse {
                    id: req.id.clone(),
                    exec_id: req.exec_id.clone(),
                    bundle: c.bundle.clone(),
                    pid: e.pid,
                    status: e.status.into(),
                    stdin: e.stdin.clone(),
                    stdout: e.stdout.clone(),
                    stderr: e.stderr.clone(),
                    terminal: e.terminal,
                    exit_status,
                    exited_at,
                    ..Default::default()
                }
            });
        }
        self.get(&req.id, |c| {
            let (exit_status, exited_at) = exit_fields(&c.exit);
            api::StateResponse {
                id: req.id.clone(),
                bundle: c.bundle.clone(),
                pid: c.pid,
                status: c.status.into(),
                stdin: c.stdin.clone(),
                stdout: c.stdout.clone(),
                stderr: c.stderr.clone(),
                terminal: c.terminal,
                exit_status,
                exited_at,
                ..Default::default()
            }
        })
    }

    fn kill(&self, _: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        if !req.exec_id.is_empty() {
            // The waiting `rvisor exec` passes catchable signals on; killed, it
            // takes the process with it.
            let (pid, running) = self.exec_get(&req.id, &req.exec_id, |_, e| {
                (e.pid, e.status == api::Status::RUNNING)
            })?;
            if !running {
                return Err(rpc_err(Code::NOT_FOUND, "process already finished"));
            }
            let sig = nix_signal(req.signal)?;
            if pid == 0 {
                return Err(internal("exec has no pid"));
            }
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)
                .map_err(|e| internal(format!("kill exec {}: {e}", req.exec_id)))?;
            return Ok(api::Empty::new());
        }
        let (bundle, stopped) = self.get(&req.id, |c| {
            (c.bundle.clone(), c.status == api::Status::STOPPED)
        })?;
        if stopped {
            return Err(rpc_err(Code::NOT_FOUND, "process already finished"));
        }
        let sig = req.signal.to_string();
        let mut args = vec!["kill"];
        if req.all {
            args.push("--all");
        }
        args.extend([req.id.as_str(), sig.as_str()]);
        self.run(self.rvisor(&bundle, &args)?)?;
        Ok(api::Empty::new())
    }

    fn wait(&self, _: &TtrpcContext, req: api::WaitRequest) -> TtrpcResult<api::WaitResponse> {
        let exit = if req.exec_id.is_empty() {
            self.get(&req.id, |c| c.exit.clone())?
        } else {
            self.exec_get(&req.id, &req.exec_id, |_, e| e.exit.clone())?
        };
        let mut g = exit.0.lock().map_err(|_| internal("lock"))?;
        while g.status.is_none() {
            g = exit.1.wait(g).map_err(|_| internal("lock"))?;
        }
        let (s, t) = g.status.clone().unwrap_or_default();
        Ok(api::WaitResponse {
            exit_status: s,
            exited_at: MessageField::some(t),
            ..Default::default()
        })
    }

    fn delete(
        &self,
        _: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        if !req.exec_id.is_empty() {
            return self.delete_exec(&req.id, &req.exec_id);
        }
        let (bundle, pid, mounted, exit) = self.get(&req.id, |c| {
            (c.bundle.clone(), c.pid, c.rootfs_mounted, c.exit.clone())
        })?;
        self.run(self.rvisor(&bundle, &["delete", "--force", &req.id])?)?;
        // A force-deleted container's supervisor exit arrives through the monitor.
        let (status, at) = {
            let g = exit.0.lock().map_err(|_| internal("lock"))?;
            let g = exit
                .1
                .wait_timeout_while(g, std::time::Duration::from_secs(5), |e| e.status.is_none())
                .map_err(|_| internal("lock"))?
                .0;
            g.status.clone().unwrap_or((128 + 9, now()))
        };
        if mounted {
            let _ =
                shim::mount::umount_recursive(Some(&format!("{bundle}/rootfs")), libc::MNT_DETACH);
        }
        self.containers
            .lock()
            .map_err(|_| internal("lock"))?
            .remove(&req.id);
        self.publish(Box::new(TaskDelete {
            container_id: req.id.clone(),
            id: req.id.clone(),
            pid,
            exit_status: status,
            exited_at: MessageField::some(at.clone()),
            ..Default::default()
        }));
        Ok(api::DeleteResponse {
            pid,
            exit_status: status,
            exited_at: MessageField::some(at),
            ..Default::default()
        })
    }

    fn pids(&self, _: &TtrpcContext, req: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        let bundle = self.get(&req.id, |c| c.bundle.clone())?;
        let out = self.run(self.rvisor(&bundle, &["ps", "--format", "json", &req.id])?)?;
        let pids: Vec<u32> =
            serde_json::from_str(&out).map_err(|e| internal(format!("rvisor ps: {e}")))?;
        Ok(api::PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| containerd_shim_protos::api::ProcessInfo {
                    pid,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    fn pause(&self, _: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        let bundle = self.get(&req.id, |c| c.bundle.clone())?;
        self.run(self.rvisor(&bundle, &["pause", &req.id])?)?;
        self.get(&req.id, |c| c.status = api::Status::PAUSED)?;
        self.publish(Box::new(TaskPaused {
            container_id: req.id.clone(),
            ..Default::default()
        }));
        Ok(api::Empty::new())
    }

    fn resume(&self, _: &TtrpcContext, req: api::ResumeRequest) -> TtrpcResult<api::Empty> {
        let bundle = self.get(&req.id, |c| c.bundle.clone())?;
        self.run(self.rvisor(&bundle, &["resume", &req.id])?)?;
        self.get(&req.id, |c| {
            if c.status == api::Status::PAUSED {
                c.status = api::Status::RUNNING;
            }
        })?;
        self.publish(Box::new(TaskResumed {
            container_id: req.id.clone(),
            ..Default::default()
        }));
        Ok(api::Empty::new())
    }

    fn exec(&self, _: &TtrpcContext, req: api::ExecProcessRequest) -> TtrpcResult<api::Empty> {
        let spec = req
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .ok_or_else(|| rpc_err(Code::INVALID_ARGUMENT, "exec: no process spec"))?;
        if req.exec_id.is_empty() || req.exec_id.contains('/') {
            return Err(rpc_err(Code::INVALID_ARGUMENT, "exec: bad exec id"));
        }
        let (bundle, running) = self.get(&req.id, |c| {
            (c.bundle.clone(), c.status == api::Status::RUNNING)
        })?;
        if !running {
            return Err(rpc_err(
                Code::FAILED_PRECONDITION,
                format!("container {} is not running", req.id),
            ));
        }
        let spec_path = format!("{bundle}/exec-{}.json", req.exec_id);
        {
            let mut cs = self.containers.lock().map_err(|_| internal("lock"))?;
            let c = cs.get_mut(&req.id).ok_or_else(|| {
                rpc_err(Code::NOT_FOUND, format!("container {} not found", req.id))
            })?;
            if c.execs.contains_key(&req.exec_id) {
                return Err(rpc_err(
                    Code::ALREADY_EXISTS,
                    format!("exec {} already exists", req.exec_id),
                ));
            }
            std::fs::write(&spec_path, spec)
                .map_err(|e| internal(format!("write {spec_path}: {e}")))?;
            c.execs.insert(
                req.exec_id.clone(),
                ExecProc {
                    pid: 0,
                    status: api::Status::CREATED,
                    spec_path,
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    exit: Arc::new((Mutex::new(Exit::default()), Condvar::new())),
                    console: None,
                },
            );
        }
        self.publish(Box::new(TaskExecAdded {
            container_id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        }));
        Ok(api::Empty::new())
    }

    fn resize_pty(&self, _: &TtrpcContext, req: api::ResizePtyRequest) -> TtrpcResult<api::Empty> {
        let console = if req.exec_id.is_empty() {
            self.get(&req.id, |c| c.console.clone())?
        } else {
            self.exec_get(&req.id, &req.exec_id, |_, e| e.console.clone())?
        };
        let Some(m) = console else {
            return Err(rpc_err(
                Code::FAILED_PRECONDITION,
                "container has no terminal",
            ));
        };
        let ws = rustix::termios::Winsize {
            ws_row: req.height as u16,
            ws_col: req.width as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(m.as_fd(), ws)
            .map_err(|e| internal(format!("resize: {e}")))?;
        Ok(api::Empty::new())
    }

    fn close_io(&self, _: &TtrpcContext, req: api::CloseIORequest) -> TtrpcResult<api::Empty> {
        // The shim keeps no copy of a plain container's stdin (the sandbox holds the
        // FIFO itself), so there is nothing of ours to close; a terminal's input is
        // copied until its FIFO reports EOF.
        self.get(&req.id, |_| ())?;
        Ok(api::Empty::new())
    }

    fn update(&self, _: &TtrpcContext, req: api::UpdateTaskRequest) -> TtrpcResult<api::Empty> {
        let bundle = self.get(&req.id, |c| c.bundle.clone())?;
        // containerd sends the OCI LinuxResources as JSON in the Any.
        let value = req
            .resources
            .as_ref()
            .map(|a| a.value.clone())
            .ok_or_else(|| rpc_err(Code::INVALID_ARGUMENT, "update: no resources"))?;
        let path = format!("{bundle}/update-resources.json");
        std::fs::write(&path, value).map_err(|e| internal(format!("write {path}: {e}")))?;
        let r = self.run(self.rvisor(&bundle, &["update", "--resources", &path, &req.id])?);
        let _ = std::fs::remove_file(&path);
        r.map(|_| api::Empty::new())
    }

    fn stats(&self, _: &TtrpcContext, req: api::StatsRequest) -> TtrpcResult<api::StatsResponse> {
        let bundle = self.get(&req.id, |c| c.bundle.clone())?;
        let out = self.run(self.rvisor(&bundle, &["events", "--stats", &req.id])?)?;
        let ev: serde_json::Value = serde_json::from_str(out.trim())
            .map_err(|e| internal(format!("rvisor events --stats: {e}")))?;
        let metrics = metrics_v1(&ev["data"]);
        let value = containerd_shim_protos::protobuf::Message::write_to_bytes(&metrics)
            .map_err(|e| internal(format!("encode metrics: {e}")))?;
        let mut any = containerd_shim_protos::protobuf::well_known_types::any::Any::new();
        any.type_url = METRICS_V1.to_string();
        any.value = value;
        Ok(api::StatsResponse {
            stats: MessageField::some(any),
            ..Default::default()
        })
    }

    fn shutdown(&self, _: &TtrpcContext, _req: api::ShutdownRequest) -> TtrpcResult<api::Empty> {
        if self.containers.lock().map(|c| c.is_empty()).unwrap_or(true) {
            self.exit.signal();
        }
        Ok(api::Empty::new())
    }
}

/// A signal number from containerd.
fn nix_signal(n: u32) -> TtrpcResult<nix::sys::signal::Signal> {
    i32::try_from(n)
        .ok()
        .and_then(|n| nix::sys::signal::Signal::try_from(n).ok())
        .ok_or_else(|| rpc_err(Code::INVALID_ARGUMENT, format!("bad signal {n}")))
}

impl Service {
    fn exec_get<T>(
        &self,
        id: &str,
        exec_id: &str,
        f: impl FnOnce(&Container, &mut ExecProc) -> T,
    ) -> TtrpcResult<T> {
        let mut cs = self.containers.lock().map_err(|_| internal("lock"))?;
        let c = cs
            .get_mut(id)
            .ok_or_else(|| rpc_err(Code::NOT_FOUND, format!("container {id} not found")))?;
        let mut e = c
            .execs
            .remove(exec_id)
            .ok_or_else(|| rpc_err(Code::NOT_FOUND, format!("exec {exec_id} not found")))?;
        let r = f(c, &mut e);
        c.execs.insert(exec_id.to_string(), e);
        Ok(r)
    }

    /// Starts an added exec: `rvisor exec --detach` with the exec's FIFOs as its
    /// stdio (or a terminal through a console socket) leaves a waiting `rvisor exec`
    /// whose pid is the exec's.
    fn start_exec(&self, id: &str, exec_id: &str) -> TtrpcResult<api::StartResponse> {
        let (bundle, spec_path, stdin, stdout, stderr, terminal, created) =
            self.exec_get(id, exec_id, |c, e| {
                (
                    c.bundle.clone(),
                    e.spec_path.clone(),
                    e.stdin.clone(),
                    e.stdout.clone(),
                    e.stderr.clone(),
                    e.terminal,
                    e.status == api::Status::CREATED,
                )
            })?;
        if !created {
            return Err(rpc_err(
                Code::FAILED_PRECONDITION,
                format!("exec {exec_id} was already started"),
            ));
        }
        let pid_file = format!("{bundle}/exec-{exec_id}.pid");
        let log = format!("{bundle}/exec-{exec_id}.log");
        let console_path = format!("{bundle}/exec-{exec_id}.sock");
        let _ = std::fs::remove_file(&log);
        let mut args = vec![
            "--log",
            &log,
            "--log-format",
            "json",
            "exec",
            "--detach",
            "--pid-file",
            &pid_file,
            "--process",
            &spec_path,
        ];
        let listener = if terminal {
            let l = bind_console(&console_path)?;
            args.extend(["--console-socket", &console_path]);
            Some(l)
        } else {
            None
        };
        args.push(id);
        let cmd = self.rvisor(&bundle, &args)?;
        let stdin = open_fifo(&stdin)?;
        let stdout = open_fifo(&stdout)?;
        let stderr = open_fifo(&stderr)?;
        // Register before the exec can end, so its exit finds its record.
        let result = if terminal {
            self.run_create(cmd, None, None, None, &log)
        } else {
            self.run_create(cmd, stdin.as_ref(), stdout.as_ref(), stderr.as_ref(), &log)
        };
        result?;
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| internal("rvisor exec wrote no pid"))?;
        let _ = std::fs::remove_file(&pid_file);
        let console = match &listener {
            Some(l) => Some(attach_console(l, &console_path, stdin, stdout)?),
            None => None,
        };
        self.exec_get(id, exec_id, |_, e| {
            e.pid = pid;
            e.status = api::Status::RUNNING;
            e.console = console;
        })?;
        let early = {
            let mut ex = self.exits.lock().map_err(|_| internal("lock"))?;
            match ex.early.remove(&(pid as i32)) {
                Some(code) => Some(code),
                None => {
                    ex.execs
                        .insert(pid as i32, (id.to_string(), exec_id.to_string()));
                    None
                }
            }
        };
        self.publish(Box::new(TaskExecStarted {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
            pid,
            ..Default::default()
        }));
        if let Some(code) = early {
            self.exec_exited(id, exec_id, pid as i32, code);
        }
        Ok(api::StartResponse {
            pid,
            ..Default::default()
        })
    }

    fn delete_exec(&self, id: &str, exec_id: &str) -> TtrpcResult<api::DeleteResponse> {
        let (pid, running, exit, spec_path) = self.exec_get(id, exec_id, |_, e| {
            (
                e.pid,
                e.status == api::Status::RUNNING,
                e.exit.clone(),
                e.spec_path.clone(),
            )
        })?;
        if running {
            return Err(rpc_err(
                Code::FAILED_PRECONDITION,
                format!("exec {exec_id} is still running"),
            ));
        }
        let _ = std::fs::remove_file(&spec_path);
        let (status, at) = exit
            .0
            .lock()
            .ok()
            .and_then(|e| e.status.clone())
            .unwrap_or((0, now()));
        if let Ok(mut cs) = self.containers.lock() {
            if let Some(c) = cs.get_mut(id) {
                c.execs.remove(exec_id);
            }
        }
        Ok(api::DeleteResponse {
            pid,
            exit_status: status,
            exited_at: MessageField::some(at),
            ..Default::default()
        })
    }

    /// `rvisor create`: the sandbox inherits create's stdio, so the FIFOs are
    /// create's stdout and stderr (null with a terminal, whose slave the sandbox gets
    /// instead). create's own one-line error then goes to `--log`, read back here.
    fn run_create(
        &self,
        mut cmd: Command,
        stdin: Option<&File>,
        stdout: Option<&File>,
        stderr: Option<&File>,
        log: &str,
    ) -> TtrpcResult<()> {
        let dup = |f: Option<&File>| -> TtrpcResult<Stdio> {
            match f {
                Some(f) => Ok(Stdio::from(
                    f.try_clone().map_err(|e| internal(e.to_string()))?,
                )),
                None => Ok(Stdio::null()),
            }
        };
        cmd.stdin(dup(stdin)?)
            .stdout(dup(stdout)?)
            .stderr(dup(stderr)?);
        let (tx, rx) = channel();
        {
            let mut ex = self.exits.lock().map_err(|_| internal("lock"))?;
            let child = cmd
                .spawn()
                .map_err(|e| internal(format!("run rvisor: {e}")))?;
            ex.cli.insert(child.id() as i32, tx);
        }
        let code = rx
            .recv()
            .map_err(|_| internal("lost the exit status of rvisor create"))?;
        if code == 0 {
            return Ok(());
        }
        let msg = std::fs::read_to_string(log)
            .ok()
            .and_then(|t| {
                t.lines()
                    .rev()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter(|v| {
                        v["level"]
                            .as_str()
                            .is_some_and(|l| l.eq_ignore_ascii_case("error"))
                    })
                    .filter_map(|v| {
                        v.get("msg")
                            .or_else(|| v.get("message"))
                            .and_then(|m| m.as_str())
                            .map(str::to_string)
                    })
                    .next()
            })
            .unwrap_or_else(|| format!("rvisor create failed with status {code}"));
        Err(rpc_err(Code::UNKNOWN, msg))
    }
}

/// The type containerd (`ctr task metrics`) decodes cgroup v1 figures as.
const METRICS_V1: &str = "io.containerd.cgroups.v1.Metrics";

/// `rvisor events --stats` data (runc's shape) as containerd's cgroup v1 metrics.
fn metrics_v1(d: &serde_json::Value) -> metrics::Metrics {
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let mut m = metrics::Metrics::new();
    let mut pids = metrics::PidsStat::new();
    pids.current = n(&d["pids"]["current"]);
    pids.limit = n(&d["pids"]["limit"]);
    m.pids = MessageField::some(pids);

    let u = &d["cpu"]["usage"];
    let mut usage = metrics::CPUUsage::new();
    usage.total = n(&u["total"]);
    usage.kernel = n(&u["kernel"]);
    usage.user = n(&u["user"]);
    usage.per_cpu = u["percpu"]
        .as_array()
        .map(|a| a.iter().map(n).collect())
        .unwrap_or_default();
    let t = &d["cpu"]["throttling"];
    let mut thr = metrics::Throttle::new();
    thr.periods = n(&t["periods"]);
    thr.throttled_periods = n(&t["throttledPeriods"]);
    thr.throttled_time = n(&t["throttledTime"]);
    let mut cpu = metrics::CPUStat::new();
    cpu.usage = MessageField::some(usage);
    cpu.throttling = MessageField::some(thr);
    m.cpu = MessageField::some(cpu);

    let mem = &d["memory"];
    let entry = |e: &serde_json::Value| {
        let mut x = metrics::MemoryEntry::new();
        x.limit = n(&e["limit"]);
        x.usage = n(&e["usage"]);
        x.max = n(&e["max"]);
        x.failcnt = n(&e["failcnt"]);
        MessageField::some(x)
    };
    let raw = &mem["raw"];
    let r = |k: &str| n(&raw[k]);
    let mut ms = metrics::MemoryStat::new();
    ms.cache = r("cache");
    ms.rss = r("rss");
    ms.rss_huge = r("rss_huge");
    ms.mapped_file = r("mapped_file");
    ms.dirty = r("dirty");
    ms.writeback = r("writeback");
    ms.pg_pg_in = r("pgpgin");
    ms.pg_pg_out = r("pgpgout");
    ms.pg_fault = r("pgfault");
    ms.pg_maj_fault = r("pgmajfault");
    ms.inactive_anon = r("inactive_anon");
    ms.active_anon = r("active_anon");
    ms.inactive_file = r("inactive_file");
    ms.active_file = r("active_file");
    ms.unevictable = r("unevictable");
    ms.hierarchical_memory_limit = r("hierarchical_memory_limit");
    ms.hierarchical_swap_limit = r("hierarchical_memsw_limit");
    ms.total_cache = r("total_cache");
    ms.total_rss = r("total_rss");
    ms.total_rss_huge = r("total_rss_huge");
    ms.total_mapped_file = r("total_mapped_file");
    ms.total_dirty = r("total_dirty");
    ms.total_writeback = r("total_writeback");
    ms.total_pg_pg_in = r("total_pgpgin");
    ms.total_pg_pg_out = r("total_pgpgout");
    ms.total_pg_fault = r("total_pgfault");
    ms.total_pg_maj_fault = r("total_pgmajfault");
    ms.total_inactive_anon = r("total_inactive_anon");
    ms.total_active_anon = r("total_active_anon");
    ms.total_inactive_file = r("total_inactive_file");
    ms.total_active_file = r("total_active_file");
    ms.total_unevictable = r("total_unevictable");
    ms.usage = entry(&mem["usage"]);
    ms.swap = entry(&mem["swap"]);
    ms.kernel = entry(&mem["kernel"]);
    m.memory = MessageField::some(ms);
    m
}

fn main() {
    shim::run::<Service>("io.containerd.rvisor.v1", None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_stats_become_cgroup_v1_metrics() {
        let d = serde_json::json!({
            "cpu": {"usage": {"total": 30, "kernel": 10, "user": 20, "percpu": [12, 18]},
                    "throttling": {"periods": 4, "throttledPeriods": 2, "throttledTime": 99}},
            "memory": {"usage": {"limit": 1000, "usage": 600, "max": 700, "failcnt": 1},
                       "swap": {"limit": 2000, "usage": 650},
                       "raw": {"cache": 5, "rss": 6, "pgfault": 7, "total_rss": 8,
                               "hierarchical_memsw_limit": 9}},
            "pids": {"current": 3, "limit": 64},
        });
        let m = metrics_v1(&d);
        assert_eq!((m.pids.current, m.pids.limit), (3, 64));
        let u = &m.cpu.usage;
        assert_eq!((u.total, u.kernel, u.user), (30, 10, 20));
        assert_eq!(u.per_cpu, vec![12, 18]);
        assert_eq!(m.cpu.throttling.throttled_time, 99);
        let mem = &m.memory;
        assert_eq!(
            (mem.usage.limit, mem.usage.usage, mem.usage.max),
            (1000, 600, 700)
        );
        assert_eq!(mem.swap.usage, 650);
        assert_eq!(
            (mem.cache, mem.rss, mem.pg_fault, mem.total_rss),
            (5, 6, 7, 8)
        );
        assert_eq!(mem.hierarchical_swap_limit, 9);
        // What containerd decodes: the type name and a protobuf that parses back.
        let bytes = containerd_shim_protos::protobuf::Message::write_to_bytes(&m).unwrap();
        let back: metrics::Metrics =
            containerd_shim_protos::protobuf::Message::parse_from_bytes(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(METRICS_V1, "io.containerd.cgroups.v1.Metrics");
    }
}
