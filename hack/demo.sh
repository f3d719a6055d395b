#!/bin/sh
# Runs a container the way a new user would: start skiffd (unless one is
# serving already), load the built-in default image (a busybox image made
# from the host's static busybox, no registry needed), and run it.
# Usage: hack/demo.sh [BINDIR]   (after `make build`; as root)
set -eu
BIN=${1:-bin}
SOCK=${SKIFF_SOCKET:-/run/skiff/skiffd.sock}
export SKIFF_SOCKET="$SOCK"

if ! "$BIN/skiff" version >/dev/null 2>&1; then
	mkdir -p /var/log
	echo "starting skiffd (log: /var/log/skiffd.log)"
	setsid "$BIN/skiffd" --socket "$SOCK" >>/var/log/skiffd.log 2>&1 < /dev/null &
	i=0
	until "$BIN/skiff" version >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt 100 ]; then
			echo "skiffd did not come up; see /var/log/skiffd.log" >&2
			tail -n 20 /var/log/skiffd.log >&2
			exit 1
		fi
		sleep 0.1
	done
fi

archive=$(mktemp /tmp/skiff-busybox.XXXXXX.tar)
trap 'rm -f "$archive"' EXIT
name=$(go run ./hack/mkimage -o "$archive")
"$BIN/skiff" load -i "$archive"
"$BIN/skiff" run --rm "$name" sh -c 'echo "Hello from a skiff container: $(hostname), $(uname -sr)"; cat /etc/os-release 2>/dev/null || busybox | head -1'
