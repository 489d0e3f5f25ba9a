//! Confining the gofer process before it serves.
//!
//! Two layers:
//! - **Mount namespace** (`isolate_mounts`): a private mount namespace whose root is
//!   a recursive bind mount of the served tree (`pivot_root`, old root detached), so
//!   even a bug in the server cannot name a host path outside it. `/proc/self/fd`, which
//!   the server needs to re-open fids, is opened before the switch and kept as a
//!   descriptor; nothing else of the host stays reachable. With `readonly` the bind
//!   mount's top level is also made read-only (submounts keep their own flags).
//! - **seccomp** ([`install_seccomp`]): an allow-list of exactly the system calls the
//!   server loop makes; anything else kills the process. `recvmsg`/`sendmsg` are further
//!   limited to the sentry socket, and a read-only gofer gets no mutating calls at all.
//!
//! - **Namespaces and capabilities** ([`drop_privileges`]): the gofer also leaves the
//!   host's network, IPC and UTS namespaces, keeps only the capabilities serving
//!   every owner's files as root needs ([`KEPT_CAPS`]; read-only: [`KEPT_CAPS_RO`]),
//!   and sets `no_new_privs`.
//!
//! A step the host refuses stops the gofer with an error naming it, unless
//! [`ConfineOptions::weak`] (`--unsafe-weak-confinement`) asks to skip it with a
//! warning. Not done: user and pid namespaces (serving files of every owner needs the
//! whole host uid range).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
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
    /// Leave the host's network, IPC and UTS namespaces, drop every capability but
    /// [`KEPT_CAPS`] and set `no_new_privs`.
    pub drop_privileges: bool,
    /// Skip a namespace or capability step the host refuses, with a warning, instead
    /// of failing (`--unsafe-weak-confinement`).
    pub weak: bool,
}

impl Default for ConfineOptions {
    fn default() -> Self {
        ConfineOptions {
            mount_namespace: true,
            seccomp: true,
            drop_privileges: true,
            weak: false,
        }
    }
}

/// The capabilities a writable gofer keeps: serving files of every owner as root.
/// `CAP_DAC_OVERRIDE` and `CAP_DAC_READ_SEARCH`: read, write and walk files and
/// directories whatever their mode (and `linkat(AT_EMPTY_PATH)`); `CAP_FOWNER`:
/// `O_NOATIME` opens, chmod and utimes of files of other owners; `CAP_CHOWN`: owners of
/// created files and setattr uid/gid; `CAP_FSETID`: keep set-id bits a chmod or write
/// would clear. Not `CAP_MKNOD`: the gofer makes FIFOs and sockets only.
pub const KEPT_CAPS: &[caps::Capability] = &[
    caps::Capability::CAP_DAC_OVERRIDE,
    caps::Capability::CAP_DAC_READ_SEARCH,
    caps::Capability::CAP_FOWNER,
    caps::Capability::CAP_CHOWN,
    caps::Capability::CAP_FSETID,
];

/// What a gofer that writes nothing keeps: reading and walking every owner's files.
pub const KEPT_CAPS_RO: &[caps::Capability] = &[
    caps::Capability::CAP_DAC_OVERRIDE,
    caps::Capability::CAP_DAC_READ_SEARCH,
    caps::Capability::CAP_FOWNER,
];

/// A confinement step failed: stop, or with `weak` warn and go on.
fn step(weak: bool, what: &str, r: io::Result<()>) -> io::Result<bool> {
    // strerror's words, without io::Error's "(os error N)".
    let r = r.map_err(|e| match e.raw_os_error() {
        Some(n) => io::Error::new(e.kind(), nix::errno::Errno::from_raw(n).desc()),
        None => e,
    });
    match r {
        Ok(()) => Ok(true),
        Err(e) if weak => {
            tracing::warn!(
                "--unsafe-weak-confinement: skipped sandbox confinement step gofer {what}: {e}"
            );
            Ok(false)
        }
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!(
                "sandbox confinement: gofer {what}: {e} (run as root, or pass --unsafe-weak-confinement to run without it)"
            ),
        )),
    }
}

