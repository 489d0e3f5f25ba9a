//! Linux AIO contexts (`io_setup` and friends): the sandbox's table of contexts and
//! each context's completion ring. As on Linux, a context belongs to an address
//! space (a forked child or an exec'd image has none of its parent's) and its
//! ring is mapped into that address space at the context's id: the `aio_ring`
//! header (`magic`, `nr`, `head`, `tail`...) followed by `io_event`s, which
//! libaio reads directly. The sentry appends completions at `tail`;
//! `io_getevents` (or the library) consumes from `head`.
//!
//! Reads, writes and syncs complete during `io_submit`; a poll that is not ready
//! at once stays pending on the context until `io_getevents`, `io_pgetevents`,
//! `io_cancel` or `io_destroy` finds it ready or ends it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::errno::{Errno, SysResult};
use crate::kernel::wait::WaitQueue;
use crate::mm::{io, MemoryManager};
use crate::platform::AddressSpace;
use crate::vfs::OpenFile;

/// `AIO_RING_MAGIC`.
pub const RING_MAGIC: u32 = 0xa10a_10a1;
/// Bytes of the ring header (`struct aio_ring`).
pub const RING_HEADER: u64 = 32;
/// Bytes of one `struct io_event`.
pub const EVENT_SIZE: u64 = 32;
/// Default `/proc/sys/fs/aio-max-nr`.
pub const DEFAULT_MAX_NR: u64 = 65536;

/// One completion: `io_event`'s `data`, `obj`, `res`, `res2`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The iocb's `aio_data`.
    pub data: u64,
    /// The iocb's address.
    pub obj: u64,
    /// The result (bytes, poll mask or a negative errno).
    pub res: i64,
    /// Always 0.
    pub res2: i64,
}

impl Event {
    fn to_bytes(self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&self.data.to_le_bytes());
        b[8..16].copy_from_slice(&self.obj.to_le_bytes());
        b[16..24].copy_from_slice(&self.res.to_le_bytes());
        b[24..32].copy_from_slice(&self.res2.to_le_bytes());
        b
    }
}

/// A poll request not yet ready.
pub struct PendingPoll {
    /// The file polled.
    pub file: Arc<OpenFile>,
    /// The events asked for (with `POLLERR | POLLHUP`).
    pub mask: u32,
    /// The completion it will post.
    pub event: Event,
    /// The eventfd to signal (`IOCB_FLAG_RESFD`).
    pub resfd: Option<Arc<OpenFile>>,
}

/// One context.
pub struct AioContext {
    /// The id `io_setup` returned: the ring's address.
    pub id: u64,
    /// Slots of the ring.
    pub nr: u32,
    /// What `io_setup` asked for (counted in `aio-nr`).
    pub max_reqs: u64,
    /// Polls still pending.
    pub pending: Mutex<Vec<PendingPoll>>,
    /// Woken at each completion (`io_getevents` waits on it).
    pub queue: WaitQueue,
    /// Where the next completion goes: as on Linux, completions are written at
    /// the kernel's own tail (readers use the ring's, which the application can
    /// write; a forged one only misleads that application).
    pub tail: Mutex<u32>,
}

/// The ring's slot count for a request of `nr_events` on `ncpus` CPUs, as Linux
/// sizes it: doubled, at least four per CPU, two spare, rounded up to whole pages.
pub fn ring_slots(nr_events: u32, ncpus: usize) -> (u32, u64) {
    let n = (nr_events.max(ncpus as u32 * 4) as u64) * 2 + 2;
    let bytes = (RING_HEADER + n * EVENT_SIZE).next_multiple_of(4096);
    (((bytes - RING_HEADER) / EVENT_SIZE) as u32, bytes)
}

