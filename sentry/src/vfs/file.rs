//! Open file descriptions: what an fd points to. The generic part (offset, status
//! flags, O_APPEND, seek rules) lives in [`OpenFile`]; the filesystem part in
//! [`FileImpl`].

use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::errno::{Errno, SysResult};
use crate::mm::Mappable;
use crate::platform::AddressSpace;
use crate::vfs::lock::LockManager;
use crate::vfs::{Dentry, Stat};
use crate::wait::WaitQueue;

/// One directory entry as `getdents64` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Inode number.
    pub ino: u64,
    /// Position to continue after this entry (`d_off`).
    pub next: u64,
    /// `DT_*` type.
    pub kind: u8,
    /// Name.
    pub name: Vec<u8>,
}

/// What a filesystem implements for an open file.
pub trait FileImpl: Send + Sync {
    /// Reads at `offset` (ignored by stream files).
    fn read(&self, _buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EINVAL)
    }

    /// Writes at `offset` (ignored by stream files).
    fn write(&self, _buf: &[u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EINVAL)
    }

    /// Whether every write succeeds in full without its data being looked at, as on
    /// `/dev/null`: the caller's buffer is then not read at all (Linux does not touch
    /// it either, so even a bad pointer is accepted).
    fn discards_writes(&self) -> bool {
        false
    }

    /// Whether the file has a position (`false`: lseek and pread give `ESPIPE`).
    fn seekable(&self) -> bool {
        true
    }

    /// Attributes.
    fn stat(&self) -> SysResult<Stat>;

    /// Directory entries from position `pos`, at most about `max_bytes` worth.
    fn getdents(&self, _pos: u64, _max_bytes: usize) -> SysResult<Vec<DirEntry>> {
        Err(Errno::ENOTDIR)
    }

    /// A device-specific request; `mem` is the caller's memory for argument structs.
    fn ioctl(&self, _req: u64, _arg: u64, _mem: &dyn AddressSpace) -> SysResult<u64> {
        Err(Errno::ENOTTY)
    }

    /// The file as a source of memory mappings, if it can be mapped.
    fn mappable(&self) -> Option<Arc<dyn Mappable>> {
        None
    }

    /// [`FileImpl::mappable`] for `mmap(2)` and `execve`, with the error to give when
    /// the file cannot be mapped now: `ENODEV` unless the file says otherwise (a
    /// tmpfs that must set aside the file's pages first and has no room: `ENOMEM`).
    fn map_source(&self) -> SysResult<Arc<dyn Mappable>> {
        self.mappable().ok_or(Errno::ENODEV)
    }

    /// `fallocate(2)` with `mode` (0, `FALLOC_FL_KEEP_SIZE`, or
    /// `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`; what a file cannot do is
    /// `EOPNOTSUPP`). Files that are not regular give `ENODEV`.
    fn allocate(&self, _mode: i32, _offset: u64, _len: u64) -> SysResult<()> {
        Err(Errno::ENODEV)
    }

    /// `ftruncate` of a file that has no name in the tree (a memfd, an anonymous
    /// file); named files are truncated through their inode.
    fn truncate(&self, _size: u64) -> SysResult<()> {
        Err(Errno::EINVAL)
    }

    /// `fsync`/`fdatasync`: files whose data is already where it must be succeed.
    fn sync(&self) -> SysResult<()> {
        Ok(())
    }

    /// Current readiness as `poll(2)` bits (POLLIN, POLLOUT, POLLHUP, POLLERR, ...).
    /// Files that never block are always readable and writable.
    fn readiness(&self) -> u32 {
        (libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM) as u32
    }

    /// True for files whose `lseek` always answers 0 and moves nothing, whatever it
    /// is asked (Linux's memory devices: null, zero, full, random, urandom).
    fn seeks_to_zero(&self) -> bool {
        false
    }

    /// What a blocking read or write waits on (bits as [`FileImpl::readiness`]):
    /// the same, except where `poll`'s view hides a state the call itself acts on
    /// (a FIFO whose writers all left before this reader came never polls as hung
    /// up, yet its read returns end of file).
    fn blocking_readiness(&self) -> u32 {
        self.readiness()
    }

    /// The queue notified whenever [`FileImpl::readiness`] may have changed; `None`
    /// for files that never block. A file that can return `EAGAIN` from `read` or
    /// `write` must have one: the VFS parks blocking callers on it.
    fn wait_queue(&self) -> Option<&WaitQueue> {
        None
    }

    /// Whether out-of-band (TCP urgent) data arrived since this was last asked
    /// and answered true: the owner of the description (`F_SETOWN`) then gets
    /// `SIGURG`, as Linux's `sk_send_sigurg`. Asked each time the file's queue is
    /// notified while an owner is set; files without urgent data answer false.
    fn urgent_arrived(&self) -> bool {
        false
    }

    /// Lines this kind of file adds to `/proc/PID/fdinfo/N` after the common ones.
    fn fdinfo(&self) -> String {
        String::new()
    }

    /// The name `/proc/PID/fd/N` shows after `anon_inode:` for files Linux gives a
    /// named anonymous inode (`None`: the inode number in brackets).
    fn anon_name(&self) -> Option<&'static str> {
        None
    }

    /// The concrete type, for the few callers that need it back (pidfds, pipes).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// An open file description, shared by every fd `dup`ed from it.
