//! OCI `mounts[].options` → what the mount stage hands to the kernel.
//!
//! Parsing never fails: like runc, any word we do not recognise is assumed
//! to be filesystem-specific and is passed through as mount data, where the
//! kernel (not us) decides whether it is valid.

/// `mount_setattr(2)` attribute bits, spelled out because they are kernel
/// ABI and not every libc version exports them.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
/// The atime field is an enum, not a set of bits: the kernel wants the
/// whole field in `attr_clr` whenever a mode is set or dropped.
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// Kernel 5.10+ value; spelled out so older libc headers do not matter.
pub const MS_NOSYMFOLLOW: u64 = 256;

#[allow(clippy::unnecessary_cast, reason = "c_ulong is u32 on 32-bit targets")]
mod ms {
    pub(super) const MS_RDONLY: u64 = libc::MS_RDONLY as u64;
    pub(super) const MS_NOSUID: u64 = libc::MS_NOSUID as u64;
    pub(super) const MS_NODEV: u64 = libc::MS_NODEV as u64;
    pub(super) const MS_NOEXEC: u64 = libc::MS_NOEXEC as u64;
    pub(super) const MS_SYNCHRONOUS: u64 = libc::MS_SYNCHRONOUS as u64;
    pub(super) const MS_REMOUNT: u64 = libc::MS_REMOUNT as u64;
    pub(super) const MS_MANDLOCK: u64 = libc::MS_MANDLOCK as u64;
    pub(super) const MS_DIRSYNC: u64 = libc::MS_DIRSYNC as u64;
    pub(super) const MS_NOATIME: u64 = libc::MS_NOATIME as u64;
    pub(super) const MS_NODIRATIME: u64 = libc::MS_NODIRATIME as u64;
    pub(super) const MS_BIND: u64 = libc::MS_BIND as u64;
    pub(super) const MS_REC: u64 = libc::MS_REC as u64;
    pub(super) const MS_SILENT: u64 = libc::MS_SILENT as u64;
    pub(super) const MS_UNBINDABLE: u64 = libc::MS_UNBINDABLE as u64;
    pub(super) const MS_PRIVATE: u64 = libc::MS_PRIVATE as u64;
    pub(super) const MS_SLAVE: u64 = libc::MS_SLAVE as u64;
    pub(super) const MS_SHARED: u64 = libc::MS_SHARED as u64;
    pub(super) const MS_RELATIME: u64 = libc::MS_RELATIME as u64;
    pub(super) const MS_STRICTATIME: u64 = libc::MS_STRICTATIME as u64;
    pub(super) const MS_LAZYTIME: u64 = libc::MS_LAZYTIME as u64;
}
use ms::*;

/// The parsed form of one mount's option list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// `MS_*` bits to pass to mount(2). Includes `MS_BIND`/`MS_REC` for
    /// bind mounts, so the value can be handed to the kernel as is.
    pub flags: u64,
    /// `MS_*` bits the config asked to turn off; matters for remounts,
    /// where the existing flags are inherited otherwise.
    pub clear_flags: u64,
    /// Propagation changes, in config order: each needs its own mount(2).
    pub propagation: Vec<u64>,
    /// `MOUNT_ATTR_*` to set recursively with mount_setattr(2).
    pub rec_attr_set: u64,
    /// `MOUNT_ATTR_*` to clear recursively with mount_setattr(2).
    pub rec_attr_clr: u64,
    pub bind: bool,
    pub recursive: bool,
    pub idmap: Option<Idmap>,
    pub tmpcopyup: bool,
    pub nosymfollow: bool,
    /// Unrecognised options, comma-joined, for the filesystem to interpret.
    pub data: String,
}

/// An id-mapped mount request; `recursive` comes from "ridmap".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idmap {
    pub recursive: bool,
}

/// What one option word does.
#[derive(Clone, Copy)]
enum Effect {
    /// No-op word ("defaults").
    Nothing,
    Set(u64),
    Clear(u64),
    Propagate(u64),
    RecSet(u64),
    RecClear(u64),
    Bind {
        recursive: bool,
    },
    Idmap {
        recursive: bool,
    },
    TmpCopyUp,
    NoSymFollow(bool),
}

