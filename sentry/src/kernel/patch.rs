//! Syscall patching: hot `syscall` sites of a process rewritten into a jump to its
//! platform's trampoline (systrap), which hands the call to the sentry without a
//! signal.
//!
//! The decision is the sentry's, at a trapped system call: the 7 bytes that end
//! with the `syscall` just made are one instruction of a known harmless kind (the
//! displaced instruction, re-run by the site's table entry) and the `syscall`, in
//! a private executable mapping that is not writable. They become
//! `jmp qword ptr [SLOT]` (`ff 24 25` and the slot's 32-bit address). The slot lies
//! in the process's *patch table*, a shared read-and-execute mapping of a memfd at
//! [`TABLE_ADDR`] that only the sentry writes (`pwrite` on the memfd); each entry
//! holds the slot (a pointer to its code) and the code: the displaced instruction,
//! `movabs rcx, SITE+7`, and a jump to the trampoline. Every slot address has 0x06
//! as its third byte, which lands where the `syscall` was: an invalid opcode, so a
//! thread that jumps there (or is restarted there) faults, and the platform starts
//! it over at the site (see `AddressSpace::note_patched_syscall`).
//!
//! The rewrite is three writes, each of which leaves valid code for a thread that
//! runs it: the `syscall`'s first byte becomes 0x06 (a thread past the first
//! instruction faults and starts over), then the bytes after the first (the third
//! byte of the address is 0x06 too, so that byte is unchanged and a thread still
//! decoding the old first instruction faults there), then the first byte. The code
//! page is made writable in the host for the writes only; its protection in the
//! sentry's model never changes.
//!
//! A process's patching stops for good (and its patched sites are restored) when
//! it sets a non-zero gs base, which the trampoline uses to find its thread's
//! region, or maps, unmaps, moves or protects anything over the table;
//! [`forbid`] is also the switch for a tracer. A fork's child inherits the
//! patched code, the table mapping and the record of sites; exec starts clean.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};

use crate::errno::{Errno, SysResult};
use crate::mm::{Mappable, MemoryManager, MmapRequest, VmaBacking, VmaRole};
use crate::platform::{Regs, PAGE_SIZE};
use crate::sys::host;

/// Where a process's patch table is mapped: below 2 GiB (the jump's address is a
/// sign-extended 32-bit one) and with 0x06 as the third byte of every address in
/// the table.
pub const TABLE_ADDR: u64 = 0x6_0000;
/// Size of the table.
const TABLE_LEN: u64 = 0x4000;
/// The table's header: the trampoline's address (word 0), then nothing.
const HEADER: u64 = 64;
/// Size of one entry: the slot (8 bytes) and the code.
const ENTRY: u64 = 32;
/// How many entries a table holds.
const ENTRIES: u64 = (TABLE_LEN - HEADER) / ENTRY;
/// The most sites a process looks at and leaves alone that it remembers.
const MAX_SKIPPED: usize = 4096;
/// How many traps a site takes before it is patched. A patch costs two protection
/// changes of the code page, each a round trip to the stub's syscall thread (20-130
/// us, the more the busier the host), while a patched call saves about a
/// microsecond over a trapped one: patching at the first trap made every short-lived
/// process pay for sites it calls once or twice (a fork's child patched its `_exit`;
/// an exec'd static program 7 sites, 15 of its 26 round trips; measured with counters
/// on the systrap platform).
pub const HOT_TRAPS: u8 = 8;
/// The invalid opcode that the patch leaves where the `syscall` was.
const FAULT_BYTE: u8 = 0x06;

/// The instructions a patch may displace: 5 bytes, position-independent, and
/// harmless to run a second time when a thread starts the site over.
fn displaceable(insn: &[u8], nr: u64) -> bool {
    match insn {
        // mov eax, imm32 (glibc's wrappers): the number of the call made.
        [0xb8, a, b, c, d] => u32::from_le_bytes([*a, *b, *c, *d]) as u64 == nr,
        // mov r9, [rsp+8] (glibc's syscall(2)).
        [0x4c, 0x8b, 0x4c, 0x24, 0x08] => true,
        _ => false,
    }
}

/// The memfd behind a patch table.
struct TableMem {
    fd: OwnedFd,
}

impl Mappable for TableMem {
    fn host_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
    fn display_name(&self) -> String {
        String::new()
    }
    fn dev_ino(&self) -> (u64, u64) {
        (0, 0)
    }
}

/// A patch table: shared by a process and its forks (a shared mapping), so its
/// entries are allocated once for all of them.
pub struct Table {
    mem: Arc<TableMem>,
    next: Mutex<u64>,
}

