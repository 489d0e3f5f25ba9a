//! `rvisor`: the OCI runtime command line.
//!
//! Exit statuses: `do` and `run` exit with the container's status (its exit code, or
//! 128+N when killed by signal N). rvisor's own failures — bad flags, a bad bundle,
//! a failed launch — print one `rvisor: ...` line and exit 1; a sentry that cannot
//! set the sandbox up makes `boot` exit 125. With `--log FILE --log-format json`, the
//! failure's line also carries its kind (`rvisor_api::ErrorKind`, field `kind`), which
//! callers such as the shim read instead of matching words.

/// Returns a failure of kind `rvisor_api::ErrorKind::$kind` from the function, with a
/// message formatted like `bail!`'s.
macro_rules! bail_kind {
    ($kind:ident, $($arg:tt)*) => {
        return Err(anyhow::Error::new(rvisor_api::KindError::new(
            rvisor_api::ErrorKind::$kind,
            format!($($arg)*),
        )))
    };
}

mod bundle;
mod caps;
mod cgroup;
mod check_node;
mod cli;
mod console;
mod core_scheduling;
mod events;
mod install;
mod internal;
mod lifecycle;
mod logging;
mod netdev;
mod oom_adj;
mod own_oom;
mod policy;
mod sandbox;
mod sandbox_procs;
mod seccomp_config;
mod state;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use oci_spec::runtime::Spec;
use sentry::config::{BootConfig, ProcessConfig};

use crate::cli::{Cli, Command, DoArgs, GlobalOpts, RunArgs, SpecArgs};
use crate::logging::Role;

/// The PATH a sandboxed program gets when the caller has none.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let internal = match &cli.command {
        Command::Boot(_) | Command::Gofer(_) | Command::Supervise(_) => true,
        Command::Exec(a) => a.internal_plan_fd.is_some(),
        _ => false,
    };
    // Every command waits for children of its own (gofer, boot, stubs, hooks).
    let sealed = sentry::sys::host::default_sigchld()
        .map_err(|e| anyhow::anyhow!("signal(SIGCHLD): {e}"))
        .and_then(|()| {
            // The internal commands receive exactly the fds their parent passed on purpose.
            if internal {
                Ok(())
            } else {
                sandbox::seal_inherited_fds()
            }
        });
    match sealed.and_then(|()| dispatch(&cli)) {
        Ok(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)),
        Err(e) => {
            let who = match cli.command {
                Command::Boot(_) => "rvisor boot",
                Command::Gofer(_) => "rvisor gofer",
                _ => "rvisor",
            };
            let msg = one_line(&format!("{e:#}"));
            if !internal && !logging::installed() {
                // A failure before the command set its logging up (a bad id) is
                // still logged where the caller looks for it.
                let _ = logging::init(Role::Cli, "rvisor", &cli.global, false);
            }
            let kind = kind_of(&e);
            tracing::error!(target: logging::FAILURE_TARGET, kind = kind.as_str(), "{msg}");
            print_err(&format!("{who}: {msg}"));
            ExitCode::from(1)
        }
    }
}

/// The kind of a failure: the innermost [`rvisor_api::KindError`] in its chain.
pub fn kind_of(e: &anyhow::Error) -> rvisor_api::ErrorKind {
    e.chain()
        .find_map(|c| c.downcast_ref::<rvisor_api::KindError>())
        .map_or(rvisor_api::ErrorKind::Other, |k| k.kind)
}

