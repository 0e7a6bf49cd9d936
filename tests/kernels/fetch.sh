#!/usr/bin/env bash
# fetch.sh SUITE...: each suite's current cloud kernel from Debian's archive, cached under
# build/kernels/SUITE/ (vmlinuz, the veth/inet_diag/tcp_diag modules uncompressed, abi). The ABI is
# never pinned: it is read from the suite's meta package linux-image-cloud-amd64 (its Depends names
# linux-image-<abi>-cloud-amd64). A suite already cached is not fetched again (KERNELS_REFRESH=1 does).
# apt runs on a private sources list, lists and cache under build/kernels/apt: the host's apt state
# and /etc/apt are not touched.
set -euo pipefail
cd "$(dirname "$0")/../.."
K=$PWD/build/kernels
MIRROR=${KERNELS_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
MODULES=(veth inet_diag tcp_diag)

fetch() { # fetch SUITE
	local suite=$1 dir=$K/$1 apt=$K/apt/$1 meta abi deb x f m p pkgs
	if [ -z "${KERNELS_REFRESH:-}" ] && [ -s "$dir/abi" ] && [ -f "$dir/vmlinuz" ]; then
		echo "kernels: $suite: $(cat "$dir/abi") (cached)"
		return 0
	fi
	rm -rf "$apt" && mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/etc"
	echo "deb [signed-by=$KEYRING] $MIRROR $suite main" >"$apt/etc/sources.list"
	local opts=(-o Dir::Etc::SourceList="$apt/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt" -o Dir::Cache::archives="$apt/archives"
		-o APT::Get::List-Cleanup=0 -o Debug::NoLocking=1 -o APT::Sandbox::User=root -qq)
	apt-get "${opts[@]}" update
	# the meta package's Depends: linux-image-<abi>-cloud-amd64 (= version)
	meta=$(apt-cache "${opts[@]}" show linux-image-cloud-amd64 | sed -n 's/^Depends: //p' | tr ',' '\n' |
		grep -o 'linux-image-[^ ]*-cloud-amd64' | sort -V | tail -1)
	[ -n "$meta" ] || { echo "kernels: $suite: no linux-image-cloud-amd64 in $MIRROR" >&2; return 1; }
	abi=${meta#linux-image-}
	abi=${abi%-cloud-amd64}
	echo "kernels: $suite: fetching $meta"
	# from 7.x on the image package is split: vmlinuz in linux-binary-*, the modules in linux-modules-*
	pkgs=("$meta")
	for p in linux-binary-$abi-cloud-amd64 linux-modules-$abi-cloud-amd64; do
		apt-cache "${opts[@]}" show "$p" >/dev/null 2>&1 && pkgs+=("$p")
	done
	(cd "$apt/archives" && apt-get "${opts[@]}" download "${pkgs[@]}")
	x=$apt/x
	rm -rf "$x"
	for deb in "$apt/archives/"*.deb; do dpkg-deb -x "$deb" "$x"; done
	rm -rf "$dir.new" && mkdir -p "$dir.new"
	# bullseye and bookworm: /boot/vmlinuz-*, /lib/modules; later: /usr/lib/modules/<version>/vmlinuz
	f=$(find "$x/boot" "$x/usr/lib/modules" -maxdepth 2 -name 'vmlinuz*' 2>/dev/null | head -1 || true)
	[ -n "$f" ] || { echo "kernels: $suite: no vmlinuz in ${pkgs[*]}" >&2; return 1; }
	cp "$f" "$dir.new/vmlinuz"
	for m in "${MODULES[@]}"; do
		f=$(find "$x/lib/modules" "$x/usr/lib/modules" -name "$m.ko" -o -name "$m.ko.xz" 2>/dev/null | head -1 || true)
		[ -n "$f" ] || { echo "kernels: $suite: no $m module in ${pkgs[*]}" >&2; return 1; }
		case $f in
		*.xz) xz -dc "$f" >"$dir.new/$m.ko" ;;
		*) cp "$f" "$dir.new/$m.ko" ;;
		esac
	done
	echo "$abi" >"$dir.new/abi"
	rm -rf "$x" "$apt/archives/"*.deb "$dir" && mv "$dir.new" "$dir"
	echo "kernels: $suite: $abi"
}

for s in "$@"; do fetch "$s"; done
