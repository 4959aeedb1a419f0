//! Container roots on (idmapped) overlayfs: ownership as the container's
//! mapped ids see it, writes landing in the upper layer, the store never
//! modified, keep/release, and cleanup on every failure path. Real mounts;
//! root only.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bulkhead_image::{ContainerRoot, Error, IdMap, ImageRef, Store};
use common::*;
use tempfile::TempDir;

/// Host ids the tests map container root to: far above real users.
const BASE: u32 = 1_500_000_000;

fn idmap() -> IdMap {
    IdMap {
        host_base: BASE,
        size: 65536,
    }
}

/// A temp dir the mapped ids can traverse (TempDir makes 0700).
fn tmp() -> TempDir {
    let t = tempfile::Builder::new()
        .prefix("bulkhead-root-test-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    t
}

fn busybox_image(t: &Path) -> (Store, ImageRef) {
    let built = oci_layout(
        &t.join("layout"),
        &[
            Layer::gz(busybox_layer()),
            Layer::gz(layer_tar(&[
                E::Dir("etc/", 0o755),
                file("etc/motd", b"hello\n"),
                file("etc/remove-me", b"x\n"),
            ])),
        ],
        None,
    );
    let store = Store::open(&t.join("store")).unwrap();
    let image = store.import(&built.dir, &mut |_| {}).unwrap();
    (store, image)
}

/// Everything about every file below `dir` that a container could change:
/// type, mode, owner, size, content hash, link target, xattrs, inode.
fn fingerprint(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for rel in tree(dir) {
        let p = dir.join(&rel);
        let m = std::fs::symlink_metadata(&p).unwrap();
        let content = if m.is_file() {
            sha256_hex(&std::fs::read(&p).unwrap())
        } else if m.file_type().is_symlink() {
            std::fs::read_link(&p).unwrap().display().to_string()
        } else {
            String::new()
        };
        let mut xattrs = String::new();
        let mut buf = vec![0u8; 4096];
        if let Ok(n) = rustix::fs::llistxattr(&p, &mut buf) {
            xattrs = String::from_utf8_lossy(&buf[..n]).into_owned();
        }
        out.insert(
            rel,
            format!(
                "{:o} {}:{} {} {} {} {} {}",
                m.mode(),
                m.uid(),
                m.gid(),
                m.len(),
                m.ino(),
                m.mtime(),
                content,
                xattrs
            ),
        );
    }
    out
}

fn layers_fingerprint(image: &ImageRef) -> Vec<BTreeMap<String, String>> {
    image.layers.iter().map(|l| fingerprint(&l.dir)).collect()
}

/// Runs a shell command as host uid/gid `BASE + id` (what container id
/// `id` is on the host), with the root's busybox.
fn sh_as(id: u32, cwd: &Path, script: &str) -> std::process::Output {
    Command::new(BUSYBOX)
        .args(["sh", "-c", script])
        .current_dir(cwd)
        .uid(BASE + id)
        .gid(BASE + id)
        .env_clear()
        .output()
        .unwrap()
}

fn mounted(p: &Path) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let s = p.display().to_string();
    mountinfo
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(s.as_str()))
}

