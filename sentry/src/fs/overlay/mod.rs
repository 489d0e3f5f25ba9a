//! The root overlay (`--overlay=self`, the default, and `--overlay=memory`): the
//! gofer's rootfs is the read-only lower layer and every change lands in an upper
//! layer held by the sentry, so the bundle's rootfs is never modified.
//!
//! The upper layer lives in the overlay's own nodes: a directory keeps a map of
//! upper entries (new or copied-up nodes, and whiteouts that hide lower names);
//! regular file data copied up or created here lives in one host file per file
//! (so it can be mapped and executed like a gofer-donated file): a memfd, or with
//! `self` an unnamed file on the rootfs's disk ([`store`]). A directory
//! created here, or replacing a deleted name, has no lower part: it is opaque.
//! Once the `vfs` helper's tmpfs is merged, the upper nodes' storage can be swapped
//! for tmpfs inodes; the interface to the rest of the sentry is [`root_for`] only.
//!
//! As in Linux overlayfs without `redirect_dir`, renaming a directory that has a
//! lower part gives `EXDEV` (`mv` then copies). A file opened read-only before it
//! is copied up keeps reading the lower data (as overlayfs before 4.19).
//!
//! The lower layer is the sandbox's own, as gVisor's default `--file-access=exclusive`
//! root assumes: what it showed once is kept. A directory remembers the names its
//! lower part lacks (a second `stat` of a missing file asks the gofer nothing) and its
//! lower listing (a second listing reads no host directory), besides the nodes it
//! looked up; files the host adds, removes or changes in the rootfs while the sandbox
//! runs may therefore not be seen, as with runsc. Listings are kept up to
//! [`LISTING_BUDGET`] entries per overlay; bind mounts are not overlays and are not
//! affected.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::BootConfig;
use crate::errno::{Errno, SysResult};
use crate::fs::gofer::GoferFs;
use crate::mm::Mappable;
use crate::sys::host;
use crate::vfs::xattr::{check_name, XattrMap};
use crate::vfs::{DirEntry, FileImpl, Inode, Owner, SetAttr, SetTime, Stat};

pub mod store;
#[cfg(test)]
mod tests;

use store::{Data, Store};

/// The root filesystem `config.overlay` asks for over the gofer's rootfs:
/// `self` and `memory` put an in-sentry upper layer over the read-only rootfs (its
/// file data on the rootfs's disk or in memory, see [`store`]), `none` mounts the
/// gofer filesystem itself (read-write unless the spec's root is read-only).
pub fn root_for(config: &BootConfig, client: Arc<gofer::Client>) -> Result<Arc<dyn Inode>, String> {
    let attach = |ro| GoferFs::mount(client.clone(), ro);
    match config.overlay.as_str() {
        mode @ ("self" | "memory") => {
            let lower = attach(true).map_err(|e| format!("gofer: cannot attach the root: {e}"))?;
            if config.readonly_rootfs {
                // A read-only root takes no writes, so there is nothing to hold.
                return Ok(lower);
            }
            Overlay::new_root_in(lower, Store::for_mode(mode, client.clone(), bound(config)))
                .map_err(|e| format!("overlay: cannot build the root: {e}"))
        }
        "none" => attach(config.readonly_rootfs)
            .map_err(|e| format!("gofer: cannot attach the root: {e}")),
        other => Err(format!("overlay {other:?}: unknown (self, memory or none)")),
    }
}

/// The most the in-memory upper layer may hold, in bytes: `--overlay=MODE,size=N`,
/// else the container's memory limit, else half the machine's memory (a tmpfs's
/// default size).
pub fn bound(config: &BootConfig) -> u64 {
    config
        .overlay_size
        .or(config.resources.memory_limit)
        .filter(|&b| b > 0)
        .unwrap_or_else(crate::fs::tmpfs::default_limit)
}

/// `statfs` type of an overlay.
const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
/// Inode numbers of nodes made in the upper layer start here, above any lower one
/// a real filesystem hands out in practice.
const FIRST_UPPER_INO: u64 = 1 << 48;
/// Lower children remembered per directory before unchanged ones are dropped.
const CACHE_PER_DIR: usize = 4096;
/// Lower directory entries an overlay keeps in listings, all directories together
/// (a few MiB at most); a listing past it is read again at each `getdents` from 0.
pub const LISTING_BUDGET: usize = 64 * 1024;
/// Bytes asked of the lower layer per directory read (the gofer's frames hold 64 KiB).
const LOWER_READ: usize = 60 * 1024;

