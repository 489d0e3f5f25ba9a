//! The sentry's control channel: how the runtime (the `rvisor` CLI, through the
//! sandbox's supervisor process) drives a running sandbox.
//!
//! Transport: one connected `SOCK_SEQPACKET` socket inherited at boot; every message
//! is one record holding one JSON document, so no framing is needed and a short read
//! cannot split a message. The sentry speaks first: [`Event::Created`] once the
//! container's first process is loaded and held before its first instruction (or
//! [`Event::Failed`] when it cannot be). After that, each [`Request`] gets exactly one
//! [`Reply`], in order. Requests that start a process carry its descriptors with
//! `SCM_RIGHTS` (`sendmsg`/`recvmsg`, which the sentry's seccomp allow-list already
//! has for the gofer).
//!
//! [`Request::ExecProcess`] carries four descriptors: the process's stdin, stdout and
//! stderr, and a *status* socket. The sentry writes the process's shell-style exit
//! status there (decimal, then a newline) when it ends; if the runtime's end of that
//! socket closes first (the `rvisor exec` that waits on it was killed), the process
//! is killed, so nothing runs on with nobody to report its end to.
//!
//! [`Request::CreateContainer`] adds a container to the sandbox (a pod's second
//! container): it carries five descriptors, the stdio and status ones as for exec
//! plus a socket connected to a gofer serving the new container's rootfs (and its
//! bind mounts). The container gets its own root (overlay, mounts) and its own
//! process tree, whose first process has no parent in the sandbox and is held until
//! [`Request::StartContainer`]; it shares the sandbox's kernel (IPC, hostname,
//! network). A process belongs to a container when its parent chain reaches that
//! container's first process.

pub mod setup;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::mpsc;

use crate::kernel::Kernel;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::{MountConfig, ProcessConfig};
use crate::vfs::Dentry;

/// Largest message either side sends (a process spec with a large environment).
pub const MAX_MESSAGE: usize = 1 << 20;

/// Unsolicited news from the sentry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The first process is loaded and waits for [`Request::Start`].
    Created,
    /// The sandbox could not be set up; the sentry exits after sending this.
    Failed {
        /// What went wrong.
        msg: String,
    },
}

/// A command to the sentry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Let the first process run (OCI `start`).
    Start,
    /// Send `signo` to a container's init (`all`: to every process of it; `pid`: to
    /// that process only).
    Signal {
        /// Container id (the sandbox's first container when it is the only one).
        container: String,
        /// Signal number.
        signo: i32,
        /// Every process of the container, not just its init.
        all: bool,
        /// One process (an exec'd one), by its pid in the sandbox.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<i32>,
    },
    /// Add a container to this sandbox (CRI `container-type: container`); carries
    /// the stdin, stdout, stderr, status and gofer descriptors (see the module doc).
    CreateContainer {
        /// Container id.
        id: String,
        /// Its first process.
        process: ProcessConfig,
        /// Its mounts (bind mounts attach to its own gofer, in order).
        #[serde(default)]
        mounts: Vec<MountConfig>,
        /// Its rootfs is read-only.
        #[serde(default)]
        readonly_rootfs: bool,
        /// Its `linux.maskedPaths`, applied after its mounts as for the first container.
        #[serde(default)]
        masked_paths: Vec<String>,
        /// Its `linux.readonlyPaths`.
        #[serde(default)]
        readonly_paths: Vec<String>,
        /// Its emulated `linux.devices`, in its own /dev.
        #[serde(default)]
        devices: Vec<crate::config::DeviceConfig>,
        /// Its own limits, from its spec's resources (see `kernel::containers`).
        #[serde(default)]
        limits: crate::kernel::containers::ContainerLimits,
    },
    /// New limits for an added container (its spec's resources, updated): what
    /// its programs see changes; only the limits named change.
    UpdateContainer {
        /// Container id.
        id: String,
        /// The new limits.
        limits: crate::kernel::containers::ContainerLimits,
    },
    /// The runtime killed a process of a container at the container's own memory
    /// limit (its stub): counted for the container's `oom` events.
    NoteLimitKill {
        /// Container id.
        container: String,
    },
    /// Let an added container's first process run.
    StartContainer {
        /// Container id.
        id: String,
    },
    /// Start another process in an existing container (OCI `exec`); carries the
    /// stdin, stdout, stderr and status descriptors (see the module doc).
    ExecProcess {
        /// Container id.
        container: String,
        /// The process.
        process: ProcessConfig,
    },
    /// Wait for a process to exit and report its status.
    Wait {
        /// Container id.
        container: String,
        /// Pid inside the sandbox.
        pid: i32,
    },
    /// List a container's processes.
    Ps {
        /// Container id.
        container: String,
    },
    /// A container's own usage (see [`ContainerStats`]).
    Stats {
        /// Container id.
        container: String,
    },
}

