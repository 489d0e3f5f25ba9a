//! Real Debian programs from the host root, natively and inside rvisor, outputs
//! compared: bash (pipelines, subshells, command substitution, background jobs and
//! `wait`), coreutils, python3 (threading, subprocess, a multiprocessing Pool of 4,
//! concurrent.futures, extended attributes through `os.setxattr`), perl (with its
//! System V IPC built-ins), Debian's libaio driven from python3, and inotify-tools'
//! `inotifywait` watching a directory a shell changes, util-linux's `unshare` making
//! user, mount and network namespaces (`unshare -r`), bubblewrap. Plus: after the container is
//! SIGKILLed, nothing it started is left on the host.

use std::path::Path;
use std::time::{Duration, Instant};

use rvisor_e2e::{
    native_command, platforms, run_with_timeout, rvisor_bin, sandbox_command, Rootfs,
};

/// `mount -t tmpfs`, `umount` and `hostname` inside `unshare -m -u`.
const UNSHARE_MOUNT: &str = "set -e; mkdir -p m; mount -t tmpfs -o size=1m,mode=700 tt m; \
    grep \" $PWD/m \" /proc/self/mountinfo | cut -d' ' -f4-; echo hi > m/f; cat m/f; \
    stat -c %a m; umount m; test ! -e m/f && echo unmounted; \
    hostname inner-host; hostname; rmdir m";

const PY: &str = r#"
import threading, subprocess, concurrent.futures, multiprocessing
out = []
lock = threading.Lock()
def w(i):
    with lock:
        out.append(i * i)
ts = [threading.Thread(target=w, args=(i,)) for i in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
print("threads", sorted(out))
print("subprocess", subprocess.run(["echo", "sp"], capture_output=True, text=True).stdout.strip())
with concurrent.futures.ThreadPoolExecutor(4) as ex:
    print("futures", list(ex.map(lambda x: x + 1, range(5))))
def sq(x):
    return x * x
import asyncio, socket, tempfile, os
async def unix_echo():
    path = os.path.join(tempfile.mkdtemp(), "s")
    async def serve(r, w):
        w.write((await r.readline()).upper())
        await w.drain()
        w.close()
    server = await asyncio.start_unix_server(serve, path)
    r, w = await asyncio.open_unix_connection(path)
    w.write(b"asyncio over a unix socket\n")
    line = await r.readline()
    server.close()
    return line.decode().strip()
print("asyncio", asyncio.run(unix_echo()))
a, b = socket.socketpair()
a.sendall(b"pair")
print("socketpair", b.recv(10))
if __name__ == "__main__":
    with multiprocessing.Pool(4) as p:
        print("pool", p.map(sq, range(10)))
"#;

/// `python3 -m http.server` on 127.0.0.1 in a child process, fetched with urllib
/// (a free port is found first with bind to port 0); argv[1] is the directory served.
const PY_HTTP: &str = r#"
import socket, subprocess, sys, time, urllib.request
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
srv = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port),
                        "--directory", sys.argv[1]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        time.sleep(0.05)
with urllib.request.urlopen(f"http://127.0.0.1:{port}/data", timeout=10) as r:
    print(r.status, r.headers["Content-Length"], r.read().decode().strip())
try:
    urllib.request.urlopen(f"http://127.0.0.1:{port}/missing", timeout=10)
except urllib.error.HTTPError as e:
    print("missing", e.code)
srv.terminate()
print("server exit", srv.wait())
"#;

/// Perl's System V IPC built-ins: a semaphore and a message queue.
const PERL_SYSV: &str = r#"
use IPC::SysV qw(IPC_PRIVATE IPC_RMID S_IRWXU SETVAL GETVAL);
my $id = semget(IPC_PRIVATE, 1, S_IRWXU) // die "semget: $!";
semctl($id, 0, SETVAL, 2) or die "setval: $!";
semop($id, pack("s!3", 0, -1, 0)) or die "semop: $!";
print "sem ", semctl($id, 0, GETVAL, 0), "\n";
my $q = msgget(IPC_PRIVATE, S_IRWXU) // die "msgget: $!";
msgsnd($q, pack("l! a*", 7, "hello"), 0) or die "msgsnd: $!";
my $buf; msgrcv($q, $buf, 100, 0, 0) or die "msgrcv: $!";
my ($t, $text) = unpack("l! a*", $buf);
print "msg $t $text\n";
semctl($id, 0, IPC_RMID, 0) or die; msgctl($q, IPC_RMID, 0) or die;
"#;

