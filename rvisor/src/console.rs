//! `--console-socket`: the container gets a terminal.
//!
//! For now the pty pair is the host's: the slave becomes the application's stdin,
//! stdout and stderr through the sentry's host stdio passthrough, and the master is
//! sent to the console socket with `SCM_RIGHTS` (as runc does), where the caller
//! (a shim, `recvtty`) copies data and sets the window size on it; the app's
//! `TIOCGWINSZ` reaches the slave through the passthrough. When the sentry has its
//! own devpts, the master moves there and the runtime sends that one instead.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::pty::openpty;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

/// Opens a pty pair, sends the master over the unix socket at `path` and returns the
/// slave.
pub fn send_new_pty(path: &Path) -> Result<OwnedFd> {
    let pty = openpty(None, None).context("openpty")?;
    for fd in [&pty.master, &pty.slave] {
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).context("fcntl")?;
    }
    let sock = unix_path::connect(path)
        .with_context(|| format!("--console-socket {}: connect", path.display()))?;
    // runc sends the pty's name as the payload; receivers use only the fd.
    let name = b"/dev/ptmx";
    let fds = [pty.master.as_raw_fd()];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(name)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .with_context(|| format!("--console-socket {}: send the terminal", path.display()))?;
    Ok(pty.slave)
}
