//! Compiled filters cached on disk, so a profile is compiled once and every
//! later `create`/`exec` with the same profile only reads bytes (compiling
//! the hardened default profile costs ~20 ms of CPU; reading it, ~50 µs).
//!
//! The key is a SHA-256 of the profile JSON, the bulkhead and libseccomp
//! versions and the architecture. The cache directory lives in the
//! runtime's state root (root-owned, 0700): whoever can write it can already
//! change what the runtime runs. Entries are written by rename, and a short,
//! corrupt or foreign entry is ignored and rebuilt.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use crate::{Compiled, SeccompError, compile};

const MAGIC: &[u8; 8] = b"BHSECC01";

fn key(s: &LinuxSeccomp) -> Option<String> {
    let json = serde_json::to_vec(s).ok()?;
    let v = libseccomp::ScmpVersion::current().ok()?;
    let mut h = Sha256::new();
    h.update(MAGIC);
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(format!("{}.{}.{}", v.major, v.minor, v.micro).as_bytes());
    h.update(std::env::consts::ARCH.as_bytes());
    h.update(&json);
    Some(hex::encode(h.finalize()))
}

fn encode(c: &Compiled) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + c.bpf.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&c.flags.to_le_bytes());
    out.push(u8::from(c.notify));
    out.extend_from_slice(&(c.bpf.len() as u32).to_le_bytes());
    out.extend_from_slice(&c.bpf);
    out
}

fn decode(b: &[u8]) -> Option<Compiled> {
    let rest = b.strip_prefix(MAGIC)?;
    let flags = u32::from_le_bytes(rest.get(0..4)?.try_into().ok()?);
    let notify = *rest.get(4)? == 1;
    let len = u32::from_le_bytes(rest.get(5..9)?.try_into().ok()?) as usize;
    let bpf = rest.get(9..)?;
    if bpf.len() != len || len == 0 || !len.is_multiple_of(8) {
        return None;
    }
    Some(Compiled {
        bpf: bpf.to_vec(),
        flags,
        notify,
        // Warnings were reported when the entry was made.
        warnings: Vec::new(),
    })
}

/// [`compile`] through the cache in `dir` (created 0700 if missing). Cache
/// failures never fail the caller: they fall back to compiling.
pub fn compile_cached(s: &LinuxSeccomp, dir: &Path) -> Result<Compiled, SeccompError> {
    if let Some(c) = lookup(s, dir) {
        return Ok(c);
    }
    let c = compile(s)?;
    remember(s, dir, &c);
    Ok(c)
}

/// The cached program for `s`, if there is a valid entry.
pub fn lookup(s: &LinuxSeccomp, dir: &Path) -> Option<Compiled> {
    let k = key(s)?;
    decode(&std::fs::read(dir.join(k)).ok()?)
}

/// Record a compiled program (best effort). Callers do this once the
/// program has been used successfully, so a rejected config leaves nothing.
pub fn remember(s: &LinuxSeccomp, dir: &Path, c: &Compiled) {
    if let Some(k) = key(s)
        && std::fs::read(dir.join(&k))
            .ok()
            .and_then(|b| decode(&b))
            .is_none()
    {
        let _ = store(dir, &k, &encode(c));
    }
}

fn store(dir: &Path, key: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".{key}.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tmp)?;
    let res = f
        .write_all(bytes)
        .and_then(|()| std::fs::rename(&tmp, dir.join(key)));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> LinuxSeccomp {
        serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]
        }))
        .unwrap()
    }

    #[test]
    fn second_compile_reads_the_cache_and_gives_the_same_program() {
        let dir = tempfile::tempdir().unwrap();
        let a = compile_cached(&profile(), dir.path()).unwrap();
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(entries.len(), 1);
        let b = compile_cached(&profile(), dir.path()).unwrap();
        assert_eq!(
            (a.bpf.clone(), a.flags, a.notify),
            (b.bpf, b.flags, b.notify)
        );
        assert_eq!(a.bpf, compile(&profile()).unwrap().bpf);
    }

    #[test]
    fn corrupt_entry_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let good = compile_cached(&profile(), dir.path()).unwrap();
        let entry = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::write(&entry, b"BHSECC01garbage").unwrap();
        let again = compile_cached(&profile(), dir.path()).unwrap();
        assert_eq!(again.bpf, good.bpf);
        assert_eq!(
            decode(&std::fs::read(&entry).unwrap()).unwrap().bpf,
            good.bpf
        );
    }

    #[test]
    fn different_profiles_get_different_entries() {
        let dir = tempfile::tempdir().unwrap();
        compile_cached(&profile(), dir.path()).unwrap();
        let mut other = profile();
        other.set_default_errno_ret(Some(38));
        compile_cached(&other, dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
