//! `events`: a container's resource usage and OOM kills as runc prints
//! them, one JSON object per line: `{"type":"stats","id":…,"data":{…}}`
//! every `--interval`, and `{"type":"oom","id":…}` each time the kernel
//! reports an OOM in the container, until the container stops. With
//! `--stats`, one stats object and exit.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bulkhead_lifecycle::{Status, Store};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Print one stats event and exit.
    #[arg(long)]
    stats: bool,
    /// Time between stats events (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s")]
    interval: String,
    pub id: String,
}

/// One line of output.
#[derive(Serialize)]
struct Event<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<T>,
}

fn emit<T: Serialize>(kind: &'static str, id: &str, data: Option<T>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &Event { kind, id, data })?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// How often the container's status is checked while streaming.
const TICK: Duration = Duration::from_millis(200);

pub fn run(store: &Store, a: &EventsArgs) -> Result<()> {
    let interval = humantime::parse_duration(&a.interval)
        .with_context(|| format!("--interval: invalid duration {:?}", a.interval))?;
    if interval.is_zero() {
        bail!("--interval: duration must be greater than 0");
    }
    let rec = store.load(&a.id)?;
    if store.status(&rec) == Status::Stopped {
        bail!("container with id {} is not running", a.id);
    }
    if a.stats {
        let stats = rec.cgroups.stats()?;
        return emit("stats", &a.id, Some(stats));
    }
    let mut oom = rec.cgroups.oom_watcher()?;
    let mut next_stats = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_stats {
            // The cgroup may vanish between the status check and the read.
            match rec.cgroups.stats() {
                Ok(stats) => emit("stats", &a.id, Some(stats))?,
                Err(e) if store.status(&rec) == Status::Stopped => {
                    tracing::debug!("stats after stop: {e}");
                }
                Err(e) => return Err(e.into()),
            }
            next_stats = now + interval;
        }
        let wait = next_stats
            .saturating_duration_since(Instant::now())
            .min(TICK);
        let ooms = oom.wait(wait)?;
        for _ in 0..ooms {
            emit::<()>("oom", &a.id, None)?;
        }
        if store.status(&rec) == Status::Stopped {
            // A last look: the kill that stopped it may have been an OOM.
            for _ in 0..oom.wait(Duration::from_millis(50))? {
                emit::<()>("oom", &a.id, None)?;
            }
            return Ok(());
        }
    }
}
