//! tmpfs: a filesystem held entirely by the sentry. Directories, symlinks and
//! metadata live in sentry memory; regular file data lives in the sandbox's memory
//! ([`crate::fs::memfile`]): one extent (a host memfd) per file, so a file's bytes
//! are always at (its extent, offset).
//!
//! Size limit: every page a file holds counts against the mount's `size=` (as on
//! Linux, by pages really held, not by file size: a sparse file costs only what is
//! written). A mount made at boot has a host tmpfs of its own, of the same size
//! ([`crate::sys::host_tmpfs`]), which holds its files' data: the host kernel
//! then enforces the limit on every page however it is asked for (`ENOSPC` or a
//! short write for `write(2)`, `ENOSPC` for `fallocate`, SIGBUS for a write fault
//! through a shared mapping) and `statfs` reports the host's count, so the three
//! always agree, as on Linux. A mount made once the sentry is confined (`mount(2)`
//! inside the sandbox, a container added to a running pod) takes one of the spare
//! host tmpfs instances made before confinement; the pages written by `write(2)` and
//! `fallocate` are charged by the sentry before they are written (`ENOSPC`, or a
//! short write, at `size=` exactly), and before the first mapping of one of its
//! files a spare larger than the mount is filled to the mount's size
//! ([`HostTmpfs::hold_faults`]), so the host refuses a fault at `size=` exactly too
//! Where the host cannot hold faults to `size=` (a spare more than 64 MiB larger
//! than the mount, a filler the host could not allocate, or no spare left, when the
//! files are memfds) a mapped file is charged its whole size
//! ([`Tmpfs::reserves`]): a fault cannot take a page past a file's end, so the pages
//! mappings can take are never more than the mount has room for. The price, in
//! those cases only: a sparse file larger than the room left cannot be mapped
//! (`ENOMEM`) nor grown while mapped (`ENOSPC`), where Linux would map it and send
//! SIGBUS at the first page past the room.
//!
//! Locking: one per-filesystem `tree` lock serialises namespace changes (create,
//! link, unlink, rename), so a rename never holds two directory locks in conflicting
//! orders; lookups take only the directory's own lock. File data and metadata each
//! have their own lock, always taken after directory locks.
//!
//! FIFOs and sockets exist as nodes (`mknod`, `stat`, `unlink`), but opening one
//! gives `ENXIO` here: pipes belong to the pipe filesystem, which is not wired to
//! tmpfs nodes yet.

mod file;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::config::MountConfig;
use crate::errno::{Errno, SysResult};
use crate::fs::memfile::{Extent, MemoryFile, MAX_FILE_SIZE};
use crate::sys::host;
use crate::sys::host_tmpfs::{self, HostTmpfs};
use crate::vfs::mount::{parse_options, FsConstructor};
use crate::vfs::xattr::XattrMap;
use crate::vfs::{FileImpl, Inode, Owner, SetAttr, SetTime, Stat, StatFs};

use file::{TmpDirFile, TmpFile};

/// `TMPFS_MAGIC`.
const TMPFS_MAGIC: i64 = 0x0102_1994;
/// What Linux's tmpfs reports as a directory's size per entry (`BOGO_DIRENT_SIZE`).
const BOGO_DIRENT_SIZE: i64 = 20;
const PAGE: u64 = 4096;

static NEXT_FS_ID: AtomicU64 = AtomicU64::new(1);

/// One tmpfs instance.
pub struct Tmpfs {
    id: usize,
    dev: u64,
    mf: Arc<MemoryFile>,
    next_ino: AtomicU64,
    tree: Mutex<()>,
    /// Size limit in bytes (`size=`).
    limit: u64,
    /// The host tmpfs holding the file data, if the mount has one (see the module
    /// doc): its size is `limit` or, for a spare, possibly larger.
    host: Option<HostTmpfs>,
    /// Pages held by file data, as last counted, and those set aside for mapped
    /// files (`reserved`, see [`Tmpfs::reserves`]).
    pages: AtomicU64,
    /// The part of `pages` set aside and not held.
    reserved: AtomicU64,
    /// Files that have been mapped: pages may appear in them without a write, so
    /// they are counted again when usage is read.
    mapped: Mutex<Vec<Weak<TmpInode>>>,
    inodes: AtomicU64,
}

/// The current wall-clock time as (seconds, nanoseconds).
pub(crate) fn now() -> (i64, i64) {
    host::clock_gettime(libc::CLOCK_REALTIME)
        .map(|t| (t.tv_sec, t.tv_nsec))
        .unwrap_or((0, 0))
}

impl Tmpfs {
    /// Whether the host tmpfs refuses every page past `limit` itself (its size is
    /// the limit, or a filler holds a spare's extra pages): else the sentry charges
    /// `write` and `fallocate` before the host sees them.
    fn host_enforces(&self) -> bool {
        self.host
            .as_ref()
            .is_some_and(|h| h.exact() && h.mount_pages() == self.limit.div_ceil(PAGE))
    }

    /// Whether the host may let a fault through a mapping take a page past `size=`:
    /// no host tmpfs (the pool had no spare left for the mount), a spare more than
    /// a filler may hold larger than `size=`, or a filler the host could not
    /// allocate. Then a mapped file is charged its whole size ([`FileData::reserved`]),
    /// so the pages its mappings can take are never more than the mount has room
    /// for (a sparse file larger than the room left cannot be mapped: `ENOMEM`, nor
    /// grown while mapped: `ENOSPC`).
    fn reserves(&self) -> bool {
        !self.host_enforces()
    }

    /// Moves the pages in use from `before` to `now` (one file's count changed).
    fn charge(&self, before: u64, now: u64) {
        if now >= before {
            self.pages.fetch_add(now - before, Ordering::Relaxed);
        } else {
            self.pages.fetch_sub(before - now, Ordering::Relaxed);
        }
    }

