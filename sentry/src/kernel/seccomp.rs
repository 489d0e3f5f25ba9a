//! Seccomp for applications: each thread's mode and filter chain, and the check the
//! sentry makes before it runs a system call of a thread that has one. Filters are
//! classic BPF ([`cbpf`]) over `struct seccomp_data`, run newest first; the action
//! that ranks first (Linux's order: KILL_PROCESS, KILL_THREAD, TRAP, ERRNO,
//! USER_NOTIF, TRACE, LOG, ALLOW) decides. A thread without a filter pays one atomic
//! load per system call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::cbpf::{self, Insn};
use crate::kernel::process;
use crate::kernel::signals::SigInfo;
use crate::kernel::{ExitStatus, Task};

/// `SECCOMP_RET_KILL_PROCESS`.
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
/// `SECCOMP_RET_KILL_THREAD`.
pub const RET_KILL_THREAD: u32 = 0;
/// `SECCOMP_RET_TRAP`.
pub const RET_TRAP: u32 = 0x0003_0000;
/// `SECCOMP_RET_ERRNO`.
pub const RET_ERRNO: u32 = 0x0005_0000;
/// `SECCOMP_RET_USER_NOTIF`.
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
/// `SECCOMP_RET_TRACE`.
pub const RET_TRACE: u32 = 0x7ff0_0000;
/// `SECCOMP_RET_LOG`.
pub const RET_LOG: u32 = 0x7ffc_0000;
/// `SECCOMP_RET_ALLOW`.
pub const RET_ALLOW: u32 = 0x7fff_0000;
/// `SECCOMP_RET_ACTION_FULL`.
const ACTION_FULL: u32 = 0xffff_0000;
/// `SECCOMP_RET_DATA`.
const RET_DATA: u32 = 0x0000_ffff;
/// `AUDIT_ARCH_X86_64`.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `SYS_SECCOMP`, the `si_code` of a SIGSYS from `SECCOMP_RET_TRAP`.
pub const SYS_SECCOMP: i32 = 1;
/// Instructions all of a thread's filters may hold, each counting 4 more
/// (`MAX_INSNS_PER_PATH`).
pub const MAX_INSNS_PER_PATH: usize = 32768;
/// Linux's largest errno (`MAX_ERRNO`): ERRNO data above it is capped.
const MAX_ERRNO: u32 = 4095;

/// The seccomp mode of a thread, as `PR_GET_SECCOMP` and /proc report it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// No seccomp.
    #[default]
    Disabled = 0,
    /// `SECCOMP_MODE_STRICT`: read, write, exit and rt_sigreturn only.
    Strict = 1,
    /// `SECCOMP_MODE_FILTER`.
    Filter = 2,
}

/// What a filter runs.
#[derive(Debug)]
pub enum Program {
    /// Classic BPF from the application, checked by [`cbpf::check`].
    Bpf(Vec<Insn>),
    /// Rules from the container's spec (`linux.seccomp`), evaluated directly.
    Rules(crate::kernel::seccomp_spec::RuleSet),
}

impl Program {
    fn len(&self) -> usize {
        match self {
            Program::Bpf(p) => p.len(),
            Program::Rules(r) => r.len(),
        }
    }

    fn run(&self, data: &[u8; cbpf::DATA_SIZE as usize]) -> u32 {
        match self {
            Program::Bpf(p) => cbpf::run(p, data),
            Program::Rules(r) => r.run(data),
        }
    }
}

/// One attached filter; filters form a chain to the ones attached before it, shared
/// by every thread that inherited them.
#[derive(Debug)]
pub struct Filter {
    prog: Program,
    log: bool,
    prev: Option<Arc<Filter>>,
    count: usize,
    path_insns: usize,
}

