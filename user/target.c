/* target.c: resolves what the user names (a cgroup path, a pid) to a cgroup2 directory and id. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/mount.h>
#include <linux/magic.h>
#include "cgtree.h"
#include "target.h"
#include "util.h"

static bool statfs_is_cgroup2(const char *path)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

const struct sysenv real_sysenv = {
	.mountinfo = "/proc/self/mountinfo",
	.proc = "/proc",
	.is_cgroup2 = statfs_is_cgroup2,
};

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
		    r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

bool cgroup2_partial(const char *mnt)
{
	struct stat st;

	return stat(mnt, &st) == 0 && st.st_ino != CGROUP2_ROOT_ID;
}

/*
 * Attaching needs the host's whole tree: the programs find a caller's rules by its ancestor at a
 * level counted from the host's cgroup2 root, and a cgroup namespace's own mount counts from its own
 * root, so rules written from there would never match (listing and gc from there are fine).
 */
int cgroup2_need_full(const char *mnt, char *err)
{
	if (!cgroup2_partial(mnt))
		return 0;
	return seterr(err, "cgroup2 %s: only a cgroup namespace's own subtree is mounted here, where cgroup "
			   "levels do not match the kernel's: mount the host's cgroup2 tree (on Kubernetes a "
			   "hostPath of /sys/fs/cgroup) to attach", mnt);
}

/*
 * The first cgroup2 mount of the whole hierarchy (root "/"): /sys/fs/cgroup on pure v2 hosts,
 * /sys/fs/cgroup/unified on hybrid ones. Never assumed, always read from mountinfo.
 */
int cgroup2_mount(const struct sysenv *env, char *mnt, size_t len, char *err)
{
	FILE *f = fopen(env->mountinfo, "re");
	char *line = NULL, fallback[PATH_MAX] = "";
	size_t cap = 0;
	int found = 0;

	if (!f)
		return seterr(err, "cgroup2: cannot read %s: %s", env->mountinfo, strerror(errno));
	/* the last whole-hierarchy mount wins: in a container, the host's tree is mounted over the runtime's */
	while (getline(&line, &cap, f) > 0) {
		char root[PATH_MAX], point[PATH_MAX], *sep = strstr(line, " - "), fstype[64];

		if (!sep || sscanf(line, "%*s %*s %*s %4095s %4095s", root, point) != 2 ||
		    sscanf(sep + 3, "%63s", fstype) != 1 || strcmp(fstype, "cgroup2") != 0)
			continue;
		unescape(point);
		if (strcmp(root, "/") == 0 && env->is_cgroup2(point)) {
			snprintf(mnt, len, "%s", point);
			found = 1;
		} else if (!fallback[0]) {
			snprintf(fallback, sizeof(fallback), "%s", point);
		}
	}
	free(line);
	fclose(f);
	if (!found && fallback[0]) {
		snprintf(mnt, len, "%s", fallback);
		found = 1;
	}
	if (!found)
		return seterr(err, "cgroup2: no cgroup2 file system is mounted (see %s); hostlo needs cgroup v2",
			    env->mountinfo);
	return 0;
}

int cgroup_fill(const char *mnt, const char *path, struct cgroup *cg, char *err)
{
	size_t ml = strlen(mnt);
	struct stat st;
	const char *rest;

	if (stat(path, &st) != 0)
		return seterr(err, "cgroup %s: %s", path, strerror(errno));
	snprintf(cg->path, sizeof(cg->path), "%s", path);
	rest = path + ml;
	while (*rest == '/')
		rest++;
	snprintf(cg->rel, sizeof(cg->rel), "/%s", rest);
	/* no trailing slash, so the form matches /proc/PID/cgroup */
	for (size_t l = strlen(cg->rel); l > 1 && cg->rel[l - 1] == '/'; l--)
		cg->rel[l - 1] = '\0';
	cg->id = st.st_ino;
	cg->level = 0;
	for (const char *c = cg->rel; *c; c++)
		if (*c == '/' && c[1] && c[1] != '/')
			cg->level++;
	return 0;
}

