//! Escape-class regression tests (docs/security.md): each attempts the
//! attack against a real container and asserts it fails.

#[macro_use]
mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Bundle, PROBE, RtOutput, is_runc};
use serde_json::{Value, json};

/// CVE-2019-5736: while the init still runs the runtime binary (between
/// create and start), opening /proc/<init>/exe for writing must fail.
#[test]
fn runtime_binary_not_writable_through_proc_exe() {
    require_root!();
    let b = Bundle::new().args(&["/bin/true"]);
    let pid_file = b.dir().join("init.pid");
    b.create_with(&["--pid-file", pid_file.to_str().unwrap()])
        .ok();
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let exe = format!("/proc/{pid}/exe");
    let res = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&exe);
    if let Ok(mut f) = res {
        let _ = f.write_all(b"");
        panic!("{exe} could be opened for writing");
    }
    if !is_runc() {
        // bulkhead's own protection: the binary runs from a read-only mount
        // (or a sealed memfd), not just from "text file busy".
        let st = rustix::fs::statvfs(exe.as_str()).unwrap();
        let ro = st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY);
        let sealed = std::fs::File::open(&exe)
            .ok()
            .and_then(|f| rustix::fs::fcntl_get_seals(&f).ok())
            .is_some_and(|s| s.contains(rustix::fs::SealFlags::WRITE));
        assert!(
            ro || sealed,
            "init's exe is neither on a read-only mount nor sealed"
        );
    }
}

/// The protective re-execution of CVE-2019-5736 happens at the executable's
/// entry point (bulkhead-sys, entry.rs), before the C library and Rust's
/// runtime start: the runtime process's `execveat` comes before its first
/// `sigaltstack` (Rust's runtime start-up). A command that enters no
/// container does not re-execute, nor does a binary that already runs from a
/// read-only mount; and the re-executed process runs from a read-only mount.
#[test]
fn protective_reexec_happens_at_the_entry_point() {
    require_root!();
    skip_if!(is_runc(), "bulkhead's own entry point");
    skip_if!(
        !cfg!(target_arch = "x86_64"),
        "the entry point is written for x86_64 only"
    );
    skip_if!(
        !common::user::tool("strace"),
        "needs strace (scripts/install-deps.sh installs it)"
    );
    let b = Bundle::new().args(&["/bin/true"]);
    b.write_config();
    let trace = b.dir().join("trace");
    let dir = b.dir().to_str().unwrap().to_string();
    // The system calls of the runtime process itself (no -f), by name.
    let calls = |bin: &Path, args: &[&str]| -> Vec<String> {
        let mut cmd = std::process::Command::new("strace");
        cmd.arg("-o")
            .arg(&trace)
            .args(["-e", "trace=execve,execveat,sigaltstack,mount_setattr"])
            .arg(bin)
            .arg("--root")
            .arg(b.state_root())
            .args(args);
        b.exec(cmd).ok();
        let text = fs::read_to_string(&trace).unwrap();
        text.lines()
            .filter_map(|l| {
                let name = l.split('(').next()?;
                (!name.starts_with("+++") && !name.starts_with("---"))
                    .then(|| format!("{name}{}", if l.ends_with("= 0") { "" } else { "!" }))
            })
            .collect()
    };
    let rt = common::runtime();
    let run = ["run", "--bundle", &dir, &b.id];
    let seen = calls(&rt, &run);
    assert!(
        seen.len() > 3 && seen[..3] == ["execve", "mount_setattr", "execveat"],
        "expected execve, mount_setattr (read-only) and execveat before anything else: {seen:?}"
    );
    assert!(
        seen[3..].iter().any(|c| c == "sigaltstack"),
        "Rust's runtime did not start after the re-execution: {seen:?}"
    );
    assert!(
        !seen[3..].iter().any(|c| c.starts_with("execveat")),
        "re-executed twice: {seen:?}"
    );

    let seen = calls(&rt, &["list"]);
    assert!(
        !seen.iter().any(|c| c.starts_with("execveat")),
        "`list` enters no container but re-executed: {seen:?}"
    );

    // From a read-only bind mount of the binary's directory: protected as it is.
    let ro = b.scratch("ro");
    let bin_dir = rt.parent().unwrap();
    let mount = |args: &[&str]| {
        let st = std::process::Command::new("mount")
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "mount {args:?}");
    };
    mount(&["--bind", bin_dir.to_str().unwrap(), ro.to_str().unwrap()]);
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(ro.clone());
    mount(&["-o", "remount,bind,ro", ro.to_str().unwrap()]);
    let seen = calls(&ro.join(rt.file_name().unwrap()), &run);
    assert!(
        !seen.iter().any(|c| c.starts_with("execveat")),
        "a binary on a read-only mount re-executed: {seen:?}"
    );
}

