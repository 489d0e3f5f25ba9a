//! The overlay and the writable gofer filesystem over a real gofer server serving a
//! temporary directory.

use super::*;
use std::collections::BTreeMap as Map;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

struct Tmp(PathBuf);
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tree() -> Tmp {
    use std::sync::atomic::AtomicUsize;
    static N: AtomicUsize = AtomicUsize::new(0);
    let p = std::env::temp_dir().join(format!(
        "rvisor-overlay-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(p.join("dir/sub")).unwrap();
    std::fs::create_dir_all(p.join("keep/deep")).unwrap();
    std::fs::write(p.join("dir/a.txt"), b"hello lower").unwrap();
    std::fs::write(p.join("dir/sub/x"), b"x").unwrap();
    std::fs::write(p.join("top.txt"), b"top data").unwrap();
    std::fs::write(p.join("keep/deep/f"), b"f").unwrap();
    std::os::unix::fs::symlink("dir/a.txt", p.join("link")).unwrap();
    Tmp(p)
}

/// Everything observable about a tree: type, mode, owner, size, times, contents.
fn snapshot(root: &Path) -> Map<PathBuf, String> {
    let mut out = Map::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let body = if m.file_type().is_symlink() {
            format!("-> {:?}", std::fs::read_link(&p).unwrap())
        } else if m.is_file() {
            format!("{:?}", std::fs::read(&p).unwrap())
        } else {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
            String::new()
        };
        let key = p.strip_prefix(root).unwrap().to_path_buf();
        let mtime = if m.is_dir() { 0 } else { m.mtime_nsec() };
        out.insert(
            key,
            format!(
                "{:o} {} {} {} {} {} {body}",
                m.mode(),
                m.uid(),
                m.gid(),
                m.len(),
                m.mtime(),
                mtime
            ),
        );
    }
    out
}

fn client(root: &Path) -> Arc<gofer::Client> {
    crate::fs::gofer::tests::client(root)
}

fn config(overlay: &str) -> BootConfig {
    BootConfig {
        id: "t".into(),
        platform: "ptrace".into(),
        strace: false,
        hostname: "h".into(),
        process: crate::config::ProcessConfig {
            args: vec!["/x".into()],
            env: vec![],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            rlimits: vec![],
            ..Default::default()
        },
        overlay: overlay.into(),
        overlay_size: None,
        network: "none".into(),
        readonly_rootfs: false,
        weak_confinement: false,
        syscall_patching: true,
        mounts: Vec::new(),
        net_raw: false,
        masked_paths: Vec::new(),
        readonly_paths: Vec::new(),
        netns_path: None,
        resources: Default::default(),
        netdev: None,
        allow_metadata: false,
        devices: Vec::new(),
    }
}

const ROOT: Owner = Owner { uid: 0, gid: 0 };

fn walk(root: &Arc<dyn Inode>, path: &str) -> SysResult<Arc<dyn Inode>> {
    let mut cur = root.clone();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        cur = cur.lookup(c.as_bytes())?;
    }
    Ok(cur)
}

fn read_all(i: &Arc<dyn Inode>) -> Vec<u8> {
    let f = i.open(libc::O_RDONLY).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = f.read(&mut buf, out.len() as u64).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

fn write_at(i: &Arc<dyn Inode>, flags: i32, data: &[u8], off: u64) {
    let f = i.open(libc::O_WRONLY | flags).unwrap();
    assert_eq!(f.write(data, off).unwrap(), data.len());
}

fn names(i: &Arc<dyn Inode>) -> Vec<String> {
    let f = i.open(libc::O_RDONLY | libc::O_DIRECTORY).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        // A small budget, to cross several calls.
        let ents = f.getdents(pos, 64).unwrap();
        let Some(last) = ents.last() else { break };
        pos = last.next;
        out.extend(ents.into_iter().map(|e| String::from_utf8(e.name).unwrap()));
    }
    out.sort();
    out
}

