/*
 * watch.c: hostlo watch: keeps every container that asks (io.hostlo.* labels, or the config file)
 * attached, from before its entrypoint runs, across restarts, re-creations and engine restarts.
 *
 * Two sources, one poll() loop:
 *  - inotify IN_CREATE on the cgroup2 root and on every directory below it (the runtimes' parents:
 *    /docker, /system.slice, /libpod_parent, a --cgroup-parent): runc makes a container's cgroup at
 *    `create`, before `start` lets the entrypoint run, so attaching right then covers its first bind.
 *    What the container asks for comes from the events stream's create (cached) or, when that has
 *    not arrived yet, from /containers/json, which the engine answers while the start is under way
 *    (an inspect would wait for it to finish).
 *  - the Docker events stream: start (catches what inotify could not: a gateway that needs a
 *    process), rename (re-select), die and destroy (Podman: remove) (gc); on reconnect, a full
 *    reconcile.
 * Attachments record their origin; the agent changes only those with origin label or config.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
#include "attach.h"
#include "cgtree.h"
#include "container.h"
#include "docker.h"
#include "hostside.h"
#include "netns.h"
#include "preflight.h"
#include "report.h"
#include "ruletab.h"
#include "state.h"
#include "target.h"
#include "util.h"
#include "watch.h"
#include "watchconf.h"

#define BACKOFF_MIN_S 0.25
#define BACKOFF_MAX_S 5.0
#define GC_DELAY_S 1.0  /* after die/destroy: the runtime removes the cgroup a moment after the event */

struct wdir {
	int wd;
	char rel[PATH_MAX];
};

/* A container Docker told about: its labels at IN_CREATE time, and the last error said about it. */
struct known {
	struct docker_ctr c;
	char err[ERRLEN];
};

struct watch {
	const char *mnt;
	char config_path[PATH_MAX];
	bool config_given, json;
	struct watchconf conf;
	int ino_fd, sig_fd, pid_fd;
	struct wdir *dirs;
	size_t ndirs;
	struct docker_events ev;
	double ev_retry_at, backoff;
	bool ev_down_logged;
	struct known *known;
	size_t nknown;
	double gc_at;              /* 0: no gc due */
	bool stop;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One log line: text, or a JSON object with time and event (what the fields of o say). Takes o. */
static void wlog(struct watch *w, const char *event, json_object *o, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void wlog(struct watch *w, const char *event, json_object *o, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (w->json) {
		struct timespec ts;
		char when[40];
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%03ldZ", ts.tv_nsec / 1000000);
		if (!o)
			o = json_object_new_object();
		json_object_object_add(o, "time", json_object_new_string(when));
		json_object_object_add(o, "event", json_object_new_string(event));
		json_object_object_add(o, "message", json_object_new_string(msg));
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	} else {
		puts(msg);
	}
	json_object_put(o);
	fflush(stdout);
}

static json_object *ctr_json(const struct docker_ctr *c, const char *rel)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "container", json_object_new_string(c->id));
	json_object_object_add(o, "name", json_object_new_string(c->name));
	json_object_object_add(o, "cgroup", rel ? json_object_new_string(rel) : NULL);
	return o;
}

/* "hostlo: watch: container NAME: ...": the container is left as it is. */
static void werror(struct watch *w, const struct docker_ctr *c, const char *what)
{
	json_object *o = c ? ctr_json(c, NULL) : json_object_new_object();

	json_object_object_add(o, "error", json_object_new_string(what));
	wlog(w, "error", o, "hostlo: watch: %s", what);
}

static struct known *known_find(struct watch *w, const char *id)
{
	for (size_t i = 0; i < w->nknown; i++)
		if (strcmp(w->known[i].c.id, id) == 0)
			return &w->known[i];
	return NULL;
}

static void known_forget(struct watch *w, const char *id)
{
	struct known *k = known_find(w, id);

	if (!k)
		return;
	docker_ctr_clear(&k->c);
	*k = w->known[--w->nknown];
}

static void known_free(struct watch *w)
{
	for (size_t i = 0; i < w->nknown; i++)
		docker_ctr_clear(&w->known[i].c);
	free(w->known);
}

/* A bad label or config value is said once per container (and again if it changes), not at every event. */
static void ctr_error(struct watch *w, const struct docker_ctr *c, const char *what)
{
	struct known *k = known_find(w, c->id);

	if (k && strcmp(k->err, what) == 0)
		return;
	if (k)
		snprintf(k->err, sizeof(k->err), "%s", what);
	werror(w, c, what);
}

