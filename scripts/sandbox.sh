#!/usr/bin/env bash
# Builds bulkhead and runs a command in its hardened sandbox, on the embedded
# default root filesystem (the host's own /usr, /etc and libraries, bound
# read-only): nothing is downloaded. Without arguments it runs a short demo
# that prints what the sandbox looks like from inside.
#
#   sudo scripts/sandbox.sh                      # the demo
#   sudo scripts/sandbox.sh -- sh -c 'id; ls /'  # your own command
#   sudo scripts/sandbox.sh --demo-image         # the demo image (built
#                                                # locally from busybox-static,
#                                                # see scripts/demo-image.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "sandbox.sh: run as root (sudo): the sandbox maps container root to an" \
         "unprivileged host id, which needs privilege to set up" >&2
    exit 1
fi
# The only build dependency beyond Rust: libseccomp's headers and library.
if [ "$(dpkg-query -W -f='${Status}' libseccomp-dev 2>/dev/null)" != "install ok installed" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libseccomp-dev pkg-config
fi
cargo build --release -q -p bulkhead

if [ "${1:-}" = "--demo-image" ]; then
    shift
    [ "${1:-}" = "--" ] && shift
    [ -e target/demo.tar ] || scripts/demo-image.sh target/demo.tar
    exec target/release/bulkhead sandbox --image target/demo.tar -- "$@"
fi
[ "${1:-}" = "--" ] && shift
if [ $# -eq 0 ]; then
    set -- sh -c '
echo "== inside a bulkhead sandbox"
echo "user:        $(id)"
echo "uid_map:     $(cat /proc/self/uid_map | tr -s " ")   (container root is an unprivileged host id)"
grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status | sed "s/^/status:      /"
echo "hostname:    $(hostname)"
echo "processes:   $(ls -d /proc/[0-9]* | wc -l) visible"
echo "network:     $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | tr "\n" " ")"
touch /usr/x 2>/dev/null && echo "root fs:     WRITABLE" || echo "root fs:     read-only"
touch /tmp/x && echo "/tmp:        writable tmpfs"
'
fi
exec target/release/bulkhead sandbox -- "$@"