/// Extended attributes from Python: the temporary directory (the overlay inside the
/// sandbox, the host's disk natively), /dev/shm (tmpfs), an fd, and procfs.
const PY_XATTR: &str = r#"
import errno, os, tempfile
for base in (tempfile.gettempdir(), "/dev/shm"):
    fd, p = tempfile.mkstemp(dir=base)
    os.close(fd)
    os.setxattr(p, "user.mime_type", b"text/plain")
    os.setxattr(p, "user.empty", b"")
    try:
        os.setxattr(p, "user.mime_type", b"x", os.XATTR_CREATE)
    except OSError as e:
        print("create again:", errno.errorcode[e.errno])
    try:
        os.getxattr(p, "user.missing")
    except OSError as e:
        print("missing:", errno.errorcode[e.errno])
    print(os.getxattr(p, "user.mime_type"), sorted(os.listxattr(p)))
    with open(p, "rb") as f:
        print("via fd:", os.getxattr(f.fileno(), "user.mime_type"))
    os.removexattr(p, "user.mime_type")
    print("after remove:", sorted(os.listxattr(p)))
    os.unlink(p)
try:
    os.getxattr("/proc/self/status", "user.x")
except OSError as e:
    print("procfs:", errno.errorcode[e.errno])
"#;

/// Debian's libaio (through ctypes): io_setup, a pwrite and a pread submitted
/// together, io_getevents with a zero timeout (libaio answers that from the ring
/// in the process's memory when it holds nothing) and with min_nr, io_destroy.
const PY_LIBAIO: &str = r#"
import ctypes, os, tempfile
aio = ctypes.CDLL("libaio.so.1")
class Iocb(ctypes.Structure):
    _fields_ = [("data", ctypes.c_uint64), ("key", ctypes.c_uint32), ("rw_flags", ctypes.c_int32),
                ("opcode", ctypes.c_uint16), ("prio", ctypes.c_int16), ("fd", ctypes.c_uint32),
                ("buf", ctypes.c_uint64), ("nbytes", ctypes.c_uint64), ("offset", ctypes.c_int64),
                ("reserved2", ctypes.c_uint64), ("flags", ctypes.c_uint32), ("resfd", ctypes.c_uint32)]
class Event(ctypes.Structure):
    _fields_ = [("data", ctypes.c_uint64), ("obj", ctypes.c_uint64), ("res", ctypes.c_int64), ("res2", ctypes.c_int64)]
class Ts(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]
for base in (tempfile.gettempdir(), "/dev/shm"):
    ctx = ctypes.c_void_p(0)
    print("io_setup", aio.io_setup(16, ctypes.byref(ctx)))
    evs = (Event * 8)()
    print("empty ring", aio.io_getevents(ctx, 0, 8, evs, ctypes.byref(Ts(0, 0))))
    fd, p = tempfile.mkstemp(dir=base)
    out = ctypes.create_string_buffer(b"libaio says hi")
    back = ctypes.create_string_buffer(32)
    cbs = [Iocb(data=1, opcode=1, fd=fd, buf=ctypes.addressof(out), nbytes=14, offset=0),
           Iocb(data=2, opcode=0, fd=fd, buf=ctypes.addressof(back), nbytes=32, offset=7)]
    arr = (ctypes.POINTER(Iocb) * 2)(*[ctypes.pointer(c) for c in cbs])
    print("io_submit", aio.io_submit(ctx, 2, arr))
    n = aio.io_getevents(ctx, 2, 8, evs, None)
    print("io_getevents", n, sorted((evs[i].data, evs[i].res) for i in range(n)))
    print("read back", back.value)
    print("io_destroy", aio.io_destroy(ctx))
    os.close(fd)
    os.unlink(p)
"#;

