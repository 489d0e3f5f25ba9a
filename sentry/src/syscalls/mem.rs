//! Memory syscalls: brk, mmap, munmap, mprotect, mremap, madvise. The bookkeeping
//! is in `crate::mm`; this file decodes arguments and checks file access.

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::CAP_IPC_LOCK;
use crate::kernel::Task;
use crate::mm::{MmapRequest, VmaBacking, VmaRole, PROT_MAY_ALL};
use crate::platform::PAGE_SIZE;
use crate::syscalls::{file_arg, Args};

const PROT_ALL: i32 = libc::PROT_READ
    | libc::PROT_WRITE
    | libc::PROT_EXEC
    | libc::PROT_GROWSDOWN
    | libc::PROT_GROWSUP;
const MAP_SHARED_VALIDATE: i32 = 3;
const MAP_TYPE: i32 = 0xf;
/// Flags MAP_SHARED_VALIDATE knows; anything else there is `EOPNOTSUPP`.
const MAP_KNOWN: i32 = libc::MAP_SHARED
    | libc::MAP_PRIVATE
    | libc::MAP_FIXED
    | libc::MAP_ANONYMOUS
    | libc::MAP_32BIT
    | libc::MAP_GROWSDOWN
    | libc::MAP_DENYWRITE
    | libc::MAP_EXECUTABLE
    | libc::MAP_LOCKED
    | libc::MAP_NORESERVE
    | libc::MAP_POPULATE
    | libc::MAP_NONBLOCK
    | libc::MAP_STACK
    | libc::MAP_HUGETLB
    | libc::MAP_FIXED_NOREPLACE
    | libc::MAP_SYNC;

/// `brk(2)`: returns the new (or unchanged) break; never fails.
pub fn brk(task: &mut Task, a: &Args) -> SysResult<u64> {
    let cur = task.mm()?.brk_current();
    if a[0] > cur && check_as_limit(task, a[0] - cur).is_err() {
        return Ok(cur);
    }
    Ok(task.mm()?.brk(a[0]))
}

/// `mmap(2)`.
pub fn mmap(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (addr, len, prot, flags, fd, off) =
        (a[0], a[1], a[2] as i32, a[3] as i32, a[4] as i32, a[5]);
    if !off.is_multiple_of(PAGE_SIZE) || prot & !PROT_ALL != 0 || len == 0 {
        return Err(Errno::EINVAL);
    }
    let shared = match flags & MAP_TYPE {
        libc::MAP_SHARED => true,
        libc::MAP_PRIVATE => false,
        MAP_SHARED_VALIDATE => {
            if flags & !MAP_KNOWN & !MAP_TYPE != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            true
        }
        _ => return Err(Errno::EINVAL),
    };
    let prot = prot & !(libc::PROT_GROWSDOWN | libc::PROT_GROWSUP);
    let mut max_prot = PROT_MAY_ALL;
    let backing = if flags & libc::MAP_ANONYMOUS != 0 {
        VmaBacking::Anonymous
    } else {
        let file = file_arg(task, fd as u64)?;
        if file.is_path() {
            return Err(Errno::EBADF);
        }
        let acc = file.flags() & libc::O_ACCMODE;
        if acc == libc::O_WRONLY {
            return Err(Errno::EACCES);
        }
        if shared && prot & libc::PROT_WRITE != 0 && acc != libc::O_RDWR {
            return Err(Errno::EACCES);
        }
        // Linux's VM_MAYWRITE: a shared mapping of a file not open for writing can
        // never be made writable (mprotect, and mremap keeps it), nor one of a
        // memfd sealed against writes.
        if shared && acc != libc::O_RDWR {
            max_prot &= !libc::PROT_WRITE;
        }
        if shared {
            if let Some(m) = crate::fs::memfd::memfd_of(&file) {
                if m.get_seals() & crate::fs::memfd::F_SEAL_WRITE != 0 {
                    if prot & libc::PROT_WRITE != 0 {
                        return Err(Errno::EPERM);
                    }
                    max_prot &= !libc::PROT_WRITE;
                }
            }
        }
        // VM_MAYEXEC: nothing of a noexec mount is ever executable.
        if file
            .dentry()
            .is_some_and(|d| d.mount_flags() & libc::MS_NOEXEC != 0)
        {
            if prot & libc::PROT_EXEC != 0 {
                return Err(Errno::EPERM);
            }
            max_prot &= !libc::PROT_EXEC;
        }
        let m = file.imp().map_source()?;
        VmaBacking::File {
            file: m,
            offset: off,
        }
    };
    let req = MmapRequest {
        addr,
        len,
        prot,
        max_prot,
        shared,
        fixed: flags & libc::MAP_FIXED != 0,
        fixed_noreplace: flags & libc::MAP_FIXED_NOREPLACE != 0,
        backing,
        role: VmaRole::Plain,
        noreserve: flags & libc::MAP_NORESERVE != 0,
    };
    check_as_limit(task, len)?;
    task.mm()?.mmap(req)
}