/// CVE-2019-19921 class: a /proc mount destination that is a symlink in the
/// image is refused.
#[test]
fn symlinked_proc_destination_is_refused() {
    require_root!();
    skip_if!(
        is_runc(),
        "the shared test rootfs has no symlinked /proc; covered for bulkhead only"
    );
    let b = Bundle::new().args(&["/bin/true"]).json_patch(|c| {
        // /linkdir is a symlink in the test rootfs (to /mnt/d).
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/linkdir", "type": "proc", "source": "proc"
        }));
    });
    b.create().fails_with(&["symlink"]);
}

// ------------------------------------------------------------ helpers --

/// A private, writable copy of the test rootfs inside the bundle, used as
/// the container's root (the image an attacker controls).
fn private_root(b: Bundle) -> (Bundle, PathBuf) {
    let dst = b.dir().join("rootfs");
    let st = std::process::Command::new("cp")
        .args(["-a", common::rootfs().to_str().unwrap()])
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a rootfs");
    let p = dst.to_str().unwrap().to_owned();
    let b = b.json_patch(|c| {
        c["root"]["path"] = json!(p);
        c["root"]["readonly"] = json!(false);
    });
    (b, dst)
}

/// Drops the config's /dev tmpfs, so /dev is the image's own directory (as
/// with a shared or image-provided /dev); devpts and the rest stay.
fn image_dev(b: Bundle) -> Bundle {
    b.json_patch(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/dev")
    })
}

fn replace_with_symlink(path: &Path, target: &Path) {
    if path.is_dir() && !path.is_symlink() {
        fs::remove_dir_all(path).unwrap();
    } else {
        let _ = fs::remove_file(path);
    }
    symlink(target, path).unwrap();
}

/// A host directory holding one marker file; returns (guard, dir, marker).
fn host_dir_with_marker() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let d = common::open_tempdir();
    let marker = d.path().join("HOST-MARKER");
    fs::write(&marker, "host data\n").unwrap();
    let dir = d.path().to_path_buf();
    (d, dir, marker)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The host file is exactly as it was: content, owner, mode.
#[track_caller]
fn assert_untouched(path: &Path, content: &str, what: &str) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        fs::read_to_string(path).unwrap(),
        content,
        "{what}: content"
    );
    assert_eq!((m.uid(), m.gid()), (0, 0), "{what}: owner changed");
    assert_eq!(m.mode() & 0o7777, 0o644, "{what}: mode changed");
}

/// The probe's `stat` of `path` inside a container built from `b`.
fn stat_in(b: Bundle, path: &str) -> (RtOutput, Value) {
    let b = b.probe(&["stat", path]);
    let out = b.run();
    let v = common::parse_last_json(&out.stdout).unwrap_or(Value::Null);
    (out, v)
}

// -------------------------------------------------------- the attacks --

