//! `memfd_create`.

use crate::errno::{Errno, SysResult};
use crate::fs::memfd::new_memfd;
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::pipe::{install_anon, owner_of};
use crate::syscalls::Args;

const MFD_CLOEXEC: u32 = 1;
const MFD_ALLOW_SEALING: u32 = 2;
const MFD_HUGETLB: u32 = 4;
const MFD_NOEXEC_SEAL: u32 = 8;
const MFD_EXEC: u32 = 0x10;
/// Longest name (`NAME_MAX` minus the "memfd:" prefix).
const MAX_NAME: usize = 249;

/// `memfd_create(2)`.
pub fn memfd_create(task: &mut Task, a: &Args) -> SysResult<u64> {
    let flags = a[1] as u32;
    if flags & !(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL | MFD_EXEC) != 0 {
        // MFD_HUGETLB included: the sentry has no huge-page pool to back it.
        let _ = MFD_HUGETLB;
        return Err(Errno::EINVAL);
    }
    if flags & MFD_NOEXEC_SEAL != 0 && flags & MFD_EXEC != 0 {
        return Err(Errno::EINVAL);
    }
    let name = match io::read_cstring(task.mem(), a[0], MAX_NAME) {
        Err(Errno::ENAMETOOLONG) => return Err(Errno::EINVAL),
        r => r?,
    };
    // MFD_NOEXEC_SEAL implies sealing is allowed.
    let sealing = flags & (MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL) != 0;
    let imp = new_memfd(
        &task.kernel.files.inos,
        &name,
        sealing,
        owner_of(task),
        &task.kernel.mem,
    )?;
    let cloexec = if flags & MFD_CLOEXEC != 0 {
        libc::O_CLOEXEC
    } else {
        0
    };
    Ok(install_anon(task, imp, libc::O_RDWR | libc::O_LARGEFILE | cloexec)? as u64)
}
