//! No path trick inside the sandbox reaches a host file outside its rootfs. Each test
//! builds a rootfs in a temporary directory (busybox and the `tests/c/fs/escape.c`
//! program), puts a secret next to it (outside), plants symlinks pointing out, and
//! runs the program as root inside `rvisor do --rootfs`: every attempt must fail and
//! the secret must never appear. Also checks that the sentry itself has no host root,
//! and, from the host, that every process of the sandbox is confined (namespaces,
//! identity, capabilities, no_new_privs), that nothing outside is visible or
//! signalable from inside, and that a sentry panic ends the whole sandbox at once.
//! Every test runs on both platforms.

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
    let src = rvisor_e2e::c_dir().join("boundary/host_probe.c");
    rvisor_e2e::compile(&src, Link::Static, &rootfs.join("bin/probe"), &[]).unwrap();
    std::fs::write(rootfs.join("inside.txt"), "inside\n").unwrap();
    symlink(base.join("secret"), rootfs.join("abs")).unwrap();
    symlink("../secret", rootfs.join("rel")).unwrap();
    symlink("..", rootfs.join("dirup")).unwrap();
    symlink(&base, rootfs.join("hostdir")).unwrap();
    symlink("../..", rootfs.join("sub/out")).unwrap();
    Fixture { base, rootfs }
}

/// The platforms every test here runs on.
const PLATFORMS: [&str; 2] = ["ptrace", "systrap"];

