//! The sandbox's vDSO: a small shared object (built from sentry/vdso/ by build.rs)
//! mapped into every process with its data page (vvar) right below it, so that
//! `clock_gettime`, `gettimeofday`, `time`, `clock_getres` and `getcpu` need no trap.
//!
//! The clocks. The sentry keeps one line that maps the host's time-stamp counter to
//! CLOCK_MONOTONIC nanoseconds, in fixed point (units of 2^-32 ns):
//! `base + (tsc - tsc_ref) * mult`, and offsets from it to CLOCK_REALTIME,
//! CLOCK_BOOTTIME and CLOCK_TAI. A service thread compares the line with the host's
//! clocks now and then and starts a new segment at the current counter value, with
//! its value there unchanged (so the clock never steps back) and a slope that brings
//! it onto the host's clock within one period. The `clock_gettime` syscall reads the
//! same line the same way ([`clock_now`]), so the vDSO and the sentry answer alike and
//! a program mixing them still sees a monotonic clock; sleeps with an absolute
//! deadline convert it on the same line. Until the line is enabled (a few ms after
//! boot, once the counter rate is measured), or on a host whose clock is not the
//! TSC, every call falls back to the trap and the host's clocks.
//!
//! Updates are a sequence lock: the word is odd while the parameters change; readers
//! retry, and after a while make the real syscall. The writer reads the counter for
//! the new segment's start only after the odd word is visible, so a reader that used
//! the old parameters read the counter before that start.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::errno::{Errno, SysResult};
use crate::kernel::ns::TimeNs;
use crate::mm::{Mappable, MemoryManager, MmapRequest, VmaBacking, VmaRole, PROT_MAY_ALL};
use crate::platform::{page_round_up, PAGE_SIZE};
use crate::sys::host;

/// The vDSO image, linked at 0.
pub static IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vdso.so"));

// Word indices in the vvar page (sentry/vdso/vdso.c has the same list).
const W_SEQ: usize = 0;
const W_FLAGS: usize = 1;
const W_TSC_REF: usize = 2;
const W_BASE_NS: usize = 3;
const W_BASE_FRAC: usize = 4;
const W_MULT: usize = 5;
const W_REALTIME_OFF: usize = 6;
const W_BOOTTIME_OFF: usize = 7;
const W_TAI_OFF: usize = 8;
const W_COARSE_RES: usize = 9;
const W_NCPUS: usize = 10;
/// A time namespace's CLOCK_MONOTONIC offset (ns, two's complement): 0 on the
/// sandbox's own page, set on a namespace's page ([`NsPage`]).
const W_NS_MONO: usize = 11;
/// A time namespace's CLOCK_BOOTTIME offset (ns, two's complement).
const W_NS_BOOT: usize = 12;
/// The words the writer keeps equal on every page.
const LINE_WORDS: std::ops::RangeInclusive<usize> = W_FLAGS..=W_NCPUS;

/// `W_FLAGS`: the line may be used.
const FLAG_CLOCKS: u64 = 1;

/// Fixed-point fraction bits of the line.
const SHIFT: u32 = 32;
/// The longest the slope may differ from the measured counter rate, in parts per
/// million: how fast the line moves onto the host's clock.
const MAX_SLEW_PPM: i128 = 1000;
/// An offset between two host clocks that moved more than this is a step of the
/// host's clock (settimeofday, a resume), not measuring noise.
const OFFSET_STEP_NS: i64 = 1000;
/// How far ahead of the host's clock the line starts when it is enabled.
const ENABLE_LEAD_NS: i128 = 1000;
/// Readers of the sentry wait this many odd sequence words before yielding.
const SPINS: u32 = 100;

/// The clocks the line serves (others trap and read the host).
fn line_clock(clock: i32) -> Option<usize> {
    match clock {
        libc::CLOCK_MONOTONIC | libc::CLOCK_MONOTONIC_COARSE => Some(0),
        libc::CLOCK_REALTIME | libc::CLOCK_REALTIME_COARSE | libc::CLOCK_REALTIME_ALARM => {
            Some(W_REALTIME_OFF)
        }
        libc::CLOCK_BOOTTIME | libc::CLOCK_BOOTTIME_ALARM => Some(W_BOOTTIME_OFF),
        libc::CLOCK_TAI => Some(W_TAI_OFF),
        _ => None,
    }
}

