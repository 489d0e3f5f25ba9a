//! `containerd-shim-rvisor-v1`: the containerd shim v2 for rvisor (runtime_type
//! `io.containerd.rvisor.v1`), built on the `containerd-shim` crate.
//!
//! - [`service`]: the Task service, over a [`runtime::Runtime`];
//! - [`state`]: the task state machine (init and exec processes);
//! - [`rvisor`]: the runtime that drives the `rvisor` CLI;
//! - [`reaper`]: exits, for CLI commands and for containers;
//! - [`options`]: the TOML options; [`error`]: errors as ttrpc codes;
//! - [`io`]: FIFOs and the console; [`metrics`]: stats as containerd's metrics.

mod error;
#[cfg(test)]
mod fake;
mod io;
mod metrics;
mod options;
mod reaper;
mod runtime;
mod rvisor;
mod service;
mod state;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

use containerd_shim as shim;
use containerd_shim::event::Event;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, DeleteResponse, ExitSignal, Flags};
use containerd_shim_protos::protobuf::MessageField;

use crate::options::Options;
use crate::reaper::Reaper;
use crate::runtime::{Runtime, Target};
use crate::service::{Publish, Service};

/// The CRI annotation naming the pod sandbox a container belongs to.
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// The shim process: makes the Task service and waits for its end.
struct Main {
    runtime: Arc<rvisor::Cli>,
    reaper: Arc<Reaper>,
    namespace: String,
    exit: Arc<ExitSignal>,
}

/// Task events to containerd.
struct Remote {
    publisher: RemotePublisher,
    namespace: String,
}

impl Publish for Remote {
    fn publish(&self, ev: Box<dyn Event>) {
        let topic = ev.topic();
        if let Err(e) =
            self.publisher
                .publish(shim::Context::default(), &topic, &self.namespace, ev)
        {
            log::warn!("publish {topic}: {e}");
        }
    }
}

impl shim::Shim for Main {
    type T = Service<rvisor::Cli>;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        let reaper = Arc::new(Reaper::default());
        Main {
            runtime: Arc::new(rvisor::Cli::new(Options::load(), reaper.clone())),
            reaper,
            namespace: args.namespace.clone(),
            exit: Arc::new(ExitSignal::default()),
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
        // The `containerd-shim` crate registers its SIGCHLD and SIGPIPE handlers before
        // `start` and closes their wake-up socket when `start` returns. A SIGCHLD that
        // arrives after that (the child we spawned finding the pod's shim already running
        // and exiting at once) makes the handler's send fail with EPIPE, which raises
        // SIGPIPE, whose handler sends again: the start process spins for ever and
        // containerd waits on it (seen as a hung CRI test). Nothing of this process needs
        // either signal any more, so keep both pending until it exits.
        let late = [nix::sys::signal::SIGCHLD, nix::sys::signal::SIGPIPE];
        nix::sys::signal::SigSet::from_iter(late)
            .thread_block()
            .map_err(|e| shim::Error::Other(format!("block SIGCHLD and SIGPIPE: {e}")))?;
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
        self.runtime.cleanup(Target {
            id: &id,
            bundle: &bundle,
        });
        let _ = shim::mount::umount_recursive(Some(&format!("{bundle}/rootfs")), libc::MNT_DETACH);
        let mut r = DeleteResponse::new();
        r.exit_status = 128 + libc::SIGKILL as u32;
        r.exited_at = MessageField::some(service::now());
        Ok(r)
    }

    fn wait(&mut self) {
        self.exit.wait();
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> Self::T {
        let events = Arc::new(Remote {
            publisher,
            namespace: self.namespace.clone(),
        });
        let service = Service::new(self.runtime.clone(), events, self.exit.clone());
        match Reaper::subscribe() {
            Ok(sub) => {
                let reaper = self.reaper.clone();
                let s = service.clone();
                std::thread::spawn(move || reaper.dispatch(sub, |pid, code| s.exited(pid, code)));
            }
            Err(e) => log::error!("{e}"),
        }
        service
    }
}

fn main() {
    shim::run::<Main>("io.containerd.rvisor.v1", None)
}
