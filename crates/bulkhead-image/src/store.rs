//! The content store: `<root>/layers/<diff-id hex>/diff` holds each layer
//! unpacked, `<root>/images/<id hex>.json` each image's reference (names,
//! run config, ordered layers), `<root>/blobs/sha256/<hex>` the image
//! configs, `<root>/tmp` the imports in progress and `<root>/lock` the lock
//! that serialises imports.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, HashReader};
use crate::error::{Error, Result, errno_err, io_err};
use crate::manifest::{self, ConfigFile, Descriptor, DockerArchiveImage, ImageConfig, Index};
use crate::source::{Source, clean_name};
use crate::unpack::{self, Warning};

const MAX_JSON: u64 = 8 << 20;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// An image store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// A user's store ([`Store::open_rootless`]): layers for a rootless
    /// overlay (`userxattr`).
    rootless: bool,
}

/// Marks a user's store: its layers carry `user.overlay.*` metadata and
/// were unpacked inside the user's namespace.
const ROOTLESS_MARK: &str = "rootless";

/// An imported image: its identity, how to run it, and its layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// The digest of the image config (the image ID).
    pub id: Digest,
    /// The digest of the manifest it came from (none for a docker-archive).
    #[serde(default)]
    pub manifest: Option<Digest>,
    /// Names it was imported under (ref name annotations or RepoTags).
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    /// Entrypoint, Cmd, Env, WorkingDir, User, ...
    pub config: ImageConfig,
    /// The layers, bottom-most first.
    pub layers: Vec<LayerRef>,
}

/// One unpacked layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    /// The digest of the uncompressed layer tar; names its directory.
    pub diff_id: Digest,
    /// The unpacked layer (an overlayfs lower directory); filled in by the
    /// store, not persisted.
    #[serde(skip)]
    pub dir: PathBuf,
}

impl ImageRef {
    /// The layer directories, bottom-most first.
    pub fn layer_dirs(&self) -> Vec<&Path> {
        self.layers.iter().map(|l| l.dir.as_path()).collect()
    }

    /// The contents of regular file `path` (relative to the image root,
    /// e.g. `etc/passwd`) as the merged image shows it, read from the
    /// layers without mounting them: the top-most layer that has it wins,
    /// a whiteout or an opaque directory on the way hides the layers below.
    /// Symlinks are not followed (None), nor is anything over `max` bytes.
    pub fn read_file(&self, path: &str, max: u64) -> Option<Vec<u8>> {
        use std::os::unix::ffi::OsStrExt;
        let comps: Vec<&[u8]> = path
            .as_bytes()
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect();
        if comps.is_empty() || comps.contains(&&b".."[..]) {
            return None;
        }
        let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        'layers: for l in self.layers.iter().rev() {
            let Ok(mut fd) = rustix::fs::open(&l.dir, dir_flags, Mode::empty()) else {
                return None;
            };
            for (i, c) in comps.iter().enumerate() {
                let name = std::ffi::OsStr::from_bytes(c);
                let st = match rustix::fs::statat(&fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                {
                    Ok(st) => st,
                    Err(_) if is_opaque(&fd) => return None,
                    Err(_) => continue 'layers,
                };
                let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
                if ft == rustix::fs::FileType::CharacterDevice && st.st_rdev == 0 {
                    return None; // a whiteout
                }
                if i + 1 == comps.len() {
                    if ft != rustix::fs::FileType::RegularFile || st.st_size as u64 > max {
                        return None;
                    }
                    let f = rustix::fs::openat(
                        &fd,
                        name,
                        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .ok()?;
                    let mut out = Vec::new();
                    File::from(f).take(max).read_to_end(&mut out).ok()?;
                    return Some(out);
                }
                if ft != rustix::fs::FileType::Directory {
                    return None;
                }
                fd = rustix::fs::openat(&fd, name, dir_flags, Mode::empty()).ok()?;
            }
        }
        None
    }
}

/// An overlayfs opaque directory, in either store's form.
fn is_opaque(dir: &impl std::os::fd::AsFd) -> bool {
    let mut buf = [0u8; 4];
    [unpack::OPAQUE_XATTR, unpack::USER_OPAQUE_XATTR]
        .iter()
        .any(|x| rustix::fs::fgetxattr(dir, *x, &mut buf).is_ok_and(|n| &buf[..n] == b"y"))
}

/// Which image to take from a source that holds several.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// A ref name (`org.opencontainers.image.ref.name`, e.g. `latest` or
    /// `busybox:latest`) or docker RepoTag (`busybox:latest`).
    pub name: Option<String>,
}

