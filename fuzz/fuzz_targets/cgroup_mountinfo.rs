//! /proc/self/mountinfo text → `parse_mountinfo`, then the layout with a
//! `linux.cgroupsPath` (the first input line) → `resolve`. Every resolved
//! directory must lie below its hierarchy's mount point.
#![no_main]

use bulkhead_cgroups::{Layout, parse_mountinfo, resolve};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let layout = parse_mountinfo(rest);
    let mounts: Vec<std::path::PathBuf> = match &layout {
        Layout::V2 { root } => vec![root.clone()],
        Layout::V1 {
            hierarchies,
            unified,
        } => hierarchies
            .iter()
            .map(|h| h.mountpoint.clone())
            .chain(unified.clone())
            .collect(),
    };
    if let Ok(set) = resolve(&layout, Some(first), "fuzz", false) {
        for d in &set.dirs {
            assert!(
                mounts.iter().any(|m| d.path.starts_with(m) && d.path != *m),
                "{:?} not below a cgroup mount ({first:?})",
                d.path
            );
        }
    }
});
