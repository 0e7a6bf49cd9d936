#!/usr/bin/env bash
# manifests.sh: deploy/kubernetes is valid against the Kubernetes API schemas (kubernetes-models,
# pinned in tests/node/package-lock.json), and the hostlo command lines it holds are accepted by hostlo.
HL_NAME=hostlo-ktest
source "$(dirname "$0")/../lib.sh"
require node npm
trap cleanup EXIT
trap 'exit 130' INT TERM
cleanup
mkdir -p "$STATE/bpffs" && mount -t bpf bpf "$STATE/bpffs"
K8S=$ROOT/tests/node

if [ ! -d "$K8S/node_modules/kubernetes-models" ]; then
	npm ci --prefix "$K8S" --no-audit --no-fund --loglevel=error >"$STATE/npm.log" 2>&1 || { cat "$STATE/npm.log"; exit 1; }
fi

echo "# schemas"
expect "every manifest is valid" 0 "^valid: daemonset.yaml DaemonSet/hostlo-gc
valid: pod.yaml Pod/app-with-hostlo$" -- bash -c "node '$K8S/validate.mjs' '$ROOT/deploy/kubernetes' 2>&1 >/dev/null"
mkdir -p "$STATE/bad"
sed 's/containerPort: 3000/containerPort: "3000x"/' "$ROOT/deploy/kubernetes/pod.yaml" >"$STATE/bad/pod.yaml"
expect "a broken manifest is rejected" 1 "containerPort must be integer" -- node "$K8S/validate.mjs" "$STATE/bad"

echo "# the command lines in the manifests, run through hostlo"
node "$K8S/validate.mjs" "$ROOT/deploy/kubernetes" 2>/dev/null >"$STATE/args"
check "two hostlo containers found" 2 "$(wc -l <"$STATE/args")"
# the init container as it would run: in a container cgroup below its pod's cgroup
mkdir -p "$CG2/$HL_NAME/pod1/init"
while read -r line; do
	mapfile -t args < <(jq -r '.[] | gsub("\\$\\(HOST_IP\\)"; "198.18.0.1")' <<<"$line")
	case ${args[0]} in
	attach)
		expect "manifest: hostlo ${args[*]} --dry-run" 0 "^would attach /$HL_NAME/pod1 \(cgroup id [0-9]+\): --connect tcp:5432=198.18.0.1( \(host loopback too\))? --bind 3000=0.0.0.0$" -- \
			bash -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' _ "$CG2/$HL_NAME/pod1/init" "$HOSTLO" "${args[@]}" --dry-run ;;
	serve)
		# runs until stopped: while it runs, /healthz and /metrics answer on the port it names
		port=${args[2]##*:}
		"$HOSTLO" "${args[@]}" 2>/dev/null &
		server=$!
		for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
		expect "manifest: hostlo ${args[*]}: /healthz and /metrics answer" 0 "^ok
# HELP hostlo_connect_redirected_total" -- bash -c "curl -sf http://127.0.0.1:$port/healthz && curl -sf http://127.0.0.1:$port/metrics"
		kill -TERM $server
		wait $server
		check "manifest: hostlo ${args[*]}: stops on SIGTERM" 0 $? ;;
	*)
		not_ok "manifest: unexpected hostlo command: ${args[*]}" ;;
	esac
done <"$STATE/args"
kill_cgroup "$CG2/$HL_NAME"

echo "manifests: $PASSED passed, $FAILED failed"
echo "$PASSED $FAILED" >"${RESULT_FILE:-/dev/null}"
