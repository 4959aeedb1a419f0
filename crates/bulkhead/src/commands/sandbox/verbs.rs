//! `bulkhead logs`, `stop` and `rm`: the docker verbs for sandboxes (runc
//! has none of them; `ps` keeps runc's meaning).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bulkhead_lifecycle::{LifecycleError, Record, Status, Store};
use bulkhead_spec::sandbox::{ANNOTATION, STOP_SIGNAL_ANNOTATION};

use super::{LOG_FILE, STATE_ROOT_FILE, sandbox_base};

/// The record of sandbox `name`, and its directory.
fn sandbox(store: &Store, name: &str, verb: &str) -> Result<(Record, PathBuf)> {
    let rec = store.load(name)?;
    if !rec.annotations.contains_key(ANNOTATION) {
        bail!(
            "{verb}: container {name:?} is not a sandbox (made by `bulkhead sandbox`); use the runc verbs (kill, delete)"
        );
    }
    let dir = sandbox_base(store)?.join(name);
    Ok((rec, dir))
}

/// `logs [-f] NAME`: what a detached sandbox wrote to stdout and stderr;
/// with -f, keeps printing until it stops.
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
    loop {
        // Read the status first: whatever was written before it stopped is
        // in the file by then.
        let stopped = !follow || store.status(&rec) == Status::Stopped;
        loop {
            let n = f.read(&mut buf).context("read the log")?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])?;
        }
        out.flush()?;
        if stopped {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
        // A log truncated by hand: start over.
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if f.stream_position()? > len {
            f.seek(SeekFrom::Start(0))?;
        }
    }
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
        return super::remove_dir(&dir);
    }
    let (rec, dir) = sandbox(store, name, "rm")?;
    let status = store.status(&rec);
    if status != Status::Stopped && status != Status::Created && !force {
        bail!("rm: sandbox {name:?} is {status}: stop it first, or use rm -f");
    }
    crate::commands::delete(store, name, force)?;
    super::remove_dir(&dir)
}
