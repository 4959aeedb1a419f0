#!/usr/bin/env bash
# Runs the opencontainers runtime-tools validation suite (validation/*) against an OCI runtime.
#
#   tests/oci-validation/run.sh [--runtime PATH] [--compare PATH] [--only REGEX] [--timeout SECS]
#
# --runtime PATH   runtime under test (default: $RUNTIME, else target/debug/bulkhead, built if missing)
# --compare PATH   also run the suite against PATH (e.g. /usr/bin/runc) and list the validation programs
#                  that pass there but not with the runtime under test, with their failing TAP lines
# --only REGEX     run only the validation programs whose name matches REGEX (grep -E)
# --timeout SECS   per-program timeout (default 120; the program is then killed and counted as failed)
#
# Environment:
#   OCI_RUNTIME_TOOLS_SRC  a runtime-tools source tree or git repository (must contain validation/ and
#                          vendor/; Debian only packages the library part, see README.md)
#   OCI_VALIDATION_CACHE   build cache (default: <repo>/target/oci-validation)
#
# Must run as root. Installs busybox-static with apt when missing, and a Go toolchain new enough for
# runtime-tools (go.mod says 1.21) from Debian's bookworm-backports, unpacked into the cache without
# touching the system's apt configuration. Each runtime runs with a private --root (through a small
# wrapper), and every container left in it is force-deleted at the end.
#
# Prints a table (program → TAP ok / not ok / skip counts, exit status, verdict, seconds) and, last,
# `N passed, M failed, K skipped` counting validation programs of the runtime under test.
# Exit status: with --compare, 0 iff nothing passes with the reference runtime that fails with the
# runtime under test; without it, 0 iff no program failed. 2 on harness errors.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${OCI_VALIDATION_CACHE:-$repo/target/oci-validation}
timeout_s=120
only=""
runtime=${RUNTIME:-}
compare=""

die() { echo "oci-validation: $*" >&2; exit 2; }
log() { echo "oci-validation: $*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --runtime) runtime=$2; shift 2 ;;
        --runtime=*) runtime=${1#*=}; shift ;;
        --compare) compare=$2; shift 2 ;;
        --compare=*) compare=${1#*=}; shift ;;
        --only) only=$2; shift 2 ;;
        --only=*) only=${1#*=}; shift ;;
        --timeout) timeout_s=$2; shift 2 ;;
        --timeout=*) timeout_s=${1#*=}; shift ;;
        -h|--help) sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

[ "$(id -u)" -eq 0 ] || die "must run as root"
[ "$(uname -m)" = x86_64 ] || die "only amd64 is wired up (rootfs-amd64.tar.gz)"
start_all=$(date +%s)
mkdir -p "$cache"

# ---------------------------------------------------------------------------------------------
# 1. Debian packages.
need_pkgs=()
for pkg in busybox-static git ca-certificates; do
    if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]; then
        need_pkgs+=("$pkg")
    fi
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    log "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >&2
fi

# ---------------------------------------------------------------------------------------------
# 2. The runtime-tools source (validation/, cmd/runtimetest, vendor/).
src=$cache/src
find_source() {
    local c
    for c in "${OCI_RUNTIME_TOOLS_SRC:-}" /work/.mirror/opencontainers+runtime-tools/repo; do
        [ -n "$c" ] && [ -e "$c" ] && { echo "$c"; return 0; }
    done
    return 1
}
if origin=$(find_source); then
    if git -C "$origin" rev-parse --verify -q HEAD^{commit} >/dev/null 2>&1; then
        rev=$(git -C "$origin" rev-parse HEAD)
    else
        rev="dir:$(cd "$origin" && pwd)"
    fi
    if [ ! -f "$src/.oci-validation-rev" ] || [ "$(cat "$src/.oci-validation-rev")" != "$rev" ]; then
        log "taking runtime-tools from $origin ($rev)"
        rm -rf "$src" && mkdir -p "$src"
        if [ "${rev#dir:}" = "$rev" ]; then
            git -C "$origin" archive HEAD | tar -x -C "$src"
        else
            cp -a "$origin/." "$src/"
        fi
        echo "$rev" > "$src/.oci-validation-rev"
    fi
