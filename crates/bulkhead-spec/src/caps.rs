//! (placeholder, filled in by the caps work)
