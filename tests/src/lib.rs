//! Helpers for rvisor's end-to-end tests and benchmarks: finding the `rvisor` binary,
//! compiling C programs at test time, running a command natively or inside the sandbox with a
//! timeout, and the per-program spec read from `// e2e:` comments.

pub mod containerd;
pub mod diff;
pub mod image;
pub mod spec;

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The workspace root (parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate dir has a parent")
        .to_path_buf()
}

/// Where the C test programs live.
pub fn c_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("c")
}

/// Locates the `rvisor` binary: `$RVISOR_BIN`, else the profile directory the running test
/// binary was built into, else `target/{release,debug}` under `$CARGO_TARGET_DIR` or the
/// workspace root. The error lists every place looked at.
pub fn rvisor_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("RVISOR_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("RVISOR_BIN={} is not a file", p.display()))
        };
    }
    let mut candidates = Vec::new();
    // tests run from target/<profile>/deps/<name>; benches from target/<profile>/<name>.
    if let Ok(exe) = std::env::current_exe() {
        for anc in exe.ancestors().skip(1).take(2) {
            candidates.push(anc.join("rvisor"));
        }
    }
    let mut targets = Vec::new();
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        targets.push(PathBuf::from(t));
    }
    targets.push(workspace_root().join("target"));
    for t in targets {
        candidates.push(t.join("release").join("rvisor"));
        candidates.push(t.join("debug").join("rvisor"));
    }
    for c in &candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    Err(format!(
        "rvisor binary not found (build it with `cargo build --release` or set RVISOR_BIN); \
         looked at: {}",
        looked.join(", ")
    ))
}

/// Platforms to test, from `$RVISOR_PLATFORMS` (comma or space separated), default both `ptrace,systrap`.
pub fn platforms() -> Vec<String> {
    let raw = std::env::var("RVISOR_PLATFORMS").unwrap_or_else(|_| "ptrace,systrap".to_string());
    let v: Vec<String> = raw
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if v.is_empty() {
        vec!["ptrace".to_string()]
    } else {
        v
    }
}

/// How a C program is linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Link {
    /// `gcc -static`: fixed load address, no interpreter.
    Static,
    /// `gcc -static-pie`: self-relocating, loaded at a random base.
    StaticPie,
}

impl Link {
    /// Every linking mode, in test order.
    pub const ALL: [Link; 2] = [Link::Static, Link::StaticPie];

    /// The name used in test names and spec directives.
    pub fn name(self) -> &'static str {
        match self {
            Link::Static => "static",
            Link::StaticPie => "static-pie",
        }
    }

    /// Parses a spec directive value.
    pub fn parse(s: &str) -> Option<Link> {
        Link::ALL.into_iter().find(|l| l.name() == s)
    }

    fn gcc_flag(self) -> &'static str {
        match self {
            Link::Static => "-static",
            Link::StaticPie => "-static-pie",
        }
    }
}

/// Compiles `src` into `out` with gcc; `extra` are additional flags from the spec.
pub fn compile(src: &Path, link: Link, out: &Path, extra: &[String]) -> Result<(), String> {
    let include = src.parent().unwrap_or(Path::new("."));
    let res = Command::new("gcc")
        .arg(link.gcc_flag())
        .args(["-O1", "-g", "-Wall", "-Wextra", "-D_GNU_SOURCE", "-I"])
        .arg(include)
        .args(extra)
        .arg("-o")
        .arg(out)
        .arg(src)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run gcc (run tests/setup.sh): {e}"))?;
    if !res.status.success() {
        return Err(format!(
            "gcc {} {} failed ({}):\n{}",
            link.gcc_flag(),
            src.display(),
            res.status,
            String::from_utf8_lossy(&res.stderr)
        ));
    }
    Ok(())
}

/// What a finished command did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Shell-style status: the exit code, or 128+N when killed by signal N.
    pub status: i32,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

/// Spawns `cmd` in its own process group with stdin from /dev/null and stdout/stderr
/// captured; after `timeout` the whole group is killed and an error returned.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<Outcome, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let desc = format!("{cmd:?}");
    let start = Instant::now();
    let mut tries = 0;
    let mut child = loop {
        match cmd.spawn() {
            // A just-written executable may still be open for writing in a child another
            // thread forked meanwhile (until that child execs); that passes quickly.
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            r => break r.map_err(|e| format!("cannot spawn {desc}: {e}"))?,
        }
    };
    let pid = child.id() as i32;
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    // Reading both pipes to EOF also waits for descendants (gofer, sentry, stubs) that
    // inherited them: a sandbox that leaves processes behind shows up as a timeout.
    let reader = std::thread::spawn(move || {
        let mut e = Vec::new();
        let errt = std::thread::spawn(move || {
            let _ = err.read_to_end(&mut e);
            e
        });
        let mut o = Vec::new();
        let _ = out.read_to_end(&mut o);
        let e = errt.join().unwrap_or_default();
        let status = child.wait();
        let _ = tx.send((o, e, status));
    });
    match rx.recv_timeout(timeout) {
        Ok((stdout, stderr, status)) => {
            let _ = reader.join();
            let status = status.map_err(|e| format!("wait for {desc}: {e}"))?;
            let status = match (status.code(), status.signal()) {
                (Some(c), _) => c,
                (None, Some(s)) => 128 + s,
                (None, None) => return Err(format!("{desc}: unknown exit status {status:?}")),
            };
            Ok(Outcome {
                status,
                stdout,
                stderr,
                elapsed: start.elapsed(),
            })
        }
        Err(_) => {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            // The reader thread finishes once the group is gone; collect partial output.
            let partial = rx.recv_timeout(Duration::from_secs(5)).ok();
            let _ = reader.join();
            let (o, e) = partial.map(|(o, e, _)| (o, e)).unwrap_or_default();
            Err(format!(
                "timed out after {timeout:?}: {desc}\n--- stdout so far ---\n{}\n--- stderr so far ---\n{}",
                String::from_utf8_lossy(&o),
                String::from_utf8_lossy(&e)
            ))
        }
    }
}

