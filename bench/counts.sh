#!/usr/bin/env bash
# bench/counts.sh: load-independent counts of one `run` of /bin/true and one
# `exec true`, for bulkhead (one or more binaries) and crun, on the same busybox
# bundle with the `runc spec` config: page faults, peak RSS, system calls, and
# instructions (user, kernel) where the CPU exposes a PMU (else CPU time, which
# moves with load). Counts do not move with the machine's load, so they are the
# figures to compare while changing the start path; wall and CPU time ratios
# come from bench/run.sh.
#
#   sudo bench/counts.sh [-n N] [BULKHEAD_BINARY...]   (default: the scripts/build-release.sh binary)
#
# Each figure is the median of N runs (default 5). crun runs in a private mount
# namespace that hides the unified hierarchy's controllers (as
# bench/crun-hybrid-wrap.sh does), set up once outside the measured command, so
# its figures carry no wrapper cost. Needs perf (linux-perf), strace, busybox.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
n=5
[ "${1:-}" = -n ] && { n=$2; shift 2; }
# default: the release build (scripts/build-release.sh), else a plain release build
rel=$repo/target/$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')/release/bulkhead
[ -x "$rel" ] || rel=$repo/target/release/bulkhead
[ $# -gt 0 ] || set -- "$rel"
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for b in "$@"; do [ -x "$b" ] || { echo "no $b" >&2; exit 1; }; done
for t in perf strace busybox crun; do
    command -v "$t" >/dev/null || { echo "missing $t (apt-get install linux-perf strace busybox-static crun)" >&2; exit 1; }
done

if [ "${COUNTS_INNER_CRUN:-}" = 1 ]; then
    work=$COUNTS_WORK
else
    work=$(mktemp -d /tmp/bulkhead-counts.XXXXXX)
    chmod 755 "$work"
    cleanup() {
        for r in "$work"/st/root-*; do
            [ -d "$r" ] || continue
            for c in "$r"/ct*; do
                [ -e "$c" ] || continue
                if [ "${r##*/}" = root-crun ]; then
                    "$here/crun-hybrid-wrap.sh" crun --root "$r" delete -f "${c##*/}"
                else
                    "$(cat "$r.bin")" --root "$r" delete -f "${c##*/}"
                fi >/dev/null 2>&1 || true
            done
        done
        umount -l "$work/st" 2>/dev/null || true
        rm -rf "$work"
    }
    trap cleanup EXIT
    # state roots on a tmpfs, as in bench/run.sh (see docs/benchmark.md)
    mkdir -p "$work/st"
    mount -t tmpfs -o mode=0755 bulkhead-counts "$work/st"

    rootfs=$work/rootfs
    mkdir -p "$rootfs"/{bin,proc,sys,dev,tmp,etc}
    cp "$(command -v busybox)" "$rootfs/bin/busybox"
    for a in $("$rootfs/bin/busybox" --list); do [ -e "$rootfs/bin/$a" ] || ln -s busybox "$rootfs/bin/$a"; done
    mkdir -p "$work/tmpl"
    (cd "$work/tmpl" && crun spec)
    bundle() { # $1 dir, $2.. args
        mkdir -p "$1"
        python3 -c 'import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["root"]["path"] = sys.argv[3]
c["process"]["args"] = sys.argv[4:]
json.dump(c, open(sys.argv[2], "w"))' "$work/tmpl/config.json" "$1/config.json" "$rootfs" "${@:2}"
    }
    bundle "$work/true" /bin/true
    bundle "$work/sleep" sleep 600
fi

median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }

# measure NAME VERB RT...: one line of medians for VERB (run: `run` of /bin/true;
# exec: `exec true` into the container ct-sleep) with the runtime command RT...
i=0
measure() {
    local name=$1 verb=$2; shift 2
    local iu=() ik=() pf=() rss=() args k
    next() {
        i=$((i + 1))
        if [ "$verb" = run ]; then args=(run --bundle "$work/true" "ct$i"); else args=(exec ct-sleep /bin/true); fi
    }
    for k in $(seq "$n"); do
        next; "$@" "${args[@]}" >/dev/null   # warm the page cache (and bulkhead's seccomp cache)
        next; perf stat -x, -o "$work/perf" -e "$events" -- "$@" "${args[@]}" >/dev/null
        if [ "$pmu" = 1 ]; then
            iu+=("$(awk -F, '$3 ~ /^instructions:u/ {print $1}' "$work/perf")")
            ik+=("$(awk -F, '$3 ~ /^instructions:k/ {print $1}' "$work/perf")")
        else # task-clock in ms (with decimals): kept in µs
            iu+=("$(awk -F, '$3 ~ /^task-clock/ {printf "%d", $1 * 1000}' "$work/perf")")
            ik+=(-)
        fi
        pf+=("$(awk -F, '$3 ~ /^page-faults/ {print $1}' "$work/perf")")
        next; /usr/bin/time -f %M -o "$work/rss" "$@" "${args[@]}" >/dev/null
        rss+=("$(tail -1 "$work/rss")")
    done
    next; strace -f -o "$work/strace" "$@" "${args[@]}" >/dev/null
    printf '%-34s %-4s %11s %11s %6s %7s %8s\n' "$name" "$verb" \
        "$(printf '%s\n' "${iu[@]}" | median)" "$([ "$pmu" = 1 ] && printf '%s\n' "${ik[@]}" | median || echo -)" \
        "$(printf '%s\n' "${pf[@]}" | median)" "$(printf '%s\n' "${rss[@]}" | median)" \
        "$(awk '$2 !~ /^(\+\+\+|---|<\.\.\.)/ {t++} END {print t}' "$work/strace")"
}

both() { # NAME RT...
    local name=$1; shift
    measure "$name" run "$@"
    "$@" run -d --bundle "$work/sleep" ct-sleep >/dev/null
    measure "$name" exec "$@"
    "$@" delete -f ct-sleep >/dev/null
}

# instructions need a PMU (not in every VM); without one, CPU time (task-clock)
if perf stat -x, -e instructions:u -o /dev/stdout true 2>/dev/null | grep -q '^[0-9]'; then
    pmu=1 events=instructions:u,instructions:k,page-faults
else
    pmu=0 events=task-clock,page-faults
fi

if [ "${COUNTS_INNER_CRUN:-}" = 1 ]; then
    # inside the private mount namespace: crun, then done
    both crun crun --root "$work/st/root-crun"
    exit 0
fi

if [ "$pmu" = 1 ]; then
    printf '%-34s %-4s %11s %11s %6s %7s %8s\n' runtime verb "instr:u" "instr:k" faults "RSS KiB" syscalls
else
    echo "(no PMU: the first column is CPU time in µs, which moves with load)"
    printf '%-34s %-4s %11s %11s %6s %7s %8s\n' runtime verb "cpu µs" "" faults "RSS KiB" syscalls
fi
for b in "$@"; do
    r=$work/st/root-$(echo "$b" | md5sum | cut -c1-8)
    echo "$b" >"$r.bin"
    both "${b#"$repo"/}" "$b" --root "$r"
done
# crun: the whole measurement runs in one private mount namespace in which the
# unified hierarchy's controller list reads empty (set up once, not measured)
COUNTS_INNER_CRUN=1 COUNTS_WORK=$work unshare --mount --propagation slave /bin/sh -c \
    'c=/sys/fs/cgroup/unified/cgroup.controllers; [ -z "$(cat $c 2>/dev/null)" ] || mount --bind /dev/null $c; exec "$@"' \
    sh "$0" -n "$n"
