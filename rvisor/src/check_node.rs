//! `rvisor check-node`: the node's posture for untrusted pods, as the platform's
//! rules ask (secure module loading, a module blacklist, cgroup v2, SMT and core
//! scheduling, seccomp, user namespaces, KVM, metadata concealment). Every check
//! reads files under a root (`--root`, `/` by default) so tests can hand it fake
//! `/proc`, `/sys` and `/etc` trees; only the core-scheduling probe and the metadata
//! connection look at the live host, and only when the root is `/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

/// A check's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Good.
    Pass,
    /// Worth fixing; does not fail the node.
    Warn,
    /// Fails the node (exit status 1).
    Fail,
}

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short name.
    pub name: &'static str,
    /// Verdict.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// How to fix it (empty on pass).
    pub fix: String,
}

fn check(name: &'static str, status: Status, detail: impl Into<String>, fix: &str) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
        fix: if status == Status::Pass {
            String::new()
        } else {
            fix.to_string()
        },
    }
}

/// Modules untrusted code could make the kernel load (a socket family, a
/// filesystem image) that a node for pods never needs.
pub const RARE_MODULES: &[&str] = &[
    "dccp",
    "sctp",
    "rds",
    "tipc",
    "n-hdlc",
    "ax25",
    "netrom",
    "x25",
    "rose",
    "decnet",
    "econet",
    "af_802154",
    "ipx",
    "appletalk",
    "psnap",
    "p8023",
    "p8022",
    "can",
    "atm",
    "cramfs",
    "freevxfs",
    "jffs2",
    "hfs",
    "hfsplus",
    "squashfs",
    "udf",
];

/// What the checks read besides files.
pub struct Probes {
    /// Does the running kernel have core scheduling? `None`: not known.
    pub core_sched: Option<bool>,
    /// Is the metadata server reachable? `None`: not checked.
    pub metadata_reachable: Option<bool>,
}

impl Probes {
    /// The live host's answers when `root` is `/`; nothing otherwise.
    pub fn for_root(root: &Path) -> Probes {
        if root != Path::new("/") {
            return Probes {
                core_sched: None,
                metadata_reachable: None,
            };
        }
        Probes {
            core_sched: Some(sentry::sys::core_sched::supported(
                &sentry::sys::core_sched::Kernel,
            )),
            metadata_reachable: Some(metadata_reachable()),
        }
    }
}

/// The cloud metadata server's addresses (GCE, AWS, Azure: 169.254.169.254; AWS's
/// IPv6 one), port 80.
const METADATA_ADDRS: [std::net::SocketAddr; 2] = [
    std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::new(169, 254, 169, 254),
        80,
    )),
    std::net::SocketAddr::V6(std::net::SocketAddrV6::new(
        std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
        80,
        0,
        0,
    )),
];

/// Whether this node (its network namespace) completes a TCP connection to the
/// metadata server: one bounded attempt per address, at the same time, so the
/// whole probe takes at most the timeout. A refused or unanswered connection, or
/// no route, counts as unreachable.
fn metadata_reachable() -> bool {
    const TIMEOUT: Duration = Duration::from_millis(500);
    let probes: Vec<_> = METADATA_ADDRS
        .iter()
        .map(|a| {
            let a = *a;
            std::thread::spawn(move || std::net::TcpStream::connect_timeout(&a, TIMEOUT).is_ok())
        })
        .collect();
    probes.into_iter().any(|t| t.join().unwrap_or(false))
}

struct Node {
    root: PathBuf,
}

impl Node {
    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }
    fn read(&self, p: &str) -> Option<String> {
        std::fs::read_to_string(self.path(p))
            .ok()
            .map(|s| s.trim().to_string())
    }
    fn exists(&self, p: &str) -> bool {
        self.path(p).exists()
    }
    fn cmdline_has(&self, word: &str) -> bool {
        self.read("/proc/cmdline")
            .is_some_and(|c| c.split_whitespace().any(|w| w == word))
    }
}

fn no_modules_detail(n: &Node) -> Option<String> {
    if !n.exists("/proc/modules") && !n.exists("/proc/sys/kernel/modules_disabled") {
        return Some("the kernel has no loadable module support".into());
    }
    if n.read("/proc/sys/kernel/modules_disabled").as_deref() == Some("1") {
        return Some("module loading is disabled (kernel.modules_disabled=1)".into());
    }
    None
}

