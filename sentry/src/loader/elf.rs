//! ELF parsing and mapping.
//!
//! Only x86-64 ELF64 little-endian `ET_EXEC` and `ET_DYN` images are accepted. The
//! input is untrusted: every header field is checked against the file size and for
//! arithmetic overflow before use, and a malformed file yields `ENOEXEC`, `EINVAL` or
//! `ENOMEM`, never a panic.

use std::sync::Arc;

use tracing::debug;

use crate::errno::{Errno, SysResult};
use crate::loader::{ExecFile, LoadedImage, OpenFn};
use crate::mm::io::write_all;
use crate::mm::{MemoryManager, MmapRequest, VmaBacking, VmaRole};
use crate::platform::{page_round_down, page_round_up, PAGE_SIZE};

pub use abi::elf::{EHDR_SIZE, PHDR_SIZE};
/// Where a main `ET_DYN` program is placed (Linux's x86-64 `ELF_ET_DYN_BASE`, before
/// alignment to the image's largest `p_align`).
pub const ET_DYN_BASE: u64 = 0x5555_5555_4aaa;
/// The largest program header table accepted, as Linux: one page.
const MAX_PHDRS_BYTES: usize = PAGE_SIZE as usize;
/// The longest `PT_INTERP` path (Linux's `PATH_MAX`).
const MAX_INTERP_LEN: u64 = 4096;

const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;

/// `p_type` values the loader acts on.
const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
const PT_GNU_STACK: u32 = 0x6474_e551;

const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

/// The fields of the ELF file header the loader uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElfHeader {
    /// `ET_EXEC` or `ET_DYN`.
    pub e_type: u16,
    /// Entry point (unbiased).
    pub entry: u64,
    /// File offset of the program header table.
    pub phoff: u64,
    /// Number of program headers.
    pub phnum: u16,
}

/// One program header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramHeader {
    /// Segment type (`PT_*`).
    pub p_type: u32,
    /// `PF_*` flags.
    pub flags: u32,
    /// File offset of the segment.
    pub offset: u64,
    /// Virtual address (unbiased).
    pub vaddr: u64,
    /// Bytes in the file.
    pub filesz: u64,
    /// Bytes in memory (`>= filesz` for `PT_LOAD`).
    pub memsz: u64,
    /// Alignment.
    pub align: u64,
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Reads exactly `buf.len()` bytes at `offset`; a short file is `ENOEXEC`.
fn read_full(file: &dyn ExecFile, buf: &mut [u8], offset: u64) -> SysResult<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let off = offset.checked_add(done as u64).ok_or(Errno::ENOEXEC)?;
        let n = file.read_at(&mut buf[done..], off)?;
        if n == 0 {
            return Err(Errno::ENOEXEC);
        }
        done += n;
    }
    Ok(())
}

/// Parses and validates an ELF file header.
pub fn parse_header(b: &[u8]) -> SysResult<ElfHeader> {
    if b.len() < EHDR_SIZE || &b[..4] != b"\x7fELF" {
        return Err(Errno::ENOEXEC);
    }
    // EI_CLASS = ELFCLASS64, EI_DATA = little endian, EI_VERSION = current.
    if b[4] != 2 || b[5] != 1 || b[6] != 1 {
        return Err(Errno::ENOEXEC);
    }
    let e_type = u16_at(b, 16);
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(Errno::ENOEXEC);
    }
    if u16_at(b, 18) != EM_X86_64 || u32_at(b, 20) != 1 {
        return Err(Errno::ENOEXEC);
    }
    let phnum = u16_at(b, 56);
    if usize::from(u16_at(b, 54)) != PHDR_SIZE
        || phnum == 0
        || usize::from(phnum) * PHDR_SIZE > MAX_PHDRS_BYTES
    {
        return Err(Errno::ENOEXEC);
    }
    Ok(ElfHeader {
        e_type,
        entry: u64_at(b, 24),
        phoff: u64_at(b, 32),
        phnum,
    })
}

