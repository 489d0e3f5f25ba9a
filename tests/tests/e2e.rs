//! Differential end-to-end tests: every C program under `tests/c/` (compiled now with
//! `gcc -static` and `gcc -static-pie`) and a few busybox applets run natively and inside
//! `rvisor --platform=P do`, for each P in `$RVISOR_PLATFORMS` (default `ptrace,systrap`); stdout and
//! exit status must match each other and the program's `// e2e:` expectations.
//!
//! Test names are `c/PROGRAM[.CASE]/LINK/PLATFORM` and `busybox/NAME/PLATFORM`, so
//! `cargo test -p rvisor-e2e -- c/hello` or `-- /ptrace` select subsets.

use libtest_mimic::{Arguments, Failed, Trial};
use rvisor_e2e::diff::line_diff;
use rvisor_e2e::spec::{self, Case, Mode, RootfsKind, StderrCheck};
use rvisor_e2e::{Link, Outcome, Rootfs};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// What the test runs.
#[derive(Clone)]
enum Exe {
    /// A program of tests/c compiled with this linking mode, copied into the test directory.
    Compiled(Link),
    /// An existing host binary (visible at the same path in the sandbox).
    Host(PathBuf),
}

/// One compilation, done by whichever trial needs it first.
type BuildCell = Arc<OnceLock<Result<PathBuf, String>>>;

/// State shared by all trials.
struct Env {
    root: PathBuf,
    rvisor: Result<PathBuf, String>,
    builds: Mutex<HashMap<(String, Link), BuildCell>>,
}

/// A busybox applet test: argv after "busybox", expected stdout and status.
struct Applet {
    name: &'static str,
    args: &'static [&'static str],
    stdout: &'static str,
    status: i32,
    ignore: Option<&'static str>,
}

impl Env {
    /// Compiles each (program, link) once per test process, whichever trial needs it first.
    fn build(&self, case: &Case, link: Link) -> Result<PathBuf, String> {
        let cell = {
            let mut m = self.builds.lock().map_err(|_| "build cache poisoned")?;
            m.entry((case.program.clone(), link)).or_default().clone()
        };
        cell.get_or_init(|| {
            let dir = self.root.join("build");
            std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
            let out = dir.join(format!("{}-{}", case.program, link.name()));
            let src = rvisor_e2e::c_dir().join(format!("{}.c", case.program));
            rvisor_e2e::compile(&src, link, &out, &case.cflags)?;
            Ok(out)
        })
        .clone()
    }
}

fn busybox_cases() -> Vec<Case> {
    let applet = |name, args, stdout, status| Applet {
        name,
        args,
        stdout,
        status,
        ignore: None,
    };
    let table = [
        applet("echo", &["echo", "hi"], "hi\n", 0),
        applet("true", &["true"], "", 0),
        applet("false", &["false"], "", 1),
        applet("uname", &["uname", "-s"], "Linux\n", 0),
        applet("basename", &["basename", "/a/b/c.txt", ".txt"], "c\n", 0),
        // A builtin and arithmetic only: ash runs this without forking.
        applet("sh_arith", &["sh", "-c", "echo $((6*7))"], "42\n", 0),
        Applet {
            ignore: None,
            ..applet(
                "sh_fork",
                &["sh", "-c", "/bin/busybox true; echo status=$?"],
                "status=0\n",
                0,
            )
        },
    ];
    table
        .iter()
        .map(|a| {
            let mut c = Case::new(a.name);
            c.args = a.args.iter().map(|s| s.to_string()).collect();
            c.stdout = Some(a.stdout.to_string());
            c.exit = Some(a.status);
            c.ignore = a.ignore.map(String::from);
            c
        })
        .collect()
}

