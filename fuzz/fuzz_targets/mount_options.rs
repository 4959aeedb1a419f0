//! `mounts[].options` → `mountopt::parse`. The input is split into option
//! words at ',' (as a config's list would be written by a client joining
//! them) and parsed; parsing never fails, so only panics count, plus the
//! invariants below.
#![no_main]

use bulkhead_spec::mountopt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let words: Vec<String> = s.split(',').map(str::to_owned).collect();
    let m = mountopt::parse(&words);
    // A flag is either set or cleared, never both.
    assert_eq!(m.flags & m.clear_flags, 0, "{words:?} -> {m:?}");
    assert_eq!(
        m.rec_attr_set & m.rec_attr_clr & !mountopt::MOUNT_ATTR__ATIME,
        0
    );
    // Known words never leak into the filesystem data string.
    let known = mountopt::known_options();
    for w in m.data.split(',').filter(|w| !w.is_empty()) {
        assert!(!known.contains(&w), "known option {w:?} passed as data");
    }
    assert!(!m.data.starts_with(',') && !m.data.ends_with(','));
    assert_eq!(m.bind, m.flags & MS_BIND != 0);
});

/// linux/mount.h; bind mounts are the only words that set it.
const MS_BIND: u64 = 4096;
