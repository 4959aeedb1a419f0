use std::path::{Path, PathBuf};

use serde_json::Value;

use super::options::{self, Volume};
use super::*;
use crate::plan::{Plan, parse_spec};

fn opts(profile: Profile) -> SandboxOptions {
    SandboxOptions {
        profile,
        rootfs: PathBuf::from("/var/lib/bulkhead/sandboxes/t/rootfs"),
        root_binds: vec![PathBuf::from("/usr"), PathBuf::from("/etc")],
        command: vec!["sh".into(), "-c".into(), "id".into()],
        id_map_base: 1 << 30,
        ..Default::default()
    }
}

/// Builds, and checks the result is a config the runtime accepts.
fn built(o: &SandboxOptions) -> Value {
    let v = build(o).unwrap();
    let bytes = serde_json::to_vec(&v).unwrap();
    let spec = parse_spec(Path::new("config.json"), &bytes).unwrap();
    Plan::from_spec(&spec, Path::new("/bundle")).unwrap_or_else(|e| panic!("{e}: {v:#}"));
    v
}

fn ns(v: &Value) -> Vec<String> {
    v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_string())
        .collect()
}

fn mount<'a>(v: &'a Value, dst: &str) -> Option<&'a Value> {
    v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == dst)
}

fn landlock(v: &Value) -> Option<Value> {
    v["annotations"][crate::landlock::ANNOTATION]
        .as_str()
        .map(|s| serde_json::from_str(s).unwrap())
}

