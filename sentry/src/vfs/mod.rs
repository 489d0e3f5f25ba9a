//! The sentry's virtual filesystem: inodes and dentries, open file descriptions, fd
//! tables and path resolution. Filesystems (in `crate::fs`) implement [`Inode`] and
//! [`FileImpl`]; nothing here knows where the bytes come from.

pub mod acl;
pub mod fdtable;
pub mod file;
pub mod lock;
pub mod mount;
pub mod mount_ops;
pub mod path;
pub mod perm;
pub mod protect;
pub mod xattr;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::errno::{Errno, SysResult};

pub use fdtable::FdTable;
pub use file::{DirEntry, FileImpl, OpenFile, PathOnly};

pub use abi::limits::{NAME_MAX, PATH_MAX};
/// Symlinks followed in one resolution before `ELOOP` (Linux's `MAXSYMLINKS`).
pub const MAX_SYMLINKS: u32 = 40;

/// File attributes, statistics and attribute changes: the layouts the gofer speaks too.
pub use abi::fs::{SetAttr, SetTime, Stat, StatFs};

/// A filesystem object. Directory operations default to `ENOTDIR`, file operations
/// to the errno Linux gives for that kind of object.
pub trait Inode: Send + Sync {
    /// Current attributes.
    fn stat(&self) -> SysResult<Stat>;

    /// Looks `name` up in this directory (never "." or "..": the VFS handles those).
    fn lookup(&self, _name: &[u8]) -> SysResult<Arc<dyn Inode>> {
        Err(Errno::ENOTDIR)
    }

    /// The target of a symlink.
    fn readlink(&self) -> SysResult<Vec<u8>> {
        Err(Errno::EINVAL)
    }

    /// For a magic link (`/proc/PID/ns/*`): the object following it lands on,
    /// which has no path. `None` for ordinary symlinks and everything else.
    fn magic_target(&self) -> Option<SysResult<Arc<dyn Inode>>> {
        None
    }

    /// Opens the object; `flags` are the `open(2)` flags after the VFS's checks.
    fn open(&self, flags: i32) -> SysResult<Box<dyn FileImpl>>;

    /// Creates a regular file `name` in this directory (`O_CREAT`), owned by `owner`,
    /// with `mode` already masked by the umask; `EEXIST` if the name exists.
    fn create(&self, _name: &[u8], _mode: u32, _owner: Owner) -> SysResult<Arc<dyn Inode>> {
        Err(self.mutation_refused())
    }

    /// `mkdir`.
    fn mkdir(&self, _name: &[u8], _mode: u32, _owner: Owner) -> SysResult<Arc<dyn Inode>> {
        Err(self.mutation_refused())
    }

    /// `mknod` of a FIFO or socket (`mode` carries the type); device nodes are refused
    /// above this layer.
    fn mknod(&self, _name: &[u8], _mode: u32, _owner: Owner) -> SysResult<Arc<dyn Inode>> {
        Err(self.mutation_refused())
    }

    /// An unnamed regular file for `O_TMPFILE` in this directory (nlink 0, may be
    /// given a name by `linkat`); `EOPNOTSUPP` where the filesystem has none.
    fn tmpfile(&self, _mode: u32, _owner: Owner) -> SysResult<Arc<dyn Inode>> {
        Err(Errno::EOPNOTSUPP)
    }

    /// `symlink`: `name` pointing at `target`.
    fn symlink(&self, _name: &[u8], _target: &[u8], _owner: Owner) -> SysResult<Arc<dyn Inode>> {
        Err(self.mutation_refused())
    }

    /// `link`: a new name for `target`, which is on the same filesystem (`EXDEV`
    /// otherwise).
    fn link(&self, _name: &[u8], _target: &Arc<dyn Inode>) -> SysResult<()> {
        Err(self.mutation_refused())
    }

    /// `unlink` (or `rmdir` with `dir`).
    fn unlink(&self, _name: &[u8], _dir: bool) -> SysResult<()> {
        Err(self.mutation_refused())
    }

