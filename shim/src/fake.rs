//! A [`Runtime`] that runs nothing, for unit tests of the Task service: processes
//! are numbers, a signal ends one (exit status 128+N, reported asynchronously the
//! way the reaper does), and any call can be made to fail once.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};

use containerd_shim::event::Event;
use containerd_shim::ExitSignal;
use containerd_shim_protos::events::task::TaskOOM;
use containerd_shim_protos::protobuf::{Message, MessageDyn};
use rvisor_api::Stats;

use crate::error::{Error, Result};
use crate::runtime::{OnOom, Runtime, Spawned, Target};
use crate::service::{Publish, Service};
use crate::state::Stdio;

pub struct Fake {
    next_pid: AtomicU32,
    /// Live pids by container id.
    live: Mutex<HashMap<String, BTreeSet<u32>>>,
    /// The init pid of each container.
    inits: Mutex<HashMap<String, u32>>,
    exits: Mutex<Sender<(i32, i32)>>,
    /// Failures to return from the next call of that name.
    fail: Mutex<HashMap<&'static str, Error>>,
    /// The OOM watches of started containers, by id.
    watches: Mutex<HashMap<String, OnOom>>,
    /// Calls made, as "name id".
    pub calls: Mutex<Vec<String>>,
    /// Whether `create`'s process exits at once with this status (before the
    /// service can register it).
    pub exit_at_create: Mutex<Option<i32>>,
}

impl Fake {
    fn new(exits: Sender<(i32, i32)>) -> Fake {
        Fake {
            next_pid: AtomicU32::new(1000),
            live: Mutex::default(),
            inits: Mutex::default(),
            exits: Mutex::new(exits),
            fail: Mutex::default(),
            watches: Mutex::default(),
            calls: Mutex::default(),
            exit_at_create: Mutex::default(),
        }
    }

    /// Makes the next `call` fail with `e`.
    pub fn fail_next(&self, call: &'static str, e: Error) {
        self.fail.lock().unwrap().insert(call, e);
    }

