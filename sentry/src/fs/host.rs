//! The caller's stdio, passed through: the sentry reads and writes the host fds it
//! was given on behalf of the application's fds 0, 1 and 2.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicI16, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::errno::{Errno, SysResult};
use crate::mm::io::write_all;
use crate::platform::AddressSpace;
use crate::sys::host::{self, TtyQuery};
use crate::vfs::{FileImpl, Inode, Stat};
use crate::wait::WaitQueue;

/// The most a write to a host stream that can block passes at once: a pipe that
/// polls writable takes this much without blocking.
const STREAM_CHUNK: usize = libc::PIPE_BUF;

/// A host stream (terminal, pipe or file) the sentry was handed at boot.
///
/// A host call that blocks would hold its task's thread where no signal of the
/// sandbox reaches it (a process killed while it waits for input would never die),
/// so streams that can block (pipes, FIFOs, sockets, terminals) are never read or
/// written before the host says they are ready: until then a read or write gives
/// `EAGAIN`, and the task waits on the stream's queue like on any file of the
/// sandbox, woken by a notifier thread that polls the host fd for it. Files that
/// never block (regular files, `/dev/null`) are used directly. One gap is left: a
/// host process outside the sandbox reading the same pipe can take the data between
/// the poll and the read, and the read then blocks until more comes (the sandbox
/// cannot make a shared host fd non-blocking without changing it for the caller).
pub struct HostStream {
    shared: Arc<Shared>,
}

/// What the stream and its notifier share.
struct Shared {
    fd: OwnedFd,
    /// Whether the host fd can block.
    can_block: bool,
    queue: WaitQueue,
    /// The poll events someone waits for and has not seen yet (the notifier's).
    wanted: AtomicI16,
    /// The notifier's wake-up socket (our end), once it runs.
    notifier: Mutex<Option<OwnedFd>>,
}

impl HostStream {
    /// Wraps a host fd.
    pub fn new(fd: OwnedFd) -> Self {
        let can_block = host::fstat(fd.as_fd()).map_or(true, |st| {
            let kind = st.st_mode & libc::S_IFMT;
            match kind {
                libc::S_IFREG | libc::S_IFBLK | libc::S_IFDIR => false,
                // Terminals block; other character devices (/dev/null) do not.
                libc::S_IFCHR => host::tty_query(fd.as_fd(), TtyQuery::WinSize).is_ok(),
                _ => true,
            }
        });
        HostStream {
            shared: Arc::new(Shared {
                fd,
                can_block,
                queue: WaitQueue::new(),
                wanted: AtomicI16::new(0),
                notifier: Mutex::new(None),
            }),
        }
    }

    /// What `/proc/PID/fd/N` of this stream leads to: opening it makes a new
    /// description of the same host stream, as Linux reopens a pipe or terminal
    /// there (`cat /dev/stdin` with stdin a pipe). Both share the host fd.
    pub fn reopen_target(&self) -> Arc<dyn Inode> {
        Arc::new(HostStreamInode {
            shared: self.shared.clone(),
        })
    }

    /// The poll events of the host fd now; the ones in `want` that are missing are
    /// handed to the notifier, which wakes the queue once they come.
    fn ready(&self, want: i16) -> i16 {
        let sh = &self.shared;
        let got = match host::poll(&[(sh.fd.as_fd(), want)], Some(std::time::Duration::ZERO)) {
            Ok(r) => r[0],
            // A host fd that cannot be polled (closed under us) reads as an error.
            Err(_) => libc::POLLERR,
        };
        let done = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
        let missing = want & !got;
        if missing != 0 && got & done == 0 {
            self.arm(missing);
        }
        got
    }

    /// Has the notifier watch for `events`.
    fn arm(&self, events: i16) {
        let sh = &self.shared;
        let before = sh.wanted.fetch_or(events, Ordering::SeqCst);
        if before & events == events {
            // Already watched for.
            return;
        }
        let Ok(mut n) = sh.notifier.lock() else {
            return;
        };
        if n.is_none() {
            match start_notifier(Arc::downgrade(sh)) {
                Ok(fd) => *n = Some(fd),
                Err(e) => {
                    tracing::warn!("cannot watch a host stream: {e}");
                    return;
                }
            }
        }
        if let Some(fd) = n.as_ref() {
            crate::platform::common::wake_up(fd.as_fd());
        }
    }
}

/// Starts the notifier of `shared`'s fd; returns our end of its wake-up socket.
fn start_notifier(shared: Weak<Shared>) -> SysResult<OwnedFd> {
    let (ours, theirs) = crate::platform::common::seqpacket_pair()?;
    std::thread::Builder::new()
        .name("host-stream".into())
        .spawn(move || notify(shared, theirs))
        .map_err(|_| Errno::EAGAIN)?;
    Ok(ours)
}

