//! No path trick inside the sandbox reaches a host file outside its rootfs. Each test
//! builds a rootfs in a temporary directory (busybox and the `tests/c/fs/escape.c`
//! program), puts a secret next to it (outside), plants symlinks pointing out, and
//! runs the program as root inside `rvisor do --rootfs`: every attempt must fail and
//! the secret must never appear. Also checks that the sentry itself has no host root.

use std::os::fd::AsRawFd;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvisor_e2e::{run_with_timeout, Link, Outcome};

const SECRET: &str = "TOPSECRET-rvisor-escape";

struct Fixture {
    base: PathBuf,
    rootfs: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn fixture() -> Fixture {
    static N: AtomicUsize = AtomicUsize::new(0);
    let base = std::env::temp_dir().join(format!(
        "rvisor-escape-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&base);
    let rootfs = base.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("sub")).unwrap();
    std::fs::write(base.join("secret"), format!("{SECRET}\n")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    let src = rvisor_e2e::c_dir().join("fs/escape.c");
    rvisor_e2e::compile(&src, Link::Static, &rootfs.join("bin/escape"), &[]).unwrap();
    std::fs::write(rootfs.join("inside.txt"), "inside\n").unwrap();
    symlink(base.join("secret"), rootfs.join("abs")).unwrap();
    symlink("../secret", rootfs.join("rel")).unwrap();
    symlink("..", rootfs.join("dirup")).unwrap();
    symlink(&base, rootfs.join("hostdir")).unwrap();
    symlink("../..", rootfs.join("sub/out")).unwrap();
    Fixture { base, rootfs }
}

fn rvisor(overlay: &str, rootfs: &Path, argv: &[&str]) -> Command {
    let mut cmd = Command::new(rvisor_e2e::rvisor_bin().unwrap());
    cmd.arg("--platform=ptrace")
        .arg(format!("--overlay={overlay}"))
        .arg("do")
        .arg("--rootfs")
        .arg(rootfs)
        .arg("--")
        .args(argv);
    cmd
}

fn run(cmd: Command) -> Outcome {
    run_with_timeout(cmd, rvisor_e2e::timeout_from_env(Duration::from_secs(60))).unwrap()
}

fn attempts(overlay: &str) {
    let f = fixture();
    let host = f.base.to_str().unwrap();
    let out = run(rvisor(overlay, &f.rootfs, &["/bin/escape", host]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "LEAK:\n{stdout}"
    );
    assert!(stdout.contains("inside: OK inside"), "{stdout}");
    let mut tried = 0;
    for line in stdout.lines() {
        let Some((name, res)) = line.split_once(": ") else {
            continue;
        };
        if name == "inside" || name.starts_with("cwd ") {
            continue;
        }
        tried += 1;
        assert!(!res.starts_with("OK"), "{name} read something: {line}");
    }
    assert!(tried >= 20, "only {tried} attempts ran:\n{stdout}");
    assert!(stdout.contains("cwd after chdir ..: /\n"), "{stdout}");

    // Busybox applets, one per trick (the shell cannot fork yet).
    for path in [
        "/../secret",
        "/rel",
        "/abs",
        "/dirup/secret",
        "/hostdir/secret",
    ] {
        let out = run(rvisor(overlay, &f.rootfs, &["/bin/busybox", "cat", path]));
        assert_ne!(out.status, 0, "busybox cat {path} succeeded");
        let all = [out.stdout, out.stderr].concat();
        assert!(
            !String::from_utf8_lossy(&all).contains(SECRET),
            "LEAK via cat {path}"
        );
    }
    let out = run(rvisor(
        overlay,
        &f.rootfs,
        &["/bin/busybox", "ls", "/../../.."],
    ));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("inside.txt") && !listing.contains("secret"),
        "{listing}"
    );
}

#[test]
fn path_tricks_fail_with_memory_overlay() {
    attempts("memory");
}

#[test]
fn path_tricks_fail_with_no_overlay() {
    attempts("none");
}

/// A host thread keeps swapping each `/raceK` between a directory holding a decoy
/// and symlinks pointing out of the rootfs while the sandboxed program opens
/// `/raceK/secret` thousands of times: it reads the decoy or fails, never the secret.
/// (The sentry caches a name once looked up, so each `/raceK` races on its first
/// lookup; the gofer's own test races every walk.)
#[test]
fn symlink_swap_race_never_leaks() {
    const DIRS: usize = 64;
    let f = fixture();
    let r = &f.rootfs;
    for k in 0..DIRS {
        std::fs::create_dir(r.join(format!("race{k}"))).unwrap();
        std::fs::write(r.join(format!("race{k}/secret")), "decoy\n").unwrap();
    }
    symlink(&f.base, r.join("link_abs")).unwrap();
    symlink("..", r.join("link_rel")).unwrap();
    std::fs::create_dir(r.join("parked")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (stop, swaps, r) = (stop.clone(), swaps.clone(), r.clone());
        std::thread::spawn(move || {
            let parked = r.join("parked/dir");
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                let race = r.join(format!("race{k}"));
                let link = r.join(if k % 2 == 0 { "link_abs" } else { "link_rel" });
                // dir out, link in; link out, dir back in.
                std::fs::rename(&race, &parked).unwrap();
                std::fs::rename(&link, &race).unwrap();
                std::thread::yield_now();
                std::fs::rename(&race, &link).unwrap();
                std::fs::rename(&parked, &race).unwrap();
                swaps.fetch_add(1, Ordering::Relaxed);
                k = (k + 1) % DIRS;
            }
        })
    };
    let out = run(rvisor(
        "none",
        r,
        &["/bin/escape", "--race", "3000", &DIRS.to_string()],
    ));
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(SECRET), "LEAK:\n{stdout}");
    assert_eq!(
        out.status,
        0,
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 leaks"), "{stdout}");
    assert!(
        !stdout.contains(" 0 decoys"),
        "the program never read the decoy: {stdout}"
    );
    assert!(
        swaps.load(Ordering::Relaxed) > 10,
        "the swapper did not run"
    );
}

/// The sentry process itself sees an empty root: its `/` (seen from the host as
/// `/proc/PID/root`) holds nothing, it has no other mount (no procfs: app memory
/// goes through `process_vm_*`), and it holds no descriptor into a host `/proc`.
#[test]
fn sentry_has_no_host_root() {
    let f = fixture();
    let mut cmd = rvisor("memory", &f.rootfs, &["/bin/busybox", "sleep", "3"]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // The caller leaks a host file on fd 200 (as a CI runner's lock can): it must not
    // reach the gofer or the sentry.
    let secret = std::fs::File::open(f.base.join("secret")).unwrap();
    let secret_fd = secret.as_raw_fd();
    // SAFETY: dup2, getrlimit and setrlimit are async-signal-safe and only edit the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(secret_fd, 200) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // And lets processes dump core as far as it may: the sandbox's must not.
            let mut core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_CORE, &mut core) == 0 {
                core.rlim_cur = core.rlim_max;
                libc::setrlimit(libc::RLIMIT_CORE, &core);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = None;
    let mut gofer_fds = None;
    // The "Max core file size" line of process `k`'s limits.
    let core_limit = |k: &str| -> String {
        std::fs::read_to_string(format!("/proc/{k}/limits"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .unwrap_or_default()
            .to_string()
    };
    // Where each fd of process `k` points.
    let fds_of = |k: &str| -> Vec<String> {
        std::fs::read_dir(format!("/proc/{k}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .map(|l| l.to_string_lossy().into_owned())
            .collect()
    };
    while Instant::now() < deadline && (seen.is_none() || gofer_fds.is_none()) {
        let kids =
            std::fs::read_to_string(format!("/proc/{}/task/{}/children", child.id(), child.id()))
                .unwrap_or_default();
        for k in kids.split_whitespace() {
            let cmdline = std::fs::read(format!("/proc/{k}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.contains("\0gofer\0") {
                gofer_fds = Some((fds_of(k), core_limit(k)));
            }
            if !cmdline.contains("\0boot\0") {
                continue;
            }
            let mounts =
                std::fs::read_to_string(format!("/proc/{k}/mountinfo")).unwrap_or_default();
            if mounts.contains("rvisor-sentry") {
                let names: Vec<String> = std::fs::read_dir(format!("/proc/{k}/root"))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect();
                seen = Some((names, mounts, fds_of(k), core_limit(k)));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let (gofer_fds, gofer_core) = gofer_fds.expect("no gofer found");
    let (names, mounts, fds, sentry_core) = seen.expect("no confined sentry found");
    // Neither dumps core, whatever the caller allows: their memory is the sandbox's.
    for (who, line) in [("gofer", &gofer_core), ("sentry", &sentry_core)] {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words.get(4..6), Some(&["0", "0"][..]), "{who}: {line}");
    }
    for l in fds.iter().chain(&gofer_fds) {
        assert!(
            !l.ends_with("/secret"),
            "a leaked host fd reached the sandbox: {l}"
        );
    }
    assert!(names.is_empty(), "sentry root holds {names:?}");
    assert_eq!(mounts.lines().count(), 1, "sentry mounts:\n{mounts}");
    assert!(!mounts.contains(" - proc "), "sentry mounts:\n{mounts}");
    assert!(
        fds.iter().all(|l| !l.starts_with("/proc")),
        "sentry fds: {fds:?}"
    );
}
