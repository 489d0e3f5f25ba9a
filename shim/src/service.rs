//! The Task service: containerd's requests checked against the task state machine,
//! the work done by a [`Runtime`], and the task events published.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use containerd_shim::event::Event;
use containerd_shim::{api, ExitSignal, TtrpcContext, TtrpcResult};
use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::MessageField;

use crate::error::{internal, Error, Result};
use crate::runtime::{Runtime, Target};
use crate::state::{
    Container, Exec, Exited, Kind, Owner, Process, Status, Stdio, Tables, Transition,
};
use crate::{io, metrics};

/// Where task events go (containerd's publisher; a recorder in tests).
pub trait Publish: Send + Sync {
    fn publish(&self, ev: Box<dyn Event>);
}

/// How long `Delete` waits for a created container's process to die.
const DELETE_WAIT: Duration = Duration::from_secs(5);

/// The Task service over runtime `R`.
pub struct Service<R> {
    runtime: Arc<R>,
    tables: Arc<Mutex<Tables>>,
    events: Arc<dyn Publish>,
    /// Held from recording an exit until its event is out, so a `Delete` that saw
    /// the exit publishes its own event after it.
    exit_order: Arc<Mutex<()>>,
    exit: Arc<ExitSignal>,
}

impl<R> Clone for Service<R> {
    fn clone(&self) -> Self {
        Service {
            runtime: self.runtime.clone(),
            tables: self.tables.clone(),
            events: self.events.clone(),
            exit_order: self.exit_order.clone(),
            exit: self.exit.clone(),
        }
    }
}

pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut t = Timestamp::new();
    t.seconds = d.as_secs() as i64;
    t.nanos = d.subsec_nanos() as i32;
    t
}

/// The exit status and time a response reports (0 and none while running).
fn exit_fields(p: &Process) -> (u32, MessageField<Timestamp>) {
    p.exit
        .get()
        .map(|e| (e.status, MessageField::some(e.at)))
        .unwrap_or((0, MessageField::none()))
}

impl<R: Runtime> Service<R> {
    /// A service with no containers; `exit` is signalled when containerd shuts it down.
    pub fn new(runtime: Arc<R>, events: Arc<dyn Publish>, exit: Arc<ExitSignal>) -> Self {
        Service {
            runtime,
            tables: Arc::default(),
            events,
            exit_order: Arc::default(),
            exit,
        }
    }

