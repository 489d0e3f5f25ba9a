//! `rvisor install` on sample containerd and Docker configs (tests/install/): the
//! runtime is added, everything else is kept, a second run changes nothing, and
//! --dry-run prints the diff and writes nothing. Also: runtime-class/'s containerd
//! fragments are what install writes, and runtime-class/rvisor.toml names only options
//! the shim reads.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

fn sample(name: &str) -> String {
    std::fs::read_to_string(repo().join("rvisor/tests/install").join(name)).unwrap()
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "k8s-install-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn install(args: &[&str], files: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rvisor"));
    cmd.arg("install").args(args);
    for (flag, f) in files {
        cmd.arg(flag).arg(f);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "rvisor install failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every key of `small` is in `big` with the same value (tables compared deeply).
fn contains(big: &toml::Value, small: &toml::Value) -> bool {
    match (big, small) {
        (toml::Value::Table(b), toml::Value::Table(s)) => s
            .iter()
            .all(|(k, v)| b.get(k).is_some_and(|bv| contains(bv, v))),
        _ => big == small,
    }
}

fn containerd_case(sample_name: &str, cri_plugin: &str) {
    let d = TempDir::new();
    let f = d.0.join("config.toml");
    let old = sample(sample_name);
    std::fs::write(&f, &old).unwrap();

    let dry = install(&["--dry-run"], &[("--containerd-config", &f)]);
    let out = stdout(&dry);
    assert!(out.contains(&format!("--- {}", f.display())), "{out}");
    assert!(
        out.contains("+runtime_type = \"io.containerd.rvisor.v1\""),
        "{out}"
    );
    assert!(out.contains("would change"), "{out}");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), old, "--dry-run wrote");

    install(&[], &[("--containerd-config", &f)]);
    let new = std::fs::read_to_string(&f).unwrap();
    // The original text, comments and layout included, is there unchanged: taking out
    // the two lines added (and the blank line before them) gives it back.
    // (The plugin's key is quoted as the file quotes it.)
    let added = ['"', '\'']
        .map(|q| {
            format!(
                "\n[plugins.{q}{cri_plugin}{q}.containerd.runtimes.rvisor]\n\
                 runtime_type = \"io.containerd.rvisor.v1\"\n"
            )
        })
        .into_iter()
        .find(|a| new.contains(a.as_str()))
        .unwrap_or_else(|| panic!("no rvisor table: {new}"));
    assert_eq!(new.matches(&added).count(), 1, "{new}");
    assert_eq!(new.replacen(&added, "", 1), old, "{new}");
    let parsed: toml::Value = toml::from_str(&new).unwrap();
    assert!(contains(&parsed, &toml::from_str(&old).unwrap()));
    let rt = &parsed["plugins"][cri_plugin]["containerd"]["runtimes"];
    assert_eq!(
        rt["rvisor"]["runtime_type"].as_str(),
        Some("io.containerd.rvisor.v1"),
        "{new}"
    );
    assert_eq!(
        rt["runc"]["runtime_type"].as_str(),
        Some("io.containerd.runc.v2")
    );

    let again = install(&[], &[("--containerd-config", &f)]);
    assert!(
        stdout(&again).contains("nothing to change"),
        "{}",
        stdout(&again)
    );
    assert_eq!(std::fs::read_to_string(&f).unwrap(), new);
    let dry = install(&["--dry-run"], &[("--containerd-config", &f)]);
    assert!(stdout(&dry).contains("nothing to change"));
}

#[test]
fn install_containerd_v2() {
    containerd_case("containerd-v2.toml", "io.containerd.grpc.v1.cri");
}

#[test]
fn install_containerd_v3() {
    containerd_case("containerd-v3.toml", "io.containerd.cri.v1.runtime");
}

#[test]
fn install_docker_keeps_other_keys_and_runtimes() {
    let d = TempDir::new();
    let f = d.0.join("daemon.json");
    let old = sample("daemon.json");
    std::fs::write(&f, &old).unwrap();
    let bin = std::fs::canonicalize(env!("CARGO_BIN_EXE_rvisor")).unwrap();

    let dry = install(&["--dry-run"], &[("--docker-config", &f)]);
    assert!(
        stdout(&dry).contains(&format!("+      \"path\": \"{}\"", bin.display())),
        "{}",
        stdout(&dry)
    );
    assert_eq!(std::fs::read_to_string(&f).unwrap(), old);

    install(&[], &[("--docker-config", &f)]);
    let new = std::fs::read_to_string(&f).unwrap();
    let got: serde_json::Value = serde_json::from_str(&new).unwrap();
    let mut want: serde_json::Value = serde_json::from_str(&old).unwrap();
    want["runtimes"]["rvisor"] = serde_json::json!({ "path": bin });
    assert_eq!(got, want);

    let again = install(&[], &[("--docker-config", &f)]);
    assert!(stdout(&again).contains("nothing to change"));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), new);
}

