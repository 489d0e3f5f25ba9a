//! File syscalls: open/close, read/write and their vector and positional forms,
//! stat, seek, directory listing, links, the working directory, access checks, fd
//! duplication and the terminal ioctls.

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::{CAP_FOWNER, CAP_FSETID, CAP_SYS_CHROOT, CAP_SYS_RESOURCE};
use crate::kernel::Task;
use crate::mm::io;
use crate::sys::pod::from_bytes;
use crate::syscalls::pieces::{in_pieces, Piece};
use crate::syscalls::{at_dir, file_arg, path_arg, Args, MAX_RW_COUNT};
use crate::syscalls::{fs_lock, fs_mut};
use crate::vfs::path::{resolve_flags, walk, walk_parent, Follow, WalkOpts};
use crate::vfs::perm::{self, MAY_EXEC, MAY_READ, MAY_WRITE};
use crate::vfs::{Dentry, OpenFile, PathOnly, SetAttr, Stat};

/// Bytes moved per host call when copying between a file and app memory; bounds
/// the sentry's buffer whatever count the app passes.
pub(super) const CHUNK: usize = 1 << 20;
/// `UIO_MAXIOV`.
const UIO_MAXIOV: u64 = 1024;

const O_TMPFILE: i32 = libc::O_TMPFILE;

pub(super) fn rlimit_nofile(task: &Task) -> SysResult<u64> {
    Ok(task.limits()?.soft(libc::RLIMIT_NOFILE))
}

pub(super) fn install(task: &Task, file: Arc<OpenFile>, cloexec: bool) -> SysResult<u64> {
    let limit = rlimit_nofile(task)?;
    Ok(task.fds()?.insert(file, cloexec, limit)? as u64)
}

/// Opens `path` relative to `dirfd` with `open(2)` semantics; `resolve` holds
/// `openat2`'s `RESOLVE_*` flags.
pub(super) fn do_open(
    task: &mut Task,
    dirfd: i32,
    path: &[u8],
    flags: i32,
    mode: u32,
    resolve: u64,
) -> SysResult<u64> {
    let start = at_dir(task, dirfd, path)?;
    open_from(task, start, path, flags, mode, resolve, 0)
}

