//! Confining the gofer process before it serves.
//!
//! Two layers:
//! - **Mount namespace** (`isolate_mounts`): a private mount namespace whose root is
//!   a recursive bind mount of the served tree (`pivot_root`, old root detached), so
//!   even a bug in the server cannot name a host path outside it. No host descriptor
//!   is kept but the root's and the bind mount sources' (no `/proc`: its
//!   `/proc/1/root` is the whole host; the server re-opens fids through their parent
//!   directories). A read-only bind mount is made read-only with every mount under
//!   it (an `rbind` serves the host's submounts, `rro` as runc).
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

use crate::server::{open_root, Bind, Server};

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
    /// Only on the sentry socket (argument 0), with no flag (argument 2) outside the
    /// mask.
    OnSocket(u32),
    /// Only when serving read-write.
    Writable,
    /// `openat` as the server uses it: read-write servers need `O_CREAT`, read-only
    /// ones may only open without write access or creation.
    OpenFlags,
    /// Without `PROT_EXEC` in argument 2 (no new executable memory).
    NoExec,
    /// When every `(arg, mask, value)` of one alternative holds:
    /// `(arg & mask) == value` on the argument's low 32 bits.
    Masked(&'static [&'static [(u8, u32, u32)]]),
    /// [`Allow::Masked`], and only when serving read-write.
    WritableMasked(&'static [&'static [(u8, u32, u32)]]),
}

/// Futex commands without `FUTEX_PRIVATE_FLAG` and `FUTEX_CLOCK_REALTIME`.
const FUTEX_CMD: u32 = !((libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME) as u32);
const S_IFMT: u32 = libc::S_IFMT;

