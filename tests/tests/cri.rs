//! rvisor as a Kubernetes runtime: containerd's CRI plugin with the runtime handler
//! `rvisor` (`runtime_type = "io.containerd.rvisor.v1"`), driven by a CRI client
//! (the `k8s-cri` crate, gRPC over containerd's unix socket) the way the kubelet
//! drives it.
//!
//! The test starts its own containerd (Debian's, installed by tests/setup.sh) with its
//! own root, state and socket, inside a network namespace it makes (`unshare --net`),
//! so the CNI bridge of the pods (Debian's containernetworking-plugins) and the pods'
//! traffic never touch the host's network. The pause image and the container image are
//! OCI archives built here from busybox-static and two static C helpers, imported with
//! `ctr -n k8s.io images import`. Everything (pods, containerd, its directories, the
//! cgroups) is removed at the end, pass or fail. The test is skipped, saying so, only
//! when containerd is not installed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use rvisor_e2e::containerd::Daemon;
use rvisor_e2e::Link;
use tonic::transport::Channel;

const NS: &str = "k8s.io";
const HANDLER: &str = "rvisor";
const PAUSE: &str = "docker.io/library/rvisor-pause:test";
const IMAGE: &str = "docker.io/library/rvisor-cri-busybox:test";
const MIB: i64 = 1 << 20;

/// An OCI archive with two images over one busybox-static layer (plus the helpers
/// `sysv_shm` and `mem_hog`): the pause image (`sleep` for ever) and the image of
/// the containers.
fn build_images(work: &Path) -> PathBuf {
    let rootfs = work.join("image-rootfs");
    for d in ["bin", "tmp", "proc", "dev", "etc", "sys", "www"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for app in [
        "sh", "echo", "sleep", "true", "cat", "httpd", "wget", "ls", "head", "awk", "grep",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(app)).unwrap();
    }
    let c = rvisor_e2e::c_dir();
    for (src, name) in [
        ("cri/sysv_shm.c", "sysv_shm"),
        ("resources/mem_hog.c", "mem_hog"),
    ] {
        rvisor_e2e::compile(
            &c.join(src),
            Link::Static,
            &rootfs.join("bin").join(name),
            &[],
        )
        .unwrap();
    }
    rvisor_e2e::image::archive(
        work,
        &rootfs,
        "images.tar",
        &[
            rvisor_e2e::image::Image {
                name: PAUSE,
                cmd: &["/bin/sleep", "2147483647"],
                ref_name: None,
            },
            rvisor_e2e::image::Image {
                name: IMAGE,
                cmd: &["/bin/sh"],
                ref_name: None,
            },
        ],
    )
}

/// A private containerd with the CRI plugin, in a network namespace of its own
/// (see `rvisor_e2e::containerd`); on drop its pods are stopped and removed,
/// containerd is stopped, and its directories and cgroups are removed.
struct Containerd {
    d: Daemon,
    /// The pods' cgroup parent (cgroupfs driver), relative to each hierarchy's root.
    cgroup_parent: String,
}

impl std::ops::Deref for Containerd {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.d
    }
}

impl Containerd {
    /// A containerd whose rvisor runs on `platform`.
    fn start(platform: &str) -> Containerd {
        let dir =
            std::env::temp_dir().join(format!("rvisor-cri-{}-{platform}", std::process::id()));
        Daemon::prepare(&dir, &["cni", "cni-ipam", "pods"]);
        let d = dir.display();
        // The pods' bridge lives in containerd's own network namespace; no masquerade,
        // no iptables.
        std::fs::write(
            dir.join("cni/10-rvisor-cri.conflist"),
            serde_json::json!({
                "cniVersion": "0.4.0",
                "name": "rvisor-cri",
                "plugins": [{
                    "type": "bridge",
                    "bridge": "rvcri0",
                    "isGateway": true,
                    "ipMasq": false,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": "10.213.7.0/24"}]],
                        "dataDir": format!("{d}/cni-ipam"),
                    },
                }],
            })
            .to_string(),
        )
        .unwrap();
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  level = "info"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE}"
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    # No runc here: the default must name a configured runtime; pods still ask
    # for the handler by name.
    default_runtime_name = "{HANDLER}"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{HANDLER}]
      runtime_type = "io.containerd.rvisor.v1"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