#[test]
fn idmapped_root_ownership_and_writes_land_in_upper_owned_by_mapped_ids() {
    require_root!();
    let t = tmp();
    let (store, image) = busybox_image(t.path());
    let before = layers_fingerprint(&image);
    let dir = store.container_dir("c1").unwrap();
    let root = ContainerRoot::prepare(&store, &image, &dir, Some(idmap()), false).unwrap();
    let rootfs = root.rootfs();
    assert!(mounted(&rootfs));
    // The store holds the layer as host root; through the idmapped lower
    // layer the host sees the mapped base, i.e. root inside the container.
    let layer_bb = image.layers[0].dir.join("bin/busybox");
    assert_eq!(std::fs::metadata(&layer_bb).unwrap().uid(), 0);
    let bb = std::fs::metadata(rootfs.join("bin/busybox")).unwrap();
    assert_eq!((bb.uid(), bb.gid()), (BASE, BASE));
    let top = std::fs::metadata(&rootfs).unwrap();
    assert_eq!(
        (top.uid(), top.gid(), top.mode() & 0o7777),
        (BASE, BASE, 0o755)
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/motd")).unwrap(),
        "hello\n"
    );
    assert_eq!(root.config().cmd, Some(vec!["/bin/sh".to_string()]));

    // Container root (BASE) and a container user (BASE + 1000) write,
    // modify, delete, chmod and chown in the image's directories.
    let out = sh_as(
        0,
        &rootfs,
        "echo new > etc/new && echo changed > etc/motd && rm etc/remove-me && \
         rm bin/cat && chmod 700 bin/busybox && mkdir home && chmod 777 home && \
         echo x > tmp/by-root",
    );
    assert!(out.status.success(), "{out:?}");
    let out = sh_as(
        1000,
        &rootfs,
        "echo u > home/by-user && echo t > tmp/by-user",
    );
    assert!(out.status.success(), "{out:?}");
    // Not root inside: the image's root-owned files stay out of reach.
    let out = sh_as(1000, &rootfs, "echo no > etc/hostname");
    assert!(!out.status.success());

    let upper = root.upper();
    let owner = |p: &str| {
        let m = std::fs::symlink_metadata(upper.join(p)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner("etc/new"), (BASE, BASE));
    assert_eq!(owner("tmp/by-root"), (BASE, BASE));
    assert_eq!(owner("home/by-user"), (BASE + 1000, BASE + 1000));
    assert_eq!(owner("tmp/by-user"), (BASE + 1000, BASE + 1000));
    // Copied up, the image's root-owned files keep their (mapped) owner.
    assert_eq!(owner("etc/motd"), (BASE, BASE));
    assert_eq!(owner("bin/busybox"), (BASE, BASE));
    // Deletions are whiteouts in the upper layer.
    let wh = std::fs::symlink_metadata(upper.join("etc/remove-me")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &wh.file_type()
    ));
    assert!(!rootfs.join("etc/remove-me").exists());

    // Outside the root, the upper layer is out of reach of the container's
    // ids (and of host users): only overlayfs reaches it.
    let ovl = std::fs::metadata(upper.parent().unwrap()).unwrap();
    assert_eq!((ovl.uid(), ovl.mode() & 0o777), (0, 0o700));
    let out = sh_as(0, t.path(), &format!("cat {}/etc/new", upper.display()));
    assert!(!out.status.success(), "{out:?}");

    // The store is untouched.
    assert_eq!(layers_fingerprint(&image), before);
    assert_eq!(
        std::fs::read_to_string(image.layers[1].dir.join("etc/motd")).unwrap(),
        "hello\n"
    );
    root.release().unwrap();
    assert!(!mounted(&dir.join("rootfs")));
    assert!(!dir.exists(), "--rm left {}", dir.display());
    assert_eq!(layers_fingerprint(&image), before);
    assert_consistent(store.root());
}

#[test]
fn without_idmap_the_root_is_host_owned() {
    require_root!();
    let t = tmp();
    let (store, image) = busybox_image(t.path());
    let dir = store.container_dir("plain").unwrap();
    let root = ContainerRoot::prepare(&store, &image, &dir, None, false).unwrap();
    let bb = std::fs::metadata(root.rootfs().join("bin/busybox")).unwrap();
    assert_eq!((bb.uid(), bb.gid()), (0, 0));
    std::fs::write(root.rootfs().join("etc/x"), "x").unwrap();
    assert_eq!(
        std::fs::metadata(root.upper().join("etc/x")).unwrap().uid(),
        0
    );
    root.release().unwrap();
    assert!(!dir.exists());
}

