//! Process file descriptors (`pidfd_open`, `CLONE_PIDFD`): readable once the process
//! has exited, usable to signal it and to wait for it.

use std::sync::Arc;

use crate::errno::SysResult;
use crate::kernel::process::ThreadGroup;
use crate::kernel::wait::WaitQueue;
use crate::vfs::{FileImpl, Stat};

/// An open pidfd.
pub struct PidFd {
    tg: Arc<ThreadGroup>,
}

impl PidFd {
    /// A pidfd for `tg`.
    pub fn new(tg: Arc<ThreadGroup>) -> PidFd {
        PidFd { tg }
    }

    /// The process it refers to.
    pub fn group(&self) -> &Arc<ThreadGroup> {
        &self.tg
    }
}

impl FileImpl for PidFd {
    fn seekable(&self) -> bool {
        false
    }

    fn stat(&self) -> SysResult<Stat> {
        Ok(Stat {
            dev: 0xd,
            ino: self.tg.tgid as u64,
            mode: 0o600,
            nlink: 1,
            blksize: 4096,
            ..Default::default()
        })
    }

    fn readiness(&self) -> u32 {
        let exited = self.tg.state().map(|s| s.zombie.is_some()).unwrap_or(true);
        if exited {
            (libc::POLLIN | libc::POLLRDNORM) as u32
        } else {
            0
        }
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.tg.events)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// The pidfd behind an open file, if it is one.
pub fn of(file: &crate::vfs::OpenFile) -> Option<&PidFd> {
    file.imp().as_any().and_then(|a| a.downcast_ref::<PidFd>())
}
