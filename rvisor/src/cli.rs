//! Command-line shape, in runsc's style: global flags before the subcommand.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// rvisor: an application kernel for containers (an OCI runtime like runsc).
#[derive(Debug, Parser)]
#[command(name = "rvisor", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags that apply to every subcommand and are forwarded to `boot` and `gofer`.
#[derive(Clone, Debug, Args)]
pub struct GlobalOpts {
    /// How application code runs and traps into the sentry. `auto` (the default) is
    /// systrap wherever the kernel allows it, else ptrace.
    #[arg(long, value_enum, default_value_t = Platform::Auto)]
    pub platform: Platform,

    /// Log every system call the application makes.
    #[arg(long)]
    pub strace: bool,

    /// Write the logs of each process to DIR/<id>.<boot|gofer|cli>.log (DIR is created).
    #[arg(long, value_name = "DIR")]
    pub debug_log: Option<PathBuf>,

    /// State directory of containers (one subdirectory per id).
    #[arg(long, value_name = "DIR", default_value = "/var/run/rvisor")]
    pub root: PathBuf,

    /// Where writes to the root filesystem go: `self` (the default, as gVisor's
    /// `root:self`) keeps the changes in the sandbox with the file data in unnamed
    /// files on the rootfs's own filesystem, `memory` keeps all of it in the
    /// sandbox's memory, `none` sends writes through the gofer to the host directory.
    /// `MODE,size=N` (`64m`, `1g`, bytes) bounds what the upper layer keeps in memory
    /// (all of it with `memory`; new files once `self` falls back to memory), as a
    /// tmpfs's `size=`; without it the bound is the container's memory limit, else
    /// half the machine's memory.
    #[arg(long, value_name = "MODE[,size=N]", default_value = "self", value_parser = parse_overlay)]
    pub overlay: OverlayOpt,

    /// Network stack: `sandbox` attaches the sentry's own TCP/IP stack to the
    /// container's network namespace interface (the default of `run` and `create`);
    /// `none` is loopback only (the default of `do`, which then needs no set-up);
    /// `host` makes the program's TCP and UDP sockets host sockets in the sentry's
    /// network namespace (weaker isolation: for trusted workloads and benchmarks).
    #[arg(long, value_enum)]
    pub network: Option<Network>,

    /// Let the sandbox reach the cloud metadata server (169.254.169.254,
    /// fd00:ec2::254), concealed otherwise (also allowed by the pod annotation
    /// dev.rvisor.metadata=allow).
    #[arg(long)]
    pub allow_metadata: bool,

    /// Append this command's own log to FILE (in --log-format).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// Format of --log and --debug-log files.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log at debug level.
    #[arg(long)]
    pub debug: bool,

    /// Read linux.cgroupsPath as systemd's slice:prefix:name (mapped to the cgroupfs
    /// path systemd would give the scope; no systemd unit is made).
    #[arg(long)]
    pub systemd_cgroup: bool,

    /// UNSAFE: run even where the host refuses a sandbox confinement step (own
    /// namespaces, the empty root, dropping capabilities, the stubs' unprivileged
    /// identity); each step skipped is logged as a warning. For running nested in a
    /// container without those privileges; the sandbox is weaker than without it.
    #[arg(long)]
    pub unsafe_weak_confinement: bool,

    /// Let processes keep CAP_NET_RAW when their spec gives it (raw and packet
    /// sockets). Without it CAP_NET_RAW is removed from every capability set of
    /// every process, whatever the spec asks (as runsc).
    #[arg(long)]
    pub net_raw: bool,

    /// Host directory bind mounts may come from (repeatable), besides the bundle,
    /// /var/lib/kubelet/pods, /var/lib/containerd and /run/containerd.
    #[arg(long, value_name = "DIR")]
    pub allow_mount_source: Vec<PathBuf>,
    /// Give every host thread of a sandbox (sentry, gofer, stubs) one core-scheduling
    /// cookie, so no other workload runs on their SMT siblings: `auto` uses it where
    /// the kernel has it (saying once when it does not), `required` refuses to start
    /// without it, `off` does not use it.
    #[arg(long, value_enum, default_value_t = CoreScheduling::Auto)]
    pub core_scheduling: CoreScheduling,
    /// systrap: rewrite hot `mov; syscall` sites of a program into a jump to the
    /// stub's trampoline, which enters the sentry without a signal (`on`), or let
    /// every system call trap (`off`).
    #[arg(long, value_enum, default_value_t = Switch::On)]
    pub syscall_patching: Switch,
}

