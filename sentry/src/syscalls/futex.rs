//! `futex(2)`.

use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::kernel::futex::{FutexKey, WaitSpec, BITSET_ANY};
use crate::kernel::Task;
use crate::mm::io;
use crate::sys::host;
use crate::syscalls::Args;

const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_REQUEUE: u64 = 3;
const FUTEX_CMP_REQUEUE: u64 = 4;
const FUTEX_WAKE_OP: u64 = 5;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAKE_BITSET: u64 = 10;
const FUTEX_PRIVATE_FLAG: u64 = 128;
const FUTEX_CLOCK_REALTIME: u64 = 256;

/// The key of the futex word at `addr`: per address space for private futexes and
/// private memory; by backing object and offset for shared memory, so processes
/// sharing a mapping (a /dev/shm semaphore, MAP_SHARED|MAP_ANONYMOUS after fork)
/// meet on the same futex.
fn futex_key(task: &Task, addr: u64, private: bool) -> SysResult<FutexKey> {
    if !private {
        if let Some((object, offset)) = task.mm()?.shared_identity(addr)? {
            return Ok(FutexKey {
                space: object as usize,
                addr: offset,
            });
        }
    }
    Ok(FutexKey {
        space: task.space_id(),
        addr,
    })
}

/// Converts a timeout argument to a deadline on the sentry's monotonic clock.
fn deadline(task: &Task, addr: u64, absolute: bool, realtime: bool) -> SysResult<Option<Instant>> {
    if addr == 0 {
        return Ok(None);
    }
    let ts: libc::timespec = io::read_struct(task.mem(), addr)?;
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    let want = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
    if !absolute {
        return Ok(Some(Instant::now() + want));
    }
    let clock = if realtime {
        libc::CLOCK_REALTIME
    } else {
        libc::CLOCK_MONOTONIC
    };
    let now = host::clock_gettime(clock)?;
    let now = Duration::new(now.tv_sec as u64, now.tv_nsec as u32);
    Ok(Some(Instant::now() + want.saturating_sub(now)))
}

/// Applies a FUTEX_WAKE_OP operation to `old`, returning the new value.
fn wake_op_apply(encoded: u32, old: u32) -> SysResult<u32> {
    let op = (encoded >> 28) & 7;
    let mut arg = (encoded >> 12) & 0xfff;
    if (encoded >> 28) & 8 != 0 {
        if arg >= 32 {
            return Err(Errno::EINVAL);
        }
        arg = 1 << arg;
    }
    Ok(match op {
        0 => arg,
        1 => old.wrapping_add(arg),
        2 => old | arg,
        3 => old & !arg,
        4 => old ^ arg,
        _ => return Err(Errno::ENOSYS),
    })
}

fn wake_op_cmp(encoded: u32, old: u32) -> SysResult<bool> {
    let cmp = (encoded >> 24) & 0xf;
    let arg = encoded & 0xfff;
    let (o, a) = (old as i32, arg as i32);
    Ok(match cmp {
        0 => o == a,
        1 => o != a,
        2 => o < a,
        3 => o <= a,
        4 => o > a,
        5 => o >= a,
        _ => return Err(Errno::ENOSYS),
    })
}

/// `futex(2)`: WAIT, WAKE, REQUEUE, CMP_REQUEUE, WAKE_OP, WAIT_BITSET, WAKE_BITSET.
/// Priority-inheritance operations are not offered (ENOSYS).
pub fn futex(task: &mut Task, a: &Args) -> SysResult<u64> {
    let (uaddr, op, val, utime, uaddr2, val3) = (a[0], a[1], a[2] as u32, a[3], a[4], a[5] as u32);
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    let realtime = op & FUTEX_CLOCK_REALTIME != 0;
    if realtime && cmd != FUTEX_WAIT_BITSET && cmd != FUTEX_WAIT {
        return Err(Errno::ENOSYS);
    }
    let private = op & FUTEX_PRIVATE_FLAG != 0;
    let key = futex_key(task, uaddr, private)?;
    let kernel = task.kernel.clone();
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let bitset = if cmd == FUTEX_WAIT { BITSET_ANY } else { val3 };
            let dl = deadline(task, utime, cmd == FUTEX_WAIT_BITSET, realtime)?;
            let waker = task.waker.clone();
            let spec = WaitSpec {
                val,
                bitset,
                deadline: dl,
            };
            kernel
                .futexes
                .wait(task.mem(), uaddr, key, spec, &waker, || {
                    task.signal_pending()
                })?;
            Ok(0)
        }
        FUTEX_WAKE => kernel.futexes.wake(key, val, BITSET_ANY),
        FUTEX_WAKE_BITSET => kernel.futexes.wake(key, val, val3),
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            let to = futex_key(task, uaddr2, private)?;
            let expect = (cmd == FUTEX_CMP_REQUEUE).then_some(val3);
            kernel
                .futexes
                .requeue(task.mem(), uaddr, key, to, val, utime as u32, expect)
        }
        FUTEX_WAKE_OP => {
            if !uaddr2.is_multiple_of(4) {
                return Err(Errno::EINVAL);
            }
            let mut b = [0u8; 4];
            io::read_exact(task.mem(), uaddr2, &mut b)?;
            let old = u32::from_le_bytes(b);
            let new = wake_op_apply(val3, old)?;
            io::write_all(task.mem(), uaddr2, &new.to_le_bytes())?;
            let mut n = kernel.futexes.wake(key, val, BITSET_ANY)?;
            if wake_op_cmp(val3, old)? {
                n += kernel.futexes.wake(
                    futex_key(task, uaddr2, private)?,
                    utime as u32,
                    BITSET_ANY,
                )?;
            }
            Ok(n)
        }
        _ => Err(Errno::ENOSYS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_op_encoding() {
        // FUTEX_OP(FUTEX_OP_ADD, 1, FUTEX_OP_CMP_GT, 0)
        let enc = (1 << 28) | (4 << 24) | (1 << 12);
        assert_eq!(wake_op_apply(enc, 5).unwrap(), 6);
        assert!(wake_op_cmp(enc, 5).unwrap());
        assert!(!wake_op_cmp(enc, 0).unwrap());
        assert_eq!(wake_op_apply((8 << 28) | (40 << 12), 0), Err(Errno::EINVAL));
    }
}
