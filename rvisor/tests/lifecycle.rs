//! The OCI lifecycle against a real sandbox: create/start/state/kill/delete/list,
//! the errors every bad request gets, and that nothing of a sandbox outlives it.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A bundle over the host's root (read-only) and a private --root, removed on drop
/// (after a best-effort `delete --force` of every container left).
struct Env {
    dir: PathBuf,
}

impl Env {
    fn new(args: &[&str]) -> Env {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rvisor-lifecycle-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(dir.join("bundle")).unwrap();
        let e = Env { dir };
        e.set_args(args, &[]);
        e
    }

    fn set_args(&self, args: &[&str], hooks: &[(&str, &str)]) {
        let mut hook_obj = serde_json::Map::new();
        for (kind, script) in hooks {
            hook_obj.insert(
                kind.to_string(),
                serde_json::json!([{"path": "/bin/sh", "args": ["sh", "-c", script]}]),
            );
        }
        let cfg = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": args, "cwd": "/", "env": ["PATH=/usr/bin:/bin"],
                        "user": {"uid": 0, "gid": 0}},
            "root": {"path": "/", "readonly": true},
            "hostname": "lc",
            "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "network"}]},
            "annotations": {"io.kubernetes.cri.container-type": "sandbox"},
            "hooks": hook_obj,
        });
        std::fs::write(self.bundle().join("config.json"), cfg.to_string()).unwrap();
    }

    fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }
    fn root(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn rvisor(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rvisor"))
            .arg("--root")
            .arg(self.root())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    }

    /// `create`, whose sandbox keeps this test's stdout/stderr out of the pipe.
    fn create(&self, id: &str, extra: &[&str]) -> Output {
        let errf = self.dir.join(format!("{id}.err"));
        let out = Command::new(env!("CARGO_BIN_EXE_rvisor"))
            .arg("--root")
            .arg(self.root())
            .arg("create")
            .arg("--bundle")
            .arg(self.bundle())
            .args(extra)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.dir.join(format!("{id}.out"))).unwrap())
            .stderr(std::fs::File::create(&errf).unwrap())
            .output()
            .unwrap();
        Output {
            status: out.status,
            stdout: Vec::new(),
            stderr: std::fs::read(&errf).unwrap(),
        }
    }

    fn state(&self, id: &str) -> Value {
        let o = self.rvisor(&["state", id]);
        assert!(o.status.success(), "{}", err(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn wait_status(&self, id: &str, want: &str) -> Value {
        let start = Instant::now();
        loop {
            let s = self.state(id);
            if s["status"] == want {
                return s;
            }
            assert!(start.elapsed() < Duration::from_secs(15), "{id}: {s}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(self.root()) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.rvisor(&["delete", "--force", &id]);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One `rvisor: ...` line, status 1, no panic.
fn refused(o: &Output, want: &str) {
    let e = err(o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(
        e.starts_with("rvisor: ") && e.contains(want),
        "want {want:?}: {e}"
    );
    assert!(!e.contains("panicked"), "{e}");
}

fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let st = s[s.rfind(')').unwrap() + 2..].chars().next();
            st != Some('Z') && st != Some('X')
        })
        .unwrap_or(false)
}

/// Host processes whose parent chain reaches `pid` (the sandbox's boot, gofer, stubs).
fn descendants(pid: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")) {
            for c in s.split_whitespace().filter_map(|c| c.parse().ok()) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

fn gone_within(pids: &[i64], d: Duration) -> bool {
    let start = Instant::now();
    while pids.iter().any(|p| alive(*p)) {
        if start.elapsed() > d {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn create_start_exit_delete() {
    let env = Env::new(&["/bin/sh", "-c", "exit 3"]);
    let pidf = env.dir.join("pid");
    let o = env.create("c1", &["--pid-file", pidf.to_str().unwrap()]);
    assert!(o.status.success(), "{}", err(&o));
    let s = env.state("c1");
    assert_eq!(s["status"], "created");
    assert_eq!(s["id"], "c1");
    assert_eq!(s["ociVersion"], "1.0.2");
    assert_eq!(
        s["annotations"]["io.kubernetes.cri.container-type"],
        "sandbox"
    );
    let pid: i64 = std::fs::read_to_string(&pidf).unwrap().parse().unwrap();
    assert_eq!(s["pid"], pid);
    assert!(alive(pid));

    let o = env.rvisor(&["list"]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let mut lines = text.lines();
    let head: Vec<_> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(head, ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]);
    let row: Vec<_> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        row[..3],
        ["c1".to_string(), pid.to_string(), "created".into()]
    );

    let o = env.rvisor(&["start", "c1"]);
    assert!(o.status.success(), "{}", err(&o));
    let s = env.wait_status("c1", "stopped");
    assert_eq!(s["pid"], 0);
    assert!(gone_within(&[pid], Duration::from_secs(5)));
    refused(&env.rvisor(&["start", "c1"]), "stopped");
    refused(&env.rvisor(&["kill", "c1", "KILL"]), "not running");
    let o = env.rvisor(&["delete", "c1"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(!env.root().join("c1").exists());
    refused(&env.rvisor(&["state", "c1"]), "does not exist");
    // --force on a missing container succeeds, as runc's.
    assert!(env.rvisor(&["delete", "--force", "c1"]).status.success());
}

#[test]
fn kill_running_and_no_stray_process() {
    let env = Env::new(&["/bin/sleep", "60"]);
    assert!(env.create("k1", &[]).status.success());
    let pid = env.state("k1")["pid"].as_i64().unwrap();
    let kids = descendants(pid);
    assert!(kids.len() >= 2, "boot and gofer expected: {kids:?}");
    assert!(env.rvisor(&["start", "k1"]).status.success());
    assert_eq!(env.state("k1")["status"], "running");
    refused(&env.rvisor(&["start", "k1"]), "running");
    refused(&env.rvisor(&["delete", "k1"]), "running");
    let o = env.rvisor(&["kill", "k1", "9"]);
    assert!(o.status.success(), "{}", err(&o));
    env.wait_status("k1", "stopped");
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(env.root().join("k1/state.json")).unwrap())
            .unwrap();
    assert_eq!(v["exit_status"], 128 + 9);
    assert!(gone_within(&kids, Duration::from_secs(5)), "{kids:?}");
    assert!(env.rvisor(&["delete", "k1"]).status.success());
}

#[test]
fn sigkill_of_the_supervisor_and_force_delete() {
    let env = Env::new(&["/bin/sleep", "60"]);
    assert!(env.create("f1", &[]).status.success());
    assert!(env.rvisor(&["start", "f1"]).status.success());
    let pid = env.state("f1")["pid"].as_i64().unwrap();
    let kids = descendants(pid);
    let o = env.rvisor(&["delete", "--force", "f1"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(!env.root().join("f1").exists());
    assert!(gone_within(&kids, Duration::from_secs(5)), "{kids:?}");

    // The supervisor killed from outside: the container reads as stopped.
    assert!(env.create("f2", &[]).status.success());
    let pid = env.state("f2")["pid"].as_i64().unwrap();
    let kids = descendants(pid);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(gone_within(&kids, Duration::from_secs(5)), "{kids:?}");
    env.wait_status("f2", "stopped");
    assert!(env.rvisor(&["delete", "f2"]).status.success());
}

#[test]
fn created_container_can_be_deleted_without_running() {
    let marker = std::env::temp_dir().join(format!("rvisor-never-{}", std::process::id()));
    let env = Env::new(&["/bin/sh", "-c", &format!("echo ran > {}", marker.display())]);
    assert!(env.create("d1", &[]).status.success());
    let pid = env.state("d1")["pid"].as_i64().unwrap();
    let kids = descendants(pid);
    assert!(env.rvisor(&["delete", "d1"]).status.success());
    assert!(gone_within(&kids, Duration::from_secs(5)));
    assert!(!marker.exists());
}

#[test]
fn hooks_run_in_order_with_state_on_stdin() {
    let env = Env::new(&["/bin/true"]);
    let log = env.dir.join("hooks.log");
    let l = log.display();
    let line = |name: &str| format!("read s; echo {name} \"$s\" >> {l}");
    env.set_args(
        &["/bin/true"],
        &[
            ("createRuntime", &line("createRuntime")),
            ("createContainer", &line("createContainer")),
            ("startContainer", &line("startContainer")),
            ("poststart", &line("poststart")),
            ("poststop", &line("poststop")),
        ],
    );
    assert!(env.create("h1", &[]).status.success());
    assert!(env.rvisor(&["start", "h1"]).status.success());
    env.wait_status("h1", "stopped");
    assert!(env.rvisor(&["delete", "h1"]).status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let names: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
    );
    for l in text.lines() {
        let json: Value = serde_json::from_str(l.split_once(' ').unwrap().1).unwrap();
        assert_eq!(json["id"], "h1");
    }
    // A failing hook fails create, which leaves nothing behind.
    env.set_args(&["/bin/true"], &[("createRuntime", "exit 1")]);
    refused(&env.create("h2", &[]), "createRuntime hook");
    assert!(!env.root().join("h2").exists());
}

#[test]
fn bad_requests_get_one_line() {
    let env = Env::new(&["/bin/sleep", "60"]);
    refused(&env.rvisor(&["state", "nope"]), "does not exist");
    refused(&env.rvisor(&["start", "nope"]), "does not exist");
    refused(&env.rvisor(&["kill", "nope"]), "does not exist");
    refused(&env.rvisor(&["delete", "nope"]), "does not exist");
    refused(&env.rvisor(&["state", "a/b"]), "container id");
    let o = Command::new(env!("CARGO_BIN_EXE_rvisor"))
        .arg("--root")
        .arg(env.root())
        .args(["create", "--bundle", "/nonexistent-bundle", "x"])
        .output()
        .unwrap();
    refused(&o, "/nonexistent-bundle");
    assert!(!env.root().join("x").exists());

    assert!(env.create("dup", &[]).status.success());
    refused(&env.create("dup", &[]), "already exists");
    refused(&env.rvisor(&["kill", "dup", "NOSUCHSIG"]), "invalid signal");
    let bad = env.dir.join("proc.json");
    std::fs::write(&bad, "{ not json").unwrap();
    refused(
        &env.rvisor(&["exec", "--process", bad.to_str().unwrap(), "dup"]),
        "invalid process JSON",
    );
    // A program that does not exist fails create, not start.
    env.set_args(&["/no/such/program"], &[]);
    refused(&env.create("np", &[]), "/no/such/program");
    assert!(!env.root().join("np").exists());
    assert!(env.rvisor(&["delete", "--force", "dup"]).status.success());
}
