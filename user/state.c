/* state.c: the table of hostlo's programs and maps, and opening them: lock, create or open, upgrade. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "hostlo.skel.h"
#include "crashpoint.h"
#include "pins.h"
#include "state.h"
#include "util.h"

#define PROG(field) offsetof(struct hostlo_bpf, progs.field)
#define MAP(field, fd) offsetof(struct state, fd), offsetof(struct hostlo_bpf, maps.field)

const struct prog_def hook_defs[NR_HOOKS] = {
	[HOOK_CONNECT4]     = { "connect4", BPF_CGROUP_INET4_CONNECT, PROG(hostlo_connect4) },
	[HOOK_CONNECT6]     = { "connect6", BPF_CGROUP_INET6_CONNECT, PROG(hostlo_connect6) },
	[HOOK_BIND4]        = { "bind4", BPF_CGROUP_INET4_BIND, PROG(hostlo_bind4) },
	[HOOK_BIND6]        = { "bind6", BPF_CGROUP_INET6_BIND, PROG(hostlo_bind6) },
	[HOOK_GETPEERNAME4] = { "getpeername4", BPF_CGROUP_INET4_GETPEERNAME, PROG(hostlo_getpeername4) },
	[HOOK_GETPEERNAME6] = { "getpeername6", BPF_CGROUP_INET6_GETPEERNAME, PROG(hostlo_getpeername6) },
	[HOOK_SENDMSG4]     = { "sendmsg4", BPF_CGROUP_UDP4_SENDMSG, PROG(hostlo_sendmsg4) },
	[HOOK_RECVMSG4]     = { "recvmsg4", BPF_CGROUP_UDP4_RECVMSG, PROG(hostlo_recvmsg4) },
	[HOOK_RECVMSG6]     = { "recvmsg6", BPF_CGROUP_UDP6_RECVMSG, PROG(hostlo_recvmsg6) },
};
const struct prog_def host_hook_defs[NR_HOST_HOOKS] = {
	[HOST_HOOK_SOCKOPS] = { "sockops", BPF_CGROUP_SOCK_OPS, PROG(hostlo_sockops) },
	[HOST_HOOK_LOOKUP]  = { "lookup", BPF_SK_LOOKUP, PROG(hostlo_lookup) },
	[HOST_HOOK_PEER4]   = { "peer4", BPF_CGROUP_INET4_GETPEERNAME, PROG(hostlo_host_peer4) },
	[HOST_HOOK_SOCKNAME4] = { "sockname4", BPF_CGROUP_INET4_GETSOCKNAME, PROG(hostlo_host_name4) },
};
const struct map_def map_defs[NR_MAPS] = {
	[MAP_RULES]       = { "rules", MAP(hostlo_rules, rules_fd) },
	[MAP_STATS]       = { "stats", MAP(hostlo_stats, stats_fd) },
	[MAP_CONFIG]      = { "config", MAP(hostlo_config, config_fd) },
	[MAP_SOCKS]       = { "socks", MAP(hostlo_socks, socks_fd) },
	[MAP_EVENTS]      = { "events", MAP(hostlo_events, events_fd) },
	[MAP_DROPS]       = { "drops", MAP(hostlo_drops, drops_fd) },
	[MAP_FLOWS]       = { "flows", MAP(hostlo_flows, flows_fd) },
	[MAP_LISTENERS]   = { "listeners", MAP(hostlo_listeners, listeners_fd) },
	[MAP_STEER_PORTS] = { "steerports", MAP(hostlo_steer_ports, ports_fd) },
	[MAP_ATTACHED]    = { "attached", MAP(hostlo_attached, attached_fd) },
	[MAP_PEERS]       = { "peers", MAP(hostlo_peers, peers_fd) },
};

int *state_map_fd(struct state *st, enum map m)
{
	return (int *)((char *)st + map_defs[m].fd_off);
}

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (!verbose || (level == LIBBPF_DEBUG && verbose < 2))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* Every fd set to -1, not 0: closing "unset" fds would close stdin, or a server's socket. */
static void unset_fds(struct state *st)
{
	for (int i = 0; i < NR_MAPS; i++)
		*state_map_fd(st, i) = -1;
	for (int i = 0; i < NR_HOOKS; i++)
		st->prog_fd[i] = -1;
	for (int i = 0; i < NR_HOST_HOOKS; i++)
		st->host_prog_fd[i] = -1;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void state_close_objects(struct state *st)
{
	for (int i = 0; i < NR_MAPS; i++)
		close_fd(state_map_fd(st, i));
	for (int i = 0; i < NR_HOOKS; i++)
		close_fd(&st->prog_fd[i]);
	for (int i = 0; i < NR_HOST_HOOKS; i++)
		close_fd(&st->host_prog_fd[i]);
	free(st->dump_keys);
	free(st->dump_vals);
	st->dump_keys = NULL;
	st->dump_vals = NULL;
	st->dump_n = 0;
	st->dump_valid = false;
	st->present = false;
}

const char *state_bpffs_path(void)
{
	const char *env = getenv("HOSTLO_BPFFS");

	return env && env[0] ? env : "/sys/fs/bpf";
}

bool state_bpffs_mounted(void)
{
	return pins_is_bpffs(state_bpffs_path());
}

/* The pinned objects, created when mode asks and they are absent (or half torn down by a crash). */
static int open_or_create(struct state *st, bool create, char *err)
{
	struct stat sb;
	int ret;

	if (stat(st->dir, &sb) != 0) {
		if (!create)
			return 0;
		if (pins_create(st, err))
			return -1;
	}
	ret = pins_open(st, err);
	if (ret == -EPROTO)
		return -1;
	if (ret < 0) {
		/* an incomplete directory is what a crash in teardown leaves: finish the teardown */
		pins_teardown(st);
		if (!create)
			return 0;
		if (pins_create(st, err))
			return -1;
		ret = pins_open(st, err);
		if (ret < 0)
			return ret == -EPROTO ? -1 : seterr(err, "bpffs %s: %s", st->dir, strerror(-ret));
	}
	return 0;
}

int state_open(struct state *st, enum open_mode mode, char *err)
{
	bool create = mode == OPEN_CREATE;
	const char *env = state_bpffs_path();
	struct hostlo_config cfg;

	memset(st, 0, sizeof(*st));
	st->lock_fd = -1;
	unset_fds(st);
	if (strlen(env) >= sizeof(st->bpffs))
		return seterr(err, "HOSTLO_BPFFS: path too long");
	snprintf(st->bpffs, sizeof(st->bpffs), "%s", env);
	snprintf(st->dir, sizeof(st->dir), "%s/hostlo", st->bpffs);
	libbpf_set_print(libbpf_log);

	if (!pins_is_bpffs(st->bpffs)) {
		if (!create)
			return 0; /* no bpffs: nothing of hostlo can exist */
		if (pins_mount(st->bpffs, err))
			return -1;
	}
	if (pins_lock(st, err))
		return -1;
	crash_point("lock:held");
	pins_remove_stale_tmp(st);
	if (mode == OPEN_LOCK_ONLY)
		return 0;
	if (open_or_create(st, create, err))
		return -1;
	if (!create || !st->present)
		return 0;
	if (state_config_read(st, &cfg, err))
		return -1;
	return cfg.prog_build != pins_build_id() ? pins_upgrade(st, err) : 0;
}

void state_close(struct state *st)
{
	state_close_objects(st);
	close_fd(&st->lock_fd); /* releases the lock */
}

int state_config_read(struct state *st, struct hostlo_config *cfg, char *err)
{
	__u32 zero = 0;

	if (bpf_map_lookup_elem(st->config_fd, &zero, cfg) != 0)
		return seterr(err, "read config map: %s", strerror(errno));
	return 0;
}

int state_config_write(struct state *st, const struct hostlo_config *cfg, char *err)
{
	__u32 zero = 0;

	if (bpf_map_update_elem(st->config_fd, &zero, cfg, BPF_ANY) != 0)
		return seterr(err, "update config map: %s", strerror(errno));
	return 0;
}
