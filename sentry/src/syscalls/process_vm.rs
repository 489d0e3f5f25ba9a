//! `process_vm_readv(2)` and `process_vm_writev(2)`: copies between the caller's
//! memory and another process's of the sandbox, with the access check of ptrace
//! (strace and debuggers read a stopped tracee this way).

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::kernel::Task;
use crate::platform::AddressSpace;
use crate::syscalls::fs::read_iovecs;
use crate::syscalls::Args;

/// Bytes moved per step through the sentry's buffer.
const CHUNK: usize = 64 * 1024;

/// The memory of the process with thread `pid`, if the caller may read and write
/// it (its own, or one it could ptrace-attach to).
fn target_space(task: &Task, pid: i32) -> SysResult<Arc<dyn AddressSpace>> {
    let pid = task.pid_global(pid)?;
    let (_, tg) = task.kernel.registry()?.thread(pid).ok_or(Errno::ESRCH)?;
    if tg.tgid == task.tgid {
        return Ok(task.space().clone());
    }
    crate::syscalls::ptrace::may_attach(task, &tg)?;
    let mm = tg
        .state()?
        .view
        .mm
        .as_ref()
        .and_then(|w| w.upgrade())
        .ok_or(Errno::ESRCH)?;
    let space = mm.lock().map_err(|_| Errno::EIO)?.space().clone();
    Ok(space)
}

/// Moves bytes from the `from` segments in `src` to the `to` segments in `dst`;
/// returns the count, or `EFAULT` if nothing could be moved.
fn copy(
    src: &dyn AddressSpace,
    from: &[(u64, usize)],
    dst: &dyn AddressSpace,
    to: &[(u64, usize)],
) -> SysResult<u64> {
    let mut total = 0u64;
    let mut buf = vec![0u8; CHUNK];
    let mut to_iter = to.iter().copied().filter(|s| s.1 > 0);
    let mut cur_to = to_iter.next();
    'outer: for &(mut addr, mut len) in from.iter().filter(|s| s.1 > 0) {
        while len > 0 {
            let Some((taddr, tlen)) = cur_to else {
                break 'outer;
            };
            let n = len.min(tlen).min(CHUNK);
            let got = match src.read(addr, &mut buf[..n]) {
                Ok(g) if g > 0 => g,
                _ => break 'outer,
            };
            let put = match dst.write(taddr, &buf[..got]) {
                Ok(p) if p > 0 => p,
                _ => break 'outer,
            };
            total += put as u64;
            addr += put as u64;
            len -= put;
            cur_to = if put == tlen {
                to_iter.next()
            } else {
                Some((taddr + put as u64, tlen - put))
            };
            if put < n {
                break 'outer;
            }
        }
    }
    if total == 0 && from.iter().any(|s| s.1 > 0) && to.iter().any(|s| s.1 > 0) {
        return Err(Errno::EFAULT);
    }
    Ok(total)
}

fn process_vm(task: &mut Task, a: &Args, write: bool) -> SysResult<u64> {
    if a[5] != 0 {
        return Err(Errno::EINVAL);
    }
    let local = read_iovecs(task, a[1], a[2])?;
    let remote = read_iovecs(task, a[3], a[4])?;
    let space = target_space(task, a[0] as i32)?;
    if write {
        copy(task.mem(), &local, &*space, &remote)
    } else {
        copy(&*space, &remote, task.mem(), &local)
    }
}

/// `process_vm_readv(2)`.
pub fn process_vm_readv(task: &mut Task, a: &Args) -> SysResult<u64> {
    process_vm(task, a, false)
}

/// `process_vm_writev(2)`.
pub fn process_vm_writev(task: &mut Task, a: &Args) -> SysResult<u64> {
    process_vm(task, a, true)
}
