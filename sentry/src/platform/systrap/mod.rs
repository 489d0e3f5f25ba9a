//! The systrap platform: application system calls trap with seccomp
//! (`SECCOMP_RET_TRAP`) into a signal handler inside the stub, which hands them to
//! the sentry through memory shared by both processes. No ptrace anywhere.
//!
//! # How it works
//! - A *zygote* process is started from the generated stub ELF (`stub`) when the
//!   platform is created, before the sentry installs its own seccomp filter (a filter
//!   is inherited and its KILL would win over the stub's TRAP). Each new address
//!   space is a fork of the zygote: the sentry sends it a fresh *command memfd* and a
//!   control socket; the child's first thread becomes its *syscall thread*: it maps
//!   the command memfd's first page read-only and its second writable, blocks every
//!   signal, installs one handler for every signal and the base seccomp filter, and
//!   reports in with its pid (see `syscaller`).
//! - The syscall thread never runs application code. It makes every edit of the
//!   address space: each command (mmap, munmap, mprotect, mremap, recvmsg of fds,
//!   close, clone; up to four of them in one batch, such as an fd's transfer, use
//!   and close) is written by the sentry into the read-only command page, and its
//!   result comes back as the file offset of the command memfd, which only that
//!   thread's fd table holds. Received fds take the numbers the sentry predicts.
//! - Application threads are cloned by the syscall thread, each with its own shared
//!   *region* at slot `i` (`REGION + i * REGION_SIZE`; the handler finds its region
//!   from its stack pointer): before its first application instruction a new thread
//!   closes its copy of the fd table, makes the region's tail its alternate signal
//!   stack and installs the application filter, which kills the stub for any call
//!   from the code page but the handler's own (see docs/security-systrap.md). Every
//!   signal (a trapped system call's SIGSYS, a fault, the interrupt signal) runs the
//!   handler on that alternate stack, so the kernel's frame (registers, FP state,
//!   siginfo) lies in the region, which the sentry maps too. The handler publishes the
//!   frame pointers, sets the state word to PARKED and waits; the sentry reads and
//!   edits the frame in place and sets RESUME (the handler returns through
//!   `rt_sigreturn`, loading the edited registers) or REQUEST (the thread's own
//!   `arch_prctl` or `exit`). A thread's exit clears its slot's tid word; the slot is
//!   then free: the next thread's region replaces its region, or the next edit of
//!   the space unmaps it in the same command.
//! - Each side of a region spins on the state word for a bounded time, then sleeps on
//!   it with a shared futex (the word is in a MAP_SHARED memfd page, so both processes'
//!   futex keys agree); whoever flips the word wakes the other only if it sleeps. When a
//!   task's system call is about to wait for an event (a pipe read, a futex), the
//!   sentry sets the region's no-spin word and the parked handler sleeps at once
//!   instead of spinning on a CPU the event's producer needs (pipe ping-pong between
//!   two processes: 0.54x the time, futex ping-pong between threads: 0.66x, paired
//!   runs on 2 CPUs; getpid unchanged).
//! - Fork: one command: the syscall thread receives the child's command memfd,
//!   socket and first region, then forks with `CLONE_PARENT|SIGCHLD` (the child is a
//!   sibling: a child of the zygote) and closes its copies. The child, a copy of the
//!   syscall thread alone, sets PR_SET_PDEATHSIG (it dies with the zygote, like every
//!   stub), maps its own command pages, takes its own fds, unmaps the parent's
//!   regions, maps its first region, clones its first application thread there and
//!   reports in with both ids. Private memory is copy-on-write, shared file mappings
//!   stay shared. The fork returns as soon as the syscall thread's `clone` has: the
//!   child sets itself up while the parent's task goes on, and its report (checked
//!   against the kernel's ids) is taken on the child's own host thread when its
//!   first context is adopted, or before any earlier use of the child's syscall
//!   thread or threads (`SystrapSpace::settle`). The child reads its fd numbers from
//!   the parent's command page right after the fork, so a later fork that would
//!   write other numbers there waits for that report first.
//! - New threads likewise: the `clone` command returns the thread's id and the
//!   creating task goes on; the thread's start-up report is awaited (and its region
//!   nonce checked) by the host thread that adopts its context. A starting thread
//!   reads its alternate stack from the command page, so the next new thread of the
//!   space waits for every thread still starting before it writes its own there.
//! - Exec: from the platform's second address space on, a *spare* stub is made ahead
//!   (its syscall thread and first application thread up, parked at the start-up
//!   report) by a short-lived thread, and the next new space takes it: an exec then
//!   waits for no zygote fork and no stub start-up. A process's last thread is not
//!   told to exit when its task ends: the space, dropped right after, kills the stub.
//! - `clone` and `prctl` are allowed only from the one instruction each that needs
//!   them, with fixed flags (`stub::THREAD_FLAGS`, `stub::FORK_FLAGS`;
//!   PR_SET_PDEATHSIG), and only for the syscall thread (the application filter
//!   forbids them).
//! - Spinning is adaptive, per region and per side: the sentry spins for the
//!   handler to park only while its recent spins caught it, and tells the handler
//!   (the no-spin word, set with the hand-over) not to spin while the handler's
//!   recent spins ended asleep before the answer came; a miss costs a score more
//!   than a catch earns, and one hand-off in 32 spins anyway to notice a calmer
//!   host. Two tasks waking each other (futex, pipe or loopback TCP ping-pong)
//!   on two CPUs otherwise spin on the CPU the other's wake-up needs.
//! - Spin hand-offs need both sides on a CPU at once, so each context's driving
//!   thread and its application thread are pinned to two different CPUs
//!   (round-robin) while its spins catch, and unpinned once they miss (a
//!   sleeping pair must wake wherever a CPU is free); with one CPU nobody spins.
//!   On an overloaded host (a load average above two per CPU) nothing is pinned,
//!   and the syscall thread of a space made then does not follow its sender: a
//!   pinned side waits for the one CPU it may use, held by another process.
//!   Spinning stays adaptive there: the load average counts every runnable thread
//!   of the host (niced builds too), which says little about whether this
//!   sandbox's spins catch; the spin scores say exactly that. The syscall thread follows the sentry
//!   thread that sends it a command onto its CPU (a same-CPU wake is a context switch;
//!   waking an idle CPU costs far more on a VM). An idle sandbox uses no CPU (every
//!   side asleep on a futex).
//!
//! # Threading rules
//! Any host thread may drive a context or edit a space. Each thread's region has a
//! lock: a switch holds it while its thread runs. Space edits take the syscall
//! thread's lock, for one command or a sequence that must not interleave (a file
//! mapping's fd transfer and close). A forked space is settled (its start-up report
//! taken) before its syscall thread takes any command.
//!
//! # Dead stubs and kills
//! The zygote reaps no child on its own (SIGCHLD `SIG_DFL`, no `SA_NOCLDWAIT`): a
//! stub that dies stays a zombie, its pid taken, until its space is dropped and asks
//! the zygote (a message without fds on its socket) to reap it. So memory copies by
//! pid can never reach another host process; on a dead stub they fail (ESRCH), which
//! records the death and reads as EFAULT. Liveness is the pidfd polling readable.
//! [`Interrupter::kill`](crate::platform::Interrupter::kill) (SIGKILL, group exit,
//! exec) sends the interrupt and, if the context has not come back a second later
//! (the application blocked the interrupt signal, or left a hand-off unanswered),
//! SIGKILLs the whole stub. A death watcher thread per platform sleeps in one
//! `ppoll` on every live stub's pidfd and, when one dies, marks its space dead and
//! runs its death hooks (`AddressSpace::on_death`: the kernel ends the processes in
//! it), so a death is noticed at once, even while every task of the process waits
//! inside the sentry.
//!
//! # Limitations
//! See docs/security-systrap.md. Application code can jump into the stub's code page
//! and make the handler's few calls itself, on itself only, and scribble over its
//! regions and the syscall thread's scratch page: the sentry validates every pointer
//! it reads there and takes results only from the kernel. A SIGSTOP sent to a stub
//! from outside stops it until SIGCONT. A fork whose zygote dies between the `clone`
//! and the child's PR_SET_PDEATHSIG (the sentry dying at that instant) is not killed.

