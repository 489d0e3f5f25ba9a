//! POSIX access control lists (acl(5)) as Linux keeps them on tmpfs: the
//! `system.posix_acl_access` and `system.posix_acl_default` attributes in their
//! xattr form, checked when set, kept in step with the mode (a set access ACL
//! moves the group bits to its mask, `chmod` moves the mask), honoured by the
//! permission check, and inherited by new files from their directory's default.

use crate::creds::Credentials;
use crate::errno::{Errno, SysResult};
use crate::vfs::Stat;

/// The access ACL's attribute name.
pub const ACCESS: &[u8] = b"system.posix_acl_access";
/// The default ACL's attribute name (directories only).
pub const DEFAULT: &[u8] = b"system.posix_acl_default";

/// `POSIX_ACL_XATTR_VERSION`.
const VERSION: u32 = 2;
/// `ACL_UNDEFINED_ID`: the id field of entries that name no one.
const UNDEFINED_ID: u32 = u32::MAX;

/// `ACL_USER_OBJ`: the owner.
pub const USER_OBJ: u16 = 0x01;
/// `ACL_USER`: a named user.
pub const USER: u16 = 0x02;
/// `ACL_GROUP_OBJ`: the owning group.
pub const GROUP_OBJ: u16 = 0x04;
/// `ACL_GROUP`: a named group.
pub const GROUP: u16 = 0x08;
/// `ACL_MASK`: the most any group-class entry grants.
pub const MASK: u16 = 0x10;
/// `ACL_OTHER`: everyone else.
pub const OTHER: u16 = 0x20;

/// One entry: tag, permission bits (read 4, write 2, execute 1), id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `ACL_*` tag.
    pub tag: u16,
    /// rwx bits.
    pub perm: u16,
    /// User or group id of `USER` and `GROUP` entries.
    pub id: u32,
}

/// An ACL, its entries in the order they were given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl(pub Vec<Entry>);

/// Is `name` one of the two ACL attributes?
pub fn is_acl_name(name: &[u8]) -> bool {
    name == ACCESS || name == DEFAULT
}

impl Acl {
    /// Parses the xattr form (Linux's `posix_acl_from_xattr`): `Ok(None)` for an
    /// empty value or one with no entries (which removes the ACL), `EOPNOTSUPP`
    /// for another version, `EINVAL` for a torn or unknown entry.
    pub fn from_xattr(v: &[u8]) -> SysResult<Option<Acl>> {
        if v.is_empty() {
            return Ok(None);
        }
        if v.len() < 4 {
            return Err(Errno::EINVAL);
        }
        if u32::from_le_bytes([v[0], v[1], v[2], v[3]]) != VERSION {
            return Err(Errno::EOPNOTSUPP);
        }
        let body = &v[4..];
        if !body.len().is_multiple_of(8) {
            return Err(Errno::EINVAL);
        }
        if body.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(body.len() / 8);
        for e in body.chunks_exact(8) {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let perm = u16::from_le_bytes([e[2], e[3]]);
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            let id = match tag {
                USER_OBJ | GROUP_OBJ | MASK | OTHER => UNDEFINED_ID,
                USER | GROUP if id != UNDEFINED_ID => id,
                _ => return Err(Errno::EINVAL),
            };
            out.push(Entry { tag, perm, id });
        }
        Ok(Some(Acl(out)))
    }

