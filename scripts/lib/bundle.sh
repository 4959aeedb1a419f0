# scripts/lib/bundle.sh: sourced by the scripts that run containers of their
# own (pgo-train.sh, layout/probe.sh).

# busybox_rootfs DIR: a root filesystem of static busybox and a few applets.
busybox_rootfs() {
    mkdir -p "$1"/{bin,proc,sys,dev,tmp,etc}
    cp "$(command -v busybox)" "$1/bin/busybox"
    local a
    for a in sh true sleep cat echo; do ln -sf busybox "$1/bin/$a"; done
}

# spec_bundle BULKHEAD DIR ROOTFS ROOT_READONLY ARGS...: a bundle in DIR with
# the config `bulkhead spec` writes, on ROOTFS, running ARGS without a
# terminal; ROOT_READONLY is true or false.
spec_bundle() {
    local bin=$1 dir=$2 rootfs=$3 ro=$4
    shift 4
    mkdir -p "$dir"
    "$bin" spec --bundle "$dir"
    python3 - "$dir/config.json" "$rootfs" "$ro" "$@" <<'PY'
import json, sys
path, root, ro, args = sys.argv[1], sys.argv[2], sys.argv[3] == "true", sys.argv[4:]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = args
c["root"] = {"path": root, "readonly": ro}
json.dump(c, open(path, "w"))
PY
}
