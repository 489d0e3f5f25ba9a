//! The [`Runtime`] that drives the `rvisor` CLI (create/start/kill/delete/exec/ps/
//! events/update/pause/resume); the shim never touches a sandbox directly.
//!
//! `rvisor create` leaves a supervisor process whose exit status is the container's,
//! and `rvisor exec --detach` a waiting `rvisor exec` whose exit status is the
//! process's; both are reparented to the shim (a subreaper), whose reaper reports
//! their exits. Container state lives in `<bundle>/../.rvisor` (inside containerd's
//! own state dir, per namespace).
//!
//! Every command runs with `--log FILE --log-format json`: a failure's line there
//! carries its kind ([`rvisor_api::ErrorKind`]), so the shim never reads stderr's words.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio as ProcStdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rvisor_api::{ErrorKind, Stats, KIND_FIELD};

use crate::error::{internal, Error, Result};
use crate::io;
use crate::options::Options;
use crate::reaper::Reaper;
use crate::runtime::{OnOom, Runtime, Spawned, Target};
use crate::state::Stdio;

/// The rvisor CLI as a [`Runtime`].
pub struct Cli {
    opts: Result<Options>,
    reaper: Arc<Reaper>,
}

/// How often the OOM watch of a container (`rvisor events`) looks at its cgroup.
const OOM_INTERVAL: &str = "1s";

/// Numbers the log files of concurrent commands.
static NEXT_LOG: AtomicU64 = AtomicU64::new(0);

/// A command's `--log` file, removed when dropped.
struct LogFile(PathBuf);

impl LogFile {
    fn new(bundle: &str, what: &str) -> LogFile {
        let n = NEXT_LOG.fetch_add(1, Ordering::Relaxed);
        let p = PathBuf::from(format!("{bundle}/rvisor-{what}.{n}.log"));
        let _ = std::fs::remove_file(&p);
        LogFile(p)
    }

    /// The kind and message of the last error line rvisor logged.
    fn failure(&self) -> Option<(ErrorKind, String)> {
        let text = std::fs::read_to_string(&self.0).ok()?;
        failure_in_log(&text)
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The kind and message of the last error line of a JSON log (rvisor's `--log`).
fn failure_in_log(text: &str) -> Option<(ErrorKind, String)> {
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["level"]
                .as_str()
                .is_some_and(|l| l.eq_ignore_ascii_case("error"))
        })
        .find_map(|v| {
            let msg = v.get("msg").or_else(|| v.get("message"))?.as_str()?;
            let kind = v[KIND_FIELD]
                .as_str()
                .map_or(ErrorKind::Other, ErrorKind::parse);
            Some((kind, msg.to_string()))
        })
}

/// rvisor's state directory for the containers of one containerd namespace.
fn state_root(bundle: &str) -> PathBuf {
    Path::new(bundle)
        .parent()
        .map(|p| p.join(".rvisor"))
        .unwrap_or_else(|| PathBuf::from("/run/containerd/rvisor"))
}

fn read_pid(path: &str, what: &str) -> Result<u32> {
    let pid = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| internal(format!("{what} wrote no pid")));
    let _ = std::fs::remove_file(path);
    pid
}

impl Cli {
    /// A driver with these options (an options error fails every request).
    pub fn new(opts: std::result::Result<Options, String>, reaper: Arc<Reaper>) -> Cli {
        Cli {
            opts: opts.map_err(Error::InvalidArgument),
            reaper,
        }
    }

    /// `rvisor --root <state> <global flags> --log LOG --log-format json ARGS...`.
    fn command(&self, bundle: &str, log: &LogFile, args: &[&str]) -> Result<Command> {
        let o = self.opts.as_ref().map_err(Clone::clone)?;
        let mut cmd = Command::new(o.binary());
        cmd.arg("--root").arg(state_root(bundle));
        cmd.args(o.global_args());
        cmd.arg("--log").arg(&log.0).args(["--log-format", "json"]);
        cmd.args(args);
        Ok(cmd)
    }

    /// The error for a command that exited with `code`: the kind rvisor logged.
    fn failed(what: &str, log: &LogFile, code: i32, stderr: &str) -> Error {
        match log.failure() {
            Some((kind, msg)) => Error::from_rvisor(kind, msg),
            None => {
                let said = stderr.trim();
                Error::Unknown(if said.is_empty() {
                    format!("rvisor {what} failed with status {code}")
                } else {
                    said.to_string()
                })
            }
        }
    }

