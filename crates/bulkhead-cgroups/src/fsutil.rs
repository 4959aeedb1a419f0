//! Small helpers for reading and writing cgroupfs files.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::CgroupError;

/// Read a whole procfs or cgroupfs file (see
/// [`bulkhead_sys::read_pseudo_file`]: no size probe, few reads).
pub(crate) fn read_pseudo(path: impl AsRef<Path>) -> io::Result<String> {
    bulkhead_sys::read_pseudo_file(path.as_ref())
}

/// Read a whole cgroup file.
pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    read_pseudo(path).map_err(|source| CgroupError::Io {
        op: "reading",
        path: path.to_path_buf(),
        source,
    })
}

/// Write `value` to an existing cgroup file in a single `write(2)`; cgroupfs
/// files take one value (or rule) per write and are never created
/// (`O_TRUNC` is harmless there, and keeps plain files in tests exact).
pub(crate) fn write_raw(path: &Path, value: &str) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?;
    f.write_all(value.as_bytes())
}

/// A pair of rule files (`devices.allow`/`devices.deny`) written one rule
/// per `write(2)`, each opened once, on first use.
pub(crate) struct RuleFiles<'a> {
    dir: &'a Path,
    names: [&'static str; 2],
    open: [Option<std::fs::File>; 2],
}

impl<'a> RuleFiles<'a> {
    pub(crate) fn new(dir: &'a Path, allow: &'static str, deny: &'static str) -> Self {
        RuleFiles {
            dir,
            names: [allow, deny],
            open: [None, None],
        }
    }

    /// Write `rule` to the allow file (`allow`) or the deny file, naming
    /// `field` on failure.
    pub(crate) fn write(
        &mut self,
        allow: bool,
        field: &str,
        rule: &str,
    ) -> Result<(), CgroupError> {
        let k = usize::from(!allow);
        let path = self.dir.join(self.names[k]);
        let res = match &mut self.open[k] {
            Some(f) => f.write_all(rule.as_bytes()),
            slot => std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|mut f| {
                    let r = f.write_all(rule.as_bytes());
                    *slot = Some(f);
                    r
                }),
        };
        res.map_err(|source| CgroupError::WriteResource {
            field: field.to_string(),
            value: rule.to_string(),
            path,
            source,
        })
    }
}

/// [`write_raw`] with the error naming the file.
pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    write_raw(path, value).map_err(|source| CgroupError::Io {
        op: "writing",
        path: path.to_path_buf(),
        source,
    })
}

/// Pids listed in `cgroup.procs` of `dir`; a missing directory has none.
pub(crate) fn read_procs(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let path = dir.join("cgroup.procs");
    match read_pseudo(&path) {
        Ok(s) => Ok(s
            .lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .collect()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(Vec::new()),
        Err(source) => Err(CgroupError::Io {
            op: "reading",
            path,
            source,
        }),
    }
}

/// `dir` and all cgroup directories below it, parents before children. A
/// missing `dir` gives an empty list; directories vanishing while we walk
/// (`dir` included) are skipped.
pub(crate) fn tree(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            // Removed meanwhile (by systemd, stopping a unit): nothing below.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(source) => {
                return Err(CgroupError::Io {
                    op: "listing",
                    path: d,
                    source,
                });
            }
        };
        let mut children = Vec::new();
        for entry in entries {
            let Ok(entry) = entry else { continue };
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                children.push(entry.path());
            }
        }
        out.push(d);
        stack.extend(children);
    }
    // Parents come before their children: sort by depth, stable.
    out.sort_by_key(|p| p.components().count());
    Ok(out)
}
