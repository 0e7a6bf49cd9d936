#!/usr/bin/env bash
# localpeer.sh: host services with Debian's default configs (PostgreSQL, Redis in protected mode,
# MariaDB) accept a container's client that hostlo redirected, because they see it as 127.0.0.1;
# nobody else is shown as local, --real-peer keeps the real address, nothing is rewritten in packets.
# Real Docker engine, the services installed by scripts/deps.sh, their real clients in the container.
HL_NAME=hostlo-ltest   # containers run under the cgroup parent /hostlo-ltest
source "$(dirname "$0")/../lib.sh"
PGBIN=/usr/lib/postgresql/15/bin
require redis-server redis-cli mariadbd mariadb mariadb-install-db pg_ctlcluster runuser $PGBIN/psql ss
source "$ROOT/tests/dockerlib.sh"
PG=5432 MY=3306 RP=6379 GP=16390   # the services' default ports; a Redis on the gateway address only
PW=hostlo-test-pw                  # the test accounts' password (PostgreSQL and MariaDB)
PARENT=/$HL_NAME
CLIENTS=hostlo-ltest-clients
MYD=$STATE/mysql   # MariaDB: its own datadir; socket, pid and log in it (owned by mysql)

for p in $PG $MY $RP $GP; do
	if ss -Hltn "sport = :$p" | grep -q .; then
		echo "hostlo: test: port $p is in use on this host: stop that service first (this suite starts its own)" >&2
		exit 1
	fi
done

# the services run as daemons of their own: stopped here, before the engine and the state go
services_stop() {
	runuser -u postgres -- psql -qc "drop role if exists app" >/dev/null 2>&1
	pg_ctlcluster 15 main stop -m fast >/dev/null 2>&1
	[ -f "$STATE/redis.pid" ] && kill "$(cat "$STATE/redis.pid")" 2>/dev/null
	[ -f "$STATE/redis-gw.pid" ] && kill "$(cat "$STATE/redis-gw.pid")" 2>/dev/null
	[ -f "$MYD/mysqld.pid" ] && kill "$(cat "$MYD/mysqld.pid")" 2>/dev/null
	for _ in $(seq 100); do
		ss -Hltn "( sport = :$PG or sport = :$MY or sport = :$RP or sport = :$GP )" | grep -q . || break
		sleep 0.1
	done
}
trap 'services_stop; docker_cleanup' EXIT

docker_cleanup >/dev/null 2>&1
mkdir -p "$STATE/bpffs" && mount -t bpf bpf "$STATE/bpffs"
mkdir -p "$CG2$PARENT" "$CGH"
start_engine
build_image
client_image $CLIENTS $PGBIN/psql "$(command -v redis-cli)" "$(command -v mariadb)" "$PROBE"

# The services, each with Debian's default configuration; only files (pid, log, data) moved to $STATE.
echo "# starting PostgreSQL 15 (default cluster), Redis (/etc/redis/redis.conf), MariaDB (/etc/mysql)"
on_host pg_ctlcluster 15 main start || exit 1
runuser -u postgres -- psql -qc "create role app login password '$PW'" >/dev/null 2>&1
on_host redis-server /etc/redis/redis.conf --daemonize yes --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log" \
	--dir "$STATE" --save ''
# the same config, on the gateway's address only: the gateway target without steering
on_host redis-server /etc/redis/redis.conf --daemonize yes --pidfile "$STATE/redis-gw.pid" --logfile "$STATE/redis-gw.log" \
	--dir "$STATE" --save '' --port $GP --bind $GW
mkdir -p "$MYD" && chown mysql: "$MYD"
mariadb-install-db --user=mysql --datadir="$MYD" --auth-root-authentication-method=socket --skip-test-db \
	>"$STATE/mysql-install.log" 2>&1 || { echo "hostlo: test: mariadb-install-db: $(tail -3 "$STATE/mysql-install.log")" >&2; exit 1; }
on_host mariadbd --user=mysql --datadir="$MYD" --socket="$MYD/mysqld.sock" --pid-file="$MYD/mysqld.pid" \
	--log-error="$MYD/mysqld.err" >"$STATE/mysqld.out" 2>&1 &
hmy() { timeout 10 mariadb --socket="$MYD/mysqld.sock" -u root -N -e "$@" 2>&1; }
for _ in $(seq 100); do hmy 'select 1' >/dev/null 2>&1 && break; sleep 0.1; done
hmy "create user app@localhost identified by '$PW'" >/dev/null
for p in $PG $RP $GP; do
	for _ in $(seq 50); do ss -Hltn "sport = :$p" | grep -q . && break; sleep 0.1; done
done