fn rvisor(platform: &str, overlay: &str, rootfs: &Path, argv: &[&str]) -> Command {
    let mut cmd = Command::new(rvisor_e2e::rvisor_bin().unwrap());
    cmd.arg(format!("--platform={platform}"))
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

fn attempts(platform: &str, overlay: &str) {
    let f = fixture();
    let host = f.base.to_str().unwrap();
    // With CAP_SYS_ADMIN, so the mount-tree tricks (mount, pivot_root, setns) are
    // allowed and tried.
    let mut cmd = Command::new(rvisor_e2e::rvisor_bin().unwrap());
    cmd.arg(format!("--platform={platform}"))
        .arg(format!("--overlay={overlay}"))
        .args(["do", "--cap-add", "CAP_SYS_ADMIN", "--rootfs"])
        .arg(&f.rootfs)
        .args(["--", "/bin/escape", host]);
    let out = run(cmd);
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
    // The mount-tree tricks (rbind of /, pivot_root and detaching the old root,
    // setns back) ran, and none of their reads above succeeded.
    for step in ["rbind ok", "pivot ok", "detach ok", "setns ok"] {
        assert!(
            stdout.contains(&format!("step {step}\n")),
            "{step}:\n{stdout}"
        );
    }

    // Busybox applets, one per trick (the shell cannot fork yet).
    for path in [
        "/../secret",
        "/rel",
        "/abs",
        "/dirup/secret",
        "/hostdir/secret",
    ] {
        let out = run(rvisor(
            platform,
            overlay,
            &f.rootfs,
            &["/bin/busybox", "cat", path],
        ));
        assert_ne!(out.status, 0, "busybox cat {path} succeeded");
        let all = [out.stdout, out.stderr].concat();
        assert!(
            !String::from_utf8_lossy(&all).contains(SECRET),
            "LEAK via cat {path}"
        );
    }
    let out = run(rvisor(
        platform,
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
    for p in PLATFORMS {
        attempts(p, "memory");
    }
}

#[test]
fn path_tricks_fail_with_no_overlay() {
    for p in PLATFORMS {
        attempts(p, "none");
    }
}

/// A host thread keeps swapping each `/raceK` between a directory holding a decoy
/// and symlinks pointing out of the rootfs while the sandboxed program opens
/// `/raceK/secret` thousands of times: it reads the decoy or fails, never the secret.
/// (The sentry caches a name once looked up, so each `/raceK` races on its first
/// lookup; the gofer's own test races every walk.)
#[test]
fn symlink_swap_race_never_leaks() {
    for p in PLATFORMS {
        symlink_swap_race(p);
    }
}

fn symlink_swap_race(platform: &str) {
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
        platform,
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
    for p in PLATFORMS {
        sentry_has_no_host_root_on(p);
    }
}

fn sentry_has_no_host_root_on(platform: &str) {
    let f = fixture();
    let mut cmd = rvisor(
        platform,
        "memory",
        &f.rootfs,
        &["/bin/busybox", "sleep", "3"],
    );
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
            // boot's child is the sentry proper (pid 1 of the sandbox's pid namespace);
            // boot itself only waits for it. Both must see nothing of the host.
            let sentry = match children_of(k.parse().unwrap()).first() {
                Some(s) => s.to_string(),
                None => continue,
            };
            let mut all = Vec::new();
            for p in [k, sentry.as_str()] {
                let mounts =
                    std::fs::read_to_string(format!("/proc/{p}/mountinfo")).unwrap_or_default();
                if !mounts.contains("rvisor-sentry") {
                    break;
                }
                let names: Vec<String> = std::fs::read_dir(format!("/proc/{p}/root"))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect();
                all.push((names, mounts, fds_of(p), core_limit(p)));
            }
            if all.len() == 2 {
                seen = Some(all);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let (gofer_fds, gofer_core) = gofer_fds.expect("no gofer found");
    let seen = seen.expect("no confined sentry found");
    for (names, mounts, fds, sentry_core) in seen {
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
}

/// The children of every thread of `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(
            kids.split_whitespace()
                .filter_map(|k| k.parse::<u32>().ok()),
        );
    }
    out.sort();
    out.dedup();
    out
}

/// The processes of one running sandbox, found from its CLI.
#[derive(Debug)]
struct Tree {
    gofer: u32,
    /// `rvisor boot`: waits for the sentry, in the caller's pid namespace.
    waiter: u32,
    /// The sentry: the waiter's child, pid 1 of the sandbox's pid namespace.
    sentry: u32,
    /// Every descendant of the sentry.
    stubs: Vec<u32>,
}

fn cmdline(pid: u32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .into_owned()
}

fn tree_of(cli: u32) -> Option<Tree> {
    let kids = children_of(cli);
    let gofer = *kids.iter().find(|&&k| cmdline(k).contains("\0gofer\0"))?;
    let waiter = *kids.iter().find(|&&k| cmdline(k).contains("\0boot\0"))?;
    let sentry = *children_of(waiter).first()?;
    let mut stubs = Vec::new();
    let mut todo = children_of(sentry);
    while let Some(p) = todo.pop() {
        todo.extend(children_of(p));
        stubs.push(p);
    }
    stubs.sort();
    Some(Tree {
        gofer,
        waiter,
        sentry,
        stubs,
    })
}

/// A line of `/proc/PID/status`, without its key.
fn status(pid: u32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{key}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("/proc/{pid}/status has no {key}"))
}

fn caps(pid: u32, key: &str) -> u64 {
    u64::from_str_radix(&status(pid, key), 16).unwrap()
}

fn ns(pid: u32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Capability numbers.
const CAP_KILL: u32 = 5;
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;
const CAP_SETPCAP: u32 = 8;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_NICE: u32 = 23;

/// What the sentry keeps on each platform (README, "Privilege separation").
fn sentry_caps(platform: &str) -> u64 {
    let mut c = 1 << CAP_KILL | 1 << CAP_SYS_PTRACE | 1 << CAP_SYS_NICE;
    if platform == "ptrace" {
        c |= 1 << CAP_SETUID | 1 << CAP_SETGID | 1 << CAP_SETPCAP;
    }
    c
}

/// Starts `/bin/probe HOSTPID` in a sandbox and returns the CLI, its stdin, a
/// receiver of its stdout lines, and the sandbox's processes once the probe said
/// "ready".
fn start_probe(
    platform: &str,
    f: &Fixture,
    env: &[(&str, &str)],
) -> (
    std::process::Child,
    std::process::ChildStdin,
    std::sync::mpsc::Receiver<String>,
    Vec<String>,
    Tree,
) {
    use std::io::BufRead;
    let host = std::process::id().to_string();
    let mut cmd = rvisor(platform, "memory", &f.rootfs, &["/bin/probe", &host]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines.last().map(String::as_str) != Some("ready") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(e) => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "{platform}: probe never got ready ({e}): {lines:?}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    // The probe's fork may take a moment to show up as a host process.
    let mut tree = None;
    while Instant::now() < deadline {
        tree = tree_of(child.id());
        if tree.as_ref().is_some_and(|t| t.stubs.len() >= 2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let tree = tree.unwrap_or_else(|| panic!("{platform}: sandbox processes not found"));
    (child, stdin, rx, lines, tree)
}

/// Seen from the host while a program runs: the stubs and the sentry live in the
/// sandbox's own pid, mount, network, IPC and UTS namespaces; the stubs run as
/// `nobody` with no capability in any set; the sentry keeps only what owning its
/// stubs needs; the gofer only what serving files needs; all have no_new_privs. From
/// inside, no host process is visible or signalable. (On the code before privilege
/// separation every stub ran as root with every capability in the host's pid
/// namespace.)
#[test]
fn sandbox_processes_are_confined() {
    for p in PLATFORMS {
        confined_on(p);
    }
}

fn confined_on(platform: &str) {
    let f = fixture();
    let (mut child, stdin, rx, lines, t) = start_probe(platform, &f, &[]);
    let me = std::process::id();
    let mut sandbox = vec![t.sentry];
    sandbox.extend(&t.stubs);
    assert!(t.stubs.len() >= 2, "{platform}: stubs {t:?}");
    for &p in &sandbox {
        for kind in ["pid", "net", "ipc", "uts", "mnt"] {
            assert_ne!(
                ns(p, kind),
                ns(me, kind),
                "{platform}: {kind} namespace of {p} ({t:?})"
            );
        }
        assert_eq!(status(p, "NoNewPrivs"), "1", "{platform}: {p}");
    }
    // The sentry: in a user namespace of its own, as root there and host uid 65533
    // (docs/security.md, "The user namespace"), no supplementary group.
    assert_ne!(
        ns(t.sentry, "user"),
        ns(me, "user"),
        "{platform}: sentry user ns"
    );
    assert_eq!(status(t.sentry, "Uid"), "65533\t65533\t65533\t65533");
    assert_eq!(status(t.sentry, "Gid"), "65533\t65533\t65533\t65533");
    assert_eq!(status(t.sentry, "Groups"), "");
    for map in ["uid_map", "gid_map"] {
        let text = std::fs::read_to_string(format!("/proc/{}/{map}", t.sentry)).unwrap();
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows,
            [vec!["0", "65533", "1"], vec!["65534", "65534", "1"]],
            "{platform}: {map}"
        );
    }
    // The stubs: nobody, no groups, no capabilities.
    for &p in &t.stubs {
        assert_eq!(ns(p, "user"), ns(t.sentry, "user"), "{platform}: stub {p}");
        assert_ne!(status(p, "Uid"), status(t.sentry, "Uid"), "{platform}: {p}");
        let who = format!("{platform}: stub {p}");
        assert_eq!(status(p, "Uid"), "65534\t65534\t65534\t65534", "{who}");
        assert_eq!(status(p, "Gid"), "65534\t65534\t65534\t65534", "{who}");
        assert_eq!(status(p, "Groups"), "", "{who}");
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(caps(p, set), 0, "{who}: {set}");
        }
        // All in the sentry's pid namespace, the sentry being its init.
        assert_eq!(ns(p, "pid"), ns(t.sentry, "pid"), "{who}");
    }
    assert!(
        status(t.sentry, "NSpid").ends_with("\t1"),
        "{platform}: sentry NSpid {}",
        status(t.sentry, "NSpid")
    );
    // The sentry: only what owning its stubs needs, in every set.
    let want = sentry_caps(platform);
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(caps(t.sentry, set), want, "{platform}: sentry {set}");
    }
    assert_eq!(caps(t.sentry, "CapInh"), 0);
    assert_eq!(caps(t.sentry, "CapAmb"), 0);
    // boot, left in the caller's pid namespace to wait: no capability, and a filter
    // that lets it only wait and exit.
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(caps(t.waiter, set), 0, "{platform}: boot {set}");
    }
    assert_eq!(status(t.waiter, "NoNewPrivs"), "1");
    assert_eq!(status(t.waiter, "Seccomp"), "2");
    // The gofer: reading and writing every owner's files, nothing else.
    let files: u64 = 0x1f; // CHOWN, DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, FSETID
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        let c = caps(t.gofer, set);
        assert_eq!(c & !files, 0, "{platform}: gofer {set} {c:#x}");
    }
    assert_eq!(status(t.gofer, "NoNewPrivs"), "1");
    for kind in ["net", "ipc", "uts", "mnt"] {
        assert_ne!(ns(t.gofer, kind), ns(me, kind), "{platform}: gofer {kind}");
    }
    sentry_namespace_holds_nothing_of_the_host(platform, t.sentry, &f);
    drop(stdin);
    let status = child.wait().unwrap();
    let mut lines = lines;
    lines.extend(rx.iter());
    assert!(status.success(), "{platform}: {status:?} {lines:?}");
    // From inside: this host process is neither signalable nor listed.
    assert!(
        lines.contains(&"kill host pid: No such process".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"kill -9 host pid: No such process".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"proc pids: 1".to_string()),
        "{platform}: {lines:?}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("done"), "{lines:?}");
}

/// What a program that took the sentry over could do on the host with everything the
/// sentry's user namespace gives: a child of this test joins it (as the sentry's root,
/// host uid 65533, with every capability of that namespace, more than the sentry
/// keeps) and tries host-privileged acts: signal this (host root) test process, read
/// a host root 0600 file, take a host uid that the namespace does not map, renice a
/// host root process. Each must fail; then, as the stubs' identity (nobody, no
/// capability), it cannot signal the sentry nor read its memory's environment either.
/// (Before the sentry had a user namespace its
/// own was the host's, which a process cannot join again: that fails too.)
fn sentry_namespace_holds_nothing_of_the_host(platform: &str, sentry: u32, f: &Fixture) {
    let private = f.base.join("root-only");
    std::fs::write(&private, "root only\n").unwrap();
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let private = std::ffi::CString::new(private.to_str().unwrap()).unwrap();
    let userns = std::fs::File::open(format!("/proc/{sentry}/ns/user")).unwrap();
    let me = std::process::id() as i32;
    let environ = std::ffi::CString::new(format!("/proc/{sentry}/environ")).unwrap();
    // SAFETY: the child makes raw system calls only, then _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: raw system calls on integers and a string made before the fork.
        let code = unsafe {
            let errno = || *libc::__errno_location();
            if libc::setns(userns.as_raw_fd(), libc::CLONE_NEWUSER) < 0 {
                10
            } else if libc::syscall(libc::SYS_setresgid, 0, 0, 0) < 0
                || libc::syscall(libc::SYS_setresuid, 0, 0, 0) < 0
            {
                11
            } else if libc::kill(me, 0) == 0 || errno() != libc::EPERM {
                12
            } else if libc::open(private.as_ptr(), libc::O_RDONLY) >= 0 || errno() != libc::EACCES {
                13
            } else if libc::syscall(libc::SYS_setresuid, 1000, 1000, 1000) == 0
                || errno() != libc::EINVAL
            {
                14
            } else if libc::setpriority(libc::PRIO_PROCESS, me as u32, -5) == 0
                || errno() != libc::EPERM
            {
                15
            } else if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<u32>()) < 0
                || libc::syscall(libc::SYS_setresgid, 65534, 65534, 65534) < 0
                || libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) < 0
            {
                16
            } else if libc::kill(sentry as i32, 0) == 0 || errno() != libc::EPERM {
                // As a stub's identity (nobody, no capability left), by host pid (which
                // a stub could not even name): the sentry is another user.
                17
            } else if libc::open(environ.as_ptr(), libc::O_RDONLY) >= 0 || errno() != libc::EACCES {
                18
            } else {
                0
            }
        };
        // SAFETY: ends the child.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status), "{platform}: {status:#x}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "{platform}: a host-privileged act from the sentry's user namespace did not fail \
         (10 join, 11 become its root, 12 kill, 13 open, 14 setresuid, 15 setpriority; \
         as the stubs' id: 16 become nobody, 17 signal the sentry, 18 read its environ)"
    );
}

