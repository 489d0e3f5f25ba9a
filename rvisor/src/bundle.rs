//! Reading and validating an OCI bundle's `config.json`.
//!
//! Errors are one line naming the field (`process.cwd: must be an absolute path, got
//! "tmp"`): the JSON is first checked as a tree so each message can name its path,
//! then deserialized into oci-spec's types for everything else.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use sentry::config::{MountConfig, ProcessConfig, Rlimit};
use serde_json::Value;

/// Linux `HOST_NAME_MAX`.
pub const HOST_NAME_MAX: usize = 64;

/// A validated bundle: what `run` needs to start the sandbox.
#[derive(Debug)]
pub struct Bundle {
    /// The container's first process.
    pub process: ProcessConfig,
    /// Hostname, if the spec sets one.
    pub hostname: Option<String>,
    /// Absolute, canonical host path of the rootfs.
    pub rootfs: PathBuf,
    /// `root.readonly`.
    pub readonly: bool,
    /// The whole validated spec (annotations, hooks, terminal, linux).
    pub spec: Spec,
    /// The spec's mounts as the sentry takes them (bind mounts in `binds` order).
    pub mounts: Vec<MountConfig>,
    /// The spec's bind mounts, for the gofer's `--mount` flags.
    pub binds: Vec<gofer::BindMount>,
    /// Each bind mount's index in `mounts` of the spec and its canonical host source
    /// (for the allowed-roots rule, `policy::check`).
    pub bind_sources: Vec<(usize, PathBuf)>,
    /// `linux.maskedPaths`.
    pub masked_paths: Vec<String>,
    /// `linux.readonlyPaths`.
    pub readonly_paths: Vec<String>,
}

/// A validation failure: the field path (empty for the whole document) and what is
/// wrong with it.
#[derive(Debug, PartialEq, Eq)]
pub struct SpecError {
    pub field: String,
    pub msg: String,
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "config.json: {}", self.msg)
        } else {
            write!(f, "config.json: {}: {}", self.field, self.msg)
        }
    }
}

impl std::error::Error for SpecError {}

fn err(field: impl Into<String>, msg: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        msg: msg.into(),
    }
}

/// `RLIMIT_*` names of the OCI spec and their Linux numbers.
pub fn rlimit_number(name: &str) -> Option<u32> {
    Some(match name {
        "RLIMIT_CPU" => 0,
        "RLIMIT_FSIZE" => 1,
        "RLIMIT_DATA" => 2,
        "RLIMIT_STACK" => 3,
        "RLIMIT_CORE" => 4,
        "RLIMIT_RSS" => 5,
        "RLIMIT_NPROC" => 6,
        "RLIMIT_NOFILE" => 7,
        "RLIMIT_MEMLOCK" => 8,
        "RLIMIT_AS" => 9,
        "RLIMIT_LOCKS" => 10,
        "RLIMIT_SIGPENDING" => 11,
        "RLIMIT_MSGQUEUE" => 12,
        "RLIMIT_NICE" => 13,
        "RLIMIT_RTPRIO" => 14,
        "RLIMIT_RTTIME" => 15,
        _ => return None,
    })
}

/// Loads `bundle/config.json`.
pub fn load(bundle: &Path) -> Result<Bundle, SpecError> {
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        err(
            "",
            format!("cannot read {}: {}", path.display(), io_msg(&e)),
        )
    })?;
    parse(&text, bundle)
}

