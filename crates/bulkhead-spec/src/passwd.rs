//! Resolving `user:group` against the container's own /etc/passwd and
//! /etc/group text.
//!
//! We never call getpwnam(3): that can dlopen NSS modules, and the only
//! account database that means anything is the one inside the rootfs.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UserError {
    #[error("empty user name")]
    EmptyUser,
    #[error("empty group name")]
    EmptyGroup,
    #[error("unable to find user {name}: no matching entries in passwd file")]
    UserNotFound { name: String },
    #[error("unable to find group {name}: no matching entries in group file")]
    GroupNotFound { name: String },
    #[error("uid {value} is out of range (must fit in 32 bits)")]
    UidOutOfRange { value: String },
    #[error("gid {value} is out of range (must fit in 32 bits)")]
    GidOutOfRange { value: String },
    /// `(uid_t)-1` tells setresuid/setresgid "leave unchanged", so letting
    /// it through would silently keep the runtime's own id.
    #[error("{kind} {id} is reserved: the kernel reads it as -1")]
    Reserved { kind: &'static str, id: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub sgids: Vec<u32>,
    pub home: String,
}

enum Num {
    Id(u32),
    /// All digits but wider than 32 bits.
    Overflow,
    NotNumeric,
}

/// Digits only: `str::parse` would also take "+5", which no id file uses.
fn numeric(s: &str) -> Num {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Num::NotNumeric;
    }
    s.parse().map_or(Num::Overflow, Num::Id)
}

fn id_field(s: &str) -> Option<u32> {
    match numeric(s) {
        Num::Id(n) => Some(n),
        _ => None,
    }
}

