//! eventfd: a 64-bit counter that `write` adds to and `read` drains (or, with
//! `EFD_SEMAPHORE`, decrements by one).

use std::sync::Mutex;

use crate::errno::{Errno, SysResult};
use crate::fs::space::{AnonInos, AnonKind};
use crate::vfs::{FileImpl, Stat};
use crate::wait::WaitQueue;

/// Largest value the counter holds.
pub const MAX: u64 = u64::MAX - 1;

/// An eventfd.
pub struct EventFd {
    count: Mutex<u64>,
    semaphore: bool,
    queue: WaitQueue,
    ino: u64,
}

impl EventFd {
    /// A counter starting at `init`, numbered from `inos`.
    pub fn new(inos: &AnonInos, init: u64, semaphore: bool) -> EventFd {
        EventFd {
            count: Mutex::new(init),
            semaphore,
            queue: WaitQueue::new(),
            ino: inos.next(AnonKind::EventFd),
        }
    }
}

impl FileImpl for EventFd {
    fn read(&self, buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL);
        }
        let mut c = self.count.lock().map_err(|_| Errno::EIO)?;
        if *c == 0 {
            return Err(Errno::EAGAIN);
        }
        let v = if self.semaphore { 1 } else { *c };
        *c -= v;
        drop(c);
        buf[..8].copy_from_slice(&v.to_ne_bytes());
        self.queue.notify_all();
        Ok(8)
    }

    fn write(&self, buf: &[u8], _offset: u64) -> SysResult<usize> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL);
        }
        let v = u64::from_ne_bytes(buf[..8].try_into().map_err(|_| Errno::EINVAL)?);
        if v == u64::MAX {
            return Err(Errno::EINVAL);
        }
        let mut c = self.count.lock().map_err(|_| Errno::EIO)?;
        if MAX - *c < v {
            return Err(Errno::EAGAIN);
        }
        *c += v;
        drop(c);
        if v > 0 {
            self.queue.notify_all();
        }
        Ok(8)
    }

    fn seekable(&self) -> bool {
        false
    }

    fn stat(&self) -> SysResult<Stat> {
        Ok(Stat {
            dev: 0xd,
            ino: self.ino,
            mode: 0o600,
            nlink: 1,
            blksize: 4096,
            ..Default::default()
        })
    }

    fn readiness(&self) -> u32 {
        let c = self.count.lock().map(|c| *c).unwrap_or(0);
        let mut r = 0;
        if c > 0 {
            r |= libc::POLLIN | libc::POLLRDNORM;
        }
        if c < MAX {
            r |= libc::POLLOUT | libc::POLLWRNORM;
        }
        r as u32
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.queue)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_and_semaphore() {
        let e = EventFd::new(&AnonInos::default(), 0, false);
        let mut b = [0u8; 8];
        assert_eq!(e.read(&mut b, 0), Err(Errno::EAGAIN));
        assert_eq!(e.read(&mut b[..4], 0), Err(Errno::EINVAL));
        e.write(&3u64.to_ne_bytes(), 0).unwrap();
        e.write(&4u64.to_ne_bytes(), 0).unwrap();
        assert_eq!(e.read(&mut b, 0), Ok(8));
        assert_eq!(u64::from_ne_bytes(b), 7);
        assert_eq!(e.write(&u64::MAX.to_ne_bytes(), 0), Err(Errno::EINVAL));
        e.write(&MAX.to_ne_bytes(), 0).unwrap();
        assert_eq!(e.write(&1u64.to_ne_bytes(), 0), Err(Errno::EAGAIN));
        assert_eq!(e.readiness() & libc::POLLOUT as u32, 0);

        let s = EventFd::new(&AnonInos::default(), 2, true);
        s.read(&mut b, 0).unwrap();
        assert_eq!(u64::from_ne_bytes(b), 1);
        s.read(&mut b, 0).unwrap();
        assert_eq!(s.read(&mut b, 0), Err(Errno::EAGAIN));
    }
}