/// [`do_open`] from a directory; `depth` counts dangling symlinks followed by
/// `O_CREAT` (which creates the file they name, as Linux does).
fn open_from(
    task: &mut Task,
    start: Arc<Dentry>,
    path: &[u8],
    flags: i32,
    mode: u32,
    resolve: u64,
    depth: u32,
) -> SysResult<u64> {
    let opts = WalkOpts {
        creds: Some(&task.creds),
        resolve,
    };
    let cloexec = flags & libc::O_CLOEXEC != 0;
    let acc = flags & libc::O_ACCMODE;
    if flags & O_TMPFILE == O_TMPFILE {
        if acc == libc::O_RDONLY || acc == libc::O_ACCMODE {
            return Err(Errno::EINVAL);
        }
        let dir = walk(&task.fs, &start, path, Follow::Yes, opts)?;
        if !dir.inode().stat()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        fs_mut::may_create(task, &dir)?;
        let (mode, acls) = fs_mut::create_mode(task, &dir, mode & 0o7777, false);
        let (owner, mode) = fs_mut::new_owner(task, &dir, mode, false)?;
        let inode = dir.inode().tmpfile(mode, owner)?;
        acls.apply(&inode)?;
        let imp = inode.open(flags)?;
        let d = dir.orphan(inode);
        let file = OpenFile::new(imp, Some(d), flags & !O_TMPFILE | libc::O_LARGEFILE);
        task.kernel.files.inotify.opened(&file);
        return install(task, file, cloexec);
    }
    if flags & libc::O_CREAT != 0 && flags & libc::O_DIRECTORY != 0 {
        return Err(Errno::EINVAL);
    }
    let follow = if flags & libc::O_NOFOLLOW != 0 {
        Follow::No
    } else {
        Follow::Yes
    };
    let mut created = false;
    let dentry = if flags & libc::O_CREAT != 0 {
        let (parent, name) = walk_parent(&task.fs, &start, path, opts)?;
        if name == b"." || name == b".." || path.ends_with(b"/") {
            return Err(Errno::EISDIR);
        }
        match parent.child(&name) {
            Ok(existing) => {
                if flags & libc::O_EXCL != 0 {
                    return Err(Errno::EEXIST);
                }
                let existing = existing.cross_mounts();
                if existing.inode().stat()?.is_symlink() && follow == Follow::Yes {
                    match walk(&task.fs, &start, path, follow, opts) {
                        Err(Errno::ENOENT) if resolve & resolve_flags::NO_SYMLINKS == 0 => {
                            // A dangling symlink: create what it names.
                            if depth >= crate::vfs::MAX_SYMLINKS {
                                return Err(Errno::ELOOP);
                            }
                            let target = existing.inode().readlink()?;
                            if target.first() == Some(&b'/')
                                && resolve & resolve_flags::BENEATH != 0
                            {
                                return Err(Errno::EXDEV);
                            }
                            let next = if target.first() == Some(&b'/') {
                                task.fs.root.clone()
                            } else {
                                parent.clone()
                            };
                            return open_from(task, next, &target, flags, mode, resolve, depth + 1);
                        }
                        r => r?,
                    }
                } else {
                    existing
                }
            }
            Err(Errno::ENOENT) => {
                fs_mut::may_create(task, &parent)?;
                let (mode, acls) = fs_mut::create_mode(task, &parent, mode & 0o7777, false);
                let (owner, mode) = fs_mut::new_owner(task, &parent, mode, false)?;
                let inode = parent.inode().create(&name, mode, owner)?;
                acls.apply(&inode)?;
                task.kernel.files.inotify.created(&parent, &name, &inode);
                created = true;
                parent.add_child(&name, inode)?
            }
            Err(e) => return Err(e),
        }
    } else {
        walk(&task.fs, &start, path, follow, opts)?
    };
    let st = dentry.inode().stat()?;
    if flags & libc::O_PATH != 0 {
        if flags & libc::O_DIRECTORY != 0 && !st.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let imp = Box::new(PathOnly::new(dentry.inode().clone()));
        let file = OpenFile::new(
            imp,
            Some(dentry),
            flags & (libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW),
        );
        return install(task, file, cloexec);
    }
    if st.is_symlink() {
        return Err(Errno::ELOOP);
    }
    if flags & libc::O_DIRECTORY != 0 && !st.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    if st.is_dir() && (acc != libc::O_RDONLY || flags & libc::O_CREAT != 0) {
        return Err(Errno::EISDIR);
    }
    let want = match acc {
        libc::O_RDONLY => MAY_READ,
        libc::O_WRONLY => MAY_WRITE,
        libc::O_RDWR => MAY_READ | MAY_WRITE,
        _ => return Err(Errno::EINVAL),
    };
    let trunc = flags & libc::O_TRUNC != 0 && st.is_regular();
    let want = if trunc { want | MAY_WRITE } else { want };
    if !created {
        perm::check_on(&task.creds, &st, &**dentry.inode(), want, false)?;
    }
    if want & MAY_WRITE != 0 && (st.is_regular() || st.is_dir()) {
        dentry.check_writable()?;
    }
    if flags & libc::O_NOATIME != 0
        && st.uid != task.creds.fsuid
        && !task.creds.has_cap_over(CAP_FOWNER, st.uid, st.gid)
    {
        return Err(Errno::EPERM);
    }
    if trunc && !created && st.size != 0 {
        dentry.inode().setattr(&SetAttr {
            size: Some(0),
            ..Default::default()
        })?;
    }
    // A pipe or host stream reopened through `/proc/PID/fd` is that very object,
    // not a FIFO of some filesystem.
    let inode = dentry.inode().as_any();
    let reopened = inode.is::<crate::fs::pipe::AnonPipeInode>()
        || inode.is::<crate::fs::host::HostStreamInode>();
    let imp = if st.file_type() == libc::S_IFIFO && !reopened {
        // A FIFO's data never touches its filesystem: every opener shares one
        // in-sentry pipe (also for FIFOs on host files, which are never opened).
        let files = &task.kernel.files;
        let pipe = files.fifos.pipe(&files.inos, &st)?;
        crate::fs::pipe::open_fifo_with(&pipe, dentry.inode().clone(), flags, &task.waker, || {
            task.signal_pending()
        })?
    } else {
        dentry.inode().open(flags)?
    };
    let file = OpenFile::new(imp, Some(dentry), flags);
    task.kernel.files.inotify.opened(&file);
    if trunc && !created {
        // Linux reports the open, then the truncation (even of an empty file).
        task.kernel.files.inotify.modified(&file);
    }
    install(task, file, cloexec)
}

/// `open(2)`.
pub fn open(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    do_open(task, libc::AT_FDCWD, &path, a[1] as i32, a[2] as u32, 0)
}

/// `creat(2)`.
pub fn creat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC;
    do_open(task, libc::AT_FDCWD, &path, flags, a[1] as u32, 0)
}

/// `openat(2)`.
pub fn openat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[1])?;
    do_open(task, a[0] as i32, &path, a[2] as i32, a[3] as u32, 0)
}

/// `close(2)`.
pub fn close(task: &mut Task, a: &Args) -> SysResult<u64> {
    let entry = task.fds()?.remove(a[0] as i32)?;
    fs_lock::closed(task, &entry.file);
    super::mqueue::closed(task, &entry.file);
    // The description is released here, outside the table lock.
    drop(entry);
    Ok(0)
}

pub(super) fn check_count(count: u64) -> usize {
    count.min(MAX_RW_COUNT) as usize
}

/// Reads from `file` into app memory at `addr`, up to `count` bytes, at the file
/// position (`offset` None) or at `offset`.
/// With `nowait` (preadv2's `RWF_NOWAIT`) a stream with nothing to read gives `EAGAIN`
/// as if the description were non-blocking.
fn read_into(
    task: &Task,
    file: &OpenFile,
    addr: u64,
    count: usize,
    offset: Option<i64>,
    nowait: bool,
) -> SysResult<usize> {
    let seekable = file.imp().seekable();
    in_pieces(
        task,
        "read",
        |t| t.fatal_signal_pending(),
        |task, done| {
            let want = (count - done).min(CHUNK);
            let mut buf = vec![0u8; want];
            let n = match offset {
                None => loop {
                    match file.read(&mut buf) {
                        Err(Errno::EAGAIN) if done == 0 && !nowait && !file.nonblocking() => {
                            task.wait_for_file(file, libc::POLLIN as u32)?
                        }
                        r => break r,
                    }
                },
                Some(off) => file.pread(&mut buf, off + done as i64),
            }?;
            io::write_all(task.mem(), addr + done as u64, &buf[..n])?;
            // Streams return what they have; regular files keep going until short.
            Ok(if !seekable || count == 0 {
                Piece::last(n)
            } else {
                Piece::of(n, want, count - done)
            })
        },
    )
}

