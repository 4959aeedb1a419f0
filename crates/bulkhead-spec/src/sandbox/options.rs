//! Parsers for the docker-like flag values. Each error names its flag.

use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use serde_json::Value;

use super::SandboxError;

/// `-v/--volume host:ctr[:ro|rw]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub source: PathBuf,
    pub destination: PathBuf,
    pub readonly: bool,
}

/// `--tmpfs ctr[:opts]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmpfs {
    pub destination: PathBuf,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// Own network namespace with loopback only.
    #[default]
    None,
    /// The host's network namespace.
    Host,
}

/// `--security-opt` values.
#[derive(Debug, Clone, PartialEq)]
pub enum SecurityOpt {
    NoNewPrivileges(bool),
    /// `seccomp=unconfined`.
    SeccompUnconfined,
    /// `seccomp=default`.
    SeccompDefault,
    /// `seccomp=FILE`: the caller reads the file and passes its JSON here.
    SeccompProfile(Value),
    Landlock(bool),
    /// `unmask=ALL`: no masked or read-only /proc and /sys paths.
    UnmaskAll,
}

/// A container path from a flag: absolute, without `..`.
pub fn container_path(flag: &str, s: &str) -> Result<PathBuf, SandboxError> {
    let p = Path::new(s);
    if !p.is_absolute() {
        return Err(SandboxError::flag(
            flag,
            format!("container path {s:?} must be absolute"),
        ));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(SandboxError::flag(
            flag,
            format!("container path {s:?} must not contain \"..\""),
        ));
    }
    if p == Path::new("/") {
        return Err(SandboxError::flag(flag, "cannot mount over the root \"/\""));
    }
    Ok(p.to_path_buf())
}

impl FromStr for Volume {
    type Err = SandboxError;
    fn from_str(s: &str) -> Result<Volume, SandboxError> {
        const F: &str = "--volume";
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dst, mode) = match parts.as_slice() {
            [src, dst] => (*src, *dst, None),
            [src, dst, mode] => (*src, *dst, Some(*mode)),
            _ => {
                return Err(SandboxError::flag(
                    F,
                    format!("{s:?}: expected HOST:CONTAINER[:ro|rw]"),
                ));
            }
        };
        if src.is_empty() {
            return Err(SandboxError::flag(F, format!("{s:?}: empty host path")));
        }
        if !src.starts_with('/') && !src.starts_with('.') {
            return Err(SandboxError::flag(
                F,
                format!(
                    "{s:?}: named volumes are not supported; give a host path (absolute or ./relative)"
                ),
            ));
        }
        let mut readonly = false;
        if let Some(mode) = mode {
            for o in mode.split(',') {
                match o {
                    "ro" => readonly = true,
                    "rw" => readonly = false,
                    _ => {
                        return Err(SandboxError::flag(
                            F,
                            format!("{s:?}: unknown option {o:?} (expected ro or rw)"),
                        ));
                    }
                }
            }
        }
        Ok(Volume {
            source: PathBuf::from(src),
            destination: container_path(F, dst)?,
            readonly,
        })
    }
}

impl FromStr for Tmpfs {
    type Err = SandboxError;
    fn from_str(s: &str) -> Result<Tmpfs, SandboxError> {
        let (dst, opts) = match s.split_once(':') {
            Some((d, o)) => (d, o),
            None => (s, ""),
        };
        let options = opts
            .split(',')
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Tmpfs {
            destination: container_path("--tmpfs", dst)?,
            options,
        })
    }
}

impl FromStr for NetworkMode {
    type Err = SandboxError;
    fn from_str(s: &str) -> Result<NetworkMode, SandboxError> {
        match s {
            "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            _ => Err(SandboxError::flag(
                "--network",
                format!(
                    "{s:?} is not supported: use none (loopback only) or host; bridge networks are not available yet (issue #10)"
                ),
            )),
        }
    }
}

/// Parses a `--security-opt` value, except `seccomp=FILE` which comes back
/// as `Err(Ok(path))` for the caller to read.
pub fn security_opt(s: &str) -> Result<Result<SecurityOpt, PathBuf>, SandboxError> {
    const F: &str = "--security-opt";
    let bool_of = |v: &str| match v {
        "true" | "on" | "1" => Ok(true),
        "false" | "off" | "0" => Ok(false),
        _ => Err(SandboxError::flag(
            F,
            format!("{s:?}: expected true or false"),
        )),
    };
    let (k, v) = match s.split_once(['=', ':']) {
        Some((k, v)) => (k, Some(v)),
        None => (s, None),
    };
    Ok(Ok(match (k, v) {
        ("no-new-privileges", None) => SecurityOpt::NoNewPrivileges(true),
        ("no-new-privileges", Some(v)) => SecurityOpt::NoNewPrivileges(bool_of(v)?),
        ("seccomp", Some("unconfined")) => SecurityOpt::SeccompUnconfined,
        ("seccomp", Some("default")) => SecurityOpt::SeccompDefault,
        ("seccomp", Some(path)) if !path.is_empty() => return Ok(Err(PathBuf::from(path))),
        ("landlock", Some("off" | "unconfined" | "false")) => SecurityOpt::Landlock(false),
        ("landlock", Some("on" | "true")) => SecurityOpt::Landlock(true),
        ("unmask", Some("ALL")) => SecurityOpt::UnmaskAll,
        _ => {
            return Err(SandboxError::flag(
                F,
                format!(
                    "{s:?} is not supported (expected no-new-privileges[=true|false], seccomp=unconfined|default|FILE, landlock=on|off or unmask=ALL)"
                ),
            ));
        }
    }))
}

