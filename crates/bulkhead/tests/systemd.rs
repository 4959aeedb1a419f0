//! The systemd cgroup driver (`--systemd-cgroup`) against a real systemd.
//!
//! The host has no systemd as PID 1, so each test boots one: systemd 252
//! (`/lib/systemd/systemd --system`) as PID 1 of new pid, mount, cgroup,
//! uts and ipc namespaces, inside a cgroup of its own in every hierarchy,
//! with fresh cgroup mounts (its cgroup namespace makes that cgroup its
//! root), a tmpfs on `/run`, read-only `/proc/sys`, and a unit directory
//! holding one empty target (nothing else starts, no generators run). The
//! runtime is then run inside those namespaces (`nsenter`), talks to that
//! systemd over its private socket, and the test checks from the host's
//! cgroupfs what systemd and the runtime made. Killing that PID 1 ends
//! everything in its pid namespace; the cgroups are removed after.

#[macro_use]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Bundle, RtOutput, runtime, wait_for};
use serde_json::json;

const SYSTEMD: &str = "/lib/systemd/systemd";
const CG_ROOT: &str = "/sys/fs/cgroup";

/// Runs inside the new namespaces, then becomes systemd.
const INNER: &str = r#"
set -eu
mount -t proc proc /proc
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
mount -t tmpfs -o mode=755 tmpfs /run
ctrls=$(ls /sys/fs/cgroup)
mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
for c in $ctrls; do
  mkdir /sys/fs/cgroup/$c
  case $c in
    unified) mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified ;;
    systemd) mount -t cgroup -o none,name=systemd,xattr cgroup /sys/fs/cgroup/systemd ;;
    *) mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c ;;
  esac
done
units=/run/bulkhead-test-units
mkdir -p $units
printf '[Unit]\nDescription=bulkhead test target\n' > $units/bulkhead-test.target
if [ -n "${WITH_BUS:-}" ]; then
  # A system bus for the manager to join (stock units have dependencies on
  # targets that are not there).
  printf '[Unit]\nDefaultDependencies=no\n[Socket]\nListenStream=/run/dbus/system_bus_socket\n' > $units/dbus.socket
  printf '[Unit]\nDefaultDependencies=no\nRequires=dbus.socket\nAfter=dbus.socket\n[Service]\nType=notify\nNotifyAccess=main\nExecStart=/usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only\n' > $units/dbus.service
  printf 'Wants=dbus.service\n' >> $units/bulkhead-test.target
fi
mount --bind $units /usr/lib/systemd/system
mount -t tmpfs tmpfs /etc/systemd/system
mount -t tmpfs tmpfs /usr/lib/systemd/system-generators
exec env -i container=bulkhead-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  /lib/systemd/systemd --system --unit=bulkhead-test.target --log-target=console
"#;

/// A systemd booted in namespaces of its own.
struct BootedSystemd {
    /// `unshare`, parent of systemd.
    unshare: Child,
    /// systemd's pid on the host.
    pid: i32,
    /// Name of the cgroup it runs in, directly below every hierarchy root.
    cgroup: String,
    /// Its console output (for failure messages).
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// Hierarchy mount points of the host (`/sys/fs/cgroup/<name>`).
fn hierarchies() -> Vec<PathBuf> {
    fs::read_dir(CG_ROOT)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("cgroup.procs").exists())
        .collect()
}

impl BootedSystemd {
    /// Boot, or say why not (the test is then skipped).
    fn boot() -> Result<BootedSystemd, String> {
        Self::boot_with(false)
    }

