//! The initial process stack.
//!
//! Laid out as Linux's `execve` leaves it (without its random offsets), from the top
//! down: an 8-byte zero word, the `AT_EXECFN` string, the envp strings, the argv
//! strings, 16-byte alignment, the `AT_PLATFORM` string, the 16 `AT_RANDOM` bytes, and
//! then, from the 16-byte aligned initial `rsp` upwards: argc, the argv pointers and a
//! NULL, the envp pointers and a NULL, and the auxv pairs ending with `AT_NULL`.

use crate::errno::{Errno, SysResult};
use crate::loader::LoadedImage;
use crate::mm::io::write_all;
use crate::mm::{MemoryManager, MmapRequest, VmaBacking, VmaRole};
use crate::platform::PAGE_SIZE;

/// Size of the main thread's stack mapping.
pub const STACK_SIZE: u64 = 8 << 20;
/// Most bytes argv and envp may take altogether (strings and pointers), as Linux's
/// default: a quarter of the stack limit.
pub const MAX_ARGS_BYTES: u64 = STACK_SIZE / 4;
/// Longest single argument or environment string, NUL included (Linux's
/// `MAX_ARG_STRLEN`).
pub const MAX_ARG_STRLEN: u64 = 32 * PAGE_SIZE;
/// `AT_PLATFORM` on x86-64.
const PLATFORM: &[u8] = b"x86_64\0";
/// Clock ticks per second (`AT_CLKTCK`, `sysconf(_SC_CLK_TCK)`).
const CLKTCK: u64 = 100;

/// Auxiliary vector keys (see `getauxval(3)`).
#[allow(missing_docs)]
pub mod at {
    pub const NULL: u64 = 0;
    pub const PHDR: u64 = 3;
    pub const PHENT: u64 = 4;
    pub const PHNUM: u64 = 5;
    pub const PAGESZ: u64 = 6;
    pub const BASE: u64 = 7;
    pub const FLAGS: u64 = 8;
    pub const ENTRY: u64 = 9;
    pub const UID: u64 = 11;
    pub const EUID: u64 = 12;
    pub const GID: u64 = 13;
    pub const EGID: u64 = 14;
    pub const PLATFORM: u64 = 15;
    pub const HWCAP: u64 = 16;
    pub const CLKTCK: u64 = 17;
    pub const SECURE: u64 = 23;
    pub const RANDOM: u64 = 25;
    pub const HWCAP2: u64 = 26;
    pub const EXECFN: u64 = 31;
    pub const SYSINFO_EHDR: u64 = 33;
}

/// What goes on the initial stack.
pub struct StackArgs<'a> {
    /// Argument strings, without their NULs (none may contain a NUL).
    pub argv: &'a [Vec<u8>],
    /// Environment strings, without their NULs.
    pub envp: &'a [Vec<u8>],
    /// The path given to execve (`AT_EXECFN`).
    pub execfn: &'a [u8],
    /// The loaded image (entry, phdrs, interpreter base).
    pub image: &'a LoadedImage,
    /// Real user id.
    pub uid: u32,
    /// Effective user id.
    pub euid: u32,
    /// Real group id.
    pub gid: u32,
    /// Effective group id.
    pub egid: u32,
    /// `AT_SECURE`: set-id exec, so the dynamic loader ignores `LD_*`.
    pub secure: bool,
    /// `AT_HWCAP`: CPUID leaf 1 EDX, as Linux reports it on x86-64.
    pub hwcap: u64,
    /// The `AT_RANDOM` bytes.
    pub random: [u8; 16],
    /// Where the vDSO is mapped (`AT_SYSINFO_EHDR`), 0 for none.
    pub vdso: u64,
}

fn string_bytes(strings: &[Vec<u8>]) -> SysResult<u64> {
    let mut total = 0u64;
    for s in strings {
        let len = s.len() as u64 + 1;
        if len > MAX_ARG_STRLEN {
            return Err(Errno::E2BIG);
        }
        if s.contains(&0) {
            return Err(Errno::EINVAL);
        }
        total += len;
    }
    Ok(total)
}

fn put_strings(buf: &mut [u8], at: usize, strings: &[Vec<u8>], base: u64) -> Vec<u64> {
    let mut ptrs = Vec::with_capacity(strings.len());
    let mut pos = at;
    for s in strings {
        buf[pos..pos + s.len()].copy_from_slice(s);
        buf[pos + s.len()] = 0;
        ptrs.push(base + pos as u64);
        pos += s.len() + 1;
    }
    ptrs
}

