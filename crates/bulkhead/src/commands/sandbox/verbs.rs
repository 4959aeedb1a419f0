//! `bulkhead logs`, `stop`, `rm`, `wait` and `inspect`: the docker verbs
//! for sandboxes (runc has none of them; `ps` keeps runc's meaning).

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bulkhead_lifecycle::{LifecycleError, Record, Status, Store};
use bulkhead_spec::sandbox::{ANNOTATION, STOP_SIGNAL_ANNOTATION};

use super::monitor::{self, ROTATED_LOG};
use super::{LOG_FILE, STATE_ROOT_FILE, sandbox_base};

/// The record of sandbox `name`, and its directory.
pub(crate) fn sandbox(store: &Store, name: &str, verb: &str) -> Result<(Record, PathBuf)> {
    let rec = store.load(name)?;
    if !rec.annotations.contains_key(ANNOTATION) {
        bail!(
            "{verb}: container {name:?} is not a sandbox (made by `bulkhead sandbox`); use the runc verbs (kill, delete)"
        );
    }
    let dir = sandbox_base(store)?.join(name);
    Ok((rec, dir))
}

/// `logs [-f] NAME`: what a detached sandbox wrote to stdout and stderr
/// (the rotated part first); with -f, keeps printing until it has stopped
/// and its monitor has written the last of its output.
pub fn logs(store: &Store, name: &str, follow: bool) -> Result<()> {
    let (rec, dir) = sandbox(store, name, "logs")?;
    let path = dir.join(LOG_FILE);
    let mut f = std::fs::File::open(&path).with_context(|| {
        format!(
            "logs: {} (only detached sandboxes keep a log)",
            path.display()
        )
    })?;
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    if let Ok(mut old) = std::fs::File::open(dir.join(ROTATED_LOG)) {
        copy_all(&mut old, &mut out, &mut buf)?;
    }
    loop {
        // Read the state first: whatever was written before it stopped (and
        // before the monitor, which writes the output, exited) is in the
        // file by then.
        let done = !follow || finished(store, &rec, &dir);
        copy_all(&mut f, &mut out, &mut buf)?;
        out.flush()?;
        if done {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
        // Rotated: the rest is in the new file.
        let same =
            |a: &std::fs::Metadata, b: &std::fs::Metadata| (a.dev(), a.ino()) == (b.dev(), b.ino());
        if let (Ok(now), Ok(held)) = (std::fs::metadata(&path), f.metadata())
            && !same(&now, &held)
        {
            copy_all(&mut f, &mut out, &mut buf)?;
            f = std::fs::File::open(&path).context("reopen the rotated log")?;
        }
    }
}

fn copy_all(f: &mut std::fs::File, out: &mut impl Write, buf: &mut [u8]) -> Result<()> {
    loop {
        let n = f.read(buf).context("read the log")?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])?;
    }
}

/// Stopped, and no monitor is left to write output or record the exit.
fn finished(store: &Store, rec: &Record, dir: &Path) -> bool {
    store.status(rec) == Status::Stopped && !monitor::running(dir)
}

