//! MemoryManager tests over the fake address space.

use std::io::Write;
use std::sync::Arc;

use super::fake::{FakeFile, FakeSpace};
use super::io::{read_exact, write_all};
use super::*;

const MIN: u64 = 0x10000;
const MAX: u64 = 0x7fff_0000_0000;
const TOP: u64 = 0x7f00_0000_0000;
const P: u64 = PAGE_SIZE;
const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;

fn setup() -> (Arc<FakeSpace>, MemoryManager) {
    let fake = FakeSpace::new();
    let mm = MemoryManager::new(fake.clone(), MIN, MAX, TOP);
    (fake, mm)
}

fn anon(addr: u64, len: u64, fixed: bool) -> MmapRequest {
    MmapRequest {
        addr,
        len,
        max_prot: crate::mm::PROT_MAY_ALL,
        prot: RW,
        shared: false,
        fixed,
        fixed_noreplace: false,
        backing: VmaBacking::Anonymous,
        role: VmaRole::Plain,
        noreserve: false,
    }
}

fn layout(mm: &MemoryManager) -> Vec<(u64, u64, i32)> {
    mm.vmas().map(|v| (v.start, v.end, v.prot)).collect()
}

#[test]
fn mmap_places_top_down_and_honours_free_hints() {
    let (fake, mut mm) = setup();
    let a = mm.mmap(anon(0, 3 * P, false)).unwrap();
    assert_eq!(a, TOP - 3 * P);
    let b = mm.mmap(anon(0, 1, false)).unwrap();
    assert_eq!(b, TOP - 4 * P);
    // A hole left by munmap is reused by a fitting request.
    mm.munmap(a, P).unwrap();
    let c = mm.mmap(anon(0, P, false)).unwrap();
    assert_eq!(c, a);
    // A free hint is used; an occupied one is not.
    let d = mm.mmap(anon(0x1000_0000, P, false)).unwrap();
    assert_eq!(d, 0x1000_0000);
    let e = mm.mmap(anon(0x1000_0000, P, false)).unwrap();
    assert_ne!(e, 0x1000_0000);
    assert_eq!(fake.prot_at(d), Some(RW));
    assert_eq!(mm.mmap(anon(0, 0, false)), Err(Errno::EINVAL));
}

#[test]
fn mmap_huge_lengths_fail_cleanly() {
    let (_fake, mut mm) = setup();
    assert_eq!(mm.mmap(anon(0, u64::MAX - 10, false)), Err(Errno::ENOMEM));
    assert_eq!(
        mm.mmap(anon(0, 0xffff_ffff_ffff_0000, false)),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        mm.mmap(anon(0xffff_f000, u64::MAX / 2, true)),
        Err(Errno::ENOMEM)
    );
    assert_eq!(mm.mmap(anon(MAX, P, true)), Err(Errno::ENOMEM));
    assert_eq!(mm.mmap(anon(0x1001, P, true)), Err(Errno::EINVAL));
    assert_eq!(mm.vmas().count(), 0);
}

#[test]
fn mmap_fixed_replaces_and_noreplace_refuses() {
    let (fake, mut mm) = setup();
    let base = 0x4000_0000;
    mm.mmap(anon(base, 4 * P, true)).unwrap();
    write_all(fake.as_ref(), base + P, b"hello").unwrap();
    let mut req = anon(base + P, P, true);
    req.prot = libc::PROT_READ;
    assert_eq!(mm.mmap(req).unwrap(), base + P);
    assert_eq!(
        layout(&mm),
        vec![
            (base, base + P, RW),
            (base + P, base + 2 * P, libc::PROT_READ),
            (base + 2 * P, base + 4 * P, RW)
        ]
    );
    // The replaced page is fresh zeroes.
    let mut b = [0xffu8; 5];
    read_exact(fake.as_ref(), base + P, &mut b).unwrap();
    assert_eq!(b, [0; 5]);
    let mut nr = anon(base + 3 * P, 2 * P, false);
    nr.fixed_noreplace = true;
    assert_eq!(mm.mmap(nr), Err(Errno::EEXIST));
    let mut nr = anon(base + 4 * P, 2 * P, false);
    nr.fixed_noreplace = true;
    assert_eq!(mm.mmap(nr), Ok(base + 4 * P));
}

