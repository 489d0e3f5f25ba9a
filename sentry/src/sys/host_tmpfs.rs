//! Host tmpfs instances that hold the file data of the sandbox's tmpfs mounts, one
//! per mount, so the host kernel itself enforces the mount's `size=` on every page:
//! `write` and `fallocate` get `ENOSPC` (or a short write), and a write fault
//! through a shared mapping gets SIGBUS (`BUS_ADRERR`), as Linux's tmpfs gives them.
//! Its `statfs` is the mount's.
//!
//! Each instance is made while the sentry still holds `CAP_SYS_ADMIN` at boot. With a
//! mount namespace of its own (see [`stage_in`]) it is mounted with `mount(2)` on a
//! directory of a staging tmpfs in that namespace (private: nothing propagates to the
//! host), its root opened, and the whole staging tree goes with the old root the sentry
//! detaches when it moves to its empty root, before any application code runs: from
//! then on each instance is detached, reachable only through its descriptor. Without a
//! namespace of its own it is made with the mount API (`fsopen`, `fsconfig`, `fsmount`),
//! detached from the start. Either way neither the host nor the sandbox can see or
//! reach it by path. The staging path exists for the exit's sake: closing the
//! descriptor of an `fsmount` mount unmounts it and waits for an RCU grace period,
//! one wait per instance (108 spares: 20-70 ms of every sandbox's exit on a busy
//! 2-CPU host, measured), whereas the detached staging tree costs one wait at boot
//! (the one the old root's detachment pays anyway) and none at exit. Files
//! are made in it with `O_TMPFILE` and never named, so a file's data goes when its
//! descriptor (the sentry's extent) is closed.
//!
//! Once confined the sentry can make no new instance (no `fsopen` in its allow-list,
//! nor the capability). So before that point ([`seal`]) [`make_spares`] makes a
//! pool of *spare* instances, empty and of graded sizes (1, 2, 3 pages, then four
//! sizes per doubling: 4, 5, 6, 7 × 2^k pages, up to the first at least the machine's
//! memory, at most 1 TiB), and a tmpfs mounted later
//! (`mount -t tmpfs` inside the sandbox, a container added to a running pod)
//! takes the smallest free spare at least its `size=`, at most twice it or at most
//! [`FILLER_MAX_PAGES`] larger ([`mount`] after [`seal`]). `write` and `fallocate`
//! are held to `size=` exactly by the sentry's own count (see `fs::tmpfs`); faults
//! through mappings, which only the host sees, are held to it by a *filler*: before
//! the first mapping of one of the mount's files, a spare larger than the mount gets
//! an unnamed file holding exactly its extra pages ([`HostTmpfs::hold_faults`]), so
//! the host refuses every page past `size=` (its cost: those pages of real memory,
//! at most [`FILLER_MAX_PAGES`]). A spare further from `size=` than that is not
//! filled (nor one whose filler the host could not allocate): the host refuses
//! faults at the spare's size, and the sandbox's tmpfs charges each mapped file its
//! whole size so that faults stay within `size=` all the same. An empty spare
//! costs the host a superblock and a descriptor, no memory for data. A spare goes
//! back to the pool when its tmpfs is gone ([`HostTmpfs`]'s drop, the filler
//! closed first), to be taken again
//! once the host shows it empty (a stub may still map a page of a deleted file).
//! Without a fitting spare left, the mount keeps its files in memfds, held to its
//! size the same way (see `fs::tmpfs`).
//!
//! The instances' descriptors are kept for the sentry's whole life, never closed, so
//! the numbers the seccomp filter allows `O_TMPFILE` and `fstatfs` on never come to
//! name anything else: those made at boot one by one ([`dir_fds`]), the spares as one
//! run of consecutive numbers ([`spare_fds`]), which one range check covers.
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::errno::{Errno, SysResult};