#[test]
fn a_kept_upper_layer_persists_and_is_reused() {
    require_root!();
    let t = tmp();
    let (store, image) = busybox_image(t.path());
    let before = layers_fingerprint(&image);
    let dir = store.container_dir("kept").unwrap();
    let root = ContainerRoot::prepare(&store, &image, &dir, Some(idmap()), true).unwrap();
    let out = sh_as(0, &root.rootfs(), "echo kept > etc/kept && rm etc/motd");
    assert!(out.status.success(), "{out:?}");
    // A second prepare of a mounted root is refused (in use).
    let err = ContainerRoot::prepare(&store, &image, &dir, Some(idmap()), true).unwrap_err();
    assert!(matches!(err, Error::Container { .. }), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
    root.release().unwrap();
    assert!(!mounted(&dir.join("rootfs")));
    assert!(dir.join("overlay/upper/etc/kept").is_file());

    // Another image or mapping may not take it over.
    let err = ContainerRoot::prepare(
        &store,
        &image,
        &dir,
        Some(IdMap {
            host_base: BASE + 65536,
            size: 65536,
        }),
        true,
    )
    .unwrap_err();
    assert!(err.to_string().contains("holds a container root"), "{err}");
    assert!(
        dir.join("overlay/upper/etc/kept").is_file(),
        "a refused prepare removed the kept upper"
    );

    let root = ContainerRoot::prepare(&store, &image, &dir, Some(idmap()), true).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.rootfs().join("etc/kept")).unwrap(),
        "kept\n"
    );
    assert!(!root.rootfs().join("etc/motd").exists());
    // Released by path, as `rm` of a detached container would.
    let path = root.leave_mounted();
    assert!(mounted(&path.join("rootfs")));
    bulkhead_image::release_dir(&path, Some(false)).unwrap();
    assert!(!path.exists());
    assert_eq!(layers_fingerprint(&image), before);
}

#[test]
fn failures_leave_nothing_behind() {
    require_root!();
    let t = tmp();
    let (store, image) = busybox_image(t.path());
    let containers = store.root().join("containers");
    let empty = |what: &str| {
        let left = tree(&containers);
        assert!(left.is_empty(), "{what} left {left:?}");
    };
    // An impossible mapping.
    let dir = store.container_dir("bad-map").unwrap();
    let err = ContainerRoot::prepare(
        &store,
        &image,
        &dir,
        Some(IdMap {
            host_base: u32::MAX - 10,
            size: 65536,
        }),
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("idmapping"), "{err}");
    empty("a bad mapping");
    // A mapping the kernel refuses (overlapping ranges are fine, but the
    // size must fit the id space): caught before anything is made.
    let err = ContainerRoot::prepare(
        &store,
        &image,
        &dir,
        Some(IdMap {
            host_base: BASE,
            size: 0,
        }),
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("idmapping"), "{err}");
    empty("an empty mapping");
    // An image the store does not have.
    let mut other = image.clone();
    other.id = bulkhead_image::Digest::of(b"not an image");
    let err = ContainerRoot::prepare(&store, &other, &dir, Some(idmap()), false).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    empty("an unknown image");
    // The mount itself fails (a layer's directory vanished from under the
    // store): everything made for it is removed again.
    let victim = image.layers[0].dir.clone();
    let aside = t.path().join("aside");
    std::fs::rename(&victim, &aside).unwrap();
    let err = ContainerRoot::prepare(&store, &image, &dir, Some(idmap()), false).unwrap_err();
    std::fs::rename(&aside, &victim).unwrap();
    assert!(matches!(err, Error::Mount { .. }), "{err}");
    empty("a failed mount");
    // A file where the directory should be, and a foreign non-empty
    // directory, are refused and left as they were.
    std::fs::write(&dir, "mine").unwrap();
    let err = ContainerRoot::prepare(&store, &image, &dir, Some(idmap()), false).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert_eq!(std::fs::read_to_string(&dir).unwrap(), "mine");
    std::fs::remove_file(&dir).unwrap();
    // A directory with other files in it: they are left alone, also when
    // the root is released.
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("data"), "mine").unwrap();
    let err = bulkhead_image::release_dir(&dir, Some(false)).unwrap_err();
    assert!(err.to_string().contains("holds no container root"), "{err}");
    let root = ContainerRoot::prepare(&store, &image, &dir, Some(idmap()), false).unwrap();
    root.release().unwrap();
    assert_eq!(tree(&dir), ["data"]);
    // Our own names, present without root.json, are not taken over.
    std::fs::create_dir(dir.join("rootfs")).unwrap();
    let err = ContainerRoot::prepare(&store, &image, &dir, Some(idmap()), false).unwrap_err();
    assert!(err.to_string().contains("no container root"), "{err}");
    assert_eq!(tree(&dir), ["data", "rootfs"]);
    // A failed mount in a shared directory removes only what it made.
    std::fs::remove_dir(dir.join("rootfs")).unwrap();
    std::fs::rename(&victim, &aside).unwrap();
    let err = ContainerRoot::prepare(&store, &image, &dir, Some(idmap()), false).unwrap_err();
    std::fs::rename(&aside, &victim).unwrap();
    assert!(matches!(err, Error::Mount { .. }), "{err}");
    assert_eq!(tree(&dir), ["data"]);
    std::fs::remove_dir_all(&dir).unwrap();
    for bad in ["", ".", "..", "a/b"] {
        assert!(store.container_dir(bad).is_err(), "{bad:?}");
    }
    assert_consistent(store.root());
}

