#!/usr/bin/env bash
# run.sh: `make test-kernels`: the project's own integration suites on each Debian kernel, under qemu.
# Kernels: the current cloud kernel of bullseye (5.10), bookworm (6.1), trixie (6.12) and
# trixie-backports (the newest), from Debian's archive (fetch.sh; cached under build/kernels/).
# Guest: a debootstrap'd bookworm root as an initramfs (guest.sh; cached), this tree's build/ and tests/
# on top, /init = init.sh: pure cgroup v2 at /sys/fs/cgroup, bpffs, the kernel's veth and diag modules.
# Each guest boots under TCG (KVM is not available here), runs the suites and prints one marker line
# per suite on the serial console; this script reads them and prints one table, kernel x suite, and
# "N passed, N failed" (each check of each suite on each kernel counts once).
#   KERNELS="bullseye trixie"   the suites to take kernels from (default: all four)
#   KERNEL_SUITES="core"        the integration suites to run in each guest (default below)
#   KERNEL_TIMEOUT=SECONDS      one guest's limit (default 420)
#   KERNEL_CMD="bpftool prog"   a command to run in each guest first (its output: build/kernels/logs/)
set -u
cd "$(dirname "$0")/../.."
K=$PWD/build/kernels
KERNELS=${KERNELS:-bullseye bookworm trixie trixie-backports}
KERNEL_SUITES=${KERNEL_SUITES-core transparency hostside-local handoff reliability}
KERNEL_TIMEOUT=${KERNEL_TIMEOUT:-420}
t0=$(date +%s)

[ "$(id -u)" -eq 0 ] || { echo "hostlo: test-kernels: needs root (debootstrap, apt)" >&2; exit 1; }
# shellcheck disable=SC2086
bash tests/kernels/fetch.sh $KERNELS || exit 1
bash tests/kernels/guest.sh || exit 1

# This tree, as the guest sees it: /hostlo (tests, README, the builds the suites run), /init.
stage=$K/stage
rm -rf "$stage" && mkdir -p "$stage/hostlo/build/crash" "$stage/hostlo/build/variant" "$stage/modules"
cp -r tests README.md "$stage/hostlo/"
for b in hostlo hostlo-static sockprobe loadgen fuzz_parse crash/hostlo variant/hostlo; do
	[ -f "build/$b" ] && cp "build/$b" "$stage/hostlo/build/$b"
done
cp tests/kernels/init.sh "$stage/init"
# under TCG everything is 10 to 50 times slower: reliability.sh runs with smaller loads (fuzzing, which
# does not depend on the kernel, runs its 60 s in make test)
cat >"$stage/hostlo/guest.conf" <<EOF
SUITES="$KERNEL_SUITES"
CMD=$(printf %q "${KERNEL_CMD:-}")
export LOAD_CONNECTS=${LOAD_CONNECTS:-5000} SWAPS=${SWAPS:-10} FUZZ_SECONDS=${FUZZ_SECONDS:-3}
EOF
(cd "$stage" && find . -path ./modules -prune -o -print | cpio -o -H newc --quiet) >"$K/project.cpio"

mkdir -p "$K/logs"
# console LOG: the guest's serial output as plain lines (no CR, no terminal escapes)
console() { tr -d '\r' <"$1" | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g'; }
declare -A cell
total_p=0 total_f=0 rows=()
for k in $KERNELS; do
	abi=$(cat "$K/$k/abi")
	rm -rf "$stage/modules"/* && cp "$K/$k/"*.ko "$stage/modules/"
	(cd "$stage" && find ./modules | cpio -o -H newc --quiet) >"$K/modules.cpio"
	cat "$K/guest-root.cpio" "$K/project.cpio" "$K/modules.cpio" >"$K/initrd.cpio"
	log=$K/logs/$k.log
	echo "== $k: Linux $abi (qemu TCG, log: ${log#"$PWD"/})"
	start=$(date +%s)
	# a guest whose kernel died before it ran /init (no HOSTLO-KERNEL line: seen once, a panic in the
	# timer softirq while unpacking the initrd under TCG) is booted once more; hostlo never ran in it
	for boot in 1 2; do
		timeout --foreground -k 10 "$KERNEL_TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 2G -nographic \
			-no-reboot -nic none -kernel "$K/$k/vmlinuz" -initrd "$K/initrd.cpio" \
			-append "console=ttyS0 panic=-1 quiet loglevel=3" </dev/null >"$log" 2>&1
		rc=$?
		console "$log" | grep -aq '^HOSTLO-KERNEL ' || [ $boot = 2 ] || [ $rc -eq 124 ] && break
		mv "$log" "${log%.log}.boot1.log"
		echo "   the kernel died before /init (log: ${log%.log}.boot1.log): booting it once more"
	done
	secs=$(($(date +%s) - start))
	console "$log" | grep -aE '^(HOSTLO-|FAIL )' | sed 's/^/   /'
	[ $rc -eq 124 ] && echo "   timed out after ${KERNEL_TIMEOUT}s"
	rows+=("$k")
	cell[$k,abi]="$abi"
	cell[$k,secs]=$secs
	for s in $KERNEL_SUITES; do
		m=$(console "$log" | grep -aE "^HOSTLO-SUITE $s " | tail -1)
		if [ -z "$m" ]; then
			cell[$k,$s]="FAIL (no result$([ $rc -eq 124 ] && echo ": timed out"))"
			total_f=$((total_f + 1))
			continue
		fi
		read -r _ _ p f src _ unsup <<<"$m"
		total_p=$((total_p + p)) total_f=$((total_f + f))
		if [ "$f" -eq 0 ] && [ "$src" -ne 0 ]; then
			total_f=$((total_f + 1)) f=1   # exited before it finished
		fi
		if [ "$f" -ne 0 ]; then cell[$k,$s]="FAIL: $f of $((p + f))"
		elif [ -n "$unsup" ]; then cell[$k,$s]="not supported by this kernel (says so: $p checks)"
		else cell[$k,$s]="pass ($p checks)"; fi
	done
done

echo
echo "Kernel matrix: the suites' checks on each kernel (qemu TCG, pure cgroup v2; make test-kernels)"
echo
line="| Debian suite | Linux |" sep="| --- | --- |"
for s in $KERNEL_SUITES; do line+=" $s |" sep+=" --- |"; done
echo "$line time |"
echo "$sep --- |"
for k in "${rows[@]}"; do
	line="| $k | ${cell[$k,abi]} |"
	for s in $KERNEL_SUITES; do line+=" ${cell[$k,$s]} |"; done
	echo "$line ${cell[$k,secs]} s |"
done
echo
echo "total: $(($(date +%s) - t0))s"
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
