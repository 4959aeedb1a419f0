//! The last step before the user's program: cwd, program lookup, env, fds.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use bulkhead_spec::plan::ProcessPlan;
use rustix::fs::{Access, AtFlags, CWD};

use super::StageError;

/// A program ready to be executed.
#[derive(Debug)]
pub struct Exec {
    path: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
}

impl Exec {
    /// Replace this process with the program; returns only on failure.
    pub fn exec(&self) -> std::io::Error {
        bulkhead_sys::reset_signals();
        bulkhead_sys::execve(&self.path, &self.argv, &self.env)
    }

    pub fn display_path(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// Exec, or report on stderr and exit 127/126 like a shell: by now nobody
    /// listens on the sync socket any more.
    pub fn run(&self) -> ! {
        let err = self.exec();
        eprintln!("bulkhead: exec {}: {err}", self.display_path());
        bulkhead_sys::exit_now(if err.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        })
    }
}

/// Enter the working directory while still privileged in the container.
/// Enter the cwd and verify it. Runs before the security stage: without
/// no_new_privs the seccomp filter is loaded there, and a profile may deny
/// getcwd (runtime-tools' linux_seccomp test does exactly that).
pub fn enter_cwd(p: &ProcessPlan) -> Result<(), StageError> {
    rustix::process::chdir(&p.cwd).map_err(|e| {
        StageError::msg("process.cwd", format!("chdir to {}: {e}", p.cwd.display()))
    })?;
    // The cwd must be a path inside the container's root: an fd leaked from
    // the host (CVE-2024-21626) would show up as "(unreachable)/…" here.
    let cwd = bulkhead_sys::getcwd_bytes().map_err(StageError::sys("process.cwd: getcwd"))?;
    if !cwd.starts_with(b"/") {
        return Err(StageError::msg(
            "process.cwd",
            "working directory is outside the container root",
        ));
    }
    Ok(())
}

fn cstr(field: &str, s: &[u8]) -> Result<CString, StageError> {
    CString::new(s).map_err(|_| StageError::msg(field, "contains a NUL byte"))
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn env_value<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// Find the program the way execvp would, but up front, so that a missing
/// binary fails `create` with the text podman maps to exit 127.
fn find_program(arg0: &str, env: &[String]) -> Result<PathBuf, StageError> {
    let check = |p: &Path| -> Result<(), rustix::io::Errno> {
        let st = rustix::fs::stat(p)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return Err(rustix::io::Errno::ACCESS);
        }
        // Plain faccessat (no flags): after setresuid the real and effective
        // ids agree, and faccessat2 is missing from many seccomp profiles
        // that may already be loaded here.
        rustix::fs::accessat(CWD, p, Access::EXEC_OK, AtFlags::empty())
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return match check(&p) {
            Ok(()) => Ok(p),
            Err(rustix::io::Errno::NOENT) => Err(StageError::msg(
                "exec",
                format!("{arg0:?}: stat {arg0}: no such file or directory"),
            )),
            Err(e) => Err(StageError::msg(
                "exec",
                format!("{arg0:?}: {}", std::io::Error::from(e)).to_lowercase(),
            )),
        };
    }
    let path = env_value(env, "PATH").unwrap_or(DEFAULT_PATH);
    let mut denied = false;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(arg0);
        match check(&cand) {
            Ok(()) => return Ok(cand),
            Err(rustix::io::Errno::ACCESS) => denied = true,
            Err(_) => {}
        }
    }
    Err(StageError::msg(
        "exec",
        if denied {
            format!("{arg0:?}: permission denied")
        } else {
            format!("{arg0:?}: executable file not found in $PATH")
        },
    ))
}

fn home_of(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|s| {
            bulkhead_spec::passwd::parse_passwd(&s)
                .into_iter()
                .find(|e| e.uid == uid)
                .map(|e| e.home)
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

pub fn prepare(p: &ProcessPlan, preserve_fds: u32) -> Result<Exec, StageError> {
    let mut env = p.env.clone();
    if env_value(&env, "HOME").is_none() {
        env.push(format!("HOME={}", home_of(p.uid)));
    }
    let program = find_program(&p.args[0], &env)?;
    let argv = p
        .args
        .iter()
        .map(|a| cstr("process.args", a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let envc = env
        .iter()
        .map(|e| cstr("process.env", e.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    // Nothing but stdio and the fds the caller asked to pass survives exec.
    bulkhead_sys::cloexec_from(3)
        .or_else(|e| match e.raw_os_error() {
            // close_range refused (an early seccomp filter) or absent.
            Some(libc::EPERM) | Some(libc::ENOSYS) => bulkhead_sys::cloexec_each_from(3),
            _ => Err(e),
        })
        .map_err(StageError::sys("close fds"))?;
    for fd in 3..3 + preserve_fds {
        if let Err(e) = bulkhead_sys::clear_cloexec(fd as i32)
            && e.raw_os_error() != Some(libc::EBADF)
        {
            return Err(StageError::msg("--preserve-fds", e.to_string()));
        }
    }
    Ok(Exec {
        path: cstr("process.args", program.as_os_str().as_bytes())?,
        argv,
        env: envc,
    })
}
