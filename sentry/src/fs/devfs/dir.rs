//! Read-only synthetic directories, files and symlinks, shared by devfs and sysfs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::vfs::{DirEntry, FileImpl, Inode, Stat, StatFs};

static NEXT_INO: AtomicU64 = AtomicU64::new(2);

/// A fresh inode number for a synthetic object.
pub fn next_ino() -> u64 {
    NEXT_INO.fetch_add(1, Ordering::Relaxed)
}

/// Identity of a synthetic filesystem instance: device number and statfs magic.
#[derive(Clone, Copy, Debug)]
pub struct FsInfo {
    /// `st_dev` of everything in it.
    pub dev: u64,
    /// `f_type` for statfs.
    pub magic: i64,
}

impl FsInfo {
    fn statfs(&self) -> StatFs {
        StatFs {
            kind: self.magic,
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
            ..Default::default()
        }
    }
}

fn dt_of(mode: u32) -> u8 {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => libc::DT_DIR,
        libc::S_IFLNK => libc::DT_LNK,
        libc::S_IFCHR => libc::DT_CHR,
        libc::S_IFIFO => libc::DT_FIFO,
        libc::S_IFREG => libc::DT_REG,
        _ => libc::DT_UNKNOWN,
    }
}

/// A directory with a fixed list of children.
pub struct StaticDir {
    fs: FsInfo,
    ino: u64,
    mode: u32,
    entries: Vec<(Vec<u8>, Arc<dyn Inode>)>,
}

impl StaticDir {
    /// A directory with permission bits `perm` holding `entries`.
    pub fn new(fs: FsInfo, perm: u32, entries: Vec<(&[u8], Arc<dyn Inode>)>) -> Arc<StaticDir> {
        Arc::new(StaticDir {
            fs,
            ino: next_ino(),
            mode: libc::S_IFDIR | perm,
            entries: entries.into_iter().map(|(n, i)| (n.to_vec(), i)).collect(),
        })
    }

    fn attrs(&self) -> Stat {
        let subdirs = self
            .entries
            .iter()
            .filter(|(_, i)| i.stat().map(|s| s.is_dir()).unwrap_or(false))
            .count();
        Stat {
            dev: self.fs.dev,
            ino: self.ino,
            mode: self.mode,
            nlink: 2 + subdirs as u64,
            blksize: 4096,
            ..Default::default()
        }
    }
}

impl Inode for StaticDir {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(self.attrs())
    }
    fn lookup(&self, name: &[u8]) -> SysResult<Arc<dyn Inode>> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, i)| i.clone())
            .ok_or(Errno::ENOENT)
    }
    fn open(&self, flags: i32) -> SysResult<Box<dyn FileImpl>> {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return Err(Errno::EISDIR);
        }
        let mut list = vec![
            DirEntry {
                ino: self.ino,
                next: 1,
                kind: libc::DT_DIR,
                name: b".".to_vec(),
            },
            DirEntry {
                ino: 1,
                next: 2,
                kind: libc::DT_DIR,
                name: b"..".to_vec(),
            },
        ];
        for (i, (name, inode)) in self.entries.iter().enumerate() {
            let st = inode.stat()?;
            list.push(DirEntry {
                ino: st.ino,
                next: i as u64 + 3,
                kind: dt_of(st.mode),
                name: name.clone(),
            });
        }
        Ok(Box::new(DirFile {
            stat: self.attrs(),
            list,
        }))
    }
    fn mutation_refused(&self) -> Errno {
        Errno::EPERM
    }
    fn fs_id(&self) -> usize {
        self.fs.dev as usize
    }
    fn statfs(&self) -> SysResult<StatFs> {
        Ok(self.fs.statfs())
    }
}

struct DirFile {
    stat: Stat,
    list: Vec<DirEntry>,
}

impl FileImpl for DirFile {
    fn read(&self, _buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EISDIR)
    }
    fn write(&self, _buf: &[u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EISDIR)
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(self.stat)
    }
    fn getdents(&self, pos: u64, _max: usize) -> SysResult<Vec<DirEntry>> {
        Ok(self.list.iter().skip(pos as usize).cloned().collect())
    }
}

/// A symbolic link with a fixed target.
pub struct StaticLink {
    fs: FsInfo,
    ino: u64,
    target: Vec<u8>,
}

impl StaticLink {
    /// A link to `target`.
    pub fn new(fs: FsInfo, target: &[u8]) -> Arc<StaticLink> {
        Arc::new(StaticLink {
            fs,
            ino: next_ino(),
            target: target.to_vec(),
        })
    }
}

impl Inode for StaticLink {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(Stat {
            dev: self.fs.dev,
            ino: self.ino,
            mode: libc::S_IFLNK | 0o777,
            nlink: 1,
            size: self.target.len() as i64,
            blksize: 4096,
            ..Default::default()
        })
    }
    fn readlink(&self) -> SysResult<Vec<u8>> {
        Ok(self.target.clone())
    }
    fn open(&self, _flags: i32) -> SysResult<Box<dyn FileImpl>> {
        Err(Errno::ELOOP)
    }
    fn statfs(&self) -> SysResult<StatFs> {
        Ok(self.fs.statfs())
    }
}

/// A read-only regular file with fixed contents (sysfs attributes).
pub struct StaticFile {
    fs: FsInfo,
    ino: u64,
    data: Arc<Vec<u8>>,
    /// Size `stat` reports (sysfs attributes say 4096 whatever they hold).
    size: i64,
}

impl StaticFile {
    /// A file holding `data`, reporting `size` bytes.
    pub fn new(fs: FsInfo, data: Vec<u8>, size: i64) -> Arc<StaticFile> {
        Arc::new(StaticFile {
            fs,
            ino: next_ino(),
            data: Arc::new(data),
            size,
        })
    }

    fn attrs(&self) -> Stat {
        Stat {
            dev: self.fs.dev,
            ino: self.ino,
            mode: libc::S_IFREG | 0o444,
            nlink: 1,
            size: self.size,
            blksize: 4096,
            ..Default::default()
        }
    }
}

impl Inode for StaticFile {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(self.attrs())
    }
    fn open(&self, flags: i32) -> SysResult<Box<dyn FileImpl>> {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return Err(Errno::EACCES);
        }
        Ok(Box::new(StaticFileOpen {
            data: self.data.clone(),
            stat: self.attrs(),
        }))
    }
    fn mutation_refused(&self) -> Errno {
        Errno::EPERM
    }
    fn statfs(&self) -> SysResult<StatFs> {
        Ok(self.fs.statfs())
    }
}

struct StaticFileOpen {
    data: Arc<Vec<u8>>,
    stat: Stat,
}

impl FileImpl for StaticFileOpen {
    fn read(&self, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        let start = (offset as usize).min(self.data.len());
        let n = buf.len().min(self.data.len() - start);
        buf[..n].copy_from_slice(&self.data[start..start + n]);
        Ok(n)
    }
    fn write(&self, _buf: &[u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EBADF)
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(self.stat)
    }
}
