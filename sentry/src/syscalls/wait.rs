//! `wait4` and `waitid`: reaping children and reporting stops and continues.

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::kernel::pidfd;
use crate::kernel::process::{wait_status, ThreadGroup, ThreadHandle};
use crate::kernel::ptrace;
use crate::kernel::signals::{code, SigInfo};
use crate::kernel::wait::{self, Interrupted};
use crate::kernel::{ExitStatus, Task};
use crate::mm::io;
use crate::syscalls::{file_arg, Args};
use abi::signal::SIGINFO_SIZE;

const WNOHANG: i32 = 1;
const WUNTRACED: i32 = 2;
const WSTOPPED: i32 = 2;
const WEXITED: i32 = 4;
const WCONTINUED: i32 = 8;
const WNOWAIT: i32 = 0x0100_0000;
const WNOTHREAD: i32 = 0x2000_0000;
const WALL: i32 = 0x4000_0000;
const WCLONE: i32 = 0x8000_0000u32 as i32;

/// Which children a wait selects.
#[derive(Clone, Copy)]
enum Which {
    Any,
    Pid(i32),
    Pgid(i32),
}

/// What a wait found.
struct Found {
    pid: i32,
    uid: u32,
    kind: Kind,
    /// An exited child's CPU time with its own waited-for children's (user, system).
    cpu: (std::time::Duration, std::time::Duration),
}

#[derive(Clone, Copy)]
enum Kind {
    Exited(ExitStatus),
    Stopped(i32),
    Continued,
    /// A tracee's ptrace-stop, with its stop word (`signal | event << 8`).
    Traced(i32),
}

fn matches(which: Which, child: &ThreadGroup, options: i32) -> bool {
    let Ok(st) = child.state() else { return false };
    let ok = match which {
        Which::Any => true,
        Which::Pid(p) => child.tgid == p,
        Which::Pgid(g) => st.pgid == g,
    };
    // __WCLONE selects children that signal something other than SIGCHLD.
    let clone_child = st.exit_signal != libc::SIGCHLD;
    ok && (options & WALL != 0 || clone_child == (options & WCLONE != 0))
}

/// One pass over the children: a reportable event, `Ok(None)` if some child may
/// still report, `ECHILD` if none can.
fn scan(task: &Task, which: Which, options: i32) -> SysResult<Option<Found>> {
    let children: Vec<Arc<ThreadGroup>> = {
        let reg = task.kernel.registry()?;
        let kids: Vec<i32> = task.tg.state()?.children.iter().copied().collect();
        kids.iter().filter_map(|c| reg.group(*c)).collect()
    };
    let mut any = false;
    for c in children.iter().filter(|c| matches(which, c, options)) {
        if ptrace::exit_held_for_tracer(c) {
            // Its tracer sees the exit first.
            any = true;
            continue;
        }
        // A child this process traces reports its stops as a tracee.
        let traced_by_me = task
            .kernel
            .registry()?
            .thread(c.tgid)
            .is_some_and(|(h, _)| {
                h.traced.load(std::sync::atomic::Ordering::Acquire)
                    && h.ptrace
                        .lock()
                        .map(|t| t.tracer == task.tgid)
                        .unwrap_or(false)
            });
        let mut st = c.state()?;
        // A zombie can only report its exit: without WEXITED it is no child to
        // wait for (Linux leaves ECHILD standing for it).
        any |= st.zombie.is_none() || options & WEXITED != 0;
        let uid = st.uids.0;
        if let Some(status) = st.zombie {
            if options & WEXITED != 0 {
                let cpu = st.total_cpu();
                drop(st);
                // Its id as the caller sees it, before reaping gives it back.
                let pid = task.pid_shown(c.tgid);
                if options & WNOWAIT == 0 {
                    reap(task, c)?;
                }
                return Ok(Some(Found {
                    pid,
                    uid,
                    kind: Kind::Exited(status),
                    cpu,
                }));
            }
            continue;
        }
        if traced_by_me {
            continue;
        }
        match st.unreported {
            Some((false, sig)) if options & WSTOPPED != 0 => {
                if options & WNOWAIT == 0 {
                    st.unreported = None;
                }
                return Ok(Some(Found {
                    pid: task.pid_shown(c.tgid),
                    uid,
                    kind: Kind::Stopped(sig),
                    cpu: Default::default(),
                }));
            }
            Some((true, _)) if options & WCONTINUED != 0 => {
                if options & WNOWAIT == 0 {
                    st.unreported = None;
                }
                return Ok(Some(Found {
                    pid: task.pid_shown(c.tgid),
                    uid,
                    kind: Kind::Continued,
                    cpu: Default::default(),
                }));
            }
            _ => {}
        }
    }
    if let Some(f) = scan_tracees(task, which, options, &mut any)? {
        return Ok(Some(f));
    }
    if !any {
        return Err(Errno::ECHILD);
    }
    Ok(None)
}