/// What one container of the sandbox uses, from the sentry's own accounting: its
/// processes are known by their parent chains, and each process's memory is held by
/// its stub, a host process of the sandbox, whose pid is given for the runtime to
/// read its resident memory from the host.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerStats {
    /// CPU time of its live processes and of their waited-for children, user, in
    /// nanoseconds.
    pub cpu_user_ns: u64,
    /// The same, system.
    pub cpu_system_ns: u64,
    /// Its processes (live ones).
    pub processes: u64,
    /// Its threads.
    pub threads: u64,
    /// The stubs holding its processes' memory: pids in the sentry's pid namespace,
    /// each once.
    pub stubs: Vec<i32>,
    /// Its processes killed from outside the sandbox (by the host's OOM killer when
    /// the sandbox's host cgroup ran out of memory, or by the runtime at the
    /// container's own limit), since the sandbox started.
    pub host_kills: u64,
    /// Its own memory limit (see `kernel::containers`), which the runtime enforces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<u64>,
    /// Its processes the runtime killed at that limit ([`Request::NoteLimitKill`]).
    #[serde(default)]
    pub limit_kills: u64,
}

/// The answer to one [`Request`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Reply {
    /// Done.
    Ok,
    /// A process was created with this pid (in the sandbox's pid namespace).
    Pid {
        /// The new process's pid.
        pid: i32,
    },
    /// A process ended with this shell-style status.
    Exited {
        /// Exit code, or 128 + the signal.
        status: i32,
    },
    /// The pids of a container's processes.
    Pids {
        /// Pids in the sandbox's pid namespace.
        pids: Vec<i32>,
    },
    /// A container's usage.
    Stats {
        /// The figures.
        stats: ContainerStats,
    },
    /// The request failed.
    Error {
        /// Why, in one line.
        msg: String,
    },
}

/// Writes one message as one record.
pub fn send<T: Serialize>(sock: impl AsFd, msg: &T) -> Result<(), String> {
    let bytes = serde_json::to_vec(msg).map_err(|e| format!("encode: {e}"))?;
    if bytes.len() > MAX_MESSAGE {
        return Err(format!("message of {} bytes is too large", bytes.len()));
    }
    loop {
        match nix::unistd::write(sock.as_fd(), &bytes) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(n) => return Err(format!("short write of {n} bytes")),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("write: {e}")),
        }
    }
}

/// Reads one message; `Ok(None)` when the peer has hung up.
pub fn recv<T: for<'de> Deserialize<'de>>(sock: impl AsFd) -> Result<Option<T>, String> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let n = loop {
        match nix::unistd::read(sock.as_fd().as_raw_fd(), &mut buf) {
            Ok(n) => break n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("read: {e}")),
        }
    };
    if n == 0 {
        return Ok(None);
    }
    serde_json::from_slice(&buf[..n])
        .map(Some)
        .map_err(|e| format!("malformed message: {e}"))
}

/// Descriptors an [`Request::ExecProcess`] carries, in order.
pub const EXEC_FDS: usize = 4;
/// Descriptors a [`Request::CreateContainer`] carries, in order.
pub const CREATE_FDS: usize = 5;

/// A container added to the sandbox after its first one.
struct Sub {
    root: Arc<Dentry>,
    init: i32,
}

/// What the control thread and the boot code share: the added containers, and the
/// gates holding their first processes until they are started.
#[derive(Default)]
pub struct Shared {
    subs: Mutex<HashMap<String, Sub>>,
    gates: Mutex<HashMap<String, mpsc::Sender<bool>>>,
    /// The sandbox's first container's id, `--overlay` mode and its `size=`.
    sandbox: Mutex<(String, String, Option<u64>)>,
}

impl Shared {
    /// Releases every held first process without running it (the sandbox is
    /// ending), so their threads end.
    pub fn abandon_all(&self) {
        if let Ok(mut g) = self.gates.lock() {
            for (_, tx) in g.drain() {
                let _ = tx.send(false);
            }
        }
    }
}

