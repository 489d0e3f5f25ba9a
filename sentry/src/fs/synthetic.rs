//! Synthetic directories the sentry puts over parts of the root so the host's own
//! `/proc`, `/sys` and `/dev` are never served from the rootfs: a host root served
//! read-only (`rvisor do`) would otherwise expose the gofer's host processes and
//! host device nodes. procfs, sysfs and devfs replace these with the filesystem work.

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::vfs::{DirEntry, FileImpl, Inode, Stat};

/// Names at the top of the root that are hidden behind empty directories.
pub const MASKED: [&[u8]; 3] = [b"proc", b"sys", b"dev"];

/// An empty, read-only directory.
pub struct EmptyDir {
    ino: u64,
}

impl EmptyDir {
    /// A new empty directory with inode number `ino`.
    pub fn new(ino: u64) -> Arc<EmptyDir> {
        Arc::new(EmptyDir { ino })
    }

    fn attrs(&self) -> Stat {
        Stat {
            dev: 0x11,
            ino: self.ino,
            mode: libc::S_IFDIR | 0o555,
            nlink: 2,
            blksize: 4096,
            ..Default::default()
        }
    }
}

impl Inode for EmptyDir {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(self.attrs())
    }
    fn lookup(&self, _name: &[u8]) -> SysResult<Arc<dyn Inode>> {
        Err(Errno::ENOENT)
    }
    fn open(&self, flags: i32) -> SysResult<Box<dyn FileImpl>> {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return Err(Errno::EISDIR);
        }
        Ok(Box::new(EmptyDirFile { stat: self.attrs() }))
    }
}

struct EmptyDirFile {
    stat: Stat,
}

impl FileImpl for EmptyDirFile {
    fn read(&self, _buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EISDIR)
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(self.stat)
    }
    fn getdents(&self, pos: u64, _max: usize) -> SysResult<Vec<DirEntry>> {
        let all = [
            DirEntry {
                ino: self.stat.ino,
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
        Ok(all.into_iter().skip(pos as usize).collect())
    }
}

/// The root directory with [`MASKED`] names replaced by empty directories.
pub struct MaskedRoot {
    inner: Arc<dyn Inode>,
    masks: Vec<(Vec<u8>, Arc<dyn Inode>)>,
}

impl MaskedRoot {
    /// Wraps the real root `inner`.
    pub fn new(inner: Arc<dyn Inode>) -> Arc<MaskedRoot> {
        let ncpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let masks = MASKED
            .iter()
            .enumerate()
            .map(|(i, n)| {
                // Until the mount table lands, devfs and sysfs sit here.
                let d: Arc<dyn Inode> = match *n {
                    b"dev" => crate::fs::devfs::new_root(),
                    b"sys" => crate::fs::sysfs::new_root(ncpus),
                    _ => EmptyDir::new(0xffff_0000 + i as u64),
                };
                (n.to_vec(), d)
            })
            .collect();
        Arc::new(MaskedRoot { inner, masks })
    }
}

impl Inode for MaskedRoot {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        self.inner.stat()
    }
    fn lookup(&self, name: &[u8]) -> SysResult<Arc<dyn Inode>> {
        if let Some((_, d)) = self.masks.iter().find(|(n, _)| n == name) {
            return Ok(d.clone());
        }
        self.inner.lookup(name)
    }
    fn readlink(&self) -> SysResult<Vec<u8>> {
        self.inner.readlink()
    }
    fn statfs(&self) -> SysResult<crate::vfs::StatFs> {
        self.inner.statfs()
    }
    fn open(&self, flags: i32) -> SysResult<Box<dyn FileImpl>> {
        self.inner.open(flags)
    }
}
