//! `linux.seccomp` JSON → `LinuxSeccomp` → `bulkhead_seccomp::compile`.
//! Compiling must never panic, whatever the profile says; an accepted
//! profile's program is whole instructions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::LinuxSeccomp;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = serde_json::from_slice::<LinuxSeccomp>(data) else {
        return;
    };
    if let Ok(c) = bulkhead_seccomp::compile(&s) {
        assert_eq!(c.bpf.len() % 8, 0);
        assert!(!c.bpf.is_empty());
    }
});
