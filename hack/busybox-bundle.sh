#!/usr/bin/env bash
# Builds an OCI bundle from the host's static busybox (never downloaded):
#   hack/busybox-bundle.sh DIR [ARGS...]
# DIR/rootfs gets /bin/busybox and a link per applet; DIR/config.json is
# `skiff-runtime spec` with no terminal and ARGS (default: sh -c 'echo ...').
set -euo pipefail
dir=${1:?usage: busybox-bundle.sh DIR [ARGS...]}
shift
runtime=${SKIFF_RUNTIME:-bin/skiff-runtime}
busybox=$(command -v busybox || true)
[ -x "$busybox" ] || { echo "busybox-bundle: /bin/busybox not found; install busybox-static (hack/deps.sh)" >&2; exit 1; }
rm -rf "$dir"
mkdir -p "$dir"/rootfs/{bin,proc,sys,dev,etc,tmp,root}
cp "$busybox" "$dir/rootfs/bin/busybox"
for a in $("$busybox" --list); do
	[ "$a" = busybox ] || ln -sf busybox "$dir/rootfs/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$dir/rootfs/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$dir/rootfs/etc/group"
chmod 1777 "$dir/rootfs/tmp"
"$runtime" spec --bundle "$dir"
if (($#)); then
	args='[]'
	for a in "$@"; do args=$(jq -c --arg a "$a" '. + [$a]' <<<"$args"); done
else
	args='["sh","-c","echo hello from a skiff-runtime container: $(hostname), pid $$; cat /proc/self/status | grep -E \"^(NSpid|CapEff)\""]'
fi
jq --argjson args "$args" '.process.terminal = false | .process.args = $args' "$dir/config.json" >"$dir/config.json.new"
mv "$dir/config.json.new" "$dir/config.json"
