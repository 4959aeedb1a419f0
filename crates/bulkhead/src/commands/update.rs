//! `update`: change a live container's resource limits, from a
//! `LinuxResources` JSON document (`--resources FILE`, or `-` for stdin, as
//! podman, containerd and docker pass it) or from runc's flags. As in runc,
//! with `--resources` the other flags are ignored, and 0 means "unchanged".

use std::io::Read;

use anyhow::{Context, Result, bail};
use bulkhead_lifecycle::Store;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// File with the LinuxResources JSON to apply, or '-' for stdin; all
    /// other flags are then ignored.
    #[arg(short = 'r', long)]
    resources: Option<String>,
    /// Block IO weight (10..=1000).
    #[arg(long)]
    blkio_weight: Option<u16>,
    /// CFS period in microseconds.
    #[arg(long)]
    cpu_period: Option<u64>,
    /// CFS quota in microseconds per period (-1: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CFS burst in microseconds.
    #[arg(long)]
    cpu_burst: Option<u64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share", visible_alias = "cpu-shares")]
    cpu_share: Option<u64>,
    /// Realtime period in microseconds.
    #[arg(long)]
    cpu_rt_period: Option<u64>,
    /// Realtime runtime in microseconds per period.
    #[arg(long, allow_hyphen_values = true)]
    cpu_rt_runtime: Option<i64>,
    /// 1: SCHED_IDLE for the cgroup, 0: normal.
    #[arg(long)]
    cpu_idle: Option<i64>,
    /// CPUs to run on (e.g. 0-2,4).
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Memory nodes to allocate from.
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// Obsolete; accepted and ignored.
    #[arg(long, hide = true, allow_hyphen_values = true)]
    kernel_memory: Option<String>,
    /// Obsolete; accepted and ignored.
    #[arg(long, hide = true, allow_hyphen_values = true)]
    kernel_memory_tcp: Option<String>,
    /// Memory limit (bytes, or with a k/m/g/t suffix; -1: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory soft limit.
    #[arg(long, allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: unlimited swap).
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Maximum number of processes (-1: unlimited; 0: unchanged).
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema (not supported).
    #[arg(long)]
    l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported).
    #[arg(long)]
    mem_bw_schema: Option<String>,
    pub id: String,
}

/// A size in bytes as docker writes it: a number with an optional binary
/// unit suffix (`64m`, `1.5g`, `512KiB`, `1024b`), or -1.
pub fn parse_size(flag: &str, s: &str) -> Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => bail!("--{flag}: invalid size {s:?}: unknown unit"),
    };
    let n: f64 = number
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite())
        .with_context(|| format!("--{flag}: invalid size {s:?}"))?;
    let bytes = n * (1u64 << shift) as f64;
    if bytes >= i64::MAX as f64 {
        bail!("--{flag}: size {s:?} is too large");
    }
    Ok(bytes as i64)
}

/// The resources asked for by the flags.
fn from_flags(a: &UpdateArgs) -> Result<LinuxResources> {
    let mut memory = LinuxMemory::default();
    memory.set_limit(
        a.memory
            .as_deref()
            .map(|v| parse_size("memory", v))
            .transpose()?,
    );
    memory.set_reservation(
        a.memory_reservation
            .as_deref()
            .map(|v| parse_size("memory-reservation", v))
            .transpose()?,
    );
    memory.set_swap(
        a.memory_swap
            .as_deref()
            .map(|v| parse_size("memory-swap", v))
            .transpose()?,
    );
    memory.set_kernel_tcp(
        a.kernel_memory_tcp
            .as_deref()
            .map(|v| parse_size("kernel-memory-tcp", v))
            .transpose()?,
    );
    let mut cpu = LinuxCpu::default();
    cpu.set_shares(a.cpu_share);
    cpu.set_quota(a.cpu_quota);
    cpu.set_period(a.cpu_period);
    cpu.set_burst(a.cpu_burst);
    cpu.set_realtime_runtime(a.cpu_rt_runtime);
    cpu.set_realtime_period(a.cpu_rt_period);
    cpu.set_idle(a.cpu_idle);
    cpu.set_cpus(a.cpuset_cpus.clone());
    cpu.set_mems(a.cpuset_mems.clone());
    let mut block_io = LinuxBlockIo::default();
    block_io.set_weight(a.blkio_weight);
    let mut r = LinuxResources::default();
    r.set_memory(Some(memory));
    r.set_cpu(Some(cpu));
    r.set_block_io(Some(block_io));
    if let Some(limit) = a.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(limit);
        r.set_pids(Some(pids));
    }
    Ok(r)
}

/// Parse a `LinuxResources` document, naming the field that is wrong.
fn parse_resources(source: &str, bytes: &[u8]) -> Result<LinuxResources> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        anyhow::anyhow!("--resources {source}: {path}: {}", e.into_inner())
    })
}

pub fn run(store: &Store, a: &UpdateArgs) -> Result<()> {
    if a.l3_cache_schema.is_some() {
        bail!("--l3-cache-schema: Intel RDT is not supported by this runtime");
    }
    if a.mem_bw_schema.is_some() {
        bail!("--mem-bw-schema: Intel RDT is not supported by this runtime");
    }
    let r = match a.resources.as_deref() {
        Some(src) => {
            let mut bytes = Vec::new();
            if src == "-" {
                std::io::stdin()
                    .read_to_end(&mut bytes)
                    .context("--resources -: reading stdin")?;
            } else {
                bytes = std::fs::read(src).with_context(|| format!("--resources {src}"))?;
            }
            let r = parse_resources(src, &bytes)?;
            if r.memory()
                .is_some_and(|m| m.kernel().is_some_and(|k| k != 0))
            {
                tracing::warn!("memory.kernel is obsolete and ignored");
            }
            r
        }
        None => {
            if a.kernel_memory.is_some() {
                tracing::warn!("--kernel-memory is obsolete and ignored");
            }
            from_flags(a)?
        }
    };
    store.update(&a.id, &r)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("memory", "64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("memory", "64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("memory", "1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("memory", "1024").unwrap(), 1024);
        assert_eq!(parse_size("memory", "2kb").unwrap(), 2048);
        assert_eq!(parse_size("memory", "-1").unwrap(), -1);
        assert!(parse_size("memory", "12x").is_err());
        assert!(parse_size("memory", "").is_err());
        assert!(parse_size("memory", "-5").is_err());
    }
}
