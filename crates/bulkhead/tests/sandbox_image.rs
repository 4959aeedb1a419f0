//! `bulkhead sandbox --image`: images from the three formats run through the
//! CLI (built by scripts/demo-image.sh and converted with skopeo), ownership
//! inside (idmapped layers) and on the host (the upper layer), `--rm`
//! leaving nothing, a detached sandbox's upper layer persisting until `rm`,
//! and bad images refused before anything runs. Each test uses a private
//! image store (`--image-store`). bulkhead-only; root only.

#[macro_use]
mod common;

#[path = "../../bulkhead-image/tests/common/mod.rs"]
#[allow(unused_macros)]
mod fixtures;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{is_runc, rt, unique_id};
use tempfile::TempDir;

const SANDBOXES: &str = "/var/lib/bulkhead/sandboxes";

struct Env {
    dir: TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: common::open_tempdir(),
        }
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    fn store(&self) -> PathBuf {
        self.dir.path().join("images")
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// `bulkhead sandbox --image-store <private> ARGS…`
    #[track_caller]
    fn sandbox(&self, args: &[&str]) -> common::RtOutput {
        let store = self.store();
        let mut all = vec!["sandbox", "--image-store", store.to_str().unwrap()];
        all.extend_from_slice(args);
        rt(&self.state(), &all)
    }
    /// The demo image, built by the script the README shows.
    fn demo(&self, out: &str) -> PathBuf {
        let p = self.path(out);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/demo-image.sh");
        let o = Command::new("bash").arg(script).arg(&p).output().unwrap();
        assert!(o.status.success(), "demo-image.sh: {o:?}");
        p
    }
}

/// Removes sandbox `name` (`bulkhead rm -f`) when dropped, so that a
/// failing assertion leaves no detached sandbox, mount or directory.
struct Removed<'a> {
    env: &'a Env,
    name: String,
}

impl Drop for Removed<'_> {
    fn drop(&mut self) {
        if Path::new(SANDBOXES).join(&self.name).exists() {
            let _ = common::try_run_cmd(
                {
                    let mut c = Command::new(common::runtime());
                    c.arg("--root")
                        .arg(self.env.state())
                        .args(["rm", "-f", &self.name]);
                    c
                },
                self.env.dir.path(),
                common::cmd_timeout(),
            );
        }
    }
}