mod context;
mod space;
mod stub;
mod sys;
mod syscaller;
#[cfg(test)]
mod tests;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::platform::{AddressSpace, Context, Platform};

use context::SystrapContext;
use space::{lock, SystrapSpace};

/// One past the highest application address (as on the ptrace platform).
pub const MAX_USER_ADDRESS: u64 = 0x7fff_0000_0000;
const _: () = assert!(MAX_USER_ADDRESS < stub::STUB_BASE);

/// The systrap backend.
pub struct SystrapPlatform {
    /// The zygote's control socket (shared with the spaces, which hand their dead
    /// stubs back on it for reaping).
    zygote: Arc<Zygote>,
    /// A pidfd of the zygote (shared with the thread that makes spare stubs).
    zygote_pidfd: Arc<OwnedFd>,
    /// The zygote's pid (our child: reaped on drop).
    zygote_pid: i32,
    /// Every live space this platform made, to find the concrete space behind an
    /// `Arc<dyn AddressSpace>` in `new_context`.
    spaces: Arc<Registry>,
    /// Where driving threads and stub threads go.
    cpus: Arc<Cpus>,
    /// A stub made ahead of the next new address space (exec).
    spare: Arc<Spare>,
}

/// A new address space made ahead: an exec then takes a stub whose syscall thread
/// and first application thread are already up instead of waiting for the zygote's
/// fork, the stub's start-up and its first thread (1.5-1.8 ms of a 2.5-8 ms
/// fork+exec+wait under load, measured with counters; see
/// docs/security-systrap.md for why a spare is out of every program's reach).
///
/// The first address space of a platform is always made on demand (a sandbox that
/// runs one program never makes a spare); each later one takes the spare if there
/// is one and asks for the next, made by a short-lived thread while the program
/// runs.
struct Spare {
    /// The stub made ahead: not registered (nothing watches or reaches it), its first
    /// thread parked at its start-up report, no application code in it.
    ready: Mutex<Option<SystrapSpace>>,
    /// Whether a thread is making one.
    making: std::sync::atomic::AtomicBool,
    /// How many address spaces were asked for.
    asked: std::sync::atomic::AtomicU64,
}

