//! The sentry's virtual filesystem: inodes and dentries, open file descriptions, fd
//! tables and path resolution. Filesystems (in `crate::fs`) implement [`Inode`] and
//! [`FileImpl`]; nothing here knows where the bytes come from.

pub mod fdtable;
pub mod file;
pub mod path;
pub mod perm;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::errno::{Errno, SysResult};

pub use fdtable::FdTable;
pub use file::{DirEntry, FileImpl, OpenFile, PathOnly};

/// Longest path a syscall accepts, including the NUL (`PATH_MAX`).
pub const PATH_MAX: usize = 4096;
/// Longest single path component (`NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// Symlinks followed in one resolution before `ELOOP` (Linux's `MAXSYMLINKS`).
pub const MAX_SYMLINKS: u32 = 40;

/// File attributes (the fields of `struct stat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// Device.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Type and mode bits.
    pub mode: u32,
    /// Hard links.
    pub nlink: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number (device files).
    pub rdev: u64,
    /// Size in bytes.
    pub size: i64,
    /// I/O block size.
    pub blksize: i64,
    /// 512-byte blocks.
    pub blocks: i64,
    /// Access time.
    pub atime: (i64, i64),
    /// Modification time.
    pub mtime: (i64, i64),
    /// Change time.
    pub ctime: (i64, i64),
}

impl Stat {
    /// The file type bits.
    pub fn file_type(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
    /// True for directories.
    pub fn is_dir(&self) -> bool {
        self.file_type() == libc::S_IFDIR
    }
    /// True for symlinks.
    pub fn is_symlink(&self) -> bool {
        self.file_type() == libc::S_IFLNK
    }
    /// True for regular files.
    pub fn is_regular(&self) -> bool {
        self.file_type() == libc::S_IFREG
    }

    /// The kernel's `struct stat` for x86-64.
    pub fn to_linux(&self) -> libc::stat {
        let mut s: libc::stat = crate::sys::pod::zeroed();
        s.st_dev = self.dev;
        s.st_ino = self.ino;
        s.st_mode = self.mode;
        s.st_nlink = self.nlink;
        s.st_uid = self.uid;
        s.st_gid = self.gid;
        s.st_rdev = self.rdev;
        s.st_size = self.size;
        s.st_blksize = self.blksize;
        s.st_blocks = self.blocks;
        s.st_atime = self.atime.0;
        s.st_atime_nsec = self.atime.1;
        s.st_mtime = self.mtime.0;
        s.st_mtime_nsec = self.mtime.1;
        s.st_ctime = self.ctime.0;
        s.st_ctime_nsec = self.ctime.1;
        s
    }
}

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

/// Filesystem statistics (`struct statfs`).
pub use gofer::StatFs;

/// The owner a new file gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Owning uid (the creator's fsuid).
    pub uid: u32,
    /// Owning gid (the creator's fsgid, or the directory's with set-gid).
    pub gid: u32,
}

/// A timestamp change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeChange {
    /// Leave it.
    Omit,
    /// Set to the current time.
    Now,
    /// Set to (seconds, nanoseconds).
    At(i64, i64),
}

/// An attribute change (`setattr`); `None`/`Omit` fields stay as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetAttr {
    /// New permission bits (type bits ignored).
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (truncate).
    pub size: Option<u64>,
    /// New access time.
    pub atime: TimeChange,
    /// New modification time.
    pub mtime: TimeChange,
}

impl Default for SetAttr {
    fn default() -> Self {
        SetAttr {
            mode: None,
            uid: None,
            gid: None,
            size: None,
            atime: TimeChange::Omit,
            mtime: TimeChange::Omit,
        }
    }
}

/// A name in the tree: an inode with its parent, so `..` and `getcwd` work, and a
/// cache of looked-up children so repeated walks don't go back to the filesystem.
pub struct Dentry {
    name: Vec<u8>,
    parent: Option<Arc<Dentry>>,
    inode: Arc<dyn Inode>,
    children: Mutex<HashMap<Vec<u8>, Arc<Dentry>>>,
}

/// Children cached per directory before the cache is emptied; keeps a directory
/// walk over millions of names from holding a gofer fid for each.
const DENTRY_CACHE_PER_DIR: usize = 4096;

impl Dentry {
    /// The root of a tree.
    pub fn new_root(inode: Arc<dyn Inode>) -> Arc<Dentry> {
        Arc::new(Dentry {
            name: b"/".to_vec(),
            parent: None,
            inode,
            children: Mutex::new(HashMap::new()),
        })
    }

    /// The inode.
    pub fn inode(&self) -> &Arc<dyn Inode> {
        &self.inode
    }

    /// The parent, `None` at a root.
    pub fn parent(&self) -> Option<&Arc<Dentry>> {
        self.parent.as_ref()
    }

    /// The child named `name`, from the cache or looked up.
    pub fn child(self: &Arc<Self>, name: &[u8]) -> SysResult<Arc<Dentry>> {
        if let Some(d) = self.children.lock().map_err(|_| Errno::EIO)?.get(name) {
            return Ok(d.clone());
        }
        let inode = self.inode.lookup(name)?;
        let d = Arc::new(Dentry {
            name: name.to_vec(),
            parent: Some(self.clone()),
            inode,
            children: Mutex::new(HashMap::new()),
        });
        let mut cache = self.children.lock().map_err(|_| Errno::EIO)?;
        if cache.len() >= DENTRY_CACHE_PER_DIR {
            cache.clear();
        }
        cache.insert(name.to_vec(), d.clone());
        Ok(d)
    }

    /// The absolute path of this dentry relative to `root` (as `getcwd` reports it).
    /// A dentry outside `root` is reported from its own tree's root.
    pub fn path_from(self: &Arc<Self>, root: &Arc<Dentry>) -> Vec<u8> {
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut cur = self;
        while !Arc::ptr_eq(cur, root) {
            match &cur.parent {
                Some(p) => {
                    parts.push(&cur.name);
                    cur = p;
                }
                None => break,
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
