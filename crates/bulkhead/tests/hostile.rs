//! Hostile and malformed input, through the real binary: every config in
//! `tests/hostile/config/*.json` and every process in
//! `tests/hostile/process/*.json` (each a patch on the base config or
//! process, with the words its error must contain), plus the cases that
//! need raw bytes or a prepared root filesystem, built here.
//!
//! Each is run through `create` (or `exec --process`) and must be rejected
//! cleanly: a non-zero exit that is not a crash, an error naming the field,
//! no state directory, no process (every runtime process carries a marker in
//! its environment, looked for in `/proc/*/environ`), and, through the
//! `Bundle` drop check, no host mount and no cgroup.
//!
//! A corpus file looks like:
//!
//! ```json
//! {"why": "a relative working directory",
//!  "set": [["/process/cwd", "tmp"]],
//!  "remove": ["/process/rlimits"],
//!  "expect": ["process.cwd"]}
//! ```
//!
//! `set` takes JSON pointers (a final `-` appends to an array, missing
//! objects are created) applied in order; `expect` lists substrings that
//! must all appear in stderr (case-insensitive; not checked against runc).

#[macro_use]
mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Bundle, RtOutput, is_runc, open_tempdir, wait_for};
use serde_json::{Value, json};

/// Environment variable every runtime process of a case inherits, with the
/// case's container id as value.
const MARK: &str = "BH_HOSTILE_MARK";

// ------------------------------------------------------------ the corpus --

struct Case {
    name: String,
    why: String,
    set: Vec<(String, Value)>,
    remove: Vec<String>,
    expect: Vec<String>,
}

fn corpus(kind: &str) -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/hostile")
        .join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let v: Value = serde_json::from_slice(&fs::read(p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let strings = |k: &str| -> Vec<String> {
                v[k].as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| s.as_str().expect("string").to_owned())
                    .collect()
            };
            Case {
                name: p.file_stem().unwrap().to_string_lossy().into_owned(),
                why: v["why"].as_str().unwrap_or_default().to_owned(),
                set: v["set"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|pair| {
                        (
                            pair[0].as_str().expect("pointer").to_owned(),
                            pair[1].clone(),
                        )
                    })
                    .collect(),
                remove: strings("remove"),
                expect: strings("expect"),
            }
        })
        .collect()
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Sets the value at JSON pointer `ptr`, creating missing objects; a final
/// `-` appends to an array.
fn pointer_set(root: &mut Value, ptr: &str, val: Value) {
    let tokens: Vec<String> = ptr.split('/').skip(1).map(unescape).collect();
    let (last, parents) = tokens.split_last().expect("empty pointer");
    let mut cur = root;
    for t in parents {
        if cur.is_null() {
            *cur = json!({});
        }
        cur = match cur {
            Value::Object(m) => m.entry(t.clone()).or_insert(Value::Null),
            Value::Array(a) => &mut a[t.parse::<usize>().expect("array index")],
            other => panic!("{ptr}: cannot descend into {other}"),
        };
    }
    if cur.is_null() {
        *cur = json!({});
    }
    match cur {
        Value::Object(m) => {
            m.insert(last.clone(), val);
        }
        Value::Array(a) if last == "-" => a.push(val),
        Value::Array(a) => a[last.parse::<usize>().expect("array index")] = val,
        other => panic!("{ptr}: cannot set inside {other}"),
    }
}

fn pointer_remove(root: &mut Value, ptr: &str) {
    let (parent, last) = ptr.rsplit_once('/').expect("pointer");
    match root.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.remove(&unescape(last));
        }
        Some(Value::Array(a)) => {
            a.remove(last.parse::<usize>().expect("array index"));
        }
        _ => panic!("{ptr}: nothing to remove"),
    }
}

fn apply(case: &Case, v: &mut Value) {
    for (ptr, val) in &case.set {
        pointer_set(v, ptr, val.clone());
    }
    for ptr in &case.remove {
        pointer_remove(v, ptr);
    }
}

// ------------------------------------------------------------- the checks --

/// Pids of live processes whose environment carries `MARK=value`.
fn marked_processes(value: &str) -> Vec<i32> {
    let needle = format!("{MARK}={value}").into_bytes();
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(env) = fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.split(|&b| b == 0).any(|kv| kv == needle.as_slice()) {
            pids.push(pid);
        }
    }
    pids
}

