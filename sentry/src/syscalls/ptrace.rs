//! `ptrace(2)` between tasks of the sandbox (see [`crate::kernel::ptrace`]): attach,
//! resume, and the reads and writes of a stopped tracee's registers, memory and
//! siginfo.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::CAP_SYS_PTRACE;
use crate::kernel::process::{self, ThreadGroup, ThreadHandle};
use crate::kernel::ptrace::{self as pt, Resume, Stop, StopKind};
use crate::kernel::signals::{self, SigInfo};
use crate::kernel::Task;
use crate::mm::io;
use crate::platform::Regs;
use crate::syscalls::Args;

const TRACEME: u64 = 0;
const PEEKTEXT: u64 = 1;
const PEEKDATA: u64 = 2;
const PEEKUSR: u64 = 3;
const POKETEXT: u64 = 4;
const POKEDATA: u64 = 5;
const POKEUSR: u64 = 6;
const CONT: u64 = 7;
const KILL: u64 = 8;
const SINGLESTEP: u64 = 9;
const GETREGS: u64 = 12;
const SETREGS: u64 = 13;
const GETFPREGS: u64 = 14;
const SETFPREGS: u64 = 15;
const ATTACH: u64 = 16;
const DETACH: u64 = 17;
const SYSCALL: u64 = 24;
const SETOPTIONS: u64 = 0x4200;
const GETEVENTMSG: u64 = 0x4201;
const GETSIGINFO: u64 = 0x4202;
const SETSIGINFO: u64 = 0x4203;
const GETREGSET: u64 = 0x4204;
const SETREGSET: u64 = 0x4205;
const SEIZE: u64 = 0x4206;
const INTERRUPT: u64 = 0x4207;
const LISTEN: u64 = 0x4208;
const GETSIGMASK: u64 = 0x420a;
const SETSIGMASK: u64 = 0x420b;
const GET_SYSCALL_INFO: u64 = 0x420e;

/// `NT_PRSTATUS`: the general registers.
const NT_PRSTATUS: u64 = 1;
/// `NT_PRFPREG`: the FXSAVE area.
const NT_PRFPREG: u64 = 2;

/// Words in `struct user_regs_struct`.
const NREGS: usize = 27;
/// `sizeof(struct user)` on x86-64.
const USER_SIZE: u64 = 912;
/// `offsetof(struct user, u_debugreg)`.
const DEBUGREG_OFFSET: u64 = 848;
/// Size of the FXSAVE area (`struct user_fpregs_struct`).
const FPREGS_SIZE: usize = 512;
/// The eflags bits a tracer may change (Linux's `FLAG_MASK`).
const FLAG_MASK: u64 = 0x50dd5;
/// `AUDIT_ARCH_X86_64`.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// Highest user address (`TASK_SIZE_MAX`).
use abi::mem::TASK_SIZE;

/// The registers as `struct user_regs_struct`'s words, in order.
fn regs_to_words(r: &Regs) -> [u64; NREGS] {
    [
        r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx,
        r.rsi, r.rdi, r.orig_rax, r.rip, r.cs, r.eflags, r.rsp, r.ss, r.fs_base, r.gs_base, r.ds,
        r.es, r.fs, r.gs,
    ]
}

/// Writes word `i` of `struct user_regs_struct` as a tracer may: selectors stay,
/// eflags changes only in the user bits, bases must be user addresses.
fn put_reg(r: &mut Regs, i: usize, v: u64) -> SysResult<()> {
    let slot = match i {
        0 => &mut r.r15,
        1 => &mut r.r14,
        2 => &mut r.r13,
        3 => &mut r.r12,
        4 => &mut r.rbp,
        5 => &mut r.rbx,
        6 => &mut r.r11,
        7 => &mut r.r10,
        8 => &mut r.r9,
        9 => &mut r.r8,
        10 => &mut r.rax,
        11 => &mut r.rcx,
        12 => &mut r.rdx,
        13 => &mut r.rsi,
        14 => &mut r.rdi,
        15 => &mut r.orig_rax,
        16 => &mut r.rip,
        18 => {
            r.eflags = (r.eflags & !FLAG_MASK) | (v & FLAG_MASK);
            return Ok(());
        }
        19 => &mut r.rsp,
        21 | 22 => {
            if v >= TASK_SIZE {
                return Err(Errno::EIO);
            }
            if i == 21 {
                &mut r.fs_base
            } else {
                &mut r.gs_base
            }
        }
        // Segment selectors: the sandbox's code always runs in the flat 64-bit
        // segments, so a write of any other selector is refused.
        17 | 20 | 23..=26 => {
            let cur = regs_to_words(r)[i];
            if v != cur {
                return Err(Errno::EIO);
            }
            return Ok(());
        }
        _ => return Err(Errno::EIO),
    };
    *slot = v;
    Ok(())
}