impl Filter {
    /// Attaches a checked program on top of `prev`; `ENOMEM` when the chain would pass
    /// [`MAX_INSNS_PER_PATH`], as Linux.
    pub fn attach(
        prog: Program,
        log: bool,
        prev: Option<Arc<Filter>>,
    ) -> Result<Arc<Filter>, crate::errno::Errno> {
        let below = prev.as_ref().map(|p| p.path_insns).unwrap_or(0);
        let path_insns = below + prog.len() + 4;
        if path_insns > MAX_INSNS_PER_PATH {
            return Err(crate::errno::Errno::ENOMEM);
        }
        let count = prev.as_ref().map(|p| p.count).unwrap_or(0) + 1;
        Ok(Arc::new(Filter {
            prog,
            log,
            prev,
            count,
            path_insns,
        }))
    }

    /// True if `self` is `other` or one of the filters below it.
    pub fn is_ancestor_of(self: &Arc<Filter>, other: &Option<Arc<Filter>>) -> bool {
        let mut cur = other.clone();
        while let Some(f) = cur {
            if Arc::ptr_eq(&f, self) {
                return true;
            }
            cur = f.prev.clone();
        }
        false
    }

    /// The verdict of the chain for `data` (tests).
    #[cfg(test)]
    pub fn run_for_test(self: &Arc<Filter>, data: &[u8; cbpf::DATA_SIZE as usize]) -> u32 {
        self.run(data).0
    }

    /// Runs the chain newest first; returns the ranking verdict and whether the
    /// filter that gave it asked for logging (`SECCOMP_FILTER_FLAG_LOG`).
    fn run(self: &Arc<Filter>, data: &[u8; cbpf::DATA_SIZE as usize]) -> (u32, bool) {
        let mut ret = RET_ALLOW;
        let mut log = false;
        let mut cur = Some(self);
        while let Some(f) = cur {
            let r = f.prog.run(data);
            // Linux compares the actions as signed numbers: KILL_PROCESS ranks first.
            if ((r & ACTION_FULL) as i32) < ((ret & ACTION_FULL) as i32) {
                ret = r;
                log = f.log;
            }
            cur = f.prev.as_ref();
        }
        (ret, log)
    }
}

/// A thread's seccomp state.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// The mode.
    pub mode: Mode,
    /// The newest filter (filter mode).
    pub filter: Option<Arc<Filter>>,
    /// Set by another thread's `SECCOMP_FILTER_FLAG_TSYNC` when the caller had
    /// `no_new_privs`: this thread takes it at its next system call.
    pub take_no_new_privs: bool,
}

impl State {
    /// How many filters are attached (`Seccomp_filters:` in /proc).
    pub fn filter_count(&self) -> usize {
        self.filter.as_ref().map(|f| f.count).unwrap_or(0)
    }
}

/// The seccomp state on a thread's handle, where `TSYNC` from another thread can
/// reach it.
#[derive(Debug, Default)]
pub struct ThreadSeccomp {
    active: AtomicBool,
    state: Mutex<State>,
}

