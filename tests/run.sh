#!/usr/bin/env bash
# run.sh: `make test`: unit tests, then every integration suite against the real kernel; one summary.
set -u
cd "$(dirname "$0")/.."
passed=0 failed=0
result=$(mktemp)
trap 'rm -f "$result"' EXIT

echo "== unit tests (cmocka)"
unit_out=$(build/unit_tests 2>&1)
unit_rc=$?
echo "$unit_out"
p=$(grep -Eo '\[  PASSED  \] [0-9]+' <<<"$unit_out" | awk '{ s += $NF } END { print s + 0 }')
f=$(grep -Eo '\[  FAILED  \] [0-9]+ test' <<<"$unit_out" | awk '{ s += $3 } END { print s + 0 }')
[ "$unit_rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1   # a crash counts as a failure
passed=$((passed + p)) failed=$((failed + f))

for suite in tests/integration/*.sh; do
	echo "== $suite"
	: >"$result"
	RESULT_FILE=$result bash "$suite"
	rc=$?
	read -r p f <"$result" || { p=0; f=0; }
	if [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then
		echo "FAIL  $suite exited $rc before it finished"
		f=1
	fi
	passed=$((passed + ${p:-0})) failed=$((failed + ${f:-0}))
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