    /// Counts again the pages of every mapped file, but `skip` (whose file lock the
    /// caller holds).
    fn recount_mapped(&self, skip: Option<&TmpInode>) {
        let files: Vec<Arc<TmpInode>> = match self.mapped.lock() {
            Ok(mut m) => {
                m.retain(|w| w.strong_count() > 0);
                m.iter().filter_map(Weak::upgrade).collect()
            }
            Err(_) => return,
        };
        for f in files {
            if skip.is_some_and(|s| std::ptr::eq(s, &*f)) {
                continue;
            }
            let Body::File(data) = &f.body else {
                continue;
            };
            // With a file lock held, another file's lock is only tried (two writers
            // near the limit would otherwise wait on each other); a file busy now
            // is counted after its own write anyway.
            let fd = if skip.is_some() {
                data.try_lock().ok()
            } else {
                data.lock().ok()
            };
            if let Some(mut fd) = fd {
                if let Some(e) = fd.ext.clone() {
                    let _ = f.recharge(&e);
                    f.settle(&mut fd);
                }
            }
        }
    }
}

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    atime: (i64, i64),
    mtime: (i64, i64),
    ctime: (i64, i64),
    /// The containing directory (directories only; `..`).
    parent: Weak<TmpInode>,
    /// An `O_TMPFILE` file that may still be given a name by `linkat`.
    linkable: bool,
    /// Extended attributes.
    xattrs: XattrMap,
}

pub(crate) struct DirData {
    by_name: HashMap<Vec<u8>, (u64, Arc<TmpInode>)>,
    /// Entries by creation sequence: `getdents` positions are sequence numbers, so
    /// removing an entry never shifts another's position.
    order: BTreeMap<u64, Vec<u8>>,
    next_seq: u64,
}

impl DirData {
    fn new() -> Self {
        DirData {
            by_name: HashMap::new(),
            order: BTreeMap::new(),
            // 0 and 1 are "." and "..".
            next_seq: 2,
        }
    }
    fn insert(&mut self, name: &[u8], node: Arc<TmpInode>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, name.to_vec());
        self.by_name.insert(name.to_vec(), (seq, node));
    }
    fn remove(&mut self, name: &[u8]) -> Option<Arc<TmpInode>> {
        let (seq, node) = self.by_name.remove(name)?;
        self.order.remove(&seq);
        Some(node)
    }
    fn get(&self, name: &[u8]) -> Option<Arc<TmpInode>> {
        self.by_name.get(name).map(|(_, n)| n.clone())
    }
}

pub(crate) struct FileData {
    /// The file's memory, created with its first byte (and kept until the inode
    /// goes, so every mapping holds the same memfd as the file).
    ext: Option<Arc<Extent>>,
    size: u64,
    /// Pages `[0, dense)` are known to be held: a write inside them charges
    /// nothing and needs no count.
    dense: u64,
    /// Listed in the filesystem's `mapped` files.
    mapped: bool,
    /// Pages charged on top of those held, while the file is mapped and the host
    /// does not hold faults to `size=` ([`Tmpfs::reserves`]): every page up to its
    /// size may appear through a mapping unseen, so it counts as its size.
    reserved: u64,
}

impl FileData {
    /// The extent, created (sized to the file) on first need.
    fn extent(&mut self, fs: &Tmpfs) -> SysResult<Arc<Extent>> {
        if let Some(e) = &self.ext {
            return Ok(e.clone());
        }
        let e = Arc::new(fs.mf.alloc_in(fs.host.as_ref())?);
        e.set_size(self.size)?;
        self.ext = Some(e.clone());
        Ok(e)
    }
}

enum Body {
    Dir(Mutex<DirData>),
    File(Mutex<FileData>),
    Symlink(Vec<u8>),
    Special,
}

/// A tmpfs object.
pub struct TmpInode {
    fs: Arc<Tmpfs>,
    me: Weak<TmpInode>,
    ino: u64,
    meta: Mutex<Meta>,
    body: Body,
}

impl Tmpfs {
    /// A new, empty tmpfs whose root directory has `mode` and `owner`; `limit` is
    /// the size `statfs` reports (0: half the host's memory, as Linux's default).
    /// Its files' data are memfds (see the module doc).
    pub fn new_root(mf: Arc<MemoryFile>, mode: u32, owner: Owner, limit: u64) -> Arc<TmpInode> {
        Self::new_root_in(mf, mode, owner, limit, None)
    }

    /// [`Tmpfs::new_root`] with its files' data in `host`, which must have been made
    /// with the size `limit` (or [`default_limit`] for 0).
    pub fn new_root_in(
        mf: Arc<MemoryFile>,
        mode: u32,
        owner: Owner,
        limit: u64,
        host: Option<HostTmpfs>,
    ) -> Arc<TmpInode> {
        let id = NEXT_FS_ID.fetch_add(1, Ordering::Relaxed);
        let limit = if limit == 0 { default_limit() } else { limit };
        let fs = Arc::new(Tmpfs {
            id: id as usize,
            // Anonymous device numbers, as Linux gives pseudo filesystems (0:N).
            dev: 0x40 + id,
            mf,
            next_ino: AtomicU64::new(1),
            tree: Mutex::new(()),
            limit,
            host,
            pages: AtomicU64::new(0),
            reserved: AtomicU64::new(0),
            mapped: Mutex::new(Vec::new()),
            inodes: AtomicU64::new(0),
        });
        let root = TmpInode::new(&fs, libc::S_IFDIR | (mode & 0o7777), owner, Weak::new());
        if let Ok(mut m) = root.meta.lock() {
            m.parent = root.me.clone();
        }
        root
    }

