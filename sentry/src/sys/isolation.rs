//! The sandbox's host-side walls, set up by the sentry at boot: its own namespaces,
//! an empty root, the smallest capability set, and the unprivileged identity its stubs
//! run under.
//!
//! # The process tree
//! `rvisor boot` starts single-threaded, unshares new mount, network, IPC, UTS and pid
//! namespaces and forks. The child is the sentry proper: pid 1 of the sandbox's pid
//! namespace, so every pid it names (ptrace, `process_vm_*`, kill, pidfd_open) can
//! only be a process of this sandbox, and its death kills every process of the
//! namespace (a panic or a crash ends the sandbox at once). The parent stays behind
//! in the caller's pid namespace as the *waiter*: it closes every descriptor, drops
//! every capability, sets `no_new_privs` and a seccomp filter that leaves it nothing
//! but waiting and exiting, and exits with the sentry's status, so the runtime still
//! sees one `boot` child whose status is the sandbox's and which it can signal (the
//! waiter dies of SIGINT/SIGTERM, and the sentry with it through
//! `PR_SET_PDEATHSIG`). The waiter keeps the sentry's uid (host [`SENTRY_HOST_ID`] in
//! the sentry's user namespace, root without one): the kernel sends a parent-death
//! signal with the dying parent's right to signal, and a `nobody` waiter could not
//! kill the sentry (its filter keeps it from signalling anything itself).
//!
//! Why the sentry itself moves into the namespace instead of staying outside with a
//! small init inside: `unshare(CLONE_NEWPID)` only affects the caller's future
//! children, and a process whose children go to another pid namespace can no longer
//! create threads (`clone(CLONE_THREAD)` fails with EINVAL), which a multi-threaded
//! sentry needs; and a sentry outside would name stubs by host pids, which a stub's
//! death frees for any host process. The sentry is the namespace's init, so stubs
//! are not (an init cannot use `CLONE_PARENT`, which the systrap zygote uses).
//!
//! # Stubs
//! Every stub drops, in its start-up before it execs the stub image
//! ([`drop_privileges_raw`]), to uid and gid [`STUB_UID`]/[`STUB_GID`] with no
//! supplementary groups, empty permitted, effective, inheritable, ambient and
//! bounding sets, and `no_new_privs`. The sentry keeps only what owning such processes
//! needs ([`sentry_keeps`]).
//!
//! # Failing closed
//! Each step that fails stops the sandbox with a one-line error naming the step,
//! unless the runtime was given `--unsafe-weak-confinement`, which skips a failing
//! step with a warning naming it (for running nested in a container that lacks the
//! privileges).
//!
//! # The user namespace
//! Before any other namespace the sentry moves into a user namespace of its own, so
//! that every namespace made after it (mount, network, IPC, UTS, pid) is owned by it
//! and the capabilities the sentry keeps are capabilities over its own stubs only:
//! the kernel checks a capability against the user namespace that owns the object,
//! and nothing of the host is owned by the sentry's. Its maps are two lines each:
//! its root is host [`SENTRY_HOST_ID`] (an unprivileged id owning nothing), and
//! [`STUB_UID`] is itself (the stubs keep host `nobody`, another host uid than the
//! sentry's, so a stub can never signal or trace the sentry as its own user).
//! Multi-line maps need a writer with CAP_SETUID and CAP_SETGID in the parent user
//! namespace, so `boot` forks a short-lived helper before its `unshare` that writes
//! them once told, then exits (see [`Confinement::enter_namespaces`]). The sentry
//! then takes those ids with no supplementary group: host files see an
//! unprivileged stranger. The waiter follows into the user namespace (it forks
//! after), as the same host id as the sentry, so its death can still signal it.
//! The namespace's owner is the caller's uid (root), which keeps every right over
//! it, as the runtime needs (cgroups, signals, `/proc`).
//!
//! Where the kernel refuses a user namespace (`user.max_user_namespaces` is 0,
//! nested in a container without one, or the ids are not mapped in the caller's
//! namespace), the step fails closed like the others; in weak mode the sentry goes
//! on in the caller's user namespace as root with the capability set below.
//!
//! The gofer stays in the host's user namespace: it serves files of every owner
//! with five file capabilities, which only mean something over every host uid, so a
//! user namespace of its own would have to map the whole range and would keep the
//! same rights over host files (docs/security.md).

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::errno::Errno;

