#!/usr/bin/env bash
# hostside-local.sh: the host side without a Docker engine (for the kernel matrix, tests/kernels/run.sh):
# the test host's "container" (a netns behind a veth, tests/testhost.sh) reaches host services that
# listen only on the host's 127.0.0.1 (a real Redis, a socket server) through its own 127.0.0.1, and a
# host service that asks for its client's address only after the client has gone sees 127.0.0.1 too.
# The feature needs Linux 5.17 (README, Requirements): on an older kernel it checks that hostlo says so
# and that everything else still holds, and marks the suite "unsupported" in RESULT_FILE.
source "$(dirname "$0")/../lib.sh"
require redis-server redis-cli ss
trap cleanup EXIT
trap 'exit 130' INT TERM
setup_host

RP=16379 SP=16381 UP=16383 LP=16387   # redis; a socket server; a port no rule names; a late-asking service
PASS=hostlo-test-secret
OUT=$STATE/out
mkdir -p "$OUT"
APP=$CGT/app REL=/hostlo-test
kver=$(uname -r) && kmaj=${kver%%.*} && kmin=${kver#*.} && kmin=${kmin%%.*}
supported=$(host_side_kernel && echo 1 || echo 0)

rcli() { incg "$APP" timeout 10 redis-cli --no-auth-warning -a $PASS -h 127.0.0.1 -p $RP "$@" 2>&1; }
hcli() { timeout 10 redis-cli --no-auth-warning -a $PASS -p $RP "$@" 2>&1; }
flows() { bpftool -j map dump pinned "$HOSTLO_BPFFS/hostlo/flows" | jq length; }
hexip() { printf '%02x %02x %02x %02x' ${1//./ }; }
hexport() { printf '%02x %02x' $(($1 >> 8)) $(($1 & 255)); }   # network order
# late CG ADDR LISTEN [FROM]: a client in cgroup CG connects to ADDR:$LP (from port FROM), served on the host at LISTEN:$LP by a
# service that asks for its client's address after the client closed (sockprobe late). Prints what the
# service saw (accept's peer address; "same" when getpeername then gave the same address and port; its
# local address) and the flows the host side held before and after the service closed.
late() {
	local acc late name open
	late_open "$@" || return
	acc=$(sed -n 's/^accepted=//p' "$OUT/late") late=$(sed -n 's/^late=\([^ ]*\) .*/\1/p' "$OUT/late")
	name=$(sed -n 's/.* name=//p' "$OUT/late") open=$(flows)
	late_close
	[ -n "$late" ] && [ "$late" = "$acc" ] && late=same
	[ -n "${LATE_FULL:-}" ] || acc=${acc%:*}   # LATE_FULL: with the client's port
	echo "accepted=$acc late=$late name=$name flows=$open,$(flows)"
}
# late_open CG ADDR LISTEN: the service up and its client gone, its socket still open (late_close ends it)
late_open() {
	rm -f "$OUT/late-go"
	on_host "$PROBE" late "$3" $LP "$OUT/late-go" >"$OUT/late" 2>&1 &
	LATE_PID=$!
	wait_ready "$OUT/late" || return
	incg "$1" "$PROBE" connect "$2" $LP 1 ${4:-0} >/dev/null
	for _ in $(seq 50); do grep -q '^waiting$' "$OUT/late" && return; sleep 0.1; done
}
late_close() { touch "$OUT/late-go"; wait $LATE_PID; }
on_host redis-server --port $RP --bind 127.0.0.1 --requirepass $PASS --save '' --appendonly no --daemonize no \
	>"$OUT/redis.log" 2>&1 &
for _ in $(seq 100); do hcli ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
on_host "$PROBE" serve 127.0.0.1 $SP hello-from-loopback 600 >"$OUT/sp" 2>&1 &
on_host "$PROBE" serve 127.0.0.1 $UP not-for-containers 600 >"$OUT/up" 2>&1 &
wait_ready "$OUT/sp" && wait_ready "$OUT/up" || exit 1

echo "# without hostlo: a host service on 127.0.0.1 only is out of the container's reach"
expect "redis-cli -h 127.0.0.1 in the container: refused" 1 "refused" -- rcli ping

if [ "$supported" = 1 ]; then
	echo "# Linux $(uname -r): the host side"
	expect "attach finds the host's loopback listeners" 0 "^attached $REL \(cgroup id [0-9]+\): --connect tcp:$RP=$HOST_IP \(host loopback: listening\) --connect tcp:$SP=$HOST_IP \(host loopback: listening\)$" -- \
		"$HOSTLO" attach --cgroup $REL --connect $RP --connect $SP
	expect "list -j: host_loopback names the interface and the listener" 0 "^$VETH_H 1 1$" -- \
		bash -c "'$HOSTLO' list -j | jq -r '.[0].rules[0].host_loopback | \"\(.interface) \(.ports) \(.listening)\"'"
	expect "redis-cli PING through 127.0.0.1" 0 "^PONG$" -- rcli ping
	expect "redis-cli SET" 0 "^OK$" -- rcli set hostlo-key from-the-guest-container
	expect "the host's own redis-cli reads it on 127.0.0.1" 0 "^from-the-guest-container$" -- hcli get hostlo-key
	expect "socket server: the app sees 127.0.0.1 as its peer" 0 "^peer=127.0.0.1:$SP got=hello-from-loopback$" -- incg "$APP" "$PROBE" connect 127.0.0.1 $SP
	expect "socket server through ::1 (v4-mapped)" 0 "^peer=\[::1\]:$SP got=hello-from-loopback$" -- incg "$APP" "$PROBE" connect ::1 $SP
	check "host_steered counts each steered connection" 4 "$(counter $REL/app host_steered)"
	expect "a host port on 127.0.0.1 that no rule names: refused" 1 "^error=ECONNREFUSED$" -- incg "$APP" "$PROBE" connect 127.0.0.1 $UP
	expect "the gateway:$RP itself, asked directly: refused" 1 "^error=ECONNREFUSED$" -- incg "$APP" "$PROBE" connect $HOST_IP $RP
	expect "outside the attached cgroup: refused" 1 "^error=ECONNREFUSED$" -- incg "$CGO" "$PROBE" connect $HOST_IP $SP
	check "host programs: sockops on the cgroup2 root; sockops, sk_lookup, peer4, sockname4 links pinned" "1 4" \
		"$(bpftool cgroup show "$CG2" | grep -c hostlo_sockops) $(ls "$HOSTLO_BPFFS/hostlo/links" | grep -c '^host-')"
	check "no flow left once those connections closed" 0 "$(flows)"

	echo "# a service that asks for its client's address only after the client has gone"
	counted=$(counter $REL/app host_peer_local)
	expect "attach a rule for its port too" 0 "^attached $REL .*--connect tcp:$LP=$HOST_IP" -- \
		"$HOSTLO" attach --cgroup $REL --connect $RP --connect $SP --connect $LP
	check "on 0.0.0.0: 127.0.0.1 at accept and after the client closed; the flow lives as long as the service's socket" \
		"accepted=127.0.0.1 late=same name=$HOST_IP:$LP flows=1,0" "$(late "$APP" 127.0.0.1 0.0.0.0)"
	check "on 127.0.0.1 (steered; the listener came after attach): the same, and its own address is 127.0.0.1" \
		"accepted=127.0.0.1 late=same name=127.0.0.1:$LP flows=1,0" "$(late "$APP" 127.0.0.1 127.0.0.1)"
	check "the attached cgroup connecting to the gateway itself: its real address, no flow" \
		"accepted=$CONT_IP late=same name=$HOST_IP:$LP flows=0,0" "$(late "$APP" $HOST_IP 0.0.0.0)"
	check "outside the attached cgroup: its real address, no flow" \
		"accepted=$CONT_IP late=same name=$HOST_IP:$LP flows=0,0" "$(late "$CGO" $HOST_IP 0.0.0.0)"
	expect "nothing listens on the port: refused" 1 "^error=ECONNREFUSED$" -- incg "$APP" "$PROBE" connect 127.0.0.1 $LP
	check "... and the refused connect left no flow" 0 "$(flows)"
	check "host_peer_local counts the two connections shown as local" $((counted + 2)) "$(counter $REL/app host_peer_local)"
	# a note left behind by a socket whose close the programs missed (written here by hand): it marks no
	# other socket of its 4-tuple, such as a direct connect from that address and port
	key=(key hex $(hexip $CONT_IP) $(hexip $HOST_IP) $(hexport 40012) $(hexport $LP))
	bpftool map update pinned "$HOSTLO_BPFFS/hostlo/flows" "${key[@]}" \
		value hex 01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 2a 00 00 00 05 00 00 00   # LOCAL_PEER, ACCEPTED
	check "a note another socket left: a direct connect of its 4-tuple shows its real address, and the note goes" \
		"accepted=$CONT_IP:40012 late=same name=$HOST_IP:$LP flows=0,0" "$(LATE_FULL=1 late "$CGO" $HOST_IP 0.0.0.0 40012)"
	late_open "$APP" 127.0.0.1 0.0.0.0
	open=$(flows)
	"$HOSTLO" attach --cgroup $REL --connect $RP=$HOST_IP >/dev/null   # an explicit address: nothing steers
	check "no rule steers any longer: the host side goes, with the flow of a connection still open" "1 0" "$open $(flows)"
	late_close
	expect "detach" 0 "^detached $REL$" -- "$HOSTLO" detach --cgroup $REL
	check "no host link and no hostlo program on the cgroup2 root after detach" "0 0" \
		"$(ls "$HOSTLO_BPFFS/hostlo/links" 2>/dev/null | grep -c '^host-') $(bpftool cgroup show "$CG2" | grep -c hostlo_)"
	expect "after detach: refused" 1 "refused" -- rcli ping
else
	echo "# Linux $(uname -r): no host side (needs 5.17); hostlo says so, the rest works"
	expect "attach says the host side needs Linux 5.17" 0 "^attached $REL \(cgroup id [0-9]+\): --connect tcp:$RP=$HOST_IP \(host loopback: needs Linux 5\.17, this is $kmaj\.$kmin\) --connect tcp:$SP=$HOST_IP \(host loopback: needs Linux 5\.17, this is $kmaj\.$kmin\)$" -- \
		"$HOSTLO" attach --cgroup $REL --connect $RP --connect $SP
	expect "list says it too" 0 "tcp:$RP=$HOST_IP \(host loopback: needs Linux 5\.17, this is $kmaj\.$kmin\)" -- "$HOSTLO" list
	expect "list -j says it too" 0 "needs Linux 5\.17, this is $kmaj\.$kmin" -- \
		bash -c "'$HOSTLO' list -j | jq -c '.[0].rules[0].host_loopback'"
	expect "the connect goes to the gateway, where nothing listens: refused" 1 "^error=ECONNREFUSED$" -- incg "$APP" "$PROBE" connect 127.0.0.1 $SP
	check "no host program is attached" "0 0" "$(ls "$HOSTLO_BPFFS/hostlo/links" | grep -c '^host-') $(hook_count "$CG2")"
	expect "detach" 0 "^detached $REL$" -- "$HOSTLO" detach --cgroup $REL
fi
expect "the host's own clients on 127.0.0.1 throughout" 0 "^PONG$" -- hcli ping

echo "hostside-local: $PASSED passed, $FAILED failed"
echo "$PASSED $FAILED$([ "$supported" = 1 ] || echo " unsupported")" >"${RESULT_FILE:-/dev/null}"
