//! Signal names as users type them (`kill CTR TERM`, `StopSignal`).

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignalError {
    #[error("invalid signal {input:?}")]
    Invalid { input: String },
    #[error("invalid signal {input:?}: out of range 1-64")]
    OutOfRange { input: String },
}

/// Kernel values, not glibc's `SIGRTMIN()`: glibc reserves the first two
/// for itself, but the container's libc is none of our business.
pub const SIGRTMIN: i32 = 34;
pub const SIGRTMAX: i32 = 64;

/// Canonical names; numbers from libc since they differ on MIPS/SPARC.
const STANDARD: &[(&str, i32)] = &[
    ("SIGHUP", libc::SIGHUP),
    ("SIGINT", libc::SIGINT),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGILL", libc::SIGILL),
    ("SIGTRAP", libc::SIGTRAP),
    ("SIGABRT", libc::SIGABRT),
    ("SIGBUS", libc::SIGBUS),
    ("SIGFPE", libc::SIGFPE),
    ("SIGKILL", libc::SIGKILL),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGSEGV", libc::SIGSEGV),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGPIPE", libc::SIGPIPE),
    ("SIGALRM", libc::SIGALRM),
    ("SIGTERM", libc::SIGTERM),
    ("SIGCHLD", libc::SIGCHLD),
    ("SIGCONT", libc::SIGCONT),
    ("SIGSTOP", libc::SIGSTOP),
    ("SIGTSTP", libc::SIGTSTP),
    ("SIGTTIN", libc::SIGTTIN),
    ("SIGTTOU", libc::SIGTTOU),
    ("SIGURG", libc::SIGURG),
    ("SIGXCPU", libc::SIGXCPU),
    ("SIGXFSZ", libc::SIGXFSZ),
    ("SIGVTALRM", libc::SIGVTALRM),
    ("SIGPROF", libc::SIGPROF),
    ("SIGWINCH", libc::SIGWINCH),
    ("SIGIO", libc::SIGIO),
    ("SIGPWR", libc::SIGPWR),
    ("SIGSYS", libc::SIGSYS),
];

/// SIGSTKFLT does not exist on MIPS and SPARC.
#[cfg(not(any(
    target_arch = "mips",
    target_arch = "mips32r6",
    target_arch = "mips64",
    target_arch = "mips64r6",
    target_arch = "sparc",
    target_arch = "sparc64"
)))]
const STKFLT: &[(&str, i32)] = &[("SIGSTKFLT", libc::SIGSTKFLT)];
#[cfg(any(
    target_arch = "mips",
    target_arch = "mips32r6",
    target_arch = "mips64",
    target_arch = "mips64r6",
    target_arch = "sparc",
    target_arch = "sparc64"
))]
const STKFLT: &[(&str, i32)] = &[];

/// Accepted on input, never produced by [`name`].
const ALIASES: &[(&str, i32)] = &[
    ("SIGIOT", libc::SIGIOT),
    ("SIGCLD", libc::SIGCHLD),
    ("SIGPOLL", libc::SIGPOLL),
];

/// Names for 34..=64 in the form bash's `kill -l` prints.
const REALTIME: [&str; 31] = [
    "SIGRTMIN",
    "SIGRTMIN+1",
    "SIGRTMIN+2",
    "SIGRTMIN+3",
    "SIGRTMIN+4",
    "SIGRTMIN+5",
    "SIGRTMIN+6",
    "SIGRTMIN+7",
    "SIGRTMIN+8",
    "SIGRTMIN+9",
    "SIGRTMIN+10",
    "SIGRTMIN+11",
    "SIGRTMIN+12",
    "SIGRTMIN+13",
    "SIGRTMIN+14",
    "SIGRTMIN+15",
    "SIGRTMAX-14",
    "SIGRTMAX-13",
    "SIGRTMAX-12",
    "SIGRTMAX-11",
    "SIGRTMAX-10",
    "SIGRTMAX-9",
    "SIGRTMAX-8",
    "SIGRTMAX-7",
    "SIGRTMAX-6",
    "SIGRTMAX-5",
    "SIGRTMAX-4",
    "SIGRTMAX-3",
    "SIGRTMAX-2",
    "SIGRTMAX-1",
    "SIGRTMAX",
];

fn named() -> impl Iterator<Item = &'static (&'static str, i32)> {
    STANDARD.iter().chain(STKFLT).chain(ALIASES)
}

fn digits(s: &str) -> Option<i32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Overflow maps to a huge value so it fails the range check, not the
    // syntax check.
    Some(s.parse().unwrap_or(i32::MAX))
}

/// Accepts a number, or a name with or without "SIG" in any case, including
/// the "RTMIN+N" / "RTMAX-N" forms. Signal 0 is rejected: it delivers
/// nothing, so asking for it is a mistake.
pub fn parse(s: &str) -> Result<i32, SignalError> {
    let invalid = || SignalError::Invalid {
        input: s.to_owned(),
    };
    let out_of_range = || SignalError::OutOfRange {
        input: s.to_owned(),
    };
    let in_range = |n: i32| {
        if (1..=SIGRTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(out_of_range())
        }
    };

    if let Some(n) = digits(s) {
        return in_range(n);
    }
    let upper = s.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);

    if let Some(rest) = bare.strip_prefix("RTMIN") {
        let offset = match rest.strip_prefix('+') {
            None if rest.is_empty() => 0,
            None => return Err(invalid()),
            Some(n) => digits(n).ok_or_else(invalid)?,
        };
        let n = SIGRTMIN.saturating_add(offset);
        return if n <= SIGRTMAX {
            Ok(n)
        } else {
            Err(out_of_range())
        };
    }
    if let Some(rest) = bare.strip_prefix("RTMAX") {
        let offset = match rest.strip_prefix('-') {
            None if rest.is_empty() => 0,
            None => return Err(invalid()),
            Some(n) => digits(n).ok_or_else(invalid)?,
        };
        let n = SIGRTMAX.saturating_sub(offset);
        return if n >= SIGRTMIN {
            Ok(n)
        } else {
            Err(out_of_range())
        };
    }

    named()
        .find(|(name, _)| name.strip_prefix("SIG") == Some(bare))
        .map(|&(_, n)| n)
        .ok_or_else(invalid)
}

