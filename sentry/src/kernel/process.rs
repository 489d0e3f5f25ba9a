//! Processes (thread groups) and the part of each thread other threads may touch:
//! the registry of the container's pid namespace, parent/child links, process groups
//! and sessions, zombies, and signal sending.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::errno::{Errno, SysResult};
use crate::kernel::limits::Limits;
use crate::kernel::signals::{self, bit, SigInfo, SigQueue, SignalActions};
use crate::kernel::wait::{WaitQueue, Waker};
use crate::kernel::ExitStatus;

/// What other threads may touch of a thread.
pub struct ThreadHandle {
    /// Thread id.
    pub tid: Mutex<i32>,
    /// Wakes the thread out of a blocking wait.
    pub waker: Arc<Waker>,
    /// Thread-directed pending signals.
    pub pending: Mutex<SigQueue>,
    /// Blocked signals (written by the thread itself).
    pub mask: AtomicU64,
    /// The thread must exit as soon as it can (group exit, SIGKILL, exec).
    pub killed: AtomicBool,
    /// `PR_SET_PDEATHSIG`: sent to this thread when its parent process exits.
    pub pdeath_signal: std::sync::atomic::AtomicI32,
    /// Seccomp mode and filters (here so `SECCOMP_FILTER_FLAG_TSYNC` reaches it).
    pub seccomp: crate::kernel::seccomp::ThreadSeccomp,
    /// Scheduling policy, priorities and affinity (bookkeeping).
    pub sched: crate::kernel::sched::SchedCell,
    /// `personality(2)` value (bookkeeping: the execution domain is always Linux).
    pub personality: std::sync::atomic::AtomicU32,
    /// Its ptrace state (tracer, options, the stop it is in).
    pub ptrace: Mutex<crate::kernel::ptrace::Tracee>,
    /// Something traces it (a lock-free view of `ptrace.tracer != 0`).
    pub traced: AtomicBool,
    /// The rseq registration a forked thread inherits, handed over by the parent
    /// before the thread starts (the running task keeps its own copy).
    pub rseq_inherited: Mutex<Option<crate::kernel::rseq::Rseq>>,
    /// `comm` (at most 15 bytes): here rather than on the task because another
    /// thread of the process may change it through `/proc/PID/task/TID/comm`.
    pub comm: Mutex<Vec<u8>>,
    /// The thread has begun to exit (no longer live, as Linux's `signal->live`
    /// counts: its CHILD_CLEARTID wake-up may come before it leaves the group).
    pub exiting: AtomicBool,
}

impl ThreadHandle {
    /// A handle for thread `tid`.
    pub fn new(tid: i32) -> Arc<ThreadHandle> {
        Arc::new(ThreadHandle {
            tid: Mutex::new(tid),
            waker: Waker::new(),
            pending: Mutex::new(SigQueue::default()),
            mask: AtomicU64::new(0),
            killed: AtomicBool::new(false),
            pdeath_signal: std::sync::atomic::AtomicI32::new(0),
            seccomp: Default::default(),
            sched: Default::default(),
            personality: std::sync::atomic::AtomicU32::new(0),
            ptrace: Mutex::new(Default::default()),
            traced: AtomicBool::new(false),
            rseq_inherited: Mutex::new(None),
            comm: Mutex::new(Vec::new()),
            exiting: AtomicBool::new(false),
        })
    }

    /// The thread's `comm`.
    pub fn comm(&self) -> Vec<u8> {
        self.comm.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Sets the thread's `comm`, cut to 15 bytes as Linux's `TASK_COMM_LEN`.
    pub fn set_comm(&self, name: &[u8]) {
        if let Ok(mut c) = self.comm.lock() {
            *c = name[..name.len().min(15)].to_vec();
        }
    }

    /// The thread's id.
    pub fn tid(&self) -> i32 {
        self.tid.lock().map(|t| *t).unwrap_or(0)
    }

    /// Makes the thread notice something: wakes a blocking wait and interrupts
    /// running application code.
    pub fn kick(&self) {
        self.waker.wake();
        self.waker.interrupt();
    }

    /// Makes the thread exit as soon as it can: marks it killed, wakes a blocking
    /// wait and ends its application code, even if that code blocked the platform's
    /// interrupt (see [`crate::platform::Interrupter::kill`]).
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.waker.wake();
        self.waker.kill();
    }
}

