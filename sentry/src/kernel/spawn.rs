//! Starting tasks: the container's first process (from a config) and every thread
//! or process made by `clone`, each on its own sentry host thread.

use std::sync::{Arc, Mutex};

use crate::errno::{Errno, SysResult};
use crate::kernel::creds::Credentials;
use crate::kernel::exec::{self, ExecRequest};
use crate::kernel::limits::Limits;
use crate::kernel::process::{ThreadGroup, ThreadHandle};
use crate::kernel::signals::SignalActions;
use crate::kernel::task::{TaskInit, VforkDone};
use crate::kernel::{ExitStatus, Kernel, Task};
use crate::mm::MemoryManager;
use crate::platform::{PendingContext, Regs};
use crate::vfs::{FdTable, FsContext};

/// A new process started from outside the container (init, or `exec` into a running
/// sandbox).
pub struct ProcessSpec {
    /// argv.
    pub argv: Vec<Vec<u8>>,
    /// envp.
    pub envp: Vec<Vec<u8>>,
    /// Filesystem context (cwd already resolved).
    pub fs: FsContext,
    /// Identity.
    pub creds: Credentials,
    /// Limits.
    pub limits: Limits,
    /// Open files (stdio).
    pub fds: FdTable,
    /// Parent process (0 for init).
    pub parent: i32,
    /// `oom_score_adj`, as a privileged runtime set it before the exec.
    pub oom_score_adj: i32,
    /// Runs on the new task's thread after the image is loaded and before its first
    /// instruction; `false` abandons the process (OCI create without start).
    pub gate: Option<Box<dyn FnOnce() -> bool + Send>>,
    /// The container's seccomp filter (`linux.seccomp`), installed before the first
    /// instruction.
    pub seccomp: Option<Arc<crate::kernel::seccomp::Filter>>,
}

/// Why a process could not start.
#[derive(Debug)]
pub enum StartError {
    /// The program was not found on PATH or does not exist (a shell's 127).
    NotFound(String),
    /// The program exists but cannot be executed (a shell's 126).
    NotExecutable(String),
    /// Anything else in the sandbox set-up.
    Setup(String),
}

/// Registers a new process with one thread and returns both.
#[allow(clippy::too_many_arguments)]
fn register_process(
    kernel: &Kernel,
    tgid: i32,
    parent: i32,
    pgid: i32,
    sid: i32,
    limits: Limits,
    actions: SignalActions,
    pid_ns: Arc<crate::kernel::ns::PidNs>,
) -> SysResult<(Arc<ThreadGroup>, Arc<ThreadHandle>)> {
    let tg = ThreadGroup::new(tgid, parent, pgid, sid, limits, actions, pid_ns);
    let th = ThreadHandle::new(tgid);
    tg.state()?.threads.insert(tgid, th.clone());
    let mut reg = kernel.registry()?;
    reg.groups.insert(tgid, tg.clone());
    reg.threads.insert(tgid, (th.clone(), tg.clone()));
    if let Some(p) = reg.group(parent) {
        p.state()?.children.insert(tgid);
    }
    Ok((tg, th))
}

