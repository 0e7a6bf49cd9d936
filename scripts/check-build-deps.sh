#!/usr/bin/env bash
# check-build-deps.sh [REF]: proves that a plain `make`, on a Debian with none of the test packages,
# builds build/hostlo and installs only the build group of scripts/deps.sh and what those packages
# depend on. In a throwaway chroot: a minbase Debian (debootstrap, cached in build/chroot/base), a
# fresh copy of it for each run (build/chroot/run), a `git archive` of REF (default HEAD: commit first)
# in /src, make installed, `make` run as nobody (must name the missing packages in one line and stop),
# then as root (scripts/deps.sh build installs them), then again (installs nothing).
# Root, network (the host's Debian mirror) and a few minutes; not part of `make test`.
# SUITE=bookworm, MIRROR=<the host's> override; `make clean` drops the cache.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REF=${1:-HEAD}
SUITE=${SUITE:-bookworm}
DIR=$ROOT/build/chroot
BASE=$DIR/base CH=$DIR/run LOG=$DIR/check.log
# the test, bench and demo packages: none may come with `make` (with what they alone pull in)
NOT_BUILD=(docker.io containerd runc redis-server redis-tools nodejs npm libcmocka-dev libcmocka0
	libclang-rt-14-dev socat iperf3 gnuplot-nox iptables dnsmasq-base bind9-dnsutils busybox-static
	jq curl man-db bsdextrautils file iproute2 procps)