#[test]
fn restricted_switches_everything_on() {
    let v = built(&opts(Profile::Restricted));
    let mut n = ns(&v);
    n.sort();
    assert_eq!(
        n,
        ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"]
    );
    assert_eq!(v["linux"]["uidMappings"][0]["hostID"], 1 << 30);
    assert_eq!(v["linux"]["uidMappings"][0]["size"], 65536);
    assert_eq!(v["process"]["capabilities"]["bounding"], json!([]));
    assert_eq!(v["process"]["noNewPrivileges"], true);
    assert_eq!(v["root"]["readonly"], true);
    assert!(v["linux"]["seccomp"]["syscalls"].is_array());
    assert_eq!(v["linux"]["resources"]["pids"]["limit"], 1024);
    assert_eq!(v["linux"]["resources"]["memory"]["limit"], 1u64 << 30);
    let masked = v["linux"]["maskedPaths"].as_array().unwrap();
    assert!(masked.contains(&json!("/sys/kernel")));
    assert!(masked.contains(&json!("/proc/kcore")));
    assert!(mount(&v, "/tmp").is_some());
    assert_eq!(mount(&v, "/usr").unwrap()["options"][1], "ro");
    let ll = landlock(&v).unwrap();
    assert_eq!(
        ll["filesystem"][0],
        json!({"path": "/", "access": ["read", "execute"]})
    );
    let paths: Vec<&str> = ll["filesystem"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/", "/dev", "/tmp", "/run"]);
    assert_eq!(v["annotations"][ANNOTATION], "restricted");
    assert_eq!(v["process"]["cwd"], "/tmp");
}

#[test]
fn baseline_is_dockers_default() {
    let v = built(&opts(Profile::Baseline));
    assert!(!ns(&v).contains(&"user".to_string()));
    assert!(v["linux"]["uidMappings"].is_null());
    assert_eq!(
        v["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .len(),
        14
    );
    assert_eq!(v["process"]["noNewPrivileges"], false);
    assert_eq!(v["root"]["readonly"], false);
    assert!(v["linux"]["seccomp"].is_object());
    assert!(v["linux"]["resources"]["pids"].is_null());
    assert!(landlock(&v).is_none());
    assert!(v["linux"]["maskedPaths"].is_array());
}

#[test]
fn privileged_drops_the_confinement() {
    let v = built(&opts(Profile::Privileged));
    assert_eq!(
        v["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .len(),
        crate::caps::ALL.len()
    );
    assert!(v["linux"]["seccomp"].is_null());
    assert!(v["linux"]["maskedPaths"].is_null());
    assert_eq!(v["linux"]["resources"]["devices"][0]["allow"], true);
    assert_eq!(mount(&v, "/sys").unwrap()["options"][3], "rw");
}

#[test]
fn all_capabilities_means_those_the_runtime_holds() {
    let mut o = opts(Profile::Privileged);
    o.host_caps = Some(vec!["CAP_KILL".into(), "CAP_CHOWN".into()]);
    let v = built(&o);
    assert_eq!(
        v["process"]["capabilities"]["bounding"],
        json!(["CAP_CHOWN", "CAP_KILL"])
    );
    o.profile = Profile::Restricted;
    o.cap_add = vec!["ALL".into()];
    o.cap_drop = vec!["CAP_KILL".into()];
    assert_eq!(
        built(&o)["process"]["capabilities"]["bounding"],
        json!(["CAP_CHOWN"])
    );
}

#[test]
fn flags_override_the_profile() {
    let mut o = opts(Profile::Restricted);
    o.read_only = Some(false);
    o.userns = Some(false);
    o.cap_add = vec!["CAP_NET_ADMIN".into()];
    o.security_opts = vec![
        SecurityOpt::NoNewPrivileges(false),
        SecurityOpt::SeccompUnconfined,
        SecurityOpt::Landlock(false),
        SecurityOpt::UnmaskAll,
    ];
    o.memory = Some(None);
    o.pids_limit = Some(Some(7));
    o.cpus = Some(0.5);
    o.network = NetworkMode::Host;
    o.hostname = Some("h".into());
    let v = built(&o);
    assert!(!ns(&v).contains(&"user".to_string()));
    assert!(!ns(&v).contains(&"network".to_string()));
    assert_eq!(v["root"]["readonly"], false);
    assert_eq!(
        v["process"]["capabilities"]["bounding"],
        json!(["CAP_NET_ADMIN"])
    );
    assert_eq!(v["process"]["noNewPrivileges"], false);
    assert!(v["linux"]["seccomp"].is_null());
    assert!(v["linux"]["maskedPaths"].is_null());
    assert!(landlock(&v).is_none());
    assert!(v["linux"]["resources"]["memory"].is_null());
    assert_eq!(v["linux"]["resources"]["pids"]["limit"], 7);
    assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 50000);
    assert_eq!(v["hostname"], "h");
}

#[test]
fn host_network_in_a_user_namespace_binds_sys() {
    let mut o = opts(Profile::Restricted);
    o.network = NetworkMode::Host;
    let v = built(&o);
    assert_eq!(mount(&v, "/sys").unwrap()["type"], "bind");
}

#[test]
fn cap_add_and_drop_follow_docker() {
    let base: Vec<String> = vec!["CAP_CHOWN".into(), "CAP_KILL".into()];
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let all: Vec<String> = crate::caps::ALL
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    let capabilities = |b: &[String], a: &[String], d: &[String]| capabilities(b, a, d, &all);
    assert_eq!(capabilities(&base, &[], &s(&["ALL"])), Vec::<String>::new());
    assert_eq!(
        capabilities(&base, &s(&["CAP_NET_RAW"]), &s(&["ALL"])),
        s(&["CAP_NET_RAW"])
    );
    assert_eq!(
        capabilities(&base, &s(&["ALL"]), &s(&["CAP_SYS_ADMIN"])).len(),
        crate::caps::ALL.len() - 1
    );
    assert_eq!(
        capabilities(&base, &[], &s(&["CAP_CHOWN"])),
        s(&["CAP_KILL"])
    );
    assert_eq!(
        options::capability("--cap-add", "net_admin").unwrap(),
        "CAP_NET_ADMIN"
    );
    assert_eq!(options::capability("--cap-add", "all").unwrap(), "ALL");
    let e = options::capability("--cap-drop", "NET_FOO")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("--cap-drop:") && e.contains("NET_FOO"), "{e}");
}

#[test]
fn volumes_are_idmapped_in_a_user_namespace_and_writable_for_landlock() {
    let mut o = opts(Profile::Restricted);
    o.volumes = vec![
        "/srv/data:/data".parse().unwrap(),
        "/srv/conf:/conf:ro".parse().unwrap(),
    ];
    o.tmpfs = vec!["/scratch:size=1m,exec".parse().unwrap()];
    let v = built(&o);
    let data = mount(&v, "/data").unwrap();
    assert_eq!(data["uidMappings"][0]["hostID"], 1 << 30);
    assert_eq!(data["options"][3], "rw");
    assert_eq!(mount(&v, "/conf").unwrap()["options"][3], "ro");
    let t = mount(&v, "/scratch").unwrap();
    assert_eq!(t["type"], "tmpfs");
    assert!(t["options"].as_array().unwrap().contains(&json!("size=1m")));
    let ll = landlock(&v).unwrap().to_string();
    assert!(
        ll.contains("\"/data\"") && ll.contains("\"/scratch\""),
        "{ll}"
    );
    assert!(!ll.contains("\"/conf\""), "{ll}");

    o.userns = Some(false);
    let v = built(&o);
    assert!(mount(&v, "/data").unwrap()["uidMappings"].is_null());
}

#[test]
fn a_volume_or_tmpfs_on_tmp_replaces_the_default() {
    let mut o = opts(Profile::Restricted);
    o.tmpfs = vec!["/tmp:size=2m".parse().unwrap()];
    let v = built(&o);
    let n = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["destination"] == "/tmp")
        .count();
    assert_eq!(n, 1);
    o.volumes = vec!["/a:/tmp".parse().unwrap()];
    assert!(
        build(&o)
            .unwrap_err()
            .to_string()
            .contains("duplicate mount point /tmp")
    );
}

