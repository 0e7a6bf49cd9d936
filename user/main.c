/* main.c: the hostlo command line: a table of verbs, one shared opening, one do_<verb> each.
 *
 * Return conventions, one per layer: the files below the CLI (rules, target, state, label, preflight,
 * ...) return 0, or -1 with a message in an ERRLEN buffer (state_detach also 1: not attached); every
 * function here returns an exit status (EXIT_OK, EXIT_FAIL, EXIT_USAGE) and has printed the error by
 * then; the printers (report.c) return nothing.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "attach.h"
#include "cgtree.h"
#include "container.h"
#include "counters.h"
#include "hostside.h"
#include "label.h"
#include "netns.h"
#include "opts.h"
#include "preflight.h"
#include "report.h"
#include "rules.h"
#include "ruletab.h"
#include "serve.h"
#include "state.h"
#include "target.h"
#include "trace.h"
#include "usage.h"
#include "util.h"
#include "watch.h"

#ifndef HOSTLO_VERSION
#define HOSTLO_VERSION "unknown"
#endif

/* What the shared opening hands a verb. */
struct run {
	struct opts o;
	char mnt[PATH_MAX];             /* the cgroup2 mount, when the verb reads cgroups */
	struct cgroup cg;
	const struct cgroup *target;    /* &cg when a TARGET was given, else NULL */
	struct state st;
	bool st_opened;                 /* state_close only what state_open set up: a zeroed state holds fd 0 */
	struct cgtree tree;             /* the state's gc read it: names the attached cgroups */
	struct attachment plan;         /* attach: the cgroup and its rules, gateways filled in */
};

enum privileges {
	PRIV_NONE,
	PRIV_BPF,        /* CAP_BPF and CAP_NET_ADMIN, checked before anything is read */
	PRIV_LOAD,       /* also a recent enough kernel and, to mount bpffs, CAP_SYS_ADMIN; checked after the
	                    plan, so a dry run needs none */
};

enum state_need {
	STATE_NONE,      /* the verb opens the state itself, once a pass (stats, gc) or not at all */
	STATE_GC,        /* the pinned state, after a gc; --all (detach): the lock only */
	STATE_CREATE,    /* attach: created when absent, a half-done attach repaired, no gc */
};

struct verb {
	const char *name;
	int (*run)(struct run *r);
	int (*check)(struct opts *o);      /* what the options alone can tell is wrong (exit 2), or NULL */
	int (*plan)(struct run *r);        /* work before the privileges are checked; --dry-run stops after it */
	const char *options;               /* what it takes, as option words; NULL: it reads none */
	enum privileges privileges;
	bool cgroups;                      /* finds the cgroup2 tree, and TARGET when given */
	enum state_need state;
	const char *synopsis;
};

static int fail(const char *err)
{
	errorf("%s", err);
	return EXIT_FAIL;
}

/* Checked up front so the error names what is missing, not a bare EPERM. */
static int check_privileges(const struct verb *v, const struct opts *o)
{
	char err[ERRLEN];

	if (v->privileges == PRIV_LOAD && preflight_kernel(err))
		return fail(err);
	/* attach --self uses the host's bpffs, mounted in: it never mounts one */
	if (preflight_privileges(v->name, v->privileges == PRIV_LOAD && !o->self, err))
		return fail(err);
	return 0;
}

/* The host's cgroup2 tree: --cgroup-root, or found in mountinfo. */
static int find_cgroup2(const struct opts *o, char *mnt, size_t mlen)
{
	char err[ERRLEN];

	if (o->cgroup_root) {
		if (!real_sysenv.is_cgroup2(o->cgroup_root)) {
			errorf("--cgroup-root %s: not a cgroup2 mount", o->cgroup_root);
			return EXIT_FAIL;
		}
		snprintf(mnt, mlen, "%s", o->cgroup_root);
		return 0;
	}
	if (cgroup2_mount(&real_sysenv, mnt, mlen, err))
		return fail(err);
	return 0;
}