/// A memfd holding part of the vDSO, as a mapping source.
struct VdsoMem {
    fd: OwnedFd,
}

impl Mappable for VdsoMem {
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

/// One segment of the line and what the writer measured last.
#[derive(Clone, Copy, Default)]
struct WriterState {
    /// Host CLOCK_MONOTONIC (ns) and counter at the previous sample.
    prev: Option<(u64, i128)>,
    /// The counter rate measured over the last period (2^-32 ns per tick).
    rate: i128,
    enabled: bool,
    tsc_ref: u64,
    /// The line's value at `tsc_ref`, fixed point.
    base: i128,
    mult: i128,
    offsets: [i64; 3],
}

/// The data page of the members of a time namespace (Linux's per-namespace vvar
/// page): the sandbox's line, kept in step by the writer, plus the namespace's
/// offsets, which the vDSO adds to CLOCK_MONOTONIC and CLOCK_BOOTTIME. Sealed as
/// the sandbox's own page: no process can ever map it writable.
pub struct NsPage {
    mem: Arc<VdsoMem>,
    page: host::SharedWords,
}

/// The sandbox's vDSO: its two memfds and the sentry's view of the data page. One
/// per kernel ([`crate::kernel::Kernel::vdso`]): two sandboxes or test kernels never
/// share a clock line.
pub struct Vdso {
    vvar: Arc<VdsoMem>,
    text: Arc<VdsoMem>,
    text_len: u64,
    page: host::SharedWords,
    writer: Mutex<WriterState>,
    /// The host counts time with the TSC: the line may be enabled.
    tsc_clock: bool,
    /// The pages of the sandbox's time namespaces, which the writer updates with
    /// its own (guarded by `writer`'s lock when written).
    ns_pages: Mutex<Vec<std::sync::Weak<NsPage>>>,
}

/// A sandbox's vDSO; `None` if it could not be made (logged), and then processes
/// get none.
pub fn for_sandbox() -> Option<Arc<Vdso>> {
    match Vdso::new() {
        Ok(v) => Some(Arc::new(v)),
        Err(e) => {
            tracing::warn!("vdso: cannot set up ({e}); processes get no vDSO");
            None
        }
    }
}

/// Boot: starts the thread that keeps the vDSO's clock on the host's.
pub fn start(v: &Arc<Vdso>) {
    let v = v.clone();
    if !v.tsc_clock {
        tracing::info!("vdso: the host clock is not the TSC; clock reads trap");
        return;
    }
    let _ = std::thread::Builder::new()
        .name("rvisor-clock".into())
        .spawn(move || {
            // Quick first samples measure the counter rate (the line is enabled at
            // the first), then the period settles at a second.
            let mut period = Duration::from_millis(2);
            loop {
                std::thread::sleep(period);
                period = (period * 10).min(Duration::from_secs(1));
                v.update(period);
            }
        });
}

fn memfd(name: &std::ffi::CStr) -> SysResult<OwnedFd> {
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    Ok(memfd_create(
        name,
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )?)
}

fn seal(fd: BorrowedFd<'_>, seals: nix::fcntl::SealFlag) -> SysResult<()> {
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_ADD_SEALS(seals))?;
    Ok(())
}

/// A data page (the sandbox's or a time namespace's): the sentry's writable view is
/// mapped before the seal that refuses any later writable shared mapping, so no
/// process can ever map it writable, whatever its stub is asked.
fn data_page(name: &std::ffi::CStr) -> SysResult<(OwnedFd, host::SharedWords)> {
    use nix::fcntl::SealFlag;
    let fd = memfd(name)?;
    nix::unistd::ftruncate(&fd, PAGE_SIZE as i64)?;
    let page = host::map_shared_words(fd.as_fd())?;
    seal(
        fd.as_fd(),
        SealFlag::F_SEAL_FUTURE_WRITE
            | SealFlag::F_SEAL_SHRINK
            | SealFlag::F_SEAL_GROW
            | SealFlag::F_SEAL_SEAL,
    )?;
    Ok((fd, page))
}

