#!/usr/bin/env bash
# hostside.sh: containers of a real Docker engine reach host services that listen only on the host's
# 127.0.0.1 (a real Redis, a plain socket server), through their own 127.0.0.1; nobody else does.
# The clients in the containers are the host's own binaries (redis-cli, sockprobe) and their libraries.
HL_NAME=hostlo-htest   # containers run under the cgroup parent /hostlo-htest
source "$(dirname "$0")/../lib.sh"
require redis-server redis-cli
source "$ROOT/tests/dockerlib.sh"
RP=16379 SP=16381 UP=16383 V6P=16385   # redis; a socket server; a port no rule names; a [::1]-only server
PASS=hostlo-test-secret   # Redis refuses clients from other addresses without a password (protected mode)
PARENT=/$HL_NAME
CLIENTS=hostlo-test-clients

docker_cleanup >/dev/null 2>&1
mkdir -p "$STATE/bpffs" && mount -t bpf bpf "$STATE/bpffs"
mkdir -p "$CG2$PARENT" "$CGH"
start_engine
build_image
client_image $CLIENTS "$(command -v redis-cli)" "$PROBE"

redis() { # the host's Redis on 127.0.0.1:$RP only, no persistence
	on_host redis-server --port $RP --bind 127.0.0.1 --requirepass $PASS --save '' --appendonly no --daemonize no \
		>"$STATE/redis.log" 2>&1 &
	for _ in $(seq 50); do hcli ping 2>/dev/null | grep -q PONG && return; sleep 0.1; done
	echo "hostlo: test: redis-server did not start: $(tail -3 "$STATE/redis.log")" >&2
}
redis_stop() {
	pkill -f "redis-server 127.0.0.1:$RP"
	for _ in $(seq 50); do ss -ltn "sport = :$RP" | grep -q LISTEN || return 0; sleep 0.1; done
}
rcli() { timeout 10 docker exec "$1" redis-cli --no-auth-warning -a $PASS -h "$2" -p $RP "${@:3}" 2>&1; }
hcli() { timeout 10 redis-cli --no-auth-warning -a $PASS -p $RP "$@" 2>&1; }   # the host's own client
probe() { timeout 10 docker exec "$1" sockprobe connect "$2" "$3" 2>&1; }
steered() { counter "$PARENT/$(cid a1)" host_steered; }
# links of the pinned sk_lookup program, wherever they attach it (0 when it is not pinned)
lookup_links() {
	local id
	id=$(bpftool -j prog show pinned "$HOSTLO_BPFFS/hostlo/lookup" 2>/dev/null | jq '.id // empty')
	[ -n "$id" ] || { echo 0; return; }
	bpftool -j link show | jq --argjson p "$id" '[.[] | select(.prog_id == $p and .netns_ino == '"$(stat -L -c %i /proc/self/ns/net)"')] | length'
}

redis
on_host "$PROBE" serve 127.0.0.1 $SP hello-from-loopback 600 >"$STATE/sp" 2>&1 &
on_host "$PROBE" serve 127.0.0.1 $UP not-for-containers 600 >"$STATE/up" 2>&1 &
on_host "$PROBE" serve ::1 $V6P hello-from-v6-loopback 600 >"$STATE/v6" 2>&1 &
wait_ready "$STATE/sp" && wait_ready "$STATE/up" && wait_ready "$STATE/v6" || exit 1
run a1 $PARENT $CLIENTS sleep 3600
run b1 $PARENT $CLIENTS sleep 3600

echo "# without hostlo: a host service on 127.0.0.1 only is out of every container's reach"
expect "redis-cli -h 127.0.0.1 in the container: refused" 1 "refused" -- rcli a1 127.0.0.1 ping
expect "redis-cli -h gateway: refused" 1 "refused" -- rcli a1 $GW ping

echo "# attach with the gateway as target: the host's loopback listeners are found at attach"
expect "attach says which host listeners were found" 0 "^attached $PARENT/$(cid a1) \(cgroup id [0-9]+\): --connect tcp:$RP=$GW \(host loopback: listening\) --connect tcp:$SP=$GW \(host loopback: listening\) --connect tcp:$V6P=$GW \(host loopback: no listener\)$" -- \
	"$HOSTLO" attach --container a1 --connect $RP --connect $SP --connect $V6P
expect "list -j: host_loopback names the bridge and the listener" 0 "^$BRIDGE 1 1$" -- \
	bash -c "'$HOSTLO' list -j | jq -r '.[0].rules[0].host_loopback | \"\(.interface) \(.ports) \(.listening)\"'"
expect "redis-cli PING through 127.0.0.1" 0 "^PONG$" -- rcli a1 127.0.0.1 ping
expect "redis-cli SET" 0 "^OK$" -- rcli a1 127.0.0.1 set hostlo-key from-a-container
expect "the host's own redis-cli reads it on 127.0.0.1" 0 "^from-a-container$" -- hcli get hostlo-key
expect "socket server: the app sees 127.0.0.1 as its peer" 0 "^peer=127.0.0.1:$SP got=hello-from-loopback$" -- probe a1 127.0.0.1 $SP
expect "socket server through ::1 (dual-stack socket, v4-mapped)" 0 "^peer=\[::1\]:$SP got=hello-from-loopback$" -- probe a1 ::1 $SP
expect "a host service on [::1] only is not reached (IPv4 flows; the kernel makes [::1] sockets v6-only)" 1 "^error=ECONNREFUSED$" -- probe a1 127.0.0.1 $V6P
check "host_steered counts each steered connection" 4 "$(steered)"

