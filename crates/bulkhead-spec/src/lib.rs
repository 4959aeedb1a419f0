//! Bundle config.json → validated, immutable [`plan::Plan`].
//!
//! Nothing in this crate makes a syscall: it turns what a config *says* into
//! plain decisions once, so that the setup stages never branch on raw
//! `Option`s from the spec. Every error names the config field that failed.
#![forbid(unsafe_code)]

pub mod caps;
pub mod features;
pub mod id;
pub mod landlock;
pub mod mountopt;
pub mod passwd;
pub mod plan;
pub mod profile;
pub mod rlimit;
pub mod sandbox;
pub mod signal;
pub mod template;