/// The tracees' part of a wait: ptrace-stops not yet reported, and the exits of
/// tracees that are not the caller's children. A tracer always sees its tracees,
/// whatever `__WCLONE`/`__WALL` and `WSTOPPED` say.
fn scan_tracees(
    task: &Task,
    which: Which,
    options: i32,
    any: &mut bool,
) -> SysResult<Option<Found>> {
    let tracees: Vec<Arc<ThreadHandle>> = task.tg.state()?.tracees.values().cloned().collect();
    for h in tracees {
        let tid = h.tid();
        let mut t = h.ptrace.lock().map_err(|_| Errno::EIO)?;
        if t.tracer != task.tgid {
            continue;
        }
        let ttg = t.tg.as_ref().and_then(|w| w.upgrade());
        let selected = match which {
            Which::Any => true,
            Which::Pid(p) => p == tid,
            Which::Pgid(g) => ttg.as_ref().and_then(|g| g.state().ok().map(|s| s.pgid)) == Some(g),
        };
        if !selected {
            continue;
        }
        *any = true;
        if let Some(status) = t.exited {
            if options & WEXITED == 0 {
                continue;
            }
            if options & WNOWAIT == 0 {
                t.exited = None;
                drop(t);
                ptrace::unlink(&task.kernel, &h, 0, false);
            }
            return Ok(Some(Found {
                pid: task.pid_shown(tid),
                uid: 0,
                kind: Kind::Exited(status),
                cpu: Default::default(),
            }));
        }
        if let Some(s) = t.stop.as_mut() {
            if !s.reported && s.resume.is_none() {
                if options & WNOWAIT == 0 {
                    s.reported = true;
                }
                let uid = ttg
                    .as_ref()
                    .and_then(|g| g.state().ok().map(|s| s.uids.0))
                    .unwrap_or(0);
                return Ok(Some(Found {
                    pid: task.pid_shown(tid),
                    uid,
                    kind: Kind::Traced(s.word),
                    cpu: Default::default(),
                }));
            }
        }
    }
    Ok(None)
}

fn reap(task: &Task, child: &Arc<ThreadGroup>) -> SysResult<()> {
    let cpu = child.state()?.total_cpu();
    {
        let mut st = task.tg.state()?;
        st.children.remove(&child.tgid);
        st.children_cpu.0 += cpu.0;
        st.children_cpu.1 += cpu.1;
    }
    task.kernel.registry()?.groups.remove(&child.tgid);
    child.pid_ns.release(child.tgid);
    Ok(())
}

fn do_wait(task: &Task, which: Which, options: i32) -> SysResult<Option<Found>> {
    let tg = task.tg.clone();
    let _reg = tg.child_events.register(&task.waker);
    let r = wait::block(
        &task.waker,
        None,
        || task.signal_pending(),
        || match scan(task, which, options)? {
            Some(f) => Ok(Some(Some(f))),
            None if options & WNOHANG != 0 => Ok(Some(None)),
            None => Ok(None),
        },
    );
    match r {
        Ok(res) => res,
        Err(Interrupted::Signal) => Err(Errno::ERESTARTSYS),
        Err(Interrupted::Timeout) => Err(Errno::EINTR),
    }
}

/// The child's `struct rusage` for wait4/waitid: its user and system time; the
/// other fields are not kept and read zero.
fn write_rusage(
    task: &Task,
    addr: u64,
    cpu: (std::time::Duration, std::time::Duration),
) -> SysResult<()> {
    if addr != 0 {
        io::write_all(task.mem(), addr, &crate::syscalls::process::rusage(cpu))?;
    }
    Ok(())
}

/// The sandbox id of `local` in the caller's pid namespace; one no process has
/// (so the wait finds no child: ECHILD) when there is none.
fn sandbox_id(task: &Task, local: i32) -> i32 {
    task.tg.pid_ns.global(local).unwrap_or(i32::MIN)
}

