/* counters.c: per-container counters (one row per caller's leaf cgroup and attachment), trace state. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "cgtree.h"
#include "counters.h"
#include "mapio.h"
#include "ruletab.h"
#include "objects.h"
#include "util.h"

/* The cgroup's storage row on every CPU, or NULL (none: no program of it is linked yet); caller frees. */
static struct hostlo_counts *counts_read(struct state *st, uint64_t id, int *ncpu)
{
	struct hostlo_counts *v;

	*ncpu = libbpf_num_possible_cpus();
	if (*ncpu < 1 || !(v = calloc((size_t)*ncpu, sizeof(*v))))
		return NULL;
	if (bpf_map_lookup_elem(st->counts_fd, &id, v) != 0) {
		free(v);
		return NULL;
	}
	return v;
}

/* No program counts into the row while this runs: owner is not id (or the rules are not live yet). */
static void counts_write(struct state *st, uint64_t id, uint64_t owner)
{
	int ncpu;
	struct hostlo_counts *v = counts_read(st, id, &ncpu);

	if (!v)
		return;
	memset(v, 0, (size_t)ncpu * sizeof(*v));
	for (int c = 0; c < ncpu; c++)
		v[c].owner = owner;
	bpf_map_update_elem(st->counts_fd, &id, v, BPF_EXIST);
	free(v);
}

void counts_reset(struct state *st, uint64_t id)
{
	counts_write(st, id, 0);
}

void counts_own(struct state *st, uint64_t id)
{
	int ncpu;
	struct hostlo_counts *v = counts_read(st, id, &ncpu);
	bool owned = v && v[0].owner == id;

	free(v);
	if (v && !owned)
		counts_write(st, id, id);
}

void counters_drop(struct state *st, uint64_t attach_id, struct cgtree *tree)
{
	struct hostlo_stats_key *keys;
	struct attached_table t;
	char err[ERRLEN];
	size_t n;

	if (attached_load(st, &t, err))
		return;
	if (map_keys(st->stats_fd, sizeof(*keys), (void **)&keys, &n, err)) {
		attached_free(&t);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		bool drop = attach_id ? keys[i].attach_id == attach_id :
			    !attached_find(&t, keys[i].attach_id) || !cgtree_find(tree, keys[i].cgroup_id);
		if (drop)
			bpf_map_delete_elem(st->stats_fd, &keys[i]);
	}
	free(keys);
	attached_free(&t);
}

static bool counted(const __u64 *count, int n)
{
	for (int j = 0; j < n; j++)
		if (count[j])
			return true;
	return false;
}

/* The row of cgroup cg under attachment attach in rows, added when missing; NULL when out of memory. */
static struct stats_row *row_for(struct stats_row **rows, size_t *n, uint64_t cg, uint64_t attach)
{
	struct stats_row *more;

	for (size_t k = 0; k < *n; k++)
		if ((*rows)[k].cgroup_id == cg && (*rows)[k].attach_id == attach)
			return &(*rows)[k];
	if (!(more = realloc(*rows, (*n + 1) * sizeof(**rows))))
		return NULL;
	*rows = more;
	more[*n] = (struct stats_row){ .cgroup_id = cg, .attach_id = attach };
	return &more[(*n)++];
}

/* Adds count[0..nc) to the row of cg under attach, made only for what was counted (as in the hash: a
 * pod's own cgroup counts nothing). 0, or -1 when out of memory. */
static int add_to_row(struct stats_row **rows, size_t *n, uint64_t cg, uint64_t attach, const __u64 *count, int nc)
{
	struct stats_row *r;

	if (!counted(count, nc))
		return 0;
	if (!(r = row_for(rows, n, cg, attach)))
		return -1;
	for (int j = 0; j < nc && j < HOSTLO_CNT_USED; j++)
		r->count[j] += count[j];
	return 0;
}

/* One attached cgroup's rows in its storage, summed over every CPU's copy. 0, or -1 when out of memory. */
static int storage_rows(const struct hostlo_counts *v, int ncpu, uint64_t id, struct stats_row **rows, size_t *n)
{
	for (int c = 0; c < ncpu; c++) {
		if (v[c].owner != id)
			continue;
		if (add_to_row(rows, n, id, id, v[c].v.count, HOSTLO_CNT_USED))
			return -1;
		for (int b = 0; b < HOSTLO_BELOW_ROWS; b++)
			if (v[c].below[b].cgroup_id &&
			    add_to_row(rows, n, v[c].below[b].cgroup_id, id, v[c].below[b].count, HOSTLO_BELOW_COUNTERS))
				return -1;
	}
	return 0;
}