/// The runtime with `--root` and `args`, its processes marked with `mark`.
fn rt_marked(b: &Bundle, mark: &str, args: &[&str]) -> RtOutput {
    let mut cmd = b.rt_command();
    cmd.args(args).env(MARK, mark);
    b.exec(cmd)
}

/// `create --bundle <dir> [flags] <id>` without rewriting config.json; the
/// runtime's processes are marked with the bundle's own id.
fn create_raw(b: &Bundle, id: &str, flags: &[&str]) -> RtOutput {
    let dir = b.dir().to_str().expect("utf-8").to_owned();
    let mut args = vec!["create", "--bundle", dir.as_str()];
    args.extend_from_slice(flags);
    args.push(id);
    rt_marked(b, &b.id, &args)
}

/// `text` as bytes with every U+0001 replaced by the (invalid UTF-8) `byte`.
fn byte_for_marker(text: &str, byte: u8) -> Vec<u8> {
    text.bytes()
        .map(|c| if c == 1 { byte } else { c })
        .collect()
}

/// A clean rejection: a non-zero exit that is not a crash, stderr naming
/// every `expect` word, no state directory and no process of the attempt.
/// (The `Bundle` drop check adds: no mount, no cgroup.)
#[track_caller]
fn assert_rejected(b: &Bundle, mark: &str, out: &RtOutput, expect: &[&str]) {
    assert!(!out.success(), "accepted: {out}");
    assert!(
        out.code().is_some(),
        "killed by a signal rather than exiting: {out}"
    );
    assert_ne!(out.code(), Some(101), "the runtime panicked: {out}");
    let err = out.stderr.to_lowercase();
    assert!(
        !err.contains("panicked at") && !err.contains("rust_backtrace"),
        "the runtime panicked: {out}"
    );
    assert!(!out.stderr.trim().is_empty(), "no error message: {out}");
    if !is_runc() {
        let missing: Vec<&&str> = expect
            .iter()
            .filter(|w| !err.contains(&w.to_lowercase()))
            .collect();
        assert!(
            missing.is_empty(),
            "the error does not mention {missing:?}: {out}"
        );
    }
    let leftovers: Vec<String> = fs::read_dir(b.state_root())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        leftovers.is_empty(),
        "state root not empty after a rejected command: {leftovers:?}\n{out}"
    );
    wait_for(
        &format!("the processes of {mark} to go away"),
        Duration::from_secs(5),
        || marked_processes(mark).is_empty().then_some(()),
    );
}

/// Runs every case, collecting failures, so one report lists them all.
fn run_table<T>(cases: &[T], name: impl Fn(&T) -> String, run: impl Fn(&T)) {
    report(cases.len(), check_table(cases, name, run));
}

#[track_caller]
fn report(total: usize, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} of {total} cases not rejected cleanly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runs every case; returns the failures.
fn check_table<T>(cases: &[T], name: impl Fn(&T) -> String, run: impl Fn(&T)) -> Vec<String> {
    let start = Instant::now();
    let mut failures = Vec::new();
    for c in cases {
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| run(c))) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("=== {} ===\n{msg}", name(c)));
        }
    }
    eprintln!("{} cases in {:?}", cases.len(), start.elapsed());
    failures
}

// --------------------------------------------------------- config corpus --

#[test]
fn config_corpus_is_rejected_cleanly() {
    require_root!();
    let cases = corpus("config");
    assert!(cases.len() >= 40, "corpus went missing: {}", cases.len());
    run_table(
        &cases,
        |c| format!("config/{}.json ({})", c.name, c.why),
        |c| {
            let mut b = Bundle::new().args(&["/bin/true"]);
            apply(c, &mut b.config);
            b.write_config();
            let out = create_raw(&b, &b.id, &[]);
            let expect: Vec<&str> = c.expect.iter().map(String::as_str).collect();
            assert_rejected(&b, &b.id, &out, &expect);
        },
    );
}