impl Vdso {
    fn new() -> SysResult<Vdso> {
        use nix::fcntl::SealFlag;
        let text_len = page_round_up(IMAGE.len() as u64).ok_or(Errno::EINVAL)?;
        // The image: written once, then sealed against every change, so a process
        // that makes its copy writable (a debugger's breakpoint) gets a private copy.
        let text = memfd(c"rvisor-vdso")?;
        nix::unistd::ftruncate(&text, text_len as i64)?;
        let mut done = 0;
        while done < IMAGE.len() {
            done += host::pwrite(text.as_fd(), &IMAGE[done..], done as u64)?;
        }
        seal(
            text.as_fd(),
            SealFlag::F_SEAL_WRITE
                | SealFlag::F_SEAL_SHRINK
                | SealFlag::F_SEAL_GROW
                | SealFlag::F_SEAL_SEAL,
        )?;
        let (vvar, page) = data_page(c"rvisor-vvar")?;
        let ncpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        page[W_NCPUS].store(ncpus as u64, Ordering::Relaxed);
        let coarse = host::clock_getres(libc::CLOCK_MONOTONIC_COARSE)
            .map(|t| t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
            .unwrap_or(4_000_000);
        page[W_COARSE_RES].store(coarse, Ordering::Relaxed);
        let tsc_clock = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )
        .is_ok_and(|s| s.trim() == "tsc");
        let v = Vdso {
            vvar: Arc::new(VdsoMem { fd: vvar }),
            text: Arc::new(VdsoMem { fd: text }),
            text_len,
            page,
            writer: Mutex::new(WriterState::default()),
            tsc_clock,
            ns_pages: Mutex::new(Vec::new()),
        };
        if tsc_clock {
            // The first sample: the service's next one measures the rate.
            let mut w = v.writer.lock().map_err(|_| Errno::EIO)?;
            w.prev = Some(sample_mono());
        }
        Ok(v)
    }

    /// Maps the data page and the image into `mm` (vvar, then the vDSO right above
    /// it, as the image expects) and returns the image's address (`AT_SYSINFO_EHDR`).
    pub fn map_into(&self, mm: &mut MemoryManager) -> SysResult<u64> {
        let base = mm.free_range(PAGE_SIZE + self.text_len)?;
        mm.mmap(MmapRequest {
            addr: base,
            len: PAGE_SIZE,
            prot: libc::PROT_READ,
            // Never writable, as Linux's vvar.
            max_prot: libc::PROT_READ,
            shared: true,
            fixed: true,
            fixed_noreplace: false,
            backing: VmaBacking::File {
                file: self.vvar.clone(),
                offset: 0,
            },
            role: VmaRole::Vvar,
            noreserve: false,
        })?;
        mm.mmap(MmapRequest {
            addr: base + PAGE_SIZE,
            len: self.text_len,
            prot: libc::PROT_READ | libc::PROT_EXEC,
            max_prot: PROT_MAY_ALL,
            shared: false,
            fixed: true,
            fixed_noreplace: false,
            backing: VmaBacking::File {
                file: self.text.clone(),
                offset: 0,
            },
            role: VmaRole::Vdso,
            noreserve: false,
        })?;
        Ok(base + PAGE_SIZE)
    }

    /// A data page for a time namespace with offsets `mono` and `boot` (ns): a
    /// copy of the sandbox's page, updated with it from now on.
    pub fn ns_page(&self, mono: i64, boot: i64) -> SysResult<Arc<NsPage>> {
        let (fd, page) = data_page(c"rvisor-vvar-timens")?;
        let p = Arc::new(NsPage {
            mem: Arc::new(VdsoMem { fd }),
            page,
        });
        // Under the writer's lock the sandbox's page does not change: copy it.
        let _w = self.writer.lock().map_err(|_| Errno::EIO)?;
        let (from, to) = (&*self.page, &*p.page);
        for i in LINE_WORDS {
            to[i].store(from[i].load(Ordering::Relaxed), Ordering::Relaxed);
        }
        to[W_NS_MONO].store(mono as u64, Ordering::Relaxed);
        to[W_NS_BOOT].store(boot as u64, Ordering::Relaxed);
        to[W_SEQ].store(from[W_SEQ].load(Ordering::Relaxed), Ordering::Release);
        let mut pages = self.ns_pages.lock().map_err(|_| Errno::EIO)?;
        pages.retain(|w| w.strong_count() > 0);
        pages.push(Arc::downgrade(&p));
        Ok(p)
    }

