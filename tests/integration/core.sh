#!/usr/bin/env bash
# core.sh: hostlo's core promise against the real kernel, driven only through the CLI, asserted from
# the application's side (sockprobe's getpeername/getsockname and the bytes a real server sent).
source "$(dirname "$0")/../lib.sh"
require unshare taskset
trap cleanup EXIT
trap 'exit 130' INT TERM
setup_host

HP=15432 HP2=15433 LP=17000 BP=13000 RANGE_LO=16000
HOOKS=9   # connect4/6, bind4/6, getpeername4/6, sendmsg4, recvmsg4/6
# the rule's host-side note; below Linux 5.17 there is no host side and the note says so (README, Requirements)
if host_side_kernel; then PLAN_NOTE='host loopback too' NOTE='host loopback: no listener' SEES=' \(host service sees 127\.0\.0\.1\)'
else PLAN_NOTE="host loopback: needs Linux 5\.17, this is $(uname -r | cut -d. -f1-2)" NOTE=$PLAN_NOTE SEES=''; fi
OUT=$STATE/out
mkdir -p "$OUT"

# Servers: two on the host, one on the container's loopback, one on the container's own address.
on_host "$PROBE" serve $HOST_IP $HP host 600 >"$OUT/host" 2>&1 &
on_host "$PROBE" serve $HOST_IP $HP2 host2 600 >"$OUT/host2" 2>&1 &
on_host "$PROBE" serve $HOST_IP $((RANGE_LO + 1)) range1 600 >"$OUT/range" 2>&1 &
incg "$CGO" "$PROBE" serve 127.0.0.1 $LP local 600 >"$OUT/local" 2>&1 &
incg "$CGO" "$PROBE" serve $CONT_IP $HP nsaddr 600 >"$OUT/nsaddr" 2>&1 &
for f in host host2 range local nsaddr; do wait_ready "$OUT/$f" || exit 1; done

APP=$CGT/app
REL=/hostlo-test

# bind_probe CG ADDR PORT: an app in CG binds ADDR:PORT; prints its local address, then what a client
# on the host side got when connecting to the container's address on PORT. A listener that did not come
# up fails it (wait_ready's message is in the output). The listener lives 30 s (a slow guest must not
# outlast it before the host connects) and is stopped after that connect: the port is free for the next case.
bind_probe() {
	local f=$OUT/bind.$RANDOM job
	incg "$1" "$PROBE" bind "$2" "$3" 30 >"$f" 2>&1 &
	job=$!
	wait_ready "$f" || { stop_listener $job; return 1; }
	grep '^local=' "$f"
	on_host "$PROBE" connect $CONT_IP "$3" 2>&1 | sed 's/^/host:/'
	stop_listener $job   # it stops by itself after one client; not when no client reached it
}

echo "# without hostlo: both everyday failures reproduce"
expect "no rules: app's 127.0.0.1:$HP is its own loopback (refused)" 1 '^error=ECONNREFUSED$' -- incg "$APP" "$PROBE" connect 127.0.0.1 $HP
expect "no rules: bind 127.0.0.1:$BP is unreachable from the host" 0 'host:error=ECONNREFUSED' -- bind_probe "$APP" 127.0.0.1 $BP

echo "# attach"
expect "dry-run resolves the gateway and prints the plan" 0 "would attach $REL \(cgroup id [0-9]+\): --connect tcp:$HP=$HOST_IP \($PLAN_NOTE\) --bind $BP=0.0.0.0" -- "$HOSTLO" attach --cgroup $REL --connect $HP --bind $BP --dry-run
check "dry-run attaches nothing" "0 0" "$(hook_count "$CGT") $(hostlo_pins)"
expect "dry-run -j prints the plan as JSON" 0 '"dry_run": true' -- "$HOSTLO" attach --cgroup $REL --connect $HP --bind $BP --dry-run -j
expect "attach to the parent of the app's cgroup" 0 "^attached $REL \(cgroup id [0-9]+\): --connect tcp:$HP=$HOST_IP \($NOTE\) --bind $BP=0.0.0.0$" -- "$HOSTLO" attach --cgroup $REL --connect $HP --bind $BP
check "one program per hook on the cgroup" $HOOKS "$(hook_count "$CGT")"
check "pins: shared objects and one link per hook, root-only" "700 $HOOKS" "$(stat -c %a "$HOSTLO_BPFFS/hostlo") $(ls "$HOSTLO_BPFFS/hostlo/links" | grep -vc '^host-')"
check "hostlo itself is not running (programs outlive the loader)" "" "$(pgrep -x hostlo)"

