//! Syscall handlers run on a task of the fake platform (`syscalls::fake`): no stub
//! process, the application's memory in the sentry. Each test calls handlers
//! through the kernel's table as the task loop does, and checks what an
//! application would see.

use crate::errno::Errno;
use crate::fs::inotify::{IN_CLOSE_WRITE, IN_CREATE, IN_MODIFY, IN_OPEN};
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::fake::{self, call};

/// Maps `len` bytes of anonymous read-write memory with the task's own `mmap`.
fn scratch(task: &mut Task, len: u64) -> u64 {
    call(
        task,
        libc::SYS_mmap,
        [
            0,
            len,
            (libc::PROT_READ | libc::PROT_WRITE) as u64,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
            u64::MAX,
            0,
        ],
    )
    .expect("mmap")
}

/// Writes a NUL-terminated `s` at `addr`.
fn put_str(task: &Task, addr: u64, s: &str) {
    let mut b = s.as_bytes().to_vec();
    b.push(0);
    io::write_all(task.mem(), addr, &b).unwrap();
}

/// Opens `path` (written at the scratch address `m`) with `flags`, mode 0644.
fn open(task: &mut Task, m: u64, path: &str, flags: u64) -> u64 {
    put_str(task, m, path);
    let at = libc::AT_FDCWD as u64;
    call(task, libc::SYS_openat, [at, m, flags, 0o644, 0, 0]).expect("open")
}

fn get(task: &Task, addr: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    io::read_exact(task.mem(), addr, &mut b).unwrap();
    b
}

fn fd_pair(task: &Task, addr: u64) -> (u64, u64) {
    let b = get(task, addr, 8);
    (
        i32::from_ne_bytes(b[..4].try_into().unwrap()) as u64,
        i32::from_ne_bytes(b[4..].try_into().unwrap()) as u64,
    )
}

#[test]
fn pipe_carries_bytes_and_reports_eof_and_epipe() {
    let k = fake::kernel();
    let mut t = fake::task(&k);
    let m = scratch(&mut t, 1 << 16);
    assert_eq!(call(&mut t, libc::SYS_pipe2, [m, 0, 0, 0, 0, 0]), Ok(0));
    let (r, w) = fd_pair(&t, m);
    io::write_all(t.mem(), m + 64, b"hello, pipe").unwrap();
    assert_eq!(
        call(&mut t, libc::SYS_write, [w, m + 64, 11, 0, 0, 0]),
        Ok(11)
    );
    // A read asks for more than is queued: a stream returns what it has.
    assert_eq!(
        call(&mut t, libc::SYS_read, [r, m + 128, 100, 0, 0, 0]),
        Ok(11)
    );
    assert_eq!(get(&t, m + 128, 11), b"hello, pipe");
    // A buffer outside the address space is EFAULT before anything moves.
    assert_eq!(
        call(&mut t, libc::SYS_write, [w, 0x10, 4, 0, 0, 0]),
        Err(Errno::EFAULT)
    );
    assert_eq!(call(&mut t, libc::SYS_close, [w, 0, 0, 0, 0, 0]), Ok(0));
    assert_eq!(
        call(&mut t, libc::SYS_read, [r, m + 128, 100, 0, 0, 0]),
        Ok(0)
    );
    // Write end again, read end gone: EPIPE (and SIGPIPE queued).
    assert_eq!(call(&mut t, libc::SYS_pipe2, [m, 0, 0, 0, 0, 0]), Ok(0));
    let (r, w) = fd_pair(&t, m);
    assert_eq!(call(&mut t, libc::SYS_close, [r, 0, 0, 0, 0, 0]), Ok(0));
    assert_eq!(
        call(&mut t, libc::SYS_write, [w, m + 64, 4, 0, 0, 0]),
        Err(Errno::EPIPE)
    );
}

