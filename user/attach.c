/* attach.c: attaching a cgroup (rules, then links), detaching it, and gc of what is gone or half-done. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "attach.h"
#include "cgtree.h"
#include "counters.h"
#include "crashpoint.h"
#include "links.h"
#include "pins.h"
#include "ruletab.h"
#include "objects.h"
#include "util.h"

/* Attaching again with the same rules changes nothing in the kernel, not even a generation. */
static bool unchanged(struct state *st, uint64_t id, const struct ruleset *rs)
{
	struct hostlo_rule_key *keys = NULL;
	struct hostlo_rule_val *vals = NULL, now;
	struct hostlo_attached a;
	char err[ERRLEN];
	size_t n;
	bool same;

	if (bpf_map_lookup_elem(st->attached_fd, &id, &a) != 0 || ruletab_expand(rs, id, a.gen, &keys, &vals, &n, err))
		return false;
	same = a.entries == n && a.origin == rs->origin;
	for (size_t i = 0; same && i < n; i++)
		same = bpf_map_lookup_elem(st->rules_fd, &keys[i], &now) == 0 && memcmp(&now, &vals[i], sizeof(now)) == 0;
	for (int h = 0; same && h < NR_HOOKS; h++) {
		__u32 prog_id;
		int fd = link_live(st, id, h, &prog_id);

		same = fd >= 0 && prog_id == fd_prog_id(st->prog_fd[h]);
		if (fd >= 0)
			close(fd);
	}
	free(keys);
	free(vals);
	return same;
}

static int rules_changing(struct state *st, char *err)
{
	struct hostlo_config cfg;

	if (state_config_read(st, &cfg, err))
		return -1;
	config_version_changing(&cfg);
	return state_config_write(st, &cfg, err);
}

/* One attach in progress: what it changes, and what a failure puts back. */
struct attach_txn {
	uint64_t id;
	bool was;                               /* attached before: cur is its row */
	struct hostlo_attached cur, next;
	struct hostlo_config cfg, saved_cfg;
	bool created[NR_HOOKS];                 /* links this attach made */
};

/* A generation never handed out before, recorded first (and kept even if the attach fails): entries
 * a crashed attach left behind can never become live. */
static int begin(struct state *st, const struct cgroup *cg, const struct ruleset *rs, struct attach_txn *x, char *err)
{
	x->next = (struct hostlo_attached){
		.level = (__u8)cg->level, .entries = (__u32)ruleset_entries(rs), .origin = rs->origin,
	};
	for (int i = 0; i < rs->n; i++)
		x->next.steers |= rs->r[i].host_ifindex != 0;
	if (state_config_read(st, &x->cfg, err))
		return -1;
	/* before the rules are live: a direct connect to a new target is recorded from the first */
	for (int i = 0; i < rs->n; i++)
		if (rs->r[i].kind == RULE_CONNECT && rs->r[i].proto == PROTO_TCP)
			peer_addr_add(&x->cfg, rs->r[i].addr);
	x->was = bpf_map_lookup_elem(st->attached_fd, &x->id, &x->cur) == 0;
	x->next.gen = ++x->cfg.last_gen ? x->cfg.last_gen : ++x->cfg.last_gen;
	if (x->next.steers || (x->was && x->cur.steers))
		x->cfg.host_pending = 1; /* steering rules come or go: the host side follows, now or next command */
	/* the level before the rules are live (a wider mask only costs a probe), so the write that ends
	 * the change (make_live) changes nothing a lookup reads but the version */
	x->cfg.level_mask |= 1ULL << cg->level;
	if ((__u32)cg->level > x->cfg.max_level)
		x->cfg.max_level = (__u32)cg->level;
	config_version_changing(&x->cfg);
	if (state_config_write(st, &x->cfg, err))
		return -1;
	x->saved_cfg = x->cfg;
	return 0;
}

/* The live generation becomes stale; one that is stale already goes now (a second swap before any
 * gc: it stopped being live in an earlier run, no program still reads it). */