echo "# connect redirect, from the app's side"
expect "127.0.0.1:$HP reaches the host server; getpeername shows what the app asked for" 0 "^peer=127.0.0.1:$HP got=host$" -- incg "$APP" "$PROBE" connect 127.0.0.1 $HP
expect "[::1]:$HP reaches the host server (v4-mapped); the peer shows as [::1]" 0 "^peer=\[::1\]:$HP got=host$" -- incg "$APP" "$PROBE" connect ::1 $HP
expect "[::ffff:127.0.0.1]:$HP reaches the host server" 0 "^peer=\[::ffff:127.0.0.1\]:$HP got=host$" -- incg "$APP" "$PROBE" connect ::ffff:127.0.0.1 $HP
expect "another port on loopback stays local" 0 "^peer=127.0.0.1:$LP got=local$" -- incg "$APP" "$PROBE" connect 127.0.0.1 $LP
expect "a non-loopback address on the rule's port is untouched" 0 "^peer=$CONT_IP:$HP got=nsaddr$" -- incg "$APP" "$PROBE" connect $CONT_IP $HP
expect "127.0.0.2 (not 127.0.0.1) is untouched" 1 '^error=ECONNREFUSED$' -- incg "$APP" "$PROBE" connect 127.0.0.2 $HP
expect "a process outside the attached cgroup is untouched" 1 '^error=ECONNREFUSED$' -- incg "$CGO" "$PROBE" connect 127.0.0.1 $HP

echo "# bind rewrite"
expect "bind 127.0.0.1:$BP becomes 0.0.0.0 and the host reaches it" 0 "^local=0.0.0.0:$BP
host:peer=$CONT_IP:$BP got=bound$" -- bind_probe "$APP" 127.0.0.1 $BP
expect "bind [::1]:$BP becomes [::] and the host reaches it" 0 "^local=\[::\]:$BP
host:peer=$CONT_IP:$BP got=bound$" -- bind_probe "$APP" ::1 $BP
expect "bind 127.0.0.1 on another port is untouched" 0 "^local=127.0.0.1:$((BP + 1))
host:error=ECONNREFUSED$" -- bind_probe "$APP" 127.0.0.1 $((BP + 1))
expect "bind outside the attached cgroup is untouched" 0 "^local=127.0.0.1:$BP
host:error=ECONNREFUSED$" -- bind_probe "$CGO" 127.0.0.1 $BP

echo "# counters: exact, per calling cgroup"
incg "$APP" "$PROBE" connect 127.0.0.1 $HP 7 >/dev/null
incg "$CGT/app2" "$PROBE" connect 127.0.0.1 $HP 5 >/dev/null
check "app: connect_redirected = 3 + 7 calls" 10 "$(counter $REL/app connect_redirected)"
check "app: bind_rewritten = 2 calls" 2 "$(counter $REL/app bind_rewritten)"
check "app2: its own row, 5 calls" "5 0" "$(counter $REL/app2 connect_redirected) $(counter $REL/app2 bind_rewritten)"
check "stats -j: one row per calling cgroup, with ids and the attached cgroup" \
	"/hostlo-test/app $(stat -c %i "$APP") $REL $(stat -c %i "$CGT")" \
	"$("$HOSTLO" stats -j | jq -r '.[] | select(.cgroup == "/hostlo-test/app") | "\(.cgroup) \(.cgroup_id) \(.attached_cgroup) \(.attached_cgroup_id)"')"
