//! What namespaces hold once they exist: loopback (net), names (uts) and
//! sysctls (net, ipc).

use std::io::Write;

use bulkhead_spec::plan::Plan;

use super::StageError;

pub fn set_names(plan: &Plan) -> Result<(), StageError> {
    if plan.creates(bulkhead_spec::plan::NsKind::Network) {
        bulkhead_sys::loopback_up().map_err(StageError::sys("bring up loopback"))?;
    }
    if let Some(h) = &plan.hostname {
        rustix::system::sethostname(h.as_bytes()).map_err(StageError::sys("hostname"))?;
    }
    if let Some(d) = &plan.domainname {
        bulkhead_sys::set_domainname(d).map_err(StageError::sys("domainname"))?;
    }
    Ok(())
}

/// Sysctls are written through a private procfs handle, never through the
/// container's /proc, which a hostile image or a shared volume could fake.
pub fn sysctl(plan: &Plan) -> Result<(), StageError> {
    if plan.sysctl.is_empty() {
        return Ok(());
    }
    let procfs = pathrs::procfs::ProcfsHandle::new().map_err(StageError::sys("sysctl: procfs"))?;
    for (key, value) in &plan.sysctl {
        let sub = format!("sys/{}", key.replace('.', "/"));
        let step = format!("linux.sysctl.{key}");
        let mut f = procfs
            .open(
                pathrs::procfs::ProcfsBase::ProcRoot,
                &sub,
                pathrs::flags::OpenFlags::O_WRONLY,
            )
            .map_err(StageError::sys(step.clone()))?;
        f.write_all(value.as_bytes())
            .map_err(StageError::sys(step))?;
    }
    Ok(())
}

/// A session keyring of the container's own, so keys of the caller's
/// session are not reachable from inside.
pub fn session_keyring(id: &str) -> Result<(), StageError> {
    match bulkhead_sys::join_session_keyring(&format!("_ses.{id}")) {
        Ok(()) => Ok(()),
        // Kernels or seccomp policies without keyctl: nothing to isolate.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => Ok(()),
        Err(e) => Err(StageError::msg("session keyring", e.to_string())),
    }
}
