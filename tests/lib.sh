# lib.sh: the test host ("container" netns + veth + cgroups), assertions and cleanup for hostlo's tests.
# Sourced by tests/integration/*.sh. Addresses: 198.18.0.0/15 only (test hosts this file creates).

set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HOSTLO=$ROOT/build/hostlo
PROBE=$ROOT/build/sockprobe

NS=hostlo-t1                 # the "container": its own network namespace
VETH_H=hlt-h VETH_C=hlt-c    # host end, container end
HOST_IP=198.18.0.1 CONT_IP=198.18.0.2
STATE=/run/hostlo-test       # scratch: outputs, a private bpffs
export HOSTLO_BPFFS=$STATE/bpffs   # tests never touch a real installation in /sys/fs/bpf

PASSED=${PASSED:-0} FAILED=${FAILED:-0}

cg2_mount() { awk '$9 == "cgroup2" && $4 == "/" { print $5; exit }' /proc/self/mountinfo; }
CG2=$(cg2_mount)
CGT=$CG2/hostlo-test         # attached in most tests; children app, app2
CGO=$CG2/hostlo-test-out     # same netns, outside every attachment
CGH=$CG2/hostlo-test-host    # host-side servers, so cleanup can find and stop them

ok() { PASSED=$((PASSED + 1)); printf 'ok    %s\n' "$1"; }
not_ok() { FAILED=$((FAILED + 1)); printf 'FAIL  %s\n' "$1"; shift; [ $# -gt 0 ] && printf '      %s\n' "$@"; return 0; }

# expect NAME RC REGEX -- CMD...: CMD exits RC and its whole output (stdout+stderr) matches the
# extended REGEX, which may span lines (^ and $ anchor the whole output).
expect() {
	local name=$1 rc=$2 re=$3 out got
	shift 4
	out=$("$@" 2>&1); got=$?
	if [ "$got" -eq "$rc" ] && [[ $out =~ $re ]]; then ok "$name"
	else not_ok "$name" "command: $*" "exit $got (want $rc), output: $(head -c 600 <<<"$out")" "wanted: /$re/"; fi
}

# expect_error NAME RC REGEX -- CMD...: as expect, and the output is exactly one line.
expect_error() {
	local name=$1 rc=$2 re=$3 out got
	shift 4
	out=$("$@" 2>&1); got=$?
	if [ "$got" -eq "$rc" ] && [[ $out =~ $re ]] && [ "$(wc -l <<<"$out")" -eq 1 ]; then ok "$name"
	else not_ok "$name" "command: $*" "exit $got (want $rc), output: $(head -c 600 <<<"$out")" "wanted one line: /$re/"; fi
}

# check NAME WANT GOT: plain equality.
check() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "want: $2" "got:  $3"; fi
}

# incg CG CMD...: runs CMD in cgroup directory CG and in the container's network namespace.
incg() {
	local cg=$1
	shift
	bash -c 'echo $$ > "$1/cgroup.procs" && shift && exec ip netns exec "$@"' _ "$cg" "$NS" "$@"
}

# on_host CMD...: runs CMD in the host netns, in the host-side servers' cgroup.
on_host() { bash -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' _ "$CGH" "$@"; }

# wait_ready FILE: a sockprobe listener printed "ready" (or gave up after 5 s).
wait_ready() {
	for _ in $(seq 50); do grep -q '^ready$' "$1" 2>/dev/null && return 0; sleep 0.1; done
	echo "listener in $1 did not come up: $(cat "$1" 2>/dev/null)" >&2
	return 1
}

kill_cgroup() {
	local cg=$1 d procs
	[ -d "$cg" ] || return 0
	for d in $(find "$cg" -depth -type d 2>/dev/null); do
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			procs=$(cat "$d/cgroup.procs" 2>/dev/null)   # cgroupfs files have size 0: test the content
			[ -n "$procs" ] || break
			kill -9 $procs 2>/dev/null
			sleep 0.1
		done
		rmdir "$d" 2>/dev/null
	done
}

# Leaves nothing: safe to run on a clean machine, after a crashed run, and twice.
cleanup() {
	local cg
	HOSTLO_BPFFS=$STATE/bpffs "$HOSTLO" detach --all >/dev/null 2>&1
	for cg in "$CGT" "$CGO" "$CGH" "$CG2"/hostlo-test-*; do kill_cgroup "$cg"; done
	ip netns del "$NS" 2>/dev/null
	ip link del "$VETH_H" 2>/dev/null
	while mountpoint -q "$STATE/bpffs" 2>/dev/null; do umount "$STATE/bpffs"; done
	while mountpoint -q "$STATE/unmounted" 2>/dev/null; do umount "$STATE/unmounted"; done
	rm -rf "$STATE"
}

require() {
	if [ "$(id -u)" -ne 0 ]; then echo "hostlo: test: needs root (real cgroups, netns and BPF); run: sudo make test" >&2; exit 1; fi
	if [ -z "$CG2" ]; then echo "hostlo: test: no cgroup2 mount in /proc/self/mountinfo" >&2; exit 1; fi
	local t
	for t in ip jq bpftool setpriv "$HOSTLO" "$PROBE"; do
		command -v "$t" >/dev/null || { echo "hostlo: test: $t is missing (scripts/deps.sh installs it)" >&2; exit 1; }
	done
}

setup_host() {
	cleanup
	mkdir -p "$STATE/bpffs" "$CGT/app" "$CGT/app2" "$CGO" "$CGH"
	mount -t bpf bpf "$STATE/bpffs"
	ip netns add "$NS"
	ip link add "$VETH_H" type veth peer name "$VETH_C"
	ip link set "$VETH_C" netns "$NS"
	ip addr add "$HOST_IP/24" dev "$VETH_H"
	ip link set "$VETH_H" up
	ip -n "$NS" addr add "$CONT_IP/24" dev "$VETH_C"
	ip -n "$NS" link set "$VETH_C" up
	ip -n "$NS" link set lo up
	ip -n "$NS" route add default via "$HOST_IP"
	# the container's "app" process: hostlo reads the gateway from a process in the cgroup
	incg "$CGT/app" sleep 3600 >/dev/null 2>&1 &
	for _ in $(seq 50); do [ -n "$(cat "$CGT/app/cgroup.procs")" ] && break; sleep 0.1; done
}

# hook_count CGDIR: how many BPF programs are attached directly to that cgroup.
hook_count() { bpftool cgroup show "$1" 2>/dev/null | grep -c 'hostlo_'; }

# hostlo_pins: how many entries hostlo has in the test bpffs (the kernel's own *.debug files aside).
hostlo_pins() { find "$HOSTLO_BPFFS" -mindepth 1 -name 'hostlo*' 2>/dev/null | wc -l; }

# counter CGROUP_REL NAME: one counter of one stats row (0 when the row does not exist).
counter() {
	"$HOSTLO" stats -j | jq -r --arg cg "$1" --arg k "$2" '[.[] | select(.cgroup == $cg) | .[$k]] | add // 0'
}
