//! Pipes and FIFOs: a bounded byte queue shared by read and write ends.
//!
//! Each end is its own [`FileImpl`]; the counts of open read and write ends live in
//! the shared [`Pipe`] and move when an end is created or dropped (an open file
//! description owns its end, so the last `close` of a description drops it). That
//! gives EOF when every writer is gone and `EPIPE` when every reader is.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use crate::errno::{Errno, SysResult};
use crate::fs::space::{AnonInos, AnonKind};
use crate::mm::io;
use crate::platform::AddressSpace;
use crate::vfs::{FileImpl, Inode, OpenFile, Owner, Stat};
use crate::wait::WaitQueue;

/// Writes of at most this many bytes are atomic (`PIPE_BUF`).
pub const PIPE_BUF: usize = 4096;
/// Default capacity (16 pages, as Linux).
pub const DEFAULT_CAPACITY: usize = 64 * 1024;
/// Largest capacity an unprivileged caller may set (`/proc/sys/fs/pipe-max-size`).
pub const MAX_UNPRIVILEGED_CAPACITY: usize = 1024 * 1024;
/// `F_SETPIPE_SZ`.
pub const F_SETPIPE_SZ: i32 = 1031;
/// `F_GETPIPE_SZ`.
pub const F_GETPIPE_SZ: i32 = 1032;
/// Device number `fstat` reports for anonymous pipes (the pipefs superblock).
const PIPEFS_DEV: u64 = 0xc;

/// The pipe behind every FIFO of a sandbox that is open somewhere, by the FIFO's
/// (device, inode). Only the open ends keep a pipe alive, so the last close
/// discards unread data and the next open starts empty, as on Linux.
#[derive(Default)]
pub struct Fifos {
    map: Mutex<HashMap<(u64, u64), Weak<Pipe>>>,
}

impl Fifos {
    /// The pipe shared by every opener of the FIFO `st` describes (a new one
    /// numbered from `inos` if no end of it is open).
    pub fn pipe(&self, inos: &AnonInos, st: &Stat) -> SysResult<Arc<Pipe>> {
        let mut map = self.map.lock().map_err(|_| Errno::EIO)?;
        if let Some(p) = map.get(&(st.dev, st.ino)).and_then(Weak::upgrade) {
            return Ok(p);
        }
        map.retain(|_, w| w.strong_count() > 0);
        let p = Pipe::new(
            inos,
            Owner {
                uid: st.uid,
                gid: st.gid,
            },
        );
        map.insert((st.dev, st.ino), Arc::downgrade(&p));
        Ok(p)
    }
}

/// The queued bytes as Linux keeps them: a ring of page-sized buffers. The slot
/// model decides what fits (a small write merges into the last page or takes a new
/// one, never splitting, which is what makes writes of at most `PIPE_BUF` atomic) and
/// when the pipe is full (every slot used), exactly as applications observe on Linux.
#[derive(Default)]
struct Bufs {
    /// Each buffer: its bytes and how many of them were already read.
    ring: VecDeque<(Vec<u8>, usize)>,
    len: usize,
}

impl Bufs {
    fn len(&self) -> usize {
        self.len
    }
    fn is_empty(&self) -> bool {
        self.len == 0
    }
    fn slots(&self) -> usize {
        self.ring.len()
    }
    fn take(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        while n < out.len() {
            let Some((b, start)) = self.ring.front_mut() else {
                break;
            };
            let k = (out.len() - n).min(b.len() - *start);
            out[n..n + k].copy_from_slice(&b[*start..*start + k]);
            *start += k;
            n += k;
            if *start == b.len() {
                self.ring.pop_front();
            }
        }
        self.len -= n;
        n
    }
    fn peek(&self, max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for (b, start) in &self.ring {
            let k = (max - out.len()).min(b.len() - start);
            out.extend_from_slice(&b[*start..*start + k]);
            if out.len() == max {
                break;
            }
        }
        out
    }
    fn drop_front(&mut self, n: usize) {
        let mut left = n.min(self.len);
        self.len -= left;
        while left > 0 {
            let Some((b, start)) = self.ring.front_mut() else {
                break;
            };
            let k = left.min(b.len() - *start);
            *start += k;
            left -= k;
            if *start == b.len() {
                self.ring.pop_front();
            }
        }
    }
    /// Queues what fits of `data` with at most `max_slots` buffers.
    fn put(&mut self, data: &[u8], max_slots: usize) -> usize {
        let mut done = 0;
        let tail = data.len() % PIPE_BUF;
        if tail > 0 {
            if let Some((b, _)) = self.ring.back_mut() {
                if b.len() + tail <= PIPE_BUF {
                    b.extend_from_slice(&data[..tail]);
                    done = tail;
                }
            }
        }
        while done < data.len() && self.ring.len() < max_slots {
            let k = (data.len() - done).min(PIPE_BUF);
            let mut page = Vec::with_capacity(PIPE_BUF);
            page.extend_from_slice(&data[done..done + k]);
            self.ring.push_back((page, 0));
            done += k;
        }
        self.len += done;
        done
    }
}

