//! Process identity and lifetime: exit, ids, thread-area setup, resource limits,
//! scheduling queries.

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::CAP_SYS_RESOURCE;
use crate::kernel::limits::Limit;
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::Args;

/// `getpid(2)`: the thread group id in the container's pid namespace.
pub fn getpid(task: &mut Task, _a: &Args) -> SysResult<u64> {
    Ok(task.pid_shown(task.tgid) as u64)
}

/// `gettid(2)`.
pub fn gettid(task: &mut Task, _a: &Args) -> SysResult<u64> {
    Ok(task.pid_shown(task.tid) as u64)
}

/// `getuid(2)`.
pub fn getuid(task: &mut Task, _a: &Args) -> SysResult<u64> {
    let c = &task.creds;
    Ok(c.user_ns().uid_shown(c.uid) as u64)
}

/// `geteuid(2)`.
pub fn geteuid(task: &mut Task, _a: &Args) -> SysResult<u64> {
    let c = &task.creds;
    Ok(c.user_ns().uid_shown(c.euid) as u64)
}

/// `getgid(2)`.
pub fn getgid(task: &mut Task, _a: &Args) -> SysResult<u64> {
    let c = &task.creds;
    Ok(c.user_ns().gid_shown(c.gid) as u64)
}

/// `getegid(2)`.
pub fn getegid(task: &mut Task, _a: &Args) -> SysResult<u64> {
    let c = &task.creds;
    Ok(c.user_ns().gid_shown(c.egid) as u64)
}

/// `getgroups(2)`.
pub fn getgroups(task: &mut Task, a: &Args) -> SysResult<u64> {
    let size = a[0] as i32;
    let groups = &task.creds.groups;
    if size < 0 {
        return Err(Errno::EINVAL);
    }
    if size == 0 {
        return Ok(groups.len() as u64);
    }
    if (size as usize) < groups.len() {
        return Err(Errno::EINVAL);
    }
    let ns = task.creds.user_ns();
    let bytes: Vec<u8> = groups
        .iter()
        .flat_map(|g| ns.gid_shown(*g).to_le_bytes())
        .collect();
    io::write_all(task.mem(), a[1], &bytes)?;
    Ok(groups.len() as u64)
}

/// `set_tid_address(2)`: remembered for the thread-exit wake; returns the tid.
pub fn set_tid_address(task: &mut Task, a: &Args) -> SysResult<u64> {
    task.clear_child_tid = a[0];
    Ok(task.pid_shown(task.tid) as u64)
}

/// `set_robust_list(2)`.
pub fn set_robust_list(task: &mut Task, a: &Args) -> SysResult<u64> {
    // sizeof(struct robust_list_head) on x86-64.
    if a[1] != 24 {
        return Err(Errno::EINVAL);
    }
    task.robust_list = (a[0], a[1]);
    Ok(0)
}

/// `rseq(2)`: registers or unregisters the thread's restartable-sequence area
/// (see [`crate::kernel::rseq`]).
pub fn rseq(task: &mut Task, a: &Args) -> SysResult<u64> {
    let cpu = task.cpu();
    let mut cur = task.rseq;
    let r = crate::kernel::rseq::syscall(
        &mut cur,
        task.mem(),
        a[0],
        a[1] as u32,
        a[2] as u32,
        a[3] as u32,
        cpu,
    );
    task.rseq = cur;
    r
}

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;
const ARCH_GET_CPUID: u64 = 0x1011;
const ARCH_SET_CPUID: u64 = 0x1012;
/// Addresses above this are not canonical user addresses.
const USER_LIMIT: u64 = 0x0000_7fff_ffff_f000;

/// `arch_prctl(2)`: the TLS base registers.
pub fn arch_prctl(task: &mut Task, a: &Args) -> SysResult<u64> {
    match a[0] {
        ARCH_SET_FS | ARCH_SET_GS => {
            if a[1] >= USER_LIMIT {
                return Err(Errno::EPERM);
            }
            if a[0] == ARCH_SET_FS {
                task.regs.fs_base = a[1];
            } else {
                if a[1] != 0 {
                    // The patched-syscall trampoline finds its thread through the gs
                    // base: a process that uses gs makes every call trap instead.
                    crate::kernel::patch::forbid(&mut *task.mm()?);
                }
                task.regs.gs_base = a[1];
            }
            Ok(0)
        }
        ARCH_GET_FS => {
            io::write_u64(task.mem(), a[1], task.regs.fs_base)?;
            Ok(0)
        }
        ARCH_GET_GS => {
            io::write_u64(task.mem(), a[1], task.regs.gs_base)?;
            Ok(0)
        }
        // CPUID faulting is not offered: CPUID is always enabled.
        ARCH_GET_CPUID => Ok(1),
        ARCH_SET_CPUID => Err(Errno::ENODEV),
        _ => Err(Errno::EINVAL),
    }
}