/* --self and --container search the whole tree; --cgroup and --pid name their cgroup directly. */
static int resolve_target(const struct opts *o, const char *mnt, struct cgroup *cg)
{
	char err[ERRLEN], rel[PATH_MAX];
	struct cgtree tree = { 0 };
	int rc;

	/* --create under --dry-run creates nothing: a missing cgroup is then reported as such */
	if (o->cgroup && o->create && !o->dry_run && cgroup_create(&real_sysenv, mnt, o->cgroup, err))
		rc = -1;
	else if (o->cgroup)
		rc = cgroup_from_path(&real_sysenv, mnt, o->cgroup, cg, err);
	else if (o->pid)
		rc = cgroup_from_pid(&real_sysenv, mnt, o->pid, cg, err);
	else if ((rc = cgtree_load(&tree, mnt, err)) == 0 && o->self)
		rc = cgroup_self(&real_sysenv, mnt, &tree, o->parent, cg, err);
	else if (rc == 0)
		rc = container_cgroup(&tree, mnt, o->container, rel, sizeof(rel), err) ||
		     cgroup_from_path(&real_sysenv, mnt, rel, cg, err);
	cgtree_free(&tree);
	return rc ? fail(err) : 0;
}

/* The cgroup2 tree and, when given, TARGET; detach --all needs neither. */
static int find_cgroups(struct run *r)
{
	int ret;

	if (r->o.all)
		return 0;
	if ((ret = find_cgroup2(&r->o, r->mnt, sizeof(r->mnt))) || !has_target(&r->o))
		return ret;
	r->target = &r->cg;
	return resolve_target(&r->o, r->mnt, &r->cg);
}

/* Opens the pinned state and removes what vanished cgroups or crashed runs left; with removed (the
 * gc command), every link is checked with the kernel, not only counted. */
static int open_and_gc(struct state *st, enum open_mode mode, const char *mnt, struct cgtree *tree, int *removed)
{
	char err[ERRLEN];
	int n;

	if (state_open(st, mode, err) || cgtree_open(tree, mnt, err) ||
	    (n = state_gc(st, tree, mode == OPEN_CREATE, removed != NULL, err)) < 0 ||
	    state_host_sync(st, mnt, removed ? HOST_SYNC_FULL : n > 0 ? HOST_SYNC_CHANGED : HOST_SYNC_CHECK, err))
		return fail(err);
	if (removed)
		*removed = n;
	return 0;
}

static int open_for_attach(struct run *r)
{
	char err[ERRLEN];

	if (r->o.self && !state_bpffs_mounted()) {
		/* a bpffs mounted here, in the container's own mount namespace, would vanish with it */
		errorf("attach --self: %s is not a bpffs: mount the host's /sys/fs/bpf into the container",
		       state_bpffs_path());
		return EXIT_FAIL;
	}
	r->st_opened = true;
	/* no gc of other cgroups here: attach stays fast with thousands attached (list, stats and gc do it) */
	if (state_open(&r->st, OPEN_CREATE, err) || state_repair_attach(&r->st, r->cg.id, err) ||
	    (!r->st.present && (state_close(&r->st), state_open(&r->st, OPEN_CREATE, err))))
		return fail(err);
	return 0;
}

static int open_state(const struct verb *v, struct run *r)
{
	char err[ERRLEN];

	switch (v->state) {
	case STATE_GC:
		r->st_opened = true;
		if (!r->o.all)
			return open_and_gc(&r->st, OPEN_EXISTING, r->mnt, &r->tree, NULL);
		/* removing everything, whichever build pinned it: nothing to open but the lock */
		return state_open(&r->st, OPEN_LOCK_ONLY, err) ? fail(err) : 0;
	case STATE_CREATE:
		return open_for_attach(r);
	case STATE_NONE:
		break;
	}
	return 0;
}

/* One pass of a command that repeats (stats --watch, gc --every, each /metrics scrape): the state
 * opened, a gc, and with lines the counters, labelled; the lock is let go before the next pass. */
static int pass(const char *mnt, const struct cgroup *filter, int *removed, struct labeler *lb,
		struct stat_line **lines, size_t *m)
{
	struct state st = { .lock_fd = -1 };
	struct stats_row *rows = NULL;
	struct cgtree tree = { 0 };
	char err[ERRLEN];
	size_t n = 0;
	int ret = open_and_gc(&st, OPEN_EXISTING, mnt, &tree, removed);

	if (!ret && lines &&
	    (state_stats(&st, &tree, &rows, &n, err) || stat_lines(rows, n, &tree, filter, lb, lines, m, err)))
		ret = fail(err);
	free(rows);
	cgtree_free(&tree);
	state_close(&st);
	return ret;
}