/// One write, so lines of the sandbox's processes sharing stderr do not interleave.
pub fn print_err(line: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

pub fn one_line(s: &str) -> String {
    s.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

fn dispatch(cli: &Cli) -> Result<i32> {
    let g = &cli.global;
    if matches!(
        cli.command,
        Command::Create(_) | Command::Run(_) | Command::Do(_)
    ) {
        core_scheduling::precheck(g)?;
    }
    match &cli.command {
        Command::Boot(a) => internal::boot(g, a),
        Command::Gofer(a) => internal::gofer(g, a),
        Command::Spec(a) => {
            logging::init(Role::Cli, "spec", g, false)?;
            spec(a).map(|()| 0)
        }
        Command::Do(a) => {
            let id = format!("do-{}", std::process::id());
            logging::init(Role::Cli, &id, g, false)?;
            run_do(g, a, id)
        }
        Command::Create(a) => {
            state::check_id(&a.id)?;
            logging::init(Role::Cli, &a.id, g, false)?;
            lifecycle::create(g, a)
        }
        Command::Supervise(a) => lifecycle::supervise(g, a),
        Command::Start(a) => cli_for(g, &a.id).and_then(|()| lifecycle::start(g, a)),
        Command::State(a) => cli_for(g, &a.id).and_then(|()| lifecycle::state_cmd(g, a)),
        Command::Kill(a) => cli_for(g, &a.id).and_then(|()| lifecycle::kill_cmd(g, a)),
        Command::Delete(a) => cli_for(g, &a.id).and_then(|()| lifecycle::delete(g, a)),
        Command::Ps(a) => cli_for(g, &a.id).and_then(|()| lifecycle::ps(g, a)),
        Command::Exec(a) => cli_for(g, &a.id).and_then(|()| lifecycle::exec(g, a)),
        Command::Pause(a) => cli_for(g, &a.id).and_then(|()| events::pause_resume(g, a, true)),
        Command::Resume(a) => cli_for(g, &a.id).and_then(|()| events::pause_resume(g, a, false)),
        Command::Events(a) => cli_for(g, &a.id).and_then(|()| events::events(g, a)),
        Command::Update(a) => cli_for(g, &a.id).and_then(|()| events::update(g, a)),
        Command::CheckNode(a) => {
            logging::init(Role::Cli, "check-node", g, false)?;
            check_node::run(&a.root, a.json)
        }
        Command::Install(a) => {
            logging::init(Role::Cli, "install", g, false)?;
            install::run(
                a.containerd_config.as_deref(),
                a.docker_config.as_deref(),
                a.dry_run,
            )
        }
        Command::List(a) => {
            logging::init(Role::Cli, "list", g, false)?;
            lifecycle::list(g, a)
        }
        Command::Run(a) => {
            state::check_id(&a.id)?;
            logging::init(Role::Cli, &a.id, g, false)?;
            run_bundle(g, a)
        }
    }
}

/// Checks the id and sets up this command's logging.
fn cli_for(g: &GlobalOpts, id: &str) -> Result<()> {
    state::check_id(id)?;
    logging::init(Role::Cli, id, g, false)
}

fn spec(a: &SpecArgs) -> Result<()> {
    let path = a.bundle.join("config.json");
    if path.symlink_metadata().is_ok() {
        bail!("{} already exists; remove it first", path.display());
    }
    let mut spec = Spec::default();
    spec.set_hostname(Some("rvisor".to_string()));
    if let Some(p) = spec.process_mut() {
        // Without a console socket there is no terminal to give; see README.
        p.set_terminal(Some(false));
    }
    let mut doc = serde_json::to_value(&spec).context("serialize spec")?;
    // containerd's default capability set rather than oci-spec's three.
    if let Some(p) = doc.get_mut("process").and_then(|p| p.as_object_mut()) {
        p.insert("capabilities".into(), caps::default_json());
    }
    let text = serde_json::to_string_pretty(&doc).context("serialize spec")?;
    std::fs::write(&path, text + "\n")
        .map_err(|e| anyhow::anyhow!("write {}: {}", path.display(), bundle::io_msg(&e)))?;
    Ok(())
}

pub fn parse_user(s: &str) -> Result<(u32, u32)> {
    let bad = || anyhow::anyhow!("--user: expected UID[:GID] as numbers, got {s:?}");
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let uid = u.parse::<u32>().map_err(|_| bad())?;
    let gid = match g {
        Some(g) => g.parse::<u32>().map_err(|_| bad())?,
        None => 0,
    };
    Ok((uid, gid))
}

fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// `do`'s environment: the caller's (as `runsc do` passes it), then `--env` on top;
/// PATH is supplied when the caller has none.
fn do_env(extra: &[String]) -> Result<Vec<String>> {
    let mut env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k != sandbox::PARENT_PID_ENV)
        .collect();
    for e in extra {
        let (k, v) = e
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| anyhow::anyhow!("--env: must be KEY=VALUE, got {e:?}"))?;
        if e.contains('\0') {
            bail!("--env: must not contain a NUL byte");
        }
        env.retain(|(ek, _)| ek != k);
        env.push((k.to_string(), v.to_string()));
    }
    let mut out: Vec<String> = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !out.iter().any(|e| e.starts_with("PATH=")) {
        out.insert(0, DEFAULT_PATH.to_string());
    }
    Ok(out)
}

/// The host OOM killer's preference for a `do` sandbox: its first victim.
const DO_OOM_SCORE_ADJ: i32 = 1000;