struct State {
    buf: Bufs,
    cap: usize,
    readers: usize,
    writers: usize,
    /// Write ends ever opened; a FIFO reader sees hang-up only after a writer came
    /// and went since it opened.
    writer_opens: u64,
    /// Read ends ever opened: a FIFO writer waiting for a reader is released by one
    /// that came, even if it has gone again.
    reader_opens: u64,
    /// Events that make a reader's edge (data arrived, a writer left).
    in_edges: u64,
    /// Events that make a writer's edge (room made, a reader left).
    out_edges: u64,
}

/// The shared part of a pipe or FIFO.
pub struct Pipe {
    state: Mutex<State>,
    queue: WaitQueue,
    ino: u64,
    owner: Owner,
}

impl Pipe {
    /// An empty pipe with no ends open yet, numbered from `inos`.
    pub fn new(inos: &AnonInos, owner: Owner) -> Arc<Pipe> {
        Arc::new(Pipe {
            state: Mutex::new(State {
                buf: Bufs::default(),
                cap: DEFAULT_CAPACITY,
                readers: 0,
                writers: 0,
                writer_opens: 0,
                reader_opens: 0,
                in_edges: 0,
                out_edges: 0,
            }),
            queue: WaitQueue::new(),
            ino: inos.next(AnonKind::Pipe),
            owner,
        })
    }