/* Rules without =ADDR go to the target's default gateway, read from a process in the cgroup. */
static int fill_gateways(struct ruleset *rs, const struct cgroup *cg)
{
	char err[ERRLEN], rule[128];
	uint32_t gw = 0;
	int pid = 0;

	for (int i = 0; i < rs->n; i++) {
		struct rule *r = &rs->r[i];

		if (r->has_addr)
			continue;
		if (!pid && !(pid = cgroup_some_pid(cg->path))) {
			rule_format(r, rule, sizeof(rule));
			errorf("%s: cgroup %s has no process to read the gateway from; give %s=ADDR", rule, cg->rel, rule);
			return EXIT_FAIL;
		}
		if (!gw && default_gateway(&real_sysenv, pid, &gw, err))
			return fail(err);
		r->addr = gw;
		r->has_addr = true;
		/* the gateway is this host: a service on the host's loopback only is reached too */
		if (r->proto == PROTO_TCP && kernel_has_host_side())
			r->host_ifindex = local_ifindex(gw);
		else if (r->proto == PROTO_TCP)
			r->host_unsupported = local_ifindex(gw) != 0; /* said by attach and list */
	}
	return 0;
}

/* Rules act at bind() time: an app already listening on loopback is not reached until it rebinds. */
static void warn_existing_listeners(const struct ruleset *rs, const struct cgroup *cg)
{
	for (int i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->r[i];
		int pid = 0, port;

		if (r->kind != RULE_BIND)
			continue;
		port = loopback_listener(&real_sysenv, cg->path, r->port_min, r->port_max, &pid);
		if (port)
			warn_listening(port, cg->rel, pid);
	}
}

static int plan_attach(struct run *r)
{
	char err[ERRLEN];
	int ret;

	if (r->cg.level == 0) {
		errorf("attach: refusing the cgroup2 root: it holds every process on the host; name a container's cgroup or its parent");
		return EXIT_FAIL;
	}
	if (cgroup2_need_full(r->mnt, err))
		return fail(err);
	if ((ret = fill_gateways(&r->o.rules, &r->cg)))
		return ret;
	r->plan.id = r->cg.id;
	r->plan.label.rel = r->cg.rel;
	container_id_of(r->cg.rel, r->plan.label.container);
	r->plan.rules = r->o.rules;
	if (r->o.dry_run)
		print_attach(&r->plan, true, r->o.json);
	return 0;
}

static int do_attach(struct run *r)
{
	char err[ERRLEN];

	/* the host side needs a full pass only when steering rules come or go (state_attach marks it) */
	if (state_attach(&r->st, &r->cg, &r->o.rules, err) || state_host_sync(&r->st, r->mnt, HOST_SYNC_CHECK, err))
		return fail(err);
	/* a steering rule shows whether the host's listener was found */
	state_listening(&r->st, &r->plan.rules);
	warn_existing_listeners(&r->o.rules, &r->cg);
	print_attach(&r->plan, false, r->o.json);
	return EXIT_OK;
}

static int do_detach(struct run *r)
{
	char err[ERRLEN];

	if (r->o.all) {
		state_detach_all(&r->st);
		print_detached(NULL);
		return EXIT_OK;
	}
	switch (state_detach(&r->st, r->cg.id, &r->tree, err)) {
	case 0:
		if (state_host_sync(&r->st, r->mnt, HOST_SYNC_CHANGED, err))
			return fail(err);
		print_detached(r->cg.rel);
		return EXIT_OK;
	case 1:
		errorf("detach %s: not attached", r->cg.rel);
		return EXIT_FAIL;
	default:
		return fail(err);
	}
}

static int do_list(struct run *r)
{
	struct labeler lb = { 0 };
	struct attachment *a = NULL;
	uint64_t *ids = NULL;
	char err[ERRLEN];
	int ret = EXIT_OK;
	size_t n = 0;

	if (state_attached(&r->st, &ids, &n, err))
		return fail(err);
	a = calloc(n ? n : 1, sizeof(*a));
	if (!a)
		ret = fail("list: out of memory");
	for (size_t i = 0; a && i < n && !ret; i++) {
		a[i].id = ids[i];
		label_cgroup(&lb, cgroup_rel(&r->tree, ids[i]), &a[i].label);
		if (state_rules(&r->st, ids[i], &a[i].rules, err))
			ret = fail(err);
		state_listening(&r->st, &a[i].rules);
	}
	if (!ret)
		print_list(a, n, r->o.json);
	if (!ret && !r->o.json && watch_agent_pid())
		printf("hostlo watch runs (pid %d): it keeps the label and config attachments\n", watch_agent_pid());
	free(a);
	free(ids);
	labeler_reset(&lb);
	return ret;
}

