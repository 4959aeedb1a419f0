//! Detecting how cgroups are mounted on the host, from `/proc/self/mountinfo`.

use std::path::{Path, PathBuf};

use crate::CgroupError;

/// Where the host keeps its cgroup filesystems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Legacy (v1) hierarchies, one per controller group, plus the cgroup2
    /// mount of a "hybrid" host when there is one.
    V1 {
        hierarchies: Vec<Hierarchy>,
        unified: Option<PathBuf>,
    },
    /// Only a cgroup2 filesystem ("unified" mode).
    V2 { root: PathBuf },
}

/// One mounted cgroup v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Controllers of the hierarchy, as in the mount options: `["cpu",
    /// "cpuacct"]`, or `["name=systemd"]` for a named hierarchy.
    pub controllers: Vec<String>,
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// The cgroup that the mount shows at its mountpoint (4th mountinfo
    /// field), usually `/`.
    pub root: String,
}

impl Hierarchy {
    /// Whether this hierarchy carries `controller` (`"memory"`,
    /// `"name=systemd"`, ...).
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The standard place for cgroup mounts.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Mount options of a v1 cgroup mount that are not controllers.
const NON_CONTROLLER_OPTIONS: &[&str] = &[
    "rw",
    "ro",
    "xattr",
    "noprefix",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
    "none",
];

/// Read `/proc/self/mountinfo` and work out the cgroup layout.
///
/// Fails when the file cannot be read or when no cgroup filesystem at all is
/// mounted.
pub fn detect() -> Result<Layout, CgroupError> {
    let content =
        crate::fsutil::read_pseudo(MOUNTINFO).map_err(|source| CgroupError::Mountinfo {
            path: PathBuf::from(MOUNTINFO),
            source,
        })?;
    let layout = parse_mountinfo(&content);
    match &layout {
        Layout::V1 {
            hierarchies,
            unified: None,
        } if hierarchies.is_empty() => Err(CgroupError::NoCgroupMounts {
            path: PathBuf::from(MOUNTINFO),
        }),
        _ => Ok(layout),
    }
}

/// Undo the octal escapes (`\040` for space, ...) the kernel uses in
/// mountinfo paths.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            if let Ok(b) = u8::try_from(v) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct CgroupMount {
    v2: bool,
    root: String,
    mountpoint: PathBuf,
    superopts: String,
}

fn parse_line(line: &str) -> Option<CgroupMount> {
    // id parent maj:min root mountpoint opts [optional...] - fstype source superopts
    let (pre, post) = line.split_once(" - ")?;
    let pre: Vec<&str> = pre.split(' ').collect();
    if pre.len() < 6 {
        return None;
    }
    let mut post = post.split(' ');
    let fstype = post.next()?;
    let _source = post.next()?;
    let superopts = post.next().unwrap_or("");
    let v2 = match fstype {
        "cgroup" => false,
        "cgroup2" => true,
        _ => return None,
    };
    Some(CgroupMount {
        v2,
        root: unescape(pre[3]),
        mountpoint: PathBuf::from(unescape(pre[4])),
        superopts: superopts.to_string(),
    })
}

fn controllers_of(superopts: &str) -> Vec<String> {
    superopts
        .split(',')
        .filter(|o| !o.is_empty())
        .filter(|o| !NON_CONTROLLER_OPTIONS.contains(o) && !o.starts_with("release_agent="))
        .map(str::to_string)
        .collect()
}

