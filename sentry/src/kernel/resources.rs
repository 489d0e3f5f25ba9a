//! The container's resource limits as its programs see them: the memory limit is
//! the machine's memory (`/proc/meminfo`, `sysinfo`), the CPU quota or cpuset is
//! its CPU count (`/proc/cpuinfo`, `/proc/stat`, sysfs, `sched_getaffinity`), and
//! the cgroup filesystem shows both with their usage.
//!
//! Enforcement is the host's: the runtime puts every host process of the sandbox
//! (gofer, sentry, stubs) in a host cgroup with these limits. The application's
//! private memory lives in its stubs, so when the cgroup runs out the host's OOM
//! killer picks the stub with the most memory (the biggest application process),
//! which the sentry sees die of SIGKILL, as Linux kills it. Usage figures are read
//! from that cgroup through descriptors opened at boot, before the sentry confines
//! itself; without a host cgroup only the memory the sentry holds for the sandbox
//! (tmpfs, shared memory, memfd) is known.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use crate::config::ResourceConfig;

/// The cgroup v2 default `cpu.max` period, in microseconds.
pub const DEFAULT_PERIOD: u64 = 100_000;

/// The sandbox's memory use, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemUsage {
    /// Everything charged (`memory.current`).
    pub total: u64,
    /// Anonymous memory.
    pub anon: u64,
    /// File-backed memory, shared memory included (as cgroup v2 `file`).
    pub file: u64,
    /// Shared memory: tmpfs, System V and POSIX shared memory, memfd.
    pub shmem: u64,
    /// File pages mapped into processes.
    pub file_mapped: u64,
}

/// CPU time the sandbox used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuUsage {
    /// User plus system time.
    pub total: Duration,
    /// User time.
    pub user: Duration,
    /// System time.
    pub system: Duration,
    /// CFS periods elapsed, periods throttled, and time throttled (cgroup v2
    /// `cpu.stat`; zero where the host does not say).
    pub periods: u64,
    /// Periods in which the quota ran out.
    pub throttled: u64,
    /// Time spent throttled.
    pub throttled_time: Duration,
}

/// The machine's memory as the sandbox sees it (`/proc/meminfo`, `sysinfo`), in
/// bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemView {
    /// MemTotal: the memory limit (or the host's memory, when smaller or unlimited).
    pub total: u64,
    /// MemFree.
    pub free: u64,
    /// MemAvailable: free plus the file cache that can be dropped.
    pub available: u64,
    /// Buffers.
    pub buffers: u64,
    /// Cached (shared memory included, as Linux counts it).
    pub cached: u64,
    /// Shmem.
    pub shmem: u64,
    /// AnonPages.
    pub anon: u64,
    /// Mapped.
    pub mapped: u64,
    /// SwapTotal (and SwapFree: the sandbox's memory is never swapped by the sentry).
    pub swap: u64,
}

/// The host cgroup files usage comes from.
struct HostFiles {
    v2: bool,
    /// The limit the host enforces now (v2 `memory.max`, v1 `memory.limit_in_bytes`),
    /// which `rvisor update` changes.
    mem_max: Option<File>,
    mem_current: Option<File>,
    mem_stat: Option<File>,
    mem_events: Option<File>,
    cpu_stat: Option<File>,
    /// v1 only: `cpuacct.usage` (nanoseconds).
    cpuacct_usage: Option<File>,
    /// v1 only: `cpu.stat` of the cpu controller (throttling); v2 has it in `cpu_stat`.
    cpu_throttle: Option<File>,
}

/// The sandbox's limits, kept on its kernel.
pub struct Resources {
    memory_limit: Option<u64>,
    swap_limit: Option<u64>,
    memory_low: u64,
    cpu_max: Option<(u64, u64)>,
    cpu_weight: u64,
    ncpus: usize,
    pids_limit: Option<u64>,
    host: Option<HostFiles>,
}