echo "# only what was asked: not another container, not another port, not a direct connect"
expect "an unattached container on the same bridge: gateway:$RP refused" 1 "refused" -- rcli b1 $GW ping
expect "... and its own 127.0.0.1:$RP refused" 1 "refused" -- rcli b1 127.0.0.1 ping
expect "the attached container connecting to gateway:$RP itself: refused" 1 "^error=ECONNREFUSED$" -- probe a1 $GW $RP
expect "a host port on 127.0.0.1 that no rule names, via 127.0.0.1" 1 "^error=ECONNREFUSED$" -- probe a1 127.0.0.1 $UP
expect "... and via the gateway" 1 "^error=ECONNREFUSED$" -- probe a1 $GW $UP
check "nothing else was steered" 4 "$(steered)"

echo "# the service restarts: picked up without running hostlo"
redis_stop
expect "list: no listener while it is down" 0 "tcp:$RP=$GW \(host loopback: no listener\)" -- "$HOSTLO" list
expect "meanwhile: refused, as without the feature" 1 "refused" -- rcli a1 127.0.0.1 ping
# a container's own loopback listener on that port is its own, never taken for the host's
run c1 $PARENT $CLIENTS sockprobe serve 127.0.0.1 $RP the-containers-own 600
sleep 0.5
expect "a container listening on its own 127.0.0.1:$RP is not a host listener" 0 "tcp:$RP=$GW \(host loopback: no listener\)" -- "$HOSTLO" list
redis
expect "after the restart: PING" 0 "^PONG$" -- rcli a1 127.0.0.1 ping
expect "the restarted (empty) Redis answers" 0 "^$" -- rcli a1 127.0.0.1 get hostlo-key
expect "list: listening again" 0 "tcp:$RP=$GW \(host loopback: listening\)" -- "$HOSTLO" list
expect "the host's own clients on 127.0.0.1 throughout" 0 "^PONG$" -- hcli ping

echo "# a hostlo in another network namespace (an init container's, a pod's) leaves the host side alone"
ip netns add "$NS"
expect "gc from another netns" 0 "^gc: " -- nsenter --net=/run/netns/$NS "$HOSTLO" gc
expect "attach --connect from another netns: the gateway is not its own, nothing new steers" 0 "^attached $PARENT/$(cid b1) \(cgroup id [0-9]+\): --connect tcp:$RP=$GW$" -- \
	nsenter --net=/run/netns/$NS "$HOSTLO" attach --container b1 --connect $RP
check "the host programs stay attached to the host" "4 1" \
	"$(ls "$HOSTLO_BPFFS/hostlo/links" | grep -c '^host-') $(lookup_links)"
expect "and a1 still reaches the host's Redis" 0 "^PONG$" -- rcli a1 127.0.0.1 ping
"$HOSTLO" detach --container b1 >/dev/null

echo "# an explicit address does not steer"
expect "attach --connect PORT=ADDR" 0 "^attached $PARENT/$(cid a1) \(cgroup id [0-9]+\): --connect tcp:$RP=$GW$" -- "$HOSTLO" attach --container a1 --connect $RP=$GW
expect "redis-cli: refused (the service is on loopback only)" 1 "refused" -- rcli a1 127.0.0.1 ping
check "no host program is attached while no rule steers" 0 "$(ls "$HOSTLO_BPFFS/hostlo/links" | grep -c '^host-')"
check "and no port is left for steering" "[]" "$(bpftool -j map dump pinned "$HOSTLO_BPFFS/hostlo/steerports" | jq -c .)"

echo "# detach and container removal leave no host-side entry"
"$HOSTLO" attach --container b1 --connect $RP=$GW >/dev/null   # another attachment keeps the shared objects
expect "attach a1 again (gateway)" 0 "host loopback: listening" -- "$HOSTLO" attach --container a1 --connect $RP
check "host programs attached: sockops (and the local-peer pair) on the cgroup2 root, sk_lookup on the host netns" "4 1 1" \
	"$(ls "$HOSTLO_BPFFS/hostlo/links" | grep -c '^host-') $(bpftool cgroup show "$CG2" | grep -c hostlo_sockops) $(lookup_links)"
expect "detach a1" 0 "^detached " -- "$HOSTLO" detach --container a1
check "no host link, no steering port, no listener held" "0 [] 0" \
	"$(ls "$HOSTLO_BPFFS/hostlo/links" | grep -c '^host-') $(bpftool -j map dump pinned "$HOSTLO_BPFFS/hostlo/steerports" | jq -c .) $(bpftool map dump pinned "$HOSTLO_BPFFS/hostlo/listeners" 2>/dev/null | grep -c '^key')"
check "the cgroup2 root has no hostlo program" 0 "$(bpftool cgroup show "$CG2" | grep -c hostlo_)"
expect "a1 after detach: refused" 1 "refused" -- rcli a1 127.0.0.1 ping
"$HOSTLO" attach --container a1 --connect $RP >/dev/null
expect "attached again: PONG" 0 "^PONG$" -- rcli a1 127.0.0.1 ping
docker rm -f a1 >/dev/null
expect "the container is removed: list drops it" 0 "^CGROUP[^
]*
$PARENT/$(cid b1) [^
]*$" -- "$HOSTLO" list
check "and its host-side entries with it" "0 []" \
	"$(ls "$HOSTLO_BPFFS/hostlo/links" | grep -c '^host-') $(bpftool -j map dump pinned "$HOSTLO_BPFFS/hostlo/steerports" | jq -c .)"
expect "the host's own clients still work" 0 "^PONG$" -- hcli ping

echo "hostside: $PASSED passed, $FAILED failed"
echo "$PASSED $FAILED" >"${RESULT_FILE:-/dev/null}"
