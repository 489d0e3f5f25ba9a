//! A private containerd for the tests that drive rvisor through it
//! (tests/containerd.rs with `ctr`, tests/cri.rs with a CRI client): its directory
//! with `bin/` holding rvisor and its shim, the daemon started on a private socket
//! and waited for, its log, and on drop the daemon stopped, the rvisor processes it
//! left killed (by pid), its mounts and directory removed.
//!
//! Each test writes its own `config.toml` (and the shim's `rvisor.toml`) into
//! [`Daemon::prepare`]'s directory and says how containerd is run (directly, or in
//! a network namespace of its own); the rest is here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long containerd may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long it may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The rvisor binary under test: `$RVISOR_BIN`, or the `rvisor` of the target
/// directory this test binary was built into.
pub fn rvisor_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RVISOR_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test>-XXXX -> target/<profile>/rvisor
    let me = std::env::current_exe().unwrap();
    me.parent().unwrap().parent().unwrap().join("rvisor")
}

/// A containerd started for one test.
pub struct Daemon {
    /// Its directory: `config.toml`, `containerd.sock`, `containerd.log`, `bin/`,
    /// its root and state.
    pub dir: PathBuf,
    child: Option<Child>,
    /// Leave the directory in place on drop (to read it after a failure).
    pub keep_dir: bool,
}

impl Daemon {
    /// Runs tests/setup.sh, then makes `dir` afresh with `bin/rvisor` and
    /// `bin/containerd-shim-rvisor-v1` (links to the binaries under test) and the
    /// subdirectories `extra`.
    pub fn prepare(dir: &Path, extra: &[&str]) {
        let st = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/setup.sh"))
            .status()
            .unwrap();
        assert!(st.success(), "tests/setup.sh failed");
        let _ = std::fs::remove_dir_all(dir);
        for d in std::iter::once(&"bin").chain(extra) {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let rvisor = rvisor_bin();
        let shim = rvisor.with_file_name("containerd-shim-rvisor-v1");
        assert!(
            rvisor.exists(),
            "{} missing: build rvisor",
            rvisor.display()
        );
        assert!(shim.exists(), "{} missing: build the shim", shim.display());
        std::os::unix::fs::symlink(&rvisor, dir.join("bin/rvisor")).unwrap();
        std::os::unix::fs::symlink(&shim, dir.join("bin/containerd-shim-rvisor-v1")).unwrap();
    }

    /// Starts `cmd` (containerd, or a wrapper that execs it: its pid must be
    /// containerd's) with `dir/bin` first in its `PATH`, the shim's options at
    /// `dir/rvisor.toml` and its output in `dir/containerd.log`, and waits until
    /// it answers on `dir/containerd.sock`.
    pub fn spawn(dir: PathBuf, mut cmd: Command) -> Daemon {
        let path = format!(
            "{}:{}",
            dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = cmd
            .env("PATH", path)
            .env("RVISOR_SHIM_CONFIG", dir.join("rvisor.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Daemon {
            dir,
            child: Some(child),
            keep_dir: false,
        };
        let start = Instant::now();
        while !d.ctr(None, &["version"]).status.success() {
            assert!(
                start.elapsed() < START_TIMEOUT,
                "containerd did not start: {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    /// containerd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// Its gRPC socket.
    pub fn sock(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// containerd's pid (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// `ctr` on this containerd, in namespace `ns` when given, with `args`.
    pub fn ctr_cmd(&self, ns: Option<&str>, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(self.sock());
        if let Some(ns) = ns {
            cmd.args(["--namespace", ns]);
        }
        cmd.args(args).stdin(Stdio::null());
        cmd
    }

    /// Runs [`Daemon::ctr_cmd`] and returns its output.
    pub fn ctr(&self, ns: Option<&str>, args: &[&str]) -> Output {
        self.ctr_cmd(ns, args).output().unwrap()
    }

    /// Host processes of rvisor and of its shim whose command line names this
    /// containerd's directory: (pid, command line).
    pub fn stray(&self) -> Vec<(i32, String)> {
        let me = self.dir.to_string_lossy().into_owned();
        let mut out = Vec::new();
        for (pid, dir) in crate::host_processes() {
            let Ok(cmd) = std::fs::read(dir.join("cmdline")) else {
                continue;
            };
            // argv[0] up to its NUL: the binary's path may hold spaces (a checkout
            // in "/tmp/ci space/").
            let argv0 =
                String::from_utf8_lossy(cmd.split(|&b| b == 0).next().unwrap_or(&[])).into_owned();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let ours = argv0.ends_with("rvisor") || argv0.ends_with("containerd-shim-rvisor-v1");
            if ours && cmd.contains(&me) {
                out.push((pid, cmd));
            }
        }
        out
    }

    /// Stops containerd (SIGTERM, SIGKILL after [`STOP_TIMEOUT`]), then kills, each
    /// by its pid, the shims and sandboxes it could not end (a failed test).
    /// Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            let start = Instant::now();
            while c.try_wait().ok().flatten().is_none() && start.elapsed() < STOP_TIMEOUT {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for (pid, _) in self.stray() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        // Their mounts and cgroups go once they are reaped.
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        // Snapshots may still be bind-mounted if a shim died mid-way.
        let _ = Command::new("umount")
            .arg("-R")
            .arg("-l")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status();
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
