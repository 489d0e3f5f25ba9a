//! `/proc/PID/mem` (the process's memory at file offsets equal to addresses) and
//! `/proc/PID/auxv` (the auxiliary vector its exec put on the stack).
//!
//! `mem` is opened under ptrace access rules (the opener's own process, the same
//! ids on a dumpable process, or `CAP_SYS_PTRACE`) and keeps the address space of
//! open time weakly, as Linux keeps its mm: once that image is gone (exec, exit)
//! reads and writes see nothing. Writes are forced like Linux's FOLL_FORCE
//! (program text, read-only data of private mappings: a debugger's breakpoints)
//! into the opener's own process, and into a process of which one thread is in a
//! ptrace-stop of the opener's (the stopped thread makes the write, as for
//! `PTRACE_POKETEXT`); another process's non-writable pages are refused with
//! `EIO`, since a platform changes page protections only from a thread of the
//! process that owns them.

use std::sync::{Arc, Mutex, Weak};

use crate::creds::{Credentials, CAP_SYS_PTRACE};
use crate::errno::{Errno, SysResult};
use crate::kernel::process::{self, ThreadGroup};
use crate::kernel::Kernel;
use crate::mm::MemoryManager;
use crate::platform::AddressSpace;
use crate::vfs::{FileImpl, Inode, Stat};

/// Size of one transfer step: a page, as Linux's `mem_rw` copies.
const CHUNK: u64 = 4096;

/// The bytes of `/proc/PID/auxv`: the (key, value) words up to and including the
/// `AT_NULL` pair; empty for a process without an address space (a zombie).
pub fn auxv(g: &ThreadGroup) -> SysResult<Vec<u8>> {
    let mm = g.state()?.view.mm.as_ref().and_then(Weak::upgrade);
    let Some(mm) = mm else {
        return Ok(Vec::new());
    };
    let words = mm.lock().map_err(|_| Errno::EIO)?.auxv.clone();
    Ok(words.iter().flat_map(|w| w.to_ne_bytes()).collect())
}

/// `/proc/PID/mem` of process `tg`.
pub fn mem_inode(
    tg: &Arc<ThreadGroup>,
    kernel: &Arc<Kernel>,
    ino: u64,
    owner: (u32, u32),
) -> Arc<dyn Inode> {
    Arc::new(MemInode {
        ino,
        owner,
        tg: Arc::downgrade(tg),
        kernel: Arc::downgrade(kernel),
    })
}

struct MemInode {
    ino: u64,
    owner: (u32, u32),
    tg: Weak<ThreadGroup>,
    kernel: Weak<Kernel>,
}

fn mem_stat(ino: u64, owner: (u32, u32)) -> Stat {
    Stat {
        ino,
        mode: libc::S_IFREG | 0o600,
        nlink: 1,
        uid: owner.0,
        gid: owner.1,
        blksize: 4096,
        ..Default::default()
    }
}

