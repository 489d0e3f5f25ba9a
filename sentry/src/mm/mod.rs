//! Address-space bookkeeping: the VMA list of one application process, brk, and the
//! mmap/munmap/mprotect/mremap/madvise logic. Every change is applied to the
//! platform's [`AddressSpace`] and recorded here, so the sentry always knows the layout
//! (for `/proc/PID/maps`, validation and placement) without asking the host.

pub mod io;

#[cfg(test)]
pub mod fake;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::platform::{page_round_up, AddressSpace, Backing, PAGE_SIZE};

/// A host file that application memory can be mapped from.
pub trait Mappable: Send + Sync {
    /// The host fd to map (a gofer-donated fd or the memory file).
    fn host_fd(&self) -> BorrowedFd<'_>;
    /// Where file offset 0 lies in [`Mappable::host_fd`] (tmpfs files are windows of
    /// the one memory file).
    fn base_offset(&self) -> u64 {
        0
    }
    /// The name `/proc/PID/maps` shows for it.
    fn display_name(&self) -> String;
    /// Device and inode numbers as the application sees them.
    fn dev_ino(&self) -> (u64, u64);
}

/// What a VMA is backed by.
#[derive(Clone)]
pub enum VmaBacking {
    /// Zero-filled memory.
    Anonymous,
    /// A file at a byte offset (page aligned) corresponding to the VMA's start.
    File {
        /// The file.
        file: Arc<dyn Mappable>,
        /// File offset of the VMA's first byte.
        offset: u64,
    },
}

/// Special names of anonymous regions in `/proc/PID/maps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaRole {
    /// Ordinary mapping.
    Plain,
    /// The brk heap.
    Heap,
    /// The main thread's stack.
    Stack,
    /// The vDSO's code.
    Vdso,
    /// The vDSO's data page.
    Vvar,
    /// The syscall patch table (see `kernel::patch`).
    Patch,
}

/// One contiguous mapping with uniform attributes.
#[derive(Clone)]
pub struct Vma {
    /// First byte (page aligned).
    pub start: u64,
    /// One past the last byte (page aligned).
    pub end: u64,
    /// `PROT_*` bits.
    pub prot: i32,
    /// The `PROT_*` bits `mprotect` may ever give it (Linux's `VM_MAY*`): a shared
    /// mapping of a file not open for writing never becomes writable, one of a
    /// file on a `noexec` mount never executable.
    pub max_prot: i32,
    /// MAP_SHARED rather than MAP_PRIVATE.
    pub shared: bool,
    /// What backs it.
    pub backing: VmaBacking,
    /// Heap, stack or neither.
    pub role: VmaRole,
    /// For shared anonymous memory: the region's identity and the address its offset
    /// 0 would be at (so every piece of it, after splits and moves, names the same
    /// bytes the same way: shared futexes key on this).
    pub shared_anon: Option<(u64, u64)>,
    /// Locked with `mlock`/`mlockall` (counted against `RLIMIT_MEMLOCK`; the sentry
    /// never pages application memory out, so locking is bookkeeping).
    pub locked: bool,
    /// MAP_NORESERVE: anonymous memory the host maps without committing swap space
    /// for it, so a sparse reservation larger than memory (a sanitizer's shadow,
    /// a garbage collector's heap) succeeds as it does on Linux.
    pub noreserve: bool,
}

impl Vma {
    fn file_offset_at(&self, addr: u64) -> u64 {
        match &self.backing {
            VmaBacking::File { offset, .. } => offset + (addr - self.start),
            VmaBacking::Anonymous => 0,
        }
    }

    /// The part of this VMA in `[start, end)`, with its file offset adjusted.
    fn slice(&self, start: u64, end: u64) -> Vma {
        let mut v = self.clone();
        if let VmaBacking::File { offset, .. } = &mut v.backing {
            *offset += start - self.start;
        }
        v.start = start;
        v.end = end;
        v
    }
}

