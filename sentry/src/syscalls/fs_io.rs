//! File syscalls around data and descriptors: openat2, fallocate, the sync family,
//! statx, preadv2/pwritev2, sendfile, copy_file_range, close_range and the old
//! getdents.

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::fs::{check_count, do_open, vectored, VecFlags, CHUNK};
use crate::syscalls::fs_mut::target;
use crate::syscalls::pieces::{in_pieces, Piece};
use crate::syscalls::{file_arg, path_arg, Args, MAX_RW_COUNT};
use crate::vfs::path::resolve_flags;
use crate::vfs::OpenFile;

/// `openat2(2)`: `struct open_how` is checked strictly, as Linux does.
pub fn openat2(task: &mut Task, a: &Args) -> SysResult<u64> {
    let size = a[3] as usize;
    if size < 24 {
        return Err(Errno::EINVAL);
    }
    if size > 4096 {
        return Err(Errno::E2BIG);
    }
    let mut raw = vec![0u8; size];
    io::read_exact(task.mem(), a[2], &mut raw)?;
    if raw[24..].iter().any(|&b| b != 0) {
        return Err(Errno::E2BIG);
    }
    let word = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let (flags, mode, resolve) = (word(0), word(1), word(2));
    const KNOWN: u64 = 0o37777777 | libc::O_TMPFILE as u64 | libc::O_PATH as u64;
    if flags & !KNOWN != 0 || flags > u32::MAX as u64 {
        return Err(Errno::EINVAL);
    }
    let flags = flags as i32;
    let creating = flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE;
    if mode & !0o7777 != 0 || (!creating && mode != 0) {
        return Err(Errno::EINVAL);
    }
    if resolve & !resolve_flags::ALL != 0
        || (resolve & resolve_flags::BENEATH != 0 && resolve & resolve_flags::IN_ROOT != 0)
    {
        return Err(Errno::EINVAL);
    }
    if flags & libc::O_PATH != 0
        && flags & !(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC) != 0
    {
        return Err(Errno::EINVAL);
    }
    let path = path_arg(task, a[1])?;
    do_open(task, a[0] as i32, &path, flags, mode as u32, resolve)
}

fn writable_file(task: &Task, fd: u64) -> SysResult<Arc<OpenFile>> {
    let f = file_arg(task, fd)?;
    if f.is_path() || f.flags() & libc::O_ACCMODE == libc::O_RDONLY {
        return Err(Errno::EBADF);
    }
    Ok(f)
}

/// `fallocate(2)`: modes 0, `FALLOC_FL_KEEP_SIZE` and
/// `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`.
pub fn fallocate(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (mode, off, len) = (a[1] as i32, a[2] as i64, a[3] as i64);
    if off < 0 || len <= 0 {
        return Err(Errno::EINVAL);
    }
    let f = writable_file(task, a[0])?;
    let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 && mode != punch {
        return Err(Errno::EOPNOTSUPP);
    }
    if off.checked_add(len).is_none() {
        return Err(Errno::EFBIG);
    }
    if !f.imp().seekable() {
        return Err(Errno::ESPIPE);
    }
    if let Some(d) = f.dentry() {
        d.check_writable()?;
    }
    allocate_killably(task, &f, mode, off as u64, len as u64)?;
    task.kernel.files.inotify.modified(&f);
    Ok(0)
}

/// Bytes one host `fallocate` allocates at most before the task looks for a kill.
const ALLOCATE_CHUNK: u64 = 64 << 20;

