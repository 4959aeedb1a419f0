//! Rootless id maps. An unprivileged process may write a user namespace's
//! maps itself only to map its own uid and gid (and must deny setgroups
//! first); anything more goes through the setuid helpers `newuidmap` and
//! `newgidmap` (package uidmap), which allow the ranges that `/etc/subuid`
//! and `/etc/subgid` delegate to the user. Those ranges are checked here
//! first, so a bad config gets an error naming the range and the file
//! before any process exists.

use std::path::{Path, PathBuf};
use std::process::Command;

use bulkhead_spec::plan::IdMap;

#[derive(Debug, thiserror::Error)]
pub enum SubidError {
    #[error("{field}: host ids {range} are not delegated to {user} in {file} ({detail})")]
    NotDelegated {
        field: String,
        range: String,
        user: String,
        file: String,
        /// What the file grants, and how to fix it.
        detail: String,
    },
    #[error(
        "{helper} not found in PATH ({path}): mapping more than your own id in a rootless \
         container needs the setuid helpers newuidmap and newgidmap; install the uidmap \
         package (apt-get install uidmap)"
    )]
    NoHelper { helper: &'static str, path: String },
    #[error("{helper} {args}: {reason}")]
    Helper {
        helper: PathBuf,
        args: String,
        reason: String,
    },
}

/// How the maps of a new user namespace get written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapWriter {
    /// Host root (or `CAP_SETUID`/`CAP_SETGID` over the parent namespace):
    /// any map, written directly.
    Privileged,
    /// Only the caller's own ids: written directly, setgroups denied.
    OwnIds,
    /// Through newuidmap/newgidmap.
    Helpers {
        newuidmap: PathBuf,
        newgidmap: PathBuf,
    },
}

const SUBUID: &str = "/etc/subuid";
const SUBGID: &str = "/etc/subgid";

/// Decide how to write `uids`/`gids` for a rootless caller, checking the
/// ranges against /etc/subuid and /etc/subgid when helpers are needed.
pub fn writer(uids: &[IdMap], gids: &[IdMap]) -> Result<MapWriter, SubidError> {
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let own_only =
        |maps: &[IdMap], id: u32| maps.len() == 1 && maps[0].host_id == id && maps[0].size == 1;
    if own_only(uids, uid) && own_only(gids, gid) {
        return Ok(MapWriter::OwnIds);
    }
    let (name, _) = passwd_entry(uid);
    // Both files are keyed by the user's name or uid, never by a gid.
    let user = Owner { name: &name, uid };
    check(
        uids,
        uid,
        &user,
        Path::new(SUBUID),
        "linux.uidMappings",
        "uid",
    )?;
    check(
        gids,
        gid,
        &user,
        Path::new(SUBGID),
        "linux.gidMappings",
        "gid",
    )?;
    Ok(MapWriter::Helpers {
        newuidmap: find_helper("newuidmap")?,
        newgidmap: find_helper("newgidmap")?,
    })
}

/// The user name of `uid` from /etc/passwd (the uid itself if absent), and
/// whether it was found.
fn passwd_entry(uid: u32) -> (String, bool) {
    let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for line in text.lines() {
        let mut f = line.split(':');
        let (Some(name), _, Some(id)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if id.parse::<u32>() == Ok(uid) {
            return (name.to_string(), true);
        }
    }
    (uid.to_string(), false)
}

/// Whom /etc/subuid and /etc/subgid lines are keyed by: the user's name or
/// numeric uid (subgid too: shadow's lookups never use a gid).
struct Owner<'a> {
    name: &'a str,
    uid: u32,
}

/// The ranges `file` grants to user `name` or to its numeric `uid`.
fn ranges(file: &Path, name: &str, uid: u32) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let owner = f.next()?;
            let start = f.next()?.trim().parse::<u64>().ok()?;
            let count = f.next()?.trim().parse::<u64>().ok()?;
            (owner == name || owner.parse::<u32>() == Ok(uid)).then_some((start, count))
        })
        .collect()
}

/// Checks `maps` against what `file` grants `user`; `own` is the caller's
/// own uid or gid (mapping it alone needs no delegation).
fn check(
    maps: &[IdMap],
    own: u32,
    user: &Owner<'_>,
    file: &Path,
    field: &'static str,
    kind: &'static str,
) -> Result<(), SubidError> {
    let name = user.name;
    let granted = ranges(file, name, user.uid);
    for (index, m) in maps.iter().enumerate() {
        let start = u64::from(m.host_id);
        let end = start + u64::from(m.size);
        let own_id = m.host_id == own && m.size == 1;
        let inside = granted.iter().any(|&(s, c)| start >= s && end <= s + c);
        if !own_id && !inside {
            let granted = if granted.is_empty() {
                "it grants none".to_string()
            } else {
                let list: Vec<String> = granted
                    .iter()
                    .map(|(s, c)| format!("{s}-{}", s + c - 1))
                    .collect();
                format!("it grants {}", list.join(", "))
            };
            let range = format!("{start}-{}", end.saturating_sub(1));
            return Err(SubidError::NotDelegated {
                field: format!("{field}[{index}]"),
                user: format!("user {name} ({kind} {own})"),
                file: file.display().to_string(),
                detail: format!(
                    "{granted}; ask root to add them (usermod --add-sub{kind}s {range} {name}) \
                     or map only your own {kind} {own}"
                ),
                range,
            });
        }
    }
    Ok(())
}

