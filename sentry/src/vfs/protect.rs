//! The spec's `linux.maskedPaths` and `linux.readonlyPaths`, applied after every
//! other mount as runc applies them: a masked path gets an empty read-only
//! directory or file mounted over it, a read-only path a read-only bind of itself.
//! Paths that do not exist in the container are skipped, as runc skips them.

use std::sync::Arc;

use crate::errno::Errno;
use crate::vfs::mount::{empty_node, MountTable};
use crate::vfs::path::{resolve, Follow};
use crate::vfs::{Dentry, FsContext};

/// Resolves `path` in the container; `None` when it does not exist.
fn find(root: &Arc<Dentry>, path: &str) -> Result<Option<Arc<Dentry>>, String> {
    if !path.starts_with('/') || path.contains('\0') {
        return Err(format!("{path:?}: must be an absolute path"));
    }
    let fs = FsContext {
        root: root.clone(),
        cwd: root.clone(),
        umask: 0o022,
    };
    match resolve(&fs, root, path.as_bytes(), Follow::Yes) {
        Ok(d) => Ok(Some(d)),
        Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(None),
        Err(e) => Err(format!("{path}: {e}")),
    }
}

/// Masks each of `masked` and makes each of `readonly` read-only, in `table`
/// below `root`. Errors name the path and the spec field.
pub fn apply(
    table: &MountTable,
    root: &Arc<Dentry>,
    masked: &[String],
    readonly: &[String],
) -> Result<(), String> {
    for p in readonly {
        let Some(d) = find(root, p).map_err(|e| format!("linux.readonlyPaths: {e}"))? else {
            continue;
        };
        let m = d.mount().clone();
        let flags = d.mount_flags() | libc::MS_RDONLY;
        table
            .mount_with_data(
                &d,
                p.as_bytes(),
                d.inode().clone(),
                flags,
                m.kind(),
                m.source(),
                m.data().to_vec(),
            )
            .map_err(|e| format!("linux.readonlyPaths: {p}: {e}"))?;
    }
    for p in masked {
        let Some(d) = find(root, p).map_err(|e| format!("linux.maskedPaths: {e}"))? else {
            continue;
        };
        let dir = d
            .inode()
            .stat()
            .map_err(|e| format!("linux.maskedPaths: {p}: {e}"))?
            .is_dir();
        let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        table
            .mount_with_data(
                &d,
                p.as_bytes(),
                empty_node(dir),
                flags,
                "tmpfs",
                "tmpfs",
                Vec::new(),
            )
            .map_err(|e| format!("linux.maskedPaths: {p}: {e}"))?;
    }
    Ok(())
}