#[test]
fn volume_syntax_errors_name_the_flag() {
    for (input, needle) in [
        ("/a", "HOST:CONTAINER"),
        ("/a:/b:/c:/d", "HOST:CONTAINER"),
        ("/a:b", "must be absolute"),
        ("/a:/b/../c", "\"..\""),
        ("/a:/", "root"),
        ("myvol:/b", "named volumes"),
        ("/a:/b:rx", "unknown option"),
        (":/b", "empty host path"),
    ] {
        let e = input.parse::<Volume>().unwrap_err().to_string();
        assert!(
            e.starts_with("--volume:") && e.contains(needle),
            "{input}: {e}"
        );
    }
    assert!(
        "relative:/x"
            .parse::<Tmpfs>()
            .unwrap_err()
            .to_string()
            .contains("--tmpfs")
    );
}

#[test]
fn value_parsers() {
    assert_eq!(options::memory("64m").unwrap(), Some(64 << 20));
    assert_eq!(options::memory("1G").unwrap(), Some(1 << 30));
    assert_eq!(options::memory("10485760").unwrap(), Some(10 << 20));
    assert_eq!(options::memory("8192kb").unwrap(), Some(8 << 20));
    assert_eq!(options::memory("0").unwrap(), None);
    for bad in ["", "m", "12x", "1k", "-5m", "99999999999999g"] {
        let e = options::memory(bad).unwrap_err().to_string();
        assert!(e.starts_with("--memory:"), "{bad}: {e}");
    }
    assert_eq!(options::cpus("0.5").unwrap(), Some(0.5));
    assert_eq!(options::cpus("0").unwrap(), None);
    assert!(options::cpus("-1").is_err() && options::cpus("NaN").is_err());
    assert_eq!(options::pids_limit("-1").unwrap(), None);
    assert_eq!(options::pids_limit("50").unwrap(), Some(50));
    assert!(options::pids_limit("-3").is_err());
    assert_eq!("none".parse::<NetworkMode>().unwrap(), NetworkMode::None);
    let e = "bridge".parse::<NetworkMode>().unwrap_err().to_string();
    assert!(e.starts_with("--network:") && e.contains("#10"), "{e}");
    let e = "strict".parse::<Profile>().unwrap_err().to_string();
    assert!(e.starts_with("--profile:"), "{e}");
    let lookup = |k: &str| (k == "HOME").then(|| "/h".to_string());
    assert_eq!(options::env("A=1", lookup).unwrap().as_deref(), Some("A=1"));
    assert_eq!(
        options::env("HOME", lookup).unwrap().as_deref(),
        Some("HOME=/h")
    );
    assert_eq!(options::env("UNSET", lookup).unwrap(), None);
    assert!(options::env("=x", lookup).is_err());
}

