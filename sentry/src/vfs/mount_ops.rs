//! Changes to the mount tree made by programs (`mount`, `umount2`, `pivot_root`,
//! `unshare(CLONE_NEWNS)`): new mounts, bind mounts (recursive or not), moves,
//! detaching, propagation settings, and copies of a whole tree for a new mount
//! namespace. Permission checks and argument decoding are the syscalls' job.

use std::collections::HashMap;
use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::vfs::mount::{join_path, Mount, MountSpec, Propagation};
use crate::vfs::{Dentry, Inode};

/// Most mounts one tree (a mount namespace) holds; more gives `ENOSPC`, as Linux's
/// `fs.mount-max` (whose default is ten times this: a sandbox keeps its memory). A
/// program binding a tree into itself over and over stops here.
pub const MOUNT_MAX: usize = 10_000;

/// The number of mounts in the tree holding `m`.
fn tree_size(m: &Arc<Mount>) -> usize {
    let mut top = m.clone();
    while let Some(p) = top.parent() {
        top = p;
    }
    let mut n = 0;
    let mut todo = vec![top];
    while let Some(cur) = todo.pop() {
        n += 1;
        todo.extend(cur.children());
    }
    n
}

/// Mounts a filesystem whose root is `inode` on `at` (on top of whatever is
/// mounted there already). A directory goes on a directory and anything else on
/// a non-directory, `ENOTDIR` otherwise.
pub fn mount_new(
    at: &Arc<Dentry>,
    inode: Arc<dyn Inode>,
    spec: MountSpec<'_>,
) -> SysResult<Arc<Dentry>> {
    let at = at.cross_mounts();
    if at.inode().stat()?.is_dir() != inode.stat()?.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    if tree_size(at.mount()) >= MOUNT_MAX {
        return Err(Errno::ENOSPC);
    }
    let m = Mount::with_spec(None, spec);
    let root = Dentry::mount_root(inode, m.clone());
    m.attach(&root, &at)?;
    Ok(root)
}

/// The path of `d` within its filesystem (the mount's own root path joined with
/// the names below the mount's root).
fn fs_path(d: &Arc<Dentry>) -> SysResult<Vec<u8>> {
    let m = d.mount();
    let root = m.root_dentry().ok_or(Errno::EINVAL)?;
    let names = d.names_below(&root).ok_or(Errno::EINVAL)?;
    let mut below = Vec::new();
    for n in names {
        below.push(b'/');
        below.extend_from_slice(&n);
    }
    if below.is_empty() {
        below.push(b'/');
    }
    Ok(join_path(m.root_path(), &below))
}

/// Finds (making dentries as needed) the counterpart in `new_root`'s mount of
/// `d`, which lies below `old_root` within its mount.
fn mirror(
    d: &Arc<Dentry>,
    old_root: &Arc<Dentry>,
    new_root: &Arc<Dentry>,
) -> SysResult<Arc<Dentry>> {
    let names = d.names_below(old_root).ok_or(Errno::EINVAL)?;
    // The inodes along the way, from the original tree.
    let mut inodes = Vec::with_capacity(names.len());
    let mut cur = d.clone();
    while !Arc::ptr_eq(&cur, old_root) {
        inodes.push(cur.inode().clone());
        cur = cur.parent().ok_or(Errno::EINVAL)?;
    }
    inodes.reverse();
    let mut out = new_root.clone();
    for (n, i) in names.iter().zip(inodes.iter()) {
        out = out.mirror_child(n, i)?;
    }
    Ok(out)
}

/// Old mount id to its copy, for moving working directories into a copied tree.
pub type CopyMap = HashMap<u64, (Arc<Dentry>, Arc<Dentry>)>;

