//! User namespaces (user_namespaces(7)): a namespace maps the ids its processes
//! see to the sandbox's own ids ("kernel ids", what [`Credentials`](super::Credentials)
//! and file owners hold) through its `uid_map` and `gid_map`, written once each;
//! its creator's effective ids own it, and a process holds capabilities only
//! over the namespaces it is in or that it (or a namespace it is in) owns below.
//!
//! The sandbox's first user namespace is [`init`]: every id maps to itself.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use crate::errno::{Errno, SysResult};

/// The deepest level a namespace may be made from (the initial namespace is level
/// 0): Linux refuses a parent past 32, so the deepest namespace is at 33.
pub const MAX_LEVEL: u32 = 32;
/// The most extents a map may hold (`UID_GID_MAP_MAX_EXTENTS`).
pub const MAX_EXTENTS: usize = 340;
/// The id shown for an id with no mapping (`/proc/sys/kernel/overflowuid`).
pub const OVERFLOW_ID: u32 = 65534;
/// The inode number of the initial user namespace (Linux's `PROC_USER_INIT_INO`).
pub const INIT_ID: u64 = 0xEFFF_FFFD;
/// `/proc/sys/user/max_user_namespaces` at boot: Linux's default for a machine of
/// this size is in the tens of thousands.
pub const DEFAULT_MAX: usize = 63_457;

/// One line of a map: `count` ids from `first` (in the namespace) map to `lower`
/// onwards (kernel ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// First id inside the namespace.
    pub first: u32,
    /// First kernel id it maps to.
    pub lower: u32,
    /// How many.
    pub count: u32,
}

/// A `uid_map` or `gid_map`, with its lower ids already in kernel ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdMap(pub Vec<Extent>);

impl IdMap {
    /// The kernel id of `id` inside, if mapped.
    pub fn down(&self, id: u32) -> Option<u32> {
        self.0.iter().find_map(|e| {
            let off = id.checked_sub(e.first)?;
            (off < e.count).then(|| e.lower + off)
        })
    }

    /// The id inside of kernel id `kid`, if mapped.
    pub fn up(&self, kid: u32) -> Option<u32> {
        self.0.iter().find_map(|e| {
            let off = kid.checked_sub(e.lower)?;
            (off < e.count).then(|| e.first + off)
        })
    }
}

/// Which map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// `uid_map`.
    Uid,
    /// `gid_map`.
    Gid,
}

/// A user namespace.
pub struct UserNs {
    /// The `/proc/PID/ns/user` inode number.
    pub id: u64,
    /// The namespace it was made in (`None` for the initial one).
    pub parent: Option<Arc<UserNs>>,
    /// Nesting depth (0 for the initial namespace).
    pub level: u32,
    /// The creator's effective uid and gid (kernel ids).
    pub owner: (u32, u32),
    uid_map: Mutex<Option<IdMap>>,
    gid_map: Mutex<Option<IdMap>>,
    setgroups_allowed: AtomicBool,
}

impl std::fmt::Debug for UserNs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserNs({})", self.id)
    }
}

impl PartialEq for UserNs {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}
impl Eq for UserNs {}

static INIT: LazyLock<Arc<UserNs>> = LazyLock::new(|| {
    let all = IdMap(vec![Extent {
        first: 0,
        lower: 0,
        count: u32::MAX,
    }]);
    Arc::new(UserNs {
        id: INIT_ID,
        parent: None,
        level: 0,
        owner: (0, 0),
        uid_map: Mutex::new(Some(all.clone())),
        gid_map: Mutex::new(Some(all)),
        setgroups_allowed: AtomicBool::new(true),
    })
});

/// Live namespaces made inside the sandbox, and the limit on them.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static MAX: AtomicUsize = AtomicUsize::new(DEFAULT_MAX);
static NEXT_ID: AtomicU64 = AtomicU64::new(0xF100_0000);

/// The sandbox's initial user namespace.
pub fn init() -> &'static Arc<UserNs> {
    &INIT
}

/// `/proc/sys/user/max_user_namespaces`.
pub fn max_namespaces() -> usize {
    MAX.load(Ordering::Relaxed)
}

