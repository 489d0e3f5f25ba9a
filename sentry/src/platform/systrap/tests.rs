//! Tests of the systrap platform; they start real stubs (adapted from the ptrace tests).

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::platform::{Backing, Event, Regs, PAGE_SIZE};

const CODE: u64 = 0x40_0000;
const DATA: u64 = 0x50_0000;
const FILE_ADDR: u64 = 0x60_0000;
use abi::signal::{SEGV_ACCERR, SEGV_MAPERR};
const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;
const RX: i32 = libc::PROT_READ | libc::PROT_EXEC;

/// `mov eax, 60; syscall` (exit): ends most snippets with a recognizable stop.
const EXIT: [u8; 7] = [0xb8, 0x3c, 0, 0, 0, 0x0f, 0x05];

/// The platform, in a test process that dumps no core: stubs that die of a signal
/// here (on purpose, in several tests) inherit the limit, as they inherit the
/// sentry's in a sandbox.
fn new_platform() -> crate::errno::SysResult<SystrapPlatform> {
    crate::sys::confine::no_core_dumps().expect("RLIMIT_CORE");
    SystrapPlatform::new()
}

struct Rig {
    platform: SystrapPlatform,
    space: Arc<dyn AddressSpace>,
    ctx: Box<dyn Context>,
    regs: Regs,
}

impl Rig {
    /// A space with `code` at CODE (RX) and one RW page at DATA; regs ready to run it.
    fn new(code: &[u8]) -> Rig {
        let platform = new_platform().expect("platform");
        let space = platform.new_address_space().expect("space");
        let ctx = platform.new_context(&space).expect("context");
        space
            .map(DATA, PAGE_SIZE, RW, false, Backing::Anonymous)
            .expect("map data");
        load_code(space.as_ref(), CODE, code);
        // SAFETY: user_regs_struct is plain integers; all-zero is valid.
        let mut regs: Regs = unsafe { std::mem::zeroed() };
        regs.rip = CODE;
        regs.rsp = DATA + PAGE_SIZE;
        Rig {
            platform,
            space,
            ctx,
            regs,
        }
    }

    fn switch(&mut self) -> Event {
        self.ctx.switch(&mut self.regs).expect("switch")
    }

    fn concrete(&self) -> Arc<SystrapSpace> {
        self.concrete_of(&self.space)
    }

