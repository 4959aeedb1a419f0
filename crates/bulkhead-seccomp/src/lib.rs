//! seccomp: OCI profile → BPF (placeholder)
