//! `--network=sandbox` end to end (as root): each test makes two network namespaces
//! joined by a veth pair (names `nsb*`, deleted when the test ends, pass or fail),
//! runs rvisor in the inner one attached to its end of the pair, and talks to it
//! from the outer one with the host's own programs (python3, curl, ping). No
//! traffic leaves those namespaces.
//!
//! Shown: a server in the sandbox reached from outside (python http.server, curl),
//! a client in the sandbox reaching a server outside (curl, a UDP echo), ICMP echo
//! answered by the sandbox's stack, and the metadata address refused from inside
//! while a server listens on it (allowed with --allow-metadata), on each platform.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rvisor_e2e::{platforms, rvisor_bin};

const OUTER_IP: &str = "10.77.0.1";
const INNER_IP: &str = "10.77.0.2";
const METADATA: &str = "169.254.169.254";

/// Two namespaces and a veth pair between them; deleted on drop.
struct Netns {
    outer: String,
    inner: String,
    dir: PathBuf,
}

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

impl Netns {
    fn new() -> Result<Netns, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Netns {
            outer: format!("nsbO{id}"),
            inner: format!("nsbI{id}"),
            dir: std::env::temp_dir().join(format!("nsb-test-{id}")),
        };
        let (a, b) = (format!("nsbA{id}"), format!("nsbB{id}"));
        let (o, i) = (ns.outer.as_str(), ns.inner.as_str());
        ip(&["netns", "add", o])?;
        ip(&["netns", "add", i])?;
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
        ip(&["-n", i, "link", "set", "lo", "up"])?;
        ip(&["-n", i, "route", "add", "default", "via", OUTER_IP])?;
        std::fs::create_dir_all(&ns.dir).map_err(|e| e.to_string())?;
        std::fs::write(ns.dir.join("file.txt"), "served through the veth\n")
            .map_err(|e| e.to_string())?;
        Ok(ns)
    }

    /// `cmd` in namespace `ns`.
    fn exec(ns: &str, cmd: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(cmd);
        c
    }

    /// `rvisor --platform=P --network=sandbox [extra] do CMD` in the inner namespace
    /// (`extra` may name another `--network`).
    fn sandbox(&self, platform: &str, extra: &[&str], cmd: &[&str]) -> Result<Command, String> {
        let network = if extra.iter().any(|a| a.starts_with("--network=")) {
            None
        } else {
            Some("--network=sandbox")
        };
        let bin = rvisor_bin()?;
        let root = self.dir.join("state");
        let mut c = Self::exec(&self.inner, &["timeout", "60"]);
        c.arg(bin)
            .arg(format!("--platform={platform}"))
            .args(network)
            .arg("--root")
            .arg(root)
            .args(extra)
            .arg("do")
            .arg("--cwd")
            .arg(&self.dir)
            .args(cmd);
        Ok(c)
    }

    fn outer(&self, cmd: &[&str]) -> Command {
        Self::exec(&self.outer, cmd)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it, and so the pair.
        let _ = ip(&["netns", "del", &self.outer]);
        let _ = ip(&["netns", "del", &self.inner]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A background process killed (its whole group) when dropped.
struct Bg(Child);

impl Bg {
    fn spawn(mut c: Command) -> Result<Bg, String> {
        use std::os::unix::process::CommandExt;
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        c.spawn().map(Bg).map_err(|e| format!("spawn: {e}"))
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        // Only the group this test made: its leader's pid.
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

fn output(mut c: Command) -> Result<Output, String> {
    c.stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Retries `f` until it succeeds or `secs` pass.
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

fn root_or_skip(name: &str) -> bool {
    // SAFETY: no arguments.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("{name}: skipped: needs root (network namespaces, veth)");
        return false;
    }
    true
}

fn curl_outside(ns: &Netns, url: &str) -> Command {
    ns.outer(&["curl", "-sS", "-m", "5", url])
}

/// (a) python3 -m http.server inside; curl in the outer namespace fetches a file.
#[test]
fn server_inside_reached_from_outside() {
    if !root_or_skip("server_inside_reached_from_outside") {
        return;
    }
    for p in platforms() {
        let ns = Netns::new().expect("namespaces");
        let srv = ns
            .sandbox(
                &p,
                &[],
                &[
                    "/usr/bin/python3",
                    "-m",
                    "http.server",
                    "--bind",
                    "0.0.0.0",
                    "8080",
                ],
            )
            .expect("rvisor");
        let _srv = Bg::spawn(srv).expect("server");
        let url = format!("http://{INNER_IP}:8080/file.txt");
        until(20, || {
            let o = output(curl_outside(&ns, &url))?;
            if o.status.success() && o.stdout == b"served through the veth\n" {
                Ok(())
            } else {
                Err(text(&o))
            }
        })
        .unwrap_or_else(|e| panic!("{p}: curl from outside: {e}"));
    }
}

/// (b) a server outside (python on the outer end); curl inside fetches from it, and a
/// UDP datagram goes out and its echo comes back.
#[test]
fn client_inside_reaches_outside() {
    if !root_or_skip("client_inside_reaches_outside") {
        return;
    }
    const UDP_ECHO: &str = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',9053))\nwhile True:\n d,a=s.recvfrom(2048)\n s.sendto(d.upper(),a)\n";
    const UDP_CLIENT: &str = "import socket\nu=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nu.settimeout(5)\nu.sendto(b'ping over udp',('10.77.0.1',9053))\nprint(u.recvfrom(100)[0].decode())\n";
    for p in platforms() {
        let ns = Netns::new().expect("namespaces");
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
        ]))
        .expect("http server");
        let _udp = Bg::spawn(ns.outer(&["/usr/bin/python3", "-c", UDP_ECHO])).expect("udp");
        let url = format!("http://{OUTER_IP}:8081/file.txt");
        // The native client first: the servers are up.
        until(20, || {
            let o = output(curl_outside(&ns, &url))?;
            o.status.success().then_some(()).ok_or_else(|| text(&o))
        })
        .expect("servers outside start");
        let o = output(
            ns.sandbox(&p, &[], &["curl", "-sS", "-m", "10", &url])
                .expect("rvisor"),
        )
        .expect("run");
        assert!(o.status.success(), "{p}: curl inside: {}", text(&o));
        assert_eq!(o.stdout, b"served through the veth\n", "{p}");
        let o = output(
            ns.sandbox(&p, &[], &["/usr/bin/python3", "-c", UDP_CLIENT])
                .expect("rvisor"),
        )
        .expect("run");
        assert!(o.status.success(), "{p}: udp inside: {}", text(&o));
        assert_eq!(o.stdout, b"PING OVER UDP\n", "{p}");
    }
}

/// (c) the outer namespace pings the sandbox's address: the stack in the sentry
/// answers (the host kernel no longer holds the address).
#[test]
fn ping_answered_by_the_sandbox() {
    if !root_or_skip("ping_answered_by_the_sandbox") {
        return;
    }
    for p in platforms() {
        let ns = Netns::new().expect("namespaces");
        let _s =
            Bg::spawn(ns.sandbox(&p, &[], &["sleep", "30"]).expect("rvisor")).expect("sandbox");
        until(20, || {
            let o = output(ns.outer(&["ping", "-c", "1", "-W", "1", INNER_IP]))?;
            o.status.success().then_some(()).ok_or_else(|| text(&o))
        })
        .unwrap_or_else(|e| panic!("{p}: ping: {e}"));
        let o =
            output(ns.outer(&["ping", "-c", "3", "-i", "0.2", "-W", "2", INNER_IP])).expect("ping");
        assert!(o.status.success(), "{p}: {}", text(&o));
    }
}

/// (d) a server listens on 169.254.169.254 in the outer namespace: from inside a
/// connect is refused (ENETUNREACH) and a UDP send fails, in sandbox and none mode;
/// with --allow-metadata both go through.
#[test]
fn metadata_concealed_unless_allowed() {
    if !root_or_skip("metadata_concealed_unless_allowed") {
        return;
    }
    const PROBE: &str = "import socket,errno\ns=socket.socket()\ns.settimeout(5)\ntry:\n s.connect(('169.254.169.254',80)); print('connected')\nexcept OSError as e: print(errno.errorcode.get(e.errno, e))\nu=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ntry:\n u.sendto(b'x',('169.254.169.254',53)); print('sent')\nexcept OSError as e: print(errno.errorcode.get(e.errno, e))\n";
    for p in platforms() {
        let ns = Netns::new().expect("namespaces");
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
        ]))
        .expect("metadata server");
        let url = format!("http://{METADATA}/file.txt");
        // Reachable from the outer namespace itself.
        until(20, || {
            let o = output(curl_outside(&ns, &url))?;
            o.status.success().then_some(()).ok_or_else(|| text(&o))
        })
        .expect("metadata server up");
        let probe = |extra: &[&str]| {
            let o = output(
                ns.sandbox(&p, extra, &["/usr/bin/python3", "-c", PROBE])
                    .expect("rvisor"),
            )
            .expect("run");
            assert!(o.status.success(), "{p}: {}", text(&o));
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        assert_eq!(
            probe(&[]),
            "ENETUNREACH\nENETUNREACH\n",
            "{p}: sandbox mode"
        );
        assert_eq!(
            probe(&["--network=none"]),
            "ENETUNREACH\nENETUNREACH\n",
            "{p}: none mode"
        );
        assert_eq!(
            probe(&["--allow-metadata"]),
            "connected\nsent\n",
            "{p}: allowed"
        );
        let o = output(
            ns.sandbox(&p, &[], &["curl", "-sS", "-m", "5", &url])
                .expect("rvisor"),
        )
        .expect("run");
        assert!(!o.status.success(), "{p}: curl reached the metadata server");
        let o = output(
            ns.sandbox(&p, &["--allow-metadata"], &["curl", "-sS", "-m", "5", &url])
                .expect("rvisor"),
        )
        .expect("run");
        assert_eq!(o.stdout, b"served through the veth\n", "{p}: {}", text(&o));
    }
}

