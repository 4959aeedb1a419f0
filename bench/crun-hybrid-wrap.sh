#!/bin/sh
# crun-hybrid-wrap.sh PROGRAM [ARGS...]
#
# crun 1.8.x refuses hybrid cgroup hosts whose cgroup2 mount at
# /sys/fs/cgroup/unified has controllers ("cgroups in hybrid mode not
# supported, drop all controllers from cgroupv2"). This wrapper changes only
# the wrapped program's view: it runs PROGRAM in a private mount namespace
# (propagation slave) in which /dev/null is bound over
# /sys/fs/cgroup/unified/cgroup.controllers, so crun sees an empty list and
# runs in hybrid mode (same 9 v1 hierarchies + unified as runc). The host's
# mounts and cgroups are not changed.
#
# Its own cost (one unshare, one shell, one mount) is measured by the
# benchmark as `crun-hybrid-wrap.sh /bin/true` against `/bin/true` and
# subtracted in the report.
set -e
ctl=/sys/fs/cgroup/unified/cgroup.controllers
# (cgroupfs files report size 0, so read the content; the builtin `read`
# fails on an empty file or when the file is missing)
c=
[ -r "$ctl" ] && IFS= read -r c < "$ctl" || true
if [ -z "$c" ]; then
    exec "$@"
fi
exec unshare --mount --propagation slave /bin/sh -c \
    'mount --bind /dev/null "$0" && exec "$@"' "$ctl" "$@"