/* Asks Docker about one container (any state) and remembers it; NULL when Docker does not know it. */
static struct docker_ctr *known_refresh(struct watch *w, const char *id)
{
	struct docker_ctr *list;
	struct known *k, *grown;
	char err[ERRLEN];
	size_t n;

	if (docker_list(true, id, &list, &n, err))
		return NULL;
	if (n != 1) {
		docker_ctrs_free(list, n);
		return NULL;
	}
	k = known_find(w, id);
	if (k) {
		docker_ctr_clear(&k->c);
	} else {
		grown = realloc(w->known, (w->nknown + 1) * sizeof(*w->known));
		if (!grown) {
			docker_ctrs_free(list, n);
			return NULL;
		}
		w->known = grown;
		k = &w->known[w->nknown++];
		k->err[0] = '\0';
	}
	docker_ctr_copy(&k->c, &list[0]);
	docker_ctrs_free(list, n);
	return &k->c;
}

/* Rules without =ADDR go to the container's gateway: its network's (known before it runs), else the
 * default route of a process in it. 0, 1 when there is no process to ask yet, -1 with err. */
static int fill_gateways(const struct docker_ctr *c, const struct cgroup *cg, struct ruleset *rs, char *err)
{
	uint32_t gw = 0;
	bool have = false;

	for (int i = 0; i < rs->n; i++) {
		struct rule *r = &rs->r[i];

		if (r->has_addr)
			continue;
		if (!have) {
			int rc = docker_network_gateway(c->network, &gw, err), pid;

			if (rc < 0)
				return -1;
			if (rc > 0) {
				pid = cgroup_some_pid(cg->path);
				if (!pid)
					return 1;
				if (default_gateway(&real_sysenv, pid, &gw, err))
					return -1;
			}
			have = true;
		}
		r->addr = gw;
		r->has_addr = true;
		if (r->proto == PROTO_TCP && kernel_has_host_side())
			r->host_ifindex = local_ifindex(gw);
	}
	return 0;
}

/* Whether two rule sets say the same (the host-listener counts of a read-back set aside). */
static bool same_rules(const struct ruleset *a, const struct ruleset *b)
{
	if (a->n != b->n || a->origin != b->origin)
		return false;
	for (int i = 0; i < a->n; i++) {
		const struct rule *x = &a->r[i], *y = &b->r[i];

		if (x->kind != y->kind || x->proto != y->proto || x->always != y->always || x->port_min != y->port_min ||
		    x->port_max != y->port_max || x->addr != y->addr || x->to_port != y->to_port ||
		    x->host_ifindex != y->host_ifindex)
			return false;
	}
	return true;
}

/* The origin of what is attached to id now; -1: nothing is. */
static int current_origin(struct state *st, uint64_t id)
{
	struct ruleset now;
	char err[ERRLEN];

	return st->present && state_rules(st, id, &now, err) == 0 ? now.origin : -1;
}

/* Sets cg's rules as `hostlo attach` does; leaves an attachment made by hand alone. */
static void attach(struct watch *w, const struct docker_ctr *c, const struct cgroup *cg, const struct ruleset *rs,
		   double since)
{
	struct state st = { .lock_fd = -1 };
	char err[ERRLEN], after[4096], what[ERRLEN + PATH_MAX + 300];
	struct ruleset before;
	struct timespec done;
	bool was;

	if (state_open(&st, OPEN_CREATE, err) || state_repair_attach(&st, cg->id, err) ||
	    (!st.present && (state_close(&st), state_open(&st, OPEN_CREATE, err))))
		goto fail;
	was = state_rules(&st, cg->id, &before, err) == 0;
	if (was && before.origin == RULE_ORIGIN_CLI) {
		state_close(&st);
		return; /* attached by hand: never the agent's to change */
	}
	if (state_attach(&st, cg, rs, err) || state_host_sync(&st, w->mnt, HOST_SYNC_CHECK, err))
		goto fail;
	clock_gettime(CLOCK_MONOTONIC, &done); /* the rules are in place */
	state_close(&st);
	if (was && same_rules(&before, rs))
		return; /* already so: nothing to say */
	ruleset_text(rs, after, sizeof(after));

	json_object *o = ctr_json(c, cg->rel);
	char ms[64] = "";

	json_object_object_add(o, "origin", json_object_new_string(rule_origin_name(rs->origin)));
	json_object_object_add(o, "rules", ruleset_json(rs));
	json_object_object_add(o, "mono_ns", json_object_new_int64((int64_t)done.tv_sec * 1000000000 + done.tv_nsec));
	if (since > 0) {
		double d = ((double)done.tv_sec + (double)done.tv_nsec / 1e9 - since) * 1e3;

		json_object_object_add(o, "latency_ms", json_object_new_double(d));
		snprintf(ms, sizeof(ms), " (%.1f ms after its cgroup appeared)", d);
	}
	wlog(w, "attached", o, "watch: attached %s (%s) from its %s: %s%s", c->name, cg->rel,
	     rule_origin_name(rs->origin), after, ms);
	return;
fail:
	state_close(&st);
	snprintf(what, sizeof(what), "container %s: attach %s: %s", c->name, cg->rel, err);
	ctr_error(w, c, what);
}

