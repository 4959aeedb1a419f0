//! Imports of the three formats, overlay mounts, whiteouts, and bad input:
//! digest mismatches, truncated archives, a tar-traversal corpus and
//! concurrent imports.

#[macro_use]
mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use bulkhead_image::{Error, ImageRef, Progress, Store};
use common::*;
use tempfile::TempDir;

fn tmp() -> TempDir {
    tempfile::Builder::new()
        .prefix("bh-image-")
        .tempdir()
        .unwrap()
}

fn import(store: &Store, src: &Path) -> Result<ImageRef, Error> {
    store.import(src, &mut |_| {})
}

/// The busybox image looks right in the store.
#[track_caller]
fn check_busybox(image: &ImageRef) {
    let top = &image.layers.last().unwrap().dir;
    let bin = top.join("bin/busybox");
    let meta = std::fs::metadata(&bin).unwrap();
    assert_eq!(meta.len(), std::fs::metadata(BUSYBOX).unwrap().len());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    assert_eq!(meta.mtime(), 1_600_000_000);
    assert_eq!(
        std::fs::read_link(top.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let cat = std::fs::metadata(top.join("bin/cat")).unwrap();
    assert_eq!(
        cat.ino(),
        meta.ino(),
        "bin/cat is a hardlink to bin/busybox"
    );
    let t = std::fs::metadata(top.join("tmp")).unwrap();
    assert_eq!(t.permissions().mode() & 0o7777, 0o1777);
    assert_eq!(
        std::fs::read_to_string(top.join("etc/hostname")).unwrap(),
        "fixture\n"
    );
}

#[test]
fn oci_layout_gzip_and_plain_layers() {
    require_root!();
    let t = tmp();
    let built = oci_layout(
        &t.path().join("layout"),
        &[
            Layer::gz(busybox_layer()),
            Layer::plain(layer_tar(&[file("etc/motd", b"hello\n")])),
        ],
        None,
    );
    let store = Store::open(&t.path().join("store")).unwrap();
    let mut events = Vec::new();
    let image = store
        .import(&built.dir, &mut |p| events.push(p))
        .expect("import");
    assert_eq!(image.id.hex(), built.config_digest);
    assert_eq!(
        image.manifest.as_ref().unwrap().hex(),
        built.manifest_digest
    );
    assert_eq!(image.names, vec!["latest".to_string()]);
    assert_eq!(image.config.cmd, Some(vec!["/bin/sh".to_string()]));
    assert_eq!(image.config.env, Some(vec!["PATH=/bin".to_string()]));
    assert_eq!(image.config.working_dir.as_deref(), Some("/tmp"));
    assert_eq!(image.config.user.as_deref(), Some("0:0"));
    assert_eq!(image.layers.len(), 2);
    for (l, (_, diff)) in image.layers.iter().zip(&built.layers) {
        assert_eq!(l.diff_id.hex(), diff);
        assert_eq!(l.dir, store.root().join("layers").join(diff).join("diff"));
    }
    check_busybox(&ImageRef {
        layers: image.layers[..1].to_vec(),
        ..image.clone()
    });
    assert!(events.iter().any(|e| matches!(e, Progress::Layer { .. })));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Progress::LayerDone { cached: false, .. }))
    );
    for e in &events {
        eprintln!("{e}");
    }
    // A second import finds the layers in the store.
    let mut events = Vec::new();
    let again = store.import(&built.dir, &mut |p| events.push(p)).unwrap();
    assert_eq!(again, image);
    assert!(
        events
            .iter()
            .all(|e| matches!(e, Progress::LayerDone { cached: true, .. }))
    );
    assert_eq!(store.get("latest").unwrap(), image);
    assert_eq!(store.get(&image.id.to_string()).unwrap(), image);
    assert_consistent(store.root());
}

