#!/usr/bin/env bash
# scripts/build-release.sh: the release build of `bulkhead` that the benchmark
# measures and that README's install section uses: one static-PIE
# executable (glibc, libseccomp and libdbus linked in), so that no `ld.so`
# runs and no shared library is mapped, while the binary keeps full ASLR;
# optimized for size, as code pages are mapped 64 KiB or more at a time and
# the start path touches code all over the binary; its relative relocations
# packed (DT_RELR: 4 KB instead of a 320 KB table read at every start); the
# functions a start runs laid out together (scripts/layout/hot-symbols.txt). Why each choice:
# docs/benchmark.md, "The release build".
#
#   scripts/build-release.sh [--no-pie] [--pgo] [extra cargo args]     prints the binary's path
#
# --no-pie: a fixed-address executable, about 100 page faults and 5 % CPU less
# per start, at the price of the binary's own code not being randomised. Not
# the default: a runtime handles input from containers.
#
# --pgo: profile-guided (needs root: scripts/pgo-train.sh runs containers
# with an instrumented build first; llvm-profdata from rustup's llvm-tools).
#
# Plain `cargo build --release` is unchanged (dynamic, PIE). The static build
# needs an explicit --target: with it, build scripts and proc-macros are still
# built for the host without crt-static (they must be loadable by rustc).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
host=$(rustc -vV | sed -n 's/^host: //p')
case $host in
    *-linux-gnu) ;;
    *) echo "build-release.sh: needs a *-linux-gnu host toolchain, not $host" >&2; exit 1 ;;
esac
libdir=/usr/lib/$(gcc -dumpmachine 2>/dev/null || echo "${host%%-*}-linux-gnu")
[ -e "$libdir/libseccomp.a" ] || {
    echo "build-release.sh: no $libdir/libseccomp.a (apt-get install libseccomp-dev)" >&2
    exit 1
}
pie_flags="" pgo=0
while [ $# -gt 0 ]; do
    case $1 in
        --no-pie) pie_flags="-C relocation-model=static" ;;
        --pgo) pgo=1 ;;
        *) break ;;
    esac
    shift
done
cd "$repo"
target=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
# The functions a container start runs first, side by side (rust-lld, the
# toolchain's default linker on x86_64 since Rust 1.90; names it does not
# find are skipped).
# The copy is named by its content: cargo does not see into link arguments,
# and a new list must cause a new link.
order=$target/layout/hot-symbols.$(sha256sum "$repo/scripts/layout/hot-symbols.txt" | cut -c1-16).txt
mkdir -p "$target/layout"
cp "$repo/scripts/layout/hot-symbols.txt" "$order"
flags="${RUSTFLAGS:-} -C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs $pie_flags"
case $host in
    x86_64-*) flags="$flags -C link-arg=-Wl,--symbol-ordering-file=$order -C link-arg=-Wl,--no-warn-symbol-ordering" ;;
esac
build() { # TARGET_DIR EXTRA_RUSTFLAGS [cargo args]
    local dir=$1 extra=$2
    shift 2
    CARGO_TARGET_DIR=$dir CARGO_PROFILE_RELEASE_OPT_LEVEL=s LIBSECCOMP_LINK_TYPE=static \
        LIBSECCOMP_LIB_PATH=$libdir RUSTFLAGS="$flags $extra" \
        cargo build --release -p bulkhead --target "$host" "$@" >&2
}

if [ "$pgo" = 1 ]; then
    # Profile-guided: an instrumented build runs containers (as root), and
    # the real build lays out and optimizes the code by what ran: the start
    # path's functions end up side by side, the rest in .text.unlikely.
    [ "$(id -u)" = 0 ] || { echo "build-release.sh --pgo: the training run needs root" >&2; exit 1; }
    profdata=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
    if [ ! -x "$profdata" ]; then
        rustup component add llvm-tools >&2 || true
    fi
    [ -x "$profdata" ] || {
        echo "build-release.sh --pgo: no $profdata (rustup component add llvm-tools)" >&2
        exit 1
    }
    pgo_dir=$target/pgo
    rm -rf "$pgo_dir/raw"
    mkdir -p "$pgo_dir/raw"
    build "$pgo_dir/target" "-Cprofile-generate=$pgo_dir/raw --cfg bulkhead_pgo" "$@"
    "$repo/scripts/pgo-train.sh" "$pgo_dir/target/$host/release/bulkhead" "$pgo_dir/raw" >&2
    "$profdata" merge -o "$pgo_dir/bulkhead.profdata" "$pgo_dir/raw"/*.profraw >&2
    build "$target" "-Cprofile-use=$pgo_dir/bulkhead.profdata" "$@"
else
    build "$target" "" "$@"
fi
echo "$target/$host/release/bulkhead"