    fn concrete_of(&self, space: &Arc<dyn AddressSpace>) -> Arc<SystrapSpace> {
        self.platform
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
        "rvisor-systrap-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
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
    // The stub kept no fd of the file: only its control socket and command memfd.
    let pid = rig.concrete().pid;
    let fds: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .collect();
    assert_eq!(fds.len(), 2);
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
    for sig in [libc::SIGTERM, libc::SIGSEGV, libc::SIGINT, libc::SIGUSR1] {
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
    // Any thread may edit the space (no tracer thread here).
    let space = rig.space.clone();
    let r = std::thread::spawn(move || space.map(DATA, PAGE_SIZE, RW, false, Backing::Anonymous))
        .join()
        .unwrap();
    assert_eq!(r, Ok(()));
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

/// The inode of a region memfd mapped on `/proc/self/maps` line `line`.
fn region_inode(line: &str) -> Option<u64> {
    if !line.contains("rvisor-systrap-region") {
        return None;
    }
    line.split_whitespace().nth(4)?.parse().ok()
}

#[test]
fn drop_leaves_no_process_or_fd() {
    let rig = Rig::new(&EXIT);
    let space = rig.concrete();
    let pid = space.pid;
    let zygote = rig.platform.zygote_pid;
    // The inode of its region's memfd, as the sentry maps it.
    let inode = {
        let first = space.first_thread().unwrap();
        let chan = first.chan.lock().unwrap();
        let at = format!("{:x}-", chan.region.addr());
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .find(|l| l.starts_with(&at))
            .and_then(region_inode)
            .expect("region mapped")
    };
    let control = fd_identity(space.control_fd());
    let ours = [control, fd_identity(space.pidfd.as_raw_fd())];
    drop(space);
    drop(rig);
    let now = open_files();
    for id in ours {
        assert!(!now.contains(&id), "fd {id:?} leaked");
    }
    // The stub is killed asynchronously and reaped by the zygote (or init).
    let start = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "stub {pid} not reaped"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!std::path::Path::new(&format!("/proc/{zygote}")).exists());
    // Its region is gone from the sentry (other tests' regions may be mapped).
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(
        !maps.lines().any(|l| region_inode(l) == Some(inode)),
        "{maps}"
    );
}

#[test]
fn many_spaces_in_parallel() {
    let platform = Arc::new(new_platform().unwrap());
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let p = platform.clone();
            std::thread::spawn(move || {
                let space = p.new_address_space().unwrap();
                let mut ctx = p.new_context(&space).unwrap();
                load_code(space.as_ref(), CODE, &EXIT);
                // SAFETY: user_regs_struct is plain integers; all-zero is valid.
                let mut regs: Regs = unsafe { std::mem::zeroed() };
                regs.rip = CODE;
                regs.rdi = i;
                assert_eq!(ctx.switch(&mut regs).unwrap(), Event::Syscall);
                assert_eq!((regs.orig_rax, regs.rdi), (60, i));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn idle_app_burns_no_cpu() {
    // A long-running app (or one whose syscall the sentry holds) must leave both
    // sides asleep after their bounded spins.
    let mut rig = Rig::new(&[0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7]); // loop: getpid
    assert_eq!(rig.switch(), Event::Syscall);
    let pid = rig.concrete().pid;
    let ticks = |pid: i32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let rest = stat.rsplit_once(')').unwrap().1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let t0 = ticks(pid);
    std::thread::sleep(Duration::from_millis(500));
    let t1 = ticks(pid);
    assert!(t1 - t0 <= 2, "parked stub used {} ticks in 500 ms", t1 - t0);
}

#[test]
#[ignore = "benchmark; run with --ignored --nocapture"]
fn bench_syscall_roundtrip() {
    // Batches, so that time the machine spends elsewhere (other builds on a shared
    // box) shows as a few slow batches, not in the median.
    const BATCHES: u32 = 25;
    const N: u32 = 1000;
    let c = code(&[
        &[0x41, 0xbc],
        &(BATCHES * N).to_le_bytes(), // mov r12d, BATCHES * N
        &[0xb8, 39, 0, 0, 0],         // L: mov eax, 39
        &[0x0f, 0x05],                // syscall
        &[0x41, 0xff, 0xcc],          // dec r12d
        &[0x75, 0xf4],                // jnz L
        &EXIT,
    ]);
    let mut rig = Rig::new(&c);
    let mut per_batch = Vec::new();
    for _ in 0..BATCHES {
        let start = Instant::now();
        for _ in 0..N {
            assert_eq!(rig.switch(), Event::Syscall);
            assert_eq!(rig.regs.orig_rax, 39);
            rig.regs.rax = 1;
        }
        per_batch.push(start.elapsed().as_nanos() / u128::from(N));
    }
    assert_eq!(rig.switch(), Event::Syscall);
    assert_eq!(rig.regs.orig_rax, 60);
    per_batch.sort_unstable();
    println!(
        "systrap syscall round trip: median {} ns, min {} ns, max {} ns ({BATCHES} batches of {N})",
        per_batch[per_batch.len() / 2],
        per_batch[0],
        per_batch[per_batch.len() - 1],
    );
}

#[test]
#[ignore = "benchmark; run with --ignored --nocapture"]
fn bench_trampoline_against_the_trap() {
    // The same getpid loop, through a trapped `syscall` and through the trampoline
    // (as a patched site's table entry enters it), batches alternating.
    const BATCHES: u32 = 25;
    const N: u32 = 1000;
    let trap = code(&[
        &[0x41, 0xbc],
        &(BATCHES * N).to_le_bytes(), // mov r12d, BATCHES * N
        &[0xb8, 39, 0, 0, 0],         // L: mov eax, 39
        &[0x0f, 0x05],                // syscall
        &[0x41, 0xff, 0xcc],          // dec r12d
        &[0x75, 0xf4],                // jnz L
        &EXIT,
    ]);
    let tramp = code(&[
        &[0x41, 0xbc],
        &(BATCHES * N).to_le_bytes(),     // mov r12d, BATCHES * N
        &[0xb8, 39, 0, 0, 0],             // L: mov eax, 39
        &[0x48, 0x8d, 0x0d, 13, 0, 0, 0], // lea rcx, [rip+13]
        &[0x49, 0xbb],                    // movabs r11, TRAMP
        &stub::TRAMP.to_le_bytes(),
        &[0x41, 0xff, 0xe3], // jmp r11
        &[0x41, 0xff, 0xcc], // dec r12d
        &[0x75, 0xe2],       // jnz L
        &EXIT,
    ]);
    // RVISOR_BENCH_SWAP: make the trampoline's rig first (each rig pins its stub
    // and the test thread to a CPU, which the order may favour).
    let swap = std::env::var_os("RVISOR_BENCH_SWAP").is_some();
    let mut rigs = if swap {
        [Rig::new(&tramp), Rig::new(&trap)]
    } else {
        [Rig::new(&trap), Rig::new(&tramp)]
    };
    let names = if swap {
        ["trampoline", "trap"]
    } else {
        ["trap", "trampoline"]
    };
    let mut per_batch = [Vec::new(), Vec::new()];
    for _ in 0..BATCHES {
        for (i, rig) in rigs.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..N {
                assert_eq!(rig.switch(), Event::Syscall);
                assert_eq!(rig.regs.orig_rax, 39);
                rig.regs.rax = 1;
            }
            per_batch[i].push(start.elapsed().as_nanos() / u128::from(N));
        }
    }
    for (i, name) in names.iter().enumerate() {
        assert_eq!(rigs[i].switch(), Event::Syscall);
        assert_eq!(rigs[i].regs.orig_rax, 60);
        let b = &mut per_batch[i];
        b.sort_unstable();
        println!(
            "systrap getpid round trip, {name}: median {} ns, min {} ns ({BATCHES} batches of {N})",
            b[b.len() / 2],
            b[0],
        );
    }
}

// ---- fork and threads ----

/// `mov eax, 39; syscall` (getpid): a recognizable stop.
const GETPID: [u8; 7] = [0xb8, 39, 0, 0, 0, 0x0f, 0x05];
const NEW_A: u64 = 0x70_0000;
const NEW_B: u64 = 0x71_0000;

/// The application threads of stub `pid` (its tasks but the syscall thread), or 0
/// once the process is gone.
fn task_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count().saturating_sub(1))
        .unwrap_or(0)
}

/// Waits (briefly) until `pid`'s thread count is `n`.
fn await_tasks(pid: i32, n: usize) {
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

/// Waits (briefly) until `pid` is gone: stubs are killed asynchronously and reaped
/// by the zygote.
fn await_gone(pid: i32) {
    let start = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "stub {pid} left behind"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn read_u64(space: &Arc<dyn AddressSpace>, addr: u64) -> u64 {
    let mut b = [0u8; 8];
    assert_eq!(space.read(addr, &mut b).unwrap(), 8);
    u64::from_le_bytes(b)
}

/// The parent pid of `pid`.
fn ppid_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit(')').next().unwrap();
    after.split_whitespace().nth(1).unwrap().parse().unwrap()
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

/// The targets of stub `pid`'s open fds.
fn stub_fds(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect()
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
    rig.regs.fs_base = 0x1234_5000;
    assert_eq!(rig.switch(), Event::Syscall);
    let (child, pending) = rig.ctx.fork().unwrap();
    let parent_pid = rig.concrete().pid;
    let child_pid = rig.concrete_of(&child).pid;
    assert_ne!(child_pid, parent_pid);
    // The child sets itself up while the fork returns; its report is taken when
    // its context is adopted, or here.
    rig.concrete_of(&child).settle().unwrap();
    // A sibling of the parent stub: a child of the zygote, which reaps it.
    assert_eq!(ppid_of(child_pid), rig.platform.zygote_pid);
    // Only the forking thread's region, now the child's own, is left in the child.
    let maps = std::fs::read_to_string(format!("/proc/{child_pid}/maps")).unwrap();
    assert_eq!(maps.matches("rvisor-systrap-region").count(), 1, "{maps}");
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
        assert_eq!(regs.fs_base, 0x1234_5000);
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
    assert!(std::path::Path::new(&format!("/proc/{child_pid}")).exists());
    drop(child);
    await_gone(child_pid);
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
    rig.concrete_of(&child).settle().unwrap();
    // Each stub holds exactly two fds, its own control socket and command memfd.
    let (mut pf, mut cf) = (stub_fds(parent_pid), stub_fds(child_pid));
    pf.sort();
    cf.sort();
    assert_eq!((pf.len(), cf.len()), (2, 2), "{pf:?} {cf:?}");
    assert!(pf[1].starts_with("socket:") && cf[1].starts_with("socket:"));
    assert_ne!(pf[1], cf[1]);
    // Not the same command memfd either (the same name, another inode).
    let inode = |pid: i32, fd: &str| {
        std::fs::metadata(format!("/proc/{pid}/fd/{fd}"))
            .unwrap()
            .ino()
    };
    let memfd_no = |pid: i32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| {
                std::fs::read_link(e.path())
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("/memfd:")
            })
            .unwrap()
            .file_name()
            .into_string()
            .unwrap()
    };
    assert_ne!(
        inode(parent_pid, &memfd_no(parent_pid)),
        inode(child_pid, &memfd_no(child_pid))
    );
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
    assert_eq!(stub_fds(parent_pid).len(), 2);
    assert_eq!(stub_fds(child_pid).len(), 2);
}

#[test]
fn threads_share_the_space() {
    const N: u32 = 200;
    let mut rig = Rig::new(&getpid_loop(N));
    let pid = rig.concrete().pid;
    rig.regs.fs_base = 0x4321_0000;
    // The new thread starts with its creator's FP state (xmm0 here).
    let mut fp = rig.ctx.fp_state().unwrap();
    fp[160..176].copy_from_slice(&[0x5a; 16]);
    rig.ctx.set_fp_state(&fp).unwrap();
    let pending = rig.ctx.new_thread().unwrap();
    await_tasks(pid, 2);
    let space = rig.space.clone();
    let mut regs = rig.regs;
    regs.rbx = NEW_A;
    let (to_main, from_t) = std::sync::mpsc::channel();
    let (to_t, from_main) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let mut ctx = pending.adopt().unwrap();
        assert_eq!(ctx.fp_state().unwrap()[160..176], [0x5a; 16]);
        space
            .map(NEW_B, PAGE_SIZE, RW, false, Backing::Anonymous)
            .unwrap();
        space.write(NEW_B, &0xbbu64.to_le_bytes()).unwrap();
        to_main.send(()).unwrap();
        from_main.recv().unwrap();
        let r = run_to_exit(ctx.as_mut(), &mut regs);
        space.protect(NEW_B, PAGE_SIZE, libc::PROT_READ).unwrap();
        (r, regs.fs_base)
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
    let (theirs, fs) = t.join().unwrap();
    assert_eq!(mine, (N, 0xbb));
    assert_eq!(theirs, (N, 0xaa));
    assert_eq!(fs, 0x4321_0000);
    // The thread's context is gone with its host thread's closure: so is its stub thread.
    await_tasks(pid, 1);
    rig.space.unmap(NEW_B, PAGE_SIZE).unwrap();
    rig.regs.rip = CODE;
    rig.regs.rbx = NEW_A;
    assert_eq!(run_to_exit(rig.ctx.as_mut(), &mut rig.regs), (N, 0xaa));
    // Its slot is reused by the next thread.
    let pending = rig.ctx.new_thread().unwrap();
    await_tasks(pid, 2);
    drop(pending);
    await_tasks(pid, 1);
}

#[test]
fn blocking_hint_is_set_while_parked_and_cleared_by_the_next_hand_over() {
    let mut rig = Rig::new(&getpid_loop(2));
    rig.regs.rbx = DATA;
    assert_eq!(rig.switch(), Event::Syscall);
    let first = rig.concrete().first_thread().unwrap();
    let word = |t: &space::StubThread| {
        let chan = t.chan.lock().unwrap();
        chan.region
            .word(stub::OFF_STUB_NOSPIN)
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    assert_eq!(word(&first), 0);
    rig.ctx.interrupter().blocking();
    assert_eq!(word(&first), 1);
    // The parked handler now sleeps on the futex: the next switch still reaches it.
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(rig.switch(), Event::Syscall);
    assert_eq!(word(&first), 0);
    assert_eq!(run_to_exit(rig.ctx.as_mut(), &mut rig.regs), (0, 0));
}

#[test]
fn interrupter_hits_only_its_thread() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let mut rig = Rig::new(&[0xeb, 0xfe]); // jmp $
    let pending = rig.ctx.new_thread().unwrap();
    let mine = rig.ctx.interrupter();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut regs = rig.regs;
    let their_done = Arc::new(AtomicBool::new(false));
    let theirs_flag = their_done.clone();
    let t = std::thread::spawn(move || {
        let mut ctx = pending.adopt().unwrap();
        tx.send(ctx.interrupter()).unwrap();
        let r = ctx.switch(&mut regs).unwrap();
        theirs_flag.store(true, SeqCst);
        r
    });
    let theirs = rx.recv().unwrap();
    let main_done = Arc::new(AtomicBool::new(false));
    let done = main_done.clone();
    // Decided by events, not by elapsed time, so a loaded machine cannot fail it.
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        theirs.interrupt();
        let start = Instant::now();
        while !their_done.load(SeqCst) && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let their_stopped = their_done.load(SeqCst);
        // Interrupting the other thread did not stop this one.
        let still_running = !done.load(SeqCst);
        mine.interrupt();
        (their_stopped, still_running)
    });
    assert_eq!(rig.switch(), Event::Interrupted);
    main_done.store(true, SeqCst);
    assert_eq!(t.join().unwrap(), Event::Interrupted);
    assert_eq!(killer.join().unwrap(), (true, true));
}

