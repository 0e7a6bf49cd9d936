#!/usr/bin/env bash
# demo.sh: `make demo` is part of the promise on a fresh machine, so the test run runs it too.
source "$(dirname "$0")/../lib.sh"
require
expect "make demo shows both failures, then both fixed, and cleans up" 0 \
"1. Without hostlo.*error=ECONNREFUSED.*host client: error=ECONNREFUSED.*3. With hostlo.*got=hello-from-the-host-database.*host client: peer=198.18.1.2:3000 got=bound.*4. Per-container counters.*/hostlo-demo/app.*demo done: cleaned up" -- \
	env -u HOSTLO_BPFFS make -s -C "$ROOT" demo   # as a user runs it: the real /sys/fs/bpf
check "nothing of the demo is left" "0 0" "$(ip netns list | grep -c hostlo-demo) $(find "$CG2" -maxdepth 1 -name 'hostlo-demo*' | wc -l)"
echo "demo: $PASSED passed, $FAILED failed"
echo "$PASSED $FAILED" >"${RESULT_FILE:-/dev/null}"
