//! bulkhead-cgroups: cgroup layout detection, container cgroup placement
//! and removal, freezing, and resource limits for cgroup v1, hybrid and v2
//! hosts.
//!
//! Typical use: [`detect`] the [`Layout`] once, [`resolve`] the container's
//! `linux.cgroupsPath` into a [`CgroupSet`] (one [`CgroupDir`] per
//! hierarchy; serializable for the state file), then
//! [`CgroupSet::create`], [`CgroupSet::apply`] the resources,
//! [`CgroupSet::add_pid`] the init process, and finally
//! [`CgroupSet::remove`]. A live container's limits change through
//! [`CgroupSet::update`] (validated, rolled back on failure); its usage is
//! read by [`CgroupSet::stats`] and OOM kills are watched with
//! [`CgroupSet::oom_watcher`]. Everything goes through cgroupfs files; the crate
//! has no `unsafe`. Device rules on cgroup2 become an eBPF program
//! ([`devfilter`]) loaded and attached through `bulkhead_sys::bpf`. With
//! `--systemd-cgroup` the container's cgroup is a transient systemd unit
//! ([`systemd`]): created over D-Bus by [`CgroupSet::place_init`], then
//! filled through cgroupfs like any other.
#![forbid(unsafe_code)]

pub mod devfilter;
mod ebpf;
mod error;
mod fsutil;
mod layout;
mod resources;
mod set;
mod stats;
pub mod systemd;
mod update;

pub use ebpf::device_programs;
pub use error::CgroupError;
pub use layout::{CGROUP_ROOT, Hierarchy, Layout, detect, parse_mountinfo};
pub use resources::{device_rule, v2};
pub use set::{CgroupDir, CgroupSet, Delegation, resolve};
pub use stats::{
    Blkio, BlkioEntry, Cpu, CpuSet, CpuUsage, Hugetlb, IntelRdt, Memory, MemoryEntry, OomWatcher,
    Pids, Stats, Throttling,
};
pub use update::{merge_resources, parse_list, update_changes, validate, zero_is_unset};
