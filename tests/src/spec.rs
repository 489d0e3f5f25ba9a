//! The test spec of a C program, read from `// e2e: key=value` comment lines in its source.
//!
//! Keys (all optional; repeatable ones accumulate):
//! - `case=NAME`: starts a variant; directives before the first `case=` apply to every case.
//!   Without any `case=` the program is one test.
//! - `arg=VALUE` (repeatable): one argument, taken verbatim (may contain spaces, may be empty).
//! - `env=K=V` (repeatable): environment variable (natively the environment is exactly these;
//!   in the sandbox they are passed with `--env`).
//! - `exit=N`: expected shell-style status (128+N for signal N), checked on both sides.
//! - `stdout=LINE` (repeatable): expected stdout, one line each. A file `NAME.expected` or
//!   `NAME.CASE.expected` next to the source gives the whole expected stdout instead.
//! - `mode=diff|sandbox-only`: `diff` (default) also runs natively and requires equal results;
//!   `sandbox-only` skips the native run (for behaviour that is sandbox-specific).
//! - `file=NAME:SIZE` (repeatable): create a deterministic data file in the test directory.
//! - `stderr=ignore|contains|equal`: how the sandbox's stderr is checked against native's
//!   (default `ignore`; `contains` tolerates extra diagnostics from rvisor itself).
//! - `link=static|static-pie` (repeatable): restrict linking modes (default both).
//! - `normalize=REGEX => REPLACEMENT` (repeatable): rewrite stdout of both sides first.
//! - `cflags=FLAG` (repeatable): extra gcc flag.
//! - `rootfs=host|testdir`: `testdir` runs with `--rootfs <test dir>` (program at `/NAME`).
//! - `timeout=SECS`: per-run timeout.
//! - `ignore=REASON`: the test is listed but ignored (e.g. waiting for an issue).
//!
//! In `arg`, `env` and expected stdout, `{dir}` is replaced by the test directory as the
//! program sees it (empty when the directory is the sandbox root).

use crate::Link;
use std::path::Path;

/// How the results are judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Run natively and in the sandbox; results must match.
    Diff,
    /// Run only in the sandbox; results must match the expectations.
    SandboxOnly,
}

/// How stderr is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StderrCheck {
    /// Not compared.
    Ignore,
    /// The sandbox's stderr must contain the native (or expected) stderr.
    Contains,
    /// Must be equal.
    Equal,
}

/// Where the program's root is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootfsKind {
    /// Host root read-only; the program runs from the test directory by absolute path.
    Host,
    /// The test directory is the sandbox root.
    TestDir,
}

/// One runnable test case of a program.
#[derive(Clone, Debug)]
pub struct Case {
    /// Program name (source file stem).
    pub program: String,
    /// Case name, if the program has several.
    pub case: Option<String>,
    /// Arguments after argv[0].
    pub args: Vec<String>,
    /// Environment.
    pub env: Vec<(String, String)>,
    /// Expected status.
    pub exit: Option<i32>,
    /// Expected stdout.
    pub stdout: Option<String>,
    /// Judging mode.
    pub mode: Mode,
    /// Data files to create: (name, size).
    pub files: Vec<(String, usize)>,
    /// Stderr comparison.
    pub stderr: StderrCheck,
    /// Linking modes to test.
    pub links: Vec<Link>,
    /// Stdout rewrites applied to both sides.
    pub normalize: Vec<(String, String)>,
    /// Extra gcc flags.
    pub cflags: Vec<String>,
    /// Root filesystem.
    pub rootfs: RootfsKind,
    /// Per-run timeout in seconds.
    pub timeout_secs: Option<u64>,
    /// Reason to ignore.
    pub ignore: Option<String>,
}

impl Case {
    /// A case with defaults: diff mode, no args, status 0 expected, no link restriction.
    pub fn new(program: &str) -> Case {
        Case {
            program: program.to_string(),
            case: None,
            args: Vec::new(),
            env: Vec::new(),
            exit: None,
            stdout: None,
            mode: Mode::Diff,
            files: Vec::new(),
            stderr: StderrCheck::Ignore,
            links: Vec::new(),
            normalize: Vec::new(),
            cflags: Vec::new(),
            rootfs: RootfsKind::Host,
            timeout_secs: None,
            ignore: None,
        }
    }

    /// `program` or `program.case`.
    pub fn display_name(&self) -> String {
        match &self.case {
            Some(c) => format!("{}.{}", self.program, c),
            None => self.program.clone(),
        }
    }