/// `FSOPEN_CLOEXEC`.
const FSOPEN_CLOEXEC: u32 = 1;
/// `FSCONFIG_SET_STRING`.
const FSCONFIG_SET_STRING: u32 = 1;
/// `FSCONFIG_CMD_CREATE`.
const FSCONFIG_CMD_CREATE: u32 = 6;
/// `FSMOUNT_CLOEXEC`.
const FSMOUNT_CLOEXEC: u32 = 1;
/// `MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV`. Not `MOUNT_ATTR_NOEXEC`: the host would
/// then refuse `PROT_EXEC` mappings of the files (a program loaded from a sandbox
/// tmpfs, an `mprotect(PROT_EXEC)`), which the sandbox's own `noexec` decides.
const MOUNT_ATTRS: u32 = 0x2 | 0x4;

/// The only `openat` flags the sentry passes on an instance: a new unnamed file,
/// read-write, close-on-exec (the seccomp row allows exactly these).
pub const TMPFILE_FLAGS: i32 = libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC;
/// The mode of those files (never seen by anyone: they have no name).
pub const TMPFILE_MODE: u32 = 0o600;

/// Bytes per page of the sizes here.
const PAGE: u64 = 4096;
/// The largest spare, in pages (1 TiB): a tmpfs larger than that mounted after
/// confinement keeps memfds.
const SPARE_MAX_PAGES: u64 = 1 << 28;
/// The most pages a filler may hold (64 MiB): a spare more than that larger than
/// its mount's `size=` is not filled, and the host refuses faults at the spare's
/// size (see [`HostTmpfs::hold_faults`]).
pub const FILLER_MAX_PAGES: u64 = 1 << 14;
/// The lowest descriptor number the spares' run may start at: above the few the
/// sentry holds at boot, so a free run is found at the first try.
const SPARE_BASE: RawFd = 256;

/// Every boot instance's root descriptor, kept until the sentry exits.
static DIRS: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());
/// Where instances are mounted while the sentry's old root is still attached
/// ([`stage_in`]); `None`: the mount API's detached mounts.
static STAGING: Mutex<Option<Staging>> = Mutex::new(None);

/// The staging tree of [`stage_in`].
struct Staging {
    /// The directory the staging tmpfs goes on.
    dir: &'static std::ffi::CStr,
    /// Whether it is mounted there yet (on the first instance).
    mounted: bool,
    /// The instances mounted there so far (all on its directory `0`, stacked).
    next: u64,
}
/// Set once the sentry is confined: no instance can be made any more.
static SEALED: AtomicBool = AtomicBool::new(false);
/// The spares made by [`make_spares`].
static SPARES: Mutex<Pool> = Mutex::new(Pool {
    free: Vec::new(),
    run: None,
});

/// One host tmpfs instance (its root directory's descriptor, never closed).
#[derive(Debug)]
pub struct HostTmpfs {
    root: BorrowedFd<'static>,
    /// Its size limit, in pages.
    pages: u64,
    /// The mount's own size, in pages (`pages` or, for a spare, maybe fewer).
    want: u64,
    /// Taken from the spares: given back to them when dropped.
    spare: bool,
    /// An unnamed file holding the spare's pages past `want` (see
    /// [`HostTmpfs::hold_faults`]), once made.
    filler: Mutex<Option<OwnedFd>>,
    /// The pages `filler` holds (0 without one).
    filled: AtomicU64,
    /// The host could not allocate the filler: not tried again (each try allocates
    /// and frees up to [`FILLER_MAX_PAGES`]); mapped files are then charged their
    /// size by the sandbox's tmpfs instead.
    filler_failed: AtomicBool,
}

/// Set by `RVISOR_TESTONLY_FILLER_FAILS` (read once at boot): every filler's
/// allocation fails as when the sandbox's memory limit is reached, which a test
/// cannot cause without the host's OOM killer choosing among the sandbox's
/// processes.
static TESTONLY_FILLER_FAILS: AtomicBool = AtomicBool::new(false);

/// Makes every filler's allocation fail (`ENOMEM`), for the test of that case.
pub fn set_testonly_filler_fails() {
    TESTONLY_FILLER_FAILS.store(true, Ordering::Relaxed);
}

/// Its size figures, in pages of 4 KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// The size limit.
    pub blocks: u64,
    /// Pages not in use.
    pub free: u64,
}