/// Starts a process from `spec` on a new host thread; returns its pid once its image
/// is loaded (so a missing program is reported to the caller).
pub fn start_process(kernel: &Arc<Kernel>, spec: ProcessSpec) -> Result<i32, StartError> {
    let tgid = kernel
        .alloc_tid()
        .map_err(|e| StartError::Setup(format!("pid allocation: {e}")))?;
    let argv0 =
        String::from_utf8_lossy(spec.argv.first().map(|a| a.as_slice()).unwrap_or(b"")).to_string();
    let (tx, rx) = std::sync::mpsc::channel::<Result<i32, StartError>>();
    let k = kernel.clone();
    kernel.thread_started();
    let spawned = std::thread::Builder::new()
        .name(format!("task-{tgid}"))
        .spawn(move || {
            let ProcessSpec {
                argv,
                envp,
                fs,
                creds,
                limits,
                fds,
                parent,
                oom_score_adj,
                gate,
                seccomp,
            } = spec;
            let path = match exec::lookup_path(
                &fs,
                &envp,
                argv.first().map(|a| a.as_slice()).unwrap_or(b""),
            ) {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Err(StartError::NotFound(format!("{argv0}: {e}"))));
                    k.thread_exited();
                    return;
                }
            };
            let stack_limit = limits.soft(libc::RLIMIT_STACK);
            let image = match exec::load(
                &k,
                &fs,
                &creds,
                stack_limit,
                ExecRequest { path, argv, envp },
            ) {
                Ok(i) => i,
                Err(e) => {
                    let err = match e {
                        Errno::ENOENT | Errno::ENOTDIR => {
                            StartError::NotFound(format!("{argv0}: {e}"))
                        }
                        Errno::EACCES | Errno::ENOEXEC | Errno::EISDIR => {
                            StartError::NotExecutable(format!("cannot execute {argv0}: {e}"))
                        }
                        _ => StartError::Setup(format!("cannot execute {argv0}: {e}")),
                    };
                    let _ = tx.send(Err(err));
                    k.thread_exited();
                    return;
                }
            };
            let mut creds = creds;
            creds.apply_exec(image.ids.0, image.ids.1);
            let ctx = match k.platform.new_context(image.mm.space()) {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(StartError::Setup(format!(
                        "platform: cannot create the first thread: {e}"
                    ))));
                    k.thread_exited();
                    return;
                }
            };
            let (sid, pgid) = if parent == 0 {
                (tgid, tgid)
            } else {
                match k
                    .registry()
                    .ok()
                    .and_then(|r| r.group(parent))
                    .and_then(|g| g.state().ok().map(|s| (s.sid, s.pgid)))
                {
                    Some(x) => x,
                    None => (tgid, tgid),
                }
            };
            let (tg, handle) = match register_process(
                &k,
                tgid,
                parent,
                pgid,
                sid,
                limits,
                SignalActions::default(),
                k.root_ns.pid_children.clone(),
            ) {
                Ok(x) => x,
                Err(e) => {
                    let _ = tx.send(Err(StartError::Setup(format!("process registration: {e}"))));
                    k.thread_exited();
                    return;
                }
            };
            if let Some(f) = seccomp {
                crate::kernel::seccomp::install_spec_filter(&handle.seccomp, f);
            }
            let comm = comm_of(&image.exe);
            if let Ok(mut st) = tg.state() {
                st.comm = comm.clone();
                st.uids = (creds.uid, creds.suid);
                st.oom_score_adj = (oom_score_adj, oom_score_adj);
            }
            let task = Task::new(
                k.clone(),
                TaskInit {
                    regs: image.regs,
                    ctx,
                    mm: Arc::new(Mutex::new(image.mm)),
                    fds: Arc::new(Mutex::new(fds)),
                    fs,
                    ns: Arc::new(k.root_ns.clone()),
                    fs_shared: None,
                    creds,
                    handle,
                    tg,
                    exe: image.exe,
                    comm,
                    mask: 0,
                    clear_child_tid: 0,
                    vfork_done: None,
                },
            );
            let _ = tx.send(Ok(tgid));
            if let Some(gate) = gate {
                if !gate() {
                    task.abandon();
                    return;
                }
            }
            task.run();
        });
    if let Err(e) = spawned {
        kernel.thread_exited();
        return Err(StartError::Setup(format!(
            "cannot start a task thread: {e}"
        )));
    }
    rx.recv().unwrap_or_else(|_| {
        Err(StartError::Setup(
            "the task thread ended before starting".into(),
        ))
    })
}

/// Waits until the container's init has exited and every task thread has ended, and
/// returns init's status.
pub fn wait_for_init(kernel: &Arc<Kernel>) -> ExitStatus {
    let w = crate::kernel::wait::Waker::new();
    let _reg = kernel.lifecycle.register(&w);
    let r = crate::kernel::wait::block(
        &w,
        None,
        || false,
        || {
            Ok(match kernel.init_status() {
                Some(st) if kernel.live_threads() == 0 => Some(st),
                _ => None,
            })
        },
    );
    match r {
        Ok(Ok(st)) => st,
        _ => ExitStatus::Signaled {
            signo: libc::SIGKILL,
            core: false,
        },
    }
}

/// The `comm` of an executable path: its base name, at most 15 bytes.
pub fn comm_of(exe: &[u8]) -> Vec<u8> {
    let base = exe.rsplit(|&b| b == b'/').next().unwrap_or(exe);
    base[..base.len().min(15)].to_vec()
}

/// Everything a clone child needs, built by the parent's thread.
pub struct CloneChild {
    /// The child's pending platform context.
    pub ctx: Box<dyn PendingContext>,
    /// Its registers.
    pub regs: Regs,
    /// Its memory (shared with the parent for CLONE_VM).
    pub mm: Arc<Mutex<MemoryManager>>,
    /// Its fd table (shared for CLONE_FILES).
    pub fds: Arc<Mutex<FdTable>>,
    /// Its filesystem context.
    pub fs: FsContext,
    /// Namespaces (shared with the parent unless `CLONE_NEW*` replaced some).
    pub ns: Arc<crate::kernel::ns::NsSet>,
    /// Shared with the parent (CLONE_FS).
    pub fs_shared: Option<Arc<Mutex<FsContext>>>,
    /// Its identity.
    pub creds: Credentials,
    /// Its thread handle.
    pub handle: Arc<ThreadHandle>,
    /// Its process (the parent's for CLONE_THREAD).
    pub tg: Arc<ThreadGroup>,
    /// Executable path.
    pub exe: Vec<u8>,
    /// comm.
    pub comm: Vec<u8>,
    /// Signal mask.
    pub mask: u64,
    /// CLONE_CHILD_CLEARTID.
    pub clear_child_tid: u64,
    /// vfork completion.
    pub vfork_done: Option<Arc<VforkDone>>,
    /// Whether its (new) address space must get its time namespace's vDSO page.
    pub join_time: bool,
}

