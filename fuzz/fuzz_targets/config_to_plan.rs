//! config.json bytes → `parse_spec` → `Plan::from_spec` → `process_plan`,
//! plus the same bytes as an `exec --process` document.
//!
//! Any input may be rejected; none may panic. An accepted plan must keep
//! the promises the setup stages rely on (absolute, `..`-free paths).
#![no_main]

use std::path::{Component, Path};

use bulkhead_spec::plan::{Plan, parse_process, parse_spec, process_plan};
use libfuzzer_sys::fuzz_target;

fn clean(p: &Path) -> bool {
    p.is_absolute() && !p.components().any(|c| c == Component::ParentDir)
}

fuzz_target!(|data: &[u8]| {
    let file = Path::new("config.json");
    if let Ok(spec) = parse_spec(file, data) {
        if let Ok(plan) = Plan::from_spec(&spec, Path::new("/bundle")) {
            for m in &plan.mounts {
                assert!(clean(&m.destination), "mount {:?}", m.destination);
            }
            for d in &plan.devices {
                assert!(clean(&d.path), "device {:?}", d.path);
            }
            for p in plan.masked_paths.iter().chain(&plan.readonly_paths) {
                assert!(clean(p), "masked/readonly {p:?}");
            }
            if let Some(p) = &plan.process {
                assert!(p.cwd.is_absolute());
                assert!(!p.args.is_empty());
            }
            if let Some(r) = &plan.resources {
                let _ = bulkhead_cgroups::validate(r);
            }
        }
        if let Some(p) = spec.process() {
            let _ = process_plan(p);
        }
    }
    if let Ok(p) = parse_process(Path::new("process.json"), data) {
        let _ = process_plan(&p);
    }
});
