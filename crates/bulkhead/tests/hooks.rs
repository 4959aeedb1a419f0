//! OCI hooks: which run when, in which namespace, with what input, and
//! what a failing hook does.

#[macro_use]
mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Bundle;
use serde_json::{Value, json};
use tempfile::TempDir;

/// A host directory with a recording hook script. Each call of the script
/// stores its stdin (the state), its arguments, its environment and its
/// net namespace under `<dir>/<name>*`.
struct HookDir {
    dir: TempDir,
}

const RECORD: &str = r#"#!/bin/sh
# record.sh NAME [extra args...]
out="$HOOK_OUT_DIR/$1"
cat > "$out.tmp"
printf '%s\n' "$@" > "$out.args"
env > "$out.env"
readlink /proc/self/ns/net > "$out.netns"
readlink /proc/self/ns/mnt > "$out.mntns"
pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$out.tmp")
[ -n "$pid" ] && readlink "/proc/$pid/exe" > "$out.exe"
mv "$out.tmp" "$out.json"
exit "${HOOK_EXIT:-0}"
"#;

impl HookDir {
    fn new() -> HookDir {
        let dir = common::open_tempdir();
        let script = dir.path().join("record.sh");
        fs::write(&script, RECORD).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        HookDir { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn script(&self) -> String {
        self.path().join("record.sh").to_str().unwrap().to_string()
    }

    fn out_env(&self) -> String {
        format!("HOOK_OUT_DIR={}", self.path().display())
    }

    /// Adds a recording hook `name` of `kind` to the bundle.
    fn add(&self, b: Bundle, kind: &str, name: &str, extra_env: &[&str]) -> Bundle {
        let mut env = vec![self.out_env()];
        env.extend(extra_env.iter().map(|s| s.to_string()));
        let env: Vec<&str> = env.iter().map(String::as_str).collect();
        b.hook(kind, &self.script(), &["record.sh", name], &env)
    }

    fn ran(&self, name: &str) -> bool {
        self.path().join(format!("{name}.json")).exists()
    }

    fn file(&self, name: &str, ext: &str) -> PathBuf {
        self.path().join(format!("{name}.{ext}"))
    }

    #[track_caller]
    fn state(&self, name: &str) -> Value {
        let p = self.file(name, "json");
        let text =
            fs::read_to_string(&p).unwrap_or_else(|e| panic!("hook {name} did not run: {e}"));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("hook {name} stdin not JSON ({e}): {text:?}"))
    }

    fn read(&self, name: &str, ext: &str) -> String {
        fs::read_to_string(self.file(name, ext)).unwrap_or_default()
    }
}

fn wait_file(p: &Path) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if p.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn all_hooks_run_in_order_with_state() {
    require_root!();
    let h = HookDir::new();
    let mut b = Bundle::new().probe(&["sleep", "600"]);
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ] {
        b = h.add(b, kind, kind, &[]);
    }
    b.create().ok();
    for kind in ["prestart", "createRuntime", "createContainer"] {
        assert!(h.ran(kind), "{kind} hook did not run on create");
    }
    if common::is_runc() {
        // runc 1.1 runs poststart hooks at the end of `create` (fixed in
        // 1.2); the OCI spec says after the user process started.
        eprintln!("note: runc ran poststart on create: {}", h.ran("poststart"));
    } else {
        assert!(!h.ran("poststart"), "poststart ran before start");
    }
    assert!(!h.ran("poststop"), "poststop ran before delete");
    let pid = b.state()["pid"].as_i64().unwrap();

    b.start().ok();
    assert!(
        wait_file(&h.file("poststart", "json")),
        "poststart did not run"
    );
    assert!(!h.ran("poststop"));

