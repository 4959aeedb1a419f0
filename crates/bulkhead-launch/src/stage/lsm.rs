//! Mandatory access control labels: AppArmor profiles and SELinux process
//! labels are attribute writes under /proc/thread-self/attr, done through a
//! private procfs handle (a container-controlled /proc could swallow them,
//! the CVE-2019-16884 / CVE-2025-52881 class). A label the host cannot apply
//! is an error, never a silent no-op.

use std::io::Write;
use std::path::Path;

use bulkhead_spec::plan::ProcessPlan;
use pathrs::procfs::{ProcfsBase, ProcfsHandle};

use super::StageError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lsm {
    AppArmor,
    SELinux,
}

impl Lsm {
    pub fn enabled(self) -> bool {
        match self {
            Lsm::AppArmor => Path::new("/sys/kernel/security/apparmor").exists(),
            Lsm::SELinux => Path::new("/sys/fs/selinux/enforce").exists(),
        }
    }

    /// The attribute file (under /proc/thread-self) and the bytes that make
    /// the next execve run with `label`.
    pub fn exec_attr(self, label: &str) -> (&'static str, String) {
        match self {
            Lsm::AppArmor => ("attr/apparmor/exec", format!("exec {label}")),
            Lsm::SELinux => ("attr/exec", label.to_string()),
        }
    }

    fn field(self) -> &'static str {
        match self {
            Lsm::AppArmor => "process.apparmorProfile",
            Lsm::SELinux => "process.selinuxLabel",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Lsm::AppArmor => "AppArmor",
            Lsm::SELinux => "SELinux",
        }
    }
}

/// Labels the process's next execve; run after the rootfs is final and
/// before exec.
pub fn apply(p: &ProcessPlan) -> Result<(), StageError> {
    for (lsm, label) in [
        (Lsm::AppArmor, p.apparmor_profile.as_deref()),
        (Lsm::SELinux, p.selinux_label.as_deref()),
    ] {
        let Some(label) = label else { continue };
        if !lsm.enabled() {
            return Err(StageError::msg(
                lsm.field(),
                format!("{} is not enabled on this host", lsm.name()),
            ));
        }
        let (attr, bytes) = lsm.exec_attr(label);
        let procfs = ProcfsHandle::new().map_err(StageError::sys(lsm.field()))?;
        let mut f = procfs
            .open(
                ProcfsBase::ProcThreadSelf,
                attr,
                pathrs::flags::OpenFlags::O_WRONLY,
            )
            .map_err(StageError::sys(lsm.field()))?;
        f.write_all(bytes.as_bytes())
            .map_err(StageError::sys(format!("{}: set {label:?}", lsm.field())))?;
    }
    Ok(())
}

/// Mount data with the SELinux mount label added (for the filesystems that
/// take a `context=` option).
pub fn with_mount_label(fstype: &str, data: &str, label: Option<&str>) -> String {
    const LABELLED: [&str; 4] = ["tmpfs", "devpts", "mqueue", "shm"];
    match label {
        Some(l) if LABELLED.contains(&fstype) && !data.contains("context=") => {
            if data.is_empty() {
                format!("context=\"{l}\"")
            } else {
                format!("{data},context=\"{l}\"")
            }
        }
        _ => data.to_string(),
    }
}

/// `linux.mountLabel` needs SELinux on the host.
pub fn check_mount_label(label: Option<&str>) -> Result<(), StageError> {
    if label.is_some() && !Lsm::SELinux.enabled() {
        return Err(StageError::msg(
            "linux.mountLabel",
            "SELinux is not enabled on this host",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apparmor_exec_attribute() {
        assert_eq!(
            Lsm::AppArmor.exec_attr("docker-default"),
            ("attr/apparmor/exec", "exec docker-default".to_string())
        );
    }

    #[test]
    fn selinux_exec_attribute() {
        let l = "system_u:system_r:container_t:s0:c1,c2";
        assert_eq!(Lsm::SELinux.exec_attr(l), ("attr/exec", l.to_string()));
    }

    #[test]
    fn mount_label_added_to_labelled_filesystems_only() {
        let l = Some("system_u:object_r:container_file_t:s0");
        assert_eq!(
            with_mount_label("tmpfs", "mode=755", l),
            "mode=755,context=\"system_u:object_r:container_file_t:s0\""
        );
        assert_eq!(
            with_mount_label("devpts", "", l),
            "context=\"system_u:object_r:container_file_t:s0\""
        );
        assert_eq!(with_mount_label("proc", "", l), "");
        assert_eq!(
            with_mount_label("tmpfs", "context=\"x\"", l),
            "context=\"x\""
        );
        assert_eq!(with_mount_label("tmpfs", "mode=1777", None), "mode=1777");
    }

    #[test]
    fn labels_fail_clearly_where_the_host_lacks_the_lsm() {
        let mut p = bulkhead_spec::plan::process_plan(
            &serde_json::from_value(serde_json::json!({
                "args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                "apparmorProfile": "bulkhead-default"
            }))
            .unwrap(),
        )
        .unwrap();
        if !Lsm::AppArmor.enabled() {
            let e = apply(&p).unwrap_err().to_string();
            assert!(
                e.contains("process.apparmorProfile") && e.contains("not enabled"),
                "{e}"
            );
        }
        p.apparmor_profile = None;
        p.selinux_label = Some("system_u:system_r:container_t:s0".into());
        if !Lsm::SELinux.enabled() {
            let e = apply(&p).unwrap_err().to_string();
            assert!(e.contains("process.selinuxLabel"), "{e}");
        }
    }
}
