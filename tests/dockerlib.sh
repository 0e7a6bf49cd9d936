# dockerlib.sh: a Docker engine of the tests' own (own data-root, exec-root, socket, and a bridge in
# 198.19.0.0/24; no iptables rules), a busybox image built locally, helpers. Sourced after lib.sh;
# $HOSTLO_TEST_DOCKER_HOST=unix:///path uses an engine that already runs instead.
for t in dockerd docker busybox; do
	command -v $t >/dev/null || { echo "hostlo: test: $t is missing (scripts/deps.sh installs it)" >&2; exit 1; }
done

DK=$STATE/docker BRIDGE=hlt-br0 GW=198.19.0.1
IMAGE=hostlo-test-busybox

# The engine and the containerd it started are the only processes whose command line names $DK.
engine_procs() { pgrep -f -- "$DK/" 2>/dev/null; }

docker_cleanup() {
	if [ -z "${HOSTLO_TEST_DOCKER_HOST:-}" ]; then
		local ids
		[ -S "$DK/docker.sock" ] && ids=$(docker ps -aq --filter label=hostlo-test 2>/dev/null)
		[ -n "${ids:-}" ] && docker rm -f $ids >/dev/null 2>&1
		# stop the engine, and wait until it has: a later run must not find it (or its containerd) alive
		engine_procs | xargs -r kill -TERM 2>/dev/null
		for _ in $(seq 150); do [ -z "$(engine_procs)" ] && break; sleep 0.1; done
		engine_procs | xargs -r kill -KILL 2>/dev/null
		for _ in $(seq 50); do [ -z "$(engine_procs)" ] && break; sleep 0.1; done
	else
		docker ps -aq --filter label=hostlo-test | xargs -r docker rm -f >/dev/null 2>&1
	fi
	# a crashed run can leave the engine's own mounts behind
	grep -o " $DK[^ ]*" /proc/self/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null
	ip link del $BRIDGE 2>/dev/null
	cleanup
	# the engine runs in cgroup v1 mode here: its parent cgroups in each v1 hierarchy go too
	local m
	for m in $(mounts_of cgroup); do
		find "$m" -maxdepth 1 -type d -name "$HL_NAME*" -exec find {} -depth -type d -delete \; 2>/dev/null
	done
	return 0
}
trap docker_cleanup EXIT
trap 'exit 130' INT TERM

start_engine() {
	if [ -n "${HOSTLO_TEST_DOCKER_HOST:-}" ]; then
		export DOCKER_HOST=$HOSTLO_TEST_DOCKER_HOST
		GW=$(docker network inspect bridge -f '{{(index .IPAM.Config 0).Gateway}}')
		return
	fi
	export DOCKER_HOST=unix://$DK/docker.sock
	mkdir -p "$DK"
	# a fixed address: else the bridge takes the lowest of its ports' and changes as containers come
	# and go, and the containers' ARP entries for the gateway go stale (connects hang for a while)
	ip link add $BRIDGE address 02:42:c6:13:00:01 type bridge
	ip addr add $GW/24 dev $BRIDGE
	ip link set $BRIDGE up
	# no iptables: published ports go through docker-proxy, and the host's rules are left as they were
	dockerd --bridge $BRIDGE --iptables=false --ip-masq=false --data-root "$DK/data" --exec-root "$DK/exec" \
		-H "$DOCKER_HOST" --pidfile "$DK/docker.pid" >"$DK/dockerd.log" 2>&1 &
	for _ in $(seq 100); do docker info >/dev/null 2>&1 && return; sleep 0.2; done
	echo "hostlo: test: dockerd did not start: $(tail -3 "$DK/dockerd.log")" >&2
	exit 1
}

build_image() {
	local r=$DK/rootfs
	mkdir -p "$r/bin" "$r/www" "$r/tmp"
	cp "$(command -v busybox)" "$r/bin/busybox"
	for a in sh wget httpd sleep cat; do ln -sf busybox "$r/bin/$a"; done
	echo hello-from-the-container >"$r/www/index.html"
	tar -C "$r" -c . | docker import - $IMAGE >/dev/null
}

# client_image NAME BIN...: an image of busybox plus the host's own BIN..., with the exact libraries
# they load (as ldd lists them), so real clients run in the containers.
client_image() {
	local name=$1 r=$DK/$1
	shift
	mkdir -p "$r/bin" "$r/tmp"
	cp "$(command -v busybox)" "$r/bin/busybox" && ln -sf busybox "$r/bin/sh" && ln -sf busybox "$r/bin/sleep"
	cp "$@" "$r/bin/"
	for b in "$@"; do ldd "$b"; done | grep -o '/[^ ]*' | sort -u | xargs -I{} cp --parents -L {} "$r/"
	tar -C "$r" -c . | docker import - "$name" >/dev/null
}

# run NAME PARENT CMD...: a detached test container under cgroup parent PARENT.
run() {
	local name=$1 parent=$2
	shift 2
	docker run -d --label hostlo-test --name "$name" --cgroup-parent="$parent" "$@" >/dev/null
}
cid() { docker inspect -f '{{.Id}}' "$1"; }
cpid() { docker inspect -f '{{.State.Pid}}' "$1"; }
# busybox wget -T crashes (Debian's busybox-static 1.35): bound the time from outside instead
fetch_in() { timeout 10 docker exec "$1" wget -q -O - "http://127.0.0.1:$2/" 2>&1; }
fetch() { timeout 10 busybox wget -q -O - "$1" 2>&1; }