/// Spare instances: those not in use, and the run of descriptor numbers all of
/// them have.
struct Pool {
    /// (root descriptor, size in pages), smallest first.
    free: Vec<(RawFd, u64)>,
    /// The first descriptor and the count, all consecutive.
    run: Option<(RawFd, usize)>,
}

impl Pool {
    /// Makes one empty instance of each size in `pages`, their descriptors moved to
    /// consecutive numbers from `base` on (or the first free run past it).
    fn make(pages: &[u64], base: RawFd) -> SysResult<Pool> {
        let started = std::time::Instant::now();
        let mut made = Vec::with_capacity(pages.len());
        for &p in pages {
            made.push(make_instance(p * PAGE)?);
        }
        let mounted = started.elapsed();
        let first = consecutive(&made, base)?;
        tracing::debug!(
            spares = made.len(),
            mount_micros = mounted.as_micros() as u64,
            renumber_micros = (started.elapsed() - mounted).as_micros() as u64,
            "host tmpfs: spare instances made"
        );
        let mut free: Vec<(RawFd, u64)> = (first..).zip(pages.iter().copied()).collect();
        free.sort_by_key(|&(_, p)| p);
        Ok(Pool {
            free,
            run: Some((first, made.len())),
        })
    }

    /// The smallest spare of at least `pages` that the host shows empty, taken
    /// out: at most twice `pages`, or larger by no more than a filler may hold
    /// ([`FILLER_MAX_PAGES`]); a larger one is kept for a mount of its size.
    fn take(&mut self, pages: u64) -> Option<(RawFd, u64)> {
        let at = self.free.iter().position(|&(fd, p)| {
            p >= pages
                && (p <= pages.saturating_mul(2) || p - pages <= FILLER_MAX_PAGES)
                && usage_of(borrow(fd)).is_ok_and(|u| u.free == u.blocks)
        })?;
        Some(self.free.remove(at))
    }

    /// Gives a spare back.
    fn put(&mut self, fd: RawFd, pages: u64) {
        let at = self.free.partition_point(|&(_, p)| p <= pages);
        self.free.insert(at, (fd, pages));
    }
}

/// The spares' sizes in pages: 1, 2, 3, then 4, 5, 6, 7 × 2^k up to the first at
/// least the machine's memory ([`spare_max_pages`]), so every size up to there has a
/// spare less than a quarter larger.
fn spare_sizes() -> Vec<u64> {
    sizes_up_to(spare_max_pages())
}

/// [`spare_sizes`] up to the first size of at least `max` pages.
fn sizes_up_to(max: u64) -> Vec<u64> {
    let mut v = vec![1, 2, 3];
    for k in 0.. {
        for m in 4u64..8 {
            let p = m << k;
            if p > SPARE_MAX_PAGES {
                return v;
            }
            v.push(p);
            if p >= max {
                return v;
            }
        }
    }
    v
}

/// The largest spare needed: the machine's memory in pages (a tmpfs without
/// `size=` is half of it, so its spare is at most the memory), at most
/// [`SPARE_MAX_PAGES`]. A mount larger than the machine's memory cannot have all
/// its pages faulted in anyway (the host's memory, or the sandbox's cgroup, runs
/// out first), so it keeps memfds; each spare costs a mount at every start and its
/// teardown at exit: on a 24 GiB machine 86 spares, where 1 TiB took 108.
fn spare_max_pages() -> u64 {
    crate::sys::host::sysinfo()
        .map(|s| {
            s.totalram
                .saturating_mul(u64::from(s.mem_unit))
                .div_ceil(PAGE)
        })
        .unwrap_or(SPARE_MAX_PAGES)
        .clamp(1, SPARE_MAX_PAGES)
}