/// One overlay instance.
pub struct Overlay {
    next_ino: AtomicU64,
    dev: u64,
    /// Serialises renames, which touch two directories.
    rename_lock: Mutex<()>,
    /// Where upper file data goes.
    store: Store,
    /// Lower entries held in kept listings ([`LISTING_BUDGET`]).
    listed: Arc<AtomicUsize>,
}

impl Overlay {
    /// An overlay over the read-only root `lower` with its upper layer in memory,
    /// returning its root.
    pub fn new_root(lower: Arc<dyn Inode>) -> SysResult<Arc<dyn Inode>> {
        Overlay::new_root_in(
            lower,
            Store::Memory(store::InMemory::new(crate::fs::tmpfs::default_limit())),
        )
    }

    /// An overlay over the read-only root `lower` keeping upper file data in
    /// `store`, returning its root.
    pub fn new_root_in(lower: Arc<dyn Inode>, store: Store) -> SysResult<Arc<dyn Inode>> {
        let st = lower.stat()?;
        if !st.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let fs = Arc::new(Overlay {
            next_ino: AtomicU64::new(FIRST_UPPER_INO),
            dev: st.dev,
            rename_lock: Mutex::new(()),
            store,
            listed: Arc::new(AtomicUsize::new(0)),
        });
        Ok(Arc::new(ONode::new(fs, Some(lower), None)))
    }
}

enum Entry {
    Node(Arc<ONode>),
    Whiteout,
    /// The lower directory has no such name (and the upper layer neither): a
    /// remembered miss, dropped like an unchanged node when the cache is full.
    Absent,
}

/// One lower entry of a listing: name, inode number, `DT_*` type.
type Listed = (Vec<u8>, u64, u8);

/// A lower directory's entries, sorted by name, counted against the overlay's
/// [`LISTING_BUDGET`] while kept.
struct Listing {
    entries: Arc<Vec<Listed>>,
    /// The overlay's count, given back on drop; `None` when not counted.
    counted: Option<Arc<AtomicUsize>>,
}

impl Drop for Listing {
    fn drop(&mut self) {
        if let Some(c) = &self.counted {
            c.fetch_sub(self.entries.len(), Ordering::AcqRel);
        }
    }
}

#[derive(Default)]
struct State {
    /// Upper attributes: set once copied up (or for nodes made here).
    attr: Option<Stat>,
    /// Upper data of a regular file.
    data: Option<Data>,
    /// Target of a symlink made here or copied up.
    target: Option<Vec<u8>>,
    /// Directories: upper entries (new, copied-up or looked-up lower nodes, and
    /// whiteouts).
    children: BTreeMap<Vec<u8>, Entry>,
    /// Extended attributes once copied up (the lower node's until then).
    xattrs: XattrMap,
    /// Directories: the lower part's listing, once read (the lower layer does not
    /// change under the sandbox, see the module doc).
    listing: Option<Arc<Listing>>,
}

/// A node of the overlay: a lower inode, an upper one, or both.
pub struct ONode {
    fs: Arc<Overlay>,
    /// The lower inode; `None` for nodes made in the upper layer (directories
    /// without a lower part are opaque).
    lower: Option<Arc<dyn Inode>>,
    st: Arc<Mutex<State>>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every update below leaves the state consistent between statements, so a
    // panic elsewhere does not poison its meaning.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> (i64, i64) {
    host::clock_gettime(libc::CLOCK_REALTIME)
        .map(|t| (t.tv_sec, t.tv_nsec))
        .unwrap_or((0, 0))
}

fn dt_of(mode: u32) -> u8 {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => libc::DT_DIR,
        libc::S_IFREG => libc::DT_REG,
        libc::S_IFLNK => libc::DT_LNK,
        libc::S_IFIFO => libc::DT_FIFO,
        libc::S_IFSOCK => libc::DT_SOCK,
        libc::S_IFCHR => libc::DT_CHR,
        libc::S_IFBLK => libc::DT_BLK,
        _ => libc::DT_UNKNOWN,
    }
}

/// Upper attributes with the size and blocks of the file's data, if any.
fn with_data_size(mut st: Stat, data: Option<&Data>) -> SysResult<Stat> {
    if let Some(d) = data {
        (st.size, st.blocks) = d.size_blocks()?;
    }
    Ok(st)
}

impl ONode {
    fn new(fs: Arc<Overlay>, lower: Option<Arc<dyn Inode>>, attr: Option<Stat>) -> ONode {
        ONode {
            fs,
            lower,
            st: Arc::new(Mutex::new(State {
                attr,
                ..Default::default()
            })),
        }
    }

