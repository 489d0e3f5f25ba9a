//! Core scheduling (`PR_SCHED_CORE`, Linux 5.14): tasks with one cookie are the only
//! ones that run together on the SMT siblings of a core, so a sandbox's host threads
//! never share a core with another workload. The runtime makes the cookie for its
//! own process just before it starts the gofer and the sentry; every process forked
//! after that (gofer, sentry, zygote, stubs) inherits it, so no confined process
//! makes this call.

use crate::errno::Errno;

/// `PR_SCHED_CORE`.
const PR_SCHED_CORE: libc::c_int = 62;
/// `PR_SCHED_CORE_GET`.
const GET: libc::c_ulong = 0;
/// `PR_SCHED_CORE_CREATE`.
const CREATE: libc::c_ulong = 1;
/// `PR_SCHED_CORE_SHARE_FROM`.
const SHARE_FROM: libc::c_ulong = 3;
/// `PIDTYPE_PID`: one task.
const PIDTYPE_PID: libc::c_ulong = 0;
/// `PIDTYPE_TGID`: every thread of the process.
const PIDTYPE_TGID: libc::c_ulong = 1;

/// What a host offers for core scheduling: the real kernel, or a fake in tests.
pub trait CoreSchedHost {
    /// Gives the calling process (all its threads) a new cookie.
    fn create_for_process(&self) -> Result<(), Errno>;
    /// The cookie of process `pid` (0: none).
    fn cookie(&self, pid: i32) -> Result<u64, Errno>;
    /// Gives the calling thread the cookie of `pid` (what it forks from now on
    /// inherits it).
    fn share_from(&self, pid: i32) -> Result<(), Errno>;
}

/// The running kernel.
pub struct Kernel;

impl CoreSchedHost for Kernel {
    fn create_for_process(&self) -> Result<(), Errno> {
        // SAFETY: PR_SCHED_CORE_CREATE takes no pointer; pid 0 is the caller.
        let r = unsafe { libc::prctl(PR_SCHED_CORE, CREATE, 0 as libc::c_ulong, PIDTYPE_TGID, 0) };
        if r < 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    fn share_from(&self, pid: i32) -> Result<(), Errno> {
        // SAFETY: PR_SCHED_CORE_SHARE_FROM takes no pointer.
        let r = unsafe {
            libc::prctl(
                PR_SCHED_CORE,
                SHARE_FROM,
                pid as libc::c_ulong,
                PIDTYPE_PID,
                0,
            )
        };
        if r < 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    fn cookie(&self, pid: i32) -> Result<u64, Errno> {
        let mut c: u64 = 0;
        // SAFETY: the kernel writes one u64 to `c`, which lives across the call.
        let r = unsafe {
            libc::prctl(
                PR_SCHED_CORE,
                GET,
                pid as libc::c_ulong,
                0 as libc::c_ulong,
                &mut c as *mut u64 as libc::c_ulong,
            )
        };
        if r < 0 {
            return Err(Errno::last());
        }
        Ok(c)
    }
}

/// `--core-scheduling`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Use it where the kernel has it; say once when it does not.
    Auto,
    /// Refuse to start without it.
    Required,
    /// Do not use it.
    Off,
}

/// What [`apply`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The process has a fresh cookie its children inherit.
    Cookie,
    /// Not used (`off`).
    Off,
    /// `auto` on a kernel without it: going on without (the message to log).
    Unavailable(String),
}

/// Gives the calling process a new core-scheduling cookie, before it starts the
/// sandbox's processes, as `policy` asks. `Err` is the one-line refusal of
/// `required`.
pub fn apply(host: &dyn CoreSchedHost, policy: Policy) -> Result<Outcome, String> {
    if policy == Policy::Off {
        return Ok(Outcome::Off);
    }
    match host.create_for_process() {
        Ok(()) => Ok(Outcome::Cookie),
        Err(e) => {
            let why = if e == Errno::EINVAL {
                "this kernel has no core scheduling (PR_SCHED_CORE: EINVAL; needs Linux 5.14+ \
                 with CONFIG_SCHED_CORE)"
                    .to_string()
            } else {
                format!("PR_SCHED_CORE_CREATE failed: {e}")
            };
            if policy == Policy::Required {
                Err(format!(
                    "--core-scheduling=required: {why}; use --core-scheduling=auto or off to run \
                     without it"
                ))
            } else {
                Ok(Outcome::Unavailable(format!(
                    "core scheduling not used: {why}; sandbox threads may share SMT cores \
                     with other workloads"
                )))
            }
        }
    }
}

/// Joins the cookie of `pid` (a sandbox's launcher) before starting another process
/// of that sandbox (an added container's gofer), as `policy` asks.
pub fn join(host: &dyn CoreSchedHost, policy: Policy, pid: i32) -> Result<Outcome, String> {
    if policy == Policy::Off {
        return Ok(Outcome::Off);
    }
    match host.share_from(pid) {
        Ok(()) => Ok(Outcome::Cookie),
        Err(e) if policy == Policy::Required => Err(format!(
            "--core-scheduling=required: cannot share the sandbox's core-scheduling cookie \
             (PR_SCHED_CORE_SHARE_FROM {pid}: {e})"
        )),
        Err(e) => Ok(Outcome::Unavailable(format!(
            "core scheduling not used for this container: PR_SCHED_CORE_SHARE_FROM {pid}: {e}"
        ))),
    }
}

/// True if the running kernel has core scheduling (`rvisor check-node`).
pub fn supported(host: &dyn CoreSchedHost) -> bool {
    host.cookie(0).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(Option<Errno>);
    impl CoreSchedHost for Fake {
        fn create_for_process(&self) -> Result<(), Errno> {
            self.0.map_or(Ok(()), Err)
        }
        fn cookie(&self, _pid: i32) -> Result<u64, Errno> {
            self.0.map_or(Ok(7), Err)
        }
        fn share_from(&self, _pid: i32) -> Result<(), Errno> {
            self.0.map_or(Ok(()), Err)
        }
    }

    #[test]
    fn policies() {
        let with = Fake(None);
        let without = Fake(Some(Errno::EINVAL));
        assert_eq!(apply(&with, Policy::Auto), Ok(Outcome::Cookie));
        assert_eq!(apply(&with, Policy::Required), Ok(Outcome::Cookie));
        assert_eq!(apply(&with, Policy::Off), Ok(Outcome::Off));
        assert!(matches!(
            apply(&without, Policy::Auto),
            Ok(Outcome::Unavailable(m)) if m.contains("no core scheduling")
        ));
        let e = apply(&without, Policy::Required).unwrap_err();
        assert!(e.starts_with("--core-scheduling=required: this kernel has no core scheduling"));
        assert!(!e.contains('\n'));
        assert_eq!(apply(&without, Policy::Off), Ok(Outcome::Off));
        assert!(supported(&with));
        assert!(!supported(&without));
        assert_eq!(join(&with, Policy::Auto, 5), Ok(Outcome::Cookie));
        assert!(matches!(
            join(&without, Policy::Auto, 5),
            Ok(Outcome::Unavailable(_))
        ));
        assert!(join(&without, Policy::Required, 5).is_err());
        assert_eq!(join(&without, Policy::Off, 5), Ok(Outcome::Off));
    }
}