/// Writes one message as one record, with `fds` attached.
pub fn send_with_fds<T: Serialize>(
    sock: impl AsFd,
    msg: &T,
    fds: &[BorrowedFd<'_>],
) -> Result<(), String> {
    let bytes = serde_json::to_vec(msg).map_err(|e| format!("encode: {e}"))?;
    if bytes.len() > MAX_MESSAGE {
        return Err(format!("message of {} bytes is too large", bytes.len()));
    }
    match gofer::send_frame_fds(sock.as_fd(), &bytes, fds) {
        Ok(n) if n == bytes.len() => Ok(()),
        Ok(n) => Err(format!("short write of {n} bytes")),
        Err(e) => Err(format!("sendmsg: {e}")),
    }
}

/// Reads one message and the descriptors that came with it; `Ok(None)` when the
/// peer has hung up.
pub fn recv_with_fds<T: for<'de> Deserialize<'de>>(
    sock: impl AsFd,
) -> Result<Option<(T, Vec<OwnedFd>)>, String> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let got = gofer::recv_frame(sock.as_fd(), &mut buf).map_err(|e| format!("recvmsg: {e}"))?;
    if got.len == 0 && got.fds.is_empty() {
        return Ok(None);
    }
    if got.truncated {
        return Err("message truncated".into());
    }
    serde_json::from_slice(&buf[..got.len])
        .map(|m| Some((m, got.fds)))
        .map_err(|e| format!("malformed message: {e}"))
}

/// The sentry's end of the channel.
pub struct Server {
    sock: Arc<OwnedFd>,
    shared: Arc<Shared>,
}

/// What the first-process thread learns while it waits for `start`.
#[derive(Debug, PartialEq, Eq)]
pub enum Go {
    /// Run the process.
    Start,
    /// The runtime went away (or killed the sandbox) before `start`: do not run it.
    Abandoned,
}

impl Server {
    /// Wraps the inherited socket.
    pub fn new(sock: OwnedFd) -> Server {
        Server {
            sock: Arc::new(sock),
            shared: Arc::default(),
        }
    }

    /// Names the sandbox's first container and the overlay mode (and `size=`)
    /// added containers' roots get.
    pub fn set_sandbox(&self, id: &str, overlay: &str, overlay_size: Option<u64>) {
        if let Ok(mut s) = self.shared.sandbox.lock() {
            *s = (id.to_string(), overlay.to_string(), overlay_size);
        }
    }

    /// The state shared with the control thread.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Reports a setup failure (best effort: the runtime may be gone).
    pub fn failed(&self, msg: &str) {
        let _ = send(&*self.sock, &Event::Failed { msg: msg.into() });
    }

    /// A function that reports setup failures on this channel, usable after the
    /// server itself has moved on.
    pub fn failure_reporter(&self) -> impl Fn(&str) + Send + Sync + 'static {
        let sock = self.sock.clone();
        move |msg: &str| {
            let _ = send(&*sock, &Event::Failed { msg: msg.into() });
        }
    }

    /// Announces the held first process and starts serving requests on a thread of
    /// its own. The returned receiver yields once: when `start` arrives or the
    /// runtime hangs up.
    pub fn created(self, kernel: std::sync::Weak<Kernel>) -> Result<mpsc::Receiver<Go>, String> {
        send(&*self.sock, &Event::Created)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || self.serve(tx, kernel))
            .map_err(|e| format!("cannot start the control thread: {e}"))?;
        Ok(rx)
    }

    fn serve(self, go: mpsc::Sender<Go>, kernel: std::sync::Weak<Kernel>) {
        let mut go = Some(go);
        loop {
            let (req, fds) = match recv_with_fds::<Request>(&*self.sock) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(msg) => {
                    // A malformed request is answered, not fatal: the channel stays usable.
                    let _ = send(&*self.sock, &Reply::Error { msg });
                    continue;
                }
            };
            tracing::debug!(?req, "control request");
            let reply = handle(req, fds, &mut go, &kernel, &self.shared);
            if let Err(e) = send(&*self.sock, &reply) {
                tracing::warn!("control channel: {e}");
                break;
            }
        }
        tracing::info!("control channel closed");
        if let Some(g) = go.take() {
            let _ = g.send(Go::Abandoned);
        }
    }
}