impl Table {
    fn new(trampoline: u64) -> SysResult<Table> {
        use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
        let fd = memfd_create(c"rvisor-patch", MemFdCreateFlag::MFD_CLOEXEC)?;
        nix::unistd::ftruncate(&fd, TABLE_LEN as i64)?;
        let mut header = [0xccu8; HEADER as usize];
        header[..8].copy_from_slice(&trampoline.to_le_bytes());
        write_all(fd.as_fd(), &header, 0)?;
        Ok(Table {
            mem: Arc::new(TableMem { fd }),
            next: Mutex::new(0),
        })
    }

    /// Writes an entry for `site` (displacing `insn`) and returns its slot address.
    fn add(&self, site: u64, insn: &[u8]) -> SysResult<u64> {
        let mut next = self.next.lock().map_err(|_| Errno::EIO)?;
        if *next >= ENTRIES {
            return Err(Errno::ENOSPC);
        }
        let off = HEADER + *next * ENTRY;
        let slot = TABLE_ADDR + off;
        let e = entry(slot, site, insn);
        write_all(self.mem.fd.as_fd(), &e, off)?;
        *next += 1;
        Ok(slot)
    }
}

/// The bytes of the entry at `slot` for `site`: the slot (the address of the code
/// right after it), the displaced instruction, `movabs rcx, site + 7`, and
/// `jmp qword ptr [rip + d]` to the trampoline's address in the table's first word.
fn entry(slot: u64, site: u64, insn: &[u8]) -> [u8; ENTRY as usize] {
    let mut e = [0xccu8; ENTRY as usize];
    e[..8].copy_from_slice(&(slot + 8).to_le_bytes());
    e[8..13].copy_from_slice(insn);
    e[13] = 0x48;
    e[14] = 0xb9;
    e[15..23].copy_from_slice(&(site + 7).to_le_bytes());
    e[23] = 0xff;
    e[24] = 0x25;
    let after = slot + 29;
    let d = TABLE_ADDR as i64 - after as i64;
    e[25..29].copy_from_slice(&(d as i32).to_le_bytes());
    e
}

/// The 7 bytes that replace a site: `jmp qword ptr [slot]`.
fn jump(slot: u64) -> [u8; 7] {
    let a = (slot as u32).to_le_bytes();
    [0xff, 0x24, 0x25, a[0], a[1], a[2], a[3]]
}

fn write_all(fd: BorrowedFd<'_>, buf: &[u8], off: u64) -> SysResult<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = host::pwrite(fd, &buf[done..], off + done as u64)?;
        if n == 0 {
            return Err(Errno::EIO);
        }
        done += n;
    }
    Ok(())
}

/// One process's patching state (kept with its memory manager).
#[derive(Clone, Default)]
pub struct PatchState {
    table: Option<Arc<Table>>,
    /// Patched sites and their original bytes.
    sites: HashMap<u64, [u8; 7]>,
    /// Sites looked at and left alone.
    skipped: HashSet<u64>,
    /// Traps taken so far at sites not yet hot (at most [`MAX_SKIPPED`] sites: once
    /// full, new sites stay trapping).
    traps: HashMap<u64, u8>,
    /// Patching is off for this process.
    off: bool,
}

impl PatchState {
    /// Whether patching is off for this process.
    pub fn is_off(&self) -> bool {
        self.off
    }

    /// How many sites are patched.
    pub fn patched(&self) -> usize {
        self.sites.len()
    }
}

/// Called at each trapped system call of a sandbox that patches
/// ([`crate::kernel::Kernel::syscall_patching`]; `regs` as the trap left them,
/// `rip` past the `syscall`): patches its site when it can. Failures only leave
/// the site trapping.
pub fn consider(mm: &mut MemoryManager, regs: &Regs) {
    if mm.patch.off {
        return;
    }
    let Some(site) = regs.rip.checked_sub(7) else {
        return;
    };
    if mm.patch.sites.contains_key(&site) || mm.patch.skipped.contains(&site) {
        return;
    }
    if !hot(&mut mm.patch.traps, site) {
        return;
    }
    let Some(trampoline) = mm.space().syscall_trampoline() else {
        mm.patch.off = true;
        return;
    };
    match try_patch(mm, site, regs.orig_rax, trampoline) {
        Ok(()) => {}
        Err(e) => {
            tracing::debug!(site = format_args!("{site:#x}"), error = %e.name(), "syscall site not patched");
            if mm.patch.skipped.len() < MAX_SKIPPED {
                mm.patch.skipped.insert(site);
            }
        }
    }
}

/// Counts a trap at `site`; whether it has now taken [`HOT_TRAPS`] (it is then
/// forgotten: patched or skipped from here on).
fn hot(traps: &mut HashMap<u64, u8>, site: u64) -> bool {
    if let Some(n) = traps.get_mut(&site) {
        *n += 1;
        if *n < HOT_TRAPS {
            return false;
        }
        traps.remove(&site);
        return true;
    }
    if HOT_TRAPS <= 1 {
        return true;
    }
    if traps.len() < MAX_SKIPPED {
        traps.insert(site, 1);
    }
    false
}