/// What an import reports while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Bytes of a layer blob read and unpacked so far.
    Layer {
        index: usize,
        count: usize,
        diff_id: Digest,
        read: u64,
        total: u64,
    },
    /// A layer is in the store (`cached`: it was there already).
    LayerDone {
        index: usize,
        count: usize,
        diff_id: Digest,
        cached: bool,
    },
    /// An entry was skipped while unpacking.
    Warning {
        diff_id: Digest,
        entry: String,
        message: String,
    },
}

fn short(d: &Digest) -> &str {
    &d.hex()[..12]
}

fn mib(n: u64) -> f64 {
    n as f64 / (1024.0 * 1024.0)
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Progress::Layer {
                index,
                count,
                diff_id,
                read,
                total,
            } => {
                let pct = (*read * 100).checked_div(*total).unwrap_or(100);
                write!(
                    f,
                    "layer {}/{count} {}: {:.1}/{:.1} MiB ({pct}%)",
                    index + 1,
                    short(diff_id),
                    mib(*read),
                    mib(*total)
                )
            }
            Progress::LayerDone {
                index,
                count,
                diff_id,
                cached,
            } => write!(
                f,
                "layer {}/{count} {}: {}",
                index + 1,
                short(diff_id),
                if *cached {
                    "already in the store"
                } else {
                    "unpacked"
                }
            ),
            Progress::Warning {
                diff_id,
                entry,
                message,
            } => write!(f, "layer {}: {entry:?}: {message}", short(diff_id)),
        }
    }
}

/// What one import will do, once the index/manifest/config are read.
struct Plan {
    names: Vec<String>,
    manifest: Option<Digest>,
    config_raw: Vec<u8>,
    id: Digest,
    layers: Vec<LayerPlan>,
}

