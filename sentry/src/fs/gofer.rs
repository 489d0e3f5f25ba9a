//! The gofer-backed filesystem: every inode is a fid held by the gofer; regular
//! files are read and written through the host fd the gofer donates, so data never
//! crosses the gofer socket.
//!
//! Attributes: an inode caches the stat from its walk and refreshes it after every
//! change made through it; regular files of a writable filesystem are re-stated on
//! each `stat` (their size moves under writes through donated fds, which the inode
//! does not see).
//!
//! Read-only opens: the first donated read-only fd of a regular file stays with its
//! inode and serves every later read-only open, so `open` of a cached file costs no
//! gofer round trip. While the filesystem has room for such fds, a lookup asks the
//! gofer for the fd with the walk (`WalkOpen`), so a file's first `open` after its
//! lookup costs none either (`stat` then `open`, as `tar` and CPython's imports do). Sharing is safe because the sentry keeps each open file's offset
//! and locks itself and reads with `pread`; the fd names the inode the fid names. At
//! most [`MAX_CACHED_READ_FDS`] fds per filesystem are kept this way, so a workload
//! opening many files cannot exhaust the sentry's own descriptor limit.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gofer::{Client, Fid};

use crate::errno::{Errno, SysResult};
use crate::mm::Mappable;
use crate::sys::host;
use crate::vfs::{DirEntry, FileImpl, Inode, Owner, SetAttr, Stat};

/// Donated read-only fds a filesystem's inodes keep for later opens, at most.
pub const MAX_CACHED_READ_FDS: usize = 256;

/// One gofer attach point (the rootfs or one bind mount) seen as a filesystem.
pub struct GoferFs {
    client: Arc<Client>,
    readonly: bool,
    /// How many inodes keep a read-only fd (bounded by [`MAX_CACHED_READ_FDS`]).
    cached_read_fds: AtomicUsize,
}

impl GoferFs {
    fn new(client: Arc<Client>, readonly: bool) -> Arc<GoferFs> {
        Arc::new(GoferFs {
            client,
            readonly,
            cached_read_fds: AtomicUsize::new(0),
        })
    }

    /// Whether a kept fd would find a place now (a lookup then asks for one).
    fn read_fd_room(&self) -> bool {
        self.cached_read_fds.load(Ordering::Acquire) < MAX_CACHED_READ_FDS
    }

    /// Takes one of the cache's places; false when all are taken.
    fn reserve_read_fd(&self) -> bool {
        self.cached_read_fds
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CACHED_READ_FDS).then_some(n + 1)
            })
            .is_ok()
    }

    /// The root filesystem served over `client`, returning its root inode.
    pub fn mount(client: Arc<Client>, readonly: bool) -> SysResult<Arc<dyn Inode>> {
        let fs = GoferFs::new(client, readonly);
        let (fid, st) = fs.client.attach().map_err(Errno::from)?;
        Ok(GoferInode::new(fs, fid, &st))
    }

    /// The spec's bind mount number `index` (0-based, in the order of the gofer's
    /// `--mount` flags) as a filesystem of its own, for the mount table's kind
    /// "bind"; returns its root (a directory, or a file for a file bind mount).
    /// `readonly` refuses writes here even where the gofer would take them.
    pub fn mount_bind(
        client: Arc<Client>,
        index: u32,
        readonly: bool,
    ) -> SysResult<Arc<dyn Inode>> {
        let fs = GoferFs::new(client, readonly);
        let (fid, st) = fs.client.attach_mount(index).map_err(Errno::from)?;
        Ok(GoferInode::new(fs, fid, &st))
    }
}

/// A file or directory held open by the gofer.
pub struct GoferInode {
    fs: Arc<GoferFs>,
    fid: Fid,
    /// The type never changes; the rest is refreshed after changes made through us.
    /// Shared with the regular files opened from it (their owner, see [`GoferFile`]).
    stat: Arc<Mutex<Stat>>,
    /// A donated read-only fd kept for later read-only opens (see the module doc).
    read_fd: Mutex<Option<Arc<OwnedFd>>>,
    /// A symlink's target, once read: Linux never changes the target of a symlink
    /// in place (a new one is a new inode), so every later walk through it (`/lib`
    /// -> `usr/lib` on each library path) asks the gofer nothing.
    target: std::sync::OnceLock<Vec<u8>>,
    /// The host file's access and default ACLs as last read (`None`: not read
    /// yet), for the sentry's permission checks and a new file's inheritance;
    /// forgotten when the attributes are refreshed (after a change through us).
    acls: Mutex<[Option<Option<crate::vfs::acl::Acl>>; 2]>,
}