/// A stub killed from outside while its process waits inside the sentry (the probe
/// reads its stdin, which stays open) is noticed at once: the process dies of
/// SIGKILL as on Linux, the sandbox ends, and nothing is left. (On ptrace a traced
/// stub's death was only seen at its next switch, which never came: the sandbox
/// waited for input forever.)
#[test]
fn a_stub_killed_from_outside_ends_its_process_at_once() {
    for p in PLATFORMS {
        stub_killed_on(p);
    }
}

fn stub_killed_on(platform: &str) {
    let f = fixture();
    let (mut child, _stdin, _rx, _lines, t) = start_probe(platform, &f, &[]);
    // The stubs that run programs have no children (systrap's zygote is the parent
    // of its stubs); the probe's own is the older of the two.
    let mut runners: Vec<u32> = t
        .stubs
        .iter()
        .copied()
        .filter(|&p| children_of(p).is_empty())
        .collect();
    runners.sort();
    assert_eq!(runners.len(), 2, "{platform}: {t:?}");
    let mut all = vec![t.gofer, t.waiter, t.sentry];
    all.extend(&t.stubs);
    let start = Instant::now();
    // SAFETY: kill(2) of a process this test found as the sandbox's stub, unreaped
    // (its parent is the sandbox, which waits for none before the sentry lets it).
    assert_eq!(unsafe { libc::kill(runners[0] as i32, libc::SIGKILL) }, 0);
    let deadline = start + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{platform}: the sandbox waits on after its stub {} died ({t:?}):\n{}",
                runners[0],
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = start.elapsed();
    assert_eq!(status.code(), Some(128 + 9), "{platform}: {status:?}");
    assert!(took < Duration::from_secs(3), "{platform}: took {took:?}");
    assert_gone(platform, &all, &t);
}

