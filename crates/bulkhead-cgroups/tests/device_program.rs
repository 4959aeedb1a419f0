//! cgroup2 device programs on the real kernel, as root: the program built
//! from `linux.resources.devices` is attached to the container's cgroup2
//! directory, enforces on its own, and is replaced (not stacked) when the
//! rules are applied again.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use bulkhead_cgroups::{CgroupSet, device_programs};
use bulkhead_sys::bpf;
use common::{TestCgroup, proc_cgroups};
use oci_spec::runtime::LinuxResources;

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// Root on a v1/hybrid host with a cgroup2 mount; else why not.
fn skip_reason() -> Option<String> {
    if let Some(r) = common::skip_reason() {
        return Some(r);
    }
    if let Ok(bulkhead_cgroups::Layout::V1 { unified: None, .. }) = bulkhead_cgroups::detect() {
        return Some("no cgroup2 hierarchy mounted".into());
    }
    None
}

macro_rules! require_root_hybrid {
    () => {
        if let Some(reason) = skip_reason() {
            eprintln!("skipping: {reason}");
            return;
        }
    };
}

/// Name of the device program with id `id`.
fn prog_name(id: u32) -> String {
    let fd = bpf::prog_fd_by_id(id).expect("prog fd by id");
    bpf::prog_info(std::os::fd::AsFd::as_fd(&fd))
        .expect("prog info")
        .name
}

/// The v1 `devices.list` of the cgroup `pid` is in.
fn v1_devices_list(pid: i32) -> Option<String> {
    let (_, path) = proc_cgroups(pid)
        .into_iter()
        .find(|(c, _)| c.split(',').any(|c| c == "devices"))?;
    let dir = Path::new("/sys/fs/cgroup/devices").join(path.trim_start_matches('/'));
    std::fs::read_to_string(dir.join("devices.list")).ok()
}

#[test]
fn program_alone_denies_what_the_rules_do_not_allow() {
    require_root_hybrid!();
    // Only the cgroup2 directory: the child stays in the test's v1 devices
    // cgroup, which allows everything, so any denial comes from the program.
    let mut cg = TestCgroup::new();
    cg.set.dirs.retain(|d| d.v2);
    cg.create();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(
            "read go; \
             cat /dev/null; echo \"null=$?\"; \
             head -c1 /dev/zero | wc -c | sed 's/^/zero=/'",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let pid = child.id() as i32;
    let mut stdin = child.stdin.take().unwrap();
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    cg.children.push(child);
    common::retry_not_found(|| {
        cg.set.create()?;
        cg.set.add_pid(pid)
    })
    .expect("add_pid");
    if let Some(list) = v1_devices_list(pid) {
        assert_eq!(
            list.trim(),
            "a *:* rwm",
            "the v1 devices cgroup must allow all"
        );
    }
    cg.set
        .apply(&resources(
            r#"{"devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"}
            ]}"#,
        ))
        .expect("apply device rules to the cgroup2 directory");
    let ids = device_programs(&cg.set.v2_dir().unwrap().path).unwrap();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(prog_name(ids[0]), bpf::DEVICE_PROG_NAME);

    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let (mut out, mut err) = (String::new(), String::new());
    stdout.read_to_string(&mut out).unwrap();
    stderr.read_to_string(&mut err).unwrap();
    let status = cg.children[0].wait().unwrap();
    assert!(status.success(), "{status}: {out} {err}");
    assert!(
        out.contains("null=1"),
        "/dev/null (1:3) must be denied: {out} {err}"
    );
    assert!(
        err.contains("Operation not permitted"),
        "denied with EPERM: {err}"
    );
    assert!(
        out.contains("zero=1"),
        "/dev/zero (1:5) must work: {out} {err}"
    );
}