/// The caller's first sub-uid and sub-gid ranges, when both exist and
/// newuidmap and newgidmap are installed: `(first sub-uid, first sub-gid,
/// ids in both)`. Both files are keyed by user name or uid.
pub fn own_subids() -> Option<(u32, u32, u32)> {
    let uid = rustix::process::geteuid().as_raw();
    let (name, _) = passwd_entry(uid);
    let (su, cu) = *ranges(Path::new(SUBUID), &name, uid).first()?;
    let (sg, cg) = *ranges(Path::new(SUBGID), &name, uid).first()?;
    find_helper("newuidmap").ok()?;
    find_helper("newgidmap").ok()?;
    Some((
        u32::try_from(su).ok()?,
        u32::try_from(sg).ok()?,
        u32::try_from(cu.min(cg)).ok()?,
    ))
}

fn find_helper(helper: &'static str) -> Result<PathBuf, SubidError> {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(helper))
        .find(|p| p.is_file())
        .ok_or(SubidError::NoHelper { helper, path })
}

/// Run one helper: `newuidmap PID cid hid size …`.
pub fn run_helper(helper: &Path, pid: i32, maps: &[IdMap]) -> Result<(), SubidError> {
    let mut args = vec![pid.to_string()];
    for m in maps {
        args.extend([
            m.container_id.to_string(),
            m.host_id.to_string(),
            m.size.to_string(),
        ]);
    }
    let err = |reason: String| SubidError::Helper {
        helper: helper.to_path_buf(),
        args: args.join(" "),
        reason,
    };
    let out = Command::new(helper)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(err(if text.is_empty() {
            out.status.to_string()
        } else {
            text
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_name_or_uid() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("subuid");
        std::fs::write(&f, "alice:100000:65536\nbob:200000:10\n1001:300000:5\n").unwrap();
        assert_eq!(ranges(&f, "alice", 1000), vec![(100000, 65536)]);
        assert_eq!(ranges(&f, "carol", 1001), vec![(300000, 5)]);
        let maps = [
            IdMap {
                container_id: 0,
                host_id: 1000,
                size: 1,
            },
            IdMap {
                container_id: 1,
                host_id: 100000,
                size: 65536,
            },
        ];
        let alice = Owner {
            name: "alice",
            uid: 1000,
        };
        check(&maps, 1000, &alice, &f, "linux.uidMappings", "uid").unwrap();
        let too_big = [IdMap {
            container_id: 0,
            host_id: 100000,
            size: 65537,
        }];
        let e = check(&too_big, 1000, &alice, &f, "linux.uidMappings", "uid")
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.uidMappings[0]"), "{e}");
        assert!(e.contains("100000-165536"), "{e}");
        assert!(e.contains("/subuid"), "{e}");
        assert!(e.contains("it grants 100000-165535"), "{e}");
    }

    /// /etc/subgid lines name the user (or its uid), not a group: a line
    /// keyed by the user's gid grants nothing, one keyed by its uid does.
    #[test]
    fn subgid_entries_are_keyed_by_user_not_gid() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("subgid");
        // uid 1001, primary gid 2000; "2000" is another user's uid.
        std::fs::write(&f, "2000:500000:65536\n1001:300000:65536\n").unwrap();
        let carol = Owner {
            name: "carol",
            uid: 1001,
        };
        let maps = [
            IdMap {
                container_id: 0,
                host_id: 2000,
                size: 1,
            },
            IdMap {
                container_id: 1,
                host_id: 300000,
                size: 65536,
            },
        ];
        check(&maps, 2000, &carol, &f, "linux.gidMappings", "gid").unwrap();
        let others = [IdMap {
            container_id: 1,
            host_id: 500000,
            size: 65536,
        }];
        let e = check(&others, 2000, &carol, &f, "linux.gidMappings", "gid")
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.gidMappings[0]"), "{e}");
        assert!(e.contains("it grants 300000-365535"), "{e}");
        // By name too.
        std::fs::write(&f, "carol:400000:10\n").unwrap();
        assert_eq!(ranges(&f, "carol", 1001), vec![(400000, 10)]);
        assert!(ranges(&f, "dave", 2000).is_empty());
    }
}
