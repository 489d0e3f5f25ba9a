//! The seam between the Task service and what runs containers: the service keeps
//! the task state and talks to containerd; a [`Runtime`] does the work. The rvisor
//! CLI driver ([`crate::rvisor::Cli`]) is the real one; unit tests use a fake.
//!
//! A runtime reports process exits separately, as (pid, wait status) pairs handed
//! to [`crate::service::Service::exited`]: the shim's reaper does that for the CLI.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use rvisor_api::Stats;

use crate::error::Result;
use crate::state::Stdio;

/// The container a request is about.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub id: &'a str,
    /// containerd's bundle directory for the container.
    pub bundle: &'a str,
}

/// A process a runtime started.
pub struct Spawned {
    /// The host pid whose exit is the process's.
    pub pid: u32,
    /// The terminal master, when the process has a terminal.
    pub console: Option<Arc<OwnedFd>>,
}

/// Called once for each process the sandbox OOM-kills in a container.
pub type OnOom = Box<dyn Fn() + Send + 'static>;

/// What the Task service needs from a container runtime.
pub trait Runtime: Send + Sync + 'static {
    /// Makes the container (not started) with the given stdio.
    fn create(&self, t: Target, stdio: &Stdio) -> Result<Spawned>;
    /// Starts a created container.
    fn start(&self, t: Target) -> Result<()>;
    /// Sends signal `signal` to the container's init (every process with `all`).
    fn kill(&self, t: Target, signal: u32, all: bool) -> Result<()>;
    /// Removes the container, killing it if it still runs.
    fn delete(&self, t: Target) -> Result<()>;
    /// Starts process `spec` (OCI process JSON) in the container.
    fn exec(&self, t: Target, exec_id: &str, spec: &[u8], stdio: &Stdio) -> Result<Spawned>;
    /// Sends `signal` to a started exec whose pid is `pid`.
    fn kill_exec(&self, t: Target, exec_id: &str, pid: u32, signal: u32) -> Result<()>;
    /// Forgets what `exec` left behind for `exec_id`.
    fn delete_exec(&self, t: Target, exec_id: &str);
    /// The pids of the container's processes.
    fn pids(&self, t: Target) -> Result<Vec<u32>>;
    /// The container's resource usage.
    fn stats(&self, t: Target) -> Result<Stats>;
    /// New limits: OCI `LinuxResources` as JSON.
    fn update(&self, t: Target, resources: &[u8]) -> Result<()>;
    /// Watches a started container for OOM kills until it stops, calling `oom` for
    /// each; returns once the watch is under way.
    fn watch_oom(&self, t: Target, oom: OnOom) -> Result<()>;
    fn pause(&self, t: Target) -> Result<()>;
    fn resume(&self, t: Target) -> Result<()>;
    /// Removes whatever is left of a container whose shim died; errors are ignored.
    fn cleanup(&self, t: Target);
}