/// The allow-list: (number, name, how, why).
const SYSCALLS: &[(libc::c_long, &str, Allow, &str)] = &[
    (
        libc::SYS_recvmsg,
        "recvmsg",
        Allow::OnSocket(libc::MSG_CMSG_CLOEXEC as u32),
        "receive requests: on the sentry socket, MSG_CMSG_CLOEXEC only",
    ),
    (
        libc::SYS_sendmsg,
        "sendmsg",
        Allow::OnSocket(libc::MSG_NOSIGNAL as u32),
        "send replies and donate fds (SCM_RIGHTS): on the sentry socket, MSG_NOSIGNAL only",
    ),
    (
        libc::SYS_openat,
        "openat",
        Allow::OpenFlags,
        "re-open fids through their parent directory, open dirs for getdents, create files",
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
        Allow::Masked(&[
            &[(1, u32::MAX, libc::F_GETFD as u32)],
            &[(1, u32::MAX, libc::F_DUPFD_CLOEXEC as u32)],
            &[(1, u32::MAX, libc::F_SETFL as u32)],
        ]),
        "F_GETFD (std's debug check before close), F_DUPFD_CLOEXEC (a bind source's descriptors for each attach and open), F_SETFL (clearing the O_NONBLOCK a re-open is made with): no F_SETOWN, locks or leases",
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
        Allow::WritableMasked(&[&[(2, S_IFMT, libc::S_IFIFO)], &[(2, S_IFMT, libc::S_IFSOCK)]]),
        "mknod of a FIFO or a socket only: never a device node, even from a compromised gofer",
    ),
    (
        libc::SYS_unlinkat,
        "unlinkat",
        Allow::WritableMasked(&[&[(2, !(libc::AT_REMOVEDIR as u32), 0)]]),
        "unlink/rmdir, and undoing a half-made create (AT_REMOVEDIR the only flag)",
    ),
    (
        libc::SYS_renameat2,
        "renameat2",
        Allow::WritableMasked(&[&[(4, !(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE), 0)]]),
        "rename: RENAME_NOREPLACE/EXCHANGE only (no RENAME_WHITEOUT)",
    ),
    (
        libc::SYS_linkat,
        "linkat",
        Allow::WritableMasked(&[&[(4, u32::MAX, libc::AT_EMPTY_PATH as u32)]]),
        "link of a held fid (AT_EMPTY_PATH exactly: never following a path)",
    ),
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
        libc::SYS_fgetxattr,
        "fgetxattr",
        Allow::Always,
        "getxattr of a fid, on a verified re-open (no call takes an O_PATH descriptor)",
    ),
    (
        libc::SYS_flistxattr,
        "flistxattr",
        Allow::Always,
        "listxattr of a fid, on a verified re-open",
    ),
    (
        libc::SYS_fsetxattr,
        "fsetxattr",
        Allow::WritableMasked(&[&[(4, !3, 0)]]),
        "setxattr of a fid on a verified re-open: XATTR_CREATE/XATTR_REPLACE the only flags",
    ),
    (
        libc::SYS_fremovexattr,
        "fremovexattr",
        Allow::Writable,
        "removexattr of a fid, on a verified re-open",
    ),
    (
        libc::SYS_ftruncate,
        "ftruncate",
        Allow::Writable,
        "setattr size; O_TRUNC, applied once a re-open is verified",
    ),
    (
        libc::SYS_mmap,
        "mmap",
        Allow::NoExec,
        "memory allocator: never executable",
    ),
    (
        libc::SYS_munmap,
        "munmap",
        Allow::Always,
        "memory allocator",
    ),
    (
        libc::SYS_mremap,
        "mremap",
        Allow::Masked(&[&[(3, !(libc::MREMAP_MAYMOVE as u32), 0)]]),
        "memory allocator (growing vectors): MREMAP_MAYMOVE the only flag",
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
        Allow::Masked(&[
            &[(2, u32::MAX, libc::MADV_DONTNEED as u32)],
            &[(2, u32::MAX, libc::MADV_FREE as u32)],
        ]),
        "memory allocator returning pages: MADV_DONTNEED/FREE only (no HWPOISON)",
    ),
    (
        libc::SYS_futex,
        "futex",
        Allow::Masked(&[
            &[(1, FUTEX_CMD, libc::FUTEX_WAIT as u32)],
            &[(1, FUTEX_CMD, libc::FUTEX_WAKE as u32)],
            &[(1, FUTEX_CMD, libc::FUTEX_WAIT_BITSET as u32)],
            &[(1, FUTEX_CMD, libc::FUTEX_WAKE_BITSET as u32)],
        ]),
        "locks in std and tracing: WAIT/WAKE(_BITSET) only, no requeue or PI",
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
    seccomp_program_with_upper(sock, readonly, None)
}

