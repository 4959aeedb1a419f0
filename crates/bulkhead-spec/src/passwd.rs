//! (placeholder, filled in by the passwd work)
