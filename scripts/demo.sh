#!/usr/bin/env bash
# demo.sh: `sudo make demo`: both everyday loopback failures in a throwaway container, then fixed by hostlo.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null && exec sudo "$0" "$@"
	echo "hostlo: demo: needs root (it creates a network namespace, cgroups and BPF programs): run it as root" >&2
	exit 1
fi
HOSTLO=$ROOT/build/hostlo PROBE=$ROOT/build/sockprobe
HL_NAME=hostlo-demo HL_VETH=hld HL_NET=198.18.1
source "$ROOT/tests/testhost.sh"
OUT=$(mktemp -d)
REL=/$HL_NAME WEB=3000
# the stand-in database's port: 5432 unless the host already has a service there (a real PostgreSQL
# on 127.0.0.1:5432 would be reached instead, through the host-loopback steering), else a free one
for DB in 5432 15432 25432 35432 45432; do
	ss -Hltn "sport = :$DB" 2>/dev/null | grep -q . || break
done

finish() {
	"$HOSTLO" detach --cgroup "$REL" >/dev/null 2>&1
	testhost_down
	rm -rf "$OUT"
}
trap finish EXIT
trap 'exit 130' INT TERM
testhost_down
testhost_up

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B= N=; fi
say() { printf '\n%s%s%s\n' "$B" "$*" "$N"; }
failed=0
# must OUTPUT REGEX: the demo fails (exit 1) when a step that hostlo should fix did not work.
must() { grep -Eq "$2" <<<"$1" || { echo "    ^ unexpected: hostlo did not do its job here"; failed=1; }; }
show() { printf '  $ %s\n' "$*"; "$@" 2>&1 | sed 's/^/    /'; }
app_connect() {
	printf '  app in the container: connect 127.0.0.1:%s\n' $DB
	incg "$CGT/app" "$PROBE" connect 127.0.0.1 $DB | sed 's/^/    /' | tee "$OUT/last"
}
app_bind() {
	printf '  app in the container: bind 127.0.0.1:%s; a client on the host connects to %s:%s\n' $WEB "$CONT_IP" $WEB
	incg "$CGT/app" "$PROBE" bind 127.0.0.1 $WEB 2 >"$OUT/bind" 2>&1 &
	local pid=$!
	wait_ready "$OUT/bind" >/dev/null 2>&1
	grep '^local=' "$OUT/bind" | sed 's/^/    app: /'
	on_host "$PROBE" connect "$CONT_IP" $WEB | sed 's/^/    host client: /' | tee "$OUT/last"
	wait "$pid" # the listener stops after one client or 2 s
}

say "A throwaway container: netns $NS ($CONT_IP), cgroup $REL, gateway $HOST_IP (the host)"
on_host "$PROBE" serve "$HOST_IP" $DB "hello-from-the-host-database" 120 >"$OUT/db" 2>&1 &
wait_ready "$OUT/db" || exit 1
echo "  a database-like server listens on the host, $HOST_IP:$DB"

say "1. Without hostlo: the app's localhost is its own"
app_connect
app_bind

say "2. Attach hostlo to the container's cgroup (the gateway is found in its network namespace)"
show "$HOSTLO" attach --cgroup "$REL" --connect $DB --bind $WEB

say "3. With hostlo: same apps, same addresses, no change to either"
app_connect
must "$(cat "$OUT/last")" 'got=hello-from-the-host-database'
incg "$CGT/app" "$PROBE" connect ::1 $DB | sed 's/^/    (and via [::1]) /' | tee "$OUT/last"
must "$(cat "$OUT/last")" 'got=hello-from-the-host-database'
app_bind
must "$(cat "$OUT/last")" 'got=bound'

say "4. Per-container counters"
show "$HOSTLO" stats
show "$HOSTLO" list

say "5. Detach: back to plain behaviour"
show "$HOSTLO" detach --cgroup "$REL"
app_connect
echo
if [ "$failed" -ne 0 ]; then echo "demo FAILED (see above); cleaned up"; exit 1; fi
echo "demo done: cleaned up"
