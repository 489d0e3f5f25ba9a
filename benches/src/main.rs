//! Microbenchmark runner: builds every `benches/c/*.c`, runs each natively, under
//! `rvisor --platform=P do` for each platform, and under `runsc --platform=ptrace do` when it
//! works here, and prints the median ns/op with the ratio to native (also written as JSON).
//!
//! A benchmark program takes ITERS as argv[1] and prints `ns_per_op=<float>`; its source may
//! carry `// bench: key=value` lines: `iters=N` (native count, ~0.3-1 s), `file=NAME:SIZE`
//! (data file created in the run directory), `arg=VALUE` (more arguments; `{dir}` is that
//! directory), `cflags=FLAG`. Slow runtimes get fewer iterations: a short calibration run picks
//! the count that takes about `--target-ms`.

use rvisor_e2e::{run_with_timeout, Link, Outcome};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const USAGE: &str =
    "usage: rvisor-bench [--runs N] [--platforms ptrace,systrap] [--only NAME,...] \
                     [--target-ms MS] [--no-runsc] [--no-rvisor] [--out FILE]";

struct Opts {
    runs: usize,
    platforms: Vec<String>,
    only: Vec<String>,
    target_ms: f64,
    runsc: bool,
    rvisor: bool,
    out: PathBuf,
}

struct Bench {
    name: String,
    iters: u64,
    files: Vec<(String, usize)>,
    args: Vec<String>,
    cflags: Vec<String>,
    exe: PathBuf,
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
    fn command(&self, argv: &[String]) -> Command {
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
        platforms: rvisor_e2e::platforms(),
        only: Vec::new(),
        target_ms: 500.0,
        runsc: true,
        rvisor: true,
        out: rvisor_e2e::workspace_root().join("benches/out/results.json"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--runs" => o.runs = val()?.parse().map_err(|_| "bad --runs")?,
            "--platforms" => {
                o.platforms = val()?.split(',').map(String::from).collect();
            }
            "--only" => o.only = val()?.split(',').map(String::from).collect(),
            "--target-ms" => o.target_ms = val()?.parse().map_err(|_| "bad --target-ms")?,
            "--no-runsc" => o.runsc = false,
            "--no-rvisor" => o.rvisor = false,
            "--out" => o.out = PathBuf::from(val()?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ => return Err(format!("unknown argument {a}\n{USAGE}")),
        }
    }
    if o.runs == 0 {
        return Err("--runs must be > 0".into());
    }
    Ok(o)
}

fn load_benches(dir: &Path, build: &Path, only: &[String]) -> Result<Vec<Bench>, String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".c").map(String::from))
        .filter(|n| only.is_empty() || only.contains(n))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let src = dir.join(format!("{name}.c"));
        let text = std::fs::read_to_string(&src).map_err(|e| format!("read {name}: {e}"))?;
        let mut b = Bench {
            name: name.clone(),
            iters: 100_000,
            files: Vec::new(),
            args: Vec::new(),
            cflags: vec!["-O2".into()],
            exe: build.join(&name),
        };
        for line in text.lines() {
            let Some(d) = line.trim_start().strip_prefix("// bench:") else {
                continue;
            };
            let d = d.trim_start();
            let (k, v) = d.split_once('=').unwrap_or((d, ""));
            match k {
                "iters" => b.iters = v.parse().map_err(|_| format!("{name}: bad iters {v:?}"))?,
                "file" => {
                    let (n, s) = v
                        .rsplit_once(':')
                        .ok_or(format!("{name}: file=NAME:SIZE"))?;
                    let s = s.parse().map_err(|_| format!("{name}: bad size {s:?}"))?;
                    b.files.push((n.to_string(), s));
                }
                "arg" => b.args.push(v.to_string()),
                "cflags" => b.cflags.push(v.to_string()),
                _ => return Err(format!("{name}: unknown bench key {k:?}")),
            }
        }
        rvisor_e2e::compile(&src, Link::Static, &b.exe, &b.cflags)?;
        out.push(b);
    }
    Ok(out)
}

