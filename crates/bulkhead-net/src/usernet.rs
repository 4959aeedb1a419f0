//! User-mode networking for rootless sandboxes: `pasta` (passt package),
//! or `slirp4netns` where pasta is missing. An unprivileged user cannot
//! make veths or firewall rules; these helpers give the sandbox's network
//! namespace a tap device and carry its traffic over ordinary sockets of
//! the user on the host, so the sandbox reaches what the user could reach.
//!
//! What the user's loopback serves is not for the sandbox: pasta runs
//! with `-T none -U none` (no forwarding of the namespace's loopback ports
//! to the host's) and `--no-map-gw` (the gateway address is not the
//! host), slirp4netns with `--disable-host-loopback`.
//!
//! The helper outlives the `bulkhead sandbox` that started it when the
//! sandbox is detached, and it does not notice the namespace's end (this
//! pasta holds the namespace itself): its pid is kept in
//! `<state root>/.usernet/<id>.pid` (a dot name: never a container id) and
//! [`stop`] ends it when the container is deleted.

use std::fmt;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;

use crate::addr::{Proto, Publish};
use crate::error::{NetError, Result};

/// Which helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Pasta,
    Slirp4netns,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Pasta => "pasta",
            Backend::Slirp4netns => "slirp4netns",
        })
    }
}

impl FromStr for Backend {
    type Err = ();
    fn from_str(s: &str) -> Result<Backend, ()> {
        match s {
            "pasta" => Ok(Backend::Pasta),
            "slirp4netns" => Ok(Backend::Slirp4netns),
            _ => Err(()),
        }
    }
}