impl Drop for GoferInode {
    fn drop(&mut self) {
        let kept = self.read_fd.get_mut().unwrap_or_else(|e| e.into_inner());
        if kept.is_some() {
            self.fs.cached_read_fds.fetch_sub(1, Ordering::AcqRel);
        }
        if let Err(e) = self.fs.client.clunk(self.fid) {
            tracing::debug!(fid = self.fid, "gofer clunk failed: {e}");
        }
    }
}

impl GoferInode {
    fn new(fs: Arc<GoferFs>, fid: Fid, st: &Stat) -> Arc<GoferInode> {
        Arc::new(GoferInode {
            fs,
            fid,
            stat: Arc::new(Mutex::new(*st)),
            read_fd: Mutex::new(None),
            target: std::sync::OnceLock::new(),
            acls: Mutex::new([None, None]),
        })
    }

    fn cached(&self) -> Stat {
        *self.stat.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-reads the attributes from the gofer.
    fn refresh(&self) -> SysResult<Stat> {
        let st = self.fs.client.stat(self.fid).map_err(Errno::from)?;
        *self.stat.lock().unwrap_or_else(|e| e.into_inner()) = st;
        *self.acls.lock().unwrap_or_else(|e| e.into_inner()) = [None, None];
        Ok(st)
    }

    /// After a change in this directory: its times and link count moved. A failed
    /// refresh leaves the old attributes, which is all a caller could do anyway.
    fn dir_changed(&self) {
        if let Err(e) = self.refresh() {
            tracing::debug!(fid = self.fid, "gofer: cannot refresh a directory: {e}");
        }
    }

    /// A fresh host fd on this file, donated by the gofer.
    fn open_host(&self, flags: i32) -> SysResult<OwnedFd> {
        self.fs.client.open(self.fid, flags).map_err(Errno::from)
    }

    /// The kept read-only fd, or a new one (kept if the filesystem has room).
    fn read_fd(&self) -> SysResult<Arc<OwnedFd>> {
        let mut kept = self.read_fd.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(fd) = kept.as_ref() {
            return Ok(fd.clone());
        }
        let fd = Arc::new(self.open_host(libc::O_RDONLY)?);
        if self.fs.reserve_read_fd() {
            *kept = Some(fd.clone());
        }
        Ok(fd)
    }

    fn writable_dir(&self) -> SysResult<()> {
        if self.fs.readonly {
            return Err(Errno::EROFS);
        }
        if !self.cached().is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(())
    }

    fn same_fs<'a>(&self, other: &'a Arc<dyn Inode>) -> SysResult<&'a GoferInode> {
        match other.as_any().downcast_ref::<GoferInode>() {
            Some(g) if Arc::ptr_eq(&g.fs, &self.fs) => Ok(g),
            _ => Err(Errno::EXDEV),
        }
    }

    fn adopt(&self, got: Result<(Fid, Stat), nix::errno::Errno>) -> SysResult<Arc<dyn Inode>> {
        let (fid, st) = got.map_err(Errno::from)?;
        self.dir_changed();
        Ok(GoferInode::new(self.fs.clone(), fid, &st))
    }
}

impl Inode for GoferInode {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn stat(&self) -> SysResult<Stat> {
        let st = self.cached();
        if !self.fs.readonly && st.is_regular() {
            return self.refresh();
        }
        Ok(st)
    }

