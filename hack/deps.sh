#!/usr/bin/env bash
# Installs what skiff needs on a Debian 12 machine: the C library for seccomp,
# the host's static busybox (the built-in default image is made from it), and
# the peers the tests compare against (runc, crun). Idempotent; needs root.
set -euo pipefail
pkgs=(libseccomp-dev busybox-static runc crun jq iproute2 hyperfine bsdutils containerd podman docker-registry skopeo containernetworking-plugins iptables)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi
go mod download