#[test]
fn oci_archive_plain_and_gzipped() {
    require_root!();
    let t = tmp();
    let built = oci_layout(
        &t.path().join("layout"),
        &[Layer::gz(busybox_layer())],
        None,
    );
    let archive = t.path().join("image.tar");
    tar_dir(&built.dir, &archive);
    let store = Store::open(&t.path().join("store")).unwrap();
    let image = import(&store, &archive).expect("oci archive");
    check_busybox(&image);
    let gz = t.path().join("image.tar.gz");
    std::fs::write(&gz, gzip(&std::fs::read(&archive).unwrap())).unwrap();
    let store2 = Store::open(&t.path().join("store2")).unwrap();
    let image2 = import(&store2, &gz).expect("gzip'd oci archive");
    assert_eq!(image2.id, image.id);
    assert_consistent(store.root());
    assert_consistent(store2.root());
}

#[test]
fn skopeo_oci_archive_and_docker_archive() {
    require_root!();
    let Some(skopeo) = tool("skopeo") else {
        eprintln!("skipped: skopeo is not installed (apt-get install skopeo)");
        return;
    };
    let t = tmp();
    let built = oci_layout(
        &t.path().join("layout"),
        &[
            Layer::gz(busybox_layer()),
            Layer::plain(layer_tar(&[file("etc/motd", b"hi\n")])),
        ],
        None,
    );
    let src = format!("oci:{}:latest", built.dir.display());
    let oci_archive = t.path().join("skopeo-oci.tar");
    let docker_archive = t.path().join("skopeo-docker.tar");
    run(Command::new(&skopeo).args([
        "copy",
        "--insecure-policy",
        &src,
        &format!("oci-archive:{}:busybox:latest", oci_archive.display()),
    ]));
    run(Command::new(&skopeo).args([
        "copy",
        "--insecure-policy",
        &src,
        &format!("docker-archive:{}:busybox:latest", docker_archive.display()),
    ]));
    let store = Store::open(&t.path().join("store")).unwrap();
    let a = import(&store, &oci_archive).expect("skopeo oci-archive");
    check_busybox(&ImageRef {
        layers: a.layers[..1].to_vec(),
        ..a.clone()
    });
    let b = import(&store, &docker_archive).expect("skopeo docker-archive");
    assert_eq!(
        b.layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>(),
        a.layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>()
    );
    assert_eq!(b.config.cmd, a.config.cmd);
    assert!(
        b.names.iter().any(|n| n.contains("busybox")),
        "{:?}",
        b.names
    );
    // A fresh store unpacks the docker-archive's (uncompressed) layers.
    let store2 = Store::open(&t.path().join("store2")).unwrap();
    let c = import(&store2, &docker_archive).expect("skopeo docker-archive");
    check_busybox(&ImageRef {
        layers: c.layers[..1].to_vec(),
        ..c.clone()
    });
    assert_consistent(store.root());
    assert_consistent(store2.root());
}