/// An on/off flag value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// `--core-scheduling`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CoreScheduling {
    Auto,
    Required,
    Off,
}

impl GlobalOpts {
    /// The flags `boot` and `gofer` need to log and behave like their parent.
    pub fn forwarded(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![
            format!("--platform={}", self.platform.name()).into(),
            format!("--overlay={}", self.overlay.spelling()).into(),
            format!("--log-format={}", self.log_format.name()).into(),
            format!("--core-scheduling={}", value_name(&self.core_scheduling)).into(),
            format!("--syscall-patching={}", value_name(&self.syscall_patching)).into(),
        ];
        if let Some(n) = self.network {
            v.push(format!("--network={}", n.name()).into());
        }
        if self.strace {
            v.push("--strace".into());
        }
        if self.debug {
            v.push("--debug".into());
        }
        if self.unsafe_weak_confinement {
            v.push("--unsafe-weak-confinement".into());
        }
        if self.net_raw {
            v.push("--net-raw".into());
        }
        if self.allow_metadata {
            v.push("--allow-metadata".into());
        }
        for d in &self.allow_mount_source {
            let mut a = OsString::from("--allow-mount-source=");
            a.push(d.as_os_str());
            v.push(a);
        }
        if let Some(d) = &self.debug_log {
            let mut a = OsString::from("--debug-log=");
            a.push(d.as_os_str());
            v.push(a);
        }
        v
    }

    /// The platform a new sandbox's sentry uses, refusing the ones not built yet.
    pub fn sandbox_platform(&self) -> anyhow::Result<String> {
        match self.platform {
            Platform::Kvm => anyhow::bail!(
                "--platform=kvm: not built yet; use --platform=systrap (the default) or ptrace"
            ),
            p => Ok(p.name()),
        }
    }

    /// Checks a bundle's spec against the platform's rules (`policy`).
    pub fn check_policy(
        &self,
        b: &crate::bundle::Bundle,
        bundle_dir: &std::path::Path,
        joins: bool,
    ) -> Result<crate::policy::Applied, crate::bundle::SpecError> {
        crate::policy::check(
            &b.spec,
            &b.bind_sources,
            bundle_dir,
            &self.allow_mount_source,
            self.network == Some(Network::Host),
            joins,
        )
    }

