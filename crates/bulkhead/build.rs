//! The executable starts at `bulkhead_entry` (bulkhead-sys, src/entry.rs),
//! which re-executes the binary from a read-only mount of itself before the
//! C library and Rust's runtime start, where a command needs that.
fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch == "x86_64" && os == "linux" {
        println!("cargo::rustc-link-arg-bin=bulkhead=-Wl,-e,bulkhead_entry");
    }
    println!("cargo::rerun-if-changed=build.rs");
}