/// Host uid of the stubs: `nobody`, which owns no file. Mapped to itself in the
/// sentry's user namespace.
pub const STUB_UID: u32 = 65534;
/// Host gid of the stubs: `nogroup`. Mapped to itself in the sentry's user namespace.
pub const STUB_GID: u32 = 65534;
/// Host uid and gid of the sentry (and the waiter) in their own user namespace, where
/// it is root: unprivileged on the host, owning nothing, and not the stubs' id.
pub const SENTRY_HOST_ID: u32 = 65533;

/// The sentry is in a user namespace of its own (set once at boot).
static OWN_USERNS: AtomicBool = AtomicBool::new(false);

/// Whether host ids the sentry sees are the host's own: false once it is in its own
/// user namespace, where every host id but [`SENTRY_HOST_ID`] and [`STUB_UID`] reads
/// as the overflow id (65534), so a host `fstat` no longer tells a file's owner.
pub fn host_ids_visible() -> bool {
    !OWN_USERNS.load(Ordering::Relaxed)
}

/// The sentry's `uid_map` and `gid_map` (the same ids for both): its root is
/// [`SENTRY_HOST_ID`], the stubs' id is itself.
pub fn id_map() -> String {
    format!("0 {SENTRY_HOST_ID} 1\n{STUB_UID} {STUB_UID} 1\n")
}

/// `CAP_KILL`: signal stubs, which run as another uid.
pub const CAP_KILL: u32 = 5;
/// `CAP_SETGID`: a new ptrace stub drops its groups before its exec.
pub const CAP_SETGID: u32 = 6;
/// `CAP_SETUID`: a new ptrace stub drops its uid before its exec.
pub const CAP_SETUID: u32 = 7;
/// `CAP_SETPCAP`: a new ptrace stub empties its bounding set before its exec.
pub const CAP_SETPCAP: u32 = 8;
/// `CAP_SYS_PTRACE`: ptrace and `process_vm_readv`/`writev` on stubs of another uid.
pub const CAP_SYS_PTRACE: u32 = 19;
/// `CAP_SYS_NICE`: pin stub threads of another uid (`sched_setaffinity`).
pub const CAP_SYS_NICE: u32 = 23;

/// The capabilities the sentry keeps once confined. `stub_forks`: stubs are forked
/// from the sentry after that point (ptrace), so each must still be able to drop its
/// ids and bounding set; systrap stubs come from a zygote forked before, which drops
/// everything itself.
pub fn sentry_keeps(stub_forks: bool) -> u64 {
    let mut caps = [CAP_KILL, CAP_SYS_PTRACE, CAP_SYS_NICE].to_vec();
    if stub_forks {
        caps.extend([CAP_SETUID, CAP_SETGID, CAP_SETPCAP]);
    }
    caps.iter().fold(0u64, |m, c| m | 1 << c)
}

/// Whether new stubs drop to [`STUB_UID`] (set once at boot; off only in weak mode when
/// the sentry cannot).
static STUB_DROP: AtomicBool = AtomicBool::new(false);

/// The identity new stubs take before their exec: `Some((uid, gid))` once the sentry
/// set it up ([`Confinement::prepare_stub_identity`]), `None` otherwise (tests,
/// weak mode without the privileges).
pub fn stub_identity() -> Option<(u32, u32)> {
    STUB_DROP
        .load(Ordering::Relaxed)
        .then_some((STUB_UID, STUB_GID))
}

/// `_LINUX_CAPABILITY_VERSION_3`.
const CAP_V3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The calling thread's (effective, permitted) capability sets.
pub fn current_caps() -> Result<(u64, u64), Errno> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two CapData records (version 3) into `data`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    let join = |lo: u32, hi: u32| lo as u64 | (hi as u64) << 32;
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
    ))
}

/// Sets the calling thread's permitted and effective sets to `caps` and empties its
/// inheritable set (lowering only: the kernel refuses anything not already held).
fn set_caps(caps: u64) -> Result<(), Errno> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let d = |v: u32| CapData {
        effective: v,
        permitted: v,
        inheritable: 0,
    };
    let data = [d(caps as u32), d((caps >> 32) as u32)];
    // SAFETY: capset reads the header and two CapData records.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Removes every capability not in `keep` from the calling thread's bounding set
