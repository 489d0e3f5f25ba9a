//! The admission policy on the real pod manifests of tests/pods/, in its two forms:
//! the webhook `rvisor-admission` answering over TLS, and the ValidatingAdmissionPolicy
//! of runtime-class/admission-policy.yaml evaluated by a CEL interpreter. Each pod's
//! header says what is expected (`# expect: allow|deny RULES [warn RULES]`, and
//! `# namespace-labels: {...}` for its namespace); both forms must give exactly the
//! library's verdict: the same rules, fields and fixes.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use cel_interpreter::extractors::This;
use cel_interpreter::objects::Key;
use cel_interpreter::{Context, Program, Value as Cel};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rvisor_admission::{evaluate, Action, RULES};
use serde_json::{json, Map, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

struct Case {
    file: String,
    pod: Value,
    ns: String,
    labels: Map<String, Value>,
    deny: Vec<String>,
    warn: Vec<String>,
}

fn list(s: Option<&&str>) -> Vec<String> {
    s.map(|s| s.split(',').map(String::from).collect())
        .unwrap_or_default()
}

fn cases() -> Vec<Case> {
    let dir = root().join("admission/tests/pods");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "too few pods in {}", dir.display());
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            let file = p.file_name().unwrap().to_string_lossy().into_owned();
            let header = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
                    .map(str::to_string)
            };
            let expect = header("expect").unwrap_or_else(|| panic!("{file}: no # expect:"));
            let words: Vec<&str> = expect.split_whitespace().collect();
            let (deny, rest) = match words.as_slice() {
                ["allow", rest @ ..] => (Vec::new(), rest),
                ["deny", rules, rest @ ..] => (list(Some(rules)), rest),
                _ => panic!("{file}: bad # expect: {expect}"),
            };
            let warn = match rest {
                [] => Vec::new(),
                ["warn", rules] => list(Some(rules)),
                _ => panic!("{file}: bad # expect: {expect}"),
            };
            let labels: Map<String, Value> = header("namespace-labels")
                .map(|l| serde_json::from_str(&l).unwrap())
                .unwrap_or_default();
            let pod: Value = serde_yaml::from_str(&text).unwrap();
            assert_eq!(pod["kind"], "Pod", "{file}");
            let ns = pod["metadata"]["namespace"].as_str().unwrap().to_string();
            Case {
                file,
                pod,
                ns,
                labels,
                deny,
                warn,
            }
        })
        .collect()
}

/// A message taken apart: rule, fields (sorted: CEL iterates maps in no set order),
/// fix.
type Parsed = (String, Vec<String>, String);

fn parse(msg: &str) -> Parsed {
    let rest = msg
        .strip_prefix('[')
        .unwrap_or_else(|| panic!("bad message {msg:?}"));
    let (rule, rest) = rest.split_once("] ").unwrap();
    let (fields, fix) = rest.split_once(": ").unwrap();
    let mut fields: Vec<String> = fields.split(", ").map(String::from).collect();
    fields.sort();
    (rule.to_string(), fields, fix.to_string())
}

fn parse_all<S: AsRef<str>>(msgs: &[S]) -> Vec<Parsed> {
    let mut v: Vec<Parsed> = msgs.iter().map(|m| parse(m.as_ref())).collect();
    v.sort();
    v
}

/// The library's verdict, checked against the pod's header: (denials, warnings).
fn library(c: &Case) -> (Vec<Parsed>, Vec<Parsed>) {
    let v = evaluate(&c.pod, &c.labels);
    let ids =
        |f: &[rvisor_admission::Finding]| f.iter().map(|f| f.rule.to_string()).collect::<Vec<_>>();
    assert_eq!(ids(&v.denied), c.deny, "{}: denials {:?}", c.file, v.denied);
    assert_eq!(
        ids(&v.warnings),
        c.warn,
        "{}: warnings {:?}",
        c.file,
        v.warnings
    );
    let msgs = |f: &[rvisor_admission::Finding]| {
        parse_all(&f.iter().map(|f| f.message()).collect::<Vec<_>>())
    };
    (msgs(&v.denied), msgs(&v.warnings))
}