fn module_signatures(n: &Node) -> Check {
    const FIX: &str = "boot with module.sig_enforce=1 (or build with CONFIG_MODULE_SIG_FORCE=y)";
    if let Some(d) = no_modules_detail(n) {
        return check("module-signatures", Status::Pass, d, FIX);
    }
    let param = n.read("/sys/module/module/parameters/sig_enforce");
    if param.as_deref() == Some("Y") || n.cmdline_has("module.sig_enforce=1") {
        return check(
            "module-signatures",
            Status::Pass,
            "signatures enforced",
            FIX,
        );
    }
    check(
        "module-signatures",
        Status::Warn,
        "unsigned modules can be loaded",
        FIX,
    )
}

fn loadpin(n: &Node) -> Check {
    const FIX: &str = "boot with loadpin.enforce=1 and lsm=...,loadpin (CONFIG_SECURITY_LOADPIN)";
    if let Some(d) = no_modules_detail(n) {
        return check("loadpin", Status::Pass, d, FIX);
    }
    let enabled = n.read("/sys/kernel/security/loadpin/enabled").as_deref() == Some("1")
        || n.read("/sys/kernel/security/lsm")
            .is_some_and(|l| l.split(',').any(|m| m == "loadpin"));
    if enabled {
        check("loadpin", Status::Pass, "LoadPin is active", FIX)
    } else {
        check(
            "loadpin",
            Status::Warn,
            "LoadPin is not active: modules can come from any filesystem",
            FIX,
        )
    }
}

fn modules_disabled(n: &Node) -> Check {
    const FIX: &str = "sysctl -w kernel.modules_disabled=1 once the node's modules are loaded";
    if let Some(d) = no_modules_detail(n) {
        return check("modules-disabled", Status::Pass, d, FIX);
    }
    check(
        "modules-disabled",
        Status::Warn,
        "kernel.modules_disabled=0: modules can still be loaded",
        FIX,
    )
}

/// Modules `ROOT/etc/modprobe.d` stops: `install X /bin/false` (or `/bin/true`) and
/// `blacklist X`.
fn blacklisted(n: &Node) -> std::collections::BTreeSet<String> {
    let mut set = std::collections::BTreeSet::new();
    let Ok(rd) = std::fs::read_dir(n.path("/etc/modprobe.d")) else {
        return set;
    };
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().ends_with(".conf") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        for line in text.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.as_slice() {
                ["blacklist", m, ..] => {
                    set.insert(m.replace('_', "-"));
                }
                ["install", m, cmd, ..] if cmd.ends_with("/false") || cmd.ends_with("/true") => {
                    set.insert(m.replace('_', "-"));
                }
                _ => {}
            }
        }
    }
    set
}

fn module_blacklist(n: &Node) -> Check {
    const FIX: &str = "add `install MODULE /bin/false` lines for each missing module to \
                       /etc/modprobe.d/rvisor-blacklist.conf";
    if let Some(d) = no_modules_detail(n) {
        return check("module-blacklist", Status::Pass, d, FIX);
    }
    let have = blacklisted(n);
    let missing: Vec<&str> = RARE_MODULES
        .iter()
        .copied()
        .filter(|m| !have.contains(&m.replace('_', "-")))
        .collect();
    if missing.is_empty() {
        check(
            "module-blacklist",
            Status::Pass,
            format!(
                "all {} rarely used modules are blacklisted",
                RARE_MODULES.len()
            ),
            FIX,
        )
    } else {
        check(
            "module-blacklist",
            Status::Fail,
            format!("not blacklisted: {}", missing.join(" ")),
            FIX,
        )
    }
}

fn cgroup_v2(n: &Node) -> Check {
    const FIX: &str =
        "boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2 mounted at /sys/fs/cgroup)";
    match n.read("/sys/fs/cgroup/cgroup.controllers") {
        Some(c) => check(
            "cgroup-v2",
            Status::Pass,
            format!("cgroup v2, controllers: {c}"),
            FIX,
        ),
        None => check(
            "cgroup-v2",
            Status::Warn,
            "cgroup v1 (rvisor supports it; v2 gives pods better isolation)",
            FIX,
        ),
    }
}

