#!/usr/bin/env bash
# run.sh: `make test`: unit tests, then every integration suite against the real kernel; one summary.
set -u
cd "$(dirname "$0")/.."
passed=0 failed=0
result=$(mktemp)
trap 'rm -f "$result"' EXIT

# ASan + UBSan builds stop at the first error (-fno-sanitize-recover) and report leaks
export ASAN_OPTIONS=abort_on_error=0:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1

unit() { # unit BINARY LABEL
	echo "== unit tests (cmocka$2)"
	local out rc p f
	out=$("$1" 2>&1)
	rc=$?
	echo "$out"
	p=$(grep -Eo '\[  PASSED  \] [0-9]+' <<<"$out" | awk '{ s += $NF } END { print s + 0 }')
	f=$(grep -Eo '\[  FAILED  \] [0-9]+ test' <<<"$out" | awk '{ s += $3 } END { print s + 0 }')
	[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1   # a crash counts as a failure
	passed=$((passed + p)) failed=$((failed + f))
}

suite() { # suite SCRIPT [HOSTLO_BIN]
	echo "== $1${2:+ (hostlo: $2)}"
	: >"$result"
	RESULT_FILE=$result HOSTLO_BIN=${2:-} bash "$1"
	local rc=$? p f
	read -r p f <"$result" || { p=0; f=0; }
	if [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then
		echo "FAIL  $1 exited $rc before it finished"
		f=1
	fi
	passed=$((passed + ${p:-0})) failed=$((failed + ${f:-0}))
}

unit build/unit_tests ""
unit build/asan/unit_tests ", ASan + UBSan"
for s in tests/integration/*.sh; do suite "$s"; done
# the suites that drive every command path, again with the ASan + UBSan build of hostlo
for s in tests/integration/core.sh tests/integration/transparency.sh; do suite "$s" "$PWD/build/asan/hostlo"; done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
