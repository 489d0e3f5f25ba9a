//! Starting a stub process, shared by the backends that run application code in one
//! (ptrace, systrap): the sealed memfd its image lives in, and the steps a freshly
//! forked child takes before it `execveat`s that image.
//!
//! After `fork` the child may only make raw, async-signal-safe system calls (the
//! sentry is multi-threaded), so everything here works on integers and on memory
//! prepared before the fork.

use std::ffi::CStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::errno::{Errno, SysResult};

use abi::elf::{EHDR_SIZE, PHDR_SIZE};
/// Bytes [`elf_headers`] writes: where a stub's code starts in its image.
pub(crate) const ELF_HEADERS_SIZE: u64 = (EHDR_SIZE + PHDR_SIZE) as u64;

/// Appends to `b` the headers of a stub image: a static x86-64 executable entered at
/// `entry`, whose one `PT_LOAD` (R+X) segment maps the image's first `total` bytes
/// (headers included, from file offset 0) at `base`.
pub(crate) fn elf_headers(b: &mut Vec<u8>, base: u64, entry: u64, total: u64) {
    let start = b.len();
    // e_ident: magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ELFOSABI_SYSV, padding.
    b.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(&2u16.to_le_bytes()); // e_type = ET_EXEC
    b.extend_from_slice(&62u16.to_le_bytes()); // e_machine = EM_X86_64
    b.extend_from_slice(&1u32.to_le_bytes()); // e_version
    b.extend_from_slice(&entry.to_le_bytes()); // e_entry
    b.extend_from_slice(&(EHDR_SIZE as u64).to_le_bytes()); // e_phoff
    b.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    b.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    b.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes()); // e_ehsize
    b.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes()); // e_phentsize
    b.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    b.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    b.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    b.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    debug_assert_eq!(b.len() - start, EHDR_SIZE);
    b.extend_from_slice(&1u32.to_le_bytes()); // p_type = PT_LOAD
    b.extend_from_slice(&5u32.to_le_bytes()); // p_flags = PF_R | PF_X
    b.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    b.extend_from_slice(&base.to_le_bytes()); // p_vaddr
    b.extend_from_slice(&base.to_le_bytes()); // p_paddr
    b.extend_from_slice(&total.to_le_bytes()); // p_filesz
    b.extend_from_slice(&total.to_le_bytes()); // p_memsz
    b.extend_from_slice(&crate::platform::PAGE_SIZE.to_le_bytes()); // p_align
    debug_assert_eq!((b.len() - start) as u64, ELF_HEADERS_SIZE);
}

/// `personality(2)` flag that disables address-space randomization.
const ADDR_NO_RANDOMIZE: libc::c_ulong = 0x0040000;

/// Writes `image` into a sealed memfd named `name` and returns a read-only fd on it.
/// The writable fd is closed: exec refuses a file that is open for writing (ETXTBSY).
pub(crate) fn sealed_memfd(name: &CStr, image: &[u8]) -> SysResult<OwnedFd> {
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: `name` is a NUL-terminated string; flags are integers.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), flags | libc::MFD_EXEC) };
    if fd < 0 && Errno::last() == Errno::EINVAL {
        // Kernels before 6.3 do not know MFD_EXEC.
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(image)
        .map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on an fd we own with integer arguments.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(Errno::last());
    }
    let path = format!("/proc/self/fd/{}\0", file.as_raw_fd());
    let path = CStr::from_bytes_with_nul(path.as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `path` is NUL-terminated; flags are integers.
    let ro = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if ro < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(ro) })
}

/// The kernel's `struct sigaction` for `rt_sigaction` on x86-64.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// What the forked child execs, prepared before the fork.
pub(crate) struct ChildExec {
    argv: [*const libc::c_char; 2],
    envp: [*const libc::c_char; 1],
    parent: libc::pid_t,
    /// The unprivileged host uid and gid the child takes, if any
    /// (`sys::isolation::stub_identity`).
    identity: Option<(u32, u32)>,
}

impl ChildExec {
    /// An exec of the stub image as `name`, with an empty environment, by a child of
    /// the calling process.
    pub(crate) fn new(name: &'static CStr) -> ChildExec {
        ChildExec {
            argv: [name.as_ptr(), std::ptr::null()],
            envp: [std::ptr::null()],
            // SAFETY: getpid cannot fail.
            parent: unsafe { libc::getpid() },
            identity: crate::sys::isolation::stub_identity(),
        }
    }
}

/// Ends the forked child with `code` (the parent sees it as the exit status).
///
/// # Safety
/// Only in a forked child.
pub(crate) unsafe fn child_fail(code: i32) -> ! {
    // SAFETY: exit_group takes an integer and does not return.
    unsafe { libc::syscall(libc::SYS_exit_group, code) };
    #[allow(clippy::empty_loop)]
    loop {}
}

