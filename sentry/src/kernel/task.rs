//! A task: one application thread, driven by one sentry host thread. The loop is
//! switch -> handle the event (syscall, fault) -> deliver pending signals -> switch.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::Credentials;
use crate::kernel::limits::Limits;
use crate::kernel::process::{self, ThreadGroup, ThreadHandle};
use crate::kernel::signals::{
    self, bit, default_action, AltStack, DefaultAction, SigInfo, UNBLOCKABLE,
};
use crate::kernel::wait::{WaitQueue, Waker};
use crate::kernel::{sigframe, Kernel};
use crate::mm::MemoryManager;
use crate::platform::{AddressSpace, Context, Event, Regs};
use crate::vfs::{FdTable, FsContext};

/// How a task (and with it, for now, its process) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit`/`exit_group` with this code.
    Exited(i32),
    /// Killed by this signal (`core` if a core dump would have been written).
    Signaled {
        /// Signal number.
        signo: i32,
        /// The default action dumps core.
        core: bool,
    },
}

/// A vfork parent waits on this until the child execs or exits.
pub struct VforkDone {
    done: Mutex<bool>,
    queue: WaitQueue,
}

impl VforkDone {
    /// Not yet released.
    pub fn new() -> Arc<VforkDone> {
        Arc::new(VforkDone {
            done: Mutex::new(false),
            queue: WaitQueue::new(),
        })
    }

    /// Releases the parent.
    pub fn release(&self) {
        if let Ok(mut d) = self.done.lock() {
            *d = true;
        }
        self.queue.notify_all();
    }

    /// True once released.
    pub fn is_done(&self) -> bool {
        self.done.lock().map(|d| *d).unwrap_or(true)
    }

    /// The queue to wait on.
    pub fn queue(&self) -> &WaitQueue {
        &self.queue
    }
}

/// One application thread.
pub struct Task {
    /// The sandbox's kernel.
    pub kernel: Arc<Kernel>,
    /// Thread id in the container's pid namespace.
    pub tid: i32,
    /// Thread group (process) id.
    pub tgid: i32,
    /// Registers at the last trap; written back on the next switch.
    pub regs: Regs,
    pub(crate) ctx: Box<dyn Context>,
    space: Arc<dyn AddressSpace>,
    mm: Arc<Mutex<MemoryManager>>,
    /// Open files.
    pub fds: Arc<Mutex<FdTable>>,
    /// Root, cwd, umask.
    pub fs: FsContext,
    /// The namespaces the task is in.
    pub ns: Arc<crate::kernel::ns::NsSet>,
    /// The filesystem context shared with CLONE_FS siblings, if any: refreshed into
    /// `fs` at each syscall and written back by the calls that change it.
    pub fs_shared: Option<Arc<Mutex<FsContext>>>,
    /// Identity.
    pub creds: Credentials,
    /// Resource limits (shared by the process's threads).
    pub limits: Arc<Mutex<Limits>>,
    /// This thread as others see it.
    pub handle: Arc<ThreadHandle>,
    /// The process.
    pub tg: Arc<ThreadGroup>,
    /// The alternate signal stack.
    pub alt_stack: AltStack,
    /// The mask to restore after a handler that rt_sigsuspend/ppoll let run.
    pub saved_mask: Option<u64>,
    /// Path of the running executable (for /proc/self/exe).
    pub exe: Vec<u8>,
    /// `set_tid_address` / CLONE_CHILD_CLEARTID.
    pub clear_child_tid: u64,
    /// `set_robust_list` head and length.
    pub robust_list: (u64, u64),
    /// Set when the task must stop running.
    pub exit: Option<ExitStatus>,
    /// Wakes this task's sentry thread out of a blocking wait.
    pub waker: Arc<Waker>,
    /// Released when this task execs or exits (vfork children).
    pub vfork_done: Option<Arc<VforkDone>>,
    /// `PR_SET_PDEATHSIG`.
    pub pdeath_signal: i32,
    /// A restart errno from the last syscall, resolved at signal delivery.
    restart: Option<Errno>,
    /// The `rseq(2)` registration.
    pub rseq: Option<crate::kernel::rseq::Rseq>,
}

/// What a new task starts with.
pub struct TaskInit {
    /// Registers.
    pub regs: Regs,
    /// The platform context, created (or adopted) on the thread that will drive it.
    pub ctx: Box<dyn Context>,
    /// The address space's bookkeeping (shared by CLONE_VM tasks).
    pub mm: Arc<Mutex<MemoryManager>>,
    /// Open files (shared by CLONE_FILES tasks).
    pub fds: Arc<Mutex<FdTable>>,
    /// Root and cwd.
    pub fs: FsContext,
    /// Namespaces.
    pub ns: Arc<crate::kernel::ns::NsSet>,
    /// Shared with CLONE_FS siblings.
    pub fs_shared: Option<Arc<Mutex<FsContext>>>,
    /// Identity.
    pub creds: Credentials,
    /// The thread's handle, already registered.
    pub handle: Arc<ThreadHandle>,
    /// Its process, already registered.
    pub tg: Arc<ThreadGroup>,
    /// Executable path.
    pub exe: Vec<u8>,
    /// `comm`.
    pub comm: Vec<u8>,
    /// Signal mask.
    pub mask: u64,
    /// CLONE_CHILD_CLEARTID address.
    pub clear_child_tid: u64,
    /// vfork completion to signal.
    pub vfork_done: Option<Arc<VforkDone>>,
}

