//! Container state under `--root`: `ROOT/<id>/state.json` (the OCI state document)
//! exists while `run` is running the container, so ids stay unique.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::sys::signal::kill;
use nix::unistd::Pid;
use oci_spec::runtime::ContainerState;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// OCI container ids: non-empty, at most 1024 bytes, `[A-Za-z0-9_.+-]`, and not a
/// path component of its own.
pub fn check_id(id: &str) -> Result<()> {
    if id.is_empty() {
        bail_kind!(InvalidArgument, "container id: must not be empty");
    }
    if id.len() > 1024 {
        bail_kind!(InvalidArgument, "container id: longer than 1024 bytes");
    }
    if id == "." || id == ".." {
        bail_kind!(InvalidArgument, "container id: {id:?} is not allowed");
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.+-".contains(*c)))
    {
        bail_kind!(
            InvalidArgument,
            "container id: {id:?} has {c:?}; allowed are letters, digits and _ . + -"
        );
    }
    Ok(())
}

/// A container's status, as `state` reports it and hooks read it.
///
/// The written states are oci-spec's [`ContainerState`] (creating, created, running,
/// stopped); `paused` is runc's fifth status, which oci-spec 0.10 does not have: it is
/// never written, only derived from the freezer when the state is loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    #[default]
    Stopped,
}

impl Status {
    /// The OCI status, where the spec has one (every status but `paused`).
    pub fn oci(self) -> Option<ContainerState> {
        match self {
            Status::Creating => Some(ContainerState::Creating),
            Status::Created => Some(ContainerState::Created),
            Status::Running => Some(ContainerState::Running),
            Status::Stopped => Some(ContainerState::Stopped),
            Status::Paused => None,
        }
    }
}

impl From<ContainerState> for Status {
    fn from(s: ContainerState) -> Self {
        match s {
            ContainerState::Creating => Status::Creating,
            ContainerState::Created => Status::Created,
            ContainerState::Running => Status::Running,
            ContainerState::Stopped => Status::Stopped,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.oci() {
            Some(s) => s.fmt(f),
            None => f.write_str("paused"),
        }
    }
}

/// A container's state directory; removed when dropped.
pub struct Container {
    dir: PathBuf,
    id: String,
    bundle: PathBuf,
}

fn alive(pid: i64) -> bool {
    i32::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .is_some_and(|p| kill(Pid::from_raw(p), None).is_ok())
}

impl Container {
    /// Claims `root/id`, refusing an id whose owner is still running and reclaiming
    /// one left behind by a killed rvisor.
    pub fn create(root: &Path, id: &str, bundle: &Path) -> Result<Container> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("--root: cannot create {}", root.display()))?;
        let dir = root.join(id);
        if let Err(e) = std::fs::create_dir(&dir) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(e).with_context(|| format!("--root: create {}", dir.display()));
            }
            let pid = std::fs::read_to_string(dir.join("state.json"))
                .ok()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                .and_then(|v| v.get("pid").and_then(|p| p.as_i64()));
            match pid {
                Some(p) if alive(p) => bail_kind!(AlreadyExists, "container {id:?} already exists"),
                // No readable state: another rvisor is between mkdir and its first write.
                None if dir.join("state.json").symlink_metadata().is_err() => {
                    bail_kind!(AlreadyExists, "container {id:?} already exists")
                }
                _ => {
                    tracing::warn!("reclaiming stale state of container {id:?}");
                    std::fs::remove_dir_all(&dir)
                        .with_context(|| format!("remove stale {}", dir.display()))?;
                    std::fs::create_dir(&dir)
                        .with_context(|| format!("--root: create {}", dir.display()))?;
                }
            }
        }
        let c = Container {
            dir,
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
        };
        c.write(ContainerState::Creating, std::process::id())?;
        Ok(c)
    }

    fn write(&self, status: ContainerState, pid: u32) -> Result<()> {
        let doc = json!({
            "ociVersion": "1.0.2",
            "id": self.id,
            "status": status,
            "pid": pid,
            "bundle": self.bundle,
        });
        let tmp = self.dir.join("state.json.tmp");
        std::fs::write(&tmp, doc.to_string())
            .with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, self.dir.join("state.json"))
            .with_context(|| format!("write {}", self.dir.join("state.json").display()))
    }

    /// Records that the sandbox runs as `pid`.
    pub fn set_running(&self, pid: u32) -> Result<()> {
        self.write(ContainerState::Running, pid)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!("cannot remove {}: {e}", self.dir.display());
        }
    }
}