    /// `renameat2` from this directory to `new_dir` (same filesystem, `EXDEV`
    /// otherwise) with `RENAME_*` flags.
    fn rename(
        &self,
        _old: &[u8],
        _new_dir: &Arc<dyn Inode>,
        _new: &[u8],
        _flags: u32,
    ) -> SysResult<()> {
        Err(self.mutation_refused())
    }

    /// Changes attributes (chmod, chown, truncate, utimes).
    fn setattr(&self, _attr: &SetAttr) -> SysResult<()> {
        Err(self.mutation_refused())
    }

    /// What a mutation of a filesystem that does not support it returns.
    fn mutation_refused(&self) -> Errno {
        Errno::EROFS
    }

    /// The value of extended attribute `name` (namespace rules and permissions are
    /// checked above this layer). Filesystems without attributes give
    /// `EOPNOTSUPP`, as Linux's procfs or sysfs.
    fn getxattr(&self, _name: &[u8]) -> SysResult<Vec<u8>> {
        Err(Errno::EOPNOTSUPP)
    }

    /// Sets extended attribute `name` (`flags`: `XATTR_CREATE`, `XATTR_REPLACE`).
    fn setxattr(&self, _name: &[u8], _value: &[u8], _flags: i32) -> SysResult<()> {
        Err(Errno::EOPNOTSUPP)
    }

    /// The names of the extended attributes; a filesystem without any lists none
    /// (Linux's `listxattr` succeeds there too).
    fn listxattr(&self) -> SysResult<Vec<Vec<u8>>> {
        Ok(Vec::new())
    }

    /// Removes extended attribute `name`.
    fn removexattr(&self, _name: &[u8]) -> SysResult<()> {
        Err(Errno::EOPNOTSUPP)
    }

    /// The POSIX ACL the sentry keeps for this inode and enforces (the access
    /// ACL, or with `default` a directory's default ACL). Filesystems that keep
    /// none in the sentry give `None` (a gofer file's host ACL is the host's).
    fn posix_acl(&self, _default: bool) -> Option<acl::Acl> {
        None
    }

    /// Identifies the filesystem instance (for `EXDEV` checks on link and rename).
    fn fs_id(&self) -> usize {
        0
    }

    /// Downcasting, for filesystems that need their own type back (rename, link).
    fn as_any(&self) -> &dyn std::any::Any;

    /// Statistics of the filesystem holding this object. Defaults describe a small
    /// in-memory filesystem.
    fn statfs(&self) -> SysResult<StatFs> {
        Ok(StatFs {
            kind: 0x0102_1994,
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
            ..Default::default()
        })
    }
}

/// The owner a new file gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Owning uid (the creator's fsuid).
    pub uid: u32,
    /// Owning gid (the creator's fsgid, or the directory's with set-gid).
    pub gid: u32,
}

/// A name in the tree: an inode with its parent, so `..` and `getcwd` work, and a
/// cache of looked-up children so repeated walks don't go back to the filesystem.
/// Rename moves a cached dentry (its name and parent change in place), so an fd or
/// a working directory follows the file; unlink drops it from its parent's cache
/// while fds keep it alive.
pub struct Dentry {
    name: Mutex<Vec<u8>>,
    parent: Mutex<Option<Arc<Dentry>>>,
    inode: Arc<dyn Inode>,
    children: Mutex<HashMap<Vec<u8>, Arc<Dentry>>>,
    mount: Arc<mount::Mount>,
    covered_by: Mutex<Option<Arc<Dentry>>>,
    /// Set on the directories leading to a mountpoint: the mount hangs off the
    /// mountpoint's very dentry, so none of them may leave the cache either.
    leads_to_mount: AtomicBool,
}

/// Children cached per directory before the cache is emptied; keeps a directory
/// walk over millions of names from holding a gofer fid for each.
const DENTRY_CACHE_PER_DIR: usize = 4096;

impl Dentry {
    /// The root of a tree, on a fresh read-write root mount.
    pub fn new_root(inode: Arc<dyn Inode>) -> Arc<Dentry> {
        Self::mount_root(inode, mount::Mount::root())
    }

