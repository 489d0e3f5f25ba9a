//! `splice`, `tee`, `sendfile`: data moved by the sentry between pipes and files
//! without passing through the application's memory.

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::fs::pipe::{pipe_of, Pipe};
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::pieces::{in_pieces, Piece};
use crate::syscalls::{file_arg, Args, MAX_RW_COUNT};
use crate::vfs::OpenFile;

/// `SPLICE_F_NONBLOCK`.
const SPLICE_F_NONBLOCK: u32 = 2;
/// Every `SPLICE_F_*` flag.
const SPLICE_FLAGS: u32 = 1 | 2 | 4 | 8;
/// Bytes moved per step of sendfile.
const CHUNK: usize = 64 * 1024;

fn readable(f: &OpenFile) -> SysResult<()> {
    if f.is_path() || f.flags() & libc::O_ACCMODE == libc::O_WRONLY {
        return Err(Errno::EBADF);
    }
    Ok(())
}

fn writable(f: &OpenFile) -> SysResult<()> {
    if f.is_path() || f.flags() & libc::O_ACCMODE == libc::O_RDONLY {
        return Err(Errno::EBADF);
    }
    Ok(())
}

/// Waits until `pipe` (read through `file`) has data or no writers. `Ok(false)`:
/// EOF.
fn wait_pipe_data(task: &Task, file: &OpenFile, pipe: &Pipe, nonblock: bool) -> SysResult<bool> {
    loop {
        if !pipe.is_empty() {
            return Ok(true);
        }
        if !pipe.has_writers() {
            return Ok(false);
        }
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        task.wait_for_file(file, libc::POLLIN as u32)?;
    }
}

/// Waits until `pipe` (written through `file`) has room; `EPIPE` (with SIGPIPE)
/// without readers.
fn wait_pipe_room(task: &mut Task, file: &OpenFile, pipe: &Pipe, nonblock: bool) -> SysResult<()> {
    loop {
        if !pipe.has_readers() {
            task.raise_signal(libc::SIGPIPE);
            return Err(Errno::EPIPE);
        }
        if pipe.room() > 0 {
            return Ok(());
        }
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        task.wait_for_file(file, libc::POLLOUT as u32)?;
    }
}

fn read_off(task: &Task, addr: u64) -> SysResult<Option<i64>> {
    if addr == 0 {
        return Ok(None);
    }
    let v = io::read_u64(task.mem(), addr)? as i64;
    if v < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(Some(v))
}

