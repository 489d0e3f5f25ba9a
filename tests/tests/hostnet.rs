//! `--network=host` end to end (as root): the program's TCP and UDP sockets are host
//! sockets of the network namespace rvisor runs in. Each test makes its own
//! namespaces (names `nsh*`, deleted when the test ends, pass or fail): one with only
//! loopback, or two joined by a veth pair; rvisor runs in one of them through
//! `ip netns exec`. No traffic leaves those namespaces.
//!
//! Shown, on each platform: a python http.server inside reached by curl from the
//! same namespace (IPv4 and IPv6 loopback); a client inside reaching a server in
//! another namespace over the veth (TCP and UDP); the socket API compared with a
//! native run of the same script (non-blocking connect, SO_ERROR, epoll, half-close,
//! MSG_PEEK, timeouts, a signal interrupting accept); the metadata address refused
//! (allowed with --allow-metadata); and an attack: no raw, ping, packet or
//! netlink-route-write socket reaches the host, nor an internet socket a host unix
//! socket.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rvisor_e2e::{platforms, rvisor_bin, Link};

const OUTER_IP: &str = "10.78.0.1";
const INNER_IP: &str = "10.78.0.2";
const METADATA: &str = "169.254.169.254";

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// An inner namespace (where rvisor runs) and, with `veth`, an outer one joined to
/// it by a veth pair; deleted on drop.
struct Netns {
    outer: String,
    inner: String,
    dir: PathBuf,
}

