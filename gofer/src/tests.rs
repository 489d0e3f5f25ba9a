//! End-to-end tests: a real server on a socketpair, driven through `Client`.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use crate::protocol::{Op, Request, MAGIC, MAX_MSG, VERSION};
use crate::{host, Client, SetAttr, SetTime, KEEP_ID};

const BIG_FILES: usize = 1200;

/// A scratch tree that removes itself.
struct Tree(PathBuf);

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn tree() -> Tree {
    static N: AtomicUsize = AtomicUsize::new(0);
    let p = std::env::temp_dir().join(format!(
        "gofer-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&p);
    fs::create_dir_all(p.join("dir/sub")).unwrap();
    fs::write(p.join("file.txt"), b"hello gofer").unwrap();
    fs::write(p.join("dir/sub/deep.txt"), b"deep").unwrap();
    symlink("/etc/passwd", p.join("abs_link")).unwrap();
    symlink("/etc", p.join("abs_dir_link")).unwrap();
    symlink("../../../etc/passwd", p.join("dir/rel_link")).unwrap();
    let fifo = CString::new(p.join("fifo").as_os_str().as_encoded_bytes()).unwrap();
    host::mknodat(host::at_fdcwd(), &fifo, libc::S_IFIFO | 0o644).unwrap();
    fs::create_dir(p.join("big")).unwrap();
    for i in 0..BIG_FILES {
        fs::write(
            p.join("big").join(format!("{i:04}-{}", "x".repeat(100))),
            b"",
        )
        .unwrap();
    }
    Tree(p)
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

fn start(root: &Path, readonly: bool) -> (Client, JoinHandle<std::io::Result<()>>) {
    let (a, b) = pair();
    let root = root.to_path_buf();
    let h = std::thread::spawn(move || crate::server::serve(&root, b, readonly));
    (Client::new(a).unwrap(), h)
}

fn finish(c: Client, h: JoinHandle<std::io::Result<()>>) {
    drop(c);
    h.join().unwrap().unwrap();
}

fn kind(st: &crate::Stat) -> u32 {
    st.mode & libc::S_IFMT
}

fn read_all(fd: OwnedFd) -> Vec<u8> {
    let mut v = Vec::new();
    fs::File::from(fd).read_to_end(&mut v).unwrap();
    v
}

/// `WalkOpen`: a regular file comes with a read-only fd of it, anything else
/// (a directory, a FIFO, a symlink) with none; a missing name is the walk's error.
#[test]
fn walk_open_donates_read_only_fds_of_regular_files_only() {
    let t = tree();
    let (c, h) = start(&t.0, true);
    let (root, _) = c.attach().unwrap();
    let (f, st, fd) = c.walk_open(root, b"file.txt").unwrap();
    assert_eq!(kind(&st), libc::S_IFREG);
    let fd = fd.unwrap();
    let fl = nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        nix::fcntl::FcntlArg::F_GETFL,
    )
    .unwrap();
    assert_eq!(fl & libc::O_ACCMODE, libc::O_RDONLY);
    assert_eq!(read_all(fd), b"hello gofer");
    assert_eq!(c.stat(f).unwrap().ino, st.ino);
    for name in [&b"dir"[..], b"fifo", b"abs_link"] {
        let (_, st, fd) = c.walk_open(root, name).unwrap();
        assert!(fd.is_none(), "{:?} came with a fd", kind(&st));
    }
    assert_eq!(c.walk_open(root, b"nope").err(), Some(Errno::ENOENT));
    assert_eq!(c.walk_open(f, b"x").err(), Some(Errno::ENOTDIR));
    finish(c, h);
}

#[test]
fn walk_stat_open_read() {
    let t = tree();
    let (c, h) = start(&t.0, true);
    let (root, st) = c.attach().unwrap();
    assert_eq!(kind(&st), libc::S_IFDIR);
    assert_eq!(st.ino, fs::metadata(&t.0).unwrap().ino());

    let w = c.walk(root, &[b"file.txt"]).unwrap();
    assert_eq!(w.len(), 1);
    let (f, fst) = w[0];
    assert_eq!(kind(&fst), libc::S_IFREG);
    assert_eq!(fst.size, 11);
    assert_eq!(
        c.stat(f).unwrap().ino,
        fs::metadata(t.0.join("file.txt")).unwrap().ino()
    );
    assert_eq!(read_all(c.open(f, libc::O_RDONLY).unwrap()), b"hello gofer");

    let w = c.walk(root, &[b"dir", b"sub", b"deep.txt"]).unwrap();
    assert_eq!(w.len(), 3);
    assert_eq!(read_all(c.open(w[2].0, libc::O_RDONLY).unwrap()), b"deep");
    // Walking past a regular file stops there and returns it.
    let w = c.walk(root, &[b"file.txt", b"x"]).unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(c.walk(root, &[b"nope"]), Err(Errno::ENOENT));
    // A missing later component returns what was reached.
    assert_eq!(c.walk(root, &[b"dir", b"nope"]).unwrap().len(), 1);
    // Walking from a non-directory is refused.
    assert_eq!(c.walk(f, &[b"x"]), Err(Errno::ENOTDIR));
    // Directories open read-only only; O_DIRECTORY on a file is refused.
    let d = c.walk(root, &[b"dir"]).unwrap()[0].0;
    c.open(d, libc::O_RDONLY | libc::O_DIRECTORY).unwrap();
    assert_eq!(
        c.open(f, libc::O_RDONLY | libc::O_DIRECTORY).err(),
        Some(Errno::ENOTDIR)
    );
    assert_eq!(
        c.open(f, libc::O_RDONLY | libc::O_CREAT).err(),
        Some(Errno::EINVAL)
    );
    finish(c, h);
}

#[test]
fn symlinks_are_returned_never_followed() {
    let t = tree();
    let (c, h) = start(&t.0, false);
    let (root, _) = c.attach().unwrap();
    let w = c.walk(root, &[b"abs_link"]).unwrap();
    assert_eq!(kind(&w[0].1), libc::S_IFLNK);
    assert_eq!(c.readlink(w[0].0).unwrap(), b"/etc/passwd");
    assert_eq!(c.open(w[0].0, libc::O_RDONLY).err(), Some(Errno::ELOOP));
    assert_eq!(
        c.walk(root, &[b"file.txt"])
            .map(|w| c.readlink(w[0].0))
            .unwrap(),
        Err(Errno::EINVAL)
    );

    // "Through" an absolute symlink to a directory: the walk stops at the link.
    let w = c.walk(root, &[b"abs_dir_link", b"passwd"]).unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(kind(&w[0].1), libc::S_IFLNK);
    assert_eq!(c.walk(w[0].0, &[b"passwd"]), Err(Errno::ENOTDIR));
    // A symlink fid's attributes are the link's own, never /etc's.
    assert_ne!(
        c.stat(w[0].0).unwrap().ino,
        fs::metadata("/etc").unwrap().ino()
    );

    let w = c.walk(root, &[b"dir", b"rel_link"]).unwrap();
    assert_eq!(w.len(), 2);
    assert_eq!(c.readlink(w[1].0).unwrap(), b"../../../etc/passwd");
    assert_eq!(c.open(w[1].0, libc::O_RDONLY).err(), Some(Errno::ELOOP));
    // setattr on a symlink changes the link, and chmod is not possible on one.
    let attr = SetAttr {
        mode: Some(0o600),
        ..SetAttr::default()
    };
    assert_eq!(c.setattr(w[1].0, &attr), Err(Errno::EOPNOTSUPP));
    assert_eq!(fs::metadata("/etc/passwd").unwrap().mode() & 0o777, 0o644);

    // Bad names.
    assert_eq!(c.walk(root, &[b".."]), Err(Errno::EINVAL));
    assert_eq!(c.walk(root, &[b"."]), Err(Errno::EINVAL));
    assert_eq!(c.walk(root, &[b"dir/sub"]), Err(Errno::EINVAL));
    assert_eq!(c.walk(root, &[b""]), Err(Errno::ENOENT));
    assert_eq!(c.walk(root, &[b"a\0b"]), Err(Errno::EINVAL));
    assert_eq!(c.walk(root, &[&[b'a'; 256][..]]), Err(Errno::ENAMETOOLONG));
    assert_eq!(
        c.walk(root, &[b"dir", b"..", b"file.txt"]).unwrap().len(),
        1
    );
    assert_eq!(
        c.create(root, b"../escape", libc::O_RDWR, 0o644, KEEP_ID, KEEP_ID)
            .err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        c.rename(root, b"file.txt", root, b"dir/x", 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        c.unlink(root, b"..", libc::AT_REMOVEDIR),
        Err(Errno::EINVAL)
    );
    assert!(t.0.join("file.txt").exists());
    finish(c, h);
}

#[test]
fn fifo_open_does_not_block() {
    let t = tree();
    let (c, h) = start(&t.0, false);
    let (root, _) = c.attach().unwrap();
    let w = c.walk(root, &[b"fifo"]).unwrap();
    assert_eq!(kind(&w[0].1), libc::S_IFIFO);
    let r = c.open(w[0].0, libc::O_RDONLY).unwrap();
    let mut wr = fs::File::from(c.open(w[0].0, libc::O_WRONLY).unwrap());
    wr.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    fs::File::from(r).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    finish(c, h);
}

#[test]
fn getdents_lists_everything_across_calls() {
    let t = tree();
    let (c, h) = start(&t.0, true);
    let (root, _) = c.attach().unwrap();
    let big = c.walk(root, &[b"big"]).unwrap()[0].0;
    let mut names = BTreeSet::new();
    let (mut cookie, mut calls, mut bytes) = (0u64, 0, 0usize);
    loop {
        let ents = c.getdents(big, cookie, 8192).unwrap();
        if ents.is_empty() {
            break;
        }
        calls += 1;
        for e in &ents {
            bytes += 19 + e.name.len();
            assert_eq!(e.kind, libc::DT_REG);
            assert!(names.insert(e.name.clone()), "duplicate entry");
        }
        cookie = ents.last().unwrap().next_cookie;
    }
    assert!(
        bytes > 64 * 1024 && calls > 8,
        "{bytes} bytes in {calls} calls"
    );
    let want: BTreeSet<Vec<u8>> = fs::read_dir(t.0.join("big"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_encoded_bytes())
        .collect();
    assert_eq!(names.len(), BIG_FILES);
    assert_eq!(names, want);

    // An oversized budget is clamped to what fits in one reply.
    let ents = c.getdents(big, 0, u32::MAX).unwrap();
    assert!(!ents.is_empty() && ents.len() < BIG_FILES);

    let top: BTreeSet<Vec<u8>> = c
        .getdents(root, 0, 65536)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    let want: BTreeSet<Vec<u8>> = ["abs_dir_link", "abs_link", "big", "dir", "fifo", "file.txt"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    assert_eq!(top, want);
    let f = c.walk(root, &[b"file.txt"]).unwrap()[0].0;
    assert_eq!(c.getdents(f, 0, 4096), Err(Errno::ENOTDIR));
    finish(c, h);
}

#[test]
fn statfs_and_clunk() {
    let t = tree();
    let (c, h) = start(&t.0, true);
    let (root, _) = c.attach().unwrap();
    let s = c.statfs(root).unwrap();
    let host = nix::sys::statfs::statfs(&t.0).unwrap();
    assert_eq!(s.kind, host.filesystem_type().0);
    assert_eq!(s.blocks, host.blocks());
    assert!(s.namelen >= 255);
    let f = c.walk(root, &[b"file.txt"]).unwrap()[0].0;
    c.clunk(f).unwrap();
    assert_eq!(c.stat(f), Err(Errno::EBADF));
    assert_eq!(c.clunk(f), Err(Errno::EBADF));
    assert_eq!(c.open(f, libc::O_RDONLY).err(), Some(Errno::EBADF));
    finish(c, h);
}

#[test]
fn readonly_refuses_every_write() {
    let t = tree();
    let (c, h) = start(&t.0, true);
    let (root, _) = c.attach().unwrap();
    let f = c.walk(root, &[b"file.txt"]).unwrap()[0].0;
    let k = KEEP_ID;
    assert_eq!(c.open(f, libc::O_WRONLY).err(), Some(Errno::EROFS));
    assert_eq!(c.open(f, libc::O_RDWR).err(), Some(Errno::EROFS));
    assert_eq!(
        c.open(f, libc::O_RDONLY | libc::O_TRUNC).err(),
        Some(Errno::EROFS)
    );
    assert_eq!(
        c.create(root, b"n", libc::O_RDWR, 0o644, k, k).err(),
        Some(Errno::EROFS)
    );
    assert_eq!(c.mkdir(root, b"n", 0o755, k, k), Err(Errno::EROFS));
    assert_eq!(
        c.mknod(root, b"n", libc::S_IFIFO | 0o644, k, k),
        Err(Errno::EROFS)
    );
    assert_eq!(c.unlink(root, b"file.txt", 0), Err(Errno::EROFS));
    assert_eq!(
        c.rename(root, b"file.txt", root, b"n", 0),
        Err(Errno::EROFS)
    );
    assert_eq!(c.link(f, root, b"n"), Err(Errno::EROFS));
    assert_eq!(c.symlink(root, b"n", b"x", k, k), Err(Errno::EROFS));
    let attr = SetAttr {
        size: Some(0),
        ..SetAttr::default()
    };
    assert_eq!(c.setattr(f, &attr), Err(Errno::EROFS));
    c.fsync(f, false).unwrap();
    assert_eq!(fs::read(t.0.join("file.txt")).unwrap(), b"hello gofer");
    assert!(!t.0.join("n").exists());
    finish(c, h);
}

#[test]
fn read_write_operations() {
    let t = tree();
    let (c, h) = start(&t.0, false);
    let (root, _) = c.attach().unwrap();
    let k = KEEP_ID;

    // create + write + read back; mode is exact (the gofer runs with umask 0).
    let (nf, nst, fd) = c
        .create(root, b"new", libc::O_RDWR, 0o640, 1234, 5678)
        .unwrap();
    assert_eq!(nst.mode, libc::S_IFREG | 0o640);
    assert_eq!((nst.uid, nst.gid), (1234, 5678));
    let mut file = fs::File::from(fd);
    file.write_all(b"payload").unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    let mut s = String::new();
    file.read_to_string(&mut s).unwrap();
    assert_eq!(s, "payload");
    assert_eq!(fs::read(t.0.join("new")).unwrap(), b"payload");
    let again = c.walk(root, &[b"new"]).unwrap()[0].0;
    assert_eq!(read_all(c.open(again, libc::O_RDONLY).unwrap()), b"payload");
    assert_eq!(
        c.create(root, b"new", libc::O_RDWR, 0o644, k, k).err(),
        Some(Errno::EEXIST)
    );
    // Never opens an existing FIFO or symlink through create.
    assert_eq!(
        c.create(root, b"fifo", libc::O_RDWR, 0o644, k, k).err(),
        Some(Errno::EEXIST)
    );
    assert_eq!(
        c.create(root, b"abs_link", libc::O_RDWR, 0o644, k, k).err(),
        Some(Errno::EEXIST)
    );
    c.fsync(nf, true).unwrap();

    // O_TRUNC on open.
    let fd = c.open(again, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    drop(fd);
    assert_eq!(fs::metadata(t.0.join("new")).unwrap().len(), 0);
    fs::write(t.0.join("new"), b"payload").unwrap();

    // mkdir, files inside, unlink, rmdir.
    let (d2, dst) = c.mkdir(root, b"d2", 0o750, k, k).unwrap();
    assert_eq!(dst.mode, libc::S_IFDIR | 0o750);
    let (_, _, _fd) = c.create(d2, b"inner", libc::O_WRONLY, 0o600, k, k).unwrap();
    assert_eq!(
        c.unlink(root, b"d2", libc::AT_REMOVEDIR),
        Err(Errno::ENOTEMPTY)
    );
    assert_eq!(c.unlink(root, b"d2", 0), Err(Errno::EISDIR));
    c.unlink(d2, b"inner", 0).unwrap();
    c.unlink(root, b"d2", libc::AT_REMOVEDIR).unwrap();
    assert!(!t.0.join("d2").exists());
    assert_eq!(c.unlink(root, b"new", 0x4000), Err(Errno::EINVAL));

    // rename, NOREPLACE, EXCHANGE.
    let dir = c.walk(root, &[b"dir"]).unwrap()[0].0;
    c.rename(root, b"new", dir, b"moved", 0).unwrap();
    assert_eq!(fs::read(t.0.join("dir/moved")).unwrap(), b"payload");
    // The fid still names the file after the rename (re-open is by inode, not by name).
    assert_eq!(read_all(c.open(again, libc::O_RDONLY).unwrap()), b"payload");
    assert_eq!(
        c.rename(dir, b"moved", root, b"file.txt", libc::RENAME_NOREPLACE),
        Err(Errno::EEXIST)
    );
    c.rename(dir, b"moved", root, b"file.txt", libc::RENAME_EXCHANGE)
        .unwrap();
    assert_eq!(fs::read(t.0.join("file.txt")).unwrap(), b"payload");
    assert_eq!(fs::read(t.0.join("dir/moved")).unwrap(), b"hello gofer");
    assert_eq!(
        c.rename(root, b"file.txt", root, b"x", 0xff00),
        Err(Errno::EINVAL)
    );

    // link.
    let (lf, lst) = c.link(again, root, b"hard").unwrap();
    assert_eq!(lst.nlink, 2);
    assert_eq!(lst.ino, c.stat(again).unwrap().ino);
    c.clunk(lf).unwrap();
    let ddir = c.walk(root, &[b"dir"]).unwrap()[0].0;
    assert_eq!(c.link(ddir, root, b"dirlink"), Err(Errno::EPERM));

    // symlink.
    let (sf, sst) = c.symlink(root, b"sl", b"/etc/shadow", 42, 43).unwrap();
    assert_eq!(kind(&sst), libc::S_IFLNK);
    assert_eq!((sst.uid, sst.gid), (42, 43));
    assert_eq!(c.readlink(sf).unwrap(), b"/etc/shadow");
    assert_eq!(
        fs::read_link(t.0.join("sl")).unwrap(),
        Path::new("/etc/shadow")
    );
    assert_eq!(c.symlink(root, b"sl2", b"", k, k), Err(Errno::ENOENT));

    // mknod: FIFO and socket only.
    let (_, fst) = c.mknod(root, b"p", libc::S_IFIFO | 0o600, k, k).unwrap();
    assert_eq!(fst.mode, libc::S_IFIFO | 0o600);
    let (_, sst) = c.mknod(root, b"s", libc::S_IFSOCK | 0o600, k, k).unwrap();
    assert_eq!(kind(&sst), libc::S_IFSOCK);
    assert_eq!(
        c.mknod(root, b"c", libc::S_IFCHR | 0o600, k, k),
        Err(Errno::EPERM)
    );
    assert_eq!(
        c.mknod(root, b"b", libc::S_IFBLK | 0o600, k, k),
        Err(Errno::EPERM)
    );

    // setattr: size, owner, mode, times (explicit, now, omit).
    let attr = SetAttr {
        mode: Some(0o4711),
        uid: Some(7),
        gid: Some(8),
        size: Some(3),
        atime: SetTime::At(1_000_000, 5),
        mtime: SetTime::At(2_000_000, 6),
    };
    c.setattr(again, &attr).unwrap();
    let st = c.stat(again).unwrap();
    assert_eq!(
        (st.mode & 0o7777, st.uid, st.gid, st.size),
        (0o4711, 7, 8, 3)
    );
    assert_eq!((st.atime, st.mtime), ((1_000_000, 5), (2_000_000, 6)));
    let m = fs::metadata(t.0.join("file.txt")).unwrap();
    assert_eq!((m.len(), m.permissions().mode() & 0o7777), (3, 0o4711));
    let attr = SetAttr {
        atime: SetTime::Now,
        mtime: SetTime::Omit,
        ..SetAttr::default()
    };
    c.setattr(again, &attr).unwrap();
    let st2 = c.stat(again).unwrap();
    assert!(st2.atime.0 > 1_000_000_000);
    assert_eq!(st2.mtime, (2_000_000, 6));
    let attr = SetAttr {
        size: Some(1),
        ..SetAttr::default()
    };
    assert_eq!(c.setattr(ddir, &attr), Err(Errno::EISDIR));
    finish(c, h);
}

#[test]
fn client_is_shared_between_threads() {
    let t = tree();
    let (c, h) = start(&t.0, true);
    let c = Arc::new(c);
    let (root, _) = c.attach().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let w = c.walk(root, &[b"dir", b"sub", b"deep.txt"]).unwrap();
                    assert_eq!(c.stat(w[2].0).unwrap().size, 4);
                    for (fid, _) in w {
                        c.clunk(fid).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let c = Arc::into_inner(c).unwrap();
    finish(c, h);
}

#[test]
fn long_walks_are_split() {
    let t = tree();
    let mut p = t.0.clone();
    let names: Vec<String> = (0..100).map(|i| format!("n{i}")).collect();
    for n in &names {
        p.push(n);
    }
    fs::create_dir_all(&p).unwrap();
    let (c, h) = start(&t.0, true);
    let (root, _) = c.attach().unwrap();
    let refs: Vec<&[u8]> = names.iter().map(|s| s.as_bytes()).collect();
    assert_eq!(c.walk(root, &refs).unwrap().len(), 100);
    let mut bad = refs.clone();
    bad[80] = b"missing";
    assert_eq!(c.walk(root, &bad).unwrap().len(), 80);
    bad[64] = b"missing";
    assert_eq!(c.walk(root, &bad).unwrap().len(), 64);
    finish(c, h);
}

/// Sends a raw frame and returns the raw reply (empty = connection closed).
fn raw_call(sock: &OwnedFd, frame: &[u8]) -> Vec<u8> {
    host::send_frame(sock.as_fd(), frame, None).unwrap();
    let mut buf = vec![0u8; MAX_MSG + 1];
    let got = host::recv_frame(sock.as_fd(), &mut buf).unwrap();
    buf.truncate(got.len);
    buf
}

fn status(reply: &[u8]) -> u32 {
    u32::from_le_bytes(reply[9..13].try_into().unwrap())
}

#[test]
fn malformed_frames_get_errors_or_a_hangup() {
    let t = tree();
    let (a, b) = pair();
    let root = t.0.clone();
    let h = std::thread::spawn(move || crate::server::serve(&root, b, false));

    // Before the handshake nothing else is served.
    let attach = Request::Attach.encode(1).unwrap();
    assert_eq!(status(&raw_call(&a, &attach)), Errno::EPROTO as u32);
    let v = Request::Version {
        magic: MAGIC,
        version: VERSION,
    };
    assert_eq!(status(&raw_call(&a, &v.encode(2).unwrap())), 0);

    // A sound header with a bad body: an error reply with our tag.
    let mut f = Request::Stat { fid: 1 }.encode(3).unwrap();
    f.truncate(f.len() - 2);
    let n = f.len() as u32;
    f[..4].copy_from_slice(&n.to_le_bytes());
    let r = raw_call(&a, &f);
    assert_eq!(u32::from_le_bytes(r[4..8].try_into().unwrap()), 3);
    assert_eq!(status(&r), Errno::EBADMSG as u32);
    // Unknown op.
    let mut f = Request::Attach.encode(4).unwrap();
    f[8] = 200;
    assert_eq!(status(&raw_call(&a, &f)), Errno::ENOSYS as u32);
    // Oversized datagram.
    let mut f = vec![0u8; MAX_MSG + 100];
    f[..9].copy_from_slice(&Request::Attach.encode(5).unwrap());
    assert_eq!(status(&raw_call(&a, &f)), Errno::EMSGSIZE as u32);
    // A descriptor sent by the client is dropped, and the request still answered.
    let devnull = fs::File::open("/dev/null").unwrap();
    host::send_frame(
        a.as_fd(),
        &Request::Attach.encode(6).unwrap(),
        Some(devnull.as_fd()),
    )
    .unwrap();
    let mut buf = vec![0u8; 256];
    let got = host::recv_frame(a.as_fd(), &mut buf).unwrap();
    assert_eq!(status(&buf[..got.len]), 0);
    // Still alive and consistent.
    assert_eq!(
        status(&raw_call(&a, &Request::Attach.encode(7).unwrap())),
        0
    );

    // A frame whose length field lies cannot be answered: the server hangs up.
    let mut f = Request::Attach.encode(8).unwrap();
    f[0] = 99;
    assert!(raw_call(&a, &f).is_empty());
    h.join().unwrap().unwrap();

    // Tiny garbage: also a hangup, never a panic.
    let (a, b) = pair();
    let root = t.0.clone();
    let h = std::thread::spawn(move || crate::server::serve(&root, b, false));
    assert!(raw_call(&a, b"\x01\x02\x03").is_empty());
    h.join().unwrap().unwrap();
}

#[test]
fn version_mismatch_is_refused() {
    let t = tree();
    let (a, b) = pair();
    let root = t.0.clone();
    let h = std::thread::spawn(move || crate::server::serve(&root, b, false));
    let c = Client::without_handshake(a);
    assert_eq!(c.handshake(VERSION + 1), Err(Errno::EPROTONOSUPPORT));
    // The server hung up after refusing.
    h.join().unwrap().unwrap();
    assert_eq!(c.attach().err(), Some(Errno::EIO));
    assert_eq!(Op::from_u8(0), None);
}

#[test]
fn server_end_hangup_fails_requests_cleanly() {
    let (a, b) = pair();
    let t = tree();
    let root = t.0.clone();
    let h = std::thread::spawn(move || crate::server::serve(&root, b, false));
    let c = Client::new(a).unwrap();
    let (root_fid, _) = c.attach().unwrap();
    // A mismatched handshake later makes the server refuse and hang up.
    assert_eq!(c.handshake(VERSION + 7), Err(Errno::EPROTONOSUPPORT));
    h.join().unwrap().unwrap();
    assert_eq!(c.stat(root_fid), Err(Errno::EIO));
}

/// A host thread swaps `race` between a directory (holding a decoy `secret`) and
/// symlinks pointing outside the served tree while the client walks `race/secret`
/// and opens it, thousands of times: the walk never follows the symlink, so it
/// reads the decoy or fails, and never reaches the real secret next to the tree.
#[test]
fn symlink_swap_race_never_escapes() {
    let t = tree();
    let served = t.0.join("dir");
    fs::write(t.0.join("secret"), b"REAL SECRET").unwrap();
    fs::create_dir(served.join("race")).unwrap();
    fs::write(served.join("race/secret"), b"decoy").unwrap();
    symlink("..", served.join("link_rel")).unwrap();
    symlink(&t.0, served.join("link_abs")).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, served) = (stop.clone(), served.clone());
        std::thread::spawn(move || {
            let (race, parked) = (served.join("race"), served.join("sub/parked"));
            let mut swaps = 0u32;
            while !stop.load(Ordering::Relaxed) {
                for link in ["link_rel", "link_abs"] {
                    fs::rename(&race, &parked).unwrap();
                    fs::rename(served.join(link), &race).unwrap();
                    fs::rename(&race, served.join(link)).unwrap();
                    fs::rename(&parked, &race).unwrap();
                    swaps += 1;
                }
            }
            swaps
        })
    };
    let (c, h) = start(&served, false);
    let (root, _) = c.attach().unwrap();
    let (mut decoys, mut failures) = (0, 0);
    for i in 0..4000 {
        // Alternate one multi-name walk and two single-name walks.
        let got = if i % 2 == 0 {
            c.walk(root, &[b"race", b"secret"]).unwrap_or_default()
        } else {
            let mut v = c.walk(root, &[b"race"]).unwrap_or_default();
            if let Some(&(dir, st)) = v.first() {
                if kind(&st) == libc::S_IFDIR {
                    v.extend(c.walk(dir, &[b"secret"]).unwrap_or_default());
                }
            }
            v
        };
        let leaf = got.last().copied();
        let opened = match leaf {
            Some((fid, st)) if got.len() == 2 && kind(&st) == libc::S_IFREG => c.open(fid, 0).ok(),
            _ => None,
        };
        for (fid, _) in got {
            c.clunk(fid).unwrap();
        }
        match opened.map(read_all) {
            Some(data) => {
                assert_ne!(data, b"REAL SECRET", "walk escaped the served tree");
                assert_eq!(data, b"decoy");
                decoys += 1;
            }
            None => failures += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    finish(c, h);
    assert!(
        decoys > 0 && swaps > 10,
        "{decoys} decoys, {failures} failures, {swaps} swaps"
    );
}

#[test]
fn bind_mount_parse() {
    let b = crate::BindMount::parse("/data=/srv/x:ro").unwrap();
    assert_eq!(
        (b.dest.as_str(), b.src.as_path(), b.readonly),
        ("/data", Path::new("/srv/x"), true)
    );
    let b = crate::BindMount::parse("/d=/a:b").unwrap();
    assert_eq!((b.src.as_path(), b.readonly), (Path::new("/a:b"), false));
    assert!(!crate::BindMount::parse("/d=/a:rw").unwrap().readonly);
    let b = crate::BindMount::parse("/d=/a:ro:rbind:fd=5").unwrap();
    assert_eq!((b.readonly, b.recursive, b.fd), (true, true, Some(5)));
    assert_eq!(
        crate::BindMount::parse(b.arg_with_fd(5).to_str().unwrap()),
        Ok(b)
    );
    assert!(!crate::BindMount::parse("/d=/a:ro").unwrap().recursive);
    assert!(crate::BindMount::parse("rel=/a").is_err());
    assert!(crate::BindMount::parse("/d=").is_err());
    assert!(crate::BindMount::parse("/d").is_err());
}

/// Bind mounts are further attach points: reachable by index, read-only where
/// asked (whatever the root is), and renames or links across attach points are EXDEV.
#[test]
fn bind_mounts_are_attach_points() {
    let t = tree();
    let (rw_src, ro_src) = (t.0.join("dir"), t.0.join("big"));
    let bind = |p: &std::path::Path, ro| {
        crate::server::Bind::open(crate::server::open_root(p).unwrap(), ro).unwrap()
    };
    let binds = vec![
        bind(&rw_src, false),
        bind(&ro_src, true),
        bind(&t.0.join("dir/sub"), false),
    ];
    // The root itself is served read-only here.
    let (a, b) = pair();
    let root_fd = crate::server::open_root(&t.0.join("dir/sub")).unwrap();
    let server = crate::Server::from_parts(root_fd, true).with_binds(binds);
    let h = std::thread::spawn(move || server.run(b));
    let c = Client::new(a).unwrap();

    let (root, _) = c.attach().unwrap();
    assert_eq!(
        c.mkdir(root, b"x", 0o755, KEEP_ID, KEEP_ID).err(),
        Some(Errno::EROFS)
    );
    let (rw, st) = c.attach_mount(0).unwrap();
    assert_eq!(kind(&st), libc::S_IFDIR);
    let (fid, _, fd) = c
        .create(rw, b"made.txt", libc::O_WRONLY, 0o644, KEEP_ID, KEEP_ID)
        .unwrap();
    fs::File::from(fd).write_all(b"via bind").unwrap();
    assert_eq!(fs::read(rw_src.join("made.txt")).unwrap(), b"via bind");
    let (ro, _) = c.attach_mount(1).unwrap();
    let any = c.getdents(ro, 0, 4096).unwrap()[0].name.clone();
    let f = c.walk(ro, &[&any]).unwrap()[0].0;
    assert_eq!(c.open(f, libc::O_WRONLY).err(), Some(Errno::EROFS));
    assert_eq!(c.unlink(ro, &any, 0).err(), Some(Errno::EROFS));
    assert!(c.open(f, libc::O_RDONLY).is_ok());
    // dir/sub is served twice (attach point 2 and the root): still two mounts.
    let (other, _) = c.attach_mount(2).unwrap();
    assert_eq!(
        c.rename(rw, b"made.txt", other, b"moved", 0).err(),
        Some(Errno::EXDEV)
    );
    assert_eq!(c.link(fid, other, b"l").err(), Some(Errno::EXDEV));
    assert_eq!(c.attach_mount(3).err(), Some(Errno::ENOENT));
    finish(c, h);
}

/// Fids re-open through their parent and name (the gofer holds no `/proc`): a rename
/// through the gofer moves the name along, an exchange swaps the two, and a name
/// replaced behind the gofer's back (by the host) is refused with `ESTALE`, never
/// served as the fid's file. O_TRUNC reaches only the verified file.
#[test]
fn reopen_follows_renames_and_refuses_swapped_names() {
    let t = tree();
    fs::write(t.0.join("other.txt"), b"other").unwrap();
    let (c, h) = start(&t.0, false);
    let (root, _) = c.attach().unwrap();
    let f = c.walk(root, &[b"file.txt"]).unwrap()[0].0;
    let o = c.walk(root, &[b"other.txt"]).unwrap()[0].0;
    let sub = c.walk(root, &[b"dir", b"sub"]).unwrap()[1].0;
    // Moved into another directory through the gofer: still opens, and writes land.
    c.rename(root, b"file.txt", sub, b"moved", 0).unwrap();
    assert_eq!(read_all(c.open(f, libc::O_RDONLY).unwrap()), b"hello gofer");
    // Exchanged: each fid still opens its own file.
    c.rename(sub, b"moved", root, b"other.txt", libc::RENAME_EXCHANGE)
        .unwrap();
    assert_eq!(read_all(c.open(f, libc::O_RDONLY).unwrap()), b"hello gofer");
    assert_eq!(read_all(c.open(o, libc::O_RDONLY).unwrap()), b"other");
    // The host swaps other.txt (where `f` now lives) for another file: `f` is stale,
    // and an O_TRUNC open truncates nothing.
    fs::rename(t.0.join("other.txt"), t.0.join("kept.txt")).unwrap();
    fs::write(t.0.join("other.txt"), b"planted").unwrap();
    assert_eq!(c.open(f, libc::O_RDONLY).err(), Some(Errno::ESTALE));
    assert_eq!(
        c.open(f, libc::O_WRONLY | libc::O_TRUNC).err(),
        Some(Errno::ESTALE)
    );
    assert_eq!(fs::read(t.0.join("other.txt")).unwrap(), b"planted");
    assert_eq!(fs::read(t.0.join("kept.txt")).unwrap(), b"hello gofer");
    // Nor is a symlink swapped in followed.
    fs::remove_file(t.0.join("other.txt")).unwrap();
    symlink("/etc/passwd", t.0.join("other.txt")).unwrap();
    assert_eq!(c.open(f, libc::O_RDONLY).err(), Some(Errno::ELOOP));
    // A directory re-opens through its own descriptor, whatever its name.
    fs::rename(t.0.join("dir"), t.0.join("dir2")).unwrap();
    assert!(!c.getdents(sub, 0, 4096).unwrap().is_empty());
    finish(c, h);
}

#[test]
fn extended_attributes_pass_through() {
    let t = tree();
    let (c, h) = start(&t.0, false);
    let (root, _) = c.attach().unwrap();
    let f = c.walk(root, &[b"file.txt"]).unwrap()[0].0;
    let d = c.walk(root, &[b"dir"]).unwrap()[0].0;
    assert_eq!(c.getxattr(f, b"user.a"), Err(Errno::ENODATA));
    c.setxattr(f, b"user.a", b"v\0w", 0).unwrap();
    assert_eq!(c.setxattr(f, b"user.a", b"x", 1), Err(Errno::EEXIST));
    assert_eq!(c.setxattr(f, b"user.b", b"x", 2), Err(Errno::ENODATA));
    assert_eq!(c.setxattr(f, b"user.b", b"x", 4), Err(Errno::EINVAL));
    assert_eq!(c.getxattr(f, b"user.a").unwrap(), b"v\0w");
    c.setxattr(d, b"user.d", b"", 0).unwrap();
    assert_eq!(c.listxattr(d).unwrap(), vec![b"user.d".to_vec()]);
    // The host sees what was set.
    let host_name = CString::new(t.0.join("file.txt").as_os_str().as_encoded_bytes()).unwrap();
    let mut buf = [0u8; 8];
    // SAFETY: the buffer is writable for its length.
    let n = unsafe {
        libc::getxattr(
            host_name.as_ptr(),
            c"user.a".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(&buf[..n as usize], b"v\0w");
    c.removexattr(f, b"user.a").unwrap();
    assert_eq!(c.removexattr(f, b"user.a"), Err(Errno::ENODATA));
    assert!(c.listxattr(f).unwrap().is_empty());
    // Symlinks and FIFOs are never re-opened, so their attributes are out of reach.
    let l = c.walk(root, &[b"abs_link"]).unwrap()[0].0;
    assert_eq!(c.getxattr(l, b"trusted.x"), Err(Errno::EOPNOTSUPP));
    let big = vec![0u8; crate::protocol::MAX_XATTR + 1];
    assert_eq!(c.setxattr(f, b"user.big", &big, 0), Err(Errno::E2BIG));
    finish(c, h);

    // A read-only server refuses changes but still reads.
    let (c, h) = start(&t.0, true);
    let (root, _) = c.attach().unwrap();
    let d = c.walk(root, &[b"dir"]).unwrap()[0].0;
    assert_eq!(c.setxattr(d, b"user.e", b"", 0), Err(Errno::EROFS));
    assert_eq!(c.removexattr(d, b"user.d"), Err(Errno::EROFS));
    assert_eq!(c.getxattr(d, b"user.d").unwrap(), b"");
    finish(c, h);
}

/// `--overlay=self`: a server given an upper directory makes empty unnamed files
/// there, each its own; one without answers `EOPNOTSUPP`.
#[test]
fn upper_files_are_new_unnamed_and_separate() {
    let t = tree();
    let (c, h) = start(&t.0, true);
    assert_eq!(c.upper_file().err(), Some(Errno::EOPNOTSUPP));
    finish(c, h);

    let (a, b) = pair();
    let upper = crate::open_bind_source(&t.0).unwrap();
    let server = crate::Server::new(&t.0, true)
        .unwrap()
        .with_upper(Some(upper));
    let h = std::thread::spawn(move || server.run(b));
    let c = Client::new(a).unwrap();
    let before: Vec<_> = fs::read_dir(&t.0)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let f1 = fs::File::from(c.upper_file().unwrap());
    let f2 = fs::File::from(c.upper_file().unwrap());
    let (m1, m2) = (f1.metadata().unwrap(), f2.metadata().unwrap());
    assert!(m1.is_file() && m1.len() == 0 && m1.nlink() == 0, "{m1:?}");
    assert_ne!(m1.ino(), m2.ino());
    assert_eq!(m1.dev(), fs::metadata(&t.0).unwrap().dev());
    use std::os::unix::fs::FileExt;
    f1.write_all_at(b"upper data", 1 << 20).unwrap();
    let mut buf = [0u8; 10];
    f1.read_exact_at(&mut buf, 1 << 20).unwrap();
    assert_eq!(&buf, b"upper data");
    assert_eq!(f2.metadata().unwrap().len(), 0);
    let after: Vec<_> = fs::read_dir(&t.0)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(before, after, "an upper file got a name");
    drop(c);
    h.join().unwrap().unwrap();
}
