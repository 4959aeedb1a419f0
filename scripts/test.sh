#!/usr/bin/env bash
# Builds and checks the workspace and runs the whole test suite.
# The conformance tests start real containers, so this must run as root.
# Set BULKHEAD_TEST_RUNTIME=/usr/bin/runc to run the suite against runc.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: must run as root: the tests create real containers" \
         "(namespaces, mounts, cgroups) and install packages" >&2
    exit 1
fi

cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

cargo build --workspace
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

status=0
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@" || status=$?
else
    echo "test.sh: cargo-nextest not found, using cargo test"
    cargo test --workspace --no-fail-fast "$@" || status=$?
fi

# A brief fuzz pass (10 targets x 6 s, plus the build): with a nightly
# toolchain and cargo-fuzz; otherwise fuzz.sh prints why it skips. The long
# run is `scripts/fuzz.sh 3600` (docs/fuzzing.md).
bash scripts/fuzz.sh "${BULKHEAD_CI_FUZZ_SECONDS:-6}" || status=1
exit "$status"