static void detach(struct watch *w, const char *name, const char *cid, uint64_t id, const char *rel, const char *why)
{
	struct state st = { .lock_fd = -1 };
	char err[ERRLEN], what[ERRLEN + PATH_MAX + 300];
	json_object *o;

	if (state_open(&st, OPEN_EXISTING, err) || state_detach(&st, id, NULL, err) < 0 ||
	    state_host_sync(&st, w->mnt, HOST_SYNC_CHANGED, err)) {
		state_close(&st);
		snprintf(what, sizeof(what), "container %s: detach %s: %s", name, rel, err);
		werror(w, NULL, what);
		return;
	}
	state_close(&st);
	o = json_object_new_object();
	json_object_object_add(o, "container", cid ? json_object_new_string(cid) : NULL);
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "cgroup", json_object_new_string(rel));
	json_object_object_add(o, "reason", json_object_new_string(why));
	wlog(w, "detached", o, "watch: detached %s (%s): %s", name, rel, why);
}

/*
 * Makes c's cgroup carry what it asks for. rel: its cgroup when known (inotify), else found in the
 * tree; since: when inotify saw the cgroup appear (0: not from inotify).
 */
static void apply(struct watch *w, const struct docker_ctr *c, const char *rel, double since)
{
	struct watch_ctr wc = { .id = c->id, .name = c->name, .image = c->image, .labels = c->labels };
	char err[ERRLEN], found[PATH_MAX], path[PATH_MAX * 2], what[ERRLEN + 300];
	struct ruleset rs;
	struct cgtree tree;
	struct cgroup cg;
	int rc = watchconf_rules(&w->conf, &wc, &rs, err);

	if (rc < 0) {
		ctr_error(w, c, err);
		return;
	}
	if (!rel) {
		if (cgtree_load(&tree, w->mnt, err))
			goto fail;
		rc = container_cgroup(&tree, w->mnt, c->id, found, sizeof(found), err) ? -1 : rc;
		cgtree_free(&tree);
		if (rc < 0)
			return; /* not running (any more): its next start brings it back */
		rel = found;
	}
	snprintf(path, sizeof(path), "%s%s", strcmp(w->mnt, "/") ? w->mnt : "", rel);
	if (cgroup_fill(w->mnt, path, &cg, err))
		return; /* gone already */
	if (rc == 0) {
		struct state st = { .lock_fd = -1 };
		int origin = -1;

		/* it asks for nothing (now): an attachment the agent made goes */
		if (state_open(&st, OPEN_EXISTING, err) == 0)
			origin = current_origin(&st, cg.id);
		state_close(&st);
		if (origin == RULE_ORIGIN_LABEL || origin == RULE_ORIGIN_CONFIG)
			detach(w, c->name, c->id, cg.id, cg.rel, "it asks for nothing now");
		return;
	}
	rc = fill_gateways(c, &cg, &rs, err);
	if (rc < 0)
		goto fail;
	if (rc > 0) {
		/* no network of its own and no process to ask yet: the rules that need no gateway now (binds
		 * before the app's first), the whole set at its start event */
		int n = 0;

		for (int i = 0; i < rs.n; i++)
			if (rs.r[i].has_addr)
				rs.r[n++] = rs.r[i];
		rs.n = n;
		if (!n)
			return;
	}
	attach(w, c, &cg, &rs, since);
	return;
fail:
	snprintf(what, sizeof(what), "container %s: %s", c->name, err);
	ctr_error(w, c, what);
}

