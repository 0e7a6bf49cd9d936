/* report.h: what list and stats print, as text tables or JSON. */
#ifndef HOSTLO_REPORT_H
#define HOSTLO_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <json-c/json.h>
#include "rules.h"
#include "counters.h"
#include "state.h"

/* What names a cgroup for people: its path and, when it is a container's, the ID and Docker name. */
struct cgroup_label {
	const char *rel;
	char container[65];   /* "" when the path holds no container ID */
	const char *name;     /* NULL when Docker does not know it */
};

struct attachment {
	uint64_t id;
	struct cgroup_label label;
	struct ruleset rules;
};

struct stat_line {
	struct cgroup_label label;
	const char *attach_rel;
	struct stats_row row;
};

json_object *ruleset_json(const struct ruleset *rs);
json_object *attachment_json(const struct attachment *a);
void ruleset_text(const struct ruleset *rs, char *buf, size_t len);
void print_json(json_object *o);
void print_list(const struct attachment *a, size_t n, bool json);
json_object *stats_json(const struct stat_line *l, size_t n);
void print_stats(const struct stat_line *l, size_t n, bool json);
/* The Prometheus text exposition format: hostlo_<counter>_total{cgroup,container,name,attached_cgroup}. */
void print_prometheus(FILE *f, const struct stat_line *l, size_t n);

#endif