/// What an `mmap` call asks for, already decoded from the syscall arguments.
pub struct MmapRequest {
    /// Hint or fixed address.
    pub addr: u64,
    /// Length in bytes (not yet rounded).
    pub len: u64,
    /// `PROT_*`.
    pub prot: i32,
    /// What `mprotect` may later allow ([`PROT_MAY_ALL`] unless the file's open mode
    /// or mount says less).
    pub max_prot: i32,
    /// MAP_SHARED (or MAP_SHARED_VALIDATE).
    pub shared: bool,
    /// MAP_FIXED: replace whatever is there.
    pub fixed: bool,
    /// MAP_FIXED_NOREPLACE: fixed, but EEXIST if anything is there.
    pub fixed_noreplace: bool,
    /// Backing.
    pub backing: VmaBacking,
    /// Role for `/proc/PID/maps`.
    pub role: VmaRole,
    /// MAP_NORESERVE (see [`Vma::noreserve`]).
    pub noreserve: bool,
}

/// Every access `mprotect` can grant.
pub const PROT_MAY_ALL: i32 = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;

/// The `mremap` flag bits the sentry understands.
pub const MREMAP_MAYMOVE: u64 = 1;
/// See `mremap(2)`.
pub const MREMAP_FIXED: u64 = 2;
/// See `mremap(2)`.
pub const MREMAP_DONTUNMAP: u64 = 4;

/// The memory of one application process.
pub struct MemoryManager {
    space: Arc<dyn AddressSpace>,
    vmas: BTreeMap<u64, Vma>,
    min_addr: u64,
    max_addr: u64,
    mmap_top: u64,
    brk_start: u64,
    brk: u64,
    /// Where argv strings live, for `/proc/PID/cmdline`.
    pub arg_range: (u64, u64),
    /// Where envp strings live, for `/proc/PID/environ`.
    pub env_range: (u64, u64),
    /// The auxiliary vector exec put on the stack, `AT_NULL` pair included, as
    /// native-endian words (`/proc/PID/auxv`).
    pub auxv: Vec<u64>,
    /// `mlockall(MCL_FUTURE)`: new mappings are locked.
    lock_future: bool,
    /// Which `syscall` sites of this process are patched (see `kernel::patch`).
    pub patch: crate::kernel::patch::PatchState,
}

impl MemoryManager {
    /// A manager with nothing mapped, over `space`, allowed `[min_addr, max_addr)`.
    /// Mappings without a fixed address are placed top-down below `mmap_top`.
    pub fn new(space: Arc<dyn AddressSpace>, min_addr: u64, max_addr: u64, mmap_top: u64) -> Self {
        MemoryManager {
            space,
            vmas: BTreeMap::new(),
            min_addr,
            max_addr,
            mmap_top: mmap_top.min(max_addr),
            brk_start: 0,
            brk: 0,
            arg_range: (0, 0),
            env_range: (0, 0),
            auxv: Vec::new(),
            lock_future: false,
            patch: Default::default(),
        }
    }

    /// The bookkeeping for a forked copy of this address space, living in `space`
    /// (which the platform already made a copy-on-write copy of).
    pub fn fork_into(&self, space: Arc<dyn AddressSpace>) -> MemoryManager {
        // Memory locks are not inherited by a child (mlock(2)).
        let mut vmas = self.vmas.clone();
        for v in vmas.values_mut() {
            v.locked = false;
        }
        MemoryManager {
            space,
            vmas,
            min_addr: self.min_addr,
            max_addr: self.max_addr,
            mmap_top: self.mmap_top,
            brk_start: self.brk_start,
            brk: self.brk,
            arg_range: self.arg_range,
            env_range: self.env_range,
            auxv: self.auxv.clone(),
            lock_future: false,
            // The child's code is a copy of ours, patched sites included.
            patch: self.patch.clone(),
        }
    }

    /// The platform address space, for memory reads and writes.
    pub fn space(&self) -> &Arc<dyn AddressSpace> {
        &self.space
    }