    /// The root dentry of mount `m`.
    pub(crate) fn mount_root(inode: Arc<dyn Inode>, m: Arc<mount::Mount>) -> Arc<Dentry> {
        let d = Arc::new(Dentry {
            name: Mutex::new(b"/".to_vec()),
            parent: Mutex::new(None),
            inode,
            children: Mutex::new(HashMap::new()),
            mount: m.clone(),
            covered_by: Mutex::new(None),
            leads_to_mount: AtomicBool::new(false),
        });
        m.set_root(&d);
        d
    }

    /// The inode.
    pub fn inode(&self) -> &Arc<dyn Inode> {
        &self.inode
    }

    /// The parent within the same mount, `None` at a mount's root.
    pub fn parent(&self) -> Option<Arc<Dentry>> {
        self.parent.lock().ok().and_then(|p| p.clone())
    }

    /// The current name in the parent.
    pub fn name(&self) -> Vec<u8> {
        self.name.lock().map(|n| n.clone()).unwrap_or_default()
    }

    /// The mount this dentry belongs to.
    pub fn mount(&self) -> &Arc<mount::Mount> {
        &self.mount
    }

    /// `MS_RDONLY`, `MS_NOSUID`, `MS_NODEV`, `MS_NOEXEC` bits of the mount holding
    /// this dentry (for exec's `noexec` and set-id checks).
    pub fn mount_flags(&self) -> u64 {
        self.mount.flags()
    }

    /// `EROFS` if the mount is read-only.
    pub fn check_writable(&self) -> SysResult<()> {
        if self.mount.flags() & libc::MS_RDONLY != 0 {
            return Err(Errno::EROFS);
        }
        Ok(())
    }

    /// The root of the filesystem mounted on this dentry, if any (the topmost one
    /// when mounts are stacked).
    pub fn mounted(&self) -> Option<Arc<Dentry>> {
        self.covered_by.lock().ok().and_then(|c| c.clone())
    }

    /// True if something is mounted here (unlink and rename give `EBUSY`).
    pub fn is_mountpoint(&self) -> bool {
        self.mounted().is_some()
    }

    /// Uncovers this dentry (its mount was detached or moved).
    pub(crate) fn clear_mounted(&self) {
        if let Ok(mut c) = self.covered_by.lock() {
            *c = None;
        }
    }

    /// The names from `ancestor` (a dentry of the same mount) down to this one;
    /// `None` if this dentry does not lie below it within the mount.
    pub fn names_below(self: &Arc<Self>, ancestor: &Arc<Dentry>) -> Option<Vec<Vec<u8>>> {
        let mut names = Vec::new();
        let mut cur = self.clone();
        while !Arc::ptr_eq(&cur, ancestor) {
            let p = cur.parent()?;
            names.push(cur.name());
            cur = p;
        }
        names.reverse();
        Some(names)
    }

    /// The cached child `name`, or a new one for `inode` (which another mount of
    /// the same filesystem already found there): how a copied mount tree finds its
    /// mountpoints, even placeholders the filesystem itself does not list.
    pub fn mirror_child(
        self: &Arc<Self>,
        name: &[u8],
        inode: &Arc<dyn Inode>,
    ) -> SysResult<Arc<Dentry>> {
        if let Some(d) = self.cached_child(name) {
            return Ok(d);
        }
        self.add_child(name, inode.clone())
    }

    /// True if something outside the dentry cache (an open file, a working or
    /// root directory, a path being resolved) holds a dentry of this mount's
    /// cached tree below `self`, a mount's root; `held` references are the
    /// caller's own.
    pub fn mount_busy(self: &Arc<Self>, held: usize) -> bool {
        // A root is held by its mountpoint; any other dentry by its parent's
        // cache; each cached child holds its parent.
        fn busy(d: &Arc<Dentry>, ours: usize, base: usize) -> bool {
            let kids: Vec<Arc<Dentry>> = match d.children.lock() {
                Ok(c) => c.values().cloned().collect(),
                Err(_) => return true,
            };
            if Arc::strong_count(d) > ours + base + kids.len() {
                return true;
            }
            // Each child: our clone in `kids`, plus its parent's cache entry.
            kids.iter().any(|k| busy(k, 1, 1))
        }
        busy(self, held, usize::from(self.mount.mountpoint().is_some()))
    }

