//! `poll`, `ppoll`, `select`, `pselect6`: the task registers its waker on the wait
//! queue of every file involved (an epoll file's queue is woken by any file it
//! watches), then blocks once; each wake-up re-evaluates readiness.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::kernel::wait::{self, Interrupted};
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::Args;
use crate::vfs::OpenFile;

/// Most pollfd entries one call may pass (Linux's bound is `RLIMIT_NOFILE`).
const MAX_POLL_FDS: u64 = 1 << 20;

/// Blocks `task` until `ready` yields a value, with the task's waker registered on
/// the wait queues of `files`. `Err` says why the wait ended without a value.
pub fn wait_on_files<T>(
    task: &Task,
    files: &[Arc<OpenFile>],
    deadline: Option<Instant>,
    ready: impl FnMut() -> SysResult<Option<T>>,
) -> Result<SysResult<T>, Interrupted> {
    let mut seen: Vec<*const crate::kernel::wait::WaitQueue> = Vec::new();
    let mut regs = Vec::new();
    for f in files {
        if let Some(q) = f.imp().wait_queue() {
            let p = q as *const _;
            if !seen.contains(&p) {
                seen.push(p);
                regs.push(q.register(&task.waker));
            }
        }
    }
    let r = wait::block(&task.waker, deadline, || task.signal_pending(), ready);
    drop(regs);
    r
}

/// Reads a `struct timespec` timeout; `EINVAL` if malformed.
pub fn read_timespec(task: &Task, addr: u64) -> SysResult<Duration> {
    let ts: libc::timespec = io::read_struct(task.mem(), addr)?;
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

fn write_timespec(task: &Task, addr: u64, d: Duration) -> SysResult<()> {
    let ts = libc::timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: d.subsec_nanos() as i64,
    };
    io::write_struct(task.mem(), addr, &ts)
}