/// (needs CAP_SETPCAP). Stops at the first number the kernel does not know.
fn drop_bounding(keep: u64) -> Result<(), Errno> {
    for cap in 0..64u32 {
        if keep & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if r < 0 {
            let e = Errno::last();
            if e == Errno::EINVAL {
                break;
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Sets `no_new_privs`: nothing this process or its children exec can gain a
/// privilege (set-id bits and file capabilities are ignored).
pub fn no_new_privs() -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Drops the calling process to `uid`/`gid` with no supplementary groups, empty
/// capability sets (bounding included) and `no_new_privs`. Only raw system calls and
/// no allocation, so a freshly forked child of a multi-threaded process may call it.
/// Returns the failing step's number (1-6) and errno.
///
/// Run it before `PR_SET_PDEATHSIG`: a credential change clears the parent-death
/// signal.
///
/// # Safety
/// Changes the credentials of the calling thread only; call it in a single-threaded
/// process (a forked child), or the process's threads disagree.
pub unsafe fn drop_privileges_raw(uid: u32, gid: u32) -> Result<(), (i32, i32)> {
    // SAFETY: as for this function.
    unsafe { drop_raw(Some((uid, gid))) }
}

/// [`drop_privileges_raw`], keeping the uid and gid when `ids` is `None`.
///
/// # Safety
/// As [`drop_privileges_raw`].
unsafe fn drop_raw(ids: Option<(u32, u32)>) -> Result<(), (i32, i32)> {
    // SAFETY: raw system calls with integer arguments or pointers to this frame.
    unsafe {
        let errno = || *libc::__errno_location();
        if let Some((_, gid)) = ids {
            if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) < 0 {
                return Err((1, errno()));
            }
            if libc::syscall(libc::SYS_setresgid, gid, gid, gid) < 0 {
                return Err((2, errno()));
            }
        }
        drop_bounding(0).map_err(|e| (3, e.0))?;
        // All ids non-zero: the kernel clears the permitted, effective and ambient sets.
        if let Some((uid, _)) = ids {
            if libc::syscall(libc::SYS_setresuid, uid, uid, uid) < 0 {
                return Err((4, errno()));
            }
        }
        // The inheritable set survives a uid change; empty it too (and, with the uid
        // kept, the permitted and effective sets; the ambient set follows them).
        set_caps(0).map_err(|e| (5, e.0))?;
        no_new_privs().map_err(|e| (6, e.0))?;
    }
    Ok(())
}

/// Ends the process at once with `code`: no exit handlers, no destructors, no
/// waiting for another thread (for the panic hook).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an integer and does not return.
    unsafe { libc::_exit(code) }
}

/// How strictly the sandbox is confined, and what was set up so far.
pub struct Confinement {
    /// `--unsafe-weak-confinement`: skip failing steps with a warning.
    weak: bool,
    /// The sentry has a mount namespace of its own (so it may pivot).
    own_mounts: bool,
    /// `--network=host`: the sentry stays in the network namespace it was started
    /// in, where it makes the program's host sockets.
    host_network: bool,
}

impl Confinement {
    /// Strict unless `weak`.
    pub fn new(weak: bool) -> Confinement {
        Confinement {
            weak,
            own_mounts: false,
            host_network: false,
        }
    }

    /// `--network=host`: keep the network namespace the sentry was started in
    /// (no new one is made; see docs/networking.md).
    pub fn keep_host_network(&mut self) {
        self.host_network = true;
    }

    /// Whether the step `what`, which ended in `r`, lets the sandbox go on: `Ok(true)`
    /// done, `Ok(false)` skipped (weak mode, warned), `Err` the one-line refusal.
    fn step(&self, what: &str, r: Result<(), Errno>) -> Result<bool, String> {
        match r {
            Ok(()) => Ok(true),
            Err(e) if self.weak => {
                tracing::warn!(
                    "--unsafe-weak-confinement: skipped sandbox confinement step {what}: {}",
                    e.description()
                );
                Ok(false)
            }
            Err(e) => Err(format!(
                "sandbox confinement: {what}: {} (run as root, or pass --unsafe-weak-confinement to run without it)",
                e.description()
            )),
        }
    }

    /// Moves the sentry into a new user namespace (host [`SENTRY_HOST_ID`], see the
    /// module doc), then new mount, network, IPC, UTS and pid namespaces, which it
    /// owns. The calling process must be single-threaded: it forks, the child returns
    /// from here as the sentry (pid 1 of the new pid namespace) and the parent becomes
    /// the waiter and never returns (see the module doc). Nothing the sentry opened so far
    /// is lost: the mount namespace is a copy until [`Confinement::isolate_filesystem`]
    /// empties it.
    pub fn enter_namespaces(&mut self) -> Result<(), String> {
        let threads = thread_count();
        if threads != Some(1) {
            return Err(format!(
                "sandbox confinement: the sentry must enter its namespaces single-threaded (threads: {threads:?})"
            ));
        }
        // Processes forked before the pivot (the systrap zygote) follow it only if their
        // root and cwd are the old root itself.
        // SAFETY: a NUL-terminated path.
        if unsafe { libc::chdir(c"/".as_ptr()) } < 0 {
            return Err(format!("sandbox confinement: chdir /: {}", Errno::last()));
        }
        // First: every namespace made after this one is owned by it.
        match enter_user_namespace() {
            Ok(()) => OWN_USERNS.store(true, Ordering::Relaxed),
            Err(UserNsError::Refused(what, e)) => {
                self.step(what, Err(e))?;
            }
            Err(UserNsError::Broken(m)) => return Err(format!("sandbox confinement: {m}")),
        }
        self.own_mounts = self.step("unshare(CLONE_NEWNS)", unshare(libc::CLONE_NEWNS))?;
        if self.own_mounts {
            // Nothing done in here may propagate back to the host's mounts.
            let r = mount(c"none", c"/", None, libc::MS_REC | libc::MS_PRIVATE, None);
            self.own_mounts = self.step("make the sentry's mounts private", r)?;
        }
        if self.own_mounts {
            // The host tmpfs instances are mounted in this namespace until the old root
            // is detached (see host_tmpfs): a directory the sentry does not use
            // meanwhile (not /proc, /dev, /tmp) and not the one its new root goes on.
            let base = root_base();
            if let Some(dir) = [c"/mnt", c"/run"]
                .into_iter()
                .find(|d| Some(*d) != base && open_dir(d, libc::O_PATH).is_ok())
            {
                crate::sys::host_tmpfs::stage_in(dir);
            }
        }
        if !self.host_network {
            self.step("unshare(CLONE_NEWNET)", unshare(libc::CLONE_NEWNET))?;
        }
        self.step("unshare(CLONE_NEWIPC)", unshare(libc::CLONE_NEWIPC))?;
        self.step("unshare(CLONE_NEWUTS)", unshare(libc::CLONE_NEWUTS))?;
        if self.step("unshare(CLONE_NEWPID)", unshare(libc::CLONE_NEWPID))? {
            fork_into_pid_namespace()?;
        }
        Ok(())
    }

    /// Decides the identity of the stubs: [`STUB_UID`], no capabilities. Needs
    /// CAP_SETUID, CAP_SETGID and CAP_SETPCAP now (the zygote) and, on ptrace, after
    /// [`Confinement::drop_sentry_privileges`] too.
    pub fn prepare_stub_identity(&self) -> Result<(), String> {
        let need = 1u64 << CAP_SETUID | 1 << CAP_SETGID | 1 << CAP_SETPCAP;
        let r = match current_caps() {
            Ok((eff, _)) if eff & need == need => Ok(()),
            Ok(_) => Err(Errno::EPERM),
            Err(e) => Err(e),
        };
        let ok = self.step(
            "run stubs as an unprivileged host user (needs CAP_SETUID, CAP_SETGID, CAP_SETPCAP)",
            r,
        )?;
        STUB_DROP.store(ok, Ordering::Relaxed);
        Ok(())
    }

    /// Takes the sentry off the host's filesystem: its root becomes an empty
    /// read-only tmpfs (the old root detached), so no path it opens reaches a host
    /// file: no host `/proc` either (app memory goes through
    /// `process_vm_readv`/`writev` by pid). The stubs share the namespace: those
    /// already forked (the zygote) have their root and cwd moved with the pivot.
    /// Call it once the sentry holds every host fd it needs (gofer socket, stdio, log
    /// file, stub image, memory file), before the app runs.
    pub fn isolate_filesystem(&self) -> Result<(), String> {
        if !self.own_mounts {
            // Already warned about in weak mode.
            return Ok(());
        }
        let fail = |what: &str| format!("sandbox confinement: {what}: {}", Errno::last());
        let base =
            root_base().ok_or("sandbox confinement: no directory to mount the sentry's root on")?;
        if mount(
            c"rvisor-sentry",
            base,
            Some(c"tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some(c"size=16k,nr_inodes=8,mode=0555"),
        )
        .is_err()
        {
            return Err(fail("mount the sentry's root tmpfs"));
        }
        let newroot = open_dir(base, 0).map_err(|_| fail("open the new root"))?;
        // SAFETY: fchdir to a directory fd we own.
        if unsafe { libc::fchdir(newroot.as_raw_fd()) } < 0 {
            return Err(fail("chdir to the new root"));
        }
        // pivot_root(".", ".") stacks the old root on top of the new one; detaching it
        // leaves the new root alone, without needing a directory to park the old one in.
        // SAFETY: two NUL-terminated paths.
        if unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) } < 0 {
            return Err(fail("pivot_root"));
        }
        // SAFETY: a NUL-terminated path and an integer flag.
        if unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) } < 0 {
            return Err(fail("detach the old root"));
        }
        // The host tmpfs instances' staging tree went with it.
        crate::sys::host_tmpfs::unstage();
        // SAFETY: a NUL-terminated path.
        if unsafe { libc::chdir(c"/".as_ptr()) } < 0 {
            return Err(fail("chdir /"));
        }
        let flags = libc::MS_REMOUNT
            | libc::MS_BIND
            | libc::MS_RDONLY
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | libc::MS_NOEXEC;
        if mount(c"none", c"/", None, flags, None).is_err() {
            return Err(fail("make the sentry's root read-only"));
        }
        tracing::info!("sentry moved to an empty root");
        Ok(())
    }

    /// Drops every capability but [`sentry_keeps`] from the sentry's permitted,
    /// effective and bounding sets, empties its inheritable and ambient sets and sets
    /// `no_new_privs`. Call it after the platform has started (the systrap zygote is
    /// forked with everything and drops it itself) and before the seccomp filter.
    pub fn drop_sentry_privileges(&self, stub_forks: bool) -> Result<(), String> {
        let keep = sentry_keeps(stub_forks);
        let r = current_caps().and_then(|(_, permitted)| {
            drop_bounding(keep)?;
            set_caps(keep & permitted)?;
            // SAFETY: prctl with integer arguments.
            let r = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                    0,
                    0,
                    0,
                )
            };
            if r < 0 {
                return Err(Errno::last());
            }
            Ok(())
        });
        self.step("drop the sentry's capabilities", r)?;
        self.step("set no_new_privs on the sentry", no_new_privs())?;
        tracing::info!(
            caps = format_args!("{keep:#x}"),
            "sentry capabilities dropped"
        );
        Ok(())
    }
}

