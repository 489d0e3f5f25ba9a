//! The sandbox's host cgroup: where the sentry (and the stubs it forks) and the gofer
//! run, the spec's `linux.resources` limits, the freezer behind `pause`/`resume`,
//! and the figures `events` reports.
//!
//! Both hierarchies are handled, chosen at run time from `/proc/self/mountinfo`: v2
//! when a `cgroup2` filesystem is mounted at `/sys/fs/cgroup` (unified), else v1, one
//! directory per controller rvisor uses (cpu, cpuacct, cpuset, memory, pids,
//! freezer); on a hybrid host the empty v2 tree beside them is left alone.
//!
//! Placement: the supervisor enters the cgroup just before it forks the gofer and
//! boot (which inherit it, and so do the stubs the sentry forks later) and goes back
//! to its own cgroup right after, so it stays responsive while the sandbox is
//! frozen. What was made is recorded in `ROOT/<id>/cgroup.json`; `delete` removes
//! exactly the directories listed there.
//!
//! Paths follow runc: `linux.cgroupsPath` absolute is taken from the hierarchy's
//! root, relative from rvisor's own cgroup; without one, the container gets
//! `<own cgroup>/<id>` (runc's default; a host whose cgroups are not writable then
//! runs it without one). With `--systemd-cgroup`, `slice:prefix:name` is mapped to
//! the cgroupfs path systemd would use (`/a.slice/a-b.slice/prefix-name.scope`), but
//! no unit is created: there is no systemd to talk to here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::state::Status;
use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{LinuxCpu, LinuxResources};
use rvisor_api::{Cpu, CpuUsage, Memory, MemoryEntry, Pids, Stats, Throttling};
use serde::{Deserialize, Serialize};

/// The record of a container's cgroup in its state directory.
pub const RECORD: &str = "cgroup.json";
/// Where cgroup filesystems live.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The v1 controllers rvisor places the sandbox under.
const V1_CONTROLLERS: [&str; 6] = ["cpu", "cpuacct", "cpuset", "memory", "pids", "freezer"];
/// How long freezing may take before `pause` gives up.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `delete` waits for the sandbox's processes to leave the cgroup.
const EMPTY_TIMEOUT: Duration = Duration::from_secs(5);
/// USER_HZ: the unit of cpuacct.stat.
const TICK_NS: u64 = 10_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    V1,
    V2,
}

/// The cgroup filesystems mounted on this host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mounts {
    /// v1: controller -> (mount point, root of the mount).
    pub v1: BTreeMap<String, (PathBuf, String)>,
    /// The cgroup2 mount: (mount point, root of the mount).
    pub v2: Option<(PathBuf, String)>,
}

impl Mounts {
    /// Reads `/proc/self/mountinfo`.
    pub fn host() -> Result<Mounts> {
        let text =
            std::fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
        Ok(parse_mountinfo(&text))
    }

    /// v2 only when the unified hierarchy is the one at /sys/fs/cgroup.
    pub fn version(&self) -> Version {
        match &self.v2 {
            Some((p, _)) if p == Path::new(CGROUP_ROOT) => Version::V2,
            _ => Version::V1,
        }
    }
}

/// Parses mountinfo lines: `id parent dev root mountpoint opts... - fstype src superopts`.
pub fn parse_mountinfo(text: &str) -> Mounts {
    let mut m = Mounts::default();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let (root, point) = (unescape(pre[3]), PathBuf::from(unescape(pre[4])));
        match post[0] {
            "cgroup2" => m.v2 = Some((point, root)),
            "cgroup" => {
                for opt in post[2].split(',') {
                    if V1_CONTROLLERS.contains(&opt) {
                        m.v1.entry(opt.to_string())
                            .or_insert_with(|| (point.clone(), root.clone()));
                    }
                }
            }
            _ => {}
        }
    }
    m
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's cgroup in each hierarchy, from `/proc/self/cgroup` text:
/// controller -> path ("" for v2).
pub fn parse_proc_cgroup(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            out.insert(String::new(), path.to_string());
        }
        for c in ctrls.split(',').filter(|c| !c.is_empty()) {
            out.insert(c.to_string(), path.to_string());
        }
    }
    out
}

/// The cgroup path (from a hierarchy's root, or relative to our own cgroup) named
/// by the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Absolute(String),
    Relative(String),
}

/// Where the container's cgroup goes: `linux.cgroupsPath` (systemd's
/// `slice:prefix:name` with `systemd`), else `<own>/<id>`.
pub fn target(cgroups_path: Option<&str>, id: &str, systemd: bool) -> Result<Target> {
    let p = cgroups_path.unwrap_or("");
    if systemd {
        return systemd_path(p, id).map(Target::Absolute);
    }
    if p.is_empty() {
        return Ok(Target::Relative(id.to_string()));
    }
    if p.split('/').any(|c| c == "..") {
        bail!("linux.cgroupsPath: {p:?} must not contain \"..\"");
    }
    if p.starts_with('/') {
        Ok(Target::Absolute(p.to_string()))
    } else {
        Ok(Target::Relative(p.to_string()))
    }
}

/// systemd's `slice:prefix:name` as the cgroupfs path systemd gives such a scope:
/// `a-b.slice` nests in `a.slice`; an empty slice is `system.slice`, `-` the root.
fn systemd_path(p: &str, id: &str) -> Result<String> {
    let field = "linux.cgroupsPath";
    let (slice, prefix, name) = if p.is_empty() {
        ("", "rvisor", id)
    } else {
        let parts: Vec<&str> = p.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            bail!("{field}: {p:?}: with --systemd-cgroup it must be slice:prefix:name");
        };
        (slice, prefix, name)
    };
    if name.is_empty() || name.contains('/') || prefix.contains('/') {
        bail!("{field}: {p:?}: bad systemd unit name");
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let mut path = String::new();
    if slice != "-" && slice != "-.slice" {
        let Some(base) = slice.strip_suffix(".slice") else {
            bail!("{field}: {p:?}: the slice must end in .slice");
        };
        if base.contains('/') || base.starts_with('-') || base.ends_with('-') || base.contains("--")
        {
            bail!("{field}: {p:?}: bad slice name {slice:?}");
        }
        let mut acc = String::new();
        for part in base.split('-') {
            if !acc.is_empty() {
                acc.push('-');
            }
            acc.push_str(part);
            path.push('/');
            path.push_str(&acc);
            path.push_str(".slice");
        }
    }
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    Ok(format!("{path}/{unit}"))
}

/// One value to write: `file` in the directory of `ctrl` (v1) or the one directory
/// (v2, where `ctrl` is the controller to enable), for the spec field `field`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub ctrl: &'static str,
    pub file: String,
    pub value: String,
    pub field: &'static str,
}

