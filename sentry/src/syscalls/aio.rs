//! `io_setup`, `io_destroy`, `io_submit`, `io_cancel`, `io_getevents`,
//! `io_pgetevents`: Linux AIO over [`crate::kernel::aio`]. Reads, writes and
//! syncs run during `io_submit` (Linux blocks there too for buffered files); their
//! completions go into the context's ring in the caller's memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::fs::eventfd::EventFd;
use crate::kernel::aio::{ring_slots, AioContext, Event, PendingPoll};
use crate::kernel::wait::{self, Interrupted};
use crate::kernel::Task;
use crate::mm::{io, MmapRequest, VmaBacking, VmaRole, PROT_MAY_ALL};
use crate::syscalls::fs::{fsize_limit, readv_at, writev_at};
use crate::syscalls::poll::MaskGuard;
use crate::syscalls::Args;
use crate::vfs::OpenFile;

const IOCB_CMD_PREAD: u16 = 0;
const IOCB_CMD_PWRITE: u16 = 1;
const IOCB_CMD_FSYNC: u16 = 2;
const IOCB_CMD_FDSYNC: u16 = 3;
const IOCB_CMD_POLL: u16 = 5;
const IOCB_CMD_PREADV: u16 = 7;
const IOCB_CMD_PWRITEV: u16 = 8;
/// `aio_flags`: signal the eventfd `aio_resfd` at completion.
const IOCB_FLAG_RESFD: u32 = 1;
/// `aio_rw_flags` the sentry accepts (`RWF_HIPRI`, `RWF_DSYNC`, `RWF_SYNC`:
/// every transfer here is already complete and synchronous when it returns).
const RW_FLAGS_OK: i32 = 0x1 | 0x2 | 0x4;
/// Largest `nr_events` whose doubled ring Linux can size.
const MAX_EVENTS: u64 = 0x1000_0000 / 32 / 2;

/// `io_setup(2)`.
pub fn io_setup(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (nr_events, ctxp) = (a[0] as u32, a[1]);
    if io::read_u64(task.mem(), ctxp)? != 0 || nr_events == 0 {
        return Err(Errno::EINVAL);
    }
    let (nr, bytes) = ring_slots(nr_events, task.kernel.ncpus);
    if nr_events as u64 > MAX_EVENTS {
        return Err(Errno::EINVAL);
    }
    let table = &task.kernel.aio;
    table.reserve(nr_events as u64)?;
    let mapped = task.mm().and_then(|mut mm| {
        mm.mmap(MmapRequest {
            addr: 0,
            len: bytes,
            prot: libc::PROT_READ | libc::PROT_WRITE,
            max_prot: PROT_MAY_ALL,
            shared: false,
            fixed: false,
            fixed_noreplace: false,
            backing: VmaBacking::Anonymous,
            noreserve: false,
            role: VmaRole::Plain,
        })
    });
    let id = match mapped {
        Ok(id) => id,
        Err(e) => {
            table.unreserve(nr_events as u64);
            return Err(e);
        }
    };
    let ctx = Arc::new(AioContext {
        id,
        nr,
        max_reqs: nr_events as u64,
        pending: Default::default(),
        queue: Default::default(),
        tail: Default::default(),
    });
    let done = table
        .insert(task.mm_shared(), ctx.clone())
        .and_then(|index| {
            ctx.init_ring(task.mem(), index)?;
            io::write_u64(task.mem(), ctxp, id)
        });
    if let Err(e) = done {
        let _ = table.remove(task.mm_shared(), id);
        let _ = task.mm().map(|mut mm| mm.munmap(id, bytes));
        return Err(e);
    }
    Ok(0)
}

/// `io_destroy(2)`: pending polls are dropped, the ring is unmapped.
pub fn io_destroy(task: &mut Task, a: &Args) -> SysResult<u64> {
    let ctx = task.kernel.aio.remove(task.mm_shared(), a[0])?;
    let (_, bytes) = ring_slots(ctx.max_reqs as u32, task.kernel.ncpus);
    // The application may have unmapped or remapped it already.
    let _ = task.mm()?.munmap(ctx.id, bytes);
    Ok(0)
}

/// One `struct iocb`.
struct Iocb {
    data: u64,
    key: u32,
    rw_flags: i32,
    opcode: u16,
    fd: u32,
    buf: u64,
    nbytes: u64,
    offset: i64,
    reserved2: u64,
    flags: u32,
    resfd: u32,
}

