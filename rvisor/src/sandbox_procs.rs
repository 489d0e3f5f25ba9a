//! The host processes of a running sandbox, found from its supervisor: the boot
//! waiter, the sentry (pid 1 of the sandbox's pid namespace) and the stubs, each
//! with its pid in that namespace. Stats read the stubs' resident memory here, and
//! `oom_score_adj` is set on them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Deepest process tree walked (supervisor, waiter, sentry, zygote, stub).
const MAX_DEPTH: usize = 16;

/// Children of host process `pid` (every thread's `children` list).
fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in rd.flatten() {
        if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn ns_link(pid: i32, which: &str) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/{which}")).ok()
}

/// The boot waiter of the sandbox supervised by `supervisor`: the child whose
/// children go to another pid namespace than its own.
pub fn waiter(supervisor: i32) -> Option<i32> {
    children(supervisor).into_iter().find(|&c| {
        match (ns_link(c, "pid"), ns_link(c, "pid_for_children")) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        }
    })
}

/// `pid` and every descendant, parents before their children. A child forked after
/// its parent was listed is missed; one forked from a process already visited by
/// `visit` inherits what `visit` did.
pub fn tree(pid: i32, visit: &mut dyn FnMut(i32)) {
    fn walk(pid: i32, depth: usize, visit: &mut dyn FnMut(i32)) {
        visit(pid);
        if depth < MAX_DEPTH {
            for c in children(pid) {
                walk(c, depth + 1, visit);
            }
        }
    }
    walk(pid, 0, visit)
}

/// The innermost pid of host process `pid` (`NSpid`'s last field).
fn ns_pid(pid: i32) -> Option<i32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// The sandbox's processes below the waiter, by their pid in the sandbox's pid
/// namespace, to their host pid.
pub fn by_sandbox_pid(waiter: i32) -> HashMap<i32, i32> {
    let own_ns = ns_link(waiter, "pid_for_children");
    let mut out = HashMap::new();
    tree(waiter, &mut |p| {
        if p != waiter && ns_link(p, "pid") == own_ns {
            if let Some(inner) = ns_pid(p) {
                out.insert(inner, p);
            }
        }
    });
    out
}

/// Resident memory of one host process, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resident {
    /// Anonymous memory (`RssAnon`).
    pub anon: u64,
    /// File pages mapped (`RssFile`).
    pub file: u64,
    /// Shared memory mapped (`RssShmem`).
    pub shmem: u64,
}

impl Resident {
    /// All of it (`VmRSS`).
    pub fn total(&self) -> u64 {
        self.anon + self.file + self.shmem
    }
}

/// The resident memory of host process `pid` (zero when it is gone).
pub fn resident(pid: i32) -> Resident {
    parse_resident(&std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default())
}

fn parse_resident(status: &str) -> Resident {
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Resident {
        anon: kib("RssAnon:"),
        file: kib("RssFile:"),
        shmem: kib("RssShmem:"),
    }
}

/// Sets host process `pid`'s `oom_score_adj`.
pub fn set_oom_score_adj(pid: i32, adj: i32) -> std::io::Result<()> {
    std::fs::write(
        Path::new("/proc")
            .join(pid.to_string())
            .join("oom_score_adj"),
        adj.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_sizes_from_status() {
        let r = parse_resident("Name:\tx\nVmRSS:\t  300 kB\nRssAnon:\t  200 kB\nRssFile:\t  60 kB\nRssShmem:\t  40 kB\n");
        assert_eq!((r.anon, r.file, r.shmem), (200 << 10, 60 << 10, 40 << 10));
        assert_eq!(r.total(), 300 << 10);
        assert_eq!(parse_resident(""), Resident::default());
    }

    #[test]
    fn this_process_is_found_in_its_tree() {
        let me = std::process::id() as i32;
        let mut seen = Vec::new();
        tree(me, &mut |p| seen.push(p));
        assert_eq!(seen.first(), Some(&me));
        assert!(resident(me).total() > 0);
        assert!(ns_pid(me).is_some());
    }
}
