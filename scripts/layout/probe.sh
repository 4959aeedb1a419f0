#!/usr/bin/env bash
# scripts/layout/probe.sh: regenerate scripts/layout/hot-symbols.txt, the
# order in which the release build lays out functions (see order.py and
# docs/benchmark.md, "Code layout"). Run after `scripts/build-release.sh
# --pgo`, whose two binaries it uses: the instrumented one runs the
# benchmark's verbs (`scripts/pgo-train.sh --core`) to tell which Rust
# functions they run, the release one runs them once more from a cold page
# cache to tell which pages of the code without a profile (std, glibc,
# libseccomp) they read. Root only; for those few seconds the root disk's
# read-ahead is 0 (each page a process touches is then read alone) and the
# page cache is dropped; both are restored.
#
#   sudo scripts/layout/probe.sh [OUT]
#
# Then build again (`scripts/build-release.sh --pgo`); once more to converge.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$here/hot-symbols.txt}
[ "$(id -u)" = 0 ] || { echo "probe.sh: run as root" >&2; exit 1; }
for t in busybox python3 readelf nm findmnt lsblk; do
    command -v "$t" >/dev/null || { echo "probe.sh: needs $t" >&2; exit 1; }
done
host=$(rustc -vV | sed -n 's/^host: //p')
llvm_profdata=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
[ -x "$llvm_profdata" ] || { echo "probe.sh: no $llvm_profdata (rustup component add llvm-tools)" >&2; exit 1; }
target=$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin=$target/$host/release/bulkhead
instrumented=$target/pgo/target/$host/release/bulkhead
for b in "$bin" "$instrumented"; do
    [ -x "$b" ] || { echo "probe.sh: no $b (run scripts/build-release.sh --pgo first)" >&2; exit 1; }
done

# The copy lives on a disk-backed file system: the page cache of a tmpfs file
# is the file itself.
work=$(mktemp -d /var/tmp/bulkhead-layout.XXXXXX)
dev=$(findmnt -no SOURCE -T "$work")
disk=$(lsblk -no PKNAME "$dev" 2>/dev/null | head -1)
[ -n "$disk" ] || disk=$(basename "$dev")
ra=/sys/block/$disk/queue/read_ahead_kb
[ -w "$ra" ] || { echo "probe.sh: cannot set $ra ($work is on $dev)" >&2; exit 1; }
old_ra=$(cat "$ra")
state=$work/state
cleanup() {
    echo "$old_ra" >"$ra"
    for c in "$state"/*; do
        [ -e "$c/state.json" ] && "$work/bulkhead" --root "$state" delete -f "${c##*/}" >/dev/null 2>&1
    done
    umount "$state" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cp "$bin" "$work/bulkhead"
mkdir -p "$state" && mount -t tmpfs bulkhead-layout "$state"
. "$repo/scripts/lib/bundle.sh"
rootfs=$work/rootfs
busybox_rootfs "$rootfs"
spec_bundle "$work/bulkhead" "$work/true" "$rootfs" true /bin/true
spec_bundle "$work/bulkhead" "$work/sleep" "$rootfs" true sleep 600
rt() { "$work/bulkhead" --root "$state" "$@"; }

sync
echo 0 >"$ra"
echo 1 >/proc/sys/vm/drop_caches
rt run --bundle "$work/true" ct1 >/dev/null
rt create --bundle "$work/true" ct2
rt start ct2
until rt state ct2 | grep '"stopped"' >/dev/null; do sleep 0.01; done
rt delete ct2
rt run -d --bundle "$work/sleep" ct3 >/dev/null
rt exec ct3 /bin/true
rt state ct3 >/dev/null
rt kill ct3 KILL
rt delete -f ct3
python3 "$here/order.py" touched "$work/bulkhead" >"$work/pages"
echo "$old_ra" >"$ra"

mkdir -p "$work/raw"
"$repo/scripts/pgo-train.sh" --core "$instrumented" "$work/raw" >&2
"$llvm_profdata" merge -o "$work/core.profdata" "$work/raw"/*.profraw
"$llvm_profdata" merge --text -o "$work/profile.txt" "$work/core.profdata"
python3 "$here/order.py" symbols "$work/bulkhead" "$work/pages" "$work/profile.txt" >"$out"
echo "probe.sh: $(wc -w <"$work/pages") pages touched; $(wc -l <"$out") functions in $out" >&2