    fn apply(&mut self, key: &str, val: &str) -> Result<(), String> {
        match key {
            "arg" => self.args.push(val.to_string()),
            "env" => {
                let (k, v) = val.split_once('=').ok_or("env needs K=V")?;
                self.env.push((k.to_string(), v.to_string()));
            }
            "exit" => self.exit = Some(val.parse().map_err(|_| format!("bad exit {val:?}"))?),
            "stdout" => {
                let s = self.stdout.get_or_insert_with(String::new);
                s.push_str(val);
                s.push('\n');
            }
            "mode" => {
                self.mode = match val {
                    "diff" => Mode::Diff,
                    "sandbox-only" => Mode::SandboxOnly,
                    _ => return Err(format!("bad mode {val:?}")),
                }
            }
            "file" => {
                let (n, s) = val.rsplit_once(':').ok_or("file needs NAME:SIZE")?;
                let size = s.parse().map_err(|_| format!("bad size {s:?}"))?;
                if n.is_empty() || n.contains('/') {
                    return Err(format!("bad file name {n:?}"));
                }
                self.files.push((n.to_string(), size));
            }
            "stderr" => {
                self.stderr = match val {
                    "ignore" => StderrCheck::Ignore,
                    "contains" => StderrCheck::Contains,
                    "equal" => StderrCheck::Equal,
                    _ => return Err(format!("bad stderr {val:?}")),
                }
            }
            "link" => self
                .links
                .push(Link::parse(val).ok_or_else(|| format!("bad link {val:?}"))?),
            "normalize" => {
                let (re, rep) = val.split_once(" => ").ok_or("normalize needs RE => REP")?;
                regex::Regex::new(re).map_err(|e| format!("bad regex {re:?}: {e}"))?;
                self.normalize.push((re.to_string(), rep.to_string()));
            }
            "cflags" => self.cflags.push(val.to_string()),
            "rootfs" => {
                self.rootfs = match val {
                    "host" => RootfsKind::Host,
                    "testdir" => RootfsKind::TestDir,
                    _ => return Err(format!("bad rootfs {val:?}")),
                }
            }
            "timeout" => {
                self.timeout_secs = Some(val.parse().map_err(|_| format!("bad timeout {val:?}"))?)
            }
            "ignore" => self.ignore = Some(val.to_string()),
            _ => return Err(format!("unknown key {key:?}")),
        }
        Ok(())
    }

    /// Applies the `normalize` rules to an output.
    pub fn normalized(&self, s: &str) -> String {
        let mut s = s.to_string();
        for (re, rep) in &self.normalize {
            // Validated at parse time.
            if let Ok(r) = regex::Regex::new(re) {
                s = r.replace_all(&s, rep.as_str()).into_owned();
            }
        }
        s
    }
}

/// Parses the `// e2e:` directives of `src` (a C source named `program.c`) into cases.
pub fn parse(program: &str, text: &str) -> Result<Vec<Case>, String> {
    let mut base = Case::new(program);
    let mut cases: Vec<Case> = Vec::new();
    for (no, line) in text.lines().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("//") else {
            continue;
        };
        let Some(d) = rest.trim_start().strip_prefix("e2e:") else {
            continue;
        };
        let d = d.strip_prefix(' ').unwrap_or(d);
        let (key, val) = d.split_once('=').unwrap_or((d, ""));
        let err = |e: String| format!("{program}.c:{}: {e}", no + 1);
        if key == "case" {
            let mut c = base.clone();
            if val.is_empty() {
                return Err(err("empty case name".into()));
            }
            c.case = Some(val.to_string());
            cases.push(c);
            continue;
        }
        let target = cases.last_mut().unwrap_or(&mut base);
        target.apply(key.trim(), val).map_err(err)?;
    }
    if cases.is_empty() {
        cases.push(base);
    }
    for c in &mut cases {
        if c.links.is_empty() {
            c.links = Link::ALL.to_vec();
        }
    }
    Ok(cases)
}

/// Reads every `*.c` program in `dir` (sorted by name) with its cases; `NAME.expected` /
/// `NAME.CASE.expected` files override `stdout=` lines.
pub fn load_dir(dir: &Path) -> Result<Vec<Case>, String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".c").map(String::from))
        .collect();
    names.sort();
    let mut all = Vec::new();
    for name in names {
        let path = dir.join(format!("{name}.c"));
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        for mut c in parse(&name, &text)? {
            let file = match &c.case {
                Some(cs) => dir.join(format!("{name}.{cs}.expected")),
                None => dir.join(format!("{name}.expected")),
            };
            if let Ok(s) = std::fs::read_to_string(&file) {
                c.stdout = Some(s);
            }
            all.push(c);
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_inherit_common_directives() {
        let src = "// e2e: env=A=1\n// e2e: case=x\n// e2e: arg=a b\n// e2e: exit=3\n\
                   // e2e: case=y\n// e2e: arg=\n// e2e: stdout=hi\nint main;\n";
        let cs = parse("p", src).unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0].display_name(), "p.x");
        assert_eq!(cs[0].args, vec!["a b"]);
        assert_eq!(cs[0].exit, Some(3));
        assert_eq!(cs[1].args, vec![""]);
        assert_eq!(cs[1].exit, None);
        assert_eq!(cs[1].stdout.as_deref(), Some("hi\n"));
        assert_eq!(cs[1].env, vec![("A".to_string(), "1".to_string())]);
        assert_eq!(cs[1].links, Link::ALL.to_vec());
    }

    #[test]
    fn rejects_unknown_keys() {
        assert!(parse("p", "// e2e: bogus=1\n").is_err());
        assert!(parse("p", "// e2e: mode=weird\n").is_err());
    }

    #[test]
    fn normalizes() {
        let cs = parse("p", "// e2e: normalize=pid \\d+ => pid N\n").unwrap();
        assert_eq!(cs[0].normalized("a pid 123\n"), "a pid N\n");
    }
}
