//! Tests of the ptrace platform; they start real stubs (need ptrace, as root here).

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::platform::{Backing, Event, PendingContext, Regs, PAGE_SIZE};

const CODE: u64 = 0x40_0000;
const DATA: u64 = 0x50_0000;
const FILE_ADDR: u64 = 0x60_0000;
use abi::signal::{SEGV_ACCERR, SEGV_MAPERR};
const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;
const RX: i32 = libc::PROT_READ | libc::PROT_EXEC;

/// `mov eax, 60; syscall` (exit): ends most snippets with a recognizable stop.
const EXIT: [u8; 7] = [0xb8, 0x3c, 0, 0, 0, 0x0f, 0x05];

/// Tests that count the process's fds take this exclusively; every other test
/// shares it, so no stub comes or goes while they count.
static FD_COUNT_LOCK: std::sync::RwLock<()> = std::sync::RwLock::new(());

enum Guard {
    Shared(#[allow(dead_code)] std::sync::RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] std::sync::RwLockWriteGuard<'static, ()>),
}

/// The platform, in a test process that dumps no core: stubs that die of a signal
/// here (on purpose, in several tests) inherit the limit, as they inherit the
/// sentry's in a sandbox.
fn new_platform() -> crate::errno::SysResult<PtracePlatform> {
    crate::sys::confine::no_core_dumps().expect("RLIMIT_CORE");
    PtracePlatform::new()
}

struct Rig {
    platform: PtracePlatform,
    space: Arc<dyn AddressSpace>,
    ctx: Box<dyn Context>,
    regs: Regs,
    /// Dropped last (fields drop in order).
    _guard: Guard,
}

impl Rig {
    /// A space with `code` at CODE (RX) and one RW page at DATA; regs ready to run it.
    fn new(code: &[u8]) -> Rig {
        let guard = Guard::Shared(FD_COUNT_LOCK.read().unwrap_or_else(|p| p.into_inner()));
        Self::with_guard(code, guard)
    }

    /// As `new`, with no other rig alive meanwhile.
    fn exclusive(code: &[u8]) -> Rig {
        let guard = Guard::Exclusive(FD_COUNT_LOCK.write().unwrap_or_else(|p| p.into_inner()));
        Self::with_guard(code, guard)
    }

    fn with_guard(code: &[u8], guard: Guard) -> Rig {
        // As at boot: no core dumps, then the filter (which forbids setrlimit).
        crate::sys::confine::no_core_dumps().expect("RLIMIT_CORE");
        if std::env::var_os(SECCOMP_ENV).is_some() {
            crate::sys::confine::install_sentry_filter("ptrace", None, false).expect("seccomp");
        }
        let platform = PtracePlatform::new().expect("platform");
        let space = platform.new_address_space().expect("space");
        let ctx = platform.new_context(&space).expect("context");
        space
            .map(DATA, PAGE_SIZE, RW, false, Backing::Anonymous)
            .expect("map data");
        load_code(space.as_ref(), CODE, code);
        let mut regs = space::zero_regs();
        regs.rip = CODE;
        regs.rsp = DATA + PAGE_SIZE;
        Rig {
            platform,
            space,
            ctx,
            regs,
            _guard: guard,
        }
    }

    fn switch(&mut self) -> Event {
        self.ctx.switch(&mut self.regs).expect("switch")
    }

    fn switch_result(&mut self) -> crate::errno::SysResult<Event> {
        self.ctx.switch(&mut self.regs)
    }

    fn concrete(&self) -> Arc<PtraceSpace> {
        self.concrete_of(&self.space)
    }

