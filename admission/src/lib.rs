//! The admission policy for pods of RuntimeClass `gvisor` (rvisor), in one place: what a
//! pod may not ask of the sandbox (refusals) and what it asks that the sandbox does not
//! apply as the pod expects (warnings). The webhook (`rvisor-admission`) answers with
//! [`review`]; the ValidatingAdmissionPolicy in runtime-class/admission-policy.yaml says
//! the same in CEL, and the tests check both forms agree on every pod of tests/pods/.
//!
//! Every message is `[rule] field, field: fix`, the fields named with their indices
//! (`spec.containers[0].securityContext.privileged`).

pub mod server;

use serde_json::{json, Map, Value};

/// The RuntimeClass whose pods the policy applies to; other pods pass untouched.
pub const RUNTIME_CLASS: &str = "gvisor";
/// The namespace label that lets pods of that namespace add CAP_NET_RAW.
pub const NET_RAW_LABEL: &str = "rvisor.dev/allow-net-raw";

/// What a rule does to a pod it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Deny,
    Warn,
}

/// One rule: its id (the `[id]` that starts each message) and the fix its message gives.
#[derive(Debug)]
pub struct Rule {
    pub id: &'static str,
    pub action: Action,
    pub fix: &'static str,
}

/// Every rule, in the order messages are given.
pub const RULES: &[Rule] = &[
    Rule {
        id: "privileged",
        action: Action::Deny,
        fix: "remove privileged: true; the sandbox gives no host devices or host kernel access (use another RuntimeClass for such pods)",
    },
    Rule {
        id: "host-path",
        action: Action::Deny,
        fix: "use an emptyDir, configMap, secret or persistentVolumeClaim volume instead of a hostPath",
    },
    Rule {
        id: "host-namespaces",
        action: Action::Deny,
        fix: "remove hostNetwork, hostPID and hostIPC; a sandboxed pod has its own network, process and IPC namespaces",
    },
    Rule {
        id: "volume-devices",
        action: Action::Deny,
        fix: "remove volumeDevices; raw block devices are not passed into the sandbox (use a filesystem volume)",
    },
    Rule {
        id: "sys-admin-escalation",
        action: Action::Deny,
        fix: "drop SYS_ADMIN from capabilities.add, or set allowPrivilegeEscalation: false",
    },
    Rule {
        id: "net-raw",
        action: Action::Deny,
        fix: "drop NET_RAW from capabilities.add, or label the namespace rvisor.dev/allow-net-raw=true (and set net-raw = true in /etc/containerd/rvisor.toml)",
    },
    Rule {
        id: "sysctls",
        action: Action::Deny,
        fix: "remove spec.securityContext.sysctls; the sandbox kernel has no settable sysctls and rvisor refuses the container",
    },
    Rule {
        id: "seccomp",
        action: Action::Warn,
        fix: "the profile filters the system calls of the application inside the sandbox (the sentry applies it); the host kernel sees only the fixed filter of the sandbox itself",
    },
    Rule {
        id: "apparmor",
        action: Action::Warn,
        fix: "the AppArmor profile is not applied; the kernel of the sandbox confines the pod",
    },
    Rule {
        id: "selinux",
        action: Action::Warn,
        fix: "the SELinux options are not applied; the kernel of the sandbox confines the pod",
    },
];

/// The rule with this id.
pub fn rule(id: &str) -> &'static Rule {
    RULES
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no rule {id}"))
}

/// One rule a pod breaks, at these fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub fields: Vec<String>,
}

impl Finding {
    /// `[rule] field, field: fix`.
    pub fn message(&self) -> String {
        format!(
            "[{}] {}: {}",
            self.rule,
            self.fields.join(", "),
            rule(self.rule).fix
        )
    }
}

/// The policy's answer for one pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the policy applies (the pod's runtimeClassName is `gvisor`).
    pub applies: bool,
    pub denied: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.denied.is_empty()
    }
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn is_true(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool) == Some(true)
}

fn items(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Every container of the pod with its path: containers, initContainers, then
/// ephemeralContainers.
fn containers(spec: &Value) -> Vec<(String, &Value)> {
    ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|kind| {
            items(spec.get(kind))
                .iter()
                .enumerate()
                .map(move |(i, c)| (format!("spec.{kind}[{i}]"), c))
        })
        .collect()
}

/// capabilities.add names `cap` (with or without CAP_, any case) or ALL, as containerd
/// reads them.
fn adds(c: &Value, cap: &str) -> bool {
    items(get(c, &["securityContext", "capabilities", "add"]))
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_ascii_uppercase)
        .any(|a| a == cap || a.strip_prefix("CAP_") == Some(cap) || a == "ALL")
}