expect "stats (text) shows both rows" 0 "/hostlo-test/app +- +- +$REL +10 +2 +0 +0 +0 +10 +0 +0
/hostlo-test/app2 +- +- +$REL +5 +0 +0 +0 +0 +5 +0 +0" -- "$HOSTLO" stats
check "stats TARGET filters to that cgroup" "/hostlo-test/app2" "$("$HOSTLO" stats --cgroup $REL/app2 -j | jq -r '.[].cgroup')"
expect "list shows the attachment and its rules" 0 "$REL +[0-9]+ +- +- +cli +--connect tcp:$HP=$HOST_IP \($NOTE\)$SEES --bind $BP=0.0.0.0" -- "$HOSTLO" list
check "list -j" "$REL $(stat -c %i "$CGT") --connect tcp:$HP=$HOST_IP,--bind $BP=0.0.0.0" \
	"$("$HOSTLO" list -j | jq -r '.[] | "\(.cgroup) \(.cgroup_id) \([.rules[].rule] | join(","))"')"

echo "# attach again: the rule set is replaced, never stacked"
expect "re-attach with other rules" 0 "attached $REL" -- "$HOSTLO" attach --cgroup $REL --connect $HP=$HOST_IP:$HP2 --connect $RANGE_LO-$((RANGE_LO + 2))=$HOST_IP
check "still one program per hook" $HOOKS "$(hook_count "$CGT")"
expect "the new target port applies" 0 "^peer=127.0.0.1:$HP got=host2$" -- incg "$APP" "$PROBE" connect 127.0.0.1 $HP
expect "a port range applies port by port" 0 "^peer=127.0.0.1:$((RANGE_LO + 1)) got=range1$" -- incg "$APP" "$PROBE" connect 127.0.0.1 $((RANGE_LO + 1))
expect "the old --bind rule is gone" 0 "^local=127.0.0.1:$BP
host:error=ECONNREFUSED$" -- bind_probe "$APP" 127.0.0.1 $BP
check "counters survive a re-attach (10, +2 since)" 12 "$(counter $REL/app connect_redirected)"
expect "attach with the same rules again is accepted" 0 "attached $REL" -- "$HOSTLO" attach --cgroup $REL --connect $HP=$HOST_IP:$HP2 --connect $RANGE_LO-$((RANGE_LO + 2))=$HOST_IP
check "and changes nothing" "$HOOKS --connect tcp:$HP=$HOST_IP:$HP2,--connect tcp:$RANGE_LO-$((RANGE_LO + 2))=$HOST_IP" \
	"$(hook_count "$CGT") $("$HOSTLO" list -j | jq -r '[.[0].rules[].rule] | join(",")')"

echo "# nested attachments: the nearest attached cgroup's rules win"
expect "attach --pid (the app's own cgroup)" 0 "attached $REL/app " -- "$HOSTLO" attach --pid "$(head -1 "$APP/cgroup.procs")" --connect $HP=$HOST_IP
expect "app uses its own rules" 0 "^peer=127.0.0.1:$HP got=host$" -- incg "$APP" "$PROBE" connect 127.0.0.1 $HP
expect "app2 still uses the parent's" 0 "^peer=127.0.0.1:$HP got=host2$" -- incg "$CGT/app2" "$PROBE" connect 127.0.0.1 $HP
expect "app has no range rule of its own: not redirected" 1 '^error=ECONNREFUSED$' -- incg "$APP" "$PROBE" connect 127.0.0.1 $((RANGE_LO + 1))
check "list shows both" "$REL $REL/app" "$("$HOSTLO" list -j | jq -r '[.[].cgroup] | sort | join(" ")')"

echo "# the row of an attached cgroup's own processes: kept in the cgroup's storage, fresh for each attachment"
# own_row REL: connect_redirected of REL's processes under REL's own attachment (stats -j)
own_row() { "$HOSTLO" stats -j | jq --arg cg "$1" '[.[] | select(.cgroup == $cg and .attached_cgroup == $cg) | .connect_redirected] | add // 0'; }
incg "$APP" "$PROBE" connect 127.0.0.1 $HP 6 >/dev/null
check "app's own row: 1 + 6 connects, all of them in its storage" "7 7" "$(own_row $REL/app) $(storage_count $REL/app)"
check "app2 (below the attached cgroup, not attached itself): 5 + 1, none in a storage of its own (its row is its parent's)" "6 0" \
	"$(counter $REL/app2 connect_redirected) $(storage_count $REL/app2)"
