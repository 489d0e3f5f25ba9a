//! Capability sets from the spec (`process.capabilities`) and from `do`'s
//! `--cap-add`/`--cap-drop`, as the bit masks the sentry takes.

use sentry::config::CapConfig;
use sentry::kernel::creds::{cap_by_name, ALL_CAPS};
use serde_json::Value;

/// containerd's default capability set for a container (bounding, effective and
/// permitted); what `rvisor spec` writes and what `rvisor do` runs with.
pub const CONTAINERD_DEFAULT: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The mask of containerd's default set.
pub fn default_mask() -> u64 {
    CONTAINERD_DEFAULT
        .iter()
        .filter_map(|n| cap_by_name(n))
        .fold(0, |m, c| m | 1 << c)
}

/// The default set as `process.capabilities` JSON (no inheritable or ambient
/// capabilities, as containerd writes it).
pub fn default_json() -> Value {
    let names: Vec<&str> = CONTAINERD_DEFAULT.to_vec();
    serde_json::json!({
        "bounding": names,
        "effective": names,
        "permitted": names,
    })
}

/// Parses `process.capabilities` (an object of up to five arrays of `CAP_*`
/// names); a missing set is empty. Errors name the field.
pub fn from_json(v: &Value, field: &str) -> Result<CapConfig, (String, String)> {
    let o = v
        .as_object()
        .ok_or_else(|| (field.to_string(), "must be an object".to_string()))?;
    let mut c = CapConfig::default();
    for (key, val) in o {
        let f = format!("{field}.{key}");
        let set = match key.as_str() {
            "bounding" => &mut c.bounding,
            "effective" => &mut c.effective,
            "inheritable" => &mut c.inheritable,
            "permitted" => &mut c.permitted,
            "ambient" => &mut c.ambient,
            _ => continue,
        };
        if val.is_null() {
            continue;
        }
        let arr = val.as_array().ok_or_else(|| {
            (
                f.clone(),
                "must be an array of capability names".to_string(),
            )
        })?;
        for (i, n) in arr.iter().enumerate() {
            let name = n
                .as_str()
                .ok_or_else(|| (format!("{f}[{i}]"), "must be a string".to_string()))?;
            // Only the spec's spelling (CAP_*), as runc takes it.
            let cap = cap_by_name(name)
                .filter(|_| name.starts_with("CAP_"))
                .ok_or_else(|| {
                    (
                        format!("{f}[{i}]"),
                        format!("unknown capability {name:?} (names are CAP_CHOWN ... CAP_CHECKPOINT_RESTORE)"),
                    )
                })?;
            *set |= 1 << cap;
        }
    }
    Ok(c)
}

/// One `--cap-add`/`--cap-drop` value: a name with or without `CAP_`, in any
/// case, or `all`.
fn flag_mask(flag: &str, v: &str) -> anyhow::Result<u64> {
    if v.eq_ignore_ascii_case("all") {
        return Ok(ALL_CAPS);
    }
    cap_by_name(v).map(|c| 1u64 << c).ok_or_else(|| {
        anyhow::anyhow!("{flag}: unknown capability {v:?} (e.g. CAP_CHOWN, chown, or all)")
    })
}

/// `do`'s sets: containerd's default with `--cap-add` added and then `--cap-drop`
/// removed (in bounding, effective and permitted; the others stay empty).
pub fn for_do(add: &[String], drop: &[String]) -> anyhow::Result<CapConfig> {
    let mut m = default_mask();
    for a in add {
        m |= flag_mask("--cap-add", a)?;
    }
    for d in drop {
        m &= !flag_mask("--cap-drop", d)?;
    }
    Ok(CapConfig {
        bounding: m,
        effective: m,
        permitted: m,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_set_has_fourteen() {
        assert_eq!(default_mask().count_ones(), 14);
        let c = from_json(&default_json(), "process.capabilities").unwrap();
        assert_eq!(c.bounding, default_mask());
        assert_eq!((c.inheritable, c.ambient), (0, 0));
    }

    #[test]
    fn spec_names_are_checked() {
        let v = serde_json::json!({"bounding": ["CAP_CHOWN", "CAP_FROB"]});
        let e = from_json(&v, "process.capabilities").unwrap_err();
        assert_eq!(e.0, "process.capabilities.bounding[1]");
        let v = serde_json::json!({"ambient": ["chown"]});
        assert!(from_json(&v, "process.capabilities").is_err());
    }

    #[test]
    fn add_and_drop() {
        let c = for_do(&["sys_admin".into()], &["CAP_CHOWN".into()]).unwrap();
        assert_eq!(c.effective & 1, 0);
        assert_ne!(c.effective & (1 << 21), 0);
        let c = for_do(&[], &["all".into()]).unwrap();
        assert_eq!(c.permitted, 0);
        let c = for_do(&["ALL".into()], &[]).unwrap();
        assert_eq!(c.bounding, ALL_CAPS);
        assert!(for_do(&["frob".into()], &[]).is_err());
    }
}
