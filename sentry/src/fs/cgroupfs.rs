//! A read-only cgroup v2 filesystem showing the container's own cgroup: its limits
//! (in a pod, each container's own where its spec sets them, see
//! `kernel::containers`; the reader's container decides) and its usage (the
//! sandbox's), in the files JVMs, Go, Node, systemd and cAdvisor read
//! (`memory.max`, `cpu.max`, `cpuset.cpus.effective`, `pids.max`, ...). The
//! container is at the root of its own cgroup namespace (`/proc/self/cgroup` says
//! `0::/`), as with runc's `cgroupns`; it has no children and cannot make any.
//!
//! Read-only, as a container gets its cgroup without delegation: opening a file for
//! writing is `EACCES` and nothing can be created in it (a mount with `ro`, as
//! Docker and containerd ask, gives `EROFS` first).

use std::fmt::Write as _;
use std::sync::{Arc, Weak};

use crate::errno::{Errno, SysResult};
use crate::fs::procfs::node::{GenDir, GenFile};
use crate::kernel::Kernel;
use crate::vfs::{FileImpl, Inode, Stat, StatFs};

/// `CGROUP2_SUPER_MAGIC` (what systemd and libcontainer check with `statfs`).
pub const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// `st_dev` of the cgroup filesystem's objects.
const CGROUP_DEV: u64 = 0x1a;

/// One file: its name and how its contents are made.
type Entry = (&'static str, fn(&Kernel) -> SysResult<String>);

/// The controllers the sandbox's cgroup shows.
const CONTROLLERS: &str = "cpuset cpu memory pids";

fn limit_or_max(v: Option<u64>) -> String {
    v.map_or_else(|| "max\n".to_string(), |v| format!("{v}\n"))
}

fn cpu_list(n: usize) -> String {
    if n <= 1 {
        "0\n".into()
    } else {
        format!("0-{}\n", n - 1)
    }
}

fn procs(k: &Kernel) -> SysResult<String> {
    let r = k.registry()?;
    let mut s = String::new();
    for (tgid, g) in &r.groups {
        // A zombie has left its cgroup, as on Linux.
        if g.state().map(|st| st.zombie.is_none()).unwrap_or(false) {
            let _ = writeln!(s, "{tgid}");
        }
    }
    Ok(s)
}

fn threads(k: &Kernel) -> SysResult<String> {
    let r = k.registry()?;
    Ok(r.threads.keys().map(|t| format!("{t}\n")).collect())
}

fn pids_current(k: &Kernel) -> SysResult<String> {
    // The pids controller counts tasks (threads).
    Ok(format!("{}\n", k.registry()?.threads.len()))
}

fn cpu_stat(k: &Kernel) -> SysResult<String> {
    let u = k.resources.cpu_usage().unwrap_or_else(|| {
        // Without a host cgroup: the sentry's own CPU clock, as /proc/stat shows.
        let t = crate::sys::host::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID)
            .map(|t| std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32))
            .unwrap_or_default();
        crate::kernel::resources::CpuUsage {
            total: t,
            user: t,
            ..Default::default()
        }
    });
    let us = |d: std::time::Duration| d.as_micros();
    Ok(format!(
        "usage_usec {}\nuser_usec {}\nsystem_usec {}\nnr_periods {}\nnr_throttled {}\nthrottled_usec {}\n",
        us(u.total),
        us(u.user),
        us(u.system),
        u.periods,
        u.throttled,
        us(u.throttled_time)
    ))
}

fn memory_stat(k: &Kernel) -> SysResult<String> {
    let u = k.memory_usage();
    let inactive_file = u.file.saturating_sub(u.shmem);
    let rows: [(&str, u64); 20] = [
        ("anon", u.anon),
        ("file", u.file),
        ("kernel", 0),
        ("kernel_stack", 0),
        ("pagetables", 0),
        ("sock", 0),
        ("shmem", u.shmem),
        ("file_mapped", u.file_mapped),
        ("file_dirty", 0),
        ("file_writeback", 0),
        ("swapcached", 0),
        ("anon_thp", 0),
        ("inactive_anon", 0),
        ("active_anon", u.anon + u.shmem),
        ("inactive_file", inactive_file),
        ("active_file", 0),
        ("unevictable", 0),
        ("slab_reclaimable", 0),
        ("slab_unreclaimable", 0),
        ("slab", 0),
    ];
    Ok(rows.iter().map(|(n, v)| format!("{n} {v}\n")).collect())
}

fn memory_events(k: &Kernel) -> SysResult<String> {
    let kills = k.resources.oom_kills().unwrap_or(0);
    Ok(format!(
        "low 0\nhigh 0\nmax {kills}\noom {kills}\noom_kill {kills}\noom_group_kill 0\n"
    ))
}

