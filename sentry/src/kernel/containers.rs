//! Which container of a pod sandbox a process belongs to, and what the host took
//! from each container.
//!
//! A sandbox's first container owns every process outside the added ones; an added
//! container (a pod's second and later containers, see `control`) owns its first
//! process and every process whose parent chain reaches it. When a process's stub is
//! killed from outside (the host's OOM killer picks the stub holding the most memory
//! of the sandbox's host cgroup), the kill is counted for the container it belonged
//! to, so the runtime reports an OOM kill for that container only.
//!
//! Each added container also has its own limits, from its spec's resources (and
//! later `update`s): what its programs see as their memory, CPU and pids limits
//! (`/proc/meminfo`, `sysinfo`, its cgroup files), each the smaller of its own and
//! the pod's. The sentry only shows them: the host enforces the pod's cgroup,
//! which the kubelet sizes to the sum of its containers' limits (as with runsc,
//! whose sub-container updates change no host cgroup either), and the runtime
//! enforces a container's own memory limit from outside (rvisor's `own_oom`, which
//! reads the limit here and has kills it makes counted in [`Book::note_limit_kill`]).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One container's own limits (`None`: not limited by its spec).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerLimits {
    /// Memory limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// CPU quota and period, in microseconds (`cpu.max`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<(u64, u64)>,
    /// Most tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
}

impl ContainerLimits {
    /// `self` with every limit `newer` sets replaced (an update names only what it
    /// changes).
    pub fn updated(self, newer: ContainerLimits) -> ContainerLimits {
        ContainerLimits {
            memory: newer.memory.or(self.memory),
            cpu: newer.cpu.or(self.cpu),
            pids: newer.pids.or(self.pids),
        }
    }
}

