#!/usr/bin/env bash
# reliability.sh: crashes at every step, two hostlo at once, idempotence, upgrades and rule swaps under
# a 100,000-connect load, bad input, least privilege, fuzzing. Its numbers close the run.
source "$(dirname "$0")/../lib.sh"
require
CRASH=$ROOT/build/crash/hostlo      # this build, with crash points (HOSTLO_CRASH_AT, HOSTLO_STALL_AT)
VARIANT=$ROOT/build/variant/hostlo  # another BPF object: what an older or newer build would have pinned
LOADGEN=$ROOT/build/loadgen FUZZ=$ROOT/build/fuzz_parse
for t in "$CRASH" "$VARIANT" "$LOADGEN" "$FUZZ"; do
	[ -x "$t" ] || { echo "hostlo: test: $t is missing (make test builds it)" >&2; exit 1; }
done
trap cleanup EXIT
trap 'exit 130' INT TERM
setup_host

HP=15432 HA=15441 HB=15442
LOAD_CONNECTS=${LOAD_CONNECTS:-100000} SWAPS=${SWAPS:-100} FUZZ_SECONDS=${FUZZ_SECONDS:-60}
OUT=$STATE/out
mkdir -p "$OUT"
APP=$CGT/app REL=/hostlo-test HOOKS=9
on_host "$PROBE" serve $HOST_IP $HP host 900 >"$OUT/host" 2>&1 &
on_host "$PROBE" serve $HOST_IP $HA host-a 900 >"$OUT/a" 2>&1 &
on_host "$PROBE" serve $HOST_IP $HB host-b 900 >"$OUT/b" 2>&1 &
for f in host a b; do wait_ready "$OUT/$f" || exit 1; done

links_of() { ls "$HOSTLO_BPFFS/hostlo/links" 2>/dev/null | grep -c "^$(stat -c %i "$CG2$1")-"; }

# state REL: "attached" when the CLI, bpffs and the kernel agree REL is fully attached and redirects,
# "detached" when they agree it is not and does not; anything else describes the half state.
state() {
	local rel=$1 listed hooks links conn
	listed=$("$HOSTLO" list -j | jq -r --arg c "$rel" '[.[] | select(.cgroup == $c)] | length') || { echo "list failed"; return; }
	hooks=$(hook_count "$CG2$rel") links=$(links_of "$rel")
	conn=$(incg "$APP" "$PROBE" connect 127.0.0.1 $HP 2>&1)
	if find "$HOSTLO_BPFFS" -maxdepth 1 -name 'hostlo-new-*' | grep -q .; then echo "stale private directory"
	elif [ "$listed" = 1 ] && [ "$hooks" = $HOOKS ] && [ "$links" = $HOOKS ] && [[ $conn == *got=host ]]; then echo attached
	elif [ "$listed" = 0 ] && [ "$hooks" = 0 ] && [ "$links" = 0 ] && [[ $conn == error=* ]]; then echo detached
	else echo "HALF: listed=$listed hooks=$hooks links=$links connect=$conn"; fi
}

# same_programs: every link on the cgroup runs the program pinned for its hook ("same"; otherwise the
# hooks whose ids differ or are not numbers, e.g. null for a program that is missing on both sides).
same_programs() {
	local h want got bad=
	for h in connect4 connect6 bind4 bind6 getpeername4 getpeername6 sendmsg4 recvmsg4 recvmsg6; do
		want=$(bpftool -j prog show pinned "$HOSTLO_BPFFS/hostlo/$h" | jq .id)
		got=$(cgroup_progs "$CGT" | jq --arg n "hostlo_$h" '[.[] | select(.name == $n or .name == $n + "_percpu") | .id] | first')
		[[ $want =~ ^[0-9]+$ ]] && [ "$want" = "$got" ] || bad="$bad $h:pinned=${want:-none},linked=${got:-none}"
	done
	echo "${bad:+differ:}${bad:-same}"
}

