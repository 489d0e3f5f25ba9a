//! Loader tests: real gcc-built binaries and hostile synthetic ones, loaded into a
//! memory manager over the fake address space.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use super::elf::{load_elf, ET_DYN_BASE, PHDR_SIZE};
use super::stack::{at, build_stack, StackArgs, STACK_SIZE};
use super::{ExecFile, LoadedImage};
use crate::errno::{Errno, SysResult};
use crate::mm::fake::{FakeFile, FakeSpace};
use crate::mm::io::{read_cstring, read_exact, read_u64};
use crate::mm::{Mappable, MemoryManager, VmaRole};
use crate::platform::{page_round_up, PAGE_SIZE};

const MIN: u64 = 0x10000;
const MAX: u64 = 0x7fff_0000_0000;
const MMAP_TOP: u64 = 0x7ff0_0000_0000;
const STACK_TOP: u64 = 0x7ffe_0000_0000;

/// A host file as an executable.
struct HostExec(Arc<FakeFile>);

impl ExecFile for HostExec {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        let mut done = 0;
        while done < buf.len() {
            let n = self
                .0
                .file
                .read_at(&mut buf[done..], offset + done as u64)
                .map_err(|_| Errno::EIO)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }
    fn size(&self) -> SysResult<u64> {
        Ok(self.0.file.metadata().map_err(|_| Errno::EIO)?.len())
    }
    fn mappable(&self) -> SysResult<Arc<dyn Mappable>> {
        Ok(self.0.clone())
    }
}

fn open_host(path: &Path) -> SysResult<Arc<dyn ExecFile>> {
    let f = File::open(path).map_err(|e| crate::Errno(e.raw_os_error().unwrap_or(5)))?;
    Ok(Arc::new(HostExec(FakeFile::new(
        f,
        &path.to_string_lossy(),
    ))))
}

fn no_open(_: &[u8]) -> SysResult<Arc<dyn ExecFile>> {
    Err(Errno::ENOENT)
}

fn new_mm() -> (Arc<FakeSpace>, MemoryManager) {
    let fake = FakeSpace::new();
    let mm = MemoryManager::new(fake.clone(), MIN, MAX, MMAP_TOP);
    (fake, mm)
}