/// Single table so `parse` and `known_options` cannot drift apart.
const TABLE: &[(&str, Effect)] = &[
    ("defaults", Effect::Nothing),
    ("ro", Effect::Set(MS_RDONLY)),
    ("rw", Effect::Clear(MS_RDONLY)),
    ("suid", Effect::Clear(MS_NOSUID)),
    ("nosuid", Effect::Set(MS_NOSUID)),
    ("dev", Effect::Clear(MS_NODEV)),
    ("nodev", Effect::Set(MS_NODEV)),
    ("exec", Effect::Clear(MS_NOEXEC)),
    ("noexec", Effect::Set(MS_NOEXEC)),
    ("sync", Effect::Set(MS_SYNCHRONOUS)),
    ("async", Effect::Clear(MS_SYNCHRONOUS)),
    ("dirsync", Effect::Set(MS_DIRSYNC)),
    ("remount", Effect::Set(MS_REMOUNT)),
    ("mand", Effect::Set(MS_MANDLOCK)),
    ("nomand", Effect::Clear(MS_MANDLOCK)),
    ("atime", Effect::Clear(MS_NOATIME)),
    ("noatime", Effect::Set(MS_NOATIME)),
    ("diratime", Effect::Clear(MS_NODIRATIME)),
    ("nodiratime", Effect::Set(MS_NODIRATIME)),
    ("relatime", Effect::Set(MS_RELATIME)),
    ("norelatime", Effect::Clear(MS_RELATIME)),
    ("strictatime", Effect::Set(MS_STRICTATIME)),
    ("nostrictatime", Effect::Clear(MS_STRICTATIME)),
    ("lazytime", Effect::Set(MS_LAZYTIME)),
    ("nolazytime", Effect::Clear(MS_LAZYTIME)),
    ("silent", Effect::Set(MS_SILENT)),
    ("loud", Effect::Clear(MS_SILENT)),
    ("bind", Effect::Bind { recursive: false }),
    ("rbind", Effect::Bind { recursive: true }),
    ("private", Effect::Propagate(MS_PRIVATE)),
    ("rprivate", Effect::Propagate(MS_PRIVATE | MS_REC)),
    ("shared", Effect::Propagate(MS_SHARED)),
    ("rshared", Effect::Propagate(MS_SHARED | MS_REC)),
    ("slave", Effect::Propagate(MS_SLAVE)),
    ("rslave", Effect::Propagate(MS_SLAVE | MS_REC)),
    ("unbindable", Effect::Propagate(MS_UNBINDABLE)),
    ("runbindable", Effect::Propagate(MS_UNBINDABLE | MS_REC)),
    ("rro", Effect::RecSet(MOUNT_ATTR_RDONLY)),
    ("rrw", Effect::RecClear(MOUNT_ATTR_RDONLY)),
    ("rnosuid", Effect::RecSet(MOUNT_ATTR_NOSUID)),
    ("rsuid", Effect::RecClear(MOUNT_ATTR_NOSUID)),
    ("rnodev", Effect::RecSet(MOUNT_ATTR_NODEV)),
    ("rdev", Effect::RecClear(MOUNT_ATTR_NODEV)),
    ("rnoexec", Effect::RecSet(MOUNT_ATTR_NOEXEC)),
    ("rexec", Effect::RecClear(MOUNT_ATTR_NOEXEC)),
    ("rnodiratime", Effect::RecSet(MOUNT_ATTR_NODIRATIME)),
    ("rdiratime", Effect::RecClear(MOUNT_ATTR_NODIRATIME)),
    ("rrelatime", Effect::RecSet(MOUNT_ATTR_RELATIME)),
    ("rnorelatime", Effect::RecClear(MOUNT_ATTR__ATIME)),
    ("rnoatime", Effect::RecSet(MOUNT_ATTR_NOATIME)),
    ("ratime", Effect::RecClear(MOUNT_ATTR__ATIME)),
    ("rstrictatime", Effect::RecSet(MOUNT_ATTR_STRICTATIME)),
    ("rnostrictatime", Effect::RecClear(MOUNT_ATTR__ATIME)),
    ("rnosymfollow", Effect::RecSet(MOUNT_ATTR_NOSYMFOLLOW)),
    ("rsymfollow", Effect::RecClear(MOUNT_ATTR_NOSYMFOLLOW)),
    ("idmap", Effect::Idmap { recursive: false }),
    ("ridmap", Effect::Idmap { recursive: true }),
    ("tmpcopyup", Effect::TmpCopyUp),
    ("nosymfollow", Effect::NoSymFollow(true)),
    ("symfollow", Effect::NoSymFollow(false)),
];

