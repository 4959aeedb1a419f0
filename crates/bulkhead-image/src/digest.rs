use std::fmt;
use std::io::{self, Read};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::error::{Error, Result};

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parses `sha256:<hex>`; other algorithms are not supported.
    pub fn parse(s: &str) -> Result<Digest> {
        let Some(hex) = s.strip_prefix("sha256:") else {
            return Err(Error::Unsupported {
                what: format!("digest {s:?}"),
                reason: "only sha256 digests are supported".into(),
            });
        };
        Digest::from_hex(hex).ok_or_else(|| Error::Corrupt {
            what: format!("digest {s:?}"),
            reason: "not 64 lowercase hex digits".into(),
        })
    }

    pub(crate) fn from_hex(hex: &str) -> Option<Digest> {
        (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then(
            || Digest {
                hex: hex.to_string(),
            },
        )
    }

    /// The 64 hex digits, safe to use as a file name.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The sha256 of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest {
            hex: hex::encode(sha2::Sha256::digest(data)),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl TryFrom<String> for Digest {
    type Error = Error;
    fn try_from(s: String) -> Result<Digest> {
        Digest::parse(&s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_string()
    }
}

/// Hashes (sha256) and counts what is read through it, and reports the
/// running count to a progress callback.
pub(crate) struct HashReader<'p, R> {
    inner: R,
    hasher: sha2::Sha256,
    count: u64,
    reported: u64,
    progress: Option<&'p mut dyn FnMut(u64)>,
}

const REPORT_EVERY: u64 = 512 * 1024;

impl<'p, R: Read> HashReader<'p, R> {
    pub(crate) fn new(inner: R) -> Self {
        HashReader {
            inner,
            hasher: sha2::Sha256::new(),
            count: 0,
            reported: 0,
            progress: None,
        }
    }

    pub(crate) fn with_progress(inner: R, progress: &'p mut dyn FnMut(u64)) -> Self {
        HashReader {
            progress: Some(progress),
            ..HashReader::new(inner)
        }
    }

    /// Reads the rest to EOF, then returns the digest and byte count.
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        if let Some(p) = self.progress.as_mut() {
            p(self.count);
        }
        Ok((
            Digest {
                hex: hex::encode(self.hasher.finalize()),
            },
            self.count,
        ))
    }
}

impl<R: Read> Read for HashReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if self.count - self.reported >= REPORT_EVERY
            && let Some(p) = self.progress.as_mut()
        {
            self.reported = self.count;
            p(self.count);
        }
        Ok(n)
    }
}