static int retire_live(struct state *st, struct attach_txn *x, char *err)
{
	if (!x->was)
		return 0;
	if (x->cur.stale) {
		if (ruletab_delete(st, x->id, x->cur.stale_gen, err))
			return -1;
		x->cur.stale = 0; /* what a failed attach puts back */
	}
	x->next.stale_gen = x->cur.gen;
	x->next.stale = x->cur.entries;
	return 0;
}

/* Rules before programs: a program never runs for this cgroup without its rules; this one update
 * makes the new generation live, so a concurrent call sees the old rules or the new, whole. */
static int make_live(struct state *st, const struct cgroup *cg, struct attach_txn *x, char *err)
{
	if (bpf_map_update_elem(st->attached_fd, &x->id, &x->next, BPF_ANY) != 0)
		return seterr(err, "set rules of %s: %s%s", cg->rel, strerror(errno),
			      errno == E2BIG ? " (too many attached cgroups)" : "");
	crash_point("attach:rules-set");
	x->cfg.attach_pending = x->id; /* a crash before all links exist: the next command removes the attachment */
	config_version_changed(&x->cfg);
	if (state_config_write(st, &x->cfg, err))
		return -1;
	crash_point("attach:config");
	return 0;
}

static int link_hooks(struct state *st, const struct cgroup *cg, int cg_fd, struct attach_txn *x, char *err)
{
	for (int h = 0; h < NR_HOOKS; h++) {
		__u32 prog_id;
		int link = link_live(st, x->id, h, &prog_id), ok;

		if (link >= 0) {
			/* another build's program: swap it in place, the cgroup is never without one */
			ok = prog_id == fd_prog_id(st->prog_fd[h]) || bpf_link_update(link, st->prog_fd[h], NULL) == 0;
			if (!ok)
				seterr(err, "update %s of %s: %s", hook_defs[h].name, cg->rel, strerror(errno));
			close(link);
			if (!ok)
				return -1;
			continue;
		}
		if (link_create(st, x->id, h, cg_fd, cg->rel, err))
			return -1;
		x->created[h] = true;
		crash_point("attach:linked");
	}
	return 0;
}

/* The new generation's entries stay until a gc: a call that read it just before the rollback still
 * finds its rule. */
static void rollback(struct state *st, const struct attach_txn *x)
{
	char p[PATH_MAX], scratch[ERRLEN];
	struct hostlo_config cfg = x->cfg, back = x->saved_cfg;

	for (int h = 0; h < NR_HOOKS; h++) {
		if (x->created[h]) {
			link_path(st, x->id, h, p, sizeof(p));
			unlink(p);
		}
	}
	config_version_changing(&cfg); /* the rules change back: no memo from here */
	state_config_write(st, &cfg, scratch);
	if (x->was)
		bpf_map_update_elem(st->attached_fd, &x->id, &x->cur, BPF_ANY);
	else
		bpf_map_delete_elem(st->attached_fd, &x->id);
	/* the config as it was, under a version never used before: a memo of the new rules never holds again */
	config_version_changed(&cfg);
	back.rules_version = cfg.rules_version;
	state_config_write(st, &back, scratch);
}

int state_attach(struct state *st, const struct cgroup *cg, const struct ruleset *rs, char *err)
{
	struct attach_txn x = { .id = cg->id };
	int cg_fd = -1, ret = -1;

	if (cg->level < 1 || cg->level > HOSTLO_MAX_LEVEL)
		return seterr(err, "cgroup %s: cannot attach at level %d (1-%d)", cg->rel, cg->level, HOSTLO_MAX_LEVEL);
	if (unchanged(st, cg->id, rs)) {
		counts_own(st, cg->id); /* after an attach killed before it could */
		return 0; /* the same rules, fully linked to the current programs: nothing to do */
	}
	if (begin(st, cg, rs, &x, err))
		return -1;
	if (retire_live(st, &x, err) || ruletab_write(st, rs, x.id, x.next.gen, err))
		goto fail;
	if (!x.was) {
		/* an earlier attachment's counts: kept by the kernel with the cgroup (its storage), or
		 * counted by the host side after its detach (its hash rows) */
		counts_reset(st, x.id);
		counters_drop(st, x.id, NULL);
	}
	crash_point("attach:rules-map");
	cg_fd = open(cg->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg_fd < 0) {
		seterr(err, "cgroup %s: %s", cg->rel, strerror(errno));
		goto fail;
	}
	if (make_live(st, cg, &x, err) || link_hooks(st, cg, cg_fd, &x, err))
		goto fail;
	counts_own(st, x.id);
	x.cfg.attach_pending = 0;
	if (state_config_write(st, &x.cfg, err))
		goto fail;
	ret = 0;
	goto out;
fail:
	rollback(st, &x);
	if (!ruletab_count(st))
		pins_teardown(st); /* nothing else uses the shared objects: leave nothing new pinned */
out:
	if (cg_fd >= 0)
		close(cg_fd);
	return ret;
}

