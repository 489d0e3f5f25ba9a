//! End-to-end tests of the `rvisor` binary: flags, bundles, `spec`, and (those named
//! `sandbox_*`) running programs in a real sandbox, which needs the sentry and gofer.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use oci_spec::runtime::Spec;

fn rvisor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rvisor"))
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "rvisor-cli-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure of rvisor itself: status 1, exactly one stderr line, naming `want`.
fn assert_refused(o: &Output, want: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains(want), "want {want:?} in stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

/// `run` on a bundle whose config.json is `json` (None: no config.json) and whose
/// rootfs directory exists when `rootfs` is true.
fn run_bundle(json: Option<&str>, rootfs: bool) -> Output {
    let bundle = TempDir::new();
    let state = TempDir::new();
    if let Some(j) = json {
        std::fs::write(bundle.path().join("config.json"), j).unwrap();
    }
    if rootfs {
        std::fs::create_dir(bundle.path().join("rootfs")).unwrap();
    }
    run(rvisor()
        .arg("--root")
        .arg(state.path())
        .arg("run")
        .arg("--bundle")
        .arg(bundle.path())
        .arg("c1"))
}

const CONFIG: &str = r#"{
  "ociVersion": "1.0.2",
  "process": {
    "user": {"uid": 0, "gid": 0},
    "args": ["/bin/sh", "-c", "exit 7"],
    "env": ["PATH=/usr/bin:/bin"],
    "cwd": "/",
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
  },
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "t",
  "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "network"}]}
}"#;

#[test]
fn help_lists_commands_but_not_internal_ones() {
    let o = run(rvisor().arg("--help"));
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    for cmd in [
        "do",
        "spec",
        "run",
        "--platform",
        "--strace",
        "--debug-log",
        "--overlay",
    ] {
        assert!(out.contains(cmd), "{cmd} missing from help: {out}");
    }
    // The "Commands:" section, up to the blank line that ends it (option help can
    // run over several indented lines too).
    let listed: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        listed,
        [
            "do",
            "spec",
            "run",
            "create",
            "start",
            "state",
            "kill",
            "delete",
            "list",
            "ps",
            "exec",
            "pause",
            "resume",
            "events",
            "update",
            "check-node",
            "install",
            "help"
        ],
        "{out}"
    );
    assert!(!out.contains("supervise"), "{out}");
    let o = run(rvisor().args(["do", "--help"]));
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("--rootfs"));
}

#[test]
fn bad_global_flag_values_name_the_flag() {
    for (flag, name) in [
        ("--platform=vmware", "--platform"),
        ("--overlay=disk", "--overlay"),
        ("--network=wifi", "--network"),
        ("--log-format=xml", "--log-format"),
    ] {
        let o = run(rvisor().args([flag, "do", "--", "/bin/true"]));
        assert_eq!(o.status.code(), Some(1), "{flag}");
        assert!(stderr(&o).contains(name), "{flag}: {}", stderr(&o));
    }
}

#[test]
fn unsupported_network_modes_are_refused() {
    // `do --network=sandbox` takes the interface of the namespace it runs in: never
    // the host's (pid 1's, or, where pid 1's cannot be read, any that is not a
    // named `ip netns` one), whose addresses the node needs.
    let same = |a: &str, b: &str| {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            (Ok(_), Err(_)) => true,
            _ => false,
        }
    };
    if same("/proc/self/ns/net", "/proc/1/ns/net") {
        let state = TempDir::new();
        let o = run(rvisor().arg("--root").arg(state.path()).args([
            "--network=sandbox",
            "do",
            "--",
            "/bin/true",
        ]));
        assert_refused(&o, "may be the host's network namespace");
    }
}

#[test]
fn bad_do_flags_are_refused() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--cwd", "tmp"],
            "--cwd: must be an absolute path, got \"tmp\"",
        ),
        (
            &["--env", "NOVALUE"],
            "--env: must be KEY=VALUE, got \"NOVALUE\"",
        ),
        (&["--user", "bob"], "--user: expected UID[:GID]"),
        (
            &["--rootfs", "/nonexistent-rvisor-dir"],
            "--rootfs: /nonexistent-rvisor-dir does not exist",
        ),
        (
            &["--rootfs", "/etc/passwd"],
            "--rootfs: /etc/passwd is not a directory",
        ),
        (
            &["--hostname", &"h".repeat(65)],
            "--hostname: longer than 64 bytes",
        ),
    ];
    for (flags, want) in cases {
        let o = run(rvisor().arg("do").args(*flags).args(["--", "/bin/true"]));
        assert_refused(&o, want);
    }
    let o = run(rvisor().arg("do"));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("CMD"), "{}", stderr(&o));
    // A platform that is not built yet is refused by name, before anything starts.
    let o = run(rvisor().args(["--platform=kvm", "do", "--", "/bin/true"]));
    assert_refused(&o, "--platform=kvm: not built yet");
}

