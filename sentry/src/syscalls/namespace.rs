//! `unshare(2)` and `setns(2)`, and the namespace half of `clone(2)`: user, mount,
//! UTS, IPC, network, cgroup and pid namespaces inside the sandbox (see
//! [`crate::kernel::ns`] and [`crate::creds::userns`]), and time namespaces (their
//! offsets applied to the clocks a member reads, in the sentry and in the vDSO:
//! [`crate::kernel::ns::TimeNs`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::creds::userns::UserNs;
use crate::creds::Credentials;
use crate::errno::{Errno, SysResult};
use crate::fs::procfs::ns::NsFile;
use crate::kernel::creds::{CAP_SYS_ADMIN, CAP_SYS_CHROOT};
use crate::kernel::ns::{owner_for, CgroupNs, IpcNs, MntNs, NetNs, NsRef, NsSet, TimeNs};
use crate::kernel::Task;
use crate::syscalls::{file_arg, Args};
use crate::vfs::mount_ops;
use crate::vfs::FsContext;

const CLONE_VM: u64 = libc::CLONE_VM as u64;
const CLONE_FS: u64 = libc::CLONE_FS as u64;
const CLONE_FILES: u64 = libc::CLONE_FILES as u64;
const CLONE_SIGHAND: u64 = libc::CLONE_SIGHAND as u64;
const CLONE_THREAD: u64 = libc::CLONE_THREAD as u64;
const CLONE_SYSVSEM: u64 = libc::CLONE_SYSVSEM as u64;
const CLONE_NEWNS: u64 = libc::CLONE_NEWNS as u64;
const CLONE_NEWUTS: u64 = libc::CLONE_NEWUTS as u64;
const CLONE_NEWIPC: u64 = libc::CLONE_NEWIPC as u64;
const CLONE_NEWCGROUP: u64 = libc::CLONE_NEWCGROUP as u64;
const CLONE_NEWUSER: u64 = libc::CLONE_NEWUSER as u64;
const CLONE_NEWPID: u64 = libc::CLONE_NEWPID as u64;
const CLONE_NEWNET: u64 = libc::CLONE_NEWNET as u64;
const CLONE_NEWTIME: u64 = 0x80;

/// The namespace kinds the sandbox makes.
pub const SUPPORTED: u64 = CLONE_NEWNS
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWNET
    | CLONE_NEWCGROUP
    | CLONE_NEWPID
    | CLONE_NEWTIME;
/// The kinds other than user, which need CAP_SYS_ADMIN over the caller's (new)
/// user namespace.
const PRIVILEGED: u64 = SUPPORTED & !CLONE_NEWUSER;

/// A chrooted process may not make a user namespace (`current_chrooted`): its root
/// must be its mount namespace's.
fn chrooted(task: &Task, fs: &FsContext) -> SysResult<bool> {
    let top = task.ns.mnt.root()?;
    Ok(!Arc::ptr_eq(&fs.root, &top))
}