fn run_do(g: &GlobalOpts, a: &DoArgs, id: String) -> Result<i32> {
    let network = g.sandbox_network(cli::Network::None)?;
    let rootfs = a.rootfs.clone().unwrap_or_else(|| PathBuf::from("/"));
    let meta = std::fs::metadata(&rootfs).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!("--rootfs: {} does not exist", rootfs.display())
        } else {
            anyhow::anyhow!("--rootfs: {}: {}", rootfs.display(), bundle::io_msg(&e))
        }
    })?;
    if !meta.is_dir() {
        bail!("--rootfs: {} is not a directory", rootfs.display());
    }
    let rootfs = std::fs::canonicalize(&rootfs)
        .with_context(|| format!("--rootfs: {}", rootfs.display()))?;
    let host_root = rootfs == Path::new("/");

    let cwd = match &a.cwd {
        Some(c) if c.starts_with('/') => c.clone(),
        Some(c) => bail!("--cwd: must be an absolute path, got {c:?}"),
        None if host_root => std::env::current_dir()
            .ok()
            .and_then(|d| d.to_str().map(str::to_string))
            .unwrap_or_else(|| "/".to_string()),
        None => "/".to_string(),
    };
    let hostname = a.hostname.clone().unwrap_or_else(host_hostname);
    bundle::check_hostname(&hostname).map_err(|m| anyhow::anyhow!("--hostname: {m}"))?;
    let (uid, gid) = match &a.user {
        Some(u) => parse_user(u)?,
        None => (0, 0),
    };
    if a.command[0].is_empty() {
        bail!("CMD: must not be empty");
    }
    if a.command.iter().any(|s| s.contains('\0')) {
        bail!("CMD: must not contain a NUL byte");
    }

    let limits = do_resources(a)?;
    let mut config = BootConfig {
        id: id.clone(),
        platform: g.sandbox_platform()?,
        strace: g.strace,
        hostname,
        process: ProcessConfig {
            args: a.command.clone(),
            env: do_env(&a.env)?,
            cwd,
            uid,
            gid,
            additional_gids: Vec::new(),
            rlimits: Vec::new(),
            capabilities: Some(caps::for_do(&a.cap_add, &a.cap_drop)?),
            ..Default::default()
        },
        // The host's own root takes no upper-layer files: `self` keeps the upper
        // layer in memory there, as `memory` does.
        overlay: match g.overlay.mode {
            cli::Overlay::SelfFile if host_root => cli::Overlay::Memory.name(),
            o => o.name(),
        },
        overlay_size: g.overlay.size,
        network: network.name(),
        // The host's own root is never written by `do`: with the memory overlay the
        // sandbox may write (into the sentry's memory, as `runsc do`); with
        // --overlay=none it is read-only. Another rootfs is written through only with
        // --overlay=none.
        readonly_rootfs: host_root && g.overlay.name() == "none",
        mounts: Vec::new(),
        weak_confinement: g.unsafe_weak_confinement,
        syscall_patching: g.syscall_patching == crate::cli::Switch::On,
        net_raw: g.net_raw,
        masked_paths: Vec::new(),
        readonly_paths: Vec::new(),
        // `do --network=sandbox` takes the interface of the namespace it runs in.
        netns_path: (network == cli::Network::Sandbox).then(|| netdev::OWN_NETNS.to_string()),
        resources: Default::default(),
        netdev: None,
        allow_metadata: g.allow_metadata,
        devices: Vec::new(),
    };
    // Memory the sandbox holds in memfds (tmpfs, shm, memfd, the in-memory overlay)
    // counts in no process's RSS, so the host's OOM killer could not tell it is the
    // sandbox's: it would kill host processes and free nothing. Every process of the
    // sandbox inherits this value, which makes them its first choice. (`run` and the
    // shim take the spec's `process.oomScoreAdj`, as runsc does.)
    if let Err(e) = sandbox_procs::set_oom_score_adj(std::process::id() as i32, DO_OOM_SCORE_ADJ) {
        tracing::warn!("oom_score_adj {DO_OOM_SCORE_ADJ}: {e}");
    }
    // With limits, the sandbox gets a host cgroup of its own (as `run` does) that
    // enforces them and counts its usage.
    let placement = match &limits {
        Some(r) => Some(cgroup::place_with(&id, r)?),
        None => None,
    };
    config.resources =
        cgroup::boot_resources(limits.as_ref(), placement.as_ref().map(|p| &p.cgroup));
    let launch = sandbox::Launch {
        config,
        rootfs: &rootfs,
        readonly: host_root,
        binds: Vec::new(),
        control: None,
        stdio: None,
        oom_score_adj: None,
    };
    let mut on_start = |_| {
        if let Some(p) = &placement {
            p.leave();
        }
        Ok(())
    };
    let result = sandbox::run(g, launch, &mut on_start, None);
    if let Some(p) = &placement {
        p.leave();
        if let Err(e) = p.cgroup.destroy() {
            tracing::warn!("{e:#}");
        }
    }
    result
}