    /// Runs `rvisor ARGS` to completion and returns its stdout.
    fn run(&self, bundle: &str, args: &[&str]) -> Result<String> {
        let what = args.first().copied().unwrap_or("rvisor");
        let log = LogFile::new(bundle, what);
        let mut cmd = self.command(bundle, &log, args)?;
        cmd.stdout(ProcStdio::piped())
            .stderr(ProcStdio::piped())
            .stdin(ProcStdio::null());
        let (mut child, rx) = self.reaper.spawn(&mut cmd)?;
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let code = rx
            .recv()
            .map_err(|_| internal(format!("lost the exit status of rvisor {what}")))?;
        if code != 0 {
            return Err(Cli::failed(what, &log, code, &err));
        }
        Ok(out)
    }

    /// Runs `rvisor create` or `rvisor exec --detach` (ARGS, then `--pid-file`,
    /// `--console-socket` with a terminal, then the id), which leave a process behind
    /// and exit. The process inherits the command's stdio, so the FIFOs are its
    /// stdio (null with a terminal, whose slave the process gets instead); the
    /// command's own error then goes to the log.
    fn run_detached(&self, t: Target, what: &str, args: &[&str], stdio: &Stdio) -> Result<Spawned> {
        let log = LogFile::new(t.bundle, what);
        let pid_file = format!("{}/{what}.pid", t.bundle);
        let console_path = format!("{}/{what}.sock", t.bundle);
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--pid-file", &pid_file]);
        let listener = if stdio.terminal {
            full.extend(["--console-socket", &console_path]);
            Some(io::bind_console(&console_path)?)
        } else {
            None
        };
        full.push(t.id);
        let mut cmd = self.command(t.bundle, &log, &full)?;
        cmd.current_dir(t.bundle);
        let stdin = io::open_fifo(&stdio.stdin)?;
        let stdout = io::open_fifo(&stdio.stdout)?;
        let stderr = io::open_fifo(&stdio.stderr)?;
        let inherit = |f: Option<&File>| {
            if stdio.terminal {
                Ok(ProcStdio::null())
            } else {
                io::child_stdio(f)
            }
        };
        cmd.stdin(inherit(stdin.as_ref())?)
            .stdout(inherit(stdout.as_ref())?)
            .stderr(inherit(stderr.as_ref())?);
        let (_child, rx) = self.reaper.spawn(&mut cmd)?;
        let code = rx
            .recv()
            .map_err(|_| internal(format!("lost the exit status of rvisor {what}")))?;
        if code != 0 {
            return Err(Cli::failed(what, &log, code, ""));
        }
        let pid = read_pid(&pid_file, &format!("rvisor {what}"))?;
        let console = match &listener {
            Some(l) => Some(io::attach_console(l, &console_path, stdin, stdout)?),
            None => None,
        };
        Ok(Spawned { pid, console })
    }

    /// Where an exec's process spec is kept until the exec is deleted.
    fn exec_spec_path(t: Target, exec_id: &str) -> String {
        format!("{}/exec-{exec_id}.json", t.bundle)
    }
}

impl Runtime for Cli {
    fn create(&self, t: Target, stdio: &Stdio) -> Result<Spawned> {
        let bundle = t.bundle;
        self.run_detached(t, "create", &["create", "--bundle", bundle], stdio)
    }

    fn start(&self, t: Target) -> Result<()> {
        self.run(t.bundle, &["start", t.id]).map(drop)
    }

    fn kill(&self, t: Target, signal: u32, all: bool) -> Result<()> {
        let sig = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([t.id, sig.as_str()]);
        self.run(t.bundle, &args).map(drop)
    }

    fn delete(&self, t: Target) -> Result<()> {
        self.run(t.bundle, &["delete", "--force", t.id]).map(drop)
    }

    fn exec(&self, t: Target, exec_id: &str, spec: &[u8], stdio: &Stdio) -> Result<Spawned> {
        let spec_path = Cli::exec_spec_path(t, exec_id);
        std::fs::write(&spec_path, spec)
            .map_err(|e| internal(format!("write {spec_path}: {e}")))?;
        let what = format!("exec-{exec_id}");
        let args = ["exec", "--detach", "--process", &spec_path];
        self.run_detached(t, &what, &args, stdio)
    }

