//! Credentials: the set*id family, supplementary groups and capabilities, all
//! checked by the sentry against the container's own identities.

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::{
    ALL_CAPS, CAP_LAST_CAP, CAP_SETGID, CAP_SETPCAP, CAP_SETUID, SECBIT_KEEP_CAPS,
    SECBIT_KEEP_CAPS_LOCKED, SECBIT_NO_CAP_AMBIENT_RAISE, SECURE_ALL_BITS, SECURE_ALL_LOCKS,
};
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::Args;

/// -1 as an id argument: leave unchanged.
const KEEP: u32 = u32::MAX;
/// `NGROUPS_MAX`.
const NGROUPS_MAX: usize = 65536;

/// The kernel uid of `uid` as the caller names it: `EINVAL` when its user
/// namespace does not map it; -1 (keep) stays -1.
fn kuid(task: &Task, uid: u32) -> SysResult<u32> {
    if uid == KEEP {
        return Ok(KEEP);
    }
    task.creds.user_ns().uid_down(uid).ok_or(Errno::EINVAL)
}

/// The kernel gid of `gid` as the caller names it (see [`kuid`]).
fn kgid(task: &Task, gid: u32) -> SysResult<u32> {
    if gid == KEEP {
        return Ok(KEEP);
    }
    task.creds.user_ns().gid_down(gid).ok_or(Errno::EINVAL)
}

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
    let uid = kuid(task, uid)?;
    let old = task.creds.uids();
    if task.creds.has_ns_cap(CAP_SETUID) {
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
    let gid = kgid(task, gid)?;
    if task.creds.has_ns_cap(CAP_SETGID) {
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
    let (r, e) = (kuid(task, a[0] as u32)?, kuid(task, a[1] as u32)?);
    let c = &task.creds;
    let privileged = c.has_ns_cap(CAP_SETUID);
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
    let (r, e) = (kgid(task, a[0] as u32)?, kgid(task, a[1] as u32)?);
    let c = &task.creds;
    let privileged = c.has_ns_cap(CAP_SETGID);
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
    let ids = [
        kuid(task, a[0] as u32)?,
        kuid(task, a[1] as u32)?,
        kuid(task, a[2] as u32)?,
    ];
    let c = &task.creds;
    if !c.has_ns_cap(CAP_SETUID) {
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
    let ids = [
        kgid(task, a[0] as u32)?,
        kgid(task, a[1] as u32)?,
        kgid(task, a[2] as u32)?,
    ];
    let c = &task.creds;
    if !c.has_ns_cap(CAP_SETGID) {
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
    let ns = c.user_ns();
    let ids = [c.uid, c.euid, c.suid].map(|i| ns.uid_shown(i));
    write_ids(task, [a[0], a[1], a[2]], ids)
}

/// `getresgid(2)`.
pub fn getresgid(task: &mut Task, a: &Args) -> SysResult<u64> {
    let c = &task.creds;
    let ns = c.user_ns();
    let ids = [c.gid, c.egid, c.sgid].map(|i| ns.gid_shown(i));
    write_ids(task, [a[0], a[1], a[2]], ids)
}

/// `setfsuid(2)`: always returns the previous fsuid.
pub fn setfsuid(task: &mut Task, a: &Args) -> SysResult<u64> {
    let old = task.creds.uids();
    let shown = task.creds.user_ns().uid_shown(old.3);
    // An id the namespace does not map changes nothing.
    let Some(id) = task.creds.user_ns().uid_down(a[0] as u32) else {
        return Ok(shown as u64);
    };
    let c = &task.creds;
    if a[0] as u32 != KEEP
        && (c.has_ns_cap(CAP_SETUID)
            || id == c.uid
            || id == c.euid
            || id == c.suid
            || id == c.fsuid)
    {
        task.creds.fsuid = id;
        task.creds.fix_caps_after_fsuid_change(old.3);
    }
    Ok(shown as u64)
}

/// `setfsgid(2)`: always returns the previous fsgid.
pub fn setfsgid(task: &mut Task, a: &Args) -> SysResult<u64> {
    let old = task.creds.fsgid;
    let shown = task.creds.user_ns().gid_shown(old);
    let Some(id) = task.creds.user_ns().gid_down(a[0] as u32) else {
        return Ok(shown as u64);
    };
    let c = &task.creds;
    if a[0] as u32 != KEEP
        && (c.has_ns_cap(CAP_SETGID)
            || id == c.gid
            || id == c.egid
            || id == c.sgid
            || id == c.fsgid)
    {
        task.creds.fsgid = id;
    }
    Ok(shown as u64)
}

/// `setgroups(2)`: CAP_SETGID over the caller's user namespace, where setgroups
/// must be allowed and the gid map written; every group must be mapped there.
pub fn setgroups(task: &mut Task, a: &Args) -> SysResult<u64> {
    let n = a[0] as usize;
    if n > NGROUPS_MAX {
        return Err(Errno::EINVAL);
    }
    let ns = task.creds.user_ns().clone();
    if !task.creds.has_ns_cap(CAP_SETGID) || !ns.may_setgroups() {
        return Err(Errno::EPERM);
    }
    let mut b = vec![0u8; n * 4];
    io::read_exact(task.mem(), a[1], &mut b)?;
    let mut groups = Vec::with_capacity(n);
    for c in b.chunks_exact(4) {
        let g = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        groups.push(ns.gid_down(g).ok_or(Errno::EINVAL)?);
    }
    task.creds.groups = groups;
    Ok(0)
}

const LINUX_CAPABILITY_VERSION_1: u32 = 0x1998_0330;
const LINUX_CAPABILITY_VERSION_2: u32 = 0x2007_1026;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Checks the header's version: the number of 32-bit data words it takes (1 for
/// v1, 2 for v2 and v3). On an unknown version the preferred one is written back
/// and the call fails with EINVAL (how libcap probes).
fn cap_version(task: &Task, hdr: u64) -> SysResult<usize> {
    let version = read_u32(task, hdr)?;
    match version {
        LINUX_CAPABILITY_VERSION_1 => Ok(1),
        LINUX_CAPABILITY_VERSION_2 | LINUX_CAPABILITY_VERSION_3 => Ok(2),
        _ => {
            io::write_u32(task.mem(), hdr, LINUX_CAPABILITY_VERSION_3)?;
            Err(Errno::EINVAL)
        }
    }
}

fn cap_pid(task: &Task, hdr: u64) -> SysResult<i32> {
    Ok(read_u32(task, hdr + 4)? as i32)
}

fn read_u32(task: &Task, addr: u64) -> SysResult<u32> {
    let mut b = [0u8; 4];
    io::read_exact(task.mem(), addr, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// `capget(2)`: the effective, permitted and inheritable sets of the caller or of
/// thread `pid`. A NULL data pointer only checks the version (0 for an unknown
/// one, after writing the preferred version into the header).
pub fn capget(task: &mut Task, a: &Args) -> SysResult<u64> {
    let words = match cap_version(task, a[0]) {
        Ok(w) => w,
        Err(Errno::EINVAL) if a[1] == 0 => return Ok(0),
        Err(e) => return Err(e),
    };
    if a[1] == 0 {
        return Ok(0);
    }
    let pid = cap_pid(task, a[0])?;
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    let pid = if pid == 0 { 0 } else { task.pid_global(pid)? };
    let sets = if pid == 0 || pid == task.tid {
        let c = &task.creds;
        [c.cap_effective, c.cap_permitted, c.cap_inheritable]
    } else {
        let (_, group) = task.kernel.registry()?.thread(pid).ok_or(Errno::ESRCH)?;
        // Another thread's sets as its process last published them.
        let st = group.state()?;
        let c = &st.view.creds;
        [c.cap_effective, c.cap_permitted, c.cap_inheritable]
    };
    let mut out = Vec::with_capacity(12 * words);
    for w in 0..words {
        for set in sets {
            out.extend_from_slice(&((set >> (32 * w)) as u32).to_le_bytes());
        }
    }
    io::write_all(task.mem(), a[1], &out)?;
    Ok(0)
}

/// `capset(2)`: only the caller's own sets. The new permitted set must be within
/// the old one, effective within the new permitted, and inheritable within the old
/// inheritable plus the bounding set and, without CAP_SETPCAP, plus the old
/// permitted; ambient loses what is no longer both permitted and inheritable. Bits
/// past CAP_LAST_CAP are ignored, and a v1 header sets only the low 32 bits (the high
/// ones become 0), as Linux does.
pub fn capset(task: &mut Task, a: &Args) -> SysResult<u64> {
    let words = cap_version(task, a[0])?;
    let pid = cap_pid(task, a[0])?;
    if pid != 0 && pid != task.tid {
        return Err(Errno::EPERM);
    }
    let mut b = [0u8; 24];
    io::read_exact(task.mem(), a[1], &mut b[..12 * words])?;
    let word = |i: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&b[i * 4..i * 4 + 4]);
        u32::from_le_bytes(w) as u64
    };
    let (mut eff, mut perm, mut inh) = (0u64, 0u64, 0u64);
    for w in 0..words {
        eff |= word(w * 3) << (32 * w);
        perm |= word(w * 3 + 1) << (32 * w);
        inh |= word(w * 3 + 2) << (32 * w);
    }
    let (eff, perm, inh) = (eff & ALL_CAPS, perm & ALL_CAPS, inh & ALL_CAPS);
    let c = &task.creds;
    if !c.has_ns_cap(CAP_SETPCAP) && inh & !(c.cap_inheritable | c.cap_permitted) != 0 {
        return Err(Errno::EPERM);
    }
    if inh & !(c.cap_inheritable | c.cap_bounding) != 0 {
        return Err(Errno::EPERM);
    }
    if perm & !c.cap_permitted != 0 || eff & !perm != 0 {
        return Err(Errno::EPERM);
    }
    let c = &mut task.creds;
    c.cap_effective = eff;
    c.cap_permitted = perm;
    c.cap_inheritable = inh;
    c.cap_ambient &= perm & inh;
    Ok(0)
}

/// Validates a capability number argument of prctl.
fn cap_arg(v: u64) -> SysResult<u32> {
    if v > CAP_LAST_CAP as u64 {
        return Err(Errno::EINVAL);
    }
    Ok(v as u32)
}

/// The capability and securebits operations of `prctl(2)` (what Linux's
/// `cap_task_prctl` handles): `None` for any other option.
pub fn prctl_caps(task: &mut Task, a: &Args) -> Option<SysResult<u64>> {
    Some(match a[0] as i32 {
        libc::PR_CAPBSET_READ => cap_arg(a[1]).map(|cap| (task.creds.cap_bounding >> cap) & 1),
        libc::PR_CAPBSET_DROP => {
            if !task.creds.has_ns_cap(CAP_SETPCAP) {
                Err(Errno::EPERM)
            } else {
                cap_arg(a[1]).map(|cap| {
                    task.creds.cap_bounding &= !(1u64 << cap);
                    0
                })
            }
        }
        libc::PR_GET_SECUREBITS => Ok(task.creds.securebits as u64),
        libc::PR_SET_SECUREBITS => {
            let old = task.creds.securebits as u64;
            let locks = (SECURE_ALL_LOCKS) as u64;
            let new = a[1];
            if ((old & locks) >> 1) & (old ^ new) != 0
                || old & locks & !new != 0
                || new & !((SECURE_ALL_LOCKS | SECURE_ALL_BITS) as u64) != 0
                || !task.creds.has_ns_cap(CAP_SETPCAP)
            {
                Err(Errno::EPERM)
            } else {
                task.creds.securebits = new as u32;
                Ok(0)
            }
        }
        libc::PR_GET_KEEPCAPS => Ok(task.creds.secure(SECBIT_KEEP_CAPS) as u64),
        libc::PR_SET_KEEPCAPS => {
            if a[1] > 1 {
                Err(Errno::EINVAL)
            } else if task.creds.secure(SECBIT_KEEP_CAPS_LOCKED) {
                Err(Errno::EPERM)
            } else {
                if a[1] == 1 {
                    task.creds.securebits |= SECBIT_KEEP_CAPS;
                } else {
                    task.creds.securebits &= !SECBIT_KEEP_CAPS;
                }
                Ok(0)
            }
        }
        libc::PR_CAP_AMBIENT => prctl_ambient(task, a),
        libc::PR_SET_NO_NEW_PRIVS => {
            if a[1] != 1 || a[2] != 0 || a[3] != 0 || a[4] != 0 {
                Err(Errno::EINVAL)
            } else {
                task.creds.no_new_privs = true;
                Ok(0)
            }
        }
        libc::PR_GET_NO_NEW_PRIVS => {
            if a[1] != 0 || a[2] != 0 || a[3] != 0 || a[4] != 0 {
                Err(Errno::EINVAL)
            } else {
                Ok(task.creds.no_new_privs as u64)
            }
        }
        _ => return None,
    })
}

/// `prctl(PR_CAP_AMBIENT, op, cap, 0, 0)`.
fn prctl_ambient(task: &mut Task, a: &Args) -> SysResult<u64> {
    let c = &mut task.creds;
    if a[1] == libc::PR_CAP_AMBIENT_CLEAR_ALL as u64 {
        if a[2] != 0 || a[3] != 0 || a[4] != 0 {
            return Err(Errno::EINVAL);
        }
        c.cap_ambient = 0;
        return Ok(0);
    }
    if a[3] != 0 || a[4] != 0 {
        return Err(Errno::EINVAL);
    }
    let cap = cap_arg(a[2])?;
    let bit = 1u64 << cap;
    match a[1] as i32 {
        libc::PR_CAP_AMBIENT_IS_SET => Ok((c.cap_ambient & bit != 0) as u64),
        libc::PR_CAP_AMBIENT_RAISE => {
            if c.cap_permitted & bit == 0
                || c.cap_inheritable & bit == 0
                || c.secure(SECBIT_NO_CAP_AMBIENT_RAISE)
            {
                return Err(Errno::EPERM);
            }
            c.cap_ambient |= bit;
            Ok(0)
        }
        libc::PR_CAP_AMBIENT_LOWER => {
            c.cap_ambient &= !bit;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}