/// The message of an io error without Rust's " (os error N)" suffix.
pub fn io_msg(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Parses and validates a config.json whose relative paths are relative to `bundle`.
pub fn parse(text: &str, bundle: &Path) -> Result<Bundle, SpecError> {
    let mut doc: Value = serde_json::from_str(text).map_err(|e| {
        err(
            "",
            format!(
                "invalid JSON at line {} column {}: {}",
                e.line(),
                e.column(),
                strip_position(&e.to_string())
            ),
        )
    })?;
    let top = doc
        .as_object_mut()
        .ok_or_else(|| err("", "must be a JSON object"))?;

    let process = top
        .get_mut("process")
        .ok_or_else(|| err("process", "missing"))?;
    let pobj = process
        .as_object_mut()
        .ok_or_else(|| err("process", "must be an object"))?;
    // runc tolerates a missing user; oci-spec's type requires one, so supply root.
    pobj.entry("user")
        .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
    let pre = check_process(pobj)?;
    check_root(top.get("root"))?;
    if let Some(h) = top.get("hostname") {
        let h = h
            .as_str()
            .ok_or_else(|| err("hostname", "must be a string"))?;
        check_hostname(h).map_err(|m| err("hostname", m))?;
    }

    let spec: Spec = serde_json::from_value(doc.clone()).map_err(|e| locate(&doc, e))?;
    build(&spec, pre, bundle)
}

/// serde_json puts " at line L column C" at the end of its messages; we say it first.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Checks a hostname the way sethostname(2) would.
pub fn check_hostname(h: &str) -> Result<(), String> {
    if h.len() > HOST_NAME_MAX {
        return Err(format!(
            "longer than {HOST_NAME_MAX} bytes ({} bytes)",
            h.len()
        ));
    }
    if h.contains('\0') {
        return Err("must not contain a NUL byte".into());
    }
    Ok(())
}

/// What the tree check extracts that oci-spec's types would lose (unknown rlimits
/// cannot be represented there).
struct PreChecked {
    rlimits: Vec<Rlimit>,
    capabilities: Option<sentry::config::CapConfig>,
}

fn string_array(v: &Value, field: &str) -> Result<Vec<String>, SpecError> {
    let arr = v
        .as_array()
        .ok_or_else(|| err(field, "must be an array of strings"))?;
    arr.iter()
        .enumerate()
        .map(|(i, s)| {
            s.as_str()
                .map(str::to_string)
                .ok_or_else(|| err(format!("{field}[{i}]"), "must be a string"))
        })
        .collect()
}

fn u32_field(v: &Value, field: &str) -> Result<u32, SpecError> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            err(
                field,
                format!("must be an integer 0..={}, got {v}", u32::MAX),
            )
        })
}

fn check_process(p: &serde_json::Map<String, Value>) -> Result<PreChecked, SpecError> {
    let args = p
        .get("args")
        .ok_or_else(|| err("process.args", "missing"))?;
    let args = string_array(args, "process.args")?;
    if args.is_empty() {
        return Err(err("process.args", "must not be empty"));
    }
    if args[0].is_empty() {
        return Err(err("process.args[0]", "must not be empty"));
    }
    if let Some(i) = args.iter().position(|a| a.contains('\0')) {
        return Err(err(
            format!("process.args[{i}]"),
            "must not contain a NUL byte",
        ));
    }

    if let Some(env) = p.get("env") {
        for (i, e) in string_array(env, "process.env")?.iter().enumerate() {
            match e.split_once('=') {
                Some((k, _)) if !k.is_empty() && !e.contains('\0') => {}
                _ => {
                    return Err(err(
                        format!("process.env[{i}]"),
                        format!("must be KEY=VALUE, got {e:?}"),
                    ))
                }
            }
        }
    }

    let cwd = p.get("cwd").ok_or_else(|| err("process.cwd", "missing"))?;
    let cwd = cwd
        .as_str()
        .ok_or_else(|| err("process.cwd", "must be a string"))?;
    if !cwd.starts_with('/') {
        return Err(err(
            "process.cwd",
            format!("must be an absolute path, got {cwd:?}"),
        ));
    }

    if let Some(t) = p.get("terminal") {
        match t.as_bool() {
            // `true` needs a console socket: create takes one; run checks it itself.
            Some(_) => {}
            None => return Err(err("process.terminal", "must be a boolean")),
        }
    }

    if let Some(user) = p.get("user") {
        let u = user
            .as_object()
            .ok_or_else(|| err("process.user", "must be an object"))?;
        for key in ["uid", "gid"] {
            if let Some(v) = u.get(key) {
                u32_field(v, &format!("process.user.{key}"))?;
            }
        }
        if let Some(g) = u.get("additionalGids") {
            let arr = g
                .as_array()
                .ok_or_else(|| err("process.user.additionalGids", "must be an array"))?;
            for (i, v) in arr.iter().enumerate() {
                u32_field(v, &format!("process.user.additionalGids[{i}]"))?;
            }
        }
    }

    let mut rlimits = Vec::new();
    if let Some(rl) = p.get("rlimits") {
        let arr = rl
            .as_array()
            .ok_or_else(|| err("process.rlimits", "must be an array"))?;
        let mut seen = HashMap::new();
        for (i, r) in arr.iter().enumerate() {
            let field = format!("process.rlimits[{i}]");
            let o = r
                .as_object()
                .ok_or_else(|| err(&field, "must be an object"))?;
            let name = o
                .get("type")
                .ok_or_else(|| err(format!("{field}.type"), "missing"))?
                .as_str()
                .ok_or_else(|| err(format!("{field}.type"), "must be a string"))?;
            let resource = rlimit_number(name)
                .ok_or_else(|| err(format!("{field}.type"), format!("unknown rlimit {name:?}")))?;
            if let Some(prev) = seen.insert(resource, i) {
                return Err(err(
                    format!("{field}.type"),
                    format!("{name} already set by process.rlimits[{prev}]"),
                ));
            }
            let limit = |key: &str| -> Result<u64, SpecError> {
                match o.get(key) {
                    None => Ok(0),
                    Some(v) => v.as_u64().ok_or_else(|| {
                        err(
                            format!("{field}.{key}"),
                            format!("must be a non-negative integer, got {v}"),
                        )
                    }),
                }
            };
            let (soft, hard) = (limit("soft")?, limit("hard")?);
            if soft > hard {
                return Err(err(
                    &field,
                    format!("soft limit {soft} exceeds hard limit {hard}"),
                ));
            }
            rlimits.push(Rlimit {
                resource,
                soft,
                hard,
            });
        }
    }
    // No capabilities stated: none at all, in any set (what runc gives such a spec).
    let capabilities = match p.get("capabilities") {
        None | Some(Value::Null) => Some(sentry::config::CapConfig::default()),
        Some(v) => {
            Some(crate::caps::from_json(v, "process.capabilities").map_err(|(f, m)| err(f, m))?)
        }
    };
    Ok(PreChecked {
        rlimits,
        capabilities,
    })
}

