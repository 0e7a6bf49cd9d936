/* trace.c: `hostlo trace`: one line per rewrite as it happens, from the programs' ring buffer. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include <json-c/json.h>
#include "container.h"
#include "counters.h"
#include "trace.h"
#include "util.h"

struct tracer {
	const char *mnt;
	const struct cgroup *filter;   /* NULL: every event */
	bool json;
	struct cgtree tree;
	struct docker_names names;
	time_t tree_loaded;
	__s64 mono_to_real_ns;         /* bpf_ktime_get_ns() is CLOCK_MONOTONIC */
	unsigned long events;
};

static volatile sig_atomic_t stopping;

static void stop(int sig)
{
	(void)sig;
	stopping = 1;
}

static __s64 ns_of(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return (__s64)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* A cgroup created after the trace started (a new container) is found by reading the tree again. */
static const char *path_of(struct tracer *t, __u64 id)
{
	const struct cgnode *n = cgtree_find(&t->tree, id);
	char err[ERRLEN];

	if (!n && time(NULL) != t->tree_loaded) {
		cgtree_free(&t->tree);
		if (cgtree_load(&t->tree, t->mnt, err) == 0) {
			docker_names_free(&t->names);
			docker_names_load(&t->names);
		}
		t->tree_loaded = time(NULL);
		n = cgtree_find(&t->tree, id);
	}
	return n ? n->rel : "(gone)";
}

static bool wanted(struct tracer *t, const struct hostlo_event *e, const char *rel)
{
	size_t n;

	if (!t->filter || e->attach_id == t->filter->id || e->cgroup_id == t->filter->id)
		return true;
	n = strlen(t->filter->rel);
	return strncmp(rel, t->filter->rel, n) == 0 && (rel[n] == '/' || n == 1);
}

static const char *orig_addr(__u8 orig)
{
	return orig == HOSTLO_ORIG_LO6 ? "[::1]" : orig == HOSTLO_ORIG_LO4_MAPPED ? "[::ffff:127.0.0.1]" : "127.0.0.1";
}

static int on_event(void *ctx, void *data, size_t size)
{
	static const char *const kinds[] = { [HOSTLO_EV_REDIRECTED] = "redirect",
					     [HOSTLO_EV_KEPT_LOCAL] = "kept_local",
					     [HOSTLO_EV_BIND_REWRITTEN] = "bind",
					     [HOSTLO_EV_PEER_LOCAL] = "peer_local" };
	struct tracer *t = ctx;
	const struct hostlo_event *e = data;
	char from[64], to[64], addr[INET_ADDRSTRLEN], when[32], comm[17], id[CONTAINER_ID_LEN + 1] = "";
	const char *rel, *name = NULL, *kind;
	time_t secs;
	__s64 real;

	if (size < sizeof(*e) || e->kind < HOSTLO_EV_REDIRECTED || e->kind > HOSTLO_EV_PEER_LOCAL)
		return 0;
	rel = path_of(t, e->cgroup_id);
	if (!wanted(t, e, rel))
		return 0;
	if (container_id_of(rel, id))
		name = docker_name(&t->names, id);
	kind = kinds[e->kind];
	snprintf(comm, sizeof(comm), "%.16s", e->comm);
	snprintf(from, sizeof(from), "%s:%u", orig_addr(e->orig), ntohs(e->orig_port));
	inet_ntop(AF_INET, &e->to_addr, addr, sizeof(addr));
	if (e->kind == HOSTLO_EV_PEER_LOCAL) { /* the host service (pid, comm) sees the container's client as local */
		snprintf(from, sizeof(from), "%s:%u", addr, ntohs(e->to_port));
		snprintf(to, sizeof(to), "127.0.0.1:%u", ntohs(e->orig_port));
	} else if (e->kind == HOSTLO_EV_KEPT_LOCAL)
		snprintf(to, sizeof(to), "kept local");
	else if (e->kind == HOSTLO_EV_BIND_REWRITTEN && e->orig == HOSTLO_ORIG_LO6)
		snprintf(to, sizeof(to), "[::]:%u", ntohs(e->to_port));
	else
		snprintf(to, sizeof(to), "%s%s%s:%u", e->family6 ? "[::ffff:" : "", addr, e->family6 ? "]" : "",
			 ntohs(e->to_port));
	real = (__s64)e->ts_ns + t->mono_to_real_ns;
	secs = (time_t)(real / 1000000000);
	strftime(when, sizeof(when), "%H:%M:%S", localtime(&secs));
	snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%03lld", (long long)(real / 1000000 % 1000));
	t->events++;
	if (t->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "time_ns", json_object_new_int64(real));
		json_object_object_add(o, "cgroup", json_object_new_string(rel));
		json_object_object_add(o, "cgroup_id", json_object_new_uint64(e->cgroup_id));
		json_object_object_add(o, "container", id[0] ? json_object_new_string(id) : NULL);
		json_object_object_add(o, "name", name ? json_object_new_string(name) : NULL);
		json_object_object_add(o, "pid", json_object_new_int((int)e->pid));
		json_object_object_add(o, "comm", json_object_new_string(comm));
		json_object_object_add(o, "event", json_object_new_string(kind));
		json_object_object_add(o, "proto", json_object_new_string(e->proto == IPPROTO_UDP ? "udp" : "tcp"));
		json_object_object_add(o, "from", json_object_new_string(from));
		json_object_object_add(o, "to", json_object_new_string(to));
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		printf("%s %-12.12s %-16s %7u %-15s %-10s %s %s -> %s\n", when, id[0] ? id : "-", rel, e->pid, comm, kind,
		       e->proto == IPPROTO_UDP ? "udp" : "tcp", from, to);
	}
	fflush(stdout);
	return 0;
}