    fn lookup(&self, name: &[u8]) -> SysResult<Arc<dyn Inode>> {
        if !self.cached().is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if self.fs.read_fd_room() {
            let (fid, st, fd) = self
                .fs
                .client
                .walk_open(self.fid, name)
                .map_err(Errno::from)?;
            let inode = GoferInode::new(self.fs.clone(), fid, &st);
            if let Some(fd) = fd {
                if self.fs.reserve_read_fd() {
                    *inode.read_fd.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(fd));
                }
            }
            return Ok(inode);
        }
        let mut got = self
            .fs
            .client
            .walk(self.fid, &[name])
            .map_err(Errno::from)?;
        let (fid, st) = got.pop().ok_or(Errno::ENOENT)?;
        // Release any extra fids a misbehaving gofer sent.
        for (extra, _) in got {
            let _ = self.fs.client.clunk(extra);
        }
        Ok(GoferInode::new(self.fs.clone(), fid, &st))
    }

    fn statfs(&self) -> SysResult<crate::vfs::StatFs> {
        let mut s = self.fs.client.statfs(self.fid).map_err(Errno::from)?;
        if self.fs.readonly {
            s.flags |= libc::ST_RDONLY as i64;
        }
        Ok(s)
    }

    fn readlink(&self) -> SysResult<Vec<u8>> {
        if !self.cached().is_symlink() {
            return Err(Errno::EINVAL);
        }
        if let Some(t) = self.target.get() {
            return Ok(t.clone());
        }
        let t = self.fs.client.readlink(self.fid).map_err(Errno::from)?;
        Ok(self.target.get_or_init(|| t).clone())
    }

    fn open(&self, flags: i32) -> SysResult<Box<dyn FileImpl>> {
        let acc = flags & libc::O_ACCMODE;
        let writes = acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        let st = self.cached();
        match st.file_type() {
            libc::S_IFREG => {
                if self.fs.readonly && writes {
                    return Err(Errno::EROFS);
                }
                let fd = if writes {
                    Arc::new(self.open_host(flags & (libc::O_ACCMODE | libc::O_TRUNC))?)
                } else {
                    self.read_fd()?
                };
                Ok(Box::new(GoferFile {
                    fd,
                    stat: st,
                    attrs: self.stat.clone(),
                }))
            }
            libc::S_IFDIR => {
                if acc != libc::O_RDONLY {
                    return Err(Errno::EISDIR);
                }
                // The open file's dentry keeps this inode, and so the fid, alive.
                Ok(Box::new(GoferDir {
                    fs: self.fs.clone(),
                    fid: self.fid,
                    stat: st,
                }))
            }
            libc::S_IFLNK => Err(Errno::ELOOP),
            // Device nodes, FIFOs and sockets in the rootfs are never opened on the
            // host: they would reach host devices or host IPC endpoints.
            _ => Err(Errno::ENXIO),
        }
    }

    fn create(&self, name: &[u8], mode: u32, owner: Owner) -> SysResult<Arc<dyn Inode>> {
        self.writable_dir()?;
        // The donated fd is dropped: the VFS opens the new inode with the caller's
        // flags. EEXIST (a racing create) goes back to the VFS, which walks again.
        let (fid, st, _fd) = self
            .fs
            .client
            .create(
                self.fid,
                name,
                libc::O_RDONLY,
                mode & 0o7777,
                owner.uid,
                owner.gid,
            )
            .map_err(Errno::from)?;
        self.dir_changed();
        Ok(GoferInode::new(self.fs.clone(), fid, &st))
    }

    fn mkdir(&self, name: &[u8], mode: u32, owner: Owner) -> SysResult<Arc<dyn Inode>> {
        self.writable_dir()?;
        let got = self
            .fs
            .client
            .mkdir(self.fid, name, mode & 0o7777, owner.uid, owner.gid);
        self.adopt(got)
    }

    fn mknod(&self, name: &[u8], mode: u32, owner: Owner) -> SysResult<Arc<dyn Inode>> {
        self.writable_dir()?;
        let got = self
            .fs
            .client
            .mknod(self.fid, name, mode, owner.uid, owner.gid);
        self.adopt(got)
    }

    fn symlink(&self, name: &[u8], target: &[u8], owner: Owner) -> SysResult<Arc<dyn Inode>> {
        self.writable_dir()?;
        let got = self
            .fs
            .client
            .symlink(self.fid, name, target, owner.uid, owner.gid);
        self.adopt(got)
    }

    fn link(&self, name: &[u8], target: &Arc<dyn Inode>) -> SysResult<()> {
        self.writable_dir()?;
        let t = self.same_fs(target)?;
        let (fid, _) = self
            .fs
            .client
            .link(t.fid, self.fid, name)
            .map_err(Errno::from)?;
        // The reply's fid names the same file as `target`, which we already hold.
        let _ = self.fs.client.clunk(fid);
        self.dir_changed();
        let _ = t.refresh();
        Ok(())
    }

    fn unlink(&self, name: &[u8], dir: bool) -> SysResult<()> {
        self.writable_dir()?;
        let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
        self.fs
            .client
            .unlink(self.fid, name, flags)
            .map_err(Errno::from)?;
        self.dir_changed();
        Ok(())
    }

    fn rename(
        &self,
        old: &[u8],
        new_dir: &Arc<dyn Inode>,
        new: &[u8],
        flags: u32,
    ) -> SysResult<()> {
        self.writable_dir()?;
        let nd = self.same_fs(new_dir)?;
        self.fs
            .client
            .rename(self.fid, old, nd.fid, new, flags)
            .map_err(Errno::from)?;
        self.dir_changed();
        if nd.fid != self.fid {
            nd.dir_changed();
        }
        Ok(())
    }

    fn setattr(&self, attr: &SetAttr) -> SysResult<()> {
        if self.fs.readonly {
            return Err(Errno::EROFS);
        }
        self.fs
            .client
            .setattr(self.fid, attr)
            .map_err(Errno::from)?;
        self.refresh()?;
        Ok(())
    }

    fn getxattr(&self, name: &[u8]) -> SysResult<Vec<u8>> {
        self.fs.client.getxattr(self.fid, name).map_err(Errno::from)
    }

    fn setxattr(&self, name: &[u8], value: &[u8], flags: i32) -> SysResult<()> {
        if self.fs.readonly {
            return Err(Errno::EROFS);
        }
        self.fs
            .client
            .setxattr(self.fid, name, value, flags as u32)
            .map_err(Errno::from)?;
        self.refresh().map(drop)
    }

    fn listxattr(&self) -> SysResult<Vec<Vec<u8>>> {
        self.fs.client.listxattr(self.fid).map_err(Errno::from)
    }

    /// The host file's ACL (its system.posix_acl_* attribute through the
    /// gofer), read once and kept until the attributes are refreshed.
    fn posix_acl(&self, default: bool) -> Option<crate::vfs::acl::Acl> {
        let i = default as usize;
        if let Some(a) = &self.acls.lock().unwrap_or_else(|e| e.into_inner())[i] {
            return a.clone();
        }
        let name = if default {
            crate::vfs::acl::DEFAULT
        } else {
            crate::vfs::acl::ACCESS
        };
        let acl = match self.fs.client.getxattr(self.fid, name) {
            Ok(v) => crate::vfs::acl::Acl::from_xattr(&v).ok().flatten(),
            Err(_) => None,
        };
        self.acls.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(acl.clone());
        acl
    }

    fn removexattr(&self, name: &[u8]) -> SysResult<()> {
        if self.fs.readonly {
            return Err(Errno::EROFS);
        }
        self.fs
            .client
            .removexattr(self.fid, name)
            .map_err(Errno::from)?;
        self.refresh().map(drop)
    }

    fn mutation_refused(&self) -> Errno {
        if self.fs.readonly {
            Errno::EROFS
        } else {
            Errno::EPERM
        }
    }

    fn fs_id(&self) -> usize {
        Arc::as_ptr(&self.fs) as usize
    }
}