/* stats --watch: what changed in each interval, until killed (text starts after the first interval;
 * JSON starts with the counts so far). */
static int watch_stats(const struct run *r)
{
	struct stat_line *lines = NULL, *prev = NULL, *changes;
	struct labeler lb = { 0 };
	size_t m = 0, pm = 0;
	int ret;

	for (;;) {
		labeler_reset(&lb); /* the Docker names of this interval */
		if ((ret = pass(r->mnt, r->target, NULL, &lb, &lines, &m)))
			break;
		if (prev || r->o.json) {
			changes = stats_change(lines, m, prev, pm);
			if (changes)
				print_stats_interval(changes, m, r->o.watch_s, r->o.json);
			free(changes);
		}
		stat_lines_free(prev, pm);
		prev = lines;
		pm = m;
		lines = NULL;
		sleep((unsigned)r->o.watch_s);
	}
	stat_lines_free(prev, pm);
	labeler_reset(&lb);
	return ret;
}

static int do_stats(struct run *r)
{
	struct stat_line *lines = NULL;
	struct labeler lb = { 0 };
	size_t m = 0;
	int ret;

	if (r->o.watch_s)
		return watch_stats(r);
	ret = pass(r->mnt, r->target, NULL, &lb, &lines, &m);
	if (!ret && r->o.prometheus)
		print_prometheus(stdout, lines, m);
	else if (!ret)
		print_stats(lines, m, r->o.json);
	stat_lines_free(lines, m);
	labeler_reset(&lb);
	return ret;
}

/* One gc pass; with every, the counters too, as a node agent's log line. */
static int gc_pass(const struct run *r, bool every)
{
	struct stat_line *lines = NULL;
	struct labeler lb = { 0 };
	int ret, removed = 0;
	size_t m = 0;

	ret = pass(r->mnt, NULL, &removed, &lb, every ? &lines : NULL, &m);
	if (!ret)
		print_gc(removed, lines, m, every, r->o.json);
	stat_lines_free(lines, m);
	labeler_reset(&lb);
	return ret;
}

static int do_gc(struct run *r)
{
	int ret;

	if (!r->o.every_s)
		return gc_pass(r, false);
	while (!(ret = gc_pass(r, true)))
		sleep((unsigned)r->o.every_s);
	return ret;
}

static int do_trace(struct run *r)
{
	return trace_run(&r->st, r->mnt, r->target, r->o.json);
}

/* /metrics: every scrape is a command of its own, with its gc, under the lock for a moment. */
static int render_metrics(void *ctx, char **body, size_t *len)
{
	const struct run *r = ctx;
	struct stat_line *lines = NULL;
	struct labeler lb = { 0 };
	char mnt[PATH_MAX];
	size_t m = 0;
	int ret = find_cgroup2(&r->o, mnt, sizeof(mnt));

	if (!ret)
		ret = pass(mnt, NULL, NULL, &lb, &lines, &m);
	if (!ret && prometheus_text(lines, m, body, len))
		ret = EXIT_FAIL;
	stat_lines_free(lines, m);
	labeler_reset(&lb);
	return ret;
}

static int do_serve(struct run *r)
{
	return serve_run(&r->o.listen_at, render_metrics, r);
}

static int do_watch(struct run *r)
{
	return watch_run(r->mnt, r->o.config, r->o.json);
}

static int do_version(struct run *r)
{
	print_version(HOSTLO_VERSION, r->o.json);
	return EXIT_OK;
}

static int do_help(struct run *r);