/// Writes app memory at `addr` to `file`, `count` bytes.
/// Clears the set-id bits a write by `task` removes (see [`perm::mode_after_write`]).
/// Only unprivileged writers pay the stat.
pub(super) fn drop_set_id_on_write(task: &Task, file: &OpenFile) -> SysResult<()> {
    if task.creds.has_cap(CAP_FSETID) || !file.imp().seekable() {
        return Ok(());
    }
    let Some(d) = file.dentry() else {
        return Ok(());
    };
    let st = file.stat()?;
    if let Some(mode) = perm::mode_after_write(&task.creds, &st) {
        d.inode().setattr(&crate::vfs::SetAttr {
            mode: Some(mode),
            ..Default::default()
        })?;
    }
    Ok(())
}

/// Writes `count` bytes from the caller's `addr` to `file` (at `offset`, or its position).
/// The caller has already checked `file` is open for writing (`OpenFile::check_writable`),
/// in its own syscall's error order. With `nowait` (`RWF_NOWAIT`) a full stream gives
/// `EAGAIN` instead of a wait.
fn write_from(
    task: &Task,
    file: &OpenFile,
    addr: u64,
    count: usize,
    offset: Option<i64>,
    nowait: bool,
) -> SysResult<usize> {
    if count > 0 {
        drop_set_id_on_write(task, file)?;
    }
    if count == 0 || file.discards_writes() {
        // A zero-length write still checks the descriptor; so does a write to a file
        // that drops its data unread (/dev/null), which then takes all of it.
        let checked = match offset {
            None => file.write(&[]),
            Some(off) => file.pwrite(&[], off),
        };
        return checked.map(|_| count);
    }
    in_pieces(
        task,
        "write",
        |t| t.fatal_signal_pending(),
        |task, done| {
            let want = (count - done).min(CHUNK);
            let mut buf = vec![0u8; want];
            io::read_exact(task.mem(), addr + done as u64, &mut buf)?;
            // Linux's pipe_write raises SIGPIPE even after a partial write.
            let partial_epipe = |e: Errno| {
                if e == Errno::EPIPE && crate::fs::pipe::pipe_of(file).is_some() {
                    task.raise_signal(libc::SIGPIPE);
                }
            };
            let n = match offset {
                None => {
                    // A blocking write to a stream (a pipe) goes on until all of it
                    // is queued: only a signal or the readers' going cut it short.
                    let blocking = !nowait && !file.nonblocking();
                    let mut put = 0usize;
                    loop {
                        match file.write(&buf[put..]) {
                            Err(Errno::EAGAIN) if blocking => {
                                if let Err(e) = task.wait_for_file(file, libc::POLLOUT as u32) {
                                    return if put > 0 {
                                        Ok(Piece::last(put))
                                    } else {
                                        Err(e)
                                    };
                                }
                            }
                            Ok(n)
                                if blocking
                                    && n > 0
                                    && put + n < want
                                    && !file.imp().seekable() =>
                            {
                                put += n;
                            }
                            Ok(n) => break put + n,
                            Err(e) if put > 0 => {
                                partial_epipe(e);
                                return Ok(Piece::last(put));
                            }
                            Err(e) => {
                                if done > 0 {
                                    partial_epipe(e);
                                }
                                return Err(e);
                            }
                        }
                    }
                }
                Some(off) => match file.pwrite(&buf, off + done as i64) {
                    Ok(n) => n,
                    Err(e) => {
                        if done > 0 {
                            partial_epipe(e);
                        }
                        return Err(e);
                    }
                },
            };
            Ok(Piece::of(n, want, count - done))
        },
    )
}

/// `read(2)`.
pub fn read(task: &mut Task, a: &Args) -> SysResult<u64> {
    let file = file_arg(task, a[0])?;
    Ok(read_into(task, &file, a[1], check_count(a[2]), None, false)? as u64)
}

/// `write(2)`.
pub fn write(task: &mut Task, a: &Args) -> SysResult<u64> {
    // The descriptor's checks come before RLIMIT_FSIZE and the buffer, as on Linux.
    let file = transfer_file(task, a[0], None, true)?;
    let count = fsize_limit(task, &file, None, check_count(a[2]))?;
    let r = write_from(task, &file, a[1], count, None, false).map(|n| n as u64);
    sigpipe_on_epipe(task, r)
}

/// Writing to a pipe or socket with no reader raises SIGPIPE as well as EPIPE.
fn sigpipe_on_epipe(task: &mut Task, r: SysResult<u64>) -> SysResult<u64> {
    if r == Err(Errno::EPIPE) {
        task.raise_signal(libc::SIGPIPE);
    }
    r
}