/// Leaves the host's network, IPC and UTS namespaces, keeps only `keep` of the
/// capabilities (permitted, effective and bounding sets; inheritable and ambient
/// emptied) and sets `no_new_privs`. Call it after the mount namespace is set up
/// (that needs `CAP_SYS_ADMIN`) and before seccomp (which allows none of this).
pub fn drop_privileges(keep: &[caps::Capability], weak: bool) -> io::Result<()> {
    use caps::{CapSet, CapsHashSet};
    let ns = nix::sched::CloneFlags::CLONE_NEWNET
        | nix::sched::CloneFlags::CLONE_NEWIPC
        | nix::sched::CloneFlags::CLONE_NEWUTS;
    step(
        weak,
        "unshare(CLONE_NEWNET|CLONE_NEWIPC|CLONE_NEWUTS)",
        nix::sched::unshare(ns).map_err(io::Error::from),
    )?;
    let keep: CapsHashSet = keep.iter().copied().collect();
    let drop = || -> io::Result<()> {
        let bounding = caps::read(None, CapSet::Bounding).map_err(to_io)?;
        for c in bounding.difference(&keep) {
            caps::drop(None, CapSet::Bounding, *c).map_err(to_io)?;
        }
        let permitted = caps::read(None, CapSet::Permitted).map_err(to_io)?;
        let kept: CapsHashSet = permitted.intersection(&keep).copied().collect();
        caps::clear(None, CapSet::Ambient).map_err(to_io)?;
        caps::clear(None, CapSet::Inheritable).map_err(to_io)?;
        caps::set(None, CapSet::Effective, &kept).map_err(to_io)?;
        caps::set(None, CapSet::Permitted, &kept).map_err(to_io)?;
        Ok(())
    };
    step(weak, "drop capabilities", drop())?;
    step(
        weak,
        "set no_new_privs",
        nix::sys::prctl::set_no_new_privs().map_err(io::Error::from),
    )?;
    Ok(())
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
    /// `fcntl(fd, F_GETFD)` only.
    GetFd,
    /// Without `PROT_EXEC` in argument 2 (no new executable memory).
    NoExec,
}

