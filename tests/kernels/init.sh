#!/bin/bash
# init.sh: /init of the test guest (pid 1). Pure cgroup v2 at /sys/fs/cgroup, bpffs, this kernel's
# veth/inet_diag/tcp_diag, then the suites named in /hostlo/guest.conf, each closed by one marker line
# on the serial console for tests/kernels/run.sh:
#   HOSTLO-SUITE NAME PASSED FAILED EXIT SECONDS [unsupported]
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
ln -sf /proc/self/fd /dev/fd && ln -sf fd/0 /dev/stdin && ln -sf fd/1 /dev/stdout && ln -sf fd/2 /dev/stderr
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mkdir -p /run/netns /var/run
hostname hostlo-guest
ip link set lo up
for m in veth inet_diag tcp_diag; do insmod "/modules/$m.ko" || echo "HOSTLO-ERROR insmod $m failed"; done
echo "HOSTLO-KERNEL $(uname -r) cgroup2=$(stat -f -c %T /sys/fs/cgroup) btf=$([ -e /sys/kernel/btf/vmlinux ] && echo yes || echo no)"

cd /hostlo
# shellcheck source=/dev/null
source ./guest.conf   # SUITES, and the environment they run with (smaller loads under TCG)
[ -n "${CMD:-}" ] && { bash -c "$CMD" </dev/null 2>&1; echo "HOSTLO-CMD exit $?"; }
for s in $SUITES; do
	start=$(date +%s)
	: >/tmp/result
	RESULT_FILE=/tmp/result bash "$(case $s in hostside-local) echo tests/kernels/hostside-local.sh ;; *) echo "tests/integration/$s.sh" ;; esac)" </dev/null 2>&1
	rc=$?
	read -r p f extra </tmp/result || { p=0 f=0 extra=; }
	echo "HOSTLO-SUITE $s ${p:-0} ${f:-0} $rc $(($(date +%s) - start)) ${extra:-}"
done
echo "HOSTLO-DONE"
sync
busybox poweroff -f
