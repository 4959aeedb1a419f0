//! `bulkhead learn-recorder` (hidden): the recorder of a learning OCI run,
//! started by `create` (see bulkhead_lifecycle::learn). It reports "ready"
//! (or the error) on stdout once it listens, then holds nothing of the
//! caller's: stdout goes to /dev/null, stdin is the create's control pipe.

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use anyhow::{Context, Result};
use bulkhead_seccomp::learn;

#[derive(Debug, clap::Args)]
pub struct RecorderArgs {
    #[arg(long)]
    socket: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    base: Option<PathBuf>,
    /// The annotation asked: `out` is confined to this bundle (see
    /// bulkhead_seccomp::learn::Confine).
    #[arg(long)]
    confine_to_bundle: Option<PathBuf>,
}

impl RecorderArgs {
    fn confine(&self) -> learn::Confine {
        match &self.confine_to_bundle {
            Some(b) => learn::Confine::Bundle(b.clone()),
            None => learn::Confine::Caller,
        }
    }
}

fn setup(a: &RecorderArgs) -> Result<(UnixListener, Option<serde_json::Value>)> {
    // Not in the caller's session: a ^C for `run` goes to the container.
    let _ = rustix::process::setsid();
    // It outlives `create`: none of the fds the engine gave `create` (its
    // pipes, --preserve-fds files) may stay open in it.
    bulkhead_sys::close_inherited_fds(3).context("close inherited fds")?;
    let base = match &a.base {
        Some(f) => Some(
            serde_json::from_slice(&std::fs::read(f).with_context(|| format!("{}", f.display()))?)
                .with_context(|| format!("{}", f.display()))?,
        ),
        None => None,
    };
    // Fail now, not when the container exits, if FILE cannot be written.
    learn::check_output(&a.out, &a.confine(), "--learn-seccomp")?;
    let l = UnixListener::bind(&a.socket)
        .with_context(|| format!("--learn-seccomp: listen on {}", a.socket.display()))?;
    Ok((l, base))
}

pub fn recorder(a: &RecorderArgs) -> Result<()> {
    let mut stdout = std::io::stdout();
    let (listener, base) = match setup(a) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(stdout, "{}", super::error_text(&e));
            return Err(e);
        }
    };
    writeln!(stdout, "ready")?;
    stdout.flush()?;
    let null = std::fs::File::options().write(true).open("/dev/null")?;
    rustix::stdio::dup2_stdout(&null)?;
    let res = learn::serve(
        &listener,
        &mut std::io::stdin(),
        base.as_ref(),
        &a.out,
        &a.confine(),
    );
    let _ = std::fs::remove_file(&a.socket);
    Ok(res?)
}