/* Removes the attachments of cgroups that no longer exist (whoever made them), as every command does. */
static void gc(struct watch *w)
{
	struct state st = { .lock_fd = -1 };
	struct cgtree tree = { 0 };
	char err[ERRLEN];
	int n = 0;

	w->gc_at = 0;
	if (state_open(&st, OPEN_EXISTING, err) || cgtree_open(&tree, w->mnt, err) ||
	    (n = state_gc(&st, &tree, false, false, err)) < 0 ||
	    state_host_sync(&st, w->mnt, n > 0 ? HOST_SYNC_CHANGED : HOST_SYNC_CHECK, err)) {
		werror(w, NULL, err);
		n = 0;
	}
	cgtree_free(&tree);
	state_close(&st);
	if (n > 0) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "removed", json_object_new_int(n));
		wlog(w, "gc", o, "watch: gc: removed %d attachment%s of cgroups that no longer exist", n, n == 1 ? "" : "s");
	}
}

/* Whether the container behind an attachment still asks for rules (the running list is Docker's). */
static bool still_asks(struct watch *w, const struct docker_ctr *running, size_t n, const char *cid)
{
	for (size_t i = 0; i < n; i++) {
		struct watch_ctr wc = { .id = running[i].id, .name = running[i].name, .image = running[i].image,
					.labels = running[i].labels };
		struct ruleset rs;
		char err[ERRLEN];

		if (strcmp(running[i].id, cid) == 0)
			return watchconf_rules(&w->conf, &wc, &rs, err) != 0; /* a bad value: left as it is */
	}
	return false;
}

/* The agent's attachments whose container is gone or asks for nothing now go. */
static void drop_unwanted(struct watch *w, const struct docker_ctr *running, size_t n)
{
	struct state st = { .lock_fd = -1 };
	struct cgtree tree = { 0 };
	struct { uint64_t id; char rel[PATH_MAX]; char cid[CONTAINER_ID_LEN + 1]; } *drop = NULL;
	uint64_t *ids = NULL;
	size_t nids = 0, nd = 0;
	char err[ERRLEN];

	if (state_open(&st, OPEN_EXISTING, err) || !st.present || cgtree_open(&tree, w->mnt, err) ||
	    state_attached(&st, &ids, &nids, err)) {
		if (st.present)
			werror(w, NULL, err);
		goto out;
	}
	drop = calloc(nids ? nids : 1, sizeof(*drop));
	for (size_t i = 0; drop && i < nids; i++) {
		const struct cgnode *node = cgtree_find(&tree, ids[i]);
		struct ruleset rs;

		/* gone (gc's part), or not nameable from here (outside the mount's view): left as it is */
		if (!node || !node->rel || node->hidden || state_rules(&st, ids[i], &rs, err) ||
		    rs.origin == RULE_ORIGIN_CLI)
			continue;
		drop[nd].id = ids[i];
		snprintf(drop[nd].rel, sizeof(drop[nd].rel), "%s", node->rel);
		if (!container_id_of(node->rel, drop[nd].cid))
			drop[nd].cid[0] = '\0';
		if (!drop[nd].cid[0] || !still_asks(w, running, n, drop[nd].cid))
			nd++;
	}
out:
	cgtree_free(&tree);
	state_close(&st); /* detach takes the lock itself */
	for (size_t i = 0; i < nd; i++) {
		const struct known *k = drop[i].cid[0] ? known_find(w, drop[i].cid) : NULL;

		detach(w, k ? k->c.name : drop[i].cid[0] ? drop[i].cid : drop[i].rel, drop[i].cid[0] ? drop[i].cid : NULL,
		       drop[i].id, drop[i].rel, "its container is gone or asks for nothing now");
	}
	free(drop);
	free(ids);
}

/* Docker's running containers against what is attached: at start, on reconnect, on SIGHUP. */
static void reconcile(struct watch *w)
{
	struct docker_ctr *running;
	char err[ERRLEN];
	size_t n;

	if (docker_list(false, NULL, &running, &n, err)) {
		werror(w, NULL, err); /* nothing is removed on a guess: the next reconnect reconciles */
		return;
	}
	gc(w);
	drop_unwanted(w, running, n);
	for (size_t i = 0; i < n; i++) {
		struct docker_ctr *c = known_refresh(w, running[i].id);

		apply(w, c ? c : &running[i], NULL, 0);
	}
	docker_ctrs_free(running, n);
}

