#!/usr/bin/env bash
# bench/syscalls.sh: count the system calls of one `run` of /bin/true and one
# `exec true`, for bulkhead and crun (and runc), on the same busybox bundle
# with the `runc spec` config. System call counts do not depend on load, so
# this is the figure to compare while changing the start path (see
# docs/benchmark.md, "What the start path does").
#
#   sudo bench/syscalls.sh [BULKHEAD_BINARY]    (default: the scripts/build-release.sh binary)
#
# crun runs through bench/crun-hybrid-wrap.sh on hybrid-cgroup hosts; only the
# calls from crun's own execve on are counted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# default: the release build (scripts/build-release.sh), else a plain release build
rel=$repo/target/$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')/release/bulkhead
[ -x "$rel" ] || rel=$repo/target/release/bulkhead
BH=${1:-$rel}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[ -x "$BH" ] || { echo "no $BH (cargo build --release -p bulkhead)" >&2; exit 1; }
for t in strace busybox; do
    command -v "$t" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "$([ "$t" = busybox ] && echo busybox-static || echo "$t")" >&2
done

work=$(mktemp -d /tmp/bulkhead-syscalls.XXXXXX)
chmod 755 "$work"
trap 'for r in "$work"/root-*; do [ -d "$r" ] || continue; for c in "$r"/sc*; do [ -e "$c" ] || continue;
        case $r in *bulkhead) "$BH" --root "$r" delete -f "${c##*/}";; *crun) "$here/crun-hybrid-wrap.sh" crun --root "$r" delete -f "${c##*/}";;
        *runc) runc --root "$r" delete -f "${c##*/}";; esac >/dev/null 2>&1 || true; done; done; rm -rf "$work"' EXIT

rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,proc,sys,dev,tmp,etc}
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in $("$rootfs/bin/busybox" --list); do [ -e "$rootfs/bin/$a" ] || ln -s busybox "$rootfs/bin/$a"; done
mkdir -p "$work/b"
(cd "$work/b" && runc spec)
bundle() { # $1 dir, $2.. args
    local d=$1; shift
    mkdir -p "$d"
    python3 - "$work/b/config.json" "$d/config.json" "$rootfs" "$@" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["root"]["path"] = sys.argv[3]
c["process"]["args"] = sys.argv[4:]
json.dump(c, open(sys.argv[2], "w"))
EOF
}
bundle "$work/true" /bin/true
bundle "$work/sleep" sleep 600

# count TRACE [FROM-PATTERN]: calls in an strace -f file, per process, from
# the line matching FROM-PATTERN on (default: all).
count() {
    awk -v pat="${2:-}" 'pat == "" || $0 ~ pat {on = 1} on && $2 !~ /^(\+\+\+|---|<\.\.\.)/ {n[$1]++; t++}
        END {printf "%d calls (", t; s = ""; for (p in n) {printf "%s%d", s, n[p]; s = " + "} print " per process)"}' "$1"
}

declare -A RT=([bulkhead]="$BH" [runc]="runc" [crun]="$here/crun-hybrid-wrap.sh crun")
for name in bulkhead crun runc; do
    first=${RT[$name]%% *}
    command -v "$first" >/dev/null || [ -x "$first" ] || { echo "$name: not installed, skipped"; continue; }
    pat=
    [ "$name" = crun ] && pat='execve\("[^"]*/crun"'
    r=$work/root-$name
    # shellcheck disable=SC2086
    ${RT[$name]} --root "$r" run --bundle "$work/true" sc0 >/dev/null 2>&1 || true # warm-up (seccomp cache, page cache)
    # shellcheck disable=SC2086
    strace -f -o "$work/$name.run" ${RT[$name]} --root "$r" run --bundle "$work/true" sc1 >/dev/null
    # shellcheck disable=SC2086
    ${RT[$name]} --root "$r" run -d --bundle "$work/sleep" sc2 >/dev/null
    # shellcheck disable=SC2086
    strace -f -o "$work/$name.exec" ${RT[$name]} --root "$r" exec sc2 /bin/true
    # shellcheck disable=SC2086
    ${RT[$name]} --root "$r" delete -f sc2 >/dev/null
    echo "$name run /bin/true: $(count "$work/$name.run" "$pat")"
    echo "$name exec true:     $(count "$work/$name.exec" "$pat")"
done
