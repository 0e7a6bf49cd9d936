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
	struct cgnode *nodes;   /* sorted by id; in lazy mode, the ids asked about so far (rel NULL: gone) */
	size_t n, cap;
	int mount_fd;           /* lazy mode: the cgroup2 mount, for open_by_handle_at; else -1 */
	char *mnt;
};

/* Every cgroup, by one walk of the whole tree (what a search by container ID needs). */
int cgtree_load(struct cgtree *t, const char *mnt, char *err);
/* The same answers, found one id at a time through a file handle (the cgroup id is its kernfs
 * handle): a few syscalls per attached cgroup instead of a walk of every cgroup on the host. Falls
 * back to cgtree_load where handles are refused (no CAP_DAC_READ_SEARCH). */
int cgtree_open(struct cgtree *t, const char *mnt, char *err);
/* The cgroup with this id, or NULL when it does not exist (a lookup that fails for another reason
 * answers a node named "(unknown)": never taken for gone). The node may move on the next call; its
 * rel string stays valid until cgtree_free. */
const struct cgnode *cgtree_find(struct cgtree *t, uint64_t id);
void cgtree_free(struct cgtree *t);

#endif
