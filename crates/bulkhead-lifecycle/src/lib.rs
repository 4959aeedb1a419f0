//! bulkhead-lifecycle