/// The number of CPUs a cpuset list names (`0-3,8`), or `None` if it is malformed
/// or empty.
pub fn cpuset_count(list: &str) -> Option<usize> {
    let mut n = 0usize;
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<usize>().ok()?,
                b.trim().parse::<usize>().ok()?,
            ),
            None => {
                let a = part.trim().parse::<usize>().ok()?;
                (a, a)
            }
        };
        if b < a {
            return None;
        }
        n = n.checked_add(b - a + 1)?;
    }
    (n > 0).then_some(n)
}

/// A cgroup v1 `cpu.shares` as a cgroup v2 `cpu.weight` (the conversion runc and
/// systemd use: 2..262144 onto 1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

fn open(dir: &Option<String>, name: &str) -> Option<File> {
    let d = dir.as_ref()?;
    match File::open(std::path::Path::new(d).join(name)) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::debug!("host cgroup file {d}/{name}: {e}");
            None
        }
    }
}

/// The whole of a small host file, read from its start.
fn read_all(f: &File) -> Option<String> {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match f.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).ok()
}

/// `key value` lines.
fn kv(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

impl Resources {
    /// No limits: the sandbox has the `host_cpus` CPUs the sentry may run on.
    pub fn unlimited(host_cpus: usize) -> Resources {
        Resources {
            memory_limit: None,
            swap_limit: None,
            memory_low: 0,
            cpu_max: None,
            cpu_weight: 100,
            ncpus: host_cpus.max(1),
            pids_limit: None,
            host: None,
        }
    }

    /// The limits of `c`, on a host where the sentry may run on `host_cpus` CPUs.
    /// Opens the host cgroup's usage files, so it must run before the sentry
    /// confines itself; a file that cannot be opened is logged and left out.
    pub fn from_config(c: &ResourceConfig, host_cpus: usize) -> Resources {
        let mut r = Resources::unlimited(host_cpus);
        // A limit of "all of it" (-1 in the spec, mapped to None by the runtime) or
        // 0 (no limit to runc) is no limit.
        r.memory_limit = c.memory_limit.filter(|&m| m > 0);
        r.swap_limit = match (c.memory_swap, r.memory_limit) {
            (Some(s), Some(m)) if s >= m => Some(s - m),
            _ => None,
        };
        r.memory_low = c.memory_reservation.unwrap_or(0);
        let period = c.cpu_period.filter(|&p| p > 0).unwrap_or(DEFAULT_PERIOD);
        r.cpu_max = c.cpu_quota.filter(|&q| q > 0).map(|q| (q, period));
        r.cpu_weight = c.cpu_shares.map_or(100, shares_to_weight);
        r.pids_limit = c.pids_limit.filter(|&p| p > 0);
        let mut n = host_cpus.max(1);
        if let Some((q, p)) = r.cpu_max {
            n = n.min(q.div_ceil(p).max(1) as usize);
        }
        if let Some(set) = c.cpus.as_deref().and_then(cpuset_count) {
            n = n.min(set);
        }
        r.ncpus = n;
        if let Some(h) = &c.host_cgroup {
            let v2 = h.version == 2;
            r.host = Some(if v2 {
                HostFiles {
                    v2,
                    mem_max: open(&h.memory, "memory.max"),
                    mem_current: open(&h.memory, "memory.current"),
                    mem_stat: open(&h.memory, "memory.stat"),
                    mem_events: open(&h.memory, "memory.events"),
                    cpu_stat: open(&h.cpu, "cpu.stat"),
                    cpuacct_usage: None,
                    cpu_throttle: None,
                }
            } else {
                HostFiles {
                    v2,
                    mem_max: open(&h.memory, "memory.limit_in_bytes"),
                    mem_current: open(&h.memory, "memory.usage_in_bytes"),
                    mem_stat: open(&h.memory, "memory.stat"),
                    mem_events: open(&h.memory, "memory.oom_control"),
                    cpu_stat: open(&h.cpuacct, "cpuacct.stat"),
                    cpuacct_usage: open(&h.cpuacct, "cpuacct.usage"),
                    cpu_throttle: open(&h.cpu, "cpu.stat"),
                }
            });
        }
        r
    }

    /// CPUs the sandbox has (numbered from 0).
    pub fn ncpus(&self) -> usize {
        self.ncpus
    }

    /// The memory limit, if any: the one the sandbox's host cgroup enforces now
    /// (so `rvisor update` shows inside), else the container's.
    pub fn memory_limit(&self) -> Option<u64> {
        let host = self.host.as_ref().and_then(|h| h.mem_max.as_ref());
        if let Some(t) = host.and_then(read_all) {
            let t = t.trim();
            if t == "max" {
                return None;
            }
            if let Ok(v) = t.parse::<u64>() {
                // cgroup v1 says "no limit" with a number near 2^63.
                return (v < 1 << 62).then_some(v);
            }
        }
        self.memory_limit
    }

    /// The swap the sandbox may use beyond its memory limit, if limited.
    pub fn swap_limit(&self) -> Option<u64> {
        self.swap_limit
    }

    /// `memory.low`.
    pub fn memory_low(&self) -> u64 {
        self.memory_low
    }

    /// `(quota, period)` in microseconds, if the CPU is limited.
    pub fn cpu_max(&self) -> Option<(u64, u64)> {
        self.cpu_max
    }

    /// `cpu.weight`.
    pub fn cpu_weight(&self) -> u64 {
        self.cpu_weight
    }

    /// The process (task) limit, if any.
    pub fn pids_limit(&self) -> Option<u64> {
        self.pids_limit
    }

    /// The memory the sandbox uses: its host cgroup's figures when it has one, else
    /// `own_shmem`, the bytes the sentry holds for its tmpfs and shared memory.
    pub fn memory_usage(&self, own_shmem: u64) -> MemUsage {
        let fallback = MemUsage {
            total: own_shmem,
            anon: 0,
            file: own_shmem,
            shmem: own_shmem,
            file_mapped: 0,
        };
        let Some(h) = &self.host else {
            return fallback;
        };
        let Some(total) = h
            .mem_current
            .as_ref()
            .and_then(read_all)
            .and_then(|t| t.trim().parse::<u64>().ok())
        else {
            return fallback;
        };
        let stat = h.mem_stat.as_ref().and_then(read_all).unwrap_or_default();
        let get = |k: &str| kv(&stat, k).unwrap_or(0);
        let u = if h.v2 {
            MemUsage {
                total,
                anon: get("anon"),
                file: get("file"),
                shmem: get("shmem"),
                file_mapped: get("file_mapped"),
            }
        } else {
            // v1 counts shared memory in `cache` (and in `shmem` since Linux 4.x).
            MemUsage {
                total,
                anon: get("rss") + get("rss_huge"),
                file: get("cache"),
                shmem: get("shmem"),
                file_mapped: get("mapped_file"),
            }
        };
        // The host's figures hold the sentry's own memory, not its tmpfs pages that
        // nothing has touched since they were counted; never show less than those.
        MemUsage {
            total: u.total.max(own_shmem),
            shmem: u.shmem.max(own_shmem.min(u.total)),
            ..u
        }
    }

    /// The machine's memory as the sandbox sees it: the host's when there is no
    /// limit; with one, the limit, and what is free of it by the sandbox's usage
    /// (see [`Resources::memory_usage`]).
    pub fn mem_view(&self, own_shmem: u64) -> crate::errno::SysResult<MemView> {
        let h = crate::sys::host::sysinfo()?;
        let unit = u64::from(h.mem_unit.max(1));
        let host_total = h.totalram.saturating_mul(unit);
        let Some(limit) = self.memory_limit().filter(|&l| l < host_total) else {
            let free = h.freeram.saturating_mul(unit);
            let buffers = h.bufferram.saturating_mul(unit);
            return Ok(MemView {
                total: host_total,
                free,
                available: free.saturating_add(buffers),
                buffers,
                cached: 0,
                shmem: h.sharedram.saturating_mul(unit),
                anon: 0,
                mapped: 0,
                swap: 0,
            });
        };
        let u = self.memory_usage(own_shmem);
        let free = limit.saturating_sub(u.total);
        let dropable = u.file.saturating_sub(u.shmem);
        Ok(MemView {
            total: limit,
            free,
            available: free.saturating_add(dropable).min(limit),
            buffers: 0,
            cached: u.file.min(limit),
            shmem: u.shmem.min(limit),
            anon: u.anon.min(limit),
            mapped: u.file_mapped.min(limit),
            swap: 0,
        })
    }

    /// OOM kills in the sandbox so far (its host cgroup's count), if known.
    pub fn oom_kills(&self) -> Option<u64> {
        let t = read_all(self.host.as_ref()?.mem_events.as_ref()?)?;
        kv(&t, "oom_kill")
    }

    /// The sandbox's CPU use from its host cgroup, if it has one.
    pub fn cpu_usage(&self) -> Option<CpuUsage> {
        let h = self.host.as_ref()?;
        let stat = read_all(h.cpu_stat.as_ref()?)?;
        if h.v2 {
            let us = |k: &str| Duration::from_micros(kv(&stat, k).unwrap_or(0));
            return Some(CpuUsage {
                total: us("usage_usec"),
                user: us("user_usec"),
                system: us("system_usec"),
                periods: kv(&stat, "nr_periods").unwrap_or(0),
                throttled: kv(&stat, "nr_throttled").unwrap_or(0),
                throttled_time: us("throttled_usec"),
            });
        }
        // v1: cpuacct.stat is in USER_HZ ticks, cpuacct.usage in nanoseconds.
        let tick = |k: &str| Duration::from_millis(kv(&stat, k).unwrap_or(0) * 10);
        let total = h
            .cpuacct_usage
            .as_ref()
            .and_then(read_all)
            .and_then(|t| t.trim().parse::<u64>().ok())
            .map(Duration::from_nanos)
            .unwrap_or(tick("user") + tick("system"));
        let thr = h
            .cpu_throttle
            .as_ref()
            .and_then(read_all)
            .unwrap_or_default();
        Some(CpuUsage {
            total,
            user: tick("user"),
            system: tick("system"),
            periods: kv(&thr, "nr_periods").unwrap_or(0),
            throttled: kv(&thr, "nr_throttled").unwrap_or(0),
            throttled_time: Duration::from_nanos(kv(&thr, "throttled_time").unwrap_or(0)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_count_follows_quota_and_cpuset() {
        let mut c = ResourceConfig::default();
        assert_eq!(Resources::from_config(&c, 8).ncpus(), 8);
        c.cpu_quota = Some(150_000);
        assert_eq!(Resources::from_config(&c, 8).ncpus(), 2);
        c.cpu_period = Some(50_000);
        assert_eq!(Resources::from_config(&c, 8).ncpus(), 3);
        assert_eq!(Resources::from_config(&c, 2).ncpus(), 2);
        c.cpus = Some("4".into());
        assert_eq!(Resources::from_config(&c, 8).ncpus(), 1);
        c.cpu_quota = Some(10_000);
        c.cpus = None;
        assert_eq!(Resources::from_config(&c, 8).ncpus(), 1);
        assert_eq!(cpuset_count("0-3,8"), Some(5));
        assert_eq!(cpuset_count(" 2 "), Some(1));
        assert_eq!(cpuset_count(""), None);
        assert_eq!(cpuset_count("3-1"), None);
        assert_eq!(cpuset_count("x"), None);
    }

    #[test]
    fn memory_limits() {
        let c = ResourceConfig {
            memory_limit: Some(256 << 20),
            memory_swap: Some(512 << 20),
            ..Default::default()
        };
        let r = Resources::from_config(&c, 4);
        assert_eq!(r.memory_limit(), Some(256 << 20));
        assert_eq!(r.swap_limit(), Some(256 << 20));
        // Without a host cgroup only the sentry's own pages are known.
        let u = r.memory_usage(8192);
        assert_eq!((u.total, u.shmem, u.anon), (8192, 8192, 0));
        assert!(r.cpu_usage().is_none());
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }
}
