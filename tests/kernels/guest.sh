#!/usr/bin/env bash
# guest.sh: the guest's root file system, made once and cached: a minbase Debian 12 (bookworm, the
# suite hostlo is built on, so build/hostlo and the test builds run unchanged) with what the
# integration suites use, packed as an uncompressed initramfs, build/kernels/guest-root.cpio.
# Delete that file (or build/kernels) to make it again.
set -euo pipefail
cd "$(dirname "$0")/../.."
K=$PWD/build/kernels
ROOT=$K/guest-root
MIRROR=${KERNELS_MIRROR:-http://deb.debian.org/debian}
PKGS=(
	iproute2 util-linux procps kmod jq bpftool python3     # ip, setpriv, nsenter, pgrep, JSON checks
	libbpf1 libjson-c5 libelf1 zlib1g libmicrohttpd12      # build/hostlo's libraries
	dnsmasq-base bind9-dnsutils                            # transparency.sh: a real resolver, dig
	redis-server redis-tools                               # host side: a real service on 127.0.0.1 only
	busybox-static                                         # poweroff -f
)

[ -s "$K/guest-root.cpio" ] && { echo "kernels: guest root: cached ($(du -h "$K/guest-root.cpio" | cut -f1))"; exit 0; }
mkdir -p "$K"
if [ ! -x "$ROOT/usr/bin/bash" ]; then
	echo "kernels: guest root: debootstrap --variant=minbase bookworm (once)"
	rm -rf "$ROOT.new"
	debootstrap --variant=minbase --include="$(IFS=,; echo "${PKGS[*]}")" bookworm "$ROOT.new" "$MIRROR" \
		>"$K/debootstrap.log" 2>&1 || { tail -20 "$K/debootstrap.log"; exit 1; }
	# what the guest never reads: apt's lists and cache, documentation, translations
	rm -rf "$ROOT.new"/var/cache/apt/* "$ROOT.new"/var/lib/apt/lists/* "$ROOT.new"/usr/share/{doc,man,info,locale}/*
	rm -rf "$ROOT" && mv "$ROOT.new" "$ROOT"
fi
echo "kernels: guest root: packing $K/guest-root.cpio"
(cd "$ROOT" && find . | cpio -o -H newc --quiet) >"$K/guest-root.cpio.new"
mv "$K/guest-root.cpio.new" "$K/guest-root.cpio"
echo "kernels: guest root: $(du -h "$K/guest-root.cpio" | cut -f1)"
