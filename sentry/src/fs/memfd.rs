//! memfd: an anonymous, growable, mappable file. Each memfd is an extent of the
//! sandbox's memory (`fs::memfile`) held in a host memfd of its own; its bytes
//! are read and written with `pread`/`pwrite`, and `mmap` maps the host fd
//! directly, so `MAP_SHARED` mappings see each other's writes and the host applies
//! end-of-file rules (SIGBUS) and counts its pages (`st_blocks`). As on Linux, its
//! pages count against the sandbox's memory and no filesystem's size: it lives in
//! no host tmpfs instance, and its count joins the sandbox's memory when it is
//! written, resized or stat'ed.

use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};

use crate::errno::{Errno, SysResult};
use crate::fs::memfile::{Extent, MemoryFile};
use crate::fs::space::{AnonInos, AnonKind};
use crate::mm::Mappable;
use crate::sys::host;
use crate::vfs::{FileImpl, OpenFile, Owner, Stat};

/// `st_dev` of memfds (the shmem internal mount).
const MEMFD_DEV: u64 = 0x1;

/// `F_SEAL_SEAL`.
pub const F_SEAL_SEAL: u32 = 1;
/// `F_SEAL_SHRINK`.
pub const F_SEAL_SHRINK: u32 = 2;
/// `F_SEAL_GROW`.
pub const F_SEAL_GROW: u32 = 4;
/// `F_SEAL_WRITE`.
pub const F_SEAL_WRITE: u32 = 8;
/// `F_SEAL_FUTURE_WRITE`.
pub const F_SEAL_FUTURE_WRITE: u32 = 0x10;

/// One memfd's storage.
pub struct MemFd {
    ext: Extent,
    name: Vec<u8>,
    ino: u64,
    owner: Owner,
    /// `F_SEAL_*` bits; `F_SEAL_SEAL` from the start unless sealing was allowed.
    seals: Mutex<u32>,
}

/// The open file of a memfd.
pub struct MemFdFile {
    m: Arc<MemFd>,
}

/// Creates a memfd named `name` (`memfd:` is prefixed in listings), numbered
/// from `inos`, its memory in `mem` (the sandbox's).
pub fn new_memfd(
    inos: &AnonInos,
    name: &[u8],
    allow_sealing: bool,
    owner: Owner,
    mem: &Arc<MemoryFile>,
) -> SysResult<Box<dyn FileImpl>> {
    let m = Arc::new(MemFd {
        ext: mem.alloc()?,
        name: name.to_vec(),
        ino: inos.next(AnonKind::MemFd),
        owner,
        seals: Mutex::new(if allow_sealing { 0 } else { F_SEAL_SEAL }),
    });
    Ok(Box::new(MemFdFile { m }))
}

/// The memfd behind an open file.
pub fn memfd_of(file: &OpenFile) -> Option<Arc<MemFd>> {
    file.imp()
        .as_any()?
        .downcast_ref::<MemFdFile>()
        .map(|f| f.m.clone())
}

impl MemFd {
    fn size(&self) -> SysResult<u64> {
        Ok(host::fstat(self.ext.fd())?.st_size.max(0) as u64)
    }

    fn seals(&self) -> u32 {
        self.seals.lock().map(|s| *s).unwrap_or(F_SEAL_SEAL)
    }

    /// `F_GET_SEALS`.
    pub fn get_seals(&self) -> u32 {
        self.seals()
    }

    /// `F_ADD_SEALS`: `EPERM` once sealed against sealing.
    pub fn add_seals(&self, add: u32) -> SysResult<()> {
        if add & !(F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)
            != 0
        {
            return Err(Errno::EINVAL);
        }
        let mut s = self.seals.lock().map_err(|_| Errno::EIO)?;
        if *s & F_SEAL_SEAL != 0 {
            return Err(Errno::EPERM);
        }
        *s |= add;
        Ok(())
    }

    /// Sets the size (`ftruncate`), honouring seals.
    pub fn truncate(&self, len: u64) -> SysResult<()> {
        let size = self.size()?;
        let seals = self.seals();
        if (len > size && seals & F_SEAL_GROW != 0) || (len < size && seals & F_SEAL_SHRINK != 0) {
            return Err(Errno::EPERM);
        }
        // The host memfd takes the size itself: growing adds a hole (no page held,
        // as on Linux), shrinking frees the pages past it and takes them from
        // every mapping.
        if len != size {
            nix::unistd::ftruncate(self.ext.fd(), len as i64)?;
            self.ext.pages()?;
        }
        Ok(())
    }
}

impl MemFd {
    /// `fallocate` of a memfd, as Linux's shmem: allocating (mode 0 or
    /// `FALLOC_FL_KEEP_SIZE`) past the size is refused under `F_SEAL_GROW`, punching
    /// a hole under `F_SEAL_WRITE` (`EPERM` both); the pages allocated join the
    /// sandbox's memory count.
    fn allocate(&self, mode: i32, offset: u64, len: u64) -> SysResult<()> {
        let seals = self.seals();
        let end = offset.checked_add(len).ok_or(Errno::EFBIG)?;
        match mode {
            0 | libc::FALLOC_FL_KEEP_SIZE => {
                if seals & F_SEAL_GROW != 0 && end > self.size()? {
                    return Err(Errno::EPERM);
                }
                self.ext
                    .allocate(offset, len, mode == libc::FALLOC_FL_KEEP_SIZE)?;
            }
            m if m == libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE => {
                if seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0 {
                    return Err(Errno::EPERM);
                }
                self.ext.zero(offset, len)?;
            }
            _ => return Err(Errno::EOPNOTSUPP),
        }
        self.ext.pages()?;
        Ok(())
    }

