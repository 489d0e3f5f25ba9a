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
    /// How application code runs and traps into the sentry.
    #[arg(long, value_enum, default_value_t = Platform::Ptrace)]
    pub platform: Platform,

    /// Log every system call the application makes.
    #[arg(long)]
    pub strace: bool,

    /// Write the logs of each process to DIR/<id>.<boot|gofer|cli>.log (DIR is created).
    #[arg(long, value_name = "DIR")]
    pub debug_log: Option<PathBuf>,

    /// State directory for containers started with `run`.
    #[arg(long, value_name = "DIR", default_value = "/var/run/rvisor")]
    pub root: PathBuf,

    /// Where writes to the root filesystem go: `memory` keeps them in the sandbox,
    /// `none` sends them through the gofer to the host directory.
    #[arg(long, value_enum, default_value_t = Overlay::Memory)]
    pub overlay: Overlay,

    /// Network stack [default: sandbox]. `do` and `run` support only `none` today and
    /// use it when the flag is not given.
    #[arg(long, value_enum)]
    pub network: Option<Network>,

    /// Append this command's own log to FILE (in --log-format).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// Format of --log and --debug-log files.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log at debug level.
    #[arg(long)]
    pub debug: bool,
}

impl GlobalOpts {
    /// The flags `boot` and `gofer` need to log and behave like their parent.
    pub fn forwarded(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![
            format!("--platform={}", self.platform.name()).into(),
            format!("--overlay={}", self.overlay.name()).into(),
            format!("--log-format={}", self.log_format.name()).into(),
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
        if let Some(d) = &self.debug_log {
            let mut a = OsString::from("--debug-log=");
            a.push(d.as_os_str());
            v.push(a);
        }
        v
    }

    /// The network mode `do` and `run` use, refusing the ones not built yet.
    pub fn sandbox_network(&self) -> anyhow::Result<Network> {
        match self.network {
            None | Some(Network::None) => Ok(Network::None),
            Some(n) => anyhow::bail!(
                "--network={}: not supported yet by do and run; use --network=none",
                n.name()
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Platform {
    Ptrace,
    Systrap,
    Kvm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Overlay {
    Memory,
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
    /// Runs the sentry (started by rvisor itself).
    #[command(hide = true)]
    Boot(BootArgs),
    /// Runs the file server (started by rvisor itself).
    #[command(hide = true)]
    Gofer(GoferArgs),
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
}