/// A seccomp or AppArmor profile that confines (any type but Unconfined).
fn confining_profile(sc: Option<&Value>, key: &str) -> bool {
    sc.and_then(|sc| sc.get(key))
        .is_some_and(|p| p.get("type").and_then(Value::as_str) != Some("Unconfined"))
}

/// The policy applied to `pod` (a Pod object) in a namespace with `ns_labels`.
pub fn evaluate(pod: &Value, ns_labels: &Map<String, Value>) -> Verdict {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    if spec.get("runtimeClassName").and_then(Value::as_str) != Some(RUNTIME_CLASS) {
        return Verdict::default();
    }
    let ctrs = containers(spec);
    let per_container = |f: &dyn Fn(&Value) -> bool, suffix: &str| -> Vec<String> {
        ctrs.iter()
            .filter(|(_, c)| f(c))
            .map(|(p, _)| format!("{p}{suffix}"))
            .collect()
    };
    let pod_sc = spec.get("securityContext");
    let mut found: Vec<(&'static str, Vec<String>)> = Vec::new();

    found.push((
        "privileged",
        per_container(
            &|c| is_true(get(c, &["securityContext", "privileged"])),
            ".securityContext.privileged",
        ),
    ));
    found.push((
        "host-path",
        items(spec.get("volumes"))
            .iter()
            .enumerate()
            .filter(|(_, v)| v.get("hostPath").is_some_and(|h| !h.is_null()))
            .map(|(i, _)| format!("spec.volumes[{i}].hostPath"))
            .collect(),
    ));
    found.push((
        "host-namespaces",
        ["hostNetwork", "hostPID", "hostIPC"]
            .iter()
            .filter(|f| is_true(spec.get(**f)))
            .map(|f| format!("spec.{f}"))
            .collect(),
    ));
    found.push((
        "volume-devices",
        per_container(
            &|c| !items(c.get("volumeDevices")).is_empty(),
            ".volumeDevices",
        ),
    ));
    // The API server refuses allowPrivilegeEscalation: false with SYS_ADMIN added, and
    // an unset one means true: only an explicit false keeps such a container.
    found.push((
        "sys-admin-escalation",
        per_container(
            &|c| {
                adds(c, "SYS_ADMIN")
                    && get(c, &["securityContext", "allowPrivilegeEscalation"])
                        .and_then(Value::as_bool)
                        != Some(false)
            },
            ".securityContext.capabilities.add",
        ),
    ));
    let net_raw_allowed = ns_labels.get(NET_RAW_LABEL).and_then(Value::as_str) == Some("true");
    found.push((
        "net-raw",
        if net_raw_allowed {
            Vec::new()
        } else {
            per_container(&|c| adds(c, "NET_RAW"), ".securityContext.capabilities.add")
        },
    ));
    found.push((
        "sysctls",
        items(pod_sc.and_then(|s| s.get("sysctls")))
            .iter()
            .enumerate()
            .map(|(i, _)| format!("spec.securityContext.sysctls[{i}]"))
            .collect(),
    ));

    let mut seccomp = Vec::new();
    if confining_profile(pod_sc, "seccompProfile") {
        seccomp.push("spec.securityContext.seccompProfile".to_string());
    }
    seccomp.extend(per_container(
        &|c| confining_profile(c.get("securityContext"), "seccompProfile"),
        ".securityContext.seccompProfile",
    ));
    found.push(("seccomp", seccomp));

    let mut apparmor = Vec::new();
    if confining_profile(pod_sc, "appArmorProfile") {
        apparmor.push("spec.securityContext.appArmorProfile".to_string());
    }
    apparmor.extend(per_container(
        &|c| confining_profile(c.get("securityContext"), "appArmorProfile"),
        ".securityContext.appArmorProfile",
    ));
    if let Some(ann) = get(pod, &["metadata", "annotations"]).and_then(Value::as_object) {
        apparmor.extend(
            ann.iter()
                .filter(|(k, v)| {
                    k.starts_with("container.apparmor.security.beta.kubernetes.io/")
                        && v.as_str() != Some("unconfined")
                })
                .map(|(k, _)| format!("metadata.annotations[{k}]")),
        );
    }
    found.push(("apparmor", apparmor));

    let mut selinux = Vec::new();
    if pod_sc.and_then(|s| s.get("seLinuxOptions")).is_some() {
        selinux.push("spec.securityContext.seLinuxOptions".to_string());
    }
    selinux.extend(per_container(
        &|c| get(c, &["securityContext", "seLinuxOptions"]).is_some(),
        ".securityContext.seLinuxOptions",
    ));
    found.push(("selinux", selinux));

    let mut v = Verdict {
        applies: true,
        ..Default::default()
    };
    for (id, fields) in found {
        if fields.is_empty() {
            continue;
        }
        let f = Finding { rule: id, fields };
        match rule(id).action {
            Action::Deny => v.denied.push(f),
            Action::Warn => v.warnings.push(f),
        }
    }
    v
}

/// Looks up a namespace's labels by name.
pub type NamespaceLabels<'a> = &'a dyn Fn(&str) -> Result<Map<String, Value>, String>;

/// The AdmissionReview v1 response to `request_review` (an AdmissionReview with a
/// request). `ns_labels` looks up a namespace's labels (AdmissionRequest carries only
/// the namespace's name); its error fails the review.
pub fn review(request_review: &Value, ns_labels: NamespaceLabels) -> Result<Value, String> {
    let req = request_review
        .get("request")
        .ok_or("not an AdmissionReview: no request")?;
    let uid = req
        .get("uid")
        .and_then(Value::as_str)
        .ok_or("request.uid missing")?;
    let kind = get(req, &["kind", "kind"]).and_then(Value::as_str);
    let object = req.get("object").unwrap_or(&Value::Null);
    let mut response = json!({"uid": uid, "allowed": true});
    // Deletions carry no object; other kinds are not this policy's.
    if kind == Some("Pod") && !object.is_null() {
        let ns = req
            .get("namespace")
            .and_then(Value::as_str)
            .or_else(|| get(object, &["metadata", "namespace"]).and_then(Value::as_str))
            .unwrap_or("default");
        let verdict = evaluate(object, &ns_labels(ns)?);
        if !verdict.warnings.is_empty() {
            response["warnings"] = verdict.warnings.iter().map(Finding::message).collect();
        }
        if !verdict.allowed() {
            let msgs: Vec<String> = verdict.denied.iter().map(Finding::message).collect();
            // One cause per refused field, which kubectl lists under the message.
            let causes: Vec<Value> = verdict
                .denied
                .iter()
                .flat_map(|f| {
                    f.fields.iter().map(move |field| {
                        json!({
                            "reason": "FieldValueForbidden",
                            "field": field,
                            "message": format!("[{}] {}", f.rule, rule(f.rule).fix),
                        })
                    })
                })
                .collect();
            response["allowed"] = false.into();
            response["status"] = json!({
                "code": 403,
                "reason": "Forbidden",
                "message": format!("RuntimeClass gvisor: {}", msgs.join("\n")),
                "details": {"causes": causes},
            });
        }
    }
    Ok(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_review(object: Value) -> Value {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "team", "operation": "CREATE", "object": object}})
    }

    #[test]
    fn namespace_lookup_gets_the_request_namespace_and_its_error_fails_the_review() {
        let pod = json!({"spec": {"runtimeClassName": "gvisor", "containers": [
            {"name": "a", "securityContext": {"capabilities": {"add": ["NET_RAW"]}}}]}});
        let allow = |ns: &str| {
            assert_eq!(ns, "team");
            Ok(json!({NET_RAW_LABEL: "true"}).as_object().unwrap().clone())
        };
        let r = review(&pod_review(pod.clone()), &allow).unwrap();
        assert_eq!(r["response"], json!({"uid": "u1", "allowed": true}));
        let r = review(&pod_review(pod.clone()), &|_| Ok(Map::new())).unwrap();
        assert_eq!(r["response"]["allowed"], false);
        assert_eq!(
            r["response"]["status"]["details"]["causes"][0]["field"],
            "spec.containers[0].securityContext.capabilities.add"
        );
        let err = review(&pod_review(pod), &|_| Err("labels.json: gone".into())).unwrap_err();
        assert!(err.contains("gone"), "{err}");
    }

    #[test]
    fn deletions_and_bad_reviews() {
        // A DELETE carries no object: nothing to judge.
        let r = review(&pod_review(Value::Null), &|_| Ok(Map::new())).unwrap();
        assert_eq!(r["response"], json!({"uid": "u1", "allowed": true}));
        assert!(review(&json!({"kind": "AdmissionReview"}), &|_| Ok(Map::new())).is_err());
        assert!(review(&json!({"request": {}}), &|_| Ok(Map::new())).is_err());
    }

    #[test]
    fn every_rule_has_a_distinct_id() {
        let mut ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), RULES.len());
    }
}
