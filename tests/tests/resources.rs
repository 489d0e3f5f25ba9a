//! Honest resources inside the sandbox: with a memory limit and a CPU quota (from
//! `rvisor do --memory/--cpus` or a bundle's `linux.resources`), programs see the
//! limit as the machine's memory (`free`, `/proc/meminfo`), the quota as its CPU
//! count (`nproc`, python's `os.sched_getaffinity` and `os.cpu_count`, sysfs), a
//! read-only cgroup v2 filesystem with the limits and usage, and a program that
//! allocates past the limit is OOM-killed while its sibling and the sandbox live on.
//!
//! Each test runs on every platform of `$RVISOR_PLATFORMS` (default ptrace and
//! systrap). Binary: `$RVISOR_BIN` or the built `rvisor`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rvisor_e2e::{platforms, run_with_timeout, rvisor_bin, Link, Outcome};

const MIB: u64 = 1 << 20;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rvisor-res-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `rvisor --platform=P do --memory M --cpus C -- sh -c SCRIPT`.
fn do_sh(platform: &str, memory: &str, cpus: &str, script: &str) -> Outcome {
    let mut cmd = Command::new(rvisor_bin().unwrap());
    cmd.env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .arg(format!("--platform={platform}"))
        .args([
            "do", "--memory", memory, "--cpus", cpus, "--", "/bin/sh", "-c", script,
        ]);
    run_with_timeout(cmd, Duration::from_secs(120)).unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The value after `key=` on its own line of `out`.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in:\n{out}"))
        .trim()
}

#[test]
fn limits_are_what_programs_see() {
    let script = r#"
        echo free_total=$(free -b | awk '/^Mem:/ {print $2}')
        echo meminfo_total=$(awk '/^MemTotal:/ {print $2 * 1024}' /proc/meminfo)
        echo meminfo_avail=$(awk '/^MemAvailable:/ {print $2 * 1024}' /proc/meminfo)
        echo nproc=$(nproc)
        echo online=$(cat /sys/devices/system/cpu/online)
        echo cpuinfo=$(grep -c ^processor /proc/cpuinfo)
        echo statcpus=$(grep -c '^cpu[0-9]' /proc/stat)
        echo python=$(/usr/bin/python3 -c 'import os; print(sorted(os.sched_getaffinity(0)), os.cpu_count())')
        for f in memory.max memory.swap.max cpu.max cpuset.cpus.effective pids.max cgroup.controllers cgroup.type; do
            echo "$f=$(cat /sys/fs/cgroup/$f)"
        done
        echo memory.current=$(cat /sys/fs/cgroup/memory.current)
        echo anon=$(awk '/^anon / {print $2}' /sys/fs/cgroup/memory.stat)
        echo usage_usec=$(awk '/^usage_usec / {print $2}' /sys/fs/cgroup/cpu.stat)
        echo pids.current=$(cat /sys/fs/cgroup/pids.current)
        echo procs_has_self=$(grep -cx $$ /sys/fs/cgroup/cgroup.procs)
        echo self_cgroup=$(cat /proc/self/cgroup)
        echo mount=$(awk '$5 == "/sys/fs/cgroup" {print $8, $6}' /proc/self/mountinfo)
        echo fstype=$(stat -f -c %T /sys/fs/cgroup)
        echo proc_cgroups_memory=$(awk '$1 == "memory" {print $2, $4}' /proc/cgroups)
        if echo 1 > /sys/fs/cgroup/memory.max 2>/dev/null; then echo write=ok; else echo write=refused; fi
    "#;
    for p in platforms() {
        let out = do_sh(&p, "256m", "1", script);
        let o = text(&out.stdout);
        assert_eq!(out.status, 0, "{p}: {o}\n{}", text(&out.stderr));
        let limit = (256 * MIB).to_string();
        assert_eq!(field(&o, "free_total"), limit, "{p}");
        assert_eq!(field(&o, "meminfo_total"), limit, "{p}");
        let avail: u64 = field(&o, "meminfo_avail").parse().unwrap();
        assert!(avail > 128 * MIB && avail < 256 * MIB, "{p}: {o}");
        assert_eq!(field(&o, "nproc"), "1", "{p}");
        assert_eq!(field(&o, "online"), "0", "{p}");
        assert_eq!(field(&o, "cpuinfo"), "1", "{p}");
        assert_eq!(field(&o, "statcpus"), "1", "{p}");
        assert_eq!(field(&o, "python"), "[0] 1", "{p}");
        assert_eq!(field(&o, "memory.max"), limit, "{p}");
        assert_eq!(field(&o, "memory.swap.max"), "max", "{p}");
        assert_eq!(field(&o, "cpu.max"), "100000 100000", "{p}");
        assert_eq!(field(&o, "cpuset.cpus.effective"), "0", "{p}");
        assert_eq!(field(&o, "pids.max"), "max", "{p}");
        assert_eq!(
            field(&o, "cgroup.controllers"),
            "cpuset cpu memory pids",
            "{p}"
        );
        assert_eq!(field(&o, "cgroup.type"), "domain", "{p}");
        // Usage is the sandbox's host cgroup's: something, below the limit.
        let cur: u64 = field(&o, "memory.current").parse().unwrap();
        assert!(cur > 0 && cur < 256 * MIB, "{p}: memory.current {cur}");
        let anon: u64 = field(&o, "anon").parse().unwrap();
        assert!(anon > 0 && anon <= cur, "{p}: anon {anon} of {cur}");
        let usec: u64 = field(&o, "usage_usec").parse().unwrap();
        assert!(usec > 0, "{p}: cpu.stat {o}");
        let pids: u64 = field(&o, "pids.current").parse().unwrap();
        assert!(pids >= 2, "{p}: pids.current {pids}");
        assert_eq!(field(&o, "procs_has_self"), "1", "{p}: {o}");
        assert_eq!(field(&o, "self_cgroup"), "0::/", "{p}");
        assert_eq!(
            field(&o, "mount"),
            "cgroup2 ro,nosuid,nodev,noexec,relatime",
            "{p}"
        );
        assert_eq!(field(&o, "fstype"), "cgroup2fs", "{p}");
        assert_eq!(field(&o, "proc_cgroups_memory"), "0 1", "{p}");
        assert_eq!(field(&o, "write"), "refused", "{p}");
        eprintln!("{p}: memory.current={cur} anon={anon} MemAvailable={avail} cpu usage={usec}us");
    }
}