/// The allow-list: (number, name, how, why).
const SYSCALLS: &[(libc::c_long, &str, Allow, &str)] = &[
    (
        libc::SYS_recvmsg,
        "recvmsg",
        Allow::OnSocket,
        "receive requests",
    ),
    (
        libc::SYS_sendmsg,
        "sendmsg",
        Allow::OnSocket,
        "send replies and donate fds (SCM_RIGHTS)",
    ),
    (
        libc::SYS_openat,
        "openat",
        Allow::OpenFlags,
        "re-open fids via /proc/self/fd, open dirs for getdents, create files",
    ),
    (
        libc::SYS_openat2,
        "openat2",
        Allow::Always,
        "walk one component with RESOLVE_BENEATH|NO_SYMLINKS (its flags sit in a struct, so seccomp cannot check them)",
    ),
    (
        libc::SYS_fcntl,
        "fcntl",
        Allow::GetFd,
        "F_GETFD only: std's debug check that an fd is open before close",
    ),
    (
        libc::SYS_close,
        "close",
        Allow::Always,
        "clunk fids, drop donated fds after sending",
    ),
    (
        libc::SYS_fstat,
        "fstat",
        Allow::Always,
        "stat fids (older libcs)",
    ),
    (
        libc::SYS_newfstatat,
        "newfstatat",
        Allow::Always,
        "stat fids (glibc implements fstat with it)",
    ),
    (libc::SYS_fstatfs, "fstatfs", Allow::Always, "statfs"),
    (
        libc::SYS_readlinkat,
        "readlinkat",
        Allow::Always,
        "readlink of a symlink fid",
    ),
    (
        libc::SYS_getdents64,
        "getdents64",
        Allow::Always,
        "getdents",
    ),
    (
        libc::SYS_lseek,
        "lseek",
        Allow::Always,
        "position a directory at a getdents cookie",
    ),
    (libc::SYS_fsync, "fsync", Allow::Always, "fsync"),
    (
        libc::SYS_fdatasync,
        "fdatasync",
        Allow::Always,
        "fsync with datasync",
    ),
    (libc::SYS_mkdirat, "mkdirat", Allow::Writable, "mkdir"),
    (
        libc::SYS_mknodat,
        "mknodat",
        Allow::Writable,
        "mknod (FIFO/socket only)",
    ),
    (
        libc::SYS_unlinkat,
        "unlinkat",
        Allow::Writable,
        "unlink/rmdir, and undoing a half-made create",
    ),
    (libc::SYS_renameat2, "renameat2", Allow::Writable, "rename"),
    (libc::SYS_linkat, "linkat", Allow::Writable, "link"),
    (libc::SYS_symlinkat, "symlinkat", Allow::Writable, "symlink"),
    (
        libc::SYS_fchownat,
        "fchownat",
        Allow::Writable,
        "owner of new files, setattr uid/gid",
    ),
    (
        libc::SYS_fchown,
        "fchown",
        Allow::Writable,
        "owner of a created file",
    ),
    (
        libc::SYS_fchmod,
        "fchmod",
        Allow::Writable,
        "restore set-id bits a chown cleared",
    ),
    (
        libc::SYS_fchmodat,
        "fchmodat",
        Allow::Writable,
        "setattr mode on kernels without fchmodat2",
    ),
    (
        libc::SYS_fchmodat2,
        "fchmodat2",
        Allow::Writable,
        "setattr mode on an O_PATH fd",
    ),
    (
        libc::SYS_utimensat,
        "utimensat",
        Allow::Writable,
        "setattr atime/mtime",
    ),
    (
        libc::SYS_ftruncate,
        "ftruncate",
        Allow::Writable,
        "setattr size",
    ),
    (libc::SYS_mmap, "mmap", Allow::Always, "memory allocator"),
    (
        libc::SYS_munmap,
        "munmap",
        Allow::Always,
        "memory allocator",
    ),
    (
        libc::SYS_mremap,
        "mremap",
        Allow::Always,
        "memory allocator (growing vectors)",
    ),
    (libc::SYS_brk, "brk", Allow::Always, "memory allocator"),
    (
        libc::SYS_mprotect,
        "mprotect",
        Allow::NoExec,
        "memory allocator growing a non-main arena (a gofer forked from a threaded process)",
    ),
    (
        libc::SYS_madvise,
        "madvise",
        Allow::Always,
        "memory allocator returning pages",
    ),
    (
        libc::SYS_futex,
        "futex",
        Allow::Always,
        "locks in std and tracing",
    ),
    (
        libc::SYS_write,
        "write",
        Allow::Always,
        "log lines to stderr",
    ),
    (
        libc::SYS_writev,
        "writev",
        Allow::Always,
        "log lines to stderr",
    ),
    (
        libc::SYS_clock_gettime,
        "clock_gettime",
        Allow::Always,
        "log timestamps when the vDSO is unavailable",
    ),
    (
        libc::SYS_rt_sigreturn,
        "rt_sigreturn",
        Allow::Always,
        "return from a signal handler",
    ),
    (
        libc::SYS_sigaltstack,
        "sigaltstack",
        Allow::Always,
        "std's stack-overflow handler setup/teardown",
    ),
    (libc::SYS_exit, "exit", Allow::Always, "thread exit"),
    (
        libc::SYS_exit_group,
        "exit_group",
        Allow::Always,
        "process exit when the sentry hangs up",
    ),
];

fn cond(
    arg: u8,
    op: SeccompCmpOp,
    val: u64,
) -> Result<SeccompCondition, seccompiler::BackendError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, val)
}

fn to_io<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::other(e.to_string())
}

