//! Profile-guided optimization support. `scripts/build-release.sh --pgo`
//! first builds an instrumented binary (`-Cprofile-generate` and
//! `--cfg bulkhead_pgo`) and runs containers with it. The profiling runtime
//! writes its counters only from `exit()`, but most of the start path runs
//! in forked processes that leave by `_exit` or `execve` (stage 1, the
//! container init, an exec's child): they write theirs here, just before.
//! In every other build [`flush`] does nothing.

/// Write this process's profile counters (instrumented builds only).
#[inline]
pub fn flush() {
    #[cfg(bulkhead_pgo)]
    {
        unsafe extern "C" {
            fn __llvm_profile_write_file() -> i32;
        }
        // SAFETY: the profiling runtime is linked into every
        // `-Cprofile-generate` build; the call only reads the counters and
        // writes the profile file named by LLVM_PROFILE_FILE.
        unsafe {
            __llvm_profile_write_file();
        }
    }
}