/// `inotifywait -m` on a fresh directory while the shell creates, appends, reads,
/// chmods, renames, makes and removes a directory, symlinks, deletes, and copies in a
/// program and runs it; its event lines are the output. Two identical events in a row
/// merge only if the reader has not taken the first yet, which is timing: `uniq`
/// merges them on both sides.
const INOTIFYWAIT: &str = r#"
d=$(mktemp -d)
inotifywait -m -t 10 --format '%e %f' "$d" > "$d.log" 2> "$d.err" &
pid=$!
for i in $(seq 200); do grep -q established "$d.err" 2>/dev/null && break; sleep 0.05; done
echo hi > "$d/a"; echo more >> "$d/a"; cat "$d/a" > /dev/null; chmod 600 "$d/a"
mv "$d/a" "$d/b"; mkdir "$d/sub"; rmdir "$d/sub"; ln -s b "$d/l"; rm "$d/b" "$d/l"
cp /bin/true "$d/t"; "$d/t"; rm "$d/t"
for i in $(seq 200); do grep -q "DELETE t" "$d.log" 2>/dev/null && break; sleep 0.05; done
kill $pid; wait $pid
uniq "$d.log"; rm -rf "$d" "$d.log" "$d.err"
"#;

fn cases(dir: &Path) -> Vec<(&'static str, Vec<String>)> {
    let d = dir.display().to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let mut v = vec![
        (
            "bash",
            s(&[
                "/bin/bash",
                "-c",
                "a=$(echo hi | tr a-z A-Z); echo $a; (cd /etc && pwd); sleep 0.2 & sleep 0.1 & wait; echo jobs done; \
                 for i in 3 1 2; do echo $i; done | sort | tail -2; x=$( (exit 3) ; echo $?); echo sub=$x",
            ]),
        ),
        ("coreutils", vec!["/bin/sh".into(), "-c".into(), format!("cd {d} && ls -l data && du -s . | cut -f2 && printf 'b\\na\\nc\\n' | sort && wc -c data")]),
        ("python3", vec!["/usr/bin/python3".into(), "-c".into(), PY.into()]),
        ("python3-http-server", vec!["/usr/bin/python3".into(), "-c".into(), PY_HTTP.into(), d.clone()]),
        ("perl-sysv-ipc", s(&["/usr/bin/perl", "-e", PERL_SYSV])),
        ("python3-xattr", vec!["/usr/bin/python3".into(), "-c".into(), PY_XATTR.into()]),
        ("python3-libaio", vec!["/usr/bin/python3".into(), "-c".into(), PY_LIBAIO.into()]),
        // util-linux in namespaces the command makes: natively too, it touches only
        // its own mount and UTS namespaces.
        (
            "util-linux-unshare-mount",
            vec![
                "/usr/bin/unshare".into(),
                "-m".into(),
                "-u".into(),
                "--propagation".into(),
                "private".into(),
                "/bin/sh".into(),
                "-c".into(),
                format!("cd {d} && {UNSHARE_MOUNT}"),
            ],
        ),
        // User, mount and network namespaces an unprivileged `unshare -r` makes
        // (natively too, they are the command's own).
        (
            "util-linux-unshare-user",
            s(&[
                "/usr/bin/unshare",
                "-r",
                "/bin/sh",
                "-c",
                "id; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; \
                 stat -c %u:%g /; unshare -r id -u",
            ]),
        ),
        (
            "util-linux-unshare-user-mount",
            vec![
                "/usr/bin/unshare".into(),
                "-rm".into(),
                "--propagation".into(),
                "private".into(),
                "/bin/sh".into(),
                "-c".into(),
                format!(
                    "cd {d} && mkdir -p um && mount -t tmpfs -o size=64k t um && touch um/f && \
                     stat -c '%u %g %a' um/f && umount um && rmdir um && echo done"
                ),
            ],
        ),
        (
            "util-linux-unshare-net",
            s(&[
                "/usr/bin/unshare",
                "-rn",
                "/bin/sh",
                "-c",
                "ip -o link | cut -d: -f2; ls /proc/self/net/dev",
            ]),
        ),
        ("perl", s(&["/usr/bin/perl", "-e", "my $x = `echo perl-sub`; print \"perl: $x\"; print join(',', map { $_ * 2 } 1..5), \"\\n\";"])),
    ];
    assert!(
        Path::new("/usr/bin/inotifywait").exists(),
        "inotifywait missing: run tests/setup.sh"
    );
    v.push(("inotifywait", s(&["/bin/bash", "-c", INOTIFYWAIT])));
    // bubblewrap: as an unprivileged user would run it (a user namespace of its
    // own), as root with /proc, and with every namespace (`--unshare-all`: bwrap
    // adds 127.0.0.1/8 to the new network namespace's lo and brings it up over
    // netlink, checking the replies' port id against its pid in its new pid
    // namespace).
    assert!(
        Path::new("/usr/bin/bwrap").exists(),
        "bwrap missing: run tests/setup.sh"
    );
    v.push((
        "bubblewrap",
        s(&[
            "/usr/bin/bwrap",
            "--unshare-user",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--hostname",
            "inner",
            "/bin/sh",
            "-c",
            "hostname; id -u; ls /dev; echo x > /dev/null && echo written",
        ]),
    ));
    v.push((
        "bubblewrap-root-proc",
        s(&[
            "/usr/bin/bwrap",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--hostname",
            "inner",
            "/bin/sh",
            "-c",
            "hostname; id -u; grep ^0:: /proc/self/cgroup; test -r /proc/self/status && echo proc",
        ]),
    ));
    v.push((
        "bubblewrap-unshare-all",
        s(&[
            "/usr/bin/bwrap",
            "--unshare-all",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--",
            "/bin/sh",
            "-c",
            "ip addr; id; echo ok",
        ]),
    ));
    // A JVM (once killed on ptrace: getcpu was ENOSYS). Only where one is installed.
    if Path::new("/usr/bin/java").exists() {
        v.push((
            "java-version",
            s(&[
                "/bin/sh",
                "-c",
                "/usr/bin/java -version 2>&1 | head -1; echo done",
            ]),
        ));
    }
    v
}