    fn tables(&self) -> Result<MutexGuard<'_, Tables>> {
        self.tables.lock().map_err(|_| internal("lock"))
    }

    fn publish(&self, ev: impl Event + 'static) {
        self.events.publish(Box::new(ev));
    }

    /// The container's bundle after checking that `t` is allowed for the process.
    fn check(&self, id: &str, exec_id: &str, t: Transition) -> Result<String> {
        let mut tables = self.tables()?;
        tables.process(id, exec_id)?.check(t)?;
        Ok(tables.container(id)?.bundle.clone())
    }

    /// Records that `pid` belongs to `owner`; returns its status if it already exited.
    fn register(tables: &mut Tables, pid: u32, owner: Owner) -> Option<i32> {
        let pid = pid as i32;
        match tables.early.remove(&pid) {
            Some(code) => Some(code),
            None => {
                tables.owners.insert(pid, owner);
                None
            }
        }
    }

    /// A process of the runtime's exited with wait status `code` (the reaper calls
    /// this for every exit that is not a CLI command's).
    pub fn exited(&self, pid: i32, code: i32) {
        let owner = {
            let Ok(mut tables) = self.tables.lock() else {
                return;
            };
            match tables.owners.remove(&pid) {
                Some(o) => o,
                None => {
                    tables.early.insert(pid, code);
                    return;
                }
            }
        };
        self.finish(&owner, pid, code);
    }

    /// Marks `owner`'s process stopped with `code` and tells containerd.
    fn finish(&self, owner: &Owner, pid: i32, code: i32) {
        let exit = Exited {
            status: code as u32,
            at: now(),
        };
        let _order = self.exit_order.lock();
        {
            let Ok(mut tables) = self.tables.lock() else {
                return;
            };
            let exec_id = owner.exec_id.as_deref().unwrap_or("");
            let Ok(p) = tables.process(&owner.id, exec_id) else {
                return;
            };
            // A second exit of one process changes nothing.
            let _ = p.apply(Transition::Exit);
            p.exit.set(exit.clone());
        }
        self.publish(TaskExit {
            container_id: owner.id.clone(),
            id: owner.exec_id.clone().unwrap_or_else(|| owner.id.clone()),
            pid: pid as u32,
            exit_status: exit.status,
            exited_at: MessageField::some(exit.at),
            ..Default::default()
        });
    }

    pub fn create(&self, req: &api::CreateTaskRequest) -> Result<api::CreateTaskResponse> {
        let id = req.id.as_str();
        let bundle = req.bundle.as_str();
        if self.tables()?.containers.contains_key(id) {
            return Err(Error::AlreadyExists(format!(
                "container {id} already exists"
            )));
        }
        let rootfs = format!("{bundle}/rootfs");
        let mut mounted = false;
        for m in &req.rootfs {
            let _ = std::fs::create_dir_all(&rootfs);
            containerd_shim::mount::mount_rootfs(
                Some(m.type_.as_str()).filter(|t| !t.is_empty()),
                Some(m.source.as_str()).filter(|s| !s.is_empty()),
                &m.options,
                &rootfs,
            )
            .map_err(|e| internal(format!("mount rootfs: {e}")))?;
            mounted = true;
        }
        let stdio = Stdio {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let spawned = match self.runtime.create(Target { id, bundle }, &stdio) {
            Ok(s) => s,
            Err(e) => {
                if mounted {
                    unmount(&rootfs);
                }
                return Err(e);
            }
        };
        let pid = spawned.pid;
        let mut init = Process::new(Kind::Init, stdio);
        init.pid = pid;
        init.console = spawned.console;
        let early = {
            let mut tables = self.tables()?;
            tables.containers.insert(
                id.to_string(),
                Container {
                    bundle: bundle.to_string(),
                    init,
                    rootfs_mounted: mounted,
                    execs: Default::default(),
                },
            );
            let owner = Owner {
                id: id.to_string(),
                exec_id: None,
            };
            Self::register(&mut tables, pid, owner.clone()).map(|code| (owner, code))
        };
        self.publish(TaskCreate {
            container_id: id.to_string(),
            bundle: bundle.to_string(),
            pid,
            ..Default::default()
        });
        if let Some((owner, code)) = early {
            self.finish(&owner, pid as i32, code);
        }
        Ok(api::CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    pub fn start(&self, req: &api::StartRequest) -> Result<api::StartResponse> {
        if !req.exec_id.is_empty() {
            return self.start_exec(&req.id, &req.exec_id);
        }
        let id = req.id.as_str();
        let bundle = self.check(id, "", Transition::Start)?;
        self.runtime.start(Target {
            id,
            bundle: &bundle,
        })?;
        let pid = {
            let mut tables = self.tables()?;
            let p = tables.process(id, "")?;
            // Unless it already exited (or a racing start won).
            let _ = p.apply(Transition::Start);
            p.pid
        };
        self.publish(TaskStart {
            container_id: id.to_string(),
            pid,
            ..Default::default()
        });
        // containerd's TaskOOM for each OOM kill in the container (the CRI plugin
        // turns it into the reason OOMKilled). A container that cannot be watched
        // (no cgroup of its own) still runs.
        let events = self.events.clone();
        let cid = id.to_string();
        let watched = self.runtime.watch_oom(
            Target {
                id,
                bundle: &bundle,
            },
            Box::new(move || {
                events.publish(Box::new(TaskOOM {
                    container_id: cid.clone(),
                    ..Default::default()
                }))
            }),
        );
        if let Err(e) = watched {
            log::warn!("{id}: no OOM events: {e}");
        }
        Ok(api::StartResponse {
            pid,
            ..Default::default()
        })
    }

    fn start_exec(&self, id: &str, exec_id: &str) -> Result<api::StartResponse> {
        let (bundle, spec, stdio) = {
            let mut tables = self.tables()?;
            let c = tables.container(id)?;
            let e = c
                .execs
                .get_mut(exec_id)
                .ok_or_else(|| Error::NotFound(format!("exec {exec_id} not found in {id}")))?;
            e.process.check(Transition::Start)?;
            (c.bundle.clone(), e.spec.clone(), e.process.stdio.clone())
        };
        let t = Target {
            id,
            bundle: &bundle,
        };
        let spawned = self.runtime.exec(t, exec_id, &spec, &stdio)?;
        let pid = spawned.pid;
        let owner = Owner {
            id: id.to_string(),
            exec_id: Some(exec_id.to_string()),
        };
        let early = {
            let mut tables = self.tables()?;
            let p = tables.process(id, exec_id)?;
            p.apply(Transition::Start)?;
            p.pid = pid;
            p.console = spawned.console;
            Self::register(&mut tables, pid, owner.clone())
        };
        self.publish(TaskExecStarted {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
            pid,
            ..Default::default()
        });
        if let Some(code) = early {
            self.finish(&owner, pid as i32, code);
        }
        Ok(api::StartResponse {
            pid,
            ..Default::default()
        })
    }

    pub fn state(&self, req: &api::StateRequest) -> Result<api::StateResponse> {
        let mut tables = self.tables()?;
        let bundle = tables.container(&req.id)?.bundle.clone();
        let p = tables.process(&req.id, &req.exec_id)?;
        let (exit_status, exited_at) = exit_fields(p);
        Ok(api::StateResponse {
            id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            bundle,
            pid: p.pid,
            status: p.status().to_api().into(),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status,
            exited_at,
            ..Default::default()
        })
    }

    pub fn kill(&self, req: &api::KillRequest) -> Result<()> {
        let (bundle, pid, status) = {
            let mut tables = self.tables()?;
            let bundle = tables.container(&req.id)?.bundle.clone();
            let p = tables.process(&req.id, &req.exec_id)?;
            (bundle, p.pid, p.status())
        };
        status.check_signal()?;
        let t = Target {
            id: &req.id,
            bundle: &bundle,
        };
        if req.exec_id.is_empty() {
            return self.runtime.kill(t, req.signal, req.all);
        }
        if status == Status::Created {
            return Err(Error::FailedPrecondition(format!(
                "exec {} was not started",
                req.exec_id
            )));
        }
        self.runtime.kill_exec(t, &req.exec_id, pid, req.signal)
    }

    pub fn wait(&self, req: &api::WaitRequest) -> Result<api::WaitResponse> {
        let exit = self.tables()?.process(&req.id, &req.exec_id)?.exit.clone();
        let e = exit.wait()?;
        Ok(api::WaitResponse {
            exit_status: e.status,
            exited_at: MessageField::some(e.at),
            ..Default::default()
        })
    }

    pub fn delete(&self, req: &api::DeleteRequest) -> Result<api::DeleteResponse> {
        if !req.exec_id.is_empty() {
            return self.delete_exec(&req.id, &req.exec_id);
        }
        let id = req.id.as_str();
        let bundle = self.check(id, "", Transition::Delete)?;
        let t = Target {
            id,
            bundle: &bundle,
        };
        self.runtime.delete(t)?;
        let (pid, exit, mounted) = {
            let mut tables = self.tables()?;
            let c = tables.container(id)?;
            (c.init.pid, c.init.exit.clone(), c.rootfs_mounted)
        };
        // A created container's process is killed by the delete; its exit arrives
        // through the reaper.
        let e = exit.wait_timeout(DELETE_WAIT).unwrap_or(Exited {
            status: 128 + libc::SIGKILL as u32,
            at: now(),
        });
        if mounted {
            unmount(&format!("{bundle}/rootfs"));
        }
        let execs: Vec<String> = {
            let mut tables = self.tables()?;
            let mut c = tables
                .containers
                .remove(id)
                .ok_or_else(|| Error::NotFound(format!("container {id} not found")))?;
            // Created, or stopped by now: either way it is gone.
            let _ = c.init.apply(Transition::Exit);
            let _ = c.init.apply(Transition::Delete);
            tables.owners.retain(|_, o| o.id != id);
            c.execs.into_keys().collect()
        };
        for exec_id in execs {
            self.runtime.delete_exec(t, &exec_id);
        }
        let _order = self.exit_order.lock();
        self.publish(TaskDelete {
            container_id: id.to_string(),
            id: id.to_string(),
            pid,
            exit_status: e.status,
            exited_at: MessageField::some(e.at.clone()),
            ..Default::default()
        });
        Ok(api::DeleteResponse {
            pid,
            exit_status: e.status,
            exited_at: MessageField::some(e.at),
            ..Default::default()
        })
    }

    fn delete_exec(&self, id: &str, exec_id: &str) -> Result<api::DeleteResponse> {
        let (bundle, mut exec) = {
            let mut tables = self.tables()?;
            let c = tables.container(id)?;
            let e = c
                .execs
                .get(exec_id)
                .ok_or_else(|| Error::NotFound(format!("exec {exec_id} not found in {id}")))?;
            e.process.check(Transition::Delete)?;
            let bundle = c.bundle.clone();
            let exec = c.execs.remove(exec_id);
            (bundle, exec)
        };
        let Some(exec) = exec.as_mut() else {
            return Err(Error::NotFound(format!("exec {exec_id} not found in {id}")));
        };
        exec.process.apply(Transition::Delete)?;
        self.runtime.delete_exec(
            Target {
                id,
                bundle: &bundle,
            },
            exec_id,
        );
        let e = exec.process.exit.get().unwrap_or(Exited {
            status: 0,
            at: now(),
        });
        Ok(api::DeleteResponse {
            pid: exec.process.pid,
            exit_status: e.status,
            exited_at: MessageField::some(e.at),
            ..Default::default()
        })
    }

    pub fn exec(&self, req: &api::ExecProcessRequest) -> Result<()> {
        let spec = req
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .ok_or_else(|| Error::InvalidArgument("exec: no process spec".into()))?;
        if req.exec_id.is_empty() || req.exec_id.contains('/') {
            return Err(Error::InvalidArgument(format!(
                "exec: bad exec id {:?}",
                req.exec_id
            )));
        }
        {
            let mut tables = self.tables()?;
            let c = tables.container(&req.id)?;
            if c.init.status() != Status::Running {
                return Err(Error::FailedPrecondition(format!(
                    "container {} is {}, not running",
                    req.id,
                    c.init.status()
                )));
            }
            if c.execs.contains_key(&req.exec_id) {
                return Err(Error::AlreadyExists(format!(
                    "exec {} already exists",
                    req.exec_id
                )));
            }
            let stdio = Stdio {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
            };
            c.execs.insert(
                req.exec_id.clone(),
                Exec {
                    process: Process::new(Kind::Exec, stdio),
                    spec,
                },
            );
        }
        self.publish(TaskExecAdded {
            container_id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        });
        Ok(())
    }

    pub fn pids(&self, req: &api::PidsRequest) -> Result<api::PidsResponse> {
        let bundle = self.tables()?.container(&req.id)?.bundle.clone();
        let pids = self.runtime.pids(Target {
            id: &req.id,
            bundle: &bundle,
        })?;
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

    /// Pause (`pause`) or resume the container.
    pub fn freeze(&self, id: &str, pause: bool) -> Result<()> {
        let t = if pause {
            Transition::Pause
        } else {
            Transition::Resume
        };
        let bundle = self.check(id, "", t)?;
        let target = Target {
            id,
            bundle: &bundle,
        };
        if pause {
            self.runtime.pause(target)?;
        } else {
            self.runtime.resume(target)?;
        }
        // Unless it exited meanwhile.
        let _ = self.tables()?.process(id, "")?.apply(t);
        if pause {
            self.publish(TaskPaused {
                container_id: id.to_string(),
                ..Default::default()
            });
        } else {
            self.publish(TaskResumed {
                container_id: id.to_string(),
                ..Default::default()
            });
        }
        Ok(())
    }

    pub fn resize_pty(&self, req: &api::ResizePtyRequest) -> Result<()> {
        let console = self
            .tables()?
            .process(&req.id, &req.exec_id)?
            .console
            .clone();
        let Some(m) = console else {
            return Err(Error::FailedPrecondition(
                "the process has no terminal".into(),
            ));
        };
        io::resize(&m, req.width, req.height)
    }

    pub fn update(&self, req: &api::UpdateTaskRequest) -> Result<()> {
        let bundle = self.tables()?.container(&req.id)?.bundle.clone();
        // containerd sends the OCI LinuxResources as JSON in the Any.
        let value = req
            .resources
            .as_ref()
            .map(|a| a.value.clone())
            .ok_or_else(|| Error::InvalidArgument("update: no resources".into()))?;
        self.runtime.update(
            Target {
                id: &req.id,
                bundle: &bundle,
            },
            &value,
        )
    }

    pub fn stats(&self, req: &api::StatsRequest) -> Result<api::StatsResponse> {
        let bundle = self.tables()?.container(&req.id)?.bundle.clone();
        let stats = self.runtime.stats(Target {
            id: &req.id,
            bundle: &bundle,
        })?;
        Ok(api::StatsResponse {
            stats: MessageField::some(metrics::to_any(&stats)?),
            ..Default::default()
        })
    }

    /// The init's pid, 0 when there is no such container.
    pub fn init_pid(&self, id: &str) -> u32 {
        self.tables
            .lock()
            .ok()
            .and_then(|mut t| t.container(id).ok().map(|c| c.init.pid))
            .unwrap_or(0)
    }

    /// Whether any container is left.
    pub fn is_empty(&self) -> bool {
        self.tables
            .lock()
            .map(|t| t.containers.is_empty())
            .unwrap_or(true)
    }
}

fn unmount(path: &str) {
    let _ = containerd_shim::mount::umount_recursive(Some(path), libc::MNT_DETACH);
}

impl<R: Runtime> containerd_shim::Task for Service<R> {
    fn connect(
        &self,
        _: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: self.init_pid(&req.id),
            version: "rvisor".into(),
            ..Default::default()
        })
    }

    fn create(
        &self,
        _: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        Ok(Service::create(self, &req)?)
    }

    fn start(&self, _: &TtrpcContext, req: api::StartRequest) -> TtrpcResult<api::StartResponse> {
        Ok(Service::start(self, &req)?)
    }

    fn state(&self, _: &TtrpcContext, req: api::StateRequest) -> TtrpcResult<api::StateResponse> {
        Ok(Service::state(self, &req)?)
    }

    fn kill(&self, _: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        Service::kill(self, &req)?;
        Ok(api::Empty::new())
    }

    fn wait(&self, _: &TtrpcContext, req: api::WaitRequest) -> TtrpcResult<api::WaitResponse> {
        Ok(Service::wait(self, &req)?)
    }

    fn delete(
        &self,
        _: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        Ok(Service::delete(self, &req)?)
    }

    fn pids(&self, _: &TtrpcContext, req: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        Ok(Service::pids(self, &req)?)
    }

    fn pause(&self, _: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        self.freeze(&req.id, true)?;
        Ok(api::Empty::new())
    }

    fn resume(&self, _: &TtrpcContext, req: api::ResumeRequest) -> TtrpcResult<api::Empty> {
        self.freeze(&req.id, false)?;
        Ok(api::Empty::new())
    }

    fn exec(&self, _: &TtrpcContext, req: api::ExecProcessRequest) -> TtrpcResult<api::Empty> {
        Service::exec(self, &req)?;
        Ok(api::Empty::new())
    }

    fn resize_pty(&self, _: &TtrpcContext, req: api::ResizePtyRequest) -> TtrpcResult<api::Empty> {
        Service::resize_pty(self, &req)?;
        Ok(api::Empty::new())
    }

    fn close_io(&self, _: &TtrpcContext, req: api::CloseIORequest) -> TtrpcResult<api::Empty> {
        // The shim keeps no copy of a plain container's stdin (the sandbox holds the
        // FIFO itself), so there is nothing of ours to close; a terminal's input is
        // copied until its FIFO reports EOF.
        self.tables()?.container(&req.id)?;
        Ok(api::Empty::new())
    }

    fn update(&self, _: &TtrpcContext, req: api::UpdateTaskRequest) -> TtrpcResult<api::Empty> {
        Service::update(self, &req)?;
        Ok(api::Empty::new())
    }

    fn stats(&self, _: &TtrpcContext, req: api::StatsRequest) -> TtrpcResult<api::StatsResponse> {
        Ok(Service::stats(self, &req)?)
    }

    fn shutdown(&self, _: &TtrpcContext, _req: api::ShutdownRequest) -> TtrpcResult<api::Empty> {
        if self.is_empty() {
            self.exit.signal();
        }
        Ok(api::Empty::new())
    }
}