#[test]
fn install_both_and_new_files() {
    // Files that do not exist yet are made: a version 2 containerd config and a
    // daemon.json with only the runtime; the dry run shows every line as added.
    let d = TempDir::new();
    let c = d.0.join("etc/containerd/config.toml");
    let j = d.0.join("etc/docker/daemon.json");
    let files = [
        ("--containerd-config", c.as_path()),
        ("--docker-config", j.as_path()),
    ];
    let dry = stdout(&install(&["--dry-run"], &files));
    assert!(dry.contains("--- /dev/null"), "{dry}");
    assert!(dry.contains("+version = 2"), "{dry}");
    assert!(!c.exists() && !j.exists());
    install(&[], &files);
    // What it writes into an empty config is runtime-class/'s fragment.
    let frag: toml::Value = toml::from_str(
        &std::fs::read_to_string(repo().join("runtime-class/containerd-config-v2.toml")).unwrap(),
    )
    .unwrap();
    let got: toml::Value = toml::from_str(&std::fs::read_to_string(&c).unwrap()).unwrap();
    assert_eq!(got, frag);
    let second = stdout(&install(&[], &files));
    assert_eq!(second.matches("nothing to change").count(), 2, "{second}");
}

#[test]
fn containerd_v3_fragment_is_what_install_writes() {
    let d = TempDir::new();
    let c = d.0.join("config.toml");
    std::fs::write(&c, "version = 3\n").unwrap();
    install(&[], &[("--containerd-config", &c)]);
    let frag: toml::Value = toml::from_str(
        &std::fs::read_to_string(repo().join("runtime-class/containerd-config-v3.toml")).unwrap(),
    )
    .unwrap();
    let got: toml::Value = toml::from_str(&std::fs::read_to_string(&c).unwrap()).unwrap();
    assert_eq!(got, frag);
}

#[test]
fn install_refuses_an_old_or_broken_config_and_writes_nothing() {
    let d = TempDir::new();
    let c = d.0.join("config.toml");
    for text in [
        "[plugins.cri]\n  sandbox_image = \"pause\"\n",
        "version = 2\n[plugins\n",
    ] {
        std::fs::write(&c, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_rvisor"))
            .args(["install", "--containerd-config"])
            .arg(&c)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&c.display().to_string()), "{err}");
        assert_eq!(std::fs::read_to_string(&c).unwrap(), text);
    }
}

#[test]
fn options_file_names_only_options_the_shim_reads() {
    // The shim's `struct Options` (serde kebab-case, deny_unknown_fields): a key it does
    // not have would fail every request of the shim.
    let mut fields = Vec::new();
    for e in std::fs::read_dir(repo().join("shim/src")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        let Some(start) = text.find("struct Options {") else {
            continue;
        };
        let body = &text[start..];
        let body = &body[..body.find("\n}").unwrap()];
        for line in body.lines().skip(1) {
            let l = line.trim();
            if l.starts_with("//") || l.starts_with('#') {
                continue;
            }
            if let Some((name, _)) = l.split_once(':') {
                fields.push(name.trim().trim_start_matches("pub ").replace('_', "-"));
            }
        }
    }
    assert!(fields.contains(&"net-raw".to_string()), "{fields:?}");
    let text = std::fs::read_to_string(repo().join("runtime-class/rvisor.toml")).unwrap();
    let opts: toml::Table = toml::from_str(&text).unwrap();
    assert!(!opts.is_empty());
    for k in opts.keys() {
        assert!(
            fields.contains(k),
            "runtime-class/rvisor.toml: {k} is not a shim option ({fields:?})"
        );
    }
    // The commented-out examples too.
    for l in text.lines() {
        if let Some((k, _)) = l.strip_prefix("# ").and_then(|l| l.split_once(" = ")) {
            if !k.contains(' ') {
                assert!(
                    fields.contains(&k.to_string()),
                    "commented {k} is not a shim option"
                );
            }
        }
    }
}