/// The smaller of two optional limits (`None` is no limit).
pub fn tighter(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The key of the sandbox's first container.
pub const FIRST: &str = "";

/// Deepest parent chain followed when looking for a process's container (the
/// sandbox's pid space is bounded; a chain this long is the first container's).
const MAX_DEPTH: usize = 4096;

/// The added containers' first processes and the per-container kill counts.
#[derive(Default)]
pub struct Book {
    /// First process (tgid) of each added container, to its id.
    inits: Mutex<HashMap<i32, String>>,
    /// Processes killed from outside the sandbox, by container ([`FIRST`] for the
    /// first one). One entry per container the sandbox ever had.
    host_kills: Mutex<HashMap<String, u64>>,
    /// Added containers' own limits, by id.
    limits: Mutex<HashMap<String, ContainerLimits>>,
    /// Processes the runtime killed at their container's own memory limit, by
    /// container (kept once the container has ended, as `host_kills`).
    limit_kills: Mutex<HashMap<String, u64>>,
}

impl Book {
    /// Records `tgid` as the first process of added container `id`.
    pub fn add(&self, tgid: i32, id: &str) {
        if let Ok(mut m) = self.inits.lock() {
            m.insert(tgid, id.to_string());
        }
    }

    /// Forgets the first process `tgid` (its container has ended), so a process that
    /// takes the pid over is not counted for that container.
    pub fn remove(&self, tgid: i32) {
        if let Ok(mut m) = self.inits.lock() {
            m.remove(&tgid);
        }
    }

    /// The container of process `tgid`, whose parent is given by `parent_of` (0 for
    /// none): the added container whose first process is on its chain, else
    /// [`FIRST`].
    pub fn owner(&self, tgid: i32, parent_of: impl Fn(i32) -> i32) -> String {
        let Ok(inits) = self.inits.lock() else {
            return FIRST.to_string();
        };
        let mut cur = tgid;
        for _ in 0..MAX_DEPTH {
            if let Some(id) = inits.get(&cur) {
                return id.clone();
            }
            cur = parent_of(cur);
            if cur <= 0 {
                break;
            }
        }
        FIRST.to_string()
    }

    /// Sets (`replace`) or updates container `id`'s own limits.
    pub fn set_limits(&self, id: &str, limits: ContainerLimits, replace: bool) {
        if let Ok(mut m) = self.limits.lock() {
            let old = m.get(id).copied().unwrap_or_default();
            let new = if replace { limits } else { old.updated(limits) };
            m.insert(id.to_string(), new);
        }
    }

    /// Forgets container `id`'s limits (it has ended).
    pub fn forget_limits(&self, id: &str) {
        if let Ok(mut m) = self.limits.lock() {
            m.remove(id);
        }
    }

    /// Container `id`'s own limits (none for the first container: its limits are
    /// the sandbox's).
    pub fn limits(&self, id: &str) -> ContainerLimits {
        self.limits
            .lock()
            .ok()
            .and_then(|m| m.get(id).copied())
            .unwrap_or_default()
    }

    /// Counts a process of container `id` killed by the runtime at the container's
    /// own memory limit.
    pub fn note_limit_kill(&self, id: &str) {
        if let Ok(mut m) = self.limit_kills.lock() {
            *m.entry(id.to_string()).or_insert(0) += 1;
        }
    }

    /// Processes of container `id` killed at its own memory limit so far.
    pub fn limit_kills(&self, id: &str) -> u64 {
        self.limit_kills
            .lock()
            .ok()
            .and_then(|m| m.get(id).copied())
            .unwrap_or(0)
    }

    /// Counts a process of container `id` killed from outside the sandbox.
    pub fn note_host_kill(&self, id: &str) {
        if let Ok(mut m) = self.host_kills.lock() {
            *m.entry(id.to_string()).or_insert(0) += 1;
        }
    }

    /// Processes of container `id` killed from outside so far.
    pub fn host_kills(&self, id: &str) -> u64 {
        self.host_kills
            .lock()
            .ok()
            .and_then(|m| m.get(id).copied())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_are_counted_for_the_owning_container_only() {
        let b = Book::default();
        // 1 -> 5 -> 9 (first container); 20 (added "web") -> 21 -> 22.
        let parent = |p: i32| match p {
            5 => 1,
            9 => 5,
            21 => 20,
            22 => 21,
            _ => 0,
        };
        b.add(20, "web");
        assert_eq!(b.owner(22, parent), "web");
        assert_eq!(b.owner(20, parent), "web");
        assert_eq!(b.owner(9, parent), FIRST);
        b.note_host_kill(&b.owner(22, parent));
        assert_eq!((b.host_kills("web"), b.host_kills(FIRST)), (1, 0));
        b.note_host_kill(&b.owner(9, parent));
        assert_eq!((b.host_kills("web"), b.host_kills(FIRST)), (1, 1));
        // Once "web" has ended, its pid names no container.
        b.remove(20);
        assert_eq!(b.owner(22, parent), FIRST);
        // A parent loop ends at the depth limit, in the first container.
        assert_eq!(b.owner(7, |p| p), FIRST);
    }

    #[test]
    fn limits_are_per_container_and_updates_change_only_what_they_name() {
        let b = Book::default();
        let mib = |n: u64| Some(n << 20);
        b.set_limits(
            "web",
            ContainerLimits {
                memory: mib(64),
                cpu: Some((50_000, 100_000)),
                pids: None,
            },
            true,
        );
        assert_eq!(b.limits("db"), ContainerLimits::default());
        assert_eq!(b.limits(FIRST), ContainerLimits::default());
        b.set_limits(
            "web",
            ContainerLimits {
                memory: mib(200),
                ..Default::default()
            },
            false,
        );
        let l = b.limits("web");
        assert_eq!((l.memory, l.cpu), (mib(200), Some((50_000, 100_000))));
        b.forget_limits("web");
        assert_eq!(b.limits("web"), ContainerLimits::default());
        assert_eq!(tighter(mib(1), None), mib(1));
        assert_eq!(tighter(None, mib(2)), mib(2));
        assert_eq!(tighter(mib(3), mib(2)), mib(2));
        assert_eq!(tighter(None, None), None);
    }
}