/// Why the sentry is not in a user namespace of its own.
enum UserNsError {
    /// The step named was refused and nothing changed: weak mode may go on without.
    Refused(&'static str, Errno),
    /// Failed half-way (the process may be in a namespace without its ids): no way on.
    Broken(String),
}

/// Whether every id of `ids` is mapped in the calling process's user namespace
/// (`map`: the text of its `uid_map` or `gid_map`).
fn ids_mapped(map: &str, ids: &[u32]) -> bool {
    let ranges: Vec<(u64, u64)> = map
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace().map(|v| v.parse::<u64>().ok());
            Some((w.next()??, w.nth(1)??))
        })
        .collect();
    ids.iter().all(|&id| {
        let id = id as u64;
        ranges
            .iter()
            .any(|&(first, n)| id >= first && id < first + n)
    })
}

/// Moves the calling (single-threaded) process into a new user namespace where it is
/// root as host [`SENTRY_HOST_ID`], with [`STUB_UID`]/[`STUB_GID`] mapped to
/// themselves, no supplementary group, and every capability of the namespace.
///
/// The maps have two lines, which only a writer with CAP_SETUID and CAP_SETGID in
/// the parent namespace may write, and a process cannot write its own once it left
/// that namespace: a helper forked before the `unshare` writes them when told on a
/// pipe, answers on another, and exits.
fn enter_user_namespace() -> Result<(), UserNsError> {
    const MAP_STEP: &str = "map the sentry's user namespace ids (needs CAP_SETUID, CAP_SETGID and host ids 65533, 65534)";
    let need = 1u64 << CAP_SETUID | 1 << CAP_SETGID;
    match current_caps() {
        Ok((eff, _)) if eff & need == need => {}
        Ok(_) => return Err(UserNsError::Refused(MAP_STEP, Errno::EPERM)),
        Err(e) => return Err(UserNsError::Refused(MAP_STEP, e)),
    }
    let ids = [SENTRY_HOST_ID, STUB_UID];
    for file in ["/proc/self/uid_map", "/proc/self/gid_map"] {
        let map = std::fs::read_to_string(file).unwrap_or_default();
        if !ids_mapped(&map, &ids) {
            return Err(UserNsError::Refused(MAP_STEP, Errno::EINVAL));
        }
    }
    let broken = |what: &str, e: Errno| UserNsError::Broken(format!("{what}: {}", e.description()));
    let (go_r, go_w) = pipe().map_err(|e| broken("pipe2", e))?;
    let (res_r, res_w) = pipe().map_err(|e| broken("pipe2", e))?;
    let map = id_map();
    // SAFETY: getpid cannot fail.
    let me = unsafe { libc::getpid() };
    let paths = [format!("/proc/{me}/uid_map"), format!("/proc/{me}/gid_map")];
    // SAFETY: the process is single-threaded (checked by the caller), so the child may
    // run ordinary code.
    let helper = unsafe { libc::fork() };
    if helper < 0 {
        return Err(broken("fork the id map writer", Errno::last()));
    }
    if helper == 0 {
        drop((go_w, res_r));
        let mut b = [0u8; 1];
        // Nothing to do unless told (EOF: the unshare failed, or boot died).
        let code = if read_exact(&go_r, &mut b).is_ok() {
            let mut answer = 0i32;
            for (i, path) in paths.iter().enumerate() {
                if let Err(e) = std::fs::write(path, &map) {
                    answer = (i as i32 + 1) << 16 | e.raw_os_error().unwrap_or(libc::EIO);
                    break;
                }
            }
            write_all(&res_w, &answer.to_ne_bytes()).map_or(1, |()| 0)
        } else {
            0
        };
        exit_now(code);
    }
    drop((go_r, res_w));
    let reap = || {
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(helper, &mut status, 0) };
    };
    // SAFETY: getppid cannot fail.
    let parent = unsafe { libc::getppid() };
    if let Err(e) = unshare(libc::CLONE_NEWUSER) {
        drop(go_w);
        reap();
        return Err(UserNsError::Refused("unshare(CLONE_NEWUSER)", e));
    }
    let mut answer = [0u8; 4];
    let told = write_all(&go_w, &[1]).and_then(|()| read_exact(&res_r, &mut answer));
    drop(go_w);
    reap();
    told.map_err(|e| broken("the id map writer", e))?;
    let answer = i32::from_ne_bytes(answer);
    if answer != 0 {
        let what = if answer >> 16 == 1 {
            "write the sentry's uid_map"
        } else {
            "write the sentry's gid_map"
        };
        return Err(broken(what, Errno(answer & 0xffff)));
    }
    // SAFETY: raw system calls with integer arguments or a null list.
    unsafe {
        if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) < 0 {
            return Err(broken(
                "drop the sentry's supplementary groups",
                Errno::last(),
            ));
        }
        if libc::syscall(libc::SYS_setresgid, 0, 0, 0) < 0 {
            return Err(broken(
                "setresgid in the sentry's user namespace",
                Errno::last(),
            ));
        }
        if libc::syscall(libc::SYS_setresuid, 0, 0, 0) < 0 {
            return Err(broken(
                "setresuid in the sentry's user namespace",
                Errno::last(),
            ));
        }
    }
    // Changing credentials (the unshare, the setres*id) cleared the parent-death signal
    // the CLI's child set: arm it again, then make sure the CLI did not die meanwhile,
    // or a killed CLI would leave this boot (and its sentry) running.
    // SAFETY: prctl and getppid with integer arguments.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) < 0 {
            return Err(broken("prctl(PR_SET_PDEATHSIG) again", Errno::last()));
        }
        if libc::getppid() != parent {
            return Err(broken("the runtime exited during start-up", Errno::ESRCH));
        }
    }
    tracing::info!(host_id = SENTRY_HOST_ID, "sentry in its own user namespace");
    Ok(())
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    let mut p = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `p`.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned these descriptors; nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) })
}

