//! Which container of a pod sandbox a process belongs to, and what the host took
//! from each container.
//!
//! A sandbox's first container owns every process outside the added ones; an added
//! container (a pod's second and later containers, see `control`) owns its first
//! process and every process whose parent chain reaches it. When a process's stub is
//! killed from outside (the host's OOM killer picks the stub holding the most memory
//! of the sandbox's host cgroup), the kill is counted for the container it belonged
//! to, so the runtime reports an OOM kill for that container only.

use std::collections::HashMap;
use std::sync::Mutex;

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
}
