//! Signal-driven I/O: `O_ASYNC` (`F_SETFL`, `FIOASYNC`) with an owner (`F_SETOWN`,
//! `F_SETOWN_EX`, `FIOSETOWN`, `SIOCSPGRP`) and a signal (`F_SETSIG`). Works for any
//! file that has a wait queue (sockets, pipes, FIFOs, terminals...).
//!
//! The owner and signal belong to the open file description. While `O_ASYNC` is
//! set, a waker with a hook stays registered on the file's wait queue; each time the
//! queue is notified the hook looks at the file's readiness and sends the owner
//! SIGIO (or the `F_SETSIG` signal, with `si_fd` and `si_band`): `POLL_IN` whenever
//! the file is readable, `POLL_OUT` when it becomes writable. Spurious signals are
//! possible (a notification that changed nothing readable), as the signal is only a
//! hint to poll. Once an owner is set, urgent data (`FileImpl::urgent_arrived`:
//! host TCP sockets under `--network=host`) sends it `SIGURG`, `O_ASYNC` or not. Not checked: Linux's `sigio_perm` (the setter's credentials
//! against the owner's): the owner is any process of the sandbox.

use std::sync::{Arc, Mutex, Weak};

use crate::errno::{Errno, SysResult};
use crate::kernel::process::{send_to_group, send_to_thread};
use crate::kernel::signals::SigInfo;
use crate::kernel::wait::Waker;
use crate::kernel::{Kernel, Task};
use crate::vfs::OpenFile;

/// `F_OWNER_TID`.
pub const F_OWNER_TID: i32 = 0;
/// `F_OWNER_PID`.
pub const F_OWNER_PID: i32 = 1;
/// `F_OWNER_PGRP`.
pub const F_OWNER_PGRP: i32 = 2;
/// `F_SETSIG`.
pub const F_SETSIG: i32 = 10;
/// `F_GETSIG`.
pub const F_GETSIG: i32 = 11;
/// `F_SETOWN_EX`.
pub const F_SETOWN_EX: i32 = 15;
/// `F_GETOWN_EX`.
pub const F_GETOWN_EX: i32 = 16;
const POLLMSG: i16 = 0x400;
/// `si_code` values of SIGPOLL.
use abi::signal::{POLL_ERR, POLL_HUP, POLL_IN, POLL_OUT};

#[derive(Clone, Copy, Default)]
struct Owner {
    kind: i32,
    id: i32,
}

struct Entry {
    file: Weak<OpenFile>,
    kernel: Weak<Kernel>,
    st: Mutex<EntryState>,
}

#[derive(Default)]
struct EntryState {
    owner: Owner,
    sig: i32,
    /// The descriptor `O_ASYNC` was set through (`si_fd`).
    fd: i32,
    active: bool,
    was_writable: bool,
    /// Registered on the file's queue while the entry lives.
    waker: Option<Arc<Waker>>,
    /// Registered on the file's queue once an owner is set: urgent data sends
    /// the owner `SIGURG` whether or not `O_ASYNC` is on.
    urg_waker: Option<Arc<Waker>>,
}

/// The entry of `file` (kept on the description itself), made if missing when
/// `make` is set.
fn entry(task: &Task, file: &Arc<OpenFile>, make: bool) -> SysResult<Option<Arc<Entry>>> {
    let state = if make {
        Some(file.owner_state_or(|| {
            Arc::new(Entry {
                file: Arc::downgrade(file),
                kernel: Arc::downgrade(&task.kernel),
                st: Mutex::new(EntryState::default()),
            })
        }))
    } else {
        file.owner_state()
    };
    match state {
        None => Ok(None),
        Some(s) => Arc::clone(s)
            .downcast::<Entry>()
            .map(Some)
            .map_err(|_| Errno::EIO),
    }
}

