use super::*;
use crate::vfs::path::{resolve, Follow};
use crate::vfs::{Dentry, FsContext};

fn fresh() -> Arc<TmpInode> {
    Tmpfs::new_root(MemoryFile::new(), 0o755, Owner { uid: 0, gid: 0 }, 0)
}

const ROOT: Owner = Owner { uid: 0, gid: 0 };

#[test]
fn files_dirs_links_and_nlink() {
    let root = fresh();
    let d = root.mkdir(b"d", 0o755, ROOT).unwrap();
    assert_eq!(root.stat().unwrap().nlink, 3);
    let f = d.create(b"f", 0o644, ROOT).unwrap();
    assert_eq!(d.create(b"f", 0o644, ROOT).err(), Some(Errno::EEXIST));
    let file = f.open(libc::O_RDWR).unwrap();
    assert_eq!(file.write(b"hello", 3).unwrap(), 5);
    let mut buf = [9u8; 10];
    assert_eq!(file.read(&mut buf, 0).unwrap(), 8);
    assert_eq!(&buf[..8], b"\0\0\0hello");
    assert_eq!(f.stat().unwrap().size, 8);
    root.link(b"hard", &f).unwrap();
    assert_eq!(f.stat().unwrap().nlink, 2);
    assert_eq!(root.link(b"dl", &d).err(), Some(Errno::EPERM));
    d.unlink(b"f", false).unwrap();
    assert_eq!(f.stat().unwrap().nlink, 1);
    assert_eq!(root.unlink(b"d", false).err(), Some(Errno::EISDIR));
    assert_eq!(root.unlink(b"hard", true).err(), Some(Errno::ENOTDIR));
    d.mkdir(b"sub", 0o700, ROOT).unwrap();
    assert_eq!(root.unlink(b"d", true).err(), Some(Errno::ENOTEMPTY));
    d.unlink(b"sub", true).unwrap();
    root.unlink(b"d", true).unwrap();
    assert_eq!(root.stat().unwrap().nlink, 2);
    // The data survives unlink while open.
    root.unlink(b"hard", false).unwrap();
    assert_eq!(f.stat().unwrap().nlink, 0);
    assert_eq!(file.read(&mut buf, 3).unwrap(), 5);
    let s = root.symlink(b"s", b"target", ROOT).unwrap();
    assert_eq!(s.readlink().unwrap(), b"target");
    assert_eq!(s.stat().unwrap().size, 6);
    assert_eq!(
        root.mknod(b"c", libc::S_IFCHR | 0o600, ROOT).err(),
        Some(Errno::EPERM)
    );
    let p = root.mknod(b"p", libc::S_IFIFO | 0o600, ROOT).unwrap();
    assert_eq!(p.stat().unwrap().file_type(), libc::S_IFIFO);
    assert_eq!(p.open(libc::O_RDONLY).err(), Some(Errno::ENXIO));
}

#[test]
fn truncate_zeroes_and_rename_rules() {
    let root = fresh();
    let f = root.create(b"f", 0o644, ROOT).unwrap();
    let file = f.open(libc::O_RDWR).unwrap();
    file.write(&[7u8; 5000], 0).unwrap();
    f.setattr(&SetAttr {
        size: Some(10),
        ..Default::default()
    })
    .unwrap();
    f.setattr(&SetAttr {
        size: Some(5000),
        ..Default::default()
    })
    .unwrap();
    let mut buf = vec![1u8; 5000];
    assert_eq!(file.read(&mut buf, 0).unwrap(), 5000);
    assert!(buf[..10].iter().all(|&b| b == 7) && buf[10..].iter().all(|&b| b == 0));

    let a = root.mkdir(b"a", 0o755, ROOT).unwrap();
    let b = a.mkdir(b"b", 0o755, ROOT).unwrap();
    let root_dyn: Arc<dyn Inode> = root.clone();
    let b_dyn: Arc<dyn Inode> = b.clone();
    assert_eq!(
        root.rename(b"a", &b_dyn, b"x", 0).err(),
        Some(Errno::EINVAL)
    );
    root.mkdir(b"full", 0o755, ROOT)
        .unwrap()
        .create(b"x", 0o644, ROOT)
        .unwrap();
    root.mkdir(b"empty", 0o755, ROOT).unwrap();
    assert_eq!(
        root.rename(b"a", &root_dyn, b"full", 0).err(),
        Some(Errno::ENOTEMPTY)
    );
    assert_eq!(
        root.rename(b"a", &root_dyn, b"f", 0).err(),
        Some(Errno::ENOTDIR)
    );
    assert_eq!(
        root.rename(b"f", &root_dyn, b"empty", 0).err(),
        Some(Errno::EISDIR)
    );
    assert_eq!(
        root.rename(b"f", &root_dyn, b"a", libc::RENAME_NOREPLACE)
            .err(),
        Some(Errno::EEXIST)
    );
    root.rename(b"a", &root_dyn, b"empty", 0).unwrap();
    assert_eq!(root.lookup(b"a").err(), Some(Errno::ENOENT));
    // Move b up: nlinks follow.
    let empty = root.lookup(b"empty").unwrap();
    empty.rename(b"b", &root_dyn, b"b2", 0).unwrap();
    assert_eq!(empty.stat().unwrap().nlink, 2);
    root.rename(b"f", &root_dyn, b"b2", libc::RENAME_EXCHANGE)
        .unwrap();
    assert!(root.lookup(b"f").unwrap().stat().unwrap().is_dir());
    let other = fresh();
    let other_dyn: Arc<dyn Inode> = other;
    assert_eq!(
        root.rename(b"f", &other_dyn, b"f", 0).err(),
        Some(Errno::EXDEV)
    );
}

