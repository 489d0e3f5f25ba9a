//! Benchmark runner: builds every `benches/c/*.c`, runs each natively, under
//! `rvisor --platform=P do` for each platform, and under `runsc --platform=ptrace
//! --network=none do`, plus a few whole-process application workloads; prints the medians with
//! ratios to native, the speedups over runsc and the goals (PASS/MISS), and writes them
//! as JSON with, beside it, a Markdown table (`.md`) and an SVG chart of the ratios to native
//! (`.svg`). `--compare OLD.json` adds before/after per row (printed, in the Markdown, and as
//! ticks on the chart); `--render FILE.json` redraws those views from a file without running.
//!
//! A benchmark program takes ITERS as argv[1] and prints `ns_per_op=<float>`; its source
//! carries `// bench: key[=value]` lines: `title=TEXT` (table label), `order=N` (row order),
//! `syscall-bound` (listed in the speedup table), `iters=N` (about 0.3-1 s natively; the
//! calibration run uses 1/200 of it), `file=NAME:SIZE` (data file in the run directory),
//! `dir=NAME:COUNT` (directory of COUNT empty files), `arg=VALUE` (more arguments; `{dir}` is
//! the run directory), `cflags=FLAG`, `veth` (a network row, below), `host-network` (the
//! sandboxes run with `--network=host`: host sockets, here over the host's loopback).
//!
//! Network rows (`veth`): the runner makes two network namespaces joined by a veth pair
//! (deleted when it ends), starts the program natively as `PROG --peer PORT` in the outer
//! one for the row's duration, and runs the measured side in the inner one: natively (the
//! kernel at both ends), under `rvisor --network=sandbox` (the sentry's stack on the veth)
//! and `runsc --network=sandbox`; `{peer}` in an `arg` is the outer address.
//!
//! Every row runs separately on every runtime with a timeout; a failure becomes a `fail`
//! cell with the reason in a footnote and the run goes on.
//!
//! `benches/probes/*.c` (same directives) run natively only, after the table: the parts a
//! systrap system call is made of on this machine (the in-process SIGSYS trap and return, the
//! cross-process spin hand-off), printed as the floor the rows are read against.

use rvisor_bench::{Cell, Measurement, Report, Row, RowKind, NATIVE, RUNSC_PTRACE};
use rvisor_e2e::{run_with_timeout, Link, Outcome};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const USAGE: &str = "usage: rvisor-bench [--runs N] [--platforms ptrace,systrap] \
     [--only ID,...] [--target-ms MS] [--cell-budget-ms MS] [--no-runsc] [--no-rvisor] \
     [--out FILE] [--compare OLD.json] [--render FILE.json]";

/// Timeout of a calibration run (and of an app row's warm-up run): generous enough for a slow
/// runtime's start-up, short enough that a hanging row costs little.
const FIRST_RUN_TIMEOUT: Duration = Duration::from_secs(20);

struct Opts {
    runs: usize,
    platforms: Vec<String>,
    only: Vec<String>,
    target_ms: f64,
    cell_budget_ms: f64,
    runsc: bool,
    rvisor: bool,
    out: PathBuf,
    compare: Option<PathBuf>,
    render: Option<PathBuf>,
}

/// Everything needed to run one row.
struct Bench {
    row: Row,
    order: i64,
    /// Native iteration count (C rows).
    iters: u64,
    files: Vec<(String, usize)>,
    dirs: Vec<(String, usize)>,
    /// The command: for C rows the executable then `args` (after ITERS).
    argv: Vec<String>,
    args: Vec<String>,
    cflags: Vec<String>,
    /// Runs in the inner namespace of [`Veth`] against its peer in the outer one.
    veth: bool,
    /// `host-network`: the sandboxes run with `--network=host` (host sockets over the
    /// host's loopback) instead of their own loopback.
    host_network: bool,
}

/// Address of the outer end of the bench's veth pair, and of the inner end.
const VETH_OUTER_IP: &str = "10.79.0.1";
const VETH_INNER_IP: &str = "10.79.0.2";

/// Two network namespaces joined by a veth pair, for the network rows; deleted on drop.
struct Veth {
    outer: String,
    inner: String,
}

fn ip_cmd(args: &[&str]) -> Result<(), String> {
    let o = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(())
}