/// Duplicates `fds` onto `fds.len()` consecutive free descriptor numbers from
/// `base` on (close-on-exec; the originals are closed) and returns the first.
/// `F_DUPFD` never replaces an open descriptor, so another thread opening one
/// meanwhile only moves the run further up.
fn consecutive(fds: &[OwnedFd], base: RawFd) -> SysResult<RawFd> {
    let mut first = base;
    for _ in 0..64 {
        let mut dups: Vec<OwnedFd> = Vec::with_capacity(fds.len());
        let mut clash = None;
        for (i, fd) in fds.iter().enumerate() {
            let want = first + i as RawFd;
            // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own; it returns a new one.
            let got = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, want) };
            if got < 0 {
                return Err(Errno::last());
            }
            // SAFETY: the kernel just returned this descriptor; nothing else owns it.
            dups.push(unsafe { OwnedFd::from_raw_fd(got) });
            if got != want {
                clash = Some(got);
                break;
            }
        }
        match clash {
            // `want` was taken: a run from the number after it (`dups` close).
            Some(got) => first = got + 1,
            None => {
                let first_fd = dups.first().map(|d| d.as_raw_fd()).unwrap_or(first);
                for d in dups {
                    // Kept for the sentry's life (see the module doc).
                    let _ = std::os::fd::IntoRawFd::into_raw_fd(d);
                }
                return Ok(first_fd);
            }
        }
    }
    Err(Errno::EMFILE)
}