fn regs_from_bytes(cur: &Regs, b: &[u8]) -> SysResult<Regs> {
    let mut r = *cur;
    for (i, w) in b.chunks_exact(8).enumerate().take(NREGS) {
        let v = u64::from_le_bytes(w.try_into().map_err(|_| Errno::EIO)?);
        // Selectors a tracer writes back unchanged (or zero) are fine.
        if matches!(i, 17 | 20 | 23..=26) {
            continue;
        }
        put_reg(&mut r, i, v)?;
    }
    Ok(r)
}

fn regs_bytes(r: &Regs) -> Vec<u8> {
    regs_to_words(r)
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}

/// `ptrace(2)`.
pub fn ptrace(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (req, pid, addr, data) = (a[0], a[1] as i32, a[2], a[3]);
    if req == TRACEME {
        return traceme(task);
    }
    let pid = task.pid_global(pid)?;
    let (h, tg) = task.kernel.registry()?.thread(pid).ok_or(Errno::ESRCH)?;
    if req == ATTACH || req == SEIZE {
        return attach(task, &h, &tg, req == SEIZE, addr, data);
    }
    // Every other request is for one of the caller's tracees.
    if !h.traced.load(Ordering::Acquire)
        || h.ptrace.lock().map_err(|_| Errno::EIO)?.tracer != task.tgid
    {
        return Err(Errno::ESRCH);
    }
    match req {
        KILL => {
            let _ = process::send_to_thread(&h, &tg, SigInfo::kernel(libc::SIGKILL));
            Ok(0)
        }
        INTERRUPT => {
            let mut t = h.ptrace.lock().map_err(|_| Errno::EIO)?;
            if !t.seized {
                return Err(Errno::EIO);
            }
            t.interrupt = true;
            drop(t);
            h.kick();
            Ok(0)
        }
        _ => stopped_request(task, &h, req, addr, data),
    }
}

/// `PTRACE_TRACEME`: the parent becomes the tracer.
fn traceme(task: &mut Task) -> SysResult<u64> {
    let parent = task.ppid();
    let ptg = task.kernel.registry()?.group(parent).ok_or(Errno::EPERM)?;
    let parent_cap = {
        let st = ptg.state()?;
        if st.zombie.is_some() {
            return Err(Errno::EPERM);
        }
        st.view.creds.has_cap(CAP_SYS_PTRACE)
    };
    crate::kernel::yama::may_traceme(&task.kernel, parent_cap)?;
    pt::link(&ptg, &task.handle, &task.tg, false, 0)?;
    Ok(0)
}

/// Whether `task` may attach to process `tg` (Linux's `__ptrace_may_access` with
/// real credentials: same ids and dumpable, or CAP_SYS_PTRACE; then Yama's scope).
pub(super) fn may_attach(task: &Task, tg: &Arc<ThreadGroup>) -> SysResult<()> {
    let cap = task.creds.has_cap(CAP_SYS_PTRACE);
    crate::kernel::yama::may_attach(&task.kernel, task.tgid, cap, tg)?;
    if cap {
        return Ok(());
    }
    let st = tg.state()?;
    let ids = st.view.ids;
    let c = &task.creds;
    let same_uid = [ids[0], ids[1], ids[2]].iter().all(|&u| u == c.uid);
    let same_gid = [ids[4], ids[5], ids[6]].iter().all(|&g| g == c.gid);
    if !same_uid || !same_gid || !st.dumpable {
        return Err(Errno::EPERM);
    }
    Ok(())
}

