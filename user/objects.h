/* objects.h: hostlo's objects in the kernel (shared programs and maps): their table, and the fds of
 * one open set of them (struct state), with the config map every part reads. */
#ifndef HOSTLO_OBJECTS_H
#define HOSTLO_OBJECTS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <bpf/libbpf.h>
#include "hostlo.h"

#define BPFFS_PATH_MAX 1024 /* so every pin path below it fits in PATH_MAX */

/* The programs linked to each attached cgroup, one link per hook. */
enum hook {
	HOOK_CONNECT4, HOOK_CONNECT6, HOOK_BIND4, HOOK_BIND6, HOOK_GETPEERNAME4, HOOK_GETPEERNAME6,
	HOOK_SENDMSG4, HOOK_RECVMSG4, HOOK_RECVMSG6,
	NR_HOOKS
};
/* The host side's programs: linked only while a rule steers (see hostside.h). */
enum host_hook {
	HOST_HOOK_SOCKOPS,  /* on the cgroup2 root */
	HOST_HOOK_LOOKUP,   /* on the host netns */
	HOST_HOOK_PEER4,    /* on the cgroup2 root, only while a steering rule shows a loopback client */
	HOST_HOOK_SOCKNAME4, /* likewise */
	NR_HOST_HOOKS
};
enum map {
	MAP_RULES, MAP_STATS, MAP_CONFIG, MAP_SOCKS, MAP_EVENTS, MAP_DROPS, MAP_FLOWS, MAP_LISTENERS,
	MAP_STEER_PORTS, MAP_ATTACHED, MAP_PEERS, MAP_HANDOFF, MAP_REDIRECTED, MAP_HANDOFF_SLOTS, MAP_COUNTS,
	MAP_LISTEN_EPOCH,
	NR_MAPS
};

/* What each object is called in bpffs, where it attaches, and where the skeleton holds it (an offset
 * into struct hostlo_bpf, so this table is the only place that pairs names with skeleton fields). */
struct prog_def {
	const char *name;
	enum bpf_attach_type type;
	size_t skel_off;
	size_t percpu_off; /* its *_percpu build, loaded instead where the kernel runs it; 0: none */
};
struct map_def {
	const char *name;
	size_t fd_off;     /* the fd's field in struct state */
	size_t skel_off;
};
extern const struct prog_def hook_defs[NR_HOOKS];
extern const struct prog_def host_hook_defs[NR_HOST_HOOKS];
extern const struct map_def map_defs[NR_MAPS];

struct state {
	char bpffs[BPFFS_PATH_MAX]; /* the bpffs mount: /sys/fs/bpf, or $HOSTLO_BPFFS */
	char dir[BPFFS_PATH_MAX + 16]; /* bpffs/hostlo: every pin of hostlo lives below it */
	int lock_fd;
	bool present;           /* the pinned objects exist and are open */
	int rules_fd, stats_fd, config_fd, socks_fd, events_fd, drops_fd, flows_fd, listeners_fd, ports_fd, attached_fd, peers_fd,
	    handoff_fd, redirected_fd, handoff_slots_fd, counts_fd,
	    listen_epoch_fd;
	/* every rule entry as last read (batched), until this process changes them */
	struct hostlo_rule_key *dump_keys;
	struct hostlo_rule_val *dump_vals;
	size_t dump_n;
	bool dump_valid;
	int prog_fd[NR_HOOKS];
	int host_prog_fd[NR_HOST_HOOKS]; /* -1 when the kernel cannot run them (before Linux 5.17) */
};

/* The fd of map m in st. */
int *state_map_fd(struct state *st, enum map m);
/* Every fd set to -1 (not 0: closing "unset" fds would close stdin, or a server's socket). */
void state_unset_fds(struct state *st);
/* Closes every object fd (the lock stays): what a teardown does before it unpins. */
void state_close_objects(struct state *st);
/* Closes *fd when open, and marks it unset. */
void state_close_fd(int *fd);
/* hostlo_config[0], read or written whole. 0, or -1 with err. */
int state_config_read(struct state *st, struct hostlo_config *cfg, char *err);
int state_config_write(struct state *st, const struct hostlo_config *cfg, char *err);
/* rules_version around a change of what the programs may keep in their per-CPU memos (objects.c) */
void config_version_changing(struct hostlo_config *cfg);
void config_version_changed(struct hostlo_config *cfg);

#endif