"#
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        // The shim's options: the pods' files (hostname, resolv.conf, /dev/shm) live
        // under this containerd's state directory, not /run/containerd.
        std::fs::write(
            dir.join("rvisor.toml"),
            format!(
                "platform = \"{platform}\"\nnetwork = \"sandbox\"\nallowed-mount-sources = [\"{d}\"]\n"
            ),
        )
        .unwrap();
        // `unshare` execs the shell, which execs containerd: the child's pid is
        // containerd's.
        let mut cmd = Command::new("unshare");
        cmd.args(["--net", "--", "sh", "-c"])
            .arg(r#"ip link set lo up && exec containerd --config "$1""#)
            .arg("sh")
            .arg(dir.join("config.toml"));
        let mut d = Daemon::spawn(dir, cmd);
        d.keep_dir = std::env::var_os("RVISOR_CRI_KEEP").is_some();
        Containerd {
            cgroup_parent: format!("rvisor-cri-{}-{platform}", std::process::id()),
            d,
        }
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.d.ctr(Some(NS), args)
    }

    fn import_images(&self) {
        let tarball = build_images(&self.dir);
        let o = self.ctr(&[
            "images",
            "import",
            "--snapshotter",
            "native",
            tarball.to_str().unwrap(),
        ]);
        assert!(
            o.status.success(),
            "ctr images import: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// The cgroup directories under the pods' parent, in every hierarchy, deepest first.
    fn cgroups(&self) -> Vec<PathBuf> {
        fn walk(d: &Path, out: &mut Vec<PathBuf>) {
            if let Ok(rd) = std::fs::read_dir(d) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        walk(&e.path(), out);
                    }
                }
            }
            out.push(d.to_path_buf());
        }
        let mut out = Vec::new();
        let roots = std::fs::read_dir("/sys/fs/cgroup")
            .map(|rd| rd.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default();
        for root in roots.into_iter().chain([PathBuf::from("/sys/fs/cgroup")]) {
            let p = root.join(&self.cgroup_parent);
            if p.is_dir() {
                walk(&p, &mut out);
            }
        }
        out
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Pods first, as the kubelet would, through CRI (a thread of its own: the
        // test may be failing inside a runtime).
        let sock = self.sock();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok(mut rs) = connect(&sock).await else {
                    return;
                };
                let Ok(pods) = rs
                    .list_pod_sandbox(cri::ListPodSandboxRequest::default())
                    .await
                else {
                    return;
                };
                for p in pods.into_inner().items {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(15),
                        rs.stop_pod_sandbox(cri::StopPodSandboxRequest {
                            pod_sandbox_id: p.id.clone(),
                        }),
                    )
                    .await;
                    let _ = tokio::time::timeout(
                        Duration::from_secs(15),
                        rs.remove_pod_sandbox(cri::RemovePodSandboxRequest {
                            pod_sandbox_id: p.id,
                        }),
                    )
                    .await;
                }
            });
        })
        .join();
        // containerd, then what it could not end; the mounts and the directory go
        // when the daemon is dropped.
        self.d.stop();
        for cg in self.cgroups() {
            let _ = std::fs::remove_dir(cg);
        }
    }
}

async fn connect(sock: &Path) -> Result<RuntimeServiceClient<Channel>, tonic::transport::Error> {
    let sock = sock.to_path_buf();
    // The URI is a placeholder: every connection goes to the unix socket.
    let channel = tonic::transport::Endpoint::from_static("http://[::1]:1")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let sock = sock.clone();
            async move {
                let s = tokio::net::UnixStream::connect(sock).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
            }
        }))
        .await?;
    Ok(RuntimeServiceClient::new(channel))
}

fn pod_config(c: &Containerd, name: &str) -> cri::PodSandboxConfig {
    let logs = c.dir.join("pods").join(name);
    std::fs::create_dir_all(&logs).unwrap();
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: logs.to_string_lossy().into_owned(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: format!("/{}/{name}", c.cgroup_parent),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config(name: &str, command: &[&str]) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: IMAGE.into(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        linux: Some(cri::LinuxContainerConfig::default()),
        ..Default::default()
    }
}

/// Runs `cmd` in container `id` with ExecSync: (exit code, stdout, stderr).
async fn exec_sync(
    rs: &mut RuntimeServiceClient<Channel>,
    id: &str,
    cmd: &[&str],
) -> (i32, String, String) {
    let r = rs
        .exec_sync(cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 20,
        })
        .await
        .unwrap_or_else(|e| panic!("ExecSync {cmd:?} in {id}: {e}"))
        .into_inner();
    (
        r.exit_code,
        String::from_utf8_lossy(&r.stdout).into_owned(),
        String::from_utf8_lossy(&r.stderr).into_owned(),
    )
}

async fn container_state(rs: &mut RuntimeServiceClient<Channel>, id: &str) -> cri::ContainerStatus {
    rs.container_status(cri::ContainerStatusRequest {
        container_id: id.into(),
        verbose: false,
    })
    .await
    .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"))
    .into_inner()
    .status
    .unwrap()
}

/// Waits until `f` holds, for at most `secs` seconds.
async fn until<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A WebSocket client of the kubelet's remote command protocol (v4.channel.k8s.io),
/// run with python3 in containerd's network namespace: each binary message's first
/// byte is the channel (1 stdout, 2 stderr, 3 the final status).
const WS_EXEC: &str = r#"
import base64, os, socket, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
s = socket.create_connection((u.hostname, u.port), timeout=20)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n").encode())
f = s.makefile("rb")
status = f.readline()
if b" 101 " not in status:
    sys.exit("handshake: " + status.decode())
while f.readline() not in (b"\r\n", b""):
    pass
chans = {1: b"", 2: b"", 3: b""}
while True:
    h = f.read(2)
    if len(h) < 2:
        break
    op, n = h[0] & 0x0F, h[1] & 0x7F
    if n == 126:
        n = int.from_bytes(f.read(2), "big")
    elif n == 127:
        n = int.from_bytes(f.read(8), "big")
    data = f.read(n)
    if op == 8:
        break
    if op in (1, 2) and data:
        c = data[0] if op == 2 else int(chr(data[0]))
        chans[c] = chans.get(c, b"") + data[1:]
