//! `linux.netDevices` (runtime-spec 1.2, config-linux.md "Network Devices"):
//! a host interface moves into the container's network namespace under its
//! new name, keeps its permanent global addresses and its MTU, comes up, and
//! is not moved back: a virtual device goes away with the namespace.
//!
//! The kernel here has no `dummy` module, so the device is one end of a veth
//! pair the test makes (a virtual device, like dummy).

#[macro_use]
mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Bundle, is_runc, wait_for};
use serde_json::json;

const RUNC_SKIP: &str = "runc 1.1.5 predates linux.netDevices (runc 1.3 implements it)";

/// A veth pair `<base>a` / `<base>b` on the host, removed on drop if the
/// test (or a failure) left it there.
struct Veth {
    a: String,
    b: String,
}

impl Veth {
    fn new(tag: &str) -> Veth {
        // Unique per process and call, within IFNAMSIZ: 2+2+7+1 bytes.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mix = (u64::from(std::process::id()) << 20) ^ u64::from(nanos);
        let base = format!("bh{tag}{:07x}", mix & 0xfff_ffff);
        let v = Veth {
            a: format!("{base}a"),
            b: format!("{base}b"),
        };
        ip(&[
            "link", "add", &v.a, "mtu", "1400", "type", "veth", "peer", "name", &v.b,
        ]);
        v
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        for n in [&self.a, &self.b] {
            if link_exists(n) {
                let _ = Command::new("ip").args(["link", "del", n]).status();
            }
        }
    }
}

#[track_caller]
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn with_devices(devs: serde_json::Value) -> Bundle {
    Bundle::new().json_patch(|c| c["linux"]["netDevices"] = devs)
}

#[test]
fn a_device_moves_in_renamed_with_its_addresses_and_goes_with_the_namespace() {
    require_root!();
    skip_if!(is_runc(), "{RUNC_SKIP}");
    let v = Veth::new("nd");
    ip(&["addr", "add", "10.251.7.9/24", "dev", &v.a]);
    ip(&[
        "-6",
        "addr",
        "add",
        "fd00:251:7::9/64",
        "dev",
        &v.a,
        "nodad",
    ]);
    // Not global scope: the spec keeps only global, permanent addresses.
    ip(&[
        "addr",
        "add",
        "169.254.77.9/16",
        "dev",
        &v.a,
        "scope",
        "link",
    ]);

    let b = with_devices(json!({ &v.a: {"name": "inner7"} })).sh(
        "ip -o addr show dev inner7; echo mtu=$(cat /sys/class/net/inner7/mtu); \
         echo flags=$(cat /sys/class/net/inner7/flags)",
    );
    b.create().ok();
    assert!(!link_exists(&v.a), "{} is still on the host", v.a);
    b.start().ok();
    b.wait_status("stopped");
    let (out, err) = b.container_output();
    assert!(out.contains("inet 10.251.7.9/24"), "{out}{err}");
    assert!(out.contains("inet6 fd00:251:7::9/64"), "{out}{err}");
    assert!(
        !out.contains("169.254.77.9"),
        "a link-scope address moved: {out}"
    );
    assert!(out.contains("mtu=1400"), "{out}{err}");
    let flags = out
        .lines()
        .find_map(|l| l.strip_prefix("flags=0x"))
        .and_then(|f| u32::from_str_radix(f.trim(), 16).ok())
        .unwrap_or_else(|| panic!("no flags in {out}{err}"));
    assert_eq!(flags & 1, 1, "the device is not up inside: {out}");
    b.delete().ok();
    // Not moved back (the spec forbids it): a virtual device is destroyed
    // with the namespace, and its peer with it. The kernel frees a
    // namespace asynchronously, hence the wait.
    wait_for("the veth pair to go", Duration::from_secs(30), || {
        (!link_exists(&v.a) && !link_exists(&v.b)).then_some(())
    });
}

#[test]
fn a_name_template_is_numbered_by_the_kernel() {
    require_root!();
    skip_if!(is_runc(), "{RUNC_SKIP}");
    let v = Veth::new("nt");
    let out = with_devices(json!({ &v.a: {"name": "tpl%d"} }))
        .sh("cat /sys/class/net/tpl0/operstate /sys/class/net/tpl0/mtu")
        .run();
    out.ok();
    assert!(out.stdout.contains("1400"), "{out}");
    wait_for("the veth pair to go", Duration::from_secs(30), || {
        (!link_exists(&v.a) && !link_exists(&v.b)).then_some(())
    });
}