/// CVE-2019-5736 through `exec`: while the exec'd process still runs the
/// runtime binary (held there by the fault hook), /proc/<pid>/exe cannot be
/// opened for writing.
#[test]
fn runtime_binary_not_writable_through_an_exec_process() {
    require_root!();
    skip_if!(
        is_runc() || !cfg!(debug_assertions),
        "holding the exec process needs bulkhead's debug-build fault hook"
    );
    let b = Bundle::new().probe(&["sleep", "600"]);
    b.create().ok();
    b.start().ok();
    let err = b.io_dir().join("exec-hang.stderr");
    let mut child = b
        .rt_command()
        .args(["exec", &b.id, "/bin/true"])
        .env("BULKHEAD_FAULT", "exec.before-ready=hang")
        .env("BH_EXE_TAG", &b.id)
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    common::wait_for("the exec process to hang", Duration::from_secs(30), || {
        fs::read_to_string(&err)
            .ok()
            .filter(|s| s.contains("reached"))
            .map(drop)
    });
    let tag = format!("BH_EXE_TAG={}\0", b.id);
    let pids: Vec<i32> = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|p: &i32| {
            *p as u32 != child.id()
                && fs::read(format!("/proc/{p}/environ"))
                    .is_ok_and(|e| e.windows(tag.len()).any(|w| w == tag.as_bytes()))
        })
        .collect();
    assert!(!pids.is_empty(), "no exec process found");
    for pid in pids {
        let exe = format!("/proc/{pid}/exe");
        let res = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&exe);
        assert!(
            res.is_err(),
            "{exe} (the runtime) could be opened for writing"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// CVE-2024-21626 ("Leaky Vessels"): `process.cwd` and `exec --cwd` of
/// `/proc/self/fd/N` for every fd the runtime might hold, with a host
/// directory leaked into the runtime on fd 3 (as a shim may) and the
/// runtime itself started in a host directory: the process must never get
/// a working directory outside the container. Also runs against runc: 1.1.5
/// is vulnerable to the CVE (fixed in 1.1.12) through the cgroup2
/// manager's leaked /sys/fs/cgroup fd, but on this hybrid host its init
/// holds no directory fd, so it passes here.
#[test]
fn leaked_fd_cannot_become_the_cwd() {
    require_root!();
    let (_host, host_dir, _marker) = host_dir_with_marker();
    // getcwd(2) says "(unreachable)" for a cwd outside the process's root;
    // the marker would show up if the cwd were the leaked host directory.
    let outside = |out: &RtOutput| {
        out.stdout.contains("HOST-MARKER")
            || common::parse_last_json(&out.stdout)
                .is_some_and(|r| !r["cwd"].as_str().is_some_and(|c| c.starts_with('/')))
    };
    for n in 3..=12 {
        let cwd = format!("/proc/self/fd/{n}");
        let b = Bundle::new().cwd(&cwd).probe(&["report"]);
        b.write_config();
        let dir = b.dir().to_str().unwrap().to_owned();
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.current_dir(&host_dir)
            .arg("-c")
            .arg("exec \"$@\" 3<\"$BH_FD3\"")
            .arg("sh")
            .arg(common::runtime())
            .arg("--root")
            .arg(b.state_root())
            .args(["run", "--bundle", &dir, &b.id])
            .env("BH_FD3", &host_dir)
            .stdin(std::process::Stdio::null());
        let out = b.exec(cmd);
        assert!(!outside(&out), "process.cwd {cwd} reached the host: {out}");
    }
    // A host directory handed over on purpose (--preserve-fds) is still
    // no way out: the cwd is checked after pivot_root.
    let b = Bundle::new().cwd("/proc/self/fd/3").probe(&["report"]);
    let out = b.rt_with_fd3(
        &host_dir,
        &[
            "run",
            "--preserve-fds",
            "1",
            "--bundle",
            b.dir().to_str().unwrap(),
            &b.id,
        ],
    );
    assert!(!outside(&out), "a preserved host fd became the cwd: {out}");
    let b = Bundle::new().probe(&["sleep", "600"]);
    b.create().ok();
    b.start().ok();
    for n in 3..=12 {
        let cwd = format!("/proc/self/fd/{n}");
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.current_dir(&host_dir)
            .arg("-c")
            .arg("exec \"$@\" 3<\"$BH_FD3\"")
            .arg("sh")
            .arg(common::runtime())
            .arg("--root")
            .arg(b.state_root())
            .args(["exec", "--cwd", &cwd, &b.id, PROBE, "report"])
            .env("BH_FD3", &host_dir)
            .stdin(std::process::Stdio::null());
        let out = b.exec(cmd);
        assert!(!outside(&out), "exec --cwd {cwd} reached the host: {out}");
    }
    // No --cwd at all while the runtime sits in a host directory.
    let mut cmd = b.rt_command();
    cmd.current_dir(&host_dir)
        .args(["exec", &b.id, PROBE, "report"]);
    let out = b.exec(cmd);
    out.ok();
    assert!(!outside(&out), "exec from a host cwd: {out}");
}

/// CVE-2022-29162: inheritable capabilities. A non-root process executing
/// a file with inheritable+effective file capabilities gains nothing,
/// because neither the config nor `exec --cap` makes any capability
/// inheritable. runc 1.1.5 has the fix (1.1.2), so this runs against both.
#[test]
fn file_inheritable_capabilities_grant_nothing() {
    require_root!();
    skip_if!(
        std::process::Command::new("setcap")
            .arg("-v")
            .output()
            .is_err(),
        "setcap (libcap2-bin) is not installed"
    );
    let (b, root) = private_root(Bundle::new().probe(&["sleep", "600"]));
    let capprobe = root.join("bin/capprobe");
    fs::copy(root.join(PROBE.trim_start_matches('/')), &capprobe).unwrap();
    let st = std::process::Command::new("setcap")
        .arg("cap_net_raw,cap_sys_admin,cap_dac_override+ei")
        .arg(&capprobe)
        .status()
        .unwrap();
    assert!(st.success(), "setcap");
    // No inheritable set in the config, bounding includes what the file asks.
    let caps = json!(["CAP_NET_RAW", "CAP_KILL"]);
    let b = b.user(1000, 1000, &[]).json_patch(|c| {
        c["process"]["capabilities"] =
            json!({"bounding": caps, "effective": [], "permitted": [], "ambient": []});
        c["process"]["noNewPrivileges"] = json!(false);
    });
    b.create().ok();
    b.start().ok();
    let report = |extra: &[&str]| -> Value {
        let mut args = vec!["exec"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&b.id, "/bin/capprobe", "report"]);
        let out = b.rt(&args);
        out.ok();
        out.json()
    };
    for extra in [&[][..], &["--cap", "CAP_NET_RAW"][..]] {
        let r = report(extra);
        for set in ["CapInh", "CapPrm", "CapEff"] {
            let v = r["status"][set].as_str().unwrap_or("?");
            assert_eq!(
                common::cap_mask(v),
                0,
                "exec {extra:?}: {set} of a non-root process running a file with \
                 inheritable caps is {v}: {r}"
            );
        }
    }
}

