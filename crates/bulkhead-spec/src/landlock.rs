//! The `io.bulkhead.landlock` annotation: a Landlock policy for the
//! container process (a bulkhead extension; the runtime-spec has no
//! Landlock field).
//!
//! The annotation's value is a JSON document (see `docs/landlock.md`):
//!
//! ```json
//! {"mode": "strict",
//!  "abi": 5,
//!  "filesystem": [{"path": "/usr", "access": ["read", "execute"]},
//!                 {"path": "/tmp", "access": ["read", "write", 16384]}],
//!  "network": {"tcpBind": [8080], "tcpConnect": [443]}}
//! ```
//!
//! Access rights are landlock.h's own bit values, so a right added by a
//! newer kernel can be named by number before bulkhead has a word for it.
//! This module only parses and validates; [`LandlockPlan::resolve`] decides,
//! still without a syscall, what to enforce on a kernel of a given ABI.

use std::collections::BTreeMap;
use std::path::{Component, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::plan::PlanError;

/// The annotation key.
pub const ANNOTATION: &str = "io.bulkhead.landlock";

/// The config field errors name, e.g. `annotations["io.bulkhead.landlock"]`.
pub fn field_root() -> String {
    format!("annotations[{ANNOTATION:?}]")
}

/// landlock.h `LANDLOCK_ACCESS_FS_*` values, with the words the annotation
/// accepts for them and the ABI that introduced each.
pub const FS_RIGHTS: [(&str, u64, u32); 17] = [
    ("execute", 1 << 0, 1),
    ("write_file", 1 << 1, 1),
    ("read_file", 1 << 2, 1),
    ("read_dir", 1 << 3, 1),
    ("remove_dir", 1 << 4, 1),
    ("remove_file", 1 << 5, 1),
    ("make_char", 1 << 6, 1),
    ("make_dir", 1 << 7, 1),
    ("make_reg", 1 << 8, 1),
    ("make_sock", 1 << 9, 1),
    ("make_fifo", 1 << 10, 1),
    ("make_block", 1 << 11, 1),
    ("make_sym", 1 << 12, 1),
    ("refer", 1 << 13, 2),
    ("truncate", 1 << 14, 3),
    ("ioctl_dev", 1 << 15, 5),
    ("resolve_unix", 1 << 16, 9),
];

/// Rights that apply to a file that is not a directory (landlock.h: the
/// others only make sense beneath a directory, and the kernel rejects them
/// in a rule on a file).
pub const FS_FILE_RIGHTS: u64 = 1 | (1 << 1) | (1 << 2) | (1 << 14) | (1 << 15) | (1 << 16);

/// `read`: read_file and read_dir.
pub const FAMILY_READ: u64 = (1 << 2) | (1 << 3);
/// `execute`.
pub const FAMILY_EXECUTE: u64 = 1;

/// landlock.h `LANDLOCK_ACCESS_NET_*` values, with the annotation key that
/// lists the ports for each and the ABI that introduced it.
pub const NET_RIGHTS: [(&str, u64, u32); 4] = [
    ("tcpBind", 1 << 0, 4),
    ("tcpConnect", 1 << 1, 4),
    ("udpBind", 1 << 2, 10),
    ("udpConnect", 1 << 3, 10),
];

/// The newest ABI whose rights this module knows.
pub const KNOWN_ABI: u32 = 10;

/// Every filesystem right of ABI `abi` (and older) that this module knows.
pub fn fs_rights_of_abi(abi: u32) -> u64 {
    FS_RIGHTS
        .iter()
        .filter(|(_, _, a)| *a <= abi)
        .fold(0, |m, (_, b, _)| m | b)
}

/// Every network right of ABI `abi` (and older) that this module knows.
pub fn net_rights_of_abi(abi: u32) -> u64 {
    NET_RIGHTS
        .iter()
        .filter(|(_, _, a)| *a <= abi)
        .fold(0, |m, (_, b, _)| m | b)
}

/// `write`: every filesystem right that is neither read nor execute.
pub fn family_write() -> u64 {
    fs_rights_of_abi(KNOWN_ABI) & !FAMILY_READ & !FAMILY_EXECUTE
}

/// A readable name for each bit of `mask`: the landlock.h word, or `bit N`.
pub fn fs_right_names(mask: u64) -> Vec<String> {
    (0..64)
        .map(|i| 1u64 << i)
        .filter(|b| mask & b != 0)
        .map(|b| match FS_RIGHTS.iter().find(|(_, v, _)| *v == b) {
            Some((name, _, abi)) => format!("{name} (ABI {abi})"),
            None => format!("bit {} (unknown to this build)", b.trailing_zeros()),
        })
        .collect()
}

/// A wrong `io.bulkhead.landlock` annotation, or a policy the kernel cannot
/// enforce in strict mode. `field` is the full config path of the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LandlockError {
    #[error("{field}: {msg}")]
    Json { field: String, msg: String },
    #[error("{field}: unknown mode {value:?} (expected \"best-effort\" or \"strict\")")]
    Mode { field: String, value: String },
    #[error("{field}: ABI {value} is out of range (1 to {KNOWN_ABI})")]
    Abi { field: String, value: u32 },
    #[error("{field}: {path:?} {reason}")]
    Path {
        field: String,
        path: String,
        reason: &'static str,
    },
    #[error("{field}: must list at least one access right")]
    EmptyAccess { field: String },
    #[error(
        "{field}: unknown access {value} (expected read, write, execute, a landlock.h right such as \
         make_dir, or a nonzero number)"
    )]
    Access { field: String, value: String },
    #[error("{field}: port {value} is out of range (0 to 65535)")]
    Port { field: String, value: String },
    #[error("{field}: Landlock is not available on this kernel, and mode is strict")]
    Unavailable { field: String },
    #[error(
        "{field}: needs Landlock ABI {need}, the kernel has ABI {have} (mode is strict): {what}"
    )]
    Unsupported {
        field: String,
        need: String,
        have: u32,
        what: String,
    },
}

