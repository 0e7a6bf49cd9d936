#!/usr/bin/env bash
# bench.sh: `make bench` (QUICK=1: every path briefly). hostlo side by side with a direct connection,
# iptables DNAT and a socat proxy, interleaved in one run; the cost of each hook per call; 1,000
# attached cgroups; the watch agent's latency from a container's cgroup to its rules (watch-latency.sh).
# Writes build/bench/{samples.csv,summary.json,table.md,chart.png,watch.json}.
# Traffic: only to namespaces this script creates, in 198.18.0.0/15; every loop bounded in time.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HOSTLO=${HOSTLO_BIN:-$ROOT/build/hostlo} BENCH=$ROOT/build/bench/bench PROBE=$ROOT/build/sockprobe
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then ROUNDS=1 RATE_S=0.3 HOOK_PASSES=2 HOOK_S=0.3 MIX_S=2 MIX_U_S=1 MIX_SC_S=1 BATCH=50 LAT_N=300 THR_S=1 SCALE_N=20 STAT_RUNS=2
else ROUNDS=8 RATE_S=2 HOOK_PASSES=5 HOOK_S=0.8 MIX_S=48 MIX_U_S=24 MIX_SC_S=16 BATCH=100 LAT_N=20000 THR_S=3 SCALE_N=1000 STAT_RUNS=5; fi
OUT=$ROOT/build/bench
STATE=/run/hostlo-bench
export HOSTLO_BPFFS=$STATE/bpffs
HL_NAME=hostlo-bench HL_VETH=hlb HL_NET=198.18.2
source "$ROOT/tests/testhost.sh"
P=15600 PT=15601 P6=15602      # echo server, iperf3 server, a one-line server (host side, every veth address)
PU=15603                       # an echo server free to run on any CPU, for the unpinned round
BARE_OBJ=$ROOT/build/bench/bare.bpf.o   # the yardstick of the hook cost (tests/bench/bare.bpf.c)
NAT_NS=hostlo-bench-nat NAT_NET=198.18.3 SOCAT_NS=hostlo-bench-socat SOCAT_NET=198.18.4
PATHS=(direct hostlo iptables socat)
# servers on the first CPU, clients (and socat, which runs in the "container") on the last: every path
# meets the scheduler the same way
SERVER_CPU=0 CLIENT_CPU=$(($(nproc) - 1))

[ "$(id -u)" = 0 ] || { echo "hostlo: bench: needs root (namespaces, cgroups, BPF, iptables): run as root" >&2; exit 1; }
[ -f "$BARE_OBJ" ] || { echo "hostlo: bench: $BARE_OBJ is missing (make bench builds it)" >&2; exit 1; }
for t in iptables socat iperf3 gnuplot jq python3 bpftool "$HOSTLO" "$BENCH"; do
	command -v "$t" >/dev/null || { echo "hostlo: bench: $t is missing (scripts/deps.sh installs it)" >&2; exit 1; }
done

bench_down() {
	sysctl -qw kernel.bpf_stats_enabled=0 2>/dev/null
	HOSTLO_BPFFS=$STATE/bpffs "$HOSTLO" detach --all >/dev/null 2>&1
	testhost_down
	kill_cgroup "$CG2/$HL_NAME-scale"
	ip netns del $NAT_NS 2>/dev/null; ip link del hlbn-h 2>/dev/null
	ip netns del $SOCAT_NS 2>/dev/null; ip link del hlbs-h 2>/dev/null
	mountpoint -q "$STATE/bpffs" && umount "$STATE/bpffs"
	rm -rf "$STATE"
	return 0
}
trap bench_down EXIT
trap 'exit 130' INT TERM
bench_down

mkdir -p "$OUT"
echo "figure,path,round,value,unit" >"$OUT/samples.csv"
# first, on a quiet machine: the watch agent's cgroup-to-rules latency (a Docker engine of its own,
# gone when it returns); the report below takes its figures from watch.json
rm -f "$OUT/watch.json"
QUICK=$QUICK bash "$ROOT/tests/bench/watch-latency.sh" "$OUT"
watch_rc=$?

# ns_pair NS VETH NET: one more "container" namespace joined to the host by veth.
ns_pair() {
	ip netns add "$1"
	ip link add "$2-h" type veth peer name "$2-c"
	ip link set "$2-c" netns "$1"
	ip addr add "$3.1/24" dev "$2-h" && ip link set "$2-h" up
	ip -n "$1" addr add "$3.2/24" dev "$2-c" && ip -n "$1" link set "$2-c" up && ip -n "$1" link set lo up
	ip -n "$1" route add default via "$3.1"
}