#[test]
fn vectored_io_gathers_and_scatters_in_order() {
    let k = fake::kernel();
    let mut t = fake::task(&k);
    let m = scratch(&mut t, 1 << 16);
    let flags = (libc::O_CREAT | libc::O_RDWR) as u64;
    let fd = open(&mut t, m, "/v", flags);
    io::write_all(t.mem(), m + 100, b"abc").unwrap();
    io::write_all(t.mem(), m + 200, b"defgh").unwrap();
    // iovecs: (m+100, 3), (m+300, 0), (m+200, 5)
    let mut iov = Vec::new();
    for (b, l) in [(m + 100, 3u64), (m + 300, 0), (m + 200, 5)] {
        iov.extend_from_slice(&b.to_le_bytes());
        iov.extend_from_slice(&l.to_le_bytes());
    }
    io::write_all(t.mem(), m + 1000, &iov).unwrap();
    assert_eq!(
        call(&mut t, libc::SYS_writev, [fd, m + 1000, 3, 0, 0, 0]),
        Ok(8)
    );
    // Read it back into two segments of 4 at offset 0.
    let mut iov = Vec::new();
    for (b, l) in [(m + 2000, 4u64), (m + 3000, 4)] {
        iov.extend_from_slice(&b.to_le_bytes());
        iov.extend_from_slice(&l.to_le_bytes());
    }
    io::write_all(t.mem(), m + 1100, &iov).unwrap();
    assert_eq!(
        call(&mut t, libc::SYS_preadv, [fd, m + 1100, 2, 0, 0, 0]),
        Ok(8)
    );
    assert_eq!(get(&t, m + 2000, 4), b"abcd");
    assert_eq!(get(&t, m + 3000, 4), b"efgh");
    // A segment that cannot lie in user space is EFAULT before any transfer.
    let mut bad = Vec::new();
    bad.extend_from_slice(&(u64::MAX - 8).to_le_bytes());
    bad.extend_from_slice(&16u64.to_le_bytes());
    io::write_all(t.mem(), m + 1200, &bad).unwrap();
    assert_eq!(
        call(&mut t, libc::SYS_readv, [fd, m + 1200, 1, 0, 0, 0]),
        Err(Errno::EFAULT)
    );
}

#[test]
fn sendfile_and_copy_file_range_move_a_file() {
    let k = fake::kernel();
    let mut t = fake::task(&k);
    let m = scratch(&mut t, 1 << 16);
    let rw = (libc::O_CREAT | libc::O_RDWR) as u64;
    let src = open(&mut t, m, "/src", rw);
    let dst = open(&mut t, m, "/dst", rw);
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    io::write_all(t.mem(), m + 4096, &data).unwrap();
    assert_eq!(
        call(&mut t, libc::SYS_pwrite64, [src, m + 4096, 5000, 0, 0, 0]),
        Ok(5000)
    );
    // sendfile from offset 1000 (a pointer, updated) to dst's position.
    io::write_u64(t.mem(), m + 64, 1000).unwrap();
    assert_eq!(
        call(&mut t, libc::SYS_sendfile, [dst, src, m + 64, 10_000, 0, 0]),
        Ok(4000)
    );
    assert_eq!(get(&t, m + 64, 8), 5000u64.to_le_bytes());
    assert_eq!(
        call(&mut t, libc::SYS_pread64, [dst, m + 12_000, 4000, 0, 0, 0]),
        Ok(4000)
    );
    assert_eq!(get(&t, m + 12_000, 4000), &data[1000..]);
    // copy_file_range of the first 10 bytes onto dst's start.
    io::write_u64(t.mem(), m + 72, 0).unwrap();
    io::write_u64(t.mem(), m + 80, 0).unwrap();
    assert_eq!(
        call(
            &mut t,
            libc::SYS_copy_file_range,
            [src, m + 72, dst, m + 80, 10, 0]
        ),
        Ok(10)
    );
    assert_eq!(
        call(&mut t, libc::SYS_pread64, [dst, m + 12_000, 10, 0, 0, 0]),
        Ok(10)
    );
    assert_eq!(get(&t, m + 12_000, 10), &data[..10]);
}

/// Reads the events queued on inotify fd `fd`: (mask, name).
fn events(t: &mut Task, fd: u64, buf: u64) -> Vec<(u32, Vec<u8>)> {
    let n = match call(t, libc::SYS_read, [fd, buf, 4096, 0, 0, 0]) {
        Ok(n) => n as usize,
        Err(Errno::EAGAIN) => return Vec::new(),
        Err(e) => panic!("inotify read: {e:?}"),
    };
    let b = get(t, buf, n);
    let mut out = Vec::new();
    let mut p = 0;
    while p < n {
        let mask = u32::from_ne_bytes(b[p + 4..p + 8].try_into().unwrap());
        let len = u32::from_ne_bytes(b[p + 12..p + 16].try_into().unwrap()) as usize;
        let name = b[p + 16..p + 16 + len]
            .iter()
            .take_while(|&&c| c != 0)
            .copied()
            .collect();
        out.push((mask, name));
        p += 16 + len;
    }
    out
}