#[test]
fn munmap_splits_vmas() {
    let (fake, mut mm) = setup();
    let base = 0x4000_0000;
    mm.mmap(anon(base, 5 * P, true)).unwrap();
    mm.munmap(base + P, 2 * P).unwrap();
    assert_eq!(
        layout(&mm),
        vec![(base, base + P, RW), (base + 3 * P, base + 5 * P, RW)]
    );
    assert_eq!(fake.prot_at(base + P), None);
    assert_eq!(fake.prot_at(base + 3 * P), Some(RW));
    // Unmapping nothing is fine; misaligned or empty is not.
    mm.munmap(0x5000_0000, P).unwrap();
    assert_eq!(mm.munmap(base + 1, P), Err(Errno::EINVAL));
    assert_eq!(mm.munmap(base, 0), Err(Errno::EINVAL));
    assert_eq!(mm.munmap(base, u64::MAX), Err(Errno::EINVAL));
    // A range covering several VMAs and holes.
    mm.munmap(base, 10 * P).unwrap();
    assert_eq!(mm.vmas().count(), 0);
    assert_eq!(fake.page_count(), 0);
}

#[test]
fn file_mappings_keep_offsets_across_splits() {
    let (fake, mut mm) = setup();
    let mut tmp = tempfile();
    let mut data = vec![0u8; 4 * P as usize];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i / P as usize) as u8 + 1;
    }
    tmp.write_all(&data).unwrap();
    let file = FakeFile::new(tmp, "data");
    let req = MmapRequest {
        addr: 0,
        len: 4 * P,
        max_prot: crate::mm::PROT_MAY_ALL,
        prot: libc::PROT_READ,
        shared: false,
        fixed: false,
        fixed_noreplace: false,
        backing: VmaBacking::File { file, offset: 0 },
        role: VmaRole::Plain,
        noreserve: false,
    };
    let a = mm.mmap(req).unwrap();
    mm.mprotect(a + 2 * P, P, RW).unwrap();
    let v = mm.vma_at(a + 2 * P).unwrap();
    assert!(matches!(v.backing, VmaBacking::File { offset, .. } if offset == 2 * P));
    let mut b = [0u8; 1];
    read_exact(fake.as_ref(), a + 3 * P, &mut b).unwrap();
    assert_eq!(b[0], 4);
    // Private writes are dropped by MADV_DONTNEED: the file shows through again.
    write_all(fake.as_ref(), a + 2 * P, &[99]).unwrap();
    mm.madvise(a + 2 * P, P, libc::MADV_DONTNEED).unwrap();
    read_exact(fake.as_ref(), a + 2 * P, &mut b).unwrap();
    assert_eq!(b[0], 3);
    assert_eq!(fake.prot_at(a + 2 * P), Some(RW));
}

