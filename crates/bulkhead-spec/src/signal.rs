//! (placeholder, filled in by the signal work)
