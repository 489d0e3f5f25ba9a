//! Host-side pieces every stub-process backend shares: copying application memory
//! and placing stub threads on CPUs.

use std::fs::File;
use std::io::IoSliceMut;
use std::os::unix::fs::FileExt;

use crate::errno::{Errno, SysResult};

/// Copies from application memory in process `pid`: `process_vm_readv` first, then
/// `/proc/<pid>/mem` (`mem`) for what that refuses (PROT_NONE pages). Returns the
/// bytes copied, short at the first unmapped page; `EFAULT` if none.
pub fn read_process(pid: i32, mem: &File, addr: u64, buf: &mut [u8]) -> SysResult<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    let len = buf.len().min((u64::MAX - addr) as usize);
    let local = [IoSliceMut::new(&mut buf[..len])];
    let remote = [libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    }];
    // SAFETY: `local` describes writable memory we own; `remote` is only an address in
    // the other process, checked by the kernel.
    let n = unsafe { libc::process_vm_readv(pid, local.as_ptr().cast(), 1, remote.as_ptr(), 1, 0) };
    let mut done = n.max(0) as usize;
    if done < len {
        let start = done;
        done += page_by_page(addr + start as u64, len - start, |off, d| {
            mem.read_at(&mut buf[start + d..len], off)
        });
    }
    if done == 0 {
        return Err(Errno::EFAULT);
    }
    Ok(done)
}

/// Copies into application memory in process `pid`: `process_vm_writev` first, then
/// `/proc/<pid>/mem` for read-only pages (which writes with FOLL_FORCE, breaking
/// copy-on-write as a debugger's poke does). Same return rules as [`read_process`].
pub fn write_process(pid: i32, mem: &File, addr: u64, buf: &[u8]) -> SysResult<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    let len = buf.len().min((u64::MAX - addr) as usize);
    let local = [libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: len,
    }];
    let remote = [libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    }];
    // SAFETY: `local` describes memory we own that the kernel only reads; `remote` is
    // only an address in the other process, checked by the kernel.
    let n = unsafe { libc::process_vm_writev(pid, local.as_ptr(), 1, remote.as_ptr(), 1, 0) };
    let mut done = n.max(0) as usize;
    if done < len {
        let start = done;
        done += page_by_page(addr + start as u64, len - start, |off, d| {
            mem.write_at(&buf[start + d..len], off)
        });
    }
    if done == 0 {
        return Err(Errno::EFAULT);
    }
    Ok(done)
}

/// Runs `op(offset, done)` until `len` bytes are done or it stops making progress.
fn page_by_page(
    addr: u64,
    len: usize,
    mut op: impl FnMut(u64, usize) -> std::io::Result<usize>,
) -> usize {
    let mut done = 0;
    while done < len {
        let Ok(off) = i64::try_from(addr + done as u64) else {
            break;
        };
        match op(off as u64, done) {
            Ok(0) | Err(_) => break,
            Ok(n) => done += n,
        }
    }
    done
}

/// Validates `[addr, addr+len)` for a mapping operation below `max` (the backend's
/// highest application address); returns the page-rounded length.
pub fn check_range(addr: u64, len: u64, max: u64) -> SysResult<u64> {
    if !addr.is_multiple_of(crate::platform::PAGE_SIZE) || len == 0 {
        return Err(Errno::EINVAL);
    }
    let len = crate::platform::page_round_up(len).ok_or(Errno::ENOMEM)?;
    match addr.checked_add(len) {
        Some(end) if end <= max => Ok(len),
        _ => Err(Errno::ENOMEM),
    }
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is a plain bitmask; zeroed is its empty value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid, writable cpu_set_t of the size passed.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r < 0 {
        return vec![0];
    }
    // SAFETY: CPU_ISSET only reads the set for indices below CPU_SETSIZE.
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect();
    if cpus.is_empty() {
        vec![0]
    } else {
        cpus
    }
}

/// Restricts thread or process `tid` (0: the calling thread) to `cpu` (one of
/// [`allowed_cpus`]).
pub fn pin(tid: i32, cpu: usize) -> SysResult<()> {
    // SAFETY: cpu_set_t is a plain bitmask; zeroed is its empty value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: cpu < CPU_SETSIZE: callers take it from allowed_cpus.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: set is a valid cpu_set_t of the size passed.
    let r = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}
