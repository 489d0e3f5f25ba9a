//! Exits. The shim is a subreaper and the `containerd-shim` crate's SIGCHLD thread
//! reaps every child, reporting each exit through its monitor. One dispatcher thread
//! receives them all: exits of CLI children the shim is waiting for go to their
//! waiter; every other exit (container supervisors, waiting `rvisor exec`s) goes to
//! the service.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;

use containerd_shim::monitor::{monitor_subscribe, ExitEvent, Subject, Subscription, Topic};

use crate::error::{internal, Result};

/// The CLI children being waited for.
#[derive(Default)]
pub struct Reaper {
    waiting: Mutex<HashMap<i32, Sender<i32>>>,
}

impl Reaper {
    /// Spawns `cmd`; its exit status arrives on the receiver. Registered under the
    /// lock the dispatcher takes, so even a child that exits at once is found.
    pub fn spawn(&self, cmd: &mut Command) -> Result<(Child, Receiver<i32>)> {
        let (tx, rx) = channel();
        let mut w = self.waiting.lock().map_err(|_| internal("lock"))?;
        let child = cmd
            .spawn()
            .map_err(|e| internal(format!("run {}: {e}", cmd.get_program().to_string_lossy())))?;
        w.insert(child.id() as i32, tx);
        Ok((child, rx))
    }

    /// Subscribes to the monitor; call before the first child is spawned.
    pub fn subscribe() -> Result<Subscription> {
        monitor_subscribe(Topic::Pid).map_err(|e| internal(format!("monitor: {e}")))
    }

    /// Hands out exits until the monitor goes away: waited-for children to their
    /// waiter, the rest to `other(pid, status)`.
    pub fn dispatch(&self, sub: Subscription, other: impl Fn(i32, i32)) {
        while let Ok(ExitEvent { subject, exit_code }) = sub.rx.recv() {
            let Subject::Pid(pid) = subject else { continue };
            let waiter = match self.waiting.lock() {
                Ok(mut w) => w.remove(&pid),
                Err(_) => return,
            };
            match waiter {
                Some(tx) => {
                    let _ = tx.send(exit_code);
                }
                None => other(pid, exit_code),
            }
        }
    }
}