/// `PTRACE_ATTACH` and `PTRACE_SEIZE`.
fn attach(
    task: &mut Task,
    h: &Arc<ThreadHandle>,
    tg: &Arc<ThreadGroup>,
    seize: bool,
    addr: u64,
    data: u64,
) -> SysResult<u64> {
    if seize && (addr != 0 || data & !(pt::O_MASK as u64) != 0) {
        return Err(Errno::EIO);
    }
    if tg.tgid == task.tgid {
        return Err(Errno::EPERM);
    }
    {
        let st = tg.state()?;
        if st.zombie.is_some() || st.group_exit.is_some() {
            return Err(Errno::EPERM);
        }
    }
    may_attach(task, tg)?;
    let options = if seize { data as u32 } else { 0 };
    pt::link(&task.tg, h, tg, seize, options)?;
    if !seize {
        process::send_to_thread(h, tg, SigInfo::kernel(libc::SIGSTOP))?;
    }
    if tg.state()?.stopped.is_some() {
        // Already stopped: it turns its group stop into a ptrace-stop.
        if let Ok(mut t) = h.ptrace.lock() {
            t.interrupt = true;
        }
        h.kick();
    }
    Ok(0)
}

/// The stop `h` is in, or `ESRCH`.
fn with_stop<T>(h: &ThreadHandle, f: impl FnOnce(&mut Stop) -> SysResult<T>) -> SysResult<T> {
    let mut t = h.ptrace.lock().map_err(|_| Errno::EIO)?;
    match t.stop.as_mut() {
        Some(s) if s.resume.is_none() => f(s),
        _ => Err(Errno::ESRCH),
    }
}

fn valid_signal(data: u64) -> SysResult<i32> {
    if data > signals::MAX_SIGNAL as u64 {
        return Err(Errno::EIO);
    }
    Ok(data as i32)
}

/// Resumes a stopped tracee.
fn resume(h: &ThreadHandle, how: Resume, sig: i32) -> SysResult<u64> {
    with_stop(h, |s| {
        s.resume = Some((how, sig));
        Ok(())
    })?;
    h.waker.wake();
    Ok(0)
}