impl LandlockError {
    pub fn field(&self) -> &str {
        match self {
            LandlockError::Json { field, .. }
            | LandlockError::Mode { field, .. }
            | LandlockError::Abi { field, .. }
            | LandlockError::Path { field, .. }
            | LandlockError::EmptyAccess { field }
            | LandlockError::Access { field, .. }
            | LandlockError::Port { field, .. }
            | LandlockError::Unavailable { field }
            | LandlockError::Unsupported { field, .. } => field,
        }
    }
}

impl From<LandlockError> for PlanError {
    fn from(e: LandlockError) -> PlanError {
        let field = e.field().to_string();
        let text = e.to_string();
        let reason = text
            .strip_prefix(&format!("{field}: "))
            .unwrap_or(&text)
            .to_string();
        PlanError::Invalid { field, reason }
    }
}

/// What happens when the kernel cannot enforce part of the policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Enforce what the kernel supports; without Landlock, nothing.
    #[default]
    BestEffort,
    /// `create` fails unless every right the policy names is enforceable.
    Strict,
}

/// One filesystem rule: what is allowed beneath `path` (a container path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsRule {
    /// `annotations["io.bulkhead.landlock"].filesystem[N]`, for errors.
    pub field: String,
    pub path: PathBuf,
    /// `read`, `write`, `execute` given as words: these stand for whatever
    /// part of the family the ruleset handles.
    pub families: u64,
    /// Rights named one by one (landlock.h words or numbers).
    pub rights: u64,
}

/// A validated policy, as given. `filesystem: None` leaves the filesystem
/// unrestricted, `network: None` the network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LandlockPlan {
    pub mode: Mode,
    /// The ABI the policy was written for: rights of newer ABIs are not
    /// handled unless a rule names them. `None`: the kernel's.
    pub abi: Option<u32>,
    pub filesystem: Option<Vec<FsRule>>,
    /// Key of [`NET_RIGHTS`] → ports.
    pub network: Option<BTreeMap<String, Vec<u16>>>,
}