/// Mutable state of a process.
pub struct GroupState {
    /// Parent process (0 for the container's init).
    pub parent: i32,
    /// Child processes.
    pub children: BTreeSet<i32>,
    /// Live threads by tid.
    pub threads: BTreeMap<i32, Arc<ThreadHandle>>,
    /// Process group.
    pub pgid: i32,
    /// Session.
    pub sid: i32,
    /// Signal sent to the parent on exit (SIGCHLD, or 0).
    pub exit_signal: i32,
    /// Set by exit_group or a fatal signal: every thread is on its way out.
    pub group_exit: Option<ExitStatus>,
    /// The thread whose exec is ending the others (Linux's `group_exec_task`): a thread
    /// created meanwhile is killed at once, or the exec would wait for it forever.
    pub exec_by: Option<i32>,
    /// Set when the last thread has exited: the process is a zombie until reaped.
    pub zombie: Option<ExitStatus>,
    /// `PR_SET_CHILD_SUBREAPER`.
    pub subreaper: bool,
    /// Stopped by a stop signal (reported once to a WUNTRACED waiter).
    pub stopped: Option<i32>,
    /// A stop or continue not yet reported to the parent: (is_continue, signal).
    pub unreported: Option<(bool, i32)>,
    /// Executable name for ps and /proc (`comm`).
    pub comm: Vec<u8>,
    /// Whether an exec has happened (setpgid on a child after exec is EACCES).
    pub did_exec: bool,
    /// Real and saved uid, for kill permission checks by other processes.
    pub uids: (u32, u32),
    /// What /proc shows of the process.
    pub view: ProcView,
    /// `/proc/PID/oom_score_adj` and the lowest value it may be set to without
    /// CAP_SYS_RESOURCE (Linux's `oom_score_adj_min`, set by privileged writers).
    pub oom_score_adj: (i32, i32),
    /// CPU time (user, system) the process had used when its last thread exited.
    pub exit_cpu: (std::time::Duration, std::time::Duration),
    /// `membarrier` registrations of the address space (the `MEMBARRIER_CMD_REGISTER_*`
    /// bits; a new image starts with none).
    pub membarrier: u32,
    /// CPU time of its waited-for children and their waited-for descendants
    /// (`RUSAGE_CHILDREN`, `times`' cutime/cstime).
    pub children_cpu: (std::time::Duration, std::time::Duration),
    /// The threads this process traces, by tid.
    pub tracees: BTreeMap<i32, Arc<ThreadHandle>>,
    /// The process has exited but a tracer that is not its parent has not yet
    /// waited for it: its parent's wait does not see it until then.
    pub held_for_tracer: bool,
    /// `PR_SET_DUMPABLE` (only dumpable processes may be traced without
    /// CAP_SYS_PTRACE).
    pub dumpable: bool,
    /// The tracer `PR_SET_PTRACER` named (Yama's exception).
    pub ptracer: Option<crate::kernel::yama::Ptracer>,
}

impl GroupState {
    /// An exited process's CPU time with its waited-for descendants' (user, system):
    /// what its parent's wait reports and adds to its own children's time.
    pub fn total_cpu(&self) -> (std::time::Duration, std::time::Duration) {
        (
            self.exit_cpu.0 + self.children_cpu.0,
            self.exit_cpu.1 + self.children_cpu.1,
        )
    }
}