/*
 * The rows the attached cgroups keep in their storage (their own processes', and the first cgroups
 * below them), added to the hash's rows (the same row can be in both: counted in the hash before its
 * owner was written or its rows below were taken, and by the host side). A row of a cgroup that is
 * gone is left out, as gc drops the hash's; a hash row of an attachment that is gone too: the host
 * side can count a connection after its detach. Each attachment's rows are summed over CPUs first, so
 * the rows so far are searched once per row, not once per CPU.
 */
static int add_owned_rows(struct state *st, struct cgtree *tree, struct stats_row **rows, size_t *n, char *err)
{
	struct attached_table t;
	size_t kept = 0;
	int ret = 0;

	if (attached_load(st, &t, err))
		return -1;
	for (size_t k = 0; k < *n; k++)
		if (attached_find(&t, (*rows)[k].attach_id))
			(*rows)[kept++] = (*rows)[k];
	*n = kept;
	for (size_t i = 0; i < t.n && !ret; i++) {
		int ncpu;
		struct hostlo_counts *v = counts_read(st, t.ids[i], &ncpu);
		struct stats_row *mine = NULL;
		size_t m = 0;

		ret = v ? storage_rows(v, ncpu, t.ids[i], &mine, &m) : 0;
		for (size_t j = 0; j < m && !ret; j++)
			if (mine[j].cgroup_id == t.ids[i] || cgtree_find(tree, mine[j].cgroup_id))
				ret = add_to_row(rows, n, mine[j].cgroup_id, t.ids[i], (const __u64 *)mine[j].count, HOSTLO_CNT_USED);
		free(mine);
		free(v);
	}
	attached_free(&t);
	return ret ? seterr(err, "out of memory") : 0;
}

int state_stats(struct state *st, struct cgtree *tree, struct stats_row **rows, size_t *n, char *err)
{
	int ncpu = libbpf_num_possible_cpus();
	struct hostlo_stats_key *keys;
	struct hostlo_stats_val *vals;
	void *k, *v;

	*rows = NULL;
	*n = 0;
	if (!st->present)
		return 0;
	if (ncpu < 1)
		return seterr(err, "stats: cannot count CPUs: %s", strerror(-ncpu));
	/* one batch read: a row per CPU per counter row */
	if (map_dump(st->stats_fd, sizeof(*keys), sizeof(*vals) * (size_t)ncpu, &k, &v, n, err))
		return -1;
	keys = k;
	vals = v;
	*rows = calloc(*n ? *n : 1, sizeof(**rows));
	if (!*rows) {
		free(keys);
		free(vals);
		return seterr(err, "out of memory");
	}
	for (size_t i = 0; i < *n; i++) {
		struct stats_row *r = &(*rows)[i];

		r->cgroup_id = keys[i].cgroup_id;
		r->attach_id = keys[i].attach_id;
		for (int c = 0; c < ncpu; c++)
			for (int j = 0; j < HOSTLO_CNT_USED; j++)
				r->count[j] += vals[i * (size_t)ncpu + (size_t)c].count[j];
	}
	free(keys);
	free(vals);
	return add_owned_rows(st, tree, rows, n, err);
}

int state_tracers(struct state *st, int delta, char *err)
{
	struct hostlo_config cfg;

	if (state_config_read(st, &cfg, err))
		return -1;
	if (delta < 0 && cfg.tracers == 0)
		return 0;
	cfg.tracers = (__u32)((int)cfg.tracers + delta);
	return state_config_write(st, &cfg, err);
}

uint64_t state_drops(struct state *st)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 *v = calloc(ncpu > 0 ? (size_t)ncpu : 1, sizeof(*v)), sum = 0;
	__u32 zero = 0;

	if (v && ncpu > 0 && bpf_map_lookup_elem(st->drops_fd, &zero, v) == 0)
		for (int i = 0; i < ncpu; i++)
			sum += v[i];
	free(v);
	return sum;
}