/// One path rule as the kernel will get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedFsRule {
    pub field: String,
    pub path: PathBuf,
    /// Rights for a directory.
    pub access: u64,
    /// Rights named explicitly, which must not be dropped silently when the
    /// path turns out to be a file.
    pub explicit: u64,
}

/// What to enforce on one kernel: the handled rights and the exceptions.
/// Empty `handled_*` masks mean "do not restrict this kind of access".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub handled_fs: u64,
    pub fs_rules: Vec<ResolvedFsRule>,
    pub handled_net: u64,
    /// (port, rights)
    pub net_rules: Vec<(u16, u64)>,
}

impl Resolved {
    /// Nothing to enforce (best-effort on a kernel that cannot).
    pub fn is_empty(&self) -> bool {
        self.handled_fs == 0 && self.handled_net == 0
    }
}

impl LandlockPlan {
    /// Decide what to enforce on a kernel with Landlock ABI `kernel_abi`
    /// (0: no Landlock). In strict mode anything the policy asks for that
    /// this kernel cannot enforce is an error naming the entry.
    pub fn resolve(&self, kernel_abi: u32) -> Result<Resolved, LandlockError> {
        let root = field_root();
        let strict = self.mode == Mode::Strict;
        if kernel_abi == 0 {
            if strict {
                return Err(LandlockError::Unavailable { field: root });
            }
            return Ok(Resolved::default());
        }
        let have = kernel_abi.min(KNOWN_ABI);
        if let Some(abi) = self.abi
            && strict
            && abi > have
        {
            return Err(LandlockError::Unsupported {
                field: format!("{root}.abi"),
                need: abi.to_string(),
                have: kernel_abi,
                what: "the policy's ABI".into(),
            });
        }
        let target = self.abi.unwrap_or(KNOWN_ABI).min(have);
        let mut out = Resolved::default();

        if let Some(rules) = &self.filesystem {
            let supported = fs_rights_of_abi(have);
            let mut handled = fs_rights_of_abi(target);
            for r in rules {
                let missing = r.rights & !supported;
                if strict && missing != 0 {
                    // The ABI that brings every missing right; a bit this
                    // build does not know has no known ABI yet.
                    let known = FS_RIGHTS
                        .iter()
                        .filter(|(_, v, _)| missing & v != 0)
                        .map(|(_, v, a)| (*v, *a));
                    let known_bits = known.clone().fold(0, |m, (v, _)| m | v);
                    let need = if missing & !known_bits != 0 {
                        "newer than this build knows".to_string()
                    } else {
                        known.map(|(_, a)| a).max().unwrap_or(0).to_string()
                    };
                    return Err(LandlockError::Unsupported {
                        field: format!("{}.access", r.field),
                        need,
                        have: kernel_abi,
                        what: fs_right_names(missing).join(", "),
                    });
                }
                handled |= r.rights & supported;
            }
            out.handled_fs = handled;
            for r in rules {
                let explicit = r.rights & supported;
                out.fs_rules.push(ResolvedFsRule {
                    field: r.field.clone(),
                    path: r.path.clone(),
                    access: (r.families & handled) | explicit,
                    explicit,
                });
            }
        }

        if let Some(net) = &self.network {
            let supported = net_rights_of_abi(have);
            let mut handled = net_rights_of_abi(target);
            let mut by_port: BTreeMap<u16, u64> = BTreeMap::new();
            for (key, ports) in net {
                let (_, bit, abi) = NET_RIGHTS
                    .iter()
                    .find(|(k, _, _)| k == key)
                    .copied()
                    .expect("keys are validated by parse");
                if bit & supported == 0 {
                    if strict {
                        return Err(LandlockError::Unsupported {
                            field: format!("{root}.network.{key}"),
                            need: abi.to_string(),
                            have: kernel_abi,
                            what: format!("{key} rules"),
                        });
                    }
                    continue;
                }
                handled |= bit;
                for p in ports {
                    *by_port.entry(*p).or_default() |= bit;
                }
            }
            if strict && supported == 0 {
                return Err(LandlockError::Unsupported {
                    field: format!("{root}.network"),
                    need: "4".into(),
                    have: kernel_abi,
                    what: "network rules".into(),
                });
            }
            out.handled_net = handled;
            out.net_rules = by_port.into_iter().collect();
        }
        Ok(out)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoc {
    mode: Option<String>,
    abi: Option<u32>,
    filesystem: Option<Vec<RawFsRule>>,
    network: Option<RawNet>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFsRule {
    path: String,
    access: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawNet {
    tcp_bind: Option<Vec<Value>>,
    tcp_connect: Option<Vec<Value>>,
    udp_bind: Option<Vec<Value>>,
    udp_connect: Option<Vec<Value>>,
}

/// The policy from a config's annotations, if it has one.
pub fn from_annotations(
    annotations: Option<&std::collections::HashMap<String, String>>,
) -> Result<Option<LandlockPlan>, LandlockError> {
    annotations
        .and_then(|a| a.get(ANNOTATION))
        .map(|v| parse(v))
        .transpose()
}

/// Parse and validate the annotation's value.
pub fn parse(value: &str) -> Result<LandlockPlan, LandlockError> {
    let root = field_root();
    let de = &mut serde_json::Deserializer::from_str(value);
    let raw: RawDoc = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        LandlockError::Json {
            field: if path == "." {
                root.clone()
            } else {
                format!("{root}.{path}")
            },
            msg: e.inner().to_string(),
        }
    })?;
    // Text after the document is a broken annotation, not something to ignore.
    de.end().map_err(|e| LandlockError::Json {
        field: root.clone(),
        msg: e.to_string(),
    })?;

    let mode = match raw.mode.as_deref() {
        None | Some("best-effort") => Mode::BestEffort,
        Some("strict") => Mode::Strict,
        Some(other) => {
            return Err(LandlockError::Mode {
                field: format!("{root}.mode"),
                value: other.to_string(),
            });
        }
    };
    if let Some(abi) = raw.abi
        && !(1..=KNOWN_ABI).contains(&abi)
    {
        return Err(LandlockError::Abi {
            field: format!("{root}.abi"),
            value: abi,
        });
    }

    let filesystem = raw
        .filesystem
        .map(|rules| {
            rules
                .iter()
                .enumerate()
                .map(|(i, r)| fs_rule(&format!("{root}.filesystem[{i}]"), r))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;

    let network = raw
        .network
        .map(|n| {
            let mut out = BTreeMap::new();
            for (key, list) in [
                ("tcpBind", n.tcp_bind),
                ("tcpConnect", n.tcp_connect),
                ("udpBind", n.udp_bind),
                ("udpConnect", n.udp_connect),
            ] {
                if let Some(list) = list {
                    let ports = list
                        .iter()
                        .enumerate()
                        .map(|(i, v)| port(&format!("{root}.network.{key}[{i}]"), v))
                        .collect::<Result<Vec<_>, _>>()?;
                    out.insert(key.to_string(), ports);
                }
            }
            Ok::<_, LandlockError>(out)
        })
        .transpose()?;

    Ok(LandlockPlan {
        mode,
        abi: raw.abi,
        filesystem,
        network,
    })
}

fn fs_rule(field: &str, r: &RawFsRule) -> Result<FsRule, LandlockError> {
    let path_err = |reason| LandlockError::Path {
        field: format!("{field}.path"),
        path: r.path.clone(),
        reason,
    };
    if !r.path.starts_with('/') {
        return Err(path_err("must be an absolute path"));
    }
    let mut path = PathBuf::from("/");
    for c in std::path::Path::new(&r.path).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => path.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(path_err("must not contain \"..\""));
            }
        }
    }
    if r.access.is_empty() {
        return Err(LandlockError::EmptyAccess {
            field: format!("{field}.access"),
        });
    }
    let (mut families, mut rights) = (0, 0);
    for (i, v) in r.access.iter().enumerate() {
        let bad = || LandlockError::Access {
            field: format!("{field}.access[{i}]"),
            value: v.to_string(),
        };
        match v {
            Value::String(w) => match w.as_str() {
                "read" => families |= FAMILY_READ,
                "write" => families |= family_write(),
                "execute" => families |= FAMILY_EXECUTE,
                w => {
                    let (_, bit, _) = FS_RIGHTS.iter().find(|(n, _, _)| *n == w).ok_or_else(bad)?;
                    rights |= bit;
                }
            },
            Value::Number(n) => match n.as_u64() {
                Some(bits) if bits != 0 => rights |= bits,
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        }
    }
    Ok(FsRule {
        field: field.to_string(),
        path,
        families,
        rights,
    })
}

fn port(field: &str, v: &Value) -> Result<u16, LandlockError> {
    v.as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| LandlockError::Port {
            field: field.to_string(),
            value: v.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "annotations[\"io.bulkhead.landlock\"]";

    fn err(doc: &str) -> LandlockError {
        parse(doc).expect_err(doc)
    }

    #[test]
    fn full_document() {
        let p = parse(
            r#"{"mode":"strict","abi":4,
                "filesystem":[{"path":"/usr/","access":["read","execute"]},
                              {"path":"/tmp/./x","access":["read","write",16384,"make_dir"]}],
                "network":{"tcpBind":[8080,0],"tcpConnect":[443]}}"#,
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Strict);
        assert_eq!(p.abi, Some(4));
        let fs = p.filesystem.as_ref().unwrap();
        assert_eq!(fs[0].path, PathBuf::from("/usr"));
        assert_eq!(fs[0].families, 0b1101);
        assert_eq!(fs[0].rights, 0);
        assert_eq!(fs[0].field, format!("{ROOT}.filesystem[0]"));
        assert_eq!(fs[1].path, PathBuf::from("/tmp/x"));
        assert_eq!(fs[1].rights, (1 << 14) | (1 << 7));
        assert_eq!(fs[1].families, FAMILY_READ | family_write());
        let net = p.network.as_ref().unwrap();
        assert_eq!(net["tcpBind"], vec![8080, 0]);
        assert_eq!(net["tcpConnect"], vec![443]);
        assert!(!net.contains_key("udpBind"));
    }

    #[test]
    fn defaults() {
        let p = parse("{}").unwrap();
        assert_eq!(p, LandlockPlan::default());
        assert_eq!(p.mode, Mode::BestEffort);
        let p = parse(r#"{"filesystem":[]}"#).unwrap();
        assert_eq!(p.filesystem, Some(vec![]));
        assert_eq!(p.network, None);
    }

    #[test]
    fn word_tables() {
        assert_eq!(family_write(), 0x1fff2);
        assert_eq!(fs_rights_of_abi(1), 0x1fff);
        assert_eq!(fs_rights_of_abi(3), 0x7fff);
        assert_eq!(fs_rights_of_abi(7), 0xffff);
        assert_eq!(fs_rights_of_abi(KNOWN_ABI), 0x1ffff);
        assert_eq!(net_rights_of_abi(3), 0);
        assert_eq!(net_rights_of_abi(7), 3);
        assert_eq!(net_rights_of_abi(10), 15);
        assert_eq!(
            fs_right_names((1 << 16) | (1 << 40)),
            ["resolve_unix (ABI 9)", "bit 40 (unknown to this build)"]
        );
    }

    #[test]
    fn errors_name_the_entry() {
        let e = err(
            r#"{"filesystem":[{"path":"/a","access":["read"]},{"path":"tmp","access":["read"]}]}"#,
        );
        assert_eq!(e.field(), format!("{ROOT}.filesystem[1].path"));
        assert!(
            e.to_string().contains("\"tmp\" must be an absolute path"),
            "{e}"
        );

        let e = err(r#"{"filesystem":[{"path":"/a/../..","access":["read"]}]}"#);
        assert_eq!(e.field(), format!("{ROOT}.filesystem[0].path"));

        let e = err(r#"{"filesystem":[{"path":"/a","access":["read","wrte"]}]}"#);
        assert_eq!(e.field(), format!("{ROOT}.filesystem[0].access[1]"));
        assert!(e.to_string().contains("unknown access \"wrte\""), "{e}");

        for bad in ["0", "-1", "1.5", "true", "null"] {
            let e = err(&format!(
                r#"{{"filesystem":[{{"path":"/a","access":[{bad}]}}]}}"#
            ));
            assert_eq!(
                e.field(),
                format!("{ROOT}.filesystem[0].access[0]"),
                "{bad}"
            );
        }

        let e = err(r#"{"filesystem":[{"path":"/a","access":[]}]}"#);
        assert_eq!(
            e,
            LandlockError::EmptyAccess {
                field: format!("{ROOT}.filesystem[0].access")
            }
        );

        let e = err(r#"{"network":{"tcpConnect":[443,65536]}}"#);
        assert_eq!(
            e,
            LandlockError::Port {
                field: format!("{ROOT}.network.tcpConnect[1]"),
                value: "65536".into()
            }
        );
        let e = err(r#"{"network":{"tcpBind":[-1]}}"#);
        assert_eq!(e.field(), format!("{ROOT}.network.tcpBind[0]"));

        let e = err(r#"{"mode":"lenient"}"#);
        assert_eq!(e.field(), format!("{ROOT}.mode"));
        let e = err(r#"{"abi":0}"#);
        assert_eq!(e.field(), format!("{ROOT}.abi"));
        let e = err(r#"{"abi":11}"#);
        assert_eq!(e.field(), format!("{ROOT}.abi"));
    }

    #[test]
    fn unknown_keys_and_bad_json_are_rejected() {
        // A typo must not silently leave the filesystem unrestricted.
        let e = err(r#"{"filesytem":[]}"#);
        assert!(e.to_string().contains("unknown field `filesytem`"), "{e}");
        let e = err(r#"{"filesystem":[{"path":"/a","acess":["read"]}]}"#);
        assert!(
            e.field().starts_with(&format!("{ROOT}.filesystem[0]")),
            "{e}"
        );
        let e = err(r#"{"network":{"tcp":[1]}}"#);
        assert!(e.field().starts_with(&format!("{ROOT}.network")), "{e}");
        let e = err("not json");
        assert_eq!(e.field(), ROOT);
        let e = err(r#"{"filesystem":{"path":"/a"}}"#);
        assert_eq!(e.field(), format!("{ROOT}.filesystem"));
    }

    #[test]
    fn plan_error_keeps_the_field() {
        let e: PlanError = err(r#"{"mode":"x"}"#).into();
        match e {
            PlanError::Invalid { field, reason } => {
                assert_eq!(field, format!("{ROOT}.mode"));
                assert!(reason.starts_with("unknown mode \"x\""), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn from_annotations_only_reads_its_key() {
        let mut a = std::collections::HashMap::new();
        assert_eq!(from_annotations(None), Ok(None));
        assert_eq!(from_annotations(Some(&a)), Ok(None));
        a.insert("other".to_string(), "x".to_string());
        assert_eq!(from_annotations(Some(&a)), Ok(None));
        a.insert(ANNOTATION.to_string(), "{}".to_string());
        assert_eq!(
            from_annotations(Some(&a)),
            Ok(Some(LandlockPlan::default()))
        );
    }

    fn doc(s: &str) -> LandlockPlan {
        parse(s).unwrap()
    }

    #[test]
    fn resolve_best_effort_follows_the_kernel() {
        let p = doc(
            r#"{"filesystem":[{"path":"/usr","access":["read","execute"]},
                              {"path":"/tmp","access":["read","write"]},
                              {"path":"/run","access":["resolve_unix"]}],
                "network":{"tcpConnect":[443],"udpBind":[53]}}"#,
        );
        // No Landlock: nothing, and no error.
        assert!(p.resolve(0).unwrap().is_empty());

        let r = p.resolve(7).unwrap();
        assert_eq!(r.handled_fs, 0xffff);
        assert_eq!(r.fs_rules[0].access, 0b1101);
        assert_eq!(r.fs_rules[1].access, 0xffff & !1);
        // resolve_unix (ABI 9) is dropped: the rule grants nothing.
        assert_eq!(r.fs_rules[2].access, 0);
        assert_eq!(r.handled_net, 0b11);
        assert_eq!(r.net_rules, vec![(443, 0b10)]);

        let r = p.resolve(1).unwrap();
        assert_eq!(r.handled_fs, 0x1fff);
        assert_eq!(r.handled_net, 0);
        assert!(r.net_rules.is_empty());

        // A kernel newer than this build: capped at what is known.
        let r = p.resolve(99).unwrap();
        assert_eq!(r.handled_fs, 0x1ffff);
        assert_eq!(r.fs_rules[2].access, 1 << 16);
        assert_eq!(r.handled_net, 0b1111);
        assert_eq!(r.net_rules, vec![(53, 0b100), (443, 0b10)]);
    }

    #[test]
    fn resolve_pinned_abi_limits_the_handled_rights() {
        let p = doc(r#"{"abi":2,"filesystem":[{"path":"/tmp","access":["write","truncate"]}]}"#);
        let r = p.resolve(7).unwrap();
        // ABI 2 rights, plus truncate because a rule names it.
        assert_eq!(r.handled_fs, 0x3fff | (1 << 14));
        assert_eq!(r.fs_rules[0].access, (0x3fff & !0b1101) | (1 << 14));
        assert_eq!(r.fs_rules[0].explicit, 1 << 14);
        // No network section: the network is not handled.
        assert_eq!(r.handled_net, 0);
    }

    #[test]
    fn resolve_strict_names_what_cannot_be_enforced() {
        let e = doc(r#"{"mode":"strict","filesystem":[]}"#)
            .resolve(0)
            .unwrap_err();
        assert_eq!(e, LandlockError::Unavailable { field: ROOT.into() });

        let p = doc(
            r#"{"mode":"strict","filesystem":[{"path":"/a","access":["read"]},
                                              {"path":"/b","access":["read","resolve_unix"]}]}"#,
        );
        let e = p.resolve(7).unwrap_err();
        assert_eq!(e.field(), format!("{ROOT}.filesystem[1].access"));
        assert!(
            e.to_string()
                .contains("needs Landlock ABI 9, the kernel has ABI 7"),
            "{e}"
        );
        assert!(e.to_string().contains("resolve_unix"), "{e}");
        assert!(p.resolve(9).is_ok());

        let e = doc(r#"{"mode":"strict","filesystem":[{"path":"/a","access":[1099511627776]}]}"#)
            .resolve(99)
            .unwrap_err();
        assert!(
            e.to_string().contains("bit 40 (unknown to this build)"),
            "{e}"
        );

        let e = doc(r#"{"mode":"strict","network":{"tcpBind":[80]}}"#)
            .resolve(3)
            .unwrap_err();
        assert_eq!(e.field(), format!("{ROOT}.network.tcpBind"));
        let e = doc(r#"{"mode":"strict","network":{}}"#)
            .resolve(3)
            .unwrap_err();
        assert_eq!(e.field(), format!("{ROOT}.network"));
        let e = doc(r#"{"mode":"strict","network":{"udpBind":[53]}}"#)
            .resolve(7)
            .unwrap_err();
        assert_eq!(e.field(), format!("{ROOT}.network.udpBind"));

        let e = doc(r#"{"mode":"strict","abi":8}"#).resolve(7).unwrap_err();
        assert_eq!(e.field(), format!("{ROOT}.abi"));
        // Best effort: the same documents resolve.
        assert!(
            doc(r#"{"abi":8,"network":{"udpBind":[53]}}"#)
                .resolve(7)
                .is_ok()
        );
    }
}