#[test]
fn threads_outlive_the_first_thread_and_its_host_thread() {
    let platform = Arc::new(new_platform().unwrap());
    let p = platform.clone();
    let (space, pending, regs) = std::thread::spawn(move || {
        let space = p.new_address_space().unwrap();
        let mut ctx = p.new_context(&space).unwrap();
        space
            .map(DATA, PAGE_SIZE, RW, false, Backing::Anonymous)
            .unwrap();
        load_code(space.as_ref(), CODE, &getpid_loop(3));
        space.write(DATA, &5u64.to_le_bytes()).unwrap();
        let pending = ctx.new_thread().unwrap();
        // SAFETY: user_regs_struct is plain integers; all-zero is valid.
        let mut regs: Regs = unsafe { std::mem::zeroed() };
        regs.rip = CODE;
        regs.rbx = DATA;
        assert_eq!(run_to_exit(ctx.as_mut(), &mut regs.clone()), (3, 5));
        drop(ctx);
        (space, pending, regs)
    })
    .join()
    .unwrap();
    let mut ctx = pending.adopt().unwrap();
    let mut regs = regs;
    assert_eq!(run_to_exit(ctx.as_mut(), &mut regs), (3, 5));
    // The first thread's context is gone: memory access and edits still work.
    space
        .map(NEW_A, PAGE_SIZE, RW, false, Backing::Anonymous)
        .unwrap();
    space.write(NEW_A, &6u64.to_le_bytes()).unwrap();
    assert_eq!(read_u64(&space, NEW_A), 6);
    regs.rip = CODE;
    regs.rbx = NEW_A;
    assert_eq!(run_to_exit(ctx.as_mut(), &mut regs), (3, 6));
}

#[test]
fn forked_stubs_fork_again_and_have_threads() {
    let mut rig = Rig::new(&getpid_loop(3));
    rig.regs.rbx = DATA;
    rig.space.write(DATA, &9u64.to_le_bytes()).unwrap();
    assert_eq!(rig.switch(), Event::Syscall);
    // A thread first, so the fork happens from a thread in slot 1.
    let pending_t = rig.ctx.new_thread().unwrap();
    let regs = rig.regs;
    let (child, child_pid, gc_pid) = std::thread::spawn(move || {
        let mut tctx = pending_t.adopt().unwrap();
        let mut r = regs;
        assert_eq!(tctx.switch(&mut r).unwrap(), Event::Syscall);
        let (child, pending) = tctx.fork().unwrap();
        let cs = child.clone();
        let (gc, gc_pid_and_n) = std::thread::spawn(move || {
            let mut ctx = pending.adopt().unwrap();
            let mut r = r;
            cs.write(DATA, &10u64.to_le_bytes()).unwrap();
            assert_eq!(ctx.switch(&mut r).unwrap(), Event::Syscall);
            // And a thread of the child, then a grandchild.
            let pt = ctx.new_thread().unwrap();
            let (grandchild, pending) = ctx.fork().unwrap();
            let gs = grandchild.clone();
            let mut gr = r;
            let n = std::thread::spawn(move || {
                let mut ctx = pending.adopt().unwrap();
                gs.write(DATA, &11u64.to_le_bytes()).unwrap();
                run_to_exit(ctx.as_mut(), &mut gr)
            })
            .join()
            .unwrap();
            drop(pt);
            assert_eq!(run_to_exit(ctx.as_mut(), &mut r), (0, 10));
            (grandchild, n)
        })
        .join()
        .unwrap();
        assert_eq!(gc_pid_and_n, (0, 11));
        assert_eq!(run_to_exit(tctx.as_mut(), &mut r), (1, 9));
        (child, 0, gc)
    })
    .join()
    .map(|(c, _, gc)| {
        let cp = rig.concrete_of(&c).pid;
        let gp = rig.concrete_of(&gc).pid;
        drop(gc);
        (c, cp, gp)
    })
    .unwrap();
    let z = rig.platform.zygote_pid;
    assert_eq!(ppid_of(child_pid), z);
    await_gone(gc_pid);
    assert_eq!(read_u64(&child, DATA), 10);
    assert_eq!(run_to_exit(rig.ctx.as_mut(), &mut rig.regs), (2, 9));
    drop(child);
    await_gone(child_pid);
}

