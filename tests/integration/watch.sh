#!/usr/bin/env bash
# watch.sh: hostlo watch on a real Docker engine that this suite starts: containers that carry only
# labels (or match the config file) are attached from before their entrypoint runs, across restarts,
# re-creations, an agent killed and restarted, an engine restart and an emulated reboot; nothing else
# is touched. N containers back to back: N=50 when CI=true (WATCH_N overrides).
HL_NAME=hostlo-wtest   # a --cgroup-parent that appears while the agent runs
source "$(dirname "$0")/../lib.sh"
require
source "$ROOT/tests/dockerlib.sh"
HP=18091 PUB=18090 APP_PORT=3000
N=${WATCH_N:-$([ "${CI:-}" = true ] && echo 50 || echo 10)}
RESTARTS=$([ "${CI:-}" = true ] && echo 10 || echo 3)
APP=hostlo-test-watch   # busybox and sockprobe (with the libraries it loads)
LOG=$STATE/watch.log CONF=$STATE/watch.conf
L_BIND=io.hostlo.bind=$APP_PORT L_CONNECT=io.hostlo.connect=$HP

docker_cleanup >/dev/null 2>&1
mkdir -p "$STATE/bpffs" && mount -t bpf bpf "$STATE/bpffs"
mkdir -p "$CGH"
start_engine
build_image
r=$DK/app
mkdir -p "$r/bin" "$r/www" "$r/tmp"
cp "$(command -v busybox)" "$r/bin/busybox" && for a in sh httpd sleep wget; do ln -sf busybox "$r/bin/$a"; done
echo hello-from-the-container >"$r/www/index.html"
cp "$PROBE" "$r/bin/"
ldd "$PROBE" | grep -o '/[^ ]*' | sort -u | xargs -I{} cp --parents -L {} "$r/"
tar -C "$r" -c . | docker import - $APP >/dev/null

# A real server on the host, at the bridge's address: what a container's 127.0.0.1:$HP must reach.
on_host "$PROBE" serve $GW $HP hello-from-the-host 900 >"$STATE/server" 2>&1 &
wait_ready "$STATE/server" || exit 1

AGENT=
start_agent() { # the agent in the host-side cgroup (so cleanup stops it); waits until it follows Docker
	bash -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' _ "$CGH" "$HOSTLO" watch --config "$CONF" -j >>"$LOG" 2>&1 &
	AGENT=$!   # the agent itself (on_host would put a subshell between)
	for _ in $(seq 100); do [ "$(grep -c '"event":"connected"' "$LOG")" -gt "${1:-0}" ] && return 0; sleep 0.1; done
	echo "hostlo: test: the agent did not connect: $(tail -3 "$LOG")" >&2
	exit 1
}
stop_agent() { kill -TERM "$AGENT"; wait "$AGENT"; }
connected() { grep -c '"event":"connected"' "$LOG"; }
# wrun NAME DOCKER-RUN-ARGS...: a detached test container (default cgroup parent unless given)
# (--stop-timeout 1: an app that is pid 1 ignores SIGTERM; so the engine's own shutdown, which gives
# up after 15 s and leaves running tasks behind, ends well within it however many containers run)
wrun() { local n=$1; shift; docker run -d --label hostlo-test --stop-timeout 1 --name "$n" "$@" >/dev/null; }
web() { wrun "$1" --label $L_BIND "${@:2}" $APP sh -c "exec httpd -f -p 127.0.0.1:$APP_PORT -h /www"; }
cg_of() { docker inspect -f '{{or .HostConfig.CgroupParent "/docker"}}/{{.Id}}' "$1"; }
bound() { counter "$(cg_of "$1")" bind_rewritten; }
# wait_bound NAME: its app's bind was rewritten (1) within 5 s; prints the count
wait_bound() { local b; for _ in $(seq 50); do b=$(bound "$1"); [ "$b" = 1 ] && break; sleep 0.1; done; echo "$b"; }
origin_of() { "$HOSTLO" list -j | jq -r --arg c "$1" '[.[] | select(.cgroup == $c) | .origin] | join(",")'; }
probe_in() { timeout 10 docker exec "$1" sockprobe connect 127.0.0.1 $HP 2>&1; }

cat >"$CONF" <<EOF
{"containers": [{"name": "cfg-*", "connect": ["$HP"]}]}
EOF
start_agent

