//! Safe layer extraction. Every path is split into components that are
//! opened one by one, relative to the layer's root directory fd, with
//! `O_NOFOLLOW | O_DIRECTORY`: a symlink (created by an earlier entry or
//! not) is never followed, `..` and absolute names are refused before any
//! system call, so no entry can touch anything outside the layer.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Something skipped while unpacking, with the entry concerned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Warning {
    pub entry: String,
    pub message: String,
}

pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";
pub(crate) const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The opaque marker a rootless overlay (`userxattr`) reads.
pub(crate) const USER_OPAQUE_XATTR: &str = "user.overlay.opaque";

/// How a layer is written for the overlayfs that will mount it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Flavor {
    /// Root's store: `trusted.overlay.*`, every owner as the tar says.
    #[default]
    Root,
    /// A user's store, unpacked inside a user namespace mapping the user
    /// (and its sub-ids): `user.overlay.*` (overlay's `userxattr`), and an
    /// owner the namespace does not map is squashed to its root (the user),
    /// losing setuid/setgid.
    Rootless,
}

/// Extended attributes from PAX `SCHILY.xattr.*` records.
type Xattrs = Vec<(String, Vec<u8>)>;

struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: Timespec,
}

struct Unpacker<'a> {
    root: OwnedFd,
    layer: &'a str,
    entry: String,
    /// Directories whose mode and times are set once everything is in.
    dirs: Vec<(Vec<Vec<u8>>, Meta)>,
    warnings: Vec<Warning>,
    flavor: Flavor,
    /// Entries whose owner was squashed (rootless), reported once.
    squashed: usize,
}

/// Unpacks the layer tar read from `reader` into the empty directory `dir`.
/// `layer` names the layer in errors.
pub(crate) fn unpack(
    reader: impl Read,
    dir: &std::path::Path,
    layer: &str,
    flavor: Flavor,
) -> Result<Vec<Warning>> {
    let root = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(crate::error::errno_err(dir.display().to_string()))?;
    let mut u = Unpacker {
        root,
        layer,
        entry: String::new(),
        dirs: Vec::new(),
        warnings: Vec::new(),
        flavor,
        squashed: 0,
    };
    let mut ar = tar::Archive::new(reader);
    let corrupt = |e: io::Error| Error::Corrupt {
        what: format!("layer {layer}"),
        reason: format!("tar: {e}"),
    };
    for entry in ar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        u.entry = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        u.entry(&mut entry)?;
    }
    u.entry = String::new();
    u.finish_dirs()?;
    if u.squashed > 0 {
        u.entry = String::new();
        let n = u.squashed;
        let entries = if n == 1 { "entry" } else { "entries" };
        u.warn(format!(
            "{n} {entries} owned by ids outside your user namespace's map (your uid and \
             sub-ids) given to container root (you), without setuid/setgid bits"
        ));
    }
    Ok(u.warnings)
}

fn errno_is(e: &Errno, which: &[Errno]) -> bool {
    which.contains(e)
}