#[test]
fn getdents_positions_survive_removal() {
    let root = fresh();
    for n in [b"a", b"b", b"c"] {
        root.create(n, 0o644, ROOT).unwrap();
    }
    let dir = root.open(libc::O_RDONLY).unwrap();
    let first = dir.getdents(0, 4096).unwrap();
    let names: Vec<_> = first.iter().map(|e| e.name.clone()).collect();
    assert_eq!(names, [&b"."[..], b"..", b"a", b"b", b"c"]);
    root.unlink(b"a", false).unwrap();
    let rest = dir.getdents(first[3].next, 4096).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].name, b"c");
}

#[test]
fn walk_crosses_mounts() {
    use crate::vfs::mount::MountTable;
    let root_fs = fresh();
    root_fs.mkdir(b"mnt", 0o755, ROOT).unwrap();
    let root = Dentry::new_root(root_fs);
    let table = MountTable::new();
    let at = resolve(
        &FsContext {
            root: root.clone(),
            cwd: root.clone(),
            umask: 0,
        },
        &root,
        b"/mnt",
        Follow::Yes,
    )
    .unwrap();
    let inner = fresh();
    inner.mkdir(b"in", 0o755, ROOT).unwrap();
    let mroot = table
        .mount(&at, b"/mnt", inner, libc::MS_RDONLY, "tmpfs", "tmpfs")
        .unwrap();
    let fs = FsContext {
        root: root.clone(),
        cwd: root.clone(),
        umask: 0,
    };
    let d = resolve(&fs, &root, b"/mnt/in", Follow::Yes).unwrap();
    assert_eq!(d.path_from(&root), b"/mnt/in");
    assert_ne!(d.mount_flags() & libc::MS_RDONLY, 0);
    assert_eq!(d.check_writable(), Err(Errno::EROFS));
    let up = resolve(&fs, &d, b"../..", Follow::Yes).unwrap();
    assert!(Arc::ptr_eq(&up, &root));
    let m = resolve(&fs, &root, b"/mnt", Follow::Yes).unwrap();
    assert!(Arc::ptr_eq(&m, &mroot));
    assert_eq!(m.path_from(&root), b"/mnt");
    // A missing mountpoint on a read-only filesystem gets a placeholder.
    let cfg = vec![crate::config::MountConfig {
        destination: "/mnt/in/deep".into(),
        kind: "tmpfs".into(),
        ..Default::default()
    }];
    let mut ctors = std::collections::HashMap::new();
    ctors.insert("tmpfs".to_string(), Tmpfs::constructor(MemoryFile::new()));
    table.mount_all(&root, &cfg, &ctors).unwrap();
    let deep = resolve(&fs, &root, b"/mnt/in/deep/..", Follow::Yes).unwrap();
    assert!(Arc::ptr_eq(&deep, &d));
    assert_eq!(table.list().len(), 2);
    let bad = vec![crate::config::MountConfig {
        destination: "/x".into(),
        kind: "nosuchfs".into(),
        ..Default::default()
    }];
    assert!(table.mount_all(&root, &bad, &ctors).is_err());
}

