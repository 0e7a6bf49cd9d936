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
	t->nodes[t->n].rel = strdup(rel);
	if (!t->nodes[t->n].rel)
		return -1;
	t->nodes[t->n].id = id;
	t->nodes[t->n].level = level;
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
	fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		if (fd >= 0)
			close(fd);
		return seterr(err, "cgroup2: cannot open %s: %s", mnt, strerror(errno));
	}
	if (add(t, st.st_ino, 0, "/") || walk(t, fd, rel, sizeof(rel), 0)) {
		cgtree_free(t);
		return seterr(err, "cgroup2: out of memory while reading %s", mnt);
	}
	qsort(t->nodes, t->n, sizeof(*t->nodes), node_cmp);
	return 0;
}

const struct cgnode *cgtree_find(const struct cgtree *t, uint64_t id)
{
	struct cgnode key = { .id = id };

	return t->n ? bsearch(&key, t->nodes, t->n, sizeof(key), node_cmp) : NULL;
}

void cgtree_free(struct cgtree *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->nodes[i].rel);
	free(t->nodes);
	memset(t, 0, sizeof(*t));
}