    fn concrete_of(&self, space: &Arc<dyn AddressSpace>) -> Arc<PtraceSpace> {
        self.platform
            .shared
            .spaces
            .find(Arc::as_ptr(space) as *const ())
            .expect("our space")
    }
}

/// Maps `code` at `at` as an application loader does: a writable page is filled,
/// then made read-only and executable (the sentry cannot write a read-only page).
fn load_code(space: &dyn AddressSpace, at: u64, code: &[u8]) {
    space
        .map(at, PAGE_SIZE, RW, false, Backing::Anonymous)
        .expect("map code");
    assert_eq!(space.write(at, code).expect("write code"), code.len());
    space.protect(at, PAGE_SIZE, RX).expect("protect code");
    assert_eq!(
        space.write(at, &[0xcc]),
        Err(Errno::EFAULT),
        "RX page written"
    );
}

fn code(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn temp_file(contents: &[u8]) -> std::fs::File {
    let path = std::env::temp_dir().join(format!(
        "rvisor-ptrace-test-{}-{}",
        std::process::id(),
        sys::gettid()
    ));
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    f.write_all(contents).unwrap();
    f
}

#[test]
fn stub_address_space_is_empty() {
    let rig = Rig::new(&EXIT);
    let pid = rig.concrete().pid;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    for line in maps.lines() {
        let range = line.split_whitespace().next().unwrap();
        let (lo, _) = range.split_once('-').unwrap();
        let lo = u64::from_str_radix(lo, 16).unwrap();
        let ours = lo == CODE || lo == DATA || (stub::STUB_BASE..stub::STUB_END).contains(&lo);
        assert!(
            ours || line.contains("[vsyscall]"),
            "unexpected mapping: {line}"
        );
    }
    assert!(
        !maps.contains("[stack]") && !maps.contains("[vdso]"),
        "{maps}"
    );
}

#[test]
fn syscall_roundtrip() {
    let c = code(&[
        &[0xb8, 39, 0, 0, 0], // mov eax, 39 (getpid)
        &[0x0f, 0x05],        // syscall
        &[0x48, 0x89, 0xc7],  // mov rdi, rax
        &EXIT,
    ]);
    let mut rig = Rig::new(&c);
    assert_eq!(rig.switch(), Event::Syscall);
    assert_eq!(rig.regs.orig_rax, 39);
    assert_eq!(rig.regs.rip, CODE + 7);
    rig.regs.rax = 1234;
    assert_eq!(rig.switch(), Event::Syscall);
    assert_eq!(rig.regs.orig_rax, 60);
    assert_eq!(rig.regs.rdi, 1234);
}

#[test]
fn faults() {
    // NULL dereference: mov rax, [0]
    let mut rig = Rig::new(&[0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0]);
    assert_eq!(
        rig.switch(),
        Event::Fault {
            signo: libc::SIGSEGV,
            code: SEGV_MAPERR,
            addr: 0
        }
    );
    assert_eq!(rig.regs.rip, CODE);
    // Not resumable past the fault: switching again faults again.
    assert!(matches!(
        rig.switch(),
        Event::Fault {
            signo: libc::SIGSEGV,
            ..
        }
    ));

    // ud2
    let mut rig = Rig::new(&[0x0f, 0x0b]);
    match rig.switch() {
        Event::Fault { signo, addr, .. } => {
            assert_eq!(signo, libc::SIGILL);
            assert_eq!(addr, CODE);
        }
        e => panic!("{e:?}"),
    }

    // int3
    let mut rig = Rig::new(&[0xcc]);
    assert!(matches!(
        rig.switch(),
        Event::Fault {
            signo: libc::SIGTRAP,
            ..
        }
    ));
}

#[test]
fn int80_is_a_fault() {
    // mov eax, 20; int $0x80
    let mut rig = Rig::new(&[0xb8, 20, 0, 0, 0, 0xcd, 0x80]);
    assert!(matches!(
        rig.switch(),
        Event::Fault {
            signo: libc::SIGSEGV,
            addr: 0,
            ..
        }
    ));
    assert_eq!(rig.regs.rip, CODE + 5);
    assert_eq!(rig.regs.rax, 20);
}

#[test]
fn fs_base_set_at_syscall_stop() {
    let c = code(&[
        &[0xb8, 158, 0, 0, 0],                       // mov eax, 158 (arch_prctl)
        &[0x0f, 0x05],                               // syscall
        &[0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0], // mov rax, fs:[0]
        &[0x48, 0x89, 0xc7],                         // mov rdi, rax
        &EXIT,
    ]);
    let mut rig = Rig::new(&c);
    rig.space
        .write(DATA + 16, &0x1122_3344_5566_7788u64.to_le_bytes())
        .unwrap();
    assert_eq!(rig.switch(), Event::Syscall);
    assert_eq!(rig.regs.orig_rax, 158);
    rig.regs.fs_base = DATA + 16;
    rig.regs.rax = 0;
    assert_eq!(rig.switch(), Event::Syscall);
    assert_eq!(rig.regs.rdi, 0x1122_3344_5566_7788);
    assert_eq!(rig.regs.fs_base, DATA + 16);
}

#[test]
fn file_mappings() {
    let mut contents = vec![0u8; 2 * PAGE_SIZE as usize];
    contents[0] = 7;
    contents[PAGE_SIZE as usize] = 9;
    contents[PAGE_SIZE as usize + 1] = 10;
    let mut file = temp_file(&contents);

    // Private, at file offset PAGE_SIZE: app code reads it, sentry writes stay private.
    let c = code(&[
        &[0x48, 0x8b, 0x3c, 0x25, 0x00, 0x00, 0x60, 0x00], // mov rdi, [0x600000]
        &EXIT,
    ]);
    let mut rig = Rig::new(&c);
    let backing = Backing::File {
        fd: file.as_fd(),
        offset: PAGE_SIZE,
    };
    rig.space
        .map(FILE_ADDR, PAGE_SIZE, libc::PROT_READ, false, backing)
        .unwrap();
    assert_eq!(rig.switch(), Event::Syscall);
    assert_eq!(rig.regs.rdi & 0xffff, 0x0a09);
    // The sentry cannot write the read-only page, as the app could not.
    assert_eq!(rig.space.write(FILE_ADDR, &[0x55]), Err(Errno::EFAULT));
    // Once writable, a write is copy-on-write: the file is unchanged.
    rig.space.protect(FILE_ADDR, PAGE_SIZE, RW).unwrap();
    assert_eq!(rig.space.write(FILE_ADDR, &[0x55]).unwrap(), 1);
    let mut b = [0u8; 1];
    rig.space.read(FILE_ADDR, &mut b).unwrap();
    assert_eq!(b[0], 0x55);
    let mut on_disk = [0u8; 1];
    file.seek(SeekFrom::Start(PAGE_SIZE)).unwrap();
    file.read_exact(&mut on_disk).unwrap();
    assert_eq!(on_disk[0], 9);

    // Shared at offset 0: an app store reaches the file.
    let c = code(&[
        &[0xc6, 0x04, 0x25, 0x00, 0x00, 0x60, 0x00, 0x42], // mov byte [0x600000], 0x42
        &EXIT,
    ]);
    let mut rig = Rig::new(&c);
    // A leftover of a failed transfer (another file, an unknown sequence number) sits
    // in the queue: it must be skipped, not mapped.
    {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let other = temp_file(&[0xee; 4096]);
        let raw = [other.as_raw_fd()];
        let seq = u64::MAX.to_le_bytes();
        let iov = [std::io::IoSlice::new(&seq)];
        let cmsg = [ControlMessage::ScmRights(&raw)];
        let ctl = rig.concrete().control.as_raw_fd();
        sendmsg::<()>(ctl, &iov, &cmsg, MsgFlags::empty(), None).unwrap();
    }
    let backing = Backing::File {
        fd: file.as_fd(),
        offset: 0,
    };
    rig.space
        .map(FILE_ADDR, 2 * PAGE_SIZE, RW, true, backing)
        .unwrap();
    assert_eq!(rig.switch(), Event::Syscall);
    file.seek(SeekFrom::Start(0)).unwrap();
    file.read_exact(&mut on_disk).unwrap();
    assert_eq!(on_disk[0], 0x42);
    // And a sentry write through the shared mapping too; reads see the second page.
    rig.space.write(FILE_ADDR + 1, &[0x43]).unwrap();
    let mut two = [0u8; 2];
    file.seek(SeekFrom::Start(0)).unwrap();
    file.read_exact(&mut two).unwrap();
    assert_eq!(two, [0x42, 0x43]);
    rig.space.read(FILE_ADDR + PAGE_SIZE, &mut two).unwrap();
    assert_eq!(two, [9, 10]);
    // The stub kept no fd of the file: only fd 0 (control socket).
    let pid = rig.concrete().pid;
    let fds: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .collect();
    assert_eq!(fds.len(), 1);
}

#[test]
fn remap_moves_contents() {
    let rig = Rig::new(&EXIT);
    let a = 0x1000_0000;
    let b = 0x2000_0000;
    rig.space
        .map(a, 2 * PAGE_SIZE, RW, false, Backing::Anonymous)
        .unwrap();
    rig.space.write(a + PAGE_SIZE + 5, b"hello").unwrap();
    rig.space.remap(a, 2 * PAGE_SIZE, b, 3 * PAGE_SIZE).unwrap();
    let mut buf = [0u8; 5];
    assert_eq!(rig.space.read(b + PAGE_SIZE + 5, &mut buf).unwrap(), 5);
    assert_eq!(&buf, b"hello");
    assert_eq!(rig.space.read(a, &mut buf), Err(Errno::EFAULT));
    // The grown part is backed like the original (anonymous, zero).
    assert_eq!(rig.space.read(b + 2 * PAGE_SIZE, &mut buf).unwrap(), 5);
    assert_eq!(buf, [0; 5]);
}

#[test]
fn protect_makes_writes_fault() {
    let c = code(&[&[0xc6, 0x04, 0x25, 0x00, 0x00, 0x50, 0x00, 0x01]]); // mov byte [DATA], 1
    let mut rig = Rig::new(&c);
    rig.space.protect(DATA, PAGE_SIZE, libc::PROT_READ).unwrap();
    assert_eq!(
        rig.switch(),
        Event::Fault {
            signo: libc::SIGSEGV,
            code: SEGV_ACCERR,
            addr: DATA
        }
    );
    // The sentry's copies obey the protections as the app's accesses do: a
    // read-only page reads but does not take writes ...
    assert_eq!(rig.space.write(DATA, &[3]), Err(Errno::EFAULT));
    let mut b = [0xffu8; 1];
    assert_eq!(rig.space.read(DATA, &mut b).unwrap(), 1);
    assert_eq!(b[0], 0);
    // ... and a PROT_NONE page does neither.
    rig.space.protect(DATA, PAGE_SIZE, libc::PROT_NONE).unwrap();
    assert_eq!(rig.space.read(DATA, &mut b), Err(Errno::EFAULT));
    assert_eq!(rig.space.write(DATA, &[3]), Err(Errno::EFAULT));
    // Writable again: the failed writes left nothing behind.
    rig.space.protect(DATA, PAGE_SIZE, RW).unwrap();
    assert_eq!(rig.space.read(DATA, &mut b).unwrap(), 1);
    assert_eq!(b[0], 0);
    assert_eq!(rig.space.write(DATA, &[3]).unwrap(), 1);
    // Addresses owned by the platform are refused.
    assert_eq!(
        rig.space
            .map(MAX_USER_ADDRESS, PAGE_SIZE, RW, false, Backing::Anonymous),
        Err(Errno::ENOMEM)
    );
    assert_eq!(rig.space.unmap(DATA + 1, PAGE_SIZE), Err(Errno::EINVAL));
}

#[test]
fn partial_copies_at_unmapped_boundary() {
    let rig = Rig::new(&EXIT);
    // DATA + PAGE_SIZE is unmapped.
    let mut buf = [0xffu8; 20];
    assert_eq!(rig.space.read(DATA + PAGE_SIZE - 10, &mut buf).unwrap(), 10);
    assert_eq!(
        rig.space.write(DATA + PAGE_SIZE - 10, &[1u8; 20]).unwrap(),
        10
    );
    assert_eq!(
        rig.space.read(DATA + PAGE_SIZE, &mut buf),
        Err(Errno::EFAULT)
    );
    assert_eq!(rig.space.write(DATA + PAGE_SIZE, &buf), Err(Errno::EFAULT));
    assert_eq!(rig.space.read(u64::MAX - 4, &mut buf), Err(Errno::EFAULT));
    // A page the app cannot access ends a copy as a hole does.
    assert_eq!(rig.space.write(DATA + PAGE_SIZE - 4, &[2u8; 4]).unwrap(), 4);
    rig.space
        .map(
            DATA + PAGE_SIZE,
            PAGE_SIZE,
            libc::PROT_NONE,
            false,
            Backing::Anonymous,
        )
        .unwrap();
    assert_eq!(
        rig.space.write(DATA + PAGE_SIZE - 4, &[2u8; 20]).unwrap(),
        4
    );
    assert_eq!(rig.space.read(DATA + PAGE_SIZE - 4, &mut buf).unwrap(), 4);
    // A read-only page then the PROT_NONE one: reads stop at the boundary, writes
    // get nothing.
    rig.space.protect(DATA, PAGE_SIZE, libc::PROT_READ).unwrap();
    assert_eq!(
        rig.space.write(DATA + PAGE_SIZE - 4, &[3u8; 20]),
        Err(Errno::EFAULT)
    );
    let mut four = [0u8; 4];
    assert_eq!(rig.space.read(DATA + PAGE_SIZE - 4, &mut four).unwrap(), 4);
    assert_eq!(four, [2; 4]);
    // Memory access works from any thread.
    let space = rig.space.clone();
    let got = std::thread::spawn(move || {
        let mut b = [0u8; 4];
        space.read(DATA + PAGE_SIZE - 4, &mut b).map(|_| b)
    })
    .join()
    .unwrap();
    assert_eq!(got, Ok([2; 4]));
}

#[test]
fn interrupt_spinning_app() {
    let mut rig = Rig::new(&[0xeb, 0xfe]); // jmp $
    let intr = rig.ctx.interrupter();
    // Requested before the switch: reported without running.
    intr.interrupt();
    assert_eq!(rig.switch(), Event::Interrupted);
    assert_eq!(rig.regs.rip, CODE);
    for _ in 0..3 {
        let i = intr.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            i.interrupt();
        });
        let start = Instant::now();
        assert_eq!(rig.switch(), Event::Interrupted);
        assert!(start.elapsed() >= Duration::from_millis(40));
        assert_eq!(rig.regs.rip, CODE);
        t.join().unwrap();
    }
}