/// With a user namespace the container's network namespace belongs to it;
/// the runtime (root on the host) still moves the device in, and the
/// container's root sees it configured.
#[test]
fn a_device_moves_into_a_container_with_its_own_user_namespace() {
    require_root!();
    skip_if!(is_runc(), "{RUNC_SKIP}");
    let v = Veth::new("nu");
    ip(&["addr", "add", "10.251.8.9/24", "dev", &v.a]);
    let out = with_devices(json!({ &v.a: {"name": "uns0"} }))
        .userns(&[(0, 100000, 65536)], &[(0, 100000, 65536)])
        .sh("ip -o addr show dev uns0")
        .run();
    out.ok();
    assert!(out.stdout.contains("inet 10.251.8.9/24"), "{out}");
    wait_for("the veth pair to go", Duration::from_secs(30), || {
        (!link_exists(&v.a) && !link_exists(&v.b)).then_some(())
    });
}

/// Each refusal names the field, exits non-zero, leaves no container and
/// leaves the device where it was.
#[test]
fn bad_net_devices_fail_create_and_leave_the_device_on_the_host() {
    require_root!();
    skip_if!(is_runc(), "{RUNC_SKIP}");
    let v = Veth::new("nb");
    let a = v.a.clone();
    let host_ns = format!("/proc/{}/ns/net", std::process::id());
    let cases: Vec<(Bundle, Vec<String>)> = vec![
        (
            with_devices(json!({"bhnd-nosuch0": {}})),
            vec![
                "linux.netDevices.bhnd-nosuch0".into(),
                "no network interface".into(),
            ],
        ),
        (
            with_devices(json!({ &a: {"name": "lo"} })),
            vec![format!("linux.netDevices.{a}.name"), "already has".into()],
        ),
        (
            with_devices(json!({ &a: {"name": "a-name-far-too-long"} })),
            vec![format!("linux.netDevices.{a}.name"), "at most 15".into()],
        ),
        (
            with_devices(json!({ &a: {"name": "in/0"} })),
            vec![format!("linux.netDevices.{a}.name"), "'/'".into()],
        ),
        (
            with_devices(json!({ &a: {"name": "in 0"} })),
            vec![format!("linux.netDevices.{a}.name"), "' '".into()],
        ),
        (
            with_devices(json!({ &a: {} })).without_namespace("network"),
            vec!["linux.netDevices".into(), "network namespace".into()],
        ),
        (
            with_devices(json!({ &a: {} })).namespace("network", Some(&host_ns)),
            vec!["linux.netDevices".into(), "the host's".into()],
        ),
    ];
    for (b, needles) in cases {
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        b.create().fails_with(&needles);
        b.rt(&["state", &b.id]).fails_with(&["does not exist"]);
        assert!(link_exists(&a), "{needles:?}: the device left the host");
    }
    let addr = ip(&["-o", "link", "show", "dev", &a]);
    assert!(addr.contains("mtu 1400"), "{addr}");
}

/// `bulkhead features` lists netDevices as runc 1.3 does.
#[test]
fn features_list_net_devices() {
    skip_if!(is_runc(), "{RUNC_SKIP}");
    let out = common::rt(std::path::Path::new("/nonexistent"), &["features"]);
    out.ok();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("features is JSON");
    assert_eq!(doc["linux"]["netDevices"], json!({"enabled": true}));
}

/// Moving a host device needs CAP_NET_ADMIN over the host's network
/// namespace, which a rootless runtime does not have: refused up front.
#[test]
fn rootless_net_devices_are_refused() {
    skip_if!(is_runc(), "{RUNC_SKIP}");
    let Some(u) = common::user::TestUser::new() else {
        return;
    };
    let b = u.bundle("netdev", |v| {
        v["linux"]["netDevices"] = json!({"bhnd-rl0": {"name": "eth1"}});
        v["process"]["args"] = json!(["true"]);
    });
    u.rt(&["run", "--bundle", b.to_str().unwrap(), "netdev"])
        .fails_with(&["linux.netDevices", "rootless"]);
    let left = u.rt(&["list", "-q"]);
    assert!(left.stdout.trim().is_empty(), "{left}");
}

/// The runtime SIGKILLed right after the move (`BULKHEAD_FAULT`, debug
/// builds): the init dies with it, `delete --force` clears the state, and
/// the device goes with the namespace.
#[test]
fn runtime_killed_after_the_move_leaves_nothing() {
    require_root!();
    skip_if!(is_runc(), "{RUNC_SKIP}");
    skip_if!(
        !cfg!(debug_assertions),
        "BULKHEAD_FAULT is compiled out of release builds"
    );
    let v = Veth::new("nf");
    let b = with_devices(json!({ &v.a: {"name": "eth3"} })).args(&["sleep", "60"]);
    b.write_config();
    let mut cmd = b.rt_command();
    cmd.args(["create", "--bundle", b.dir().to_str().unwrap(), &b.id])
        .env("BULKHEAD_FAULT", "create.netdevices");
    let out = b.exec(cmd);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "the fault point was not reached: {out}"
    );
    assert!(!link_exists(&v.a), "the device was not moved: {out}");
    b.delete_force().ok();
    wait_for("the veth pair to go", Duration::from_secs(30), || {
        (!link_exists(&v.a) && !link_exists(&v.b)).then_some(())
    });
}