fn set(ctrl: &'static str, file: &str, value: impl ToString, field: &'static str) -> Setting {
    Setting {
        ctrl,
        file: file.to_string(),
        value: value.to_string(),
        field,
    }
}

/// Memory figures are bytes, -1 meaning unlimited, 0 meaning unset (as runc).
fn mem_value(v: Option<i64>, field: &'static str) -> Result<Option<i64>> {
    match v {
        None | Some(0) => Ok(None),
        Some(v) if v < -1 => bail!("{field}: must be positive or -1 (unlimited), got {v}"),
        Some(v) => Ok(Some(v)),
    }
}

fn check_list(s: &str, field: &'static str) -> Result<()> {
    let ok = !s.is_empty()
        && s.split(',').all(|r| {
            let mut it = r.splitn(2, '-');
            let a = it.next().is_some_and(|a| a.parse::<u32>().is_ok());
            let b = it.next().is_none_or(|b| b.parse::<u32>().is_ok());
            a && b
        });
    if ok {
        Ok(())
    } else {
        bail!("{field}: {s:?} is not a list like 0-3,5")
    }
}

const F_MEM_LIMIT: &str = "linux.resources.memory.limit";
const F_MEM_RES: &str = "linux.resources.memory.reservation";
const F_MEM_SWAP: &str = "linux.resources.memory.swap";
const F_SWAPPINESS: &str = "linux.resources.memory.swappiness";
const F_OOM: &str = "linux.resources.memory.disableOOMKiller";
const F_SHARES: &str = "linux.resources.cpu.shares";
const F_QUOTA: &str = "linux.resources.cpu.quota";
const F_PERIOD: &str = "linux.resources.cpu.period";
const F_CPUS: &str = "linux.resources.cpu.cpus";
const F_MEMS: &str = "linux.resources.cpu.mems";
const F_PIDS: &str = "linux.resources.pids.limit";
const F_UNIFIED: &str = "linux.resources.unified";

/// cpuset.cpus and cpuset.mems: the same files and values on v1 and v2.
fn cpuset_settings(c: &LinuxCpu, out: &mut Vec<Setting>) -> Result<()> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        check_list(cpus, F_CPUS)?;
        out.push(set("cpuset", "cpuset.cpus", cpus, F_CPUS));
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        check_list(mems, F_MEMS)?;
        out.push(set("cpuset", "cpuset.mems", mems, F_MEMS));
    }
    Ok(())
}

/// The v1 files and values for `r`, in the order they must be written.
pub fn v1_settings(r: &LinuxResources) -> Result<Vec<Setting>> {
    let mut out = Vec::new();
    if let Some(c) = r.cpu() {
        cpuset_settings(c, &mut out)?;
        match c.shares() {
            None | Some(0) => {}
            Some(s) if s < 2 => bail!("{F_SHARES}: must be at least 2, got {s}"),
            Some(s) => out.push(set("cpu", "cpu.shares", s, F_SHARES)),
        }
        // The period first: a quota is checked against the period in place.
        match c.period() {
            None | Some(0) => {}
            Some(p) if !(1000..=1_000_000).contains(&p) => {
                bail!("{F_PERIOD}: must be 1000 to 1000000 microseconds, got {p}")
            }
            Some(p) => out.push(set("cpu", "cpu.cfs_period_us", p, F_PERIOD)),
        }
        match c.quota() {
            None | Some(0) => {}
            Some(q) if q < 0 => out.push(set("cpu", "cpu.cfs_quota_us", -1, F_QUOTA)),
            Some(q) if q < 1000 => bail!("{F_QUOTA}: must be at least 1000 microseconds, got {q}"),
            Some(q) => out.push(set("cpu", "cpu.cfs_quota_us", q, F_QUOTA)),
        }
    }
    if let Some(m) = r.memory() {
        let limit = mem_value(m.limit(), F_MEM_LIMIT)?;
        let swap = mem_value(m.swap(), F_MEM_SWAP)?;
        if let (Some(l), Some(s)) = (limit, swap) {
            if s != -1 && (l == -1 || s < l) {
                bail!("{F_MEM_SWAP}: memory+swap ({s}) must not be below {F_MEM_LIMIT} ({l})");
            }
        }
        if let Some(l) = limit {
            out.push(set("memory", "memory.limit_in_bytes", l, F_MEM_LIMIT));
        }
        if let Some(s) = swap {
            out.push(set("memory", "memory.memsw.limit_in_bytes", s, F_MEM_SWAP));
        }
        if let Some(r) = mem_value(m.reservation(), F_MEM_RES)? {
            out.push(set("memory", "memory.soft_limit_in_bytes", r, F_MEM_RES));
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                bail!("{F_SWAPPINESS}: must be 0 to 100, got {s}");
            }
            out.push(set("memory", "memory.swappiness", s, F_SWAPPINESS));
        }
        if m.disable_oom_killer() == Some(true) {
            out.push(set("memory", "memory.oom_control", 1, F_OOM));
        }
    }
    if let Some(p) = r.pids() {
        if let Some(v) = pids_value(p.limit()) {
            out.push(set("pids", "pids.max", v, F_PIDS));
        }
    }
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        bail!("{F_UNIFIED}: needs cgroup v2, and this host uses v1");
    }
    Ok(out)
}

/// runc's reading of pids.limit: positive is the limit, negative unlimited, 0 unset.
fn pids_value(limit: i64) -> Option<String> {
    match limit {
        0 => None,
        l if l < 0 => Some("max".into()),
        l => Some(l.to_string()),
    }
}

/// cgroup v1 cpu.shares [2, 262144] onto v2 cpu.weight [1, 10000], linearly.
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + (s - 2) * 9999 / 262_142
}

