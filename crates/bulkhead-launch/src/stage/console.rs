//! The terminal: a pty allocated from the container's own devpts, made the
//! init's controlling tty and stdio, bound to /dev/console, and its master
//! sent to the caller over `--console-socket`.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;

use bulkhead_spec::plan::ProcessPlan;
use pathrs::flags::OpenFlags;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use super::StageError;
use super::rootfs::{Rootfs, fd_path};

const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;

pub fn setup(
    rootfs: &Rootfs,
    process: &ProcessPlan,
    socket: Option<UnixStream>,
) -> Result<(), StageError> {
    let socket = require_socket(socket)?;
    let (master, slave) = open_pty(&rootfs.root, process)?;
    // /dev/console: bind the verified slave onto it.
    if rootfs.root.resolve_nofollow("/dev/console").is_err() {
        rootfs
            .root
            .create_file(
                "/dev/console",
                OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC,
                &std::fs::Permissions::from_mode(0o600),
            )
            .map_err(StageError::sys("terminal: create /dev/console"))?;
    }
    let console = rootfs
        .root
        .resolve_nofollow("/dev/console")
        .map_err(StageError::sys("terminal: /dev/console"))?;
    bulkhead_sys::mount(
        Some(&fd_path(&slave).to_string_lossy()),
        &fd_path(&console),
        None,
        libc::MS_BIND,
        None,
    )
    .map_err(StageError::sys("terminal: bind /dev/console"))?;
    attach(master, slave, &socket)
}

pub(crate) fn require_socket(socket: Option<UnixStream>) -> Result<UnixStream, StageError> {
    socket.ok_or_else(|| {
        StageError::msg(
            "process.terminal",
            "a terminal needs --console-socket (bulkhead does not proxy terminals itself)",
        )
    })
}

/// A pty from the devpts instance under `root` (`/dev/pts/ptmx`), its peer
/// opened through the master and owned by the process user.
pub(crate) fn open_pty(
    root: &pathrs::Root,
    process: &ProcessPlan,
) -> Result<(OwnedFd, OwnedFd), StageError> {
    let ptmx = root
        .resolve("/dev/pts/ptmx")
        .map_err(StageError::sys("terminal: /dev/pts/ptmx"))?;
    let fs = rustix::fs::fstatfs(ptmx.as_fd()).map_err(StageError::sys("terminal: statfs"))?;
    if fs.f_type as i64 != DEVPTS_SUPER_MAGIC {
        return Err(StageError::msg(
            "terminal",
            "/dev/pts/ptmx in the container is not on a devpts filesystem",
        ));
    }
    let master: OwnedFd = ptmx
        .reopen(OpenFlags::O_RDWR | OpenFlags::O_NOCTTY | OpenFlags::O_CLOEXEC)
        .map_err(StageError::sys("terminal: open ptmx"))?
        .into();
    rustix::pty::unlockpt(&master).map_err(StageError::sys("terminal: unlockpt"))?;
    if let Some((rows, cols)) = process.console_size {
        let ws = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&master, ws).map_err(StageError::sys("terminal: size"))?;
    }
    // Opening the peer through the master avoids any path lookup of the slave.
    let slave = rustix::pty::ioctl_tiocgptpeer(
        &master,
        rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY,
    )
    .map_err(StageError::sys("terminal: open pty peer"))?;
    let st = rustix::fs::fstat(&slave).map_err(StageError::sys("terminal: stat pty"))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR
        || !(136..=143).contains(&rustix::fs::major(st.st_rdev))
    {
        return Err(StageError::msg("terminal", "pty peer is not a pts device"));
    }
    // The terminal belongs to the process user; its group stays the one
    // devpts gave it (tty, with gid=5).
    rustix::fs::fchown(&slave, Some(rustix::fs::Uid::from_raw(process.uid)), None)
        .map_err(StageError::sys("terminal: chown pty"))?;
    Ok((master, slave))
}

/// Make the peer the process's stdio and controlling terminal, and hand the
/// master to the caller over the console socket.
pub(crate) fn attach(
    master: OwnedFd,
    slave: OwnedFd,
    socket: &UnixStream,
) -> Result<(), StageError> {
    for fd in 0..3 {
        bulkhead_sys::dup2(slave.as_raw_fd(), fd).map_err(StageError::sys("terminal: stdio"))?;
    }
    rustix::process::ioctl_tiocsctty(&slave)
        .map_err(StageError::sys("terminal: set controlling tty"))?;
    let name = rustix::pty::ptsname(&master, Vec::new())
        .map(|n| n.to_bytes().to_vec())
        .unwrap_or_else(|_| b"/dev/ptmx".to_vec());
    let fds = [master.as_fd()];
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = SendAncillaryBuffer::new(&mut space);
    anc.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        socket.as_fd(),
        &[IoSlice::new(&name)],
        &mut anc,
        SendFlags::NOSIGNAL,
    )
    .map_err(StageError::sys("--console-socket: send pty master"))?;
    Ok(())
}
