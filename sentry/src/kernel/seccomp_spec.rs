//! The container's `linux.seccomp` (OCI) compiled into a rule set the seccomp engine
//! runs like a filter: per system call number, the rules in spec order (the first
//! whose argument conditions all hold decides), else the default action. Meaning as
//! runc gives it with libseccomp: unknown system call names are skipped, a rule
//! with the default action is dropped, `SCMP_ACT_ERRNO`/`SCMP_ACT_TRACE` return
//! `errnoRet` (EPERM when absent), several conditions on one argument are
//! alternatives, a call from another architecture is `SCMP_ACT_KILL`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cbpf;
use crate::config::{SeccompArg, SeccompConfig};
use crate::kernel::seccomp::{self as sc, Filter, Program};
use crate::kernel::SyscallTable;

/// How an argument is compared (`SCMP_CMP_*`), all on 64 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    MaskedEq,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Cond {
    index: usize,
    op: Op,
    value: u64,
    value_two: u64,
}

impl Cond {
    fn holds(&self, args: &[u64; 6]) -> bool {
        let a = args[self.index];
        match self.op {
            Op::Ne => a != self.value,
            Op::Lt => a < self.value,
            Op::Le => a <= self.value,
            Op::Eq => a == self.value,
            Op::Ge => a >= self.value,
            Op::Gt => a > self.value,
            Op::MaskedEq => a & self.value == self.value_two,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    action: u32,
    conds: Vec<Cond>,
}

/// A compiled `linux.seccomp`.
#[derive(Debug, Default)]
pub struct RuleSet {
    default: u32,
    by_nr: HashMap<u32, Vec<Rule>>,
}

impl RuleSet {
    /// How many rules it holds (counted as instructions against Linux's per-thread
    /// limit).
    pub fn len(&self) -> usize {
        self.by_nr.values().map(|v| v.len()).sum::<usize>() + 1
    }

    /// True if it has no rule (only the default action).
    pub fn is_empty(&self) -> bool {
        self.by_nr.is_empty()
    }

    /// The verdict for one `seccomp_data`.
    pub fn run(&self, data: &[u8; cbpf::DATA_SIZE as usize]) -> u32 {
        let word = |o: usize| u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
        if word(4) != sc::AUDIT_ARCH_X86_64 {
            return sc::RET_KILL_THREAD;
        }
        let Some(rules) = self.by_nr.get(&word(0)) else {
            return self.default;
        };
        let mut args = [0u64; 6];
        for (i, a) in args.iter_mut().enumerate() {
            *a = word(16 + i * 8) as u64 | (word(20 + i * 8) as u64) << 32;
        }
        rules
            .iter()
            .find(|r| r.conds.iter().all(|c| c.holds(&args)))
            .map(|r| r.action)
            .unwrap_or(self.default)
    }
}

const EPERM: u32 = 1;

/// The seccomp return value of an `SCMP_ACT_*` name; `field` names it in errors.
fn action(name: &str, errno: Option<u32>, field: &str) -> Result<u32, String> {
    let with_errno = matches!(name, "SCMP_ACT_ERRNO" | "SCMP_ACT_TRACE");
    if errno.is_some() && !with_errno {
        return Err(format!(
            "{field}: errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE"
        ));
    }
    let data = errno.unwrap_or(EPERM) & 0xffff;
    Ok(match name {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => sc::RET_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS" => sc::RET_KILL_PROCESS,
        "SCMP_ACT_TRAP" => sc::RET_TRAP,
        "SCMP_ACT_ERRNO" => sc::RET_ERRNO | data,
        "SCMP_ACT_TRACE" => sc::RET_TRACE | data,
        "SCMP_ACT_LOG" => sc::RET_LOG,
        "SCMP_ACT_ALLOW" => sc::RET_ALLOW,
        "SCMP_ACT_NOTIFY" => {
            return Err(format!(
                "{field}: SCMP_ACT_NOTIFY (seccomp user notification) is not supported by rvisor"
            ))
        }
        other => return Err(format!("{field}: unknown seccomp action {other:?}")),
    })
}

fn cond(a: &SeccompArg, field: &str) -> Result<Cond, String> {
    if a.index > 5 {
        return Err(format!("{field}.index: must be 0 to 5, got {}", a.index));
    }
    let op = match a.op.as_str() {
        "SCMP_CMP_NE" => Op::Ne,
        "SCMP_CMP_LT" => Op::Lt,
        "SCMP_CMP_LE" => Op::Le,
        "SCMP_CMP_EQ" => Op::Eq,
        "SCMP_CMP_GE" => Op::Ge,
        "SCMP_CMP_GT" => Op::Gt,
        "SCMP_CMP_MASKED_EQ" => Op::MaskedEq,
        other => return Err(format!("{field}.op: unknown comparison {other:?}")),
    };
    Ok(Cond {
        index: a.index as usize,
        op,
        value: a.value,
        value_two: a.value_two,
    })
}

/// Compiles `cfg` (errors name the `linux.seccomp` field) into a filter ready to
/// attach to a new process; `syscalls` numbers the calls it names.
pub fn compile(cfg: &SeccompConfig, syscalls: &dyn SyscallTable) -> Result<Arc<Filter>, String> {
    let default = action(
        &cfg.default_action,
        cfg.default_errno_ret,
        "linux.seccomp.defaultAction",
    )?;
    if cfg.listener_path.as_deref().is_some_and(|p| !p.is_empty()) {
        return Err(
            "linux.seccomp.listenerPath: seccomp user notification is not supported by rvisor"
                .into(),
        );
    }
    for (i, a) in cfg.architectures.iter().flatten().enumerate() {
        if !a.starts_with("SCMP_ARCH_") {
            return Err(format!(
                "linux.seccomp.architectures[{i}]: unknown architecture {a:?}"
            ));
        }
    }
    let mut log = false;
    for (i, f) in cfg.flags.iter().flatten().enumerate() {
        match f.as_str() {
            "SECCOMP_FILTER_FLAG_LOG" => log = true,
            // One thread at this point; no speculation controls to leave on; no
            // listener.
            "SECCOMP_FILTER_FLAG_TSYNC"
            | "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
            | "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => {}
            other => return Err(format!("linux.seccomp.flags[{i}]: unknown flag {other:?}")),
        }
    }
    let mut set = RuleSet {
        default,
        by_nr: HashMap::new(),
    };
    for (i, r) in cfg.syscalls.iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(&r.action, r.errno_ret, &format!("{field}.action"))?;
        let mut conds = Vec::new();
        for (j, a) in r.args.iter().flatten().enumerate() {
            conds.push(cond(a, &format!("{field}.args[{j}]"))?);
        }
        if act == default {
            continue;
        }
        // Conditions on one argument index more than once are alternatives (one
        // rule each), as runc adds them; otherwise all must hold.
        let mut seen = [0u8; 6];
        conds.iter().for_each(|c| seen[c.index] += 1);
        let rules: Vec<Rule> = if seen.iter().any(|&n| n > 1) {
            conds
                .iter()
                .map(|c| Rule {
                    action: act,
                    conds: vec![c.clone()],
                })
                .collect()
        } else {
            vec![Rule { action: act, conds }]
        };
        for name in &r.names {
            match syscalls.number_of(name) {
                Some(nr) => set
                    .by_nr
                    .entry(nr as u32)
                    .or_default()
                    .extend(rules.iter().cloned()),
                None => tracing::info!("{field}: unknown system call {name:?} skipped"),
            }
        }
    }
    Filter::attach(Program::Rules(set), log, None)
        .map_err(|e| format!("linux.seccomp: too many rules ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SeccompRule;

    fn data(nr: u32, args: [u64; 6]) -> [u8; 64] {
        let mut d = [0u8; 64];
        d[0..4].copy_from_slice(&nr.to_le_bytes());
        d[4..8].copy_from_slice(&sc::AUDIT_ARCH_X86_64.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            d[16 + i * 8..24 + i * 8].copy_from_slice(&a.to_le_bytes());
        }
        d
    }

    fn arg(index: u32, op: &str, value: u64, value_two: u64) -> SeccompArg {
        SeccompArg {
            index,
            value,
            value_two,
            op: op.into(),
        }
    }

    #[test]
    fn actions_and_arguments() {
        let cfg = SeccompConfig {
            default_action: "SCMP_ACT_ALLOW".into(),
            syscalls: Some(vec![
                SeccompRule {
                    names: vec!["getcwd".into(), "mkdir".into(), "no_such_call".into()],
                    action: "SCMP_ACT_ERRNO".into(),
                    ..Default::default()
                },
                SeccompRule {
                    names: vec!["personality".into()],
                    action: "SCMP_ACT_ERRNO".into(),
                    errno_ret: Some(22),
                    args: Some(vec![arg(0, "SCMP_CMP_EQ", 0xffff_ffff, 0)]),
                },
                SeccompRule {
                    names: vec!["dup".into()],
                    action: "SCMP_ACT_KILL_PROCESS".into(),
                    args: Some(vec![arg(0, "SCMP_CMP_MASKED_EQ", 0xff, 0x42)]),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let f = compile(&cfg, &crate::syscalls::TABLE).unwrap();
        let run = |nr, a0| f.run_for_test(&data(nr, [a0, 0, 0, 0, 0, 0]));
        assert_eq!(run(79, 0), sc::RET_ERRNO | 1);
        assert_eq!(run(83, 0), sc::RET_ERRNO | 1);
        assert_eq!(run(135, 0xffff_ffff), sc::RET_ERRNO | 22);
        assert_eq!(run(135, 0), sc::RET_ALLOW);
        assert_eq!(run(32, 0x1142), sc::RET_KILL_PROCESS);
        assert_eq!(run(32, 0x1143), sc::RET_ALLOW);
        let mut other_arch = data(79, [0; 6]);
        other_arch[4..8].copy_from_slice(&0x4000_0003u32.to_le_bytes());
        assert_eq!(f.run_for_test(&other_arch), sc::RET_KILL_THREAD);
    }

    #[test]
    fn same_argument_twice_is_an_alternative() {
        let cfg = SeccompConfig {
            default_action: "SCMP_ACT_ERRNO".into(),
            default_errno_ret: Some(38),
            syscalls: Some(vec![SeccompRule {
                names: vec!["personality".into()],
                action: "SCMP_ACT_ALLOW".into(),
                args: Some(vec![
                    arg(0, "SCMP_CMP_EQ", 0, 0),
                    arg(0, "SCMP_CMP_EQ", 8, 0),
                ]),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let f = compile(&cfg, &crate::syscalls::TABLE).unwrap();
        let run = |a0| f.run_for_test(&data(135, [a0, 0, 0, 0, 0, 0]));
        assert_eq!(run(0), sc::RET_ALLOW);
        assert_eq!(run(8), sc::RET_ALLOW);
        assert_eq!(run(9), sc::RET_ERRNO | 38);
    }

    #[test]
    fn bad_specs_are_refused() {
        let bad = |c: SeccompConfig| compile(&c, &crate::syscalls::TABLE).unwrap_err();
        let base = SeccompConfig {
            default_action: "SCMP_ACT_ALLOW".into(),
            ..Default::default()
        };
        assert!(bad(SeccompConfig {
            default_action: "SCMP_ACT_FROB".into(),
            ..base.clone()
        })
        .contains("defaultAction"));
        assert!(bad(SeccompConfig {
            default_action: "SCMP_ACT_NOTIFY".into(),
            ..base.clone()
        })
        .contains("not supported"));
        assert!(bad(SeccompConfig {
            flags: Some(vec!["SECCOMP_FILTER_FLAG_FROB".into()]),
            ..base.clone()
        })
        .contains("flags[0]"));
        assert!(bad(SeccompConfig {
            syscalls: Some(vec![SeccompRule {
                names: vec!["read".into()],
                action: "SCMP_ACT_ERRNO".into(),
                args: Some(vec![arg(6, "SCMP_CMP_EQ", 0, 0)]),
                ..Default::default()
            }]),
            ..base.clone()
        })
        .contains("syscalls[0].args[0].index"));
        assert!(bad(SeccompConfig {
            syscalls: Some(vec![SeccompRule {
                names: vec!["read".into()],
                action: "SCMP_ACT_ERRNO".into(),
                args: Some(vec![arg(0, "SCMP_CMP_FROB", 0, 0)]),
                ..Default::default()
            }]),
            ..base
        })
        .contains("op"));
    }
}
