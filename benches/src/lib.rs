//! The result side of the benchmark runner, kept free of process handling so it can be
//! unit-tested: medians, the text table (medians with ratios to native, failures as numbered
//! footnotes), the rvisor-vs-runsc speedups, the PASS/MISS goals, the JSON document, and the
//! views people look at: a Markdown table, an SVG chart of the ratios to native, and a
//! before/after comparison of two result files.

use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Column name of the native runs; ratios are taken against it.
pub const NATIVE: &str = "native";
/// Column name of gVisor's runsc on its ptrace platform, the speedup baseline.
pub const RUNSC_PTRACE: &str = "runsc-ptrace";
/// Column name of rvisor's systrap platform, the one the goals are about.
pub const RVISOR_SYSTRAP: &str = "rvisor-systrap";
/// Column name of rvisor's ptrace platform, which systrap must not lose to.
pub const RVISOR_PTRACE: &str = "rvisor-ptrace";

/// Systrap counts as slower than ptrace on a row only beyond this factor: rows that run
/// the same code on both (a vDSO call, bulk page faults) differ by a few percent from run
/// to run.
pub const SLOWER_NOISE: f64 = 1.05;

/// The text of a cell that has no value by its nature (a memory row's native column):
/// shown as `-`, not as a failure.
pub const NOT_APPLICABLE: &str = "not applicable";

/// What a goal bounds: systrap's median itself, or its ratio to native.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// At most this many nanoseconds per operation.
    Ns(f64),
    /// At most this many bytes (a [`RowKind::Memory`] row).
    Bytes(f64),
    /// At most this many times native.
    Ratio(f64),
}

/// The goals (issue 15, this machine class, systrap medians of one run; the TCP stream rows
/// over the veth: issue 12, sandbox-mode throughput at least half of native), by row id.
pub const GOALS: &[(&str, Bound)] = &[
    ("getpid", Bound::Ns(350.0)),
    ("clock_gettime", Bound::Ratio(2.0)),
    ("stat", Bound::Ns(1000.0)),
    ("open_read_close", Bound::Ns(2000.0)),
    ("pipe_pingpong", Bound::Ratio(1.5)),
    ("futex_pingpong", Bound::Ratio(1.5)),
    ("thread_create_join", Bound::Ratio(3.0)),
    ("fork_exit_wait", Bound::Ratio(2.0)),
    ("fork_exec_wait", Bound::Ratio(3.0)),
    ("getdents_10k", Bound::Ratio(1.5)),
    ("file_write_read_64m", Bound::Ratio(1.2)),
    ("true", Bound::Ns(2e6)),
    ("python3", Bound::Ratio(1.3)),
    ("tar", Bound::Ratio(2.0)),
    ("tcp_send_veth", Bound::Ratio(2.0)),
    ("tcp_recv_veth", Bound::Ratio(2.0)),
    ("idle_memory", Bound::Bytes(5e6)),
];

/// How a row is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
    /// A C program timing N iterations of one operation itself (`ns_per_op=`).
    Micro,
    /// A whole process timed from spawn to exit (wall time, runtime start-up included).
    App,
    /// Memory of an idle sandbox, in bytes (kept in [`Measurement::median_ns`] and
    /// `samples`): the runtime's own processes' private memory while the program sleeps.
    Memory,
}

impl RowKind {
    /// A value of this kind of row with its unit.
    pub fn fmt(self, v: f64) -> String {
        match self {
            RowKind::Memory => fmt_bytes(v),
            _ => fmt_ns(v),
        }
    }

    /// The name the JSON document gives it.
    fn json_name(self) -> &'static str {
        match self {
            RowKind::Micro => "micro",
            RowKind::App => "process",
            RowKind::Memory => "memory",
        }
    }
}

/// One benchmark.
#[derive(Clone, Debug)]
pub struct Row {
    /// Short identifier (file stem for C programs).
    pub id: String,
    /// What the table shows.
    pub title: String,
    /// Whether the cost is dominated by system calls (the rows the speedup target covers).
    pub syscall_bound: bool,
    /// How it is measured.
    pub kind: RowKind,
}

/// A successful measurement of one row on one runtime.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// Median of `samples`, in nanoseconds per operation (per process for app rows).
    pub median_ns: f64,
    /// Iterations per run (1 for app rows).
    pub iters: u64,
    /// Every timed run, nanoseconds per operation.
    pub samples: Vec<f64>,
}

impl Measurement {
    /// Builds a measurement from its samples; `None` when there are none.
    pub fn from_samples(iters: u64, samples: Vec<f64>) -> Option<Measurement> {
        let median_ns = median(&samples)?;
        Some(Measurement {
            median_ns,
            iters,
            samples,
        })
    }
}

