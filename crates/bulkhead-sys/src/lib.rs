//! bulkhead-sys
