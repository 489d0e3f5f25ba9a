//! The user-namespace files of `/proc/PID` (`uid_map`, `gid_map`, `setgroups`) and
//! `/proc/sys/user/max_user_namespaces`, over [`crate::creds::userns`]. Whose
//! credentials are the target's and whose the caller's is given by the caller
//! (procfs knows the processes).

use std::sync::Arc;

use crate::creds::userns::{self, MapKind};
use crate::creds::{Credentials, CAP_SETGID, CAP_SETUID, CAP_SYS_ADMIN};
use crate::errno::{Errno, SysResult};
use crate::vfs::Inode;

use super::node::GenFile;

/// Credentials of a process, looked up when the file is read or written.
pub type CredsOf = Arc<dyn Fn() -> SysResult<Credentials> + Send + Sync>;

/// `/proc/PID/uid_map` or `gid_map` of the process `target` gives, read and
/// written by the process `caller` gives (`proc_uid_map_write`): the caller must
/// be in the namespace or its parent and hold CAP_SYS_ADMIN over it; beyond its
/// own id, CAP_SETUID (CAP_SETGID) over the parent.
pub fn map_file(
    ino: u64,
    owner: (u32, u32),
    kind: MapKind,
    target: CredsOf,
    caller: CredsOf,
) -> Arc<dyn Inode> {
    let (t2, c2) = (target.clone(), caller.clone());
    GenFile::writable(
        ino,
        0o644,
        owner,
        Arc::new(move || {
            let ns = target()?.user_ns().clone();
            let reader = caller()?.user_ns().clone();
            Ok(ns.show_map(kind, &reader).into_bytes())
        }),
        Arc::new(move |buf: &[u8]| {
            let ns = t2()?.user_ns().clone();
            let w = c2()?;
            let own = w.user_ns();
            let parent = ns.parent.clone().ok_or(Errno::EPERM)?;
            if !Arc::ptr_eq(own, &ns) && !Arc::ptr_eq(own, &parent) {
                return Err(Errno::EPERM);
            }
            if !w.has_cap_in(&ns, CAP_SYS_ADMIN) {
                return Err(Errno::EPERM);
            }
            let cap = match kind {
                MapKind::Uid => CAP_SETUID,
                MapKind::Gid => CAP_SETGID,
            };
            let privileged = w.has_cap_in(&parent, cap);
            ns.write_map(kind, buf, privileged, (w.euid, w.egid))
        }),
    )
}

/// `/proc/PID/setgroups`: `allow` or `deny`, changed as [`userns::UserNs::write_setgroups`]
/// says by a caller in the namespace or its parent with CAP_SYS_ADMIN over it.
pub fn setgroups_file(
    ino: u64,
    owner: (u32, u32),
    target: CredsOf,
    caller: CredsOf,
) -> Arc<dyn Inode> {
    let t2 = target.clone();
    GenFile::writable(
        ino,
        0o644,
        owner,
        Arc::new(move || {
            let ns = target()?.user_ns().clone();
            Ok(if ns.setgroups_allowed() {
                b"allow\n".to_vec()
            } else {
                b"deny\n".to_vec()
            })
        }),
        Arc::new(move |buf: &[u8]| {
            let ns = t2()?.user_ns().clone();
            let w = caller()?;
            let own = w.user_ns();
            let in_or_above =
                Arc::ptr_eq(own, &ns) || ns.parent.as_ref().is_some_and(|p| Arc::ptr_eq(own, p));
            if !in_or_above || !w.has_cap_in(&ns, CAP_SYS_ADMIN) {
                return Err(Errno::EPERM);
            }
            ns.write_setgroups(buf)
        }),
    )
}

/// `/proc/sys/user/max_user_namespaces`: the sandbox's limit on user namespaces
/// made inside it, written by its initial namespace's root (0 forbids new ones).
pub fn max_user_namespaces(ino: u64, caller: CredsOf) -> Arc<dyn Inode> {
    GenFile::int_setting(
        ino,
        || Ok(userns::max_namespaces()),
        move |n: i64| {
            if !(0..=i32::MAX as i64).contains(&n) {
                return Err(Errno::EINVAL);
            }
            if caller()?.user_ns.is_some() {
                return Err(Errno::EPERM);
            }
            userns::set_max_namespaces(n as usize);
            Ok(())
        },
    )
}