kills=0
# kill_at STEP CMD...: the crash build runs CMD and kills itself (SIGKILL) at STEP; returns its status.
kill_at() {
	local step=$1
	shift
	kills=$((kills + 1))
	# in a subshell that does not exec it, so the kill is reported to no one
	(HOSTLO_CRASH_AT=$step "$CRASH" "$@" >/dev/null 2>&1; exit $?) 2>/dev/null
}
host_links() { ls "$HOSTLO_BPFFS/hostlo/links" | grep -c '^host-'; }
# crash_case STEP WANT CMD...: the crash build is killed at STEP during CMD; the next command finds WANT.
crash_case() {
	local step=$1 want=$2 rc
	shift 2
	kill_at "$step" "$@"
	rc=$?
	check "SIGKILL at $step (hostlo $1): then $want, nothing half-done" "137 $want" "$rc $(state $REL)"
}

echo "# crash safety: SIGKILL at each step; the next command recognises and repairs"
for step in create:pinned attach:rules-map attach:rules-set attach:config attach:linked; do
	"$HOSTLO" detach --all >/dev/null
	crash_case $step detached attach --cgroup $REL --connect $HP
	expect "after it, attach works" 0 "^attached $REL " -- "$HOSTLO" attach --cgroup $REL --connect $HP
done
i=0
for step in attach:rules-map attach:rules-set attach:config; do
	i=$((i + 1))   # other rules each time: a re-attach, which must leave the old or the new rules, whole
	crash_case $step attached attach --cgroup $REL --connect $HP --bind $((3000 + i))
done
"$HOSTLO" attach --cgroup $REL/app2 --connect $HP=$HOST_IP >/dev/null   # so detach is not the last one
for step in detach:unlinked detach:rules detach:stats; do
	"$HOSTLO" attach --cgroup $REL --connect $HP >/dev/null
	crash_case $step detached detach --cgroup $REL
done
"$HOSTLO" detach --all >/dev/null
"$HOSTLO" attach --cgroup $REL --connect $HP >/dev/null
crash_case teardown:links detached detach --cgroup $REL
check "after the last detach was killed mid-teardown: bpffs is left clean" 0 "$(hostlo_pins)"
mkdir -p "$CGT/gone1" "$CGT/gone2"
"$HOSTLO" attach --cgroup $REL/gone1 --connect $HP=$HOST_IP >/dev/null
"$HOSTLO" attach --cgroup $REL/gone2 --connect $HP=$HOST_IP >/dev/null
"$HOSTLO" attach --cgroup $REL --connect $HP >/dev/null
rmdir "$CGT/gone1" "$CGT/gone2"
kill_at gc:removed gc
check "SIGKILL during gc: the next command finishes it" "$REL" "$("$HOSTLO" list -j | jq -r '[.[].cgroup] | join(" ")')"
check "and leaves only $REL's links" $HOOKS "$(ls "$HOSTLO_BPFFS/hostlo/links" | grep -vc '^host-')"
"$HOSTLO" detach --all >/dev/null
if host_side_kernel; then
kill_at host:linked attach --cgroup $REL --connect $HP
check "SIGKILL between the two host-side links: half set up" 1 "$(host_links)"
"$HOSTLO" list >/dev/null
check "the next command (list) completes the host side (with the local-peer pair)" 4 "$(host_links)"
"$HOSTLO" detach --all >/dev/null
"$HOSTLO" attach --cgroup $REL/app2 --connect $HP=$HOST_IP >/dev/null   # no steering: no host side yet
kill_at host:sync attach --cgroup $REL --connect $HP
check "SIGKILL after the rules, before the host side: none of it yet" 0 "$(host_links)"
"$HOSTLO" stats >/dev/null
check "the next command (stats) sets the host side up (with the local-peer pair)" 4 "$(host_links)"
"$HOSTLO" detach --all >/dev/null
else echo "(Linux $(uname -r): no host side, its crash cases are left out)"; fi
mkdir -p "$CGT/other"
"$HOSTLO" attach --cgroup $REL/app2 --connect $HP=$HOST_IP >/dev/null
kill_at attach:linked attach --cgroup $REL --connect $HP
"$HOSTLO" attach --cgroup $REL/other --connect $HP=$HOST_IP >/dev/null
check "an attach killed while linking is removed by the next attach (of another cgroup)" "0 0" \
	"$(hook_count "$CGT") $(links_of $REL)"
expect "... and its cgroup connects as if never attached" 1 "^error=" -- incg "$APP" "$PROBE" connect 127.0.0.1 $HP
for step in upgrade:loaded upgrade:link upgrade:pinned; do
	"$HOSTLO" detach --all >/dev/null
	"$VARIANT" attach --cgroup $REL --connect $HP >/dev/null
	crash_case $step attached attach --cgroup $REL --connect $HP
	"$HOSTLO" attach --cgroup $REL --connect $HP >/dev/null
	check "after an upgrade killed at $step, the next attach finishes it" same "$(same_programs)"
