#!/bin/bash
# scripts/conformance.sh — run opencontainers/runtime-tools' validation suite (TAP programs) against
# bulkhead and, for comparison, runc and crun. A local tool, not part of CI: it needs Go >= 1.21 and the
# network (or a local copy of runtime-tools). It skips with a reason (exit 0) when either is missing.
#
#   sudo scripts/conformance.sh                      # bulkhead (target/debug), runc, crun
#   RUNTIMES="bulkhead" TESTS="kill state" scripts/conformance.sh
#
# Environment:
#   GO            go binary to use (default: `go`; when it is older than 1.21, as Debian 12's 1.19 is, Go 1.23
#                 is taken from bookworm-backports into $OUT, without changing the system's apt sources)
#   RTT_SRC       a runtime-tools source tree to use instead of cloning
#   RTT_REV       commit to build (default: the one docs/conformance.md reports on)
#   RUNTIMES      space-separated names among: bulkhead runc crun (default: all found)
#   BULKHEAD      bulkhead binary (default: target/debug/bulkhead, built if missing)
#   TESTS         space-separated validation test names (default: all)
#   OUT           output directory (default: target/conformance); summary in $OUT/summary.md
#   TEST_TIMEOUT  seconds per test program (default: 300)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
RTT_REV=${RTT_REV:-5e639034dcdc2422164e3d7d76a737e2fb451a67}
OUT=${OUT:-$repo/target/conformance}
TEST_TIMEOUT=${TEST_TIMEOUT:-300}
GO=${GO:-go}

skip() {
    echo "conformance: SKIP: $*" >&2
    exit 0
}

[ "$(id -u)" = 0 ] || skip "the validation suite creates real containers and needs root"

# runtime-tools needs Go >= 1.21 (it uses the standard "slices" package).
# shellcheck source=scripts/lib/go-toolchain.sh
. "$repo/scripts/lib/go-toolchain.sh"

check_go() {
    go_ok && return 0
    echo "conformance: Go ${GO} missing or older than 1.21; trying bookworm-backports" >&2
    backports_go "$OUT" || skip "no Go >= 1.21 (set GO=/path/to/go; on Debian 12: golang-1.23-go from bookworm-backports)"
}
export GOTOOLCHAIN=local GOFLAGS=-mod=vendor

mkdir -p "$OUT"
src=${RTT_SRC:-$OUT/runtime-tools}
if [ -z "${RTT_SRC:-}" ]; then
    if [ ! -d "$src/.git" ]; then
        check_go
        rm -rf "$src"
        git clone --quiet https://github.com/opencontainers/runtime-tools "$src" 2>"$OUT/clone.log" ||
            skip "cannot clone runtime-tools (no network?): $(tail -1 "$OUT/clone.log")"
    fi
    git -C "$src" checkout --quiet "$RTT_REV" 2>/dev/null ||
        { git -C "$src" fetch --quiet origin && git -C "$src" checkout --quiet "$RTT_REV"; } ||
        skip "cannot check out runtime-tools $RTT_REV"
fi
[ -d "$src/validation" ] || skip "$src is not a runtime-tools tree (no validation/)"

# Built once per tree (REBUILD=1 forces it): relinking the test programs while another run uses them is racy.
built=1
[ -x "$src/runtimetest" ] || built=
for f in "$src"/validation/*/*.go; do
    case $f in */util/*) continue ;; esac
    [ -x "${f%.go}.t" ] || built=
done
if [ -n "${REBUILD:-}" ] || [ -z "$built" ]; then
    check_go
    echo "conformance: building runtime-tools in $src" >&2
    (cd "$src" && PATH="$(dirname "$(command -v "$GO")"):$PATH" make runtimetest validation-executables) \
        >"$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log" >&2; echo "conformance: build failed" >&2; exit 1; }
fi

# Runtimes. crun 1.8 refuses this project's hybrid-cgroup hosts unless its view of cgroup.controllers is
# emptied: bench/crun-hybrid-wrap.sh does that in a private mount namespace.
BULKHEAD=${BULKHEAD:-$repo/target/debug/bulkhead}
if [ ! -x "$BULKHEAD" ]; then
    (cd "$repo" && cargo build -p bulkhead) >&2
fi
wrapdir=$OUT/wrappers
mkdir -p "$wrapdir"
printf '#!/bin/sh\nexec %q "$@"\n' "$BULKHEAD" >"$wrapdir/bulkhead"
# crun 1.8 also refuses any ociVersion newer than it knows ("unknown version specified"), and runtime-tools
# writes its own spec version (1.3.0): the wrapper lowers it to 1.0.2 in the bundle before create/run.
cat >"$wrapdir/crun" <<EOF
#!/bin/bash
bundle=.; prev=
for a in "\$@"; do
    case \$prev in --bundle | -b) bundle=\$a ;; esac
    case \$a in --bundle=*) bundle=\${a#--bundle=} ;; esac
    prev=\$a
done
case " \$* " in
    *" create "* | *" run "*)
        [ -f "\$bundle/config.json" ] &&
            sed -i 's/"ociVersion": *"1\.[1-9][0-9.]*"/"ociVersion": "1.0.2"/' "\$bundle/config.json" ;;
esac
exec $(printf %q "$repo/bench/crun-hybrid-wrap.sh") /usr/bin/crun "\$@"
EOF
chmod +x "$wrapdir/bulkhead" "$wrapdir/crun"

if [ -z "${RUNTIMES:-}" ]; then
    RUNTIMES=bulkhead
    command -v runc >/dev/null 2>&1 && RUNTIMES="$RUNTIMES runc"
    [ -x /usr/bin/crun ] && RUNTIMES="$RUNTIMES crun"
fi

tests=()
if [ -n "${TESTS:-}" ]; then
    for t in $TESTS; do tests+=("$t"); done
else
    for f in "$src"/validation/*/*.go; do
        t=$(basename "$(dirname "$f")")
        [ "$t" = util ] || tests+=("$t")
    done
    mapfile -t tests < <(printf '%s\n' "${tests[@]}" | sort -u)
