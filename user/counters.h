/* counters.h: per-container counters (one row per caller's leaf cgroup and attachment), trace state. */
#ifndef HOSTLO_COUNTERS_H
#define HOSTLO_COUNTERS_H

#include <stddef.h>
#include <stdint.h>
#include "hostlo.h"

struct state;
struct cgtree;

struct stats_row {
	uint64_t cgroup_id, attach_id;
	uint64_t count[HOSTLO_CNT_USED];
};

/* Counter rows summed over CPUs, of cgroups that exist (tree); caller frees. 0, or -1 with err. */
int state_stats(struct state *st, struct cgtree *tree, struct stats_row **rows, size_t *n, char *err);
/* Before a new attachment's rules are live: zeroes the storage row its cgroup may keep from an earlier
 * one (struct hostlo_counts). After its programs are linked: makes it the row of the cgroup's own
 * processes, if it is not yet. Errors are not the caller's concern: the hash counts meanwhile. */
void counts_reset(struct state *st, uint64_t id);
void counts_own(struct state *st, uint64_t id);
/* Drops the rows of one attachment (attach_id), or with attach_id 0 those of vanished cgroups and
 * attachments (tree: the cgroups that exist). */
void counters_drop(struct state *st, uint64_t attach_id, struct cgtree *tree);

/* Running tracers: the programs make events only while this count is above 0. 0, or -1 with err. */
int state_tracers(struct state *st, int delta, char *err);
/* Events lost because the ring buffer was full, since the maps were created. */
uint64_t state_drops(struct state *st);

#endif
