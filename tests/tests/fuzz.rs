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

/// Host processes that belong to some sandbox: rvisor's own (boot, gofer) and stubs,
/// which run from a memfd.
fn sandbox_processes() -> HashSet<(i32, String)> {
    let mut set = HashSet::new();
    for (pid, dir) in rvisor_e2e::host_processes() {
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        // comm is between the first '(' and the last ')'; the state follows.
        let (Some(a), Some(b)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[a + 1..b];
        let state = stat[b + 1..].split_whitespace().next().unwrap_or("");
        let exe = std::fs::read_link(dir.join("exe"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ours = comm.starts_with("memfd:rvisor") || exe.contains("rvisor");
        if ours && state != "Z" {
            set.insert((pid, comm.to_string()));
        }
    }
    set
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
    let seed = env_u64("RVISOR_FUZZ_SEED", 20_261_206);
    let calls = env_u64("RVISOR_FUZZ_CALLS", 500_000);
    let dir = scratch("bin");
    let fuzzer = dir.join("syscall_fuzz");
    let src = rvisor_e2e::c_dir().join("fuzz/syscall_fuzz.c");
    rvisor_e2e::compile(&src, Link::Static, &fuzzer, &["-pthread".to_string()]).unwrap();
    // One platform after the other: the stray-process check must see only this run.
    for platform in rvisor_e2e::platforms() {
        fuzz_on(&platform, &fuzzer, seed, calls);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