const PG: u64 = 4096;

#[test]
fn size_limit_charges_pages_held() {
    let root = Tmpfs::new_root(MemoryFile::new(), 0o755, ROOT, 64 * PG);
    size_limit_holds(root, true);
}

/// The same rules with the data in a host tmpfs of the mount's size (what a mount
/// made at boot gets), where the host enforces them; skipped without the privilege
/// to mount one.
#[test]
fn size_limit_holds_in_a_host_tmpfs() {
    let Ok(host) = host_tmpfs::mount(64 * PG) else {
        eprintln!("no privilege to mount a tmpfs: skipped");
        return;
    };
    let root = Tmpfs::new_root_in(MemoryFile::new(), 0o755, ROOT, 64 * PG, Some(host));
    size_limit_holds(root, false);
}

/// The same rules in a host tmpfs larger than the mount (a spare taken by a mount
/// made once confined, whose `size=` is not one of the graded sizes): the sentry
/// holds `write` and `fallocate` to the mount's size and `statfs` shows it.
#[test]
fn size_limit_holds_in_a_larger_host_tmpfs() {
    let Ok(host) = host_tmpfs::mount(80 * PG) else {
        eprintln!("no privilege to mount a tmpfs: skipped");
        return;
    };
    let root = Tmpfs::new_root_in(MemoryFile::new(), 0o755, ROOT, 64 * PG, Some(host));
    assert_eq!(root.statfs().unwrap().blocks, 64);
    size_limit_holds(root, true);
}