impl Netns {
    fn new(veth: bool) -> Result<Netns, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Netns {
            outer: format!("nshO{id}"),
            inner: format!("nshI{id}"),
            dir: std::env::temp_dir().join(format!("nsh-test-{id}")),
        };
        let (o, i) = (ns.outer.as_str(), ns.inner.as_str());
        ip(&["netns", "add", i])?;
        ip(&["-n", i, "link", "set", "lo", "up"])?;
        if veth {
            let (a, b) = (format!("nshA{id}"), format!("nshB{id}"));
            ip(&["netns", "add", o])?;
            ip(&[
                "-n", o, "link", "add", &a, "type", "veth", "peer", "name", &b, "netns", i,
            ])?;
            ip(&["-n", o, "addr", "add", &format!("{OUTER_IP}/24"), "dev", &a])?;
            ip(&[
                "-n",
                o,
                "addr",
                "add",
                &format!("{METADATA}/32"),
                "dev",
                "lo",
            ])?;
            ip(&["-n", o, "link", "set", &a, "up"])?;
            ip(&["-n", o, "link", "set", "lo", "up"])?;
            ip(&["-n", i, "addr", "add", &format!("{INNER_IP}/24"), "dev", &b])?;
            ip(&["-n", i, "link", "set", &b, "up"])?;
            ip(&["-n", i, "route", "add", "default", "via", OUTER_IP])?;
        }
        std::fs::create_dir_all(&ns.dir).map_err(|e| e.to_string())?;
        std::fs::write(ns.dir.join("file.txt"), "served by a host socket\n")
            .map_err(|e| e.to_string())?;
        Ok(ns)
    }

    fn exec(ns: &str, cmd: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(cmd);
        c
    }

    /// `rvisor --platform=P --network=host [extra] do CMD` in the inner namespace.
    fn sandbox(&self, platform: &str, extra: &[&str], cmd: &[&str]) -> Command {
        let bin = rvisor_bin().expect("rvisor binary");
        let mut c = Self::exec(&self.inner, &["timeout", "60"]);
        c.arg(bin)
            .arg(format!("--platform={platform}"))
            .arg("--network=host")
            .arg("--root")
            .arg(self.dir.join("state"))
            .args(extra)
            .arg("do")
            .arg("--cwd")
            .arg(&self.dir)
            .args(cmd);
        c
    }

    /// `cmd` natively in the inner namespace.
    fn native(&self, cmd: &[&str]) -> Command {
        let mut c = Self::exec(&self.inner, cmd);
        c.current_dir(&self.dir);
        c
    }

    fn outer(&self, cmd: &[&str]) -> Command {
        Self::exec(&self.outer, cmd)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.outer]);
        let _ = ip(&["netns", "del", &self.inner]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A background process killed (its whole group) when dropped.
struct Bg(Child);

impl Bg {
    fn spawn(mut c: Command) -> Bg {
        use std::os::unix::process::CommandExt;
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        Bg(c.spawn().expect("spawn"))
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        // Only the group this test made: its leader's pid, positive.
        let pgid = self.0.id() as i32;
        if pgid > 0 {
            // SAFETY: no pointer arguments; a positive pid names the group we made.
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            std::thread::sleep(Duration::from_millis(300));
            // SAFETY: as above.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        let _ = self.0.wait();
    }
}

fn output(mut c: Command) -> Output {
    c.stdin(Stdio::null()).output().expect("run")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn until(secs: u64, mut f: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        match f() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > end => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Runs `cmd` natively in `ns` and inside it under each platform: the outputs must
/// be equal once `norm` has gone over both.
fn matches_native(ns: &Netns, cmd: &[&str], norm: impl Fn(&str) -> String) {
    let native = output(ns.native(cmd));
    assert!(native.status.success(), "native {cmd:?}: {}", text(&native));
    let want = norm(&String::from_utf8_lossy(&native.stdout));
    for p in platforms() {
        let o = output(ns.sandbox(&p, &[], cmd));
        assert!(o.status.success(), "{p} {cmd:?}: {}", text(&o));
        assert_eq!(
            norm(&String::from_utf8_lossy(&o.stdout)),
            want,
            "{p} {cmd:?}: {}",
            text(&o)
        );
    }
}

fn root_or_skip(name: &str) -> bool {
    // SAFETY: no arguments.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("{name}: skipped: needs root (network namespaces)");
        return false;
    }
    true
}

/// python http.server inside, bound to 127.0.0.1 and then to ::1; curl in the same
/// namespace (natively) fetches a file from it.
#[test]
fn server_inside_reached_from_the_namespace() {
    if !root_or_skip("server_inside_reached_from_the_namespace") {
        return;
    }
    for p in platforms() {
        let ns = Netns::new(false).expect("namespace");
        for (bind, url) in [
            ("127.0.0.1", "http://127.0.0.1:8080/file.txt"),
            ("::1", "http://[::1]:8080/file.txt"),
        ] {
            let srv = Bg::spawn(ns.sandbox(
                &p,
                &[],
                &[
                    "/usr/bin/python3",
                    "-m",
                    "http.server",
                    "--bind",
                    bind,
                    "8080",
                ],
            ));
            until(20, || {
                let o = output(ns.native(&["curl", "-sS", "-m", "5", url]));
                if o.status.success() && o.stdout == b"served by a host socket\n" {
                    Ok(())
                } else {
                    Err(text(&o))
                }
            })
            .unwrap_or_else(|e| panic!("{p}: curl {url}: {e}"));
            drop(srv);
        }
    }
}

/// A server in the outer namespace; curl and a UDP client inside reach it over the
/// veth through host sockets.
#[test]
fn client_inside_reaches_outside() {
    if !root_or_skip("client_inside_reaches_outside") {
        return;
    }
    const UDP_ECHO: &str = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',9053))\nwhile True:\n d,a=s.recvfrom(2048)\n s.sendto(d.upper(),a)\n";
    const UDP_CLIENT: &str = "import socket\nu=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nu.settimeout(5)\nu.sendto(b'ping over udp',('10.78.0.1',9053))\nd,a=u.recvfrom(100)\nprint(d.decode(), a[0])\n";
    for p in platforms() {
        let ns = Netns::new(true).expect("namespaces");
        let dir = ns.dir.to_str().expect("utf-8").to_string();
        let _http = Bg::spawn(ns.outer(&[
            "/usr/bin/python3",
            "-m",
            "http.server",
            "--bind",
            OUTER_IP,
            "--directory",
            &dir,
            "8081",
        ]));
        let _udp = Bg::spawn(ns.outer(&["/usr/bin/python3", "-c", UDP_ECHO]));
        let url = format!("http://{OUTER_IP}:8081/file.txt");
        until(20, || {
            let o = output(ns.native(&["curl", "-sS", "-m", "5", &url]));
            o.status.success().then_some(()).ok_or_else(|| text(&o))
        })
        .expect("servers outside start");
        let o = output(ns.sandbox(&p, &[], &["curl", "-sS", "-m", "10", &url]));
        assert!(o.status.success(), "{p}: curl inside: {}", text(&o));
        assert_eq!(o.stdout, b"served by a host socket\n", "{p}");
        let o = output(ns.sandbox(&p, &[], &["/usr/bin/python3", "-c", UDP_CLIENT]));
        assert!(o.status.success(), "{p}: udp inside: {}", text(&o));
        assert_eq!(o.stdout, b"PING OVER UDP 10.78.0.1\n", "{p}");
    }
}

/// The socket API on host sockets, compared with the same script run natively in
/// the same namespace.
const API: &str = r#"
import errno, os, select, signal, socket, struct, time
def name(e): return errno.errorcode.get(e.errno, str(e))
# A listener, a blocking client, half-close, MSG_PEEK, FIONREAD-free reads.
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('127.0.0.1', 0)); l.listen(8); port = l.getsockname()[1]
print('acceptconn', l.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
c = socket.create_connection(('127.0.0.1', port)); s, a = l.accept()
print('peer matches', a == c.getsockname(), s.getpeername() == c.getsockname())
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
print('nodelay', c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0)
c.sendall(b'hello world')
time.sleep(0.1)
print('peek', s.recv(5, socket.MSG_PEEK), 'read', s.recv(100))
c.shutdown(socket.SHUT_WR); print('eof', s.recv(10))
s.sendall(b'back'); print('after half-close', c.recv(10))
big = b'x' * (4 << 20); c2 = socket.create_connection(('127.0.0.1', port)); s2, _ = l.accept()
import threading
t = threading.Thread(target=lambda: c2.sendall(big)); t.start()
got = 0
while got < len(big):
    d = s2.recv(1 << 16)
    if not d: break
    got += len(d)
t.join(); print('bulk', got == len(big))
print('waitall', len(s2.recv(0)) == 0)
# Non-blocking connect: EINPROGRESS then SO_ERROR 0; to a closed port ECONNREFUSED.
n = socket.socket(); n.setblocking(False)
r = n.connect_ex(('127.0.0.1', port)); print('nb connect', errno.errorcode.get(r, r))
select.select([], [n], [], 5); print('so_error', n.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
dead = socket.socket(); dead.bind(('127.0.0.1', 0)); dport = dead.getsockname()[1]; dead.close()
n2 = socket.socket(); n2.setblocking(False); n2.connect_ex(('127.0.0.1', dport))
select.select([], [n2], [], 5); print('refused so_error', errno.errorcode.get(n2.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)))
try: socket.create_connection(('127.0.0.1', dport))
except OSError as e: print('blocking connect', name(e))
# epoll on a fresh listener and a connection, edge-triggered.
l2 = socket.socket(); l2.bind(('127.0.0.1', 0)); l2.listen(8); l2.setblocking(False)
ep = select.epoll(); ep.register(l2.fileno(), select.EPOLLIN | select.EPOLLET)
print('epoll idle', ep.poll(0.1))
c3 = socket.create_connection(l2.getsockname())
print('epoll listener', [(f == l2.fileno(), ev & select.EPOLLIN != 0) for f, ev in ep.poll(5)])
s3, _ = l2.accept(); ep.register(s3.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
c3.sendall(b'z'); print('epoll data', [(ev & select.EPOLLIN != 0) for f, ev in ep.poll(5) if f == s3.fileno()])
s3.recv(1); c3.close(); time.sleep(0.1)
print('epoll rdhup', [(ev & select.EPOLLRDHUP != 0) for f, ev in ep.poll(5) if f == s3.fileno()])
# A receive timeout, and a signal interrupting a blocking accept.
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.1', 0))
u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack('ll', 0, 200000))
t0 = time.time()
try: u.recv(10)
except OSError as e: print('rcvtimeo', name(e), 0.15 < time.time() - t0 < 2)
u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u2.sendto(b'dgram', u.getsockname())
d, a = u.recvfrom(3, socket.MSG_PEEK); print('udp peek', d, a == u2.getsockname())
d, anc, fl, a = u.recvmsg(3); print('udp trunc', d, fl & socket.MSG_TRUNC != 0)
class Alarm(Exception): pass
def h(*_): raise Alarm()
signal.signal(signal.SIGALRM, h); l2.setblocking(True); signal.setitimer(signal.ITIMER_REAL, 0.3)
try: l2.accept()
except Alarm: print('accept interrupted')
v6 = socket.socket(socket.AF_INET6); v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
v6.bind(('::1', 0)); v6.listen(1); c6 = socket.create_connection(('::1', v6.getsockname()[1])); s6, a6 = v6.accept()
c6.sendall(b'six'); print('v6', s6.recv(3), a6[0])
lg = socket.socket(); lg.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 5))
print('linger', struct.unpack('ii', lg.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8))); lg.close()
"#;

