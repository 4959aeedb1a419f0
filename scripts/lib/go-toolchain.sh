# scripts/lib/go-toolchain.sh — sourced by scripts that build Go tools (conformance.sh, install-crictl.sh).
#
# find_go DIR: sets GO to a go binary >= 1.21 and returns 0, or returns 1. It tries $GO (default `go`);
# on Debian 12, whose go is 1.19, it takes golang-1.23 from bookworm-backports with `apt-get download`
# into DIR/go-backports, through a private source list and cache, so the system's apt configuration is
# not changed. A go >= 1.21 can then fetch a newer toolchain from the module proxy (GOTOOLCHAIN).

go_ok() {
    local gover gomajor gominor
    command -v "$GO" >/dev/null 2>&1 || return 1
    gover=$("$GO" env GOVERSION 2>/dev/null | sed 's/^go//')
    gomajor=${gover%%.*}
    gominor=$(echo "$gover" | cut -d. -f2)
    [ "${gomajor:-0}" -gt 1 ] || { [ "${gomajor:-0}" -eq 1 ] && [ "${gominor:-0}" -ge 21 ]; }
}

backports_go() {
    local d=$1/go-backports
    grep -qs '^12' /etc/debian_version && command -v apt-get >/dev/null 2>&1 || return 1
    if [ ! -x "$d/root/usr/lib/go-1.23/bin/go" ]; then
        mkdir -p "$d/parts" "$d/lists/partial" "$d/cache/archives/partial" "$d/root"
        printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' \
            'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' >"$d/parts/bp.sources"
        local apt=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$d/parts"
            -o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d/cache")
        (cd "$d" && apt-get "${apt[@]}" -qq update && apt-get "${apt[@]}" -qq download golang-1.23-go golang-1.23-src) \
            >"$d/apt.log" 2>&1 || return 1
        for deb in "$d"/*.deb; do dpkg -x "$deb" "$d/root" || return 1; done
    fi
    GO=$d/root/usr/lib/go-1.23/bin/go
    go_ok
}

find_go() {
    GO=${GO:-go}
    go_ok && return 0
    backports_go "$1"
}