"$HOSTLO" detach --cgroup $REL/app >/dev/null
check "detached: the row is gone (the kernel keeps the storage until the cgroup goes)" 0 "$(own_row $REL/app)"
"$HOSTLO" attach --cgroup $REL/app --connect $HP=$HOST_IP >/dev/null
incg "$APP" "$PROBE" connect 127.0.0.1 $HP 2 >/dev/null
check "attached again: the row starts from 0 (2 connects since), not from the old 7" "2 2" "$(own_row $REL/app) $(storage_count $REL/app)"

echo "# rows of the cgroups below an attached one (a pod's containers): the first 4 a CPU meets in its storage"
POD=$REL/pod
for i in 1 2 3 4 5; do mkdir -p "$CG2$POD/c$i"; done
expect "attach a pod-like cgroup as a whole" 0 "attached $POD " -- "$HOSTLO" attach --cgroup $POD --connect $HP=$HOST_IP
# all from CPU 0: c1 to c4 take its 4 rows, c5 finds them taken and counts in the hash
for i in 1 2 3 4 5; do incg "$CG2$POD/c$i" taskset -c 0 "$PROBE" connect 127.0.0.1 $HP $i >/dev/null; done
check "stats: each container's own count (1 to 5)" "1 2 3 4 5" \
	"$(for i in 1 2 3 4 5; do counter $POD/c$i connect_redirected; done | xargs)"
want="1 2 3 4 0"
percpu_kernel || want="0 0 0 0 0"   # no compare-and-swap for the claim: the hash alone
check "the first four in the pod's storage, the fifth not (where the kernel has compare-and-swap)" "$want" \
	"$(for i in 1 2 3 4 5; do below_count $POD $POD/c$i; done | xargs)"
kill_cgroup "$CG2$POD/c1"
check "a container gone: its row goes, the others stay" "2 3 4 5" \
	"$("$HOSTLO" stats -j | jq -r --arg p "$POD/" '[.[] | select(.cgroup | startswith($p))] | sort_by(.cgroup) | [.[].connect_redirected] | join(" ")')"
"$HOSTLO" detach --cgroup $POD >/dev/null
"$HOSTLO" attach --cgroup $POD --connect $HP=$HOST_IP >/dev/null
incg "$CG2$POD/c2" taskset -c 0 "$PROBE" connect 127.0.0.1 $HP >/dev/null
want="1 1"
percpu_kernel || want="1 0"
check "attached again: its rows below start from 0 too (c2: 1 connect since, not 3)" "$want" \
	"$(counter $POD/c2 connect_redirected) $(below_count $POD $POD/c2)"
"$HOSTLO" detach --cgroup $POD >/dev/null
kill_cgroup "$CG2$POD"

echo "# detach"
expect "detach the child" 0 "^detached $REL/app$" -- "$HOSTLO" detach --cgroup $REL/app
expect "app falls back to the parent's rules" 0 "^peer=127.0.0.1:$HP got=host2$" -- incg "$APP" "$PROBE" connect 127.0.0.1 $HP
expect_error "detach again: not attached, exit 1" 1 "^hostlo: detach $REL/app: not attached$" -- "$HOSTLO" detach --cgroup $REL/app
expect "detach the parent" 0 "^detached $REL$" -- "$HOSTLO" detach --cgroup $CG2$REL
expect "after detach: plain behaviour" 1 '^error=ECONNREFUSED$' -- incg "$APP" "$PROBE" connect 127.0.0.1 $HP
check "after the last detach: no program on the cgroup, nothing in bpffs" "0 0" "$(hook_count "$CGT") $(hostlo_pins)"
check "no stats row is left" "[]" "$("$HOSTLO" stats -j | jq -c .)"

echo "# detach --all"
"$HOSTLO" attach --cgroup $REL --connect $HP >/dev/null
"$HOSTLO" attach --cgroup $REL/app2 --bind $BP >/dev/null
expect "detach --all" 0 "^detached everything$" -- "$HOSTLO" detach --all
check "nothing attached anywhere, nothing pinned" "0 0 0" "$(hook_count "$CGT") $(hook_count "$CGT/app2") $(hostlo_pins)"
expect "plain behaviour" 1 '^error=ECONNREFUSED$' -- incg "$APP" "$PROBE" connect 127.0.0.1 $HP
expect "detach --all when nothing is attached is fine" 0 "^detached everything$" -- "$HOSTLO" detach --all