impl Spare {
    /// Takes the spare if it is there, alive and made for the host's current load
    /// (a spare made while the host was calm spins; one made under load does not).
    fn take(&self, spin: bool) -> Option<SystrapSpace> {
        let space = lock(&self.ready).take()?;
        (space.spin == spin && space.alive()).then_some(space)
    }
}

/// Every live space of a platform (forked ones included), watched for deaths.
type Registry = crate::platform::death_watch::Registry<SystrapSpace>;

/// The CPUs sentry-thread/stub-thread pairs are spread over.
pub(super) struct Cpus {
    /// The allowed CPUs.
    list: Vec<usize>,
    /// Round-robin position in `list`.
    next: std::sync::atomic::AtomicUsize,
    /// When the load was last looked at, and whether it was too high.
    load: Mutex<(Option<Instant>, bool)>,
}

/// A host whose one-minute load average is above this many runnable threads per
/// allowed CPU counts as overloaded: pinning then costs far more than it saves
/// (spinning no longer depends on it: with pairs unpinned, futex ping-pong under
/// load 9-12 took 1.1x the time of neither spinning nor pinning, pinned and
/// spinning 2.8x). Measured on 2 CPUs under a load of 8-12 (other processes at nice 10),
/// paired medians, pinned and spinning against neither: futex ping-pong 0.9-4.2 ms
/// against 57-75 us, pipe ping-pong 1.8-2.3 ms against 0.16-0.25 ms, thread
/// create+join 1.6-17 ms against 0.7-4.2 ms; getpid 14-20 us against 37-68 us (still
/// below ptrace's 41-44 us there). Spinning unpinned is worse than either (getpid 93
/// us). A sandbox's own spinning pair adds at most two.
const OVERLOAD_PER_CPU: u64 = 2;
/// How often the load is looked at again.
const LOAD_CHECK_PERIOD: Duration = Duration::from_secs(1);

impl Cpus {
    /// Whether hand-offs may spin (both sides can run at once): several CPUs. Each
    /// side then spins only while its recent spins caught the other (see
    /// `space::SpinStats`), which is this sandbox's own evidence; the host's load
    /// only decides pinning (see [`Cpus::pin_pair`]). Keyed on the load average, a
    /// host busy with niced builds (load 9-10 on 2 CPUs) made every getpid sleep:
    /// 81 us a call against 6.6 us spinning unpinned (5 pairs, same minutes; see
    /// docs/security-systrap.md).
    fn several(&self) -> bool {
        self.list.len() > 1
    }