fn smt(n: &Node, probes: &Probes) -> Check {
    const FIX: &str = "use a kernel with core scheduling (CONFIG_SCHED_CORE) or boot with nosmt";
    let control = n.read("/sys/devices/system/cpu/smt/control");
    let active = n.read("/sys/devices/system/cpu/smt/active");
    let smt_on = active.as_deref() == Some("1");
    let core = probes.core_sched.or_else(|| {
        n.read("/proc/self/sched")
            .map(|s| s.lines().any(|l| l.starts_with("core_cookie")))
    });
    let core_txt = match core {
        Some(true) => "core scheduling available",
        Some(false) => "no core scheduling",
        None => "core scheduling not known",
    };
    let state = control.unwrap_or_else(|| "unknown".into());
    if !smt_on {
        return check(
            "smt",
            Status::Pass,
            format!("SMT {state} (not active); {core_txt}"),
            FIX,
        );
    }
    match core {
        Some(true) => check(
            "smt",
            Status::Pass,
            format!("SMT active; {core_txt} (--core-scheduling=auto uses it)"),
            FIX,
        ),
        _ => check(
            "smt",
            Status::Fail,
            format!("SMT active and {core_txt}: a sandbox can share a core with other workloads"),
            FIX,
        ),
    }
}

fn seccomp(n: &Node) -> Check {
    const FIX: &str = "use a kernel with CONFIG_SECCOMP_FILTER (rvisor's confinement needs it)";
    let Some(acts) = n.read("/proc/sys/kernel/seccomp/actions_avail") else {
        return check(
            "seccomp",
            Status::Fail,
            "seccomp filters are not available",
            FIX,
        );
    };
    let have: Vec<&str> = acts.split_whitespace().collect();
    let missing: Vec<&str> = ["kill_process", "trap", "errno", "allow"]
        .into_iter()
        .filter(|a| !have.contains(a))
        .collect();
    if missing.is_empty() {
        check("seccomp", Status::Pass, format!("actions: {acts}"), FIX)
    } else {
        check(
            "seccomp",
            Status::Fail,
            format!("missing seccomp actions: {}", missing.join(" ")),
            FIX,
        )
    }
}

fn user_namespaces(n: &Node) -> Check {
    const FIX: &str = "sysctl -w user.max_user_namespaces=N (N > 0): every sandbox's sentry runs in a user namespace of its own";
    let max = n
        .read("/proc/sys/user/max_user_namespaces")
        .and_then(|s| s.parse::<u64>().ok());
    let unpriv = n.read("/proc/sys/kernel/unprivileged_userns_clone");
    match max {
        Some(m) if m > 0 && unpriv.as_deref() != Some("0") => check(
            "user-namespaces",
            Status::Pass,
            format!("available (max_user_namespaces={m})"),
            FIX,
        ),
        Some(m) if m > 0 => check(
            "user-namespaces",
            Status::Pass,
            format!(
                "available to root only (max_user_namespaces={m}, unprivileged_userns_clone=0)"
            ),
            FIX,
        ),
        _ => check(
            "user-namespaces",
            Status::Fail,
            "user namespaces are not available: sandboxes refuse to start (only --unsafe-weak-confinement runs them, in the host's)",
            FIX,
        ),
    }
}

/// Host id 65533 is the sentry's (in its own user namespace): a host user or group
/// with that id would share it with every sandbox's sentry.
fn sentry_host_id(n: &Node) -> Check {
    const FIX: &str = "give the user or group with id 65533 another id: rvisor's sentries run as host uid and gid 65533";
    let id = sentry::sys::isolation::SENTRY_HOST_ID.to_string();
    let mut taken = Vec::new();
    for file in ["/etc/passwd", "/etc/group"] {
        for line in n.read(file).unwrap_or_default().lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.get(2) == Some(&id.as_str()) {
                taken.push(format!("{} in {}", f[0], &file[1..]));
            }
        }
    }
    if taken.is_empty() {
        check(
            "sentry-host-id",
            Status::Pass,
            format!("no user or group has id {id}"),
            FIX,
        )
    } else {
        check(
            "sentry-host-id",
            Status::Warn,
            format!("id {id} (the sentry's) is taken: {}", taken.join(", ")),
            FIX,
        )
    }
}