fn mounted(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// No trace of sandbox `name`: no directory, no mount, no state.
#[track_caller]
fn assert_gone(e: &Env, name: &str) {
    let dir = Path::new(SANDBOXES).join(name);
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(mounted(name).is_empty(), "mounts left: {:?}", mounted(name));
    let list = rt(&e.state(), &["list", "-q"]);
    assert!(!list.stdout.lines().any(|l| l == name), "{list}");
}

/// Every file of every layer in the store: mode, owner, size, content.
fn store_fingerprint(store: &Path) -> BTreeMap<String, String> {
    let layers = store.join("layers");
    let mut out = BTreeMap::new();
    for rel in fixtures::tree(&layers) {
        let p = layers.join(&rel);
        let m = std::fs::symlink_metadata(&p).unwrap();
        let data = if m.is_file() {
            fixtures::sha256_hex(&std::fs::read(&p).unwrap())
        } else {
            String::new()
        };
        out.insert(
            rel,
            format!("{:o} {}:{} {} {data}", m.mode(), m.uid(), m.gid(), m.len()),
        );
    }
    out
}

/// The store has no import in progress and every image's layers.
#[track_caller]
fn assert_store_consistent(store: &Path) {
    fixtures::assert_consistent(store);
}

const PROBE_SH: &str = "cat /etc/motd; echo uid=$(id -u); \
    echo owner=$(stat -c %u:%g /bin/busybox); echo rootdir=$(stat -c %u /); \
    echo home=$HOME cwd=$(pwd)";

#[test]
fn image_runs_from_all_three_formats() {
    require_root!();
    skip_if!(is_runc(), "`sandbox` is a bulkhead command");
    let e = Env::new();
    let archive = e.demo("demo.tar");
    let layout = e.demo("layout");
    let mut refs = vec![
        ("OCI archive", archive.display().to_string()),
        ("OCI layout", layout.display().to_string()),
    ];
    match fixtures::tool("skopeo") {
        Some(skopeo) => {
            let docker = e.path("docker.tar");
            let o = Command::new(skopeo)
                .arg("copy")
                .arg(format!("oci-archive:{}", archive.display()))
                .arg(format!("docker-archive:{}:demo:docker", docker.display()))
                .output()
                .unwrap();
            assert!(o.status.success(), "skopeo: {o:?}");
            refs.push(("docker-archive", docker.display().to_string()));
        }
        None => eprintln!("skipped (docker-archive part): skopeo is not installed"),
    }
    for (what, r) in &refs {
        let out = e.sandbox(&["--image", r, "--", "sh", "-c", PROBE_SH]);
        out.ok();
        assert!(
            out.stdout.contains("built by scripts/demo-image.sh"),
            "{what}: {out}"
        );
        // Inside, container root owns the image's files and its root dir.
        assert!(out.stdout.contains("uid=0"), "{what}: {out}");
        assert!(out.stdout.contains("owner=0:0"), "{what}: {out}");
        assert!(out.stdout.contains("rootdir=0"), "{what}: {out}");
        // The image's Env and WorkingDir apply.
        assert!(out.stdout.contains("home=/root cwd=/\n"), "{what}: {out}");
    }
    // Without a command, the image's own Cmd (/demo) runs.
    let out = e.sandbox(&["--image", &archive.display().to_string()]);
    out.ok();
    assert!(
        out.stdout
            .contains("a bulkhead sandbox running the demo image"),
        "{out}"
    );
    assert!(out.stdout.contains("owned by 0:0 inside"), "{out}");
    // By name, once imported, and progress lines on stderr (not a terminal:
    // one line per layer).
    let out = e.sandbox(&["--image", "bulkhead-demo:latest", "--", "true"]);
    out.ok();
    let out = e.sandbox(&["--image", &layout.display().to_string(), "--", "true"]);
    out.ok();
    assert!(
        out.stderr.contains("layer 1/2") && out.stderr.contains("already in the store"),
        "{out}"
    );
    assert!(
        !out.stderr.contains('\r'),
        "a bar was drawn on a non-terminal: {out}"
    );
    assert_store_consistent(&e.store());
}

#[test]
fn writes_land_in_the_upper_layer_owned_by_mapped_ids_and_rm_leaves_nothing() {
    require_root!();
    skip_if!(is_runc(), "`sandbox` is a bulkhead command");
    let e = Env::new();
    let archive = e.demo("demo.tar").display().to_string();
    // Import once so that the store can be fingerprinted before any run.
    e.sandbox(&["--image", &archive, "--", "true"]).ok();
    let before = store_fingerprint(&e.store());

    // A detached sandbox: its directory, with the upper layer, stays until
    // `rm`.
    let name = unique_id();
    let _rm = Removed {
        env: &e,
        name: name.clone(),
    };
    let out = e.sandbox(&[
        "-d",
        "--name",
        &name,
        "--read-only=false",
        "--image",
        &archive,
        "--",
        "sh",
        "-c",
        "echo data > /made-inside && rm /etc/motd && mkdir /var && echo x > /var/y",
    ]);
    out.ok();
    let dir = Path::new(SANDBOXES).join(&name);
    let upper = dir.join("overlay/upper");
    let made = upper.join("var/y");
    common::wait_for("the sandbox's write", common::cmd_timeout(), || {
        made.is_file().then_some(())
    });
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let base = cfg["linux"]["uidMappings"][0]["hostID"].as_u64().unwrap() as u32;
    assert!(
        base >= 65536,
        "container root must be an unprivileged host id: {base}"
    );
    let m = std::fs::metadata(upper.join("made-inside")).unwrap();
    assert_eq!((m.uid(), m.gid()), (base, base));
    assert_eq!(
        std::fs::read_to_string(upper.join("made-inside")).unwrap(),
        "data\n"
    );
    // The deletion is a whiteout in the upper layer, not in the image.
    let wh = std::fs::symlink_metadata(upper.join("etc/motd")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &wh.file_type()
    ));
    // The sandbox has exited; its root stays (kept) until `rm`.
    common::wait_for("the sandbox to stop", common::cmd_timeout(), || {
        let st = rt(&e.state(), &["state", &name]);
        (!st.stdout.contains("\"running\"")).then_some(())
    });
    assert!(upper.join("made-inside").is_file());
    rt(&e.state(), &["rm", "-f", &name]).ok();
    assert_gone(&e, &name);

    // A foreground sandbox (`--rm` is the default there).
    let name = unique_id();
    e.sandbox(&[
        "--rm",
        "--name",
        &name,
        "--read-only=false",
        "--image",
        &archive,
        "--",
        "sh",
        "-c",
        "echo x > /f && rm /etc/passwd && rm -r /bin",
    ])
    .ok();
    assert_gone(&e, &name);
    // Detached with --rm: its monitor unmounts and removes the root once
    // the command exits.
    let name = unique_id();
    let _rm2 = Removed {
        env: &e,
        name: name.clone(),
    };
    e.sandbox(&[
        "-d",
        "--rm",
        "--name",
        &name,
        "--read-only=false",
        "--image",
        &archive,
        "--",
        "sh",
        "-c",
        "echo x > /f",
    ])
    .ok();
    common::wait_for(
        "the sandbox to remove itself",
        common::cmd_timeout(),
        || (!Path::new(SANDBOXES).join(&name).exists()).then_some(()),
    );
    assert_gone(&e, &name);
    // None of the containers changed the image.
    assert_eq!(store_fingerprint(&e.store()), before);
    assert_store_consistent(&e.store());
}

