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

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::mpsc;

use crate::kernel::Kernel;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::config::ProcessConfig;

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
    /// Add a container to this sandbox (CRI `container-type: container`).
    CreateContainer {
        /// Container id.
        id: String,
        /// Its first process.
        process: ProcessConfig,
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
        }
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
            let reply = handle(req, fds, &mut go, &kernel);
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
            signo, all, pid, ..
        } => match signal(kernel, signo, all, pid) {
            Ok(()) => Reply::Ok,
            Err(e) => err(format!("signal {signo}: {e}")),
        },
        Request::Ps { .. } => match kernel.registry() {
            Ok(r) => Reply::Pids {
                pids: r.groups.values().filter(|g| g.state().map(|s| s.zombie.is_none()).unwrap_or(false)).map(|g| g.tgid).collect(),
            },
            Err(e) => err(format!("ps: {e}")),
        },
        Request::Wait { pid, .. } => match wait_exit(kernel, pid) {
            Ok(status) => Reply::Exited { status },
            Err(e) => err(format!("wait {pid}: {e}")),
        },
        // Another container or process needs its stdio handed into the sandbox;
        // the channel does not carry fds yet.
        Request::CreateContainer { .. } => err("create-container: passing a container's stdio into a running sandbox is not implemented yet".into()),
        Request::ExecProcess { process, .. } => match exec_process(kernel, &process, fds) {
            Ok(pid) => Reply::Pid { pid },
            Err(msg) => err(msg),
        },
    }
}

/// Sends `signo` from outside the container: to its init, or with `all` to every
/// process. As for any pid namespace's init on Linux, a signal from outside reaches
/// init only if init handles it, except SIGKILL (and SIGSTOP).
fn signal(
    kernel: &Arc<Kernel>,
    signo: i32,
    all: bool,
    pid: Option<i32>,
) -> Result<(), crate::errno::Errno> {
    use crate::kernel::process;
    use crate::kernel::signals::{SigInfo, SIG_DFL, SIG_IGN};
    if !(1..=64).contains(&signo) {
        return Err(crate::errno::Errno::EINVAL);
    }
    let reg = kernel.registry()?;
    let groups: Vec<_> = if let Some(p) = pid {
        reg.group(p).into_iter().collect()
    } else if all {
        reg.groups.values().cloned().collect()
    } else {
        reg.group(1).into_iter().collect()
    };
    drop(reg);
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

/// Starts `process` with the received stdio and reports its end on the status
/// socket (see the module doc); returns its pid.
fn exec_process(
    kernel: &Arc<Kernel>,
    process: &ProcessConfig,
    fds: Vec<OwnedFd>,
) -> Result<i32, String> {
    use crate::fs::host::HostStream;
    use crate::kernel::spawn::{self, StartError};
    use crate::vfs::{FdTable, OpenFile};
    if fds.len() != EXEC_FDS {
        return Err(format!(
            "exec: expected {EXEC_FDS} descriptors (stdin, stdout, stderr, status), got {}",
            fds.len()
        ));
    }
    let mut fds = fds.into_iter();
    let mut table = FdTable::new();
    for n in 0..3 {
        let Some(fd) = fds.next() else {
            return Err("exec: missing stdio".into());
        };
        let file = OpenFile::new(Box::new(HostStream::new(fd)), None, libc::O_RDWR);
        table
            .insert_at(n, file, false, 3)
            .map_err(|e| format!("exec: stdio fd {n}: {e}"))?;
    }
    let Some(status) = fds.next() else {
        return Err("exec: missing the status socket".into());
    };
    let spec = crate::boot::process_spec(&kernel.root, table, process, 0)?;
    let pid = match spawn::start_process(kernel, spec) {
        Ok(pid) => pid,
        Err(StartError::NotFound(m) | StartError::NotExecutable(m) | StartError::Setup(m)) => {
            return Err(format!("exec: {m}"))
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
            let _ = crate::sys::host::write(st.as_fd(), format!("{code}\n").as_bytes());
            if let Ok(mut r) = k.registry() {
                r.groups.remove(&pid);
            }
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
}
