//! Open tmpfs files and directories.

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use std::os::fd::BorrowedFd;

use crate::fs::memfile::Extent;
use crate::fs::tmpfs::TmpInode;
use crate::mm::Mappable;
use crate::vfs::{DirEntry, FileImpl, Inode, Stat};

/// An open regular file: I/O goes straight to its extent.
pub(crate) struct TmpFile {
    node: Arc<TmpInode>,
}

impl TmpFile {
    pub(crate) fn new(node: Arc<TmpInode>) -> Self {
        TmpFile { node }
    }
}

impl FileImpl for TmpFile {
    fn read(&self, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        self.node.read_at(buf, offset)
    }

    fn write(&self, buf: &[u8], offset: u64) -> SysResult<usize> {
        self.node.write_at(buf, offset)
    }

    fn stat(&self) -> SysResult<Stat> {
        self.node.stat()
    }

    fn mappable(&self) -> Option<Arc<dyn Mappable>> {
        self.map_source().ok()
    }

    fn map_source(&self) -> SysResult<Arc<dyn Mappable>> {
        let st = self.node.stat()?;
        mapping(&self.node, st.dev, st.ino)
    }

    fn allocate(&self, mode: i32, offset: u64, len: u64) -> SysResult<()> {
        match mode {
            0 => self.node.allocate(offset, len, false),
            libc::FALLOC_FL_KEEP_SIZE => self.node.allocate(offset, len, true),
            m if m == libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE => {
                self.node.punch_hole(offset, len)
            }
            _ => Err(Errno::EOPNOTSUPP),
        }
    }
}

/// `node` as a mapping source that shows as `(dev, ino)` (its own, or the
/// overlay file it holds the data of): `ENOMEM` when its pages must be set aside
/// and do not fit (see `Tmpfs::reserves`).
pub(crate) fn mapping(node: &Arc<TmpInode>, dev: u64, ino: u64) -> SysResult<Arc<dyn Mappable>> {
    let ext = node.mapping_extent()?;
    Ok(Arc::new(TmpMapping {
        ext,
        dev,
        ino,
        _node: node.clone(),
    }))
}

/// A tmpfs file as a mapping source: its extent (host memfd), which holds nothing
/// but this file's pages. The node is held so the file's pages stay charged to its
/// filesystem while a mapping holds them.
struct TmpMapping {
    ext: Arc<Extent>,
    dev: u64,
    ino: u64,
    _node: Arc<TmpInode>,
}

impl Mappable for TmpMapping {
    fn host_fd(&self) -> BorrowedFd<'_> {
        self.ext.fd()
    }
    fn display_name(&self) -> String {
        String::new()
    }
    fn dev_ino(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

/// An open directory.
pub(crate) struct TmpDirFile {
    node: Arc<TmpInode>,
}

impl TmpDirFile {
    pub(crate) fn new(node: Arc<TmpInode>) -> Self {
        TmpDirFile { node }
    }
}

impl FileImpl for TmpDirFile {
    fn read(&self, _buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EISDIR)
    }

    fn write(&self, _buf: &[u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EISDIR)
    }

    fn stat(&self) -> SysResult<Stat> {
        self.node.stat()
    }

    fn getdents(&self, pos: u64, max_bytes: usize) -> SysResult<Vec<DirEntry>> {
        self.node.entries_from(pos, max_bytes)
    }

    fn allocate(&self, _mode: i32, _offset: u64, _len: u64) -> SysResult<()> {
        Err(Errno::EISDIR)
    }
}
