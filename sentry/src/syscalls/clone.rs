//! `clone`, `clone3`, `fork` and `vfork`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::{CAP_SYS_ADMIN, CAP_SYS_RESOURCE};
use crate::kernel::process::{ThreadGroup, ThreadHandle};
use crate::kernel::signals::SigInfo;
use crate::kernel::spawn::{self, CloneChild};
use crate::kernel::task::VforkDone;
use crate::kernel::{pidfd, ptrace, wait, Task};
use crate::mm::io;
use crate::syscalls::Args;
use crate::vfs::OpenFile;

const CSIGNAL: u64 = 0xff;
const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_PTRACE: u64 = 0x2000;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_PARENT: u64 = 0x8000;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_NEWNS: u64 = 0x20000;
const CLONE_SYSVSEM: u64 = 0x40000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_DETACHED: u64 = 0x400000;
const CLONE_UNTRACED: u64 = 0x800000;
const CLONE_CHILD_SETTID: u64 = 0x0100_0000;
const CLONE_NEWCGROUP: u64 = 0x0200_0000;
const CLONE_NEWUTS: u64 = 0x0400_0000;
const CLONE_NEWIPC: u64 = 0x0800_0000;
const CLONE_NEWUSER: u64 = 0x1000_0000;
const CLONE_NEWPID: u64 = 0x2000_0000;
const CLONE_NEWNET: u64 = 0x4000_0000;
const CLONE_IO: u64 = 0x8000_0000;
/// `CLONE_NEWTIME` (clone3 only: clone's flag word has the exit signal there).
const CLONE_NEWTIME: u64 = 0x80;
const NAMESPACES: u64 = CLONE_NEWNS
    | CLONE_NEWTIME
    | CLONE_NEWCGROUP
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET;

/// What the caller asked for, from clone's or clone3's arguments.
struct CloneArgs {
    flags: u64,
    exit_signal: u64,
    stack: u64,
    parent_tid: u64,
    child_tid: u64,
    tls: u64,
    pidfd: u64,
}