#[test]
fn stray_signals_are_suppressed() {
    let c = code(&[&[0xeb, 0x00], &EXIT]); // jmp +0 (a no-op), then exit
    let mut rig = Rig::new(&c);
    let pid = rig.concrete().pid;
    for sig in [libc::SIGTERM, libc::SIGSTOP, libc::SIGSEGV, libc::SIGINT] {
        // SAFETY: the stub is alive and unreaped, so `pid` is still its number.
        unsafe { libc::kill(pid, sig) };
        // Pending while stopped: the next resume stops for it first. A sent SIGSEGV
        // (si_code SI_USER) is not a fault.
        assert_eq!(rig.switch(), Event::Interrupted, "signal {sig}");
        assert_eq!(rig.regs.rip, CODE);
    }
    // None of them was delivered: the app runs on normally.
    assert_eq!(rig.switch(), Event::Syscall);
    assert_eq!(rig.regs.orig_rax, 60);
}

#[test]
fn fp_state_roundtrip() {
    let c = code(&[&[0x66, 0x48, 0x0f, 0x7e, 0xc7], &EXIT]); // movq rdi, xmm0
    let mut rig = Rig::new(&c);
    let mut fp = rig.ctx.fp_state().unwrap();
    assert!(fp.len() >= 512);
    // xmm0 lives at offset 160 of the FXSAVE area.
    fp[160..168].copy_from_slice(&0xdead_beef_cafe_f00du64.to_le_bytes());
    if fp.len() > 512 {
        // XSTATE_BV: mark the SSE component as in use, or the kernel keeps it at init.
        fp[512] |= 2;
    }
    rig.ctx.set_fp_state(&fp).unwrap();
    assert_eq!(rig.ctx.fp_state().unwrap()[160..168], fp[160..168]);
    assert_eq!(rig.switch(), Event::Syscall);
    assert_eq!(rig.regs.rdi, 0xdead_beef_cafe_f00d);
    assert_eq!(rig.ctx.set_fp_state(&fp[..100]), Err(Errno::EINVAL));
}

