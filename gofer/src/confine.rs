//! Confining the gofer process before it serves.
//!
//! Two layers:
//! - **Mount namespace** ([`isolate_mounts`]): a private mount namespace whose root is
//!   a recursive bind mount of the served tree (`pivot_root`, old root detached), so
//!   even a bug in the server cannot name a host path outside it. `/proc/self/fd`, which
//!   the server needs to re-open fids, is opened before the switch and kept as a
//!   descriptor; nothing else of the host stays reachable. With `readonly` the bind
//!   mount's top level is also made read-only (submounts keep their own flags).
//! - **seccomp** ([`install_seccomp`]): an allow-list of exactly the system calls the
//!   server loop makes; anything else kills the process. `recvmsg`/`sendmsg` are further
//!   limited to the sentry socket, and a read-only gofer gets no mutating calls at all.
//!
//! Left to the caller (the `rvisor gofer` entry point): dropping capabilities (the
//! server needs `CAP_CHOWN`, `CAP_FOWNER`, `CAP_DAC_OVERRIDE`, `CAP_MKNOD` and, for
//! `linkat(AT_EMPTY_PATH)`, `CAP_DAC_READ_SEARCH` to serve every owner's files), user
//! and pid namespaces, and rlimits.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use tracing::info;

use crate::server::{open_proc_fds, open_root, Server};

/// How much confinement to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfineOptions {
    /// Enter a private mount namespace rooted at the served tree.
    pub mount_namespace: bool,
    /// Install the seccomp allow-list.
    pub seccomp: bool,
}

impl Default for ConfineOptions {
    fn default() -> Self {
        ConfineOptions {
            mount_namespace: true,
            seccomp: true,
        }
    }
}

/// How a syscall is allowed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Allow {
    /// Always.
    Always,
    /// Only on the sentry socket (argument 0).
    OnSocket,
    /// Only when serving read-write.
    Writable,
    /// `openat` as the server uses it: read-write servers need `O_CREAT`, read-only
    /// ones may only open without write access or creation.
    OpenFlags,
}

/// The allow-list: (number, name, how, why).
const SYSCALLS: &[(libc::c_long, &str, Allow, &str)] = &[
    (libc::SYS_recvmsg, "recvmsg", Allow::OnSocket, "receive requests"),
    (libc::SYS_sendmsg, "sendmsg", Allow::OnSocket, "send replies and donate fds (SCM_RIGHTS)"),
    (libc::SYS_openat, "openat", Allow::OpenFlags, "re-open fids via /proc/self/fd, open dirs for getdents, create files"),
    (libc::SYS_openat2, "openat2", Allow::Always, "walk one component with RESOLVE_BENEATH|NO_SYMLINKS"),
    (libc::SYS_close, "close", Allow::Always, "clunk fids, drop donated fds after sending"),
    (libc::SYS_fstat, "fstat", Allow::Always, "stat fids (older libcs)"),
    (libc::SYS_newfstatat, "newfstatat", Allow::Always, "stat fids (glibc implements fstat with it)"),
    (libc::SYS_fstatfs, "fstatfs", Allow::Always, "statfs"),
    (libc::SYS_readlinkat, "readlinkat", Allow::Always, "readlink of a symlink fid"),
    (libc::SYS_getdents64, "getdents64", Allow::Always, "getdents"),
    (libc::SYS_lseek, "lseek", Allow::Always, "position a directory at a getdents cookie"),
    (libc::SYS_fsync, "fsync", Allow::Always, "fsync"),
    (libc::SYS_fdatasync, "fdatasync", Allow::Always, "fsync with datasync"),
    (libc::SYS_mkdirat, "mkdirat", Allow::Writable, "mkdir"),
    (libc::SYS_mknodat, "mknodat", Allow::Writable, "mknod (FIFO/socket only)"),
    (libc::SYS_unlinkat, "unlinkat", Allow::Writable, "unlink/rmdir, and undoing a half-made create"),
    (libc::SYS_renameat2, "renameat2", Allow::Writable, "rename"),
    (libc::SYS_linkat, "linkat", Allow::Writable, "link"),
    (libc::SYS_symlinkat, "symlinkat", Allow::Writable, "symlink"),
    (libc::SYS_fchownat, "fchownat", Allow::Writable, "owner of new files, setattr uid/gid"),
    (libc::SYS_fchown, "fchown", Allow::Writable, "owner of a created file"),
    (libc::SYS_fchmod, "fchmod", Allow::Writable, "restore set-id bits a chown cleared"),
    (libc::SYS_fchmodat, "fchmodat", Allow::Writable, "setattr mode on kernels without fchmodat2"),
    (libc::SYS_fchmodat2, "fchmodat2", Allow::Writable, "setattr mode on an O_PATH fd"),
    (libc::SYS_utimensat, "utimensat", Allow::Writable, "setattr atime/mtime"),
    (libc::SYS_ftruncate, "ftruncate", Allow::Writable, "setattr size"),
    (libc::SYS_mmap, "mmap", Allow::Always, "memory allocator"),
    (libc::SYS_munmap, "munmap", Allow::Always, "memory allocator"),
    (libc::SYS_mremap, "mremap", Allow::Always, "memory allocator (growing vectors)"),
    (libc::SYS_brk, "brk", Allow::Always, "memory allocator"),
    (libc::SYS_madvise, "madvise", Allow::Always, "memory allocator returning pages"),
    (libc::SYS_futex, "futex", Allow::Always, "locks in std and tracing"),
    (libc::SYS_write, "write", Allow::Always, "log lines to stderr"),
    (libc::SYS_writev, "writev", Allow::Always, "log lines to stderr"),
    (libc::SYS_clock_gettime, "clock_gettime", Allow::Always, "log timestamps when the vDSO is unavailable"),
    (libc::SYS_rt_sigreturn, "rt_sigreturn", Allow::Always, "return from a signal handler"),
    (libc::SYS_sigaltstack, "sigaltstack", Allow::Always, "std's stack-overflow handler setup/teardown"),
    (libc::SYS_exit, "exit", Allow::Always, "thread exit"),
    (libc::SYS_exit_group, "exit_group", Allow::Always, "process exit when the sentry hangs up"),
];

