//! The Linux x86-64 ABI numbers that the sentry and the gofer share, written once
//! here instead of in each file that needs them. Only numbers an application or
//! a host call sees; each is checked against the C library in the tests where the
//! C library has it. No dependencies: both sides can use it.

#![deny(missing_docs)]

/// Name and path lengths.
pub mod limits {
    /// Longest file name (`NAME_MAX`).
    pub const NAME_MAX: usize = 255;
    /// Longest path, with its NUL (`PATH_MAX`).
    pub const PATH_MAX: usize = 4096;
    /// Longest extended attribute name (`XATTR_NAME_MAX`).
    pub const XATTR_NAME_MAX: usize = 255;
}

/// The application's address space.
pub mod mem {
    /// The end of x86-64 user space with 4-level paging (Linux's `TASK_SIZE`:
    /// one page below 2^47).
    pub const TASK_SIZE: u64 = 0x7fff_ffff_f000;
    /// The page size.
    pub const PAGE_SIZE: u64 = 4096;
}

/// ELF64 layout.
pub mod elf {
    /// Size of the ELF64 file header (`Elf64_Ehdr`).
    pub const EHDR_SIZE: usize = 64;
    /// Size of an ELF64 program header (`Elf64_Phdr`).
    pub const PHDR_SIZE: usize = 56;
}

/// `openat2`'s `resolve` flags.
pub mod resolve {
    /// No crossing of mount points.
    pub const RESOLVE_NO_XDEV: u64 = 0x01;
    /// No `/proc/PID/fd`-style magic links.
    pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
    /// No symbolic links at all.
    pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
    /// Never leave the starting directory.
    pub const RESOLVE_BENEATH: u64 = 0x08;
    /// Treat the starting directory as `/`.
    pub const RESOLVE_IN_ROOT: u64 = 0x10;
    /// Only from the dentry cache (`EAGAIN` otherwise).
    pub const RESOLVE_CACHED: u64 = 0x20;
}

/// Signals: `sigaction` flags and `siginfo` codes.
pub mod signal {
    /// `SIG_DFL`.
    pub const SIG_DFL: u64 = 0;
    /// `SIG_IGN`.
    pub const SIG_IGN: u64 = 1;

    /// `SA_NOCLDSTOP`.
    pub const SA_NOCLDSTOP: u64 = 1;
    /// `SA_NOCLDWAIT`.
    pub const SA_NOCLDWAIT: u64 = 2;
    /// `SA_SIGINFO`.
    pub const SA_SIGINFO: u64 = 4;
    /// `SA_RESTORER`.
    pub const SA_RESTORER: u64 = 0x0400_0000;
    /// `SA_ONSTACK`.
    pub const SA_ONSTACK: u64 = 0x0800_0000;
    /// `SA_RESTART`.
    pub const SA_RESTART: u64 = 0x1000_0000;
    /// `SA_NODEFER`.
    pub const SA_NODEFER: u64 = 0x4000_0000;
    /// `SA_RESETHAND`.
    pub const SA_RESETHAND: u64 = 0x8000_0000;

    /// Sent by kill/sigsend/raise.
    pub const SI_USER: i32 = 0;
    /// Sent by the kernel.
    pub const SI_KERNEL: i32 = 0x80;
    /// Sent by sigqueue.
    pub const SI_QUEUE: i32 = -1;
    /// Sent by timer expiry.
    pub const SI_TIMER: i32 = -2;
    /// Sent by a POSIX message queue's notification.
    pub const SI_MESGQ: i32 = -3;
    /// Sent by tkill/tgkill.
    pub const SI_TKILL: i32 = -6;

    /// Child exited.
    pub const CLD_EXITED: i32 = 1;
    /// Child killed.
    pub const CLD_KILLED: i32 = 2;
    /// Child killed with a core dump.
    pub const CLD_DUMPED: i32 = 3;
    /// Traced child trapped.
    pub const CLD_TRAPPED: i32 = 4;
    /// Child stopped.
    pub const CLD_STOPPED: i32 = 5;
    /// Child continued.
    pub const CLD_CONTINUED: i32 = 6;

    /// SIGSEGV: address not mapped.
    pub const SEGV_MAPERR: i32 = 1;
    /// SIGSEGV: access not allowed by the mapping's protection.
    pub const SEGV_ACCERR: i32 = 2;

    /// SIGTRAP: process breakpoint.
    pub const TRAP_BRKPT: i32 = 1;
    /// SIGTRAP: process trace trap (single step).
    pub const TRAP_TRACE: i32 = 2;