/// CVE-2023-25809 (rootful analogue): a container whose root is not host
/// root (user namespace) and that has no cgroup namespace is given a
/// cgroup mount without `ro`: it must still not be able to change the
/// host's cgroup tree. The rootless form of this CVE is in rootless.rs.
#[test]
fn host_cgroupfs_is_not_writable_from_a_user_namespace() {
    require_root!();
    let name = format!("bh-escape-{}", std::process::id());
    let b = Bundle::new()
        .userns(&[(0, 100000, 65536)], &[(0, 100000, 65536)])
        .without_namespace("cgroup")
        .json_patch(|c| {
            for m in c["mounts"].as_array_mut().unwrap() {
                if m["type"] == "cgroup" {
                    m["options"] = json!(["nosuid", "noexec", "nodev"]);
                }
            }
        })
        .sh(&format!(
            "for d in /sys/fs/cgroup/*/; do mkdir \"$d{name}\" 2>/dev/null && echo MADE $d; done; \
             echo 1 > /sys/fs/cgroup/pids/pids.max 2>/dev/null && echo WROTE; echo done"
        ));
    let out = b.run();
    out.ok();
    assert!(out.stdout.contains("done"), "{out}");
    assert!(
        !out.stdout.contains("MADE") && !out.stdout.contains("WROTE"),
        "{out}"
    );
    let made: Vec<_> = fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|e| e.path().join(&name))
        .filter(|p| p.exists())
        .collect();
    for p in &made {
        let _ = fs::remove_dir(p);
    }
    assert!(made.is_empty(), "the container made host cgroups: {made:?}");
}

