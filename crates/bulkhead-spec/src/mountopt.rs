//! (placeholder, filled in by the mountopt work)
