#!/usr/bin/env bash
# bench/run.sh: paired benchmark of bulkhead against runc, crun and (with
# --with-youki) youki, on this machine, in one run. See docs/benchmark.md.
#
#   sudo bench/run.sh [--quick] [--with-youki] [-n N] [--rounds R]
#                     [--containers M] [--scenarios LIST] [--out DIR]
#                     [--no-build] [--no-install] [--keep-work]
#
# --quick: 5 iterations, 1 warm-up, 1 round of the concurrent test.
# Writes DIR/results-<date>.{md,json} and DIR/chart.svg (DIR: docs/bench).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
n=30 warmup=2 rounds=3 containers=50 timeout=30 rss_runs=10
with_youki=0 build=1 install=1 keep=0
scenarios=wrapper,run,split,exec,concurrent,rss
out="$repo/docs/bench"
cache=${BULKHEAD_BENCH_CACHE:-/var/cache/bulkhead-bench}

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case $1 in
        --quick) n=5 warmup=1 rounds=1 rss_runs=3 ;;
        --with-youki) with_youki=1 ;;
        -n) n=$2; shift ;;
        --warmup) warmup=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --containers) containers=$2; shift ;;
        --timeout) timeout=$2; shift ;;
        --scenarios) scenarios=$2; shift ;;
        --out) out=$2; shift ;;
        --no-build) build=0 ;;
        --no-install) install=0 ;;
        --keep-work) keep=1 ;;
        -h|--help) usage 0 ;;
        *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
    shift
done

[ "$(id -u)" = 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }
log() { printf '\n### %s\n' "$*" >&2; }