#[test]
fn many_forks_and_threads_leak_nothing() {
    const FORKS: usize = 40;
    const THREADS: usize = 24;
    let mut rig = Rig::new(&getpid_loop(1));
    let pid = rig.concrete().pid;
    rig.regs.rbx = DATA;
    assert_eq!(rig.switch(), Event::Syscall);
    let mut child_pids = Vec::new();
    for i in 0..FORKS {
        let (space, pending) = rig.ctx.fork().unwrap();
        child_pids.push(rig.concrete_of(&space).pid);
        if i % 4 == 3 {
            drop(pending);
        } else {
            let regs = rig.regs;
            std::thread::spawn(move || {
                let mut ctx = pending.adopt().unwrap();
                let mut r = regs;
                assert_eq!(run_to_exit(ctx.as_mut(), &mut r), (0, 0));
            })
            .join()
            .unwrap();
        }
        drop(space);
    }
    // Channels with timeouts, not barriers: a host thread that fails must fail the
    // test, not leave the main thread waiting for it forever.
    let (ran_tx, ran_rx) = std::sync::mpsc::channel();
    let mut hold = Vec::new();
    let mut hosts = Vec::new();
    for i in 0..THREADS {
        let pending = rig.ctx.new_thread().unwrap();
        let (space, mut r, ran) = (rig.space.clone(), rig.regs, ran_tx.clone());
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        hold.push(hold_tx);
        hosts.push(std::thread::spawn(move || {
            let mut ctx = pending.adopt().unwrap();
            let page = NEW_A + (i as u64) * PAGE_SIZE;
            space
                .map(page, PAGE_SIZE, RW, false, Backing::Anonymous)
                .unwrap();
            r.rbx = page;
            let _ = ran.send(run_to_exit(ctx.as_mut(), &mut r));
            // Keeps the context (and its stub thread) until the main thread counted.
            let _ = hold_rx.recv();
        }));
    }
    drop(ran_tx);
    for _ in 0..THREADS {
        let ran = ran_rx.recv_timeout(Duration::from_secs(60));
        assert_eq!(ran.expect("a host thread failed or stalled"), (0, 0));
    }
    await_tasks(pid, THREADS + 1);
    // All contexts end at once: their ends race each other's clean-up.
    drop(hold);
    for h in hosts {
        h.join().unwrap();
    }
    await_tasks(pid, 1);
    for &c in &child_pids {
        await_gone(c);
    }
    // Only the first thread's region is left in the stub once the space is edited
    // (regions of threads that ended while no other thread was parked go then).
    rig.space.unmap(NEW_A, THREADS as u64 * PAGE_SIZE).unwrap();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    assert_eq!(maps.matches("rvisor-systrap-region").count(), 1, "{maps}");
    assert_eq!(run_to_exit(rig.ctx.as_mut(), &mut rig.regs), (0, 0));
}

/// Runs `f` on its own thread and fails if it takes longer than `limit`: for tests
/// whose failure mode is a hang.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("hung for {limit:?}"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("panicked"),
    }
}

/// The fd table of stub thread `tid` of `pid`, as link targets.
fn thread_fds(pid: i32, tid: &str) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task/{tid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn application_threads_hold_no_fd() {
    // Only the syscall thread, which never runs application code, holds fds: its
    // control socket and command memfd. An fd the sentry passes for a mapping is
    // never in an application thread's table, and neither is the file whose offset
    // carries the syscall thread's results.
    let mut rig = Rig::new(&getpid_loop(1));
    rig.regs.rbx = DATA;
    assert_eq!(rig.switch(), Event::Syscall);
    let pid = rig.concrete().pid;
    let a = rig.ctx.new_thread().unwrap().adopt().unwrap();
    // A new thread comes up while its creator goes on: adopting its context waits
    // for it (it has closed its fds before it reports in).
    let b = rig.ctx.new_thread().unwrap().adopt().unwrap();
    let check = || {
        let tids: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            tids.len(),
            4,
            "the syscall thread and three application threads"
        );
        for tid in &tids {
            let mut fds = thread_fds(pid, tid);
            fds.sort();
            if *tid == pid.to_string() {
                assert_eq!(fds.len(), 2, "syscall thread: {fds:?}");
                assert!(fds[0].starts_with("/memfd:rvisor-systrap-cmd"), "{fds:?}");
                assert!(fds[1].starts_with("socket:"), "{fds:?}");
            } else {
                assert!(fds.is_empty(), "application thread {tid}: {fds:?}");
            }
        }
    };
    check();
    // File mappings through any thread leave no fd behind in any table.
    let file = temp_file(&[0x5a; 4096]);
    let backing = Backing::File {
        fd: file.as_fd(),
        offset: 0,
    };
    rig.space
        .map(FILE_ADDR, PAGE_SIZE, RW, true, backing)
        .unwrap();
    assert_eq!(read_u64(&rig.space, FILE_ADDR), 0x5a5a_5a5a_5a5a_5a5a);
    check();
    drop((a, b));
    assert_eq!(run_to_exit(rig.ctx.as_mut(), &mut rig.regs), (0, 0));
}

