//! Signal syscalls: dispositions, masks, sending, waiting, the alternate stack and
//! the return from a handler.

use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::CAP_KILL;
use crate::kernel::process::{self, ThreadGroup};
use crate::kernel::signals::{
    self, code, AltStack, SigAction, SigInfo, MAX_SIGNAL, MINSIGSTKSZ, SS_AUTODISARM, SS_DISABLE,
    SS_ONSTACK,
};
use crate::kernel::wait::{self, Interrupted};
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::Args;

fn check_sigset_size(size: u64) -> SysResult<()> {
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// `rt_sigaction(2)`.
pub fn rt_sigaction(task: &mut Task, a: &Args) -> SysResult<u64> {
    check_sigset_size(a[3])?;
    let sig = a[0] as u32;
    let new = if a[1] != 0 {
        let mut b = [0u8; SigAction::SIZE];
        io::read_exact(task.mem(), a[1], &mut b)?;
        Some(SigAction::from_bytes(&b))
    } else {
        None
    };
    let old = {
        let mut acts = task.tg.actions()?;
        let old = acts.get(sig)?;
        if let Some(n) = new {
            acts.set(sig, n)?;
        }
        old
    };
    if let Some(n) = new {
        // Setting a signal to be ignored discards what is pending of it.
        if n.handler == signals::SIG_IGN
            || (n.handler == signals::SIG_DFL
                && signals::default_action(sig) == signals::DefaultAction::Ignore)
        {
            if let Ok(mut q) = task.tg.pending.lock() {
                q.discard(sig);
            }
            if let Ok(mut q) = task.handle.pending.lock() {
                q.discard(sig);
            }
        }
    }
    if a[2] != 0 {
        io::write_all(task.mem(), a[2], &old.to_bytes())?;
    }
    Ok(0)
}

/// `rt_sigprocmask(2)`.
pub fn rt_sigprocmask(task: &mut Task, a: &Args) -> SysResult<u64> {
    check_sigset_size(a[3])?;
    let old = task.mask();
    if a[1] != 0 {
        let set = io::read_u64(task.mem(), a[1])?;
        let new = match a[0] as i32 {
            libc::SIG_BLOCK => old | set,
            libc::SIG_UNBLOCK => old & !set,
            libc::SIG_SETMASK => set,
            _ => return Err(Errno::EINVAL),
        };
        task.set_mask(new);
    }
    if a[2] != 0 {
        io::write_u64(task.mem(), a[2], old)?;
    }
    Ok(0)
}

/// `rt_sigpending(2)`.
pub fn rt_sigpending(task: &mut Task, a: &Args) -> SysResult<u64> {
    check_sigset_size(a[1])?;
    let own = task.handle.pending.lock().map(|q| q.set()).unwrap_or(0);
    let shared = task.tg.pending.lock().map(|q| q.set()).unwrap_or(0);
    io::write_u64(task.mem(), a[0], (own | shared) & task.mask())?;
    Ok(0)
}

/// Blocks until a signal is pending; always returns ERESTARTNOHAND.
fn wait_for_signal(task: &Task) -> SysResult<u64> {
    let r: Result<SysResult<()>, Interrupted> =
        wait::block(&task.waker, None, || task.signal_pending(), || Ok(None));
    match r {
        Ok(res) => res.map(|_| 0),
        Err(_) => Err(Errno::ERESTARTNOHAND),
    }
}

/// `rt_sigsuspend(2)`.
pub fn rt_sigsuspend(task: &mut Task, a: &Args) -> SysResult<u64> {
    check_sigset_size(a[1])?;
    let set = io::read_u64(task.mem(), a[0])?;
    task.saved_mask = Some(task.mask());
    task.set_mask(set);
    wait_for_signal(task)
}

/// `pause(2)`.
pub fn pause(task: &mut Task, _a: &Args) -> SysResult<u64> {
    wait_for_signal(task)
}

fn take_from(task: &Task, set: u64) -> Option<SigInfo> {
    if let Some(i) = task
        .handle
        .pending
        .lock()
        .ok()
        .and_then(|mut q| q.take_from(set))
    {
        return Some(crate::kernel::signals::seen_in(i, &task.tg.pid_ns));
    }
    task.tg
        .pending
        .lock()
        .ok()
        .and_then(|mut q| q.take_from(set))
        .map(|i| crate::kernel::signals::seen_in(i, &task.tg.pid_ns))
}

/// `rt_sigtimedwait(2)`.
pub fn rt_sigtimedwait(task: &mut Task, a: &Args) -> SysResult<u64> {
    check_sigset_size(a[3])?;
    let set = io::read_u64(task.mem(), a[0])? & !signals::UNBLOCKABLE;
    let deadline = if a[2] != 0 {
        let ts: libc::timespec = io::read_struct(task.mem(), a[2])?;
        if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
            return Err(Errno::EINVAL);
        }
        Some(Instant::now() + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    } else {
        None
    };
    let waker = task.waker.clone();
    // A process-directed signal that every thread blocks wakes no thread by itself;
    // the group's event queue tells this waiter (Linux unblocks the set meanwhile).
    let tg = task.tg.clone();
    let _reg = tg.events.register(&waker);
    // Signals in `set` are waited for even when blocked; others interrupt.
    let r = wait::block(
        &waker,
        deadline,
        || {
            task.handle
                .killed
                .load(std::sync::atomic::Ordering::Acquire)
                || {
                    let own = task.handle.pending.lock().map(|q| q.set()).unwrap_or(0);
                    let shared = task.tg.pending.lock().map(|q| q.set()).unwrap_or(0);
                    (own | shared) & !task.mask() & !set != 0
                }
        },
        || Ok(take_from(task, set)),
    );
    match r {
        Ok(Ok(info)) => {
            if a[1] != 0 {
                io::write_all(task.mem(), a[1], &info.to_bytes())?;
            }
            Ok(info.signo as u64)
        }
        Ok(Err(e)) => Err(e),
        Err(Interrupted::Timeout) => Err(Errno::EAGAIN),
        Err(Interrupted::Signal) => Err(Errno::EINTR),
    }
}

/// `sigaltstack(2)`.
pub fn sigaltstack(task: &mut Task, a: &Args) -> SysResult<u64> {
    let old = task.alt_stack;
    if a[0] != 0 {
        if old.contains(task.regs.rsp) {
            return Err(Errno::EPERM);
        }
        let mut b = [0u8; 24];
        io::read_exact(task.mem(), a[0], &mut b)?;
        let sp = u64::from_le_bytes(b[0..8].try_into().map_err(|_| Errno::EFAULT)?);
        let flags = i32::from_le_bytes(b[8..12].try_into().map_err(|_| Errno::EFAULT)?);
        let size = u64::from_le_bytes(b[16..24].try_into().map_err(|_| Errno::EFAULT)?);
        let mode = flags & !SS_AUTODISARM;
        if mode != 0 && mode != SS_DISABLE && mode != SS_ONSTACK {
            return Err(Errno::EINVAL);
        }
        task.alt_stack = if mode == SS_DISABLE {
            AltStack {
                sp: 0,
                flags: SS_DISABLE,
                size: 0,
            }
        } else {
            if size < MINSIGSTKSZ {
                return Err(Errno::ENOMEM);
            }
            AltStack {
                sp,
                flags: flags & SS_AUTODISARM,
                size,
            }
        };
    }
    if a[1] != 0 {
        let flags = if !old.enabled() {
            SS_DISABLE
        } else if old.contains(task.regs.rsp) {
            SS_ONSTACK
        } else {
            old.flags & SS_AUTODISARM
        };
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&old.sp.to_le_bytes());
        b[8..12].copy_from_slice(&flags.to_le_bytes());
        b[16..24].copy_from_slice(&old.size.to_le_bytes());
        io::write_all(task.mem(), a[1], &b)?;
    }
    Ok(0)
}