/// CVE-2025-31133: /dev/null in the image is a symlink to a procfs file
/// the attacker wants writable (the kernel's core_pattern). Masking must
/// never bind that file over the masked paths: either create refuses, or
/// every masked file is the real null device.
#[test]
fn masking_never_binds_a_symlinked_dev_null() {
    require_root!();
    skip_if!(
        is_runc(),
        "runc 1.1.5 is vulnerable to CVE-2025-31133 (fixed in runc 1.2.8)"
    );
    let core_pattern = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let (b, root) = private_root(image_dev(Bundle::new()));
    fs::create_dir_all(root.join("dev")).unwrap();
    replace_with_symlink(
        &root.join("dev/null"),
        Path::new("/proc/sys/kernel/core_pattern"),
    );
    // /proc/keys: masked in the base config and present on every kernel
    // (unlike /proc/kcore).
    let (out, v) = stat_in(b, "/proc/keys");
    if out.success() {
        assert_eq!(
            (v["type"].as_str(), v["major"].as_u64(), v["minor"].as_u64()),
            (Some("char"), Some(1), Some(3)),
            "/proc/keys is not masked by the null device: {out}"
        );
    } else {
        assert!(out.stderr.contains("/dev/null"), "unclear refusal: {out}");
    }
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        core_pattern
    );
}

/// CVE-2025-52565 and crun CVE-2026-88264: /dev/console in the image is a
/// symlink (to a host path and to a procfs file). With a terminal, the
/// console must be the container's pty, never the symlink's target.
#[test]
fn console_is_never_a_symlinked_file() {
    require_root!();
    skip_if!(
        is_runc(),
        "runc 1.1.5 is vulnerable to CVE-2025-52565 (fixed in runc 1.2.8)"
    );
    use common::console::ConsoleSocket;
    let (_host, _dir, marker) = host_dir_with_marker();
    for target in [marker.as_path(), Path::new("/proc/sys/kernel/core_pattern")] {
        let (b, root) = private_root(image_dev(Bundle::new().terminal(true)));
        fs::create_dir_all(root.join("dev")).unwrap();
        replace_with_symlink(&root.join("dev/console"), target);
        let b = b.probe(&["stat", "/dev/console"]);
        let sock = ConsoleSocket::new();
        let out = b.create_with(&["--console-socket", sock.path().to_str().unwrap()]);
        if out.success() {
            let master = sock.master();
            let mut reader = common::console::PtyReader::new(&master);
            b.start().ok();
            let text = reader.read_to_end(Duration::from_secs(15));
            let v = common::parse_last_json(&text.replace('\r', ""))
                .unwrap_or_else(|| panic!("no probe output: {text:?}"));
            assert_eq!(v["type"], "char", "console is not a char device: {v}");
            assert_eq!(v["major"], 136, "console is not a pty: {v}");
        } else {
            assert!(out.stderr.contains("console"), "unclear refusal: {out}");
        }
        assert_untouched(&marker, "host data\n", "console target");
    }
}

/// crun CVE-2026-88265: /dev/null in the image is a symlink to a host file;
/// whatever the runtime does with stdio and /dev/null for a non-root
/// process, the host file is neither written nor chowned.
#[test]
fn dev_null_symlink_never_reaches_a_host_file() {
    require_root!();
    let (_host, _dir, marker) = host_dir_with_marker();
    fs::set_permissions(&marker, fs::Permissions::from_mode(0o644)).unwrap();
    let (b, root) = private_root(image_dev(Bundle::new()));
    fs::create_dir_all(root.join("dev")).unwrap();
    replace_with_symlink(&root.join("dev/null"), &marker);
    let b = b
        .user(1000, 1000, &[])
        .sh("echo pwned > /dev/null; echo pwned 2>/dev/null >&2; echo done");
    let out = b.run();
    // Refusing is fine (bulkhead and runc both do); reaching the host is not.
    assert!(out.code().is_some(), "{out}");
    assert_untouched(&marker, "host data\n", "/dev/null target");
}