/* A container's cgroup appeared (or is found in a new parent): attach what it asks for, now. */
static void handle_cgroup(struct watch *w, const char *rel, double since)
{
	const char *base = strrchr(rel, '/');
	char id[CONTAINER_ID_LEN + 1];
	struct known *k;
	struct docker_ctr *c;

	if (!container_id_of(base ? base + 1 : rel, id))
		return;
	k = known_find(w, id);
	c = k ? &k->c : known_refresh(w, id);
	if (c)
		apply(w, c, rel, since); /* else not Docker's (another runtime's, or the engine is down) */
}

static void watch_dir(struct watch *w, const char *rel)
{
	char path[PATH_MAX * 2];
	struct wdir *grown;
	int wd;

	snprintf(path, sizeof(path), "%s%s", strcmp(w->mnt, "/") ? w->mnt : "", strcmp(rel, "/") ? rel : "/");
	wd = inotify_add_watch(w->ino_fd, path, IN_CREATE | IN_ONLYDIR | IN_DONT_FOLLOW);
	if (wd < 0)
		return; /* gone already */
	for (size_t i = 0; i < w->ndirs; i++)
		if (w->dirs[i].wd == wd)
			return;
	grown = realloc(w->dirs, (w->ndirs + 1) * sizeof(*w->dirs));
	if (!grown)
		return;
	w->dirs = grown;
	w->dirs[w->ndirs].wd = wd;
	snprintf(w->dirs[w->ndirs++].rel, sizeof(w->dirs[0].rel), "%s", rel);
}

/* rel's subdirectories: each watched (top: the root's), or each handled as a container's cgroup. */
static void scan_dir(struct watch *w, const char *rel, bool top, double since)
{
	char path[PATH_MAX * 2], sub[PATH_MAX + NAME_MAX + 2];
	struct dirent *d;
	DIR *dir;

	snprintf(path, sizeof(path), "%s%s", strcmp(w->mnt, "/") ? w->mnt : "", strcmp(rel, "/") ? rel : "/");
	dir = opendir(path);
	if (!dir)
		return;
	while ((d = readdir(dir))) {
		if (d->d_type != DT_DIR || d->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", strcmp(rel, "/") ? rel : "", d->d_name);
		if (top)
			watch_dir(w, sub);
		else
			handle_cgroup(w, sub, since);
	}
	closedir(dir);
}

static const struct wdir *dir_of(struct watch *w, int wd)
{
	for (size_t i = 0; i < w->ndirs; i++)
		if (w->dirs[i].wd == wd)
			return &w->dirs[i];
	return NULL;
}

static void inotify_ready(struct watch *w)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t len;

	while ((len = read(w->ino_fd, buf, sizeof(buf))) > 0) {
		double since = now_s();

		for (char *p = buf; p < buf + len;) {
			const struct inotify_event *e = (const struct inotify_event *)p;
			const struct wdir *d = dir_of(w, e->wd);
			char rel[PATH_MAX + NAME_MAX + 2];

			p += sizeof(*e) + e->len;
			if (e->mask & IN_Q_OVERFLOW) {
				reconcile(w); /* events were lost: look at everything */
				continue;
			}
			if (e->mask & IN_IGNORED) {
				if (d)
					*(struct wdir *)d = w->dirs[--w->ndirs];
				continue;
			}
			if (!d || !(e->mask & IN_CREATE) || !(e->mask & IN_ISDIR) || !e->len)
				continue;
			snprintf(rel, sizeof(rel), "%s/%s", strcmp(d->rel, "/") ? d->rel : "", e->name);
			if (strcmp(d->rel, "/") == 0) {
				/* a new runtime parent: watch it, then take what was made in it before the watch */
				watch_dir(w, rel);
				scan_dir(w, rel, false, since);
			} else {
				handle_cgroup(w, rel, since);
			}
		}
	}
}