fn stopped_request(
    task: &mut Task,
    h: &Arc<ThreadHandle>,
    req: u64,
    addr: u64,
    data: u64,
) -> SysResult<u64> {
    match req {
        PEEKTEXT | PEEKDATA => {
            let space = with_stop(h, |s| Ok(s.space.clone()))?;
            let v = io::read_u64(&*space, addr).map_err(|_| Errno::EIO)?;
            io::write_u64(task.mem(), data, v)?;
            Ok(0)
        }
        POKETEXT | POKEDATA => {
            let space = with_stop(h, |s| Ok(s.space.clone()))?;
            if io::write_u64(&*space, addr, data).is_ok() {
                return Ok(0);
            }
            forced_poke(task, h, addr, data)
        }
        PEEKUSR => {
            if addr & 7 != 0 || addr >= USER_SIZE {
                return Err(Errno::EIO);
            }
            let regs = with_stop(h, |s| Ok(s.regs))?;
            let i = (addr / 8) as usize;
            // Debug registers read zero: the sandbox sets no hardware breakpoints.
            let v = if i < NREGS {
                regs_to_words(&regs)[i]
            } else {
                0
            };
            io::write_u64(task.mem(), data, v)?;
            Ok(0)
        }
        POKEUSR => {
            if addr & 7 != 0 || addr >= USER_SIZE {
                return Err(Errno::EIO);
            }
            let i = (addr / 8) as usize;
            // No hardware breakpoints or watchpoints: the debug registers stay zero
            // (a zero write is honoured as is). EIO, as Linux refuses a value it
            // cannot take, rather than a breakpoint that never fires. No errno
            // makes gdb fall back by itself: it fails the resume with "Couldn't
            // write debug register"; `set can-use-hw-watchpoints 0` gives software
            // watchpoints, which work.
            let refused = i >= NREGS && addr >= DEBUGREG_OFFSET && data != 0;
            with_stop(h, |s| {
                if i < NREGS {
                    put_reg(&mut s.regs, i, data)
                } else if refused {
                    Err(Errno::EIO)
                } else {
                    Ok(())
                }
            })
            .inspect_err(|_| {
                if refused {
                    task.kernel.warn_once(
                        crate::kernel::warn_key::PTRACE_DEBUGREG,
                        "ptrace: hardware breakpoints and watchpoints (PTRACE_POKEUSER of \
                         the debug registers) are not supported in the sandbox (EIO); in \
                         gdb, `set can-use-hw-watchpoints 0` gives software watchpoints",
                    );
                }
            })?;
            Ok(0)
        }
        GETREGS => {
            let b = with_stop(h, |s| Ok(regs_bytes(&s.regs)))?;
            io::write_all(task.mem(), data, &b)?;
            Ok(0)
        }
        SETREGS => {
            let mut b = vec![0u8; NREGS * 8];
            io::read_exact(task.mem(), data, &mut b)?;
            with_stop(h, |s| {
                s.regs = regs_from_bytes(&s.regs, &b)?;
                Ok(())
            })?;
            Ok(0)
        }
        GETFPREGS => {
            let mut b = with_stop(h, |s| Ok(s.fp.clone()))?;
            b.resize(FPREGS_SIZE, 0);
            io::write_all(task.mem(), data, &b[..FPREGS_SIZE])?;
            Ok(0)
        }
        SETFPREGS => {
            let mut b = vec![0u8; FPREGS_SIZE];
            io::read_exact(task.mem(), data, &mut b)?;
            set_fp(h, &b)?;
            Ok(0)
        }
        GETREGSET | SETREGSET => regset(task, h, req == SETREGSET, addr, data),
        GETSIGINFO => {
            let info = with_stop(h, |s| s.siginfo.ok_or(Errno::EINVAL))?;
            io::write_all(task.mem(), data, &info.to_bytes())?;
            Ok(0)
        }
        SETSIGINFO => {
            let mut b = [0u8; abi::signal::SIGINFO_SIZE];
            io::read_exact(task.mem(), data, &mut b)?;
            with_stop(h, |s| {
                if s.siginfo.is_none() {
                    return Err(Errno::EINVAL);
                }
                s.siginfo = Some(SigInfo::from_bytes(&b));
                Ok(())
            })?;
            Ok(0)
        }
        GETSIGMASK | SETSIGMASK => {
            if addr != 8 {
                return Err(Errno::EINVAL);
            }
            with_stop(h, |_| Ok(()))?;
            if req == GETSIGMASK {
                io::write_u64(task.mem(), data, h.mask.load(Ordering::Acquire))?;
            } else {
                let m = io::read_u64(task.mem(), data)?;
                h.mask.store(m & !signals::UNBLOCKABLE, Ordering::Release);
            }
            Ok(0)
        }
        SETOPTIONS => {
            if data & !(pt::O_MASK as u64) != 0 {
                return Err(Errno::EINVAL);
            }
            with_stop(h, |_| Ok(()))?;
            h.ptrace.lock().map_err(|_| Errno::EIO)?.options = data as u32;
            Ok(0)
        }
        GETEVENTMSG => {
            with_stop(h, |_| Ok(()))?;
            let msg = h.ptrace.lock().map_err(|_| Errno::EIO)?.event_msg;
            io::write_u64(task.mem(), data, msg)?;
            Ok(0)
        }
        GET_SYSCALL_INFO => syscall_info(task, h, addr, data),
        CONT => resume(h, Resume::Cont, valid_signal(data)?),
        SYSCALL => resume(h, Resume::Syscall, valid_signal(data)?),
        SINGLESTEP => resume(h, Resume::Step, valid_signal(data)?),
        LISTEN => {
            let seized = h.ptrace.lock().map_err(|_| Errno::EIO)?.seized;
            with_stop(h, |s| {
                let event_stop = s
                    .siginfo
                    .is_some_and(|i| (i.code >> 8) as u32 == pt::EVENT_STOP);
                if !seized || !event_stop {
                    return Err(Errno::EIO);
                }
                s.resume = Some((Resume::Listen, 0));
                Ok(())
            })?;
            h.waker.wake();
            Ok(0)
        }
        DETACH => {
            let sig = valid_signal(data)?;
            with_stop(h, |_| Ok(()))?;
            pt::unlink(&task.kernel, h, sig, false);
            Ok(0)
        }
        _ => Err(Errno::EIO),
    }
}