mkdir -p "$OUT" "$STATE/bpffs"
mount -t bpf bpf "$STATE/bpffs"
testhost_up
ns_pair $NAT_NS hlbn $NAT_NET
ns_pair $SOCAT_NS hlbs $SOCAT_NET
# iptables: the usual recipe, in its own namespace so the host's rules are never touched
ip netns exec $NAT_NS sysctl -qw net.ipv4.conf.all.route_localnet=1
for port in $P $PT; do
	ip netns exec $NAT_NS iptables -t nat -A OUTPUT -d 127.0.0.1 -p tcp --dport $port -j DNAT --to-destination $NAT_NET.1:$port
done
ip netns exec $NAT_NS iptables -t nat -A POSTROUTING -s 127.0.0.1 -d $NAT_NET.1 -j SNAT --to-source $NAT_NET.2
# socat: a userspace proxy on the namespace's loopback
# (in a cgroup of the test host's, so bench_down's testhost_down stops them and every fork they made)
mkdir -p "$CG2/$HL_NAME-socat"
for port in $P $PT; do
	bash -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' _ "$CG2/$HL_NAME-socat" \
		ip netns exec $SOCAT_NS taskset -c $CLIENT_CPU \
		socat TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr TCP:$SOCAT_NET.1:$port >/dev/null 2>&1 &
done
on_host taskset -c $SERVER_CPU "$BENCH" serve 0.0.0.0 $P 3600 >"$STATE/serve" 2>&1 &
on_host taskset -c $SERVER_CPU iperf3 -s -p $PT >/dev/null 2>&1 &
on_host "$PROBE" serve 0.0.0.0 $P6 hi 3600 >"$STATE/serve6" 2>&1 &
on_host "$BENCH" serve 0.0.0.0 $PU 3600 >"$STATE/serveu" 2>&1 &
wait_ready "$STATE/serve" && wait_ready "$STATE/serve6" && wait_ready "$STATE/serveu" || exit 1
"$HOSTLO" attach --cgroup /$HL_NAME --connect $P --connect $PT --connect $P6 --connect $PU >/dev/null || exit 1
sleep 0.5

# on PATH CMD...: CMD as the client of PATH, to ADDR_OF PATH.
addr_of() { [ "$1" = direct ] && echo "$HOST_IP" || echo 127.0.0.1; }
on() {
	local path=$1
	shift
	case $path in
	direct) incg "$CGO" taskset -c $CLIENT_CPU "$@" ;;
	hostlo) incg "$CGT/app" taskset -c $CLIENT_CPU "$@" ;;
	iptables) ip netns exec $NAT_NS taskset -c $CLIENT_CPU "$@" ;;
	socat) ip netns exec $SOCAT_NS taskset -c $CLIENT_CPU "$@" ;;
	esac
}
field() { grep -o "$1=[0-9.]*" | head -1 | cut -d= -f2; }
sample() { echo "$1,$2,$3,$4,$5" >>"$OUT/samples.csv"; }
# spec_of PATH PORT: where PATH's client runs and what it connects to, for bench mix
spec_of() {
	case $1 in
	direct | twin) echo "$CGO,/run/netns/$NS,$HOST_IP,$2" ;;   # twin: a second direct client
	hostlo) echo "$CGT/app,/run/netns/$NS,127.0.0.1,$2" ;;
	iptables) echo "-,/run/netns/$NAT_NS,127.0.0.1,$2" ;;
	socat) echo "-,/run/netns/$SOCAT_NS,127.0.0.1,$2" ;;
	real) echo "$CG2/$HL_NAME-real,/run/netns/$NS,127.0.0.1,$2" ;;
	esac
}
# mix FIG SECONDS PORT CPU|any PATH...: the connection rate of the paths taking turns in batches of
# BATCH connections (bench mix): every slow drift of a shared machine falls on each path alike, and each
# round's rates are side by side (report.py takes the median of their per-round ratios). A sample of FIG
# per path and round, the failed connects of each path; for FIG rate, the CPU per connection too.
mix() {
	local fig=$1 secs=$2 port=$3 cpu=$4 p specs=() out line pin=()
	shift 4
	for p in "$@"; do specs+=("$p=$(spec_of $p $port)"); done
	[ "$cpu" = any ] || pin=(taskset -c "$cpu")
	out=$("${pin[@]}" "$BENCH" mix "$secs" $BATCH "${specs[@]}") && grep -q '^round=' <<<"$out" ||
		{ echo "hostlo: bench: bench mix for $fig: a client could not run, or no round completed (see above)" >&2; exit 1; }
	while read -r line; do
		case $line in
		round=*)
			local r=${line%% *} kv
			for kv in ${line#* }; do sample "$fig" "${kv%%=*}" "${r#round=}" "${kv#*=}" conn/s; done ;;
		path=*)
			p=${line#path=} p=${p%% *}
			sample rate_failed "$p" 0 "$(field failed <<<"$line")" count
			[ "$fig" = rate ] && sample cpu "$p" 0 "$(field cpu_us_per_conn <<<"$line")" us/conn ;;
		esac
	done <<<"$out"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r); rounds: $ROUNDS"
