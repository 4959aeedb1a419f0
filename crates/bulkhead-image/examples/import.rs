//! Imports an image into a store, showing unpacking progress, and prints
//! the resulting image reference as JSON.
//!
//! ```text
//! cargo run -p bulkhead-image --example import -- STORE SOURCE [NAME]
//! ```

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use bulkhead_image::{ImportOptions, Progress, Store};

fn main() {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.len() < 2 || args.len() > 3 {
        eprintln!("usage: import STORE SOURCE [NAME]");
        std::process::exit(2);
    }
    let opts = ImportOptions {
        name: args.get(2).map(|n| n.to_string_lossy().into_owned()),
    };
    let tty = std::io::stderr().is_terminal();
    let mut on_progress = |p: Progress| {
        let mut err = std::io::stderr().lock();
        match (&p, tty) {
            // On a terminal the running count rewrites one line.
            (Progress::Layer { .. }, true) => {
                let _ = write!(err, "\r\x1b[K{p}");
            }
            (Progress::Layer { .. }, false) => {}
            (_, true) => {
                let _ = writeln!(err, "\r\x1b[K{p}");
            }
            (_, false) => {
                let _ = writeln!(err, "{p}");
            }
        }
    };
    let result = Store::open(&PathBuf::from(&args[0]))
        .and_then(|s| s.import_with(&PathBuf::from(&args[1]), &opts, &mut on_progress));
    match result {
        Ok(image) => {
            println!("{}", serde_json::to_string_pretty(&image).unwrap());
            for l in image.layer_dirs() {
                println!("{}", l.display());
            }
        }
        Err(e) => {
            eprintln!("import: {e}");
            std::process::exit(1);
        }
    }
}