fn set_owner_of(task: &Task, file: &Arc<OpenFile>, mut owner: Owner) -> SysResult<()> {
    if owner.id != 0 {
        // The caller names the owner in its pid namespace; the entry keeps the
        // sandbox's id. As Linux's find_vpid, any number in use will do whatever
        // uses it (a process group with no members: the number of a process or
        // thread); ESRCH only for one nothing uses or the caller cannot see.
        owner.id = task.pid_global(owner.id)?;
        if !task.kernel.registry()?.id_in_use(owner.id) {
            return Err(Errno::ESRCH);
        }
    }
    if let Some(e) = entry(task, file, true)? {
        let mut st = e.st.lock().map_err(|_| Errno::EIO)?;
        st.owner = owner;
        if owner.id != 0 && st.urg_waker.is_none() {
            if let Some(q) = file.imp().wait_queue() {
                let weak = Arc::downgrade(&e);
                let w = Waker::with_hook(Box::new(move || {
                    if let Some(e) = weak.upgrade() {
                        e.urgent();
                    }
                }));
                // As for the O_ASYNC waker: the entry keeps it alive.
                std::mem::forget(q.register(&w));
                st.urg_waker = Some(w);
            }
        }
    }
    Ok(())
}

/// `F_SETOWN` / `FIOSETOWN` / `SIOCSPGRP`: a process (`pid` > 0), a process group
/// (`pid` < 0), or nobody (0).
pub fn set_owner(task: &Task, file: &Arc<OpenFile>, pid: i32) -> SysResult<()> {
    let owner = if pid < 0 {
        Owner {
            kind: F_OWNER_PGRP,
            id: pid.checked_neg().ok_or(Errno::EINVAL)?,
        }
    } else {
        Owner {
            kind: F_OWNER_PID,
            id: pid,
        }
    };
    set_owner_of(task, file, owner)
}

/// `F_GETOWN`: a process group is reported negated.
pub fn get_owner(task: &Task, file: &Arc<OpenFile>) -> SysResult<i32> {
    let o = owner(task, file)?;
    Ok(if o.kind == F_OWNER_PGRP { -o.id } else { o.id })
}

/// The owner as `task` sees it: its id in the caller's pid namespace, 0 when the
/// owner is outside it (Linux's `pid_vnr`).
fn owner(task: &Task, file: &Arc<OpenFile>) -> SysResult<Owner> {
    let mut o = match entry(task, file, false)? {
        Some(e) => e.st.lock().map_err(|_| Errno::EIO)?.owner,
        None => Owner::default(),
    };
    if o.id == 0 {
        // Never set: F_GETOWN_EX reports a process.
        o.kind = F_OWNER_PID;
    }
    // An owner nothing of its kind answers to (an empty group, a thread's id as
    // a process) reads 0, as Linux's pid_task check.
    if o.id != 0 {
        let reg = task.kernel.registry()?;
        let alive = match o.kind {
            F_OWNER_TID => reg.thread(o.id).is_some(),
            F_OWNER_PID => reg.group(o.id).is_some(),
            _ => reg.group_exists(o.id),
        };
        if !alive {
            o.id = 0;
        }
    }
    o.id = task.pid_shown(o.id);
    Ok(o)
}

/// `F_SETOWN_EX`.
pub fn set_owner_ex(task: &Task, file: &Arc<OpenFile>, kind: i32, pid: i32) -> SysResult<()> {
    if !(F_OWNER_TID..=F_OWNER_PGRP).contains(&kind) || pid < 0 {
        return Err(Errno::EINVAL);
    }
    set_owner_of(task, file, Owner { kind, id: pid })
}

/// `F_GETOWN_EX`: (type, id).
pub fn get_owner_ex(task: &Task, file: &Arc<OpenFile>) -> SysResult<(i32, i32)> {
    let o = owner(task, file)?;
    Ok((o.kind, o.id))
}

/// `F_SETSIG` (0: SIGIO without details).
pub fn set_sig(task: &Task, file: &Arc<OpenFile>, sig: u64) -> SysResult<()> {
    if sig > 64 {
        return Err(Errno::EINVAL);
    }
    if let Some(e) = entry(task, file, true)? {
        e.st.lock().map_err(|_| Errno::EIO)?.sig = sig as i32;
    }
    Ok(())
}

/// `F_GETSIG`.
pub fn get_sig(task: &Task, file: &Arc<OpenFile>) -> SysResult<i32> {
    Ok(match entry(task, file, false)? {
        Some(e) => e.st.lock().map_err(|_| Errno::EIO)?.sig,
        None => 0,
    })
}

