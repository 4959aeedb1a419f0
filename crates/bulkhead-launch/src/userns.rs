//! Work of the runtime itself done inside a fresh user namespace with the
//! maps a container will get: a rootless image is unpacked there, so its
//! files carry the owners the container sees (image uid 1000 → the user's
//! sub-id 999 on the host), and a rootless sandbox directory holding such
//! files is removed there. The maps are written as for a container (own ids
//! directly, more through newuidmap/newgidmap after checking /etc/sub?id).

use std::io::{Read, Write};

use bulkhead_spec::plan::IdMap;
use bulkhead_sys::Forked;

use crate::subid::MapWriter;
use crate::sync::{self, Msg};
use crate::{LaunchError, io_err};

/// Runs `f` in a child process in a new user namespace mapped by `uids` and
/// `gids`, as that namespace's root (full capabilities over files owned by
/// mapped ids, none elsewhere), and returns what it returned. The child
/// dies with the caller (parent-death signal), so an interrupted caller
/// leaves no worker behind. The caller must be single-threaded (fork).
pub fn run_in_userns(
    uids: &[IdMap],
    gids: &[IdMap],
    f: impl FnOnce() -> Result<Vec<u8>, String>,
) -> Result<Vec<u8>, LaunchError> {
    let writer = if rustix::process::geteuid().is_root() {
        MapWriter::Privileged
    } else {
        crate::subid::writer(uids, gids).map_err(Box::new)?
    };
    let (parent, child) = sync::pair().map_err(io_err("socketpair"))?;
    let (out_r, out_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| io_err("pipe")(e.into()))?;
    match bulkhead_sys::fork(libc::CLONE_NEWUSER as u64).map_err(io_err("clone user namespace"))? {
        Forked::Child => {
            drop(parent);
            drop(out_r);
            let _ = rustix::process::set_parent_process_death_signal(Some(
                rustix::process::Signal::KILL,
            ));
            let mut out = std::fs::File::from(out_w);
            let result = match child.recv() {
                Ok(Msg::Go) => become_root().and_then(|()| f()),
                _ => Err("the parent did not map the user namespace".into()),
            };
            let (tag, body) = match result {
                Ok(b) => (0u8, b),
                Err(e) => (1u8, e.into_bytes()),
            };
            let ok = out.write_all(&[tag]).and_then(|()| out.write_all(&body));
            bulkhead_sys::exit_now(if ok.is_ok() && tag == 0 { 0 } else { 1 })
        }
        Forked::Parent(pid) => {
            drop(child);
            drop(out_w);
            let mapped = write_maps(&writer, pid, uids, gids);
            if mapped.is_ok() {
                let _ = parent.send(&Msg::Go);
            }
            drop(parent);
            let mut buf = Vec::new();
            let read = std::fs::File::from(out_r).read_to_end(&mut buf);
            let status = bulkhead_sys::wait_exit(pid);
            mapped?;
            read.map_err(io_err("read from the user namespace worker"))?;
            match buf.split_first() {
                Some((0, body)) => Ok(body.to_vec()),
                Some((_, body)) => Err(LaunchError::Setup(
                    String::from_utf8_lossy(body).into_owned(),
                )),
                None => Err(LaunchError::Setup(format!(
                    "the user namespace worker died without a word ({status:?})"
                ))),
            }
        }
    }
}

fn write_maps(
    writer: &MapWriter,
    pid: i32,
    uids: &[IdMap],
    gids: &[IdMap],
) -> Result<(), LaunchError> {
    match writer {
        MapWriter::Helpers {
            newuidmap,
            newgidmap,
        } => {
            crate::subid::run_helper(newuidmap, pid, uids).map_err(Box::new)?;
            crate::subid::run_helper(newgidmap, pid, gids).map_err(Box::new)?;
            Ok(())
        }
        MapWriter::OwnIds => {
            crate::choreography::deny_setgroups(pid)?;
            crate::choreography::write_id_maps(pid, uids, gids)
        }
        MapWriter::Privileged => crate::choreography::write_id_maps(pid, uids, gids),
    }
}

/// The caller's ids map to 0 already when it maps itself to root; say so
/// explicitly, so files are created as the namespace's root either way.
fn become_root() -> Result<(), String> {
    bulkhead_sys::setresgid(0).map_err(|e| format!("setresgid(0) in user namespace: {e}"))?;
    bulkhead_sys::setresuid(0).map_err(|e| format!("setresuid(0) in user namespace: {e}"))
}