#[test]
fn umoci_oci_layout() {
    require_root!();
    let Some(umoci) = tool("umoci") else {
        eprintln!("skipped: umoci is not installed (apt-get install umoci)");
        return;
    };
    let t = tmp();
    let rootfs = t.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    let layout = t.path().join("layout");
    let image = format!("{}:demo", layout.display());
    run(Command::new(&umoci)
        .arg("init")
        .arg("--layout")
        .arg(&layout));
    run(Command::new(&umoci).args(["new", "--image", &image]));
    run(Command::new(&umoci)
        .args(["insert", "--image", &image])
        .arg(&rootfs)
        .arg("/"));
    run(Command::new(&umoci).args(["config", "--image", &image, "--config.cmd", "/bin/sh"]));
    let store = Store::open(&t.path().join("store")).unwrap();
    let got = import(&store, &layout).expect("umoci layout");
    assert_eq!(got.names, ["demo"]);
    assert_eq!(got.config.cmd, Some(vec!["/bin/sh".to_string()]));
    let top = &got.layers.last().unwrap().dir;
    assert_eq!(
        std::fs::read(top.join("bin/busybox")).unwrap(),
        std::fs::read(BUSYBOX).unwrap()
    );
    assert_eq!(
        std::fs::read_link(top.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_consistent(store.root());
}

#[test]
fn podman_docker_archive_and_oci_archive() {
    require_root!();
    if tool("podman").is_none() {
        eprintln!("skipped: podman is not installed (scripts/install-deps.sh)");
        return;
    }
    let t = tmp();
    let pd = t.path().join("podman");
    let rootfs = t.path().join("rootfs.tar");
    std::fs::write(&rootfs, busybox_layer()).unwrap();
    run(podman(&pd)
        .arg("import")
        .arg(&rootfs)
        .arg("localhost/bb:latest"));
    let docker = t.path().join("podman-docker.tar");
    let oci = t.path().join("podman-oci.tar");
    run(podman(&pd)
        .args(["save", "--format", "docker-archive", "-o"])
        .arg(&docker)
        .arg("localhost/bb:latest"));
    run(podman(&pd)
        .args(["save", "--format", "oci-archive", "-o"])
        .arg(&oci)
        .arg("localhost/bb:latest"));
    let store = Store::open(&t.path().join("store")).unwrap();
    let a = import(&store, &docker).expect("podman docker-archive");
    check_busybox(&a);
    assert!(a.names.iter().any(|n| n.contains("bb")), "{:?}", a.names);
    let store2 = Store::open(&t.path().join("store2")).unwrap();
    let b = import(&store2, &oci).expect("podman oci-archive");
    check_busybox(&b);
    assert_eq!(a.layers[0].diff_id, b.layers[0].diff_id);
    assert_consistent(store.root());
    assert_consistent(store2.root());
}

/// Mounts `image` under `dir`; returns the merged directory.
fn mount(image: &ImageRef, dir: &Path) -> std::path::PathBuf {
    let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d).unwrap();
    }
    bulkhead_image::mount_rootfs(image, &upper, &work, &merged).expect("overlay mount");
    merged
}

#[test]
fn overlay_mount_reads_and_never_modifies_the_image() {
    require_root!();
    let t = tmp();
    let built = oci_layout(
        &t.path().join("layout"),
        &[
            Layer::gz(busybox_layer()),
            Layer::gz(layer_tar(&[file("etc/hostname", b"upper layer\n")])),
        ],
        None,
    );
    let store = Store::open(&t.path().join("store")).unwrap();
    let image = import(&store, &built.dir).unwrap();
    let before = tree(store.root());
    let merged = mount(&image, &t.path().join("c1"));
    let res = std::panic::catch_unwind(|| {
        assert_eq!(
            std::fs::read_to_string(merged.join("etc/hostname")).unwrap(),
            "upper layer\n"
        );
        let out = Command::new(merged.join("bin/busybox"))
            .args(["echo", "from the image"])
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"from the image\n");
        std::fs::write(merged.join("etc/hostname"), "changed\n").unwrap();
        std::fs::write(merged.join("bin/busybox"), "clobbered").unwrap();
        std::fs::remove_file(merged.join("bin/sh")).unwrap();
        std::fs::write(merged.join("tmp/new"), "x").unwrap();
    });
    bulkhead_image::unmount_rootfs(&merged).unwrap();
    res.unwrap();
    // The writes went to the upper directory; the layers are as they were.
    let upper = t.path().join("c1/upper");
    assert_eq!(
        std::fs::read_to_string(upper.join("etc/hostname")).unwrap(),
        "changed\n"
    );
    assert!(upper.join("tmp/new").is_file());
    assert_eq!(tree(store.root()), before);
    check_busybox(&ImageRef {
        layers: image.layers[..1].to_vec(),
        ..image.clone()
    });
    assert_eq!(
        std::fs::read_to_string(image.layers[1].dir.join("etc/hostname")).unwrap(),
        "upper layer\n"
    );
    // A second container on a fresh upper sees the pristine image.
    let merged = mount(&image, &t.path().join("c2"));
    let ok = std::fs::read_to_string(merged.join("etc/hostname"));
    let sh = std::fs::symlink_metadata(merged.join("bin/sh")).is_ok();
    bulkhead_image::unmount_rootfs(&merged).unwrap();
    assert_eq!(ok.unwrap(), "upper layer\n");
    assert!(sh);
}

