#!/usr/bin/env bash
# manifests.sh: deploy/kubernetes is valid against the Kubernetes API schemas (kubernetes-models,
# pinned in tests/node/package-lock.json), and the hostlo command lines it holds are accepted by hostlo.
HL_NAME=hostlo-ktest
source "$(dirname "$0")/../lib.sh"
require node npm unshare curl
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

echo "# the DaemonSet: serve only, the node's bpffs and cgroup2 tree"
# each container: name, command, hostPath:mountPath of each mount, added capabilities, hostPID
ds() {
	(cd "$K8S" && node --input-type=module -e '
import { readFileSync } from "node:fs"; import { parse } from "yaml";
const s = parse(readFileSync(process.argv[1], "utf8")).spec.template.spec;
const vol = Object.fromEntries(s.volumes.map((v) => [v.name, v.hostPath?.path]));
for (const c of s.containers)
  console.log(c.name, c.args[0], (c.volumeMounts ?? []).map((m) => `${vol[m.name]}:${m.mountPath}`).join(" "),
    c.securityContext.capabilities.add.join(","), s.hostPID ?? false);
' "$1")
}
DS_WANT="hostlo serve /sys/fs/bpf:/sys/fs/bpf /sys/fs/cgroup:/sys/fs/cgroup SYS_ADMIN,NET_ADMIN false"
check "one container: serve (no watch: no Docker API on a containerd node), the node's /sys/fs/bpf and /sys/fs/cgroup over the container's own, SYS_ADMIN + NET_ADMIN, no hostPID" \
	"$DS_WANT" "$(ds "$ROOT/deploy/kubernetes/daemonset.yaml")"
sed 's#mountPath: /sys/fs/cgroup#mountPath: /host/cgroup#' "$ROOT/deploy/kubernetes/daemonset.yaml" >"$STATE/bad/daemonset.yaml"
check "a DaemonSet whose cgroup mount leaves the container's own in place is told apart" "differs" \
	"$([ "$(ds "$STATE/bad/daemonset.yaml")" != "$DS_WANT" ] && echo differs)"

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
		check "manifest: hostlo ${args[*]}: stops on SIGTERM" 0 $?
		# the same command where the runtime's own cgroup2 mount stayed (a private cgroup namespace's:
		# only its pod's subtree), with only the manifest's capabilities: another pod's attachment is kept
		mkdir -p "$CG2/$HL_NAME/other" "$CG2/$HL_NAME/ds/hostlo"
		"$HOSTLO" attach --cgroup /$HL_NAME/other --connect 5432=198.18.0.1 >/dev/null
		bash -c 'echo $$ > "$1/cgroup.procs" && shift && exec unshare -m --cgroup --propagation private bash -c "umount -l \"\$0\" && mount -t cgroup2 none \"\$0\" && exec \"\$@\"" "$@"' \
			_ "$CG2/$HL_NAME/ds/hostlo" "$CG2" setpriv --inh-caps=-all --bounding-set=-all,+sys_admin,+net_admin "$HOSTLO" "${args[@]}" 2>/dev/null &
		server=$!
		for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
		expect "manifest: hostlo ${args[*]} in a partial cgroup2 view, SYS_ADMIN + NET_ADMIN only: two scrapes answer" 0 "^# HELP" -- \
			bash -c "curl -sf http://127.0.0.1:$port/metrics >/dev/null && curl -sf http://127.0.0.1:$port/metrics"
		kill -TERM $server
		wait $server
		check "... and another pod's attachment, out of its view, is still there" "/$HL_NAME/other" "$("$HOSTLO" list -j | jq -r '.[].cgroup')"
		rmdir "$CG2/$HL_NAME/other"
		expect "... while from the node's view, once that pod is gone, it is removed" 0 "^gc: removed 1 attachment " -- "$HOSTLO" gc ;;
	*)
		not_ok "manifest: unexpected hostlo command: ${args[*]}" ;;
	esac
done <"$STATE/args"
kill_cgroup "$CG2/$HL_NAME"

echo "manifests: $PASSED passed, $FAILED failed"
echo "$PASSED $FAILED" >"${RESULT_FILE:-/dev/null}"
