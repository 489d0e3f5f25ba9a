//! OCI image archives made by the tests from a local root filesystem (no registry, no
//! network): one uncompressed layer, a config and a manifest per image, and an index that
//! `ctr images import` reads.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

/// One image of an archive: its name (`io.containerd.image.name`), its command, and an
/// optional `org.opencontainers.image.ref.name`.
pub struct Image<'a> {
    /// The name containerd gives the image on import.
    pub name: &'a str,
    /// The config's `Cmd`.
    pub cmd: &'a [&'a str],
    /// The index's `ref.name` annotation, if any.
    pub ref_name: Option<&'a str>,
}

fn sha256(path: &Path) -> String {
    let o = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(o.status.success(), "sha256sum {}", path.display());
    String::from_utf8(o.stdout).unwrap()[..64].to_string()
}

/// Copies `file` into the layout's blob store; (digest, size).
fn blob(layout: &Path, file: &Path) -> (String, u64) {
    let h = sha256(file);
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::copy(file, blobs.join(&h)).unwrap();
    (
        format!("sha256:{h}"),
        std::fs::metadata(file).unwrap().len(),
    )
}

fn blob_json(layout: &Path, v: &Value) -> (String, u64) {
    let tmp = layout.join("tmp.json");
    std::fs::write(&tmp, v.to_string()).unwrap();
    let r = blob(layout, &tmp);
    std::fs::remove_file(&tmp).unwrap();
    r
}

fn tar(dir: &Path, out: &Path, owner_root: bool) {
    let mut c = Command::new("tar");
    if owner_root {
        c.args(["--numeric-owner", "--owner=0", "--group=0"]);
    }
    let st = c
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success(), "tar of {}", dir.display());
}

/// Writes, under `work`, an OCI archive named `archive` holding `images`, all over one
/// layer made of `rootfs` (owned by root), and returns its path.
pub fn archive(work: &Path, rootfs: &Path, archive: &str, images: &[Image]) -> PathBuf {
    let layout = work.join("image");
    std::fs::create_dir_all(&layout).unwrap();
    let layer = work.join("layer.tar");
    tar(rootfs, &layer, true);
    let (layer_digest, layer_size) = blob(&layout, &layer);
    let mut manifests = Vec::new();
    for image in images {
        let config = json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": image.cmd, "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        });
        let (cfg_digest, cfg_size) = blob_json(&layout, &config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": cfg_digest, "size": cfg_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_digest, "size": layer_size}],
        });
        let (m_digest, m_size) = blob_json(&layout, &manifest);
        let mut annotations = json!({"io.containerd.image.name": image.name});
        if let Some(r) = image.ref_name {
            annotations["org.opencontainers.image.ref.name"] = json!(r);
        }
        manifests.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m_digest, "size": m_size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": annotations,
        }));
    }
    let index = json!({"schemaVersion": 2, "manifests": manifests});
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let tarball = work.join(archive);
    tar(&layout, &tarball, false);
    tarball
}