/// A 'static borrow of a root descriptor.
fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: every root descriptor stays open for the rest of the process (never
    // closed: see the module doc), so a 'static borrow of it is sound.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// An instance limited to `size` bytes (rounded up to pages, as Linux's `size=`):
/// a new one made with the mount API before [`seal`]; after it, the smallest spare
/// of at least that size (`ENOSPC` when none is left). `EPERM` without the
/// privilege to mount.
pub fn mount(size: u64) -> SysResult<HostTmpfs> {
    let pages = size.div_ceil(PAGE).max(1);
    if SEALED.load(Ordering::Relaxed) {
        let (fd, have) = SPARES
            .lock()
            .map_err(|_| Errno::EIO)?
            .take(pages)
            .ok_or(Errno::ENOSPC)?;
        return Ok(HostTmpfs::new(fd, have, pages, true));
    }
    let mut dirs = DIRS.lock().map_err(|_| Errno::EIO)?;
    let root = make_instance(pages * PAGE)?;
    let raw = std::os::fd::IntoRawFd::into_raw_fd(root);
    dirs.push(raw);
    Ok(HostTmpfs::new(raw, pages, pages, false))
}

/// Makes an instance of `size` bytes, with no inode limit of its own (the sandbox's
/// tmpfs counts its inodes); its root directory's descriptor. Staged when
/// [`stage_in`] named a directory (detached with the sentry's old root), else
/// detached at once by the mount API.
fn make_instance(size: u64) -> SysResult<OwnedFd> {
    let mut staging = STAGING.lock().map_err(|_| Errno::EIO)?;
    if let Some(st) = staging.as_mut() {
        match staged_instance(st, size) {
            Ok(fd) => return Ok(fd),
            Err(e) => {
                // The mount API still works where mount(2) on the staging directory
                // does not (its exit costs more, nothing else).
                tracing::debug!("host tmpfs: staging in {:?}: {e}; detached mounts", st.dir);
                *staging = None;
            }
        }
    }
    drop(staging);
    detached_instance(size)
}

/// [`make_instance`] in the staging tree.
fn staged_instance(st: &mut Staging, size: u64) -> SysResult<OwnedFd> {
    let flags = libc::MS_NOSUID | libc::MS_NODEV;
    if !st.mounted {
        mount_tmpfs(st.dir, c"size=4k,mode=0700", flags | libc::MS_NOEXEC)?;
        st.mounted = true;
    }
    // Every instance goes on the same directory, each over the one before (a
    // mount on a mount point goes on top, and the path names the top one): a
    // directory per instance cost a `mkdir` each, a fifth of the pool's time.
    let mut path = st.dir.to_bytes().to_vec();
    path.extend_from_slice(b"/0");
    let path = std::ffi::CString::new(path).map_err(|_| Errno::EINVAL)?;
    if st.next == 0 {
        // SAFETY: a NUL-terminated path and an integer mode.
        if unsafe { libc::mkdir(path.as_ptr(), 0o700) } < 0 {
            return Err(Errno::last());
        }
    }
    st.next += 1;
    let data = std::ffi::CString::new(format!("size={size},nr_inodes=0,mode=0700,huge=never"))
        .map_err(|_| Errno::EINVAL)?;
    // MOUNT_ATTRS, in mount(2)'s flags.
    mount_tmpfs(&path, &data, flags)?;
    // SAFETY: a NUL-terminated path and integer flags.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mount -t tmpfs` on `target` with `data`.
fn mount_tmpfs(
    target: &std::ffi::CStr,
    data: &std::ffi::CStr,
    flags: libc::c_ulong,
) -> SysResult<()> {
    // SAFETY: NUL-terminated strings, as mount(2) takes.
    let r = unsafe {
        libc::mount(
            c"rvisor-tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Instances are mounted in a staging tmpfs on `dir` from now on ([`make_instance`]).
/// Only for a sentry in a mount namespace of its own, private, whose old root (with
/// `dir`) it detaches before any application code runs, calling [`unstage`] then.
pub fn stage_in(dir: &'static std::ffi::CStr) {
    if let Ok(mut st) = STAGING.lock() {
        *st = Some(Staging {
            dir,
            mounted: false,
            next: 0,
        });
    }
}

/// The staging tree is gone (detached with the old root): later instances, if any,
/// are made by the mount API.
pub fn unstage() {
    if let Ok(mut st) = STAGING.lock() {
        *st = None;
    }
}

/// [`make_instance`] by the mount API: a detached mount from the start.
fn detached_instance(size: u64) -> SysResult<OwnedFd> {
    // SAFETY: fsopen takes a NUL-terminated name and integer flags.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) };
    if fs < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
    let size = std::ffi::CString::new(size.to_string()).map_err(|_| Errno::EINVAL)?;
    for (key, value) in [
        (c"size", size.as_c_str()),
        (c"nr_inodes", c"0"),
        (c"mode", c"0700"),
        (c"huge", c"never"),
    ] {
        // SAFETY: fsconfig reads two NUL-terminated strings.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        };
        if r < 0 {
            return Err(Errno::last());
        }
    }
    // SAFETY: fsconfig with integer arguments and null pointers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fsmount takes integer arguments.
    let m = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            MOUNT_ATTRS,
        )
    };
    if m < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(m as RawFd) })
}

/// Makes the spares later mounts draw from (see the module doc), while the sentry
/// may still mount (before it drops its capabilities). Without that privilege there
/// are none, and a tmpfs made once confined keeps memfds. Once only.
pub fn make_spares() {
    let Ok(mut spares) = SPARES.lock() else {
        return;
    };
    if SEALED.load(Ordering::Relaxed) || spares.run.is_some() {
        return;
    }
    match Pool::make(&spare_sizes(), SPARE_BASE) {
        Ok(pool) => *spares = pool,
        Err(e) => tracing::warn!(
            "host tmpfs: no spare instances ({e}): a tmpfs mounted once confined keeps memfds, a fault past its size= is not refused"
        ),
    }
}

/// Grows the descriptor table to hold the spares' run, so [`make_spares`] does not
/// grow it later: call while the process is single-threaded (a multi-threaded one
/// waits for an RCU grace period at each growth: 10-25 ms on a busy host, against
/// 60 µs for the spares' renumbering with the table already grown).
pub fn grow_fd_table() {
    let top = SPARE_BASE + spare_sizes().len() as RawFd;
    let Ok(fd) = nix::sys::memfd::memfd_create(
        c"rvisor-fd-table",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    ) else {
        return;
    };
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own; the new one is closed at once.
    let d = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, top) };
    if d >= 0 {
        // SAFETY: `d` was just returned to us and nothing else owns it.
        drop(unsafe { OwnedFd::from_raw_fd(d) });
    }
}

/// Marks the sentry confined: no instance is made from now on (its filter would
/// kill it for `fsopen`); a later tmpfs takes a spare ([`make_spares`]).
pub fn seal() {
    SEALED.store(true, Ordering::Relaxed);
}

/// Whether [`seal`] was called.
pub fn sealed() -> bool {
    SEALED.load(Ordering::Relaxed)
}

