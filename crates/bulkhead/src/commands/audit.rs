//! `bulkhead audit`: findings and a Pod Security Standards verdict for a
//! container (its live init and its recorded config), a bundle, a config
//! file or any pid (a podman or containerd container, say).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use bulkhead_audit::{Report, Severity, config, live, render};

use super::Ctx;

/// Exit code when a finding reaches --fail-on.
pub const EXIT_FINDINGS: i32 = 3;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true)
    .args(["container", "bundle", "config", "pid"])))]
pub struct AuditArgs {
    /// A bulkhead container (or sandbox) id: its init process and its config.
    container: Option<String>,
    /// A bundle directory: its config.json.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// An OCI config file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A running process, whoever started it (podman, containerd, runc...).
    #[arg(long)]
    pid: Option<i32>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Exit 3 when a finding is at least this severe
    /// (info, low, medium, high, critical).
    #[arg(long)]
    fail_on: Option<Severity>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

pub fn run(ctx: &Ctx, a: &AuditArgs) -> Result<i32> {
    let report = if let Some(id) = &a.container {
        let store = ctx.store()?;
        let rec = store
            .load(id)
            .with_context(|| format!("audit container {id:?}"))?;
        let mut observed = Vec::new();
        if store.status(&rec) == bulkhead_lifecycle::Status::Stopped {
            bail!("container {id:?} is not running: nothing live to audit (try --bundle)");
        }
        let mut now = live::observe(rec.pid).with_context(|| format!("audit container {id:?}"))?;
        let mut conf = config::observe(&rec.spec, &rec.bundle)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("audit the recorded config of {id:?}"))?;
        // /proc does not show Landlock; the config we started it with does.
        now.landlock = conf.landlock.clone();
        conf.host_caps = live::host_caps();
        observed.push(now);
        observed.push(conf);
        Report::build(format!("container {id} (pid {})", rec.pid), observed)
    } else if let Some(pid) = a.pid {
        Report::build(format!("pid {pid}"), vec![live::observe(pid)?])
    } else {
        let path = match (&a.bundle, &a.config) {
            (Some(b), _) => b.join("config.json"),
            (None, Some(c)) => c.clone(),
            (None, None) => unreachable!("clap requires a target"),
        };
        Report::build(
            format!("config {}", path.display()),
            vec![bulkhead_audit::Observed {
                // "Every capability" is every one this host's runtime can grant.
                host_caps: live::host_caps(),
                ..config::observe_file(&path)?
            }],
        )
    };
    match a.format {
        Format::Table => out!("{}", render::table(&report))?,
        Format::Json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
    }
    Ok(match (a.fail_on, report.worst()) {
        (Some(limit), Some(worst)) if worst >= limit => EXIT_FINDINGS,
        _ => 0,
    })
}