    fn lock(&self) -> SysResult<std::sync::MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| Errno::EIO)
    }

    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.lock().map(|s| s.buf.len()).unwrap_or(0)
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.lock().map(|s| s.cap).unwrap_or(DEFAULT_CAPACITY)
    }

    /// The queue notified on every change of the pipe's state.
    pub fn wait_queue(&self) -> &WaitQueue {
        &self.queue
    }

    /// Takes up to `buf.len()` bytes; `Ok(0)` at EOF, `EAGAIN` if empty with writers.
    pub fn read(&self, buf: &mut [u8]) -> SysResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut s = self.lock()?;
        if s.buf.is_empty() {
            return if s.writers == 0 {
                Ok(0)
            } else {
                Err(Errno::EAGAIN)
            };
        }
        let n = s.buf.take(buf);
        s.out_edges += 1;
        drop(s);
        self.queue.notify_all();
        Ok(n)
    }

    /// Copies up to `n` queued bytes without consuming them (`tee`); `EAGAIN` if
    /// empty with writers, empty at EOF.
    pub fn peek(&self, n: usize) -> SysResult<Vec<u8>> {
        let s = self.lock()?;
        if s.buf.is_empty() && s.writers > 0 && n > 0 {
            return Err(Errno::EAGAIN);
        }
        Ok(s.buf.peek(n))
    }

    /// Queues bytes with `PIPE_BUF` atomicity; `EPIPE` without readers, `EAGAIN` if
    /// nothing (or, for a small write, not all) fits.
    pub fn write(&self, data: &[u8]) -> SysResult<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let mut s = self.lock()?;
        if s.readers == 0 {
            return Err(Errno::EPIPE);
        }
        let slots = s.cap / PIPE_BUF;
        let n = s.buf.put(data, slots);
        if n == 0 {
            return Err(Errno::EAGAIN);
        }
        s.in_edges += 1;
        drop(s);
        self.queue.notify_all();
        Ok(n)
    }

    /// Counters of the events that make edge-triggered epoll report (input, output):
    /// Linux wakes input waiters only for writes and output waiters only for reads.
    pub fn edges(&self) -> (u64, u64) {
        self.lock()
            .map(|s| (s.in_edges, s.out_edges))
            .unwrap_or((0, 0))
    }

    /// Takes `n` bytes out after a [`Pipe::peek`] (splice from a pipe).
    pub fn consume(&self, n: usize) -> SysResult<()> {
        let mut s = self.lock()?;
        s.buf.drop_front(n);
        s.out_edges += 1;
        drop(s);
        self.queue.notify_all();
        Ok(())
    }

    /// Free room in bytes.
    pub fn room(&self) -> usize {
        self.lock()
            .map(|s| (s.cap / PIPE_BUF).saturating_sub(s.buf.slots()) * PIPE_BUF)
            .unwrap_or(0)
    }

    /// True if some read end is open.
    pub fn has_readers(&self) -> bool {
        self.lock().map(|s| s.readers > 0).unwrap_or(false)
    }

    /// True if some write end is open.
    pub fn has_writers(&self) -> bool {
        self.lock().map(|s| s.writers > 0).unwrap_or(false)
    }

    /// `F_SETPIPE_SZ`: rounds `size` up to a power-of-two number of pages; `EBUSY`
    /// if more is queued than would fit, `EPERM` above the unprivileged maximum.
    pub fn set_capacity(&self, size: u64, privileged: bool) -> SysResult<usize> {
        if size > 1 << 31 {
            return Err(Errno::EINVAL);
        }
        let want = (size as usize).max(PIPE_BUF).next_power_of_two();
        if want > MAX_UNPRIVILEGED_CAPACITY && !privileged {
            return Err(Errno::EPERM);
        }
        let mut s = self.lock()?;
        if want / PIPE_BUF < s.buf.slots() {
            return Err(Errno::EBUSY);
        }
        s.cap = want;
        drop(s);
        self.queue.notify_all();
        Ok(want)
    }

    fn readiness(&self, read: bool, write: bool, seen_writer_opens: u64) -> u32 {
        let Ok(s) = self.lock() else {
            return libc::POLLERR as u32;
        };
        let mut r = 0;
        if read {
            if !s.buf.is_empty() {
                r |= libc::POLLIN | libc::POLLRDNORM;
            }
            if s.writers == 0 && s.writer_opens != seen_writer_opens {
                r |= libc::POLLHUP;
            }
        }
        if write {
            if s.buf.slots() < s.cap / PIPE_BUF {
                r |= libc::POLLOUT | libc::POLLWRNORM;
            }
            if s.readers == 0 {
                r |= libc::POLLERR;
            }
        }
        r as u32
    }

    /// Opens an end: counts it and returns the file implementation.
    fn open_end(
        self: &Arc<Self>,
        read: bool,
        write: bool,
        inode: Option<Arc<dyn Inode>>,
    ) -> SysResult<Box<PipeEnd>> {
        Ok(self.open_end_seeing(read, write, inode)?.0)
    }

    /// [`Pipe::open_end`], also telling what the other side looked like at the very
    /// moment this end was counted (under the same lock): a blocking FIFO open
    /// decides there whether it must wait at all.
    fn open_end_seeing(
        self: &Arc<Self>,
        read: bool,
        write: bool,
        inode: Option<Arc<dyn Inode>>,
    ) -> SysResult<(Box<PipeEnd>, Partner)> {
        let (seen, partner) = {
            let mut s = self.lock()?;
            let partner = Partner {
                writers: s.writers,
                readers: s.readers,
                writer_opens: s.writer_opens,
                reader_opens: s.reader_opens,
            };
            if read {
                s.readers += 1;
                s.reader_opens += 1;
            }
            if write {
                s.writers += 1;
                s.writer_opens += 1;
            }
            (partner.writer_opens, partner)
        };
        self.queue.notify_all();
        let end = Box::new(PipeEnd {
            pipe: self.clone(),
            read,
            write,
            seen_writer_opens: seen,
            inode,
        });
        Ok((end, partner))
    }

    fn stat(&self) -> Stat {
        Stat {
            dev: PIPEFS_DEV,
            ino: self.ino,
            mode: libc::S_IFIFO | 0o600,
            nlink: 1,
            uid: self.owner.uid,
            gid: self.owner.gid,
            blksize: PIPE_BUF as i64,
            ..Default::default()
        }
    }
}

/// The counts of the other ends when an end was opened.
struct Partner {
    writers: usize,
    readers: usize,
    writer_opens: u64,
    reader_opens: u64,
}

