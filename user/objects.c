/* objects.c: the table of hostlo's programs and maps (name, attach type, skeleton part), the fds of
 * one open set of them, and the config map. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "hostlo.skel.h"
#include "objects.h"
#include "util.h"

#define PROG_AT(field) offsetof(struct hostlo_bpf, progs.field)
#define PROG(field) PROG_AT(field), 0
#define PROG_OR_PERCPU(field) PROG_AT(field), PROG_AT(field##_percpu)
#define MAP(field, fd) offsetof(struct state, fd), offsetof(struct hostlo_bpf, maps.field)

const struct prog_def hook_defs[NR_HOOKS] = {
	[HOOK_CONNECT4]     = { "connect4", BPF_CGROUP_INET4_CONNECT, PROG_OR_PERCPU(hostlo_connect4) },
	[HOOK_CONNECT6]     = { "connect6", BPF_CGROUP_INET6_CONNECT, PROG_OR_PERCPU(hostlo_connect6) },
	[HOOK_BIND4]        = { "bind4", BPF_CGROUP_INET4_BIND, PROG(hostlo_bind4) },
	[HOOK_BIND6]        = { "bind6", BPF_CGROUP_INET6_BIND, PROG(hostlo_bind6) },
	[HOOK_GETPEERNAME4] = { "getpeername4", BPF_CGROUP_INET4_GETPEERNAME, PROG(hostlo_getpeername4) },
	[HOOK_GETPEERNAME6] = { "getpeername6", BPF_CGROUP_INET6_GETPEERNAME, PROG(hostlo_getpeername6) },
	[HOOK_SENDMSG4]     = { "sendmsg4", BPF_CGROUP_UDP4_SENDMSG, PROG(hostlo_sendmsg4) },
	[HOOK_RECVMSG4]     = { "recvmsg4", BPF_CGROUP_UDP4_RECVMSG, PROG(hostlo_recvmsg4) },
	[HOOK_RECVMSG6]     = { "recvmsg6", BPF_CGROUP_UDP6_RECVMSG, PROG(hostlo_recvmsg6) },
};
const struct prog_def host_hook_defs[NR_HOST_HOOKS] = {
	[HOST_HOOK_SOCKOPS] = { "sockops", BPF_CGROUP_SOCK_OPS, PROG_OR_PERCPU(hostlo_sockops) },
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
	[MAP_HANDOFF]     = { "handoff", MAP(hostlo_handoff, handoff_fd) },
	[MAP_REDIRECTED]  = { "redirected", MAP(hostlo_redirected, redirected_fd) },
	[MAP_HANDOFF_SLOTS] = { "handoffslots", MAP(hostlo_handoff_slots, handoff_slots_fd) },
	[MAP_COUNTS]      = { "counts", MAP(hostlo_counts, counts_fd) },
	[MAP_LISTEN_EPOCH] = { "listenepoch", MAP(hostlo_listen_epoch, listen_epoch_fd) },
};

int *state_map_fd(struct state *st, enum map m)
{
	return (int *)((char *)st + map_defs[m].fd_off);
}

void state_unset_fds(struct state *st)
{
	for (int i = 0; i < NR_MAPS; i++)
		*state_map_fd(st, i) = -1;
	for (int i = 0; i < NR_HOOKS; i++)
		st->prog_fd[i] = -1;
	for (int i = 0; i < NR_HOST_HOOKS; i++)
		st->host_prog_fd[i] = -1;
}

void state_close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void state_close_objects(struct state *st)
{
	for (int i = 0; i < NR_MAPS; i++)
		state_close_fd(state_map_fd(st, i));
	for (int i = 0; i < NR_HOOKS; i++)
		state_close_fd(&st->prog_fd[i]);
	for (int i = 0; i < NR_HOST_HOOKS; i++)
		state_close_fd(&st->host_prog_fd[i]);
	free(st->dump_keys);
	free(st->dump_vals);
	st->dump_keys = NULL;
	st->dump_vals = NULL;
	st->dump_n = 0;
	st->dump_valid = false;
	st->present = false;
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

/*
 * The programs keep a per-CPU memo of the rules they found, valid for one rules_version (hostlo.h): it is
 * odd from before a change of which rules apply (attached cgroups, their generations, levels) until after
 * it, then the next even value, so nothing found before or during the change is used after it. A
 * config write is a memcpy whose parts other CPUs may see in any order: an attach writes the even value
 * alone, after everything else of the change; detach and gc write it with a narrower level mask, and any
 * mix of the two masks still covers every attached level.
 */
void config_version_changing(struct hostlo_config *cfg)
{
	cfg->rules_version |= 1;
}

void config_version_changed(struct hostlo_config *cfg)
{
#if defined(__x86_64__) || defined(__i386__)
	cfg->rules_version = (cfg->rules_version | 1) + 1;
#else
	/* Only x86 keeps a program's read of the version before its map reads (a total store order): on
	 * a weaker CPU a program could read the new version and an old rule and keep the pair. So the
	 * version stays odd there, and the memo unused. */
	cfg->rules_version = (cfg->rules_version | 1) + 2;
#endif
}