fn check_root(root: Option<&Value>) -> Result<(), SpecError> {
    let root = root.ok_or_else(|| err("root", "missing"))?;
    let o = root
        .as_object()
        .ok_or_else(|| err("root", "must be an object"))?;
    let path = o
        .get("path")
        .ok_or_else(|| err("root.path", "missing"))?
        .as_str()
        .ok_or_else(|| err("root.path", "must be a string"))?;
    if path.is_empty() {
        return Err(err("root.path", "must not be empty"));
    }
    if let Some(r) = o.get("readonly") {
        if !r.is_boolean() {
            return Err(err("root.readonly", "must be a boolean"));
        }
    }
    Ok(())
}

/// Names the section of the document oci-spec refused, by deserializing each known
/// section on its own.
fn locate(doc: &Value, whole: serde_json::Error) -> SpecError {
    use oci_spec::runtime::{Hooks, Linux, Mount, Process, Root};
    fn try_as<T: serde::de::DeserializeOwned>(v: &Value) -> Option<String> {
        serde_json::from_value::<T>(v.clone())
            .err()
            .map(|e| e.to_string())
    }
    let Some(top) = doc.as_object() else {
        return err("", whole.to_string());
    };
    for (key, v) in top {
        let failure = match key.as_str() {
            "ociVersion" | "hostname" | "domainname" => try_as::<String>(v),
            "root" => try_as::<Root>(v),
            "process" => try_as::<Process>(v),
            "hooks" => try_as::<Hooks>(v),
            "linux" => try_as::<Linux>(v),
            "annotations" => try_as::<HashMap<String, String>>(v),
            "mounts" => match v.as_array() {
                Some(arr) => {
                    if let Some((i, e)) = arr
                        .iter()
                        .enumerate()
                        .find_map(|(i, m)| try_as::<Mount>(m).map(|e| (i, e)))
                    {
                        return err(format!("mounts[{i}]"), e);
                    }
                    None
                }
                None => Some("must be an array".to_string()),
            },
            _ => None,
        };
        if let Some(e) = failure {
            return err(key.clone(), e);
        }
    }
    err("", whole.to_string())
}