/// CVE-2025-52881 (and CVE-2019-16884): a symlink in the image sends a
/// mount destination into /proc, so that the runtime's procfs writes
/// (sysctl, oom_score_adj) would land in attacker files. They must reach
/// the real procfs or the create must be refused.
#[test]
fn procfs_writes_cannot_be_redirected_by_a_mount() {
    require_root!();
    // runc 1.1.5 passes this static form too; the CVE's racing form (a
    // shared mount swapped under it) is what runc fixed in 1.2.8.
    let (_host, host_dir, _marker) = host_dir_with_marker();
    // Fake procfs files: what the runtime would write into if redirected.
    for f in ["domainname", "hostname"] {
        fs::write(host_dir.join(f), "fake\n").unwrap();
    }
    let (b, root) = private_root(Bundle::new());
    replace_with_symlink(&root.join("evil"), Path::new("/proc/sys"));
    let hd = host_dir.to_str().unwrap().to_owned();
    let b = b
        .json_patch(|c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/evil/kernel", "type": "bind", "source": hd,
                "options": ["rbind", "rw"]
            }));
            c["linux"]["sysctl"] = json!({"kernel.domainname": "escaped"});
            c["linux"]["readonlyPaths"] = json!([]);
            c["process"]["oomScoreAdj"] = json!(321);
        })
        .sh("cat /proc/self/oom_score_adj; cat /proc/sys/kernel/domainname; uname -a >/dev/null");
    let out = b.run();
    if out.success() {
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines.first(), Some(&"321"), "{out}");
    } else {
        assert!(out.code().is_some_and(|c| c != 101), "crash: {out}");
    }
    assert_eq!(
        fs::read_to_string(host_dir.join("domainname")).unwrap(),
        "fake\n"
    );
    assert_eq!(
        fs::read_to_string(host_dir.join("hostname")).unwrap(),
        "fake\n"
    );
}