pub struct OpenFile {
    imp: Box<dyn FileImpl>,
    dentry: Option<Arc<Dentry>>,
    flags: Mutex<i32>,
    offset: Mutex<u64>,
    /// The lock table a lock was taken in through this description: its locks
    /// go when it is freed.
    locks: OnceLock<Weak<LockManager>>,
    /// Where the description's accesses, writes and close are reported (set when
    /// it is opened by name).
    notify: OnceLock<Arc<dyn Notify>>,
    /// The description's `F_SETOWN`/`F_SETSIG`/`O_ASYNC` state (Linux's
    /// `f_owner`), made on first use by the syscall layer that owns its type.
    owner: OnceLock<Arc<dyn std::any::Any + Send + Sync>>,
}

/// What hears of an open file's data moving and of its close: inotify.
pub trait Notify: Send + Sync {
    /// A read moved data.
    fn accessed(&self, f: &OpenFile);
    /// A write moved data.
    fn modified(&self, f: &OpenFile);
    /// The description, opened at `dentry`, is being freed.
    fn closed(&self, f: &OpenFile, dentry: &Arc<Dentry>);
}

/// Status flags `F_SETFL` may change.
const SETFL_MASK: i32 =
    libc::O_APPEND | libc::O_NONBLOCK | libc::O_ASYNC | libc::O_DIRECT | libc::O_NOATIME;

impl OpenFile {
    /// Wraps a filesystem's open file. `flags` are the `open(2)` flags it was opened with.
    pub fn new(imp: Box<dyn FileImpl>, dentry: Option<Arc<Dentry>>, flags: i32) -> Arc<OpenFile> {
        Arc::new(OpenFile {
            imp,
            dentry,
            flags: Mutex::new(
                flags
                    & !(libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOCTTY
                        | libc::O_TRUNC
                        | libc::O_CLOEXEC),
            ),
            offset: Mutex::new(0),
            locks: OnceLock::new(),
            notify: OnceLock::new(),
            owner: OnceLock::new(),
        })
    }

    /// Records that a lock is being taken through this description in `m`, so
    /// that its OFD, `flock` and POSIX locks taken through it go when it is freed.
    pub fn locked_in(&self, m: &Arc<LockManager>) {
        let _ = self.locks.set(Arc::downgrade(m));
    }

    /// Reports the description's accesses, writes and close to `n` from now on
    /// (the first one given stays).
    pub fn notify_to(&self, n: Arc<dyn Notify>) {
        let _ = self.notify.set(n);
    }

    /// The description's owner state, if made.
    pub fn owner_state(&self) -> Option<&Arc<dyn std::any::Any + Send + Sync>> {
        self.owner.get()
    }

