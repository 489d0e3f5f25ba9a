//! `rvisor install`: registers rvisor with containerd's CRI plugin (config.toml) and
//! with Docker (daemon.json), keeping everything else in those files.
//!
//! containerd's file is edited with `toml_edit`, so its comments, order and
//! formatting survive; only the `runtimes.rvisor` table is added (config version 2:
//! `plugins."io.containerd.grpc.v1.cri"`, version 3: `plugins."io.containerd.cri.v1.runtime"`).
//! The shim reads its own options from /etc/containerd/rvisor.toml, not from
//! containerd's `options` table, so none is written (see runtime-class/).
//! Docker's file is JSON: other keys and values are kept (serde_json writes an
//! object's keys sorted). A second run finds the entries in place and writes nothing.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use toml_edit::{DocumentMut, Item, Table};

/// The runtime handler name (RuntimeClass `handler`, Docker `--runtime`).
pub const RUNTIME_NAME: &str = "rvisor";
/// containerd's name for the shim `containerd-shim-rvisor-v1`.
pub const RUNTIME_TYPE: &str = "io.containerd.rvisor.v1";
const CONTAINERD_DEFAULT: &str = "/etc/containerd/config.toml";
const DOCKER_DEFAULT: &str = "/etc/docker/daemon.json";

/// What one file needs: its current and wanted text (equal when already set up).
#[derive(Debug)]
pub struct Edit {
    pub path: PathBuf,
    /// None when the file does not exist yet.
    pub old: Option<String>,
    pub new: String,
}

impl Edit {
    pub fn changes(&self) -> bool {
        self.old.as_deref() != Some(self.new.as_str())
    }
}

/// The CRI runtimes table's path for containerd config `version`.
fn cri_runtimes_path(version: i64) -> Result<&'static [&'static str]> {
    match version {
        2 => Ok(&[
            "plugins",
            "io.containerd.grpc.v1.cri",
            "containerd",
            "runtimes",
        ]),
        3 => Ok(&[
            "plugins",
            "io.containerd.cri.v1.runtime",
            "containerd",
            "runtimes",
        ]),
        v => bail!(
            "containerd config version {v} is not supported (2 or 3); \
             `containerd config migrate` converts older files"
        ),
    }
}

/// containerd's config.toml with the rvisor runtime added. An empty or missing file
/// becomes a version 2 config, which containerd 1.x reads and 2.x migrates.
pub fn containerd_config(old: Option<&str>) -> Result<String> {
    let mut doc: DocumentMut = old.unwrap_or("").parse().context("not a valid TOML file")?;
    let version = match doc.get("version") {
        Some(v) => v
            .as_integer()
            .ok_or_else(|| anyhow::anyhow!("`version` is not an integer"))?,
        None if doc.iter().next().is_none() => {
            doc.insert("version", toml_edit::value(2));
            2
        }
        None => bail!(
            "the file has no `version` (config version 1); run `containerd config migrate` \
             first (rvisor install supports versions 2 and 3)"
        ),
    };
    let mut table = doc.as_table_mut();
    for key in cri_runtimes_path(version)? {
        table = child_table(table, key)?;
    }
    let rt = child_table(table, RUNTIME_NAME)?;
    // A table made here is explicit, so the header names it.
    rt.set_implicit(false);
    if rt.get("runtime_type").and_then(Item::as_str) != Some(RUNTIME_TYPE) {
        rt.insert("runtime_type", toml_edit::value(RUNTIME_TYPE));
    }
    let mut text = doc.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// The table under `key`, made (implicit, so no header of its own is written) when
/// missing; an inline table or a value of another type is refused rather than replaced.
fn child_table<'a>(t: &'a mut Table, key: &str) -> Result<&'a mut Table> {
    let item = t.entry(key).or_insert_with(|| {
        let mut n = Table::new();
        n.set_implicit(true);
        Item::Table(n)
    });
    match item {
        Item::Table(t) => Ok(t),
        _ => bail!("`{key}` is not a [table] (inline tables and values are left alone)"),
    }
}