/// The v2 files and values for `r`, in the order they must be written.
pub fn v2_settings(r: &LinuxResources) -> Result<Vec<Setting>> {
    let mut out = Vec::new();
    if let Some(c) = r.cpu() {
        cpuset_settings(c, &mut out)?;
        match c.shares() {
            None | Some(0) => {}
            Some(s) if s < 2 => bail!("{F_SHARES}: must be at least 2, got {s}"),
            Some(s) => out.push(set("cpu", "cpu.weight", shares_to_weight(s), F_SHARES)),
        }
        let (q, p) = (c.quota().unwrap_or(0), c.period().unwrap_or(0));
        if q != 0 || p != 0 {
            if p != 0 && !(1000..=1_000_000).contains(&p) {
                bail!("{F_PERIOD}: must be 1000 to 1000000 microseconds, got {p}");
            }
            if q > 0 && q < 1000 {
                bail!("{F_QUOTA}: must be at least 1000 microseconds, got {q}");
            }
            let quota = if q > 0 { q.to_string() } else { "max".into() };
            let period = if p == 0 { 100_000 } else { p };
            out.push(set("cpu", "cpu.max", format!("{quota} {period}"), F_QUOTA));
        }
    }
    if let Some(m) = r.memory() {
        let limit = mem_value(m.limit(), F_MEM_LIMIT)?;
        let swap = mem_value(m.swap(), F_MEM_SWAP)?;
        if let Some(l) = limit {
            let v = if l == -1 { "max".into() } else { l.to_string() };
            out.push(set("memory", "memory.max", v, F_MEM_LIMIT));
        }
        // OCI's swap is memory+swap; v2 limits swap alone.
        if let Some(s) = swap {
            let v = match (s, limit) {
                (-1, _) => "max".to_string(),
                (_, None) | (_, Some(-1)) => {
                    bail!("{F_MEM_SWAP}: needs a finite {F_MEM_LIMIT} on cgroup v2")
                }
                (s, Some(l)) if s < l => {
                    bail!("{F_MEM_SWAP}: memory+swap ({s}) must not be below {F_MEM_LIMIT} ({l})")
                }
                (s, Some(l)) => (s - l).to_string(),
            };
            out.push(set("memory", "memory.swap.max", v, F_MEM_SWAP));
        }
        if let Some(r) = mem_value(m.reservation(), F_MEM_RES)? {
            let v = if r == -1 { "max".into() } else { r.to_string() };
            out.push(set("memory", "memory.low", v, F_MEM_RES));
        }
        if m.swappiness().is_some_and(|s| s != 0 && s != 60) {
            // v2 has no per-cgroup swappiness.
            bail!("{F_SWAPPINESS}: not available on cgroup v2");
        }
        if m.disable_oom_killer() == Some(true) {
            bail!("{F_OOM}: not available on cgroup v2");
        }
    }
    if let Some(p) = r.pids() {
        if let Some(v) = pids_value(p.limit()) {
            out.push(set("pids", "pids.max", v, F_PIDS));
        }
    }
    if let Some(u) = r.unified() {
        let mut keys: Vec<_> = u.iter().collect();
        keys.sort();
        for (k, v) in keys {
            let Some((ctrl, _)) = k.split_once('.').filter(|_| !k.contains('/')) else {
                bail!("{F_UNIFIED}: {k:?} is not a cgroup file name");
            };
            let ctrl: &'static str = match ctrl {
                "cpu" => "cpu",
                "cpuset" => "cpuset",
                "memory" => "memory",
                "pids" => "pids",
                "io" => "io",
                "hugetlb" => "hugetlb",
                "rdma" => "rdma",
                "misc" => "misc",
                _ => "",
            };
            out.push(set(ctrl, k, v, F_UNIFIED));
        }
    }
    Ok(out)
}

/// A container's cgroup, as recorded in its state directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    pub version: Version,
    /// v1: controller -> directory; v2: "" -> the directory.
    pub dirs: BTreeMap<String, PathBuf>,
    /// Directories rvisor made (parents before children), removed by `delete`.
    pub created: Vec<PathBuf>,
}

fn write_file(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
}

fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn read_u64(path: &Path) -> Option<u64> {
    read_trim(path).and_then(|s| s.parse().ok())
}

/// `key value` lines (memory.stat, cpu.stat, ...).
fn read_kv(path: &Path) -> BTreeMap<String, u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn io_err(e: &std::io::Error) -> String {
    crate::bundle::io_msg(e)
}

impl Cgroup {
    /// Creates (what is missing of) the container's cgroup and applies `resources`.
    /// On error, whatever was created is removed again.
    pub fn create(target: &Target, resources: Option<&LinuxResources>) -> Result<Cgroup> {
        let mounts = Mounts::host()?;
        let own = parse_proc_cgroup(
            &std::fs::read_to_string("/proc/self/cgroup").context("read /proc/self/cgroup")?,
        );
        let version = mounts.version();
        let places: Vec<(String, PathBuf, String)> = match version {
            Version::V2 => {
                let (p, root) = mounts.v2.clone().unwrap_or_default();
                vec![(String::new(), p, root)]
            }
            Version::V1 => mounts
                .v1
                .iter()
                .map(|(c, (p, root))| (c.clone(), p.clone(), root.clone()))
                .collect(),
        };
        if places.is_empty() {
            bail!("no cgroup filesystem is mounted");
        }
        let mut cg = Cgroup {
            version,
            dirs: BTreeMap::new(),
            created: Vec::new(),
        };
        let r = cg.make_dirs(&places, &own, target).and_then(|()| {
            if version == Version::V2 {
                cg.enable_controllers(resources)?;
            }
            match resources {
                Some(r) => cg.apply(r),
                None => Ok(()),
            }
        });
        if let Err(e) = r {
            cg.remove_dirs();
            return Err(e);
        }
        let parents: Vec<PathBuf> = cg
            .created
            .iter()
            .filter(|d| !cg.dirs.values().any(|v| v == *d))
            .cloned()
            .collect();
        if !parents.is_empty() {
            if let Err(e) = with_parents(|s| s.extend(parents)) {
                tracing::warn!("{e:#}");
            }
        }
        Ok(cg)
    }

    fn make_dirs(
        &mut self,
        places: &[(String, PathBuf, String)],
        own: &BTreeMap<String, String>,
        target: &Target,
    ) -> Result<()> {
        for (ctrl, mount, mroot) in places {
            let rel = match target {
                Target::Absolute(p) => p.clone(),
                Target::Relative(p) => {
                    let mine = own.get(ctrl).cloned().unwrap_or_else(|| "/".into());
                    // Our path is relative to the hierarchy's root, the mount may show
                    // only a subtree of it.
                    let mine = mine
                        .strip_prefix(mroot.as_str())
                        .unwrap_or(&mine)
                        .to_string();
                    format!("{}/{p}", mine.trim_end_matches('/'))
                }
            };
            // A parent that another container's delete removes between two of
            // our mkdirs is made again (a few times).
            let mut attempt = 0;
            let dir = loop {
                match self.make_path(mount, &rel, ctrl) {
                    Ok(d) => break d,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 3 => {
                        attempt += 1;
                    }
                    Err(e) => bail!(
                        "linux.cgroupsPath: create {rel} under {}: {}",
                        mount.display(),
                        io_err(&e)
                    ),
                }
            };
            // As runc: a cgroup other processes are in is not shared (its pause,
            // limits and delete would reach them).
            if !self.created.contains(&dir)
                && !read_trim(&dir.join("cgroup.procs"))
                    .unwrap_or_default()
                    .is_empty()
            {
                bail!(
                    "linux.cgroupsPath: {} already holds other processes",
                    dir.display()
                );
            }
            self.dirs.insert(ctrl.clone(), dir);
        }
        Ok(())
    }