/// One hostile image as an OCI layout with a benign file first.
fn hostile(e: &Env, i: usize, entries: &[fixtures::E]) -> PathBuf {
    let mut all = vec![fixtures::file("ok", b"fine")];
    all.extend(entries.iter().cloned());
    fixtures::oci_layout(
        &e.path(&format!("hostile-{i}")),
        &[fixtures::Layer::gz(fixtures::layer_tar(&all))],
        None,
    )
    .dir
}

#[test]
fn bad_images_are_refused_and_nothing_runs_or_escapes() {
    require_root!();
    skip_if!(is_runc(), "`sandbox` is a bulkhead command");
    let e = Env::new();
    let canary = e.path("canary");
    std::fs::create_dir(&canary).unwrap();
    std::fs::write(canary.join("file"), "canary").unwrap();
    let c = canary.display().to_string();
    let passwd = host_passwd();
    let archive = e.demo("demo.tar");
    let layout = e.demo("layout");

    let mut cases: Vec<(String, PathBuf, Vec<&str>)> = Vec::new();
    // Truncated archive: cut in the middle of the big layer.
    let data = std::fs::read(&archive).unwrap();
    let cut = e.path("truncated.tar");
    std::fs::write(&cut, &data[..data.len() / 2]).unwrap();
    cases.push(("truncated".into(), cut, vec!["truncated"]));
    // Not an image at all.
    let junk = e.path("junk.tar");
    std::fs::write(&junk, b"this is no tar archive").unwrap();
    cases.push(("junk".into(), junk, vec!["not an image", "corrupt"]));
    // A layer blob that does not match its digest (one byte changed).
    let bad = e.path("bad-digest");
    let o = Command::new("cp")
        .arg("-a")
        .arg(&layout)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(o.status.success());
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bad.join("index.json")).unwrap()).unwrap();
    let mhex = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bad.join("blobs/sha256").join(mhex)).unwrap())
            .unwrap();
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            bad.join("blobs/sha256").join(
                manifest["config"]["digest"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("sha256:"),
            ),
        )
        .unwrap(),
    )
    .unwrap();
    let diff_id = |i: usize| {
        config["rootfs"]["diff_ids"][i]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string()
    };
    let (good_diff_id, bad_diff_id) = (diff_id(0), diff_id(1));
    let lhex = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let blob = bad.join("blobs/sha256").join(lhex);
    let mut b = std::fs::read(&blob).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0xff;
    std::fs::write(&blob, b).unwrap();
    cases.push(("layer digest".into(), bad, vec!["digest mismatch"]));
    // A traversal corpus (the full one is in bulkhead-image's tests).
    use fixtures::{E, file, hardlink, symlink};
    let corpus: Vec<(&str, Vec<E>)> = vec![
        ("../../etc/passwd", vec![file("../../etc/passwd", b"x")]),
        ("absolute", vec![file(&format!("{c}/pwned"), b"x")]),
        (
            "symlink out, then a file through it",
            vec![symlink("evil", &c), file("evil/pwned", b"x")],
        ),
        ("hardlink to outside", vec![hardlink("h", "/etc/passwd")]),
        (
            "whiteout escaping the layer",
            vec![file("../.wh.passwd", b"")],
        ),
    ];
    for (i, (what, entries)) in corpus.iter().enumerate() {
        cases.push((what.to_string(), hostile(&e, i, entries), vec!["rejected"]));
    }
    for (what, path, needles) in &cases {
        let name = unique_id();
        let out = e.sandbox(&[
            "--name",
            &name,
            "--image",
            path.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "echo RAN",
        ]);
        out.fails_with(needles);
        assert_eq!(out.code(), Some(125), "{what}: {out}");
        assert!(
            out.stderr.contains("--image"),
            "{what}: the error names the flag: {out}"
        );
        assert!(!out.stdout.contains("RAN"), "{what}: {out}");
        assert_gone(&e, &name);
        // No image, and no layer of a refused one (the demo's first layer,
        // verified before the corrupt second one, may stay).
        assert!(
            std::fs::read_dir(e.store().join("images"))
                .unwrap()
                .next()
                .is_none(),
            "{what}: a refused image is in the store"
        );
        assert!(
            !e.store().join("layers").join(&bad_diff_id).exists(),
            "{what}: the corrupt layer is in the store"
        );
        for l in std::fs::read_dir(e.store().join("layers")).unwrap() {
            let l = l.unwrap().file_name();
            assert_eq!(
                l.to_str().unwrap(),
                good_diff_id,
                "{what}: layer {l:?} in the store"
            );
        }
        assert_store_consistent(&e.store());
    }
    assert_eq!(
        std::fs::read_dir(&canary).unwrap().count(),
        1,
        "something landed in the canary dir"
    );
    assert_eq!(
        std::fs::read_to_string(canary.join("file")).unwrap(),
        "canary"
    );
    assert_eq!(host_passwd(), passwd, "/etc/passwd changed");

    // A device node is skipped with a warning, never created.
    let dev = fixtures::oci_layout(
        &e.path("with-device"),
        &[
            fixtures::Layer::gz(fixtures::busybox_layer()),
            fixtures::Layer::gz(fixtures::layer_tar(&[E::Char("dev-null", 1, 3)])),
        ],
        None,
    )
    .dir;
    let out = e.sandbox(&["--image", dev.to_str().unwrap(), "--", "sh", "-c", "ls /"]);
    out.ok();
    assert!(
        out.stderr.contains("warning:") && out.stderr.contains("dev-null"),
        "{out}"
    );
    assert!(!out.stdout.contains("dev-null"), "{out}");

    // A reference that is neither a file nor an image in the store.
    let out = e.sandbox(&["--image", "./no-such.tar", "--", "true"]);
    out.fails_with(&["no such file"]);
    assert_eq!(out.code(), Some(125));
    let out = e.sandbox(&["--image", "no-such-image", "--", "true"]);
    out.fails_with(&["no image of that name or id in the store"]);
    assert_eq!(out.code(), Some(125));
    // With no store yet, a bad name creates none.
    let none = e.path("no-store");
    let out = rt(
        &e.state(),
        &[
            "sandbox",
            "--image-store",
            none.to_str().unwrap(),
            "--image",
            "no-such-image",
            "--",
            "true",
        ],
    );
    out.fails_with(&["does not exist yet"]);
    assert_eq!(out.code(), Some(125));
    assert!(!none.exists(), "a store was created for a bad name");
}

