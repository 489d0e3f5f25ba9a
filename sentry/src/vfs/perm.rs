//! Discretionary access checks, as Linux's `generic_permission`: owner, group and
//! other bits, with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH honoured.

use crate::creds::{Credentials, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID};
use crate::errno::{Errno, SysResult};
use crate::vfs::{Dentry, Inode, Owner, Stat};

/// Read permission.
pub const MAY_READ: u32 = 4;
/// Write permission.
pub const MAY_WRITE: u32 = 2;
/// Execute or search permission.
pub const MAY_EXEC: u32 = 1;

/// Checks `want` (`MAY_*` bits) on a file with attributes `st` for `creds`, using
/// the filesystem ids (or the real ids, for `access(2)`), by the mode bits alone
/// (objects that keep no ACL: message queues).
pub fn check(creds: &Credentials, st: &Stat, want: u32, real_ids: bool) -> SysResult<()> {
    check_acl(creds, st, None, want, real_ids)
}

/// As [`check`] for `inode` (whose attributes are `st`), honouring its POSIX
/// access ACL (Linux's `acl_permission_check`): a caller other than the owner
/// is judged by the ACL's entries when the file has one and group bits set.
pub fn check_on(
    creds: &Credentials,
    st: &Stat,
    inode: &dyn Inode,
    want: u32,
    real_ids: bool,
) -> SysResult<()> {
    check_acl(creds, st, Some(inode), want, real_ids)
}

