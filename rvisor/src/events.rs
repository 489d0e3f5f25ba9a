//! Commands that act on the sandbox's cgroup: `pause`, `resume`, `events` and
//! `update`. They work on the host side alone (the supervisor and the sentry are
//! not asked), so they answer while the sandbox is frozen.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};

use crate::cgroup::Cgroup;
use crate::cli::{EventsArgs, GlobalOpts, IdArg, UpdateArgs};
use crate::state;

/// The container's cgroup, or an error saying why there is none.
fn cgroup_of(g: &GlobalOpts, id: &str, what: &str) -> Result<Cgroup> {
    let dir = state::dir_of(&g.root, id)?;
    if let Some(cg) = Cgroup::load(&dir)? {
        return Ok(cg);
    }
    if let Some(pod) = state::load(&g.root, id).ok().as_ref().and_then(pod_of) {
        bail_kind!(
            FailedPrecondition,
            "cannot {what} container {id:?}: it runs in the sandbox of pod {pod:?}, whose one cgroup holds every container of the pod; {what} the pod's sandbox instead"
        );
    }
    Err(anyhow!("cannot {what} container {id:?}: its sandbox has no cgroup (the host's cgroups were not writable when it was created)"))
}

/// The pod sandbox a container was added to (CRI `container-type: container` with
/// a `sandbox-id`): its processes are that sandbox's.
fn pod_of(rec: &state::Record) -> Option<String> {
    let a = &rec.annotations;
    (a.get("io.kubernetes.cri.container-type")
        .map(String::as_str)
        == Some("container"))
    .then(|| a.get("io.kubernetes.cri.sandbox-id").cloned())
    .flatten()
    .filter(|s| !s.is_empty() && *s != rec.id)
}

/// The cgroup whose figures `events` reports for a container: its own, or for a
/// container added to a pod sandbox, the sandbox's (the pod's sentry and every
/// container's processes).
fn reported_cgroup(g: &GlobalOpts, rec: &state::Record) -> Result<Cgroup> {
    let own = Cgroup::load(&state::dir_of(&g.root, &rec.id)?)?;
    match (own, pod_of(rec)) {
        (Some(cg), _) => Ok(cg),
        (None, Some(pod)) => cgroup_of(g, &pod, "report events of"),
        (None, None) => cgroup_of(g, &rec.id, "report events of"),
    }
}

/// `pause` freezes every host process of the sandbox (runc allows it for created
/// and running containers); `resume` thaws a paused one.
pub fn pause_resume(g: &GlobalOpts, a: &IdArg, pause: bool) -> Result<i32> {
    let rec = state::load(&g.root, &a.id)?;
    let what = if pause { "pause" } else { "resume" };
    match (pause, rec.status.as_str()) {
        (true, "running" | "created") | (false, "paused") => {}
        (true, "paused") => {
            bail_kind!(FailedPrecondition, "container {:?} is already paused", a.id)
        }
        (false, s) => bail_kind!(
            FailedPrecondition,
            "cannot resume container {:?}: it is {s}, not paused",
            a.id
        ),
        (true, s) => bail_kind!(NotRunning, "cannot pause container {:?}: it is {s}", a.id),
    }
    cgroup_of(g, &a.id, what)?
        .freeze(pause)
        .with_context(|| format!("{what} {:?}", a.id))?;
    Ok(0)
}

/// After SIGKILL reached a paused container, thaw it so the kill takes effect (a
/// frozen v1 task acts on it only when thawed), as runc does.
pub fn thaw_after_kill(g: &GlobalOpts, id: &str) -> Result<()> {
    cgroup_of(g, id, "kill")?.freeze(false)
}

/// Go's duration syntax as runc's `--interval` takes it: `5s`, `100ms`, `1m30s`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || anyhow!("--interval: {s:?} is not a duration like 5s or 250ms");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    if !(total > 0.0 && total < 1e9) {
        bail!("--interval: must be positive, got {s:?}");
    }
    Ok(Duration::from_secs_f64(total))
}

fn event(kind: &str, id: &str, data: Option<Value>) -> String {
    let mut e = json!({"type": kind, "id": id});
    if let Some(d) = data {
        e["data"] = d;
    }
    e.to_string()
}

fn stats_json(cg: &Cgroup) -> Result<Value> {
    serde_json::to_value(cg.stats()).context("encode stats")
}

fn print_line(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .context("write to stdout")
}

/// `events --stats` prints one stats event; without it, a stats event every
/// interval (and an `oom` event when the kernel OOM-killed in the sandbox) until
/// the container stops. A container added to a pod sandbox reports the sandbox's
/// cgroup: its figures are the pod's, and an OOM kill anywhere in the pod is
/// reported for each of its containers.
pub fn events(g: &GlobalOpts, a: &EventsArgs) -> Result<i32> {
    let interval = parse_duration(&a.interval)?;
    let rec = state::load(&g.root, &a.id)?;
    if rec.status == "stopped" {
        bail_kind!(NotRunning, "container {:?} is not running", a.id);
    }
    let cg = reported_cgroup(g, &rec)?;
    if a.stats {
        print_line(&event("stats", &a.id, Some(stats_json(&cg)?)))?;
        return Ok(0);
    }
    let mut ooms = cg.oom_kills();
    loop {
        // The state first, the count after: a kill that stopped the container (its
        // init was the victim) is counted before the container is seen stopped, so
        // its event is printed before `events` ends.
        let running = matches!(state::load(&g.root, &a.id), Ok(r) if r.status != "stopped");
        let now = cg.oom_kills();
        if now > ooms {
            print_line(&event("oom", &a.id, None))?;
            ooms = now;
        }
        if !running {
            return Ok(0);
        }
        print_line(&event("stats", &a.id, Some(stats_json(&cg)?)))?;
        std::thread::sleep(interval);
    }
}

