/* cgtree.h: a snapshot of the cgroup2 tree, to name cgroup ids and to tell which ones still exist. */
#ifndef HOSTLO_CGTREE_H
#define HOSTLO_CGTREE_H

#include <stddef.h>
#include <stdint.h>

#define CGROUP2_ROOT_ID 1 /* the cgroup2 root's id: its directory's inode; other roots are partial views */

struct cgnode {
	uint64_t id;
	int level;
	char *rel;     /* "/docker/ID" */
	int hidden;    /* it may exist but cannot be named from here: never taken for gone */
};

struct cgtree {
	struct cgnode *nodes;   /* sorted by id; in lazy mode, the ids asked about so far (rel NULL: gone) */
	size_t n, cap;
	int mount_fd;           /* lazy mode: the cgroup2 mount, for open_by_handle_at; else -1 */
	char *mnt;
	int partial;            /* the mount's root is not the cgroup2 root (a cgroup namespace's mount) */
};

/* Every cgroup, by one walk of the whole tree (what a search by container ID needs). */
int cgtree_load(struct cgtree *t, const char *mnt, char *err);
/* The same answers, found one id at a time through a file handle (the cgroup id is its kernfs
 * handle): a few syscalls per attached cgroup instead of a walk of every cgroup on the host. Falls
 * back to cgtree_load where handles are refused (no CAP_DAC_READ_SEARCH). */
int cgtree_open(struct cgtree *t, const char *mnt, char *err);
/* The cgroup with this id, or NULL when it does not exist. A lookup that fails for another reason
 * answers a hidden node named "(unknown)", and on a partial mount (its root is not the cgroup2 root:
 * a pod's or container's own cgroup namespace) a cgroup outside the mount's view answers a hidden
 * node named "(not visible)": neither is ever taken for gone, so gc keeps their attachments. The node
 * may move on the next call; its rel string stays valid until cgtree_free. */
const struct cgnode *cgtree_find(struct cgtree *t, uint64_t id);
void cgtree_free(struct cgtree *t);

#endif