#[test]
fn whiteouts_and_opaque_directories() {
    require_root!();
    let t = tmp();
    let lower = layer_tar(&[
        file("etc/a", b"a"),
        file("etc/b", b"b"),
        file("d/x", b"x"),
        file("d/y", b"y"),
        file("e/keep", b"k"),
        file("f/old", b"o"),
    ]);
    let upper = layer_tar(&[
        file("etc/.wh.a", b""),
        file("d/.wh..wh..opq", b""),
        file("d/z", b"z"),
        // Whited out and recreated in the same layer: a new, opaque dir.
        file(".wh.f", b""),
        E::Dir("f/", 0o755),
        file("f/new", b"n"),
        // A same-layer entry and its whiteout: the entry stays.
        file("e/mine", b"m"),
        file("e/.wh.mine", b""),
        file("e/.wh.keep", b""),
    ]);
    let built = oci_layout(
        &t.path().join("layout"),
        &[Layer::gz(lower), Layer::gz(upper)],
        None,
    );
    let store = Store::open(&t.path().join("store")).unwrap();
    let image = import(&store, &built.dir).unwrap();
    let top = &image.layers[1].dir;
    let wh = std::fs::symlink_metadata(top.join("etc/a")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    let opaque = rustix::fs::getxattr(top.join("d"), "trusted.overlay.opaque", &mut [0u8; 8]);
    assert_eq!(opaque.unwrap(), 1);
    assert!(!top.join("d/.wh..wh..opq").exists());
    let merged = mount(&image, &t.path().join("c"));
    let ls = |d: &str| {
        let mut v: Vec<String> = std::fs::read_dir(merged.join(d))
            .map(|r| {
                r.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let (etc, d, e, f) = (ls("etc"), ls("d"), ls("e"), ls("f"));
    bulkhead_image::unmount_rootfs(&merged).unwrap();
    assert_eq!(etc, ["b"]);
    assert_eq!(d, ["z"]);
    assert_eq!(e, ["mine"]);
    assert_eq!(f, ["new"]);
}

#[test]
fn digest_mismatch_is_rejected_and_leaves_no_layer() {
    require_root!();
    let t = tmp();
    let built = oci_layout(
        &t.path().join("layout"),
        &[Layer::gz(busybox_layer())],
        None,
    );
    let (blob_hex, diff_hex) = built.layers[0].clone();
    let blob = built.blob(&blob_hex);
    let mut data = std::fs::read(&blob).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&blob, &data).unwrap();
    let store = Store::open(&t.path().join("store")).unwrap();
    let err = import(&store, &built.dir).unwrap_err();
    eprintln!("{err}");
    assert!(
        matches!(&err, Error::DigestMismatch { expected, .. } if expected.contains(&blob_hex)),
        "{err:?}"
    );
    assert!(!store.root().join("layers").join(&diff_hex).exists());
    assert!(store.list().unwrap().is_empty());
    assert_consistent(store.root());

    // A blob shorter than its descriptor says.
    std::fs::write(&blob, &data[..mid]).unwrap();
    let err = import(&store, &built.dir).unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err:?}");
    assert_consistent(store.root());
}

#[test]
fn diff_id_mismatch_is_rejected() {
    require_root!();
    let t = tmp();
    let wrong = format!("sha256:{}", "0".repeat(64));
    let built = oci_layout(
        &t.path().join("layout"),
        &[Layer::gz(busybox_layer())],
        Some(vec![wrong.clone()]),
    );
    let store = Store::open(&t.path().join("store")).unwrap();
    let err = import(&store, &built.dir).unwrap_err();
    eprintln!("{err}");
    assert!(
        matches!(&err, Error::DigestMismatch { what, expected, .. } if what.contains("diff_id") && *expected == wrong),
        "{err:?}"
    );
    assert!(tree(&store.root().join("layers")).is_empty());
    assert_consistent(store.root());
}

#[test]
fn corrupt_gzip_with_a_matching_digest_is_rejected() {
    require_root!();
    let t = tmp();
    let built = oci_layout(
        &t.path().join("layout"),
        &[Layer::gz(busybox_layer())],
        None,
    );
    // Re-point the manifest at a truncated gzip stream with a correct
    // digest: unpacking fails, nothing stays.
    let (blob_hex, _) = &built.layers[0];
    let data = std::fs::read(built.blob(blob_hex)).unwrap();
    let cut = &data[..data.len() * 2 / 3];
    let cut_hex = sha256_hex(cut);
    std::fs::write(built.blob(&cut_hex), cut).unwrap();
    let m = std::fs::read_to_string(built.blob(&built.manifest_digest))
        .unwrap()
        .replace(blob_hex.as_str(), &cut_hex)
        .replace(
            &format!("\"size\":{}", data.len()),
            &format!("\"size\":{}", cut.len()),
        );
    repoint_manifest(&built, &m);
    let store = Store::open(&t.path().join("store")).unwrap();
    let err = import(&store, &built.dir).unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(tree(&store.root().join("layers")).is_empty());
    assert_consistent(store.root());
}

#[test]
fn truncated_archives_are_rejected() {
    require_root!();
    let t = tmp();
    let built = oci_layout(
        &t.path().join("layout"),
        &[Layer::gz(busybox_layer())],
        None,
    );
    let archive = t.path().join("image.tar");
    tar_dir(&built.dir, &archive);
    let full = std::fs::read(&archive).unwrap();
    let store = Store::open(&t.path().join("store")).unwrap();
    for cut in [
        0,
        100,
        512,
        700,
        full.len() / 10,
        full.len() / 2,
        full.len() * 9 / 10,
    ] {
        let p = t.path().join(format!("cut-{cut}.tar"));
        std::fs::write(&p, &full[..cut]).unwrap();
        let err = import(&store, &p).expect_err(&format!("cut at {cut} accepted"));
        eprintln!("cut at {cut}: {err}");
        if cut == 0 {
            assert!(matches!(err, Error::NotAnImage { .. }), "{err:?}");
        } else {
            assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
        }
        assert!(store.list().unwrap().is_empty());
        assert_consistent(store.root());
    }
    // A truncated gzip'd archive.
    let gz = gzip(&full);
    let p = t.path().join("cut.tar.gz");
    std::fs::write(&p, &gz[..gz.len() / 2]).unwrap();
    let err = import(&store, &p).unwrap_err();
    eprintln!("gzip cut: {err}");
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert_consistent(store.root());
    // And the whole archive still imports.
    import(&store, &archive).unwrap();
    assert_consistent(store.root());
}

#[test]
fn traversal_corpus_is_rejected_and_nothing_escapes() {
    require_root!();
    let t = tmp();
    let base = t.path();
    let canary = base.join("canary");
    std::fs::create_dir(&canary).unwrap();
    std::fs::write(canary.join("file"), "canary").unwrap();
    let c = canary.display().to_string();
    // The layer is unpacked at <base>/a/b/store/tmp/import-*/layer-0/diff:
    // seven `..` reach <base>.
    let up7 = "../../../../../../..";
    let host_escape = format!("/tmp/bh-image-escape-{}", std::process::id());
    let deep = format!("{}{host_escape}", "../".repeat(40));
    let passwd = host_passwd();
    let corpus: Vec<(Vec<E>, String)> = vec![
        (
            vec![file("../../etc/passwd", b"x")],
            "../../etc/passwd".into(),
        ),
        (
            vec![file(&format!("{up7}/canary/pwned"), b"x")],
            format!("{up7}/canary/pwned"),
        ),
        (vec![file(&deep, b"x")], deep.clone()),
        (vec![file("/abs/path", b"x")], "/abs/path".into()),
        (
            vec![file(&format!("{c}/pwned"), b"x")],
            format!("{c}/pwned"),
        ),
        (vec![file("a/../../b", b"x")], "a/../../b".into()),
        (vec![file("./a/./../b", b"x")], "./a/./../b".into()),
        (
            vec![symlink("evil", "/etc"), file("evil/passwd", b"x")],
            "evil/passwd".into(),
        ),
        (
            vec![symlink("evil", &c), file("evil/pwned", b"x")],
            "evil/pwned".into(),
        ),
        (
            vec![
                symlink("evil", &format!("{up7}/canary")),
                file("evil/pwned", b"x"),
            ],
            "evil/pwned".into(),
        ),
        (
            vec![
                symlink("d", "."),
                symlink("evil", &format!("d/{up7}/canary")),
                file("evil/pwned", b"x"),
            ],
            "evil/pwned".into(),
        ),
        (
            vec![symlink("evil", &c), E::Dir("evil/sub/", 0o755)],
            "evil/sub/".into(),
        ),
        (
            vec![symlink("evil", &c), symlink("evil/link", "/etc/shadow")],
            "evil/link".into(),
        ),
        (vec![hardlink("h", "../../x")], "h".into()),
        (vec![hardlink("h", &format!("{c}/file"))], "h".into()),
        (vec![hardlink("h", "/etc/passwd")], "h".into()),
        (
            vec![symlink("evil", &c), hardlink("h", "evil/file")],
            "h".into(),
        ),
        (vec![hardlink("h", "not/in/this/layer")], "h".into()),
        (vec![file("../.wh.x", b"")], "../.wh.x".into()),
        (vec![file(".wh...", b"")], ".wh...".into()),
        (
            vec![file(&format!("{up7}/canary/.wh.file"), b"")],
            format!("{up7}/canary/.wh.file"),
        ),
        (
            vec![symlink("evil", &c), file("evil/.wh.file", b"")],
            "evil/.wh.file".into(),
        ),
        (
            vec![symlink("evil", &c), file("evil/.wh..wh..opq", b"")],
            "evil/.wh..wh..opq".into(),
        ),
    ];
    let store_root = base.join("a/b/store");
    let store = Store::open(&store_root).unwrap();
    let outside_before: Vec<String> = tree(base)
        .into_iter()
        .filter(|p| !p.starts_with("a/b/store/"))
        .collect();
    for (i, (entries, bad)) in corpus.iter().enumerate() {
        let mut all = vec![file("ok", b"fine")];
        all.extend(entries.iter().cloned());
        let built = oci_layout(
            &base.join(format!("layouts/{i}")),
            &[Layer::gz(layer_tar(&all))],
            None,
        );
        let err = import(&store, &built.dir).expect_err(&format!("entry {bad:?} accepted"));
        eprintln!("{bad:?}: {err}");
        match &err {
            Error::UnsafeEntry { entry, .. } => assert_eq!(entry, bad, "{err}"),
            other => panic!("{bad:?}: expected UnsafeEntry, got {other:?}"),
        }
        assert!(err.to_string().contains(bad.as_str()));
        assert!(tree(&store_root.join("layers")).is_empty(), "case {bad:?}");
        assert_consistent(&store_root);
    }
    let outside_after: Vec<String> = tree(base)
        .into_iter()
        .filter(|p| !p.starts_with("a/b/store/") && !p.starts_with("layouts"))
        .collect();
    let outside_before: Vec<String> = outside_before
        .into_iter()
        .filter(|p| !p.starts_with("layouts"))
        .collect();
    assert_eq!(
        outside_after, outside_before,
        "something was written outside the store"
    );
    assert_eq!(
        std::fs::read_to_string(canary.join("file")).unwrap(),
        "canary"
    );
    assert!(!Path::new(&host_escape).exists());
    assert_eq!(host_passwd(), passwd, "/etc/passwd changed");
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn benign_symlinks_may_point_anywhere() {
    require_root!();
    let t = tmp();
    let built = oci_layout(
        &t.path().join("layout"),
        &[Layer::gz(layer_tar(&[
            symlink("etc/passwd-link", "/etc/passwd"),
            symlink("up", "../../../.."),
            symlink("lib", "usr/lib"),
            file("usr/lib/libx.so", b"elf"),
            E::Char("dev/null", 1, 3),
        ]))],
        None,
    );
    let store = Store::open(&t.path().join("store")).unwrap();
    let mut warnings = Vec::new();
    let image = store
        .import(&built.dir, &mut |p| {
            if let Progress::Warning { entry, .. } = p {
                warnings.push(entry)
            }
        })
        .unwrap();
    let top = &image.layers[0].dir;
    assert_eq!(
        std::fs::read_link(top.join("etc/passwd-link")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(
        std::fs::read_link(top.join("up")).unwrap(),
        Path::new("../../../..")
    );
    assert!(!top.join("dev/null").exists());
    assert_eq!(warnings, ["dev/null"]);
}

#[test]
fn docker_archive_with_escaping_layer_name_is_rejected() {
    require_root!();
    let t = tmp();
    let layer = busybox_layer();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": host_arch(), "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&layer))]},
    }))
    .unwrap();
    let dir = t.path().join("d");
    std::fs::create_dir_all(&dir).unwrap();
    let chex = sha256_hex(&config);
    std::fs::write(dir.join(format!("{chex}.json")), &config).unwrap();
    std::fs::write(dir.join("layer.tar"), &layer).unwrap();
    let manifest = |l: &str| {
        serde_json::to_vec(&serde_json::json!([
            {"Config": format!("{chex}.json"), "RepoTags": ["own:latest"], "Layers": [l]}
        ]))
        .unwrap()
    };
    let store = Store::open(&t.path().join("store")).unwrap();
    std::fs::write(dir.join("manifest.json"), manifest("../layer.tar")).unwrap();
    let archive = t.path().join("bad.tar");
    tar_dir(&dir, &archive);
    let err = import(&store, &archive).unwrap_err();
    eprintln!("{err}");
    assert!(err.to_string().contains("../layer.tar"), "{err}");
    // The same archive with a sane manifest imports; a lying config name
    // is a digest mismatch.
    std::fs::write(dir.join("manifest.json"), manifest("layer.tar")).unwrap();
    tar_dir(&dir, &archive);
    let image = import(&store, &archive).expect("own docker-archive");
    check_busybox(&image);
    assert_eq!(image.names, ["own:latest"]);
    std::fs::rename(
        dir.join(format!("{chex}.json")),
        dir.join(format!("{}.json", "1".repeat(64))),
    )
    .unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&serde_json::json!([
            {"Config": format!("{}.json", "1".repeat(64)), "Layers": ["layer.tar"]}
        ]))
        .unwrap(),
    )
    .unwrap();
    tar_dir(&dir, &archive);
    let err = import(&store, &archive).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    assert_consistent(store.root());
}