    /// mkdir -p of `rel` under `mount`, recording what it made.
    fn make_path(&mut self, mount: &Path, rel: &str, ctrl: &str) -> std::io::Result<PathBuf> {
        let mut dir = mount.to_path_buf();
        for comp in rel.split('/').filter(|c| !c.is_empty() && *c != ".") {
            dir.push(comp);
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    if !self.created.contains(&dir) {
                        self.created.push(dir.clone());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            // Existing levels too: another runtime may have made one a moment ago and
            // not filled it in yet, or left one empty behind.
            if ctrl == "cpuset" {
                inherit_cpuset(&dir)?;
            }
        }
        Ok(dir)
    }

    /// v2: controllers are usable in a cgroup once every ancestor delegates them.
    fn enable_controllers(&self, resources: Option<&LinuxResources>) -> Result<()> {
        let Some(r) = resources else { return Ok(()) };
        let mut wanted: Vec<&str> = v2_settings(r)?
            .iter()
            .map(|s| s.ctrl)
            .filter(|c| !c.is_empty())
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let Some(dir) = self.dirs.get("") else {
            return Ok(());
        };
        let mut chain: Vec<&Path> = dir.ancestors().skip(1).collect();
        chain.retain(|p| p.starts_with(CGROUP_ROOT));
        chain.reverse();
        for parent in chain {
            let have = read_trim(&parent.join("cgroup.controllers")).unwrap_or_default();
            for c in &wanted {
                if !have.split(' ').any(|h| h == *c) {
                    bail!(
                        "linux.resources: the {c} controller is not available in {}",
                        parent.display()
                    );
                }
                let on = read_trim(&parent.join("cgroup.subtree_control")).unwrap_or_default();
                if !on.split(' ').any(|h| h == *c) {
                    write_file(&parent.join("cgroup.subtree_control"), &format!("+{c}")).map_err(
                        |e| {
                            anyhow!(
                                "linux.resources: enable {c} in {}: {}",
                                parent.display(),
                                io_err(&e)
                            )
                        },
                    )?;
                }
            }
        }
        Ok(())
    }

    fn dir_for(&self, ctrl: &str) -> Option<&Path> {
        match self.version {
            Version::V2 => self.dirs.get(""),
            Version::V1 => self.dirs.get(ctrl),
        }
        .map(PathBuf::as_path)
    }

    /// Writes `r`'s limits (create and `update`).
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        let settings = match self.version {
            Version::V1 => v1_settings(r)?,
            Version::V2 => v2_settings(r)?,
        };
        let mut pending: Vec<&Setting> = settings.iter().collect();
        // A lower memory limit may be refused while memory+swap is still below the
        // old one, a higher memory+swap while the limit is: retry what failed once
        // the rest is written.
        for round in 0..2 {
            let mut failed = Vec::new();
            for s in pending {
                let Some(dir) = self.dir_for(s.ctrl) else {
                    bail!(
                        "{}: the {} controller is not mounted on this host",
                        s.field,
                        s.ctrl
                    );
                };
                let path = dir.join(&s.file);
                if s.file == "memory.memsw.limit_in_bytes" && !path.exists() {
                    tracing::warn!("{}: swap accounting is off on this host; ignored", s.field);
                    continue;
                }
                if let Err(e) = write_file(&path, &s.value) {
                    if round == 0 && s.ctrl == "memory" {
                        failed.push(s);
                        continue;
                    }
                    bail!(
                        "{}: write {} to {}: {}",
                        s.field,
                        s.value,
                        path.display(),
                        io_err(&e)
                    );
                }
            }
            if failed.is_empty() {
                break;
            }
            pending = failed;
        }
        Ok(())
    }

    /// Moves `pid` (all its threads) into the cgroup.
    pub fn enter(&self, pid: u32) -> Result<()> {
        for dir in self.dirs.values() {
            let p = dir.join("cgroup.procs");
            write_file(&p, &pid.to_string())
                .map_err(|e| anyhow!("join {}: {}", dir.display(), io_err(&e)))?;
        }
        Ok(())
    }