    pub(crate) fn set_mounted(&self, root: Arc<Dentry>) -> SysResult<()> {
        *self.covered_by.lock().map_err(|_| Errno::EIO)? = Some(root);
        let mut up = self.parent();
        while let Some(d) = up {
            d.leads_to_mount.store(true, Ordering::Relaxed);
            up = d.parent();
        }
        Ok(())
    }

    fn new_child(self: &Arc<Self>, name: &[u8], inode: Arc<dyn Inode>) -> Arc<Dentry> {
        Arc::new(Dentry {
            name: Mutex::new(name.to_vec()),
            parent: Mutex::new(Some(self.clone())),
            inode,
            children: Mutex::new(HashMap::new()),
            mount: self.mount.clone(),
            covered_by: Mutex::new(None),
            leads_to_mount: AtomicBool::new(false),
        })
    }

    fn cache_insert(&self, name: &[u8], d: Arc<Dentry>) -> SysResult<()> {
        let mut cache = self.children.lock().map_err(|_| Errno::EIO)?;
        if cache.len() >= DENTRY_CACHE_PER_DIR {
            // Mountpoints and the way to them must stay: the mount hangs off that
            // very dentry.
            cache.retain(|_, d| d.is_mountpoint() || d.leads_to_mount.load(Ordering::Relaxed));
        }
        cache.insert(name.to_vec(), d);
        Ok(())
    }

    /// The child named `name`, from the cache or looked up (mounts not crossed).
    pub fn child(self: &Arc<Self>, name: &[u8]) -> SysResult<Arc<Dentry>> {
        let cached = self
            .children
            .lock()
            .map_err(|_| Errno::EIO)?
            .get(name)
            .cloned();
        if let Some(d) = cached {
            if !self.mount.aliased() {
                return Ok(d);
            }
            return self.revalidate(name, d);
        }
        let inode = self.inode.lookup(name)?;
        let d = self.new_child(name, inode);
        self.cache_insert(name, d.clone())?;
        Ok(d)
    }

    /// A cached child of a mount whose filesystem another mount also shows:
    /// checked against the filesystem, since an unlink or rename made through the
    /// other mount updated only that mount's cache. Mountpoints and the way to
    /// them stay (their mounts hang off those very dentries).
    fn revalidate(self: &Arc<Self>, name: &[u8], cached: Arc<Dentry>) -> SysResult<Arc<Dentry>> {
        let pinned = cached.is_mountpoint() || cached.leads_to_mount.load(Ordering::Relaxed);
        match self.inode.lookup(name) {
            Ok(i) => {
                let same = std::ptr::addr_eq(Arc::as_ptr(&i), Arc::as_ptr(&cached.inode)) || {
                    let (a, b) = (i.stat()?, cached.inode.stat()?);
                    (a.dev, a.ino, a.file_type()) == (b.dev, b.ino, b.file_type())
                };
                if same || pinned {
                    return Ok(cached);
                }
                let d = self.new_child(name, i);
                self.cache_insert(name, d.clone())?;
                Ok(d)
            }
            Err(Errno::ENOENT) if pinned => Ok(cached),
            Err(e) => {
                if e == Errno::ENOENT {
                    self.forget_child(name);
                }
                Err(e)
            }
        }
    }

    /// Caches `inode` as child `name` (after a create), replacing a stale entry.
    pub fn add_child(
        self: &Arc<Self>,
        name: &[u8],
        inode: Arc<dyn Inode>,
    ) -> SysResult<Arc<Dentry>> {
        let d = self.new_child(name, inode);
        self.cache_insert(name, d.clone())?;
        Ok(d)
    }

    /// A dentry for an unnamed inode below this directory (`O_TMPFILE`): never in
    /// the cache, so no walk finds it.
    pub fn orphan(self: &Arc<Self>, inode: Arc<dyn Inode>) -> Arc<Dentry> {
        let name = format!("#{}", inode.stat().map(|s| s.ino).unwrap_or(0));
        self.new_child(name.as_bytes(), inode)
    }

