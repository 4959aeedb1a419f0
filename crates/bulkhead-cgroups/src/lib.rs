//! bulkhead-cgroups