impl ThreadSeccomp {
    /// True once the thread has any mode: the only cost for a thread without one.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// A copy of the state.
    pub fn get(&self) -> State {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Replaces the state.
    pub fn set(&self, st: State) {
        let active = st.mode != Mode::Disabled;
        if let Ok(mut s) = self.state.lock() {
            *s = st;
        }
        self.active.store(active, Ordering::Release);
    }

    /// A clone child's copy of its parent's state (fork, clone, threads).
    pub fn inherit(&self, parent: &ThreadSeccomp) {
        if parent.is_active() {
            let mut st = parent.get();
            st.take_no_new_privs = false;
            self.set(st);
        }
    }

    /// Runs `f` on the state under its lock (install, TSYNC).
    pub fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> Option<R> {
        let mut s = self.state.lock().ok()?;
        let r = f(&mut s);
        self.active
            .store(s.mode != Mode::Disabled, Ordering::Release);
        Some(r)
    }
}

/// Gives a new process its container's filter (`linux.seccomp`), before its first
/// instruction.
pub fn install_spec_filter(t: &ThreadSeccomp, filter: Arc<Filter>) {
    t.set(State {
        mode: Mode::Filter,
        filter: Some(filter),
        take_no_new_privs: false,
    });
}

/// The `struct seccomp_data` a filter sees for system call `nr`.
fn seccomp_data(nr: u64, ip: u64, args: &[u64; 6]) -> [u8; cbpf::DATA_SIZE as usize] {
    let mut d = [0u8; cbpf::DATA_SIZE as usize];
    d[0..4].copy_from_slice(&(nr as u32).to_le_bytes());
    d[4..8].copy_from_slice(&AUDIT_ARCH_X86_64.to_le_bytes());
    d[8..16].copy_from_slice(&ip.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        d[16 + i * 8..24 + i * 8].copy_from_slice(&a.to_le_bytes());
    }
    d
}

/// The name of system call `nr` in `task`'s kernel, for logs.
fn name_of(task: &Task, nr: u64) -> &'static str {
    task.kernel.syscalls.name(nr).unwrap_or("unknown")
}

/// Decides whether `task` may run system call `nr` (call only when its seccomp is
/// active). `false` means the call must not run: its result is already in `rax`,
/// or the task is being killed, or a SIGSYS is queued.
pub fn admit(task: &mut Task, nr: u64, args: &[u64; 6]) -> bool {
    let st = task.handle.seccomp.get();
    if st.take_no_new_privs {
        task.creds.no_new_privs = true;
        task.handle.seccomp.update(|s| s.take_no_new_privs = false);
    }
    match st.mode {
        Mode::Disabled => true,
        Mode::Strict => {
            // read, write, exit, rt_sigreturn.
            if matches!(nr, 0 | 1 | 60 | 15) {
                return true;
            }
            tracing::info!(
                pid = task.tgid,
                tid = task.tid,
                syscall = name_of(task, nr),
                "seccomp strict mode: killed (SIGKILL)"
            );
            kill(task, libc::SIGKILL, false);
            false
        }
        Mode::Filter => {
            let Some(filter) = st.filter else {
                // Never left open: a filter mode without filters kills, as Linux.
                kill(task, libc::SIGSYS, true);
                return false;
            };
            let data = seccomp_data(nr, task.regs.rip, args);
            let (ret, log) = filter.run(&data);
            act(task, nr, ret, log)
        }
    }
}

/// Carries out a filter's verdict.
fn act(task: &mut Task, nr: u64, ret: u32, log: bool) -> bool {
    let action = ret & ACTION_FULL;
    let data = ret & RET_DATA;
    let note = |what: &str| {
        tracing::info!(
            pid = task.tgid,
            tid = task.tid,
            syscall = name_of(task, nr),
            nr,
            "seccomp: {what}"
        );
    };
    match action {
        RET_ALLOW => true,
        RET_LOG => {
            note("logged (SECCOMP_RET_LOG)");
            true
        }
        RET_ERRNO => {
            if log {
                note("errno");
            }
            task.regs.rax = (-(data.min(MAX_ERRNO) as i64)) as u64;
            false
        }
        RET_TRAP => {
            if log {
                note("trap");
            }
            // The handler sees the registers of the call it was denied, with rax
            // back to the call's number (Linux's syscall_rollback).
            task.regs.rax = task.regs.orig_rax;
            trap(task, nr, data);
            false
        }
        RET_TRACE | RET_USER_NOTIF => {
            // No tracer can attach to an application here and no listener exists:
            // Linux then fails the call with ENOSYS.
            if log {
                note("no tracer or listener: ENOSYS");
            }
            task.regs.rax = crate::errno::Errno::ENOSYS.as_return();
            false
        }
        RET_KILL_THREAD => {
            note("killed the thread (SIGSYS)");
            kill(task, libc::SIGSYS, false);
            false
        }
        _ => {
            note("killed the process (SIGSYS)");
            kill(task, libc::SIGSYS, true);
            false
        }
    }
}

