//! Namespaces inside the sandbox: each task holds a [`NsSet`] (Linux's nsproxy)
//! naming its mount, UTS, IPC, network and cgroup namespaces (its user namespace
//! is part of its credentials, [`crate::creds::userns`]). Each namespace records
//! the user namespace that owns it, over which a process needs CAP_SYS_ADMIN to
//! `setns` into it or to administer it. `clone` without namespace flags shares
//! the parent's set; `unshare`, `clone` with `CLONE_NEW*` and `setns` give the task
//! a new set in which the named kinds are replaced. The sandbox's first namespaces
//! live on the [`Kernel`](super::Kernel); their ids (the inode numbers of
//! `/proc/PID/ns/*`) come from a per-kernel counter starting where Linux's do.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::creds::userns::{self, UserNs};
use crate::errno::{Errno, SysResult};
use crate::kernel::{msg, sem, shm};
use crate::net::Netstack;
use crate::vfs::Dentry;

/// The user namespace owning a namespace: `None` is the sandbox's initial one.
pub type Owner = Option<Arc<UserNs>>;

fn owner_of(o: &Owner) -> &Arc<UserNs> {
    o.as_ref().unwrap_or_else(|| userns::init())
}

/// `Owner` for a creator in `ns`.
pub fn owner_for(ns: &Arc<UserNs>) -> Owner {
    (!Arc::ptr_eq(ns, userns::init())).then(|| ns.clone())
}

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
    /// The owning user namespace.
    pub owner: Owner,
}

impl UtsNs {
    /// A namespace with these names.
    pub fn new(id: u64, hostname: String, domainname: String) -> Arc<UtsNs> {
        Arc::new(UtsNs {
            id,
            hostname: Mutex::new(hostname),
            domainname: Mutex::new(domainname),
            owner: None,
        })
    }

