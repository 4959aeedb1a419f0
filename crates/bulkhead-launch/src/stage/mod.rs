//! The setup stages of the container init, one module per stage, in the
//! order `init.rs` runs them.

pub mod console;
pub mod exec;
pub mod landlock;
pub mod lsm;
pub mod namespaces;
pub mod rootfs;
pub mod security;

/// A failed setup step: which step, what it was doing, and why.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {reason}")]
pub struct StageError {
    pub step: String,
    pub reason: String,
}

impl StageError {
    pub fn msg(step: impl Into<String>, reason: impl Into<String>) -> StageError {
        StageError {
            step: step.into(),
            reason: reason.into(),
        }
    }

    /// Adapter for `map_err`; the reason keeps the error's whole source
    /// chain (pathrs puts the errno in a source).
    pub fn sys<E: std::error::Error>(step: impl Into<String>) -> impl FnOnce(E) -> StageError {
        let step = step.into();
        move |e| StageError {
            step,
            reason: chain(&e),
        }
    }
}

pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
