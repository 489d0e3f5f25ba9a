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
/// written through a descriptor the process `caller` gives opened
/// (`proc_uid_map_write`): the opener must be in the namespace or its parent and
/// hold CAP_SYS_ADMIN over it; beyond its own id, both the opener and the writer
/// need CAP_SETUID (CAP_SETGID) over the parent.
pub fn map_file(
    ino: u64,
    owner: (u32, u32),
    kind: MapKind,
    target: CredsOf,
    caller: CredsOf,
) -> Arc<dyn Inode> {
    let (t2, c2) = (target.clone(), caller.clone());
    GenFile::writable_as_opened(
        ino,
        0o644,
        owner,
        Arc::new(move || {
            let ns = target()?.user_ns().clone();
            let reader = caller()?.user_ns().clone();
            Ok(ns.show_map(kind, &reader).into_bytes())
        }),
        Arc::new(move || {
            // Linux checks the opener's credentials (`file->f_cred`); only the
            // privileged case also asks the writer.
            let opener = c2()?;
            let (target, writer) = (t2.clone(), c2.clone());
            Ok(Arc::new(move |buf: &[u8]| {
                let ns = target()?.user_ns().clone();
                let own = opener.user_ns();
                let parent = ns.parent.clone().ok_or(Errno::EPERM)?;
                if !Arc::ptr_eq(own, &ns) && !Arc::ptr_eq(own, &parent) {
                    return Err(Errno::EPERM);
                }
                if !opener.has_cap_in(&ns, CAP_SYS_ADMIN) {
                    return Err(Errno::EPERM);
                }
                let cap = match kind {
                    MapKind::Uid => CAP_SETUID,
                    MapKind::Gid => CAP_SETGID,
                };
                let privileged =
                    opener.has_cap_in(&parent, cap) && writer()?.has_cap_in(&parent, cap);
                ns.write_map(kind, buf, privileged, (opener.euid, opener.egid))
            }))
        }),
    )
}

/// `/proc/PID/setgroups`: `allow` or `deny`, changed as [`userns::UserNs::write_setgroups`]
/// says; opening it for writing needs CAP_SYS_ADMIN over the namespace
/// (`proc_setgroups_open`), the write itself asks nothing more.
pub fn setgroups_file(
    ino: u64,
    owner: (u32, u32),
    target: CredsOf,
    caller: CredsOf,
) -> Arc<dyn Inode> {
    let t2 = target.clone();
    GenFile::writable_as_opened(
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
        Arc::new(move || {
            let ns = t2()?.user_ns().clone();
            if !caller()?.has_cap_in(&ns, CAP_SYS_ADMIN) {
                return Err(Errno::EPERM);
            }
            Ok(Arc::new(move |buf: &[u8]| ns.write_setgroups(buf)))
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
