use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A container's resource usage, as `rvisor events` reports it in a `stats` event
/// (the JSON keys are runc's). Missing figures read as zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// CPU time and throttling.
    pub cpu: Cpu,
    /// Memory usage and limits.
    pub memory: Memory,
    /// Task count and limit.
    pub pids: Pids,
}

/// CPU figures, in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cpu {
    /// Time spent.
    pub usage: CpuUsage,
    /// CFS quota throttling.
    pub throttling: Throttling,
}

/// CPU time spent, in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuUsage {
    /// All time.
    pub total: u64,
    /// Time per host CPU (cgroup v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    /// Time in the host kernel.
    pub kernel: u64,
    /// Time in user mode.
    pub user: u64,
}

/// CFS bandwidth throttling.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Throttling {
    /// Periods elapsed.
    pub periods: u64,
    /// Periods in which the cgroup was throttled.
    #[serde(rename = "throttledPeriods")]
    pub throttled_periods: u64,
    /// Nanoseconds throttled.
    #[serde(rename = "throttledTime")]
    pub throttled_time: u64,
}

/// Memory figures, in bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    /// Page cache.
    pub cache: u64,
    /// Memory proper.
    pub usage: MemoryEntry,
    /// Memory plus swap (v1) or swap (v2), when the host accounts it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap: Option<MemoryEntry>,
    /// Kernel memory (cgroup v1 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<MemoryEntry>,
    /// The cgroup's `memory.stat`, key by key.
    pub raw: BTreeMap<String, u64>,
}

/// One memory counter with its limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryEntry {
    /// The limit (`u64::MAX` when unlimited on cgroup v2).
    pub limit: u64,
    /// Current usage.
    pub usage: u64,
    /// Highest usage seen.
    pub max: u64,
    /// Times the limit was hit.
    pub failcnt: u64,
}

/// Task counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pids {
    /// Tasks in the cgroup.
    pub current: u64,
    /// The limit; 0 when unlimited (as runc reports it).
    pub limit: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_keys_round_trip() {
        let text = r#"{"cpu":{"usage":{"total":30,"percpu":[12,18],"kernel":10,"user":20},
            "throttling":{"periods":4,"throttledPeriods":2,"throttledTime":99}},
            "memory":{"cache":5,"usage":{"limit":1000,"usage":600,"max":700,"failcnt":1},
            "swap":{"limit":2000,"usage":650,"max":0,"failcnt":0},"raw":{"rss":6}},
            "pids":{"current":3,"limit":64}}"#;
        let s: Stats = serde_json::from_str(text).unwrap();
        assert_eq!(s.cpu.throttling.throttled_periods, 2);
        assert_eq!(s.cpu.usage.percpu, vec![12, 18]);
        assert_eq!(s.memory.swap.as_ref().unwrap().usage, 650);
        assert_eq!(s.memory.kernel, None);
        assert_eq!(s.memory.raw["rss"], 6);
        let back: Stats = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        // Absent sections read as zero.
        let empty: Stats = serde_json::from_str(r#"{"pids":{"current":1}}"#).unwrap();
        assert_eq!(empty.pids.current, 1);
        assert_eq!(empty.cpu, Cpu::default());
    }
}
