//! The Linux system call ABI. [`table`] maps every x86-64 number to its name,
//! handler and argument printer; the handlers live in one file per area.

pub mod clone;
pub mod creds;
pub mod epoll;
pub mod eventfd;
pub mod exec;
pub mod fasync;
pub mod fs;
pub mod fs_io;
pub mod fs_lock;
pub mod fs_mut;
pub mod futex;
pub mod inet;
pub mod info;
pub mod inotify;
pub mod mem;
pub mod membarrier;
pub mod memfd;
pub mod mount;
pub mod msg;
pub mod namespace;
pub mod netlink;
pub mod pipe;
pub mod poll;
pub mod process;
pub mod sched;
pub mod seccomp;
pub mod sem;
pub mod session;
pub mod shm;
pub mod signal;
pub mod signalfd;
pub mod socket;
pub mod splice;
pub mod strace;
pub mod table;
pub mod time;
pub mod timerfd;
pub mod timers;
pub mod wait;
pub mod xattr;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::kernel::Task;
use crate::mm::io;
use crate::vfs::{Dentry, OpenFile, PATH_MAX};

/// The six raw argument registers.
pub type Args = [u64; 6];

/// A syscall handler.
pub type Handler = fn(&mut Task, &Args) -> SysResult<u64>;

/// The system call the sentry panics on (`RVISOR_TESTONLY_PANIC_ON_SYSCALL`), or
/// `u64::MAX`: a test hook that provokes a real sentry panic in a task thread.
static TESTONLY_PANIC_NR: AtomicU64 = AtomicU64::new(u64::MAX);

/// Makes every later call of system call `nr` panic the sentry (tests only; see
/// `boot`).
pub fn set_testonly_panic(nr: u64) {
    TESTONLY_PANIC_NR.store(nr, Ordering::Relaxed);
}

/// The number of the system call called `name`.
pub fn number_of(name: &str) -> Option<u64> {
    (0..table::MAX_NR).find(|&nr| table::entry(nr).is_some_and(|e| e.name == name))
}

/// Runs syscall `nr` for `task`, with `--strace` output if enabled.
pub fn dispatch(task: &mut Task, nr: u64, args: Args) -> SysResult<u64> {
    if nr == TESTONLY_PANIC_NR.load(Ordering::Relaxed) {
        panic!("RVISOR_TESTONLY_PANIC_ON_SYSCALL: system call {nr} (test hook)");
    }
    let entry = table::entry(nr);
    // CLONE_FS siblings share root, cwd and umask: see their latest changes.
    if let Some(shared) = &task.fs_shared {
        if let Ok(fs) = shared.lock() {
            task.fs = fs.clone();
        }
    }
    let result = match entry.and_then(|e| e.handler) {
        Some(h) => h(task, &args),
        None => {
            let name = entry.map(|e| e.name).unwrap_or("unknown");
            task.kernel.report_unimplemented(nr, name);
            Err(Errno::ENOSYS)
        }
    };
    // chdir, fchdir, umask, chroot: publish to CLONE_FS siblings.
    // pivot_root and setns move root and cwd (unshare(CLONE_NEWNS) leaves the set).
    if result.is_ok() && matches!(nr, 80 | 81 | 95 | 161 | 155 | 308) {
        if let Some(shared) = &task.fs_shared {
            if let Ok(mut fs) = shared.lock() {
                *fs = task.fs.clone();
            }
        }
    }
    // Keep /proc's view of the process current for the calls that change it.
    if result.is_ok()
        && matches!(
            nr,
            59 | 322 | 80 | 81 | 95 | 105 | 106 | 113 | 114 | 116 | 117 | 119 | 122 | 123 | 161
                | 155 | 272 | 308
        )
        // capset and prctl: the capability sets and no_new_privs /proc/PID/status shows.
        || result.is_ok() && matches!(nr, 126 | 157)
    {
        task.publish_view();
        crate::kernel::process::set_current(task.tgid, task.tid);
    }
    if task.kernel.strace {
        strace::log(task, nr, entry, &args, &result);
    }
    result
}

/// Reads a path argument: `ENAMETOOLONG` at `PATH_MAX`, `EFAULT` for a bad pointer.
pub fn path_arg(task: &Task, addr: u64) -> SysResult<Vec<u8>> {
    io::read_cstring(task.mem(), addr, PATH_MAX - 1)
}

/// The directory a `*at` call resolves a relative path from.
pub fn at_dir(task: &Task, dirfd: i32, path: &[u8]) -> SysResult<Arc<Dentry>> {
    if path.first() == Some(&b'/') || dirfd == libc::AT_FDCWD {
        return Ok(task.fs.cwd.clone());
    }
    let file = task.fds()?.get(dirfd)?;
    let d = file.dentry().cloned().ok_or(Errno::ENOTDIR)?;
    if !d.inode().stat()?.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    Ok(d)
}

/// The open file behind `fd`.
pub fn file_arg(task: &Task, fd: u64) -> SysResult<Arc<OpenFile>> {
    task.fds()?.get(fd as i32)
}

/// Linux caps a single read or write at this many bytes (`MAX_RW_COUNT`).
pub const MAX_RW_COUNT: u64 = 0x7fff_f000;
