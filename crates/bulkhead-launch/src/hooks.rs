//! OCI hooks: run a hook program with the container state on its stdin,
//! its own env, and an optional timeout.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_spec::plan::HookPlan;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{kind} hook {path}: {reason}")]
    Failed {
        kind: String,
        path: PathBuf,
        reason: String,
    },
}

/// The parts of the OCI state that do not change during the lifecycle.
#[derive(Debug, Clone, Serialize)]
pub struct HookState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub bundle: PathBuf,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl HookState {
    /// The state JSON a hook reads on stdin.
    pub fn json(&self, status: &str, pid: i32) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("status".into(), status.into());
            if pid > 0 {
                o.insert("pid".into(), pid.into());
            }
        }
        v.to_string()
    }
}

/// Run each hook in order; the first failure stops the list.
pub fn run_all(kind: &str, hooks: &[HookPlan], state: &str) -> Result<(), HookError> {
    for h in hooks {
        run_one(kind, h, state)?;
    }
    Ok(())
}

/// Run every hook in order, whatever the earlier ones did, and return the
/// failures: for poststart and poststop a failure is only a warning and "the
/// remaining hooks and lifecycle continue as if the hook had succeeded".
pub fn run_all_warn(kind: &str, hooks: &[HookPlan], state: &str) -> Vec<HookError> {
    hooks
        .iter()
        .filter_map(|h| run_one(kind, h, state).err())
        .collect()
}

fn run_one(kind: &str, h: &HookPlan, state: &str) -> Result<(), HookError> {
    let fail = |reason: String| HookError::Failed {
        kind: kind.to_string(),
        path: h.path.clone(),
        reason,
    };
    let mut cmd = Command::new(&h.path);
    if let Some((argv0, rest)) = h.args.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    if let Some(env) = &h.env {
        cmd.env_clear();
        for e in env {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    // Hook output goes to the runtime's stderr: a hook that writes a lot must
    // never block on a pipe nobody drains.
    let to_stderr = || {
        std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null())
    };
    cmd.stdin(Stdio::piped())
        .stdout(to_stderr())
        .stderr(to_stderr());
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = h
        .timeout_secs
        .map(|t| Instant::now() + Duration::from_secs(t));
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(fail(e.to_string())),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!(
                "timed out after {} s",
                h.timeout_secs.unwrap_or_default()
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    if !status.success() {
        return Err(fail(status.to_string()));
    }
    Ok(())
}
