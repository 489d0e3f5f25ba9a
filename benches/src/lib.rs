//! The result side of the benchmark runner, kept free of process handling so it can be
//! unit-tested: medians, the text table (medians with ratios to native, failures as numbered
//! footnotes), the rvisor-vs-runsc speedups, the PASS/MISS targets, and the JSON
//! document.

use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Column name of the native runs; ratios are taken against it.
pub const NATIVE: &str = "native";
/// Column name of gVisor's runsc on its ptrace platform, the speedup baseline.
pub const RUNSC_PTRACE: &str = "runsc-ptrace";
/// Column name of rvisor's systrap platform, the one the targets are about.
pub const RVISOR_SYSTRAP: &str = "rvisor-systrap";
/// Target: systrap at least this many times faster than runsc-ptrace on syscall-bound rows.
pub const SPEEDUP_TARGET: f64 = 20.0;
/// Target: systrap getpid at most this many nanoseconds.
pub const GETPID_TARGET_NS: f64 = 3000.0;

/// How a row is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
    /// A C program timing N iterations of one operation itself (`ns_per_op=`).
    Micro,
    /// A whole process timed from spawn to exit (wall time, runtime start-up included).
    App,
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

/// A ratio as `x12.3`.
pub fn fmt_ratio(r: f64) -> String {
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

    /// The targets: systrap [`SPEEDUP_TARGET`] times faster than runsc-ptrace on
    /// every syscall-bound row, and systrap getpid within [`GETPID_TARGET_NS`].
    pub fn targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        for (row, cells) in &self.rows {
            if !row.syscall_bound {
                continue;
            }
            let name = format!(
                "{RVISOR_SYSTRAP} >= {}x faster than {RUNSC_PTRACE}: {}",
                SPEEDUP_TARGET, row.title
            );
            let mut t = match self.speedup(cells, RVISOR_SYSTRAP, RUNSC_PTRACE) {
                Ok(s) => Target {
                    name,
                    pass: s >= SPEEDUP_TARGET,
                    detail: fmt_ratio(s),
                },
                Err(why) => Target {
                    name,
                    pass: false,
                    detail: why,
                },
            };
            // Where runsc is within 20x of native, only beating native could pass: say so,
            // so a MISS there is not read as a shortfall of the sandbox alone.
            if let Ok(bound) = self.speedup(cells, NATIVE, RUNSC_PTRACE) {
                if !t.pass && bound < SPEEDUP_TARGET {
                    t.detail.push_str(&format!(
                        "; needs beating native here: {RUNSC_PTRACE} is {} of native",
                        fmt_ratio(bound)
                    ));
                }
            }
            out.push(t);
        }
        let name = format!("{RVISOR_SYSTRAP} getpid <= {}", fmt_ns(GETPID_TARGET_NS));
        let getpid = self
            .rows
            .iter()
            .find(|(r, _)| r.id == "getpid")
            .map(|(_, c)| Self::value(c, self.column(RVISOR_SYSTRAP)));
        out.push(match getpid {
            None => Target {
                name,
                pass: false,
                detail: "getpid row not run".into(),
            },
            Some(None) => Target {
                name,
                pass: false,
                detail: format!("no {RVISOR_SYSTRAP} result"),
            },
            Some(Some(ns)) => Target {
                name,
                pass: ns <= GETPID_TARGET_NS,
                detail: fmt_ns(ns),
            },
        });
        out
    }

    /// The whole text report: the table of medians with ratios to native, the footnotes
    /// giving each failure's reason, the speedup of every rvisor column over runsc-ptrace on
    /// syscall-bound rows, and the PASS/MISS targets.
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
            }];
            for (j, (rt, cell)) in self.runtimes.iter().zip(cells).enumerate() {
                line.push(match (cell, base) {
                    (Ok(m), Some(b)) if Some(j) != native && b > 0.0 => {
                        format!("{} {}", fmt_ns(m.median_ns), fmt_ratio(m.median_ns / b))
                    }
                    (Ok(m), _) => fmt_ns(m.median_ns),
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

        out.push_str("\ntargets\n");
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
                    "kind": match row.kind { RowKind::Micro => "micro", RowKind::App => "process" },
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
                    row("fork", true),
                    vec![
                        ok(500_000.0),
                        Err("exit 1: fork: Function not implemented".into()),
                        Err("failed to start: EINVAL".into()),
                        ok(5_000_000.0),
                    ],
                ),
                (
                    row("clock", false),
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
    }

    #[test]
    fn table_ratios_and_deduplicated_footnotes() {
        let text = report().render();
        let getpid = text.lines().find(|l| l.starts_with("getpid ")).unwrap();
        assert!(getpid.contains("100 ns"), "{getpid}");
        assert!(getpid.contains("15.0 us x150"), "{getpid}");
        assert!(getpid.contains("40.0 us x400"), "{getpid}");
        // Failures are footnoted, the same reason for the same runtime once.
        let fork = text.lines().find(|l| l.starts_with("fork ")).unwrap();
        assert!(
            fork.contains("fail [2]") && fork.contains("fail [3]"),
            "{fork}"
        );
        let clock = text.lines().find(|l| l.starts_with("clock ")).unwrap();
        assert!(clock.contains("fail [3]"), "{clock}");
        assert!(text.contains("[1] rvisor-ptrace: exit 1: stat: No such file\n"));
        assert!(text.contains("[3] rvisor-systrap: failed to start: EINVAL\n"));
        assert!(!text.contains("[4]"));
    }

    #[test]
    fn targets_pass_and_miss() {
        let t = report().targets();
        let get = |n: &str| t.iter().find(|x| x.name.ends_with(n)).unwrap();
        // 40 us / 1 us = x40 >= 20: pass; 100 us / 10 us = x10: miss; systrap failed: miss.
        assert!(get(": getpid").pass);
        assert_eq!(get(": getpid").detail, "x40.0");
        assert!(!get(": stat").pass);
        assert_eq!(get(": stat").detail, "x10.0");
        assert!(!get(": fork").pass);
        // runsc is x10 of native on fork: the miss says the target needs beating native.
        assert_eq!(
            get(": fork").detail,
            "rvisor-systrap failed; needs beating native here: runsc-ptrace is x10.0 of native"
        );
        assert!(!t.iter().any(|x| x.name.ends_with(": clock")));
        let g = t.iter().find(|x| x.name.contains("getpid <=")).unwrap();
        assert!(g.pass, "{g:?}");
        let text = report().render();
        assert!(text.contains("PASS rvisor-systrap getpid <= 3.00 us (1.00 us)"));
        assert!(text.contains("MISS rvisor-systrap >= 20x faster than runsc-ptrace: fork"));
        let speed = text.split("speedup over").nth(1).unwrap();
        let stat = speed.lines().find(|l| l.starts_with("stat ")).unwrap();
        let cols: Vec<&str> = stat.split_whitespace().collect();
        assert_eq!(cols, ["stat", "x50.0", "-", "x10.0"]);
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
        assert!(
            t[0].detail.contains("no rvisor-systrap column"),
            "{:?}",
            t[0]
        );
        assert!(!r.render().contains("speedup over"));
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
        assert_eq!(j["targets"].as_array().unwrap().len(), 4);
    }
}
