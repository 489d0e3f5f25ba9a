//! devfs: the sandbox's `/dev`. Character devices the sentry implements itself
//! (null, zero, full, random, urandom, tty), and the usual symlinks into
//! `/proc/self/fd`. Nothing of the host's `/dev` is reachable.
//!
//! `/dev/pts` is this devfs's own devpts (it shares its ptys with `/dev/ptmx`).
//! `/dev/shm` is a mount point the VFS mount table fills with a tmpfs; it is a plain
//! empty directory here.

pub mod devices;
pub mod dir;
pub mod pty;

use std::sync::Arc;

use crate::config::DeviceConfig;
use crate::vfs::Inode;
use devices::{CharDevice, DeviceNode, Kind};
use dir::{FsInfo, StaticDir, StaticLink};

/// `st_dev` of devfs objects.
pub const DEVFS_DEV: u64 = 0x6;
/// `st_dev` of devpts objects.
pub const DEVPTS_DEV: u64 = 0x18;
/// `DEVPTS_SUPER_MAGIC`.
const DEVPTS_MAGIC: i64 = 0x1cd1;
/// devtmpfs reports the tmpfs magic.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Builds the root directory of a devfs instance.
pub fn new_root() -> Arc<dyn Inode> {
    match new_root_with(&[]) {
        Ok(r) => r,
        // No spec devices: nothing in the tree can clash.
        Err(_) => StaticDir::new(FS, 0o755, vec![]),
    }
}

const FS: FsInfo = FsInfo {
    dev: DEVFS_DEV,
    magic: TMPFS_MAGIC,
};

/// Builds the root directory of a devfs instance with the spec's `linux.devices`
/// (emulated ones only, under `/dev`) added: each is a node of the emulated device
/// with the spec's permission bits and owner, at any name (`/dev/mynull`, also in
/// subdirectories, which are made 0755 as runc makes them). A device named as one
/// of the usual nodes replaces it. Errors name the path.
pub fn new_root_with(devices: &[DeviceConfig]) -> Result<Arc<dyn Inode>, String> {
    let dev = |k: Kind| -> Arc<dyn Inode> { CharDevice::new(FS, k) };
    let link = |t: &[u8]| -> Arc<dyn Inode> { StaticLink::new(FS, t) };
    let pts = pty::Devpts::new(FsInfo {
        dev: DEVPTS_DEV,
        magic: DEVPTS_MAGIC,
    });
    let base: Vec<(&[u8], Arc<dyn Inode>)> = vec![
        (b"null", dev(Kind::Null)),
        (b"zero", dev(Kind::Zero)),
        (b"full", dev(Kind::Full)),
        (b"random", dev(Kind::Random)),
        (b"urandom", dev(Kind::Urandom)),
        (b"tty", dev(Kind::Tty)),
        (b"fd", link(b"/proc/self/fd")),
        (b"stdin", link(b"/proc/self/fd/0")),
        (b"stdout", link(b"/proc/self/fd/1")),
        (b"stderr", link(b"/proc/self/fd/2")),
        (b"shm", StaticDir::new(FS, 0o1777, vec![])),
        (b"ptmx", pty::PtmxNode::new(pts.clone())),
        (b"pts", pty::PtsDir::new(pts.clone())),
    ];
    let mut root = Tree::Dir(
        base.into_iter()
            .map(|(n, i)| (n.to_vec(), Tree::Leaf(i)))
            .collect(),
    );
    for d in devices {
        let node: Arc<dyn Inode> = match (d.major, d.minor) {
            (5, 2) => pty::PtmxNode::new(pts.clone()),
            (ma, mi) => match Kind::of(ma, mi) {
                Some(k) => dev(k),
                None => {
                    return Err(format!(
                        "{}: c {ma}:{mi} is not a device the sandbox emulates",
                        d.path
                    ))
                }
            },
        };
        let node = DeviceNode::new(node, d.mode, d.uid, d.gid);
        let rest = d
            .path
            .strip_prefix("/dev/")
            .ok_or_else(|| format!("{}: devices are made only under /dev", d.path))?;
        let parts: Vec<&[u8]> = rest.split('/').map(str::as_bytes).collect();
        if parts
            .iter()
            .any(|p| p.is_empty() || *p == b"." || *p == b"..")
        {
            return Err(format!("{}: not a plain path under /dev", d.path));
        }
        root.insert(&parts, node)
            .map_err(|m| format!("{}: {m}", d.path))?;
    }
    Ok(root.build(0o755))
}

/// devfs's tree while the spec's devices are added to it.
enum Tree {
    /// A node of devfs's own (pts and shm included) or of the spec.
    Leaf(Arc<dyn Inode>),
    /// A directory the spec's devices made.
    Dir(Vec<(Vec<u8>, Tree)>),
}

impl Tree {
    fn insert(&mut self, parts: &[&[u8]], node: Arc<dyn Inode>) -> Result<(), String> {
        let Tree::Dir(entries) = self else {
            return Err("a parent is not a directory".into());
        };
        let (first, rest) = match parts.split_first() {
            Some(x) => x,
            None => return Err("empty path".into()),
        };
        let at = entries.iter().position(|(n, _)| n == first);
        if rest.is_empty() {
            match at.map(|i| &entries[i].1) {
                None => entries.push((first.to_vec(), Tree::Leaf(node))),
                Some(Tree::Leaf(old)) if is_device(old) => {
                    let i = at.unwrap_or_default();
                    entries[i].1 = Tree::Leaf(node);
                }
                Some(_) => return Err("exists in the sandbox's /dev and is not a device".into()),
            }
            return Ok(());
        }
        let i = match at {
            Some(i) => i,
            None => {
                entries.push((first.to_vec(), Tree::Dir(Vec::new())));
                entries.len() - 1
            }
        };
        match &mut entries[i].1 {
            t @ Tree::Dir(_) => t.insert(rest, node),
            Tree::Leaf(_) => Err("a parent is not a directory the spec can add to".into()),
        }
    }