/// Every mutation the contract has, through the memory overlay: the overlay shows
/// them, and the served tree is byte-for-byte and attribute-for-attribute unchanged.
#[test]
fn memory_overlay_never_touches_the_lower_tree() {
    let t = tree();
    let before = snapshot(&t.0);
    let root = root_for(&config("memory"), client(&t.0)).unwrap();

    // Copy-up on a write open keeps the old data, then changes it.
    let top = walk(&root, "top.txt").unwrap();
    write_at(&top, 0, b"TOP", 0);
    assert_eq!(read_all(&top), b"TOP data");
    assert_eq!(top.stat().unwrap().size, 8);
    // O_TRUNC empties the upper copy.
    write_at(&top, libc::O_TRUNC, b"new", 0);
    assert_eq!(read_all(&walk(&root, "top.txt").unwrap()), b"new");

    // New files, directories, symlinks; EEXIST on existing names (lower or upper).
    let d = walk(&root, "dir").unwrap();
    let n = d
        .create(b"new.txt", 0o640, Owner { uid: 7, gid: 8 })
        .unwrap();
    write_at(&n, 0, b"fresh", 0);
    let st = n.stat().unwrap();
    assert_eq!(
        (st.mode, st.uid, st.gid, st.size),
        (libc::S_IFREG | 0o640, 7, 8, 5)
    );
    assert_eq!(d.create(b"new.txt", 0o600, ROOT).err(), Some(Errno::EEXIST));
    assert_eq!(d.create(b"a.txt", 0o600, ROOT).err(), Some(Errno::EEXIST));
    assert_eq!(d.mkdir(b"sub", 0o700, ROOT).err(), Some(Errno::EEXIST));
    d.symlink(b"sl", b"/top.txt", ROOT).unwrap();
    assert_eq!(
        walk(&root, "dir/sl").unwrap().readlink().unwrap(),
        b"/top.txt"
    );
    let nd = d.mkdir(b"newdir", 0o755, ROOT).unwrap();
    assert!(nd.stat().unwrap().is_dir());
    nd.create(b"inner", 0o644, ROOT).unwrap();

    // setattr copies up the attributes only.
    let a = walk(&root, "dir/a.txt").unwrap();
    a.setattr(&SetAttr {
        mode: Some(0o600),
        uid: Some(1000),
        ..Default::default()
    })
    .unwrap();
    let st = a.stat().unwrap();
    assert_eq!((st.mode & 0o7777, st.uid), (0o600, 1000));
    assert_eq!(read_all(&a), b"hello lower");
    // Truncate through setattr.
    a.setattr(&SetAttr {
        size: Some(5),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(read_all(&a), b"hello");

    // A truncating open of a lower file copies up no data.
    let f = walk(&root, "keep/deep/f").unwrap();
    drop(f.open(libc::O_WRONLY | libc::O_TRUNC).unwrap());
    assert_eq!((f.stat().unwrap().size, read_all(&f)), (0, vec![]));

    // Hard link of a lower file: both names are one file.
    d.link(b"hard", &f).unwrap();
    write_at(&walk(&root, "dir/hard").unwrap(), 0, b"F", 0);
    assert_eq!(read_all(&f), b"F");
    assert_eq!(f.stat().unwrap().nlink, 2);

    // Deletions: whiteouts hide lower names; rmdir of a non-empty dir refuses.
    assert_eq!(d.unlink(b"sub", true).err(), Some(Errno::ENOTEMPTY));
    assert_eq!(d.unlink(b"sub", false).err(), Some(Errno::EISDIR));
    assert_eq!(d.unlink(b"a.txt", true).err(), Some(Errno::ENOTDIR));
    walk(&root, "dir/sub").unwrap().unlink(b"x", false).unwrap();
    d.unlink(b"sub", true).unwrap();
    d.unlink(b"a.txt", false).unwrap();
    assert_eq!(walk(&root, "dir/a.txt").err(), Some(Errno::ENOENT));
    assert_eq!(walk(&root, "dir/sub").err(), Some(Errno::ENOENT));
    // mkdir over a deleted lower dir is opaque: the old contents stay hidden.
    let sub = d.mkdir(b"sub", 0o755, ROOT).unwrap();
    assert_eq!(names(&sub), [".", ".."]);
    assert_eq!(walk(&root, "dir/sub/x").err(), Some(Errno::ENOENT));

    // Renames: a lower file moves (copy-up + whiteout); a lower dir is EXDEV; a
    // new dir moves with its contents.
    root.rename(b"top.txt", &d, b"moved.txt", 0).unwrap();
    assert_eq!(walk(&root, "top.txt").err(), Some(Errno::ENOENT));
    assert_eq!(read_all(&walk(&root, "dir/moved.txt").unwrap()), b"new");
    assert_eq!(root.rename(b"keep", &d, b"k", 0).err(), Some(Errno::EXDEV));
    d.rename(b"newdir", &root, b"nd2", 0).unwrap();
    assert!(walk(&root, "nd2/inner").is_ok());
    assert_eq!(
        root.rename(b"link", &d, b"new.txt", libc::RENAME_NOREPLACE)
            .err(),
        Some(Errno::EEXIST)
    );
    root.rename(b"link", &d, b"new.txt", 0).unwrap();
    assert_eq!(
        walk(&root, "dir/new.txt").unwrap().readlink().unwrap(),
        b"dir/a.txt"
    );

    // The merged listing: upper wins, whiteouts hide, dots first.
    assert_eq!(
        names(&d),
        [".", "..", "hard", "moved.txt", "new.txt", "sl", "sub"]
    );
    assert_eq!(names(&root), [".", "..", "dir", "keep", "nd2"]);

    drop((top, d, n, nd, a, f, sub, root));
    assert_eq!(before, snapshot(&t.0), "the lower tree changed");
}

/// `--overlay=none`: the gofer filesystem itself is writable and the changes land
/// in the served tree.
#[test]
fn no_overlay_writes_through_the_gofer() {
    let t = tree();
    let root = root_for(&config("none"), client(&t.0)).unwrap();
    let d = walk(&root, "dir").unwrap();
    let n = d.create(b"new.txt", 0o640, ROOT).unwrap();
    assert_eq!(d.create(b"new.txt", 0o640, ROOT).err(), Some(Errno::EEXIST));
    write_at(&n, 0, b"through", 0);
    // stat follows writes made through a donated fd.
    assert_eq!(n.stat().unwrap().size, 7);
    let top = walk(&root, "top.txt").unwrap();
    write_at(&top, libc::O_TRUNC, b"T", 0);
    assert_eq!(top.stat().unwrap().size, 1);
    top.setattr(&SetAttr {
        mode: Some(0o600),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(top.stat().unwrap().mode & 0o7777, 0o600);
    let nlink = d.stat().unwrap().nlink;
    d.mkdir(b"m", 0o755, ROOT).unwrap();
    assert_eq!(
        d.stat().unwrap().nlink,
        nlink + 1,
        "directory stat refreshed"
    );
    d.unlink(b"a.txt", false).unwrap();
    root.rename(b"top.txt", &d, b"moved", 0).unwrap();
    d.symlink(b"sl", b"x", ROOT).unwrap();
    d.link(b"hard", &n).unwrap();
    assert_eq!(
        names(&d),
        [".", "..", "hard", "m", "moved", "new.txt", "sl", "sub"]
    );

    let p = &t.0;
    assert_eq!(std::fs::read(p.join("dir/new.txt")).unwrap(), b"through");
    assert_eq!(std::fs::read(p.join("dir/moved")).unwrap(), b"T");
    let m = std::fs::metadata(p.join("dir/moved")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o600);
    assert!(!p.join("dir/a.txt").exists() && !p.join("top.txt").exists());
    assert!(p.join("dir/m").is_dir());
    assert_eq!(
        std::fs::read_link(p.join("dir/sl")).unwrap(),
        Path::new("x")
    );
    assert_eq!(std::fs::metadata(p.join("dir/hard")).unwrap().nlink(), 2);
}

/// A read-only gofer filesystem refuses every change with EROFS.
#[test]
fn readonly_root_refuses_changes() {
    let t = tree();
    let mut c = config("none");
    c.readonly_rootfs = true;
    let root = root_for(&c, client(&t.0)).unwrap();
    assert_eq!(root.create(b"n", 0o644, ROOT).err(), Some(Errno::EROFS));
    assert_eq!(root.mkdir(b"n", 0o755, ROOT).err(), Some(Errno::EROFS));
    assert_eq!(root.unlink(b"top.txt", false).err(), Some(Errno::EROFS));
    let top = walk(&root, "top.txt").unwrap();
    assert_eq!(top.open(libc::O_WRONLY).err(), Some(Errno::EROFS));
    assert_eq!(top.setattr(&SetAttr::default()).err(), Some(Errno::EROFS));
    assert_eq!(
        root_for(&config("bogus"), client(&t.0))
            .err()
            .map(|e| e.contains("unknown")),
        Some(true)
    );
}

/// fallocate reaches the data wherever it lives: the overlay's memfd for a copied-up
/// or new file (the lower file unchanged), the host file itself without the overlay.
/// Both once answered ENODEV (Go's linker fallocates its output).
#[test]
fn fallocate_on_overlay_and_gofer_files() {
    let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    for overlay in ["memory", "none"] {
        let t = tree();
        let root = root_for(&config(overlay), client(&t.0)).unwrap();
        let top = walk(&root, "top.txt").unwrap();
        let f = top.open(libc::O_RDWR).unwrap();
        f.allocate(0, 0, 10000).unwrap();
        assert_eq!(top.stat().unwrap().size, 10000, "{overlay}");
        f.allocate(libc::FALLOC_FL_KEEP_SIZE, 10000, 5000).unwrap();
        assert_eq!(top.stat().unwrap().size, 10000, "{overlay}");
        f.allocate(punch, 0, 4096).unwrap();
        let data = read_all(&top);
        assert_eq!(data.len(), 10000);
        assert!(data[..4096].iter().all(|&b| b == 0), "{overlay}: hole");
        assert_eq!(
            f.allocate(libc::FALLOC_FL_PUNCH_HOLE, 0, 1).err(),
            Some(Errno::EOPNOTSUPP),
            "{overlay}: punch without keep-size never reaches the host"
        );
        let n = root.create(b"new", 0o644, ROOT).unwrap();
        n.open(libc::O_RDWR).unwrap().allocate(0, 0, 8192).unwrap();
        assert_eq!(n.stat().unwrap().size, 8192, "{overlay}");
        let host = std::fs::metadata(t.0.join("top.txt")).unwrap().len();
        if overlay == "memory" {
            assert_eq!(host, 8, "the lower file is unchanged");
        } else {
            assert_eq!(host, 10000, "written through to the host file");
        }
    }
}

/// The lower layer is the sandbox's own (gVisor's exclusive root): a missing name
/// and a listing are remembered, so a file the host adds later is not seen by the
/// name looked up before nor in the listing read before; what the sandbox itself
/// changes always is.
#[test]
fn misses_and_listings_of_the_lower_layer_are_kept() {
    let t = tree();
    let root = root_for(&config("memory"), client(&t.0)).unwrap();
    let d = walk(&root, "dir").unwrap();
    assert_eq!(d.lookup(b"later").err(), Some(Errno::ENOENT));
    assert_eq!(names(&d), [".", "..", "a.txt", "sub"]);
    std::fs::write(t.0.join("dir/later"), b"host").unwrap();
    std::fs::write(t.0.join("dir/other"), b"host").unwrap();
    assert_eq!(d.lookup(b"later").err(), Some(Errno::ENOENT));
    assert_eq!(names(&d), [".", "..", "a.txt", "sub"]);
    // A name never looked up is found, and then listed too.
    assert!(d.lookup(b"other").is_ok());
    assert_eq!(names(&d), [".", "..", "a.txt", "other", "sub"]);
    // The sandbox's own changes: a remembered miss can be created, then removed.
    let n = d.create(b"later", 0o644, ROOT).unwrap();
    assert!(d.lookup(b"later").is_ok());
    d.unlink(b"a.txt", false).unwrap();
    assert_eq!(names(&d), [".", "..", "later", "other", "sub"]);
    d.unlink(b"later", false).unwrap();
    assert_eq!(d.lookup(b"later").err(), Some(Errno::ENOENT));
    assert_eq!(names(&d), [".", "..", "other", "sub"]);
    drop((n, d, root));
}

/// A kept listing counts against the overlay's budget and gives its entries back
/// when its directory goes; one too large for the budget is not kept, and still
/// lists every entry.
#[test]
fn kept_listings_are_bounded() {
    let t = tree();
    let big = t.0.join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..300 {
        std::fs::write(big.join(format!("f{i:03}")), b"").unwrap();
    }
    let root = root_for(&config("memory"), client(&t.0)).unwrap();
    let fs = root.as_any().downcast_ref::<ONode>().unwrap().fs.clone();
    let b = walk(&root, "big").unwrap();
    let listed = names(&b);
    assert_eq!(listed.len(), 302);
    assert_eq!(listed[2], "f000");
    assert_eq!(fs.listed.load(Ordering::Acquire), 300);
    // Over budget: nothing more is kept, the listing is still whole.
    fs.listed.fetch_add(LISTING_BUDGET, Ordering::AcqRel);
    let k = walk(&root, "keep").unwrap();
    assert_eq!(names(&k), [".", "..", "deep"]);
    assert_eq!(fs.listed.load(Ordering::Acquire), LISTING_BUDGET + 300);
    fs.listed.fetch_sub(LISTING_BUDGET, Ordering::AcqRel);
    // The directory node leaves its parent's cache with its last holder.
    drop(b);
    root.as_any()
        .downcast_ref::<ONode>()
        .unwrap()
        .st
        .lock()
        .unwrap()
        .children
        .clear();
    assert_eq!(fs.listed.load(Ordering::Acquire), 0);
    drop((k, root));
}

/// The in-memory upper layer is a tmpfs of the overlay's bound (`size=` here):
/// statfs shows it, a fallocate larger than what is free is ENOSPC and changes
/// nothing, a write stops short at the bound, a copy-up that does not fit fails
/// with ENOSPC.
#[test]
fn the_in_memory_upper_layer_holds_its_bound() {
    let t = tree();
    let mut c = config("memory");
    c.overlay_size = Some(1 << 20);
    let root = root_for(&c, client(&t.0)).unwrap();
    let st = root.statfs().unwrap();
    assert_eq!((st.blocks, st.bfree, st.bsize), (256, 256, 4096));
    assert_eq!(st.kind, OVERLAYFS_SUPER_MAGIC);
    let n = root.create(b"new", 0o644, ROOT).unwrap();
    let f = n.open(libc::O_RDWR).unwrap();
    assert_eq!(f.allocate(0, 0, 2 << 20).err(), Some(Errno::ENOSPC));
    f.allocate(0, 0, 1000 * 1024).unwrap();
    assert_eq!(root.statfs().unwrap().bfree, 6);
    assert_eq!(f.allocate(0, 1 << 20, 7 * 4096).err(), Some(Errno::ENOSPC));
    assert_eq!(
        n.stat().unwrap().size,
        1000 * 1024,
        "a refused fallocate changes nothing"
    );
    let buf = vec![1u8; 10 * 4096];
    assert_eq!(
        f.write(&buf, 1000 * 1024).unwrap(),
        6 * 4096,
        "short at the bound"
    );
    assert_eq!(f.write(&buf, 2 << 20).err(), Some(Errno::ENOSPC));
    assert_eq!(root.statfs().unwrap().bfree, 0);
    // Copying up a lower file needs room too.
    let top = walk(&root, "top.txt").unwrap();
    assert_eq!(top.open(libc::O_RDWR).err(), Some(Errno::ENOSPC));
    drop(f);
    root.unlink(b"new", false).unwrap();
    drop(n);
    assert_eq!(
        root.statfs().unwrap().bfree,
        256,
        "an unlinked file's pages come back"
    );
    assert!(top.open(libc::O_RDWR).is_ok());
}

/// A gofer client whose server makes `--overlay=self` upper files in `upper`.
fn client_with_upper(root: &Path, upper: &Path) -> Arc<gofer::Client> {
    let root = root.to_path_buf();
    let dir: std::os::fd::OwnedFd = std::fs::File::open(upper).unwrap().into();
    crate::fs::gofer::tests::client_of(move |b| {
        gofer::server::Server::new(&root, true)
            .unwrap()
            .with_upper(Some(dir))
            .run(b)
    })
}

/// With `self`, each upper file keeps the rules of where its own data is: a file
/// made on disk before the store fell back to memory still takes a fallocate
/// larger than the in-memory bound (its disk decides), files made after the
/// fallback are held to the bound, and statfs then shows the bound.
#[test]
fn self_overlay_files_keep_the_rules_of_their_own_store() {
    let t = tree();
    let upper = t.0.join("upper");
    std::fs::create_dir(&upper).unwrap();
    let mut c = config("self");
    c.overlay_size = Some(1 << 20);
    let root = root_for(&c, client_with_upper(&t.0, &upper)).unwrap();
    let disk = root.create(b"disk", 0o644, ROOT).unwrap();
    let fs = root.as_any().downcast_ref::<ONode>().unwrap().fs.clone();
    let Store::Disk { in_memory, .. } = &fs.store else {
        panic!("self is a disk store");
    };
    assert!(
        !in_memory.load(Ordering::Relaxed),
        "the gofer made the file"
    );
    assert_ne!(root.statfs().unwrap().blocks, 256, "the disk's figures");
    // The gofer can no longer make files (as a full or O_TMPFILE-less disk).
    in_memory.store(true, Ordering::Relaxed);
    let mem = root.create(b"mem", 0o644, ROOT).unwrap();
    assert_eq!(root.statfs().unwrap().blocks, 256, "the bound's figures");
    let d = disk.open(libc::O_RDWR).unwrap();
    d.allocate(libc::FALLOC_FL_KEEP_SIZE, 0, 2 << 20).unwrap();
    let m = mem.open(libc::O_RDWR).unwrap();
    assert_eq!(m.allocate(0, 0, 2 << 20).err(), Some(Errno::ENOSPC));
    m.allocate(0, 0, 1 << 20).unwrap();
    drop((d, m, disk, mem, root));
}
