#!/usr/bin/env bash
# deps.sh [build|demo|bench|test|all]: installs the Debian/Ubuntu packages that one group of make
# targets needs and the machine lacks (no argument: all); safe to run again, a no-op when nothing is missing.
#   build  `make`, `make static`, `make install`: the compilers and libraries of build/hostlo
#   demo   `make demo`: build, and ip for its throwaway container (network namespace + veth)
#   bench  `make bench`: build, and the other ways (iptables, socat), iperf3, the report and its chart,
#          Docker, busybox and perf for the watch agent's latency
#   test   `make test`, `make unit`, `make fuzz`, `make test-builds`: everything (the test run also
#          runs the demo and a short bench), so the same as all
set -euo pipefail

BUILD=(
  make gcc clang llvm pkg-config           # compilers; clang builds the BPF object
  libbpf-dev bpftool libelf-dev zlib1g-dev # BPF object, skeleton, loader (and their static libraries)
  libjson-c-dev                            # JSON output
  libmicrohttpd-dev                        # hostlo serve: its header at build time; the library is opened at run time
)
DEMO=(
  iproute2                                 # ip: netns, veth
)
BENCH=(
  iproute2 util-linux procps               # ip, taskset, mountpoint, sysctl
  jq python3                               # bpftool -j output, the report
  iptables socat iperf3 gnuplot-nox        # the other ways, bulk throughput, the chart
  docker.io busybox-static linux-perf      # watch latency: a real engine, a local image, cgroup_mkdir
)
TEST=(
  libcmocka-dev                           # unit tests
  libclang-rt-dev                         # ASan, UBSan and libFuzzer runtimes for clang
  curl                                    # scraping hostlo serve
  iproute2 util-linux procps jq man-db    # netns, veth, setpriv, nsenter, JSON checks, man -l
  bsdextrautils file                      # col, file
  docker.io busybox-static                # container tests: a real engine, a locally built image
  podman containerd runc                  # runtimes test: real Podman (and its API socket), containerd's ctr
  dnsmasq-base bind9-dnsutils             # UDP tests: a real resolver on the host side, dig in the container
  redis-server redis-tools                # host-side test: a real service on the host's loopback only
  postgresql mariadb-server mariadb-client postgresql-client # local-peer test: real services, default configs
)

group=${1:-all}
case $group in
build) PKGS=("${BUILD[@]}") ;;
demo) PKGS=("${BUILD[@]}" "${DEMO[@]}") ;;
bench) PKGS=("${BUILD[@]}" "${BENCH[@]}") ;;
kernels) PKGS=(qemu-system-x86 cpio debootstrap xz-utils) ;; # make test-kernels: qemu, the kernels, the guest
test | all)
  PKGS=("${BUILD[@]}" "${DEMO[@]}" "${BENCH[@]}" "${TEST[@]}")
  [ "$group" = all ] && PKGS+=(qemu-system-x86 cpio debootstrap xz-utils)
  # the manifest check runs on Node.js (kubernetes-models): the machine's own, else Debian's
  command -v node >/dev/null && command -v npm >/dev/null || PKGS+=(nodejs npm)
  ;;
*)
  echo "usage: scripts/deps.sh [build|demo|bench|test|kernels|all] (no argument: all)" >&2
  exit 2
  ;;
esac

if ! command -v dpkg-query >/dev/null; then
  echo "hostlo: deps: not Debian/Ubuntu (no dpkg): make sure the equivalents of these are installed: ${PKGS[*]}" >&2
  exit 0
fi

# one dpkg-query for the whole list; a package dpkg does not know is simply not in its answer
installed=" $(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${PKGS[@]}" 2>/dev/null | awk '$1 == "ii" { printf "%s ", $2 }' || true)"
missing=()
for p in "${PKGS[@]}"; do
  [[ $installed == *" $p "* || " ${missing[*]} " == *" $p "* ]] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then exec sudo bash "$0" "$group"; fi
  echo "hostlo: deps: missing packages (${missing[*]}): run as root: bash scripts/deps.sh $group" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