    fn build(self, perm: u32) -> Arc<dyn Inode> {
        match self {
            Tree::Leaf(i) => i,
            Tree::Dir(entries) => {
                let built: Vec<(Vec<u8>, Arc<dyn Inode>)> = entries
                    .into_iter()
                    .map(|(n, t)| (n, t.build(0o755)))
                    .collect();
                StaticDir::new(
                    FS,
                    perm,
                    built
                        .iter()
                        .map(|(n, i)| (n.as_slice(), i.clone()))
                        .collect(),
                )
            }
        }
    }
}

fn is_device(i: &Arc<dyn Inode>) -> bool {
    i.stat()
        .map(|s| s.mode & libc::S_IFMT == libc::S_IFCHR)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errno::Errno;

    #[test]
    fn devices_behave() {
        let root = new_root();
        let null = root.lookup(b"null").unwrap();
        let st = null.stat().unwrap();
        assert_eq!(st.mode, libc::S_IFCHR | 0o666);
        assert_eq!(st.rdev, libc::makedev(1, 3));
        let f = null.open(libc::O_RDWR).unwrap();
        let mut b = [9u8; 16];
        assert_eq!(f.read(&mut b, 0), Ok(0));
        assert_eq!(f.write(b"abc", 0), Ok(3));

        let z = root.lookup(b"zero").unwrap().open(libc::O_RDONLY).unwrap();
        assert_eq!(z.read(&mut b, 0), Ok(16));
        assert_eq!(b, [0u8; 16]);

        let full = root.lookup(b"full").unwrap().open(libc::O_RDWR).unwrap();
        assert_eq!(full.write(b"x", 0), Err(Errno::ENOSPC));
        assert_eq!(full.read(&mut b, 0), Ok(16));

        let r = root
            .lookup(b"urandom")
            .unwrap()
            .open(libc::O_RDONLY)
            .unwrap();
        let mut a = [0u8; 32];
        assert_eq!(r.read(&mut a, 0), Ok(32));
        assert_ne!(a, [0u8; 32]);

        let tty = root.lookup(b"tty").unwrap();
        assert_eq!(tty.open(libc::O_RDWR).err(), Some(Errno::ENXIO));
        assert_eq!(
            root.lookup(b"fd").unwrap().readlink().unwrap(),
            b"/proc/self/fd"
        );
        assert_eq!(root.lookup(b"nope").err(), Some(Errno::ENOENT));
    }

    #[test]
    fn spec_devices_at_other_names_with_their_mode_and_owner() {
        let d = |path: &str, major, minor, mode| DeviceConfig {
            path: path.into(),
            major,
            minor,
            mode,
            uid: 7,
            gid: 8,
        };
        let root = new_root_with(&[
            d("/dev/mynull", 1, 3, 0o600),
            d("/dev/sub/dir/z", 1, 5, 0o640),
            d("/dev/null", 1, 9, 0o444),
            d("/dev/myptmx", 5, 2, 0o666),
        ])
        .unwrap();
        let my = root.lookup(b"mynull").unwrap();
        let st = my.stat().unwrap();
        assert_eq!(
            (st.mode, st.uid, st.gid, st.rdev),
            (libc::S_IFCHR | 0o600, 7, 8, libc::makedev(1, 3))
        );
        let mut b = [9u8; 8];
        assert_eq!(my.open(libc::O_RDWR).unwrap().read(&mut b, 0), Ok(0));
        let sub = root.lookup(b"sub").unwrap();
        assert_eq!(sub.stat().unwrap().mode, libc::S_IFDIR | 0o755);
        let z = sub.lookup(b"dir").unwrap().lookup(b"z").unwrap();
        assert_eq!(z.open(libc::O_RDONLY).unwrap().read(&mut b, 0), Ok(8));
        assert_eq!(b, [0u8; 8]);
        // A usual name given other numbers is that device.
        let n = root.lookup(b"null").unwrap().stat().unwrap();
        assert_eq!((n.rdev, n.mode & 0o777), (libc::makedev(1, 9), 0o444));
        let p = root.lookup(b"myptmx").unwrap().stat().unwrap();
        assert_eq!(p.rdev, libc::makedev(5, 2));
        assert!(root.lookup(b"zero").is_ok() && root.lookup(b"pts").is_ok());
        for bad in [
            d("/dev/fd", 1, 3, 0o666),
            d("/dev/null/x", 1, 3, 0o666),
            d("/dev/sub/x", 1, 3, 0o666),
            d("/etc/x", 1, 3, 0o666),
            d("/dev/../x", 1, 3, 0o666),
            d("/dev/sda", 8, 0, 0o666),
        ] {
            let two = [d("/dev/sub", 1, 3, 0o666), bad.clone()];
            assert!(new_root_with(&two).is_err(), "{}", bad.path);
        }
    }
}