impl Task {
    /// Builds a task on the thread that will run it.
    pub fn new(kernel: Arc<Kernel>, init: TaskInit) -> Task {
        let space = init
            .mm
            .lock()
            .map(|m| m.space().clone())
            .unwrap_or_else(|p| p.into_inner().space().clone());
        let tid = init.handle.tid();
        if tid == init.tg.tgid {
            // A process's first task (spawn, fork, vfork): the process ends with the
            // host process behind its address space.
            kill_group_on_death(&space, &init.tg, &kernel);
        }
        init.handle
            .mask
            .store(init.mask & !UNBLOCKABLE, Ordering::Release);
        init.handle.waker.set_context(init.ctx.interrupter());
        let rseq = init
            .handle
            .rseq_inherited
            .lock()
            .ok()
            .and_then(|mut r| r.take());
        Task {
            kernel,
            tid,
            tgid: init.tg.tgid,
            regs: init.regs,
            ctx: init.ctx,
            space,
            mm: init.mm,
            fds: init.fds,
            fs: init.fs,
            ns: init.ns,
            fs_shared: init.fs_shared,
            creds: init.creds,
            limits: init.tg.limits.clone(),
            waker: init.handle.waker.clone(),
            handle: {
                init.handle.set_comm(&init.comm);
                init.handle
            },
            tg: init.tg,
            alt_stack: AltStack::default(),
            saved_mask: None,
            exe: init.exe,
            clear_child_tid: init.clear_child_tid,
            robust_list: (0, 0),
            exit: None,
            vfork_done: init.vfork_done,
            pdeath_signal: 0,
            restart: None,
            rseq,
        }
    }

    /// The application's memory, for copying syscall arguments in and out.
    pub fn mem(&self) -> &dyn AddressSpace {
        &*self.space
    }

    /// The address space, shared.
    pub fn space(&self) -> &Arc<dyn AddressSpace> {
        &self.space
    }

