#!/usr/bin/env bash
# handoff.sh: how a steered connect reaches the host side (tests/testhost.sh, no Docker engine). The
# connect's program hands the connection to hostlo_sockops, which notes it as a flow when it starts:
# on Linux 5.19+ through a per-CPU slot (taken back on any CPU when the task moved, through the hash
# when the slot is held, reclaimed when its connect failed), before that through the hash alone. Each
# way: the connection reaches a host service listening on 127.0.0.1 only, the service sees 127.0.0.1
# as its client, the counters are exact, and no slot or hash entry is left behind.
# The ways other than this kernel's own are forced with the test build (HOSTLO_TEST_HANDOFF).
source "$(dirname "$0")/../lib.sh"
require redis-server redis-cli taskset nproc
CRASH=$ROOT/build/crash/hostlo   # test build: HOSTLO_TEST_HANDOFF=hash|other-cpu|spill|stale-1s
[ -x "$CRASH" ] || { echo "hostlo: test: $CRASH is missing (make test-builds)" >&2; exit 1; }
trap cleanup EXIT
trap 'exit 130' INT TERM
setup_host

RP=16379 SP=16381   # redis; a socket server; both on the host's 127.0.0.1 only
PASS=hostlo-test-secret
OUT=$STATE/out
mkdir -p "$OUT"
APP=$CGT/app REL=/hostlo-test
CPUS=$(nproc) N=8   # N connects on each CPU
PINS=$HOSTLO_BPFFS/hostlo

rcli() { incg "$APP" timeout 10 redis-cli --no-auth-warning -a $PASS -h 127.0.0.1 -p $RP "$@" 2>&1; }
hcli() { timeout 10 redis-cli --no-auth-warning -a $PASS -p $RP "$@" 2>&1; }
# the per-CPU slots that hold a claim (cookie set), and that were ever claimed (since set); raw bytes
slots() {
	bpftool -j map dump pinned "$PINS/handoffslots" |
		jq --argjson at "$1" '[.[].values[].value[$at:$at + 8] | select(any(. != "0x00"))] | length'
}
slots_held() { slots 0; }
slots_used() { slots 8; }
hash_left() { bpftool -j map dump pinned "$PINS/handoff" | jq length; }
prog_names() { for p in connect4 connect6 sockops; do bpftool -j prog show pinned "$PINS/$p" | jq -r .name; done | xargs; }
# connects N times from each CPU in turn; prints how many reached the loopback-only server
connects() {
	local c n=0
	for c in $(seq 0 $((CPUS - 1))); do
		n=$((n + $(incg "$APP" taskset -c "$c" "$PROBE" connect "$1" $SP $N 2>&1 | grep -c "got=hello-from-loopback$")))
	done
	echo $n
}

on_host redis-server --port $RP --bind 127.0.0.1 --requirepass $PASS --save '' --appendonly no --daemonize no \
	>"$OUT/redis.log" 2>&1 &
for _ in $(seq 100); do hcli ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
on_host "$PROBE" serve 127.0.0.1 $SP hello-from-loopback 900 >"$OUT/sp" 2>&1 &
wait_ready "$OUT/sp" || exit 1

if ! host_side_kernel; then
	echo "# Linux $(uname -r): no host side (needs 5.17), so nothing is handed off"
	expect "attach" 0 "^attached $REL " -- "$HOSTLO" attach --cgroup $REL --connect $RP --connect $SP
	check "the programs that need nothing newer than this kernel" "hostlo_connect4 hostlo_connect6" \
		"$(for p in connect4 connect6; do bpftool -j prog show pinned "$PINS/$p" | jq -r .name; done | xargs)"
	expect "the connect goes to the gateway, where nothing listens: refused" 1 "^error=ECONNREFUSED$" -- \
		incg "$APP" "$PROBE" connect 127.0.0.1 $SP
	expect "detach" 0 "^detached $REL$" -- "$HOSTLO" detach --cgroup $REL
	echo "handoff: $PASSED passed, $FAILED failed"
	echo "$PASSED $FAILED unsupported" >"${RESULT_FILE:-/dev/null}"
	exit 0
fi

percpu=$(percpu_kernel && echo 1 || echo 0)
names_percpu="hostlo_connect4_percpu hostlo_connect6_percpu hostlo_sockops_percpu"
names_hash="hostlo_connect4 hostlo_connect6 hostlo_sockops"

