//! Futexes. A waiter checks the futex word and queues itself under one lock, so a
//! waker that changes the word and then wakes can never slip between the two.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::errno::{Errno, SysResult};
use crate::kernel::wait::{self, Interrupted, Waker};
use crate::platform::AddressSpace;

/// `FUTEX_BITSET_MATCH_ANY`.
pub const BITSET_ANY: u32 = u32::MAX;

/// Identifies a futex word. Private futexes are per address space; shared ones will
/// be keyed by their backing memory when processes can share it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FutexKey {
    /// The address space (an opaque id).
    pub space: usize,
    /// The word's address.
    pub addr: u64,
}

struct FutexWaiter {
    bitset: u32,
    waker: Arc<Waker>,
    woken: AtomicBool,
}

/// What a waiter waits for.
#[derive(Clone, Copy, Debug)]
pub struct WaitSpec {
    /// The value the word must still hold.
    pub val: u32,
    /// Wake-up bitset (`BITSET_ANY` for plain FUTEX_WAIT).
    pub bitset: u32,
    /// When to give up.
    pub deadline: Option<Instant>,
}

/// Every futex of a sandbox.
#[derive(Default)]
pub struct FutexTable {
    queues: Mutex<HashMap<FutexKey, Vec<Arc<FutexWaiter>>>>,
}