#[test]
fn space_edits_race_ending_threads() {
    // Threads end, several at once, while another host thread keeps editing the
    // space: nothing may wait on a thread that is gone.
    within(Duration::from_secs(60), || {
        let mut rig = Rig::new(&getpid_loop(1));
        rig.regs.rbx = DATA;
        assert_eq!(rig.switch(), Event::Syscall);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (space, halt) = (rig.space.clone(), stop.clone());
        let editor = std::thread::spawn(move || {
            let mut edits = 0u32;
            while !halt.load(std::sync::atomic::Ordering::SeqCst) {
                space
                    .map(NEW_B, PAGE_SIZE, RW, false, Backing::Anonymous)
                    .unwrap();
                space.unmap(NEW_B, PAGE_SIZE).unwrap();
                edits += 1;
            }
            edits
        });
        for _ in 0..50 {
            let ending: Vec<_> = (0..6).map(|_| rig.ctx.new_thread().unwrap()).collect();
            let enders: Vec<_> = ending
                .into_iter()
                .map(|p| std::thread::spawn(move || drop(p.adopt().unwrap())))
                .collect();
            for e in enders {
                e.join().unwrap();
            }
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(editor.join().unwrap() > 0);
        assert_eq!(run_to_exit(rig.ctx.as_mut(), &mut rig.regs), (0, 0));
    });
}

#[test]
fn stub_filter_allows_clone_and_prctl_only_as_the_stub_makes_them() {
    // Application code jumping onto the stub's own clone and prctl instructions
    // with other flags, another option or another call is killed with its stub.
    let cases = [
        (libc::SYS_clone, libc::CLONE_VM as u32, stub::CLONE_SITE),
        (libc::SYS_prctl, libc::PR_SET_NAME as u32, stub::PRCTL_SITE),
        (libc::SYS_getpid, 0, stub::CLONE_SITE),
        (libc::SYS_clone, stub::FORK_FLAGS as u32, stub::PRCTL_SITE),
        // x32 numbers (bit 30) of calls the code page may make match no row.
        (libc::SYS_mmap | 0x4000_0000, 0, stub::RESTORER_SYSCALL),
        (libc::SYS_futex | 0x4000_0000, 0, stub::RESTORER_SYSCALL),
        // What the base filter lets the syscall thread make, an application thread
        // may not, even from the very instructions the syscall thread uses.
        (libc::SYS_clone, stub::THREAD_FLAGS as u32, stub::CLONE_SITE),
        (libc::SYS_clone, stub::FORK_FLAGS as u32, stub::CLONE_SITE),
        // The forked child's own clone of its first thread: a thread only, and only
        // for the syscall thread.
        (
            libc::SYS_clone,
            stub::THREAD_FLAGS as u32,
            stub::SELF_CLONE_SITE,
        ),
        (
            libc::SYS_clone,
            stub::FORK_FLAGS as u32,
            stub::SELF_CLONE_SITE,
        ),
        (
            libc::SYS_clone,
            libc::CLONE_VM as u32,
            stub::SELF_CLONE_SITE,
        ),
        (libc::SYS_mmap, 0, stub::SELF_CLONE_SITE),
        (
            libc::SYS_prctl,
            libc::PR_SET_PDEATHSIG as u32,
            stub::PRCTL_SITE,
        ),
        (libc::SYS_mmap, 0, stub::CLONE_SITE),
        (libc::SYS_mmap, 0, stub::RESTORER_SYSCALL),
        (libc::SYS_munmap, 0, stub::RESTORER_SYSCALL),
        (libc::SYS_mprotect, 0, stub::RESTORER_SYSCALL),
        (libc::SYS_mremap, 0, stub::RESTORER_SYSCALL),
        (libc::SYS_recvmsg, 0, stub::RESTORER_SYSCALL),
        (libc::SYS_close, 1, stub::RESTORER_SYSCALL),
        (libc::SYS_lseek, 1, stub::RESTORER_SYSCALL),
        (libc::SYS_dup2, 1, stub::RESTORER_SYSCALL),
        (libc::SYS_close_range, 0, stub::RESTORER_SYSCALL),
        (libc::SYS_seccomp, 0, stub::RESTORER_SYSCALL),
        (libc::SYS_getpid, 0, stub::RESTORER_SYSCALL),
        // ARCH_MAP_VDSO_64 would map memory.
        (libc::SYS_arch_prctl, 0x2003, stub::RESTORER_SYSCALL),
        // The patched-syscall trampoline's own `syscall` (a futex wait) is no gadget
        // either.
        (libc::SYS_mmap, 0, stub::TRAMP_SYSCALL),
        (libc::SYS_mprotect, 0, stub::TRAMP_SYSCALL),
        (libc::SYS_recvmsg, 0, stub::TRAMP_SYSCALL),
        (
            libc::SYS_clone,
            stub::THREAD_FLAGS as u32,
            stub::TRAMP_SYSCALL,
        ),
        (libc::SYS_getpid, 0, stub::TRAMP_SYSCALL),
    ];
    for (nr, arg0, site) in cases {
        let c = code(&[
            &[0xb8],
            &(nr as u32).to_le_bytes(), // mov eax, nr
            &[0xbf],
            &arg0.to_le_bytes(), // mov edi, arg0
            &[0x48, 0xb9],
            &site.to_le_bytes(), // movabs rcx, site
            &[0xff, 0xe1],       // jmp rcx
        ]);
        let mut rig = Rig::new(&c);
        assert_eq!(
            rig.ctx.switch(&mut rig.regs),
            Err(Errno::ESRCH),
            "nr {nr} arg {arg0:#x} at {site:#x}"
        );
    }
}

#[test]
fn application_threads_may_still_make_their_own_calls_from_the_stub() {
    // The application filter leaves what the handler needs: these run (and the
    // `hlt` after the restorer's syscall then faults) instead of killing the stub.
    for (nr, arg0) in [
        (libc::SYS_arch_prctl, 0x1002u32),
        (libc::SYS_rt_sigprocmask, libc::SIG_BLOCK as u32),
        (libc::SYS_futex, 0),
    ] {
        let c = jump_to_stub_syscall(nr, arg0, stub::RESTORER_SYSCALL);
        let mut rig = Rig::new(&c);
        match rig.ctx.switch(&mut rig.regs) {
            Ok(Event::Fault { .. }) => {}
            other => panic!("nr {nr}: {other:?}"),
        }
    }
}

/// `mov eax, nr; mov edi, arg0; movabs rcx, site; jmp rcx`: a system call made from
/// one of the stub's own `syscall` instructions.
fn jump_to_stub_syscall(nr: i64, arg0: u32, site: u64) -> Vec<u8> {
    code(&[
        &[0xb8],
        &(nr as u32).to_le_bytes(),
        &[0xbf],
        &arg0.to_le_bytes(),
        &[0x48, 0xb9],
        &site.to_le_bytes(),
        &[0xff, 0xe1],
    ])
}

/// The one-letter state of `pid` in /proc (`Z` for a zombie), or None once it is
/// gone.
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Attack 1 of issue 10: a thread ends its stub with `exit_group` from the stub's
/// own code while another thread's task is inside the sentry (a blocking read);
/// when that task's read completes, the sentry copies into the space by pid. The
/// pid must still be the dead stub's (a zombie the zygote does not reap while the
/// space lives), so the copy fails instead of reaching whatever host process took
/// the number, and the death is recorded.
#[test]
fn a_stub_that_kills_itself_keeps_its_pid_until_the_space_is_gone() {
    let c = jump_to_stub_syscall(libc::SYS_exit_group, 0, stub::RESTORER_SYSCALL);
    let mut rig = Rig::new(&c);
    let space = rig.concrete();
    let pid = space.pid;
    // A second thread whose task sits in the sentry, as in a blocking read.
    let pending = rig.ctx.new_thread().unwrap();
    let _blocked = pending.adopt().unwrap();
    // The first thread runs the gadget: the whole stub dies.
    assert_eq!(rig.ctx.switch(&mut rig.regs), Err(Errno::ESRCH));
    let start = Instant::now();
    while proc_state(pid) != Some('Z') {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "dead stub {pid} was reaped (state {:?}) while its space lives",
            proc_state(pid)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // The blocked task's read completes: the copy fails, nothing is written.
    assert_eq!(rig.space.write(DATA, b"secret"), Err(Errno::EFAULT));
    let mut b = [0u8; 6];
    assert_eq!(rig.space.read(DATA, &mut b), Err(Errno::EFAULT));
    assert!(space.dead.load(std::sync::atomic::Ordering::SeqCst));
    // Still held: only the space's end lets the zygote reap it.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(proc_state(pid), Some('Z'));
    drop(space);
    drop(_blocked);
    drop(rig);
    await_gone(pid);
}

/// Application code that runs the handler's request path itself with a region of
/// its own at DATA: `rt_sigprocmask(SIG_BLOCK, all)` from the stub's code, then the
/// handler parks on DATA's state word and sleeps there, every signal blocked.
fn block_all_signals_and_sleep(rig: &Rig) -> Vec<u8> {
    let put = |off: u64, v: u64| {
        rig.space.write(DATA + off, &v.to_le_bytes()).unwrap();
    };
    put(64, libc::SYS_rt_sigprocmask as u64);
    put(72, libc::SIG_BLOCK as u64);
    put(80, DATA + 512);
    put(88, 0);
    put(96, 8);
    put(512, u64::MAX);
    code(&[
        &[0x48, 0xbb],
        &DATA.to_le_bytes(), // movabs rbx, DATA
        &[0x48, 0xb9],
        &stub::REQUEST.to_le_bytes(), // movabs rcx, REQUEST
        &[0xff, 0xe1],                // jmp rcx
    ])
}

/// Attack 4c of issue 10: a thread blocks the interrupt signal (and every other)
/// from the stub's own code and never comes back. An interrupt cannot end its
/// switch; a kill (SIGKILL, group exit) must, by killing the stub process.
#[test]
fn a_kill_ends_a_stub_that_blocked_every_signal() {
    let mut rig = Rig::new(&EXIT);
    let c = block_all_signals_and_sleep(&rig);
    load_code(rig.space.as_ref(), CODE, &c);
    let pid = rig.concrete().pid;
    let intr = rig.ctx.interrupter();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let r = rig.ctx.switch(&mut rig.regs);
        tx.send(r).unwrap();
        rig
    });
    // Blocked: the interrupt signal stays pending and the switch goes on.
    std::thread::sleep(Duration::from_millis(100));
    intr.interrupt();
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "the interrupt ended the switch: signals were not blocked"
    );
    let start = Instant::now();
    intr.kill();
    let r = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("a killed context never came back");
    assert_eq!(r, Err(Errno::ESRCH));
    assert!(start.elapsed() < Duration::from_secs(3));
    let rig = t.join().unwrap();
    drop(rig);
    await_gone(pid);
}

