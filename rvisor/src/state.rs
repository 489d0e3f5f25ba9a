//! Container state under `--root`: `ROOT/<id>/state.json` (the OCI state document)
//! exists while `run` is running the container, so ids stay unique.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde_json::json;

/// OCI container ids: non-empty, at most 1024 bytes, `[A-Za-z0-9_.+-]`, and not a
/// path component of its own.
pub fn check_id(id: &str) -> Result<()> {
    if id.is_empty() {
        bail!("container id: must not be empty");
    }
    if id.len() > 1024 {
        bail!("container id: longer than 1024 bytes");
    }
    if id == "." || id == ".." {
        bail!("container id: {id:?} is not allowed");
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.+-".contains(*c)))
    {
        bail!("container id: {id:?} has {c:?}; allowed are letters, digits and _ . + -");
    }
    Ok(())
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
                Some(p) if alive(p) => bail!("container {id:?} already exists"),
                // No readable state: another rvisor is between mkdir and its first write.
                None if dir.join("state.json").symlink_metadata().is_err() => {
                    bail!("container {id:?} already exists")
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
        c.write("creating", std::process::id())?;
        Ok(c)
    }

    fn write(&self, status: &str, pid: u32) -> Result<()> {
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
        self.write("running", pid)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!("cannot remove {}: {e}", self.dir.display());
        }
    }
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
}
