#!/usr/bin/env bash
# watch-guest.sh: inside the systemd + Docker guest (tests/kernels/docker-guest.sh), after seed.sh: the
# watch agent as a user installs it (`make install`, `systemctl enable hostlo-watch`), started by
# systemd at boot, on Docker's systemd cgroup driver (/system.slice/docker-<id>.scope, pure cgroup v2).
# Containers that carry only labels are covered from their first act, across `docker restart`, the
# agent killed (systemd restarts it) and stopped. The agent's state is the real one, /sys/fs/bpf.
# Test traffic: loopback and the Docker bridge, 198.18.5.1/24 (daemon.json), only.
source /hostlo/tests/lib.sh
export HOSTLO_BPFFS=/sys/fs/bpf   # where the unit's agent keeps its attachments
HOSTLO=/usr/local/sbin/hostlo     # the installed one, which the unit runs
UNIT=hostlo-watch.service
IMG=hostlo-watch-app
HP=5433 APP=3000 PUB=8090 PUB_PLAIN=8092 GW=198.18.5.1
L_BIND=io.hostlo.bind=$APP L_CONNECT=io.hostlo.connect=$HP
trap 'exit 130' INT TERM
mkdir -p "$STATE"

# the image: busybox (sh, httpd, sleep) and a static sockprobe, nothing pulled
r=$(mktemp -d)
mkdir -p "$r/bin" "$r/www" "$r/tmp"
cp /bin/busybox "$r/bin/busybox" && for a in sh httpd sleep; do ln -s busybox "$r/bin/$a"; done
cp /hostlo/build/sockprobe-static "$r/bin/sockprobe"
echo hello-from-the-container >"$r/www/index.html"
tar -C "$r" -c . | docker import - $IMG >/dev/null
# the host's server, at the bridge's address: what a container's 127.0.0.1:$HP must reach
"$PROBE" serve $GW $HP hello-from-the-host 900 >"$STATE/watch-server" 2>&1 &
wait_ready "$STATE/watch-server" || exit 1

fetch() { timeout 10 busybox wget -qO- "$1" 2>&1; }
web() { docker run -d --name "$1" "${@:2}" $IMG sh -c "exec httpd -f -p 127.0.0.1:$APP -h /www" >/dev/null; }
cg_of() { echo "/system.slice/docker-$(docker inspect -f '{{.Id}}' "$1").scope"; }
origin_of() { "$HOSTLO" list -j | jq -r --arg c "$1" '[.[] | select(.cgroup == $c) | .origin] | join(",")'; }
# wait_bound NAME: its app's bind was rewritten (1) within 20 s (TCG is slow); prints the count
wait_bound() {
	local b cg
	cg=$(cg_of "$1")
	for _ in $(seq 100); do b=$(counter "$cg" bind_rewritten); [ "$b" = 1 ] && break; sleep 0.2; done
	echo "$b"
}
main_pid() { systemctl show -p MainPID --value $UNIT; }
# wait_agent: the unit's agent runs and follows Docker (list names its pid); prints the pid
wait_agent() {
	local pid
	for _ in $(seq 150); do
		pid=$(main_pid)
		[ "$pid" != 0 ] && "$HOSTLO" list 2>/dev/null | grep -q "^hostlo watch runs (pid $pid)" && break
		sleep 0.2
	done
	echo "$pid"
}
asking() { for c in $(docker ps -q --filter label=io.hostlo.bind); do cg_of "$c"; done | sort; }

echo "# the unit as make install wrote it, enabled and started by systemd at boot"
check "installed by make install: the binary, the man page, the completion, the unit" "4" \
	"$(ls /usr/local/sbin/hostlo /usr/local/share/man/man8/hostlo.8 /usr/local/share/bash-completion/completions/hostlo \
		/usr/local/lib/systemd/system/$UNIT 2>/dev/null | wc -l)"
check "ExecStart: @SBINDIR@ substituted" "ExecStart=/usr/local/sbin/hostlo watch" "$(grep '^ExecStart=' /usr/local/lib/systemd/system/$UNIT)"
check "enabled, active, Restart=on-failure" "enabled active on-failure" \
	"$(systemctl is-enabled $UNIT) $(systemctl is-active $UNIT) $(systemctl show -p Restart --value $UNIT)"
