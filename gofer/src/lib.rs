//! The gofer: rvisor's file server. It serves the container's root filesystem (and
//! the spec's bind mounts, as further attach points) to the sentry over one `SOCK_SEQPACKET` unix
//! socket, with a versioned, length-prefixed binary protocol. Regular files are opened
//! by the gofer and their host fds donated with `SCM_RIGHTS`, so data I/O never
//! crosses the socket. The gofer never follows a symlink: the sentry resolves them.

#![deny(missing_docs)]

pub mod client;
pub mod confine;
mod host;
pub mod protocol;
pub mod server;

#[cfg(test)]
mod tests;

pub use client::Client;
/// Descriptor passing over unix sockets, for the runtime's and the sentry's control
/// channels as much as for the gofer's own.
pub use host::{recv_frame, send_frame_fds, Received};
pub use server::Server;

/// A bind mount the gofer serves besides the root (`rvisor gofer --mount
/// DEST=SRC[:ro][:rbind]`); the sentry reaches it with [`Client::attach_mount`] by its
/// position in the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindMount {
    /// Where the container sees it (for logs; the sentry's mount table places it).
    pub dest: String,
    /// The host file or directory served.
    pub src: std::path::PathBuf,
    /// Refuse every change under it (the host mounts under it included: a read-only
    /// bind is made read-only recursively, as `rro` and runc's `rbind,ro`).
    pub readonly: bool,
    /// `rbind`: the host mounts under the source are served too (a plain `bind` shows
    /// the directories they cover).
    pub recursive: bool,
    /// An inherited descriptor of the source, opened by the runtime with
    /// [`open_bind_source`] when it checked the spec: the gofer serves exactly that
    /// file or directory and never resolves `src` again (`src` is then only for logs).
    pub fd: Option<i32>,
}

impl BindMount {
    /// Parses `DEST=SRC[:ro|:rw][:rbind][:fd=N]`; DEST must be absolute, SRC non-empty.
    pub fn parse(s: &str) -> Result<BindMount, String> {
        let (s, fd) = match s.rsplit_once(":fd=") {
            Some((head, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                let n: i32 = n.parse().map_err(|_| format!("--mount {s:?}: bad fd"))?;
                (head, Some(n))
            }
            _ => (s, None),
        };
        let (s, recursive) = match s.strip_suffix(":rbind") {
            Some(head) => (head, true),
            None => (s, false),
        };
        let (dest, rest) = s
            .split_once('=')
            .ok_or_else(|| format!("--mount {s:?}: expected DEST=SRC[:ro]"))?;
        let (src, readonly) = match rest.rsplit_once(':') {
            Some((src, "ro")) => (src, true),
            Some((src, "rw")) => (src, false),
            _ => (rest, false),
        };
        if !dest.starts_with('/') || src.is_empty() {
            return Err(format!(
                "--mount {s:?}: DEST must be absolute and SRC not empty"
            ));
        }
        Ok(BindMount {
            dest: dest.to_string(),
            src: src.into(),
            readonly,
            recursive,
            fd,
        })
    }

    /// The `--mount` argument for this bind, its source passed as descriptor `fd`.
    pub fn arg_with_fd(&self, fd: i32) -> std::ffi::OsString {
        let mut a = std::ffi::OsString::from(format!("{}=", self.dest));
        a.push(self.src.as_os_str());
        a.push(if self.readonly { ":ro" } else { ":rw" });
        if self.recursive {
            a.push(":rbind");
        }
        a.push(format!(":fd={fd}"));
        a
    }
}

/// Opens a bind mount source once, for the gofer to serve by descriptor: `O_PATH`,
/// no symlink anywhere in `path` (`RESOLVE_NO_SYMLINKS`, `O_NOFOLLOW`; the runtime
/// passes a canonical path, so a symlink found now was swapped in since its checks
/// and is refused, not followed), and only a directory or a regular file.
pub fn open_bind_source(path: &std::path::Path) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let fd = host::openat2(
        host::at_fdcwd(),
        &c,
        libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        host::RESOLVE_NO_SYMLINKS | host::RESOLVE_NO_MAGICLINKS,
    )
    .map_err(|e| std::io::Error::other(format!("bind mount source {}: {e}", path.display())))?;
    let kind = host::fstat(std::os::fd::AsFd::as_fd(&fd))?.mode & libc::S_IFMT;
    if kind != libc::S_IFDIR && kind != libc::S_IFREG {
        return Err(std::io::Error::other(format!(
            "bind mount source {}: neither a directory nor a regular file",
            path.display()
        )));
    }
    Ok(fd)
}

/// An owner id meaning "leave unchanged" (like `chown(2)`'s -1).
pub const KEEP_ID: u32 = u32::MAX;

/// A handle for a file the gofer holds open on the sentry's behalf.
pub type Fid = u64;

/// File attributes, statistics and attribute changes, as the sentry's VFS uses them.
pub use abi::fs::{SetAttr, SetTime, Stat, StatFs};

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dirent {
    /// Inode number.
    pub ino: u64,
    /// Cookie to continue the listing after this entry.
    pub next_cookie: u64,
    /// `DT_*` type.
    pub kind: u8,
    /// Name (no slash, no NUL).
    pub name: Vec<u8>,
}