echo "# a cgroup that goes away takes its attachment with it"
mkdir -p "$CGT/gone"
"$HOSTLO" attach --cgroup $REL/gone --connect $HP=$HOST_IP >/dev/null
"$HOSTLO" attach --cgroup $REL --connect $HP >/dev/null
rmdir "$CGT/gone"
check "list no longer shows it" "$REL" "$("$HOSTLO" list -j | jq -r '[.[].cgroup] | join(" ")')"
check "its link pins are removed" "$HOOKS" "$(ls "$HOSTLO_BPFFS/hostlo/links" | grep -vc '^host-')"
"$HOSTLO" detach --all >/dev/null

echo "# a partial cgroup2 view (a pod's own cgroup namespace): what it cannot see is kept, not gc'd"
POD=$CG2/$HL_NAME-pod   # testhost_down removes it ($HL_NAME-*)
mkdir -p "$POD/app" "$CGT/gone"
# podview CMD...: CMD in $POD, in a cgroup namespace of its own and a mount namespace where the
# cgroup2 tree is one mounted there (its root: $POD), as in a DaemonSet pod; the test bpffs stays
podview() {
	bash -c 'echo $$ > "$1/cgroup.procs" && shift && exec unshare -m --cgroup --propagation private bash -c "umount -l \"\$0\" && mount -t cgroup2 none \"\$0\" && exec \"\$@\"" "$@"' \
		_ "$POD" "$CG2" "$@"
}
"$HOSTLO" attach --cgroup $REL --connect $HP >/dev/null
"$HOSTLO" attach --cgroup $REL/gone --connect $HP=$HOST_IP >/dev/null
"$HOSTLO" attach --cgroup /$HL_NAME-pod/app --connect $HP=$HOST_IP >/dev/null
ROOT_HOOKS=$(hook_count "$CG2")
check "the pod's view: its own cgroup namespace, the mount's root is the pod's cgroup (not id 1)" "0::/ $(stat -c %i "$POD")" \
	"$(podview sh -c "tail -1 /proc/self/cgroup | tr '\n' ' '; stat -c %i '$CG2'")"
check "list from it: the two outside reported as not visible, kept; its own by its path" "(not visible) (not visible) /app" \
	"$(podview "$HOSTLO" list -j | jq -r '[.[].cgroup] | sort | join(" ")')"
expect_error "attach from it: refused, one line (levels there are not the kernel's), nothing attached" 1 \
	"^hostlo: cgroup2 $CG2: only a cgroup namespace's own subtree is mounted here, .* to attach$" -- podview "$HOSTLO" attach --cgroup /app --connect $((HP + 1))
expect_error "watch from it: refused the same way" 1 "^hostlo: cgroup2 $CG2: only a cgroup namespace's own subtree" -- \
	podview timeout 5 "$HOSTLO" watch --config /dev/null