/// The outcome of one row on one runtime: a measurement or why there is none.
pub type Cell = Result<Measurement, String>;

/// Every row's cells, in runtime order.
#[derive(Clone, Debug)]
pub struct Report {
    /// Column names (the first is normally [`NATIVE`]).
    pub runtimes: Vec<String>,
    /// Rows with one cell per runtime.
    pub rows: Vec<(Row, Vec<Cell>)>,
}

/// One PASS/MISS line.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// What is required.
    pub name: String,
    /// Whether the measurement meets it.
    pub pass: bool,
    /// The measured value, or why there is none.
    pub detail: String,
}

/// Median of `v` (mean of the middle two for an even count); `None` for an empty slice.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(s[n / 2]),
        _ => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
    }
}

/// `x` with three significant digits (no exponent).
fn sig3(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A duration in nanoseconds with a readable unit: `183 ns`, `14.9 us`, `2.30 ms`, `1.10 s`.
pub fn fmt_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{} ns", sig3(ns))
    } else if ns < 1e6 {
        format!("{} us", sig3(ns / 1e3))
    } else if ns < 1e9 {
        format!("{} ms", sig3(ns / 1e6))
    } else {
        format!("{} s", sig3(ns / 1e9))
    }
}

/// A size in bytes with a readable unit: `512 B`, `900 KiB`, `2.41 MiB`.
pub fn fmt_bytes(b: f64) -> String {
    if b < 1024.0 {
        format!("{} B", sig3(b))
    } else if b < 1024.0 * 1024.0 {
        format!("{} KiB", sig3(b / 1024.0))
    } else {
        format!("{} MiB", sig3(b / (1024.0 * 1024.0)))
    }
}

/// A ratio as `x12.3`.
pub fn fmt_ratio(r: f64) -> String {
    if r > 0.0 && r < 0.01 {
        // Two significant digits, so a large speed-up does not read as x0.00.
        let p = (-r.log10()).ceil() as usize + 1;
        return format!("x{r:.p$}");
    }
    format!("x{}", sig3(r))
}

/// Renders rows of cells as aligned columns (first column left-aligned), with a rule under
/// the header.
fn render_columns(rows: &[Vec<String>]) -> String {
    let ncol = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..ncol)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
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
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * ncol.saturating_sub(1)));
            out.push('\n');
        }
    }
    out
}

/// Numbered footnotes; identical texts share a number.
#[derive(Default)]
struct Notes(Vec<String>);

impl Notes {
    fn add(&mut self, text: String) -> usize {
        if let Some(i) = self.0.iter().position(|t| *t == text) {
            return i + 1;
        }
        self.0.push(text);
        self.0.len()
    }
}

impl Report {
    fn column(&self, name: &str) -> Option<usize> {
        self.runtimes.iter().position(|r| r == name)
    }

    fn value(cells: &[Cell], col: Option<usize>) -> Option<f64> {
        cells.get(col?)?.as_ref().ok().map(|m| m.median_ns)
    }

    /// `baseline / value` of `row`: how many times faster column `fast` is than `base`.
    fn speedup(&self, cells: &[Cell], fast: &str, base: &str) -> Result<f64, String> {
        let why = |name: &str| -> String {
            match self.column(name).and_then(|c| cells.get(c)) {
                None => format!("no {name} column"),
                Some(Ok(_)) => String::new(),
                Some(Err(_)) => format!("{name} failed"),
            }
        };
        match (
            Self::value(cells, self.column(fast)),
            Self::value(cells, self.column(base)),
        ) {
            (Some(f), Some(b)) if f > 0.0 => Ok(b / f),
            (Some(_), Some(_)) => Err(format!("{fast} measured 0")),
            (None, _) => Err(why(fast)),
            (_, None) => Err(why(base)),
        }
    }