/// Copies the mount holding `src` as a new mount rooted at `src` (attached on
/// `at`, or left as a tree's top when `at` is `None`), with, when `recursive`, a
/// copy of every mount below `src` (unbindable ones skipped when `skip_unbindable`).
/// Returns the new root and the map of copies (old root, new root by old id).
pub fn copy_tree(
    src: &Arc<Dentry>,
    at: Option<&Arc<Dentry>>,
    recursive: bool,
    skip_unbindable: bool,
) -> SysResult<(Arc<Dentry>, CopyMap)> {
    let mut map = CopyMap::new();
    // Room left in the tree the copy goes into (a new namespace's is empty).
    let room = MOUNT_MAX.saturating_sub(at.map_or(0, |a| tree_size(a.mount())));
    if room == 0 {
        return Err(Errno::ENOSPC);
    }
    // The copy is built detached and attached last: a bind of a tree onto a
    // place inside itself copies the tree as it was, not the copy being made.
    let root = copy_one(src, None, &mut map)?;
    if recursive {
        let mut todo = vec![(src.mount().clone(), src.clone(), root.clone())];
        while let Some((m, old_root, new_root)) = todo.pop() {
            for c in m.children() {
                if skip_unbindable && c.propagation().unbindable {
                    continue;
                }
                let (Some(mp), Some(c_root)) = (c.mountpoint(), c.root_dentry()) else {
                    continue;
                };
                if !mp.is_descendant_of(&old_root) {
                    continue;
                }
                if map.len() >= room {
                    return Err(Errno::ENOSPC);
                }
                let new_mp = mirror(&mp, &old_root, &new_root)?.cross_mounts();
                let copied = copy_one(&c_root, Some(&new_mp), &mut map)?;
                todo.push((c.clone(), c_root, copied));
            }
        }
    }
    if let Some(at) = at {
        if at.inode().stat()?.is_dir() != src.inode().stat()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        root.mount().attach(&root, at)?;
    }
    Ok((root, map))
}

fn copy_one(
    src: &Arc<Dentry>,
    at: Option<&Arc<Dentry>>,
    map: &mut CopyMap,
) -> SysResult<Arc<Dentry>> {
    let old = src.mount();
    let m = Mount::with_spec(None, old.copy_spec(fs_path(src)?));
    let p = old.propagation();
    // A copy of a shared mount joins its peer group; a slave stays a slave.
    m.set_propagation(Propagation {
        unbindable: false,
        ..p
    });
    old.set_aliased();
    m.set_aliased();
    let root = Dentry::mount_root(src.inode().clone(), m.clone());
    if let Some(at) = at {
        m.attach(&root, at)?;
    }
    if let Some(r) = old.root_dentry() {
        map.insert(old.id(), (r, root.clone()));
    }
    Ok(root)
}

/// The counterpart of `d` in a tree copied with `map`; `d` itself when its mount
/// was not copied.
pub fn translate(d: &Arc<Dentry>, map: &CopyMap) -> Arc<Dentry> {
    match map.get(&d.mount().id()) {
        Some((old_root, new_root)) => mirror(d, old_root, new_root)
            .map(|x| x.cross_mounts())
            .unwrap_or_else(|_| d.clone()),
        None => d.clone(),
    }
}

/// True if `d` is the root of its mount.
pub fn is_mount_root(d: &Arc<Dentry>) -> bool {
    d.mount().root_dentry().is_some_and(|r| Arc::ptr_eq(&r, d))
}

/// Moves the mount whose root is `src` onto `at` (`MS_MOVE`).
pub fn move_mount(src: &Arc<Dentry>, at: &Arc<Dentry>) -> SysResult<()> {
    if !is_mount_root(src) {
        return Err(Errno::EINVAL);
    }
    let m = src.mount().clone();
    let Some(parent) = m.parent() else {
        return Err(Errno::EINVAL);
    };
    if parent.propagation().shared != 0 {
        return Err(Errno::EINVAL);
    }
    let at = at.cross_mounts();
    if at.is_descendant_of(src) {
        return Err(Errno::ELOOP);
    }
    if at.inode().stat()?.is_dir() != src.inode().stat()?.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    m.detach();
    m.attach(src, &at)
}