    b.kill("KILL").ok();
    b.wait_status("stopped");
    b.delete().ok();
    assert!(h.ran("poststop"), "poststop did not run on delete");

    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ] {
        let st = h.state(kind);
        assert_eq!(st["id"], b.id.as_str(), "{kind}: {st}");
        assert_eq!(st["bundle"], b.dir().to_str().unwrap(), "{kind}: {st}");
        assert!(st["ociVersion"].is_string(), "{kind}: {st}");
        assert!(st["status"].is_string(), "{kind}: {st}");
        match kind {
            "poststop" => {}
            // Run from inside the container's pid namespace, the pid may
            // be given as seen there (runc 1.1 passes 1).
            "createContainer" => assert!(
                st["pid"].as_i64() == Some(pid) || st["pid"].as_i64() == Some(1),
                "{kind}: {st}"
            ),
            _ => assert_eq!(st["pid"].as_i64(), Some(pid), "{kind}: {st}"),
        }
    }
    eprintln!(
        "statuses: {:?}",
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop"
        ]
        .map(|k| h.state(k)["status"].as_str().unwrap_or("?").to_string())
    );
    if !common::is_runc() {
        assert_eq!(h.state("poststart")["status"], "running");
        // runc says "creating" to prestart; crun and runtime-tools'
        // hooks_stdin say "created".
        assert_eq!(h.state("prestart")["status"], "created");
        assert_eq!(h.state("createRuntime")["status"], "creating");
    }
    assert_eq!(h.state("poststop")["status"], "stopped");
    // Order: by modification time of the outputs.
    let mtime = |k: &str| fs::metadata(h.file(k, "json")).unwrap().modified().unwrap();
    assert!(mtime("prestart") <= mtime("poststart"));
    assert!(mtime("createRuntime") <= mtime("createContainer"));
    assert!(mtime("poststart") <= mtime("poststop"));
}

#[test]
fn hook_args_and_env() {
    require_root!();
    let h = HookDir::new();
    let b = Bundle::new().probe(&["exit", "0"]).hook(
        "prestart",
        &h.script(),
        &["record.sh", "pre", "second arg", "third"],
        &[&h.out_env(), "HOOK_VAR=forty two"],
    );
    b.create().ok();
    let args: Vec<String> = h.read("pre", "args").lines().map(str::to_string).collect();
    assert_eq!(args, vec!["pre", "second arg", "third"]);
    let env = h.read("pre", "env");
    assert!(env.lines().any(|l| l == "HOOK_VAR=forty two"), "{env}");
    assert!(!env.contains("BULKHEAD_TEST"), "runtime env leaked: {env}");
}

#[test]
fn runtime_namespace_hooks_see_host_netns() {
    require_root!();
    let h = HookDir::new();
    let mut b = Bundle::new().probe(&["sleep", "600"]);
    for kind in ["prestart", "createRuntime", "createContainer", "poststart"] {
        b = h.add(b, kind, kind, &[]);
    }
    b.create().ok();
    b.start().ok();
    assert!(wait_file(&h.file("poststart", "json")));
    let pid = b.state()["pid"].as_i64().unwrap().to_string();
    let netns = |p: &str| {
        fs::read_link(format!("/proc/{p}/ns/net"))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let host = netns("self");
    let container = netns(&pid);
    for kind in ["prestart", "createRuntime", "poststart"] {
        assert_eq!(
            h.read(kind, "netns").trim(),
            host,
            "{kind} not in the runtime ns"
        );
    }
    assert_eq!(
        h.read("createContainer", "netns").trim(),
        container,
        "createContainer not in the container ns"
    );
}

#[test]
fn start_container_hook_runs_inside_container() {
    require_root!();
    let out = common::open_tempdir();
    let src = out.path().to_str().unwrap().to_string();
    let b = Bundle::new()
        .probe(&["exit", "0"])
        .hostname("hooked")
        .mount("/mnt/c", "bind", &src, &["rbind", "rw"])
        .watch_mounts(&src)
        .hook(
            "startContainer",
            "/bin/sh",
            &[
                "sh",
                "-c",
                "hostname > /mnt/c/start.txt; cat > /mnt/c/start.json",
            ],
            &[],
        );
    b.create().ok();
    assert!(
        !out.path().join("start.txt").exists(),
        "startContainer ran before start"
    );
    b.start().ok();
    b.wait_status("stopped");
    assert_eq!(
        fs::read_to_string(out.path().join("start.txt"))
            .unwrap()
            .trim(),
        "hooked"
    );
    let st: Value =
        serde_json::from_str(&fs::read_to_string(out.path().join("start.json")).unwrap()).unwrap();
    assert_eq!(st["id"], b.id.as_str());
}

#[test]
fn failing_prestart_hook_fails_create_and_cleans_up() {
    require_root!();
    let h = HookDir::new();
    let b = h
        .add(
            Bundle::new().probe(&["sleep", "600"]),
            "prestart",
            "pre",
            &["HOOK_EXIT=3"],
        )
        .watch_mounts(h.path().to_str().unwrap());
    let out = b.create();
    out.fails();
    assert!(h.ran("pre"), "hook did not run");
    b.rt(&["state", &b.id]).fails_with(&["does not exist"]);
    let listed = b.rt(&["list", "-q"]);
    assert!(!listed.stdout.contains(&b.id), "{listed}");
    // The container's init must be gone: no process is in a cgroup named
    // after the container, and no such cgroup is left.
    let leftovers = common::cgroup_dirs_named(&b.id);
    assert!(leftovers.is_empty(), "cgroups left: {leftovers:?}");
    assert!(
        !procs_in_cgroup_named(&b.id),
        "a process of the failed container survived"
    );
}

/// Whether any process's cgroup path mentions `id`.
fn procs_in_cgroup_named(id: &str) -> bool {
    let Ok(rd) = fs::read_dir("/proc") else {
        return false;
    };
    rd.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|c| c.is_ascii_digit())
        })
        .any(|e| {
            fs::read_to_string(e.path().join("cgroup"))
                .map(|c| c.contains(id))
                .unwrap_or(false)
        })
}

