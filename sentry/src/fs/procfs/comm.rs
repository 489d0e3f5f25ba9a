//! `/proc/PID/comm` and `/proc/PID/task/TID/comm`: a thread's name, read by
//! anyone and written, as on Linux, only by a thread of the same process
//! (`EINVAL` from any other, whatever its privilege). A write keeps its first 15
//! bytes as they are (a trailing newline included, as `echo name >` leaves it on
//! Linux). `/proc/PID/comm` names the process's first thread, whose name is
//! also the process's in `stat` and `status`.

use std::sync::{Arc, Weak};

use crate::errno::Errno;
use crate::kernel::process::{self, ThreadGroup};
use crate::kernel::Kernel;
use crate::vfs::Inode;

use super::node::GenFile;

/// The `comm` file of thread `tid` of `tg` (`None`: the process's own, its first
/// thread's), inode `ino`, owned by `owner`.
pub fn comm_file(
    kernel: &Arc<Kernel>,
    tg: &Arc<ThreadGroup>,
    tid: Option<i32>,
    ino: u64,
    owner: (u32, u32),
) -> Arc<dyn Inode> {
    let g: Weak<ThreadGroup> = Arc::downgrade(tg);
    let g2 = g.clone();
    let (k, k2) = (Arc::downgrade(kernel), Arc::downgrade(kernel));
    let target = tid.unwrap_or(tg.tgid);
    GenFile::writable(
        ino,
        0o644,
        owner,
        Arc::new(move || {
            let g = g.upgrade().ok_or(Errno::ESRCH)?;
            let thread = k
                .upgrade()
                .and_then(|k| k.registry().ok()?.thread(target))
                .map(|(h, _)| h);
            // A thread that is gone (an exited first thread) keeps the process's.
            let name = match thread {
                Some(h) if target != g.tgid => h.comm(),
                _ => g.state()?.comm.clone(),
            };
            Ok([name, b"\n".to_vec()].concat())
        }),
        Arc::new(move |buf: &[u8]| {
            let g = g2.upgrade().ok_or(Errno::ESRCH)?;
            if process::current().0 != g.tgid {
                return Err(Errno::EINVAL);
            }
            let name = &buf[..buf.len().min(15)];
            let kernel = k2.upgrade().ok_or(Errno::ESRCH)?;
            if let Some((h, _)) = kernel.registry()?.thread(target) {
                h.set_comm(name);
            }
            if target == g.tgid {
                g.state()?.comm = name.to_vec();
            }
            Ok(())
        }),
    )
}

/// A name as `/proc/PID/status` shows it: newlines and backslashes escaped
/// (`\n`, `\\`), as Linux's `proc_task_name` does; other bytes as they are.
pub fn status_name(comm: &[u8]) -> String {
    let mut s = String::new();
    for ch in String::from_utf8_lossy(comm).chars() {
        match ch {
            '\n' => s.push_str("\\n"),
            '\\' => s.push_str("\\\\"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_name_escapes_newline_and_backslash() {
        assert_eq!(super::status_name(b"a\nb\\c d"), "a\\nb\\\\c d");
    }
}