/// A write into memory the tracee cannot write (a breakpoint in its text), made by
/// the tracee's own thread as a debugger's write is on Linux (see
/// [`pt::PokeRequest`]); the caller waits for it.
fn forced_poke(task: &Task, h: &ThreadHandle, addr: u64, data: u64) -> SysResult<u64> {
    pt::forced_poke_by(&task.handle, &task.tg, h, addr, data)
}

fn set_fp(h: &ThreadHandle, b: &[u8]) -> SysResult<()> {
    with_stop(h, |s| {
        if s.fp.len() < b.len() {
            s.fp.resize(b.len(), 0);
        }
        s.fp[..b.len()].copy_from_slice(b);
        s.fp_dirty = true;
        Ok(())
    })
}

/// `PTRACE_GETREGSET` / `PTRACE_SETREGSET` with an iovec at `data`.
fn regset(task: &mut Task, h: &ThreadHandle, set: bool, kind: u64, data: u64) -> SysResult<u64> {
    let base = io::read_u64(task.mem(), data)?;
    let len = io::read_u64(task.mem(), data + 8)?;
    let size = match kind {
        NT_PRSTATUS => NREGS * 8,
        NT_PRFPREG => FPREGS_SIZE,
        _ => return Err(Errno::EINVAL),
    };
    let n = (len as usize).min(size);
    if set {
        let mut b = vec![0u8; n];
        io::read_exact(task.mem(), base, &mut b)?;
        if kind == NT_PRSTATUS {
            with_stop(h, |s| {
                let mut full = regs_bytes(&s.regs);
                full[..n].copy_from_slice(&b);
                s.regs = regs_from_bytes(&s.regs, &full)?;
                Ok(())
            })?;
        } else {
            set_fp(h, &b)?;
        }
    } else {
        let mut b = with_stop(h, |s| {
            Ok(if kind == NT_PRSTATUS {
                regs_bytes(&s.regs)
            } else {
                s.fp.clone()
            })
        })?;
        b.resize(size, 0);
        io::write_all(task.mem(), base, &b[..n])?;
    }
    io::write_u64(task.mem(), data + 8, n as u64)?;
    Ok(0)
}

/// `PTRACE_GET_SYSCALL_INFO`: `struct ptrace_syscall_info` for the stop, cut to
/// `size` bytes; returns the full size.
fn syscall_info(task: &mut Task, h: &ThreadHandle, size: u64, data: u64) -> SysResult<u64> {
    let (kind, regs) = with_stop(h, |s| Ok((s.kind, s.regs)))?;
    let mut b = [0u8; 80];
    b[4..8].copy_from_slice(&AUDIT_ARCH_X86_64.to_le_bytes());
    b[8..16].copy_from_slice(&regs.rip.to_le_bytes());
    b[16..24].copy_from_slice(&regs.rsp.to_le_bytes());
    let len = match kind {
        StopKind::SyscallEntry => {
            b[0] = 1;
            b[24..32].copy_from_slice(&regs.orig_rax.to_le_bytes());
            let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9];
            for (i, v) in args.iter().enumerate() {
                b[32 + i * 8..40 + i * 8].copy_from_slice(&v.to_le_bytes());
            }
            80
        }
        StopKind::SyscallExit => {
            b[0] = 2;
            b[24..32].copy_from_slice(&regs.rax.to_le_bytes());
            // IS_ERR_VALUE: the last 4095 values are errors.
            b[32] = (regs.rax >= (-4095i64) as u64) as u8;
            33
        }
        _ => 24,
    };
    let n = (size as usize).min(len);
    io::write_all(task.mem(), data, &b[..n])?;
    Ok(len as u64)
}