/// Polls until the sandbox is stopped or `timeout` has passed.
fn wait_stopped(store: &Store, rec: &Record, timeout: Duration) -> bool {
    let start = Instant::now();
    loop {
        if store.status(rec) == Status::Stopped {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `stop [-t SECS] NAME`: the stop signal (the image's, else SIGTERM) to
/// the sandbox's init, then SIGKILL to all its processes after SECS.
pub fn stop(store: &Store, name: &str, secs: u64) -> Result<()> {
    let (rec, _) = sandbox(store, name, "stop")?;
    match store.status(&rec) {
        Status::Stopped => return Ok(()),
        // A frozen process only gets its signal once thawed.
        Status::Paused => store.resume(name)?,
        _ => {}
    }
    let sig = match rec.annotations.get(STOP_SIGNAL_ANNOTATION) {
        Some(s) => bulkhead_spec::signal::parse(s)?,
        None => libc::SIGTERM,
    };
    // It may stop between the status check and here.
    let _ = store.kill(name, sig, false);
    if wait_stopped(store, &rec, Duration::from_secs(secs)) {
        return Ok(());
    }
    let _ = store.kill(name, libc::SIGKILL, true);
    if !wait_stopped(store, &rec, Duration::from_secs(10)) {
        bail!("stop: sandbox {name:?} is still running after SIGKILL");
    }
    Ok(())
}

/// `rm [-f] NAME`: deletes the container and its sandbox directory; a
/// running one only with -f (killed first).
pub fn rm(store: &Store, name: &str, force: bool) -> Result<()> {
    let dir = sandbox_base(store)?.join(name);
    let ours = || {
        let recorded = std::fs::read(dir.join(STATE_ROOT_FILE)).ok();
        let root = std::path::absolute(&store.root).ok();
        recorded.is_some() && recorded == root.map(|r| r.as_os_str().as_encoded_bytes().to_vec())
    };
    if matches!(store.load(name), Err(LifecycleError::NotExist(_)))
        && bulkhead_spec::id::validate(name).is_ok()
        && ours()
    {
        // Its container was deleted with `delete`: only the directory is left.
        monitor::wait_gone(&dir, Duration::from_secs(10))?;
        return super::remove_dir(&dir);
    }
    let (rec, dir) = sandbox(store, name, "rm")?;
    let status = store.status(&rec);
    if status != Status::Stopped && status != Status::Created && !force {
        bail!("rm: sandbox {name:?} is {status}: stop it first, or use rm -f");
    }
    crate::commands::delete(store, name, force)?;
    // Its container is gone, so its monitor ends at once (with --rm it
    // removes the directory itself); never remove a directory it writes in.
    monitor::wait_gone(&dir, Duration::from_secs(10))?;
    super::remove_dir(&dir)
}

/// `wait NAME…`: blocks until each sandbox has stopped and prints its exit
/// code (the status, or 128 + the signal), as `docker wait`.
pub fn wait(store: &Store, names: &[String]) -> Result<()> {
    for name in names {
        let (_, dir) = sandbox(store, name, "wait")?;
        // With --rm, the monitor removes the sandbox only once we have read
        // its exit code.
        let _waiting = monitor::waiting(&dir);
        let code = loop {
            let rec = match store.load(name) {
                Ok(r) => r,
                Err(LifecycleError::NotExist(_)) => bail!(
                    "wait: sandbox {name:?} was removed (--rm or rm) before its exit status \
                     could be read"
                ),
                Err(e) => return Err(e.into()),
            };
            if let Some(exit) = &rec.exit {
                break exit.code();
            }
            if finished(store, &rec, &dir) {
                bail!(
                    "wait: sandbox {name:?} has stopped but its exit status was not recorded \
                     (its monitor was killed, or it was started before monitors existed)"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        outln!("{code}")?;
    }
    Ok(())
}

/// What `inspect` prints: docker's essentials, in the state's spelling.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Inspect {
    id: String,
    status: String,
    pid: i32,
    created: String,
    bundle: PathBuf,
    profile: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
    log_path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    monitor_pid: Option<i32>,
}

/// `inspect NAME…`: a JSON array, one object per sandbox.
pub fn inspect(store: &Store, names: &[String]) -> Result<()> {
    let mut all = Vec::new();
    for name in names {
        let (rec, dir) = sandbox(store, name, "inspect")?;
        let view = store.view(&rec);
        let exit = view.exit.as_ref();
        all.push(Inspect {
            id: view.id.clone(),
            status: status_text(view.status, exit),
            pid: view.pid,
            created: view.created.clone(),
            bundle: view.bundle.clone(),
            profile: rec.annotations.get(ANNOTATION).cloned().unwrap_or_default(),
            exit_code: exit.map(|e| e.code()),
            signal: exit.and_then(|e| e.signal),
            finished_at: exit.map(|e| e.finished_at.clone()),
            log_path: dir.join(LOG_FILE),
            monitor_pid: monitor::pid(&dir),
        });
    }
    outln!("{}", serde_json::to_string_pretty(&all)?)?;
    Ok(())
}

/// "exited (N)" for a stopped container whose exit was recorded, else the
/// status.
pub fn status_text(status: Status, exit: Option<&bulkhead_lifecycle::Exit>) -> String {
    match exit {
        Some(e) if status == Status::Stopped => format!("exited ({})", e.code()),
        _ => status.to_string(),
    }
}