/// The parts of a process /proc shows, published by its threads when they change.
#[derive(Clone, Default)]
pub struct ProcView {
    /// Executable path.
    pub exe: Vec<u8>,
    /// Its memory.
    pub mm: Option<std::sync::Weak<Mutex<crate::mm::MemoryManager>>>,
    /// Its fd table.
    pub fds: Option<std::sync::Weak<Mutex<crate::vfs::FdTable>>>,
    /// Working directory.
    pub cwd: Option<Arc<crate::vfs::Dentry>>,
    /// Root directory.
    pub root: Option<Arc<crate::vfs::Dentry>>,
    /// Namespaces (`/proc/PID/ns`).
    pub ns: Option<Arc<crate::kernel::ns::NsSet>>,
    /// File mode creation mask.
    pub umask: u32,
    /// uid, euid, suid, fsuid, gid, egid, sgid, fsgid.
    pub ids: [u32; 8],
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// The credentials as a whole (capability sets, securebits, no_new_privs).
    pub creds: crate::kernel::creds::Credentials,
    /// When the process started (seconds since boot, for /proc/PID/stat).
    pub start_ticks: u64,
}

thread_local! {
    static CURRENT: std::cell::Cell<(i32, i32)> = const { std::cell::Cell::new((0, 0)) };
}

/// Records which task the calling sentry thread runs (for /proc/self).
pub fn set_current(tgid: i32, tid: i32) {
    CURRENT.with(|c| c.set((tgid, tid)));
}

/// The (tgid, tid) of the task the calling sentry thread runs; (0, 0) outside one.
pub fn current() -> (i32, i32) {
    CURRENT.with(|c| c.get())
}

/// A process: a thread group.
pub struct ThreadGroup {
    /// Process id (in the sandbox's first pid namespace).
    pub tgid: i32,
    /// The pid namespace it is in (fixed for its life).
    pub pid_ns: Arc<crate::kernel::ns::PidNs>,
    /// Signal dispositions.
    pub actions: Mutex<SignalActions>,
    /// Process-directed pending signals.
    pub pending: Mutex<SigQueue>,
    /// Resource limits, shared by the threads.
    pub limits: Arc<Mutex<Limits>>,
    /// The rest.
    pub state: Mutex<GroupState>,
    /// Notified whenever a child changes state (wait4).
    pub child_events: WaitQueue,
    /// Notified when a vfork child execs or exits, and when the group's threads exit.
    pub events: WaitQueue,
}

impl ThreadGroup {
    /// A new process.
    pub fn new(
        tgid: i32,
        parent: i32,
        pgid: i32,
        sid: i32,
        limits: Limits,
        actions: SignalActions,
        pid_ns: Arc<crate::kernel::ns::PidNs>,
    ) -> Arc<ThreadGroup> {
        Arc::new(ThreadGroup {
            tgid,
            pid_ns,
            actions: Mutex::new(actions),
            pending: Mutex::new(SigQueue::default()),
            limits: Arc::new(Mutex::new(limits)),
            state: Mutex::new(GroupState {
                parent,
                children: BTreeSet::new(),
                threads: BTreeMap::new(),
                pgid,
                sid,
                exit_signal: libc::SIGCHLD,
                group_exit: None,
                exec_by: None,
                zombie: None,
                subreaper: false,
                stopped: None,
                unreported: None,
                comm: Vec::new(),
                did_exec: false,
                uids: (0, 0),
                view: ProcView::default(),
                oom_score_adj: (0, 0),
                exit_cpu: Default::default(),
                children_cpu: Default::default(),
                membarrier: 0,
                tracees: BTreeMap::new(),
                held_for_tracer: false,
                dumpable: true,
                ptracer: None,
            }),
            child_events: WaitQueue::new(),
            events: WaitQueue::new(),
        })
    }

    /// The state, locked.
    pub fn state(&self) -> SysResult<MutexGuard<'_, GroupState>> {
        self.state.lock().map_err(|_| Errno::EIO)
    }

    /// The dispositions, locked.
    pub fn actions(&self) -> SysResult<MutexGuard<'_, SignalActions>> {
        self.actions.lock().map_err(|_| Errno::EIO)
    }
}

