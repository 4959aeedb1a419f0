//! `kill` signal argument → `signal::parse`; an accepted signal is in
//! 1..=SIGRTMAX and, when it has a name, that name parses back to it.
#![no_main]

use bulkhead_spec::signal;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(n) = signal::parse(s) {
        assert!((1..=signal::SIGRTMAX).contains(&n), "{s:?} -> {n}");
        if let Some(name) = signal::name(n) {
            assert_eq!(signal::parse(name).ok(), Some(n), "{name}");
        }
    }
});
