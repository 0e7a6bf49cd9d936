#!/usr/bin/env bash
# watch-latency.sh [OUT]: run by bench.sh (`make bench`; QUICK=1: 5 containers, else 50;
# WATCH_BENCH_N overrides). How long from a container's cgroup being made to its rules in place, with
# `hostlo watch` following a Docker engine this script starts (own data-root, socket, bridge
# 198.19.6.1/24, no iptables; a busybox image built locally, nothing pulled). N containers started back
# to back, each carrying only the label io.hostlo.bind=3000, their app binding 127.0.0.1:3000 as its
# first act; one without labels as the control. Two clocks:
#   agent:  the agent's own latency_ms, from its inotify IN_CREATE read to the rules in place;
#   kernel: the kernel's cgroup:cgroup_mkdir tracepoint (perf record -k mono) to the agent's mono_ns
#           (CLOCK_MONOTONIC when the rules were in place): the whole window, inotify delivery included.
# Prints covered N/N, p50 and p99 of both, the first container's apart; writes OUT/watch.json and
# samples to OUT/samples.csv when OUT is given. Everything it started is gone at exit (trap).
# Traffic: none (the containers' listeners are read from /proc); addresses: 198.19.6.0/24 only.
HL_NAME=hostlo-wbench HL_VETH=hlw HL_NET=198.18.6   # names of its own (testhost.sh's cleanup, cgroups)
source "$(dirname "$0")/../lib.sh"
STATE=/run/hostlo-wbench   # not the suites' /run/hostlo-test: bench-smoke.sh runs this inside a suite
export HOSTLO_BPFFS=$STATE/bpffs
OUT=${1:-}
QUICK=${QUICK:-0}
N=${WATCH_BENCH_N:-$([ "$QUICK" = 1 ] && echo 5 || echo 50)}
APP_PORT=3000

fail() { echo "hostlo: bench: watch: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (a Docker engine, cgroups, BPF): run as root"
[ -n "$CG2" ] || fail "no cgroup2 mount in /proc/self/mountinfo"
for t in perf jq python3 "$HOSTLO"; do
	command -v "$t" >/dev/null || fail "$t is missing (scripts/deps.sh bench installs it)"
done
source "$ROOT/tests/dockerlib.sh"
BRIDGE=hlw-br0 GW=198.19.6.1   # not the suites' bridge

LOG=$STATE/watch.log CONF=$STATE/watch.conf PERF_DATA=$STATE/mkdir.perf
# the agent and perf run in the host-side cgroup: stopped first, then the containers and the engine
wb_cleanup() {
	kill_cgroup "$CGH"
	docker_cleanup
}
trap wb_cleanup EXIT
wb_cleanup >/dev/null 2>&1

mkdir -p "$STATE/bpffs" "$CGH" && mount -t bpf bpf "$STATE/bpffs" || fail "cannot mount bpffs at $STATE/bpffs"
[ -z "$OUT" ] || mkdir -p "$OUT"
start_engine
build_image
echo '{"containers": []}' >"$CONF"   # only labels ask: not /etc/hostlo/watch.conf

on_host "$HOSTLO" watch --config "$CONF" -j >"$LOG" 2>&1 &
for _ in $(seq 100); do grep -q '"event":"connected"' "$LOG" && break; sleep 0.1; done
grep -q '"event":"connected"' "$LOG" || fail "the agent did not connect: $(tail -2 "$LOG")"
AGENT=$(pgrep -f -- "watch --config $CONF" | head -1)

# perf: enabled before its workload runs, so "ready" means every mkdir from now on is recorded; the
# workload (a bounded sleep) is what stops it, cleanly, when killed
on_host perf record -q -k mono -a -e cgroup:cgroup_mkdir -o "$PERF_DATA" -- \
	sh -c 'echo $$ >"$1"; exec sleep 900' _ "$STATE/perf.sleep" >"$STATE/perf.log" 2>&1 &
for _ in $(seq 100); do [ -s "$STATE/perf.sleep" ] && break; sleep 0.1; done
[ -s "$STATE/perf.sleep" ] || fail "perf record did not start: $(tail -2 "$STATE/perf.log")"
PERF=$(pgrep -f -- "perf record -q -k mono -a -e cgroup:cgroup_mkdir -o $PERF_DATA" | head -1)

echo "watch: $N containers started back to back (io.hostlo.bind=$APP_PORT only), the agent attaching"
ids=()
for i in $(seq "$N"); do
	id=$(docker run -d --label hostlo-test --label io.hostlo.bind=$APP_PORT --name "wb$i" $IMAGE \
		sh -c "exec httpd -f -p 127.0.0.1:$APP_PORT") || fail "docker run wb$i failed"
	ids+=("$id")
done
docker run -d --label hostlo-test --name wb-control $IMAGE sh -c "exec httpd -f -p 127.0.0.1:$APP_PORT" >/dev/null ||
	fail "docker run wb-control failed"

# listening NAME: the address its app listens on for :3000, as the kernel has it in the container's
# netns (0.0.0.0 once the bind was rewritten; 127.0.0.1 when not); empty until it listens (5 s at most)
listening() {
	local pid a
	for _ in $(seq 50); do
		pid=$(cpid "$1")
		a=$(awk -v p=":$(printf %04X $APP_PORT)" '$2 ~ p"$" && $4 == "0A" { print $2; exit }' "/proc/$pid/net/tcp" 2>/dev/null)
		[ -n "$a" ] && break
		sleep 0.1
	done
	case $a in 00000000:*) echo 0.0.0.0 ;; 0100007F:*) echo 127.0.0.1 ;; *) echo "$a" ;; esac
}
stats=$STATE/stats.json
covered=0 pids=()
for i in $(seq "$N"); do
	l=$(listening "wb$i")
	"$HOSTLO" stats -j >"$stats"
	b=$(jq -r --arg cg "/docker/${ids[$((i - 1))]}" '[.[] | select(.cgroup == $cg) | .bind_rewritten] | add // 0' "$stats")
	[ "$l $b" = "0.0.0.0 1" ] && covered=$((covered + 1))
	pids+=("$(cpid "wb$i")")