    /// A node made in the upper layer.
    fn fresh(&self, mode: u32, owner: Owner) -> ONode {
        let t = now();
        let attr = Stat {
            dev: self.fs.dev,
            ino: self.fs.next_ino.fetch_add(1, Ordering::Relaxed),
            mode,
            nlink: if mode & libc::S_IFMT == libc::S_IFDIR {
                2
            } else {
                1
            },
            uid: owner.uid,
            gid: owner.gid,
            blksize: 4096,
            atime: t,
            mtime: t,
            ctime: t,
            ..Default::default()
        };
        ONode::new(self.fs.clone(), None, Some(attr))
    }

    fn stat_locked(&self, s: &State) -> SysResult<Stat> {
        match (&s.attr, &self.lower) {
            (Some(a), _) => with_data_size(*a, s.data.as_ref()),
            (None, Some(l)) => l.stat(),
            (None, None) => Err(Errno::EIO),
        }
    }

    fn is_dir(&self) -> SysResult<bool> {
        Ok(self.stat()?.is_dir())
    }

    /// Copies attributes (and a regular file's data, a symlink's target) into the
    /// upper layer, once.
    fn copy_up_locked(&self, s: &mut State) -> SysResult<()> {
        self.copy_up_with(s, true)
    }

    /// [`ONode::copy_up_locked`]; without `data` a regular file starts empty in the
    /// upper layer (it is about to be truncated, so copying would be wasted).
    fn copy_up_with(&self, s: &mut State, data: bool) -> SysResult<()> {
        if s.attr.is_some() {
            return Ok(());
        }
        let Some(lower) = &self.lower else {
            return Err(Errno::EIO);
        };
        let st = lower.stat()?;
        match st.file_type() {
            libc::S_IFREG if !data => s.data = Some(self.fs.store.new_file()?),
            libc::S_IFREG => {
                let fd = self.fs.store.new_file()?;
                let src = lower.open(libc::O_RDONLY)?;
                let mut buf = vec![0u8; 128 * 1024];
                let mut off = 0u64;
                loop {
                    let n = src.read(&mut buf, off)?;
                    if n == 0 {
                        break;
                    }
                    let mut done = 0;
                    while done < n {
                        let w = fd.write(&buf[done..n], off + done as u64)?;
                        if w == 0 {
                            return Err(Errno::EIO);
                        }
                        done += w;
                    }
                    off += n as u64;
                }
                s.data = Some(fd);
            }
            libc::S_IFLNK => s.target = Some(lower.readlink()?),
            _ => {}
        }
        // Copy-up keeps the attributes, as overlayfs does; names the upper layer
        // cannot hold (POSIX ACLs, other namespaces) are left behind.
        let mut xattrs = XattrMap::default();
        for name in lower.listxattr().unwrap_or_default() {
            if let Ok(v) = lower.getxattr(&name) {
                let _ = xattrs.set(&name, &v, 0);
            }
        }
        s.xattrs = xattrs;
        let mut st = st;
        st.dev = self.fs.dev;
        s.attr = Some(st);
        Ok(())
    }

    fn copy_up(&self) -> SysResult<()> {
        self.copy_up_locked(&mut lock(&self.st))
    }

    /// Records a change of this directory's contents: mtime and ctime now, and
    /// `links` added to its link count (subdirectories' "..").
    fn touch_dir(&self, s: &mut State, links: i64) -> SysResult<()> {
        self.copy_up_locked(s)?;
        if let Some(a) = s.attr.as_mut() {
            let t = now();
            a.mtime = t;
            a.ctime = t;
            a.nlink = (a.nlink as i64 + links).max(1) as u64;
        }
        Ok(())
    }

    /// Whether the lower directory holds `name` (deleting it then needs a whiteout).
    fn lower_has(&self, name: &[u8]) -> bool {
        match &self.lower {
            Some(l) => l.lookup(name).is_ok(),
            None => false,
        }
    }

