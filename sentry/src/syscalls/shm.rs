//! `shmget`, `shmat`, `shmdt`, `shmctl`: System V shared memory over
//! [`crate::kernel::shm`].

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::CAP_IPC_LOCK;
use crate::kernel::ipc::IPC_64;
use crate::kernel::shm::{self, GetRequest, Segment, ShmTable, SHMMAX, SHMMNI, SHM_DEV};
use crate::kernel::Task;
use crate::mm::{io, Mappable, MmapRequest, VmaBacking, VmaRole, PROT_MAY_ALL};
use crate::platform::{page_round_up, PAGE_SIZE};
use crate::syscalls::Args;

const SHM_RDONLY: i32 = 0o10000;
const SHM_RND: i32 = 0o20000;
const SHM_REMAP: i32 = 0o40000;
const SHM_EXEC: i32 = 0o100000;
const SHM_LOCK: i32 = 11;
const SHM_UNLOCK: i32 = 12;
const SHM_STAT: i32 = 13;
const SHM_INFO: i32 = 14;
const SHM_STAT_ANY: i32 = 15;

/// `shmget(2)`.
pub fn shmget(task: &mut Task, a: &Args) -> SysResult<u64> {
    let req = GetRequest {
        key: a[0] as i32,
        size: a[1],
        flags: a[2] as i32,
    };
    Ok(task
        .ns
        .ipc
        .shm
        .get(&req, &task.creds, task.tgid, &task.kernel.mem)? as u64)
}

/// `shmat(2)`.
pub fn shmat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (id, mut addr, flags) = (a[0] as i32, a[1], a[2] as i32);
    let seg = task.ns.ipc.shm.segment(id)?;
    let ro = flags & SHM_RDONLY != 0;
    let want = if ro { 4 } else { 6 };
    shm::check_access(&task.creds, &seg.meta()?.0, want)?;
    let len = page_round_up(seg.size).ok_or(Errno::EINVAL)?;
    if addr != 0 {
        if !addr.is_multiple_of(PAGE_SIZE) {
            if flags & SHM_RND == 0 {
                return Err(Errno::EINVAL);
            }
            addr &= !(PAGE_SIZE - 1);
        }
        let end = addr.checked_add(len).ok_or(Errno::EINVAL)?;
        if flags & SHM_REMAP == 0 && task.mm()?.vmas().any(|v| v.start < end && v.end > addr) {
            return Err(Errno::EINVAL);
        }
    } else if flags & SHM_REMAP != 0 {
        return Err(Errno::EINVAL);
    }
    let mut prot = libc::PROT_READ;
    if !ro {
        prot |= libc::PROT_WRITE;
    }
    if flags & SHM_EXEC != 0 {
        prot |= libc::PROT_EXEC;
    }
    let file: Arc<dyn Mappable> = seg.clone();
    let req = MmapRequest {
        addr,
        len,
        prot,
        // SHM_RDONLY attaches can never become writable (Linux clears VM_MAYWRITE).
        max_prot: if ro {
            PROT_MAY_ALL & !libc::PROT_WRITE
        } else {
            PROT_MAY_ALL
        },
        shared: true,
        fixed: addr != 0,
        fixed_noreplace: false,
        backing: VmaBacking::File { file, offset: 0 },
        role: VmaRole::Plain,
        noreserve: false,
    };
    let at = task.mm()?.mmap(req)?;
    ShmTable::touch(&seg, task.tgid, true);
    Ok(at)
}

/// `shmdt(2)`: unmaps the attach that starts at `addr` (every piece of it that is
/// still where the attach put it).
pub fn shmdt(task: &mut Task, a: &Args) -> SysResult<u64> {
    let addr = a[0];
    if !addr.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    let mut mm = task.mm()?;
    let ino = match mm.vma_at(addr) {
        Some(v) if v.start == addr => match &v.backing {
            VmaBacking::File { file, offset: 0 } if file.dev_ino().0 == SHM_DEV => file.dev_ino().1,
            _ => return Err(Errno::EINVAL),
        },
        _ => return Err(Errno::EINVAL),
    };
    let pieces: Vec<(u64, u64)> = mm
        .vmas()
        .filter(|v| v.start >= addr && v.start - addr < SHMMAX)
        .filter(|v| match &v.backing {
            VmaBacking::File { file, offset } => {
                file.dev_ino() == (SHM_DEV, ino) && *offset == v.start - addr
            }
            _ => false,
        })
        .map(|v| (v.start, v.end - v.start))
        .collect();
    for (start, len) in pieces {
        mm.munmap(start, len)?;
    }
    drop(mm);
    if let Ok(seg) = task.ns.ipc.shm.segment(ino as i32) {
        ShmTable::touch(&seg, task.tgid, false);
    }
    Ok(0)
}

