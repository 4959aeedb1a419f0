//! `process.terminal` with `--console-socket`: the runtime passes exactly
//! one pty master over the socket and the container runs on the slave.

#[macro_use]
mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use common::Bundle;
use common::console::{ConsoleSocket, PtyReader, pty_write};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(15);

fn assert_pty_master(fd: &OwnedFd) {
    let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        target.ends_with("ptmx"),
        "received fd is {target}, not a pty master"
    );
    let name = rustix::pty::ptsname(fd, Vec::new()).expect("TIOCGPTN on received fd");
    assert!(name.to_string_lossy().starts_with("/dev/pts/"), "{name:?}");
}

/// Creates `b` with a console socket, returns the master (container not
/// started yet).
fn create_with_console(b: &Bundle) -> OwnedFd {
    let sock = ConsoleSocket::new();
    let path = sock.path().to_str().unwrap().to_string();
    b.create_with(&["--console-socket", &path]).ok();
    let master = sock.master();
    assert_pty_master(&master);
    master
}

fn pts_number(text: &str, marker: &str) -> Option<u32> {
    let at = text.find(marker)? + marker.len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[test]
fn interactive_shell_on_pty() {
    require_root!();
    let b = Bundle::new().terminal(true).args(&["/bin/sh"]);
    let master = create_with_console(&b);
    let mut reader = PtyReader::new(&master);
    b.start().ok();
    pty_write(&master, "echo TTY=$(tty)\n");
    let text = reader.wait_for("TTY=/dev/pts/", T);
    assert!(pts_number(&text, "TTY=/dev/pts/").is_some(), "{text:?}");
    pty_write(&master, "exit 3\n");
    reader.read_to_end(T);
    b.wait_status("stopped");
}

#[test]
fn probe_sees_pty_on_all_stdio() {
    require_root!();
    let b = Bundle::new().terminal(true);
    let master = create_with_console(&b);
    let mut reader = PtyReader::new(&master);
    b.start().ok();
    let text = reader.read_to_end(T);
    let r: Value = common::parse_last_json(&text.replace('\r', ""))
        .unwrap_or_else(|| panic!("no report on the pty: {text:?}"));
    let tty = r["ttyname"]["stdin"].as_str().expect("stdin is a tty");
    assert!(tty.starts_with("/dev/pts/"), "{tty}");
    assert_eq!(r["ttyname"]["stdout"], tty);
    assert_eq!(r["ttyname"]["stderr"], tty);
    // Stdio fds are the slave, nothing else is open.
    let fds: Vec<i64> = r["fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fd"].as_i64().unwrap())
        .collect();
    assert_eq!(fds, vec![0, 1, 2], "{}", r["fds"]);
    b.wait_status("stopped");
}

#[test]
fn dev_console_is_the_pty() {
    require_root!();
    let b = Bundle::new()
        .terminal(true)
        .probe(&["stat", "/dev/console"]);
    let master = create_with_console(&b);
    let mut reader = PtyReader::new(&master);
    b.start().ok();
    let text = reader.read_to_end(T);
    let st: Value = common::parse_last_json(&text.replace('\r', ""))
        .unwrap_or_else(|| panic!("no stat output: {text:?}"));
    assert_eq!(st["type"], "char", "{st}");
    // Unix98 pty slaves have majors 136..143.
    let major = st["major"].as_u64().unwrap();
    assert!((136..=143).contains(&major), "{st}");
}

#[test]
fn terminal_output_uses_crlf() {
    require_root!();
    let b = Bundle::new().terminal(true).sh("echo one; echo two");
    let master = create_with_console(&b);
    let mut reader = PtyReader::new(&master);
    b.start().ok();
    let text = reader.read_to_end(T);
    assert!(text.contains("one\r\ntwo\r\n"), "{text:?}");
}

#[test]
fn console_size_is_applied() {
    require_root!();
    let b = Bundle::new()
        .terminal(true)
        .json_patch(|c| c["process"]["consoleSize"] = json!({"height": 41, "width": 123}))
        .sh("stty size");
    let master = create_with_console(&b);
    let mut reader = PtyReader::new(&master);
    b.start().ok();
    let text = reader.read_to_end(T);
    assert!(text.contains("41 123"), "stty size said {text:?}");
}

#[test]
fn run_detached_with_console_socket() {
    require_root!();
    let b = Bundle::new()
        .terminal(true)
        .sh("echo TTY=$(tty); sleep 600");
    let sock = ConsoleSocket::new();
    let path = sock.path().to_str().unwrap().to_string();
    b.run_with(&["-d", "--console-socket", &path]).ok();
    let master = sock.master();
    assert_pty_master(&master);
    let mut reader = PtyReader::new(&master);
    reader.wait_for("TTY=/dev/pts/", T);
    assert_eq!(b.status(), "running");
}

#[test]
fn terminal_create_without_console_socket_fails() {
    require_root!();
    let b = Bundle::new().terminal(true).args(&["/bin/sh"]);
    b.create().fails();
    b.rt(&["state", &b.id]).fails();
}

#[test]
fn console_socket_without_terminal_fails() {
    require_root!();
    let b = Bundle::new().probe(&["sleep", "600"]);
    let sock = ConsoleSocket::new();
    let path = sock.path().to_str().unwrap().to_string();
    b.create_with(&["--console-socket", &path]).fails();
    b.rt(&["state", &b.id]).fails();
}

#[test]
fn console_socket_missing_path_fails() {
    require_root!();
    let b = Bundle::new().terminal(true).args(&["/bin/sh"]);
    let missing = b.dir().join("no-such.sock");
    b.create_with(&["--console-socket", missing.to_str().unwrap()])
        .fails();
    b.rt(&["state", &b.id]).fails();
}

#[test]
fn pty_slave_owned_by_process_user() {
    require_root!();
    let b = Bundle::new()
        .terminal(true)
        .user(1000, 1000, &[])
        .sh("stat -c '%u:%g' $(tty)");
    let master = create_with_console(&b);
    let mut reader = PtyReader::new(&master);
    b.start().ok();
    let text = reader.read_to_end(T);
    // The slave belongs to the process user (group tty=5 per gid= of
    // devpts, or the user's group).
    assert!(
        text.contains("1000:5") || text.contains("1000:1000"),
        "{text:?}"
    );
}

/// Foreground `run` of a terminal process without --console-socket (what
/// `spec` + `run` in a shell does): the runtime relays its own terminal.
#[test]
fn foreground_run_relays_its_own_terminal() {
    require_root!();
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: script(1) is not installed");
        return;
    }
    let b = Bundle::new()
        .terminal(true)
        .sh("tty; read x; echo got:$x; exit 7");
    b.write_config();
    let cmdline = format!(
        "{} --root {} run --bundle {} {}",
        common::runtime().display(),
        b.state_root().display(),
        b.dir().display(),
        b.id
    );
    let mut child = std::process::Command::new("timeout")
        .args(["30", "script", "-qec", &cmdline, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "{text:?}");
    assert!(text.contains("got:hello"), "{text:?}");
    assert_eq!(out.status.code(), Some(7), "{text:?}");
}