    fn child_locked(&self, s: &mut State, name: &[u8]) -> SysResult<Arc<ONode>> {
        match s.children.get(name) {
            Some(Entry::Node(n)) => return Ok(n.clone()),
            Some(Entry::Whiteout | Entry::Absent) => return Err(Errno::ENOENT),
            None => {}
        }
        let Some(lower) = &self.lower else {
            return Err(Errno::ENOENT);
        };
        let found = lower.lookup(name);
        if s.children.len() >= CACHE_PER_DIR {
            // Keep what the upper layer needs: whiteouts, changed nodes, and nodes
            // someone else still holds (their identity must stay unique).
            s.children.retain(|_, e| match e {
                Entry::Whiteout => true,
                Entry::Absent => false,
                Entry::Node(n) => Arc::strong_count(n) > 1 || n.is_upper_or_busy(),
            });
        }
        let l = match found {
            Ok(l) => l,
            Err(Errno::ENOENT) => {
                s.children.insert(name.to_vec(), Entry::Absent);
                return Err(Errno::ENOENT);
            }
            Err(e) => return Err(e),
        };
        let n = Arc::new(ONode::new(self.fs.clone(), Some(l), None));
        s.children.insert(name.to_vec(), Entry::Node(n.clone()));
        Ok(n)
    }

    fn is_upper_or_busy(&self) -> bool {
        match self.st.try_lock() {
            Ok(s) => s.attr.is_some() || s.children.values().any(|e| !matches!(e, Entry::Absent)),
            Err(_) => true,
        }
    }

    fn child(&self, name: &[u8]) -> SysResult<Arc<ONode>> {
        self.child_locked(&mut lock(&self.st), name)
    }

    /// The lower part's entries, sorted by name: the kept listing, or read from the
    /// lower directory (and kept while the overlay's budget allows).
    fn lower_listing(&self) -> SysResult<Option<Arc<Listing>>> {
        let Some(l) = &self.lower else {
            return Ok(None);
        };
        if let Some(kept) = lock(&self.st).listing.clone() {
            return Ok(Some(kept));
        }
        let dir = l.open(libc::O_RDONLY | libc::O_DIRECTORY)?;
        let mut pos = 0;
        let mut entries = Vec::new();
        loop {
            let ents = dir.getdents(pos, LOWER_READ)?;
            let Some(last) = ents.last() else { break };
            if last.next <= pos {
                return Err(Errno::EIO);
            }
            pos = last.next;
            entries.extend(
                ents.into_iter()
                    .filter(|e| e.name != b"." && e.name != b"..")
                    .map(|e| (e.name, e.ino, e.kind)),
            );
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        let n = entries.len();
        let counted = self
            .fs
            .listed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                (c + n <= LISTING_BUDGET).then_some(c + n)
            })
            .is_ok();
        let listing = Arc::new(Listing {
            entries: Arc::new(entries),
            counted: counted.then(|| self.fs.listed.clone()),
        });
        if counted {
            let mut s = lock(&self.st);
            match &s.listing {
                // Another reader kept one meanwhile: the same names.
                Some(other) => return Ok(Some(other.clone())),
                None => s.listing = Some(listing.clone()),
            }
        }
        Ok(Some(listing))
    }

    /// The merged listing, sorted by name: lower names (unless hidden) overridden
    /// by upper entries. Shares the lower listing when the upper layer changes
    /// nothing in this directory.
    fn merged(&self) -> SysResult<Arc<Vec<Listed>>> {
        let lower = self.lower_listing()?;
        let lower_entries: &[Listed] = lower.as_ref().map_or(&[], |l| l.entries.as_slice());
        let s = lock(&self.st);
        // Upper entries that change the lower view: whiteouts and nodes with
        // upper attributes (copied up or made here); a looked-up lower node is
        // already in the lower listing.
        let mut changes: Vec<(&[u8], Option<Stat>)> = Vec::new();
        for (name, e) in &s.children {
            match e {
                Entry::Whiteout => changes.push((name, None)),
                Entry::Absent => {}
                Entry::Node(n) => {
                    // A lower node the listing lacks (the host added it after
                    // the listing was kept) is shown too.
                    let upper = n.lower.is_none() || lock(&n.st).attr.is_some();
                    if upper
                        || lower_entries
                            .binary_search_by(|l| l.0.as_slice().cmp(name))
                            .is_err()
                    {
                        changes.push((name, Some(n.stat()?)));
                    }
                }
            }
        }
        if changes.is_empty() {
            if let Some(l) = &lower {
                return Ok(l.entries.clone());
            }
        }
        // Both sequences are sorted by name (`children` is a BTreeMap): merge them.
        let mut out = Vec::with_capacity(lower_entries.len() + changes.len());
        let mut ch = changes.into_iter().peekable();
        for l in lower_entries {
            while let Some((name, _)) = ch.peek() {
                if *name >= l.0.as_slice() {
                    break;
                }
                if let Some((name, Some(st))) = ch.next() {
                    out.push((name.to_vec(), st.ino, dt_of(st.mode)));
                }
            }
            match ch.peek() {
                Some((name, _)) if *name == l.0.as_slice() => {
                    if let Some((name, Some(st))) = ch.next() {
                        out.push((name.to_vec(), st.ino, dt_of(st.mode)));
                    }
                }
                _ => out.push(l.clone()),
            }
        }
        for (name, st) in ch {
            if let Some(st) = st {
                out.push((name.to_vec(), st.ino, dt_of(st.mode)));
            }
        }
        Ok(Arc::new(out))
    }

    fn insert_new(&self, name: &[u8], node: ONode) -> SysResult<Arc<dyn Inode>> {
        let mut s = lock(&self.st);
        match self.child_locked(&mut s, name) {
            Ok(_) => return Err(Errno::EEXIST),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let dir = node.lower.is_none() && node.stat_locked(&lock(&node.st))?.is_dir();
        self.touch_dir(&mut s, if dir { 1 } else { 0 })?;
        let n = Arc::new(node);
        s.children.insert(name.to_vec(), Entry::Node(n.clone()));
        Ok(n)
    }

    fn check_dir(&self) -> SysResult<()> {
        if self.is_dir()? {
            Ok(())
        } else {
            Err(Errno::ENOTDIR)
        }
    }

    fn same_fs<'a>(&self, other: &'a Arc<dyn Inode>) -> SysResult<&'a ONode> {
        match other.as_any().downcast_ref::<ONode>() {
            Some(o) if Arc::ptr_eq(&o.fs, &self.fs) => Ok(o),
            _ => Err(Errno::EXDEV),
        }
    }

    /// Removes `name` from this directory: a whiteout if the lower layer has it.
    fn remove_name(&self, name: &[u8], was_dir: bool) -> SysResult<()> {
        let hide = self.lower_has(name);
        let mut s = lock(&self.st);
        if hide {
            s.children.insert(name.to_vec(), Entry::Whiteout);
        } else {
            s.children.remove(name);
        }
        self.touch_dir(&mut s, if was_dir { -1 } else { 0 })
    }

    /// Checks that `victim`, a directory, is empty in the merged view.
    fn check_empty(victim: &ONode) -> SysResult<()> {
        if victim.merged()?.is_empty() {
            Ok(())
        } else {
            Err(Errno::ENOTEMPTY)
        }
    }
}