    /// The cached child `name`, if any (no lookup).
    pub fn cached_child(&self, name: &[u8]) -> Option<Arc<Dentry>> {
        self.children.lock().ok().and_then(|c| c.get(name).cloned())
    }

    /// Forgets child `name` (after unlink or rmdir); open fds keep their dentry.
    pub fn forget_child(&self, name: &[u8]) {
        if let Ok(mut c) = self.children.lock() {
            c.remove(name);
        }
    }

    /// Updates the caches after `old_dir/old` was renamed to `new_dir/new`
    /// (`exchange`: the two swapped).
    pub fn renamed(
        old_dir: &Arc<Dentry>,
        old: &[u8],
        new_dir: &Arc<Dentry>,
        new: &[u8],
        exchange: bool,
    ) {
        let moving = old_dir.children.lock().ok().and_then(|mut c| c.remove(old));
        let other = new_dir.children.lock().ok().and_then(|mut c| c.remove(new));
        if let Some(d) = moving {
            Self::relink(&d, new_dir, new);
        }
        if exchange {
            if let Some(d) = other {
                Self::relink(&d, old_dir, old);
            }
        }
    }

    fn relink(d: &Arc<Dentry>, dir: &Arc<Dentry>, name: &[u8]) {
        if let Ok(mut n) = d.name.lock() {
            *n = name.to_vec();
        }
        if let Ok(mut p) = d.parent.lock() {
            *p = Some(dir.clone());
        }
        let _ = dir.cache_insert(name, d.clone());
    }

    /// The dentry a walk lands on after naming this one: the root of whatever is
    /// mounted here, followed through stacked mounts.
    pub fn cross_mounts(self: &Arc<Self>) -> Arc<Dentry> {
        let mut cur = self.clone();
        while let Some(r) = cur.mounted() {
            cur = r;
        }
        cur
    }

    /// `..` from here: a mount's root goes to the parent of its mountpoint; nothing
    /// climbs above `root`.
    pub fn up(self: &Arc<Self>, root: &Arc<Dentry>) -> Arc<Dentry> {
        let mut cur = self.clone();
        loop {
            if Arc::ptr_eq(&cur, root) {
                return cur;
            }
            if let Some(p) = cur.parent() {
                return p.cross_mounts();
            }
            match cur.mount.mountpoint() {
                Some(mp) => cur = mp,
                None => return cur,
            }
        }
    }

    /// True if `self` is `other` or lies below it (crossing mounts).
    pub fn is_descendant_of(self: &Arc<Self>, other: &Arc<Dentry>) -> bool {
        let mut cur = self.clone();
        loop {
            if Arc::ptr_eq(&cur, other) {
                return true;
            }
            let next = match cur.parent() {
                Some(p) => p,
                None => match cur.mount.mountpoint() {
                    Some(mp) => mp,
                    None => return false,
                },
            };
            cur = next;
        }
    }

    /// The absolute path of this dentry relative to `root` (as `getcwd` reports it).
    /// A dentry outside `root` is reported from its own tree's root.
    pub fn path_from(self: &Arc<Self>, root: &Arc<Dentry>) -> Vec<u8> {
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut cur = self.clone();
        while !Arc::ptr_eq(&cur, root) {
            match cur.parent() {
                Some(p) => {
                    parts.push(cur.name());
                    cur = p;
                }
                None => match cur.mount.mountpoint() {
                    // The mountpoint stands for the mount's root in the path.
                    Some(mp) => cur = mp,
                    None => break,
                },
            }
        }
        if parts.is_empty() {
            return b"/".to_vec();
        }
        let mut out = Vec::new();
        for p in parts.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(p);
        }
        out
    }
}

/// A task's filesystem context: its root and working directory, and its umask.
#[derive(Clone)]
pub struct FsContext {
    /// `/` for this task.
    pub root: Arc<Dentry>,
    /// The working directory.
    pub cwd: Arc<Dentry>,
    /// File creation mask.
    pub umask: u32,
}