SECONDS=0
expect "list says the agent runs" 0 "hostlo watch runs \(pid $AGENT\)" -- "$HOSTLO" list
expect_error "a second agent for the same bpffs: refused" 1 "^hostlo: watch: another agent runs for $HOSTLO_BPFFS \(pid $AGENT\)$" -- timeout 5 "$HOSTLO" watch
# the same bpffs spelled otherwise: the same agent (its pid file is keyed on the resolved path)
ln -sfn "$HOSTLO_BPFFS" "$STATE/bpffs-link"
for alias in "$HOSTLO_BPFFS/" "$(dirname "$HOSTLO_BPFFS")/./$(basename "$HOSTLO_BPFFS")" "$STATE/bpffs-link"; do
	expect "HOSTLO_BPFFS=$alias: list says the agent runs" 0 "hostlo watch runs \(pid $AGENT\)" -- env HOSTLO_BPFFS="$alias" "$HOSTLO" list
	# (bounded: a second agent that starts runs until stopped, and fails the check with timeout's 124)
	expect_error "HOSTLO_BPFFS=$alias: a second agent refused" 1 "^hostlo: watch: another agent runs for $HOSTLO_BPFFS \(pid $AGENT\)$" -- \
		timeout 5 env HOSTLO_BPFFS="$alias" "$HOSTLO" watch --config "$CONF"
done
# another path (a directory beside it, not the same bpffs): no agent runs for it
mkdir -p "$STATE/bpffs-other"
expect "HOSTLO_BPFFS=another path: list does not see the agent" 0 "^nothing attached$" -- env HOSTLO_BPFFS="$STATE/bpffs-other" "$HOSTLO" list

echo "# a container with only labels: its 127.0.0.1 reaches the host, its app on 127.0.0.1 is published"
web w0 --label $L_CONNECT -p 127.0.0.1:$PUB:$APP_PORT
check "bind rewritten once, at the app's first bind" 1 "$(wait_bound w0)"
expect "through -p on the host: the app bound to its 127.0.0.1" 0 "^hello-from-the-container$" -- fetch http://127.0.0.1:$PUB/
expect "its 127.0.0.1:$HP reaches the host's server; getpeername shows 127.0.0.1" 0 "^peer=127\.0\.0\.1:$HP got=hello-from-the-host$" -- probe_in w0
check "list: origin label" label "$(origin_of "$(cg_of w0)")"
check "the log: one attached line for it, rules and latency" "1 true" \
	"$(jq -s --arg c "$(cid w0)" '[.[] | select(.event == "attached" and .container == $c)] | "\(length) \(.[0].latency_ms != null)"' -r "$LOG")"