/// `wait4(2)`.
pub fn wait4(task: &mut Task, a: &Args) -> SysResult<u64> {
    let pid = a[0] as i32;
    let options = a[2] as i32;
    if options & !(WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WALL | WCLONE) != 0 {
        return Err(Errno::EINVAL);
    }
    let which = match pid {
        p if p > 0 => Which::Pid(sandbox_id(task, p)),
        0 => Which::Pgid(task.tg.state()?.pgid),
        -1 => Which::Any,
        p if p == i32::MIN => return Err(Errno::ESRCH),
        p => Which::Pgid(sandbox_id(task, -p)),
    };
    match do_wait(task, which, options | WEXITED)? {
        None => Ok(0),
        Some(f) => {
            let status = match f.kind {
                Kind::Exited(st) => wait_status(st),
                Kind::Stopped(sig) => (sig << 8) | 0x7f,
                Kind::Traced(word) => ptrace::stop_status(word),
                Kind::Continued => 0xffff,
            };
            if a[1] != 0 {
                io::write_u32(task.mem(), a[1], status as u32)?;
            }
            write_rusage(task, a[3], f.cpu)?;
            Ok(f.pid as u64)
        }
    }
}

/// `waitid(2)`.
pub fn waitid(task: &mut Task, a: &Args) -> SysResult<u64> {
    let idtype = a[0] as i32;
    let id = a[1] as i32;
    let options = a[3] as i32;
    if options & !(WNOHANG | WNOWAIT | WEXITED | WSTOPPED | WCONTINUED | WNOTHREAD | WALL | WCLONE)
        != 0
    {
        return Err(Errno::EINVAL);
    }
    if options & (WEXITED | WSTOPPED | WCONTINUED) == 0 {
        return Err(Errno::EINVAL);
    }
    // A pidfd opened with PIDFD_NONBLOCK makes the wait WNOHANG, and "nothing
    // yet" is then EAGAIN rather than a zeroed siginfo.
    let mut nonblocking_pidfd = false;
    let which = match idtype {
        x if x == libc::P_ALL as i32 => Which::Any,
        x if x == libc::P_PID as i32 && id > 0 => Which::Pid(sandbox_id(task, id)),
        x if x == libc::P_PGID as i32 && id > 0 => Which::Pgid(sandbox_id(task, id)),
        x if x == libc::P_PGID as i32 => Which::Pgid(task.tg.state()?.pgid),
        3 /* P_PIDFD */ => {
            if id < 0 {
                return Err(Errno::EINVAL);
            }
            let file = file_arg(task, id as u64)?;
            let pid = pidfd::of(&file).map(|p| p.group().tgid).ok_or(Errno::EBADF)?;
            nonblocking_pidfd = file.nonblocking();
            Which::Pid(pid)
        }
        _ => return Err(Errno::EINVAL),
    };
    let found = if nonblocking_pidfd {
        let found = do_wait(task, which, options | WNOHANG)?;
        if found.is_none() && options & WNOHANG == 0 {
            return Err(Errno::EAGAIN);
        }
        found
    } else {
        do_wait(task, which, options)?
    };
    if a[2] != 0 {
        let mut b = [0u8; SIGINFO_SIZE];
        if let Some(f) = &found {
            let (c, st) = match f.kind {
                Kind::Exited(ExitStatus::Exited(c)) => (code::CLD_EXITED, c),
                Kind::Exited(ExitStatus::Signaled { signo, core }) => (
                    if core {
                        code::CLD_DUMPED
                    } else {
                        code::CLD_KILLED
                    },
                    signo,
                ),
                Kind::Stopped(sig) => (code::CLD_STOPPED, sig),
                Kind::Traced(word) => (ptrace::CLD_TRAPPED, word),
                Kind::Continued => (code::CLD_CONTINUED, libc::SIGCONT),
            };
            b = SigInfo {
                signo: libc::SIGCHLD,
                code: c,
                pid: f.pid,
                uid: f.uid,
                status: i64::from(st),
                ..Default::default()
            }
            .to_bytes();
        }
        io::write_all(task.mem(), a[2], &b)?;
    }
    let cpu = found.as_ref().map(|f| f.cpu).unwrap_or_default();
    write_rusage(task, a[4], cpu)?;
    Ok(0)
}
