#!/usr/bin/env bash
# docker.sh: hostlo on real containers of a real Docker engine that this suite starts (its own data-root,
# exec-root, socket and bridge in 198.19.0.0/24; stopped afterwards), or on $HOSTLO_TEST_DOCKER_HOST.
# Images are built locally from Debian's busybox-static; nothing is pulled.
HL_NAME=hostlo-dtest   # containers run under the cgroup parent /hostlo-dtest (like the pod of an init container)
source "$(dirname "$0")/../lib.sh"
require
source "$ROOT/tests/dockerlib.sh"
HP=18081 PUB=18080 APP_PORT=3000
PARENT=/$HL_NAME PLAIN=/$HL_NAME-plain   # attached parent; a parent hostlo never covers

docker_cleanup >/dev/null 2>&1
setup_host_bpffs() { mkdir -p "$STATE/bpffs" && mount -t bpf bpf "$STATE/bpffs"; }
setup_host_bpffs
mkdir -p "$CG2$PARENT" "$CG2$PLAIN" "$CGH"
start_engine
build_image

# A service on the host, reachable at the bridge gateway.
mkdir -p "$DK/hostwww" && echo hello-from-the-host >"$DK/hostwww/index.html"
on_host busybox httpd -f -p $GW:$HP -h "$DK/hostwww" &

for _ in $(seq 50); do fetch http://$GW:$HP/ >/dev/null && break; sleep 0.1; done

echo "# scenario 1: a container reaches a host service through 127.0.0.1 (target: its gateway)"
run c1 $PLAIN $IMAGE sleep 3600
expect "without hostlo: wget 127.0.0.1:$HP in the container fails" 1 "refused" -- fetch_in c1 $HP
expect "attach --container NAME, the target defaults to the gateway" 0 "^attached $PLAIN/[0-9a-f]{64} \(cgroup id [0-9]+\): --connect tcp:$HP=$GW \(host loopback: no listener\)$" -- "$HOSTLO" attach --container c1 --connect $HP
expect "with hostlo: wget 127.0.0.1:$HP reaches the host" 0 "^hello-from-the-host$" -- fetch_in c1 $HP
run c2 $PLAIN $IMAGE sleep 3600
expect "another container (not attached) still fails" 1 "refused" -- fetch_in c2 $HP
check "stats -j names the container" "c1 $(cid c1) $PLAIN/$(cid c1) 1" \
	"$("$HOSTLO" stats -j | jq -r '.[] | "\(.name) \(.container) \(.cgroup) \(.connect_redirected)"')"
expect "list names the container" 0 "$PLAIN/$(cid c1) +[0-9]+ +$(cid c1 | cut -c1-12) +c1 +cli +--connect tcp:$HP=$GW" -- "$HOSTLO" list

echo "# detach while the container runs"
expect "detach --container" 0 "^detached $PLAIN/$(cid c1)$" -- "$HOSTLO" detach --container c1
expect "new connects are no longer redirected" 1 "refused" -- fetch_in c1 $HP

echo "# target forms: full ID, 12-character prefix, --pid; an unknown name"
expect "by full ID" 0 "^would attach $PLAIN/$(cid c1) " -- "$HOSTLO" attach --container "$(cid c1)" --connect $HP --dry-run
expect "by 12-character prefix" 0 "^would attach $PLAIN/$(cid c1) " -- "$HOSTLO" attach --container "$(cid c1 | cut -c1-12)" --connect $HP --dry-run
expect "by --pid of the container's process" 0 "^would attach $PLAIN/$(cid c1) " -- "$HOSTLO" attach --pid "$(cpid c1)" --connect $HP --dry-run
expect_error "an unknown name: exit 1, says where it looked" 1 "^hostlo: container no-such-container: not found \(looked in the cgroup2 tree under $CG2, containerd's tasks, and Docker at $DK/docker.sock\); name it by --pid PID of a process in it, or --cgroup PATH$" -- "$HOSTLO" attach --container no-such-container --connect $HP
expect_error "a malformed name: exit 2" 2 "^hostlo: --container a/b: not a container name or ID$" -- "$HOSTLO" attach --container a/b --connect $HP

echo "# every common cgroup layout, and an ambiguous prefix (real cgroup directories, no runtime needed)"
FAKE=$CG2/$HL_NAME-layouts
A=aaaa1111 B=aaaa2222 Z=$(printf '0%.0s' $(seq 56))
mkdir -p "$FAKE/system.slice/docker-$A$Z.scope" "$FAKE/machine.slice/libpod-$B$Z.scope" \
	"$FAKE/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-bbbb3333$Z.scope" \
	"$FAKE/crio/crio-cccc4444$Z.scope" "$FAKE/kubepods/burstable/pod2/dddd5555$Z" "$FAKE/machine.slice/libpod-conmon-eeee6666$Z.scope"