/// Unmounts the mount whose root is `root`: `EINVAL` if `root` is no mount's root
/// or the mount is a tree's top, `EBUSY` if something still uses it (unless
/// `detach`, which takes it off at once and lets its users keep it).
pub fn umount(root: &Arc<Dentry>, detach: bool, held: usize) -> SysResult<()> {
    if !is_mount_root(root) {
        return Err(Errno::EINVAL);
    }
    let m = root.mount().clone();
    if m.mountpoint().is_none() {
        return Err(if detach { Errno::EINVAL } else { Errno::EBUSY });
    }
    if !detach && (!m.children().is_empty() || root.mount_busy(held)) {
        return Err(Errno::EBUSY);
    }
    m.detach();
    Ok(())
}

/// Applies one propagation change (`MS_SHARED`, `MS_SLAVE`, `MS_PRIVATE`,
/// `MS_UNBINDABLE`) to `m`, and to every mount below it with `recursive`.
pub fn change_propagation(m: &Arc<Mount>, kind: u64, recursive: bool) {
    let mut todo = vec![m.clone()];
    while let Some(cur) = todo.pop() {
        let mut p = cur.propagation();
        match kind {
            libc::MS_SHARED => {
                if p.shared == 0 {
                    // The group is named after its first member, so ids stay unique.
                    p.shared = cur.id();
                }
                p.unbindable = false;
            }
            libc::MS_SLAVE => {
                // A member of a group with other peers receives from them; a lone
                // member has nothing to receive from and becomes private.
                if p.shared != 0 {
                    p.master = if has_peer(&cur, p.shared) {
                        p.shared
                    } else {
                        0
                    };
                    p.shared = 0;
                }
            }
            libc::MS_UNBINDABLE => {
                p = Propagation {
                    unbindable: true,
                    ..Default::default()
                };
            }
            _ => p = Propagation::default(),
        }
        cur.set_propagation(p);
        if recursive {
            todo.extend(cur.children());
        }
    }
}

/// True if another mount of `m`'s tree is in peer group `group`.
fn has_peer(m: &Arc<Mount>, group: u64) -> bool {
    let mut top = m.clone();
    while let Some(p) = top.parent() {
        top = p;
    }
    let mut todo = vec![top];
    while let Some(cur) = todo.pop() {
        if !Arc::ptr_eq(&cur, m) && cur.propagation().shared == group {
            return true;
        }
        todo.extend(cur.children());
    }
    false
}