/// RLIMIT_FSIZE: a regular file may not grow past the limit. A write starting at
/// or beyond it raises SIGXFSZ and fails with EFBIG; one crossing it is cut short.
pub(super) fn fsize_limit(
    task: &mut Task,
    file: &OpenFile,
    offset: Option<i64>,
    count: usize,
) -> SysResult<usize> {
    let limit = task.limits()?.soft(libc::RLIMIT_FSIZE);
    if limit == u64::MAX || count == 0 {
        return Ok(count);
    }
    let st = file.stat()?;
    if !st.is_regular() {
        return Ok(count);
    }
    let pos = match offset {
        Some(o) => o.max(0) as u64,
        None if file.flags() & libc::O_APPEND != 0 => st.size.max(0) as u64,
        None => file.position(),
    };
    if pos >= limit {
        task.raise_signal(libc::SIGXFSZ);
        return Err(Errno::EFBIG);
    }
    Ok(count.min((limit - pos) as usize))
}

/// The checks a positioned or vectored transfer makes before it looks at memory, in
/// Linux's order: a negative offset (`EINVAL`), the descriptor (`EBADF`), an offset on
/// a file without one (`ESPIPE`), the access mode (`EBADF`).
fn transfer_file(
    task: &Task,
    fd: u64,
    offset: Option<i64>,
    write: bool,
) -> SysResult<Arc<OpenFile>> {
    if offset.is_some_and(|o| o < 0) {
        return Err(Errno::EINVAL);
    }
    let file = file_arg(task, fd)?;
    if offset.is_some() && !file.imp().seekable() {
        return Err(Errno::ESPIPE);
    }
    if write {
        file.check_writable()?;
    } else {
        file.check_readable()?;
    }
    Ok(file)
}

/// `pread64(2)`.
pub fn pread64(task: &mut Task, a: &Args) -> SysResult<u64> {
    let off = a[3] as i64;
    let file = transfer_file(task, a[0], Some(off), false)?;
    Ok(read_into(task, &file, a[1], check_count(a[2]), Some(off), false)? as u64)
}

/// `pwrite64(2)`.
pub fn pwrite64(task: &mut Task, a: &Args) -> SysResult<u64> {
    let off = a[3] as i64;
    let file = transfer_file(task, a[0], Some(off), true)?;
    let count = fsize_limit(task, &file, Some(off), check_count(a[2]))?;
    Ok(write_from(task, &file, a[1], count, Some(off), false)? as u64)
}

/// The end of x86-64 user space (Linux's TASK_SIZE): no transfer reaches past it.
use abi::mem::TASK_SIZE as USER_SPACE_END;

/// Reads an iovec array, checking Linux's limits.
pub(super) fn read_iovecs(task: &Task, addr: u64, cnt: u64) -> SysResult<Vec<(u64, usize)>> {
    if cnt > UIO_MAXIOV {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; cnt as usize * 16];
    io::read_exact(task.mem(), addr, &mut raw)?;
    let mut out = Vec::with_capacity(cnt as usize);
    let mut total: u64 = 0;
    for c in raw.chunks_exact(16) {
        let base = u64::from_le_bytes(c[..8].try_into().map_err(|_| Errno::EFAULT)?);
        let len = u64::from_le_bytes(c[8..].try_into().map_err(|_| Errno::EFAULT)?);
        if len > i64::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        // As Linux: a segment that cannot lie in user space is EFAULT before any
        // transfer; lengths beyond MAX_RW_COUNT in total are cut, not refused.
        if base.checked_add(len).is_none_or(|end| end > USER_SPACE_END) {
            return Err(Errno::EFAULT);
        }
        let len = len.min(MAX_RW_COUNT.saturating_sub(total));
        total += len;
        out.push((base, len as usize));
    }
    Ok(out)
}

/// The transfer a checked vectored read makes (see [`read_into`] for `nowait`).
pub(super) fn readv_at(
    task: &Task,
    file: &OpenFile,
    iov: &[(u64, usize)],
    offset: Option<i64>,
    nowait: bool,
) -> SysResult<u64> {
    let mut segs = iov.iter();
    in_pieces(
        task,
        "readv",
        |t| t.fatal_signal_pending(),
        |task, total| {
            let room = |len: usize| (MAX_RW_COUNT as usize).saturating_sub(total).min(len);
            let Some(&(base, len)) = segs.find(|&&(_, len)| room(len) > 0) else {
                return Ok(Piece::last(0));
            };
            let room = room(len);
            let n = read_into(
                task,
                file,
                base,
                room,
                offset.map(|o| o + total as i64),
                nowait,
            )?;
            Ok(Piece {
                moved: n,
                more: n == room,
            })
        },
    )
    .map(|n| n as u64)
}

/// The transfer a checked vectored write makes (see [`write_from`] for `nowait`).
pub(super) fn writev_at(
    task: &Task,
    file: &OpenFile,
    iov: &[(u64, usize)],
    offset: Option<i64>,
    nowait: bool,
) -> SysResult<u64> {
    if iov.iter().any(|&(_, l)| l > 0) {
        drop_set_id_on_write(task, file)?;
    }
    // Gather into one buffer so a single write is atomic, as on a pipe or terminal.
    let total: usize = iov
        .iter()
        .map(|&(_, l)| l)
        .sum::<usize>()
        .min(MAX_RW_COUNT as usize);
    if file.discards_writes() {
        // The data is never read (see write_from): only the descriptor is checked.
        return write_from(task, file, 0, total, offset, nowait).map(|n| n as u64);
    }
    if total <= CHUNK {
        let mut buf = Vec::with_capacity(total);
        for &(base, len) in iov {
            let start = buf.len();
            let len = len.min(total - start);
            buf.resize(start + len, 0);
            if let Err(e) = io::read_exact(task.mem(), base, &mut buf[start..]) {
                if start == 0 {
                    return Err(e);
                }
                buf.truncate(start);
                break;
            }
        }
        return Ok(match offset {
            None => file.write(&buf)?,
            Some(o) => file.pwrite(&buf, o)?,
        } as u64);
    }
    let mut segs = iov.iter().filter(|&&(_, len)| len > 0);
    in_pieces(
        task,
        "writev",
        |t| t.fatal_signal_pending(),
        |task, done| {
            let Some(&(base, len)) = segs.next() else {
                return Ok(Piece::last(0));
            };
            let n = write_from(
                task,
                file,
                base,
                len,
                offset.map(|o| o + done as i64),
                nowait,
            )?;
            Ok(Piece {
                moved: n,
                more: n == len,
            })
        },
    )
    .map(|n| n as u64)
}