/// `rt_sigreturn(2)`.
pub fn rt_sigreturn(task: &mut Task, _a: &Args) -> SysResult<u64> {
    match task.sigreturn() {
        Ok(v) => Ok(v),
        Err(e) => {
            // A corrupt frame: Linux kills the task with SIGSEGV.
            tracing::info!(tid = task.tid, "bad signal frame ({e}): SIGSEGV");
            task.raise_signal(libc::SIGSEGV);
            Ok(task.regs.rax)
        }
    }
}

fn check_signal(sig: u64) -> SysResult<u32> {
    if sig > MAX_SIGNAL as u64 {
        return Err(Errno::EINVAL);
    }
    Ok(sig as u32)
}

/// Whether `task` may signal process `target` (same uid, or CAP_KILL; SIGCONT within
/// the session).
fn may_signal(task: &Task, target: &ThreadGroup, sig: u32) -> bool {
    if task.creds.has_cap(CAP_KILL) {
        return true;
    }
    if sig == libc::SIGCONT as u32 {
        // One lock at a time: the target may be the caller's own process, whose state
        // lock is not re-entrant (holding both deadlocked the sandbox on
        // `kill(getpid(), SIGCONT)` without CAP_KILL).
        let mine = task.tg.state().map(|s| s.sid);
        let theirs = target.state().map(|s| s.sid);
        let same_session = matches!((mine, theirs), (Ok(a), Ok(b)) if a == b);
        if same_session {
            return true;
        }
    }
    let (ruid, suid) = target
        .state()
        .map(|s| s.uids)
        .unwrap_or((u32::MAX, u32::MAX));
    let c = &task.creds;
    c.uid == ruid || c.uid == suid || c.euid == ruid || c.euid == suid
}