/// Linux's `PTRACE_MODE_ATTACH_FSCREDS` check of `caller` against process `tg`:
/// the same filesystem uid and gid as every id of a dumpable target, or
/// `CAP_SYS_PTRACE`.
fn may_access(caller: &Credentials, tg: &ThreadGroup) -> SysResult<()> {
    if caller.has_cap(CAP_SYS_PTRACE) {
        return Ok(());
    }
    let st = tg.state()?;
    let ids = st.view.ids;
    let same_uid = ids[..3].iter().all(|&u| u == caller.fsuid);
    let same_gid = ids[4..7].iter().all(|&g| g == caller.fsgid);
    if same_uid && same_gid && st.dumpable {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

impl Inode for MemInode {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(mem_stat(self.ino, self.owner))
    }
    fn open(&self, _flags: i32) -> SysResult<Box<dyn FileImpl>> {
        let tg = self.tg.upgrade().ok_or(Errno::ESRCH)?;
        let kernel = self.kernel.upgrade().ok_or(Errno::ESRCH)?;
        let me = process::current().0;
        let own = me == tg.tgid;
        if !own {
            let caller = kernel.registry()?.group(me).ok_or(Errno::ESRCH)?;
            let creds = caller.state()?.view.creds.clone();
            may_access(&creds, &tg)?;
            // Yama's attach rule; `mm_access` turns every refusal into EACCES.
            crate::kernel::yama::may_attach(&kernel, me, creds.has_cap(CAP_SYS_PTRACE), &tg)
                .map_err(|_| Errno::EACCES)?;
        }
        let mm = tg.state()?.view.mm.clone().ok_or(Errno::ESRCH)?;
        if mm.upgrade().is_none() {
            return Err(Errno::ESRCH);
        }
        Ok(Box::new(MemFile {
            mm,
            own,
            target: self.tg.clone(),
            kernel: self.kernel.clone(),
            stat: mem_stat(self.ino, self.owner),
        }))
    }
}

/// An open `/proc/PID/mem`.
struct MemFile {
    mm: Weak<Mutex<MemoryManager>>,
    /// The opener's own process: writes may be forced.
    own: bool,
    target: Weak<ThreadGroup>,
    kernel: Weak<Kernel>,
    stat: Stat,
}

impl MemFile {
    /// Writes `data` at `addr` through a thread of the target that is in a
    /// ptrace-stop of the calling thread's process, a word at a time.
    fn poke_stopped(&self, space: &dyn AddressSpace, addr: u64, data: &[u8]) -> SysResult<()> {
        let kernel = self.kernel.upgrade().ok_or(Errno::EIO)?;
        let target = self.target.upgrade().ok_or(Errno::EIO)?;
        let (me, my_tid) = process::current();
        let (my_h, my_tg) = kernel.registry()?.thread(my_tid).ok_or(Errno::EIO)?;
        let threads: Vec<_> = target.state()?.threads.values().cloned().collect();
        let stopped = threads
            .into_iter()
            .find(|h| {
                h.ptrace
                    .lock()
                    .map(|t| t.tracer == me && t.stop.as_ref().is_some_and(|s| s.resume.is_none()))
                    .unwrap_or(false)
            })
            .ok_or(Errno::EIO)?;
        let first = addr & !7;
        let end = addr.checked_add(data.len() as u64).ok_or(Errno::EIO)?;
        let mut word_at = first;
        while word_at < end {
            let mut w = [0u8; 8];
            crate::mm::io::read_exact(space, word_at, &mut w)?;
            for (i, b) in w.iter_mut().enumerate() {
                let a = word_at + i as u64;
                if (addr..end).contains(&a) {
                    *b = data[(a - addr) as usize];
                }
            }
            crate::kernel::ptrace::forced_poke_by(
                &my_h,
                &my_tg,
                &stopped,
                word_at,
                u64::from_le_bytes(w),
            )?;
            word_at += 8;
        }
        Ok(())
    }
}

/// `[addr, addr + len)` split at page boundaries.
fn chunks(addr: u64, len: usize) -> impl Iterator<Item = (u64, usize, usize)> {
    let mut done = 0usize;
    std::iter::from_fn(move || {
        if done >= len {
            return None;
        }
        let at = addr.checked_add(done as u64)?;
        let n = ((CHUNK - at % CHUNK) as usize).min(len - done);
        let item = (at, done, n);
        done += n;
        Some(item)
    })
}

impl FileImpl for MemFile {
    fn read(&self, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        let Some(mm) = self.mm.upgrade() else {
            return Ok(0);
        };
        let space = mm.lock().map_err(|_| Errno::EIO)?.space().clone();
        let mut total = 0;
        for (at, from, n) in chunks(offset, buf.len()) {
            match space.read(at, &mut buf[from..from + n]) {
                Ok(k) if k == n => total += n,
                Ok(k) => {
                    total += k;
                    break;
                }
                Err(_) => break,
            }
        }
        if total == 0 && !buf.is_empty() {
            return Err(Errno::EIO);
        }
        Ok(total)
    }

    fn write(&self, buf: &[u8], offset: u64) -> SysResult<usize> {
        let Some(mm) = self.mm.upgrade() else {
            return Ok(0);
        };
        let space = mm.lock().map_err(|_| Errno::EIO)?.space().clone();
        let mut total = 0;
        for (at, from, n) in chunks(offset, buf.len()) {
            let part = &buf[from..from + n];
            let ok = crate::mm::io::write_all(&*space, at, part).is_ok()
                || if self.own {
                    crate::kernel::ptrace::force_write(&space, &mm, at, part).is_ok()
                } else {
                    self.poke_stopped(&*space, at, part).is_ok()
                };
            if !ok {
                break;
            }
            total += n;
        }
        if total == 0 && !buf.is_empty() {
            return Err(Errno::EIO);
        }
        Ok(total)
    }

    fn stat(&self) -> SysResult<Stat> {
        Ok(self.stat)
    }
}