fn tempfile() -> std::fs::File {
    let dir = std::env::temp_dir();
    let path = dir.join(format!(
        "rvisor-mm-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    f
}

#[test]
fn mprotect_splits_and_fails_on_holes() {
    let (fake, mut mm) = setup();
    let base = 0x4000_0000;
    mm.mmap(anon(base, 4 * P, true)).unwrap();
    mm.mprotect(base + P, P, libc::PROT_READ).unwrap();
    assert_eq!(
        layout(&mm),
        vec![
            (base, base + P, RW),
            (base + P, base + 2 * P, libc::PROT_READ),
            (base + 2 * P, base + 4 * P, RW)
        ]
    );
    assert_eq!(fake.prot_at(base + P), Some(libc::PROT_READ));
    assert_eq!(
        mm.mprotect(base + 3 * P, 2 * P, libc::PROT_READ),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        mm.mprotect(0x5000_0000, P, libc::PROT_READ),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        mm.mprotect(base + 1, P, libc::PROT_READ),
        Err(Errno::EINVAL)
    );
    assert_eq!(mm.mprotect(base, P, 0x100), Err(Errno::EINVAL));
    assert_eq!(
        mm.mprotect(base, u64::MAX, libc::PROT_READ),
        Err(Errno::ENOMEM)
    );
    // The failed calls changed nothing.
    assert_eq!(fake.prot_at(base + 3 * P), Some(RW));
    assert_eq!(mm.mprotect(base, 0, libc::PROT_NONE), Ok(()));
}

#[test]
fn brk_grows_and_shrinks() {
    let (fake, mut mm) = setup();
    assert_eq!(mm.brk(0x1000_0000), 0, "no brk before the image sets it");
    mm.set_brk_start(0x60_0123);
    let start = 0x60_1000;
    assert_eq!(mm.brk_current(), start);
    assert_eq!(mm.brk(0), start);
    assert_eq!(mm.brk(start + 10), start + 10);
    assert_eq!(fake.prot_at(start), Some(RW));
    assert_eq!(mm.vma_at(start).unwrap().role, VmaRole::Heap);
    assert_eq!(mm.brk(start + 3 * P), start + 3 * P);
    write_all(fake.as_ref(), start + 2 * P, b"x").unwrap();
    assert!(mm.fully_mapped(start, start + 3 * P));
    assert_eq!(
        layout(&mm),
        vec![(start, start + 3 * P, RW)],
        "one heap VMA"
    );
    assert_eq!(mm.brk(start + P + 1), start + P + 1);
    assert_eq!(fake.prot_at(start + P), Some(RW));
    assert_eq!(fake.prot_at(start + 2 * P), None);
    assert!(!mm.fully_mapped(start, start + 3 * P));
    // Below the start: refused.
    assert_eq!(mm.brk(start - 1), start + P + 1);
    // Into another mapping: refused.
    mm.mmap(anon(start + 8 * P, P, true)).unwrap();
    assert_eq!(mm.brk(start + 9 * P), start + P + 1);
    // Beyond the address space: refused, no panic.
    assert_eq!(mm.brk(u64::MAX), start + P + 1);
    // Growing back gives zeroes.
    assert_eq!(mm.brk(start + 3 * P), start + 3 * P);
    let mut b = [1u8];
    read_exact(fake.as_ref(), start + 2 * P, &mut b).unwrap();
    assert_eq!(b[0], 0);
    assert_eq!(mm.brk(start), start);
    assert_eq!(mm.vmas().count(), 1);
}

#[test]
fn mremap_shrinks_grows_in_place_and_moves() {
    let (fake, mut mm) = setup();
    let base = 0x4000_0000;
    mm.mmap(anon(base, 4 * P, true)).unwrap();
    write_all(fake.as_ref(), base, b"abc").unwrap();
    // Shrink.
    assert_eq!(mm.mremap(base, 4 * P, 2 * P, 0, 0), Ok(base));
    assert_eq!(layout(&mm), vec![(base, base + 2 * P, RW)]);
    assert_eq!(fake.prot_at(base + 2 * P), None);
    // Grow in place.
    assert_eq!(mm.mremap(base, 2 * P, 3 * P, 0, 0), Ok(base));
    assert_eq!(layout(&mm), vec![(base, base + 3 * P, RW)]);
    assert_eq!(fake.prot_at(base + 2 * P), Some(RW));
    // Blocked growth without MAYMOVE fails; with it the mapping moves with its data.
    mm.mmap(anon(base + 3 * P, P, true)).unwrap();
    assert_eq!(mm.mremap(base, 3 * P, 5 * P, 0, 0), Err(Errno::ENOMEM));
    let moved = mm.mremap(base, 3 * P, 5 * P, MREMAP_MAYMOVE, 0).unwrap();
    assert_ne!(moved, base);
    assert!(mm.vma_at(base).is_none());
    assert_eq!(fake.prot_at(base), None);
    assert!(mm.fully_mapped(moved, moved + 5 * P));
    let mut b = [0u8; 3];
    read_exact(fake.as_ref(), moved, &mut b).unwrap();
    assert_eq!(&b, b"abc");
    // Fixed move.
    let dest = 0x5000_0000;
    assert_eq!(
        mm.mremap(moved, 5 * P, P, MREMAP_MAYMOVE | MREMAP_FIXED, dest),
        Ok(dest)
    );
    read_exact(fake.as_ref(), dest, &mut b).unwrap();
    assert_eq!(&b, b"abc");
    assert!(mm.vma_at(moved).is_none());
    // Errors.
    assert_eq!(
        mm.mremap(0x6000_0000, P, 2 * P, MREMAP_MAYMOVE, 0),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        mm.mremap(dest, P, 2 * P, MREMAP_FIXED, 0x7000_0000),
        Err(Errno::EINVAL)
    );
    assert_eq!(mm.mremap(dest, P, 0, MREMAP_MAYMOVE, 0), Err(Errno::EINVAL));
    assert_eq!(
        mm.mremap(dest, 2 * P, 4 * P, MREMAP_MAYMOVE, 0),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        mm.mremap(dest, P, u64::MAX, MREMAP_MAYMOVE, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        mm.mremap(dest, P, 1 << 62, MREMAP_MAYMOVE, 0),
        Err(Errno::ENOMEM)
    );
    // Overlapping fixed destination.
    assert_eq!(
        mm.mremap(dest, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, dest),
        Err(Errno::EINVAL)
    );
}

/// MAP_NORESERVE reaches the host mapping, and stays on every piece of the VMA the
/// sentry maps again: a split by mprotect, MADV_DONTNEED's fresh pages, in-place
/// growth by mremap. (Without it the host commits swap for the whole range and
/// refuses a sanitizer's terabytes of shadow.)
#[test]
fn noreserve_survives_splits_dontneed_and_growth() {
    let (fake, mut mm) = setup();
    let base = 0x4000_0000;
    let mut req = anon(base, 4 * P, true);
    req.noreserve = true;
    mm.mmap(req).unwrap();
    mm.mmap(anon(base + 8 * P, P, true)).unwrap();
    assert_eq!(fake.noreserve_at(base), Some(true));
    assert_eq!(fake.noreserve_at(base + 8 * P), Some(false));
    mm.mprotect(base + P, P, libc::PROT_READ).unwrap();
    mm.madvise(base, 3 * P, libc::MADV_DONTNEED).unwrap();
    for i in 0..4 {
        assert_eq!(fake.noreserve_at(base + i * P), Some(true), "page {i}");
    }
    assert!(mm
        .vmas()
        .filter(|v| v.start < base + 4 * P)
        .all(|v| v.noreserve));
    assert_eq!(
        mm.mremap(base + 2 * P, 2 * P, 4 * P, 0, 0),
        Ok(base + 2 * P)
    );
    assert_eq!(fake.noreserve_at(base + 5 * P), Some(true));
    assert!(mm.vma_at(base + 5 * P).unwrap().noreserve);
    // brk memory and plain mappings keep the host's accounting.
    assert_eq!(fake.noreserve_at(base + 8 * P), Some(false));
}

#[test]
fn madvise_dontneed_zeroes_anonymous_memory() {
    let (fake, mut mm) = setup();
    let base = 0x4000_0000;
    mm.mmap(anon(base, 3 * P, true)).unwrap();
    let ones = vec![1u8; 3 * P as usize];
    write_all(fake.as_ref(), base, &ones).unwrap();
    mm.madvise(base + P, P, libc::MADV_DONTNEED).unwrap();
    let mut back = vec![0u8; 3 * P as usize];
    read_exact(fake.as_ref(), base, &mut back).unwrap();
    assert!(back[..P as usize].iter().all(|&b| b == 1));
    assert!(back[P as usize..2 * P as usize].iter().all(|&b| b == 0));
    assert!(back[2 * P as usize..].iter().all(|&b| b == 1));
    // Other advice leaves the data.
    mm.madvise(base, P, libc::MADV_WILLNEED).unwrap();
    read_exact(fake.as_ref(), base, &mut back[..1]).unwrap();
    assert_eq!(back[0], 1);
    assert_eq!(
        mm.madvise(base, 5 * P, libc::MADV_DONTNEED),
        Err(Errno::ENOMEM)
    );
    assert_eq!(mm.madvise(base, P, 12345), Err(Errno::EINVAL));
    assert_eq!(
        mm.madvise(base + 1, P, libc::MADV_DONTNEED),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        mm.madvise(base, u64::MAX, libc::MADV_DONTNEED),
        Err(Errno::EINVAL)
    );
}

#[test]
fn fake_space_reads_short_at_unmapped_pages() {
    let fake = FakeSpace::new();
    fake.map(0x10000, P, RW, false, Backing::Anonymous).unwrap();
    let mut buf = vec![0u8; 2 * P as usize];
    assert_eq!(fake.read(0x10000 + P - 8, &mut buf), Ok(8));
    assert_eq!(fake.read(0x10000 + P, &mut buf), Err(Errno::EFAULT));
    assert_eq!(fake.write(0x10000 + 8, &buf), Ok(P as usize - 8));
    assert_eq!(fake.protect(0x10000, 2 * P, 0), Err(Errno::ENOMEM));
}

#[test]
fn read_cstring_short_long_page_crossing_and_errors() {
    use super::io::read_cstring;
    let (fake, mut mm) = setup();
    // Two pages, with nothing mapped after them.
    let base = mm.mmap(anon(0x4000_0000, 2 * P, true)).unwrap();
    let put = |at: u64, s: &[u8]| write_all(fake.as_ref(), at, s).unwrap();
    for len in [0usize, 1, 255, 256, 257, 1000] {
        let s = vec![b'a'; len];
        put(base, &s);
        put(base + len as u64, &[0]);
        assert_eq!(
            read_cstring(fake.as_ref(), base, 4096).unwrap(),
            s,
            "len {len}"
        );
    }
    // Across the page boundary, starting 10 bytes before it.
    let s: Vec<u8> = (0..600).map(|i| b'a' + (i % 26) as u8).collect();
    put(base + P - 10, &s);
    put(base + P - 10 + 600, &[0]);
    assert_eq!(read_cstring(fake.as_ref(), base + P - 10, 4096).unwrap(), s);
    // Ending right before the unmapped page: no fault.
    put(base + 2 * P - 4, b"end\0");
    assert_eq!(
        read_cstring(fake.as_ref(), base + 2 * P - 4, 4096).unwrap(),
        b"end"
    );
    // Running into it: EFAULT; longer than max: ENAMETOOLONG; unmapped: EFAULT.
    put(base + 2 * P - 4, b"endX");
    assert_eq!(
        read_cstring(fake.as_ref(), base + 2 * P - 4, 4096),
        Err(Errno::EFAULT)
    );
    put(base, &[b'b'; 300]);
    assert_eq!(
        read_cstring(fake.as_ref(), base, 299),
        Err(Errno::ENAMETOOLONG)
    );
    assert_eq!(read_cstring(fake.as_ref(), 0x1000, 10), Err(Errno::EFAULT));
}

#[test]
fn max_prot_bounds_mprotect_across_splits_and_moves() {
    let (fake, mut mm) = setup();
    let base = 0x4000_0000;
    let mut req = anon(base, 4 * P, true);
    req.prot = libc::PROT_READ;
    req.shared = true;
    req.max_prot = PROT_MAY_ALL & !libc::PROT_WRITE;
    mm.mmap(req).unwrap();
    let mut too_much = anon(0x5000_0000, P, true);
    too_much.max_prot = libc::PROT_READ;
    assert_eq!(mm.mmap(too_much).err(), Some(Errno::EACCES));
    assert_eq!(mm.mprotect(base, P, RW), Err(Errno::EACCES));
    mm.mprotect(base + P, P, libc::PROT_READ | libc::PROT_EXEC)
        .unwrap();
    // A refused range changes nothing, even where part of it could change.
    assert_eq!(mm.mprotect(base, 4 * P, RW), Err(Errno::EACCES));
    assert_eq!(fake.prot_at(base), Some(libc::PROT_READ));
    // Moved or grown, the pages stay what they were allowed to be.
    let moved = mm
        .mremap(
            base + 2 * P,
            2 * P,
            3 * P,
            MREMAP_MAYMOVE | MREMAP_FIXED,
            0x6000_0000,
        )
        .unwrap();
    assert_eq!(mm.mprotect(moved, 3 * P, RW), Err(Errno::EACCES));
    mm.mprotect(moved, 3 * P, libc::PROT_NONE).unwrap();
    mm.mprotect(moved, 3 * P, libc::PROT_READ).unwrap();
    assert_eq!(fake.prot_at(moved), Some(libc::PROT_READ));
}