pub fn parse_size(s: &str, flag: &str) -> Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let lower = t.to_ascii_lowercase();
    let (num, mult) = match lower.trim_end_matches('b').chars().last() {
        Some('k') => (&lower[..lower.trim_end_matches('b').len() - 1], 1i64 << 10),
        Some('m') => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 30),
        _ => (lower.trim_end_matches('b'), 1),
    };
    num.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| anyhow!("{flag}: {s:?} is not a size like 64m or 1073741824"))
}

/// The resources `update` applies: `--resources` (an OCI LinuxResources JSON file,
/// `-` for stdin) with the single-value flags on top.
pub fn update_resources(a: &UpdateArgs) -> Result<LinuxResources> {
    let mut v: Value = match &a.resources {
        Some(p) if p == Path::new("-") => {
            serde_json::from_reader(std::io::stdin()).context("--resources -: invalid JSON")?
        }
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                anyhow!("--resources {}: {}", p.display(), crate::bundle::io_msg(&e))
            })?;
            serde_json::from_str(&text)
                .map_err(|e| anyhow!("--resources {}: invalid JSON: {e}", p.display()))?
        }
        None => json!({}),
    };
    if !v.is_object() {
        bail!("--resources: must be a JSON object (OCI linux.resources)");
    }
    let mut put = |section: &str, key: &str, val: Value| {
        if !v[section].is_object() {
            v[section] = json!({});
        }
        v[section][key] = val;
    };
    if let Some(m) = &a.memory {
        put("memory", "limit", json!(parse_size(m, "--memory")?));
    }
    if let Some(m) = &a.memory_reservation {
        put(
            "memory",
            "reservation",
            json!(parse_size(m, "--memory-reservation")?),
        );
    }
    if let Some(m) = &a.memory_swap {
        put("memory", "swap", json!(parse_size(m, "--memory-swap")?));
    }
    if let Some(n) = a.cpu_shares {
        put("cpu", "shares", json!(n));
    }
    if let Some(n) = a.cpu_quota {
        put("cpu", "quota", json!(n));
    }
    if let Some(n) = a.cpu_period {
        put("cpu", "period", json!(n));
    }
    if let Some(s) = &a.cpuset_cpus {
        put("cpu", "cpus", json!(s));
    }
    if let Some(s) = &a.cpuset_mems {
        put("cpu", "mems", json!(s));
    }
    if let Some(n) = a.pids_limit {
        put("pids", "limit", json!(n));
    }
    serde_json::from_value(v).map_err(|e| anyhow!("--resources: not OCI linux.resources: {e}"))
}

/// `update`: new limits for a created, running or paused container's cgroup.
pub fn update(g: &GlobalOpts, a: &UpdateArgs) -> Result<i32> {
    let r = update_resources(a)?;
    let rec = state::load(&g.root, &a.id)?;
    if rec.status == "stopped" {
        bail_kind!(NotRunning, "container {:?} is not running", a.id);
    }
    cgroup_of(g, &a.id, "update")?.apply(&r)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "5", "s", "5x", "-1s", "0s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64m", "--memory").unwrap(), 64 << 20);
        assert_eq!(parse_size("1G", "--memory").unwrap(), 1 << 30);
        assert_eq!(parse_size("4096", "--memory").unwrap(), 4096);
        assert_eq!(parse_size("-1", "--memory").unwrap(), -1);
        assert!(parse_size("lots", "--memory").is_err());
    }

    #[test]
    fn update_merges_flags_over_the_file() {
        let f = std::env::temp_dir().join(format!("rvisor-upd-{}.json", std::process::id()));
        std::fs::write(&f, r#"{"memory":{"limit":1000000},"pids":{"limit":7}}"#).unwrap();
        let a = UpdateArgs {
            resources: Some(f.clone()),
            memory: None,
            memory_reservation: None,
            memory_swap: None,
            cpu_shares: Some(256),
            cpu_quota: None,
            cpu_period: None,
            cpuset_cpus: None,
            cpuset_mems: None,
            pids_limit: Some(9),
            id: "x".into(),
        };
        let r = update_resources(&a).unwrap();
        std::fs::remove_file(&f).unwrap();
        assert_eq!(r.memory().unwrap().limit(), Some(1_000_000));
        assert_eq!(r.pids().unwrap().limit(), 9);
        assert_eq!(r.cpu().as_ref().unwrap().shares(), Some(256));
    }
}
