//! Credentials: the set*id family, supplementary groups and capabilities, all
//! checked by the sentry against the container's own identities.

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::{CAP_SETGID, CAP_SETPCAP, CAP_SETUID};
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::Args;

/// -1 as an id argument: leave unchanged.
const KEEP: u32 = u32::MAX;
/// `NGROUPS_MAX`.
const NGROUPS_MAX: usize = 65536;

fn after_uid_change(task: &mut Task, old: (u32, u32, u32, u32)) -> SysResult<()> {
    task.creds.fix_caps_after_uid_change(old);
    task.tg.state()?.uids = (task.creds.uid, task.creds.suid);
    Ok(())
}

/// `setuid(2)`.
pub fn setuid(task: &mut Task, a: &Args) -> SysResult<u64> {
    let uid = a[0] as u32;
    if uid == KEEP {
        return Err(Errno::EINVAL);
    }
    let old = task.creds.uids();
    if task.creds.has_cap(CAP_SETUID) {
        task.creds.uid = uid;
        task.creds.suid = uid;
    } else if uid != task.creds.uid && uid != task.creds.suid {
        return Err(Errno::EPERM);
    }
    task.creds.euid = uid;
    task.creds.fsuid = uid;
    after_uid_change(task, old)?;
    Ok(0)
}

/// `setgid(2)`.
pub fn setgid(task: &mut Task, a: &Args) -> SysResult<u64> {
    let gid = a[0] as u32;
    if gid == KEEP {
        return Err(Errno::EINVAL);
    }
    if task.creds.has_cap(CAP_SETGID) {
        task.creds.gid = gid;
        task.creds.sgid = gid;
    } else if gid != task.creds.gid && gid != task.creds.sgid {
        return Err(Errno::EPERM);
    }
    task.creds.egid = gid;
    task.creds.fsgid = gid;
    Ok(0)
}

/// `setreuid(2)`.
pub fn setreuid(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (r, e) = (a[0] as u32, a[1] as u32);
    let c = &task.creds;
    let privileged = c.has_cap(CAP_SETUID);
    if r != KEEP && !privileged && r != c.uid && r != c.euid {
        return Err(Errno::EPERM);
    }
    if e != KEEP && !privileged && e != c.uid && e != c.euid && e != c.suid {
        return Err(Errno::EPERM);
    }
    let old = task.creds.uids();
    if r != KEEP {
        task.creds.uid = r;
    }
    if e != KEEP {
        task.creds.euid = e;
    }
    // The saved id follows the new effective id when the real id was set or the
    // effective id moved off the old real id.
    if r != KEEP || (e != KEEP && e != old.0) {
        task.creds.suid = task.creds.euid;
    }
    task.creds.fsuid = task.creds.euid;
    after_uid_change(task, old)?;
    Ok(0)
}

/// `setregid(2)`.
pub fn setregid(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (r, e) = (a[0] as u32, a[1] as u32);
    let c = &task.creds;
    let privileged = c.has_cap(CAP_SETGID);
    if r != KEEP && !privileged && r != c.gid && r != c.egid {
        return Err(Errno::EPERM);
    }
    if e != KEEP && !privileged && e != c.gid && e != c.egid && e != c.sgid {
        return Err(Errno::EPERM);
    }
    let old_gid = task.creds.gid;
    if r != KEEP {
        task.creds.gid = r;
    }
    if e != KEEP {
        task.creds.egid = e;
    }
    if r != KEEP || (e != KEEP && e != old_gid) {
        task.creds.sgid = task.creds.egid;
    }
    task.creds.fsgid = task.creds.egid;
    Ok(0)
}

/// `setresuid(2)`.
pub fn setresuid(task: &mut Task, a: &Args) -> SysResult<u64> {
    let ids = [a[0] as u32, a[1] as u32, a[2] as u32];
    let c = &task.creds;
    if !c.has_cap(CAP_SETUID) {
        for id in ids {
            if id != KEEP && id != c.uid && id != c.euid && id != c.suid {
                return Err(Errno::EPERM);
            }
        }
    }
    let old = task.creds.uids();
    if ids[0] != KEEP {
        task.creds.uid = ids[0];
    }
    if ids[1] != KEEP {
        task.creds.euid = ids[1];
    }
    if ids[2] != KEEP {
        task.creds.suid = ids[2];
    }
    task.creds.fsuid = task.creds.euid;
    after_uid_change(task, old)?;
    Ok(0)
}

/// `setresgid(2)`.
pub fn setresgid(task: &mut Task, a: &Args) -> SysResult<u64> {
    let ids = [a[0] as u32, a[1] as u32, a[2] as u32];
    let c = &task.creds;
    if !c.has_cap(CAP_SETGID) {
        for id in ids {
            if id != KEEP && id != c.gid && id != c.egid && id != c.sgid {
                return Err(Errno::EPERM);
            }
        }
    }
    if ids[0] != KEEP {
        task.creds.gid = ids[0];
    }
    if ids[1] != KEEP {
        task.creds.egid = ids[1];
    }
    if ids[2] != KEEP {
        task.creds.sgid = ids[2];
    }
    task.creds.fsgid = task.creds.egid;
    Ok(0)
}

fn write_ids(task: &Task, addrs: [u64; 3], ids: [u32; 3]) -> SysResult<u64> {
    for (a, id) in addrs.iter().zip(ids) {
        io::write_u32(task.mem(), *a, id)?;
    }
    Ok(0)
}

