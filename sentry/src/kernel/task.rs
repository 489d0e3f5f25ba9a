//! A task: one application thread, driven by one sentry host thread.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::Credentials;
use crate::kernel::limits::Limits;
use crate::kernel::signals::SignalState;
use crate::kernel::wait::Waker;
use crate::kernel::Kernel;
use crate::mm::MemoryManager;
use crate::platform::{AddressSpace, Context, Event, Regs};
use crate::syscalls;
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

/// One application thread.
pub struct Task {
    /// The sandbox's kernel.
    pub kernel: Arc<Kernel>,
    /// Thread id in the container's pid namespace.
    pub tid: i32,
    /// Thread group (process) id.
    pub tgid: i32,
    /// Parent process id (0 for the container's init).
    pub ppid: i32,
    /// Registers at the last trap; written back on the next switch.
    pub regs: Regs,
    ctx: Box<dyn Context>,
    space: Arc<dyn AddressSpace>,
    mm: Arc<Mutex<MemoryManager>>,
    /// Open files.
    pub fds: Arc<Mutex<FdTable>>,
    /// Root, cwd, umask.
    pub fs: FsContext,
    /// Identity.
    pub creds: Credentials,
    /// Resource limits.
    pub limits: Arc<Mutex<Limits>>,
    /// Dispositions and mask.
    pub signals: SignalState,
    /// Path of the running executable, as exec was given it (for /proc/self/exe).
    pub exe: Vec<u8>,
    /// `comm`: the executable's base name, at most 15 bytes.
    pub comm: Vec<u8>,
    /// `set_tid_address`.
    pub clear_child_tid: u64,
    /// `set_robust_list` head and length.
    pub robust_list: (u64, u64),
    /// Set when the task must stop running.
    pub exit: Option<ExitStatus>,
    /// Wakes this task's sentry thread out of a blocking wait.
    pub waker: Arc<Waker>,
}

/// What a new task starts with.
pub struct TaskInit {
    /// Thread id.
    pub tid: i32,
    /// Parent process id.
    pub ppid: i32,
    /// Initial registers.
    pub regs: Regs,
    /// The platform context, created on the thread that will drive it.
    pub ctx: Box<dyn Context>,
    /// The address space's bookkeeping.
    pub mm: MemoryManager,
    /// Open files.
    pub fds: FdTable,
    /// Root and cwd.
    pub fs: FsContext,
    /// Identity.
    pub creds: Credentials,
    /// Limits.
    pub limits: Limits,
    /// Executable path.
    pub exe: Vec<u8>,
}

impl Task {
    /// Builds a task (its first thread: tgid = tid).
    pub fn new(kernel: Arc<Kernel>, init: TaskInit) -> Task {
        let space = init.mm.space().clone();
        let comm = comm_of(&init.exe);
        Task {
            kernel,
            tid: init.tid,
            tgid: init.tid,
            ppid: init.ppid,
            regs: init.regs,
            ctx: init.ctx,
            space,
            mm: Arc::new(Mutex::new(init.mm)),
            fds: Arc::new(Mutex::new(init.fds)),
            fs: init.fs,
            creds: init.creds,
            limits: Arc::new(Mutex::new(init.limits)),
            signals: SignalState::default(),
            exe: init.exe,
            comm,
            clear_child_tid: 0,
            robust_list: (0, 0),
            exit: None,
            waker: Waker::new(),
        }
    }

    /// The application's memory, for copying syscall arguments in and out.
    pub fn mem(&self) -> &dyn AddressSpace {
        &*self.space
    }

    /// The memory manager (VMAs, brk).
    pub fn mm(&self) -> SysResult<MutexGuard<'_, MemoryManager>> {
        self.mm.lock().map_err(|_| Errno::EIO)
    }

    /// The fd table.
    pub fn fds(&self) -> SysResult<MutexGuard<'_, FdTable>> {
        self.fds.lock().map_err(|_| Errno::EIO)
    }

    /// The limits.
    pub fn limits(&self) -> SysResult<MutexGuard<'_, Limits>> {
        self.limits.lock().map_err(|_| Errno::EIO)
    }

    /// An opaque id of the task's address space (futex keys).
    pub fn space_id(&self) -> usize {
        Arc::as_ptr(&self.space) as *const () as usize
    }

    /// True if a signal is pending that would interrupt a blocking call. Signal
    /// delivery arrives with the processes work; until then nothing is ever pending.
    pub fn signal_pending(&self) -> bool {
        false
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
            || Ok((file.imp().readiness() & stop != 0).then_some(())),
        );
        match r {
            Ok(res) => res,
            Err(i) => Err(crate::kernel::wait::restart_errno(i)),
        }
    }

    /// Sends `sig` to this task itself, as the kernel does for SIGPIPE or SIGXFSZ.
    pub fn raise_signal(&mut self, sig: i32) {
        crate::syscalls::signal::raise(self, sig as u32);
    }

    /// Runs the task until it exits: switch to the app, handle what stopped it,
    /// repeat.
    pub fn run(&mut self) -> ExitStatus {
        loop {
            if let Some(st) = self.exit {
                return st;
            }
            let event = match self.ctx.switch(&mut self.regs) {
                Ok(ev) => ev,
                Err(e) => {
                    // The platform lost the thread (the stub died or was killed from
                    // outside): the task cannot go on, as after a SIGKILL.
                    tracing::error!(
                        tid = self.tid,
                        "platform switch failed: {e}; killing the task"
                    );
                    return ExitStatus::Signaled {
                        signo: libc::SIGKILL,
                        core: false,
                    };
                }
            };
            match event {
                Event::Syscall => self.handle_syscall(),
                Event::Fault { signo, code, addr } => self.handle_fault(signo, code, addr),
                Event::Interrupted => {}
            }
        }
    }

    fn handle_syscall(&mut self) {
        let nr = self.regs.orig_rax;
        let args = [
            self.regs.rdi,
            self.regs.rsi,
            self.regs.rdx,
            self.regs.r10,
            self.regs.r8,
            self.regs.r9,
        ];
        let result = syscalls::dispatch(self, nr, args);
        match result {
            Err(e) if e.is_restart() => {
                // No signal interrupted us (delivery comes later), so restart the
                // call transparently as Linux does: back up over the 2-byte
                // `syscall` instruction with the number restored.
                self.regs.rax = self.regs.orig_rax;
                self.regs.rip -= 2;
            }
            Err(e) => self.regs.rax = e.as_return(),
            Ok(v) => self.regs.rax = v,
        }
    }

    fn handle_fault(&mut self, signo: i32, code: i32, addr: u64) {
        // Handlers for synchronous signals arrive with signal delivery; until then a
        // fault takes its default action, which for all of these is to dump core.
        tracing::info!(
            tid = self.tid,
            signo,
            code,
            addr = format_args!("{addr:#x}"),
            rip = format_args!("{:#x}", self.regs.rip),
            "fatal fault"
        );
        self.exit = Some(ExitStatus::Signaled { signo, core: true });
    }
}

fn comm_of(exe: &[u8]) -> Vec<u8> {
    let base = exe.rsplit(|&b| b == b'/').next().unwrap_or(exe);
    base[..base.len().min(15)].to_vec()
}