fn build(spec: &Spec, pre: PreChecked, bundle: &Path) -> Result<Bundle, SpecError> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| err("process", "missing"))?;
    let root = spec.root().as_ref().ok_or_else(|| err("root", "missing"))?;

    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    let rootfs = match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => std::fs::canonicalize(&rootfs)
            .map_err(|e| err("root.path", format!("{}: {}", rootfs.display(), io_msg(&e))))?,
        Ok(_) => {
            return Err(err(
                "root.path",
                format!("{} is not a directory", rootfs.display()),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(err(
                "root.path",
                format!("{} does not exist", rootfs.display()),
            ))
        }
        Err(e) => {
            return Err(err(
                "root.path",
                format!("{}: {}", rootfs.display(), io_msg(&e)),
            ))
        }
    };

    let (mounts, binds, bind_sources) =
        translate_mounts(spec.mounts().as_deref().unwrap_or(&[]), bundle)?;

    let user = process.user();
    let cwd = process.cwd().to_string_lossy().into_owned();
    let env = process.env().clone().unwrap_or_default();
    // rlimits come from the tree check, which also knows their numbers.
    Ok(Bundle {
        process: ProcessConfig {
            args: process.args().clone().unwrap_or_default(),
            env,
            cwd,
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
            rlimits: pre.rlimits,
            capabilities: pre.capabilities,
            no_new_privs: process.no_new_privileges().unwrap_or(false),
            oom_score_adj: process.oom_score_adj().unwrap_or(0),
            seccomp: crate::seccomp_config::from_spec(spec)?,
        },
        hostname: spec.hostname().clone(),
        rootfs,
        readonly: root.readonly().unwrap_or(false),
        spec: spec.clone(),
        mounts,
        binds,
        bind_sources,
        masked_paths: paths(
            spec.linux().as_ref().and_then(|l| l.masked_paths().clone()),
            "linux.maskedPaths",
        )?,
        readonly_paths: paths(
            spec.linux()
                .as_ref()
                .and_then(|l| l.readonly_paths().clone()),
            "linux.readonlyPaths",
        )?,
    })
}

/// Checks a list of container paths (absolute, no NUL).
fn paths(list: Option<Vec<String>>, field: &str) -> Result<Vec<String>, SpecError> {
    let list = list.unwrap_or_default();
    for (i, p) in list.iter().enumerate() {
        if !p.starts_with('/') || p.contains('\0') {
            return Err(err(
                format!("{field}[{i}]"),
                format!("must be an absolute path, got {p:?}"),
            ));
        }
    }
    Ok(list)
}

/// Mount options that set `MS_*` flags the sentry applies per mount.
const FLAG_OPTIONS: [&str; 8] = [
    "ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec",
];

/// Options without an effect inside the sandbox: propagation (the sentry's mount
/// table has no peers), atime policy (atime is not persisted), sync modes and the
/// bind markers themselves.
const IGNORED_OPTIONS: [&str; 20] = [
    "bind",
    "rbind",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
    "noatime",
    "atime",
    "nodiratime",
    "diratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nosymfollow",
];

