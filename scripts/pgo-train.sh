#!/usr/bin/env bash
# scripts/pgo-train.sh: the training run of a profile-guided build (called by
# `scripts/build-release.sh --pgo`; see docs/benchmark.md, "The release
# build"). Runs the OCI verbs of an instrumented bulkhead the way a container
# engine does, on a busybox bundle with the default (`bulkhead spec`) config:
# run, create/start/delete, exec, kill, state, list, events, update, pause,
# plus a few `sandbox` runs. Needs root and busybox.
#
#   scripts/pgo-train.sh [--core] INSTRUMENTED_BINARY PROFILE_DIR
#
# --core: only what the benchmark runs (run, create/start/delete, exec,
# state, kill, delete --force), a few times: the profile that tells
# scripts/layout/probe.sh which functions a container start runs.
#
# Profiles land in PROFILE_DIR, written by the runtime's processes on the host
# side, and in ROOTFS/PROFILE_DIR by those that write from inside the
# container (the init and exec'd processes after pivot_root): the script
# moves those next to the others before it returns.
set -euo pipefail
core=0
[ "${1:-}" = --core ] && { core=1; shift; }
bin=$1 raw=$2
[ "$(id -u)" = 0 ] || { echo "pgo-train.sh: run as root" >&2; exit 1; }
command -v busybox >/dev/null || { echo "pgo-train.sh: needs busybox (apt-get install busybox-static)" >&2; exit 1; }
mkdir -p "$raw"
work=$(mktemp -d /tmp/bulkhead-pgo.XXXXXX)
state=$work/state
cleanup() {
    for c in "$state"/*; do
        [ -e "$c/state.json" ] && "$bin" --root "$state" delete -f "${c##*/}" >/dev/null 2>&1
    done
    rm -rf "$work"
}
trap cleanup EXIT
export LLVM_PROFILE_FILE="$raw/bulkhead-%4m.profraw"

# the root stays writable: the init writes its profile there
. "$(dirname "$0")/lib/bundle.sh"
rootfs=$work/rootfs
busybox_rootfs "$rootfs"
mkdir -p "$rootfs$raw"
spec_bundle "$bin" "$work/true" "$rootfs" false /bin/true
spec_bundle "$bin" "$work/sleep" "$rootfs" false sleep 600
rt() { "$bin" --root "$state" "$@"; }

rounds=40
[ "$core" = 1 ] && rounds=3
for i in $(seq "$rounds"); do
    rt run --bundle "$work/true" "run$i" >/dev/null
    rt create --bundle "$work/true" "split$i"
    rt state "split$i" >/dev/null
    rt start "split$i"
    # not --force: a kill could cut the init's profile write short
    until rt state "split$i" | grep '"stopped"' >/dev/null; do sleep 0.01; done
    rt delete "split$i"
done
rt run -d --bundle "$work/sleep" long >/dev/null
for i in $(seq "$rounds"); do
    rt exec long /bin/true
    rt exec long sh -c 'echo x >/dev/null'
done
rt state long >/dev/null
for i in $(seq "$([ "$core" = 1 ] && echo 0 || echo 5)"); do
    rt list >/dev/null
    rt state long >/dev/null
    rt pause long && rt resume long
    rt update --pids-limit 100 long
    rt events --stats long >/dev/null
    rt kill long SIGCONT
done
rt kill long KILL
until rt state long | grep '"stopped"' >/dev/null; do sleep 0.01; done
rt delete long
# the hardened sandbox on the embedded rootfs (its read-only root keeps the
# init's own profile out: only the host side is recorded)
for i in $(seq "$([ "$core" = 1 ] && echo 0 || echo 5)"); do
    "$bin" --root "$state" sandbox -- /bin/true >/dev/null 2>&1 || true
done
# the in-container profiles carry the same pool names as the host's
for f in "$rootfs$raw"/*.profraw; do
    [ -e "$f" ] && mv "$f" "$raw/container-${f##*/}"
done
ls "$raw"/*.profraw >/dev/null