    /// Boot; with `bus`, a dbus-daemon is started as a unit and systemd
    /// joins that system bus.
    fn boot_with(bus: bool) -> Result<BootedSystemd, String> {
        if !common::is_root() {
            return Err("needs root".into());
        }
        for tool in [
            SYSTEMD,
            "/usr/bin/unshare",
            "/usr/bin/nsenter",
            "/usr/bin/systemctl",
        ] {
            if !Path::new(tool).exists() {
                return Err(format!(
                    "{tool} is not installed (apt-get install systemd dbus)"
                ));
            }
        }
        if Path::new("/run/systemd/system").is_dir() {
            return Err("systemd already runs on this host; these tests boot their own".into());
        }
        static N: AtomicUsize = AtomicUsize::new(0);
        let cgroup = format!(
            "bht-systemd-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let script = dir.path().join("inner.sh");
        fs::write(&script, INNER).unwrap();
        // The outer shell joins the new cgroups, so that unshare's cgroup
        // namespace (and systemd's root) is there.
        let outer = r#"
set -eu
for d in "$@"; do
  mkdir -p "$d/$CG"
  if [ -f "$d/cpuset.cpus" ]; then
    cat "$d/cpuset.cpus" > "$d/$CG/cpuset.cpus"
    cat "$d/cpuset.mems" > "$d/$CG/cpuset.mems"
  fi
  echo $$ > "$d/$CG/cgroup.procs"
done
exec unshare --pid --fork --mount --cgroup --uts --ipc --propagation private /bin/sh "$INNER"
"#;
        let console = fs::File::create(&log).unwrap();
        let unshare = Command::new("/bin/sh")
            .arg("-c")
            .arg(outer)
            .arg("sh")
            .args(hierarchies())
            .env("CG", &cgroup)
            .env("INNER", &script)
            .env("WITH_BUS", if bus { "1" } else { "" })
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .map_err(|e| format!("spawning unshare: {e}"))?;
        let mut sd = BootedSystemd {
            pid: 0,
            unshare,
            cgroup,
            log,
            _dir: dir,
        };
        let parent = sd.unshare.id();
        // The shell execs unshare, whose only child is the namespace's PID 1.
        sd.pid = wait_for("systemd to be forked", Duration::from_secs(30), || {
            let comm = fs::read_to_string(format!("/proc/{parent}/comm")).ok()?;
            if comm.trim() != "unshare" {
                return None;
            }
            ns_init(parent)
        });
        let mut last = String::new();
        let state = wait_for("systemd to finish booting", Duration::from_secs(60), || {
            let out = sd.run(Command::new("systemctl").arg("is-system-running"));
            last = format!("{}{}", out.stdout, out.stderr);
            let s = out.stdout.trim().to_string();
            (s == "running" || s == "degraded").then_some(s)
        });
        assert_eq!(
            state,
            "running",
            "systemd booted degraded ({last}); console:\n{}",
            sd.console()
        );
        if bus {
            wait_for("systemd on the system bus", Duration::from_secs(30), || {
                let out = sd.run(Command::new("busctl").args([
                    "--system",
                    "call",
                    "org.freedesktop.systemd1",
                    "/org/freedesktop/systemd1",
                    "org.freedesktop.DBus.Peer",
                    "Ping",
                ]));
                out.success().then_some(())
            });
        }
        Ok(sd)
    }

    fn console(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `cmd` run inside systemd's pid, mount and cgroup namespaces.
    fn nsenter(&self, cmd: &Command) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.pid.to_string(), "-m", "-p", "-C", "--"])
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .stdin(Stdio::null());
        c
    }

    fn run(&self, cmd: &mut Command) -> RtOutput {
        let c = self.nsenter(cmd);
        let dir = tempfile::tempdir().unwrap();
        common::run_cmd(c, dir.path(), common::cmd_timeout())
    }

    /// The runtime with `--systemd-cgroup` and the bundle's state root,
    /// inside the namespaces.
    fn rt(&self, b: &Bundle, args: &[&str]) -> RtOutput {
        let mut cmd = Command::new(runtime());
        cmd.arg("--systemd-cgroup")
            .arg("--root")
            .arg(b.state_root())
            .args(args);
        b.exec(self.nsenter(&cmd))
    }

    fn create(&self, b: &Bundle) -> RtOutput {
        b.write_config();
        self.rt(b, &["create", "--bundle", b.dir().to_str().unwrap(), &b.id])
    }

    /// `state` of the bundle's container.
    fn state(&self, b: &Bundle) -> serde_json::Value {
        let out = self.rt(b, &["state", &b.id]);
        out.ok();
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// `systemctl show UNIT -p ...` as a map.
    fn show(&self, unit: &str, props: &[&str]) -> std::collections::BTreeMap<String, String> {
        let mut cmd = Command::new("systemctl");
        cmd.args(["show", unit]);
        for p in props {
            cmd.args(["-p", p]);
        }
        let out = self.run(&mut cmd);
        out.ok();
        out.stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The host path of cgroup `rel` (as systemd names it) in hierarchy
    /// `name` (`memory`, `systemd`, `unified`, ...).
    fn cg(&self, name: &str, rel: &str) -> PathBuf {
        Path::new(CG_ROOT)
            .join(name)
            .join(&self.cgroup)
            .join(rel.trim_start_matches('/'))
    }
}

impl Drop for BootedSystemd {
    fn drop(&mut self) {
        // SIGKILL to a pid namespace's init ends every process in it.
        let init = ns_init(self.unshare.id()).unwrap_or(self.pid);
        if init > 0 {
            let _ = Command::new("kill")
                .args(["-KILL", &init.to_string()])
                .status();
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        for h in hierarchies() {
            let top = h.join(&self.cgroup);
            let mut dirs: Vec<PathBuf> = Vec::new();
            collect_dirs(&top, &mut dirs);
            // Deepest first; a cgroup whose last process is being reaped
            // stays busy for a moment.
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            for d in dirs {
                // No panic here (Drop may run while unwinding): try for 10 s.
                for _ in 0..500 {
                    match fs::remove_dir(&d) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        _ => break,
                    }
                }
            }
        }
    }
}

/// The first child of `parent` (unshare's child: the namespace's init).
fn ns_init(parent: u32) -> Option<i32> {
    let children = fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    out.push(dir.to_path_buf());
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_dirs(&e.path(), out);
        }
    }
}