psql_in() { timeout 10 docker exec -e PGPASSWORD=$PW -e PGCONNECT_TIMEOUT=5 "$1" psql "host=$2 port=$PG user=app dbname=postgres" -tAc "$3" 2>&1; }
psql_host() { PGPASSWORD=$PW timeout 10 $PGBIN/psql "host=$1 port=$PG user=app dbname=postgres" -tAc "$2" 2>&1; }
rcli() { timeout 10 docker exec "$1" redis-cli -h "$2" -p "$3" "${@:4}" 2>&1; }
hcli() { timeout 10 redis-cli "$@" 2>&1; }
denied() { "$@"; return 0; }   # a refusal by the service, not by the network: its message is what counts
my_in() { timeout 10 docker exec "$1" mariadb --protocol=tcp -h "$2" -P $MY -u app -p$PW -N -e "$3" 2>&1; }
local_count() { counter "$PARENT/$(cid a1)" host_peer_local; }
host_links() { ls "$HOSTLO_BPFFS/hostlo/links" 2>/dev/null | grep -c '^host-'; }
# this suite's programs attached to the cgroup2 root, by name
SOCKOPS=hostlo_sockops   # its name on the cgroup2 root: this kernel's build of it
percpu_kernel && SOCKOPS=hostlo_sockops_percpu
root_progs() {
	local ids
	ids=$(for n in sockops peer4 sockname4; do bpftool -j prog show pinned "$HOSTLO_BPFFS/hostlo/$n" 2>/dev/null | jq .id; done | jq -sc .)
	bpftool -j cgroup show "$CG2" | jq -r --argjson ids "$ids" '[.[] | select(.id as $i | $ids | index($i)) | .name] | sort | join(" ")'
}

run a1 $PARENT $CLIENTS sleep 3600
run b1 $PARENT $CLIENTS sleep 3600
A1=$(docker inspect -f '{{.NetworkSettings.IPAddress}}' a1) B1=$(docker inspect -f '{{.NetworkSettings.IPAddress}}' b1)

echo "# without hostlo: the container's 127.0.0.1 is its own; the gateway's Redis refuses it"
expect "psql 127.0.0.1 in the container: connection refused" 2 "Connection refused" -- psql_in a1 127.0.0.1 'select 1'
expect "redis-cli on the gateway address: DENIED (protected mode)" 0 "^DENIED Redis is running in protected mode" -- denied rcli a1 $GW $GP ping

echo "# attach with the gateway as target: every service sees a loopback client"
expect "attach" 0 "^attached $PARENT/$(cid a1) .*--connect tcp:$PG=$GW \(host loopback: listening\)" -- \
	"$HOSTLO" attach --container a1 --connect $PG --connect $MY --connect $RP --connect $GP
expect "list says what the host service sees" 0 "tcp:$PG=$GW \(host loopback: listening\) \(host service sees 127.0.0.1\)" -- "$HOSTLO" list
expect "list -j: service_sees" 0 "^127.0.0.1 false$" -- \
	bash -c "'$HOSTLO' list -j | jq -r '.[0].rules[0] | \"\(.host_loopback.service_sees) \(.real_peer)\"'"
check "host programs on the cgroup2 root: sockops, getpeername4, getsockname4" \
	"hostlo_host_name4 hostlo_host_peer4 $SOCKOPS 4" "$(root_progs) $(host_links)"
expect "PostgreSQL: select 1 with a password (default pg_hba.conf)" 0 "^1$" -- psql_in a1 127.0.0.1 'select 1'
expect "PostgreSQL: inet_client_addr() is 127.0.0.1, inet_server_addr() too (steered to its loopback listener)" 0 \
	"^127.0.0.1\|127.0.0.1$" -- psql_in a1 127.0.0.1 'select inet_client_addr(), inet_server_addr()'
expect "Redis (protected mode, no password): PONG" 0 "^PONG$" -- rcli a1 127.0.0.1 $RP ping
expect "Redis: client list shows addr=127.0.0.1 and laddr=127.0.0.1:$RP" 0 "addr=127.0.0.1:[0-9]+ laddr=127.0.0.1:$RP " -- \
	rcli a1 127.0.0.1 $RP client list
expect "Redis on the gateway address (not steered): PONG through 127.0.0.1" 0 "^PONG$" -- rcli a1 127.0.0.1 $GP ping
expect "... its client list: addr=127.0.0.1, laddr the gateway's (the real local address)" 0 "addr=127.0.0.1:[0-9]+ laddr=$GW:$GP " -- \
	rcli a1 127.0.0.1 $GP client list
