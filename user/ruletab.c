/* ruletab.c: the rules in the kernel: attached cgroups, their generations of rule entries, sweeping. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include "mapio.h"
#include "ruletab.h"
#include "objects.h"
#include "util.h"

void attached_free(struct attached_table *t)
{
	free(t->ids);
	free(t->vals);
	memset(t, 0, sizeof(*t));
}

struct attached_pair {
	uint64_t id;
	struct hostlo_attached a;
};

static int pair_cmp(const void *a, const void *b)
{
	return u64_cmp(&((const struct attached_pair *)a)->id, &((const struct attached_pair *)b)->id);
}

int attached_load(struct state *st, struct attached_table *t, char *err)
{
	struct attached_pair *pairs;
	void *k, *v;

	memset(t, 0, sizeof(*t));
	if (!st->present)
		return 0;
	if (map_dump(st->attached_fd, sizeof(uint64_t), sizeof(struct hostlo_attached), &k, &v, &t->n, err))
		return -1;
	t->ids = k;
	t->vals = v;
	pairs = malloc((t->n ? t->n : 1) * sizeof(*pairs));
	if (!pairs) {
		attached_free(t);
		return seterr(err, "out of memory");
	}
	for (size_t i = 0; i < t->n; i++)
		pairs[i] = (struct attached_pair){ t->ids[i], t->vals[i] };
	qsort(pairs, t->n, sizeof(*pairs), pair_cmp);
	for (size_t i = 0; i < t->n; i++) {
		t->ids[i] = pairs[i].id;
		t->vals[i] = pairs[i].a;
	}
	free(pairs);
	return 0;
}

const struct hostlo_attached *attached_find(const struct attached_table *t, uint64_t id)
{
	uint64_t *hit = t->n ? bsearch(&id, t->ids, t->n, sizeof(id), u64_cmp) : NULL;

	return hit ? &t->vals[hit - t->ids] : NULL;
}

int state_attached(struct state *st, uint64_t **ids, size_t *n, char *err)
{
	struct attached_table t;

	*ids = NULL;
	*n = 0;
	if (attached_load(st, &t, err))
		return -1;
	*ids = t.ids;
	*n = t.n;
	free(t.vals);
	return 0;
}

size_t ruletab_count(struct state *st)
{
	uint64_t *ids;
	size_t n;
	char err[ERRLEN];

	if (state_attached(st, &ids, &n, err))
		return 1;
	free(ids);
	return n;
}

int ruletab_dump(struct state *st, char *err)
{
	void *k, *v;

	if (st->dump_valid)
		return 0;
	free(st->dump_keys);
	free(st->dump_vals);
	st->dump_keys = NULL;
	st->dump_vals = NULL;
	if (map_dump(st->rules_fd, sizeof(*st->dump_keys), sizeof(*st->dump_vals), &k, &v, &st->dump_n, err))
		return -1;
	st->dump_keys = k;
	st->dump_vals = v;
	st->dump_valid = true;
	return 0;
}

int ruletab_load_all(struct state *st, struct attached_table *t, char *err)
{
	if (attached_load(st, t, err) == 0 && ruletab_dump(st, err) == 0)
		return 0;
	attached_free(t);
	return -1;
}

int ruletab_delete(struct state *st, uint64_t id, __u32 gen, char *err)
{
	if (ruletab_dump(st, err))
		return -1;
	for (size_t i = 0; i < st->dump_n; i++) {
		const struct hostlo_rule_key *k = &st->dump_keys[i];

		if (k->attach_id == id && (!gen || k->gen == gen) &&
		    bpf_map_delete_elem(st->rules_fd, k) != 0 && errno != ENOENT)
			return seterr(err, "remove rules of cgroup %llu: %s", (unsigned long long)id, strerror(errno));
	}
	st->dump_valid = false;
	return 0;
}

int ruletab_expand(const struct ruleset *rs, uint64_t id, __u32 gen, struct hostlo_rule_key **keys,
		   struct hostlo_rule_val **vals, size_t *n, char *err)
{
	*n = ruleset_entries(rs);
	if (*n > HOSTLO_MAX_RULE_ENTRIES)
		return seterr(err, "rules: %zu ports in all, at most %d", *n, HOSTLO_MAX_RULE_ENTRIES);
	*keys = calloc(*n ? *n : 1, sizeof(**keys));
	*vals = calloc(*n ? *n : 1, sizeof(**vals));
	if (!*keys || !*vals) {
		free(*keys);
		free(*vals);
		return seterr(err, "rules: out of memory");
	}
	ruleset_expand(rs, *keys, *vals);
	for (size_t i = 0; i < *n; i++) {
		(*keys)[i].attach_id = id;
		(*keys)[i].gen = gen;
	}
	return 0;
}

/*
 * Replaced generations are no longer live since an earlier hostlo run, so no program still reads
 * them. A read of every entry (about 1 ms): gc, and an attach that finds the map full, run it.
 */