    /// Replaces the data page mapped in `mm` (if any) with the one of time
    /// namespace `page` (`None`: the sandbox's own).
    fn join(&self, mm: &mut MemoryManager, page: Option<&NsPage>) -> SysResult<()> {
        let Some(addr) = mm.vmas().find(|v| v.role == VmaRole::Vvar).map(|v| v.start) else {
            return Ok(());
        };
        let file: Arc<dyn Mappable> = match page {
            Some(p) => p.mem.clone(),
            None => self.vvar.clone(),
        };
        mm.mmap(MmapRequest {
            addr,
            len: PAGE_SIZE,
            prot: libc::PROT_READ,
            max_prot: libc::PROT_READ,
            shared: true,
            fixed: true,
            fixed_noreplace: false,
            backing: VmaBacking::File { file, offset: 0 },
            role: VmaRole::Vvar,
            noreserve: false,
        })?;
        Ok(())
    }

    /// The line's nanoseconds for `off` (0: CLOCK_MONOTONIC, else the word of the
    /// clock's offset), as the vDSO computes them; `None` while disabled.
    fn line_ns(&self, off: usize) -> Option<u64> {
        let p = &*self.page;
        let mut spins = 0;
        loop {
            let seq = p[W_SEQ].load(Ordering::Acquire);
            if seq & 1 != 0 {
                spins += 1;
                if spins > SPINS {
                    std::thread::yield_now();
                }
                std::hint::spin_loop();
                continue;
            }
            let flags = p[W_FLAGS].load(Ordering::Relaxed);
            let tsc_ref = p[W_TSC_REF].load(Ordering::Relaxed);
            let base = p[W_BASE_NS].load(Ordering::Relaxed);
            let frac = p[W_BASE_FRAC].load(Ordering::Relaxed);
            let mult = p[W_MULT].load(Ordering::Relaxed);
            let offset = if off == 0 {
                0
            } else {
                p[off].load(Ordering::Relaxed)
            };
            let now = host::tsc_ordered();
            fence(Ordering::Acquire);
            if p[W_SEQ].load(Ordering::Relaxed) != seq {
                continue;
            }
            if flags & FLAG_CLOCKS == 0 {
                return None;
            }
            let delta = now.saturating_sub(tsc_ref);
            let prod = (delta as u128) * (mult as u128) + frac as u128;
            return Some(
                base.wrapping_add((prod >> SHIFT) as u64)
                    .wrapping_add(offset),
            );
        }
    }

