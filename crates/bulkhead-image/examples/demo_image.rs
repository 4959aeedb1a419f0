//! Builds the README's demo image locally, with no registry: an OCI image
//! layout of the busybox-static binary (/bin/busybox) and a small second
//! layer. Optionally also as an OCI archive (a tar of the layout).
//!
//! ```text
//! cargo run -p bulkhead-image --example demo_image -- /tmp/demo-layout [/tmp/demo.tar]
//! ```

#[path = "../tests/common/mod.rs"]
#[allow(unused_macros)]
mod common;

use std::path::PathBuf;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(out) = args.next().map(PathBuf::from) else {
        eprintln!("usage: demo_image LAYOUT_DIR [ARCHIVE.tar]");
        std::process::exit(2);
    };
    if out.exists() {
        eprintln!("{} exists; pick a new directory", out.display());
        std::process::exit(1);
    }
    let motd = common::layer_tar(&[
        common::E::Dir("etc/", 0o755),
        common::file("etc/motd", b"Hello from a bulkhead demo image.\n"),
    ]);
    let built = common::oci_layout(
        &out,
        &[
            common::Layer::gz(common::busybox_layer()),
            common::Layer::gz(motd),
        ],
        None,
    );
    println!(
        "OCI layout {} (config sha256:{}, {} layers)",
        built.dir.display(),
        built.config_digest,
        built.layers.len()
    );
    if let Some(archive) = args.next().map(PathBuf::from) {
        common::tar_dir(&built.dir, &archive);
        println!("OCI archive {}", archive.display());
    }
}
