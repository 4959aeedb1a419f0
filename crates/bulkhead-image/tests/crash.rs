//! Imports in other processes: one killed with SIGKILL in the middle of
//! unpacking a layer (the store stays consistent and never offers the
//! half-unpacked layer; a re-import completes it), and several processes
//! importing the same archive at once. The test binary re-runs itself as the
//! importing process (`BULKHEAD_IMAGE_CHILD`).

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bulkhead_image::{ContainerRoot, Error, Progress, Store};
use common::*;
use tempfile::TempDir;

const CHILD: &str = "BULKHEAD_IMAGE_CHILD";

/// Data gzip cannot shrink, so that the layer is read in many progress
/// steps (xorshift; no rand dependency needed).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn layout(dir: &Path) -> PathBuf {
    let out = dir.join("layout");
    let big: Vec<E> = (0..8)
        .map(|i| E::File(format!("data/blob{i}"), noise(1 << 20), 0o644))
        .collect();
    let mut big_entries = vec![E::Dir("data/", 0o755)];
    big_entries.extend(big);
    oci_layout(
        &out,
        &[
            Layer::gz(busybox_layer()),
            Layer::gz(layer_tar(&big_entries)),
        ],
        None,
    );
    let archive = dir.join("image.tar");
    tar_dir(&out, &archive);
    archive
}

/// The child side: imports `$CHILD_SOURCE` into `$CHILD_STORE`. With
/// `$CHILD_STALL` set, it stops for good in the middle of the second layer,
/// after telling the parent so through that file.
#[test]
fn child_import() {
    let Ok(role) = std::env::var(CHILD) else {
        eprintln!("not a test on its own: the importing child of the other tests here");
        return;
    };
    let store = Store::open(Path::new(&std::env::var("CHILD_STORE").unwrap())).unwrap();
    let source = PathBuf::from(std::env::var("CHILD_SOURCE").unwrap());
    let stall = std::env::var_os("CHILD_STALL").map(PathBuf::from);
    let result = store.import(&source, &mut |p| {
        if let (
            Some(marker),
            Progress::Layer {
                index: 1,
                read,
                total,
                ..
            },
        ) = (&stall, &p)
            && *read > 0
            && read < total
        {
            std::fs::write(marker, "midway").unwrap();
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
    });
    println!("{role}: {}", result.unwrap().id);
}

fn spawn(store: &Path, source: &Path, stall: Option<&Path>) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "child_import", "--nocapture", "--test-threads=1"])
        .env(CHILD, "child")
        .env("CHILD_STORE", store)
        .env("CHILD_SOURCE", source)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(s) = stall {
        c.env("CHILD_STALL", s);
    }
    c.spawn().unwrap()
}

#[test]
fn import_killed_midway_leaves_a_consistent_store_and_reimport_completes() {
    require_root!();
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let t = TempDir::new().unwrap();
    let archive = layout(t.path());
    let root = t.path().join("store");
    let marker = t.path().join("midway");
    let mut child = spawn(&root, &archive, Some(&marker));
    let mut waited = 0;
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the importing child exited ({status}) before the middle: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
        waited += 1;
        assert!(waited < 20 * 120, "the child never reached the middle");
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // What the killed import left: the first layer complete and in the
    // store, the second only as scratch under tmp/, no image reference.
    let store = Store::open(&root).unwrap();
    let layers: Vec<_> = std::fs::read_dir(root.join("layers")).unwrap().collect();
    assert_eq!(layers.len(), 1, "only the finished layer is in the store");
    assert!(
        std::fs::read_dir(root.join("tmp"))
            .unwrap()
            .next()
            .is_some(),
        "the killed import's scratch should still be there"
    );
    assert!(store.list().unwrap().is_empty());
    let err = store.get("latest").unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    // Re-import: the finished layer is reused, the other unpacked afresh,
    // the scratch removed.
    let mut cached = Vec::new();
    let image = store
        .import(&archive, &mut |p| {
            if let Progress::LayerDone {
                index, cached: c, ..
            } = p
            {
                cached.push((index, c));
            }
        })
        .unwrap();
    assert_eq!(cached, vec![(0, true), (1, false)]);
    assert_consistent(&root);
    let blob = image.layers[1].dir.join("data/blob7");
    assert_eq!(std::fs::read(blob).unwrap(), noise(1 << 20));
    // And it mounts.
    let root_dir = store.container_dir("after-crash").unwrap();
    let c = ContainerRoot::prepare(&store, &image, &root_dir, None, false).unwrap();
    assert!(c.rootfs().join("bin/busybox").is_file());
    c.release().unwrap();
}

#[test]
fn concurrent_imports_from_several_processes() {
    require_root!();
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let t = TempDir::new().unwrap();
    let archive = layout(t.path());
    let root = t.path().join("store");
    let children: Vec<_> = (0..4).map(|_| spawn(&root, &archive, None)).collect();
    let mut ids = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let id = stdout
            .lines()
            .find_map(|l| l.split_once("child: ").map(|(_, id)| id))
            .unwrap_or_else(|| panic!("no id in {stdout}"))
            .to_string();
        ids.push(id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_consistent(&root);
    let store = Store::open(&root).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(std::fs::read_dir(root.join("layers")).unwrap().count(), 2);
}
