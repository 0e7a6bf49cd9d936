/*
 * ruletab.h: the rules in the kernel: hostlo_attached (one row per attached cgroup: its live generation)
 * and hostlo_rules (every port's entry, keyed by cgroup and generation). A swap writes a new generation
 * and flips the row, so a call sees the old rules or the new, whole; replaced generations are swept.
 */
#ifndef HOSTLO_RULETAB_H
#define HOSTLO_RULETAB_H

#include <stddef.h>
#include <stdint.h>
#include "hostlo.h"
#include "rules.h"

struct state;

/* hostlo_attached as read in one batch: ids sorted, vals in the same order. */
struct attached_table {
	uint64_t *ids;
	struct hostlo_attached *vals;
	size_t n;
};
/* 0 (an empty table when nothing is pinned), or -1 with err. */
int attached_load(struct state *st, struct attached_table *t, char *err);
void attached_free(struct attached_table *t);
const struct hostlo_attached *attached_find(const struct attached_table *t, uint64_t id);

/* Attached cgroup ids, sorted; caller frees. 0, or -1 with err. */
int state_attached(struct state *st, uint64_t **ids, size_t *n, char *err);
/* How many cgroups are attached (1 when it cannot tell: the caller keeps the shared objects). */
size_t ruletab_count(struct state *st);

/* Every rule entry into st->dump_*, read once until this process changes them. 0, or -1 with err. */
int ruletab_dump(struct state *st, char *err);
/* Both at once, for a pass over every live entry: t (caller frees) and st->dump_*. 0, or -1 with err. */
int ruletab_load_all(struct state *st, struct attached_table *t, char *err);
/* The rule set as map entries of cgroup id, generation gen; caller frees *keys and *vals. */
int ruletab_expand(const struct ruleset *rs, uint64_t id, __u32 gen, struct hostlo_rule_key **keys,
		   struct hostlo_rule_val **vals, size_t *n, char *err);
/* Writes rs as cgroup id's entries of generation gen (not yet live), with their peer entries and the
 * live generation's peer entries that rs does not replace. 0, or -1 with err. */
int ruletab_write(struct state *st, const struct ruleset *rs, uint64_t id, __u32 gen, char *err);
/* Removes cgroup id's entries of generation gen (0: every generation). 0, or -1 with err. */
int ruletab_delete(struct state *st, uint64_t id, __u32 gen, char *err);
/* Removes the entries no call can reach: replaced generations, detached cgroups, crashed runs. */
int ruletab_sweep(struct state *st, char *err);
/* Adds a TCP target to cfg's peer addresses (more than fit: every address is checked). */
void peer_addr_add(struct hostlo_config *cfg, __be32 addr);
/* cfg's peer addresses anew, from the live peer entries of the cgroups in t. 0, or -1 with err. */
int peer_addrs_recompute(struct state *st, const struct attached_table *t, struct hostlo_config *cfg, char *err);
/* Cgroup id's live rules, as the rule set they came from. 0, or -1 with err. */
int state_rules(struct state *st, uint64_t id, struct ruleset *rs, char *err);

#endif
