//! The Linux x86-64 ABI that the sentry and the gofer share, written once here
//! instead of in each file that needs them: numbers an application or a host call
//! sees, and the byte layouts of the structures the sentry hands applications
//! (`struct stat`, `struct statfs`, `siginfo_t`, `struct signalfd_siginfo`). Each
//! number, size and field offset is checked against the C library in the tests
//! where the C library has it. No dependencies: both sides can use it.

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

    /// SIGSYS raised by a seccomp filter (`SYS_SECCOMP`).
    pub const SYS_SECCOMP: i32 = 1;

    /// The signal numbers whose `siginfo` layout differs from the sender's one.
    pub const SIGILL: i32 = 4;
    /// `SIGTRAP`.
    pub const SIGTRAP: i32 = 5;
    /// `SIGBUS`.
    pub const SIGBUS: i32 = 7;
    /// `SIGFPE`.
    pub const SIGFPE: i32 = 8;
    /// `SIGSEGV`.
    pub const SIGSEGV: i32 = 11;
    /// `SIGCHLD`.
    pub const SIGCHLD: i32 = 17;
    /// `SIGSYS`.
    pub const SIGSYS: i32 = 31;

    /// Size of `siginfo_t` and of `struct signalfd_siginfo`.
    pub const SIGINFO_SIZE: usize = 128;

    /// One signal with the information that travels with it (`siginfo_t`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SigInfo {
        /// Signal number.
        pub signo: i32,
        /// `si_errno`.
        pub errno: i32,
        /// `si_code`.
        pub code: i32,
        /// Sender pid (kill, sigqueue, SIGCHLD) or timer id.
        pub pid: i32,
        /// Sender uid (or timer overrun).
        pub uid: u32,
        /// SIGCHLD status, or sigqueue's value / fault address's companion word; the
        /// system call number of a seccomp SIGSYS (`si_syscall`).
        pub status: i64,
        /// Fault address (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP); a seccomp SIGSYS's
        /// `si_call_addr`.
        pub addr: u64,
        /// sigqueue value (`si_value`); a seccomp SIGSYS's `si_arch`.
        pub value: u64,
    }

    impl SigInfo {
        /// A signal sent by a process (`kill`).
        pub fn user(signo: i32, pid: i32, uid: u32) -> SigInfo {
            SigInfo {
                signo,
                code: SI_USER,
                pid,
                uid,
                ..Default::default()
            }
        }

        /// A signal the kernel raises itself (SIGPIPE, SIGXFSZ...).
        pub fn kernel(signo: i32) -> SigInfo {
            SigInfo {
                signo,
                code: SI_KERNEL,
                ..Default::default()
            }
        }

        /// The 128-byte `siginfo_t` the application sees: which union member
        /// follows the first three words depends on the signal and its code.
        pub fn to_bytes(&self) -> [u8; SIGINFO_SIZE] {
            let mut b = [0u8; SIGINFO_SIZE];
            b[0..4].copy_from_slice(&self.signo.to_le_bytes());
            b[4..8].copy_from_slice(&self.errno.to_le_bytes());
            b[8..12].copy_from_slice(&self.code.to_le_bytes());
            match self.signo {
                SIGSEGV | SIGBUS | SIGILL | SIGFPE | SIGTRAP if self.code > 0 => {
                    b[16..24].copy_from_slice(&self.addr.to_le_bytes());
                }
                // The `_sigsys` layout (call address, number, arch).
                SIGSYS if self.code == SYS_SECCOMP => {
                    b[16..24].copy_from_slice(&self.addr.to_le_bytes());
                    b[24..28].copy_from_slice(&(self.status as i32).to_le_bytes());
                    b[28..32].copy_from_slice(&(self.value as u32).to_le_bytes());
                }
                SIGCHLD => {
                    b[16..20].copy_from_slice(&self.pid.to_le_bytes());
                    b[20..24].copy_from_slice(&self.uid.to_le_bytes());
                    b[24..28].copy_from_slice(&(self.status as i32).to_le_bytes());
                }
                _ => {
                    b[16..20].copy_from_slice(&self.pid.to_le_bytes());
                    b[20..24].copy_from_slice(&self.uid.to_le_bytes());
                    b[24..32].copy_from_slice(&self.value.to_le_bytes());
                }
            }
            b
        }

        /// Decodes a `siginfo_t` an application passed (rt_sigqueueinfo).
        pub fn from_bytes(b: &[u8; SIGINFO_SIZE]) -> SigInfo {
            let i32_at = |o: usize| i32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
            let mut value = [0u8; 8];
            value.copy_from_slice(&b[24..32]);
            SigInfo {
                signo: i32_at(0),
                errno: i32_at(4),
                code: i32_at(8),
                pid: i32_at(16),
                uid: i32_at(20) as u32,
                value: u64::from_le_bytes(value),
                ..Default::default()
            }
        }
    }

    /// What a signal carries as a signalfd reports it (`struct signalfd_siginfo`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SignalfdSiginfo {
        /// Signal number.
        pub signo: u32,
        /// `si_errno`.
        pub errno: i32,
        /// `si_code`.
        pub code: i32,
        /// Sender's pid.
        pub pid: u32,
        /// Sender's uid.
        pub uid: u32,
        /// Timer id / fd, by kind.
        pub fd: i32,
        /// POSIX timer id.
        pub tid: u32,
        /// Band event.
        pub band: u32,
        /// Timer overruns.
        pub overrun: u32,
        /// Exit status or signal (SIGCHLD).
        pub status: i32,
        /// `sigqueue` int value.
        pub int: i32,
        /// `sigqueue` pointer value.
        pub ptr: u64,
        /// Fault address.
        pub addr: u64,
    }

    impl SignalfdSiginfo {
        /// The kernel's `struct signalfd_siginfo` layout.
        pub fn to_bytes(&self) -> [u8; SIGINFO_SIZE] {
            let mut b = [0u8; SIGINFO_SIZE];
            let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
            put(0, &self.signo.to_le_bytes());
            put(4, &self.errno.to_le_bytes());
            put(8, &self.code.to_le_bytes());
            put(12, &self.pid.to_le_bytes());
            put(16, &self.uid.to_le_bytes());
            put(20, &self.fd.to_le_bytes());
            put(24, &self.tid.to_le_bytes());
            put(28, &self.band.to_le_bytes());
            put(32, &self.overrun.to_le_bytes());
            // 36: trapno
            put(40, &self.status.to_le_bytes());
            put(44, &self.int.to_le_bytes());
            put(48, &self.ptr.to_le_bytes());
            // 56: utime, 64: stime
            put(72, &self.addr.to_le_bytes());
            b
        }
    }
}