int ruletab_sweep(struct state *st, char *err)
{
	struct attached_table t;

	if (ruletab_load_all(st, &t, err))
		return -1;
	for (size_t i = 0; i < st->dump_n; i++) {
		const struct hostlo_rule_key *k = &st->dump_keys[i];
		const struct hostlo_attached *a = attached_find(&t, k->attach_id);

		if (!a || a->gen != k->gen) {
			bpf_map_delete_elem(st->rules_fd, k);
			st->dump_valid = false;
		}
	}
	for (size_t i = 0; i < t.n; i++) {
		if (t.vals[i].stale) {
			t.vals[i].stale = 0;
			bpf_map_update_elem(st->attached_fd, &t.ids[i], &t.vals[i], BPF_EXIST);
		}
	}
	attached_free(&t);
	return 0;
}

/* One batch update; E2BIG (full) is retried once after a sweep makes room. Returns 0 or an errno. */
static int update_entries(struct state *st, struct hostlo_rule_key *keys, struct hostlo_rule_val *vals, size_t n)
{
	char scratch[ERRLEN];
	__u32 count = (__u32)n;
	int e;

	st->dump_valid = false;
	e = n && bpf_map_update_batch(st->rules_fd, keys, vals, &count, NULL) != 0 ? errno : 0;
	if (e != E2BIG)
		return e;
	count = (__u32)n;
	if (ruletab_sweep(st, scratch) != 0)
		return E2BIG;
	e = bpf_map_update_batch(st->rules_fd, keys, vals, &count, NULL) != 0 ? errno : 0;
	st->dump_valid = false;
	return e;
}

/* Cgroup id's live generation in *live (0: not attached) and how many peer entries it has. */
static int live_peers(struct state *st, uint64_t id, __u32 *live, size_t *count, char *err)
{
	struct hostlo_attached a;

	*live = 0;
	*count = 0;
	if (bpf_map_lookup_elem(st->attached_fd, &id, &a) != 0)
		return 0;
	if (ruletab_dump(st, err))
		return -1;
	*live = a.gen;
	for (size_t i = 0; i < st->dump_n; i++)
		*count += st->dump_keys[i].attach_id == id && st->dump_keys[i].gen == a.gen &&
			  st->dump_keys[i].kind == HOSTLO_KIND_PEER_TCP;
	return 0;
}

/*
 * Appends to keys/vals[0..m) the peer entries of cgroup id's live generation whose target port the new
 * peer entries keys[from..m) do not take, as generation gen: connections made under an earlier rule
 * still find what they asked for. Returns the new count.
 */
static size_t carry_peers(const struct state *st, uint64_t id, __u32 live, __u32 gen, struct hostlo_rule_key *keys,
			  struct hostlo_rule_val *vals, size_t from, size_t m)
{
	struct portset taken = { 0 };

	for (size_t i = from; i < m; i++)
		portset_add(&taken, keys[i].port);
	for (size_t i = 0; live && i < st->dump_n; i++) {
		struct hostlo_rule_key k = st->dump_keys[i];

		if (k.attach_id != id || k.gen != live || k.kind != HOSTLO_KIND_PEER_TCP || portset_add(&taken, k.port))
			continue;
		k.gen = gen;
		keys[m] = k;
		vals[m++] = st->dump_vals[i];
	}
	return m;
}