impl Inode for ONode {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn stat(&self) -> SysResult<Stat> {
        self.stat_locked(&lock(&self.st))
    }

    fn lookup(&self, name: &[u8]) -> SysResult<Arc<dyn Inode>> {
        self.check_dir()?;
        Ok(self.child(name)?)
    }

    fn readlink(&self) -> SysResult<Vec<u8>> {
        let s = lock(&self.st);
        if let Some(t) = &s.target {
            return Ok(t.clone());
        }
        match (&s.attr, &self.lower) {
            (None, Some(l)) => l.readlink(),
            _ => Err(Errno::EINVAL),
        }
    }

    fn open(&self, flags: i32) -> SysResult<Box<dyn FileImpl>> {
        let st = self.stat()?;
        let acc = flags & libc::O_ACCMODE;
        match st.file_type() {
            libc::S_IFDIR => {
                if acc != libc::O_RDONLY {
                    return Err(Errno::EISDIR);
                }
                Ok(Box::new(OverlayDir {
                    node: ONode {
                        fs: self.fs.clone(),
                        lower: self.lower.clone(),
                        st: self.st.clone(),
                    },
                    stat: st,
                    snapshot: Mutex::new(None),
                }))
            }
            libc::S_IFREG => {
                let writes = acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
                let mut s = lock(&self.st);
                if writes {
                    self.copy_up_with(&mut s, flags & libc::O_TRUNC == 0)?;
                }
                let Some(fd) = s.data.clone() else {
                    drop(s);
                    return match &self.lower {
                        Some(l) => l.open(flags & !libc::O_TRUNC),
                        None => Err(Errno::EIO),
                    };
                };
                if flags & libc::O_TRUNC != 0 {
                    fd.truncate(0)?;
                    if let Some(a) = s.attr.as_mut() {
                        let t = now();
                        a.mtime = t;
                        a.ctime = t;
                    }
                }
                Ok(Box::new(OverlayFile {
                    fd,
                    st: self.st.clone(),
                    dev_ino: (st.dev, st.ino),
                }))
            }
            libc::S_IFLNK => Err(Errno::ELOOP),
            // FIFOs and sockets made here need the sentry's own pipe and socket
            // objects; lower ones are host objects and are never opened.
            _ => Err(Errno::ENXIO),
        }
    }