/// A stub that dies while no switch runs (its tasks all wait inside the sentry) is
/// noticed at once: the space's death hooks run from the platform's watcher, and
/// copies fail.
#[test]
fn a_stub_death_runs_the_death_hooks_at_once() {
    let rig = Rig::new(&[0xeb, 0xfe]);
    let space = rig.concrete();
    let (tx, rx) = std::sync::mpsc::channel();
    let tx2 = tx.clone();
    rig.space.on_death(Box::new(move || tx.send(1).unwrap()));
    rig.space.on_death(Box::new(move || tx2.send(2).unwrap()));
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    let start = Instant::now();
    // SAFETY: the stub is alive and, a zombie at worst, unreaped: `pid` is its number.
    unsafe { libc::kill(space.pid, libc::SIGKILL) };
    let mut got = vec![
        rx.recv_timeout(Duration::from_secs(2)).expect("death hook"),
        rx.recv_timeout(Duration::from_secs(2)).expect("death hook"),
    ];
    got.sort();
    assert_eq!(got, [1, 2]);
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
    assert!(space.dead.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(rig.space.write(DATA, b"x"), Err(Errno::EFAULT));
    // Registered after the death: it runs too.
    let (tx, rx) = std::sync::mpsc::channel();
    rig.space.on_death(Box::new(move || tx.send(3).unwrap()));
    assert_eq!(rx.recv_timeout(Duration::from_secs(2)), Ok(3));
}

/// Issue 10, attack 4 (the gadget behind 4a and 4b): application code runs the
/// handler's request path with a region of its own, to get a host `mmap` the sentry
/// never asked for (here anonymous memory where the sentry mapped nothing; with an
/// fd, a file). Application threads may not map from the stub's code: the stub dies
/// at the call, and nothing was mapped.
#[test]
fn application_code_cannot_run_requests_of_its_own() {
    const ROGUE: u64 = 0x1000_0000;
    for (path, base) in [(stub::REQUEST, 64), (stub::SYS_CMD, 8)] {
        let mut rig = Rig::new(&EXIT);
        let put = |rig: &Rig, off: u64, v: u64| {
            rig.space.write(DATA + off, &v.to_le_bytes()).unwrap();
        };
        put(&rig, base, libc::SYS_mmap as u64);
        put(&rig, base + 8, ROGUE);
        put(&rig, base + 16, PAGE_SIZE);
        put(&rig, base + 24, RW as u64);
        put(
            &rig,
            base + 32,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED) as u64,
        );
        put(&rig, base + 40, u64::MAX);
        put(&rig, base + 48, 0);
        let c = code(&[
            &[0x48, 0xbb],
            &DATA.to_le_bytes(), // movabs rbx, DATA
            &[0x48, 0xb9],
            &path.to_le_bytes(), // movabs rcx, path
            &[0xff, 0xe1],       // jmp rcx
        ]);
        load_code(rig.space.as_ref(), CODE, &c);
        let space = rig.concrete();
        let r = within(Duration::from_secs(5), move || {
            let r = rig.ctx.switch(&mut rig.regs);
            (rig, r)
        });
        assert_eq!(r.1, Err(Errno::ESRCH), "path {path:#x}: the stub survived");
        let mut b = [0u8; 8];
        assert_eq!(
            crate::platform::common::read_process(space.pid, ROGUE, &mut b),
            Err(Errno::ESRCH),
            "path {path:#x}: the stub lives on"
        );
    }
}

/// The syscall thread's progress and sleeping words lie in memory the application
/// can write. An application thread that scribbles over them all the time only
/// costs itself time: every edit the sentry makes meanwhile gets its true result
/// (from the kernel), a failing one included.
#[test]
fn forged_progress_words_do_not_forge_results() {
    let sysrw = stub::SYSRW;
    let c = code(&[
        &[0x48, 0xb8],
        &sysrw.to_le_bytes(),            // movabs rax, SYSRW
        &[0x89, 0x08],                   // l: mov [rax], ecx
        &[0xff, 0xc1],                   // inc ecx
        &[0xc7, 0x40, 0x04, 0, 0, 0, 0], // mov dword [rax+4], 0
        &[0xc7, 0x40, 0x08, 0, 0, 0, 0], // mov dword [rax+8], 0
        &[0xeb, 0xec],                   // jmp l
    ]);
    let mut rig = Rig::new(&c);
    let space = rig.space.clone();
    let intr = rig.ctx.interrupter();
    let runner = std::thread::spawn(move || {
        let r = rig.ctx.switch(&mut rig.regs);
        (rig, r)
    });
    std::thread::sleep(Duration::from_millis(20));
    for i in 0..50u64 {
        let at = 0x2000_0000 + i * PAGE_SIZE;
        space
            .map(at, PAGE_SIZE, RW, false, Backing::Anonymous)
            .unwrap();
        space.write(at, &i.to_le_bytes()).unwrap();
        assert_eq!(read_u64(&space, at), i);
        // Beyond the highest address: the host's EINVAL, not a forged success.
        assert_eq!(
            space.protect(at, PAGE_SIZE, 0x1000),
            Err(Errno::EINVAL),
            "a bad mprotect reported success"
        );
        space.unmap(at, PAGE_SIZE).unwrap();
        assert_eq!(space.write(at, b"x"), Err(Errno::EFAULT));
    }
    intr.interrupt();
    let (_rig, r) = runner.join().unwrap();
    assert_eq!(r, Ok(Event::Interrupted));
}

/// A new thread's or fork's id comes back through the application-writable region,
/// so the sentry trusts it only once the region's nonce reads back through it: the
/// real new thread passes, while another stub process, the sentry itself and a
/// number nobody holds do not (a forged child pid used to get the sentry to copy
/// memory of, kill and reap another process of the sandbox).
#[test]
fn a_reported_thread_or_child_id_must_map_the_new_region() {
    let rig = Rig::new(&EXIT);
    let other = rig.platform.new_address_space().expect("second space");
    let other_pid = rig.concrete_of(&other).pid;
    let space = rig.concrete();
    let thread = space.new_thread().expect("new thread");
    let chan = space.lock_thread(&thread).expect("lock the new thread");
    assert!(chan.mapped_by(thread.tid), "the new thread itself");
    assert!(
        chan.mapped_by(space.pid),
        "its process (same address space)"
    );
    assert!(!chan.mapped_by(other_pid), "another stub process");
    assert!(!chan.mapped_by(std::process::id() as i32), "the sentry");
    assert!(!chan.mapped_by(i32::MAX), "a pid nobody holds");
}

/// An application that keeps clearing the syscall thread's and the sentry's
/// sleeping words (so that neither side's report or command wakes the other) only
/// slows its own edits, and by about a millisecond, not a liveness period (200 ms)
/// each: the sentry looks again after short, growing waits.
#[test]
fn cleared_sleeping_words_cost_short_rewakes() {
    let sysrw = stub::SYSRW;
    let c = code(&[
        &[0x48, 0xb8],
        &sysrw.to_le_bytes(),            // movabs rax, SYSRW
        &[0xc7, 0x40, 0x04, 0, 0, 0, 0], // l: mov dword [rax+4], 0
        &[0xc7, 0x40, 0x08, 0, 0, 0, 0], // mov dword [rax+8], 0
        &[0xeb, 0xf0],                   // jmp l
    ]);
    let mut rig = Rig::new(&c);
    let space = rig.space.clone();
    let intr = rig.ctx.interrupter();
    let runner = std::thread::spawn(move || {
        let r = rig.ctx.switch(&mut rig.regs);
        (rig, r)
    });
    std::thread::sleep(Duration::from_millis(20));
    let mut slow = 0;
    for i in 0..30u64 {
        let at = 0x2000_0000 + i * PAGE_SIZE;
        for edit in 0..2 {
            let t = Instant::now();
            if edit == 0 {
                space
                    .map(at, PAGE_SIZE, RW, false, Backing::Anonymous)
                    .unwrap();
            } else {
                space.unmap(at, PAGE_SIZE).unwrap();
            }
            if t.elapsed() >= Duration::from_millis(150) {
                slow += 1;
            }
        }
        assert_eq!(space.write(at, b"x"), Err(Errno::EFAULT));
    }
    intr.interrupt();
    let (_rig, r) = runner.join().unwrap();
    assert_eq!(r, Ok(Event::Interrupted));
    // A loaded host may delay one or two; a liveness period per hit would be most.
    assert!(slow <= 3, "{slow} of 60 edits waited a liveness period");
}

