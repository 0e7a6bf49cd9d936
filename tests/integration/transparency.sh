#!/usr/bin/env bash
# transparency.sh: the app sees the address it asked for (getpeername, a reply's source), UDP works both
# ways (a real resolver and dig), and a local listener keeps its port local unless --always.
source "$(dirname "$0")/../lib.sh"
require dnsmasq dig
trap cleanup EXIT
trap 'exit 130' INT TERM
setup_host

TP=15432 UP=15353 UP2=15354 KP=15500 KU=15501
OUT=$STATE/out
mkdir -p "$OUT"
APP=$CGT/app REL=/hostlo-test

# exit_note RC: nothing for 0, else " (exit RC)", appended to what a check compares.
exit_note() { [ "$1" = 0 ] || echo " (exit $1)"; }
# while_listening JOB FILE CMD...: CMD, then fails saying so unless the local listener JOB (which CMD
# must bypass) was listening throughout: a check that it was bypassed must not pass because there was none.
while_listening() {
	local job=$1 file=$2 rc
	shift 2
	"$@"; rc=$?
	listening "$job" "$file" || { echo "the local listener was not listening: $(tr '\n' ' ' <"$file")"; return 1; }
	return $rc
}

on_host "$PROBE" serve $HOST_IP $TP host 600 >"$OUT/tcp" 2>&1 &
on_host "$PROBE" serve $HOST_IP $KP host-kp 600 >"$OUT/kp" 2>&1 &
on_host "$PROBE" udpserve $HOST_IP $UP udp-host 600 >"$OUT/udp" 2>&1 &
on_host "$PROBE" udpserve $HOST_IP $UP2 udp-host2 600 >"$OUT/udp2" 2>&1 &
on_host "$PROBE" udpserve $HOST_IP $KU udp-host-ku 600 >"$OUT/ku" 2>&1 &
for f in tcp kp udp udp2 ku; do wait_ready "$OUT/$f" || exit 1; done
# a real resolver on the host side, answering for one test name only
on_host dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces --listen-address=$HOST_IP \
	--port=53 --address=/hostlo.test/198.18.0.99 --pid-file="$OUT/dnsmasq.pid" --log-facility=- >"$OUT/dns" 2>&1 &
for _ in $(seq 50); do dig +short +time=1 +tries=1 @$HOST_IP hostlo.test 2>/dev/null | grep -q 198.18.0.99 && break; sleep 0.1; done

"$HOSTLO" attach --cgroup $REL --connect $TP --connect udp:$UP --connect udp:$UP2 --connect udp:53 \
	--connect $KP --connect udp:$KU >/dev/null || { not_ok "attach"; exit 1; }

echo "# TCP: getpeername shows what the app asked for"
expect "127.0.0.1:$TP: peer 127.0.0.1, bytes from the host" 0 "^peer=127.0.0.1:$TP got=host$" -- incg "$APP" "$PROBE" connect 127.0.0.1 $TP
expect "[::1]:$TP: peer [::1], bytes from the host" 0 "^peer=\[::1\]:$TP got=host$" -- incg "$APP" "$PROBE" connect ::1 $TP
# a redirected TCP connect keeps no per-socket record: getpeername finds the loopback port from the
# rules, so connects made straight to a rule's target are the ones told apart
expect "a direct connect to the rule's target: the real peer" 0 "^peer=$HOST_IP:$TP got=host$" -- incg "$APP" "$PROBE" connect $HOST_IP $TP
expect "the same from an IPv6 socket ([::ffff:target]): the real peer" 0 "^peer=\[::ffff:$HOST_IP\]:$TP got=host$" -- incg "$APP" "$PROBE" connect ::ffff:$HOST_IP $TP
expect "[::ffff:127.0.0.1]:$TP from an IPv6 socket: peer [::ffff:127.0.0.1], not [::1]" 0 "^peer=\[::ffff:127.0.0.1\]:$TP got=host$" -- incg "$APP" "$PROBE" connect ::ffff:127.0.0.1 $TP
"$HOSTLO" attach --cgroup $REL --connect $TP --connect 25432=$HOST_IP:$TP --connect udp:$UP --connect udp:$UP2 \
	--connect udp:53 --connect $KP --connect udp:$KU >/dev/null || not_ok "attach with a second port to the same target"