    fn create(&self, name: &[u8], mode: u32, owner: Owner) -> SysResult<Arc<dyn Inode>> {
        self.check_dir()?;
        let node = self.fresh(libc::S_IFREG | (mode & 0o7777), owner);
        lock(&node.st).data = Some(self.fs.store.new_file()?);
        self.insert_new(name, node)
    }

    fn mkdir(&self, name: &[u8], mode: u32, owner: Owner) -> SysResult<Arc<dyn Inode>> {
        self.check_dir()?;
        let node = self.fresh(libc::S_IFDIR | (mode & 0o7777), owner);
        self.insert_new(name, node)
    }

    fn mknod(&self, name: &[u8], mode: u32, owner: Owner) -> SysResult<Arc<dyn Inode>> {
        self.check_dir()?;
        match mode & libc::S_IFMT {
            libc::S_IFIFO | libc::S_IFSOCK => {}
            _ => return Err(Errno::EPERM),
        }
        let node = self.fresh(mode & (libc::S_IFMT | 0o7777), owner);
        self.insert_new(name, node)
    }

    fn symlink(&self, name: &[u8], target: &[u8], owner: Owner) -> SysResult<Arc<dyn Inode>> {
        self.check_dir()?;
        let node = self.fresh(libc::S_IFLNK | 0o777, owner);
        {
            let mut s = lock(&node.st);
            s.target = Some(target.to_vec());
            if let Some(a) = s.attr.as_mut() {
                a.size = target.len() as i64;
            }
        }
        self.insert_new(name, node)
    }