AGENT=$(wait_agent)
check "its main process is the installed hostlo, started by systemd" "/usr/local/sbin/hostlo 1" \
	"$(readlink /proc/"$AGENT"/exe) $(ps -o ppid= -p "$AGENT" | tr -d ' ')"
expect "hostlo list says the agent runs" 0 "hostlo watch runs \(pid $AGENT\)" -- "$HOSTLO" list

echo "# a container with only labels: covered from its first act"
web w0 --label $L_BIND --label $L_CONNECT -p 127.0.0.1:$PUB:$APP
check "its app's bind 127.0.0.1:$APP rewritten once, at its first bind" 1 "$(wait_bound w0)"
expect "through -p on the host: the app bound to its 127.0.0.1" 0 "^hello-from-the-container$" -- fetch http://127.0.0.1:$PUB/
expect "its 127.0.0.1:$HP reaches the host's server at $GW; getpeername shows 127.0.0.1" 0 \
	"^peer=127\.0\.0\.1:$HP got=hello-from-the-host$" -- timeout 20 docker exec w0 sockprobe connect 127.0.0.1 $HP
check "list: its scope, origin label" "label" "$(origin_of "$(cg_of w0)")"

echo "# a container without labels: untouched"
web plain -p 127.0.0.1:$PUB_PLAIN:$APP
sleep 2
check "not attached" "" "$(origin_of "$(cg_of plain)")"
expect "its published port does not reach its app (docker-proxy closes)" 0 "^peer=127.0.0.1:$PUB_PLAIN got=$" -- "$PROBE" connect 127.0.0.1 $PUB_PLAIN
expect "its 127.0.0.1:$HP is its own loopback (refused)" 1 "^error=ECONNREFUSED$" -- timeout 20 docker exec plain sockprobe connect 127.0.0.1 $HP

echo "# docker restart: covered again"
docker restart -t 1 w0 >/dev/null
check "bind rewritten in the new run (a new scope, the same name)" 1 "$(wait_bound w0)"
expect "served through -p again" 0 "^hello-from-the-container$" -- fetch http://127.0.0.1:$PUB/

echo "# the agent killed with SIGKILL: systemd restarts it, it reconciles"
kill -KILL "$AGENT"
docker rm -f w0 >/dev/null                       # gone, perhaps while nobody watched
web w1 --label $L_BIND -p 127.0.0.1:$PUB:$APP    # started, perhaps while nobody watched
for _ in $(seq 100); do [ "$(main_pid)" != 0 ] && [ "$(main_pid)" != "$AGENT" ] && break; sleep 0.2; done
NEW=$(wait_agent)
check "systemd restarted it (a new pid, NRestarts 1)" "yes 1" \
	"$([ "$NEW" != "$AGENT" ] && [ "$NEW" != 0 ] && echo yes || echo no) $(systemctl show -p NRestarts --value $UNIT)"
check "the container started meanwhile: covered" 1 "$(wait_bound w1)"
check "reconciled: exactly the running containers that ask, each once" "$(asking)" "$("$HOSTLO" list -j | jq -r '.[].cgroup' | sort)"
expect "w1 served through -p" 0 "^hello-from-the-container$" -- fetch http://127.0.0.1:$PUB/

echo "# systemctl stop: the attachments stay and keep working"
n=$("$HOSTLO" list -j | jq length)
systemctl stop $UNIT
check "stopped (inactive), the $n attachments still there" "inactive $n" "$(systemctl is-active $UNIT) $("$HOSTLO" list -j | jq length)"
check "list no longer says an agent runs" 0 "$("$HOSTLO" list | grep -c '^hostlo watch runs')"
expect "w1 still served through -p" 0 "^hello-from-the-container$" -- fetch http://127.0.0.1:$PUB/
web w2 --label $L_BIND
sleep 3
check "a labelled container started now is not attached (nobody watches)" "" "$(origin_of "$(cg_of w2)")"

docker rm -f w1 w2 plain >/dev/null
"$HOSTLO" detach --all >/dev/null
echo "docker-watch: $PASSED passed, $FAILED failed"
echo "$PASSED $FAILED" >"${RESULT_FILE:-/dev/null}"
