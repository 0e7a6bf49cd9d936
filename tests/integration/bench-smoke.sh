#!/usr/bin/env bash
# bench-smoke.sh: `make bench QUICK=1` as a smoke test of the harness: every path ran, hostlo redirected,
# the outputs exist. It never judges a speed: these machines are shared.
source "$(dirname "$0")/../lib.sh"
require
out=$ROOT/build/bench
log=$(mktemp) && trap 'rm -f "$log"' EXIT
make -s -C "$ROOT" bench QUICK=1 >"$log" 2>&1
check "make bench QUICK=1 runs to the end" 0 "$?"
expect "it prints the table" 0 "\| rate \(conn/s" -- cat "$log"
expect "it prints the watch figures: covered 5/5, p50 and p99 on both clocks" 0 \
	"watch: covered 5/5 .*kernel clock \(cgroup:cgroup_mkdir.*: p50 [0-9.]+ ms, p99 [0-9.]+ ms over 5 of 5.*agent clock .*: p50 [0-9.]+ ms, p99 [0-9.]+ ms over 5 of 5" -- cat "$log"
for fig in rate p50 throughput; do
	check "$fig: every path measured (a value above 0 for each)" "4" \
		"$(jq --arg f $fig '[.figures[$f][] | select(.median > 0)] | length' "$out/summary.json")"
done
check "rate: direct, hostlo and iptables took turns (bench mix), 2 rounds or more each" true \
	"$(jq '[.figures.rate.direct, .figures.rate.hostlo, .figures.rate.iptables | .samples >= 2] | all' "$out/summary.json")"
check "hook figures: the median of 2 passes (QUICK), hostlo's and the bare rewrite's in each" "2 2" \
	"$(awk -F, '$1 == "hook_ns_1" && $4 > 0 && $2 == "connect4" { a++ } $1 == "hook_ns_1" && $4 > 0 && $2 == "bare_connect4" { b++ } END { print a + 0, b + 0 }' "$out/samples.csv")"
expect "bench mix: a client that cannot enter its namespace is an error, not a silent rate" 1 \
	"bench: mix: enter /nonexistent/ns:.*bench: mix: the client of x is gone" -- "$ROOT/build/bench/bench" mix 1 10 x=-,/nonexistent/ns,127.0.0.1,9
check "no connect failed on any path" 0 "$(jq .failed_connects "$out/summary.json" | cut -d. -f1)"
check "hostlo really redirected (its counter moved)" yes "$(jq 'if .redirected > 0 then "yes" else "no" end' -r "$out/summary.json")"
check "hook cost measured for connect4 at 1, 1000 and 10000 rules" 3 "$(jq '[.hook_ns_per_call[].connect4 | select(. > 0)] | length' "$out/summary.json")"
check "the bare rewrite measured in the same run, connect4 and connect6 at 1, 1000 and 10000 rules" 6 \
	"$(jq '[.hook_ns_per_call[] | .bare_connect4, .bare_connect6 | select(. > 0)] | length' "$out/summary.json")"
check "hostlo's connect4 and connect6 as a ratio to it" 6 "$(jq '[.hook_ratio_to_bare[] | .connect4, .connect6 | select(. > 0)] | length' "$out/summary.json")"
check "connect4 with --real-peer rules, and from a cgroup below the attached one, measured at 1, 1000 and 10000 rules, with their ratios" 12 \
	"$(jq '[(.hook_ns_per_call[], .hook_ratio_to_bare[]) | .connect4_real_peer, .connect4_below | select(. > 0)] | length' "$out/summary.json")"
check "the floors (bare + socket storage, bare + listener lookup) measured on connect4 with their ratios" 12 \
	"$(jq '[(.hook_ns_per_call[], .hook_ratio_to_bare[]) | .floor_state_connect4, .floor_listener_connect4 | select(. > 0)] | length' "$out/summary.json")"
check "the harness's resolution: a second direct client took the same turns, its ratio to direct measured" "yes" \
	"$(jq -r 'if .rate_twin.ratio > 0 and .rate_twin.rounds >= 2 and .rate_twin.rounds == .figures.rate.hostlo.samples then "yes" else "no: \(.rate_twin)" end' "$out/summary.json")"
check "an unpinned round: direct and hostlo measured" 2 "$(jq '[.rate_unpinned.direct, .rate_unpinned.hostlo | select(. > 0)] | length' "$out/summary.json")"
check "host side measured: peer4 on unrelated and redirected accepts, the rate with and without --real-peer, each as a ratio to direct" "2 2 2" \
	"$(jq '[.host_hook_ns_per_call.peer4_direct, .host_hook_ns_per_call.peer4_hostlo | select(. > 0)] | length' "$out/summary.json") $(jq '[.rate_peer[] | select(. > 0)] | length' "$out/summary.json") $(jq '[.rate_peer_ratio.local, .rate_peer_ratio.real | select(. > 0)] | length' "$out/summary.json")"
check "samples, table and chart written" "yes yes yes" \
	"$([ -s "$out/samples.csv" ] && echo yes) $([ -s "$out/table.md" ] && echo yes) $(file "$out/chart.png" | grep -q PNG && echo yes)"
check "make bench leaves no process behind (its socat proxies)" "" "$(pgrep -f 'socat TCP-LISTEN:[0-9]+,bind=127.0.0.1' | tr '\n' ' ')"
check "nor a cgroup, namespace or bpffs of its own" "" \
	"$(ls -d "$(cg2_mount)"/hostlo-bench* /run/hostlo-bench /run/netns/hostlo-bench* 2>/dev/null | tr '\n' ' ')"
# the watch figure: the agent covered every labelled container and not the control, on both clocks
check "watch: 5 of 5 covered; the control without labels not rewritten, its app on 127.0.0.1" "5 5 0 127.0.0.1" \
	"$(jq -r '.watch | "\(.containers) \(.covered) \(.control_rewritten) \(.control_listen)"' "$out/summary.json")"
check "watch: p50 and p99 above 0 on both clocks, over the 5 containers" "5 5 4" \
	"$(jq -r '.watch | "\(.agent_ms.n) \(.kernel_ms.n) \([.agent_ms.p50, .agent_ms.p99, .kernel_ms.p50, .kernel_ms.p99] | map(select(. > 0)) | length)"' "$out/summary.json")"
# what it started: the engine, containerd and its shims, the containers' apps, the agent, perf
wpids=$(jq -r '.watch.pids[]' "$out/summary.json")
check "watch: it recorded what it started (engine, shims, 6 apps, agent, perf: 10 or more)" yes \
	"$([ "$(wc -w <<<"$wpids")" -ge 10 ] && echo yes || echo "no: $wpids")"
check "watch: none of them is left running" "" "$(for p in $wpids; do kill -0 "$p" 2>/dev/null && echo -n "$p "; done)"
check "watch: no dockerd, agent or perf of its own left, nor its bridge, mounts or state" "" \
	"$(pgrep -af /run/hostlo-wbench/; ip -br link show hlw-br0 2>/dev/null; grep /run/hostlo-wbench /proc/self/mounts; ls -d /run/hostlo-wbench 2>/dev/null)"
check "watch: none of its containers' cgroups is left" "" \
	"$(for id in $(jq -r '.ids[]' "$out/watch.json"); do ls -d "$CG2/docker/$id" 2>/dev/null; done)"
echo "bench-smoke: $PASSED passed, $FAILED failed"
echo "$PASSED $FAILED" >"${RESULT_FILE:-/dev/null}"