fn try_patch(mm: &mut MemoryManager, site: u64, nr: u64, trampoline: u64) -> SysResult<()> {
    // The window lies in one page of one private, executable, read-only mapping.
    let page = site & !(PAGE_SIZE - 1);
    if site + 7 > page + PAGE_SIZE {
        return Err(Errno::EINVAL);
    }
    let prot = {
        let v = mm.vma_at(site).ok_or(Errno::EFAULT)?;
        if v.shared
            || v.role != VmaRole::Plain
            || v.prot & libc::PROT_EXEC == 0
            || v.prot & libc::PROT_WRITE != 0
            || v.prot & libc::PROT_READ == 0
        {
            return Err(Errno::EPERM);
        }
        v.prot
    };
    let mut old = [0u8; 7];
    crate::mm::io::read_exact(mm.space().as_ref(), site, &mut old)?;
    if old[5..] != [0x0f, 0x05] || !displaceable(&old[..5], nr) {
        return Err(Errno::ENOEXEC);
    }
    let table = table(mm, trampoline)?;
    let slot = table.add(site, &old[..5])?;
    let new = jump(slot);
    debug_assert_eq!(new[5], FAULT_BYTE);
    let space = mm.space().clone();
    // From here a fault at site + 5 starts the thread over at the site.
    space.note_patched_syscall(site);
    space.protect(page, PAGE_SIZE, prot | libc::PROT_WRITE)?;
    let r = write_steps(
        space.as_ref(),
        site,
        &[(5, &new[5..6]), (1, &new[1..]), (0, &new[..1])],
    );
    let back = space.protect(page, PAGE_SIZE, prot);
    r?;
    back?;
    mm.patch.sites.insert(site, old);
    Ok(())
}

/// Writes each `(offset, bytes)` at `site + offset`, in order.
fn write_steps(
    space: &dyn crate::platform::AddressSpace,
    site: u64,
    steps: &[(u64, &[u8])],
) -> SysResult<()> {
    for (off, b) in steps {
        if space.write(site + off, b)? != b.len() {
            return Err(Errno::EFAULT);
        }
    }
    Ok(())
}

/// The process's table, mapped on first use.
fn table(mm: &mut MemoryManager, trampoline: u64) -> SysResult<Arc<Table>> {
    if let Some(t) = &mm.patch.table {
        // Still ours: the application may have unmapped it or mapped over it.
        let ours = mm
            .vma_at(TABLE_ADDR)
            .is_some_and(|v| v.role == VmaRole::Patch);
        if !ours {
            mm.patch.off = true;
            return Err(Errno::EEXIST);
        }
        return Ok(t.clone());
    }
    let t = Arc::new(Table::new(trampoline)?);
    let r = mm.mmap(MmapRequest {
        addr: TABLE_ADDR,
        len: TABLE_LEN,
        prot: libc::PROT_READ | libc::PROT_EXEC,
        // Never writable by the application.
        max_prot: libc::PROT_READ | libc::PROT_EXEC,
        shared: true,
        fixed: true,
        fixed_noreplace: true,
        backing: VmaBacking::File {
            file: t.mem.clone(),
            offset: 0,
        },
        noreserve: false,
        role: VmaRole::Patch,
    });
    if let Err(e) = r {
        // The application has something there: no patching for it.
        mm.patch.off = true;
        return Err(e);
    }
    mm.patch.table = Some(t.clone());
    Ok(t)
}

/// Puts the `syscall` at `site` back if it is patched, and leaves it trapping from
/// now on: the application's own seccomp filter stopped a call made there, and a
/// handler of its SIGSYS may read the code before `si_call_addr`, which must then be
/// the `syscall` instruction, as on Linux.
pub fn restore_site(mm: &mut MemoryManager, site: u64) {
    let Some(old) = mm.patch.sites.remove(&site) else {
        return;
    };
    if let Err(e) = unpatch(mm, site, &old) {
        tracing::debug!(site = format_args!("{site:#x}"), error = %e.name(), "patched syscall site left as is");
    }
    if mm.patch.skipped.len() < MAX_SKIPPED {
        mm.patch.skipped.insert(site);
    }
}

/// Called before the process's mappings of `[start, end)` change (mmap over it,
/// munmap, mprotect, mremap): if that touches the patch table, the patched sites,
/// which jump through it, are put back first and patching stops for the process.
pub fn before_edit(mm: &mut MemoryManager, start: u64, end: u64) {
    if mm.patch.table.is_some() && start < TABLE_ADDR + TABLE_LEN && end > TABLE_ADDR {
        forbid(mm);
    }
}

