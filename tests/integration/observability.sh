#!/usr/bin/env bash
# observability.sh: stats --prometheus read by a real Prometheus text parser with exact counts after
# known traffic, stats --watch intervals, and the man page, bash completion and --help in agreement.
source "$(dirname "$0")/../lib.sh"
require
trap cleanup EXIT
trap 'exit 130' INT TERM
setup_host
NODE=$ROOT/tests/node
if [ ! -d "$NODE/node_modules/parse-prometheus-text-format" ]; then
	npm ci --prefix "$NODE" --no-audit --no-fund --loglevel=error >"$STATE/npm.log" 2>&1 || { cat "$STATE/npm.log"; exit 1; }
fi
HP=15432 UP=15353 REL=/hostlo-test
OUT=$STATE/out
mkdir -p "$OUT"
on_host "$PROBE" serve $HOST_IP $HP host 600 >"$OUT/tcp" 2>&1 &
on_host "$PROBE" udpserve $HOST_IP $UP udp 600 >"$OUT/udp" 2>&1 &
wait_ready "$OUT/tcp" && wait_ready "$OUT/udp" || exit 1
"$HOSTLO" attach --cgroup $REL --connect $HP --connect udp:$UP --bind 13000 >/dev/null

echo "# Prometheus: exact counts after known traffic, through a real parser"
incg "$CGT/app" "$PROBE" connect 127.0.0.1 $HP 3 >/dev/null
incg "$CGT/app2" "$PROBE" connect 127.0.0.1 $HP 5 >/dev/null
incg "$CGT/app2" "$PROBE" udp 127.0.0.1 $UP >/dev/null
"$HOSTLO" stats --prometheus >"$OUT/metrics"
node "$NODE/parse-metrics.mjs" <"$OUT/metrics" >"$OUT/parsed.json"
check "the parser accepts it: 8 counter families, each named hostlo_<counter>_total" \
	"8 COUNTER hostlo_bind_rewritten_total,hostlo_connect_kept_local_total,hostlo_connect_redirected_total,hostlo_host_peer_local_total,hostlo_host_steered_total,hostlo_peer_restored_total,hostlo_udp_redirected_total,hostlo_udp_reply_restored_total" \
	"$(jq -r '"\(length) \([.[].type] | unique | join(",")) \([.[].name] | sort | join(","))"' "$OUT/parsed.json")"
value() { jq -r --arg f "hostlo_$1_total" --arg c "$2" '.[] | select(.name == $f) | .metrics[] | select(.labels.cgroup == $c) | .value' "$OUT/parsed.json"; }
check "app: connect_redirected 3, peer_restored 3" "3 3" "$(value connect_redirected $REL/app) $(value peer_restored $REL/app)"
check "app2: connect_redirected 5, udp_redirected 1, udp_reply_restored 1" "5 1 1" \
	"$(value connect_redirected $REL/app2) $(value udp_redirected $REL/app2) $(value udp_reply_restored $REL/app2)"
check "labels: cgroup, container, name, attached_cgroup" "attached_cgroup,cgroup,container,name $REL" \
	"$(jq -r '.[0].metrics[0].labels | "\(keys | join(",")) \(.attached_cgroup)"' "$OUT/parsed.json")"
check "the same counts as stats -j" "$("$HOSTLO" stats -j | jq -c '[.[] | [.cgroup, .connect_redirected]]')" \
	"$(jq -c '[.[] | select(.name == "hostlo_connect_redirected_total") | .metrics[] | [.labels.cgroup, (.value | tonumber)]]' "$OUT/parsed.json")"
expect_error "--prometheus with -j: exit 2" 2 "^hostlo: stats: --prometheus goes alone" -- "$HOSTLO" stats --prometheus -j

echo "# stats --watch: what changed in each interval"
timeout 3.5 "$HOSTLO" stats --watch 2 -j >"$OUT/watch" &
watcher=$!
sleep 0.5
incg "$CGT/app" "$PROBE" connect 127.0.0.1 $HP 4 >/dev/null
wait $watcher
check "first line: totals since start; second: the 4 connects of the interval" "3 4" \
	"$(jq -r '.[] | select(.cgroup == "/hostlo-test/app") | .connect_redirected' "$OUT/watch" | paste -sd' ')"
expect_error "--watch 0: exit 2" 2 "^hostlo: --watch 0: not a number of seconds" -- "$HOSTLO" stats --watch 0

echo "# trace: each rewrite as it happens, and nothing made while nobody traces"
incg "$CGT/app" "$PROBE" connect 127.0.0.1 $HP >/dev/null   # before the trace: must never show up
"$HOSTLO" trace -j >"$OUT/trace" 2>"$OUT/trace.err" &
tracer=$!
for _ in $(seq 50); do grep -q tracing "$OUT/trace.err" && break; sleep 0.1; done
incg "$CGT/app" "$PROBE" connect 127.0.0.1 $HP 2 >/dev/null
incg "$CGT/app2" "$PROBE" connect ::1 $HP >/dev/null
incg "$CGT/app2" "$PROBE" udp 127.0.0.1 $UP >/dev/null
incg "$CGO" "$PROBE" connect 127.0.0.1 $HP >/dev/null       # outside the attachment: no event
incg "$CGT/app" "$PROBE" bind 127.0.0.1 13000 1 >/dev/null
incg "$CGO" "$PROBE" serve 127.0.0.1 $HP local 2 >"$OUT/local" 2>&1 &
local_server=$!
wait_ready "$OUT/local"
incg "$CGT/app" "$PROBE" connect 127.0.0.1 $HP >/dev/null   # a local listener: kept local
sleep 0.3
kill -INT $tracer
wait $tracer
check "trace -j: exactly the rewrites made, in order, with cgroup, command and addresses" \
"redirect tcp /hostlo-test/app sockprobe 127.0.0.1:$HP $HOST_IP:$HP
redirect tcp /hostlo-test/app sockprobe 127.0.0.1:$HP $HOST_IP:$HP
redirect tcp /hostlo-test/app2 sockprobe [::1]:$HP [::ffff:$HOST_IP]:$HP
redirect udp /hostlo-test/app2 sockprobe 127.0.0.1:$UP $HOST_IP:$UP
bind tcp /hostlo-test/app sockprobe 127.0.0.1:13000 0.0.0.0:13000
kept_local tcp /hostlo-test/app sockprobe 127.0.0.1:$HP kept local" \
	"$(jq -r '"\(.event) \(.proto) \(.cgroup) \(.comm) \(.from) \(.to)"' "$OUT/trace")"