/// A stub killed from outside while the sentry is writing into its process (signal
/// frames of a 1 ms timer, the rseq area of threads that make system calls in a
/// loop; tests/c/boundary/busy_victim.c) ends that process by SIGKILL every time.
/// (Before, a write that failed because the stub was already gone could end it as
/// a fault of its own: SIGSEGV, 139, when the death watcher came second. That is
/// how a pod container killed at its own memory limit was once reported.)
#[test]
fn a_stub_killed_mid_write_ends_its_process_by_sigkill() {
    let f = fixture();
    let exe = f.rootfs.join("bin/busy_victim");
    let src = rvisor_e2e::c_dir().join("boundary/busy_victim.c");
    rvisor_e2e::compile(&src, Link::Static, &exe, &["-pthread".to_string()]).unwrap();
    for p in PLATFORMS {
        let mut wrong = Vec::new();
        for round in 0..24u64 {
            let status = kill_busy_victim(p, &f, round);
            if status != Some(128 + 9) {
                wrong.push((round, status));
            }
        }
        assert!(
            wrong.is_empty(),
            "{p}: (round, exit status) not SIGKILL: {wrong:?}"
        );
    }
}

/// Starts busy_victim on `platform`, kills its stub after a delay that varies with
/// `round`, and returns the sandbox's exit status.
fn kill_busy_victim(platform: &str, f: &Fixture, round: u64) -> Option<i32> {
    use std::io::BufRead;
    let mut cmd = rvisor(platform, "memory", &f.rootfs, &["/bin/busy_victim"]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "{platform}");
    let deadline = Instant::now() + Duration::from_secs(30);
    // The stub that runs the program is the one with no children (systrap's
    // zygote is the parent of its stubs).
    let victim = loop {
        let runner = tree_of(child.id())
            .and_then(|t| t.stubs.iter().copied().find(|&p| children_of(p).is_empty()));
        if let Some(v) = runner {
            break v;
        }
        assert!(Instant::now() < deadline, "{platform}: no stub found");
        std::thread::sleep(Duration::from_millis(10));
    };
    // Spread the kills over the timer's period and the loop's phases.
    std::thread::sleep(Duration::from_micros(20_000 + (round * 7_919) % 40_000));
    // SAFETY: kill(2) of the process this test found as the sandbox's stub.
    assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{platform}: the sandbox did not end after its stub was killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits on the host's stdin are waits of the sandbox (tests/c/boundary/stdin_waits.c,
/// natively and inside, outputs compared): poll times out while nothing comes, a
/// reader blocked there dies of SIGKILL, a signal interrupts a read. (Before, a read
/// of host stdin was a blocking host call: the killed reader, and the sandbox with
/// it, waited for input that never came, and poll said readable at once.)
#[test]
fn stdin_waits_are_the_sandbox_s() {
    let f = fixture();
    let exe = f.rootfs.join("bin/stdin_waits");
    let src = rvisor_e2e::c_dir().join("boundary/stdin_waits.c");
    rvisor_e2e::compile(&src, Link::Static, &exe, &[]).unwrap();
    let run = |mut cmd: Command| -> String {
        use std::io::{BufRead, Write};
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut lines = String::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut l = String::new();
            if out.read_line(&mut l).unwrap() == 0 {
                break;
            }
            lines.push_str(&l);
            if l == "ready\n" {
                stdin.write_all(b"hello\n").unwrap();
            }
            assert!(Instant::now() < deadline, "{lines}");
        }
        drop(stdin);
        assert!(child.wait().unwrap().success(), "{lines}");
        lines
    };
    let native = run(Command::new(&exe));
    assert!(native.contains("blocked reader: killed by 9"), "{native}");
    for p in PLATFORMS {
        let inside = run(rvisor(p, "memory", &f.rootfs, &["/bin/stdin_waits"]));
        assert_eq!(inside, native, "{p}");
    }
}

