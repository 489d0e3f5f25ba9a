//! The scheduling calls: policies and priorities (`sched_*`), nice values
//! (`get/setpriority`), CPU affinity, `getcpu` and I/O priorities. Each thread's
//! attributes are bookkeeping on its handle (`kernel::sched`), set and reported with
//! Linux's checks and permission rules; the host schedules the sandbox's threads.
//!
//! Ownership checks on another process compare the caller's effective uid with the
//! target's real and saved uids (what the sentry keeps of another process).

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::CAP_SYS_NICE;
use crate::kernel::process::{ThreadGroup, ThreadHandle};
use crate::kernel::sched::{self, SchedAttr};
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::Args;

/// `SCHED_RESET_ON_FORK`, or'ed into a policy.
const SCHED_RESET_ON_FORK: i32 = 0x4000_0000;
/// `sched_attr.sched_flags` bits.
const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;
const SCHED_FLAG_KEEP_POLICY: u64 = 0x08;
const SCHED_FLAG_KEEP_PARAMS: u64 = 0x10;
const SCHED_FLAG_UTIL_CLAMP: u64 = 0x20 | 0x40;
const SCHED_FLAG_ALL: u64 = 0x7f;
/// Sizes of `struct sched_attr`: the first version and the one with util clamps.
const SCHED_ATTR_SIZE_VER0: usize = 48;
const SCHED_ATTR_SIZE_VER1: usize = 56;
/// The page size, the largest `sched_attr` size accepted.
const PAGE_SIZE: usize = 4096;

