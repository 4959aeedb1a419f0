//! Protection of the runtime binary on the paths that enter a container
//! (CVE-2019-5736): a process in the container must never be able to open
//! the runtime through `/proc/<pid>/exe` and write to it.
//!
//! Instead of copying the binary on every invocation, the runtime re-executes
//! itself once from a read-only, detached bind mount of its own file: writes
//! through `/proc/<pid>/exe` then fail with EROFS, and no path leads back to
//! a writable mount. A sealed memfd copy is the fallback where `open_tree` is
//! not permitted. On x86_64 the entry point (`entry.rs`) has usually done the
//! re-execution before `main` runs; `ensure_protected` then only confirms it.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{MemfdFlags, SealFlags, StatVfsMountFlags};
use rustix::mount::{OpenTreeFlags, open_tree};

/// How the running binary is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// The binary lives on a read-only mount (installed that way, or we
    /// re-executed from a read-only detached mount).
    ReadOnlyMount,
    /// The binary is a sealed memfd copy.
    SealedMemfd,
}

/// How the current binary is protected, if it is.
pub fn protection() -> io::Result<Option<Protection>> {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if let Some(p) = crate::entry::found() {
        return Ok(Some(p));
    }
    let exe = File::open("/proc/self/exe")?;
    if rustix::fs::fstatvfs(&exe)?
        .f_flag
        .contains(StatVfsMountFlags::RDONLY)
    {
        return Ok(Some(Protection::ReadOnlyMount));
    }
    if let Ok(seals) = rustix::fs::fcntl_get_seals(&exe)
        && seals.contains(SealFlags::WRITE)
    {
        return Ok(Some(Protection::SealedMemfd));
    }
    Ok(None)
}

/// Make sure the running binary is protected; re-executes the process when it
/// is not (so it only returns when protection is already in place, or with
/// the error that prevented it).
pub fn ensure_protected() -> io::Result<Protection> {
    if let Some(p) = protection()? {
        return Ok(p);
    }
    match open_tree(
        rustix::fs::CWD,
        "/proc/self/exe",
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    ) {
        Ok(tree) => {
            crate::mount_setattr(tree.as_fd(), false, crate::mount_attr::RDONLY, 0, None)?;
            Err(reexec(tree.as_fd()))
        }
        Err(e) if e == rustix::io::Errno::PERM || e == rustix::io::Errno::NOSYS => {
            let memfd = rustix::fs::memfd_create(
                "bulkhead",
                MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
            )?;
            let mut src = File::open("/proc/self/exe")?;
            let mut dst = File::from(memfd);
            io::copy(&mut src, &mut dst)?;
            rustix::fs::fcntl_add_seals(
                &dst,
                SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
            )?;
            Err(reexec(dst.as_fd()))
        }
        Err(e) => Err(e.into()),
    }
}

fn reexec(fd: BorrowedFd<'_>) -> io::Error {
    let to_c = |b: &[u8]| CString::new(b).unwrap_or_default();
    let argv: Vec<CString> = std::env::args_os().map(|a| to_c(a.as_bytes())).collect();
    let envp: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            to_c(&kv)
        })
        .collect();
    let mut av: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    av.push(std::ptr::null());
    let mut ev: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    ev.push(std::ptr::null());
    crate::profile::flush();
    // SAFETY: argv/envp are NULL-terminated arrays of C strings that outlive
    // the call; the path is empty with AT_EMPTY_PATH, so fd is what runs.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            av.as_ptr(),
            ev.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}