/// A command's calls run in order up to the first that fails or returns other than
/// its expected result; the report names that call, with its own result, and the
/// calls after it do not run.
#[test]
fn a_batch_stops_at_the_first_call_that_fails_or_surprises() {
    use super::syscaller::Call;
    let rig = Rig::new(&EXIT);
    let space = rig.concrete();
    let at = 0x2000_0000u64;
    rig.space
        .map(at, PAGE_SIZE, RW, false, Backing::Anonymous)
        .unwrap();
    rig.space.write(at, b"kept").unwrap();
    let ro = [at, PAGE_SIZE, libc::PROT_READ as u64, 0, 0, 0];
    let bad = [at, PAGE_SIZE, 0x1000, 0, 0, 0];
    let unmap = [at, PAGE_SIZE, 0, 0, 0, 0];
    let r = space.batch(&[
        Call::new(libc::SYS_mprotect, ro),
        Call::new(libc::SYS_mprotect, bad),
        Call::new(libc::SYS_munmap, unmap),
    ]);
    assert_eq!(r, Ok((1, Err(Errno::EINVAL))));
    // The first ran (read-only now), the third did not (still mapped).
    assert_eq!(rig.space.write(at, b"x"), Err(Errno::EFAULT));
    assert_eq!(
        read_u64(&rig.space, at) & 0xffff_ffff,
        u64::from(u32::from_le_bytes(*b"kept"))
    );
    // An unexpected success stops the batch too, with that call's result.
    let r = space.batch(&[
        Call::expecting(libc::SYS_mprotect, ro, 1),
        Call::new(libc::SYS_munmap, unmap),
    ]);
    assert_eq!(r, Ok((0, Ok(0))));
    assert_eq!(
        read_u64(&rig.space, at) & 0xffff_ffff,
        u64::from(u32::from_le_bytes(*b"kept"))
    );
    // All succeed: the last one's result.
    let r = space.batch(&[
        Call::expecting(libc::SYS_mprotect, ro, 0),
        Call::new(libc::SYS_munmap, unmap),
    ]);
    assert_eq!(r, Ok((1, Ok(0))));
    let mut b = [0u8; 4];
    assert_eq!(rig.space.read(at, &mut b), Err(Errno::EFAULT));
}

/// Code that enters the patched-syscall trampoline as a patch table entry does
/// (`rax` the call, `rcx` the return address), with marked registers, and on return
/// moves the result and the marks where the exit call shows them: `rdi` the result,
/// `rsi` rbx's mark, `r8` r12's, `r9` rdx's. Returns the code and the return address.
fn trampoline_caller(nr: u8) -> (Vec<u8>, u64) {
    let head = code(&[
        &[0xb8, nr, 0, 0, 0],                  // mov eax, nr
        &[0xbb, 0x11, 0x11, 0x11, 0x11],       // mov ebx, 0x11111111
        &[0x41, 0xbc, 0x22, 0x22, 0x22, 0x22], // mov r12d, 0x22222222
        &[0xba, 0x33, 0x33, 0x33, 0x33],       // mov edx, 0x33333333
        &[0x48, 0x8d, 0x0d, 13, 0, 0, 0],      // lea rcx, [rip+13]: the return address
        &[0x49, 0xbb],                         // movabs r11, TRAMP
        &stub::TRAMP.to_le_bytes(),
        &[0x41, 0xff, 0xe3], // jmp r11
    ]);
    let ret = CODE + head.len() as u64;
    let c = code(&[
        &head,
        &[0x48, 0x89, 0xc7], // mov rdi, rax
        &[0x48, 0x89, 0xde], // mov rsi, rbx
        &[0x4d, 0x89, 0xe0], // mov r8, r12
        &[0x49, 0x89, 0xd1], // mov r9, rdx
        &EXIT,
    ]);
    (c, ret)
}

#[test]
fn trampoline_enters_the_sentry_without_a_signal() {
    let (c, ret) = trampoline_caller(39);
    let mut rig = Rig::new(&c);
    let rsp = rig.regs.rsp;
    for round in 0..3 {
        if round > 0 {
            // Again from the top: the fast path is used for every entry.
            rig.regs.rip = CODE;
        }
        assert_eq!(rig.switch(), Event::Syscall);
        assert_eq!(rig.regs.orig_rax, 39);
        assert_eq!(rig.regs.rip, ret);
        assert_eq!((rig.regs.rcx, rig.regs.r11), (ret, rig.regs.eflags));
        assert_eq!(rig.regs.rsp, rsp);
        assert_eq!(
            (rig.regs.rbx, rig.regs.r12, rig.regs.rdx),
            (0x1111_1111, 0x2222_2222, 0x3333_3333)
        );
        // Parked in the trampoline, not in the handler: nothing of a frame was read.
        let c = rig.concrete();
        let thread = c.first_thread().unwrap();
        assert_eq!(
            lock(&thread.chan)
                .region
                .word(stub::OFF_STATE)
                .load(std::sync::atomic::Ordering::SeqCst),
            stub::STATE_FAST
        );
        if round == 2 {
            break;
        }
        rig.regs.rax = 1234 + round;
        assert_eq!(rig.switch(), Event::Syscall);
        assert_eq!(rig.regs.orig_rax, 60);
        assert_eq!(rig.regs.rdi, 1234 + round);
        assert_eq!(
            (rig.regs.rsi, rig.regs.r8, rig.regs.r9),
            (0x1111_1111, 0x2222_2222, 0x3333_3333)
        );
        assert_eq!(rig.regs.rsp, rsp);
    }
    // A change beyond the result (here the next instruction and a register) goes
    // through a full frame: the trampoline traps first.
    let fp = rig
        .ctx
        .fp_state()
        .expect("fp state of a thread parked in the trampoline");
    assert!(fp.len() >= 512);
    rig.regs.rip = ret + 3; // past `mov rdi, rax`
    rig.regs.rdi = 77;
    assert_eq!(rig.switch(), Event::Syscall);
    assert_eq!(rig.regs.orig_rax, 60);
    assert_eq!(rig.regs.rdi, 77);
}

#[test]
fn a_trampoline_that_cannot_reach_its_region_makes_the_call_trap() {
    // The application set a gs base of its own: the trampoline's first store
    // faults, and the sentry takes the signal for the call itself.
    let (c, ret) = trampoline_caller(39);
    let mut rig = Rig::new(&c);
    rig.regs.gs_base = DATA + 0x100;
    assert_eq!(rig.switch(), Event::Syscall);
    assert_eq!(rig.regs.orig_rax, 39);
    assert_eq!(rig.regs.rip, ret);
    assert_eq!(rig.regs.rsp, DATA + PAGE_SIZE);
    rig.regs.rax = 5;
    assert_eq!(rig.switch(), Event::Syscall);
    assert_eq!((rig.regs.orig_rax, rig.regs.rdi), (60, 5));
}

#[test]
fn a_forged_region_runs_nothing_and_gets_no_answer() {
    // The application points its gs base at a fake region in its own memory and
    // jumps into the trampoline asking for a call: the trampoline parks on the fake
    // region, which the sentry never reads. Nothing runs (on the host or in the
    // sentry); an interrupt takes the thread back to the sentry as it is.
    let (c, _) = trampoline_caller(libc::SYS_exit_group as u8);
    let mut rig = Rig::new(&c);
    rig.space
        .write(DATA + stub::T_SELF as u64, &DATA.to_le_bytes())
        .unwrap();
    rig.regs.gs_base = DATA;
    let intr = rig.ctx.interrupter();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        intr.interrupt();
    });
    assert_eq!(rig.switch(), Event::Interrupted);
    t.join().unwrap();
    assert!((stub::TRAMP..stub::TRAMP_END).contains(&rig.regs.rip));
    // The fake region holds the forged call, parked (STATE_FAST), unanswered.
    assert_eq!(read_u64(&rig.space, DATA) as u32, stub::STATE_FAST);
    let saved_rax = read_u64(&rig.space, DATA + (stub::T_REGS + 13 * 8) as u64);
    assert_eq!(saved_rax, libc::SYS_exit_group as u64);
    // The stub lives on (no exit_group ran), and the thread is the sentry's.
    let pid = rig.concrete().pid;
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
}