/// `--memory`: a byte count with an optional b, k, m or g suffix (1024-based,
/// as docker); 0 or -1 means no limit.
pub fn memory(s: &str) -> Result<Option<u64>, SandboxError> {
    const F: &str = "--memory";
    if s == "-1" || s == "0" {
        return Ok(None);
    }
    let bytes = size(F, s)?;
    // The kernel rounds to pages, and below a few MiB nothing starts.
    if bytes < 6 << 20 {
        return Err(SandboxError::flag(F, format!("{s:?}: the minimum is 6m")));
    }
    Ok(Some(bytes))
}

/// `--log-max-size 10m`: the size at which a detached sandbox's log is
/// rotated; `-1`: never (the log then grows without bound).
pub fn log_max_size(s: &str) -> Result<Option<u64>, SandboxError> {
    const F: &str = "--log-max-size";
    if s == "-1" {
        return Ok(None);
    }
    let bytes = size(F, s)?;
    if bytes < 1 << 10 {
        return Err(SandboxError::flag(
            F,
            format!("{s:?}: the minimum is 1k (-1: no limit)"),
        ));
    }
    Ok(Some(bytes))
}

/// A byte count with an optional k, m or g suffix (powers of 1024, an
/// optional trailing b), as docker reads sizes.
fn size(flag: &str, s: &str) -> Result<u64, SandboxError> {
    let lower = s.to_ascii_lowercase();
    let (num, mult) = match lower.trim_end_matches('b').char_indices().last() {
        Some((i, 'k')) => (&lower[..i], 1u64 << 10),
        Some((i, 'm')) => (&lower[..i], 1 << 20),
        Some((i, 'g')) => (&lower[..i], 1 << 30),
        _ => (lower.trim_end_matches('b'), 1),
    };
    let n: u64 = num.parse().map_err(|_| {
        SandboxError::flag(
            flag,
            format!("{s:?}: expected a size such as 64m, 1g or 1048576"),
        )
    })?;
    n.checked_mul(mult)
        .ok_or_else(|| SandboxError::flag(flag, format!("{s:?}: too large")))
}

/// `--cpus 0.5`: CFS quota per 100ms period; 0 means no limit.
pub fn cpus(s: &str) -> Result<Option<f64>, SandboxError> {
    let v: f64 = s.parse().map_err(|_| {
        SandboxError::flag(
            "--cpus",
            format!("{s:?}: expected a number such as 0.5 or 2"),
        )
    })?;
    if !v.is_finite() || !(0.0..=4096.0).contains(&v) {
        return Err(SandboxError::flag(
            "--cpus",
            format!("{s:?}: must be between 0 and 4096"),
        ));
    }
    Ok((v > 0.0).then_some(v))
}

/// `--pids-limit N`: 0 or -1 means no limit.
pub fn pids_limit(s: &str) -> Result<Option<i64>, SandboxError> {
    let v: i64 = s
        .parse()
        .map_err(|_| SandboxError::flag("--pids-limit", format!("{s:?}: expected an integer")))?;
    if v < -1 {
        return Err(SandboxError::flag(
            "--pids-limit",
            format!("{s:?}: must be positive, or 0/-1 for no limit"),
        ));
    }
    Ok((v > 0).then_some(v))
}

/// A capability name for `--cap-add/--cap-drop`: `NET_ADMIN`,
/// `cap_net_admin` and `CAP_NET_ADMIN` are the same; `ALL` is all of them.
pub fn capability(flag: &str, s: &str) -> Result<String, SandboxError> {
    let up = s.to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let name = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    crate::caps::from_name(&name)
        .map_err(|_| SandboxError::flag(flag, format!("unknown capability {s:?}")))?;
    Ok(name)
}

/// `-e K=V` sets; `-e K` takes K from `lookup` (the caller's environment)
/// and is dropped when unset, as docker does.
pub fn env(
    s: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, SandboxError> {
    match s.split_once('=') {
        Some(("", _)) => Err(SandboxError::flag("--env", format!("{s:?}: empty name"))),
        Some(_) => Ok(Some(s.to_owned())),
        None if s.is_empty() => Err(SandboxError::flag("--env", "empty name")),
        None => Ok(lookup(s).map(|v| format!("{s}={v}"))),
    }
}