/// Which extra behaviour a vectored call asks for (`preadv2`/`pwritev2` flags).
#[derive(Clone, Copy, Default)]
pub(super) struct VecFlags {
    /// `RWF_NOWAIT`: `EAGAIN` rather than a wait.
    pub nowait: bool,
    /// `RWF_APPEND`: write at the end, as `O_APPEND` does.
    pub append: bool,
}

/// The shared body of the vectored calls: checks in Linux's order (see
/// [`transfer_file`]; then the iovec array, then `flags`, the caller's verdict on its
/// flag word, e.g. `EOPNOTSUPP`), RLIMIT_FSIZE, and SIGPIPE for a write that finds no
/// reader.
pub(super) fn vectored(
    task: &mut Task,
    a: &Args,
    offset: Option<i64>,
    write: bool,
    flags: SysResult<VecFlags>,
) -> SysResult<u64> {
    let file = transfer_file(task, a[0], offset, write)?;
    let mut iov = read_iovecs(task, a[1], a[2])?;
    let flags = flags?;
    if !write {
        return readv_at(task, &file, &iov, offset, flags.nowait);
    }
    let o_append = file.flags() & libc::O_APPEND != 0;
    // RWF_APPEND on a call that writes at the file position (-1) moves that position
    // past what it wrote, as an O_APPEND write does.
    let moves_position = offset.is_none() && flags.append && !o_append && file.imp().seekable();
    let at_end = match offset {
        Some(_) => flags.append || o_append,
        None => moves_position,
    };
    let offset = if at_end {
        Some(file.stat()?.size)
    } else {
        offset
    };
    let total: usize = iov.iter().map(|&(_, l)| l).sum();
    let mut room = fsize_limit(task, &file, offset, total)?;
    for seg in iov.iter_mut() {
        seg.1 = seg.1.min(room);
        room -= seg.1;
    }
    let r = writev_at(task, &file, &iov, offset, flags.nowait);
    if let (true, Ok(n), Some(at)) = (moves_position, &r, offset) {
        file.set_position(at as u64 + n);
    }
    sigpipe_on_epipe(task, r)
}

/// `readv(2)`.
pub fn readv(task: &mut Task, a: &Args) -> SysResult<u64> {
    vectored(task, a, None, false, Ok(VecFlags::default()))
}

/// `writev(2)`.
pub fn writev(task: &mut Task, a: &Args) -> SysResult<u64> {
    vectored(task, a, None, true, Ok(VecFlags::default()))
}

/// `preadv(2)`.
pub fn preadv(task: &mut Task, a: &Args) -> SysResult<u64> {
    vectored(task, a, Some(a[3] as i64), false, Ok(VecFlags::default()))
}

/// `pwritev(2)`.
pub fn pwritev(task: &mut Task, a: &Args) -> SysResult<u64> {
    vectored(task, a, Some(a[3] as i64), true, Ok(VecFlags::default()))
}

/// `lseek(2)`.
pub fn lseek(task: &mut Task, a: &Args) -> SysResult<u64> {
    let file = file_arg(task, a[0])?;
    file.seek(a[1] as i64, a[2] as i32)
}

pub(super) fn write_stat(task: &Task, addr: u64, st: &Stat) -> SysResult<u64> {
    // Owners as the caller's user namespace names them.
    let ns = task.creds.user_ns();
    let mut st = *st;
    st.uid = ns.uid_shown(st.uid);
    st.gid = ns.gid_shown(st.gid);
    io::write_all(task.mem(), addr, &st.to_linux())?;
    Ok(0)
}

/// Resolves the target of a stat-family call.
fn stat_target(task: &Task, dirfd: i32, path: &[u8], flags: i32) -> SysResult<Stat> {
    if path.is_empty() {
        if flags & libc::AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        if dirfd == libc::AT_FDCWD {
            return task.fs.cwd.inode().stat();
        }
        return file_arg(task, dirfd as u64)?.stat();
    }
    let start = at_dir(task, dirfd, path)?;
    let follow = if flags & libc::AT_SYMLINK_NOFOLLOW != 0 {
        Follow::No
    } else {
        Follow::Yes
    };
    walk(
        &task.fs,
        &start,
        path,
        follow,
        WalkOpts {
            creds: Some(&task.creds),
            resolve: 0,
        },
    )?
    .inode()
    .stat()
}

/// `stat(2)`.
pub fn stat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    let st = stat_target(task, libc::AT_FDCWD, &path, 0)?;
    write_stat(task, a[1], &st)
}