fn read_u32(task: &Task, addr: u64) -> SysResult<u32> {
    let mut b = [0u8; 4];
    io::read_exact(task.mem(), addr, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// The thread `pid` names (0: the caller) with its process; `ESRCH` if none.
fn thread_of(task: &Task, pid: i32) -> SysResult<(Arc<ThreadHandle>, Arc<ThreadGroup>)> {
    if pid == 0 {
        return Ok((task.handle.clone(), task.tg.clone()));
    }
    let pid = task.pid_global(pid)?;
    if pid == task.tid {
        return Ok((task.handle.clone(), task.tg.clone()));
    }
    task.kernel.registry()?.thread(pid).ok_or(Errno::ESRCH)
}

/// Linux's `check_same_owner`, on what the sentry keeps of another process.
fn same_owner(task: &Task, tg: &ThreadGroup) -> bool {
    if tg.tgid == task.tgid {
        return true;
    }
    tg.state()
        .map(|s| s.uids.0 == task.creds.euid || s.uids.1 == task.creds.euid)
        .unwrap_or(false)
}

/// Whether nice `n` is within the caller's RLIMIT_NICE (`is_nice_reduction`).
fn nice_allowed(task: &Task, n: i32) -> bool {
    let lim = task
        .limits()
        .map(|l| l.soft(libc::RLIMIT_NICE))
        .unwrap_or(0);
    sched::nice_to_rlimit(n) <= lim
}

/// A requested change: the new attributes (policy -1 keeps the current one).
struct Request {
    policy: i32,
    reset_on_fork: Option<bool>,
    priority: u32,
    nice: Option<i32>,
    deadline: (u64, u64, u64),
    flags: u64,
}

/// Linux's `__sched_setscheduler` checks and the change itself.
fn set_sched(task: &Task, th: &ThreadHandle, tg: &ThreadGroup, r: Request) -> SysResult<()> {
    let cur = th.sched.get();
    let (policy, reset_on_fork) = if r.policy < 0 {
        (cur.policy, r.reset_on_fork.unwrap_or(cur.reset_on_fork))
    } else {
        if !sched::is_valid(r.policy) {
            return Err(Errno::EINVAL);
        }
        (r.policy, r.reset_on_fork.unwrap_or(false))
    };
    if r.flags & !SCHED_FLAG_ALL != 0 || r.priority > 99 {
        return Err(Errno::EINVAL);
    }
    let (runtime, deadline, period) = r.deadline;
    let dl_ok = deadline != 0
        && runtime >= 1024
        && runtime <= deadline
        && (period == 0 || deadline <= period)
        && deadline < 1 << 63;
    if (policy == sched::SCHED_DEADLINE && !dl_ok) || sched::is_rt(policy) != (r.priority != 0) {
        return Err(Errno::EINVAL);
    }
    let fair = !sched::is_rt(policy) && policy != sched::SCHED_DEADLINE;
    let nice = r.nice.unwrap_or(cur.nice);
    if !task.creds.has_cap(CAP_SYS_NICE) {
        let rtprio = task
            .limits()
            .map(|l| l.soft(libc::RLIMIT_RTPRIO))
            .unwrap_or(0);
        let denied = (fair && nice < cur.nice && !nice_allowed(task, nice))
            || (sched::is_rt(policy)
                && ((policy != cur.policy && rtprio == 0)
                    || (r.priority > cur.rt_priority && r.priority as u64 > rtprio)))
            || policy == sched::SCHED_DEADLINE
            || (cur.policy == sched::SCHED_IDLE
                && policy != sched::SCHED_IDLE
                && !nice_allowed(task, cur.nice))
            || !same_owner(task, tg)
            || (cur.reset_on_fork && !reset_on_fork);
        if denied {
            return Err(Errno::EPERM);
        }
    }
    th.sched.update(|a| {
        a.policy = policy;
        a.reset_on_fork = reset_on_fork;
        a.rt_priority = if sched::is_rt(policy) { r.priority } else { 0 };
        a.deadline = if policy == sched::SCHED_DEADLINE {
            (
                runtime,
                deadline,
                if period == 0 { deadline } else { period },
            )
        } else {
            (0, 0, 0)
        };
        if fair {
            a.nice = nice;
        }
        Ok(())
    })
}

fn setscheduler_common(task: &Task, pid: i32, policy: i32, param: u64) -> SysResult<u64> {
    if param == 0 || pid < 0 {
        return Err(Errno::EINVAL);
    }
    let priority = read_u32(task, param)?;
    let (th, tg) = thread_of(task, pid)?;
    let (policy, reset) = if policy < 0 {
        (-1, None)
    } else {
        (
            policy & !SCHED_RESET_ON_FORK,
            Some(policy & SCHED_RESET_ON_FORK != 0),
        )
    };
    let req = Request {
        policy,
        reset_on_fork: reset,
        priority,
        nice: None,
        deadline: (0, 0, 0),
        flags: 0,
    };
    // An int priority above 99 (or negative) is EINVAL like any out-of-range one.
    set_sched(task, &th, &tg, req)?;
    Ok(0)
}

/// `sched_setscheduler(2)`.
pub fn sched_setscheduler(task: &mut Task, a: &Args) -> SysResult<u64> {
    let policy = a[1] as i32;
    if policy < 0 {
        return Err(Errno::EINVAL);
    }
    setscheduler_common(task, a[0] as i32, policy, a[2])
}

/// `sched_setparam(2)`: the priority under the current policy.
pub fn sched_setparam(task: &mut Task, a: &Args) -> SysResult<u64> {
    setscheduler_common(task, a[0] as i32, -1, a[1])
}

/// `sched_getscheduler(2)`: the policy, with SCHED_RESET_ON_FORK if set.
pub fn sched_getscheduler(task: &mut Task, a: &Args) -> SysResult<u64> {
    let pid = a[0] as i32;
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    let s = thread_of(task, pid)?.0.sched.get();
    let flag = if s.reset_on_fork {
        SCHED_RESET_ON_FORK
    } else {
        0
    };
    Ok((s.policy | flag) as u64)
}

/// `sched_getparam(2)`: the real-time priority (0 outside FIFO/RR).
pub fn sched_getparam(task: &mut Task, a: &Args) -> SysResult<u64> {
    let pid = a[0] as i32;
    if a[1] == 0 || pid < 0 {
        return Err(Errno::EINVAL);
    }
    let s = thread_of(task, pid)?.0.sched.get();
    io::write_u32(task.mem(), a[1], s.rt_priority)?;
    Ok(0)
}

/// `sched_rr_get_interval(2)`: SCHED_RR's 100 ms slice, 0 for FIFO; a fair task's
/// slice in whole ticks, which is 0 on current kernels at HZ up to 250 (a 3 ms base
/// slice).
pub fn sched_rr_get_interval(task: &mut Task, a: &Args) -> SysResult<u64> {
    let pid = a[0] as i32;
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    let s = thread_of(task, pid)?.0.sched.get();
    let ns: i64 = if s.policy == sched::SCHED_RR {
        100_000_000
    } else {
        0
    };
    let ts = libc::timespec {
        tv_sec: ns / 1_000_000_000,
        tv_nsec: ns % 1_000_000_000,
    };
    io::write_struct(task.mem(), a[1], &ts)?;
    Ok(0)
}

/// `sched_setattr(2)`.
pub fn sched_setattr(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (pid, uattr, flags) = (a[0] as i32, a[1], a[2]);
    if uattr == 0 || pid < 0 || flags != 0 {
        return Err(Errno::EINVAL);
    }
    let mut size = read_u32(task, uattr)? as usize;
    let too_big = |task: &Task| -> SysResult<u64> {
        io::write_u32(task.mem(), uattr, SCHED_ATTR_SIZE_VER1 as u32)?;
        Err(Errno::E2BIG)
    };
    if size > PAGE_SIZE {
        return too_big(task);
    }
    if size == 0 {
        size = SCHED_ATTR_SIZE_VER0;
    }
    if size < SCHED_ATTR_SIZE_VER0 {
        return too_big(task);
    }
    let mut b = vec![0u8; size.max(SCHED_ATTR_SIZE_VER1)];
    io::read_exact(task.mem(), uattr, &mut b[..size])?;
    if b[SCHED_ATTR_SIZE_VER1..].iter().any(|&x| x != 0) {
        return too_big(task);
    }
    let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let mut policy = u32_at(4) as i32;
    let sflags = u64_at(8);
    let nice = (u32_at(16) as i32).clamp(-20, 19);
    let priority = u32_at(20);
    let mut dl = (u64_at(24), u64_at(32), u64_at(40));
    if sflags & SCHED_FLAG_UTIL_CLAMP != 0 && size < SCHED_ATTR_SIZE_VER1 {
        return Err(Errno::EINVAL);
    }
    if policy < 0 {
        return Err(Errno::EINVAL);
    }
    if sflags & SCHED_FLAG_KEEP_POLICY != 0 {
        policy = -1;
    }
    let (th, tg) = thread_of(task, pid)?;
    let mut priority = priority;
    if sflags & SCHED_FLAG_KEEP_PARAMS != 0 {
        let cur = th.sched.get();
        priority = cur.rt_priority;
        dl = cur.deadline;
    }
    let req = Request {
        policy,
        reset_on_fork: Some(sflags & SCHED_FLAG_RESET_ON_FORK != 0),
        priority,
        nice: Some(nice),
        deadline: dl,
        flags: sflags,
    };
    set_sched(task, &th, &tg, req)?;
    Ok(0)
}

/// `sched_getattr(2)`: the attributes in the caller's size of `struct sched_attr`
/// (up to the kernel's own), `size` set to the bytes written.
pub fn sched_getattr(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (pid, uattr, usize_, flags) = (a[0] as i32, a[1], a[2] as usize, a[3]);
    if uattr == 0 || pid < 0 || !(SCHED_ATTR_SIZE_VER0..=PAGE_SIZE).contains(&usize_) || flags != 0
    {
        return Err(Errno::EINVAL);
    }
    let s = thread_of(task, pid)?.0.sched.get();
    let size = usize_.min(SCHED_ATTR_SIZE_VER1);
    let mut b = [0u8; SCHED_ATTR_SIZE_VER1];
    b[0..4].copy_from_slice(&(size as u32).to_le_bytes());
    b[4..8].copy_from_slice(&(s.policy as u32).to_le_bytes());
    let sflags = if s.reset_on_fork {
        SCHED_FLAG_RESET_ON_FORK
    } else {
        0
    };
    b[8..16].copy_from_slice(&sflags.to_le_bytes());
    if s.policy == sched::SCHED_DEADLINE {
        b[24..32].copy_from_slice(&s.deadline.0.to_le_bytes());
        b[32..40].copy_from_slice(&s.deadline.1.to_le_bytes());
        b[40..48].copy_from_slice(&s.deadline.2.to_le_bytes());
    } else if sched::is_rt(s.policy) {
        b[20..24].copy_from_slice(&s.rt_priority.to_le_bytes());
    } else {
        b[16..20].copy_from_slice(&s.nice.to_le_bytes());
    }
    io::write_all(task.mem(), uattr, &b[..size])?;
    Ok(0)
}

/// The sandbox's CPUs and the kernel's cpumask size in bytes (whole longs).
fn cpumask_geometry(task: &Task) -> (usize, usize) {
    let ncpu = task.kernel.ncpus.clamp(1, 8192);
    (ncpu, ncpu.div_ceil(64) * 8)
}

/// `sched_getaffinity(2)`: the thread's mask (every CPU of the sandbox unless set);
/// returns the mask size.
pub fn sched_getaffinity(task: &mut Task, a: &Args) -> SysResult<u64> {
    let pid = a[0] as i32;
    let (ncpu, mask_bytes) = cpumask_geometry(task);
    let len = a[1] as usize;
    if len * 8 < ncpu || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    if pid < 0 {
        return Err(Errno::ESRCH);
    }
    let s = thread_of(task, pid)?.0.sched.get();
    let mut mask = vec![0u8; mask_bytes];
    for cpu in 0..ncpu {
        let on = match &s.affinity {
            None => true,
            Some(words) => words
                .get(cpu / 64)
                .is_some_and(|w| w & (1 << (cpu % 64)) != 0),
        };
        if on {
            mask[cpu / 8] |= 1 << (cpu % 8);
        }
    }
    io::write_all(task.mem(), a[2], &mask)?;
    Ok(mask_bytes as u64)
}

/// `sched_setaffinity(2)`: keeps the mask's CPUs that the sandbox has (`EINVAL` if
/// none); bits past the kernel's mask size are not read, as Linux.
pub fn sched_setaffinity(task: &mut Task, a: &Args) -> SysResult<u64> {
    let pid = a[0] as i32;
    let (ncpu, mask_bytes) = cpumask_geometry(task);
    let len = (a[1] as usize).min(mask_bytes);
    let mut mask = vec![0u8; mask_bytes];
    io::read_exact(task.mem(), a[2], &mut mask[..len])?;
    if pid < 0 {
        return Err(Errno::ESRCH);
    }
    let (th, tg) = thread_of(task, pid)?;
    if !same_owner(task, &tg) && !task.creds.has_cap(CAP_SYS_NICE) {
        return Err(Errno::EPERM);
    }
    let mut words = vec![0u64; ncpu.div_ceil(64)];
    for cpu in 0..ncpu {
        if mask[cpu / 8] & (1 << (cpu % 8)) != 0 {
            words[cpu / 64] |= 1 << (cpu % 64);
        }
    }
    if words.iter().all(|&w| w == 0) {
        return Err(Errno::EINVAL);
    }
    let all = (0..ncpu).all(|c| words[c / 64] & (1 << (c % 64)) != 0);
    th.sched.update(|s| {
        s.affinity = (!all).then_some(words);
        Ok(())
    })?;
    Ok(0)
}

const PRIO_PROCESS: i32 = 0;
const PRIO_PGRP: i32 = 1;
const PRIO_USER: i32 = 2;

/// The threads `which`/`who` select (getpriority, setpriority, ioprio_*): one
/// thread, every thread of a process group, or of a user's processes.
fn prio_targets(
    task: &Task,
    which: i32,
    who: i32,
) -> SysResult<Vec<(Arc<ThreadHandle>, Arc<ThreadGroup>)>> {
    match which {
        PRIO_PROCESS => Ok(thread_of(task, who).map(|t| vec![t]).unwrap_or_default()),
        PRIO_PGRP | PRIO_USER => {
            let key = match (which, who) {
                (PRIO_PGRP, 0) => task.tg.state()?.pgid,
                (PRIO_USER, 0) => task.creds.uid as i32,
                _ => who,
            };
            let reg = task.kernel.registry()?;
            let mut v = Vec::new();
            for (th, tg) in reg.threads.values() {
                let Ok(st) = tg.state() else { continue };
                let hit = if which == PRIO_PGRP {
                    st.pgid == key
                } else {
                    st.uids.0 == key as u32
                };
                if hit && st.zombie.is_none() {
                    v.push((th.clone(), tg.clone()));
                }
            }
            Ok(v)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// `getpriority(2)`: `20 - nice` of the highest-priority thread selected.
pub fn getpriority(task: &mut Task, a: &Args) -> SysResult<u64> {
    let targets = prio_targets(task, a[0] as i32, a[1] as i32)?;
    let best = targets.iter().map(|(th, _)| th.sched.get().nice).min();
    best.map(|n| (20 - n) as u64).ok_or(Errno::ESRCH)
}

/// `setpriority(2)`: sets the nice value (clamped to -20..19) of every thread
/// selected; `EPERM` for another user's, `EACCES` for lowering it past
/// RLIMIT_NICE without CAP_SYS_NICE. The last refusal is returned, as Linux.
pub fn setpriority(task: &mut Task, a: &Args) -> SysResult<u64> {
    let targets = prio_targets(task, a[0] as i32, a[1] as i32)?;
    let nice = (a[2] as i32).clamp(-20, 19);
    let privileged = task.creds.has_cap(CAP_SYS_NICE);
    let mut result = Err(Errno::ESRCH);
    for (th, tg) in &targets {
        if !privileged && !same_owner(task, tg) {
            result = Err(Errno::EPERM);
            continue;
        }
        let cur = th.sched.get().nice;
        if nice < cur && !privileged && !nice_allowed(task, nice) {
            result = Err(Errno::EACCES);
            continue;
        }
        th.sched.update(|s| {
            s.nice = nice;
            Ok(())
        })?;
        if result == Err(Errno::ESRCH) {
            result = Ok(0);
        }
    }
    result
}

/// `getcpu(2)`: the host CPU the caller's sentry thread runs on (the platform runs
/// a thread's code on the same CPU), within the sandbox's CPUs; node 0.
pub fn getcpu(task: &mut Task, a: &Args) -> SysResult<u64> {
    let cpu = task.cpu();
    if a[0] != 0 {
        io::write_u32(task.mem(), a[0], cpu)?;
    }
    if a[1] != 0 {
        io::write_u32(task.mem(), a[1], 0)?;
    }
    Ok(0)
}

const IOPRIO_CLASS_NONE: u16 = 0;
const IOPRIO_CLASS_RT: u16 = 1;
const IOPRIO_CLASS_BE: u16 = 2;
const IOPRIO_CLASS_IDLE: u16 = 3;
/// `ioprio_*` `which` values.
const IOPRIO_WHO_PROCESS: i32 = 1;
const IOPRIO_WHO_PGRP: i32 = 2;
const IOPRIO_WHO_USER: i32 = 3;

fn ioprio_targets(
    task: &Task,
    which: i32,
    who: i32,
) -> SysResult<Vec<(Arc<ThreadHandle>, Arc<ThreadGroup>)>> {
    let w = match which {
        IOPRIO_WHO_PROCESS => PRIO_PROCESS,
        IOPRIO_WHO_PGRP => PRIO_PGRP,
        IOPRIO_WHO_USER => PRIO_USER,
        _ => return Err(Errno::EINVAL),
    };
    prio_targets(task, w, who)
}

/// A thread's effective I/O priority: its own, or derived from its nice value
/// (best effort, level `(nice + 20) / 5`) when never set, as Linux reports it for
/// a process group or user.
fn effective_ioprio(s: &SchedAttr) -> u16 {
    if s.ioprio >> 13 != IOPRIO_CLASS_NONE {
        return s.ioprio;
    }
    let class = if sched::is_rt(s.policy) {
        IOPRIO_CLASS_RT
    } else if s.policy == sched::SCHED_IDLE {
        IOPRIO_CLASS_IDLE
    } else {
        IOPRIO_CLASS_BE
    };
    (class << 13) | ((s.nice + 20) / 5) as u16
}

/// `ioprio_get(2)`: a thread's own value (0 until set); the best of a group's or
/// user's threads.
pub fn ioprio_get(task: &mut Task, a: &Args) -> SysResult<u64> {
    let which = a[0] as i32;
    let targets = ioprio_targets(task, which, a[1] as i32)?;
    if targets.is_empty() {
        return Err(Errno::ESRCH);
    }
    if which == IOPRIO_WHO_PROCESS {
        return Ok(targets[0].0.sched.get().ioprio as u64);
    }
    // Lower class number is higher priority (RT < BE < IDLE), then lower level.
    let rank = |p: u16| ((p >> 13).wrapping_sub(1) & 0x7, p & 0x1fff);
    let best = targets
        .iter()
        .map(|(th, _)| effective_ioprio(&th.sched.get()))
        .min_by_key(|&p| rank(p));
    Ok(best.unwrap_or(0) as u64)
}

/// `ioprio_set(2)`: RT class needs CAP_SYS_NICE (or CAP_SYS_ADMIN); another user's
/// threads need CAP_SYS_NICE.
pub fn ioprio_set(task: &mut Task, a: &Args) -> SysResult<u64> {
    let prio = a[2] as u32;
    if prio > 0xffff {
        return Err(Errno::EINVAL);
    }
    let prio = prio as u16;
    let (class, level) = (prio >> 13, prio & 0x7);
    let privileged = task.creds.has_cap(CAP_SYS_NICE);
    match class {
        IOPRIO_CLASS_RT if !privileged && !task.creds.has_cap(21 /* CAP_SYS_ADMIN */) => {
            return Err(Errno::EPERM)
        }
        IOPRIO_CLASS_RT | IOPRIO_CLASS_BE | IOPRIO_CLASS_IDLE => {}
        IOPRIO_CLASS_NONE if level != 0 => return Err(Errno::EINVAL),
        IOPRIO_CLASS_NONE => {}
        _ => return Err(Errno::EINVAL),
    }
    let targets = ioprio_targets(task, a[0] as i32, a[1] as i32)?;
    let mut result = Err(Errno::ESRCH);
    for (th, tg) in &targets {
        if !privileged && !same_owner(task, tg) {
            result = Err(Errno::EPERM);
            continue;
        }
        th.sched.update(|s| {
            s.ioprio = prio;
            Ok(())
        })?;
        result = Ok(0);
    }
    result
}