#[test]
fn failing_create_runtime_hook_fails_create() {
    require_root!();
    let h = HookDir::new();
    let b = h.add(
        Bundle::new().probe(&["sleep", "600"]),
        "createRuntime",
        "cr",
        &["HOOK_EXIT=1"],
    );
    b.create().fails();
    assert!(h.ran("cr"));
    b.rt(&["state", &b.id]).fails_with(&["does not exist"]);
    assert!(!procs_in_cgroup_named(&b.id));
}

#[test]
fn missing_hook_binary_fails_create() {
    require_root!();
    let b =
        Bundle::new()
            .probe(&["sleep", "600"])
            .hook("prestart", "/does/not/exist/hook", &[], &[]);
    b.create().fails();
    b.rt(&["state", &b.id]).fails_with(&["does not exist"]);
}

#[test]
fn hook_timeout_is_enforced() {
    require_root!();
    let b = Bundle::new().probe(&["sleep", "600"]).json_patch(|c| {
        c["hooks"] = json!({"prestart": [{
            "path": "/bin/sleep", "args": ["sleep", "20"], "timeout": 1
        }]})
    });
    let start = Instant::now();
    b.create().fails();
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "timeout not enforced: {:?}",
        start.elapsed()
    );
    b.rt(&["state", &b.id]).fails();
}

#[test]
fn failing_poststop_hook_does_not_block_delete() {
    require_root!();
    let h = HookDir::new();
    let b = h.add(
        Bundle::new().probe(&["exit", "0"]),
        "poststop",
        "post",
        &["HOOK_EXIT=1"],
    );
    b.create().ok();
    b.start().ok();
    b.wait_status("stopped");
    // A failing poststop hook is only warned about.
    b.delete().ok();
    assert!(h.ran("post"));
    // Whatever delete reported, the container must be gone afterwards.
    b.rt(&["state", &b.id]).fails_with(&["does not exist"]);
}

#[test]
fn poststop_runs_on_delete_force_of_running() {
    require_root!();
    let h = HookDir::new();
    let b = h.add(
        Bundle::new().probe(&["sleep", "600"]),
        "poststop",
        "post",
        &[],
    );
    b.create().ok();
    b.start().ok();
    b.delete_force().ok();
    assert!(h.ran("post"), "poststop did not run on delete --force");
}

#[test]
fn hooks_run_for_run_command() {
    require_root!();
    let h = HookDir::new();
    let mut b = Bundle::new().probe(&["exit", "0"]);
    for kind in ["prestart", "createRuntime", "poststart", "poststop"] {
        b = h.add(b, kind, kind, &[]);
    }
    b.run().ok();
    for kind in ["prestart", "createRuntime", "poststart", "poststop"] {
        assert!(h.ran(kind), "{kind} did not run for `run`");
    }
}

#[test]
fn failing_prestart_still_runs_poststop() {
    require_root!();
    let h = HookDir::new();
    let b = h.add(
        h.add(
            Bundle::new().probe(&["sleep", "600"]),
            "prestart",
            "pre",
            &["HOOK_EXIT=1"],
        ),
        "poststop",
        "post",
        &[],
    );
    b.create().fails();
    // The OCI spec sends a failed prestart to the delete step, which runs
    // the poststop hooks; runc 1.1 does that too.
    assert!(h.ran("post"), "poststop did not run after a failed create");
    assert_eq!(h.state("post")["id"], b.id.as_str());
    b.rt(&["state", &b.id]).fails_with(&["does not exist"]);
}