/// Stops patching in this process for good and puts back every patched site it
/// can (the code is still the patch and still a private executable mapping).
pub fn forbid(mm: &mut MemoryManager) {
    mm.patch.off = true;
    let sites: Vec<(u64, [u8; 7])> = mm.patch.sites.drain().collect();
    for (site, old) in sites {
        if let Err(e) = unpatch(mm, site, &old) {
            tracing::debug!(site = format_args!("{site:#x}"), error = %e.name(), "patched syscall site left as is");
        }
    }
}

fn unpatch(mm: &mut MemoryManager, site: u64, old: &[u8; 7]) -> SysResult<()> {
    let prot = {
        let v = mm.vma_at(site).ok_or(Errno::EFAULT)?;
        if v.shared || v.prot & libc::PROT_EXEC == 0 {
            return Err(Errno::EPERM);
        }
        v.prot
    };
    let mut cur = [0u8; 7];
    crate::mm::io::read_exact(mm.space().as_ref(), site, &mut cur)?;
    if cur[..3] != [0xff, 0x24, 0x25] || cur[5] != FAULT_BYTE {
        return Err(Errno::ENOEXEC);
    }
    let page = site & !(PAGE_SIZE - 1);
    let space = mm.space().clone();
    space.protect(page, PAGE_SIZE, prot | libc::PROT_WRITE)?;
    // The reverse order: the first byte (a thread decoding it faults at site + 5 and
    // starts over), the middle bytes, and last the `syscall`.
    let mid = [old[1], old[2], old[3], old[4], FAULT_BYTE, old[6]];
    let r = write_steps(
        space.as_ref(),
        site,
        &[(0, &old[..1]), (1, &mid), (5, &old[5..6])],
    );
    let back = space.protect(page, PAGE_SIZE, prot);
    r?;
    back
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_is_hot_after_its_traps_and_counting_is_bounded() {
        let mut traps = HashMap::new();
        for _ in 1..HOT_TRAPS {
            assert!(!hot(&mut traps, 0x1000));
        }
        assert!(hot(&mut traps, 0x1000));
        assert!(traps.is_empty());
        for i in 0..MAX_SKIPPED as u64 {
            assert!(!hot(&mut traps, 0x10_0000 + i));
        }
        // Full: a new site is not counted, so never becomes hot.
        for _ in 0..2 * HOT_TRAPS {
            assert!(!hot(&mut traps, 0x1000));
        }
        assert_eq!(traps.len(), MAX_SKIPPED);
    }

    #[test]
    fn slots_put_an_invalid_opcode_where_the_syscall_was() {
        for i in 0..ENTRIES {
            let slot = TABLE_ADDR + HEADER + i * ENTRY;
            let j = jump(slot);
            assert_eq!(j[5], FAULT_BYTE, "slot {slot:#x}");
            assert_eq!(j[6], 0);
            assert!(slot + ENTRY <= TABLE_ADDR + TABLE_LEN);
        }
    }

    #[test]
    fn entries_run_the_displaced_instruction_and_jump_to_the_trampoline() {
        let slot = TABLE_ADDR + HEADER + 3 * ENTRY;
        let site = 0x40_1234u64;
        let e = entry(slot, site, &[0xb8, 39, 0, 0, 0]);
        assert_eq!(u64::from_le_bytes(e[..8].try_into().unwrap()), slot + 8);
        assert_eq!(&e[8..13], &[0xb8, 39, 0, 0, 0]);
        assert_eq!(&e[13..15], &[0x48, 0xb9]);
        assert_eq!(u64::from_le_bytes(e[15..23].try_into().unwrap()), site + 7);
        assert_eq!(&e[23..25], &[0xff, 0x25]);
        let d = i32::from_le_bytes(e[25..29].try_into().unwrap()) as i64;
        assert_eq!((slot as i64 + 29 + d) as u64, TABLE_ADDR);
    }

    #[test]
    fn only_known_instructions_are_displaced() {
        assert!(displaceable(&[0xb8, 39, 0, 0, 0], 39));
        // The immediate must be the call that trapped.
        assert!(!displaceable(&[0xb8, 39, 0, 0, 0], 40));
        assert!(displaceable(&[0x4c, 0x8b, 0x4c, 0x24, 0x08], 1));
        // mov eax, [rip+d] or a jump must never be moved.
        assert!(!displaceable(&[0x8b, 0x05, 0, 0, 0], 0));
        assert!(!displaceable(&[0xe9, 0, 0, 0, 0], 0));
        assert!(!displaceable(&[0xe8, 0, 0, 0, 0], 0));
    }
}