# the connection rate: the paths taking turns, client on CLIENT_CPU, server on SERVER_CPU. Not socat:
# its forks, still exiting when its turn ends, would slow whichever path came next; it has rounds of
# its own below (it is ~40x slower: the comparison does not need it side by side). And a second direct
# client taking the same turns: what the harness reads when nothing differs, the resolution of this run.
mix rate "$MIX_S" $P $CLIENT_CPU direct hostlo iptables twin
echo "connection rate done"
for r in $(seq "$ROUNDS"); do
	out=$(on socat "$BENCH" rate 127.0.0.1 $P "$RATE_S" 1000000)
	sample rate socat 0 "$(field rate <<<"$out")" conn/s
	sample cpu socat 0 "$(field cpu_us_per_conn <<<"$out")" us/conn
	sample rate_failed socat 0 "$(field failed <<<"$out")" count
	# the order rotates every round (direct first, then hostlo first, ...): no path always follows another
	order=("${PATHS[@]:$(((r - 1) % 4))}" "${PATHS[@]:0:$(((r - 1) % 4))}")
	for path in "${order[@]}"; do
		out=$(on $path "$BENCH" latency "$(addr_of $path)" $P "$LAT_N")
		sample p50 $path "$r" "$(field p50_us <<<"$out")" us
		sample p99 $path "$r" "$(field p99_us <<<"$out")" us
	done
	for path in "${order[@]}"; do
		bps=$(on $path iperf3 -c "$(addr_of $path)" -p $PT -t "$THR_S" -J 2>/dev/null | jq '.end.sum_received.bits_per_second // 0')
		sample throughput $path "$r" "$(awk -v b="$bps" 'BEGIN { printf "%.0f", b / 1e6 }')" Mbit/s
	done
	echo "round $r/$ROUNDS done"
done
# unpinned: client and server free to share or move between CPUs (a server of its own, no taskset)
mix rate_unpinned $MIX_U_S $PU any direct hostlo
redirected=$("$HOSTLO" stats -j | jq '[.[] | select(.cgroup == "/'$HL_NAME'/app") | .connect_redirected] | add // 0')
sample redirected hostlo 0 "$redirected" count

