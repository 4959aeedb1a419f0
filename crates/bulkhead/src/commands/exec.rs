//! `exec`: the process comes from `--process FILE` (what podman and
//! containerd pass) or from the container's own config with flags applied
//! (what people type).

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use bulkhead_lifecycle::{ExecOptions, Store};
use oci_spec::runtime::{Capability, Process};

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// JSON file with the process to run (runtime-spec `process` object).
    #[arg(short = 'p', long)]
    process: Option<PathBuf>,
    /// Allocate a terminal.
    #[arg(short = 't', long)]
    tty: bool,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Do not wait for the process; print nothing and exit 0 once it runs.
    #[arg(short = 'd', long)]
    detach: bool,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// KEY=VALUE, may be repeated.
    #[arg(short = 'e', long)]
    env: Vec<String>,
    /// uid[:gid], numbers or names from the container's /etc/passwd and /etc/group.
    #[arg(short = 'u', long)]
    user: Option<String>,
    #[arg(short = 'g', long, value_delimiter = ',')]
    additional_gids: Vec<u32>,
    /// Add a capability (e.g. CAP_NET_ADMIN), may be repeated.
    #[arg(short = 'c', long)]
    cap: Vec<String>,
    #[arg(long)]
    no_new_privs: bool,
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    #[arg(long)]
    process_label: Option<String>,
    #[arg(long)]
    apparmor: Option<String>,
    /// Allow exec into a paused container.
    #[arg(long)]
    ignore_paused: bool,
    /// Run in this sub-cgroup of the container's cgroup.
    #[arg(long)]
    cgroup: Option<String>,
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn cap_set(names: &HashSet<Capability>, extra: &[Capability]) -> HashSet<Capability> {
    let mut s = names.clone();
    s.extend(extra.iter().copied());
    s
}

/// The container's /etc/passwd and /etc/group, read inside its root (by
/// fd, RESOLVE_IN_ROOT): a symlink in the image cannot point us at the host.
fn container_file(pid: i32, path: &str) -> String {
    use std::io::Read;
    let Ok(root) = pathrs::Root::open(format!("/proc/{pid}/root")) else {
        return String::new();
    };
    let mut s = String::new();
    if let Ok(h) = root.resolve(path)
        && let Ok(mut f) = h.reopen(pathrs::flags::OpenFlags::O_RDONLY)
    {
        let _ = f.read_to_string(&mut s);
    }
    s
}

fn build_process(store: &Store, a: &ExecArgs) -> Result<Process> {
    if let Some(p) = &a.process {
        let bytes = std::fs::read(p).with_context(|| format!("--process {}", p.display()))?;
        let mut process = bulkhead_spec::plan::parse_process(p, &bytes)?;
        if a.tty {
            process.set_terminal(Some(true));
        }
        return Ok(process);
    }
    if a.command.is_empty() {
        bail!("exec: give a command to run, or --process FILE");
    }
    let rec = store.load(&a.id)?;
    let mut p = rec.spec.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &a.env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(c) = &a.cwd {
        p.set_cwd(c.clone());
    }
    if let Some(u) = &a.user {
        let passwd = bulkhead_spec::passwd::parse_passwd(&container_file(rec.pid, "/etc/passwd"));
        let groups = bulkhead_spec::passwd::parse_group(&container_file(rec.pid, "/etc/group"));
        let who = bulkhead_spec::passwd::resolve_spec(u, &[], &passwd, &groups)
            .with_context(|| format!("--user {u}"))?;
        let mut user = p.user().clone();
        user.set_uid(who.uid);
        user.set_gid(who.gid);
        user.set_additional_gids(Some(who.sgids));
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        gids.extend(&a.additional_gids);
        user.set_additional_gids(Some(gids));
        p.set_user(user);
    }
    if !a.cap.is_empty() {
        let extra: Vec<Capability> = a
            .cap
            .iter()
            .map(|c| {
                serde_json::from_value(serde_json::Value::String(c.clone()))
                    .with_context(|| format!("--cap: unknown capability {c:?}"))
            })
            .collect::<Result<_>>()?;
        let mut caps = p.capabilities().clone().unwrap_or_default();
        // Never the inheritable set (CVE-2022-29162).
        let empty = HashSet::new();
        caps.set_bounding(Some(cap_set(
            caps.bounding().as_ref().unwrap_or(&empty),
            &extra,
        )));
        caps.set_effective(Some(cap_set(
            caps.effective().as_ref().unwrap_or(&empty),
            &extra,
        )));
        caps.set_permitted(Some(cap_set(
            caps.permitted().as_ref().unwrap_or(&empty),
            &extra,
        )));
        p.set_capabilities(Some(caps));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(l) = &a.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    if let Some(l) = &a.apparmor {
        p.set_apparmor_profile(Some(l.clone()));
    }
    Ok(p)
}

pub fn run(store: &Store, a: &ExecArgs) -> Result<i32> {
    let process = build_process(store, a)?;
    let terminal = process.terminal().unwrap_or(false);
    if a.detach && terminal && a.console_socket.is_none() {
        bail!("--tty with --detach needs --console-socket");
    }
    let console = if terminal && a.console_socket.is_none() {
        Some(super::tty::Console::listen(&store.root, &a.id)?)
    } else {
        None
    };
    let opts = ExecOptions {
        process,
        console_socket: console
            .as_ref()
            .map(|c| c.path())
            .or_else(|| a.console_socket.clone()),
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
        sub_cgroup: a.cgroup.clone(),
        ignore_paused: a.ignore_paused,
    };
    let pid = store.exec(&a.id, &opts)?;
    if a.detach {
        return Ok(0);
    }
    let master = console.as_ref().map(|c| c.receive()).transpose()?;
    drop(console);
    super::wait_foreground(pid, master.as_ref())
}