/// Docker's daemon.json with `runtimes.rvisor.path` set to `binary`; the entry's other
/// keys (runtimeArgs) and the rest of the file are kept.
pub fn docker_config(old: Option<&str>, binary: &Path) -> Result<String> {
    let mut doc: Value = match old.map(str::trim) {
        None | Some("") => Value::Object(Default::default()),
        Some(s) => serde_json::from_str(s).context("not valid JSON")?,
    };
    let path = binary
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("{}: not UTF-8", binary.display()))?;
    let root = doc
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("the file is not a JSON object"))?;
    let runtimes = root
        .entry("runtimes")
        .or_insert_with(|| Value::Object(Default::default()))
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("`runtimes` is not an object"))?;
    let entry = runtimes
        .entry(RUNTIME_NAME)
        .or_insert_with(|| Value::Object(Default::default()))
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("`runtimes.{RUNTIME_NAME}` is not an object"))?;
    if entry.get("path").and_then(Value::as_str) != Some(path) {
        entry.insert("path".into(), Value::String(path.into()));
    } else if let Some(old) = old {
        // Already set up: the file stays byte for byte as it is.
        return Ok(old.to_string());
    }
    Ok(serde_json::to_string_pretty(&doc)? + "\n")
}

fn read_opt(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// The edits `rvisor install` would make. Without either flag it looks at the default
/// files: containerd's when it exists, Docker's when /etc/docker does.
pub fn plan(containerd: Option<&Path>, docker: Option<&Path>, binary: &Path) -> Result<Vec<Edit>> {
    let (containerd, docker) = match (containerd, docker) {
        (None, None) => {
            let c = Path::new(CONTAINERD_DEFAULT);
            let d = Path::new(DOCKER_DEFAULT);
            let c = c.exists().then_some(c);
            let d = d.parent().is_some_and(Path::exists).then_some(d);
            if c.is_none() && d.is_none() {
                bail!(
                    "found neither {CONTAINERD_DEFAULT} nor /etc/docker: name the files with \
                     --containerd-config or --docker-config"
                );
            }
            (c, d)
        }
        given => given,
    };
    let mut edits = Vec::new();
    if let Some(p) = containerd {
        let old = read_opt(p)?;
        let new = containerd_config(old.as_deref()).with_context(|| p.display().to_string())?;
        edits.push(Edit {
            path: p.to_path_buf(),
            old,
            new,
        });
    }
    if let Some(p) = docker {
        let old = read_opt(p)?;
        let new = docker_config(old.as_deref(), binary).with_context(|| p.display().to_string())?;
        edits.push(Edit {
            path: p.to_path_buf(),
            old,
            new,
        });
    }
    Ok(edits)
}

/// A unified diff of one edit (every line added for a new file).
pub fn diff(e: &Edit) -> String {
    let name = e.path.display().to_string();
    let old_name = if e.old.is_some() {
        name.clone()
    } else {
        "/dev/null".to_string()
    };
    similar::TextDiff::from_lines(e.old.as_deref().unwrap_or(""), &e.new)
        .unified_diff()
        .header(&old_name, &name)
        .to_string()
}

/// Replaces the file in one rename, keeping its permissions.
fn write(e: &Edit) -> Result<()> {
    let dir = match e.path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.rvisor-install.{}",
        e.path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("config"),
        std::process::id()
    ));
    std::fs::write(&tmp, &e.new).with_context(|| format!("write {}", tmp.display()))?;
    if let Ok(m) = std::fs::metadata(&e.path) {
        let _ = std::fs::set_permissions(&tmp, m.permissions());
    }
    std::fs::rename(&tmp, &e.path).map_err(|err| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("rename {} to {}: {err}", tmp.display(), e.path.display())
    })
}

