//! The gofer-backed filesystem: every inode is a fid held by the gofer; regular
//! files are read through the host fd the gofer donates, so data never crosses the
//! gofer socket.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use gofer::{Client, Fid};

use crate::errno::{Errno, SysResult};
use crate::mm::Mappable;
use crate::sys::host;
use crate::vfs::{DirEntry, FileImpl, Inode, Stat};

/// One gofer connection seen as a filesystem.
pub struct GoferFs {
    client: Arc<Client>,
    readonly: bool,
}

impl GoferFs {
    /// The filesystem over `client`, returning its root inode.
    pub fn mount(client: Arc<Client>, readonly: bool) -> SysResult<Arc<dyn Inode>> {
        let fs = Arc::new(GoferFs { client, readonly });
        let (fid, st) = fs.client.attach().map_err(Errno::from)?;
        Ok(Arc::new(GoferInode {
            fs,
            fid,
            stat: convert(&st),
        }))
    }
}

fn convert(s: &gofer::Stat) -> Stat {
    Stat {
        dev: s.dev,
        ino: s.ino,
        mode: s.mode,
        nlink: s.nlink,
        uid: s.uid,
        gid: s.gid,
        rdev: s.rdev,
        size: s.size,
        blksize: s.blksize,
        blocks: s.blocks,
        atime: s.atime,
        mtime: s.mtime,
        ctime: s.ctime,
    }
}

/// A file or directory held open by the gofer.
pub struct GoferInode {
    fs: Arc<GoferFs>,
    fid: Fid,
    // The root is served read-only for now, so attributes from the walk stay true;
    // the writable filesystem will refresh them after each change.
    stat: Stat,
}

impl Drop for GoferInode {
    fn drop(&mut self) {
        if let Err(e) = self.fs.client.clunk(self.fid) {
            tracing::debug!(fid = self.fid, "gofer clunk failed: {e}");
        }
    }
}

impl Inode for GoferInode {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(self.stat)
    }

    fn lookup(&self, name: &[u8]) -> SysResult<Arc<dyn Inode>> {
        if !self.stat.is_dir() {
            return Err(Errno::ENOTDIR);
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
        Ok(Arc::new(GoferInode {
            fs: self.fs.clone(),
            fid,
            stat: convert(&st),
        }))
    }

    fn statfs(&self) -> SysResult<crate::vfs::StatFs> {
        self.fs.client.statfs(self.fid).map_err(Errno::from)
    }

    fn readlink(&self) -> SysResult<Vec<u8>> {
        if !self.stat.is_symlink() {
            return Err(Errno::EINVAL);
        }
        self.fs.client.readlink(self.fid).map_err(Errno::from)
    }

    fn open(&self, flags: i32) -> SysResult<Box<dyn FileImpl>> {
        let acc = flags & libc::O_ACCMODE;
        if self.fs.readonly && (acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0) {
            return Err(Errno::EROFS);
        }
        match self.stat.file_type() {
            libc::S_IFREG => {
                let fd = self
                    .fs
                    .client
                    .open(self.fid, flags & (libc::O_ACCMODE | libc::O_TRUNC))
                    .map_err(Errno::from)?;
                Ok(Box::new(GoferFile {
                    fd: Arc::new(fd),
                    stat: self.stat,
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
                    stat: self.stat,
                }))
            }
            libc::S_IFLNK => Err(Errno::ELOOP),
            // Device nodes, FIFOs and sockets in the rootfs are never opened on the
            // host: they would reach host devices or host IPC endpoints.
            _ => Err(Errno::ENXIO),
        }
    }
}

/// A regular file opened through the gofer, read through its donated host fd.
pub struct GoferFile {
    fd: Arc<OwnedFd>,
    stat: Stat,
}

impl FileImpl for GoferFile {
    fn read(&self, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        host::pread(self.fd.as_fd(), buf, offset)
    }

    fn write(&self, buf: &[u8], offset: u64) -> SysResult<usize> {
        host::pwrite(self.fd.as_fd(), buf, offset)
    }

    fn stat(&self) -> SysResult<Stat> {
        // The size may have moved since the walk if the file is written through us.
        let mut st = self.stat;
        if let Ok(h) = host::fstat(self.fd.as_fd()) {
            st.size = h.st_size;
            st.blocks = h.st_blocks;
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

/// A donated host fd as a mapping source.
pub struct HostMappable {
    fd: Arc<OwnedFd>,
    dev: u64,
    ino: u64,
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

/// An open directory: listed through the gofer.
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
        let max = max_bytes.min(60 * 1024) as u32;
        let ents = self
            .fs
            .client
            .getdents(self.fid, pos, max)
            .map_err(Errno::from)?;
        Ok(ents
            .into_iter()
            .map(|d| DirEntry {
                ino: d.ino,
                next: d.next_cookie,
                kind: d.kind,
                name: d.name,
            })
            .collect())
    }
}
