//! Capability names as written in `process.capabilities`.
//!
//! The table is ours rather than probed from the running kernel, so a
//! config is accepted or rejected the same way on every host.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CapError {
    #[error("unknown capability {name:?}")]
    Unknown { name: String },
}

/// Every capability Linux defines (up to 6.x), indexed by number.
pub const ALL: &[(&str, u32)] = &[
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_DAC_READ_SEARCH", 2),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_LINUX_IMMUTABLE", 9),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_BROADCAST", 11),
    ("CAP_NET_ADMIN", 12),
    ("CAP_NET_RAW", 13),
    ("CAP_IPC_LOCK", 14),
    ("CAP_IPC_OWNER", 15),
    ("CAP_SYS_MODULE", 16),
    ("CAP_SYS_RAWIO", 17),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_SYS_PTRACE", 19),
    ("CAP_SYS_PACCT", 20),
    ("CAP_SYS_ADMIN", 21),
    ("CAP_SYS_BOOT", 22),
    ("CAP_SYS_NICE", 23),
    ("CAP_SYS_RESOURCE", 24),
    ("CAP_SYS_TIME", 25),
    ("CAP_SYS_TTY_CONFIG", 26),
    ("CAP_MKNOD", 27),
    ("CAP_LEASE", 28),
    ("CAP_AUDIT_WRITE", 29),
    ("CAP_AUDIT_CONTROL", 30),
    ("CAP_SETFCAP", 31),
    ("CAP_MAC_OVERRIDE", 32),
    ("CAP_MAC_ADMIN", 33),
    ("CAP_SYSLOG", 34),
    ("CAP_WAKE_ALARM", 35),
    ("CAP_BLOCK_SUSPEND", 36),
    ("CAP_AUDIT_READ", 37),
    ("CAP_PERFMON", 38),
    ("CAP_BPF", 39),
    ("CAP_CHECKPOINT_RESTORE", 40),
];

/// Only the canonical upper-case "CAP_" spelling is accepted, as the
/// runtime spec requires; guessing at variants would hide typos.
pub fn from_name(name: &str) -> Result<u32, CapError> {
    ALL.iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, v)| v)
        .ok_or_else(|| CapError::Unknown {
            name: name.to_owned(),
        })
}

pub fn name(cap: u32) -> Option<&'static str> {
    // ALL is indexed by capability number (checked in tests).
    ALL.get(usize::try_from(cap).ok()?).map(|&(n, _)| n)
}

/// A capability set as the kernel's 64-bit mask (bit N = capability N).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSet(pub u64);

impl CapSet {
    /// Fails on the first unknown name, so the error points at it.
    pub fn from_names(names: &[String]) -> Result<CapSet, CapError> {
        let mut bits = 0u64;
        for n in names {
            bits |= 1u64 << from_name(n)?;
        }
        Ok(CapSet(bits))
    }

    pub fn contains(&self, cap: u32) -> bool {
        cap < 64 && self.0 & (1u64 << cap) != 0
    }

    /// Names in capability-number order, for stable output.
    pub fn names(&self) -> Vec<&'static str> {
        ALL.iter()
            .filter(|&&(_, v)| self.contains(v))
            .map(|&(n, _)| n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn table_is_dense_and_complete() {
        assert_eq!(ALL.len(), 41);
        for (i, &(n, v)) in ALL.iter().enumerate() {
            assert_eq!(v as usize, i, "{n}");
            assert!(n.starts_with("CAP_"));
        }
        assert_eq!(ALL[40], ("CAP_CHECKPOINT_RESTORE", 40));
    }

    #[test]
    fn lookup_both_ways() {
        assert_eq!(from_name("CAP_SYS_ADMIN"), Ok(21));
        assert_eq!(from_name("CAP_CHOWN"), Ok(0));
        assert_eq!(from_name("CAP_BPF"), Ok(39));
        assert_eq!(name(21), Some("CAP_SYS_ADMIN"));
        assert_eq!(name(41), None);
        assert_eq!(name(u32::MAX), None);
        for &(n, v) in ALL {
            assert_eq!(from_name(n), Ok(v));
            assert_eq!(name(v), Some(n));
        }
    }

    #[test]
    fn unknown_names_are_rejected_by_name() {
        let err = from_name("CAP_FOO").unwrap_err();
        assert_eq!(err.to_string(), "unknown capability \"CAP_FOO\"");
        for bad in ["cap_sys_admin", "SYS_ADMIN", "", " CAP_KILL", "CAP_KILL "] {
            assert!(from_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn set_from_names() {
        let set = CapSet::from_names(&strings(&["CAP_KILL", "CAP_CHOWN", "CAP_KILL"])).unwrap();
        assert_eq!(set, CapSet(0b10_0001));
        assert!(set.contains(0) && set.contains(5));
        assert!(!set.contains(1) && !set.contains(64) && !set.contains(u32::MAX));
        assert_eq!(set.names(), vec!["CAP_CHOWN", "CAP_KILL"]);

        assert_eq!(CapSet::from_names(&[]).unwrap(), CapSet::default());
        assert!(CapSet::default().names().is_empty());

        let all = CapSet::from_names(&ALL.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(all.0, (1u64 << 41) - 1);
        assert_eq!(all.names().len(), 41);
    }

    #[test]
    fn set_error_names_the_bad_entry() {
        let err =
            CapSet::from_names(&strings(&["CAP_KILL", "CAP_NOPE", "CAP_ALSO_BAD"])).unwrap_err();
        assert_eq!(
            err,
            CapError::Unknown {
                name: "CAP_NOPE".into()
            }
        );
    }

    #[test]
    fn names_ignore_bits_beyond_the_table() {
        assert_eq!(CapSet(1 << 63 | 1 << 21).names(), vec!["CAP_SYS_ADMIN"]);
    }
}