fn main() {
    let args = Arguments::from_args();
    let platforms = rvisor_e2e::platforms();
    let root = std::env::temp_dir().join(format!("rvisor-e2e-{}", std::process::id()));
    let rvisor = rvisor_e2e::rvisor_bin();
    match &rvisor {
        Ok(p) => eprintln!("e2e: rvisor = {}, platforms = {platforms:?}", p.display()),
        Err(e) => eprintln!("e2e: {e}"),
    }
    let env = Arc::new(Env {
        root: root.clone(),
        rvisor,
        builds: Mutex::new(HashMap::new()),
    });

    let mut trials = Vec::new();
    match spec::load_dir(&rvisor_e2e::c_dir()) {
        Ok(cases) => {
            for case in cases {
                for &link in &case.links {
                    for p in &platforms {
                        let name = format!("c/{}/{}/{p}", case.display_name(), link.name());
                        trials.push(trial(&env, name, case.clone(), Exe::Compiled(link), p));
                    }
                }
            }
        }
        Err(e) => trials.push(Trial::test("c/spec", move || Err(Failed::from(e)))),
    }
    for case in busybox_cases() {
        for p in &platforms {
            let name = format!("busybox/{}/{p}", case.program);
            let exe = Exe::Host(PathBuf::from("/bin/busybox"));
            trials.push(trial(&env, name, case.clone(), exe, p));
        }
    }

    let conclusion = libtest_mimic::run(&args, trials);
    if conclusion.has_failed() {
        eprintln!(
            "e2e: failed tests keep their files under {}",
            root.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&root);
    }
    conclusion.exit();
}

fn trial(env: &Arc<Env>, name: String, case: Case, exe: Exe, platform: &str) -> Trial {
    let ignore = case.ignore.clone();
    let env = Arc::clone(env);
    let platform = platform.to_string();
    let dir_name = name.replace('/', "_");
    let t = Trial::test(name, move || {
        let dir = env.root.join(dir_name);
        let r = check(&env, &case, &exe, &platform, &dir);
        match r {
            Ok(()) => {
                let _ = std::fs::remove_dir_all(&dir);
                Ok(())
            }
            Err(e) => Err(Failed::from(format!(
                "{e}\n(test directory: {})",
                dir.display()
            ))),
        }
    });
    match ignore {
        Some(reason) => {
            eprintln!("e2e: {} is ignored: {reason}", t.name());
            t.with_ignored_flag(true)
        }
        None => t,
    }
}

/// Substitutes `{dir}` in a spec value.
fn subst(s: &str, dir: &str) -> String {
    s.replace("{dir}", dir)
}

