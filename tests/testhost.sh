# testhost.sh: a throwaway "container" for the tests and the demo: a network namespace joined to the
# host by a veth pair, and cgroups. Sourced; HL_NAME, HL_VETH and HL_NET choose the names, so the demo
# and the tests never collide. Addresses are in 198.18.0.0/15 only.

HL_NAME=${HL_NAME:-hostlo-test}   # netns and cgroup names
HL_VETH=${HL_VETH:-hlt}           # veth names: $HL_VETH-h (host end), $HL_VETH-c (container end)
HL_NET=${HL_NET:-198.18.0}        # a /24: .1 is the host end and the container's gateway, .2 the container

NS=$HL_NAME
VETH_H=$HL_VETH-h VETH_C=$HL_VETH-c
HOST_IP=$HL_NET.1 CONT_IP=$HL_NET.2

# mounts_of TYPE: mount points of that file system type (the type is the field after "-").
mounts_of() { awk -v t="$1" '$4 == "/" { for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == t) print $5; break } }' /proc/self/mountinfo; }
cg2_mount() { mounts_of cgroup2 | head -1; }
CG2=$(cg2_mount)
CGT=$CG2/$HL_NAME            # the container's cgroup (attached); children app, app2
CGO=$CG2/$HL_NAME-out        # same netns, outside every attachment
CGH=$CG2/$HL_NAME-host       # host-side servers, so teardown can find and stop them

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

# probe_of JOB: the sockprobe that `incg ... &` or `on_host ... &` started. JOB ($!) is the subshell
# running the function; its child is the `bash -c`, which became sockprobe (incg: through the exec of
# ip netns exec, which execs without forking).
probe_of() { pgrep -P "$1" -x sockprobe; }

# listening JOB FILE: that sockprobe listener printed "ready" to FILE and still runs (not a zombie: a
# listener gone, its socket closed).
listening() {
	local pid st
	pid=$(probe_of "$1") && st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) &&
		[ -n "$st" ] && [ "$st" != Z ] && grep -q '^ready$' "$2"
}

# stop_listener JOB: ends that sockprobe listener now and waits until it has exited (its port is free).
# Listeners that must outlast a step on a slow guest live long and are stopped so; teardown kills any
# left over (they run in the test's cgroups).
stop_listener() {
	local pid
	pid=$(probe_of "$1")
	kill ${pid:-$1} 2>/dev/null   # the subshell waits for its child: killed alone it would leave it running
	wait "$1" 2>/dev/null
	return 0
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
		for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$d" 2>/dev/null || [ ! -d "$d" ] && break; sleep 0.1; done
	done
}

# Leaves nothing: safe on a clean machine, after a crashed run, and twice.
testhost_down() {
	local cg
	disown -a 2>/dev/null   # the shell need not report the background servers killed below
	for cg in "$CGT" "$CGO" "$CGH" "$CG2/$HL_NAME"-*; do kill_cgroup "$cg"; done
	ip netns del "$NS" 2>/dev/null
	ip link del "$VETH_H" 2>/dev/null
	return 0
}

testhost_up() {
	mkdir -p "$CGT/app" "$CGT/app2" "$CGO" "$CGH"
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
