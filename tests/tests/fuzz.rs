//! The system call fuzzer (`tests/c/fuzz/syscall_fuzz.c`) inside the sandbox, on every
//! platform: random system calls with random and boundary arguments from several
//! processes and threads. The sandbox must finish the run (no sentry panic, no hang: a
//! worker that survives SIGKILL makes the fuzzer exit 3), exit cleanly, leave no host
//! process behind, and write nothing to the host (the run's working directory, a fresh
//! host directory the fuzzer writes into, stays empty).
//!
//! Size and seed: `RVISOR_FUZZ_CALLS` (calls per platform, default 500 000, so the
//! suite makes 10^6 on two platforms), `RVISOR_FUZZ_SEED` (default a fixed seed, so a
//! CI failure reproduces), `RVISOR_FUZZ_WORKERS` (default 2) and
//! `RVISOR_FUZZ_THREADS` (default 2). The longer documented run is
//! `RVISOR_FUZZ_CALLS=10000000 cargo test --release -p rvisor-e2e --test fuzz`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvisor_e2e::{run_with_timeout, Link};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rvisor-fuzz-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Host processes of the sandboxes this test started: rvisor's own (boot, gofer) and
/// stubs, which run from a memfd, that descend from this test process. The test is a
/// child subreaper (see [`adopt_orphans`]), so a sandbox process whose parent died is
/// reparented here and still counts; sandboxes of other tests or users on the host
/// never do.
fn sandbox_processes() -> HashSet<(i32, String)> {
    struct Proc {
        ppid: i32,
        comm: String,
        live: bool,
        ours: bool,
    }
    let mut procs = std::collections::HashMap::new();
    for (pid, dir) in rvisor_e2e::host_processes() {
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        // comm is between the first '(' and the last ')'; state and ppid follow.
        let (Some(a), Some(b)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[a + 1..b].to_string();
        let mut rest = stat[b + 1..].split_whitespace();
        let state = rest.next().unwrap_or("");
        let ppid = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let exe = std::fs::read_link(dir.join("exe"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ours = comm.starts_with("memfd:rvisor") || exe.contains("rvisor");
        let live = state != "Z";
        procs.insert(
            pid,
            Proc {
                ppid,
                comm,
                live,
                ours,
            },
        );
    }
    let me = std::process::id() as i32;
    let descends = |mut pid: i32| {
        // Bounded: a pid table changing under the walk cannot loop it forever.
        for _ in 0..64 {
            match procs.get(&pid) {
                Some(p) if p.ppid == me => return true,
                Some(p) if p.ppid > 1 => pid = p.ppid,
                _ => return false,
            }
        }
        false
    };
    procs
        .iter()
        .filter(|(pid, p)| p.ours && p.live && descends(**pid))
        .map(|(pid, p)| (*pid, p.comm.clone()))
        .collect()
}

/// Makes this test process the reaper of its orphaned descendants, so a sandbox process
/// that outlives its parent stays visible to [`sandbox_processes`].
fn adopt_orphans() {
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
}

/// Reaps the zombies adopted through [`adopt_orphans`].
fn reap_adopted() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

fn fuzz_on(platform: &str, fuzzer: &Path, seed: u64, calls: u64) {
    let workers = env_u64("RVISOR_FUZZ_WORKERS", 2);
    let threads = env_u64("RVISOR_FUZZ_THREADS", 2);
    let cwd = scratch(&format!("cwd-{platform}"));
    let before = sandbox_processes();
    let mut cmd = Command::new(rvisor_e2e::rvisor_bin().unwrap());
    cmd.arg(format!("--platform={platform}"))
        .arg("do")
        .arg("--")
        .arg(fuzzer)
        .arg(seed.to_string())
        .arg(calls.to_string())
        .arg(workers.to_string())
        .arg(threads.to_string())
        .current_dir(&cwd)
        .stdin(Stdio::null());
    // Budget: about 25 000 calls a second on a loaded 2-CPU machine, with a wide margin.
    let budget = Duration::from_secs(120 + calls / 2_000);
    let started = Instant::now();
    let out = run_with_timeout(cmd, budget).unwrap_or_else(|e| {
        panic!("platform {platform}, seed {seed}, {calls} calls: the sandbox did not finish: {e}")
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = format!(
        "platform {platform}, seed {seed}, {calls} calls, {workers} workers x {threads} threads \
         (reproduce: RVISOR_FUZZ_SEED={seed} RVISOR_FUZZ_CALLS={calls}):\nstdout:\n{stdout}\n\
         stderr (last lines):\n{}",
        stderr
            .lines()
            .filter(|l| !l.contains("unimplemented syscall") && !l.contains("not supported"))
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(!stderr.contains("panicked"), "sentry panic: {what}");
    assert_eq!(out.status, 0, "{what}");
    let done = stdout
        .lines()
        .find(|l| l.starts_with("fuzz: done"))
        .unwrap_or_else(|| panic!("no summary: {what}"));
    let made: u64 = done
        .split_whitespace()
        .find_map(|w| w.strip_prefix("calls="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(made >= calls, "only {made} calls: {what}");
    eprintln!(
        "fuzz {platform}: {done} (wall {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    // Nothing the program wrote reached the host directory it ran in.
    let left: Vec<_> = std::fs::read_dir(&cwd)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "the fuzzer wrote to the host: {left:?}");
    let _ = std::fs::remove_dir_all(&cwd);
    // No process of this sandbox outlives it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        reap_adopted();
        let stray: Vec<_> = sandbox_processes().difference(&before).cloned().collect();
        if stray.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processes left behind: {stray:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn syscall_fuzzer_on_every_platform() {
    adopt_orphans();
    let seed = env_u64("RVISOR_FUZZ_SEED", 20_261_206);
    let calls = env_u64("RVISOR_FUZZ_CALLS", 500_000);
    let dir = scratch("bin");
    let fuzzer = dir.join("syscall_fuzz");
    let src = rvisor_e2e::c_dir().join("fuzz/syscall_fuzz.c");
    rvisor_e2e::compile(&src, Link::Static, &fuzzer, &["-pthread".to_string()]).unwrap();
    // One platform after the other: the stray-process check must see only that run.
    for platform in rvisor_e2e::platforms() {
        fuzz_on(&platform, &fuzzer, seed, calls);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
