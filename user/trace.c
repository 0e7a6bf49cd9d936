/* trace.c: `hostlo trace`: one line per rewrite as it happens, from the programs' ring buffer. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include "counters.h"
#include "label.h"
#include "report.h"
#include "trace.h"
#include "util.h"

struct tracer {
	const char *mnt;
	const struct cgroup *filter;   /* NULL: every event */
	bool json;
	struct cgtree tree;
	struct labeler labeler;
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

/* A cgroup created after the trace started (a new container) is found by reading the tree again, at
 * most once a second; the Docker names are asked again with it. */
static const char *path_of(struct tracer *t, __u64 id)
{
	char err[ERRLEN];

	if (!cgtree_find(&t->tree, id) && time(NULL) != t->tree_loaded) {
		cgtree_free(&t->tree);
		if (cgtree_load(&t->tree, t->mnt, err) == 0)
			labeler_reset(&t->labeler);
		t->tree_loaded = time(NULL);
	}
	return cgroup_rel(&t->tree, id);
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct tracer *t = ctx;
	const struct hostlo_event *e = data;
	struct cgroup_label l;
	const char *rel;

	if (size < sizeof(*e) || e->kind < HOSTLO_EV_REDIRECTED || e->kind > HOSTLO_EV_PEER_LOCAL)
		return 0;
	rel = path_of(t, e->cgroup_id);
	if (t->filter && !in_target(t->filter, e->cgroup_id, e->attach_id, rel))
		return 0;
	label_cgroup(&t->labeler, rel, &l);
	t->events++;
	print_event(e, &l, (long long)((__s64)e->ts_ns + t->mono_to_real_ns), t->json);
	return 0;
}

/* Counts this tracer in under the lock, then lets the lock go: never held while tracing. Returns a
 * dup of the ring buffer's fd, or -1 after an error message. */
static int count_in(struct state *st, __u64 *drops0)
{
	char err[ERRLEN];
	int events_fd;

	if (!st->present) {
		errorf("trace: nothing is attached");
		return -1;
	}
	events_fd = dup(st->events_fd);
	if (events_fd < 0 || state_tracers(st, +1, err)) {
		errorf("%s", events_fd < 0 ? "trace: dup" : err);
		if (events_fd >= 0)
			close(events_fd);
		return -1;
	}
	*drops0 = state_drops(st);
	state_close(st);
	return events_fd;
}

static void count_out(struct state *st, const struct tracer *t, __u64 drops0)
{
	char err[ERRLEN];

	if (state_open(st, OPEN_EXISTING, err) == 0 && st->present) {
		__u64 drops = state_drops(st);

		state_tracers(st, -1, err);
		fprintf(stderr, "hostlo: trace: %lu events, %llu dropped\n", t->events,
			(unsigned long long)(drops - drops0));
	}
	state_close(st);
}

/* Prints events until SIGINT or SIGTERM; an exit status. */
static int poll_events(struct tracer *t, int events_fd)
{
	struct sigaction sa = { .sa_handler = stop };
	struct ring_buffer *rb = ring_buffer__new(events_fd, on_event, t, NULL);
	int ret = EXIT_FAIL, n;

	if (!rb) {
		errorf("trace: ring buffer: %s", strerror(errno));
		return EXIT_FAIL;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fprintf(stderr, "hostlo: tracing every rewrite%s%s (Ctrl-C to stop)\n", t->filter ? " under " : "",
		t->filter ? t->filter->rel : "");
	while (!stopping) {
		n = ring_buffer__poll(rb, 200);
		if (n < 0 && n != -EINTR) {
			errorf("trace: ring buffer: %s", strerror(-n));
			goto out;
		}
	}
	ring_buffer__consume(rb);
	ret = EXIT_OK;
out:
	ring_buffer__free(rb);
	return ret;
}

int trace_run(struct state *st, const char *mnt, const struct cgroup *filter, bool json)
{
	struct tracer t = { .mnt = mnt, .filter = filter, .json = json };
	char err[ERRLEN];
	__u64 drops0 = 0;
	int events_fd, ret;

	events_fd = count_in(st, &drops0);
	if (events_fd < 0)
		return EXIT_FAIL;
	t.mono_to_real_ns = ns_of(CLOCK_REALTIME) - ns_of(CLOCK_MONOTONIC);
	cgtree_load(&t.tree, mnt, err); /* a tree it cannot read names every cgroup "(gone)" */
	t.tree_loaded = time(NULL);
	ret = poll_events(&t, events_fd);
	close(events_fd);
	count_out(st, &t, drops0);
	cgtree_free(&t.tree);
	labeler_reset(&t.labeler);
	return ret;
}