fn check_acl(
    creds: &Credentials,
    st: &Stat,
    inode: Option<&dyn Inode>,
    want: u32,
    real_ids: bool,
) -> SysResult<()> {
    let (uid, gid) = if real_ids {
        (creds.uid, creds.gid)
    } else {
        (creds.fsuid, creds.fsgid)
    };
    let mode = st.mode;
    let owner = st.uid == uid;
    let acl = match inode {
        Some(i) if !owner && mode & 0o070 != 0 => i.posix_acl(false),
        _ => None,
    };
    let granted = if let Some(acl) = acl {
        acl.permits(creds, st, want, real_ids)
    } else {
        let bits = if owner {
            (mode >> 6) & 7
        } else if st.gid == gid || creds.groups.contains(&st.gid) {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        bits & want == want
    };
    if granted {
        return Ok(());
    }
    // Capabilities follow the effective set. `access` checks as the real ids would:
    // Linux gives it the permitted set when the real uid is 0 and none otherwise
    // (unless SECBIT_NO_SETUID_FIXUP, which keeps the effective set).
    let privileged = |cap: u32| {
        // Over the caller's user namespace, for a file it maps the owners of.
        if !real_ids || creds.secure(crate::creds::SECBIT_NO_SETUID_FIXUP) {
            creds.has_cap_over(cap, st.uid, st.gid)
        } else {
            let ns = creds.user_ns();
            Some(creds.uid) == creds.root_uid()
                && cap < 64
                && creds.cap_permitted & (1 << cap) != 0
                && ns.uid_up(st.uid).is_some()
                && ns.gid_up(st.gid).is_some()
        }
    };
    if privileged(CAP_DAC_OVERRIDE) {
        // Execute is granted only if some execute bit is set, or for directories.
        if want & MAY_EXEC == 0 || st.is_dir() || mode & 0o111 != 0 {
            return Ok(());
        }
    }
    if privileged(CAP_DAC_READ_SEARCH)
        && want & MAY_WRITE == 0
        && (want & MAY_EXEC == 0 || st.is_dir())
    {
        return Ok(());
    }
    Err(Errno::EACCES)
}

/// May `creds` add an entry to `dir`? Write and search on it, a live directory,
/// a writable mount.
pub fn may_create(creds: &Credentials, dir: &Dentry) -> SysResult<()> {
    let st = dir.inode().stat()?;
    if st.nlink == 0 {
        return Err(Errno::ENOENT);
    }
    check_on(creds, &st, &**dir.inode(), MAY_WRITE | MAY_EXEC, false)?;
    dir.check_writable()
}

/// May `creds` remove (or rename away) `victim` from `dir`? As [`may_create`],
/// and in a sticky directory only the owner of the entry or of the directory, or
/// CAP_FOWNER.
pub fn may_delete(creds: &Credentials, dir: &Dentry, victim: &Stat) -> SysResult<()> {
    let st = dir.inode().stat()?;
    check_on(creds, &st, &**dir.inode(), MAY_WRITE | MAY_EXEC, false)?;
    if st.mode & libc::S_ISVTX != 0
        && creds.fsuid != victim.uid
        && creds.fsuid != st.uid
        && !creds.has_cap_over(CAP_FOWNER, victim.uid, victim.gid)
    {
        return Err(Errno::EPERM);
    }
    dir.check_writable()
}

/// True if `gid` is the caller's fsgid or a supplementary group.
/// The mode a regular file keeps after `creds` write or truncate it, if that differs
/// from `st`'s: without CAP_FSETID, set-user-id always goes, and set-group-id goes when
/// it means "run as the group" (group-executable) or the writer is not in the group.
pub fn mode_after_write(creds: &Credentials, st: &Stat) -> Option<u32> {
    if !st.is_regular() || st.mode & (libc::S_ISUID | libc::S_ISGID) == 0 {
        return None;
    }
    if creds.has_cap(CAP_FSETID) {
        return None;
    }
    let mut mode = st.mode & 0o7777;
    mode &= !libc::S_ISUID;
    if mode & libc::S_ISGID != 0 && (mode & libc::S_IXGRP != 0 || !in_group(creds, st.gid)) {
        mode &= !libc::S_ISGID;
    }
    (mode != st.mode & 0o7777).then_some(mode)
}

pub fn in_group(creds: &Credentials, gid: u32) -> bool {
    creds.fsgid == gid || creds.groups.contains(&gid)
}

/// Owner and final mode of a new object in a directory with attributes `dir`:
/// the creator's fsuid, and the directory's group when it is set-gid (new
/// directories then inherit the bit); a set-gid bit on a group-executable file
/// the creator is not in the group of is dropped unless CAP_FSETID.
pub fn new_owner(
    creds: &Credentials,
    dir: &Stat,
    mode: u32,
    is_dir: bool,
) -> SysResult<(Owner, u32)> {
    let mut mode = mode;
    let gid = if dir.mode & libc::S_ISGID != 0 {
        if is_dir {
            mode |= libc::S_ISGID;
        }
        dir.gid
    } else {
        creds.fsgid
    };
    if !is_dir
        && mode & libc::S_ISGID != 0
        && mode & libc::S_IXGRP != 0
        && !in_group(creds, gid)
        && !creds.has_cap(CAP_FSETID)
    {
        mode &= !libc::S_ISGID;
    }
    Ok((
        Owner {
            uid: creds.fsuid,
            gid,
        },
        mode,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::memfile::MemoryFile;
    use crate::fs::tmpfs::Tmpfs;
    use crate::vfs::mount::MountTable;
    use crate::vfs::Inode;

    #[test]
    fn sticky_setgid_and_readonly() {
        let alice = Credentials::new(1000, 1000, vec![]);
        let bob = Credentials::new(1001, 1001, vec![]);
        let root = Credentials::new(0, 0, vec![]);
        let top = Tmpfs::new_root(MemoryFile::new(), 0o1777, Owner { uid: 0, gid: 0 }, 0);
        let d = Dentry::new_root(top.clone());
        let victim = Stat {
            mode: libc::S_IFREG | 0o644,
            uid: 1000,
            gid: 1000,
            ..Default::default()
        };
        assert!(may_create(&bob, &d).is_ok(), "1777 lets anyone create");
        assert!(may_delete(&alice, &d, &victim).is_ok(), "the owner may");
        assert_eq!(may_delete(&bob, &d, &victim), Err(Errno::EPERM), "sticky");
        assert!(may_delete(&root, &d, &victim).is_ok(), "CAP_FOWNER");
        let priv_dir = top
            .mkdir(
                b"p",
                0o755,
                Owner {
                    uid: 1000,
                    gid: 1000,
                },
            )
            .unwrap();
        let pd = d.add_child(b"p", priv_dir).unwrap();
        assert_eq!(may_create(&bob, &pd), Err(Errno::EACCES));
        assert!(may_create(&alice, &pd).is_ok());
        // Set-gid directories hand down their group (and the bit, to directories).
        let sg = Stat {
            mode: libc::S_IFDIR | 0o2775,
            uid: 0,
            gid: 50,
            ..Default::default()
        };
        assert_eq!(
            new_owner(&alice, &sg, 0o755, true).unwrap(),
            (Owner { uid: 1000, gid: 50 }, 0o2755)
        );
        assert_eq!(
            new_owner(&alice, &sg, 0o2755, false).unwrap(),
            (Owner { uid: 1000, gid: 50 }, 0o755),
            "not in group 50: set-gid dropped"
        );
        let plain = Stat {
            mode: libc::S_IFDIR | 0o755,
            ..Default::default()
        };
        assert_eq!(new_owner(&alice, &plain, 0o644, false).unwrap().0.gid, 1000);
        // A read-only mount refuses even root.
        let table = MountTable::new();
        let inner = Tmpfs::new_root(MemoryFile::new(), 0o777, Owner { uid: 0, gid: 0 }, 0);
        let ro = table
            .mount(&pd, b"/p", inner, libc::MS_RDONLY, "tmpfs", "tmpfs")
            .unwrap();
        assert_eq!(may_create(&root, &ro), Err(Errno::EROFS));
    }

    #[test]
    fn dac() {
        let user = Credentials::new(1000, 1000, vec![50]);
        let root = Credentials::new(0, 0, vec![]);
        let f = |mode: u32, uid, gid| Stat {
            mode: libc::S_IFREG | mode,
            uid,
            gid,
            ..Default::default()
        };
        assert!(check(&user, &f(0o600, 1000, 0), MAY_READ | MAY_WRITE, false).is_ok());
        assert!(check(&user, &f(0o060, 1, 50), MAY_READ, false).is_ok());
        assert_eq!(
            check(&user, &f(0o604, 1, 1), MAY_WRITE, false),
            Err(Errno::EACCES)
        );
        assert!(check(&user, &f(0o604, 1, 1), MAY_READ, false).is_ok());
        assert_eq!(
            check(&user, &f(0o077, 1000, 1), MAY_READ, false),
            Err(Errno::EACCES),
            "owner bits win"
        );
        assert!(check(&root, &f(0o000, 1, 1), MAY_READ | MAY_WRITE, false).is_ok());
        assert_eq!(
            check(&root, &f(0o600, 1, 1), MAY_EXEC, false),
            Err(Errno::EACCES)
        );
        assert!(check(&root, &f(0o001, 1, 1), MAY_EXEC, false).is_ok());
    }
}