/// Parses one program header from its 56 bytes.
pub fn parse_phdr(b: &[u8]) -> SysResult<ProgramHeader> {
    if b.len() < PHDR_SIZE {
        return Err(Errno::ENOEXEC);
    }
    Ok(ProgramHeader {
        p_type: u32_at(b, 0),
        flags: u32_at(b, 4),
        offset: u64_at(b, 8),
        vaddr: u64_at(b, 16),
        filesz: u64_at(b, 32),
        memsz: u64_at(b, 40),
        align: u64_at(b, 48),
    })
}

/// An ELF file read and validated, not yet mapped.
struct Elf {
    hdr: ElfHeader,
    phdrs: Vec<ProgramHeader>,
    /// The `PT_LOAD`s, in file (= ascending address) order.
    loads: Vec<ProgramHeader>,
    /// Lowest page of the image (unbiased).
    lo: u64,
    /// One past the highest page of the image (unbiased).
    hi: u64,
    /// Largest power-of-two `p_align` of the `PT_LOAD`s, at least a page.
    align: u64,
}

fn read_elf(file: &dyn ExecFile) -> SysResult<Elf> {
    let size = file.size()?;
    let mut head = [0u8; EHDR_SIZE];
    read_full(file, &mut head, 0)?;
    let hdr = parse_header(&head)?;
    let table_len = usize::from(hdr.phnum) * PHDR_SIZE;
    let table_end = hdr
        .phoff
        .checked_add(table_len as u64)
        .ok_or(Errno::ENOEXEC)?;
    if table_end > size {
        return Err(Errno::ENOEXEC);
    }
    let mut table = vec![0u8; table_len];
    read_full(file, &mut table, hdr.phoff)?;
    let phdrs = table
        .chunks_exact(PHDR_SIZE)
        .map(parse_phdr)
        .collect::<SysResult<Vec<_>>>()?;

    let mut loads: Vec<ProgramHeader> = Vec::new();
    let mut align = PAGE_SIZE;
    for ph in phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
        if ph.filesz > ph.memsz {
            return Err(Errno::EINVAL);
        }
        let mem_end = ph.vaddr.checked_add(ph.memsz).ok_or(Errno::EINVAL)?;
        page_round_up(mem_end).ok_or(Errno::EINVAL)?;
        let file_end = ph.offset.checked_add(ph.filesz).ok_or(Errno::EINVAL)?;
        if ph.filesz > 0 && file_end > size {
            // Linux would map it and fault at run time; a real binary never does this.
            return Err(Errno::ENOEXEC);
        }
        // The file offset and address must agree within a page, or mmap cannot map it.
        if ph.offset % PAGE_SIZE != ph.vaddr % PAGE_SIZE {
            return Err(Errno::EINVAL);
        }
        if let Some(prev) = loads.last() {
            // Segments may share a page (the later mapping wins, as in Linux), but
            // never bytes, and must come in ascending order.
            if ph.vaddr < prev.vaddr + prev.memsz {
                return Err(Errno::EINVAL);
            }
        }
        if ph.align.is_power_of_two() && ph.align > align {
            align = ph.align;
        }
        if ph.memsz > 0 {
            loads.push(*ph);
        }
    }
    let (Some(first), Some(last)) = (loads.first(), loads.last()) else {
        return Err(Errno::ENOEXEC);
    };
    let lo = page_round_down(first.vaddr);
    let hi = page_round_up(last.vaddr + last.memsz).ok_or(Errno::EINVAL)?;
    Ok(Elf {
        hdr,
        phdrs,
        loads,
        lo,
        hi,
        align,
    })
}

fn prot_of(flags: u32) -> i32 {
    let mut p = 0;
    if flags & PF_R != 0 {
        p |= libc::PROT_READ;
    }
    if flags & PF_W != 0 {
        p |= libc::PROT_WRITE;
    }
    if flags & PF_X != 0 {
        p |= libc::PROT_EXEC;
    }
    p
}