/// A regular file opened through the gofer, read and written through its donated
/// host fd.
pub struct GoferFile {
    fd: Arc<OwnedFd>,
    stat: Stat,
    /// The inode's attributes as the gofer reports them: the owner, where the
    /// sentry's user namespace hides it from a host `fstat`.
    attrs: Arc<Mutex<Stat>>,
}

impl FileImpl for GoferFile {
    fn read(&self, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        host::pread(self.fd.as_fd(), buf, offset)
    }

    fn write(&self, buf: &[u8], offset: u64) -> SysResult<usize> {
        host::pwrite(self.fd.as_fd(), buf, offset)
    }

    fn sync(&self) -> SysResult<()> {
        // Writes went to the host file itself: make them durable there.
        host::fsync(self.fd.as_fd())
    }

    fn allocate(&self, mode: i32, offset: u64, len: u64) -> SysResult<()> {
        // The host file's own filesystem allocates (or refuses) as Linux would.
        host::fallocate(self.fd.as_fd(), mode, offset, len)
    }

    fn stat(&self) -> SysResult<Stat> {
        // Size and times move under writes through this fd.
        let mut st = self.stat;
        if let Ok(h) = host::fstat(self.fd.as_fd()) {
            st.size = h.st_size;
            st.blocks = h.st_blocks;
            st.mode = h.st_mode;
            st.nlink = h.st_nlink;
            // In the sentry's user namespace a host owner reads as the overflow id:
            // the gofer's (host) view stands then, refreshed by every change made
            // through the sandbox.
            if crate::sys::isolation::host_ids_visible() {
                st.uid = h.st_uid;
                st.gid = h.st_gid;
            } else {
                let a = self.attrs.lock().unwrap_or_else(|e| e.into_inner());
                st.uid = a.uid;
                st.gid = a.gid;
            }
            st.atime = (h.st_atime, h.st_atime_nsec);
            st.mtime = (h.st_mtime, h.st_mtime_nsec);
            st.ctime = (h.st_ctime, h.st_ctime_nsec);
        }
        Ok(st)
    }