/// `lstat(2)`.
pub fn lstat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    let st = stat_target(task, libc::AT_FDCWD, &path, libc::AT_SYMLINK_NOFOLLOW)?;
    write_stat(task, a[1], &st)
}

/// `fstat(2)`.
pub fn fstat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let st = file_arg(task, a[0])?.stat()?;
    write_stat(task, a[1], &st)
}

/// `newfstatat(2)`.
pub fn newfstatat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let flags = a[3] as i32;
    if flags & !(libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH | libc::AT_NO_AUTOMOUNT) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = path_arg(task, a[1])?;
    let st = stat_target(task, a[0] as i32, &path, flags)?;
    write_stat(task, a[2], &st)
}

/// `getdents64(2)`: `struct linux_dirent64` records, as many as fit.
pub fn getdents64(task: &mut Task, a: &Args) -> SysResult<u64> {
    let file = file_arg(task, a[0])?;
    if file.is_path() {
        return Err(Errno::EBADF);
    }
    let count = (a[2] as usize).min(CHUNK);
    let ents = file.imp().getdents(file.position(), count)?;
    let mut out = Vec::with_capacity(count);
    let mut pos = file.position();
    for e in ents {
        let reclen = (19 + e.name.len() + 1).next_multiple_of(8);
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
        out.push(e.kind);
        out.extend_from_slice(&e.name);
        out.resize(start + reclen, 0);
        pos = e.next;
    }
    io::write_all(task.mem(), a[1], &out)?;
    file.set_position(pos);
    task.kernel.files.inotify.accessed(&file);
    Ok(out.len() as u64)
}

fn do_readlink(task: &Task, dirfd: i32, path: &[u8], buf: u64, size: u64) -> SysResult<u64> {
    if (size as i64) <= 0 {
        return Err(Errno::EINVAL);
    }
    // /proc/self/exe and friends are ordinary procfs links.
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    let start = at_dir(task, dirfd, path)?;
    let d = walk(
        &task.fs,
        &start,
        path,
        Follow::No,
        WalkOpts {
            creds: Some(&task.creds),
            resolve: 0,
        },
    )?;
    let target = d.inode().readlink()?;
    let n = target.len().min(size as usize);
    io::write_all(task.mem(), buf, &target[..n])?;
    Ok(n as u64)
}

/// `readlink(2)`.
pub fn readlink(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    do_readlink(task, libc::AT_FDCWD, &path, a[1], a[2])
}

/// `readlinkat(2)`.
pub fn readlinkat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[1])?;
    do_readlink(task, a[0] as i32, &path, a[2], a[3])
}

/// `getcwd(2)`: returns the length including the NUL.
pub fn getcwd(task: &mut Task, a: &Args) -> SysResult<u64> {
    let mut p = task.fs.cwd.path_from(&task.fs.root);
    p.push(0);
    if (a[1] as usize) < p.len() {
        return Err(Errno::ERANGE);
    }
    io::write_all(task.mem(), a[0], &p)?;
    Ok(p.len() as u64)
}

fn set_cwd(task: &mut Task, d: Arc<Dentry>) -> SysResult<u64> {
    let st = d.inode().stat()?;
    if !st.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    perm::check_on(&task.creds, &st, &**d.inode(), MAY_EXEC, false)?;
    task.fs.cwd = d;
    Ok(0)
}

/// `chroot(2)`: the caller's root becomes `path` (a directory it may search); `..`
/// walks stop there from then on. Needs CAP_SYS_CHROOT.
pub fn chroot(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    let start = at_dir(task, libc::AT_FDCWD, &path)?;
    let opts = WalkOpts {
        creds: Some(&task.creds),
        resolve: 0,
    };
    let d = walk(&task.fs, &start, &path, Follow::Yes, opts)?;
    let st = d.inode().stat()?;
    if !st.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    perm::check_on(&task.creds, &st, &**d.inode(), MAY_EXEC, false)?;
    if !task.creds.has_ns_cap(CAP_SYS_CHROOT) {
        return Err(Errno::EPERM);
    }
    task.fs.root = d;
    Ok(0)
}

/// `chdir(2)`.
pub fn chdir(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    let d = walk(
        &task.fs,
        &task.fs.cwd,
        &path,
        Follow::Yes,
        WalkOpts {
            creds: Some(&task.creds),
            resolve: 0,
        },
    )?;
    set_cwd(task, d)
}

/// `fchdir(2)`.
pub fn fchdir(task: &mut Task, a: &Args) -> SysResult<u64> {
    let file = file_arg(task, a[0])?;
    let d = file.dentry().cloned().ok_or(Errno::ENOTDIR)?;
    set_cwd(task, d)
}

fn do_access(task: &Task, dirfd: i32, path: &[u8], mode: u32, flags: i32) -> SysResult<u64> {
    if mode & !7 != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & !(libc::AT_EACCESS | libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let d = fs_mut::target(task, dirfd, path, flags)?;
    let st = d.inode().stat()?;
    if mode == 0 {
        return Ok(0);
    }
    perm::check_on(
        &task.creds,
        &st,
        &**d.inode(),
        mode,
        flags & libc::AT_EACCESS == 0,
    )?;
    if mode & MAY_WRITE != 0 && (st.is_regular() || st.is_dir() || st.is_symlink()) {
        d.check_writable()?;
    }
    Ok(0)
}

/// `access(2)`.
pub fn access(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    do_access(task, libc::AT_FDCWD, &path, a[1] as u32, 0)
}

/// `faccessat(2)`.
pub fn faccessat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[1])?;
    do_access(task, a[0] as i32, &path, a[2] as u32, 0)
}

