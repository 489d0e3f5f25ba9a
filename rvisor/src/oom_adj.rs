//! The host OOM killer's view of a sandbox, as runsc sets it: a container's gofer
//! gets that container's `process.oomScoreAdj`; the sandbox's other host processes
//! (the boot waiter, the sentry and the stubs holding the application's memory,
//! which inherit it from the sentry) get the lowest of its containers', leaving out
//! a pod's sandbox (pause) container once the pod has others: its very low value
//! (-998 from containerd) protects infrastructure, not the workload. Re-applied when
//! a container joins or leaves a pod.

use anyhow::Result;

use crate::cli::GlobalOpts;
use crate::state;
use crate::state::Status;

/// `process.oomScoreAdj` of the bundle at `bundle`, if it sets one.
fn spec_adj(bundle: &std::path::Path) -> Option<i32> {
    let text = std::fs::read_to_string(bundle.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["process"]["oomScoreAdj"].as_i64().map(|n| n as i32)
}

/// The value for the sandbox's own processes: the lowest of `added` (the live
/// containers added to a pod), else the sandbox container's `own`.
pub fn lowest(own: Option<i32>, added: &[Option<i32>]) -> Option<i32> {
    let set: Vec<i32> = added.iter().flatten().copied().collect();
    if added.is_empty() {
        own
    } else {
        set.into_iter().min()
    }
}

/// Sets a container's gofer's `oom_score_adj` to the container's.
pub fn apply_to_gofer(gofer: u32, adj: Option<i32>) {
    if let Some(a) = adj {
        if let Err(e) = crate::sandbox_procs::set_oom_score_adj(gofer as i32, a) {
            tracing::warn!(gofer, "oom_score_adj {a} of the gofer: {e}");
        }
    }
}

/// Sets `oom_score_adj` on every host process of sandbox `sandbox` but its gofers.
pub fn apply_to_sandbox(g: &GlobalOpts, sandbox: &str) -> Result<()> {
    let rec = state::load(&g.root, sandbox)?;
    let mut added = Vec::new();
    for id in state::ids(&g.root)? {
        let Ok(r) = state::load(&g.root, &id) else {
            continue;
        };
        if r.id != sandbox
            && r.status != Status::Stopped
            && crate::events::pod_of(&r).as_deref() == Some(sandbox)
        {
            added.push(spec_adj(&r.bundle));
        }
    }
    let Some(adj) = lowest(spec_adj(&rec.bundle), &added) else {
        return Ok(());
    };
    let Some(waiter) = crate::sandbox_procs::waiter(rec.pid as i32) else {
        return Ok(());
    };
    let mut failed = None;
    crate::sandbox_procs::tree(waiter, &mut |p| {
        if let Err(e) = crate::sandbox_procs::set_oom_score_adj(p, adj) {
            // A process that has just exited is no failure.
            if e.raw_os_error() != Some(libc::ESRCH) && e.kind() != std::io::ErrorKind::NotFound {
                failed = Some(format!("pid {p}: {e}"));
            }
        }
    });
    match failed {
        Some(e) => anyhow::bail!("oom_score_adj {adj} of sandbox {sandbox:?}: {e}"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_gets_the_lowest_workload_value() {
        // Alone: its own.
        assert_eq!(lowest(Some(500), &[]), Some(500));
        assert_eq!(lowest(None, &[]), None);
        // A pod: the pause container's -998 is left out.
        assert_eq!(lowest(Some(-998), &[Some(700), Some(300)]), Some(300));
        assert_eq!(lowest(Some(-998), &[None, Some(300)]), Some(300));
        assert_eq!(lowest(Some(-998), &[None]), None);
    }
}
