//! `<root>/<id>/state.json` → `bulkhead_lifecycle::Record`. A corrupted or
//! hostile state file must be an error, not a panic; an accepted record
//! serialises back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = serde_json::from_slice::<bulkhead_lifecycle::Record>(data) {
        let out = serde_json::to_vec(&r).expect("a parsed record serialises");
        let _ = serde_json::from_slice::<bulkhead_lifecycle::Record>(&out);
    }
});