elif [ -f "$src/.oci-validation-rev" ]; then
    rev=$(cat "$src/.oci-validation-rev")
else
    die "no runtime-tools source: set OCI_RUNTIME_TOOLS_SRC to a checkout of opencontainers/runtime-tools
(Debian's golang-github-opencontainers-runtime-tools-dev ships only the library packages, without
validation/, cmd/runtimetest or the vendored tap-go; see tests/oci-validation/README.md)"
fi
[ -d "$src/validation/util" ] && [ -d "$src/vendor" ] || die "$src lacks validation/ or vendor/"

# ---------------------------------------------------------------------------------------------
# 3. A Go toolchain as new as the source's go.mod asks for.
want_go=$(awk '$1=="go"{print $2; exit}' "$src/go.mod")
go_ok() { # go_ok GOBIN → the toolchain at GOBIN is >= want_go
    local v
    v=$("$1" env GOVERSION 2>/dev/null) || return 1
    v=${v#go}
    [ "$(printf '%s\n%s\n' "$want_go" "$v" | sort -V | head -1)" = "$want_go" ]
}
gobin=""
if command -v go >/dev/null && go_ok "$(command -v go)"; then
    gobin=$(command -v go)
else
    for d in "$cache"/go/usr/lib/go-*/bin/go; do
        [ -x "$d" ] && go_ok "$d" && gobin=$d
    done
fi
if [ -z "$gobin" ]; then
    log "fetching a Go >= $want_go from bookworm-backports (unpacked into $cache/go, nothing installed)"
    apt_dir=$cache/apt
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/debs"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main" \
        > "$apt_dir/sources.list"
    apto=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::archives=$apt_dir/debs")
    apt-get "${apto[@]}" update -q >&2
    ver=""
    for v in 1.23 1.22 1.21 1.24; do
        if apt-cache "${apto[@]}" show "golang-$v-go" >/dev/null 2>&1; then ver=$v; break; fi
    done
    [ -n "$ver" ] || die "no golang-1.2x-go in bookworm-backports"
    (cd "$apt_dir/debs" && rm -f ./*.deb && apt-get "${apto[@]}" download "golang-$ver-go" "golang-$ver-src" >&2)
    rm -rf "$cache/go" && mkdir -p "$cache/go"
    for deb in "$apt_dir"/debs/*.deb; do dpkg -x "$deb" "$cache/go"; done
    gobin=$cache/go/usr/lib/go-$ver/bin/go
    go_ok "$gobin" || die "unpacked $gobin does not work"
fi
goroot=$("$gobin" env GOROOT)

# ---------------------------------------------------------------------------------------------
# 4. Build runtimetest (static: the busybox rootfs has no libc), oci-runtime-tool and validation/*.
bin=$cache/bin
stamp="$rev $("$gobin" env GOVERSION)"
if [ ! -f "$bin/.stamp" ] || [ "$(cat "$bin/.stamp")" != "$stamp" ]; then
    log "building runtime-tools validation programs with $("$gobin" env GOVERSION)"
    rm -rf "$bin" && mkdir -p "$bin/validation"
    (
        cd "$src"
        export GOROOT=$goroot GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0 \
            GOCACHE=$cache/gocache GOPATH=$cache/gopath
        "$gobin" build -tags "netgo osusergo" -o "$bin/runtimetest" ./cmd/runtimetest
        "$gobin" build -o "$bin/oci-runtime-tool" ./cmd/oci-runtime-tool
        "$gobin" build -o "$bin/validation/" ./validation/...
    ) >&2
    echo "$stamp" > "$bin/.stamp"
fi

# ---------------------------------------------------------------------------------------------
# 5. The rootfs: busybox-static and its applet links, like the upstream rootfs-amd64.tar.gz.
rootfs_tar=$cache/rootfs-amd64.tar.gz
if [ ! -f "$rootfs_tar" ] || [ /bin/busybox -nt "$rootfs_tar" ] || [ "${BASH_SOURCE[0]}" -nt "$rootfs_tar" ]; then
    log "building $rootfs_tar from /bin/busybox"
    rf=$(mktemp -d /tmp/oci-validation-rootfs.XXXXXX)
    mkdir -p "$rf"/{bin,dev,proc,sys,etc,tmp,root}
    cp /bin/busybox "$rf/bin/busybox"
    for a in $("$rf/bin/busybox" --list); do
        [ -e "$rf/bin/$a" ] || ln -s busybox "$rf/bin/$a"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nbin:x:1:1:bin:/bin:/bin/false\ndaemon:x:2:2:daemon:/sbin:/bin/false\nnobody:x:65534:65534:nobody:/var/empty:/bin/false\n' \
        > "$rf/etc/passwd"
    printf 'root:x:0:\nbin:x:1:\ndaemon:x:2:\nusers:x:100:\nnogroup:x:65533:\nnobody:x:65534:\n' > "$rf/etc/group"
    chmod 1777 "$rf/tmp"
    tar --numeric-owner --owner=0 --group=0 -C "$rf" -czf "$rootfs_tar.new" .
    mv "$rootfs_tar.new" "$rootfs_tar"
    rm -rf "$rf"
fi

# ---------------------------------------------------------------------------------------------
# 6. Run.
if [ -z "$runtime" ]; then
    runtime=$repo/target/debug/bulkhead
    if [ ! -x "$runtime" ]; then
        log "building bulkhead (cargo build -p bulkhead)"
        (cd "$repo" && cargo build -q -p bulkhead) >&2
    fi
fi
runtime=$(command -v "$runtime" || true)
[ -n "$runtime" ] && [ -x "$runtime" ] || die "runtime not executable"
if [ -n "$compare" ]; then
    compare=$(command -v "$compare" || true)
    [ -n "$compare" ] && [ -x "$compare" ] || die "--compare runtime not executable"
fi

mapfile -t programs < <(cd "$bin/validation" && ls | { if [ -n "$only" ]; then grep -E -- "$only" || true; else cat; fi; })
[ "${#programs[@]}" -gt 0 ] || die "no validation program matches '$only'"

tmp_dirs=()
wrappers=()
cleanup() {
    local w id
    for w in "${wrappers[@]}"; do
        [ -x "$w" ] || continue
        for id in $("$w" list -q 2>/dev/null); do
            "$w" delete -f "$id" >/dev/null 2>&1 || true
        done
    done
    for d in "${tmp_dirs[@]}"; do
        unmount_under "$d"
        rm -rf --one-file-system "$d" 2>/dev/null || true
    done
    cleanup_cgroups
}
# unmount_under DIR: a runtime that runs a container without a mount namespace (linux_ns_itype)
# mounts /proc, /dev... of the bundle in the host's mount namespace and leaves them there (runc does).
unmount_under() {
    awk -v p="$1/" 'index($5 "/", p) == 1 { print $5 }' /proc/self/mountinfo | sort -r -u |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
}
# The cgroup validations use cgroupsPath /cgrouptest and testdir/cgrouptest/container; runtimes remove
# only the leaf. Remove (empty) ones that did not exist when the harness started.
cgroup_hier=()
for h in /sys/fs/cgroup /sys/fs/cgroup/*/; do
    h=${h%/}
    [ -f "$h/cgroup.procs" ] && cgroup_hier+=("$h")
done
cgroup_pre=" "
for h in "${cgroup_hier[@]}"; do
    for c in cgrouptest testdir; do [ -d "$h/$c" ] && cgroup_pre+="$h/$c "; done
done
cleanup_cgroups() {
    local h c
    for h in "${cgroup_hier[@]}"; do
        for c in cgrouptest testdir; do
            [ -d "$h/$c" ] || continue
            case "$cgroup_pre" in *" $h/$c "*) continue ;; esac
            find "$h/$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
        done
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# parse_tap FILE → "ok notok skip orphan_errors plan"
#   orphan_errors: YAML diagnostics with an "error" key that belong to no test point; several
#   validations (hooks, prestart, poststop...) report their failure only this way under a "1..0" plan.
parse_tap() {
    awk '
        BEGIN { ok = 0; nok = 0; skip = 0; orphan = 0; plan = "-"; attached = 0; inyaml = 0 }
        inyaml {
            if ($0 ~ /^  \.\.\.$/) { inyaml = 0; attached = 0; next }
            if (!attached && $0 ~ /^    "error": /) orphan++
            next
        }
        /^  ---$/ { inyaml = 1; next }
        /^ok / { if ($0 ~ /# [Ss][Kk][Ii][Pp]/) skip++; else ok++; attached = 1; next }
        /^not ok / { if ($0 ~ /# [Ss][Kk][Ii][Pp]/) skip++; else nok++; attached = 1; next }
        /^1\.\.[0-9]+/ { plan = $1; next }
        { attached = 0 }
        END { print ok, nok, skip, orphan, plan }
    ' "$1"
}

# run_suite LABEL RUNTIME → fills $cache/runs/LABEL/{NAME.tap,NAME.err,NAME.res}
run_suite() {
    local label=$1 rt=$2
    local dir=$cache/runs/$label
    rm -rf "$dir" && mkdir -p "$dir/out"
    local state tmpd
    state=$(mktemp -d "/tmp/oci-validation-$label-root.XXXXXX")
    tmpd=$(mktemp -d "/tmp/oci-validation-$label-tmp.XXXXXX")
    tmp_dirs+=("$tmpd" "$state")
    # A wrapper pins a private --root, so the containers of this run can all be found and removed.
    printf '#!/bin/sh\nexec %q --root %q "$@"\n' "$rt" "$state" > "$dir/runtime"
    chmod +x "$dir/runtime"
    wrappers+=("$dir/runtime")
    ln -sf "$rootfs_tar" "$dir/rootfs-amd64.tar.gz"
    cp "$bin/runtimetest" "$dir/runtimetest"
    log "running ${#programs[@]} validation programs against $rt ($label)"
    local name t0 t1 rc
    for name in "${programs[@]}"; do
        t0=$(date +%s%N)
        set +e
        (cd "$dir" && RUNTIME=$dir/runtime TMPDIR=$tmpd timeout -k 10 "$timeout_s" "$bin/validation/$name" \
            > "out/$name.tap" 2> "out/$name.err" < /dev/null)
        rc=$?
        set -e
        t1=$(date +%s%N)
        local ok nok skip orphan plan verdict
        read -r ok nok skip orphan plan < <(parse_tap "$dir/out/$name.tap")
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then verdict=timeout
        elif [ "$rc" -eq 0 ] && [ ! -s "$dir/out/$name.tap" ]; then
            # the *_fail programs print nothing and exit 0 when the runtime rejected the config
            verdict=pass
        elif [ "$rc" -ne 0 ] || [ "$nok" -gt 0 ] || [ "$orphan" -gt 0 ] || [ "$plan" = "-" ]; then verdict=fail
        elif [ "$ok" -eq 0 ] && [ "$skip" -gt 0 ]; then verdict=skip
        else verdict=pass
        fi
        printf '%s %s %s %s %s %s %s %s\n' "$name" "$ok" "$nok" "$skip" "$orphan" "$rc" "$verdict" \
            "$(( (t1 - t0) / 1000000 ))" > "$dir/out/$name.res"
        # Remove whatever the program left in this runtime's root before the next one starts.
        for id in $("$dir/runtime" list -q 2>/dev/null); do
            "$dir/runtime" delete -f "$id" >/dev/null 2>&1 || true
        done
        unmount_under "$tmpd"
        cleanup_cgroups
    done
}

print_table() { # print_table LABEL
    local dir=$cache/runs/$1 name
    printf '%-34s %5s %6s %5s %4s %4s %-7s %7s\n' program ok notok skip err rc verdict seconds
    for name in "${programs[@]}"; do
        read -r n ok nok skip orphan rc verdict ms < "$dir/out/$name.res"
        printf '%-34s %5s %6s %5s %4s %4s %-7s %7s\n' "$n" "$ok" "$nok" "$skip" "$orphan" "$rc" "$verdict" \
            "$(printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)))"
    done
}
verdict_of() { awk '{print $7}' "$cache/runs/$1/out/$2.res"; }
counts() { # counts LABEL → "P F S"
    local p=0 f=0 s=0 name v
    for name in "${programs[@]}"; do
        v=$(verdict_of "$1" "$name")
        case "$v" in pass) p=$((p + 1)) ;; skip) s=$((s + 1)) ;; *) f=$((f + 1)) ;; esac
    done
    echo "$p $f $s"
}
# failing_lines LABEL NAME → the TAP lines and stderr that explain a failure
failing_lines() {
    local dir=$cache/runs/$1/out
    awk '
        /^not ok / { print "    " $0; last = "notok"; next }
        /^ok / { last = "ok"; next }
        /^  ---$/ { y = 1; buf = ""; err = 0; next }
        y && /^  \.\.\.$/ {
            y = 0
            if (last == "notok" || (last != "ok" && err)) printf "%s", buf
            last = "other"; next
        }
        y { buf = buf "    " $0 "\n"; if ($0 ~ /^    "error": /) err = 1; next }
        { last = "other" }
    ' "$dir/$2.tap" | head -40
    if [ -s "$dir/$2.err" ]; then
        echo "    stderr:"
        head -15 "$dir/$2.err" | sed 's/^/      /'
    fi
}

label_of() { basename "$1" | tr -c 'A-Za-z0-9_.\n-' _; }
rt_label=$(label_of "$runtime")
run_suite "$rt_label" "$runtime"
if [ -n "$compare" ]; then
    ref_label=ref-$(label_of "$compare")
    [ "$ref_label" != "$rt_label" ] || ref_label=ref-$ref_label
    run_suite "$ref_label" "$compare"
fi
cleanup
trap - EXIT

echo
echo "== runtime-tools $rev"
echo "== $runtime"
print_table "$rt_label"
status=0
if [ -n "$compare" ]; then
    echo
    echo "== reference: $compare"
    print_table "$ref_label"
    read -r rp rf rs < <(counts "$ref_label")
    echo "reference: $rp passed, $rf failed, $rs skipped"
    echo
    echo "== passing with $(basename "$compare") but not with $(basename "$runtime"):"
    regressions=0
    for name in "${programs[@]}"; do
        rv=$(verdict_of "$ref_label" "$name")
        tv=$(verdict_of "$rt_label" "$name")
        if [ "$rv" = pass ] && [ "$tv" != pass ]; then
            regressions=$((regressions + 1))
            echo "-- $name ($tv)"
            failing_lines "$rt_label" "$name"
        fi
    done
    [ "$regressions" -eq 0 ] && echo "   (none)"
    echo
    echo "== test points ok with $(basename "$compare") but not ok with $(basename "$runtime") (programs failing on both):"
    for name in "${programs[@]}"; do
        rv=$(verdict_of "$ref_label" "$name")
        tv=$(verdict_of "$rt_label" "$name")
        [ "$rv" != pass ] && [ "$tv" != pass ] || continue
        # compare test descriptions without their numbers
        comm -23 <(sed -n 's/^ok [0-9]* - //p' "$cache/runs/$ref_label/out/$name.tap" | sort -u) \
                 <(sed -n 's/^ok [0-9]* - //p' "$cache/runs/$rt_label/out/$name.tap" | sort -u) \
            > "$cache/runs/lost.txt"
        if [ -s "$cache/runs/lost.txt" ]; then
            echo "   $name: $(wc -l < "$cache/runs/lost.txt") test point(s), e.g.:"
            head -5 "$cache/runs/lost.txt" | sed 's/^/      /'
        fi
    done
    echo
    echo "== passing with $(basename "$runtime") but not with $(basename "$compare"):"
    for name in "${programs[@]}"; do
        rv=$(verdict_of "$ref_label" "$name")
        tv=$(verdict_of "$rt_label" "$name")
        [ "$tv" = pass ] && [ "$rv" != pass ] && echo "   $name"
    done
    [ "$regressions" -eq 0 ] || status=1
fi
read -r tp tf ts < <(counts "$rt_label")
[ -n "$compare" ] || [ "$tf" -eq 0 ] || status=1
echo
echo "logs: $cache/runs/<runtime>/out/<program>.{tap,err}; total $(( $(date +%s) - start_all ))s"
echo "$tp passed, $tf failed, $ts skipped"
exit "$status"