fn kvm(n: &Node) -> Check {
    const FIX: &str =
        "load kvm_intel or kvm_amd (or enable nested virtualisation) for --platform=kvm";
    if n.exists("/dev/kvm") {
        check("kvm", Status::Pass, "/dev/kvm present", FIX)
    } else {
        check(
            "kvm",
            Status::Warn,
            "/dev/kvm absent (systrap and ptrace do not need it)",
            FIX,
        )
    }
}

fn metadata(probes: &Probes) -> Check {
    const FIX: &str =
        "block 169.254.169.254 and fd00:ec2::254 for pods (GKE metadata concealment, or a network policy)";
    match probes.metadata_reachable {
        None => check(
            "metadata",
            Status::Warn,
            "not checked (the probe connects only with --root /)",
            FIX,
        ),
        Some(true) => check(
            "metadata",
            Status::Warn,
            "the metadata server (169.254.169.254:80 or [fd00:ec2::254]:80) accepts \
             connections from the node's network; rvisor conceals it inside sandboxes \
             (unless --allow-metadata), other runtimes on the node do not",
            FIX,
        ),
        Some(false) => check(
            "metadata",
            Status::Pass,
            "169.254.169.254:80 and [fd00:ec2::254]:80 not reachable from the node's network",
            FIX,
        ),
    }
}

/// Runs every check against `root`.
pub fn checks(root: &Path, probes: &Probes) -> Vec<Check> {
    let n = Node {
        root: root.to_path_buf(),
    };
    vec![
        module_signatures(&n),
        loadpin(&n),
        modules_disabled(&n),
        module_blacklist(&n),
        cgroup_v2(&n),
        smt(&n, probes),
        seccomp(&n),
        user_namespaces(&n),
        sentry_host_id(&n),
        kvm(&n),
        metadata(probes),
    ]
}