/// Starts a clone child on a new host thread.
pub fn start_clone(kernel: &Arc<Kernel>, child: CloneChild) -> SysResult<()> {
    let k = kernel.clone();
    let tid = child.handle.tid();
    kernel.thread_started();
    let r = std::thread::Builder::new()
        .name(format!("task-{tid}"))
        .spawn(move || {
            let CloneChild {
                ctx,
                regs,
                mm,
                fds,
                fs,
                ns,
                fs_shared,
                creds,
                handle,
                tg,
                exe,
                comm,
                mask,
                clear_child_tid,
                vfork_done,
                join_time,
            } = child;
            let adopted = ctx.adopt().and_then(|c| {
                if join_time {
                    let mut m = mm.lock().map_err(|_| Errno::EIO)?;
                    let vdso = k.vdso().map(|v| &**v);
                    crate::kernel::vdso::join_time_ns(vdso, &mut m, &ns.time)?;
                }
                Ok(c)
            });
            let ctx = match adopted {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(tid, "cannot adopt the new thread's context: {e}");
                    // Leave no half-made thread: it exits as if killed.
                    unregister_clone(&k, &tg, &handle, true);
                    if let Some(v) = vfork_done {
                        v.release();
                    }
                    crate::kernel::process::kill_group(
                        &tg,
                        ExitStatus::Signaled {
                            signo: libc::SIGKILL,
                            core: false,
                        },
                    );
                    k.thread_exited();
                    return;
                }
            };
            let task = Task::new(
                k.clone(),
                TaskInit {
                    regs,
                    ctx,
                    mm,
                    fds,
                    fs,
                    ns,
                    fs_shared,
                    creds,
                    handle,
                    tg,
                    exe,
                    comm,
                    mask,
                    clear_child_tid,
                    vfork_done,
                },
            );
            task.run();
        });
    if let Err(e) = r {
        kernel.thread_exited();
        tracing::error!(tid, "cannot start a task thread: {e}");
        return Err(Errno::EAGAIN);
    }
    Ok(())
}

/// Registers a new thread `tid` in `tg`.
pub fn register_thread(
    kernel: &Kernel,
    tg: &Arc<ThreadGroup>,
    tid: i32,
) -> SysResult<Arc<ThreadHandle>> {
    let th = ThreadHandle::new(tid);
    let exiting = {
        let mut st = tg.state()?;
        st.threads.insert(tid, th.clone());
        st.group_exit.is_some() || st.exec_by.is_some()
    };
    // A thread made while its process is already exiting (an exit_group or a
    // SIGKILL that collected the threads before this one was in the list) dies at
    // once, as Linux's copy_process refuses a thread to a group that is exiting;
    // otherwise it runs on alone and the process never ends (seen with Go, whose
    // runtime makes threads while main returns). An exec ending the other threads is
    // the same: it waits until it is the only one.
    if exiting {
        th.kill();
    }
    kernel
        .registry()?
        .threads
        .insert(tid, (th.clone(), tg.clone()));
    Ok(th)
}

/// Undoes [`register_thread`] or [`register_child_process`] for a clone that failed
/// before its task ran: the thread leaves its group's list (a listed thread that never
/// runs would keep the process from ever ending) and the kernel's table; a new process
/// also leaves the process table and its parent's children.
pub fn unregister_clone(
    kernel: &Kernel,
    tg: &Arc<ThreadGroup>,
    th: &Arc<ThreadHandle>,
    thread: bool,
) {
    let tid = th.tid();
    if let Ok(mut st) = tg.state() {
        st.threads.remove(&tid);
    }
    let Ok(mut reg) = kernel.registry() else {
        return;
    };
    reg.threads.remove(&tid);
    tg.pid_ns.release(tid);
    if !thread {
        reg.groups.remove(&tg.tgid);
        let parent = tg.state().map(|st| st.parent).ok();
        if let Some(p) = parent.and_then(|p| reg.group(p)) {
            if let Ok(mut ps) = p.state() {
                ps.children.remove(&tg.tgid);
            }
        }
    }
}

/// Registers a new child process of `parent` with one thread `tid`, in pid
/// namespace `pid_ns` (which has handed it its ids there).
pub fn register_child_process(
    kernel: &Kernel,
    parent: &Arc<ThreadGroup>,
    tid: i32,
    exit_signal: i32,
    pid_ns: Arc<crate::kernel::ns::PidNs>,
) -> SysResult<(Arc<ThreadGroup>, Arc<ThreadHandle>)> {
    let (pgid, sid, comm, uids, oom) = {
        let st = parent.state()?;
        (st.pgid, st.sid, st.comm.clone(), st.uids, st.oom_score_adj)
    };
    let limits = parent.limits.lock().map_err(|_| Errno::EIO)?.clone();
    let actions = parent.actions()?.clone();
    let (tg, th) = register_process(kernel, tid, parent.tgid, pgid, sid, limits, actions, pid_ns)?;
    {
        let mut st = tg.state()?;
        st.exit_signal = exit_signal;
        st.comm = comm;
        st.uids = uids;
        st.oom_score_adj = oom;
    }
    Ok((tg, th))
}