int trace_run(struct state *st, const char *mnt, const struct cgroup *filter, bool json)
{
	struct sigaction sa = { .sa_handler = stop };
	struct tracer t = { .mnt = mnt, .filter = filter, .json = json };
	struct ring_buffer *rb = NULL;
	char err[ERRLEN];
	__u64 drops0, drops;
	int events_fd, ret = EXIT_FAIL;

	if (!st->present) {
		errorf("trace: nothing is attached");
		return EXIT_FAIL;
	}
	/* the lock is held only to count this tracer in and out, never while tracing */
	events_fd = dup(st->events_fd);
	if (events_fd < 0 || state_tracers(st, +1, err)) {
		errorf("%s", events_fd < 0 ? "trace: dup" : err);
		return EXIT_FAIL;
	}
	drops0 = state_drops(st);
	state_close(st);

	t.mono_to_real_ns = ns_of(CLOCK_REALTIME) - ns_of(CLOCK_MONOTONIC);
	if (cgtree_load(&t.tree, mnt, err) == 0)
		docker_names_load(&t.names);
	t.tree_loaded = time(NULL);
	rb = ring_buffer__new(events_fd, on_event, &t, NULL);
	if (!rb) {
		errorf("trace: ring buffer: %s", strerror(errno));
		goto out;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fprintf(stderr, "hostlo: tracing every rewrite%s%s (Ctrl-C to stop)\n", filter ? " under " : "",
		filter ? filter->rel : "");
	while (!stopping) {
		int n = ring_buffer__poll(rb, 200);

		if (n < 0 && n != -EINTR) {
			errorf("trace: ring buffer: %s", strerror(-n));
			goto out;
		}
	}
	ring_buffer__consume(rb);
	ret = EXIT_OK;
out:
	ring_buffer__free(rb);
	close(events_fd);
	if (state_open(st, OPEN_EXISTING, err) == 0 && st->present) {
		drops = state_drops(st);
		state_tracers(st, -1, err);
		fprintf(stderr, "hostlo: trace: %lu events, %llu dropped\n", t.events,
			(unsigned long long)(drops - drops0));
	}
	state_close(st);
	cgtree_free(&t.tree);
	docker_names_free(&t.names);
	return ret;
}
