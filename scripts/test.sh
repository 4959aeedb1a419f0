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

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    echo "test.sh: cargo-nextest not found, using cargo test"
    cargo test --workspace --no-fail-fast "$@"
fi