    /// The memory manager (VMAs, brk).
    pub fn mm(&self) -> SysResult<MutexGuard<'_, MemoryManager>> {
        self.mm.lock().map_err(|_| Errno::EIO)
    }

    /// The memory manager, shared (for CLONE_VM).
    pub fn mm_shared(&self) -> &Arc<Mutex<MemoryManager>> {
        &self.mm
    }

    /// Replaces the address space and context (exec).
    pub fn replace_image(&mut self, mm: MemoryManager, ctx: Box<dyn Context>) {
        self.space = mm.space().clone();
        kill_group_on_death(&self.space, &self.tg, &self.kernel);
        self.mm = Arc::new(Mutex::new(mm));
        self.handle.waker.set_context(ctx.interrupter());
        self.ctx = ctx;
        self.watch_cpu_limit();
        if let Ok(mut st) = self.tg.state() {
            st.membarrier = 0;
        }
    }

    /// Arms (or removes) the RLIMIT_CPU watch of this process from its current
    /// limit, on the CPU clock of its current image (at start, exec and setrlimit).
    pub fn watch_cpu_limit(&self) {
        let Ok(l) = self.limits().and_then(|l| l.get(libc::RLIMIT_CPU)) else {
            return;
        };
        let secs = |v: u64| (v != libc::RLIM_INFINITY).then(|| std::time::Duration::from_secs(v));
        self.kernel.timers.watch_cpu_limit(
            self.tgid,
            crate::kernel::timers::Target::Process(Arc::downgrade(&self.tg)),
            crate::kernel::timers::space_cpu_clock(&self.space, false),
            secs(l.cur),
            secs(l.max),
        );
    }

    /// The fd table.
    pub fn fds(&self) -> SysResult<MutexGuard<'_, FdTable>> {
        self.fds.lock().map_err(|_| Errno::EIO)
    }

    /// The limits.
    pub fn limits(&self) -> SysResult<MutexGuard<'_, Limits>> {
        self.limits.lock().map_err(|_| Errno::EIO)
    }

    /// The parent process id (0 for the container's init).
    pub fn ppid(&self) -> i32 {
        self.tg.state().map(|s| s.parent).unwrap_or(0)
    }

    /// The thread's `comm`.
    pub fn comm(&self) -> Vec<u8> {
        self.handle.comm()
    }

    /// Sandbox id `global` as this task sees it: its id in the task's pid
    /// namespace, 0 for a thread outside it.
    pub fn pid_shown(&self, global: i32) -> i32 {
        self.tg.pid_ns.shown(global)
    }

    /// `clock` as this task reads it (a clock that is not CPU time): the sandbox's
    /// clock moved by the task's time namespace's offset for it.
    pub fn clock_now(&self, clock: i32) -> SysResult<libc::timespec> {
        let ts = self.kernel.clock_now(clock)?;
        let off = self.ns.time.offset_ns(clock);
        if off == 0 {
            return Ok(ts);
        }
        let ns = ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128 + off as i128;
        Ok(libc::timespec {
            tv_sec: ns.div_euclid(1_000_000_000) as i64,
            tv_nsec: ns.rem_euclid(1_000_000_000) as i64,
        })
    }

    /// The offset (ns) this task's time namespace adds to `clock`.
    pub fn clock_offset(&self, clock: i32) -> i64 {
        self.ns.time.offset_ns(clock)
    }

    /// The sandbox id of `local` in this task's pid namespace (ESRCH: none).
    pub fn pid_global(&self, local: i32) -> SysResult<i32> {
        self.tg.pid_ns.global(local).ok_or(Errno::ESRCH)
    }

    /// The blocked signal mask.
    pub fn mask(&self) -> u64 {
        self.handle.mask.load(Ordering::Acquire)
    }

    /// Sets the blocked signal mask (SIGKILL and SIGSTOP can never be blocked).
    pub fn set_mask(&self, mask: u64) {
        self.handle
            .mask
            .store(mask & !UNBLOCKABLE, Ordering::Release);
    }

    /// An opaque id of the task's address space (futex keys).
    pub fn space_id(&self) -> usize {
        Arc::as_ptr(&self.space) as *const () as usize
    }

    /// Pending signals not blocked by `mask`.
    fn deliverable(&self, mask: u64) -> u64 {
        let own = self.handle.pending.lock().map(|q| q.set()).unwrap_or(0);
        let shared = self.tg.pending.lock().map(|q| q.set()).unwrap_or(0);
        (own | shared) & !mask
    }

    /// True once the task must exit (SIGKILL, another thread's exit_group or exec):
    /// long transfers check it between chunks and stop, as Linux's copy loops check
    /// `fatal_signal_pending`, so a kill never waits for gigabytes of copying.
    pub fn fatal_signal_pending(&self) -> bool {
        self.handle.killed.load(Ordering::Acquire)
    }

    /// True if a signal is pending that would interrupt a blocking call, or the task
    /// must exit.
    pub fn signal_pending(&self) -> bool {
        self.handle.killed.load(Ordering::Acquire)
            || self.deliverable(self.mask()) != 0
            || (self.is_traced()
                && self
                    .handle
                    .ptrace
                    .lock()
                    .map(|t| t.interrupt)
                    .unwrap_or(false))
    }

    /// Parks the task until `file` reports any of the `want` poll bits (or an error
    /// or hang-up), or a signal arrives (`ERESTARTSYS`). Used when I/O on a blocking
    /// file returned `EAGAIN`.
    pub fn wait_for_file(&self, file: &crate::vfs::OpenFile, want: u32) -> SysResult<()> {
        let Some(queue) = file.imp().wait_queue() else {
            // A file without a queue never becomes ready by waiting.
            return Err(Errno::EAGAIN);
        };
        let _reg = queue.register(&self.waker);
        let stop = want | (libc::POLLERR | libc::POLLHUP) as u32;
        let r = crate::kernel::wait::block(
            &self.waker,
            None,
            || self.signal_pending(),
            || Ok((file.imp().blocking_readiness() & stop != 0).then_some(())),
        );
        match r {
            Ok(res) => res,
            Err(i) => Err(crate::kernel::wait::restart_errno(i)),
        }
    }

    /// CPU time (user, system) of this task's process: what the host charged to the
    /// stub that runs its code (every thread of the process shares that stub).
    pub fn cpu_usage(&self) -> (std::time::Duration, std::time::Duration) {
        self.space.cpu_time().unwrap_or_default()
    }

    /// Sends `sig` to this task itself, as the kernel does for SIGPIPE or SIGXFSZ.
    pub fn raise_signal(&self, sig: i32) {
        let info = SigInfo::kernel(sig);
        if let Err(e) = process::send_to_thread(&self.handle, &self.tg, info) {
            tracing::debug!(sig, "raised signal not queued: {e}");
        }
    }

    /// Publishes what /proc shows of this process (call after anything it shows
    /// changes: start, exec, chdir, umask, set*id).
    pub fn publish_view(&self) {
        let c = &self.creds;
        if let Ok(mut st) = self.tg.state() {
            let start_ticks = if st.view.exe.is_empty() {
                (self.kernel.boot_time.elapsed().as_millis() / 10) as u64
            } else {
                st.view.start_ticks
            };
            // A change of effective or filesystem ids makes the process
            // non-dumpable (untraceable without CAP_SYS_PTRACE), as Linux's
            // commit_creds does.
            let old = st.view.ids;
            if !st.view.exe.is_empty()
                && (old[1] != c.euid || old[3] != c.fsuid || old[5] != c.egid || old[7] != c.fsgid)
            {
                st.dumpable = false;
            }
            st.view = process::ProcView {
                exe: self.exe.clone(),
                mm: Some(Arc::downgrade(&self.mm)),
                fds: Some(Arc::downgrade(&self.fds)),
                cwd: Some(self.fs.cwd.clone()),
                root: Some(self.fs.root.clone()),
                ns: Some(self.ns.clone()),
                umask: self.fs.umask,
                ids: [
                    c.uid, c.euid, c.suid, c.fsuid, c.gid, c.egid, c.sgid, c.fsgid,
                ],
                groups: c.groups.clone(),
                creds: c.clone(),
                start_ticks,
            };
        }
    }

    /// Ends a task that never ran (OCI create followed by delete): it exits as if
    /// killed, leaving nothing behind.
    pub fn abandon(self) {
        let st = ExitStatus::Signaled {
            signo: libc::SIGKILL,
            core: false,
        };
        process::kill_group(&self.tg, st);
        self.exit_thread(st);
    }

    /// Runs the task until it exits, then tears it down.
    pub fn run(mut self) {
        process::set_current(self.tgid, self.tid);
        if self.tid == self.tgid {
            self.publish_view();
            self.watch_cpu_limit();
        }
        if self.is_traced() {
            // Auto-attached (fork following): stop before the first instruction.
            self.deliver_signals();
        }
        let status = self.run_loop();
        let sigkill = matches!(
            status,
            ExitStatus::Signaled {
                signo: libc::SIGKILL,
                ..
            }
        );
        if self.is_traced() && !sigkill {
            // PTRACE_EVENT_EXIT, also for the threads an exit_group ends; only a
            // SIGKILL (which also ends the stop) goes without.
            let killed = self.handle.killed.swap(false, Ordering::AcqRel);
            self.ptrace_event(
                crate::kernel::ptrace::EVENT_EXIT,
                process::wait_status(status) as u64,
            );
            if killed {
                self.handle.killed.store(true, Ordering::Release);
            }
        }
        self.exit_thread(status);
    }

    fn run_loop(&mut self) -> ExitStatus {
        loop {
            if let Some(st) = self.should_exit() {
                return st;
            }
            let event = match self.ctx.switch(&mut self.regs) {
                Ok(ev) => ev,
                Err(e) => {
                    if let Some(st) = self.should_exit() {
                        return st;
                    }
                    // The platform lost the thread (the stub died or was killed from
                    // outside): the task cannot go on, as after a SIGKILL.
                    tracing::error!(
                        tid = self.tid,
                        "platform switch failed: {e}; killing the task"
                    );
                    return self.end_by_host_kill();
                }
            };
            match event {
                Event::Syscall => {
                    self.consider_patching();
                    self.handle_syscall()
                }
                Event::Fault { signo, code, addr } => self.handle_fault(signo, code, addr),
                // Preempted by the sentry: a critical section in progress aborts.
                Event::Interrupted => self.rseq_fixup(),
            }
            if let Some(st) = self.should_exit() {
                return st;
            }
            self.deliver_signals();
            self.rseq_refresh();
        }
    }

    /// The status to exit with, if the task must stop now.
    fn should_exit(&self) -> Option<ExitStatus> {
        if let Some(st) = self.exit {
            return Some(st);
        }
        if self.handle.killed.load(Ordering::Acquire) {
            let st = self.tg.state().ok().and_then(|s| s.group_exit);
            return Some(st.unwrap_or(ExitStatus::Signaled {
                signo: libc::SIGKILL,
                core: false,
            }));
        }
        None
    }

    /// Syscall patching: the site of the system call just trapped may become a
    /// jump to the platform's trampoline (see `kernel::patch`).
    fn consider_patching(&mut self) {
        if !self.kernel.syscall_patching.load(Ordering::Relaxed)
            || self.space.syscall_trampoline().is_none()
        {
            return;
        }
        let regs = self.regs;
        if let Ok(mut mm) = self.mm() {
            crate::kernel::patch::consider(&mut mm, &regs);
        }
    }

    fn handle_syscall(&mut self) {
        let traced = self.is_traced();
        if traced {
            // As on Linux, rax reads -ENOSYS at the syscall-enter stop.
            self.regs.rax = Errno::ENOSYS.as_return();
            self.ptrace_syscall_stop(true);
            if self.should_exit().is_some() {
                return;
            }
        }
        let nr = self.regs.orig_rax;
        if traced && nr == u64::MAX {
            // The tracer cancelled the call: rax keeps what it set.
            self.restart = None;
            self.ptrace_syscall_stop(false);
            return;
        }
        let old_tid = self.tid;
        let args = [
            self.regs.rdi,
            self.regs.rsi,
            self.regs.rdx,
            self.regs.r10,
            self.regs.r8,
            self.regs.r9,
        ];
        self.restart = None;
        if self.handle.seccomp.is_active() && !crate::kernel::seccomp::admit(self, nr, &args) {
            // The application's own filter stopped the call: a SIGSYS handler may look
            // at the instruction before `si_call_addr`, which must be the `syscall`.
            if let (Some(site), Ok(mut mm)) = (self.regs.rip.checked_sub(7), self.mm()) {
                crate::kernel::patch::restore_site(&mut mm, site);
            }
            return;
        }
        let result = self.kernel.syscalls.dispatch(self, nr, args);
        let is_exec = nr == libc::SYS_execve as u64 || nr == libc::SYS_execveat as u64;
        match result {
            Err(e) if e.is_restart() => {
                self.restart = Some(e);
                self.regs.rax = Errno::EINTR.as_return();
            }
            Err(e) => self.regs.rax = e.as_return(),
            Ok(v) => self.regs.rax = v,
        }
        if self.is_traced() && self.should_exit().is_none() {
            if is_exec && result.is_ok() {
                self.ptrace_exec(old_tid);
            }
            if let Some(e) = self.restart {
                // The tracer sees the restart code at the exit stop, as on Linux.
                self.regs.rax = e.as_return();
                self.ptrace_syscall_stop(false);
                if self.regs.rax == e.as_return() {
                    self.regs.rax = Errno::EINTR.as_return();
                } else {
                    self.restart = None;
                }
            } else {
                self.ptrace_syscall_stop(false);
            }
            if let Some(info) = self.ptrace_step_trap() {
                // A single-stepped `syscall` instruction traps once it returns.
                if let Ok(mut q) = self.handle.pending.lock() {
                    let _ = q.push(info);
                }
            }
        }
    }

    /// Whether synchronous signal `sig` (a fault, a seccomp trap) can be delivered
    /// to a handler: neither blocked nor ignored (an unreadable action table counts
    /// as ignored). Otherwise Linux forces its default action.
    pub fn takes_sync_signal(&self, sig: u32) -> bool {
        let blocked = self.mask() & bit(sig) != 0;
        let ignored = self
            .tg
            .actions()
            .map(|a| {
                a.get(sig)
                    .map(|x| x.handler == signals::SIG_IGN)
                    .unwrap_or(true)
            })
            .unwrap_or(true);
        !blocked && !ignored
    }

    fn handle_fault(&mut self, signo: i32, code: i32, addr: u64) {
        tracing::debug!(
            tid = self.tid,
            signo,
            code,
            addr = format_args!("{addr:#x}"),
            rip = format_args!("{:#x}", self.regs.rip),
            "fault"
        );
        let mut info = SigInfo {
            signo,
            code,
            addr,
            ..Default::default()
        };
        if signo == libc::SIGTRAP && self.is_traced() {
            if let Some(step) = self.ptrace_step_trap() {
                info = step;
            }
        }
        // A synchronous signal that is blocked or ignored cannot be deferred: the
        // instruction would fault again. Linux then forces the default action.
        let sig = signo as u32;
        if !self.takes_sync_signal(sig) {
            self.terminate_by(sig);
            return;
        }
        if let Ok(mut q) = self.handle.pending.lock() {
            let _ = q.push(info);
        }
    }

    /// Ends the task's process as killed from outside (its stub died): SIGKILL,
    /// counted for its container once, by the thread that ends the process.
    fn end_by_host_kill(&mut self) -> ExitStatus {
        let st = ExitStatus::Signaled {
            signo: libc::SIGKILL,
            core: false,
        };
        if process::kill_group(&self.tg, st) {
            self.kernel.note_host_kill(self.tgid);
        }
        st
    }

    fn terminate_by(&mut self, sig: u32) {
        // A copy into the program's memory (a signal frame, the rseq area) fails
        // once its stub has been killed from outside, perhaps before the death
        // watcher has ended the process: that is the kill, not a fault of the
        // program (an own-limit OOM kill read as SIGSEGV otherwise).
        if self.space.gone() {
            self.exit = Some(self.end_by_host_kill());
            return;
        }
        // The sandbox never writes core files, and Linux reports "core dumped" only
        // when one was written (with the default RLIMIT_CORE of 0, never).
        let st = ExitStatus::Signaled {
            signo: sig as i32,
            core: false,
        };
        process::kill_group(&self.tg, st);
        self.exit = Some(st);
    }

    fn next_signal(&self) -> Option<SigInfo> {
        let mask = self.mask();
        if let Some(i) = self
            .handle
            .pending
            .lock()
            .ok()
            .and_then(|mut q| q.take(mask))
        {
            return Some(signals::seen_in(i, &self.tg.pid_ns));
        }
        self.tg
            .pending
            .lock()
            .ok()
            .and_then(|mut q| q.take(mask))
            .map(|i| signals::seen_in(i, &self.tg.pid_ns))
    }

    /// Delivers pending signals and resolves syscall restarts, as Linux does on the
    /// way back to user mode.
    fn deliver_signals(&mut self) {
        let mut handled = false;
        if self.is_traced() {
            self.ptrace_interrupt_stop();
        }
        while let Some(mut info) = self.next_signal() {
            if self.is_traced() && info.signo != libc::SIGKILL {
                // Signal-delivery stop: the tracer may cancel, change or keep it.
                let word = info.signo;
                let Some(sig) =
                    self.ptrace_stop(crate::kernel::ptrace::StopKind::Signal, word, Some(info))
                else {
                    if self.should_exit().is_some() {
                        return;
                    }
                    continue;
                };
                if sig == 0 {
                    continue;
                }
                info = self.ptrace_delivered_info(sig, info);
                if self.mask() & bit(sig as u32) != 0 {
                    // Now blocked: it waits in the queue like any other.
                    if let Ok(mut q) = self.handle.pending.lock() {
                        let _ = q.push(info);
                    }
                    continue;
                }
            }
            let sig = info.signo as u32;
            let act = match self.tg.actions().and_then(|a| a.get(sig)) {
                Ok(a) => a,
                Err(_) => continue,
            };
            if act.handler == signals::SIG_IGN {
                continue;
            }
            if act.handler == signals::SIG_DFL {
                match default_action(sig) {
                    DefaultAction::Ignore | DefaultAction::Continue => continue,
                    DefaultAction::Stop => {
                        self.group_stop(sig);
                        continue;
                    }
                    DefaultAction::Terminate | DefaultAction::Core => {
                        self.terminate_by(sig);
                        return;
                    }
                }
            }
            // A handler: settle the interrupted syscall first, so the frame saves the
            // registers the handler's return must resume with.
            if let Some(e) = self.restart.take() {
                let restart = e == Errno::ERESTARTNOINTR
                    || (e == Errno::ERESTARTSYS && act.flags & signals::SA_RESTART != 0);
                if restart {
                    self.rewind_syscall();
                } else {
                    self.regs.rax = Errno::EINTR.as_return();
                }
            }
            if let Err(e) = self.setup_frame(&info, &act) {
                tracing::info!(
                    tid = self.tid,
                    sig,
                    "cannot build the signal frame ({e}): SIGSEGV"
                );
                self.terminate_by(libc::SIGSEGV as u32);
                return;
            }
            handled = true;
            break;
        }
        if !handled {
            if self.restart.take().is_some() {
                // No handler ran: every restartable call resumes transparently.
                self.rewind_syscall();
            }
            if let Some(m) = self.saved_mask.take() {
                self.set_mask(m);
            }
        }
    }

    fn rewind_syscall(&mut self) {
        self.regs.rax = self.regs.orig_rax;
        self.regs.rip = self.regs.rip.wrapping_sub(2);
    }

    fn setup_frame(&mut self, info: &SigInfo, act: &signals::SigAction) -> SysResult<()> {
        if act.flags & signals::SA_RESTORER == 0 {
            // x86-64 has no vDSO trampoline here; libc always supplies a restorer.
            return Err(Errno::EFAULT);
        }
        // The handler's frame saves where the thread resumes: out of any rseq
        // critical section it was in.
        if let Some(reg) = &self.rseq {
            crate::kernel::rseq::fixup(reg, &*self.space, &mut self.regs.rip)
                .map_err(|_| Errno::EFAULT)?;
        }
        let fp = self.ctx.fp_state()?;
        let old_mask = self.saved_mask.take().unwrap_or(self.mask());
        let frame = sigframe::build(
            &*self.space,
            &self.regs,
            &fp,
            info,
            old_mask,
            &self.alt_stack,
            act.flags & signals::SA_ONSTACK != 0,
            act.restorer,
        )?;
        self.regs.rsp = frame.sp;
        self.regs.rip = act.handler;
        self.regs.rdi = info.signo as u64;
        self.regs.rsi = frame.info;
        self.regs.rdx = frame.ucontext;
        self.regs.rax = 0;
        // The handler starts with a clean direction flag, as the ABI requires.
        self.regs.eflags &= !0x400;
        let sig = info.signo as u32;
        let mut new_mask = old_mask | act.mask;
        if act.flags & signals::SA_NODEFER == 0 {
            new_mask |= bit(sig);
        }
        self.set_mask(new_mask);
        if act.flags & signals::SA_RESETHAND != 0 {
            if let Ok(mut a) = self.tg.actions() {
                let _ = a.set(sig, signals::SigAction::default());
            }
        }
        Ok(())
    }

    /// The CPU `getcpu(2)` and the rseq area report for this thread.
    pub fn cpu(&self) -> u32 {
        crate::sys::host::current_cpu() % self.kernel.ncpus.max(1) as u32
    }

    /// On the way back to the application: the rseq area's CPU fields, if the
    /// thread now runs elsewhere (an area that cannot be written is a SIGSEGV).
    fn rseq_refresh(&mut self) {
        if self.rseq.is_none() {
            return;
        }
        let cpu = self.cpu();
        let Some(reg) = self.rseq.as_mut() else {
            return;
        };
        if crate::kernel::rseq::refresh(reg, &*self.space, cpu).is_err() {
            self.rseq = None;
            self.force_sigsegv("rseq area not writable");
        }
    }

    /// The thread was interrupted: out of its rseq critical section, if in one.
    fn rseq_fixup(&mut self) {
        let Some(reg) = self.rseq else {
            return;
        };
        if crate::kernel::rseq::fixup(&reg, &*self.space, &mut self.regs.rip).is_err() {
            self.rseq = None;
            self.force_sigsegv("bad rseq critical section");
        }
    }

    fn force_sigsegv(&mut self, why: &str) {
        tracing::info!(tid = self.tid, "{why}: SIGSEGV");
        self.terminate_by(libc::SIGSEGV as u32);
    }

    /// `rt_sigreturn`: restores what the frame saved.
    pub fn sigreturn(&mut self) -> SysResult<u64> {
        let fp_len = self.ctx.fp_state().map(|f| f.len()).unwrap_or(0);
        let r = sigframe::restore(&*self.space, self.regs.rsp, &self.regs, fp_len)?;
        if let Some(fp) = r.fp {
            self.ctx.set_fp_state(&fp)?;
        }
        self.regs = r.regs;
        self.set_mask(r.mask);
        Ok(self.regs.rax)
    }

    /// Stops the whole process until SIGCONT (or SIGKILL), telling the parent.
    fn group_stop(&mut self, sig: u32) {
        if let Ok(mut st) = self.tg.state() {
            st.stopped = Some(sig as i32);
            st.unreported = Some((false, sig as i32));
        }
        self.notify_parent_state(crate::kernel::signals::code::CLD_STOPPED, sig as i32);
        if self.is_traced() {
            // A traced thread's group stop is a ptrace-stop the tracer ends.
            self.ptrace_group_stop(sig as i32);
            return;
        }
        let tg = self.tg.clone();
        let _reg = tg.events.register(&self.waker);
        let handle = self.handle.clone();
        let _ = crate::kernel::wait::block(
            &self.waker,
            None,
            || handle.killed.load(Ordering::Acquire),
            || {
                // A tracer that attaches meanwhile takes the stop over.
                let seized = handle.traced.load(Ordering::Acquire)
                    && handle.ptrace.lock().map(|t| t.interrupt).unwrap_or(false);
                Ok((seized || tg.state()?.stopped.is_none()).then_some(()))
            },
        );
        if self.is_traced()
            && self
                .tg
                .state()
                .map(|s| s.stopped.is_some())
                .unwrap_or(false)
        {
            self.ptrace_interrupt_stop();
            return;
        }
        if !self.handle.killed.load(Ordering::Acquire) {
            self.notify_parent_state(crate::kernel::signals::code::CLD_CONTINUED, libc::SIGCONT);
        }
    }

    fn notify_parent_state(&self, code: i32, status: i32) {
        let parent = self.ppid();
        let Some(ptg) = self.kernel.registry().ok().and_then(|r| r.group(parent)) else {
            return;
        };
        ptg.child_events.notify_all();
        let nocldstop = ptg
            .actions()
            .map(|a| {
                a.get(libc::SIGCHLD as u32)
                    .map(|x| x.flags & signals::SA_NOCLDSTOP != 0)
                    .unwrap_or(false)
            })
            .unwrap_or(false);
        if !nocldstop {
            let info = SigInfo {
                signo: libc::SIGCHLD,
                code,
                pid: self.tgid,
                uid: self.creds.uid,
                status: status as i64,
                ..Default::default()
            };
            let _ = process::send_to_group(&ptg, info);
        }
    }

    /// Ends this thread: robust futexes, CHILD_CLEARTID, and, for the last thread,
    /// the process (zombie, reparenting, SIGCHLD).
    fn exit_thread(mut self, status: ExitStatus) {
        self.handle.exiting.store(true, Ordering::Release);
        self.release_futexes();
        if let Some(v) = self.vfork_done.take() {
            v.release();
        }
        let kernel = self.kernel.clone();
        let tg = self.tg.clone();
        let tid = self.tid;
        let creds_uid = self.creds.uid;
        let handle = self.handle.clone();
        // The process's CPU time so far; the last thread's reading is its total.
        let cpu = self.cpu_usage();
        // Release the address space, files and context before anyone can observe the
        // exit, so a reaped process has left nothing behind on the host.
        drop(self);
        let last = match tg.state() {
            Ok(mut st) => {
                st.threads.remove(&tid);
                if st.threads.is_empty() {
                    st.exit_cpu = cpu;
                }
                st.threads.is_empty()
            }
            Err(_) => true,
        };
        if let Ok(mut r) = kernel.registry() {
            r.threads.remove(&tid);
        }
        if tid != tg.tgid {
            // A leader's id stays the process's until it is reaped.
            tg.pid_ns.release(tid);
        }
        let thread_status = tg.state().ok().and_then(|s| s.group_exit).unwrap_or(status);
        crate::kernel::ptrace::tracee_exited(&kernel, &handle, &tg, thread_status);
        tg.events.notify_all();
        if last {
            exit_process(&kernel, &tg, status, creds_uid);
        }
        kernel.thread_exited();
    }

    fn release_futexes(&mut self) {
        if self.clear_child_tid != 0 {
            let addr = self.clear_child_tid;
            if crate::mm::io::write_u32(&*self.space, addr, 0).is_ok() {
                let key = crate::kernel::futex::FutexKey {
                    space: self.space_id(),
                    addr,
                };
                let _ = self
                    .kernel
                    .futexes
                    .wake(key, 1, crate::kernel::futex::BITSET_ANY);
            }
        }
        crate::kernel::futex::release_robust_list(self);
    }
}