#[test]
fn threading_rules() {
    let mut rig = Rig::new(&EXIT);
    assert_eq!(
        rig.platform.new_context(&rig.space).err(),
        Some(Errno::EINVAL)
    );
    let space = rig.space.clone();
    let r = std::thread::spawn(move || space.map(DATA, PAGE_SIZE, RW, false, Backing::Anonymous))
        .join()
        .unwrap();
    assert_eq!(r, Err(Errno::EPERM));
    // The tracer thread still works afterwards.
    assert_eq!(rig.switch(), Event::Syscall);
}

#[test]
fn killed_stub_reports_error() {
    let mut rig = Rig::new(&[0xeb, 0xfe]);
    let pid = rig.concrete().pid;
    // SAFETY: the stub is alive and unreaped, so `pid` is still its number.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(rig.ctx.switch(&mut rig.regs), Err(Errno::ESRCH));
    assert_eq!(rig.ctx.switch(&mut rig.regs), Err(Errno::ESRCH));
    assert!(rig
        .space
        .map(DATA, PAGE_SIZE, RW, false, Backing::Anonymous)
        .is_err());
    let mut b = [0u8; 1];
    assert_eq!(rig.space.read(DATA, &mut b), Err(Errno::EFAULT));
}

/// (dev, inode) of the file behind each of our open fds.
fn open_files() -> Vec<(u64, u64)> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::metadata(e.ok()?.path()).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect()
}

fn fd_identity(fd: i32) -> (u64, u64) {
    let m = std::fs::metadata(format!("/proc/self/fd/{fd}")).unwrap();
    (m.dev(), m.ino())
}

#[test]
fn drop_leaves_no_process_or_fd() {
    let rig = Rig::new(&EXIT);
    let space = rig.concrete();
    let pid = space.pid;
    let ours = [
        fd_identity(space.control.as_raw_fd()),
        fd_identity(space.pidfd.as_raw_fd()),
        fd_identity(rig.platform.exe.as_raw_fd()),
    ];
    drop(space);
    drop(rig);
    let now = open_files();
    for id in ours {
        assert!(!now.contains(&id), "fd {id:?} leaked");
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "stub {pid} not reaped"
    );
    let mut status = 0;
    // SAFETY: waitpid on a pid that is no longer our child just fails.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | libc::__WALL) };
    assert_eq!(r, -1);
}

#[test]
#[ignore = "benchmark; run with --ignored --nocapture"]
fn bench_syscall_roundtrip() {
    const N: u32 = 10_000;
    let c = code(&[
        &[0x41, 0xbc],
        &N.to_le_bytes(),     // mov r12d, N
        &[0xb8, 39, 0, 0, 0], // L: mov eax, 39
        &[0x0f, 0x05],        // syscall
        &[0x41, 0xff, 0xcc],  // dec r12d
        &[0x75, 0xf4],        // jnz L
        &EXIT,
    ]);
    let mut rig = Rig::new(&c);
    let start = Instant::now();
    let mut n = 0u32;
    loop {
        assert_eq!(rig.switch(), Event::Syscall);
        if rig.regs.orig_rax == 60 {
            break;
        }
        rig.regs.rax = 1;
        n += 1;
    }
    let el = start.elapsed();
    assert_eq!(n, N);
    println!(
        "ptrace syscall round trip: {} ns",
        el.as_nanos() / u128::from(N)
    );
}

// ---- fork and threads ----

/// `mov eax, 39; syscall` (getpid): a recognizable stop.
const GETPID: [u8; 7] = [0xb8, 39, 0, 0, 0, 0x0f, 0x05];
const NEW_A: u64 = 0x70_0000;
const NEW_B: u64 = 0x71_0000;

/// The entries of `/proc/<pid>/task`, or 0 once the process is gone.
fn task_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn read_u64(space: &Arc<dyn AddressSpace>, addr: u64) -> u64 {
    let mut b = [0u8; 8];
    assert_eq!(space.read(addr, &mut b).unwrap(), 8);
    u64::from_le_bytes(b)
}

