//! Container ids → `id::validate`: an accepted id is one plain path
//! component (it becomes a directory under the state root).
#![no_main]

use std::path::{Component, Path};

use bulkhead_spec::id;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if id::validate(s).is_ok() {
        let mut c = Path::new(s).components();
        assert!(
            matches!(c.next(), Some(Component::Normal(n)) if n == s),
            "{s:?}"
        );
        assert!(c.next().is_none());
    }
});
