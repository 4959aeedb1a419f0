//! bulkhead-cgroups: cgroup layout detection, container cgroup placement
//! and removal, freezing, and resource limits for cgroup v1, hybrid and v2
//! hosts.
#![forbid(unsafe_code)]

mod error;
mod fsutil;
mod layout;
mod resources;
mod set;

pub use error::CgroupError;
pub use layout::{CGROUP_ROOT, Hierarchy, Layout, detect, parse_mountinfo};
pub use resources::{device_rule, v2};
pub use set::{CgroupDir, CgroupSet, resolve};
