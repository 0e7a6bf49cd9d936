# hostlo: `make` builds build/hostlo; `make test`, `make demo` (root) run against the real kernel.
.DELETE_ON_ERROR:
.DEFAULT_GOAL := all

BUILD    := build
CC       ?= gcc
CLANG    ?= clang
BPFTOOL  ?= bpftool
ARCH     := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
# Debian's multiarch include dir, whichever CC; asked when the BPF object is built (`=`, not `:=`),
# as gcc may come only with make's own deps step
TRIPLET   = $(shell gcc -dumpmachine 2>/dev/null)
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

CFLAGS   ?= -O2 -g
CFLAGS   += -Wall -Wextra -Iinclude -I$(BUILD) -DHOSTLO_VERSION='"$(VERSION)"' $(USER_EXTRA)
LDLIBS   := -lbpf -ljson-c -lelf -lz   # libmicrohttpd: opened by serve (user/serve.c)
STATIC_LIBS := -lbpf -ljson-c -lelf -lz
# -mcpu=v3: compare-and-swap for the per-CPU hand-off (its 32-bit ALU and jumps: Linux 5.1+)
BPFFLAGS  = -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -Wall -Iinclude -I/usr/include/$(TRIPLET) $(BPF_EXTRA)

USER_SRC := $(filter-out user/main.c,$(wildcard user/*.c))
USER_OBJ := $(USER_SRC:user/%.c=$(BUILD)/%.o)
HEADERS  := $(wildcard include/*.h user/*.h)

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' $(1) $(2);
endif

.PHONY: all deps deps-demo deps-bench deps-test deps-kernels test unit demo static image image-agent test-builds fuzz bench install \
        clean test-kernels test-kernels-docker

PREFIX   ?= /usr/local
DESTDIR  ?=

IMAGE    ?= hostlo:latest

all: deps $(BUILD)/hostlo

# What each target needs, as Debian packages: scripts/deps.sh GROUP installs what is missing of the
# group (as root; without root or sudo it names the missing packages in one line and stops).
# `make` asks for the build group only when a compiler, bpftool or a header it compiles against is absent.
BUILD_HEADERS := bpf/libbpf.h gelf.h json-c/json.h zlib.h microhttpd.h
deps:
	$(Q)command -v $(CC) >/dev/null && command -v $(CLANG) >/dev/null && command -v $(BPFTOOL) >/dev/null && \
	  printf '#include <%s>\n' $(BUILD_HEADERS) | $(CC) -E -x c - -o /dev/null 2>/dev/null || bash scripts/deps.sh build
# demo: ip; bench: iptables, socat, iperf3, the report; test (unit, fuzz, test-builds too): everything.
deps-demo deps-bench deps-test deps-kernels:
	$(Q)bash scripts/deps.sh $(@:deps-%=%)

$(BUILD):
	$(Q)mkdir -p $@

$(BUILD)/hostlo.bpf.o: bpf/hostlo.bpf.c include/hostlo.h | $(BUILD)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPFFLAGS) -c $< -o $@

$(BUILD)/hostlo.skel.h: $(BUILD)/hostlo.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name hostlo_bpf > $@

$(BUILD)/%.o: user/%.c $(HEADERS) $(BUILD)/hostlo.skel.h | $(BUILD)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/hostlo: $(BUILD)/main.o $(USER_OBJ)
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# Fully static (libbpf, libelf, zlib, json-c linked in): runs in a FROM scratch image.
# serve is left out: Debian packages no static libraries for libmicrohttpd's TLS dependencies.
static: deps $(BUILD)/hostlo-static
$(BUILD)/serve-static.o: user/serve.c $(HEADERS) | $(BUILD)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -DHOSTLO_NO_SERVE -c $< -o $@
$(BUILD)/hostlo-static: $(BUILD)/main.o $(filter-out $(BUILD)/serve.o,$(USER_OBJ)) $(BUILD)/serve-static.o
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) -static -s $^ $(STATIC_LIBS) -o $@

# The node agent image (the DaemonSet's): the dynamic hostlo, with serve, and exactly the shared
# libraries it loads (libmicrohttpd, which serve opens itself, and its own), FROM scratch.
AGENT_IMAGE ?= hostlo-agent:latest
image-agent: $(BUILD)/hostlo
	$(call msg,IMAGE,$(AGENT_IMAGE))
	$(Q)rm -rf $(BUILD)/agent && mkdir -p $(BUILD)/agent/rootfs
	$(Q)cp deploy/Dockerfile.agent $(BUILD)/agent/Dockerfile && cp $(BUILD)/hostlo $(BUILD)/agent/rootfs/hostlo
	$(Q)mhd=$$(ldconfig -p | awk '/libmicrohttpd\.so\.12 / { print $$NF; exit }'); \
	  { ldd $(BUILD)/hostlo; echo $$mhd; ldd $$mhd; } | grep -o '/[^ ]*' | sort -u | xargs -I{} cp --parents -L {} $(BUILD)/agent/rootfs/
	$(Q)DOCKER_BUILDKIT=0 docker build -q -t $(AGENT_IMAGE) $(BUILD)/agent >$(BUILD)/agent/build.log 2>&1 || \
	  { cat $(BUILD)/agent/build.log; exit 1; }

# The init-container image (deploy/Dockerfile, FROM scratch). Needs a Docker engine ($$DOCKER_HOST).
image: $(BUILD)/hostlo-static
	$(call msg,IMAGE,$(IMAGE))
	$(Q)rm -rf $(BUILD)/image && mkdir -p $(BUILD)/image
	$(Q)cp deploy/Dockerfile $(BUILD)/hostlo-static $(BUILD)/image/
	$(Q)DOCKER_BUILDKIT=0 docker build -q -t $(IMAGE) $(BUILD)/image >$(BUILD)/image/build.log 2>&1 || \
	  { cat $(BUILD)/image/build.log; exit 1; }

# Unit tests: pure parsing and resolution code, no root needed.
UNIT_BIN := $(BUILD)/unit_tests
$(UNIT_BIN): tests/unit/unit_tests.c $(USER_OBJ)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser $^ $(LDLIBS) -lcmocka -o $@

$(BUILD)/sockprobe: tests/sockprobe.c | $(BUILD)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< -o $@

unit: deps-test $(UNIT_BIN)
	$(Q)$(UNIT_BIN)

# Test builds, each in a folder of its own: crash points (HOSTLO_CRASH_AT, HOSTLO_STALL_AT), another
# BPF object (what an older or newer build would have pinned), and ASan + UBSan.
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
test-builds: deps-test
	$(Q)$(MAKE) -s BUILD=$(BUILD)/crash USER_EXTRA=-DHOSTLO_CRASH_POINTS $(BUILD)/crash/hostlo
	$(Q)$(MAKE) -s BUILD=$(BUILD)/variant BPF_EXTRA=-DHOSTLO_TEST_VARIANT $(BUILD)/variant/hostlo
	$(Q)$(MAKE) -s BUILD=$(BUILD)/asan CC=clang USER_EXTRA="$(SAN)" $(BUILD)/asan/hostlo $(BUILD)/asan/unit_tests

$(BUILD)/loadgen: tests/loadgen.c | $(BUILD)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -pthread $< -o $@

# libFuzzer over rule and target parsing; FUZZ_SECONDS of fuzzing from the seed corpus in the repo.
FUZZ_SECONDS ?= 60
FUZZ_SRC := user/rules.c user/util.c user/container.c user/docker.c user/target.c user/netns.c user/cgtree.c user/watchconf.c
$(BUILD)/fuzz_parse: tests/fuzz/fuzz_parse.c $(FUZZ_SRC) $(HEADERS) | $(BUILD)
	$(call msg,FUZZ-CC,$@)
	$(Q)clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iinclude -Iuser \
	  tests/fuzz/fuzz_parse.c $(FUZZ_SRC) -ljson-c -o $@
fuzz: deps-test $(BUILD)/fuzz_parse
	$(Q)rm -rf $(BUILD)/fuzz-corpus && mkdir -p $(BUILD)/fuzz-corpus
	$(Q)$(BUILD)/fuzz_parse -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  $(BUILD)/fuzz-corpus tests/fuzz/corpus 2>&1 | tail -n 25

$(BUILD)/bench/bench: tests/bench/bench.c
	$(Q)mkdir -p $(@D)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< -o $@

# the yardstick of the hook cost: a bare rewrite program, measured beside hostlo's in the same run
$(BUILD)/bench/bare.bpf.o: tests/bench/bare.bpf.c
	$(Q)mkdir -p $(@D)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPFFLAGS) -c $< -o $@

# Benchmarks (root): hostlo vs direct, iptables DNAT and socat, interleaved; QUICK=1 runs every path briefly.
bench: deps-bench $(BUILD)/hostlo $(BUILD)/sockprobe $(BUILD)/bench/bench $(BUILD)/bench/bare.bpf.o
	$(Q)QUICK=$(QUICK) bash tests/bench/bench.sh

# The README's test command. Needs root: real cgroups, netns and BPF.
test: deps-test $(BUILD)/hostlo $(BUILD)/hostlo-static $(UNIT_BIN) $(BUILD)/sockprobe $(BUILD)/loadgen test-builds \
      $(BUILD)/bench/bench $(BUILD)/bench/bare.bpf.o \
      $(BUILD)/fuzz_parse
	$(Q)bash tests/run.sh

# The integration suites on Debian's 5.10, 6.1, 6.12 and newest kernels, each booted under qemu (root).
test-kernels: deps-test deps-kernels $(BUILD)/hostlo $(BUILD)/hostlo-static $(BUILD)/sockprobe $(BUILD)/loadgen test-builds $(BUILD)/fuzz_parse
	$(Q)bash tests/kernels/run.sh
# Debian 12 booted under qemu with systemd, Docker (systemd cgroup driver): the seed's two scenarios (root).
test-kernels-docker: deps-kernels $(BUILD)/hostlo $(BUILD)/sockprobe
	$(Q)bash tests/kernels/docker-guest.sh

demo: deps-demo $(BUILD)/hostlo $(BUILD)/sockprobe
	$(Q)bash scripts/demo.sh

# The CLI, its man page, its bash completion and the watch agent's systemd unit, under $(DESTDIR)$(PREFIX).
install: $(BUILD)/hostlo
	install -D -m 0755 $(BUILD)/hostlo $(DESTDIR)$(PREFIX)/sbin/hostlo
	install -D -m 0644 docs/hostlo.8 $(DESTDIR)$(PREFIX)/share/man/man8/hostlo.8
	install -D -m 0644 docs/hostlo.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/hostlo
	mkdir -p $(DESTDIR)$(PREFIX)/lib/systemd/system
	sed 's|@SBINDIR@|$(PREFIX)/sbin|' deploy/systemd/hostlo-watch.service \
	  >$(DESTDIR)$(PREFIX)/lib/systemd/system/hostlo-watch.service

clean:
	rm -rf $(BUILD)
