//! Restartable sequences (`rseq(2)`): a thread registers a `struct rseq` area; the
//! kernel keeps its `cpu_id_start`, `cpu_id`, `node_id` and `mm_cid` fields current
//! and, when the thread is interrupted inside the critical section its `rseq_cs`
//! field describes, moves it to that section's abort handler.
//!
//! The sentry sees a thread's CPU only from its own sentry thread (the platform
//! runs the application thread wherever the host puts it), so the fields are
//! refreshed when that CPU changed on the way back to the application, and
//! critical sections are aborted where the sentry interrupts the thread: signal
//! delivery and a platform interruption (Linux also aborts on preemption and
//! migration, which happen on the host unseen). `mm_cid` is the CPU number, which
//! is unique among the threads running at one moment but not compacted to the
//! process's thread count as Linux's.

use crate::errno::{Errno, SysResult};
use crate::mm::io;
use crate::platform::AddressSpace;

/// `RSEQ_FLAG_UNREGISTER`.
pub const FLAG_UNREGISTER: u32 = 1;
/// The size of the original `struct rseq` (and its alignment then).
const ORIG_SIZE: u32 = 32;
/// `offsetof(struct rseq, end)`: the least an extended registration must cover.
const FEATURE_END: u32 = 28;
/// `__alignof__(struct rseq)`.
const ALIGN: u64 = 32;
/// `RSEQ_CPU_ID_UNINITIALIZED`.
const CPU_ID_UNINITIALIZED: u32 = u32::MAX;
/// `RSEQ_CS_FLAG_NO_RESTART_ON_{PREEMPT,SIGNAL,MIGRATE}`: refused since Linux 6.1.
const CS_NO_RESTART_FLAGS: u32 = 7;
/// The end of the user address range (x86-64 `TASK_SIZE_MAX`).
const TASK_SIZE: u64 = abi::mem::TASK_SIZE;

/// Field offsets in `struct rseq`.
const OFF_CPU_ID_START: u64 = 0;
const OFF_RSEQ_CS: u64 = 8;
const OFF_NODE_ID: u64 = 20;

/// One thread's registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rseq {
    /// The `struct rseq` area.
    pub addr: u64,
    /// Its registered length.
    pub len: u32,
    /// The signature every abort handler must be preceded by.
    pub sig: u32,
    /// The CPU last written to the area.
    cpu: Option<u32>,
}

/// What a failed fix-up means: the thread gets SIGSEGV, as on Linux.
#[derive(Debug, PartialEq, Eq)]
pub struct Fatal;

/// `rseq(2)` on the thread whose registration is `cur`; `cpu` is where it runs.
pub fn syscall(
    cur: &mut Option<Rseq>,
    mem: &dyn AddressSpace,
    addr: u64,
    len: u32,
    flags: u32,
    sig: u32,
    cpu: u32,
) -> SysResult<u64> {
    if flags & FLAG_UNREGISTER != 0 {
        if flags & !FLAG_UNREGISTER != 0 {
            return Err(Errno::EINVAL);
        }
        let reg = cur.filter(|r| r.addr == addr).ok_or(Errno::EINVAL)?;
        if len != reg.len {
            return Err(Errno::EINVAL);
        }
        if sig != reg.sig {
            return Err(Errno::EPERM);
        }
        write_ids(mem, addr, 0, CPU_ID_UNINITIALIZED, 0, 0).map_err(|_| Errno::EFAULT)?;
        *cur = None;
        return Ok(0);
    }
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    if let Some(reg) = cur {
        if reg.addr != addr || reg.len != len {
            return Err(Errno::EINVAL);
        }
        if reg.sig != sig {
            return Err(Errno::EPERM);
        }
        return Err(Errno::EBUSY);
    }
    let bad_layout = len < ORIG_SIZE
        || (len == ORIG_SIZE && !addr.is_multiple_of(u64::from(ORIG_SIZE)))
        || (len != ORIG_SIZE && (!addr.is_multiple_of(ALIGN) || len < FEATURE_END));
    if bad_layout {
        return Err(Errno::EINVAL);
    }
    if addr
        .checked_add(u64::from(len))
        .is_none_or(|end| end > TASK_SIZE)
    {
        return Err(Errno::EFAULT);
    }
    let mut reg = Rseq {
        addr,
        len,
        sig,
        cpu: None,
    };
    // Linux fills the fields on the way back to user mode; a fault there is a
    // SIGSEGV. Filled here, an area that cannot be written is refused instead.
    refresh(&mut reg, mem, cpu).map_err(|_| Errno::EFAULT)?;
    *cur = Some(reg);
    Ok(0)
}