/// Ends the thread with `sig`, or the whole process when `process` is set or the
/// thread is its last.
fn kill(task: &mut Task, sig: i32, process: bool) {
    let st = ExitStatus::Signaled {
        signo: sig,
        core: false,
    };
    let alone = task
        .tg
        .state()
        .map(|s| s.threads.len() <= 1)
        .unwrap_or(true);
    if process || alone {
        process::kill_group(&task.tg, st);
    }
    task.exit = Some(st);
}

/// Queues the SIGSYS of `SECCOMP_RET_TRAP`. A SIGSYS the thread blocks or ignores
/// cannot be deferred: as Linux's forced signal, its default action (the end of the
/// process) happens instead.
fn trap(task: &mut Task, nr: u64, data: u32) {
    let info = SigInfo {
        signo: libc::SIGSYS,
        code: SYS_SECCOMP,
        errno: data as i32,
        addr: task.regs.rip,
        status: nr as u32 as i32 as i64,
        value: AUDIT_ARCH_X86_64 as u64,
        ..Default::default()
    };
    if !task.takes_sync_signal(libc::SIGSYS as u32) {
        kill(task, libc::SIGSYS, true);
        return;
    }
    if let Ok(mut q) = task.handle.pending.lock() {
        let _ = q.push(info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbpf::op::*;

    fn ret(v: u32) -> Program {
        Program::Bpf(vec![Insn::stmt(RET | K, v)])
    }

    #[test]
    fn precedence_is_linux_order() {
        let data = seccomp_data(39, 0x1000, &[0; 6]);
        let mut chain = None;
        for r in [RET_ALLOW, RET_LOG, RET_ERRNO | 3, RET_TRACE, RET_TRAP | 7] {
            chain = Some(Filter::attach(ret(r), false, chain).unwrap());
        }
        let f = chain.clone().unwrap();
        assert_eq!(f.run(&data).0, RET_TRAP | 7);
        assert_eq!(f.count, 5);
        let f = Filter::attach(ret(RET_KILL_THREAD), false, chain.clone()).unwrap();
        assert_eq!(f.run(&data).0, RET_KILL_THREAD);
        let f = Filter::attach(ret(RET_KILL_PROCESS), false, Some(f)).unwrap();
        assert_eq!(f.run(&data).0, RET_KILL_PROCESS);
        // Equal actions: the newest filter's data wins.
        let a = Filter::attach(ret(RET_ERRNO | 1), true, None).unwrap();
        let b = Filter::attach(ret(RET_ERRNO | 2), false, Some(a.clone())).unwrap();
        assert_eq!(b.run(&data), (RET_ERRNO | 2, false));
        assert!(a.is_ancestor_of(&Some(b.clone())));
        assert!(!b.is_ancestor_of(&Some(a)));
    }

    #[test]
    fn path_length_is_bounded() {
        let big = || Program::Bpf(vec![Insn::stmt(RET | K, RET_ALLOW); cbpf::MAX_INSNS]);
        let mut chain = None;
        for _ in 0..7 {
            chain = Some(Filter::attach(big(), false, chain).unwrap());
        }
        // 8 * (4096 + 4) > 32768.
        assert_eq!(
            Filter::attach(big(), false, chain).err(),
            Some(crate::errno::Errno::ENOMEM)
        );
    }

    #[test]
    fn data_layout() {
        let d = seccomp_data(0x1_0000_0027, 0xdead_beef, &[1, 2, 3, 4, 5, u64::MAX]);
        assert_eq!(&d[0..4], &39u32.to_le_bytes());
        assert_eq!(&d[4..8], &AUDIT_ARCH_X86_64.to_le_bytes());
        assert_eq!(&d[8..16], &0xdead_beefu64.to_le_bytes());
        assert_eq!(&d[56..64], &u64::MAX.to_le_bytes());
    }
}