    /// The constructor the mount table uses for `tmpfs` (and its stand-ins), whose
    /// files keep their data in `mf`: options `mode=`, `uid=`, `gid=`, `size=`
    /// (bytes, with k/m/g suffixes).
    pub fn constructor(mf: Arc<MemoryFile>) -> FsConstructor {
        Box::new(move |mc: &MountConfig| {
            let (_, opts) = parse_options(&mc.options);
            let mut mode = 0o1777;
            let mut owner = Owner { uid: 0, gid: 0 };
            let mut limit = 0;
            for o in opts {
                let (k, v) = o.split_once('=').unwrap_or((o.as_str(), ""));
                match k {
                    "mode" => mode = u32::from_str_radix(v, 8).map_err(|_| Errno::EINVAL)?,
                    "uid" => owner.uid = v.parse().map_err(|_| Errno::EINVAL)?,
                    "gid" => owner.gid = v.parse().map_err(|_| Errno::EINVAL)?,
                    "size" => limit = parse_size(v)?,
                    // Pages, as Linux's (the last of size= and nr_blocks= counts).
                    "nr_blocks" if !v.ends_with('%') => {
                        limit = parse_size(v)?.checked_mul(PAGE).ok_or(Errno::EINVAL)?
                    }
                    // Accepted and not needed: inode limits, huge pages, NUMA policy.
                    "nr_inodes" | "huge" | "mpol" | "inode64" | "noswap" => {}
                    _ => return Err(Errno::EINVAL),
                }
            }
            let limit = if limit == 0 { default_limit() } else { limit };
            let host = match host_tmpfs::mount(limit) {
                Ok(h) => {
                    if h.pages() != limit.div_ceil(PAGE) {
                        tracing::debug!(
                            "tmpfs {}: a spare host tmpfs of {} pages for its {} pages (filled at its first mapping)",
                            mc.destination,
                            h.pages(),
                            limit.div_ceil(PAGE)
                        );
                    }
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(
                        "tmpfs {}: no host tmpfs for its data ({e}{}): its mapped files count at their size",
                        mc.destination,
                        if host_tmpfs::sealed() {
                            ", no spare left"
                        } else {
                            ""
                        }
                    );
                    None
                }
            };
            Ok(Tmpfs::new_root_in(mf.clone(), mode, owner, limit, host) as Arc<dyn Inode>)
        })
    }
}

/// A filesystem no one mounts that holds the file data of an in-memory overlay's
/// upper layer (`fs::overlay::store`): `limit` bytes (0: [`default_limit`]) in
/// `host` (a host tmpfs of that size, or a spare) or, without one, in memfds whose
/// mapped files are charged their size (see [`Tmpfs::reserves`]). Its files are made
/// by [`TmpInode::unnamed_file`] and reached only through the overlay's nodes.
pub fn for_data(limit: u64, host: Option<HostTmpfs>) -> Arc<TmpInode> {
    Tmpfs::new_root_in(
        MemoryFile::new(),
        0o700,
        Owner { uid: 0, gid: 0 },
        limit,
        host,
    )
}

/// A tmpfs's size without `size=`: half the machine's memory, as on Linux.
pub fn default_limit() -> u64 {
    host::sysinfo()
        .map(|s| s.totalram * s.mem_unit as u64 / 2)
        .unwrap_or(1 << 30)
}

/// A size as Linux's tmpfs takes it: bytes with an optional k/m/g/t/p/e suffix,
/// or `N%` of the machine's memory.
fn parse_size(v: &str) -> SysResult<u64> {
    if let Some(pct) = v.strip_suffix('%') {
        let pct: u64 = pct.parse().map_err(|_| Errno::EINVAL)?;
        let ram = host::sysinfo()
            .map(|s| s.totalram * s.mem_unit as u64)
            .map_err(|_| Errno::EINVAL)?;
        return ram.checked_mul(pct).map(|b| b / 100).ok_or(Errno::EINVAL);
    }
    let shift = match v.as_bytes().last() {
        Some(b'k' | b'K') => 10,
        Some(b'm' | b'M') => 20,
        Some(b'g' | b'G') => 30,
        Some(b't' | b'T') => 40,
        Some(b'p' | b'P') => 50,
        Some(b'e' | b'E') => 60,
        _ => 0,
    };
    let num = if shift == 0 { v } else { &v[..v.len() - 1] };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or(Errno::EINVAL)
}

impl TmpInode {
    fn new(fs: &Arc<Tmpfs>, mode: u32, owner: Owner, parent: Weak<TmpInode>) -> Arc<TmpInode> {
        let t = now();
        let body = match mode & libc::S_IFMT {
            libc::S_IFDIR => Body::Dir(Mutex::new(DirData::new())),
            libc::S_IFREG => Body::File(Mutex::new(FileData {
                ext: None,
                size: 0,
                dense: 0,
                mapped: false,
                reserved: 0,
            })),
            _ => Body::Special,
        };
        Self::with_body(fs, mode, owner, parent, body, t)
    }

    fn with_body(
        fs: &Arc<Tmpfs>,
        mode: u32,
        owner: Owner,
        parent: Weak<TmpInode>,
        body: Body,
        t: (i64, i64),
    ) -> Arc<TmpInode> {
        fs.inodes.fetch_add(1, Ordering::Relaxed);
        let nlink = if mode & libc::S_IFMT == libc::S_IFDIR {
            2
        } else {
            1
        };
        Arc::new_cyclic(|me| TmpInode {
            fs: fs.clone(),
            me: me.clone(),
            ino: fs.next_ino.fetch_add(1, Ordering::Relaxed),
            meta: Mutex::new(Meta {
                mode,
                uid: owner.uid,
                gid: owner.gid,
                nlink,
                atime: t,
                mtime: t,
                ctime: t,
                parent,
                linkable: false,
                xattrs: XattrMap::default(),
            }),
            body,
        })
    }

    fn arc(&self) -> SysResult<Arc<TmpInode>> {
        self.me.upgrade().ok_or(Errno::ENOENT)
    }

