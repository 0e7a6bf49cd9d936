#!/usr/bin/env bash
# seed.sh: inside the systemd + Docker guest (tests/kernels/docker-guest.sh), started by systemd after
# docker.service: the seed's two scenarios with containers of Docker's systemd cgroup driver
# (/system.slice/docker-<id>.scope) on pure cgroup v2. The bridge is 198.18.5.1/24 (daemon.json);
# test traffic goes to loopback and that bridge only.
#   1. an app connects to localhost:5432 expecting the database on the host (here: on the host's
#      127.0.0.1 only): refused, then reached through hostlo attach --container NAME --connect 5432;
#   2. an app binds 127.0.0.1:3000 behind -p 8080:3000: unreachable, then reached through
#      hostlo attach --container ID --bind 3000.
source /hostlo/tests/lib.sh
trap 'exit 130' INT TERM
IMG=hostlo-seed
DB=5432 APP=3000 PUB=8080 PUB0=8081
mkdir -p "$STATE/bpffs" && mount -t bpf bpf "$STATE/bpffs"

echo "# the host: systemd $(systemctl --version | head -1 | cut -d' ' -f2), Docker $(docker version -f '{{.Server.Version}}'), cgroup driver $(docker info -f '{{.CgroupDriver}}'), cgroup v$(docker info -f '{{.CgroupVersion}}')"
check "Docker uses the systemd cgroup driver on cgroup v2" "systemd 2" "$(docker info -f '{{.CgroupDriver}} {{.CgroupVersion}}')"
# the image: busybox and a static sockprobe, nothing pulled
r=$(mktemp -d)
mkdir -p "$r/bin" "$r/tmp"
cp /bin/busybox "$r/bin/busybox" && ln -s busybox "$r/bin/sh" && ln -s busybox "$r/bin/sleep"
cp /hostlo/build/sockprobe-static "$r/bin/sockprobe"
tar -C "$r" -c . | docker import - $IMG >/dev/null
# the host's database: a server on the host's 127.0.0.1 only
"$PROBE" serve 127.0.0.1 $DB host-db 600 >"$STATE/db" 2>&1 &
wait_ready "$STATE/db" || exit 1

echo "# scenario 1: localhost:$DB in the container is the host's database"
docker run -d --name web $IMG sleep 3600 >/dev/null
WEB=$(docker inspect -f '{{.Id}}' web)
check "the container's cgroup is a systemd scope" "0::/system.slice/docker-$WEB.scope" \
	"$(cat /proc/"$(docker inspect -f '{{.State.Pid}}' web)"/cgroup)"
expect "without hostlo: refused" 1 "^error=ECONNREFUSED$" -- docker exec web sockprobe connect 127.0.0.1 $DB
expect "attach --container web (a name, through the Docker API)" 0 "^attached /system.slice/docker-$WEB.scope \(cgroup id [0-9]+\): --connect tcp:$DB=198.18.5.1 \(host loopback: listening\)$" -- \
	"$HOSTLO" attach --container web --connect $DB
expect "the app reaches the host's database on its own localhost" 0 "^peer=127.0.0.1:$DB got=host-db$" -- docker exec web sockprobe connect 127.0.0.1 $DB
expect "through ::1 too" 0 "^peer=\[::1\]:$DB got=host-db$" -- docker exec web sockprobe connect ::1 $DB
check "list -j: the scope, the container ID and its name" "/system.slice/docker-$WEB.scope $WEB web" \
	"$("$HOSTLO" list -j | jq -r '.[0] | "\(.cgroup) \(.container) \(.name)"')"
check "stats -j: the container's own row counts both connects" "web 2 2" \
	"$("$HOSTLO" stats -j | jq -r --arg id "$WEB" '.[] | select(.container == $id) | "\(.name) \(.connect_redirected) \(.host_steered)"')"

echo "# scenario 2: an app on 127.0.0.1:$APP behind -p $PUB:$APP"
docker run -d --name before -p 127.0.0.1:$PUB0:$APP $IMG sockprobe serve 127.0.0.1 $APP app-before 600 >/dev/null
docker run -d --name api -p 127.0.0.1:$PUB:$APP $IMG sleep 3600 >/dev/null
API=$(docker inspect -f '{{.Id}}' api)
sleep 1
expect "without hostlo: the published port does not reach the app (docker-proxy closes)" 0 "^peer=127.0.0.1:$PUB0 got=$" -- "$PROBE" connect 127.0.0.1 $PUB0
expect "attach --container ID-PREFIX --bind $APP" 0 "^attached /system.slice/docker-$API.scope \(cgroup id [0-9]+\): --bind $APP=0.0.0.0$" -- \
	"$HOSTLO" attach --container "${API:0:12}" --bind $APP
docker exec -d api sockprobe serve 127.0.0.1 $APP app-api 600
for _ in $(seq 50); do docker exec api cat /proc/net/tcp | grep -q ":$(printf %04X $APP) 00000000:0000 0A" && break; sleep 0.2; done
expect "the app's bind 127.0.0.1:$APP became 0.0.0.0: -p $PUB reaches it" 0 "got=app-api$" -- "$PROBE" connect 127.0.0.1 $PUB
check "stats -j: api's bind counted" "api 1" \
	"$("$HOSTLO" stats -j | jq -r --arg id "$API" '.[] | select(.container == $id) | "\(.name) \(.bind_rewritten)"')"

echo "# containers go: their attachments go with them"
docker rm -f web api before >/dev/null
check "list is empty after gc" "[]" "$("$HOSTLO" list -j | jq -c .)"
"$HOSTLO" detach --all >/dev/null

echo "docker-systemd: $PASSED passed, $FAILED failed"
echo "$PASSED $FAILED" >"${RESULT_FILE:-/dev/null}"
