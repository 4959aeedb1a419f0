//! `slice:prefix:name` parsing and slice expansion, as runc reads
//! `linux.cgroupsPath` under its systemd driver.

use super::SystemdError;

const FIELD: &str = "linux.cgroupsPath";
/// The slice used when the path leaves it empty (runc's default too).
pub const DEFAULT_SLICE: &str = "system.slice";
/// The prefix of the default unit name, `bulkhead-<id>.scope`.
pub const DEFAULT_PREFIX: &str = "bulkhead";
/// systemd's `UNIT_NAME_MAX` less the terminating NUL.
const UNIT_NAME_MAX: usize = 255;

/// Where a container's cgroup lives under the systemd driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdPath {
    /// The parent slice (`system.slice`).
    pub slice: String,
    /// The unit: `prefix-name.scope`, `name.scope` (empty prefix) or a
    /// slice `name` ending in `.slice`.
    pub unit: String,
    /// The unit's cgroup below systemd's root, without a leading `/`:
    /// `system.slice/bulkhead-abc.scope`, `a.slice/a-b.slice`.
    pub cgroup: String,
}

fn invalid(field: &'static str, value: &str, reason: impl Into<String>) -> SystemdError {
    SystemdError::InvalidName {
        field,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Characters systemd accepts in a unit name (`VALID_CHARS` in systemd's
/// unit-name.c); `@` is left out since templates make no sense here.
fn valid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '\\')
}

/// Check a complete unit name (`foo.scope`, `a-b.slice`).
fn check_unit(field: &'static str, value: &str, unit: &str) -> Result<(), SystemdError> {
    if unit.len() > UNIT_NAME_MAX {
        return Err(invalid(
            field,
            value,
            format!("unit name {unit:?} is longer than {UNIT_NAME_MAX} characters"),
        ));
    }
    if let Some(c) = unit.chars().find(|&c| !valid_char(c)) {
        return Err(invalid(
            field,
            value,
            format!(
                "unit name {unit:?} contains {c:?} (systemd allows letters, digits and \":-_.\\\")"
            ),
        ));
    }
    if unit.starts_with('.') {
        return Err(invalid(
            field,
            value,
            format!("unit name {unit:?} starts with \".\""),
        ));
    }
    Ok(())
}

/// The cgroup path of a slice: `a-b-c.slice` becomes
/// `/a.slice/a-b.slice/a-b-c.slice`, `-.slice` (the root slice) `/`.
/// Empty components (`a--b.slice`, `-a.slice`) and `/` are refused, as
/// systemd and runc refuse them.
pub fn expand_slice(slice: &str) -> Result<String, String> {
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(format!("slice {slice:?} does not end in \".slice\""));
    };
    if slice.contains('/') {
        return Err(format!("slice {slice:?} contains \"/\""));
    }
    if stem == "-" {
        return Ok("/".into());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for comp in stem.split('-') {
        if comp.is_empty() {
            return Err(format!(
                "slice {slice:?} has an empty \"-\"-separated component"
            ));
        }
        path.push('/');
        path.push_str(&prefix);
        path.push_str(comp);
        path.push_str(".slice");
        prefix.push_str(comp);
        prefix.push('-');
    }
    Ok(path)
}

/// Read `linux.cgroupsPath` in the systemd form. Absent or empty means
/// `system.slice:bulkhead:<id>`; an empty slice means `system.slice`;
/// `prefix-name.scope` is the unit (`name.scope` when the prefix is empty),
/// unless `name` ends in `.slice`: then that slice is the unit, its cgroup
/// where systemd puts it (the expansion of its own name).
pub fn parse_path(cgroups_path: Option<&str>, id: &str) -> Result<SystemdPath, SystemdError> {
    let (field, value, slice, prefix, name) = match cgroups_path.filter(|p| !p.is_empty()) {
        None => (
            "container id",
            id.to_string(),
            "",
            DEFAULT_PREFIX.to_string(),
            id.to_string(),
        ),
        Some(p) => {
            let parts: Vec<&str> = p.split(':').collect();
            let [slice, prefix, name] = parts[..] else {
                return Err(invalid(
                    FIELD,
                    p,
                    "expected \"slice:prefix:name\" with --systemd-cgroup",
                ));
            };
            (
                FIELD,
                p.to_string(),
                slice,
                prefix.to_string(),
                name.to_string(),
            )
        }
    };
    if name.is_empty() {
        return Err(invalid(field, &value, "the name part is empty"));
    }
    let slice = if slice.is_empty() {
        DEFAULT_SLICE.to_string()
    } else {
        slice.to_string()
    };
    check_unit(field, &value, &slice)?;
    let parent = expand_slice(&slice).map_err(|r| invalid(field, &value, r))?;
    if name.ends_with(".slice") {
        check_unit(field, &value, &name)?;
        let path = expand_slice(&name).map_err(|r| invalid(field, &value, r))?;
        if path == "/" {
            return Err(invalid(
                field,
                &value,
                "the root slice cannot be a container's unit",
            ));
        }
        return Ok(SystemdPath {
            slice,
            cgroup: path.trim_start_matches('/').to_string(),
            unit: name,
        });
    }
    let unit = if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    check_unit(field, &value, &unit)?;
    let cgroup = format!("{}/{unit}", parent.trim_end_matches('/'));
    Ok(SystemdPath {
        slice,
        unit,
        cgroup: cgroup.trim_start_matches('/').to_string(),
    })
}

/// The cgroup of systemd's own manager, from `/proc/1/cgroup` content, with
/// a trailing `init.scope` removed (systemd ≥ 226 runs there): the units'
/// paths start below it. The named `systemd` hierarchy (v1/hybrid) or the
/// unified one (`0::`) is read; `/` when neither is there.
pub fn manager_root(proc_1_cgroup: &str) -> String {
    let line = |pred: &dyn Fn(&str) -> bool| {
        proc_1_cgroup.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            pred(ctrl).then(|| path.to_string())
        })
    };
    let path = line(&|c| c == "name=systemd")
        .or_else(|| line(&|c| c.is_empty()))
        .unwrap_or_else(|| "/".into());
    let trimmed = path.strip_suffix("init.scope").unwrap_or(&path);
    let trimmed = trimmed.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_expand_like_runc() {
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            "/a.slice/a-b.slice/a-b-c.slice"
        );
        assert_eq!(
            expand_slice("kubepods-besteffort.slice").unwrap(),
            "/kubepods.slice/kubepods-besteffort.slice"
        );
        for bad in [
            "system",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "a/b.slice",
            ".slice",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scope_in_slice() {
        let p = parse_path(Some("system.slice:docker:abc"), "x").unwrap();
        assert_eq!(p.slice, "system.slice");
        assert_eq!(p.unit, "docker-abc.scope");
        assert_eq!(p.cgroup, "system.slice/docker-abc.scope");

        // Kubernetes (containerd SystemdCgroup = true) nests slices.
        let p = parse_path(
            Some("kubepods-besteffort-pod1234.slice:cri-containerd:c0ffee"),
            "c0ffee",
        )
        .unwrap();
        assert_eq!(p.unit, "cri-containerd-c0ffee.scope");
        assert_eq!(
            p.cgroup,
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/\
             cri-containerd-c0ffee.scope"
        );

        // Empty slice: system.slice; empty prefix: name.scope.
        let p = parse_path(Some("::abc"), "x").unwrap();
        assert_eq!(p.cgroup, "system.slice/abc.scope");
        // The root slice as parent.
        let p = parse_path(Some("-.slice:p:abc"), "x").unwrap();
        assert_eq!(p.cgroup, "p-abc.scope");
    }

    #[test]
    fn default_is_bulkhead_scope_in_system_slice() {
        for none in [None, Some("")] {
            let p = parse_path(none, "ctr1").unwrap();
            assert_eq!(p.slice, "system.slice");
            assert_eq!(p.unit, "bulkhead-ctr1.scope");
            assert_eq!(p.cgroup, "system.slice/bulkhead-ctr1.scope");
        }
    }

    #[test]
    fn slice_unit() {
        let p = parse_path(Some("machine.slice:ignored:machine-app.slice"), "x").unwrap();
        assert_eq!(p.unit, "machine-app.slice");
        assert_eq!(p.slice, "machine.slice");
        assert_eq!(p.cgroup, "machine.slice/machine-app.slice");
    }

    #[test]
    fn invalid_names_name_the_field() {
        for bad in [
            "/a/b",
            "a:b",
            "a:b:c:d",
            "system.slice:p:",
            "nosuffix:p:n",
            "a--b.slice:p:n",
            "system.slice:p:n/x",
            "system.slice:p:n x",
            "system.slice:p@:n",
            "system.slice::-.slice",
        ] {
            let err = parse_path(Some(bad), "x").unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with("linux.cgroupsPath: invalid value"),
                "{bad}: {msg}"
            );
        }
        let long = format!("system.slice:p:{}", "n".repeat(300));
        assert!(
            parse_path(Some(&long), "x")
                .unwrap_err()
                .to_string()
                .contains("longer")
        );
        let err = parse_path(None, "a+b").unwrap_err().to_string();
        assert!(err.starts_with("container id: invalid value"), "{err}");
    }

    #[test]
    fn manager_root_strips_init_scope() {
        assert_eq!(
            manager_root("1:name=systemd:/init.scope\n0::/init.scope\n"),
            "/"
        );
        assert_eq!(manager_root("0::/init.scope\n"), "/");
        assert_eq!(
            manager_root("3:cpu:/\n1:name=systemd:/outer/init.scope\n"),
            "/outer"
        );
        assert_eq!(manager_root("0::/\n"), "/");
        assert_eq!(manager_root(""), "/");
    }
}