/// The root descriptors of every boot instance (for the seccomp filter).
pub fn dir_fds() -> Vec<RawFd> {
    DIRS.lock().map(|d| d.clone()).unwrap_or_default()
}

/// The spares' descriptors, `(first, last)`, all the numbers between included (for
/// the seccomp filter); `None` without spares.
pub fn spare_fds() -> Option<(RawFd, RawFd)> {
    let run = SPARES.lock().ok()?.run?;
    Some((run.0, run.0 + run.1 as RawFd - 1))
}

/// Makes a run of spares of `pages` from `base` on, outside the sandbox's pool (for
/// the seccomp filter's tests); their first and last descriptors.
#[cfg(test)]
pub(crate) fn test_spares(pages: &[u64], base: RawFd) -> Option<(RawFd, RawFd)> {
    let run = Pool::make(pages, base).ok()?.run?;
    Some((run.0, run.0 + run.1 as RawFd - 1))
}

/// Size and free pages of the instance at `root`, as the host counts them.
fn usage_of(root: BorrowedFd<'_>) -> SysResult<Usage> {
    // SAFETY: an all-zero statfs is a valid value for the kernel to overwrite.
    let mut sf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs writes one struct statfs into `sf`; the fd is live.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fstatfs,
            root.as_raw_fd(),
            &mut sf as *mut libc::statfs,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    let pages = |n: u64| n * sf.f_bsize as u64 / PAGE;
    Ok(Usage {
        blocks: pages(sf.f_blocks),
        free: pages(sf.f_bfree),
    })
}

impl HostTmpfs {
    /// The instance at `root` of `pages`, for a mount of `want` pages.
    fn new(root: RawFd, pages: u64, want: u64, spare: bool) -> HostTmpfs {
        HostTmpfs {
            root: borrow(root),
            pages,
            want,
            spare,
            filler: Mutex::new(None),
            filled: AtomicU64::new(0),
            filler_failed: AtomicBool::new(false),
        }
    }