/// A panic in a sentry task thread (provoked with the test-only hook on getppid)
/// ends the sandbox at once: the CLI reports it on one line with a failure status,
/// and no process of the sandbox (stubs, sentry, gofer) is left. (Before, the
/// panicking thread unwound and the sandbox hung.)
#[test]
fn sentry_panic_ends_the_sandbox() {
    for p in PLATFORMS {
        panic_on(p);
    }
}

fn panic_on(platform: &str) {
    use std::io::Write;
    let f = fixture();
    let (mut child, mut stdin, _rx, _lines, t) = start_probe(
        platform,
        &f,
        &[("RVISOR_TESTONLY_PANIC_ON_SYSCALL", "getppid")],
    );
    let mut all = vec![t.gofer, t.waiter, t.sentry];
    all.extend(&t.stubs);
    let start = Instant::now();
    stdin.write_all(b"panic\n").unwrap();
    stdin.flush().unwrap();
    let deadline = start + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "{platform}: the sandbox hangs after a sentry panic"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = start.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{platform}: {stderr}");
    let report: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("rvisor: sandbox failed: sentry panicked: "))
        .collect();
    assert_eq!(report.len(), 1, "{platform}: {stderr}");
    assert!(
        report[0].contains("RVISOR_TESTONLY_PANIC_ON_SYSCALL"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(5), "{platform}: took {took:?}");
    // Nothing of the sandbox is left (a pid reused this fast would be a surprise).
    assert_gone(platform, &all, &t);
}