/// The last thread of `tg` has gone: make it a zombie, hand its children to a
/// reaper, and tell its parent.
fn exit_process(kernel: &Arc<Kernel>, tg: &Arc<ThreadGroup>, status: ExitStatus, uid: u32) {
    let (parent, children) = match tg.state() {
        Ok(mut st) => {
            let status = st.group_exit.unwrap_or(status);
            st.zombie = Some(status);
            (st.parent, std::mem::take(&mut st.children))
        }
        Err(_) => return,
    };
    let status = tg.state().ok().and_then(|s| s.zombie).unwrap_or(status);
    // pidfd pollers wait on the process's own queue.
    tg.events.notify_all();
    crate::kernel::ptrace::tracer_exited(kernel, tg);
    kernel.timers.remove_process(tg.tgid);
    // Semaphore undos are applied in the IPC namespace the process was in.
    let ipc = tg
        .state()
        .ok()
        .and_then(|s| s.view.ns.as_ref().map(|n| n.ipc.clone()))
        .unwrap_or_else(|| kernel.root_ns.ipc.clone());
    ipc.sem.exit_process(tg.tgid);
    if tg.tgid == 1 {
        // The container's init is gone: every other process goes with it.
        kernel.kill_all_except(1);
    }
    let children = if tg.pid_ns.level > 0 && tg.pid_ns.init() == tg.tgid {
        zap_pid_ns(kernel, tg, children)
    } else {
        children
    };
    // PR_SET_PDEATHSIG: children that asked are told their parent is gone.
    if let Ok(reg) = kernel.registry() {
        for c in &children {
            if let Some(ctg) = reg.group(*c) {
                let threads: Vec<Arc<ThreadHandle>> = ctg
                    .state()
                    .map(|s| s.threads.values().cloned().collect())
                    .unwrap_or_default();
                for t in threads {
                    let sig = t.pdeath_signal.load(Ordering::Acquire);
                    if sig > 0 {
                        let _ = process::send_to_thread(&t, &ctg, SigInfo::kernel(sig));
                    }
                }
            }
        }
    }
    reparent(kernel, tg, parent, children);
    if crate::kernel::ptrace::exit_held_for_tracer(tg) {
        // A tracer that is not the parent sees the exit first; the parent is told
        // when the tracer has waited for it (ptrace::unlink), as on Linux.
        return;
    }
    notify_parent_of_exit(kernel, tg, status, uid);
}

