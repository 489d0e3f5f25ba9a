//! rvisor under a real containerd (Debian's package, installed by tests/setup.sh),
//! driven with `ctr` through `containerd-shim-rvisor-v1`.
//!
//! Each test starts its own containerd on a private socket and root/state
//! directories, with a config that registers the runtime, imports a busybox image
//! built here by hand (layer tar + config + manifest + index), and stops containerd
//! and removes everything when it ends, pass or fail.
//!
//! Binaries: `$RVISOR_BIN` (default: the `rvisor` next to this test's target dir) and
//! `containerd-shim-rvisor-v1` beside it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rvisor_e2e::containerd::Daemon;
use std::time::{Duration, Instant};

const RUNTIME: &str = "io.containerd.rvisor.v1";
const IMAGE: &str = "docker.io/library/rvisor-busybox:test";
const NS: &str = "rvisor-test";

/// An OCI image archive holding a busybox-static rootfs.
fn build_image(work: &Path) -> PathBuf {
    let rootfs = work.join("image-rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    for d in ["tmp", "proc", "dev", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for app in ["sh", "echo", "sleep", "true", "false", "cat", "test", "id"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(app)).unwrap();
    }
    rvisor_e2e::image::archive(
        work,
        &rootfs,
        "image.tar",
        &[rvisor_e2e::image::Image {
            name: IMAGE,
            cmd: &["/bin/sh"],
            ref_name: Some("test"),
        }],
    )
}

/// A private containerd (see `rvisor_e2e::containerd`); its containers are deleted
/// on drop, before it is stopped and its directory removed.
struct Containerd {
    d: Daemon,
}

impl std::ops::Deref for Containerd {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.d
    }
}

