//! The character devices of devfs.

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::fs::devfs::dir::{next_ino, FsInfo};
use crate::sys::host;
use crate::vfs::{FileImpl, Inode, Stat, StatFs};

/// Which device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `/dev/null` (1, 3).
    Null,
    /// `/dev/zero` (1, 5).
    Zero,
    /// `/dev/full` (1, 7).
    Full,
    /// `/dev/random` (1, 8).
    Random,
    /// `/dev/urandom` (1, 9).
    Urandom,
    /// `/dev/tty` (5, 0): the controlling terminal, which sandboxed processes lack.
    Tty,
}

impl Kind {
    /// The device with numbers `major`:`minor`, if it is one of these.
    pub fn of(major: u32, minor: u32) -> Option<Kind> {
        [
            Kind::Null,
            Kind::Zero,
            Kind::Full,
            Kind::Random,
            Kind::Urandom,
            Kind::Tty,
        ]
        .into_iter()
        .find(|k| k.numbers() == (major, minor))
    }

    fn numbers(self) -> (u32, u32) {
        match self {
            Kind::Null => (1, 3),
            Kind::Zero => (1, 5),
            Kind::Full => (1, 7),
            Kind::Random => (1, 8),
            Kind::Urandom => (1, 9),
            Kind::Tty => (5, 0),
        }
    }
}

/// A device node.
pub struct CharDevice {
    fs: FsInfo,
    ino: u64,
    kind: Kind,
}

impl CharDevice {
    /// A node for `kind`.
    pub fn new(fs: FsInfo, kind: Kind) -> Arc<CharDevice> {
        Arc::new(CharDevice {
            fs,
            ino: next_ino(),
            kind,
        })
    }

    fn attrs(&self) -> Stat {
        let (maj, min) = self.kind.numbers();
        Stat {
            dev: self.fs.dev,
            ino: self.ino,
            mode: libc::S_IFCHR | 0o666,
            nlink: 1,
            rdev: libc::makedev(maj, min),
            blksize: 4096,
            ..Default::default()
        }
    }
}

impl Inode for CharDevice {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(self.attrs())
    }
    fn open(&self, _flags: i32) -> SysResult<Box<dyn FileImpl>> {
        if self.kind == Kind::Tty {
            // No sandboxed process has a controlling terminal (no setsid/TIOCSCTTY
            // on a sentry terminal yet), so Linux's answer applies.
            return Err(Errno::ENXIO);
        }
        Ok(Box::new(DeviceFile {
            kind: self.kind,
            stat: self.attrs(),
        }))
    }
    fn mutation_refused(&self) -> Errno {
        Errno::EPERM
    }
    fn statfs(&self) -> SysResult<StatFs> {
        Ok(StatFs {
            kind: 0x0102_1994,
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
            ..Default::default()
        })
    }
}

/// A spec's `linux.devices` node: an emulated device (`inner`) with the
/// permission bits and owner the spec gives it, which permission checks see.
pub struct DeviceNode {
    inner: Arc<dyn Inode>,
    perm: u32,
    uid: u32,
    gid: u32,
}

impl DeviceNode {
    /// `inner` shown with mode `perm` (permission bits only) and owner `uid`:`gid`.
    pub fn new(inner: Arc<dyn Inode>, perm: u32, uid: u32, gid: u32) -> Arc<DeviceNode> {
        Arc::new(DeviceNode {
            inner,
            perm: perm & 0o7777,
            uid,
            gid,
        })
    }
}

impl Inode for DeviceNode {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        let mut st = self.inner.stat()?;
        st.mode = (st.mode & libc::S_IFMT) | self.perm;
        st.uid = self.uid;
        st.gid = self.gid;
        Ok(st)
    }
    fn open(&self, flags: i32) -> SysResult<Box<dyn FileImpl>> {
        self.inner.open(flags)
    }
    fn mutation_refused(&self) -> Errno {
        self.inner.mutation_refused()
    }
    fn statfs(&self) -> SysResult<StatFs> {
        self.inner.statfs()
    }
}

struct DeviceFile {
    kind: Kind,
    stat: Stat,
}

impl FileImpl for DeviceFile {
    fn read(&self, buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        match self.kind {
            Kind::Null => Ok(0),
            Kind::Zero | Kind::Full => {
                buf.fill(0);
                Ok(buf.len())
            }
            Kind::Random | Kind::Urandom => {
                let mut done = 0;
                while done < buf.len() {
                    let n = host::random_bytes(&mut buf[done..], 0)?;
                    if n == 0 {
                        break;
                    }
                    done += n;
                }
                Ok(done)
            }
            Kind::Tty => Err(Errno::ENXIO),
        }
    }
    fn discards_writes(&self) -> bool {
        self.kind == Kind::Null
    }
    fn seeks_to_zero(&self) -> bool {
        self.kind != Kind::Tty
    }
    fn write(&self, buf: &[u8], _offset: u64) -> SysResult<usize> {
        match self.kind {
            Kind::Full => Err(Errno::ENOSPC),
            Kind::Tty => Err(Errno::ENXIO),
            // Writes to the random devices mix into the pool on Linux; the host's
            // pool is not the sandbox's to stir, so the bytes are accepted and dropped.
            _ => Ok(buf.len()),
        }
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(self.stat)
    }
}