/*
 * The level mask is a superset while detaching; recomputed here from the cgroups still attached. Every
 * command's gc comes here: when nothing changed (no change under way, the same levels and peer
 * addresses) the config is left alone, so `stats` or a scrape does not empty the programs' memos.
 */
static int recompute_config(struct state *st, char *err)
{
	struct hostlo_config cfg, was;
	struct attached_table t;

	if (state_config_read(st, &cfg, err) || attached_load(st, &t, err))
		return -1;
	was = cfg;
	if (peer_addrs_recompute(st, &t, &cfg, err)) {
		attached_free(&t);
		return -1;
	}
	cfg.level_mask = 0;
	cfg.max_level = 0;
	for (size_t i = 0; i < t.n; i++) {
		int level = t.vals[i].level;

		cfg.level_mask |= 1ULL << level;
		if ((__u32)level > cfg.max_level)
			cfg.max_level = (__u32)level;
	}
	attached_free(&t);
	if (memcmp(&cfg, &was, sizeof(cfg)) == 0 && !(cfg.rules_version & 1))
		return 0;
	config_version_changed(&cfg);
	return state_config_write(st, &cfg, err);
}

/* An attachment with steering rules goes: the host side follows, now or at the next command. */
static int host_follows(struct state *st, uint64_t id, char *err)
{
	struct hostlo_attached a;
	struct hostlo_config cfg;

	if (bpf_map_lookup_elem(st->attached_fd, &id, &a) != 0 || !a.steers)
		return 0;
	if (state_config_read(st, &cfg, err))
		return -1;
	cfg.host_pending = 1;
	return state_config_write(st, &cfg, err);
}

/* Links, then rules, then counters; the shared objects go with the last attachment. */
static int detach_one(struct state *st, uint64_t id, struct cgtree *tree, char *err)
{
	if (host_follows(st, id, err))
		return -1;
	links_unpin(st, id);
	crash_point("detach:unlinked");
	if (rules_changing(st, err))
		return -1;
	if (bpf_map_delete_elem(st->attached_fd, &id) != 0 && errno != ENOENT)
		return seterr(err, "remove rules of cgroup %llu: %s", (unsigned long long)id, strerror(errno));
	crash_point("detach:rules");
	if (ruletab_delete(st, id, 0, err))
		return -1;
	counters_drop(st, id, tree);
	crash_point("detach:stats");
	if (recompute_config(st, err))
		return -1;
	if (!ruletab_count(st))
		pins_teardown(st);
	return 0;
}

/*
 * An attach of another cgroup was killed while creating its links (attach skips the gc that would
 * find it): complete means keep it, else remove it, so it is never left half linked.
 */
int state_repair_attach(struct state *st, uint64_t self, char *err)
{
	struct hostlo_config cfg;
	uint64_t id;
	bool whole = true;

	if (!st->present)
		return 0;
	if (state_config_read(st, &cfg, err))
		return -1;
	id = cfg.attach_pending;
	if (!id)
		return 0;
	for (int h = 0; whole && h < NR_HOOKS; h++)
		whole = link_ok(st, id, h);
	if (!whole && id != self && detach_one(st, id, NULL, err))
		return -1;
	if (!st->present)
		return 0; /* it was the last attachment: everything is gone, nothing to clear */
	if (state_config_read(st, &cfg, err))
		return -1;
	cfg.attach_pending = 0;
	return state_config_write(st, &cfg, err);
}