fn do_clone(task: &mut Task, c: CloneArgs) -> SysResult<u64> {
    let f = c.flags;
    if f & CLONE_THREAD != 0 && f & CLONE_SIGHAND == 0 {
        return Err(Errno::EINVAL);
    }
    if f & CLONE_SIGHAND != 0 && f & CLONE_VM == 0 {
        return Err(Errno::EINVAL);
    }
    if f & CLONE_THREAD != 0 && (c.exit_signal != 0 || f & CLONE_PIDFD != 0) {
        return Err(Errno::EINVAL);
    }
    if c.exit_signal > 64 {
        return Err(Errno::EINVAL);
    }
    if f & NAMESPACES != 0 {
        if f & CLONE_NEWNS != 0 && f & CLONE_FS != 0 {
            return Err(Errno::EINVAL);
        }
        if f & CLONE_NEWIPC != 0 && f & CLONE_SYSVSEM != 0 {
            return Err(Errno::EINVAL);
        }
        // A new user namespace is for a new process with its own fs context.
        if f & CLONE_NEWUSER != 0 && f & (CLONE_THREAD | CLONE_PARENT | CLONE_FS) != 0 {
            return Err(Errno::EINVAL);
        }
        if f & CLONE_NEWPID != 0 && f & CLONE_THREAD != 0 {
            return Err(Errno::EINVAL);
        }
    }
    // A thread is in its process's pid namespace: not after an unshare or setns
    // that sends the caller's children elsewhere.
    if f & CLONE_THREAD != 0 && !Arc::ptr_eq(&task.ns.pid_children, &task.tg.pid_ns) {
        return Err(Errno::EINVAL);
    }
    // The child's namespaces and credentials, made before anything else so that a
    // refusal leaves nothing behind.
    let mut child_creds = task.creds.clone();
    let (mut child_ns, child_fs) = if f & NAMESPACES != 0 {
        let (ns, fs) =
            crate::syscalls::namespace::new_namespaces(task, f, &task.fs, &mut child_creds)?;
        (Arc::new(ns), fs)
    } else {
        (task.ns.clone(), task.fs.clone())
    };
    // A child with an address space of its own enters the time namespace made for
    // the children (Linux's timens_on_fork); one sharing the caller's memory (a
    // thread, vfork) stays in the caller's, whose vDSO page it shares.
    if f & CLONE_VM == 0 && !Arc::ptr_eq(&child_ns.time, &child_ns.time_children) {
        let mut ns = (*child_ns).clone();
        ns.time = ns.time_children.clone();
        ns.time.freeze(task.kernel.vdso().map(|v| &**v));
        child_ns = Arc::new(ns);
    }
    // A namespace's init may not make siblings (they would be outside it).
    if f & CLONE_PARENT != 0 && task.tg.pid_ns.init() == task.tgid {
        return Err(Errno::EINVAL);
    }
    let _ = (CLONE_FS, CLONE_SYSVSEM, CLONE_DETACHED, CLONE_IO);
    // The ptrace event this clone reports, if the tracer follows it.
    let event = if f & CLONE_VFORK != 0 {
        ptrace::EVENT_VFORK
    } else if c.exit_signal != libc::SIGCHLD as u64 {
        ptrace::EVENT_CLONE
    } else {
        ptrace::EVENT_FORK
    };
    let options = task.ptrace_options();
    let follow = task.is_traced()
        && f & CLONE_UNTRACED == 0
        && (f & CLONE_PTRACE != 0 || options & (1 << event) != 0);

    let kernel = task.kernel.clone();
    // RLIMIT_NPROC counts the real uid's threads; root and CAP_SYS_RESOURCE are exempt.
    let nproc = task.limits()?.soft(libc::RLIMIT_NPROC);
    if nproc != u64::MAX
        && task.creds.uid != 0
        && !task.creds.has_cap(CAP_SYS_RESOURCE)
        && !task.creds.has_cap(CAP_SYS_ADMIN)
    {
        let uid = task.creds.uid;
        let mine = {
            let reg = kernel.registry()?;
            reg.threads
                .values()
                .filter(|(_, g)| g.state().map(|s| s.uids.0 == uid).unwrap_or(false))
                .count() as u64
        };
        if mine >= nproc {
            return Err(Errno::EAGAIN);
        }
    }
    // Everything that can fail is checked before the child is registered: a thread in
    // the group's list that never runs keeps its process from ever ending.
    if f & CLONE_SETTLS != 0 && c.tls >= 0x0000_7fff_ffff_f000 {
        return Err(Errno::EPERM);
    }
    let tid = kernel.alloc_tid()?;
    // Its ids in the pid namespaces it enters (its process's for a thread); given
    // back if anything below fails before it is registered.
    let child_pid_ns = if f & CLONE_THREAD != 0 {
        task.tg.pid_ns.clone()
    } else {
        child_ns.pid_children.clone()
    };
    child_pid_ns.enter(tid, f & CLONE_THREAD == 0)?;
    let ids = IdsGuard(Some((child_pid_ns.clone(), tid)));
    let (pending, mm) = if f & CLONE_VM != 0 {
        (task.ctx.new_thread()?, task.mm_shared().clone())
    } else {
        let (space, pending) = task.ctx.fork()?;
        let mm = task.mm()?.fork_into(space);
        (pending, Arc::new(Mutex::new(mm)))
    };
    let fds = if f & CLONE_FILES != 0 {
        task.fds.clone()
    } else {
        Arc::new(Mutex::new(task.fds()?.clone()))
    };
    let (tg, handle) = if f & CLONE_THREAD != 0 {
        (
            task.tg.clone(),
            spawn::register_thread(&kernel, &task.tg, tid)?,
        )
    } else {
        let parent = if f & CLONE_PARENT != 0 {
            let pp = task.ppid();
            kernel.registry()?.group(pp).ok_or(Errno::EINVAL)?
        } else {
            task.tg.clone()
        };
        let (tg, h) = spawn::register_child_process(
            &kernel,
            &parent,
            tid,
            c.exit_signal as i32,
            child_pid_ns.clone(),
        )?;
        (tg, h)
    };
    // Registered: unregister_clone gives the ids back from here on.
    ids.disarm();
    // The new id as the caller and as the child see it.
    let tid_here = task.tg.pid_ns.shown(tid);
    let tid_child = child_pid_ns.shown(tid);
    handle.seccomp.inherit(&task.handle.seccomp);
    // A forked child keeps the rseq registration (its area is at the same address
    // of its copy of the memory); a thread or a CLONE_VM child registers its own.
    if f & CLONE_VM == 0 {
        if let Ok(mut r) = handle.rseq_inherited.lock() {
            *r = task.rseq;
        }
    }
    if f & CLONE_THREAD == 0 {
        // A forked address space keeps its membarrier registrations, as Linux's.
        let (reg, dumpable) = {
            let st = task.tg.state()?;
            (st.membarrier, st.dumpable)
        };
        let mut st = tg.state()?;
        st.membarrier = reg;
        // The dumpable flag belongs to the address space, which the child copies.
        st.dumpable = dumpable;
    }
    let persona = task.handle.personality.load(Ordering::Relaxed);
    handle.personality.store(persona, Ordering::Relaxed);
    let inherited = task.handle.sched.get().forked();
    handle.sched.update(|a| {
        *a = inherited;
        Ok(())
    })?;
    let mut regs = task.regs;
    regs.rax = 0;
    if c.stack != 0 {
        regs.rsp = c.stack;
    }
    if f & CLONE_SETTLS != 0 {
        regs.fs_base = c.tls;
    }
    // Linux stores the parent's copy of the new id and ignores a bad address there, and
    // the child's copy is its own first write (also ignored when it faults).
    if f & CLONE_PARENT_SETTID != 0 {
        let _ = io::write_u32(task.mem(), c.parent_tid, tid_here as u32);
    }
    if f & CLONE_CHILD_SETTID != 0 {
        if let Ok(space) = mm.lock().map(|m| m.space().clone()) {
            let _ = io::write_u32(&*space, c.child_tid, tid_child as u32);
        }
    }
    if f & CLONE_PIDFD != 0 {
        if let Err(e) = install_pidfd(task, &tg, c.pidfd) {
            spawn::unregister_clone(&kernel, &tg, &handle, f & CLONE_THREAD != 0);
            return Err(e);
        }
    }
    let vfork = (f & CLONE_VFORK != 0).then(VforkDone::new);
    let child_ns_time = child_ns.time.clone();
    let child = CloneChild {
        ctx: pending,
        regs,
        mm,
        fds,
        fs: child_fs,
        ns: child_ns,
        fs_shared: if f & CLONE_FS != 0 {
            Some(
                task.fs_shared
                    .get_or_insert_with(|| Arc::new(Mutex::new(task.fs.clone())))
                    .clone(),
            )
        } else {
            None
        },
        creds: child_creds,
        handle,
        tg,
        exe: task.exe.clone(),
        comm: task.comm(),
        mask: task.mask(),
        clear_child_tid: if f & CLONE_CHILD_CLEARTID != 0 {
            c.child_tid
        } else {
            0
        },
        vfork_done: vfork.clone(),
        // A new process in another time namespace than the caller's maps that
        // one's vDSO page, from its own thread (which drives its address space).
        join_time: f & CLONE_VM == 0 && !Arc::ptr_eq(&child_ns_time, &task.ns.time),
    };
    if follow {
        attach_child(task, &child.handle, &child.tg, options);
    }
    let (child_tg, child_handle) = (child.tg.clone(), child.handle.clone());
    if let Err(e) = spawn::start_clone(&kernel, child) {
        spawn::unregister_clone(&kernel, &child_tg, &child_handle, f & CLONE_THREAD != 0);
        return Err(e);
    }
    if follow {
        task.ptrace_event(event, tid_here as u64);
    }
    let vforked = vfork.is_some();
    if let Some(v) = vfork {
        // The parent sleeps until the child execs or exits; only a fatal signal
        // ends the wait early.
        let _reg = v.queue().register(&task.waker);
        let killed = || {
            task.handle
                .killed
                .load(std::sync::atomic::Ordering::Acquire)
        };
        let _ = wait::block(&task.waker, None, killed, || Ok(v.is_done().then_some(())));
    }
    if vforked && task.is_traced() {
        task.ptrace_event(ptrace::EVENT_VFORK_DONE, tid_here as u64);
    }
    Ok(tid_here as u64)
}