    /// The description's owner state, made by `make` on first use.
    pub fn owner_state_or(
        &self,
        make: impl FnOnce() -> Arc<dyn std::any::Any + Send + Sync>,
    ) -> &Arc<dyn std::any::Any + Send + Sync> {
        self.owner.get_or_init(make)
    }

    /// Where the description's events go, if anywhere.
    pub fn notifier(&self) -> Option<&Arc<dyn Notify>> {
        self.notify.get()
    }

    /// The filesystem part.
    pub fn imp(&self) -> &dyn FileImpl {
        &*self.imp
    }

    /// The name it was opened by, if any.
    pub fn dentry(&self) -> Option<&Arc<Dentry>> {
        self.dentry.as_ref()
    }

    /// Status flags and access mode (`F_GETFL`).
    pub fn flags(&self) -> i32 {
        self.flags.lock().map(|f| *f).unwrap_or(0)
    }

    /// `F_SETFL`: only the changeable bits move.
    pub fn set_flags(&self, new: i32) {
        if let Ok(mut f) = self.flags.lock() {
            *f = (*f & !SETFL_MASK) | (new & SETFL_MASK);
        }
    }

    fn access(&self) -> i32 {
        self.flags() & libc::O_ACCMODE
    }

    /// True if opened with `O_PATH` (no I/O allowed).
    pub fn is_path(&self) -> bool {
        self.flags() & libc::O_PATH != 0
    }

    /// `EBADF` unless the description was opened for writing: Linux checks this before
    /// it looks at the caller's buffer.
    pub fn check_writable(&self) -> SysResult<()> {
        if self.is_path() || self.access() == libc::O_RDONLY {
            return Err(Errno::EBADF);
        }
        Ok(())
    }

    /// `EBADF` unless the description was opened for reading (checked, like
    /// [`OpenFile::check_writable`], before the caller's buffers).
    pub fn check_readable(&self) -> SysResult<()> {
        if self.is_path() || self.access() == libc::O_WRONLY {
            return Err(Errno::EBADF);
        }
        Ok(())
    }

    /// `read(2)` at the file position.
    pub fn read(&self, buf: &mut [u8]) -> SysResult<usize> {
        if self.is_path() || self.access() == libc::O_WRONLY {
            return Err(Errno::EBADF);
        }
        if !self.imp.seekable() {
            let n = self.imp.read(buf, 0)?;
            self.accessed(n);
            return Ok(n);
        }
        let mut off = self.offset.lock().map_err(|_| Errno::EIO)?;
        let n = self.imp.read(buf, *off)?;
        *off += n as u64;
        drop(off);
        self.accessed(n);
        Ok(n)
    }

    /// `pread64(2)`.
    pub fn pread(&self, buf: &mut [u8], offset: i64) -> SysResult<usize> {
        if self.is_path() || self.access() == libc::O_WRONLY {
            return Err(Errno::EBADF);
        }
        if !self.imp.seekable() {
            return Err(Errno::ESPIPE);
        }
        if offset < 0 {
            return Err(Errno::EINVAL);
        }
        let n = self.imp.read(buf, offset as u64)?;
        self.accessed(n);
        Ok(n)
    }

    /// `write(2)` at the file position (or the end, with `O_APPEND`).
    pub fn write(&self, buf: &[u8]) -> SysResult<usize> {
        self.check_writable()?;
        if !self.imp.seekable() {
            let n = self.imp.write(buf, 0)?;
            self.modified(n);
            return Ok(n);
        }
        let mut off = self.offset.lock().map_err(|_| Errno::EIO)?;
        if self.flags() & libc::O_APPEND != 0 {
            *off = self.imp.stat()?.size.max(0) as u64;
        }
        let n = self.imp.write(buf, *off)?;
        *off += n as u64;
        drop(off);
        self.modified(n);
        Ok(n)
    }

