/* label.c: what a cgroup is called in output (path, short container ID, Docker name), which rows a
 * TARGET keeps, and the counter rows labelled and sorted for the printers. */
#include <stdlib.h>
#include <string.h>
#include "label.h"
#include "util.h"

const char *cgroup_rel(struct cgtree *tree, uint64_t id)
{
	const struct cgnode *n = cgtree_find(tree, id);

	return n ? n->rel : "(gone)";
}

void label_cgroup(struct labeler *lb, const char *rel, struct cgroup_label *l)
{
	l->rel = rel;
	l->name = NULL;
	if (!container_id_of(rel, l->container)) {
		l->container[0] = '\0';
		return;
	}
	if (!lb->names_loaded) {
		docker_names_load(&lb->names); /* one API call, and only when some cgroup is a container's */
		lb->names_loaded = true;
	}
	l->name = docker_name(&lb->names, l->container);
}

void labeler_reset(struct labeler *lb)
{
	docker_names_free(&lb->names);
	lb->names_loaded = false;
}

bool in_target(const struct cgroup *target, uint64_t cgroup_id, uint64_t attach_id, const char *rel)
{
	size_t n = strlen(target->rel);

	if (attach_id == target->id || cgroup_id == target->id)
		return true;
	/* "/docker" keeps "/docker/ID" but not "/docker-other"; the root keeps everything */
	return strncmp(rel, target->rel, n) == 0 && (rel[n] == '/' || n == 1);
}

static int line_cmp(const void *x, const void *y)
{
	const struct stat_line *a = x, *b = y;
	int c = strcmp(a->label.rel, b->label.rel);

	return c ? c : strcmp(a->attach_rel, b->attach_rel);
}

/* Copies the strings the line points to, so it outlives the tree and the Docker names. */
static int own_strings(struct stat_line *l)
{
	l->label.rel = strdup(l->label.rel);
	l->attach_rel = strdup(l->attach_rel);
	if (l->label.name)
		l->label.name = strdup(l->label.name);
	return l->label.rel && l->attach_rel ? 0 : -1;
}

int stat_lines(const struct stats_row *rows, size_t n, struct cgtree *tree, const struct cgroup *filter,
	       struct labeler *lb, struct stat_line **out, size_t *m, char *err)
{
	*m = 0;
	*out = calloc(n ? n : 1, sizeof(**out));
	if (!*out)
		return seterr(err, "stats: out of memory");
	for (size_t i = 0; i < n; i++) {
		struct stat_line *l = &(*out)[*m];
		const char *rel = cgroup_rel(tree, rows[i].cgroup_id);

		if (filter && !in_target(filter, rows[i].cgroup_id, rows[i].attach_id, rel))
			continue;
		label_cgroup(lb, rel, &l->label);
		l->attach_rel = cgroup_rel(tree, rows[i].attach_id);
		l->row = rows[i];
		++*m;
		if (own_strings(l)) {
			stat_lines_free(*out, *m);
			*out = NULL;
			*m = 0;
			return seterr(err, "stats: out of memory");
		}
	}
	qsort(*out, *m, sizeof(**out), line_cmp);
	return 0;
}

void stat_lines_free(struct stat_line *l, size_t n)
{
	for (size_t i = 0; l && i < n; i++) {
		free((char *)l[i].label.rel);
		free((char *)l[i].attach_rel);
		free((char *)l[i].label.name);
	}
	free(l);
}
