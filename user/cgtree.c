/* cgtree.c: walks the cgroup2 mount once and indexes every cgroup by id (its inode number). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cgtree.h"
#include "util.h"

static int add(struct cgtree *t, uint64_t id, int level, const char *rel)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		struct cgnode *n = realloc(t->nodes, cap * sizeof(*n));

		if (!n)
			return -1;
		t->nodes = n;
		t->cap = cap;
	}
	t->nodes[t->n].rel = rel ? strdup(rel) : NULL; /* NULL: known to be gone */
	if (rel && !t->nodes[t->n].rel)
		return -1;
	t->nodes[t->n].id = id;
	t->nodes[t->n].level = level;
	t->nodes[t->n].hidden = 0;
	t->n++;
	return 0;
}

/* A cgroup can vanish mid-walk (a container exits): that is not an error, it is just not listed. */
static int walk(struct cgtree *t, int dfd, char *rel, size_t len, int level)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	int ret = 0;

	if (!d) {
		close(dfd);
		return 0;
	}
	while (!ret && (de = readdir(d))) {
		size_t l = strlen(rel);
		struct stat st;
		int cfd;

		if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		cfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (cfd < 0)
			continue;
		if (fstat(cfd, &st) != 0 || l + strlen(de->d_name) + 2 > len) {
			close(cfd);
			continue;
		}
		snprintf(rel + l, len - l, "%s%s", l > 1 ? "/" : "", de->d_name);
		ret = add(t, st.st_ino, level + 1, rel);
		if (!ret)
			ret = walk(t, cfd, rel, len, level + 1);
		else
			close(cfd);
		rel[l] = '\0';
	}
	closedir(d);
	return ret;
}

static int node_cmp(const void *a, const void *b)
{
	const struct cgnode *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

int cgtree_load(struct cgtree *t, const char *mnt, char *err)
{
	char rel[4096] = "/";
	struct stat st;
	int fd;

	memset(t, 0, sizeof(*t));
	t->mount_fd = -1;
	fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		if (fd >= 0)
			close(fd);
		return seterr(err, "cgroup2: cannot open %s: %s", mnt, strerror(errno));
	}
	t->partial = st.st_ino != CGROUP2_ROOT_ID;
	if (add(t, st.st_ino, 0, "/") || walk(t, fd, rel, sizeof(rel), 0)) {
		cgtree_free(t);
		return seterr(err, "cgroup2: out of memory while reading %s", mnt);
	}
	qsort(t->nodes, t->n, sizeof(*t->nodes), node_cmp);
	return 0;
}

#define FILEID_KERNFS 0xfe

/* The path of cgroup id below the mount, "/" for the root; 1 when it is gone (the kernel knows no
 * such id, whatever the mount's view), 2 when it exists outside this mount's view, -1 when handles
 * fail. */
static int resolve(const struct cgtree *t, uint64_t id, char *rel, size_t len)
{
	struct {
		struct file_handle fh;
		uint64_t id;
	} h = { .fh = { .handle_bytes = sizeof(uint64_t), .handle_type = FILEID_KERNFS } };
	char proc[64], path[4096];
	size_t ml = strlen(t->mnt);
	ssize_t n;
	int fd;

	memcpy(h.fh.f_handle, &id, sizeof(id));
	fd = open_by_handle_at(t->mount_fd, &h.fh, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ESTALE || errno == ENOENT ? 1 : -1;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, path, sizeof(path) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	path[n] = '\0';
	/* outside this mount's view (a cgroup namespace's mount): not a path we can name */
	if (strncmp(path, t->mnt, ml) != 0 || (path[ml] != '/' && path[ml] != '\0'))
		return 2;
	snprintf(rel, len, "%s", path[ml] ? path + ml : "/");
	return 0;
}

static int level_of(const char *rel)
{
	int level = 0;

	for (const char *p = rel; *p; p++)
		level += *p == '/' && p[1];
	return level;
}

int cgtree_open(struct cgtree *t, const char *mnt, char *err)
{
	char rel[4096];
	struct stat st;

	memset(t, 0, sizeof(*t));
	t->mount_fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	t->mnt = strdup(mnt);
	if (t->mount_fd < 0 || !t->mnt || fstat(t->mount_fd, &st) != 0 || resolve(t, st.st_ino, rel, sizeof(rel)) != 0) {
		if (t->mount_fd >= 0)
			close(t->mount_fd);
		t->mount_fd = -1;
		cgtree_free(t);
		return cgtree_load(t, mnt, err);
	}
	t->partial = st.st_ino != CGROUP2_ROOT_ID;
	return 0;
}

/* A node for an id that may exist but has no name here (see cgtree_find). */
static const struct cgnode *hidden(uint64_t id, const char *why)
{
	static struct cgnode node;

	node.id = id;
	node.level = 0;
	node.rel = (char *)why;
	node.hidden = 1;
	return &node;
}

const struct cgnode *cgtree_find(struct cgtree *t, uint64_t id)
{
	struct cgnode key = { .id = id }, *n;
	char rel[4096];
	size_t i;
	int r;

	n = t->n ? bsearch(&key, t->nodes, t->n, sizeof(key), node_cmp) : NULL;
	if (n || !t->mnt) {
		if (n && n->rel)
			return n;
		/* a walk of a partial mount sees only its subtree: what it did not meet may live elsewhere */
		return !n && t->partial ? hidden(id, "(not visible)") : NULL;
	}
	r = resolve(t, id, rel, sizeof(rel));
	if (r == 2)
		return hidden(id, "(not visible)");
	/* not known to be gone (out of fds, memory...): say it exists, so nothing is removed for it */
	if (r < 0 || add(t, id, r ? 0 : level_of(rel), r ? NULL : rel))
		return hidden(id, "(unknown)");
	/* keep the cache sorted: move the new node into place */
	key = t->nodes[t->n - 1];
	for (i = t->n - 1; i > 0 && t->nodes[i - 1].id > id; i--)
		t->nodes[i] = t->nodes[i - 1];
	t->nodes[i] = key;
	return t->nodes[i].rel ? &t->nodes[i] : NULL;
}

void cgtree_free(struct cgtree *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->nodes[i].rel);
	free(t->nodes);
	if (t->mnt && t->mount_fd >= 0) /* only lazy mode opened it: a zeroed tree has fd 0, not ours */
		close(t->mount_fd);
	free(t->mnt);
	memset(t, 0, sizeof(*t));
	t->mount_fd = -1;
}