/// Raw config.json bytes that no JSON patch can express.
#[test]
fn malformed_config_bytes_are_rejected_cleanly() {
    require_root!();
    let base = || {
        let b = Bundle::new().args(&["/bin/true"]);
        serde_json::to_string(&b.config).unwrap()
    };
    let with_hostname = |raw: &[u8]| {
        let text = base().replace("\"bh-test\"", "\"@HOST@\"");
        let (a, z) = text.split_once("@HOST@").unwrap();
        [a.as_bytes(), raw, z.as_bytes()].concat()
    };
    let nested = |open: &str, close: &str, levels: usize| -> String {
        format!("{}1{}", open.repeat(levels), close.repeat(levels))
    };
    let deep_args = {
        let text = base();
        let inner = nested("[", "]", 100_000);
        let v = text.replacen("\"args\":[\"/bin/true\"]", &format!("\"args\":{inner}"), 1);
        assert_ne!(v, text);
        v.into_bytes()
    };
    let deep_document = nested("{\"a\":", "}", 100_000).into_bytes();
    let giant = "h".repeat(64 << 20);
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "invalid UTF-8 in a string",
            with_hostname(b"bh-\xff\xfe-test"),
            vec!["config.json", "hostname"],
        ),
        (
            "invalid UTF-8 in a key",
            byte_for_marker(
                &base().replacen("\"hostname\"", "\"host\u{1}name\"", 1),
                0xc0,
            ),
            vec!["config.json"],
        ),
        (
            "100k nested arrays in process.args",
            deep_args,
            vec!["config.json", "process.args[0]"],
        ),
        (
            "100k nested objects as the whole document",
            deep_document,
            vec!["root"],
        ),
        (
            "64 MiB hostname",
            with_hostname(giant.as_bytes()),
            vec!["hostname"],
        ),
        (
            "64 MiB program name",
            base()
                .replacen("\"/bin/true\"", &format!("\"/{giant}\""), 1)
                .into_bytes(),
            vec!["process.args"],
        ),
        (
            "128 KiB program name",
            base()
                .replacen(
                    "\"/bin/true\"",
                    &format!("\"/{}\"", "p".repeat(128 << 10)),
                    1,
                )
                .into_bytes(),
            vec!["process.args"],
        ),
        ("empty file", Vec::new(), vec!["config.json"]),
        ("null", b"null".to_vec(), vec!["config.json"]),
        ("a JSON array", b"[1,2,3]".to_vec(), vec!["config.json"]),
        (
            "truncated JSON",
            base().as_bytes()[..200].to_vec(),
            vec!["config.json"],
        ),
        (
            "trailing garbage",
            [base().as_bytes(), b"}}garbage"].concat(),
            vec!["config.json"],
        ),
        (
            "NUL in the rootfs path",
            base()
                .replacen("\"path\":\"", "\"path\":\"\\u0000", 1)
                .into_bytes(),
            vec!["root.path"],
        ),
    ];
    run_table(
        &cases,
        |c| c.0.to_owned(),
        |(_, bytes, expect)| {
            let b = Bundle::new();
            fs::write(b.dir().join("config.json"), bytes).unwrap();
            let out = create_raw(&b, &b.id, &[]);
            assert_rejected(&b, &b.id, &out, expect);
        },
    );
}

/// serde skips an unknown key's value without recursing, so 100k levels of
/// nesting there are merely ignored: the config is valid. What counts is
/// that parsing neither overflows the stack nor leaves anything behind.
#[test]
fn deep_nesting_under_an_unknown_key_is_harmless() {
    require_root!();
    let b = Bundle::new().args(&["/bin/true"]);
    let text = serde_json::to_string(&b.config).unwrap();
    let inner = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let bytes = format!("{{\"x-unknown\":{inner},{}", &text[1..]);
    fs::write(b.dir().join("config.json"), bytes).unwrap();
    let out = create_raw(&b, &b.id, &[]);
    assert!(out.code().is_some_and(|c| c != 101), "crash: {out}");
    assert!(!out.stderr.contains("panicked at"), "panic: {out}");
    if out.success() {
        b.note_pid();
        b.delete_force().ok();
    }
}

// -------------------------------------------------------- process corpus --

fn base_process() -> Value {
    json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": ["/bin/true"],
        "env": ["PATH=/bin:/usr/bin"],
        "cwd": "/"
    })
}

/// A started container to `exec` into; returns it with its init's pid.
fn running_container() -> (Bundle, i32) {
    let b = Bundle::new().probe(&["sleep", "600"]);
    b.create().ok();
    b.start().ok();
    let pid = b.note_pid();
    (b, pid)
}