#[test]
fn socket_api_matches_native() {
    if !root_or_skip("socket_api_matches_native") {
        return;
    }
    let ns = Netns::new(false).expect("namespace");
    matches_native(&ns, &["/usr/bin/python3", "-c", API], str::to_string);
}

/// A server listens on 169.254.169.254 in the outer namespace (reachable natively
/// from the inner one): from inside in host mode a connect and a UDP send are
/// refused (ENETUNREACH, as the other modes), also through a v4-mapped IPv6
/// address; with --allow-metadata they go through.
#[test]
fn metadata_refused_unless_allowed() {
    if !root_or_skip("metadata_refused_unless_allowed") {
        return;
    }
    const PROBE: &str = "import socket,errno\ndef n(e): return errno.errorcode.get(e.errno, e)\ns=socket.socket()\ns.settimeout(5)\ntry:\n s.connect(('169.254.169.254',80)); print('connected')\nexcept OSError as e: print(n(e))\nu=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ntry:\n u.sendto(b'x',('169.254.169.254',53)); print('sent')\nexcept OSError as e: print(n(e))\ns6=socket.socket(socket.AF_INET6)\ns6.settimeout(5)\ntry:\n s6.connect(('::ffff:169.254.169.254',80)); print('connected')\nexcept OSError as e: print(n(e))\n";
    for p in platforms() {
        let ns = Netns::new(true).expect("namespaces");
        let dir = ns.dir.to_str().expect("utf-8").to_string();
        let _md = Bg::spawn(ns.outer(&[
            "/usr/bin/python3",
            "-m",
            "http.server",
            "--bind",
            METADATA,
            "--directory",
            &dir,
            "80",
        ]));
        let url = format!("http://{METADATA}/file.txt");
        // Reachable natively from the inner namespace.
        until(20, || {
            let o = output(ns.native(&["curl", "-sS", "-m", "5", &url]));
            o.status.success().then_some(()).ok_or_else(|| text(&o))
        })
        .expect("metadata server up");
        let probe = |extra: &[&str]| {
            let o = output(ns.sandbox(&p, extra, &["/usr/bin/python3", "-c", PROBE]));
            assert!(o.status.success(), "{p}: {}", text(&o));
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        assert_eq!(probe(&[]), "ENETUNREACH\nENETUNREACH\nENETUNREACH\n", "{p}");
        assert_eq!(
            probe(&["--allow-metadata"]),
            "connected\nsent\nconnected\n",
            "{p}: allowed"
        );
        let o = output(ns.sandbox(&p, &[], &["curl", "-sS", "-m", "5", &url]));
        assert!(!o.status.success(), "{p}: curl reached the metadata server");
    }
}

/// What a host-mode program tries in order to reach the host's network below TCP
/// and UDP, or a host unix socket through an internet socket.
const ATTACK: &str = r#"
import ctypes, errno, socket, struct, sys
def n(e): return errno.errorcode.get(e.errno, str(e))
def attempt(label, f):
    try: f(); print(label, 'made')
    except OSError as e: print(label, n(e))
attempt('raw icmp', lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt('raw ip', lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW))
attempt('raw icmp6', lambda: socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6))
attempt('ping', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP))
attempt('sctp', lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132))
# A packet socket is the sandbox's own: the host's interface is not there.
veth = sys.argv[1]
try:
    p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    attempt('packet bind host veth', lambda: p.bind((veth, 0)))