expect "MariaDB: app@localhost logs in over TCP" 0 "^app@localhost	app@localhost$" -- my_in a1 127.0.0.1 'select current_user(), user()'
check "host_peer_local counts each connection shown as local" 7 "$(local_count)"

echo "# only those connections"
expect "the attached container connecting to the gateway's Redis itself: DENIED" 0 "^DENIED" -- denied rcli a1 $GW $GP ping
expect "an unattached container on the same bridge: DENIED there" 0 "^DENIED" -- denied rcli b1 $GW $GP ping
expect "... and its own 127.0.0.1:$RP gets nothing" 1 "refused" -- rcli b1 127.0.0.1 $RP ping
expect "... nor the gateway on $RP (loopback only)" 1 "refused" -- rcli b1 $GW $RP ping
expect "a host client from a non-loopback address: DENIED" 0 "^DENIED" -- denied hcli -h $GW -p $GP ping
expect "the host's own client on 127.0.0.1: Redis sees it as it is" 0 "addr=127.0.0.1:[0-9]+ laddr=127.0.0.1:$RP .*cmd=client" -- \
	hcli -p $RP client list
expect "the host's own psql: its real peer" 0 "^127.0.0.1$" -- psql_host 127.0.0.1 'select inet_client_addr()'
expect "the host's own mariadb client over TCP: app@localhost" 0 "^app@localhost$" -- \
	timeout 10 mariadb --protocol=tcp -h 127.0.0.1 -P $MY -u app -p$PW -N -e 'select current_user()'
check "nothing else was counted" 7 "$(local_count)"
# a connection kept open: the host's ss shows the container's real address (packets are not rewritten)
docker exec a1 redis-cli -h 127.0.0.1 -p $RP blpop hostlo-none 3 >/dev/null 2>&1 &
bpid=$!
sleep 1
expect "ss on the host: the container's real address as the peer" 0 "$A1:[0-9]+" -- ss -Htn state established "( sport = :$RP )"
wait $bpid

echo "# trace shows it"
"$HOSTLO" trace >"$STATE/trace" 2>&1 &
tpid=$!
sleep 0.5
rcli a1 127.0.0.1 $RP ping >/dev/null
sleep 0.5
kill -INT $tpid; wait $tpid
expect "a peer_local line: the service, the container, its real address -> 127.0.0.1" 0 \
	"$(cid a1 | cut -c1-12) +$PARENT/$(cid a1) +[0-9]+ +redis-server +peer_local +tcp $A1:[0-9]+ -> 127.0.0.1:[0-9]+" -- cat "$STATE/trace"

echo "# --real-peer: the service sees the container's address"
counted=$(local_count)
expect "attach --real-peer" 0 "^attached .*--connect tcp:$PG=$GW --real-peer \(host loopback: listening\)" -- \
	"$HOSTLO" attach --container a1 --connect $PG --real-peer --connect $MY --real-peer --connect $RP --real-peer
expect "list says so" 0 "tcp:$PG=$GW --real-peer \(host loopback: listening\) \(host service sees the container's address\)" -- "$HOSTLO" list
check "no getpeername/getsockname program while no rule needs it" "$SOCKOPS 2" "$(root_progs) $(host_links)"
expect "PostgreSQL: the pg_hba.conf refusal" 2 "no pg_hba.conf entry for host \"$A1\"" -- psql_in a1 127.0.0.1 'select 1'
expect "Redis: DENIED" 0 "^DENIED" -- denied rcli a1 127.0.0.1 $RP ping
expect "MariaDB: not allowed from the container's address" 1 "'$A1'" -- my_in a1 127.0.0.1 'select 1'
check "nothing counted" "$counted" "$(local_count)"
expect "one rule with, one without" 0 "^attached " -- "$HOSTLO" attach --container a1 --connect $PG --real-peer --connect $RP
expect "... each as asked: Redis PONG" 0 "^PONG$" -- rcli a1 127.0.0.1 $RP ping
expect "... PostgreSQL refuses" 2 "no pg_hba.conf entry" -- psql_in a1 127.0.0.1 'select 1'

echo "# detach: nothing left on the host"
expect "detach" 0 "^detached " -- "$HOSTLO" detach --container a1
check "no host program on the cgroup2 root, no host link" "0 0" "$(bpftool cgroup show "$CG2" | grep -c hostlo_) $(host_links)"
expect "psql after detach: refused" 2 "Connection refused" -- psql_in a1 127.0.0.1 'select 1'
expect "the host's own clients still work" 0 "^PONG$" -- hcli -p $RP ping

echo "localpeer: $PASSED passed, $FAILED failed"
echo "$PASSED $FAILED" >"${RESULT_FILE:-/dev/null}"
