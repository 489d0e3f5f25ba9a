//! `--core-scheduling`: the process that starts a sandbox's gofer and sentry takes a
//! fresh core-scheduling cookie first, so they, the systrap zygote and every stub
//! inherit it (see `sentry::sys::core_sched`).

use anyhow::{bail, Result};
use sentry::sys::core_sched::{self, CoreSchedHost, Outcome, Policy};

use crate::cli::{CoreScheduling, GlobalOpts};

fn policy(g: &GlobalOpts) -> Policy {
    match g.core_scheduling {
        CoreScheduling::Auto => Policy::Auto,
        CoreScheduling::Required => Policy::Required,
        CoreScheduling::Off => Policy::Off,
    }
}

/// Refuses `required` on a kernel without core scheduling, before anything starts.
pub fn precheck(g: &GlobalOpts) -> Result<()> {
    precheck_with(&core_sched::Kernel, g)
}

fn precheck_with(host: &dyn CoreSchedHost, g: &GlobalOpts) -> Result<()> {
    if policy(g) == Policy::Required && !core_sched::supported(host) {
        // The same words `apply` would refuse with.
        if let Err(e) = core_sched::apply(host, Policy::Required) {
            bail!("{e}");
        }
    }
    Ok(())
}

/// Gives this process (and so every process it starts from now on) a new cookie.
pub fn apply(g: &GlobalOpts) -> Result<()> {
    match core_sched::apply(&core_sched::Kernel, policy(g)) {
        Ok(Outcome::Cookie) => tracing::debug!("core scheduling: new cookie for the sandbox"),
        Ok(Outcome::Off) => {}
        Ok(Outcome::Unavailable(msg)) => tracing::info!("{msg}"),
        Err(e) => bail!("{e}"),
    }
    Ok(())
}

/// Takes the cookie of the sandbox whose launcher is `pid`, before starting an
/// added container's gofer.
pub fn join(g: &GlobalOpts, pid: i32) -> Result<()> {
    match core_sched::join(&core_sched::Kernel, policy(g), pid) {
        Ok(Outcome::Cookie) => tracing::debug!(pid, "core scheduling: joined the sandbox's cookie"),
        Ok(Outcome::Off) => {}
        Ok(Outcome::Unavailable(msg)) => tracing::info!("{msg}"),
        Err(e) => bail!("{e}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use sentry::errno::Errno;

    struct NoCoreSched;
    impl CoreSchedHost for NoCoreSched {
        fn create_for_process(&self) -> Result<(), Errno> {
            Err(Errno::EINVAL)
        }
        fn cookie(&self, _pid: i32) -> Result<u64, Errno> {
            Err(Errno::EINVAL)
        }
        fn share_from(&self, _pid: i32) -> Result<(), Errno> {
            Err(Errno::EINVAL)
        }
    }

    fn global(args: &[&str]) -> GlobalOpts {
        let mut v = vec!["rvisor"];
        v.extend_from_slice(args);
        v.push("list");
        crate::cli::Cli::parse_from(v).global
    }

    #[test]
    fn required_refuses_on_a_kernel_without_it() {
        let g = global(&["--core-scheduling=required"]);
        let e = precheck_with(&NoCoreSched, &g).unwrap_err().to_string();
        assert!(e.starts_with("--core-scheduling=required: this kernel has no core scheduling"));
        assert!(precheck_with(&NoCoreSched, &global(&[])).is_ok());
        assert!(precheck_with(&NoCoreSched, &global(&["--core-scheduling=off"])).is_ok());
        assert_eq!(global(&[]).core_scheduling, CoreScheduling::Auto);
        assert!(global(&["--core-scheduling=off"])
            .forwarded()
            .contains(&"--core-scheduling=off".into()));
    }
}