impl Veth {
    fn new() -> Result<Veth, String> {
        let id = std::process::id() % 100_000;
        let v = Veth {
            outer: format!("rvbO{id}"),
            inner: format!("rvbI{id}"),
        };
        let (a, b) = (format!("rvbA{id}"), format!("rvbB{id}"));
        let (o, i) = (v.outer.as_str(), v.inner.as_str());
        ip_cmd(&["netns", "add", o])?;
        ip_cmd(&["netns", "add", i])?;
        ip_cmd(&[
            "-n", o, "link", "add", &a, "type", "veth", "peer", "name", &b, "netns", i,
        ])?;
        ip_cmd(&[
            "-n",
            o,
            "addr",
            "add",
            &format!("{VETH_OUTER_IP}/24"),
            "dev",
            &a,
        ])?;
        ip_cmd(&["-n", o, "link", "set", &a, "up"])?;
        ip_cmd(&["-n", o, "link", "set", "lo", "up"])?;
        ip_cmd(&[
            "-n",
            i,
            "addr",
            "add",
            &format!("{VETH_INNER_IP}/24"),
            "dev",
            &b,
        ])?;
        ip_cmd(&["-n", i, "link", "set", &b, "up"])?;
        ip_cmd(&["-n", i, "link", "set", "lo", "up"])?;
        ip_cmd(&["-n", i, "route", "add", "default", "via", VETH_OUTER_IP])?;
        Ok(v)
    }

    /// Starts `argv` natively in the outer namespace and waits for its `ready` line.
    fn peer(&self, argv: &[String]) -> Result<Peer, String> {
        use std::io::BufRead;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.outer])
            .args(argv)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("peer: {e}"))?;
        let mut line = String::new();
        let out = child.stdout.take().ok_or("peer: no stdout")?;
        let ready = std::io::BufReader::new(out).read_line(&mut line);
        let peer = Peer(child);
        match ready {
            Ok(_) if line.trim() == "ready" => Ok(peer),
            _ => Err(format!("peer did not start: {:?}", line.trim())),
        }
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = ip_cmd(&["netns", "del", &self.outer]);
        let _ = ip_cmd(&["netns", "del", &self.inner]);
    }
}