    /// The pids in the cgroup (the sandbox's host processes).
    pub fn procs(&self) -> Vec<i32> {
        let Some(dir) = self
            .dir_for("pids")
            .or_else(|| self.dirs.values().next().map(|p| p.as_path()))
        else {
            return Vec::new();
        };
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn freezer(&self) -> Option<PathBuf> {
        match self.version {
            Version::V1 => self.dirs.get("freezer").map(|d| d.join("freezer.state")),
            Version::V2 => self.dirs.get("").map(|d| d.join("cgroup.freeze")),
        }
    }

    /// True while the sandbox is frozen (or freezing).
    pub fn frozen(&self) -> bool {
        let Some(f) = self.freezer() else {
            return false;
        };
        match (self.version, read_trim(&f)) {
            (Version::V1, Some(s)) => s != "THAWED",
            (Version::V2, Some(s)) => s == "1",
            _ => false,
        }
    }

    /// Freezes (`true`) or thaws the sandbox, waiting until the kernel is done.
    pub fn freeze(&self, on: bool) -> Result<()> {
        let f = self
            .freezer()
            .ok_or_else(|| anyhow!("the sandbox's cgroup has no freezer"))?;
        let (value, done) = match (self.version, on) {
            (Version::V1, true) => ("FROZEN", "FROZEN"),
            (Version::V1, false) => ("THAWED", "THAWED"),
            (Version::V2, true) => ("1", "frozen 1"),
            (Version::V2, false) => ("0", "frozen 0"),
        };
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        loop {
            write_file(&f, value).map_err(|e| anyhow!("write {}: {}", f.display(), io_err(&e)))?;
            let state = match self.version {
                Version::V1 => read_trim(&f).unwrap_or_default(),
                Version::V2 => std::fs::read_to_string(f.with_file_name("cgroup.events"))
                    .unwrap_or_default()
                    .lines()
                    .find(|l| l.starts_with("frozen "))
                    .unwrap_or_default()
                    .to_string(),
            };
            if state == done {
                return Ok(());
            }
            if Instant::now() > deadline {
                if on {
                    let _ = write_file(
                        &f,
                        if self.version == Version::V1 {
                            "THAWED"
                        } else {
                            "0"
                        },
                    );
                }
                bail!(
                    "{} is still {state:?} after {FREEZE_TIMEOUT:?}",
                    f.display()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILLs whatever is left in the cgroup, thaws it, waits until it is empty and
    /// removes the directories rvisor created.
    pub fn destroy(&self) -> Result<()> {
        let deadline = Instant::now() + EMPTY_TIMEOUT;
        loop {
            let pids = self.procs();
            for p in &pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            // A frozen task acts on SIGKILL only once thawed (v1).
            if self.frozen() {
                let _ = self.freeze(false);
            }
            if pids.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                bail!("processes {pids:?} are still in the sandbox's cgroup");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.remove_dirs_checked()
    }

    fn remove_dirs_checked(&self) -> Result<()> {
        let deadline = Instant::now() + EMPTY_TIMEOUT;
        // The container's own cgroup goes even when it was there before (left by a
        // failed run, or made by the caller), as runc does: `create` only takes one no
        // other process is in. Ancestors go only when rvisor made them.
        let mut leaves: Vec<&PathBuf> = self.dirs.values().collect();
        leaves.dedup();
        for d in &leaves {
            loop {
                match std::fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    // A process that just died may still be counted for a moment.
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => bail!("remove cgroup {}: {}", d.display(), io_err(&e)),
                }
            }
        }
        let prune = |shared: &mut BTreeSet<PathBuf>| {
            for leaf in &leaves {
                for a in leaf.ancestors().skip(1) {
                    if !self.created.iter().any(|c| c == a) && !shared.contains(a) {
                        break;
                    }
                    match std::fs::remove_dir(a) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        // Another container's cgroup is still below it.
                        Err(_) => break,
                    }
                    shared.remove(a);
                }
            }
        };
        if let Err(e) = with_parents(prune) {
            tracing::warn!("{e:#}");
            prune(&mut BTreeSet::new());
        }
        Ok(())
    }

    fn remove_dirs(&self) {
        if let Err(e) = self.remove_dirs_checked() {
            tracing::warn!("{e:#}");
        }
    }

    /// The state directory's record, if the container has a cgroup.
    pub fn load(state_dir: &Path) -> Result<Option<Cgroup>> {
        match std::fs::read_to_string(state_dir.join(RECORD)) {
            Ok(t) => Ok(Some(
                serde_json::from_str(&t).with_context(|| format!("{RECORD} is corrupt"))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("read {RECORD}")),
        }
    }

    pub fn store(&self, state_dir: &Path) -> Result<()> {
        let tmp = state_dir.join(format!("{RECORD}.tmp"));
        std::fs::write(&tmp, serde_json::to_string(self)?)
            .with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, state_dir.join(RECORD)).context("store cgroup record")
    }

    /// The OOM kills so far (v1 memory.oom_control `oom_kill`, v2 memory.events).
    pub fn oom_kills(&self) -> u64 {
        let Some(d) = self.dir_for("memory") else {
            return 0;
        };
        let file = match self.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        read_kv(&d.join(file)).get("oom_kill").copied().unwrap_or(0)
    }

    /// The container's usage (what `events` reports) from the cgroup files.
    pub fn stats(&self) -> Stats {
        match self.version {
            Version::V1 => self.stats_v1(),
            Version::V2 => self.stats_v2(),
        }
    }

    fn stats_v1(&self) -> Stats {
        let mut s = Stats::default();
        if let Some(d) = self.dirs.get("cpuacct") {
            let u = &mut s.cpu.usage;
            u.total = read_u64(&d.join("cpuacct.usage")).unwrap_or(0);
            (u.user, u.kernel) = match (
                read_u64(&d.join("cpuacct.usage_user")),
                read_u64(&d.join("cpuacct.usage_sys")),
            ) {
                (Some(u), Some(k)) => (u, k),
                _ => {
                    let st = read_kv(&d.join("cpuacct.stat"));
                    (
                        st.get("user").copied().unwrap_or(0) * TICK_NS,
                        st.get("system").copied().unwrap_or(0) * TICK_NS,
                    )
                }
            };
            u.percpu = read_trim(&d.join("cpuacct.usage_percpu"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
        }
        if let Some(d) = self.dirs.get("cpu") {
            let thr = read_kv(&d.join("cpu.stat"));
            let g = |k: &str| thr.get(k).copied().unwrap_or(0);
            s.cpu.throttling = Throttling {
                periods: g("nr_periods"),
                throttled_periods: g("nr_throttled"),
                throttled_time: g("throttled_time"),
            };
        }
        if let Some(d) = self.dirs.get("memory") {
            let entry = |prefix: &str| MemoryEntry {
                limit: read_u64(&d.join(format!("{prefix}.limit_in_bytes"))).unwrap_or(0),
                usage: read_u64(&d.join(format!("{prefix}.usage_in_bytes"))).unwrap_or(0),
                max: read_u64(&d.join(format!("{prefix}.max_usage_in_bytes"))).unwrap_or(0),
                failcnt: read_u64(&d.join(format!("{prefix}.failcnt"))).unwrap_or(0),
            };
            let raw = read_kv(&d.join("memory.stat"));
            s.memory = Memory {
                cache: raw.get("cache").copied().unwrap_or(0),
                usage: entry("memory"),
                swap: d
                    .join("memory.memsw.usage_in_bytes")
                    .exists()
                    .then(|| entry("memory.memsw")),
                kernel: Some(entry("memory.kmem")),
                raw,
            };
        }
        if let Some(d) = self.dirs.get("pids") {
            s.pids = pids_of(d);
        }
        s
    }

    fn stats_v2(&self) -> Stats {
        let Some(d) = self.dirs.get("") else {
            return Stats::default();
        };
        let cpu = read_kv(&d.join("cpu.stat"));
        let g = |k: &str| cpu.get(k).copied().unwrap_or(0);
        let raw = read_kv(&d.join("memory.stat"));
        let limit = |f: &str| match read_trim(&d.join(f)).as_deref() {
            Some("max") | None => u64::MAX,
            Some(v) => v.parse().unwrap_or(u64::MAX),
        };
        Stats {
            cpu: Cpu {
                usage: CpuUsage {
                    total: g("usage_usec") * 1000,
                    percpu: Vec::new(),
                    kernel: g("system_usec") * 1000,
                    user: g("user_usec") * 1000,
                },
                throttling: Throttling {
                    periods: g("nr_periods"),
                    throttled_periods: g("nr_throttled"),
                    throttled_time: g("throttled_usec") * 1000,
                },
            },
            memory: Memory {
                cache: raw.get("file").copied().unwrap_or(0),
                usage: MemoryEntry {
                    limit: limit("memory.max"),
                    usage: read_u64(&d.join("memory.current")).unwrap_or(0),
                    max: read_u64(&d.join("memory.peak")).unwrap_or(0),
                    failcnt: read_kv(&d.join("memory.events"))
                        .get("max")
                        .copied()
                        .unwrap_or(0),
                },
                swap: Some(MemoryEntry {
                    limit: limit("memory.swap.max"),
                    usage: read_u64(&d.join("memory.swap.current")).unwrap_or(0),
                    ..MemoryEntry::default()
                }),
                kernel: None,
                raw,
            },
            pids: pids_of(d),
        }
    }
}

/// runc reports an unlimited pids.max as 0.
fn pids_of(d: &Path) -> Pids {
    Pids {
        current: read_u64(&d.join("pids.current")).unwrap_or(0),
        limit: read_u64(&d.join("pids.max")).unwrap_or(0),
    }
}

/// Parents of sandbox cgroups that an rvisor made, for every `--root`: the last
/// container to leave one removes it, whichever container made it.
const PARENTS: &str = "/run/rvisor/cgroup-parents";

/// Runs `f` on the shared list of parents, under an exclusive lock.
fn with_parents<T>(f: impl FnOnce(&mut BTreeSet<PathBuf>) -> T) -> Result<T> {
    use std::io::{Read, Seek, Write};
    let path = Path::new(PARENTS);
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("open {PARENTS}"))?;
    let mut f_locked = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow!("lock {PARENTS}: {e}"))?;
    let mut text = String::new();
    f_locked
        .read_to_string(&mut text)
        .with_context(|| format!("read {PARENTS}"))?;
    let mut set: BTreeSet<PathBuf> = text
        .lines()
        .filter(|l| l.starts_with(CGROUP_ROOT))
        .map(PathBuf::from)
        .collect();
    let before = set.clone();
    let r = f(&mut set);
    if set != before {
        let mut out = String::new();
        for p in &set {
            out.push_str(&p.to_string_lossy());
            out.push('\n');
        }
        f_locked
            .set_len(0)
            .and_then(|()| f_locked.rewind())
            .and_then(|()| f_locked.write_all(out.as_bytes()))
            .with_context(|| format!("write {PARENTS}"))?;
    }
    Ok(r)
}

/// A new v1 cpuset starts with no cpus and no memory nodes, and nothing can join it
/// until it has some: give it its parent's. Callers go top-down, so the parent has
/// been filled in already.
fn inherit_cpuset(dir: &Path) -> std::io::Result<()> {
    let parent = dir.parent().unwrap_or(dir);
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let mine = read_trim(&dir.join(f)).unwrap_or_default();
        if mine.is_empty() {
            let theirs = read_trim(&parent.join(f)).unwrap_or_default();
            write_file(&dir.join(f), &theirs)?;
        }
    }
    Ok(())
}

/// The spec's cgroup, created and limited, or None when the container has none
/// (no cgroupsPath and the host's cgroups cannot be written).
pub fn setup(spec: &oci_spec::runtime::Spec, id: &str, systemd: bool) -> Result<Option<Cgroup>> {
    let linux = spec.linux().as_ref();
    let path = linux
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned());
    let resources = linux.and_then(|l| l.resources().as_ref());
    let explicit = path.as_deref().is_some_and(|p| !p.is_empty());
    let t = target(path.as_deref(), id, systemd)?;
    match Cgroup::create(&t, resources) {
        Ok(c) => Ok(Some(c)),
        Err(e) if !explicit && resources.is_none() => {
            tracing::warn!("no cgroup for the sandbox: {e:#}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// This process's own cgroups, to go back to after placing the sandbox.
pub fn own_placement() -> Result<Cgroup> {
    let mounts = Mounts::host()?;
    let own = parse_proc_cgroup(
        &std::fs::read_to_string("/proc/self/cgroup").context("read /proc/self/cgroup")?,
    );
    let version = mounts.version();
    let mut dirs = BTreeMap::new();
    let places: Vec<(String, PathBuf, String)> = match version {
        Version::V2 => mounts
            .v2
            .iter()
            .map(|(p, r)| (String::new(), p.clone(), r.clone()))
            .collect(),
        Version::V1 => mounts
            .v1
            .iter()
            .map(|(c, (p, r))| (c.clone(), p.clone(), r.clone()))
            .collect(),
    };
    for (ctrl, mount, mroot) in places {
        let mine = own.get(&ctrl).cloned().unwrap_or_else(|| "/".into());
        let mine = mine
            .strip_prefix(mroot.as_str())
            .unwrap_or(&mine)
            .to_string();
        dirs.insert(ctrl, mount.join(mine.trim_start_matches('/')));
    }
    Ok(Cgroup {
        version,
        dirs,
        created: Vec::new(),
    })
}

/// This process inside the sandbox's cgroup, until [`Placement::leave`].
pub struct Placement {
    pub cgroup: Cgroup,
    home: Cgroup,
}

impl Placement {
    /// Back to where this process was, leaving what it forked meanwhile behind.
    pub fn leave(&self) {
        if let Err(e) = self.home.enter(std::process::id()) {
            tracing::warn!("leave the sandbox's cgroup: {e:#}");
        }
    }
}

/// Creates the spec's cgroup, records it in `state_dir` and moves this process into
/// it, so that the processes it forks next start there.
pub fn place(
    spec: &oci_spec::runtime::Spec,
    id: &str,
    systemd: bool,
    state_dir: &Path,
) -> Result<Option<Placement>> {
    let Some(cg) = setup(spec, id, systemd)? else {
        return Ok(None);
    };
    // Where this process is now, read before it moves: after a partial `enter`,
    // /proc/self/cgroup names the sandbox's cgroup for the controllers it joined.
    let home = match own_placement() {
        Ok(h) => h,
        Err(e) => {
            cg.remove_dirs();
            return Err(e);
        }
    };
    let r = cg
        .store(state_dir)
        .and_then(|()| cg.enter(std::process::id()));
    match r {
        Ok(()) => Ok(Some(Placement { cgroup: cg, home })),
        Err(e) => {
            if let Err(e) = home.enter(std::process::id()) {
                tracing::warn!("go back to this process's own cgroup: {e:#}");
            }
            cg.remove_dirs();
            let _ = std::fs::remove_file(state_dir.join(RECORD));
            Err(e)
        }
    }
}

/// A container added to a pod: its own limits, from its spec's `linux.resources`,
/// which the sentry shows its programs (see `sentry::kernel::containers`; a limit
/// not set, or unlimited, is none of its own).
pub fn container_limits(r: Option<&LinuxResources>) -> sentry::kernel::containers::ContainerLimits {
    let b = boot_resources(r, None);
    sentry::kernel::containers::ContainerLimits {
        memory: b.memory_limit,
        cpu: b.cpu_quota.map(|q| {
            (
                q,
                b.cpu_period
                    .unwrap_or(sentry::kernel::resources::DEFAULT_PERIOD),
            )
        }),
        pids: b.pids_limit,
    }
}

/// The limits the sandbox shows its programs, from the spec's `linux.resources`
/// (already validated by [`Cgroup::create`] where it applied them), and the
/// directories of its host cgroup `cg` where the sentry reads its usage.
pub fn boot_resources(
    r: Option<&LinuxResources>,
    cg: Option<&Cgroup>,
) -> sentry::config::ResourceConfig {
    let pos = |v: Option<i64>| v.filter(|&v| v > 0).map(|v| v as u64);
    let mut out = sentry::config::ResourceConfig::default();
    if let Some(m) = r.and_then(|r| r.memory().as_ref()) {
        out.memory_limit = pos(m.limit());
        out.memory_swap = pos(m.swap());
        out.memory_reservation = pos(m.reservation());
    }
    if let Some(c) = r.and_then(|r| r.cpu().as_ref()) {
        out.cpu_quota = pos(c.quota());
        out.cpu_period = c.period().filter(|&p| p > 0);
        out.cpu_shares = c.shares().filter(|&s| s > 0);
        out.cpus = c.cpus().clone().filter(|s| !s.trim().is_empty());
    }
    if let Some(p) = r.and_then(|r| r.pids().as_ref()) {
        out.pids_limit = pos(Some(p.limit()));
    }
    if let Some(cg) = cg {
        let dir = |c: &str| cg.dirs.get(c).map(|d| d.to_string_lossy().into_owned());
        out.host_cgroup = Some(match cg.version {
            Version::V2 => sentry::config::HostCgroup {
                version: 2,
                memory: dir(""),
                cpu: dir(""),
                cpuacct: None,
            },
            Version::V1 => sentry::config::HostCgroup {
                version: 1,
                memory: dir("memory"),
                cpu: dir("cpu"),
                cpuacct: dir("cpuacct"),
            },
        });
    }
    out
}

/// Places this process in a new cgroup `<own cgroup>/<id>` with `resources` (for
/// `rvisor do --memory/--cpus`, which has no spec or state directory), so that the
/// processes it forks next start there.
pub fn place_with(id: &str, resources: &LinuxResources) -> Result<Placement> {
    let cg = Cgroup::create(&Target::Relative(id.to_string()), Some(resources))?;
    let home = match own_placement() {
        Ok(h) => h,
        Err(e) => {
            cg.remove_dirs();
            return Err(e);
        }
    };
    if let Err(e) = cg.enter(std::process::id()) {
        if let Err(e) = home.enter(std::process::id()) {
            tracing::warn!("go back to this process's own cgroup: {e:#}");
        }
        cg.remove_dirs();
        return Err(e);
    }
    Ok(Placement { cgroup: cg, home })
}

/// `delete`'s part: kill what is left in the container's cgroup and remove the
/// directories it created.
pub fn remove_for(state_dir: &Path) -> Result<()> {
    match Cgroup::load(state_dir)? {
        Some(cg) => cg.destroy(),
        None => Ok(()),
    }
}

/// `status` as the container's cgroup shows it: running or created while frozen is
/// `paused`.
pub fn adjust_status(state_dir: &Path, status: &mut Status) {
    if matches!(status, Status::Running | Status::Created) {
        if let Ok(Some(cg)) = Cgroup::load(state_dir) {
            if cg.frozen() {
                *status = Status::Paused;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxResources;
    use serde_json::json;

    fn res(j: serde_json::Value) -> LinuxResources {
        serde_json::from_value(j).unwrap()
    }

    fn pairs(v: &[Setting]) -> Vec<(String, String)> {
        v.iter()
            .map(|s| (s.file.clone(), s.value.clone()))
            .collect()
    }

    fn p(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn mountinfo_hybrid_and_unified() {
        let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
            32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
            35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
            41 31 0:38 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n\
            42 31 0:39 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let m = parse_mountinfo(hybrid);
        assert_eq!(m.version(), Version::V1);
        assert_eq!(m.v1["cpu"].0, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m.v1["cpuacct"].0, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m.v1["memory"].0, Path::new("/sys/fs/cgroup/memory"));
        assert!(!m.v1.contains_key("name=systemd"));
        let unified = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(parse_mountinfo(unified).version(), Version::V2);
        assert_eq!(unescape("/a\\040b"), "/a b");
    }

    #[test]
    fn proc_cgroup() {
        let m = parse_proc_cgroup("4:memory:/a/b\n1:cpu,cpuacct:/\n0::/user.slice\n");
        assert_eq!(m["memory"], "/a/b");
        assert_eq!(m["cpuacct"], "/");
        assert_eq!(m[""], "/user.slice");
    }

    #[test]
    fn targets() {
        assert_eq!(
            target(Some("/k8s/pod1"), "c", false).unwrap(),
            Target::Absolute("/k8s/pod1".into())
        );
        assert_eq!(
            target(None, "c1", false).unwrap(),
            Target::Relative("c1".into())
        );
        assert_eq!(
            target(Some("a/b"), "c", false).unwrap(),
            Target::Relative("a/b".into())
        );
        let e = target(Some("/a/../b"), "c", false).unwrap_err().to_string();
        assert!(e.starts_with("linux.cgroupsPath"), "{e}");
        assert_eq!(
            target(Some("system.slice:docker:abc"), "c", true).unwrap(),
            Target::Absolute("/system.slice/docker-abc.scope".into())
        );
        assert_eq!(
            target(Some("user-1000.slice:rv:x"), "c", true).unwrap(),
            Target::Absolute("/user.slice/user-1000.slice/rv-x.scope".into())
        );
        assert_eq!(
            target(Some(":rv:x"), "c", true).unwrap(),
            Target::Absolute("/system.slice/rv-x.scope".into())
        );
        assert_eq!(
            target(Some("-:rv:x"), "c", true).unwrap(),
            Target::Absolute("/rv-x.scope".into())
        );
        assert_eq!(
            target(None, "c9", true).unwrap(),
            Target::Absolute("/system.slice/rvisor-c9.scope".into())
        );
        assert_eq!(
            target(Some("a.slice:p:pod.slice"), "c", true).unwrap(),
            Target::Absolute("/a.slice/pod.slice".into())
        );
        for bad in ["/x/y", "a:b", "bad:p:n", "a--b.slice:p:n"] {
            let e = target(Some(bad), "c", true).unwrap_err().to_string();
            assert!(e.starts_with("linux.cgroupsPath"), "{bad}: {e}");
        }
    }

    #[test]
    fn v1_translation() {
        let r = res(json!({
            "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
            "pids": {"limit": 32},
        }));
        let s = v1_settings(&r).unwrap();
        assert_eq!(
            pairs(&s),
            vec![
                p("cpuset.cpus", "0-1"),
                p("cpuset.mems", "0"),
                p("cpu.shares", "512"),
                p("cpu.cfs_period_us", "100000"),
                p("cpu.cfs_quota_us", "50000"),
                p("memory.limit_in_bytes", "67108864"),
                p("memory.memsw.limit_in_bytes", "134217728"),
                p("memory.soft_limit_in_bytes", "33554432"),
                p("pids.max", "32"),
            ]
        );
        assert_eq!(s[0].ctrl, "cpuset");
        assert_eq!(s[8].field, "linux.resources.pids.limit");
        let unl =
            res(json!({"memory": {"limit": -1}, "cpu": {"quota": -1}, "pids": {"limit": -1}}));
        assert_eq!(
            pairs(&v1_settings(&unl).unwrap()),
            vec![
                p("cpu.cfs_quota_us", "-1"),
                p("memory.limit_in_bytes", "-1"),
                p("pids.max", "max"),
            ]
        );
        assert!(v1_settings(&res(json!({"pids": {"limit": 0}})))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn v2_translation() {
        let r = res(json!({
            "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728},
            "cpu": {"shares": 1024, "quota": 50000, "period": 200000, "cpus": "0"},
            "pids": {"limit": 32},
            "unified": {"memory.high": "60000000"},
        }));
        assert_eq!(
            pairs(&v2_settings(&r).unwrap()),
            vec![
                p("cpuset.cpus", "0"),
                p("cpu.weight", "39"),
                p("cpu.max", "50000 200000"),
                p("memory.max", "67108864"),
                p("memory.swap.max", "67108864"),
                p("memory.low", "33554432"),
                p("pids.max", "32"),
                p("memory.high", "60000000"),
            ]
        );
        let unl = res(json!({"memory": {"limit": -1, "swap": -1}, "cpu": {"period": 50000}}));
        assert_eq!(
            pairs(&v2_settings(&unl).unwrap()),
            vec![
                p("cpu.max", "max 50000"),
                p("memory.max", "max"),
                p("memory.swap.max", "max"),
            ]
        );
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn invalid_values_name_the_field() {
        let cases = [
            (
                json!({"memory": {"limit": -5}}),
                "linux.resources.memory.limit",
            ),
            (
                json!({"memory": {"limit": 100, "swap": 50}}),
                "linux.resources.memory.swap",
            ),
            (json!({"cpu": {"shares": 1}}), "linux.resources.cpu.shares"),
            (json!({"cpu": {"period": 10}}), "linux.resources.cpu.period"),
            (json!({"cpu": {"quota": 10}}), "linux.resources.cpu.quota"),
            (json!({"cpu": {"cpus": "zero"}}), "linux.resources.cpu.cpus"),
            (json!({"cpu": {"mems": "0-"}}), "linux.resources.cpu.mems"),
            (
                json!({"memory": {"swappiness": 200}}),
                "linux.resources.memory.swappiness",
            ),
        ];
        for (j, field) in cases {
            let e = v1_settings(&res(j.clone())).unwrap_err().to_string();
            assert!(e.starts_with(field), "{j}: {e}");
        }
        let e = v2_settings(&res(json!({"memory": {"swap": 100}})))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("linux.resources.memory.swap"), "{e}");
        let e = v2_settings(&res(json!({"unified": {"../x": "1"}})))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("linux.resources.unified"), "{e}");
        let e = v1_settings(&res(json!({"unified": {"memory.high": "1"}})))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("linux.resources.unified"), "{e}");
    }

    #[test]
    fn frozen_status_from_record() {
        let dir = std::env::temp_dir().join(format!("rvisor-cg-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("fz");
        std::fs::create_dir_all(&fake).unwrap();
        std::fs::write(fake.join("freezer.state"), "FROZEN\n").unwrap();
        let cg = Cgroup {
            version: Version::V1,
            dirs: [("freezer".to_string(), fake.clone())].into(),
            created: Vec::new(),
        };
        cg.store(&dir).unwrap();
        assert_eq!(Cgroup::load(&dir).unwrap().unwrap(), cg);
        let mut st = Status::Running;
        adjust_status(&dir, &mut st);
        assert_eq!(st, Status::Paused);
        std::fs::write(fake.join("freezer.state"), "THAWED\n").unwrap();
        let mut st = Status::Running;
        adjust_status(&dir, &mut st);
        assert_eq!(st, Status::Running);
        let mut st = Status::Stopped;
        adjust_status(&dir, &mut st);
        assert_eq!(st, Status::Stopped);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// v1 cpusets left empty (by a runtime that made them and has not filled them in
    /// yet, or by a failed run) are filled in top-down, so a process can join; the
    /// container's own cgroup is removed again, an ancestor `create` did not make is
    /// kept (skipped without a writable v1 cpuset).
    #[test]
    fn v1_existing_empty_cpuset_is_filled_in() {
        let root = Path::new("/sys/fs/cgroup/cpuset");
        let m = Mounts::host().unwrap();
        if m.version() != Version::V1 || !m.v1.contains_key("cpuset") {
            return;
        }
        let name = format!("rvisor-unit-cpuset-{}", std::process::id());
        let parent = root.join(&name);
        if std::fs::create_dir(&parent).is_err() {
            return;
        }
        std::fs::create_dir(parent.join("leaf")).unwrap();
        assert_eq!(read_trim(&parent.join("leaf/cpuset.cpus")).unwrap(), "");
        let cg = Cgroup::create(&Target::Absolute(format!("/{name}/leaf")), None).unwrap();
        for d in [&parent, &parent.join("leaf")] {
            assert_eq!(
                read_trim(&d.join("cpuset.cpus")),
                read_trim(&root.join("cpuset.cpus"))
            );
            assert!(!read_trim(&d.join("cpuset.mems")).unwrap().is_empty());
        }
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let joined = cg.enter(child.id());
        let _ = child.kill();
        let _ = child.wait();
        let destroyed = cg.destroy();
        let leaf_gone = !parent.join("leaf").exists();
        let parent_kept = parent.exists();
        let _ = std::fs::remove_dir(parent.join("leaf"));
        let _ = std::fs::remove_dir(&parent);
        joined.unwrap();
        destroyed.unwrap();
        assert!(
            leaf_gone && parent_kept,
            "leaf gone {leaf_gone}, parent kept {parent_kept}"
        );
    }

    /// The v2 freezer, stats and removal on a real cgroup2 tree: this host's
    /// /sys/fs/cgroup when unified, else the hybrid's /sys/fs/cgroup/unified (skipped
    /// when neither is writable).
    #[test]
    fn v2_freeze_stats_destroy() {
        let m = Mounts::host().unwrap();
        let Some((mount, _)) = m.v2.clone() else {
            return;
        };
        let dir = mount.join(format!("rvisor-unit-{}", std::process::id()));
        if std::fs::create_dir(&dir).is_err() {
            return;
        }
        let cg = Cgroup {
            version: Version::V2,
            dirs: [(String::new(), dir.clone())].into(),
            created: vec![dir.clone()],
        };
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let pid = child.id();
        cg.enter(pid).unwrap();
        assert_eq!(cg.procs(), vec![pid as i32]);
        std::thread::sleep(Duration::from_millis(50));
        cg.freeze(true).unwrap();
        assert!(cg.frozen());
        let t1 = cg.stats().cpu.usage.total;
        assert!(t1 > 0);
        std::thread::sleep(Duration::from_millis(100));
        let t2 = cg.stats().cpu.usage.total;
        assert_eq!(t1, t2, "cpu time grew while frozen");
        cg.freeze(false).unwrap();
        assert!(!cg.frozen());
        cg.freeze(true).unwrap();
        // destroy kills a frozen sandbox too.
        cg.destroy().unwrap();
        let _ = child.wait();
        assert!(!dir.exists());
    }
}