for c in (1, 2, 3):
    sys.stdout.write(base64.b64encode(chans[c]).decode() + "\n")
"#;

/// Runs the streaming exec at `url`: (stdout, stderr, status JSON).
fn stream_exec(c: &Containerd, url: &str) -> (String, String, String) {
    let o = Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", c.pid()))
        .args(["python3", "-c", WS_EXEC, url])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "websocket exec at {url}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let decode = |l: &str| {
        let o = Command::new("base64")
            .arg("-d")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut ch| {
                use std::io::Write;
                ch.stdin.take().unwrap().write_all(l.as_bytes())?;
                ch.wait_with_output()
            })
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let l: Vec<String> = text.lines().map(decode).collect();
    assert_eq!(l.len(), 3, "{text}");
    (l[0].clone(), l[1].clone(), l[2].clone())
}

/// Lines of /proc/self/mountinfo naming `needle`.
fn mounts_naming(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// Whether `line` is one line of the CRI log format: `TIMESTAMP STREAM TAG MESSAGE`
/// with an RFC 3339 timestamp, stream stdout or stderr, tag F (full) or P (partial).
fn cri_log_line(line: &str) -> Option<(&str, &str)> {
    let mut f = line.splitn(4, ' ');
    let (ts, stream, tag, msg) = (f.next()?, f.next()?, f.next()?, f.next().unwrap_or(""));
    let ts_ok = ts.len() >= 20
        && ts.as_bytes()[4] == b'-'
        && ts.as_bytes()[10] == b'T'
        && (ts.ends_with('Z') || ts.contains('+'));
    (ts_ok && matches!(stream, "stdout" | "stderr") && matches!(tag, "F" | "P"))
        .then_some((stream, msg))
}

#[test]
fn cri_log_lines_are_recognised() {
    assert_eq!(
        cri_log_line("2026-12-06T22:01:02.123456789Z stdout F hello world"),
        Some(("stdout", "hello world"))
    );
    assert_eq!(cri_log_line("hello world"), None);
    assert_eq!(cri_log_line("2026-12-06T22:01:02Z stdin F x"), None);
}

/// The pod: RunPodSandbox with handler rvisor, two containers sharing its IPC and
/// network, ExecSync, logs, stats, an update of resources, then stop and removal
/// leaving nothing on the host.
#[test]
fn cri_runs_a_pod_under_rvisor() {
    if Command::new("containerd")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIP cri_runs_a_pod_under_rvisor: containerd is not installed (tests/setup.sh installs it)");
        return;
    }
    for p in rvisor_e2e::platforms() {
        let started = Instant::now();
        let c = Containerd::start(&p);
        c.import_images();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(pod_scenario(&c));
        rt.block_on(oom_scenario(&c));
        rt.block_on(own_limit_oom_scenario(&c));
        eprintln!("{p}: the pods ran in {:?}", started.elapsed());
    }
}

/// Limits the memory of pod `name`'s cgroup parent (what the kubelet does for a
/// pod's cgroup) to `bytes`, in cgroup v1's memory hierarchy or in v2.
fn limit_pod_memory(c: &Containerd, name: &str, bytes: i64) {
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if v2 {
        let top = Path::new("/sys/fs/cgroup").join(&c.cgroup_parent);
        std::fs::create_dir_all(top.join(name)).unwrap();
        for d in [top.clone(), top.join(name)] {
            std::fs::write(d.join("cgroup.subtree_control"), "+memory").unwrap();
        }
        std::fs::write(top.join(name).join("memory.max"), bytes.to_string()).unwrap();
        std::fs::write(top.join(name).join("memory.swap.max"), "0").unwrap();
    } else {
        let d = Path::new("/sys/fs/cgroup/memory")
            .join(&c.cgroup_parent)
            .join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("memory.limit_in_bytes"), bytes.to_string()).unwrap();
    }
}