#[test]
fn dropping_a_root_unmounts_it() {
    require_root!();
    let t = tmp();
    let (store, image) = busybox_image(t.path());
    let dir: PathBuf = store.container_dir("dropped").unwrap();
    {
        let root = ContainerRoot::prepare(&store, &image, &dir, Some(idmap()), false).unwrap();
        assert!(mounted(&root.rootfs()));
    }
    assert!(!mounted(&dir.join("rootfs")));
    assert!(!dir.exists());
}

#[test]
fn references_are_paths_names_or_ids() {
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
    let mut events = Vec::new();
    let a = store
        .resolve(archive.to_str().unwrap(), &mut |p| events.push(p))
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, bulkhead_image::Progress::LayerDone { cached: false, .. }))
    );
    // Importing the same digests again unpacks nothing.
    events.clear();
    let b = store
        .resolve(built.dir.to_str().unwrap(), &mut |p| events.push(p))
        .unwrap();
    assert_eq!(a.id, b.id);
    assert!(
        events
            .iter()
            .all(|e| matches!(e, bulkhead_image::Progress::LayerDone { cached: true, .. })),
        "{events:?}"
    );
    // By name, id and id prefix, without touching any file.
    for r in ["latest", &a.id.to_string(), &a.id.hex()[..12]] {
        assert_eq!(
            store.resolve(r, &mut |_| panic!("imported")).unwrap().id,
            a.id,
            "{r}"
        );
    }
    let err = store.resolve("nosuch", &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = store.resolve("./nosuch.tar", &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("no such file"), "{err}");
    assert_consistent(store.root());
}

#[test]
fn whiteouts_and_opaque_directories_work_through_idmapped_layers() {
    require_root!();
    let t = tmp();
    let lower = layer_tar(&[
        file("etc/a", b"a"),
        file("etc/b", b"b"),
        file("d/x", b"x"),
        file("f/old", b"o"),
    ]);
    let upper = layer_tar(&[
        file("etc/.wh.a", b""),
        file("d/.wh..wh..opq", b""),
        file("d/z", b"z"),
        file(".wh.f", b""),
        E::Dir("f/", 0o755),
        file("f/new", b"n"),
    ]);
    let built = oci_layout(
        &t.path().join("layout"),
        &[
            Layer::gz(busybox_layer()),
            Layer::gz(lower),
            Layer::gz(upper),
        ],
        None,
    );
    let store = Store::open(&t.path().join("store")).unwrap();
    let image = store.import(&built.dir, &mut |_| {}).unwrap();
    let dir = store.container_dir("wh").unwrap();
    let root = ContainerRoot::prepare(&store, &image, &dir, Some(idmap()), false).unwrap();
    let ls = |d: &str| {
        let mut v: Vec<String> = std::fs::read_dir(root.rootfs().join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(ls("etc"), ["b", "hostname"]);
    assert_eq!(ls("d"), ["z"]);
    assert_eq!(ls("f"), ["new"]);
    // Container root deletes files and a directory of the idmapped layers.
    let out = sh_as(0, &root.rootfs(), "rm etc/b && rm -r d && ls etc d 2>&1");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hostname"),
        "{out:?}"
    );
    assert_eq!(ls("etc"), ["hostname"]);
    assert!(!root.rootfs().join("d").exists());
    root.release().unwrap();
}
