/* container.c: from a container's ID or name to its cgroup, whatever the runtime's cgroup layout. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include "container.h"
#include "docker.h"
#include "util.h"

static bool all_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* One path component: "<id>", "<runtime>-<id>.scope" for the systemd-driven layouts, or Podman's
 * "libpod-<id>" under its cgroupfs manager (/libpod_parent/libpod-<id>). */
static bool component_id(const char *c, size_t len, char id[CONTAINER_ID_LEN + 1])
{
	static const char *const prefixes[] = { "docker-", "libpod-", "cri-containerd-", "crio-" };
	static const char scope[] = ".scope";
	bool scoped = len > strlen(scope) && memcmp(c + len - strlen(scope), scope, strlen(scope)) == 0;
	const char *p = c;
	size_t l = scoped ? len - strlen(scope) : len;

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t pl = strlen(prefixes[i]);

		/* unscoped, only Podman's cgroupfs layout carries a prefix */
		if (l > pl && memcmp(c, prefixes[i], pl) == 0 && (scoped || i == 1)) {
			p = c + pl;
			l -= pl;
			break;
		}
	}
	if ((scoped && p == c) || l != CONTAINER_ID_LEN || !all_hex(p, l))
		return false;
	memcpy(id, p, CONTAINER_ID_LEN);
	id[CONTAINER_ID_LEN] = '\0';
	return true;
}

bool container_id_of(const char *rel, char id[CONTAINER_ID_LEN + 1])
{
	const char *end = rel + strlen(rel);

	while (end > rel) {
		const char *start = end;

		while (start > rel && start[-1] != '/')
			start--;
		if (component_id(start, (size_t)(end - start), id))
			return true;
		end = start > rel ? start - 1 : rel;
	}
	return false;
}

