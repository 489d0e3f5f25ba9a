//! signalfd: reads a thread group's pending signals as `struct signalfd_siginfo`.
//!
//! Which signals are pending is the signal code's business, not this file's: a
//! signalfd reads through the [`SignalSource`] trait, which the kernel's thread
//! group signal state implements.

use std::sync::{Arc, Mutex};

use crate::errno::{Errno, SysResult};
use crate::fs::space::{AnonInos, AnonKind};
use crate::kernel::signals::UNBLOCKABLE;
use crate::vfs::{FileImpl, OpenFile, Stat};
use crate::wait::WaitQueue;

/// What a signal carries as signalfd reports it (`struct signalfd_siginfo`), and
/// that struct's size.
pub use abi::signal::{SignalfdSiginfo as SigInfo, SIGINFO_SIZE};

/// Where a signalfd takes signals from.
pub trait SignalSource: Send + Sync {
    /// Removes and returns the lowest-numbered pending signal in `mask`.
    fn dequeue(&self, mask: u64) -> Option<SigInfo>;
    /// The set of pending signals.
    fn pending(&self) -> u64;
    /// Notified whenever a signal becomes pending.
    fn wait_queue(&self) -> &WaitQueue;
}

/// The mask and source of one signalfd.
pub struct SignalFdState {
    mask: Mutex<u64>,
    source: Arc<dyn SignalSource>,
    ino: u64,
}

impl SignalFdState {
    /// Replaces the mask (`signalfd` on an existing fd).
    pub fn set_mask(&self, mask: u64) {
        if let Ok(mut m) = self.mask.lock() {
            *m = mask & !UNBLOCKABLE;
        }
        self.source.wait_queue().notify_all();
    }
    fn mask(&self) -> u64 {
        self.mask.lock().map(|m| *m).unwrap_or(0)
    }
}

/// The open file of a signalfd.
pub struct SignalFdFile {
    st: Arc<SignalFdState>,
}

/// A signalfd reading the signals of `mask` from `source`, numbered from `inos`.
pub fn new_signalfd(
    inos: &AnonInos,
    mask: u64,
    source: Arc<dyn SignalSource>,
) -> Box<dyn FileImpl> {
    let st = Arc::new(SignalFdState {
        mask: Mutex::new(mask & !UNBLOCKABLE),
        source,
        ino: inos.next(AnonKind::SignalFd),
    });
    Box::new(SignalFdFile { st })
}

/// The signalfd behind an open file.
pub fn signalfd_of(file: &OpenFile) -> Option<Arc<SignalFdState>> {
    file.imp()
        .as_any()?
        .downcast_ref::<SignalFdFile>()
        .map(|f| f.st.clone())
}

impl FileImpl for SignalFdFile {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn read(&self, buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        if buf.len() < SIGINFO_SIZE {
            return Err(Errno::EINVAL);
        }
        let mask = self.st.mask();
        let mut n = 0;
        while n + SIGINFO_SIZE <= buf.len() {
            let Some(info) = self.st.source.dequeue(mask) else {
                break;
            };
            buf[n..n + SIGINFO_SIZE].copy_from_slice(&info.to_bytes());
            n += SIGINFO_SIZE;
        }
        if n == 0 {
            return Err(Errno::EAGAIN);
        }
        Ok(n)
    }
    fn seekable(&self) -> bool {
        false
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(Stat {
            dev: 0xd,
            ino: self.st.ino,
            mode: 0o600,
            nlink: 1,
            blksize: 4096,
            ..Default::default()
        })
    }
    fn readiness(&self) -> u32 {
        if self.st.source.pending() & self.st.mask() != 0 {
            (libc::POLLIN | libc::POLLRDNORM) as u32
        } else {
            0
        }
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(self.st.source.wait_queue())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::signals::bit;
    use std::collections::VecDeque;

    /// A queue of pending signals: standard signals coalesce (one instance each),
    /// real-time signals (32 and up) queue every instance in order.
    #[derive(Default)]
    struct SignalQueue {
        pending: Mutex<VecDeque<SigInfo>>,
        queue: WaitQueue,
    }

    impl SignalQueue {
        /// An empty queue.
        fn new() -> Arc<SignalQueue> {
            Arc::new(SignalQueue::default())
        }

        /// Makes `info` pending; a standard signal already pending is not queued again.
        fn enqueue(&self, info: SigInfo) {
            if let Ok(mut p) = self.pending.lock() {
                if info.signo < 32 && p.iter().any(|i| i.signo == info.signo) {
                    return;
                }
                p.push_back(info);
            }
            self.queue.notify_all();
        }
    }

    impl SignalSource for SignalQueue {
        fn dequeue(&self, mask: u64) -> Option<SigInfo> {
            let mut p = self.pending.lock().ok()?;
            let best = p
                .iter()
                .enumerate()
                .filter(|(_, i)| (1..=64).contains(&i.signo) && mask & bit(i.signo) != 0)
                .min_by_key(|(idx, i)| (i.signo, *idx))
                .map(|(idx, _)| idx)?;
            p.remove(best)
        }
        fn pending(&self) -> u64 {
            self.pending
                .lock()
                .map(|p| {
                    p.iter()
                        .filter(|i| (1..=64).contains(&i.signo))
                        .fold(0, |m, i| m | bit(i.signo))
                })
                .unwrap_or(0)
        }
        fn wait_queue(&self) -> &WaitQueue {
            &self.queue
        }
    }

    #[test]
    fn reads_masked_signals_in_order() {
        let q = SignalQueue::new();
        let f = new_signalfd(&AnonInos::default(), bit(10) | bit(12) | bit(40), q.clone());
        let mut b = [0u8; 3 * SIGINFO_SIZE];
        assert_eq!(f.read(&mut b, 0), Err(Errno::EAGAIN));
        assert_eq!(f.readiness(), 0);
        for s in [12, 10, 10, 5, 40, 40] {
            q.enqueue(SigInfo {
                signo: s,
                pid: 7,
                ..Default::default()
            });
        }
        assert_ne!(f.readiness(), 0);
        assert_eq!(f.read(&mut b[..10], 0), Err(Errno::EINVAL));
        assert_eq!(f.read(&mut b, 0), Ok(3 * SIGINFO_SIZE));
        let signo =
            |b: &[u8], i: usize| u32::from_le_bytes(b[i * 128..i * 128 + 4].try_into().unwrap());
        // Standard signals coalesce; real-time ones queue each instance.
        assert_eq!((signo(&b, 0), signo(&b, 1), signo(&b, 2)), (10, 12, 40));
        assert_eq!(u32::from_le_bytes(b[12..16].try_into().unwrap()), 7);
        assert_eq!(f.read(&mut b, 0), Ok(SIGINFO_SIZE));
        assert_eq!(signo(&b, 0), 40);
        assert_eq!(f.read(&mut b, 0), Err(Errno::EAGAIN));
        // Signal 5 is not in the mask and stays pending.
        assert_eq!(q.pending(), bit(5));
    }
}
