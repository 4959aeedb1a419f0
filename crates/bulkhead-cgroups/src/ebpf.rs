//! Attaching the device program of [`crate::devfilter`] to a cgroup2
//! directory, replacing the one attached before.
//!
//! The program stays attached (and loaded) as long as the cgroup exists:
//! no file descriptor has to be kept, and removing the directory detaches
//! it. A later `update` (another process) finds the runtime's program by
//! querying the cgroup and by its name ([`bpf::DEVICE_PROG_NAME`]), so
//! programs that someone else attached to the same cgroup are left alone.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use bulkhead_sys::bpf;

/// What failed, for the error message, and the error itself.
#[derive(Debug)]
pub(crate) struct Failed {
    pub op: &'static str,
    pub source: io::Error,
}

fn at(op: &'static str) -> impl FnOnce(io::Error) -> Failed {
    move |source| Failed { op, source }
}

fn open_dir(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
}

/// Ids of the device programs attached directly to the cgroup2 directory
/// `path` (whoever attached them).
pub fn device_programs(path: &Path) -> io::Result<Vec<u32>> {
    bpf::query(open_dir(path)?.as_fd())
}

/// The runtime's own device programs attached to `cg`, as fds.
fn ours(cg: &File) -> io::Result<Vec<OwnedFd>> {
    let mut out = Vec::new();
    for id in bpf::query(cg.as_fd())? {
        let fd = match bpf::prog_fd_by_id(id) {
            Ok(fd) => fd,
            // Detached and freed since the query.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        if bpf::prog_info(fd.as_fd())?.name == bpf::DEVICE_PROG_NAME {
            out.push(fd);
        }
    }
    Ok(out)
}

fn ignore_gone(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

/// Load `insns` and attach the program to the cgroup2 directory `path`.
/// A program the runtime attached earlier is replaced atomically
/// (`BPF_F_REPLACE`); should the kernel refuse that, the new program is
/// attached beside it first and the old one detached after, so there is
/// never a moment without a program. Returns the new program's id.
pub(crate) fn set_device_program(path: &Path, insns: &[u8]) -> Result<u32, Failed> {
    let cg = open_dir(path).map_err(at("opening the cgroup directory"))?;
    let prog = bpf::load_cgroup_device_prog(insns).map_err(at("loading"))?;
    let id = bpf::prog_info(prog.as_fd())
        .map_err(at("reading back the program id"))?
        .id;
    let mut old = ours(&cg).map_err(at("querying the programs attached to"))?;
    let mut detach_after = Vec::new();
    if old.is_empty() {
        bpf::attach(prog.as_fd(), cg.as_fd(), None).map_err(at("attaching"))?;
    } else {
        let first = old.remove(0);
        match bpf::attach(prog.as_fd(), cg.as_fd(), Some(first.as_fd())) {
            Ok(()) => {}
            // No BPF_F_REPLACE (kernels before 5.6), or the old program
            // went away meanwhile.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {
                bpf::attach(prog.as_fd(), cg.as_fd(), None).map_err(at("attaching"))?;
                detach_after.push(first);
            }
            Err(e) => return Err(at("replacing")(e)),
        }
        detach_after.extend(old);
    }
    for fd in detach_after {
        ignore_gone(bpf::detach(fd.as_fd(), cg.as_fd()))
            .map_err(at("detaching the old program from"))?;
    }
    Ok(id)
}
