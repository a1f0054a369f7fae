#!/bin/sh
# make trace [EXAMPLE=05_accept]: the demo (or one example) under strace -f, each event the
# lab logged beside the line strace printed for the same system call. The pairing itself is
# in src/trace/ (`socklab trace`), shared with tests/strace.rs.
set -eu
cd "$(dirname "$0")/.."

if ! command -v strace >/dev/null 2>&1; then
    echo "make trace needs strace, which is not installed." >&2
    echo "Install it with:  sudo apt-get install strace   (Debian, Ubuntu; Fedora: sudo dnf install strace)" >&2
    exit 1
fi

exe=target/release/socklab
if [ ! -x "$exe" ]; then
    echo "$exe is missing: run make build first." >&2
    exit 1
fi

mkdir -p target/trace
if [ $# -gt 0 ] && [ -n "$1" ]; then
    exec "$exe" trace --example "$1" --log "target/trace/$1.strace"
else
    exec "$exe" trace --log target/trace/demo.strace
fi
