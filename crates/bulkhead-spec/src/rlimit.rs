//! (placeholder, filled in by the rlimit work)
