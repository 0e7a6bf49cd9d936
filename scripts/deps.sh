#!/usr/bin/env bash
# Installs every Debian/Ubuntu package hostlo's build, demo and tests need; safe to run again.
set -euo pipefail

PKGS=(
  make gcc clang llvm pkg-config          # build
  libbpf-dev bpftool libelf-dev zlib1g-dev # BPF object, skeleton, loader
  libjson-c-dev                           # JSON output
  libmicrohttpd-dev                       # hostlo serve (/metrics); the static build leaves it out
  curl                                    # tests: scraping hostlo serve
  libcmocka-dev                           # unit tests
  libclang-rt-dev                         # ASan, UBSan and libFuzzer runtimes for clang
  iproute2 util-linux procps jq man-db    # demo and tests: netns, veth, setpriv, JSON checks, man -l
  bsdextrautils file python3              # tests and bench: col, file, the bench report
  docker.io busybox-static                # container tests: a real engine, a locally built image
  dnsmasq-base bind9-dnsutils             # UDP tests: a real resolver on the host side, dig in the container
  iptables socat iperf3 gnuplot-nox       # benchmarks: the other ways, bulk throughput, the chart
  redis-server redis-tools                # host-side test: a real service on the host's loopback only
)

# the manifest check runs on Node.js (kubernetes-models): the machine's own, else Debian's
command -v node >/dev/null && command -v npm >/dev/null || PKGS+=(nodejs npm)

# group kernels (`make test-kernels`): qemu, and what fetches the kernels and makes the guest's initramfs
[ "${1:-}" = kernels ] && PKGS=(qemu-system-x86 cpio debootstrap xz-utils)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then exec sudo "$0" "$@"; fi
  echo "hostlo: deps: missing packages (${missing[*]}): run as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