    /// `r` of a write, once the pages it added are counted as the sandbox's memory.
    fn written(&self, r: SysResult<usize>) -> SysResult<usize> {
        if r.is_ok() {
            self.ext.pages()?;
        }
        r
    }
}

impl Mappable for MemFd {
    fn host_fd(&self) -> BorrowedFd<'_> {
        self.ext.fd()
    }
    fn display_name(&self) -> String {
        format!("/memfd:{} (deleted)", String::from_utf8_lossy(&self.name))
    }
    fn dev_ino(&self) -> (u64, u64) {
        (MEMFD_DEV, self.ino)
    }
}

impl FileImpl for MemFdFile {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn read(&self, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        host::pread(self.m.ext.fd(), buf, offset)
    }
    fn write(&self, buf: &[u8], offset: u64) -> SysResult<usize> {
        let seals = self.m.seals();
        if seals & F_SEAL_WRITE != 0 {
            return Err(Errno::EPERM);
        }
        if seals & F_SEAL_GROW != 0 {
            let size = self.m.size()?;
            let room = size.saturating_sub(offset) as usize;
            if room == 0 && !buf.is_empty() {
                return Err(Errno::EPERM);
            }
            return self.m.written(host::pwrite(
                self.m.ext.fd(),
                &buf[..buf.len().min(room)],
                offset,
            ));
        }
        self.m.written(host::pwrite(self.m.ext.fd(), buf, offset))
    }
    fn stat(&self) -> SysResult<Stat> {
        let h = host::fstat(self.m.ext.fd())?;
        // Pages written through mappings join the sandbox's memory count here.
        self.m.ext.pages()?;
        Ok(Stat {
            dev: MEMFD_DEV,
            ino: self.m.ino,
            mode: libc::S_IFREG | 0o777,
            nlink: 1,
            uid: self.m.owner.uid,
            gid: self.m.owner.gid,
            size: h.st_size,
            blksize: 4096,
            blocks: h.st_blocks,
            atime: (h.st_atime, h.st_atime_nsec),
            mtime: (h.st_mtime, h.st_mtime_nsec),
            ctime: (h.st_ctime, h.st_ctime_nsec),
            ..Default::default()
        })
    }
    fn mappable(&self) -> Option<Arc<dyn Mappable>> {
        Some(self.m.clone())
    }
    fn truncate(&self, size: u64) -> SysResult<()> {
        self.m.truncate(size)
    }
    fn allocate(&self, mode: i32, offset: u64, len: u64) -> SysResult<()> {
        self.m.allocate(mode, offset, len)
    }
}

/// `ftruncate` of a memfd: `None` if `file` is not one (the generic ftruncate goes
/// on), else the result.
pub fn truncate(file: &OpenFile, len: u64) -> Option<SysResult<()>> {
    memfd_of(file).map(|m| m.truncate(len))
}

/// `fcntl(F_ADD_SEALS / F_GET_SEALS)`: `None` for other commands; `EINVAL` on a
/// file that is not a memfd.
pub fn fcntl_seals(file: &OpenFile, cmd: i32, arg: u64) -> Option<SysResult<u64>> {
    if cmd != libc::F_ADD_SEALS && cmd != libc::F_GET_SEALS {
        return None;
    }
    let Some(m) = memfd_of(file) else {
        return Some(Err(Errno::EINVAL));
    };
    Some(if cmd == libc::F_GET_SEALS {
        Ok(m.get_seals() as u64)
    } else if file.flags() & libc::O_ACCMODE == libc::O_RDONLY {
        Err(Errno::EPERM)
    } else {
        m.add_seals(arg as u32).map(|_| 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_grow_seal() {
        let f = OpenFile::new(
            new_memfd(
                &AnonInos::default(),
                b"t",
                true,
                Owner { uid: 0, gid: 0 },
                &MemoryFile::new(),
            )
            .unwrap(),
            None,
            libc::O_RDWR,
        );
        assert_eq!(f.write(b"hello").unwrap(), 5);
        assert_eq!(f.stat().unwrap().size, 5);
        assert_eq!(truncate(&f, 4096), Some(Ok(())));
        assert_eq!(f.stat().unwrap().size, 4096);
        let mut b = [1u8; 8];
        assert_eq!(f.pread(&mut b, 0).unwrap(), 8);
        assert_eq!(&b, b"hello\0\0\0");
        // Growing adds a hole; shrinking frees and zeroes what it cuts.
        assert_eq!(truncate(&f, 1 << 30), Some(Ok(())));
        assert_eq!(f.stat().unwrap().blocks, 8);
        assert_eq!(truncate(&f, 2), Some(Ok(())));
        assert_eq!(truncate(&f, 4096), Some(Ok(())));
        assert_eq!(f.pread(&mut b, 0).unwrap(), 8);
        assert_eq!(&b, b"he\0\0\0\0\0\0");
        assert_eq!(
            fcntl_seals(&f, libc::F_ADD_SEALS, F_SEAL_WRITE as u64),
            Some(Ok(0))
        );
        assert_eq!(f.pwrite(b"x", 0), Err(Errno::EPERM));
        assert_eq!(
            fcntl_seals(&f, libc::F_GET_SEALS, 0),
            Some(Ok(F_SEAL_WRITE as u64))
        );
        assert!(f.imp().mappable().is_some());
    }
}