done
"$HOSTLO" detach --all >/dev/null

echo "# two hostlo at once are serialised"
"$HOSTLO" attach --cgroup $REL --connect $HP >/dev/null
rm -f "$OUT/held"
# exec: $! is the first hostlo itself, so its state can be read when the second returns
(HOSTLO_STALL_AT=lock:held HOSTLO_STALL_MARK="$OUT/held" exec "$CRASH" attach --cgroup $REL/app --connect $HP=$HOST_IP:$HA >/dev/null 2>&1) &
first=$!
for _ in $(seq 300); do [ -e "$OUT/held" ] && break; sleep 0.1; done   # the first holds the lock
"$HOSTLO" attach --cgroup $REL/app --connect $HP=$HOST_IP:$HB >/dev/null 2>&1
second_rc=$?
# Not a clock comparison (the first's exit and the second's lock are too close under qemu to order
# by timestamps): when the second returns, the first must have exited (gone or a zombie), not stalled.
first_state=$(awk '{print $3}' /proc/$first/stat 2>/dev/null || echo gone)
wait $first
first_rc=$?
check "the second waited for the first (the first had exited when it returned), both succeeded, the last one's rules hold" \
	"exited 0 0 --connect tcp:$HP=$HOST_IP:$HB" \
	"$(case $first_state in Z|gone) echo exited;; *) echo "state-$first_state";; esac) $first_rc $second_rc $("$HOSTLO" list -j | jq -r --arg c $REL/app '.[] | select(.cgroup == $c) | .rules[0].rule')"
"$HOSTLO" detach --all >/dev/null

echo "# idempotence"
"$HOSTLO" attach --cgroup $REL --connect $HP --bind 3000 >/dev/null
rel_links() { bpftool -j link show | jq -c --argjson cg "$(stat -c %i "$CGT")" '[.[] | select(.type == "cgroup" and .cgroup_id == $cg) | .id] | sort'; }
live_gen() { bpftool map dump pinned "$HOSTLO_BPFFS/hostlo/attached" | jq -c '[.[] | .value.gen]'; }
# rule entries (kinds 1-3), and the TCP peer entries (kind 4) of the live generation
rule_entries() { bpftool map dump pinned "$HOSTLO_BPFFS/hostlo/rules" | jq '[.[] | select(.key.kind != 4)] | length'; }
live_peer_ports() {
	local gen
	gen=$(bpftool map dump pinned "$HOSTLO_BPFFS/hostlo/attached" | jq '.[0].value.gen')
	bpftool map dump pinned "$HOSTLO_BPFFS/hostlo/rules" | jq -c --argjson gen "$gen" \
		'[.[] | select(.key.kind == 4 and .key.gen == $gen) | .key.port] | sort'
}
before=$(rel_links; live_gen)
"$HOSTLO" attach --cgroup $REL --connect $HP --bind 3000 >/dev/null
after=$(rel_links; live_gen)
# (the last field: the generation was read at all, so an empty read cannot pass as "unchanged")
check "attach twice with the same rules: the same links and the same rule generation (nothing changed)" \
	"$before 1" "$after $(grep -cE '^\[[0-9]+\]$' <<<"$after")"
"$HOSTLO" attach --cgroup $REL --connect $HP=$HOST_IP:$HA >/dev/null
expect "with other rules: swapped" 0 "^peer=127.0.0.1:$HP got=host-a$" -- incg "$APP" "$PROBE" connect 127.0.0.1 $HP
check "and the links are the same ones" "$(head -1 <<<"$before")" "$(rel_links)"
"$HOSTLO" attach --cgroup $REL --connect $HP=$HOST_IP:$HB >/dev/null
check "after two swaps: the live rule and the one it replaced, no more" 2 "$(rule_entries)"
check "the live generation's peer entries: its own target port and the two replaced rules' (their connections still restore)" \
	"[$HP,$HA,$HB]" "$(live_peer_ports)"