fn cond(arg: u8, op: SeccompCmpOp, val: u64) -> Result<SeccompCondition, seccompiler::BackendError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, val)
}

fn to_io<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::new(io::ErrorKind::Other, e.to_string())
}

/// Compiles the allow-list for a server talking on `sock`. Returns the program and the
/// names it allows (for the log).
pub fn seccomp_program(sock: BorrowedFd<'_>, readonly: bool) -> io::Result<(BpfProgram, Vec<&'static str>)> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut names = Vec::new();
    for &(nr, name, how, _why) in SYSCALLS {
        let r = match how {
            Allow::Always => vec![],
            Allow::Writable if readonly => continue,
            Allow::Writable => vec![],
            Allow::OnSocket => vec![SeccompRule::new(vec![cond(
                0,
                SeccompCmpOp::Eq,
                sock.as_raw_fd() as u64,
            )
            .map_err(to_io)?])
            .map_err(to_io)?],
            Allow::OpenFlags if readonly => {
                let forbidden = (libc::O_CREAT | libc::O_TRUNC | libc::O_ACCMODE) as u64;
                vec![SeccompRule::new(vec![cond(
                    2,
                    SeccompCmpOp::MaskedEq(forbidden),
                    0,
                )
                .map_err(to_io)?])
                .map_err(to_io)?]
            }
            Allow::OpenFlags => vec![],
        };
        rules.insert(nr, r);
        names.push(name);
    }
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(to_io)?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch,
    )
    .map_err(to_io)?;
    let prog: BpfProgram = filter.try_into().map_err(to_io)?;
    Ok((prog, names))
}

/// Installs `prog` on the calling thread (and sets `no_new_privs`).
pub fn install_seccomp(prog: &BpfProgram) -> io::Result<()> {
    seccompiler::apply_filter(prog).map_err(to_io)
}

/// Descriptors the server needs after [`isolate_mounts`].
pub struct Isolated {
    /// `O_PATH` descriptor of the served tree (now the namespace's `/`).
    pub root: OwnedFd,
    /// Directory descriptor of `/proc/self/fd`, opened before the switch.
    pub proc_fds: OwnedFd,
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Moves the calling (single-threaded) process into a new mount namespace whose root
/// is `root`, and returns the descriptors the server needs.
pub fn isolate_mounts(root: &Path, readonly: bool) -> io::Result<Isolated> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let proc_fds = open_proc_fds()?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
    // Nothing we do below may propagate back to the host's mounts.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)?;
    let croot = cpath(root)?;
    mount(
        Some(croot.as_c_str()),
        croot.as_c_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )?;
    if readonly {
        mount(
            None::<&str>,
            croot.as_c_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )?;
    }
    nix::unistd::chdir(croot.as_c_str())?;
    // pivot_root(".", "."): the old root ends up stacked on the new one, and detaching
    // "." then removes it, leaving no path back to the host tree.
    nix::unistd::pivot_root(".", ".")?;
    umount2(".", MntFlags::MNT_DETACH)?;
    nix::unistd::chdir("/")?;
    let root = open_root(Path::new("/"))?;
    Ok(Isolated { root, proc_fds })
}

/// Confines the calling process as `opts` says and returns the server for `root`,
/// ready to [`Server::run`] on `sock`. Call it from a single-threaded process.
pub fn confine(
    root: &Path,
    sock: BorrowedFd<'_>,
    readonly: bool,
    opts: ConfineOptions,
) -> io::Result<Server> {
    let server = if opts.mount_namespace {
        let iso = isolate_mounts(root, readonly)?;
        Server::from_parts(iso.root, iso.proc_fds, readonly)
    } else {
        Server::new(root, readonly)?
    };
    if opts.seccomp {
        let (prog, names) = seccomp_program(sock, readonly)?;
        info!("gofer: seccomp allow-list: {}", names.join(" "));
        install_seccomp(&prog)?;
    }
    Ok(server)
}