    /// The network mode a new sandbox uses (`default` without the flag).
    pub fn sandbox_network(&self, default: Network) -> anyhow::Result<Network> {
        let n = self.network.unwrap_or(default);
        if n == Network::Host {
            tracing::warn!(
                "--network=host: the program's TCP and UDP sockets are host sockets (weaker isolation, see docs/networking.md)"
            );
        }
        Ok(n)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Platform {
    Auto,
    Ptrace,
    Systrap,
    Kvm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Overlay {
    Memory,
    /// The upper layer's file data on the rootfs's own disk (gVisor's `root:self`).
    #[value(name = "self")]
    SelfFile,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Network {
    None,
    Sandbox,
    Host,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The spelling clap uses for a value, so forwarded flags parse back identically.
fn value_name<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

impl Platform {
    pub fn name(self) -> String {
        value_name(&self)
    }
}
impl Overlay {
    pub fn name(self) -> String {
        value_name(&self)
    }
}

/// `--overlay=MODE[,size=N]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverlayOpt {
    pub mode: Overlay,
    /// `size=`, in bytes.
    pub size: Option<u64>,
}

impl OverlayOpt {
    /// The mode's name (`self`, `memory`, `none`).
    pub fn name(self) -> String {
        self.mode.name()
    }

    /// The flag's value, as [`parse_overlay`] reads it back.
    pub fn spelling(self) -> String {
        match self.size {
            Some(n) => format!("{},size={n}", self.name()),
            None => self.name(),
        }
    }
}

/// Parses `MODE[,size=N]` (N in bytes, or with a k/m/g/t suffix).
pub fn parse_overlay(v: &str) -> Result<OverlayOpt, String> {
    let mut parts = v.split(',');
    let mode = parts.next().unwrap_or_default();
    let mode = Overlay::from_str(mode, false)
        .map_err(|_| format!("{mode:?}: the mode is self, memory or none"))?;
    let mut size = None;
    for o in parts {
        let Some(n) = o.strip_prefix("size=") else {
            return Err(format!("{o:?}: the only option is size=N"));
        };
        if mode == Overlay::None {
            return Err("none has no upper layer to bound".into());
        }
        let bad = || format!("size={n}: not a size like 64m, 1g or 1048576");
        let (num, shift) = match n.as_bytes().last() {
            Some(b'k' | b'K') => (&n[..n.len() - 1], 10),
            Some(b'm' | b'M') => (&n[..n.len() - 1], 20),
            Some(b'g' | b'G') => (&n[..n.len() - 1], 30),
            Some(b't' | b'T') => (&n[..n.len() - 1], 40),
            _ => (n, 0),
        };
        let bytes = num
            .parse::<u64>()
            .ok()
            .and_then(|x| x.checked_mul(1 << shift))
            .filter(|&b| b > 0)
            .ok_or_else(bad)?;
        size = Some(bytes);
    }
    Ok(OverlayOpt { mode, size })
}
impl Network {
    pub fn name(self) -> String {
        value_name(&self)
    }
}
impl LogFormat {
    pub fn name(self) -> String {
        value_name(&self)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a new sandbox, with this terminal's stdio.
    Do(DoArgs),
    /// Write a default OCI config.json into a bundle directory.
    Spec(SpecArgs),
    /// Create and run a container from an OCI bundle, in the foreground.
    Run(RunArgs),
    /// Create a container: the sandbox runs, its first process held until `start`.
    Create(CreateArgs),
    /// Start a created container's first process.
    Start(IdArg),
    /// Print a container's OCI state as JSON.
    State(IdArg),
    /// Send a signal to a container (default SIGTERM).
    Kill(KillArgs),
    /// Remove a container's state (stopped or created; --force kills a running one).
    Delete(DeleteArgs),
    /// List the containers under --root.
    List(ListArgs),
    /// List a container's processes.
    Ps(PsArgs),
    /// Run another process in a running container.
    Exec(ExecArgs),
    /// Freeze every process of a container.
    Pause(IdArg),
    /// Thaw a paused container.
    Resume(IdArg),
    /// Print a container's resource usage (cpu, memory, pids) and OOM events.
    Events(EventsArgs),
    /// Change a container's resource limits.
    Update(UpdateArgs),
    /// Check the node's posture for untrusted pods (exit status 1 on any fail).
    CheckNode(CheckNodeArgs),
    /// Add rvisor to containerd's config.toml and Docker's daemon.json.
    Install(InstallArgs),
    /// Keeps a created sandbox (started by `create`).
    #[command(hide = true)]
    Supervise(SuperviseArgs),
    /// Runs the sentry (started by rvisor itself).
    #[command(hide = true)]
    Boot(BootArgs),
    /// Runs the file server (started by rvisor itself).
    #[command(hide = true)]
    Gofer(GoferArgs),
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// containerd's config (version 2 or 3) to add the `rvisor` CRI runtime to
    /// [default: /etc/containerd/config.toml when it exists].
    #[arg(long, value_name = "FILE")]
    pub containerd_config: Option<PathBuf>,
    /// Docker's daemon.json to add the `rvisor` runtime to [default:
    /// /etc/docker/daemon.json when /etc/docker exists].
    #[arg(long, value_name = "FILE")]
    pub docker_config: Option<PathBuf>,
    /// Print the changes as a diff and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CheckNodeArgs {
    /// Print the checks as a JSON list.
    #[arg(long)]
    pub json: bool,
    /// Read /proc, /sys, /etc and /dev under DIR (the live host's probes run only
    /// for `/`).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

#[derive(Debug, Args)]
pub struct DoArgs {
    /// Root filesystem of the sandbox [default: the host's /, read-only].
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Working directory inside the sandbox [default: the current directory when the
    /// rootfs is /, else /].
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Set an environment variable (repeatable); added to this shell's environment.
    #[arg(long, value_name = "K=V")]
    pub env: Vec<String>,
    /// Hostname inside the sandbox [default: the host's].
    #[arg(long)]
    pub hostname: Option<String>,
    /// Run as UID[:GID] (emulated by the sentry; GID defaults to 0).
    #[arg(long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Add a capability to containerd's default set (repeatable): CAP_SYS_ADMIN,
    /// sys_admin, or all.
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Remove a capability from the set, after --cap-add (repeatable; `all` for none).
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Memory limit (bytes, or with k/m/g), as docker's --memory: the sandbox's host
    /// cgroup enforces it and programs inside see it as the machine's memory.
    #[arg(long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// CPUs (a decimal, as docker's --cpus): a CFS quota of N times the period;
    /// programs inside see ceil(N) CPUs.
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Bundle directory to write config.json into.
    #[arg(long, short, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Bundle directory holding config.json.
    #[arg(long, short, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// Container id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct BootArgs {
    /// Inherited fd holding the JSON BootConfig.
    #[arg(long, value_name = "N")]
    pub config_fd: i32,
    /// Inherited fd of the socket connected to the gofer.
    #[arg(long, value_name = "N")]
    pub gofer_fd: i32,
    /// Inherited fd of the control channel (OCI create): hold the first process
    /// until `start` arrives on it.
    #[arg(long, value_name = "N")]
    pub control_fd: Option<i32>,
    /// Inherited fd of an empty memfd the sentry's panic hook writes its message
    /// into, for the runtime to report.
    #[arg(long, value_name = "N")]
    pub report_fd: Option<i32>,
    /// Inherited fd of the packet socket on the pod's interface (`--network=sandbox`).
    #[arg(long, value_name = "N")]
    pub net_fd: Option<i32>,
}

#[derive(Debug, Args)]
pub struct GoferArgs {
    /// Directory to serve.
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// Inherited fd of the socket connected to the sentry.
    #[arg(long, value_name = "N")]
    pub sock_fd: i32,
    /// Refuse every change to the tree.
    #[arg(long)]
    pub readonly: bool,
    /// Also serve a bind mount, DEST=SRC[:ro] (repeatable); the sentry attaches them
    /// by position (0 for the first flag).
    #[arg(long = "mount", value_name = "DEST=SRC[:ro]", value_parser = gofer::BindMount::parse)]
    pub mounts: Vec<gofer::BindMount>,
    /// Container id (for log file names).
    #[arg(long, default_value = "gofer")]
    pub id: String,
    /// Inherited fd of the directory where the sentry's overlay upper-layer files
    /// are made (unnamed, `O_TMPFILE`): `--overlay=self`.
    #[arg(long, value_name = "N")]
    pub upper_fd: Option<i32>,
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// Container id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Bundle directory holding config.json.
    #[arg(long, short, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// Write the sandbox's pid (the container's OCI pid) here.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the terminal's master to (process.terminal).
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility (the sandbox never pivots on the host).
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility (no host keyring is involved).
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Container id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Send to every process of the container.
    #[arg(long, short)]
    pub all: bool,
    /// Container id.
    pub id: String,
    /// Signal name (KILL, SIGKILL) or number.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kill a running container first; succeed if it does not exist.
    #[arg(long, short)]
    pub force: bool,
    /// Container id.
    pub id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Print only the ids.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Container id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// OCI process JSON file describing what to run.
    #[arg(long, short, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Allocate a terminal.
    #[arg(long, short)]
    pub tty: bool,
    /// Unix socket to send the terminal's master to.
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Write the new process's pid here.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Do not wait for the process.
    #[arg(long, short)]
    pub detach: bool,
    /// Working directory.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Environment variable (repeatable).
    #[arg(long, short, value_name = "K=V")]
    pub env: Vec<String>,
    /// UID[:GID].
    #[arg(long, short, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Set by a detached exec for the copy of itself that waits: the plan's fd.
    #[arg(long, hide = true, value_name = "N")]
    pub internal_plan_fd: Option<i32>,
    /// Set by a detached exec for the copy of itself that waits: where to report.
    #[arg(long, hide = true, value_name = "N")]
    pub internal_ready_fd: Option<i32>,
    /// Container id.
    pub id: String,
    /// The command and its arguments (without --process).
    #[arg(trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// Canonical bundle directory.
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
    /// Inherited pipe to report `ok` or the error to `create`.
    #[arg(long, value_name = "N")]
    pub ready_fd: i32,
    /// Where to send the terminal.
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Container id.
    #[arg(long)]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Print one stats object and exit.
    #[arg(long)]
    pub stats: bool,
    /// Time between stats events (Go duration: 5s, 500ms).
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// Container id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// OCI linux.resources JSON file (`-` for stdin).
    #[arg(long, short, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Memory limit (bytes, or with k/m/g; -1 for none).
    #[arg(long, short, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit.
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// CPU shares (relative weight).
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    /// CPU CFS quota in microseconds per period (-1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds.
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPUs the sandbox may use (0-3, 0,1).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the sandbox may use.
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Maximum number of host tasks (-1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Container id.
    pub id: String,
}