fn map_fixed(
    mm: &mut MemoryManager,
    addr: u64,
    len: u64,
    prot: i32,
    backing: VmaBacking,
) -> SysResult<()> {
    mm.mmap(MmapRequest {
        addr,
        len,
        max_prot: crate::mm::PROT_MAY_ALL,
        prot,
        shared: false,
        fixed: true,
        fixed_noreplace: false,
        backing,
        role: VmaRole::Plain,
        noreserve: false,
    })
    .map(|_| ())
}

/// Finds room for `len` bytes aligned to `align`, at `want` if it is free and allowed,
/// else in the mmap area. The probe mapping is released again: the segments are
/// mapped over the range right after, with nothing else running in between.
fn reserve(mm: &mut MemoryManager, len: u64, align: u64, want: Option<u64>) -> SysResult<u64> {
    let probe = |addr: u64, len: u64, fixed_noreplace: bool| MmapRequest {
        addr,
        len,
        max_prot: crate::mm::PROT_MAY_ALL,
        prot: libc::PROT_NONE,
        shared: false,
        fixed: false,
        fixed_noreplace,
        backing: VmaBacking::Anonymous,
        role: VmaRole::Plain,
        noreserve: false,
    };
    if let Some(want) = want {
        if let Ok(a) = mm.mmap(probe(want, len, true)) {
            mm.munmap(a, len)?;
            return Ok(a);
        }
    }
    let padded = len.checked_add(align - PAGE_SIZE).ok_or(Errno::ENOMEM)?;
    let a = mm.mmap(probe(0, padded, false))?;
    mm.munmap(a, padded)?;
    // `a + padded` did not overflow, so neither does rounding up inside it.
    Ok((a + align - 1) & !(align - 1))
}

/// Maps one `PT_LOAD` at `bias`, zeroing the part of its last file page past
/// `p_filesz` and backing the rest of `p_memsz` with anonymous memory.
fn map_segment(
    mm: &mut MemoryManager,
    file: &Arc<dyn ExecFile>,
    ph: &ProgramHeader,
    bias: u64,
) -> SysResult<()> {
    let prot = prot_of(ph.flags);
    // The bias may be "negative" (an ET_DYN linked above where it is placed); the
    // reservation guarantees every biased segment lies inside the reserved range.
    let start = ph.vaddr.wrapping_add(bias);
    let page_start = page_round_down(start);
    let file_end = start.checked_add(ph.filesz).ok_or(Errno::ENOMEM)?;
    let mem_end = start.checked_add(ph.memsz).ok_or(Errno::ENOMEM)?;
    let file_page_end = page_round_up(file_end).ok_or(Errno::ENOMEM)?;
    let mem_page_end = page_round_up(mem_end).ok_or(Errno::ENOMEM)?;
    let mut anon_start = page_start;
    if ph.filesz > 0 {
        let offset = ph.offset - (start - page_start);
        let tail = file_end % PAGE_SIZE != 0 && ph.memsz > ph.filesz;
        // The partial page's bytes past p_filesz are file contents that must read as
        // zero; write them through a writable mapping, then drop the write bit.
        let map_prot = if tail { prot | libc::PROT_WRITE } else { prot };
        let backing = VmaBacking::File {
            file: file.mappable()?,
            offset,
        };
        map_fixed(
            mm,
            page_start,
            file_page_end - page_start,
            map_prot,
            backing,
        )?;
        if tail {
            let zeros = vec![0u8; (file_page_end - file_end) as usize];
            write_all(mm.space().as_ref(), file_end, &zeros)?;
            if map_prot != prot {
                mm.mprotect(page_start, file_page_end - page_start, prot)?;
            }
        }
        anon_start = file_page_end;
    }
    if mem_page_end > anon_start {
        map_fixed(
            mm,
            anon_start,
            mem_page_end - anon_start,
            prot,
            VmaBacking::Anonymous,
        )?;
    }
    Ok(())
}

/// Where the program headers are in memory (unbiased): `PT_PHDR` if present, else the
/// `PT_LOAD` whose file contents include the table; 0 if neither.
fn phdr_vaddr(elf: &Elf) -> u64 {
    if let Some(ph) = elf.phdrs.iter().find(|p| p.p_type == PT_PHDR) {
        return ph.vaddr;
    }
    let table_len = elf.phdrs.len() as u64 * PHDR_SIZE as u64;
    elf.loads
        .iter()
        .find(|l| l.offset <= elf.hdr.phoff && elf.hdr.phoff + table_len <= l.offset + l.filesz)
        .map_or(0, |l| l.vaddr + (elf.hdr.phoff - l.offset))
}