#[test]
fn log_max_size() {
    assert_eq!(options::log_max_size("10m").unwrap(), Some(10 << 20));
    assert_eq!(options::log_max_size("4k").unwrap(), Some(4096));
    assert_eq!(options::log_max_size("-1").unwrap(), None);
    for bad in ["0", "100", "ten", "", "5x", "-2"] {
        let e = options::log_max_size(bad).unwrap_err().to_string();
        assert!(e.starts_with("--log-max-size:"), "{bad}: {e}");
    }
}

#[test]
fn security_opts() {
    let ok = |s: &str| options::security_opt(s).unwrap().unwrap();
    assert_eq!(ok("no-new-privileges"), SecurityOpt::NoNewPrivileges(true));
    assert_eq!(
        ok("no-new-privileges=false"),
        SecurityOpt::NoNewPrivileges(false)
    );
    assert_eq!(
        ok("no-new-privileges:true"),
        SecurityOpt::NoNewPrivileges(true)
    );
    assert_eq!(ok("seccomp=unconfined"), SecurityOpt::SeccompUnconfined);
    assert_eq!(ok("landlock=off"), SecurityOpt::Landlock(false));
    assert_eq!(ok("unmask=ALL"), SecurityOpt::UnmaskAll);
    assert_eq!(
        options::security_opt("seccomp=/p.json")
            .unwrap()
            .unwrap_err(),
        PathBuf::from("/p.json")
    );
    for bad in [
        "apparmor=x",
        "label=disable",
        "no-new-privileges=maybe",
        "seccomp=",
    ] {
        let e = options::security_opt(bad).unwrap_err().to_string();
        assert!(e.starts_with("--security-opt:"), "{bad}: {e}");
    }
}

#[test]
fn command_env_workdir_user_from_flags_and_image() {
    let mut o = opts(Profile::Restricted);
    o.root = RootSource::Image("demo".into());
    o.command.clear();
    o.image = Some(ImageConfig {
        entrypoint: vec!["/entry".into()],
        cmd: vec!["serve".into()],
        env: vec!["PATH=/opt/bin".into(), "A=image".into()],
        working_dir: Some("/srv".into()),
        user: Some("app".into()),
        stop_signal: Some("SIGQUIT".into()),
    });
    o.passwd = Some("root:x:0:0::/root:/bin/sh\napp:x:100:101::/home/app:/bin/sh\n".into());
    o.group = Some("root:x:0:\napp:x:101:\nextra:x:102:app\n".into());
    o.env = vec!["A=flag".into()];
    let v = built(&o);
    assert_eq!(v["process"]["args"], json!(["/entry", "serve"]));
    let env = v["process"]["env"].as_array().unwrap();
    assert!(env.contains(&json!("PATH=/opt/bin")) && env.contains(&json!("A=flag")));
    assert!(!env.iter().any(|e| e == "HOME=/tmp"));
    assert_eq!(v["process"]["cwd"], "/srv");
    assert_eq!(
        v["process"]["user"],
        json!({"uid": 100, "gid": 101, "additionalGids": [102]})
    );
    assert_eq!(v["annotations"][STOP_SIGNAL_ANNOTATION], "SIGQUIT");

    o.command = vec!["other".into()];
    assert_eq!(built(&o)["process"]["args"], json!(["/entry", "other"]));
    o.entrypoint = Some("/bin/sh".into());
    o.command.clear();
    assert_eq!(built(&o)["process"]["args"], json!(["/bin/sh"]));
    o.entrypoint = Some(String::new());
    assert!(matches!(build(&o), Err(SandboxError::NoCommand)));

    o = opts(Profile::Restricted);
    o.user = Some("1000:1000".into());
    o.workdir = Some("/work".into());
    let v = built(&o);
    assert_eq!(v["process"]["user"], json!({"uid": 1000, "gid": 1000}));
    assert_eq!(v["process"]["cwd"], "/work");
    o.workdir = Some("rel".into());
    assert!(build(&o).unwrap_err().to_string().starts_with("--workdir:"));
    o.workdir = None;
    o.user = Some("nosuchuser".into());
    let e = build(&o).unwrap_err().to_string();
    assert!(e.starts_with("--user") && e.contains("nosuchuser"), "{e}");
    o.user = Some("70000".into());
    let e = build(&o).unwrap_err().to_string();
    assert!(e.contains("outside the sandbox's user namespace"), "{e}");
    o.userns = Some(false);
    assert_eq!(built(&o)["process"]["user"]["uid"], 70000);
}

