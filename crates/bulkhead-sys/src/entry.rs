//! The executable's entry point (x86_64 Linux): the protective re-execution
//! of `exe::ensure_protected`, done before the C library and Rust's runtime
//! start, so that the process image about to be replaced pays for neither.
//!
//! `bulkhead` is linked with `-e bulkhead_entry` (its build script). The
//! kernel starts the process here with the stack as it left it (argc, argv,
//! envp, auxv); `pre_start` looks at argv and, for the commands that put a
//! process into a container, executes the binary again from a read-only,
//! detached bind mount of itself. In every other case (another command, a
//! binary that is protected already, any error) it returns and the C
//! library's own `_start` runs with the untouched stack: `main` then repeats
//! the decision and handles what this path left alone (the sealed memfd
//! fallback, error reports).
//!
//! What runs here runs before static glibc relocates the executable and
//! sets up thread-local storage: only raw system calls, stack memory and
//! position-independent references to code and literals. No call into libc
//! (its string functions are IFUNCs, unresolved yet), no table of pointers
//! (unrelocated), nothing that can panic.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU8, Ordering};

/// What the entry point found: 0 nothing (not looked, or not protected),
/// 1 a read-only mount, 2 a write-sealed memfd. A plain byte in .bss, which
/// exists before relocation.
static FOUND: AtomicU8 = AtomicU8::new(0);

/// The protection the entry point saw on the running binary, so that `main`
/// need not look again.
pub(crate) fn found() -> Option<crate::exe::Protection> {
    match FOUND.load(Ordering::Relaxed) {
        1 => Some(crate::exe::Protection::ReadOnlyMount),
        2 => Some(crate::exe::Protection::SealedMemfd),
        _ => None,
    }
}

// The entry: keep the kernel's stack pointer (r12) and rdx (the dynamic
// loader's finalizer where there is one; 0 for a static binary) across the
// call in registers the call preserves, then enter the C library's `_start`
// exactly as the kernel or loader would have.
global_asm!(
    ".globl bulkhead_entry",
    ".type bulkhead_entry,@function",
    "bulkhead_entry:",
    "mov r12, rsp",
    "mov r13, rdx",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {pre}",
    "mov rsp, r12",
    "mov rdx, r13",
    "jmp _start",
    ".size bulkhead_entry, . - bulkhead_entry",
    pre = sym pre_start,
);

/// `sp` points at argc, followed by argv's pointers, a null, envp's
/// pointers and a null.
unsafe extern "C" fn pre_start(sp: *const usize) {
    // SAFETY: the kernel's initial stack layout (see above): argc, then
    // argc argv pointers and a null, then the environment, null-terminated.
    unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *const *const u8;
        let envp = argv.add(argc + 1);
        if enters_container(argc, argv) {
            reexec_protected(argv, envp);
        }
    }
}

/// The commands that put a process into a container, found as `main`'s
/// `argv_command` finds them: global options that take a separate value are
/// skipped with it, other options skipped, the first word is the command.
///
/// # Safety
/// `argv` holds `argc` valid NUL-terminated strings.
unsafe fn enters_container(argc: usize, argv: *const *const u8) -> bool {
    let mut i = 1;
    while i < argc {
        // SAFETY: i < argc.
        let a = unsafe { *argv.add(i) };
        // SAFETY: a is one of argv's C strings.
        unsafe {
            if is(a, b"--root\0")
                || is(a, b"--log\0")
                || is(a, b"--log-format\0")
                || is(a, b"--rootless\0")
                || is(a, b"--criu\0")
            {
                i += 2;
                continue;
            }
            if *a == b'-' {
                i += 1;
                continue;
            }
            return is(a, b"create\0")
                || is(a, b"run\0")
                || is(a, b"exec\0")
                || is(a, b"sandbox\0");
        }
    }
    false
}

/// Whether the C string `a` equals `lit` (which ends in its NUL).
///
/// # Safety
/// `a` is a valid NUL-terminated string.
#[inline(always)]
unsafe fn is(a: *const u8, lit: &[u8]) -> bool {
    let mut i = 0;
    while i < lit.len() {
        // SAFETY: every byte up to a's NUL is readable, and the comparison
        // stops at the first difference, at the latest at a's NUL.
        let c = unsafe { *a.add(i) };
        if c != lit[i] {
            return false;
        }
        if c == 0 {
            return true;
        }
        i += 1;
    }
    false
}