/// The container's processes, from its cgroup.
fn container_procs(pid: i32) -> Vec<i32> {
    let dirs = common::container_cgroup_dirs(pid);
    let dir = dirs.first().expect("container cgroup");
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

fn exec_rejected(b: &Bundle, init: i32, name: &str, bytes: &[u8], expect: &[&str]) {
    let path = b.dir().join(format!("process-{name}.json"));
    fs::write(&path, bytes).unwrap();
    let mark = format!("{}-{name}", b.id);
    let out = rt_marked(
        b,
        &mark,
        &["exec", "--process", path.to_str().unwrap(), &b.id],
    );
    assert!(!out.success(), "accepted: {out}");
    assert!(
        out.code().is_some() && out.code() != Some(101),
        "crash: {out}"
    );
    assert!(!out.stderr.contains("panicked at"), "panic: {out}");
    if !is_runc() {
        let err = out.stderr.to_lowercase();
        for w in expect {
            assert!(err.contains(&w.to_lowercase()), "no {w:?} in: {out}");
        }
    }
    wait_for(
        &format!("the processes of {mark} to go away"),
        Duration::from_secs(5),
        || marked_processes(&mark).is_empty().then_some(()),
    );
    wait_for(
        "the container to hold only its init",
        Duration::from_secs(5),
        || (container_procs(init) == vec![init]).then_some(()),
    );
    assert_eq!(b.status(), "running", "the container suffered: {out}");
}

#[test]
fn process_corpus_is_rejected_cleanly_by_exec() {
    require_root!();
    let (b, init) = running_container();
    let cases = corpus("process");
    assert!(cases.len() >= 8, "corpus went missing: {}", cases.len());
    let mut failures = check_table(
        &cases,
        |c| format!("process/{}.json ({})", c.name, c.why),
        |c| {
            let mut p = base_process();
            apply(c, &mut p);
            let expect: Vec<&str> = c.expect.iter().map(String::as_str).collect();
            exec_rejected(&b, init, &c.name, p.to_string().as_bytes(), &expect);
        },
    );
    let p = base_process().to_string();
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let giant = format!("\"/{}\"", "a".repeat(64 << 20));
    let raw: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "invalid-utf8",
            byte_for_marker(&p.replacen("/bin/true", "/bin/\u{1}", 1), 0xff),
            vec!["process-invalid-utf8.json", "args[0]"],
        ),
        (
            "deep",
            p.replacen("[\"/bin/true\"]", &deep, 1).into_bytes(),
            vec!["process-deep.json", "args[0]"],
        ),
        (
            "giant-program",
            p.replacen("\"/bin/true\"", &giant, 1).into_bytes(),
            vec!["args"],
        ),
        ("empty", Vec::new(), vec!["process-empty.json", "EOF"]),
        (
            "trailing-garbage",
            format!("{p}{{\"args\":[]}}").into_bytes(),
            vec!["process-trailing-garbage.json"],
        ),
        ("array", b"[]".to_vec(), vec!["process-array.json"]),
    ];
    failures.extend(check_table(
        &raw,
        |c| format!("process raw {}", c.0),
        |(name, bytes, expect)| exec_rejected(&b, init, name, bytes, expect),
    ));
    // A process.json that does not exist, and a directory.
    let out = rt_marked(
        &b,
        "missing",
        &["exec", "--process", "/nonexistent/process.json", &b.id],
    );
    assert!(
        !out.success() && out.stderr.contains("process.json"),
        "{out}"
    );
    let out = rt_marked(
        &b,
        "dir",
        &["exec", "--process", b.dir().to_str().unwrap(), &b.id],
    );
    assert!(!out.success(), "{out}");
    report(cases.len() + raw.len(), failures);
}

// ------------------------------------------------------------ container ids --

#[test]
fn hostile_ids_are_rejected_cleanly() {
    require_root!();
    let ids = [
        "",
        ".",
        "..",
        "a/b",
        "../escape",
        "/abs",
        "a/../../b",
        "with space",
        "nul\u{1}",
        "x\ny",
    ];
    let long = "a".repeat(1025);
    let mut all: Vec<&str> = ids.to_vec();
    all.push(&long);
    run_table(
        &all,
        |id| format!("id {id:?}"),
        |id| {
            let b = Bundle::new().args(&["/bin/true"]);
            b.write_config();
            let out = create_raw(&b, id, &[]);
            assert_rejected(&b, &b.id, &out, &["container id"]);
            let parent = b.state_root().parent().unwrap();
            assert!(
                !parent.join("escape").exists() && !parent.join("b").exists(),
                "an id escaped the state root: {out}"
            );
            // Nor may other commands act outside the root with it.
            for cmd in ["state", "delete", "kill", "start"] {
                let o = rt_marked(&b, &b.id, &[cmd, id]);
                assert!(!o.success(), "{o}");
            }
        },
    );
}

