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
use crate::state::Status;
use rvisor_api::{Cpu, CpuUsage, Memory, MemoryEntry, Pids, Stats};
use sentry::control::{ContainerStats, Reply, Request};

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
pub(crate) fn pod_of(rec: &state::Record) -> Option<String> {
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
    match (pause, rec.status) {
        (true, Status::Running | Status::Created) | (false, Status::Paused) => {}
        (true, Status::Paused) => {
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

fn stats_json(stats: &rvisor_api::Stats) -> Result<Value> {
    serde_json::to_value(stats).context("encode stats")
}

/// A container of a pod sandbox: the sandbox's id, and whether it is the sandbox's
/// own (pause) container.
fn pod_member(rec: &state::Record) -> Option<(String, bool)> {
    if let Some(pod) = pod_of(rec) {
        return Some((pod, false));
    }
    let kind = rec.annotations.get("io.kubernetes.cri.container-type");
    (kind.map(String::as_str) == Some("sandbox")).then(|| (rec.id.clone(), true))
}

/// The sentry's figures for container `id` of sandbox `pod` (refused while the
/// sandbox is paused: a frozen sentry cannot answer).
pub(crate) fn sentry_stats(g: &GlobalOpts, pod: &str, id: &str) -> Result<ContainerStats> {
    let rec = state::load(&g.root, pod)?;
    if rec.status == Status::Paused {
        bail_kind!(FailedPrecondition, "sandbox {pod:?} is paused");
    }
    let req = Request::Stats {
        container: id.to_string(),
    };
    match crate::lifecycle::request(g, pod, &req)? {
        Reply::Stats { stats } => Ok(stats),
        Reply::Error { msg } => bail!("stats of {id:?}: {msg}"),
        other => bail!("stats of {id:?}: unexpected reply {other:?}"),
    }
}

/// Container `id`'s own figures, in a pod whose host cgroup is `pod_cg`: CPU and
/// tasks from the sentry's accounting of the container's processes, memory from
/// the resident sizes of the stubs holding their memory; limits are the pod's.
fn container_stats(g: &GlobalOpts, pod: &str, id: &str, pod_cg: &Cgroup) -> Result<Stats> {
    let cs = sentry_stats(g, pod, id)?;
    let sup = state::load(&g.root, pod)?.pid as i32;
    let waiter = crate::sandbox_procs::waiter(sup)
        .ok_or_else(|| anyhow!("the sandbox of pod {pod:?} has no running sentry"))?;
    let host = crate::sandbox_procs::by_sandbox_pid(waiter);
    let mut mem = crate::sandbox_procs::Resident::default();
    for stub in &cs.stubs {
        if let Some(&h) = host.get(stub) {
            let r = crate::sandbox_procs::resident(h);
            mem.anon += r.anon;
            mem.file += r.file;
            mem.shmem += r.shmem;
        }
    }
    let pod_stats = pod_cg.stats();
    let mut raw = std::collections::BTreeMap::new();
    for (k, v) in [
        ("rss", mem.anon),
        ("cache", mem.file + mem.shmem),
        ("mapped_file", mem.file),
        ("shmem", mem.shmem),
    ] {
        raw.insert(k.to_string(), v);
        raw.insert(format!("total_{k}"), v);
    }
    Ok(Stats {
        cpu: Cpu {
            usage: CpuUsage {
                total: cs.cpu_user_ns + cs.cpu_system_ns,
                percpu: Vec::new(),
                kernel: cs.cpu_system_ns,
                user: cs.cpu_user_ns,
            },
            ..Cpu::default()
        },
        memory: Memory {
            cache: mem.file + mem.shmem,
            usage: MemoryEntry {
                limit: pod_stats.memory.usage.limit,
                usage: mem.total(),
                ..MemoryEntry::default()
            },
            swap: None,
            kernel: None,
            raw,
        },
        pids: Pids {
            current: cs.threads,
            limit: pod_stats.pids.limit,
        },
    })
}

/// The figures `events` reports for `rec`: an added container's own (or, when the
/// sentry cannot say, its pod's, with a warning), else its cgroup's.
fn reported_stats(g: &GlobalOpts, rec: &state::Record, cg: &Cgroup) -> Stats {
    if let Some((pod, false)) = pod_member(rec) {
        match container_stats(g, &pod, &rec.id, cg) {
            Ok(s) => return s,
            Err(e) => tracing::warn!("{}: the pod's figures instead of its own: {e:#}", rec.id),
        }
    }
    cg.stats()
}

/// Processes of pod member `rec` that the host killed, as the sentry counted them.
fn host_kills(g: &GlobalOpts, rec: &state::Record) -> Option<u64> {
    let (pod, _) = pod_member(rec)?;
    sentry_stats(g, &pod, &rec.id).ok().map(|s| s.host_kills)
}

/// Processes of pod member `rec` killed at its own memory limit, as the sentry
/// counted them.
fn limit_kills(g: &GlobalOpts, rec: &state::Record) -> Option<u64> {
    let (pod, _) = pod_member(rec)?;
    sentry_stats(g, &pod, &rec.id).ok().map(|s| s.limit_kills)
}

fn print_line(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .context("write to stdout")
}

/// `events --stats` prints one stats event; without it, a stats event every
/// interval (and an `oom` event when the kernel OOM-killed in the sandbox) until
/// the container stops.
///
/// In a pod sandbox, whose one host cgroup holds every container, a container added
/// to the pod reports its own figures (see [`container_stats`]); the pod's sandbox
/// container reports the cgroup's, the pod's total (what the CRI's PodSandboxStats
/// shows). An OOM kill is reported for the pod's container whose process the host
/// killed: the cgroup's count of OOM kills grew and so did the sentry's count of
/// that container's processes killed from outside (the sentry sees a stub die after
/// the kernel counted the kill). A process killed by hand from the host is not an
/// OOM kill unless the cgroup's count grew meanwhile.
pub fn events(g: &GlobalOpts, a: &EventsArgs) -> Result<i32> {
    let interval = parse_duration(&a.interval)?;
    let rec = state::load(&g.root, &a.id)?;
    if rec.status == Status::Stopped {
        bail_kind!(NotRunning, "container {:?} is not running", a.id);
    }
    let cg = reported_cgroup(g, &rec)?;
    if a.stats {
        let s = reported_stats(g, &rec, &cg);
        print_line(&event("stats", &a.id, Some(stats_json(&s)?)))?;
        return Ok(0);
    }
    let in_pod = pod_member(&rec).is_some();
    let mut ooms = cg.oom_kills();
    let mut kills = host_kills(g, &rec).unwrap_or(0);
    let mut at_limit = limit_kills(g, &rec).unwrap_or(0);
    loop {
        // The state first, the count after: a kill that stopped the container (its
        // init was the victim) is counted before the container is seen stopped, so
        // its event is printed before `events` ends.
        let running = matches!(state::load(&g.root, &a.id), Ok(r) if r.status != Status::Stopped);
        // Kills at a pod container's own memory limit (see `own_oom`).
        if let Some(n) = limit_kills(g, &rec).filter(|&n| n > at_limit) {
            print_line(&event("oom", &a.id, None))?;
            at_limit = n;
        }
        let now = cg.oom_kills();
        if in_pod {
            if let Some(k) = host_kills(g, &rec).filter(|&k| k > kills) {
                if now > ooms {
                    print_line(&event("oom", &a.id, None))?;
                    ooms = now;
                }
                kills = k;
            }
        } else if now > ooms {
            print_line(&event("oom", &a.id, None))?;
            ooms = now;
        }
        if !running {
            return Ok(0);
        }
        let s = reported_stats(g, &rec, &cg);
        print_line(&event("stats", &a.id, Some(stats_json(&s)?)))?;
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

/// The live containers added to pod sandbox `pod`, but `except`.
fn pod_containers(g: &GlobalOpts, pod: &str, except: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for id in state::ids(&g.root)? {
        if id == except {
            continue;
        }
        if let Ok(r) = state::load(&g.root, &id) {
            if r.status != Status::Stopped && pod_of(&r).as_deref() == Some(pod) {
                out.push(id);
            }
        }
    }
    Ok(out)
}

/// The cgroup `update` changes for `rec`: its own; for a container added to a pod,
/// the pod sandbox's while it is the pod's only running container (its limits are
/// then the pod's, and the sandbox shows them inside: `/proc/meminfo`, the CPU
/// count, the cgroup files); with other containers in the pod, none: the one host
/// cgroup holds them all, sized by the kubelet (the sum of its containers'
/// limits), and a limit for one would be enforced on every one. runsc changes no
/// host cgroup for a sub-container's update either.
fn update_cgroup(g: &GlobalOpts, rec: &state::Record) -> Result<Option<Cgroup>> {
    let id = &rec.id;
    if let Some(cg) = Cgroup::load(&state::dir_of(&g.root, id)?)? {
        return Ok(Some(cg));
    }
    let Some(pod) = pod_of(rec) else {
        return cgroup_of(g, id, "update").map(Some);
    };
    let sandbox = state::load(&g.root, &pod)?;
    if sandbox.status == Status::Stopped {
        bail_kind!(NotRunning, "the sandbox of pod {pod:?} is not running");
    }
    if !pod_containers(g, &pod, id)?.is_empty() {
        return Ok(None);
    }
    cgroup_of(g, &pod, "update").map(Some)
}

/// `update`: new limits for a created, running or paused container's cgroup (see
/// [`update_cgroup`] for a container in a pod). A container added to a pod also
/// gets them as its own limits in the sentry, which its programs see
/// (`/proc/meminfo`, its cgroup files), whatever else runs in the pod.
pub fn update(g: &GlobalOpts, a: &UpdateArgs) -> Result<i32> {
    let r = update_resources(a)?;
    let rec = state::load(&g.root, &a.id)?;
    if rec.status == Status::Stopped {
        bail_kind!(NotRunning, "container {:?} is not running", a.id);
    }
    let cg = update_cgroup(g, &rec)?;
    if let Some(cg) = &cg {
        cg.apply(&r)?;
    }
    let own_cgroup = Cgroup::load(&state::dir_of(&g.root, &a.id)?)?.is_some();
    if let (Some(pod), false) = (pod_of(&rec), own_cgroup) {
        let req = sentry::control::Request::UpdateContainer {
            id: a.id.clone(),
            limits: crate::cgroup::container_limits(Some(&r)),
        };
        match crate::lifecycle::request(g, &pod, &req)? {
            sentry::control::Reply::Ok => {}
            sentry::control::Reply::Error { msg } => bail!("update {:?}: {msg}", a.id),
            other => bail!("update {:?}: unexpected reply {other:?}", a.id),
        }
    }
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