/// Called after the status flags of `file` (reached through `fd`) changed: starts
/// or stops signalling as `O_ASYNC` says.
pub fn flags_changed(task: &Task, fd: i32, file: &Arc<OpenFile>) -> SysResult<()> {
    let on = file.flags() & libc::O_ASYNC != 0;
    let Some(e) = entry(task, file, on)? else {
        return Ok(());
    };
    let mut st = e.st.lock().map_err(|_| Errno::EIO)?;
    st.active = on;
    if !on {
        return Ok(());
    }
    st.fd = fd;
    st.was_writable = file.imp().readiness() & libc::POLLOUT as u32 != 0;
    if st.waker.is_none() {
        if let Some(q) = file.imp().wait_queue() {
            let weak = Arc::downgrade(&e);
            let w = Waker::with_hook(Box::new(move || {
                if let Some(e) = weak.upgrade() {
                    e.fire();
                }
            }));
            // The queue holds the waker weakly; the entry keeps it alive.
            std::mem::forget(q.register(&w));
            st.waker = Some(w);
        }
    }
    Ok(())
}

/// `FIOASYNC`: sets or clears `O_ASYNC`.
pub fn fioasync(task: &Task, fd: i32, file: &Arc<OpenFile>, on: bool) -> SysResult<()> {
    let fl = file.flags();
    file.set_flags(if on {
        fl | libc::O_ASYNC
    } else {
        fl & !libc::O_ASYNC
    });
    flags_changed(task, fd, file)
}

impl Entry {
    /// The file's queue was notified: signal the owner if the file is ready.
    fn fire(&self) {
        let Some(file) = self.file.upgrade() else {
            return;
        };
        let (owner, sig, fd, was_writable) = match self.st.lock() {
            Ok(s) if s.active && s.owner.id != 0 => (s.owner, s.sig, s.fd, s.was_writable),
            _ => return,
        };
        let r = file.imp().readiness();
        let writable = r & libc::POLLOUT as u32 != 0;
        if let Ok(mut s) = self.st.lock() {
            s.was_writable = writable;
        }
        let (code, band) = if r & libc::POLLIN as u32 != 0 {
            (POLL_IN, (libc::POLLIN | libc::POLLRDNORM | POLLMSG) as i64)
        } else if writable && !was_writable {
            (
                POLL_OUT,
                (libc::POLLOUT | libc::POLLWRNORM | libc::POLLWRBAND) as i64,
            )
        } else if r & libc::POLLERR as u32 != 0 {
            (POLL_ERR, (libc::POLLERR) as i64)
        } else if r & libc::POLLHUP as u32 != 0 {
            (POLL_HUP, (libc::POLLHUP | libc::POLLERR) as i64)
        } else {
            return;
        };
        let info = if sig == 0 {
            SigInfo::kernel(libc::SIGIO)
        } else {
            // SIGPOLL's siginfo: si_band (a long) at offset 16, si_fd at 24. The
            // generic layout puts pid/uid (16, 20) and value (24) there.
            SigInfo {
                signo: sig,
                code,
                pid: band as i32,
                uid: (band >> 32) as u32,
                value: fd as u32 as u64,
                ..Default::default()
            }
        };
        self.signal(owner, info);
    }

    /// The file's queue was notified while it has an owner: `SIGURG` to the owner
    /// when urgent data arrived (Linux's `sk_send_sigurg`, `SI_KERNEL`).
    fn urgent(&self) {
        let Some(file) = self.file.upgrade() else {
            return;
        };
        let owner = match self.st.lock() {
            Ok(s) if s.owner.id != 0 => s.owner,
            _ => return,
        };
        if file.imp().urgent_arrived() {
            self.signal(owner, SigInfo::kernel(libc::SIGURG));
        }
    }

    /// Sends `info` to `owner`: a thread, a process or a process group.
    fn signal(&self, owner: Owner, info: SigInfo) {
        let Some(kernel) = self.kernel.upgrade() else {
            return;
        };
        let Ok(reg) = kernel.registry() else {
            return;
        };
        match owner.kind {
            F_OWNER_TID => {
                if let Some((t, g)) = reg.thread(owner.id) {
                    drop(reg);
                    let _ = send_to_thread(&t, &g, info);
                }
            }
            F_OWNER_PID => {
                if let Some(g) = reg.group(owner.id) {
                    drop(reg);
                    let _ = send_to_group(&g, info);
                }
            }
            _ => {
                let members = reg.group_members(owner.id);
                drop(reg);
                for g in members {
                    let _ = send_to_group(&g, info);
                }
            }
        }
    }
}
