//! `process.rlimits[].type` names → setrlimit(2) resource numbers.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RlimitError {
    #[error("unknown rlimit type {name:?}")]
    Unknown { name: String },
}

/// Values come from libc because a few differ between architectures
/// (e.g. MIPS and SPARC number NOFILE/AS/RSS differently).
#[allow(
    clippy::unnecessary_cast,
    reason = "the libc type is c_uint on glibc but c_int on musl"
)]
pub const ALL: &[(&str, u32)] = &[
    ("RLIMIT_CPU", libc::RLIMIT_CPU as u32),
    ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE as u32),
    ("RLIMIT_DATA", libc::RLIMIT_DATA as u32),
    ("RLIMIT_STACK", libc::RLIMIT_STACK as u32),
    ("RLIMIT_CORE", libc::RLIMIT_CORE as u32),
    ("RLIMIT_RSS", libc::RLIMIT_RSS as u32),
    ("RLIMIT_NPROC", libc::RLIMIT_NPROC as u32),
    ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE as u32),
    ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK as u32),
    ("RLIMIT_AS", libc::RLIMIT_AS as u32),
    ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS as u32),
    ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING as u32),
    ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE as u32),
    ("RLIMIT_NICE", libc::RLIMIT_NICE as u32),
    ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO as u32),
    ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME as u32),
];

/// Exact upper-case names only, as the runtime spec writes them.
pub fn resource_from_name(name: &str) -> Result<u32, RlimitError> {
    ALL.iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, v)| v)
        .ok_or_else(|| RlimitError::Unknown {
            name: name.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_distinct_resources() {
        assert_eq!(ALL.len(), 16);
        let mut values: Vec<u32> = ALL.iter().map(|&(_, v)| v).collect();
        values.sort_unstable();
        assert_eq!(values, (0..16).collect::<Vec<u32>>());
    }

    #[test]
    fn known_names() {
        assert_eq!(resource_from_name("RLIMIT_CPU"), Ok(0));
        assert_eq!(resource_from_name("RLIMIT_RTTIME"), Ok(15));
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        {
            assert_eq!(resource_from_name("RLIMIT_NOFILE"), Ok(7));
            assert_eq!(resource_from_name("RLIMIT_NPROC"), Ok(6));
        }
        for &(n, v) in ALL {
            assert_eq!(resource_from_name(n), Ok(v));
        }
    }

    #[test]
    fn unknown_names() {
        let err = resource_from_name("RLIMIT_FOO").unwrap_err();
        assert_eq!(err.to_string(), "unknown rlimit type \"RLIMIT_FOO\"");
        for bad in ["rlimit_cpu", "CPU", "", "RLIMIT_NLIMITS"] {
            assert!(resource_from_name(bad).is_err(), "{bad:?}");
        }
    }
}
