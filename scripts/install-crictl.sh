#!/usr/bin/env bash
# scripts/install-crictl.sh — builds crictl (sigs.k8s.io/cri-tools) into a cache directory when it is
# missing; Debian 12 does not package it. tests/cri.rs looks for it there (or on PATH).
#
# It needs Go >= 1.21 (on Debian 12 golang-1.23 is taken from bookworm-backports, see
# scripts/lib/go-toolchain.sh) and the Go module proxy; that go fetches the toolchain named by
# GOTOOLCHAIN from the proxy. It never fails the caller: when crictl cannot be built it prints why and
# exits 0, and the CRI tests then skip with their own reason.
#
# Environment:
#   CRICTL_DIR        where crictl goes (default /var/cache/bulkhead-test/crictl)
#   CRICTL_VERSION    cri-tools version (default v1.34.0)
#   CRICTL_TIMEOUT    seconds allowed for the whole build (default 900)
#   GO, GOTOOLCHAIN   go binary (default `go`) and toolchain (default go1.27.3)
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${CRICTL_DIR:-/var/cache/bulkhead-test/crictl}
version=${CRICTL_VERSION:-v1.34.0}
limit=${CRICTL_TIMEOUT:-900}

skip() {
    echo "install-crictl.sh: crictl not installed: $*" >&2
    exit 0
}

if [ -x "$dir/crictl" ]; then
    echo "install-crictl.sh: $dir/crictl present ($("$dir/crictl" --version 2>/dev/null))"
    exit 0
fi
mkdir -p "$dir" || skip "cannot create $dir"

# shellcheck source=scripts/lib/go-toolchain.sh
. "$repo/scripts/lib/go-toolchain.sh"
find_go "$dir" || skip "no Go >= 1.21 (set GO=/path/to/go; on Debian 12 golang-1.23-go from bookworm-backports could not be fetched, see $dir/go-backports/apt.log)"

# A private GOPATH and cache: nothing of root's own Go setup is used or changed. They are removed
# after a successful build; the binary is all the tests need.
work=$dir/build
mkdir -p "$work"
echo "install-crictl.sh: building crictl $version with $GO (toolchain ${GOTOOLCHAIN:-go1.27.3}), limit ${limit}s"
if ! GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3} GOPATH=$work/gopath GOCACHE=$work/cache GOFLAGS=-modcacherw \
    GOBIN=$dir CGO_ENABLED=0 timeout "$limit" "$GO" install "sigs.k8s.io/cri-tools/cmd/crictl@$version" \
    >"$dir/build.log" 2>&1; then
    tail -5 "$dir/build.log" >&2
    rm -rf "$work"
    skip "go install sigs.k8s.io/cri-tools/cmd/crictl@$version failed or timed out after ${limit}s (log: $dir/build.log)"
fi
rm -rf "$work"
echo "install-crictl.sh: installed $("$dir/crictl" --version 2>/dev/null) at $dir/crictl"