/// Where `program` is on PATH, if anywhere.
fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The helper for `--network` `asked` (pasta, slirp4netns, or None for
/// "the default": pasta, else slirp4netns), with its path.
pub fn choose(asked: Option<Backend>) -> Result<(Backend, PathBuf)> {
    let field = format!(
        "--network {}",
        asked.map_or("pasta".into(), |b| b.to_string())
    );
    let candidates: &[Backend] = match asked {
        Some(b) => &[b][..],
        None => &[Backend::Pasta, Backend::Slirp4netns],
    };
    for b in candidates {
        if let Some(p) = find(&b.to_string()) {
            return Ok((*b, p));
        }
    }
    Err(NetError::invalid(
        &field,
        match asked {
            Some(Backend::Slirp4netns) => {
                "slirp4netns is not installed (apt-get install slirp4netns)".to_string()
            }
            _ => "neither pasta nor slirp4netns is installed (apt-get install passt)".to_string(),
        },
    ))
}

/// The checks that need no container: the helper can open a tap device,
/// and what it is asked to publish it can publish.
pub fn precheck(backend: Backend, publish: &[Publish]) -> Result<()> {
    let field = format!("--network {backend}");
    let tun = Path::new("/dev/net/tun");
    if rustix::fs::access(
        tun,
        rustix::fs::Access::READ_OK | rustix::fs::Access::WRITE_OK,
    )
    .is_err()
    {
        return Err(NetError::invalid(
            &field,
            format!(
                "{} is not readable and writable by this user, and user-mode networking needs a \
                 tap device (udev makes it mode 0666 on most hosts: `chmod 0666 /dev/net/tun` as root)",
                tun.display()
            ),
        ));
    }
    crate::ports::check_free(publish)
}

/// The pid file of container `id`'s helper.
pub fn pid_file(state_root: &Path, id: &str) -> PathBuf {
    state_root.join(".usernet").join(format!("{id}.pid"))
}

/// pasta's `-t`/`-u` options for the publications of one protocol: one
/// option each (an address in a spec applies to all its ports).
fn port_options(publish: &[Publish], proto: Proto) -> Vec<String> {
    let flag = match proto {
        Proto::Tcp => "--tcp-ports",
        Proto::Udp => "--udp-ports",
    };
    let specs: Vec<String> = publish
        .iter()
        .filter(|p| p.proto == proto)
        .map(|p| match p.host_ip {
            Some(ip) => format!("{ip}/{}:{}", p.host_port, p.container_port),
            None => format!("{}:{}", p.host_port, p.container_port),
        })
        .collect();
    if specs.is_empty() {
        return vec![flag.into(), "none".into()];
    }
    specs
        .into_iter()
        .flat_map(|s| [flag.to_string(), s])
        .collect()
}

/// pasta's arguments for the namespaces of `pid`.
pub fn pasta_args(pid: i32, publish: &[Publish], pid_file: &Path) -> Vec<String> {
    let mut a: Vec<String> = [
        "--config-net",
        "--quiet",
        // Nothing of the host's loopback: no namespace-to-host port
        // forwarding, and the gateway address is not remapped to it.
        "--tcp-ns",
        "none",
        "--udp-ns",
        "none",
        "--no-map-gw",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(port_options(publish, Proto::Tcp));
    a.extend(port_options(publish, Proto::Udp));
    a.push("--pid".into());
    a.push(pid_file.display().to_string());
    a.push(pid.to_string());
    a
}

/// What one sandbox asks for.
pub struct Request<'a> {
    pub backend: Backend,
    pub program: &'a Path,
    /// A process in the container's user and network namespaces.
    pub pid: i32,
    pub publish: &'a [Publish],
    pub state_root: &'a Path,
    pub container: &'a str,
}

/// Starts the helper for the namespaces of `req.pid` and returns once the
/// namespace's interface is configured. On failure nothing is left
/// running.
pub fn start(req: &Request) -> Result<()> {
    let file = pid_file(req.state_root, req.container);
    let dir = file.parent().expect("pid file in a directory");
    std::fs::create_dir_all(dir).map_err(|e| NetError::io(dir, e))?;
    // A leftover of an earlier container of that name.
    stop(req.state_root, req.container)?;
    let started = match req.backend {
        Backend::Pasta => start_pasta(req, &file),
        Backend::Slirp4netns => start_slirp(req, &file),
    };
    if started.is_err() {
        let _ = stop(req.state_root, req.container);
    }
    started
}

fn start_pasta(req: &Request, file: &Path) -> Result<()> {
    let args = pasta_args(req.pid, req.publish, file);
    let command = format!("pasta {}", args.join(" "));
    tracing::debug!("{command}");
    // pasta forks into the background once the namespace is configured
    // (and the pid file written); the parent's exit status says how it
    // went. The daemon does not keep our pipes.
    let out = Command::new(req.program)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| NetError::Command {
            command: command.clone(),
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(NetError::Command {
            command,
            stderr: helper_stderr(&out.stderr),
        });
    }
    Ok(())
}

/// The helper's stderr without its complaints about a missing syslog.
fn helper_stderr(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .lines()
        .filter(|l| !l.contains("syslog"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn start_slirp(req: &Request, file: &Path) -> Result<()> {
    let (ready_r, ready_w) =
        rustix::pipe::pipe().map_err(|e| NetError::io("pipe", std::io::Error::from(e)))?;
    // The write end is the helper's: inherited across exec.
    rustix::io::fcntl_setfd(&ready_w, rustix::io::FdFlags::empty())
        .map_err(|e| NetError::io("pipe", std::io::Error::from(e)))?;
    let pid = req.pid.to_string();
    let args = [
        "--configure".to_string(),
        "--mtu=65520".to_string(),
        "--disable-host-loopback".to_string(),
        format!("--ready-fd={}", ready_w.as_raw_fd()),
        format!("--userns-path=/proc/{pid}/ns/user"),
        format!("--api-socket={}", api_socket(file).display()),
        pid.clone(),
        "tap0".to_string(),
    ];
    let command = format!("slirp4netns {}", args.join(" "));
    tracing::debug!("{command}");
    let log = file.with_extension("log");
    let log_file = std::fs::File::create(&log).map_err(|e| NetError::io(&log, e))?;
    let child = Command::new(req.program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| NetError::Command {
            command: command.clone(),
            stderr: e.to_string(),
        })?;
    drop(ready_w);
    std::fs::write(file, child.id().to_string()).map_err(|e| NetError::io(file, e))?;
    // "1" once configured; EOF if it died first.
    let mut buf = [0u8; 1];
    let mut r = std::fs::File::from(ready_r);
    let ready = matches!(r.read(&mut buf), Ok(1));
    if !ready {
        let text = std::fs::read(&log).unwrap_or_default();
        return Err(NetError::Command {
            command,
            stderr: helper_stderr(&text),
        });
    }
    // The child is not waited for: it lives as long as the container.
    drop(child);
    for p in req.publish {
        slirp_hostfwd(&api_socket(file), p)?;
    }
    Ok(())
}

/// Ends container `id`'s helper, if it has one; true if it had. Only a
/// process whose command line names this pid file is signalled (a pid
/// reused since is left alone).
pub fn stop(state_root: &Path, id: &str) -> Result<bool> {
    let file = pid_file(state_root, id);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(NetError::io(&file, e)),
    };
    if let Some(pid) = text.trim().parse::<i32>().ok().filter(|p| *p > 0) {
        kill_helper(pid, &file);
    }
    for f in [file.clone(), file.with_extension("log"), api_socket(&file)] {
        match std::fs::remove_file(&f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(NetError::io(&f, e));
            }
            _ => {}
        }
    }
    Ok(true)
}

fn kill_helper(pid: i32, file: &Path) {
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return;
    };
    // The pidfd pins the process: what is checked is what gets signalled.
    let Ok(fd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    // pasta has the pid file in its arguments, slirp4netns its API socket.
    let marks = [
        file.as_os_str().as_encoded_bytes().to_vec(),
        format!("--api-socket={}", api_socket(file).display()).into_bytes(),
    ];
    if !cmdline
        .split(|b| *b == 0)
        .any(|arg| marks.iter().any(|m| m == arg))
    {
        return;
    }
    if rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL).is_err() {
        return;
    }
    // Its sockets (published ports) close when it exits.
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let timeout = rustix::event::Timespec {
        tv_sec: 5,
        tv_nsec: 0,
    };
    let _ = rustix::event::poll(&mut fds, Some(&timeout));
}

/// slirp4netns's API socket, next to the pid file.
fn api_socket(pid_file: &Path) -> PathBuf {
    pid_file.with_extension("sock")
}

/// Publishes one port through slirp4netns's API socket.
fn slirp_hostfwd(sock: &Path, p: &Publish) -> Result<()> {
    use std::io::Write;
    let req = serde_json::json!({"execute": "add_hostfwd", "arguments": {
        "proto": p.proto.to_string(),
        "host_addr": p.host_ip.map_or("0.0.0.0".to_string(), |ip| ip.to_string()),
        "host_port": p.host_port,
        "guest_port": p.container_port,
    }});
    let io = |e: std::io::Error| NetError::io(sock, e);
    let mut s = std::os::unix::net::UnixStream::connect(sock).map_err(io)?;
    s.write_all(req.to_string().as_bytes()).map_err(io)?;
    s.shutdown(std::net::Shutdown::Write).map_err(io)?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(io)?;
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    if v.get("return").is_some() {
        return Ok(());
    }
    Err(NetError::PortInUse {
        spec: p.to_string(),
        reason: format!(
            "slirp4netns: {}",
            v["error"]["desc"].as_str().unwrap_or(&answer)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasta_never_forwards_the_host_loopback_and_publishes_what_is_asked() {
        let publish: Vec<Publish> = ["8080:80", "127.0.0.1:8443:443", "5353:53/udp"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        let a = pasta_args(42, &publish, Path::new("/run/x.pid")).join(" ");
        assert!(a.contains("--tcp-ns none --udp-ns none --no-map-gw"), "{a}");
        assert!(
            a.contains("--tcp-ports 8080:80 --tcp-ports 127.0.0.1/8443:443"),
            "{a}"
        );
        assert!(a.contains("--udp-ports 5353:53"), "{a}");
        assert!(a.ends_with("--pid /run/x.pid 42"), "{a}");
        let none = pasta_args(42, &[], Path::new("/p")).join(" ");
        assert!(none.contains("--tcp-ports none --udp-ports none"), "{none}");
    }
}