bool container_arg_valid(const char *arg)
{
	if (arg[0] == '/')
		arg++;
	if (!((arg[0] >= 'a' && arg[0] <= 'z') || (arg[0] >= 'A' && arg[0] <= 'Z') || (arg[0] >= '0' && arg[0] <= '9')))
		return false;
	return arg[strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")] == '\0' &&
	       strlen(arg) <= 255;
}

/* The cgroup whose own name carries the ID: the container's cgroup, not one of its children. */
static size_t find_by_prefix(struct cgtree *t, const char *prefix, const struct cgnode **hits, size_t max)
{
	size_t n = 0, pl = strlen(prefix);

	for (size_t i = 0; i < t->n; i++) {
		const char *base = strrchr(t->nodes[i].rel, '/');
		char id[CONTAINER_ID_LEN + 1];
		bool dup = false;

		base = base ? base + 1 : t->nodes[i].rel;
		if (!component_id(base, strlen(base), id) || strncmp(id, prefix, pl) != 0)
			continue;
		/* the same container can show up twice (a runtime's nested cgroups): count it once */
		for (size_t k = 0; k < n && k < max; k++) {
			char other[CONTAINER_ID_LEN + 1];

			if (container_id_of(hits[k]->rel, other) && strcmp(other, id) == 0)
				dup = true;
		}
		if (dup)
			continue;
		if (n < max)
			hits[n] = &t->nodes[i];
		n++;
	}
	return n;
}

/* Docker's own resolution (name, full ID or unique prefix); 1 when Docker says there is no such container. */
static int docker_inspect(const char *arg, char id[CONTAINER_ID_LEN + 1], char *err)
{
	json_object *j, *v;
	char path[300];
	int status;

	snprintf(path, sizeof(path), "/containers/%s/json", arg[0] == '/' ? arg + 1 : arg);
	status = docker_get(path, &j, err);
	if (status < 0)
		return -1;
	if (status == 200 && json_object_object_get_ex(j, "Id", &v) &&
	    strlen(json_object_get_string(v)) == CONTAINER_ID_LEN) {
		snprintf(id, CONTAINER_ID_LEN + 1, "%s", json_object_get_string(v));
		json_object_put(j);
		return 0;
	}
	json_object_put(j);
	return 1;
}

/*
 * containerd without a systemd cgroup driver (ctr, nerdctl): a running task's bundle names its
 * cgroup in config.json (linux.cgroupsPath, "/<namespace>/<id>" for ctr run); tasks are looked up by
 * ID in every namespace. $HOSTLO_CONTAINERD_STATE stands for containerd's state dir, /run/containerd.
 */
static bool containerd_cgroup(const struct cgtree *t, const char *id, char *rel, size_t len)
{
	const char *state = getenv("HOSTLO_CONTAINERD_STATE");
	char dir[PATH_MAX], cfg[2 * PATH_MAX];
	bool found = false;
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/io.containerd.runtime.v2.task", state && state[0] ? state : "/run/containerd");
	d = opendir(dir);
	while (d && !found && (de = readdir(d))) {
		json_object *j, *lx, *path;
		const char *p;

		if (de->d_name[0] == '.')
			continue;
		snprintf(cfg, sizeof(cfg), "%s/%s/%s/config.json", dir, de->d_name, id);
		j = json_object_from_file(cfg);
		if (j && json_object_object_get_ex(j, "linux", &lx) && json_object_object_get_ex(lx, "cgroupsPath", &path) &&
		    (p = json_object_get_string(path)) && p[0] == '/') {
			for (size_t i = 0; i < t->n && !found; i++)
				found = strcmp(t->nodes[i].rel, p) == 0;
			if (found)
				snprintf(rel, len, "%s", p);
		}
		json_object_put(j);
	}
	if (d)
		closedir(d);
	return found;
}

int container_cgroup(struct cgtree *t, const char *mnt, const char *arg, char *rel, size_t len, char *err)
{
	const struct cgnode *hits[6];
	char id[CONTAINER_ID_LEN + 1], derr[ERRLEN] = "";
	size_t n;
	int d;

	/* a full ID needs nobody's help; then Docker (names, and its idea of prefixes); then the tree */
	if (strlen(arg) == CONTAINER_ID_LEN && all_hex(arg, CONTAINER_ID_LEN)) {
		snprintf(id, sizeof(id), "%s", arg);
		d = 0;
	} else {
		d = docker_inspect(arg, id, derr);
	}
	if (d == 0) {
		n = find_by_prefix(t, id, hits, 1);
		if (n == 1) {
			snprintf(rel, len, "%s", hits[0]->rel);
			return 0;
		}
		return seterr(err, "container %s: no cgroup for ID %.12s under %s (is it running?)", arg, id, mnt);
	}
	n = strlen(arg) <= CONTAINER_ID_LEN && all_hex(arg, strlen(arg)) ? find_by_prefix(t, arg, hits, 6) : 0;
	if (n == 1) {
		snprintf(rel, len, "%s", hits[0]->rel);
		return 0;
	}
	if (n > 1) {
		char list[6 * 14 + 8] = "";
		size_t l = 0;

		for (size_t i = 0; i < n && i < 5; i++) {
			container_id_of(hits[i]->rel, id);
			l += (size_t)snprintf(list + l, sizeof(list) - l, "%s%.12s", i ? ", " : "", id);
		}
		return seterr(err, "container %s: ambiguous ID prefix, matches %zu containers: %s%s", arg, n, list,
			      n > 5 ? ", ..." : "");
	}
	if (containerd_cgroup(t, arg[0] == '/' ? arg + 1 : arg, rel, len))
		return 0;
	if (d > 0)
		snprintf(derr, sizeof(derr), "Docker at %s", docker_socket(derr));
	return seterr(err, "container %s: not found (looked in the cgroup2 tree under %s, containerd's tasks, and %s); "
		      "name it by --pid PID of a process in it, or --cgroup PATH", arg, mnt, derr);
}

void docker_names_load(struct docker_names *dn)
{
	json_object *j;
	char err[ERRLEN];
	size_t n;

	memset(dn, 0, sizeof(*dn));
	if (docker_get("/containers/json?all=1", &j, err) != 200 || !json_object_is_type(j, json_type_array)) {
		json_object_put(j);
		return;
	}
	n = json_object_array_length(j);
	dn->e = calloc(n ? n : 1, sizeof(*dn->e));
	for (size_t i = 0; dn->e && i < n; i++) {
		json_object *c = json_object_array_get_idx(j, i), *id, *names;
		const char *name;

		if (!json_object_object_get_ex(c, "Id", &id) || !json_object_object_get_ex(c, "Names", &names) ||
		    json_object_array_length(names) < 1)
			continue;
		name = json_object_get_string(json_object_array_get_idx(names, 0));
		snprintf(dn->e[dn->n].id, sizeof(dn->e[dn->n].id), "%s", json_object_get_string(id));
		dn->e[dn->n].name = strdup(name[0] == '/' ? name + 1 : name);
		dn->n++;
	}
	json_object_put(j);
}

const char *docker_name(const struct docker_names *dn, const char *id)
{
	for (size_t i = 0; i < dn->n; i++)
		if (strcmp(dn->e[i].id, id) == 0)
			return dn->e[i].name;
	return NULL;
}

void docker_names_free(struct docker_names *dn)
{
	for (size_t i = 0; i < dn->n; i++)
		free(dn->e[i].name);
	free(dn->e);
	memset(dn, 0, sizeof(*dn));
}