    /// The goals ([`GOALS`]) for the rows that ran, then one goal over every row: none
    /// slower on systrap than on ptrace.
    pub fn targets(&self) -> Vec<Target> {
        let sys = self.column(RVISOR_SYSTRAP);
        let native = self.column(NATIVE);
        let mut out = Vec::new();
        for (id, bound) in GOALS {
            let Some((row, cells)) = self.rows.iter().find(|(r, _)| r.id == *id) else {
                continue;
            };
            let value = Self::value(cells, sys);
            let (name, t) = match *bound {
                Bound::Ns(max) => (
                    format!("{RVISOR_SYSTRAP} {} <= {}", row.title, fmt_ns(max)),
                    value.map(|v| (v <= max, fmt_ns(v))),
                ),
                Bound::Bytes(max) => (
                    format!("{RVISOR_SYSTRAP} {} <= {:.0} MB", row.title, max / 1e6),
                    value.map(|v| (v <= max, fmt_bytes(v))),
                ),
                Bound::Ratio(max) => (
                    format!("{RVISOR_SYSTRAP} {} <= {max}x {NATIVE}", row.title),
                    match (value, Self::value(cells, native)) {
                        (Some(v), Some(n)) if n > 0.0 => {
                            Some((v / n <= max, format!("{}, {}", fmt_ns(v), fmt_ratio(v / n))))
                        }
                        _ => None,
                    },
                ),
            };
            out.push(match t {
                Some((pass, detail)) => Target { name, pass, detail },
                None => Target {
                    name,
                    pass: false,
                    detail: format!("no {RVISOR_SYSTRAP} or {NATIVE} result"),
                },
            });
        }
        if let (Some(s), Some(p)) = (sys, self.column(RVISOR_PTRACE)) {
            let slower: Vec<String> = self
                .rows
                .iter()
                .filter(|(row, _)| row.kind != RowKind::Memory)
                .filter_map(|(row, cells)| {
                    let (a, b) = (Self::value(cells, Some(s))?, Self::value(cells, Some(p))?);
                    (a > b * SLOWER_NOISE).then(|| format!("{} {}", row.title, fmt_ratio(a / b)))
                })
                .collect();
            out.push(Target {
                name: format!(
                    "no row slower on {RVISOR_SYSTRAP} than on {RVISOR_PTRACE} (by more than {:.0}%)",
                    (SLOWER_NOISE - 1.0) * 100.0
                ),
                pass: slower.is_empty(),
                detail: if slower.is_empty() {
                    "none slower".into()
                } else {
                    format!("slower: {}", slower.join(", "))
                },
            });
        }
        out
    }

    /// The whole text report: the table of medians with ratios to native, the footnotes
    /// giving each failure's reason, the speedup of every rvisor column over runsc-ptrace on
    /// syscall-bound rows, and the PASS/MISS goals.
    pub fn render(&self) -> String {
        let native = self.column(NATIVE);
        let mut notes = Notes::default();
        let mut header = vec!["benchmark (median per op)".to_string()];
        header.extend(self.runtimes.iter().cloned());
        let mut table = vec![header];
        for (row, cells) in &self.rows {
            let base = Self::value(cells, native);
            let mut line = vec![match row.kind {
                RowKind::Micro => row.title.clone(),
                RowKind::App => format!("{} [process]", row.title),
                RowKind::Memory => format!("{} [memory]", row.title),
            }];
            for (j, (rt, cell)) in self.runtimes.iter().zip(cells).enumerate() {
                line.push(match (cell, base) {
                    (Ok(m), Some(b)) if Some(j) != native && b > 0.0 => {
                        format!(
                            "{} {}",
                            row.kind.fmt(m.median_ns),
                            fmt_ratio(m.median_ns / b)
                        )
                    }
                    (Ok(m), _) => row.kind.fmt(m.median_ns),
                    (Err(e), _) if e == NOT_APPLICABLE => "-".into(),
                    (Err(e), _) => format!("fail [{}]", notes.add(format!("{rt}: {e}"))),
                });
            }
            table.push(line);
        }
        let mut out = render_columns(&table);
        for (i, n) in notes.0.iter().enumerate() {
            out.push_str(&format!("[{}] {n}\n", i + 1));
        }

        let fast: Vec<&String> = self
            .runtimes
            .iter()
            .filter(|r| r.starts_with("rvisor-"))
            .collect();
        if self.column(RUNSC_PTRACE).is_some() && !fast.is_empty() {
            out.push_str(&format!(
                "\nspeedup over {RUNSC_PTRACE} on syscall-bound rows ({RUNSC_PTRACE} time / column's \
                 time; the {NATIVE} column bounds what a sandbox can reach)\n"
            ));
            let mut header = vec!["benchmark".to_string(), format!("{NATIVE} (bound)")];
            header.extend(fast.iter().map(|r| r.to_string()));
            let mut t = vec![header];
            for (row, cells) in self.rows.iter().filter(|(r, _)| r.syscall_bound) {
                let mut line = vec![row.title.clone()];
                line.push(match self.speedup(cells, NATIVE, RUNSC_PTRACE) {
                    Ok(s) => fmt_ratio(s),
                    Err(_) => "-".into(),
                });
                for f in &fast {
                    line.push(match self.speedup(cells, f, RUNSC_PTRACE) {
                        Ok(s) => fmt_ratio(s),
                        Err(_) => "-".into(),
                    });
                }
                t.push(line);
            }
            out.push_str(&render_columns(&t));
        }

        out.push_str("\ngoals (issues 15 and 12; rvisor-systrap medians)\n");
        for t in self.targets() {
            out.push_str(&format!(
                "{} {} ({})\n",
                if t.pass { "PASS" } else { "MISS" },
                t.name,
                t.detail
            ));
        }
        out
    }