#[test]
fn apply_again_replaces_and_update_keeps_the_program() {
    require_root_hybrid!();
    let mut cg = TestCgroup::new();
    cg.spawn_sleeper();
    let set: &CgroupSet = &cg.set;
    let unified = set.v2_dir().unwrap().path.clone();
    assert!(device_programs(&unified).unwrap().is_empty());

    let rules = r#"{"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    ]}"#;
    set.apply(&resources(rules)).unwrap();
    let first = device_programs(&unified).unwrap();
    assert_eq!(first.len(), 1, "one program after apply: {first:?}");
    // Hybrid: the v1 rules are written too.
    if let Some(d) = set.dir("devices").filter(|d| !d.v2) {
        let list = std::fs::read_to_string(d.path.join("devices.list")).unwrap();
        assert_eq!(list.trim(), "c 1:3 rwm", "{list}");
    }

    // New rules: a new program takes the old one's place.
    set.apply(&resources(
        r#"{"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "r"}
        ]}"#,
    ))
    .unwrap();
    let second = device_programs(&unified).unwrap();
    assert_eq!(second.len(), 1, "replaced, not stacked: {second:?}");
    assert_ne!(second, first, "a new program is attached");

    // An update with device rules (CRI sends deny-all) does not touch them,
    // while its other limits are applied.
    set.update(&resources(
        r#"{"devices": [{"allow": false, "access": "rwm"}], "pids": {"limit": 33}}"#,
    ))
    .unwrap();
    assert_eq!(device_programs(&unified).unwrap(), second);
    assert_eq!(
        common::read_trim(&set.dir("pids").unwrap().path.join("pids.max")),
        "33"
    );

    // Applying many times never stacks programs.
    for _ in 0..5 {
        set.apply(&resources(rules)).unwrap();
    }
    let last = device_programs(&unified).unwrap();
    assert_eq!(last.len(), 1, "{last:?}");
    assert_eq!(prog_name(last[0]), bpf::DEVICE_PROG_NAME);
}

#[test]
fn stacked_programs_of_ours_collapse_into_one() {
    require_root_hybrid!();
    let mut cg = TestCgroup::new();
    cg.spawn_sleeper();
    let unified = cg.set.v2_dir().unwrap().path.clone();
    // Two programs attached side by side (as a runtime that attaches
    // without replacing would leave them): the next apply replaces one and
    // detaches the other.
    let dir = std::fs::File::open(&unified).unwrap();
    use std::os::fd::AsFd;
    let allow_all = bulkhead_cgroups::devfilter::program(
        &resources(r#"{"devices": [{"allow": true}]}"#)
            .devices()
            .clone()
            .unwrap(),
    )
    .unwrap();
    let bytes = bulkhead_cgroups::devfilter::encode(&allow_all);
    let p1 = bpf::load_cgroup_device_prog(&bytes).unwrap();
    let p2 = bpf::load_cgroup_device_prog(&bytes).unwrap();
    let id = |p: &std::os::fd::OwnedFd| bpf::prog_info(p.as_fd()).unwrap().id;
    // BPF_F_REPLACE swaps one attached program for another in place.
    bpf::attach(p1.as_fd(), dir.as_fd(), None).unwrap();
    let p0 = bpf::load_cgroup_device_prog(&bytes).unwrap();
    bpf::attach(p0.as_fd(), dir.as_fd(), Some(p1.as_fd())).unwrap();
    assert_eq!(device_programs(&unified).unwrap(), vec![id(&p0)]);
    bpf::attach(p1.as_fd(), dir.as_fd(), None).unwrap();
    bpf::attach(p2.as_fd(), dir.as_fd(), None).unwrap();
    assert_eq!(
        device_programs(&unified).unwrap(),
        vec![id(&p0), id(&p1), id(&p2)]
    );
    cg.set
        .apply(&resources(
            r#"{"devices": [{"allow": true, "access": "rwm"}]}"#,
        ))
        .unwrap();
    assert_eq!(
        device_programs(&unified).unwrap().len(),
        1,
        "three old programs of ours: one replaced, two detached"
    );
    // Detaching by hand works as well.
    let id = device_programs(&unified).unwrap()[0];
    let fd = bpf::prog_fd_by_id(id).unwrap();
    bpf::detach(fd.as_fd(), dir.as_fd()).unwrap();
    assert!(device_programs(&unified).unwrap().is_empty());
}