/// `do --memory/--cpus` as OCI resources (None: no limits asked).
fn do_resources(a: &DoArgs) -> Result<Option<oci_spec::runtime::LinuxResources>> {
    if a.memory.is_none() && a.cpus.is_none() {
        return Ok(None);
    }
    let mut v = serde_json::json!({});
    if let Some(m) = &a.memory {
        let bytes = events::parse_size(m, "--memory")?;
        if bytes < 4 << 20 {
            bail!("--memory: {m:?} is below the 4 MiB a sandbox needs at least");
        }
        v["memory"] = serde_json::json!({ "limit": bytes });
    }
    if let Some(c) = &a.cpus {
        const PERIOD: u64 = 100_000;
        let n: f64 = c
            .trim()
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite() && *n > 0.0)
            .ok_or_else(|| {
                anyhow::anyhow!("--cpus: {c:?} is not a positive number like 1 or 1.5")
            })?;
        let quota = (n * PERIOD as f64).round() as i64;
        if quota < 1000 {
            bail!("--cpus: {c} is below 0.01");
        }
        v["cpu"] = serde_json::json!({ "quota": quota, "period": PERIOD });
    }
    Ok(Some(serde_json::from_value(v).context("--memory/--cpus")?))
}

fn run_bundle(g: &GlobalOpts, a: &RunArgs) -> Result<i32> {
    let network = g.sandbox_network(cli::Network::Sandbox)?;
    let b = bundle::load(&a.bundle)?;
    if b.spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
    {
        bail!("config.json: process.terminal: true needs a console socket, which rvisor run does not take; use create --console-socket, or set it to false");
    }
    let bundle_dir = std::fs::canonicalize(&a.bundle)
        .with_context(|| format!("--bundle: {}", a.bundle.display()))?;
    let applied = g.check_policy(&b, &bundle_dir, false)?;
    let mut hostname = b.hostname.clone().unwrap_or_default();
    if hostname.is_empty() {
        hostname = a.id.chars().take(bundle::HOST_NAME_MAX).collect();
    }
    let mut config = BootConfig {
        id: a.id.clone(),
        platform: g.sandbox_platform()?,
        strace: g.strace,
        hostname,
        process: b.process,
        overlay: g.overlay.name(),
        overlay_size: g.overlay.size,
        network: network.name(),
        readonly_rootfs: b.readonly,
        mounts: b.mounts,
        weak_confinement: g.unsafe_weak_confinement,
        syscall_patching: g.syscall_patching == crate::cli::Switch::On,
        net_raw: g.net_raw,
        masked_paths: b.masked_paths,
        readonly_paths: b.readonly_paths,
        netns_path: applied.netns_path.map(|p| p.to_string_lossy().into_owned()),
        resources: Default::default(),
        netdev: None,
        allow_metadata: netdev::metadata_allowed(g, &b.spec),
        devices: policy::emulated_devices(&b.spec),
    };
    let st = state::Container::create(&g.root, &a.id, &bundle_dir)?;
    let placement = cgroup::place(
        &b.spec,
        &a.id,
        g.systemd_cgroup,
        &state::dir_of(&g.root, &a.id)?,
    )?;
    config.resources = cgroup::boot_resources(
        b.spec.linux().as_ref().and_then(|l| l.resources().as_ref()),
        placement.as_ref().map(|p| &p.cgroup),
    );
    let launch = sandbox::Launch {
        config,
        rootfs: &b.rootfs,
        readonly: b.readonly,
        binds: b.binds,
        control: None,
        stdio: None,
        oom_score_adj: None,
    };
    let mut on_start = |pid| {
        if let Some(p) = &placement {
            p.leave();
        }
        st.set_running(pid)
    };
    let result = sandbox::run(g, launch, &mut on_start, None);
    if let Some(p) = &placement {
        p.leave();
        if let Err(e) = p.cgroup.destroy() {
            tracing::warn!("{e:#}");
        }
    }
    drop(st);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_parsing() {
        assert_eq!(parse_user("5").unwrap(), (5, 0));
        assert_eq!(parse_user("5:7").unwrap(), (5, 7));
        for bad in ["", "x", "5:", ":5", "-1", "5:x", "4294967296"] {
            let e = parse_user(bad).unwrap_err().to_string();
            assert!(e.starts_with("--user: "), "{e}");
        }
    }

    #[test]
    fn env_overrides_and_rejects() {
        let env = do_env(&["RVISOR_TEST_X=1".into(), "RVISOR_TEST_X=2".into()]).unwrap();
        let xs: Vec<_> = env
            .iter()
            .filter(|e| e.starts_with("RVISOR_TEST_X="))
            .collect();
        assert_eq!(xs, vec!["RVISOR_TEST_X=2"]);
        assert!(env.iter().any(|e| e.starts_with("PATH=")));
        assert!(do_env(&["NOEQ".into()]).is_err());
        assert!(do_env(&["=v".into()]).is_err());
    }
}
