//! The platform's rules for what a spec may ask of a sandbox, checked before anything
//! starts: no privileged containers (host devices, a device rule allowing every
//! device, a read-write /sys), no host paths outside the allowed roots, no host
//! namespaces, no bidirectional mount propagation, no sysctls the sandbox does not
//! implement. Each refusal is one line naming the spec field and the fix.
//!
//! Also what the spec asks that the sandbox honours in its own way: the emulated
//! device nodes, namespace paths (validated; a network one is recorded), and the
//! fields it accepts but cannot apply (AppArmor, SELinux), with one warning each.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::bundle::SpecError;

/// Host directories bind mounts may come from besides the bundle: the kubelet's
/// pod volumes and containerd's per-pod state (hosts, resolv.conf, shm, etc.).
pub const DEFAULT_MOUNT_ROOTS: [&str; 3] = [
    "/var/lib/kubelet/pods",
    "/var/lib/containerd",
    "/run/containerd",
];

/// Character devices the sentry emulates: (major, minor, name).
pub const EMULATED_DEVICES: [(i64, i64, &str); 7] = [
    (1, 3, "null"),
    (1, 5, "zero"),
    (1, 7, "full"),
    (1, 8, "random"),
    (1, 9, "urandom"),
    (5, 0, "tty"),
    (5, 2, "ptmx"),
];

/// The spec's `linux.devices` as the sentry makes them (call after [`check`],
/// which refuses every device it does not emulate): mode 0666 and owner 0:0 when
/// the spec gives none, as runc.
pub fn emulated_devices(spec: &Spec) -> Vec<sentry::config::DeviceConfig> {
    let Some(linux) = spec.linux() else {
        return Vec::new();
    };
    linux
        .devices()
        .iter()
        .flatten()
        .map(|d| sentry::config::DeviceConfig {
            path: d.path().to_string_lossy().into_owned(),
            major: u32::try_from(d.major()).unwrap_or(u32::MAX),
            minor: u32::try_from(d.minor()).unwrap_or(u32::MAX),
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        })
        .collect()
}

/// What the checks found that the sandbox uses.
#[derive(Debug, Default)]
pub struct Applied {
    /// `linux.namespaces` network path, for the sandbox's network to attach to.
    pub netns_path: Option<PathBuf>,
}

fn err(field: impl Into<String>, msg: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        msg: msg.into(),
    }
}

/// Checks `spec` (bundle at `bundle_dir`, its binds already resolved to canonical
/// host paths in `binds`) against the rules. `extra_roots` are the
/// `--allow-mount-source` directories; `host_network` is `--network=host`; `joins`
/// says the container joins an existing pod sandbox (its namespace paths are the
/// pod's, which the sentry provides).
pub fn check(
    spec: &Spec,
    binds: &[(usize, PathBuf)],
    bundle_dir: &Path,
    extra_roots: &[PathBuf],
    host_network: bool,
    joins: bool,
) -> Result<Applied, SpecError> {
    let mut applied = Applied::default();
    if let Some(p) = spec.process() {
        if p.apparmor_profile()
            .as_deref()
            .is_some_and(|s| !s.is_empty())
        {
            tracing::warn!(
                "config.json: process.apparmorProfile is accepted but not applied: the sandbox's own kernel confines the container"
            );
        }
        if p.selinux_label().as_deref().is_some_and(|s| !s.is_empty()) {
            tracing::warn!(
                "config.json: process.selinuxLabel is accepted but not applied: the sandbox's own kernel confines the container"
            );
        }
    }
    // The host's namespaces and devices first: hostNetwork also brings host files
    // (/etc/hosts), and the namespace is the better message.
    check_linux(spec, joins, host_network, &mut applied)?;
    check_mounts(spec)?;
    check_binds(binds, bundle_dir, extra_roots)?;
    Ok(applied)
}

