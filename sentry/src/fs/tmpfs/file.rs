//! Open tmpfs files and directories.

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::fs::tmpfs::TmpInode;
use crate::vfs::{DirEntry, FileImpl, Inode, Stat};

/// An open regular file: I/O goes straight to its extent of the memory file.
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

    fn allocate(&self, mode: i32, offset: u64, len: u64) -> SysResult<()> {
        match mode {
            0 => self.node.allocate(offset, len, false),
            libc::FALLOC_FL_KEEP_SIZE => self.node.allocate(offset, len, true),
            _ => Err(Errno::EOPNOTSUPP),
        }
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