/// A network row's peer process (`ip netns exec` execs it: the child is the peer);
/// killed on drop.
struct Peer(std::process::Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How one column of the table runs a program.
enum Kind {
    Native,
    Rvisor(PathBuf, String),
    Runsc(String),
}

struct Runtime {
    name: String,
    kind: Kind,
    /// Why this runtime cannot run here, if it cannot.
    broken: Option<String>,
}

impl Runtime {
    /// The command running `argv`; in `net`'s inner namespace, attached to its veth, when
    /// given.
    fn command(&self, argv: &[String], net: Option<(&Veth, &Path)>) -> Command {
        self.command_in(argv, net, false)
    }

    /// [`Runtime::command`]; `host_network` runs the sandboxes with `--network=host`.
    fn command_in(
        &self,
        argv: &[String],
        net: Option<(&Veth, &Path)>,
        host_network: bool,
    ) -> Command {
        if host_network && net.is_none() {
            match &self.kind {
                Kind::Native => {}
                Kind::Rvisor(bin, p) => {
                    let mut c = Command::new(bin);
                    c.env_clear()
                        .arg(format!("--platform={p}"))
                        .arg("--network=host")
                        .args(["do", "--"])
                        .args(argv);
                    return c;
                }
                Kind::Runsc(p) => {
                    let mut c = Command::new("runsc");
                    c.arg(format!("--platform={p}"))
                        .arg("--network=host")
                        .args(["do", "--"])
                        .args(argv);
                    return c;
                }
            }
        }
        if let Some((veth, state)) = net {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &veth.inner]);
            match &self.kind {
                Kind::Native => {}
                Kind::Rvisor(bin, p) => {
                    c.arg(bin)
                        .arg(format!("--platform={p}"))
                        .arg("--network=sandbox")
                        .arg("--root")
                        .arg(state)
                        .args(["do", "--"]);
                }
                Kind::Runsc(p) => {
                    // `runsc do` with a network makes its own namespace behind a veth pair
                    // and NAT in the current one (the inner namespace here). Its cgroup
                    // set-up wants cgroup v1 controllers, which a v2 host lacks.
                    c.args(["runsc", &format!("--platform={p}"), "--network=sandbox"])
                        .arg("--ignore-cgroups")
                        .arg("--root")
                        .arg(state)
                        .args(["do", "--"]);
                }
            }
            c.args(argv);
            return c;
        }
        match &self.kind {
            Kind::Native => {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
            Kind::Rvisor(bin, p) => {
                rvisor_e2e::sandbox_command(bin, p, &rvisor_e2e::Rootfs::Host, &[], argv)
            }
            Kind::Runsc(p) => {
                let mut c = Command::new("runsc");
                c.arg(format!("--platform={p}"))
                    .arg("--network=none")
                    .arg("do")
                    .arg("--")
                    .args(argv);
                c
            }
        }
    }
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        runs: 5,
        platforms: vec!["ptrace".into(), "systrap".into()],
        only: Vec::new(),
        target_ms: 400.0,
        cell_budget_ms: 2500.0,
        runsc: true,
        rvisor: true,
        out: rvisor_e2e::workspace_root().join("benches/out/results.json"),
        compare: None,
        render: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--runs" => o.runs = val()?.parse().map_err(|_| "bad --runs")?,
            "--platforms" => {
                o.platforms = val()?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
            }
            "--only" => o.only = val()?.split(',').map(String::from).collect(),
            "--target-ms" => o.target_ms = val()?.parse().map_err(|_| "bad --target-ms")?,
            "--cell-budget-ms" => {
                o.cell_budget_ms = val()?.parse().map_err(|_| "bad --cell-budget-ms")?;
            }
            "--no-runsc" => o.runsc = false,
            "--no-rvisor" => o.rvisor = false,
            "--out" => o.out = PathBuf::from(val()?),
            "--compare" => o.compare = Some(PathBuf::from(val()?)),
            "--render" => o.render = Some(PathBuf::from(val()?)),
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ => return Err(format!("unknown argument {a}\n{USAGE}")),
        }
    }
    if o.runs == 0 {
        return Err("--runs must be > 0".into());
    }
    if o.target_ms.is_nan()
        || o.target_ms <= 0.0
        || o.cell_budget_ms.is_nan()
        || o.cell_budget_ms <= 0.0
    {
        return Err("--target-ms and --cell-budget-ms must be > 0".into());
    }
    Ok(o)
}

fn parse_sized(name: &str, key: &str, v: &str) -> Result<(String, usize), String> {
    let (n, s) = v
        .rsplit_once(':')
        .ok_or(format!("{name}: {key}=NAME:NUMBER"))?;
    let s = s.parse().map_err(|_| format!("{name}: bad number {s:?}"))?;
    Ok((n.to_string(), s))
}

/// Reads the `// bench:` directives of every C benchmark (no compiling yet).
fn load_c_benches(dir: &Path) -> Result<Vec<Bench>, String> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("read {}: {e}", dir.display()))?;
    for e in entries {
        let e = e.map_err(|e| format!("read {}: {e}", dir.display()))?;
        let Some(name) = e
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(".c"))
            .map(String::from)
        else {
            continue;
        };
        let text = std::fs::read_to_string(e.path()).map_err(|e| format!("read {name}: {e}"))?;
        let mut b = Bench {
            row: Row {
                id: name.clone(),
                title: name.clone(),
                syscall_bound: false,
                kind: RowKind::Micro,
            },
            order: 1000,
            iters: 100_000,
            files: Vec::new(),
            dirs: Vec::new(),
            argv: Vec::new(),
            args: Vec::new(),
            cflags: vec!["-O2".into()],
            veth: false,
            host_network: false,
        };
        for line in text.lines() {
            let Some(d) = line.trim_start().strip_prefix("// bench:") else {
                continue;
            };
            let d = d.trim();
            let (k, v) = d.split_once('=').unwrap_or((d, ""));
            match k {
                "title" => b.row.title = v.to_string(),
                "order" => b.order = v.parse().map_err(|_| format!("{name}: bad order {v:?}"))?,
                "syscall-bound" => b.row.syscall_bound = true,
                "iters" => b.iters = v.parse().map_err(|_| format!("{name}: bad iters {v:?}"))?,
                "file" => b.files.push(parse_sized(&name, k, v)?),
                "dir" => b.dirs.push(parse_sized(&name, k, v)?),
                "arg" => b.args.push(v.to_string()),
                "cflags" => b.cflags.push(v.to_string()),
                "veth" => b.veth = true,
                "host-network" => b.host_network = true,
                _ => return Err(format!("{name}: unknown bench key {k:?}")),
            }
        }
        out.push(b);
    }
    Ok(out)
}

