#!/usr/bin/env bash
# Fuzzes bulkhead's pure parsers with cargo-fuzz (libFuzzer); see docs/fuzzing.md.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Builds every target in fuzz/ and runs each (or only the TARGETs named) for
# SECONDS (default 30). Needs a nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`); without them it says why and exits 0, so it
# can sit in any pipeline. Exits 1 if a target crashed: the input is in
# fuzz/artifacts/<target>/ and the log in fuzz/logs/<target>.log.
set -uo pipefail

cd "$(dirname "$0")/.."

secs="${1:-30}"
[ $# -gt 0 ] && shift
case "$secs" in
    '' | *[!0-9]*)
        echo "fuzz.sh: SECONDS must be a number, got '$secs'" >&2
        exit 2
        ;;
esac

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: skipped: no nightly toolchain (rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: skipped: cargo-fuzz is not installed (cargo install cargo-fuzz)"
    exit 0
fi

cd fuzz
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

echo "fuzz.sh: building ${#targets[@]} targets"
if ! cargo +nightly fuzz build; then
    echo "fuzz.sh: build failed" >&2
    exit 1
fi

mkdir -p logs
# Leaks inside libseccomp itself are not ours to fix (see lsan.supp).
export LSAN_OPTIONS="suppressions=$PWD/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    dict=()
    [ -f "dicts/$t.dict" ] && dict=(-dict="$PWD/dicts/$t.dict")
    echo "fuzz.sh: $t for ${secs}s"
    # -rss_limit_mb: libseccomp and serde on deep JSON are the big users;
    # -timeout: one input taking more than 10 s is a hang worth a report.
    if cargo +nightly fuzz run "$t" -- \
        -max_total_time="$secs" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 "${dict[@]}" \
        >"logs/$t.log" 2>&1; then
        grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "logs/$t.log" |
            sed "s/^/    /"
    else
        echo "fuzz.sh: $t FAILED: see fuzz/logs/$t.log and fuzz/artifacts/$t/" >&2
        grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "logs/$t.log" | head -5 >&2
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: no crashes in ${#targets[@]} targets (${secs}s each)"
