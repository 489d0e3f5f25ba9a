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
/// `si_code`s of SIGSEGV.
const SEGV_MAPERR: i32 = 1;
const SEGV_ACCERR: i32 = 2;
const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;
const RX: i32 = libc::PROT_READ | libc::PROT_EXEC;

/// `mov eax, 60; syscall` (exit): ends most snippets with a recognizable stop.
const EXIT: [u8; 7] = [0xb8, 0x3c, 0, 0, 0, 0x0f, 0x05];

struct Rig {
    platform: SystrapPlatform,
    space: Arc<dyn AddressSpace>,
    ctx: Box<dyn Context>,
    regs: Regs,
}

impl Rig {
    /// A space with `code` at CODE (RX) and one RW page at DATA; regs ready to run it.
    fn new(code: &[u8]) -> Rig {
        let platform = SystrapPlatform::new().expect("platform");
        let space = platform.new_address_space().expect("space");
        let ctx = platform.new_context(&space).expect("context");
        space
            .map(CODE, PAGE_SIZE, RX, false, Backing::Anonymous)
            .expect("map code");
        space
            .map(DATA, PAGE_SIZE, RW, false, Backing::Anonymous)
            .expect("map data");
        // The code page is read-only in the stub: this goes through /proc/pid/mem.
        assert_eq!(space.write(CODE, code).expect("write code"), code.len());
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
        let want = Arc::as_ptr(&self.space) as *const ();
        let spaces = self.platform.spaces.lock().unwrap();
        spaces
            .iter()
            .filter(|w| Weak::as_ptr(w) as *const () == want)
            .find_map(Weak::upgrade)
            .expect("our space")
    }
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
    // A write into the read-only private page: copy-on-write, the file is unchanged.
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
    // The sentry still writes it (protections ignored).
    assert_eq!(rig.space.write(DATA, &[3]).unwrap(), 1);
    // PROT_NONE pages are readable by the sentry too.
    rig.space.protect(DATA, PAGE_SIZE, libc::PROT_NONE).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(rig.space.read(DATA, &mut b).unwrap(), 1);
    assert_eq!(b[0], 3);
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
    // Also across a read-only page followed by a hole (the /proc/pid/mem path).
    rig.space.protect(DATA, PAGE_SIZE, libc::PROT_READ).unwrap();
    assert_eq!(
        rig.space.write(DATA + PAGE_SIZE - 4, &[2u8; 20]).unwrap(),
        4
    );
    let mut four = [0u8; 4];
    rig.space.read(DATA + PAGE_SIZE - 4, &mut four).unwrap();
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

#[test]
fn drop_leaves_no_process_or_fd() {
    let rig = Rig::new(&EXIT);
    let space = rig.concrete();
    let pid = space.pid;
    let zygote = rig.platform.zygote_pid;
    let ours = [
        fd_identity(space.control.as_raw_fd()),
        fd_identity(space.mem.as_raw_fd()),
        fd_identity(space.pidfd.as_raw_fd()),
    ];
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
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(!maps.contains("rvisor-systrap-region"), "{maps}");
}

#[test]
fn many_spaces_in_parallel() {
    let platform = Arc::new(SystrapPlatform::new().unwrap());
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let p = platform.clone();
            std::thread::spawn(move || {
                let space = p.new_address_space().unwrap();
                let mut ctx = p.new_context(&space).unwrap();
                space
                    .map(CODE, PAGE_SIZE, RX, false, Backing::Anonymous)
                    .unwrap();
                space.write(CODE, &EXIT).unwrap();
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
        "systrap syscall round trip: {} ns",
        el.as_nanos() / u128::from(N)
    );
}