/// Waits (briefly) until `pid`'s thread count is `n`: an exiting thread leaves
/// `/proc/<pid>/task` a moment after its tracer lets it go.
fn await_tasks(pid: i32, n: usize) {
    if under_seccomp() {
        // Listing /proc/<pid>/task is no syscall of the sentry's.
        return;
    }
    let start = Instant::now();
    while task_count(pid) != n {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{pid} has {} tasks, want {n}",
            task_count(pid)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether `pid` is gone, or goes within two seconds: a space's last reference may
/// be the death watcher's for a moment, so its Drop (which kills and reaps) can run
/// there just after the test's own.
fn gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while present(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

fn present(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn fork_is_copy_on_write() {
    let c = code(&[
        &GETPID,                                           // the fork point
        &[0x4c, 0x89, 0x24, 0x25, 0x00, 0x00, 0x50, 0x00], // mov [DATA], r12
        &GETPID,
        &[0x48, 0x8b, 0x3c, 0x25, 0x00, 0x00, 0x50, 0x00], // mov rdi, [DATA]
        &EXIT,
    ]);
    let mut rig = Rig::new(&c);
    rig.space.write(DATA, &0x55u64.to_le_bytes()).unwrap();
    rig.regs.r12 = 0x1111;
    assert_eq!(rig.switch(), Event::Syscall);
    let (child, pending) = rig.ctx.fork().unwrap();
    let parent_pid = rig.concrete().pid;
    let child_pid = rig.concrete_of(&child).pid;
    assert_ne!(child_pid, parent_pid);
    // A child of the sentry, like every stub, not of the parent stub.
    if !under_seccomp() {
        assert_eq!(ppid_of(child_pid), std::process::id() as i32);
    }
    // Not adopted here: this thread may not edit the child's space.
    assert_eq!(
        child.map(NEW_A, PAGE_SIZE, RW, false, Backing::Anonymous),
        Err(Errno::EPERM)
    );
    let mut child_regs = rig.regs;
    child_regs.r12 = 0x2222;
    child_regs.rax = 0;
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let (cs, b) = (child.clone(), barrier.clone());
    let t = std::thread::spawn(move || {
        let mut ctx = pending.adopt().unwrap();
        let mut regs = child_regs;
        assert_eq!(read_u64(&cs, DATA), 0x55);
        b.wait();
        assert_eq!(ctx.switch(&mut regs).unwrap(), Event::Syscall);
        assert_eq!(regs.orig_rax, 39);
        assert_eq!(read_u64(&cs, DATA), 0x2222);
        // The child edits its own space through its own stub.
        cs.map(NEW_A, PAGE_SIZE, RW, false, Backing::Anonymous)
            .unwrap();
        cs.write(NEW_A, b"child").unwrap();
        b.wait();
        assert_eq!(ctx.switch(&mut regs).unwrap(), Event::Syscall);
        assert_eq!((regs.orig_rax, regs.rdi), (60, 0x2222));
    });
    barrier.wait();
    // Both run at once, on two host threads.
    assert_eq!(rig.switch(), Event::Syscall);
    assert_eq!(read_u64(&rig.space, DATA), 0x1111);
    barrier.wait();
    rig.space
        .map(NEW_B, PAGE_SIZE, RW, false, Backing::Anonymous)
        .unwrap();
    assert_eq!(rig.switch(), Event::Syscall);
    assert_eq!((rig.regs.orig_rax, rig.regs.rdi), (60, 0x1111));
    t.join().unwrap();
    assert_eq!(read_u64(&child, DATA), 0x2222);
    let mut b = [0u8; 5];
    assert_eq!(child.read(NEW_A, &mut b).unwrap(), 5);
    assert_eq!(&b, b"child");
    assert_eq!(rig.space.read(NEW_A, &mut b), Err(Errno::EFAULT));
    assert_eq!(child.read(NEW_B, &mut b), Err(Errno::EFAULT));
    // The context went with its thread; the space still holds the stub.
    assert!(present(child_pid));
    drop(child);
    assert!(gone(child_pid), "forked stub {child_pid} not reaped");
}

/// Whether this is the child test process that runs under the sentry's filter (where
/// the test itself may only make the sentry's syscalls).
fn under_seccomp() -> bool {
    std::env::var_os(SECCOMP_ENV).is_some()
}

/// A memfd holding `contents`.
fn memfd(contents: &[u8]) -> std::fs::File {
    use std::os::fd::FromRawFd;
    // SAFETY: a NUL-terminated name and integer flags.
    let fd = unsafe { libc::memfd_create(c"rvisor-test".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    f.write_all(contents).unwrap();
    f
}

/// The socket inode behind fd 0 of stub `pid`.
fn control_inode(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/fd/0"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn fork_keeps_shared_file_mappings_and_gets_its_own_socket() {
    let c = code(&[
        &GETPID,                                           // the fork point
        &[0xc6, 0x04, 0x25, 0x00, 0x00, 0x60, 0x00, 0x42], // mov byte [FILE_ADDR], 0x42
        &EXIT,
    ]);
    let mut rig = Rig::new(&c);
    let file = memfd(&[0u8; PAGE_SIZE as usize]);
    let backing = Backing::File {
        fd: file.as_fd(),
        offset: 0,
    };
    rig.space
        .map(FILE_ADDR, PAGE_SIZE, RW, true, backing)
        .unwrap();
    assert_eq!(rig.switch(), Event::Syscall);
    let (child, pending) = rig.ctx.fork().unwrap();
    let child_pid = rig.concrete_of(&child).pid;
    let parent_pid = rig.concrete().pid;
    if !under_seccomp() {
        assert_ne!(control_inode(child_pid), control_inode(parent_pid));
    }
    let mut regs = rig.regs;
    let cs = child.clone();
    let other = memfd(&[0x99u8; PAGE_SIZE as usize]);
    let other2 = other.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut ctx = pending.adopt().unwrap();
        assert_eq!(ctx.switch(&mut regs).unwrap(), Event::Syscall);
        assert_eq!(regs.orig_rax, 60);
        // fd passing through the child's own control socket.
        let backing = Backing::File {
            fd: other2.as_fd(),
            offset: 0,
        };
        cs.map(NEW_A, PAGE_SIZE, libc::PROT_READ, false, backing)
            .unwrap();
    })
    .join()
    .unwrap();
    // The child's store went to the shared file, which the parent maps too.
    let mut b = [0u8; 1];
    rig.space.read(FILE_ADDR, &mut b).unwrap();
    assert_eq!(b[0], 0x42);
    child.read(NEW_A, &mut b).unwrap();
    assert_eq!(b[0], 0x99);
    // The parent's socket still works.
    let backing = Backing::File {
        fd: other.as_fd(),
        offset: 0,
    };
    rig.space
        .map(NEW_B, PAGE_SIZE, libc::PROT_READ, false, backing)
        .unwrap();
    rig.space.read(NEW_B, &mut b).unwrap();
    assert_eq!(b[0], 0x99);
    // Each stub holds exactly its control socket.
    if under_seccomp() {
        return;
    }
    for pid in [parent_pid, child_pid] {
        assert_eq!(
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .count(),
            1
        );
    }
}

/// `mov r12d, n; L: mov eax, 39; syscall; dec r12d; jnz L; mov rdi, [rbx]; exit`.
fn getpid_loop(n: u32) -> Vec<u8> {
    code(&[
        &[0x41, 0xbc],
        &n.to_le_bytes(),
        &GETPID,
        &[0x41, 0xff, 0xcc], // dec r12d
        &[0x75, 0xf4],       // jnz L
        &[0x48, 0x8b, 0x3b], // mov rdi, [rbx]
        &EXIT,
    ])
}

/// Runs a context until its exit syscall; returns (getpid stops, rdi at exit).
fn run_to_exit(ctx: &mut dyn Context, regs: &mut Regs) -> (u32, u64) {
    let mut n = 0;
    loop {
        assert_eq!(ctx.switch(regs).unwrap(), Event::Syscall);
        match regs.orig_rax {
            60 => return (n, regs.rdi),
            39 => {
                regs.rax = 7;
                n += 1;
            }
            nr => panic!("syscall {nr}"),
        }
    }
}

#[test]
fn threads_share_the_space() {
    const N: u32 = 200;
    let mut rig = Rig::new(&getpid_loop(N));
    let pid = rig.concrete().pid;
    let pending = rig.ctx.new_thread().unwrap();
    await_tasks(pid, 2);
    let space = rig.space.clone();
    let mut regs = rig.regs;
    regs.rbx = NEW_A;
    let (to_main, from_t) = std::sync::mpsc::channel();
    let (to_t, from_main) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let mut ctx = pending.adopt().unwrap();
        // Through this thread's own stub thread.
        space
            .map(NEW_B, PAGE_SIZE, RW, false, Backing::Anonymous)
            .unwrap();
        space.write(NEW_B, &0xbbu64.to_le_bytes()).unwrap();
        to_main.send(()).unwrap();
        from_main.recv().unwrap();
        let r = run_to_exit(ctx.as_mut(), &mut regs);
        space.protect(NEW_B, PAGE_SIZE, libc::PROT_READ).unwrap();
        r
    });
    from_t.recv().unwrap();
    rig.space
        .map(NEW_A, PAGE_SIZE, RW, false, Backing::Anonymous)
        .unwrap();
    rig.space.write(NEW_A, &0xaau64.to_le_bytes()).unwrap();
    rig.regs.rbx = NEW_B;
    to_t.send(()).unwrap();
    // Both threads make syscalls at the same time, then read what the other mapped.
    let mine = run_to_exit(rig.ctx.as_mut(), &mut rig.regs);
    let theirs = t.join().unwrap();
    assert_eq!(mine, (N, 0xbb));
    assert_eq!(theirs, (N, 0xaa));
    // The thread's context is gone with its host thread's closure: so is its stub thread.
    await_tasks(pid, 1);
    // The space still works from the first thread.
    rig.space.unmap(NEW_B, PAGE_SIZE).unwrap();
    rig.regs.rip = CODE;
    rig.regs.rbx = NEW_A;
    assert_eq!(run_to_exit(rig.ctx.as_mut(), &mut rig.regs), (N, 0xaa));
}

#[test]
fn interrupter_hits_only_its_thread() {
    let mut rig = Rig::new(&[0xeb, 0xfe]); // jmp $
    let pending = rig.ctx.new_thread().unwrap();
    let mine = rig.ctx.interrupter();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut regs = rig.regs;
    let t = std::thread::spawn(move || {
        let mut ctx = pending.adopt().unwrap();
        tx.send(ctx.interrupter()).unwrap();
        let r = ctx.switch(&mut regs).unwrap();
        (r, Instant::now())
    });
    let theirs = rx.recv().unwrap();
    let main_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = main_done.clone();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        theirs.interrupt();
        std::thread::sleep(Duration::from_millis(100));
        // Interrupting the other thread did not stop this one.
        let still_running = !done.load(std::sync::atomic::Ordering::SeqCst);
        mine.interrupt();
        still_running
    });
    assert_eq!(rig.switch(), Event::Interrupted);
    let main_at = Instant::now();
    main_done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (r, their_at) = t.join().unwrap();
    assert_eq!(r, Event::Interrupted);
    assert!(their_at + Duration::from_millis(50) < main_at);
    assert!(killer.join().unwrap());
}

