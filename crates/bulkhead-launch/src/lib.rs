//! bulkhead-launch
