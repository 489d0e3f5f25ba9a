//! `/proc/PID/mounts` and `/proc/PID/mountinfo`, generated from the sandbox's mount
//! tree as the process sees it from its root, in the formats of proc(5).

use std::fmt::Write as _;
use std::sync::Arc;

use crate::vfs::mount::{visible_mounts, Mount, VisibleMount};
use crate::vfs::Dentry;

/// Host filesystem magics (`statfs.f_type`) and the names Linux shows for them, for
/// mounts whose type is whatever the host serves (the root and bind mounts).
const MAGICS: [(i64, &str); 16] = [
    (0x794c_7630, "overlay"),
    (0x0102_1994, "tmpfs"),
    (0xef53, "ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683e, "btrfs"),
    (0x2fc1_2fc1, "zfs"),
    (0xf2f5_2010, "f2fs"),
    (0x6969, "nfs"),
    (0x0102_1997, "9p"),
    (0x6573_5546, "fuse"),
    (0x7371_7368, "squashfs"),
    (0x8584_58f6, "ramfs"),
    (0x9fa0, "proc"),
    (0x6265_6572, "sysfs"),
    (0x1cd1, "devpts"),
    (0x4d44, "vfat"),
];

/// Kinds whose filesystem is the host's, named from `statfs`.
fn host_backed(kind: &str) -> bool {
    matches!(kind, "rootfs" | "bind")
}

/// The filesystem type shown for `m`.
fn fs_type(m: &Mount) -> String {
    if !host_backed(m.kind()) {
        return m.kind().to_string();
    }
    let magic = m
        .root_dentry()
        .and_then(|r| r.inode().statfs().ok())
        .map(|s| s.kind);
    magic
        .and_then(|k| MAGICS.iter().find(|(x, _)| *x == k))
        .map_or_else(|| m.kind().to_string(), |(_, n)| (*n).to_string())
}

/// The source shown for `m`: the configured one; for the root, `overlay` over a
/// memory overlay and `none` otherwise (it has no host path worth naming).
fn source(m: &Mount, fstype: &str) -> String {
    if m.kind() == "rootfs" {
        return if fstype == "overlay" {
            "overlay"
        } else {
            "none"
        }
        .to_string();
    }
    if m.source().is_empty() {
        return "none".to_string();
    }
    m.source().to_string()
}

/// proc(5)'s escaping of names: space, tab, newline and backslash (and `#` in
/// sources) as three-digit octal.
fn escape(s: &[u8], extra: &[u8]) -> String {
    let mut out = String::new();
    for &b in s {
        if matches!(b, b' ' | b'\t' | b'\n' | b'\\') || extra.contains(&b) {
            let _ = write!(out, "\\{b:03o}");
        } else {
            out.push_str(&String::from_utf8_lossy(&[b]));
        }
    }
    out
}

/// `ro`/`rw` and the per-mount flags, as `show_mnt_opts` lists them.
fn mount_options(flags: u64) -> String {
    let mut s = String::from(if flags & libc::MS_RDONLY != 0 {
        "ro"
    } else {
        "rw"
    });
    for (bit, name) in [
        (libc::MS_NOSUID, "nosuid"),
        (libc::MS_NODEV, "nodev"),
        (libc::MS_NOEXEC, "noexec"),
        (libc::MS_NOATIME, "noatime"),
        (libc::MS_NODIRATIME, "nodiratime"),
    ] {
        if flags & bit != 0 {
            s.push(',');
            s.push_str(name);
        }
    }
    // Atime is not persisted; the setting is shown as asked (relatime by default).
    if flags & (libc::MS_NOATIME | libc::MS_STRICTATIME) == 0 {
        s.push_str(",relatime");
    }
    s
}

/// mountinfo's optional fields: the peer group of a shared mount, the master of a
/// slave, `unbindable`.
fn propagation_fields(m: &Mount) -> String {
    let p = m.propagation();
    let mut s = String::new();
    if p.shared != 0 {
        let _ = write!(s, " shared:{}", p.shared);
    }
    if p.master != 0 {
        let _ = write!(s, " master:{}", p.master);
    }
    if p.unbindable {
        s.push_str(" unbindable");
    }
    s
}

/// The filesystem's own options as Linux prints them. tmpfs's follow
/// `shmem_show_options`: size (from the filesystem, in KiB), then mode in octal when
/// it is not the default 1777, then uid and gid, then the rest as given.
fn fs_options(m: &Mount) -> Vec<String> {
    if m.kind() != "tmpfs" {
        return m.data().to_vec();
    }
    let get = |k: &str| {
        m.data()
            .iter()
            .rev()
            .find_map(|o| o.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
    };
    let mut out = Vec::new();
    if get("size").is_some() {
        let st = m.root_dentry().and_then(|r| r.inode().statfs().ok());
        if let Some(st) = st.filter(|s| s.blocks > 0) {
            out.push(format!(
                "size={}k",
                st.blocks * st.bsize.max(0) as u64 / 1024
            ));
        }
    }
    if let Some(v) = get("nr_inodes") {
        out.push(format!("nr_inodes={v}"));
    }
    if let Some(mode) = get("mode").and_then(|v| u32::from_str_radix(v, 8).ok()) {
        if mode & 0o7777 != 0o1777 {
            out.push(format!("mode={:03o}", mode & 0o7777));
        }
    }
    for k in ["uid", "gid"] {
        if let Some(v) = get(k).filter(|v| *v != "0") {
            out.push(format!("{k}={v}"));
        }
    }
    for o in m.data() {
        let key = o.split_once('=').map_or(o.as_str(), |(k, _)| k);
        if !matches!(key, "size" | "nr_inodes" | "mode" | "uid" | "gid") && !out.contains(o) {
            out.push(o.clone());
        }
    }
    out
}

/// The superblock's `ro`/`rw`: a read-only bind of a writable filesystem is
/// read-only only at the mount.
fn super_options(m: &Mount) -> String {
    let ro = m.super_ro() && m.kind() != "bind";
    let mut s = String::from(if ro { "ro" } else { "rw" });
    for o in fs_options(m) {
        s.push(',');
        s.push_str(&o);
    }
    s
}

/// The device number of the mount's filesystem as `major:minor`.
fn dev_text(m: &Mount) -> String {
    let dev = m
        .root_dentry()
        .and_then(|r| r.inode().stat().ok())
        .map_or(0, |s| s.dev);
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    format!("{major}:{minor}")
}

fn mounts_line(out: &mut String, v: &VisibleMount) {
    let m = &v.mount;
    let fstype = fs_type(m);
    let mut opts = mount_options(m.flags());
    for o in fs_options(m) {
        opts.push(',');
        opts.push_str(&o);
    }
    let _ = writeln!(
        out,
        "{} {} {} {opts} 0 0",
        escape(source(m, &fstype).as_bytes(), b"#"),
        escape(&v.mount_point, b""),
        fstype,
    );
}

fn mountinfo_line(out: &mut String, v: &VisibleMount) {
    let m = &v.mount;
    let fstype = fs_type(m);
    let _ = writeln!(
        out,
        "{} {} {} {} {} {}{} - {fstype} {} {}",
        m.id(),
        v.parent_id,
        dev_text(m),
        escape(&v.root, b""),
        escape(&v.mount_point, b""),
        mount_options(m.flags()),
        propagation_fields(m),
        escape(source(m, &fstype).as_bytes(), b"#"),
        super_options(m),
    );
}

/// `/proc/PID/mounts` for a process whose root is `root`.
pub fn mounts_text(root: &Arc<Dentry>) -> String {
    let mut out = String::new();
    for v in visible_mounts(root) {
        mounts_line(&mut out, &v);
    }
    out
}

/// `/proc/PID/mountinfo` for a process whose root is `root`.
pub fn mountinfo_text(root: &Arc<Dentry>) -> String {
    let mut out = String::new();
    for v in visible_mounts(root) {
        mountinfo_line(&mut out, &v);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::MountConfig;
    use crate::fs::memfile::MemoryFile;
    use crate::fs::tmpfs::Tmpfs;
    use crate::vfs::mount::{FsConstructor, MountTable};
    use crate::vfs::path::{resolve, Follow};
    use crate::vfs::{FsContext, Inode, Owner};

    const ROOT: Owner = Owner { uid: 0, gid: 0 };

    fn tmpfs_root() -> Arc<dyn Inode> {
        Tmpfs::new_root(MemoryFile::new(), 0o755, ROOT, 0)
    }

    fn mc(dest: &str, kind: &str, source: &str, opts: &[&str]) -> MountConfig {
        MountConfig {
            destination: dest.into(),
            kind: kind.into(),
            source: source.into(),
            options: opts.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn ctors() -> HashMap<String, FsConstructor> {
        let mut c: HashMap<String, FsConstructor> = HashMap::new();
        c.insert("tmpfs".into(), Tmpfs::constructor(MemoryFile::new()));
        c
    }

    /// Each field of each line, with the ids checked for parentage and replaced by
    /// their line numbers (ids are sandbox-wide counters).
    fn mountinfo_fields(text: &str) -> Vec<Vec<String>> {
        let lines: Vec<Vec<String>> = text
            .lines()
            .map(|l| l.split(' ').map(str::to_string).collect())
            .collect();
        let ids: Vec<String> = lines.iter().map(|f| f[0].clone()).collect();
        lines
            .into_iter()
            .map(|mut f| {
                f[0] = ids.iter().position(|i| *i == f[0]).unwrap().to_string();
                f[1] = ids
                    .iter()
                    .position(|i| *i == f[1])
                    .map_or("-".to_string(), |p| p.to_string());
                f[2] = "D".into();
                f
            })
            .collect()
    }

    #[test]
    fn mounts_and_mountinfo_follow_the_table() {
        let root = Dentry::new_root(tmpfs_root());
        let table = MountTable::new();
        table
            .mount_all(
                &root,
                &[
                    mc("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
                    mc(
                        "/dev/shm",
                        "tmpfs",
                        "shm",
                        &["nosuid", "nodev", "mode=1777"],
                    ),
                    mc(
                        "/m/t t",
                        "tmpfs",
                        "tmpfs",
                        &["nosuid", "nodev", "mode=0750", "size=1m", "uid=5"],
                    ),
                    mc("/ro", "tmpfs", "tmpfs", &["ro", "noexec"]),
                ],
                &{
                    let mut c = ctors();
                    c.insert("proc".into(), Tmpfs::constructor(MemoryFile::new()));
                    c
                },
            )
            .unwrap();
        assert_eq!(
            mounts_text(&root),
            "none / tmpfs rw,relatime 0 0\n\
             proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n\
             shm /dev/shm tmpfs rw,nosuid,nodev,relatime 0 0\n\
             tmpfs /m/t\\040t tmpfs rw,nosuid,nodev,relatime,size=1024k,mode=750,uid=5 0 0\n\
             tmpfs /ro tmpfs ro,noexec,relatime 0 0\n"
        );
        let info = mountinfo_fields(&mountinfo_text(&root));
        let want: Vec<Vec<&str>> = vec![
            vec![
                "0",
                "-",
                "D",
                "/",
                "/",
                "rw,relatime",
                "-",
                "tmpfs",
                "none",
                "rw",
            ],
            vec![
                "1",
                "0",
                "D",
                "/",
                "/proc",
                "rw,nosuid,nodev,noexec,relatime",
                "-",
                "proc",
                "proc",
                "rw",
            ],
            vec![
                "2",
                "0",
                "D",
                "/",
                "/dev/shm",
                "rw,nosuid,nodev,relatime",
                "-",
                "tmpfs",
                "shm",
                "rw",
            ],
            vec![
                "3",
                "0",
                "D",
                "/",
                "/m/t\\040t",
                "rw,nosuid,nodev,relatime",
                "-",
                "tmpfs",
                "tmpfs",
                "rw,size=1024k,mode=750,uid=5",
            ],
            vec![
                "4",
                "0",
                "D",
                "/",
                "/ro",
                "ro,noexec,relatime",
                "-",
                "tmpfs",
                "tmpfs",
                "ro",
            ],
        ];
        assert_eq!(info, want);
    }

    #[test]
    fn nested_mounts_and_a_chroot_see_their_own_part() {
        let root = Dentry::new_root(tmpfs_root());
        let table = MountTable::new();
        table
            .mount_all(
                &root,
                &[
                    mc("/a", "tmpfs", "one", &[]),
                    mc("/a/b", "tmpfs", "two", &["nodev"]),
                    mc("/c", "tmpfs", "three", &[]),
                ],
                &ctors(),
            )
            .unwrap();
        let fs = FsContext {
            root: root.clone(),
            cwd: root.clone(),
            umask: 0,
        };
        let info = mountinfo_fields(&mountinfo_text(&root));
        // /a/b's parent is /a, not the root.
        assert_eq!(info[2][4], "/a/b");
        assert_eq!(info[2][1], "1");
        // A process chroot'ed into /a sees /a as its root and /a/b below it only.
        let a = resolve(&fs, &root, b"/a", Follow::Yes).unwrap();
        assert_eq!(
            mounts_text(&a),
            "one / tmpfs rw,relatime 0 0\ntwo /b tmpfs rw,nodev,relatime 0 0\n"
        );
        // Chroot'ed into a directory inside the root mount: that directory is the
        // mountinfo root of the first line, and /c is out of sight.
        root.inode().mkdir(b"jail", 0o755, ROOT).unwrap();
        let jail = resolve(&fs, &root, b"/jail", Follow::Yes).unwrap();
        let info = mountinfo_fields(&mountinfo_text(&jail));
        assert_eq!(info.len(), 1);
        assert_eq!(info[0][3], "/jail");
        assert_eq!(info[0][4], "/");
        // Another tree's mounts never show up.
        let other = Dentry::new_root(tmpfs_root());
        assert_eq!(mounts_text(&other).lines().count(), 1);
    }

    #[test]
    fn single_file_mounts() {
        let root = Dentry::new_root(tmpfs_root());
        let table = MountTable::new();
        let fs = FsContext {
            root: root.clone(),
            cwd: root.clone(),
            umask: 0,
        };
        // A file mounted where nothing was: an empty file is made as the mountpoint,
        // through a dangling symlink's target as runc does.
        root.inode().mkdir(b"etc", 0o755, ROOT).unwrap();
        let etc = resolve(&fs, &root, b"/etc", Follow::Yes).unwrap();
        etc.inode()
            .symlink(b"resolv.conf", b"../run/resolv.conf", ROOT)
            .unwrap();
        let src = tmpfs_root();
        let file = src.create(b"f", 0o644, ROOT).unwrap();
        file.open(libc::O_RDWR).unwrap().write(b"hi", 0).unwrap();
        let mut c = ctors();
        let f2 = file.clone();
        c.insert("bind".into(), Box::new(move |_| Ok(f2.clone())));
        table
            .mount_all(
                &root,
                &[
                    mc("/etc/hosts", "bind", "/host/hosts", &["ro"]),
                    mc("/etc/resolv.conf", "bind", "/host/resolv", &[]),
                ],
                &c,
            )
            .unwrap();
        for p in [&b"/etc/hosts"[..], b"/etc/resolv.conf", b"/run/resolv.conf"] {
            let d = resolve(&fs, &root, p, Follow::Yes).unwrap();
            let mut buf = [0u8; 8];
            let n = d.inode().open(libc::O_RDONLY).unwrap().read(&mut buf, 0);
            assert_eq!(n, Ok(2), "{p:?}");
            assert_eq!(&buf[..2], b"hi");
        }
        let hosts = resolve(&fs, &root, b"/etc/hosts", Follow::Yes).unwrap();
        assert_eq!(hosts.check_writable(), Err(crate::errno::Errno::EROFS));
        assert_eq!(hosts.path_from(&root), b"/etc/hosts");
        let made = etc.child(b"hosts").unwrap();
        assert!(made.inode().stat().unwrap().is_regular());
        assert!(made.is_mountpoint());
        let text = mounts_text(&root);
        assert!(
            text.contains("/host/hosts /etc/hosts tmpfs ro,relatime 0 0\n"),
            "{text}"
        );
        assert!(
            text.contains("/host/resolv /run/resolv.conf tmpfs rw,relatime 0 0\n"),
            "{text}"
        );
        // A directory never goes on a file, nor a file on a directory.
        let bad = table.mount_all(&root, &[mc("/etc", "bind", "/x", &[])], &c);
        assert!(bad.unwrap_err().contains("Not a directory"), "ENOTDIR");
        let bad = table.mount_all(&root, &[mc("/etc/hosts", "tmpfs", "t", &[])], &ctors());
        assert!(bad.is_err());
    }
}
