//! What the CLI hands the sentry at boot: one JSON document read from an inherited fd.
//! The CLI has already validated everything the user wrote; the sentry still checks
//! what it relies on and fails with a message naming the field.

use serde::{Deserialize, Serialize};

/// An rlimit as the OCI spec states it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rlimit {
    /// `RLIMIT_*` number (see `getrlimit(2)`).
    pub resource: u32,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// A process's capability sets (`process.capabilities`), as bit masks by
/// capability number.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CapConfig {
    /// Bounding set.
    pub bounding: u64,
    /// Effective set.
    pub effective: u64,
    /// Inheritable set.
    pub inheritable: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Ambient set.
    pub ambient: u64,
}

/// The container's first process.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessConfig {
    /// argv; `args[0]` is looked up on `PATH` inside the rootfs when it has no slash.
    pub args: Vec<String>,
    /// `K=V` strings.
    pub env: Vec<String>,
    /// Absolute working directory inside the container.
    pub cwd: String,
    /// Real, effective and saved uid.
    pub uid: u32,
    /// Real, effective and saved gid.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// Resource limits to set before the first instruction.
    pub rlimits: Vec<Rlimit>,
    /// The capability sets the process starts with, before its exec transforms
    /// them. `None`: Linux's defaults for a plain exec (a full bounding set; uid 0
    /// gets every capability).
    #[serde(default)]
    pub capabilities: Option<CapConfig>,
    /// `process.noNewPrivileges`.
    #[serde(default)]
    pub no_new_privs: bool,
    /// `process.oomScoreAdj` (shown in /proc/PID/oom_score_adj).
    #[serde(default)]
    pub oom_score_adj: i32,
    /// The container's `linux.seccomp`, installed before the first instruction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<SeccompConfig>,
}

/// An OCI `linux.seccomp` object, with the spec's own field names (compiled by
/// `kernel::seccomp_spec`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SeccompConfig {
    /// `SCMP_ACT_*` for calls no rule matches.
    pub default_action: String,
    /// The errno of a default `SCMP_ACT_ERRNO`/`SCMP_ACT_TRACE` (EPERM if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// `SCMP_ARCH_*` names.
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    /// `SECCOMP_FILTER_FLAG_*` names.
    #[serde(default)]
    pub flags: Option<Vec<String>>,
    /// A user-notification listener (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    /// The rules.
    #[serde(default)]
    pub syscalls: Option<Vec<SeccompRule>>,
}

/// One OCI seccomp rule.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SeccompRule {
    /// System call names.
    pub names: Vec<String>,
    /// `SCMP_ACT_*`.
    pub action: String,
    /// The errno of `SCMP_ACT_ERRNO`/`SCMP_ACT_TRACE` (EPERM if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Argument conditions, all of which must hold.
    #[serde(default)]
    pub args: Option<Vec<SeccompArg>>,
}

/// One argument condition of a rule.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SeccompArg {
    /// Argument index, 0 to 5.
    pub index: u32,
    /// The value compared with.
    pub value: u64,
    /// The second value (`SCMP_CMP_MASKED_EQ`: the argument masked by `value`
    /// must equal it).
    #[serde(default)]
    pub value_two: u64,
    /// `SCMP_CMP_NE`, `_LT`, `_LE`, `_EQ`, `_GE`, `_GT` or `_MASKED_EQ`.
    pub op: String,
}

/// Everything `rvisor boot` needs to run a sandbox.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BootConfig {
    /// The container id (for logs).
    pub id: String,
    /// Platform name: `ptrace` (and later `systrap`, `kvm`).
    pub platform: String,
    /// Print every syscall (`--strace`).
    pub strace: bool,
    /// The container's hostname.
    pub hostname: String,
    /// The first process.
    pub process: ProcessConfig,
    /// `--overlay`: `self`, `memory` or `none`.
    pub overlay: String,
    /// `--overlay=MODE,size=N`: the most the in-memory upper layer holds, in bytes
    /// (`None`: the memory limit, else half the machine's memory).
    #[serde(default)]
    pub overlay_size: Option<u64>,
    /// `--network`: `none`, `sandbox` or `host`.
    pub network: String,
    /// The rootfs is served read-only.
    pub readonly_rootfs: bool,
    /// Filesystems mounted over the root, in order. Empty: the defaults a container
    /// expects (see `vfs::mount::default_mounts`).
    #[serde(default)]
    pub mounts: Vec<MountConfig>,
    /// `--unsafe-weak-confinement`: a confinement step the host does not allow
    /// (namespaces, the empty root, dropping capabilities, the stubs' identity) is
    /// skipped with a warning instead of stopping the sandbox.
    #[serde(default)]
    pub weak_confinement: bool,
    /// `--syscall-patching`: trapped system call sites may be patched into jumps
    /// to the platform's trampoline (see `kernel::patch`).
    #[serde(default = "patching_default")]
    pub syscall_patching: bool,
    /// `--net-raw`: CAP_NET_RAW stays in the sets a process's config gives. Without
    /// it the capability is taken from every set of every process the sandbox starts.
    #[serde(default)]
    pub net_raw: bool,
    /// `linux.maskedPaths`: an empty read-only directory or file over each.
    #[serde(default)]
    pub masked_paths: Vec<String>,
    /// `linux.readonlyPaths`: each becomes a read-only bind of itself.
    #[serde(default)]
    pub readonly_paths: Vec<String>,
    /// The network namespace `linux.namespaces` names by path (how CRI hands a
    /// container its pod's network), validated by the runtime; for the sandbox's
    /// network to attach to. `None`: the sandbox's own.
    #[serde(default)]
    pub netns_path: Option<String>,
    /// The container's resource limits, which the sandbox shows its programs
    /// (`/proc/meminfo`, the CPU count, its cgroup filesystem).
    #[serde(default)]
    pub resources: ResourceConfig,
    /// `--network=sandbox`: the interface the runtime opened a packet socket on
    /// (handed over as `boot --net-fd`). `None`: loopback only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netdev: Option<NetDevConfig>,
    /// `--allow-metadata` or the pod annotation `dev.rvisor.metadata=allow`: the cloud
    /// metadata server (169.254.169.254, fd00:ec2::254) stays reachable.
    #[serde(default)]
    pub allow_metadata: bool,
    /// `linux.devices` the sentry emulates, each a node in the container's devfs.
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
}