/// Whole-process workloads from the host root; a missing optional program drops its row.
fn app_benches() -> Vec<Bench> {
    let app = |id: &str, title: &str, order: i64, argv: &[&str]| Bench {
        row: Row {
            id: id.into(),
            title: title.into(),
            syscall_bound: false,
            kind: RowKind::App,
        },
        order,
        iters: 1,
        files: Vec::new(),
        dirs: Vec::new(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        args: Vec::new(),
        cflags: Vec::new(),
        veth: false,
        host_network: false,
    };
    let mut v = vec![
        // The runtime's own start-up and tear-down, to read the rows below against.
        app("true", "/bin/true", 200, &["/bin/true"]),
        app(
            "python3",
            "python3 -c pass",
            210,
            &["/usr/bin/python3", "-c", "pass"],
        ),
    ];
    // GNU tar skips reading file data when the archive is /dev/null, so the archive goes to
    // stdout, which the runner reads and drops.
    let mut tar = app(
        "tar",
        "tar c 200-file tree",
        220,
        &["/usr/bin/tar", "-cf", "-", "-C", "{dir}", "tree"],
    );
    tar.files = (0..200)
        .map(|i| (format!("tree/d{}/f{i}", i % 10), 2048 + 37 * i))
        .collect();
    v.push(tar);
    // Not timed: an idle sandbox's own memory (see `measure_idle`).
    let mut idle = app(
        "idle_memory",
        "idle sandbox: sentry+gofer private memory",
        240,
        &["/bin/sleep", "30"],
    );
    idle.row.kind = RowKind::Memory;
    v.push(idle);
    if Path::new("/usr/bin/sqlite3").is_file() {
        v.push(app(
            "sqlite3",
            "sqlite3 10k-row insert+sum",
            230,
            &[
                "/usr/bin/sqlite3",
                ":memory:",
                "create table t(a, b); \
                 with recursive c(x) as (select 1 union all select x + 1 from c where x < 10000) \
                 insert into t select x, x * 2 from c; \
                 select sum(b) from t where a % 3 = 0;",
            ],
        ));
    } else {
        eprintln!("sqlite3 not installed: skipping its row");
    }
    v
}

/// Drops ANSI colour sequences (tracing colours its stderr lines).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn clip(s: &str, n: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// A failed run in one line: the exit status, the first stderr line and, when there are
/// more, the last one (the sandbox's warnings come first, the program's own error last).
fn failure(o: &Outcome) -> String {
    let err = strip_ansi(&String::from_utf8_lossy(&o.stderr));
    let lines: Vec<&str> = err
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let what = match lines.as_slice() {
        [] => {
            let out = String::from_utf8_lossy(&o.stdout);
            match out.lines().find(|l| !l.trim().is_empty()) {
                Some(l) => format!("(no stderr; stdout: {})", clip(l, 100)),
                None => "(no output)".into(),
            }
        }
        [one] => clip(one, 160),
        [first, .., last] => format!("{} ... {}", clip(first, 110), clip(last, 110)),
    };
    format!("exit {}: {what}", o.status)
}

fn timeout_reason(e: &str) -> String {
    match e.split_once(':') {
        Some((head, _)) if head.starts_with("timed out") => head.to_string(),
        _ => clip(&e.replace('\n', " "), 200),
    }
}

/// Runs a trivial program to learn whether a runtime starts at all.
fn probe(rt: &Runtime) -> Option<String> {
    let argv = vec!["/bin/true".to_string()];
    match run_with_timeout(rt.command(&argv, None), FIRST_RUN_TIMEOUT) {
        Ok(o) if o.status == 0 => None,
        Ok(o) => Some(format!("failed to start: {}", failure(&o))),
        Err(e) => Some(format!("failed to start: {}", timeout_reason(&e))),
    }
}

/// One run; returns (ns per op as the program measured it, wall time of the run in ns).
fn run_once(
    rt: &Runtime,
    b: &Bench,
    dir: &Path,
    iters: u64,
    timeout: Duration,
    net: Option<&Veth>,
) -> Result<(f64, f64), String> {
    let dirs = dir.to_str().ok_or("non-UTF-8 run directory")?;
    let subst = |a: &String| a.replace("{dir}", dirs).replace("{peer}", VETH_OUTER_IP);
    let mut argv: Vec<String> = b.argv.iter().map(subst).collect();
    if b.row.kind == RowKind::Micro {
        argv.push(iters.to_string());
        argv.extend(b.args.iter().map(subst));
    }
    let state = dir.join("runtime-state");
    let mut cmd = rt.command_in(&argv, net.map(|v| (v, state.as_path())), b.host_network);
    cmd.current_dir(dir);
    let o = run_with_timeout(cmd, timeout).map_err(|e| timeout_reason(&e))?;
    if o.status != 0 {
        return Err(failure(&o));
    }
    let wall = o.elapsed.as_secs_f64() * 1e9;
    if b.row.kind == RowKind::App {
        return Ok((wall, wall));
    }
    let out = String::from_utf8_lossy(&o.stdout);
    let ns = out
        .lines()
        .find_map(|l| l.strip_prefix("ns_per_op="))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("no ns_per_op in output: {}", clip(&out, 100)))?;
    Ok((ns, wall))
}