    fn link(&self, name: &[u8], target: &Arc<dyn Inode>) -> SysResult<()> {
        self.check_dir()?;
        let t = self.same_fs(target)?;
        if t.is_dir()? {
            return Err(Errno::EPERM);
        }
        // The same node under two names: both see every later change.
        let node = ONode {
            fs: t.fs.clone(),
            lower: t.lower.clone(),
            st: t.st.clone(),
        };
        {
            let mut ts = lock(&t.st);
            t.copy_up_locked(&mut ts)?;
        }
        let mut s = lock(&self.st);
        match self.child_locked(&mut s, name) {
            Ok(_) => return Err(Errno::EEXIST),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        {
            let mut ts = lock(&t.st);
            if let Some(a) = ts.attr.as_mut() {
                a.nlink += 1;
                a.ctime = now();
            }
        }
        self.touch_dir(&mut s, 0)?;
        s.children
            .insert(name.to_vec(), Entry::Node(Arc::new(node)));
        Ok(())
    }

    fn unlink(&self, name: &[u8], dir: bool) -> SysResult<()> {
        self.check_dir()?;
        let victim = self.child(name)?;
        let is_dir = victim.is_dir()?;
        match (dir, is_dir) {
            (true, false) => return Err(Errno::ENOTDIR),
            (false, true) => return Err(Errno::EISDIR),
            (true, true) => ONode::check_empty(&victim)?,
            (false, false) => {
                // Other names of the same file see one link fewer.
                let mut vs = lock(&victim.st);
                if let Some(a) = vs.attr.as_mut() {
                    a.nlink = a.nlink.saturating_sub(1);
                    a.ctime = now();
                }
            }
        }
        self.remove_name(name, is_dir)
    }

    fn rename(
        &self,
        old: &[u8],
        new_dir: &Arc<dyn Inode>,
        new: &[u8],
        flags: u32,
    ) -> SysResult<()> {
        self.check_dir()?;
        let nd = self.same_fs(new_dir)?;
        nd.check_dir()?;
        if flags & !libc::RENAME_NOREPLACE != 0 {
            // RENAME_EXCHANGE and RENAME_WHITEOUT are not supported by this layer.
            return Err(Errno::EINVAL);
        }
        let _g = self
            .fs
            .rename_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let src = self.child(old)?;
        let src_dir = src.is_dir()?;
        let same_dir = Arc::ptr_eq(&self.st, &nd.st);
        if same_dir && old == new {
            return Ok(());
        }
        if src_dir && src.lower.is_some() {
            // A lower directory cannot be moved without redirects: EXDEV makes
            // `mv` fall back to copying, as on Linux overlayfs.
            return Err(Errno::EXDEV);
        }
        if src_dir && Arc::ptr_eq(&src.st, &nd.st) {
            return Err(Errno::EINVAL);
        }
        let dst_dir = match nd.child(new) {
            Ok(dst) => {
                if flags & libc::RENAME_NOREPLACE != 0 {
                    return Err(Errno::EEXIST);
                }
                if Arc::ptr_eq(&dst.st, &src.st) {
                    // Two names of one file: rename does nothing.
                    return Ok(());
                }
                let d = dst.is_dir()?;
                match (src_dir, d) {
                    (true, false) => return Err(Errno::ENOTDIR),
                    (false, true) => return Err(Errno::EISDIR),
                    (true, true) => ONode::check_empty(&dst)?,
                    (false, false) => {}
                }
                Some(d)
            }
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(e),
        };
        src.copy_up()?;
        let moved = Entry::Node(src.clone());
        self.remove_name(old, src_dir)?;
        let mut ns = lock(&nd.st);
        let links = match (src_dir, dst_dir) {
            (true, None) => 1,
            (false, Some(true)) => -1,
            _ => 0,
        };
        nd.touch_dir(&mut ns, links)?;
        ns.children.insert(new.to_vec(), moved);
        Ok(())
    }

    fn setattr(&self, attr: &SetAttr) -> SysResult<()> {
        let mut s = lock(&self.st);
        self.copy_up_with(&mut s, attr.size != Some(0))?;
        let data = s.data.clone();
        let Some(a) = s.attr.as_mut() else {
            return Err(Errno::EIO);
        };
        if let Some(size) = attr.size {
            match (a.file_type(), &data) {
                (libc::S_IFREG, Some(fd)) => fd.truncate(size)?,
                (libc::S_IFDIR, _) => return Err(Errno::EISDIR),
                _ => return Err(Errno::EINVAL),
            }
        }
        let t = now();
        if let Some(uid) = attr.uid {
            a.uid = uid;
        }
        if let Some(gid) = attr.gid {
            a.gid = gid;
        }
        if let Some(mode) = attr.mode {
            a.mode = (a.mode & libc::S_IFMT) | (mode & 0o7777);
        }
        let pick = |c: SetTime, old: (i64, i64)| match c {
            SetTime::Omit => old,
            SetTime::Now => t,
            SetTime::At(s, ns) => (s, ns),
        };
        a.atime = pick(attr.atime, a.atime);
        a.mtime = pick(attr.mtime, a.mtime);
        if attr.size.is_some() && attr.mtime == SetTime::Omit {
            a.mtime = t;
        }
        a.ctime = t;
        Ok(())
    }

    fn getxattr(&self, name: &[u8]) -> SysResult<Vec<u8>> {
        let s = lock(&self.st);
        match (&s.attr, &self.lower) {
            (None, Some(l)) => {
                let l = l.clone();
                drop(s);
                match l.getxattr(name) {
                    // The upper layer will hold what the host cannot.
                    Err(Errno::EOPNOTSUPP) if check_name(name).is_ok() => Err(Errno::ENODATA),
                    r => r,
                }
            }
            _ => s.xattrs.get(name),
        }
    }

    fn setxattr(&self, name: &[u8], value: &[u8], flags: i32) -> SysResult<()> {
        check_name(name)?;
        let mut s = lock(&self.st);
        self.copy_up_locked(&mut s)?;
        s.xattrs.set(name, value, flags)?;
        if let Some(a) = s.attr.as_mut() {
            a.ctime = now();
        }
        Ok(())
    }

    fn listxattr(&self) -> SysResult<Vec<Vec<u8>>> {
        let s = lock(&self.st);
        match (&s.attr, &self.lower) {
            (None, Some(l)) => {
                let l = l.clone();
                drop(s);
                l.listxattr()
            }
            _ => Ok(s.xattrs.names()),
        }
    }

    fn posix_acl(&self, default: bool) -> Option<crate::vfs::acl::Acl> {
        let s = lock(&self.st);
        match (&s.attr, &self.lower) {
            (None, Some(l)) => {
                let l = l.clone();
                drop(s);
                l.posix_acl(default)
            }
            _ => s.xattrs.acl(if default {
                crate::vfs::acl::DEFAULT
            } else {
                crate::vfs::acl::ACCESS
            }),
        }
    }

    fn removexattr(&self, name: &[u8]) -> SysResult<()> {
        check_name(name)?;
        let mut s = lock(&self.st);
        self.copy_up_locked(&mut s)?;
        s.xattrs.remove(name)?;
        if let Some(a) = s.attr.as_mut() {
            a.ctime = now();
        }
        Ok(())
    }

    fn mutation_refused(&self) -> Errno {
        Errno::EPERM
    }

    fn fs_id(&self) -> usize {
        Arc::as_ptr(&self.fs) as usize
    }

    fn statfs(&self) -> SysResult<crate::vfs::StatFs> {
        let mut s = match &self.lower {
            Some(l) => l.statfs()?,
            None => crate::vfs::StatFs {
                bsize: 4096,
                namelen: 255,
                frsize: 4096,
                ..Default::default()
            },
        };
        s.kind = OVERLAYFS_SUPER_MAGIC;
        s.flags &= !(libc::ST_RDONLY as i64);
        // New files' data in memory: the space is the in-memory part's bound.
        if let Some(m) = self.fs.store.memory_statfs() {
            let m = m?;
            s.bsize = m.bsize;
            s.frsize = m.frsize;
            s.blocks = m.blocks;
            s.bfree = m.bfree;
            s.bavail = m.bavail;
        }
        Ok(s)
    }
}

/// A regular file of the upper layer, in its data file (see [`store`]).
struct OverlayFile {
    fd: Data,
    st: Arc<Mutex<State>>,
    dev_ino: (u64, u64),
}

impl FileImpl for OverlayFile {
    fn read(&self, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        self.fd.read(buf, offset)
    }

