/* trace.h: the live stream of rewrites (hostlo trace). */
#ifndef HOSTLO_TRACE_H
#define HOSTLO_TRACE_H

#include <stdbool.h>
#include "state.h"
#include "target.h"

/* Counts this tracer in, prints events until SIGINT or SIGTERM, counts it out; an exit status. */
int trace_run(struct state *st, const char *mnt, const struct cgroup *filter, bool json);

#endif