impl AioContext {
    fn pending(&self) -> SysResult<MutexGuard<'_, Vec<PendingPoll>>> {
        self.pending.lock().map_err(|_| Errno::EIO)
    }

    /// Writes a fresh ring header at the context's address.
    pub fn init_ring(&self, mem: &dyn AddressSpace, index: u32) -> SysResult<()> {
        let mut h = [0u8; 32];
        for (i, v) in [index, self.nr, 0, 0, RING_MAGIC, 1, 0, RING_HEADER as u32]
            .into_iter()
            .enumerate()
        {
            h[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        io::write_all(mem, self.id, &h)
    }

    fn head_tail(&self, mem: &dyn AddressSpace) -> SysResult<(u32, u32)> {
        let mut b = [0u8; 8];
        io::read_exact(mem, self.id + 8, &mut b)?;
        let head = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) % self.nr;
        let tail = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) % self.nr;
        Ok((head, tail))
    }

    /// Completions in the ring not yet consumed.
    pub fn ready(&self, mem: &dyn AddressSpace) -> SysResult<u32> {
        let (head, tail) = self.head_tail(mem)?;
        Ok((tail + self.nr - head) % self.nr)
    }

    /// Requests that may still be submitted: one slot of the ring stays empty, and
    /// completions not yet consumed (up to the sentry's own tail) and pending
    /// polls hold theirs.
    pub fn free_slots(&self, mem: &dyn AddressSpace) -> SysResult<u32> {
        let (head, _) = self.head_tail(mem)?;
        let tail = *self.tail.lock().map_err(|_| Errno::EIO)?;
        let ready = (tail + self.nr - head) % self.nr;
        let used = ready as usize + self.pending()?.len();
        Ok((self.nr as usize - 1).saturating_sub(used) as u32)
    }

    /// Appends a completion at the ring's tail and signals its eventfd.
    pub fn post(
        &self,
        mem: &dyn AddressSpace,
        ev: Event,
        resfd: Option<&Arc<OpenFile>>,
    ) -> SysResult<()> {
        {
            let mut tail = self.tail.lock().map_err(|_| Errno::EIO)?;
            io::write_all(
                mem,
                self.id + RING_HEADER + *tail as u64 * EVENT_SIZE,
                &ev.to_bytes(),
            )?;
            *tail = (*tail + 1) % self.nr;
            io::write_u32(mem, self.id + 12, *tail)?;
        }
        if let Some(efd) = resfd {
            // A full eventfd counter loses the wake-up, as Linux's eventfd_signal.
            let _ = efd.imp().write(&1u64.to_ne_bytes(), 0);
        }
        self.queue.notify_all();
        Ok(())
    }

    /// Takes up to `max` completions from the ring's head.
    pub fn take(&self, mem: &dyn AddressSpace, max: usize) -> SysResult<Vec<[u8; 32]>> {
        let (mut head, tail) = self.head_tail(mem)?;
        let mut out = Vec::new();
        while head != tail && out.len() < max {
            let mut b = [0u8; 32];
            io::read_exact(
                mem,
                self.id + RING_HEADER + head as u64 * EVENT_SIZE,
                &mut b,
            )?;
            out.push(b);
            head = (head + 1) % self.nr;
        }
        io::write_u32(mem, self.id + 8, head)?;
        Ok(out)
    }

    /// Queues a poll that was not ready.
    pub fn add_poll(&self, p: PendingPoll) -> SysResult<()> {
        self.pending()?.push(p);
        Ok(())
    }

    /// Completes the pending polls whose files are now ready.
    pub fn check_polls(&self, mem: &dyn AddressSpace) -> SysResult<()> {
        let mut pending = self.pending()?;
        let mut i = 0;
        while i < pending.len() {
            let r = pending[i].file.imp().readiness() & pending[i].mask;
            if r != 0 {
                let p = pending.remove(i);
                self.post(
                    mem,
                    Event {
                        res: r as i64,
                        ..p.event
                    },
                    p.resfd.as_ref(),
                )?;
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    /// The files the pending polls wait on (to register on their queues).
    pub fn polled_files(&self) -> Vec<Arc<OpenFile>> {
        self.pending()
            .map(|p| p.iter().map(|x| x.file.clone()).collect())
            .unwrap_or_default()
    }

    /// `io_cancel` of the pending poll of iocb `obj`: it completes with result 0.
    /// `EINVAL` if no such request is in flight (it has completed, or never was).
    pub fn cancel(&self, mem: &dyn AddressSpace, obj: u64) -> SysResult<Event> {
        let p = {
            let mut pending = self.pending()?;
            let i = pending
                .iter()
                .position(|p| p.event.obj == obj)
                .ok_or(Errno::EINVAL)?;
            pending.remove(i)
        };
        let ev = Event { res: 0, ..p.event };
        self.post(mem, ev, p.resfd.as_ref())?;
        Ok(ev)
    }

    /// Drops every pending request (`io_destroy`, exit).
    pub fn cancel_all(&self) {
        if let Ok(mut p) = self.pending() {
            p.clear();
        }
        self.queue.notify_all();
    }
}

struct Entry {
    mm: Weak<Mutex<MemoryManager>>,
    ctx: Arc<AioContext>,
}

/// The sandbox's AIO contexts and the `aio-nr` / `aio-max-nr` accounting.
pub struct AioTable {
    entries: Mutex<Vec<Entry>>,
    nr: AtomicU64,
    /// `/proc/sys/fs/aio-max-nr`.
    pub max_nr: AtomicU64,
}

impl Default for AioTable {
    fn default() -> Self {
        AioTable {
            entries: Mutex::new(Vec::new()),
            nr: AtomicU64::new(0),
            max_nr: AtomicU64::new(DEFAULT_MAX_NR),
        }
    }
}

impl AioTable {
    /// The entries, without those of address spaces that are gone (their contexts
    /// end with them, giving back their `aio-nr`).
    fn entries(&self) -> SysResult<MutexGuard<'_, Vec<Entry>>> {
        let mut e = self.entries.lock().map_err(|_| Errno::EIO)?;
        e.retain(|x| {
            let live = x.mm.strong_count() > 0;
            if !live {
                x.ctx.cancel_all();
                self.nr.fetch_sub(x.ctx.max_reqs, Ordering::Relaxed);
            }
            live
        });
        Ok(e)
    }

    /// `/proc/sys/fs/aio-nr`: events reserved by live contexts.
    pub fn nr(&self) -> u64 {
        drop(self.entries());
        self.nr.load(Ordering::Relaxed)
    }

    /// Reserves `max_reqs` events for a new context (`EAGAIN` past `aio-max-nr`).
    pub fn reserve(&self, max_reqs: u64) -> SysResult<()> {
        let _e = self.entries()?;
        let max = self.max_nr.load(Ordering::Relaxed);
        let cur = self.nr.load(Ordering::Relaxed);
        if max_reqs > max || cur + max_reqs > max {
            return Err(Errno::EAGAIN);
        }
        self.nr.fetch_add(max_reqs, Ordering::Relaxed);
        Ok(())
    }

    /// Gives back a reservation whose context was never made.
    pub fn unreserve(&self, max_reqs: u64) {
        self.nr.fetch_sub(max_reqs, Ordering::Relaxed);
    }

    /// Adds `ctx` for address space `mm`; returns its index among that space's.
    pub fn insert(&self, mm: &Arc<Mutex<MemoryManager>>, ctx: Arc<AioContext>) -> SysResult<u32> {
        let mut e = self.entries()?;
        let index = e
            .iter()
            .filter(|x| x.mm.ptr_eq(&Arc::downgrade(mm)))
            .count();
        e.push(Entry {
            mm: Arc::downgrade(mm),
            ctx,
        });
        Ok(index as u32)
    }

    /// The context `id` of address space `mm` (`EINVAL` if none).
    pub fn get(&self, mm: &Arc<Mutex<MemoryManager>>, id: u64) -> SysResult<Arc<AioContext>> {
        let w = Arc::downgrade(mm);
        self.entries()?
            .iter()
            .find(|x| x.ctx.id == id && x.mm.ptr_eq(&w))
            .map(|x| x.ctx.clone())
            .ok_or(Errno::EINVAL)
    }

    /// Removes context `id` of `mm` (`io_destroy`), giving back its `aio-nr`.
    pub fn remove(&self, mm: &Arc<Mutex<MemoryManager>>, id: u64) -> SysResult<Arc<AioContext>> {
        let w = Arc::downgrade(mm);
        let mut e = self.entries()?;
        let i = e
            .iter()
            .position(|x| x.ctx.id == id && x.mm.ptr_eq(&w))
            .ok_or(Errno::EINVAL)?;
        let ctx = e.remove(i).ctx;
        self.nr.fetch_sub(ctx.max_reqs, Ordering::Relaxed);
        ctx.cancel_all();
        Ok(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_sizes_as_linux() {
        // io_setup(4) on two CPUs: 18 events round up to one page of 127 slots.
        assert_eq!(ring_slots(4, 2), (127, 4096));
        assert_eq!(ring_slots(128, 2), (383, 12288));
    }

    #[test]
    fn reservation_limits() {
        let t = AioTable::default();
        t.max_nr.store(100, Ordering::Relaxed);
        assert_eq!(t.reserve(101), Err(Errno::EAGAIN));
        t.reserve(60).unwrap();
        assert_eq!(t.reserve(60), Err(Errno::EAGAIN));
        assert_eq!(t.nr(), 60);
        t.unreserve(60);
        assert_eq!(t.nr(), 0);
    }
}