fn read_iocb(task: &Task, addr: u64) -> SysResult<Iocb> {
    let mut b = [0u8; 64];
    io::read_exact(task.mem(), addr, &mut b)?;
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
    Ok(Iocb {
        data: u64_at(0),
        key: u32_at(8),
        rw_flags: u32_at(12) as i32,
        opcode: u16::from_le_bytes([b[16], b[17]]),
        fd: u32_at(20),
        buf: u64_at(24),
        nbytes: u64_at(32),
        offset: u64_at(40) as i64,
        reserved2: u64_at(48),
        flags: u32_at(56),
        resfd: u32_at(60),
    })
}

/// The eventfd named by `IOCB_FLAG_RESFD`.
fn resfd(task: &Task, fd: u32) -> SysResult<Arc<OpenFile>> {
    let f = task.fds()?.get(fd as i32)?;
    // Linux's eventfd_ctx_fdget: any other file is EINVAL.
    let is_eventfd = f
        .imp()
        .as_any()
        .is_some_and(|x| x.downcast_ref::<EventFd>().is_some());
    if !is_eventfd {
        return Err(Errno::EINVAL);
    }
    Ok(f)
}

/// A read or write: `Err` if the request is refused, else its result (bytes, or a
/// negative errno for a transfer that failed).
fn transfer(
    task: &mut Task,
    file: &OpenFile,
    cb: &Iocb,
    write: bool,
    vectored: bool,
) -> SysResult<i64> {
    if cb.rw_flags & !RW_FLAGS_OK != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if write {
        file.check_writable()?;
    } else {
        file.check_readable()?;
    }
    let iov = if vectored {
        crate::syscalls::fs::read_iovecs(task, cb.buf, cb.nbytes)?
    } else {
        vec![(cb.buf, cb.nbytes as usize)]
    };
    if cb.offset < 0 {
        return Err(Errno::EINVAL);
    }
    let off = file.imp().seekable().then_some(cb.offset);
    let r = if write {
        let total: usize = iov.iter().map(|v| v.1).sum();
        fsize_limit(task, file, off, total).and_then(|n| {
            let mut left = n;
            let cut: Vec<(u64, usize)> = iov
                .iter()
                .map(|&(b, l)| {
                    let t = l.min(left);
                    left -= t;
                    (b, t)
                })
                .collect();
            writev_at(task, file, &cut, off, false)
        })
    } else {
        readv_at(task, file, &iov, off, false)
    };
    Ok(match r {
        Ok(n) => n as i64,
        Err(e) => -(e.0 as i64),
    })
}

/// Submits one iocb: `Err` for what fails the submission itself; a transfer's own
/// failure is its completion's result.
fn submit_one(task: &mut Task, ctx: &AioContext, addr: u64) -> SysResult<()> {
    let cb = read_iocb(task, addr)?;
    if cb.reserved2 != 0 || cb.nbytes > isize::MAX as u64 {
        return Err(Errno::EINVAL);
    }
    if ctx.free_slots(task.mem())? == 0 {
        return Err(Errno::EAGAIN);
    }
    let file = task.fds()?.get(cb.fd as i32)?;
    let efd = if cb.flags & IOCB_FLAG_RESFD != 0 {
        Some(resfd(task, cb.resfd)?)
    } else {
        None
    };
    // Linux stores its key (0) into aio_key at submission.
    let _ = cb.key;
    io::write_u32(task.mem(), addr + 8, 0)?;
    let event = Event {
        data: cb.data,
        obj: addr,
        ..Default::default()
    };
    let res = match cb.opcode {
        IOCB_CMD_PREAD => transfer(task, &file, &cb, false, false)?,
        IOCB_CMD_PWRITE => transfer(task, &file, &cb, true, false)?,
        IOCB_CMD_PREADV => transfer(task, &file, &cb, false, true)?,
        IOCB_CMD_PWRITEV => transfer(task, &file, &cb, true, true)?,
        IOCB_CMD_FSYNC | IOCB_CMD_FDSYNC => {
            if cb.buf != 0 || cb.offset != 0 || cb.nbytes != 0 || cb.rw_flags != 0 {
                return Err(Errno::EINVAL);
            }
            match file.imp().sync() {
                Ok(()) => 0,
                Err(e) => -(e.0 as i64),
            }
        }
        IOCB_CMD_POLL => {
            if cb.buf > u16::MAX as u64 || cb.offset != 0 || cb.nbytes != 0 || cb.rw_flags != 0 {
                return Err(Errno::EINVAL);
            }
            let mask = cb.buf as u32 | (libc::POLLERR | libc::POLLHUP) as u32;
            let ready = file.imp().readiness() & mask;
            if ready == 0 {
                return ctx.add_poll(PendingPoll {
                    file,
                    mask,
                    event,
                    resfd: efd,
                });
            }
            ready as i64
        }
        _ => return Err(Errno::EINVAL),
    };
    ctx.post(task.mem(), Event { res, ..event }, efd.as_ref())
}