/// Calibrates (C rows: picks the iteration count that takes about `--target-ms`; app rows: a
/// warm-up run), then runs between 3 and `--runs` times, fewer when a run is slow, so that a
/// cell costs about `--cell-budget-ms`.
fn measure(rt: &Runtime, b: &Bench, dir: &Path, opts: &Opts, net: Option<&Veth>) -> Cell {
    let target_ns = opts.target_ms * 1e6;
    let max_iters = b.iters.saturating_mul(10).max(1);
    let iters_for = |ns: f64| ((target_ns / ns.max(1.0)) as u64).clamp(1, max_iters);
    let (mut iters, mut startup) = match b.row.kind {
        RowKind::Micro => {
            let cal_iters = (b.iters / 200).max(1);
            let (ns, wall) = run_once(rt, b, dir, cal_iters, FIRST_RUN_TIMEOUT, net)?;
            (iters_for(ns), (wall - ns * cal_iters as f64).max(0.0))
        }
        // (Memory rows are measured by `measure_idle`, not here.)
        RowKind::App | RowKind::Memory => (1, run_once(rt, b, dir, 1, FIRST_RUN_TIMEOUT, net)?.1),
    };
    let mut samples = Vec::new();
    let mut runs = opts.runs;
    let mut recalibrations = 0;
    while samples.len() < runs {
        let per_run = match b.row.kind {
            RowKind::Micro => startup + target_ns,
            RowKind::App | RowKind::Memory => startup,
        };
        runs = ((opts.cell_budget_ms * 1e6 / per_run.max(1.0)) as usize)
            .max(3)
            .min(opts.runs);
        let timeout = Duration::from_secs_f64((per_run * 5.0 / 1e9).max(15.0));
        let (ns, wall) = run_once(rt, b, dir, iters, timeout, net)?;
        if b.row.kind == RowKind::Micro {
            // A short calibration run can be dominated by warm-up (first faults, a loaded
            // machine): when a run's loop falls well short of the target, recount and redo
            // it instead of keeping a sample that measured mostly noise.
            let loop_ns = ns * iters as f64;
            startup = (wall - loop_ns).max(0.0);
            if samples.is_empty()
                && recalibrations < 2
                && loop_ns < target_ns / 2.0
                && iters < max_iters
            {
                iters = iters_for(ns);
                recalibrations += 1;
                continue;
            }
        }
        samples.push(ns);
    }
    Measurement::from_samples(iters, samples).ok_or_else(|| "no samples".to_string())
}

/// Idle runs of a [`RowKind::Memory`] row.
const IDLE_RUNS: usize = 3;
/// How long the sandbox's program has been running before its memory is read.
const IDLE_SETTLE: Duration = Duration::from_millis(1000);