    fn mappable(&self) -> Option<Arc<dyn Mappable>> {
        Some(Arc::new(HostMappable {
            fd: self.fd.clone(),
            dev: self.stat.dev,
            ino: self.stat.ino,
        }))
    }
}

/// A host fd (gofer-donated, or the overlay's memfd) as a mapping source.
pub struct HostMappable {
    fd: Arc<OwnedFd>,
    dev: u64,
    ino: u64,
}

impl HostMappable {
    /// Maps `fd`, reported as file (`dev`, `ino`).
    pub fn new(fd: Arc<OwnedFd>, dev: u64, ino: u64) -> HostMappable {
        HostMappable { fd, dev, ino }
    }
}

impl Mappable for HostMappable {
    fn host_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
    fn display_name(&self) -> String {
        String::new()
    }
    fn dev_ino(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

/// Directory positions: 0 is ".", 1 is "..", 2 is the gofer's start (its cookie 0),
/// anything above is a gofer cookie. Host cookies past the dot entries are always
/// above 2 (the dot entries occupy the first positions on every Linux filesystem).
const POS_DOTDOT: u64 = 1;
const POS_FIRST: u64 = 2;

/// An open directory: listed through the gofer, with "." and ".." made here (the
/// gofer omits them so that ".." of the root never describes the host).
pub struct GoferDir {
    fs: Arc<GoferFs>,
    fid: Fid,
    stat: Stat,
}

impl FileImpl for GoferDir {
    fn read(&self, _buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EISDIR)
    }

    fn write(&self, _buf: &[u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EBADF)
    }

    fn stat(&self) -> SysResult<Stat> {
        Ok(self.stat)
    }

    fn getdents(&self, pos: u64, max_bytes: usize) -> SysResult<Vec<DirEntry>> {
        let mut out = Vec::new();
        let mut budget = max_bytes;
        let mut pos = pos;
        // ".." gets this directory's own number: the parent is not known here, and
        // nothing relies on it (Linux reports the same at a root).
        while pos < POS_FIRST {
            let name: &[u8] = if pos == 0 { b"." } else { b".." };
            out.push(DirEntry {
                ino: self.stat.ino,
                next: pos + 1,
                kind: libc::DT_DIR,
                name: name.to_vec(),
            });
            budget = budget.saturating_sub(24);
            pos += 1;
        }
        let cookie = if pos == POS_FIRST { 0 } else { pos };
        let max = budget.clamp(512, 60 * 1024) as u32;
        let ents = self
            .fs
            .client
            .getdents(self.fid, cookie, max)
            .map_err(Errno::from)?;
        for d in ents {
            if d.next_cookie <= POS_DOTDOT + 1 {
                tracing::warn!(
                    cookie = d.next_cookie,
                    "gofer: a directory cookie collides with the dot entries"
                );
                return Err(Errno::EIO);
            }
            out.push(DirEntry {
                ino: d.ino,
                next: d.next_cookie,
                kind: d.kind,
                name: d.name,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;

    /// A client of a gofer serving `root` (writable) from a thread of this process.
    pub(crate) fn client(root: &std::path::Path) -> Arc<Client> {
        let root = root.to_path_buf();
        client_of(move |b| gofer::server::serve(&root, b, false))
    }

    /// A client of the server `serve` runs, on a thread of this process, over
    /// the other end of the client's connection.
    pub(crate) fn client_of<R: Send + 'static>(
        serve: impl FnOnce(std::os::fd::OwnedFd) -> R + Send + 'static,
    ) -> Arc<Client> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        std::thread::spawn(move || serve(b));
        Arc::new(Client::new(a).unwrap())
    }

    fn mount(root: &std::path::Path) -> Arc<dyn Inode> {
        GoferFs::mount(client(root), false).unwrap()
    }

    fn host_fd(f: &dyn FileImpl) -> i32 {
        f.mappable().unwrap().host_fd().as_raw_fd()
    }

    fn kept(root: &Arc<dyn Inode>) -> usize {
        let g = root.as_any().downcast_ref::<GoferInode>().unwrap();
        g.fs.cached_read_fds.load(Ordering::Acquire)
    }

    /// A symlink's target is read from the gofer once per inode: a symlink never
    /// changes in place, so a replaced one is a new inode with its own target.
    #[test]
    fn symlink_targets_are_read_once_per_inode() {
        let dir = std::env::temp_dir().join(format!("rvisor-gofer-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("usr/lib", dir.join("lib")).unwrap();
        let root = mount(&dir);
        let old = root.lookup(b"lib").unwrap();
        assert_eq!(old.readlink().unwrap(), b"usr/lib");
        std::fs::remove_file(dir.join("lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib64", dir.join("lib")).unwrap();
        assert_eq!(old.readlink().unwrap(), b"usr/lib");
        assert_eq!(
            root.lookup(b"lib").unwrap().readlink().unwrap(),
            b"usr/lib64"
        );
        assert_eq!(root.readlink().err(), Some(Errno::EINVAL));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn read_only_opens_share_one_donated_fd_within_the_bound() {
        let dir = std::env::temp_dir().join(format!("rvisor-gofer-fds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let n = MAX_CACHED_READ_FDS + 8;
        for i in 0..n {
            std::fs::write(dir.join(format!("f{i}")), format!("file {i}")).unwrap();
        }
        let root = mount(&dir);
        let f0 = root.lookup(b"f0").unwrap();
        let (a, b) = (
            f0.open(libc::O_RDONLY).unwrap(),
            f0.open(libc::O_RDONLY).unwrap(),
        );
        assert_eq!(host_fd(a.as_ref()), host_fd(b.as_ref()));
        let mut buf = [0u8; 16];
        let got = b.read(&mut buf, 5).unwrap();
        assert_eq!(&buf[..got], b"0");
        // A writer gets a fd of its own; the reader sees what it wrote.
        let w = f0.open(libc::O_WRONLY).unwrap();
        assert_ne!(host_fd(w.as_ref()), host_fd(a.as_ref()));
        w.write(b"FILE", 0).unwrap();
        let got = a.read(&mut buf, 0).unwrap();
        assert_eq!(&buf[..got], b"FILE 0");
        assert_eq!(kept(&root), 1);
        // Past the bound, opens still work but nothing more is kept.
        let inodes: Vec<_> = (1..n)
            .map(|i| {
                let ino = root.lookup(format!("f{i}").as_bytes()).unwrap();
                let f = ino.open(libc::O_RDONLY).unwrap();
                let got = f.read(&mut buf, 0).unwrap();
                assert_eq!(&buf[..got], format!("file {i}").as_bytes());
                ino
            })
            .collect();
        assert_eq!(kept(&root), MAX_CACHED_READ_FDS);
        // Inodes give their place back when they go.
        drop(inodes);
        assert_eq!(kept(&root), 1);
        drop((a, b, w, f0));
        assert_eq!(kept(&root), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