check "every event has a pid and a time" 6 "$(jq -r 'select(.pid > 1 and .time_ns > 0) | .pid' "$OUT/trace" | wc -l)"
expect "Ctrl-C ends it cleanly and says how many were dropped" 0 "hostlo: trace: 6 events, 0 dropped" -- cat "$OUT/trace.err"
check "after it, the programs make events no more (the tracer count is back to 0)" 0 \
	"$(bpftool -j map dump pinned "$HOSTLO_BPFFS/hostlo/config" | jq '.[0].formatted.value.tracers')"
wait $local_server

echo "# serve: /metrics over HTTP on loopback, /healthz, then SIGTERM"
"$HOSTLO" serve --listen 127.0.0.1:19477 2>"$OUT/serve.err" &
server=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:19477/healthz >/dev/null && break; sleep 0.1; done
expect "/healthz answers ok" 0 "^ok$" -- curl -sf http://127.0.0.1:19477/healthz
curl -sf http://127.0.0.1:19477/metrics | node "$NODE/parse-metrics.mjs" >"$OUT/scraped.json"
check "/metrics, through the parser: the exact counts stats -j has" "$("$HOSTLO" stats -j | jq -c '[.[] | [.cgroup, .connect_redirected]]')" \
	"$(jq -c '[.[] | select(.name == "hostlo_connect_redirected_total") | .metrics[] | [.labels.cgroup, (.value | tonumber)]]' "$OUT/scraped.json")"
check "Content-Type of the text format" "text/plain; version=0.0.4" \
	"$(curl -sf -o /dev/null -w '%{content_type}' http://127.0.0.1:19477/metrics)"
check "other paths: 404; other methods: 405" "404 405" \
	"$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:19477/x) $(curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:19477/metrics)"
expect_error "a second serve on the same port: exit 1, says why" 1 "^hostlo: serve 127.0.0.1:19477: cannot listen: Address already in use$" -- \
	"$HOSTLO" serve --listen 127.0.0.1:19477
kill -TERM $server
wait $server
check "SIGTERM stops it cleanly (exit 0)" "0 hostlo: serve: stopped (SIGTERM)" "$? $(tail -1 "$OUT/serve.err")"
expect_error "--listen without a port: exit 2" 2 "^hostlo: --listen 127.0.0.1: not an IPv4 ADDR:PORT$" -- "$HOSTLO" serve --listen 127.0.0.1

echo "# man page, bash completion, --help and make install agree"
options() { grep -oE -- '--[a-z][a-z-]+' | sort -u | paste -sd' '; }
help_opts=$("$HOSTLO" --help | options)
man_opts=$(sed 's/\\-/-/g' "$ROOT/docs/hostlo.8" | options)
comp_opts=$(options <"$ROOT/docs/hostlo.bash")
check "the man page lists every option --help lists, and no other" "$help_opts" "$man_opts"
check "the completion offers every option --help lists, and no other" "$help_opts" "$comp_opts"
help_cmds=$("$HOSTLO" --help | awk '$1 == "hostlo" { print $2 }' | sort -u | paste -sd' ')
man_cmds=$(awk '/^\.SH COMMANDS/ { on = 1; next } /^\.SH/ { on = 0 } on && prev == ".TP" { print $2 } { prev = $1 }' "$ROOT/docs/hostlo.8" | sort -u | paste -sd' ')
comp_cmds=$(sed -n 's/^	local commands="\(.*\)"$/\1/p' "$ROOT/docs/hostlo.bash" | tr ' ' '\n' | sort -u | paste -sd' ')
check "the man page documents every command" "$help_cmds" "$man_cmds"
check "the completion offers every command" "$help_cmds" "$comp_cmds"
expect "man renders the page" 0 "hostlo - container loopback" -- bash -c "MANWIDTH=200 man -l '$ROOT/docs/hostlo.8' 2>/dev/null | col -b"
make -s -C "$ROOT" install DESTDIR="$STATE/inst" PREFIX=/usr >/dev/null
check "make install puts the CLI, the man page, the completion and the agent's unit under DESTDIR/PREFIX" \
	"lib/systemd/system/hostlo-watch.service sbin/hostlo share/bash-completion/completions/hostlo share/man/man8/hostlo.8" \
	"$(cd "$STATE/inst/usr" && find . -type f | sed 's|^\./||' | sort | paste -sd' ')"

echo "observability: $PASSED passed, $FAILED failed"
echo "$PASSED $FAILED" >"${RESULT_FILE:-/dev/null}"