    fn write(&self, buf: &[u8], offset: u64) -> SysResult<usize> {
        let n = self.fd.write(buf, offset)?;
        if let Some(a) = lock(&self.st).attr.as_mut() {
            let t = now();
            a.mtime = t;
            a.ctime = t;
        }
        Ok(n)
    }

    fn stat(&self) -> SysResult<Stat> {
        let s = lock(&self.st);
        let a = s.attr.ok_or(Errno::EIO)?;
        with_data_size(a, Some(&self.fd))
    }

    fn allocate(&self, mode: i32, offset: u64, len: u64) -> SysResult<()> {
        // In memory, the tmpfs of the overlay's bound refuses what does not fit (a
        // range larger than itself at once, as Linux's tmpfs); on disk, the disk's
        // filesystem decides. Each file by where its own data is.
        self.fd.allocate(mode, offset, len)?;
        if let Some(a) = lock(&self.st).attr.as_mut() {
            let t = now();
            a.mtime = t;
            a.ctime = t;
        }
        Ok(())
    }

    fn mappable(&self) -> Option<Arc<dyn Mappable>> {
        self.map_source().ok()
    }

    fn map_source(&self) -> SysResult<Arc<dyn Mappable>> {
        self.fd.mappable(self.dev_ino.0, self.dev_ino.1)
    }
}

/// An open merged directory. The listing is taken when read from position 0 and
/// positions index into it, so a listing in progress is stable under changes.
struct OverlayDir {
    node: ONode,
    stat: Stat,
    /// This directory's inode number and merged entries, taken at position 0.
    #[allow(clippy::type_complexity)]
    snapshot: Mutex<Option<(u64, Arc<Vec<Listed>>)>>,
}

impl FileImpl for OverlayDir {
    fn read(&self, _buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EISDIR)
    }

    fn write(&self, _buf: &[u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EBADF)
    }

    fn stat(&self) -> SysResult<Stat> {
        self.node.stat().or(Ok(self.stat))
    }

    fn getdents(&self, pos: u64, max_bytes: usize) -> SysResult<Vec<DirEntry>> {
        let mut snap = self.snapshot.lock().map_err(|_| Errno::EIO)?;
        let (ino, entries) = match &*snap {
            Some(kept) if pos != 0 => kept.clone(),
            _ => {
                let taken = (self.node.stat()?.ino, self.node.merged()?);
                *snap = Some(taken.clone());
                taken
            }
        };
        drop(snap);
        // Positions: 0 is ".", 1 is "..", 2 + i the merged entry i.
        let mut out = Vec::new();
        let mut used = 0;
        let start = usize::try_from(pos).unwrap_or(usize::MAX);
        let dots = [
            (&b"."[..], ino, libc::DT_DIR),
            (&b".."[..], ino, libc::DT_DIR),
        ];
        let all = dots
            .into_iter()
            .chain(entries.iter().map(|(n, i, k)| (n.as_slice(), *i, *k)));
        for (i, (name, ino, kind)) in all.enumerate().skip(start) {
            let len = (19 + name.len() + 1 + 7) & !7;
            if used + len > max_bytes && !out.is_empty() {
                break;
            }
            used += len;
            out.push(DirEntry {
                ino,
                next: i as u64 + 1,
                kind,
                name: name.to_vec(),
            });
        }
        Ok(out)
    }
}
