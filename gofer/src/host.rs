//! The gofer's small host layer: thin wrappers over the `*at` system calls the server
//! needs, taking borrowed fds and C strings and returning `Errno`. Every `unsafe`
//! block of the crate (outside tests) lives here.

use std::ffi::CStr;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::stat::{Mode, SFlag};

use crate::{Stat, StatFs};

fn check(ret: libc::c_int) -> Result<libc::c_int, Errno> {
    Errno::result(ret)
}

/// Takes ownership of a descriptor a successful system call just returned.
fn owned(fd: libc::c_int) -> Result<OwnedFd, Errno> {
    let fd = check(fd)?;
    // SAFETY: `fd` was just returned by the kernel as a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(2)`.
pub fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: i32, mode: u32) -> Result<OwnedFd, Errno> {
    // SAFETY: `name` is a valid NUL-terminated string; the kernel only reads it.
    owned(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode as libc::c_uint) })
}

/// `openat2(2)` with `resolve` flags; falls back to `openat` on kernels without it.
pub fn openat2(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: i32,
    resolve: u64,
) -> Result<OwnedFd, Errno> {
    // SAFETY: `open_how` is plain data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = resolve;
    // SAFETY: `name` is NUL-terminated and `how` is a valid `open_how` of the size we pass.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    match owned(ret as libc::c_int) {
        Err(Errno::ENOSYS) => openat(dir, name, flags, 0),
        r => r,
    }
}

/// `fstat(2)` (works on `O_PATH` descriptors).
pub fn fstat(fd: BorrowedFd<'_>) -> Result<Stat, Errno> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
    Ok(Stat {
        dev: st.st_dev,
        ino: st.st_ino,
        mode: st.st_mode,
        nlink: st.st_nlink,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev,
        size: st.st_size,
        blksize: st.st_blksize,
        blocks: st.st_blocks,
        atime: (st.st_atime, st.st_atime_nsec),
        mtime: (st.st_mtime, st.st_mtime_nsec),
        ctime: (st.st_ctime, st.st_ctime_nsec),
    })
}

/// `fstatfs(2)`.
pub fn fstatfs(fd: BorrowedFd<'_>) -> Result<StatFs, Errno> {
    let mut st = MaybeUninit::<libc::statfs64>::uninit();
    // SAFETY: `st` is writable memory of the right size; the kernel fills it on success.
    check(unsafe { libc::fstatfs64(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstatfs succeeded, so `st` is initialised.
    let st = unsafe { st.assume_init() };
    Ok(StatFs {
        kind: st.f_type,
        bsize: st.f_bsize,
        blocks: st.f_blocks,
        bfree: st.f_bfree,
        bavail: st.f_bavail,
        files: st.f_files,
        ffree: st.f_ffree,
        namelen: st.f_namelen,
        frsize: st.f_frsize,
        flags: st.f_flags,
    })
}

/// `readlinkat(fd, "")`: the target of the symlink `fd` (an `O_PATH` descriptor) names.
pub fn readlink_fd(fd: BorrowedFd<'_>) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: `buf` is writable for `buf.len()` bytes; the path is an empty C string.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = Errno::result(n)? as usize;
    if n >= buf.len() {
        return Err(Errno::ENAMETOOLONG);
    }
    buf.truncate(n);
    Ok(buf)
}

/// `getdents64(2)` into `buf`; returns the number of bytes filled.
pub fn getdents64(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is writable for `buf.len()` bytes.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            fd.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    Ok(Errno::result(n)? as usize)
}

/// `lseek(fd, off, SEEK_SET)`.
pub fn seek_set(fd: BorrowedFd<'_>, off: u64) -> Result<(), Errno> {
    let off = i64::try_from(off).map_err(|_| Errno::EINVAL)?;
    nix::unistd::lseek(fd.as_raw_fd(), off, nix::unistd::Whence::SeekSet).map(drop)
}

/// `mkdirat(2)`.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> Result<(), Errno> {
    nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(mode))
}

/// `mknodat(2)` with device number 0.
pub fn mknodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> Result<(), Errno> {
    let kind = SFlag::from_bits_truncate(mode & libc::S_IFMT);
    let perm = Mode::from_bits_truncate(mode & !libc::S_IFMT);
    nix::sys::stat::mknodat(Some(dir.as_raw_fd()), name, kind, perm, 0)
}

/// `unlinkat(2)`.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> Result<(), Errno> {
    let how = if flags & libc::AT_REMOVEDIR != 0 {
        nix::unistd::UnlinkatFlags::RemoveDir
    } else {
        nix::unistd::UnlinkatFlags::NoRemoveDir
    };
    nix::unistd::unlinkat(Some(dir.as_raw_fd()), name, how)
}