/// RLIMIT_AS: the address space may not grow past the limit (`ENOMEM`).
fn check_as_limit(task: &Task, grow: u64) -> SysResult<()> {
    let limit = task.limits()?.soft(libc::RLIMIT_AS);
    if limit == u64::MAX {
        return Ok(());
    }
    let used: u64 = task.mm()?.vmas().map(|v| v.end - v.start).sum();
    if used.saturating_add(grow) > limit {
        return Err(Errno::ENOMEM);
    }
    Ok(())
}

/// `munmap(2)`.
pub fn munmap(task: &mut Task, a: &Args) -> SysResult<u64> {
    task.mm()?.munmap(a[0], a[1])?;
    Ok(0)
}

/// `mprotect(2)`.
pub fn mprotect(task: &mut Task, a: &Args) -> SysResult<u64> {
    task.mm()?.mprotect(a[0], a[1], a[2] as i32)?;
    Ok(0)
}

/// `mremap(2)`.
pub fn mremap(task: &mut Task, a: &Args) -> SysResult<u64> {
    if a[2] > a[1] {
        check_as_limit(task, a[2] - a[1])?;
    }
    task.mm()?.mremap(a[0], a[1], a[2], a[3], a[4])
}

/// `msync(2)`.
pub fn msync(task: &mut Task, a: &Args) -> SysResult<u64> {
    task.mm()?.msync(a[0], a[1], a[2] as i32)?;
    Ok(0)
}

/// `madvise(2)`.
pub fn madvise(task: &mut Task, a: &Args) -> SysResult<u64> {
    task.mm()?.madvise(a[0], a[1], a[2] as i32)?;
    Ok(0)
}

const MLOCK_ONFAULT: u64 = 1;
const MCL_CURRENT: u64 = 1;
const MCL_FUTURE: u64 = 2;
const MCL_ONFAULT: u64 = 4;

/// The `RLIMIT_MEMLOCK` budget in bytes, or `None` with `CAP_IPC_LOCK`; `EPERM` when
/// the limit is zero and the caller may not lock at all.
fn lock_budget(task: &Task) -> SysResult<Option<u64>> {
    if task.creds.has_cap(CAP_IPC_LOCK) {
        return Ok(None);
    }
    let limit = task.limits()?.soft(libc::RLIMIT_MEMLOCK);
    if limit == 0 {
        return Err(Errno::EPERM);
    }
    Ok(Some(limit))
}

/// `[start, end)` of an `mlock`-family range: the start rounded down to its page,
/// the length up with it.
fn lock_range(addr: u64, len: u64) -> SysResult<(u64, u64)> {
    let start = addr & !(PAGE_SIZE - 1);
    let len = (addr - start)
        .checked_add(len)
        .and_then(crate::platform::page_round_up)
        .ok_or(Errno::ENOMEM)?;
    Ok((start, start.checked_add(len).ok_or(Errno::ENOMEM)?))
}

fn lock(task: &mut Task, addr: u64, len: u64) -> SysResult<u64> {
    let budget = lock_budget(task)?;
    let (start, end) = lock_range(addr, len)?;
    let mut mm = task.mm()?;
    if let Some(limit) = budget {
        // Pages already locked in the range do not count twice.
        let after = mm.locked_bytes(None) + (end - start) - mm.locked_bytes(Some((start, end)));
        if after > limit {
            return Err(Errno::ENOMEM);
        }
    }
    mm.set_locked(start, end, true)?;
    Ok(0)
}

/// `mlock(2)`.
pub fn mlock(task: &mut Task, a: &Args) -> SysResult<u64> {
    lock(task, a[0], a[1])
}

/// `mlock2(2)`: `MLOCK_ONFAULT` changes nothing here (nothing is ever paged out).
pub fn mlock2(task: &mut Task, a: &Args) -> SysResult<u64> {
    if a[2] & !MLOCK_ONFAULT != 0 {
        return Err(Errno::EINVAL);
    }
    lock(task, a[0], a[1])
}

/// `munlock(2)`.
pub fn munlock(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (start, end) = lock_range(a[0], a[1])?;
    task.mm()?.set_locked(start, end, false)?;
    Ok(0)
}

/// `mlockall(2)`.
pub fn mlockall(task: &mut Task, a: &Args) -> SysResult<u64> {
    let flags = a[0];
    let known = MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT;
    if flags & known == 0 || flags == MCL_ONFAULT || flags & !known != 0 {
        return Err(Errno::EINVAL);
    }
    let budget = lock_budget(task)?;
    let mut mm = task.mm()?;
    let current = flags & MCL_CURRENT != 0;
    if current && budget.is_some_and(|limit| mm.mapped_bytes() > limit) {
        return Err(Errno::ENOMEM);
    }
    mm.set_all_locked(true, current, flags & MCL_FUTURE != 0);
    Ok(0)
}

/// `munlockall(2)`.
pub fn munlockall(task: &mut Task, _a: &Args) -> SysResult<u64> {
    task.mm()?.set_all_locked(false, true, false);
    Ok(0)
}