/// Executes the binary again from a read-only detached bind mount of
/// itself, unless it runs from a read-only mount or a write-sealed memfd
/// already. Returns only when it did not execute.
///
/// # Safety
/// `argv` and `envp` are the process's null-terminated vectors.
unsafe fn reexec_protected(argv: *const *const u8, envp: *const *const u8) {
    const EXE: &core::ffi::CStr = c"/proc/self/exe";
    const ST_RDONLY: u64 = 1;
    let exe = EXE.as_ptr() as usize;
    let cloexec = libc::O_CLOEXEC as usize;
    let at_fdcwd = libc::AT_FDCWD as isize as usize;
    // SAFETY: each call passes valid C strings, a stack buffer of the size
    // the kernel writes, or fds this function owns; none touches memory the
    // program owns otherwise.
    unsafe {
        let fd = syscall4(
            libc::SYS_openat,
            at_fdcwd,
            exe,
            libc::O_RDONLY as usize | cloexec,
            0,
        );
        if fd < 0 {
            return;
        }
        let fd = fd as usize;
        // The kernel's struct statfs on x86_64: 15 words, f_flags the 11th
        // (libc's type does not name it).
        let mut st = core::mem::MaybeUninit::<[u64; 15]>::uninit();
        let ok = syscall2(libc::SYS_fstatfs, fd, st.as_mut_ptr() as usize) == 0;
        let ro = ok && (*st.as_ptr())[10] & ST_RDONLY != 0;
        let sealed = ok && !ro && {
            let seals = syscall2(libc::SYS_fcntl, fd, libc::F_GET_SEALS as usize);
            seals >= 0 && seals as usize & libc::F_SEAL_WRITE as usize != 0
        };
        syscall2(libc::SYS_close, fd, 0);
        if ro || sealed {
            FOUND.store(if ro { 1 } else { 2 }, Ordering::Relaxed);
            return;
        }
        if !ok {
            return;
        }
        let tree = syscall4(
            libc::SYS_open_tree,
            at_fdcwd,
            exe,
            libc::OPEN_TREE_CLONE as usize | cloexec,
            0,
        );
        if tree < 0 {
            return;
        }
        let tree = tree as usize;
        let attr = [libc::MOUNT_ATTR_RDONLY, 0u64, 0, 0];
        let empty = c"".as_ptr() as usize;
        if syscall5(
            libc::SYS_mount_setattr,
            tree,
            empty,
            libc::AT_EMPTY_PATH as usize,
            attr.as_ptr() as usize,
            core::mem::size_of_val(&attr),
        ) == 0
        {
            syscall5(
                libc::SYS_execveat,
                tree,
                empty,
                argv as usize,
                envp as usize,
                libc::AT_EMPTY_PATH as usize,
            );
        }
        syscall2(libc::SYS_close, tree, 0);
    }
}

// Raw system calls: no libc wrapper may run yet (no errno, no TLS).

/// # Safety
/// As for the system call `n` with these arguments.
#[inline(always)]
unsafe fn syscall2(n: libc::c_long, a: usize, b: usize) -> isize {
    let ret: isize;
    // SAFETY: the syscall instruction clobbers rcx and r11 only; the
    // caller vouches for the call's arguments.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// # Safety
/// As for the system call `n` with these arguments.
#[inline(always)]
unsafe fn syscall4(n: libc::c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: as in syscall2.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b,
             in("rdx") c, in("r10") d, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// # Safety
/// As for the system call `n` with these arguments.
#[inline(always)]
unsafe fn syscall5(n: libc::c_long, a: usize, b: usize, c: usize, d: usize, e: usize) -> isize {
    let ret: isize;
    // SAFETY: as in syscall2.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b,
             in("rdx") c, in("r10") d, in("r8") e, lateout("rcx") _, lateout("r11") _,
             options(nostack));
    }
    ret
}