    fn meta(&self) -> SysResult<std::sync::MutexGuard<'_, Meta>> {
        self.meta.lock().map_err(|_| Errno::EIO)
    }

    fn dir(&self) -> SysResult<std::sync::MutexGuard<'_, DirData>> {
        match &self.body {
            Body::Dir(d) => d.lock().map_err(|_| Errno::EIO),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn is_dir(&self) -> bool {
        matches!(self.body, Body::Dir(_))
    }

    /// Marks a change of this directory's entries.
    fn touch_dir(&self) -> SysResult<()> {
        let t = now();
        let mut m = self.meta()?;
        m.mtime = t;
        m.ctime = t;
        Ok(())
    }

    fn touch_ctime(&self) -> SysResult<()> {
        self.meta()?.ctime = now();
        Ok(())
    }

    fn add_nlink(&self, delta: i64) -> SysResult<()> {
        let mut m = self.meta()?;
        m.nlink = m.nlink.saturating_add_signed(delta);
        Ok(())
    }

    fn same_fs(&self, other: &dyn Inode) -> SysResult<Arc<TmpInode>> {
        let o = other
            .as_any()
            .downcast_ref::<TmpInode>()
            .ok_or(Errno::EXDEV)?;
        if !Arc::ptr_eq(&o.fs, &self.fs) {
            return Err(Errno::EXDEV);
        }
        o.arc()
    }

    /// Adds a new node of `mode` named `name` here.
    fn add_node(
        &self,
        name: &[u8],
        node_mode: u32,
        owner: Owner,
        body: Option<Body>,
    ) -> SysResult<Arc<dyn Inode>> {
        let _tree = self.fs.tree.lock().map_err(|_| Errno::EIO)?;
        if self.meta()?.nlink == 0 {
            // A removed directory takes no new entries.
            return Err(Errno::ENOENT);
        }
        let mut d = self.dir()?;
        if d.by_name.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let node = match body {
            Some(b) => TmpInode::with_body(&self.fs, node_mode, owner, self.me.clone(), b, now()),
            None => TmpInode::new(&self.fs, node_mode, owner, self.me.clone()),
        };
        d.insert(name, node.clone());
        drop(d);
        if node.is_dir() {
            self.add_nlink(1)?;
        }
        self.touch_dir()?;
        Ok(node)
    }

    /// A new, empty regular file of this filesystem with no name (for
    /// [`for_data`]'s user: the overlay holds it, and it goes with its last holder).
    pub(crate) fn unnamed_file(&self) -> SysResult<Arc<TmpInode>> {
        let node = TmpInode::new(
            &self.fs,
            libc::S_IFREG | 0o600,
            Owner { uid: 0, gid: 0 },
            Weak::new(),
        );
        node.meta()?.nlink = 0;
        Ok(node)
    }

    /// This regular file as a mapping source that shows as `(dev, ino)` (the
    /// overlay file whose data it holds).
    pub(crate) fn mapping_as(
        self: &Arc<Self>,
        dev: u64,
        ino: u64,
    ) -> SysResult<Arc<dyn crate::mm::Mappable>> {
        file::mapping(self, dev, ino)
    }

    /// Size and extent of a regular file.
    pub(crate) fn file_data(&self) -> SysResult<std::sync::MutexGuard<'_, FileData>> {
        match &self.body {
            Body::File(f) => f.lock().map_err(|_| Errno::EIO),
            Body::Dir(_) => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    /// The file's memory, for a mapping (created if the file has none yet). The
    /// file is listed as mapped from now on, so pages written through the mapping
    /// are counted when usage is read.
    pub(crate) fn mapping_extent(&self) -> SysResult<Arc<Extent>> {
        // Faults are the host's alone to refuse: a spare larger than the mount is
        // filled first, so they stop at `size=` exactly (see `HostTmpfs::hold_faults`).
        // Where it cannot be, mapped files are charged their size (`Tmpfs::reserves`).
        if let Some(h) = &self.fs.host {
            if let Err(e) = h.hold_faults() {
                tracing::debug!(
                    "tmpfs: spare host tmpfs of {} pages not filled ({e}): mapped files count at their size against its {} pages",
                    h.pages(),
                    self.fs.limit.div_ceil(PAGE)
                );
            }
        }
        let mut fd = self.file_data()?;
        let e = fd.extent(&self.fs)?;
        if !fd.mapped {
            if self.fs.reserves() {
                // Every page up to the size may come through the mapping: it must fit.
                self.fs.recount_mapped(Some(self));
                self.recharge(&e)?;
                let need = fd.size.div_ceil(PAGE).saturating_sub(e.counted());
                let free = self
                    .fs
                    .limit
                    .div_ceil(PAGE)
                    .saturating_sub(self.fs.pages.load(Ordering::Relaxed));
                if need > free {
                    return Err(Errno::ENOMEM);
                }
            }
            fd.mapped = true;
            self.settle(&mut fd);
            if let Ok(mut m) = self.fs.mapped.lock() {
                m.retain(|w| w.strong_count() > 0);
                m.push(self.me.clone());
            }
        }
        Ok(e)
    }

    /// Reads file data at `off`.
    pub(crate) fn read_at(&self, buf: &mut [u8], off: u64) -> SysResult<usize> {
        let fd = self.file_data()?;
        if off >= fd.size {
            return Ok(0);
        }
        let n = ((fd.size - off) as usize).min(buf.len());
        match &fd.ext {
            Some(e) => e.read(off, &mut buf[..n])?,
            None => buf[..n].fill(0),
        }
        drop(fd);
        self.touch_atime()?;
        Ok(n)
    }

    /// `relatime`: atime moves only if it is older than mtime or ctime, or a day old.
    fn touch_atime(&self) -> SysResult<()> {
        let t = now();
        let mut m = self.meta()?;
        if m.atime <= m.mtime || m.atime <= m.ctime || t.0 - m.atime.0 >= 24 * 3600 {
            m.atime = t;
        }
        Ok(())
    }

    /// Writes file data at `off`; short (or `EFBIG`) at the largest file size,
    /// short (or `ENOSPC`) when the filesystem has no page left for the rest.
    pub(crate) fn write_at(&self, buf: &[u8], off: u64) -> SysResult<usize> {
        let mut fd = self.file_data()?;
        if off >= MAX_FILE_SIZE && !buf.is_empty() {
            return Err(Errno::EFBIG);
        }
        let mut n = ((MAX_FILE_SIZE - off) as usize).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let e = fd.extent(&self.fs)?;
        let (first, last) = (off / PAGE, (off + n as u64).div_ceil(PAGE));
        let grows = last > fd.dense;
        // A host tmpfs of the mount's size refuses the pages past it itself.
        if grows && !self.fs.host_enforces() {
            // A mapped file set aside its pages up to its size: only growth costs.
            let reserving = fd.mapped && self.fs.reserves();
            // Pages past `dense` may be new; only near the limit are they counted
            // exactly (with the mapped files' pages brought up to date first).
            let worst = if reserving {
                last - first.min(fd.size / PAGE)
            } else {
                last - first.max(fd.dense)
            };
            let limit = self.fs.limit.div_ceil(PAGE);
            if self.fs.pages.load(Ordering::Relaxed) + worst > limit {
                self.fs.recount_mapped(Some(self));
                self.recharge(&e)?;
                self.settle(&mut fd);
                let free = limit.saturating_sub(self.fs.pages.load(Ordering::Relaxed));
                let set_aside = if reserving { fd.reserved } else { 0 };
                if let Some(cut) = e.nth_hole(off, off + n as u64, free + set_aside)? {
                    n = (cut - off) as usize;
                }
                if reserving {
                    // The size (which the file is charged) may grow by the room left.
                    let cap = (e.counted() + fd.reserved + free).saturating_mul(PAGE);
                    n = n.min(cap.saturating_sub(off) as usize);
                }
                if n == 0 {
                    return Err(Errno::ENOSPC);
                }
            }
        }
        let n = e.write(off, &buf[..n])?;
        let end = off + n as u64;
        if first <= fd.dense {
            fd.dense = fd.dense.max(end.div_ceil(PAGE));
        }
        if grows {
            self.recharge(&e)?;
        }
        if end > fd.size {
            fd.size = end;
        }
        self.settle(&mut fd);
        drop(fd);
        let t = now();
        let mut m = self.meta()?;
        m.mtime = t;
        m.ctime = t;
        Ok(n)
    }

    /// Counts the pages `e` holds now and moves the filesystem's total with them.
    fn recharge(&self, e: &Extent) -> SysResult<()> {
        let before = e.counted();
        let now = e.pages()?;
        self.fs.charge(before, now);
        Ok(())
    }

    /// Brings a file's reservation up to date with its size and the pages it held
    /// when last counted (see [`Tmpfs::reserves`]): a mapped file counts as the
    /// larger of the two; anything else as the pages it holds.
    fn settle(&self, fd: &mut FileData) {
        let want = match &fd.ext {
            Some(e) if fd.mapped && self.fs.reserves() => {
                fd.size.div_ceil(PAGE).saturating_sub(e.counted())
            }
            _ => 0,
        };
        self.fs.charge(fd.reserved, want);
        if want >= fd.reserved {
            self.fs
                .reserved
                .fetch_add(want - fd.reserved, Ordering::Relaxed);
        } else {
            self.fs
                .reserved
                .fetch_sub(fd.reserved - want, Ordering::Relaxed);
        }
        fd.reserved = want;
    }

    /// Sets the size of a regular file. Pages past a shrink are freed (a later
    /// extension, or a mapping, reads zeros there; a mapping gets SIGBUS while they
    /// are past the end).
    pub(crate) fn truncate(&self, size: u64) -> SysResult<()> {
        if size > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let mut fd = self.file_data()?;
        if fd.ext.is_none() && size == 0 {
            return Ok(());
        }
        let e = fd.extent(&self.fs)?;
        if fd.mapped && size > fd.size && self.fs.reserves() {
            // A mapped file is charged its size: the growth must fit.
            self.fs.recount_mapped(Some(self));
            self.recharge(&e)?;
            self.settle(&mut fd);
            let free = self
                .fs
                .limit
                .div_ceil(PAGE)
                .saturating_sub(self.fs.pages.load(Ordering::Relaxed));
            let want = size.div_ceil(PAGE).saturating_sub(e.counted());
            if want > fd.reserved + free {
                return Err(Errno::ENOSPC);
            }
        }
        e.set_size(size)?;
        fd.dense = fd.dense.min(size.div_ceil(PAGE));
        fd.size = size;
        self.recharge(&e)?;
        self.settle(&mut fd);
        Ok(())
    }

    /// `fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`: `[off, off+len)` reads
    /// as zeros and the whole pages in it go back to the filesystem (and to the
    /// host, which takes them from every mapping too); the size stays.
    pub(crate) fn punch_hole(&self, off: u64, len: u64) -> SysResult<()> {
        let end = off.checked_add(len).ok_or(Errno::EFBIG)?;
        if end > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let mut fd = self.file_data()?;
        let Some(e) = fd.ext.clone() else {
            // No data yet: nothing to give back.
            return Ok(());
        };
        e.zero(off, len)?;
        fd.dense = fd.dense.min(off / PAGE);
        self.recharge(&e)?;
        self.settle(&mut fd);
        drop(fd);
        let t = now();
        let mut m = self.meta()?;
        m.mtime = t;
        m.ctime = t;
        Ok(())
    }

    /// `fallocate` mode 0 or `FALLOC_FL_KEEP_SIZE`: allocates the pages of the range
    /// (`ENOSPC`, as Linux's tmpfs, when the range is larger than the filesystem or
    /// its missing pages do not fit), grows the size unless `keep_size`.
    pub(crate) fn allocate(&self, off: u64, len: u64, keep_size: bool) -> SysResult<()> {
        let end = off.checked_add(len).ok_or(Errno::EFBIG)?;
        if end > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let mut fd = self.file_data()?;
        let e = fd.extent(&self.fs)?;
        let (first, last) = (off / PAGE, end.div_ceil(PAGE));
        // A host tmpfs of the mount's size refuses (and undoes) an allocation that
        // does not fit itself.
        if !self.fs.host_enforces() {
            let limit = self.fs.limit.div_ceil(PAGE);
            if last - first > limit {
                return Err(Errno::ENOSPC);
            }
            // The pages the range lacks must all fit (Linux undoes a fallocate that
            // runs out midway, so a refused one changes nothing either).
            self.fs.recount_mapped(Some(self));
            self.recharge(&e)?;
            self.settle(&mut fd);
            let free = limit.saturating_sub(self.fs.pages.load(Ordering::Relaxed));
            // A mapped file's holes up to its size are already set aside, and its
            // size may grow by the room left (see `Tmpfs::reserves`).
            if e.nth_hole(off, end, free + fd.reserved)?.is_some()
                || fd.mapped
                    && self.fs.reserves()
                    && !keep_size
                    && last > e.counted() + fd.reserved + free
            {
                return Err(Errno::ENOSPC);
            }
        }
        e.allocate(off, len, keep_size)?;
        if first <= fd.dense {
            fd.dense = fd.dense.max(last);
        }
        self.recharge(&e)?;
        self.settle(&mut fd);
        if !keep_size && end > fd.size {
            fd.size = end;
            self.settle(&mut fd);
            drop(fd);
            let t = now();
            let mut m = self.meta()?;
            m.mtime = t;
            m.ctime = t;
        }
        Ok(())
    }

    fn stat_now(&self) -> SysResult<Stat> {
        let m = self.meta()?;
        let (size, blocks) = match &self.body {
            Body::File(f) => {
                let mut f = f.lock().map_err(|_| Errno::EIO)?;
                let held = match f.ext.clone() {
                    Some(e) if f.mapped => {
                        self.recharge(&e)?;
                        self.settle(&mut f);
                        e.counted()
                    }
                    Some(e) => e.counted(),
                    None => 0,
                };
                (f.size as i64, (held * (PAGE / 512)) as i64)
            }
            Body::Dir(d) => (
                (d.lock().map_err(|_| Errno::EIO)?.by_name.len() as i64 + 2) * BOGO_DIRENT_SIZE,
                0,
            ),
            Body::Symlink(t) => (t.len() as i64, 0),
            Body::Special => (0, 0),
        };
        Ok(Stat {
            dev: self.fs.dev,
            ino: self.ino,
            mode: m.mode,
            nlink: m.nlink,
            uid: m.uid,
            gid: m.gid,
            rdev: 0,
            size,
            blksize: PAGE as i64,
            blocks,
            atime: m.atime,
            mtime: m.mtime,
            ctime: m.ctime,
        })
    }

    /// Entries for `getdents` from sequence position `pos`: (position after, ino,
    /// type, name).
    pub(crate) fn entries_from(
        &self,
        pos: u64,
        max: usize,
    ) -> SysResult<Vec<crate::vfs::DirEntry>> {
        let mut out = Vec::new();
        if pos == 0 {
            out.push(crate::vfs::DirEntry {
                ino: self.ino,
                next: 1,
                kind: libc::DT_DIR,
                name: b".".to_vec(),
            });
        }
        if pos <= 1 {
            let pino = self
                .meta()?
                .parent
                .upgrade()
                .map(|p| p.ino)
                .unwrap_or(self.ino);
            out.push(crate::vfs::DirEntry {
                ino: pino,
                next: 2,
                kind: libc::DT_DIR,
                name: b"..".to_vec(),
            });
        }
        let d = self.dir()?;
        let mut bytes = 0usize;
        for (&seq, name) in d.order.range(pos.max(2)..) {
            if bytes > max {
                break;
            }
            let Some(node) = d.get(name) else { continue };
            let mode = node.meta()?.mode;
            bytes += 24 + name.len();
            out.push(crate::vfs::DirEntry {
                ino: node.ino,
                next: seq + 1,
                kind: dtype(mode),
                name: name.clone(),
            });
        }
        Ok(out)
    }

    fn is_empty_dir(&self) -> SysResult<bool> {
        Ok(self.dir()?.by_name.is_empty())
    }

    /// True if `self` is `anc` or lies below it.
    fn below(&self, anc: &TmpInode) -> SysResult<bool> {
        let mut cur = self.arc()?;
        loop {
            if std::ptr::eq(&*cur, anc) {
                return Ok(true);
            }
            let p = cur.meta()?.parent.upgrade();
            match p {
                Some(p) if !Arc::ptr_eq(&p, &cur) => cur = p,
                _ => return Ok(false),
            }
        }
    }

    fn set_parent(&self, p: &TmpInode) -> SysResult<()> {
        self.meta()?.parent = p.me.clone();
        Ok(())
    }
}

fn dtype(mode: u32) -> u8 {
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

impl Drop for Tmpfs {
    fn drop(&mut self) {
        tracing::trace!("tmpfs {} released", self.id);
    }
}

impl Drop for TmpInode {
    fn drop(&mut self) {
        self.fs.inodes.fetch_sub(1, Ordering::Relaxed);
        if let Body::File(f) = &self.body {
            if let Ok(f) = f.lock() {
                if let Some(e) = &f.ext {
                    self.fs.charge(e.counted() + f.reserved, 0);
                    self.fs.reserved.fetch_sub(f.reserved, Ordering::Relaxed);
                }
            }
        }
    }
}

impl Inode for TmpInode {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn stat(&self) -> SysResult<Stat> {
        self.stat_now()
    }

    fn lookup(&self, name: &[u8]) -> SysResult<Arc<dyn Inode>> {
        let d = self.dir()?;
        d.get(name)
            .map(|n| n as Arc<dyn Inode>)
            .ok_or(Errno::ENOENT)
    }

    fn readlink(&self) -> SysResult<Vec<u8>> {
        match &self.body {
            Body::Symlink(t) => {
                self.touch_atime()?;
                Ok(t.clone())
            }
            _ => Err(Errno::EINVAL),
        }
    }

    fn open(&self, _flags: i32) -> SysResult<Box<dyn FileImpl>> {
        match &self.body {
            Body::Dir(_) => Ok(Box::new(TmpDirFile::new(self.arc()?))),
            Body::File(_) => Ok(Box::new(TmpFile::new(self.arc()?))),
            Body::Symlink(_) => Err(Errno::ELOOP),
            Body::Special => Err(Errno::ENXIO),
        }
    }

    fn create(&self, name: &[u8], mode: u32, owner: Owner) -> SysResult<Arc<dyn Inode>> {
        self.add_node(name, libc::S_IFREG | (mode & 0o7777), owner, None)
    }

    fn mkdir(&self, name: &[u8], mode: u32, owner: Owner) -> SysResult<Arc<dyn Inode>> {
        self.add_node(name, libc::S_IFDIR | (mode & 0o7777), owner, None)
    }

    fn mknod(&self, name: &[u8], mode: u32, owner: Owner) -> SysResult<Arc<dyn Inode>> {
        match mode & libc::S_IFMT {
            libc::S_IFIFO | libc::S_IFSOCK => self.add_node(name, mode, owner, None),
            0 | libc::S_IFREG => self.create(name, mode, owner),
            _ => Err(Errno::EPERM),
        }
    }

    fn symlink(&self, name: &[u8], target: &[u8], owner: Owner) -> SysResult<Arc<dyn Inode>> {
        self.add_node(
            name,
            libc::S_IFLNK | 0o777,
            owner,
            Some(Body::Symlink(target.to_vec())),
        )
    }

    fn tmpfile(&self, mode: u32, owner: Owner) -> SysResult<Arc<dyn Inode>> {
        drop(self.dir()?);
        let node = TmpInode::new(
            &self.fs,
            libc::S_IFREG | (mode & 0o7777),
            owner,
            Weak::new(),
        );
        {
            let mut m = node.meta()?;
            m.nlink = 0;
            m.linkable = true;
        }
        Ok(node)
    }

    fn link(&self, name: &[u8], target: &Arc<dyn Inode>) -> SysResult<()> {
        let t = self.same_fs(&**target)?;
        if t.is_dir() {
            return Err(Errno::EPERM);
        }
        let _tree = self.fs.tree.lock().map_err(|_| Errno::EIO)?;
        {
            let m = t.meta()?;
            if m.nlink == 0 && !m.linkable {
                return Err(Errno::ENOENT);
            }
        }
        if self.meta()?.nlink == 0 {
            return Err(Errno::ENOENT);
        }
        let mut d = self.dir()?;
        if d.by_name.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        d.insert(name, t.clone());
        drop(d);
        {
            let mut m = t.meta()?;
            m.nlink += 1;
            m.linkable = false;
            m.ctime = now();
        }
        self.touch_dir()
    }

    fn unlink(&self, name: &[u8], dir: bool) -> SysResult<()> {
        let _tree = self.fs.tree.lock().map_err(|_| Errno::EIO)?;
        let mut d = self.dir()?;
        let node = d.get(name).ok_or(Errno::ENOENT)?;
        if dir {
            if !node.is_dir() {
                return Err(Errno::ENOTDIR);
            }
            if !node.is_empty_dir()? {
                return Err(Errno::ENOTEMPTY);
            }
        } else if node.is_dir() {
            return Err(Errno::EISDIR);
        }
        d.remove(name);
        drop(d);
        if dir {
            self.add_nlink(-1)?;
            let mut m = node.meta()?;
            m.nlink = 0;
            m.ctime = now();
        } else {
            let mut m = node.meta()?;
            m.nlink = m.nlink.saturating_sub(1);
            m.ctime = now();
        }
        self.touch_dir()
    }

    fn rename(
        &self,
        old: &[u8],
        new_dir: &Arc<dyn Inode>,
        new: &[u8],
        flags: u32,
    ) -> SysResult<()> {
        let nd = self.same_fs(&**new_dir)?;
        let _tree = self.fs.tree.lock().map_err(|_| Errno::EIO)?;
        let src = self.dir()?.get(old).ok_or(Errno::ENOENT)?;
        let dst = nd.dir()?.get(new);
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        if flags & libc::RENAME_NOREPLACE != 0 && dst.is_some() {
            return Err(Errno::EEXIST);
        }
        if exchange && dst.is_none() {
            return Err(Errno::ENOENT);
        }
        if nd.meta()?.nlink == 0 {
            return Err(Errno::ENOENT);
        }
        if let Some(dst) = &dst {
            if Arc::ptr_eq(dst, &src) {
                return Ok(());
            }
        }
        // A directory cannot move below itself (nor, when exchanging, the other).
        if src.is_dir() && nd.below(&src)? {
            return Err(Errno::EINVAL);
        }
        if exchange {
            if let Some(dst) = &dst {
                if dst.is_dir() && self.below(dst)? {
                    return Err(Errno::EINVAL);
                }
            }
        }
        let same_dir = std::ptr::eq(self, &*nd);
        if let (Some(dst), false) = (&dst, exchange) {
            match (src.is_dir(), dst.is_dir()) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if !dst.is_empty_dir()? => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        // Everything checked: apply.
        if exchange {
            let dst = dst.ok_or(Errno::ENOENT)?;
            if same_dir {
                let mut d = self.dir()?;
                d.remove(old);
                d.remove(new);
                d.insert(old, dst.clone());
                d.insert(new, src.clone());
            } else {
                let mut a = self.dir()?;
                let mut b = nd.dir()?;
                a.remove(old);
                b.remove(new);
                a.insert(old, dst.clone());
                b.insert(new, src.clone());
                drop((a, b));
                if src.is_dir() != dst.is_dir() {
                    let d = if src.is_dir() { 1 } else { -1 };
                    nd.add_nlink(d)?;
                    self.add_nlink(-d)?;
                }
                if src.is_dir() {
                    src.set_parent(&nd)?;
                }
                if dst.is_dir() {
                    dst.set_parent(self)?;
                }
            }
            dst.touch_ctime()?;
        } else {
            if let Some(dst) = &dst {
                let mut m = dst.meta()?;
                if dst.is_dir() {
                    m.nlink = 0;
                    drop(m);
                    nd.add_nlink(-1)?;
                } else {
                    m.nlink = m.nlink.saturating_sub(1);
                    m.ctime = now();
                }
            }
            if same_dir {
                let mut d = self.dir()?;
                d.remove(old);
                d.remove(new);
                d.insert(new, src.clone());
            } else {
                let mut a = self.dir()?;
                let mut b = nd.dir()?;
                a.remove(old);
                b.remove(new);
                b.insert(new, src.clone());
                drop((a, b));
                if src.is_dir() {
                    self.add_nlink(-1)?;
                    nd.add_nlink(1)?;
                    src.set_parent(&nd)?;
                }
            }
        }
        src.touch_ctime()?;
        self.touch_dir()?;
        if !same_dir {
            nd.touch_dir()?;
        }
        Ok(())
    }

    fn setattr(&self, a: &SetAttr) -> SysResult<()> {
        if let Some(size) = a.size {
            match &self.body {
                Body::File(_) => {
                    let old = self.file_data()?.size;
                    self.truncate(size)?;
                    if old != size {
                        let t = now();
                        let mut m = self.meta()?;
                        m.mtime = t;
                        m.ctime = t;
                    }
                }
                Body::Dir(_) => return Err(Errno::EISDIR),
                _ => return Err(Errno::EINVAL),
            }
        }
        let t = now();
        let mut m = self.meta()?;
        let mut changed = false;
        if let Some(mode) = a.mode {
            m.mode = (m.mode & libc::S_IFMT) | (mode & 0o7777);
            changed = true;
        }
        if let Some(uid) = a.uid {
            m.uid = uid;
            changed = true;
        }
        if let Some(gid) = a.gid {
            m.gid = gid;
            changed = true;
        }
        let at = |c: SetTime, cur: (i64, i64)| match c {
            SetTime::Omit => cur,
            SetTime::Now => t,
            SetTime::At(s, n) => (s, n),
        };
        if a.atime != SetTime::Omit || a.mtime != SetTime::Omit {
            m.atime = at(a.atime, m.atime);
            m.mtime = at(a.mtime, m.mtime);
            changed = true;
        }
        if changed {
            m.ctime = t;
        }
        Ok(())
    }

    fn getxattr(&self, name: &[u8]) -> SysResult<Vec<u8>> {
        self.meta()?.xattrs.get(name)
    }

    fn setxattr(&self, name: &[u8], value: &[u8], flags: i32) -> SysResult<()> {
        let mut m = self.meta()?;
        m.xattrs.set(name, value, flags)?;
        m.ctime = now();
        Ok(())
    }

    fn listxattr(&self) -> SysResult<Vec<Vec<u8>>> {
        Ok(self.meta()?.xattrs.names())
    }

    fn posix_acl(&self, default: bool) -> Option<crate::vfs::acl::Acl> {
        let name = if default {
            crate::vfs::acl::DEFAULT
        } else {
            crate::vfs::acl::ACCESS
        };
        self.meta().ok()?.xattrs.acl(name)
    }

    fn removexattr(&self, name: &[u8]) -> SysResult<()> {
        let mut m = self.meta()?;
        m.xattrs.remove(name)?;
        m.ctime = now();
        Ok(())
    }

    fn mutation_refused(&self) -> Errno {
        Errno::EPERM
    }

    fn fs_id(&self) -> usize {
        Arc::as_ptr(&self.fs) as usize
    }

    fn statfs(&self) -> SysResult<StatFs> {
        // Brings the sandbox's memory count up to date with pages written through
        // mappings (and this filesystem's own, without a host tmpfs).
        self.fs.recount_mapped(None);
        // The mount's size, rounded up to pages as Linux's `size=`; a spare host
        // tmpfs may be larger, and its count is the mount's pages in use all the same.
        let blocks = self.fs.limit.div_ceil(PAGE);
        // The pages held, as on Linux: a mapped file's pages set aside but not held
        // (see `Tmpfs::reserves`) are not in use, though no write may take them.
        let used = match &self.fs.host {
            Some(h) => {
                let u = h.usage()?;
                u.blocks.saturating_sub(u.free)
            }
            None => self
                .fs
                .pages
                .load(Ordering::Relaxed)
                .saturating_sub(self.fs.reserved.load(Ordering::Relaxed)),
        }
        .min(blocks);
        let files = blocks.max(1024);
        let ifree = files.saturating_sub(self.fs.inodes.load(Ordering::Relaxed));
        Ok(StatFs {
            kind: TMPFS_MAGIC,
            bsize: PAGE as i64,
            blocks,
            bfree: blocks - used,
            bavail: blocks - used,
            files,
            ffree: ifree,
            namelen: 255,
            frsize: PAGE as i64,
            flags: 0,
        })
    }
}

#[cfg(test)]
mod tests;
