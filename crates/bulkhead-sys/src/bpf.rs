//! `bpf(2)` for cgroup device programs: loading a program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE`, attaching it to a cgroup2 directory,
//! listing and detaching what is attached there. No libbpf: the attribute
//! block is a zeroed, 8-byte aligned buffer with each field written at its
//! offset in the kernel's `union bpf_attr`.
//!
//! The program itself is produced elsewhere (bulkhead-cgroups' `devfilter`);
//! here it is only a byte string of 8-byte `struct bpf_insn` entries in host
//! byte order.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Size of one `struct bpf_insn`.
pub const INSN_LEN: usize = 8;

/// The name the runtime gives its device programs (visible in
/// `bpftool prog`, read back by [`prog_info`]); at most 15 bytes.
pub const DEVICE_PROG_NAME: &str = "bulkhead_dev";

// bpf(2) commands.
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_PROG_QUERY: libc::c_int = 16;

/// `BPF_PROG_TYPE_CGROUP_DEVICE`.
const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE` attach type.
const ATTACH_CGROUP_DEVICE: u32 = 6;

/// `BPF_F_*` attach flags.
pub mod flag {
    /// `BPF_F_ALLOW_OVERRIDE`.
    pub const ALLOW_OVERRIDE: u32 = 1 << 0;
    /// `BPF_F_ALLOW_MULTI`: several programs on one cgroup, all must allow.
    pub const ALLOW_MULTI: u32 = 1 << 1;
    /// `BPF_F_REPLACE`: swap `replace_bpf_fd` for the new program atomically.
    pub const REPLACE: u32 = 1 << 2;
}

/// The attribute block: larger than the kernel's `union bpf_attr` of the
/// commands used here, zero everywhere else (the kernel refuses non-zero
/// bytes past the fields it knows).
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }

    fn u32(mut self, off: usize, v: u32) -> Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn u64(mut self, off: usize, v: u64) -> Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn bytes(mut self, off: usize, v: &[u8]) -> Attr {
        self.0[off..off + v.len()].copy_from_slice(v);
        self
    }

    fn get_u32(&self, off: usize) -> u32 {
        let mut b = [0; 4];
        b.copy_from_slice(&self.0[off..off + 4]);
        u32::from_ne_bytes(b)
    }
}

fn ptr<T>(p: *const T) -> u64 {
    p as usize as u64
}

/// `bpf(cmd, attr, sizeof attr)`. Every pointer stored in `attr` must point
/// to memory that stays valid (and, for output buffers, writable and as
/// large as the size stored beside it) for the duration of the call.
fn sys_bpf(cmd: libc::c_int, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, exclusively borrowed buffer of the size we
    // pass; the kernel reads it and may write results back into it. The
    // pointers inside it are the callers' (see above), all of which point
    // to locals or slices that outlive this call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr() as *mut libc::c_void,
            std::mem::size_of::<Attr>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn fd_result(ret: libc::c_long) -> OwnedFd {
    // SAFETY: the commands that return a file descriptor return a new one
    // that nothing else owns yet.
    unsafe { OwnedFd::from_raw_fd(ret as RawFd) }
}

fn raw(fd: BorrowedFd<'_>) -> u32 {
    fd.as_raw_fd() as u32
}

/// Load `insns` (a multiple of [`INSN_LEN`] bytes) as a cgroup device
/// program named [`DEVICE_PROG_NAME`]. When the verifier refuses it, the
/// load is repeated with a log buffer and the error carries the verifier's
/// log (its kind stays that of the errno).
pub fn load_cgroup_device_prog(insns: &[u8]) -> io::Result<OwnedFd> {
    if insns.is_empty() || !insns.len().is_multiple_of(INSN_LEN) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // Copy into u64s: the kernel wants the instructions 8-byte aligned.
    let words: Vec<u64> = insns
        .chunks_exact(INSN_LEN)
        .map(|c| {
            let mut b = [0; 8];
            b.copy_from_slice(c);
            u64::from_ne_bytes(b)
        })
        .collect();
    // Device programs call no GPL-only helper: any license string will do.
    let license = c"Apache-2.0";
    let name = DEVICE_PROG_NAME.as_bytes();
    let load = |log: Option<&mut [u8]>| {
        let mut attr = Attr::new()
            .u32(0, PROG_TYPE_CGROUP_DEVICE)
            .u32(4, words.len() as u32)
            .u64(8, ptr(words.as_ptr()))
            .u64(16, ptr(license.as_ptr()))
            .bytes(48, name);
        if let Some(log) = log {
            attr = attr
                .u32(24, 1)
                .u32(28, log.len() as u32)
                .u64(32, ptr(log.as_mut_ptr()));
        }
        sys_bpf(BPF_PROG_LOAD, &mut attr).map(fd_result)
    };
    match load(None) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EACCES)) => {
            let mut log = vec![0u8; 64 * 1024];
            let again = load(Some(&mut log));
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let text = text.trim();
            match again {
                Err(e2) if !text.is_empty() => Err(io::Error::new(
                    e2.kind(),
                    format!("{e2}; verifier log: {text}"),
                )),
                Err(_) => Err(e),
                Ok(fd) => Ok(fd),
            }
        }
        other => other,
    }
}

/// Attach a cgroup device program to the cgroup2 directory `cgroup` with
/// `BPF_F_ALLOW_MULTI` (programs of the ancestors keep running too). With
/// `replace`, that program (attached to the same cgroup) is swapped for
/// `prog` atomically (`BPF_F_REPLACE`).
pub fn attach(
    prog: BorrowedFd<'_>,
    cgroup: BorrowedFd<'_>,
    replace: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut flags = flag::ALLOW_MULTI;
    let mut attr = Attr::new()
        .u32(0, raw(cgroup))
        .u32(4, raw(prog))
        .u32(8, ATTACH_CGROUP_DEVICE);
    if let Some(old) = replace {
        flags |= flag::REPLACE;
        attr = attr.u32(16, raw(old));
    }
    let mut attr = attr.u32(12, flags);
    sys_bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

/// Detach the device program `prog` from `cgroup`.
pub fn detach(prog: BorrowedFd<'_>, cgroup: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = Attr::new()
        .u32(0, raw(cgroup))
        .u32(4, raw(prog))
        .u32(8, ATTACH_CGROUP_DEVICE);
    sys_bpf(BPF_PROG_DETACH, &mut attr).map(drop)
}

/// Ids of the device programs attached directly to `cgroup` (not those
/// inherited from its ancestors), in attach order.
pub fn query(cgroup: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut cap = 16usize;
    loop {
        let mut ids = vec![0u32; cap];
        let mut attr = Attr::new()
            .u32(0, raw(cgroup))
            .u32(4, ATTACH_CGROUP_DEVICE)
            .u64(16, ptr(ids.as_mut_ptr()))
            .u32(24, cap as u32);
        match sys_bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                let n = (attr.get_u32(24) as usize).min(cap);
                ids.truncate(n);
                return Ok(ids);
            }
            // More programs than room: the kernel says how many.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && cap < 1 << 16 => {
                cap = (attr.get_u32(24) as usize).max(cap * 2);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Ids of every device program that runs for `cgroup`: its own and its
/// ancestors' (`BPF_F_QUERY_EFFECTIVE`); an access is allowed only when all
/// of them allow it.
pub fn query_effective(cgroup: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    /// `BPF_F_QUERY_EFFECTIVE`.
    const QUERY_EFFECTIVE: u32 = 1;
    let mut cap = 64usize;
    loop {
        let mut ids = vec![0u32; cap];
        let mut attr = Attr::new()
            .u32(0, raw(cgroup))
            .u32(4, ATTACH_CGROUP_DEVICE)
            .u32(8, QUERY_EFFECTIVE)
            .u64(16, ptr(ids.as_mut_ptr()))
            .u32(24, cap as u32);
        match sys_bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                let n = (attr.get_u32(24) as usize).min(cap);
                ids.truncate(n);
                return Ok(ids);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && cap < 1 << 16 => {
                cap = (attr.get_u32(24) as usize).max(cap * 2);
            }
            Err(e) => return Err(e),
        }
    }
}

/// A new file descriptor for the loaded program with id `id`.
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = Attr::new().u32(0, id);
    sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map(fd_result)
}

/// What [`prog_info`] reports about a loaded program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgInfo {
    /// `BPF_PROG_TYPE_*`.
    pub prog_type: u32,
    /// The kernel's id of the program.
    pub id: u32,
    /// The name given at load time (up to 15 bytes).
    pub name: String,
}

/// Type, id and name of the program behind `prog`
/// (`BPF_OBJ_GET_INFO_BY_FD` with the head of `struct bpf_prog_info`).
pub fn prog_info(prog: BorrowedFd<'_>) -> io::Result<ProgInfo> {
    // type u32 @0, id u32 @4, tag[8] @8, ..., name[16] @64: 80 bytes cover
    // what we read; the kernel fills no more than info_len.
    #[repr(C, align(8))]
    struct Info([u8; 80]);
    let mut info = Info([0; 80]);
    let mut attr = Attr::new()
        .u32(0, raw(prog))
        .u32(4, std::mem::size_of::<Info>() as u32)
        .u64(8, ptr(info.0.as_mut_ptr()));
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let word = |off: usize| {
        let mut b = [0; 4];
        b.copy_from_slice(&info.0[off..off + 4]);
        u32::from_ne_bytes(b)
    };
    let name = &info.0[64..80];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(ProgInfo {
        prog_type: word(0),
        id: word(4),
        name: String::from_utf8_lossy(&name[..end]).into_owned(),
    })
}

/// The program behind `prog` as the kernel runs it before JIT (its
/// "translated" instructions, 8 bytes each in host byte order), read with
/// `BPF_OBJ_GET_INFO_BY_FD` (`xlated_prog_len` @20, `xlated_prog_insns`
/// @32 of `struct bpf_prog_info`). Needs CAP_BPF or CAP_SYS_ADMIN (else
/// the kernel reports a length of 0, returned as EPERM).
pub fn prog_xlated(prog: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    #[repr(C, align(8))]
    struct Info([u8; 80]);
    let get = |buf: Option<&mut [u64]>| -> io::Result<u32> {
        let mut info = Info([0; 80]);
        // The kernel writes at most xlated_prog_len bytes, the buffer's size.
        if let Some(b) = buf {
            info.0[20..24].copy_from_slice(&((b.len() * INSN_LEN) as u32).to_ne_bytes());
            info.0[32..40].copy_from_slice(&ptr(b.as_mut_ptr()).to_ne_bytes());
        }
        let mut attr = Attr::new()
            .u32(0, raw(prog))
            .u32(4, std::mem::size_of::<Info>() as u32)
            .u64(8, ptr(info.0.as_mut_ptr()));
        sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
        let mut b = [0; 4];
        b.copy_from_slice(&info.0[20..24]);
        Ok(u32::from_ne_bytes(b))
    };
    let len = get(None)? as usize;
    if len == 0 {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    // u64s: 8-byte aligned, as the kernel writes whole instructions.
    let mut words = vec![0u64; len.div_ceil(INSN_LEN)];
    let got = (get(Some(&mut words))? as usize).min(words.len() * INSN_LEN);
    Ok(words
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .take(got)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layout() {
        assert_eq!(std::mem::align_of::<Attr>(), 8);
        let a = Attr::new().u32(4, 7).u64(8, 0x0102_0304_0506_0708);
        assert_eq!(a.get_u32(4), 7);
        assert_eq!(a.get_u32(0), 0);
        assert!(a.0[16..].iter().all(|&b| b == 0));
        assert!(DEVICE_PROG_NAME.len() < 16);
    }

    #[test]
    fn bad_lengths_are_refused_before_the_kernel() {
        for bad in [&[][..], &[0u8; 7][..], &[0u8; 9][..]] {
            let e = load_cgroup_device_prog(bad).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        }
    }
}