#[test]
fn failing_poststart_hook() {
    require_root!();
    let h = HookDir::new();
    let b = h.add(
        Bundle::new().probe(&["sleep", "600"]),
        "poststart",
        "post",
        &["HOOK_EXIT=1"],
    );
    let created = b.create();
    if common::is_runc() {
        // runc 1.1 runs poststart at the end of create; its failure fails
        // create and removes the container.
        created.fails();
        b.rt(&["state", &b.id]).fails_with(&["does not exist"]);
        assert!(!procs_in_cgroup_named(&b.id));
        return;
    }
    created.ok();
    let started = b.start();
    assert!(h.ran("post"));
    if started.success() {
        // Warn-and-continue (the OCI spec's wording).
        assert_eq!(b.status(), "running");
    } else {
        // Or fail start, in which case the process must be gone.
        let st = b.rt(&["state", &b.id]);
        assert!(!st.success() || st.stdout.contains("stopped"), "{st}");
    }
}

#[test]
fn hook_without_env_inherits_runtime_env() {
    require_root!();
    // runc runs hooks that have no `env` with the runtime's environment.
    let out = common::open_tempdir();
    let file = out.path().join("env.txt");
    let b = Bundle::new().probe(&["sleep", "600"]).hook(
        "prestart",
        "/bin/sh",
        &["sh", "-c", &format!("env > {}", file.display())],
        &[],
    );
    b.write_config();
    let mut cmd = b.rt_command();
    cmd.args(["create", "--bundle", b.dir().to_str().unwrap(), &b.id])
        .env("BH_HOOK_MARKER", "inherited");
    b.exec(cmd).ok();
    b.note_pid();
    let env = fs::read_to_string(&file).expect("hook ran");
    assert!(
        env.lines().any(|l| l == "BH_HOOK_MARKER=inherited"),
        "{env}"
    );
}

#[test]
fn hook_state_on_stdin_is_single_json_document() {
    require_root!();
    let h = HookDir::new();
    let b = h.add(
        Bundle::new().probe(&["sleep", "600"]),
        "createRuntime",
        "cr",
        &[],
    );
    b.create().ok();
    let raw = h.read("cr", "json");
    let mut de = serde_json::Deserializer::from_str(&raw).into_iter::<Value>();
    let first = de.next().expect("one document").expect("valid JSON");
    assert!(de.next().is_none(), "more than one JSON document: {raw:?}");
    assert_eq!(first["status"], "creating", "{first}");
}

/// "If any poststart (poststop) hook fails, the runtime MUST log a warning,
/// but the remaining hooks and lifecycle continue as if the hook had
/// succeeded" (runtime-tools poststart_fail, poststop_fail).
#[test]
fn failing_poststart_and_poststop_hooks_do_not_skip_the_rest() {
    require_root!();
    skip_if!(
        common::is_runc(),
        "runc 1.1.5 runs poststart on create and stops at a failing one"
    );
    let h = HookDir::new();
    let mut b = Bundle::new().probe(&["sleep", "600"]);
    b = h.add(b, "poststart", "start-fails", &["HOOK_EXIT=1"]);
    b = h.add(b, "poststart", "start-next", &[]);
    b = h.add(b, "poststop", "stop-fails", &["HOOK_EXIT=1"]);
    b = h.add(b, "poststop", "stop-next", &[]);
    b.create().ok();
    b.start().ok();
    assert!(h.ran("start-fails"));
    assert!(
        h.ran("start-next"),
        "the poststart hook after a failing one did not run"
    );
    assert_eq!(b.status(), "running");
    b.kill("KILL").ok();
    b.wait_status("stopped");
    b.delete().ok();
    assert!(h.ran("stop-fails"));
    assert!(
        h.ran("stop-next"),
        "the poststop hook after a failing one did not run"
    );
    b.rt(&["state", &b.id]).fails_with(&["does not exist"]);
}

/// Poststart hooks run "after the user-specified process is executed": the
/// pid in their state is already the program, not the runtime's init.
#[test]
fn poststart_runs_after_the_program_is_executed() {
    require_root!();
    skip_if!(
        common::is_runc(),
        "runc 1.1.5 runs poststart hooks at the end of create"
    );
    let h = HookDir::new();
    // A slow startContainer hook (it runs in the init, before the exec)
    // holds the init back: a runtime that does not wait for the exec runs
    // poststart while the init is still itself.
    let b = h.add(
        Bundle::new().probe(&["sleep", "600"]).hook(
            "startContainer",
            "/bin/sh",
            &["sh", "-c", "sleep 1"],
            &[],
        ),
        "poststart",
        "post",
        &[],
    );
    b.create().ok();
    b.start().ok();
    let exe = h.read("post", "exe");
    assert!(
        exe.trim_end().ends_with(common::PROBE),
        "poststart saw the init as {exe:?}, not the program"
    );
    b.kill("KILL").ok();
    b.wait_status("stopped");
}
