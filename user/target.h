/* target.h: finding cgroup2, and resolving --cgroup/--pid/--self to a cgroup. */
#ifndef HOSTLO_TARGET_H
#define HOSTLO_TARGET_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

/* Where resolution looks; unit tests point these at a fake tree. */
struct sysenv {
	const char *mountinfo;                 /* /proc/self/mountinfo */
	const char *proc;                      /* /proc */
	bool (*is_cgroup2)(const char *path);  /* statfs() says cgroup2 */
};
extern const struct sysenv real_sysenv;

struct cgroup {
	char path[PATH_MAX];   /* absolute filesystem path */
	char rel[PATH_MAX];    /* as the kernel names it: relative to the cgroup2 root, "/" for the root */
	uint64_t id;           /* cgroup id: the directory's inode number */
	int level;             /* 0 for the root, 1 for /docker, ... */
};

/* Whether the cgroup2 mount at mnt is a partial view: its root is not the cgroup2 root (a cgroup
 * namespace's own mount, a pod's or a container's), so cgroups outside it cannot be seen from here. */
bool cgroup2_partial(const char *mnt);
/* 0, or an error naming why attaching from a partial view (cgroup2_partial) cannot work */
int cgroup2_need_full(const char *mnt, char *err);
/* Each returns 0, or -1 with a message in err (ERRLEN bytes). */
int cgroup2_mount(const struct sysenv *env, char *mnt, size_t len, char *err);
int cgroup_from_path(const struct sysenv *env, const char *mnt, const char *arg, struct cgroup *cg, char *err);
/* Makes the cgroup PATH names (and its missing parents) under the cgroup2 mount; an existing one is fine. */
int cgroup_create(const struct sysenv *env, const char *mnt, const char *arg, char *err);
int cgroup_from_pid(const struct sysenv *env, const char *mnt, const char *pid, struct cgroup *cg, char *err);
/* Some process in the cgroup or, failing that, in its descendants; 0 when there is none. */
int cgroup_some_pid(const char *path);
struct cgtree;
/* The cgroup hostlo runs in (or its parent): found in the host tree at mnt by the id of this
 * process's cgroup namespace root, so it works with a private cgroup namespace too. */
int cgroup_self(const struct sysenv *env, const char *mnt, struct cgtree *tree, bool parent,
		struct cgroup *cg, char *err);
/* Fills cg from an absolute path under mnt; rel is computed from mnt. */
int cgroup_fill(const char *mnt, const char *path, struct cgroup *cg, char *err);

#endif
