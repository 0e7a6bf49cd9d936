/* label.h: naming cgroups for people (path, container ID, Docker name) and choosing what a TARGET keeps. */
#ifndef HOSTLO_LABEL_H
#define HOSTLO_LABEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cgtree.h"
#include "container.h"
#include "counters.h"
#include "target.h"

/* What names a cgroup for people: its path and, when it is a container's, the ID and Docker name. */
struct cgroup_label {
	const char *rel;
	char container[CONTAINER_ID_LEN + 1];   /* "" when the path holds no container ID */
	const char *name;                       /* NULL when Docker does not know it */
};

/* Docker names, asked of the Docker API once, and only when some cgroup is a container's. */
struct labeler {
	struct docker_names names;
	bool names_loaded;
};

/* A counter row, labelled; its strings are its own (they outlive the tree they came from). */
struct stat_line {
	struct cgroup_label label;
	const char *attach_rel;
	struct stats_row row;
};

/* The cgroup's path as the kernel names it, or "(gone)". */
const char *cgroup_rel(struct cgtree *tree, uint64_t id);
/* Fills l for rel (which l points to, not copies). */
void label_cgroup(struct labeler *lb, const char *rel, struct cgroup_label *l);
/* Forgets the Docker names: the next container label asks the API again. */
void labeler_reset(struct labeler *lb);

/* Whether a row belongs to target: its cgroup is target or below it, or target is where it was attached. */
bool in_target(const struct cgroup *target, uint64_t cgroup_id, uint64_t attach_id, const char *rel);

/* The rows kept by filter (NULL: all), labelled and sorted by cgroup then attached cgroup; 0, or -1
 * with a message in err. Free with stat_lines_free. */
int stat_lines(const struct stats_row *rows, size_t n, struct cgtree *tree, const struct cgroup *filter,
	       struct labeler *lb, struct stat_line **out, size_t *m, char *err);
void stat_lines_free(struct stat_line *l, size_t n);

#endif