/// Allocates `[off, off+len)` of `f` in chunks, checking between them whether the
/// task must die: a host `fallocate` of gigabytes of memory-backed file runs for
/// seconds in one host call that nothing interrupts, and a SIGKILL must not wait for
/// it (Linux's shmem checks for signals page by page). Every chunk but the last
/// keeps the size, so the file grows once, at the end, as with one call. A kill
/// leaves the chunks done allocated (past the size, as `FALLOC_FL_KEEP_SIZE` would),
/// where Linux frees them; the task never sees the `EINTR`.
fn allocate_killably(task: &Task, f: &OpenFile, mode: i32, off: u64, len: u64) -> SysResult<()> {
    let end = off + len;
    let mut at = off;
    if mode & libc::FALLOC_FL_PUNCH_HOLE == 0 && len > ALLOCATE_CHUNK {
        // Chunks lose the whole-range refusals Linux makes before allocating
        // anything: a range larger than the filesystem (ENOSPC), and a memfd range
        // larger than the machine's memory, which Linux's shmem would fail to fill
        // (ENOMEM) after taking every free page of the host.
        if let Some(d) = f.dentry() {
            let st = d.inode().statfs()?;
            if st.blocks > 0 && len.div_ceil(st.bsize.max(1) as u64) > st.blocks {
                return Err(Errno::ENOSPC);
            }
        }
        if crate::fs::memfd::memfd_of(f).is_some() && len > task.kernel.mem_view()?.total {
            return Err(Errno::ENOMEM);
        }
        while end - at > ALLOCATE_CHUNK {
            if task.fatal_signal_pending() {
                return Err(Errno::EINTR);
            }
            f.imp()
                .allocate(mode | libc::FALLOC_FL_KEEP_SIZE, at, ALLOCATE_CHUNK)?;
            at += ALLOCATE_CHUNK;
        }
    }
    f.imp().allocate(mode, at, end - at)
}

/// `fsync(2)`.
pub fn fsync(task: &mut Task, a: &Args) -> SysResult<u64> {
    let f = file_arg(task, a[0])?;
    if f.is_path() {
        return Err(Errno::EBADF);
    }
    f.imp().sync()?;
    Ok(0)
}