/* Removes "." and empty components and refuses "..", so a path cannot leave the cgroup2 tree. */
static int normalise(const char *in, char *out, size_t len, const char *arg, char *err)
{
	char *copy = strdup(in), *save = NULL;
	size_t n = 0;

	if (!copy)
		return seterr(err, "cgroup %s: out of memory", arg);
	out[0] = '\0';
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (strcmp(c, ".") == 0)
			continue;
		if (strcmp(c, "..") == 0) {
			free(copy);
			return seterr(err, "cgroup %s: '..' is not allowed in a cgroup path", arg);
		}
		n += (size_t)snprintf(out + n, n < len ? len - n : 0, "/%s", c);
	}
	free(copy);
	if (n >= len)
		return seterr(err, "cgroup %s: path too long", arg);
	if (!n)
		snprintf(out, len, "/");
	return 0;
}

/*
 * PATH is either a path in the file system (under the cgroup2 mount) or the kernel's own name of
 * the cgroup, relative to the cgroup2 root: "/docker/ID" and "docker/ID" both mean MNT/docker/ID.
 */
/* PATH as a directory under the cgroup2 mount: joined (PATH_MAX * 2 bytes). 0, or -1 with err. */
static int cgroup_join(const char *mnt, const char *arg, char *norm, char *joined, char *err)
{
	size_t ml = strlen(mnt);
	bool under_mnt;

	if (!arg[0])
		return seterr(err, "--cgroup: empty path");
	if (normalise(arg, norm, PATH_MAX, arg, err))
		return -1;
	under_mnt = strncmp(norm, mnt, ml) == 0 && (norm[ml] == '/' || norm[ml] == '\0');
	if (under_mnt)
		snprintf(joined, PATH_MAX * 2, "%s", norm);
	else
		snprintf(joined, PATH_MAX * 2, "%s%s", strcmp(mnt, "/") ? mnt : "", norm);
	return 0;
}

int cgroup_from_path(const struct sysenv *env, const char *mnt, const char *arg, struct cgroup *cg, char *err)
{
	char norm[PATH_MAX], joined[PATH_MAX * 2];
	struct stat st;

	if (cgroup_join(mnt, arg, norm, joined, err))
		return -1;
	if (stat(joined, &st) != 0) {
		/* an existing directory outside cgroup2 deserves a better answer than "not found" */
		if (arg[0] == '/' && stat(norm, &st) == 0)
			return seterr(err, "cgroup %s: not a cgroup v2 directory (cgroup2 is mounted at %s)", arg, mnt);
		return seterr(err, "cgroup %s: no such cgroup (looked for %s; attach --create makes it)", arg, joined);
	}
	if (!S_ISDIR(st.st_mode))
		return seterr(err, "cgroup %s: not a directory", arg);
	if (!env->is_cgroup2(joined))
		return seterr(err, "cgroup %s: not a cgroup v2 directory (cgroup2 is mounted at %s)", arg, mnt);
	return cgroup_fill(mnt, joined, cg, err);
}

int cgroup_create(const struct sysenv *env, const char *mnt, const char *arg, char *err)
{
	char norm[PATH_MAX], joined[PATH_MAX * 2];
	size_t ml = strlen(mnt);

	if (cgroup_join(mnt, arg, norm, joined, err))
		return -1;
	if (strlen(joined) <= ml)
		return seterr(err, "cgroup %s: the cgroup2 root exists already", arg);
	if (!env->is_cgroup2(mnt))
		return seterr(err, "cgroup %s: %s is not a cgroup2 mount", arg, mnt);
	/* each level below the mount, as mkdir -p would; an existing one is kept as it is */
	for (char *p = joined + ml + 1; p; p = strchr(p + 1, '/')) {
		char c = *p;

		*p = '\0';
		if (p > joined + ml + 1 && mkdir(joined, 0755) != 0 && errno != EEXIST)
			return seterr(err, "cgroup %s: cannot create %s: %s", arg, joined, strerror(errno));
		*p = c;
	}
	if (mkdir(joined, 0755) != 0 && errno != EEXIST)
		return seterr(err, "cgroup %s: cannot create %s: %s", arg, joined, strerror(errno));
	return 0;
}

/* The cgroup v2 path in a /proc/PID/cgroup file ("0::/path"), or "" when it has none; -1 if unreadable. */
static int read_cgroup2_line(const char *path, char *rel, size_t len)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;

	rel[0] = '\0';
	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(rel, len, "%s", line + 3);
			break;
		}
	}
	free(line);
	fclose(f);
	return 0;
}

