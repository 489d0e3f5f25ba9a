//! `linux.seccomp` from config.json, handed to the sentry (which runs the filter) in
//! its own form. It is compiled here once too, so a spec the sentry would refuse is
//! refused before anything starts, with the field named.

use std::path::Path;

use anyhow::{anyhow, Result};
use oci_spec::runtime::{LinuxSeccomp, Spec};
use sentry::config::SeccompConfig;

use crate::bundle::SpecError;

/// The spec's `linux.seccomp`, checked; `None` when it has none.
pub fn from_spec(spec: &Spec) -> Result<Option<SeccompConfig>, SpecError> {
    let Some(sc) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    from_oci(sc).map(Some)
}

fn from_oci(sc: &LinuxSeccomp) -> Result<SeccompConfig, SpecError> {
    let fail = |msg: String| SpecError {
        field: "linux.seccomp".into(),
        msg,
    };
    let value = serde_json::to_value(sc).map_err(|e| fail(e.to_string()))?;
    let cfg: SeccompConfig = serde_json::from_value(value).map_err(|e| fail(e.to_string()))?;
    if let Err(e) = sentry::kernel::seccomp_spec::compile(&cfg, &sentry::syscalls::TABLE) {
        // The sentry's message starts with the field it names.
        let (field, msg) = e.split_once(": ").unwrap_or(("linux.seccomp", e.as_str()));
        return Err(SpecError {
            field: field.into(),
            msg: msg.into(),
        });
    }
    Ok(cfg)
}

/// The container's `linux.seccomp` for a process `exec` starts in it: runc applies
/// the container's filter to exec'd processes too.
pub fn for_exec(bundle: &Path) -> Result<Option<SeccompConfig>> {
    // Only this part is read: the rest was checked at create, by the bundle's own
    // reader, which is more lenient than a whole-spec parse.
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let sc = &doc["linux"]["seccomp"];
    if sc.is_null() {
        return Ok(None);
    }
    let sc: LinuxSeccomp = serde_json::from_value(sc.clone())
        .map_err(|e| anyhow!("{}: linux.seccomp: {e}", path.display()))?;
    from_oci(&sc).map(Some).map_err(|e| anyhow!("{e}"))
}