int state_detach(struct state *st, uint64_t id, struct cgtree *tree, char *err)
{
	struct hostlo_attached a;

	if (!st->present || bpf_map_lookup_elem(st->attached_fd, &id, &a) != 0)
		return 1;
	return detach_one(st, id, tree, err) ? -1 : 0;
}

void state_detach_all(struct state *st)
{
	pins_teardown(st);
}

/*
 * Whether every hook of the cgroup has its link. Usually a count of the link pins (linked: sorted,
 * one readdir for all cgroups, so a command stays fast with thousands attached); thorough asks the
 * kernel about each.
 */
static bool fully_linked(const struct state *st, uint64_t id, const uint64_t *linked, size_t nl, bool thorough)
{
	uint64_t *hit = nl ? bsearch(&id, linked, nl, sizeof(*linked), u64_cmp) : NULL;
	size_t pins = 0;

	if (thorough) {
		for (int h = 0; h < NR_HOOKS; h++)
			if (!link_ok(st, id, h))
				return false;
		return true;
	}
	/* the run of pins for this id, around the one bsearch found */
	if (hit) {
		size_t at = (size_t)(hit - linked), from = at;

		while (from > 0 && linked[from - 1] == id)
			from--;
		while (at < nl && linked[at] == id)
			at++;
		pins = at - from;
	}
	return pins == NR_HOOKS;
}

/* Attachments of gone cgroups, and those a crash left without all their links: how many, or -1. */
static int remove_broken(struct state *st, struct cgtree *tree, const uint64_t *linked, size_t nl, bool thorough,
			 char *err)
{
	uint64_t *ids;
	size_t n;
	int removed = 0;

	if (state_attached(st, &ids, &n, err))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (cgtree_find(tree, ids[i]) && fully_linked(st, ids[i], linked, nl, thorough))
			continue;
		host_follows(st, ids[i], err);
		links_unpin(st, ids[i]);
		if (!removed && rules_changing(st, err)) { /* state_gc's recompute_config ends the change */
			free(ids);
			return -1;
		}
		bpf_map_delete_elem(st->attached_fd, &ids[i]);
		removed++; /* its counters go with the vanished ones, in counters_drop */
		crash_point("gc:removed");
	}
	free(ids);
	return removed;
}

/* Links whose rules are gone: a crash between the two steps of a detach. */
static int unpin_orphans(struct state *st, const uint64_t *linked, size_t nl, char *err)
{
	struct attached_table t;

	if (attached_load(st, &t, err))
		return -1;
	for (size_t i = 0; i < nl; i++)
		if ((i == 0 || linked[i] != linked[i - 1]) && !attached_find(&t, linked[i]))
			links_unpin(st, linked[i]);
	attached_free(&t);
	return 0;
}

int state_gc(struct state *st, struct cgtree *tree, bool keep_empty, bool thorough, char *err)
{
	struct hostlo_config cfg;
	uint64_t *linked;
	size_t nl;
	int removed;

	if (!st->present)
		return 0;
	links_pinned_ids(st, &linked, &nl);
	if (nl)
		qsort(linked, nl, sizeof(*linked), u64_cmp);
	removed = remove_broken(st, tree, linked, nl, thorough, err);
	if (removed < 0 || unpin_orphans(st, linked, nl, err)) {
		free(linked);
		return -1;
	}
	free(linked);
	if (ruletab_sweep(st, err))
		return -1;
	counters_drop(st, 0, tree);
	if (recompute_config(st, err))
		return -1;
	/* an attach killed while linking: found above by its missing links, nothing pending now */
	if (state_config_read(st, &cfg, err) == 0 && cfg.attach_pending) {
		cfg.attach_pending = 0;
		state_config_write(st, &cfg, err);
	}
	if (!keep_empty && !ruletab_count(st))
		pins_teardown(st);
	return removed;
}