"$HOSTLO" list >/dev/null
check "the next list (its gc) removes the replaced one" 1 "$(rule_entries)"
"$HOSTLO" detach --all >/dev/null
kill_at attach:rules-map attach --cgroup $REL --connect $HP --connect $HA=$HOST_IP
"$HOSTLO" attach --cgroup $REL --connect $HP >/dev/null
expect "the rules a killed attach wrote never become live (a new generation each time)" 1 "^error=ECONNREFUSED$" -- \
	incg "$APP" "$PROBE" connect 127.0.0.1 $HA
expect "and the rules of the attach after it work" 0 "got=host$" -- incg "$APP" "$PROBE" connect 127.0.0.1 $HP
"$HOSTLO" gc >/dev/null
check "gc removes the killed attach's entries" 1 "$(rule_entries)"
"$HOSTLO" detach --all >/dev/null

echo "# $LOAD_CONNECTS connects from 8 clients while $SWAPS rule swaps and program upgrades happen"
mkdir -p "$CGT/load"
# the load's own cgroup is attached: its counter row is in that cgroup's storage, through every upgrade
"$HOSTLO" attach --cgroup $REL/load --connect $HP=$HOST_IP:$HA >/dev/null
ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
# the load pauses halfway (LOADGEN_PAUSE_DIR): its first half is all made before the first swap and
# its middle connect after it, so both targets are served however fast the load runs beside the swaps
rm -rf "$OUT/pace" && mkdir -p "$OUT/pace"
incg "$CGT/load" env LOADGEN_PAUSE_DIR="$OUT/pace" "$LOADGEN" 127.0.0.1 $HP 8 "$LOAD_CONNECTS" 300 >"$OUT/load" 2>&1 &
load=$!
for _ in $(seq 3000); do [ -e "$OUT/pace/half" ] && break; sleep 0.1; done
swaps=0 upgrades=0 bins=("$HOSTLO" "$VARIANT")
for i in $(seq "$SWAPS"); do
	target=$([ $((i % 2)) = 0 ] && echo $HA || echo $HB)
	bin=${bins[$(((i / 2) % 2))]}   # the build changes every other swap: a program upgrade in place
	"$bin" attach --cgroup $REL/load --connect $HP=$HOST_IP:$target >/dev/null 2>"$OUT/swap.err" || { cat "$OUT/swap.err"; break; }
	swaps=$((swaps + 1))
	[ $((i % 2)) = 0 ] && upgrades=$((upgrades + 1))
	if [ "$i" = 1 ]; then
		touch "$OUT/pace/go"
		for _ in $(seq 3000); do [ -e "$OUT/pace/resumed" ] && break; sleep 0.01; done
	fi
	sleep 0.05
done
wait $load
load_rc=$?
read -r _ ok_field failed_field rest <"$OUT/load"
check "load: every connect landed on the old or the new target, none failed" \
	"0 connects=$LOAD_CONNECTS ok=$LOAD_CONNECTS failed=0" "$load_rc $(cut -d' ' -f1-3 "$OUT/load")"
check "both targets served" "yes yes" "$(grep -q 'host-a=' "$OUT/load" && echo yes) $(grep -q 'host-b=' "$OUT/load" && echo yes)"
check "all $SWAPS swaps ran ($upgrades of them with the other build)" "$SWAPS" "$swaps"
check "counters equal the connects (in the load cgroup's storage, kept through the upgrades)" "$LOAD_CONNECTS $LOAD_CONNECTS" \
	"$(counter $REL/load connect_redirected) $(storage_count $REL/load)"
"$HOSTLO" detach --all >/dev/null

echo "# bad input: exit 2 for a malformed command line, 1 for what cannot be done; one line; nothing left"
bad=0
mkdir -p "$STATE/ro" && mount -t bpf -o ro bpf "$STATE/ro"
touch "$STATE/regular"
mkdir -p "$CGT/amb/docker-abcd1111$(printf '0%.0s' $(seq 56)).scope" "$CGT/amb/docker-abcd2222$(printf '0%.0s' $(seq 56)).scope"
gone_pid=$(bash -c 'echo $$')   # a process that has exited
v1=$(mounts_of cgroup | head -1)
if [ -z "$v1" ]; then   # pure cgroup v2: a named cgroup v1 hierarchy of the test's own
	mkdir -p "$STATE/v1" && mount -t cgroup -o none,name=hostlo-test cgroup "$STATE/v1" && v1=$STATE/v1