/// Tells the parent of the exited process `tg` (its exit signal, its waiters), or
/// reaps it at once if the parent ignores SIGCHLD.
pub(crate) fn notify_parent_of_exit(
    kernel: &Arc<Kernel>,
    tg: &Arc<ThreadGroup>,
    status: ExitStatus,
    uid: u32,
) {
    let (parent, exit_signal) = match tg.state() {
        Ok(st) => (st.parent, st.exit_signal),
        Err(_) => return,
    };
    let Some(ptg) = kernel.registry().ok().and_then(|r| r.group(parent)) else {
        // No parent in the container (init): nobody reaps it but the kernel itself.
        kernel.init_exited(tg.tgid, status);
        return;
    };
    // A parent that ignores SIGCHLD (or set SA_NOCLDWAIT) never sees zombies,
    // nor does the dead init of a pid namespace (see `zap_pid_ns`).
    let dead_init = ptg.pid_ns.level > 0 && ptg.pid_ns.init() == ptg.tgid && ptg.pid_ns.is_dead();
    let auto_reap = dead_init
        || ptg
            .actions()
            .map(|a| {
                a.get(libc::SIGCHLD as u32)
                    .map(|x| x.handler == signals::SIG_IGN || x.flags & signals::SA_NOCLDWAIT != 0)
                    .unwrap_or(false)
            })
            .unwrap_or(false);
    if auto_reap {
        if let Ok(mut st) = ptg.state() {
            st.children.remove(&tg.tgid);
        }
        if let Ok(mut r) = kernel.registry() {
            r.groups.remove(&tg.tgid);
        }
        tg.pid_ns.release(tg.tgid);
        if dead_init {
            return;
        }
    } else if exit_signal > 0 {
        let (code, st) = match status {
            ExitStatus::Exited(c) => (signals::code::CLD_EXITED, c),
            ExitStatus::Signaled { signo, core } => (
                if core {
                    signals::code::CLD_DUMPED
                } else {
                    signals::code::CLD_KILLED
                },
                signo,
            ),
        };
        let info = SigInfo {
            signo: exit_signal,
            code,
            pid: tg.tgid,
            uid,
            status: st as i64,
            ..Default::default()
        };
        let _ = process::send_to_group(&ptg, info);
    }
    ptg.child_events.notify_all();
    // Threads of the parent blocked in wait4 on another queue see it too.
    ptg.events.notify_all();
}

