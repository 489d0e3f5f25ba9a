//! Process groups, sessions, and the pidfd calls.

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::CAP_SYS_PTRACE;
use crate::kernel::process::{self, ThreadGroup};
use crate::kernel::signals::{code, SigInfo};
use crate::kernel::{pidfd, Task};
use crate::mm::io;
use crate::syscalls::{file_arg, Args};
use crate::vfs::OpenFile;

fn group_of(task: &Task, pid: i32) -> SysResult<std::sync::Arc<ThreadGroup>> {
    if pid == 0 {
        return Ok(task.tg.clone());
    }
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    let pid = task.pid_global(pid)?;
    task.kernel.registry()?.group(pid).ok_or(Errno::ESRCH)
}

/// `getppid(2)`: 0 for the container's init, as for init on Linux (and for the
/// init of a nested pid namespace, whose parent is outside it).
pub fn getppid(task: &mut Task, _a: &Args) -> SysResult<u64> {
    Ok(task.pid_shown(task.ppid()) as u64)
}

/// `setpgid(2)`.
pub fn setpgid(task: &mut Task, a: &Args) -> SysResult<u64> {
    if (a[1] as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    // Ids are the caller's pid namespace's; the sandbox's from here on.
    let target = group_of(task, a[0] as i32)?;
    let pid = target.tgid;
    let pgid = if a[1] as i32 == 0 {
        pid
    } else {
        task.tg.pid_ns.global(a[1] as i32).ok_or(Errno::EPERM)?
    };
    let my_sid = task.tg.state()?.sid;
    if target.tgid != task.tgid {
        let st = target.state()?;
        if st.parent != task.tgid {
            return Err(Errno::ESRCH);
        }
        if st.sid != my_sid {
            return Err(Errno::EPERM);
        }
        if st.did_exec {
            return Err(Errno::EACCES);
        }
    }
    {
        let st = target.state()?;
        if st.sid == target.tgid {
            // A session leader cannot change its group.
            return Err(Errno::EPERM);
        }
    }
    if pgid != pid {
        let exists = task.kernel.registry()?.groups.values().any(|g| {
            g.state()
                .map(|s| s.pgid == pgid && s.sid == my_sid)
                .unwrap_or(false)
        });
        if !exists {
            return Err(Errno::EPERM);
        }
    }
    target.state()?.pgid = pgid;
    Ok(0)
}

/// `getpgid(2)`.
pub fn getpgid(task: &mut Task, a: &Args) -> SysResult<u64> {
    let pgid = group_of(task, a[0] as i32)?.state()?.pgid;
    Ok(task.pid_shown(pgid) as u64)
}

/// `getpgrp(2)`.
pub fn getpgrp(task: &mut Task, _a: &Args) -> SysResult<u64> {
    let pgid = task.tg.state()?.pgid;
    Ok(task.pid_shown(pgid) as u64)
}

/// `setsid(2)`.
pub fn setsid(task: &mut Task, _a: &Args) -> SysResult<u64> {
    let me = task.tgid;
    let leads = task
        .kernel
        .registry()?
        .groups
        .values()
        .any(|g| g.state().map(|s| s.pgid == me).unwrap_or(false) && g.tgid != me)
        || task.tg.state()?.pgid == me;
    if leads {
        return Err(Errno::EPERM);
    }
    let mut st = task.tg.state()?;
    st.pgid = me;
    st.sid = me;
    Ok(task.pid_shown(me) as u64)
}

/// `getsid(2)`.
pub fn getsid(task: &mut Task, a: &Args) -> SysResult<u64> {
    let sid = group_of(task, a[0] as i32)?.state()?.sid;
    Ok(task.pid_shown(sid) as u64)
}

/// `pidfd_open(2)`.
pub fn pidfd_open(task: &mut Task, a: &Args) -> SysResult<u64> {
    const PIDFD_NONBLOCK: u64 = libc::O_NONBLOCK as u64;
    if a[1] & !PIDFD_NONBLOCK != 0 {
        return Err(Errno::EINVAL);
    }
    let pid = a[0] as i32;
    if pid <= 0 {
        return Err(Errno::EINVAL);
    }
    let g = task
        .kernel
        .registry()?
        .group(task.pid_global(pid)?)
        .ok_or(Errno::ESRCH)?;
    let file = OpenFile::new(
        Box::new(pidfd::PidFd::new(g)),
        None,
        libc::O_RDWR | (a[1] as i32),
    );
    let limit = task.limits()?.soft(libc::RLIMIT_NOFILE);
    Ok(task.fds()?.insert(file, true, limit)? as u64)
}

/// `pidfd_send_signal(2)`.
pub fn pidfd_send_signal(task: &mut Task, a: &Args) -> SysResult<u64> {
    if a[3] != 0 {
        return Err(Errno::EINVAL);
    }
    let file = file_arg(task, a[0])?;
    let g = pidfd::of(&file)
        .map(|p| p.group().clone())
        .ok_or(Errno::EBADF)?;
    let sig = a[1] as u32;
    if sig > 64 {
        return Err(Errno::EINVAL);
    }
    let info = if a[2] != 0 {
        let mut b = [0u8; abi::signal::SIGINFO_SIZE];
        io::read_exact(task.mem(), a[2], &mut b)?;
        let mut i = SigInfo::from_bytes(&b);
        if i.signo as u32 != sig {
            return Err(Errno::EINVAL);
        }
        if (i.code >= 0 || i.code == code::SI_TKILL) && g.tgid != task.tgid {
            return Err(Errno::EPERM);
        }
        i.signo = sig as i32;
        i
    } else {
        SigInfo::user(sig as i32, task.tgid, task.creds.uid)
    };
    if g.state()?.zombie.is_some() {
        return Err(Errno::ESRCH);
    }
    process::send_to_group(&g, info)?;
    Ok(0)
}

/// `pidfd_getfd(2)`: a duplicate (close-on-exec) of another process's fd. Needs the
/// right to ptrace it: the same uid, or CAP_SYS_PTRACE.
pub fn pidfd_getfd(task: &mut Task, a: &Args) -> SysResult<u64> {
    if a[2] != 0 {
        return Err(Errno::EINVAL);
    }
    let file = file_arg(task, a[0])?;
    let g = pidfd::of(&file)
        .map(|p| p.group().clone())
        .ok_or(Errno::EBADF)?;
    let (fds, ruid) = {
        let st = g.state()?;
        if st.zombie.is_some() {
            return Err(Errno::ESRCH);
        }
        (
            st.view
                .fds
                .as_ref()
                .and_then(|w| w.upgrade())
                .ok_or(Errno::ESRCH)?,
            st.uids.0,
        )
    };
    if ruid != task.creds.uid && !task.creds.has_cap(CAP_SYS_PTRACE) {
        return Err(Errno::EPERM);
    }
    let target = fds.lock().map_err(|_| Errno::EIO)?.get(a[1] as i32)?;
    let limit = task.limits()?.soft(libc::RLIMIT_NOFILE);
    Ok(task.fds()?.insert(target, true, limit)? as u64)
}
