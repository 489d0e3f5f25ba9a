//! `execve` and `execveat`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::errno::{Errno, SysResult};
use crate::kernel::exec::{self, ExecRequest};
use crate::kernel::{process, spawn, wait, ExitStatus, Task};
use crate::mm::io;
use crate::syscalls::{at_dir, file_arg, path_arg, Args};
use crate::vfs::path::{resolve, Follow};

/// Most argv + envp entries accepted.
const MAX_ARG_ENTRIES: usize = 0x7fff_ffff;
/// Most argv + envp bytes (a quarter of the default 8 MiB stack, as Linux).
const MAX_ARG_BYTES: usize = 2 << 20;

/// Ends every other thread of the caller's process and waits for them (exec's
/// `de_thread`). Fails with `EAGAIN`-like errors only if the process is dying.
fn kill_other_threads(task: &Task) -> SysResult<()> {
    let others: Vec<_> = {
        let mut st = task.tg.state()?;
        let others: Vec<_> = st
            .threads
            .iter()
            .filter(|(t, _)| **t != task.tid)
            .map(|(_, h)| h.clone())
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        // Under the same lock as the list: a sibling's clone that registers its new
        // thread after this sees the mark and kills it (spawn::register_thread).
        st.exec_by = Some(task.tid);
        others
    };
    for h in &others {
        h.kill();
    }
    let tg = task.tg.clone();
    let _reg = tg.events.register(&task.waker);
    let r = wait::block(
        &task.waker,
        None,
        || task.handle.killed.load(Ordering::Acquire),
        || Ok((tg.state()?.threads.len() == 1).then_some(())),
    );
    if let Ok(mut st) = tg.state() {
        st.exec_by = None;
    }
    match r {
        Ok(res) => res,
        Err(_) => Err(Errno::EINTR),
    }
}

fn do_execve(task: &mut Task, path: Vec<u8>, argv_addr: u64, envp_addr: u64) -> SysResult<u64> {
    let argv = io::read_string_array(task.mem(), argv_addr, MAX_ARG_ENTRIES, MAX_ARG_BYTES)?;
    let envp = io::read_string_array(task.mem(), envp_addr, MAX_ARG_ENTRIES, MAX_ARG_BYTES)?;
    // Load first: a missing or bad program leaves the caller untouched.
    let stack_limit = task.limits()?.soft(libc::RLIMIT_STACK);
    let mut image = exec::load(
        &task.kernel,
        &task.fs,
        &task.creds,
        stack_limit,
        ExecRequest { path, argv, envp },
    )?;
    // After an unshare(CLONE_NEWTIME) the new program runs in the namespace made
    // for the children (Linux's exec_task_namespaces): its vDSO page is that one's.
    let enter_time = !Arc::ptr_eq(&task.ns.time, &task.ns.time_children);
    if enter_time {
        let t = task.ns.time_children.clone();
        t.freeze(task.kernel.vdso().map(|v| &**v));
        let vdso = task.kernel.vdso().map(|v| &**v);
        crate::kernel::vdso::join_time_ns(vdso, &mut image.mm, &t)?;
    }
    let ctx = task.kernel.platform.new_context(image.mm.space())?;
    // Past the point of no return.
    if let Err(e) = kill_other_threads(task) {
        tracing::debug!(
            tid = task.tid,
            "exec interrupted while ending other threads: {e}"
        );
        return Err(e);
    }
    if task.tid != task.tgid {
        // The surviving thread takes over the process's id, as on Linux.
        let reg = task.kernel.registry();
        if let Ok(mut reg) = reg {
            reg.threads.remove(&task.tid);
            reg.threads
                .insert(task.tgid, (task.handle.clone(), task.tg.clone()));
            task.tg.pid_ns.release(task.tid);
        }
        if let Ok(mut st) = task.tg.state() {
            st.threads.remove(&task.tid);
            st.threads.insert(task.tgid, task.handle.clone());
        }
        if let Ok(mut t) = task.handle.tid.lock() {
            *t = task.tgid;
        }
        task.tid = task.tgid;
    }
    // The old image's CHILD_CLEARTID is honoured in the old memory, then forgotten.
    if task.clear_child_tid != 0 {
        let addr = task.clear_child_tid;
        if io::write_u32(task.mem(), addr, 0).is_ok() {
            let key = crate::kernel::futex::FutexKey {
                space: task.space_id(),
                addr,
            };
            let _ = task
                .kernel
                .futexes
                .wake(key, 1, crate::kernel::futex::BITSET_ANY);
        }
        task.clear_child_tid = 0;
    }
    task.robust_list = (0, 0);
    task.rseq = None;
    task.replace_image(image.mm, ctx);
    if enter_time {
        let mut ns = (*task.ns).clone();
        ns.time = ns.time_children.clone();
        task.ns = Arc::new(ns);
    }
    // A shared fd table is unshared, then close-on-exec fds go.
    if Arc::strong_count(&task.fds) > 1 {
        let copy = task.fds()?.clone();
        task.fds = Arc::new(Mutex::new(copy));
    }
    let closing: Vec<_> = {
        let mut fds = task.fds()?;
        let cloexec: Vec<i32> = fds
            .iter()
            .filter(|(_, e)| e.cloexec)
            .map(|(fd, _)| fd)
            .collect();
        cloexec
            .into_iter()
            .filter_map(|fd| fds.remove(fd).ok())
            .collect()
    };
    drop(closing);
    task.tg.actions()?.reset_for_exec();
    task.alt_stack = Default::default();
    task.creds.apply_exec(image.ids.0, image.ids.1);
    if let Ok(mut st) = task.tg.state() {
        st.uids = (task.creds.uid, task.creds.suid);
    }
    task.exe = image.exe;
    task.handle.set_comm(&spawn::comm_of(&task.exe));
    if let Ok(mut st) = task.tg.state() {
        st.comm = task.comm();
        st.did_exec = true;
        // A new image is dumpable again (a set-id one is made non-dumpable when its
        // changed ids are published).
        st.dumpable = true;
    }
    if let Some(v) = task.vfork_done.take() {
        v.release();
    }
    task.regs = image.regs;
    Ok(0)
}