/// The sandbox gives the interface's address back when it ends, so the namespace
/// can be attached again (and the kernel answers for it meanwhile).
#[test]
fn interface_given_back_after_the_sandbox() {
    if !root_or_skip("interface_given_back_after_the_sandbox") {
        return;
    }
    let p = platforms()
        .into_iter()
        .next()
        .unwrap_or_else(|| "systrap".into());
    let ns = Netns::new().expect("namespaces");
    for _ in 0..2 {
        let o = output(ns.sandbox(&p, &[], &["true"]).expect("rvisor")).expect("run");
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = output(Netns::exec(&ns.inner, &["ip", "-4", "addr"])).expect("ip");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("{INNER_IP}/24")),
        "{}",
        text(&o)
    );
    let o = output(Netns::exec(&ns.inner, &["ip", "route"])).expect("ip");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("default via {OUTER_IP}")),
        "{}",
        text(&o)
    );
    let o = output(ns.outer(&["ping", "-c", "1", "-W", "2", INNER_IP])).expect("ping");
    assert!(o.status.success(), "kernel answers again: {}", text(&o));
}

/// A bulk send from inside arrives intact, and leaves the sentry as large segments the
/// host kernel cuts (GSO through the packet socket's virtio header, sentry/src/net/gso.rs):
/// the outer end of the veth counts far fewer frames than 1460-byte segments would be.
#[test]
fn bulk_send_arrives_intact_in_large_segments() {
    if !root_or_skip("bulk_send_arrives_intact_in_large_segments") {
        return;
    }
    const MIB: usize = 8;
    const RECV: &str = "import socket,hashlib\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',9100))\ns.listen(1)\nc,_=s.accept()\nh=hashlib.sha256()\nn=0\nwhile True:\n b=c.recv(1<<16)\n if not b: break\n h.update(b); n+=len(b)\nprint(n, h.hexdigest(), flush=True)\n";
    const SEND: &str = "import socket,sys\nc=socket.create_connection(('10.77.0.1',9100))\nblock=bytes((i*7+i//251)%256 for i in range(1<<20))\nfor k in range(int(sys.argv[1])):\n c.sendall(block[k:]+block[:k])\nc.close()\n";
    // What the receiver must see: the same bytes, hashed natively.
    const EXPECT: &str = "import hashlib,sys\nblock=bytes((i*7+i//251)%256 for i in range(1<<20))\nh=hashlib.sha256()\nfor k in range(int(sys.argv[1])):\n h.update(block[k:]+block[:k])\nprint(int(sys.argv[1])<<20, h.hexdigest())\n";
    let o = output({
        let mut c = Command::new("/usr/bin/python3");
        c.args(["-c", EXPECT, &MIB.to_string()]);
        c
    })
    .expect("python3");
    let expected = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        expected.starts_with(&(MIB << 20).to_string()),
        "{}",
        text(&o)
    );
    for p in platforms() {
        let ns = Netns::new().expect("namespaces");
        let veth = ns.outer.replacen("nsbO", "nsbA", 1);
        let stat = format!("/sys/class/net/{veth}/statistics/rx_packets");
        let packets = || -> u64 {
            let o = output(ns.outer(&["cat", &stat])).expect("cat");
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .expect("rx_packets")
        };
        let mut recv = ns.outer(&["/usr/bin/python3", "-c", RECV]);
        recv.stdout(Stdio::piped()).stderr(Stdio::piped());
        let recv = recv.spawn().expect("receiver");
        std::thread::sleep(Duration::from_millis(500));
        let before = packets();
        let n = MIB.to_string();
        let o = output(
            ns.sandbox(&p, &[], &["/usr/bin/python3", "-c", SEND, &n])
                .expect("rvisor"),
        )
        .expect("run");
        assert!(o.status.success(), "{p}: sender: {}", text(&o));
        let got = recv.wait_with_output().expect("receiver");
        assert_eq!(
            String::from_utf8_lossy(&got.stdout),
            expected,
            "{p}: {}",
            text(&got)
        );
        let frames = packets() - before;
        // 8 MiB in 1460-byte segments is about 5700 frames; aggregates of up to 64 KiB
        // make it a few hundred (ARP and the handshake add a handful).
        assert!(
            frames < ((MIB << 20) / 1460 / 4) as u64,
            "{p}: {frames} frames for {MIB} MiB: segments were not aggregated"
        );
    }
}