    /// SIGIO/SIGPOLL: data input available.
    pub const POLL_IN: i32 = 1;
    /// SIGIO/SIGPOLL: output buffers available.
    pub const POLL_OUT: i32 = 2;
    /// SIGIO/SIGPOLL: input message available.
    pub const POLL_MSG: i32 = 3;
    /// SIGIO/SIGPOLL: I/O error.
    pub const POLL_ERR: i32 = 4;
    /// SIGIO/SIGPOLL: high priority input available.
    pub const POLL_PRI: i32 = 5;
    /// SIGIO/SIGPOLL: device disconnected.
    pub const POLL_HUP: i32 = 6;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every number the C library also defines is the C library's.
    #[test]
    fn numbers_match_the_c_library() {
        use signal::*;
        assert_eq!(limits::PATH_MAX, libc::PATH_MAX as usize);
        let sa: [(u64, i32); 8] = [
            (SA_NOCLDSTOP, libc::SA_NOCLDSTOP),
            (SA_NOCLDWAIT, libc::SA_NOCLDWAIT),
            (SA_SIGINFO, libc::SA_SIGINFO),
            (SA_ONSTACK, libc::SA_ONSTACK),
            (SA_RESTART, libc::SA_RESTART),
            (SA_NODEFER, libc::SA_NODEFER),
            (SA_RESETHAND, libc::SA_RESETHAND),
            (SA_RESTORER, 0x0400_0000),
        ];
        for (ours, theirs) in sa {
            assert_eq!(ours, theirs as u32 as u64);
        }
        let codes = [
            (SI_USER, libc::SI_USER),
            (SI_KERNEL, libc::SI_KERNEL),
            (SI_QUEUE, libc::SI_QUEUE),
            (SI_TIMER, libc::SI_TIMER),
            (SI_MESGQ, libc::SI_MESGQ),
            (SI_TKILL, libc::SI_TKILL),
            (CLD_EXITED, libc::CLD_EXITED),
            (CLD_KILLED, libc::CLD_KILLED),
            (CLD_DUMPED, libc::CLD_DUMPED),
            (CLD_TRAPPED, libc::CLD_TRAPPED),
            (CLD_STOPPED, libc::CLD_STOPPED),
            (CLD_CONTINUED, libc::CLD_CONTINUED),
            (TRAP_BRKPT, libc::TRAP_BRKPT),
            (TRAP_TRACE, libc::TRAP_TRACE),
        ];
        for (ours, theirs) in codes {
            assert_eq!(ours, theirs);
        }
        assert_eq!(SIG_DFL, libc::SIG_DFL as u64);
        assert_eq!(SIG_IGN, libc::SIG_IGN as u64);
        assert_eq!(elf::EHDR_SIZE, std::mem::size_of::<libc::Elf64_Ehdr>());
        assert_eq!(elf::PHDR_SIZE, std::mem::size_of::<libc::Elf64_Phdr>());
        assert_eq!(mem::PAGE_SIZE, 4096);
    }

    /// The codes the libc crate does not name, against the kernel's own header
    /// (linux-libc-dev's `asm-generic/siginfo.h`) where it is installed.
    #[test]
    fn codes_match_the_kernel_header() {
        use signal::*;
        let path = "/usr/include/asm-generic/siginfo.h";
        let Ok(h) = std::fs::read_to_string(path) else {
            eprintln!("{path} is not installed: nothing to compare with");
            return;
        };
        let defined = |name: &str| -> Option<i32> {
            h.lines().find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("#define") && w.next() == Some(name))
                    .then(|| w.next()?.parse().ok())
                    .flatten()
            })
        };
        let ours = [
            ("SEGV_MAPERR", SEGV_MAPERR),
            ("SEGV_ACCERR", SEGV_ACCERR),
            ("POLL_IN", POLL_IN),
            ("POLL_OUT", POLL_OUT),
            ("POLL_MSG", POLL_MSG),
            ("POLL_ERR", POLL_ERR),
            ("POLL_PRI", POLL_PRI),
            ("POLL_HUP", POLL_HUP),
            ("SI_MESGQ", SI_MESGQ),
        ];
        for (name, v) in ours {
            assert_eq!(defined(name), Some(v), "{name}");
        }
    }

    /// openat2's flags (the C library has no names for them on every version):
    /// distinct single bits, the ones Linux defines.
    #[test]
    fn resolve_flags_are_linuxs_bits() {
        use resolve::*;
        let all = [
            RESOLVE_NO_XDEV,
            RESOLVE_NO_MAGICLINKS,
            RESOLVE_NO_SYMLINKS,
            RESOLVE_BENEATH,
            RESOLVE_IN_ROOT,
            RESOLVE_CACHED,
        ];
        for (i, f) in all.iter().enumerate() {
            assert_eq!(*f, 1 << i);
        }
    }
}