#[test]
fn threads_outlive_the_first_thread_and_its_host_thread() {
    let guard = FD_COUNT_LOCK.read().unwrap_or_else(|p| p.into_inner());
    let platform = Arc::new(new_platform().unwrap());
    let p = platform.clone();
    // The space, its first context and a second thread, all made on a host thread
    // that then ends its context and exits.
    let (space, pending, regs) = std::thread::spawn(move || {
        let space = p.new_address_space().unwrap();
        let mut ctx = p.new_context(&space).unwrap();
        space
            .map(DATA, PAGE_SIZE, RW, false, Backing::Anonymous)
            .unwrap();
        load_code(space.as_ref(), CODE, &getpid_loop(3));
        space.write(DATA, &5u64.to_le_bytes()).unwrap();
        let pending = ctx.new_thread().unwrap();
        let mut regs = space::zero_regs();
        regs.rip = CODE;
        regs.rbx = DATA;
        assert_eq!(run_to_exit(ctx.as_mut(), &mut regs.clone()), (3, 5));
        drop(ctx);
        (space, pending, regs)
    })
    .join()
    .unwrap();
    let pid = platform
        .shared
        .spaces
        .find(Arc::as_ptr(&space) as *const ())
        .unwrap()
        .pid;
    let mut ctx = pending.adopt().unwrap();
    let mut regs = regs;
    assert_eq!(run_to_exit(ctx.as_mut(), &mut regs), (3, 5));
    // The leader is a zombie now: memory access and edits still work.
    space
        .map(NEW_A, PAGE_SIZE, RW, false, Backing::Anonymous)
        .unwrap();
    space.write(NEW_A, &6u64.to_le_bytes()).unwrap();
    assert_eq!(read_u64(&space, NEW_A), 6);
    regs.rip = CODE;
    regs.rbx = NEW_A;
    assert_eq!(run_to_exit(ctx.as_mut(), &mut regs), (3, 6));
    drop(ctx);
    assert!(present(pid));
    drop(space);
    assert!(gone(pid), "stub {pid} not reaped");
    drop(guard);
}

#[test]
fn killed_stub_with_threads_reports_error() {
    let mut rig = Rig::new(&[0xeb, 0xfe]);
    let pid = rig.concrete().pid;
    let pending = rig.ctx.new_thread().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut regs = rig.regs;
    let space = rig.space.clone();
    let t = std::thread::spawn(move || {
        let mut ctx = pending.adopt().unwrap();
        tx.send(()).unwrap();
        let r = ctx.switch(&mut regs);
        let m = space.map(DATA, PAGE_SIZE, RW, false, Backing::Anonymous);
        (r, m)
    });
    rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    // SAFETY: the stub is alive and unreaped, so `pid` is still its number.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let (r, m) = t.join().unwrap();
    assert_eq!(r, Err(Errno::ESRCH));
    assert!(m.is_err());
    assert_eq!(rig.ctx.switch(&mut rig.regs), Err(Errno::ESRCH));
    assert!(rig.ctx.new_thread().is_err());
    assert!(rig.ctx.fork().is_err());
    let mut b = [0u8; 1];
    assert_eq!(rig.space.read(DATA, &mut b), Err(Errno::EFAULT));
    drop(rig);
    assert!(gone(pid));
}