const KNOWN: &[&str] = &{
    let mut names = [""; TABLE.len()];
    let mut i = 0;
    while i < TABLE.len() {
        names[i] = TABLE[i].0;
        i += 1;
    }
    names
};

/// Every option word `parse` interprets itself (reported in
/// `features.mountOptions`); anything else becomes mount data.
pub fn known_options() -> &'static [&'static str] {
    KNOWN
}

/// Options are applied left to right, so a later word overrides an earlier
/// one ("ro,rw" ends up read-write), matching mount(8).
pub fn parse(options: &[String]) -> MountOptions {
    let mut out = MountOptions::default();
    for opt in options {
        let Some(&(_, effect)) = TABLE.iter().find(|(name, _)| name == opt) else {
            // Empty words would only produce ",," in the data string.
            if !opt.is_empty() {
                if !out.data.is_empty() {
                    out.data.push(',');
                }
                out.data.push_str(opt);
            }
            continue;
        };
        match effect {
            Effect::Nothing => {}
            Effect::Set(f) => {
                out.flags |= f;
                out.clear_flags &= !f;
            }
            Effect::Clear(f) => {
                out.flags &= !f;
                out.clear_flags |= f;
            }
            Effect::Propagate(p) => out.propagation.push(p),
            Effect::RecSet(a) => {
                if a & MOUNT_ATTR__ATIME == a {
                    // One atime mode at a time: drop the previous one, and
                    // the kernel insists on the whole field being cleared.
                    out.rec_attr_set = (out.rec_attr_set & !MOUNT_ATTR__ATIME) | a;
                    out.rec_attr_clr |= MOUNT_ATTR__ATIME;
                } else {
                    out.rec_attr_set |= a;
                    out.rec_attr_clr &= !a;
                }
            }
            Effect::RecClear(a) => {
                // Clearing the atime field leaves the kernel default
                // (relatime), which is what "ratime" and friends mean.
                out.rec_attr_set &= !a;
                out.rec_attr_clr |= a;
            }
            Effect::Bind { recursive } => {
                out.bind = true;
                out.recursive |= recursive;
                out.flags |= MS_BIND;
                if recursive {
                    out.flags |= MS_REC;
                }
            }
            Effect::Idmap { recursive } => out.idmap = Some(Idmap { recursive }),
            Effect::TmpCopyUp => out.tmpcopyup = true,
            Effect::NoSymFollow(on) => {
                out.nosymfollow = on;
                if on {
                    out.flags |= MS_NOSYMFOLLOW;
                    out.clear_flags &= !MS_NOSYMFOLLOW;
                } else {
                    out.flags &= !MS_NOSYMFOLLOW;
                    out.clear_flags |= MS_NOSYMFOLLOW;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn typical_tmpfs() {
        let m = p(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(m.flags, MS_NOSUID | MS_STRICTATIME);
        assert_eq!(m.clear_flags, 0);
        assert_eq!(m.data, "mode=755,size=65536k");
        assert!(!m.bind && !m.recursive && m.propagation.is_empty());
    }

    #[test]
    fn empty_is_default() {
        assert_eq!(p(&[]), MountOptions::default());
        assert_eq!(p(&["defaults"]), MountOptions::default());
    }

    #[test]
    fn later_option_wins() {
        let m = p(&["ro", "rw"]);
        assert_eq!(m.flags & MS_RDONLY, 0);
        assert_eq!(m.clear_flags, MS_RDONLY);

        let m = p(&["rw", "ro"]);
        assert_eq!(m.flags, MS_RDONLY);
        assert_eq!(m.clear_flags, 0);

        let m = p(&["noexec", "exec", "nodev"]);
        assert_eq!(m.flags, MS_NODEV);
        assert_eq!(m.clear_flags, MS_NOEXEC);
    }

    #[test]
    fn clearing_words() {
        let m = p(&[
            "suid",
            "dev",
            "exec",
            "atime",
            "diratime",
            "norelatime",
            "nostrictatime",
            "async",
            "loud",
            "nolazytime",
            "nomand",
        ]);
        assert_eq!(m.flags, 0);
        assert_eq!(
            m.clear_flags,
            MS_NOSUID
                | MS_NODEV
                | MS_NOEXEC
                | MS_NOATIME
                | MS_NODIRATIME
                | MS_RELATIME
                | MS_STRICTATIME
                | MS_SYNCHRONOUS
                | MS_SILENT
                | MS_LAZYTIME
                | MS_MANDLOCK
        );
    }

    #[test]
    fn setting_words() {
        let m = p(&[
            "ro",
            "nosuid",
            "nodev",
            "noexec",
            "sync",
            "dirsync",
            "remount",
            "mand",
            "noatime",
            "nodiratime",
            "relatime",
            "lazytime",
            "silent",
        ]);
        assert_eq!(
            m.flags,
            MS_RDONLY
                | MS_NOSUID
                | MS_NODEV
                | MS_NOEXEC
                | MS_SYNCHRONOUS
                | MS_DIRSYNC
                | MS_REMOUNT
                | MS_MANDLOCK
                | MS_NOATIME
                | MS_NODIRATIME
                | MS_RELATIME
                | MS_LAZYTIME
                | MS_SILENT
        );
        assert!(m.data.is_empty());
    }

    #[test]
    fn propagation_keeps_order() {
        let m = p(&["rslave", "private", "rshared", "unbindable", "rprivate"]);
        assert_eq!(
            m.propagation,
            vec![
                MS_SLAVE | MS_REC,
                MS_PRIVATE,
                MS_SHARED | MS_REC,
                MS_UNBINDABLE,
                MS_PRIVATE | MS_REC,
            ]
        );
        assert_eq!(m.flags, 0, "propagation does not leak into flags");
        let m = p(&["slave", "shared", "runbindable"]);
        assert_eq!(
            m.propagation,
            vec![MS_SLAVE, MS_SHARED, MS_UNBINDABLE | MS_REC]
        );
    }

    #[test]
    fn bind_and_rbind() {
        let m = p(&["bind", "ro"]);
        assert!(m.bind && !m.recursive);
        assert_eq!(m.flags, MS_BIND | MS_RDONLY);

        let m = p(&["rbind", "nosuid"]);
        assert!(m.bind && m.recursive);
        assert_eq!(m.flags, MS_BIND | MS_REC | MS_NOSUID);

        // rbind is not undone by a later plain bind.
        let m = p(&["rbind", "bind"]);
        assert!(m.bind && m.recursive);
    }

    #[test]
    fn data_passthrough_in_order() {
        let m = p(&["uid=0", "ro", "", "gid=5", "mode=620", "newinstance"]);
        assert_eq!(m.data, "uid=0,gid=5,mode=620,newinstance");
        assert_eq!(m.flags, MS_RDONLY);
        // Option words are case-sensitive, as in mount(8).
        assert_eq!(p(&["RO"]).data, "RO");
    }

    #[test]
    fn recursive_attrs() {
        let m = p(&["rro", "rnosuid", "rnodev", "rnoexec", "rnodiratime"]);
        assert_eq!(
            m.rec_attr_set,
            MOUNT_ATTR_RDONLY
                | MOUNT_ATTR_NOSUID
                | MOUNT_ATTR_NODEV
                | MOUNT_ATTR_NOEXEC
                | MOUNT_ATTR_NODIRATIME
        );
        assert_eq!(m.rec_attr_clr, 0);
        assert_eq!(m.flags, 0);

        let m = p(&["rrw", "rsuid", "rdev", "rexec", "rdiratime", "rsymfollow"]);
        assert_eq!(m.rec_attr_set, 0);
        assert_eq!(
            m.rec_attr_clr,
            MOUNT_ATTR_RDONLY
                | MOUNT_ATTR_NOSUID
                | MOUNT_ATTR_NODEV
                | MOUNT_ATTR_NOEXEC
                | MOUNT_ATTR_NODIRATIME
                | MOUNT_ATTR_NOSYMFOLLOW
        );

        let m = p(&["rro", "rrw"]);
        assert_eq!((m.rec_attr_set, m.rec_attr_clr), (0, MOUNT_ATTR_RDONLY));
        let m = p(&["rrw", "rro"]);
        assert_eq!((m.rec_attr_set, m.rec_attr_clr), (MOUNT_ATTR_RDONLY, 0));

        let m = p(&["rnosymfollow"]);
        assert_eq!(m.rec_attr_set, MOUNT_ATTR_NOSYMFOLLOW);
    }

    #[test]
    fn recursive_atime_is_one_field() {
        let m = p(&["rnoatime"]);
        assert_eq!(m.rec_attr_set, MOUNT_ATTR_NOATIME);
        assert_eq!(m.rec_attr_clr, MOUNT_ATTR__ATIME);

        let m = p(&["rrelatime"]);
        assert_eq!(m.rec_attr_set, MOUNT_ATTR_RELATIME);
        assert_eq!(m.rec_attr_clr, MOUNT_ATTR__ATIME);

        // A later mode replaces the earlier one instead of or-ing into an
        // invalid combination.
        let m = p(&["rnoatime", "rstrictatime", "rnodiratime"]);
        assert_eq!(
            m.rec_attr_set,
            MOUNT_ATTR_STRICTATIME | MOUNT_ATTR_NODIRATIME
        );
        assert_eq!(m.rec_attr_clr, MOUNT_ATTR__ATIME);

        for undo in ["ratime", "rnostrictatime", "rnorelatime"] {
            let m = p(&["rnoatime", "rnodiratime", undo]);
            assert_eq!(m.rec_attr_set, MOUNT_ATTR_NODIRATIME, "{undo}");
            assert_eq!(m.rec_attr_clr, MOUNT_ATTR__ATIME, "{undo}");
        }
    }

    #[test]
    fn idmap_tmpcopyup_nosymfollow() {
        assert_eq!(p(&["idmap"]).idmap, Some(Idmap { recursive: false }));
        assert_eq!(p(&["ridmap"]).idmap, Some(Idmap { recursive: true }));
        assert_eq!(p(&["ro"]).idmap, None);
        assert!(p(&["tmpcopyup"]).tmpcopyup);

        let m = p(&["nosymfollow"]);
        assert!(m.nosymfollow);
        assert_eq!(m.flags, MS_NOSYMFOLLOW);
        let m = p(&["nosymfollow", "symfollow"]);
        assert!(!m.nosymfollow);
        assert_eq!(m.flags, 0);
        assert_eq!(m.clear_flags, MS_NOSYMFOLLOW);
    }

    #[test]
    fn known_options_cover_table_without_duplicates() {
        let known = known_options();
        assert_eq!(known.len(), TABLE.len());
        let mut sorted = known.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), known.len(), "duplicate option name");
        for word in [
            "defaults",
            "ro",
            "rw",
            "bind",
            "rbind",
            "rprivate",
            "rro",
            "ratime",
            "idmap",
            "ridmap",
            "tmpcopyup",
            "nosymfollow",
            "lazytime",
            "silent",
            "loud",
        ] {
            assert!(known.contains(&word), "{word} missing");
        }
        // Every known word is consumed, never forwarded as data.
        for word in known {
            assert!(p(&[word]).data.is_empty(), "{word}");
        }
    }

    #[test]
    fn kernel_values() {
        assert_eq!(u128::from(MS_NOSYMFOLLOW), u128::from(libc::MS_NOSYMFOLLOW));
        assert_eq!(MS_REC, 0x4000);
        assert_eq!(
            MOUNT_ATTR__ATIME,
            MOUNT_ATTR_NOATIME | MOUNT_ATTR_STRICTATIME | 0x40
        );
    }
}