/// The first steps of every stub child: drop to the unprivileged stub identity (uid
/// and gid `nobody`, no groups, no capabilities in any set, `no_new_privs`; see
/// `sys::isolation`), so nothing a stub does reaches beyond what an unprivileged
/// user of the sandbox's namespaces could; die with the forking thread
/// (PR_SET_PDEATHSIG, checked against a parent that died first), its own session (a
/// terminal's signals to the sentry's group never reach stubs), a fixed address
/// layout (the image's fixed address never meets the stack), and default
/// dispositions and an empty mask (ignored or blocked signals would hide the
/// platform's own). The child already runs under the sentry's seccomp filter, so it
/// makes no call the sentry itself may not; it inherits the sentry's RLIMIT_CORE of
/// 0 (`sys::confine::no_core_dumps`), so a stub, which holds the application's
/// memory, never dumps core.
///
/// # Safety
/// Only in a freshly forked child; on failure it ends the child with a status
/// between 119 and 122 (119: the identity could not be dropped).
pub(crate) unsafe fn child_prelude(exec: &ChildExec) {
    let dfl = KernelSigaction {
        handler: 0,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: every call below is a raw system call on integers or on memory of this
    // frame or prepared before fork, which the child's copy of the address space holds.
    unsafe {
        // First: a credential change clears the parent-death signal set below.
        if let Some((uid, gid)) = exec.identity {
            if crate::sys::isolation::drop_privileges_raw(uid, gid).is_err() {
                child_fail(119);
            }
        }
        if libc::syscall(
            libc::SYS_prctl,
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL,
            0,
            0,
            0,
        ) != 0
        {
            child_fail(120);
        }
        if libc::syscall(libc::SYS_getppid) as libc::pid_t != exec.parent {
            child_fail(121);
        }
        libc::syscall(libc::SYS_setsid);
        let cur = libc::syscall(libc::SYS_personality, 0xffff_ffffu64);
        if cur < 0
            || libc::syscall(
                libc::SYS_personality,
                (cur as libc::c_ulong) | ADDR_NO_RANDOMIZE,
            ) < 0
        {
            child_fail(122);
        }
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &dfl as *const KernelSigaction,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8,
                );
            }
        }
        let empty_mask: u64 = 0;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty_mask as *const u64,
            std::ptr::null_mut::<u64>(),
            8,
        );
    }
}

/// Moves `control` to fd 0 and `exe` above it (close-on-exec), closes every other fd,
/// and returns the new number of `exe`.
///
/// # Safety
/// Only in a forked child; on failure it ends the child with status 123 or 124.
pub(crate) unsafe fn child_keep_fds(exe: i32, control: i32) -> i32 {
    // SAFETY: fcntl and dup2 on integers, in the child's own fd table.
    unsafe {
        let exe2 = libc::syscall(libc::SYS_fcntl, exe, libc::F_DUPFD_CLOEXEC, 1) as i32;
        if exe2 < 0 {
            child_fail(123);
        }
        if control == 0 {
            if libc::syscall(libc::SYS_fcntl, control, libc::F_SETFD, 0) < 0 {
                child_fail(124);
            }
        } else if libc::syscall(libc::SYS_dup2, control, 0) < 0 {
            child_fail(124);
        }
        close_all_but(exe2);
        exe2
    }
}

/// Execs the image behind `exe`; never returns (status 127 if the exec fails).
///
/// # Safety
/// Only in a forked child.
pub(crate) unsafe fn child_exec(exec: &ChildExec, exe: i32) -> ! {
    // SAFETY: argv and envp are NULL-terminated arrays of NUL-terminated strings made
    // before the fork; the path is the empty string with AT_EMPTY_PATH.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            exe,
            c"".as_ptr(),
            exec.argv.as_ptr(),
            exec.envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
        child_fail(127)
    }
}

/// Closes every fd except 0 (the control socket) and `keep` (>= 1).
///
/// # Safety
/// Only raw system calls; meant for the forked child.
unsafe fn close_all_but(keep: i32) {
    let keep = keep as u32;
    let ranges = [(1u32, keep - 1), (keep + 1, u32::MAX)];
    for (lo, hi) in ranges {
        if lo > hi {
            continue;
        }
        // SAFETY: close_range takes integers; closing fds in the child affects nothing
        // of the parent.
        let r = unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0) };
        if r < 0 {
            // Before Linux 5.9: close one by one up to a generous bound.
            for fd in lo..=hi.min(65_535) {
                // SAFETY: as above.
                unsafe { libc::syscall(libc::SYS_close, fd) };
            }
        }
    }
}