/// This test process's scratch directory. It lives as long as the process (the built
/// programs are shared by the tests), so no test can remove it: instead the first call
/// removes those of earlier test processes that have ended.
fn tmpdir() -> PathBuf {
    const PREFIX: &str = "rvisor-loader-test-";
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let tmp = std::env::temp_dir();
    SWEPT.call_once(|| {
        for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = e.file_name();
            let pid = name.to_str().and_then(|n| n.strip_prefix(PREFIX));
            if pid.is_some_and(|p| p.parse::<u32>().is_ok() && !Path::new("/proc").join(p).exists())
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    });
    let d = tmp.join(format!("{PREFIX}{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

const PROGRAM: &str = r#"
int initialised = 42;
char big_bss[300000];
int main(int argc, char **argv) { big_bss[argc] = 1; return initialised + argc; }
"#;

/// Builds the test program once per flavour with gcc.
fn binary(flavour: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(Vec::new()));
    let mut built = built.lock().unwrap();
    if let Some((_, p)) = built.iter().find(|(f, _)| f == flavour) {
        return p.clone();
    }
    let dir = tmpdir();
    let src = dir.join("prog.c");
    std::fs::write(&src, PROGRAM).unwrap();
    let out = dir.join(format!("prog{flavour}"));
    let status = Command::new("gcc")
        .arg(flavour)
        .arg("-O1")
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success(), "gcc {flavour} failed");
    built.push((flavour.to_string(), out.clone()));
    out
}

/// The test's own minimal reading of an ELF: (e_type, e_entry, phoff, phnum, phdrs as
/// (type, flags, offset, vaddr, filesz, memsz, align)).
struct RawElf {
    e_type: u16,
    entry: u64,
    phoff: u64,
    phnum: u64,
    phdrs: Vec<[u64; 7]>,
}

fn raw_elf(bytes: &[u8]) -> RawElf {
    let u = |o: usize, n: usize| {
        let mut v = 0u64;
        for i in (0..n).rev() {
            v = (v << 8) | u64::from(bytes[o + i]);
        }
        v
    };
    let phoff = u(32, 8);
    let phnum = u(56, 2);
    let phdrs = (0..phnum as usize)
        .map(|i| {
            let b = phoff as usize + i * 56;
            [
                u(b, 4),
                u(b + 4, 4),
                u(b + 8, 8),
                u(b + 16, 8),
                u(b + 32, 8),
                u(b + 40, 8),
                u(b + 48, 8),
            ]
        })
        .collect();
    RawElf {
        e_type: u(16, 2) as u16,
        entry: u(24, 8),
        phoff,
        phnum,
        phdrs,
    }
}

fn prot_of(flags: u64) -> i32 {
    let mut p = 0;
    if flags & 4 != 0 {
        p |= libc::PROT_READ;
    }
    if flags & 2 != 0 {
        p |= libc::PROT_WRITE;
    }
    if flags & 1 != 0 {
        p |= libc::PROT_EXEC;
    }
    p
}

/// Checks every PT_LOAD of `raw` is in memory at `bias`: contents, zeroed bss,
/// protections. Returns the end of the highest segment.
fn check_segments(
    fake: &FakeSpace,
    mm: &MemoryManager,
    bytes: &[u8],
    raw: &RawElf,
    bias: u64,
) -> u64 {
    let mut hi = 0;
    for ph in raw.phdrs.iter().filter(|p| p[0] == 1) {
        let [_, flags, offset, vaddr, filesz, memsz, _] = *ph;
        let addr = bias + vaddr;
        let mut mem = vec![0u8; filesz as usize];
        read_exact(fake, addr, &mut mem).unwrap();
        assert!(
            mem == bytes[offset as usize..(offset + filesz) as usize],
            "segment at {addr:#x} differs"
        );
        // bss: the rest of the last file page and beyond reads as zero. (Without a
        // bss, the rest of the page shows the file, as in Linux.)
        if memsz > filesz {
            let bss_end = page_round_up(addr + memsz).unwrap();
            let mut bss = vec![0xffu8; (bss_end - (addr + filesz)) as usize];
            read_exact(fake, addr + filesz, &mut bss).unwrap();
            assert!(
                bss.iter().all(|&b| b == 0),
                "bss at {:#x} not zero",
                addr + filesz
            );
        }
        let mut a = addr & !(PAGE_SIZE - 1);
        while a < addr + memsz {
            assert_eq!(fake.prot_at(a), Some(prot_of(flags)), "prot at {a:#x}");
            assert_eq!(mm.vma_at(a).map(|v| v.prot), Some(prot_of(flags)));
            a += PAGE_SIZE;
        }
        hi = hi.max(addr + memsz);
    }
    hi
}

fn check_phdrs(fake: &FakeSpace, bytes: &[u8], raw: &RawElf, image: &LoadedImage) {
    assert_eq!(image.phnum, raw.phnum);
    assert_eq!(image.phent, PHDR_SIZE as u64);
    let len = raw.phnum as usize * PHDR_SIZE;
    let mut mem = vec![0u8; len];
    read_exact(fake, image.phdr, &mut mem).unwrap();
    assert!(
        mem == bytes[raw.phoff as usize..raw.phoff as usize + len],
        "phdrs in memory differ"
    );
}

#[test]
fn loads_static_executable() {
    let path = binary("-static");
    let bytes = std::fs::read(&path).unwrap();
    let raw = raw_elf(&bytes);
    assert_eq!(raw.e_type, 2);
    let (fake, mut mm) = new_mm();
    let file = open_host(&path).unwrap();
    let image = load_elf(&mut mm, &file, &no_open).unwrap();
    assert_eq!(image.entry, raw.entry);
    assert_eq!(image.program_entry, raw.entry);
    assert_eq!(image.interp_base, 0);
    assert!(!image.exec_stack);
    let hi = check_segments(&fake, &mm, &bytes, &raw, 0);
    check_phdrs(&fake, &bytes, &raw, &image);
    assert_eq!(image.brk_start, page_round_up(hi).unwrap());
    assert_eq!(mm.brk_current(), image.brk_start);
    // The heap grows right after the image.
    assert_eq!(mm.brk(image.brk_start + 100), image.brk_start + 100);
    assert_eq!(mm.vma_at(image.brk_start).unwrap().role, VmaRole::Heap);
}

#[test]
fn loads_static_pie_at_the_dyn_base() {
    let path = binary("-static-pie");
    let bytes = std::fs::read(&path).unwrap();
    let raw = raw_elf(&bytes);
    assert_eq!(raw.e_type, 3);
    let (fake, mut mm) = new_mm();
    let file = open_host(&path).unwrap();
    let image = load_elf(&mut mm, &file, &no_open).unwrap();
    let bias = image.program_entry - raw.entry;
    let align = raw
        .phdrs
        .iter()
        .filter(|p| p[0] == 1)
        .map(|p| p[6])
        .max()
        .unwrap()
        .max(PAGE_SIZE);
    assert_eq!(bias, ET_DYN_BASE & !(align - 1));
    assert_eq!(image.entry, image.program_entry);
    let hi = check_segments(&fake, &mm, &bytes, &raw, bias);
    check_phdrs(&fake, &bytes, &raw, &image);
    assert_eq!(image.brk_start, page_round_up(hi).unwrap());
}

#[test]
fn loads_dynamic_executable_with_its_interpreter() {
    let path = binary("-no-pie");
    let bytes = std::fs::read(&path).unwrap();
    let raw = raw_elf(&bytes);
    let interp_ph = raw.phdrs.iter().find(|p| p[0] == 3).expect("PT_INTERP");
    let interp_path =
        bytes[interp_ph[2] as usize..(interp_ph[2] + interp_ph[4] - 1) as usize].to_vec();
    let (fake, mut mm) = new_mm();
    let file = open_host(&path).unwrap();
    let asked = Mutex::new(Vec::new());
    let open = |p: &[u8]| {
        asked.lock().unwrap().push(p.to_vec());
        open_host(Path::new(std::str::from_utf8(p).unwrap()))
    };
    let image = load_elf(&mut mm, &file, &open).unwrap();
    assert_eq!(*asked.lock().unwrap(), vec![interp_path.clone()]);
    assert_eq!(image.program_entry, raw.entry);
    check_segments(&fake, &mm, &bytes, &raw, 0);
    check_phdrs(&fake, &bytes, &raw, &image);

    let ld_bytes = std::fs::read(std::str::from_utf8(&interp_path).unwrap()).unwrap();
    let ld = raw_elf(&ld_bytes);
    assert_eq!(ld.e_type, 3);
    assert_ne!(image.interp_base, 0);
    assert_eq!(image.interp_base % PAGE_SIZE, 0);
    assert!(image.interp_base < MMAP_TOP && image.interp_base > image.brk_start);
    assert_eq!(image.entry, image.interp_base + ld.entry);
    check_segments(&fake, &mm, &ld_bytes, &ld, image.interp_base);

    // A missing interpreter fails the exec with the open's error.
    let (_f, mut mm) = new_mm();
    assert_eq!(load_elf(&mut mm, &file, &no_open), Err(Errno::ENOENT));
}

#[test]
fn loads_pie_with_interpreter() {
    let path = binary("-pie");
    let bytes = std::fs::read(&path).unwrap();
    let raw = raw_elf(&bytes);
    let (fake, mut mm) = new_mm();
    let file = open_host(&path).unwrap();
    let open = |p: &[u8]| open_host(Path::new(std::str::from_utf8(p).unwrap()));
    let image = load_elf(&mut mm, &file, &open).unwrap();
    let bias = image.program_entry - raw.entry;
    assert_eq!(bias, 0x5555_5555_4000);
    check_segments(&fake, &mm, &bytes, &raw, bias);
    check_phdrs(&fake, &bytes, &raw, &image);
    assert_ne!(image.interp_base, 0);
}

fn strings(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[test]
fn builds_the_initial_stack() {
    let path = binary("-static");
    let (fake, mut mm) = new_mm();
    let file = open_host(&path).unwrap();
    let image = load_elf(&mut mm, &file, &no_open).unwrap();
    let argv = strings(&["prog", "first arg", ""]);
    let envp = strings(&["PATH=/bin", "HOME=/root"]);
    let random = *b"0123456789abcdef";
    let args = StackArgs {
        argv: &argv,
        envp: &envp,
        execfn: b"/usr/bin/prog",
        image: &image,
        uid: 1,
        euid: 2,
        gid: 3,
        egid: 4,
        secure: true,
        hwcap: 0x178bfbff,
        random,
        vdso: 0x7000_1000,
    };
    let rsp = build_stack(&mut mm, STACK_TOP, &args).unwrap();
    assert_eq!(rsp % 16, 0);
    assert!(rsp < STACK_TOP && rsp > STACK_TOP - STACK_SIZE);
    let vma = mm.vma_at(STACK_TOP - 1).unwrap();
    assert_eq!(vma.role, VmaRole::Stack);
    assert_eq!((vma.start, vma.end), (STACK_TOP - STACK_SIZE, STACK_TOP));
    assert_eq!(vma.prot, libc::PROT_READ | libc::PROT_WRITE);

    let s = fake.as_ref();
    let word = |i: u64| read_u64(s, rsp + 8 * i).unwrap();
    let cstr = |a: u64| read_cstring(s, a, 4096).unwrap();
    assert_eq!(word(0), 3);
    let got_argv: Vec<Vec<u8>> = (1..4).map(|i| cstr(word(i))).collect();
    assert_eq!(got_argv, argv);
    assert_eq!(word(4), 0);
    let got_envp: Vec<Vec<u8>> = (5..7).map(|i| cstr(word(i))).collect();
    assert_eq!(got_envp, envp);
    assert_eq!(word(7), 0);
    let mut auxv = Vec::new();
    let mut i = 8;
    loop {
        let (k, v) = (word(i), word(i + 1));
        auxv.push((k, v));
        i += 2;
        if k == at::NULL {
            break;
        }
    }
    let get = |k: u64| auxv.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    assert_eq!(get(at::PHDR), Some(image.phdr));
    assert_eq!(get(at::PHENT), Some(56));
    assert_eq!(get(at::PHNUM), Some(image.phnum));
    assert_eq!(get(at::PAGESZ), Some(4096));
    assert_eq!(get(at::BASE), Some(0));
    assert_eq!(get(at::FLAGS), Some(0));
    assert_eq!(get(at::ENTRY), Some(image.program_entry));
    assert_eq!(get(at::UID), Some(1));
    assert_eq!(get(at::EUID), Some(2));
    assert_eq!(get(at::GID), Some(3));
    assert_eq!(get(at::EGID), Some(4));
    assert_eq!(get(at::SECURE), Some(1));
    assert_eq!(get(at::HWCAP), Some(0x178bfbff));
    assert_eq!(get(at::HWCAP2), Some(0));
    assert_eq!(get(at::CLKTCK), Some(100));
    assert_eq!(auxv[0], (at::SYSINFO_EHDR, 0x7000_1000));
    let mut rnd = [0u8; 16];
    read_exact(s, get(at::RANDOM).unwrap(), &mut rnd).unwrap();
    assert_eq!(rnd, random);
    assert_eq!(cstr(get(at::EXECFN).unwrap()), b"/usr/bin/prog");
    assert_eq!(cstr(get(at::PLATFORM).unwrap()), b"x86_64");
    // Everything from rsp up is inside the stack, and the strings sit at the top.
    assert!(get(at::EXECFN).unwrap() + 14 + 8 == STACK_TOP);

    // /proc/PID/cmdline and environ ranges.
    let mut cmdline = vec![0u8; (mm.arg_range.1 - mm.arg_range.0) as usize];
    read_exact(s, mm.arg_range.0, &mut cmdline).unwrap();
    assert_eq!(cmdline, b"prog\0first arg\0\0");
    let mut environ = vec![0u8; (mm.env_range.1 - mm.env_range.0) as usize];
    read_exact(s, mm.env_range.0, &mut environ).unwrap();
    assert_eq!(environ, b"PATH=/bin\0HOME=/root\0");
}

#[test]
fn stack_limits_and_exec_stack() {
    let mut image = LoadedImage {
        phent: 56,
        ..Default::default()
    };
    let big = vec![b'x'; 100_000];
    let many: Vec<Vec<u8>> = (0..30).map(|_| big.clone()).collect();
    let mk = |argv: &'static [Vec<u8>],
              envp: &'static [Vec<u8>],
              image: &LoadedImage|
     -> SysResult<u64> {
        let (_f, mut mm) = new_mm();
        build_stack(
            &mut mm,
            STACK_TOP,
            &StackArgs {
                argv,
                envp,
                execfn: b"x",
                image,
                uid: 0,
                euid: 0,
                gid: 0,
                egid: 0,
                secure: false,
                hwcap: 0,
                random: [0; 16],
                vdso: 0,
            },
        )
    };
    let many: &'static [Vec<u8>] = Box::leak(many.into_boxed_slice());
    assert_eq!(mk(&[], many, &image), Err(Errno::E2BIG));
    assert_eq!(mk(many, &[], &image), Err(Errno::E2BIG));
    let huge: &'static [Vec<u8>] = Box::leak(vec![vec![b'y'; 200_000]].into_boxed_slice());
    assert_eq!(mk(huge, &[], &image), Err(Errno::E2BIG));
    let nul: &'static [Vec<u8>] = Box::leak(vec![b"a\0b".to_vec()].into_boxed_slice());
    assert_eq!(mk(nul, &[], &image), Err(Errno::EINVAL));
    // Under the limit is fine.
    assert!(mk(&many[..15], &many[15..20], &image).is_ok());

    image.exec_stack = true;
    let (fake, mut mm) = new_mm();
    let args = StackArgs {
        argv: &[],
        envp: &[],
        execfn: b"",
        image: &image,
        uid: 0,
        euid: 0,
        gid: 0,
        egid: 0,
        secure: false,
        hwcap: 0,
        random: [0; 16],
        vdso: 0,
    };
    let rsp = build_stack(&mut mm, STACK_TOP, &args).unwrap();
    assert_eq!(read_u64(fake.as_ref(), rsp).unwrap(), 0);
    assert_eq!(
        fake.prot_at(STACK_TOP - 1),
        Some(libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC)
    );
    // A second stack at the same place collides; a misaligned top is refused.
    assert_eq!(build_stack(&mut mm, STACK_TOP, &args), Err(Errno::EEXIST));
    assert_eq!(
        build_stack(&mut mm, STACK_TOP - 8, &args),
        Err(Errno::EINVAL)
    );
}

// ---- Synthetic ELFs ----

#[derive(Clone, Copy)]
struct Ph {
    p_type: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

const LOAD_RX: Ph = Ph {
    p_type: 1,
    flags: 5,
    offset: 0,
    vaddr: 0x40_0000,
    filesz: 0x1000,
    memsz: 0x1000,
    align: 0x1000,
};
const LOAD_R_BSS: Ph = Ph {
    p_type: 1,
    flags: 4,
    offset: 0x1000,
    vaddr: 0x40_1000,
    filesz: 0x10,
    memsz: 0x2000,
    align: 0x1000,
};

/// An ET_EXEC with the given program headers, 0x3000 bytes long, filled with 0xaa
/// after the headers.
fn synth(phdrs: &[Ph]) -> Vec<u8> {
    let mut b = vec![0xaau8; 0x3000];
    b[..64].fill(0);
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[6] = 1;
    b[16..18].copy_from_slice(&2u16.to_le_bytes());
    b[18..20].copy_from_slice(&62u16.to_le_bytes());
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    b[24..32].copy_from_slice(&0x40_0100u64.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[52..54].copy_from_slice(&64u16.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
    for (i, p) in phdrs.iter().enumerate() {
        let o = 64 + 56 * i;
        b[o..o + 4].copy_from_slice(&p.p_type.to_le_bytes());
        b[o + 4..o + 8].copy_from_slice(&p.flags.to_le_bytes());
        b[o + 8..o + 16].copy_from_slice(&p.offset.to_le_bytes());
        b[o + 16..o + 24].copy_from_slice(&p.vaddr.to_le_bytes());
        b[o + 24..o + 32].copy_from_slice(&p.vaddr.to_le_bytes());
        b[o + 32..o + 40].copy_from_slice(&p.filesz.to_le_bytes());
        b[o + 40..o + 48].copy_from_slice(&p.memsz.to_le_bytes());
        b[o + 48..o + 56].copy_from_slice(&p.align.to_le_bytes());
    }
    b
}

fn load_bytes(bytes: &[u8]) -> (Arc<FakeSpace>, MemoryManager, SysResult<LoadedImage>) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = tmpdir().join(format!("synth{n}"));
    let mut f = File::create(&path).unwrap();
    f.write_all(bytes).unwrap();
    drop(f);
    let file = open_host(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let (fake, mut mm) = new_mm();
    let r = load_elf(&mut mm, &file, &no_open);
    (fake, mm, r)
}

#[test]
fn synthetic_elf_loads_and_zeroes_read_only_bss() {
    let bytes = synth(&[LOAD_RX, LOAD_R_BSS]);
    let (fake, mm, r) = load_bytes(&bytes);
    let image = r.unwrap();
    assert_eq!(image.entry, 0x40_0100);
    // The phdrs are found through the PT_LOAD covering them (no PT_PHDR).
    assert_eq!(image.phdr, 0x40_0040);
    assert_eq!(image.brk_start, 0x40_3000);
    let mut b = [0u8; 0x20];
    read_exact(fake.as_ref(), 0x40_1000, &mut b).unwrap();
    assert_eq!(&b[..0x10], &[0xaa; 0x10]);
    assert_eq!(&b[0x10..], &[0; 0x10]);
    assert_eq!(fake.prot_at(0x40_1000), Some(libc::PROT_READ));
    assert_eq!(fake.prot_at(0x40_2000), Some(libc::PROT_READ));
    assert_eq!(mm.vma_at(0x40_1000).unwrap().prot, libc::PROT_READ);
    assert_eq!(
        fake.prot_at(0x40_0000),
        Some(libc::PROT_READ | libc::PROT_EXEC)
    );
    // PT_PHDR wins when present; PT_GNU_STACK with PF_X asks for an executable stack.
    let phdr = Ph {
        p_type: 6,
        flags: 4,
        offset: 64,
        vaddr: 0x40_0040,
        filesz: 56 * 4,
        memsz: 56 * 4,
        align: 8,
    };
    let stack = Ph {
        p_type: 0x6474_e551,
        flags: 7,
        offset: 0,
        vaddr: 0,
        filesz: 0,
        memsz: 0,
        align: 16,
    };
    let (_f, _m, r) = load_bytes(&synth(&[phdr, LOAD_RX, LOAD_R_BSS, stack]));
    let image = r.unwrap();
    assert_eq!(image.phdr, 0x40_0040);
    assert_eq!(image.phnum, 4);
    assert!(image.exec_stack);
}

fn err(bytes: &[u8]) -> Errno {
    let (_f, _m, r) = load_bytes(bytes);
    r.expect_err("hostile file loaded")
}

#[test]
fn hostile_files_are_errors_not_panics() {
    let good = synth(&[LOAD_RX, LOAD_R_BSS]);
    assert!(load_bytes(&good).2.is_ok());
    // Truncated headers.
    assert_eq!(err(&good[..0]), Errno::ENOEXEC);
    assert_eq!(err(&good[..20]), Errno::ENOEXEC);
    assert_eq!(err(&good[..63]), Errno::ENOEXEC);
    assert_eq!(err(&good[..100]), Errno::ENOEXEC);
    // Wrong identification.
    for (off, val) in [
        (0, 0x7e),
        (4, 1),
        (5, 2),
        (6, 0),
        (16, 1),
        (16, 4),
        (18, 3),
        (20, 2),
        (54, 32),
    ] {
        let mut b = good.clone();
        b[off] = val;
        assert_eq!(err(&b), Errno::ENOEXEC, "byte {off} = {val}");
    }
    // phoff beyond EOF, or pointing so the table overflows.
    let mut b = good.clone();
    b[32..40].copy_from_slice(&0x10_0000u64.to_le_bytes());
    assert_eq!(err(&b), Errno::ENOEXEC);
    let mut b = good.clone();
    b[32..40].copy_from_slice(&(u64::MAX - 10).to_le_bytes());
    assert_eq!(err(&b), Errno::ENOEXEC);
    // Huge and zero phnum.
    for n in [0u16, 74, 0xffff] {
        let mut b = good.clone();
        b[56..58].copy_from_slice(&n.to_le_bytes());
        assert_eq!(err(&b), Errno::ENOEXEC, "phnum {n}");
    }
    // p_filesz > p_memsz.
    assert_eq!(
        err(&synth(&[Ph {
            memsz: 0x800,
            ..LOAD_RX
        }])),
        Errno::EINVAL
    );
    // vaddr + memsz overflowing, or rounding up past the top.
    assert_eq!(
        err(&synth(&[Ph {
            vaddr: u64::MAX - 0xfff,
            ..LOAD_RX
        }])),
        Errno::EINVAL
    );
    assert_eq!(
        err(&synth(&[
            LOAD_RX,
            Ph {
                memsz: u64::MAX - 0x40_0000,
                ..LOAD_R_BSS
            }
        ])),
        Errno::EINVAL
    );
    assert_eq!(
        err(&synth(&[
            LOAD_RX,
            Ph {
                vaddr: 0xffff_ffff_ffff_f010,
                offset: 0x1010,
                ..LOAD_R_BSS
            }
        ])),
        Errno::EINVAL
    );
    // Addresses the address space does not have.
    assert_eq!(
        err(&synth(&[Ph {
            vaddr: 0x7fff_ffff_0000,
            ..LOAD_RX
        }])),
        Errno::ENOMEM
    );
    assert_eq!(
        err(&synth(&[Ph {
            vaddr: 0,
            ..LOAD_RX
        }])),
        Errno::ENOMEM
    );
    // A huge bss.
    assert_eq!(
        err(&synth(&[
            LOAD_RX,
            Ph {
                memsz: 1 << 60,
                ..LOAD_R_BSS
            }
        ])),
        Errno::ENOMEM
    );
    // File contents beyond EOF, or an offset that overflows.
    assert_eq!(
        err(&synth(&[Ph {
            filesz: 0x4000,
            memsz: 0x4000,
            ..LOAD_RX
        }])),
        Errno::ENOEXEC
    );
    assert_eq!(
        err(&synth(&[Ph {
            offset: u64::MAX - 0xfff,
            vaddr: 0x40_1000,
            ..LOAD_RX
        }])),
        Errno::EINVAL
    );
    // Offset and address disagreeing within the page.
    assert_eq!(
        err(&synth(&[Ph {
            offset: 0x10,
            ..LOAD_RX
        }])),
        Errno::EINVAL
    );
    // Overlapping and descending segments.
    assert_eq!(
        err(&synth(&[
            LOAD_RX,
            Ph {
                vaddr: 0x40_0ff0,
                offset: 0xff0,
                ..LOAD_R_BSS
            }
        ])),
        Errno::EINVAL
    );
    assert_eq!(err(&synth(&[LOAD_R_BSS, LOAD_RX])), Errno::EINVAL);
    // No PT_LOAD at all.
    assert_eq!(
        err(&synth(&[Ph {
            p_type: 4,
            ..LOAD_RX
        }])),
        Errno::ENOEXEC
    );
    // Bad PT_INTERP: too long, unterminated, beyond EOF.
    let interp = |filesz: u64, offset: u64| Ph {
        p_type: 3,
        flags: 4,
        offset,
        vaddr: 0,
        filesz,
        memsz: filesz,
        align: 1,
    };
    assert_eq!(
        err(&synth(&[interp(5000, 0x1000), LOAD_RX])),
        Errno::ENOEXEC
    );
    assert_eq!(err(&synth(&[interp(8, 0x1000), LOAD_RX])), Errno::ENOEXEC);
    assert_eq!(
        err(&synth(&[interp(8, u64::MAX - 2), LOAD_RX])),
        Errno::ENOEXEC
    );
    assert_eq!(err(&synth(&[interp(1, 0x1000), LOAD_RX])), Errno::ENOEXEC);
    // A good PT_INTERP whose interpreter cannot be opened.
    let mut b = synth(&[interp(4, 0x2000), LOAD_RX]);
    b[0x2000..0x2004].copy_from_slice(b"/ld\0");
    assert_eq!(err(&b), Errno::ENOENT);
    // Huge alignment for an ET_DYN.
    let mut b = synth(&[Ph {
        align: 1 << 62,
        ..LOAD_RX
    }]);
    b[16] = 3;
    assert_eq!(err(&b), Errno::ENOMEM);
}

#[test]
fn interpreter_must_be_valid_elf() {
    let mut b = synth(&[
        Ph {
            p_type: 3,
            flags: 4,
            offset: 0x2000,
            vaddr: 0,
            filesz: 4,
            memsz: 4,
            align: 1,
        },
        LOAD_RX,
    ]);
    b[0x2000..0x2004].copy_from_slice(b"/ld\0");
    let path = tmpdir().join("with-interp");
    std::fs::write(&path, &b).unwrap();
    let file = open_host(&path).unwrap();
    // The "interpreter" is a text file.
    let bad = tmpdir().join("bad-interp");
    std::fs::write(&bad, b"#!/bin/sh\n").unwrap();
    let open = |_: &[u8]| open_host(&bad);
    let (_f, mut mm) = new_mm();
    assert_eq!(load_elf(&mut mm, &file, &open), Err(Errno::ENOEXEC));
    // Nothing was mapped: the interpreter is checked first.
    assert_eq!(mm.vmas().count(), 0);
    // An ET_EXEC interpreter colliding with the program.
    let self_path = path.clone();
    let open = |_: &[u8]| open_host(&self_path);
    let (_f, mut mm) = new_mm();
    assert_eq!(load_elf(&mut mm, &file, &open), Err(Errno::EEXIST));
}
