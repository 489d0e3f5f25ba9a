//! System information: uname, sysinfo, getrandom.

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::CAP_SYS_ADMIN;
use crate::kernel::{Task, RELEASE, VERSION};
use crate::mm::io;
use crate::sys::host;
use crate::syscalls::Args;

/// `uname(2)`: the sandbox's own fixed kernel identity and hostname.
pub fn uname(task: &mut Task, a: &Args) -> SysResult<u64> {
    const FIELD: usize = 65;
    let hostname = task.ns.uts.hostname.lock().map_err(|_| Errno::EIO)?.clone();
    let domain = task
        .ns
        .uts
        .domainname
        .lock()
        .map_err(|_| Errno::EIO)?
        .clone();
    let fields: [&[u8]; 6] = [
        b"Linux",
        hostname.as_bytes(),
        RELEASE.as_bytes(),
        VERSION.as_bytes(),
        b"x86_64",
        domain.as_bytes(),
    ];
    let mut out = vec![0u8; FIELD * 6];
    for (i, f) in fields.iter().enumerate() {
        let n = f.len().min(FIELD - 1);
        out[i * FIELD..i * FIELD + n].copy_from_slice(&f[..n]);
    }
    io::write_all(task.mem(), a[0], &out)?;
    Ok(0)
}

/// Longest host or domain name (`__NEW_UTS_LEN`).
const UTS_LEN: u64 = 64;

fn set_uts_name(task: &Task, addr: u64, len: u64) -> SysResult<String> {
    // CAP_SYS_ADMIN over the user namespace owning the caller's UTS namespace.
    let owner = crate::kernel::ns::owner(&task.ns.uts.owner);
    if !task.creds.has_cap_in(owner, CAP_SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    if len > UTS_LEN {
        return Err(Errno::EINVAL);
    }
    let mut b = vec![0u8; len as usize];
    io::read_exact(task.mem(), addr, &mut b)?;
    // The name is bytes; the sentry keeps it as text (invalid bytes become U+FFFD).
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// `sethostname(2)`: changes the hostname of the caller's UTS namespace.
pub fn sethostname(task: &mut Task, a: &Args) -> SysResult<u64> {
    let name = set_uts_name(task, a[0], a[1])?;
    *task.ns.uts.hostname.lock().map_err(|_| Errno::EIO)? = name;
    Ok(0)
}

/// `setdomainname(2)`.
pub fn setdomainname(task: &mut Task, a: &Args) -> SysResult<u64> {
    let name = set_uts_name(task, a[0], a[1])?;
    *task.ns.uts.domainname.lock().map_err(|_| Errno::EIO)? = name;
    Ok(0)
}

/// `sysinfo(2)`.
pub fn sysinfo(task: &mut Task, a: &Args) -> SysResult<u64> {
    let h = host::sysinfo()?;
    let m = task.kernel.mem_view()?;
    // Moved by the caller's time namespace, as Linux's sysinfo.
    let uptime = (task.kernel.boot_time.elapsed().as_secs() as i64)
        .saturating_add(task.clock_offset(libc::CLOCK_BOOTTIME) / 1_000_000_000);
    // struct sysinfo on x86-64: 112 bytes; filled field by field so no padding of
    // the sentry's own struct can leak.
    let mut b = Vec::with_capacity(112);
    b.extend_from_slice(&uptime.to_le_bytes());
    for l in h.loads {
        b.extend_from_slice(&l.to_le_bytes());
    }
    // In bytes (mem_unit 1), as Linux on 64-bit; the container's limit is the
    // machine's memory.
    for v in [m.total, m.free, m.shmem, m.buffers, m.swap, m.swap] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&1u16.to_le_bytes()); // procs
    b.extend_from_slice(&[0u8; 6]); // pad to 8
    b.extend_from_slice(&0u64.to_le_bytes()); // totalhigh
    b.extend_from_slice(&0u64.to_le_bytes()); // freehigh
    b.extend_from_slice(&1u32.to_le_bytes()); // mem_unit
    b.resize(112, 0);
    io::write_all(task.mem(), a[0], &b)?;
    Ok(0)
}

/// `getrandom(2)`.
pub fn getrandom(task: &mut Task, a: &Args) -> SysResult<u64> {
    const GRND_NONBLOCK: u64 = 1;
    const GRND_RANDOM: u64 = 2;
    const GRND_INSECURE: u64 = 4;
    let flags = a[2];
    if flags & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0
        || flags & (GRND_RANDOM | GRND_INSECURE) == (GRND_RANDOM | GRND_INSECURE)
    {
        return Err(Errno::EINVAL);
    }
    // Linux returns at most 32 MiB - 1 per call.
    let len = (a[1] as usize).min((32 << 20) - 1);
    let mut done = 0usize;
    let mut buf = vec![0u8; len.min(1 << 16)];
    while done < len {
        let want = (len - done).min(buf.len());
        let n = host::random_bytes(&mut buf[..want], 0)?;
        if let Err(e) = io::write_all(task.mem(), a[0] + done as u64, &buf[..n]) {
            return if done > 0 { Ok(done as u64) } else { Err(e) };
        }
        done += n;
    }
    Ok(done as u64)
}