/// Without limits the sandbox shows the host's memory and CPUs (the sentry's own
/// affinity), and the cgroup files say `max`.
#[test]
fn no_limits_show_the_host() {
    let host_cpus = std::thread::available_parallelism().unwrap().get();
    for p in platforms() {
        let mut cmd = Command::new(rvisor_bin().unwrap());
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .arg(format!("--platform={p}"))
            .args([
                "do",
                "--",
                "/bin/sh",
                "-c",
                "nproc; cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max",
            ]);
        let out = run_with_timeout(cmd, Duration::from_secs(60)).unwrap();
        assert_eq!(out.status, 0, "{p}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            format!("{host_cpus}\nmax\nmax 100000\n"),
            "{p}"
        );
    }
}

#[test]
fn bad_limits_are_refused() {
    for (args, want) in [
        (vec!["--memory", "lots"], "--memory: \"lots\" is not a size"),
        (
            vec!["--memory", "1m"],
            "--memory: \"1m\" is below the 4 MiB",
        ),
        (
            vec!["--cpus", "0"],
            "--cpus: \"0\" is not a positive number",
        ),
        (
            vec!["--cpus", "x"],
            "--cpus: \"x\" is not a positive number",
        ),
    ] {
        let out = Command::new(rvisor_bin().unwrap())
            .arg("do")
            .args(&args)
            .args(["--", "/bin/true"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let e = text(&out.stderr);
        assert!(e.contains(want), "{args:?}: {e}");
    }
}

/// A JVM sizes its heap and its CPU count from the sandbox's limits (JDK 17 reads
/// the cgroup v2 files and the machine's memory).
#[test]
fn java_follows_the_limits() {
    if Command::new("java").arg("-version").output().is_err() {
        eprintln!("java not installed: skipped");
        return;
    }
    for p in platforms() {
        let out = do_sh(
            &p,
            "256m",
            "1",
            "java -XX:+PrintFlagsFinal -XshowSettings:system -version 2>&1",
        );
        let o = text(&out.stdout);
        assert_eq!(out.status, 0, "{p}: {o}");
        let heap: u64 = o
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some("MaxHeapSize"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{p}: no MaxHeapSize in {o}"));
        // The JVM's default for a small machine: half of it at most.
        assert!(
            (32 * MIB..=128 * MIB).contains(&heap),
            "{p}: MaxHeapSize {heap}"
        );
        assert!(o.contains("Provider: cgroupv2"), "{p}: {o}");
        assert!(o.contains("Effective CPU Count: 1"), "{p}: {o}");
        eprintln!("{p}: java MaxHeapSize={heap}");
    }
}

fn mem_hog(dir: &Path) -> PathBuf {
    let src = rvisor_e2e::c_dir().join("resources/mem_hog.c");
    let exe = dir.join("mem_hog");
    rvisor_e2e::compile(&src, Link::Static, &exe, &[]).unwrap();
    exe
}

/// Past the limit the biggest process dies of SIGKILL (the host's OOM killer picks
/// its stub), its sibling and the sandbox live on, and the cgroup's memory.events
/// count the kill; the memory comes back.
#[test]
fn past_the_limit_the_biggest_process_is_oom_killed() {
    let dir = scratch("oom");
    let hog = mem_hog(&dir);
    let script = format!(
        r#"
        sleep 60 & sib=$!
        {hog} 400 > /dev/null; echo hog_status=$?
        if kill -0 $sib; then echo sibling=alive; else echo sibling=gone; fi
        echo oom_kill=$(awk '/^oom_kill / {{print $2}}' /sys/fs/cgroup/memory.events)
        echo free_after=$(awk '/^MemAvailable:/ {{print $2 * 1024}}' /proc/meminfo)
        {hog} 32 > /dev/null; echo again=$?
        kill $sib; wait $sib; echo sibling_status=$?
        "#,
        hog = hog.display()
    );
    for p in platforms() {
        let out = do_sh(&p, "128m", "1", &script);
        let o = text(&out.stdout);
        assert_eq!(out.status, 0, "{p}: {o}\n{}", text(&out.stderr));
        assert_eq!(field(&o, "hog_status"), "137", "{p}: {o}");
        assert_eq!(field(&o, "sibling"), "alive", "{p}");
        let kills: u64 = field(&o, "oom_kill").parse().unwrap();
        assert!(kills >= 1, "{p}: {o}");
        let avail: u64 = field(&o, "free_after").parse().unwrap();
        assert!(
            avail > 64 * MIB,
            "{p}: the hog's memory was not returned: {o}"
        );
        assert_eq!(field(&o, "again"), "0", "{p}");
        assert_eq!(field(&o, "sibling_status"), "143", "{p}");
        eprintln!("{p}: hog OOM-killed, {kills} kill(s), {avail} bytes available after");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A bundle's `linux.resources` and its `cgroup` mount (as containerd writes them):
/// the sandbox's cgroup filesystem shows the spec's limits.
#[test]
fn bundle_limits_and_cgroup_mount() {
    let dir = scratch("bundle");
    let rootfs = dir.join("bundle/rootfs");
    for d in ["bin", "proc", "dev", "sys", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for app in ["sh", "cat", "nproc", "free", "awk", "echo"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(app)).unwrap();
    }
    let script = "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max \
                  /sys/fs/cgroup/cpuset.cpus.effective /sys/fs/cgroup/pids.max \
                  /sys/fs/cgroup/memory.swap.max /sys/fs/cgroup/cpu.weight; nproc; \
                  awk '/^MemTotal:/ {print $2}' /proc/meminfo";
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/sh", "-c", script],
            "env": ["PATH=/bin"],
            "cwd": "/",
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "res",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "cgroupsPath": format!("/rvisor-e2e-res-{}", std::process::id()),
            "resources": {
                "memory": {"limit": 200 * MIB, "swap": 300 * MIB},
                "cpu": {"quota": 150_000, "period": 100_000, "shares": 1024},
                "pids": {"limit": 500},
            },
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "network"}, {"type": "mount"}],
        },
    });
    std::fs::write(dir.join("bundle/config.json"), config.to_string()).unwrap();
    let mut cmd = Command::new(rvisor_bin().unwrap());
    cmd.arg("--root")
        .arg(dir.join("state"))
        .arg("run")
        .arg("--bundle")
        .arg(dir.join("bundle"))
        .arg(format!("res-bundle-{}", std::process::id()));
    let out = run_with_timeout(cmd, Duration::from_secs(60)).unwrap();
    let o = text(&out.stdout);
    assert_eq!(out.status, 0, "{o}\n{}", text(&out.stderr));
    // ceil(150000 / 100000) = 2 CPUs, if the host has them.
    let cpus = std::thread::available_parallelism().unwrap().get().min(2);
    let list = if cpus == 1 { "0" } else { "0-1" };
    let want = format!(
        "{}\n150000 100000\n{list}\n500\n{}\n39\n{cpus}\n{}\n",
        200 * MIB,
        100 * MIB,
        200 * 1024
    );
    assert_eq!(o, want);
    assert!(
        !text(&out.stderr).contains("not supported"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An OOM kill in a created container: `rvisor events` (what a runtime's caller
/// watches) reports an `oom` event, and the container keeps running.
#[test]
fn oom_kill_in_a_container_is_an_event() {
    use std::io::{BufRead, BufReader};
    let dir = scratch("events");
    let rootfs = dir.join("bundle/rootfs");
    for d in ["bin", "proc", "dev", "sys", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for app in ["sh", "sleep", "echo"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(app)).unwrap();
    }
    std::fs::copy(mem_hog(&dir), rootfs.join("bin/mem_hog")).unwrap();
    let id = format!("res-oom-{}", std::process::id());
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/sh", "-c", "sleep 2; /bin/mem_hog 400 >/dev/null; echo hog=$?; exec sleep 60"],
            "env": ["PATH=/bin"],
            "cwd": "/",
        },
        "root": {"path": "rootfs", "readonly": true},
        "linux": {
            "cgroupsPath": format!("/rvisor-e2e-res-oom-{}", std::process::id()),
            "resources": {"memory": {"limit": 96 * MIB}},
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "network"}, {"type": "mount"}],
        },
    });
    std::fs::write(dir.join("bundle/config.json"), config.to_string()).unwrap();
    let rvisor = |args: &[&str]| {
        let mut c = Command::new(rvisor_bin().unwrap());
        c.arg("--root").arg(dir.join("state")).args(args);
        c
    };
    let out_path = dir.join("out");
    let out = std::fs::File::create(&out_path).unwrap();
    let created = rvisor(&[
        "create",
        "--bundle",
        dir.join("bundle").to_str().unwrap(),
        &id,
    ])
    .stdin(std::process::Stdio::null())
    .stdout(out.try_clone().unwrap())
    .stderr(out)
    .status()
    .unwrap();
    assert!(
        created.success(),
        "{}",
        std::fs::read_to_string(&out_path).unwrap()
    );
    let mut events = rvisor(&["events", "--interval", "200ms", &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(rvisor(&["start", &id]).status().unwrap().success());
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = events.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("\"type\":\"oom\"") && tx.send(line).is_err() {
                return;
            }
        }
    });
    let oom = rx.recv_timeout(Duration::from_secs(30));
    let _ = events.kill();
    let _ = events.wait();
    // The container lives on after the kill.
    let mut said = String::new();
    for _ in 0..50 {
        said = std::fs::read_to_string(&out_path).unwrap();
        if said.contains("hog=") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let state = rvisor(&["state", &id]).output().unwrap();
    let state = text(&state.stdout);
    let _ = rvisor(&["delete", "--force", &id]).status();
    let line = oom.expect("no oom event within 30 s");
    assert!(line.contains(&format!("\"id\":\"{id}\"")), "{line}");
    assert!(said.contains("hog=137"), "{said}");
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["status"], "running", "{state}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tmpfs without `size=` holds half the machine's memory, as on Linux: under a
/// limit, filling one ends in ENOSPC and the sandbox lives on.
#[test]
fn tmpfs_holds_half_the_limit() {
    for p in platforms() {
        let out = do_sh(
            &p,
            "64m",
            "1",
            "dd if=/dev/zero of=/dev/shm/x bs=1M count=100 2>/dev/null; echo dd=$?; \
             echo size=$(stat -c %s /dev/shm/x); echo blocks=$(stat -f -c %b /dev/shm); \
             echo oom_kill=$(awk '/^oom_kill / {print $2}' /sys/fs/cgroup/memory.events)",
        );
        let o = text(&out.stdout);
        assert_eq!(out.status, 0, "{p}: {o}\n{}", text(&out.stderr));
        assert_eq!(field(&o, "dd"), "1", "{p}: {o}");
        assert_eq!(field(&o, "size"), (32 * MIB).to_string(), "{p}: {o}");
        assert_eq!(
            field(&o, "blocks"),
            (32 * MIB / 4096).to_string(),
            "{p}: {o}"
        );
        assert_eq!(field(&o, "oom_kill"), "0", "{p}: {o}");
    }
}

/// Every host process of a `do` sandbox is the host OOM killer's first choice
/// (`oom_score_adj` 1000): the memory it holds in memfds (tmpfs, shm, memfd, the
/// in-memory overlay) counts in no process's RSS, so the killer would otherwise take
/// host processes and free nothing.
#[test]
fn a_do_sandbox_is_the_oom_killers_first_choice() {
    for p in platforms() {
        let mut cmd = Command::new(rvisor_bin().unwrap());
        cmd.arg(format!("--platform={p}"))
            .args(["do", "--", "/bin/sleep", "3"])
            .stdin(std::process::Stdio::null());
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        // The CLI and its descendants (boot, sentry, gofer, stubs), by parent links.
        let mut ours = vec![child.id() as i32];
        let mut seen = Vec::new();
        while let Some(pid) = ours.pop() {
            seen.push(pid);
            for (q, dir) in rvisor_e2e::host_processes() {
                let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
                    continue;
                };
                let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                    continue;
                };
                let ppid: i32 = rest
                    .split_whitespace()
                    .nth(1)
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(0);
                if ppid == pid && !seen.contains(&q) {
                    ours.push(q);
                }
            }
        }
        let adj: Vec<(i32, String)> = seen
            .iter()
            .filter_map(|p| {
                let v = std::fs::read_to_string(format!("/proc/{p}/oom_score_adj")).ok()?;
                Some((*p, v.trim().to_string()))
            })
            .collect();
        let st = child.wait().unwrap();
        assert!(st.success(), "{p}: {st:?}");
        assert!(
            adj.len() >= 3,
            "{p}: too few sandbox processes found: {adj:?}"
        );
        assert!(adj.iter().all(|(_, v)| v == "1000"), "{p}: {adj:?}");
        eprintln!("{p}: {} processes at oom_score_adj 1000", adj.len());
    }
}

