//! Resource limits (`getrlimit`, `prlimit64`).

use crate::errno::{Errno, SysResult};

/// `RLIM_INFINITY`.
pub const INFINITY: u64 = u64::MAX;
/// Resources Linux defines (`RLIM_NLIMITS`).
pub const NLIMITS: usize = 16;
/// Linux's default `fs.nr_open`: the highest RLIMIT_NOFILE may go.
pub const NR_OPEN: u64 = 1 << 20;

/// One resource's soft and hard limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Soft (current) limit.
    pub cur: u64,
    /// Hard (maximum) limit.
    pub max: u64,
}

/// The limits of a thread group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits([Limit; NLIMITS]);

impl Default for Limits {
    /// Linux's defaults for a process started by init, with a container-sized
    /// NOFILE as Docker and runc give.
    fn default() -> Self {
        let inf = Limit {
            cur: INFINITY,
            max: INFINITY,
        };
        let mut l = [inf; NLIMITS];
        l[libc::RLIMIT_STACK as usize] = Limit {
            cur: 8 << 20,
            max: INFINITY,
        };
        l[libc::RLIMIT_CORE as usize] = Limit {
            cur: 0,
            max: INFINITY,
        };
        l[libc::RLIMIT_NOFILE as usize] = Limit {
            cur: 1024,
            max: 1024 * 1024,
        };
        l[libc::RLIMIT_MEMLOCK as usize] = Limit {
            cur: 8 << 20,
            max: 8 << 20,
        };
        l[libc::RLIMIT_NPROC as usize] = Limit {
            cur: 0x1_0000,
            max: 0x1_0000,
        };
        l[libc::RLIMIT_SIGPENDING as usize] = Limit {
            cur: 0x1_0000,
            max: 0x1_0000,
        };
        l[libc::RLIMIT_MSGQUEUE as usize] = Limit {
            cur: 819_200,
            max: 819_200,
        };
        l[libc::RLIMIT_NICE as usize] = Limit { cur: 0, max: 0 };
        l[libc::RLIMIT_RTPRIO as usize] = Limit { cur: 0, max: 0 };
        Limits(l)
    }
}

impl Limits {
    /// The limit of `resource`, or `EINVAL`.
    pub fn get(&self, resource: u32) -> SysResult<Limit> {
        self.0.get(resource as usize).copied().ok_or(Errno::EINVAL)
    }

    /// Sets a limit with Linux's checks: soft above hard is `EINVAL`; raising the hard
    /// limit needs CAP_SYS_RESOURCE (`privileged`); NOFILE never above `nr_open`.
    pub fn set(&mut self, resource: u32, new: Limit, privileged: bool) -> SysResult<()> {
        let old = self.get(resource)?;
        if new.cur > new.max {
            return Err(Errno::EINVAL);
        }
        if new.max > old.max && !privileged {
            return Err(Errno::EPERM);
        }
        if resource == libc::RLIMIT_NOFILE && new.max > NR_OPEN {
            return Err(Errno::EPERM);
        }
        self.0[resource as usize] = new;
        Ok(())
    }

    /// The soft limit of `resource` (infinite for an unknown one).
    pub fn soft(&self, resource: u32) -> u64 {
        self.get(resource).map(|l| l.cur).unwrap_or(INFINITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        let mut l = Limits::default();
        let n = libc::RLIMIT_NOFILE;
        assert_eq!(
            l.set(n, Limit { cur: 10, max: 5 }, true),
            Err(Errno::EINVAL)
        );
        assert_eq!(l.set(n, Limit { cur: 10, max: 20 }, false), Ok(()));
        assert_eq!(
            l.set(n, Limit { cur: 10, max: 30 }, false),
            Err(Errno::EPERM)
        );
        assert_eq!(
            l.set(
                n,
                Limit {
                    cur: 10,
                    max: NR_OPEN + 1
                },
                true
            ),
            Err(Errno::EPERM)
        );
        assert_eq!(l.get(99), Err(Errno::EINVAL));
        assert_eq!(l.soft(n), 10);
    }
}