except OSError as e: print('packet', n(e))
# The host's interfaces are listed (host mode shows them), but not reachable
# through the packet socket (above).
print('host veth listed', any(nm == veth for _, nm in socket.if_nameindex()))
# Netlink route: adding an address to lo.
nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0); nl.bind((0, 0))
addr = bytes([10, 99, 0, 1]); rta = struct.pack('=HH', 8, 2) + addr  # IFA_LOCAL
ifa = struct.pack('=BBBBI', socket.AF_INET, 32, 0, 0, 1)
body = ifa + rta + struct.pack('=HH', 8, 1) + addr  # IFA_ADDRESS
msg = struct.pack('=IHHII', 16 + len(body), 20, 0x1 | 0x4 | 0x400 | 0x200, 1, 0) + body
nl.send(msg); r = nl.recv(4096)
print('netlink newaddr', errno.errorcode.get(-struct.unpack('=i', r[16:20])[0], 'ok'))
# An internet socket given a unix address: never a host unix socket.
libc = ctypes.CDLL(None, use_errno=True)
path = sys.argv[2].encode()
for ty, label, suffix in ((socket.SOCK_STREAM, 'tcp', b''), (socket.SOCK_DGRAM, 'udp', b'.d')):
    target = path + suffix
    sun = struct.pack('=H', socket.AF_UNIX) + target + b'\0' * (108 - len(target))
    s = socket.socket(socket.AF_INET, ty)
    r = libc.connect(s.fileno(), sun, len(sun))
    print(label, 'connect unix', errno.errorcode.get(ctypes.get_errno()) if r else 'ok')
    r = libc.sendto(s.fileno(), b'x', 1, 0, sun, len(sun))
    print(label, 'sendto unix', errno.errorcode.get(ctypes.get_errno()) if r < 0 else 'ok')
    s6 = socket.socket(socket.AF_INET6, ty)
    r = libc.bind(s6.fileno(), sun, len(sun))
    print(label, 'bind unix', errno.errorcode.get(ctypes.get_errno()) if r else 'ok')
