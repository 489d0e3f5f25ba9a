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

use crate::vfs::Inode;
use devices::{CharDevice, Kind};
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
    let fs = FsInfo {
        dev: DEVFS_DEV,
        magic: TMPFS_MAGIC,
    };
    let dev = |k: Kind| -> Arc<dyn Inode> { CharDevice::new(fs, k) };
    let link = |t: &[u8]| -> Arc<dyn Inode> { StaticLink::new(fs, t) };
    let pts = pty::Devpts::new(FsInfo {
        dev: DEVPTS_DEV,
        magic: DEVPTS_MAGIC,
    });
    let entries: Vec<(&[u8], Arc<dyn Inode>)> = vec![
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
        (b"shm", StaticDir::new(fs, 0o1777, vec![])),
        (b"ptmx", pty::PtmxNode::new(pts.clone())),
        (b"pts", pty::PtsDir::new(pts)),
    ];
    StaticDir::new(fs, 0o755, entries)
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
}