expect "two loopback ports to one target: each shows its own (25432)" 0 "^peer=127.0.0.1:25432 got=host$" -- incg "$APP" "$PROBE" connect 127.0.0.1 25432
expect "two loopback ports to one target: each shows its own ($TP)" 0 "^peer=127.0.0.1:$TP got=host$" -- incg "$APP" "$PROBE" connect 127.0.0.1 $TP
expect "... and [::1]:25432 from an IPv6 socket" 0 "^peer=\[::1\]:25432 got=host$" -- incg "$APP" "$PROBE" connect ::1 25432
# a connection made under a rule outlives the rule: after the rules change it still shows what it asked for
rm -f "$OUT/swapped"
# (to $TP: restored from the carried-over peer entry; to 25432: from the socket's record)
incg "$APP" "$PROBE" hold 127.0.0.1 $TP "$OUT/swapped" >"$OUT/hold" 2>&1 &
hold_pid=$!
incg "$APP" "$PROBE" hold 127.0.0.1 25432 "$OUT/swapped" >"$OUT/hold2" 2>&1 &
hold2_pid=$!
wait_ready "$OUT/hold" && wait_ready "$OUT/hold2" || not_ok "two held connections"
"$HOSTLO" attach --cgroup $REL --connect udp:$UP --connect udp:$UP2 --connect udp:53 --connect $KP --connect udp:$KU \
	>/dev/null || not_ok "attach without the TCP rules"
touch "$OUT/swapped"
wait $hold_pid; hold_rc=$?
wait $hold2_pid; hold2_rc=$?
# (a hold that failed, e.g. "error=timeout", also shows its exit status)
check "a connection made before its rule was removed: getpeername shows 127.0.0.1:$TP before and after" \
	"peer=127.0.0.1:$TP ready peer=127.0.0.1:$TP" "$(tr '\n' ' ' <"$OUT/hold" | sed 's/ $//')$(exit_note $hold_rc)"
check "... and one to the second port (recorded): 127.0.0.1:25432 before and after" \
	"peer=127.0.0.1:25432 ready peer=127.0.0.1:25432" "$(tr '\n' ' ' <"$OUT/hold2" | sed 's/ $//')$(exit_note $hold2_rc)"
expect "after the change, 127.0.0.1:$TP is no longer redirected" 1 "^error=ECONNREFUSED$" -- incg "$APP" "$PROBE" connect 127.0.0.1 $TP
expect "and a direct connect to the old target still shows the real peer" 0 "^peer=$HOST_IP:$TP got=host$" -- incg "$APP" "$PROBE" connect $HOST_IP $TP
"$HOSTLO" attach --cgroup $REL --connect $TP --connect udp:$UP --connect udp:$UP2 --connect udp:53 \
	--connect $KP --connect udp:$KU >/dev/null || not_ok "attach as before"

echo "# UDP both ways: the reply comes back from the loopback address"
expect "sendto 127.0.0.1:$UP: reply from 127.0.0.1:$UP" 0 "^from=127.0.0.1:$UP got=udp-host$" -- incg "$APP" "$PROBE" udp 127.0.0.1 $UP
expect "sendto [::ffff:127.0.0.1]:$UP: reply from [::ffff:127.0.0.1]:$UP" 0 "^from=\[::ffff:127.0.0.1\]:$UP got=udp-host$" -- incg "$APP" "$PROBE" udp ::ffff:127.0.0.1 $UP
expect "sendto [::1] (unconnected) is left alone: the kernel cannot send it to an IPv4 target" 1 "^error=(ECONNREFUSED|EAGAIN)$" -- incg "$APP" "$PROBE" udp ::1 $UP
expect "connected 127.0.0.1:$UP: peer and reply source are 127.0.0.1" 0 "^peer=127.0.0.1:$UP from=127.0.0.1:$UP got=udp-host$" -- incg "$APP" "$PROBE" udp 127.0.0.1 $UP connected
expect "connected [::1]:$UP: peer and reply source are [::1]" 0 "^peer=\[::1\]:$UP from=\[::1\]:$UP got=udp-host$" -- incg "$APP" "$PROBE" udp ::1 $UP connected
expect "sendto the host address itself: the real source" 0 "^from=$HOST_IP:$UP got=udp-host$" -- incg "$APP" "$PROBE" udp $HOST_IP $UP
expect "outside the attached cgroup: nothing on its loopback" 1 "^error=(ECONNREFUSED|EAGAIN)$" -- incg "$CGO" "$PROBE" udp 127.0.0.1 $UP
check "counters: 4 UDP redirects, 4 replies restored, 12 peers restored (10 TCP above, 2 UDP)" "4 4 12" \
	"$(counter $REL/app udp_redirected) $(counter $REL/app udp_reply_restored) $(counter $REL/app peer_restored)"

echo "# DNS: a real query through 127.0.0.1:53, answered by the host's resolver, accepted by dig"
expect "dig @127.0.0.1 resolves through the host's dnsmasq" 0 "^198.18.0.99$" -- incg "$APP" dig +short +time=2 +tries=1 @127.0.0.1 hostlo.test
expect "outside the attached cgroup dig gets no answer" 9 "no servers could be reached" -- incg "$CGO" dig +short +time=1 +tries=1 @127.0.0.1 hostlo.test