fn read(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// The pid of `host_pid` in its innermost pid namespace.
fn ns_pid(host_pid: i32) -> Option<i32> {
    let status = fs::read_to_string(format!("/proc/{host_pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

macro_rules! boot_or_skip {
    () => {
        match BootedSystemd::boot() {
            Ok(sd) => sd,
            Err(why) => {
                eprintln!("skipped: {why}");
                return;
            }
        }
    };
}

/// A scope in a nested slice (`bht-sd.slice` is in `bht.slice`) gets the limits from systemd and the rest from
/// cgroupfs, holds the init, follows `update`, and is gone after `delete`.
#[test]
fn scope_limits_update_delete() {
    let sd = boot_or_skip!();
    let b = Bundle::new().args(&["sleep", "1000"]).json_patch(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("bht-sd.slice:bulkhead:{}", "ctr"));
        c["linux"]["resources"] = json!({
            "memory": {"limit": 67108864, "swappiness": 10},
            "pids": {"limit": 20},
            "cpu": {"quota": 12345, "period": 100000, "shares": 512},
            "devices": [{"allow": false, "access": "rwm"}]
        });
    });
    let unit = "bulkhead-ctr.scope";
    // A "-" in a slice name nests it: bht-sd.slice is inside bht.slice.
    let rel = format!("bht.slice/bht-sd.slice/{unit}");
    sd.create(&b).ok();

    let show = sd.show(
        unit,
        &[
            "ActiveState",
            "Slice",
            "Delegate",
            "MemoryLimit",
            "TasksMax",
            "CPUShares",
            "CPUQuotaPerSecUSec",
        ],
    );
    assert_eq!(show["ActiveState"], "active", "{show:?}");
    assert_eq!(show["Slice"], "bht-sd.slice");
    assert_eq!(show["Delegate"], "yes");
    assert_eq!(show["MemoryLimit"], "67108864");
    assert_eq!(show["TasksMax"], "20");
    assert_eq!(show["CPUShares"], "512");
    // 12345 µs per 100 ms is 12.345 %: systemd holds 13 %...
    assert_eq!(show["CPUQuotaPerSecUSec"], "130ms");
    // ...and cgroupfs the exact value, written after systemd's.
    assert_eq!(read(&sd.cg("cpu", &rel).join("cpu.cfs_quota_us")), "12345");
    assert_eq!(
        read(&sd.cg("cpu", &rel).join("cpu.cfs_period_us")),
        "100000"
    );
    assert_eq!(read(&sd.cg("cpu", &rel).join("cpu.shares")), "512");
    assert_eq!(
        read(&sd.cg("memory", &rel).join("memory.limit_in_bytes")),
        "67108864"
    );
    // Not a systemd property: cgroupfs only.
    assert_eq!(read(&sd.cg("memory", &rel).join("memory.swappiness")), "10");
    assert_eq!(read(&sd.cg("pids", &rel).join("pids.max")), "20");

    // The init is in the unit's cgroup in every hierarchy, including those
    // systemd does not manage (cpuset, freezer).
    let state = sd.state(&b);
    let init = state["pid"].as_i64().unwrap() as i32;
    for name in [
        "systemd", "memory", "pids", "cpu", "cpuset", "freezer", "unified",
    ] {
        let procs = read(&sd.cg(name, &rel).join("cgroup.procs"));
        let pids: Vec<i32> = procs.lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(pids.len(), 1, "{name}: {procs}");
        assert_eq!(ns_pid(pids[0]), Some(init), "{name}: host pid {}", pids[0]);
    }

    sd.rt(&b, &["start", &b.id]).ok();
    sd.rt(
        &b,
        &[
            "update",
            "--memory",
            "128m",
            "--pids-limit",
            "30",
            "--cpu-quota",
            "25000",
            &b.id,
        ],
    )
    .ok();
    let show = sd.show(unit, &["MemoryLimit", "TasksMax", "CPUQuotaPerSecUSec"]);
    assert_eq!(show["MemoryLimit"], "134217728");
    assert_eq!(show["TasksMax"], "30");
    assert_eq!(show["CPUQuotaPerSecUSec"], "250ms");
    assert_eq!(
        read(&sd.cg("memory", &rel).join("memory.limit_in_bytes")),
        "134217728"
    );
    assert_eq!(read(&sd.cg("pids", &rel).join("pids.max")), "30");
    assert_eq!(read(&sd.cg("cpu", &rel).join("cpu.cfs_quota_us")), "25000");

    // Default-deny device rules: systemd gets an allow list with the
    // runtime's default nodes, cgroupfs the same rules; /dev/null stays
    // usable.
    let out = sd.run(Command::new("systemctl").args([
        "show",
        unit,
        "-p",
        "DevicePolicy",
        "-p",
        "DeviceAllow",
    ]));
    let text = out.ok().stdout.clone();
    assert!(text.contains("DevicePolicy=strict"), "{text}");
    assert!(text.contains("DeviceAllow=/dev/char/1:3 rwm"), "{text}");
    assert!(text.contains("DeviceAllow=char-pts rwm"), "{text}");
    let list = read(&sd.cg("devices", &rel).join("devices.list"));
    assert!(list.lines().any(|l| l == "c 1:3 rwm"), "{list}");
    assert!(!list.lines().any(|l| l.starts_with("a ")), "{list}");
    sd.rt(&b, &["exec", &b.id, "sh", "-c", "echo x > /dev/null"])
        .ok();

    // exec joins the same cgroups; pause, resume and events work on them.
    sd.rt(&b, &["exec", &b.id, "true"]).ok();
    sd.rt(&b, &["pause", &b.id]).ok();
    assert_eq!(
        read(&sd.cg("freezer", &rel).join("freezer.state")),
        "FROZEN"
    );
    assert_eq!(sd.state(&b)["status"], "paused");
    sd.rt(&b, &["resume", &b.id]).ok();
    assert_eq!(
        read(&sd.cg("freezer", &rel).join("freezer.state")),
        "THAWED"
    );
    let stats = sd.rt(&b, &["events", "--stats", &b.id]);
    let stats: serde_json::Value = serde_json::from_str(stats.ok().stdout.trim()).unwrap();
    assert_eq!(stats["data"]["pids"]["limit"], 30, "{stats}");
    assert!(
        stats["data"]["pids"]["current"].as_u64() >= Some(1),
        "{stats}"
    );

    sd.rt(&b, &["kill", &b.id, "KILL"]).ok();
    wait_for("the container to stop", Duration::from_secs(10), || {
        let st = sd.state(&b);
        (st["status"] == "stopped").then_some(())
    });
    sd.rt(&b, &["delete", &b.id]).ok();
    let show = sd.show(unit, &["LoadState", "ActiveState"]);
    assert_eq!(show["LoadState"], "not-found", "{show:?}");
    for h in hierarchies() {
        let name = h.file_name().unwrap().to_str().unwrap().to_string();
        let dir = sd.cg(&name, &rel);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

/// Without `cgroupsPath`: `bulkhead-<id>.scope` in `system.slice`, made
/// over systemd's private socket (no bus); a running container deleted with
/// `--force` leaves neither unit nor cgroup.
#[test]
fn default_scope_and_forced_delete() {
    let sd = boot_or_skip!();
    let b = Bundle::new().args(&["sleep", "1000"]).json_patch(|c| {
        c["linux"].as_object_mut().unwrap().remove("cgroupsPath");
        c["linux"]["resources"] = json!({"pids": {"limit": 7}});
    });
    let unit = format!("bulkhead-{}.scope", b.id);
    let rel = format!("system.slice/{unit}");
    b.write_config();
    let out = sd.rt(
        &b,
        &[
            "--debug",
            "create",
            "--bundle",
            b.dir().to_str().unwrap(),
            &b.id,
        ],
    );
    out.ok();
    // No bus here: systemd's private socket.
    assert!(
        out.stderr.contains("socket=/run/systemd/private"),
        "not over the private socket: {out}"
    );
    sd.rt(&b, &["start", &b.id]).ok();
    let show = sd.show(&unit, &["ActiveState", "Slice", "TasksMax"]);
    assert_eq!(show["ActiveState"], "active", "{show:?}");
    assert_eq!(show["Slice"], "system.slice");
    assert_eq!(show["TasksMax"], "7");
    assert_eq!(read(&sd.cg("pids", &rel).join("pids.max")), "7");

    sd.rt(&b, &["delete", "--force", &b.id]).ok();
    let show = sd.show(&unit, &["LoadState"]);
    assert_eq!(show["LoadState"], "not-found", "{show:?}");
    for h in hierarchies() {
        let name = h.file_name().unwrap().to_str().unwrap().to_string();
        assert!(!sd.cg(&name, &rel).exists(), "{name} left behind");
    }
}

/// A scope of that name that systemd runs already is joined, and gets the
/// container's limits.
#[test]
fn joins_an_existing_scope() {
    let sd = boot_or_skip!();
    // A scope with a process of its own, made by systemd-run.
    let holder = sd.nsenter(
        Command::new("systemd-run")
            .args(["--scope", "--unit=bulkhead-shared.scope", "--"])
            .args(["sleep", "1000"]),
    );
    let mut holder = {
        let mut c = holder;
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c.spawn().unwrap()
    };
    wait_for("the scope", Duration::from_secs(30), || {
        (sd.show("bulkhead-shared.scope", &["ActiveState"])["ActiveState"] == "active")
            .then_some(())
    });
    let b = Bundle::new().args(&["sleep", "1000"]).json_patch(|c| {
        c["linux"]["cgroupsPath"] = json!("system.slice:bulkhead:shared");
        c["linux"]["resources"] = json!({"memory": {"limit": 50331648}});
    });
    sd.create(&b).ok();
    let rel = "system.slice/bulkhead-shared.scope";
    let show = sd.show("bulkhead-shared.scope", &["MemoryLimit"]);
    assert_eq!(show["MemoryLimit"], "50331648");
    let procs = read(&sd.cg("memory", rel).join("cgroup.procs"));
    assert_eq!(procs.lines().count(), 2, "holder and init: {procs}");
    sd.rt(&b, &["delete", "--force", &b.id]).ok();
    let _ = holder.kill();
    let _ = holder.wait();
}

/// Invalid `slice:prefix:name` values are refused naming the field, before
/// anything is made.
#[test]
fn invalid_systemd_paths_are_refused() {
    let sd = boot_or_skip!();
    for bad in ["a--b.slice:p:n", "system.slice:p:n/x", "only:two"] {
        let b = Bundle::new().json_patch(|c| c["linux"]["cgroupsPath"] = json!(bad));
        sd.create(&b)
            .fails_with(&["linux.cgroupsPath: invalid value"]);
        assert!(!b.state_root().join(&b.id).exists());
    }
}

/// No systemd (this host): `--systemd-cgroup` is a clear error, nothing left
/// behind; without it, a malformed `slice:prefix:name` is refused.
#[test]
fn without_systemd_a_clear_error() {
    skip_if!(
        Path::new("/run/systemd/system").is_dir(),
        "systemd runs on this host"
    );
    skip_if!(!common::is_root(), "needs root");
    let b = Bundle::new().json_patch(|c| {
        c["linux"]["cgroupsPath"] = json!("system.slice:bulkhead:x");
    });
    let bad = Bundle::new().json_patch(|c| c["linux"]["cgroupsPath"] = json!("only:two"));
    bad.create_with(&[])
        .fails_with(&["linux.cgroupsPath", "slice:prefix:name"]);
    assert!(!bad.state_root().join(&bad.id).exists());
    let mut cmd = b.rt_command();
    b.write_config();
    cmd.arg("--systemd-cgroup")
        .args(["create", "--bundle", b.dir().to_str().unwrap(), &b.id]);
    b.exec(cmd)
        .fails_with(&["systemd cgroup driver requested but systemd is not running"]);
    assert!(!b.state_root().join(&b.id).exists());
}

/// With a system bus where systemd is, the runtime goes through the bus
/// (the private socket is the fallback).
#[test]
fn over_the_system_bus() {
    let sd = match BootedSystemd::boot_with(true) {
        Ok(sd) => sd,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let b = Bundle::new().args(&["sleep", "1000"]).json_patch(|c| {
        c["linux"]["cgroupsPath"] = json!("system.slice:bus:ctr");
        c["linux"]["resources"] = json!({"pids": {"limit": 9}});
    });
    b.write_config();
    let out = sd.rt(
        &b,
        &[
            "--debug",
            "create",
            "--bundle",
            b.dir().to_str().unwrap(),
            &b.id,
        ],
    );
    out.ok();
    assert!(
        out.stderr.contains("socket=/run/dbus/system_bus_socket"),
        "not over the bus: {out}"
    );
    let show = sd.show("bus-ctr.scope", &["ActiveState", "TasksMax"]);
    assert_eq!(show["ActiveState"], "active", "{show:?}");
    assert_eq!(show["TasksMax"], "9");
    sd.rt(&b, &["delete", "--force", &b.id]).ok();
    let show = sd.show("bus-ctr.scope", &["LoadState"]);
    assert_eq!(show["LoadState"], "not-found", "{show:?}");
    assert!(!sd.cg("pids", "system.slice/bus-ctr.scope").exists());
}

/// The driver is for the system's systemd: rootless, it is refused before
/// anything is made.
#[test]
fn refused_rootless() {
    skip_if!(
        !common::is_root(),
        "needs root (as non-root the check comes later)"
    );
    let b = Bundle::new();
    b.write_config();
    let mut cmd = b.rt_command();
    cmd.args([
        "--rootless",
        "true",
        "--systemd-cgroup",
        "create",
        "--bundle",
    ])
    .arg(b.dir())
    .arg(&b.id);
    b.exec(cmd)
        .fails_with(&["--systemd-cgroup: not supported rootless"]);
    assert!(!b.state_root().join(&b.id).exists());
}
