//! `/proc/PID/fd/N` of a file with no path (a pipe end, one of the caller's host
//! streams): a magic link. Its text is what Linux shows (`pipe:[INO]`), and
//! following it lands on the file's object itself, so `open(2)` of it (`/dev/stdin`
//! when stdin is a shell pipe) opens a new description of that same pipe or stream,
//! as on Linux, where an ordinary symlink to that text would give `ENOENT`.

use std::sync::Arc;

use crate::fs::host::HostStream;
use crate::fs::pipe::AnonPipeInode;
use crate::vfs::{Inode, OpenFile};

/// What following fd entry `file` lands on, for pathless files that can be opened
/// again (anonymous pipes, host streams); `None` for the others (sockets, anonymous
/// inodes), whose entries stay plain links that do not resolve, as Linux's
/// (`ENXIO` there; `ENOENT` here).
pub fn reopen_target(file: &OpenFile) -> Option<Arc<dyn Inode>> {
    if file.dentry().is_some() {
        return None;
    }
    if let Some(pipe) = crate::fs::pipe::pipe_of(file) {
        return Some(AnonPipeInode::new(pipe));
    }
    let any = file.imp().as_any()?;
    any.downcast_ref::<HostStream>()
        .map(HostStream::reopen_target)
}