/* One event of the Docker stream. */
static void docker_event(json_object *e, void *ctx)
{
	struct watch *w = ctx;
	json_object *actor, *v;
	const char *action, *id;
	struct docker_ctr *c;

	if (!json_object_object_get_ex(e, "Action", &v) || !(action = json_object_get_string(v)) ||
	    !json_object_object_get_ex(e, "Actor", &actor) || !json_object_object_get_ex(actor, "ID", &v) ||
	    !(id = json_object_get_string(v)) || strlen(id) != CONTAINER_ID_LEN)
		return;
	if (strcmp(action, "create") == 0) {
		known_refresh(w, id); /* its labels, before runc makes its cgroup */
	} else if (strcmp(action, "start") == 0 || strcmp(action, "rename") == 0) {
		c = known_refresh(w, id);
		if (c)
			apply(w, c, NULL, 0);
	} else if (strcmp(action, "die") == 0 || strcmp(action, "destroy") == 0 || strcmp(action, "remove") == 0) {
		/* Docker says destroy when a container is removed, Podman's compatible API says remove */
		if (strcmp(action, "die") != 0)
			known_forget(w, id);
		w->gc_at = now_s() + GC_DELAY_S;
	}
}

static void events_connect(struct watch *w)
{
	char err[ERRLEN];

	if (docker_events_open(&w->ev, err)) {
		if (!w->ev_down_logged)
			werror(w, NULL, err);
		w->ev_down_logged = true;
		w->ev_retry_at = now_s() + w->backoff;
		w->backoff = w->backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : w->backoff * 2;
		return;
	}
	w->backoff = BACKOFF_MIN_S;
	w->ev_down_logged = false;
	w->ev_retry_at = 0;
	wlog(w, "connected", NULL, "watch: Docker at %s: following its events", docker_socket(err));
	reconcile(w); /* what happened while nobody listened */
}

static void events_ready(struct watch *w)
{
	char err[ERRLEN] = "the engine closed the events stream";
	int rc = docker_events_read(&w->ev, docker_event, w, err);

	if (rc == 0)
		return;
	docker_events_close(&w->ev);
	wlog(w, "disconnected", NULL, "watch: Docker: %s; reconnecting", err);
	w->ev_retry_at = now_s() + w->backoff;
}

static int load_config(struct watch *w, char *err)
{
	struct watchconf next;

	if (watchconf_load(&next, w->config_path, !w->config_given, err))
		return -1;
	watchconf_free(&w->conf);
	w->conf = next;
	return 0;
}

static void signal_ready(struct watch *w)
{
	struct signalfd_siginfo si;
	char err[ERRLEN];

	while (read(w->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo != SIGHUP) {
			wlog(w, "stopped", NULL, "watch: stopping on %s; attachments stay", strsignal((int)si.ssi_signo));
			w->stop = true;
			return;
		}
		if (load_config(w, err)) {
			werror(w, NULL, err); /* the config in force stays */
			continue;
		}
		wlog(w, "reloaded", NULL, "watch: config %s reloaded", w->config_path);
		reconcile(w);
	}
}

static int poll_timeout(const struct watch *w)
{
	double next = 0, t = now_s();

	if (w->ev.fd < 0)
		next = w->ev_retry_at;
	if (w->gc_at && (!next || w->gc_at < next))
		next = w->gc_at;
	if (!next)
		return -1;
	return next <= t ? 0 : (int)((next - t) * 1e3) + 1;
}

/* One agent per bpffs, and list can tell it runs: a pid file it holds locked while it runs. Keyed on the
 * bpffs the environment resolves to (canonical when it exists: "/x/", "/./x" and a symlink to /x are
 * /x), not on how it was spelled: /run/hostlo-watch.pid for /sys/fs/bpf, else beside that mount (a
 * bpffs holds no regular file). (watch.h) */
void watch_pid_path(char *buf, size_t len, char *bpffs, size_t blen)
{
	char real[PATH_MAX];
	size_t l;

	snprintf(bpffs, blen, "%s", realpath(state_bpffs_path(), real) ? real : state_bpffs_path());
	for (l = strlen(bpffs); l > 1 && bpffs[l - 1] == '/'; l--)
		bpffs[l - 1] = '\0';
	if (strcmp(bpffs, "/sys/fs/bpf") == 0)
		snprintf(buf, len, "/run/hostlo-watch.pid");
	else
		snprintf(buf, len, "%s.watch.pid", strcmp(bpffs, "/") ? bpffs : "");
}

static int read_pid(int fd)
{
	char buf[32] = "";

	return pread(fd, buf, sizeof(buf) - 1, 0) > 0 ? atoi(buf) : 0;
}

