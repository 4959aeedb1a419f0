//! (placeholder, filled in by the id work)