    /// A new, empty, unnamed file in the instance, open read-write.
    pub fn create_file(&self) -> SysResult<OwnedFd> {
        // SAFETY: openat on a directory fd we hold, with a NUL-terminated path.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat,
                self.root.as_raw_fd(),
                c".".as_ptr(),
                TMPFILE_FLAGS,
                TMPFILE_MODE,
            )
        };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: the kernel just returned this descriptor; nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }

    /// The instance's size limit in pages: the limit the host holds faults to
    /// (a spare's may be larger than the mount's `size=`, until it is filled).
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The mount's size in pages, which [`HostTmpfs::exact`] and
    /// [`HostTmpfs::usage`] hold to.
    pub fn mount_pages(&self) -> u64 {
        self.want
    }

    /// Whether the host refuses every page past the mount's own size: the
    /// instance is of that size, or its extra pages are held by the filler.
    pub fn exact(&self) -> bool {
        self.pages == self.want || self.filled.load(Ordering::Acquire) > 0
    }

    /// Makes the host refuse every page past the mount's size, for faults through
    /// mappings too: a spare larger than the mount gets an unnamed *filler* file
    /// holding exactly its extra pages (allocated, so real memory of the sandbox's,
    /// at most [`FILLER_MAX_PAGES`]), so its files can hold the mount's size and
    /// not a page more, as on Linux. Called before the first mapping of one of the
    /// mount's files (until then the sentry charges every page itself, so the
    /// files hold at most the mount's size and the filler fits). `EFBIG` when the
    /// extra pages are more than a filler may hold (the host then refuses faults
    /// at the spare's size); the host's error when it cannot allocate them (not
    /// tried again: `ENOMEM` from then on).
    pub fn hold_faults(&self) -> SysResult<()> {
        if self.exact() {
            return Ok(());
        }
        let extra = self.pages - self.want;
        if extra > FILLER_MAX_PAGES {
            return Err(Errno::EFBIG);
        }
        let mut filler = self.filler.lock().map_err(|_| Errno::EIO)?;
        if filler.is_some() {
            return Ok(());
        }
        if self.filler_failed.load(Ordering::Relaxed) {
            return Err(Errno::ENOMEM);
        }
        let f = self.create_file()?;
        // Mode 0: every page allocated (the host counts them against the
        // instance), and undone by the host if they do not all fit.
        let r = if TESTONLY_FILLER_FAILS.load(Ordering::Relaxed) {
            Err(nix::errno::Errno::ENOMEM)
        } else {
            nix::fcntl::fallocate(
                f.as_raw_fd(),
                nix::fcntl::FallocateFlags::empty(),
                0,
                (extra * PAGE) as i64,
            )
            .map(drop)
        };
        if let Err(e) = r {
            self.filler_failed.store(true, Ordering::Relaxed);
            return Err(e.into());
        }
        *filler = Some(f);
        self.filled.store(extra, Ordering::Release);
        Ok(())
    }

    /// The mount's size and free pages, as the host counts them (every page its
    /// files hold, those written through mappings included; the filler's pages
    /// are not the files').
    pub fn usage(&self) -> SysResult<Usage> {
        let u = usage_of(self.root)?;
        let used = u
            .blocks
            .saturating_sub(u.free)
            .saturating_sub(self.filled.load(Ordering::Acquire));
        Ok(Usage {
            blocks: self.want,
            free: self.want.saturating_sub(used),
        })
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        // The filler's pages go back with its file, before the spare is offered
        // again (it is taken only once the host shows it empty).
        if let Ok(f) = self.filler.get_mut() {
            f.take();
        }
        if self.spare {
            if let Ok(mut s) = SPARES.lock() {
                s.put(self.root.as_raw_fd(), self.pages);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// Root can mount: the limit holds for write, fallocate and a write fault (the
    /// fault's SIGBUS is shown by the e2e test, which can catch it in a program).
    #[test]
    fn an_instance_enforces_its_size() {
        let Ok(t) = mount(64 << 10) else {
            eprintln!("no privilege to mount a tmpfs: skipped");
            return;
        };
        assert!(dir_fds().contains(&t.root.as_raw_fd()));
        assert_eq!(
            t.usage().unwrap(),
            Usage {
                blocks: 16,
                free: 16
            }
        );
        let f = t.create_file().unwrap();
        let buf = [7u8; 4096 * 20];
        let n = crate::sys::host::pwrite(f.as_fd(), &buf, 0).unwrap();
        assert_eq!(n, 16 * 4096, "short at the limit");
        assert_eq!(t.usage().unwrap().free, 0);
        assert_eq!(
            crate::sys::host::pwrite(f.as_fd(), &buf[..1], 20 * 4096),
            Err(Errno::ENOSPC)
        );
        drop(f);
        assert!(
            eventually(|| t.usage().unwrap().free == 16),
            "a closed file gives its pages back"
        );
    }

    /// Whether `done` holds within a few seconds: a child another test forks
    /// meanwhile holds copies of this process's descriptors, so a closed file's
    /// pages go back only when that child has exited.
    pub(crate) fn eventually(done: impl Fn() -> bool) -> bool {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !done() {
            if std::time::Instant::now() > until {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        true
    }

    /// Spares sit on consecutive descriptor numbers; the smallest that fits and is
    /// empty is taken; one given back is taken again only once the host shows it
    /// empty; the host holds a spare's files to its own size.
    #[test]
    fn spares_are_consecutive_graded_and_reused_empty() {
        let Ok(mut pool) = Pool::make(&[16, 4, 8], 300) else {
            eprintln!("no privilege to mount a tmpfs: skipped");
            return;
        };
        let (first, n) = pool.run.unwrap();
        assert_eq!(n, 3);
        assert!(first >= 300);
        let mut fds: Vec<RawFd> = pool.free.iter().map(|&(fd, _)| fd).collect();
        fds.sort();
        assert_eq!(fds, vec![first, first + 1, first + 2], "one run");
        assert_eq!(
            pool.free.iter().map(|&(_, p)| p).collect::<Vec<_>>(),
            vec![4, 8, 16],
            "smallest first"
        );
        let (fd, pages) = pool.take(5).unwrap();
        assert_eq!(pages, 8, "the smallest at least 5 pages");
        let t = HostTmpfs::new(fd, pages, pages, false);
        assert_eq!(t.usage().unwrap(), Usage { blocks: 8, free: 8 });
        let f = t.create_file().unwrap();
        let buf = [7u8; 4096 * 10];
        assert_eq!(
            crate::sys::host::pwrite(f.as_fd(), &buf, 0).unwrap(),
            8 * 4096,
            "short at the spare's size"
        );
        pool.put(fd, pages);
        assert_eq!(
            pool.take(5).map(|(_, p)| p),
            Some(16),
            "a spare still holding pages is not taken; one over twice the size is, when a filler may hold the rest"
        );
        drop(f);
        assert!(eventually(|| usage_of(borrow(fd)).unwrap().free == 8));
        assert_eq!(pool.take(5), Some((fd, 8)), "emptied, it is taken again");
        assert_eq!(pool.take(1).map(|(_, p)| p), Some(4));
        assert_eq!(pool.take(3), None, "none left");
    }

    /// A spare larger than its mount is held to the mount's size by a filler, for
    /// write and for faults alike (the fault's SIGBUS: c/mm_tmpfs_limit); statfs
    /// figures are the mount's; the filler goes with the mount. A spare larger by
    /// more than a filler may hold, or over twice the size, is not taken.
    #[test]
    fn a_filler_holds_a_spare_to_the_mount_s_size() {
        let big = 3 * FILLER_MAX_PAGES;
        let Ok(mut pool) = Pool::make(&[8, big], 320) else {
            eprintln!("no privilege to mount a tmpfs: skipped");
            return;
        };
        assert_eq!(pool.take(FILLER_MAX_PAGES), None, "over twice, and too far");
        let (fd, pages) = pool.take(5).unwrap();
        let t = HostTmpfs::new(fd, pages, 5, false);
        assert!(!t.exact());
        let f = t.create_file().unwrap();
        let buf = [7u8; 4096 * 10];
        assert_eq!(
            crate::sys::host::pwrite(f.as_fd(), &buf[..4096 * 2], 0),
            Ok(8192)
        );
        t.hold_faults().unwrap();
        assert!(t.exact());
        assert_eq!(t.usage().unwrap(), Usage { blocks: 5, free: 3 });
        assert_eq!(
            crate::sys::host::pwrite(f.as_fd(), &buf, 8192).unwrap(),
            3 * 4096,
            "short at the mount's size"
        );
        assert_eq!(t.usage().unwrap(), Usage { blocks: 5, free: 0 });
        t.hold_faults().unwrap();
        assert_eq!(usage_of(borrow(fd)).unwrap().free, 0, "one filler");
        drop(f);
        drop(t);
        assert!(
            eventually(|| usage_of(borrow(fd)).unwrap().free == 8),
            "the filler goes with the mount"
        );
        let (fd, pages) = pool.take(big - FILLER_MAX_PAGES - 1).unwrap();
        let t = HostTmpfs::new(fd, pages, big - FILLER_MAX_PAGES - 1, false);
        assert_eq!(t.hold_faults(), Err(Errno::EFBIG), "too many extra pages");
        assert!(!t.exact());
    }

    #[test]
    fn spare_sizes_are_graded_by_quarters() {
        let s = spare_sizes();
        assert_eq!(&s[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(*s.last().unwrap() >= spare_max_pages());
        assert_eq!(*sizes_up_to(u64::MAX).last().unwrap(), SPARE_MAX_PAGES);
        assert_eq!(*sizes_up_to(5 << 20).last().unwrap(), 5 << 20, "20 GiB");
        assert_eq!(*sizes_up_to((5 << 20) + 1).last().unwrap(), 6 << 20);
        for w in s.windows(2) {
            assert!(w[1] > w[0], "{w:?}");
            assert!(
                w[0] < 4 || w[1] * 4 <= w[0] * 5,
                "less than a quarter apart: {w:?}"
            );
        }
        assert!(s.contains(&256), "1 MiB");
        assert!(s.contains(&(64 << 8)), "64 MiB");
    }
}