// --------------------------------------------- prepared root filesystems --

/// A private, writable copy of the test rootfs inside the bundle.
fn private_rootfs(b: &Bundle) -> PathBuf {
    let dst = b.dir().join("rootfs");
    let st = Command::new("cp")
        .args(["-a", common::rootfs().to_str().unwrap()])
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a rootfs");
    dst
}

fn with_root(b: Bundle, rootfs: &Path) -> Bundle {
    let p = rootfs.to_str().unwrap().to_owned();
    b.json_patch(|c| {
        c["root"]["path"] = json!(p);
        c["root"]["readonly"] = json!(false);
    })
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn root_path_that_is_a_file_is_rejected() {
    require_root!();
    let b = Bundle::new().args(&["/bin/true"]);
    let file = b.dir().join("rootfs-file");
    fs::write(&file, "not a directory").unwrap();
    let f = file.to_str().unwrap().to_owned();
    let b = b.json_patch(|c| c["root"]["path"] = json!(f));
    b.write_config();
    let out = create_raw(&b, &b.id, &[]);
    assert_rejected(&b, &b.id, &out, &["root.path", "not a directory"]);
}

/// CVE-2019-19921 shape: /proc in the image is a symlink to a host
/// directory; mounting procfs there would put it on the host.
#[test]
fn symlinked_proc_destination_is_rejected() {
    require_root!();
    for target_kind in ["absolute", "relative"] {
        let host = open_tempdir();
        let b = Bundle::new().args(&["/bin/true"]);
        let rootfs = private_rootfs(&b);
        fs::remove_dir(rootfs.join("proc")).unwrap();
        let target = match target_kind {
            "absolute" => host.path().to_path_buf(),
            _ => {
                // Enough ".." to reach / from <rootfs>, then the host dir.
                let depth = rootfs.components().count();
                let mut p = PathBuf::new();
                for _ in 0..depth + 2 {
                    p.push("..");
                }
                p.join(host.path().strip_prefix("/").unwrap())
            }
        };
        symlink(&target, rootfs.join("proc")).unwrap();
        let b = with_root(b, &rootfs).watch_mounts(host.path().to_str().unwrap());
        b.write_config();
        let out = create_raw(&b, &b.id, &[]);
        assert_rejected(&b, &b.id, &out, &["/proc"]);
        assert!(
            entries(host.path()).is_empty(),
            "{target_kind}: the host directory was written to: {:?}",
            entries(host.path())
        );
        drop(b);
    }
}

/// /dev in the image is a symlink to a host directory: no device node may
/// be created on the host, whether /dev gets a tmpfs or not.
#[test]
fn symlinked_dev_creates_nothing_on_the_host() {
    require_root!();
    for tmpfs_on_dev in [true, false] {
        let host = open_tempdir();
        let b = Bundle::new().args(&["/bin/true"]);
        let rootfs = private_rootfs(&b);
        fs::remove_dir_all(rootfs.join("dev")).unwrap();
        symlink(host.path(), rootfs.join("dev")).unwrap();
        let mut b = with_root(b, &rootfs).watch_mounts(host.path().to_str().unwrap());
        if !tmpfs_on_dev {
            b.config["mounts"]
                .as_array_mut()
                .unwrap()
                .retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
        }
        b.write_config();
        let out = create_raw(&b, &b.id, &[]);
        assert_rejected(&b, &b.id, &out, &["/dev"]);
        assert!(
            entries(host.path()).is_empty(),
            "tmpfs on /dev: {tmpfs_on_dev}: devices created on the host: {:?}\n{out}",
            entries(host.path())
        );
        drop(b);
    }
}

// ----------------------------------------------------------- CLI options --

#[test]
fn missing_console_socket_is_rejected() {
    require_root!();
    let b = Bundle::new().terminal(true).args(&["/bin/sh"]);
    b.write_config();
    let sock = b.dir().join("no-such-dir/console.sock");
    let out = create_raw(&b, &b.id, &["--console-socket", sock.to_str().unwrap()]);
    assert_rejected(&b, &b.id, &out, &["console"]);
}

/// The pid file is written last, after the init exists: failing there must
/// still undo everything (init, cgroup, state).
#[test]
fn pid_file_in_missing_directory_leaves_nothing() {
    require_root!();
    let b = Bundle::new().probe(&["sleep", "600"]);
    b.write_config();
    let pid_file = b.dir().join("no/such/dir/ctr.pid");
    let out = create_raw(&b, &b.id, &["--pid-file", pid_file.to_str().unwrap()]);
    assert_rejected(&b, &b.id, &out, &["pid"]);
    assert!(!b.dir().join("no").exists(), "pid-file dir was created");
    assert!(
        common::cgroup_dirs_named(&b.id).is_empty(),
        "cgroup left: {out}"
    );
}

// ------------------------------------------------------------------ races --

/// While containers are created with a bind mount whose destination lies
/// below `/mnt/race` of the rootfs, another thread keeps swapping that
/// directory for a symlink to a host directory. Whatever wins, nothing may
/// appear on the host directory: no mount, no created mount point.
#[test]
fn rootfs_swapped_for_a_symlink_during_create() {
    require_root!();
    for share_host_mount_ns in [true, false] {
        if share_host_mount_ns && is_runc() {
            eprintln!("skipped without a mount namespace: runc leaves its mounts behind");
            continue;
        }
        race_once(share_host_mount_ns);
    }
}

fn race_once(share_host_mount_ns: bool) {
    let host = open_tempdir();
    fs::create_dir(host.path().join("sub")).unwrap();
    let src = open_tempdir();
    fs::write(src.path().join("marker"), "bind source").unwrap();
    let owner = Bundle::new();
    let rootfs = private_rootfs(&owner);
    let race = rootfs.join("mnt/race");
    fs::create_dir_all(race.join("sub")).unwrap();
    let host_s = host.path().to_str().unwrap().to_owned();
    let bundle = || {
        let mut b = with_root(Bundle::in_root(owner.state_root()), &rootfs)
            .args(&["/bin/true"])
            .mount(
                "/mnt/race/sub/new",
                "bind",
                src.path().to_str().unwrap(),
                &["rbind", "ro"],
            )
            .watch_mounts(&host_s)
            .watch_mounts(rootfs.to_str().unwrap());
        if share_host_mount_ns {
            b = b.without_namespace("mount");
            b.config["linux"]["maskedPaths"] = json!([]);
            b.config["linux"]["readonlyPaths"] = json!([]);
        }
        b
    };
    let host_unchanged = |out: &RtOutput| {
        assert!(
            entries(&host.path().join("sub")).is_empty() && entries(host.path()) == ["sub"],
            "the host directory changed: {:?} {:?}\n{out}",
            entries(host.path()),
            entries(&host.path().join("sub"))
        );
    };

    // Without the racer the config is good, so refusals below are the race.
    let control = bundle();
    let out = control.create();
    out.ok();
    control.delete_force().ok();
    host_unchanged(&out);
    drop(control);

    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let stop = stop.clone();
        let race = race.clone();
        let aside = rootfs.join("mnt/race.dir");
        let host = host.path().to_path_buf();
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if fs::rename(&race, &aside).is_ok() {
                    let _ = symlink(&host, &race);
                    std::thread::yield_now();
                    let _ = fs::remove_file(&race);
                    let _ = fs::rename(&aside, &race);
                    swaps += 1;
                }
            }
            swaps
        })
    };

    let start = Instant::now();
    let (mut ok, mut failed) = (0, 0);
    let mut reasons = std::collections::BTreeSet::new();
    let mut outcome = Ok(());
    while start.elapsed() < Duration::from_secs(1) || ok + failed < 8 {
        let b = bundle();
        let res = catch_unwind(AssertUnwindSafe(|| {
            let out = b.create();
            if out.success() {
                ok += 1;
                let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
                assert!(
                    !mi.contains(&host_s),
                    "a mount landed on the host directory"
                );
            } else {
                failed += 1;
                assert!(!out.stderr.contains("panicked at"), "panic: {out}");
                reasons.insert(out.stderr.trim().replace(&b.id, "<id>"));
            }
            b.delete_force().ok();
            host_unchanged(&out);
            drop(b);
        }));
        if let Err(e) = res {
            outcome = Err(e);
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    // Put the directory back for the drop checks.
    if race.is_symlink() {
        fs::remove_file(&race).unwrap();
    }
    if !race.exists() {
        fs::rename(rootfs.join("mnt/race.dir"), &race).unwrap();
    }
    eprintln!(
        "race (host mount ns: {share_host_mount_ns}): {ok} created, {failed} refused, \
         {swaps} swaps; refusals: {reasons:#?}"
    );
    if let Err(e) = outcome {
        std::panic::resume_unwind(e);
    }
}

/// A seccomp profile past the kernel's 4096 BPF instructions (built here:
/// as a corpus file it would be a megabyte).
#[test]
fn seccomp_profile_over_the_instruction_limit_is_rejected() {
    require_root!();
    let rules: Vec<Value> = (0..8000)
        .map(|v| {
            json!({"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                   "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]})
        })
        .collect();
    let b = Bundle::new().args(&["/bin/true"]).json_patch(|c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules});
    });
    b.write_config();
    let out = create_raw(&b, &b.id, &[]);
    assert_rejected(&b, &b.id, &out, &["seccomp", "4096"]);
}