    /// `pwrite64(2)`.
    pub fn pwrite(&self, buf: &[u8], offset: i64) -> SysResult<usize> {
        self.check_writable()?;
        if !self.imp.seekable() {
            return Err(Errno::ESPIPE);
        }
        if offset < 0 {
            return Err(Errno::EINVAL);
        }
        let n = self.imp.write(buf, offset as u64)?;
        self.modified(n);
        Ok(n)
    }

    /// Reports a read that moved data (Linux's `fsnotify_access` after `ret > 0`).
    fn accessed(&self, n: usize) {
        if n > 0 {
            if let Some(w) = self.notify.get() {
                w.accessed(self);
            }
        }
    }

    /// Reports a write that moved data.
    fn modified(&self, n: usize) {
        if n > 0 {
            if let Some(w) = self.notify.get() {
                w.modified(self);
            }
        }
    }

    /// `lseek(2)`.
    pub fn seek(&self, offset: i64, whence: i32) -> SysResult<u64> {
        if self.is_path() {
            return Err(Errno::EBADF);
        }
        if !self.imp.seekable() {
            return Err(Errno::ESPIPE);
        }
        let mut off = self.offset.lock().map_err(|_| Errno::EIO)?;
        if self.imp.seeks_to_zero() && (libc::SEEK_SET..=libc::SEEK_HOLE).contains(&whence) {
            *off = 0;
            return Ok(0);
        }
        let base: i64 = match whence {
            libc::SEEK_SET => 0,
            libc::SEEK_CUR => *off as i64,
            libc::SEEK_END => self.imp.stat()?.size,
            libc::SEEK_DATA | libc::SEEK_HOLE => {
                // Files without holes: all data up to the size, one hole at the end.
                let size = self.imp.stat()?.size;
                if offset < 0 || offset >= size {
                    return Err(Errno::ENXIO);
                }
                let pos = if whence == libc::SEEK_DATA {
                    offset
                } else {
                    size
                };
                *off = pos as u64;
                return Ok(pos as u64);
            }
            _ => return Err(Errno::EINVAL),
        };
        let new = base.checked_add(offset).ok_or(Errno::EOVERFLOW)?;
        if new < 0 {
            return Err(Errno::EINVAL);
        }
        *off = new as u64;
        Ok(new as u64)
    }

    /// The current position (for directory reads).
    pub fn position(&self) -> u64 {
        self.offset.lock().map(|o| *o).unwrap_or(0)
    }

    /// Sets the position (for directory reads).
    pub fn set_position(&self, pos: u64) {
        if let Ok(mut o) = self.offset.lock() {
            *o = pos;
        }
    }

    /// See [`FileImpl::discards_writes`].
    pub fn discards_writes(&self) -> bool {
        self.imp.discards_writes()
    }

    /// True if opened (or set) `O_NONBLOCK`.
    pub fn nonblocking(&self) -> bool {
        self.flags() & libc::O_NONBLOCK != 0
    }

    /// `fstat(2)`.
    pub fn stat(&self) -> SysResult<Stat> {
        self.imp.stat()
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        // OFD and flock locks belong to the description and die with it.
        if let Some(m) = self.locks.get().and_then(Weak::upgrade) {
            m.release_description(self as *const OpenFile as usize);
        }
        if let Some(d) = self.dentry.take() {
            if let Some(w) = self.notify.get().cloned() {
                w.closed(self, &d);
            }
        }
    }
}

/// What an `O_PATH` fd holds: a name to stat and to resolve from, no I/O.
pub struct PathOnly {
    inode: Arc<dyn crate::vfs::Inode>,
}

impl PathOnly {
    /// An `O_PATH` handle on `inode`.
    pub fn new(inode: Arc<dyn crate::vfs::Inode>) -> Self {
        PathOnly { inode }
    }
}

impl FileImpl for PathOnly {
    fn read(&self, _buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EBADF)
    }
    fn write(&self, _buf: &[u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EBADF)
    }
    fn stat(&self) -> SysResult<Stat> {
        self.inode.stat()
    }
}