for p in "docker-$A" "libpod-$B" "cri-containerd-bbbb3333" "crio-cccc4444" "dddd5555"; do
	id=${p##*-}
	expect "layout ${p%-*}: found by prefix ${id:0:8}" 0 "^would attach /$HL_NAME-layouts/.*$p$Z(\.scope)? " -- \
		"$HOSTLO" attach --container "${id:0:8}" --connect $HP=$GW --dry-run
done
expect_error "conmon's cgroup is not a container" 1 "container eeee6666: not found" -- "$HOSTLO" attach --container eeee6666 --connect $HP=$GW --dry-run
expect_error "an ambiguous prefix lists the candidates" 1 "^hostlo: container aaaa: ambiguous ID prefix, matches 2 containers: (aaaa11110000, aaaa22220000|aaaa22220000, aaaa11110000)$" -- "$HOSTLO" attach --container aaaa --connect $HP=$GW
kill_cgroup "$FAKE"

echo "# scenario 2: an app bound to 127.0.0.1 behind -p, attached at the parent before it starts"
run plainweb $PLAIN -p 127.0.0.1:$((PUB + 1)):$APP_PORT $IMAGE httpd -f -p 127.0.0.1:$APP_PORT -h /www
expect "attach the parent cgroup (no container yet)" 0 "^attached $PARENT " -- "$HOSTLO" attach --cgroup $PARENT --connect $HP=$GW --bind $APP_PORT
run web $PARENT -p 127.0.0.1:$PUB:$APP_PORT $IMAGE httpd -f -p 127.0.0.1:$APP_PORT -h /www
sleep 0.5
expect "without hostlo: the published port resets" 1 "reset|refused|error" -- fetch http://127.0.0.1:$((PUB + 1))/
expect "with hostlo: the published port serves the app" 0 "^hello-from-the-container$" -- fetch http://127.0.0.1:$PUB/

echo "# per-container stats under one parent: exact counts, docker exec included"
run w1 $PARENT $IMAGE sleep 3600
run w2 $PARENT $IMAGE sleep 3600
for _ in 1 2 3; do fetch_in w1 $HP >/dev/null; done
for _ in 1 2 3 4 5; do fetch_in w2 $HP >/dev/null; done
check "w1: 3 redirects, its own row" 3 "$("$HOSTLO" stats -j | jq -r '.[] | select(.name == "w1") | .connect_redirected')"
check "w2: 5 redirects, its own row" 5 "$("$HOSTLO" stats -j | jq -r '.[] | select(.name == "w2") | .connect_redirected')"
check "web: its bind was rewritten once" "1 $(cid web)" "$("$HOSTLO" stats -j | jq -r '.[] | select(.name == "web") | "\(.bind_rewritten) \(.container)"')"
expect "stats --container filters to it" 0 "^$PARENT/$(cid w2) +$(cid w2 | cut -c1-12) +w2 +$PARENT +5 +0 +0 +0 +0 +0 +0 +0$" -- bash -c "'$HOSTLO' stats --container w2 | tail -n +2"

echo "# an app already listening when hostlo attaches is warned about"
run late $PLAIN $IMAGE httpd -f -p 127.0.0.1:$APP_PORT -h /www
sleep 0.3
expect "attach --bind on a port that already listens: a warning that says what to do" 0 "warning: port $APP_PORT already listens on loopback in $PLAIN/$(cid late) \(pid [0-9]+\): the app must rebind \(restart\)" -- "$HOSTLO" attach --container late --bind $APP_PORT
expect "no warning for a port nobody listens on" 0 "^attached [^
]*$" -- "$HOSTLO" attach --container late --bind $((APP_PORT + 1))

echo "# a removed container leaves nothing behind"
expect "attach --container w1 itself" 0 "^attached $PARENT/$(cid w1) " -- "$HOSTLO" attach --container w1 --connect $HP
w1_id=$(stat -c %i "$CG2$PARENT/$(cid w1)") w1_cid=$(cid w1)
docker rm -f w1 >/dev/null
check "list shows no stale entry" "$PARENT $PLAIN/$(cid late)" "$("$HOSTLO" list -j | jq -r '[.[].cgroup] | sort | join(" ")')"
check "bpffs holds no link for it" 0 "$(ls "$HOSTLO_BPFFS/hostlo/links" | grep -c "^$w1_id-")"
check "stats has no row for it" 0 "$("$HOSTLO" stats -j | jq --arg c "$w1_cid" '[.[] | select(.container == $c)] | length')"
docker rm -f late >/dev/null
expect "gc after a container went away" 0 "^gc: removed 1 attachment of cgroups that no longer exist$" -- "$HOSTLO" gc

echo "docker: $PASSED passed, $FAILED failed"
echo "$PASSED $FAILED" >"${RESULT_FILE:-/dev/null}"