/// The namespaces and credentials a task gets with the `CLONE_NEW*` bits of
/// `flags`, and its filesystem context moved into the new mount tree. A new user
/// namespace comes first (`creds` enter it, with every capability there); the
/// other kinds need CAP_SYS_ADMIN over the resulting user namespace and are owned
/// by it. The caller has checked the flags' combinations.
pub fn new_namespaces(
    task: &Task,
    flags: u64,
    fs: &FsContext,
    creds: &mut Credentials,
) -> SysResult<(NsSet, FsContext)> {
    let k = &task.kernel;
    if flags & CLONE_NEWUSER != 0 {
        if chrooted(task, fs)? {
            return Err(Errno::EPERM);
        }
        let user = UserNs::new_child(creds.user_ns(), (creds.euid, creds.egid))?;
        creds.enter_user_ns(user);
    }
    if flags & PRIVILEGED != 0 && !creds.has_ns_cap(CAP_SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    let owner = owner_for(creds.user_ns());
    let mut ns = (*task.ns).clone();
    let mut fs = fs.clone();
    if flags & CLONE_NEWNS != 0 {
        let top = task.ns.mnt.root()?;
        let (root, map) = mount_ops::copy_tree(&top, None, true, false)?;
        fs.root = mount_ops::translate(&fs.root, &map);
        fs.cwd = mount_ops::translate(&fs.cwd, &map);
        ns.mnt = MntNs::new(k.ns_ids.next(), root, owner.clone());
    }
    if flags & CLONE_NEWUTS != 0 {
        ns.uts = task.ns.uts.copy(k.ns_ids.next(), owner.clone())?;
    }
    if flags & CLONE_NEWIPC != 0 {
        ns.ipc = IpcNs::new(k.ns_ids.next(), owner.clone());
    }
    if flags & CLONE_NEWNET != 0 {
        ns.net = NetNs::new(
            k.ns_ids.next(),
            crate::net::Netstack::new_namespace(),
            owner.clone(),
        );
    }
    if flags & CLONE_NEWCGROUP != 0 {
        ns.cgroup = CgroupNs::new(k.ns_ids.next(), owner.clone());
    }
    if flags & CLONE_NEWPID != 0 {
        // Only from a task whose children still go into its own namespace (a second
        // unshare before the first child is EINVAL, as Linux's copy_pid_ns).
        if !Arc::ptr_eq(&task.ns.pid_children, &task.tg.pid_ns) {
            return Err(Errno::EINVAL);
        }
        ns.pid_children = task.tg.pid_ns.new_child(k.ns_ids.next(), owner.clone())?;
    }
    if flags & CLONE_NEWTIME != 0 {
        // For the children (and the caller after execve); it starts with the
        // offsets of the one it replaces there (Linux's clone_time_ns).
        let from = task.ns.time_children.offsets();
        ns.time_children = TimeNs::new(k.ns_ids.next(), owner, from);
    }
    Ok((ns, fs))
}

/// `unshare(2)`.
pub fn unshare(task: &mut Task, a: &Args) -> SysResult<u64> {
    let mut flags = a[0];
    let known = CLONE_THREAD
        | CLONE_FS
        | CLONE_NEWNS
        | CLONE_SIGHAND
        | CLONE_VM
        | CLONE_FILES
        | CLONE_SYSVSEM
        | SUPPORTED;
    if flags & !known != 0 {
        return Err(Errno::EINVAL);
    }
    // What each flag implies, as Linux's ksys_unshare.
    if flags & CLONE_NEWUSER != 0 {
        flags |= CLONE_THREAD | CLONE_FS;
    }
    if flags & CLONE_VM != 0 {
        flags |= CLONE_SIGHAND;
    }
    if flags & CLONE_SIGHAND != 0 {
        flags |= CLONE_THREAD;
    }
    if flags & CLONE_NEWNS != 0 {
        flags |= CLONE_FS;
    }
    if flags & (CLONE_THREAD | CLONE_SIGHAND | CLONE_VM) != 0 && task.tg.state()?.threads.len() > 1
    {
        return Err(Errno::EINVAL);
    }
    // Everything that can fail comes before anything changes.
    let mut creds = task.creds.clone();
    let made = if flags & SUPPORTED != 0 {
        Some(new_namespaces(task, flags, &task.fs, &mut creds)?)
    } else {
        None
    };
    if flags & CLONE_FILES != 0 {
        let copy = task.fds()?.clone();
        task.fds = Arc::new(Mutex::new(copy));
    }
    if flags & CLONE_FS != 0 {
        task.fs_shared = None;
    }
    if let Some((ns, fs)) = made {
        if flags & CLONE_NEWIPC != 0 {
            // Leaving an IPC namespace applies the process's semaphore undos there.
            task.ns.ipc.sem.exit_process(task.tgid);
        }
        task.fs = fs;
        task.ns = Arc::new(ns);
        task.creds = creds;
    }
    Ok(0)
}

/// `setns(2)` with a `/proc/PID/ns/*` file.
pub fn setns(task: &mut Task, a: &Args) -> SysResult<u64> {
    let file = file_arg(task, a[0])?;
    let nstype = a[1];
    let ns = file
        .imp()
        .as_any()
        .and_then(|x| x.downcast_ref::<NsFile>())
        .map(|f| f.ns.clone())
        .ok_or(Errno::EINVAL)?;
    if nstype != 0 && nstype != ns.flag() {
        return Err(Errno::EINVAL);
    }
    // CAP_SYS_ADMIN over the namespace's owner (a user namespace itself), and (but
    // for a user namespace, which gives it) over the caller's own.
    let target_owner = match &ns {
        NsRef::User(u) => u.clone(),
        other => other.owner().clone(),
    };
    if !task.creds.has_cap_in(&target_owner, CAP_SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    if !matches!(ns, NsRef::User(_)) && !task.creds.has_ns_cap(CAP_SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    let mut set = (*task.ns).clone();
    match ns {
        NsRef::Mnt(m) => {
            if !task.creds.has_ns_cap(CAP_SYS_CHROOT) {
                return Err(Errno::EPERM);
            }
            // The filesystem context must be the caller's alone.
            if task
                .fs_shared
                .as_ref()
                .is_some_and(|s| Arc::strong_count(s) > 1)
            {
                return Err(Errno::EINVAL);
            }
            let root = m.root()?;
            task.fs.root = root.clone();
            task.fs.cwd = root;
            set.mnt = m;
        }
        NsRef::Uts(u) => set.uts = u,
        NsRef::Ipc(i) => {
            task.ns.ipc.sem.exit_process(task.tgid);
            set.ipc = i;
        }
        NsRef::Net(n) => set.net = n,
        NsRef::Cgroup(c) => set.cgroup = c,
        NsRef::Pid(p) => {
            // Only the caller's own namespace or one below it (Linux's
            // pidns_install); it becomes the one its children are made in.
            if !p.is_within(&task.tg.pid_ns) {
                return Err(Errno::EINVAL);
            }
            set.pid_children = p;
        }
        NsRef::Time(t) => {
            // A single-threaded caller moves at once, and so do its children
            // (Linux's timens_install); the offsets freeze.
            let others_live = task
                .tg
                .state()?
                .threads
                .values()
                .any(|h| !Arc::ptr_eq(h, &task.handle) && !h.exiting.load(Ordering::Acquire));
            if others_live {
                return Err(Errno::EUSERS);
            }
            if !Arc::ptr_eq(&t, &task.ns.time) {
                t.freeze(task.kernel.vdso().map(|v| &**v));
                let vdso = task.kernel.vdso().map(|v| &**v);
                crate::kernel::vdso::join_time_ns(vdso, &mut *task.mm()?, &t)?;
            }
            set.time = t.clone();
            set.time_children = t;
        }
        NsRef::User(u) => {
            // Only into another namespace, by a single-threaded process with its
            // own filesystem context, from outside it (as Linux's userns_install).
            if Arc::ptr_eq(&u, task.creds.user_ns()) {
                return Err(Errno::EINVAL);
            }
            if task.tg.state()?.threads.len() > 1
                || task
                    .fs_shared
                    .as_ref()
                    .is_some_and(|s| Arc::strong_count(s) > 1)
            {
                return Err(Errno::EINVAL);
            }
            if chrooted(task, &task.fs)? {
                return Err(Errno::EPERM);
            }
            task.creds.enter_user_ns(u);
            return Ok(0);
        }
    }
    task.ns = Arc::new(set);
    Ok(0)
}