/// Writes `data` to `out` at `off` (or its position), waiting for room on a blocking
/// stream; returns bytes written (short only on error after progress).
fn write_file(task: &mut Task, out: &OpenFile, data: &[u8], off: Option<i64>) -> SysResult<usize> {
    // RLIMIT_FSIZE as for write(2): cut short, or SIGXFSZ and EFBIG at the limit.
    let limited = super::fs::fsize_limit(task, out, off, data.len())?;
    let cut = limited < data.len();
    let data = &data[..limited];
    let mut done = 0;
    while done < data.len() {
        let r = match off {
            Some(o) => out.pwrite(&data[done..], o + done as i64),
            None => out.write(&data[done..]),
        };
        match r {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::EAGAIN) if done == 0 && !out.nonblocking() => {
                task.wait_for_file(out, libc::POLLOUT as u32)?
            }
            Err(Errno::EAGAIN) if !out.nonblocking() => {
                if task.wait_for_file(out, libc::POLLOUT as u32).is_err() {
                    break;
                }
            }
            Err(Errno::EPIPE) if done == 0 => {
                task.raise_signal(libc::SIGPIPE);
                return Err(Errno::EPIPE);
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    // Linux's splice loop goes on writing after the cut and meets the limit.
    if cut && done == limited {
        task.raise_signal(libc::SIGXFSZ);
    }
    Ok(done)
}

fn splice_pipes(
    task: &mut Task,
    (fin, pin): (&OpenFile, &Arc<Pipe>),
    (fout, pout): (&OpenFile, &Arc<Pipe>),
    len: usize,
    nonblock: bool,
    consume: bool,
) -> SysResult<u64> {
    if Arc::ptr_eq(pin, pout) {
        return Err(Errno::EINVAL);
    }
    if !wait_pipe_data(task, fin, pin, nonblock || fin.nonblocking())? {
        return Ok(0);
    }
    wait_pipe_room(task, fout, pout, nonblock || fout.nonblocking())?;
    let n = len.min(pout.room());
    let data = pin.peek(n)?;
    let w = pout.write(&data)?;
    if consume {
        pin.consume(w)?;
    }
    Ok(w as u64)
}

/// `splice(2)`.
pub fn splice(task: &mut Task, a: &Args) -> SysResult<u64> {
    let fin = file_arg(task, a[0])?;
    let fout = file_arg(task, a[2])?;
    let len = a[4].min(MAX_RW_COUNT) as usize;
    let flags = a[5] as u32;
    if flags & !SPLICE_FLAGS != 0 {
        return Err(Errno::EINVAL);
    }
    readable(&fin)?;
    writable(&fout)?;
    let nonblock = flags & SPLICE_F_NONBLOCK != 0;
    let (pin, pout) = (pipe_of(&fin), pipe_of(&fout));
    if (pin.is_some() && a[1] != 0) || (pout.is_some() && a[3] != 0) {
        return Err(Errno::ESPIPE);
    }
    if len == 0 {
        return Ok(0);
    }
    match (pin, pout) {
        (Some(pin), Some(pout)) => {
            splice_pipes(task, (&fin, &pin), (&fout, &pout), len, nonblock, true)
        }
        (Some(pin), None) => {
            if fout.flags() & libc::O_APPEND != 0 {
                return Err(Errno::EINVAL);
            }
            let off = read_off(task, a[3])?;
            if !wait_pipe_data(task, &fin, &pin, nonblock || fin.nonblocking())? {
                return Ok(0);
            }
            let data = pin.peek(len)?;
            let n = write_file(task, &fout, &data, off)?;
            pin.consume(n)?;
            if let Some(o) = off {
                io::write_u64(task.mem(), a[3], (o + n as i64) as u64)?;
            }
            Ok(n as u64)
        }
        (None, Some(pout)) => {
            let off = read_off(task, a[1])?;
            wait_pipe_room(task, &fout, &pout, nonblock || fout.nonblocking())?;
            let mut buf = vec![0u8; len.min(pout.room())];
            let n = loop {
                let r = match off {
                    Some(o) => fin.pread(&mut buf, o),
                    None => fin.read(&mut buf),
                };
                match r {
                    Err(Errno::EAGAIN) if !nonblock && !fin.nonblocking() => {
                        task.wait_for_file(&fin, libc::POLLIN as u32)?
                    }
                    r => break r?,
                }
            };
            let w = pout.write(&buf[..n])?;
            if let Some(o) = off {
                io::write_u64(task.mem(), a[1], (o + w as i64) as u64)?;
            }
            Ok(w as u64)
        }
        (None, None) => Err(Errno::EINVAL),
    }
}

/// `tee(2)`: copies between two pipes without consuming the input.
pub fn tee(task: &mut Task, a: &Args) -> SysResult<u64> {
    let fin = file_arg(task, a[0])?;
    let fout = file_arg(task, a[1])?;
    let len = a[2].min(MAX_RW_COUNT) as usize;
    let flags = a[3] as u32;
    if flags & !SPLICE_FLAGS != 0 {
        return Err(Errno::EINVAL);
    }
    readable(&fin)?;
    writable(&fout)?;
    let (Some(pin), Some(pout)) = (pipe_of(&fin), pipe_of(&fout)) else {
        return Err(Errno::EINVAL);
    };
    if len == 0 {
        return Ok(0);
    }
    let nonblock = flags & SPLICE_F_NONBLOCK != 0;
    splice_pipes(task, (&fin, &pin), (&fout, &pout), len, nonblock, false)
}

/// `sendfile(2)`: from a readable file (at `*offset`, updated, or its position) to
/// any writable file.
pub fn sendfile(task: &mut Task, a: &Args) -> SysResult<u64> {
    let fout = file_arg(task, a[0])?;
    let fin = file_arg(task, a[1])?;
    readable(&fin)?;
    writable(&fout)?;
    if fout.flags() & libc::O_APPEND != 0 {
        return Err(Errno::EINVAL);
    }
    // Linux reads sendfile's input through the page cache: a pipe cannot be one.
    if pipe_of(&fin).is_some() {
        return Err(Errno::EINVAL);
    }
    let mut off = read_off(task, a[2])?;
    if off.is_some() && !fin.imp().seekable() {
        return Err(Errno::ESPIPE);
    }
    let count = a[3].min(MAX_RW_COUNT) as usize;
    let done = in_pieces(
        &mut *task,
        "sendfile",
        |t| t.fatal_signal_pending(),
        |task, done| {
            if done >= count {
                return Ok(Piece::last(0));
            }
            let mut buf = vec![0u8; (count - done).min(CHUNK)];
            let n = match off {
                Some(o) => fin.pread(&mut buf, o),
                None => fin.read(&mut buf),
            }?;
            if n == 0 {
                return Ok(Piece::last(0));
            }
            let w = write_file(task, &fout, &buf[..n], None)?;
            if let Some(o) = off.as_mut() {
                *o += w as i64;
            } else if w < n {
                // Put back what the output did not take.
                let _ = fin.seek(-((n - w) as i64), libc::SEEK_CUR);
            }
            Ok(Piece {
                moved: w,
                more: w == n,
            })
        },
    )?;
    if let Some(o) = off {
        io::write_u64(task.mem(), a[2], o as u64)?;
    }
    Ok(done as u64)
}