    /// The xattr form.
    pub fn to_xattr(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + 8 * self.0.len());
        v.extend_from_slice(&VERSION.to_le_bytes());
        for e in &self.0 {
            v.extend_from_slice(&e.tag.to_le_bytes());
            v.extend_from_slice(&e.perm.to_le_bytes());
            v.extend_from_slice(&e.id.to_le_bytes());
        }
        v
    }

    /// Linux's `posix_acl_valid`: owner, named users, owning group, named groups,
    /// the mask (needed when there are named entries), other, in that order;
    /// only rwx bits. `EINVAL` otherwise.
    pub fn validate(&self) -> SysResult<()> {
        // 0: done; otherwise the tag expected next.
        let mut state = USER_OBJ;
        let mut needs_mask = false;
        for e in &self.0 {
            if e.perm & !7 != 0 {
                return Err(Errno::EINVAL);
            }
            state = match (e.tag, state) {
                (USER_OBJ, USER_OBJ) => USER,
                (USER, USER) => {
                    needs_mask = true;
                    USER
                }
                (GROUP_OBJ, USER) => GROUP,
                (GROUP, GROUP) => {
                    needs_mask = true;
                    GROUP
                }
                (MASK, GROUP) => OTHER,
                (OTHER, OTHER) => 0,
                (OTHER, GROUP) if !needs_mask => 0,
                _ => return Err(Errno::EINVAL),
            };
        }
        if state == 0 {
            Ok(())
        } else {
            Err(Errno::EINVAL)
        }
    }

    /// Linux's `posix_acl_equiv_mode`: the permission bits this ACL gives the mode
    /// (owner, mask or else owning group, other), and whether the mode alone can
    /// say it all (no named entries and no mask).
    pub fn equiv_mode(&self, mode: u32) -> (u32, bool) {
        let mut bits = 0u32;
        let mut equiv = true;
        for e in &self.0 {
            let p = (e.perm & 7) as u32;
            match e.tag {
                USER_OBJ => bits |= p << 6,
                GROUP_OBJ => bits |= p << 3,
                OTHER => bits |= p,
                MASK => {
                    bits = (bits & !0o070) | (p << 3);
                    equiv = false;
                }
                _ => equiv = false,
            }
        }
        ((mode & !0o777) | bits, equiv)
    }

    /// Linux's `posix_acl_chmod_masq`: the owner, other and mask (or, without
    /// one, owning group) entries take the new mode's bits.
    pub fn chmod(&mut self, mode: u32) {
        let mut has_mask = false;
        for e in self.0.iter_mut() {
            match e.tag {
                USER_OBJ => e.perm = ((mode >> 6) & 7) as u16,
                OTHER => e.perm = (mode & 7) as u16,
                MASK => {
                    e.perm = ((mode >> 3) & 7) as u16;
                    has_mask = true;
                }
                _ => {}
            }
        }
        if !has_mask {
            for e in self.0.iter_mut().filter(|e| e.tag == GROUP_OBJ) {
                e.perm = ((mode >> 3) & 7) as u16;
            }
        }
    }

    /// Linux's `posix_acl_create_masq`: a directory's default ACL applied to a
    /// new file's requested `mode`. Returns the file's mode and, unless the mode
    /// says it all, its access ACL.
    pub fn create(&self, mode: u32) -> (u32, Option<Acl>) {
        let mut acl = self.clone();
        let mut mode = mode;
        let mut equiv = true;
        let mut mask_at = None;
        let mut group_at = None;
        for (i, e) in acl.0.iter_mut().enumerate() {
            match e.tag {
                USER_OBJ => {
                    e.perm &= ((mode >> 6) & 7) as u16;
                    mode &= ((e.perm as u32) << 6) | !0o700;
                }
                USER | GROUP => equiv = false,
                GROUP_OBJ => group_at = Some(i),
                OTHER => {
                    e.perm &= (mode & 7) as u16;
                    mode &= (e.perm as u32) | !0o007;
                }
                MASK => {
                    mask_at = Some(i);
                    equiv = false;
                }
                _ => {}
            }
        }
        if let Some(i) = mask_at.or(group_at) {
            let e = &mut acl.0[i];
            e.perm &= ((mode >> 3) & 7) as u16;
            mode &= ((e.perm as u32) << 3) | !0o070;
        }
        (mode, (!equiv).then_some(acl))
    }

    /// Linux's `posix_acl_permission` for a caller that does not own the file
    /// (the owner's bits are the mode's): whether `creds` (filesystem or, with
    /// `real_ids`, real ids) get `want` from this ACL on a file owned by group
    /// `st.gid`.
    pub fn permits(&self, creds: &Credentials, st: &Stat, want: u32, real_ids: bool) -> bool {
        let (uid, gid) = if real_ids {
            (creds.uid, creds.gid)
        } else {
            (creds.fsuid, creds.fsgid)
        };
        let in_group = |g: u32| g == gid || creds.groups.contains(&g);
        let want = (want & 7) as u16;
        let mask = self.0.iter().find(|e| e.tag == MASK).map(|e| e.perm);
        // A named user or a matching group entry is limited by the mask.
        let masked = |perm: u16| perm & mask.unwrap_or(7) & want == want;
        let mut found = false;
        for e in &self.0 {
            match e.tag {
                USER_OBJ if st.uid == uid => return e.perm & want == want,
                USER if e.id == uid => return masked(e.perm),
                GROUP_OBJ if in_group(st.gid) => {
                    found = true;
                    if e.perm & want == want {
                        return masked(e.perm);
                    }
                }
                GROUP if in_group(e.id) => {
                    found = true;
                    if e.perm & want == want {
                        return masked(e.perm);
                    }
                }
                OTHER => return !found && e.perm & want == want,
                _ => {}
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(tag: u16, perm: u16, id: u32) -> Entry {
        Entry { tag, perm, id }
    }

    fn full() -> Acl {
        Acl(vec![
            e(USER_OBJ, 7, UNDEFINED_ID),
            e(USER, 6, 1000),
            e(GROUP_OBJ, 5, UNDEFINED_ID),
            e(GROUP, 4, 2000),
            e(MASK, 6, UNDEFINED_ID),
            e(OTHER, 0, UNDEFINED_ID),
        ])
    }

    #[test]
    fn xattr_form_round_trips_and_checks() {
        let a = full();
        let v = a.to_xattr();
        assert_eq!(Acl::from_xattr(&v).unwrap(), Some(a.clone()));
        assert_eq!(Acl::from_xattr(&v[..4]).unwrap(), None);
        assert_eq!(Acl::from_xattr(&v[..7]), Err(Errno::EINVAL));
        let mut bad = v.clone();
        bad[0] = 1;
        assert_eq!(Acl::from_xattr(&bad), Err(Errno::EOPNOTSUPP));
        a.validate().unwrap();
        // Named entries without a mask, a mask out of order, bad bits.
        let mut no_mask = a.clone();
        no_mask.0.remove(4);
        assert_eq!(no_mask.validate(), Err(Errno::EINVAL));
        let mut swapped = a.clone();
        swapped.0.swap(0, 2);
        assert_eq!(swapped.validate(), Err(Errno::EINVAL));
        let mut bits = a;
        bits.0[5].perm = 8;
        assert_eq!(bits.validate(), Err(Errno::EINVAL));
        let minimal = Acl(vec![
            e(USER_OBJ, 6, UNDEFINED_ID),
            e(GROUP_OBJ, 4, UNDEFINED_ID),
            e(OTHER, 4, UNDEFINED_ID),
        ]);
        minimal.validate().unwrap();
        assert_eq!(minimal.equiv_mode(0o100000), (0o100644, true));
    }

    #[test]
    fn mask_limits_and_chmod_moves_it() {
        let mut a = full();
        assert_eq!(a.equiv_mode(0o100000), (0o100760, false));
        let st = Stat {
            uid: 0,
            gid: 0,
            ..Default::default()
        };
        let user = Credentials::new(1000, 1000, vec![]);
        assert!(a.permits(&user, &st, 6, false));
        a.chmod(0o740);
        assert!(a.permits(&user, &st, 4, false));
        assert!(!a.permits(&user, &st, 2, false));
        let (mode, acl) = full().create(0o666);
        assert_eq!(mode, 0o660);
        assert!(acl.is_some());
    }
}