/// One end of a pipe (or a FIFO opened read, write or both).
pub struct PipeEnd {
    pipe: Arc<Pipe>,
    read: bool,
    write: bool,
    seen_writer_opens: u64,
    /// The FIFO's inode, for `fstat`; `None` for anonymous pipes.
    inode: Option<Arc<dyn Inode>>,
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        if let Ok(mut s) = self.pipe.state.lock() {
            if self.read {
                s.readers -= 1;
                s.out_edges += 1;
            }
            if self.write {
                s.writers -= 1;
                s.in_edges += 1;
            }
        }
        self.pipe.queue.notify_all();
    }
}

impl FileImpl for PipeEnd {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn read(&self, buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        if !self.read {
            return Err(Errno::EBADF);
        }
        self.pipe.read(buf)
    }
    fn write(&self, buf: &[u8], _offset: u64) -> SysResult<usize> {
        if !self.write {
            return Err(Errno::EBADF);
        }
        self.pipe.write(buf)
    }
    fn seekable(&self) -> bool {
        false
    }
    fn stat(&self) -> SysResult<Stat> {
        match &self.inode {
            Some(i) => i.stat(),
            None => Ok(self.pipe.stat()),
        }
    }
    fn ioctl(&self, req: u64, arg: u64, mem: &dyn AddressSpace) -> SysResult<u64> {
        if req == libc::FIONREAD {
            io::write_u32(mem, arg, self.pipe.len() as u32)?;
            return Ok(0);
        }
        Err(Errno::ENOTTY)
    }
    fn readiness(&self) -> u32 {
        self.pipe
            .readiness(self.read, self.write, self.seen_writer_opens)
    }
    fn blocking_readiness(&self) -> u32 {
        let mut r = self.readiness();
        // read(2) returns end of file once no writer is left, whenever they came.
        if self.read && !self.pipe.has_writers() {
            r |= libc::POLLHUP as u32;
        }
        r
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.pipe.queue)
    }
}

/// A new anonymous pipe, numbered from `inos`: (read end, write end).
pub fn new_pipe(
    inos: &AnonInos,
    owner: Owner,
) -> SysResult<(Box<dyn FileImpl>, Box<dyn FileImpl>)> {
    let p = Pipe::new(inos, owner);
    let r = p.open_end(true, false, None)?;
    let w = p.open_end(false, true, None)?;
    Ok((r, w))
}

/// The pipe behind an open file, if it is a pipe or FIFO end.
pub fn pipe_of(file: &OpenFile) -> Option<Arc<Pipe>> {
    file.imp()
        .as_any()?
        .downcast_ref::<PipeEnd>()
        .map(|e| e.pipe.clone())
}

/// An anonymous pipe reached by a path: where `/proc/PID/fd/N` of a pipe end leads
/// (a magic link). `open(2)` of it opens a new end of that same pipe, as Linux
/// does (how `cat /dev/stdin` reads a shell pipe).
pub struct AnonPipeInode {
    pipe: Arc<Pipe>,
}

impl AnonPipeInode {
    /// The path-reachable face of `pipe`.
    pub fn new(pipe: Arc<Pipe>) -> Arc<AnonPipeInode> {
        Arc::new(AnonPipeInode { pipe })
    }
}

impl Inode for AnonPipeInode {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(self.pipe.stat())
    }
    /// A new end of the pipe. Unlike a FIFO's, it never waits for a partner and
    /// a non-blocking write-only open with no reader is no `ENXIO`: Linux's
    /// `fifo_open` leaves those rules out for pipefs inodes.
    fn open(&self, flags: i32) -> SysResult<Box<dyn FileImpl>> {
        let (read, write) = match flags & libc::O_ACCMODE {
            libc::O_RDONLY => (true, false),
            libc::O_WRONLY => (false, true),
            libc::O_RDWR => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        let face: Arc<dyn Inode> = AnonPipeInode::new(self.pipe.clone());
        let end = self.pipe.open_end(read, write, Some(face))?;
        Ok(end)
    }
}

/// `fcntl(F_GETPIPE_SZ / F_SETPIPE_SZ)`: `None` for any other command, so the
/// generic `fcntl` can call this first and fall through. `privileged` is whether the
/// caller has `CAP_SYS_RESOURCE`.
pub fn fcntl_pipe_size(
    file: &OpenFile,
    cmd: i32,
    arg: u64,
    privileged: bool,
) -> Option<SysResult<u64>> {
    if cmd != F_GETPIPE_SZ && cmd != F_SETPIPE_SZ {
        return None;
    }
    let Some(p) = pipe_of(file) else {
        return Some(Err(Errno::EBADF));
    };
    Some(if cmd == F_GETPIPE_SZ {
        Ok(p.capacity() as u64)
    } else {
        p.set_capacity(arg & 0xffff_ffff, privileged)
            .map(|n| n as u64)
    })
}