#[test]
fn debian_programs_match_native() {
    let rvisor = rvisor_bin().expect("rvisor binary");
    let dir = std::env::temp_dir().join(format!("rvisor-programs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("data"), b"0123456789abcdef\n").unwrap();
    let env = vec![
        (
            "PATH".to_string(),
            "/usr/local/bin:/usr/bin:/bin".to_string(),
        ),
        ("LC_ALL".to_string(), "C".to_string()),
    ];
    let mut failures = Vec::new();
    for (name, argv) in cases(&dir) {
        let native = run_with_timeout(native_command(&env, &argv), Duration::from_secs(60))
            .expect("native run");
        for p in platforms() {
            let mut cmd = sandbox_command(&rvisor, &p, &Rootfs::Host, &env, &argv);
            cmd.current_dir(&dir);
            let got = run_with_timeout(cmd, Duration::from_secs(120)).expect("sandbox run");
            if got.status != native.status || got.stdout != native.stdout {
                failures.push(format!(
                    "{name}/{p}: status {} vs native {}\n--- native\n{}\n--- sandbox\n{}\n--- sandbox stderr\n{}",
                    got.status,
                    native.status,
                    String::from_utf8_lossy(&native.stdout),
                    String::from_utf8_lossy(&got.stdout),
                    String::from_utf8_lossy(&got.stderr)
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Children of this test process that are still alive (zombies are reaped here).
fn live_children() -> Vec<i32> {
    while let Ok(st) = nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
        if st == nix::sys::wait::WaitStatus::StillAlive {
            break;
        }
    }
    let me = std::process::id();
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{me}/task")) {
        for t in tasks.flatten() {
            if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(c.split_whitespace().filter_map(|x| x.parse::<i32>().ok()));
            }
        }
    }
    out
}

#[test]
fn sigkill_leaves_nothing_behind() {
    let rvisor = rvisor_bin().expect("rvisor binary");
    // Orphans of the killed CLI come to us, so anything left over is visible.
    nix::sys::prctl::set_child_subreaper(true).expect("subreaper");
    for p in platforms() {
        let argv: Vec<String> = ["/bin/sh", "-c", "sleep 100 & sleep 100 & python3 -c 'import threading,time; [threading.Thread(target=time.sleep, args=(100,)).start() for _ in range(3)]; time.sleep(100)' & wait"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut child = sandbox_command(&rvisor, &p, &Rootfs::Host, &[], &argv)
            .spawn()
            .expect("spawn rvisor");
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!live_children().is_empty());
        child.kill().expect("SIGKILL the CLI");
        let _ = child.wait();
        let start = Instant::now();
        let mut left = live_children();
        while !left.is_empty() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
            left = live_children();
        }
        assert!(
            left.is_empty(),
            "{p}: processes left after SIGKILL of the container: {left:?}"
        );

        // A container that exits on its own leaves nothing either, even with a
        // background child still running inside it.
        let argv: Vec<String> = ["/bin/sh", "-c", "sleep 100 & exit 3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let out = run_with_timeout(
            sandbox_command(&rvisor, &p, &Rootfs::Host, &[], &argv),
            Duration::from_secs(30),
        )
        .expect("run");
        assert_eq!(out.status, 3, "{p}");
        let start = Instant::now();
        let mut left = live_children();
        while !left.is_empty() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
            left = live_children();
        }
        assert!(
            left.is_empty(),
            "{p}: processes left after the container exited: {left:?}"
        );
    }
}

const BUSYBOX_SCRIPT: &str = r#"
set -e
cd "$1"
mkdir w && cd w
cp -a ../fixture src
find src | sort
mv src/a.txt src/moved.txt
sed -i 's/hello/HELLO/' src/moved.txt
cat src/moved.txt
grep -r HELLO src | sort
mkdir out
tar c src | (cd out && tar x)
find out -type f | sort
cat > here.txt <<END
line one
$((2 + 3)) > redirected
END
cat here.txt
echo appended >> here.txt
wc -l < here.txt
ls -la src | awk 'NR > 1 { s = $5; if ($1 ~ /^d/) s = "dir"; print $1, s, $NF }' | sort -k3
rm -rf src out
ls
echo done
"#;

#[test]
fn busybox_scripts_match_native() {
    let rvisor = rvisor_bin().expect("rvisor binary");
    let base = std::env::temp_dir().join(format!("rvisor-bb-{}", std::process::id()));
    let fixture = base.join("fixture");
    std::fs::create_dir_all(fixture.join("sub/deeper")).unwrap();
    std::fs::write(fixture.join("a.txt"), "hello world\n").unwrap();
    std::fs::write(fixture.join("sub/b.txt"), "nothing here\n").unwrap();
    std::fs::write(fixture.join("sub/deeper/c.txt"), "say hello\n").unwrap();
    std::os::unix::fs::symlink("a.txt", fixture.join("link")).unwrap();
    // Every command is a busybox applet: a PATH of applet links. Directory sizes are
    // filesystem-specific (4096 on ext4, not on an in-memory overlay), so the script
    // prints file sizes only.
    let bin = base.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for a in [
        "sh", "cp", "find", "sort", "mv", "sed", "cat", "grep", "mkdir", "tar", "wc", "ls", "awk",
        "rm", "echo",
    ] {
        std::os::unix::fs::symlink("/bin/busybox", bin.join(a)).unwrap();
    }
    let env = vec![("PATH".to_string(), bin.display().to_string())];
    let argv: Vec<String> = vec![
        "/bin/busybox".into(),
        "sh".into(),
        "-c".into(),
        BUSYBOX_SCRIPT.into(),
        "sh".into(),
        base.display().to_string(),
    ];
    let native =
        run_with_timeout(native_command(&env, &argv), Duration::from_secs(60)).expect("native run");
    let _ = std::fs::remove_dir_all(base.join("w"));
    let mut failures = Vec::new();
    for p in platforms() {
        let got = run_with_timeout(
            sandbox_command(&rvisor, &p, &Rootfs::Host, &env, &argv),
            Duration::from_secs(60),
        )
        .expect("sandbox run");
        if got.status != native.status || got.stdout != native.stdout {
            failures.push(format!(
                "{p}: status {} vs {}\n--- native\n{}--- sandbox\n{}--- stderr\n{}",
                got.status,
                native.status,
                String::from_utf8_lossy(&native.stdout),
                String::from_utf8_lossy(&got.stdout),
                String::from_utf8_lossy(&got.stderr)
            ));
        }
        // The sandbox wrote into its overlay: the host tree is untouched.
        assert!(
            !base.join("w").exists(),
            "{p}: the sandbox wrote through to the host"
        );
    }
    let _ = std::fs::remove_dir_all(&base);
    assert_eq!(
        native.status,
        0,
        "native run failed: {}",
        String::from_utf8_lossy(&native.stderr)
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// stdout redirected to a host regular file: coreutils `cat` copies with
/// copy_file_range into it, which must work like a write to that file.
#[test]
fn output_to_a_host_file() {
    let rvisor = rvisor_bin().expect("rvisor binary");
    let dir = std::env::temp_dir().join(format!("rvisor-stdout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in");
    std::fs::write(&input, b"first line\nsecond line\n").unwrap();
    let out_path = dir.join("out");
    for p in platforms() {
        let out = std::fs::File::create(&out_path).unwrap();
        let argv = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            format!("cat {0}; cat {0}", input.display()),
        ];
        let mut cmd = sandbox_command(&rvisor, &p, &Rootfs::Host, &[], &argv);
        cmd.stdout(out);
        let st = cmd.status().expect("run rvisor");
        assert!(st.success(), "{p}: {st}");
        assert_eq!(
            std::fs::read(&out_path).unwrap(),
            b"first line\nsecond line\nfirst line\nsecond line\n",
            "{p}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The shell script `strace -f` follows in [`strace_matches_native`]: vfork and exec
/// of children, a failing open, a signal probe of itself, an exit code.
const STRACED: &str = "echo hi; /bin/true; cat /nonexistent 2>/dev/null; kill -0 $$; exit 3";

/// `s` with what differs between runs made uniform: numbers (pids, addresses, the
/// strace output files' suffixes) become `N`, and runs of spaces one (strace pads
/// results to a column, which a shorter pid shifts).
fn normalize_numbers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ' ' {
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            out.push(' ');
        } else if c.is_ascii_digit() {
            // 0x... addresses and decimal runs alike.
            while chars
                .peek()
                .is_some_and(|n| n.is_ascii_hexdigit() || *n == 'x')
            {
                chars.next();
            }
            out.push('N');
        } else {
            out.push(c);
        }
    }
    out
}

/// `strace -f` (ptrace served by the sentry between the sandbox's own processes)
/// tracing a shell that forks and execs, inside the sandbox and natively: each
/// process's trace (`-ff`, printed in pid order) must match, pids and addresses
/// aside. The native side traces only the shell it starts.
#[test]
fn strace_matches_native() {
    assert!(
        Path::new("/usr/bin/strace").exists(),
        "strace missing: run tests/setup.sh"
    );
    let rvisor = rvisor_bin().expect("rvisor binary");
    let script = format!(
        "d=$(mktemp -d) && strace -ff -qq -o $d/tr -e trace=execve,openat,wait4,exit_group,vfork,clone,write,kill \
         -e signal=none /bin/sh -c '{STRACED}'; echo \"status $?\"; cd $d && \
         for f in $(ls | sort -t. -k2 -n); do echo '== process'; cat $f; done; cd / && rm -rf $d"
    );
    let argv = vec!["/bin/sh".to_string(), "-c".to_string(), script];
    let env = vec![
        ("PATH".to_string(), "/usr/bin:/bin".to_string()),
        ("LC_ALL".to_string(), "C".to_string()),
    ];
    let native =
        run_with_timeout(native_command(&env, &argv), Duration::from_secs(60)).expect("native run");
    let want = normalize_numbers(&String::from_utf8_lossy(&native.stdout));
    assert!(
        want.contains("execve(\"/bin/true\"") && want.contains("exit_group(N)"),
        "native strace output unexpected:\n{want}\n{}",
        String::from_utf8_lossy(&native.stderr)
    );
    let mut failures = Vec::new();
    for p in platforms() {
        let cmd = sandbox_command(&rvisor, &p, &Rootfs::Host, &env, &argv);
        let got = run_with_timeout(cmd, Duration::from_secs(120)).expect("sandbox run");
        let have = normalize_numbers(&String::from_utf8_lossy(&got.stdout));
        if have != want || got.status != native.status {
            failures.push(format!(
                "{p}: status {} vs native {}\n{}\n--- sandbox stderr\n{}",
                got.status,
                native.status,
                rvisor_e2e::diff::line_diff("native", &want, "sandbox", &have),
                String::from_utf8_lossy(&got.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A C program that dies of SIGSEGV two calls deep, for [`gdb_backtrace_matches_native`].
const CRASH_C: &str = "void f(int *p) { *p = 1; }\nint main(void) { f(0); return 0; }\n";

/// `gdb -batch -ex run -ex bt` of a crashing static program inside the sandbox (gdb's
/// ptrace: breakpoints poked into text, signal stops, registers) gives the native
/// backtrace. The native side debugs only the program gdb starts.
#[test]
fn gdb_backtrace_matches_native() {
    gdb_backtrace(&["-static", "-no-pie"], "static");
}

/// The same for position-independent programs, static and dynamic: gdb finds where
/// the program was loaded from `/proc/PID/auxv` (AT_ENTRY, AT_PHDR) and reads its
/// memory through `/proc/PID/mem`; without them it showed unrelocated addresses.
#[test]
fn gdb_backtrace_pie_matches_native() {
    gdb_backtrace(&["-static-pie"], "static-pie");
    gdb_backtrace(&["-pie", "-fPIE"], "pie");
}

/// Compiles the crashing program with `flags` and compares gdb's backtrace of it
/// inside the sandbox with the native one.
fn gdb_backtrace(flags: &[&str], name: &str) {
    assert!(
        Path::new("/usr/bin/gdb").exists(),
        "gdb missing: run tests/setup.sh"
    );
    let rvisor = rvisor_bin().expect("rvisor binary");
    let dir = std::env::temp_dir().join(format!("rvisor-gdb-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("crash.c");
    let exe = dir.join("crash");
    std::fs::write(&src, CRASH_C).unwrap();
    let st = std::process::Command::new("gcc")
        .args(["-g", "-O0"])
        .args(flags)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("gcc");
    assert!(st.success(), "gcc failed");
    let argv: Vec<String> = ["/usr/bin/gdb", "-nx", "-batch", "-ex", "run", "-ex", "bt"]
        .iter()
        .map(|s| s.to_string())
        .chain([exe.display().to_string()])
        .collect();
    let env = vec![
        ("PATH".to_string(), "/usr/bin:/bin".to_string()),
        ("LC_ALL".to_string(), "C".to_string()),
    ];
    // The backtrace and the signal report, without gdb's chatter about threads. A
    // frame's address is left out: where Linux puts a static PIE (in the mmap area)
    // is not where the sandbox does; the function, arguments and line must match.
    let frames = |out: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(out)
            .lines()
            .filter(|l| l.starts_with('#') || l.starts_with("Program received"))
            .map(|l| match (l.find("0x"), l.find(" in ")) {
                (Some(a), Some(b)) if l.starts_with('#') && a < b => {
                    format!("{}ADDR{}", &l[..a], &l[b..])
                }
                _ => l.to_string(),
            })
            .collect()
    };
    let native =
        run_with_timeout(native_command(&env, &argv), Duration::from_secs(60)).expect("native run");
    let want = frames(&native.stdout);
    assert!(
        want.len() == 3 && want[1].contains(" in f ") && want[2].contains(" in main "),
        "native gdb output unexpected: {want:?}\n{}",
        String::from_utf8_lossy(&native.stderr)
    );
    let mut failures = Vec::new();
    for p in platforms() {
        let cmd = sandbox_command(&rvisor, &p, &Rootfs::Host, &env, &argv);
        let got = run_with_timeout(cmd, Duration::from_secs(120)).expect("sandbox run");
        let have = frames(&got.stdout);
        if have != want {
            failures.push(format!(
                "{name} on {p}: {have:?} vs native {want:?}\n--- sandbox stdout\n{}\n--- sandbox stderr\n{}",
                String::from_utf8_lossy(&got.stdout),
                String::from_utf8_lossy(&got.stderr)
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
