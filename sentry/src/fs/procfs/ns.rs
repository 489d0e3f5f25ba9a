//! `/proc/PID/ns`: one link per namespace kind. `readlink` gives `KIND:[INODE]`;
//! opening (or `stat`ing through) the link lands on an nsfs file that refers to the
//! namespace itself, which `setns` accepts (a magic link, as Linux's).

use std::sync::{Arc, Weak};

use crate::errno::{Errno, SysResult};
use crate::kernel::ns::NsRef;
use crate::kernel::process::ThreadGroup;
use crate::vfs::{FileImpl, Inode, Stat};

use super::node::GenDir;

/// The device number nsfs files show (Linux's nsfs is an unnamed `0:4`).
const NSFS_DEV: u64 = 4;

/// Kinds listed, in Linux's order.
const KINDS: [&str; 10] = [
    "cgroup",
    "ipc",
    "mnt",
    "net",
    "pid",
    "pid_for_children",
    "time",
    "time_for_children",
    "user",
    "uts",
];

/// `/proc/PID/ns` of `tg`.
pub fn ns_dir(tg: &Arc<ThreadGroup>, ino: u64, owner: (u32, u32)) -> Arc<dyn Inode> {
    let g = Arc::downgrade(tg);
    GenDir::new(
        ino,
        0o511,
        owner,
        Arc::new(move |name| {
            let i = KINDS
                .iter()
                .position(|k| k.as_bytes() == name)
                .ok_or(Errno::ENOENT)?;
            Ok(Arc::new(NsLink {
                ino: ino + 1 + i as u64,
                owner,
                tg: g.clone(),
                kind: KINDS[i],
            }) as Arc<dyn Inode>)
        }),
        Arc::new(move || {
            Ok(KINDS
                .iter()
                .enumerate()
                .map(|(i, k)| (ino + 1 + i as u64, libc::DT_LNK, k.as_bytes().to_vec()))
                .collect())
        }),
    )
}

/// `/proc/PID/ns/KIND`.
struct NsLink {
    ino: u64,
    owner: (u32, u32),
    tg: Weak<ThreadGroup>,
    kind: &'static str,
}

impl NsLink {
    fn target(&self) -> SysResult<NsRef> {
        let g = self.tg.upgrade().ok_or(Errno::ENOENT)?;
        let st = g.state()?;
        if self.kind == "user" {
            return Ok(NsRef::User(st.view.creds.user_ns().clone()));
        }
        if self.kind == "pid" {
            return Ok(NsRef::Pid(g.pid_ns.clone()));
        }
        if self.kind == "pid_for_children" {
            // A new namespace no process has entered yet cannot be opened (Linux's
            // pidns_for_children_get).
            let ns = st.view.ns.clone().ok_or(Errno::ENOENT)?;
            let p = &ns.pid_children;
            if !Arc::ptr_eq(p, &g.pid_ns) && p.init() == 0 {
                return Err(Errno::ENOENT);
            }
            return Ok(NsRef::Pid(p.clone()));
        }
        let ns = st.view.ns.clone().ok_or(Errno::ENOENT)?;
        ns.get(self.kind.as_bytes()).ok_or(Errno::ENOENT)
    }
}

impl Inode for NsLink {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(Stat {
            dev: 0x15,
            ino: self.ino,
            mode: libc::S_IFLNK | 0o777,
            nlink: 1,
            uid: self.owner.0,
            gid: self.owner.1,
            blksize: 4096,
            ..Default::default()
        })
    }
    fn readlink(&self) -> SysResult<Vec<u8>> {
        let ns = self.target()?;
        Ok(format!("{}:[{}]", ns.kind(), ns.id()).into_bytes())
    }
    fn magic_target(&self) -> Option<SysResult<Arc<dyn Inode>>> {
        Some(
            self.target()
                .map(|ns| Arc::new(NsInode { ns }) as Arc<dyn Inode>),
        )
    }
    fn open(&self, _flags: i32) -> SysResult<Box<dyn FileImpl>> {
        Err(Errno::ELOOP)
    }
}

/// An nsfs inode: one namespace.
struct NsInode {
    ns: NsRef,
}

fn ns_stat(ns: &NsRef) -> Stat {
    Stat {
        dev: NSFS_DEV,
        ino: ns.id(),
        mode: libc::S_IFREG | 0o444,
        nlink: 1,
        blksize: 4096,
        ..Default::default()
    }
}

impl Inode for NsInode {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(ns_stat(&self.ns))
    }
    fn open(&self, _flags: i32) -> SysResult<Box<dyn FileImpl>> {
        Ok(Box::new(NsFile {
            ns: self.ns.clone(),
        }))
    }
}

/// An open namespace file (what `setns` takes).
pub struct NsFile {
    /// The namespace.
    pub ns: NsRef,
}

impl FileImpl for NsFile {
    fn read(&self, _buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EINVAL)
    }
    fn write(&self, _buf: &[u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EINVAL)
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(ns_stat(&self.ns))
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}