[ "$(id -u)" -eq 0 ] || { echo "hostlo: check-build-deps: needs root (debootstrap, chroot, mount): run as root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "hostlo: check-build-deps: needs debootstrap: apt-get install -y debootstrap" >&2; exit 1; }

# the mirror the host uses (deb822 URIs: or a one-line deb entry), else Debian's
host_mirror() {
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
		grep -oE '^(URIs:|deb) +(\[[^]]*\] +)?https?://[^ ]+/debian/?( |$)' | grep -oE 'https?://[^ ]+' | head -1 || true
}
MIRROR=${MIRROR:-$(host_mirror)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

mounted_under() { awk -v d="$1" 'index($5, d "/") == 1 || $5 == d { print $5 }' /proc/self/mountinfo; }
finish() {
	local m
	for m in $(mounted_under "$CH" | sort -r); do umount "$m" 2>/dev/null || umount -l "$m"; done
}
trap finish EXIT
trap 'exit 130' INT TERM
in_chroot() { chroot "$CH" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
step() { printf '== %s\n' "$*"; }
mkdir -p "$DIR"
: >"$LOG"

if [ ! -e "$BASE/.complete" ]; then
	step "debootstrap --variant=minbase $SUITE from $MIRROR into $BASE (cached for the next run)"
	rm -rf "$BASE.tmp"
	debootstrap --variant=minbase "$SUITE" "$BASE.tmp" "$MIRROR" >>"$LOG" 2>&1 ||
		{ tail -n 20 "$LOG"; echo "hostlo: check-build-deps: debootstrap failed (whole log: $LOG)" >&2; exit 1; }
	rm -rf "$BASE" && mv "$BASE.tmp" "$BASE" && touch "$BASE/.complete"
fi

step "a fresh copy of the base in $CH, a git archive of $REF ($(git -C "$ROOT" rev-parse --short "$REF")) in /src"
[ -z "$(mounted_under "$CH")" ] || { echo "hostlo: check-build-deps: something is still mounted under $CH" >&2; exit 1; }
rm -rf "$CH"
cp -a "$BASE" "$CH"
cp /etc/resolv.conf "$CH/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$CH/usr/sbin/policy-rc.d" && chmod 755 "$CH/usr/sbin/policy-rc.d"   # no daemon starts
mkdir "$CH/src"
git -C "$ROOT" archive "$REF" | tar -x -C "$CH/src"
VERSION=$(git -C "$ROOT" describe --always "$REF")
mount -t proc proc "$CH/proc"

in_chroot dpkg-query -W -f='${Package}\n' | sort >"$DIR/before.txt"
step "$(wc -l <"$DIR/before.txt") packages in the base; apt-get install make (to run make at all)"
in_chroot apt-get update -qq >>"$LOG" 2>&1
in_chroot apt-get install -y -qq --no-install-recommends make >>"$LOG" 2>&1
in_chroot dpkg-query -W -f='${Package}\n' | sort >"$DIR/with-make.txt"
# what the build group would bring, as apt resolves it on this very system
BUILD_GROUP=$(sed -n '/^BUILD=(/,/^)/p' "$CH/src/scripts/deps.sh" | sed '1d;$d;s/#.*//' | xargs)
in_chroot apt-get install -s --no-install-recommends $BUILD_GROUP 2>/dev/null | awk '$1 == "Inst" { sub(/:.*/, "", $2); print $2 }' |
	sort >"$DIR/expected.txt"

failed=0
fail() { echo "FAIL  $*"; failed=1; }
pass() { echo "ok    $*"; }

step "make as nobody (no root, no sudo)"
out=$(in_chroot setpriv --reuid=nobody --regid=nogroup --clear-groups bash -c 'cd /src && make 2>&1' || true)
echo "$out" | sed 's/^/    /'
if grep -q '^hostlo: deps: missing packages (.*clang.*): run as root' <<<"$out" &&
	[ "$(grep -c '^hostlo: deps:' <<<"$out")" -eq 1 ] && [ ! -e "$CH/src/build/hostlo" ]; then
	pass "without root, make names the missing packages in one line and builds nothing"
else fail "without root, make should print one 'hostlo: deps: missing packages (...): run as root' line and stop"; fi

step "make as root (scripts/deps.sh build installs what is missing; log: $LOG)"
if in_chroot bash -c "cd /src && make VERSION=$VERSION" >>"$LOG" 2>&1; then pass "make built build/hostlo"
else tail -n 30 "$LOG"; fail "make failed (log: $LOG)"; fi
in_chroot dpkg-query -W -f='${Package}\n' | sort >"$DIR/after.txt"
comm -13 "$DIR/with-make.txt" "$DIR/after.txt" >"$DIR/installed.txt"
echo "    make installed $(wc -l <"$DIR/installed.txt") packages (list: $DIR/installed.txt)"

extra=$(comm -13 "$DIR/expected.txt" "$DIR/installed.txt" | xargs)
short=$(comm -23 "$DIR/expected.txt" "$DIR/installed.txt" | xargs)
if [ -z "$extra$short" ]; then pass "exactly the build group and its dependencies ($BUILD_GROUP)"
else fail "not the build group's packages: more: ${extra:-none}; fewer: ${short:-none}"; fi
test_pkgs=$(grep -xF -f <(printf '%s\n' "${NOT_BUILD[@]}") "$DIR/after.txt" | xargs || true)
if [ -z "$test_pkgs" ]; then pass "none of the test, bench or demo packages: ${NOT_BUILD[*]}"
else fail "test, bench or demo packages installed: $test_pkgs"; fi

out=$(in_chroot bash -c 'cd /src && make 2>&1 && bash scripts/deps.sh build 2>&1' || true)
if [ -z "$(grep -v '^make: Nothing to be done' <<<"$out")" ]; then pass "make again: installs and rebuilds nothing; deps.sh build: nothing to do"
else echo "$out" | sed 's/^/    /'; fail "make again should do nothing"; fi

out=$(in_chroot /src/build/hostlo --help 2>&1 || true)
if grep -q '^Usage: hostlo COMMAND' <<<"$out"; then pass "build/hostlo --help: $(head -n 1 <<<"$out")"
else echo "$out" | head -n 5 | sed 's/^/    /'; fail "build/hostlo --help did not print its usage"; fi

if [ "$failed" -eq 0 ]; then echo "check-build-deps: passed"; else echo "check-build-deps: FAILED"; fi
exit "$failed"