/// A container allocating past its pod's memory limit: the host's OOM killer takes
/// it, the shim publishes TaskOOM, and the CRI says OOMKilled; the pod's other
/// container lives on.
async fn oom_scenario(c: &Containerd) {
    let mut rs = connect(&c.sock()).await.expect("connect to CRI");
    limit_pod_memory(c, "hog", 128 * MIB);
    let pod_cfg = pod_config(c, "hog");
    let pod = rs
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pod_cfg.clone()),
            runtime_handler: HANDLER.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", c.log()))
        .into_inner()
        .pod_sandbox_id;
    let mut ids = Vec::new();
    for (name, cmd) in [
        ("sibling", vec!["/bin/sleep", "3600"]),
        (
            "hog",
            vec!["/bin/sh", "-c", "sleep 1; exec /bin/mem_hog 400"],
        ),
    ] {
        let id = rs
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(container_config(name, &cmd)),
                sandbox_config: Some(pod_cfg.clone()),
            })
            .await
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}\n{}", c.log()))
            .into_inner()
            .container_id;
        rs.start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("StartContainer {name}: {e}\n{}", c.log()));
        ids.push(id);
    }
    let (sibling, hog) = (ids[0].clone(), ids[1].clone());
    let start = Instant::now();
    let st = loop {
        let st = container_state(&mut rs, &hog).await;
        // The exit and the TaskOOM arrive separately; wait for both.
        if st.state == cri::ContainerState::ContainerExited as i32 && st.reason == "OOMKilled" {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the hog was not OOM-killed: {st:?}\n{}",
            std::fs::read_to_string(c.dir.join("pods/hog/hog.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(st.exit_code, 137, "{st:?}");
    let s = container_state(&mut rs, &sibling).await;
    assert_eq!(
        s.state,
        cri::ContainerState::ContainerRunning as i32,
        "{s:?}"
    );
    let (code, out, _) = exec_sync(&mut rs, &sibling, &["/bin/echo", "alive"]).await;
    assert_eq!((code, out.as_str()), (0, "alive\n"));
    the_oom_is_the_hogs_only(&mut rs, &sibling).await;
    the_only_container_left_can_be_updated(&mut rs, &sibling).await;
    rs.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .unwrap_or_else(|e| panic!("StopPodSandbox: {e}\n{}", c.log()));
    rs.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}\n{}", c.log()));
    until(10, "the pod's processes to go", || async {
        c.stray().is_empty()
    })
    .await;
}

/// A container allocating past its own memory limit in a pod whose limit is far
/// larger: its biggest process is killed, the CRI says OOMKilled for it alone, and
/// its sibling and the pod live on.
async fn own_limit_oom_scenario(c: &Containerd) {
    let mut rs = connect(&c.sock()).await.expect("connect to CRI");
    limit_pod_memory(c, "own", 512 * MIB);
    let pod_cfg = pod_config(c, "own");
    let pod = rs
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pod_cfg.clone()),
            runtime_handler: HANDLER.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", c.log()))
        .into_inner()
        .pod_sandbox_id;
    let mut ids = Vec::new();
    for (name, cmd, limit) in [
        ("sibling", vec!["/bin/sleep", "3600"], 0),
        (
            "hog",
            vec!["/bin/sh", "-c", "sleep 1; exec /bin/mem_hog 200 hold"],
            64 * MIB,
        ),
    ] {
        let mut cfg = container_config(name, &cmd);
        cfg.linux
            .get_or_insert_with(Default::default)
            .resources
            .get_or_insert_with(Default::default)
            .memory_limit_in_bytes = limit;
        let id = rs
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(cfg),
                sandbox_config: Some(pod_cfg.clone()),
            })
            .await
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}\n{}", c.log()))
            .into_inner()
            .container_id;
        rs.start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("StartContainer {name}: {e}\n{}", c.log()));
        ids.push(id);
    }
    let (sibling, hog) = (ids[0].clone(), ids[1].clone());
    let start = Instant::now();
    let st = loop {
        let st = container_state(&mut rs, &hog).await;
        if st.state == cri::ContainerState::ContainerExited as i32 && st.reason == "OOMKilled" {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the hog was not killed at its own limit: {st:?}\n{}",
            std::fs::read_to_string(c.dir.join("pods/own/hog.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(st.exit_code, 137, "{st:?}");
    let s = container_state(&mut rs, &sibling).await;
    assert_eq!(
        s.state,
        cri::ContainerState::ContainerRunning as i32,
        "{s:?}"
    );
    let (code, out, _) = exec_sync(&mut rs, &sibling, &["/bin/echo", "alive"]).await;
    assert_eq!((code, out.as_str()), (0, "alive\n"));
    the_oom_is_the_hogs_only(&mut rs, &sibling).await;
    rs.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .unwrap_or_else(|e| panic!("StopPodSandbox: {e}\n{}", c.log()));
    rs.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}\n{}", c.log()));
    until(10, "the pod's processes to go", || async {
        c.stray().is_empty()
    })
    .await;
}

async fn pod_scenario(c: &Containerd) {
    let mut rs = connect(&c.sock()).await.expect("connect to CRI");
    let v = rs
        .version(cri::VersionRequest::default())
        .await
        .unwrap_or_else(|e| panic!("CRI Version: {e}\n--- containerd log ---\n{}", c.log()))
        .into_inner();
    assert_eq!(v.runtime_name, "containerd", "{v:?}");

    let pod_cfg = pod_config(c, "web");
    let pod = rs
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pod_cfg.clone()),
            runtime_handler: HANDLER.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n--- containerd log ---\n{}", c.log()))
        .into_inner()
        .pod_sandbox_id;
    let st = rs
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(st.state, cri::PodSandboxState::SandboxReady as i32);
    assert_eq!(st.runtime_handler, HANDLER);
    let pod_ip = st
        .network
        .as_ref()
        .map(|n| n.ip.clone())
        .unwrap_or_default();
    assert!(pod_ip.starts_with("10.213.7."), "pod IP {pod_ip:?}");
    // The pod's sandbox runs under rvisor: its processes are rvisor's.
    assert!(
        c.stray().iter().any(|(_, cmd)| cmd.contains(&pod)),
        "no rvisor process for pod {pod}: {:?}",
        c.stray()
    );

    // Only the pod's own (pause) container so far: the sandbox has its score.
    oom_score_adj_follows_the_containers(c, &pod, &[]);

    // Two containers. "server" serves a file on the pod's loopback and logs to both
    // streams; "client" holds memory.
    let mut ids = HashMap::new();
    for (name, cmd) in [
        (
            "server",
            vec![
                "/bin/sh",
                "-c",
                "echo from-server > /www/x; echo log-out; echo log-err >&2; \
                 exec httpd -f -p 7070 -h /www",
            ],
        ),
        // Holds a known amount of memory (see own_stats_are_each_containers).
        ("client", vec!["/bin/mem_hog", "40", "hold"]),
    ] {
        let id = rs
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(with_own_limits(
                    name,
                    with_oom_score_adj(container_config(name, &cmd), OOM_ADJ[name]),
                )),
                sandbox_config: Some(pod_cfg.clone()),
            })
            .await
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}\n{}", c.log()))
            .into_inner()
            .container_id;
        rs.start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("StartContainer {name}: {e}\n{}", c.log()));
        ids.insert(name, id);
    }
    let (server, client) = (ids["server"].clone(), ids["client"].clone());
    for id in [&server, &client] {
        let s = container_state(&mut rs, id).await;
        assert_eq!(
            s.state,
            cri::ContainerState::ContainerRunning as i32,
            "{s:?}"
        );
    }

    oom_score_adj_follows_the_containers(c, &pod, &[(&server, "server"), (&client, "client")]);

    // ExecSync: output, status.
    let (code, out, _) = exec_sync(&mut rs, &client, &["/bin/echo", "hi from exec"]).await;
    assert_eq!((code, out.as_str()), (0, "hi from exec\n"));
    let (code, _, _) = exec_sync(&mut rs, &client, &["/bin/sh", "-c", "exit 3"]).await;
    assert_eq!(code, 3);

    upper_files_are_on_the_containers_rootfs(&mut rs, &client).await;

    // Streaming exec: Exec gives a URL on containerd's streaming server (in its
    // network namespace); a WebSocket client there gets the output on channel 1 and
    // the status on channel 3.
    let url = rs
        .exec(cri::ExecRequest {
            container_id: client.clone(),
            cmd: ["/bin/sh", "-c", "echo streamed; echo oops >&2; exit 4"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            tty: false,
            stdin: false,
            stdout: true,
            stderr: true,
        })
        .await
        .unwrap_or_else(|e| panic!("Exec: {e}"))
        .into_inner()
        .url;
    let (out, err, status) = stream_exec(c, &url);
    assert_eq!(
        (out.as_str(), err.as_str()),
        ("streamed\n", "oops\n"),
        "{status}"
    );
    assert!(
        status.contains("NonZeroExitCode") && status.contains("\"4\""),
        "{status}"
    );

    // Network: the client reaches the server's port on the pod's 127.0.0.1.
    let mut got = String::new();
    for _ in 0..50 {
        let (code, out, _) = exec_sync(
            &mut rs,
            &client,
            &["/bin/wget", "-qO-", "http://127.0.0.1:7070/x"],
        )
        .await;
        got = out;
        if code == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got, "from-server\n", "the client did not reach the server");
    // IPC: a SysV segment made in one container is seen from the other.
    let (code, out, _) = exec_sync(&mut rs, &client, &["/bin/sysv_shm", "get"]).await;
    assert_eq!(code, 1, "a segment before any was made: {out}");
    let (code, out, _) = exec_sync(&mut rs, &server, &["/bin/sysv_shm", "put", "shared-ipc"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = exec_sync(&mut rs, &client, &["/bin/sysv_shm", "get"]).await;
    assert_eq!((code, out.as_str()), (0, "shared-ipc\n"));
    // The pod is reachable from its node: here containerd's namespace, where the
    // CNI bridge is.
    let o = Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", c.pid()))
        .args(["curl", "-sS", "-m", "10"])
        .arg(format!("http://{pod_ip}:7070/x"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "from-server\n",
        "the pod at {pod_ip} from the node: {} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );

    // Logs: the server's two lines in the CRI format at its LogPath.
    let log_path = c.dir.join("pods/web/server.log");
    let mut lines = Vec::new();
    for _ in 0..50 {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        lines = text.lines().map(str::to_string).collect::<Vec<_>>();
        if lines.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let parsed: Vec<_> = lines.iter().filter_map(|l| cri_log_line(l)).collect();
    assert_eq!(parsed.len(), lines.len(), "not CRI log lines: {lines:?}");
    assert!(parsed.contains(&("stdout", "log-out")), "{lines:?}");
    assert!(parsed.contains(&("stderr", "log-err")), "{lines:?}");

    // Stats: real figures for each container and the pod.
    for id in [&server, &client] {
        let s = rs
            .container_stats(cri::ContainerStatsRequest {
                container_id: id.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("ContainerStats {id}: {e}"))
            .into_inner()
            .stats
            .unwrap();
        let cpu = s
            .cpu
            .and_then(|c| c.usage_core_nano_seconds)
            .map(|v| v.value);
        let mem = s.memory.and_then(|m| m.working_set_bytes).map(|v| v.value);
        assert!(cpu.unwrap_or(0) > 0, "{id}: cpu {cpu:?}");
        assert!(mem.unwrap_or(0) > 0, "{id}: memory {mem:?}");
    }
    let ps = rs
        .pod_sandbox_stats(cri::PodSandboxStatsRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("PodSandboxStats: {e}"))
        .into_inner()
        .stats
        .unwrap();
    let linux = ps.linux.expect("linux pod stats");
    let cpu = linux
        .cpu
        .and_then(|c| c.usage_core_nano_seconds)
        .map(|v| v.value);
    let mem = linux
        .memory
        .and_then(|m| m.working_set_bytes)
        .map(|v| v.value);
    assert!(cpu.unwrap_or(0) > 0, "pod cpu {cpu:?}");
    assert!(mem.unwrap_or(0) > 0, "pod memory {mem:?}");
    own_stats_are_each_containers(&mut rs, &pod, &server, &client).await;

    // Each container sees its own limits from its spec (the smaller of its own and
    // the pod's): "server" has a memory limit and a CPU quota, "client" none, so it
    // sees the pod's.
    let server_view = own_view(&mut rs, &server).await;
    assert_eq!(
        server_view,
        (
            SERVER_MEMORY.to_string(),
            format!("{} {}", SERVER_CPU.0, SERVER_CPU.1),
            (SERVER_MEMORY / 1024).to_string()
        ),
        "server's own view"
    );
    let client_before = own_view(&mut rs, &client).await;
    assert_ne!(client_before.0, server_view.0, "client sees server's limit");

    // UpdateContainerResources of one container while the other runs: its own
    // view changes, the other's does not, and the pod's cgroup is left as the
    // kubelet sized it (as runsc does).
    rs.update_container_resources(cri::UpdateContainerResourcesRequest {
        container_id: client.clone(),
        linux: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 80 * MIB,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("UpdateContainerResources of a container in a pod: {e}"));
    let client_after = own_view(&mut rs, &client).await;
    assert_eq!(
        (client_after.0.as_str(), client_after.2.as_str()),
        (
            (80 * MIB).to_string().as_str(),
            (80 * MIB / 1024).to_string().as_str()
        ),
        "client after its update: {client_after:?}"
    );
    assert_eq!(client_after.1, client_before.1, "client's cpu.max changed");
    assert_eq!(own_view(&mut rs, &server).await, server_view);

    // Stop and remove: nothing of the pod is left on the host.
    rs.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .unwrap_or_else(|e| panic!("StopPodSandbox: {e}\n{}", c.log()));
    for id in [&server, &client] {
        let s = container_state(&mut rs, id).await;
        assert_eq!(
            s.state,
            cri::ContainerState::ContainerExited as i32,
            "{s:?}"
        );
    }
    rs.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}\n{}", c.log()));
    until(10, "the pod's processes to go", || async {
        c.stray().is_empty()
    })
    .await;
    for id in [&pod, &server, &client] {
        let m = mounts_naming(id);
        assert!(m.is_empty(), "mounts of {id} left: {m:?}");
    }
    let left: Vec<_> = c
        .cgroups()
        .into_iter()
        .filter(|p| [&pod, &server, &client].iter().any(|id| p.ends_with(id)))
        .collect();
    assert!(left.is_empty(), "cgroups left: {left:?}");
    let pods = rs
        .list_pod_sandbox(cri::ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert!(pods.is_empty(), "{pods:?}");
}

/// `oom_score_adj` of the pod web's containers (LinuxContainerResources).
static OOM_ADJ: std::sync::LazyLock<HashMap<&'static str, i64>> =
    std::sync::LazyLock::new(|| HashMap::from([("server", 600), ("client", 400)]));

/// The `oom_score_adj` containerd gives a pod's sandbox (pause) container.
const SANDBOX_OOM_ADJ: i32 = -998;

/// The "server" container's own limits in the pod scenario: a memory limit and a
/// CPU quota of its own (the kubelet would size the pod's cgroup to the sum).
const SERVER_MEMORY: i64 = 96 * MIB;
const SERVER_CPU: (i64, i64) = (50_000, 100_000);

fn with_own_limits(name: &str, mut cfg: cri::ContainerConfig) -> cri::ContainerConfig {
    if name == "server" {
        let linux = cfg.linux.get_or_insert_with(Default::default);
        let r = linux.resources.get_or_insert_with(Default::default);
        r.memory_limit_in_bytes = SERVER_MEMORY;
        (r.cpu_quota, r.cpu_period) = SERVER_CPU;
    }
    cfg
}

/// What container `id` reads in its cgroup files and /proc/meminfo: (memory.max,
/// cpu.max, MemTotal in kB).
async fn own_view(rs: &mut RuntimeServiceClient<Channel>, id: &str) -> (String, String, String) {
    let mut read = Vec::new();
    for cmd in [
        &["/bin/cat", "/sys/fs/cgroup/memory.max"][..],
        &["/bin/cat", "/sys/fs/cgroup/cpu.max"],
        &["/bin/grep", "MemTotal", "/proc/meminfo"],
    ] {
        let (code, out, err) = exec_sync(rs, id, cmd).await;
        assert_eq!(code, 0, "{cmd:?} in {id}: {err}");
        read.push(out.trim().to_string());
    }
    let mem_total = read[2].split_whitespace().nth(1).unwrap_or("").to_string();
    (read[0].clone(), read[1].clone(), mem_total)
}

fn with_oom_score_adj(mut cfg: cri::ContainerConfig, adj: i64) -> cri::ContainerConfig {
    let linux = cfg.linux.get_or_insert_with(Default::default);
    linux
        .resources
        .get_or_insert_with(Default::default)
        .oom_score_adj = adj;
    cfg
}

/// Children of host process `pid`.
fn host_children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    out
}

fn host_cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

fn host_oom_score_adj(pid: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The rvisor supervisor of container `id`, and its children running `sub`
/// (`gofer`, or `boot` for the sandbox's waiter).
fn supervised(c: &Containerd, id: &str, sub: &str) -> Vec<i32> {
    let sup: Vec<i32> = c
        .stray()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|&p| {
            let argv = host_cmdline(p);
            argv.iter().any(|a| a == "supervise")
                && argv.windows(2).any(|w| w[0] == "--id" && w[1] == id)
        })
        .collect();
    assert_eq!(sup.len(), 1, "one supervisor for {id}: {:?}", c.stray());
    host_children(sup[0])
        .into_iter()
        .filter(|&p| host_cmdline(p).iter().any(|a| a == sub))
        .collect()
}

/// Whether this process has CAP_SYS_RESOURCE (bit 24 of CapEff).
fn can_lower_oom_score_adj() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

/// The OCI spec of container `id`, from its supervisor's `--bundle`.
fn spec_of(c: &Containerd, id: &str) -> serde_json::Value {
    for (p, _) in c.stray() {
        let argv = host_cmdline(p);
        if argv.iter().any(|a| a == "supervise")
            && argv.windows(2).any(|w| w[0] == "--id" && w[1] == id)
        {
            if let Some(w) = argv.windows(2).find(|w| w[0] == "--bundle") {
                let text = std::fs::read_to_string(Path::new(&w[1]).join("config.json"))
                    .unwrap_or_default();
                return serde_json::from_str(&text).unwrap_or_default();
            }
        }
    }
    serde_json::Value::Null
}

/// Seen from the host, as runsc sets them: each container's gofer has the
/// container's `oom_score_adj`; every other host process of the sandbox (boot's
/// waiter, the sentry, the stubs) the lowest of the pod's containers, or the pod's
/// own (pause) container's while it has no other.
fn oom_score_adj_follows_the_containers(c: &Containerd, pod: &str, added: &[(&str, &str)]) {
    // Lowering a score takes CAP_SYS_RESOURCE, which a test run in a container may
    // lack: then the pause container's -998 cannot be set, and what was inherited
    // stays.
    let can_lower = can_lower_oom_score_adj();
    let gofers = supervised(c, pod, "gofer");
    assert_eq!(gofers.len(), 1, "the pod's gofer");
    let pause = spec_of(c, pod)["process"]["oomScoreAdj"].as_i64();
    assert_eq!(
        pause,
        Some(SANDBOX_OOM_ADJ.into()),
        "the pause container's spec"
    );
    if can_lower {
        assert_eq!(
            host_oom_score_adj(gofers[0]),
            Some(SANDBOX_OOM_ADJ),
            "the pod's gofer"
        );
    } else {
        eprintln!("NOTE: no CAP_SYS_RESOURCE: the pause container's -998 is not checked");
    }
    for (id, name) in added {
        let g = supervised(c, id, "gofer");
        assert_eq!(g.len(), 1, "{name}'s gofer");
        assert_eq!(
            host_oom_score_adj(g[0]),
            Some(OOM_ADJ[name] as i32),
            "{name}'s gofer"
        );
    }
    let want = added.iter().map(|(_, n)| OOM_ADJ[n] as i32).min();
    let Some(want) = want.or(can_lower.then_some(SANDBOX_OOM_ADJ)) else {
        return;
    };
    let waiter = supervised(c, pod, "boot");
    assert_eq!(waiter.len(), 1, "the pod's boot waiter");
    let mut todo = waiter.clone();
    let mut seen = Vec::new();
    while let Some(p) = todo.pop() {
        todo.extend(host_children(p));
        seen.push((p, host_oom_score_adj(p)));
    }
    // The waiter, the sentry and at least one stub.
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(
        seen.iter().all(|(_, a)| *a == Some(want)),
        "the sandbox's processes should have {want}: {seen:?}"
    );
}

async fn container_stats_of(rs: &mut RuntimeServiceClient<Channel>, id: &str) -> (u64, u64) {
    let s = rs
        .container_stats(cri::ContainerStatsRequest {
            container_id: id.to_string(),
        })
        .await
        .unwrap_or_else(|e| panic!("ContainerStats {id}: {e}"))
        .into_inner()
        .stats
        .unwrap();
    let cpu = s
        .cpu
        .and_then(|c| c.usage_core_nano_seconds)
        .map_or(0, |v| v.value);
    let mem = s
        .memory
        .and_then(|m| m.working_set_bytes)
        .map_or(0, |v| v.value);
    (cpu, mem)
}

/// ContainerStats are each container's own, from the sentry's accounting (its
/// processes' CPU time and the resident memory of the stubs holding their memory),
/// and PodSandboxStats the pod's total: "client" holds 40 MiB, "server" (an idle
/// httpd) far less, and the pod at least both.
async fn own_stats_are_each_containers(
    rs: &mut RuntimeServiceClient<Channel>,
    pod: &str,
    server: &str,
    client: &str,
) {
    let mut got = Default::default();
    for _ in 0..50 {
        got = (
            container_stats_of(rs, server).await,
            container_stats_of(rs, client).await,
        );
        // mem_hog touches its 40 MiB in well under a second; wait for it.
        if got.1 .1 >= 40 << 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ((s_cpu, s_mem), (c_cpu, c_mem)) = got;
    assert!(c_mem >= 40 << 20, "client holds 40 MiB: {got:?}");
    assert!(s_mem > 0 && s_mem < 20 << 20, "an idle httpd: {got:?}");
    assert!(s_cpu > 0 && c_cpu > 0, "{got:?}");
    let ps = rs
        .pod_sandbox_stats(cri::PodSandboxStatsRequest {
            pod_sandbox_id: pod.to_string(),
        })
        .await
        .unwrap_or_else(|e| panic!("PodSandboxStats: {e}"))
        .into_inner()
        .stats
        .and_then(|s| s.linux)
        .expect("linux pod stats");
    let p_mem = ps
        .memory
        .and_then(|m| m.working_set_bytes)
        .map_or(0, |v| v.value);
    let p_cpu = ps
        .cpu
        .and_then(|c| c.usage_core_nano_seconds)
        .map_or(0, |v| v.value);
    assert!(p_mem >= s_mem + c_mem, "pod {p_mem} vs containers {got:?}");
    assert!(
        p_cpu >= s_cpu.max(c_cpu),
        "pod cpu {p_cpu} vs containers {got:?}"
    );
}

/// The OOM kill of the hog is reported for the hog only: its sibling in the pod
/// keeps no OOM reason, running or after the pod is stopped.
async fn the_oom_is_the_hogs_only(rs: &mut RuntimeServiceClient<Channel>, sibling: &str) {
    // `rvisor events` looks every second; give the sibling's a few rounds.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let s = container_state(rs, sibling).await;
    assert_ne!(
        s.reason, "OOMKilled",
        "the sibling was not OOM-killed: {s:?}"
    );
}

/// Unnamed files of container `id`'s rootfs held open on the host (the
/// `--overlay=self` upper files, `/proc/PID/fd` showing `.../ID/rootfs/#INO
/// (deleted)`), by size.
fn upper_files_of(id: &str) -> Vec<u64> {
    use std::os::unix::fs::MetadataExt;
    let needle = format!("/{id}/rootfs/#");
    let mut seen = std::collections::BTreeSet::new();
    let mut sizes = Vec::new();
    for (_, dir) in rvisor_e2e::host_processes() {
        let Ok(fds) = std::fs::read_dir(dir.join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(t) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let t = t.to_string_lossy();
            if t.contains(&needle) && t.ends_with(" (deleted)") {
                if let Ok(m) = std::fs::metadata(fd.path()) {
                    if seen.insert((m.dev(), m.ino())) {
                        sizes.push(m.len());
                    }
                }
            }
        }
    }
    sizes
}

/// rvisor's default `--overlay=self` under containerd: a file written in a
/// container's root is an unnamed file on that container's own rootfs (containerd's
/// overlayfs snapshot), not sandbox memory, and it goes when the file is removed.
async fn upper_files_are_on_the_containers_rootfs(
    rs: &mut RuntimeServiceClient<Channel>,
    id: &str,
) {
    const SIZE: u64 = 32 << 20;
    let (code, out, err) = exec_sync(
        rs,
        id,
        &[
            "/bin/sh",
            "-c",
            &format!("head -c {SIZE} /dev/zero > /upper.bin && wc -c < /upper.bin"),
        ],
    )
    .await;
    assert_eq!((code, out.trim()), (0, SIZE.to_string().as_str()), "{err}");
    let held = upper_files_of(id);
    assert_eq!(
        held.iter().filter(|&&n| n == SIZE).count(),
        1,
        "upper files of {id}: {held:?}"
    );
    let (code, _, err) = exec_sync(rs, id, &["/bin/busybox", "rm", "/upper.bin"]).await;
    assert_eq!(code, 0, "{err}");
    let held = upper_files_of(id);
    assert!(!held.contains(&SIZE), "still held after rm: {held:?}");
}

/// UpdateContainerResources of a pod's only running container: its limits are the
/// pod sandbox's, and the sandbox shows the new ones inside (below the 128 MiB of
/// the pod's parent cgroup, which still applies).
async fn the_only_container_left_can_be_updated(rs: &mut RuntimeServiceClient<Channel>, id: &str) {
    rs.update_container_resources(cri::UpdateContainerResourcesRequest {
        container_id: id.to_string(),
        linux: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 100 * MIB,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("UpdateContainerResources of the pod's only container: {e}"));
    let (code, out, err) = exec_sync(rs, id, &["/bin/cat", "/sys/fs/cgroup/memory.max"]).await;
    assert_eq!((code, out.trim()), (0, "104857600"), "{err}");
    let (code, out, err) = exec_sync(rs, id, &["/bin/grep", "MemTotal", "/proc/meminfo"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.split_whitespace().nth(1),
        Some("102400"),
        "MemTotal after the update: {out}"
    );
}