/// The init of a nested pid namespace has exited (`tg`, whose `children` these
/// are): nothing may enter the namespace any more, every other process in it is
/// SIGKILLed, and its init's children are reaped by the kernel (those still
/// running as they end); returns once none of them runs, with the children left
/// to reparent (none), as Linux's `zap_pid_ns_processes`.
fn zap_pid_ns(
    kernel: &Arc<Kernel>,
    tg: &Arc<ThreadGroup>,
    children: std::collections::BTreeSet<i32>,
) -> std::collections::BTreeSet<i32> {
    let ns = tg.pid_ns.clone();
    ns.set_dead();
    let members = || -> Vec<Arc<ThreadGroup>> {
        kernel
            .registry()
            .map(|r| {
                r.groups
                    .values()
                    .filter(|g| g.tgid != tg.tgid && g.pid_ns.is_within(&ns))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    for g in members() {
        process::kill_group(
            &g,
            ExitStatus::Signaled {
                signo: libc::SIGKILL,
                core: false,
            },
        );
    }
    // Children that are zombies already are reaped here; the others are as they
    // end (their parent is a dead init: `notify_parent_of_exit`).
    if let Ok(mut r) = kernel.registry() {
        for c in &children {
            let zombie = r
                .group(*c)
                .is_some_and(|g| g.state().map(|s| s.zombie.is_some()).unwrap_or(false));
            if zombie {
                if let Some(g) = r.groups.remove(c) {
                    g.pid_ns.release(*c);
                }
            }
        }
    }
    // Wait (bounded: a killed process ends at its next trap) until none runs.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let running = members()
            .iter()
            .any(|g| g.state().map(|s| s.zombie.is_none()).unwrap_or(false));
        if !running {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    Default::default()
}

/// Gives `children` of the exiting `tg` to the nearest subreaper ancestor in its
/// pid namespace or to that namespace's init.
fn reparent(
    kernel: &Arc<Kernel>,
    tg: &Arc<ThreadGroup>,
    parent: i32,
    children: std::collections::BTreeSet<i32>,
) {
    if children.is_empty() {
        return;
    }
    let tgid = tg.tgid;
    let ns = &tg.pid_ns;
    let Ok(reg) = kernel.registry() else { return };
    let mut reaper = ns.init();
    let mut cur = parent;
    while cur > 0 && ns.local(cur).is_some() {
        match reg.group(cur) {
            Some(g) => {
                let (sub, next, alive) = g
                    .state()
                    .map(|s| (s.subreaper, s.parent, s.zombie.is_none()))
                    .unwrap_or((false, 0, false));
                if sub && alive {
                    reaper = cur;
                    break;
                }
                cur = next;
            }
            None => break,
        }
    }
    if reaper == tgid || reaper == 0 {
        reaper = 1;
    }
    let Some(rtg) = reg.group(reaper) else { return };
    if rtg.pid_ns.level > 0 && rtg.pid_ns.init() == reaper && rtg.pid_ns.is_dead() {
        // The namespace's init is gone (`zap_pid_ns`): its new children are reaped
        // by the kernel, the zombies among them now, the others as they end.
        let mut reg = reg;
        for c in &children {
            let zombie = reg
                .group(*c)
                .is_some_and(|g| g.state().map(|s| s.zombie.is_some()).unwrap_or(false));
            if zombie {
                if let Some(g) = reg.groups.remove(c) {
                    g.pid_ns.release(*c);
                }
            } else if let Some(g) = reg.group(*c) {
                if let Ok(mut cs) = g.state() {
                    cs.parent = reaper;
                }
            }
        }
        return;
    }
    let mut any_zombie = false;
    for c in &children {
        if let Some(ctg) = reg.group(*c) {
            if let Ok(mut cs) = ctg.state() {
                cs.parent = reaper;
                any_zombie |= cs.zombie.is_some();
            }
        }
    }
    drop(reg);
    if let Ok(mut rs) = rtg.state() {
        rs.children.extend(children);
    }
    if any_zombie {
        rtg.child_events.notify_all();
    }
}

/// Has the platform end `tg` (as by SIGKILL) as soon as the host process behind
/// `space` is found dead; a death that ends the process (it was not already
/// exiting) was a kill from outside, counted for its container.
fn kill_group_on_death(space: &Arc<dyn AddressSpace>, tg: &Arc<ThreadGroup>, kernel: &Arc<Kernel>) {
    let tg = Arc::downgrade(tg);
    let kernel = Arc::downgrade(kernel);
    space.on_death(Box::new(move || {
        if let Some(tg) = tg.upgrade() {
            let first = process::kill_group(
                &tg,
                ExitStatus::Signaled {
                    signo: libc::SIGKILL,
                    core: false,
                },
            );
            if let (true, Some(k)) = (first, kernel.upgrade()) {
                k.note_host_kill(tg.tgid);
            }
        }
    }));
}
