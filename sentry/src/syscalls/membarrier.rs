//! `membarrier(2)`. Every barrier the application asks for is the host's
//! `MEMBARRIER_CMD_GLOBAL`, which makes every host thread (the application's stub
//! threads included, whichever process they serve) pass a full barrier: a superset
//! of the private and expedited commands, slower but never weaker. Registrations are
//! kept per process, so the EPERM of an unregistered private command is Linux's.
//! The rseq commands are not offered (an rseq critical section is not aborted on
//! request: see `kernel::rseq`).

use crate::errno::{Errno, SysResult};
use crate::kernel::Task;
use crate::sys::host;
use crate::syscalls::Args;

const QUERY: u32 = 0;
const GLOBAL: u32 = 1 << 0;
const GLOBAL_EXPEDITED: u32 = 1 << 1;
const REGISTER_GLOBAL_EXPEDITED: u32 = 1 << 2;
const PRIVATE_EXPEDITED: u32 = 1 << 3;
const REGISTER_PRIVATE_EXPEDITED: u32 = 1 << 4;
const PRIVATE_EXPEDITED_SYNC_CORE: u32 = 1 << 5;
const REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: u32 = 1 << 6;
const GET_REGISTRATIONS: u32 = 1 << 9;

/// The commands QUERY reports.
const SUPPORTED: u32 = GLOBAL
    | GLOBAL_EXPEDITED
    | REGISTER_GLOBAL_EXPEDITED
    | PRIVATE_EXPEDITED
    | REGISTER_PRIVATE_EXPEDITED
    | PRIVATE_EXPEDITED_SYNC_CORE
    | REGISTER_PRIVATE_EXPEDITED_SYNC_CORE
    | GET_REGISTRATIONS;

/// `membarrier(2)`.
pub fn membarrier(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (cmd, flags) = (a[0] as u32, a[1] as u32);
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let registered = |bit: u32| -> SysResult<bool> { Ok(task.tg.state()?.membarrier & bit != 0) };
    match cmd {
        QUERY => Ok(SUPPORTED as u64),
        GLOBAL | GLOBAL_EXPEDITED => {
            host::membarrier_global()?;
            Ok(0)
        }
        PRIVATE_EXPEDITED | PRIVATE_EXPEDITED_SYNC_CORE => {
            let reg = if cmd == PRIVATE_EXPEDITED {
                REGISTER_PRIVATE_EXPEDITED
            } else {
                REGISTER_PRIVATE_EXPEDITED_SYNC_CORE
            };
            if !registered(reg)? {
                return Err(Errno::EPERM);
            }
            host::membarrier_global()?;
            Ok(0)
        }
        REGISTER_GLOBAL_EXPEDITED
        | REGISTER_PRIVATE_EXPEDITED
        | REGISTER_PRIVATE_EXPEDITED_SYNC_CORE => {
            task.tg.state()?.membarrier |= cmd;
            Ok(0)
        }
        GET_REGISTRATIONS => Ok(task.tg.state()?.membarrier as u64),
        _ => Err(Errno::EINVAL),
    }
}