/// Runs a trivial program to learn whether a runtime works here at all.
fn probe(rt: &Runtime) -> Option<String> {
    let argv = vec!["/bin/true".to_string()];
    match run_with_timeout(rt.command(&argv), Duration::from_secs(60)) {
        Ok(o) if o.status == 0 => None,
        Ok(o) => Some(format!(
            "`{} /bin/true` exited {}: {}",
            rt.name,
            o.status,
            tail(&String::from_utf8_lossy(&o.stderr), 300)
        )),
        Err(e) => Some(tail(&e, 300)),
    }
}

fn tail(s: &str, n: usize) -> String {
    let s = s.trim();
    match s.char_indices().rev().nth(n) {
        Some((i, _)) => format!("...{}", &s[i..]).replace('\n', " | "),
        None => s.replace('\n', " | "),
    }
}

/// One run of `b` with `iters` iterations; returns ns/op.
fn run_once(rt: &Runtime, b: &Bench, dir: &Path, iters: u64) -> Result<f64, String> {
    let dirs = dir.to_str().ok_or("non-UTF-8 dir")?;
    let mut argv = vec![
        b.exe.to_str().ok_or("non-UTF-8 path")?.to_string(),
        iters.to_string(),
    ];
    argv.extend(b.args.iter().map(|a| a.replace("{dir}", dirs)));
    let mut cmd = rt.command(&argv);
    cmd.current_dir(dir);
    let o: Outcome = run_with_timeout(cmd, Duration::from_secs(120))?;
    let out = String::from_utf8_lossy(&o.stdout);
    if o.status != 0 {
        return Err(format!(
            "exit {}: {}{}",
            o.status,
            tail(&out, 100),
            tail(&String::from_utf8_lossy(&o.stderr), 200)
        ));
    }
    out.lines()
        .find_map(|l| l.strip_prefix("ns_per_op="))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("no ns_per_op in output {:?}", tail(&out, 100)))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Calibrates, then runs `opts.runs` times; returns (median ns/op, iterations, samples).
fn measure(
    rt: &Runtime,
    b: &Bench,
    dir: &Path,
    opts: &Opts,
) -> Result<(f64, u64, Vec<f64>), String> {
    let cal_iters = (b.iters / 100).max(10);
    let cal = run_once(rt, b, dir, cal_iters)?;
    let want = (opts.target_ms * 1e6 / cal.max(1.0)) as u64;
    let iters = want.clamp(10, b.iters.saturating_mul(4));
    let mut samples = Vec::with_capacity(opts.runs);
    for _ in 0..opts.runs {
        samples.push(run_once(rt, b, dir, iters)?);
    }
    let m = median(&mut samples.clone());
    Ok((m, iters, samples))
}

fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
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

