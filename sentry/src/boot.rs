//! `rvisor boot`: the sentry's entry point. Builds the kernel from a [`BootConfig`],
//! starts the container's first process and returns its exit status.

use std::os::fd::OwnedFd;

use crate::config::BootConfig;

/// How the sandbox ended, for the CLI to turn into its own exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SandboxExit {
    /// The first process exited with this status.
    Exited(i32),
    /// The first process was killed by this signal.
    Signaled(i32),
}

impl SandboxExit {
    /// The status a shell would report: the code, or 128 + the signal.
    pub fn shell_status(self) -> i32 {
        match self {
            SandboxExit::Exited(c) => c & 0xff,
            SandboxExit::Signaled(s) => 128 + s,
        }
    }
}

/// Runs a sandbox. `gofer` is the connected socket to this sandbox's gofer; the
/// caller's fds 0, 1 and 2 become the application's stdio. Errors are setup failures
/// (bad config, platform unavailable), reported with the field or step that failed.
pub fn run(config: BootConfig, gofer: OwnedFd) -> Result<SandboxExit, String> {
    let _ = (config, gofer);
    Err("sentry not yet built".to_string())
}