/// The container's limits (`linux.resources`, or `rvisor do --memory/--cpus`) and
/// where the host keeps the sandbox's usage. `None`: no limit.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResourceConfig {
    /// `memory.limit` in bytes.
    #[serde(default)]
    pub memory_limit: Option<u64>,
    /// `memory.swap`: memory plus swap, in bytes.
    #[serde(default)]
    pub memory_swap: Option<u64>,
    /// `memory.reservation` (cgroup v2 `memory.low`), in bytes.
    #[serde(default)]
    pub memory_reservation: Option<u64>,
    /// `cpu.quota` in microseconds per `cpu_period`.
    #[serde(default)]
    pub cpu_quota: Option<u64>,
    /// `cpu.period` in microseconds (100000 when absent).
    #[serde(default)]
    pub cpu_period: Option<u64>,
    /// `cpu.shares` (cgroup v1 weight, 2-262144).
    #[serde(default)]
    pub cpu_shares: Option<u64>,
    /// `cpu.cpus`: a cpuset list such as `0-2,5`.
    #[serde(default)]
    pub cpus: Option<String>,
    /// `pids.limit`.
    #[serde(default)]
    pub pids_limit: Option<u64>,
    /// The sandbox's host cgroup, where the host counts its memory and CPU use.
    #[serde(default)]
    pub host_cgroup: Option<HostCgroup>,
}

/// The directories of the sandbox's host cgroup that hold its usage figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostCgroup {
    /// 1 or 2.
    pub version: u8,
    /// The memory controller's directory (v2: the cgroup's one directory).
    pub memory: Option<String>,
    /// The cpu controller's directory (v2: the cgroup's one directory).
    pub cpu: Option<String>,
    /// v1 only: the cpuacct controller's directory.
    #[serde(default)]
    pub cpuacct: Option<String>,
}

/// The network interface of the container's namespace as the runtime found it
/// before taking its addresses over.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetDevConfig {
    /// Interface name (`eth0`).
    pub name: String,
    /// Its MAC address.
    pub mac: [u8; 6],
    /// Its MTU.
    pub mtu: u32,
    /// Its addresses as `ip/prefix`.
    pub addrs: Vec<String>,
    /// The IPv4 default gateway, if any.
    #[serde(default)]
    pub gateway4: Option<String>,
    /// The IPv6 default gateway, if any.
    #[serde(default)]
    pub gateway6: Option<String>,
    /// The packet socket has `PACKET_VNET_HDR` set: each frame carries a
    /// `virtio_net_hdr` (the sentry sends TCP bursts as GSO frames, `net/gso.rs`).
    #[serde(default)]
    pub vnet_hdr: bool,
}

/// One `linux.devices` entry, already checked by the runtime to be a device the
/// sentry emulates (null, zero, full, random, urandom, tty, ptmx).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Absolute path in the container, under `/dev`.
    pub path: String,
    /// Major device number.
    pub major: u32,
    /// Minor device number.
    pub minor: u32,
    /// Permission bits (`fileMode`; 0666 when the spec gives none, as runc).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// One filesystem to mount in the container (an OCI `mounts` entry).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountConfig {
    /// Absolute path inside the container.
    pub destination: String,
    /// Filesystem kind: `tmpfs`, `proc`, `sysfs`, `devtmpfs`, `devpts`, `mqueue`,
    /// `bind`, ...
    pub kind: String,
    /// What to mount (a host path for `bind`; informational otherwise).
    #[serde(default)]
    pub source: String,
    /// Mount options: `ro`, `nosuid`, `nodev`, `noexec`, and filesystem options such
    /// as `mode=1777` or `size=64m`.
    #[serde(default)]
    pub options: Vec<String>,
}

/// A config without the field (an older runtime's) patches, as the flag's default.
fn patching_default() -> bool {
    true
}