static int parse_pid(const char *s, int *pid)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 4194304 || s[0] == '+' || s[0] == ' ')
		return -1;
	*pid = (int)v;
	return 0;
}

int cgroup_from_pid(const struct sysenv *env, const char *mnt, const char *arg, struct cgroup *cg, char *err)
{
	char path[PATH_MAX], rel[PATH_MAX] = "";
	int pid;

	if (parse_pid(arg, &pid))
		return seterr(err, "--pid %s: not a process id", arg);
	snprintf(path, sizeof(path), "%s/%d/cgroup", env->proc, pid);
	if (read_cgroup2_line(path, rel, sizeof(rel)) != 0)
		return seterr(err, "pid %d: %s", pid, errno == ENOENT ? "no such process" : strerror(errno));
	if (!rel[0])
		return seterr(err, "pid %d: not in any cgroup v2 cgroup (no 0:: line in %s)", pid, path);
	if (strstr(rel, " (deleted)"))
		return seterr(err, "pid %d: its cgroup %s was removed", pid, rel);
	return cgroup_from_path(env, mnt, rel, cg, err);
}

static int first_pid_in(const char *dir)
{
	char path[PATH_MAX];
	int pid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid;
}

int cgroup_some_pid(const char *path)
{
	int pid = first_pid_in(path);
	struct dirent *de;
	DIR *d;

	if (pid)
		return pid;
	d = opendir(path);
	if (!d)
		return 0;
	while (!pid && (de = readdir(d))) {
		char child[PATH_MAX];

		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		snprintf(child, sizeof(child), "%s/%s", path, de->d_name);
		pid = cgroup_some_pid(child);
	}
	closedir(d);
	return pid;
}

/*
 * The id of the root of this process's cgroup namespace: a fresh, unattached cgroup2 mount shows that
 * root (fsopen/fsmount need no mount point, so a read-only image is fine). 0 when it cannot be had.
 */
static uint64_t cgroupns_root_id(void)
{
	struct stat st;
	int fs, mfd;

	fs = (int)syscall(SYS_fsopen, "cgroup2", FSOPEN_CLOEXEC);
	if (fs < 0)
		return 0;
	if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) != 0) {
		close(fs);
		return 0;
	}
	mfd = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0);
	close(fs);
	if (mfd < 0)
		return 0;
	if (fstat(mfd, &st) != 0)
		st.st_ino = 0;
	close(mfd);
	return st.st_ino;
}

int cgroup_self(const struct sysenv *env, const char *mnt, struct cgtree *tree, bool parent,
		struct cgroup *cg, char *err)
{
	char path[PATH_MAX], rel[PATH_MAX] = "", full[PATH_MAX * 2 + 2];
	const char *base = "";
	uint64_t ns_root;

	snprintf(path, sizeof(path), "%s/self/cgroup", env->proc);
	if (read_cgroup2_line(path, rel, sizeof(rel)) != 0)
		return seterr(err, "--self: cannot read %s: %s", path, strerror(errno));
	if (!rel[0])
		return seterr(err, "--self: not in any cgroup v2 cgroup (no 0:: line in %s)", path);
	/* /proc/self/cgroup is relative to our cgroup namespace; find that namespace's root in the host tree */
	ns_root = cgroupns_root_id();
	if (ns_root) {
		const struct cgnode *n = cgtree_find(tree, ns_root);

		if (!n || n->hidden)
			return seterr(err, "--self: this cgroup namespace's root (cgroup id %llu) is not in the cgroup2 tree "
				      "at %s: mount the host's cgroup2 tree and name it with --cgroup-root",
				      (unsigned long long)ns_root, mnt);
		base = strcmp(n->rel, "/") ? n->rel : "";
	}
	snprintf(full, sizeof(full), "%s%s", base, strcmp(rel, "/") || !base[0] ? rel : "");
	if (parent) {
		char *slash = strrchr(full, '/');

		if (!slash || !full[1])
			return seterr(err, "--self --parent: hostlo runs in the cgroup2 root, which has no parent");
		if (slash == full)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	return cgroup_from_path(env, mnt, full, cg, err);
}