/// `getresuid(2)`.
pub fn getresuid(task: &mut Task, a: &Args) -> SysResult<u64> {
    let c = &task.creds;
    write_ids(task, [a[0], a[1], a[2]], [c.uid, c.euid, c.suid])
}

/// `getresgid(2)`.
pub fn getresgid(task: &mut Task, a: &Args) -> SysResult<u64> {
    let c = &task.creds;
    write_ids(task, [a[0], a[1], a[2]], [c.gid, c.egid, c.sgid])
}

/// `setfsuid(2)`: always returns the previous fsuid.
pub fn setfsuid(task: &mut Task, a: &Args) -> SysResult<u64> {
    let old = task.creds.uids();
    let id = a[0] as u32;
    let c = &task.creds;
    if id != KEEP
        && (c.has_cap(CAP_SETUID) || id == c.uid || id == c.euid || id == c.suid || id == c.fsuid)
    {
        task.creds.fsuid = id;
        task.creds.fix_caps_after_uid_change(old);
    }
    Ok(old.3 as u64)
}

/// `setfsgid(2)`: always returns the previous fsgid.
pub fn setfsgid(task: &mut Task, a: &Args) -> SysResult<u64> {
    let old = task.creds.fsgid;
    let id = a[0] as u32;
    let c = &task.creds;
    if id != KEEP
        && (c.has_cap(CAP_SETGID) || id == c.gid || id == c.egid || id == c.sgid || id == c.fsgid)
    {
        task.creds.fsgid = id;
    }
    Ok(old as u64)
}

/// `setgroups(2)`.
pub fn setgroups(task: &mut Task, a: &Args) -> SysResult<u64> {
    let n = a[0] as usize;
    if n > NGROUPS_MAX {
        return Err(Errno::EINVAL);
    }
    if !task.creds.has_cap(CAP_SETGID) {
        return Err(Errno::EPERM);
    }
    let mut b = vec![0u8; n * 4];
    io::read_exact(task.mem(), a[1], &mut b)?;
    task.creds.groups = b
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(0)
}

const LINUX_CAPABILITY_VERSION_1: u32 = 0x1998_0330;
const LINUX_CAPABILITY_VERSION_2: u32 = 0x2007_1026;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Checks the header; on a bad version writes the preferred one back (EINVAL).
fn cap_header(task: &Task, hdr: u64) -> SysResult<(usize, i32)> {
    let mut b = [0u8; 8];
    io::read_exact(task.mem(), hdr, &mut b)?;
    let version = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let pid = i32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let words = match version {
        LINUX_CAPABILITY_VERSION_1 => 1,
        LINUX_CAPABILITY_VERSION_2 | LINUX_CAPABILITY_VERSION_3 => 2,
        _ => {
            io::write_u32(task.mem(), hdr, LINUX_CAPABILITY_VERSION_3)?;
            return Err(Errno::EINVAL);
        }
    };
    Ok((words, pid))
}

/// `capget(2)`.
pub fn capget(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (words, pid) = cap_header(task, a[0])?;
    if pid != 0 && pid != task.tid && task.kernel.registry()?.thread(pid).is_none() {
        return Err(Errno::ESRCH);
    }
    if a[1] == 0 {
        return Ok(0);
    }
    let c = &task.creds;
    let mut out = Vec::with_capacity(12 * words);
    for w in 0..words {
        let shift = 32 * w;
        for set in [c.cap_effective, c.cap_permitted, c.cap_inheritable] {
            out.extend_from_slice(&((set >> shift) as u32).to_le_bytes());
        }
    }
    io::write_all(task.mem(), a[1], &out)?;
    Ok(0)
}

/// `capset(2)`: only the caller's own sets; new permitted must be a subset of the
/// old, effective a subset of the new permitted, inheritable within permitted plus
/// bounding (or CAP_SETPCAP).
pub fn capset(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (words, pid) = cap_header(task, a[0])?;
    if pid != 0 && pid != task.tid {
        return Err(Errno::EPERM);
    }
    let mut b = vec![0u8; 12 * words];
    io::read_exact(task.mem(), a[1], &mut b)?;
    let (mut eff, mut perm, mut inh) = (0u64, 0u64, 0u64);
    for w in 0..words {
        let v = |i: usize| {
            u32::from_le_bytes(
                b[w * 12 + i * 4..w * 12 + i * 4 + 4]
                    .try_into()
                    .unwrap_or([0; 4]),
            ) as u64
        };
        eff |= v(0) << (32 * w);
        perm |= v(1) << (32 * w);
        inh |= v(2) << (32 * w);
    }
    let c = &task.creds;
    if perm & !c.cap_permitted != 0 || eff & !perm != 0 {
        return Err(Errno::EPERM);
    }
    let inh_limit = if c.has_cap(CAP_SETPCAP) {
        c.cap_bounding
    } else {
        c.cap_permitted | c.cap_inheritable
    };
    if inh & !(inh_limit & c.cap_bounding | c.cap_inheritable) != 0 {
        return Err(Errno::EPERM);
    }
    task.creds.cap_effective = eff;
    task.creds.cap_permitted = perm;
    task.creds.cap_inheritable = inh;
    Ok(0)
}
