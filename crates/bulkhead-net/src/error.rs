//! The one error type of this crate: every variant names what failed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A user-supplied value (flag or argument) is wrong.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("network {0:?} not found (see `bulkhead network ls`)")]
    UnknownNetwork(String),
    #[error("network {0:?} already exists")]
    Exists(String),
    #[error("--subnet {subnet}: overlaps {with}")]
    Overlap { subnet: String, with: String },
    #[error("network {name:?}: no free address left in {subnet}")]
    Exhausted { name: String, subnet: String },
    #[error("-p {spec}: {reason}")]
    PortInUse { spec: String, reason: String },
    #[error("network {name:?} is in use by {containers}: remove them first")]
    InUse { name: String, containers: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: corrupt network state: {source}")]
    State {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// An `ip`/`nft` command failed; its stderr is the reason.
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
}

impl NetError {
    pub fn invalid(field: &str, reason: impl Into<String>) -> NetError {
        NetError::Invalid {
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> NetError {
        NetError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = NetError> = std::result::Result<T, E>;
