# lib.sh: assertions, a private bpffs and cleanup for hostlo's tests; the test host is testhost.sh.
# Sourced by tests/integration/*.sh. Addresses: 198.18.0.0/15 only (test hosts this file creates).

set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HOSTLO=${HOSTLO_BIN:-$ROOT/build/hostlo}   # run.sh also runs suites with the ASan + UBSan build
PROBE=$ROOT/build/sockprobe

STATE=/run/hostlo-test       # scratch: outputs, a private bpffs
export HOSTLO_BPFFS=$STATE/bpffs   # tests never touch a real installation in /sys/fs/bpf
source "$ROOT/tests/testhost.sh"

PASSED=${PASSED:-0} FAILED=${FAILED:-0}

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

# Leaves nothing: safe to run on a clean machine, after a crashed run, and twice.
cleanup() {
	HOSTLO_BPFFS=$STATE/bpffs "$HOSTLO" detach --all >/dev/null 2>&1
	testhost_down
	while mountpoint -q "$STATE/bpffs" 2>/dev/null; do umount "$STATE/bpffs"; done
	while mountpoint -q "$STATE/unmounted" 2>/dev/null; do umount "$STATE/unmounted"; done
	# whatever else a crashed suite left mounted under it (runtimes.sh: Podman's and containerd's), deepest first
	findmnt -rn -o TARGET 2>/dev/null | grep "^$STATE/" | sort -r | xargs -r -n1 umount -l 2>/dev/null
	rm -rf "$STATE"
}

# require [TOOL...]: root, cgroup2, and every tool the suite needs (scripts/deps.sh installs them).
require() {
	if [ "$(id -u)" -ne 0 ]; then echo "hostlo: test: needs root (real cgroups, netns and BPF); run: sudo make test" >&2; exit 1; fi
	if [ -z "$CG2" ]; then echo "hostlo: test: no cgroup2 mount in /proc/self/mountinfo" >&2; exit 1; fi
	local t
	for t in ip jq bpftool setpriv "$HOSTLO" "$PROBE" "$@"; do
		command -v "$t" >/dev/null || { echo "hostlo: test: $t is missing (scripts/deps.sh installs it)" >&2; exit 1; }
	done
}

setup_host() {
	cleanup
	mkdir -p "$STATE/bpffs"
	mount -t bpf bpf "$STATE/bpffs"
	testhost_up
}

# host_side_kernel: this kernel has the host side (Linux 5.17: sk_lookup with ingress_ifindex; README,
# Requirements); below it hostlo says so and the suites check that instead.
host_side_kernel() { uname -r | awk -F. '{ exit !($1 > 5 || ($1 == 5 && $2 >= 17)) }'; }

# percpu_kernel: this kernel runs the *_percpu builds of connect4, connect6 and sockops (Linux 5.19:
# bpf_map_lookup_percpu_elem, which the loader probes for; README, How it works).
percpu_kernel() { uname -r | awk -F. '{ exit !($1 > 5 || ($1 == 5 && $2 >= 19)) }'; }

# cgroup_progs CGDIR: the programs attached directly to that cgroup, as `bpftool -j cgroup show` has
# them ([{id, name, ...}]). bpftool 7 cannot query a cgroup on Linux 5.10 (it lists nothing and exits
# 255): there, the programs of the cgroup's bpf_links (hostlo attaches only through links).
cgroup_progs() {
	local out
	if out=$(bpftool -j cgroup show "$1" 2>/dev/null); then echo "${out:-[]}"; return 0; fi
	bpftool -j link show | jq -c --argjson cg "$(stat -c %i "$1")" --argjson progs "$(bpftool -j prog show)" \
		'[.[] | select(.type == "cgroup" and .cgroup_id == $cg) | .prog_id as $p | $progs[] | select(.id == $p) | {id, name}]'
}

# hook_count CGDIR: how many hostlo programs are attached directly to that cgroup.
hook_count() { cgroup_progs "$1" | jq '[.[] | select(.name // "" | startswith("hostlo_"))] | length'; }

# hostlo_pins: how many entries hostlo has in the test bpffs (the kernel's own *.debug files aside).
hostlo_pins() { find "$HOSTLO_BPFFS" -mindepth 1 -name 'hostlo*' 2>/dev/null | wc -l; }

# storage_count CGROUP_REL: connect_redirected kept in that attached cgroup's own storage (the row of
# its own processes, README: How it works), summed over CPUs; from the raw little-endian bytes
storage_count() {
	bpftool -j map dump pinned "$HOSTLO_BPFFS/hostlo/counts" | jq --argjson id "$(stat -c %i "$CG2$1")" '
		def byte: ltrimstr("0x") | explode | map(if . >= 97 then . - 87 else . - 48 end) | .[0] * 16 + .[1];
		def le: map(byte) | reverse | reduce .[] as $b (0; . * 256 + $b);
		[.[] | select((.key | le) == $id) | .values[].value[0:8] | le] | add // 0'
}

# below_count ATTACHED_REL CGROUP_REL: connect_redirected of CGROUP_REL (below ATTACHED_REL) kept in the
# attached cgroup's storage (its rows below: struct hostlo_below_row, from byte 128, 72 bytes each),
# summed over CPUs
below_count() {
	bpftool -j map dump pinned "$HOSTLO_BPFFS/hostlo/counts" | jq --argjson id "$(stat -c %i "$CG2$1")" \
		--argjson cg "$(stat -c %i "$CG2$2")" '
		def byte: ltrimstr("0x") | explode | map(if . >= 97 then . - 87 else . - 48 end) | .[0] * 16 + .[1];
		def le: map(byte) | reverse | reduce .[] as $b (0; . * 256 + $b);
		[.[] | select((.key | le) == $id) | .values[].value as $v | range(4) | (128 + 72 * .) as $o |
		 select(($v[$o:$o + 8] | le) == $cg) | $v[$o + 8:$o + 16] | le] | add // 0'
}

# counter CGROUP_REL NAME: one counter of one stats row (0 when the row does not exist).
counter() {
	"$HOSTLO" stats -j | jq -r --arg cg "$1" --arg k "$2" '[.[] | select(.cgroup == $cg) | .[$k]] | add // 0'
}