    fn kill_exec(&self, _t: Target, exec_id: &str, pid: u32, signal: u32) -> Result<()> {
        // The waiting `rvisor exec` passes catchable signals on; killed, it takes the
        // process with it.
        let sig = i32::try_from(signal)
            .ok()
            .and_then(|n| nix::sys::signal::Signal::try_from(n).ok())
            .ok_or_else(|| Error::InvalidArgument(format!("bad signal {signal}")))?;
        let pid = i32::try_from(pid)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| internal(format!("exec {exec_id} has no pid")))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
            .map_err(|e| internal(format!("kill exec {exec_id}: {e}")))
    }

    fn delete_exec(&self, t: Target, exec_id: &str) {
        let _ = std::fs::remove_file(Cli::exec_spec_path(t, exec_id));
    }

    fn pids(&self, t: Target) -> Result<Vec<u32>> {
        let out = self.run(t.bundle, &["ps", "--format", "json", t.id])?;
        serde_json::from_str(&out).map_err(|e| internal(format!("rvisor ps: {e}")))
    }

    fn stats(&self, t: Target) -> Result<Stats> {
        #[derive(serde::Deserialize)]
        struct Event {
            data: Stats,
        }
        let out = self.run(t.bundle, &["events", "--stats", t.id])?;
        serde_json::from_str::<Event>(out.trim())
            .map(|e| e.data)
            .map_err(|e| internal(format!("rvisor events --stats: {e}")))
    }

    fn update(&self, t: Target, resources: &[u8]) -> Result<()> {
        let path = format!("{}/update-resources.json", t.bundle);
        std::fs::write(&path, resources).map_err(|e| internal(format!("write {path}: {e}")))?;
        let r = self.run(t.bundle, &["update", "--resources", &path, t.id]);
        let _ = std::fs::remove_file(&path);
        r.map(drop)
    }

    fn watch_oom(&self, t: Target, oom: OnOom) -> Result<()> {
        // `rvisor events` prints a stats line every interval and an `oom` line after
        // each OOM kill in the sandbox's cgroup, and exits once the container stops.
        let log = LogFile::new(t.bundle, "events");
        let mut cmd = self.command(
            t.bundle,
            &log,
            &["events", "--interval", OOM_INTERVAL, t.id],
        )?;
        cmd.stdout(ProcStdio::piped())
            .stderr(ProcStdio::null())
            .stdin(ProcStdio::null());
        let (mut child, rx) = self.reaper.spawn(&mut cmd)?;
        let out = child
            .stdout
            .take()
            .ok_or_else(|| internal("rvisor events: no stdout"))?;
        let id = t.id.to_string();
        std::thread::spawn(move || {
            let ooms = watch_events(std::io::BufReader::new(out), &oom);
            let code = rx.recv().unwrap_or(-1);
            if code != 0 {
                let why = log.failure().map(|(_, m)| m).unwrap_or_default();
                log::warn!("{id}: rvisor events exited with {code} ({ooms} OOM kills): {why}");
            }
        });
        Ok(())
    }

    fn pause(&self, t: Target) -> Result<()> {
        self.run(t.bundle, &["pause", t.id]).map(drop)
    }

    fn resume(&self, t: Target) -> Result<()> {
        self.run(t.bundle, &["resume", t.id]).map(drop)
    }

    fn cleanup(&self, t: Target) {
        // Runs before any reaper exists (containerd's `delete` action), so the
        // status is waited for here.
        let log = LogFile::new(t.bundle, "cleanup");
        if let Ok(mut cmd) = self.command(t.bundle, &log, &["delete", "--force", t.id]) {
            let _ = cmd
                .stdin(ProcStdio::null())
                .stdout(ProcStdio::null())
                .stderr(ProcStdio::null())
                .status();
        }
    }
}

/// Reads `rvisor events` lines until EOF, calling `oom` for each `oom` event; the
/// number of them.
fn watch_events(out: impl std::io::BufRead, oom: &dyn Fn()) -> u64 {
    let mut n = 0;
    for line in out.lines().map_while(std::result::Result::ok) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if v["type"] == "oom" {
            n += 1;
            oom();
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_error_line_gives_kind_and_message() {
        let log = r#"{"level":"INFO","msg":"creating","target":"rvisor"}
{"level":"ERROR","msg":"first","kind":"other"}
not json
{"level":"ERROR","msg":"container \"a\" already exists","kind":"already_exists","target":"rvisor::failure"}
{"level":"WARN","msg":"after"}
"#;
        assert_eq!(
            failure_in_log(log),
            Some((
                ErrorKind::AlreadyExists,
                "container \"a\" already exists".to_string()
            ))
        );
        // An older rvisor without kinds: the message, kind Other.
        assert_eq!(
            failure_in_log(r#"{"level":"error","msg":"boom"}"#),
            Some((ErrorKind::Other, "boom".to_string()))
        );
        assert_eq!(failure_in_log(r#"{"level":"INFO","msg":"fine"}"#), None);
    }

    #[test]
    fn oom_lines_of_events_are_counted() {
        let text = r#"{"type":"stats","id":"c","data":{}}
{"type":"oom","id":"c"}
not json
{"type":"stats","id":"c","data":{"oom":1}}
{"type":"oom","id":"c"}
"#;
        let seen = std::sync::atomic::AtomicU64::new(0);
        let n = watch_events(text.as_bytes(), &|| {
            seen.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!((n, seen.load(Ordering::Relaxed)), (2, 2));
    }

    #[test]
    fn state_lives_beside_the_bundles() {
        assert_eq!(
            state_root("/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc"),
            PathBuf::from("/run/containerd/io.containerd.runtime.v2.task/k8s.io/.rvisor")
        );
    }
}