    /// Whether the host's load is above [`OVERLOAD_PER_CPU`] per allowed CPU (looked
    /// at once per [`LOAD_CHECK_PERIOD`]).
    pub(super) fn overloaded(&self) -> bool {
        let mut checked = lock(&self.load);
        let now = Instant::now();
        if checked
            .0
            .is_none_or(|t| now.duration_since(t) >= LOAD_CHECK_PERIOD)
        {
            let limit = OVERLOAD_PER_CPU * self.list.len() as u64;
            checked.1 = sys::load_average().is_some_and(|l| l > limit);
            checked.0 = Some(now);
        }
        checked.1
    }

    /// Puts the calling host thread and stub thread `tid` on two different CPUs;
    /// returns whether it did. Spin hand-offs need both sides running at once, so
    /// the scheduler must never stack them on one (measured: 8-12 us a getpid
    /// pinned apart, 12-19 us unpinned, same minutes).
    /// On an overloaded host both may run on any allowed CPU instead (see
    /// [`Cpus::unpin_pair`]).
    pub(super) fn pin_pair(&self, tid: i32) -> bool {
        if self.list.len() < 2 {
            return false;
        }
        if self.overloaded() {
            self.unpin_pair(tid);
            return false;
        }
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = self.list.len();
        for (t, cpu) in [(0, self.list[i % n]), (tid, self.list[(i + 1) % n])] {
            if let Err(e) = sys::pin(t, cpu) {
                tracing::debug!(tid = t, cpu, "cannot pin a systrap context: {e}");
            }
        }
        true
    }

    /// Lets the calling host thread and stub thread `tid` run on any allowed CPU (a
    /// thread inherits its creator's pin, so that is set too): a pair whose
    /// hand-offs sleep (an overloaded host, or spins that keep missing) must wake
    /// where a CPU is free, not wait for the one it was pinned to while another
    /// thread holds it. Two pinned pairs whose tasks wake each other (futex or
    /// pipe ping-pong, a loopback request and its answer) crossed that way on two
    /// CPUs: each side's spin held the CPU the other side's wake-up needed.
    pub(super) fn unpin_pair(&self, tid: i32) {
        if self.list.len() < 2 {
            return;
        }
        for t in [0, tid] {
            if let Err(e) = sys::pin_to(t, &self.list) {
                tracing::debug!(tid = t, "cannot unpin a systrap context: {e}");
            }
        }
    }
}

impl SystrapPlatform {
    /// Builds the stub program and starts the zygote. Must run before the sentry's
    /// seccomp filter is installed; the zygote dies with the calling thread.
    pub fn new() -> SysResult<Self> {
        let exe = stub::memfd(&stub::build())?;
        let (control, zygote_end) = space::socketpair()?;
        let pid = stub::spawn_zygote(exe.as_fd(), zygote_end.as_fd())?;
        drop(zygote_end);
        drop(exe);
        let zygote_pidfd = match sys::pidfd_open(pid) {
            Ok(fd) => Arc::new(fd),
            Err(e) => {
                // SAFETY: `pid` is our unreaped child, so the number is still its.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                reap(pid);
                return Err(e);
            }
        };
        Ok(SystrapPlatform {
            zygote: Arc::new(Zygote {
                control: Mutex::new(control),
            }),
            zygote_pidfd,
            zygote_pid: pid,
            spaces: Registry::new("systrap-deaths")?,
            cpus: Arc::new(Cpus {
                list: sys::allowed_cpus(),
                load: Mutex::new((None, false)),
                // Sandboxes start their round-robin at different places, so two of
                // them on two CPUs do not put both sentries on one CPU and both
                // stubs on the other. (Not by pid: every sentry is pid 1 of its own
                // pid namespace.)
                next: std::sync::atomic::AtomicUsize::new(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.subsec_nanos() as usize),
                ),
            }),
            spare: Arc::new(Spare {
                ready: Mutex::new(None),
                making: false.into(),
                asked: 0.into(),
            }),
        })
    }
}

/// The sentry's end of the zygote's control socket. Stubs are the zygote's
/// children (forks too: `CLONE_PARENT`), and it reaps none on its own: a dead stub
/// stays a zombie, so its pid can name no other process, until the space that
/// copies memory through that pid is gone and asks for the reaping here.
pub(super) struct Zygote {
    control: Mutex<OwnedFd>,
}

