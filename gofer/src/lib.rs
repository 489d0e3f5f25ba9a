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
/// DEST=SRC[:ro]`); the sentry reaches it with [`Client::attach_mount`] by its
/// position in the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindMount {
    /// Where the container sees it (for logs; the sentry's mount table places it).
    pub dest: String,
    /// The host file or directory served.
    pub src: std::path::PathBuf,
    /// Refuse every change under it.
    pub readonly: bool,
}

impl BindMount {
    /// Parses `DEST=SRC[:ro]` (or `:rw`); DEST must be absolute, SRC non-empty.
    pub fn parse(s: &str) -> Result<BindMount, String> {
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
        })
    }
}

/// An owner id meaning "leave unchanged" (like `chown(2)`'s -1).
pub const KEEP_ID: u32 = u32::MAX;

/// A handle for a file the gofer holds open on the sentry's behalf.
pub type Fid = u64;

/// File attributes as the gofer reports them (the fields of `struct stat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Type and permission bits (`S_IF*` | mode).
    pub mode: u32,
    /// Link count.
    pub nlink: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number for device files.
    pub rdev: u64,
    /// Size in bytes.
    pub size: i64,
    /// Preferred I/O block size.
    pub blksize: i64,
    /// 512-byte blocks allocated.
    pub blocks: i64,
    /// Access time (seconds, nanoseconds).
    pub atime: (i64, i64),
    /// Modification time.
    pub mtime: (i64, i64),
    /// Status change time.
    pub ctime: (i64, i64),
}

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

/// Filesystem statistics (`struct statfs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatFs {
    /// Filesystem type magic.
    pub kind: i64,
    /// Block size.
    pub bsize: i64,
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Blocks available to unprivileged users.
    pub bavail: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Maximum name length.
    pub namelen: i64,
    /// Fragment size.
    pub frsize: i64,
    /// Mount flags (`ST_*`).
    pub flags: i64,
}

/// A timestamp to set with [`SetAttr`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SetTime {
    /// Leave the timestamp alone (`UTIME_OMIT`).
    #[default]
    Omit,
    /// The current time (`UTIME_NOW`).
    Now,
    /// This time (seconds, nanoseconds).
    At(i64, i64),
}

impl SetTime {
    /// The `timespec` pair `utimensat(2)` expects.
    pub fn to_timespec(self) -> (i64, i64) {
        match self {
            SetTime::Omit => (0, libc::UTIME_OMIT),
            SetTime::Now => (0, libc::UTIME_NOW),
            SetTime::At(s, ns) => (s, ns),
        }
    }
}

/// Attribute changes for `setattr`; `None`/`Omit` fields are left alone. Applied in the
/// order size, owner, mode, times (so a chown cannot clear set-id bits just set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// New permission bits (`07777` mask).
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (regular files only).
    pub size: Option<u64>,
    /// New access time.
    pub atime: SetTime,
    /// New modification time.
    pub mtime: SetTime,
}
