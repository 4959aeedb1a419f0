//! The shared test rootfs: static busybox with its applets, the probe and
//! the shared libraries it needs, a few directories and account files.
//!
//! It is built once into `target/test-rootfs/<hash>` (the hash covers the
//! inputs), via a temp directory renamed into place, so parallel test
//! processes either build it or reuse the first finished copy.

use std::collections::BTreeSet;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Runs `import` (e.g. `podman import - IMAGE`) with the test rootfs as a
/// tar stream on its stdin, and asserts that it succeeds.
#[track_caller]
pub fn import_rootfs(mut import: Command, io_dir: &Path) {
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(rootfs())
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    import.stdin(tar.stdout.take().unwrap());
    let out = super::run_cmd(import, io_dir, super::cmd_timeout());
    tar.wait().unwrap();
    out.ok();
}

/// Where the probe lives inside the rootfs.
pub const PROBE: &str = "/bin/bulkhead-probe";

/// Host busybox to copy (Debian `busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";

/// Bump when the layout below changes.
const LAYOUT_VERSION: u32 = 4;

const DIRS: &[(&str, u32)] = &[
    ("bin", 0o755),
    ("sbin", 0o755),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("dev", 0o755),
    ("tmp", 0o1777),
    ("etc", 0o755),
    ("root", 0o700),
    ("home", 0o755),
    ("home/tester", 0o755),
    ("run", 0o755),
    ("var", 0o755),
    // Mount points for tests (the rootfs is shared and read-only, so the
    // runtime must never need to create them).
    ("mnt", 0o755),
    ("mnt/a", 0o755),
    ("mnt/b", 0o755),
    ("mnt/c", 0o755),
    ("mnt/d", 0o755),
    ("data", 0o755),
    ("opt", 0o755),
    ("opt/secret", 0o755),
    ("opt/secret/sub", 0o755),
];

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
tester:x:1000:1000:tester:/home/tester:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

const GROUP: &str = "root:x:0:\n\
tester:x:1000:\n\
extra:x:2000:tester\n\
nogroup:x:65534:\n";

/// The shared rootfs (built on first use).
pub fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(build_or_reuse)
}

/// Shared libraries (and the loader) that `ldd` lists for `bin`.
fn ldd_paths(bin: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ldd: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut paths = BTreeSet::new();
    for line in text.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x…)"; the vdso has no path.
        let candidate = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = candidate
            && p.starts_with('/')
        {
            paths.insert(PathBuf::from(p));
        }
    }
    paths.into_iter().collect()
}

fn busybox_applets() -> Vec<String> {
    let out = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {BUSYBOX} --list: {e} (apt-get install busybox-static)")
        });
    assert!(out.status.success(), "{BUSYBOX} --list failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains('/'))
        .map(str::to_string)
        .collect()
}

fn inside(root: &Path, abs: &Path) -> PathBuf {
    root.join(abs.strip_prefix("/").unwrap_or(abs))
}

fn copy_exec(src: &Path, dst: &Path) {
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent).expect("mkdir for copy");
    }
    // fs::copy follows symlinks, so dst gets the real content.
    fs::copy(src, dst)
        .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", src.display(), dst.display()));
    fs::set_permissions(dst, fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn build_or_reuse() -> PathBuf {
    let probe = super::probe_bin();
    let busybox = Path::new(BUSYBOX);
    assert!(
        busybox.is_file(),
        "{BUSYBOX} is missing: apt-get install busybox-static (scripts/install-deps.sh)"
    );
    let mut libs = ldd_paths(&probe);
    libs.extend(ldd_paths(busybox));
    libs.sort();
    libs.dedup();

    let mut h = DefaultHasher::new();
    LAYOUT_VERSION.hash(&mut h);
    for p in [&probe, &busybox.to_path_buf()]
        .into_iter()
        .chain(libs.iter())
    {
        p.hash(&mut h);
        fs::read(p)
            .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
            .hash(&mut h);
    }
    let base = super::target_dir().join("test-rootfs");
    let final_dir = base.join(format!("{:016x}", h.finish()));
    if final_dir.join(".complete").exists() {
        return final_dir;
    }
    fs::create_dir_all(&base).expect("create target/test-rootfs");
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).expect("chmod");
    let tmp = base.join(format!(
        ".tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir(&tmp).expect("create temp rootfs");

    for (d, mode) in DIRS {
        let p = tmp.join(d);
        fs::create_dir_all(&p).expect("mkdir");
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).expect("chmod");
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).expect("chmod root");
    rustix::fs::chown(
        tmp.join("home/tester"),
        Some(rustix::fs::Uid::from_raw(1000)),
        Some(rustix::fs::Gid::from_raw(1000)),
    )
    .expect("chown home/tester");

    copy_exec(busybox, &inside(&tmp, busybox));
    for applet in busybox_applets() {
        let link = tmp.join("bin").join(&applet);
        if !link.exists() {
            symlink("busybox", &link).expect("applet symlink");
        }
    }
    copy_exec(&probe, &inside(&tmp, Path::new(PROBE)));
    for lib in &libs {
        copy_exec(lib, &inside(&tmp, lib));
    }

    // An absolute symlink used as a mount destination: it must resolve
    // inside the rootfs (to /mnt/d), never on the host.
    symlink("/mnt/d", tmp.join("linkdir")).expect("linkdir symlink");

    fs::write(tmp.join("etc/passwd"), PASSWD).expect("passwd");
    fs::write(tmp.join("etc/group"), GROUP).expect("group");
    fs::write(tmp.join("etc/hostname"), "rootfs\n").expect("hostname");
    // Content for maskedPaths tests.
    fs::write(tmp.join("opt/secret.txt"), "top secret\n").expect("secret file");
    fs::write(tmp.join("opt/secret/file"), "hidden\n").expect("secret dir file");
    for f in [
        "etc/passwd",
        "etc/group",
        "etc/hostname",
        "opt/secret.txt",
        "opt/secret/file",
    ] {
        fs::set_permissions(tmp.join(f), fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    fs::write(tmp.join(".complete"), "").expect("marker");

    match fs::rename(&tmp, &final_dir) {
        Ok(()) => {
            prune_stale(&base, &final_dir);
            final_dir
        }
        Err(_) if final_dir.join(".complete").exists() => {
            // Another test process won the race; use its copy.
            let _ = fs::remove_dir_all(&tmp);
            final_dir
        }
        Err(e) => panic!("rename {} -> {}: {e}", tmp.display(), final_dir.display()),
    }
}

/// Removes rootfs copies of older builds (any finished sibling directory).
fn prune_stale(base: &Path, keep: &Path) {
    let Ok(rd) = fs::read_dir(base) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p != keep && !name.starts_with('.') && p.join(".complete").exists() {
            let _ = fs::remove_dir_all(&p);
        }
    }
}
