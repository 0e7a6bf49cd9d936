/* state.h: hostlo's objects in the kernel and in bpffs: shared programs and maps, per-cgroup links. */
#ifndef HOSTLO_STATE_H
#define HOSTLO_STATE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include "cgtree.h"
#include "hostlo.h"
#include "rules.h"
#include "target.h"

#define NR_HOOKS 9
#define NR_HOST_HOOKS 2 /* sockops on the cgroup2 root, sk_lookup on the host netns: only while a rule steers */
#define BPFFS_PATH_MAX 1024 /* so every pin path below it fits in PATH_MAX */

struct state {
	char bpffs[BPFFS_PATH_MAX]; /* the bpffs mount: /sys/fs/bpf, or $HOSTLO_BPFFS */
	char dir[BPFFS_PATH_MAX + 16]; /* bpffs/hostlo: every pin of hostlo lives below it */
	int lock_fd;
	bool present;           /* the pinned objects exist and are open */
	int rules_fd, stats_fd, config_fd, socks_fd, events_fd, drops_fd, flows_fd, listeners_fd, ports_fd, attached_fd;
	/* every rule entry as last read (batched), until this process changes them */
	struct hostlo_rule_key *dump_keys;
	struct hostlo_rule_val *dump_vals;
	size_t dump_n;
	bool dump_valid;
	int prog_fd[NR_HOOKS];
	int host_prog_fd[NR_HOST_HOOKS]; /* -1 when the kernel cannot run them (before Linux 5.17) */
};

struct stats_row {
	uint64_t cgroup_id, attach_id;
	uint64_t count[HOSTLO_CNT_USED];
};

extern const char *const hook_names[NR_HOOKS];

enum open_mode {
	OPEN_EXISTING,   /* open what is pinned, if anything */
	OPEN_CREATE,     /* mount bpffs when needed, load and pin the shared objects if absent */
	OPEN_LOCK_ONLY,  /* only take the lock: for removing whatever is there, whichever build pinned it */
};

/* Where hostlo pins: /sys/fs/bpf, or $HOSTLO_BPFFS; and whether a bpffs is mounted there. */
const char *state_bpffs_path(void);
bool state_bpffs_mounted(void);

/* Takes the lock (serialising every hostlo on this bpffs), then opens as mode says. */
int state_open(struct state *st, enum open_mode mode, char *err);
void state_close(struct state *st);

/* Sets cg's complete rule set: a new attachment, or an atomic swap of an existing one's rules. */
int state_attach(struct state *st, const struct cgroup *cg, const struct ruleset *rs, char *err);
/* An attach of another cgroup (not self) killed while linking: keep it if whole, else remove it.
 * May remove the last attachment, and with it everything pinned (st->present turns false). */
int state_repair_attach(struct state *st, uint64_t self, char *err);
/* 0 when detached, 1 when cg was not attached, -1 on error. */
int state_detach(struct state *st, uint64_t id, struct cgtree *tree, char *err);
void state_detach_all(struct state *st);
/* Removes what belongs to cgroups that no longer exist and anything a crashed run left half-done;
 * thorough asks the kernel about every link rather than counting pins. Returns how many attachments
 * it removed, or -1. */
int state_gc(struct state *st, struct cgtree *tree, bool keep_empty, bool thorough, char *err);

/*
 * Host side: makes the kernel match the steering rules of every attachment: the ports, the host's
 * loopback listeners already open on them, and the two host programs (attached while any rule steers,
 * detached when none does). mnt is the cgroup2 mount. Idempotent; every command runs it, and how
 * says when the full pass (a read of every attachment's rules) is needed.
 */
enum host_sync {
	HOST_SYNC_FULL,     /* rules that steer were just set, or gc: always a full pass */
	HOST_SYNC_CHANGED,  /* attachments went away: a full pass if anything steers */
	HOST_SYNC_CHECK,    /* any other command: a full pass only if the host side is half set up */
};
int state_host_sync(struct state *st, const char *mnt, enum host_sync how, char *err);
/* Whether this kernel can steer to host loopback listeners (sk_lookup with ingress_ifindex: 5.17). */
bool state_host_supported(void);

/* Attached cgroup ids, sorted; caller frees. */
int state_attached(struct state *st, uint64_t **ids, size_t *n, char *err);
int state_rules(struct state *st, uint64_t id, struct ruleset *rs, char *err);
/* For each rule that steers: how many of its ports have a host listener on 127.0.0.1 now. */
void state_listening(struct state *st, struct ruleset *rs);
/* Counter rows summed over CPUs; caller frees. */
int state_stats(struct state *st, struct stats_row **rows, size_t *n, char *err);

/* Running tracers: the programs make events only while this count is above 0. */
int state_tracers(struct state *st, int delta, char *err);
/* Events lost because the ring buffer was full, since the maps were created. */
uint64_t state_drops(struct state *st);

#endif
