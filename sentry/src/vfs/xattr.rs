//! Extended attributes: the limits and namespace rules the syscalls share, and
//! [`XattrMap`], the store of the filesystems that keep attributes in sentry
//! memory (tmpfs, the overlay's upper layer).

use std::collections::BTreeMap;

use crate::errno::{Errno, SysResult};

pub use abi::limits::XATTR_NAME_MAX;
/// Largest attribute value (`XATTR_SIZE_MAX`).
pub const XATTR_SIZE_MAX: usize = 65536;
/// Largest name list `listxattr` returns (`XATTR_LIST_MAX`).
pub const XATTR_LIST_MAX: usize = 65536;
/// `XATTR_CREATE`: fail with `EEXIST` if the attribute exists.
pub const XATTR_CREATE: i32 = 1;
/// `XATTR_REPLACE`: fail with `ENODATA` unless the attribute exists.
pub const XATTR_REPLACE: i32 = 2;

/// Bytes of names and values one in-memory inode may hold: the sentry's memory is
/// the app's to bound, so a loop of `setxattr` meets `ENOSPC` as on a full disk.
const MAX_BYTES_PER_INODE: usize = 1 << 20;

/// The namespaces a filesystem with no native store of its own supports, as
/// Linux's tmpfs: `user.`, `trusted.` and `security.`, and of `system.` the two
/// POSIX ACLs (checked and applied by the syscall layer, [`crate::vfs::acl`]).
const PREFIXES: [&[u8]; 3] = [b"user.", b"trusted.", b"security."];

/// Checks that an in-memory filesystem can hold `name`: `EINVAL` for a bare
/// namespace prefix, `EOPNOTSUPP` outside the supported namespaces (as Linux's
/// handler lookup answers).
pub fn check_name(name: &[u8]) -> SysResult<()> {
    if crate::vfs::acl::is_acl_name(name) {
        return Ok(());
    }
    for p in PREFIXES {
        if name.starts_with(p) {
            return if name.len() > p.len() {
                Ok(())
            } else {
                Err(Errno::EINVAL)
            };
        }
    }
    Err(Errno::EOPNOTSUPP)
}

/// Attributes of one inode, in name order (as Linux's tmpfs lists them).
#[derive(Clone, Default)]
pub struct XattrMap {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    bytes: usize,
}

impl XattrMap {
    /// The value of `name`; `ENODATA` if unset, `EOPNOTSUPP` outside the supported
    /// namespaces.
    pub fn get(&self, name: &[u8]) -> SysResult<Vec<u8>> {
        check_name(name)?;
        self.map.get(name).cloned().ok_or(Errno::ENODATA)
    }

    /// Sets `name` with `XATTR_CREATE`/`XATTR_REPLACE` semantics.
    pub fn set(&mut self, name: &[u8], value: &[u8], flags: i32) -> SysResult<()> {
        check_name(name)?;
        let old = self.map.get(name).map(|v| v.len());
        match old {
            Some(_) if flags & XATTR_CREATE != 0 => return Err(Errno::EEXIST),
            None if flags & XATTR_REPLACE != 0 => return Err(Errno::ENODATA),
            _ => {}
        }
        let freed = old.map(|l| l + name.len()).unwrap_or(0);
        let bytes = self.bytes - freed + name.len() + value.len();
        if bytes > MAX_BYTES_PER_INODE {
            return Err(Errno::ENOSPC);
        }
        self.map.insert(name.to_vec(), value.to_vec());
        self.bytes = bytes;
        Ok(())
    }

    /// Removes `name`; `ENODATA` if unset.
    pub fn remove(&mut self, name: &[u8]) -> SysResult<()> {
        check_name(name)?;
        let v = self.map.remove(name).ok_or(Errno::ENODATA)?;
        self.bytes -= name.len() + v.len();
        Ok(())
    }

    /// The POSIX ACL held under `name` ([`crate::vfs::acl::ACCESS`] or
    /// [`crate::vfs::acl::DEFAULT`]), if any.
    pub fn acl(&self, name: &[u8]) -> Option<crate::vfs::acl::Acl> {
        let v = self.map.get(name)?;
        crate::vfs::acl::Acl::from_xattr(v).ok().flatten()
    }

    /// Every name, in order.
    pub fn names(&self) -> Vec<Vec<u8>> {
        self.map.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_replace_and_remove_follow_the_flags() {
        let mut m = XattrMap::default();
        assert_eq!(m.get(b"user.a"), Err(Errno::ENODATA));
        assert_eq!(m.set(b"user.a", b"1", XATTR_REPLACE), Err(Errno::ENODATA));
        m.set(b"user.a", b"1", XATTR_CREATE).unwrap();
        assert_eq!(m.set(b"user.a", b"2", XATTR_CREATE), Err(Errno::EEXIST));
        m.set(b"user.a", b"22", XATTR_REPLACE).unwrap();
        assert_eq!(m.get(b"user.a").unwrap(), b"22");
        m.set(b"trusted.b", b"", 0).unwrap();
        assert_eq!(m.names(), vec![b"trusted.b".to_vec(), b"user.a".to_vec()]);
        m.remove(b"user.a").unwrap();
        assert_eq!(m.remove(b"user.a"), Err(Errno::ENODATA));
        assert_eq!(m.set(b"other.x", b"", 0), Err(Errno::EOPNOTSUPP));
        assert_eq!(m.set(b"user.", b"", 0), Err(Errno::EINVAL));
    }

    #[test]
    fn an_inode_holds_a_bounded_amount() {
        let mut m = XattrMap::default();
        let v = vec![0u8; XATTR_SIZE_MAX];
        let mut i = 0;
        let err = loop {
            if let Err(e) = m.set(format!("user.{i}").as_bytes(), &v, 0) {
                break e;
            }
            i += 1;
        };
        assert_eq!(err, Errno::ENOSPC);
        // Replacing a value with a smaller one still works at the limit.
        m.set(b"user.0", b"x", XATTR_REPLACE).unwrap();
    }
}