/// Translates the spec's `mounts` into the sentry's mount list and the gofer's bind
/// mounts. A bind mount (type `bind`, or options holding `bind`/`rbind`) of a
/// directory or a single regular file (`/etc/hosts`) is served by the gofer
/// (`--mount`), attached by the sentry in the same order; `tmpfs`, `proc`, `sysfs`, `devpts`, `mqueue` and `devtmpfs` are the
/// sentry's own filesystems. A tmpfs over `/dev` becomes the sentry's devtmpfs: runc
/// fills that tmpfs with the default device nodes, which devtmpfs already has.
/// `cgroup` and `cgroup2` are the sentry's read-only cgroup v2 filesystem showing the
/// container's limits. Skipped with a warning (as runsc does for what it cannot
/// mount): bind mounts of sockets, devices and FIFOs (the sentry never opens those
/// host objects). Any other type is refused.
fn translate_mounts(spec: &[oci_spec::runtime::Mount], bundle: &Path) -> Result<Binds, SpecError> {
    let mut mounts = Vec::new();
    let mut binds = Vec::new();
    let mut sources = Vec::new();
    for (i, m) in spec.iter().enumerate() {
        let field = format!("mounts[{i}]");
        let dest = m.destination().to_string_lossy().into_owned();
        if !dest.starts_with('/') {
            return Err(err(
                format!("{field}.destination"),
                format!("must be an absolute path, got {dest:?}"),
            ));
        }
        if dest.contains('\0') || dest.contains('=') {
            return Err(err(
                format!("{field}.destination"),
                format!("{dest:?}: must not contain '=' or NUL"),
            ));
        }
        if dest.split('/').any(|c| c == "..") {
            return Err(err(
                format!("{field}.destination"),
                format!("{dest:?}: must not contain \"..\""),
            ));
        }
        let opts = m.options().clone().unwrap_or_default();
        let typ = m.typ().clone().unwrap_or_default();
        let is_bind = typ == "bind" || opts.iter().any(|o| o == "bind" || o == "rbind");
        let mut flags: Vec<String> = Vec::new();
        let mut fs_opts: Vec<String> = Vec::new();
        for o in &opts {
            // runc's recursive attributes (`rro`, `rnosuid`, ...; mount_setattr with
            // AT_RECURSIVE): the sentry's mount of a bind already covers everything
            // under it, and the gofer makes a read-only bind's host submounts
            // read-only too, so each is its plain flag.
            let recursive = o.strip_prefix('r');
            if FLAG_OPTIONS.contains(&o.as_str()) {
                flags.push(o.clone());
            } else if let Some(f) = recursive.filter(|f| FLAG_OPTIONS.contains(f)) {
                flags.push(f.to_string());
            } else if !IGNORED_OPTIONS.contains(&o.as_str())
                && !recursive.is_some_and(|f| IGNORED_OPTIONS.contains(&f) || f == "symfollow")
            {
                fs_opts.push(o.clone());
            }
        }
        let readonly = flags
            .iter()
            .rev()
            .find(|f| *f == "ro" || *f == "rw")
            .is_some_and(|f| f == "ro");
        if is_bind {
            let src = m
                .source()
                .as_ref()
                .ok_or_else(|| err(format!("{field}.source"), "missing for a bind mount"))?;
            let src = if src.is_absolute() {
                src.clone()
            } else {
                bundle.join(src)
            };
            let meta = std::fs::metadata(&src).map_err(|e| {
                err(
                    format!("{field}.source"),
                    format!("{}: {}", src.display(), io_msg(&e)),
                )
            })?;
            if !meta.is_dir() && !meta.is_file() {
                return Err(err(
                    format!("{field}.source"),
                    format!(
                        "{} is a socket, device or FIFO: bind mounts of those are refused (the sandbox never opens host devices or sockets); remove the mount",
                        src.display()
                    ),
                ));
            }
            let src = std::fs::canonicalize(&src).map_err(|e| {
                err(
                    format!("{field}.source"),
                    format!("{}: {}", src.display(), io_msg(&e)),
                )
            })?;
            sources.push((i, src.clone()));
            if !fs_opts.is_empty() {
                tracing::warn!(
                    "config.json: {field}.options: {fs_opts:?} ignored: not options of a bind mount"
                );
            }
            binds.push(gofer::BindMount {
                dest: dest.clone(),
                src: src.clone(),
                readonly,
                recursive: opts.iter().any(|o| o == "rbind"),
                fd: None,
            });
            mounts.push(MountConfig {
                destination: dest,
                kind: "bind".into(),
                source: src.to_string_lossy().into_owned(),
                options: flags,
            });
            continue;
        }
        let kind = match typ.as_str() {
            "tmpfs" if dest.trim_end_matches('/') == "/dev" => "devtmpfs",
            "tmpfs" | "proc" | "sysfs" | "devpts" | "mqueue" | "devtmpfs" => typ.as_str(),
            // The sentry's cgroup v2 filesystem, whichever the spec names (runc
            // mounts cgroup2 for `cgroup` on a v2 host; the sandbox is always v2).
            "cgroup" | "cgroup2" => "cgroup2",
            "" => return Err(err(format!("{field}.type"), "missing (and not a bind mount)")),
            other => {
                return Err(err(
                    format!("{field}.type"),
                    format!("{other:?} is not supported (bind, tmpfs, proc, sysfs, devpts, mqueue, devtmpfs)"),
                ))
            }
        };
        let mut options = flags;
        if kind == "tmpfs" {
            for o in fs_opts {
                let key = o.split_once('=').map_or(o.as_str(), |(k, _)| k);
                if !matches!(
                    key,
                    "mode"
                        | "size"
                        | "uid"
                        | "gid"
                        | "nr_inodes"
                        | "nr_blocks"
                        | "huge"
                        | "mpol"
                        | "inode64"
                        | "noswap"
                ) {
                    return Err(err(
                        format!("{field}.options"),
                        format!("{o:?} is not a tmpfs option"),
                    ));
                }
                options.push(o);
            }
        }
        mounts.push(MountConfig {
            destination: dest,
            kind: kind.into(),
            source: m
                .source()
                .as_ref()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| kind.to_string()),
            options,
        });
    }
    Ok((mounts, binds, sources))
}

