//! `seccomp(2)` and `prctl(PR_SET_SECCOMP / PR_GET_SECCOMP)` for applications that
//! install their own filters. The filters are run by the sentry
//! (`kernel::seccomp`); the host never sees them.

use crate::cbpf::{self, Insn};
use crate::errno::{Errno, SysResult};
use crate::kernel::creds::CAP_SYS_ADMIN;
use crate::kernel::seccomp::{self as sc, Filter, Mode, Program};
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::Args;

/// `SECCOMP_SET_MODE_STRICT`.
const SET_MODE_STRICT: u32 = 0;
/// `SECCOMP_SET_MODE_FILTER`.
const SET_MODE_FILTER: u32 = 1;
/// `SECCOMP_GET_ACTION_AVAIL`.
const GET_ACTION_AVAIL: u32 = 2;
/// `SECCOMP_GET_NOTIF_SIZES`.
const GET_NOTIF_SIZES: u32 = 3;

/// `SECCOMP_FILTER_FLAG_TSYNC`.
pub const FLAG_TSYNC: u32 = 1;
/// `SECCOMP_FILTER_FLAG_LOG`.
pub const FLAG_LOG: u32 = 2;
/// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`.
pub const FLAG_SPEC_ALLOW: u32 = 4;
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`.
pub const FLAG_NEW_LISTENER: u32 = 8;
/// `SECCOMP_FILTER_FLAG_TSYNC_ESRCH`.
pub const FLAG_TSYNC_ESRCH: u32 = 16;
/// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`.
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 32;
const FLAG_MASK: u32 = 63;

/// `seccomp(op, flags, args)`.
pub fn seccomp(task: &mut Task, a: &Args) -> SysResult<u64> {
    do_seccomp(task, a[0] as u32, a[1] as u32, a[2])
}

/// `prctl(PR_GET_SECCOMP)`.
pub fn prctl_get(task: &Task) -> SysResult<u64> {
    Ok(task.handle.seccomp.get().mode as u64)
}

/// `prctl(PR_SET_SECCOMP, mode, filter)`: the old interface, without flags.
pub fn prctl_set(task: &mut Task, mode: u64, filter: u64) -> SysResult<u64> {
    match mode {
        1 => do_seccomp(task, SET_MODE_STRICT, 0, 0),
        2 => do_seccomp(task, SET_MODE_FILTER, 0, filter),
        _ => Err(Errno::EINVAL),
    }
}

