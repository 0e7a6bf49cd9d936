/* report.h: everything hostlo prints: a text table or line, or JSON from the same function. */
#ifndef HOSTLO_REPORT_H
#define HOSTLO_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <json-c/json.h>
#include "hostlo.h"
#include "label.h"
#include "rules.h"

struct attachment {
	uint64_t id;
	struct cgroup_label label;
	struct ruleset rules;
};

/* Printers return nothing: their input is already checked, and a closed stdout is the reader's business
 * (prometheus_text, which allocates, is the one exception). */

/* attach: the plan ("would attach", with dry_run) or the result ("attached"). */
/* A rule set as the CLI writes it (with host-side notes), and as JSON. */
void ruleset_text(const struct ruleset *rs, char *buf, size_t len);
json_object *ruleset_json(const struct ruleset *rs);
void print_attach(const struct attachment *a, bool dry_run, bool json);
/* Rules act at bind() time: an app already listening on loopback is reached only once it rebinds. */
void warn_listening(int port, const char *rel, int pid);
/* detach: rel, or NULL for detach --all. */
void print_detached(const char *rel);
void print_list(const struct attachment *a, size_t n, bool json);
void print_stats(const struct stat_line *l, size_t n, bool json);
/* stats --watch: what changed since prev (rows new since then count from 0); caller frees the array
 * only (its strings are lines'), NULL when out of memory. */
struct stat_line *stats_change(const struct stat_line *lines, size_t n, const struct stat_line *prev, size_t pn);
/* One --watch interval: a titled table, or one JSON line (the first one: the counts so far). */
void print_stats_interval(const struct stat_line *changes, size_t n, long seconds, bool json);
/* The Prometheus text exposition format: hostlo_<counter>_total{cgroup,container,name,attached_cgroup}. */
void print_prometheus(FILE *f, const struct stat_line *l, size_t n);
/* The same text in a malloc'd buffer (the /metrics body); 0, or -1 when out of memory. */
int prometheus_text(const struct stat_line *l, size_t n, char **body, size_t *len);
/* gc: how many it removed; with every (gc --every), the counters too, one JSON line a pass. */
void print_gc(int removed, const struct stat_line *l, size_t n, bool every, bool json);
void print_version(const char *version, bool json);
/* trace: one rewrite; real_ns is its wall-clock time. */
void print_event(const struct hostlo_event *e, const struct cgroup_label *l, long long real_ns, bool json);

/* value in width columns: padded, or (with cut) cut to width with a final "…" when longer. Counts
 * UTF-8 characters, not bytes. Writes at most len bytes. */
void table_cell(char *buf, size_t len, const char *value, size_t width, bool cut);

#endif
