//! The sandbox's host cgroup: `create` places the gofer and the sentry (and its
//! stubs) in the spec's `linux.cgroupsPath` with its limits, `pause`/`resume` freeze
//! and thaw it, `events --stats` reads it, `update` changes it, `delete` removes it.
//!
//! Binary: `$RVISOR_BIN` (default: the `rvisor` next to this test's target dir).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn rvisor_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RVISOR_BIN") {
        return PathBuf::from(p);
    }
    let me = std::env::current_exe().unwrap();
    me.parent().unwrap().parent().unwrap().join("rvisor")
}

/// A bundle and a state root of its own; the container is force-deleted on drop.
struct Sandbox {
    dir: PathBuf,
    id: String,
}

impl Sandbox {
    fn new(name: &str, script: &str, linux: Value) -> Sandbox {
        let dir = std::env::temp_dir().join(format!("rvisor-cg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rootfs = dir.join("bundle/rootfs");
        for d in ["bin", "tmp", "proc", "dev"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for app in ["sh", "sleep", "echo", "cat", "ls", "grep", "seq", "true"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(app)).unwrap();
        }
        let config = json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": {"uid": 0, "gid": 0},
                "args": ["/bin/sh", "-c", script],
                "env": ["PATH=/bin"],
                "cwd": "/",
            },
            "root": {"path": "rootfs", "readonly": false},
            "hostname": "cg",
            "linux": linux,
        });
        let mut config = config;
        if config["linux"].get("namespaces").is_none() {
            config["linux"]["namespaces"] =
                json!([{"type": "pid"}, {"type": "ipc"}, {"type": "network"}]);
        }
        std::fs::write(dir.join("bundle/config.json"), config.to_string()).unwrap();
        Sandbox {
            dir,
            id: name.to_string(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(rvisor_bin());
        c.arg("--root").arg(self.dir.join("state")).args(args);
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "rvisor {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// `create` with the sandbox's stdout and stderr going to `out`.
    fn create(&self, out: &Path) -> Output {
        let f = std::fs::File::create(out).unwrap();
        self.cmd(&["create", "--bundle"])
            .arg(self.dir.join("bundle"))
            .arg(&self.id)
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .output()
            .unwrap()
    }

    fn status(&self) -> String {
        let v: Value = serde_json::from_str(&self.ok(&["state", &self.id])).unwrap();
        v["status"].as_str().unwrap().to_string()
    }

    fn record(&self) -> Value {
        let t = std::fs::read_to_string(self.dir.join("state").join(&self.id).join("cgroup.json"))
            .unwrap();
        serde_json::from_str(&t).unwrap()
    }

    fn stats(&self) -> Value {
        let out = self.ok(&["events", "--stats", &self.id]);
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["type"], "stats", "{v}");
        assert_eq!(v["id"], self.id.as_str(), "{v}");
        v["data"].clone()
    }

    fn supervisor(&self) -> i32 {
        let v: Value = serde_json::from_str(&self.ok(&["state", &self.id])).unwrap();
        v["pid"].as_i64().unwrap() as i32
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.run(&["delete", "--force", &self.id]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory of controller `ctrl` (v1) or the one v2 directory.
fn dir_of(rec: &Value, ctrl: &str) -> PathBuf {
    let dirs = &rec["dirs"];
    let d = if rec["version"] == "v2" {
        &dirs[""]
    } else {
        &dirs[ctrl]
    };
    PathBuf::from(d.as_str().unwrap())
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

fn procs(dir: &Path) -> Vec<i32> {
    read(&dir.join("cgroup.procs"))
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z")
}

fn cpu_total(s: &Value) -> u64 {
    s["cpu"]["usage"]["total"].as_u64().unwrap()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn limits_pause_resume_events_update_delete() {
    let parent = format!("/rvisor-e2e-{}", std::process::id());
    let sb = Sandbox::new(
        "lim",
        "while true; do :; done",
        json!({
            "cgroupsPath": format!("{parent}/lim"),
            "resources": {
                "memory": {"limit": 268435456, "reservation": 134217728},
                "cpu": {"shares": 512, "quota": 50000, "period": 100000},
                "pids": {"limit": 64},
            },
        }),
    );
    let out = sb.dir.join("out");
    let o = sb.create(&out);
    assert!(o.status.success(), "create: {}", read(&out));
    let rec = sb.record();
    let v2 = rec["version"] == "v2";

    // The gofer and boot (the supervisor's children) are in every controller's
    // directory; the supervisor itself went back to its own cgroup.
    let sup = sb.supervisor();
    let kids = children(sup);
    assert_eq!(kids.len(), 2, "supervisor's children: {kids:?}");
    for ctrl in ["memory", "pids", "freezer", "cpu", "cpuacct"] {
        if !v2 && rec["dirs"][ctrl].is_null() {
            continue;
        }
        let p = procs(&dir_of(&rec, ctrl));
        for k in &kids {
            assert!(p.contains(k), "{ctrl}: {k} not in {p:?}");
        }
        assert!(!p.contains(&sup), "{ctrl}: supervisor {sup} in {p:?}");
    }
    let (mem, pids, cpu) = (
        dir_of(&rec, "memory"),
        dir_of(&rec, "pids"),
        dir_of(&rec, "cpu"),
    );
    if v2 {
        assert_eq!(read(&mem.join("memory.max")), "268435456");
        assert_eq!(read(&mem.join("memory.low")), "134217728");
        assert_eq!(read(&cpu.join("cpu.max")), "50000 100000");
    } else {
        assert_eq!(read(&mem.join("memory.limit_in_bytes")), "268435456");
        assert_eq!(read(&mem.join("memory.soft_limit_in_bytes")), "134217728");
        assert_eq!(read(&cpu.join("cpu.shares")), "512");
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
    }
    assert_eq!(read(&pids.join("pids.max")), "64");

    sb.ok(&["start", &sb.id]);
    assert_eq!(sb.status(), "running");
    let s = sb.stats();
    assert_eq!(s["memory"]["usage"]["limit"], 268435456u64, "{s}");
    assert!(s["memory"]["usage"]["usage"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["pids"]["limit"], 64, "{s}");
    // gofer, boot, one stub at least.
    assert!(s["pids"]["current"].as_u64().unwrap() >= 3, "{s}");
    let t0 = cpu_total(&s);
    wait_for("the busy loop to use cpu", Duration::from_secs(10), || {
        cpu_total(&sb.stats()) > t0 + 20_000_000
    });

    sb.ok(&["pause", &sb.id]);
    assert_eq!(sb.status(), "paused");
    let e = sb.run(&["pause", &sb.id]);
    assert!(!e.status.success());
    // Only SIGKILL reaches a frozen sandbox.
    let e = sb.run(&["kill", &sb.id, "TERM"]);
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("paused"));
    let t1 = cpu_total(&sb.stats());
    std::thread::sleep(Duration::from_millis(300));
    let t2 = cpu_total(&sb.stats());
    assert_eq!(t1, t2, "cpu time grew while paused");

    sb.ok(&["resume", &sb.id]);
    assert_eq!(sb.status(), "running");
    wait_for(
        "cpu time to grow after resume",
        Duration::from_secs(10),
        || cpu_total(&sb.stats()) > t2 + 20_000_000,
    );

    sb.ok(&["update", "--pids-limit", "100", "--memory", "512m", &sb.id]);
    assert_eq!(read(&pids.join("pids.max")), "100");
    let memfile = if v2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    assert_eq!(read(&mem.join(memfile)), (512u64 << 20).to_string());
    // The sandbox shows the limit the host enforces now.
    let meminfo = sb.ok(&["exec", &sb.id, "/bin/cat", "/proc/meminfo"]);
    assert!(
        meminfo.starts_with(&format!("MemTotal:       {:>8} kB\n", 512 << 10)),
        "{meminfo}"
    );
    let e = sb.run(&["update", "--cpu-shares", "1", &sb.id]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("linux.resources.cpu.shares"));

    // A paused container is not deleted without --force; with it, everything goes.
    sb.ok(&["pause", &sb.id]);
    assert!(!sb.run(&["delete", &sb.id]).status.success());
    sb.ok(&["delete", "--force", &sb.id]);
    for k in &kids {
        wait_for(
            "the sandbox's processes to exit",
            Duration::from_secs(5),
            || !alive(*k),
        );
    }
    assert!(!mem.exists() && !pids.exists(), "cgroup left behind");
    let parent_dir = pids.parent().unwrap();
    assert!(!parent_dir.exists(), "{} left behind", parent_dir.display());
}

#[test]
fn sigkill_ends_a_paused_container() {
    let sb = Sandbox::new(
        "killp",
        "sleep 1000",
        json!({"cgroupsPath": format!("/rvisor-e2e-k{}", std::process::id())}),
    );
    let out = sb.dir.join("out");
    assert!(sb.create(&out).status.success(), "{}", read(&out));
    sb.ok(&["start", &sb.id]);
    let pids = dir_of(&sb.record(), "pids");
    // A second container is not put in a cgroup that holds the first.
    let other = Sandbox::new(
        "killp2",
        "true",
        json!({"cgroupsPath": format!("/rvisor-e2e-k{}", std::process::id())}),
    );
    let o = other.create(&other.dir.join("out"));
    assert!(!o.status.success());
    let msg = read(&other.dir.join("out"));
    assert!(msg.contains("already holds other processes"), "{msg}");
    drop(other);
    assert!(pids.exists());
    // The event stream: stats every interval until the container stops.
    let stream = sb
        .cmd(&["events", "--interval", "100ms", &sb.id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    sb.ok(&["pause", &sb.id]);
    std::thread::sleep(Duration::from_millis(250));
    sb.ok(&["kill", &sb.id, "KILL"]);
    wait_for("the container to stop", Duration::from_secs(5), || {
        sb.status() == "stopped"
    });
    let o = stream.wait_with_output().unwrap();
    assert!(o.status.success());
    let lines: Vec<Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{lines:?}");
    for l in &lines {
        assert_eq!(l["type"], "stats");
        assert!(l["data"]["pids"]["current"].is_u64(), "{l}");
    }
    sb.ok(&["delete", &sb.id]);
    assert!(!pids.exists());
}

/// Each application process costs host tasks (on systrap a stub of two threads, its
/// syscall thread and the application thread, and one sentry thread), so pids.max
/// bounds the application's processes: forks past it fail with EAGAIN inside the
/// sandbox and the host count stays within the limit.
#[test]
fn pids_limit_bounds_the_sandbox() {
    let limit = 40;
    let sb = Sandbox::new(
        "pids",
        // busybox sh gives up at the first failed fork; `exec` needs none.
        "(for i in $(seq 60); do sleep 1000 & echo spawned=$i; done); \
         echo done; exec sleep 1000",
        json!({
            "cgroupsPath": format!("/rvisor-e2e-p{}", std::process::id()),
            "resources": {"pids": {"limit": limit}},
        }),
    );
    let out = sb.dir.join("out");
    assert!(sb.create(&out).status.success(), "{}", read(&out));
    sb.ok(&["start", &sb.id]);
    wait_for("the fork loop", Duration::from_secs(20), || {
        read(&out).contains("done")
    });
    let text = read(&out);
    assert!(text.contains("can't fork"), "no fork failed: {text}");
    let n: u32 = text
        .lines()
        .filter_map(|l| l.strip_prefix("spawned="))
        .next_back()
        .unwrap_or("0")
        .parse()
        .unwrap();
    assert!(n > 2 && n < 60, "{n} sleeps under pids.max={limit}: {text}");
    let s = sb.stats();
    let current = s["pids"]["current"].as_u64().unwrap();
    assert!(
        current <= limit,
        "{current} host tasks over pids.max={limit}"
    );
    eprintln!("pids.max={limit}: {n} sleeps ran, {current} host tasks");
    sb.ok(&["delete", "--force", &sb.id]);
}

#[test]
fn default_cgroup_is_named_after_the_id_and_removed() {
    let sb = Sandbox::new("dflt", "true", json!({}));
    let out = sb.dir.join("out");
    assert!(sb.create(&out).status.success(), "{}", read(&out));
    let pids = dir_of(&sb.record(), "pids");
    assert!(pids.ends_with("dflt"), "{}", pids.display());
    let own = read(Path::new("/proc/self/cgroup"));
    let mine = own
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, c, p) = (f.next()?, f.next()?, f.next()?);
            (c.split(',').any(|c| c == "pids") || c.is_empty()).then(|| p.to_string())
        })
        .unwrap();
    assert!(
        pids.to_string_lossy()
            .ends_with(&format!("{}/dflt", mine.trim_end_matches('/'))),
        "{} not under {mine}",
        pids.display()
    );
    assert!(pids.exists());
    sb.ok(&["delete", &sb.id]);
    assert!(!pids.exists());
}

#[test]
fn bad_limits_name_the_field_and_leave_nothing() {
    let parent = format!("/rvisor-e2e-b{}", std::process::id());
    for (res, field) in [
        (
            json!({"memory": {"limit": -5}}),
            "linux.resources.memory.limit",
        ),
        // Valid syntax the kernel refuses: a CPU this machine does not have.
        (json!({"cpu": {"cpus": "4095"}}), "linux.resources.cpu.cpus"),
    ] {
        let sb = Sandbox::new(
            "bad",
            "true",
            json!({"cgroupsPath": format!("{parent}/bad"), "resources": res}),
        );
        let out = sb.dir.join("out");
        let o = sb.create(&out);
        assert!(!o.status.success());
        let err = read(&out);
        assert!(err.contains(field), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!Path::new("/sys/fs/cgroup/pids").join(&parent[1..]).exists());
        assert!(!Path::new("/sys/fs/cgroup").join(&parent[1..]).exists());
        assert!(!sb.dir.join("state/bad").exists());
    }
}

/// Two containers under one parent that the first one made: whichever leaves last
/// removes the parent.
#[test]
fn shared_parent_goes_with_the_last_container() {
    let parent = format!("/rvisor-e2e-s{}", std::process::id());
    let a = Sandbox::new("sha", "true", json!({"cgroupsPath": format!("{parent}/a")}));
    let b = Sandbox::new("shb", "true", json!({"cgroupsPath": format!("{parent}/b")}));
    for sb in [&a, &b] {
        let out = sb.dir.join("out");
        assert!(sb.create(&out).status.success(), "{}", read(&out));
    }
    let pa = dir_of(&a.record(), "pids");
    let top = pa.parent().unwrap().to_path_buf();
    a.ok(&["delete", &a.id]);
    assert!(!pa.exists());
    assert!(top.exists(), "the parent went while b is in it");
    b.ok(&["delete", &b.id]);
    assert!(!top.exists(), "{} left behind", top.display());
}