/// (e) `ping` inside: refused by default (CAP_NET_RAW is removed, and ping sockets
/// are closed by `ping_group_range`), also when `do` asks for the capability without
/// `--net-raw`; with `--net-raw` it reaches loopback (v4 and v6, answered by the
/// sentry) and, through the sandbox's stack, the outer end of the veth. The metadata
/// address stays unreachable by ICMP too. Packet sockets need the capability as well.
#[test]
fn ping_inside_needs_net_raw() {
    if !root_or_skip("ping_inside_needs_net_raw") {
        return;
    }
    for p in platforms() {
        let ns = Netns::new().expect("namespaces");
        let run = |extra: &[&str], cmd: &[&str]| {
            output(ns.sandbox(&p, extra, cmd).expect("rvisor")).expect("run")
        };
        for cmd in [
            &["ping", "-c", "1", "-W", "2", OUTER_IP][..],
            &[
                "--cap-add",
                "CAP_NET_RAW",
                "ping",
                "-c",
                "1",
                "-W",
                "2",
                "127.0.0.1",
            ],
        ] {
            let o = run(&[], cmd);
            assert!(!o.status.success(), "{p}: {cmd:?}: {}", text(&o));
            assert!(
                String::from_utf8_lossy(&o.stderr)
                    .contains("ping: socket: Operation not permitted"),
                "{p}: {cmd:?}: {}",
                text(&o)
            );
        }
        for dst in ["127.0.0.1", "::1", OUTER_IP] {
            let o = run(
                &["--net-raw"],
                &["ping", "-c", "2", "-i", "0.2", "-W", "2", dst],
            );
            assert!(o.status.success(), "{p}: ping {dst}: {}", text(&o));
            assert!(
                String::from_utf8_lossy(&o.stdout).contains("2 packets transmitted, 2 received"),
                "{p}: ping {dst}: {}",
                text(&o)
            );
        }
        let o = run(&["--net-raw"], &["ping", "-c", "1", "-W", "1", METADATA]);
        assert!(!o.status.success(), "{p}: metadata pinged: {}", text(&o));
        // Packet sockets: EPERM without the capability, EAFNOSUPPORT (not built)
        // with it.
        const PACKET: &str = "import socket\ntry:\n socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\nexcept OSError as e: print(e.errno)\n";
        let o = run(&[], &["/usr/bin/python3", "-c", PACKET]);
        assert_eq!(o.stdout, b"1\n", "{p}: {}", text(&o));
        let o = run(&["--net-raw"], &["/usr/bin/python3", "-c", PACKET]);
        assert_eq!(o.stdout, b"97\n", "{p}: {}", text(&o));
    }
}

