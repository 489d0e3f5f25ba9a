//! The Linux system call ABI. [`table`] maps every x86-64 number to its name,
//! handler and argument printer; the handlers live in one file per area.

pub mod aio;
pub mod clone;
pub mod creds;
pub mod epoll;
pub mod eventfd;
pub mod exec;
#[cfg(test)]
pub mod fake;
pub mod fasync;
pub mod fs;
pub mod fs_io;
pub mod fs_lock;
pub mod fs_mut;
pub mod futex;
#[cfg(test)]
mod handler_tests;
pub mod hostsock;
pub mod inet;
pub mod info;
pub mod inotify;
pub mod mem;
pub mod membarrier;
pub mod memfd;
pub mod mount;
pub mod mqueue;
pub mod msg;
pub mod namespace;
pub mod netlink;
pub mod packet;
mod pieces;
pub mod pipe;
pub mod poll;
pub mod process;
pub mod process_vm;
pub mod ptrace;
pub mod sched;
pub mod seccomp;
pub mod sem;
pub mod session;
pub mod shm;
pub mod signal;
pub mod signalfd;
mod sockaddr;
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

/// Flags on the table's rows (`sentry/tools/syscalls/*.txt`, fourth column): what the
/// dispatcher does after a call succeeds, named on the row instead of matched by number
/// here, and how much of the call the row offers (the README's count comes from these).
pub mod flags {
    /// The call changed root, cwd or umask: publish them to `CLONE_FS` siblings.
    pub const PUBLISH_FS: u8 = 1;
    /// The call changed what `/proc/PID` shows of the process (its image, credentials,
    /// capability sets, `no_new_privs`, cwd or root): republish that view.
    pub const PUBLISH_VIEW: u8 = 2;
    /// Some of the call's modes are not offered; the list's fifth column says which.
    pub const PARTIAL: u8 = 4;
    /// The call is answered with an error on purpose; the fifth column says why.
    pub const REFUSED: u8 = 8;
}

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

/// The x86-64 table as the kernel takes it ([`crate::kernel::SyscallTable`]).
pub struct Linux;

/// The table every sandbox's kernel serves.
pub static TABLE: Linux = Linux;

impl crate::kernel::SyscallTable for Linux {
    fn dispatch(&self, task: &mut Task, nr: u64, args: Args) -> SysResult<u64> {
        dispatch(task, nr, args)
    }

    fn name(&self, nr: u64) -> Option<&'static str> {
        table::entry(nr).map(|e| e.name)
    }

    fn number_of(&self, name: &str) -> Option<u64> {
        number_of(name)
    }
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
    let after = entry.map_or(0, |e| e.flags);
    if result.is_ok() && after & flags::PUBLISH_FS != 0 {
        if let Some(shared) = &task.fs_shared {
            if let Ok(mut fs) = shared.lock() {
                *fs = task.fs.clone();
            }
        }
    }
    if result.is_ok() && after & flags::PUBLISH_VIEW != 0 {
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

#[cfg(test)]
mod tests {
    /// What `tools/gen_table.py` prints with `args`.
    fn generate(args: &[&str]) -> Vec<u8> {
        let dir = env!("CARGO_MANIFEST_DIR");
        let out = std::process::Command::new("python3")
            .arg(format!("{dir}/tools/gen_table.py"))
            .args(args)
            .output()
            .expect("python3 runs sentry/tools/gen_table.py");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The README's count of the ABI is what `gen_table.py --count` makes of the lists.
    #[test]
    fn readme_count_is_current() {
        let count = String::from_utf8(generate(&["--count"])).expect("utf-8");
        let readme = include_str!("../../../README.md");
        let block = readme
            .split("<!-- syscall-count: generated by `python3 sentry/tools/gen_table.py --count` -->\n")
            .nth(1)
            .and_then(|rest| rest.split("<!-- /syscall-count -->").next())
            .expect("README.md has the syscall-count block");
        assert!(
            block == count,
            "README.md's syscall count is stale: replace its block with the output of \
             `python3 sentry/tools/gen_table.py --count`"
        );
    }

    /// `table.rs` is exactly what `tools/gen_table.py` makes from the lists today, as
    /// `rustfmt` lays it out: a handler added to a list, or a row edited by hand, without
    /// regenerating fails here.
    #[test]
    fn table_is_generated_from_the_lists() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let generated = generate(&[]);
        let mut fmt = Command::new("rustfmt")
            .args(["--edition", "2021"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("rustfmt runs");
        let mut stdin = fmt.stdin.take().expect("rustfmt's stdin");
        stdin.write_all(&generated).expect("write to rustfmt");
        drop(stdin);
        let formatted = fmt.wait_with_output().expect("rustfmt ends");
        assert!(formatted.status.success(), "rustfmt failed");
        assert!(
            formatted.stdout == include_bytes!("table.rs"),
            "sentry/src/syscalls/table.rs is stale: run \
             `python3 sentry/tools/gen_table.py > sentry/src/syscalls/table.rs && cargo fmt`"
        );
    }
}