/// Parse the text of a mountinfo file into a [`Layout`].
///
/// * Pure v2: a cgroup2 mount at `/sys/fs/cgroup` and no v1 hierarchy. (A
///   host with no v1 hierarchy and cgroup2 mounted elsewhere is also v2,
///   rooted there.)
/// * Otherwise v1, with every cgroup v1 mount as a hierarchy (the same set of
///   controllers mounted twice is kept once, the first mount winning) and the
///   cgroup2 mount, if any, as `unified` (preferring `/sys/fs/cgroup/unified`).
///
/// With no cgroup mount at all, the result is a v1 layout with no
/// hierarchies.
pub fn parse_mountinfo(content: &str) -> Layout {
    let mut hierarchies: Vec<Hierarchy> = Vec::new();
    let mut v2_mounts: Vec<PathBuf> = Vec::new();
    for line in content.lines() {
        let Some(m) = parse_line(line) else { continue };
        if m.v2 {
            if !v2_mounts.contains(&m.mountpoint) {
                v2_mounts.push(m.mountpoint);
            }
            continue;
        }
        let mut controllers = controllers_of(&m.superopts);
        if controllers.is_empty() {
            continue;
        }
        controllers.sort();
        if hierarchies.iter().any(|h| {
            let mut c = h.controllers.clone();
            c.sort();
            c == controllers
        }) {
            continue;
        }
        hierarchies.push(Hierarchy {
            controllers: controllers_of(&m.superopts),
            mountpoint: m.mountpoint,
            root: m.root,
        });
    }
    let root = Path::new(CGROUP_ROOT);
    if hierarchies.is_empty()
        && let Some(p) = v2_mounts
            .iter()
            .find(|p| p.as_path() == root)
            .or_else(|| v2_mounts.first())
    {
        return Layout::V2 { root: p.clone() };
    }
    let unified = v2_mounts
        .iter()
        .find(|p| p.as_path() == root.join("unified"))
        .or_else(|| v2_mounts.first())
        .cloned();
    Layout::V1 {
        hierarchies,
        unified,
    }
}

impl Layout {
    /// The v1 hierarchy carrying `controller`, if any.
    pub fn hierarchy(&self, controller: &str) -> Option<&Hierarchy> {
        match self {
            Layout::V1 { hierarchies, .. } => hierarchies.iter().find(|h| h.has(controller)),
            Layout::V2 { .. } => None,
        }
    }

    /// The cgroup2 mount: the root on a v2 host, the unified mount on a
    /// hybrid one.
    pub fn v2_mount(&self) -> Option<&Path> {
        match self {
            Layout::V1 { unified, .. } => unified.as_deref(),
            Layout::V2 { root } => Some(root),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
25 23 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
32 25 0:30 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,net_cls,net_prio
33 25 0:31 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,cpuset,clone_children
34 25 0:32 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,pids
";

    const V1_ONLY: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:32 / /mnt/again\\040here rw,relatime - cgroup cgroup rw,memory
37 31 0:33 / /sys/fs/cgroup/freezer rw,relatime master:3 - cgroup cgroup rw,freezer,release_agent=/x
";

    const V2: &str = "\
24 1 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn hybrid_sample() {
        let Layout::V1 {
            hierarchies,
            unified,
        } = parse_mountinfo(HYBRID)
        else {
            panic!("expected v1");
        };
        assert_eq!(
            unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        let names: Vec<Vec<String>> = hierarchies.iter().map(|h| h.controllers.clone()).collect();
        assert_eq!(
            names,
            vec![
                vec!["name=systemd".to_string()],
                vec!["cpu".into(), "cpuacct".into()],
                vec!["memory".into()],
                vec!["net_cls".into(), "net_prio".into()],
                vec!["cpuset".into()],
                vec!["pids".into()],
            ]
        );
        assert_eq!(
            hierarchies[1].mountpoint,
            Path::new("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert!(hierarchies.iter().all(|h| h.root == "/"));
    }

    #[test]
    fn v1_sample_dedups_and_unescapes() {
        let layout = parse_mountinfo(V1_ONLY);
        let Layout::V1 {
            hierarchies,
            unified,
        } = &layout
        else {
            panic!("expected v1");
        };
        assert_eq!(*unified, None);
        assert_eq!(hierarchies.len(), 4, "{hierarchies:?}");
        let mem = layout.hierarchy("memory").unwrap();
        assert_eq!(mem.root, "/docker/abc");
        assert_eq!(mem.mountpoint, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(
            layout.hierarchy("freezer").unwrap().controllers,
            vec!["freezer".to_string()]
        );
        assert!(layout.hierarchy("pids").is_none());
        assert_eq!(unescape("/mnt/again\\040here"), "/mnt/again here");
        assert_eq!(unescape("a\\134b"), "a\\b");
        assert_eq!(unescape("trail\\04"), "trail\\04");
    }

    #[test]
    fn v2_sample() {
        assert_eq!(
            parse_mountinfo(V2),
            Layout::V2 {
                root: PathBuf::from("/sys/fs/cgroup")
            }
        );
    }

    #[test]
    fn nothing_mounted() {
        let layout = parse_mountinfo("22 1 0:21 / /proc rw - proc proc rw\n");
        assert_eq!(
            layout,
            Layout::V1 {
                hierarchies: vec![],
                unified: None
            }
        );
    }
}