/// A stub that dies while no switch runs (its tasks all wait inside the sentry) is
/// noticed at once, with one thread or several: a traced stub's process pidfd stays
/// unreadable while a traced thread is unreaped, so thread pidfds must say it.
#[test]
fn a_stub_death_runs_the_death_hooks_at_once() {
    for threads in [1, 3] {
        let mut rig = Rig::new(&[0xeb, 0xfe]);
        let pid = rig.concrete().pid;
        // Extra threads, each adopted by a host thread of its own that then waits
        // (as a task blocked in the sentry does) until the test ends.
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let done_rx = Arc::new(std::sync::Mutex::new(done_rx));
        let mut joins = Vec::new();
        for _ in 1..threads {
            let pending = rig.ctx.new_thread().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            let done_rx = done_rx.clone();
            joins.push(std::thread::spawn(move || {
                let ctx = pending.adopt().unwrap();
                tx.send(()).unwrap();
                let _ = done_rx.lock().unwrap().recv();
                drop(ctx);
            }));
            rx.recv().unwrap();
        }
        assert_eq!(task_count(pid), threads);
        let (tx, rx) = std::sync::mpsc::channel();
        let tx2 = tx.clone();
        rig.space.on_death(Box::new(move || tx.send(1).unwrap()));
        rig.space.on_death(Box::new(move || tx2.send(2).unwrap()));
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        let start = Instant::now();
        // SAFETY: the stub is alive and unreaped, so `pid` is still its number.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let mut got = vec![
            rx.recv_timeout(Duration::from_secs(2)).expect("death hook"),
            rx.recv_timeout(Duration::from_secs(2)).expect("death hook"),
        ];
        got.sort();
        assert_eq!(got, [1, 2], "{threads} threads");
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{threads} threads: {:?}",
            start.elapsed()
        );
        let mut b = [0u8; 1];
        assert_eq!(rig.space.read(DATA, &mut b), Err(Errno::EFAULT));
        // Registered after the death: it runs too.
        let (tx, rx) = std::sync::mpsc::channel();
        rig.space.on_death(Box::new(move || tx.send(3).unwrap()));
        assert_eq!(rx.recv_timeout(Duration::from_secs(2)), Ok(3));
        drop(done_tx);
        for j in joins {
            j.join().unwrap();
        }
        assert_eq!(rig.switch_result(), Err(Errno::ESRCH));
        drop(rig);
        assert!(gone(pid));
    }
}

/// A thread the sentry ends on purpose is no death: the others run on, and the
/// hooks do not run.
#[test]
fn ending_a_thread_is_no_death() {
    let mut rig = Rig::new(&getpid_loop(1));
    let pid = rig.concrete().pid;
    let pending = rig.ctx.new_thread().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    rig.space.on_death(Box::new(move || tx.send(()).unwrap()));
    std::thread::spawn(move || drop(pending.adopt().unwrap()))
        .join()
        .unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    assert!(!rig.concrete().dead.load(Ordering::SeqCst));
    assert_eq!(rig.switch(), Event::Syscall);
    drop(rig);
    assert!(gone(pid));
}

/// How many of our fds are pidfds or `/proc/<pid>/mem` files.
fn platform_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| {
            let l = l.to_string_lossy();
            l.contains("pidfd") || (l.starts_with("/proc/") && l.ends_with("/mem"))
        })
        .count()
}

/// Every pid listed as a child of some thread of ours.
fn our_children() -> Vec<i32> {
    let mut kids = Vec::new();
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            kids.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
    }
    kids
}

#[test]
fn many_forks_and_threads_leak_nothing() {
    const FORKS: usize = 200;
    const THREADS: usize = 64;
    let mut rig = Rig::exclusive(&getpid_loop(1));
    let fds_before = platform_fds();
    let pid = rig.concrete().pid;
    rig.regs.rbx = DATA;
    assert_eq!(rig.switch(), Event::Syscall);
    let mut child_pids = Vec::new();
    // Forks adopted, run and dropped one after the other on a helper thread; every
    // tenth one dropped without adoption.
    let (tx, rx) = std::sync::mpsc::channel::<(Arc<dyn AddressSpace>, Box<dyn PendingContext>)>();
    let regs = rig.regs;
    let helper = std::thread::spawn(move || {
        for (space, pending) in rx {
            let mut ctx = pending.adopt().unwrap();
            let mut r = regs;
            r.rbx = DATA;
            assert_eq!(run_to_exit(ctx.as_mut(), &mut r), (0, 0));
            drop(ctx);
            drop(space);
        }
    });
    for i in 0..FORKS {
        let (space, pending) = rig.ctx.fork().unwrap();
        child_pids.push(rig.concrete_of(&space).pid);
        if i % 10 == 9 {
            drop(pending);
            drop(space);
        } else {
            tx.send((space, pending)).unwrap();
        }
    }
    drop(tx);
    helper.join().unwrap();
    // Threads: all alive at once, each on its own host thread, then all dropped; a
    // few pending ones dropped without adoption.
    let barrier = Arc::new(std::sync::Barrier::new(THREADS + 1));
    let mut hosts = Vec::new();
    for i in 0..THREADS {
        let pending = rig.ctx.new_thread().unwrap();
        if i % 16 == 15 {
            drop(pending);
            continue;
        }
        let (b, space, mut r) = (barrier.clone(), rig.space.clone(), rig.regs);
        hosts.push(std::thread::spawn(move || {
            let mut ctx = pending.adopt().unwrap();
            let page = NEW_A + (i as u64) * PAGE_SIZE;
            space
                .map(page, PAGE_SIZE, RW, false, Backing::Anonymous)
                .unwrap();
            r.rbx = page;
            b.wait();
            assert_eq!(run_to_exit(ctx.as_mut(), &mut r), (0, 0));
            b.wait();
        }));
    }
    let adopted = hosts.len();
    for _ in adopted..THREADS {
        // The dropped pendings' parties.
        std::thread::spawn({
            let b = barrier.clone();
            move || {
                b.wait();
                b.wait();
            }
        });
    }
    barrier.wait();
    await_tasks(pid, adopted + 1);
    barrier.wait();
    for h in hosts {
        h.join().unwrap();
    }
    await_tasks(pid, 1);
    for &c in &child_pids {
        assert!(gone(c), "forked stub {c} left behind");
    }
    let kids = our_children();
    assert!(child_pids.iter().all(|c| !kids.contains(c)));
    assert_eq!(platform_fds(), fds_before);
    // The first thread still runs, and after the last drop nothing is left.
    assert_eq!(run_to_exit(rig.ctx.as_mut(), &mut rig.regs), (0, 0));
    drop(rig);
    assert!(gone(pid));
    assert!(!our_children().contains(&pid));
}