    /// The machine-readable report.
    pub fn to_json(&self, settings: Value) -> Value {
        let native = self.column(NATIVE);
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|(row, cells)| {
                let base = Self::value(cells, native);
                let results: BTreeMap<String, Value> = self
                    .runtimes
                    .iter()
                    .zip(cells)
                    .map(|(rt, c)| {
                        let v = match c {
                            Ok(m) => json!({
                                "median_ns_per_op": m.median_ns,
                                "ratio_to_native": base.filter(|b| *b > 0.0).map(|b| m.median_ns / b),
                                "iters_per_run": m.iters,
                                "samples_ns_per_op": m.samples,
                            }),
                            Err(e) => json!({ "error": e }),
                        };
                        (rt.clone(), v)
                    })
                    .collect();
                let speedups: BTreeMap<String, Value> = self
                    .runtimes
                    .iter()
                    .filter(|r| r.starts_with("rvisor-"))
                    .filter_map(|r| {
                        let s = self.speedup(cells, r, RUNSC_PTRACE).ok()?;
                        Some((r.clone(), json!(s)))
                    })
                    .collect();
                json!({
                    "id": row.id,
                    "title": row.title,
                    "kind": row.kind.json_name(),
                    "syscall_bound": row.syscall_bound,
                    "results": results,
                    "speedup_over_runsc_ptrace": speedups,
                })
            })
            .collect();
        let targets: Vec<Value> = self
            .targets()
            .into_iter()
            .map(|t| json!({ "target": t.name, "pass": t.pass, "detail": t.detail }))
            .collect();
        json!({
            "settings": settings,
            "runtimes": self.runtimes,
            "rows": rows,
            "targets": targets,
        })
    }
}

/// Escapes text for XML (SVG) and keeps Markdown table cells intact.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Colours of the chart's runtimes, in column order after native.
const COLOURS: &[&str] = &[
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2",
];

impl Report {
    /// Reads back a report written by [`Report::to_json`].
    pub fn from_json(doc: &Value) -> Result<Report, String> {
        let runtimes: Vec<String> = doc["runtimes"]
            .as_array()
            .ok_or("no runtimes")?
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        let mut rows = Vec::new();
        for r in doc["rows"].as_array().ok_or("no rows")? {
            let id = r["id"].as_str().ok_or("row without id")?.to_string();
            let row = Row {
                title: r["title"].as_str().unwrap_or(&id).to_string(),
                id,
                syscall_bound: r["syscall_bound"].as_bool().unwrap_or(false),
                kind: if r["kind"] == "process" {
                    RowKind::App
                } else if r["kind"] == "memory" {
                    RowKind::Memory
                } else {
                    RowKind::Micro
                },
            };
            let cells = runtimes
                .iter()
                .map(|rt| {
                    let c = &r["results"][rt];
                    match c["median_ns_per_op"].as_f64() {
                        Some(m) => Ok(Measurement {
                            median_ns: m,
                            iters: c["iters_per_run"].as_u64().unwrap_or(1),
                            samples: c["samples_ns_per_op"]
                                .as_array()
                                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                                .unwrap_or_default(),
                        }),
                        None => Err(c["error"].as_str().unwrap_or("not run").to_string()),
                    }
                })
                .collect();
            rows.push((row, cells));
        }
        Ok(Report { runtimes, rows })
    }

    /// The table as Markdown (medians with ratios to native, failures footnoted), then the
    /// goals as PASS/MISS lines. `title` heads it (the date and machine).
    pub fn markdown(&self, title: &str) -> String {
        let native = self.column(NATIVE);
        let mut notes = Notes::default();
        let mut out = format!("### {}\n\n| row |", md(title));
        for rt in &self.runtimes {
            out.push_str(&format!(" {} |", md(rt)));
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(self.runtimes.len()));
        out.push('\n');
        for (row, cells) in &self.rows {
            let base = Self::value(cells, native);
            out.push_str(&format!("| {} |", md(&row.title)));
            for (j, (rt, cell)) in self.runtimes.iter().zip(cells).enumerate() {
                let c = match (cell, base) {
                    (Ok(m), Some(b)) if Some(j) != native && b > 0.0 => {
                        format!(
                            "{} ({})",
                            row.kind.fmt(m.median_ns),
                            fmt_ratio(m.median_ns / b)
                        )
                    }
                    (Ok(m), _) => row.kind.fmt(m.median_ns),
                    (Err(e), _) if e == NOT_APPLICABLE => "-".into(),
                    (Err(e), _) => format!("fail [{}]", notes.add(format!("{rt}: {e}"))),
                };
                out.push_str(&format!(" {} |", md(&c)));
            }
            out.push('\n');
        }
        for (i, n) in notes.0.iter().enumerate() {
            out.push_str(&format!("\n[{}] {}\n", i + 1, md(n)));
        }
        out.push_str("\nGoals (issue 15, rvisor-systrap medians):\n\n");
        for t in self.targets() {
            out.push_str(&format!(
                "- **{}** {} ({})\n",
                if t.pass { "PASS" } else { "MISS" },
                md(&t.name),
                md(&t.detail)
            ));
        }
        out
    }

