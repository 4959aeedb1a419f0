//! (placeholder, filled in by the features work)