/// Private memory of an idle sandbox, in bytes: the row's program (`sleep`) is started in
/// it, and once it runs, the memory of every process of the sandbox that runs the rvisor
/// binary (sentry, gofer, the boot process waiting on the sentry; not the CLI the
/// runner started, nor stubs and application processes, whose memory is the program's) is
/// summed from `/proc/PID/smaps_rollup`: per process the larger of `Anonymous` (its
/// anonymous pages, those it shares copy-on-write with its parent included) and
/// `Private_Dirty` (dirty pages only it maps). Median of [`IDLE_RUNS`] sandboxes.
fn measure_idle(rt: &Runtime, b: &Bench, dir: &Path) -> Cell {
    let Kind::Rvisor(bin, _) = &rt.kind else {
        return Err(rvisor_bench::NOT_APPLICABLE.into());
    };
    let exe = std::fs::canonicalize(bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    let mut samples = Vec::new();
    for _ in 0..IDLE_RUNS {
        samples.push(idle_once(rt, b, dir, &exe)?);
    }
    Measurement::from_samples(1, samples).ok_or_else(|| "no samples".to_string())
}

fn idle_once(rt: &Runtime, b: &Bench, dir: &Path, exe: &Path) -> Result<f64, String> {
    use std::process::Stdio;
    let mut cmd = rt.command(&b.argv, None);
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    let cli = child.id() as i32;
    let started = std::time::Instant::now();
    // Running once a process of the tree runs something other than rvisor (systrap's
    // stub, ptrace's traced program).
    let result = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Err(format!("the sandbox ended before it was idle: {st}"));
        }
        let tree = descendants(cli);
        if tree.iter().any(|&p| exe_of(p).is_some_and(|e| e != exe)) {
            std::thread::sleep(IDLE_SETTLE);
            let mut total = 0u64;
            for p in descendants(cli) {
                if exe_of(p).as_deref() == Some(exe) {
                    total += private_bytes(p).unwrap_or(0);
                }
            }
            break if total > 0 {
                Ok(total as f64)
            } else {
                Err("no sandbox process found".into())
            };
        }
        if started.elapsed() > FIRST_RUN_TIMEOUT {
            break Err("timed out before the program ran".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The CLI passes SIGTERM on to the sandbox, which then ends (`cli` is our unreaped
    // child: the number is still its).
    let _ = Command::new("kill")
        .args(["-TERM", &cli.to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) if std::time::Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    result
}

/// Every process below `root` (not `root` itself), from /proc.
fn descendants(root: i32) -> Vec<i32> {
    let mut parent = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // The field after the command's closing parenthesis: state, then ppid.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if let Some(pp) = ppid {
                parent.push((pid, pp));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &parent {
            if pp == p {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

fn exe_of(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// The larger of `Anonymous` and `Private_Dirty` in `/proc/PID/smaps_rollup`, in bytes.
fn private_bytes(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Some(field("Anonymous:").max(field("Private_Dirty:")))
}

/// The port a network row's peer listens on: its last `arg`.
fn peer_port(b: &Bench) -> String {
    b.args.last().cloned().unwrap_or_default()
}

/// Builds `dir/<id>.c` statically into `exe`, which becomes the row's command.
fn compile_c(b: &mut Bench, dir: &Path, exe: &Path) -> Result<(), String> {
    rvisor_e2e::compile(
        &dir.join(format!("{}.c", b.row.id)),
        Link::Static,
        exe,
        &b.cflags,
    )?;
    b.argv = vec![exe.to_str().ok_or("non-UTF-8 build path")?.to_string()];
    Ok(())
}

/// Creates the row's data files and directories in its run directory.
fn prepare(b: &Bench, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    for (n, size) in &b.files {
        let p = dir.join(n);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("mkdir {n}: {e}"))?;
        }
        rvisor_e2e::write_data_file(&p, *size).map_err(|e| format!("{n}: {e}"))?;
    }
    for (n, count) in &b.dirs {
        let d = dir.join(n);
        std::fs::create_dir_all(&d).map_err(|e| format!("mkdir {n}: {e}"))?;
        for i in 0..*count {
            std::fs::write(d.join(format!("e{i:05}")), b"")
                .map_err(|e| format!("{n}/e{i}: {e}"))?;
        }
    }
    Ok(())
}

fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Some(file) = &opts.render {
        let r = read_report(file).and_then(|(report, settings)| {
            write_views(&report, &settings, file, opts.compare.as_deref())
        });
        if let Err(e) = r {
            eprintln!("rvisor-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    let work = std::env::temp_dir().join(format!("rvisor-bench-{}", std::process::id()));
    let code = match real_main(&opts, &work) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("rvisor-bench: {e}");
            1
        }
    };
    let _ = std::fs::remove_dir_all(&work);
    std::process::exit(code);
}

/// Reads a results file: the report and its settings.
fn read_report(file: &Path) -> Result<(Report, serde_json::Value), String> {
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("read {}: {e}", file.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let report = Report::from_json(&doc).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok((report, doc["settings"].clone()))
}

/// Writes the Markdown table and the SVG chart beside `json` (same name, `.md` and `.svg`),
/// with the before/after comparison against `compare` if given (also printed).
fn write_views(
    report: &Report,
    settings: &serde_json::Value,
    json: &Path,
    compare: Option<&Path>,
) -> Result<(), String> {
    let old = compare.map(read_report).transpose()?.map(|(r, _)| r);
    let load = match settings["loadavg"].as_str() {
        Some(l) => format!(", load average {l} at start"),
        None => String::new(),
    };
    let title = format!(
        "rvisor benchmarks, {}, {} CPUs{load} (medians)",
        settings["date"].as_str().unwrap_or("undated"),
        settings["cpus"].as_u64().unwrap_or(0)
    );
    let mut md = report.markdown(&title);
    if let (Some(old), Some(path)) = (&old, compare) {
        let table = report.compare(old);
        println!("\nbefore ({}) / after\n{table}", path.display());
        md.push_str(&format!(
            "\nBefore ({}) and after:\n\n{table}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("old")
        ));
    }
    let write = |ext: &str, text: &str| -> Result<(), String> {
        let p = json.with_extension(ext);
        std::fs::write(&p, text).map_err(|e| format!("write {}: {e}", p.display()))?;
        println!("wrote {}", p.display());
        Ok(())
    };
    write("md", &md)?;
    write("svg", &report.svg(&title, old.as_ref()))
}

fn runtimes(opts: &Opts) -> Vec<Runtime> {
    let mut v = vec![Runtime {
        name: NATIVE.into(),
        kind: Kind::Native,
        broken: None,
    }];
    if opts.rvisor {
        let bin = rvisor_e2e::rvisor_bin();
        for p in &opts.platforms {
            let (kind, broken) = match &bin {
                Ok(b) => (Kind::Rvisor(b.clone(), p.clone()), None),
                Err(e) => (Kind::Rvisor(PathBuf::new(), p.clone()), Some(e.clone())),
            };
            v.push(Runtime {
                name: format!("rvisor-{p}"),
                kind,
                broken,
            });
        }
    }
    if opts.runsc {
        let found = Command::new("runsc").arg("--version").output().is_ok();
        v.push(Runtime {
            name: RUNSC_PTRACE.into(),
            kind: Kind::Runsc("ptrace".into()),
            broken: (!found).then(|| "runsc not installed (tests/setup.sh installs it)".into()),
        });
    }
    v
}

fn real_main(opts: &Opts, work: &Path) -> Result<(), String> {
    let start = std::time::Instant::now();
    // How busy the machine was: the figures of a shared machine are read with it.
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(String::from));
    let build = work.join("build");
    std::fs::create_dir_all(&build).map_err(|e| format!("mkdir: {e}"))?;
    let c_dir = rvisor_e2e::workspace_root().join("benches/c");
    let mut benches = load_c_benches(&c_dir)?;
    benches.extend(app_benches());
    benches.retain(|b| opts.only.is_empty() || opts.only.contains(&b.row.id));
    benches.sort_by(|a, b| (a.order, &a.row.id).cmp(&(b.order, &b.row.id)));
    if benches.is_empty() {
        return Err("no benchmark selected".into());
    }
    for b in benches.iter_mut().filter(|b| b.row.kind == RowKind::Micro) {
        compile_c(b, &c_dir, &build.join(&b.row.id))?;
    }

    let probes_dir = rvisor_e2e::workspace_root().join("benches/probes");
    let mut probes = if opts.only.is_empty() {
        load_c_benches(&probes_dir)?
    } else {
        Vec::new()
    };
    probes.sort_by(|a, b| a.row.id.cmp(&b.row.id));
    for b in &mut probes {
        compile_c(b, &probes_dir, &build.join(format!("probe-{}", b.row.id)))?;
    }

    let mut runtimes = runtimes(opts);
    for rt in &mut runtimes {
        if rt.broken.is_none() {
            rt.broken = probe(rt);
        }
        match &rt.broken {
            Some(why) => eprintln!("{}: unavailable: {why}", rt.name),
            None => eprintln!("{}: ok", rt.name),
        }
    }

    // The namespaces of the network rows, made once for all of them.
    let veth = match benches.iter().any(|b| b.veth) {
        true => Some(Veth::new()),
        false => None,
    };
    let mut rows = Vec::new();
    for b in &benches {
        let dir = work.join(&b.row.id);
        prepare(b, &dir)?;
        // A network row's peer, serving every runtime's runs in turn.
        let net: Result<Option<(&Veth, Peer)>, String> = match (&veth, b.veth) {
            (Some(Ok(v)), true) => {
                let mut argv = b.argv.clone();
                argv.extend(["--peer".to_string(), peer_port(b)]);
                v.peer(&argv).map(|p| Some((v, p)))
            }
            (Some(Err(e)), true) => Err(format!("network namespaces: {e}")),
            _ => Ok(None),
        };
        let mut cells = Vec::new();
        for rt in &runtimes {
            let cell = match (&rt.broken, &net) {
                _ if b.row.kind == RowKind::Memory && !matches!(rt.kind, Kind::Rvisor(..)) => {
                    Err(rvisor_bench::NOT_APPLICABLE.to_string())
                }
                (Some(why), _) => Err(why.clone()),
                (None, Err(e)) => Err(e.clone()),
                (None, Ok(_)) if b.row.kind == RowKind::Memory => measure_idle(rt, b, &dir),
                (None, Ok(n)) => measure(rt, b, &dir, opts, n.as_ref().map(|(v, _)| *v)),
            };
            match &cell {
                Ok(m) if b.row.kind == RowKind::Memory => eprintln!(
                    "{} / {}: {} ({} runs)",
                    b.row.id,
                    rt.name,
                    b.row.kind.fmt(m.median_ns),
                    m.samples.len()
                ),
                Ok(m) => eprintln!(
                    "{} / {}: {} per op ({} iters x {} runs)",
                    b.row.id,
                    rt.name,
                    b.row.kind.fmt(m.median_ns),
                    m.iters,
                    m.samples.len()
                ),
                Err(e) if e == rvisor_bench::NOT_APPLICABLE => {}
                Err(e) if rt.broken.is_none() => eprintln!("{} / {}: fail: {e}", b.row.id, rt.name),
                Err(_) => {}
            }
            cells.push(cell);
        }
        // Data files must not pile up in /tmp (the 64 MiB row's file is removed by itself).
        let _ = std::fs::remove_dir_all(&dir);
        rows.push((b.row.clone(), cells));
    }

    // What one systrap system call is made of, measured natively on this machine: the rows
    // above are read against these floors.
    let mut floors = Vec::new();
    for b in &probes {
        let dir = work.join(format!("probe-{}", b.row.id));
        prepare(b, &dir)?;
        match measure(&runtimes[0], b, &dir, opts, None) {
            Ok(m) => floors.push((b.row.title.clone(), m.median_ns)),
            Err(e) => eprintln!("probe {}: fail: {e}", b.row.id),
        }
    }

    let report = Report {
        runtimes: runtimes.iter().map(|r| r.name.clone()).collect(),
        rows,
    };
    println!();
    print!("{}", report.render());
    if !floors.is_empty() {
        println!("\nsystrap floor, native probes (benches/probes):");
        for (title, ns) in &floors {
            println!("  {title:<50} {}", rvisor_bench::fmt_ns(*ns));
        }
    }
    let doc = report.to_json(json!({
        "date": rvisor_bench::utc_date(),
        "loadavg": loadavg,
        "target_ms": opts.target_ms,
        "max_runs": opts.runs,
        "cell_budget_ms": opts.cell_budget_ms,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "elapsed_s": start.elapsed().as_secs_f64(),
        "floors": floors
            .iter()
            .map(|(title, ns)| json!({"title": title, "median_ns": ns}))
            .collect::<Vec<_>>(),
    }));
    if let Some(d) = opts.out.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
    }
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    std::fs::write(&opts.out, text + "\n")
        .map_err(|e| format!("write {}: {e}", opts.out.display()))?;
    println!(
        "\nwrote {} ({:.0} s)",
        opts.out.display(),
        start.elapsed().as_secs_f64()
    );
    write_views(
        &report,
        &doc["settings"],
        &opts.out,
        opts.compare.as_deref(),
    )
}