/// Runs `EXIT` with `rdi = tag` as the first thread of `space`: the switch stops at
/// the exit call with the tag intact.
fn run_exit(platform: &SystrapPlatform, space: &Arc<dyn AddressSpace>, tag: u64) {
    let mut ctx = platform.new_context(space).unwrap();
    load_code(space.as_ref(), CODE, &EXIT);
    // SAFETY: user_regs_struct is plain integers; all-zero is valid.
    let mut regs: Regs = unsafe { std::mem::zeroed() };
    regs.rip = CODE;
    regs.rdi = tag;
    assert_eq!(ctx.switch(&mut regs).unwrap(), Event::Syscall);
    assert_eq!((regs.orig_rax, regs.rdi), (60, tag));
}

#[test]
fn spare_spaces_are_fresh_unwatched_and_die_with_the_platform() {
    let platform = new_platform().unwrap();
    let spare_pid = || space::lock(&platform.spare.ready).as_ref().map(|s| s.pid);
    let first = platform.new_address_space().unwrap();
    // A sandbox that runs one program makes no spare.
    std::thread::sleep(Duration::from_millis(50));
    assert!(spare_pid().is_none());
    assert!(!platform
        .spare
        .making
        .load(std::sync::atomic::Ordering::SeqCst));
    run_exit(&platform, &first, 1);
    let second = platform.new_address_space().unwrap();
    let start = Instant::now();
    let pid = loop {
        if let Some(pid) = spare_pid() {
            break pid;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no spare made");
        std::thread::sleep(Duration::from_millis(1));
    };
    // The spare is a stub of its own, with its first thread up and parked, that no
    // space of the platform is and nothing watches for deaths.
    let live: Vec<i32> = [&first, &second]
        .iter()
        .map(|s| {
            platform
                .spaces
                .find(Arc::as_ptr(s) as *const ())
                .unwrap()
                .pid
        })
        .collect();
    assert!(!live.contains(&pid));
    await_tasks(pid, 1);
    {
        let ready = space::lock(&platform.spare.ready);
        let spare = ready.as_ref().unwrap();
        assert!(!spare
            .context_taken
            .load(std::sync::atomic::Ordering::SeqCst));
        let thread = spare.first_thread().unwrap();
        assert!(thread.chan.lock().unwrap().reported_ready());
    }
    // The next space is the spare, and it runs code as a fresh one does.
    let third = platform.new_address_space().unwrap();
    assert_eq!(
        platform
            .spaces
            .find(Arc::as_ptr(&third) as *const ())
            .unwrap()
            .pid,
        pid
    );
    run_exit(&platform, &third, 3);
    run_exit(&platform, &second, 2);
    // A spare made after that dies with the platform.
    let start = Instant::now();
    let next = loop {
        if let Some(p) = spare_pid() {
            break p;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no spare made");
        std::thread::sleep(Duration::from_millis(1));
    };
    drop((first, second, third));
    drop(platform);
    await_gone(next);
    await_gone(pid);
}

#[test]
fn a_space_last_thread_is_not_ended_before_its_space_but_others_are() {
    let platform = new_platform().unwrap();
    let space = platform.new_address_space().unwrap();
    let mut ctx = platform.new_context(&space).unwrap();
    let pid = platform
        .spaces
        .find(Arc::as_ptr(&space) as *const ())
        .unwrap()
        .pid;
    let pending = ctx.new_thread().unwrap();
    let second = pending.adopt().unwrap();
    await_tasks(pid, 2);
    // A thread of several is ended at once.
    drop(second);
    await_tasks(pid, 1);
    // The last one stays parked until its space goes, which kills the stub.
    drop(ctx);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(task_count(pid), 1);
    drop(space);
    await_gone(pid);
}

/// Threads and forks come up while their creator goes on: two threads made back to
/// back (the second's command waits for the first to have read its alternate
/// stack) are adopted in the other order, each on its own region, and a fork's
/// child is edited (a command to its syscall thread, which waits for its start-up
/// report) before its first context is adopted.
#[test]
fn threads_and_forks_come_up_while_their_creator_goes_on() {
    const N: u32 = 3;
    let mut rig = Rig::new(&getpid_loop(N));
    let pid = rig.concrete().pid;
    rig.regs.rbx = DATA;
    rig.space.write(DATA, &0u64.to_le_bytes()).unwrap();
    assert_eq!(rig.switch(), Event::Syscall);
    let first = rig.ctx.new_thread().unwrap();
    let second = rig.ctx.new_thread().unwrap();
    let mut hosts = Vec::new();
    for pending in [second, first] {
        let regs = rig.regs;
        hosts.push(std::thread::spawn(move || {
            let mut ctx = pending.adopt().unwrap();
            let mut r = regs;
            run_to_exit(ctx.as_mut(), &mut r)
        }));
    }
    for h in hosts {
        assert_eq!(h.join().unwrap(), (N - 1, 0));
    }
    await_tasks(pid, 1);
    rig.space.write(DATA, &5u64.to_le_bytes()).unwrap();
    let (child, pending) = rig.ctx.fork().unwrap();
    let child_pid = rig.concrete_of(&child).pid;
    // Before adoption: the child's own space takes a command, and a write by pid.
    child
        .map(NEW_A, PAGE_SIZE, RW, false, Backing::Anonymous)
        .unwrap();
    child.write(NEW_A, &6u64.to_le_bytes()).unwrap();
    // A second fork right after the first (its fd numbers are the first's).
    let (child2, pending2) = rig.ctx.fork().unwrap();
    let child2_pid = rig.concrete_of(&child2).pid;
    let mut regs = rig.regs;
    regs.rbx = NEW_A;
    let t = std::thread::spawn(move || {
        let mut ctx = pending.adopt().unwrap();
        run_to_exit(ctx.as_mut(), &mut regs)
    });
    assert_eq!(t.join().unwrap(), (N - 1, 6));
    drop(pending2);
    assert_eq!(read_u64(&child2, DATA), 5);
    drop((child, child2));
    await_gone(child_pid);
    await_gone(child2_pid);
    assert_eq!(run_to_exit(rig.ctx.as_mut(), &mut rig.regs), (N - 1, 5));
}

/// Several fresh anonymous mappings in one command (a freed thread stack and its
/// guard page): each replaces what was there, with its own protection.
#[test]
fn anonymous_mappings_in_one_command() {
    let rig = Rig::new(&EXIT);
    let space = &rig.space;
    space
        .map(NEW_A, 3 * PAGE_SIZE, RW, false, Backing::Anonymous)
        .unwrap();
    for i in 0..3 {
        space.write(NEW_A + i * PAGE_SIZE, b"old").unwrap();
    }
    let parts = [
        (NEW_A, PAGE_SIZE, libc::PROT_NONE),
        (NEW_A + PAGE_SIZE, 2 * PAGE_SIZE, RW),
    ];
    space.map_anonymous(&parts).unwrap();
    let mut b = [0u8; 3];
    assert_eq!(space.read(NEW_A, &mut b), Err(Errno::EFAULT));
    for i in 1..3 {
        space.read(NEW_A + i * PAGE_SIZE, &mut b).unwrap();
        assert_eq!(b, [0; 3]);
    }
    // Beyond the highest address: refused before anything is sent.
    let bad = [(NEW_A, PAGE_SIZE, RW), (MAX_USER_ADDRESS, PAGE_SIZE, RW)];
    assert_eq!(space.map_anonymous(&bad), Err(Errno::ENOMEM));
}