impl Containerd {
    fn start(name: &str) -> Containerd {
        let dir = std::env::temp_dir().join(format!("rvisor-ctrd-{name}-{}", std::process::id()));
        Daemon::prepare(&dir, &[]);
        let d = dir.display();
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  level = "info"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.rvisor]
  runtime_type = "{RUNTIME}"
"#
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(dir.join("config.toml"));
        Containerd {
            d: Daemon::spawn(dir, cmd),
        }
    }

    fn ctr_cmd(&self, args: &[&str]) -> Command {
        self.d.ctr_cmd(Some(NS), args)
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.ctr(args);
        assert!(
            o.status.success(),
            "ctr {args:?}: {}\n--- containerd log ---\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn import_image(&self) {
        let tarball = build_image(&self.dir);
        self.ok(&["image", "import", tarball.to_str().unwrap()]);
    }

    fn run(&self, id: &str, args: &[&str]) -> Output {
        let mut full = vec![
            "run",
            "--rm",
            "--snapshotter",
            "native",
            "--runtime",
            RUNTIME,
            IMAGE,
            id,
        ];
        full.extend(args);
        self.ctr(&full)
    }

    fn task_status(&self, id: &str) -> Option<String> {
        let out = self.ok(&["task", "ls"]);
        out.lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.first() == Some(&id))
            .and_then(|f| f.get(2).map(|s| s.to_string()))
    }

    fn wait_task(&self, id: &str, want: &str) {
        let start = Instant::now();
        loop {
            let st = self.task_status(id);
            if st.as_deref() == Some(want) {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{id}: {st:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A detached container running `sleep`.
    fn run_detached(&self, id: &str) {
        self.ok(&[
            "run",
            "-d",
            "--snapshotter",
            "native",
            "--runtime",
            RUNTIME,
            IMAGE,
            id,
            "/bin/sleep",
            "60",
        ]);
        self.wait_task(id, "RUNNING");
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Containers first (their shims and sandboxes); containerd itself is
        // stopped when the daemon is dropped.
        if let Ok(o) = self.ctr_cmd(&["task", "ls", "-q"]).output() {
            for id in String::from_utf8_lossy(&o.stdout).lines() {
                let _ = self.ctr(&["task", "delete", "--force", id]);
            }
        }
        if let Ok(o) = self.ctr_cmd(&["container", "ls", "-q"]).output() {
            for id in String::from_utf8_lossy(&o.stdout).lines() {
                let _ = self.ctr(&["container", "delete", id]);
            }
        }
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn containerd_runs_rvisor_containers() {
    let c = Containerd::start("main");
    c.import_image();

    // The basic run: output through containerd's FIFOs and the exit status. The id is as
    // long as a Kubernetes one (64 hex digits), so the paths of the sockets rvisor makes in
    // its state directory are longer than a sockaddr_un holds.
    let long_id = "0123456789abcdef".repeat(4);
    let o = c.run(&long_id, &["/bin/echo", "hi"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        c.log()
    );
    assert_eq!(stdout(&o), "hi\n");
    let o = c.run("status", &["/bin/sh", "-c", "exit 7"]);
    assert_eq!(
        o.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A program that does not exist: a clean error, nothing left behind.
    let o = c.run("missing", &["/no/such/program"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("/no/such/program"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let _ = c.ctr(&["container", "delete", "missing"]);

    // kill: the exit event reaches containerd and `task ls` says STOPPED.
    let mut events = c
        .ctr_cmd(&["events"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.run_detached("sleeper");
    c.ok(&["task", "kill", "--signal", "SIGKILL", "sleeper"]);
    c.wait_task("sleeper", "STOPPED");
    c.ok(&["task", "delete", "sleeper"]);
    c.ok(&["container", "delete", "sleeper"]);
    let _ = events.kill();
    let ev = events.wait_with_output().unwrap();
    let ev = stdout(&ev);
    assert!(
        ev.lines()
            .any(|l| l.contains("/tasks/exit") && l.contains("sleeper")),
        "{ev}"
    );

    // A detached container deleted while running: nothing of it stays.
    c.run_detached("doomed");
    c.ok(&["task", "delete", "--force", "doomed"]);
    c.ok(&["container", "delete", "doomed"]);

    // A terminal: the app's stdin is a tty. ctr needs a console itself, so it runs
    // under script(1). The long id makes the shim's console socket path long too.
    let cmd = format!(
        "ctr --address {} --namespace {NS} run --rm -t --snapshotter native --runtime {RUNTIME} {IMAGE} {} /bin/sh -c 'test -t 0 && echo is-a-tty'",
        c.dir.join("containerd.sock").display(),
        "fedcba9876543210".repeat(4)
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("is-a-tty"),
        "{}\n{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );

    // Every shim has exited with its containers.
    let start = Instant::now();
    while !c.stray().is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(c.stray().is_empty(), "{:?}", c.stray());
}

/// Issue 11 through containerd: CAP_NET_RAW is off unless the shim's `net-raw` option is
/// set, and a privileged or host-network spec fails the task create with rvisor's line.
#[test]
fn containerd_applies_the_platform_rules() {
    let c = Containerd::start("policy");
    c.import_image();
    let caps = |id: &str| {
        let o = c.run(id, &["/bin/busybox", "grep", "CapBnd", "/proc/self/status"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        stdout(&o)
    };
    // containerd's default set without CAP_NET_RAW.
    assert_eq!(caps("caps1"), "CapBnd:\t00000000a80405fb\n");
    for (flag, want) in [
        (
            "--privileged",
            "is a host device, which a sandbox does not pass through (privileged)",
        ),
        (
            "--net-host",
            "config.json: linux.namespaces: no network namespace",
        ),
    ] {
        let o = c.ctr(&[
            "run",
            "--rm",
            flag,
            "--snapshotter",
            "native",
            "--runtime",
            RUNTIME,
            IMAGE,
            "refused",
            "/bin/true",
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{flag}: {err}");
        assert!(err.contains(want), "{flag}: {err}");
        let _ = c.ctr(&["container", "delete", "refused"]);
    }
    // With net-raw the spec decides: ctr's default set has CAP_NET_RAW.
    std::fs::write(c.dir.join("rvisor.toml"), "net-raw = true\n").unwrap();
    assert_eq!(caps("caps2"), "CapBnd:\t00000000a80425fb\n");
    let start = Instant::now();
    while !c.stray().is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(c.stray().is_empty(), "{:?}", c.stray());
}

#[test]
fn containerd_exec_and_ps() {
    let c = Containerd::start("exec");
    c.import_image();
    c.run_detached("box");
    let o = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "box",
        "/bin/echo",
        "from-exec",
    ]);
    assert_eq!(
        stdout(&o),
        "from-exec\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The exec'd process's exit status comes back through ctr.
    let o = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e2",
        "box",
        "/bin/sh",
        "-c",
        "exit 5",
    ]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A detached exec shows in ps beside the container's init.
    c.ok(&[
        "task",
        "exec",
        "-d",
        "--exec-id",
        "e3",
        "box",
        "/bin/sleep",
        "30",
    ]);
    let ps = c.ok(&["task", "ps", "box"]);
    assert!(ps.lines().count() >= 3, "{ps}");
    // `sleep` as the container's init has no SIGTERM handler, so (as under runc)
    // only SIGKILL ends it; its exec'd processes go with it.
    c.ok(&["task", "kill", "--signal", "SIGKILL", "box"]);
    c.wait_task("box", "STOPPED");
}

/// `ctr task pause/resume` freeze and thaw the sandbox's cgroup (containerd names
/// it `/<namespace>/<id>`), and `ctr task metrics` decodes the shim's cgroup v1
/// figures.
#[test]
fn containerd_pause_resume_and_metrics() {
    let c = Containerd::start("pause");
    c.import_image();
    c.run_detached("frozen");
    let mut events = c
        .ctr_cmd(&["events"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = events.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    // `ctr events` subscribes a moment after it starts: a namespace label change is
    // a harmless event that shows the subscription is live before the real ones.
    let mut live = false;
    for i in 0..20 {
        c.ok(&["namespaces", "label", NS, &format!("rvisor-probe={i}")]);
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
            live = l.contains("/namespaces/update");
            if live {
                break;
            }
        }
    }
    assert!(live, "ctr events never reported the probe");
    while rx.try_recv().is_ok() {}
    c.ok(&["task", "pause", "frozen"]);
    c.wait_task("frozen", "PAUSED");
    let freezer = Path::new("/sys/fs/cgroup/freezer")
        .join(NS)
        .join("frozen/freezer.state");
    if Path::new("/sys/fs/cgroup/freezer").exists() {
        assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "FROZEN");
    }
    c.ok(&["task", "resume", "frozen"]);
    c.wait_task("frozen", "RUNNING");
    // The events reach `ctr events` through containerd, a moment after the calls.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !["/tasks/paused", "/tasks/resumed"]
        .iter()
        .all(|t| seen.iter().any(|l: &String| l.contains(t)))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("no paused/resumed events: {seen:?}"),
        }
    }
    let _ = events.kill();
    let _ = events.wait();

    let m = c.ok(&["task", "metrics", "--format", "json", "frozen"]);
    let v: serde_json::Value = serde_json::from_str(&m).unwrap_or_else(|e| panic!("{e}: {m}"));
    // ctr prints the decoded io.containerd.cgroups.v1.Metrics itself.
    let data = &v;
    assert!(data["pids"]["current"].as_u64().unwrap_or(0) >= 3, "{m}");
    assert!(
        data["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{m}"
    );
    assert!(
        data["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0,
        "{m}"
    );
    let table = c.ok(&["task", "metrics", "frozen"]);
    assert!(table.contains("pids.current"), "{table}");

    c.ok(&["task", "kill", "--signal", "SIGKILL", "frozen"]);
    c.wait_task("frozen", "STOPPED");
    c.ok(&["task", "delete", "frozen"]);
    c.ok(&["container", "delete", "frozen"]);
    assert!(!Path::new("/sys/fs/cgroup/pids")
        .join(NS)
        .join("frozen")
        .exists());
}

/// Host pids of processes whose command line mentions `needle` (not this test's).
fn pids_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    rvisor_e2e::host_processes()
        .into_iter()
        .filter(|(pid, dir)| {
            *pid != me
                && std::fs::read(dir.join("cmdline")).is_ok_and(|cmd| {
                    String::from_utf8_lossy(&cmd)
                        .replace('\0', " ")
                        .contains(needle)
                })
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// Host processes descending from `pid` (its children, theirs, ...).
fn descendants(pid: i32) -> Vec<i32> {
    // (pid, parent) of every process, read once.
    let parents: Vec<(i32, i32)> = rvisor_e2e::host_processes()
        .into_iter()
        .filter_map(|(p, dir)| {
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            // Field 4 (after the parenthesised name) is the parent pid.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<i32>().ok())?;
            Some((p, ppid))
        })
        .collect();
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        for &(p, ppid) in &parents {
            if ppid == parent && !all.contains(&p) {
                all.push(p);
            }
        }
        i += 1;
    }
    all
}

#[test]
fn killed_shim_leaves_no_sandbox_behind() {
    let c = Containerd::start("shimkill");
    c.import_image();
    c.run_detached("orphan");
    // This containerd's shims only (other tests run their own at the same time).
    let shims: Vec<i32> = c
        .stray()
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("containerd-shim-rvisor-v1"))
        .map(|(pid, _)| pid)
        .collect();
    let shim = *shims
        .iter()
        .find(|p| descendants(**p).len() > 1)
        .unwrap_or_else(|| panic!("no shim with children: {shims:?}"));
    // Everything of the sandbox: the shim's tree and rvisor processes naming the id.
    let mut sandbox = descendants(shim);
    sandbox.extend(pids_mentioning("orphan"));
    sandbox.sort_unstable();
    sandbox.dedup();
    // The shim, the sandbox's supervisor, gofer, sentry and the app's stub at least.
    assert!(sandbox.len() >= 5, "sandbox processes: {sandbox:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // containerd notices, runs the shim's cleanup (`delete`), and the task ends.
    let start = Instant::now();
    let alive = |p: &i32| {
        Path::new(&format!("/proc/{p}")).exists() && {
            let st = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            !st.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        }
    };
    while sandbox.iter().any(alive) && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left: Vec<i32> = sandbox.iter().copied().filter(alive).collect();
    assert!(
        left.is_empty(),
        "still running after the shim was killed: {left:?}"
    );
    let _ = c.ctr(&["task", "delete", "--force", "orphan"]);
    let _ = c.ctr(&["container", "delete", "orphan"]);
}