    fn call(&self, name: &'static str, id: &str) -> Result<()> {
        self.calls.lock().unwrap().push(format!("{name} {id}"));
        match self.fail.lock().unwrap().remove(name) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn spawn(&self, id: &str) -> u32 {
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        self.live
            .lock()
            .unwrap()
            .entry(id.to_string())
            .or_default()
            .insert(pid);
        pid
    }

    /// Ends `pid` with `status`, reported as the reaper would.
    fn end(&self, id: &str, pid: u32, status: i32) {
        let was_live = self
            .live
            .lock()
            .unwrap()
            .get_mut(id)
            .is_some_and(|s| s.remove(&pid));
        if was_live {
            let _ = self.exits.lock().unwrap().send((pid as i32, status));
        }
    }

    /// An OOM kill in container `id`: its watch is told, as `rvisor events` would.
    /// Whether a watch was there.
    pub fn oom(&self, id: &str) -> bool {
        match self.watches.lock().unwrap().get(id) {
            Some(w) => {
                w();
                true
            }
            None => false,
        }
    }

    fn init_of(&self, id: &str) -> Result<u32> {
        self.inits
            .lock()
            .unwrap()
            .get(id)
            .copied()
            .ok_or_else(|| Error::NotFound(format!("container {id:?} does not exist")))
    }
}

impl Runtime for Fake {
    fn create(&self, t: Target, _stdio: &Stdio) -> Result<Spawned> {
        self.call("create", t.id)?;
        let pid = self.spawn(t.id);
        self.inits.lock().unwrap().insert(t.id.to_string(), pid);
        if let Some(code) = *self.exit_at_create.lock().unwrap() {
            // Before `create` returns, as a process dying at once would.
            self.live
                .lock()
                .unwrap()
                .get_mut(t.id)
                .unwrap()
                .remove(&pid);
            let _ = self.exits.lock().unwrap().send((pid as i32, code));
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(Spawned { pid, console: None })
    }

    fn start(&self, t: Target) -> Result<()> {
        self.call("start", t.id)
    }

    fn kill(&self, t: Target, signal: u32, all: bool) -> Result<()> {
        self.call("kill", t.id)?;
        let init = self.init_of(t.id)?;
        let pids: Vec<u32> = if all {
            self.live.lock().unwrap()[t.id].iter().copied().collect()
        } else {
            vec![init]
        };
        for p in pids {
            self.end(t.id, p, 128 + signal as i32);
        }
        Ok(())
    }

    fn delete(&self, t: Target) -> Result<()> {
        self.call("delete", t.id)?;
        let init = self.init_of(t.id)?;
        self.end(t.id, init, 128 + libc::SIGKILL);
        self.inits.lock().unwrap().remove(t.id);
        // The watch ends with the container.
        self.watches.lock().unwrap().remove(t.id);
        Ok(())
    }

    fn exec(&self, t: Target, _exec_id: &str, spec: &[u8], _stdio: &Stdio) -> Result<Spawned> {
        self.call("exec", t.id)?;
        if spec.is_empty() {
            return Err(Error::InvalidArgument("empty process spec".into()));
        }
        Ok(Spawned {
            pid: self.spawn(t.id),
            console: None,
        })
    }

    fn kill_exec(&self, t: Target, _exec_id: &str, pid: u32, signal: u32) -> Result<()> {
        self.call("kill_exec", t.id)?;
        self.end(t.id, pid, 128 + signal as i32);
        Ok(())
    }

    fn delete_exec(&self, t: Target, _exec_id: &str) {
        let _ = self.call("delete_exec", t.id);
    }

    fn pids(&self, t: Target) -> Result<Vec<u32>> {
        self.call("pids", t.id)?;
        Ok(self.live.lock().unwrap()[t.id].iter().copied().collect())
    }

    fn stats(&self, t: Target) -> Result<Stats> {
        self.call("stats", t.id)?;
        let mut s = Stats::default();
        s.pids.current = self.live.lock().unwrap()[t.id].len() as u64;
        s.cpu.usage.total = 42;
        Ok(s)
    }

    fn update(&self, t: Target, resources: &[u8]) -> Result<()> {
        self.call("update", t.id)?;
        if resources.is_empty() {
            return Err(Error::InvalidArgument("empty resources".into()));
        }
        Ok(())
    }

    fn watch_oom(&self, t: Target, oom: OnOom) -> Result<()> {
        self.call("watch_oom", t.id)?;
        self.watches.lock().unwrap().insert(t.id.to_string(), oom);
        Ok(())
    }

    fn pause(&self, t: Target) -> Result<()> {
        self.call("pause", t.id)
    }

    fn resume(&self, t: Target) -> Result<()> {
        self.call("resume", t.id)
    }

    fn cleanup(&self, t: Target) {
        let _ = self.call("cleanup", t.id);
    }
}

/// The topics of the events published, in order, and the containers TaskOOM events
/// named.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<String>>, pub Mutex<Vec<String>>);

impl Publish for Recorder {
    fn publish(&self, ev: Box<dyn Event>) {
        let topic = ev.topic();
        if topic == "/tasks/oom" {
            let m: &dyn MessageDyn = &*ev;
            let bytes = m.write_to_bytes_dyn().unwrap();
            let oom = TaskOOM::parse_from_bytes(&bytes).unwrap();
            self.1.lock().unwrap().push(oom.container_id);
        }
        self.0.lock().unwrap().push(topic);
    }
}

impl Recorder {
    /// The topics so far, emptied, once there are at least `n` (a process's exit
    /// is published just after its waiters wake, as in containerd's own shim).
    pub fn take(&self, n: usize) -> Vec<String> {
        for _ in 0..500 {
            if self.0.lock().unwrap().len() >= n {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A service over a fake runtime, with a thread handing the fake's exits to the
/// service as the reaper does.
pub fn service() -> (Service<Fake>, Arc<Fake>, Arc<Recorder>) {
    let (tx, rx) = channel::<(i32, i32)>();
    let fake = Arc::new(Fake::new(tx));
    let rec = Arc::new(Recorder::default());
    let svc = Service::new(fake.clone(), rec.clone(), Arc::new(ExitSignal::default()));
    let s = svc.clone();
    std::thread::spawn(move || {
        for (pid, code) in rx {
            s.exited(pid, code);
        }
    });
    (svc, fake, rec)
}