// ------------------------------------------ symlinked mount destinations --

/// Mount destinations that are symlinks in the image, of every shape: to an
/// absolute host directory, `..` chains past the root, a loop, a dangling
/// link into a host path that does not exist yet, a link into /proc. Each
/// create either succeeds with the mount inside the root or is refused
/// cleanly; the host directory never changes.
#[test]
fn symlinked_mount_destinations_stay_in_the_root() {
    require_root!();
    let host = open_tempdir();
    fs::write(host.path().join("marker"), "host").unwrap();
    let src = open_tempdir();
    fs::write(src.path().join("from-src"), "bind source").unwrap();
    let hp = host.path().to_path_buf();
    let up = |rootfs: &Path| {
        let mut p = PathBuf::new();
        for _ in 0..rootfs.components().count() + 3 {
            p.push("..");
        }
        p.join(hp.strip_prefix("/").unwrap())
    };
    let shapes: Vec<(&str, LinkTarget)> = vec![
        ("absolute", Box::new(|_| hp.clone())),
        ("dotdot", Box::new(up)),
        ("loop", Box::new(|_| PathBuf::from("/mnt/evil"))),
        ("dangling", Box::new(|_| hp.join("not-yet/deeper"))),
        ("into-proc", Box::new(|_| PathBuf::from("/proc/sys/kernel"))),
        ("into-sys", Box::new(|_| PathBuf::from("/sys/fs/cgroup"))),
    ];
    for (kind, ty) in [("bind", "bind"), ("tmpfs", "tmpfs")] {
        run_table(
            &shapes,
            |(name, _)| format!("{kind} onto a {name} symlink"),
            |(_, target)| {
                let b = Bundle::new().args(&["/bin/true"]);
                let rootfs = private_rootfs(&b);
                fs::create_dir_all(rootfs.join("mnt")).unwrap();
                symlink(target(&rootfs), rootfs.join("mnt/evil")).unwrap();
                let source = if ty == "bind" {
                    src.path().to_str().unwrap().to_owned()
                } else {
                    "tmpfs".to_owned()
                };
                let opts: &[&str] = if ty == "bind" { &["rbind"] } else { &[] };
                let b = with_root(b, &rootfs)
                    .mount("/mnt/evil", ty, &source, opts)
                    .watch_mounts(hp.to_str().unwrap());
                let mark = b.id.clone();
                b.write_config();
                let out = create_raw(&b, &mark, &[]);
                if out.success() {
                    b.note_pid();
                    b.delete_force().ok();
                } else {
                    assert_rejected(&b, &mark, &out, &[]);
                }
                assert_eq!(entries(&hp), ["marker"], "host directory changed: {out}");
                assert_eq!(fs::read_to_string(hp.join("marker")).unwrap(), "host");
            },
        );
    }
}