fn write_ids(
    mem: &dyn AddressSpace,
    addr: u64,
    cpu_start: u32,
    cpu: u32,
    node: u32,
    cid: u32,
) -> SysResult<()> {
    let mut a = [0u8; 8];
    a[..4].copy_from_slice(&cpu_start.to_ne_bytes());
    a[4..].copy_from_slice(&cpu.to_ne_bytes());
    io::write_all(mem, addr + OFF_CPU_ID_START, &a)?;
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&node.to_ne_bytes());
    b[4..].copy_from_slice(&cid.to_ne_bytes());
    io::write_all(mem, addr + OFF_NODE_ID, &b)
}

/// Writes the CPU fields if `cpu` is not what the area already says.
pub fn refresh(reg: &mut Rseq, mem: &dyn AddressSpace, cpu: u32) -> Result<(), Fatal> {
    if reg.cpu == Some(cpu) {
        return Ok(());
    }
    // One NUMA node; the concurrency id is the CPU (see the module notes).
    write_ids(mem, reg.addr, cpu, cpu, 0, cpu).map_err(|_| Fatal)?;
    reg.cpu = Some(cpu);
    Ok(())
}

/// The thread was interrupted at `*rip`: if that is inside its registered critical
/// section, it resumes at the section's abort handler instead. The area's
/// `rseq_cs` is cleared either way, as Linux does. A malformed descriptor, a
/// missing signature or an unreadable area is [`Fatal`].
pub fn fixup(reg: &Rseq, mem: &dyn AddressSpace, rip: &mut u64) -> Result<(), Fatal> {
    let cs = io::read_u64(mem, reg.addr + OFF_RSEQ_CS).map_err(|_| Fatal)?;
    if cs == 0 {
        return Ok(());
    }
    if cs >= TASK_SIZE {
        return Err(Fatal);
    }
    let mut d = [0u8; 32];
    io::read_exact(mem, cs, &mut d).map_err(|_| Fatal)?;
    let word = |i: usize| u64::from_ne_bytes(d[i..i + 8].try_into().unwrap_or([0; 8]));
    let version = u32::from_ne_bytes(d[0..4].try_into().unwrap_or([0xff; 4]));
    let flags = u32::from_ne_bytes(d[4..8].try_into().unwrap_or([0xff; 4]));
    let (start, post_commit, abort) = (word(8), word(16), word(24));
    if version != 0 || flags & CS_NO_RESTART_FLAGS != 0 {
        return Err(Fatal);
    }
    let end = start
        .checked_add(post_commit)
        .filter(|&e| e <= TASK_SIZE)
        .ok_or(Fatal)?;
    if (start..end).contains(&abort) {
        return Err(Fatal);
    }
    let clear = |mem: &dyn AddressSpace| io::write_u64(mem, reg.addr + OFF_RSEQ_CS, 0);
    if !(start..end).contains(rip) {
        return clear(mem).map_err(|_| Fatal);
    }
    let mut s = [0u8; 4];
    io::read_exact(mem, abort.checked_sub(4).ok_or(Fatal)?, &mut s).map_err(|_| Fatal)?;
    if u32::from_ne_bytes(s) != reg.sig {
        return Err(Fatal);
    }
    clear(mem).map_err(|_| Fatal)?;
    *rip = abort;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::fake::FakeSpace;
    use crate::platform::Backing;

    fn space() -> std::sync::Arc<FakeSpace> {
        let mem = FakeSpace::new();
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        mem.map(0x10000, 0x4000, rw, false, Backing::Anonymous)
            .unwrap();
        mem
    }

    const SIG: u32 = 0x5305_3053;

    #[test]
    fn registration_rules() {
        let mem = space();
        let area = 0x10000;
        let mut cur = None;
        let call = |cur: &mut Option<Rseq>, a: u64, l: u32, f: u32, s: u32| {
            syscall(cur, &*mem, a, l, f, s, 3)
        };
        assert_eq!(call(&mut cur, area, 16, 0, SIG), Err(Errno::EINVAL));
        assert_eq!(call(&mut cur, area + 8, 32, 0, SIG), Err(Errno::EINVAL));
        assert_eq!(call(&mut cur, area, 32, 2, SIG), Err(Errno::EINVAL));
        assert_eq!(call(&mut cur, area, 32, 0, SIG), Ok(0));
        assert_eq!(io::read_u64(&*mem, area).unwrap(), 3 | (3 << 32));
        assert_eq!(call(&mut cur, area, 32, 0, SIG), Err(Errno::EBUSY));
        assert_eq!(call(&mut cur, area, 32, 0, SIG + 1), Err(Errno::EPERM));
        assert_eq!(call(&mut cur, area + 32, 32, 0, SIG), Err(Errno::EINVAL));
        assert_eq!(
            call(&mut cur, area, 32, FLAG_UNREGISTER, SIG + 1),
            Err(Errno::EPERM)
        );
        assert_eq!(
            call(&mut cur, area, 64, FLAG_UNREGISTER, SIG),
            Err(Errno::EINVAL)
        );
        assert_eq!(call(&mut cur, area, 32, FLAG_UNREGISTER, SIG), Ok(0));
        assert!(cur.is_none());
        assert_eq!(
            io::read_u64(&*mem, area).unwrap(),
            u64::from(u32::MAX) << 32
        );
        assert_eq!(
            call(&mut cur, area, 32, FLAG_UNREGISTER, SIG),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn abort_inside_the_section_only() {
        let mem = space();
        let (area, desc, code) = (0x10000u64, 0x10040u64, 0x11000u64);
        let mut cur = None;
        syscall(&mut cur, &*mem, area, 32, 0, SIG, 0).unwrap();
        let reg = cur.unwrap();
        // start 0x11000, 0x20 bytes long, abort at 0x11104 behind its signature.
        let mut d = Vec::new();
        d.extend_from_slice(&0u32.to_ne_bytes());
        d.extend_from_slice(&0u32.to_ne_bytes());
        for w in [code, 0x20, code + 0x104] {
            d.extend_from_slice(&w.to_ne_bytes());
        }
        io::write_all(&*mem, desc, &d).unwrap();
        io::write_all(&*mem, code + 0x100, &SIG.to_ne_bytes()).unwrap();
        let mut rip;

        // Outside: only rseq_cs is cleared.
        io::write_u64(&*mem, area + OFF_RSEQ_CS, desc).unwrap();
        rip = code + 0x20;
        assert_eq!(fixup(&reg, &*mem, &mut rip), Ok(()));
        assert_eq!(rip, code + 0x20);
        assert_eq!(io::read_u64(&*mem, area + OFF_RSEQ_CS).unwrap(), 0);

        // Inside: to the abort handler.
        io::write_u64(&*mem, area + OFF_RSEQ_CS, desc).unwrap();
        rip = code + 0x10;
        assert_eq!(fixup(&reg, &*mem, &mut rip), Ok(()));
        assert_eq!(rip, code + 0x104);

        // A wrong signature is fatal.
        io::write_all(&*mem, code + 0x100, &(SIG + 1).to_ne_bytes()).unwrap();
        io::write_u64(&*mem, area + OFF_RSEQ_CS, desc).unwrap();
        rip = code + 0x10;
        assert_eq!(fixup(&reg, &*mem, &mut rip), Err(Fatal));
    }
}
