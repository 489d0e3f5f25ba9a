//! Per-thread scheduling attributes: policy, real-time priority, nice value, CPU
//! affinity and I/O priority. The host schedules the sandbox's threads itself, so
//! these are bookkeeping that the scheduling calls set and report as Linux does
//! (with its permission rules), inherited at clone and fork.

use std::sync::Mutex;

use crate::errno::{Errno, SysResult};

/// `SCHED_OTHER`.
pub const SCHED_OTHER: i32 = 0;
/// `SCHED_FIFO`.
pub const SCHED_FIFO: i32 = 1;
/// `SCHED_RR`.
pub const SCHED_RR: i32 = 2;
/// `SCHED_BATCH`.
pub const SCHED_BATCH: i32 = 3;
/// `SCHED_IDLE`.
pub const SCHED_IDLE: i32 = 5;
/// `SCHED_DEADLINE`.
pub const SCHED_DEADLINE: i32 = 6;

/// True for the real-time policies.
pub fn is_rt(policy: i32) -> bool {
    policy == SCHED_FIFO || policy == SCHED_RR
}

/// True for a policy Linux knows.
pub fn is_valid(policy: i32) -> bool {
    matches!(
        policy,
        SCHED_OTHER | SCHED_FIFO | SCHED_RR | SCHED_BATCH | SCHED_IDLE | SCHED_DEADLINE
    )
}

/// One thread's scheduling attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedAttr {
    /// The policy (`SCHED_*`).
    pub policy: i32,
    /// Real-time priority (1..=99 under FIFO/RR, else 0).
    pub rt_priority: u32,
    /// Nice value, -20..=19.
    pub nice: i32,
    /// `SCHED_RESET_ON_FORK`.
    pub reset_on_fork: bool,
    /// SCHED_DEADLINE parameters (runtime, deadline, period) in ns.
    pub deadline: (u64, u64, u64),
    /// CPU affinity, one bit per CPU; `None`: every CPU of the sandbox.
    pub affinity: Option<Vec<u64>>,
    /// `ioprio_set` value; 0 (IOPRIO_CLASS_NONE) until set.
    pub ioprio: u16,
}

impl Default for SchedAttr {
    fn default() -> Self {
        SchedAttr {
            policy: SCHED_OTHER,
            rt_priority: 0,
            nice: 0,
            reset_on_fork: false,
            deadline: (0, 0, 0),
            affinity: None,
            ioprio: 0,
        }
    }
}

impl SchedAttr {
    /// What a new thread or process starts with: a copy, except that
    /// `SCHED_RESET_ON_FORK` drops a real-time or deadline policy and a negative
    /// nice value (and itself).
    pub fn forked(&self) -> SchedAttr {
        let mut a = self.clone();
        if a.reset_on_fork {
            if is_rt(a.policy) || a.policy == SCHED_DEADLINE {
                a.policy = SCHED_OTHER;
                a.rt_priority = 0;
                a.deadline = (0, 0, 0);
            }
            a.nice = a.nice.max(0);
            a.reset_on_fork = false;
        }
        a
    }
}

/// A thread's attributes behind a lock (kept on its thread handle).
#[derive(Default)]
pub struct SchedCell(Mutex<SchedAttr>);

impl SchedCell {
    /// A cell holding `a`.
    pub fn new(a: SchedAttr) -> SchedCell {
        SchedCell(Mutex::new(a))
    }

    /// A copy of the attributes.
    pub fn get(&self) -> SchedAttr {
        self.0.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Changes the attributes with `f`.
    pub fn update<T>(&self, f: impl FnOnce(&mut SchedAttr) -> SysResult<T>) -> SysResult<T> {
        let mut a = self.0.lock().map_err(|_| Errno::EIO)?;
        f(&mut a)
    }
}

/// Linux's `nice_to_rlimit`: the RLIMIT_NICE value that allows nice `n`.
pub fn nice_to_rlimit(n: i32) -> u64 {
    (20 - n.clamp(-20, 19)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_on_fork() {
        let a = SchedAttr {
            policy: SCHED_FIFO,
            rt_priority: 10,
            nice: -5,
            reset_on_fork: true,
            ..Default::default()
        };
        let f = a.forked();
        assert_eq!(
            (f.policy, f.rt_priority, f.nice, f.reset_on_fork),
            (SCHED_OTHER, 0, 0, false)
        );
        let b = SchedAttr {
            policy: SCHED_RR,
            rt_priority: 3,
            nice: 4,
            ..Default::default()
        };
        assert_eq!(b.forked(), b);
        assert_eq!(nice_to_rlimit(19), 1);
        assert_eq!(nice_to_rlimit(-20), 40);
    }
}