fn real_main(opts: &Opts, work: &Path) -> Result<(), String> {
    let build = work.join("build");
    std::fs::create_dir_all(&build).map_err(|e| format!("mkdir: {e}"))?;
    let benches = load_benches(
        &rvisor_e2e::workspace_root().join("benches/c"),
        &build,
        &opts.only,
    )?;
    if benches.is_empty() {
        return Err("no benchmark selected".into());
    }

    let mut runtimes = vec![Runtime {
        name: "native".into(),
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
            runtimes.push(Runtime {
                name: format!("rvisor-{p}"),
                kind,
                broken,
            });
        }
    }
    if opts.runsc {
        let found = Command::new("runsc").arg("--version").output().is_ok();
        runtimes.push(Runtime {
            name: "runsc-ptrace".into(),
            kind: Kind::Runsc("ptrace".into()),
            broken: (!found).then(|| "runsc not installed (tests/setup.sh installs it)".into()),
        });
    }
    for rt in &mut runtimes {
        if rt.broken.is_none() {
            rt.broken = probe(rt);
        }
        match &rt.broken {
            Some(why) => eprintln!("{}: unavailable: {why}", rt.name),
            None => eprintln!("{}: ok", rt.name),
        }
    }

    // results[bench][runtime] = Ok((median, iters, samples)) | Err(reason)
    let mut results = Vec::new();
    for b in &benches {
        let dir = work.join(&b.name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir: {e}"))?;
        for (n, s) in &b.files {
            rvisor_e2e::write_data_file(&dir.join(n), *s).map_err(|e| format!("{n}: {e}"))?;
        }
        let mut row = Vec::new();
        for rt in &runtimes {
            let r = match &rt.broken {
                Some(why) => Err(format!("unavailable: {why}")),
                None => measure(rt, b, &dir, opts),
            };
            match &r {
                Ok((m, it, _)) => eprintln!("{} / {}: {m:.1} ns/op ({it} iters)", b.name, rt.name),
                Err(e) => eprintln!("{} / {}: {e}", b.name, rt.name),
            }
            row.push(r);
        }
        results.push(row);
    }

    print_table(&benches, &runtimes, &results);
    write_json(opts, &benches, &runtimes, &results)
}

type Cell = Result<(f64, u64, Vec<f64>), String>;

fn print_table(benches: &[Bench], runtimes: &[Runtime], results: &[Vec<Cell>]) {
    let mut rows = vec![{
        let mut h = vec!["benchmark (median ns/op)".to_string()];
        h.extend(runtimes.iter().map(|r| r.name.clone()));
        h
    }];
    let mut notes = Vec::new();
    for (b, row) in benches.iter().zip(results) {
        let native = row.first().and_then(|c| c.as_ref().ok()).map(|c| c.0);
        let mut line = vec![b.name.clone()];
        for (rt, cell) in runtimes.iter().zip(row) {
            line.push(match (cell, native) {
                (Ok((m, _, _)), Some(n)) if rt.name != "native" => {
                    format!("{m:.1} (x{:.1})", m / n)
                }
                (Ok((m, _, _)), _) => format!("{m:.1}"),
                (Err(e), _) => {
                    notes.push(format!(
                        "[{}] {} / {}: {e}",
                        notes.len() + 1,
                        b.name,
                        rt.name
                    ));
                    format!("n/a [{}]", notes.len())
                }
            });
        }
        rows.push(line);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(j, (c, w))| {
                if j == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        println!("{}", cells.join("  "));
        if i == 0 {
            println!(
                "{}",
                "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
            );
        }
    }
    for n in notes {
        println!("{n}");
    }
}

fn write_json(
    opts: &Opts,
    benches: &[Bench],
    runtimes: &[Runtime],
    results: &[Vec<Cell>],
) -> Result<(), String> {
    let rows: Vec<Value> = benches
        .iter()
        .zip(results)
        .map(|(b, row)| {
            let native = row.first().and_then(|c| c.as_ref().ok()).map(|c| c.0);
            let cells: serde_json::Map<String, Value> = runtimes
                .iter()
                .zip(row)
                .map(|(rt, c)| {
                    let v = match c {
                        Ok((m, it, s)) => json!({
                            "median_ns_per_op": m,
                            "ratio_to_native": native.map(|n| m / n),
                            "iters": it,
                            "samples": s,
                        }),
                        Err(e) => json!({ "error": e }),
                    };
                    (rt.name.clone(), v)
                })
                .collect();
            json!({ "benchmark": b.name, "results": cells })
        })
        .collect();
    let doc = json!({
        "runs": opts.runs,
        "target_ms": opts.target_ms,
        "runtimes": runtimes.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
        "rows": rows,
    });
    if let Some(d) = opts.out.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
    }
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    std::fs::write(&opts.out, text + "\n")
        .map_err(|e| format!("write {}: {e}", opts.out.display()))?;
    println!("wrote {}", opts.out.display());
    Ok(())
}