echo "hook cost (kernel.bpf_stats_enabled=1 only here)"
prog_stats() { # "cnt ns" of one pinned program (hostlo's, or bare/NAME)
	local pin=$HOSTLO_BPFFS/hostlo/$1
	[ "${1#bare/}" != "$1" ] && pin=$HOSTLO_BPFFS/$1
	bpftool -j prog show pinned "$pin" | jq -r '"\(.run_cnt // 0) \(.run_time_ns // 0)"'
}
# The yardstick: the bare rewrite program on a cgroup of its own in the same namespace, redirecting
# the same ports to the same host, run on the same loops right after hostlo's (same run, same load).
BARE=$CG2/$HL_NAME-bare
mkdir -p "$BARE/app"
bpftool prog loadall "$BARE_OBJ" "$HOSTLO_BPFFS/bare" pinmaps "$HOSTLO_BPFFS/bare-maps" || exit 1
be16() { printf '%d %d' $(($1 >> 8)) $(($1 & 255)); }
bpftool map update pinned "$HOSTLO_BPFFS/bare-maps/bare_target" key 0 0 0 0 value ${HOST_IP//./ } $(be16 $P) 0 0 || exit 1
bpftool map update pinned "$HOSTLO_BPFFS/bare-maps/bare_target" key 1 0 0 0 value ${HOST_IP//./ } $(be16 $P6) 0 0 || exit 1
for h in connect4 connect6; do bpftool cgroup attach "$BARE" $h pinned "$HOSTLO_BPFFS/bare/bare_$h" || exit 1; done
# and the floors: the bare rewrite plus socket storage, or plus the local-listener lookup (connect4 only)
for f in state listener; do
	mkdir -p "$CG2/$HL_NAME-$f/app"
	bpftool cgroup attach "$CG2/$HL_NAME-$f" connect4 pinned "$HOSTLO_BPFFS/bare/floor_${f}_connect4" || exit 1
done
HOOKS=(connect4 connect6 getpeername6 bare/bare_connect4 bare/bare_connect6 bare/floor_state_connect4 bare/floor_listener_connect4)
# hostlo's client: in a cgroup attached by itself (OWN, as a container attached by --container or
# --pid; beside the test host's cgroup, not below it: a nested attachment would run the program twice
# per connect), and for connect4_below in a cgroup below the attached one (app: a pod attached as a
# whole), whose counter row is in the hash (README, How it works)
OWN=$CG2/$HL_NAME-own
mkdir -p "$OWN"
# attach_own RULES...: the same rules on OWN, with the gateway given (it has no process to read it from)
attach_own() {
	local a out=()
	for a in "$@"; do [[ $a =~ ^[0-9]+$ ]] && a=$a=$HOST_IP; out+=("$a"); done
	"$HOSTLO" attach --cgroup /$HL_NAME-own "${out[@]}" >/dev/null
}
hook_ns() { awk -v c=$(($3 - $1)) -v t=$(($4 - $2)) 'BEGIN { printf "%.1f", c ? t / c : 0 }'; }
sysctl -qw kernel.bpf_stats_enabled=1
for n in 1 1000 10000; do
	rules=(--connect $P --connect $PT --connect $P6)
	[ $n -gt 1 ] && rules+=(--connect "20000-$((20000 + n - 4))=$HOST_IP")
	"$HOSTLO" attach --cgroup /$HL_NAME "${rules[@]}" >/dev/null
	attach_own "${rules[@]}" || exit 1
	# HOOK_PASSES passes, each running every loop once, hostlo's and the yardstick's back to back: a spike
	# of the machine lands in one pass, and report.py takes the median over the passes
	for pass in $(seq $HOOK_PASSES); do
		declare -A before=()
		for h in "${HOOKS[@]}"; do before[$h]=$(prog_stats $h); done
		for cg in "$OWN" "$BARE/app" "$CG2/$HL_NAME-state/app" "$CG2/$HL_NAME-listener/app"; do
			incg "$cg" taskset -c $CLIENT_CPU "$BENCH" rate 127.0.0.1 $P "$HOOK_S" 1000000 >/dev/null
			[ "${cg%-state/app}" = "$cg" ] && [ "${cg%-listener/app}" = "$cg" ] &&
				incg "$cg" "$PROBE" connect ::1 $P6 $((QUICK ? 50 : 700)) >/dev/null 2>&1
		done
		for h in "${HOOKS[@]}"; do
			read -r c0 t0 <<<"${before[$h]}"
			read -r c1 t1 <<<"$(prog_stats $h)"
			sample "hook_ns_$n" "${h#bare/}" $pass "$(hook_ns $c0 $t0 $c1 $t1)" ns/call
		done
		read -r c0 t0 <<<"$(prog_stats connect4)"
		incg "$CGT/app" taskset -c $CLIENT_CPU "$BENCH" rate 127.0.0.1 $P "$HOOK_S" 1000000 >/dev/null
		read -r c1 t1 <<<"$(prog_stats connect4)"
		sample "hook_ns_$n" connect4_below $pass "$(hook_ns $c0 $t0 $c1 $t1)" ns/call
	done
	# the same rules with --real-peer: no host flow to hand over to sockops (what that costs connect4)
	rules=(--connect $P --real-peer --connect $PT --real-peer --connect $P6 --real-peer)
	[ $n -gt 1 ] && rules+=(--connect "20000-$((20000 + n - 4))=$HOST_IP")
	attach_own "${rules[@]}" || exit 1
	for pass in $(seq $HOOK_PASSES); do
		read -r c0 t0 <<<"$(prog_stats connect4)"
		incg "$OWN" taskset -c $CLIENT_CPU "$BENCH" rate 127.0.0.1 $P "$HOOK_S" 1000000 >/dev/null
		read -r c1 t1 <<<"$(prog_stats connect4)"
		c0b=$(prog_stats bare/bare_connect4)
		incg "$BARE/app" taskset -c $CLIENT_CPU "$BENCH" rate 127.0.0.1 $P "$HOOK_S" 1000000 >/dev/null
		read -r bc0 bt0 <<<"$c0b"
		read -r bc1 bt1 <<<"$(prog_stats bare/bare_connect4)"
		sample "hook_ns_$n" connect4_real_peer $pass "$(hook_ns $c0 $t0 $c1 $t1)" ns/call
		# its own yardstick beside it, for the per-pass ratio
		sample "hook_ns_$n" bare_connect4_real_peer $pass "$(hook_ns $bc0 $bt0 $bc1 $bt1)" ns/call
	done
done
# a hook cost is only worth its name if its client was redirected: fail loudly otherwise
[ "$("$HOSTLO" stats -j | jq "[.[] | select(.cgroup == \"/$HL_NAME-own\") | .connect_redirected] | add // 0")" -gt 0 ] ||
	{ echo "hostlo: bench: the hook cost's client (/$HL_NAME-own) was never redirected" >&2; exit 1; }
"$HOSTLO" detach --cgroup /$HL_NAME-own >/dev/null
"$HOSTLO" attach --cgroup /$HL_NAME --connect $P --connect $PT --connect $P6 >/dev/null # the default again, for the host side
# the host side on the server's accept(): the getpeername4 program that shows a redirected client as
# 127.0.0.1 (peer4), and sockops (which marks such sockets), on unrelated (direct) and redirected accepts
for path in direct hostlo; do
	declare -A before=()
	for h in peer4 sockops; do before[$h]=$(prog_stats $h); done
	on $path "$BENCH" rate "$(addr_of $path)" $P "$RATE_S" 1000000 >/dev/null
	for h in peer4 sockops; do
		read -r c0 t0 <<<"${before[$h]}"
		read -r c1 t1 <<<"$(prog_stats $h)"
		sample hook_ns_host "${h}_$path" 0 "$(awk -v c=$((c1 - c0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.1f", c ? t / c : 0 }')" ns/call
	done
done
sysctl -qw kernel.bpf_stats_enabled=0
# what showing the client as 127.0.0.1 (the default) costs a connection: taking turns with direct, a
# redirected client whose rule has --real-peer (no flow noted, nothing marked on accept), in a cgroup of
# its own beside the test host's
mkdir -p "$CG2/$HL_NAME-real"
"$HOSTLO" attach --cgroup /$HL_NAME-real --connect $P=$HOST_IP --real-peer >/dev/null || exit 1
mix rate_peer "$MIX_SC_S" $P $CLIENT_CPU direct hostlo real
"$HOSTLO" detach --cgroup /$HL_NAME-real >/dev/null

echo "scale: $SCALE_N attached cgroups"
SC=$CG2/$HL_NAME-scale
mkdir -p "$SC"
for i in $(seq "$SCALE_N"); do mkdir -p "$SC/c$i"; done
kmem() { awk '/^(Slab|Percpu):/ { s += $2 } END { print s }' /proc/meminfo; }
sync; echo 2 >/proc/sys/vm/drop_caches
k0=$(kmem) t0=$(date +%s%N)
for i in $(seq "$SCALE_N"); do "$HOSTLO" attach --cgroup /$HL_NAME-scale/c$i --connect $P=$HOST_IP >/dev/null || exit 1; done
t1=$(date +%s%N) k1=$(kmem)
sample attach_ms scale 0 "$(awk -v d=$((t1 - t0)) -v n="$SCALE_N" 'BEGIN { printf "%.2f", d / n / 1e6 }')" ms/attach
# what any hostlo command pays before its own work (fork, exec, the dynamic loader): the floor of the above
t0=$(date +%s%N)
for _ in $(seq 100); do "$HOSTLO" version >/dev/null; done
t1=$(date +%s%N)
sample start_ms scale 0 "$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.2f", d / 100 / 1e6 }')" ms/start
sample kmem_kib scale 0 "$(awk -v d=$((k1 - k0)) -v n="$SCALE_N" 'BEGIN { printf "%.1f", d / n }')" KiB/cgroup
for i in $(seq "$SCALE_N"); do   # one connect from each cgroup: a counter row each
	bash -c 'echo $$ > "$1/cgroup.procs" && exec ip netns exec "$2" "$3" rate "$4" "$5" 1 1' _ "$SC/c$i" "$NS" "$BENCH" 127.0.0.1 $P >/dev/null
done
sample stats_rows scale 0 "$("$HOSTLO" stats -j | jq length)" rows
for mode in text json; do
	for r in $(seq "$STAT_RUNS"); do
		s=$(date +%s%N)
		if [ $mode = json ]; then "$HOSTLO" stats -j >/dev/null; else "$HOSTLO" stats >/dev/null; fi
		sample "stats_ms_$mode" scale "$r" "$(awk -v d=$(($(date +%s%N) - s)) 'BEGIN { printf "%.1f", d / 1e6 }')" ms
	done
done
mix rate_scaled $MIX_SC_S $P $CLIENT_CPU direct hostlo

python3 "$ROOT/tests/bench/report.py" "$OUT" "$QUICK" || exit 1
[ "$watch_rc" = 0 ] || { echo "hostlo: bench: watch-latency.sh failed (exit $watch_rc): its figures are missing" >&2; exit 1; }