fn read_word(space: &dyn AddressSpace, addr: u64) -> SysResult<u32> {
    if !addr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 4];
    crate::mm::io::read_exact(space, addr, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

impl FutexTable {
    /// An empty table.
    pub fn new() -> Self {
        FutexTable::default()
    }

    /// `FUTEX_WAIT(_BITSET)`: sleeps while the word at `key` equals `val`. Returns
    /// `EAGAIN` if it differs, `ETIMEDOUT` at `deadline`, `ERESTARTSYS` when
    /// `interrupted` reports a signal.
    pub fn wait(
        &self,
        space: &dyn AddressSpace,
        uaddr: u64,
        key: FutexKey,
        w: WaitSpec,
        waker: &Arc<Waker>,
        interrupted: impl FnMut() -> bool,
    ) -> SysResult<()> {
        let WaitSpec {
            val,
            bitset,
            deadline,
        } = w;
        if bitset == 0 {
            return Err(Errno::EINVAL);
        }
        let me = Arc::new(FutexWaiter {
            bitset,
            waker: waker.clone(),
            woken: AtomicBool::new(false),
        });
        {
            let mut q = self.queues.lock().map_err(|_| Errno::EIO)?;
            if read_word(space, uaddr)? != val {
                return Err(Errno::EAGAIN);
            }
            q.entry(key).or_default().push(me.clone());
        }
        let r = wait::block(waker, deadline, interrupted, || {
            Ok(me.woken.load(Ordering::Acquire).then_some(()))
        });
        if !me.woken.load(Ordering::Acquire) {
            self.remove(key, &me);
        }
        match r {
            Ok(res) => res,
            // A wake that raced with the interruption still counts as a wake.
            Err(_) if me.woken.load(Ordering::Acquire) => Ok(()),
            Err(Interrupted::Signal) => Err(Errno::ERESTARTSYS),
            Err(Interrupted::Timeout) => Err(Errno::ETIMEDOUT),
        }
    }

    fn remove(&self, key: FutexKey, me: &Arc<FutexWaiter>) {
        if let Ok(mut q) = self.queues.lock() {
            if let Some(v) = q.get_mut(&key) {
                v.retain(|w| !Arc::ptr_eq(w, me));
                if v.is_empty() {
                    q.remove(&key);
                }
            }
        }
    }

    /// `FUTEX_WAKE(_BITSET)`: wakes up to `n` waiters whose bitset intersects. A
    /// count of 0 wakes one, as Linux's loop checks the count only after a wake.
    pub fn wake(&self, key: FutexKey, n: u32, bitset: u32) -> SysResult<u64> {
        if bitset == 0 {
            return Err(Errno::EINVAL);
        }
        let n = n.max(1);
        let mut q = self.queues.lock().map_err(|_| Errno::EIO)?;
        let Some(v) = q.get_mut(&key) else {
            return Ok(0);
        };
        let mut woken = 0u64;
        v.retain(|w| {
            if woken < n as u64 && w.bitset & bitset != 0 {
                w.woken.store(true, Ordering::Release);
                w.waker.wake();
                woken += 1;
                false
            } else {
                true
            }
        });
        if v.is_empty() {
            q.remove(&key);
        }
        Ok(woken)
    }

    /// `FUTEX_REQUEUE` / `FUTEX_CMP_REQUEUE`: wakes `n_wake` waiters of `from` and
    /// moves up to `n_move` of the rest to `to`. With `expect`, the word at `from` must
    /// still hold that value (`EAGAIN` otherwise).
    // The arguments mirror futex(2)'s own (two words, two counts, the expected value).
    #[allow(clippy::too_many_arguments)]
    pub fn requeue(
        &self,
        space: &dyn AddressSpace,
        from_uaddr: u64,
        from: FutexKey,
        to: FutexKey,
        n_wake: u32,
        n_move: u32,
        expect: Option<u32>,
    ) -> SysResult<u64> {
        let mut q = self.queues.lock().map_err(|_| Errno::EIO)?;
        if let Some(v) = expect {
            if read_word(space, from_uaddr)? != v {
                return Err(Errno::EAGAIN);
            }
        }
        let Some(mut waiters) = q.remove(&from) else {
            return Ok(0);
        };
        let mut done = 0u64;
        let wake_n = (n_wake as usize).min(waiters.len());
        for w in waiters.drain(..wake_n) {
            w.woken.store(true, Ordering::Release);
            w.waker.wake();
            done += 1;
        }
        let move_n = (n_move as usize).min(waiters.len());
        let moved: Vec<_> = waiters.drain(..move_n).collect();
        done += moved.len() as u64;
        if !waiters.is_empty() {
            q.insert(from, waiters);
        }
        if !moved.is_empty() {
            q.entry(to).or_default().extend(moved);
        }
        Ok(done)
    }
}

/// Robust-list entries walked at thread exit before giving up (Linux's
/// ROBUST_LIST_LIMIT).
const ROBUST_LIST_LIMIT: usize = 2048;
/// `FUTEX_OWNER_DIED`.
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
/// `FUTEX_WAITERS`.
const FUTEX_WAITERS: u32 = 0x8000_0000;
/// `FUTEX_TID_MASK`.
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

/// At thread exit: marks every robust futex the thread still holds as
/// owner-died and wakes one waiter on each, as Linux's `exit_robust_list` does.
pub fn release_robust_list(task: &crate::kernel::Task) {
    let (head, len) = task.robust_list;
    if head == 0 || len != 24 {
        return;
    }
    let mem = task.mem();
    let read = |a: u64| crate::mm::io::read_u64(mem, a).ok();
    // struct robust_list_head { list.next, futex_offset, list_op_pending }
    let (Some(mut entry), Some(offset), Some(pending)) =
        (read(head), read(head + 8), read(head + 16))
    else {
        return;
    };
    let offset = offset as i64;
    let handle = |e: u64| {
        let addr = (e as i64).wrapping_add(offset) as u64;
        let mut b = [0u8; 4];
        if crate::mm::io::read_exact(mem, addr, &mut b).is_err() {
            return;
        }
        let word = u32::from_le_bytes(b);
        if word & FUTEX_TID_MASK != task.tid as u32 {
            return;
        }
        let new = (word & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
        if crate::mm::io::write_u32(mem, addr, new).is_ok() && word & FUTEX_WAITERS != 0 {
            let key = FutexKey {
                space: task.space_id(),
                addr,
            };
            let _ = task.kernel.futexes.wake(key, 1, BITSET_ANY);
        }
    };
    let mut n = 0;
    while entry != head && entry != 0 && n < ROBUST_LIST_LIMIT {
        let next = read(entry);
        if entry != pending {
            handle(entry);
        }
        match next {
            Some(nx) => entry = nx,
            None => break,
        }
        n += 1;
    }
    if pending != 0 {
        handle(pending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::fake::FakeSpace;
    use crate::platform::Backing;
    use std::time::Duration;

    #[test]
    fn wait_wake_requeue() {
        let space = FakeSpace::new();
        space
            .map(
                0x10000,
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                false,
                Backing::Anonymous,
            )
            .unwrap();
        let t = Arc::new(FutexTable::new());
        let key = FutexKey {
            space: 1,
            addr: 0x10000,
        };
        let w = Waker::new();
        assert_eq!(
            t.wait(
                &*space,
                0x10000,
                key,
                WaitSpec {
                    val: 5,
                    bitset: BITSET_ANY,
                    deadline: None
                },
                &w,
                || false
            ),
            Err(Errno::EAGAIN)
        );
        let d = Some(Instant::now() + Duration::from_millis(20));
        assert_eq!(
            t.wait(
                &*space,
                0x10000,
                key,
                WaitSpec {
                    val: 0,
                    bitset: BITSET_ANY,
                    deadline: d
                },
                &w,
                || false
            ),
            Err(Errno::ETIMEDOUT)
        );
        assert_eq!(
            t.wait(
                &*space,
                0x10000,
                key,
                WaitSpec {
                    val: 0,
                    bitset: BITSET_ANY,
                    deadline: None
                },
                &w,
                || true
            ),
            Err(Errno::ERESTARTSYS)
        );
        assert_eq!(
            t.wait(
                &*space,
                0x10001,
                FutexKey {
                    space: 1,
                    addr: 0x10001
                },
                WaitSpec {
                    val: 0,
                    bitset: BITSET_ANY,
                    deadline: None
                },
                &w,
                || false
            ),
            Err(Errno::EINVAL)
        );

        let (t2, s2) = (t.clone(), space.clone());
        let h = std::thread::spawn(move || {
            let w = Waker::new();
            t2.wait(
                &*s2,
                0x10000,
                key,
                WaitSpec {
                    val: 0,
                    bitset: BITSET_ANY,
                    deadline: None,
                },
                &w,
                || false,
            )
        });
        let mut n = 0;
        for _ in 0..200 {
            n = t.wake(key, 1, BITSET_ANY).unwrap();
            if n == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(n, 1);
        assert_eq!(h.join().unwrap(), Ok(()));
        assert_eq!(t.wake(key, 1, BITSET_ANY).unwrap(), 0);
        let other = FutexKey {
            space: 1,
            addr: 0x10004,
        };
        assert_eq!(
            t.requeue(&*space, 0x10000, key, other, 1, 1, Some(9)),
            Err(Errno::EAGAIN)
        );
        assert_eq!(
            t.requeue(&*space, 0x10000, key, other, 1, 1, Some(0)),
            Ok(0)
        );
    }
}