fn handle(
    req: Request,
    fds: Vec<OwnedFd>,
    go: &mut Option<mpsc::Sender<Go>>,
    kernel: &std::sync::Weak<Kernel>,
    shared: &Arc<Shared>,
) -> Reply {
    let err = |msg: String| Reply::Error { msg };
    if req == Request::Start {
        return match go.take() {
            Some(g) => match g.send(Go::Start) {
                Ok(()) => Reply::Ok,
                Err(_) => err("the first process is gone".into()),
            },
            None => err("already started".into()),
        };
    }
    let Some(kernel) = kernel.upgrade() else {
        return err("the sandbox is shutting down".into());
    };
    let kernel = &kernel;
    match req {
        Request::Start => err("already started".into()),
        Request::Signal {
            container,
            signo,
            all,
            pid,
        } => match signal(kernel, shared, &container, signo, all, pid) {
            Ok(()) => Reply::Ok,
            Err(e) => err(format!("signal {signo}: {e}")),
        },
        Request::Ps { container } if !known(shared, &container) => {
            err(format!("ps: no container {container:?} in this sandbox"))
        }
        Request::Ps { container } => match members(kernel, shared, &container) {
            Ok(groups) => Reply::Pids {
                pids: groups
                    .iter()
                    .filter(|g| g.state().map(|s| s.zombie.is_none()).unwrap_or(false))
                    .map(|g| g.tgid)
                    .collect(),
            },
            Err(e) => err(format!("ps: {e}")),
        },
        Request::Stats { container } if !known_or_ended(kernel, shared, &container) => {
            err(format!("stats: no container {container:?} in this sandbox"))
        }
        Request::Stats { container } => match container_stats(kernel, shared, &container) {
            Ok(stats) => Reply::Stats { stats },
            Err(e) => err(format!("stats: {e}")),
        },
        Request::Wait { pid, .. } => match wait_exit(kernel, pid) {
            Ok(status) => Reply::Exited { status },
            Err(e) => err(format!("wait {pid}: {e}")),
        },
        Request::CreateContainer {
            id,
            process,
            mounts,
            readonly_rootfs,
            masked_paths,
            readonly_paths,
            devices,
            limits,
        } => match create_container(
            kernel,
            shared,
            &id,
            &process,
            &RootSpec {
                mounts: &mounts,
                readonly_rootfs,
                masked_paths: &masked_paths,
                readonly_paths: &readonly_paths,
                devices: &devices,
            },
            fds,
        ) {
            Ok(pid) => {
                kernel.containers.set_limits(&id, limits, true);
                Reply::Pid { pid }
            }
            Err(msg) => err(format!("create container {id:?}: {msg}")),
        },
        Request::NoteLimitKill { container } => {
            if known_or_ended(kernel, shared, &container) {
                kernel
                    .containers
                    .note_limit_kill(book_key(shared, &container));
                Reply::Ok
            } else {
                err(format!("container {container:?}: not in this sandbox"))
            }
        }
        Request::UpdateContainer { id, limits } => {
            let added = shared
                .subs
                .lock()
                .map(|s| s.contains_key(&id))
                .unwrap_or(false);
            if added {
                kernel.containers.set_limits(&id, limits, false);
                Reply::Ok
            } else {
                err(format!(
                    "container {id:?}: not a running container added to this sandbox"
                ))
            }
        }
        Request::StartContainer { id } => {
            let gate = shared.gates.lock().ok().and_then(|mut g| g.remove(&id));
            match gate {
                Some(tx) if tx.send(true).is_ok() => Reply::Ok,
                Some(_) => err(format!("container {id:?}: its first process is gone")),
                None => err(format!("container {id:?}: not created or already started")),
            }
        }
        Request::ExecProcess { container, process } => {
            let root = shared
                .subs
                .lock()
                .ok()
                .and_then(|s| s.get(&container).map(|c| c.root.clone()))
                .unwrap_or_else(|| kernel.root.clone());
            let stdio_status = fds;
            if !known(shared, &container) {
                return err(format!("exec: no container {container:?} in this sandbox"));
            }
            // A process exec'd into an added container belongs to it, as do its
            // children, until it ends.
            let added = book_key(shared, &container) != crate::kernel::containers::FIRST;
            let pid_cell = Arc::new(std::sync::atomic::AtomicI32::new(0));
            let mut hooks = Hooks::default();
            if added {
                let (k, cell) = (Arc::downgrade(kernel), pid_cell.clone());
                hooks.on_exit = Some(Box::new(move || {
                    let pid = cell.swap(-1, std::sync::atomic::Ordering::AcqRel);
                    if let (Some(k), true) = (k.upgrade(), pid > 0) {
                        k.containers.remove(pid);
                    }
                }));
            }
            match start_external(kernel, &root, &process, stdio_status, hooks) {
                Ok(pid) => {
                    if added {
                        kernel.containers.add(pid, &container);
                        // It may have ended already: then nothing will remove it.
                        use std::sync::atomic::Ordering::{AcqRel, Acquire};
                        if pid_cell.compare_exchange(0, pid, AcqRel, Acquire).is_err() {
                            kernel.containers.remove(pid);
                        }
                    }
                    Reply::Pid { pid }
                }
                Err(msg) => err(format!("exec: {msg}")),
            }
        }
    }
}