    /// A bar chart of every non-native runtime's ratio to native per row, on a log scale,
    /// as a self-contained SVG. With `old`, a black tick on each bar marks the old ratio of
    /// the same row and runtime.
    pub fn svg(&self, title: &str, old: Option<&Report>) -> String {
        // Ratios to native only: a memory row has no native value.
        let timed = Report {
            runtimes: self.runtimes.clone(),
            rows: self
                .rows
                .iter()
                .filter(|(r, _)| r.kind != RowKind::Memory)
                .cloned()
                .collect(),
        };
        timed.svg_of_timed_rows(title, old)
    }

    /// [`Report::svg`] of a report whose rows all have a native value.
    fn svg_of_timed_rows(&self, title: &str, old: Option<&Report>) -> String {
        let native = self.column(NATIVE);
        let series: Vec<usize> = (0..self.runtimes.len())
            .filter(|&j| Some(j) != native)
            .collect();
        let ratio = |rep: &Report, row: &str, rt: &str| -> Option<f64> {
            let (_, cells) = rep.rows.iter().find(|(r, _)| r.id == row)?;
            let n = Report::value(cells, rep.column(NATIVE))?;
            let v = Report::value(cells, rep.column(rt))?;
            (n > 0.0 && v > 0.0).then(|| v / n)
        };
        let mut hi: f64 = 10.0;
        let mut lo: f64 = 0.5;
        for (row, _) in &self.rows {
            for &j in &series {
                if let Some(r) = ratio(self, &row.id, &self.runtimes[j]) {
                    hi = hi.max(r);
                    lo = lo.min(r);
                }
            }
        }
        // Decades that hold every ratio.
        let lo_exp = lo.log10().floor() as i32;
        let hi_exp = hi.log10().ceil() as i32;
        let (left, right, top, bar, gap) = (230.0, 40.0, 70.0, 9.0, 10.0);
        let width = 900.0;
        let plot = width - left - right;
        let group = bar * series.len().max(1) as f64 + gap;
        let height = top + group * self.rows.len() as f64 + 60.0;
        let x_of =
            |r: f64| left + plot * (r.log10() - lo_exp as f64) / ((hi_exp - lo_exp).max(1) as f64);
        let mut o =
            format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height:.0}\" \
             viewBox=\"0 0 {width} {height:.0}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"{left}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>\n\
             <text x=\"{left}\" y=\"40\" fill=\"#555\">time relative to native (log scale; \
             1x = native, shorter is faster){}</text>\n",
            xml(title),
            if old.is_some() { "; black ticks: before" } else { "" }
        );
        // Grid: 1, 2, 5 times each power of ten.
        let bottom = top + group * self.rows.len() as f64;
        for e in lo_exp..=hi_exp {
            for m in [1.0, 2.0, 5.0] {
                let r = m * 10f64.powi(e);
                if r < 10f64.powi(lo_exp) || r > 10f64.powi(hi_exp) {
                    continue;
                }
                let x = x_of(r);
                let (stroke, w) = if (r - 1.0).abs() < 1e-9 {
                    ("#000", 1.5)
                } else if m == 1.0 {
                    ("#bbb", 1.0)
                } else {
                    ("#e5e5e5", 1.0)
                };
                o.push_str(&format!(
                    "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" \
                     stroke=\"{stroke}\" stroke-width=\"{w}\"/>\n\
                     <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{}x</text>\n",
                    bottom + 15.0,
                    if r >= 1.0 { format!("{r:.0}") } else { format!("{r}") }
                ));
            }
        }
        for (i, (row, _)) in self.rows.iter().enumerate() {
            let y0 = top + group * i as f64 + gap / 2.0;
            o.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
                left - 8.0,
                y0 + bar * series.len() as f64 / 2.0 + 4.0,
                xml(&row.title)
            ));
            for (k, &j) in series.iter().enumerate() {
                let rt = &self.runtimes[j];
                let y = y0 + bar * k as f64;
                let colour = COLOURS[k % COLOURS.len()];
                match ratio(self, &row.id, rt) {
                    Some(r) => {
                        let (x1, x2) = (x_of(1.0).min(x_of(r)), x_of(1.0).max(x_of(r)));
                        o.push_str(&format!(
                            "<rect x=\"{x1:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
                             fill=\"{colour}\"><title>{}: {}</title></rect>\n",
                            (x2 - x1).max(1.0),
                            bar - 1.0,
                            xml(rt),
                            fmt_ratio(r)
                        ));
                        o.push_str(&format!(
                            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"8\" fill=\"#333\">{}</text>\n",
                            x_of(r).max(x_of(1.0)) + 3.0,
                            y + bar - 2.0,
                            fmt_ratio(r)
                        ));
                    }
                    None => o.push_str(&format!(
                        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"8\" fill=\"#c00\">{} fail</text>\n",
                        x_of(1.0) + 3.0,
                        y + bar - 2.0,
                        xml(rt)
                    )),
                }
                if let Some(r) = old.and_then(|o| ratio(o, &row.id, rt)) {
                    let x = x_of(r.clamp(10f64.powi(lo_exp), 10f64.powi(hi_exp)));
                    o.push_str(&format!(
                        "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" \
                         stroke=\"#000\" stroke-width=\"2\"><title>before: {}</title></line>\n",
                        y + bar - 1.0,
                        fmt_ratio(r)
                    ));
                }
            }
        }
        // Legend.
        let mut lx = left;
        let ly = height - 22.0;
        for (k, &j) in series.iter().enumerate() {
            o.push_str(&format!(
                "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/>\n\
                 <text x=\"{:.1}\" y=\"{ly:.1}\">{}</text>\n",
                ly - 10.0,
                COLOURS[k % COLOURS.len()],
                lx + 16.0,
                xml(&self.runtimes[j])
            ));
            lx += 30.0 + 7.5 * self.runtimes[j].len() as f64;
        }
        o.push_str("</svg>\n");
        o
    }

    /// Before/after per row and runtime present in both: old median, new median, and
    /// new / old (below 1 is faster), as Markdown.
    pub fn compare(&self, old: &Report) -> String {
        let mut out = String::from(
            "| row | runtime | before | after | after/before |\n|---|---|---:|---:|---:|\n",
        );
        for (row, cells) in &self.rows {
            let Some((_, old_cells)) = old.rows.iter().find(|(r, _)| r.id == row.id) else {
                continue;
            };
            for (j, rt) in self.runtimes.iter().enumerate() {
                let new = Self::value(cells, Some(j));
                let before = Self::value(old_cells, old.column(rt));
                let (Some(n), Some(b)) = (new, before) else {
                    continue;
                };
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    md(&row.title),
                    md(rt),
                    row.kind.fmt(b),
                    row.kind.fmt(n),
                    if b > 0.0 {
                        fmt_ratio(n / b)
                    } else {
                        "-".into()
                    }
                ));
            }
        }
        out
    }
}