/// `pivot_root`: the mount whose root is `new_root` takes the place of the mount
/// whose root is `old_top` (the caller's root; the tree's top or a mount below
/// it), which is mounted on `put_old` (at or below `new_root`). Linux's checks,
/// in its order.
pub fn pivot(
    old_top: &Arc<Dentry>,
    new_root: &Arc<Dentry>,
    put_old: &Arc<Dentry>,
) -> SysResult<()> {
    if !new_root.inode().stat()?.is_dir() || !put_old.inode().stat()?.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    let old_m = old_top.mount().clone();
    let new_m = new_root.mount().clone();
    let put_old = put_old.cross_mounts();
    if Arc::ptr_eq(&new_m, &old_m) || Arc::ptr_eq(put_old.mount(), &old_m) {
        return Err(Errno::EBUSY);
    }
    if !is_mount_root(new_root) || !is_mount_root(old_top) {
        return Err(Errno::EINVAL);
    }
    if new_m.mountpoint().is_none() {
        return Err(Errno::EINVAL);
    }
    if !put_old.is_descendant_of(new_root) {
        return Err(Errno::EINVAL);
    }
    if new_m.parent().is_some_and(|p| p.propagation().shared != 0)
        || old_m.propagation().shared != 0
        || new_m.propagation().shared != 0
    {
        return Err(Errno::EINVAL);
    }
    let root_mp = old_m.mountpoint();
    new_m.detach();
    if let Some(mp) = root_mp {
        // A root below the tree's top (after chroot): the new root takes its place.
        old_m.detach();
        new_m.attach(new_root, &mp)?;
    }
    old_m.attach(old_top, &put_old)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::memfile::MemoryFile;
    use crate::fs::tmpfs::Tmpfs;
    use crate::vfs::mount::visible_mounts;
    use crate::vfs::Owner;

    const ROOT: Owner = Owner { uid: 0, gid: 0 };

    fn tmpfs() -> Arc<dyn Inode> {
        Tmpfs::new_root(MemoryFile::new(), 0o755, ROOT, 0)
    }

    fn spec() -> MountSpec<'static> {
        MountSpec {
            flags: 0,
            kind: "tmpfs",
            source: "t",
            data: Vec::new(),
            root_path: b"/".to_vec(),
            super_ro: false,
        }
    }

    fn mkdir(d: &Arc<Dentry>, name: &[u8]) -> Arc<Dentry> {
        let i = d.inode().mkdir(name, 0o755, ROOT).unwrap();
        d.add_child(name, i).unwrap()
    }

    /// A copied tree has mounts of its own: a mount made in one is not in the
    /// other, while files made through either are seen by both, unlinks included.
    #[test]
    fn copies_are_separate_trees_over_the_same_files() {
        let root = Dentry::new_root(tmpfs());
        let a = mkdir(&root, b"a");
        mount_new(&a, tmpfs(), spec()).unwrap();
        let (copy, map) = copy_tree(&root, None, true, false).unwrap();
        assert_eq!(visible_mounts(&copy).len(), 2);
        let b = mkdir(&root, b"b");
        mount_new(&b, tmpfs(), spec()).unwrap();
        assert_eq!(visible_mounts(&root).len(), 3);
        assert_eq!(visible_mounts(&copy).len(), 2);
        // The copy of /a is a mount root in the copy.
        assert!(is_mount_root(&translate(&a.cross_mounts(), &map)));
        // Files: made in the original, seen and then unlinked in the copy.
        let f = root.inode().create(b"f", 0o644, ROOT).unwrap();
        root.add_child(b"f", f).unwrap();
        assert!(copy.child(b"f").is_ok());
        root.inode().unlink(b"f", false).unwrap();
        root.forget_child(b"f");
        assert_eq!(copy.child(b"f").err(), Some(Errno::ENOENT));
    }

    /// Binding a tree into itself doubles it each time until the limit says ENOSPC;
    /// the tree never grows past it.
    #[test]
    fn rbind_into_itself_stops_at_the_limit() {
        let root = Dentry::new_root(tmpfs());
        let a = mkdir(&root, b"a");
        let mut last = Ok(());
        for _ in 0..20 {
            last = copy_tree(&root, Some(&a.cross_mounts()), true, true).map(|_| ());
            if last.is_err() {
                break;
            }
        }
        assert_eq!(last.err(), Some(Errno::ENOSPC));
        assert!(tree_size(root.mount()) <= MOUNT_MAX);
    }

    /// umount: EINVAL off a mount root, EBUSY while a dentry inside is held or a
    /// mount sits below, and detach regardless.
    #[test]
    fn umount_busy_and_detach() {
        let root = Dentry::new_root(tmpfs());
        let a = mkdir(&root, b"a");
        let m = mount_new(&a, tmpfs(), spec()).unwrap();
        assert_eq!(umount(&a, false, 1).err(), Some(Errno::EINVAL));
        let inner = mkdir(&m, b"x");
        assert_eq!(umount(&m, false, 1).err(), Some(Errno::EBUSY));
        drop(inner);
        let sub = mkdir(&m, b"y");
        let s = mount_new(&sub, tmpfs(), spec()).unwrap();
        drop(sub);
        assert_eq!(umount(&m, false, 1).err(), Some(Errno::EBUSY));
        umount(&s, false, 1).unwrap();
        umount(&m, false, 1).unwrap();
        assert!(!a.is_mountpoint());
        assert_eq!(umount(&root, false, 1).err(), Some(Errno::EBUSY));
    }
}
