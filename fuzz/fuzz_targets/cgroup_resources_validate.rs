//! `linux.resources` JSON → `validate`, the update helpers, device rules
//! and the cpuset list parser. Nothing here writes to a cgroup.
#![no_main]

use bulkhead_cgroups::{device_rule, merge_resources, parse_list, update_changes, v2, validate};
use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::LinuxResources;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(set) = parse_list(s) {
            assert!(set.len() <= 65_537 * s.split(',').count());
        }
    }
    let Ok(r) = serde_json::from_slice::<LinuxResources>(data) else {
        return;
    };
    let _ = validate(&r);
    for d in r.devices().iter().flatten() {
        let _ = device_rule(d);
    }
    if let Some(m) = r.memory() {
        let _ = v2::swap_max(m.limit(), m.swap());
    }
    if let Some(c) = r.cpu() {
        let _ = v2::cpu_max(c.quota().unwrap_or(0), c.period().unwrap_or(0), "max");
        let _ = v2::shares_to_weight(c.shares().unwrap_or(0));
    }
    if let Some(b) = r.block_io() {
        let _ = v2::blkio_weight_to_io_weight(b.weight().unwrap_or(0));
    }
    let upd = update_changes(&r);
    let mut base = LinuxResources::default();
    merge_resources(&mut base, &upd);
    merge_resources(&mut base, &r);
});