/// The pid namespace of a sandbox.
#[derive(Default)]
pub struct Registry {
    /// Processes by tgid (including zombies until reaped).
    pub groups: BTreeMap<i32, Arc<ThreadGroup>>,
    /// Live threads by tid, with their process.
    pub threads: BTreeMap<i32, (Arc<ThreadHandle>, Arc<ThreadGroup>)>,
}

impl Registry {
    /// The process `tgid`.
    pub fn group(&self, tgid: i32) -> Option<Arc<ThreadGroup>> {
        self.groups.get(&tgid).cloned()
    }

    /// The thread `tid` and its process.
    pub fn thread(&self, tid: i32) -> Option<(Arc<ThreadHandle>, Arc<ThreadGroup>)> {
        self.threads.get(&tid).cloned()
    }

    /// Whether anything in the sandbox uses the number `id`: a thread, a process
    /// (zombies until reaped), a process group or a session (Linux's `find_vpid`
    /// finding a `struct pid`, whatever it is attached to).
    pub fn id_in_use(&self, id: i32) -> bool {
        self.threads.contains_key(&id)
            || self.groups.contains_key(&id)
            || self.groups.values().any(|g| {
                g.state()
                    .map(|s| s.pgid == id || s.sid == id)
                    .unwrap_or(false)
            })
    }

    /// Whether process group `pgid` has any process, zombies included (Linux keeps
    /// a zombie in its group until it is reaped).
    pub fn group_exists(&self, pgid: i32) -> bool {
        self.groups
            .values()
            .any(|g| g.state().map(|s| s.pgid == pgid).unwrap_or(false))
    }

    /// Live (non-zombie) processes in process group `pgid`.
    pub fn group_members(&self, pgid: i32) -> Vec<Arc<ThreadGroup>> {
        self.groups
            .values()
            .filter(|g| {
                g.state()
                    .map(|s| s.pgid == pgid && s.zombie.is_none())
                    .unwrap_or(false)
            })
            .cloned()
            .collect()
    }
}

/// Sends `info` to the process `tg`, choosing a thread that does not block it.
/// SIGKILL ends the whole process at once.
pub fn send_to_group(tg: &Arc<ThreadGroup>, info: SigInfo) -> SysResult<()> {
    let sig = info.signo as u32;
    if sig == 0 {
        return Ok(());
    }
    if sig > signals::MAX_SIGNAL {
        return Err(Errno::EINVAL);
    }
    let threads: Vec<Arc<ThreadHandle>> = {
        let st = tg.state()?;
        if st.zombie.is_some() {
            return Ok(());
        }
        st.threads.values().cloned().collect()
    };
    if sig == libc::SIGKILL as u32 {
        kill_group(
            tg,
            ExitStatus::Signaled {
                signo: libc::SIGKILL,
                core: false,
            },
        );
        return Ok(());
    }
    if sig == libc::SIGCONT as u32 {
        continue_group(tg);
    }
    if sig_is_stop(sig) {
        tg.pending
            .lock()
            .map_err(|_| Errno::EIO)?
            .discard(libc::SIGCONT as u32);
    }
    let blocked_by_all = threads
        .iter()
        .all(|t| t.mask.load(Ordering::Acquire) & bit(sig) != 0);
    // A tracer sees even ignored signals (at their signal-delivery stop).
    let traced = threads.iter().any(|t| t.traced.load(Ordering::Acquire));
    if tg.actions()?.ignores(sig) && !blocked_by_all && !traced {
        return Ok(());
    }
    tg.pending.lock().map_err(|_| Errno::EIO)?.push(info)?;
    tg.events.notify_all();
    let target = threads
        .iter()
        .find(|t| t.mask.load(Ordering::Acquire) & bit(sig) == 0);
    if let Some(t) = target {
        t.kick();
    }
    Ok(())
}