/// The processes of `container`: an added container's are those whose parent chain
/// reaches its first process or a process exec'd into it; the sandbox's own
/// container has every other one (see [`crate::kernel::containers`]).
fn members(
    kernel: &Arc<Kernel>,
    shared: &Shared,
    container: &str,
) -> Result<Vec<Arc<crate::kernel::process::ThreadGroup>>, crate::errno::Errno> {
    let want = book_key(shared, container);
    let reg = kernel.registry()?;
    let parent_of = |pid: i32| {
        reg.group(pid)
            .and_then(|g| g.state().ok().map(|s| s.parent))
            .unwrap_or(0)
    };
    Ok(reg
        .groups
        .values()
        .filter(|g| kernel.containers.owner(g.tgid, parent_of) == want)
        .cloned()
        .collect())
}

/// Sends `signo` from outside the container: to its init, or with `all` to every
/// process. As for any pid namespace's init on Linux, a signal from outside reaches
/// init only if init handles it, except SIGKILL (and SIGSTOP).
fn signal(
    kernel: &Arc<Kernel>,
    shared: &Shared,
    container: &str,
    signo: i32,
    all: bool,
    pid: Option<i32>,
) -> Result<(), crate::errno::Errno> {
    use crate::kernel::process;
    use crate::kernel::signals::{SigInfo, SIG_DFL, SIG_IGN};
    if !(1..=64).contains(&signo) {
        return Err(crate::errno::Errno::EINVAL);
    }
    if !known(shared, container) {
        return Err(crate::errno::Errno::ESRCH);
    }
    let sub_init = shared
        .subs
        .lock()
        .ok()
        .and_then(|s| s.get(container).map(|c| c.init));
    let groups: Vec<_> = if let Some(p) = pid {
        kernel.registry()?.group(p).into_iter().collect()
    } else if let Some(init) = sub_init {
        // An added container's first process is no pid namespace's init: the signal
        // goes to it as to any process. SIGKILL ends the whole container (as its
        // init's death would end a pid namespace).
        if all || signo == libc::SIGKILL {
            members(kernel, shared, container)?
        } else {
            kernel.registry()?.group(init).into_iter().collect()
        }
    } else if all {
        members(kernel, shared, container)?
    } else {
        kernel.registry()?.group(1).into_iter().collect()
    };
    if groups.is_empty() {
        return Err(crate::errno::Errno::ESRCH);
    }
    for g in groups {
        if g.tgid == 1 && signo != libc::SIGKILL && signo != libc::SIGSTOP {
            let handled = g
                .actions()
                .ok()
                .and_then(|a| a.get(signo as u32).ok())
                .map(|a| a.handler != SIG_DFL && a.handler != SIG_IGN)
                .unwrap_or(false);
            if !handled {
                continue;
            }
        }
        process::send_to_group(&g, SigInfo::user(signo, 0, 0))?;
    }
    Ok(())
}

/// How [`start_external`] treats its process.
struct Hooks {
    /// Descriptors expected (stdio and status first).
    want: usize,
    /// Holds the loaded process until it says go.
    gate: Option<Box<dyn FnOnce() -> bool + Send>>,
    /// Runs when the runtime's end of the status socket closes.
    on_hangup: Option<Box<dyn FnOnce() + Send>>,
    /// Runs once the process has ended and been reaped.
    on_exit: Option<Box<dyn FnOnce() + Send>>,
}

impl Default for Hooks {
    fn default() -> Hooks {
        Hooks {
            want: EXEC_FDS,
            gate: None,
            on_hangup: None,
            on_exit: None,
        }
    }
}

/// True for the sandbox's own container (also named by "") and added ones.
/// The key [`crate::kernel::containers::Book`] counts `container`'s kills under.
fn book_key<'a>(shared: &Shared, container: &'a str) -> &'a str {
    let first = shared
        .sandbox
        .lock()
        .map(|s| s.0 == container)
        .unwrap_or(false);
    if container.is_empty() || first {
        crate::kernel::containers::FIRST
    } else {
        container
    }
}

/// A container of this sandbox, running or ended: an added container that has
/// ended still has its kill count.
fn known_or_ended(kernel: &Kernel, shared: &Shared, container: &str) -> bool {
    known(shared, container) || kernel.containers.host_kills(container) > 0
}