/// Canonical "SIGxxx" name, for messages and `kill -l`-like output.
/// 32 and 33 have none: glibc keeps them for its own threading.
pub fn name(sig: i32) -> Option<&'static str> {
    if (SIGRTMIN..=SIGRTMAX).contains(&sig) {
        return REALTIME.get(usize::try_from(sig - SIGRTMIN).ok()?).copied();
    }
    STANDARD
        .iter()
        .chain(STKFLT)
        .find(|&&(_, n)| n == sig)
        .map(|&(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_any_case_with_or_without_prefix() {
        for s in ["KILL", "SIGKILL", "kill", "sigkill", "SigKill", "9"] {
            assert_eq!(parse(s), Ok(libc::SIGKILL), "{s}");
        }
        for s in ["term", "sigterm", "TERM", "SIGTERM", "15"] {
            assert_eq!(parse(s), Ok(libc::SIGTERM), "{s}");
        }
        assert_eq!(parse("hup"), Ok(libc::SIGHUP));
        assert_eq!(parse("SIGWINCH"), Ok(libc::SIGWINCH));
    }

    #[test]
    fn aliases() {
        assert_eq!(parse("IOT"), Ok(libc::SIGABRT));
        assert_eq!(parse("SIGCLD"), Ok(libc::SIGCHLD));
        assert_eq!(parse("poll"), Ok(libc::SIGIO));
        assert_eq!(name(libc::SIGABRT), Some("SIGABRT"));
        assert_eq!(name(libc::SIGCHLD), Some("SIGCHLD"));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse("1"), Ok(1));
        assert_eq!(parse("64"), Ok(64));
        assert_eq!(parse("32"), Ok(32));
        assert_eq!(parse("09"), Ok(9));
        for bad in ["0", "65", "99999999999999999999"] {
            assert!(
                matches!(parse(bad), Err(SignalError::OutOfRange { .. })),
                "{bad}"
            );
        }
        for bad in ["-9", "+9", " 9", "9 ", "9x", "0x9", ""] {
            assert!(
                matches!(parse(bad), Err(SignalError::Invalid { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn realtime() {
        assert_eq!(parse("RTMIN"), Ok(34));
        assert_eq!(parse("SIGRTMIN"), Ok(34));
        assert_eq!(parse("rtmin+0"), Ok(34));
        assert_eq!(parse("SIGRTMIN+3"), Ok(37));
        assert_eq!(parse("RTMIN+30"), Ok(64));
        assert_eq!(parse("RTMAX"), Ok(64));
        assert_eq!(parse("sigrtmax-1"), Ok(63));
        assert_eq!(parse("RTMAX-30"), Ok(34));
        for bad in ["RTMIN+31", "RTMAX-31", "RTMIN+99999999999"] {
            assert!(
                matches!(parse(bad), Err(SignalError::OutOfRange { .. })),
                "{bad}"
            );
        }
        for bad in [
            "RTMIN-1", "RTMAX+1", "RTMIN+", "RTMAX-", "RTMIN3", "RTMIN+-3", "RTMIN++3",
        ] {
            assert!(
                matches!(parse(bad), Err(SignalError::Invalid { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn errors_name_the_input() {
        assert_eq!(
            parse("FOO").unwrap_err().to_string(),
            "invalid signal \"FOO\""
        );
        assert_eq!(
            parse("65").unwrap_err().to_string(),
            "invalid signal \"65\": out of range 1-64"
        );
        for bad in ["SIG", "SIGSIGKILL", "SIG_KILL", "KILL9", "SIGRT"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn name_round_trips() {
        let mut named_count = 0;
        for sig in 1..=SIGRTMAX {
            if let Some(n) = name(sig) {
                named_count += 1;
                assert_eq!(parse(n), Ok(sig), "{n}");
                assert!(n.starts_with("SIG"));
            }
        }
        assert_eq!(name(0), None);
        assert_eq!(name(65), None);
        assert_eq!(name(-1), None);
        assert_eq!(name(SIGRTMIN), Some("SIGRTMIN"));
        assert_eq!(name(SIGRTMIN + 15), Some("SIGRTMIN+15"));
        assert_eq!(name(SIGRTMIN + 16), Some("SIGRTMAX-14"));
        assert_eq!(name(SIGRTMAX), Some("SIGRTMAX"));
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        {
            // 31 classic signals + 31 realtime; 32 and 33 are unnamed.
            assert_eq!(named_count, 62);
            assert_eq!(name(16), Some("SIGSTKFLT"));
            assert_eq!(name(32), None);
            assert_eq!(name(33), None);
        }
        let _ = named_count;
    }
}