// -------------------------------------------- /dev and /proc race loops --

/// While containers are created, another thread keeps swapping the image's
/// /dev (without a /dev tmpfs, so devices are made in it) or /proc for a
/// symlink to a host directory. Whatever wins, no device node, mount point
/// or mount may appear in the host directory.
#[test]
fn dev_and_proc_swapped_for_symlinks_during_create() {
    require_root!();
    for dir in ["dev", "proc"] {
        let host = open_tempdir();
        let owner = Bundle::new();
        let rootfs = private_rootfs(&owner);
        let host_s = host.path().to_str().unwrap().to_owned();
        let bundle = || {
            let mut b = with_root(Bundle::in_root(owner.state_root()), &rootfs)
                .args(&["/bin/true"])
                .watch_mounts(&host_s);
            if dir == "dev" {
                b.config["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|m| m["destination"] != "/dev");
            }
            b
        };
        let stop = Arc::new(AtomicBool::new(false));
        let racer = {
            let stop = stop.clone();
            let real = rootfs.join(dir);
            let aside = rootfs.join(format!("{dir}.aside"));
            let link = rootfs.join(format!("{dir}.link"));
            symlink(host.path(), &link).unwrap();
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Atomically exchange the directory and the symlink.
                    if rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        &real,
                        rustix::fs::CWD,
                        &link,
                        rustix::fs::RenameFlags::EXCHANGE,
                    )
                    .is_ok()
                    {
                        swaps += 1;
                    }
                }
                // Leave the real directory in place.
                if real.is_symlink() {
                    let _ = rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        &real,
                        rustix::fs::CWD,
                        &link,
                        rustix::fs::RenameFlags::EXCHANGE,
                    );
                }
                let _ = aside;
                swaps
            })
        };
        let start = Instant::now();
        let (mut ok, mut refused) = (0, 0);
        let mut outcome = Ok(());
        while start.elapsed() < Duration::from_secs(1) || ok + refused < 8 {
            let b = bundle();
            let res = catch_unwind(AssertUnwindSafe(|| {
                let out = b.create();
                if out.success() {
                    ok += 1;
                } else {
                    refused += 1;
                    assert!(out.code().is_some_and(|c| c != 101), "crash: {out}");
                    assert!(!out.stderr.trim().is_empty(), "no message: {out}");
                }
                b.delete_force().ok();
                assert!(
                    entries(host.path()).is_empty(),
                    "/{dir} race: the host directory changed: {:?}\n{out}",
                    entries(host.path())
                );
                drop(b);
            }));
            if let Err(e) = res {
                outcome = Err(e);
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let swaps = racer.join().unwrap();
        eprintln!("/{dir} race: {ok} created, {refused} refused, {swaps} swaps");
        if let Err(e) = outcome {
            std::panic::resume_unwind(e);
        }
        assert!(swaps > 0, "the racer never swapped /{dir}");
    }
}

