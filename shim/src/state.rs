//! Task state: a typed state machine for the container's init process and its execs,
//! and the exit record `Wait` blocks on.
//!
//! ```text
//!            start           pause
//!  Created ────────▶ Running ◀──────▶ Paused     (pause/resume: init only)
//!     │                 │   resume      │
//!     │ exit            │ exit          │ exit
//!     ▼                 ▼               ▼
//!  Stopped ◀────────────┴───────────────┘
//!     │ delete (also straight from Created)
//!     ▼
//!  Deleted
//! ```

use std::collections::HashMap;
use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use containerd_shim::api;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;

use crate::error::{Error, Result};

/// Where a process is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Made but not started (an exec: added, not started).
    Created,
    Running,
    /// Frozen (init only).
    Paused,
    /// Exited; its status is in the process's [`ExitCell`].
    Stopped,
    /// Gone from the shim's tables; seen only by requests racing the delete.
    Deleted,
}

/// What moves a process from one [`Status`] to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Start,
    Pause,
    Resume,
    Exit,
    Delete,
}

/// Which process of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The container's own process.
    Init,
    /// A process added with `exec`.
    Exec,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
            Status::Deleted => "deleted",
        })
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transition::Start => "start",
            Transition::Pause => "pause",
            Transition::Resume => "resume",
            Transition::Exit => "exit",
            Transition::Delete => "delete",
        })
    }
}

impl Status {
    /// The status after `t`, or the error containerd should see for it.
    pub fn after(self, t: Transition, kind: Kind) -> Result<Status> {
        use Status::*;
        use Transition::*;
        match (self, t) {
            (Created, Start) => Ok(Running),
            (Running, Pause) if kind == Kind::Init => Ok(Paused),
            (Paused, Resume) => Ok(Running),
            (Created | Running | Paused, Exit) => Ok(Stopped),
            (Created | Stopped, Delete) => Ok(Deleted),
            (Deleted, _) => Err(Error::NotFound(format!(
                "process was deleted; cannot {t} it"
            ))),
            (_, Pause | Resume) if kind == Kind::Exec => Err(Error::InvalidArgument(format!(
                "an exec'd process cannot {t}; pause or resume the container"
            ))),
            (Running | Paused, Delete) => Err(Error::FailedPrecondition(format!(
                "cannot delete a {self} process; kill it and wait for it first"
            ))),
            _ => Err(Error::FailedPrecondition(format!(
                "cannot {t} a {self} process"
            ))),
        }
    }

    /// Whether a signal can be sent. A finished process answers NotFound, as
    /// containerd expects ("process already finished").
    pub fn check_signal(self) -> Result<()> {
        match self {
            Status::Created | Status::Running | Status::Paused => Ok(()),
            Status::Stopped | Status::Deleted => {
                Err(Error::NotFound("process already finished".into()))
            }
        }
    }

    /// The status containerd's API knows (`Deleted` is never reported: the task is
    /// gone by then).
    pub fn to_api(self) -> api::Status {
        match self {
            Status::Created => api::Status::CREATED,
            Status::Running => api::Status::RUNNING,
            Status::Paused => api::Status::PAUSED,
            Status::Stopped => api::Status::STOPPED,
            Status::Deleted => api::Status::UNKNOWN,
        }
    }
}

/// A process's exit status and time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exited {
    pub status: u32,
    pub at: Timestamp,
}

/// The exit of one process, filled once; `Wait` requests block on it.
#[derive(Default)]
pub struct ExitCell {
    exit: Mutex<Option<Exited>>,
    cond: Condvar,
}

impl ExitCell {
    /// Records the exit and wakes the waiters.
    pub fn set(&self, e: Exited) {
        if let Ok(mut g) = self.exit.lock() {
            g.get_or_insert(e);
        }
        self.cond.notify_all();
    }

    /// The exit, if the process has exited.
    pub fn get(&self) -> Option<Exited> {
        self.exit.lock().ok().and_then(|g| g.clone())
    }

    /// Blocks until the process exits.
    pub fn wait(&self) -> Result<Exited> {
        let mut g = self
            .exit
            .lock()
            .map_err(|_| Error::Internal("lock".into()))?;
        loop {
            if let Some(e) = g.as_ref() {
                return Ok(e.clone());
            }
            g = self
                .cond
                .wait(g)
                .map_err(|_| Error::Internal("lock".into()))?;
        }
    }

    /// Blocks until the process exits or `limit` passes.
    pub fn wait_timeout(&self, limit: Duration) -> Option<Exited> {
        let g = self.exit.lock().ok()?;
        let (g, _) = self
            .cond
            .wait_timeout_while(g, limit, |e| e.is_none())
            .ok()?;
        g.clone()
    }
}