/// Lines that are blank or start with '#' are comments. Surrounding
/// whitespace and a CR (files edited on Windows) are ignored.
fn records(content: &str) -> impl Iterator<Item = &str> {
    content
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Lines without a name or with a non-numeric uid/gid are skipped (this
/// also drops NIS "+"/"-" lines); missing gecos/home/shell become "".
pub fn parse_passwd(content: &str) -> Vec<PasswdEntry> {
    records(content)
        .filter_map(|line| {
            let mut f = line.split(':');
            let name = f.next().filter(|n| !n.is_empty())?;
            let _password = f.next()?;
            let uid = id_field(f.next()?)?;
            let gid = id_field(f.next()?)?;
            let _gecos = f.next();
            let home = f.next().unwrap_or_default();
            let shell = f.next().unwrap_or_default();
            Some(PasswdEntry {
                name: name.to_owned(),
                uid,
                gid,
                home: home.to_owned(),
                shell: shell.to_owned(),
            })
        })
        .collect()
}

/// Lines without a name or numeric gid are skipped; a missing or empty
/// member list is an empty `members`.
pub fn parse_group(content: &str) -> Vec<GroupEntry> {
    records(content)
        .filter_map(|line| {
            let mut f = line.split(':');
            let name = f.next().filter(|n| !n.is_empty())?;
            let _password = f.next()?;
            let gid = id_field(f.next()?)?;
            let members = f
                .next()
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect();
            Some(GroupEntry {
                name: name.to_owned(),
                gid,
                members,
            })
        })
        .collect()
}

fn find_user<'a>(
    user: &str,
    passwd: &'a [PasswdEntry],
) -> Result<(u32, Option<&'a PasswdEntry>), UserError> {
    let by_name = || passwd.iter().find(|e| e.name == user);
    match numeric(user) {
        // A number means a uid; only if no entry has that uid do we try it
        // as a (numeric) user name, and failing that it stands alone.
        Num::Id(uid) => Ok(passwd
            .iter()
            .find(|e| e.uid == uid)
            .or_else(by_name)
            .map_or((uid, None), |e| (e.uid, Some(e)))),
        Num::Overflow => {
            by_name()
                .map(|e| (e.uid, Some(e)))
                .ok_or_else(|| UserError::UidOutOfRange {
                    value: user.to_owned(),
                })
        }
        Num::NotNumeric => {
            by_name()
                .map(|e| (e.uid, Some(e)))
                .ok_or_else(|| UserError::UserNotFound {
                    name: user.to_owned(),
                })
        }
    }
}

/// Same precedence as users: gid, then numeric name, then the bare number.
fn find_group(group: &str, groups: &[GroupEntry]) -> Result<u32, UserError> {
    if group.is_empty() {
        return Err(UserError::EmptyGroup);
    }
    let by_name = || groups.iter().find(|g| g.name == group).map(|g| g.gid);
    let gid = match numeric(group) {
        Num::Id(gid) => {
            if groups.iter().any(|g| g.gid == gid) {
                gid
            } else {
                by_name().unwrap_or(gid)
            }
        }
        Num::Overflow => by_name().ok_or_else(|| UserError::GidOutOfRange {
            value: group.to_owned(),
        })?,
        Num::NotNumeric => by_name().ok_or_else(|| UserError::GroupNotFound {
            name: group.to_owned(),
        })?,
    };
    not_reserved("gid", gid)
}

fn not_reserved(kind: &'static str, id: u32) -> Result<u32, UserError> {
    if id == u32::MAX {
        Err(UserError::Reserved { kind, id })
    } else {
        Ok(id)
    }
}

/// `user`: a uid number or a user name; `group`: optional gid number or group name (the "user:group" form split by the caller).
/// Numeric uid with no passwd entry is allowed (home "/", gid 0 unless given). A name that is not found is an error naming it
/// ("unable to find user NAME: no matching entries in passwd file"), same for groups.
/// `additional`: extra groups (numbers or names) appended to sgids. sgids also include every group in /etc/group listing the user's name as a member. No duplicates, keep order.
///
/// As in runc, an explicit `group` replaces the membership-derived
/// supplementary groups: asking for a group means asking for exactly that
/// one (plus `additional`). An empty `group` counts as not given.
pub fn resolve(
    user: &str,
    group: Option<&str>,
    additional: &[String],
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
) -> Result<ExecUser, UserError> {
    if user.is_empty() {
        return Err(UserError::EmptyUser);
    }
    let (uid, entry) = find_user(user, passwd)?;
    let uid = not_reserved("uid", uid)?;
    let group = group.filter(|g| !g.is_empty());

    let gid = match group {
        Some(g) => find_group(g, groups)?,
        None => not_reserved("gid", entry.map_or(0, |e| e.gid))?,
    };

    let mut sgids: Vec<u32> = Vec::new();
    let mut push = |id: u32| {
        if !sgids.contains(&id) {
            sgids.push(id);
        }
    };
    if let (None, Some(e)) = (group, entry) {
        for g in groups.iter().filter(|g| g.members.contains(&e.name)) {
            push(not_reserved("gid", g.gid)?);
        }
    }
    for a in additional {
        push(find_group(a, groups)?);
    }

    let home = entry
        .map(|e| e.home.as_str())
        .filter(|h| !h.is_empty())
        .unwrap_or("/")
        .to_owned();
    Ok(ExecUser {
        uid,
        gid,
        sgids,
        home,
    })
}

/// Convenience: "uid[:gid]" or "name[:group]" string (as `exec --user` takes) split and resolved.
pub fn resolve_spec(
    spec: &str,
    additional: &[String],
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
) -> Result<ExecUser, UserError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    resolve(user, group, additional, passwd, groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
# system accounts
root:x:0:0:root:/root:/bin/bash

daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice,,,:/home/alice:/bin/sh
  # indented comment
bob:x:1001:100
1234:x:5000:5000::/home/numeric:/bin/sh
carol:x:1002:1002:Carol:/home/carol:/bin/sh\r
broken line without colons
nouid:x::0:::
baduid:x:abc:0:::
neg:x:-1:0:::
huge:x:4294967296:0:::
:x:7:7:::
+::::::
short:x:9
";

    const GROUP: &str = "\
root:x:0:
daemon:x:1
wheel:x:10:root,alice
users:x:100:alice,bob,
alice:x:1000:
empty:x:200:
# comment:x:300:alice
carol:x:1002:
audio:x:29: alice , carol
bad:x:nope:alice
2000:x:7000:
";

    fn pw() -> Vec<PasswdEntry> {
        parse_passwd(PASSWD)
    }
    fn gr() -> Vec<GroupEntry> {
        parse_group(GROUP)
    }
    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn passwd_parsing_skips_junk() {
        let p = pw();
        let names: Vec<&str> = p.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["root", "daemon", "alice", "bob", "1234", "carol"]
        );
        assert_eq!(
            p[0],
            PasswdEntry {
                name: "root".into(),
                uid: 0,
                gid: 0,
                home: "/root".into(),
                shell: "/bin/bash".into()
            }
        );
        // Trailing fields missing.
        assert_eq!(p[3].uid, 1001);
        assert_eq!(p[3].gid, 100);
        assert_eq!(p[3].home, "");
        assert_eq!(p[3].shell, "");
        // CRLF endings.
        assert_eq!(p[5].shell, "/bin/sh");
    }

    #[test]
    fn passwd_max_u32_parses() {
        let p = parse_passwd("nobody:x:4294967295:4294967295:::\n");
        assert_eq!(p[0].uid, u32::MAX);
    }

    #[test]
    fn group_parsing() {
        let g = gr();
        let names: Vec<&str> = g.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "root", "daemon", "wheel", "users", "alice", "empty", "carol", "audio", "2000"
            ]
        );
        assert!(g[0].members.is_empty());
        assert!(g[1].members.is_empty(), "missing member field");
        assert_eq!(g[2].members, vec!["root", "alice"]);
        assert_eq!(g[3].members, vec!["alice", "bob"], "trailing comma");
        assert_eq!(g[7].members, vec!["alice", "carol"], "spaces trimmed");
        assert!(parse_group("").is_empty());
        assert!(parse_passwd("\n\n# only comments\n").is_empty());
    }

    #[test]
    fn user_by_name() {
        let u = resolve("alice", None, &[], &pw(), &gr()).unwrap();
        assert_eq!(
            u,
            ExecUser {
                uid: 1000,
                gid: 1000,
                sgids: vec![10, 100, 29],
                home: "/home/alice".into()
            }
        );
    }

    #[test]
    fn user_by_uid_gets_entry_data() {
        let u = resolve("1000", None, &[], &pw(), &gr()).unwrap();
        assert_eq!(u.uid, 1000);
        assert_eq!(u.gid, 1000);
        assert_eq!(u.home, "/home/alice");
        assert_eq!(u.sgids, vec![10, 100, 29]);

        let root = resolve("0", None, &[], &pw(), &gr()).unwrap();
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        assert_eq!(root.sgids, vec![10]);
    }

    #[test]
    fn unknown_numeric_uid_is_allowed() {
        let u = resolve("4242", None, &[], &pw(), &gr()).unwrap();
        assert_eq!(
            u,
            ExecUser {
                uid: 4242,
                gid: 0,
                sgids: vec![],
                home: "/".into()
            }
        );
        let u = resolve("4242", Some("4343"), &[], &[], &[]).unwrap();
        assert_eq!((u.uid, u.gid), (4242, 4343));
    }

    #[test]
    fn entry_without_home_defaults_to_root_dir() {
        let u = resolve("bob", None, &[], &pw(), &gr()).unwrap();
        assert_eq!(u.home, "/");
        assert_eq!(u.gid, 100);
        assert_eq!(u.sgids, vec![100]);
    }

    #[test]
    fn numeric_names() {
        // No uid 1234 exists, so "1234" is the user named "1234".
        let u = resolve("1234", None, &[], &pw(), &gr()).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.home.as_str()),
            (5000, 5000, "/home/numeric")
        );
        // A uid match beats a name match.
        let p = parse_passwd("1000:x:7:7::/n:\nalice:x:1000:1000::/a:\n");
        let u = resolve("1000", None, &[], &p, &[]).unwrap();
        assert_eq!((u.uid, u.home.as_str()), (1000, "/a"));
        // Same for groups.
        let u = resolve("0", Some("2000"), &[], &pw(), &gr()).unwrap();
        assert_eq!(u.gid, 7000);
        let u = resolve("0", Some("1000"), &[], &pw(), &gr()).unwrap();
        assert_eq!(u.gid, 1000);
    }

    #[test]
    fn out_of_range_ids() {
        let err = resolve("4294967296", None, &[], &pw(), &gr()).unwrap_err();
        assert_eq!(
            err,
            UserError::UidOutOfRange {
                value: "4294967296".into()
            }
        );
        assert!(err.to_string().contains("4294967296"));
        let err = resolve("0", Some("99999999999"), &[], &pw(), &gr()).unwrap_err();
        assert!(matches!(err, UserError::GidOutOfRange { .. }));
        let err = resolve("0", None, &strings(&["4294967296"]), &pw(), &gr()).unwrap_err();
        assert!(matches!(err, UserError::GidOutOfRange { .. }));
        // Values that fit 32 bits but not 31 are fine.
        let u = resolve("3000000000", Some("3000000001"), &[], &[], &[]).unwrap();
        assert_eq!((u.uid, u.gid), (3_000_000_000, 3_000_000_001));
        // Negative numbers are not numbers: they are (missing) names.
        assert!(matches!(
            resolve("-1", None, &[], &pw(), &gr()),
            Err(UserError::UserNotFound { .. })
        ));
    }

    #[test]
    fn minus_one_is_rejected() {
        let max = u32::MAX.to_string();
        let err = resolve(&max, None, &[], &[], &[]).unwrap_err();
        assert_eq!(
            err,
            UserError::Reserved {
                kind: "uid",
                id: u32::MAX
            }
        );
        assert_eq!(
            err.to_string(),
            "uid 4294967295 is reserved: the kernel reads it as -1"
        );
        assert!(resolve("0", Some(&max), &[], &[], &[]).is_err());
        assert!(resolve("0", None, std::slice::from_ref(&max), &[], &[]).is_err());
        let p = parse_passwd("nobody:x:65534:4294967295:::\n");
        assert!(matches!(
            resolve("nobody", None, &[], &p, &[]),
            Err(UserError::Reserved { kind: "gid", .. })
        ));
    }

    #[test]
    fn unknown_names_are_errors() {
        let err = resolve("mallory", None, &[], &pw(), &gr()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find user mallory: no matching entries in passwd file"
        );
        let err = resolve("alice", Some("nogroup"), &[], &pw(), &gr()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find group nogroup: no matching entries in group file"
        );
        let err = resolve("alice", None, &strings(&["video"]), &pw(), &gr()).unwrap_err();
        assert_eq!(
            err,
            UserError::GroupNotFound {
                name: "video".into()
            }
        );
        // Commented-out and malformed lines are not found either.
        assert!(resolve("root", Some("comment"), &[], &pw(), &gr()).is_err());
        assert!(resolve("nouid", None, &[], &pw(), &gr()).is_err());
        assert!(resolve("0", Some("bad"), &[], &pw(), &gr()).is_err());
        assert_eq!(
            resolve("", None, &[], &pw(), &gr()),
            Err(UserError::EmptyUser)
        );
        assert_eq!(
            resolve("0", None, &strings(&[""]), &pw(), &gr()),
            Err(UserError::EmptyGroup)
        );
    }

    #[test]
    fn explicit_group_replaces_membership() {
        let u = resolve("alice", Some("users"), &[], &pw(), &gr()).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 100));
        assert!(u.sgids.is_empty());
        // Empty group is "not given".
        let u = resolve("alice", Some(""), &[], &pw(), &gr()).unwrap();
        assert_eq!(u.gid, 1000);
        assert_eq!(u.sgids, vec![10, 100, 29]);
    }

    #[test]
    fn additional_groups_append_without_duplicates() {
        let extra = strings(&["wheel", "5", "empty", "5", "100", "4000"]);
        let u = resolve("alice", None, &extra, &pw(), &gr()).unwrap();
        assert_eq!(u.sgids, vec![10, 100, 29, 5, 200, 4000]);
        let u = resolve("daemon", Some("root"), &extra, &pw(), &gr()).unwrap();
        assert_eq!(u.gid, 0);
        assert_eq!(u.sgids, vec![10, 5, 200, 100, 4000]);
    }

    #[test]
    fn group_with_empty_members_adds_nothing() {
        let u = resolve("carol", None, &[], &pw(), &gr()).unwrap();
        // carol:1002 lists nobody; audio lists carol.
        assert_eq!(u.gid, 1002);
        assert_eq!(u.sgids, vec![29]);
    }

    #[test]
    fn spec_forms() {
        let (p, g) = (pw(), gr());
        assert_eq!(
            resolve_spec("alice", &[], &p, &g).unwrap(),
            resolve("alice", None, &[], &p, &g).unwrap()
        );
        let u = resolve_spec("1000:10", &[], &p, &g).unwrap();
        assert_eq!((u.uid, u.gid, u.sgids.len()), (1000, 10, 0));
        let u = resolve_spec("bob:wheel", &strings(&["audio"]), &p, &g).unwrap();
        assert_eq!((u.uid, u.gid, u.sgids.clone()), (1001, 10, vec![29]));
        let u = resolve_spec("4242:4343", &[], &p, &g).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 4343, "/"));
        let u = resolve_spec("alice:", &[], &p, &g).unwrap();
        assert_eq!(u.gid, 1000);
        assert_eq!(resolve_spec(":10", &[], &p, &g), Err(UserError::EmptyUser));
        assert!(matches!(
            resolve_spec("alice:wheel:x", &[], &p, &g),
            Err(UserError::GroupNotFound { name }) if name == "wheel:x"
        ));
    }
}