/// `io_submit(2)`: the number submitted, or the first one's error.
pub fn io_submit(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (id, nr, list) = (a[0], a[1] as i64, a[2]);
    if nr < 0 {
        return Err(Errno::EINVAL);
    }
    let ctx = task.kernel.aio.get(task.mm_shared(), id)?;
    let nr = nr.min(ctx.nr as i64) as u64;
    let mut done = 0u64;
    for i in 0..nr {
        let r = io::read_u64(task.mem(), list.wrapping_add(i * 8))
            .and_then(|addr| submit_one(&mut *task, &ctx, addr));
        match r {
            Ok(()) => done += 1,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// `io_cancel(2)`: only a poll still pending can be cancelled; it completes with
/// result 0 and the call says `EINPROGRESS`, as Linux's.
pub fn io_cancel(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (id, iocb) = (a[0], a[1]);
    let key = io::read_u64(task.mem(), iocb + 8)? as u32;
    if key != 0 {
        return Err(Errno::EINVAL);
    }
    let ctx = task.kernel.aio.get(task.mm_shared(), id)?;
    ctx.cancel(task.mem(), iocb)?;
    Err(Errno::EINPROGRESS)
}

/// Waits for `min_nr` completions (up to `nr`, until `timeout`) and copies them to
/// `out`; 0 events and a signal give `EINTR`.
fn get_events(
    task: &Task,
    id: u64,
    min_nr: i64,
    nr: i64,
    out: u64,
    timeout: Option<Duration>,
) -> SysResult<u64> {
    let ctx = task.kernel.aio.get(task.mm_shared(), id)?;
    if min_nr > nr || min_nr < 0 || nr < 0 {
        return Err(Errno::EINVAL);
    }
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut got = 0usize;
    let mut attempt = || -> SysResult<Option<()>> {
        ctx.check_polls(task.mem())?;
        let evs = ctx.take(task.mem(), nr as usize - got)?;
        for e in evs {
            io::write_all(task.mem(), out + got as u64 * 32, &e)?;
            got += 1;
        }
        Ok((got as i64 >= min_nr || got as i64 == nr).then_some(()))
    };
    if attempt()?.is_some() || timeout == Some(Duration::ZERO) {
        return Ok(got as u64);
    }
    let files = ctx.polled_files();
    let _ctx_reg = ctx.queue.register(&task.waker);
    let _regs: Vec<_> = files
        .iter()
        .filter_map(|f| f.imp().wait_queue().map(|q| q.register(&task.waker)))
        .collect();
    let r = wait::block(
        &task.waker,
        deadline,
        || task.signal_pending(),
        &mut attempt,
    );
    match r {
        Ok(r) => r.map(|()| got as u64),
        Err(Interrupted::Timeout) => Ok(got as u64),
        Err(Interrupted::Signal) if got == 0 => Err(Errno::EINTR),
        Err(Interrupted::Signal) => Ok(got as u64),
    }
}

fn timeout_arg(task: &Task, addr: u64) -> SysResult<Option<Duration>> {
    if addr == 0 {
        return Ok(None);
    }
    let ts: libc::timespec = io::read_struct(task.mem(), addr)?;
    // Linux takes the value as it is: a negative one is already past.
    let ns = (ts.tv_sec as i128) * 1_000_000_000 + ts.tv_nsec as i128;
    Ok(Some(Duration::from_nanos(
        ns.clamp(0, u64::MAX as i128) as u64
    )))
}

/// `io_getevents(2)`.
pub fn io_getevents(task: &mut Task, a: &Args) -> SysResult<u64> {
    let timeout = timeout_arg(task, a[4])?;
    get_events(task, a[0], a[1] as i64, a[2] as i64, a[3], timeout)
}

/// `io_pgetevents(2)`: `io_getevents` with a signal mask for the wait.
pub fn io_pgetevents(task: &mut Task, a: &Args) -> SysResult<u64> {
    let timeout = timeout_arg(task, a[4])?;
    let (mask, size) = if a[5] != 0 {
        (
            io::read_u64(task.mem(), a[5])?,
            io::read_u64(task.mem(), a[5] + 8)?,
        )
    } else {
        (0, 0)
    };
    let guard = MaskGuard::apply(task, mask, size)?;
    let r = get_events(task, a[0], a[1] as i64, a[2] as i64, a[3], timeout);
    guard.restore(task);
    r
}