fn check_linux(
    spec: &Spec,
    joins: bool,
    host_network: bool,
    applied: &mut Applied,
) -> Result<(), SpecError> {
    let Some(linux) = spec.linux() else {
        if joins {
            return Ok(());
        }
        return Err(err(
            "linux.namespaces",
            "missing: the container would share the host's pid, IPC and network namespaces (hostPID, hostIPC, hostNetwork); add {\"type\":\"pid\"}, {\"type\":\"ipc\"} and {\"type\":\"network\"}",
        ));
    };
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        let (major, minor) = (d.major(), d.minor());
        let typ = serde_json::to_value(d.typ())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let emulated = matches!(typ.as_str(), "c" | "u")
            && EMULATED_DEVICES
                .iter()
                .any(|(ma, mi, _)| *ma == major && *mi == minor);
        if !emulated {
            return Err(err(
                format!("linux.devices[{i}]"),
                format!(
                    "{} ({typ} {major}:{minor}) is a host device, which a sandbox does not pass through (privileged); remove it (emulated: null, zero, full, random, urandom, tty, ptmx)",
                    d.path().display()
                ),
            ));
        }
        // The sentry makes the node in the container's devfs, at any name there.
        let path = d.path().to_string_lossy();
        let plain = path.strip_prefix("/dev/").is_some_and(|rest| {
            rest.split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..")
        });
        // devfs's own links and directories (pts, shm are mount points too) stay.
        let first = path.trim_start_matches("/dev/").split('/').next();
        if plain
            && matches!(
                first,
                Some("fd" | "stdin" | "stdout" | "stderr" | "shm" | "pts")
            )
        {
            return Err(err(
                format!("linux.devices[{i}].path"),
                format!(
                    "{path}: /dev/{} is the sandbox's own; use another name",
                    first.unwrap_or_default()
                ),
            ));
        }
        if !plain {
            return Err(err(
                format!("linux.devices[{i}].path"),
                format!(
                    "{path}: the sandbox makes device nodes only in its own /dev; use a path under /dev"
                ),
            ));
        }
    }
    if let Some(rules) = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().as_ref())
    {
        for (i, r) in rules.iter().enumerate() {
            let typ = r
                .typ()
                .and_then(|t| serde_json::to_value(t).ok())
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "a".to_string());
            let wild = |n: Option<i64>| n.is_none_or(|n| n < 0);
            if r.allow() && typ == "a" && wild(r.major()) && wild(r.minor()) {
                return Err(err(
                    format!("linux.resources.devices[{i}]"),
                    "allows every device (a privileged container); remove the rule",
                ));
            }
        }
    }
    if let Some(sysctl) = linux.sysctl() {
        if let Some(key) = sysctl.keys().min() {
            return Err(err(
                format!("linux.sysctl.{key}"),
                "not implemented by the sandbox (its kernel has no settable sysctls); remove it",
            ));
        }
    }
    if let Some(prop) = linux.rootfs_propagation() {
        if prop.contains("shared") {
            return Err(err(
                "linux.rootfsPropagation",
                format!("{prop:?}: bidirectional propagation to the host is not supported; use \"rprivate\" or \"rslave\""),
            ));
        }
    }
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    let has = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t);
    if !joins {
        if !has(LinuxNamespaceType::Pid) {
            return Err(err(
                "linux.namespaces",
                "no pid namespace: the container would share the host's (hostPID), which a sandbox cannot; add {\"type\":\"pid\"}",
            ));
        }
        if !has(LinuxNamespaceType::Ipc) {
            return Err(err(
                "linux.namespaces",
                "no ipc namespace: the container would share the host's (hostIPC), which a sandbox cannot; add {\"type\":\"ipc\"}",
            ));
        }
        if !has(LinuxNamespaceType::Network) && !host_network {
            return Err(err(
                "linux.namespaces",
                "no network namespace: the container would use the host's network (hostNetwork), which needs --network=host; add {\"type\":\"network\"}",
            ));
        }
    }
    for (i, ns) in namespaces.iter().enumerate() {
        let Some(path) = ns.path() else { continue };
        let field = format!("linux.namespaces[{i}].path");
        let want = ns_name(ns.typ());
        let got = ns_type_of(path).map_err(|m| err(&field, m))?;
        if got != want {
            return Err(err(
                &field,
                format!(
                    "{} is a {got} namespace, not {want}: invalid argument",
                    path.display()
                ),
            ));
        }
        if ns.typ() == LinuxNamespaceType::Network {
            applied.netns_path = Some(path.clone());
        } else if !joins {
            return Err(err(
                &field,
                format!(
                    "joining the host's {want} namespace {} is not supported (the sandbox has its own); remove the path",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// The name Linux gives a namespace type in `/proc/PID/ns`.
fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// `NS_GET_NSTYPE` (`_IO(0xb7, 0x3)`, Linux 4.11): the `CLONE_NEW*` flag of the
/// namespace a descriptor refers to.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// The type of the namespace file at `path`, asked of the kernel for an open
/// descriptor (`NS_GET_NSTYPE`), which answers for any nsfs file: a /proc/PID/ns
/// link or a bind mount of one (`ip netns`, CNI's `/var/run/netns/cni-...`, whose
/// descriptor's /proc/self/fd link names the mount point, not `net:[...]`).
fn ns_type_of(path: &Path) -> Result<String, String> {
    let f = std::fs::File::open(path)
        .map_err(|e| format!("{}: {}", path.display(), crate::bundle::io_msg(&e)))?;
    // SAFETY: NS_GET_NSTYPE takes no argument; f is an open descriptor.
    let flag = unsafe { libc::ioctl(f.as_raw_fd(), NS_GET_NSTYPE) };
    let name = match flag {
        libc::CLONE_NEWNS => "mnt",
        libc::CLONE_NEWCGROUP => "cgroup",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWNET => "net",
        // CLONE_NEWTIME, not in every libc's list.
        0x80 => "time",
        _ => {
            return Err(format!(
                "{} is not a namespace file: invalid argument",
                path.display()
            ))
        }
    };
    Ok(name.to_string())
}

fn check_binds(
    binds: &[(usize, PathBuf)],
    bundle_dir: &Path,
    extra_roots: &[PathBuf],
) -> Result<(), SpecError> {
    let mut roots: Vec<PathBuf> = vec![bundle_dir.to_path_buf()];
    for r in DEFAULT_MOUNT_ROOTS
        .iter()
        .map(PathBuf::from)
        .chain(extra_roots.iter().cloned())
    {
        // Compared canonically, as the sources are.
        roots.push(std::fs::canonicalize(&r).unwrap_or(r));
    }
    for (i, src) in binds {
        if !roots.iter().any(|r| src.starts_with(r)) {
            return Err(err(
                format!("mounts[{i}].source"),
                format!(
                    "{} is a host path outside the allowed roots (the bundle, {}); allow it with --allow-mount-source DIR (shim option allowed-mount-sources)",
                    src.display(),
                    DEFAULT_MOUNT_ROOTS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn check_mounts(spec: &Spec) -> Result<(), SpecError> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let opts = m.options().clone().unwrap_or_default();
        let dest = m.destination();
        let typ = m.typ().clone().unwrap_or_default();
        let ro = opts
            .iter()
            .rev()
            .find(|o| *o == "ro" || *o == "rw")
            .is_some_and(|o| o == "ro");
        let is_bind = typ == "bind" || opts.iter().any(|o| o == "bind" || o == "rbind");
        let sys = dest == Path::new("/sys") || dest.starts_with("/sys/") && is_bind;
        if (typ == "sysfs" || (sys && is_bind)) && !ro {
            return Err(err(
                format!("mounts[{i}]"),
                format!(
                    "{} mounted read-write (a privileged container); add \"ro\" to its options",
                    dest.display()
                ),
            ));
        }
        if let Some(o) = opts.iter().find(|o| *o == "shared" || *o == "rshared") {
            return Err(err(
                format!("mounts[{i}].options"),
                format!("{o:?}: bidirectional mount propagation to the host is not supported; use \"rprivate\" or \"rslave\""),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_files_are_typed_by_the_kernel() {
        for t in ["net", "uts", "ipc", "pid", "mnt"] {
            assert_eq!(
                ns_type_of(Path::new(&format!("/proc/self/ns/{t}"))).as_deref(),
                Ok(t)
            );
        }
        let e = ns_type_of(Path::new("/proc/self/status")).unwrap_err();
        assert!(e.contains("is not a namespace file"), "{e}");
        // A bind mount of a namespace (what `ip netns` and CNI make) is opened
        // through the mount point: tests/tests/cri.rs runs a pod on one.
    }

    fn spec(v: serde_json::Value) -> Spec {
        let mut doc = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "root": {"path": "/"},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "network"}]},
        });
        for (k, val) in v.as_object().unwrap() {
            doc[k] = val.clone();
        }
        serde_json::from_value(doc).unwrap()
    }

    fn refusal(s: &Spec) -> String {
        check(s, &[], Path::new("/b"), &[], false, false)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn plain_spec_passes() {
        assert!(check(
            &spec(serde_json::json!({})),
            &[],
            Path::new("/b"),
            &[],
            false,
            false
        )
        .is_ok());
    }

    #[test]
    fn refusals_name_the_field() {
        let ns = |list: serde_json::Value| spec(serde_json::json!({"linux": {"namespaces": list}}));
        assert!(refusal(&ns(
            serde_json::json!([{"type": "ipc"}, {"type": "network"}])
        ))
        .contains("linux.namespaces: no pid namespace"));
        assert!(refusal(&ns(
            serde_json::json!([{"type": "pid"}, {"type": "network"}])
        ))
        .contains("hostIPC"));
        assert!(
            refusal(&ns(serde_json::json!([{"type": "pid"}, {"type": "ipc"}])))
                .contains("--network=host")
        );
        let e = refusal(&ns(serde_json::json!([{"type": "pid"}, {"type": "ipc"},
            {"type": "network", "path": "/proc/self/ns/ipc"}])));
        assert!(
            e.contains("linux.namespaces[2].path: /proc/self/ns/ipc is a ipc namespace, not net"),
            "{e}"
        );
        let e = refusal(&ns(
            serde_json::json!([{"type": "pid", "path": "/proc/self/ns/pid"},
            {"type": "ipc"}, {"type": "network"}]),
        ));
        assert!(
            e.contains("linux.namespaces[0].path: joining the host's pid"),
            "{e}"
        );
        let s = spec(
            serde_json::json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"},
            {"type": "network", "path": "/proc/self/ns/net"}]}}),
        );
        let a = check(&s, &[], Path::new("/b"), &[], false, false).unwrap();
        assert_eq!(a.netns_path, Some(PathBuf::from("/proc/self/ns/net")));

        let dev = spec(
            serde_json::json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"},
            {"type": "network"}], "devices": [{"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}]}}),
        );
        assert!(refusal(&dev).contains("linux.devices[0]: /dev/sda (b 8:0) is a host device"));
        let null = |path: &str| {
            spec(serde_json::json!({"linux": {"namespaces": [{"type": "pid"},
            {"type": "ipc"}, {"type": "network"}], "devices": [{"path": path, "type": "c",
            "major": 1, "minor": 3}]}}))
        };
        assert!(check(&null("/dev/null"), &[], Path::new("/b"), &[], false, false).is_ok());
        assert!(check(&null("/dev/xnull"), &[], Path::new("/b"), &[], false, false).is_ok());
        assert!(check(&null("/dev/a/b"), &[], Path::new("/b"), &[], false, false).is_ok());
        assert!(refusal(&null("/xnull")).contains("only in its own /dev"));
        assert!(refusal(&null("/dev/../etc/x")).contains("only in its own /dev"));
        assert!(refusal(&null("/dev/pts/x")).contains("/dev/pts is the sandbox's own"));
        let all = spec(
            serde_json::json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"},
            {"type": "network"}], "resources": {"devices": [{"allow": false, "access": "rwm"},
            {"allow": true, "access": "rwm"}]}}}),
        );
        assert!(refusal(&all).contains("linux.resources.devices[1]: allows every device"));
        let sys = spec(
            serde_json::json!({"mounts": [{"destination": "/sys", "type": "sysfs",
            "source": "sysfs", "options": ["nosuid"]}]}),
        );
        assert!(refusal(&sys).contains("mounts[0]: /sys mounted read-write"));
        let shared = spec(
            serde_json::json!({"mounts": [{"destination": "/x", "type": "tmpfs",
            "source": "tmpfs", "options": ["rshared"]}]}),
        );
        assert!(refusal(&shared).contains("mounts[0].options: \"rshared\""));
        let sysctl = spec(
            serde_json::json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"},
            {"type": "network"}], "sysctl": {"net.ipv4.ip_forward": "1"}}}),
        );
        assert!(refusal(&sysctl).contains("linux.sysctl.net.ipv4.ip_forward"));
        let e = check(
            &spec(serde_json::json!({})),
            &[(3, PathBuf::from("/etc"))],
            Path::new("/b"),
            &[],
            false,
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("mounts[3].source: /etc is a host path outside"),
            "{e}"
        );
        assert!(check(
            &spec(serde_json::json!({})),
            &[(3, PathBuf::from("/etc/x"))],
            Path::new("/b"),
            &[PathBuf::from("/etc")],
            false,
            false
        )
        .is_ok());
    }
}