#[test]
fn pods_get_the_verdicts_their_headers_say() {
    for c in cases() {
        library(&c);
    }
    // The fields named, for a few pods (the other tests compare forms, this one the
    // contents).
    let by_file: HashMap<String, Case> = cases().into_iter().map(|c| (c.file.clone(), c)).collect();
    let fields = |file: &str, rule: &str| -> Vec<String> {
        let c = &by_file[file];
        let v = evaluate(&c.pod, &c.labels);
        v.denied
            .iter()
            .chain(&v.warnings)
            .find(|f| f.rule == rule)
            .map(|f| f.fields.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        fields("rejected-privileged-init-and-ephemeral.yaml", "privileged"),
        [
            "spec.initContainers[1].securityContext.privileged",
            "spec.ephemeralContainers[0].securityContext.privileged"
        ]
    );
    assert_eq!(
        fields("rejected-host-namespaces.yaml", "host-namespaces"),
        ["spec.hostNetwork", "spec.hostPID"]
    );
    assert_eq!(
        fields("rejected-many.yaml", "net-raw"),
        ["spec.initContainers[0].securityContext.capabilities.add"]
    );
    assert_eq!(
        fields("allowed-with-warnings.yaml", "apparmor"),
        [
            "spec.containers[0].securityContext.appArmorProfile",
            "metadata.annotations[container.apparmor.security.beta.kubernetes.io/legacy]"
        ]
    );
    assert_eq!(
        fields("rejected-host-path.yaml", "host-path"),
        ["spec.volumes[1].hostPath"]
    );
}

// ---- the CEL form ----

/// Kubernetes' CEL libraries the policy uses beyond the core (lists.indexOf,
/// strings.join, strings.upperAscii), as Kubernetes defines them.
fn cel_context<'a>() -> Context<'a> {
    let mut ctx = Context::default();
    ctx.add_function(
        "indexOf",
        |This(list): This<Arc<Vec<Cel>>>, v: Cel| -> i64 {
            list.iter().position(|x| *x == v).map_or(-1, |i| i as i64)
        },
    );
    ctx.add_function(
        "join",
        |This(list): This<Arc<Vec<Cel>>>, sep: Arc<String>| -> String {
            list.iter()
                .map(|v| match v {
                    Cel::String(s) => s.to_string(),
                    other => panic!("join of a non-string {other:?}"),
                })
                .collect::<Vec<_>>()
                .join(&sep)
        },
    );
    ctx.add_function("upperAscii", |This(s): This<Arc<String>>| -> String {
        s.to_ascii_uppercase()
    });
    ctx
}

fn cel_eval(ctx: &Context, expr: &str, what: &str) -> Cel {
    let p = Program::compile(expr).unwrap_or_else(|e| panic!("{what}: {e}\n{expr}"));
    p.execute(ctx)
        .unwrap_or_else(|e| panic!("{what}: {e:?}\n{expr}"))
}

struct Policy {
    doc: Value,
    actions: Vec<String>,
}

fn policies() -> Vec<Policy> {
    let text = std::fs::read_to_string(root().join("runtime-class/admission-policy.yaml")).unwrap();
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let bindings: BTreeMap<&str, Vec<String>> = docs
        .iter()
        .filter(|d| d["kind"] == "ValidatingAdmissionPolicyBinding")
        .map(|d| {
            let acts = d["spec"]["validationActions"].as_array().unwrap();
            (
                d["spec"]["policyName"].as_str().unwrap(),
                acts.iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    let ps: Vec<Policy> = docs
        .iter()
        .filter(|d| d["kind"] == "ValidatingAdmissionPolicy")
        .map(|d| Policy {
            doc: d.clone(),
            actions: bindings
                .get(d["metadata"]["name"].as_str().unwrap())
                .cloned()
                .expect("a policy without a binding"),
        })
        .collect();
    assert_eq!(ps.len(), 2);
    ps
}

/// (applies, denials, warnings) of the CEL policies for one pod.
fn cel_verdict(ps: &[Policy], c: &Case) -> (bool, Vec<Parsed>, Vec<Parsed>) {
    let (mut applies, mut deny, mut warn) = (false, Vec::new(), Vec::new());
    for p in ps {
        let spec = &p.doc["spec"];
        let name = p.doc["metadata"]["name"].as_str().unwrap();
        let mut ctx = cel_context();
        ctx.add_variable("object", &c.pod).unwrap();
        ctx.add_variable(
            "namespaceObject",
            json!({"metadata": {"name": c.ns, "labels": c.labels}}),
        )
        .unwrap();
        let matched =
            spec["matchConditions"].as_array().unwrap().iter().all(|m| {
                cel_eval(&ctx, m["expression"].as_str().unwrap(), name) == Cel::Bool(true)
            });
        if !matched {
            continue;
        }
        applies = true;
        let mut vars: HashMap<Key, Cel> = HashMap::new();
        for v in spec["variables"].as_array().unwrap() {
            let vname = v["name"].as_str().unwrap();
            let val = cel_eval(&ctx, v["expression"].as_str().unwrap(), vname);
            vars.insert(Key::from(vname.to_string()), val);
            ctx.add_variable_from_value("variables", vars.clone());
        }
        for v in spec["validations"].as_array().unwrap() {
            let expr = v["expression"].as_str().unwrap();
            match cel_eval(&ctx, expr, name) {
                Cel::Bool(true) => {}
                Cel::Bool(false) => {
                    let m = cel_eval(&ctx, v["messageExpression"].as_str().unwrap(), expr);
                    let Cel::String(m) = m else {
                        panic!("{expr}: message {m:?}")
                    };
                    if p.actions.iter().any(|a| a == "Deny") {
                        deny.push(m.to_string());
                    } else if p.actions.iter().any(|a| a == "Warn") {
                        warn.push(m.to_string());
                    }
                }
                other => panic!("{expr}: {other:?}"),
            }
        }
    }
    (applies, parse_all(&deny), parse_all(&warn))
}

#[test]
fn cel_policy_agrees_with_the_library_on_every_pod() {
    let ps = policies();
    for c in cases() {
        let (deny, warn) = library(&c);
        let (applies, cdeny, cwarn) = cel_verdict(&ps, &c);
        assert_eq!(applies, evaluate(&c.pod, &c.labels).applies, "{}", c.file);
        assert_eq!(cdeny, deny, "{}: denials", c.file);
        assert_eq!(cwarn, warn, "{}: warnings", c.file);
    }
}

#[test]
fn webhook_configuration_sends_exactly_the_pods_the_policy_applies_to() {
    // deploy.yaml's matchConditions decide which pods reach the webhook at all.
    let text = std::fs::read_to_string(root().join("admission/deploy.yaml")).unwrap();
    let conf: Value = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .find(|d: &Value| d["kind"] == "ValidatingWebhookConfiguration")
        .unwrap();
    let conds = conf["webhooks"][0]["matchConditions"].as_array().unwrap();
    for c in cases() {
        let mut ctx = cel_context();
        ctx.add_variable("object", &c.pod).unwrap();
        let sent = conds.iter().all(|m| {
            cel_eval(&ctx, m["expression"].as_str().unwrap(), "matchConditions") == Cel::Bool(true)
        });
        assert_eq!(sent, evaluate(&c.pod, &c.labels).applies, "{}", c.file);
    }
}

#[test]
fn cel_policy_has_every_rule_with_the_same_fix() {
    // The pods cover each rule; this makes sure no rule is missing from the manifest
    // even if a pod is removed, and that each sits in the policy of its action.
    let ps = policies();
    for r in RULES {
        let want = match r.action {
            Action::Deny => "Deny",
            Action::Warn => "Warn",
        };
        let found = ps.iter().any(|p| {
            p.actions == [want]
                && p.doc["spec"]["validations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| {
                        let m = v["messageExpression"].as_str().unwrap();
                        m.starts_with(&format!("'[{}] ' + ", r.id))
                            && m.ends_with(&format!(": {}'", r.fix))
                    })
        });
        assert!(
            found,
            "rule {} is not in the {want} policy with its fix",
            r.id
        );
    }
}

// ---- the webhook over TLS ----

struct Webhook {
    child: Child,
    addr: String,
    cert: CertificateDer<'static>,
    dir: PathBuf,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_webhook(cases: &[Case]) -> Webhook {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("k8s-admission-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("tls.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), ck.key_pair.serialize_pem()).unwrap();
    let labels: Map<String, Value> = cases
        .iter()
        .filter(|c| !c.labels.is_empty())
        .map(|c| (c.ns.clone(), Value::Object(c.labels.clone())))
        .collect();
    std::fs::write(dir.join("labels.json"), Value::Object(labels).to_string()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rvisor-admission"))
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(dir.join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.join("tls.key"))
        .arg("--namespace-labels")
        .arg(dir.join("labels.json"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("rvisor-admission: listening on ")
        .unwrap_or_else(|| panic!("first line {line:?}"))
        .to_string();
    Webhook {
        child,
        addr,
        cert: ck.cert.der().clone(),
        dir,
    }
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn connect(w: &Webhook) -> BufReader<Tls> {
    let mut roots = RootCertStore::empty();
    roots.add(w.cert.clone()).unwrap();
    let cfg = ClientConfig::builder_with_provider(rvisor_admission::server::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        ClientConnection::new(Arc::new(cfg), ServerName::try_from("localhost").unwrap()).unwrap();
    let sock = TcpStream::connect(&w.addr).unwrap();
    BufReader::new(StreamOwned::new(conn, sock))
}

/// One HTTP/1.1 request on a kept-alive connection: (status code, JSON body).
fn request(s: &mut BufReader<Tls>, method: &str, path: &str, body: &str) -> (u16, Value) {
    write!(
        s.get_mut(),
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s.get_mut().flush().unwrap();
    let mut status = String::new();
    s.read_line(&mut status).unwrap();
    let code: u16 = status.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut len = 0;
    loop {
        let mut h = String::new();
        s.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut b = vec![0; len];
    s.read_exact(&mut b).unwrap();
    (code, serde_json::from_slice(&b).unwrap())
}

fn admission_review(uid: &str, c: &Case) -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": c.pod["metadata"]["name"],
            "namespace": c.ns,
            "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
            "object": c.pod,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
    .to_string()
}

#[test]
fn webhook_answers_every_pod_over_tls_as_the_library() {
    let cases = cases();
    let w = start_webhook(&cases);
    // All pods on one kept-alive connection, as the API server sends them.
    let mut s = connect(&w);
    let (code, body) = request(&mut s, "GET", "/healthz", "");
    assert_eq!((code, body), (200, json!({"status": "ok"})));
    for (i, c) in cases.iter().enumerate() {
        let uid = format!("0000-{i}");
        let (code, body) = request(&mut s, "POST", "/validate", &admission_review(&uid, c));
        assert_eq!(code, 200, "{}: {body}", c.file);
        assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(body["kind"], "AdmissionReview");
        let r = &body["response"];
        assert_eq!(r["uid"], uid.as_str(), "{}", c.file);
        let (deny, warn) = library(c);
        assert_eq!(r["allowed"], deny.is_empty(), "{}: {r}", c.file);
        let warnings: Vec<&str> = r["warnings"]
            .as_array()
            .map(|w| w.iter().map(|m| m.as_str().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(parse_all(&warnings), warn, "{}: {r}", c.file);
        if deny.is_empty() {
            assert!(r.get("status").is_none(), "{}: {r}", c.file);
            continue;
        }
        assert_eq!(r["status"]["code"], 403, "{}", c.file);
        let msg = r["status"]["message"].as_str().unwrap();
        let lines: Vec<&str> = msg
            .strip_prefix("RuntimeClass gvisor: ")
            .unwrap()
            .split('\n')
            .collect();
        assert_eq!(parse_all(&lines), deny, "{}: {msg}", c.file);
        // Each refused field is a cause of its own, as kubectl shows them.
        let causes: Vec<&str> = r["status"]["details"]["causes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["field"].as_str().unwrap())
            .collect();
        let mut want: Vec<&str> = deny
            .iter()
            .flat_map(|d| d.1.iter().map(String::as_str))
            .collect();
        let mut got = causes.clone();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{}", c.file);
    }
    // A second connection at the same time, and what is not a pod review.
    let mut s2 = connect(&w);
    let other = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "x", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                    "namespace": "default", "operation": "CREATE", "object": {"spec": {}}}});
    let (code, body) = request(&mut s2, "POST", "/validate", &other.to_string());
    assert_eq!(
        (code, &body["response"]),
        (200, &json!({"uid": "x", "allowed": true}))
    );
    let (code, body) = request(&mut s2, "POST", "/validate", "{not json");
    assert_eq!(code, 400, "{body}");
    let (code, _) = request(
        &mut s2,
        "POST",
        "/validate",
        "{\"kind\": \"AdmissionReview\"}",
    );
    assert_eq!(code, 400);
    // The first connection is still served after the second's errors.
    let (code, _) = request(&mut s, "GET", "/healthz", "");
    assert_eq!(code, 200);
    let (code, _) = request(&mut s, "GET", "/nothing", "");
    assert_eq!(code, 404);
}

#[test]
fn webhook_refuses_a_client_that_does_not_trust_it() {
    // TLS is real: a client trusting another certificate cannot talk to it.
    let w = start_webhook(&[]);
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let fake = Webhook {
        child: Command::new("true").spawn().unwrap(),
        addr: w.addr.clone(),
        cert: other.cert.der().clone(),
        dir: w.dir.join("none"),
    };
    let mut s = connect(&fake);
    let r = write!(s.get_mut(), "GET /healthz HTTP/1.1\r\n\r\n").and_then(|()| s.get_mut().flush());
    let mut buf = String::new();
    let read = r.and_then(|()| s.read_line(&mut buf));
    let err = read.expect_err("a TLS handshake with an untrusted certificate succeeded");
    assert!(err.to_string().contains("certificate"), "{err}");
}