/// Kernel-generated signal to the task itself (SIGPIPE, SIGXFSZ).
pub fn raise(task: &mut Task, sig: u32) {
    task.raise_signal(sig as i32);
}

/// A signal from `task` that a nested pid namespace's init `g` does not get: one
/// from inside its namespace that it has no handler for (SIGKILL and SIGSTOP
/// included), as Linux's `SIGNAL_UNKILLABLE`. From an ancestor namespace only
/// those two always reach it.
fn init_protected(task: &Task, g: &std::sync::Arc<ThreadGroup>, sig: u32) -> bool {
    let ns = &g.pid_ns;
    if ns.level == 0 || ns.init() != g.tgid || sig == 0 {
        return false;
    }
    let force = sig == libc::SIGKILL as u32 || sig == libc::SIGSTOP as u32;
    if force && !std::sync::Arc::ptr_eq(&task.tg.pid_ns, ns) {
        return false;
    }
    g.actions()
        .map(|a| {
            a.get(sig)
                .map(|x| x.handler == crate::kernel::signals::SIG_DFL)
                .unwrap_or(true)
        })
        .unwrap_or(true)
}

/// `kill(2)`.
pub fn kill(task: &mut Task, a: &Args) -> SysResult<u64> {
    let pid = a[0] as i32;
    if pid == i32::MIN {
        return Err(Errno::ESRCH);
    }
    // Linux looks for the targets before it judges the signal: none is ESRCH, whatever
    // the signal number.
    let valid = check_signal(a[1]);
    let targets: Vec<std::sync::Arc<ThreadGroup>> = {
        let reg = task.kernel.registry()?;
        if pid > 0 {
            let g = reg.group(task.pid_global(pid)?).ok_or(Errno::ESRCH)?;
            let sig = valid?;
            if g.state()?.zombie.is_some() && sig != 0 {
                // A zombie accepts (and drops) signals.
                return Ok(0);
            }
            vec![g]
        } else if pid == 0 || pid < -1 {
            let pgid = if pid == 0 {
                task.tg.state()?.pgid
            } else {
                task.pid_global(-pid)?
            };
            let v = reg.group_members(pgid);
            if v.is_empty() {
                return Err(Errno::ESRCH);
            }
            v
        } else {
            // -1: every process of the caller's pid namespace but its init and
            // the caller.
            let ns = &task.tg.pid_ns;
            let init = ns.init();
            reg.groups
                .values()
                .filter(|g| g.tgid != init && g.tgid != task.tgid && ns.local(g.tgid).is_some())
                .cloned()
                .collect()
        }
    };
    if pid == -1 && targets.is_empty() {
        return Err(Errno::ESRCH);
    }
    let sig = valid?;
    let info = SigInfo::user(sig as i32, task.tgid, task.creds.uid);
    let mut sent = false;
    for g in &targets {
        if may_signal(task, g, sig) {
            if !init_protected(task, g, sig) {
                process::send_to_group(g, info)?;
            }
            sent = true;
        }
    }
    if !sent {
        return Err(Errno::EPERM);
    }
    Ok(0)
}