fi
while IFS='|' read -r rc re env args; do
	[ -z "$rc" ] && continue
	bad=$((bad + 1))
	# shellcheck disable=SC2086
	expect_error "bad input $bad: ${env:+$env }hostlo $args" "$rc" "^hostlo: $re" -- env $env "$HOSTLO" $args
done <<EOF
2|--connect 0: port '0' is out of range||attach --cgroup $REL --connect 0
2|--connect 65536: port '65536' is out of range||attach --cgroup $REL --connect 65536
2|--connect 99999999999: port|         |attach --cgroup $REL --connect 99999999999
2|--connect five: 'five' is not a port number||attach --cgroup $REL --connect five
2|--connect -1: missing port number||attach --cgroup $REL --connect -1
2|--connect 80-: missing port number||attach --cgroup $REL --connect 80-
2|--connect 90-80: range '90-80' is reversed||attach --cgroup $REL --connect 90-80
2|--connect 0x50: '0x50' is not a port number||attach --cgroup $REL --connect 0x50
2|--connect icmp:1: unknown protocol 'icmp'||attach --cgroup $REL --connect icmp:1
2|--connect TCP:80: unknown protocol 'TCP'||attach --cgroup $REL --connect TCP:80
2|--connect 80=localhost: 'localhost' is not an IPv4 address||attach --cgroup $REL --connect 80=localhost
2|--connect 80=10.0.0: '10.0.0' is not an IPv4 address||attach --cgroup $REL --connect 80=10.0.0
2|--connect 80=fe80::1: 'fe80::1' is IPv6||attach --cgroup $REL --connect 80=fe80::1
2|--connect 80=127.0.0.1: '127.0.0.1' is a loopback address: the rule would loop||attach --cgroup $REL --connect 80=127.0.0.1
2|--connect 80=0.0.0.0: '0.0.0.0' is the wildcard address||attach --cgroup $REL --connect 80=0.0.0.0
2|--connect 80=239.0.0.1: '239.0.0.1' is a multicast||attach --cgroup $REL --connect 80=239.0.0.1
2|--connect 80=198.18.0.1:0: port '0' is out of range||attach --cgroup $REL --connect 80=198.18.0.1:0
2|--connect 65000-65100=198.18.0.1:65500: target ports run past 65535||attach --cgroup $REL --connect 65000-65100=198.18.0.1:65500
2|--bind 0: port '0' is out of range||attach --cgroup $REL --bind 0
2|--bind 3000=127.0.0.1: '127.0.0.1' is a loopback address||attach --cgroup $REL --bind 3000=127.0.0.1
2|--bind all: 'all' is not a port number||attach --cgroup $REL --bind all
2|--connect tcp:80: overlaps --connect tcp:80||attach --cgroup $REL --connect 80 --connect 80
2|--always: applies to the --connect rule before it||attach --cgroup $REL --always
2|attach: missing TARGET||attach --connect 80
2|attach: missing RULE||attach --cgroup $REL
2|attach: give one TARGET||attach --cgroup $REL --container abc --connect 80
2|--pid 12ab: not a process id||attach --pid 12ab --connect 80
2|--pid -5: not a process id||attach --pid -5 --connect 80
2|--container ../etc: not a container name or ID||attach --container ../etc --connect 80
2|attach: --parent goes with --self||attach --parent --connect 80
2|--bogus: unknown option||stats --bogus
2|--connect: missing argument||attach --cgroup $REL --connect
2|frob: unknown command||frob
2|gc: --cgroup is not an option of gc||gc --cgroup $REL
2|--every 0: not a number of seconds||gc --every 0
1|cgroup /does/not/exist: no such cgroup||attach --cgroup /does/not/exist --connect 80
1|cgroup $v1: not a cgroup v2 directory||attach --cgroup $v1 --connect 80
1|cgroup /etc: not a cgroup v2 directory||attach --cgroup /etc --connect 80
1|cgroup $STATE/regular: not a cgroup v2 directory||attach --cgroup $STATE/regular --connect 80
1|cgroup $REL/app/cgroup.procs: not a directory||attach --cgroup $REL/app/cgroup.procs --connect 80
1|pid $gone_pid: no such process||attach --pid $gone_pid --connect 80
1|container abcd: ambiguous ID prefix, matches 2 containers||attach --container abcd --connect 80=$HOST_IP
1|container nosuchname: not found||attach --container nosuchname --connect 80
1|attach: refusing the cgroup2 root||attach --cgroup / --connect 80
1|--connect tcp:80: cgroup $REL/app2 has no process to read the gateway from||attach --cgroup $REL/app2 --connect 80
1|detach $REL: not attached||detach --cgroup $REL
1|bpffs .*: Read-only file system|HOSTLO_BPFFS=$STATE/ro|attach --cgroup $REL --connect 80
1|bpffs /proc/nonexistent: cannot create|HOSTLO_BPFFS=/proc/nonexistent|attach --cgroup $REL --connect 80
1|--cgroup-root /etc: not a cgroup2 mount||list --cgroup-root /etc
1|container x: not found .*not reachable|DOCKER_HOST=unix:///nonexistent.sock|attach --container x --connect 80
1|container x: not found .*only unix:// sockets|DOCKER_HOST=tcp://198.18.0.1:1|attach --container x --connect 80
EOF
NOBODY=$STATE/nobody
mkdir -p "$NOBODY" && cp "$HOSTLO" "$NOBODY/hostlo" && chmod 755 "$STATE" "$NOBODY" "$NOBODY/hostlo"
for cmd in "attach --cgroup $REL --connect 80=$HOST_IP" "list" "stats" "detach --all" "gc"; do
	bad=$((bad + 1))
	# shellcheck disable=SC2086
	expect_error "bad input $bad: no privileges: hostlo $cmd" 1 "^hostlo: ${cmd%% *}: permission denied: missing CAP_BPF" -- \
		setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$NOBODY/hostlo" $cmd