fn read_limit(task: &Task, addr: u64) -> SysResult<Limit> {
    let r: libc::rlimit = io::read_struct(task.mem(), addr)?;
    Ok(Limit {
        cur: r.rlim_cur,
        max: r.rlim_max,
    })
}

fn write_limit(task: &Task, addr: u64, l: Limit) -> SysResult<()> {
    io::write_struct(
        task.mem(),
        addr,
        &libc::rlimit {
            rlim_cur: l.cur,
            rlim_max: l.max,
        },
    )
}

/// `prlimit64(2)` for the caller itself (pid 0 or its own pid).
pub fn prlimit64(task: &mut Task, a: &Args) -> SysResult<u64> {
    let pid = a[0] as i32;
    if pid != 0 && task.tg.pid_ns.global(pid) != Some(task.tgid) {
        return Err(Errno::ESRCH);
    }
    let res = a[1] as u32;
    let new = if a[2] != 0 {
        Some(read_limit(task, a[2])?)
    } else {
        None
    };
    let old = task.limits()?.get(res)?;
    if let Some(new) = new {
        let privileged = task.creds.has_cap(CAP_SYS_RESOURCE);
        task.limits()?.set(res, new, privileged)?;
        if res == libc::RLIMIT_CPU {
            task.watch_cpu_limit();
        }
    }
    if a[3] != 0 {
        write_limit(task, a[3], old)?;
    }
    Ok(0)
}

/// `getrlimit(2)`.
pub fn getrlimit(task: &mut Task, a: &Args) -> SysResult<u64> {
    let l = task.limits()?.get(a[0] as u32)?;
    write_limit(task, a[1], l)?;
    Ok(0)
}

/// `setrlimit(2)`.
pub fn setrlimit(task: &mut Task, a: &Args) -> SysResult<u64> {
    let new = read_limit(task, a[1])?;
    let privileged = task.creds.has_cap(CAP_SYS_RESOURCE);
    task.limits()?.set(a[0] as u32, new, privileged)?;
    if a[0] as u32 == libc::RLIMIT_CPU {
        task.watch_cpu_limit();
    }
    Ok(0)
}

/// `sched_yield(2)`.
pub fn sched_yield(_task: &mut Task, _a: &Args) -> SysResult<u64> {
    std::thread::yield_now();
    Ok(0)
}

/// `init_module(2)`, `finit_module(2)`, `delete_module(2)`: a sandbox never loads
/// or unloads kernel modules, whatever its capabilities.
pub fn module_refused(_task: &mut Task, _a: &Args) -> SysResult<u64> {
    Err(Errno::EPERM)
}

/// `prctl(2)`: the name, dumpable flag, no-new-privs and the bounding set queries.
pub fn prctl(task: &mut Task, a: &Args) -> SysResult<u64> {
    // Capabilities, securebits and no_new_privs: syscalls/creds.rs.
    if let Some(r) = super::creds::prctl_caps(task, a) {
        return r;
    }
    match a[0] as i32 {
        libc::PR_SET_NAME => {
            let mut name = io::read_cstring(task.mem(), a[1], 4096).or_else(|e| {
                // Linux copies at most 16 bytes and never fails on a long name.
                if e == Errno::ENAMETOOLONG {
                    let mut b = [0u8; 15];
                    io::read_exact(task.mem(), a[1], &mut b)?;
                    Ok(b.to_vec())
                } else {
                    Err(e)
                }
            })?;
            name.truncate(15);
            task.handle.set_comm(&name);
            if task.tid == task.tgid {
                task.tg.state()?.comm = name;
            }
            Ok(0)
        }
        libc::PR_GET_NAME => {
            let mut b = [0u8; 16];
            let comm = task.comm();
            b[..comm.len()].copy_from_slice(&comm);
            io::write_all(task.mem(), a[1], &b)?;
            Ok(0)
        }
        libc::PR_GET_DUMPABLE => Ok(task.tg.state()?.dumpable as u64),
        libc::PR_SET_DUMPABLE => match a[1] {
            0 | 1 => {
                // Only dumpable processes may be traced without CAP_SYS_PTRACE.
                task.tg.state()?.dumpable = a[1] == 1;
                Ok(0)
            }
            _ => Err(Errno::EINVAL),
        },
        libc::PR_SET_CHILD_SUBREAPER => {
            task.tg.state()?.subreaper = a[1] != 0;
            Ok(0)
        }
        libc::PR_GET_CHILD_SUBREAPER => {
            let v = task.tg.state()?.subreaper as u32;
            io::write_u32(task.mem(), a[1], v)?;
            Ok(0)
        }
        libc::PR_SET_PDEATHSIG => {
            if a[1] > 64 {
                return Err(Errno::EINVAL);
            }
            task.pdeath_signal = a[1] as i32;
            task.handle
                .pdeath_signal
                .store(a[1] as i32, std::sync::atomic::Ordering::Release);
            Ok(0)
        }
        libc::PR_GET_PDEATHSIG => {
            io::write_u32(task.mem(), a[1], task.pdeath_signal as u32)?;
            Ok(0)
        }
        crate::kernel::yama::PR_SET_PTRACER => {
            crate::kernel::yama::set_ptracer(&task.kernel, &task.tg, a[1])
        }
        libc::PR_GET_SECCOMP => crate::syscalls::seccomp::prctl_get(task),
        libc::PR_SET_SECCOMP => crate::syscalls::seccomp::prctl_set(task, a[1], a[2]),
        _ => Err(Errno::EINVAL),
    }
}

