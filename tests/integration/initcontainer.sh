#!/usr/bin/env bash
# initcontainer.sh: the FROM-scratch image (make image) as a pod's init container, on a real Docker
# engine. A pod is emulated with --cgroup-parent=/POD for every container of the pod.
HL_NAME=hostlo-itest
source "$(dirname "$0")/../lib.sh"
require
source "$ROOT/tests/dockerlib.sh"
HP=18091 PUB=18090 APP_PORT=3000
INIT_IMAGE=hostlo-test-init:latest

docker_cleanup >/dev/null 2>&1
mkdir -p "$STATE/bpffs" && mount -t bpf bpf "$STATE/bpffs"
mkdir -p "$CGH"
start_engine
build_image
make -s -C "$ROOT" image IMAGE=$INIT_IMAGE || { not_ok "make image"; exit 1; }
ok "make image builds $INIT_IMAGE"
size=$(docker image inspect -f '{{.Size}}' $INIT_IMAGE)
check "the image is the static binary only, well under 20 MB" "yes 1" \
	"$([ "$size" -lt 10000000 ] && echo yes || echo "no ($size bytes)") $(docker image inspect -f '{{len .RootFS.Layers}}' $INIT_IMAGE)"

mkdir -p "$DK/hostwww" && echo hello-from-the-host >"$DK/hostwww/index.html"
on_host busybox httpd -f -p $GW:$HP -h "$DK/hostwww" &

for _ in $(seq 50); do fetch http://$GW:$HP/ >/dev/null && break; sleep 0.1; done

# init POD CGROUPNS [EXTRA DOCKER ARGS...]: the init container of pod POD: attach to its own pod, exit.
init() {
	local pod=$1 ns=$2
	shift 2
	timeout 60 docker run --rm --label hostlo-test --cgroup-parent="$pod" --cgroupns="$ns" \
		-v /sys/fs/cgroup:/sys/fs/cgroup -v "$HOSTLO_BPFFS":/sys/fs/bpf "$@" \
		$INIT_IMAGE attach --self --parent --connect $HP=$GW --bind $APP_PORT
}
CAPS="--cap-add SYS_ADMIN --cap-add NET_ADMIN"

for ns in host private; do
	POD=/$HL_NAME-pod-$ns PUBP=$((PUB + ${#ns}))
	echo "# a pod, init container with --cgroupns=$ns"
	# shellcheck disable=SC2086
	expect "init container: attach --self --parent, exit 0" 0 "^attached $POD \(cgroup id [0-9]+\): --connect tcp:$HP=$GW --bind $APP_PORT=0.0.0.0$" -- init $POD $ns $CAPS
	check "it attached the pod's cgroup" "$POD" "$("$HOSTLO" list -j | jq -r --arg p "$POD" '.[] | select(.cgroup == $p) | .cgroup')"
	run web-$ns $POD -p 127.0.0.1:$PUBP:$APP_PORT $IMAGE httpd -f -p 127.0.0.1:$APP_PORT -h /www
	run client-$ns $POD $IMAGE sleep 3600
	run outsider-$ns /$HL_NAME-out $IMAGE sleep 3600
	sleep 0.5
	expect "an app of the pod bound to 127.0.0.1:$APP_PORT is reachable through -p" 0 "^hello-from-the-container$" -- fetch http://127.0.0.1:$PUBP/
	expect "another app of the pod reaches the host through 127.0.0.1:$HP" 0 "^hello-from-the-host$" -- fetch_in client-$ns $HP
	expect "a container outside the pod is not redirected" 1 "refused" -- fetch_in outsider-$ns $HP
	check "stats: one row per app container of the pod" "client-$ns web-$ns" \
		"$("$HOSTLO" stats -j | jq -r --arg p "$POD" '[.[] | select(.attached_cgroup == $p) | .name] | sort | join(" ")')"
done

echo "# the node agent image (the DaemonSet's): hostlo serve, scraped from the host"
make -s -C "$ROOT" image-agent AGENT_IMAGE=hostlo-test-agent:latest || not_ok "make image-agent"
docker run -d --label hostlo-test --name agent $CAPS -p 127.0.0.1:19478:9477 \
	-v /sys/fs/cgroup:/sys/fs/cgroup:ro -v "$HOSTLO_BPFFS":/sys/fs/bpf hostlo-test-agent:latest serve --listen 0.0.0.0:9477 >/dev/null
for _ in $(seq 50); do fetch http://127.0.0.1:19478/healthz | grep -q ok && break; sleep 0.1; done
# (no Docker socket in the agent, as on a Kubernetes node: containers are named by ID)
client=$(docker inspect -f '{{.Id}}' client-host)
expect "the agent serves the pod containers' counters, from the node's bpffs" 0 \
	"hostlo_connect_redirected_total\{cgroup=\"/$HL_NAME-pod-host/$client\",container=\"$client\",name=\"\",attached_cgroup=\"/$HL_NAME-pod-host\"\} 1" -- \
	fetch http://127.0.0.1:19478/metrics
docker rm -f agent >/dev/null

echo "# least privilege: without the capabilities it says what is missing and attaches nothing"
POD=/$HL_NAME-pod-nocaps
expect_error "no capabilities: exit 1, names the missing one" 1 "^hostlo: attach: permission denied: missing CAP_BPF \(or CAP_SYS_ADMIN\)" -- init $POD host
expect_error "only CAP_SYS_ADMIN: exit 1, names CAP_NET_ADMIN" 1 "^hostlo: attach: permission denied: missing CAP_NET_ADMIN" -- init $POD host --cap-add SYS_ADMIN
check "nothing attached for that pod" "" "$("$HOSTLO" list -j | jq -r --arg p "$POD" '.[] | select(.cgroup == $p) | .cgroup')"
expect_error "no host bpffs mounted: exit 1, says to mount it" 1 "^hostlo: attach --self: /sys/fs/bpf is not a bpffs: mount the host's /sys/fs/bpf" -- \
	timeout 60 docker run --rm --label hostlo-test --cgroup-parent=$POD $CAPS -v /sys/fs/cgroup:/sys/fs/cgroup $INIT_IMAGE attach --self --parent --connect $HP=$GW

echo "# the pod goes away: gc leaves bpffs clean"
docker ps -aq --filter label=hostlo-test | xargs -r docker rm -f >/dev/null
for pod in $CG2/$HL_NAME-pod-* $CG2/$HL_NAME-out; do kill_cgroup "$pod"; done
expect "gc removes both pods' attachments" 0 "^gc: removed 2 attachments of cgroups that no longer exist$" -- "$HOSTLO" gc
check "nothing of hostlo left in bpffs" 0 "$(hostlo_pins)"

echo "initcontainer: $PASSED passed, $FAILED failed"
echo "$PASSED $FAILED" >"${RESULT_FILE:-/dev/null}"
