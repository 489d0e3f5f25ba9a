//! Copying data between the sentry and application memory, with Linux's errors:
//! `EFAULT` for a bad pointer, `ENAMETOOLONG` for an unterminated string.

use crate::errno::{Errno, SysResult};
use crate::platform::{AddressSpace, PAGE_SIZE};
use crate::sys::pod::{bytes_of, from_bytes, Pod};

/// Reads exactly `buf.len()` bytes at `addr`, or `EFAULT`.
pub fn read_exact(space: &dyn AddressSpace, addr: u64, buf: &mut [u8]) -> SysResult<()> {
    if buf.is_empty() {
        return Ok(());
    }
    addr.checked_add(buf.len() as u64).ok_or(Errno::EFAULT)?;
    let n = space.read(addr, buf)?;
    if n != buf.len() {
        return Err(Errno::EFAULT);
    }
    Ok(())
}

/// Writes all of `buf` at `addr`, or `EFAULT`.
pub fn write_all(space: &dyn AddressSpace, addr: u64, buf: &[u8]) -> SysResult<()> {
    if buf.is_empty() {
        return Ok(());
    }
    addr.checked_add(buf.len() as u64).ok_or(Errno::EFAULT)?;
    let n = space.write(addr, buf)?;
    if n != buf.len() {
        return Err(Errno::EFAULT);
    }
    Ok(())
}

/// Reads a NUL-terminated string of at most `max` bytes (without the NUL).
/// Longer strings give `ENAMETOOLONG` as the path syscalls need.
pub fn read_cstring(space: &dyn AddressSpace, addr: u64, max: usize) -> SysResult<Vec<u8>> {
    /// Most strings (paths, names) are short: the first read takes at most this much,
    /// so a path costs a small copy rather than the rest of its page.
    const FIRST: usize = 256;
    let mut out = Vec::new();
    let mut cur = addr;
    let mut first = [0u8; FIRST];
    let mut rest = Vec::new();
    loop {
        // Never past the end of the page, so a string ending just before an unmapped
        // page does not fault.
        let room = (PAGE_SIZE - (cur % PAGE_SIZE)) as usize;
        let want = room.min(max + 1 - out.len()).max(1);
        let chunk: &mut [u8] = if cur == addr {
            &mut first[..want.min(FIRST)]
        } else {
            rest.resize(want, 0);
            &mut rest[..]
        };
        let n = space.read(cur, chunk)?;
        if n == 0 {
            return Err(Errno::EFAULT);
        }
        if let Some(pos) = chunk[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..pos]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..n]);
        if out.len() > max {
            return Err(Errno::ENAMETOOLONG);
        }
        cur = cur.checked_add(n as u64).ok_or(Errno::EFAULT)?;
    }
}

/// Reads a little-endian u64.
pub fn read_u64(space: &dyn AddressSpace, addr: u64) -> SysResult<u64> {
    let mut b = [0u8; 8];
    read_exact(space, addr, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Writes a little-endian u64.
pub fn write_u64(space: &dyn AddressSpace, addr: u64, v: u64) -> SysResult<()> {
    write_all(space, addr, &v.to_le_bytes())
}

/// Writes a little-endian u32.
pub fn write_u32(space: &dyn AddressSpace, addr: u64, v: u32) -> SysResult<()> {
    write_all(space, addr, &v.to_le_bytes())
}

/// Reads a NULL-terminated array of string pointers (argv/envp style), at most
/// `max_entries` entries and `max_total` bytes altogether (`E2BIG` beyond).
pub fn read_string_array(
    space: &dyn AddressSpace,
    addr: u64,
    max_entries: usize,
    max_total: usize,
) -> SysResult<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    if addr == 0 {
        return Ok(out);
    }
    let mut total = 0usize;
    for i in 0.. {
        if i >= max_entries {
            return Err(Errno::E2BIG);
        }
        let p = read_u64(space, addr + 8 * i as u64)?;
        if p == 0 {
            break;
        }
        let s = read_cstring(space, p, max_total.saturating_sub(total)).map_err(|e| {
            if e == Errno::ENAMETOOLONG {
                Errno::E2BIG
            } else {
                e
            }
        })?;
        total += s.len() + 1;
        out.push(s);
    }
    Ok(out)
}

/// Writes a plain-old-data struct at `addr`.
pub fn write_struct<T: Pod>(space: &dyn AddressSpace, addr: u64, v: &T) -> SysResult<()> {
    write_all(space, addr, bytes_of(v))
}

/// Reads a plain-old-data struct at `addr`.
pub fn read_struct<T: Pod>(space: &dyn AddressSpace, addr: u64) -> SysResult<T> {
    let mut buf = vec![0u8; std::mem::size_of::<T>()];
    read_exact(space, addr, &mut buf)?;
    Ok(from_bytes(&buf))
}