#[test]
fn progress_is_a_bar_on_a_terminal_and_plain_with_quiet() {
    require_root!();
    skip_if!(is_runc(), "`sandbox` is a bulkhead command");
    let Some(script) = fixtures::tool("script") else {
        eprintln!("skipped: script(1) (bsdutils) is not installed");
        return;
    };
    let e = Env::new();
    let archive = e.demo("demo.tar");
    // Under script(1), the sandbox's stderr is a terminal.
    let on_tty = |store: &str, quiet: bool| {
        let cmd = format!(
            "{} --root {} sandbox --image-store {} {} --image {} -- true",
            common::runtime().display(),
            e.state().display(),
            e.path(store).display(),
            if quiet { "--quiet" } else { "" },
            archive.display()
        );
        let o = Command::new(&script)
            .args(["-qec", &cmd, "/dev/null"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let live = on_tty("s1", false);
    assert!(live.contains("\r\x1b[Klayer 1/2 "), "{live:?}");
    assert!(live.contains("] 100% "), "{live:?}");
    assert!(
        live.contains("layer 2/2 ") && live.contains(": unpacked"),
        "{live:?}"
    );
    let quiet = on_tty("s2", true);
    assert!(!quiet.contains('\x1b') && !quiet.contains('%'), "{quiet:?}");
    assert!(
        quiet.contains("layer 1/2 ") && quiet.contains(": unpacked"),
        "{quiet:?}"
    );
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

#[test]
fn print_spec_with_an_image_has_its_config_and_creates_nothing() {
    skip_if!(is_runc(), "`sandbox` is a bulkhead command");
    if !common::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let e = Env::new();
    let archive = e.demo("demo.tar");
    let archive = archive.to_str().unwrap();
    let spec = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--print-spec"];
        all.extend_from_slice(args);
        let out = e.sandbox(&all);
        out.ok();
        serde_json::from_str(&out.stdout).unwrap_or_else(|err| panic!("{err}: {out}"))
    };
    // Not imported: read from the archive; the store is not even created.
    let v = spec(&["--image", archive]);
    assert_eq!(v["process"]["args"], serde_json::json!(["/demo"]), "{v:#}");
    let env: Vec<&str> = v["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(env.contains(&"HOME=/root"), "{env:?}");
    assert_eq!(v["process"]["cwd"], "/");
    assert!(!e.store().exists(), "--print-spec created the store");
    // -e, -w and a command still win over the image's.
    let v = spec(&[
        "--image", archive, "-e", "HOME=/x", "-w", "/tmp", "--", "id",
    ]);
    assert_eq!(v["process"]["args"], serde_json::json!(["id"]));
    assert!(
        v["process"]["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "HOME=/x")
    );
    assert_eq!(v["process"]["cwd"], "/tmp");
    // By name once imported, accounts from its layers.
    e.sandbox(&["--image", archive, "--", "true"]).ok();
    let v = spec(&["--image", "bulkhead-demo:latest", "-u", "nobody"]);
    assert_eq!(v["process"]["args"], serde_json::json!(["/demo"]));
    assert_eq!(v["process"]["user"]["uid"], 65534, "{v:#}");
    // An unknown name: an error naming --image, nothing printed.
    let out = e.sandbox(&["--print-spec", "--image", "no-such-image"]);
    out.fails_with(&["--image \"no-such-image\"", "no such file"]);
    assert!(out.stdout.is_empty(), "{out}");
}

/// Root never runs what another user could change: a store (or a directory
/// above it) owned by another user, or writable by group/others, is refused
/// before anything is read from it or created in it.
#[test]
fn root_refuses_a_store_another_user_can_change() {
    require_root!();
    skip_if!(is_runc(), "sandbox is a bulkhead command");
    let e = Env::new();
    let owned = e.path("users-store");
    std::fs::create_dir(&owned).unwrap();
    std::os::unix::fs::chown(&owned, Some(65534), Some(65534)).unwrap();
    let under = e.path("users-dir");
    std::fs::create_dir(&under).unwrap();
    std::os::unix::fs::chown(&under, Some(65534), Some(65534)).unwrap();
    let open = e.path("open-store");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let cases = [
        (owned.clone(), "owned by uid 65534"),
        (under.join("images"), "owned by uid 65534"),
        (open.clone(), "writable by group or others"),
    ];
    for (store, needle) in cases {
        let out = rt(
            &e.state(),
            &[
                "sandbox",
                "--image-store",
                store.to_str().unwrap(),
                "--image",
                "some-image",
                "--",
                "true",
            ],
        );
        out.fails_with(&[needle]).fails_with(&["--image-store"]);
        assert_eq!(out.code(), Some(125), "{out}");
        assert!(
            !store.join("layers").exists(),
            "{}: store used",
            store.display()
        );
    }
    assert!(!under.join("images").exists());
}