/// `readahead(2)`: a hint; checks what Linux checks and has nothing to prefetch
/// (gofer files are read through host fds, whose page cache the host fills).
pub fn readahead(task: &mut Task, a: &Args) -> SysResult<u64> {
    let f = file_arg(task, a[0])?;
    if f.is_path() || f.flags() & libc::O_ACCMODE == libc::O_WRONLY {
        return Err(Errno::EBADF);
    }
    if !f.stat()?.is_regular() {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

/// `sync_file_range(2)`: as `fdatasync` on the range's file, after Linux's checks.
pub fn sync_file_range(task: &mut Task, a: &Args) -> SysResult<u64> {
    const VALID: u64 = 1 | 2 | 4;
    let (off, len) = (a[1] as i64, a[2] as i64);
    if a[3] & !VALID != 0 || off < 0 || len < 0 || off.checked_add(len).is_none() {
        return Err(Errno::EINVAL);
    }
    let f = file_arg(task, a[0])?;
    if f.is_path() {
        return Err(Errno::EBADF);
    }
    let st = f.stat()?;
    if !st.is_regular() && !st.is_dir() && st.file_type() != libc::S_IFBLK {
        return Err(Errno::ESPIPE);
    }
    f.imp().sync()?;
    Ok(0)
}

/// `fdatasync(2)`.
pub fn fdatasync(task: &mut Task, a: &Args) -> SysResult<u64> {
    fsync(task, a)
}

/// `sync(2)`: the sentry holds no dirty data of its own.
pub fn sync(_task: &mut Task, _a: &Args) -> SysResult<u64> {
    Ok(0)
}

/// `syncfs(2)`.
pub fn syncfs(task: &mut Task, a: &Args) -> SysResult<u64> {
    let f = file_arg(task, a[0])?;
    if f.is_path() {
        return Err(Errno::EBADF);
    }
    Ok(0)
}

const STATX_BASIC_STATS: u32 = 0x7ff;
const STATX_MNT_ID: u32 = 0x1000;
const STATX_RESERVED: u32 = 0x8000_0000;
const AT_STATX_SYNC_TYPE: i32 = 0x6000;

/// `statx(2)`.
pub fn statx(task: &mut Task, a: &Args) -> SysResult<u64> {
    let flags = a[2] as i32;
    let mask = a[3] as u32;
    let known = libc::AT_SYMLINK_NOFOLLOW
        | libc::AT_EMPTY_PATH
        | libc::AT_NO_AUTOMOUNT
        | AT_STATX_SYNC_TYPE;
    if flags & !known != 0 || flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE {
        return Err(Errno::EINVAL);
    }
    if mask & STATX_RESERVED != 0 {
        return Err(Errno::EINVAL);
    }
    let path = if a[1] == 0 {
        Vec::new()
    } else {
        path_arg(task, a[1])?
    };
    let (st, mnt_id) =
        if path.is_empty() && flags & libc::AT_EMPTY_PATH != 0 && a[0] as i32 != libc::AT_FDCWD {
            let f = file_arg(task, a[0])?;
            let id = f.dentry().map(|d| d.mount().id()).unwrap_or(0);
            (f.stat()?, id)
        } else {
            let d = target(task, a[0] as i32, &path, flags)?;
            (d.inode().stat()?, d.mount().id())
        };
    let mut b = Vec::with_capacity(256);
    b.extend_from_slice(&(STATX_BASIC_STATS | STATX_MNT_ID).to_le_bytes());
    b.extend_from_slice(&(st.blksize as u32).to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes()); // attributes
    b.extend_from_slice(&(st.nlink as u32).to_le_bytes());
    // Owners as the caller's user namespace names them.
    let ns = task.creds.user_ns();
    b.extend_from_slice(&ns.uid_shown(st.uid).to_le_bytes());
    b.extend_from_slice(&ns.gid_shown(st.gid).to_le_bytes());
    b.extend_from_slice(&(st.mode as u16).to_le_bytes());
    b.extend_from_slice(&[0u8; 2]);
    b.extend_from_slice(&st.ino.to_le_bytes());
    b.extend_from_slice(&(st.size as u64).to_le_bytes());
    b.extend_from_slice(&(st.blocks as u64).to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes()); // attributes_mask
    for t in [st.atime, (0, 0), st.ctime, st.mtime] {
        // atime, btime (not provided), ctime, mtime.
        b.extend_from_slice(&t.0.to_le_bytes());
        b.extend_from_slice(&(t.1 as u32).to_le_bytes());
        b.extend_from_slice(&[0u8; 4]);
    }
    let (rmaj, rmin) = (libc::major(st.rdev), libc::minor(st.rdev));
    let (dmaj, dmin) = (libc::major(st.dev), libc::minor(st.dev));
    for v in [rmaj, rmin, dmaj, dmin] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&mnt_id.to_le_bytes());
    b.resize(256, 0);
    io::write_all(task.mem(), a[4], &b)?;
    Ok(0)
}

const RWF_HIPRI: u64 = 0x1;
const RWF_DSYNC: u64 = 0x2;
const RWF_SYNC: u64 = 0x4;
const RWF_NOWAIT: u64 = 0x8;
const RWF_APPEND: u64 = 0x10;
const RWF_ALL: u64 = RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND;

/// The offset argument of preadv2/pwritev2: -1 is the file position.
fn offset_v2(a: &Args) -> Option<i64> {
    Some(a[3] as i64).filter(|&o| o != -1)
}

/// preadv2/pwritev2 flags; Linux refuses unknown ones only after the iovec array.
/// HIPRI (polling), DSYNC and SYNC change nothing here: the sentry's writes reach the
/// gofer or its own memory before the call returns.
fn vec_flags(flags: u64) -> SysResult<VecFlags> {
    if flags & !RWF_ALL != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    Ok(VecFlags {
        nowait: flags & RWF_NOWAIT != 0,
        append: flags & RWF_APPEND != 0,
    })
}

/// `preadv2(2)`: offset -1 reads at the file position.
pub fn preadv2(task: &mut Task, a: &Args) -> SysResult<u64> {
    vectored(task, a, offset_v2(a), false, vec_flags(a[5]))
}

/// `pwritev2(2)`: offset -1 writes at the file position; `RWF_APPEND` at the end.
pub fn pwritev2(task: &mut Task, a: &Args) -> SysResult<u64> {
    vectored(task, a, offset_v2(a), true, vec_flags(a[5]))
}

/// Copies up to `count` bytes from `src` (at `src_off`, or its position) to `dst`
/// (at `dst_off`, or its position); returns the bytes copied. Stops between chunks
/// once `task` must exit.
fn copy_between(
    task: &Task,
    src: &OpenFile,
    src_off: Option<i64>,
    dst: &OpenFile,
    dst_off: Option<i64>,
    count: usize,
) -> SysResult<usize> {
    let mut buf = vec![0u8; count.clamp(1, CHUNK)];
    in_pieces(
        task,
        "copy",
        |t| t.fatal_signal_pending(),
        |_, done| {
            if done >= count {
                return Ok(Piece::last(0));
            }
            let want = (count - done).min(CHUNK);
            let n = match src_off {
                Some(o) => src.pread(&mut buf[..want], o + done as i64),
                None => src.read(&mut buf[..want]),
            }?;
            if n == 0 {
                return Ok(Piece::last(0));
            }
            let w = match dst_off {
                Some(o) => dst.pwrite(&buf[..n], o + done as i64),
                None => dst.write(&buf[..n]),
            }?;
            Ok(Piece {
                moved: w,
                more: w == n && n == want,
            })
        },
    )
}

fn read_off(task: &Task, addr: u64) -> SysResult<Option<i64>> {
    if addr == 0 {
        return Ok(None);
    }
    let mut b = [0u8; 8];
    io::read_exact(task.mem(), addr, &mut b)?;
    let v = i64::from_le_bytes(b);
    if v < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(Some(v))
}

fn write_off(task: &Task, addr: u64, v: i64) -> SysResult<()> {
    io::write_all(task.mem(), addr, &v.to_le_bytes())
}

/// `sendfile(2)` between files the sentry can read and write.
pub fn sendfile(task: &mut Task, a: &Args) -> SysResult<u64> {
    let out = file_arg(task, a[0])?;
    let inp = file_arg(task, a[1])?;
    if inp.is_path() || inp.flags() & libc::O_ACCMODE == libc::O_WRONLY {
        return Err(Errno::EBADF);
    }
    if out.is_path() || out.flags() & libc::O_ACCMODE == libc::O_RDONLY {
        return Err(Errno::EBADF);
    }
    if out.flags() & libc::O_APPEND != 0 {
        return Err(Errno::EINVAL);
    }
    if !inp.imp().seekable() || inp.stat()?.is_dir() {
        return Err(Errno::EINVAL);
    }
    let off = read_off(task, a[2])?;
    let count = check_count(a[3]);
    let n = copy_between(task, &inp, off, &out, None, count)?;
    if let Some(o) = off {
        write_off(task, a[2], o + n as i64)?;
    }
    Ok(n as u64)
}

/// `copy_file_range(2)` between regular files.
pub fn copy_file_range(task: &mut Task, a: &Args) -> SysResult<u64> {
    if a[5] != 0 {
        return Err(Errno::EINVAL);
    }
    let inp = file_arg(task, a[0])?;
    let out = file_arg(task, a[2])?;
    if inp.is_path() || inp.flags() & libc::O_ACCMODE == libc::O_WRONLY {
        return Err(Errno::EBADF);
    }
    if out.is_path()
        || out.flags() & libc::O_ACCMODE == libc::O_RDONLY
        || out.flags() & libc::O_APPEND != 0
    {
        return Err(Errno::EBADF);
    }
    let (ist, ost) = (inp.stat()?, out.stat()?);
    if ist.is_dir() || ost.is_dir() {
        return Err(Errno::EISDIR);
    }
    if !ist.is_regular() || !ost.is_regular() {
        return Err(Errno::EINVAL);
    }
    let in_off = read_off(task, a[1])?;
    let out_off = read_off(task, a[3])?;
    let len = a[4].min(MAX_RW_COUNT) as usize;
    // A host file handed in as stdio looks regular but its position lives on the
    // host: it is copied to or from as a stream, and takes no explicit offset.
    let (in_seek, out_seek) = (inp.imp().seekable(), out.imp().seekable());
    if (!in_seek && in_off.is_some()) || (!out_seek && out_off.is_some()) {
        return Err(Errno::ESPIPE);
    }
    let in_pos = in_seek.then(|| in_off.unwrap_or(inp.position() as i64));
    let out_pos = out_seek.then(|| out_off.unwrap_or(out.position() as i64));
    if let (Some(ip), Some(op)) = (in_pos, out_pos) {
        if ist.dev == ost.dev && ist.ino == ost.ino {
            let (a0, b0) = (ip as u64, op as u64);
            if a0 < b0 + len as u64 && b0 < a0 + len as u64 {
                return Err(Errno::EINVAL);
            }
        }
    }
    if let Some(op) = out_pos {
        if (op as u64)
            .checked_add(len as u64)
            .is_none_or(|e| e > i64::MAX as u64)
        {
            return Err(Errno::EFBIG);
        }
    }
    let n = copy_between(task, &inp, in_pos, &out, out_pos, len)?;
    if let Some(ip) = in_pos {
        match in_off {
            Some(_) => write_off(task, a[1], ip + n as i64)?,
            None => inp.set_position((ip + n as i64) as u64),
        }
    }
    if let Some(op) = out_pos {
        match out_off {
            Some(_) => write_off(task, a[3], op + n as i64)?,
            None => out.set_position((op + n as i64) as u64),
        }
    }
    Ok(n as u64)
}

const CLOSE_RANGE_UNSHARE: u64 = 2;
const CLOSE_RANGE_CLOEXEC: u64 = 4;

/// `close_range(2)`. `CLOSE_RANGE_UNSHARE` is accepted; the table is the caller's
/// process's own.
pub fn close_range(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (first, last, flags) = (a[0] as u32, a[1] as u32, a[2]);
    if flags & !(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) != 0 || first > last {
        return Err(Errno::EINVAL);
    }
    let mut removed = Vec::new();
    {
        let mut fds = task.fds()?;
        let open: Vec<i32> = fds
            .iter()
            .map(|(fd, _)| fd)
            .filter(|&fd| fd as u32 >= first && fd as u32 <= last)
            .collect();
        for fd in open {
            if flags & CLOSE_RANGE_CLOEXEC != 0 {
                fds.set_cloexec(fd, true)?;
            } else if let Ok(e) = fds.remove(fd) {
                removed.push(e);
            }
        }
    }
    // Descriptions are released outside the table lock.
    drop(removed);
    Ok(0)
}

/// `getdents(2)`: the old `struct linux_dirent` records.
pub fn getdents(task: &mut Task, a: &Args) -> SysResult<u64> {
    let file = file_arg(task, a[0])?;
    if file.is_path() {
        return Err(Errno::EBADF);
    }
    let count = (a[2] as usize).min(CHUNK);
    let ents = file.imp().getdents(file.position(), count)?;
    let mut out = Vec::with_capacity(count);
    let mut pos = file.position();
    for e in ents {
        // ino, off, reclen, name, NUL, type.
        let reclen = (8 + 8 + 2 + e.name.len() + 2).next_multiple_of(8);
        if out.len() + reclen > count {
            if out.is_empty() {
                return Err(Errno::EINVAL);
            }
            break;
        }
        let start = out.len();
        out.extend_from_slice(&e.ino.to_le_bytes());
        out.extend_from_slice(&(e.next as i64).to_le_bytes());
        out.extend_from_slice(&(reclen as u16).to_le_bytes());
        out.extend_from_slice(&e.name);
        out.resize(start + reclen - 1, 0);
        out.push(e.kind);
        pos = e.next;
    }
    io::write_all(task.mem(), a[1], &out)?;
    file.set_position(pos);
    task.kernel.files.inotify.accessed(&file);
    Ok(out.len() as u64)
}

/// `fadvise64(2)`: advice is a hint the sentry's filesystems have no use for;
/// the arguments are still checked as Linux does.
pub fn fadvise64(task: &mut Task, a: &Args) -> SysResult<u64> {
    let f = file_arg(task, a[0])?;
    if f.is_path() {
        return Err(Errno::EBADF);
    }
    if (a[2] as i64) < 0 || a[3] > 5 {
        return Err(Errno::EINVAL);
    }
    if !f.imp().seekable() {
        return Err(Errno::ESPIPE);
    }
    Ok(0)
}