#[test]
fn zstd_layers_are_a_clear_error() {
    require_root!();
    let t = tmp();
    let built = oci_layout(
        &t.path().join("layout"),
        &[Layer::plain(busybox_layer())],
        None,
    );
    // Claim zstd in the manifest.
    let m = std::fs::read_to_string(built.blob(&built.manifest_digest))
        .unwrap()
        .replace("layer.v1.tar\"", "layer.v1.tar+zstd\"");
    repoint_manifest(&built, &m);
    let store = Store::open(&t.path().join("store")).unwrap();
    let err = import(&store, &built.dir).unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("zstd"));
}

#[test]
fn not_an_image() {
    let t = tmp();
    let store = Store::open(&t.path().join("store")).unwrap();
    let junk = t.path().join("junk");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let err = import(&store, &junk).unwrap_err();
    eprintln!("{err}");
    assert!(
        matches!(err, Error::Corrupt { .. } | Error::NotAnImage { .. }),
        "{err:?}"
    );
    let err = import(&store, &t.path().join("missing")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    let empty = t.path().join("emptydir");
    std::fs::create_dir(&empty).unwrap();
    let err = import(&store, &empty).unwrap_err();
    assert!(matches!(err, Error::NotAnImage { .. }), "{err:?}");
}

#[test]
fn concurrent_imports_of_the_same_image() {
    require_root!();
    let t = tmp();
    let built = oci_layout(
        &t.path().join("layout"),
        &[
            Layer::gz(busybox_layer()),
            Layer::gz(layer_tar(&[file("etc/motd", b"m")])),
        ],
        None,
    );
    let root = t.path().join("store");
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let store = Store::open(&root).unwrap();
                    import(&store, &built.dir)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first = results[0].as_ref().unwrap().clone();
    for r in &results {
        assert_eq!(r.as_ref().unwrap(), &first);
    }
    assert_eq!(
        tree(&root.join("layers"))
            .iter()
            .filter(|p| !p.contains('/'))
            .count(),
        2
    );
    assert_eq!(
        Store::open(&root).unwrap().list().unwrap(),
        vec![first.clone()]
    );
    check_busybox(&ImageRef {
        layers: first.layers[..1].to_vec(),
        ..first
    });
    assert_consistent(&root);
}

/// The host's /etc/passwd without the users other tests (rootless.rs) add
/// and remove while this one runs: any other change is an escape.
fn host_passwd() -> String {
    std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .filter(|l| !l.contains("bulkhead rootless test"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A layer whose one file carries a PAX `SCHILY.xattr.<name>` record.
fn layer_with_xattr(path: &str, name: &str, value: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let key = format!("SCHILY.xattr.{name}");
    b.append_pax_extensions([(key.as_str(), value)]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path(path).unwrap();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_size(1);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    b.into_inner().unwrap()
}

/// A user's store (as `bulkhead sandbox --image` makes it rootless) marks
/// opaque directories with `user.overlay.opaque` (what `userxattr` reads),
/// keeps 0:0 whiteouts, stays a user's store when reopened, and refuses to
/// take over a store that holds root's layers. Layers never set
/// `user.overlay.*` themselves, in either kind of store. `read_file` sees
/// the merged image: whiteouts and opaque directories hide lower files.
#[test]
fn rootless_store_layers_use_user_xattrs_and_root_stores_are_refused() {
    require_root!();
    let t = tmp();
    let lower = layer_tar(&[
        file("etc/a", b"a"),
        file("etc/b", b"lower b"),
        file("d/x", b"x"),
    ]);
    let upper = layer_tar(&[
        file("etc/.wh.a", b""),
        file("etc/b", b"upper b"),
        file("d/.wh..wh..opq", b""),
        file("d/z", b"z"),
    ]);
    let forged = layer_with_xattr("forged", "user.overlay.opaque", b"y");
    let built = oci_layout(
        &t.path().join("layout"),
        &[Layer::gz(lower), Layer::gz(upper), Layer::plain(forged)],
        None,
    );
    let store = Store::open_rootless(&t.path().join("user")).unwrap();
    assert!(store.is_rootless());
    let mut warnings = Vec::new();
    let image = store
        .import(&built.dir, &mut |p| {
            if let Progress::Warning { message, .. } = p {
                warnings.push(message);
            }
        })
        .unwrap();
    let top = &image.layers[1].dir;
    let wh = std::fs::symlink_metadata(top.join("etc/a")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    let mut buf = [0u8; 8];
    assert_eq!(
        rustix::fs::getxattr(top.join("d"), "user.overlay.opaque", &mut buf).unwrap(),
        1
    );
    assert!(rustix::fs::getxattr(top.join("d"), "trusted.overlay.opaque", &mut buf).is_err());
    let forged = image.layers[2].dir.join("forged");
    assert!(rustix::fs::getxattr(&forged, "user.overlay.opaque", &mut buf).is_err());
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("user.overlay.opaque not applied")),
        "{warnings:?}"
    );
    // The merged view, read from the layers.
    assert_eq!(image.read_file("etc/b", 100).unwrap(), b"upper b");
    assert_eq!(image.read_file("/d/z", 100).unwrap(), b"z");
    assert!(image.read_file("etc/a", 100).is_none(), "whited out");
    assert!(image.read_file("d/x", 100).is_none(), "below an opaque dir");
    assert!(image.read_file("etc/b", 3).is_none(), "over the limit");
    assert!(image.read_file("../etc/b", 100).is_none());
    assert!(Store::open(&t.path().join("user")).unwrap().is_rootless());

    // Root's store: trusted.*, and not usable rootless once it has layers.
    let root = Store::open(&t.path().join("root")).unwrap();
    assert!(!root.is_rootless());
    let image = import(&root, &built.dir).unwrap();
    let top = &image.layers[1].dir;
    assert!(rustix::fs::getxattr(top.join("d"), "trusted.overlay.opaque", &mut buf).is_ok());
    let forged = image.layers[2].dir.join("forged");
    assert!(rustix::fs::getxattr(&forged, "user.overlay.opaque", &mut buf).is_err());
    let e = Store::open_rootless(&t.path().join("root"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("root's layers"), "{e}");
}