"#;

/// A host unix socket server (stream and datagram) that counts what reaches it in
/// `<path>.count`.
const UNIX_SERVER: &str = r#"
import socket, sys, select
p = sys.argv[1]
st = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); st.bind(p); st.listen(4)
dg = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); dg.bind(p + '.d')
n = 0
open(p + '.count', 'w').write('0')
while True:
    r, _, _ = select.select([st, dg], [], [], 60)
    if not r: break
    for x in r:
        if x is st: st.accept()
        else: dg.recv(100)
        n += 1
    open(p + '.count', 'w').write(str(n))
"#;

#[test]
fn host_mode_cannot_reach_below_tcp_udp_nor_unix_sockets() {
    if !root_or_skip("host_mode_cannot_reach_below_tcp_udp_nor_unix_sockets") {
        return;
    }
    for p in platforms() {
        let ns = Netns::new(true).expect("namespaces");
        let veth = ns.inner.replacen("nshI", "nshB", 1);
        let sock = ns.dir.join("host.sock");
        let sock_s = sock.to_str().expect("utf-8").to_string();
        let count = || std::fs::read_to_string(format!("{sock_s}.count")).unwrap_or_default();
        let _srv = Bg::spawn({
            let mut c = Command::new("/usr/bin/python3");
            c.args(["-c", UNIX_SERVER, &sock_s]);
            c
        });
        until(10, || {
            (count() == "0")
                .then_some(())
                .ok_or_else(|| "not up".to_string())
        })
        .expect("unix server up");
        let o = output(ns.sandbox(
            &p,
            &["--net-raw"],
            &["/usr/bin/python3", "-c", ATTACK, &veth, &sock_s],
        ));
        assert!(o.status.success(), "{p}: {}", text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "raw icmp EPERM\nraw ip EPERM\nraw icmp6 EPERM\nping EPROTONOSUPPORT\nsctp EPROTONOSUPPORT\n\
             packet bind host veth ENODEV\nhost veth listed True\nnetlink newaddr EPERM\n\
             tcp connect unix EAFNOSUPPORT\ntcp sendto unix EPIPE\ntcp bind unix EAFNOSUPPORT\n\
             udp connect unix EAFNOSUPPORT\nudp sendto unix EAFNOSUPPORT\nudp bind unix EAFNOSUPPORT\n",
            "{p}: {}",
            text(&o)
        );
        // The host kept its addresses, and its unix sockets saw nothing.
        let addrs = output(ns.native(&["ip", "-4", "addr", "show", "dev", "lo"]));
        assert!(
            !String::from_utf8_lossy(&addrs.stdout).contains("10.99.0.1"),
            "{p}: the netlink write reached the host"
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(count(), "0", "{p}: a host unix socket was reached");
        // The server does count a native connection (the check can fail).
        let mut poke = Command::new("/usr/bin/python3");
        poke.args([
            "-c",
            "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])",
            &sock_s,
        ]);
        assert!(output(poke).status.success());
        until(5, || (count() == "1").then_some(()).ok_or_else(count))
            .unwrap_or_else(|c| panic!("{p}: the native poke was not counted: {c}"));
    }
}

/// Compiles `tests/c/hostnet/NAME.c` into the namespace's directory.
fn c_program(ns: &Netns, name: &str) -> String {
    let src = rvisor_e2e::c_dir().join(format!("hostnet/{name}.c"));
    let out = ns.dir.join(
        std::path::Path::new(name)
            .file_name()
            .expect("a program name"),
    );
    rvisor_e2e::compile(&src, Link::Static, &out, &[]).expect("compile");
    out.to_str().expect("utf-8").to_string()
}

/// A veth's line of `ip link` up to its peer's namespace (`link-netns NAME`,
/// which the sandbox answers from the ids it asked the host for at boot: a
/// namespace named later would show as `link-netnsid N`). The exact line is
/// compared once on its own (`ip -o link show dev VETH`).
fn without_peer_netns(s: &str) -> String {
    s.lines()
        .map(|l| match l.find(" link-netns") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Under --network=host the program sees the host's interfaces: `ip -o addr`,
/// `ip -o link`, `ip route`, `ip neigh`, `ip rule` (netlink dumps), and a C program printing getifaddrs,
/// if_nameindex, the SIOCGIF* ioctls, SIOCGIFCONF, /sys/class/net and
/// /proc/net/{dev,if_inet6,route} all print what they print natively in the same
/// namespace (a veth with IPv4 and IPv6 addresses, a default route), and a sysfs
/// mounted in a network namespace made inside shows only its lo. Changes stay
/// refused (EPERM) and do not reach the host; under --network=none the same
/// program sees only the sandbox's loopback.
#[test]
fn host_interfaces_match_native() {
    if !root_or_skip("host_interfaces_match_native") {
        return;
    }
    let ns = Netns::new(true).expect("namespaces");
    let veth = ns.inner.replacen("nshI", "nshB", 1);
    ip(&[
        "-n",
        &ns.inner,
        "addr",
        "add",
        "fd00:78::2/64",
        "dev",
        &veth,
        "nodad",
    ])
    .expect("v6");
    // A neighbour whose state does not change between the runs compared.
    ip(&[
        "-n",
        &ns.inner,
        "neigh",
        "add",
        "10.78.0.9",
        "lladdr",
        "02:00:00:00:00:09",
        "dev",
        &veth,
        "nud",
        "permanent",
    ])
    .expect("neighbour");
    // The kernel's own link-local address is tentative (flag 0x40 in if_inet6, and
    // in getifaddrs) until duplicate address detection ends, about a second after
    // the link comes up: the runs compared must all see it settled.
    let settled = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let o = std::process::Command::new("ip")
            .args(["-n", &ns.inner, "-6", "addr", "show", "tentative"])
            .output()
            .expect("ip -6 addr show tentative");
        if o.stdout.is_empty() || std::time::Instant::now() > settled {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let prog = c_program(&ns, "ifview");
    // A network namespace made inside (every capability, as the native root has),
    // with a sysfs mounted there: its lo only, not the host's interfaces.
    let sysfs = c_program(&ns, "../netns_sysfs");
    let native = output(ns.native(&[&sysfs]));
    assert!(
        native.status.success(),
        "native netns_sysfs: {}",
        text(&native)
    );
    for p in platforms() {
        let o = output(ns.sandbox(&p, &[], &["--cap-add=all", "--", &sysfs]));
        assert!(o.status.success(), "{p} netns_sysfs: {}", text(&o));
        assert_eq!(o.stdout, native.stdout, "{p} netns_sysfs: {}", text(&o));
    }
    let cmds: Vec<Vec<&str>> = vec![
        vec!["ip", "-o", "addr"],
        vec!["ip", "-o", "link"],
        vec!["ip", "route"],
        vec!["ip", "-6", "route"],
        vec!["ip", "-o", "addr", "show", "dev", &veth],
        vec!["ip", "link", "show", "lo"],
        vec!["ip", "neigh", "show", "nud", "permanent"],
        vec!["ip", "rule"],
        vec!["ip", "-6", "rule"],
        vec![&prog],
    ];
    for cmd in &cmds {
        matches_native(&ns, cmd, without_peer_netns);
    }
    // The veth's peer namespace by name (RTM_GETNSID for /run/netns/NAME), as
    // natively: `link-netns nshO...`.
    matches_native(
        &ns,
        &["ip", "-o", "link", "show", "dev", &veth],
        str::to_string,
    );
    for p in platforms() {
        let o = output(ns.sandbox(&p, &[], &[&prog, "writes"]));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "SIOCSIFFLAGS lo down: -1 Operation not permitted\n\
             SIOCSIFMTU lo: -1 Operation not permitted\n\
             RTM_NEWADDR: Operation not permitted\n",
            "{p}: {}",
            text(&o)
        );
        let lo = output(ns.native(&["ip", "-o", "addr", "show", "dev", "lo"]));
        let lo = String::from_utf8_lossy(&lo.stdout).to_string();
        assert!(
            !lo.contains("10.99.99.1"),
            "{p}: the address reached the host: {lo}"
        );
        let up = output(ns.native(&["ip", "-o", "link", "show", "lo"]));
        assert!(
            String::from_utf8_lossy(&up.stdout).contains("UP"),
            "{p}: lo went down on the host"
        );
        // Outside host mode the sandbox's own view stays: loopback only.
        let bin = rvisor_bin().expect("rvisor binary");
        let mut c = Netns::exec(&ns.inner, &["timeout", "60"]);
        c.arg(bin)
            .arg(format!("--platform={p}"))
            .arg("--network=none")
            .arg("--root")
            .arg(ns.dir.join("state"))
            .args(["do", "ip", "-o", "link"]);
        let o = output(c);
        assert!(o.status.success(), "{p} none: {}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            out.contains(": lo:") && !out.contains(&veth),
            "{p} none: {out}"
        );
    }
}

/// Control messages (IP_PKTINFO/TTL/TOS and the IPv6 ones, received and sent,
/// truncated, timestamps, SCM_RIGHTS skipped) and TCP urgent data (MSG_OOB,
/// SO_OOBINLINE, SIOCATMARK, POLLPRI) on host sockets over loopback: the program's
/// output equals a native run's in the same namespace.
#[test]
fn host_control_messages_and_urgent_data_match_native() {
    if !root_or_skip("host_control_messages_and_urgent_data_match_native") {
        return;
    }
    let ns = Netns::new(false).expect("namespace");
    let prog = c_program(&ns, "cmsg_oob");
    matches_native(&ns, &[&prog], str::to_string);
}

/// IP_RECVERR and IPV6_RECVERR on host sockets: tests/c/net_recverr.c (UDP
/// datagrams to a closed port over loopback, the error queue read with
/// recvmsg(MSG_ERRQUEUE): payload, offender, sock_extended_err, the pending error,
/// EAGAIN at once when empty, the two options kept apart on an IPv6 socket), built
/// to stay in the test's namespace, prints under --network=host what it prints
/// natively there.
#[test]
fn host_error_queue_matches_native() {
    if !root_or_skip("host_error_queue_matches_native") {
        return;
    }
    let ns = Netns::new(false).expect("namespace");
    let src = rvisor_e2e::c_dir().join("net_recverr.c");
    let out = ns.dir.join("net_recverr");
    rvisor_e2e::compile(&src, Link::Static, &out, &["-DNET_SAME_NS".to_string()]).expect("compile");
    let prog = out.to_str().expect("utf-8").to_string();
    matches_native(&ns, &[&prog], str::to_string);
}