int watch_agent_pid(void)
{
	char path[PATH_MAX + 16], bpffs[PATH_MAX];
	int fd, pid = 0;

	watch_pid_path(path, sizeof(path), bpffs, sizeof(bpffs));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK)
		pid = read_pid(fd);
	close(fd);
	return pid;
}

static int claim(struct watch *w, char *err)
{
	char path[PATH_MAX + 16], bpffs[PATH_MAX], pid[32];

	watch_pid_path(path, sizeof(path), bpffs, sizeof(bpffs));
	w->pid_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (w->pid_fd < 0)
		return seterr(err, "watch: %s: %s", path, strerror(errno));
	if (flock(w->pid_fd, LOCK_EX | LOCK_NB) != 0)
		return seterr(err, "watch: another agent runs for %s (pid %d)", bpffs, read_pid(w->pid_fd));
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(w->pid_fd, 0) != 0 || pwrite(w->pid_fd, pid, strlen(pid), 0) != (ssize_t)strlen(pid))
		return seterr(err, "watch: %s: %s", path, strerror(errno));
	return 0;
}

static int setup(struct watch *w, char *err)
{
	struct state st = { .lock_fd = -1 };
	sigset_t set;

	if (cgroup2_need_full(w->mnt, err) || claim(w, err) || load_config(w, err))
		return -1;
	/* bpffs and its lock reachable: else every attach would fail, one log line each */
	if (state_open(&st, OPEN_EXISTING, err))
		return -1;
	state_close(&st);
	w->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ino_fd < 0)
		return seterr(err, "watch: inotify: %s", strerror(errno));
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN); /* an engine that goes away mid-request is an error to log, not an exit */
	w->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (w->sig_fd < 0)
		return seterr(err, "watch: signalfd: %s", strerror(errno));
	/* the parents first, then Docker: a container made in between is seen by both, never by neither */
	watch_dir(w, "/");
	if (!w->ndirs)
		return seterr(err, "watch: inotify on %s: %s", w->mnt, strerror(errno));
	scan_dir(w, "/", true, 0);
	return 0;
}

int watch_run(const char *mnt, const char *config, bool json)
{
	struct watch w = { .mnt = mnt, .json = json, .ino_fd = -1, .sig_fd = -1, .pid_fd = -1, .backoff = BACKOFF_MIN_S,
			   .config_given = config != NULL };
	char err[ERRLEN];
	int ret = EXIT_OK;

	w.ev.fd = -1;
	snprintf(w.config_path, sizeof(w.config_path), "%s", config ? config : WATCH_CONFIG_DEFAULT);
	if (setup(&w, err)) {
		errorf("%s", err);
		ret = EXIT_FAIL;
		goto out;
	}
	wlog(&w, "started", NULL, "watch: started: config %s (%zu entries), %zu cgroup parents watched under %s",
	     w.config_path, w.conf.entries ? json_object_array_length(w.conf.entries) : 0, w.ndirs - 1, mnt);
	events_connect(&w);
	while (!w.stop) {
		struct pollfd p[3] = {
			{ .fd = w.sig_fd, .events = POLLIN },
			{ .fd = w.ino_fd, .events = POLLIN },
			{ .fd = w.ev.fd, .events = POLLIN },
		};

		if (poll(p, 3, poll_timeout(&w)) < 0 && errno != EINTR) {
			errorf("watch: poll: %s", strerror(errno));
			ret = EXIT_FAIL;
			break;
		}
		if (p[0].revents)
			signal_ready(&w);
		if (p[1].revents)
			inotify_ready(&w);
		if (w.ev.fd >= 0 && p[2].revents)
			events_ready(&w);
		if (w.ev.fd < 0 && now_s() >= w.ev_retry_at)
			events_connect(&w);
		if (w.gc_at && now_s() >= w.gc_at)
			gc(&w);
	}
out:
	docker_events_close(&w.ev);
	known_free(&w);
	watchconf_free(&w.conf);
	free(w.dirs);
	if (w.ino_fd >= 0)
		close(w.ino_fd);
	if (w.sig_fd >= 0)
		close(w.sig_fd);
	if (w.pid_fd >= 0)
		close(w.pid_fd); /* the file stays: a stale one is unlocked, so nobody takes it for an agent */
	return ret;
}