/// Opens a FIFO whose shared state is `pipe` (a FIFO inode keeps one [`Pipe`] for its
/// lifetime) with `open(2)` semantics: without `O_NONBLOCK`, a read-only open waits
/// for a writer and a write-only open for a reader; with it, a write-only open with
/// no reader fails with `ENXIO`. `inode` answers `fstat`. The opener waits on
/// `waker` (its task's) and `interrupted` says a signal is pending
/// (`ERESTARTSYS`).
pub fn open_fifo_with(
    pipe: &Arc<Pipe>,
    inode: Arc<dyn Inode>,
    flags: i32,
    waker: &Arc<crate::wait::Waker>,
    interrupted: impl FnMut() -> bool,
) -> SysResult<Box<dyn FileImpl>> {
    let nonblock = flags & libc::O_NONBLOCK != 0;
    let (read, write) = match flags & libc::O_ACCMODE {
        libc::O_RDONLY => (true, false),
        libc::O_WRONLY => (false, true),
        libc::O_RDWR => (true, true),
        _ => return Err(Errno::EINVAL),
    };
    if write && !read && nonblock && !pipe.has_readers() {
        return Err(Errno::ENXIO);
    }
    let (end, partner) = pipe.open_end_seeing(read, write, Some(inode))?;
    if nonblock || (read && write) {
        return Ok(end);
    }
    // As Linux decides it: a reader waits only if no writer was open when it came
    // in, and then until some writer opens (even one that has closed again since);
    // a writer likewise. Deciding from a later look would miss a partner that came
    // and went in between, and wait forever.
    if (read && partner.writers > 0) || (write && partner.readers > 0) {
        return Ok(end);
    }
    let _reg = pipe.queue.register(waker);
    let r = crate::wait::block(waker, None, interrupted, || {
        let s = pipe.lock()?;
        Ok(if read {
            (s.writer_opens > partner.writer_opens).then_some(())
        } else {
            (s.reader_opens > partner.reader_opens).then_some(())
        })
    });
    match r {
        Ok(Ok(())) => Ok(end),
        Ok(Err(e)) => Err(e),
        Err(i) => Err(crate::wait::restart_errno(i)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner { uid: 0, gid: 0 }
    }

    #[test]
    fn read_write_eof_epipe() {
        let (r, w) = new_pipe(&AnonInos::default(), owner()).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(r.read(&mut buf, 0), Err(Errno::EAGAIN));
        assert_eq!(w.write(b"hello", 0), Ok(5));
        assert_eq!(r.readiness() & libc::POLLIN as u32, libc::POLLIN as u32);
        assert_eq!(r.read(&mut buf[..3], 0), Ok(3));
        assert_eq!(&buf[..3], b"hel");
        assert_eq!(r.read(&mut buf, 0), Ok(2));
        drop(w);
        assert_eq!(r.read(&mut buf, 0), Ok(0));
        assert_ne!(r.readiness() & libc::POLLHUP as u32, 0);

        let (r, w) = new_pipe(&AnonInos::default(), owner()).unwrap();
        drop(r);
        assert_eq!(w.write(b"x", 0), Err(Errno::EPIPE));
        assert_ne!(w.readiness() & libc::POLLERR as u32, 0);
    }

    #[test]
    fn capacity_and_atomicity() {
        let p = Pipe::new(&AnonInos::default(), owner());
        let r = p.open_end(true, false, None).unwrap();
        let w = p.open_end(false, true, None).unwrap();
        let big = vec![7u8; DEFAULT_CAPACITY + 100];
        assert_eq!(w.write(&big, 0), Ok(DEFAULT_CAPACITY));
        assert_eq!(w.write(b"x", 0), Err(Errno::EAGAIN));
        assert_eq!(w.readiness() & libc::POLLOUT as u32, 0);
        let mut buf = vec![0u8; 10];
        r.read(&mut buf, 0).unwrap();
        // Every slot is in use: even a 10-byte write does not fit (Linux's model).
        assert_eq!(w.write(&[1u8; 10], 0), Err(Errno::EAGAIN));
        // One page freed: a small write takes it whole; the next merges into it.
        let mut buf = vec![0u8; PIPE_BUF];
        r.read(&mut buf, 0).unwrap();
        assert_eq!(w.write(&[1u8; 20], 0), Ok(20));
        assert_eq!(w.write(&[1u8; 30], 0), Ok(30));
        // 4046 bytes left in that page: a 4050-byte write is atomic, so EAGAIN.
        assert_eq!(w.write(&[1u8; 4050], 0), Err(Errno::EAGAIN));
        // A write larger than PIPE_BUF may be partial: its tail merges first.
        assert_eq!(w.write(&vec![2u8; 8000], 0), Ok(8000 % PIPE_BUF));
        assert_eq!(p.set_capacity(100, false), Err(Errno::EBUSY));
        let mut all = vec![0u8; 2 * DEFAULT_CAPACITY];
        assert_eq!(
            r.read(&mut all, 0),
            Ok(DEFAULT_CAPACITY - PIPE_BUF - 10 + 20 + 30 + 3904)
        );
        assert_eq!(p.set_capacity(5000, false), Ok(8192));
        assert_eq!(p.set_capacity(2 << 20, false), Err(Errno::EPERM));
        assert_eq!(p.set_capacity(2 << 20, true), Ok(2 << 20));
    }

    struct FifoInode;
    impl Inode for FifoInode {
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
        fn stat(&self) -> SysResult<Stat> {
            Ok(Stat {
                mode: libc::S_IFIFO | 0o644,
                ino: 99,
                ..Default::default()
            })
        }
        fn open(&self, _flags: i32) -> SysResult<Box<dyn FileImpl>> {
            Err(Errno::ENXIO)
        }
    }

    #[test]
    fn fifo_open_rules() {
        use crate::wait::Waker;
        let p = Pipe::new(&AnonInos::default(), owner());
        let inode: Arc<dyn Inode> = Arc::new(FifoInode);
        let w = Waker::new();
        let never = || false;
        assert_eq!(
            open_fifo_with(
                &p,
                inode.clone(),
                libc::O_WRONLY | libc::O_NONBLOCK,
                &w,
                never
            )
            .err(),
            Some(Errno::ENXIO)
        );
        let r = open_fifo_with(
            &p,
            inode.clone(),
            libc::O_RDONLY | libc::O_NONBLOCK,
            &w,
            never,
        )
        .unwrap();
        assert_eq!(r.stat().unwrap().ino, 99);
        // No writer has come yet: EOF, no hang-up.
        assert_eq!(r.read(&mut [0u8; 4], 0), Ok(0));
        assert_eq!(r.readiness() & libc::POLLHUP as u32, 0);
        let wr = open_fifo_with(&p, inode.clone(), libc::O_WRONLY, &w, never).unwrap();
        wr.write(b"hi", 0).unwrap();
        let mut b = [0u8; 4];
        assert_eq!(r.read(&mut b, 0), Ok(2));
        drop(wr);
        assert_ne!(r.readiness() & libc::POLLHUP as u32, 0);
        drop(r);

        // A blocking reader waits until a writer opens from another thread.
        let (p2, i2) = (p.clone(), inode.clone());
        let t = std::thread::spawn(move || {
            let w2 = Waker::new();
            open_fifo_with(&p2, i2, libc::O_RDONLY, &w2, || false).map(|_| ())
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!t.is_finished());
        let wr = open_fifo_with(&p, inode.clone(), libc::O_WRONLY, &w, never).unwrap();
        assert_eq!(t.join().unwrap(), Ok(()));
        drop(wr);

        // The other order: a blocking writer waits, then a reader arrives. Both
        // opens must return (a reader that arrives after a writer never waits).
        let (p3, i3) = (p.clone(), inode.clone());
        let t = std::thread::spawn(move || {
            let w3 = Waker::new();
            open_fifo_with(&p3, i3, libc::O_WRONLY, &w3, || false).map(|_| ())
        });
        while p.lock().map(|s| s.writers).unwrap_or(0) == 0 {
            std::thread::yield_now();
        }
        let r = open_fifo_with(&p, inode, libc::O_RDONLY, &w, never).unwrap();
        assert_eq!(t.join().unwrap(), Ok(()));
        drop(r);
    }
}