#[test]
#[ignore = "benchmark; run with --ignored --nocapture"]
fn bench_fork_and_thread_creation() {
    const N: usize = 200;
    let mut rig = Rig::new(&getpid_loop(1));
    // Some app memory to copy, as a small real process has.
    rig.space
        .map(0x1000_0000, 4 << 20, RW, false, Backing::Anonymous)
        .unwrap();
    for p in 0..1024u64 {
        rig.space.write(0x1000_0000 + p * PAGE_SIZE, &[1]).unwrap();
    }
    assert_eq!(rig.switch(), Event::Syscall);
    let (tx, rx) = std::sync::mpsc::channel::<Box<dyn PendingContext>>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Duration>();
    let adopter = std::thread::spawn(move || {
        for pending in rx {
            let s = Instant::now();
            let ctx = pending.adopt().unwrap();
            done_tx.send(s.elapsed()).unwrap();
            drop(ctx);
        }
    });
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_micros()
    };
    let mean = |v: &[Duration]| (v.iter().sum::<Duration>() / v.len() as u32).as_micros();
    let (mut fork, mut adopt, mut spaces) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..N {
        let s = Instant::now();
        let (space, pending) = rig.ctx.fork().unwrap();
        fork.push(s.elapsed());
        tx.send(pending).unwrap();
        adopt.push(done_rx.recv().unwrap());
        spaces.push(space);
    }
    drop(spaces);
    let (mut clone, mut tadopt) = (Vec::new(), Vec::new());
    for _ in 0..N {
        let s = Instant::now();
        let pending = rig.ctx.new_thread().unwrap();
        clone.push(s.elapsed());
        tx.send(pending).unwrap();
        tadopt.push(done_rx.recv().unwrap());
    }
    drop(tx);
    adopter.join().unwrap();
    println!(
        "us, median/mean: fork {}/{} + adopt {}/{}; new_thread {}/{} + adopt {}/{}",
        median(fork.clone()),
        mean(&fork),
        median(adopt.clone()),
        mean(&adopt),
        median(clone.clone()),
        mean(&clone),
        median(tadopt.clone()),
        mean(&tadopt)
    );
}

/// Set in a child test process that runs under the sentry's seccomp filter.
const SECCOMP_ENV: &str = "RVISOR_PTRACE_TEST_UNDER_SECCOMP";

/// Stubs inherit the sentry's seccomp filter, so every remote syscall must be on the
/// allow-list: rerun the fork and thread tests in a child test process that installs
/// the filter first (a violation kills that process).
#[test]
fn fork_and_threads_under_the_sentry_filter() {
    if std::env::var_os(SECCOMP_ENV).is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for name in [
        "fork_is_copy_on_write",
        "fork_keeps_shared_file_mappings_and_gets_its_own_socket",
        "threads_share_the_space",
        "interrupter_hits_only_its_thread",
    ] {
        let out = std::process::Command::new(&exe)
            .args(["--exact", &format!("platform::ptrace::tests::{name}")])
            .args(["--test-threads=1", "--nocapture"])
            .env(SECCOMP_ENV, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{name} under seccomp: {:?}\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The parent pid of process `pid`.
fn ppid_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit(')').next().unwrap();
    after.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn forked_stubs_fork_again() {
    let mut rig = Rig::new(&getpid_loop(2));
    rig.regs.rbx = DATA;
    rig.space.write(DATA, &9u64.to_le_bytes()).unwrap();
    assert_eq!(rig.switch(), Event::Syscall);
    let (child, pending) = rig.ctx.fork().unwrap();
    let child_pid = rig.concrete_of(&child).pid;
    let regs = rig.regs;
    let grandchild_pid = std::thread::spawn(move || {
        let mut ctx = pending.adopt().unwrap();
        let mut r = regs;
        child.write(DATA, &10u64.to_le_bytes()).unwrap();
        assert_eq!(ctx.switch(&mut r).unwrap(), Event::Syscall);
        let (grandchild, pending) = ctx.fork().unwrap();
        let mut gr = r;
        let gs = grandchild.clone();
        let (n, v) = std::thread::spawn(move || {
            let mut ctx = pending.adopt().unwrap();
            gs.write(DATA, &11u64.to_le_bytes()).unwrap();
            run_to_exit(ctx.as_mut(), &mut gr)
        })
        .join()
        .unwrap();
        assert_eq!((n, v), (0, 11));
        assert_eq!(run_to_exit(ctx.as_mut(), &mut r), (0, 10));
        (child, grandchild)
    })
    .join()
    .unwrap();
    let (child, grandchild) = grandchild_pid;
    // All stubs are children of the sentry, whoever forked them.
    let me = std::process::id() as i32;
    assert_eq!(ppid_of(child_pid), me);
    let gc_pid = rig.concrete_of(&grandchild).pid;
    assert_eq!(ppid_of(gc_pid), me);
    assert_eq!(run_to_exit(rig.ctx.as_mut(), &mut rig.regs), (1, 9));
    drop((child, grandchild));
    assert!(gone(child_pid) && gone(gc_pid));
}

/// The state letter of process `pid` (`R`, `S`, `t`, `Z`, ...).
fn state_of(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit(')').next().unwrap();
    after
        .split_whitespace()
        .next()
        .unwrap()
        .chars()
        .next()
        .unwrap()
}

fn await_state(pid: i32, want: char) {
    let start = Instant::now();
    while state_of(pid) != want {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{pid} is in state {}, want {want}",
            state_of(pid)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn parked_stub_exits_when_the_sentry_end_hangs_up() {
    let mut rig = Rig::new(&getpid_loop(1));
    assert_eq!(rig.switch(), Event::Syscall);
    let (child, pending) = rig.ctx.fork().unwrap();
    let concrete = rig.concrete_of(&child);
    let pid = concrete.pid;
    // Parked: sleeping, not traced by anyone.
    await_state(pid, 'S');
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("TracerPid:\t0"), "{status}");
    // What the death of the sentry does to the socket: the parked stub leaves.
    // SAFETY: shutdown on an fd the space owns; it stays open.
    let r = unsafe { libc::shutdown(concrete.control.as_raw_fd(), libc::SHUT_RDWR) };
    assert_eq!(r, 0);
    await_state(pid, 'Z');
    // Adoption fails cleanly, and dropping reaps the zombie.
    let r = std::thread::spawn(move || pending.adopt().err())
        .join()
        .unwrap();
    assert_eq!(r, Some(Errno::ESRCH));
    drop((concrete, child));
    assert!(gone(pid));
}