/// Sends `info` to one thread.
pub fn send_to_thread(
    thread: &Arc<ThreadHandle>,
    tg: &Arc<ThreadGroup>,
    info: SigInfo,
) -> SysResult<()> {
    let sig = info.signo as u32;
    if sig == 0 {
        return Ok(());
    }
    if sig > signals::MAX_SIGNAL {
        return Err(Errno::EINVAL);
    }
    if sig == libc::SIGKILL as u32 {
        kill_group(
            tg,
            ExitStatus::Signaled {
                signo: libc::SIGKILL,
                core: false,
            },
        );
        return Ok(());
    }
    if sig == libc::SIGCONT as u32 {
        continue_group(tg);
    }
    let blocked = thread.mask.load(Ordering::Acquire) & bit(sig) != 0;
    let traced = thread.traced.load(Ordering::Acquire);
    if tg.actions()?.ignores(sig) && !blocked && !traced {
        return Ok(());
    }
    thread.pending.lock().map_err(|_| Errno::EIO)?.push(info)?;
    tg.events.notify_all();
    thread.kick();
    Ok(())
}

fn sig_is_stop(sig: u32) -> bool {
    matches!(
        sig as i32,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
    )
}

/// Ends every thread of `tg` with `status` (the first status set wins); true when
/// this call set it.
pub fn kill_group(tg: &Arc<ThreadGroup>, status: ExitStatus) -> bool {
    let (threads, first): (Vec<Arc<ThreadHandle>>, bool) = match tg.state() {
        Ok(mut st) => {
            let first = st.group_exit.is_none();
            if first {
                st.group_exit = Some(status);
            }
            st.stopped = None;
            (st.threads.values().cloned().collect(), first)
        }
        Err(_) => return false,
    };
    for t in threads {
        t.kill();
    }
    tg.events.notify_all();
    first
}

/// Resumes a stopped process (SIGCONT) and records the event for its parent.
fn continue_group(tg: &Arc<ThreadGroup>) {
    if let Ok(mut st) = tg.state() {
        if st.stopped.take().is_some() {
            st.unreported = Some((true, libc::SIGCONT));
        }
    }
    if let Ok(mut p) = tg.pending.lock() {
        for s in [libc::SIGSTOP, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU] {
            p.discard(s as u32);
        }
    }
    tg.events.notify_all();
}

/// The `wait(2)` status word for a zombie.
pub fn wait_status(st: ExitStatus) -> i32 {
    match st {
        ExitStatus::Exited(c) => (c & 0xff) << 8,
        ExitStatus::Signaled { signo, core } => (signo & 0x7f) | if core { 0x80 } else { 0 },
    }
}

/// A process's pending signals as signalfd reads them: the creating thread's own
/// queue and the process-wide one.
pub struct GroupSignals {
    /// The process.
    pub tg: Arc<ThreadGroup>,
    /// The thread that made the signalfd.
    pub thread: Arc<ThreadHandle>,
}

impl crate::fs::signalfd::SignalSource for GroupSignals {
    fn dequeue(&self, mask: u64) -> Option<crate::fs::signalfd::SigInfo> {
        let info = match self
            .thread
            .pending
            .lock()
            .ok()
            .and_then(|mut q| q.take_from(mask))
        {
            Some(i) => i,
            None => self
                .tg
                .pending
                .lock()
                .ok()
                .and_then(|mut q| q.take_from(mask))?,
        };
        let info = signals::seen_in(info, &self.tg.pid_ns);
        Some(crate::fs::signalfd::SigInfo {
            signo: info.signo as u32,
            errno: info.errno,
            code: info.code,
            pid: info.pid as u32,
            uid: info.uid,
            status: info.status as i32,
            int: info.value as i32,
            ptr: info.value,
            addr: info.addr,
            ..Default::default()
        })
    }

    fn pending(&self) -> u64 {
        let own = self.thread.pending.lock().map(|q| q.set()).unwrap_or(0);
        let shared = self.tg.pending.lock().map(|q| q.set()).unwrap_or(0);
        own | shared
    }

    fn wait_queue(&self) -> &WaitQueue {
        &self.tg.events
    }
}