/// The notifier: polls the host fd for the events someone waits for (and its
/// wake-up socket, for new ones) and wakes the stream's queue when any comes. It
/// ends with the stream (the wake-up socket hangs up).
fn notify(shared: Weak<Shared>, wake: OwnedFd) {
    let done = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
    loop {
        let Some(sh) = shared.upgrade() else { return };
        let want = sh.wanted.load(Ordering::SeqCst);
        let fds = [(wake.as_fd(), libc::POLLIN), (sh.fd.as_fd(), want)];
        // Watching nothing: only the wake-up socket counts.
        let n = if want == 0 { 1 } else { 2 };
        let polled = host::poll(&fds[..n], None);
        let Ok(got) = polled else {
            tracing::warn!("host stream notifier: poll failed");
            return;
        };
        if got[0] & done != 0 {
            return;
        }
        if got[0] & libc::POLLIN != 0 {
            crate::platform::common::drain_wake_ups(wake.as_fd());
        }
        if n == 2 && got[1] != 0 {
            // Everyone waiting re-checks; whoever still waits arms again.
            sh.wanted.fetch_and(!(got[1] | done), Ordering::SeqCst);
            if got[1] & done != 0 {
                sh.wanted.store(0, Ordering::SeqCst);
            }
            sh.queue.notify_all();
        }
        drop(sh);
    }
}

impl FileImpl for HostStream {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn read(&self, buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        let sh = &self.shared;
        if sh.can_block
            && self.ready(libc::POLLIN) & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0
        {
            return Err(Errno::EAGAIN);
        }
        host::read(sh.fd.as_fd(), buf)
    }

    fn write(&self, buf: &[u8], _offset: u64) -> SysResult<usize> {
        let sh = &self.shared;
        if !sh.can_block {
            return host::write(sh.fd.as_fd(), buf);
        }
        if self.ready(libc::POLLOUT) & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) == 0 {
            return Err(Errno::EAGAIN);
        }
        host::write(sh.fd.as_fd(), &buf[..buf.len().min(STREAM_CHUNK)])
    }

    fn readiness(&self) -> u32 {
        if !self.shared.can_block {
            return (libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM) as u32;
        }
        let mut got = self.ready(libc::POLLIN | libc::POLLOUT) as u32;
        if got & libc::POLLIN as u32 != 0 {
            got |= libc::POLLRDNORM as u32;
        }
        if got & libc::POLLOUT as u32 != 0 {
            got |= libc::POLLWRNORM as u32;
        }
        got
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        self.shared.can_block.then_some(&self.shared.queue)
    }

    fn seekable(&self) -> bool {
        false
    }

    fn stat(&self) -> SysResult<Stat> {
        let h = host::fstat(self.shared.fd.as_fd())?;
        Ok(Stat {
            // Host device and inode numbers are not the container's business, but
            // whether two streams are one file is (cat refuses to copy a file onto
            // itself): a keyed hash keeps that and hides the numbers.
            dev: 0x16,
            ino: hidden_ino(h.st_dev, h.st_ino),
            mode: h.st_mode,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: h.st_rdev,
            size: h.st_size,
            blksize: h.st_blksize,
            blocks: h.st_blocks,
            atime: (h.st_atime, h.st_atime_nsec),
            mtime: (h.st_mtime, h.st_mtime_nsec),
            ctime: (h.st_ctime, h.st_ctime_nsec),
        })
    }

    fn ioctl(&self, req: u64, arg: u64, mem: &dyn AddressSpace) -> SysResult<u64> {
        let q = match req {
            r if r == libc::TCGETS => TtyQuery::Termios,
            r if r == libc::TIOCGWINSZ => TtyQuery::WinSize,
            _ => return Err(Errno::ENOTTY),
        };
        let data = host::tty_query(self.shared.fd.as_fd(), q)?;
        write_all(mem, arg, &data)?;
        Ok(0)
    }
}

/// A host stream reached through `/proc/PID/fd/N` (see
/// [`HostStream::reopen_target`]).
pub struct HostStreamInode {
    shared: Arc<Shared>,
}

impl Inode for HostStreamInode {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        HostStream {
            shared: self.shared.clone(),
        }
        .stat()
    }
    fn open(&self, _flags: i32) -> SysResult<Box<dyn FileImpl>> {
        Ok(Box::new(HostStream {
            shared: self.shared.clone(),
        }))
    }
}

/// A stand-in inode number for host file (`dev`, `ino`): equal for one host file,
/// unrelated to its real numbers (the hash key is random per sentry).
fn hidden_ino(dev: u64, ino: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut h = KEY.get_or_init(Default::default).build_hasher();
    h.write_u64(dev);
    h.write_u64(ino);
    // Never 0, which some programs read as "no inode".
    (h.finish() >> 1) | 1
}