/// `rvisor check-node`: prints each check (or a JSON list) and returns 1 if any
/// failed.
pub fn run(root: &Path, json: bool) -> Result<i32> {
    let list = checks(root, &Probes::for_root(root));
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for c in &list {
            let st = match c.status {
                Status::Pass => "pass",
                Status::Warn => "warn",
                Status::Fail => "fail",
            };
            if c.fix.is_empty() {
                println!("{st:4}  {:18} {}", c.name, c.detail);
            } else {
                println!("{st:4}  {:18} {}; fix: {}", c.name, c.detail, c.fix);
            }
        }
    }
    Ok(list.iter().any(|c| c.status == Status::Fail) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(PathBuf);
    impl Fake {
        fn new(name: &str) -> Fake {
            let d =
                std::env::temp_dir().join(format!("rvisor-check-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Fake(d)
        }
        fn put(&self, p: &str, text: &str) -> &Fake {
            let f = self.0.join(p.trim_start_matches('/'));
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, text).unwrap();
            self
        }
    }
    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn status(list: &[Check], name: &str) -> Status {
        list.iter().find(|c| c.name == name).unwrap().status
    }

    const NO_PROBES: Probes = Probes {
        core_sched: None,
        metadata_reachable: None,
    };

    #[test]
    fn a_hardened_node_passes() {
        let f = Fake::new("good");
        let mut bl = String::new();
        for m in RARE_MODULES {
            bl.push_str(&format!("install {m} /bin/false\n"));
        }
        f.put("/proc/modules", "")
            .put("/proc/sys/kernel/modules_disabled", "0\n")
            .put("/sys/module/module/parameters/sig_enforce", "Y\n")
            .put("/sys/kernel/security/loadpin/enabled", "1\n")
            .put("/etc/modprobe.d/rare.conf", &bl)
            .put("/sys/fs/cgroup/cgroup.controllers", "cpu memory pids\n")
            .put("/sys/devices/system/cpu/smt/control", "on\n")
            .put("/sys/devices/system/cpu/smt/active", "1\n")
            .put("/proc/self/sched", "x (1, #threads: 1)\ncore_cookie : 0\n")
            .put(
                "/proc/sys/kernel/seccomp/actions_avail",
                "kill_process kill_thread trap errno user_notif trace log allow\n",
            )
            .put("/proc/sys/user/max_user_namespaces", "1000\n")
            .put(
                "/etc/passwd",
                "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/x\n",
            )
            .put("/dev/kvm", "");
        let list = checks(&f.0, &NO_PROBES);
        for c in &list {
            if c.name != "modules-disabled" && c.name != "metadata" {
                assert_eq!(c.status, Status::Pass, "{c:?}");
            }
        }
        assert_eq!(status(&list, "modules-disabled"), Status::Warn);
        assert_eq!(status(&list, "metadata"), Status::Warn);
        let reachable = Probes {
            core_sched: Some(true),
            metadata_reachable: Some(false),
        };
        assert_eq!(status(&checks(&f.0, &reachable), "metadata"), Status::Pass);
        f.put("/proc/sys/kernel/modules_disabled", "1\n");
        assert_eq!(
            status(&checks(&f.0, &NO_PROBES), "modules-disabled"),
            Status::Pass
        );
    }

    #[test]
    fn a_bare_node_fails_where_it_matters() {
        let f = Fake::new("bad");
        f.put("/proc/modules", "")
            .put("/proc/sys/kernel/modules_disabled", "0\n")
            .put("/sys/module/module/parameters/sig_enforce", "N\n")
            .put(
                "/etc/modprobe.d/some.conf",
                "blacklist dccp\ninstall sctp /bin/true\n",
            )
            .put("/sys/devices/system/cpu/smt/control", "on\n")
            .put("/sys/devices/system/cpu/smt/active", "1\n")
            .put(
                "/proc/sys/kernel/seccomp/actions_avail",
                "kill_thread errno allow\n",
            )
            .put("/proc/sys/user/max_user_namespaces", "0\n")
            .put("/etc/group", "root:x:0:\nrvisor:x:65533:\n");
        let no_core = Probes {
            core_sched: Some(false),
            metadata_reachable: Some(true),
        };
        let list = checks(&f.0, &no_core);
        assert_eq!(status(&list, "module-signatures"), Status::Warn);
        assert_eq!(status(&list, "loadpin"), Status::Warn);
        assert_eq!(status(&list, "modules-disabled"), Status::Warn);
        assert_eq!(status(&list, "module-blacklist"), Status::Fail);
        let bl = list.iter().find(|c| c.name == "module-blacklist").unwrap();
        assert!(!bl.detail.contains("dccp") && !bl.detail.contains("sctp"));
        assert!(bl.detail.contains("tipc") && bl.detail.contains("udf"));
        assert_eq!(status(&list, "cgroup-v2"), Status::Warn);
        assert_eq!(status(&list, "smt"), Status::Fail);
        assert_eq!(status(&list, "seccomp"), Status::Fail);
        assert_eq!(status(&list, "user-namespaces"), Status::Fail);
        assert_eq!(status(&list, "kvm"), Status::Warn);
        assert_eq!(status(&list, "metadata"), Status::Warn);
        let id = list.iter().find(|c| c.name == "sentry-host-id").unwrap();
        assert_eq!(id.status, Status::Warn);
        assert!(id.detail.contains("rvisor in etc/group"), "{id:?}");
        for c in &list {
            assert_eq!(c.fix.is_empty(), c.status == Status::Pass, "{c:?}");
            assert!(!c.fix.contains('\n'));
        }
        // SMT off is fine without core scheduling; a missing seccomp file fails.
        f.put("/sys/devices/system/cpu/smt/active", "0\n");
        std::fs::remove_file(f.0.join("proc/sys/kernel/seccomp/actions_avail")).unwrap();
        let list = checks(&f.0, &no_core);
        assert_eq!(status(&list, "smt"), Status::Pass);
        assert_eq!(status(&list, "seccomp"), Status::Fail);
    }

    #[test]
    fn a_kernel_without_modules_needs_no_module_rules() {
        let f = Fake::new("nomod");
        f.put("/proc/cmdline", "quiet nomodule\n");
        let list = checks(&f.0, &NO_PROBES);
        for name in [
            "module-signatures",
            "loadpin",
            "modules-disabled",
            "module-blacklist",
        ] {
            assert_eq!(status(&list, name), Status::Pass, "{name}");
        }
    }
}