/// `container`'s own usage: its live processes (none once it has ended).
fn container_stats(
    kernel: &Arc<Kernel>,
    shared: &Shared,
    container: &str,
) -> Result<ContainerStats, crate::errno::Errno> {
    let mut st = ContainerStats {
        host_kills: kernel.containers.host_kills(book_key(shared, container)),
        memory_limit: kernel.containers.limits(book_key(shared, container)).memory,
        limit_kills: kernel.containers.limit_kills(book_key(shared, container)),
        ..Default::default()
    };
    if !known(shared, container) {
        return Ok(st);
    }
    let mut user = std::time::Duration::ZERO;
    let mut system = std::time::Duration::ZERO;
    for g in members(kernel, shared, container)? {
        let Ok(s) = g.state() else { continue };
        if s.zombie.is_some() {
            continue;
        }
        st.processes += 1;
        st.threads += s.threads.len().max(1) as u64;
        user += s.children_cpu.0;
        system += s.children_cpu.1;
        let mm = s.view.mm.as_ref().and_then(|w| w.upgrade());
        drop(s);
        let Some(space) = mm.and_then(|m| m.lock().ok().map(|m| m.space().clone())) else {
            continue;
        };
        // Processes sharing an address space (vfork) share its stub: counted once.
        if let Some(pid) = space.stub_pid().filter(|p| !st.stubs.contains(p)) {
            st.stubs.push(pid);
            // The exact run time, split as the tick-based user and system times are.
            let run = crate::platform::common::process_cpu_runtime(pid).unwrap_or_default();
            let (u, sy) = space.cpu_time().unwrap_or_default();
            let u_share = match (u + sy).as_nanos() {
                0 => run,
                ticks => run.mul_f64(u.as_nanos() as f64 / ticks as f64),
            };
            user += u_share;
            system += run.saturating_sub(u_share);
        }
    }
    st.cpu_user_ns = user.as_nanos() as u64;
    st.cpu_system_ns = system.as_nanos() as u64;
    Ok(st)
}

fn known(shared: &Shared, container: &str) -> bool {
    let sandbox = shared
        .sandbox
        .lock()
        .map(|s| s.0.clone())
        .unwrap_or_default();
    container.is_empty()
        || container == sandbox
        || shared
            .subs
            .lock()
            .map(|s| s.contains_key(container))
            .unwrap_or(false)
}

