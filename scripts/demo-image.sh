#!/usr/bin/env bash
# Builds the README's demo image locally, with no registry and no container
# tool: an OCI image of the host's busybox-static binary (apt busybox-static,
# installed by scripts/install-deps.sh) with a tiny entrypoint, /demo, that
# shows what a container sees from inside. Two layers: busybox and its
# applet links, then /demo and /etc. The build is reproducible (fixed
# owners, order and times), so the same busybox gives the same digests.
#
#   scripts/demo-image.sh [OUT]      # OUT: demo.tar (an OCI archive, the
#                                    # default) or a directory (an OCI layout)
#   sudo bulkhead sandbox --image demo.tar
set -euo pipefail

out=${1:-demo.tar}
busybox=/bin/busybox
if [ ! -x "$busybox" ]; then
    echo "demo-image.sh: $busybox is missing: apt-get install busybox-static" >&2
    exit 1
fi
if ldd "$busybox" >/dev/null 2>&1; then
    echo "demo-image.sh: $busybox is dynamically linked; the image needs busybox-static" >&2
    exit 1
fi
file_info=$("$busybox" 2>&1 | sed -n 1p || true)
if [ -e "$out" ]; then
    echo "demo-image.sh: $out exists; remove it or pick another name" >&2
    exit 1
fi
case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) arch=$(uname -m) ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/l1/bin" "$work/l2/etc" "$work/layout/blobs/sha256"

# Layer 1: busybox and a link per applet (to /bin/busybox, wherever the
# applet lives).
cp "$busybox" "$work/l1/bin/busybox"
chmod 0755 "$work/l1/bin/busybox"
"$busybox" --list-full | while read -r applet; do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$work/l1/$(dirname "$applet")"
    ln -sf /bin/busybox "$work/l1/$applet"
done
mkdir -p "$work/l1/tmp" "$work/l1/root" "$work/l1/proc" "$work/l1/sys" "$work/l1/dev"
chmod 1777 "$work/l1/tmp"
chmod 0700 "$work/l1/root"

# Layer 2: the entrypoint and the few files of /etc a shell wants.
cat >"$work/l2/demo" <<'EOF'
#!/bin/sh
echo "== a bulkhead sandbox running the demo image (busybox on overlayfs)"
echo "user:        $(id)"
echo "uid_map:     $(tr -s ' ' </proc/self/uid_map)  (container root is an unprivileged host id)"
echo "/bin/busybox owned by $(stat -c %u:%g /bin/busybox) inside (an idmapped image layer)"
grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | sed 's/^/status:      /'
echo "hostname:    $(hostname)"
echo "processes:   $(ls -d /proc/[0-9]* | wc -l) visible"
echo "network:     $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
if touch /.written 2>/dev/null; then
    echo "root fs:     writable: changes go to this container's own upper layer"
else
    echo "root fs:     read-only"
fi
touch /tmp/x && echo "/tmp:        writable"
cat /etc/motd
EOF
chmod 0755 "$work/l2/demo"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$work/l2/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$work/l2/etc/group"
printf 'This image was built by scripts/demo-image.sh from the host'"'"'s busybox-static.\n' >"$work/l2/etc/motd"
chmod 0644 "$work/l2/etc/"*

blob() { # FILE -> sha256 hex, and the file moved into the layout's blobs
    local hex
    hex=$(sha256sum "$1" | cut -d' ' -f1)
    mv "$1" "$work/layout/blobs/sha256/$hex"
    echo "$hex"
}

layers=() diff_ids=()
for l in l1 l2; do
    tar -C "$work/$l" --sort=name --owner=0 --group=0 --numeric-owner \
        --mtime=@0 --format=gnu -cf "$work/$l.tar" .
    diff_ids+=("sha256:$(sha256sum "$work/$l.tar" | cut -d' ' -f1)")
    gzip -n -9 "$work/$l.tar"
    size=$(stat -c %s "$work/$l.tar.gz")
    layers+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$(blob "$work/$l.tar.gz")\",\"size\":$size}")
done

join() { local IFS=,; echo "$*"; }
ids=$(printf '"%s",' "${diff_ids[@]}")
cat >"$work/config.json" <<EOF
{"architecture":"$arch","os":"linux","config":{"Cmd":["/demo"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","HOME=/root"],"WorkingDir":"/","Labels":{"org.opencontainers.image.title":"bulkhead demo"}},"rootfs":{"type":"layers","diff_ids":[${ids%,}]},"history":[{"created_by":"scripts/demo-image.sh: busybox-static"},{"created_by":"scripts/demo-image.sh: /demo, /etc"}]}
EOF
config_size=$(stat -c %s "$work/config.json")
config=$(blob "$work/config.json")
cat >"$work/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config","size":$config_size},"layers":[$(join "${layers[@]}")]}
EOF
manifest_size=$(stat -c %s "$work/manifest.json")
manifest=$(blob "$work/manifest.json")
cat >"$work/layout/index.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest","size":$manifest_size,"annotations":{"org.opencontainers.image.ref.name":"bulkhead-demo:latest"}}]}
EOF
echo '{"imageLayoutVersion":"1.0.0"}' >"$work/layout/oci-layout"

case "$out" in
    *.tar)
        tar -C "$work/layout" --sort=name --owner=0 --group=0 --numeric-owner \
            --mtime=@0 --format=gnu -cf "$out" .
        echo "demo-image.sh: OCI archive $out (image sha256:$config, busybox: ${file_info%% (*})"
        ;;
    *)
        mkdir -p "$(dirname "$out")"
        cp -a "$work/layout" "$out"
        echo "demo-image.sh: OCI layout $out (image sha256:$config, busybox: ${file_info%% (*})"
        ;;
esac