/// A tmpfs mounted inside whose spare host instance cannot get its filler (the
/// host refuses the allocation, as at the sandbox's memory limit: forced here by
/// `RVISOR_TESTONLY_FILLER_FAILS`, since a real one would call the OOM killer on
/// the sandbox) is still held to its `size=` for faults: its mapped files count at
/// their size. `c/mm_tmpfs_bounds`'s `one` case, compared with its native run.
#[test]
fn a_tmpfs_whose_filler_fails_is_still_held_to_its_size() {
    let dir = scratch("filler");
    let exe = dir.join("mm_tmpfs_bounds");
    let src = rvisor_e2e::c_dir().join("mm_tmpfs_bounds.c");
    rvisor_e2e::compile(&src, Link::Static, &exe, &[]).unwrap();
    let work = dir.join("w");
    std::fs::create_dir_all(&work).unwrap();
    let mut cmd = Command::new(&exe);
    cmd.arg(&work).arg("one");
    let native = run_with_timeout(cmd, Duration::from_secs(60)).unwrap();
    let native_out = text(&native.stdout);
    assert_eq!(native.status, 0, "native: {native_out}");
    assert!(
        native_out.contains("faults: 1240 pages of 1240"),
        "native: {native_out}"
    );
    for p in platforms() {
        let mut cmd = Command::new(rvisor_bin().unwrap());
        cmd.env("RVISOR_TESTONLY_FILLER_FAILS", "1")
            .arg(format!("--platform={p}"))
            .args(["do", "--cap-add=all", "--"])
            .arg(&exe)
            .arg(&work)
            .arg("one");
        let out = run_with_timeout(cmd, Duration::from_secs(120)).unwrap();
        assert_eq!(
            out.status,
            0,
            "{p}: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("RVISOR_TESTONLY_FILLER_FAILS"),
            "{p}: the sentry did not take the test switch: {}",
            text(&out.stderr)
        );
        assert_eq!(
            text(&out.stdout),
            native_out,
            "{p}: sandbox (left) against native"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