check "... nothing changed: the same three attachments, none with that port" "3 0" \
	"$("$HOSTLO" list -j | jq -r "length, ([.[] | select(.rules | tostring | test(\"$((HP + 1))\"))] | length)" | tr '\n' ' ' | sed 's/ $//')"
rmdir "$POD/app"
expect "gc from it: a cgroup of its own view that is really gone is removed" 0 "^gc: removed 1 attachment of cgroups that no longer exist$" -- \
	podview "$HOSTLO" gc
expect "gc from it without CAP_DAC_READ_SEARCH (a walk of its subtree only): nothing removed" 0 "^gc: removed 0 attachments " -- \
	podview setpriv --inh-caps=-dac_read_search --bounding-set=-dac_read_search "$HOSTLO" gc
check "... and its list still reports both as not visible" "(not visible) (not visible)" \
	"$(podview setpriv --inh-caps=-dac_read_search --bounding-set=-dac_read_search "$HOSTLO" list -j | jq -r '[.[].cgroup] | sort | join(" ")')"
check "the full view: both still attached, every link pinned" "$REL $REL/gone $((2 * HOOKS))" \
	"$("$HOSTLO" list -j | jq -r '[.[].cgroup] | sort | join(" ")') $(ls "$HOSTLO_BPFFS/hostlo/links" | grep -vc '^host-')"
expect "and they keep working: 127.0.0.1:$HP reaches the host server" 0 "^peer=127.0.0.1:$HP got=host$" -- incg "$APP" "$PROBE" connect 127.0.0.1 $HP
check "the host side stayed on the cgroup2 root, nothing went to the pod's cgroup" "$ROOT_HOOKS 0" "$(hook_count "$CG2") $(hook_count "$POD")"
rmdir "$CGT/gone"
expect "from the full view, a cgroup that is really gone is still gc'd" 0 "^gc: removed 1 attachment of cgroups that no longer exist$" -- "$HOSTLO" gc
check "list: only what exists" "$REL" "$("$HOSTLO" list -j | jq -r '[.[].cgroup] | join(" ")')"
"$HOSTLO" detach --all >/dev/null
kill_cgroup "$POD"

echo "# bpffs not mounted yet: attach mounts it"
export HOSTLO_BPFFS=$STATE/unmounted
expect "attach mounts bpffs where it is missing" 0 "attached $REL" -- "$HOSTLO" attach --cgroup $REL --connect $HP
check "it is a bpffs now" "bpf_fs" "$(stat -f -c %T "$HOSTLO_BPFFS")"
expect "and the rule works" 0 "^peer=127.0.0.1:$HP got=host$" -- incg "$APP" "$PROBE" connect 127.0.0.1 $HP
"$HOSTLO" detach --all >/dev/null
export HOSTLO_BPFFS=$STATE/bpffs

echo "# errors: one line, exit 2 for a malformed command line, 1 for what cannot be done; nothing left"
NOBODY=$STATE/nobody
mkdir -p "$NOBODY" && cp "$HOSTLO" "$NOBODY/hostlo" && chmod 755 "$STATE" "$NOBODY" "$NOBODY/hostlo"
while IFS='|' read -r rc re args; do
	[ -z "$rc" ] && continue
	# shellcheck disable=SC2086
	expect_error "exit $rc: hostlo $args" "$rc" "^hostlo: $re" -- "$HOSTLO" $args
done <<EOF
2|missing COMMAND|
2|frobnicate: unknown command|frobnicate
2|--bogus: unknown option|attach --bogus
2|attach: missing TARGET|attach --connect $HP
2|attach: missing RULE|attach --cgroup $REL
2|attach: give one TARGET|attach --cgroup $REL --pid 1 --connect $HP
2|--connect 0: port '0' is out of range|attach --cgroup $REL --connect 0
2|--connect 65536: port '65536' is out of range|attach --cgroup $REL --connect 65536
2|--connect http: 'http' is not a port number|attach --cgroup $REL --connect http
2|--connect 90-80: range '90-80' is reversed|attach --cgroup $REL --connect 90-80
2|--connect sctp:53: unknown protocol 'sctp'|attach --cgroup $REL --connect sctp:53
2|--always: applies to the --connect rule before it|attach --cgroup $REL --always --connect 53
2|--always: applies to the --connect rule before it|attach --cgroup $REL --bind 53 --always
2|--real-peer: applies to the tcp --connect rule before it|attach --cgroup $REL --connect udp:53 --real-peer
2|--real-peer: applies to the tcp --connect rule before it|attach --cgroup $REL --real-peer --connect 53
2|--connect 80=::1: '::1' is IPv6|attach --cgroup $REL --connect 80=::1
2|--connect 80=127.0.0.1: '127.0.0.1' is a loopback address|attach --cgroup $REL --connect 80=127.0.0.1
2|--connect 80=300.1.1.1: '300.1.1.1' is not an IPv4 address|attach --cgroup $REL --connect 80=300.1.1.1
2|--bind 3000=224.0.0.1: '224.0.0.1' is a multicast|attach --cgroup $REL --bind 3000=224.0.0.1
2|--connect tcp:90: overlaps --connect tcp:80-100|attach --cgroup $REL --connect 80-100 --connect 90
2|attach: unexpected argument 'extra'|attach --cgroup $REL --connect 80 extra
2|list: --cgroup is not an option of list|list --cgroup $REL
2|detach: give either TARGET|detach
2|detach: give either TARGET|detach --all --cgroup $REL
1|cgroup /no/such/cgroup: no such cgroup|attach --cgroup /no/such/cgroup --connect $HP
1|cgroup /proc: not a cgroup v2 directory|attach --cgroup /proc --connect $HP
1|cgroup $REL/app/cgroup.procs: not a directory|attach --cgroup $REL/app/cgroup.procs --connect $HP
1|pid 999999: no such process|attach --pid 999999 --connect $HP
2|--pid x: not a process id|attach --pid x --connect $HP
1|attach: refusing the cgroup2 root|attach --cgroup / --connect $HP
1|--connect tcp:$HP: cgroup $REL/app2 has no process to read the gateway from|attach --cgroup $REL/app2 --connect $HP
1|detach $REL: not attached|detach --cgroup $REL
EOF
expect_error "exit 1: not privileged (as nobody)" 1 "^hostlo: attach: permission denied: missing CAP_BPF" -- \
	setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$NOBODY/hostlo" attach --cgroup $REL --connect $HP=$HOST_IP
expect_error "exit 1: setuid refused" 1 "^hostlo: refusing to run setuid" -- \
	bash -c "chmod u+s '$NOBODY/hostlo' && setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all '$NOBODY/hostlo' list"
check "after every failure: nothing attached, nothing pinned" "0 0" "$(hook_count "$CGT") $(hostlo_pins)"

echo "# attach --create: a parent cgroup prepared before any container starts in it"
MADE=/$HL_NAME-made/pod
expect_error "--create needs --cgroup" 2 "^hostlo: attach: --create makes a --cgroup PATH, and needs one" -- \
	"$HOSTLO" attach --pid 1 --create --connect $HP=$HOST_IP
expect_error "--create under --dry-run creates nothing" 1 "^hostlo: cgroup $MADE: no such cgroup .*attach --create makes it" -- \
	"$HOSTLO" attach --cgroup $MADE --create --dry-run --connect $HP=$HOST_IP
check "... and no directory appeared" "absent" "$([ -e "$CG2/$HL_NAME-made" ] && echo present || echo absent)"
expect "attach --create makes the cgroup (and its parent), then attaches" 0 "^attached $MADE \(cgroup id [0-9]+\)" -- \
	"$HOSTLO" attach --cgroup $MADE --create --connect $HP=$HOST_IP
check "one program per hook on the cgroup it made" 9 "$(hook_count "$CG2$MADE")"
expect "a process that starts in it later is redirected" 0 "^peer=127.0.0.1:$HP got=host$" -- \
	incg "$CG2$MADE" "$PROBE" connect 127.0.0.1 $HP
expect "attach --create of a cgroup that exists keeps it (same id)" 0 "^attached $MADE \(cgroup id $(stat -c %i "$CG2$MADE")\)" -- \
	"$HOSTLO" attach --cgroup $MADE --create --connect $HP=$HOST_IP
expect "detach" 0 "^detached $MADE" -- "$HOSTLO" detach --cgroup $MADE
expect "help lists every command" 0 "hostlo attach .*
.*hostlo detach .*
.*hostlo list .*
.*hostlo stats .*
.*hostlo version" -- "$HOSTLO" --help
expect "COMMAND --help" 0 "^Usage: hostlo" -- "$HOSTLO" attach --help
check "README shows exactly hostlo --help" "$("$HOSTLO" --help)" \
	"$(sed -n '/^<!-- hostlo --help/,/^## /p' "$ROOT/README.md" | sed '1,2d' | sed '/^```$/,$d')"
expect "version" 0 "^hostlo .* \(BPF ABI [0-9]+, libbpf v?1\.[0-9]+\)$" -- "$HOSTLO" version

echo "# one command's help; errors as JSON under -j"
expect "attach --help: attach's synopsis, options and examples" 0 \
	"^Usage: hostlo attach TARGET RULE\.\.\. \[--create\] \[--dry-run\] \[-j\]
.*--connect .*--dry-run .*
EXAMPLES
  hostlo attach " -- "$HOSTLO" attach --help
check "attach --help: no other command's options or synopsis" "0" \
	"$("$HOSTLO" attach --help | grep -cE -- '--prometheus|--every|--listen|--all|hostlo (detach|stats|list)')"
check "list --help: list's synopsis and its three options only" "Usage: hostlo list [-j] -j --cgroup-root -v" \
	"$("$HOSTLO" list --help | awk 'NR == 1 { printf "%s", $0 } NR > 1 && /^(OPTIONS)? *-/ { printf " %s", $1 == "OPTIONS" ? $2 : $1 }' | tr -d ,)"
expect_error "-j: a failure is one JSON line on stderr" 1 '^\{"error":"detach /hostlo-test: not attached"\}$' -- \
	"$HOSTLO" detach --cgroup $REL -j
check "-j: and nothing on stdout" "" "$("$HOSTLO" detach --cgroup $REL -j 2>/dev/null)"
expect_error "-j: a command-line mistake stays text" 2 "^hostlo: --pid x: not a process id" -- "$HOSTLO" stats --pid x -j

echo "# a rule change is seen at once on the CPU that found the old rule (the programs' per-CPU memo)"
"$HOSTLO" detach --all >/dev/null
RP=$((RANGE_LO + 1))   # range1 listens there on the host; no rule names it yet
on_cpu0() { incg "$1" taskset -c 0 "$PROBE" connect 127.0.0.1 "$2"; }
mkdir -p "$APP/inner"
"$HOSTLO" attach --cgroup $REL/app --connect $HP=$HOST_IP >/dev/null
on_cpu0 "$APP" $HP >/dev/null   # CPU 0 remembers this rule,
on_cpu0 "$APP" $RP >/dev/null   # and that port $RP has none
"$HOSTLO" attach --cgroup $REL/app --connect $HP=$HOST_IP:$HP2 --connect $RP=$HOST_IP >/dev/null
expect "a changed rule: the next connect on that CPU goes to the new target" 0 "^peer=127.0.0.1:$HP got=host2$" -- \
	on_cpu0 "$APP" $HP
expect "a port that had no rule: the new rule applies at once" 0 "^peer=127.0.0.1:$RP got=range1$" -- on_cpu0 "$APP" $RP
"$HOSTLO" attach --cgroup $REL/app/inner --connect $HP=$HOST_IP >/dev/null
expect "a nested attachment: its rule, not the parent's" 0 "got=host$" -- on_cpu0 "$APP/inner" $HP
"$HOSTLO" detach --cgroup $REL/app/inner >/dev/null
expect "detached again: the parent's rule at once" 0 "got=host2$" -- on_cpu0 "$APP/inner" $HP
"$HOSTLO" detach --all >/dev/null
rmdir "$APP/inner"

echo "# text tables stay aligned with a long cgroup path"
LONG=$REL/$(printf 'a-rather-long-cgroup-name-%.0s' 1 2 3)
mkdir -p "$CG2$LONG"
"$HOSTLO" attach --cgroup "$LONG" --connect $HP=$HOST_IP >/dev/null
# the first 40 characters of the header and of the row, then 3 more of the header: the path cut to
# its 40 columns with "…", so the ID column starts where its title does
cut_columns() {
	local LC_ALL=C.UTF-8 hdr row
	{ read -r hdr; read -r row; } < <(script -qec "'$HOSTLO' list" /dev/null | tr -d '\r')
	echo "${row:0:40}${hdr:40:3}${row:40:2}"
}
check "on a terminal: the path is cut with …, the columns line up" "${LONG:0:39}… ID $(stat -c %i "$CG2$LONG" | cut -c1)" \
	"$(cut_columns)"
check "in a pipe: the whole path, the column as wide as it" "$LONG $((${#LONG} + 2))" \
	"$("$HOSTLO" list | awk 'NR == 1 { id = index($0, " ID ") } NR == 2 { print $1, id + 1 }')"
check "-j: the whole path" "$LONG" "$("$HOSTLO" list -j | jq -r '.[].cgroup')"
"$HOSTLO" detach --cgroup "$LONG" >/dev/null
rmdir "$CG2$LONG"

echo "core: $PASSED passed, $FAILED failed"
echo "$PASSED $FAILED" >"${RESULT_FILE:-/dev/null}"