done
control_listen=$(listening wb-control)
"$HOSTLO" stats -j >"$stats"
control_rewritten=$(jq -r --arg cg "/docker/$(cid wb-control)" '[.[] | select(.cgroup == $cg) | .bind_rewritten] | add // 0' "$stats")
pids+=("$(cpid wb-control)")

kill -TERM "$(cat "$STATE/perf.sleep")" 2>/dev/null
for _ in $(seq 100); do kill -0 "$PERF" 2>/dev/null || break; sleep 0.1; done
perf script -i "$PERF_DATA" --ns -F time,trace 2>/dev/null | grep ' root=0 ' >"$STATE/mkdir.txt"
pids+=("$AGENT" "$PERF" $(engine_procs))

python3 - "$LOG" "$STATE/mkdir.txt" "$OUT" "$N" "$covered" "$control_listen" "$control_rewritten" \
	"${pids[*]}" "${ids[@]}" <<'EOF'
import json, math, os, re, sys
log, mkdir, out, n, covered, ctl_listen, ctl_rw, pids = sys.argv[1:9]
ids = sys.argv[9:]
n, covered = int(n), int(covered)
made = {}                                  # cgroup path -> CLOCK_MONOTONIC ns of its cgroup_mkdir
for line in open(mkdir):
    m = re.match(r"\s*(\d+)\.(\d{9}): root=0 id=\d+ level=\d+ path=(\S+)", line)
    if m:
        made.setdefault(m.group(3), int(m.group(1)) * 10**9 + int(m.group(2)))
att = {}                                   # container id -> its first attached line
for line in open(log):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == "attached" and e.get("container") in ids:
        att.setdefault(e["container"], e)
agent, kernel = [], []                     # per container, in start order (None: not measured)
for i in ids:
    e = att.get(i, {})
    agent.append(e.get("latency_ms"))
    t0 = made.get(e.get("cgroup"))
    kernel.append((e["mono_ns"] - t0) / 1e6 if t0 and e.get("mono_ns") else None)

def pct(v, p):                             # nearest rank
    v = sorted(x for x in v if x is not None)
    return round(v[max(0, math.ceil(p * len(v)) - 1)], 2) if v else None

def fig(v):
    got = [x for x in v if x is not None]
    return {"n": len(got), "p50": pct(v, 0.5), "p99": pct(v, 0.99), "max": pct(v, 1.0),
            "first": round(v[0], 2) if v and v[0] is not None else None,
            "p99_of_the_others": pct(v[1:], 0.99)}

w = {"containers": n, "covered": covered, "control_listen": ctl_listen, "control_rewritten": int(ctl_rw),
     "agent_ms": fig(agent), "kernel_ms": fig(kernel), "ids": ids, "pids": [int(p) for p in pids.split()]}
def line(name, f):
    first = f["first"]
    note = " (an outlier, above the others' p99: its attach was the first on an empty bpffs, which loads and pins hostlo's programs)" if first is not None and f["p99_of_the_others"] is not None \
        and first > f["p99_of_the_others"] else ""
    return (f"  {name}: p50 {f['p50']} ms, p99 {f['p99']} ms over {f['n']} of {n}; "
            f"the first container {first} ms{note}; the other {n - 1}: p99 {f['p99_of_the_others']} ms")
w["text"] = "\n".join([
    f"watch: covered {covered}/{n} (bind_rewritten 1, the app listening on 0.0.0.0:3000); control without "
    f"labels: bind_rewritten {ctl_rw}, listening on {ctl_listen}",
    "watch: from the cgroup's creation to its rules in place",
    line("kernel clock (cgroup:cgroup_mkdir tracepoint to the agent's mono_ns)", w["kernel_ms"]),
    line("agent clock (its inotify IN_CREATE read to rules in place, latency_ms)", w["agent_ms"])])
print(w["text"])
if out:
    with open(os.path.join(out, "watch.json"), "w") as f:
        json.dump(w, f, indent=2)
    with open(os.path.join(out, "samples.csv"), "a") as f:
        for k, (a, b) in enumerate(zip(agent, kernel), 1):   # what was not measured: no sample
            for fig_name, v in (("watch_agent_ms", a), ("watch_kernel_ms", b)):
                if v is not None:
                    f.write(f"{fig_name},wb{k},{k},{v:.3f},ms\n")
EOF
