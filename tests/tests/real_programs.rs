//! The table of real programs (issue 14): node, Go, a JVM, git, gcc with make, perl,
//! PostgreSQL, the sqlite3 shell, Redis and CPython importing its whole standard
//! library, each from the host's Debian packages
//! (tests/setup.sh installs them), run natively and inside rvisor over the host root
//! with the same argv and environment; exit status and stdout must be equal. The
//! scripts are in tests/programs/: each prints only what is deterministic (fixed
//! dates for git's hashes, pids replaced, no timings), so a difference is a real one.
//! README's "Real programs" table shows the rows and their results.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rvisor_e2e::{
    diff::line_diff, native_command, platforms, run_with_timeout, rvisor_bin, sandbox_command,
    Outcome, Rootfs,
};

/// One row of the table.
struct Program {
    /// The test's name, and the row's.
    name: &'static str,
    /// Files written into the row's directory (mode 0644; directories 0755).
    files: &'static [(&'static str, &'static str)],
    /// Programs the row needs (a missing one fails: run tests/setup.sh).
    needs: &'static [&'static str],
    /// Run natively in the directory before anything else (compiling what the row
    /// runs); `{dir}` is the directory.
    prepare: &'static [&'static [&'static str]],
    /// The command run natively and in the sandbox; `{dir}` is the directory.
    argv: &'static [&'static str],
}

/// As `nobody`: PostgreSQL refuses to run as root. setpriv switches natively and
/// inside the sandbox alike.
const AS_NOBODY: [&str; 5] = [
    "/usr/bin/setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--",
];

const NODE: Program = Program {
    name: "node",
    files: &[("node.js", include_str!("../programs/node.js"))],
    needs: &["/usr/bin/node"],
    prepare: &[],
    argv: &["/usr/bin/node", "{dir}/node.js"],
};

const GO: Program = Program {
    name: "go",
    files: &[
        ("go/main.go", include_str!("../programs/go/main.go")),
        ("go/go.mod", include_str!("../programs/go/go.mod")),
        ("go.sh", include_str!("../programs/go.sh")),
    ],
    needs: &["/usr/bin/go"],
    prepare: &[&[
        "/bin/sh",
        "-c",
        "cd {dir}/go && HOME={dir}/gohome GOCACHE={dir}/gohome/cache GOPATH={dir}/gohome/path \
         GOFLAGS=-mod=mod GOTOOLCHAIN=local go build -o {dir}/goprog . && rm -rf {dir}/gohome",
    ]],
    argv: &["/bin/bash", "{dir}/go.sh", "{dir}"],
};

const GO_BUILD: Program = Program {
    name: "go_build",
    files: &[
        ("go/main.go", include_str!("../programs/go/main.go")),
        ("go/go.mod", include_str!("../programs/go/go.mod")),
        ("go_build.sh", include_str!("../programs/go_build.sh")),
    ],
    needs: &["/usr/bin/go"],
    prepare: &[],
    argv: &["/bin/bash", "{dir}/go_build.sh", "{dir}"],
};

const JAVA: Program = Program {
    name: "java",
    files: &[
        ("Jvm.java", include_str!("../programs/Jvm.java")),
        ("java.sh", include_str!("../programs/java.sh")),
    ],
    needs: &["/usr/bin/java", "/usr/bin/javac"],
    prepare: &[&["/usr/bin/javac", "-d", "{dir}/classes", "{dir}/Jvm.java"]],
    argv: &["/bin/bash", "{dir}/java.sh", "{dir}"],
};

const GIT: Program = Program {
    name: "git",
    files: &[("git.sh", include_str!("../programs/git.sh"))],
    needs: &["/usr/bin/git", "/usr/bin/python3"],
    prepare: &[],
    argv: &["/bin/bash", "{dir}/git.sh"],
};

const GCC_MAKE: Program = Program {
    name: "gcc_make",
    files: &[("make.sh", include_str!("../programs/make.sh"))],
    needs: &["/usr/bin/gcc", "/usr/bin/make"],
    prepare: &[],
    argv: &["/bin/bash", "{dir}/make.sh"],
};

const PERL: Program = Program {
    name: "perl",
    files: &[("perl.pl", include_str!("../programs/perl.pl"))],
    needs: &["/usr/bin/perl"],
    prepare: &[],
    argv: &["/usr/bin/perl", "{dir}/perl.pl"],
};

const POSTGRES: Program = Program {
    name: "postgres",
    files: &[("postgres.sh", include_str!("../programs/postgres.sh"))],
    needs: &["/usr/bin/psql", "/usr/bin/setpriv"],
    prepare: &[],
    argv: &[
        AS_NOBODY[0],
        AS_NOBODY[1],
        AS_NOBODY[2],
        AS_NOBODY[3],
        AS_NOBODY[4],
        "/bin/bash",
        "{dir}/postgres.sh",
    ],
};

const SQLITE3: Program = Program {
    name: "sqlite3",
    files: &[("sqlite.sh", include_str!("../programs/sqlite.sh"))],
    needs: &["/usr/bin/sqlite3"],
    prepare: &[],
    argv: &["/bin/bash", "{dir}/sqlite.sh"],
};