/// Maps the main thread's stack (`STACK_SIZE` bytes ending at the page-aligned
/// `stack_top`) and fills it for a new program; records the argv and envp string
/// ranges in `mm`. Returns the initial `rsp`. `E2BIG` if argv and envp are too large.
pub fn build_stack(mm: &mut MemoryManager, stack_top: u64, args: &StackArgs) -> SysResult<u64> {
    if !stack_top.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    let arg_bytes = string_bytes(args.argv)?;
    let env_bytes = string_bytes(args.envp)?;
    let ptr_bytes = 8 * (args.argv.len() as u64 + args.envp.len() as u64);
    if arg_bytes + env_bytes + ptr_bytes > MAX_ARGS_BYTES {
        return Err(Errno::E2BIG);
    }
    if args.execfn.contains(&0) {
        return Err(Errno::EINVAL);
    }
    let execfn_len = args.execfn.len() as u64 + 1;
    if execfn_len > MAX_ARG_STRLEN {
        return Err(Errno::ENAMETOOLONG);
    }
    let bottom = stack_top.checked_sub(STACK_SIZE).ok_or(Errno::ENOMEM)?;

    // Addresses, top down; all differences are bounded by the checks above, far
    // below STACK_SIZE.
    let execfn_addr = stack_top - 8 - execfn_len;
    let env_start = execfn_addr - env_bytes;
    let arg_start = env_start - arg_bytes;
    let platform_addr = (arg_start & !15) - PLATFORM.len() as u64;
    let random_addr = platform_addr - 16;

    let image = args.image;
    // Linux lists AT_SYSINFO_EHDR first; without a vDSO it has no entry.
    let vdso = (args.vdso != 0).then_some((at::SYSINFO_EHDR, args.vdso));
    let auxv: Vec<(u64, u64)> = vdso
        .into_iter()
        .chain([
            (at::HWCAP, args.hwcap),
            (at::PAGESZ, PAGE_SIZE),
            (at::CLKTCK, CLKTCK),
            (at::PHDR, image.phdr),
            (at::PHENT, image.phent),
            (at::PHNUM, image.phnum),
            (at::BASE, image.interp_base),
            (at::FLAGS, 0),
            (at::ENTRY, image.program_entry),
            (at::UID, u64::from(args.uid)),
            (at::EUID, u64::from(args.euid)),
            (at::GID, u64::from(args.gid)),
            (at::EGID, u64::from(args.egid)),
            (at::SECURE, u64::from(args.secure)),
            (at::RANDOM, random_addr),
            (at::HWCAP2, 0),
            (at::EXECFN, execfn_addr),
            (at::PLATFORM, platform_addr),
            (at::NULL, 0),
        ])
        .collect();
    let words = 1 + (args.argv.len() + 1) + (args.envp.len() + 1) + 2 * auxv.len();
    let rsp = (random_addr - 8 * words as u64) & !15;
    if rsp < bottom {
        return Err(Errno::E2BIG);
    }

    // The strings area, [random_addr, stack_top), built here and written at once.
    let mut strings = vec![0u8; (stack_top - random_addr) as usize];
    let off = |addr: u64| (addr - random_addr) as usize;
    strings[..16].copy_from_slice(&args.random);
    strings[off(platform_addr)..off(platform_addr) + PLATFORM.len()].copy_from_slice(PLATFORM);
    let argv_ptrs = put_strings(&mut strings, off(arg_start), args.argv, random_addr);
    let envp_ptrs = put_strings(&mut strings, off(env_start), args.envp, random_addr);
    put_strings(
        &mut strings,
        off(execfn_addr),
        std::slice::from_ref(&args.execfn.to_vec()),
        random_addr,
    );

    let mut table: Vec<u64> = Vec::with_capacity(words);
    table.push(args.argv.len() as u64);
    table.extend(&argv_ptrs);
    table.push(0);
    table.extend(&envp_ptrs);
    table.push(0);
    for &(k, v) in &auxv {
        table.push(k);
        table.push(v);
    }
    let table_bytes: Vec<u8> = table.iter().flat_map(|w| w.to_le_bytes()).collect();

    let prot =
        libc::PROT_READ | libc::PROT_WRITE | if image.exec_stack { libc::PROT_EXEC } else { 0 };
    mm.mmap(MmapRequest {
        addr: bottom,
        len: STACK_SIZE,
        max_prot: crate::mm::PROT_MAY_ALL,
        prot,
        shared: false,
        fixed: false,
        fixed_noreplace: true,
        backing: VmaBacking::Anonymous,
        role: VmaRole::Stack,
        noreserve: false,
    })?;
    let space = mm.space().clone();
    write_all(space.as_ref(), random_addr, &strings)?;
    write_all(space.as_ref(), rsp, &table_bytes)?;
    mm.arg_range = (arg_start, env_start);
    mm.env_range = (env_start, env_start + env_bytes);
    mm.auxv = auxv.iter().flat_map(|&(k, v)| [k, v]).collect();
    Ok(rsp)
}
