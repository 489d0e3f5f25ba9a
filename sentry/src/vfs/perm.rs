//! Discretionary access checks, as Linux's `generic_permission`: owner, group and
//! other bits, with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH honoured.

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::Credentials;
use crate::vfs::Stat;

/// Read permission.
pub const MAY_READ: u32 = 4;
/// Write permission.
pub const MAY_WRITE: u32 = 2;
/// Execute or search permission.
pub const MAY_EXEC: u32 = 1;

const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_DAC_READ_SEARCH: u32 = 2;

/// Checks `want` (`MAY_*` bits) on a file with attributes `st` for `creds`, using
/// the filesystem ids (or the real ids, for `access(2)`).
pub fn check(creds: &Credentials, st: &Stat, want: u32, real_ids: bool) -> SysResult<()> {
    let (uid, gid) = if real_ids {
        (creds.uid, creds.gid)
    } else {
        (creds.fsuid, creds.fsgid)
    };
    let mode = st.mode;
    let bits = if st.uid == uid {
        (mode >> 6) & 7
    } else if st.gid == gid || creds.groups.contains(&st.gid) {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    if bits & want == want {
        return Ok(());
    }
    // Capabilities follow the effective set; for `access` as root, Linux likewise
    // grants root's override to the real uid 0.
    let privileged = |cap: u32| creds.has_cap(cap) && (!real_ids || creds.uid == 0);
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

#[cfg(test)]
mod tests {
    use super::*;

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