    /// Takes a sample of the host's clocks and starts a new segment of the line that
    /// meets them `period` from now.
    fn update(&self, period: Duration) {
        let Ok(mut w) = self.writer.lock() else {
            return;
        };
        let (t_s, h_s) = sample_mono();
        let Some((t_p, h_p)) = w.prev else {
            w.prev = Some((t_s, h_s));
            return;
        };
        w.prev = Some((t_s, h_s));
        if t_s <= t_p || h_s <= h_p {
            return;
        }
        // Host nanoseconds per tick over the last period, fixed point.
        let rate = ((h_s - h_p) << SHIFT) / (t_s - t_p) as i128;
        if rate <= 0 {
            return;
        }
        w.rate = rate;
        let mut offsets = w.offsets;
        for (i, clock) in [libc::CLOCK_REALTIME, libc::CLOCK_BOOTTIME, libc::CLOCK_TAI]
            .into_iter()
            .enumerate()
        {
            if let Some(o) = sample_offset(clock) {
                if !w.enabled || (o - offsets[i]).abs() > OFFSET_STEP_NS {
                    offsets[i] = o;
                }
            }
        }
        w.offsets = offsets;
        let p = &*self.page;
        // The time namespaces' pages follow the sandbox's, word for word.
        let ns_pages: Vec<Arc<NsPage>> = self
            .ns_pages
            .lock()
            .map(|v| v.iter().filter_map(|w| w.upgrade()).collect())
            .unwrap_or_default();
        let seq = p[W_SEQ].load(Ordering::Relaxed);
        p[W_SEQ].store(seq.wrapping_add(1), Ordering::Relaxed);
        for n in &ns_pages {
            n.page[W_SEQ].store(seq.wrapping_add(1), Ordering::Relaxed);
        }
        // The odd words are visible to every reader before the counter is read.
        fence(Ordering::SeqCst);
        let t = host::tsc_ordered();
        // The host's clock at `t`, extrapolated from the sample at the measured rate.
        let host_now = (h_s << SHIFT) + (t.saturating_sub(t_s) as i128) * rate;
        let (base, mult) = if w.enabled {
            let line_now = w.base + (t.saturating_sub(w.tsc_ref) as i128) * w.mult;
            let err = host_now - line_now;
            let period_fp = (period.as_nanos() as i128) << SHIFT;
            let max = rate * MAX_SLEW_PPM / 1_000_000;
            let adjust = (rate * err / period_fp).clamp(-max, max);
            if err > (period_fp / 100).max(1 << (SHIFT + 20)) {
                // Far behind (the service did not run for long): step forward.
                (host_now, rate)
            } else {
                (line_now, rate + adjust)
            }
        } else {
            // Reads so far were the host's own clock (the syscall): start a little
            // ahead of it, beyond the sample's uncertainty, so none of them is later
            // than the line's first value; the next segments pull it back onto the host.
            (host_now + (ENABLE_LEAD_NS << SHIFT), rate)
        };
        w.tsc_ref = t;
        w.base = base;
        w.mult = mult;
        w.enabled = true;
        p[W_TSC_REF].store(t, Ordering::Relaxed);
        p[W_BASE_NS].store((base >> SHIFT) as u64, Ordering::Relaxed);
        p[W_BASE_FRAC].store((base & ((1 << SHIFT) - 1)) as u64, Ordering::Relaxed);
        p[W_MULT].store(mult as u64, Ordering::Relaxed);
        p[W_REALTIME_OFF].store(offsets[0] as u64, Ordering::Relaxed);
        p[W_BOOTTIME_OFF].store(offsets[1] as u64, Ordering::Relaxed);
        p[W_TAI_OFF].store(offsets[2] as u64, Ordering::Relaxed);
        p[W_FLAGS].store(FLAG_CLOCKS, Ordering::Relaxed);
        for n in &ns_pages {
            for i in LINE_WORDS {
                n.page[i].store(p[i].load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
        p[W_SEQ].store(seq.wrapping_add(2), Ordering::Release);
        for n in &ns_pages {
            n.page[W_SEQ].store(seq.wrapping_add(2), Ordering::Release);
        }
    }
}

fn ns_of(ts: &libc::timespec) -> i128 {
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// The counter and host CLOCK_MONOTONIC (ns) at the same moment: the middle of the
/// tightest of a few counter readings around the clock reading.
fn sample_mono() -> (u64, i128) {
    let mut best: Option<(u64, u64, i128)> = None;
    for _ in 0..5 {
        let t1 = host::tsc_ordered();
        let Ok(m) = host::clock_gettime(libc::CLOCK_MONOTONIC) else {
            continue;
        };
        let t2 = host::tsc_ordered();
        let w = t2.saturating_sub(t1);
        if best.is_none_or(|(bw, _, _)| w < bw) {
            best = Some((w, t1 + w / 2, ns_of(&m)));
        }
    }
    best.map_or((host::tsc_ordered(), 0), |(_, t, m)| (t, m))
}

/// `clock` minus CLOCK_MONOTONIC on the host (ns), read between two monotonic
/// readings.
fn sample_offset(clock: libc::clockid_t) -> Option<i64> {
    let m1 = ns_of(&host::clock_gettime(libc::CLOCK_MONOTONIC).ok()?);
    let c = ns_of(&host::clock_gettime(clock).ok()?);
    let m2 = ns_of(&host::clock_gettime(libc::CLOCK_MONOTONIC).ok()?);
    i64::try_from(c - (m1 + m2) / 2).ok()
}

/// What `clock_gettime(clock)` answers for the clocks that do not count CPU time:
/// the line of the sandbox's vDSO `v` for the clocks it serves (once enabled), else
/// the host's clock. `EINVAL` for an unknown clock.
pub fn clock_now(v: Option<&Vdso>, clock: i32) -> SysResult<libc::timespec> {
    if let (Some(off), Some(v)) = (line_clock(clock), v) {
        if let Some(ns) = v.line_ns(off) {
            if (ns as i64) >= 0 {
                return Ok(libc::timespec {
                    tv_sec: (ns / 1_000_000_000) as i64,
                    tv_nsec: (ns % 1_000_000_000) as i64,
                });
            }
        }
    }
    host::clock_gettime(host_wall_clock(clock)?)
}

/// The host clock that answers for application clock `clock`, one of the clocks
/// that are not CPU time (`EINVAL` for any other).
pub fn host_wall_clock(clock: i32) -> SysResult<libc::clockid_t> {
    match clock {
        libc::CLOCK_REALTIME
        | libc::CLOCK_MONOTONIC
        | libc::CLOCK_MONOTONIC_RAW
        | libc::CLOCK_REALTIME_COARSE
        | libc::CLOCK_MONOTONIC_COARSE
        | libc::CLOCK_BOOTTIME
        | libc::CLOCK_TAI => Ok(clock),
        libc::CLOCK_REALTIME_ALARM => Ok(libc::CLOCK_REALTIME),
        libc::CLOCK_BOOTTIME_ALARM => Ok(libc::CLOCK_BOOTTIME),
        _ => Err(Errno::EINVAL),
    }
}

/// Maps the data page of time namespace `t` where `mm` has its vDSO's (a process
/// entering it: fork, execve, setns). `ENOMEM` if the namespace could not get a
/// page of its own (the vDSO would read clocks without its offsets).
pub fn join_time_ns(v: Option<&Vdso>, mm: &mut MemoryManager, t: &TimeNs) -> SysResult<()> {
    let Some(v) = v else {
        return Ok(());
    };
    if t.is_root() {
        return v.join(mm, None);
    }
    let page = t.page().ok_or(Errno::ENOMEM)?;
    v.join(mm, Some(page))
}

/// Maps the vDSO `v` into a new process's `mm`: its address for `AT_SYSINFO_EHDR`,
/// or 0 if the sandbox has none.
pub fn map_into(v: Option<&Vdso>, mm: &mut MemoryManager) -> SysResult<u64> {
    match v {
        Some(v) => v.map_into(mm),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], o: usize) -> usize {
        u16::from_le_bytes([b[o], b[o + 1]]) as usize
    }
    fn u32_at(b: &[u8], o: usize) -> usize {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize
    }
    fn u64_at(b: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
    }

    /// The image is what the loaders of glibc, musl and Go accept: a shared object
    /// linked at 0, one loadable segment that fits the mapping, no relocations (the
    /// sentry maps it as is), and the five functions in the dynamic symbol table,
    /// each with version LINUX_2.6.
    #[test]
    fn image_is_a_relocation_free_shared_object() {
        let b = IMAGE;
        assert_eq!(&b[..4], b"\x7fELF");
        assert_eq!(u16_at(b, 16), 3, "ET_DYN");
        let (phoff, phent, phnum) = (u64_at(b, 32) as usize, u16_at(b, 54), u16_at(b, 56));
        let mut dynamic = None;
        let mut loads = 0;
        for i in 0..phnum {
            let ph = phoff + i * phent;
            let (ty, off, vaddr, filesz) = (
                u32_at(b, ph),
                u64_at(b, ph + 8),
                u64_at(b, ph + 16),
                u64_at(b, ph + 32),
            );
            if ty == 1 {
                loads += 1;
                assert_eq!((off, vaddr), (0, 0));
                assert!(filesz as usize <= b.len());
            }
            if ty == 2 {
                dynamic = Some((off as usize, filesz as usize));
            }
        }
        assert_eq!(loads, 1);
        let (doff, dlen) = dynamic.expect("PT_DYNAMIC");
        let mut tags = std::collections::HashMap::new();
        for e in (doff..doff + dlen).step_by(16) {
            let tag = u64_at(b, e);
            if tag == 0 {
                break;
            }
            tags.insert(tag, u64_at(b, e + 8) as usize);
        }
        for rel in [7u64, 8, 17, 18, 0x6fff_fff9, 0x6fff_fffa, 36] {
            assert!(!tags.contains_key(&rel), "relocation tag {rel:#x}");
        }
        for need in [4u64, 0x6fff_fef5, 5, 6, 0x6fff_fffc, 0x6fff_fff0] {
            assert!(tags.contains_key(&need), "dynamic tag {need:#x}");
        }
        let (symtab, strtab, versym, verdef) =
            (tags[&6], tags[&5], tags[&0x6fff_fff0], tags[&0x6fff_fffc]);
        let nsyms = u32_at(b, tags[&4] + 4);
        let cstr = |o: usize| {
            let end = b[o..].iter().position(|&c| c == 0).unwrap();
            std::str::from_utf8(&b[o..o + end]).unwrap()
        };
        // The version index named LINUX_2.6.
        let mut linux26 = None;
        let mut vd = verdef;
        loop {
            let (ndx, aux, next) = (u16_at(b, vd + 4), u32_at(b, vd + 12), u32_at(b, vd + 16));
            if cstr(strtab + u32_at(b, vd + aux)) == "LINUX_2.6" {
                linux26 = Some(ndx);
            }
            if next == 0 {
                break;
            }
            vd += next;
        }
        let linux26 = linux26.expect("LINUX_2.6 version");
        let mut found = Vec::new();
        for i in 0..nsyms {
            let s = symtab + i * 24;
            let name = cstr(strtab + u32_at(b, s));
            if name.starts_with("__vdso_") && u16_at(b, versym + 2 * i) & 0x7fff == linux26 {
                assert_ne!(u64_at(b, s + 8), 0, "{name} defined");
                found.push(name);
            }
        }
        found.sort();
        assert_eq!(
            found,
            [
                "__vdso_clock_getres",
                "__vdso_clock_gettime",
                "__vdso_getcpu",
                "__vdso_gettimeofday",
                "__vdso_time"
            ]
        );
    }

    /// The line, once enabled, stays within a few microseconds of the host's
    /// CLOCK_MONOTONIC and never goes back across updates.
    #[test]
    fn line_follows_the_host_clock() {
        let v = Vdso::new().expect("a vDSO");
        if !v.tsc_clock {
            eprintln!("host clock is not the TSC: nothing to check");
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
        v.update(Duration::from_millis(20));
        let mut last = 0;
        for round in 0..5 {
            std::thread::sleep(Duration::from_millis(20));
            v.update(Duration::from_millis(20));
            for _ in 0..1000 {
                let l = v.line_ns(0).expect("enabled");
                assert!(l >= last, "round {round}: {l} < {last}");
                last = l;
            }
            // The host's reading lies between two of the line's, give or take the
            // line's error (a preemption between the reads only widens the window).
            let l1 = v.line_ns(0).unwrap() as i128;
            let h = ns_of(&host::clock_gettime(libc::CLOCK_MONOTONIC).unwrap());
            let l2 = v.line_ns(0).unwrap() as i128;
            assert!(
                l1 - 50_000 <= h && h <= l2 + 50_000,
                "round {round}: host {h} line {l1}..{l2}"
            );
        }
        let rt1 = ns_of(&clock_now(Some(&v), libc::CLOCK_REALTIME).unwrap());
        let hrt = ns_of(&host::clock_gettime(libc::CLOCK_REALTIME).unwrap());
        let rt2 = ns_of(&clock_now(Some(&v), libc::CLOCK_REALTIME).unwrap());
        assert!(
            rt1 - 50_000 <= hrt && hrt <= rt2 + 50_000,
            "realtime {rt1}..{rt2} host {hrt}"
        );
    }
}