/// `renameat2(2)`.
pub fn renameat2(
    old_dir: BorrowedFd<'_>,
    old: &CStr,
    new_dir: BorrowedFd<'_>,
    new: &CStr,
    flags: u32,
) -> Result<(), Errno> {
    // The raw call: glibc's wrapper turns flags 0 into the older renameat syscall,
    // which the seccomp allow-list does not carry.
    // SAFETY: both names are NUL-terminated.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            old_dir.as_raw_fd(),
            old.as_ptr(),
            new_dir.as_raw_fd(),
            new.as_ptr(),
            flags,
        )
    };
    check(ret as libc::c_int).map(drop)
}

/// `linkat(fd, "", dir, name, AT_EMPTY_PATH)`: a new name for the file `fd` holds.
pub fn link_fd(fd: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
    nix::unistd::linkat(
        Some(fd.as_raw_fd()),
        c"",
        Some(dir.as_raw_fd()),
        name,
        AtFlags::AT_EMPTY_PATH,
    )
}

/// `symlinkat(2)`.
pub fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
    nix::unistd::symlinkat(target, Some(dir.as_raw_fd()), name)
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH|AT_SYMLINK_NOFOLLOW)`; `u32::MAX` keeps an id.
pub fn chown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> Result<(), Errno> {
    // `u32::MAX` is the kernel's -1 either way: nix passes a raw id through.
    nix::unistd::fchownat(
        Some(fd.as_raw_fd()),
        c"",
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
        AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW,
    )
}

/// `fchmodat2(fd, "", mode, AT_EMPTY_PATH)`, which works on `O_PATH` descriptors.
pub fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> Result<(), Errno> {
    // SAFETY: the path is an empty C string.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            mode,
            libc::AT_EMPTY_PATH,
        )
    };
    Errno::result(ret).map(drop)
}

/// Bytes Linux allows in one attribute value or name list (`XATTR_SIZE_MAX`).
const XATTR_MAX: usize = 65536;

/// `fgetxattr(fd, name)`: the whole value.
pub fn fgetxattr(fd: BorrowedFd<'_>, name: &CStr) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; XATTR_MAX];
    // SAFETY: `buf` is writable for its length; the name is a C string.
    let n = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    buf.truncate(Errno::result(n)? as usize);
    Ok(buf)
}

/// `fsetxattr(fd, name, value, flags)`.
pub fn fsetxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8], flags: i32) -> Result<(), Errno> {
    // SAFETY: `value` is readable for its length; the name is a C string.
    let ret = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    check(ret).map(drop)
}

/// `flistxattr(fd)`: the NUL-terminated names.
pub fn flistxattr(fd: BorrowedFd<'_>) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; XATTR_MAX];
    // SAFETY: `buf` is writable for its length.
    let n = unsafe { libc::flistxattr(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    buf.truncate(Errno::result(n)? as usize);
    Ok(buf)
}

/// `fremovexattr(fd, name)`.
pub fn fremovexattr(fd: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
    // SAFETY: the name is a C string.
    check(unsafe { libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()) }).map(drop)
}

/// `openat2`'s resolve flags.
pub use abi::resolve::{RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS};

/// Takes inherited descriptor number `n` (passed by the runtime): moves it to a new
/// close-on-exec number and closes `n`.
pub fn take_inherited(n: RawFd) -> Result<OwnedFd, Errno> {
    // SAFETY: fcntl on an integer; a number that is not open gives EBADF.
    let fd = check(unsafe { libc::fcntl(n, libc::F_DUPFD_CLOEXEC, 3) })?;
    // `n` was handed to this process to own; it is closed once, here (a failure
    // leaves nothing to undo: the copy is what the gofer keeps).
    let _ = nix::unistd::close(n);
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `open_tree(fd, "", OPEN_TREE_CLONE | AT_EMPTY_PATH)`: a detached bind mount of
/// what `fd` names, with the mounts under it when `recursive` (`AT_RECURSIVE`: an
/// `rbind`), alive as long as the returned descriptor.
pub fn clone_tree(fd: BorrowedFd<'_>, recursive: bool) -> Result<OwnedFd, Errno> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let rec = if recursive {
        libc::AT_RECURSIVE as libc::c_uint
    } else {
        0
    };
    // SAFETY: an fd, a NUL-terminated empty path and integer flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            fd.as_raw_fd(),
            c"".as_ptr(),
            OPEN_TREE_CLONE
                | libc::O_CLOEXEC as libc::c_uint
                | libc::AT_EMPTY_PATH as libc::c_uint
                | rec,
        )
    };
    owned(r as libc::c_int)
}

/// Makes the mount `fd` is the root of read-only, and every mount under it
/// (`mount_setattr` with `AT_RECURSIVE`, as runc's `rro`), so no host submount of a
/// read-only bind stays writable.
pub fn make_mount_readonly(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    /// `struct mount_attr`.
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 1;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: an fd, a NUL-terminated empty path, and `attr` valid for its size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(r as libc::c_int).map(drop)
}

/// A new descriptor (close-on-exec) of the same open file (`F_DUPFD_CLOEXEC`).
pub fn dup(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    // SAFETY: fcntl with integer arguments.
    let n = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// `fcntl(fd, F_SETFL, flags)`: the open file's status flags.
pub fn set_status_flags(fd: BorrowedFd<'_>, flags: i32) -> Result<(), Errno> {
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags);
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags)).map(drop)
}

/// `fchown(2)` on an open descriptor; `u32::MAX` keeps an id.
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> Result<(), Errno> {
    let uid = (uid != u32::MAX).then(|| nix::unistd::Uid::from_raw(uid));
    let gid = (gid != u32::MAX).then(|| nix::unistd::Gid::from_raw(gid));
    nix::unistd::fchown(fd.as_raw_fd(), uid, gid)
}

/// `fchmod(2)` on an open descriptor.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> Result<(), Errno> {
    nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode))
}

/// `utimensat(fd, "", times, AT_EMPTY_PATH|AT_SYMLINK_NOFOLLOW)`.
pub fn utimens_fd(fd: BorrowedFd<'_>, atime: (i64, i64), mtime: (i64, i64)) -> Result<(), Errno> {
    let ts = [
        libc::timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1,
        },
        libc::timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1,
        },
    ];
    // SAFETY: `ts` is an array of two timespecs, as utimensat expects; the path is "".
    let ret = unsafe {
        libc::utimensat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            ts.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(ret).map(drop)
}

/// `ftruncate(2)`.
pub fn ftruncate(fd: BorrowedFd<'_>, size: u64) -> Result<(), Errno> {
    let size = i64::try_from(size).map_err(|_| Errno::EINVAL)?;
    nix::unistd::ftruncate(fd, size)
}

/// `fsync(2)` or `fdatasync(2)`.
pub fn fsync(fd: BorrowedFd<'_>, datasync: bool) -> Result<(), Errno> {
    if datasync {
        nix::unistd::fdatasync(fd.as_raw_fd())
    } else {
        nix::unistd::fsync(fd.as_raw_fd())
    }
}

/// Sets the process umask, returning the old one.
pub fn umask(mask: u32) -> u32 {
    nix::sys::stat::umask(Mode::from_bits_truncate(mask)).bits()
}

/// Sends one datagram, donating `fd` with `SCM_RIGHTS` when given. Never raises SIGPIPE.
pub fn send_frame(
    sock: BorrowedFd<'_>,
    frame: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> Result<(), Errno> {
    let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
    match send_frame_fds(sock, frame, &fds)? {
        n if n != frame.len() => Err(Errno::EMSGSIZE),
        _ => Ok(()),
    }
}

/// Sends `frame` with every descriptor of `fds` attached (`SCM_RIGHTS`; none when
/// empty). On a datagram socket the frame goes whole; on a stream socket the
/// descriptors ride with its first byte and a short count is returned for the
/// caller to finish with plain writes. Never raises SIGPIPE.
pub fn send_frame_fds(
    sock: BorrowedFd<'_>,
    frame: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<usize, Errno> {
    let iov = [IoSlice::new(frame)];
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let one = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &one };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// One received datagram.
pub struct Received {
    /// Bytes stored in the buffer (at most its length).
    pub len: usize,
    /// The datagram was larger than the buffer.
    pub truncated: bool,
    /// Descriptors that came with it (all of them, so none leak).
    pub fds: Vec<OwnedFd>,
}

/// Receives one datagram into `buf`. A zero-length result means the peer hung up.
pub fn recv_frame(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Received, Errno> {
    let mut cmsg = nix::cmsg_space!([RawFd; 8]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(m) => m,
        };
        let mut fds = Vec::new();
        for c in msg.cmsgs().map_err(|_| Errno::EBADMSG)? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                for fd in raw {
                    // SAFETY: SCM_RIGHTS installed `fd` in our table for us; we are its only owner.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        return Ok(Received {
            len: msg.bytes,
            truncated: msg.flags.contains(MsgFlags::MSG_TRUNC)
                || msg.flags.contains(MsgFlags::MSG_CTRUNC),
            fds,
        });
    }
}

/// `AT_FDCWD` as a descriptor for the `*at` wrappers.
pub fn at_fdcwd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is not a real descriptor but a value every *at call accepts; it
    // can never be closed, so borrowing it for 'static is sound.
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}