/// `rvisor check-node`'s metadata probe: a warning where 169.254.169.254:80 answers
/// (a server on it in the outer namespace), a pass in a namespace with no route.
#[test]
fn check_node_probes_the_metadata_server() {
    if !root_or_skip("check_node_probes_the_metadata_server") {
        return;
    }
    let ns = Netns::new().expect("namespaces");
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
    ]))
    .expect("metadata server");
    let url = format!("http://{METADATA}/file.txt");
    until(20, || {
        let o = output(curl_outside(&ns, &url))?;
        o.status.success().then_some(()).ok_or_else(|| text(&o))
    })
    .expect("metadata server up");
    let bin = rvisor_bin().expect("rvisor");
    let bin = bin.to_str().expect("utf-8");
    let metadata = |mut c: Command| {
        c.arg(bin).args(["check-node", "--json"]);
        let o = output(c).expect("run");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("check-node --json: {e}: {}", text(&o)));
        v.as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == "metadata"))
            .cloned()
            .unwrap_or_else(|| panic!("no metadata check: {}", text(&o)))
    };
    let c = metadata(Netns::exec(&ns.outer, &[]));
    assert_eq!(c["status"], "warn", "{c}");
    assert!(c["fix"].as_str().is_some_and(|f| !f.is_empty()), "{c}");
    let mut isolated = Command::new("unshare");
    isolated.arg("--net");
    let c = metadata(isolated);
    assert_eq!(c["status"], "pass", "{c}");
}
