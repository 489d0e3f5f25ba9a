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

/// The inode number of the sandbox's first time namespace (Linux's
/// `PROC_TIME_INIT_INO`).
pub const TIME_INIT_ID: u64 = 0xEFFF_FFFA;

/// The offsets of a time namespace: CLOCK_MONOTONIC's and CLOCK_BOOTTIME's (and
/// their variants'), as seconds and nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeOffsets {
    /// CLOCK_MONOTONIC's.
    pub monotonic: (i64, i64),
    /// CLOCK_BOOTTIME's.
    pub boottime: (i64, i64),
}

impl TimeOffsets {
    /// CLOCK_MONOTONIC's in nanoseconds.
    pub fn mono_ns(&self) -> i64 {
        self.monotonic
            .0
            .saturating_mul(1_000_000_000)
            .saturating_add(self.monotonic.1)
    }
    /// CLOCK_BOOTTIME's in nanoseconds.
    pub fn boot_ns(&self) -> i64 {
        self.boottime
            .0
            .saturating_mul(1_000_000_000)
            .saturating_add(self.boottime.1)
    }
}

/// A time namespace (time_namespaces(7)): offsets added to CLOCK_MONOTONIC and
/// CLOCK_BOOTTIME as its members read them, writable through
/// `/proc/PID/timens_offsets` until a process first enters it (then frozen, as
/// Linux's `frozen_offsets`). `unshare(CLONE_NEWTIME)` makes one for the caller's
/// later children (`time_for_children`); the caller itself stays.
pub struct TimeNs {
    /// The `/proc/PID/ns/time` inode number.
    pub id: u64,
    /// The owning user namespace.
    pub owner: Owner,
    state: Mutex<(TimeOffsets, bool)>,
    /// The vDSO data page of its members (made when frozen, if the sandbox has a
    /// vDSO): the sandbox's clock line plus these offsets.
    page: std::sync::OnceLock<Option<Arc<crate::kernel::vdso::NsPage>>>,
}

impl TimeNs {
    /// The sandbox's first time namespace: no offsets, frozen.
    pub fn root() -> Arc<TimeNs> {
        Arc::new(TimeNs {
            id: TIME_INIT_ID,
            owner: None,
            state: Mutex::new((TimeOffsets::default(), true)),
            page: std::sync::OnceLock::new(),
        })
    }

    /// A new namespace with `offsets` (its creator's namespace's), not frozen.
    pub fn new(id: u64, owner: Owner, offsets: TimeOffsets) -> Arc<TimeNs> {
        Arc::new(TimeNs {
            id,
            owner,
            state: Mutex::new((offsets, false)),
            page: std::sync::OnceLock::new(),
        })
    }

    /// The current offsets.
    pub fn offsets(&self) -> TimeOffsets {
        self.state.lock().map(|s| s.0).unwrap_or_default()
    }

    /// Whether this is the sandbox's first namespace (no offsets to apply).
    pub fn is_root(&self) -> bool {
        self.id == TIME_INIT_ID
    }

    /// Sets the offsets: `EACCES` once a process has entered (Linux's
    /// `proc_timens_set_offset`).
    pub fn set_offsets(&self, f: impl FnOnce(&mut TimeOffsets)) -> SysResult<()> {
        let mut s = self.state.lock().map_err(|_| Errno::EIO)?;
        if s.1 {
            return Err(Errno::EACCES);
        }
        f(&mut s.0);
        Ok(())
    }

