//! A kernel and tasks with no host process behind them, so that syscall handlers
//! can be unit-tested: the [`FakePlatform`]'s address spaces are
//! [`crate::mm::fake::FakeSpace`] (application memory kept in the sentry) and its
//! contexts never run application code (a switch fails with `ENOSYS`). A test
//! calls a handler directly on a [`task`] and reads the results from its memory.

use std::sync::{Arc, Mutex};

use crate::errno::{Errno, SysResult};
use crate::fs::memfile::MemoryFile;
use crate::fs::tmpfs::Tmpfs;
use crate::kernel::limits::Limits;
use crate::kernel::process::ThreadGroup;
use crate::kernel::signals::SignalActions;
use crate::kernel::task::{Task, TaskInit};
use crate::kernel::Kernel;
use crate::mm::fake::FakeSpace;
use crate::mm::MemoryManager;
use crate::platform::{AddressSpace, Context, Event, Interrupter, Platform, Regs};
use crate::syscalls::Args;
use crate::vfs::{Dentry, FdTable, FsContext, Owner};

/// The top of a fake address space (the platforms' own limit).
const MAX_USER_ADDRESS: u64 = 0x7fff_0000_0000;

/// A platform whose address spaces are in-memory fakes and whose contexts never
/// run anything.
pub struct FakePlatform;

impl Platform for FakePlatform {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn max_user_address(&self) -> u64 {
        MAX_USER_ADDRESS
    }
    fn new_address_space(&self) -> SysResult<Arc<dyn AddressSpace>> {
        Ok(FakeSpace::new())
    }
    fn new_context(&self, _space: &Arc<dyn AddressSpace>) -> SysResult<Box<dyn Context>> {
        Ok(Box::new(FakeContext))
    }
}

/// A context that cannot run application code.
struct FakeContext;

impl Context for FakeContext {
    fn switch(&mut self, _regs: &mut Regs) -> SysResult<Event> {
        Err(Errno::ENOSYS)
    }
    fn fp_state(&mut self) -> SysResult<Vec<u8>> {
        Ok(vec![0; 512])
    }
    fn set_fp_state(&mut self, _state: &[u8]) -> SysResult<()> {
        Ok(())
    }
    fn interrupter(&self) -> Arc<dyn Interrupter> {
        Arc::new(NoInterrupt)
    }
}

/// Nothing to interrupt: a fake task's handler runs on the test's thread.
struct NoInterrupt;

impl Interrupter for NoInterrupt {
    fn interrupt(&self) {}
}

/// A kernel over the fake platform whose root is an empty tmpfs owned by root.
pub fn kernel() -> Arc<Kernel> {
    let mf = MemoryFile::new();
    let root = Tmpfs::new_root(mf, 0o755, Owner { uid: 0, gid: 0 }, 0);
    Kernel::new(
        Arc::new(FakePlatform),
        &crate::syscalls::TABLE,
        Dentry::new_root(root),
        "fake".into(),
        false,
    )
}

/// A new process of `kernel` with one task, running as root at `/` with no open
/// file and an empty address space.
pub fn task(kernel: &Arc<Kernel>) -> Task {
    let tgid = kernel.alloc_tid().expect("a pid");
    let tg = ThreadGroup::new(
        tgid,
        0,
        tgid,
        tgid,
        Limits::default(),
        SignalActions::default(),
        kernel.root_ns.pid_children.clone(),
    );
    let handle = crate::kernel::process::ThreadHandle::new(tgid);
    tg.state()
        .expect("state")
        .threads
        .insert(tgid, handle.clone());
    {
        let mut reg = kernel.registry().expect("registry");
        reg.groups.insert(tgid, tg.clone());
        reg.threads.insert(tgid, (handle.clone(), tg.clone()));
    }
    let platform = &kernel.platform;
    let space = platform.new_address_space().expect("a space");
    let ctx = platform.new_context(&space).expect("a context");
    let mm = MemoryManager::new(
        space,
        platform.min_user_address(),
        MAX_USER_ADDRESS,
        MAX_USER_ADDRESS / 2,
    );
    let root = kernel.root.clone();
    Task::new(
        kernel.clone(),
        TaskInit {
            regs: zeroed_regs(),
            ctx,
            mm: Arc::new(Mutex::new(mm)),
            fds: Arc::new(Mutex::new(FdTable::new())),
            fs: FsContext {
                root: root.clone(),
                cwd: root,
                umask: 0o022,
            },
            ns: Arc::new(kernel.root_ns.clone()),
            fs_shared: None,
            creds: crate::creds::Credentials::new(0, 0, Vec::new()),
            handle,
            tg,
            exe: b"/fake".to_vec(),
            comm: b"fake".to_vec(),
            mask: 0,
            clear_child_tid: 0,
            vfork_done: None,
        },
    )
}

/// Registers with every field zero.
fn zeroed_regs() -> Regs {
    Regs {
        r15: 0,
        r14: 0,
        r13: 0,
        r12: 0,
        rbp: 0,
        rbx: 0,
        r11: 0,
        r10: 0,
        r9: 0,
        r8: 0,
        rax: 0,
        rcx: 0,
        rdx: 0,
        rsi: 0,
        rdi: 0,
        orig_rax: 0,
        rip: 0,
        cs: 0,
        eflags: 0,
        rsp: 0,
        ss: 0,
        fs_base: 0,
        gs_base: 0,
        ds: 0,
        es: 0,
        fs: 0,
        gs: 0,
    }
}

/// Runs syscall `nr` on `task` through the kernel's table, as the task's loop
/// does (without the seccomp, ptrace and signal handling around it).
pub fn call(task: &mut Task, nr: i64, args: Args) -> SysResult<u64> {
    let k = task.kernel.clone();
    k.syscalls.dispatch(task, nr as u64, args)
}
