//! Kernel-wide state and the task model. One [`Task`] per application thread, each
//! driven by its own sentry host thread (see [`task::Task::run`]).

pub mod creds;
pub mod exec;
pub mod futex;
pub mod limits;
pub mod signals;
pub mod task;
pub mod wait;

use std::collections::HashSet;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::platform::Platform;
use crate::vfs::Dentry;

pub use task::{ExitStatus, Task};

/// The kernel release `uname` reports: fixed, so the container sees the same kernel
/// whatever the host runs.
pub const RELEASE: &str = "4.4.0";
/// The `uname` version string.
pub const VERSION: &str = "#1 SMP Sun Jan 10 15:06:54 PST 2016";

/// State shared by every task of a sandbox.
pub struct Kernel {
    /// How app code runs.
    pub platform: Arc<dyn Platform>,
    /// The container's root directory.
    pub root: Arc<Dentry>,
    /// `uname -n`.
    pub hostname: Mutex<String>,
    /// Print every syscall.
    pub strace: bool,
    /// When the sandbox booted (for `sysinfo` uptime).
    pub boot_time: Instant,
    /// CPUs the sandbox may use, counted once at boot (the count reads host cgroup
    /// files, which the confined sentry can no longer open).
    pub ncpus: usize,
    /// Every futex of the sandbox.
    pub futexes: futex::FutexTable,
    next_tid: AtomicI32,
    reported_unimplemented: Mutex<HashSet<u64>>,
}

impl Kernel {
    /// A kernel over `platform` serving `root`.
    pub fn new(
        platform: Arc<dyn Platform>,
        root: Arc<Dentry>,
        hostname: String,
        strace: bool,
    ) -> Arc<Kernel> {
        Arc::new(Kernel {
            platform,
            root,
            hostname: Mutex::new(hostname),
            strace,
            boot_time: Instant::now(),
            ncpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            futexes: futex::FutexTable::new(),
            next_tid: AtomicI32::new(1),
            reported_unimplemented: Mutex::new(HashSet::new()),
        })
    }

    /// A fresh thread id in the container's pid namespace (the first is 1).
    pub fn alloc_tid(&self) -> i32 {
        self.next_tid.fetch_add(1, Ordering::Relaxed)
    }

    /// Logs an unimplemented syscall once per number.
    pub fn report_unimplemented(&self, nr: u64, name: &str) {
        if let Ok(mut seen) = self.reported_unimplemented.lock() {
            if seen.insert(nr) {
                tracing::warn!(nr, "unimplemented syscall {name} ({nr}): returning ENOSYS");
            }
        }
    }
}