/// containerd's paths for a process's stdio, and whether it has a terminal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stdio {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// One process of a task: the container's init or an exec.
pub struct Process {
    pub kind: Kind,
    /// Host pid (0 until started, for an exec).
    pub pid: u32,
    status: Status,
    pub stdio: Stdio,
    pub exit: Arc<ExitCell>,
    /// The terminal's master, when the process has one (resize-pty).
    pub console: Option<Arc<OwnedFd>>,
}

impl Process {
    /// A process in state `Created`.
    pub fn new(kind: Kind, stdio: Stdio) -> Process {
        Process {
            kind,
            pid: 0,
            status: Status::Created,
            stdio,
            exit: Arc::default(),
            console: None,
        }
    }

    pub fn status(&self) -> Status {
        self.status
    }

    /// Whether `t` is allowed now, without making it.
    pub fn check(&self, t: Transition) -> Result<()> {
        self.status.after(t, self.kind).map(|_| ())
    }

    /// Makes transition `t`.
    pub fn apply(&mut self, t: Transition) -> Result<()> {
        self.status = self.status.after(t, self.kind)?;
        Ok(())
    }
}

/// A container: its init process, and the processes exec'd in it.
pub struct Container {
    pub bundle: String,
    pub init: Process,
    /// Whether the shim mounted the rootfs (and unmounts it on delete).
    pub rootfs_mounted: bool,
    /// Added processes by exec id, with the OCI process spec each runs.
    pub execs: HashMap<String, Exec>,
}

/// A process added with `exec`.
pub struct Exec {
    pub process: Process,
    /// The OCI process JSON containerd sent.
    pub spec: Vec<u8>,
}

/// Which process a pid belongs to, for exits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub id: String,
    /// None for the init process.
    pub exec_id: Option<String>,
}

/// Every container of the shim, and who owns which pid.
#[derive(Default)]
pub struct Tables {
    pub containers: HashMap<String, Container>,
    pub owners: HashMap<i32, Owner>,
    /// Exits that arrived before their pid was registered.
    pub early: HashMap<i32, i32>,
}

impl Tables {
    pub fn container(&mut self, id: &str) -> Result<&mut Container> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(format!("container {id} not found")))
    }

    /// The init process (`exec_id` empty) or an exec of container `id`.
    pub fn process(&mut self, id: &str, exec_id: &str) -> Result<&mut Process> {
        let c = self.container(id)?;
        if exec_id.is_empty() {
            return Ok(&mut c.init);
        }
        c.execs
            .get_mut(exec_id)
            .map(|e| &mut e.process)
            .ok_or_else(|| Error::NotFound(format!("exec {exec_id} not found in {id}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;
    use Transition::*;

    const ALL: [Status; 5] = [Created, Running, Paused, Stopped, Deleted];
    const MOVES: [Transition; 5] = [Start, Pause, Resume, Exit, Delete];

    /// The whole table, both kinds: every allowed move and every refused one's code.
    #[test]
    fn every_transition() {
        use containerd_shim_protos::ttrpc::Code;
        for kind in [Kind::Init, Kind::Exec] {
            for s in ALL {
                for t in MOVES {
                    let want: std::result::Result<Status, Code> = match (s, t) {
                        (Created, Start) => Ok(Running),
                        (Running, Pause) if kind == Kind::Init => Ok(Paused),
                        (Paused, Resume) => Ok(Running),
                        (Created | Running | Paused, Exit) => Ok(Stopped),
                        (Created | Stopped, Delete) => Ok(Deleted),
                        (Deleted, _) => Err(Code::NOT_FOUND),
                        (_, Pause | Resume) if kind == Kind::Exec => Err(Code::INVALID_ARGUMENT),
                        _ => Err(Code::FAILED_PRECONDITION),
                    };
                    let got = s.after(t, kind).map_err(|e| e.code());
                    assert_eq!(got, want, "{kind:?} {s} --{t}-->");
                }
            }
        }
    }

    #[test]
    fn signals_reach_live_processes_only() {
        for s in ALL {
            let r = s.check_signal();
            match s {
                Created | Running | Paused => assert!(r.is_ok(), "{s}"),
                _ => assert_eq!(
                    r.unwrap_err().code(),
                    containerd_shim_protos::ttrpc::Code::NOT_FOUND
                ),
            }
        }
    }

    #[test]
    fn exit_cell_keeps_the_first_exit() {
        let c = ExitCell::default();
        assert_eq!(c.wait_timeout(Duration::from_millis(1)), None);
        c.set(Exited {
            status: 3,
            at: Timestamp::new(),
        });
        c.set(Exited {
            status: 9,
            at: Timestamp::new(),
        });
        assert_eq!(c.wait().unwrap().status, 3);
        assert_eq!(c.get().unwrap().status, 3);
    }
}