/// Compiles the allow-list for a server talking on `sock`. Returns the program and the
/// names it allows (for the log).
pub fn seccomp_program(
    sock: BorrowedFd<'_>,
    readonly: bool,
) -> io::Result<(BpfProgram, Vec<&'static str>)> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut names = Vec::new();
    for &(nr, name, how, _why) in SYSCALLS {
        let r = match how {
            Allow::Always => vec![],
            Allow::Writable if readonly => continue,
            Allow::Writable => vec![],
            Allow::OnSocket => {
                vec![SeccompRule::new(vec![
                    cond(0, SeccompCmpOp::Eq, sock.as_raw_fd() as u64).map_err(to_io)?
                ])
                .map_err(to_io)?]
            }
            Allow::OpenFlags if readonly => {
                let forbidden = (libc::O_CREAT | libc::O_TRUNC | libc::O_ACCMODE) as u64;
                vec![SeccompRule::new(vec![
                    cond(2, SeccompCmpOp::MaskedEq(forbidden), 0).map_err(to_io)?
                ])
                .map_err(to_io)?]
            }
            Allow::OpenFlags => vec![],
            Allow::GetFd => {
                vec![SeccompRule::new(vec![
                    cond(1, SeccompCmpOp::Eq, libc::F_GETFD as u64).map_err(to_io)?
                ])
                .map_err(to_io)?]
            }
            Allow::NoExec => {
                let exec = libc::PROT_EXEC as u64;
                vec![SeccompRule::new(vec![
                    cond(2, SeccompCmpOp::MaskedEq(exec), 0).map_err(to_io)?
                ])
                .map_err(to_io)?]
            }
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

/// Descriptors the server needs after `isolate_mounts`.
pub struct Isolated {
    /// `O_PATH` descriptor of the served tree (now the namespace's `/`).
    pub root: OwnedFd,
    /// Directory descriptor of `/proc/self/fd`, opened before the switch.
    pub proc_fds: OwnedFd,
    /// `O_PATH` descriptors of the bind mount sources (read-only ones on a read-only
    /// bind of their own), with their read-only flags, in the order given.
    pub binds: Vec<(OwnedFd, bool)>,
}

/// Opens each bind mount source before the switch. With `own_mounts` (inside our
/// private namespace) each source is first bind-mounted onto itself, read-only for a
/// read-only one so the kernel refuses writes through its descriptor too, and
/// writable otherwise so a later read-only remount of the tree around it (a
/// read-only host root) does not reach it; that mount is detached from the tree at
/// once and lives on only through the descriptor.
fn open_binds(binds: &[crate::BindMount], own_mounts: bool) -> io::Result<Vec<(OwnedFd, bool)>> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let mut out = Vec::with_capacity(binds.len());
    for b in binds {
        let src = cpath(&b.src)?;
        if own_mounts {
            mount(
                Some(src.as_c_str()),
                src.as_c_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )?;
        }
        if own_mounts && b.readonly {
            mount(
                None::<&str>,
                src.as_c_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            )?;
        }
        // The runtime hands over a symlink-free path; a symlink found here now was
        // swapped in since, and is refused rather than followed.
        let fd = crate::host::openat(
            crate::host::at_fdcwd(),
            &src,
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
        )
        .and_then(|fd| {
            let kind = crate::host::fstat(fd.as_fd())?.mode & libc::S_IFMT;
            if kind == libc::S_IFDIR || kind == libc::S_IFREG {
                Ok(fd)
            } else {
                Err(nix::errno::Errno::EINVAL)
            }
        });
        if own_mounts {
            umount2(src.as_c_str(), MntFlags::MNT_DETACH)?;
        }
        let fd = fd.map_err(|e| {
            let why = if e == nix::errno::Errno::EINVAL {
                "neither a directory nor a regular file".to_string()
            } else {
                e.to_string()
            };
            io::Error::other(format!("bind mount source {}: {why}", b.src.display()))
        })?;
        info!(
            "gofer: serving bind mount {} -> {}{}",
            b.src.display(),
            b.dest,
            if b.readonly { " (ro)" } else { "" }
        );
        out.push((fd, b.readonly));
    }
    Ok(out)
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Makes the calling (single-threaded) process's new mount namespace (the caller
/// unshared it) rooted at `root`, and returns the descriptors the server needs.
fn isolate_mounts(root: &Path, binds: &[crate::BindMount], readonly: bool) -> io::Result<Isolated> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let proc_fds = open_proc_fds()?;
    // Nothing we do below may propagate back to the host's mounts.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    let binds = open_binds(binds, true)?;
    if std::fs::canonicalize(root)? == Path::new("/") {
        return isolate_host_root(readonly, proc_fds, binds);
    }
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
    Ok(Isolated {
        root,
        proc_fds,
        binds,
    })
}

/// The served root is the host's own `/` (`rvisor do`): pivot_root cannot move a
/// root onto itself, and there is nothing outside it to hide, so the gofer keeps its
/// private mount namespace, makes it read-only when asked, and detaches the host's
/// kernel filesystems (`/proc`, `/sys`, `/dev`) so no walk can reach host processes
/// or devices through them. The sentry puts its own filesystems there.
fn isolate_host_root(
    readonly: bool,
    proc_fds: OwnedFd,
    binds: Vec<(OwnedFd, bool)>,
) -> io::Result<Isolated> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    for kernel_fs in ["/proc", "/sys", "/dev"] {
        match umount2(kernel_fs, MntFlags::MNT_DETACH) {
            // EINVAL: not a mount point here; ENOENT: absent. Both leave nothing to hide.
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if readonly {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )?;
    }
    nix::unistd::chdir("/")?;
    let root = open_root(Path::new("/"))?;
    Ok(Isolated {
        root,
        proc_fds,
        binds,
    })
}

/// Confines the calling process as `opts` says and returns the server for `root`,
/// ready to [`Server::run`] on `sock`. Call it from a single-threaded process.
pub fn confine(
    root: &Path,
    sock: BorrowedFd<'_>,
    readonly: bool,
    opts: ConfineOptions,
) -> io::Result<Server> {
    confine_with_binds(root, &[], sock, readonly, opts)
}

/// [`confine`], also serving the spec's bind mounts `binds` (attach points 0.. in
/// this order). The server may write only if the root or some bind is writable.
pub fn confine_with_binds(
    root: &Path,
    binds: &[crate::BindMount],
    sock: BorrowedFd<'_>,
    readonly: bool,
    opts: ConfineOptions,
) -> io::Result<Server> {
    // The gofer holds host file handles and reads host files: a crash must leave no
    // core file behind, nor hand its memory to the host's core-dump helper.
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)?;
    let own_mounts = opts.mount_namespace
        && step(
            opts.weak,
            "unshare(CLONE_NEWNS)",
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(io::Error::from),
        )?;
    let server = if own_mounts {
        let iso = isolate_mounts(root, binds, readonly).map_err(|e| {
            io::Error::new(e.kind(), format!("sandbox confinement: gofer mounts: {e}"))
        })?;
        Server::from_parts(iso.root, iso.proc_fds, readonly).with_binds(iso.binds)
    } else {
        Server::new(root, readonly)?.with_binds(open_binds(binds, false)?)
    };
    let readonly = readonly && binds.iter().all(|b| b.readonly);
    if opts.drop_privileges {
        drop_privileges(if readonly { KEPT_CAPS_RO } else { KEPT_CAPS }, opts.weak)?;
    }
    if opts.seccomp {
        let (prog, names) = seccomp_program(sock, readonly)?;
        info!("gofer: seccomp allow-list: {}", names.join(" "));
        install_seccomp(&prog)?;
    }
    Ok(server)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::{Read, Write};
    use std::os::fd::{AsFd, OwnedFd};
    use std::path::PathBuf;

    use nix::errno::Errno;
    use nix::sys::signal::Signal;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult, Pid};

    use super::*;
    use crate::{host, Client, SetAttr, SetTime};

    /// Runs `f` in a forked child that exits with its return value (or 99 on panic).
    fn in_child(f: impl FnOnce() -> i32) -> Pid {
        // SAFETY: the child only runs `f` and then `_exit`s, never returning into the
        // test harness; glibc keeps malloc usable in the child of a threaded parent.
        match unsafe { fork() }.unwrap() {
            ForkResult::Parent { child } => child,
            ForkResult::Child => {
                // Children here die of SIGSYS on purpose: no core file, whatever the
                // caller's RLIMIT_CORE, and so no core bit in the wait status.
                let _ =
                    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(99);
                // SAFETY: _exit ends the child at once, skipping the harness's atexit work.
                unsafe { libc::_exit(code) }
            }
        }
    }

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap()
    }

    #[test]
    fn forbidden_syscalls_are_killed_with_sigsys() {
        let (a, _b) = pair();
        let (prog, names) = seccomp_program(a.as_fd(), false).unwrap();
        assert!(names.contains(&"openat2") && !names.contains(&"socket"));
        // socket(2) is not on the list.
        let pid = in_child(|| {
            if install_seccomp(&prog).is_err() {
                return 2;
            }
            // SAFETY: a plain syscall with integer arguments.
            unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0) };
            3
        });
        assert_eq!(
            waitpid(pid, None).unwrap(),
            WaitStatus::Signaled(pid, Signal::SIGSYS, false)
        );
        // execve neither.
        let pid = in_child(|| {
            if install_seccomp(&prog).is_err() {
                return 2;
            }
            // SAFETY: execve with valid NUL-terminated strings and null argv/envp.
            unsafe { libc::execve(c"/bin/true".as_ptr(), std::ptr::null(), std::ptr::null()) };
            3
        });
        assert_eq!(
            waitpid(pid, None).unwrap(),
            WaitStatus::Signaled(pid, Signal::SIGSYS, false)
        );
        // sendmsg on any socket but the sentry's.
        let (ro_prog, ro_names) = seccomp_program(a.as_fd(), true).unwrap();
        assert!(!ro_names.contains(&"mkdirat"));
        let (x, _y) = pair();
        let pid = in_child(|| {
            if install_seccomp(&prog).is_err() {
                return 2;
            }
            let _ = host::send_frame(x.as_fd(), b"hi", None);
            3
        });
        assert_eq!(
            waitpid(pid, None).unwrap(),
            WaitStatus::Signaled(pid, Signal::SIGSYS, false)
        );
        // A read-only gofer may not mkdir, nor open for writing.
        let pid = in_child(|| {
            if install_seccomp(&ro_prog).is_err() {
                return 2;
            }
            let _ = host::mkdirat(host::at_fdcwd(), c"/nonexistent-gofer-dir", 0o755);
            3
        });
        assert_eq!(
            waitpid(pid, None).unwrap(),
            WaitStatus::Signaled(pid, Signal::SIGSYS, false)
        );
        let pid = in_child(|| {
            if install_seccomp(&ro_prog).is_err() {
                return 2;
            }
            let _ = host::openat(
                host::at_fdcwd(),
                c"/nonexistent-gofer-file",
                libc::O_WRONLY,
                0,
            );
            3
        });
        assert_eq!(
            waitpid(pid, None).unwrap(),
            WaitStatus::Signaled(pid, Signal::SIGSYS, false)
        );
        // Allowed calls go through: the child exits normally.
        let pid = in_child(|| {
            if install_seccomp(&ro_prog).is_err() {
                return 2;
            }
            match host::openat(host::at_fdcwd(), c"/", libc::O_PATH, 0) {
                Ok(_) => 0,
                Err(_) => 4,
            }
        });
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Exited(pid, 0));
    }

    fn scratch(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("gofer-confine-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(p.join("dir")).unwrap();
        fs::write(p.join("file.txt"), b"confined").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", p.join("abs_link")).unwrap();
        p
    }

    /// Starts a fully confined gofer (mount namespace + seccomp) in a child process.
    fn confined_child(root: PathBuf, readonly: bool) -> (Client, Pid) {
        confined_child_with(root, Vec::new(), readonly)
    }

    fn confined_child_with(
        root: PathBuf,
        binds: Vec<crate::BindMount>,
        readonly: bool,
    ) -> (Client, Pid) {
        let (a, b) = pair();
        let pid = in_child(|| {
            // The child must not keep the sentry's end open, or it never sees the hangup.
            // Closing by number is fine: the child `_exit`s without dropping `a`.
            let _ = nix::unistd::close(std::os::fd::AsRawFd::as_raw_fd(&a));
            // Nor any other test's sockets (tests run in threads; a fork copies every
            // fd of the process): each would keep another server from its hangup.
            let keep = std::os::fd::AsRawFd::as_raw_fd(&b);
            for fd in 3..4096 {
                if fd != keep {
                    let _ = nix::unistd::close(fd);
                }
            }
            let Ok(b) = b.try_clone() else { return 14 };
            let opts = ConfineOptions::default();
            let server = match confine_with_binds(&root, &binds, b.as_fd(), readonly, opts) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("confine failed: {e}");
                    return 10;
                }
            };
            // Inside, the host's files are gone and the tree is "/".
            if host::openat(host::at_fdcwd(), c"/etc/passwd", libc::O_PATH, 0).err()
                != Some(Errno::ENOENT)
            {
                return 11;
            }
            if host::openat(host::at_fdcwd(), c"/file.txt", libc::O_PATH, 0).is_err() {
                return 12;
            }
            match server.run(b) {
                Ok(()) => 0,
                Err(_) => 13,
            }
        });
        drop(b);
        match Client::new(a) {
            Ok(c) => (c, pid),
            Err(e) => panic!("handshake: {e}; the child: {:?}", waitpid(pid, None)),
        }
    }

    #[test]
    fn confined_server_serves_every_operation() {
        let root = scratch("rw");
        let (c, pid) = confined_child(root.clone(), false);
        let (r, _) = c.attach().unwrap();
        let f = c.walk(r, &[b"file.txt"]).unwrap()[0].0;
        let mut s = String::new();
        fs::File::from(c.open(f, libc::O_RDONLY).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "confined");
        let l = c.walk(r, &[b"abs_link", b"x"]).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(c.readlink(l[0].0).unwrap(), b"/etc/passwd");
        assert_eq!(c.getdents(r, 0, 4096).unwrap().len(), 3);
        c.statfs(r).unwrap();
        let (nf, _, fd) = c.create(r, b"new", libc::O_RDWR, 0o600, 1, 2).unwrap();
        fs::File::from(fd).write_all(b"abc").unwrap();
        let (d, _) = c.mkdir(r, b"d", 0o700, 3, 4).unwrap();
        c.mknod(d, b"p", libc::S_IFIFO | 0o600, 5, 6).unwrap();
        c.symlink(d, b"s", b"../new", 7, 8).unwrap();
        c.link(nf, d, b"h").unwrap();
        c.rename(r, b"new", r, b"file.txt", libc::RENAME_EXCHANGE)
            .unwrap();
        c.rename(r, b"file.txt", d, b"h", libc::RENAME_NOREPLACE)
            .unwrap_err();
        let attr = SetAttr {
            mode: Some(0o2755),
            uid: Some(9),
            gid: Some(10),
            size: Some(2),
            atime: SetTime::Now,
            mtime: SetTime::At(12345, 0),
        };
        c.setattr(nf, &attr).unwrap();
        c.fsync(nf, false).unwrap();
        c.fsync(d, true).unwrap();
        for n in [&b"p"[..], b"s", b"h"] {
            c.unlink(d, n, 0).unwrap();
        }
        c.unlink(r, b"d", libc::AT_REMOVEDIR).unwrap();
        c.clunk(f).unwrap();
        // Check the results from the host side.
        let m = fs::metadata(root.join("file.txt")).unwrap();
        assert_eq!(
            (m.len(), std::os::unix::fs::MetadataExt::mtime(&m)),
            (2, 12345)
        );
        assert_eq!(fs::read(root.join("new")).unwrap(), b"confined");
        assert!(!root.join("d").exists());
        drop(c);
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Exited(pid, 0));
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn confined_readonly_server() {
        let root = scratch("ro");
        let (c, pid) = confined_child(root.clone(), true);
        let (r, _) = c.attach().unwrap();
        let f = c.walk(r, &[b"file.txt"]).unwrap()[0].0;
        let mut s = String::new();
        fs::File::from(c.open(f, libc::O_RDONLY).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "confined");
        assert_eq!(c.open(f, libc::O_RDWR).err(), Some(Errno::EROFS));
        assert_eq!(c.mkdir(r, b"d", 0o700, 0, 0), Err(Errno::EROFS));
        assert_eq!(c.getdents(r, 0, 4096).unwrap().len(), 3);
        drop(c);
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Exited(pid, 0));
        // The host's own mounts were not touched by the child's namespace.
        assert!(fs::metadata("/etc/passwd").is_ok());
        let _ = fs::remove_dir_all(&root);
    }

    /// A fully confined gofer serving a read-only root plus a writable and a
    /// read-only bind mount from outside it: the writable one takes writes (the
    /// seccomp list allows them), the read-only one is refused even by the kernel.
    #[test]
    fn confined_server_with_bind_mounts() {
        let root = scratch("binds-root");
        let rw = scratch("binds-rw");
        let ro = scratch("binds-ro");
        let binds = vec![
            crate::BindMount::parse(&format!("/rw={}", rw.display())).unwrap(),
            crate::BindMount::parse(&format!("/ro={}:ro", ro.display())).unwrap(),
            crate::BindMount::parse(&format!("/f={}:ro", ro.join("file.txt").display())).unwrap(),
        ];
        let (c, pid) = confined_child_with(root.clone(), binds, true);
        let (r, _) = c.attach().unwrap();
        assert_eq!(c.mkdir(r, b"d", 0o700, 0, 0), Err(Errno::EROFS));
        let (w, _) = c.attach_mount(0).unwrap();
        c.mkdir(w, b"made", 0o700, 0, 0).unwrap();
        let (o, _) = c.attach_mount(1).unwrap();
        assert_eq!(c.mkdir(o, b"d", 0o700, 0, 0), Err(Errno::EROFS));
        let (f, st) = c.attach_mount(2).unwrap();
        assert_eq!(st.mode & libc::S_IFMT, libc::S_IFREG);
        let mut s = String::new();
        fs::File::from(c.open(f, libc::O_RDONLY).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "confined");
        drop(c);
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Exited(pid, 0));
        assert!(rw.join("made").is_dir());
        assert!(!ro.join("d").exists() && !root.join("d").exists());
        for p in [root, rw, ro] {
            let _ = fs::remove_dir_all(&p);
        }
    }
}
