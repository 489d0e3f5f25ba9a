//! The root overlay end to end: with `--overlay=self` (the default) and
//! `--overlay=memory` a container that writes, truncates, creates, deletes and
//! renames files in its root leaves the bundle's rootfs byte-for-byte unchanged,
//! while it sees its own changes; with `--overlay=none` the changes land in the
//! rootfs. With `self` the upper layer's file data is in unnamed files on the
//! rootfs's disk, held by the sentry only while the sandbox runs.
//!
//! The program (`tests/c/fs/overlay_ops.c`) reports which operations the sentry
//! accepted; every accepted change is checked on the host.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rvisor_e2e::{run_with_timeout, Link};

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
        "rvisor-overlay-e2e-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&base);
    let rootfs = base.join("rootfs");
    let data = rootfs.join("data");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::create_dir_all(data.join("emptydir")).unwrap();
    let src = rvisor_e2e::c_dir().join("fs/overlay_ops.c");
    rvisor_e2e::compile(&src, Link::Static, &rootfs.join("bin/ops"), &[]).unwrap();
    std::fs::write(data.join("edit.txt"), "original edit file\n").unwrap();
    std::fs::write(data.join("trunc.txt"), "a long original text\n").unwrap();
    std::fs::write(data.join("gone.txt"), "to be deleted\n").unwrap();
    std::fs::write(data.join("old.txt"), "renamed content\n").unwrap();
    Fixture { base, rootfs }
}

/// Every file's type, mode, owner, size, mtime and contents (symlink targets).
fn tree_hash(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let body = if m.file_type().is_symlink() {
            format!("{:?}", std::fs::read_link(&p).unwrap())
        } else if m.is_file() {
            format!("{:?}", std::fs::read(&p).unwrap())
        } else {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
            String::new()
        };
        let attrs = format!(
            "{:o} {}:{} {} {}.{}",
            m.mode(),
            m.uid(),
            m.gid(),
            m.len(),
            m.mtime(),
            m.mtime_nsec()
        );
        out.insert(
            p.strip_prefix(root).unwrap().to_path_buf(),
            format!("{attrs} {body}"),
        );
    }
    out
}