impl Zygote {
    /// Asks for a new stub: sends its region memfd and control socket.
    fn spawn(&self, fds: &[i32]) -> SysResult<()> {
        let control = self.control.lock().map_err(|_| Errno::EIO)?;
        space::send_fds(control.as_fd(), fds, 0)
    }

    /// Tells the zygote to reap stub `pid`, which the caller has killed and will
    /// never touch again. A zygote that is gone took its children with it.
    pub(super) fn reap(&self, pid: i32) {
        use nix::sys::socket::{sendmsg, MsgFlags};
        let data = (pid as u64).to_le_bytes();
        let iov = [std::io::IoSlice::new(&data)];
        let control = self.control.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = sendmsg::<()>(control.as_raw_fd(), &iov, &[], MsgFlags::MSG_NOSIGNAL, None)
        {
            tracing::debug!(pid, "asking the systrap zygote to reap a stub: {e}");
        }
    }
}

/// Waits for our child `pid` to be gone.
fn reap(pid: i32) {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid int for the kernel to write.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if r >= 0 || sys::last_errno() != Errno::EINTR {
            return;
        }
    }
}

impl Drop for SystrapPlatform {
    fn drop(&mut self) {
        // Closing its socket ends the zygote's loop; the kill covers a zygote stuck
        // anywhere else. Stubs die with it (PR_SET_PDEATHSIG).
        let _ = sys::pidfd_signal(&self.zygote_pidfd, libc::SIGKILL);
        reap(self.zygote_pid);
    }
}

impl SystrapPlatform {
    /// A new stub from the zygote, its first thread up.
    fn make_space(&self, spin: bool) -> SysResult<SystrapSpace> {
        let alive = || !sys::pidfd_exited(&self.zygote_pidfd);
        SystrapSpace::new(
            &self.zygote,
            alive,
            spin,
            self.cpus.clone(),
            self.spaces.clone(),
        )
    }

    /// Starts making the next spare address space on a thread of its own, unless
    /// one is there or being made.
    fn make_spare(&self) {
        use std::sync::atomic::Ordering;
        if lock(&self.spare.ready).is_some() || self.spare.making.swap(true, Ordering::SeqCst) {
            return;
        }
        let spare = self.spare.clone();
        let zygote = self.zygote.clone();
        let zygote_pidfd = self.zygote_pidfd.clone();
        let cpus = self.cpus.clone();
        let registry = self.spaces.clone();
        let made = std::thread::Builder::new()
            .name("systrap-spare".into())
            .spawn(move || {
                let spin = cpus.several();
                let alive = || !sys::pidfd_exited(&zygote_pidfd);
                match SystrapSpace::new(&zygote, alive, spin, cpus, registry) {
                    Ok(space) => *lock(&spare.ready) = Some(space),
                    Err(e) => tracing::debug!("making a spare systrap stub: {e}"),
                }
                spare.making.store(false, Ordering::SeqCst);
            });
        if let Err(e) = made {
            tracing::debug!("starting the systrap spare-stub thread: {e}");
            self.spare.making.store(false, Ordering::SeqCst);
        }
    }
}

impl Platform for SystrapPlatform {
    fn name(&self) -> &'static str {
        "systrap"
    }

    fn max_user_address(&self) -> u64 {
        MAX_USER_ADDRESS
    }

    fn new_address_space(&self) -> SysResult<Arc<dyn AddressSpace>> {
        use std::sync::atomic::Ordering;
        let spin = self.cpus.several();
        let spare = self.spare.take(spin);
        let space = match spare {
            Some(space) => Arc::new(space),
            None => Arc::new(self.make_space(spin)?),
        };
        self.spaces.register(&space);
        if self.spare.asked.fetch_add(1, Ordering::Relaxed) > 0 {
            self.make_spare();
        }
        Ok(space)
    }

    /// Returns the stub's first thread as a context; a second call gets `EINVAL`
    /// (further threads come from [`Context::new_thread`]).
    fn new_context(&self, space: &Arc<dyn AddressSpace>) -> SysResult<Box<dyn Context>> {
        let found = self.spaces.find(Arc::as_ptr(space) as *const ());
        let space = found.ok_or(Errno::EINVAL)?;
        if space
            .context_taken
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(Errno::EINVAL);
        }
        let thread = space.first_thread().ok_or(Errno::ESRCH)?;
        let pinned = self.cpus.pin_pair(thread.tid);
        Ok(Box::new(SystrapContext::new(space, thread, 0, 0, pinned)))
    }
}
