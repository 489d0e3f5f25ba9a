//! Unix socket paths of any length.
//!
//! A `sockaddr_un` holds at most 107 bytes of path, and the paths containerd and
//! Kubernetes hand us do not fit: a task's state directory under
//! `/run/containerd/io.containerd.runtime.v2.task/k8s.io/<64 hex digits>/` plus our own
//! `<id>/control.sock` runs past 200 bytes. A longer path is reached through its
//! directory instead: the directory is opened (`O_PATH`) and the socket is named
//! `/proc/self/fd/N/NAME`, which the kernel resolves to the same file. Only the last
//! component must be short.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The longest path a `sockaddr_un` takes (its 108 bytes less the terminating NUL).
const SUN_PATH_MAX: usize = 107;

/// Runs `f` with an address for `path` that fits a `sockaddr_un`.
fn with_short<T>(path: &Path, f: impl FnOnce(&Path) -> io::Result<T>) -> io::Result<T> {
    if path.as_os_str().len() <= SUN_PATH_MAX {
        return f(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a socket path", path.display()),
        ));
    };
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)?;
    let mut short = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    short.push(name);
    if short.as_os_str().len() > SUN_PATH_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: the socket's file name is too long", path.display()),
        ));
    }
    f(&short)
}

/// `UnixListener::bind`, for a path of any length.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    with_short(path, |p| UnixListener::bind(p))
}

/// `UnixStream::connect`, for a path of any length.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    with_short(path, |p| UnixStream::connect(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn long_paths_bind_and_connect() {
        let mut dir = std::env::temp_dir().join(format!("rvisor-unix-path-{}", std::process::id()));
        while dir.as_os_str().len() <= SUN_PATH_MAX + 20 {
            dir.push("a-long-directory-name");
        }
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("control.sock");
        assert!(
            UnixListener::bind(&sock).is_err(),
            "the plain bind should fail"
        );
        let l = bind(&sock).unwrap();
        assert!(sock.exists(), "the socket is made at the long path itself");
        let mut c = connect(&sock).unwrap();
        let (mut s, _) = l.accept().unwrap();
        c.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
        let top = std::env::temp_dir().join(format!("rvisor-unix-path-{}", std::process::id()));
        std::fs::remove_dir_all(top).unwrap();
    }

    #[test]
    fn short_paths_pass_through_and_errors_name_the_path() {
        let dir = std::env::temp_dir().join(format!("rvisor-unix-short-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("s");
        let _l = bind(&sock).unwrap();
        assert!(connect(&sock).is_ok());
        let missing = Path::new("/nonexistent-rvisor")
            .join("x".repeat(120))
            .join("s");
        assert!(connect(&missing).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