/// A `struct rusage` holding user and system time `cpu`; the other fields are not
/// kept and read zero (getrusage, wait4, waitid).
pub(super) fn rusage(cpu: (std::time::Duration, std::time::Duration)) -> [u8; 144] {
    let mut b = [0u8; 144];
    for (i, d) in [cpu.0, cpu.1].into_iter().enumerate() {
        b[i * 16..i * 16 + 8].copy_from_slice(&(d.as_secs() as i64).to_le_bytes());
        b[i * 16 + 8..i * 16 + 16].copy_from_slice(&(d.subsec_micros() as i64).to_le_bytes());
    }
    b
}

/// `getrusage(2)`: user and system time. The application's code runs in its
/// platform stub, so the host's CPU clocks of that process are the figures; they are
/// per process, so `RUSAGE_THREAD` reports the process too. The other fields read 0.
pub fn getrusage(task: &mut Task, a: &Args) -> SysResult<u64> {
    const RUSAGE_SELF: i32 = 0;
    const RUSAGE_CHILDREN: i32 = -1;
    const RUSAGE_THREAD: i32 = 1;
    let cpu = match a[0] as i32 {
        RUSAGE_SELF | RUSAGE_THREAD => task.cpu_usage(),
        RUSAGE_CHILDREN => task.tg.state()?.children_cpu,
        _ => return Err(Errno::EINVAL),
    };
    io::write_all(task.mem(), a[1], &rusage(cpu))?;
    Ok(0)
}

/// `times(2)`: clock ticks since boot; the process's and its waited-for children's
/// times as `getrusage` measures them.
pub fn times(task: &mut Task, a: &Args) -> SysResult<u64> {
    let ticks = |d: std::time::Duration| (d.as_millis() / 10) as i64;
    if a[0] != 0 {
        let own = task.cpu_usage();
        let children = task.tg.state()?.children_cpu;
        let mut b = Vec::with_capacity(32);
        for d in [own.0, own.1, children.0, children.1] {
            b.extend_from_slice(&ticks(d).to_le_bytes());
        }
        io::write_all(task.mem(), a[0], &b)?;
    }
    let up = crate::sys::host::clock_gettime(libc::CLOCK_MONOTONIC)?;
    Ok(ticks(std::time::Duration::new(
        up.tv_sec as u64,
        up.tv_nsec as u32,
    )) as u64)
}

/// `personality(2)`: returns the previous value and, unless asked `0xffffffff`,
/// sets the new one. Linux takes any value; the sentry keeps it (inherited by
/// clone and fork) without changing behaviour: the execution domain is always
/// PER_LINUX and the layout does not depend on ADDR_NO_RANDOMIZE.
pub fn personality(task: &mut Task, a: &Args) -> SysResult<u64> {
    use std::sync::atomic::Ordering;
    let want = a[0] as u32;
    let old = if want == u32::MAX {
        task.handle.personality.load(Ordering::Relaxed)
    } else {
        task.handle.personality.swap(want, Ordering::Relaxed)
    };
    Ok(old as u64)
}

/// `sched_get_priority_max(2)` / `_min`: 0 for SCHED_OTHER/BATCH/IDLE, 1..99 for RT.
pub fn sched_get_priority_max(_task: &mut Task, a: &Args) -> SysResult<u64> {
    match a[0] as i32 {
        libc::SCHED_FIFO | libc::SCHED_RR => Ok(99),
        libc::SCHED_OTHER | libc::SCHED_BATCH | libc::SCHED_IDLE => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

/// `sched_get_priority_min(2)`.
pub fn sched_get_priority_min(_task: &mut Task, a: &Args) -> SysResult<u64> {
    match a[0] as i32 {
        libc::SCHED_FIFO | libc::SCHED_RR => Ok(1),
        libc::SCHED_OTHER | libc::SCHED_BATCH | libc::SCHED_IDLE => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}
