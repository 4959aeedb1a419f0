#!/usr/bin/env bash
# Installs the Debian packages the test suite needs (idempotent): only the
# missing ones are installed, and `apt-get update` runs only if something is
# missing.
set -euo pipefail

PACKAGES=(
    busybox-static
    libseccomp-dev
    systemd
    dbus
    runc
    crun
    podman
    conmon
    containerd
    uidmap
    slirp4netns
    passt
    jq
    iproute2
    nftables
    curl
    fuse-overlayfs
    containernetworking-plugins
    docker.io
    skopeo
    umoci
    # protoc: the k8s-cri dev-dependency (tests/cri.rs) compiles the CRI protobufs.
    protobuf-compiler
    # tests/escapes.rs: where the protective re-execution happens.
    strace
)

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: must run as root (apt-get install)" >&2
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done

# crictl is not needed: tests/cri.rs speaks CRI itself. scripts/install-crictl.sh
# builds it for manual use where the Go module proxy is reachable.

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-deps.sh: all ${#PACKAGES[@]} packages present"
    exit 0
fi

echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Packages with services (docker.io, containerd) must not start system-wide
# daemons: the tests run private instances. Deny service starts during the
# install unless the host already has a policy of its own.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