/// Where the host refuses a confinement step, the sandbox does not start: one line
/// names the step and the flag that allows less. Here rvisor runs as root of a user
/// namespace of its own whose `user.max_user_namespaces` is 0 (as nested in a
/// container without user namespaces; the host's own setting is not touched), so the
/// sentry's user namespace is refused; with CAP_SYS_ADMIN also out of its bounding
/// set, so are the other namespaces. With `--unsafe-weak-confinement` it runs, with a
/// warning for each step skipped. (Before, the sentry logged and ran in the host's
/// namespaces; before the sentry had a user namespace, nothing refused it here.)
#[test]
fn confinement_fails_closed() {
    for p in PLATFORMS {
        fails_closed_on(p);
    }
}

/// Makes `cmd` start as root of a new user namespace (ids 0-65535 mapped to
/// themselves) under which no user namespace can be made, and without CAP_SYS_ADMIN
/// in its bounding set when `no_sys_admin`. The maps are written by a thread of this
/// process (a process cannot write a multi-line map of its own namespace). Drop the
/// returned pipe ends once `cmd` ran, then join the thread.
fn in_userns_without_userns(
    cmd: &mut Command,
    no_sys_admin: bool,
) -> (std::thread::JoinHandle<()>, std::fs::File, std::fs::File) {
    use std::io::{Read, Write};
    let (mut pid_r, pid_w) = pipe();
    let (go_r, mut go_w) = pipe();
    let writer = std::thread::spawn(move || {
        let mut pid = [0u8; 4];
        if pid_r.read_exact(&mut pid).is_err() {
            return;
        }
        let pid = i32::from_ne_bytes(pid);
        for map in ["uid_map", "gid_map"] {
            std::fs::write(format!("/proc/{pid}/{map}"), "0 0 65536\n").unwrap();
        }
        go_w.write_all(&[1]).unwrap();
    });
    let (pid_fd, go_fd) = (pid_w.as_raw_fd(), go_r.as_raw_fd());
    // SAFETY: raw system calls on integers, this frame's memory and static strings.
    unsafe {
        cmd.pre_exec(move || {
            let fail = || Err(std::io::Error::last_os_error());
            if libc::unshare(libc::CLONE_NEWUSER) < 0 {
                return fail();
            }
            let pid = libc::getpid().to_ne_bytes();
            if libc::write(pid_fd, pid.as_ptr().cast(), 4) != 4 {
                return fail();
            }
            let mut b = 0u8;
            if libc::read(go_fd, (&mut b as *mut u8).cast(), 1) != 1 {
                return fail();
            }
            let fd = libc::open(
                c"/proc/sys/user/max_user_namespaces".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            if fd < 0 || libc::write(fd, c"0".as_ptr().cast(), 1) != 1 {
                return fail();
            }
            libc::close(fd);
            const CAP_SYS_ADMIN: libc::c_ulong = 21;
            if no_sys_admin && libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0) < 0 {
                return fail();
            }
            Ok(())
        });
    }
    (writer, pid_w, go_r)
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let mut p = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `p`.
    assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the kernel just returned these descriptors; nothing else owns them.
    unsafe {
        (
            std::fs::File::from_raw_fd(p[0]),
            std::fs::File::from_raw_fd(p[1]),
        )
    }
}

