//! The sentry's layers, checked: docs/architecture.md puts each top-level module on
//! a floor, and a module may name (`crate::x`) only those on floors below its own.
//! The arrows that still point up or sideways (a file of one module naming another
//! module not below it) are counted here per pair of modules against a budget, so
//! that none is added without this file (and the document) saying so. Comments and
//! the unit tests of a file are not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module and its floor, from the bottom up (docs/architecture.md).
const FLOORS: &[(&str, u8)] = &[
    ("errno", 0),
    ("config", 0),
    ("sys", 1),
    ("platform", 2),
    ("mm", 3),
    ("cbpf", 3),
    ("creds", 3),
    ("wait", 3),
    ("loader", 4),
    ("vfs", 4),
    ("fs", 5),
    ("net", 5),
    ("kernel", 6),
    ("syscalls", 7),
    ("control", 8),
    ("boot", 9),
];

/// Arrows that still point up or sideways: (from, to, how many files of `from`
/// name `to`). Lower a count when one goes (and the figures in
/// docs/architecture.md); never raise one.
const BUDGET: &[(&str, &str, usize)] = &[
    // procfs and cgroupfs show the kernel's state (procfs's comm files also
    // rename a thread of it); signalfd reads the signal masks' constants.
    ("fs", "kernel", 6),
    // /proc/net and /sys/class/net show the sockets and interfaces; unix sockets
    // answer the interface ioctls as every socket does.
    ("fs", "net", 3),
];

fn floor(module: &str) -> Option<u8> {
    FLOORS.iter().find(|(m, _)| *m == module).map(|&(_, f)| f)
}

/// The code of a source file: without its `mod tests` and its comments.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The arrows found: (from, to) and the files of `from` that name `to`.
type Arrows = BTreeMap<(String, String), BTreeSet<String>>;

/// Adds to `out` the modules that `text`, the file `file` of module `top`, names
/// (`crate::x`) and that are not below `top`.
fn count(text: &str, top: &str, file: &str, out: &mut Arrows) {
    let from = floor(top).expect("module has a floor");
    let code = code(text);
    for (i, _) in code.match_indices("crate::") {
        let to: String = code[i + 7..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if let Some(f) = floor(&to) {
            if to != top && f >= from {
                out.entry((top.to_string(), to))
                    .or_default()
                    .insert(file.to_string());
            }
        }
    }
}

/// [`count`] over the files under `dir` (its unit-test files left out).
fn scan(dir: &Path, top: &str, out: &mut Arrows) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() && name != "tests" {
            scan(&p, top, out);
        } else if name.ends_with(".rs") && name != "tests.rs" {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            count(&text, top, &p.display().to_string(), out);
        }
    }
}

/// Every arrow of the sentry that points up or sideways.
fn upward() -> Arrows {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    for (m, _) in FLOORS {
        scan(&src.join(m), m, &mut out);
        // A module in one file (`boot.rs`), or the root file of a directory.
        let file = src.join(format!("{m}.rs"));
        if let Ok(text) = std::fs::read_to_string(&file) {
            count(&text, m, &file.display().to_string(), &mut out);
        }
    }
    out
}

#[test]
fn every_module_has_a_floor() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for l in lib.lines() {
        if let Some(m) = l.strip_prefix("pub mod ") {
            let m = m.trim_end_matches(';');
            assert!(
                floor(m).is_some(),
                "module {m} has no floor: add it to FLOORS and docs/architecture.md"
            );
        }
    }
}

#[test]
fn no_reference_points_up_beyond_its_budget() {
    let found = upward();
    let mut over = Vec::new();
    for ((from, to), files) in &found {
        let budget = BUDGET
            .iter()
            .find(|(f, t, _)| f == from && t == to)
            .map_or(0, |&(_, _, b)| b);
        if files.len() > budget {
            over.push(format!("{from} -> {to}: {files:?} (budget {budget})"));
        }
    }
    assert!(
        over.is_empty(),
        "references pointing up the sentry's layers (docs/architecture.md): {over:?}; \
         all: {found:?}"
    );
}

#[test]
fn the_scan_sees_an_upward_reference() {
    // The check can fail: a made-up file of `vfs` naming `kernel` (above) and
    // `loader` (beside) is counted; its comment, `errno` (below) and its tests not.
    let mut out = BTreeMap::new();
    count(
        "use crate::kernel::Kernel; // crate::syscalls\nuse crate::errno::Errno;\n\
         use crate::loader;\nfn f() -> crate::kernel::Task {}\n\
         #[cfg(test)]\nmod tests { use crate::boot; }\n",
        "vfs",
        "x.rs",
        &mut out,
    );
    let got: Vec<(&str, &str, usize)> = out
        .iter()
        .map(|((f, t), files)| (f.as_str(), t.as_str(), files.len()))
        .collect();
    assert_eq!(got, [("vfs", "kernel", 1), ("vfs", "loader", 1)]);
}