/// Starts `process` under `root` with the received stdio and reports its end on the
/// status socket (see the module doc); returns its pid. `fds` must hold `want`
/// descriptors (stdio and status first).
fn start_external(
    kernel: &Arc<Kernel>,
    root: &Arc<Dentry>,
    process: &ProcessConfig,
    fds: Vec<OwnedFd>,
    hooks: Hooks,
) -> Result<i32, String> {
    let Hooks {
        want,
        gate,
        on_hangup,
        on_exit,
    } = hooks;
    use crate::fs::host::HostStream;
    use crate::kernel::spawn::{self, StartError};
    use crate::vfs::{FdTable, OpenFile};
    if fds.len() != want {
        return Err(format!(
            "expected {want} descriptors (stdin, stdout, stderr, status...), got {}",
            fds.len()
        ));
    }
    let mut fds = fds.into_iter();
    let mut table = FdTable::new();
    for n in 0..3 {
        let Some(fd) = fds.next() else {
            return Err("missing stdio".into());
        };
        let file = OpenFile::new(Box::new(HostStream::new(fd)), None, libc::O_RDWR);
        table
            .insert_at(n, file, false, 3)
            .map_err(|e| format!("stdio fd {n}: {e}"))?;
    }
    let Some(status) = fds.next() else {
        return Err("missing the status socket".into());
    };
    let net_raw = kernel.net_raw.load(std::sync::atomic::Ordering::Relaxed);
    let mut spec = setup::process_spec(root, table, process, 0, net_raw)?;
    spec.gate = gate;
    let pid = match spawn::start_process(kernel, spec) {
        Ok(pid) => pid,
        Err(StartError::NotFound(m) | StartError::NotExecutable(m) | StartError::Setup(m)) => {
            return Err(m)
        }
    };
    let group = kernel.registry().ok().and_then(|r| r.group(pid));
    let Some(group) = group else {
        return Ok(pid);
    };
    let status = Arc::new(status);
    // The reporter: waits for the end, writes the status, and reaps the zombie (an
    // exec'd process has no parent in the sandbox to do it).
    let k = kernel.clone();
    let st = status.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("exec-wait-{pid}"))
        .spawn(move || {
            let code = match wait_exit(&k, pid) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(pid, "exec: wait: {e}");
                    128 + libc::SIGKILL
                }
            };
            if let Ok(mut r) = k.registry() {
                if let Some(g) = r.groups.remove(&pid) {
                    g.pid_ns.release(pid);
                }
            }
            // Before the status goes out: the runtime may act as soon as it has it.
            if let Some(f) = on_exit {
                f();
            }
            let _ = crate::sys::host::write(st.as_fd(), format!("{code}\n").as_bytes());
        });
    if let Err(e) = spawned {
        tracing::warn!(pid, "exec: cannot start the reporter thread: {e}");
    }
    // The watcher: the runtime's end closing before the process ended means nobody
    // waits for it any more.
    let spawned = std::thread::Builder::new()
        .name(format!("exec-watch-{pid}"))
        .spawn(move || {
            let mut b = [0u8; 16];
            loop {
                match crate::sys::host::read(status.as_fd(), &mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            if let Some(f) = on_hangup {
                f();
            }
            let live = group.state().map(|s| s.zombie.is_none()).unwrap_or(false);
            if live {
                tracing::info!(
                    pid,
                    "exec: the runtime stopped waiting; killing the process"
                );
                crate::kernel::process::kill_group(
                    &group,
                    crate::kernel::ExitStatus::Signaled {
                        signo: libc::SIGKILL,
                        core: false,
                    },
                );
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(pid, "exec: cannot start the watcher thread: {e}");
    }
    Ok(pid)
}

/// What an added container's root is made of, from its spec.
struct RootSpec<'a> {
    mounts: &'a [MountConfig],
    readonly_rootfs: bool,
    masked_paths: &'a [String],
    readonly_paths: &'a [String],
    devices: &'a [crate::config::DeviceConfig],
}

/// Builds an added container's root from the gofer socket (the last of `fds`) and
/// starts its first process, held until [`Request::StartContainer`].
fn create_container(
    kernel: &Arc<Kernel>,
    shared: &Arc<Shared>,
    id: &str,
    process: &ProcessConfig,
    spec: &RootSpec<'_>,
    mut fds: Vec<OwnedFd>,
) -> Result<i32, String> {
    use crate::vfs::mount::{self, Mount, MountTable};
    let RootSpec {
        mounts,
        readonly_rootfs,
        ..
    } = *spec;
    let (sandbox_id, overlay, overlay_size) = shared
        .sandbox
        .lock()
        .map(|s| s.clone())
        .map_err(|_| "lock".to_string())?;
    let taken = shared
        .subs
        .lock()
        .map(|s| s.contains_key(id))
        .unwrap_or(true);
    if taken || id == sandbox_id {
        return Err("a container with this id is already in the sandbox".into());
    }
    if fds.len() != CREATE_FDS {
        return Err(format!(
            "expected {CREATE_FDS} descriptors (stdin, stdout, stderr, status, gofer), got {}",
            fds.len()
        ));
    }
    let gofer_sock = fds.pop().ok_or("missing the gofer socket")?;
    let client = Arc::new(
        gofer::Client::new(gofer_sock).map_err(|e| format!("gofer: handshake failed: {e}"))?,
    );
    let config = crate::config::BootConfig {
        id: id.to_string(),
        platform: String::new(),
        strace: false,
        hostname: String::new(),
        process: process.clone(),
        overlay,
        overlay_size,
        network: "none".into(),
        readonly_rootfs,
        mounts: mounts.to_vec(),
        weak_confinement: false,
        syscall_patching: true,
        // Only the root filesystem is built from this config; the process's
        // capabilities follow the sandbox's --net-raw (Kernel::net_raw).
        net_raw: false,
        masked_paths: spec.masked_paths.to_vec(),
        readonly_paths: spec.readonly_paths.to_vec(),
        netns_path: None,
        resources: Default::default(),
        netdev: None,
        allow_metadata: false,
        devices: spec.devices.to_vec(),
    };
    let root_inode = crate::fs::overlay::root_for(&config, client.clone())?;
    let root = Dentry::mount_root(
        root_inode,
        Mount::root_with_flags(if readonly_rootfs { libc::MS_RDONLY } else { 0 }),
    );
    let table = MountTable::new();
    table.mount_all(
        &root,
        &mount::with_defaults(mounts, readonly_rootfs, &root),
        &setup::fs_constructors(kernel, &client, &config.devices)?,
    )?;
    // After every other mount, as for the sandbox's first container.
    crate::vfs::protect::apply(&table, &root, &config.masked_paths, &config.readonly_paths)?;
    let (tx, rx) = mpsc::channel::<bool>();
    shared
        .gates
        .lock()
        .map_err(|_| "lock".to_string())?
        .insert(id.to_string(), tx);
    let gate: Box<dyn FnOnce() -> bool + Send> = Box::new(move || rx.recv() == Ok(true));
    // The status socket closing before start means nobody will start it.
    // Nor is anyone left to report the container's end to: all of it goes.
    let sh = shared.clone();
    let cid = id.to_string();
    let k = Arc::downgrade(kernel);
    let release: Box<dyn FnOnce() + Send> = Box::new(move || {
        if let Some(tx) = sh.gates.lock().ok().and_then(|mut g| g.remove(&cid)) {
            let _ = tx.send(false);
        }
        if let Some(k) = k.upgrade() {
            if let Err(e) = signal(&k, &sh, &cid, libc::SIGKILL, true, None) {
                tracing::debug!("container {cid}: kill after hang-up: {e}");
            }
        }
    });
    // Once it has ended the container is gone from the sandbox, so no later
    // request can reach a process that took over its pid.
    let sh = shared.clone();
    let cid = id.to_string();
    let k = Arc::downgrade(kernel);
    let on_exit: Box<dyn FnOnce() + Send> = Box::new(move || {
        if let Ok(mut s) = sh.subs.lock() {
            if let (Some(sub), Some(k)) = (s.remove(&cid), k.upgrade()) {
                k.containers.remove(sub.init);
                k.containers.forget_limits(&cid);
            }
        }
    });
    let hooks = Hooks {
        want: EXEC_FDS,
        gate: Some(gate),
        on_hangup: Some(release),
        on_exit: Some(on_exit),
    };
    let started = start_external(kernel, &root, process, fds, hooks);
    let pid = match started {
        Ok(pid) => pid,
        Err(e) => {
            if let Ok(mut g) = shared.gates.lock() {
                g.remove(id);
            }
            return Err(e);
        }
    };
    kernel.containers.add(pid, id);
    if let Ok(mut s) = shared.subs.lock() {
        s.insert(id.to_string(), Sub { root, init: pid });
    }
    Ok(pid)
}

/// Blocks until process `pid` has exited; returns its shell-style status.
fn wait_exit(kernel: &Arc<Kernel>, pid: i32) -> Result<i32, crate::errno::Errno> {
    use crate::kernel::{wait, ExitStatus};
    let g = kernel
        .registry()?
        .group(pid)
        .ok_or(crate::errno::Errno::ESRCH)?;
    let w = wait::Waker::new();
    let _reg = g.events.register(&w);
    let st = wait::block(&w, None, || false, || Ok(g.state()?.zombie))
        .map_err(|_| crate::errno::Errno::EINTR)??;
    Ok(match st {
        ExitStatus::Exited(c) => c & 0xff,
        ExitStatus::Signaled { signo, .. } => 128 + signo,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap()
    }

    #[test]
    fn start_once_then_refused() {
        let (a, b) = pair();
        let go = Server::new(b).created(std::sync::Weak::new()).unwrap();
        assert_eq!(recv::<Event>(&a).unwrap(), Some(Event::Created));
        send(&a, &Request::Start).unwrap();
        assert_eq!(recv::<Reply>(&a).unwrap(), Some(Reply::Ok));
        assert_eq!(go.recv().unwrap(), Go::Start);
        send(&a, &Request::Start).unwrap();
        assert!(matches!(
            recv::<Reply>(&a).unwrap(),
            Some(Reply::Error { .. })
        ));
    }

    #[test]
    fn malformed_request_is_answered_and_hangup_abandons() {
        let (a, b) = pair();
        let go = Server::new(b).created(std::sync::Weak::new()).unwrap();
        assert_eq!(recv::<Event>(&a).unwrap(), Some(Event::Created));
        nix::unistd::write(&a, b"{not json").unwrap();
        match recv::<Reply>(&a).unwrap() {
            Some(Reply::Error { msg }) => assert!(msg.contains("malformed"), "{msg}"),
            other => panic!("{other:?}"),
        }
        send(
            &a,
            &Request::Ps {
                container: "c".into(),
            },
        )
        .unwrap();
        assert!(matches!(
            recv::<Reply>(&a).unwrap(),
            Some(Reply::Error { .. })
        ));
        drop(a);
        assert_eq!(go.recv().unwrap(), Go::Abandoned);
    }

    #[test]
    fn descriptors_ride_with_a_request() {
        let (a, b) = pair();
        let (r, w) = nix::unistd::pipe().unwrap();
        let req = Request::Signal {
            container: "c".into(),
            signo: 15,
            all: false,
            pid: Some(7),
        };
        send_with_fds(&a, &req, &[w.as_fd()]).unwrap();
        drop(w);
        let (got, fds) = recv_with_fds::<Request>(&b).unwrap().unwrap();
        assert_eq!(got, req);
        assert_eq!(fds.len(), 1);
        nix::unistd::write(&fds[0], b"x").unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(nix::unistd::read(r.as_raw_fd(), &mut buf).unwrap(), 1);
        // A request without a pid still parses (older runtimes).
        let old: Request =
            serde_json::from_str(r#"{"op":"signal","container":"c","signo":9,"all":true}"#)
                .unwrap();
        assert!(matches!(old, Request::Signal { pid: None, .. }));
        drop(a);
        assert!(recv_with_fds::<Request>(&b).unwrap().is_none());
    }
}