    /// A process enters: the offsets freeze, and the members' vDSO page is made
    /// from them (with the sandbox's vDSO `vdso`).
    pub fn freeze(&self, vdso: Option<&crate::kernel::vdso::Vdso>) {
        let offsets = match self.state.lock() {
            Ok(mut s) => {
                s.1 = true;
                s.0
            }
            Err(_) => return,
        };
        if self.is_root() {
            return;
        }
        self.page.get_or_init(|| {
            vdso.and_then(|v| match v.ns_page(offsets.mono_ns(), offsets.boot_ns()) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(
                        "vdso: no data page for a time namespace ({e}): clock reads trap"
                    );
                    None
                }
            })
        });
    }

    /// The members' vDSO data page (`None` for the first namespace: the sandbox's
    /// own page; or when it could not be made: then a page on which every clock
    /// read traps).
    pub fn page(&self) -> Option<&Arc<crate::kernel::vdso::NsPage>> {
        self.page.get().and_then(|p| p.as_ref())
    }

    /// The offset (ns) a member adds to `clock` (0 for clocks it does not move).
    pub fn offset_ns(&self, clock: i32) -> i64 {
        if self.is_root() {
            return 0;
        }
        match clock {
            libc::CLOCK_MONOTONIC | libc::CLOCK_MONOTONIC_RAW | libc::CLOCK_MONOTONIC_COARSE => {
                self.offsets().mono_ns()
            }
            libc::CLOCK_BOOTTIME | libc::CLOCK_BOOTTIME_ALARM => self.offsets().boot_ns(),
            _ => 0,
        }
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
    /// The pid namespace the task's children are made in (`pid_for_children`;
    /// the task's own is its process's, [`crate::kernel::process::ThreadGroup::pid_ns`]).
    pub pid_children: Arc<PidNs>,
    /// Time namespace.
    pub time: Arc<TimeNs>,
    /// The time namespace the task's children (and the task itself after
    /// `execve`) are in.
    pub time_children: Arc<TimeNs>,
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
    /// A pid namespace.
    Pid(Arc<PidNs>),
    /// A time namespace.
    Time(Arc<TimeNs>),
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
            NsRef::Pid(_) => libc::CLONE_NEWPID,
            NsRef::Time(_) => 0x80,
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
            NsRef::Pid(_) => "pid",
            NsRef::Time(_) => "time",
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
            NsRef::Pid(n) => n.id,
            NsRef::Time(n) => n.id,
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
            NsRef::Pid(n) => owner_of(&n.owner),
            NsRef::Time(n) => owner_of(&n.owner),
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
            b"pid_for_children" => Some(NsRef::Pid(self.pid_children.clone())),
            b"time" => Some(NsRef::Time(self.time.clone())),
            b"time_for_children" => Some(NsRef::Time(self.time_children.clone())),
            _ => None,
        }
    }
}

/// The user namespace owning `o` (the initial one for `None`).
pub fn owner(o: &Owner) -> &Arc<UserNs> {
    owner_of(o)
}

/// Deepest nesting of pid namespaces (Linux's `MAX_PID_NS_LEVEL`).
pub const MAX_PID_NS_LEVEL: u32 = 32;

/// A pid namespace. The sandbox numbers every thread once, in its first pid
/// namespace (level 0, whose ids are the sentry's own: `Task::tid`, `tgid`,
/// the registry's keys); a thread of a nested namespace also has an id in that
/// namespace and in each between, handed out here. Ids cross the system call
/// boundary through [`PidNs::local`] (what a caller in the namespace sees of a
/// sandbox id, 0 when the thread is not in it) and [`PidNs::global`] (back).
pub struct PidNs {
    /// The `/proc/PID/ns/pid` inode number.
    pub id: u64,
    /// 0 for the sandbox's first namespace.
    pub level: u32,
    /// The namespace it was made in.
    pub parent: Option<Arc<PidNs>>,
    /// The owning user namespace.
    pub owner: Owner,
    st: Mutex<PidNsState>,
}

#[derive(Default)]
struct PidNsState {
    /// Sandbox id to id here.
    to_local: std::collections::HashMap<i32, i32>,
    /// Id here to sandbox id.
    to_global: std::collections::HashMap<i32, i32>,
    /// Next id to try.
    next: i32,
    /// The sandbox id of its init (the first process), 0 before it.
    init: i32,
    /// Its init has exited: no process may enter any more (`fork`: ENOMEM).
    dead: bool,
}

impl PidNs {
    /// The sandbox's first pid namespace.
    pub fn root(id: u64) -> Arc<PidNs> {
        Arc::new(PidNs {
            id,
            level: 0,
            parent: None,
            owner: None,
            st: Mutex::new(PidNsState {
                next: 1,
                init: 1,
                ..Default::default()
            }),
        })
    }

    /// A new namespace below `self` (`CLONE_NEWPID`), owned by `owner`; EUSERS past
    /// the deepest nesting.
    pub fn new_child(self: &Arc<Self>, id: u64, owner: Owner) -> SysResult<Arc<PidNs>> {
        if self.level + 1 > MAX_PID_NS_LEVEL {
            return Err(Errno::EUSERS);
        }
        Ok(Arc::new(PidNs {
            id,
            level: self.level + 1,
            parent: Some(self.clone()),
            owner,
            st: Mutex::new(PidNsState {
                next: 1,
                ..Default::default()
            }),
        }))
    }