/// `execve(2)`.
pub fn execve(task: &mut Task, a: &Args) -> SysResult<u64> {
    let path = path_arg(task, a[0])?;
    do_execve(task, path, a[1], a[2])
}

/// `execveat(2)`.
pub fn execveat(task: &mut Task, a: &Args) -> SysResult<u64> {
    let dirfd = a[0] as i32;
    let flags = a[4] as i32;
    if flags & !(libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = path_arg(task, a[1])?;
    let full = if path.is_empty() {
        if flags & libc::AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        let file = file_arg(task, dirfd as u64)?;
        let d = file.dentry().cloned().ok_or(Errno::EACCES)?;
        d.path_from(&task.fs.root)
    } else if path[0] == b'/' || dirfd == libc::AT_FDCWD {
        path
    } else {
        let start = at_dir(task, dirfd, &path)?;
        let follow = if flags & libc::AT_SYMLINK_NOFOLLOW != 0 {
            Follow::No
        } else {
            Follow::Yes
        };
        let d = resolve(&task.fs, &start, &path, follow)?;
        if d.inode().stat()?.is_symlink() {
            return Err(Errno::ELOOP);
        }
        d.path_from(&task.fs.root)
    };
    do_execve(task, full, a[2], a[3])
}

/// `exit(2)`: ends the calling thread; the process ends with its last thread.
pub fn exit(task: &mut Task, a: &Args) -> SysResult<u64> {
    task.exit = Some(ExitStatus::Exited((a[0] & 0xff) as i32));
    Ok(0)
}

/// `exit_group(2)`: ends every thread of the process.
pub fn exit_group(task: &mut Task, a: &Args) -> SysResult<u64> {
    let st = ExitStatus::Exited((a[0] & 0xff) as i32);
    process::kill_group(&task.tg, st);
    task.exit = Some(st);
    Ok(0)
}