struct LayerPlan {
    /// Name inside the source.
    file: String,
    /// Blob digest and size from the manifest (none in a docker-archive).
    expect: Option<(Digest, u64)>,
    media_type: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct LayerMeta {
    diff_id: Digest,
    #[serde(default)]
    blob: Option<Digest>,
    #[serde(default)]
    warnings: Vec<Warning>,
}

/// Held while importing; released when the file is closed.
struct Lock(#[allow(dead_code)] File);

fn mkdir_p(p: &Path) -> Result<()> {
    fs::create_dir_all(p).map_err(io_err(p.display().to_string()))
}

/// Writes `data` to `dir/name` atomically (temporary file, fsync, rename).
fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    let ctx = || dir.join(name).display().to_string();
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(ctx()))?;
    tmp.write_all(data).map_err(io_err(ctx()))?;
    tmp.as_file().sync_all().map_err(io_err(ctx()))?;
    tmp.persist(dir.join(name)).map_err(|e| Error::Io {
        context: ctx(),
        source: e.error,
    })?;
    Ok(())
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Reads a small blob named by `desc` and checks its size and digest.
fn read_blob(src: &Source, desc: &Descriptor) -> Result<(Digest, Vec<u8>)> {
    let digest = Digest::parse(&desc.digest)?;
    if desc.size > MAX_JSON {
        return Err(Error::Corrupt {
            what: format!("blob {digest}"),
            reason: format!("{} bytes, more than the {MAX_JSON} allowed", desc.size),
        });
    }
    let data = src.read_small(&blob_name(&digest), MAX_JSON)?;
    if data.len() as u64 != desc.size {
        return Err(Error::SizeMismatch {
            what: format!("blob {digest}"),
            expected: desc.size,
            actual: data.len() as u64,
        });
    }
    let actual = Digest::of(&data);
    if actual != digest {
        return Err(Error::DigestMismatch {
            what: format!("blob {digest}"),
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok((digest, data))
}

fn parse_json<T: for<'de> Deserialize<'de>>(what: &str, data: &[u8]) -> Result<T> {
    serde_json::from_slice(data).map_err(|source| Error::Json {
        what: what.to_string(),
        source,
    })
}

fn is_index(mt: Option<&str>) -> bool {
    matches!(mt, Some(manifest::MT_OCI_INDEX | manifest::MT_DOCKER_LIST))
}

impl Store {
    /// Opens (creating if needed) the store at `root`. A user's store
    /// (made by [`Store::open_rootless`]) stays one.
    pub fn open(root: &Path) -> Result<Store> {
        mkdir_p(root)?;
        let root = fs::canonicalize(root).map_err(io_err(root.display().to_string()))?;
        for d in ["blobs/sha256", "layers", "images", "tmp", "containers"] {
            mkdir_p(&root.join(d))?;
        }
        let rootless = root.join(ROOTLESS_MARK).exists();
        Ok(Store { root, rootless })
    }

    /// Opens (creating if needed) an unprivileged user's store: layers are
    /// written for an overlay mounted with `userxattr` inside a user
    /// namespace (opaque directories as `user.overlay.opaque`; whiteouts
    /// stay 0:0 character devices, which a user namespace may create), and
    /// owners the caller's namespace does not map are squashed to its root.
    /// Call it inside a user namespace mapping the user to root and its
    /// sub-ids to 1.., so files get the owners the container will see.
    /// A store that already holds root's layers is refused.
    pub fn open_rootless(root: &Path) -> Result<Store> {
        let mut store = Store::open(root)?;
        if !store.rootless {
            let layers = store.root.join("layers");
            let used = fs::read_dir(&layers)
                .map_err(io_err(layers.display().to_string()))?
                .next()
                .is_some();
            if used {
                return Err(Error::Store {
                    root: store.root.clone(),
                    reason: "it holds root's layers (trusted.overlay.* metadata, root's \
                             owners) and cannot be used rootless; use another --image-store"
                        .into(),
                });
            }
            write_atomic(&store.root, ROOTLESS_MARK, b"user.overlay\n")?;
            store.rootless = true;
        }
        Ok(store)
    }

    /// Whether this is a user's store (see [`Store::open_rootless`]).
    pub fn is_rootless(&self) -> bool {
        self.rootless
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the root of container `name` lives (see
    /// [`crate::ContainerRoot::prepare`]): `<root>/containers/<name>`.
    /// `name` must be one plain path component.
    pub fn container_dir(&self, name: &str) -> Result<PathBuf> {
        let ok = !name.is_empty()
            && name != "."
            && name != ".."
            && !name.contains(['/', '\0'])
            && name.len() <= 255;
        if !ok {
            return Err(Error::Container {
                dir: self.root.join("containers"),
                reason: format!("invalid container name {name:?}"),
            });
        }
        Ok(self.root.join("containers").join(name))
    }

    fn lock(&self) -> Result<Lock> {
        let p = self.root.join("lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io_err(p.display().to_string()))?;
        rustix::fs::flock(&f, FlockOperation::LockExclusive)
            .map_err(errno_err(format!("lock {}", p.display())))?;
        Ok(Lock(f))
    }

    /// Removes what interrupted imports left in `tmp` (only under the lock,
    /// so no import is running).
    fn clean_tmp(&self) -> Result<()> {
        let tmp = self.root.join("tmp");
        for e in fs::read_dir(&tmp).map_err(io_err(tmp.display().to_string()))? {
            let p = e.map_err(io_err(tmp.display().to_string()))?.path();
            let r = if p.is_dir() && !p.is_symlink() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.map_err(io_err(p.display().to_string()))?;
        }
        Ok(())
    }

    fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    /// Imports the only image in `source` (an OCI layout directory, an OCI
    /// archive or a docker-archive).
    pub fn import(&self, source: &Path, progress: &mut dyn FnMut(Progress)) -> Result<ImageRef> {
        self.import_with(source, &ImportOptions::default(), progress)
    }

    /// Imports an image, choosing it by name when the source holds several.
    pub fn import_with(
        &self,
        source: &Path,
        opts: &ImportOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ImageRef> {
        let _lock = self.lock()?;
        self.clean_tmp()?;
        let tmp = self.root.join("tmp");
        let scratch = tempfile::Builder::new()
            .prefix("import-")
            .tempdir_in(&tmp)
            .map_err(io_err(tmp.display().to_string()))?;
        let src = Source::open(source, scratch.path())?;
        let (plan, config, diff_ids) = read_plan(&src, source, opts)?;
        let count = plan.layers.len();
        for (index, (lp, diff_id)) in plan.layers.iter().zip(&diff_ids).enumerate() {
            let cached = self.layer_path(diff_id).is_dir();
            if !cached {
                self.unpack_layer(&src, lp, diff_id, index, count, scratch.path(), progress)?;
            }
            progress(Progress::LayerDone {
                index,
                count,
                diff_id: diff_id.clone(),
                cached,
            });
        }
        write_atomic(
            &self.root.join("blobs/sha256"),
            plan.id.hex(),
            &plan.config_raw,
        )?;
        let mut image = ImageRef {
            id: plan.id.clone(),
            manifest: plan.manifest,
            names: plan.names,
            architecture: config.architecture,
            os: config.os,
            config: config.config.unwrap_or_default(),
            layers: diff_ids
                .into_iter()
                .map(|diff_id| LayerRef {
                    diff_id,
                    dir: PathBuf::new(),
                })
                .collect(),
        };
        // A name belongs to one image: the one imported last.
        for mut other in self.list()? {
            if other.id == image.id {
                for n in other.names {
                    if !image.names.contains(&n) {
                        image.names.push(n);
                    }
                }
            } else if other.names.iter().any(|n| image.names.contains(n)) {
                other.names.retain(|n| !image.names.contains(n));
                self.save_ref(&other)?;
            }
        }
        self.save_ref(&image)?;
        drop(scratch);
        self.fill_dirs(image)
    }

    fn save_ref(&self, image: &ImageRef) -> Result<()> {
        let data = serde_json::to_vec_pretty(image).map_err(|source| Error::Json {
            what: format!("image {}", image.id),
            source,
        })?;
        write_atomic(
            &self.root.join("images"),
            &format!("{}.json", image.id.hex()),
            &data,
        )
    }

    /// `image` with the directories of its layers in this store filled in;
    /// an error naming the first layer the store lacks.
    pub fn fill_dirs(&self, mut image: ImageRef) -> Result<ImageRef> {
        for l in &mut image.layers {
            let p = self.layer_path(&l.diff_id);
            if !p.is_dir() {
                return Err(Error::Missing {
                    what: format!("layer {} of image {}", l.diff_id, image.id),
                    hint: " in the store".into(),
                });
            }
            l.dir = p.join("diff");
        }
        Ok(image)
    }

    /// All images in the store.
    pub fn list(&self) -> Result<Vec<ImageRef>> {
        let dir = self.root.join("images");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_err(dir.display().to_string()))? {
            let p = e.map_err(io_err(dir.display().to_string()))?.path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let data = fs::read(&p).map_err(io_err(p.display().to_string()))?;
            let image: ImageRef = parse_json(&p.display().to_string(), &data)?;
            out.push(self.fill_dirs(image)?);
        }
        out.sort_by(|a, b| a.id.hex().cmp(b.id.hex()));
        Ok(out)
    }

    /// An image by name, by `sha256:<id>`, or by an unambiguous id prefix.
    pub fn get(&self, name: &str) -> Result<ImageRef> {
        let images = self.list()?;
        if let Some(i) = images.iter().find(|i| i.names.iter().any(|n| n == name)) {
            return Ok(i.clone());
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        let hits: Vec<_> = images
            .into_iter()
            .filter(|i| hex.len() >= 4 && i.id.hex().starts_with(hex))
            .collect();
        match <[ImageRef; 1]>::try_from(hits) {
            Ok([i]) => Ok(i),
            Err(_) => Err(Error::NotFound {
                name: name.to_string(),
            }),
        }
    }

    /// What a user names an image by: a path to an OCI layout directory,
    /// an OCI archive or a docker-archive (imported; the layers already in
    /// the store are not unpacked again), else a name or id already in the
    /// store. A reference that looks like a path (has a `/` or ends in
    /// `.tar`/`.tar.gz`/`.tgz`) but does not exist is reported as a missing
    /// file, not as an unknown image name.
    pub fn resolve(&self, reference: &str, progress: &mut dyn FnMut(Progress)) -> Result<ImageRef> {
        let path = Path::new(reference);
        if reference.is_empty() {
            return Err(Error::NotFound {
                name: String::new(),
            });
        }
        if fs::symlink_metadata(path).is_ok() {
            return self.import(path, progress);
        }
        let pathlike = reference.contains('/')
            || [".tar", ".tar.gz", ".tgz"]
                .iter()
                .any(|x| reference.ends_with(x));
        match self.get(reference) {
            Err(Error::NotFound { .. }) if pathlike => Err(Error::NotAnImage {
                path: path.into(),
                reason: "no such file or directory".into(),
            }),
            r => r,
        }
    }

    /// Forgets an image (its layers stay; there is no garbage collection
    /// yet).
    pub fn remove(&self, id: &Digest) -> Result<()> {
        let _lock = self.lock()?;
        let p = self.root.join("images").join(format!("{}.json", id.hex()));
        fs::remove_file(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NotFound {
                    name: id.to_string(),
                }
            } else {
                Error::Io {
                    context: p.display().to_string(),
                    source: e,
                }
            }
        })
    }

    /// Unpacks one layer into `<scratch>/layer-N/diff`, verifying the blob
    /// digest and size and the diff_id, then renames it into the store.
    #[allow(clippy::too_many_arguments)]
    fn unpack_layer(
        &self,
        src: &Source,
        lp: &LayerPlan,
        diff_id: &Digest,
        index: usize,
        count: usize,
        scratch: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        let what = match &lp.expect {
            Some((d, _)) => format!("layer {} (blob {d})", index + 1),
            None => format!("layer {} ({})", index + 1, lp.file),
        };
        if let Some(mt) = &lp.media_type {
            if mt.ends_with("+zstd") || mt.ends_with(".zstd") {
                return Err(Error::Unsupported {
                    what,
                    reason: "zstd-compressed layers (re-export the image with gzip or uncompressed layers)".into(),
                });
            }
            if mt.ends_with("+encrypted") {
                return Err(Error::Unsupported {
                    what,
                    reason: "encrypted layers".into(),
                });
            }
        }
        let (reader, total) = match src.open_file(&lp.file) {
            Err(Error::Missing { what, hint }) => {
                return Err(src
                    .truncated(Path::new(&what))
                    .unwrap_or(Error::Missing { what, hint }));
            }
            r => r?,
        };
        if let Some((_, size)) = &lp.expect
            && *size != total
        {
            return Err(Error::SizeMismatch {
                what,
                expected: *size,
                actual: total,
            });
        }
        let stage = scratch.join(format!("layer-{index}"));
        let diff_dir = stage.join("diff");
        mkdir_p(&diff_dir)?;
        let mut report = |read| {
            progress(Progress::Layer {
                index,
                count,
                diff_id: diff_id.clone(),
                read,
                total,
            })
        };
        let mut outer = HashReader::with_progress(reader, &mut report);
        let corrupt = |e: io::Error| Error::Corrupt {
            what: what.clone(),
            reason: e.to_string(),
        };
        let inner_result = (|| -> Result<Vec<Warning>> {
            let mut buf = BufReader::with_capacity(128 * 1024, &mut outer);
            let head = buf.fill_buf().map_err(corrupt)?;
            let gzip = head.starts_with(&GZIP_MAGIC);
            if head.starts_with(&ZSTD_MAGIC) {
                return Err(Error::Unsupported {
                    what: what.clone(),
                    reason: "zstd-compressed layers (re-export the image with gzip or uncompressed layers)".into(),
                });
            }
            if !gzip
                && lp
                    .media_type
                    .as_deref()
                    .is_some_and(|m| m.ends_with("gzip"))
            {
                return Err(Error::Corrupt {
                    what: what.clone(),
                    reason: "media type says gzip but the blob is not gzip data".into(),
                });
            }
            let dec: Box<dyn Read + '_> = if gzip {
                Box::new(flate2::read::MultiGzDecoder::new(buf))
            } else {
                Box::new(buf)
            };
            let mut inner = HashReader::new(dec);
            let flavor = if self.rootless {
                unpack::Flavor::Rootless
            } else {
                unpack::Flavor::Root
            };
            let warnings = unpack::unpack(&mut inner, &diff_dir, &diff_id.to_string(), flavor)?;
            let (actual, _) = inner.finish().map_err(corrupt)?;
            if &actual != diff_id {
                return Err(Error::DigestMismatch {
                    what: format!("{what} uncompressed (diff_id)"),
                    expected: diff_id.to_string(),
                    actual: actual.to_string(),
                });
            }
            Ok(warnings)
        })();
        // The blob digest is checked first: when the blob is corrupt, that
        // is the error to report, whatever unpacking made of it.
        let outer_result = outer.finish();
        if let Some((expected, size)) = &lp.expect {
            let (actual, n) = outer_result.map_err(corrupt)?;
            if &actual != expected {
                return Err(Error::DigestMismatch {
                    what,
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                });
            }
            if n != *size {
                return Err(Error::SizeMismatch {
                    what,
                    expected: *size,
                    actual: n,
                });
            }
        }
        let warnings = inner_result?;
        for w in &warnings {
            progress(Progress::Warning {
                diff_id: diff_id.clone(),
                entry: w.entry.clone(),
                message: w.message.clone(),
            });
        }
        let meta = LayerMeta {
            diff_id: diff_id.clone(),
            blob: lp.expect.as_ref().map(|(d, _)| d.clone()),
            warnings,
        };
        let data = serde_json::to_vec_pretty(&meta).map_err(|source| Error::Json {
            what: what.clone(),
            source,
        })?;
        fs::write(stage.join("layer.json"), data)
            .map_err(io_err(stage.join("layer.json").display().to_string()))?;
        // A layer unpacked but not yet in the store (the crash tests).
        bulkhead_sys::fault::point("image.layer-unpacked");
        // Everything on disk before the layer becomes visible.
        let stage_fd = rustix::fs::open(
            &stage,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_err(stage.display().to_string()))?;
        rustix::fs::syncfs(&stage_fd).map_err(errno_err(format!("syncfs {}", stage.display())))?;
        let dest = self.layer_path(diff_id);
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            &stage,
            rustix::fs::CWD,
            &dest,
            RenameFlags::NOREPLACE,
        ) {
            Ok(()) | Err(Errno::EXIST) | Err(Errno::NOTEMPTY) => Ok(()),
            Err(e) => Err(errno_err(format!(
                "rename {} into the store",
                stage.display()
            ))(e)),
        }
    }
}

/// Picks the image in `src` and reads and verifies its manifest and config:
/// everything an import knows before it unpacks a layer.
fn read_plan(
    src: &Source,
    source: &Path,
    opts: &ImportOptions,
) -> Result<(Plan, ConfigFile, Vec<Digest>)> {
    let plan = if src.exists("index.json") {
        plan_oci(src, source, opts)
    } else if src.exists("manifest.json") {
        plan_docker(src, source, opts)
    } else {
        Err(Error::NotAnImage {
            path: source.into(),
            reason: "neither index.json nor manifest.json found".into(),
        })
    };
    let plan = match plan {
        Err(e @ (Error::Missing { .. } | Error::NotAnImage { .. })) => {
            return Err(src.truncated(source).unwrap_or(e));
        }
        p => p?,
    };
    let config: ConfigFile = parse_json(&format!("config {}", plan.id), &plan.config_raw)?;
    if config.rootfs.kind != "layers" {
        return Err(Error::Unsupported {
            what: format!("config {}", plan.id),
            reason: format!("rootfs type {:?}", config.rootfs.kind),
        });
    }
    if config.rootfs.diff_ids.len() != plan.layers.len() {
        return Err(Error::Corrupt {
            what: format!("image {}", plan.id),
            reason: format!(
                "{} layers but {} diff_ids in the config",
                plan.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        });
    }
    if plan.layers.is_empty() {
        return Err(Error::Unsupported {
            what: format!("image {}", plan.id),
            reason: "an image without layers".into(),
        });
    }
    let diff_ids = config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| Digest::parse(d))
        .collect::<Result<Vec<_>>>()?;
    Ok((plan, config, diff_ids))
}

/// The image in `source` (an OCI layout, OCI archive or docker-archive) as
/// an import would record it, without importing anything: manifest and
/// config verified, no layer read. `dir` of each layer is empty. A gzip'd
/// archive is decompressed into a temporary directory, removed again.
pub fn inspect(source: &Path, opts: &ImportOptions) -> Result<ImageRef> {
    let scratch = tempfile::Builder::new()
        .prefix("bulkhead-inspect-")
        .tempdir()
        .map_err(io_err("temporary directory"))?;
    let src = Source::open(source, scratch.path())?;
    let (plan, config, diff_ids) = read_plan(&src, source, opts)?;
    Ok(ImageRef {
        id: plan.id,
        manifest: plan.manifest,
        names: plan.names,
        architecture: config.architecture,
        os: config.os,
        config: config.config.unwrap_or_default(),
        layers: diff_ids
            .into_iter()
            .map(|diff_id| LayerRef {
                diff_id,
                dir: PathBuf::new(),
            })
            .collect(),
    })
}

/// Picks the image in an OCI layout (or archive) and reads its manifest and
/// config, verifying both.
fn plan_oci(src: &Source, path: &Path, opts: &ImportOptions) -> Result<Plan> {
    if src.exists("oci-layout") {
        let raw = src.read_small("oci-layout", MAX_JSON)?;
        let v: serde_json::Value = parse_json("oci-layout", &raw)?;
        let version = v.get("imageLayoutVersion").and_then(|v| v.as_str());
        if version.is_none_or(|v| !v.starts_with("1.")) {
            return Err(Error::Unsupported {
                what: "oci-layout".into(),
                reason: format!("image layout version {version:?}"),
            });
        }
    }
    let raw = src.read_small("index.json", MAX_JSON)?;
    let index: Index = parse_json("index.json", &raw)?;
    let mut found: Vec<(Descriptor, Option<String>)> = Vec::new();
    collect_manifests(src, &index, None, 0, &mut found)?;
    let arch = manifest::host_arch();
    found.retain(|(d, _)| {
        d.platform
            .as_ref()
            .is_none_or(|p| p.os == "linux" && p.architecture == arch)
    });
    if let Some(want) = &opts.name {
        found.retain(|(_, name)| {
            name.as_deref().is_some_and(|n| {
                n == want
                    || n.rsplit_once(':').is_some_and(|(_, tag)| tag == want)
                    || n.ends_with(&format!("/{want}"))
            })
        });
    }
    let (desc, name) = match found.len() {
        1 => found.remove(0),
        0 => {
            return Err(Error::NotFound {
                name: opts
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("(any linux/{arch} image in {})", path.display())),
            });
        }
        count => {
            return Err(Error::Ambiguous {
                path: path.into(),
                count,
                names: found
                    .iter()
                    .map(|(d, n)| n.clone().unwrap_or_else(|| d.digest.clone()))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    };
    let (manifest_digest, raw) = read_blob(src, &desc)?;
    let m: manifest::Manifest = parse_json(&format!("manifest {manifest_digest}"), &raw)?;
    if let Some(mt) = &m.media_type
        && mt != manifest::MT_OCI_MANIFEST
        && mt != manifest::MT_DOCKER_MANIFEST
    {
        return Err(Error::Unsupported {
            what: format!("manifest {manifest_digest}"),
            reason: format!("media type {mt}"),
        });
    }
    let (id, config_raw) = read_blob(src, &m.config)?;
    let layers = m
        .layers
        .iter()
        .map(|l| {
            let d = Digest::parse(&l.digest)?;
            Ok(LayerPlan {
                file: blob_name(&d),
                expect: Some((d, l.size)),
                media_type: l.media_type.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Plan {
        names: name.into_iter().collect(),
        manifest: Some(manifest_digest),
        config_raw,
        id,
        layers,
    })
}

/// Gathers the image manifests an index points to, following nested
/// indexes (verified) a few levels deep.
fn collect_manifests(
    src: &Source,
    index: &Index,
    inherited_name: Option<&str>,
    depth: u32,
    out: &mut Vec<(Descriptor, Option<String>)>,
) -> Result<()> {
    if depth > 4 {
        return Err(Error::Unsupported {
            what: "image index".into(),
            reason: "indexes nested too deeply".into(),
        });
    }
    for d in index.manifests.iter().flatten() {
        let name = d
            .annotations
            .get(manifest::ANN_CONTAINERD_NAME)
            .or_else(|| d.annotations.get(manifest::ANN_REF_NAME))
            .map(String::as_str)
            .or(inherited_name);
        let mt = d.media_type.as_deref();
        if is_index(mt) {
            let (digest, raw) = read_blob(src, d)?;
            let child: Index = parse_json(&format!("index {digest}"), &raw)?;
            collect_manifests(src, &child, name, depth + 1, out)?;
        } else if mt
            .is_none_or(|m| m == manifest::MT_OCI_MANIFEST || m == manifest::MT_DOCKER_MANIFEST)
        {
            if d.platform
                .as_ref()
                .is_some_and(|p| p.os == "unknown" || p.architecture == "unknown")
            {
                continue; // attestations, not images
            }
            out.push((d.clone(), name.map(str::to_string)));
        }
    }
    let _ = &index.media_type;
    Ok(())
}

/// Picks the image in a docker-archive and reads its config; the config is
/// verified against its file name when that is a digest.
fn plan_docker(src: &Source, path: &Path, opts: &ImportOptions) -> Result<Plan> {
    let raw = src.read_small("manifest.json", MAX_JSON)?;
    let mut images: Vec<DockerArchiveImage> = parse_json("manifest.json", &raw)?;
    if let Some(want) = &opts.name {
        images.retain(|i| {
            i.repo_tags
                .iter()
                .flatten()
                .any(|t| t == want || t.rsplit_once('/').is_some_and(|(_, short)| short == want))
        });
    }
    let image = match images.len() {
        1 => images.remove(0),
        0 => {
            return Err(Error::NotFound {
                name: opts
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("(any image in {})", path.display())),
            });
        }
        count => {
            return Err(Error::Ambiguous {
                path: path.into(),
                count,
                names: images
                    .iter()
                    .map(|i| {
                        i.repo_tags
                            .iter()
                            .flatten()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    };
    let clean = |name: &str| {
        clean_name(name).ok_or_else(|| Error::Corrupt {
            what: "manifest.json".into(),
            reason: format!("file name {name:?} escapes the archive"),
        })
    };
    let config_file = clean(&image.config)?;
    let config_raw = src.read_small(&config_file, MAX_JSON)?;
    let id = Digest::of(&config_raw);
    let stem = config_file
        .rsplit('/')
        .next()
        .unwrap_or("")
        .trim_end_matches(".json");
    if let Some(named) = Digest::from_hex(stem)
        && named != id
    {
        return Err(Error::DigestMismatch {
            what: format!("config {config_file}"),
            expected: named.to_string(),
            actual: id.to_string(),
        });
    }
    let layers = image
        .layers
        .iter()
        .map(|l| {
            Ok(LayerPlan {
                file: clean(l)?,
                expect: None,
                media_type: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Plan {
        names: image.repo_tags.unwrap_or_default(),
        manifest: None,
        config_raw,
        id,
        layers,
    })
}