/// Today's date (UTC) as YYYY-MM-DD, from the system clock.
pub fn utc_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    date_of_days((secs / 86_400) as i64)
}

/// The civil date `days` after 1970-01-01 (proleptic Gregorian).
fn date_of_days(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, bound: bool) -> Row {
        Row {
            id: id.into(),
            title: id.into(),
            syscall_bound: bound,
            kind: RowKind::Micro,
        }
    }

    fn ok(ns: f64) -> Cell {
        Ok(Measurement::from_samples(10, vec![ns]).expect("one sample"))
    }

    fn report() -> Report {
        Report {
            runtimes: vec![
                NATIVE.into(),
                "rvisor-ptrace".into(),
                RVISOR_SYSTRAP.into(),
                RUNSC_PTRACE.into(),
            ],
            rows: vec![
                (
                    row("getpid", true),
                    vec![ok(100.0), ok(15_000.0), ok(1_000.0), ok(40_000.0)],
                ),
                (
                    row("stat", true),
                    vec![
                        ok(2_000.0),
                        Err("exit 1: stat: No such file".into()),
                        ok(10_000.0),
                        ok(100_000.0),
                    ],
                ),
                (
                    row("pipe_pingpong", true),
                    vec![ok(10_000.0), ok(12_000.0), ok(14_000.0), ok(20_000.0)],
                ),
                (
                    row("fork_exit_wait", true),
                    vec![
                        ok(500_000.0),
                        Err("exit 1: fork: Function not implemented".into()),
                        Err("failed to start: EINVAL".into()),
                        ok(5_000_000.0),
                    ],
                ),
                (
                    row("clock_gettime", false),
                    vec![
                        ok(30.0),
                        ok(60.0),
                        Err("failed to start: EINVAL".into()),
                        ok(45.0),
                    ],
                ),
            ],
        }
    }

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert!(Measurement::from_samples(1, vec![]).is_none());
    }

    #[test]
    fn units() {
        assert_eq!(fmt_ns(183.4), "183 ns");
        assert_eq!(fmt_ns(9.5), "9.50 ns");
        assert_eq!(fmt_ns(14_927.0), "14.9 us");
        assert_eq!(fmt_ns(2_303_503.0), "2.30 ms");
        assert_eq!(fmt_ns(1.5e9), "1.50 s");
        assert_eq!(fmt_ratio(150.0), "x150");
        assert_eq!(fmt_ratio(0.00268), "x0.0027");
    }

    #[test]
    fn table_ratios_and_deduplicated_footnotes() {
        let text = report().render();
        let getpid = text.lines().find(|l| l.starts_with("getpid ")).unwrap();
        assert!(getpid.contains("100 ns"), "{getpid}");
        assert!(getpid.contains("15.0 us x150"), "{getpid}");
        assert!(getpid.contains("40.0 us x400"), "{getpid}");
        // Failures are footnoted, the same reason for the same runtime once.
        let fork = text
            .lines()
            .find(|l| l.starts_with("fork_exit_wait "))
            .unwrap();
        assert!(
            fork.contains("fail [2]") && fork.contains("fail [3]"),
            "{fork}"
        );
        let clock = text
            .lines()
            .find(|l| l.starts_with("clock_gettime "))
            .unwrap();
        assert!(clock.contains("fail [3]"), "{clock}");
        assert!(text.contains("[1] rvisor-ptrace: exit 1: stat: No such file\n"));
        assert!(text.contains("[3] rvisor-systrap: failed to start: EINVAL\n"));
        assert!(!text.contains("[4]"));
    }

    #[test]
    fn goals_pass_and_miss() {
        let t = report().targets();
        let get = |n: &str| {
            t.iter()
                .find(|x| x.name.contains(n))
                .unwrap_or_else(|| panic!("{n} in {t:?}"))
        };
        // 1 us > 350 ns: miss; 10 us > 1 us: miss; 14 us / 10 us = x1.4 <= 1.5: pass.
        assert!(!get("getpid <=").pass);
        assert_eq!(get("getpid <=").detail, "1.00 us");
        assert_eq!(get("getpid <=").name, "rvisor-systrap getpid <= 350 ns");
        assert!(!get("stat <=").pass);
        assert!(get("pipe_pingpong <= 1.5x").pass, "{t:?}");
        assert_eq!(get("pipe_pingpong <= 1.5x").detail, "14.0 us, x1.40");
        // A failed systrap cell misses.
        assert!(!get("fork_exit_wait <=").pass);
        assert!(get("clock_gettime <= 2x")
            .detail
            .contains("no rvisor-systrap"));
        // Goals of rows that did not run are not listed.
        assert!(!t.iter().any(|x| x.name.contains("python3")));
        // pipe_pingpong is slower on systrap than on ptrace.
        let slower = get("no row slower");
        assert!(!slower.pass);
        assert_eq!(slower.detail, "slower: pipe_pingpong x1.17");
        let text = report().render();
        assert!(
            text.contains("MISS rvisor-systrap getpid <= 350 ns (1.00 us)"),
            "{text}"
        );
        assert!(text.contains("PASS rvisor-systrap pipe_pingpong <= 1.5x native (14.0 us, x1.40)"));
        let speed = text.split("speedup over").nth(1).unwrap();
        let stat = speed.lines().find(|l| l.starts_with("stat ")).unwrap();
        let cols: Vec<&str> = stat.split_whitespace().collect();
        assert_eq!(cols, ["stat", "x50.0", "-", "x10.0"]);
    }

    #[test]
    fn idle_memory_row_goal_units_and_views() {
        let mut r = report();
        r.rows.push((
            Row {
                id: "idle_memory".into(),
                title: "idle sandbox".into(),
                syscall_bound: false,
                kind: RowKind::Memory,
            },
            vec![
                Err(NOT_APPLICABLE.into()),
                ok(9e6),
                ok(2.5 * 1024.0 * 1024.0),
                Err(NOT_APPLICABLE.into()),
            ],
        ));
        let t = r.targets();
        let goal = t.iter().find(|x| x.name.contains("idle sandbox")).unwrap();
        assert!(goal.pass, "{goal:?}");
        assert_eq!(goal.name, "rvisor-systrap idle sandbox <= 5 MB");
        assert_eq!(goal.detail, "2.50 MiB");
        // More memory on systrap than on ptrace is not "slower".
        let slower = t.iter().find(|x| x.name.contains("no row slower")).unwrap();
        assert!(!slower.detail.contains("idle"), "{slower:?}");
        let text = r.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("idle sandbox [memory]"))
            .unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cols,
            ["idle", "sandbox", "[memory]", "-", "8.58", "MiB", "2.50", "MiB", "-"]
        );
        assert!(!text.contains(NOT_APPLICABLE), "{text}");
        assert!(r
            .markdown("t")
            .contains("| idle sandbox | - | 8.58 MiB | 2.50 MiB | - |"));
        let back = Report::from_json(&r.to_json(json!({}))).unwrap();
        assert_eq!(back.rows.last().unwrap().0.kind, RowKind::Memory);
        assert!(!r.svg("t", None).contains("idle sandbox"));
        assert!(r
            .compare(&back)
            .contains("| idle sandbox | rvisor-systrap | 2.50 MiB | 2.50 MiB | x1.00 |"));
    }

    #[test]
    fn missing_columns_miss_targets() {
        let mut r = report();
        r.runtimes.truncate(2);
        for (_, cells) in &mut r.rows {
            cells.truncate(2);
        }
        let t = r.targets();
        assert!(t.iter().all(|x| !x.pass));
        assert!(t[0].detail.contains("no rvisor-systrap"), "{:?}", t[0]);
        assert!(!t.iter().any(|x| x.name.contains("no row slower")));
        assert!(!r.render().contains("speedup over"));
    }

    #[test]
    fn json_round_trip_markdown_svg_and_compare() {
        let r = report();
        let back = Report::from_json(&r.to_json(json!({}))).unwrap();
        assert_eq!(back.runtimes, r.runtimes);
        assert_eq!(back.rows.len(), r.rows.len());
        assert_eq!(back.rows[0].1[2].as_ref().unwrap().median_ns, 1000.0);
        assert!(back.rows[1].1[1]
            .as_ref()
            .unwrap_err()
            .contains("No such file"));
        let m = back.markdown("2026-12-06, 2 CPUs");
        assert!(m.starts_with("### 2026-12-06, 2 CPUs\n\n| row | native | rvisor-ptrace |"));
        assert!(
            m.contains("| getpid | 100 ns | 15.0 us (x150) | 1.00 us (x10.0) | 40.0 us (x400) |"),
            "{m}"
        );
        assert!(
            m.contains("fail [1]") && m.contains("[1] rvisor-ptrace: exit 1: stat: No such file")
        );
        assert!(m.contains("- **MISS** rvisor-systrap getpid <= 350 ns (1.00 us)"));
        // One bar per measured non-native cell (getpid 3, stat 2, pipe 3, fork 1, clock 2)
        // plus the legend's three swatches and the background.
        let svg = back.svg("chart", None);
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<rect").count(), 11 + 3 + 1, "{svg}");
        assert!(svg.contains("<title>rvisor-systrap: x10.0</title>"));
        assert!(svg.contains("rvisor-systrap fail"));
        // Ticks for the old ratios when comparing.
        let mut old = report();
        old.rows[0].1[2] = ok(2000.0);
        assert_eq!(back.svg("c", Some(&old)).matches("before: ").count(), 11);
        let c = back.compare(&old);
        assert!(
            c.contains("| getpid | rvisor-systrap | 2.00 us | 1.00 us | x0.50 |"),
            "{c}"
        );
        assert!(c.contains("| getpid | native | 100 ns | 100 ns | x1.00 |"));
        assert!(!c.contains("| stat | rvisor-ptrace |"));
    }

    #[test]
    fn dates() {
        assert_eq!(date_of_days(0), "1970-01-01");
        assert_eq!(date_of_days(20_428), "2025-12-06");
        assert_eq!(date_of_days(11_016), "2000-02-29");
        assert_eq!(utc_date().len(), 10);
    }

    #[test]
    fn json_has_ratios_errors_and_targets() {
        let j = report().to_json(json!({"runs": 3}));
        assert_eq!(j["settings"]["runs"], 3);
        let getpid = &j["rows"][0];
        assert_eq!(getpid["results"]["rvisor-ptrace"]["ratio_to_native"], 150.0);
        assert_eq!(getpid["speedup_over_runsc_ptrace"]["rvisor-systrap"], 40.0);
        assert!(j["rows"][1]["results"]["rvisor-ptrace"]["error"]
            .as_str()
            .unwrap()
            .contains("No such file"));
        assert_eq!(j["targets"].as_array().unwrap().len(), 6);
    }
}