fn check(env: &Env, case: &Case, exe: &Exe, platform: &str, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let host_exe = match exe {
        Exe::Compiled(link) => {
            let built = env.build(case, *link)?;
            let dst = dir.join(&case.program);
            // A hard link, not a copy: a file this process has open for writing can be
            // inherited by a child another thread forks meanwhile, making exec fail ETXTBSY.
            std::fs::hard_link(&built, &dst)
                .or_else(|_| std::fs::copy(&built, &dst).map(|_| ()))
                .map_err(|e| format!("copy to {}: {e}", dst.display()))?;
            dst
        }
        Exe::Host(p) => p.clone(),
    };
    for (name, size) in &case.files {
        rvisor_e2e::write_data_file(&dir.join(name), *size)
            .map_err(|e| format!("create {name}: {e}"))?;
    }
    let timeout =
        rvisor_e2e::timeout_from_env(Duration::from_secs(case.timeout_secs.unwrap_or(20)));
    let host_dir = dir.to_str().ok_or("non-UTF-8 temp dir")?.to_string();

    // How the program is named and where {dir} is, seen from inside the sandbox.
    let (sb_rootfs, sb_exe, sb_dir) = match (case.rootfs, exe) {
        (RootfsKind::TestDir, Exe::Compiled(_)) => (
            Rootfs::Dir(dir.to_path_buf()),
            format!("/{}", case.program),
            String::new(),
        ),
        (RootfsKind::TestDir, Exe::Host(_)) => {
            return Err("rootfs=testdir needs a compiled program".into())
        }
        (RootfsKind::Host, _) => (
            Rootfs::Host,
            host_exe.to_str().ok_or("non-UTF-8 path")?.to_string(),
            host_dir.clone(),
        ),
    };

    let native = if case.mode == Mode::Diff {
        let mut argv = vec![host_exe.to_str().ok_or("non-UTF-8 path")?.to_string()];
        argv.extend(case.args.iter().map(|a| subst(a, &host_dir)));
        let envv: Vec<(String, String)> = case
            .env
            .iter()
            .map(|(k, v)| (k.clone(), subst(v, &host_dir)))
            .collect();
        let mut cmd = rvisor_e2e::native_command(&envv, &argv);
        cmd.current_dir(dir);
        let out = rvisor_e2e::run_with_timeout(cmd, timeout).map_err(|e| format!("native: {e}"))?;
        let problems = expectation_problems(case, &out, &host_dir);
        if !problems.is_empty() {
            return Err(format!(
                "the NATIVE run does not meet the program's expectations (fix the test program \
                 or its // e2e: lines):\n{}\n{}",
                problems.join("\n"),
                describe("native", &out)
            ));
        }
        Some(out)
    } else {
        None
    };

    let rvisor = env.rvisor.as_ref().map_err(|e| e.clone())?;
    let mut argv = vec![sb_exe];
    argv.extend(case.args.iter().map(|a| subst(a, &sb_dir)));
    let envv: Vec<(String, String)> = case
        .env
        .iter()
        .map(|(k, v)| (k.clone(), subst(v, &sb_dir)))
        .collect();
    let mut cmd = rvisor_e2e::sandbox_command(rvisor, platform, &sb_rootfs, &envv, &argv);
    cmd.current_dir(dir);
    let sandbox =
        rvisor_e2e::run_with_timeout(cmd, timeout).map_err(|e| format!("sandbox: {e}"))?;

    let mut problems = expectation_problems(case, &sandbox, &sb_dir);
    if let Some(native) = &native {
        let (n, s) = (
            case.normalized(&String::from_utf8_lossy(&native.stdout)),
            case.normalized(&String::from_utf8_lossy(&sandbox.stdout)),
        );
        if n != s {
            problems.push(format!(
                "stdout differs from native:\n{}",
                line_diff("native", &n, "sandbox", &s)
            ));
        }
        if native.status != sandbox.status {
            problems.push(format!(
                "status differs: native {} sandbox {}",
                native.status, sandbox.status
            ));
        }
        let (ne, se) = (
            String::from_utf8_lossy(&native.stderr),
            String::from_utf8_lossy(&sandbox.stderr),
        );
        match case.stderr {
            StderrCheck::Ignore => {}
            StderrCheck::Contains if !se.contains(ne.as_ref()) => problems.push(format!(
                "sandbox stderr does not contain native stderr {ne:?}"
            )),
            StderrCheck::Equal if ne != se => problems.push(format!(
                "stderr differs from native:\n{}",
                line_diff("native", &ne, "sandbox", &se)
            )),
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} (platform {platform}):\n{}\n{}",
            case.display_name(),
            problems.join("\n"),
            describe("sandbox", &sandbox)
        ))
    }
}

/// Checks an outcome against the spec's expected status and stdout.
fn expectation_problems(case: &Case, out: &Outcome, dir: &str) -> Vec<String> {
    let mut p = Vec::new();
    if let Some(want) = case.exit {
        if out.status != want {
            p.push(format!("status {} (expected {want})", out.status));
        }
    } else if out.status != 0 {
        p.push(format!("status {} (expected 0)", out.status));
    }
    if let Some(want) = &case.stdout {
        let want = case.normalized(&subst(want, dir));
        let got = case.normalized(&String::from_utf8_lossy(&out.stdout));
        if want != got {
            p.push(format!(
                "stdout differs from expected:\n{}",
                line_diff("expected", &want, "got", &got)
            ));
        }
    }
    p
}

/// Status, timing and (truncated) stderr of a run, for failure messages.
fn describe(who: &str, out: &Outcome) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    let err = match err.char_indices().rev().nth(4000) {
        Some((cut, _)) => format!("...{}", &err[cut..]),
        None => err.into_owned(),
    };
    format!(
        "{who}: status {} after {:?}; stderr:\n{err}",
        out.status, out.elapsed
    )
}
