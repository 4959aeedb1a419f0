//! (placeholder, filled in by the template work)