fn fails_closed_on(platform: &str) {
    let f = fixture();
    let cmd = |weak: bool, no_sys_admin: bool| {
        let mut cmd = Command::new(rvisor_e2e::rvisor_bin().unwrap());
        cmd.arg(format!("--platform={platform}"));
        if weak {
            cmd.arg("--unsafe-weak-confinement");
        }
        cmd.arg("do")
            .arg("--rootfs")
            .arg(&f.rootfs)
            .args(["--", "/bin/busybox", "echo", "hi"]);
        let guard = in_userns_without_userns(&mut cmd, no_sys_admin);
        (cmd, guard)
    };
    let refused = "(run as root, or pass --unsafe-weak-confinement to run without it)";
    for no_sys_admin in [false, true] {
        let (c, (writer, a, b)) = cmd(false, no_sys_admin);
        let out = run(c);
        drop((a, b));
        writer.join().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status, 125, "{platform}: {stderr}");
        assert!(out.stdout.is_empty(), "{platform}: the program ran");
        let line = format!(
            "rvisor boot: sandbox confinement: unshare(CLONE_NEWUSER): No space left on device {refused}"
        );
        assert!(stderr.lines().any(|l| l == line), "{platform}: {stderr}");
    }
    let (c, (writer, a, b)) = cmd(true, true);
    let out = run(c);
    drop((a, b));
    writer.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status, 0, "{platform}: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    for step in ["NEWUSER", "NEWNS", "NEWNET", "NEWIPC", "NEWUTS", "NEWPID"] {
        assert!(
            stderr.contains(&format!(
                "--unsafe-weak-confinement: skipped sandbox confinement step unshare(CLONE_{step})"
            )),
            "{platform}: {step}: {stderr}"
        );
    }
}

/// The owner `fstat` reports on a host file opened through the gofer is the host's,
/// as natively, after a `fchown` through the same or another descriptor, though the
/// sentry's user namespace shows a host `fstat` of an unmapped owner as 65534. (With
/// the user namespace and the host `fstat`'s owner, the first `fchown` read back as
/// 0 0.)
#[test]
fn owners_behind_the_gofer_are_the_host_s() {
    let f = fixture();
    let prog = f.rootfs.join("bin/gofer_owner");
    let src = rvisor_e2e::c_dir().join("boundary/gofer_owner.c");
    rvisor_e2e::compile(&src, Link::Static, &prog, &[]).unwrap();
    let native_dir = f.base.join("native");
    std::fs::create_dir_all(&native_dir).unwrap();
    let native = run({
        let mut c = Command::new(&prog);
        c.arg(&native_dir);
        c
    });
    assert_eq!(
        native.status,
        0,
        "{}",
        String::from_utf8_lossy(&native.stderr)
    );
    let want = String::from_utf8_lossy(&native.stdout).into_owned();
    assert!(want.contains("after fchown: 123 456"), "{want}");
    for p in PLATFORMS {
        let out = run(rvisor(p, "none", &f.rootfs, &["/bin/gofer_owner", "/sub"]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status, 0, "{p}: {stderr}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{p}: {stderr}");
    }
}

/// Killing `boot` (what the runtime does to end a sandbox) ends the sentry and every
/// stub with it, though they live in a pid namespace of their own.
#[test]
fn killing_boot_ends_the_sandbox() {
    for p in PLATFORMS {
        let f = fixture();
        let (mut child, _stdin, _rx, _lines, t) = start_probe(p, &f, &[]);
        let mut all = vec![t.sentry];
        all.extend(&t.stubs);
        // SAFETY: kill with integer arguments; the waiter is the CLI's unreaped child.
        assert_eq!(unsafe { libc::kill(t.waiter as i32, libc::SIGKILL) }, 0);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(137), "{p}");
        assert_gone(p, &all, &t);
    }
}

/// Waits (up to 2 s) for none of `pids` to be alive (zombies count as gone).
fn assert_gone(platform: &str, pids: &[u32], t: &Tree) {
    let gone = Instant::now() + Duration::from_secs(2);
    let alive = |p: u32| {
        std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
    };
    while pids.iter().any(|&p| alive(p)) && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<(u32, String)> = pids
        .iter()
        .filter(|&&p| alive(p))
        .map(|&p| (p, cmdline(p)))
        .collect();
    assert!(left.is_empty(), "{platform}: left behind {left:?} of {t:?}");
}