/// The sentry's mounts, the gofer's binds, and each bind's (spec index, source).
type Binds = (
    Vec<MountConfig>,
    Vec<gofer::BindMount>,
    Vec<(usize, PathBuf)>,
);

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_dir() -> PathBuf {
        PathBuf::from("/")
    }

    fn parse_err(json: &str) -> String {
        parse(json, &bundle_dir()).unwrap_err().to_string()
    }

    const GOOD: &str = r#"{"ociVersion":"1.0.2","process":{"args":["/bin/true"],"cwd":"/",
        "env":["PATH=/bin"],"user":{"uid":5,"gid":6,"additionalGids":[7]},
        "rlimits":[{"type":"RLIMIT_NOFILE","soft":10,"hard":20}]},
        "root":{"path":"/","readonly":true},"hostname":"h"}"#;

    #[test]
    fn good_config_builds() {
        let b = parse(GOOD, &bundle_dir()).unwrap();
        assert_eq!(b.process.args, vec!["/bin/true"]);
        assert_eq!((b.process.uid, b.process.gid), (5, 6));
        assert_eq!(b.process.additional_gids, vec![7]);
        assert_eq!(
            b.process.rlimits,
            vec![Rlimit {
                resource: 7,
                soft: 10,
                hard: 20
            }]
        );
        assert_eq!(b.hostname.as_deref(), Some("h"));
        assert!(b.readonly);
        assert_eq!(b.rootfs, PathBuf::from("/"));
    }

    #[test]
    fn json_errors_have_a_position() {
        let e = parse_err("{\n  \"process\": [1,\n}");
        assert!(
            e.starts_with("config.json: invalid JSON at line 3 column 1: "),
            "{e}"
        );
    }

    #[test]
    fn field_errors_name_the_field() {
        let cases = [
            (
                GOOD.replace("\"args\":[\"/bin/true\"],", ""),
                "process.args: missing",
            ),
            (
                GOOD.replace("[\"/bin/true\"]", "[]"),
                "process.args: must not be empty",
            ),
            (
                GOOD.replace("[\"/bin/true\"]", "[\"\"]"),
                "process.args[0]: must not be empty",
            ),
            (
                GOOD.replace("[\"/bin/true\"]", "[\"a\",3]"),
                "process.args[1]: must be a string",
            ),
            (
                GOOD.replace("\"cwd\":\"/\"", "\"cwd\":\"tmp\""),
                "process.cwd: must be an absolute path, got \"tmp\"",
            ),
            (
                GOOD.replace("PATH=/bin", "PATH"),
                "process.env[0]: must be KEY=VALUE, got \"PATH\"",
            ),
            (
                GOOD.replace("RLIMIT_NOFILE", "RLIMIT_BOGUS"),
                "process.rlimits[0].type: unknown rlimit \"RLIMIT_BOGUS\"",
            ),
            (
                GOOD.replace("\"soft\":10", "\"soft\":30"),
                "process.rlimits[0]: soft limit 30 exceeds hard limit 20",
            ),
            (
                GOOD.replace("\"uid\":5", "\"uid\":-1"),
                "process.user.uid: must be an integer",
            ),
            (
                GOOD.replace("\"path\":\"/\"", "\"path\":\"/nonexistent-rvisor\""),
                "root.path: /nonexistent-rvisor does not exist",
            ),
            (
                GOOD.replace("\"hostname\":\"h\"", "\"hostname\":7"),
                "hostname: must be a string",
            ),
            (
                GOOD.replace("\"ociVersion\":\"1.0.2\"", "\"ociVersion\":1"),
                "ociVersion: invalid type",
            ),
            (
                GOOD.replace("\"cwd\":\"/\",", "\"cwd\":\"/\",\"terminal\":1,"),
                "process.terminal: must be a boolean",
            ),
            ("[1]".to_string(), "config.json: must be a JSON object"),
            ("{}".to_string(), "process: missing"),
        ];
        for (json, want) in cases {
            let e = parse_err(&json);
            assert!(e.contains(want), "want {want:?}, got {e:?}");
            assert!(!e.contains('\n'), "{e:?}");
        }
    }

    #[test]
    fn every_oci_rlimit_name_maps() {
        for name in [
            "RLIMIT_CPU",
            "RLIMIT_FSIZE",
            "RLIMIT_DATA",
            "RLIMIT_STACK",
            "RLIMIT_CORE",
            "RLIMIT_RSS",
            "RLIMIT_NPROC",
            "RLIMIT_NOFILE",
            "RLIMIT_MEMLOCK",
            "RLIMIT_AS",
            "RLIMIT_LOCKS",
            "RLIMIT_SIGPENDING",
            "RLIMIT_MSGQUEUE",
            "RLIMIT_NICE",
            "RLIMIT_RTPRIO",
            "RLIMIT_RTTIME",
        ] {
            let n = rlimit_number(name).unwrap();
            // The numbers are libc's.
            let want = match name {
                "RLIMIT_CPU" => libc::RLIMIT_CPU,
                "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
                "RLIMIT_DATA" => libc::RLIMIT_DATA,
                "RLIMIT_STACK" => libc::RLIMIT_STACK,
                "RLIMIT_CORE" => libc::RLIMIT_CORE,
                "RLIMIT_RSS" => libc::RLIMIT_RSS,
                "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
                "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
                "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
                "RLIMIT_AS" => libc::RLIMIT_AS,
                "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
                "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
                "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
                "RLIMIT_NICE" => libc::RLIMIT_NICE,
                "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
                _ => libc::RLIMIT_RTTIME,
            };
            assert_eq!(n, want, "{name}");
        }
    }

    #[test]
    fn mounts_are_translated() {
        let json = r#"{"ociVersion":"1.0.2","process":{"args":["/bin/true"],"cwd":"/"},
            "root":{"path":"/"},"mounts":[
            {"destination":"/dev","type":"tmpfs","source":"tmpfs",
             "options":["nosuid","strictatime","mode=755","size=65536k"]},
            {"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["ro"]},
            {"destination":"/data","source":"/tmp","options":["rbind","rprivate","ro"]},
            {"destination":"/etc/hostname","type":"bind","source":"/etc/hostname","options":["rbind","rw"]},
            {"destination":"/q","type":"mqueue","source":"mqueue","options":["nodev","mode=1777"]}]}"#;
        let b = parse(json, &bundle_dir()).unwrap();
        let kinds: Vec<(&str, &str, Vec<&str>)> = b
            .mounts
            .iter()
            .map(|m| {
                (
                    m.destination.as_str(),
                    m.kind.as_str(),
                    m.options.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("/dev", "devtmpfs", vec!["nosuid"]),
                ("/sys/fs/cgroup", "cgroup2", vec!["ro"]),
                ("/data", "bind", vec!["ro"]),
                ("/etc/hostname", "bind", vec!["rw"]),
                ("/q", "mqueue", vec!["nodev"]),
            ]
        );
        // A single-file bind is served.
        assert_eq!(b.binds.len(), 2);
        assert!(b.binds[0].readonly);
        assert_eq!(b.binds[0].dest, "/data");
        assert!(!b.binds[1].readonly);
        assert_eq!(b.binds[1].dest, "/etc/hostname");
        assert!(std::fs::metadata(&b.binds[1].src).unwrap().is_file());
        assert_eq!(b.bind_sources[0], (2, PathBuf::from("/tmp")));
        // A device node as a bind source is refused.
        let dev = json.replace("\"/etc/hostname\",\"options\"", "\"/dev/null\",\"options\"");
        let e = parse(&dev, &bundle_dir()).unwrap_err().to_string();
        assert!(
            e.contains("mounts[3].source: /dev/null is a socket, device or FIFO"),
            "{e}"
        );
    }

    #[test]
    fn recursive_mount_attributes_are_their_flags() {
        let json = r#"{"ociVersion":"1.0.2","process":{"args":["/bin/true"],"cwd":"/"},
            "root":{"path":"/"},"mounts":[
            {"destination":"/a","type":"bind","source":"/tmp",
             "options":["rbind","rro","rnosuid","rnodev","rnoexec","rnoatime","rnosymfollow"]},
            {"destination":"/b","type":"bind","source":"/tmp","options":["bind","rro","rrw"]},
            {"destination":"/c","type":"bind","source":"/tmp","options":["bind","ro"]}]}"#;
        let b = parse(json, &bundle_dir()).unwrap();
        let opts: Vec<Vec<&str>> = b
            .mounts
            .iter()
            .map(|m| m.options.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            opts,
            vec![
                vec!["ro", "nosuid", "nodev", "noexec"],
                vec!["ro", "rw"],
                vec!["ro"]
            ]
        );
        let flags: Vec<(bool, bool)> = b.binds.iter().map(|m| (m.readonly, m.recursive)).collect();
        assert_eq!(flags, vec![(true, true), (false, false), (true, false)]);
    }
}
