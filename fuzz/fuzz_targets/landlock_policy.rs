//! The `io.bulkhead.landlock` annotation → `landlock::parse`, then
//! `resolve` against every kernel ABI from none to one newer than known.
#![no_main]

use bulkhead_spec::landlock;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(plan) = landlock::parse(s) else {
        return;
    };
    for abi in 0..=landlock::KNOWN_ABI + 1 {
        if let Ok(r) = plan.resolve(abi) {
            // Nothing is enforced beyond what the kernel supports.
            assert_eq!(r.handled_fs & !landlock::fs_rights_of_abi(abi), 0);
            assert_eq!(r.handled_net & !landlock::net_rights_of_abi(abi), 0);
            for rule in &r.fs_rules {
                assert!(rule.path.is_absolute());
            }
        }
    }
});
