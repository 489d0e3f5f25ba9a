//! Yama's ptrace restrictions (Linux's `security/yama`): the sandbox-wide
//! `kernel.yama.ptrace_scope` and each process's `PR_SET_PTRACER` exception.
//!
//! Scope 0 adds nothing to the ordinary ptrace checks; 1 (the default, as Linux
//! with Yama built in) lets a process attach only to its descendants, or to a
//! process that named it (or one of its ancestors) with `PR_SET_PTRACER`, unless
//! it has `CAP_SYS_PTRACE`; 2 needs `CAP_SYS_PTRACE` for every attach and for
//! `PTRACE_TRACEME`; 3 forbids attaching at all and cannot be lowered again.
//! The checks apply to the attach-mode accesses (`PTRACE_ATTACH`/`SEIZE`,
//! `/proc/PID/mem`, `process_vm_readv`/`writev`), not to read-mode ones.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};

use crate::errno::{Errno, SysResult};
use crate::kernel::process::ThreadGroup;
use crate::kernel::Kernel;

/// `YAMA_SCOPE_DISABLED`.
pub const SCOPE_DISABLED: u32 = 0;
/// `YAMA_SCOPE_RELATIONAL`: descendants and declared tracers only.
pub const SCOPE_RELATIONAL: u32 = 1;
/// `YAMA_SCOPE_CAPABILITY`: `CAP_SYS_PTRACE` only.
pub const SCOPE_CAPABILITY: u32 = 2;
/// `YAMA_SCOPE_NO_ATTACH`: no attaching; sticky.
pub const SCOPE_NO_ATTACH: u32 = 3;

/// `PR_SET_PTRACER` ("Yama" in ASCII).
pub const PR_SET_PTRACER: i32 = 0x5961_6d61;

/// Who a process let trace it with `PR_SET_PTRACER`.
#[derive(Clone)]
pub enum Ptracer {
    /// `PR_SET_PTRACER_ANY`: any process that passes the other checks.
    Any,
    /// This process or one of its descendants.
    Group(Weak<ThreadGroup>),
}

/// The sandbox's `kernel.yama.ptrace_scope`.
pub struct Yama {
    scope: AtomicU32,
}

impl Default for Yama {
    fn default() -> Self {
        Yama {
            scope: AtomicU32::new(SCOPE_RELATIONAL),
        }
    }
}

impl Yama {
    /// The current scope.
    pub fn scope(&self) -> u32 {
        self.scope.load(Ordering::Acquire)
    }

    /// A write of the sysctl by a caller with (`privileged`) or without
    /// `CAP_SYS_PTRACE`: `EPERM` without it, `EINVAL` outside 0..=3 or below 3 once
    /// 3 is set (Linux raises the minimum to 3 then).
    pub fn set_scope(&self, value: i64, privileged: bool) -> SysResult<()> {
        if !privileged {
            return Err(Errno::EPERM);
        }
        let min = if self.scope() == SCOPE_NO_ATTACH {
            SCOPE_NO_ATTACH
        } else {
            SCOPE_DISABLED
        };
        if value < min as i64 || value > SCOPE_NO_ATTACH as i64 {
            return Err(Errno::EINVAL);
        }
        self.scope.store(value as u32, Ordering::Release);
        Ok(())
    }
}

/// The parent pid of process `tgid`, or `None` past the top.
fn parent_of(kernel: &Kernel, tgid: i32) -> Option<i32> {
    let g = kernel.registry().ok()?.group(tgid)?;
    let p = g.state().ok()?.parent;
    (p > 0).then_some(p)
}

/// Linux's `task_is_descendant`: whether `child` is `ancestor` or below it.
fn is_descendant(kernel: &Kernel, ancestor: i32, child: i32) -> bool {
    let mut walker = Some(child);
    // Parent links form a tree; the bound only guards against a torn read.
    for _ in 0..=crate::kernel::PID_MAX as usize {
        match walker {
            Some(w) if w == ancestor => return true,
            Some(w) => walker = parent_of(kernel, w),
            None => return false,
        }
    }
    false
}

/// Linux's `yama_ptrace_access_check` for an attach-mode access by process
/// `tracer` (with `cap_ptrace`: `CAP_SYS_PTRACE`) to `tracee`: `EPERM` if the
/// scope forbids it.
pub fn may_attach(
    kernel: &Kernel,
    tracer: i32,
    cap_ptrace: bool,
    tracee: &Arc<ThreadGroup>,
) -> SysResult<()> {
    let ok = match kernel.yama.scope() {
        SCOPE_DISABLED => true,
        SCOPE_RELATIONAL => {
            cap_ptrace
                || is_descendant(kernel, tracer, tracee.tgid)
                || exception_found(kernel, tracer, tracee)
        }
        SCOPE_CAPABILITY => cap_ptrace,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// Linux's `ptracer_exception_found`: `tracee` declared `tracer` (or an ancestor
/// of it, or anyone) with `PR_SET_PTRACER`.
fn exception_found(kernel: &Kernel, tracer: i32, tracee: &ThreadGroup) -> bool {
    let declared = match tracee.state() {
        Ok(st) => st.ptracer.clone(),
        Err(_) => return false,
    };
    match declared {
        None => false,
        Some(Ptracer::Any) => true,
        Some(Ptracer::Group(g)) => match g.upgrade() {
            Some(g) => {
                g.state().map(|s| s.zombie.is_none()).unwrap_or(false)
                    && is_descendant(kernel, g.tgid, tracer)
            }
            None => false,
        },
    }
}

/// Linux's `yama_ptrace_traceme`: whether the parent, holding
/// `parent_cap_ptrace`, may become the caller's tracer.
pub fn may_traceme(kernel: &Kernel, parent_cap_ptrace: bool) -> SysResult<()> {
    match kernel.yama.scope() {
        SCOPE_CAPABILITY if !parent_cap_ptrace => Err(Errno::EPERM),
        SCOPE_NO_ATTACH => Err(Errno::EPERM),
        _ => Ok(()),
    }
}

/// `prctl(PR_SET_PTRACER, arg)` by process `me`: 0 clears the exception,
/// `PR_SET_PTRACER_ANY` (-1) allows any tracer, else `arg` names a live task
/// (`EINVAL` otherwise) whose process becomes the allowed tracer.
pub fn set_ptracer(kernel: &Kernel, me: &ThreadGroup, arg: u64) -> SysResult<u64> {
    let p = if arg == 0 {
        None
    } else if arg == u64::MAX || arg as i32 == -1 {
        Some(Ptracer::Any)
    } else {
        let pid = i32::try_from(arg).map_err(|_| Errno::EINVAL)?;
        if pid <= 0 {
            return Err(Errno::EINVAL);
        }
        let (_, tg) = kernel.registry()?.thread(pid).ok_or(Errno::EINVAL)?;
        Some(Ptracer::Group(Arc::downgrade(&tg)))
    };
    me.state()?.ptracer = p;
    Ok(0)
}