/// `rvisor install`: prints what it changes (the diff with --dry-run, which writes
/// nothing) and which service needs a restart.
pub fn run(containerd: Option<&Path>, docker: Option<&Path>, dry_run: bool) -> Result<i32> {
    let binary = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .context("the path of the rvisor binary")?;
    for e in plan(containerd, docker, &binary)? {
        let name = e.path.display();
        if !e.changes() {
            println!("{name}: rvisor is already set up; nothing to change");
        } else if dry_run {
            print!("{}", diff(&e));
            println!("{name}: would change (--dry-run: nothing written)");
        } else {
            write(&e)?;
            println!("{name}: rvisor added; restart the daemon that reads it to apply");
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = r#"# containerd 1.7, as shipped
version = 2
root = "/var/lib/containerd"

[plugins]
  # CRI settings
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.9"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
"#;

    #[test]
    fn containerd_v2_adds_the_runtime_and_keeps_the_rest() {
        let new = containerd_config(Some(V2)).unwrap();
        // Everything that was there, comments included, is still there in order.
        assert!(new.starts_with(V2), "{new}");
        let doc: toml::Table = toml::from_str(&new).unwrap();
        let rt = &doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"];
        assert_eq!(rt["rvisor"]["runtime_type"].as_str(), Some(RUNTIME_TYPE));
        assert_eq!(
            rt["runc"]["runtime_type"].as_str(),
            Some("io.containerd.runc.v2")
        );
        assert_eq!(containerd_config(Some(&new)).unwrap(), new);
    }

    #[test]
    fn containerd_v3_uses_the_runtime_plugin() {
        let old = "version = 3\n\n[plugins.'io.containerd.cri.v1.images']\n  snapshotter = 'overlayfs' # fast\n";
        let new = containerd_config(Some(old)).unwrap();
        assert!(new.starts_with(old), "{new}");
        assert!(new.contains(
            "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.rvisor]\nruntime_type = \"io.containerd.rvisor.v1\"\n"
        ), "{new}");
        assert_eq!(containerd_config(Some(&new)).unwrap(), new);
    }

    #[test]
    fn containerd_wrong_runtime_type_is_corrected_in_place() {
        let old = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.rvisor]\n  runtime_type = \"io.containerd.runsc.v1\" # old\n  pod_annotations = [\"dev.rvisor.*\"]\n";
        let new = containerd_config(Some(old)).unwrap();
        let doc: toml::Table = toml::from_str(&new).unwrap();
        let rt = &doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["rvisor"];
        assert_eq!(rt["runtime_type"].as_str(), Some(RUNTIME_TYPE));
        assert!(rt.get("pod_annotations").is_some(), "{new}");
    }

    #[test]
    fn containerd_empty_or_missing_becomes_version_2() {
        for old in [None, Some(""), Some("# nothing yet\n")] {
            let new = containerd_config(old).unwrap();
            let doc: toml::Table = toml::from_str(&new).unwrap();
            assert_eq!(doc["version"].as_integer(), Some(2), "{new}");
            assert_eq!(containerd_config(Some(&new)).unwrap(), new);
        }
    }

    #[test]
    fn containerd_refuses_what_it_cannot_edit_safely() {
        // Version 1 (no `version`): containerd's own migration is the right tool.
        let e = containerd_config(Some("[plugins.cri]\n  x = 1\n")).unwrap_err();
        assert!(format!("{e:#}").contains("migrate"), "{e:#}");
        let e = containerd_config(Some("version = 4\n")).unwrap_err();
        assert!(format!("{e:#}").contains("version 4"), "{e:#}");
        let e = containerd_config(Some("version = 2\nplugins = { a = 1 }\n")).unwrap_err();
        assert!(format!("{e:#}").contains("`plugins`"), "{e:#}");
        assert!(containerd_config(Some("version = [")).is_err());
    }

    #[test]
    fn docker_adds_the_runtime_and_keeps_other_keys() {
        let old = r#"{
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m"},
  "runtimes": {"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--platform=kvm"]}}
}"#;
        let bin = Path::new("/usr/local/bin/rvisor");
        let new = docker_config(Some(old), bin).unwrap();
        let v: Value = serde_json::from_str(&new).unwrap();
        let mut want: Value = serde_json::from_str(old).unwrap();
        want["runtimes"]["rvisor"] = serde_json::json!({"path": "/usr/local/bin/rvisor"});
        assert_eq!(v, want);
        assert_eq!(docker_config(Some(&new), bin).unwrap(), new);
        // An entry whose path moved is updated; its runtimeArgs stay.
        let moved =
            r#"{"runtimes": {"rvisor": {"path": "/old/rvisor", "runtimeArgs": ["--debug"]}}}"#;
        let v: Value = serde_json::from_str(&docker_config(Some(moved), bin).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"runtimes": {"rvisor": {"path": "/usr/local/bin/rvisor", "runtimeArgs": ["--debug"]}}})
        );
        assert!(docker_config(Some("[1]"), bin).is_err());
        assert!(docker_config(Some(r#"{"runtimes": 3}"#), bin).is_err());
        let v: Value = serde_json::from_str(&docker_config(None, bin).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"runtimes": {"rvisor": {"path": "/usr/local/bin/rvisor"}}})
        );
    }

    #[test]
    fn diff_of_a_new_file_adds_every_line() {
        let e = Edit {
            path: "/x/daemon.json".into(),
            old: None,
            new: "{\n}\n".into(),
        };
        assert_eq!(
            diff(&e),
            "--- /dev/null\n+++ /x/daemon.json\n@@ -0,0 +1,2 @@\n+{\n+}\n"
        );
    }
}