fi

# One result per (runtime, test): pass, fail N/M (failed of total TAP points), skip, or error (the
# program exited non-zero with no failed point, e.g. it could not create the container).
result() {
    local tap=$1 rc=$2 total notok skipped
    total=$(grep -cE '^(not )?ok ' "$tap" || true)
    notok=$(grep -E '^not ok ' "$tap" | grep -cvE '# (TODO|SKIP)' || true)
    skipped=$(grep -cE '^ok .*# SKIP' "$tap" || true)
    if [ "$notok" -gt 0 ]; then
        echo "fail $notok/$total"
    elif [ "$rc" -ne 0 ]; then
        echo "error (exit $rc)"
    elif [ "$total" -eq 0 ]; then
        # Lifecycle programs report a failed MUST as a YAML "error" diagnostic and no point; the *_fail
        # programs print nothing at all when the runtime correctly refused the config.
        if grep -q '"error":' "$tap"; then echo "fail (diagnostic)"; else echo "pass"; fi
    elif [ "$skipped" -eq "$total" ]; then
        echo "skip"
    else
        echo "pass ($total)"
    fi
}

declare -A res
for rt in $RUNTIMES; do
    case $rt in
        bulkhead | crun) cmd=$wrapdir/$rt ;;
        runc) cmd=$(command -v runc) ;;
        *) echo "conformance: unknown runtime $rt" >&2; exit 2 ;;
    esac
    mkdir -p "$OUT/$rt"
    for t in "${tests[@]}"; do
        prog=$src/validation/$t/$t.t
        [ -x "$prog" ] || { echo "conformance: no test $t" >&2; exit 2; }
        rc=0
        (cd "$src" && RUNTIME=$cmd timeout "$TEST_TIMEOUT" "$prog") \
            >"$OUT/$rt/$t.tap" 2>"$OUT/$rt/$t.stderr" </dev/null || rc=$?
        res[$rt,$t]=$(result "$OUT/$rt/$t.tap" "$rc")
        # Bundles are /tmp/ocitest*: a mount left on one after the program ended is the runtime's leak.
        leaked=$(awk '$5 ~ "^/tmp/ocitest" {print $5}' /proc/self/mountinfo)
        if [ -n "$leaked" ]; then
            res[$rt,$t]="${res[$rt,$t]}; left $(echo "$leaked" | wc -l) host mounts"
            echo "$leaked" | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
            echo "$leaked" | cut -d/ -f1-3 | sort -u | while read -r b; do rm -rf --one-file-system "$b"; done
        fi
        printf '%-10s %-40s %s\n' "$rt" "$t" "${res[$rt,$t]}" >&2
    done
done

{
    echo "# runtime-tools validation ($RTT_REV)"
    echo
    printf '| test |'; for rt in $RUNTIMES; do printf ' %s |' "$rt"; done; echo
    printf '|---|'; for _ in $RUNTIMES; do printf -- '---|'; done; echo
    for t in "${tests[@]}"; do
        printf '| %s |' "$t"
        for rt in $RUNTIMES; do printf ' %s |' "${res[$rt,$t]}"; done
        echo
    done
    echo
    for rt in $RUNTIMES; do
        p=0; n=0
        for t in "${tests[@]}"; do
            n=$((n + 1))
            case ${res[$rt,$t]} in pass* | skip) p=$((p + 1)) ;; esac
        done
        echo "$rt: $p of $n programs pass or skip"
    done
} >"$OUT/summary.md"
cat "$OUT/summary.md"
echo "conformance: TAP output in $OUT/<runtime>/<test>.tap" >&2