/// Files: `struct stat` and `struct statfs` as x86-64 Linux lays them out, and
/// the attribute changes `setattr` carries (the sentry's VFS and the gofer's
/// protocol speak the same ones).
pub mod fs {
    /// The file type bits of a mode.
    pub const S_IFMT: u32 = 0o170_000;
    /// Directory.
    pub const S_IFDIR: u32 = 0o040_000;
    /// Regular file.
    pub const S_IFREG: u32 = 0o100_000;
    /// Symbolic link.
    pub const S_IFLNK: u32 = 0o120_000;

    /// `utimensat`'s "the current time" nanoseconds.
    pub const UTIME_NOW: i64 = (1 << 30) - 1;
    /// `utimensat`'s "leave it" nanoseconds.
    pub const UTIME_OMIT: i64 = (1 << 30) - 2;

    /// Size of x86-64 `struct stat`.
    pub const STAT_SIZE: usize = 144;
    /// Size of x86-64 `struct statfs`.
    pub const STATFS_SIZE: usize = 120;

    /// File attributes (the fields of `struct stat`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Stat {
        /// Device.
        pub dev: u64,
        /// Inode number.
        pub ino: u64,
        /// Type and permission bits (`S_IF*` | mode).
        pub mode: u32,
        /// Hard links.
        pub nlink: u64,
        /// Owner.
        pub uid: u32,
        /// Group.
        pub gid: u32,
        /// Device number (device files).
        pub rdev: u64,
        /// Size in bytes.
        pub size: i64,
        /// Preferred I/O block size.
        pub blksize: i64,
        /// 512-byte blocks allocated.
        pub blocks: i64,
        /// Access time (seconds, nanoseconds).
        pub atime: (i64, i64),
        /// Modification time.
        pub mtime: (i64, i64),
        /// Status change time.
        pub ctime: (i64, i64),
    }

    impl Stat {
        /// The file type bits.
        pub fn file_type(&self) -> u32 {
            self.mode & S_IFMT
        }
        /// True for directories.
        pub fn is_dir(&self) -> bool {
            self.file_type() == S_IFDIR
        }
        /// True for symlinks.
        pub fn is_symlink(&self) -> bool {
            self.file_type() == S_IFLNK
        }
        /// True for regular files.
        pub fn is_regular(&self) -> bool {
            self.file_type() == S_IFREG
        }

        /// The kernel's `struct stat` for x86-64, as the application reads it.
        pub fn to_linux(&self) -> [u8; STAT_SIZE] {
            let mut b = [0u8; STAT_SIZE];
            let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
            put(0, &self.dev.to_le_bytes());
            put(8, &self.ino.to_le_bytes());
            put(16, &self.nlink.to_le_bytes());
            put(24, &self.mode.to_le_bytes());
            put(28, &self.uid.to_le_bytes());
            put(32, &self.gid.to_le_bytes());
            // 36: padding
            put(40, &self.rdev.to_le_bytes());
            put(48, &self.size.to_le_bytes());
            put(56, &self.blksize.to_le_bytes());
            put(64, &self.blocks.to_le_bytes());
            for (off, (s, ns)) in [(72, self.atime), (88, self.mtime), (104, self.ctime)] {
                put(off, &s.to_le_bytes());
                put(off + 8, &ns.to_le_bytes());
            }
            b
        }
    }

    /// Filesystem statistics (`struct statfs`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct StatFs {
        /// Filesystem type magic.
        pub kind: i64,
        /// Block size.
        pub bsize: i64,
        /// Total blocks.
        pub blocks: u64,
        /// Free blocks.
        pub bfree: u64,
        /// Blocks available to unprivileged users.
        pub bavail: u64,
        /// Total inodes.
        pub files: u64,
        /// Free inodes.
        pub ffree: u64,
        /// Maximum name length.
        pub namelen: i64,
        /// Fragment size.
        pub frsize: i64,
        /// Mount flags (`ST_*`).
        pub flags: i64,
    }

    impl StatFs {
        /// The kernel's `struct statfs` for x86-64 (`f_fsid` and the spare words
        /// stay zero: the sandbox does not expose them).
        pub fn to_linux(&self) -> [u8; STATFS_SIZE] {
            let mut b = [0u8; STATFS_SIZE];
            let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
            put(0, &self.kind.to_le_bytes());
            put(8, &self.bsize.to_le_bytes());
            for (i, v) in [self.blocks, self.bfree, self.bavail, self.files, self.ffree]
                .iter()
                .enumerate()
            {
                put(16 + 8 * i, &v.to_le_bytes());
            }
            // 56: f_fsid
            put(64, &self.namelen.to_le_bytes());
            put(72, &self.frsize.to_le_bytes());
            put(80, &self.flags.to_le_bytes());
            b
        }
    }

    /// A timestamp to set with [`SetAttr`].
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub enum SetTime {
        /// Leave the timestamp alone (`UTIME_OMIT`).
        #[default]
        Omit,
        /// The current time (`UTIME_NOW`).
        Now,
        /// This time (seconds, nanoseconds).
        At(i64, i64),
    }

    impl SetTime {
        /// The `timespec` pair `utimensat(2)` expects.
        pub fn to_timespec(self) -> (i64, i64) {
            match self {
                SetTime::Omit => (0, UTIME_OMIT),
                SetTime::Now => (0, UTIME_NOW),
                SetTime::At(s, ns) => (s, ns),
            }
        }
    }

    /// Attribute changes for `setattr`; `None`/`Omit` fields are left alone.
    /// Applied in the order size, owner, mode, times (so a chown cannot clear
    /// set-id bits just set).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SetAttr {
        /// New permission bits (`07777` mask; type bits ignored).
        pub mode: Option<u32>,
        /// New owner.
        pub uid: Option<u32>,
        /// New group.
        pub gid: Option<u32>,
        /// New size (truncate; regular files only).
        pub size: Option<u64>,
        /// New access time.
        pub atime: SetTime,
        /// New modification time.
        pub mtime: SetTime,
    }
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

    /// The signal numbers and file mode bits the layouts switch on.
    #[test]
    fn signals_and_modes_match_the_c_library() {
        use signal::*;
        for (ours, theirs) in [
            (SIGILL, libc::SIGILL),
            (SIGTRAP, libc::SIGTRAP),
            (SIGBUS, libc::SIGBUS),
            (SIGFPE, libc::SIGFPE),
            (SIGSEGV, libc::SIGSEGV),
            (SIGCHLD, libc::SIGCHLD),
            (SIGSYS, libc::SIGSYS),
        ] {
            assert_eq!(ours, theirs);
        }
        assert_eq!(SIGINFO_SIZE, std::mem::size_of::<libc::siginfo_t>());
        assert_eq!(SIGINFO_SIZE, std::mem::size_of::<libc::signalfd_siginfo>());
        for (ours, theirs) in [
            (fs::S_IFMT, libc::S_IFMT),
            (fs::S_IFDIR, libc::S_IFDIR),
            (fs::S_IFREG, libc::S_IFREG),
            (fs::S_IFLNK, libc::S_IFLNK),
        ] {
            assert_eq!(ours, theirs);
        }
        assert_eq!(fs::UTIME_NOW, libc::UTIME_NOW);
        assert_eq!(fs::UTIME_OMIT, libc::UTIME_OMIT);
    }

    /// Each field of `struct stat`, `struct statfs` and `struct signalfd_siginfo`
    /// lands where the C library's struct has it.
    #[test]
    fn layouts_match_the_c_library() {
        use std::mem::{offset_of, size_of};
        let st = fs::Stat {
            dev: 1,
            ino: 2,
            mode: 3,
            nlink: 4,
            uid: 5,
            gid: 6,
            rdev: 7,
            size: 8,
            blksize: 9,
            blocks: 10,
            atime: (11, 12),
            mtime: (13, 14),
            ctime: (15, 16),
        };
        assert_eq!(fs::STAT_SIZE, size_of::<libc::stat>());
        let b = st.to_linux();
        let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        assert_eq!(u64_at(&b, offset_of!(libc::stat, st_dev)), 1);
        assert_eq!(u64_at(&b, offset_of!(libc::stat, st_ino)), 2);
        assert_eq!(u32_at(&b, offset_of!(libc::stat, st_mode)), 3);
        assert_eq!(u64_at(&b, offset_of!(libc::stat, st_nlink)), 4);
        assert_eq!(u32_at(&b, offset_of!(libc::stat, st_uid)), 5);
        assert_eq!(u32_at(&b, offset_of!(libc::stat, st_gid)), 6);
        assert_eq!(u64_at(&b, offset_of!(libc::stat, st_rdev)), 7);
        assert_eq!(u64_at(&b, offset_of!(libc::stat, st_size)), 8);
        assert_eq!(u64_at(&b, offset_of!(libc::stat, st_blksize)), 9);
        assert_eq!(u64_at(&b, offset_of!(libc::stat, st_blocks)), 10);
        assert_eq!(u64_at(&b, offset_of!(libc::stat, st_atime)), 11);
        assert_eq!(u64_at(&b, offset_of!(libc::stat, st_atime_nsec)), 12);
        assert_eq!(u64_at(&b, offset_of!(libc::stat, st_mtime)), 13);
        assert_eq!(u64_at(&b, offset_of!(libc::stat, st_mtime_nsec)), 14);
        assert_eq!(u64_at(&b, offset_of!(libc::stat, st_ctime)), 15);
        assert_eq!(u64_at(&b, offset_of!(libc::stat, st_ctime_nsec)), 16);

        let sf = fs::StatFs {
            kind: 1,
            bsize: 2,
            blocks: 3,
            bfree: 4,
            bavail: 5,
            files: 6,
            ffree: 7,
            namelen: 8,
            frsize: 9,
            flags: 10,
        };
        assert_eq!(fs::STATFS_SIZE, size_of::<libc::statfs64>());
        let b = sf.to_linux();
        for (off, v) in [
            (offset_of!(libc::statfs64, f_type), 1),
            (offset_of!(libc::statfs64, f_bsize), 2),
            (offset_of!(libc::statfs64, f_blocks), 3),
            (offset_of!(libc::statfs64, f_bfree), 4),
            (offset_of!(libc::statfs64, f_bavail), 5),
            (offset_of!(libc::statfs64, f_files), 6),
            (offset_of!(libc::statfs64, f_ffree), 7),
            (offset_of!(libc::statfs64, f_namelen), 8),
            (offset_of!(libc::statfs64, f_frsize), 9),
            (offset_of!(libc::statfs64, f_flags), 10),
        ] {
            assert_eq!(u64_at(&b, off), v, "offset {off}");
        }
        assert_eq!(u64_at(&b, offset_of!(libc::statfs64, f_fsid)), 0);

        let si = signal::SignalfdSiginfo {
            signo: 1,
            errno: 2,
            code: 3,
            pid: 4,
            uid: 5,
            fd: 6,
            tid: 7,
            band: 8,
            overrun: 9,
            status: 10,
            int: 11,
            ptr: 12,
            addr: 13,
        };
        let b = si.to_bytes();
        type S = libc::signalfd_siginfo;
        for (off, v) in [
            (offset_of!(S, ssi_signo), 1),
            (offset_of!(S, ssi_errno), 2),
            (offset_of!(S, ssi_code), 3),
            (offset_of!(S, ssi_pid), 4),
            (offset_of!(S, ssi_uid), 5),
            (offset_of!(S, ssi_fd), 6),
            (offset_of!(S, ssi_tid), 7),
            (offset_of!(S, ssi_band), 8),
            (offset_of!(S, ssi_overrun), 9),
            (offset_of!(S, ssi_status), 10),
            (offset_of!(S, ssi_int), 11),
        ] {
            assert_eq!(u32_at(&b, off), v, "offset {off}");
        }
        assert_eq!(u64_at(&b, offset_of!(S, ssi_ptr)), 12);
        assert_eq!(u64_at(&b, offset_of!(S, ssi_addr)), 13);
    }

    /// A sigqueue'd `siginfo_t` reads back as it was written.
    #[test]
    fn siginfo_round_trips() {
        let i = signal::SigInfo {
            signo: 40,
            code: signal::SI_QUEUE,
            pid: 7,
            uid: 1000,
            value: 0xdead_beef,
            ..Default::default()
        };
        assert_eq!(signal::SigInfo::from_bytes(&i.to_bytes()), i);
        let f = signal::SigInfo {
            signo: signal::SIGSEGV,
            code: signal::SEGV_MAPERR,
            addr: 0x1000,
            ..Default::default()
        };
        assert_eq!(f.to_bytes()[16..24], 0x1000u64.to_le_bytes());
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