done
check "after $bad bad inputs: nothing attached, nothing pinned" "0 0" "$(hook_count "$CGT") $(hostlo_pins)"
umount "$STATE/ro"
mountpoint -q "$STATE/v1" && umount "$STATE/v1"

echo "# a program the verifier rejects: one line by default, the verifier's log under -v"
"$HOSTLO" detach --all >/dev/null
expect_error "one line naming the step and the errno" 1 "^hostlo: load BPF programs: .* \(run with -v for the verifier log\)$" -- \
	env HOSTLO_TEST_BAD_PROG=1 "$CRASH" attach --cgroup $REL --connect $HP
expect "-v shows libbpf's log with the verifier's words" 1 "BEGIN PROG LOAD LOG.*(cannot use helper|unknown func).*END PROG LOAD LOG" -- \
	env HOSTLO_TEST_BAD_PROG=1 "$CRASH" -v attach --cgroup $REL --connect $HP
check "and nothing was pinned" 0 "$(hostlo_pins)"

echo "# least privilege"
"$HOSTLO" attach --cgroup $REL --connect $HP >/dev/null
check "bpffs: directory 0700, every pin 0600, owned by root" "700 0" \
	"$(stat -c %a "$HOSTLO_BPFFS/hostlo") $(find "$HOSTLO_BPFFS/hostlo" -type f ! -perm 600 | wc -l)"
expect "an unprivileged user cannot read the rules" 1 "Permission denied" -- \
	setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all cat "$HOSTLO_BPFFS/hostlo/rules"
expect "a process in the container, without privileges, cannot open the maps" 255 "Error: " -- \
	incg "$APP" setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all bpftool map dump pinned "$HOSTLO_BPFFS/hostlo/rules"
"$HOSTLO" detach --all >/dev/null

echo "# fuzzing: rule and target parsing, ${FUZZ_SECONDS}s from the seed corpus"
mkdir -p "$OUT/corpus"
"$FUZZ" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 "$OUT/corpus" "$ROOT/tests/fuzz/corpus" >"$OUT/fuzz" 2>&1
fuzz_rc=$?
execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$OUT/fuzz")
check "libFuzzer ran ${FUZZ_SECONDS}s without a finding" "0" "$fuzz_rc"
[ $fuzz_rc = 0 ] || tail -30 "$OUT/fuzz"

echo "reliability figures: kills=$kills swaps=$swaps upgrades=$upgrades connects=$LOAD_CONNECTS lost=$(grep -o 'failed=[0-9]*' "$OUT/load" | cut -d= -f2) bad_inputs=$bad fuzz_execs=${execs:-0}"
echo "reliability: $PASSED passed, $FAILED failed"
echo "$PASSED $FAILED" >"${RESULT_FILE:-/dev/null}"