/// Every file of the cgroup, in `ls` order.
const FILES: [Entry; 32] = [
    ("cgroup.controllers", |_| Ok(format!("{CONTROLLERS}\n"))),
    ("cgroup.events", |_| Ok("populated 1\nfrozen 0\n".into())),
    ("cgroup.freeze", |_| Ok("0\n".into())),
    ("cgroup.max.depth", |_| Ok("max\n".into())),
    ("cgroup.max.descendants", |_| Ok("max\n".into())),
    ("cgroup.procs", procs),
    ("cgroup.stat", |_| {
        Ok("nr_descendants 0\nnr_dying_descendants 0\n".into())
    }),
    ("cgroup.subtree_control", |_| Ok("\n".into())),
    ("cgroup.threads", threads),
    ("cgroup.type", |_| Ok("domain\n".into())),
    ("cpu.idle", |_| Ok("0\n".into())),
    ("cpu.max", |k| {
        Ok(match k.cpu_max_view() {
            Some((q, p)) => format!("{q} {p}\n"),
            None => format!("max {}\n", crate::kernel::resources::DEFAULT_PERIOD),
        })
    }),
    ("cpu.stat", cpu_stat),
    ("cpu.weight", |k| {
        Ok(format!("{}\n", k.resources.cpu_weight()))
    }),
    ("cpuset.cpus", |k| Ok(cpu_list(k.ncpus))),
    ("cpuset.cpus.effective", |k| Ok(cpu_list(k.ncpus))),
    ("cpuset.mems", |_| Ok("0\n".into())),
    ("cpuset.mems.effective", |_| Ok("0\n".into())),
    ("memory.current", |k| {
        Ok(format!("{}\n", k.memory_usage().total))
    }),
    ("memory.events", memory_events),
    ("memory.high", |_| Ok("max\n".into())),
    ("memory.low", |k| {
        Ok(format!("{}\n", k.resources.memory_low()))
    }),
    ("memory.max", |k| Ok(limit_or_max(k.memory_limit_view()))),
    ("memory.min", |_| Ok("0\n".into())),
    ("memory.oom.group", |_| Ok("0\n".into())),
    ("memory.stat", memory_stat),
    ("memory.swap.current", |_| Ok("0\n".into())),
    ("memory.swap.events", |_| {
        Ok("high 0\nmax 0\nfail 0\n".into())
    }),
    ("memory.swap.high", |_| Ok("max\n".into())),
    ("memory.swap.max", |k| {
        Ok(limit_or_max(k.resources.swap_limit()))
    }),
    ("pids.current", pids_current),
    ("pids.max", |k| Ok(limit_or_max(k.pids_limit_view()))),
];

/// `/proc/cgroups` of a cgroup v2 kernel with these controllers, the sandbox's
/// cgroup being the one cgroup of each.
pub fn proc_cgroups() -> String {
    let mut s = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n".to_string();
    for c in CONTROLLERS.split(' ') {
        let _ = writeln!(s, "{c}\t0\t1\t1");
    }
    s
}

/// A cgroup file: generated when opened; never writable.
struct CgFile {
    ino: u64,
    inner: Arc<GenFile>,
}

impl Inode for CgFile {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        let mut st = self.inner.stat()?;
        st.dev = CGROUP_DEV;
        st.ino = self.ino;
        Ok(st)
    }
    fn open(&self, flags: i32) -> SysResult<Box<dyn FileImpl>> {
        self.inner.open(flags)
    }
    fn statfs(&self) -> SysResult<StatFs> {
        Ok(cgroup_statfs())
    }
}

/// The root directory: a fixed listing, and cgroup2's `statfs`.
struct CgRoot {
    inner: Arc<GenDir>,
}

impl Inode for CgRoot {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        let mut st = self.inner.stat()?;
        st.dev = CGROUP_DEV;
        st.mode = libc::S_IFDIR | 0o755;
        Ok(st)
    }
    fn lookup(&self, name: &[u8]) -> SysResult<Arc<dyn Inode>> {
        self.inner.lookup(name)
    }
    fn open(&self, flags: i32) -> SysResult<Box<dyn FileImpl>> {
        self.inner.open(flags)
    }
    fn statfs(&self) -> SysResult<StatFs> {
        Ok(cgroup_statfs())
    }
}

fn cgroup_statfs() -> StatFs {
    StatFs {
        kind: CGROUP2_SUPER_MAGIC,
        bsize: 4096,
        namelen: 255,
        frsize: 4096,
        ..Default::default()
    }
}

/// The root of a cgroup2 filesystem showing `kernel`'s container.
pub fn new_root(kernel: &Arc<Kernel>) -> Arc<dyn Inode> {
    let mut children: Vec<(&'static str, Arc<dyn Inode>)> = Vec::new();
    for (i, (name, gen)) in FILES.iter().enumerate() {
        let k: Weak<Kernel> = Arc::downgrade(kernel);
        let gen = *gen;
        let inner = GenFile::new(
            0,
            0o644,
            (0, 0),
            Arc::new(move || {
                let k = k.upgrade().ok_or(Errno::EIO)?;
                Ok(gen(&k)?.into_bytes())
            }),
        );
        children.push((
            name,
            Arc::new(CgFile {
                ino: 2 + i as u64,
                inner,
            }),
        ));
    }
    Arc::new(CgRoot {
        inner: GenDir::fixed(1, children),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_sorted_and_unique() {
        for w in FILES.windows(2) {
            assert!(w[0].0 < w[1].0, "{} before {}", w[0].0, w[1].0);
        }
    }

    #[test]
    fn limit_format() {
        assert_eq!(limit_or_max(None), "max\n");
        assert_eq!(limit_or_max(Some(268435456)), "268435456\n");
        assert_eq!(cpu_list(1), "0\n");
        assert_eq!(cpu_list(3), "0-2\n");
    }
}