/// `faccessat2(2)`.
pub fn faccessat2(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[1])?;
    do_access(task, a[0] as i32, &path, a[2] as u32, a[3] as i32)
}

/// `ioctl(2)`: fd flags here, terminal queries in the file.
pub fn ioctl(task: &mut Task, a: &Args) -> SysResult<u64> {
    let fd = a[0] as i32;
    let req = a[1] & 0xffff_ffff;
    match req {
        r if r == libc::FIOCLEX => {
            task.fds()?.set_cloexec(fd, true)?;
            Ok(0)
        }
        r if r == libc::FIONCLEX => {
            task.fds()?.set_cloexec(fd, false)?;
            Ok(0)
        }
        r if r == libc::FIONBIO => {
            let file = file_arg(task, a[0])?;
            let on: i32 = from_bytes(&{
                let mut b = [0u8; 4];
                io::read_exact(task.mem(), a[2], &mut b)?;
                b
            });
            let fl = file.flags();
            file.set_flags(if on != 0 {
                fl | libc::O_NONBLOCK
            } else {
                fl & !libc::O_NONBLOCK
            });
            Ok(0)
        }
        // FIOASYNC, and FIOSETOWN/SIOCSPGRP and their getters (any file).
        0x5452 | 0x8901 | 0x8902 | 0x8903 | 0x8904 => {
            let file = file_arg(task, a[0])?;
            if req == 0x8903 || req == 0x8904 {
                let pid = crate::syscalls::fasync::get_owner(task, &file)?;
                io::write_all(task.mem(), a[2], &pid.to_le_bytes())?;
                return Ok(0);
            }
            let v: i32 = from_bytes(&{
                let mut b = [0u8; 4];
                io::read_exact(task.mem(), a[2], &mut b)?;
                b
            });
            if req == 0x5452 {
                crate::syscalls::fasync::fioasync(task, fd, &file, v != 0)?;
            } else {
                crate::syscalls::fasync::set_owner(task, &file, v)?;
            }
            Ok(0)
        }
        // SIOCSIFFLAGS on any socket: bring `lo` up or down (`ifconfig lo up`).
        0x8914 if file_arg(task, a[0])?.stat()?.file_type() == libc::S_IFSOCK => {
            let net = task.ns.net.clone();
            let admin = task.creds.has_cap_in(
                crate::kernel::ns::owner(&net.owner),
                crate::kernel::creds::CAP_NET_ADMIN,
            );
            crate::net::ifreq::set_flags(&net.stack, admin, a[2], task.mem())
        }
        r if r == libc::FIONREAD && file_arg(task, a[0])?.stat()?.is_regular() => {
            // Regular files: the bytes between the position and the end.
            let file = file_arg(task, a[0])?;
            if file.is_path() {
                return Err(Errno::EBADF);
            }
            let left = (file.stat()?.size - file.position() as i64).clamp(0, i32::MAX as i64);
            io::write_all(task.mem(), a[2], &(left as i32).to_le_bytes())?;
            Ok(0)
        }
        _ => {
            let file = file_arg(task, a[0])?;
            if file.is_path() {
                return Err(Errno::EBADF);
            }
            file.imp().ioctl(req, a[2], task.mem())
        }
    }
}

fn dup_to(task: &Task, old: i32, new: i32, cloexec: bool) -> SysResult<u64> {
    let limit = rlimit_nofile(task)?;
    let replaced = {
        let mut fds = task.fds()?;
        let file = fds.get(old)?;
        fds.insert_at(new, file, cloexec, limit)?
    };
    drop(replaced);
    Ok(new as u64)
}

/// `dup(2)`.
pub fn dup(task: &mut Task, a: &Args) -> SysResult<u64> {
    let file = file_arg(task, a[0])?;
    install(task, file, false)
}

/// `dup2(2)`.
pub fn dup2(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (old, new) = (a[0] as i32, a[1] as i32);
    if old == new {
        task.fds()?.get(old)?;
        return Ok(new as u64);
    }
    dup_to(task, old, new, false)
}

/// `dup3(2)`.
pub fn dup3(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (old, new, flags) = (a[0] as i32, a[1] as i32, a[2] as i32);
    if flags & !libc::O_CLOEXEC != 0 || old == new {
        return Err(Errno::EINVAL);
    }
    dup_to(task, old, new, flags & libc::O_CLOEXEC != 0)
}

