//! The shim's options: a TOML file like runsc.toml, turned into rvisor's global flags.
//!
//! The path is `$RVISOR_SHIM_CONFIG`, else `/etc/containerd/rvisor.toml` when it
//! exists. A new option is one field here and one line in [`Options::global_args`].

use std::ffi::OsString;
use std::path::PathBuf;

use serde::Deserialize;

/// rvisor options, as in runsc.toml.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Options {
    /// Path of the `rvisor` binary [default: beside the shim, else on PATH].
    pub binary: Option<PathBuf>,
    pub platform: Option<String>,
    /// rvisor's `--network`: unset, rvisor's default for containers (`sandbox`).
    pub network: Option<String>,
    pub overlay: Option<String>,
    pub debug_log: Option<PathBuf>,
    #[serde(default)]
    pub strace: bool,
    #[serde(default)]
    pub debug: bool,
    /// rvisor's `--net-raw`: processes keep CAP_NET_RAW when their spec gives it.
    #[serde(default)]
    pub net_raw: bool,
    /// rvisor's `--allow-metadata`: the cloud metadata server stays reachable from
    /// every pod (one pod at a time: the annotation dev.rvisor.metadata=allow).
    #[serde(default)]
    pub allow_metadata: bool,
    /// rvisor's `--allow-mount-source DIR` for each: host directories bind mounts
    /// may come from, besides the bundle and the kubelet's and containerd's volumes.
    #[serde(default)]
    pub allowed_mount_sources: Vec<PathBuf>,
    /// rvisor's `--unsafe-weak-confinement`: skip confinement steps the host refuses
    /// (for a containerd running nested without the privileges).
    #[serde(default)]
    pub unsafe_weak_confinement: bool,
    /// rvisor's `--core-scheduling`: `auto` (default), `required` or `off`.
    pub core_scheduling: Option<String>,
}

impl Options {
    /// Reads the options file; no file means the defaults.
    pub fn load() -> Result<Options, String> {
        let path = std::env::var_os("RVISOR_SHIM_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/etc/containerd/rvisor.toml"));
        match std::fs::read_to_string(&path) {
            Ok(text) => Options::parse(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Options::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Options from the text of a TOML file.
    pub fn parse(text: &str) -> Result<Options, toml::de::Error> {
        toml::from_str(text)
    }

    /// The `rvisor` binary to run.
    pub fn binary(&self) -> PathBuf {
        if let Some(b) = &self.binary {
            return b.clone();
        }
        if let Ok(me) = std::env::current_exe() {
            let sib = me.with_file_name("rvisor");
            if sib.exists() {
                return sib;
            }
        }
        PathBuf::from("rvisor")
    }

    /// rvisor's global flags for these options.
    pub fn global_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut value = |flag: &str, v: &Option<String>| {
            if let Some(v) = v {
                a.push(format!("--{flag}={v}").into());
            }
        };
        value("platform", &self.platform);
        value("network", &self.network);
        value("overlay", &self.overlay);
        value("core-scheduling", &self.core_scheduling);
        if let Some(d) = &self.debug_log {
            a.extend(["--debug-log".into(), d.into()]);
        }
        for (on, flag) in [
            (self.strace, "--strace"),
            (self.debug, "--debug"),
            (self.unsafe_weak_confinement, "--unsafe-weak-confinement"),
            (self.net_raw, "--net-raw"),
            (self.allow_metadata, "--allow-metadata"),
        ] {
            if on {
                a.push(flag.into());
            }
        }
        for d in &self.allowed_mount_sources {
            a.extend(["--allow-mount-source".into(), d.into()]);
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_becomes_global_flags() {
        let o = Options::parse(
            r#"
            platform = "systrap"
            network = "none"
            strace = true
            net-raw = true
            allowed-mount-sources = ["/a", "/b"]
            core-scheduling = "off"
            "#,
        )
        .unwrap();
        let args: Vec<String> = o
            .global_args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "--platform=systrap",
                "--network=none",
                "--core-scheduling=off",
                "--strace",
                "--net-raw",
                "--allow-mount-source",
                "/a",
                "--allow-mount-source",
                "/b",
            ]
        );
        assert!(Options::default().global_args().is_empty());
    }

    #[test]
    fn unknown_options_are_refused() {
        let e = Options::parse("platfrom = \"ptrace\"").unwrap_err();
        assert!(e.to_string().contains("platfrom"), "{e}");
    }
}