/// Sets `/proc/sys/user/max_user_namespaces` (0 forbids new ones).
pub fn set_max_namespaces(n: usize) {
    MAX.store(n, Ordering::Relaxed);
}

impl Drop for UserNs {
    fn drop(&mut self) {
        if self.parent.is_some() {
            LIVE.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl UserNs {
    /// A child of `parent` owned by `owner` (kernel euid, egid), with no maps yet:
    /// `ENOSPC` past [`MAX_LEVEL`] (since Linux 4.9; `EUSERS` before) or the
    /// sandbox's limit, `EPERM` if the
    /// owner has no mapping in `parent`.
    pub fn new_child(parent: &Arc<UserNs>, owner: (u32, u32)) -> SysResult<Arc<UserNs>> {
        if parent.level > MAX_LEVEL {
            return Err(Errno::ENOSPC);
        }
        if parent.uid_up(owner.0).is_none() || parent.gid_up(owner.1).is_none() {
            return Err(Errno::EPERM);
        }
        let max = max_namespaces();
        if LIVE
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_err()
        {
            return Err(Errno::ENOSPC);
        }
        Ok(Arc::new(UserNs {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            parent: Some(parent.clone()),
            level: parent.level + 1,
            owner,
            uid_map: Mutex::new(None),
            gid_map: Mutex::new(None),
            // A namespace below one where setgroups is denied starts denied.
            setgroups_allowed: AtomicBool::new(parent.setgroups_allowed()),
        }))
    }

    fn map(&self, kind: MapKind) -> &Mutex<Option<IdMap>> {
        match kind {
            MapKind::Uid => &self.uid_map,
            MapKind::Gid => &self.gid_map,
        }
    }

    /// A copy of the map of `kind`, once written.
    pub fn get_map(&self, kind: MapKind) -> Option<IdMap> {
        self.map(kind).lock().ok().and_then(|m| m.clone())
    }

    fn down(&self, kind: MapKind, id: u32) -> Option<u32> {
        if self.parent.is_none() {
            return Some(id);
        }
        self.map(kind).lock().ok()?.as_ref()?.down(id)
    }

    fn up(&self, kind: MapKind, kid: u32) -> Option<u32> {
        if self.parent.is_none() {
            return Some(kid);
        }
        self.map(kind).lock().ok()?.as_ref()?.up(kid)
    }

    /// The kernel uid of `uid` as seen inside, if mapped (`make_kuid`).
    pub fn uid_down(&self, uid: u32) -> Option<u32> {
        self.down(MapKind::Uid, uid)
    }
    /// The kernel gid of `gid` as seen inside, if mapped.
    pub fn gid_down(&self, gid: u32) -> Option<u32> {
        self.down(MapKind::Gid, gid)
    }
    /// The uid inside of kernel uid `kuid`, if mapped.
    pub fn uid_up(&self, kuid: u32) -> Option<u32> {
        self.up(MapKind::Uid, kuid)
    }
    /// The gid inside of kernel gid `kgid`, if mapped.
    pub fn gid_up(&self, kgid: u32) -> Option<u32> {
        self.up(MapKind::Gid, kgid)
    }
    /// The uid inside of kernel uid `kuid`, or the overflow id.
    pub fn uid_shown(&self, kuid: u32) -> u32 {
        self.uid_up(kuid).unwrap_or(OVERFLOW_ID)
    }
    /// The gid inside of kernel gid `kgid`, or the overflow id.
    pub fn gid_shown(&self, kgid: u32) -> u32 {
        self.gid_up(kgid).unwrap_or(OVERFLOW_ID)
    }

    /// Whether `setgroups(2)` may ever be allowed here (`/proc/PID/setgroups`).
    pub fn setgroups_allowed(&self) -> bool {
        self.setgroups_allowed.load(Ordering::Acquire)
    }

    /// Whether `setgroups(2)` works here now: the gid map written and setgroups
    /// not denied (`userns_may_setgroups`).
    pub fn may_setgroups(&self) -> bool {
        self.setgroups_allowed() && self.map(MapKind::Gid).lock().is_ok_and(|m| m.is_some())
    }

    /// Is `self` `other` or below it?
    pub fn is_within(self: &Arc<Self>, other: &Arc<UserNs>) -> bool {
        let mut ns = Some(self);
        while let Some(n) = ns {
            if Arc::ptr_eq(n, other) {
                return true;
            }
            ns = n.parent.as_ref();
        }
        false
    }

    /// Writes `/proc/PID/setgroups`: `allow` or `deny` (a trailing newline
    /// allowed). Denying is refused once the gid map is written, allowing once
    /// denied.
    pub fn write_setgroups(&self, text: &[u8]) -> SysResult<()> {
        let t = text.strip_suffix(b"\n").unwrap_or(text);
        let allow = match t {
            b"allow" => true,
            b"deny" => false,
            _ => return Err(Errno::EINVAL),
        };
        let gid = self.map(MapKind::Gid).lock().map_err(|_| Errno::EIO)?;
        if allow {
            if !self.setgroups_allowed() {
                return Err(Errno::EPERM);
            }
        } else {
            if gid.is_some() {
                return Err(Errno::EPERM);
            }
            self.setgroups_allowed.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Writes map `kind` of a child namespace from `text` ("FIRST LOWER COUNT"
    /// lines, LOWER in the parent's ids), for a writer that may (`privileged`: holds
    /// CAP_SETUID/CAP_SETGID over the parent; `writer`: its effective kernel uid and
    /// gid). `EPERM` for a second write, an id the parent does not map, or an
    /// unprivileged writer asking for more than its own id (a gid only after
    /// setgroups is denied); `EINVAL` for a malformed or overlapping map.
    pub fn write_map(
        &self,
        kind: MapKind,
        text: &[u8],
        privileged: bool,
        writer: (u32, u32),
    ) -> SysResult<()> {
        let parent = self.parent.as_ref().ok_or(Errno::EPERM)?;
        let mut slot = self.map(kind).lock().map_err(|_| Errno::EIO)?;
        if slot.is_some() {
            return Err(Errno::EPERM);
        }
        let lines = parse_map(text)?;
        // An unprivileged owner may map exactly its own id.
        let own = lines.len() == 1 && lines[0].count == 1 && writer.0 == self.owner.0 && {
            let l = lines[0].lower;
            match kind {
                MapKind::Uid => parent.uid_down(l) == Some(writer.0),
                MapKind::Gid => !self.setgroups_allowed() && parent.gid_down(l) == Some(writer.1),
            }
        };
        if !own && !privileged {
            return Err(Errno::EPERM);
        }
        let mut out = Vec::with_capacity(lines.len());
        for e in lines {
            // Each lower range must be mapped in the parent, in one piece.
            let lo = parent.down(kind, e.lower).ok_or(Errno::EPERM)?;
            let last = e.lower + (e.count - 1);
            let hi = parent.down(kind, last).ok_or(Errno::EPERM)?;
            if hi.checked_sub(lo) != Some(e.count - 1) {
                return Err(Errno::EPERM);
            }
            out.push(Extent {
                first: e.first,
                lower: lo,
                count: e.count,
            });
        }
        *slot = Some(IdMap(out));
        Ok(())
    }

    /// The text of map `kind` as a process in `reader` reads it: lower ids in the
    /// reader's namespace, or in the parent's when the reader is inside `self`.
    pub fn show_map(self: &Arc<Self>, kind: MapKind, reader: &Arc<UserNs>) -> String {
        let Some(map) = self.get_map(kind) else {
            return String::new();
        };
        let view = if Arc::ptr_eq(self, reader) {
            self.parent.clone().unwrap_or_else(|| init().clone())
        } else {
            reader.clone()
        };
        let mut s = String::new();
        for e in map.0 {
            // The first id of the range alone is translated; one the view does not
            // map reads (uid_t)-1, as Linux's from_kuid (a sibling namespace).
            let lower = view.up(kind, e.lower).unwrap_or(u32::MAX);
            s.push_str(&format!("{:>10} {:>10} {:>10}\n", e.first, lower, e.count));
        }
        s
    }
}

/// Parses a map write: up to [`MAX_EXTENTS`] lines of three numbers, counts above
/// zero, no range wrapping past `u32::MAX`, no two ranges overlapping inside or
/// below.
fn parse_map(text: &[u8]) -> SysResult<Vec<Extent>> {
    let s = std::str::from_utf8(text).map_err(|_| Errno::EINVAL)?;
    let mut out: Vec<Extent> = Vec::new();
    for line in s.split('\n') {
        if line.is_empty() {
            continue;
        }
        let mut it = line.split_ascii_whitespace().map(|w| w.parse::<u32>());
        let (Some(Ok(first)), Some(Ok(lower)), Some(Ok(count)), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(Errno::EINVAL);
        };
        if count == 0
            || first.checked_add(count - 1).is_none()
            || lower.checked_add(count - 1).is_none()
            || out.len() >= MAX_EXTENTS
        {
            return Err(Errno::EINVAL);
        }
        let overlap =
            |a: u32, b: u32, n: u32, m: u32| a < b.saturating_add(m) && b < a.saturating_add(n);
        if out.iter().any(|e| {
            overlap(first, e.first, count, e.count) || overlap(lower, e.lower, count, e.count)
        }) {
            return Err(Errno::EINVAL);
        }
        out.push(Extent {
            first,
            lower,
            count,
        });
    }
    if out.is_empty() {
        return Err(Errno::EINVAL);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_written_once_and_checked() {
        let ns = UserNs::new_child(init(), (1000, 1000)).unwrap();
        assert_eq!(ns.uid_up(1000), None);
        // An unprivileged owner may map only its own uid.
        assert_eq!(
            ns.write_map(MapKind::Uid, b"0 1001 1\n", false, (1000, 1000)),
            Err(Errno::EPERM)
        );
        assert_eq!(
            ns.write_map(MapKind::Uid, b"0 1000", false, (1000, 1000)),
            Err(Errno::EINVAL)
        );
        ns.write_map(MapKind::Uid, b"0 1000 1\n", false, (1000, 1000))
            .unwrap();
        assert_eq!(
            ns.write_map(MapKind::Uid, b"0 1000 1\n", false, (1000, 1000)),
            Err(Errno::EPERM)
        );
        assert_eq!((ns.uid_up(1000), ns.uid_down(0)), (Some(0), Some(1000)));
        assert_eq!(ns.uid_shown(5), OVERFLOW_ID);
        // Its gid only after setgroups is denied.
        assert_eq!(
            ns.write_map(MapKind::Gid, b"0 1000 1\n", false, (1000, 1000)),
            Err(Errno::EPERM)
        );
        ns.write_setgroups(b"deny\n").unwrap();
        assert_eq!(ns.write_setgroups(b"allow"), Err(Errno::EPERM));
        ns.write_map(MapKind::Gid, b"0 1000 1\n", false, (1000, 1000))
            .unwrap();
        assert!(!ns.may_setgroups());
        assert_eq!(
            ns.show_map(MapKind::Uid, init()),
            "         0       1000          1\n"
        );
    }

    #[test]
    fn privileged_maps_and_overlaps() {
        let ns = UserNs::new_child(init(), (0, 0)).unwrap();
        assert_eq!(
            ns.write_map(MapKind::Uid, b"0 0 10\n5 100 10\n", true, (0, 0)),
            Err(Errno::EINVAL)
        );
        ns.write_map(MapKind::Uid, b"0 100 10\n10 0 1\n", true, (0, 0))
            .unwrap();
        assert_eq!(ns.uid_down(3), Some(103));
        assert_eq!(ns.uid_up(0), Some(10));
        // A grandchild can only map what its parent maps.
        let inner = UserNs::new_child(&ns, (100, 0));
        assert!(inner.is_err(), "owner gid 0 is unmapped in ns");
        ns.write_map(MapKind::Gid, b"0 0 1\n", true, (0, 0))
            .unwrap();
        let inner = UserNs::new_child(&ns, (100, 0)).unwrap();
        assert_eq!(
            inner.write_map(MapKind::Uid, b"0 10 2\n", true, (100, 0)),
            Err(Errno::EPERM)
        );
        inner
            .write_map(MapKind::Uid, b"0 2 3\n", true, (100, 0))
            .unwrap();
        assert_eq!(inner.uid_down(1), Some(103));
        assert!(inner.is_within(&ns) && inner.is_within(init()) && !ns.is_within(&inner));
    }
}