echo "# local listeners win"
# All from CPU 0: a redirected connect leaves "nothing listens on loopback:port here" in that CPU's memo,
# which the next listen() anywhere must end (here one from another cgroup of the container's netns).
expect "127.0.0.1:$KP with nothing listening in the container: redirected" 0 "^peer=127.0.0.1:$KP got=host-kp$" -- incg "$APP" taskset -c 0 "$PROBE" connect 127.0.0.1 $KP
expect "[::1]:$KP likewise" 0 "^peer=\[::1\]:$KP got=host-kp$" -- incg "$APP" taskset -c 0 "$PROBE" connect ::1 $KP
incg "$CGO" "$PROBE" serve 127.0.0.1 $KP local 120 >"$OUT/local" 2>&1 &
local_pid=$!
incg "$CGO" "$PROBE" serve ::1 $KP local6 120 >"$OUT/local6" 2>&1 &
local6_pid=$!
wait_ready "$OUT/local" && wait_ready "$OUT/local6"
before=$(counter $REL/app connect_kept_local)
expect "then a listener on 127.0.0.1:$KP in the container: it keeps its clients" 0 "^peer=127.0.0.1:$KP got=local$" -- incg "$APP" taskset -c 0 "$PROBE" connect 127.0.0.1 $KP
expect "... and one on [::1]:$KP keeps [::1]'s" 0 "^peer=\[::1\]:$KP got=local6$" -- incg "$APP" taskset -c 0 "$PROBE" connect ::1 $KP
check "counted as connect_kept_local" $((before + 2)) "$(counter $REL/app connect_kept_local)"
stop_listener $local_pid
stop_listener $local6_pid
expect "once it stops listening, the next connect is redirected" 0 "^peer=127.0.0.1:$KP got=host-kp$" -- incg "$APP" "$PROBE" connect 127.0.0.1 $KP
incg "$CGO" "$PROBE" udpserve 127.0.0.1 $KU udp-local 120 >"$OUT/ulocal" 2>&1 &
ulocal_pid=$!
wait_ready "$OUT/ulocal"
expect "UDP: a socket bound to 127.0.0.1:$KU in the container keeps its datagrams" 0 "^from=127.0.0.1:$KU got=udp-local$" -- incg "$APP" "$PROBE" udp 127.0.0.1 $KU
"$HOSTLO" attach --cgroup $REL --connect $TP --connect $KP --always --connect udp:$KU --always >/dev/null
expect "--always: the UDP datagram goes to the host anyway" 0 "^from=127.0.0.1:$KU got=udp-host-ku$" -- while_listening $ulocal_pid "$OUT/ulocal" incg "$APP" "$PROBE" udp 127.0.0.1 $KU
stop_listener $ulocal_pid
incg "$CGO" "$PROBE" serve 127.0.0.1 $KP local 120 >"$OUT/local2" 2>&1 &
local_pid=$!
wait_ready "$OUT/local2"
expect "--always: the TCP connect goes to the host anyway" 0 "^peer=127.0.0.1:$KP got=host-kp$" -- while_listening $local_pid "$OUT/local2" incg "$APP" "$PROBE" connect 127.0.0.1 $KP
expect "list shows --always" 0 "--connect tcp:$KP=$HOST_IP --always" -- "$HOSTLO" list
stop_listener $local_pid

echo "# per-socket state is bounded and goes with the socket"
"$HOSTLO" attach --cgroup $REL --connect $TP --connect udp:$UP --connect udp:$UP2 >/dev/null
# one unconnected socket sends to 5 redirected ports, then reads the 5 replies
FAN=16100
for p in $(seq $FAN $((FAN + 4))); do on_host "$PROBE" udpserve $HOST_IP $p "p$p" 600 >"$OUT/fan$p" 2>&1 & done
for p in $(seq $FAN $((FAN + 4))); do wait_ready "$OUT/fan$p" || exit 1; done
"$HOSTLO" attach --cgroup $REL --connect $TP --connect udp:$FAN-$((FAN + 4)) >/dev/null
expect "one socket, 5 destinations: the 4 most recent are restored, the oldest shows its real source" 0 \
	"^from=127.0.0.1:$((FAN + 1)) got=p$((FAN + 1))
from=127.0.0.1:$((FAN + 2)) got=p$((FAN + 2))
from=127.0.0.1:$((FAN + 3)) got=p$((FAN + 3))
from=127.0.0.1:$((FAN + 4)) got=p$((FAN + 4))
from=$HOST_IP:$FAN got=p$FAN$" -- bash -c "$(declare -f incg); NS=$NS incg '$APP' '$PROBE' udpfan 127.0.0.1 $FAN $((FAN + 4)) | sort"
before=$(counter $REL/app peer_restored)
incg "$APP" "$PROBE" connect 127.0.0.1 $TP 2000 >"$OUT/many"
check "2000 sockets opened and closed, every one redirected and restored" "2000 $((before + 2000))" \
	"$(grep -c "^peer=127.0.0.1:$TP got=host$" "$OUT/many") $(counter $REL/app peer_restored)"

echo "transparency: $PASSED passed, $FAILED failed"
echo "$PASSED $FAILED" >"${RESULT_FILE:-/dev/null}"