/// How the sandboxed command sees its root filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rootfs {
    /// The host root, read-only (no `--rootfs` flag).
    Host,
    /// The given host directory becomes `/` in the sandbox.
    Dir(PathBuf),
}

/// Builds `rvisor --platform=P --net-raw do --cap-add=all [--rootfs DIR] [--env K=V]... -- argv...`.
pub fn sandbox_command(
    rvisor: &Path,
    platform: &str,
    rootfs: &Rootfs,
    env: &[(String, String)],
    argv: &[String],
) -> Command {
    let mut cmd = Command::new(rvisor);
    // `do` hands the caller's environment to the app, and the native run sees exactly `env`:
    // anything else from the test's own environment (a CI runner's TZ, say) would make the
    // two differ. Only rvisor's own log settings pass.
    cmd.env_clear();
    for k in ["RUST_LOG", "RUST_BACKTRACE"] {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    // The native side runs as root with the host's capabilities; the sandbox gets every
    // capability too (`do` alone has containerd's default set, without CAP_NET_RAW), so the
    // two compare. Programs that test capabilities drop what they need themselves.
    cmd.arg(format!("--platform={platform}"))
        .arg("--net-raw")
        .arg("do")
        .arg("--cap-add=all");
    if let Rootfs::Dir(d) = rootfs {
        cmd.arg("--rootfs").arg(d);
    }
    for (k, v) in env {
        cmd.arg("--env").arg(format!("{k}={v}"));
    }
    cmd.arg("--").args(argv);
    cmd
}

/// Builds the native command: `argv` with exactly `env` as its environment, no open
/// descriptor but stdio, RLIMIT_CORE 0, umask 022 and default signal actions, as inside the
/// sandbox. Without the close, whatever the caller leaked (a CI runner's lock on fd 200, say)
/// would be visible natively; without the limit, a runner's `ulimit -c unlimited` would make
/// native crashes dump core (a core file in the test directory, the core bit in wait
/// statuses) where the sandbox's default limit is 0.
pub fn native_command(env: &[(String, String)], argv: &[String]) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).env_clear().envs(env.iter().cloned());
    // SAFETY: close_range, get/setrlimit, umask and signal are async-signal-safe and touch
    // only the child between fork and exec; std's own exec-error pipe is CLOEXEC and survives
    // `CLOSE_RANGE_CLOEXEC`.
    unsafe {
        cmd.pre_exec(|| {
            if libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            let mut core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_CORE, &mut core) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            core.rlim_cur = 0;
            if libc::setrlimit(libc::RLIMIT_CORE, &core) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // A container's first process starts with umask 022 and every signal at its
            // default action; a runner's umask or ignored signals must not reach the native
            // run alone. (std already empties the signal mask.)
            libc::umask(0o022);
            for sig in 1..=libc::SIGRTMAX() {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    // Numbers the C library keeps for itself refuse; that is fine.
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            Ok(())
        });
    }
    cmd
}

/// Writes `size` deterministic pseudo-random bytes (seeded by the name) to `path`.
pub fn write_data_file(path: &Path, size: usize) -> std::io::Result<()> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in path.file_name().unwrap_or_default().as_encoded_bytes() {
        x = x.wrapping_mul(31).wrapping_add(u64::from(*b));
    }
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        // xorshift64*: cheap, deterministic, not all-text.
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        data.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    data.truncate(size);
    std::fs::write(path, data)
}

/// Per-run timeout: `$RVISOR_E2E_TIMEOUT` seconds, else `default`.
pub fn timeout_from_env(default: Duration) -> Duration {
    std::env::var("RVISOR_E2E_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(default)
}

/// Every host process: its pid and its `/proc` directory (none if `/proc` cannot be
/// read).
pub fn host_processes() -> Vec<(i32, PathBuf)> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| Some((e.file_name().to_string_lossy().parse().ok()?, e.path())))
                .collect()
        })
        .unwrap_or_default()
}
