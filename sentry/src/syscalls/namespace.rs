//! `unshare(2)` and `setns(2)`, and the namespace half of `clone(2)`: mount, UTS
//! and IPC namespaces inside the sandbox (see [`crate::kernel::ns`]). The other
//! kinds (user, pid, net, cgroup, time) are refused with `EINVAL`, as a kernel
//! built without them does, and logged once per kind.

use std::sync::{Arc, Mutex};

use crate::errno::{Errno, SysResult};
use crate::fs::procfs::ns::NsFile;
use crate::kernel::creds::{CAP_SYS_ADMIN, CAP_SYS_CHROOT};
use crate::kernel::ns::{IpcNs, MntNs, NsRef, NsSet};
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
pub const SUPPORTED: u64 = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC;
/// The kinds it does not (refused with `EINVAL`).
pub const UNSUPPORTED: u64 =
    CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP | CLONE_NEWTIME;

/// `EINVAL` (logged) if `flags` name a namespace kind the sandbox does not make.
pub fn refuse_unsupported(task: &Task, call: &str, flags: u64) -> SysResult<()> {
    let bad = flags & UNSUPPORTED;
    if bad == 0 {
        return Ok(());
    }
    let kinds: Vec<&str> = [
        (CLONE_NEWUSER, "user"),
        (CLONE_NEWPID, "pid"),
        (CLONE_NEWNET, "net"),
        (CLONE_NEWCGROUP, "cgroup"),
        (CLONE_NEWTIME, "time"),
    ]
    .iter()
    .filter(|(f, _)| bad & f != 0)
    .map(|(_, n)| *n)
    .collect();
    // Once per kind and call: a program that retries must not flood the log.
    task.kernel.warn_once(
        bad | if call == "clone" { 1 << 40 } else { 1 << 41 },
        &format!(
            "{call}: {} namespaces are not supported in the sandbox (EINVAL)",
            kinds.join(", ")
        ),
    );
    Err(Errno::EINVAL)
}

/// The namespaces a task gets with the `CLONE_NEW*` bits of `flags` (mount, UTS,
/// IPC), and its filesystem context moved into the new mount tree. The caller has
/// checked the flags and the capability.
pub fn new_namespaces(task: &Task, flags: u64, fs: &FsContext) -> SysResult<(NsSet, FsContext)> {
    let k = &task.kernel;
    let mut ns = (*task.ns).clone();
    let mut fs = fs.clone();
    if flags & CLONE_NEWNS != 0 {
        let top = task.ns.mnt.root()?;
        let (root, map) = mount_ops::copy_tree(&top, None, true, false)?;
        fs.root = mount_ops::translate(&fs.root, &map);
        fs.cwd = mount_ops::translate(&fs.cwd, &map);
        ns.mnt = MntNs::new(k.ns_ids.next(), root);
    }
    if flags & CLONE_NEWUTS != 0 {
        ns.uts = task.ns.uts.copy(k.ns_ids.next())?;
    }
    if flags & CLONE_NEWIPC != 0 {
        ns.ipc = IpcNs::new(k.ns_ids.next());
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
        | SUPPORTED
        | UNSUPPORTED;
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
    refuse_unsupported(task, "unshare", flags)?;
    if flags & SUPPORTED != 0 && !task.creds.has_cap(CAP_SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    if flags & CLONE_FILES != 0 {
        let copy = task.fds()?.clone();
        task.fds = Arc::new(Mutex::new(copy));
    }
    if flags & CLONE_FS != 0 {
        task.fs_shared = None;
    }
    if flags & SUPPORTED != 0 {
        let (ns, fs) = new_namespaces(task, flags, &task.fs)?;
        if flags & CLONE_NEWIPC != 0 {
            // Leaving an IPC namespace applies the process's semaphore undos there.
            task.ns.ipc.sem.exit_process(task.tgid);
        }
        task.fs = fs;
        task.ns = Arc::new(ns);
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
    if !task.creds.has_cap(CAP_SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    let mut set = (*task.ns).clone();
    match ns {
        NsRef::Mnt(m) => {
            if !task.creds.has_cap(CAP_SYS_CHROOT) {
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
    }
    task.ns = Arc::new(set);
    Ok(0)
}