#[test]
fn inotify_sees_its_own_kernels_files_only() {
    let (ka, kb) = (fake::kernel(), fake::kernel());
    let (mut a, mut b) = (fake::task(&ka), fake::task(&kb));
    let ma = scratch(&mut a, 1 << 16);
    let mb = scratch(&mut b, 1 << 16);
    let nb = libc::IN_NONBLOCK as u64;
    let ia = call(&mut a, libc::SYS_inotify_init1, [nb, 0, 0, 0, 0, 0]).unwrap();
    let ib = call(&mut b, libc::SYS_inotify_init1, [nb, 0, 0, 0, 0, 0]).unwrap();
    put_str(&a, ma, "/");
    put_str(&b, mb, "/");
    let all = libc::IN_ALL_EVENTS as u64;
    call(&mut a, libc::SYS_inotify_add_watch, [ia, ma, all, 0, 0, 0]).unwrap();
    call(&mut b, libc::SYS_inotify_add_watch, [ib, mb, all, 0, 0, 0]).unwrap();

    let flags = (libc::O_CREAT | libc::O_WRONLY) as u64;
    let fd = open(&mut a, ma, "/f", flags);
    assert_eq!(call(&mut a, libc::SYS_write, [fd, ma, 2, 0, 0, 0]), Ok(2));
    assert_eq!(call(&mut a, libc::SYS_close, [fd, 0, 0, 0, 0, 0]), Ok(0));
    let f = b"f".to_vec();
    assert_eq!(
        events(&mut a, ia, ma + 4096),
        vec![
            (IN_CREATE, f.clone()),
            (IN_OPEN, f.clone()),
            (IN_MODIFY, f.clone()),
            (IN_CLOSE_WRITE, f)
        ]
    );
    // The other kernel's watch on its own root heard nothing.
    assert_eq!(events(&mut b, ib, mb + 4096), Vec::new());
}

#[test]
fn a_flock_excludes_other_descriptions_and_goes_with_its_own() {
    let k = fake::kernel();
    let (mut a, mut b) = (fake::task(&k), fake::task(&k));
    let ma = scratch(&mut a, 1 << 16);
    let mb = scratch(&mut b, 1 << 16);
    let rw = (libc::O_CREAT | libc::O_RDWR) as u64;
    let fa = open(&mut a, ma, "/l", rw);
    let fb = open(&mut b, mb, "/l", rw);
    let ex_nb = (libc::LOCK_EX | libc::LOCK_NB) as u64;
    assert_eq!(
        call(&mut a, libc::SYS_flock, [fa, ex_nb, 0, 0, 0, 0]),
        Ok(0)
    );
    assert_eq!(
        call(&mut b, libc::SYS_flock, [fb, ex_nb, 0, 0, 0, 0]),
        Err(Errno::EAGAIN)
    );
    // Closing the description that holds the flock releases it.
    assert_eq!(call(&mut a, libc::SYS_close, [fa, 0, 0, 0, 0, 0]), Ok(0));
    assert_eq!(
        call(&mut b, libc::SYS_flock, [fb, ex_nb, 0, 0, 0, 0]),
        Ok(0)
    );
}

#[test]
fn o_async_signals_the_owner_kept_on_the_description() {
    let k = fake::kernel();
    let mut t = fake::task(&k);
    let m = scratch(&mut t, 1 << 16);
    assert_eq!(call(&mut t, libc::SYS_pipe2, [m, 0, 0, 0, 0, 0]), Ok(0));
    let (r, w) = fd_pair(&t, m);
    let fcntl = |t: &mut Task, fd: u64, cmd: i32, arg: u64| {
        call(t, libc::SYS_fcntl, [fd, cmd as u64, arg, 0, 0, 0])
    };
    assert_eq!(fcntl(&mut t, r, libc::F_GETOWN, 0), Ok(0));
    let me = t.tgid as u64;
    assert_eq!(fcntl(&mut t, r, libc::F_SETOWN, me), Ok(0));
    assert_eq!(fcntl(&mut t, r, libc::F_GETOWN, 0), Ok(me));
    // A dup shares the description, hence its owner.
    let r2 = call(&mut t, libc::SYS_dup, [r, 0, 0, 0, 0, 0]).unwrap();
    assert_eq!(fcntl(&mut t, r2, libc::F_GETOWN, 0), Ok(me));
    let fl = (libc::O_ASYNC | libc::O_NONBLOCK) as u64;
    assert_eq!(fcntl(&mut t, r, libc::F_SETFL, fl), Ok(0));
    assert!(!t.signal_pending());
    assert_eq!(call(&mut t, libc::SYS_write, [w, m, 1, 0, 0, 0]), Ok(1));
    assert!(t.signal_pending(), "SIGIO sent to the owner");
    // Another pipe's description has no owner.
    assert_eq!(call(&mut t, libc::SYS_pipe2, [m, 0, 0, 0, 0, 0]), Ok(0));
    let (r3, _) = fd_pair(&t, m);
    assert_eq!(fcntl(&mut t, r3, libc::F_GETOWN, 0), Ok(0));
}
