//! Memory syscalls: brk, mmap, munmap, mprotect, mremap, madvise. The bookkeeping
//! is in `crate::mm`; this file decodes arguments and checks file access.

use crate::errno::{Errno, SysResult};
use crate::kernel::Task;
use crate::mm::{MmapRequest, VmaBacking, VmaRole};
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
        let m = file.imp().mappable().ok_or(Errno::ENODEV)?;
        VmaBacking::File {
            file: m,
            offset: off,
        }
    };
    let req = MmapRequest {
        addr,
        len,
        prot,
        shared,
        fixed: flags & libc::MAP_FIXED != 0,
        fixed_noreplace: flags & libc::MAP_FIXED_NOREPLACE != 0,
        backing,
        role: VmaRole::Plain,
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