/// Every module of CPython's standard library imported, the table of which import
/// and which fail (and how) compared with native.
const PYTHON_IMPORTS: Program = Program {
    name: "python_imports",
    files: &[(
        "python_imports.py",
        include_str!("../programs/python_imports.py"),
    )],
    needs: &["/usr/bin/python3"],
    prepare: &[],
    argv: &["/usr/bin/python3", "{dir}/python_imports.py"],
};

const REDIS: Program = Program {
    name: "redis",
    files: &[("redis.sh", include_str!("../programs/redis.sh"))],
    needs: &[
        "/usr/bin/redis-server",
        "/usr/bin/redis-cli",
        "/usr/bin/redis-benchmark",
    ],
    prepare: &[],
    argv: &["/bin/bash", "{dir}/redis.sh"],
};

/// The row's directory under the temporary directory, readable by everyone (the
/// postgres row runs as nobody).
fn setup(p: &Program) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rvisor-real-{}-{}", p.name, std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in p.files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    for d in walk_dirs(&dir) {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn walk_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk_dirs(&e.path()));
        }
    }
    out
}

fn expand(argv: &[&str], dir: &Path) -> Vec<String> {
    let d = dir.display().to_string();
    argv.iter().map(|a| a.replace("{dir}", &d)).collect()
}

fn env() -> Vec<(String, String)> {
    vec![
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("LC_ALL".into(), "C".into()),
        ("HOME".into(), "/tmp".into()),
    ]
}

fn tail(b: &[u8], lines: usize) -> String {
    let s = String::from_utf8_lossy(b);
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

fn describe(what: &str, o: &Outcome) -> String {
    format!(
        "{what}: status {} in {:.1?}\n--- stderr (end) ---\n{}",
        o.status,
        o.elapsed,
        tail(&o.stderr, 30)
    )
}

/// Runs `p` natively, then in the sandbox on every platform; panics with the
/// differences.
fn run(p: &Program) {
    for n in p.needs {
        assert!(
            Path::new(n).exists(),
            "{}: {n} missing: run tests/setup.sh",
            p.name
        );
    }
    let rvisor = rvisor_bin().expect("rvisor binary");
    let dir = setup(p);
    let env = env();
    let limit = Duration::from_secs(240);
    for step in p.prepare {
        let mut cmd = native_command(&env, &expand(step, &dir));
        cmd.current_dir(&dir);
        let o = run_with_timeout(cmd, limit).expect("prepare");
        assert_eq!(o.status, 0, "{}", describe("prepare", &o));
    }
    for d in walk_dirs(&dir) {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let argv = expand(p.argv, &dir);
    let mut cmd = native_command(&env, &argv);
    cmd.current_dir(&dir);
    let native = run_with_timeout(cmd, limit).expect("native run");
    assert_eq!(
        native.status,
        0,
        "{}\n--- stdout ---\n{}",
        describe("native", &native),
        String::from_utf8_lossy(&native.stdout)
    );
    eprintln!("{}: native {:.1?}", p.name, native.elapsed);
    let mut failures = Vec::new();
    for plat in platforms() {
        let mut cmd = sandbox_command(&rvisor, &plat, &Rootfs::Host, &env, &argv);
        cmd.current_dir(&dir);
        match run_with_timeout(cmd, limit) {
            Err(e) => failures.push(format!("{plat}: {e}")),
            Ok(got) => {
                eprintln!("{}: {plat} {:.1?}", p.name, got.elapsed);
                if got.status != native.status || got.stdout != native.stdout {
                    failures.push(format!(
                        "{plat}: {}\n--- stdout, native against {plat} ---\n{}",
                        describe("sandbox", &got),
                        line_diff(
                            "native",
                            &String::from_utf8_lossy(&native.stdout),
                            &plat,
                            &String::from_utf8_lossy(&got.stdout)
                        )
                    ));
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{}:\n{}",
        p.name,
        failures.join("\n\n")
    );
}

#[test]
fn node() {
    run(&NODE);
}

#[test]
fn go() {
    run(&GO);
}

/// `go build` inside the sandbox (the go command runs the compiler and linker as
/// child processes through os/exec, reading their output pipes through its
/// edge-triggered epoll). It stalled for 120 s about one run in two while a blocked
/// `epoll_pwait` held every watched file open: the child's pipe write end, added to
/// the epoll and removed again by the go command, then never closed when the child
/// exited (c/abi_epoll_close_wake shows it).
#[test]
fn go_build() {
    run(&GO_BUILD);
}

#[test]
fn java() {
    run(&JAVA);
}

#[test]
fn git() {
    run(&GIT);
}

#[test]
fn gcc_make() {
    run(&GCC_MAKE);
}

#[test]
fn perl() {
    run(&PERL);
}

#[test]
fn postgres() {
    run(&POSTGRES);
}

#[test]
fn sqlite3() {
    run(&SQLITE3);
}

#[test]
fn redis() {
    run(&REDIS);
}

#[test]
fn python_imports() {
    run(&PYTHON_IMPORTS);
}