static const struct verb verbs[] = {
	{ .name = "attach", .run = do_attach, .check = check_attach, .plan = plan_attach,
	  .options = "cgroup pid container self parent cgroup-root connect always real-peer bind create dry-run j v h",
	  .privileges = PRIV_LOAD, .cgroups = true, .state = STATE_CREATE,
	  .synopsis = "hostlo attach  TARGET RULE... [--create] [--dry-run] [-j]" },
	{ .name = "detach", .run = do_detach, .check = check_detach,
	  .options = "cgroup pid container self parent cgroup-root all j v h",
	  .privileges = PRIV_BPF, .cgroups = true, .state = STATE_GC,
	  .synopsis = "hostlo detach  TARGET | --all" },
	{ .name = "list", .run = do_list,
	  .options = "cgroup-root j v h",
	  .privileges = PRIV_BPF, .cgroups = true, .state = STATE_GC,
	  .synopsis = "hostlo list    [-j]" },
	{ .name = "stats", .run = do_stats, .check = check_stats,
	  .options = "cgroup pid container self parent cgroup-root prometheus watch j v h",
	  .privileges = PRIV_BPF, .cgroups = true, .state = STATE_NONE,
	  .synopsis = "hostlo stats   [TARGET] [-j | --prometheus] [--watch SECONDS]" },
	{ .name = "gc", .run = do_gc, .check = check_gc,
	  .options = "cgroup-root every j v h",
	  .privileges = PRIV_BPF, .cgroups = true, .state = STATE_NONE,
	  .synopsis = "hostlo gc      [--every SECONDS] [-j]" },
	{ .name = "trace", .run = do_trace,
	  .options = "cgroup pid container self parent cgroup-root j v h",
	  .privileges = PRIV_BPF, .cgroups = true, .state = STATE_GC,
	  .synopsis = "hostlo trace   [TARGET] [-j]" },
	{ .name = "serve", .run = do_serve, .check = check_serve,
	  .options = "listen cgroup-root v h",
	  .privileges = PRIV_BPF, .cgroups = false, .state = STATE_NONE,
	  .synopsis = "hostlo serve   [--listen ADDR:PORT]" },
	{ .name = "watch", .run = do_watch,
	  .options = "config cgroup-root j v h",
	  .privileges = PRIV_LOAD, .cgroups = true, .state = STATE_NONE,
	  .synopsis = "hostlo watch   [--config FILE] [-j]" },
	{ .name = "version", .run = do_version,
	  .options = "j v h",
	  .privileges = PRIV_NONE, .cgroups = false, .state = STATE_NONE,
	  .synopsis = "hostlo version" },
	{ .name = "help", .run = do_help,
	  .options = NULL,
	  .privileges = PRIV_NONE, .cgroups = false, .state = STATE_NONE,
	  .synopsis = "hostlo help | --help | COMMAND --help" },
};

#define NR_VERBS (sizeof(verbs) / sizeof(verbs[0]))

static int do_help(struct run *r)
{
	const char *synopses[NR_VERBS];

	(void)r;
	for (size_t i = 0; i < NR_VERBS; i++)
		synopses[i] = verbs[i].synopsis;
	usage_all(synopses, NR_VERBS);
	return EXIT_OK;
}

/* Everything a verb needs before its work, in this order: its options (--help: its usage), what they
 * alone can tell, the privileges (after the plan for attach), the cgroup2 tree and TARGET, the state. */
static int run_verb(const struct verb *v, int argc, char **argv)
{
	struct run r = { .st = { .lock_fd = -1 }, .tree = { .mount_fd = -1 } };
	int ret;

	if (!v->options)
		return v->run(&r);
	if ((ret = parse_opts(v->name, v->options, argc, argv, &r.o)))
		return ret;
	if (r.o.help) {
		usage_command(v->name, v->synopsis, v->options);
		return EXIT_OK;
	}
	if (v->check && (ret = v->check(&r.o)))
		return ret;
	errors_as_json(r.o.json);
	if (v->privileges == PRIV_BPF && (ret = check_privileges(v, &r.o)))
		return ret;
	if (v->cgroups && (ret = find_cgroups(&r)))
		return ret;
	if (v->plan && ((ret = v->plan(&r)) || r.o.dry_run))
		return ret;
	if (v->privileges == PRIV_LOAD && (ret = check_privileges(v, &r.o)))
		return ret;
	ret = open_state(v, &r);
	if (!ret)
		ret = v->run(&r);
	cgtree_free(&r.tree);
	if (r.st_opened)
		state_close(&r.st);
	return ret;
}

int main(int argc, char **argv)
{
	char err[ERRLEN];
	const char *cmd;

	if (preflight_not_setuid(err))
		return fail(err);
	while (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--verbose") == 0)) {
		verbose++;
		argv++;
		argc--;
	}
	if (argc < 2) {
		usage_error("%s", "missing COMMAND");
		return EXIT_USAGE;
	}
	cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)
		cmd = "help";
	if (strcmp(cmd, "--version") == 0)
		cmd = "version";
	for (size_t i = 0; i < NR_VERBS; i++)
		if (strcmp(cmd, verbs[i].name) == 0)
			return run_verb(&verbs[i], argc - 1, argv + 1);
	usage_error("%s: unknown command", cmd);
	return EXIT_USAGE;
}