echo "# $N containers started back to back"
for i in $(seq $N); do web "b$i"; done
covered=0
for i in $(seq $N); do [ "$(wait_bound "b$i")" = 1 ] && covered=$((covered + 1)); done
echo "covered $covered/$N"
check "every one covered (bind_rewritten 1 each)" "$N/$N" "$covered/$N"
lat=$(jq -s -r --argjson n $N '[.[] | select(.event == "attached" and .latency_ms != null and (.name | test("^b[0-9]+$")))][:$n] |
	map(.latency_ms) | sort | "\(length) containers: p50 \(.[(length * 0.5 | floor)] * 100 | round / 100) ms, p99 \(.[(length * 0.99 | floor)] * 100 | round / 100) ms"' "$LOG")
echo "from cgroup creation (inotify) to rules in place, over $lat"

echo "# docker restart: covered again each time"
ok_restarts=0
for i in $(seq $RESTARTS); do
	docker restart -t 1 w0 >/dev/null
	[ "$(wait_bound w0)" = 1 ] && [ "$(fetch http://127.0.0.1:$PUB/)" = hello-from-the-container ] && ok_restarts=$((ok_restarts + 1))
done
check "covered after each of $RESTARTS restarts (bind 1, served through -p)" "$RESTARTS" "$ok_restarts"

echo "# rm -f, then run again under the same name"
docker rm -f w0 >/dev/null
web w0 --label $L_CONNECT -p 127.0.0.1:$PUB:$APP_PORT
check "the new container: covered" 1 "$(wait_bound w0)"
expect "and served through -p" 0 "^hello-from-the-container$" -- fetch http://127.0.0.1:$PUB/

echo "# not asked: untouched"
wrun plain -p 127.0.0.1:$((PUB + 2)):$APP_PORT $APP sh -c "exec httpd -f -p 127.0.0.1:$APP_PORT -h /www"
sleep 0.5
expect "no labels: its published port resets" 1 "reset|refused|error" -- fetch http://127.0.0.1:$((PUB + 2))/
check "no labels: not attached" "" "$(origin_of "$(cg_of plain)")"

echo "# a bad label: logged, left alone; the others still served"
wrun bad --label io.hostlo.connect=99999 $APP sleep 3600
for _ in $(seq 50); do grep -q '"name":"bad"' "$LOG" && break; sleep 0.1; done
check "one log line naming the container and the value" \
	"hostlo: watch: container bad: io.hostlo.connect: bad value \"99999\": port '99999' is out of range (1-65535)" \
	"$(jq -r 'select(.event == "error" and .name == "bad") | .message' "$LOG")"
check "not attached" "" "$(origin_of "$(cg_of bad)")"
web after-bad
check "the agent still covers a new container" 1 "$(wait_bound after-bad)"

echo "# the config file: name glob; SIGHUP with the entry gone detaches"
wrun cfg-1 $APP sleep 3600
for _ in $(seq 50); do [ -n "$(origin_of "$(cg_of cfg-1)")" ] && break; sleep 0.1; done
check "list: origin config" config "$(origin_of "$(cg_of cfg-1)")"
expect "cfg-1 reaches the host through its 127.0.0.1" 0 "got=hello-from-the-host" -- probe_in cfg-1
echo '{"containers": []}' >"$CONF"
kill -HUP "$AGENT"
for _ in $(seq 50); do [ -z "$(origin_of "$(cg_of cfg-1)")" ] && break; sleep 0.1; done
check "SIGHUP, entry gone: detached" "" "$(origin_of "$(cg_of cfg-1)")"

echo "# a --cgroup-parent that appears while the agent runs"
web p1 --cgroup-parent=/$HL_NAME
check "its container covered from its first bind" "1 $(cg_of p1)" "$(wait_bound p1) $("$HOSTLO" list -j | jq -r --arg c "$(cg_of p1)" '.[] | select(.cgroup == $c) | .cgroup')"

echo "# attached by hand: the agent leaves it alone"
"$HOSTLO" attach --container plain --connect $HP >/dev/null
check "list: origin cli" cli "$(origin_of "$(cg_of plain)")"

echo "# the agent killed with SIGKILL while containers start, then started again"
for i in 1 2 3 4 5 6; do web "k$i"; done &
starter=$!
sleep 1
kill -KILL "$AGENT"; wait "$AGENT" 2>/dev/null
wait $starter
docker rm -f k1 b1 >/dev/null   # gone while nobody watched
web k7                          # started while nobody watched
start_agent "$(connected)"
asking() { for c in $(docker ps -q --filter label=io.hostlo.bind); do cg_of $c; done; }
want=$({ asking; cg_of plain; } | sort)
got=$("$HOSTLO" list -j | jq -r '.[].cgroup' | sort)
check "reconciled: exactly every running container that asks (and the hand attach), each once" "$want" "$got"
check "the containers started while it was down: attached at the reconcile" "label label" "$(origin_of "$(cg_of k6)") $(origin_of "$(cg_of k7)")"
check "the hand attach survived the reconcile" cli "$(origin_of "$(cg_of plain)")"

echo "# the Docker engine restarted while the agent runs"
n=$(connected)
kill -TERM "$(cat "$DK/docker.pid")"
for _ in $(seq 600); do [ -z "$(engine_procs)" ] && break; sleep 0.1; done
[ -z "$(engine_procs)" ] || { echo "hostlo: test: the engine's processes outlived it by 60 s: $(engine_procs | xargs)" >&2; exit 1; }
ip link del $BRIDGE
start_engine
for _ in $(seq 100); do [ "$(connected)" -gt "$n" ] && break; sleep 0.1; done
check "the agent reconnected" yes "$([ "$(connected)" -gt "$n" ] && echo yes || echo no)"
web after-engine
check "and covers a new container" 1 "$(wait_bound after-engine)"

# The engine stopped the labelled containers: start them again, as a restart policy would.
stopped() { docker ps -aq --filter label=io.hostlo.bind --filter status=exited --filter status=created; }
docker start $(stopped) >"$STATE/start.out" 2>&1
check "the engine's stopped containers all started again" "" "$(stopped | tr '\n' ' ')$([ -n "$(stopped)" ] && tail -2 "$STATE/start.out")"
check "w0 covered again from its first bind (a new cgroup, the agent attached it)" 1 "$(wait_bound w0)"

echo "# a reboot emulated: nothing in bpffs, the agent started"
stop_agent
"$HOSTLO" detach --all >/dev/null
umount "$STATE/bpffs" && mount -t bpf bpf "$STATE/bpffs"
check "bpffs empty" 0 "$(hostlo_pins)"
start_agent "$(connected)"
want=$(asking | sort)
got=$("$HOSTLO" list -j | jq -r '.[] | select(.origin == "label") | .cgroup' | sort)
check "every labelled running container attached again ($(wc -l <<<"$want"))" "$want" "$got"
for _ in $(seq 50); do fetch http://127.0.0.1:$PUB/ >/dev/null && break; sleep 0.1; done   # its proxy up
expect "w0 served through -p again" 0 "^hello-from-the-container$" -- fetch http://127.0.0.1:$PUB/
web after-reboot
check "and a new one covered" 1 "$(wait_bound after-reboot)"
n=$("$HOSTLO" list -j | jq length)
stop_agent; rc=$?
check "SIGTERM: exit 0, the $n attachments stay" "0 $n" "$rc $("$HOSTLO" list -j | jq length)"

[ -n "${WATCH_LOG_COPY:-}" ] && cp "$LOG" "$WATCH_LOG_COPY"   # the agent's log, to read after a run
echo "($SECONDS s)"
echo "watch: $PASSED passed, $FAILED failed"
echo "$PASSED $FAILED" >"${RESULT_FILE:-/dev/null}"