// ------------------------------------------------------------ giant lists --

/// Lists far beyond anything real: each is either handled or refused
/// cleanly, within the command timeout, leaving nothing behind.
#[test]
fn giant_lists_are_handled_or_refused() {
    require_root!();
    let env: Vec<String> = (0..100_000).map(|i| format!("V{i}=x")).collect();
    let masked: Vec<String> = (0..20_000).map(|i| format!("/proc/none-{i}")).collect();
    let deep_dest = format!("/{}", vec!["d"; 3000].join("/"));
    let gids: Vec<u32> = (1..=65_537).collect();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("100k environment entries", json!(env), "/process/env"),
        ("20k masked paths", json!(masked), "/linux/maskedPaths"),
        (
            "a 3000-component mount destination",
            json!([{"destination": deep_dest, "type": "tmpfs", "source": "tmpfs"}]),
            "/mounts/-",
        ),
        (
            "65537 additional gids (NGROUPS_MAX + 1)",
            json!(gids),
            "/process/user/additionalGids",
        ),
    ];
    run_table(
        &cases,
        |c| c.0.to_owned(),
        |(name, val, ptr)| {
            let mut b = Bundle::new().args(&["/bin/true"]);
            if *ptr == "/mounts/-" {
                // Mount points are made in the root: never the shared one.
                let rootfs = private_rootfs(&b);
                b = with_root(b, &rootfs);
                b.config["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .push(val[0].clone());
            } else {
                pointer_set(&mut b.config, ptr, val.clone());
            }
            b.write_config();
            let mark = b.id.clone();
            let out = create_raw(&b, &mark, &[]);
            eprintln!(
                "{name}: {}",
                out.stderr.lines().next().unwrap_or("accepted")
            );
            if out.success() {
                b.note_pid();
                b.delete_force().ok();
            } else {
                assert_rejected(&b, &mark, &out, &[]);
            }
        },
    );
}

/// How a hostile symlink target is made from the container's rootfs path.
type LinkTarget<'a> = Box<dyn Fn(&Path) -> PathBuf + 'a>;