# way HOW BIN NAMES USED: attach with BIN (HOSTLO_TEST_HANDOFF=HOW), steered connects from every CPU,
# then what is left: USED is 1 when the connects' claims went through the slots
way() {
	local how=$1 bin=$2 names=$3 used=$4 total=$((CPUS * N))
	echo "# the hand-off: $how"
	"$HOSTLO" detach --all >/dev/null 2>&1
	expect "attach" 0 "^attached $REL " -- env HOSTLO_TEST_HANDOFF="$how" "$bin" attach --cgroup $REL --connect $RP --connect $SP
	check "the programs loaded" "$names" "$(prog_names)"
	check "$total connects, $N from each CPU, reach the server on the host's 127.0.0.1" $total "$(connects 127.0.0.1)"
	expect "through ::1 (v4-mapped) too" 0 "^peer=\[::1\]:$SP got=hello-from-loopback$" -- incg "$APP" "$PROBE" connect ::1 $SP
	expect "redis sees its client as 127.0.0.1, on its 127.0.0.1 listener" 0 "addr=127\.0\.0\.1:[0-9]+ laddr=127\.0\.0\.1:$RP " -- rcli client info
	check "host_steered counts each" $((total + 2)) "$(counter $REL/app host_steered)"
	check "connect_redirected counts each" $((total + 2)) "$(counter $REL/app connect_redirected)"
	expect "the gateway:$SP asked directly: refused (nothing was handed off, nothing is steered)" 1 "^error=ECONNREFUSED$" -- \
		incg "$APP" "$PROBE" connect "$HOST_IP" $SP
	check "no slot holds a claim, no hash entry is left" "0 0" "$(slots_held) $(hash_left)"
	if [ "$used" = 1 ]; then
		check "the claims went through the per-CPU slots" yes "$([ "$(slots_used)" -gt 0 ] && echo yes || echo no)"
	else
		check "no slot was ever claimed" 0 "$(slots_used)"
	fi
}

if [ "$percpu" = 1 ]; then
	way "this kernel's (per-CPU slots)" "$HOSTLO" "$names_percpu" 1
	way other-cpu "$CRASH" "$names_percpu" 1
	way spill "$CRASH" "$names_percpu" 0
fi
way hash "$CRASH" "$names_hash" 0

if [ "$percpu" = 1 ]; then
	# stale: connects that fail after their program ran (no route to the gateway) leave claims no
	# connection takes back; the next connects on those slots reclaim them once stale (here after 1 s,
	# 10 minutes in a normal build) and meanwhile go through the hash
	stale() { # HOW BIN: prints "held-after-failures connects-that-worked held-after"
		local held ok
		"$HOSTLO" detach --all >/dev/null 2>&1
		env HOSTLO_TEST_HANDOFF="$1" "$2" attach --cgroup $REL --connect $RP --connect $SP >/dev/null || return 1
		ip -n "$NS" route add unreachable "$HOST_IP/32"
		incg "$APP" taskset -c 0 "$PROBE" connect 127.0.0.1 $SP 16 >/dev/null 2>&1
		ip -n "$NS" route del unreachable "$HOST_IP/32"
		held=$(slots_held)
		sleep 1.5
		ok=$(incg "$APP" taskset -c 0 "$PROBE" connect 127.0.0.1 $SP 64 2>&1 | grep -c "got=hello-from-loopback$")
		echo "$held $ok $(slots_held) $(hash_left)"
	}
	echo "# claims of connects that failed before their connection started"
	read -r held ok after left <<<"$(stale stale-1s "$CRASH")"
	check "16 failed connects leave claims" yes "$([ "${held:-0}" -gt 0 ] && echo yes || echo no)"
	check "64 connects after: all reach the server, the stale claims are reclaimed, nothing left" "64 0 0" "$ok $after $left"
	read -r held2 ok after left <<<"$(stale "" "$HOSTLO")"
	check "not yet stale (a normal build, 10 minutes): the claims stay, the connects go through the hash" "64 $held2 0" "$ok $after $left"
fi

"$HOSTLO" detach --all >/dev/null 2>&1
check "detach --all leaves no pin" 0 "$(hostlo_pins)"
expect "the host's own clients on 127.0.0.1 throughout" 0 "^PONG$" -- hcli ping

echo "handoff: $PASSED passed, $FAILED failed"
echo "$PASSED $FAILED" >"${RESULT_FILE:-/dev/null}"
