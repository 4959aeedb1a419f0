#!/usr/bin/env bash
# scripts/build-release.sh: the release build of `bulkhead` that the benchmark
# measures and that README's install section uses: one static-PIE
# executable (glibc, libseccomp and libdbus linked in), so that no `ld.so`
# runs and no shared library is mapped, while the binary keeps full ASLR;
# optimized for size, as code pages are mapped 64 KiB or more at a time and
# the start path touches code all over the binary; its relative relocations
# packed (DT_RELR: 4 KB instead of a 320 KB table read at every start). Why each choice:
# docs/benchmark.md, "The release build".
#
#   scripts/build-release.sh [--no-pie] [extra cargo args]     prints the binary's path
#
# --no-pie: a fixed-address executable, about 100 page faults and 5 % CPU less
# per start, at the price of the binary's own code not being randomised. Not
# the default: a runtime handles input from containers.
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
pie_flags=""
if [ "${1:-}" = --no-pie ]; then
    pie_flags="-C relocation-model=static"
    shift
fi
cd "$repo"
CARGO_PROFILE_RELEASE_OPT_LEVEL=s LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=$libdir \
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs $pie_flags" \
    cargo build --release -p bulkhead --target "$host" "$@" >&2
target=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
echo "$target/$host/release/bulkhead"
