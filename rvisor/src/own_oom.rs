//! A pod container's own memory limit, enforced by its supervisor: the host's
//! cgroup is the pod's (every container of the pod is in the one sandbox), so the
//! host only kills at the pod's limit. The supervisor of a container added to a
//! pod with a memory limit of its own (its spec's, or a later `update`'s, as the
//! sentry holds it) looks every [`PERIOD`] at the resident memory of the stubs
//! holding its processes' memory; above the limit it SIGKILLs the biggest of them,
//! as Linux's memory cgroup kills the biggest process of the cgroup at its limit.
//! The sentry sees that stub die and kills the process with SIGKILL (a kill from
//! outside, counted for the container); the supervisor has the sentry count it as
//! a kill at the container's limit (control request `note-limit-kill`; the count
//! outlives the container, so `events` sees it even once the container is gone)
//! and `events` reports an `oom` event for that container only. Its siblings and
//! the pod live on.
//!
//! Trust: the stubs and the limit come from the sentry, which the runtime does not
//! trust; a stub pid is only ever looked up among the host processes in the
//! sandbox's own pid namespace (`sandbox_procs::by_sandbox_pid`), so whatever the
//! sentry says, only the sandbox's own processes can be killed, and a sentry that
//! hides a container's limit or stubs leaves it bounded by the pod's cgroup.
//!
//! Unlike Linux, the check is periodic: a container may go past its limit for up
//! to a period (the pod's cgroup bounds it meanwhile), and memory is counted as
//! the stubs' resident sizes (anonymous, file and shared pages mapped), not as
//! page cache charged.

use std::time::Duration;

use anyhow::{anyhow, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cli::GlobalOpts;
use crate::sandbox_procs;
use crate::state;

/// How often a container's memory is looked at.
pub const PERIOD: Duration = Duration::from_millis(200);

/// The stub to kill among `(host pid, resident bytes)`, when their sum is above
/// `limit`: the biggest (the first of equals).
pub fn victim(stubs: &[(i32, u64)], limit: u64) -> Option<i32> {
    let total: u64 = stubs.iter().map(|&(_, b)| b).sum();
    if total <= limit {
        return None;
    }
    stubs
        .iter()
        .fold(None, |best: Option<(i32, u64)>, &(p, b)| match best {
            Some((_, bb)) if bb >= b => best,
            _ => Some((p, b)),
        })
        .map(|(p, _)| p)
}

/// Checks container `id` of pod `pod` once: `Ok(true)` when it was above its own
/// limit and its biggest process's stub was killed.
pub fn check(g: &GlobalOpts, pod: &str, id: &str) -> Result<bool> {
    let cs = crate::events::sentry_stats(g, pod, id)?;
    let Some(limit) = cs.memory_limit else {
        return Ok(false);
    };
    let sup = state::load(&g.root, pod)?.pid as i32;
    let waiter = sandbox_procs::waiter(sup)
        .ok_or_else(|| anyhow!("the sandbox of pod {pod:?} has no running sentry"))?;
    let host = sandbox_procs::by_sandbox_pid(waiter);
    let stubs: Vec<(i32, u64)> = cs
        .stubs
        .iter()
        .filter_map(|s| host.get(s).copied())
        .map(|h| {
            let r = sandbox_procs::resident(h);
            (h, r.anon + r.file + r.shmem)
        })
        .collect();
    let Some(pid) = victim(&stubs, limit) else {
        return Ok(false);
    };
    let used: u64 = stubs.iter().map(|&(_, b)| b).sum();
    tracing::info!(
        container = id,
        used,
        limit,
        stub = pid,
        "container above its own memory limit: killing its biggest process"
    );
    match kill(Pid::from_raw(pid), Signal::SIGKILL) {
        Ok(()) => {}
        // Gone meanwhile: nothing was killed by this check.
        Err(nix::errno::Errno::ESRCH) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let note = sentry::control::Request::NoteLimitKill {
        container: id.to_string(),
    };
    match crate::lifecycle::request(g, pod, &note)? {
        sentry::control::Reply::Ok => Ok(true),
        other => Err(anyhow!("note the kill of {id:?}: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_biggest_goes_only_above_the_limit() {
        let s = [(10, 30), (11, 50), (12, 50), (13, 5)];
        assert_eq!(victim(&s, 135), None);
        assert_eq!(victim(&s, 134), Some(11));
        assert_eq!(victim(&[], 0), None);
        assert_eq!(victim(&[(7, 1)], 0), Some(7));
    }
}