    /// All VMAs in address order.
    pub fn vmas(&self) -> impl Iterator<Item = &Vma> {
        self.vmas.values()
    }

    /// Sets where the brk heap starts (right after the loaded image).
    pub fn set_brk_start(&mut self, addr: u64) {
        let a = page_round_up(addr).unwrap_or(addr);
        self.brk_start = a;
        self.brk = a;
    }

    /// The current program break.
    pub fn brk_current(&self) -> u64 {
        self.brk
    }

    fn range_ok(&self, start: u64, len: u64) -> SysResult<u64> {
        let end = start.checked_add(len).ok_or(Errno::ENOMEM)?;
        if start < self.min_addr || end > self.max_addr {
            return Err(Errno::ENOMEM);
        }
        Ok(end)
    }

    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.vmas
            .range(..end)
            .next_back()
            .is_some_and(|(_, v)| v.end > start)
    }

    /// True if every byte of `[start, end)` is mapped.
    pub fn fully_mapped(&self, start: u64, end: u64) -> bool {
        let mut cur = start;
        for (_, v) in self.vmas.range(..end) {
            if v.end <= cur {
                continue;
            }
            if v.start > cur {
                return false;
            }
            cur = v.end;
            if cur >= end {
                return true;
            }
        }
        cur >= end
    }

    /// Finds a free, page-aligned range of `len` bytes, top-down below the mmap top.
    fn find_free(&self, len: u64) -> SysResult<u64> {
        let mut top = self.mmap_top;
        for (_, v) in self.vmas.range(..self.mmap_top).rev() {
            if v.end <= top && top - v.end >= len {
                return Ok(top - len);
            }
            top = top.min(v.start);
        }
        match top.checked_sub(len) {
            Some(a) if a >= self.min_addr => Ok(a),
            _ => Err(Errno::ENOMEM),
        }
    }

    /// A free range of `len` bytes (page aligned), where `mmap` without an address
    /// would put it.
    pub fn free_range(&self, len: u64) -> SysResult<u64> {
        self.find_free(page_round_up(len).ok_or(Errno::ENOMEM)?)
    }

    /// Removes `[start, end)` from the bookkeeping, splitting VMAs at its edges.
    fn forget_range(&mut self, start: u64, end: u64) {
        let hit: Vec<u64> = self
            .vmas
            .range(..end)
            .filter(|(_, v)| v.end > start)
            .map(|(k, _)| *k)
            .collect();
        for k in hit {
            let Some(v) = self.vmas.remove(&k) else {
                continue;
            };
            if v.start < start {
                self.vmas.insert(v.start, v.slice(v.start, start));
            }
            if v.end > end {
                self.vmas.insert(end, v.slice(end, v.end));
            }
        }
    }

    fn apply_map(&self, v: &Vma) -> SysResult<()> {
        let backing = match &v.backing {
            VmaBacking::Anonymous if v.noreserve => Backing::AnonymousNoReserve,
            VmaBacking::Anonymous => Backing::Anonymous,
            VmaBacking::File { file, offset } => Backing::File {
                fd: file.host_fd(),
                offset: file.base_offset() + *offset,
            },
        };
        self.space
            .map(v.start, v.end - v.start, v.prot, v.shared, backing)
    }

    /// `mmap(2)`: returns the address of the new mapping.
    pub fn mmap(&mut self, req: MmapRequest) -> SysResult<u64> {
        if req.len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_round_up(req.len).ok_or(Errno::ENOMEM)?;
        if let VmaBacking::File { offset, .. } = &req.backing {
            if !offset.is_multiple_of(PAGE_SIZE) {
                return Err(Errno::EINVAL);
            }
            // Linux's bound for a regular file: the mapping must end within the
            // largest file size (MAX_LFS_FILESIZE).
            if offset
                .checked_add(len)
                .is_none_or(|end| end > i64::MAX as u64)
            {
                return Err(Errno::EOVERFLOW);
            }
        }
        if req.prot & !req.max_prot & PROT_MAY_ALL != 0 {
            return Err(Errno::EACCES);
        }
        let addr = if req.fixed || req.fixed_noreplace {
            if !req.addr.is_multiple_of(PAGE_SIZE) {
                return Err(Errno::EINVAL);
            }
            let end = self.range_ok(req.addr, len)?;
            if req.fixed_noreplace && self.overlaps(req.addr, end) {
                return Err(Errno::EEXIST);
            }
            req.addr
        } else {
            let hint = req.addr & !(PAGE_SIZE - 1);
            match hint.checked_add(len) {
                Some(end)
                    if hint >= self.min_addr
                        && end <= self.max_addr
                        && !self.overlaps(hint, end) =>
                {
                    hint
                }
                _ => self.find_free(len)?,
            }
        };
        let vma = Vma {
            start: addr,
            end: addr + len,
            prot: req.prot,
            max_prot: req.max_prot,
            shared: req.shared,
            backing: req.backing,
            role: req.role,
            shared_anon: None,
            locked: self.lock_future,
            noreserve: req.noreserve,
        };
        let mut vma = vma;
        if vma.shared && matches!(vma.backing, VmaBacking::Anonymous) {
            static NEXT_SHARED_ANON: std::sync::atomic::AtomicU64 =
                std::sync::atomic::AtomicU64::new(1);
            vma.shared_anon = Some((
                NEXT_SHARED_ANON.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                addr,
            ));
        }
        crate::kernel::patch::before_edit(self, vma.start, vma.end);
        self.apply_map(&vma)?;
        self.forget_range(vma.start, vma.end);
        self.vmas.insert(vma.start, vma);
        Ok(addr)
    }

    /// `munmap(2)`.
    pub fn munmap(&mut self, addr: u64, len: u64) -> SysResult<()> {
        if !addr.is_multiple_of(PAGE_SIZE) || len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_round_up(len).ok_or(Errno::EINVAL)?;
        let end = addr.checked_add(len).ok_or(Errno::EINVAL)?;
        if end > self.max_addr {
            return Err(Errno::EINVAL);
        }
        if !self.overlaps(addr, end) {
            return Ok(());
        }
        crate::kernel::patch::before_edit(self, addr, end);
        self.space.unmap(addr, len)?;
        self.forget_range(addr, end);
        Ok(())
    }

    /// `mprotect(2)`.
    pub fn mprotect(&mut self, addr: u64, len: u64, prot: i32) -> SysResult<()> {
        const KNOWN: i32 = libc::PROT_READ
            | libc::PROT_WRITE
            | libc::PROT_EXEC
            | libc::PROT_GROWSDOWN
            | libc::PROT_GROWSUP;
        if !addr.is_multiple_of(PAGE_SIZE) || prot & !KNOWN != 0 {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(());
        }
        let len = page_round_up(len).ok_or(Errno::ENOMEM)?;
        let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
        if !self.fully_mapped(addr, end) {
            return Err(Errno::ENOMEM);
        }
        let prot = prot & !(libc::PROT_GROWSDOWN | libc::PROT_GROWSUP);
        // Nothing changes if any VMA of the range may not take `prot` (Linux applies
        // the VMAs before the first refused one; refusing the whole call is stricter
        // and gives the same error).
        let refused = self
            .vmas
            .range(..end)
            .filter(|(_, v)| v.end > addr)
            .any(|(_, v)| prot & !v.max_prot & PROT_MAY_ALL != 0);
        if refused {
            return Err(Errno::EACCES);
        }
        crate::kernel::patch::before_edit(self, addr, end);
        self.space.protect(addr, len, prot)?;
        self.edit_range(addr, end, |v| v.prot = prot);
        Ok(())
    }

    /// Applies `edit` to the VMAs of `[addr, end)`, split at its ends.
    fn edit_range(&mut self, addr: u64, end: u64, edit: impl Fn(&mut Vma)) {
        let parts: Vec<Vma> = self
            .vmas
            .range(..end)
            .filter(|(_, v)| v.end > addr)
            .map(|(_, v)| v.slice(v.start.max(addr), v.end.min(end)))
            .collect();
        self.forget_range(addr, end);
        for mut p in parts {
            edit(&mut p);
            self.vmas.insert(p.start, p);
        }
    }

    /// `brk(2)`: moves the break if it can and returns the (possibly unchanged) break.
    pub fn brk(&mut self, want: u64) -> u64 {
        if want < self.brk_start || self.brk_start == 0 {
            return self.brk;
        }
        let Some(new_end) = page_round_up(want) else {
            return self.brk;
        };
        let Some(old_end) = page_round_up(self.brk) else {
            return self.brk;
        };
        if new_end > old_end {
            if new_end > self.max_addr || self.overlaps(old_end, new_end) {
                return self.brk;
            }
            let vma = Vma {
                start: old_end,
                end: new_end,
                prot: libc::PROT_READ | libc::PROT_WRITE,
                max_prot: PROT_MAY_ALL,
                shared: false,
                backing: VmaBacking::Anonymous,
                role: VmaRole::Heap,
                shared_anon: None,
                locked: self.lock_future,
                noreserve: false,
            };
            if self.apply_map(&vma).is_err() {
                return self.brk;
            }
            // Extend the heap VMA rather than stacking a new one per call, so the
            // heap stays one `[heap]` region.
            match self.vmas.range_mut(..old_end).next_back() {
                Some((_, prev)) if prev.end == old_end && prev.role == VmaRole::Heap => {
                    prev.end = new_end
                }
                _ => {
                    self.vmas.insert(vma.start, vma);
                }
            }
        } else if new_end < old_end {
            if self.space.unmap(new_end, old_end - new_end).is_err() {
                return self.brk;
            }
            self.forget_range(new_end, old_end);
        }
        self.brk = want;
        self.brk
    }

    /// `mremap(2)`.
    pub fn mremap(
        &mut self,
        old: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
    ) -> SysResult<u64> {
        if !old.is_multiple_of(PAGE_SIZE)
            || flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) != 0
        {
            return Err(Errno::EINVAL);
        }
        if flags & MREMAP_FIXED != 0 && flags & MREMAP_MAYMOVE == 0 {
            return Err(Errno::EINVAL);
        }
        if flags & MREMAP_DONTUNMAP != 0 {
            // Rarely used; refuse rather than half-implement it.
            return Err(Errno::EINVAL);
        }
        let old_len = page_round_up(old_len).ok_or(Errno::EINVAL)?;
        let new_len = page_round_up(new_len).ok_or(Errno::EINVAL)?;
        if new_len == 0 || old_len == 0 {
            return Err(Errno::EINVAL);
        }
        crate::kernel::patch::before_edit(self, old, old.saturating_add(old_len));
        if flags & MREMAP_FIXED != 0 {
            crate::kernel::patch::before_edit(self, new_addr, new_addr.saturating_add(new_len));
        }
        let old_end = old.checked_add(old_len).ok_or(Errno::EFAULT)?;
        let vma = match self.vmas.range(..=old).next_back() {
            Some((_, v)) if v.end > old => v.clone(),
            _ => return Err(Errno::EFAULT),
        };
        if vma.end < old_end {
            return Err(Errno::EFAULT);
        }
        let fixed = flags & MREMAP_FIXED != 0;
        if !fixed && new_len <= old_len {
            if new_len < old_len {
                self.munmap(old + new_len, old_len - new_len)?;
            }
            return Ok(old);
        }
        if !fixed {
            // Grow in place when the space after is free: map the extension with the
            // same backing, continuing the file offset.
            let grow_end = old.checked_add(new_len).ok_or(Errno::ENOMEM)?;
            if old_end == vma.end && grow_end <= self.max_addr && !self.overlaps(old_end, grow_end)
            {
                let mut ext = vma.slice(vma.start, vma.end);
                ext.backing = match &vma.backing {
                    VmaBacking::Anonymous => VmaBacking::Anonymous,
                    VmaBacking::File { file, .. } => VmaBacking::File {
                        file: file.clone(),
                        offset: vma.file_offset_at(old_end),
                    },
                };
                ext.start = old_end;
                ext.end = grow_end;
                self.apply_map(&ext)?;
                // One VMA, as Linux keeps it: a later mremap of the whole grown range
                // must find it in a single VMA.
                if let Some(v) = self.vmas.get_mut(&vma.start) {
                    v.end = grow_end;
                }
                return Ok(old);
            }
            if flags & MREMAP_MAYMOVE == 0 {
                return Err(Errno::ENOMEM);
            }
        }
        let dest = if fixed {
            if !new_addr.is_multiple_of(PAGE_SIZE) {
                return Err(Errno::EINVAL);
            }
            let dest_end = self
                .range_ok(new_addr, new_len)
                .map_err(|_| Errno::EINVAL)?;
            if new_addr < old_end && old < dest_end {
                return Err(Errno::EINVAL);
            }
            self.munmap(new_addr, new_len)?;
            new_addr
        } else {
            self.find_free(new_len)?
        };
        self.space.remap(old, old_len, dest, new_len)?;
        let mut moved = vma.slice(old, old_end);
        moved.start = dest;
        moved.end = dest + new_len;
        if let Some((id, base)) = moved.shared_anon {
            moved.shared_anon = Some((id, base.wrapping_add(dest).wrapping_sub(old)));
        }
        self.forget_range(old, old_end);
        self.vmas.insert(dest, moved);
        Ok(dest)
    }

    /// `msync(2)`: checks the arguments and that the range is mapped. Shared file
    /// mappings map the file's own host pages (or the memory file), so nothing needs
    /// copying back; `MS_SYNC` makes the files behind the range durable on the host.
    pub fn msync(&self, addr: u64, len: u64, flags: i32) -> SysResult<()> {
        if !addr.is_multiple_of(PAGE_SIZE)
            || flags & !(libc::MS_ASYNC | libc::MS_INVALIDATE | libc::MS_SYNC) != 0
            || (flags & libc::MS_ASYNC != 0 && flags & libc::MS_SYNC != 0)
        {
            return Err(Errno::EINVAL);
        }
        let len = page_round_up(len).ok_or(Errno::ENOMEM)?;
        let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
        if len > 0 && !self.fully_mapped(addr, end) {
            return Err(Errno::ENOMEM);
        }
        if flags & libc::MS_SYNC != 0 {
            for v in self
                .vmas()
                .filter(|v| v.shared && v.start < end && v.end > addr)
            {
                if let VmaBacking::File { file, .. } = &v.backing {
                    crate::sys::host::fsync(file.host_fd())?;
                }
            }
        }
        Ok(())
    }

    /// Bytes of locked mappings (`VmLck`), in all or only in `[start, end)`.
    pub fn locked_bytes(&self, range: Option<(u64, u64)>) -> u64 {
        let (start, end) = range.unwrap_or((0, u64::MAX));
        self.vmas
            .range(..end)
            .filter(|(_, v)| v.locked && v.end > start)
            .map(|(_, v)| v.end.min(end) - v.start.max(start))
            .sum()
    }

    /// Bytes mapped in all.
    pub fn mapped_bytes(&self) -> u64 {
        self.vmas.values().map(|v| v.end - v.start).sum()
    }

    /// Locks (`lock`) or unlocks the pages of `[addr, end)`, page aligned; `ENOMEM`
    /// if part of it is not mapped.
    pub fn set_locked(&mut self, addr: u64, end: u64, lock: bool) -> SysResult<()> {
        if addr >= end {
            return Ok(());
        }
        if !self.fully_mapped(addr, end) {
            return Err(Errno::ENOMEM);
        }
        self.edit_range(addr, end, |v| v.locked = lock);
        Ok(())
    }

    /// `mlockall`/`munlockall`: every mapping now (`current`) and every later one
    /// (`future`) locked, or everything unlocked (`lock` false).
    pub fn set_all_locked(&mut self, lock: bool, current: bool, future: bool) {
        if !lock || current {
            for v in self.vmas.values_mut() {
                v.locked = lock;
            }
        }
        self.lock_future = lock && future;
    }

    /// `madvise(2)`. MADV_DONTNEED drops private pages (anonymous ones read back as
    /// zero, private file pages as the file); other advice is accepted as a hint.
    pub fn madvise(&mut self, addr: u64, len: u64, advice: i32) -> SysResult<()> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let known = [
            libc::MADV_NORMAL,
            libc::MADV_RANDOM,
            libc::MADV_SEQUENTIAL,
            libc::MADV_WILLNEED,
            libc::MADV_DONTNEED,
            libc::MADV_FREE,
            libc::MADV_MERGEABLE,
            libc::MADV_UNMERGEABLE,
            libc::MADV_HUGEPAGE,
            libc::MADV_NOHUGEPAGE,
            libc::MADV_DONTDUMP,
            libc::MADV_DODUMP,
            libc::MADV_DONTFORK,
            libc::MADV_DOFORK,
            libc::MADV_COLD,
            libc::MADV_PAGEOUT,
        ];
        if !known.contains(&advice) {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(());
        }
        let len = page_round_up(len).ok_or(Errno::EINVAL)?;
        let end = addr.checked_add(len).ok_or(Errno::EINVAL)?;
        if !self.fully_mapped(addr, end) {
            return Err(Errno::ENOMEM);
        }
        if advice != libc::MADV_DONTNEED {
            return Ok(());
        }
        let parts: Vec<Vma> = self
            .vmas
            .range(..end)
            .filter(|(_, v)| v.end > addr && !v.shared)
            .map(|(_, v)| v.slice(v.start.max(addr), v.end.min(end)))
            .collect();
        let anonymous = |v: &Vma| matches!(v.backing, VmaBacking::Anonymous) && !v.noreserve;
        if parts.len() > 1 && parts.iter().all(anonymous) {
            // One edit of the host space for all of them (a freed thread stack and
            // its guard page are two).
            let ranges: Vec<_> = parts
                .iter()
                .map(|v| (v.start, v.end - v.start, v.prot))
                .collect();
            return self.space.map_anonymous(&ranges);
        }
        for p in parts {
            self.apply_map(&p)?;
        }
        Ok(())
    }

    /// What identifies the memory at `addr` across address spaces, for shared
    /// futexes: `Some((object, offset))` for shared mappings (a file by device and
    /// inode, or a shared anonymous region), `None` for private memory; `EFAULT` if
    /// `addr` is not mapped.
    pub fn shared_identity(&self, addr: u64) -> SysResult<Option<(u64, u64)>> {
        let v = self.vma_at(addr).ok_or(Errno::EFAULT)?;
        if !v.shared {
            return Ok(None);
        }
        if let Some((id, base)) = v.shared_anon {
            return Ok(Some(((id << 1) | 1, addr.wrapping_sub(base))));
        }
        match &v.backing {
            VmaBacking::File { file, offset } => {
                let (dev, ino) = file.dev_ino();
                // Odd, so it never equals a (pointer-aligned) private space id.
                let object = (dev.rotate_left(32) ^ ino.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
                Ok(Some((object, offset + (addr - v.start))))
            }
            VmaBacking::Anonymous => Ok(None),
        }
    }

    /// The VMA containing `addr`, if any.
    pub fn vma_at(&self, addr: u64) -> Option<&Vma> {
        self.vmas
            .range(..=addr)
            .next_back()
            .map(|(_, v)| v)
            .filter(|v| v.end > addr)
    }
}