    fn state(&self) -> SysResult<std::sync::MutexGuard<'_, PidNsState>> {
        self.st.lock().map_err(|_| Errno::EIO)
    }

    /// What a caller in this namespace sees of sandbox id `global` (`None`: not in
    /// it).
    pub fn local(&self, global: i32) -> Option<i32> {
        if self.level == 0 {
            return Some(global);
        }
        self.state().ok()?.to_local.get(&global).copied()
    }

    /// [`Self::local`], 0 for a thread outside (as Linux reports such an id).
    pub fn shown(&self, global: i32) -> i32 {
        self.local(global).unwrap_or(0)
    }

    /// The sandbox id of `local` in this namespace.
    pub fn global(&self, local: i32) -> Option<i32> {
        if self.level == 0 {
            return Some(local);
        }
        if local <= 0 {
            return None;
        }
        self.state().ok()?.to_global.get(&local).copied()
    }

    /// The sandbox id of the namespace's init (0 before it has one).
    pub fn init(&self) -> i32 {
        self.state().map(|s| s.init).unwrap_or(0)
    }

    /// Its init has exited.
    pub fn is_dead(&self) -> bool {
        self.state().map(|s| s.dead).unwrap_or(true)
    }

    /// Marks the namespace's init gone: nothing may enter it any more.
    pub fn set_dead(&self) {
        if let Ok(mut s) = self.state() {
            s.dead = true;
        }
    }

    /// `self` or one of the namespaces it was made in is `other`.
    pub fn is_within(&self, other: &PidNs) -> bool {
        let mut cur = Some(self);
        while let Some(n) = cur {
            if std::ptr::eq(n, other) {
                return true;
            }
            cur = n.parent.as_deref();
        }
        false
    }

    /// The ids of thread `global` (a new thread of a process of this namespace, or
    /// a new process entering it: `process`) in this namespace and every one above
    /// but the sandbox's, handed out. A process entering a namespace with no init
    /// is its init (id 1); one entering a namespace whose init has exited is
    /// refused with ENOMEM, as Linux's `alloc_pid`.
    pub fn enter(&self, global: i32, process: bool) -> SysResult<()> {
        let mut done: Vec<&PidNs> = Vec::new();
        let mut cur = Some(self);
        while let Some(n) = cur.filter(|n| n.level > 0) {
            let r = n.assign(global, process && std::ptr::eq(n, self));
            if let Err(e) = r {
                for d in done {
                    d.forget(global);
                }
                return Err(e);
            }
            done.push(n);
            cur = n.parent.as_deref();
        }
        Ok(())
    }

    fn assign(&self, global: i32, first_level_process: bool) -> SysResult<()> {
        let mut s = self.state()?;
        if s.dead || (s.init == 0 && !first_level_process) {
            return Err(Errno::ENOMEM);
        }
        if s.init == 0 {
            s.init = global;
        }
        for _ in 0..crate::kernel::PID_MAX {
            let mut t = s.next;
            s.next += 1;
            if t >= crate::kernel::PID_MAX {
                // Past the top, ids start again above init's, as Linux's.
                s.next = 3;
                t = 2;
            }
            let st = &mut *s;
            if let std::collections::hash_map::Entry::Vacant(e) = st.to_global.entry(t) {
                e.insert(global);
                st.to_local.insert(global, t);
                return Ok(());
            }
        }
        Err(Errno::EAGAIN)
    }

    fn forget(&self, global: i32) {
        if let Ok(mut s) = self.state() {
            if let Some(l) = s.to_local.remove(&global) {
                s.to_global.remove(&l);
            }
        }
    }

    /// Gives back the ids of sandbox id `global` (a thread or process that is gone)
    /// in this namespace and those above.
    pub fn release(&self, global: i32) {
        let mut cur = Some(self);
        while let Some(n) = cur.filter(|n| n.level > 0) {
            n.forget(global);
            cur = n.parent.as_deref();
        }
    }

    /// The ids of sandbox id `global` in `viewer` and each namespace below it
    /// down to this one (`NSpid` of a process of this namespace read through a
    /// procfs of `viewer`), 0 where it has none.
    pub fn ids_from(&self, viewer: &PidNs, global: i32) -> Vec<i32> {
        let mut v = Vec::new();
        let mut cur = Some(self);
        while let Some(n) = cur {
            v.push(n.shown(global));
            if std::ptr::eq(n, viewer) {
                break;
            }
            cur = n.parent.as_deref();
        }
        v.reverse();
        v
    }
}