fn thread_signal(task: &mut Task, tgid: Option<i32>, tid: i32, sig: u32) -> SysResult<u64> {
    if tid <= 0 || tgid.is_some_and(|g| g <= 0) {
        return Err(Errno::EINVAL);
    }
    let tid = task.pid_global(tid)?;
    let tgid = match tgid {
        Some(g) => Some(task.pid_global(g)?),
        None => None,
    };
    let (th, tg) = task.kernel.registry()?.thread(tid).ok_or(Errno::ESRCH)?;
    if tgid.is_some_and(|g| g != tg.tgid) {
        return Err(Errno::ESRCH);
    }
    if !may_signal(task, &tg, sig) {
        return Err(Errno::EPERM);
    }
    if init_protected(task, &tg, sig) {
        return Ok(0);
    }
    let info = SigInfo {
        signo: sig as i32,
        code: code::SI_TKILL,
        pid: task.tgid,
        uid: task.creds.uid,
        ..Default::default()
    };
    process::send_to_thread(&th, &tg, info)?;
    Ok(0)
}

/// `tkill(2)`.
pub fn tkill(task: &mut Task, a: &Args) -> SysResult<u64> {
    let sig = check_signal(a[1])?;
    thread_signal(task, None, a[0] as i32, sig)
}

/// `tgkill(2)`.
pub fn tgkill(task: &mut Task, a: &Args) -> SysResult<u64> {
    let sig = check_signal(a[2])?;
    thread_signal(task, Some(a[0] as i32), a[1] as i32, sig)
}

fn queued_info(task: &Task, sig: u32, addr: u64) -> SysResult<SigInfo> {
    let mut b = [0u8; abi::signal::SIGINFO_SIZE];
    io::read_exact(task.mem(), addr, &mut b)?;
    let mut info = SigInfo::from_bytes(&b);
    // Only the kernel may claim to be the kernel, or tkill, for another process.
    if info.code >= 0 || info.code == code::SI_TKILL {
        return Err(Errno::EPERM);
    }
    info.signo = sig as i32;
    Ok(info)
}

/// `rt_sigqueueinfo(2)`.
pub fn rt_sigqueueinfo(task: &mut Task, a: &Args) -> SysResult<u64> {
    let sig = check_signal(a[1])?;
    let info = queued_info(task, sig, a[2])?;
    let g = task
        .kernel
        .registry()?
        .group(task.pid_global(a[0] as i32)?)
        .ok_or(Errno::ESRCH)?;
    if sig != 0 {
        process::send_to_group(&g, info)?;
    }
    Ok(0)
}

/// `rt_tgsigqueueinfo(2)`.
pub fn rt_tgsigqueueinfo(task: &mut Task, a: &Args) -> SysResult<u64> {
    let sig = check_signal(a[2])?;
    let info = queued_info(task, sig, a[3])?;
    let (th, tg) = task
        .kernel
        .registry()?
        .thread(task.pid_global(a[1] as i32)?)
        .ok_or(Errno::ESRCH)?;
    if tg.tgid != task.pid_global(a[0] as i32)? {
        return Err(Errno::ESRCH);
    }
    if sig != 0 {
        process::send_to_thread(&th, &tg, info)?;
    }
    Ok(0)
}
