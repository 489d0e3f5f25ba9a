//! Host tmpfs instances that hold the file data of the sandbox's tmpfs mounts, one
//! per mount and of the same size, so the host kernel itself enforces the mount's
//! `size=` on every page: `write` and `fallocate` get `ENOSPC` (or a short write),
//! and a write fault through a shared mapping gets SIGBUS (`BUS_ADRERR`), as Linux's
//! tmpfs gives them. Its `statfs` is the mount's.
//!
//! Each instance is made with the mount API (`fsopen`, `fsconfig`, `fsmount`) while
//! the sentry still holds `CAP_SYS_ADMIN` at boot: the mount it gets is detached,
//! reachable only through its descriptor, attached to no directory of any mount
//! namespace (so neither the host nor the sandbox can see or reach it by path). Files
//! are made in it with `O_TMPFILE` and never named, so a file's data goes when its
//! descriptor (the sentry's extent) is closed.
//!
//! Once confined the sentry can make no new instance (no `fsopen` in its allow-list,
//! nor the capability): [`seal`] marks that point, and later tmpfs mounts (a
//! container added to a running sandbox) fall back to memfds (see
//! `fs::tmpfs`). The instances' descriptors are kept for the sentry's whole life,
//! never closed, so the numbers the seccomp filter allows `O_TMPFILE` and `fstatfs`
//! on ([`dir_fds`]) never come to name anything else.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::errno::{Errno, SysResult};

/// `FSOPEN_CLOEXEC`.
const FSOPEN_CLOEXEC: u32 = 1;
/// `FSCONFIG_SET_STRING`.
const FSCONFIG_SET_STRING: u32 = 1;
/// `FSCONFIG_CMD_CREATE`.
const FSCONFIG_CMD_CREATE: u32 = 6;
/// `FSMOUNT_CLOEXEC`.
const FSMOUNT_CLOEXEC: u32 = 1;
/// `MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV`. Not `MOUNT_ATTR_NOEXEC`: the host would
/// then refuse `PROT_EXEC` mappings of the files (a program loaded from a sandbox
/// tmpfs, an `mprotect(PROT_EXEC)`), which the sandbox's own `noexec` decides.
const MOUNT_ATTRS: u32 = 0x2 | 0x4;

/// The only `openat` flags the sentry passes on an instance: a new unnamed file,
/// read-write, close-on-exec (the seccomp row allows exactly these).
pub const TMPFILE_FLAGS: i32 = libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC;
/// The mode of those files (never seen by anyone: they have no name).
pub const TMPFILE_MODE: u32 = 0o600;

/// Every instance's root descriptor, kept until the sentry exits.
static DIRS: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());
/// Set once the sentry is confined: no instance can be made any more.
static SEALED: AtomicBool = AtomicBool::new(false);

/// One host tmpfs instance (its root directory's descriptor, never closed).
#[derive(Debug)]
pub struct HostTmpfs {
    root: BorrowedFd<'static>,
}

/// Its size figures, in pages of 4 KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// The size limit.
    pub blocks: u64,
    /// Pages not in use.
    pub free: u64,
}

/// Makes an instance limited to `size` bytes (rounded up to pages, as Linux's
/// `size=`), with no inode limit of its own (the sandbox's tmpfs counts its inodes).
/// `EPERM` once [`seal`]ed or without the privilege to mount.
pub fn mount(size: u64) -> SysResult<HostTmpfs> {
    if SEALED.load(Ordering::Relaxed) {
        return Err(Errno::EPERM);
    }
    let mut dirs = DIRS.lock().map_err(|_| Errno::EIO)?;
    // SAFETY: fsopen takes a NUL-terminated name and integer flags.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) };
    if fs < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
    let size = std::ffi::CString::new(size.to_string()).map_err(|_| Errno::EINVAL)?;
    for (key, value) in [
        (c"size", size.as_c_str()),
        (c"nr_inodes", c"0"),
        (c"mode", c"0700"),
        (c"huge", c"never"),
    ] {
        // SAFETY: fsconfig reads two NUL-terminated strings.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        };
        if r < 0 {
            return Err(Errno::last());
        }
    }
    // SAFETY: fsconfig with integer arguments and null pointers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fsmount takes integer arguments.
    let m = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            MOUNT_ATTRS,
        )
    };
    if m < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    let root = unsafe { OwnedFd::from_raw_fd(m as RawFd) };
    let raw = std::os::fd::IntoRawFd::into_raw_fd(root);
    dirs.push(raw);
    // SAFETY: `raw` stays open for the rest of the process (never closed: see the
    // module doc), so a 'static borrow of it is sound.
    let root = unsafe { BorrowedFd::borrow_raw(raw) };
    Ok(HostTmpfs { root })
}

/// Marks the sentry confined: no instance is made from now on (its filter would
/// kill it for `fsopen`).
pub fn seal() {
    SEALED.store(true, Ordering::Relaxed);
}

/// Whether [`seal`] was called.
pub fn sealed() -> bool {
    SEALED.load(Ordering::Relaxed)
}

/// The root descriptors of every instance made so far (for the seccomp filter).
pub fn dir_fds() -> Vec<RawFd> {
    DIRS.lock().map(|d| d.clone()).unwrap_or_default()
}

impl HostTmpfs {
    /// A new, empty, unnamed file in the instance, open read-write.
    pub fn create_file(&self) -> SysResult<OwnedFd> {
        // SAFETY: openat on a directory fd we hold, with a NUL-terminated path.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat,
                self.root.as_raw_fd(),
                c".".as_ptr(),
                TMPFILE_FLAGS,
                TMPFILE_MODE,
            )
        };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: the kernel just returned this descriptor; nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }

    /// The instance's size and free pages, as the host counts them (every page its
    /// files hold, those written through mappings included).
    pub fn usage(&self) -> SysResult<Usage> {
        // SAFETY: an all-zero statfs is a valid value for the kernel to overwrite.
        let mut sf: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: fstatfs writes one struct statfs into `sf`; the fd is live.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fstatfs,
                self.root.as_raw_fd(),
                &mut sf as *mut libc::statfs,
            )
        };
        if r < 0 {
            return Err(Errno::last());
        }
        let pages = |n: u64| n * sf.f_bsize as u64 / 4096;
        Ok(Usage {
            blocks: pages(sf.f_blocks),
            free: pages(sf.f_bfree),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// Root can mount: the limit holds for write, fallocate and a write fault (the
    /// fault's SIGBUS is shown by the e2e test, which can catch it in a program).
    #[test]
    fn an_instance_enforces_its_size() {
        let Ok(t) = mount(64 << 10) else {
            eprintln!("no privilege to mount a tmpfs: skipped");
            return;
        };
        assert!(dir_fds().contains(&t.root.as_raw_fd()));
        assert_eq!(
            t.usage().unwrap(),
            Usage {
                blocks: 16,
                free: 16
            }
        );
        let f = t.create_file().unwrap();
        let buf = [7u8; 4096 * 20];
        let n = crate::sys::host::pwrite(f.as_fd(), &buf, 0).unwrap();
        assert_eq!(n, 16 * 4096, "short at the limit");
        assert_eq!(t.usage().unwrap().free, 0);
        assert_eq!(
            crate::sys::host::pwrite(f.as_fd(), &buf[..1], 20 * 4096),
            Err(Errno::ENOSPC)
        );
        drop(f);
        assert_eq!(
            t.usage().unwrap().free,
            16,
            "a closed file gives its pages back"
        );
    }
}
