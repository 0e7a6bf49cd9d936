/* cgtree.h: a snapshot of the cgroup2 tree, to name cgroup ids and to tell which ones still exist. */
#ifndef HOSTLO_CGTREE_H
#define HOSTLO_CGTREE_H

#include <stddef.h>
#include <stdint.h>

struct cgnode {
	uint64_t id;
	int level;
	char *rel;     /* "/docker/ID" */
};

struct cgtree {
	struct cgnode *nodes;   /* sorted by id */
	size_t n, cap;
};

int cgtree_load(struct cgtree *t, const char *mnt, char *err);
const struct cgnode *cgtree_find(const struct cgtree *t, uint64_t id);
void cgtree_free(struct cgtree *t);

#endif