/// `fcntl(2)`: descriptor and status flags and duplication. Locks arrive with the
/// writable filesystem.
pub fn fcntl(task: &mut Task, a: &Args) -> SysResult<u64> {
    let fd = a[0] as i32;
    let cmd = a[1] as i32;
    // Pipe sizes and memfd seals belong to those files.
    if matches!(
        cmd,
        libc::F_GETPIPE_SZ | libc::F_SETPIPE_SZ | libc::F_ADD_SEALS | libc::F_GET_SEALS
    ) {
        let file = task.fds()?.get(fd)?;
        if let Some(r) =
            crate::fs::pipe::fcntl_pipe_size(&file, cmd, a[2], task.creds.has_cap(CAP_SYS_RESOURCE))
        {
            return r;
        }
        if let Some(r) = crate::fs::memfd::fcntl_seals(&file, cmd, a[2]) {
            return r;
        }
        return Err(Errno::EINVAL);
    }
    match cmd {
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
            let file = task.fds()?.get(fd)?;
            let min = a[2] as i64;
            let limit = rlimit_nofile(task)?;
            if min < 0 || min as u64 >= limit {
                return Err(Errno::EINVAL);
            }
            Ok(task
                .fds()?
                .insert_from(min as i32, file, cmd == libc::F_DUPFD_CLOEXEC, limit)?
                as u64)
        }
        libc::F_GETFD => Ok(task.fds()?.entry(fd)?.cloexec as u64),
        libc::F_SETFD => {
            task.fds()?
                .set_cloexec(fd, a[2] & libc::FD_CLOEXEC as u64 != 0)?;
            Ok(0)
        }
        libc::F_GETFL => Ok(task.fds()?.get(fd)?.flags() as u64),
        libc::F_SETFL => {
            let file = task.fds()?.get(fd)?;
            if file.is_path() {
                return Err(Errno::EBADF);
            }
            file.set_flags(a[2] as i32);
            crate::syscalls::fasync::flags_changed(task, fd, &file)?;
            Ok(0)
        }
        libc::F_SETOWN => {
            let file = task.fds()?.get(fd)?;
            crate::syscalls::fasync::set_owner(task, &file, a[2] as i32)?;
            Ok(0)
        }
        libc::F_GETOWN => {
            let file = task.fds()?.get(fd)?;
            Ok(crate::syscalls::fasync::get_owner(task, &file)? as i64 as u64)
        }
        crate::syscalls::fasync::F_SETOWN_EX => {
            let file = task.fds()?.get(fd)?;
            let mut b = [0u8; 8];
            io::read_exact(task.mem(), a[2], &mut b)?;
            let kind: i32 = from_bytes(&[b[0], b[1], b[2], b[3]]);
            let pid: i32 = from_bytes(&[b[4], b[5], b[6], b[7]]);
            crate::syscalls::fasync::set_owner_ex(task, &file, kind, pid)?;
            Ok(0)
        }
        crate::syscalls::fasync::F_GETOWN_EX => {
            let file = task.fds()?.get(fd)?;
            let (kind, pid) = crate::syscalls::fasync::get_owner_ex(task, &file)?;
            let mut b = kind.to_le_bytes().to_vec();
            b.extend_from_slice(&pid.to_le_bytes());
            io::write_all(task.mem(), a[2], &b)?;
            Ok(0)
        }
        crate::syscalls::fasync::F_SETSIG => {
            let file = task.fds()?.get(fd)?;
            crate::syscalls::fasync::set_sig(task, &file, a[2])?;
            Ok(0)
        }
        crate::syscalls::fasync::F_GETSIG => {
            let file = task.fds()?.get(fd)?;
            Ok(crate::syscalls::fasync::get_sig(task, &file)? as u64)
        }
        libc::F_GETLK
        | libc::F_SETLK
        | libc::F_SETLKW
        | libc::F_OFD_GETLK
        | libc::F_OFD_SETLK
        | libc::F_OFD_SETLKW => fs_lock::fcntl_lock(task, fd, cmd, a[2]),
        _ => {
            task.fds()?.get(fd)?;
            Err(Errno::EINVAL)
        }
    }
}

/// `umask(2)`.
pub fn umask(task: &mut Task, a: &Args) -> SysResult<u64> {
    let old = task.fs.umask;
    task.fs.umask = (a[0] as u32) & 0o777;
    Ok(old as u64)
}

pub(super) fn write_statfs(task: &Task, addr: u64, s: &crate::vfs::StatFs) -> SysResult<u64> {
    io::write_all(task.mem(), addr, &s.to_linux())?;
    Ok(0)
}

/// `statfs(2)`.
pub fn statfs(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    let d = walk(
        &task.fs,
        &task.fs.cwd,
        &path,
        Follow::Yes,
        WalkOpts {
            creds: Some(&task.creds),
            resolve: 0,
        },
    )?;
    let s = with_mount_flags(d.inode().statfs()?, &d);
    write_statfs(task, a[1], &s)
}

/// `f_flags` reflects the mount's flags (`ST_RDONLY`, `ST_NOSUID`, ...).
fn with_mount_flags(mut s: crate::vfs::StatFs, d: &Dentry) -> crate::vfs::StatFs {
    let m = d.mount_flags();
    let mut f = 0x20; // ST_VALID
    for (ms, st) in [
        (libc::MS_RDONLY, 1),
        (libc::MS_NOSUID, 2),
        (libc::MS_NODEV, 4),
        (libc::MS_NOEXEC, 8),
    ] {
        if m & ms != 0 {
            f |= st;
        }
    }
    s.flags = f;
    s
}

/// `fstatfs(2)`.
pub fn fstatfs(task: &mut Task, a: &Args) -> SysResult<u64> {
    let file = file_arg(task, a[0])?;
    let s = match file.dentry() {
        Some(d) => with_mount_flags(d.inode().statfs()?, d),
        // Stdio and other anonymous files: report a pipe-like pseudo filesystem.
        None => crate::vfs::StatFs {
            kind: 0x5049_5045,
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
            ..Default::default()
        },
    };
    write_statfs(task, a[1], &s)
}