/// Gives a clone's pid namespace ids back unless disarmed (it was registered).
struct IdsGuard(Option<(Arc<crate::kernel::ns::PidNs>, i32)>);

impl IdsGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for IdsGuard {
    fn drop(&mut self) {
        if let Some((ns, id)) = self.0.take() {
            ns.release(id);
        }
    }
}

/// `CLONE_PIDFD`: a pidfd for the new process in the caller's table, its number stored
/// at `at`; a bad address undoes the descriptor (the clone then fails with EFAULT, as
/// Linux's).
fn install_pidfd(task: &Task, tg: &Arc<ThreadGroup>, at: u64) -> SysResult<()> {
    let file = OpenFile::new(Box::new(pidfd::PidFd::new(tg.clone())), None, libc::O_RDWR);
    let limit = task.limits()?.soft(libc::RLIMIT_NOFILE);
    let fd = task.fds()?.insert(file, true, limit)?;
    if let Err(e) = io::write_u32(task.mem(), at, fd as u32) {
        let _ = task.fds()?.remove(fd);
        return Err(e);
    }
    Ok(())
}

/// Fork following: the new thread `h` of `tg` is traced by the caller's tracer, with
/// its options, and stops before its first instruction (SIGSTOP, or a
/// `PTRACE_EVENT_STOP` for a seized tracer).
fn attach_child(task: &Task, h: &Arc<ThreadHandle>, tg: &Arc<ThreadGroup>, options: u32) {
    let (tracer, seized) = match task.handle.ptrace.lock() {
        Ok(t) => (t.tracer, t.seized),
        Err(_) => return,
    };
    let Some(ttg) = task.kernel.registry().ok().and_then(|r| r.group(tracer)) else {
        return;
    };
    if ptrace::link(&ttg, h, tg, seized, options).is_err() {
        return;
    }
    if seized {
        if let Ok(mut t) = h.ptrace.lock() {
            t.interrupt = true;
        }
    } else if let Ok(mut q) = h.pending.lock() {
        let _ = q.push(SigInfo::kernel(libc::SIGSTOP));
    }
}

