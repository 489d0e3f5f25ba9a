//! Stats as containerd's cgroup v1 metrics (what `ctr task metrics` and the CRI decode).

use containerd_shim_protos::cgroups::metrics;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use rvisor_api::{MemoryEntry, Stats};

use crate::error::{internal, Result};

/// The type containerd decodes cgroup v1 figures as.
pub const METRICS_V1: &str = "io.containerd.cgroups.v1.Metrics";

/// `rvisor events` stats as containerd's cgroup v1 metrics.
pub fn metrics_v1(s: &Stats) -> metrics::Metrics {
    let mut m = metrics::Metrics::new();
    let mut pids = metrics::PidsStat::new();
    pids.current = s.pids.current;
    pids.limit = s.pids.limit;
    m.pids = MessageField::some(pids);

    let u = &s.cpu.usage;
    let mut usage = metrics::CPUUsage::new();
    usage.total = u.total;
    usage.kernel = u.kernel;
    usage.user = u.user;
    usage.per_cpu = u.percpu.clone();
    let t = &s.cpu.throttling;
    let mut thr = metrics::Throttle::new();
    thr.periods = t.periods;
    thr.throttled_periods = t.throttled_periods;
    thr.throttled_time = t.throttled_time;
    let mut cpu = metrics::CPUStat::new();
    cpu.usage = MessageField::some(usage);
    cpu.throttling = MessageField::some(thr);
    m.cpu = MessageField::some(cpu);

    let entry = |e: &MemoryEntry| {
        let mut x = metrics::MemoryEntry::new();
        x.limit = e.limit;
        x.usage = e.usage;
        x.max = e.max;
        x.failcnt = e.failcnt;
        MessageField::some(x)
    };
    let mem = &s.memory;
    let r = |k: &str| mem.raw.get(k).copied().unwrap_or(0);
    let mut ms = metrics::MemoryStat::new();
    ms.cache = r("cache");
    ms.rss = r("rss");
    ms.rss_huge = r("rss_huge");
    ms.mapped_file = r("mapped_file");
    ms.dirty = r("dirty");
    ms.writeback = r("writeback");
    ms.pg_pg_in = r("pgpgin");
    ms.pg_pg_out = r("pgpgout");
    ms.pg_fault = r("pgfault");
    ms.pg_maj_fault = r("pgmajfault");
    ms.inactive_anon = r("inactive_anon");
    ms.active_anon = r("active_anon");
    ms.inactive_file = r("inactive_file");
    ms.active_file = r("active_file");
    ms.unevictable = r("unevictable");
    ms.hierarchical_memory_limit = r("hierarchical_memory_limit");
    ms.hierarchical_swap_limit = r("hierarchical_memsw_limit");
    ms.total_cache = r("total_cache");
    ms.total_rss = r("total_rss");
    ms.total_rss_huge = r("total_rss_huge");
    ms.total_mapped_file = r("total_mapped_file");
    ms.total_dirty = r("total_dirty");
    ms.total_writeback = r("total_writeback");
    ms.total_pg_pg_in = r("total_pgpgin");
    ms.total_pg_pg_out = r("total_pgpgout");
    ms.total_pg_fault = r("total_pgfault");
    ms.total_pg_maj_fault = r("total_pgmajfault");
    ms.total_inactive_anon = r("total_inactive_anon");
    ms.total_active_anon = r("total_active_anon");
    ms.total_inactive_file = r("total_inactive_file");
    ms.total_active_file = r("total_active_file");
    ms.total_unevictable = r("total_unevictable");
    ms.usage = entry(&mem.usage);
    ms.swap = entry(&mem.swap.clone().unwrap_or_default());
    ms.kernel = entry(&mem.kernel.clone().unwrap_or_default());
    m.memory = MessageField::some(ms);
    m
}

/// The metrics packed as the `Any` a StatsResponse carries.
pub fn to_any(s: &Stats) -> Result<Any> {
    let value = metrics_v1(s)
        .write_to_bytes()
        .map_err(|e| internal(format!("encode metrics: {e}")))?;
    let mut any = Any::new();
    any.type_url = METRICS_V1.to_string();
    any.value = value;
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_stats_become_cgroup_v1_metrics() {
        let d = serde_json::json!({
            "cpu": {"usage": {"total": 30, "kernel": 10, "user": 20, "percpu": [12, 18]},
                    "throttling": {"periods": 4, "throttledPeriods": 2, "throttledTime": 99}},
            "memory": {"usage": {"limit": 1000, "usage": 600, "max": 700, "failcnt": 1},
                       "swap": {"limit": 2000, "usage": 650},
                       "raw": {"cache": 5, "rss": 6, "pgfault": 7, "total_rss": 8,
                               "hierarchical_memsw_limit": 9}},
            "pids": {"current": 3, "limit": 64},
        });
        let s: Stats = serde_json::from_value(d).unwrap();
        let m = metrics_v1(&s);
        assert_eq!((m.pids.current, m.pids.limit), (3, 64));
        let u = &m.cpu.usage;
        assert_eq!((u.total, u.kernel, u.user), (30, 10, 20));
        assert_eq!(u.per_cpu, vec![12, 18]);
        assert_eq!(m.cpu.throttling.throttled_time, 99);
        let mem = &m.memory;
        assert_eq!(
            (mem.usage.limit, mem.usage.usage, mem.usage.max),
            (1000, 600, 700)
        );
        assert_eq!(mem.swap.usage, 650);
        assert_eq!(
            (mem.cache, mem.rss, mem.pg_fault, mem.total_rss),
            (5, 6, 7, 8)
        );
        assert_eq!(mem.hierarchical_swap_limit, 9);
        // What containerd decodes: the type name and a protobuf that parses back.
        let any = to_any(&s).unwrap();
        assert_eq!(any.type_url, "io.containerd.cgroups.v1.Metrics");
        let back = metrics::Metrics::parse_from_bytes(&any.value).unwrap();
        assert_eq!(back, m);
    }
}