fn deadline_after(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

fn remaining(deadline: Option<Instant>) -> Duration {
    deadline
        .map(|d| d.saturating_duration_since(Instant::now()))
        .unwrap_or_default()
}

/// Applies a temporary signal mask (ppoll, pselect6, epoll_pwait) for the call's
/// duration and restores the old one afterwards. Delivery is the lead's: the mask
/// is what `signal_pending` consults once it exists.
pub struct MaskGuard {
    old: Option<u64>,
}

impl MaskGuard {
    /// Reads the sigset at `addr` (size must be 8) and installs it, if `addr` is set.
    pub fn apply(task: &mut Task, addr: u64, size: u64) -> SysResult<MaskGuard> {
        if addr == 0 {
            return Ok(MaskGuard { old: None });
        }
        if size != 8 {
            return Err(Errno::EINVAL);
        }
        let set = io::read_u64(task.mem(), addr)?;
        let old = task.mask();
        task.set_mask(set);
        Ok(MaskGuard { old: Some(old) })
    }

    /// Puts the old mask back once signal delivery has had its chance: a signal
    /// that the temporary mask let through runs its handler first (with the old mask
    /// saved in its frame), as Linux does for ppoll, pselect and epoll_pwait.
    pub fn restore(self, task: &mut Task) {
        if let Some(old) = self.old {
            task.saved_mask = Some(old);
        }
    }
}

/// The `revents` of one pollfd entry.
fn revents(file: Option<&Arc<OpenFile>>, events: i16) -> i16 {
    match file {
        None => libc::POLLNVAL,
        Some(f) => {
            let want = (events as u16 as u32) | (libc::POLLERR | libc::POLLHUP) as u32;
            (f.imp().readiness() & want) as i16
        }
    }
}

fn do_poll(task: &Task, addr: u64, nfds: u64, deadline: Option<Instant>) -> SysResult<u64> {
    if nfds > MAX_POLL_FDS || nfds > task.limits()?.soft(libc::RLIMIT_NOFILE) {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; nfds as usize * 8];
    io::read_exact(task.mem(), addr, &mut raw)?;
    let mut entries: Vec<(i32, i16, Option<Arc<OpenFile>>)> = Vec::new();
    {
        let fds = task.fds()?;
        for c in raw.chunks_exact(8) {
            let fd = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            let events = i16::from_le_bytes([c[4], c[5]]);
            let file = if fd >= 0 { fds.get(fd).ok() } else { None };
            entries.push((fd, events, file));
        }
    }
    let files: Vec<Arc<OpenFile>> = entries.iter().filter_map(|e| e.2.clone()).collect();
    let mut out = vec![0i16; entries.len()];
    let eval = |out: &mut Vec<i16>| -> usize {
        let mut n = 0;
        for (i, (fd, events, file)) in entries.iter().enumerate() {
            out[i] = if *fd < 0 {
                0
            } else {
                revents(file.as_ref(), *events)
            };
            if out[i] != 0 {
                n += 1;
            }
        }
        n
    };
    let n = if deadline.is_some_and(|d| d <= Instant::now()) {
        eval(&mut out)
    } else {
        match wait_on_files(task, &files, deadline, || {
            let n = eval(&mut out);
            Ok((n > 0).then_some(n))
        }) {
            Ok(r) => r?,
            Err(Interrupted::Timeout) => eval(&mut out),
            Err(Interrupted::Signal) => return Err(Errno::ERESTARTNOHAND),
        }
    };
    for (i, c) in raw.chunks_exact_mut(8).enumerate() {
        c[6..8].copy_from_slice(&out[i].to_le_bytes());
    }
    io::write_all(task.mem(), addr, &raw)?;
    Ok(n as u64)
}

/// `poll(2)`.
pub fn poll(task: &mut Task, a: &Args) -> SysResult<u64> {
    let ms = a[2] as i32;
    let deadline = if ms < 0 {
        None
    } else {
        deadline_after(Duration::from_millis(ms as u64))
    };
    do_poll(task, a[0], a[1], deadline)
}

/// `ppoll(2)`: timespec timeout (the remaining time is written back) and a signal
/// mask for the duration of the wait.
pub fn ppoll(task: &mut Task, a: &Args) -> SysResult<u64> {
    let deadline = if a[2] != 0 {
        deadline_after(read_timespec(task, a[2])?)
    } else {
        None
    };
    let guard = MaskGuard::apply(task, a[3], a[4])?;
    let r = do_poll(task, a[0], a[1], deadline);
    guard.restore(task);
    if a[2] != 0 && !matches!(r, Err(Errno::EFAULT)) {
        write_timespec(task, a[2], remaining(deadline))?;
    }
    r
}

/// Bitmap of `nfds` descriptors, as `select` passes them (longs of 64 bits).
fn read_set(task: &Task, addr: u64, nfds: usize) -> SysResult<Option<Vec<u64>>> {
    if addr == 0 {
        return Ok(None);
    }
    let words = nfds.div_ceil(64);
    let mut raw = vec![0u8; words * 8];
    io::read_exact(task.mem(), addr, &mut raw)?;
    Ok(Some(
        raw.chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
    ))
}

fn write_set(task: &Task, addr: u64, set: &Option<Vec<u64>>) -> SysResult<()> {
    if let Some(words) = set {
        let raw: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        io::write_all(task.mem(), addr, &raw)?;
    }
    Ok(())
}

const SEL_IN: u32 =
    (libc::POLLIN | libc::POLLRDNORM | libc::POLLRDBAND | libc::POLLHUP | libc::POLLERR) as u32;
const SEL_OUT: u32 = (libc::POLLOUT | libc::POLLWRNORM | libc::POLLWRBAND | libc::POLLERR) as u32;
const SEL_EX: u32 = libc::POLLPRI as u32;

fn do_select(task: &Task, nfds: i32, addrs: [u64; 3], deadline: Option<Instant>) -> SysResult<u64> {
    if nfds < 0 {
        return Err(Errno::EINVAL);
    }
    // Linux looks no further than its fd table's capacity: bits past it are ignored,
    // not reported as EBADF.
    let nfds = (nfds as usize).min(task.fds()?.capacity());
    let sets = [
        read_set(task, addrs[0], nfds)?,
        read_set(task, addrs[1], nfds)?,
        read_set(task, addrs[2], nfds)?,
    ];
    let mut watched: Vec<(usize, Arc<OpenFile>)> = Vec::new();
    {
        let fds = task.fds()?;
        for fd in 0..nfds {
            let (w, b) = (fd / 64, 1u64 << (fd % 64));
            if sets.iter().flatten().any(|s| s[w] & b != 0) {
                watched.push((fd, fds.get(fd as i32)?));
            }
        }
    }
    let files: Vec<Arc<OpenFile>> = watched.iter().map(|w| w.1.clone()).collect();
    let masks = [SEL_IN, SEL_OUT, SEL_EX];
    let eval = || {
        let mut out: [Option<Vec<u64>>; 3] = [
            sets[0].as_ref().map(|s| vec![0; s.len()]),
            sets[1].as_ref().map(|s| vec![0; s.len()]),
            sets[2].as_ref().map(|s| vec![0; s.len()]),
        ];
        let mut n = 0u64;
        for (fd, f) in &watched {
            let r = f.imp().readiness();
            let (w, b) = (fd / 64, 1u64 << (fd % 64));
            for k in 0..3 {
                if let (Some(inp), Some(o)) = (&sets[k], &mut out[k]) {
                    if inp[w] & b != 0 && r & masks[k] != 0 {
                        o[w] |= b;
                        n += 1;
                    }
                }
            }
        }
        (n, out)
    };
    let (n, out) = if deadline.is_some_and(|d| d <= Instant::now()) {
        eval()
    } else {
        match wait_on_files(task, &files, deadline, || {
            let r = eval();
            Ok((r.0 > 0).then_some(r))
        }) {
            Ok(r) => r?,
            Err(Interrupted::Timeout) => eval(),
            Err(Interrupted::Signal) => return Err(Errno::ERESTARTNOHAND),
        }
    };
    for k in 0..3 {
        write_set(task, addrs[k], &out[k])?;
    }
    Ok(n)
}

/// `select(2)`: the timeval is updated with the time not slept, as Linux does.
pub fn select(task: &mut Task, a: &Args) -> SysResult<u64> {
    let deadline = if a[4] != 0 {
        let tv: libc::timeval = io::read_struct(task.mem(), a[4])?;
        // Linux folds whole seconds of tv_usec into tv_sec before validating.
        let sec = tv.tv_sec.saturating_add(tv.tv_usec / 1_000_000);
        let nsec = (tv.tv_usec % 1_000_000) * 1000;
        if sec < 0 || nsec < 0 {
            return Err(Errno::EINVAL);
        }
        deadline_after(Duration::new(sec as u64, nsec as u32))
    } else {
        None
    };
    let r = do_select(task, a[0] as i32, [a[1], a[2], a[3]], deadline);
    if a[4] != 0 && r.is_ok() {
        let left = remaining(deadline);
        let tv = libc::timeval {
            tv_sec: left.as_secs() as i64,
            tv_usec: left.subsec_micros() as i64,
        };
        io::write_struct(task.mem(), a[4], &tv)?;
    }
    r
}

/// `pselect6(2)`: timespec timeout (updated as select's) and a `{sigset*, size}` pair.
pub fn pselect6(task: &mut Task, a: &Args) -> SysResult<u64> {
    let deadline = if a[4] != 0 {
        deadline_after(read_timespec(task, a[4])?)
    } else {
        None
    };
    let (set, size) = if a[5] != 0 {
        let mut b = [0u8; 16];
        io::read_exact(task.mem(), a[5], &mut b)?;
        (
            u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])),
            u64::from_le_bytes(b[8..].try_into().unwrap_or([0; 8])),
        )
    } else {
        (0, 0)
    };
    let guard = MaskGuard::apply(task, set, size)?;
    let r = do_select(task, a[0] as i32, [a[1], a[2], a[3]], deadline);
    guard.restore(task);
    if a[4] != 0 && r.is_ok() {
        write_timespec(task, a[4], remaining(deadline))?;
    }
    r
}