fn do_seccomp(task: &mut Task, op: u32, flags: u32, uargs: u64) -> SysResult<u64> {
    match op {
        SET_MODE_STRICT => {
            if flags != 0 || uargs != 0 {
                return Err(Errno::EINVAL);
            }
            task.handle
                .seccomp
                .update(|s| {
                    if s.mode == Mode::Filter {
                        return Err(Errno::EINVAL);
                    }
                    s.mode = Mode::Strict;
                    Ok(0)
                })
                .unwrap_or(Err(Errno::EIO))
        }
        SET_MODE_FILTER => set_filter(task, flags, uargs),
        GET_ACTION_AVAIL => {
            if flags != 0 {
                return Err(Errno::EINVAL);
            }
            let mut b = [0u8; 4];
            io::read_exact(task.mem(), uargs, &mut b)?;
            match u32::from_le_bytes(b) {
                sc::RET_KILL_PROCESS
                | sc::RET_KILL_THREAD
                | sc::RET_TRAP
                | sc::RET_ERRNO
                | sc::RET_TRACE
                | sc::RET_LOG
                | sc::RET_ALLOW => Ok(0),
                // Filters may return it (the call then fails with ENOSYS, as with no
                // listener), but no listener can be made: not offered.
                _ => Err(Errno::EOPNOTSUPP),
            }
        }
        GET_NOTIF_SIZES => {
            if flags != 0 {
                return Err(Errno::EINVAL);
            }
            // struct seccomp_notif, seccomp_notif_resp, seccomp_data.
            let mut b = [0u8; 6];
            b[0..2].copy_from_slice(&80u16.to_le_bytes());
            b[2..4].copy_from_slice(&24u16.to_le_bytes());
            b[4..6].copy_from_slice(&(cbpf::DATA_SIZE as u16).to_le_bytes());
            io::write_all(task.mem(), uargs, &b)?;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// Reads and checks a `struct sock_fprog` from the application, as Linux prepares a
/// filter: length first, then the privilege rule, then the program.
fn read_program(task: &Task, uargs: u64) -> SysResult<Vec<Insn>> {
    let mut hdr = [0u8; 16];
    io::read_exact(task.mem(), uargs, &mut hdr)?;
    let len = u16::from_le_bytes([hdr[0], hdr[1]]) as usize;
    let ptr = u64::from_le_bytes(hdr[8..16].try_into().map_err(|_| Errno::EFAULT)?);
    if len == 0 || len > cbpf::MAX_INSNS {
        return Err(Errno::EINVAL);
    }
    // Without no_new_privs a filter could make a set-user-ID program misbehave:
    // only CAP_SYS_ADMIN may install one then.
    if !task.creds.no_new_privs && !task.creds.has_cap(CAP_SYS_ADMIN) {
        return Err(Errno::EACCES);
    }
    let mut raw = vec![0u8; len * 8];
    io::read_exact(task.mem(), ptr, &mut raw)?;
    let prog: Vec<Insn> = raw
        .chunks_exact(8)
        .map(|c| Insn::from_bytes(c.try_into().unwrap_or(&[0; 8])))
        .collect();
    cbpf::check(&prog)?;
    Ok(prog)
}

fn set_filter(task: &mut Task, flags: u32, uargs: u64) -> SysResult<u64> {
    if flags & !FLAG_MASK != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & FLAG_TSYNC != 0 && flags & FLAG_NEW_LISTENER != 0 && flags & FLAG_TSYNC_ESRCH == 0 {
        return Err(Errno::EINVAL);
    }
    if flags & FLAG_WAIT_KILLABLE_RECV != 0 && flags & FLAG_NEW_LISTENER == 0 {
        return Err(Errno::EINVAL);
    }
    let prog = read_program(task, uargs)?;
    if flags & FLAG_NEW_LISTENER != 0 {
        task.kernel.warn_once(
            crate::kernel::warn_key::SECCOMP_LISTENER,
            "seccomp: SECCOMP_FILTER_FLAG_NEW_LISTENER (user notification) is not \
             implemented: returning ENOSYS",
        );
        return Err(Errno::ENOSYS);
    }
    let tsync = flags & FLAG_TSYNC != 0;
    // Other threads are checked and changed under the process state lock, so none
    // is added or leaves half way.
    let st = task.tg.state()?;
    let mine = task.handle.seccomp.get();
    if mine.mode == Mode::Strict {
        return Err(Errno::EINVAL);
    }
    if tsync {
        for (tid, t) in st.threads.iter() {
            if std::sync::Arc::ptr_eq(t, &task.handle) {
                continue;
            }
            let other = t.seccomp.get();
            let ok = match other.mode {
                Mode::Disabled => true,
                Mode::Filter => match &other.filter {
                    None => true,
                    Some(f) => f.is_ancestor_of(&mine.filter),
                },
                Mode::Strict => false,
            };
            if !ok {
                if flags & FLAG_TSYNC_ESRCH != 0 {
                    return Err(Errno::ESRCH);
                }
                // Linux returns the id of the thread that cannot follow.
                return Ok(*tid as u64);
            }
        }
    }
    let filter = Filter::attach(Program::Bpf(prog), flags & FLAG_LOG != 0, mine.filter)?;
    task.handle.seccomp.update(|s| {
        s.mode = Mode::Filter;
        s.filter = Some(filter.clone());
    });
    if tsync {
        let nnp = task.creds.no_new_privs;
        for t in st.threads.values() {
            if std::sync::Arc::ptr_eq(t, &task.handle) {
                continue;
            }
            t.seccomp.update(|s| {
                s.mode = Mode::Filter;
                s.filter = Some(filter.clone());
                s.take_no_new_privs |= nnp;
            });
        }
    }
    Ok(0)
}
