//! /etc/passwd and /etc/group text from the rootfs plus an `exec --user`
//! spec → `parse_passwd`, `parse_group`, `resolve_spec`.
//!
//! Input layout: `user-spec \0 passwd-text \0 group-text [\0 additional,gids]`.
#![no_main]

use bulkhead_spec::passwd;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let spec = parts.next().unwrap_or_default();
    let pw = passwd::parse_passwd(parts.next().unwrap_or_default());
    let gr = passwd::parse_group(parts.next().unwrap_or_default());
    let additional: Vec<String> = parts
        .next()
        .map(|a| a.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    for e in &pw {
        assert!(!e.name.is_empty());
    }
    if let Ok(u) = passwd::resolve_spec(spec, &additional, &pw, &gr) {
        // (uid_t)-1 means "unchanged" to the kernel; it must never come out.
        assert_ne!(u.uid, u32::MAX);
        assert_ne!(u.gid, u32::MAX);
        assert!(!u.home.is_empty());
        let mut seen = std::collections::HashSet::new();
        assert!(u.sgids.iter().all(|g| seen.insert(*g)), "duplicate sgids");
    }
});