/// Reads exactly `buf.len()` bytes from a pipe (`EPIPE` at end of file).
fn read_exact(fd: &OwnedFd, buf: &mut [u8]) -> Result<(), Errno> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: reads into the rest of `buf`.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                buf[done..].as_mut_ptr().cast(),
                buf.len() - done,
            )
        };
        match n {
            0 => return Err(Errno::EPIPE),
            n if n < 0 && Errno::last() == Errno::EINTR => {}
            n if n < 0 => return Err(Errno::last()),
            n => done += n as usize,
        }
    }
    Ok(())
}

/// Writes all of `buf` to a pipe.
fn write_all(fd: &OwnedFd, buf: &[u8]) -> Result<(), Errno> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writes from the rest of `buf`.
        let n = unsafe {
            libc::write(
                fd.as_raw_fd(),
                buf[done..].as_ptr().cast(),
                buf.len() - done,
            )
        };
        match n {
            n if n < 0 && Errno::last() == Errno::EINTR => {}
            n if n < 0 => return Err(Errno::last()),
            n => done += n as usize,
        }
    }
    Ok(())
}

fn unshare(flags: libc::c_int) -> Result<(), Errno> {
    // SAFETY: unshare takes an integer flag set.
    if unsafe { libc::unshare(flags) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

fn mount(
    src: &std::ffi::CStr,
    target: &std::ffi::CStr,
    fstype: Option<&std::ffi::CStr>,
    flags: libc::c_ulong,
    data: Option<&std::ffi::CStr>,
) -> Result<(), Errno> {
    // SAFETY: every pointer is a NUL-terminated string or null, as mount(2) takes.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.map_or(std::ptr::null(), |f| f.as_ptr()),
            flags,
            data.map_or(std::ptr::null(), |d| d.as_ptr().cast()),
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// The directory the sentry's new root goes over: an existing one; which one does not
/// matter, since the namespace is ours and the old tree is detached right after.
fn root_base() -> Option<&'static std::ffi::CStr> {
    [c"/tmp", c"/mnt", c"/run", c"/dev", c"/proc"]
        .into_iter()
        .find(|d| open_dir(d, libc::O_PATH).is_ok())
}

fn open_dir(path: &std::ffi::CStr, extra: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: `path` is NUL-terminated; the flags are integers.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_DIRECTORY | libc::O_CLOEXEC | extra) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The number of threads of this process (from the host's procfs, still reachable
/// before the pivot).
fn thread_count() -> Option<usize> {
    let mut s = String::new();
    std::fs::File::open("/proc/self/status")
        .ok()?
        .read_to_string(&mut s)
        .ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Forks after `unshare(CLONE_NEWPID)`: the child returns (pid 1 of the new
/// namespace), the parent waits for it as the waiter and never returns.
fn fork_into_pid_namespace() -> Result<(), String> {
    let mut pipe = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `pipe`.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(format!("sandbox confinement: pipe2: {}", Errno::last()));
    }
    let [alive_r, alive_w] = pipe;
    // Built before the fork: the waiter only installs it.
    let filter = waiter_filter()?;
    // SAFETY: getppid cannot fail.
    let ppid = unsafe { libc::getppid() };
    // SAFETY: the process is single-threaded (checked by the caller), so the child may
    // go on running ordinary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!(
            "sandbox confinement: fork into the pid namespace: {}",
            Errno::last()
        ));
    }
    if pid > 0 {
        // SAFETY: we are the parent, right after the fork.
        unsafe { waiter(pid, ppid, alive_r, alive_w, &filter) }
    }
    // The sentry: die with the waiter, and make sure it has not died already (its
    // write end of the pipe stays open as long as it lives).
    // SAFETY: prctl, close and poll on integers and a local pollfd.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) < 0 {
            return Err(format!(
                "sandbox confinement: prctl(PR_SET_PDEATHSIG): {}",
                Errno::last()
            ));
        }
        libc::close(alive_w);
        let mut p = libc::pollfd {
            fd: alive_r,
            events: libc::POLLIN,
            revents: 0,
        };
        let r = libc::poll(&mut p, 1, 0);
        libc::close(alive_r);
        if r > 0 && p.revents & libc::POLLHUP != 0 {
            libc::_exit(1);
        }
    }
    Ok(())
}