#[test]
fn bad_log_destinations_are_refused() {
    let o = run(rvisor().args([
        "--log",
        "/nonexistent-rvisor-dir/x.log",
        "spec",
        "--bundle",
        "/nonexistent",
    ]));
    assert_refused(&o, "--log: cannot open /nonexistent-rvisor-dir/x.log");
    let o = run(rvisor().args(["--debug-log", "/proc/rvisor-nope", "spec"]));
    assert_refused(&o, "--debug-log: cannot create /proc/rvisor-nope");
}

#[test]
fn spec_writes_a_default_bundle_config() {
    let b = TempDir::new();
    let o = run(rvisor().arg("spec").arg("--bundle").arg(b.path()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let spec = Spec::load(b.path().join("config.json")).unwrap();
    let p = spec.process().as_ref().unwrap();
    assert_eq!(p.args().as_deref(), Some(&["sh".to_string()][..]));
    assert_eq!(p.terminal(), Some(false));
    assert_eq!(p.cwd(), Path::new("/"));
    assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
    assert!(p
        .env()
        .as_ref()
        .unwrap()
        .iter()
        .any(|e| e.starts_with("PATH=")));
    let root = spec.root().as_ref().unwrap();
    assert_eq!(root.path(), Path::new("rootfs"));
    assert_eq!(root.readonly(), Some(true));
    assert_eq!(spec.hostname().as_deref(), Some("rvisor"));
    assert!(spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .any(|m| m.destination() == Path::new("/proc")));

    // Like runc, an existing config.json is not overwritten.
    let o = run(rvisor().arg("spec").arg("--bundle").arg(b.path()));
    assert_refused(&o, "config.json already exists");

    // The spec's own output passes run's validation up to the missing rootfs.
    let state = TempDir::new();
    let o = run(rvisor()
        .arg("--root")
        .arg(state.path())
        .arg("run")
        .arg("--bundle")
        .arg(b.path())
        .arg("x"));
    assert_refused(
        &o,
        &format!(
            "config.json: root.path: {}/rootfs does not exist",
            b.path().display()
        ),
    );
}

#[test]
fn run_refuses_bad_bundles_naming_the_field() {
    let o = run_bundle(None, true);
    assert_refused(&o, "config.json: cannot read ");
    assert!(stderr(&o).contains("No such file or directory"));

    let o = run_bundle(
        Some("{\n  \"process\": {\n    \"args\": [\"a\",\n  }\n}"),
        true,
    );
    assert_refused(&o, "config.json: invalid JSON at line 4 column 3: ");

    let cases = [
        (
            CONFIG.replace(r#""args": ["/bin/sh", "-c", "exit 7"],"#, ""),
            "config.json: process.args: missing",
        ),
        (
            CONFIG.replace(r#"["/bin/sh", "-c", "exit 7"]"#, "[]"),
            "config.json: process.args: must not be empty",
        ),
        (
            CONFIG.replace(r#""cwd": "/""#, r#""cwd": "tmp""#),
            "config.json: process.cwd: must be an absolute path, got \"tmp\"",
        ),
        (
            CONFIG.replace("RLIMIT_NOFILE", "RLIMIT_FROBS"),
            "config.json: process.rlimits[0].type: unknown rlimit \"RLIMIT_FROBS\"",
        ),
        (
            CONFIG.replace(r#""soft": 1024"#, r#""soft": 4096"#),
            "process.rlimits[0]: soft limit 4096 exceeds hard limit 1024",
        ),
        (
            CONFIG.replace(r#""cwd": "/","#, r#""cwd": "/", "terminal": true,"#),
            "config.json: process.terminal: true needs a console socket",
        ),
        (
            CONFIG.replace(r#""uid": 0"#, r#""uid": "root""#),
            "config.json: process.user.uid: must be an integer",
        ),
        (
            CONFIG.replace(
                r#""namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "network"}]"#,
                r#""namespaces": 3"#,
            ),
            "config.json: linux: ",
        ),
    ];
    for (json, want) in &cases {
        assert_refused(&run_bundle(Some(json), true), want);
    }
    let o = run_bundle(Some(CONFIG), false);
    assert_refused(&o, "config.json: root.path: ");
    assert!(
        stderr(&o).contains("/rootfs does not exist"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn run_refuses_bad_ids() {
    let b = TempDir::new();
    for id in ["a/b", "..", "a b"] {
        let o = run(rvisor()
            .args(["--root"])
            .arg(b.path())
            .args(["run", "--bundle"])
            .arg(b.path())
            .arg(id));
        assert_refused(&o, "container id: ");
    }
}

#[test]
fn boot_and_gofer_refuse_bad_fds() {
    let o = run(rvisor().args(["boot", "--config-fd=99", "--gofer-fd=98"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("rvisor boot: --config-fd=99: not an open fd"),
        "{}",
        stderr(&o)
    );
    let o = run(rvisor().args(["boot", "--config-fd=0", "--gofer-fd=98"]));
    assert!(
        stderr(&o).contains("--config-fd=0: must not be a standard stream"),
        "{}",
        stderr(&o)
    );
    let o = run(rvisor().args(["gofer", "--root=/", "--sock-fd=97"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("rvisor gofer: --sock-fd=97: not an open fd"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn debug_log_gets_one_file_per_process() {
    let d = TempDir::new();
    let logs = d.path().join("logs");
    let o = run(rvisor()
        .arg(format!("--debug-log={}", logs.display()))
        .args(["--log-format=json", "do", "--", "/bin/true"]));
    let mut names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?} {}", stderr(&o));
    let id = names[0].strip_suffix(".boot.log").unwrap();
    assert!(id.starts_with("do-"), "{names:?}");
    assert_eq!(names[1], format!("{id}.cli.log"));
    assert_eq!(names[2], format!("{id}.gofer.log"));
    for (name, want) in [
        ("boot", "booting sandbox"),
        ("gofer", "gofer serving"),
        ("cli", "boot started"),
    ] {
        let text = std::fs::read_to_string(logs.join(format!("{id}.{name}.log"))).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert!(
            first["time"].is_string() && first["level"].is_string(),
            "{text}"
        );
        assert!(text.contains(want), "{name}: {text}");
    }
}

// ---- These run real programs: they need the sentry and the gofer. ----

fn run_do(args: &[&str]) -> Output {
    run(rvisor().arg("do").args(args))
}

#[test]
fn sandbox_true_exits_zero() {
    let o = run_do(&["--", "/bin/true"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn sandbox_exit_status_passes_through() {
    let o = run_do(&["--", "/bin/sh", "-c", "exit 42"]);
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
}

#[test]
fn sandbox_killed_by_signal_is_128_plus_n() {
    let o = run_do(&["--", "/bin/sh", "-c", "kill -TERM $$"]);
    assert_eq!(o.status.code(), Some(128 + 15), "{}", stderr(&o));
}

#[test]
fn sandbox_env_cwd_and_user_without_fork() {
    let o = run_do(&[
        "--env",
        "RVISOR_T=ok",
        "--cwd",
        "/tmp",
        "--user",
        "1234:99",
        "--",
        "/bin/sh",
        "-c",
        "echo $RVISOR_T $PWD",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ok /tmp\n");
    let o = run_do(&["--user", "1234:99", "--", "/bin/busybox", "id"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.starts_with("uid=1234 gid=99"), "{out}");
}

#[test]
fn sandbox_stdout_env_cwd_and_user() {
    let o = run_do(&[
        "--env",
        "RVISOR_T=ok",
        "--cwd",
        "/tmp",
        "--user",
        "1234:99",
        "--",
        "/bin/sh",
        "-c",
        "echo $RVISOR_T $(pwd) $(id -u) $(id -g)",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ok /tmp 1234 99\n");
}

#[test]
fn sandbox_run_bundle_with_host_root() {
    let b = TempDir::new();
    let state = TempDir::new();
    let json = CONFIG.replace(r#""path": "rootfs""#, r#""path": "/""#);
    std::fs::write(b.path().join("config.json"), json).unwrap();
    let o = run(rvisor()
        .arg("--root")
        .arg(state.path())
        .arg("run")
        .arg("--bundle")
        .arg(b.path())
        .arg("c7"));
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    // The state entry is gone once the container has exited.
    assert!(!state.path().join("c7").exists());
}

/// `rvisor ARGS` with signal `sig` set to `action` (SIG_DFL or SIG_IGN) as it starts.
fn rvisor_with_signal(args: &[&str], sig: i32, action: libc::sighandler_t) -> Command {
    let mut cmd = rvisor();
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped());
    // SAFETY: signal() is async-signal-safe and only changes the child's disposition.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            libc::signal(sig, action);
            Ok(())
        });
    }
    cmd
}

/// Waits up to `limit` for `child`; kills it and fails with `what` past that.
fn wait_within(child: &mut std::process::Child, limit: Duration, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sandbox_sigterm_to_cli_reaches_the_app() {
    // A caller that ignores SIGTERM (a CI runner may) passes that on, and rvisor, like
    // any program, keeps ignoring it: this test is about a SIGTERM rvisor takes.
    let mut child = rvisor_with_signal(
        &["do", "--", "/bin/sleep", "30"],
        libc::SIGTERM,
        libc::SIG_DFL,
    )
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_within(
        &mut child,
        Duration::from_secs(10),
        "rvisor did not exit after SIGTERM",
    );
    assert_eq!(status.code(), Some(128 + 15));
}

#[test]
fn an_ignored_sigchld_from_the_caller_does_not_hang_rvisor() {
    // With SIGCHLD ignored the kernel would reap gofer and boot by itself: rvisor waited
    // forever for boot's status. It must take SIGCHLD back and report the app's status.
    let args = ["do", "--", "/bin/sh", "-c", "echo hi; exit 3"];
    let mut child = rvisor_with_signal(&args, libc::SIGCHLD, libc::SIG_IGN)
        .spawn()
        .unwrap();
    let status = wait_within(
        &mut child,
        Duration::from_secs(20),
        "rvisor hung with SIGCHLD ignored",
    );
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!((status.code(), out.as_str()), (Some(3), "hi\n"));
}
