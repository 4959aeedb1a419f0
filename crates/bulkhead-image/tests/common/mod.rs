//! Test fixtures: layer tars and OCI layouts built here with the `tar` and
//! `flate2` crates (from the busybox-static binary), and archives made by
//! real tools (skopeo, podman) where they are installed.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;
use sha2::Digest as _;

macro_rules! require_root {
    () => {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: this test needs root (chown, mknod, overlayfs)");
            return;
        }
    };
}

pub const BUSYBOX: &str = "/bin/busybox";

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

/// One tar entry; names and link targets are written raw (no checks), so
/// hostile entries can be built too.
#[derive(Clone)]
pub enum E {
    Dir(&'static str, u32),
    File(String, Vec<u8>, u32),
    Symlink(String, String),
    Hardlink(String, String),
    Char(&'static str, u32, u32),
}

pub fn file(name: &str, data: &[u8]) -> E {
    E::File(name.into(), data.to_vec(), 0o644)
}
pub fn symlink(name: &str, target: &str) -> E {
    E::Symlink(name.into(), target.into())
}
pub fn hardlink(name: &str, target: &str) -> E {
    E::Hardlink(name.into(), target.into())
}

fn put(buf: &mut [u8], s: &[u8]) {
    assert!(s.len() <= buf.len(), "name too long for the fixture");
    buf[..s.len()].copy_from_slice(s);
}

fn long_record(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, value: &[u8]) {
    let mut h = tar::Header::new_gnu();
    put(&mut h.as_old_mut().name, b"././@LongLink");
    h.set_entry_type(kind);
    h.set_mode(0o644);
    let mut data = value.to_vec();
    data.push(0);
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, data.as_slice()).unwrap();
}

/// Rewrites index.json to point at `manifest` (written as a new blob).
pub fn repoint_manifest(built: &Built, manifest: &str) {
    let hex = write_blob(&built.dir, manifest.as_bytes());
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(built.dir.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"] = format!("sha256:{hex}").into();
    index["manifests"][0]["size"] = manifest.len().into();
    std::fs::write(
        built.dir.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

/// A layer tar of `entries` (uid 0, gid 0, mtime 1_600_000_000).
pub fn layer_tar(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(0);
        let mut data: &[u8] = &[];
        let (name, mode) = match e {
            E::Dir(n, m) => {
                h.set_entry_type(tar::EntryType::Directory);
                (n.as_bytes(), *m)
            }
            E::File(n, d, m) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                data = d;
                (n.as_bytes(), *m)
            }
            E::Symlink(n, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                if t.len() <= 100 {
                    put(&mut h.as_old_mut().linkname, t.as_bytes());
                }
                (n.as_bytes(), 0o777)
            }
            E::Hardlink(n, t) => {
                h.set_entry_type(tar::EntryType::Link);
                if t.len() <= 100 {
                    put(&mut h.as_old_mut().linkname, t.as_bytes());
                }
                (n.as_bytes(), 0o644)
            }
            E::Char(n, maj, min) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_device_major(*maj).unwrap();
                h.set_device_minor(*min).unwrap();
                (n.as_bytes(), 0o666)
            }
        };
        // Long names and targets go into GNU long-name records first.
        if name.len() > 100 {
            long_record(&mut b, tar::EntryType::GNULongName, name);
        } else {
            put(&mut h.as_old_mut().name, name);
        }
        if let E::Symlink(_, t) | E::Hardlink(_, t) = e
            && t.len() > 100
        {
            long_record(&mut b, tar::EntryType::GNULongLink, t.as_bytes());
            h.as_old_mut().linkname = [0; 100];
        }
        h.set_mode(mode);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// The busybox layer: /bin/busybox, /bin/sh (symlink), /bin/cat (hardlink),
/// /etc/hostname, /tmp (1777).
pub fn busybox_layer() -> Vec<u8> {
    let bin = std::fs::read(BUSYBOX).expect("busybox-static (/bin/busybox) is needed");
    layer_tar(&[
        E::Dir("./", 0o755),
        E::Dir("bin/", 0o755),
        E::File("bin/busybox".into(), bin, 0o755),
        symlink("bin/sh", "busybox"),
        hardlink("bin/cat", "bin/busybox"),
        E::Dir("etc/", 0o755),
        file("etc/hostname", b"fixture\n"),
        E::Dir("tmp/", 0o1777),
    ])
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub struct Layer {
    pub tar: Vec<u8>,
    pub gzip: bool,
}

impl Layer {
    pub fn plain(tar: Vec<u8>) -> Layer {
        Layer { tar, gzip: false }
    }
    pub fn gz(tar: Vec<u8>) -> Layer {
        Layer { tar, gzip: true }
    }
}

pub struct Built {
    pub dir: PathBuf,
    pub config_digest: String,
    pub manifest_digest: String,
    /// (blob digest hex, diff_id hex) per layer, bottom-most first.
    pub layers: Vec<(String, String)>,
}

impl Built {
    pub fn blob(&self, hex: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(hex)
    }
}

fn write_blob(dir: &Path, data: &[u8]) -> String {
    let hex = sha256_hex(data);
    std::fs::write(dir.join("blobs/sha256").join(&hex), data).unwrap();
    hex
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

/// Writes an OCI image layout at `dir` with `layers`; `diff_ids` overrides
/// the config's diff_ids (to build a lying config).
pub fn oci_layout(dir: &Path, layers: &[Layer], diff_ids: Option<Vec<String>>) -> Built {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut descs = Vec::new();
    let mut out = Vec::new();
    let mut ids = Vec::new();
    for l in layers {
        let diff = sha256_hex(&l.tar);
        let (blob, mt) = if l.gzip {
            (gzip(&l.tar), "application/vnd.oci.image.layer.v1.tar+gzip")
        } else {
            (l.tar.clone(), "application/vnd.oci.image.layer.v1.tar")
        };
        let hex = write_blob(dir, &blob);
        descs.push(json!({"mediaType": mt, "digest": format!("sha256:{hex}"), "size": blob.len()}));
        ids.push(format!("sha256:{diff}"));
        out.push((hex, diff));
    }
    let config = json!({
        "architecture": host_arch(),
        "os": "linux",
        "config": {
            "Cmd": ["/bin/sh"],
            "Env": ["PATH=/bin"],
            "WorkingDir": "/tmp",
            "User": "0:0",
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids.unwrap_or(ids)},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_hex = write_blob(dir, &config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_hex}"),
            "size": config.len(),
        },
        "layers": descs,
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let manifest_hex = write_blob(dir, &manifest);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_hex}"),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    Built {
        dir: dir.into(),
        config_digest: config_hex,
        manifest_digest: manifest_hex,
        layers: out,
    }
}

/// A tar of directory `dir` (an OCI archive when `dir` is a layout).
pub fn tar_dir(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

pub fn tool(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/usr/local/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

#[track_caller]
pub fn run(cmd: &mut Command) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// podman with private storage (vfs) under `dir`.
pub fn podman(dir: &Path) -> Command {
    let mut c = Command::new(tool("podman").unwrap());
    c.arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .arg("--tmpdir")
        .arg(dir.join("tmp"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ]);
    c
}

/// Every path below `dir` (relative), sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The store is consistent: nothing left in tmp, every layer directory
/// complete, every image's layers present.
#[track_caller]
pub fn assert_consistent(root: &Path) {
    let tmp: Vec<_> = std::fs::read_dir(root.join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "store tmp not empty: {tmp:?}");
    for e in std::fs::read_dir(root.join("layers")).unwrap() {
        let p = e.unwrap().path();
        assert!(p.join("diff").is_dir(), "{} has no diff", p.display());
        assert!(
            p.join("layer.json").is_file(),
            "{} has no layer.json",
            p.display()
        );
    }
    let store = bulkhead_image::Store::open(root).unwrap();
    store.list().expect("every image's layers are in the store");
}