/// Maps all of `elf`'s segments; returns the load bias.
fn map_image(
    mm: &mut MemoryManager,
    file: &Arc<dyn ExecFile>,
    elf: &Elf,
    main_program: bool,
) -> SysResult<u64> {
    let span = elf.hi - elf.lo;
    let bias = if elf.hdr.e_type == ET_DYN {
        let want = main_program.then(|| ET_DYN_BASE & !(elf.align - 1));
        reserve(mm, span, elf.align, want)?.wrapping_sub(elf.lo)
    } else {
        // An ET_EXEC must not land on anything already mapped (the main program,
        // when this is an ET_EXEC interpreter).
        if mm.vmas().any(|v| v.start < elf.hi && v.end > elf.lo) {
            return Err(Errno::EEXIST);
        }
        0
    };
    for ph in &elf.loads {
        map_segment(mm, file, ph, bias)?;
    }
    Ok(bias)
}

/// Loads the ELF executable `file` (and its `PT_INTERP` interpreter, opened through
/// `open`) into `mm`, which should be empty, and sets the brk start after the program.
/// On error `mm` may hold part of the image: exec discards it.
pub fn load_elf(
    mm: &mut MemoryManager,
    file: &Arc<dyn ExecFile>,
    open: &OpenFn,
) -> SysResult<LoadedImage> {
    let elf = read_elf(file.as_ref())?;

    let mut interp_path = None;
    if let Some(ph) = elf.phdrs.iter().find(|p| p.p_type == PT_INTERP) {
        if ph.filesz < 2 || ph.filesz > MAX_INTERP_LEN {
            return Err(Errno::ENOEXEC);
        }
        let end = ph.offset.checked_add(ph.filesz).ok_or(Errno::ENOEXEC)?;
        if end > file.size()? {
            return Err(Errno::ENOEXEC);
        }
        let mut path = vec![0u8; ph.filesz as usize];
        read_full(file.as_ref(), &mut path, ph.offset)?;
        if path.pop() != Some(0) || path.contains(&0) {
            return Err(Errno::ENOEXEC);
        }
        interp_path = Some(path);
    }
    let exec_stack = elf
        .phdrs
        .iter()
        .find(|p| p.p_type == PT_GNU_STACK)
        .is_some_and(|p| p.flags & PF_X != 0);

    // Open and check the interpreter before touching the address space.
    let interp = match &interp_path {
        Some(path) => {
            let f = open(path)?;
            let ie = read_elf(f.as_ref())?;
            Some((f, ie))
        }
        None => None,
    };

    let bias = map_image(mm, file, &elf, true)?;
    mm.set_brk_start(elf.hi.wrapping_add(bias));

    // Like Linux, the entry and phdr addresses are not checked to be mapped: a bad
    // one faults in the new program, not in exec.
    let program_entry = elf.hdr.entry.wrapping_add(bias);
    let phdr = match phdr_vaddr(&elf) {
        0 => 0,
        v => v.wrapping_add(bias),
    };
    let mut image = LoadedImage {
        entry: program_entry,
        program_entry,
        phdr,
        phent: PHDR_SIZE as u64,
        phnum: u64::from(elf.hdr.phnum),
        interp_base: 0,
        brk_start: mm.brk_current(),
        exec_stack,
    };
    if let Some((f, ie)) = interp {
        let ibias = map_image(mm, &f, &ie, false)?;
        image.entry = ie.hdr.entry.wrapping_add(ibias);
        image.interp_base = ibias;
    }
    debug!(
        entry = format_args!("{:#x}", image.entry),
        bias = format_args!("{:#x}", bias),
        interp_base = format_args!("{:#x}", image.interp_base),
        "loaded ELF"
    );
    Ok(image)
}
