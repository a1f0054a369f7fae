#!/bin/sh
# The optional tools some tests and features use, and what is missing here.
#   scripts/tools.sh missing        the Debian packages of the tools not installed, one line
#   scripts/tools.sh deps           install them (root), or print the command that would
#   scripts/tools.sh summary LOG    after `make test`: what was skipped, why, and how to fix it
set -eu

# tool:package, for every tool a test or a feature looks for.
TOOLS="strace:strace ip:iproute2 ss:iproute2 iptables-nft:iptables nft:nftables tcpdump:tcpdump python3:python3 setpriv:util-linux"

# As socklab finds a tool: on PATH, then in the sbin directories a user's PATH may lack.
have() {
    command -v "$1" >/dev/null 2>&1 && return 0
    for d in /usr/local/sbin /usr/sbin /sbin; do
        [ -x "$d/$1" ] && return 0
    done
    return 1
}

missing() {
    pkgs=""
    for tp in $TOOLS; do
        tool=${tp%%:*}
        pkg=${tp#*:}
        if ! have "$tool"; then
            case " $pkgs " in *" $pkg "*) ;; *) pkgs="$pkgs $pkg" ;; esac
        fi
    done
    echo "${pkgs# }"
}

deps() {
    pkgs=$(missing)
    if [ -z "$pkgs" ]; then
        echo "every optional tool is installed"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "missing: $pkgs (Debian package names; install their equivalents)"
        return 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing: $pkgs"
        echo "install them with:  sudo apt-get install -y $pkgs"
        return 1
    fi
    echo "installing $pkgs"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
}

summary() {
    log=$1
    echo
    if [ ! -s "$log" ]; then
        echo "make test: no test skipped anything."
        return 0
    fi
    n=$(wc -l <"$log")
    echo "make test: $n skips (a test, or a part of it, that did not run here), by reason:"
    # reason <TAB> count <TAB> first tests
    sort -t "$(printf '\t')" -k2,2 -k1,1 "$log" | awk -F '\t' '
        $2 != last { if (NR > 1) flush(); last = $2; n = 0; names = "" }
        { n++; if (n <= 3) names = names (n > 1 ? ", " : "") $1 }
        END { flush() }
        function flush() {
            more = n > 3 ? sprintf(" and %d more", n - 3) : ""
            printf "  %3d  %s\n       (%s%s)\n", n, last, names, more
        }'
    pkgs=$(missing)
    if [ -n "$pkgs" ]; then
        echo "Missing tools: \`make deps\` installs them (apt-get install -y $pkgs)."
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "Not root: \`sudo make test\` runs the privileged tests too."
    fi
    echo "The full list: $log"
}

case "${1:-}" in
missing) missing ;;
deps) deps ;;
summary) summary "${2:?summary needs the skip log}" ;;
*)
    echo "usage: scripts/tools.sh missing|deps|summary LOG" >&2
    exit 2
    ;;
esac
