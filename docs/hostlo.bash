# bash completion for hostlo(8); kept in step with `hostlo --help` and docs/hostlo.8 by tests/integration/docs.sh
_hostlo() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	local commands="attach detach list stats gc trace serve watch version help"
	local targets="--cgroup --pid --container --self --parent --cgroup-root"
	local cmd=
	for w in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
		case " $commands " in *" $w "*) cmd=$w; break ;; esac
	done
	case $prev in
	--cgroup) COMPREPLY=($(compgen -W "$(awk '$9 == "cgroup2" { print $5 }' /proc/self/mountinfo | head -1 |
		xargs -r -I{} find {} -mindepth 1 -maxdepth 3 -type d -printf '/%P\n' 2>/dev/null)" -- "$cur")); return ;;
	--pid) COMPREPLY=($(compgen -W "$(ls /proc | grep -E '^[0-9]+$')" -- "$cur")); return ;;
	--cgroup-root) COMPREPLY=($(compgen -d -- "$cur")); return ;;
	--config) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--container|--connect|--bind|--every|--watch|--listen) return ;;
	esac
	local opts
	case $cmd in
	"") opts="$commands -v --verbose -h --help" ;;
	attach) opts="$targets --connect --always --real-peer --bind --create --dry-run -j --json -v --verbose -h --help" ;;
	detach) opts="$targets --all -j --json -v --verbose -h --help" ;;
	list) opts="--cgroup-root -j --json -v --verbose -h --help" ;;
	stats) opts="$targets --prometheus --watch -j --json -v --verbose -h --help" ;;
	gc) opts="--cgroup-root --every -j --json -v --verbose -h --help" ;;
	trace) opts="$targets -j --json -v --verbose -h --help" ;;
	serve) opts="--listen --cgroup-root -v --verbose -h --help" ;;
	watch) opts="--config --cgroup-root -j --json -v --verbose -h --help" ;;
	version) opts="-j --json -h --help" ;;
	help) opts= ;;
	esac
	COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -F _hostlo hostlo