/// Syscall patching (systrap) does not open the boundary (tests/c/boundary/
/// patch_trampoline.c): a hot `mov eax, N; syscall` site is patched with patching on
/// and left alone with `--syscall-patching=off`; a thread that jumps into the stub's
/// trampoline with a gs base of its own (a fake region in its memory) asking for
/// `exit_group` parks on its own memory: nothing runs on the host, the sentry never
/// answers it, and the process exits normally, taking the thread with it. On ptrace
/// (no trampoline) only the first part applies.
#[test]
fn the_syscall_trampoline_runs_nothing_it_was_not_asked() {
    let f = fixture();
    let exe = f.rootfs.join("bin/patch_trampoline");
    let src = rvisor_e2e::c_dir().join("boundary/patch_trampoline.c");
    rvisor_e2e::compile(&src, Link::Static, &exe, &["-pthread".into()]).unwrap();
    let want = "site patched as expected: yes\n\
                site: ff 24 25, fault byte 06\n\
                forged request parked on its own memory: yes\n\
                still alive after the forged exit_group: yes\n";
    for p in PLATFORMS {
        for patching in ["on", "off"] {
            let mut cmd = Command::new(rvisor_e2e::rvisor_bin().unwrap());
            cmd.arg(format!("--platform={p}"))
                .arg(format!("--syscall-patching={patching}"))
                .arg("do")
                .arg("--rootfs")
                .arg(&f.rootfs)
                .arg("--")
                .args(["/bin/patch_trampoline", patching]);
            let out = run(cmd);
            let text = String::from_utf8_lossy(&out.stdout);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status, 0, "{p} {patching}: {text}{err}");
            assert_eq!(text, want, "{p} {patching}: {err}");
        }
    }
}

/// A tmpfs mounted inside the sandbox (so after the sentry is confined) bounds the
/// pages a program dirties through a shared mapping of a file on it (issue 10):
/// with a `size=` that is none of the spares' graded sizes (1100k, 275 pages) and
/// three such mounts held at once, each fill of a 64 MiB mapping stops with SIGBUS
/// (`BUS_ADRERR`) at exactly Linux's 275 pages (the spare's extra pages held by a
/// filler), while `statfs` shows 275 blocks and `write(2)` into a hole is `ENOSPC`.
/// (Before the spares, such a mount kept memfds and all 16,384 pages were dirtied;
/// before the filler, the fills stopped at the spares' sizes, 320, 384 and 448.)
#[test]
fn a_tmpfs_mounted_inside_bounds_its_mapped_pages() {
    let f = fixture();
    let exe = f.rootfs.join("bin/tmpfs_mounted");
    let src = rvisor_e2e::c_dir().join("mm_tmpfs_mounted.c");
    rvisor_e2e::compile(&src, Link::Static, &exe, &[]).unwrap();
    std::fs::create_dir_all(f.rootfs.join("mnt")).unwrap();
    let dirtied = |stdout: &str| -> Vec<u64> {
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix("dirtied: "))
            .map(|l| {
                assert!(l.contains("then SIGBUS BUS_ADRERR"), "{stdout}");
                l.split(' ').next().unwrap().parse().unwrap()
            })
            .collect()
    };
    let mut native = Command::new(&exe);
    native.args([f.base.join("mnt").to_str().unwrap(), "1100k", "3"]);
    std::fs::create_dir_all(f.base.join("mnt")).unwrap();
    let o = run(native);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status, 0, "native: {out}");
    assert_eq!(dirtied(&out), vec![275, 275, 275], "native: {out}");
    for p in PLATFORMS {
        // mount(2) needs CAP_SYS_ADMIN, which `do` gives only when asked.
        let mut cmd = Command::new(rvisor_e2e::rvisor_bin().unwrap());
        cmd.arg(format!("--platform={p}"))
            .args(["do", "--cap-add=CAP_SYS_ADMIN", "--rootfs"])
            .arg(&f.rootfs)
            .args(["--", "/bin/tmpfs_mounted", "/mnt", "1100k", "3"]);
        let o = run(cmd);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(
            o.status,
            0,
            "{p}: {out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let d = dirtied(&out);
        assert_eq!(d.len(), 3, "{p}: {out}");
        assert_eq!(d, vec![275, 275, 275], "{p}: {out}");
        assert_eq!(
            out.matches("before: statfs blocks=275 free=275").count(),
            3,
            "{p}: {out}"
        );
        let enospc = out
            .lines()
            .filter(|l| l.starts_with("pwrite 1 byte into a hole:") && l.ends_with("ENOSPC"))
            .count();
        assert_eq!(enospc, 3, "{p}: {out}");
    }
}