fn run_ops(overlay: &str, rootfs: &Path) -> BTreeMap<String, String> {
    let mut cmd = Command::new(rvisor_e2e::rvisor_bin().unwrap());
    cmd.arg("--platform=ptrace")
        .arg(format!("--overlay={overlay}"))
        .arg("do")
        .arg("--rootfs")
        .arg(rootfs)
        .arg("--")
        .arg("/bin/ops");
    let out = run_with_timeout(cmd, rvisor_e2e::timeout_from_env(Duration::from_secs(60))).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status,
        0,
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ok(r: &BTreeMap<String, String>, op: &str) -> bool {
    r.get(op).map(String::as_str) == Some("OK")
}

#[test]
fn memory_overlay_leaves_the_bundle_unchanged() {
    let f = fixture();
    let before = tree_hash(&f.rootfs);
    let r = run_ops("memory", &f.rootfs);
    // Writes to existing files always work in the overlay, and the container sees them.
    assert!(ok(&r, "edit") && ok(&r, "trunc"), "{r:?}");
    assert_eq!(r["content /data/edit.txt"], "EDITEDal edit file");
    assert_eq!(r["content /data/trunc.txt"], "short");
    if ok(&r, "create") {
        assert_eq!(r["content /data/created.txt"], "created");
    }
    if ok(&r, "unlink") {
        assert_eq!(r["content /data/gone.txt"], "ENOENT");
    }
    if ok(&r, "rename") {
        assert_eq!(r["content /data/new.txt"], "renamed content");
    }
    assert_eq!(
        before,
        tree_hash(&f.rootfs),
        "the bundle rootfs changed: {r:?}"
    );
    // A second container starts from the unchanged rootfs.
    let again = run_ops("memory", &f.rootfs);
    assert_eq!(again["content /data/edit.txt"], "EDITEDal edit file");
    assert_eq!(before, tree_hash(&f.rootfs));
}

#[test]
fn self_overlay_leaves_the_bundle_unchanged() {
    let f = fixture();
    let before = tree_hash(&f.rootfs);
    let r = run_ops("self", &f.rootfs);
    assert!(ok(&r, "edit") && ok(&r, "trunc"), "{r:?}");
    assert_eq!(r["content /data/edit.txt"], "EDITEDal edit file");
    assert_eq!(r["content /data/trunc.txt"], "short");
    for op in ["create", "unlink", "rename", "mkdir", "rmdir", "chmod"] {
        assert!(ok(&r, op), "{op}: {r:?}");
    }
    assert_eq!(r["content /data/created.txt"], "created");
    assert_eq!(r["content /data/gone.txt"], "ENOENT");
    assert_eq!(r["content /data/new.txt"], "renamed content");
    // Not a name was added to the rootfs (the upper files have none), nor a byte
    // of the lower files changed.
    assert_eq!(
        before,
        tree_hash(&f.rootfs),
        "the bundle rootfs changed: {r:?}"
    );
}

/// Files of `rootfs`'s filesystem held open by some process under no name (the
/// `--overlay=self` upper files: `/proc/PID/fd` shows them as `ROOTFS/#INO
/// (deleted)`): (holder pid, size, bytes allocated) of each.
fn unnamed_files_in(rootfs: &Path) -> Vec<(i32, u64, u64)> {
    let prefix = format!("{}/#", rootfs.display());
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (pid, dir) in rvisor_e2e::host_processes() {
        let Ok(fds) = std::fs::read_dir(dir.join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            if !(t.starts_with(&prefix) && t.ends_with(" (deleted)")) {
                continue;
            }
            if let Ok(m) = std::fs::metadata(fd.path()) {
                if seen.insert((m.dev(), m.ino())) {
                    out.push((pid, m.len(), m.blocks() * 512));
                }
            }
        }
    }
    out
}

fn vm_rss_kib(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn bigwrite_rootfs() -> Fixture {
    let f = fixture();
    let src = rvisor_e2e::c_dir().join("fs/overlay_bigwrite.c");
    rvisor_e2e::compile(&src, Link::Static, &f.rootfs.join("bin/big"), &[]).unwrap();
    f
}

const BIG_MIB: u64 = 200;

/// `--overlay=self`: 200 MiB written inside land in an unnamed file on the rootfs's
/// disk that the sentry holds (the file grows to the data; the sentry's RSS does
/// not), read back right (by read(2) and a shared mapping), and the file is gone
/// with the sandbox; the rootfs shows no new name at any time.
#[test]
fn self_overlay_keeps_large_writes_on_disk() {
    use std::io::{BufRead, BufReader, Write};
    for platform in rvisor_e2e::platforms() {
        let f = bigwrite_rootfs();
        let before = tree_hash(&f.rootfs);
        let mut child = Command::new(rvisor_e2e::rvisor_bin().unwrap())
            .arg(format!("--platform={platform}"))
            .arg("--overlay=self")
            .arg("do")
            .arg("--rootfs")
            .arg(&f.rootfs)
            .arg("--")
            .arg("/bin/big")
            .arg(BIG_MIB.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                if tx.send(l.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(120));
        if first.as_deref() != Ok("written") {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{platform}: {first:?}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let files = unnamed_files_in(&f.rootfs);
        let big: Vec<_> = files
            .iter()
            .filter(|(_, size, _)| *size == BIG_MIB << 20)
            .collect();
        assert_eq!(big.len(), 1, "{platform}: unnamed rootfs files: {files:?}");
        let (holder, _, allocated) = *big[0];
        assert!(
            allocated >= BIG_MIB << 20,
            "{platform}: the upper file holds only {allocated} bytes on disk"
        );
        let rss = vm_rss_kib(holder);
        assert!(
            rss > 0 && rss < (BIG_MIB << 10) / 4,
            "{platform}: the sentry (pid {holder}) has {rss} KiB resident"
        );
        stdin.write_all(b"go\n").unwrap();
        drop(stdin);
        let rest: Vec<String> = rx.iter().collect();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && rest == ["verified"],
            "{platform}: {rest:?} {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        // The sandbox is gone, and so is its upper file; the rootfs is as it was.
        let left = unnamed_files_in(&f.rootfs);
        assert!(left.is_empty(), "{platform}: still held: {left:?}");
        assert_eq!(before, tree_hash(&f.rootfs), "{platform}");
        println!(
            "{platform}: upper file {} MiB on disk, sentry VmRSS {rss} KiB",
            allocated >> 20
        );
    }
}

/// The same 200 MiB under a 128 MiB memory limit: with `self` the data is page
/// cache of a disk file, written back and reclaimed, so the container succeeds;
/// with `memory` it is sandbox memory, and the sandbox is killed at the limit.
#[test]
fn self_overlay_writes_past_the_memory_limit_that_memory_overlay_cannot() {
    for platform in rvisor_e2e::platforms() {
        let f = bigwrite_rootfs();
        let run = |overlay: &str| {
            let mut cmd = Command::new(rvisor_e2e::rvisor_bin().unwrap());
            cmd.arg(format!("--platform={platform}"))
                .arg(format!("--overlay={overlay}"))
                .arg("do")
                .arg("--memory=128m")
                .arg("--rootfs")
                .arg(&f.rootfs)
                .arg("--")
                .arg("/bin/big")
                .arg(BIG_MIB.to_string());
            run_with_timeout(cmd, rvisor_e2e::timeout_from_env(Duration::from_secs(180))).unwrap()
        };
        let on_disk = run("self");
        assert_eq!(
            (
                on_disk.status,
                String::from_utf8_lossy(&on_disk.stdout).as_ref()
            ),
            (0, "written\nverified\n"),
            "{platform}: {}",
            String::from_utf8_lossy(&on_disk.stderr)
        );
        let in_memory = run("memory");
        assert_ne!(
            in_memory.status,
            0,
            "{platform}: 200 MiB of memory overlay fit in a 128 MiB sandbox: {}",
            String::from_utf8_lossy(&in_memory.stdout)
        );
        assert!(
            !String::from_utf8_lossy(&in_memory.stdout).contains("verified"),
            "{platform}"
        );
    }
}

#[test]
fn no_overlay_writes_to_the_bundle() {
    let f = fixture();
    let data = f.rootfs.join("data");
    let r = run_ops("none", &f.rootfs);
    assert!(ok(&r, "edit") && ok(&r, "trunc"), "{r:?}");
    let read = |n: &str| std::fs::read_to_string(data.join(n)).ok();
    assert_eq!(read("edit.txt").as_deref(), Some("EDITEDal edit file\n"));
    assert_eq!(read("trunc.txt").as_deref(), Some("short"));
    if ok(&r, "create") {
        assert_eq!(read("created.txt").as_deref(), Some("created"));
    }
    if ok(&r, "unlink") {
        assert!(!data.join("gone.txt").exists());
    }
    if ok(&r, "rename") {
        assert!(!data.join("old.txt").exists());
        assert_eq!(read("new.txt").as_deref(), Some("renamed content\n"));
    }
    if ok(&r, "mkdir") {
        assert!(data.join("newdir").is_dir());
    }
    if ok(&r, "rmdir") {
        assert!(!data.join("emptydir").exists());
    }
    if ok(&r, "chmod") {
        let m = std::fs::metadata(data.join("edit.txt")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o600);
    }
}

/// Sets user attribute `name` on host file `p`.
fn set_host_xattr(p: &Path, name: &str, v: &[u8]) {
    let path = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: both strings are NUL-terminated; `v` is readable for its length.
    let r = unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    assert_eq!(
        r,
        0,
        "setxattr on the host: {}",
        std::io::Error::last_os_error()
    );
}

/// The value of user attribute `name` of host file `p`, `None` if unset.
fn host_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let path = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: both strings are NUL-terminated; `buf` is writable for its length.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

/// Runs tests/c/fs/xattr_ops.c in a rootfs whose /data/pre.txt has two host
/// attributes; returns its output lines and the fixture.
fn xattr_run(overlay: &str) -> (Vec<String>, Fixture) {
    let f = fixture();
    let src = rvisor_e2e::c_dir().join("fs/xattr_ops.c");
    rvisor_e2e::compile(&src, Link::Static, &f.rootfs.join("bin/xattr"), &[]).unwrap();
    let pre = f.rootfs.join("data/pre.txt");
    std::fs::write(&pre, "pre\n").unwrap();
    set_host_xattr(&pre, "user.old", b"old");
    set_host_xattr(&pre, "user.keep", b"kept");
    let mut cmd = Command::new(rvisor_e2e::rvisor_bin().unwrap());
    cmd.arg("--platform=ptrace")
        .arg(format!("--overlay={overlay}"))
        .arg("do")
        .arg("--rootfs")
        .arg(&f.rootfs)
        .arg("--")
        .arg("/bin/xattr");
    let out = run_with_timeout(cmd, rvisor_e2e::timeout_from_env(Duration::from_secs(60))).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status,
        0,
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (stdout.lines().map(str::to_string).collect(), f)
}

/// What the program prints on either overlay: host attributes come through the
/// gofer, changes are seen, inotify reports the create, close and attribute changes.
const XATTR_EXPECTED: &[&str] = &[
    "pre user.keep: kept",
    "pre user.old: old",
    "pre list bytes: 19",
    "pre remove user.old: 0",
    "pre user.old after remove: ENODATA",
    "pre user.keep after remove: kept",
    "x set user.a: 0",
    "x set user.a CREATE: EEXIST",
    "x user.a: va",
    "dir set user.d: 0",
    "dir user.d: vd",
    "event wd=1 mask=0x100 name=x.txt",
    "event wd=1 mask=0x8 name=x.txt",
    "event wd=1 mask=0x4 name=x.txt",
    "event wd=1 mask=0x40000004 name=",
];

#[test]
fn xattrs_through_the_gofer_and_the_overlay() {
    let (lines, f) = xattr_run("memory");
    assert_eq!(lines, XATTR_EXPECTED);
    // The host rootfs is unchanged.
    let pre = f.rootfs.join("data/pre.txt");
    assert_eq!(host_xattr(&pre, "user.old").as_deref(), Some(&b"old"[..]));
    assert!(!f.rootfs.join("data/x.txt").exists());

    let (lines, f) = xattr_run("self");
    assert_eq!(lines, XATTR_EXPECTED);
    let pre = f.rootfs.join("data/pre.txt");
    assert_eq!(host_xattr(&pre, "user.old").as_deref(), Some(&b"old"[..]));
    assert!(!f.rootfs.join("data/x.txt").exists());

    let (lines, f) = xattr_run("none");
    assert_eq!(lines, XATTR_EXPECTED);
    // Every change landed on the host through the gofer.
    let pre = f.rootfs.join("data/pre.txt");
    assert_eq!(host_xattr(&pre, "user.old"), None);
    assert_eq!(host_xattr(&pre, "user.keep").as_deref(), Some(&b"kept"[..]));
    let x = f.rootfs.join("data/x.txt");
    assert_eq!(host_xattr(&x, "user.a").as_deref(), Some(&b"va"[..]));
    assert_eq!(
        host_xattr(&f.rootfs.join("data"), "user.d").as_deref(),
        Some(&b"vd"[..])
    );
}

fn bound_rootfs() -> Fixture {
    let f = fixture();
    let src = rvisor_e2e::c_dir().join("fs/overlay_bound.c");
    rvisor_e2e::compile(&src, Link::Static, &f.rootfs.join("bin/bound"), &[]).unwrap();
    f
}

/// Runs `/bin/bound ARGS` in a sandbox over `rootfs` with the global flag
/// `overlay` and `do` flags `extra`; its stdout (the status must be 0).
fn run_bound(
    platform: &str,
    overlay: &str,
    extra: &[&str],
    rootfs: &Path,
    args: &[&str],
) -> String {
    let mut cmd = Command::new(rvisor_e2e::rvisor_bin().unwrap());
    cmd.arg(format!("--platform={platform}"))
        .arg(format!("--overlay={overlay}"))
        .arg("do")
        .args(extra)
        .arg("--rootfs")
        .arg(rootfs)
        .arg("--")
        .arg("/bin/bound")
        .args(args);
    let out =
        run_with_timeout(cmd, rvisor_e2e::timeout_from_env(Duration::from_secs(120))).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status,
        0,
        "{platform} --overlay={overlay} {extra:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `--overlay=memory,size=64m`: the upper layer holds what a tmpfs of 64 MiB holds,
/// for write(2), fallocate and faults through shared mappings (SIGBUS at the first
/// page past the bound), and statfs of the root shows the bound and its use: the
/// program's output equals its native run on a tmpfs of that size. Both platforms.
#[test]
fn memory_overlay_is_bounded_as_a_tmpfs_of_its_size() {
    let f = bound_rootfs();
    let native_dir = f.base.join("native");
    let mut cmd = Command::new(f.rootfs.join("bin/bound"));
    cmd.arg(&native_dir).arg("mount");
    let native = run_with_timeout(cmd, Duration::from_secs(60)).unwrap();
    let native_out = String::from_utf8_lossy(&native.stdout).into_owned();
    assert_eq!(native.status, 0, "native: {native_out}");
    assert!(
        native_out.contains("SIGBUS BUS_ADRERR"),
        "native: {native_out}"
    );
    for platform in rvisor_e2e::platforms() {
        let inside = run_bound(&platform, "memory,size=64m", &[], &f.rootfs, &["/data/b"]);
        assert_eq!(
            inside, native_out,
            "{platform}: sandbox (left) against native (right)"
        );
    }
}

/// The bound's defaults, as statfs of the root shows them: `size=` when given,
/// else the container's memory limit, else half the machine's memory (a tmpfs's
/// default); the same with `self` on the host's root under `do` (where it is
/// `memory`). A bad size is refused before anything starts.
#[test]
fn memory_overlay_bound_defaults() {
    let f = bound_rootfs();
    let total = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024;
    let half = (total / 2).next_multiple_of(4096);
    let platform = rvisor_e2e::platforms()[0].clone();
    for (overlay, extra, want) in [
        ("memory,size=3m", &[][..], 3u64 << 20),
        ("memory", &["--memory=96m"][..], 96 << 20),
        ("memory", &[][..], half),
        ("memory,size=1g", &["--memory=96m"][..], 1 << 30),
    ] {
        let out = run_bound(&platform, overlay, extra, &f.rootfs, &["/", "statfs"]);
        assert_eq!(
            out,
            format!("size {want}\n"),
            "--overlay={overlay} {extra:?}"
        );
    }
    for bad in [
        "memory,size=0",
        "memory,size=12q",
        "none,size=1m",
        "memory,sz=1m",
    ] {
        let out = Command::new(rvisor_e2e::rvisor_bin().unwrap())
            .arg(format!("--overlay={bad}"))
            .args(["do", "--rootfs"])
            .arg(&f.rootfs)
            .args(["--", "/bin/bound", "/", "statfs"])
            .output()
            .unwrap();
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "--overlay={bad} was taken: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
