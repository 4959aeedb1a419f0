//! Escape-class regression tests (docs/security.md): each attempts the
//! attack against a real container and asserts it fails.

#[macro_use]
mod common;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use common::{Bundle, is_runc};

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