int ruletab_write(struct state *st, const struct ruleset *rs, uint64_t id, __u32 gen, char *err)
{
	struct hostlo_rule_key *keys, *k;
	struct hostlo_rule_val *vals, *v;
	size_t n, m, carried;
	__u32 live;
	int e;

	if (ruletab_expand(rs, id, gen, &keys, &vals, &n, err))
		return -1;
	if (live_peers(st, id, &live, &carried, err)) {
		free(keys);
		free(vals);
		return -1;
	}
	/* room for a peer entry per forward entry, then those carried over */
	k = realloc(keys, (2 * n + carried + 1) * sizeof(*keys));
	if (k)
		keys = k;
	v = k ? realloc(vals, (2 * n + carried + 1) * sizeof(*vals)) : NULL;
	if (v)
		vals = v;
	if (!k || !v) {
		free(keys);
		free(vals);
		return seterr(err, "rules: out of memory");
	}
	m = n + ruleset_peers(keys, vals, n, keys + n, vals + n);
	m = carry_peers(st, id, live, gen, keys, vals, n, m);
	e = update_entries(st, keys, vals, m);
	free(keys);
	free(vals);
	if (e)
		return seterr(err, "set rules: %s%s", strerror(e),
			      e == E2BIG ? " (too many rule entries over all attached cgroups)" : "");
	return 0;
}

void peer_addr_add(struct hostlo_config *cfg, __be32 addr)
{
	for (__u32 i = 0; i < cfg->npeer_addrs && i < HOSTLO_PEER_ADDRS; i++)
		if (cfg->peer_addrs[i] == addr)
			return;
	if (cfg->npeer_addrs < HOSTLO_PEER_ADDRS)
		cfg->peer_addrs[cfg->npeer_addrs] = addr;
	if (cfg->npeer_addrs <= HOSTLO_PEER_ADDRS)
		cfg->npeer_addrs++;
}

int peer_addrs_recompute(struct state *st, const struct attached_table *t, struct hostlo_config *cfg, char *err)
{
	if (ruletab_dump(st, err))
		return -1;
	cfg->npeer_addrs = 0;
	memset(cfg->peer_addrs, 0, sizeof(cfg->peer_addrs));
	for (size_t i = 0; i < st->dump_n; i++) {
		const struct hostlo_rule_key *k = &st->dump_keys[i];
		const struct hostlo_attached *a = attached_find(t, k->attach_id);

		if (k->kind == HOSTLO_KIND_PEER_TCP && a && a->gen == k->gen)
			peer_addr_add(cfg, st->dump_vals[i].addr);
	}
	return 0;
}

int state_rules(struct state *st, uint64_t id, struct ruleset *rs, char *err)
{
	struct hostlo_rule_key *keys = NULL;
	struct hostlo_rule_val *vals = NULL;
	struct hostlo_attached a;
	size_t n = 0;
	int ret = -1;

	if (bpf_map_lookup_elem(st->attached_fd, &id, &a) != 0)
		return seterr(err, "cgroup %llu: not attached", (unsigned long long)id);
	if (ruletab_dump(st, err))
		return -1;
	keys = calloc(a.entries ? a.entries : 1, sizeof(*keys));
	vals = calloc(a.entries ? a.entries : 1, sizeof(*vals));
	if (!keys || !vals) {
		seterr(err, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < st->dump_n && n < a.entries; i++) {
		if (st->dump_keys[i].attach_id == id && st->dump_keys[i].gen == a.gen &&
		    st->dump_keys[i].kind != HOSTLO_KIND_PEER_TCP) {
			keys[n] = st->dump_keys[i];
			vals[n++] = st->dump_vals[i];
		}
	}
	ret = ruleset_collapse(keys, vals, n, rs, err);
	rs->origin = a.origin;
out:
	free(keys);
	free(vals);
	return ret;
}