/// [`seccomp_program`] for a server that also makes unnamed upper-layer files
/// (`--overlay=self`) in directory `upper`: a read-only server's `openat` is then
/// also allowed with exactly [`crate::server::UPPER_FILE_FLAGS`] on that descriptor
/// (a writable server's `openat` is unrestricted already). `O_TMPFILE` makes a
/// file that has no name, so even a compromised gofer gains no way to change or
/// read anything by it: it can only use disk space (as the sentry's writes do).
pub fn seccomp_program_with_upper(
    sock: BorrowedFd<'_>,
    readonly: bool,
    upper: Option<BorrowedFd<'_>>,
) -> io::Result<(BpfProgram, Vec<&'static str>)> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut names = Vec::new();
    for &(nr, name, how, _why) in SYSCALLS {
        let r = match how {
            Allow::Always => vec![],
            Allow::Writable if readonly => continue,
            Allow::Writable => vec![],
            Allow::OnSocket(flags) => {
                vec![SeccompRule::new(vec![
                    cond(0, SeccompCmpOp::Eq, sock.as_raw_fd() as u64).map_err(to_io)?,
                    cond(2, SeccompCmpOp::MaskedEq(u64::from(!flags)), 0).map_err(to_io)?,
                ])
                .map_err(to_io)?]
            }
            Allow::WritableMasked(_) if readonly => continue,
            Allow::Masked(alts) | Allow::WritableMasked(alts) => alts
                .iter()
                .map(|alt| {
                    let conds = alt
                        .iter()
                        .map(|&(arg, mask, val)| {
                            cond(arg, SeccompCmpOp::MaskedEq(u64::from(mask)), u64::from(val))
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(to_io)?;
                    SeccompRule::new(conds).map_err(to_io)
                })
                .collect::<io::Result<Vec<_>>>()?,
            Allow::OpenFlags if readonly => {
                let forbidden = (libc::O_CREAT | libc::O_TRUNC | libc::O_ACCMODE) as u64;
                let mut r =
                    vec![SeccompRule::new(vec![
                        cond(2, SeccompCmpOp::MaskedEq(forbidden), 0).map_err(to_io)?
                    ])
                    .map_err(to_io)?];
                if let Some(u) = upper {
                    // why: --overlay=self, a new unnamed file for the sentry's upper
                    // layer, only in the upper directory and only with these flags.
                    r.push(
                        SeccompRule::new(vec![
                            cond(0, SeccompCmpOp::Eq, u.as_raw_fd() as u64).map_err(to_io)?,
                            cond(
                                2,
                                SeccompCmpOp::Eq,
                                crate::server::UPPER_FILE_FLAGS as u32 as u64,
                            )
                            .map_err(to_io)?,
                        ])
                        .map_err(to_io)?,
                    );
                }
                r
            }
            Allow::OpenFlags => vec![],
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
    /// The bind mount sources (read-only ones on a read-only bind of their own), in
    /// the order given.
    pub binds: Vec<Bind>,
}

/// Takes each bind mount source as a descriptor: the one the runtime opened and
/// passed (`fd`), else opened here once from `src` with [`crate::open_bind_source`]
/// (no symlink followed). It is never resolved by path again. With `own_mounts` each
/// becomes a detached bind mount of its own (`open_tree`), read-only for a read-only
/// one so the kernel refuses writes through its descriptors too, and writable
/// otherwise so a later read-only remount of the tree around it (a read-only host
/// root) does not reach it. Call it before leaving the runtime's mount namespace: a
/// mount can only be cloned from the namespace it is in.
fn open_binds(binds: &[crate::BindMount], own_mounts: bool) -> io::Result<Vec<Bind>> {
    let mut out = Vec::with_capacity(binds.len());
    for b in binds {
        let fd = match b.fd {
            Some(n) => crate::host::take_inherited(n).map_err(|e| {
                io::Error::other(format!(
                    "bind mount source {} (fd {n}): {e}",
                    b.src.display()
                ))
            })?,
            None => crate::open_bind_source(&b.src)?,
        };
        let kind = crate::host::fstat(fd.as_fd())?.mode & libc::S_IFMT;
        if kind != libc::S_IFDIR && kind != libc::S_IFREG {
            return Err(io::Error::other(format!(
                "bind mount source {}: neither a directory nor a regular file",
                b.src.display()
            )));
        }
        let fd = if own_mounts {
            let tree = crate::host::clone_tree(fd.as_fd(), b.recursive).map_err(|e| {
                io::Error::other(format!(
                    "bind mount source {}: open_tree: {e}",
                    b.src.display()
                ))
            })?;
            if b.readonly {
                crate::host::make_mount_readonly(tree.as_fd())?;
            }
            tree
        } else {
            fd
        };
        info!(
            "gofer: serving bind mount {} -> {}{}",
            b.src.display(),
            b.dest,
            if b.readonly { " (ro)" } else { "" }
        );
        out.push(Bind::open(fd, b.readonly)?);
    }
    Ok(out)
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Makes the calling (single-threaded) process's new mount namespace (the caller
/// unshared it) rooted at `root`, with the bind mount sources `binds` already taken as
/// descriptors (cloned from the runtime's namespace before the unshare), and returns the
/// descriptors the server needs.
fn isolate_mounts(root: &Path, binds: Vec<Bind>, readonly: bool) -> io::Result<Isolated> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    // Nothing we do below may propagate back to the host's mounts.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    if std::fs::canonicalize(root)? == Path::new("/") {
        return isolate_host_root(readonly, binds);
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
    Ok(Isolated { root, binds })
}

/// The served root is the host's own `/` (`rvisor do`): pivot_root cannot move a
/// root onto itself, and there is nothing outside it to hide, so the gofer keeps its
/// private mount namespace, makes it read-only when asked, and detaches the host's
/// kernel filesystems (`/proc`, `/sys`, `/dev`) so no walk can reach host processes
/// or devices through them. The sentry puts its own filesystems there.
fn isolate_host_root(readonly: bool, binds: Vec<Bind>) -> io::Result<Isolated> {
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
    Ok(Isolated { root, binds })
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
    confine_with_upper(root, binds, sock, readonly, opts, None)
}

/// [`confine_with_binds`], also making unnamed files for the sentry's overlay upper
/// layer (`--overlay=self`) in directory `upper` (a descriptor the runtime opened
/// on the rootfs outside this mount namespace, so writable though the served tree
/// is read-only). One such file is made once confinement is done but for seccomp:
/// if the host refuses it (a filesystem without `O_TMPFILE`, no permission), the
/// gofer serves without an upper directory (the sentry then keeps the upper layer
/// in memory) and says so in its log.
pub fn confine_with_upper(
    root: &Path,
    binds: &[crate::BindMount],
    sock: BorrowedFd<'_>,
    readonly: bool,
    opts: ConfineOptions,
    upper: Option<OwnedFd>,
) -> io::Result<Server> {
    // The gofer holds host file handles and reads host files: a crash must leave no
    // core file behind, nor hand its memory to the host's core-dump helper.
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)?;
    let own_mounts = if opts.mount_namespace {
        // The sources are cloned as detached mounts while the runtime's namespace is
        // still ours (open_tree cannot clone a mount of another namespace).
        let opened = open_binds(binds, true)?;
        let unshared = step(
            opts.weak,
            "unshare(CLONE_NEWNS)",
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(io::Error::from),
        )?;
        Some((opened, unshared))
    } else {
        None
    };
    let server = match own_mounts {
        Some((opened, true)) => {
            let iso = isolate_mounts(root, opened, readonly).map_err(|e| {
                io::Error::new(e.kind(), format!("sandbox confinement: gofer mounts: {e}"))
            })?;
            Server::from_parts(iso.root, readonly).with_binds(iso.binds)
        }
        Some((opened, false)) => Server::new(root, readonly)?.with_binds(opened),
        None => Server::new(root, readonly)?.with_binds(open_binds(binds, false)?),
    };
    let readonly = readonly && binds.iter().all(|b| b.readonly);
    if opts.drop_privileges {
        drop_privileges(if readonly { KEPT_CAPS_RO } else { KEPT_CAPS }, opts.weak)?;
    }
    let upper = upper.filter(|u| {
        match crate::host::openat(u.as_fd(), c".", crate::server::UPPER_FILE_FLAGS, 0o600) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!("gofer: cannot make upper-layer files in the rootfs ({e}): the sentry keeps its upper layer in memory");
                false
            }
        }
    });
    let server = server.with_upper(upper);
    if opts.seccomp {
        let (prog, names) = seccomp_program_with_upper(sock, readonly, server.upper_fd())?;
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

    /// A read-only gofer with an upper directory may make unnamed files there, with
    /// exactly the upper-file flags, and nothing else: not in another directory, not
    /// a named file, not a write-open of a file.
    #[test]
    fn a_read_only_gofer_makes_upper_files_only_in_its_upper_directory() {
        let (a, _b) = pair();
        let dir = std::env::temp_dir().join(format!("rvisor-upper-seccomp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("other")).unwrap();
        fs::write(dir.join("f"), b"x").unwrap();
        let open_dir = |p: &Path| {
            let c = CString::new(p.as_os_str().as_bytes()).unwrap();
            host::openat(host::at_fdcwd(), &c, libc::O_PATH | libc::O_DIRECTORY, 0).unwrap()
        };
        let upper = open_dir(&dir);
        let other = open_dir(&dir.join("other"));
        let (prog, _) = seccomp_program_with_upper(a.as_fd(), true, Some(upper.as_fd())).unwrap();
        let flags = crate::server::UPPER_FILE_FLAGS;
        let allowed = in_child(|| {
            if install_seccomp(&prog).is_err() {
                return 2;
            }
            match host::openat(upper.as_fd(), c".", flags, 0o600) {
                Ok(_) => 0,
                Err(_) => 3,
            }
        });
        assert_eq!(
            waitpid(allowed, None).unwrap(),
            WaitStatus::Exited(allowed, 0)
        );
        let attempts: [(&OwnedFd, &std::ffi::CStr, i32); 3] = [
            (&other, c".", flags),
            (
                &upper,
                c"named",
                libc::O_CREAT | libc::O_RDWR | libc::O_CLOEXEC,
            ),
            (&upper, c"f", libc::O_RDWR | libc::O_CLOEXEC),
        ];
        for (d, name, fl) in attempts {
            let pid = in_child(|| {
                if install_seccomp(&prog).is_err() {
                    return 2;
                }
                let _ = host::openat(d.as_fd(), name, fl, 0o600);
                3
            });
            assert_eq!(
                waitpid(pid, None).unwrap(),
                WaitStatus::Signaled(pid, Signal::SIGSYS, false),
                "{name:?} {fl:#x}"
            );
        }
        assert!(!dir.join("named").exists());
        let _ = fs::remove_dir_all(&dir);
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
        // A device node, never (even to a read-write gofer), nor F_SETOWN.
        for probe in [
            (|| {
                let _ = host::mknodat(
                    host::at_fdcwd(),
                    c"/nonexistent-gofer-dev",
                    libc::S_IFCHR | 0o600,
                );
            }) as fn(),
            || {
                // SAFETY: fcntl with integer arguments.
                unsafe { libc::fcntl(0, libc::F_SETOWN, 1) };
            },
        ] {
            let pid = in_child(|| {
                if install_seccomp(&prog).is_err() {
                    return 2;
                }
                probe();
                3
            });
            assert_eq!(
                waitpid(pid, None).unwrap(),
                WaitStatus::Signaled(pid, Signal::SIGSYS, false)
            );
        }
        // A FIFO may be made.
        let fifo = std::env::temp_dir().join(format!("gofer-fifo-{}", std::process::id()));
        let cfifo = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        let pid = in_child(|| {
            if install_seccomp(&prog).is_err() {
                return 2;
            }
            match host::mknodat(host::at_fdcwd(), &cfifo, libc::S_IFIFO | 0o600) {
                Ok(()) => 0,
                Err(_) => 4,
            }
        });
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Exited(pid, 0));
        let _ = fs::remove_file(&fifo);
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
            let bind_fds: Vec<i32> = binds.iter().filter_map(|m| m.fd).collect();
            for fd in 3..4096 {
                if fd != keep && !bind_fds.contains(&fd) {
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
            // And no descriptor of the gofer reaches a procfs (whose /proc/1/root
            // would be the whole host).
            for fd in 0..1024 {
                // SAFETY: a valid fd number or EBADF; fd stays open while borrowed.
                let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                if let Ok(st) = nix::sys::statfs::fstatfs(bfd) {
                    if st.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC {
                        return 15;
                    }
                }
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
        // A plain rename (flags 0) and back.
        c.rename(d, b"p", d, b"p2", 0).unwrap();
        c.rename(d, b"p2", d, b"p", 0).unwrap();
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

    /// The README's allow-list table states the gofer's rows and how many carry
    /// argument filters, read-write and read-only.
    #[test]
    fn readme_states_the_gofer_list_sizes() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("README.md");
        for (readonly, name) in [(false, "read-write"), (true, "read-only")] {
            let rows = SYSCALLS
                .iter()
                .filter(|r| {
                    !(readonly && matches!(r.2, Allow::Writable | Allow::WritableMasked(_)))
                })
                .collect::<Vec<_>>();
            let filtered = rows
                .iter()
                .filter(|r| !matches!(r.2, Allow::Always | Allow::Writable))
                .filter(|r| readonly || !matches!(r.2, Allow::OpenFlags))
                .count();
            let (_, names) = seccomp_program(std::io::stdin().as_fd(), readonly).unwrap();
            assert_eq!(names.len(), rows.len());
            let line = format!("| gofer, {name} | {} | {filtered} |", rows.len());
            assert!(readme.contains(&line), "README.md lacks the line {line:?}");
        }
    }

    /// The runtime opens a bind source once and passes the descriptor; a symlink
    /// swapped into the source's path afterwards (here: its parent directory replaced
    /// by a link to another tree) is never followed: the gofer serves what the
    /// descriptor names. Opening the swapped path again is refused outright.
    #[test]
    fn bind_source_swapped_for_a_symlink_after_the_checks_is_not_served() {
        let base = scratch("swap");
        for (dir, text) in [("parent/data", "good"), ("evil/data", "evil")] {
            fs::create_dir_all(base.join(dir)).unwrap();
            fs::write(base.join(dir).join("file.txt"), text).unwrap();
        }
        let src = base.join("parent/data");
        // The runtime's checks and its single open.
        let checked = fs::canonicalize(&src).unwrap();
        let fd = crate::open_bind_source(&checked).unwrap();
        // The swap: the parent is now a symlink to the attacker's tree.
        fs::rename(base.join("parent"), base.join("parent.old")).unwrap();
        std::os::unix::fs::symlink(base.join("evil"), base.join("parent")).unwrap();
        assert_eq!(fs::read_to_string(src.join("file.txt")).unwrap(), "evil");
        // Resolving the path again is refused, not followed.
        assert!(crate::open_bind_source(&checked).is_err());
        let fd_num = std::os::fd::IntoRawFd::into_raw_fd(fd);
        let mut bind = crate::BindMount::parse(&format!("/data={}:ro", checked.display())).unwrap();
        bind.fd = Some(fd_num);
        let (c, pid) = confined_child_with(base.clone(), vec![bind], true);
        // SAFETY: the parent's copy of the passed descriptor, closed once here.
        unsafe { libc::close(fd_num) };
        let (m, _) = c.attach_mount(0).unwrap();
        let f = c.walk(m, &[b"file.txt"]).unwrap()[0].0;
        let mut s = String::new();
        fs::File::from(c.open(f, libc::O_RDONLY).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "good");
        drop(c);
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Exited(pid, 0));
        // A gofer given only the path (no descriptor) refuses it too.
        let bind = crate::BindMount::parse(&format!("/data={}:ro", checked.display())).unwrap();
        let (a, _b) = pair();
        let pid = in_child(|| {
            match confine_with_binds(
                &base.join("dir"),
                &[bind],
                a.as_fd(),
                true,
                ConfineOptions::default(),
            ) {
                Ok(_) => 0,
                Err(_) => 7,
            }
        });
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Exited(pid, 7));
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn mount_flag_carries_the_source_descriptor() {
        let b = crate::BindMount::parse("/d=/some/src:ro").unwrap();
        assert_eq!((b.readonly, b.fd), (true, None));
        let back = crate::BindMount::parse(b.arg_with_fd(7).to_str().unwrap()).unwrap();
        assert_eq!(back.fd, Some(7));
        assert_eq!(
            (
                back.dest.as_str(),
                back.src.to_str().unwrap(),
                back.readonly
            ),
            ("/d", "/some/src", true)
        );
        let rw = crate::BindMount::parse("/d=/a:b:rw:fd=12").unwrap();
        assert_eq!(
            (rw.src.to_str().unwrap(), rw.readonly, rw.fd),
            ("/a:b", false, Some(12))
        );
    }
}