/// The waiter's seccomp filter: waiting for the sentry and exiting, nothing else.
fn waiter_filter() -> Result<seccompiler::BpfProgram, String> {
    let rules = [
        libc::SYS_wait4,
        libc::SYS_exit_group,
        libc::SYS_exit,
        libc::SYS_rt_sigreturn,
        libc::SYS_restart_syscall,
    ]
    .into_iter()
    .map(|nr| (nr, vec![]))
    .collect();
    super::confine::kill_by_default(rules)
        .map_err(|e| format!("sandbox confinement: waiter filter: {e}"))
}

/// The waiter: holds nothing, can do nothing but wait, exits with the sentry's status
/// (the code, or 128 + the signal that killed it).
///
/// # Safety
/// Only in the parent right after [`fork_into_pid_namespace`]'s fork (single-threaded).
unsafe fn waiter(
    sentry: libc::pid_t,
    ppid: libc::pid_t,
    alive_r: i32,
    alive_w: i32,
    filter: &seccompiler::BpfProgram,
) -> ! {
    // SAFETY: raw system calls on integers and on this frame's memory.
    unsafe {
        libc::close(alive_r);
        // Nothing of the sandbox stays open here: the gofer must see the sentry's hang-up
        // when the sentry exits. Only the pipe that tells the sentry we live remains.
        libc::syscall(libc::SYS_close_range, 3, alive_w - 1, 0);
        libc::syscall(libc::SYS_close_range, alive_w + 1, u32::MAX, 0);
        let _ = drop_raw(None);
        // Dropping capabilities leaves the parent-death signal alone, but the parent may
        // have died before it was set at start-up.
        if libc::getppid() != ppid {
            libc::kill(sentry, libc::SIGKILL);
            libc::_exit(125);
        }
        if seccompiler::apply_filter(filter).is_err() {
            libc::kill(sentry, libc::SIGKILL);
            libc::_exit(125);
        }
        loop {
            let mut status = 0;
            let r = libc::waitpid(sentry, &mut status, libc::__WALL);
            if r == sentry {
                if libc::WIFEXITED(status) {
                    libc::_exit(libc::WEXITSTATUS(status));
                }
                if libc::WIFSIGNALED(status) {
                    libc::_exit(128 + libc::WTERMSIG(status));
                }
            } else if r < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(125);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentry_keeps_only_what_owning_stubs_needs() {
        assert_eq!(
            sentry_keeps(false),
            1 << CAP_KILL | 1 << CAP_SYS_PTRACE | 1 << CAP_SYS_NICE
        );
        let ptrace = sentry_keeps(true);
        assert_eq!(ptrace & !sentry_keeps(false), 0x1c0);
        // Never anything that reaches the host's files, mounts or devices.
        for cap in [0, 1, 2, 3, 4, 21, 16, 17, 12, 13] {
            assert_eq!(ptrace & 1 << cap, 0, "cap {cap}");
        }
    }

    #[test]
    fn the_maps_give_the_sentry_and_the_stubs_two_unprivileged_host_ids() {
        let map = id_map();
        let lines: Vec<Vec<u32>> = map
            .lines()
            .map(|l| l.split(' ').map(|w| w.parse().unwrap()).collect())
            .collect();
        // Inside, root and nobody; outside, neither host root nor one id for both.
        assert_eq!(
            lines,
            [vec![0, SENTRY_HOST_ID, 1], vec![STUB_UID, STUB_UID, 1]]
        );
        assert_ne!(SENTRY_HOST_ID, 0);
        assert_ne!(SENTRY_HOST_ID, STUB_UID);
        assert_eq!(STUB_UID, STUB_GID);
    }

    #[test]
    fn ids_mapped_reads_a_map_as_the_kernel_prints_it() {
        let host = "         0          0 4294967295\n";
        assert!(ids_mapped(host, &[0, SENTRY_HOST_ID, STUB_UID]));
        // A container's namespace with 65536 ids: both fit; with only root: neither.
        let nested = "         0     100000      65536\n";
        assert!(ids_mapped(nested, &[SENTRY_HOST_ID, STUB_UID]));
        assert!(!ids_mapped("0 1000 1\n", &[SENTRY_HOST_ID]));
        assert!(!ids_mapped("0 0 65534\n", &[STUB_UID]));
        assert!(!ids_mapped("", &[0]));
    }

    #[test]
    fn a_dropped_child_has_no_capabilities_and_no_root() {
        // SAFETY: the child makes raw system calls only, then _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: a forked child of the test process.
            let code = match unsafe { drop_privileges_raw(STUB_UID, STUB_GID) } {
                Ok(()) => {
                    let caps = current_caps();
                    // SAFETY: plain getters.
                    let ids = unsafe {
                        (
                            libc::getuid(),
                            libc::getgid(),
                            libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0),
                        )
                    };
                    // SAFETY: prctl with integer arguments.
                    let bounded = unsafe { libc::prctl(libc::PR_CAPBSET_READ, 0, 0, 0, 0) };
                    if caps == Ok((0, 0)) && ids == (STUB_UID, STUB_GID, 1) && bounded == 0 {
                        0
                    } else {
                        2
                    }
                }
                Err((step, _)) => 10 + step,
            };
            // SAFETY: ends the child.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }
}
