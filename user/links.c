/* links.c: the pinned bpf_links that attach hostlo's programs to cgroups, named "<cgroup id>-<hook>". */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "links.h"
#include "objects.h"
#include "preflight.h"
#include "util.h"

void link_path(const struct state *st, uint64_t id, int hook, char *buf, size_t len)
{
	snprintf(buf, len, "%s/links/%llu-%s", st->dir, (unsigned long long)id, hook_defs[hook].name);
}

void host_link_path(const struct state *st, int host_hook, char *buf, size_t len)
{
	snprintf(buf, len, "%s/links/host-%s", st->dir, host_hook_defs[host_hook].name);
}

bool link_pin_parse(const char *name, uint64_t *id, int *hook)
{
	unsigned long long v;
	char h[16];

	if (sscanf(name, "%llu-%15s", &v, h) != 2)
		return false;
	for (*hook = 0; *hook < NR_HOOKS; (*hook)++) {
		if (strcmp(h, hook_defs[*hook].name) == 0) {
			*id = v;
			return true;
		}
	}
	return false;
}

__u32 fd_prog_id(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

/* A removed cgroup leaves a defunct link behind: a pin counts only while the kernel says it attaches. */
int link_live(const struct state *st, uint64_t id, int hook, __u32 *prog_id)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	char p[PATH_MAX];
	int fd;

	link_path(st, id, hook, p, sizeof(p));
	fd = bpf_obj_get(p);
	if (fd < 0)
		return -1;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0 || info.type != BPF_LINK_TYPE_CGROUP ||
	    info.cgroup.cgroup_id != id || info.cgroup.attach_type != hook_defs[hook].type) {
		close(fd);
		return -1;
	}
	*prog_id = info.prog_id;
	return fd;
}

bool link_ok(const struct state *st, uint64_t id, int hook)
{
	__u32 prog_id;
	int fd = link_live(st, id, hook, &prog_id);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

int link_create(const struct state *st, uint64_t id, int hook, int cg_fd, const char *rel, char *err)
{
	char p[PATH_MAX];
	int link;

	link_path(st, id, hook, p, sizeof(p));
	unlink(p); /* stale: its cgroup or program is gone */
	preflight_memlock_for_links();
	link = bpf_link_create(st->prog_fd[hook], cg_fd, hook_defs[hook].type, NULL);
	if (link < 0)
		return seterr(err, "attach %s to %s: %s%s", hook_defs[hook].name, rel, strerror(errno),
			      errno == EPERM ? " (needs CAP_NET_ADMIN)" :
			      errno == ENOMEM && !kernel_at_least(5, 11) ? " (RLIMIT_MEMLOCK: Linux before 5.11 charges "
			      "BPF memory to it, and it could not be raised)" : "");
	/* an unpinned link dies with this process, so a crash here leaves nothing attached */
	if (bpf_obj_pin(link, p) != 0) {
		seterr(err, "pin %s: %s", p, strerror(errno));
		close(link);
		return -1;
	}
	close(link);
	return 0;
}

void links_unpin(const struct state *st, uint64_t id)
{
	char p[PATH_MAX];

	for (int h = 0; h < NR_HOOKS; h++) {
		link_path(st, id, h, p, sizeof(p));
		unlink(p);
	}
}

int links_each(const struct state *st, int (*fn)(uint64_t id, int hook, const char *name, void *ctx), void *ctx)
{
	char links[PATH_MAX];
	struct dirent *de;
	int ret = 0;
	DIR *d;

	snprintf(links, sizeof(links), "%s/links", st->dir);
	d = opendir(links);
	while (d && !ret && (de = readdir(d))) {
		uint64_t id;
		int hook;

		if (link_pin_parse(de->d_name, &id, &hook))
			ret = fn(id, hook, de->d_name, ctx);
	}
	if (d)
		closedir(d);
	return ret;
}

struct id_list {
	uint64_t *ids;
	size_t n, cap;
};

static int add_id(uint64_t id, int hook, const char *name, void *ctx)
{
	struct id_list *l = ctx;

	(void)hook;
	(void)name;
	if (l->n == l->cap) {
		uint64_t *x = realloc(l->ids, (l->cap ? l->cap * 2 : 64) * sizeof(*x));

		if (!x)
			return -1; /* the ids so far: gc treats the others as not fully linked */
		l->ids = x;
		l->cap = l->cap ? l->cap * 2 : 64;
	}
	l->ids[l->n++] = id;
	return 0;
}

void links_pinned_ids(const struct state *st, uint64_t **ids, size_t *n)
{
	struct id_list l = { 0 };

	links_each(st, add_id, &l);
	*ids = l.ids;
	*n = l.n;
}