# ---------------------------------------------------------------- peers
apt_install() {
    [ "$install" = 1 ] || { echo "missing $*; rerun without --no-install" >&2; return 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2 ||
        { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2; }
}
need=()
command -v runc >/dev/null || need+=(runc)
command -v crun >/dev/null || need+=(crun)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v unshare >/dev/null || need+=(util-linux)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v gcc >/dev/null || need+=(gcc)
dpkg -s libseccomp-dev >/dev/null 2>&1 || need+=(libseccomp-dev)
if [ ${#need[@]} -gt 0 ]; then log "installing ${need[*]}"; apt_install "${need[@]}"; fi
RUNC=$(command -v runc)
CRUN=$(command -v crun)

# ---------------------------------------------------------------- bulkhead
# The release build as shipped: static PIE, profile-guided (scripts/build-release.sh --pgo).
host=$(rustc -vV | sed -n 's/^host: //p')
if [ "$build" = 1 ]; then
    log "building bulkhead (release: scripts/build-release.sh --pgo)"
    BH=$("$repo/scripts/build-release.sh" --pgo)
else
    target=$(cd "$repo" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' || echo "$repo/target")
    BH="$target/$host/release/bulkhead"
fi
[ -x "$BH" ] || { echo "no $BH (build it or drop --no-build)" >&2; exit 1; }

# ---------------------------------------------------------------- youki
YOUKI=
if [ "$with_youki" = 1 ]; then
    if [ -x "$cache/youki/bin/youki" ]; then
        YOUKI="$cache/youki/bin/youki"
    else
        log "installing youki 0.7.0 into $cache/youki (takes ~6 min)"
        mkdir -p "$cache"
        if apt_install libelf-dev libclang-dev libsystemd-dev libssl-dev zlib1g-dev &&
            cargo install youki --version 0.7.0 --locked \
                --features v1,v2,systemd,seccomp,cgroupsv2_devices \
                --root "$cache/youki" --target-dir "$cache/youki-target" >&2; then
            YOUKI="$cache/youki/bin/youki"
        else
            echo "warning: youki install failed; continuing without youki" >&2
        fi
    fi
fi

# ---------------------------------------------------------------- work dir
work=$(mktemp -d /tmp/bulkhead-bench.XXXXXX)
chmod 755 "$work"
bench_pid=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e +o pipefail
    if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
        kill -TERM "$bench_pid" 2>/dev/null || true   # it deletes its containers
        wait "$bench_pid" 2>/dev/null || true
    fi
    # belt and braces: anything still in the private state dirs
    if [ -d "$work/roots" ]; then
        for r in "$work"/roots/*; do
            [ -d "$r" ] || continue
            name=$(basename "$r")
            case $name in
                bulkhead*) rt=("$BH") ;;
                runc) rt=("$RUNC") ;;
                crun) rt=("$here/crun-hybrid-wrap.sh" "$CRUN") ;;
                youki) rt=("$YOUKI") ;;
                *) continue ;;
            esac
            for c in "$r"/bb*; do
                [ -e "$c" ] || continue
                timeout 20 "${rt[@]}" --root "$r" delete --force "$(basename "$c")" >/dev/null 2>&1 || true
            done
        done
    fi
    if [ -s "$work/tag" ]; then
        tag=$(cat "$work/tag")
        find /sys/fs/cgroup -mindepth 1 -maxdepth 6 -depth -type d -name "*bb$tag*" \
            -exec rmdir {} \; 2>/dev/null || true
    fi
    grep -F "$work" /proc/self/mountinfo | awk '{print $5}' | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null; done
    if [ "$keep" = 1 ]; then echo "work dir kept: $work" >&2; else rm -rf "$work"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- bundles
log "building the busybox bundle in $work"
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc,root,run,var}
chmod 1777 "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for a in $(/bin/busybox --list); do
    [ -e "$rootfs/bin/$a" ] || ln -s busybox "$rootfs/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"

# config.json: $1 = template dir (already holds config.json), $2 = out dir, $3.. = args
make_bundle() {
    local tmpl=$1 dir=$2; shift 2
    mkdir -p "$dir"
    python3 - "$tmpl/config.json" "$dir/config.json" "$rootfs" "$@" <<'EOF'
import json, sys
src, dst, rootfs, *argv = sys.argv[1:]
c = json.load(open(src))
c["process"]["args"] = argv
c["process"]["terminal"] = False
c["root"]["path"] = rootfs
json.dump(c, open(dst, "w"), indent=1)
EOF
}
mkdir -p "$work/tmpl-runc" "$work/tmpl-bulkhead"
(cd "$work/tmpl-runc" && "$RUNC" spec)
(cd "$work/tmpl-bulkhead" && "$BH" spec)
for t in runc bulkhead; do
    make_bundle "$work/tmpl-$t" "$work/b-$t-true" /bin/true
    make_bundle "$work/tmpl-$t" "$work/b-$t-sleep" sleep 3600
    make_bundle "$work/tmpl-$t" "$work/b-$t-tp" sleep 30
done
bundles=()
for k in true sleep tp; do
    bundles+=(--bundle "*:$k=$work/b-runc-$k" --bundle "bulkhead-hardened:$k=$work/b-bulkhead-$k")
done

# Every runtime's --root lives on one tmpfs, as /run does on most hosts. This
# host's root fs is ext4 without a journal: there each new inode scans past
# the inodes deleted in the last minutes (ext4 find_inode_bit/recently_deleted),
# a cost that follows the disk's recent churn, not the runtime.
mkdir -p "$work/roots"
mount -t tmpfs -o mode=0755 bulkhead-bench-roots "$work/roots"

# ---------------------------------------------------------------- crun's view
# crun 1.8 refuses hybrid-cgroup hosts (bench/crun-hybrid-wrap.sh says why).
# It runs in one private mount namespace, made here once and kept by a bind
# mount of its nsfs file, in which /dev/null hides unified/cgroup.controllers;
# each crun call enters it through mntns-exec, a program of four system calls
# without a C library, whose cost (about 0.1 ms) is measured and subtracted.
# The shell wrapper costs some 3 ms of CPU per call, and subtracting that from
# every sample was the larger error (docs/benchmark.md).
ctl=/sys/fs/cgroup/unified/cgroup.controllers
crun_rt="crun=$CRUN" wrapper=()
if [ -n "$(cat "$ctl" 2>/dev/null)" ]; then
    crun_rt="crun=wrap:$CRUN"
    if [ "$(uname -m)" = x86_64 ]; then
        mkdir -p "$work/ns"
        mount -t tmpfs -o mode=0700 bulkhead-bench-ns "$work/ns"
        mount --make-private "$work/ns"
        : >"$work/ns/mnt"
        unshare --mount="$work/ns/mnt" --propagation slave true
        nsenter --mount="$work/ns/mnt" mount --bind /dev/null "$ctl"
        gcc -O2 -static -nostdlib -fno-stack-protector -fno-pie -no-pie \
            -DNS_PATH="\"$work/ns/mnt\"" -o "$work/mntns-exec" "$here/mntns-exec.c"
        [ -z "$("$work/mntns-exec" /bin/cat "$ctl")" ] || { echo "mntns-exec: $ctl still has controllers" >&2; exit 1; }
        wrapper=(--wrapper "$work/mntns-exec")
    else
        wrapper=(--wrapper "$here/crun-hybrid-wrap.sh")
    fi
fi

# ---------------------------------------------------------------- run
runtimes=(--runtime "bulkhead=$BH" --runtime "bulkhead-hardened=$BH"
          --runtime "runc=$RUNC" --runtime "$crun_rt")
binaries=(--binary "bulkhead=$BH" --binary "runc=$RUNC" --binary "crun=$CRUN")
versions=(--version "bulkhead=$("$BH" --version 2>&1 | sed -n 1p) ($(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
          --version "runc=$("$RUNC" --version 2>&1 | sed -n 1p)"
          --version "crun=$("$CRUN" --version 2>&1 | sed -n 1p)")
if [ -n "$YOUKI" ]; then
    runtimes+=(--runtime "youki=$YOUKI")
    binaries+=(--binary "youki=$YOUKI")
    versions+=(--version "youki=$("$YOUKI" --version 2>&1 | sed -n 1p)")
fi

date=$(date -u +%Y-%m-%d)
mkdir -p "$out"
json="$out/results-$date.json"
log "measuring (n=$n, warm-up=$warmup, rounds=$rounds, containers=$containers); load: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$here/bench.py" --workdir "$work" "${wrapper[@]}" \
    -n "$n" --warmup "$warmup" --rounds "$rounds" --containers "$containers" \
    --timeout "$timeout" --scenarios "$scenarios" --rss-runs "$rss_runs" --json "$json" --tag-file "$work/tag" \
    "${runtimes[@]}" "${bundles[@]}" "${binaries[@]}" "${versions[@]}" &
bench_pid=$!
wait "$bench_pid" || { rc=$?; bench_pid=; echo "bench.py failed ($rc)" >&2; exit "$rc"; }
bench_pid=
log "report"
python3 "$here/report.py" "$json" --md "$out/results-$date.md" --svg "$out/chart.svg"
echo "results: $out/results-$date.md, $json, $out/chart.svg" >&2