/// `reserves`: the host does not hold faults to the size (memfds, a host tmpfs
/// larger than the mount), so a mapped file counts at its size and the sparse
/// file here, larger than the filesystem, cannot be mapped: its pages are written
/// instead.
fn size_limit_holds(root: Arc<TmpInode>, reserves: bool) {
    let free = |r: &Arc<TmpInode>| r.statfs().unwrap().bfree;
    let f = root.create(b"f", 0o644, ROOT).unwrap();
    let file = f.open(libc::O_RDWR).unwrap();
    // A sparse file costs nothing.
    f.setattr(&SetAttr {
        size: Some(1 << 20),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(free(&root), 64);
    assert_eq!(f.stat().unwrap().blocks, 0);
    // Pages that appear in the memfd without a write (through a mapping) count
    // once the file is mapped.
    let m = if reserves {
        assert_eq!(file.map_source().err(), Some(Errno::ENOMEM));
        for i in 0..16 {
            file.write(&[1], i * PG).unwrap();
        }
        None
    } else {
        let m = file.mappable().unwrap();
        for i in 0..16 {
            host::pwrite(m.host_fd(), &[1], i * PG).unwrap();
        }
        Some(m)
    };
    assert_eq!(free(&root), 48);
    assert_eq!(f.stat().unwrap().blocks, 16 * 8);
    // A write into holes stops at the limit, then ENOSPC; held pages still take
    // writes.
    let buf = vec![7u8; 256 << 10];
    assert_eq!(file.write(&buf, 512 << 10).unwrap(), 48 * PG as usize);
    assert_eq!(free(&root), 0);
    assert_eq!(file.write(&buf[..1], 900 << 10), Err(Errno::ENOSPC));
    assert_eq!(file.write(&buf[..10], 5 * PG + 1).unwrap(), 10);
    let g = root.create(b"g", 0o644, ROOT).unwrap();
    let gf = g.open(libc::O_RDWR).unwrap();
    assert_eq!(gf.write(b"x", 0), Err(Errno::ENOSPC));
    f.setattr(&SetAttr {
        size: Some(64 << 10),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(free(&root), 48);
    // fallocate: a range larger than the filesystem, or whose missing pages do
    // not fit, is refused whole; pages already held cost nothing again.
    assert_eq!(file.allocate(0, 0, 260 << 10), Err(Errno::ENOSPC));
    file.allocate(0, 64 << 10, 64 << 10).unwrap();
    assert_eq!(free(&root), 32);
    assert_eq!(f.stat().unwrap().size, 128 << 10);
    assert_eq!(file.allocate(0, 128 << 10, 256 << 10), Err(Errno::ENOSPC));
    assert_eq!(free(&root), 32);
    assert_eq!(f.stat().unwrap().size, 128 << 10);
    assert_eq!(free(&root), 32, "before");
    file.allocate(0, 0, 256 << 10).unwrap();
    assert_eq!(free(&root), 0);
    // A punched hole gives its whole pages back and keeps the size.
    let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    assert_eq!(file.write(&[7, 7], 16 * PG).unwrap(), 2);
    file.allocate(punch, 16 * PG + 1, 8 * PG).unwrap();
    assert_eq!(free(&root), 7);
    assert_eq!(f.stat().unwrap().size, 256 << 10);
    let mut b = [1u8; 2];
    file.read(&mut b, 16 * PG).unwrap();
    assert_eq!(b, [7, 0], "zeroed from the hole's start");
    assert_eq!(
        file.write(&buf[..8 * PG as usize], 16 * PG).unwrap(),
        8 * PG as usize
    );
    assert_eq!(free(&root), 0);
    drop(file);
    drop(m);
    root.unlink(b"f", false).unwrap();
    drop(f);
    // (A child another test forks meanwhile may hold the file's host descriptor.)
    assert!(crate::sys::host_tmpfs::tests::eventually(
        || free(&root) == 64
    ));
}

/// Where the host does not hold faults to `size=` (here: memfds), a mapped file
/// counts at its size: the room it may fill through mappings is not given to
/// writes of other files, growing it past the room is ENOSPC, and statfs shows the
/// pages held, as Linux's. Unmapped, a sparse file still costs nothing.
#[test]
fn mapped_files_count_at_their_size_where_the_host_does_not_hold_faults() {
    let root = Tmpfs::new_root(MemoryFile::new(), 0o755, ROOT, 64 * PG);
    let free = |r: &Arc<TmpInode>| r.statfs().unwrap().bfree;
    let f = root.create(b"f", 0o644, ROOT).unwrap();
    let file = f.open(libc::O_RDWR).unwrap();
    file.write(&[1], 0).unwrap();
    f.setattr(&SetAttr {
        size: Some(40 * PG),
        ..Default::default()
    })
    .unwrap();
    let m = file.map_source().unwrap();
    assert_eq!(free(&root), 63, "held: one page");
    // Faults fill the file up to its size, never past it.
    for i in 0..40 {
        host::pwrite(m.host_fd(), &[1], i * PG).unwrap();
    }
    assert_eq!(free(&root), 24);
    file.allocate(
        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
        0,
        20 * PG,
    )
    .unwrap();
    assert_eq!(free(&root), 44, "punched pages are free, as on Linux");
    // ...but kept for the mapping: another file gets the 24 pages left.
    let g = root.create(b"g", 0o644, ROOT).unwrap();
    let gf = g.open(libc::O_RDWR).unwrap();
    let buf = vec![7u8; 30 * PG as usize];
    assert_eq!(gf.write(&buf, 0).unwrap(), 24 * PG as usize);
    assert_eq!(gf.write(&buf[..1], 24 * PG), Err(Errno::ENOSPC));
    assert_eq!(gf.allocate(0, 24 * PG, PG), Err(Errno::ENOSPC));
    let grow = |size| {
        f.setattr(&SetAttr {
            size: Some(size),
            ..Default::default()
        })
    };
    assert_eq!(
        grow(41 * PG),
        Err(Errno::ENOSPC),
        "the mapped file cannot grow"
    );
    assert_eq!(file.write(&[1], 40 * PG), Err(Errno::ENOSPC));
    // Its holes may still be written, within its size.
    assert_eq!(file.write(&buf[..PG as usize], 0).unwrap(), PG as usize);
    // Shrinking gives the room back, to the mapped file as to others.
    grow(30 * PG).unwrap();
    grow(35 * PG).unwrap();
    assert_eq!(
        gf.write(&buf[..5 * PG as usize], 24 * PG).unwrap(),
        5 * PG as usize
    );
    // An unmapped sparse file costs nothing and still cannot be mapped past the room.
    let h = root.create(b"h", 0o644, ROOT).unwrap();
    h.setattr(&SetAttr {
        size: Some(1 << 30),
        ..Default::default()
    })
    .unwrap();
    let hf = h.open(libc::O_RDWR).unwrap();
    assert_eq!(hf.map_source().err(), Some(Errno::ENOMEM));
    drop((m, file, gf, hf));
    for n in [&b"f"[..], b"g", b"h"] {
        root.unlink(n, false).unwrap();
    }
    drop((f, g, h));
    assert!(crate::sys::host_tmpfs::tests::eventually(
        || free(&root) == 64
    ));
}