    /// A copy of `self` under a new id, owned by `owner` (what `CLONE_NEWUTS` gives).
    pub fn copy(&self, id: u64, owner: Owner) -> SysResult<Arc<UtsNs>> {
        let h = self.hostname.lock().map_err(|_| Errno::EIO)?.clone();
        let d = self.domainname.lock().map_err(|_| Errno::EIO)?.clone();
        Ok(Arc::new(UtsNs {
            id,
            hostname: Mutex::new(h),
            domainname: Mutex::new(d),
            owner,
        }))
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
    /// The owning user namespace.
    pub owner: Owner,
}

impl IpcNs {
    /// An empty namespace owned by `owner`.
    pub fn new(id: u64, owner: Owner) -> Arc<IpcNs> {
        Arc::new(IpcNs {
            id,
            owner,
            ..Default::default()
        })
    }
}

/// A network namespace: its own network stack (a new one has only a loopback
/// interface).
pub struct NetNs {
    /// The `/proc/PID/ns/net` inode number.
    pub id: u64,
    /// Its interfaces, routes, port tables and sockets.
    pub stack: Arc<Netstack>,
    /// The owning user namespace.
    pub owner: Owner,
}

impl NetNs {
    /// The namespace of `stack`.
    pub fn new(id: u64, stack: Arc<Netstack>, owner: Owner) -> Arc<NetNs> {
        Arc::new(NetNs { id, stack, owner })
    }
}

/// A cgroup namespace. Every process of the sandbox is in its root cgroup, so a
/// new namespace is rooted there too and `/proc/PID/cgroup` reads `0::/` in all.
pub struct CgroupNs {
    /// The `/proc/PID/ns/cgroup` inode number.
    pub id: u64,
    /// The owning user namespace.
    pub owner: Owner,
}

impl CgroupNs {
    /// A namespace owned by `owner`.
    pub fn new(id: u64, owner: Owner) -> Arc<CgroupNs> {
        Arc::new(CgroupNs { id, owner })
    }
}

/// A mount namespace: the root of its mount tree. The tree itself hangs off the
/// dentries (see `vfs::mount`); a copy is a new tree of mounts over the same
/// filesystems.
pub struct MntNs {
    /// The `/proc/PID/ns/mnt` inode number.
    pub id: u64,
    root: Mutex<Arc<Dentry>>,
    /// The owning user namespace.
    pub owner: Owner,
}

impl MntNs {
    /// A namespace whose tree starts at `root` (the root dentry of its top mount),
    /// owned by `owner`.
    pub fn new(id: u64, root: Arc<Dentry>, owner: Owner) -> Arc<MntNs> {
        Arc::new(MntNs {
            id,
            root: Mutex::new(root),
            owner,
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
    /// Network namespace.
    pub net: Arc<NetNs>,
    /// Cgroup namespace.
    pub cgroup: Arc<CgroupNs>,
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
    /// A network namespace.
    Net(Arc<NetNs>),
    /// A cgroup namespace.
    Cgroup(Arc<CgroupNs>),
    /// A user namespace.
    User(Arc<UserNs>),
}

impl NsRef {
    /// The `CLONE_NEW*` flag of this kind.
    pub fn flag(&self) -> u64 {
        (match self {
            NsRef::Mnt(_) => libc::CLONE_NEWNS,
            NsRef::Uts(_) => libc::CLONE_NEWUTS,
            NsRef::Ipc(_) => libc::CLONE_NEWIPC,
            NsRef::Net(_) => libc::CLONE_NEWNET,
            NsRef::Cgroup(_) => libc::CLONE_NEWCGROUP,
            NsRef::User(_) => libc::CLONE_NEWUSER,
        }) as u64
    }

    /// The kind's name in `/proc/PID/ns`.
    pub fn kind(&self) -> &'static str {
        match self {
            NsRef::Mnt(_) => "mnt",
            NsRef::Uts(_) => "uts",
            NsRef::Ipc(_) => "ipc",
            NsRef::Net(_) => "net",
            NsRef::Cgroup(_) => "cgroup",
            NsRef::User(_) => "user",
        }
    }

    /// The namespace's inode number.
    pub fn id(&self) -> u64 {
        match self {
            NsRef::Mnt(n) => n.id,
            NsRef::Uts(n) => n.id,
            NsRef::Ipc(n) => n.id,
            NsRef::Net(n) => n.id,
            NsRef::Cgroup(n) => n.id,
            NsRef::User(n) => n.id,
        }
    }

    /// The user namespace that owns it (a user namespace's parent; the initial
    /// user namespace for itself).
    pub fn owner(&self) -> &Arc<UserNs> {
        match self {
            NsRef::Mnt(n) => owner_of(&n.owner),
            NsRef::Uts(n) => owner_of(&n.owner),
            NsRef::Ipc(n) => owner_of(&n.owner),
            NsRef::Net(n) => owner_of(&n.owner),
            NsRef::Cgroup(n) => owner_of(&n.owner),
            NsRef::User(n) => n.parent.as_ref().unwrap_or_else(|| userns::init()),
        }
    }
}

impl NsSet {
    /// The namespace of kind `name` (`mnt`, `uts`, `ipc`, `net`, `cgroup`; the
    /// user namespace is the credentials').
    pub fn get(&self, name: &[u8]) -> Option<NsRef> {
        match name {
            b"mnt" => Some(NsRef::Mnt(self.mnt.clone())),
            b"uts" => Some(NsRef::Uts(self.uts.clone())),
            b"ipc" => Some(NsRef::Ipc(self.ipc.clone())),
            b"net" => Some(NsRef::Net(self.net.clone())),
            b"cgroup" => Some(NsRef::Cgroup(self.cgroup.clone())),
            _ => None,
        }
    }
}

/// The user namespace owning `o` (the initial one for `None`).
pub fn owner(o: &Owner) -> &Arc<UserNs> {
    owner_of(o)
}