#[test]
fn no_command_is_an_error() {
    let mut o = opts(Profile::Restricted);
    o.command.clear();
    assert!(build(&o).unwrap_err().to_string().contains("no command"));
}

#[test]
fn a_bad_image_stop_signal_is_named() {
    let mut o = opts(Profile::Restricted);
    o.image = Some(ImageConfig {
        stop_signal: Some("SIGNOPE".into()),
        ..Default::default()
    });
    let e = build(&o).unwrap_err().to_string();
    assert!(e.starts_with("image config StopSignal"), "{e}");
}

#[test]
fn restricted_refuses_setid_modes_in_seccomp() {
    let v = built(&opts(Profile::Restricted));
    let rules = v["linux"]["seccomp"]["syscalls"].as_array().unwrap();
    let for_name = |n: &str| -> Vec<&Value> {
        rules
            .iter()
            .filter(|r| r["names"].as_array().unwrap().iter().any(|x| x == n))
            .collect()
    };
    let chmod = for_name("chmod");
    assert_eq!(chmod.len(), 1);
    assert_eq!(chmod[0]["args"][0]["value"], 0o6000);
    assert_eq!(chmod[0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
    assert_eq!(for_name("openat").len(), 2);
    assert_eq!(for_name("openat2")[0]["errnoRet"], libc::ENOSYS);
    // mkdir keeps its plain allow (the kernel ignores S_ISUID/S_ISGID there).
    assert!(for_name("mkdir")[0]["args"].is_null());
    // Baseline keeps Docker's behaviour.
    let v = built(&opts(Profile::Baseline));
    let chmod: Vec<&Value> = v["linux"]["seccomp"]["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["names"].as_array().unwrap().iter().any(|x| x == "chmod"))
        .collect();
    assert_eq!(chmod.len(), 1);
    assert!(chmod[0]["args"].is_null());
}

fn rootless(sub_ids: Option<(u32, u32, u32)>) -> SandboxOptions {
    let mut o = opts(Profile::Restricted);
    o.rootless = Some(Rootless {
        uid: 1001,
        gid: 1002,
        sub_ids,
    });
    o.volumes.push(Volume {
        source: "/home/u/src".into(),
        destination: "/src".into(),
        readonly: false,
    });
    o
}

#[test]
fn rootless_maps_own_ids_and_sub_ids_binds_volumes_as_is_and_sets_no_limits() {
    let v = built(&rootless(Some((600_000_000, 700_000_000, 65_536))));
    assert_eq!(
        v["linux"]["uidMappings"],
        serde_json::json!([{"containerID": 0, "hostID": 1001, "size": 1},
                           {"containerID": 1, "hostID": 600_000_000u32, "size": 65_536}])
    );
    assert_eq!(v["linux"]["gidMappings"][0]["hostID"], 1002);
    assert_eq!(v["linux"]["gidMappings"][1]["hostID"], 700_000_000u32);
    assert!(ns(&v).contains(&"user".to_string()));
    assert!(ns(&v).contains(&"network".to_string()));
    let src = mount(&v, "/src").unwrap();
    assert!(src.get("uidMappings").is_none(), "{src}");
    // No cgroup was named: no limits that could not be enforced.
    assert!(v["linux"].get("resources").is_none(), "{v:#}");
    assert!(v["linux"].get("cgroupsPath").is_none());
    // Everything else of restricted stays.
    assert_eq!(v["process"]["noNewPrivileges"], true);
    assert_eq!(v["root"]["readonly"], true);
    assert!(v["linux"]["seccomp"].is_object());
    assert!(landlock(&v).is_some());
    assert_eq!(
        v["process"]["capabilities"]["bounding"],
        serde_json::json!([])
    );
    // gid 5 is mapped: devpts keeps it.
    let pts = mount(&v, "/dev/pts").unwrap()["options"].to_string();
    assert!(pts.contains("gid=5"), "{pts}");
}

#[test]
fn rootless_without_sub_ids_maps_only_container_root() {
    let mut o = rootless(None);
    let v = built(&o);
    assert_eq!(
        v["linux"]["uidMappings"],
        serde_json::json!([{"containerID": 0, "hostID": 1001, "size": 1}])
    );
    let pts = mount(&v, "/dev/pts").unwrap()["options"].to_string();
    assert!(!pts.contains("gid="), "{pts}");
    o.user = Some("1000".into());
    let e = build(&o).unwrap_err().to_string();
    assert!(e.contains("--user") && e.contains("(0-0)"), "{e}");
}

#[test]
fn rootless_forces_a_user_namespace_and_limits_need_a_cgroup() {
    let mut o = rootless(None);
    o.userns = Some(false);
    o.profile = Profile::Privileged;
    o.pids_limit = Some(Some(10));
    o.cgroups_path = Some("/alice/t".into());
    let v = built(&o);
    assert!(ns(&v).contains(&"user".to_string()));
    assert_eq!(v["linux"]["cgroupsPath"], "/alice/t");
    assert_eq!(v["linux"]["resources"]["pids"]["limit"], 10);
    // Device cgroup rules need host privileges.
    assert!(v["linux"]["resources"].get("devices").is_none());
}

#[test]
fn rootless_image_root_is_an_overlay_mounted_first_at_root() {
    let mut o = rootless(Some((600_000_000, 700_000_000, 65_536)));
    o.root = RootSource::Image("demo.tar".into());
    o.root_overlay = Some(vec![
        "lowerdir=/home/u/.local/share/bulkhead/images/layers/ab/diff".into(),
        "upperdir=/run/user/1001/bulkhead-sandboxes/t/overlay/upper".into(),
        "workdir=/run/user/1001/bulkhead-sandboxes/t/overlay/work".into(),
    ]);
    let v = built(&o);
    let first = &v["mounts"][0];
    assert_eq!(first["destination"], "/", "{v:#}");
    assert_eq!(first["type"], "overlay");
    assert_eq!(first["options"].as_array().unwrap().len(), 3);
    assert_eq!(
        o.rootless.unwrap().id_maps(),
        [
            vec![(0, 1001, 1), (1, 600_000_000, 65_536)],
            vec![(0, 1002, 1), (1, 700_000_000, 65_536)]
        ]
    );
    // Without an overlay, nothing is mounted at /.
    o.root_overlay = None;
    assert!(mount(&built(&o), "/").is_none());
}

#[test]
fn hostnames_that_would_add_hosts_entries_are_refused() {
    for bad in [
        "a\n6.6.6.6 bank.example",
        "a b",
        "a\tb",
        "",
        "-a",
        "a..b",
        "a/b",
        &"x".repeat(65),
    ] {
        let o = SandboxOptions {
            hostname: Some(bad.to_string()),
            ..Default::default()
        };
        let e = build(&o).unwrap_err().to_string();
        assert!(e.starts_with("--hostname"), "{bad:?}: {e}");
    }
    for good in ["h", "web-1", "a.example.org"] {
        assert!(check_hostname(good).is_ok(), "{good}");
    }
}