impl Unpacker<'_> {
    fn opaque_xattr(&self) -> &'static str {
        match self.flavor {
            Flavor::Root => OPAQUE_XATTR,
            Flavor::Rootless => USER_OPAQUE_XATTR,
        }
    }

    /// `fchownat`-like owner change of `name` in `dir` (or of `dir` itself
    /// when `name` is None). Rootless, an owner outside the namespace's map
    /// (EINVAL) becomes container root, and `meta.mode` loses
    /// setuid/setgid: a squashed setuid program must not become one of
    /// container root's.
    fn chown(&mut self, dir: &OwnedFd, name: Option<&OsStr>, meta: &mut Meta) -> Result<()> {
        let set = |uid: u32, gid: u32| {
            let (u, g) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
            match name {
                None => rustix::fs::fchown(dir, u, g),
                Some(n) => rustix::fs::chownat(dir, n, u, g, AtFlags::SYMLINK_NOFOLLOW),
            }
        };
        match set(meta.uid, meta.gid) {
            Err(Errno::INVAL) if self.flavor == Flavor::Rootless => {
                set(0, 0).map_err(self.sys("chown"))?;
                meta.mode &= !0o6000;
                self.squashed += 1;
                Ok(())
            }
            r => r.map_err(self.sys("chown")),
        }
    }

    fn reject(&self, reason: impl Into<String>) -> Error {
        Error::UnsafeEntry {
            layer: self.layer.to_string(),
            entry: self.entry.clone(),
            reason: reason.into(),
        }
    }

    fn sys(&self, what: &str) -> impl FnOnce(Errno) -> Error + '_ {
        let what = what.to_string();
        move |e| Error::Io {
            context: format!("layer {}: entry {:?}: {what}", self.layer, self.entry),
            source: e.into(),
        }
    }

    fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(Warning {
            entry: self.entry.clone(),
            message: message.into(),
        });
    }

    /// Splits a raw tar name into components; refuses absolute names and
    /// `..` anywhere (before any normalisation could hide it).
    fn components(&self, raw: &[u8], what: &str) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for c in raw.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => return Err(self.reject(format!("{what} has a `..` component"))),
                c if c.contains(&0) => return Err(self.reject(format!("{what} contains NUL"))),
                c => out.push(c.to_vec()),
            }
        }
        // `/` alone (umoci writes it) is the layer root; any other
        // absolute name is refused.
        if raw.first() == Some(&b'/') && !out.is_empty() {
            return Err(self.reject(format!("{what} is an absolute path")));
        }
        Ok(out)
    }

    /// Opens directory `comps` below the layer root without following any
    /// symlink, creating missing directories (0755, root) when `create`.
    fn open_dir(&self, comps: &[Vec<u8>], create: bool) -> Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut fd = rustix::fs::openat(&self.root, ".", flags, Mode::empty())
            .map_err(self.sys("open layer root"))?;
        for c in comps {
            let name = OsStr::from_bytes(c);
            let next = match rustix::fs::openat(&fd, name, flags, Mode::empty()) {
                Ok(f) => f,
                Err(Errno::NOENT) if create => {
                    rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o755))
                        .map_err(self.sys("create parent directory"))?;
                    rustix::fs::openat(&fd, name, flags, Mode::empty())
                        .map_err(self.sys("open parent directory"))?
                }
                Err(e) if errno_is(&e, &[Errno::LOOP, Errno::NOTDIR]) => {
                    return Err(self.reject(format!(
                        "path component {:?} is not a directory in this layer (a symlink is never followed)",
                        String::from_utf8_lossy(c)
                    )));
                }
                Err(Errno::NOENT) => {
                    return Err(self.reject(format!(
                        "path component {:?} does not exist in this layer",
                        String::from_utf8_lossy(c)
                    )));
                }
                Err(e) => return Err(self.sys("open parent directory")(e)),
            };
            fd = next;
        }
        Ok(fd)
    }

    /// Makes room for a new entry `name` in `parent`: removes a
    /// non-directory left by an earlier entry (later entries win, as in
    /// tar). Returns whether a whiteout was replaced, and whether a
    /// directory is already there.
    fn clear(&self, parent: &OwnedFd, name: &OsStr, want_dir: bool) -> Result<(bool, bool)> {
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok((false, false)),
            Err(e) => Err(self.sys("stat")(e)),
            Ok(st) => {
                let ft = FileType::from_raw_mode(st.st_mode);
                if ft == FileType::Directory {
                    if want_dir {
                        return Ok((false, true));
                    }
                    return Err(
                        self.reject("replaces a directory of the same layer with a non-directory")
                    );
                }
                let whiteout = ft == FileType::CharacterDevice && st.st_rdev == 0;
                rustix::fs::unlinkat(parent, name, AtFlags::empty())
                    .map_err(self.sys("replace earlier entry"))?;
                Ok((whiteout, false))
            }
        }
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>) -> Result<(Meta, Xattrs)> {
        let h = entry.header();
        let bad = |what: &str, e: io::Error| self.reject(format!("bad {what} in header: {e}"));
        let mut uid = h.uid().map_err(|e| bad("uid", e))?;
        let mut gid = h.gid().map_err(|e| bad("gid", e))?;
        let mode = h.mode().map_err(|e| bad("mode", e))? & 0o7777;
        let mut mtime = Timespec {
            tv_sec: h.mtime().map_err(|e| bad("mtime", e))? as i64,
            tv_nsec: 0,
        };
        let mut xattrs = Vec::new();
        if let Some(pax) = entry
            .pax_extensions()
            .map_err(|e| bad("PAX extensions", e))?
        {
            for ext in pax {
                let ext = ext.map_err(|e| bad("PAX extension", e))?;
                let Ok(key) = ext.key() else { continue };
                let val = ext.value_bytes();
                let num = || std::str::from_utf8(val).ok().map(str::trim);
                match key {
                    "uid" => uid = num().and_then(|v| v.parse().ok()).unwrap_or(uid),
                    "gid" => gid = num().and_then(|v| v.parse().ok()).unwrap_or(gid),
                    "mtime" => {
                        if let Some(v) = num() {
                            let (s, frac) = v.split_once('.').unwrap_or((v, ""));
                            if let Ok(s) = s.parse::<i64>() {
                                let digits: String = frac
                                    .chars()
                                    .take(9)
                                    .chain("000000000".chars())
                                    .take(9)
                                    .collect();
                                mtime = Timespec {
                                    tv_sec: s,
                                    tv_nsec: digits.parse().unwrap_or(0),
                                };
                            }
                        }
                    }
                    k => {
                        if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                            xattrs.push((name.to_string(), val.to_vec()));
                        }
                    }
                }
            }
        }
        let uid = u32::try_from(uid).map_err(|_| self.reject("uid out of range"))?;
        let gid = u32::try_from(gid).map_err(|_| self.reject("gid out of range"))?;
        Ok((
            Meta {
                uid,
                gid,
                mode,
                mtime,
            },
            xattrs,
        ))
    }

    fn set_xattrs(&mut self, fd: &OwnedFd, xattrs: &[(String, Vec<u8>)]) -> Result<()> {
        for (name, value) in xattrs {
            // Only attributes that mean the same inside a container; never
            // `trusted.*` nor `user.overlay.*` (a layer must not forge
            // overlayfs metadata, which a rootless overlay reads from
            // `user.overlay.*`).
            let overlay = name.starts_with("user.overlay.");
            if !overlay && (name.starts_with("user.") || name == "security.capability") {
                rustix::fs::fsetxattr(fd, name.as_str(), value, XattrFlags::empty())
                    .map_err(self.sys(&format!("set xattr {name}")))?;
            } else {
                self.warn(format!("xattr {name} not applied"));
            }
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let mut comps = self.components(&raw, "name")?;
        let (mut meta, xattrs) = self.meta(entry)?;

        let Some(base) = comps.pop() else {
            // The layer root itself (`./`).
            if kind != tar::EntryType::Directory {
                return Err(self.reject("the layer root must be a directory"));
            }
            let mut meta = meta;
            let root = rustix::fs::openat(
                &self.root,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(self.sys("open layer root"))?;
            self.chown(&root, None, &mut meta)?;
            self.dirs.push((Vec::new(), meta));
            return Ok(());
        };

        // Whiteouts, by name, whatever the entry's type.
        if base.starts_with(WHITEOUT_PREFIX) {
            let parent = self.open_dir(&comps, true)?;
            if base == OPAQUE_MARKER {
                rustix::fs::fsetxattr(&parent, self.opaque_xattr(), b"y", XattrFlags::empty())
                    .map_err(self.sys("mark directory opaque"))?;
                return Ok(());
            }
            let hidden = &base[WHITEOUT_PREFIX.len()..];
            if hidden.starts_with(WHITEOUT_PREFIX) {
                self.warn("unknown whiteout meta-entry skipped");
                return Ok(());
            }
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(self.reject("whiteout of an invalid name"));
            }
            let hidden = OsStr::from_bytes(hidden);
            match rustix::fs::statat(&parent, hidden, AtFlags::SYMLINK_NOFOLLOW) {
                // An entry of this layer hides the lower one already; a
                // whiteout applies only to lower layers.
                Ok(_) => return Ok(()),
                Err(Errno::NOENT) => {}
                Err(e) => return Err(self.sys("stat")(e)),
            }
            rustix::fs::mknodat(&parent, hidden, FileType::CharacterDevice, Mode::empty(), 0)
                .map_err(self.sys("create whiteout (mknod 0:0)"))?;
            return Ok(());
        }

        let name = OsStr::from_bytes(&base);
        let times = Timestamps {
            last_access: meta.mtime,
            last_modification: meta.mtime,
        };

        match kind {
            tar::EntryType::Directory => {
                let parent = self.open_dir(&comps, true)?;
                let (was_whiteout, exists) = self.clear(&parent, name, true)?;
                if !exists {
                    rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o700))
                        .map_err(self.sys("mkdir"))?;
                }
                let fd = rustix::fs::openat(
                    &parent,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(self.sys("open directory"))?;
                if was_whiteout {
                    // `.wh.d` then `d/` in one layer: a new, opaque `d`.
                    rustix::fs::fsetxattr(&fd, self.opaque_xattr(), b"y", XattrFlags::empty())
                        .map_err(self.sys("mark directory opaque"))?;
                }
                self.chown(&fd, None, &mut meta)?;
                self.set_xattrs(&fd, &xattrs)?;
                comps.push(base);
                self.dirs.push((comps, meta));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let parent = self.open_dir(&comps, true)?;
                self.clear(&parent, name, false)?;
                let fd = rustix::fs::openat(
                    &parent,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(self.sys("create file"))?;
                let mut file = File::from(fd);
                io::copy(entry, &mut file).map_err(|e| Error::Corrupt {
                    what: format!("layer {}: entry {:?}", self.layer, self.entry),
                    reason: e.to_string(),
                })?;
                let fd = OwnedFd::from(file);
                self.chown(&fd, None, &mut meta)?;
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode))
                    .map_err(self.sys("chmod"))?;
                self.set_xattrs(&fd, &xattrs)?;
                rustix::fs::futimens(&fd, &times).map_err(self.sys("set times"))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if target.is_empty() || target.contains(&0) {
                    return Err(self.reject("symlink with an empty or invalid target"));
                }
                let parent = self.open_dir(&comps, true)?;
                self.clear(&parent, name, false)?;
                // The target is stored, never resolved here: it is resolved
                // inside the container's root later.
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &parent, name)
                    .map_err(self.sys("symlink"))?;
                self.chown(&parent, Some(name), &mut meta)?;
                rustix::fs::utimensat(&parent, name, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(self.sys("set times"))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let mut tcomps = self.components(&target, "hardlink target")?;
                let Some(tbase) = tcomps.pop() else {
                    return Err(self.reject("hardlink to the layer root"));
                };
                let tparent = self.open_dir(&tcomps, false).map_err(|_| {
                    self.reject("hardlink target is not an earlier entry of this layer")
                })?;
                let tname = OsStr::from_bytes(&tbase);
                match rustix::fs::statat(&tparent, tname, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                        return Err(self.reject("hardlink to a directory"));
                    }
                    Ok(_) => {}
                    Err(_) => {
                        return Err(
                            self.reject("hardlink target is not an earlier entry of this layer")
                        );
                    }
                }
                if tcomps == comps && tbase == base {
                    return Ok(());
                }
                let parent = self.open_dir(&comps, true)?;
                self.clear(&parent, name, false)?;
                // Flags 0: a symlink target is linked itself, not followed.
                rustix::fs::linkat(&tparent, tname, &parent, name, AtFlags::empty())
                    .map_err(self.sys("hardlink"))?;
            }
            tar::EntryType::Fifo => {
                let parent = self.open_dir(&comps, true)?;
                self.clear(&parent, name, false)?;
                rustix::fs::mknodat(&parent, name, FileType::Fifo, Mode::empty(), 0)
                    .map_err(self.sys("mkfifo"))?;
                self.chown(&parent, Some(name), &mut meta)?;
                rustix::fs::chmodat(
                    &parent,
                    name,
                    Mode::from_raw_mode(meta.mode),
                    AtFlags::empty(),
                )
                .map_err(self.sys("chmod"))?;
                rustix::fs::utimensat(&parent, name, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(self.sys("set times"))?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                self.warn("device node skipped (devices come from the runtime, not the image)");
            }
            other => {
                self.warn(format!("entry type {other:?} skipped"));
            }
        }
        Ok(())
    }

    /// Sets directory modes and times last, once no entry will be created
    /// in them any more.
    fn finish_dirs(&mut self) -> Result<()> {
        let dirs = std::mem::take(&mut self.dirs);
        for (comps, meta) in dirs {
            self.entry = String::from_utf8_lossy(&comps.join(&b'/')).into_owned();
            let fd = self.open_dir(&comps, false)?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode)).map_err(self.sys("chmod"))?;
            rustix::fs::futimens(
                &fd,
                &Timestamps {
                    last_access: meta.mtime,
                    last_modification: meta.mtime,
                },
            )
            .map_err(self.sys("set times"))?;
        }
        Ok(())
    }
}
