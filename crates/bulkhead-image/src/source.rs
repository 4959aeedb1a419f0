//! Where an image's files are read from: a directory (an OCI layout) or a
//! tar archive (an OCI archive or a docker-archive), indexed once so that
//! each file can be read later by seeking to its data. Nothing is extracted
//! from the archive itself.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, io_err};

pub(crate) enum Source {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        len: u64,
        items: HashMap<String, Item>,
        /// Whether an end-of-archive (zero) block follows the last entry;
        /// without it the archive was probably cut short.
        complete: bool,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum Item {
    File { offset: u64, size: u64 },
    Symlink(String),
    Hardlink(String),
    Other,
}

/// Splits an archive-relative name into components, dropping `.` and empty
/// ones; `None` for an absolute name or one with a `..` component.
pub(crate) fn clean_name(name: &str) -> Option<String> {
    if name.starts_with('/') {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl Source {
    /// Opens `path`: a directory as is; a (possibly gzip'd) tar file is
    /// indexed. A gzip'd archive is first decompressed into `scratch`.
    pub(crate) fn open(path: &Path, scratch: &Path) -> Result<Source> {
        let meta = std::fs::metadata(path).map_err(io_err(format!("{}", path.display())))?;
        if meta.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        let ctx = || format!("{}", path.display());
        let mut f = BufReader::new(File::open(path).map_err(io_err(ctx()))?);
        let head = f.fill_buf().map_err(io_err(ctx()))?;
        let tar_path = if head.starts_with(&GZIP_MAGIC) {
            let out = scratch.join("archive.tar");
            let mut w = File::create(&out).map_err(io_err(format!("{}", out.display())))?;
            io::copy(&mut flate2::read::MultiGzDecoder::new(f), &mut w).map_err(|e| {
                Error::Corrupt {
                    what: ctx(),
                    reason: format!("gzip: {e}"),
                }
            })?;
            out
        } else {
            path.to_path_buf()
        };
        Source::index_tar(path, &tar_path)
    }

    fn index_tar(orig: &Path, tar_path: &Path) -> Result<Source> {
        let what = || format!("{}", orig.display());
        let corrupt = |reason: String| Error::Corrupt {
            what: what(),
            reason,
        };
        let file = File::open(tar_path).map_err(io_err(what()))?;
        let len = file.metadata().map_err(io_err(what()))?.len();
        if len == 0 {
            return Err(Error::NotAnImage {
                path: orig.into(),
                reason: "empty file".into(),
            });
        }
        let mut ar = tar::Archive::new(file);
        let mut items = HashMap::new();
        let mut count = 0usize;
        let mut end = 0u64;
        for entry in ar
            .entries_with_seek()
            .map_err(|e| corrupt(format!("tar: {e}")))?
        {
            let entry = entry.map_err(|e| corrupt(format!("tar: {e}")))?;
            count += 1;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Some(name) = clean_name(&raw) else {
                return Err(corrupt(format!("entry {raw:?} escapes the archive")));
            };
            let size = entry.size();
            end = end.max(
                entry
                    .raw_file_position()
                    .saturating_add(size.div_ceil(512) * 512),
            );
            let item = match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let offset = entry.raw_file_position();
                    if offset.checked_add(size).is_none_or(|end| end > len) {
                        return Err(corrupt(format!(
                            "entry {raw:?} is truncated ({size} bytes at offset {offset}, archive has {len})"
                        )));
                    }
                    Item::File { offset, size }
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    if entry.header().entry_type() == tar::EntryType::Symlink {
                        Item::Symlink(target)
                    } else {
                        Item::Hardlink(target)
                    }
                }
                _ => Item::Other,
            };
            items.insert(name, item);
        }
        if count == 0 {
            return Err(Error::NotAnImage {
                path: orig.into(),
                reason: "not a tar archive (or an empty one)".into(),
            });
        }
        let mut complete = false;
        if end.saturating_add(512) <= len {
            let mut block = [0u8; 512];
            let mut f = ar.into_inner();
            f.seek(SeekFrom::Start(end)).map_err(io_err(what()))?;
            f.read_exact(&mut block).map_err(io_err(what()))?;
            complete = block.iter().all(|b| *b == 0);
        }
        Ok(Source::Tar {
            path: tar_path.to_path_buf(),
            len,
            items,
            complete,
        })
    }

    /// For a tar archive that ends without an end-of-archive block: the
    /// error to give instead of "missing" or "not an image".
    pub(crate) fn truncated(&self, what: &Path) -> Option<Error> {
        match self {
            Source::Tar {
                complete: false, ..
            } => Some(Error::Corrupt {
                what: what.display().to_string(),
                reason: "the archive ends without an end-of-archive block (truncated?)".into(),
            }),
            _ => None,
        }
    }

    /// Whether a file `name` (archive- or layout-relative) exists.
    pub(crate) fn exists(&self, name: &str) -> bool {
        match self {
            Source::Dir(d) => d.join(name).is_file(),
            Source::Tar { items, .. } => self.resolve(name, items, 0).is_some(),
        }
    }

    fn resolve(&self, name: &str, items: &HashMap<String, Item>, depth: u32) -> Option<(u64, u64)> {
        if depth > 16 {
            return None;
        }
        match items.get(name)? {
            Item::File { offset, size } => Some((*offset, *size)),
            Item::Hardlink(t) => self.resolve(&clean_name(t)?, items, depth + 1),
            Item::Symlink(t) => {
                let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                // Resolved lexically inside the archive; never outside it.
                let mut parts: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
                if t.starts_with('/') {
                    parts.clear();
                }
                for c in t.split('/') {
                    match c {
                        "" | "." => {}
                        ".." => {
                            parts.pop()?;
                        }
                        c => parts.push(c),
                    }
                }
                self.resolve(&parts.join("/"), items, depth + 1)
            }
            Item::Other => None,
        }
    }

    /// Opens file `name` for reading; returns the reader and its length.
    /// `name` must come from [`clean_name`] or be built from a validated
    /// digest.
    pub(crate) fn open_file(&self, name: &str) -> Result<(Box<dyn Read>, u64)> {
        match self {
            Source::Dir(d) => {
                let p = d.join(name);
                let f = File::open(&p).map_err(|e| {
                    if e.kind() == io::ErrorKind::NotFound {
                        Error::Missing {
                            what: name.to_string(),
                            hint: String::new(),
                        }
                    } else {
                        Error::Io {
                            context: p.display().to_string(),
                            source: e,
                        }
                    }
                })?;
                let len = f.metadata().map_err(io_err(p.display().to_string()))?.len();
                Ok((Box::new(f), len))
            }
            Source::Tar {
                path, len, items, ..
            } => {
                let Some((offset, size)) = self.resolve(name, items, 0) else {
                    return Err(Error::Missing {
                        what: name.to_string(),
                        hint: " (the archive may be truncated or incomplete)".into(),
                    });
                };
                debug_assert!(offset + size <= *len);
                let mut f = File::open(path).map_err(io_err(path.display().to_string()))?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(io_err(path.display().to_string()))?;
                Ok((Box::new(f.take(size)), size))
            }
        }
    }

    /// Reads a small file (at most `max` bytes) whole.
    pub(crate) fn read_small(&self, name: &str, max: u64) -> Result<Vec<u8>> {
        let (r, len) = self.open_file(name)?;
        if len > max {
            return Err(Error::Corrupt {
                what: name.to_string(),
                reason: format!("{len} bytes, more than the {max} allowed"),
            });
        }
        let mut buf = Vec::with_capacity(len as usize);
        r.take(max)
            .read_to_end(&mut buf)
            .map_err(|e| Error::Corrupt {
                what: name.to_string(),
                reason: e.to_string(),
            })?;
        Ok(buf)
    }
}