/// `struct shmid64_ds` as x86-64 lays it out.
fn shmid_ds(seg: &Arc<Segment>) -> SysResult<Vec<u8>> {
    let (perm, t) = *seg.meta()?;
    let mut b = Vec::with_capacity(112);
    b.extend_from_slice(&perm.to_bytes(seg.id));
    b.extend_from_slice(&seg.size.to_le_bytes());
    for v in [t.atime, t.dtime, t.ctime] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&t.cpid.to_le_bytes());
    b.extend_from_slice(&t.lpid.to_le_bytes());
    b.extend_from_slice(&(seg.attaches() as u64).to_le_bytes());
    b.extend_from_slice(&[0u8; 16]);
    Ok(b)
}

/// `shmctl(2)`.
pub fn shmctl(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (id, cmd, buf) = (a[0] as i32, a[1] as i32 & !IPC_64, a[2]);
    let table = &task.ns.ipc.shm;
    match cmd {
        libc::IPC_RMID => {
            table.remove(id, &task.creds)?;
            Ok(0)
        }
        libc::IPC_STAT | SHM_STAT | SHM_STAT_ANY => {
            let seg = if cmd == libc::IPC_STAT {
                table.segment(id)?
            } else {
                let all = table.all();
                usize::try_from(id)
                    .ok()
                    .and_then(|i| all.get(i).cloned())
                    .ok_or(Errno::EINVAL)?
            };
            if cmd != SHM_STAT_ANY {
                shm::check_access(&task.creds, &seg.meta()?.0, 4)?;
            }
            io::write_all(task.mem(), buf, &shmid_ds(&seg)?)?;
            Ok(if cmd == libc::IPC_STAT {
                0
            } else {
                seg.id as u64
            })
        }
        libc::IPC_SET => {
            let seg = table.segment(id)?;
            let mut b = [0u8; 24];
            io::read_exact(task.mem(), buf, &mut b)?;
            let mut m = seg.meta()?;
            if !shm::owns(&task.creds, &m.0) {
                return Err(Errno::EPERM);
            }
            m.0.set_from(&b);
            m.1.ctime = shm::now();
            Ok(0)
        }
        libc::IPC_INFO => {
            // struct shminfo64: shmmax, shmmin, shmmni, shmseg, shmall, 4 unused.
            let mut b = Vec::with_capacity(72);
            for v in [SHMMAX, 1, SHMMNI as u64, SHMMNI as u64, shm::SHMALL] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(&[0u8; 32]);
            io::write_all(task.mem(), buf, &b)?;
            Ok(table.all().len().saturating_sub(1) as u64)
        }
        SHM_INFO => {
            // struct shm_info: used_ids, then totals in pages (rss/swap unknown: 0).
            let all = table.all();
            let pages: u64 = all.iter().map(|s| s.size.div_ceil(PAGE_SIZE)).sum();
            let mut b = Vec::with_capacity(48);
            b.extend_from_slice(&(all.len() as i32).to_le_bytes());
            b.extend_from_slice(&[0u8; 4]);
            for v in [pages, 0, 0, 0, 0] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            io::write_all(task.mem(), buf, &b)?;
            Ok(all.len().saturating_sub(1) as u64)
        }
        SHM_LOCK | SHM_UNLOCK => {
            // The sentry never pages application memory out itself; locking only
            // needs to be allowed.
            let seg = table.segment(id)?;
            if !task.creds.has_cap(CAP_IPC_LOCK) && !shm::owns(&task.creds, &seg.meta()?.0) {
                return Err(Errno::EPERM);
            }
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}