/// `clone(2)` (x86-64 order: flags, stack, parent_tid, child_tid, tls).
pub fn clone(task: &mut Task, a: &Args) -> SysResult<u64> {
    let flags = a[0] & !CSIGNAL;
    if flags & CLONE_PIDFD != 0 && flags & CLONE_PARENT_SETTID != 0 {
        return Err(Errno::EINVAL);
    }
    do_clone(
        task,
        CloneArgs {
            flags,
            exit_signal: a[0] & CSIGNAL,
            stack: a[1],
            parent_tid: a[2],
            child_tid: a[3],
            tls: a[4],
            pidfd: a[2],
        },
    )
}

/// `fork(2)`.
pub fn fork(task: &mut Task, _a: &Args) -> SysResult<u64> {
    do_clone(
        task,
        CloneArgs {
            flags: 0,
            exit_signal: libc::SIGCHLD as u64,
            stack: 0,
            parent_tid: 0,
            child_tid: 0,
            tls: 0,
            pidfd: 0,
        },
    )
}

/// `vfork(2)`.
pub fn vfork(task: &mut Task, _a: &Args) -> SysResult<u64> {
    do_clone(
        task,
        CloneArgs {
            flags: CLONE_VM | CLONE_VFORK,
            exit_signal: libc::SIGCHLD as u64,
            stack: 0,
            parent_tid: 0,
            child_tid: 0,
            tls: 0,
            pidfd: 0,
        },
    )
}

/// `clone3(2)`.
pub fn clone3(task: &mut Task, a: &Args) -> SysResult<u64> {
    const VER0: u64 = 64;
    let size = a[1];
    if !(VER0..=4096).contains(&size) {
        return Err(Errno::EINVAL);
    }
    let mut b = vec![0u8; size as usize];
    io::read_exact(task.mem(), a[0], &mut b)?;
    // Fields beyond what we know must be zero (E2BIG otherwise), as Linux checks.
    let known = 88usize.min(b.len());
    if b[known..].iter().any(|&x| x != 0) {
        return Err(Errno::E2BIG);
    }
    let w = |i: usize| -> u64 {
        b.get(i * 8..i * 8 + 8)
            .map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
            .unwrap_or(0)
    };
    let (
        flags,
        pidfd,
        child_tid,
        parent_tid,
        exit_signal,
        stack,
        stack_size,
        tls,
        set_tid,
        set_tid_size,
        cgroup,
    ) = (
        w(0),
        w(1),
        w(2),
        w(3),
        w(4),
        w(5),
        w(6),
        w(7),
        w(8),
        w(9),
        w(10),
    );
    if set_tid != 0 || set_tid_size != 0 || cgroup != 0 {
        return Err(Errno::EINVAL);
    }
    // The exit signal has its own field: of clone's signal bits only
    // CLONE_NEWTIME's is a flag here.
    if flags & CSIGNAL & !CLONE_NEWTIME != 0 || (stack == 0) != (stack_size == 0) {
        return Err(Errno::EINVAL);
    }
    let sp = if stack != 0 {
        stack.checked_add(stack_size).ok_or(Errno::EINVAL)?
    } else {
        0
    };
    do_clone(
        task,
        CloneArgs {
            flags,
            exit_signal,
            stack: sp,
            parent_tid,
            child_tid,
            tls,
            pidfd,
        },
    )
}
