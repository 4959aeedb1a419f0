//! Idmapped mounts are made by stage 0, in the host's user namespace:
//! setting `MOUNT_ATTR_IDMAP` needs privilege over the filesystem, which the
//! container's own user namespace does not have. Each becomes a detached
//! mount tree that the init later moves into place.

use std::os::fd::{AsFd, OwnedFd};

use bulkhead_spec::plan::{IdMap, MountPlan, Plan};
use bulkhead_sys::Forked;
use rustix::mount::{OpenTreeFlags, open_tree};

use crate::sync::{self, Msg};
use crate::{LaunchError, io_err};

/// Detached trees, indexed like `plan.mounts`.
#[derive(Debug, Default)]
pub struct IdmapTrees(pub Vec<Option<OwnedFd>>);

impl IdmapTrees {
    pub fn get(&self, i: usize) -> Option<&OwnedFd> {
        self.0.get(i).and_then(|t| t.as_ref())
    }
}

pub(crate) fn prepare(plan: &Plan) -> Result<IdmapTrees, LaunchError> {
    let mut out = Vec::with_capacity(plan.mounts.len());
    for (i, m) in plan.mounts.iter().enumerate() {
        if m.uid_mappings.is_empty() {
            out.push(None);
            continue;
        }
        if !rustix::process::geteuid().is_root() {
            return Err(LaunchError::Setup(format!(
                "mounts[{i}].uidMappings: idmapped mounts need root over the filesystem; \
                 a rootless container cannot use them (chown the source, or use a volume \
                 the user owns)"
            )));
        }
        out.push(Some(tree(i, m)?));
    }
    Ok(IdmapTrees(out))
}

fn attrs(flags: u64) -> u64 {
    use bulkhead_sys::mount_attr as a;
    let mut out = 0;
    for (ms, attr) in [
        (libc::MS_RDONLY, a::RDONLY),
        (libc::MS_NOSUID, a::NOSUID),
        (libc::MS_NODEV, a::NODEV),
        (libc::MS_NOEXEC, a::NOEXEC),
        (libc::MS_NODIRATIME, a::NODIRATIME),
    ] {
        if flags & ms != 0 {
            out |= attr;
        }
    }
    out
}

fn tree(i: usize, m: &MountPlan) -> Result<OwnedFd, LaunchError> {
    let field = format!("mounts[{i}]");
    let src = m.source.as_deref().unwrap_or_default();
    let userns = userns_with(&m.uid_mappings, &m.gid_mappings)
        .map_err(|e| LaunchError::Setup(format!("{field}: user namespace for idmap: {e}")))?;
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if m.options.recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let t = open_tree(rustix::fs::CWD, src, flags)
        .map_err(|e| LaunchError::Setup(format!("{field}.source {src}: {e}")))?;
    let recursive = m.options.idmap.is_some_and(|i| i.recursive);
    bulkhead_sys::mount_setattr(
        t.as_fd(),
        recursive,
        bulkhead_sys::mount_attr::IDMAP | attrs(m.options.flags),
        0,
        Some(userns.as_fd()),
    )
    .map_err(io_err(format!("{field}: idmap {src}")))?;
    Ok(t)
}

/// A user namespace holding exactly these mappings, kept only as an fd: a
/// child enters it, the maps are written, the fd is taken, the child leaves.
fn userns_with(uids: &[IdMap], gids: &[IdMap]) -> Result<OwnedFd, LaunchError> {
    let (parent, child) = sync::pair().map_err(io_err("socketpair"))?;
    match bulkhead_sys::fork(libc::CLONE_NEWUSER as u64).map_err(io_err("clone for idmap"))? {
        Forked::Child => {
            drop(parent);
            // Wait for the parent to be done with us (EOF or a message).
            let _ = child.recv();
            bulkhead_sys::exit_now(0)
        }
        Forked::Parent(pid) => {
            drop(child);
            let res = crate::choreography::write_id_maps(pid, uids, gids).and_then(|()| {
                let f = std::fs::File::open(format!("/proc/{pid}/ns/user"))
                    .map_err(io_err("open idmap user namespace"))?;
                Ok(OwnedFd::from(f))
            });
            let _ = parent.send(&Msg::Go);
            drop(parent);
            let _ = bulkhead_sys::wait_exit(pid);
            res
        }
    }
}
