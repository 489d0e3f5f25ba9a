//! Namespaces inside the sandbox: each task holds a [`NsSet`] (Linux's nsproxy)
//! naming its mount, UTS and IPC namespaces. `clone` without namespace flags shares
//! the parent's set; `unshare`, `clone` with `CLONE_NEW*` and `setns` give the task
//! a new set in which the named kinds are replaced. The sandbox's first namespaces
//! live on the [`Kernel`](super::Kernel); their ids (the inode numbers of
//! `/proc/PID/ns/*`) come from a per-kernel counter starting where Linux's do.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::errno::{Errno, SysResult};
use crate::kernel::{msg, sem, shm};
use crate::vfs::Dentry;

/// The first namespace inode number Linux hands out (`PROC_DYNAMIC_FIRST`'s
/// neighbour `0xF0000000`): the initial namespaces are numbered from here.
pub const FIRST_NS_ID: u64 = 0xF000_0000;

/// Allocates namespace ids for one sandbox.
pub struct NsIds(AtomicU64);

impl Default for NsIds {
    fn default() -> Self {
        NsIds(AtomicU64::new(FIRST_NS_ID))
    }
}

impl NsIds {
    /// A fresh id.
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// A UTS namespace: host and domain name.
pub struct UtsNs {
    /// The `/proc/PID/ns/uts` inode number.
    pub id: u64,
    /// `uname -n`.
    pub hostname: Mutex<String>,
    /// The NIS domain name ("(none)" until set).
    pub domainname: Mutex<String>,
}

impl UtsNs {
    /// A namespace with these names.
    pub fn new(id: u64, hostname: String, domainname: String) -> Arc<UtsNs> {
        Arc::new(UtsNs {
            id,
            hostname: Mutex::new(hostname),
            domainname: Mutex::new(domainname),
        })
    }

    /// A copy of `self` under a new id (what `CLONE_NEWUTS` gives).
    pub fn copy(&self, id: u64) -> SysResult<Arc<UtsNs>> {
        let h = self.hostname.lock().map_err(|_| Errno::EIO)?.clone();
        let d = self.domainname.lock().map_err(|_| Errno::EIO)?.clone();
        Ok(Self::new(id, h, d))
    }
}

/// An IPC namespace: its own System V objects.
#[derive(Default)]
pub struct IpcNs {
    /// The `/proc/PID/ns/ipc` inode number.
    pub id: u64,
    /// Shared memory segments.
    pub shm: shm::ShmTable,
    /// Semaphore sets.
    pub sem: sem::SemTable,
    /// Message queues.
    pub msg: msg::MsgTable,
    /// POSIX message queues and their `mqueue` filesystem.
    pub mq: Arc<crate::fs::mqueue::MqNamespace>,
}

impl IpcNs {
    /// An empty namespace.
    pub fn new(id: u64) -> Arc<IpcNs> {
        Arc::new(IpcNs {
            id,
            ..Default::default()
        })
    }
}

/// A mount namespace: the root of its mount tree. The tree itself hangs off the
/// dentries (see `vfs::mount`); a copy is a new tree of mounts over the same
/// filesystems.
pub struct MntNs {
    /// The `/proc/PID/ns/mnt` inode number.
    pub id: u64,
    root: Mutex<Arc<Dentry>>,
}

impl MntNs {
    /// A namespace whose tree starts at `root` (the root dentry of its top mount).
    pub fn new(id: u64, root: Arc<Dentry>) -> Arc<MntNs> {
        Arc::new(MntNs {
            id,
            root: Mutex::new(root),
        })
    }

    /// The root dentry of the namespace's top mount (where `setns` puts a task).
    pub fn root(&self) -> SysResult<Arc<Dentry>> {
        Ok(self.root.lock().map_err(|_| Errno::EIO)?.clone())
    }

    /// Makes `root` the namespace's top (after `pivot_root`).
    pub fn set_root(&self, root: Arc<Dentry>) -> SysResult<()> {
        *self.root.lock().map_err(|_| Errno::EIO)? = root;
        Ok(())
    }
}

/// The namespaces a task is in.
#[derive(Clone)]
pub struct NsSet {
    /// Mount namespace.
    pub mnt: Arc<MntNs>,
    /// UTS namespace.
    pub uts: Arc<UtsNs>,
    /// IPC namespace.
    pub ipc: Arc<IpcNs>,
}

/// A namespace of some kind, as an nsfs file refers to it.
#[derive(Clone)]
pub enum NsRef {
    /// A mount namespace.
    Mnt(Arc<MntNs>),
    /// A UTS namespace.
    Uts(Arc<UtsNs>),
    /// An IPC namespace.
    Ipc(Arc<IpcNs>),
}

impl NsRef {
    /// The `CLONE_NEW*` flag of this kind.
    pub fn flag(&self) -> u64 {
        match self {
            NsRef::Mnt(_) => libc::CLONE_NEWNS as u64,
            NsRef::Uts(_) => libc::CLONE_NEWUTS as u64,
            NsRef::Ipc(_) => libc::CLONE_NEWIPC as u64,
        }
    }

    /// The kind's name in `/proc/PID/ns`.
    pub fn kind(&self) -> &'static str {
        match self {
            NsRef::Mnt(_) => "mnt",
            NsRef::Uts(_) => "uts",
            NsRef::Ipc(_) => "ipc",
        }
    }

    /// The namespace's inode number.
    pub fn id(&self) -> u64 {
        match self {
            NsRef::Mnt(n) => n.id,
            NsRef::Uts(n) => n.id,
            NsRef::Ipc(n) => n.id,
        }
    }
}

impl NsSet {
    /// The namespace of kind `name` (`mnt`, `uts`, `ipc`).
    pub fn get(&self, name: &[u8]) -> Option<NsRef> {
        match name {
            b"mnt" => Some(NsRef::Mnt(self.mnt.clone())),
            b"uts" => Some(NsRef::Uts(self.uts.clone())),
            b"ipc" => Some(NsRef::Ipc(self.ipc.clone())),
            _ => None,
        }
    }
}
