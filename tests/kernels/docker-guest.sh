#!/usr/bin/env bash
# docker-guest.sh: `make test-kernels-docker`: a guest that looks like a modern host, booted under qemu
# TCG: Debian 12 with systemd as init, pure cgroup v2, Docker with the systemd cgroup driver. The root
# (debootstrap, with Debian's cloud kernel and its initramfs) is made once under
# build/kernels/docker-root; each run copies this tree's builds and tests into it, makes an ext4 image
# of it with mkfs.ext4 -d (no loop mount) and boots it. The watch agent goes in the way a user installs
# it: `make install DESTDIR=<root>` (hostlo, man page, completion, the systemd unit), the unit enabled,
# so systemd starts it at boot. systemd runs tests/kernels/seed.sh, then tests/kernels/watch-guest.sh,
# after docker.service and powers off; this script reads their marker lines and closes with
# "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
K=$PWD/build/kernels
R=$K/docker-root
MIRROR=${KERNELS_MIRROR:-http://deb.debian.org/debian}
TIMEOUT=${KERNEL_TIMEOUT:-900}
SUITES="seed:docker-systemd watch-guest:docker-watch"   # guest script : marker name
PKGS=systemd,systemd-sysv,dbus,apparmor,docker.io,iproute2,busybox-static,kmod,linux-image-cloud-amd64,libbpf1,libjson-c5,libelf1,zlib1g,jq,procps,util-linux,bpftool
t0=$(date +%s)

[ "$(id -u)" -eq 0 ] || { echo "hostlo: test-kernels-docker: needs root" >&2; exit 1; }
mkdir -p "$K/logs"
if [ ! -x "$R/usr/sbin/dockerd" ]; then
	echo "kernels: docker guest root: debootstrap bookworm with systemd and docker.io (once)"
	rm -rf "$R.new"
	debootstrap --variant=minbase --include=$PKGS bookworm "$R.new" "$MIRROR" >"$K/debootstrap-docker.log" 2>&1 ||
		{ tail -20 "$K/debootstrap-docker.log"; exit 1; }
	rm -rf "$R.new"/var/cache/apt/* "$R.new"/var/lib/apt/lists/* "$R.new"/usr/share/{doc,man,info,locale}/*
	rm -rf "$R" && mv "$R.new" "$R"
fi
# its configuration, written every run
mkdir -p "$R/etc/docker" "$R/etc/systemd/system/multi-user.target.wants"
# the systemd driver (Docker's default with systemd on cgroup v2, said anyway), a bridge in
# 198.18.0.0/15, no iptables (-p through docker-proxy), nothing pulled
cat >"$R/etc/docker/daemon.json" <<-EOF
{ "exec-opts": ["native.cgroupdriver=systemd"], "bip": "198.18.5.1/24", "iptables": false, "ip6tables": false }
EOF
cat >"$R/etc/systemd/system/hostlo-seed.service" <<-EOF
[Unit]
Description=hostlo: the seed scenarios and the watch agent, then power off
After=docker.service hostlo-watch.service
Requires=docker.service
[Service]
Type=oneshot
ExecStart=/bin/bash /hostlo/suites.sh
ExecStopPost=/bin/systemctl --no-block poweroff
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
EOF
ln -sf ../hostlo-seed.service "$R/etc/systemd/system/multi-user.target.wants/hostlo-seed.service"
ln -sf /dev/null "$R/etc/systemd/system/serial-getty@ttyS0.service"
ln -sf /dev/null "$R/etc/systemd/system/getty@tty1.service"
echo hostlo-docker-guest >"$R/etc/hostname"

# the agent, installed as a user does (the unit's ExecStart made from @SBINDIR@), enabled
make -s install DESTDIR="$R" PREFIX=/usr/local >/dev/null || exit 1
chroot "$R" systemctl enable hostlo-watch.service >/dev/null 2>&1 ||
	{ echo "hostlo: test-kernels-docker: systemctl enable hostlo-watch.service in the guest root failed" >&2; exit 1; }

# this tree's builds and tests, and a static sockprobe for the image
rm -rf "$R/hostlo" && mkdir -p "$R/hostlo/build"
cp -r tests README.md "$R/hostlo/"
cp build/hostlo build/sockprobe "$R/hostlo/build/"
gcc -O2 -static tests/sockprobe.c -o "$R/hostlo/build/sockprobe-static" || exit 1
# the suites, one marker line each: HOSTLO-SUITE NAME PASSED FAILED EXIT SECONDS
cat >"$R/hostlo/suites.sh" <<-EOF
#!/bin/bash
for s in $SUITES; do
	start=\$(date +%s)
	rm -f /run/hostlo-suite.result
	RESULT_FILE=/run/hostlo-suite.result /bin/bash /hostlo/tests/kernels/\${s%%:*}.sh
	rc=\$?
	read -r p f </run/hostlo-suite.result || { p=0; f=0; }
	echo "HOSTLO-SUITE \${s#*:} \$p \$f \$rc \$((\$(date +%s) - start))"
done
EOF
rm -f "$K/docker-root.img"
mkfs.ext4 -q -F -L hostlo-root -d "$R" "$K/docker-root.img" 3G || exit 1

log=$K/logs/docker-systemd.log
mkdir -p "$K/logs"
kernel=$(ls "$R"/boot/vmlinuz-* | head -1)
initrd=$(ls "$R"/boot/initrd.img-* | head -1)
echo "== docker-systemd: Debian 12, systemd, Docker (systemd cgroup driver), Linux ${kernel##*vmlinuz-} (log: ${log#"$PWD"/})"
timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 2G -nographic -no-reboot \
	-nic none -kernel "$kernel" -initrd "$initrd" -drive file="$K/docker-root.img",if=virtio,format=raw \
	-append "console=ttyS0 root=/dev/vda rw panic=-1 quiet loglevel=3 systemd.show_status=0" </dev/null >"$log" 2>&1
rc=$?
clean() { tr -d '\r' <"$log" | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g'; }
clean | grep -aE '^(HOSTLO-|FAIL |# )' | sed 's/^/   /'
[ $rc -eq 124 ] && echo "   timed out after ${TIMEOUT}s"
p=0 f=0
for s in $SUITES; do
	m=$(clean | grep -aE "^HOSTLO-SUITE ${s#*:} " | tail -1)
	if [ -z "$m" ]; then
		echo "   ${s#*:}: FAIL (no result)"
		f=$((f + 1))
		continue
	fi
	read -r _ _ sp sf src ssecs _ <<<"$m"
	[ "$sf" -eq 0 ] && [ "$src" -ne 0 ] && sf=1
	echo "   ${s#*:}: $sp passed, $sf failed (${ssecs}s)"
	p=$((p + sp)) f=$((f + sf))
done
echo "total: $(($(date +%s) - t0))s"
echo "$p passed, $f failed"
[ "$f" -eq 0 ]
