#!/usr/bin/env bash
# layout.sh: the README's map of user/ is the code's: every file listed once, and every #include
# points down the list (no include loop, nothing imports upward). Reads files only.
source "$(dirname "$0")/../lib.sh"

# the README's development map: "user/<name>.<c|h>  <concern>" lines, in order
mapfile -t order < <(sed -n '/^## Development/,/^## /p' "$ROOT/README.md" | grep -oE '^user/[a-z_]+\.[ch] ' | sed 's#user/##; s/\.[ch] $//')
mapfile -t files < <(cd "$ROOT/user" && ls -- *.c *.h | sed 's/\.[ch]$//' | sort -u)
check "README's map names every user/ module exactly once" \
	"$(printf '%s\n' "${files[@]}")" "$(printf '%s\n' "${order[@]}" | sort)"

declare -A pos
for i in "${!order[@]}"; do pos[${order[$i]}]=$i; done
# upward_includes DIR: each "#include" in DIR/*.[ch] that points up the map, as "from -> to; "
upward_includes() {
	local f from to out=""
	for f in "$1"/*.[ch]; do
		from=$(basename "${f%.*}")
		for to in $(grep -oE '^#include "[a-z_]+\.h"' "$f" | sed 's/#include "//; s/\.h"//'); do
			[ "$to" = "$from" ] || [ -z "${pos[$to]:-}" ] && continue
			[ "${pos[$from]:-0}" -lt "${pos[$to]}" ] || out+="$from -> $to; "
		done
	done
	printf '%s' "$out"
}
check "every #include points down the README's map (no loop, nothing upward)" "" "$(upward_includes "$ROOT/user")"

# the negative case: the same tree with one include pointing up the map
probe=$(mktemp -d) && trap 'rm -rf "$probe"' EXIT
cp "$ROOT"/user/*.[ch] "$probe/" && printf '#include "attach.h"\n' >>"$probe/util.c"
check "an upward include is caught" "util -> attach; " "$(upward_includes "$probe")"
echo "layout: $PASSED passed, $FAILED failed"
echo "$PASSED $FAILED" >"${RESULT_FILE:-/dev/null}"