/// crun CVE-2026-133553 (and CVE-2019-18837): a `tmpcopyup` tmpfs whose
/// destination is a symlink in the image to a host directory, statically
/// and swapped back and forth while containers are created. Nothing may
/// be copied onto, mounted over or created in the host directory.
#[test]
fn tmpcopyup_never_copies_onto_the_host() {
    require_root!();
    let (_host, host_dir, marker) = host_dir_with_marker();
    let (b, root) = private_root(Bundle::new().args(&["/bin/true"]));
    let b = b
        .mount("/data", "tmpfs", "tmpfs", &["tmpcopyup", "size=1m"])
        .watch_mounts(host_dir.to_str().unwrap());
    let data = root.join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("IMAGE-FILE"), "image\n").unwrap();
    // Static: /data -> host dir.
    let swapped = root.join("data-link");
    symlink(&host_dir, &swapped).unwrap();
    fs::rename(&data, root.join("data-dir")).unwrap();
    fs::rename(&swapped, &data).unwrap();
    let out = b.run();
    assert!(out.code().is_some_and(|c| c != 101), "crash: {out}");
    assert_eq!(entries(&host_dir), ["HOST-MARKER"], "static symlink: {out}");
    // Racing: swap /data between the image directory and the symlink.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racer = {
        let stop = stop.clone();
        // /data is the symlink now, /data-dir the image's directory.
        let (data, dir) = (data.clone(), root.join("data-dir"));
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    &data,
                    rustix::fs::CWD,
                    &dir,
                    rustix::fs::RenameFlags::EXCHANGE,
                );
            }
        })
    };
    for _ in 0..20 {
        let out = b.run();
        assert!(out.code().is_some_and(|c| c != 101), "crash: {out}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    racer.join().unwrap();
    assert_eq!(entries(&host_dir), ["HOST-MARKER"], "racing symlink");
    assert_untouched(&marker, "host data\n", "host marker");
}

/// Masked-path bypass: without CAP_SYS_ADMIN the container can neither
/// unmount a mask nor mount a fresh procfs to read around it.
#[test]
fn masks_cannot_be_removed_or_bypassed() {
    require_root!();
    let b = Bundle::new().sh("umount /proc/keys 2>/dev/null && echo UNMOUNTED; \
         umount -l /proc/timer_list 2>/dev/null && echo UNMOUNTED; \
         mkdir -p /tmp/p 2>/dev/null; mount -t proc proc /tmp/p 2>/dev/null && echo MOUNTED; \
         echo keys=$(head -c 16 /proc/keys | wc -c) \
              via_root=$(head -c 16 /proc/1/root/proc/keys | wc -c) \
              timers=$(head -c 16 /proc/self/root/proc/timer_list | wc -c)");
    let out = b.readonly(false).run();
    out.ok();
    assert!(!out.stdout.contains("UNMOUNTED"), "{out}");
    assert!(!out.stdout.contains("MOUNTED"), "{out}");
    assert!(
        out.stdout.contains("keys=0 via_root=0 timers=0"),
        "masked content readable: {out}"
    );
}

/// crun CVE-2026-30892: `exec --user` strings are parsed exactly: numeric
/// ids land as given, anything malformed is refused (never uid 0 by
/// accident).
#[test]
fn exec_user_strings_are_parsed_exactly() {
    require_root!();
    skip_if!(
        is_runc(),
        "runc 1.1.5 runs `exec --user 4294967296` as uid 0 (the id is truncated \
         to 32 bits): vulnerable to this class"
    );
    let b = Bundle::new().probe(&["sleep", "600"]);
    b.create().ok();
    b.start().ok();
    for (user, want) in [
        ("1000", Some((1000, 0))),
        ("1000:1001", Some((1000, 1001))),
        ("0:0", Some((0, 0))),
        ("4294967294:5", Some((4294967294, 5))),
    ] {
        let out = b.rt(&["exec", "--user", user, &b.id, PROBE, "report"]);
        out.ok();
        let r = out.json();
        assert_eq!(
            (r["uid"].as_u64(), r["gid"].as_u64()),
            (want.map(|w| w.0), want.map(|w| w.1)),
            "--user {user}: {r}"
        );
    }
    // An empty group means "the user's own" for bulkhead (libcontainer's
    // user-spec rule: gid 0 for an id without a passwd entry, the same as
    // no group); runc's exec refuses it. Either, never anything else.
    let out = b.rt(&["exec", "--user", "1000:", &b.id, PROBE, "report"]);
    if out.success() {
        let r = out.json();
        assert_eq!(
            (r["uid"].as_u64(), r["gid"].as_u64()),
            (Some(1000), Some(0)),
            "{r}"
        );
    }
    for user in [
        "-1",
        "4294967295",
        "4294967296",
        "1000:-1",
        "1000:4294967295",
        "1000:abc",
        "1000:1000:1000",
        "",
        ":",
        " 1000",
        "0x10",
        "1e3",
        "no-such-user",
    ] {
        let out = b.rt(&["exec", "--user", user, &b.id, PROBE, "report"]);
        if out.success() {
            panic!("--user {user:?} was accepted: {out}");
        }
        assert!(
            out.code().is_some_and(|c| c != 101),
            "crash on {user:?}: {out}"
        );
    }
}

// ------------------------------------------------------ seccomp learning --

const LEARN_ANNOTATION: &str = "io.bulkhead.seccomp.learn";

/// A file root must not lose: "victim" content outside the bundle.
fn victim(dir: &Path) -> PathBuf {
    let v = dir.join("victim");
    fs::write(&v, "root:secret\n").unwrap();
    v
}

/// The config's author (a pod author, through containerd's annotations)
/// names where root writes the learned profile: only a new file (or a
/// learned one) directly in the bundle directory, never a host file, never
/// through a symlink or `..`, never the bundle's own files.
#[test]
fn learn_annotation_cannot_write_outside_the_bundle() {
    require_root!();
    skip_if!(is_runc(), "the annotation is a bulkhead extension");
    let outside = common::open_tempdir();
    let v = victim(outside.path());
    let v_str = v.to_str().unwrap().to_string();
    // Each case: the path (given its bundle directory) and the reason.
    type Case = (fn(&str, &str) -> String, &'static str);
    let cases: [Case; 5] = [
        // A host file (as /etc/shadow or /etc/ld.so.preload would be).
        (|_, v| v.to_string(), "bundle directory"),
        // Through a symlinked directory component.
        (|b, _| format!("{b}/link/victim"), "bundle directory"),
        (|b, _| format!("{b}/../victim"), ".."),
        // A symlink as the last component.
        (|b, _| format!("{b}/learned.json"), "symlink"),
        // The bundle's own files.
        (
            |b, _| format!("{b}/config.json"),
            "not written by a learning run",
        ),
    ];
    for (path, needle) in cases {
        let b = Bundle::new().probe(&["exit", "0"]);
        symlink(outside.path(), b.dir().join("link")).unwrap();
        symlink(&v, b.dir().join("learned.json")).unwrap();
        let path = path(b.dir().to_str().unwrap(), &v_str);
        let p = path.clone();
        let b = b.json_patch(|c| c["annotations"] = json!({LEARN_ANNOTATION: p}));
        b.create()
            .fails_with(&[needle])
            .fails_with(&[LEARN_ANNOTATION]);
        assert!(!b.state_root().join(&b.id).exists(), "state left");
        assert_eq!(fs::read_to_string(&v).unwrap(), "root:secret\n", "{path}");
        assert!(
            fs::read_to_string(b.dir().join("config.json"))
                .unwrap()
                .contains("ociVersion"),
            "{path}: config.json replaced"
        );
    }
}

/// `--learn-seccomp FILE` (the runtime's caller chose FILE) is still
/// refused in a directory the container can write (its root or a bind
/// mount's source), where the container could put a symlink where root
/// creates its file, and a symlink at FILE is refused, not replaced.
#[test]
fn learn_flag_refuses_container_writable_dirs_and_symlinks() {
    require_root!();
    skip_if!(is_runc(), "--learn-seccomp is a bulkhead extension");
    let shared = common::open_tempdir();
    let v = victim(shared.path());
    let b = Bundle::new().probe(&["exit", "0"]).json_patch(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/shared", "type": "bind",
            "source": shared.path(), "options": ["rbind", "rw"]}));
    });
    let sub = shared.path().join("sub");
    fs::create_dir(&sub).unwrap();
    for out in [shared.path().join("p.json"), sub.join("p.json")] {
        b.create_with(&["--learn-seccomp", out.to_str().unwrap()])
            .fails_with(&["can write"]);
        assert!(!out.exists());
        assert!(!b.state_root().join(&b.id).exists(), "state left");
    }
    let rootfs: PathBuf = b.config["root"]["path"].as_str().unwrap().into();
    let rootfs = if rootfs.is_absolute() {
        rootfs
    } else {
        b.dir().join(rootfs)
    };
    b.create_with(&[
        "--learn-seccomp",
        rootfs.join("tmp/p.json").to_str().unwrap(),
    ])
    .fails_with(&["root.path"]);

    let elsewhere = common::open_tempdir();
    let link = elsewhere.path().join("p.json");
    symlink(&v, &link).unwrap();
    let b = Bundle::new().probe(&["exit", "0"]);
    b.create_with(&["--learn-seccomp", link.to_str().unwrap()])
        .fails_with(&["symlink"]);
    assert_eq!(fs::read_to_string(&v).unwrap(), "root:secret\n");
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}
