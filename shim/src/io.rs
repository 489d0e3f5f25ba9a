//! containerd's stdio FIFOs and the terminal's console socket.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Stdio as ProcStdio;
use std::sync::Arc;

use crate::error::{internal, Result};

/// Opens a stdio FIFO without blocking on its other end (O_RDWR never waits).
pub fn open_fifo(path: &str) -> Result<Option<File>> {
    if path.is_empty() {
        return Ok(None);
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map(Some)
        .map_err(|e| internal(format!("open {path}: {e}")))
}

/// A child's stdio from an open FIFO (null without one).
pub fn child_stdio(f: Option<&File>) -> Result<ProcStdio> {
    match f {
        Some(f) => Ok(ProcStdio::from(
            f.try_clone().map_err(|e| internal(e.to_string()))?,
        )),
        None => Ok(ProcStdio::null()),
    }
}

/// Makes the console socket at `path`, which lies in the bundle directory and may be
/// longer than a `sockaddr_un` holds (Kubernetes bundle paths carry a 64-digit id).
pub fn bind_console(path: &str) -> Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    unix_path::bind(Path::new(path)).map_err(|e| internal(format!("console socket {path}: {e}")))
}

/// Takes the pty master rvisor sends on `listener` and pumps it to and from
/// containerd's FIFOs.
pub fn attach_console(
    listener: &UnixListener,
    path: &str,
    stdin: Option<File>,
    stdout: Option<File>,
) -> Result<Arc<OwnedFd>> {
    let master = Arc::new(recv_console(listener)?);
    let _ = std::fs::remove_file(path);
    let m = File::from(master.try_clone().map_err(|e| internal(e.to_string()))?);
    if let Some(o) = stdout {
        copy(m.try_clone().map_err(|e| internal(e.to_string()))?, o);
    }
    if let Some(i) = stdin {
        copy(i, m);
    }
    Ok(master)
}

/// Receives the terminal master rvisor sends over the console socket.
fn recv_console(listener: &UnixListener) -> Result<OwnedFd> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let (conn, _) = listener
        .accept()
        .map_err(|e| internal(format!("console socket: {e}")))?;
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut buf = [0u8; 4096];
    recvmsg(
        &conn,
        &mut [std::io::IoSliceMut::new(&mut buf)],
        &mut cmsg,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| internal(format!("console socket: {e}")))?;
    for m in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(internal("console socket: no terminal received"))
}

fn copy(mut from: impl Read + Send + 'static, mut to: impl std::io::Write + Send + 'static) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
    });
}

/// Sets a terminal's window size.
pub fn resize(console: &OwnedFd, width: u32, height: u32) -> Result<()> {
    let ws = rustix::termios::Winsize {
        ws_row: height as u16,
        ws_col: width as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(console, ws).map_err(|e| internal(format!("resize: {e}")))
}