/// The state document of a container made by `create`, kept until `delete`.
/// The OCI fields come first; the rest is rvisor's own bookkeeping.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    #[serde(rename = "ociVersion", default)]
    pub oci_version: String,
    pub id: String,
    /// As last written; [`load`] turns it into `stopped` once the pid is gone.
    pub status: Status,
    /// The sandbox supervisor: it exits with the container's status.
    #[serde(default)]
    pub pid: i64,
    #[serde(default)]
    pub bundle: PathBuf,
    #[serde(default)]
    pub rootfs: PathBuf,
    /// RFC 3339, UTC.
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `pid`'s start time (clock ticks since boot), so a recycled pid is not taken
    /// for the sandbox.
    #[serde(default)]
    pub start_time: u64,
    /// The container's shell-style exit status, once known.
    #[serde(default)]
    pub exit_status: Option<i32>,
}

impl Record {
    /// The OCI state document, as `runc state` prints it (in runc's field order).
    pub fn oci_json(&self) -> OciState<'_> {
        OciState {
            oci_version: &self.oci_version,
            id: &self.id,
            pid: if self.status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status: self.status,
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: &self.annotations,
        }
    }
}

/// What `state` prints and hooks read on stdin.
#[derive(Debug, Serialize)]
pub struct OciState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i64,
    pub status: Status,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<String, String>,
}

/// `root/id`, after checking the id.
pub fn dir_of(root: &Path, id: &str) -> Result<PathBuf> {
    check_id(id)?;
    Ok(root.join(id))
}

/// Claims a new id under `root`: a container that exists in any state (even
/// stopped, until `delete`) keeps its id.
pub fn claim(root: &Path, id: &str) -> Result<PathBuf> {
    let dir = dir_of(root, id)?;
    std::fs::create_dir_all(root)
        .with_context(|| format!("--root: cannot create {}", root.display()))?;
    match std::fs::create_dir(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail_kind!(AlreadyExists, "container {id:?} already exists")
        }
        Err(e) => Err(e).with_context(|| format!("--root: create {}", dir.display())),
    }
}

/// Writes `rec` atomically into its directory.
pub fn store(dir: &Path, rec: &Record) -> Result<()> {
    let tmp = dir.join("state.json.tmp");
    let text = serde_json::to_string(rec).context("encode state")?;
    std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join("state.json"))
        .with_context(|| format!("write {}", dir.join("state.json").display()))
}

/// Reads a container's state, with the status brought up to date.
pub fn load(root: &Path, id: &str) -> Result<Record> {
    let dir = dir_of(root, id)?;
    let text = match std::fs::read_to_string(dir.join("state.json")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail_kind!(NotFound, "container {id:?} does not exist")
        }
        Err(e) => return Err(e).with_context(|| format!("read state of {id:?}")),
    };
    let mut rec: Record = serde_json::from_str(&text)
        .with_context(|| format!("state of container {id:?} is corrupt"))?;
    if rec.status != Status::Stopped && !process_alive(rec.pid, rec.start_time) {
        rec.status = Status::Stopped;
    }
    crate::cgroup::adjust_status(&dir, &mut rec.status);
    Ok(rec)
}

/// Every container id under `root`, sorted.
pub fn ids(root: &Path) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("--root: read {}", root.display())),
    };
    let mut out: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("state.json").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| check_id(n).is_ok())
        .collect();
    out.sort();
    Ok(out)
}

/// `/proc/pid/stat` field 22 (start time), or None if the process is gone or a zombie.
pub fn start_time_of(pid: i64) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// True while `pid` runs and is the process that had `start_time` (0: not checked).
pub fn process_alive(pid: i64, start_time: u64) -> bool {
    if pid <= 0 || i32::try_from(pid).is_err() {
        return false;
    }
    match start_time_of(pid) {
        Some(t) => start_time == 0 || t == start_time,
        None => false,
    }
}

/// Now, as RFC 3339 UTC with nanoseconds (as runc writes `created`).
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for good in ["a", "abc-1_2.3+4", "X"] {
            check_id(good).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "é"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unique_while_alive_and_reclaimed_when_stale() {
        let root = std::env::temp_dir().join(format!("rvisor-state-test-{}", std::process::id()));
        let c = Container::create(&root, "c1", Path::new("/b")).unwrap();
        let e = Container::create(&root, "c1", Path::new("/b"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("already exists"), "{e}");
        // A pid that cannot be alive: a stale entry is taken over.
        std::fs::write(root.join("c1/state.json"), r#"{"pid":2147483647}"#).unwrap();
        let c2 = Container::create(&root, "c1", Path::new("/b")).unwrap();
        std::mem::forget(c);
        drop(c2);
        assert!(!root.join("c1").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn dates_and_liveness() {
        let d = now_rfc3339();
        assert_eq!(d.len(), "2026-01-01T00:00:00.000000000Z".len(), "{d}");
        assert!(d.starts_with("20") && d.ends_with('Z'), "{d}");
        let me = i64::from(std::process::id());
        let t = start_time_of(me).unwrap();
        assert!(process_alive(me, t));
        assert!(!process_alive(me, t + 1));
        assert!(!process_alive(2_147_483_647, 0));
    }
}
