/* state.c: creates, opens, changes and removes hostlo's pinned programs, maps and cgroup links. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "hostlo.skel.h"
#include "state.h"
#include "util.h"

const char *const hook_names[NR_HOOKS] = {
	"connect4", "connect6", "bind4", "bind6", "getpeername4", "getpeername6",
	"sendmsg4", "recvmsg4", "recvmsg6",
};
static const enum bpf_attach_type hook_types[NR_HOOKS] = {
	BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_CONNECT, BPF_CGROUP_INET4_BIND, BPF_CGROUP_INET6_BIND,
	BPF_CGROUP_INET4_GETPEERNAME, BPF_CGROUP_INET6_GETPEERNAME,
	BPF_CGROUP_UDP4_SENDMSG, BPF_CGROUP_UDP4_RECVMSG, BPF_CGROUP_UDP6_RECVMSG,
};
static const char *const host_hook_names[NR_HOST_HOOKS] = { "sockops", "lookup" };
static const enum bpf_attach_type host_hook_types[NR_HOST_HOOKS] = { BPF_CGROUP_SOCK_OPS, BPF_SK_LOOKUP };
#define NR_MAPS 9
static const char *const map_names[NR_MAPS] = { "rules", "stats", "config", "socks", "events", "drops",
						"flows", "listeners", "steerports" };
#define TMP_PREFIX "hostlo-new-" /* bpffs refuses names with a dot */
#define LOCK_WAIT_S 30

#ifdef HOSTLO_CRASH_POINTS
/* Test builds only: die (SIGKILL) or stall at a named step, as a crash or a slow run would there. */
static void crash_point(const char *step)
{
	const char *at = getenv("HOSTLO_CRASH_AT"), *stall = getenv("HOSTLO_STALL_AT");

	if (stall && strcmp(stall, step) == 0)
		sleep(2);
	if (at && strcmp(at, step) == 0)
		raise(SIGKILL);
}
#else
#define crash_point(step) ((void)0)
#endif

static __u64 prog_build(void);
static bool listener_present(struct state *st, uint16_t port);

static void skel_parts(struct hostlo_bpf *skel, struct bpf_map **maps, struct bpf_program **progs,
		       struct bpf_program **host_progs)
{
	struct bpf_map *m[NR_MAPS] = {
		skel->maps.hostlo_rules, skel->maps.hostlo_stats, skel->maps.hostlo_config, skel->maps.hostlo_socks,
		skel->maps.hostlo_events, skel->maps.hostlo_drops, skel->maps.hostlo_flows,
		skel->maps.hostlo_listeners, skel->maps.hostlo_steer_ports,
	};
	struct bpf_program *p[NR_HOOKS] = {
		skel->progs.hostlo_connect4, skel->progs.hostlo_connect6,
		skel->progs.hostlo_bind4, skel->progs.hostlo_bind6,
		skel->progs.hostlo_getpeername4, skel->progs.hostlo_getpeername6,
		skel->progs.hostlo_sendmsg4, skel->progs.hostlo_recvmsg4, skel->progs.hostlo_recvmsg6,
	};

	memcpy(maps, m, sizeof(m));
	memcpy(progs, p, sizeof(p));
	host_progs[0] = skel->progs.hostlo_sockops;
	host_progs[1] = skel->progs.hostlo_lookup;
	/* an older kernel would reject the whole object for them: load them only where they run */
	if (!state_host_supported())
		for (int i = 0; i < NR_HOST_HOOKS; i++)
			bpf_program__set_autoload(host_progs[i], false);
}

bool state_host_supported(void)
{
	struct utsname u;
	int major = 0, minor = 0;

	if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2)
		return false;
	return major > 5 || (major == 5 && minor >= 17);
}
static __u32 fd_prog_id(int fd);
static int live_link(const struct state *st, uint64_t id, int hook, __u32 *prog_id);

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (!verbose || (level == LIBBPF_DEBUG && verbose < 2))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static int *map_fd(struct state *st, int i)
{
	int *fds[NR_MAPS] = { &st->rules_fd, &st->stats_fd, &st->config_fd, &st->socks_fd, &st->events_fd,
			      &st->drops_fd, &st->flows_fd, &st->listeners_fd, &st->ports_fd };

	return fds[i];
}

static void close_fds(struct state *st)
{
	for (int i = 0; i < NR_MAPS; i++) {
		if (*map_fd(st, i) >= 0)
			close(*map_fd(st, i));
		*map_fd(st, i) = -1;
	}
	for (int i = 0; i < NR_HOOKS; i++) {
		if (st->prog_fd[i] >= 0)
			close(st->prog_fd[i]);
		st->prog_fd[i] = -1;
	}
	for (int i = 0; i < NR_HOST_HOOKS; i++) {
		if (st->host_prog_fd[i] >= 0)
			close(st->host_prog_fd[i]);
		st->host_prog_fd[i] = -1;
	}
	st->present = false;
}

static bool is_bpffs(const char *path)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 && sf.f_type == BPF_FS_MAGIC;
}

/* Unlinks every pin in dir and dir itself; pins hold the only references, so the kernel frees them. */
static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char p[PATH_MAX + NAME_MAX + 2];

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (de->d_type == DT_DIR)
			remove_tree(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

/* Links first, so no program stays attached after its rules are gone; then the shared objects. */
static void teardown(struct state *st)
{
	char links[PATH_MAX];

	close_fds(st);
	snprintf(links, sizeof(links), "%s/links", st->dir);
	remove_tree(links);
	crash_point("teardown:links");
	remove_tree(st->dir);
}

const char *state_bpffs_path(void)
{
	const char *env = getenv("HOSTLO_BPFFS");

	return env && env[0] ? env : "/sys/fs/bpf";
}

bool state_bpffs_mounted(void)
{
	return is_bpffs(state_bpffs_path());
}

static int take_lock(struct state *st, char *err)
{
	st->lock_fd = open(st->bpffs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->lock_fd < 0)
		return seterr(err, "lock %s: %s", st->bpffs, strerror(errno));
	for (int waited = 0; flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0; waited++) {
		if (errno != EWOULDBLOCK)
			return seterr(err, "lock %s: %s", st->bpffs, strerror(errno));
		if (waited == LOCK_WAIT_S * 10)
			return seterr(err, "lock %s: another hostlo has held it for %d s", st->bpffs, LOCK_WAIT_S);
		usleep(100 * 1000);
	}
	return 0;
}

static int mount_bpffs(const char *path, char *err)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return seterr(err, "bpffs %s: cannot create: %s", path, strerror(errno));
	if (mount("bpf", path, "bpf", 0, "mode=0700") != 0)
		return seterr(err, "bpffs %s: cannot mount: %s%s", path, strerror(errno),
			    errno == EPERM ? " (needs CAP_SYS_ADMIN)" : "");
	return 0;
}

static int open_pinned(struct state *st, char *err)
{
	char p[PATH_MAX];
	struct hostlo_config cfg;
	__u32 zero = 0;

	/* the ABI first: another build's pins are to be reported, never mistaken for a broken state */
	snprintf(p, sizeof(p), "%s/config", st->dir);
	st->config_fd = bpf_obj_get(p);
	if (st->config_fd < 0)
		return -errno;
	if (bpf_map_lookup_elem(st->config_fd, &zero, &cfg) != 0)
		return -errno;
	if (cfg.abi_version != HOSTLO_ABI_VERSION) {
		seterr(err, "bpffs %s: pinned by a hostlo with ABI %u, this one has ABI %u: detach --all with that build first",
		       st->dir, cfg.abi_version, HOSTLO_ABI_VERSION);
		return -EPROTO;
	}
	for (int i = 0; i < NR_MAPS; i++) {
		if (map_fd(st, i) == &st->config_fd)
			continue;
		snprintf(p, sizeof(p), "%s/%s", st->dir, map_names[i]);
		*map_fd(st, i) = bpf_obj_get(p);
		if (*map_fd(st, i) < 0)
			return -errno;
	}
	for (int i = 0; i < NR_HOOKS; i++) {
		snprintf(p, sizeof(p), "%s/%s", st->dir, hook_names[i]);
		st->prog_fd[i] = bpf_obj_get(p);
		if (st->prog_fd[i] < 0)
			return -errno;
	}
	for (int i = 0; i < NR_HOST_HOOKS; i++) {
		snprintf(p, sizeof(p), "%s/%s", st->dir, host_hook_names[i]);
		st->host_prog_fd[i] = bpf_obj_get(p); /* absent when the kernel that loaded them could not */
	}
	st->present = true;
	return 0;
}

static int pin_fd(int fd, const char *dir, const char *name, char *err)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if (bpf_obj_pin(fd, p) != 0)
		return seterr(err, "pin %s: %s", p, strerror(errno));
	return 0;
}

/*
 * Loads the object once and pins it in a private directory that is renamed into place: other
 * hostlo runs see either no state or a complete one, never a half-pinned set.
 */
static int create_pinned(struct state *st, char *err)
{
	struct hostlo_config cfg = { .abi_version = HOSTLO_ABI_VERSION, .prog_build = prog_build() };
	char tmp[BPFFS_PATH_MAX + 32], links[BPFFS_PATH_MAX + 40];
	struct hostlo_bpf *skel = NULL;
	__u32 zero = 0;
	int ret = -1;

	snprintf(tmp, sizeof(tmp), "%s/" TMP_PREFIX "%d", st->bpffs, (int)getpid());
	snprintf(links, sizeof(links), "%s/links", tmp);
	if (mkdir(tmp, 0700) != 0 || mkdir(links, 0700) != 0) {
		seterr(err, "bpffs %s: %s", tmp, strerror(errno));
		remove_tree(tmp);
		return -1;
	}
	/* a kernel built without CONFIG_CGROUP_BPF fails later with an unhelpful EINVAL: say it here */
	if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, NULL) == 0) {
		seterr(err, "kernel: no cgroup sock_addr BPF programs (needs CONFIG_CGROUP_BPF, Linux 5.10+)");
		goto out;
	}
	skel = hostlo_bpf__open();
	if (!skel) {
		seterr(err, "load BPF object: %s", strerror(errno));
		goto out;
	}
	struct bpf_map *maps[NR_MAPS];
	struct bpf_program *progs[NR_HOOKS], *host_progs[NR_HOST_HOOKS];

	skel_parts(skel, maps, progs, host_progs);
#ifdef HOSTLO_CRASH_POINTS
	/* test builds only: a program the verifier rejects, to see how a rejection is reported */
	if (getenv("HOSTLO_TEST_BAD_PROG"))
		bpf_program__set_type(skel->progs.hostlo_connect4, BPF_PROG_TYPE_SOCKET_FILTER);
#endif
	if (hostlo_bpf__load(skel) != 0) {
		int e = errno;

		seterr(err, "load BPF programs: %s%s", strerror(e),
		     e == EPERM ? " (needs CAP_BPF or CAP_SYS_ADMIN, and CAP_NET_ADMIN)" :
		     verbose ? "" : " (run with -v for the verifier log)");
		goto out;
	}
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.hostlo_config), &zero, &cfg, BPF_ANY) != 0) {
		seterr(err, "init config map: %s", strerror(errno));
		goto out;
	}
	for (int i = 0; i < NR_MAPS; i++)
		if (pin_fd(bpf_map__fd(maps[i]), tmp, map_names[i], err))
			goto out;
	for (int i = 0; i < NR_HOOKS; i++)
		if (pin_fd(bpf_program__fd(progs[i]), tmp, hook_names[i], err))
			goto out;
	for (int i = 0; i < NR_HOST_HOOKS; i++)
		if (bpf_program__fd(host_progs[i]) >= 0 && pin_fd(bpf_program__fd(host_progs[i]), tmp, host_hook_names[i], err))
			goto out;
	crash_point("create:pinned");
	if (rename(tmp, st->dir) != 0) {
		seterr(err, "bpffs %s: %s", st->dir, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (ret)
		remove_tree(tmp);
	hostlo_bpf__destroy(skel);
	return ret;
}

/* Identifies this binary's BPF object: FNV-1a over the embedded ELF bytes. */
static __u64 prog_build(void)
{
	size_t len;
	const unsigned char *p = hostlo_bpf__elf_bytes(&len);
	__u64 h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

/*
 * The pinned programs come from another hostlo build: load this build's programs against the pinned
 * maps, swap every link to them in place (bpf_link_update: never a moment without a program), then
 * re-pin them and record the build last, so a crash at any step is redone by the next attach.
 */
static int upgrade_programs(struct state *st, char *err)
{
	struct hostlo_bpf *skel = hostlo_bpf__open();
	struct hostlo_config cfg;
	char links[PATH_MAX], p[PATH_MAX], np[PATH_MAX];
	struct dirent *de;
	__u32 zero = 0;
	int ret = -1;
	DIR *d;

	if (!skel)
		return seterr(err, "upgrade: open BPF object: %s", strerror(errno));
	struct bpf_map *maps[NR_MAPS];
	struct bpf_program *progs[NR_HOOKS], *host_progs[NR_HOST_HOOKS];

	skel_parts(skel, maps, progs, host_progs);

	for (int i = 0; i < NR_MAPS; i++) {
		if (bpf_map__reuse_fd(maps[i], *map_fd(st, i)) != 0) {
			seterr(err, "upgrade: reuse map %s: %s", map_names[i], strerror(errno));
			goto out;
		}
	}
	if (hostlo_bpf__load(skel) != 0) {
		seterr(err, "upgrade: load BPF programs: %s%s", strerror(errno), verbose ? "" : " (run with -v for the verifier log)");
		goto out;
	}
	crash_point("upgrade:loaded");
	snprintf(links, sizeof(links), "%s/links", st->dir);
	d = opendir(links);
	while (d && (de = readdir(d))) {
		unsigned long long id;
		char hook[16];
		__u32 prog_id;
		int h, fd;

		if (sscanf(de->d_name, "%llu-%15s", &id, hook) != 2)
			continue;
		for (h = 0; h < NR_HOOKS && strcmp(hook, hook_names[h]); h++)
			;
		if (h == NR_HOOKS || (fd = live_link(st, id, h, &prog_id)) < 0)
			continue; /* gc's business */
		if (bpf_link_update(fd, bpf_program__fd(progs[h]), NULL) != 0) {
			seterr(err, "upgrade: update link %s: %s", de->d_name, strerror(errno));
			close(fd);
			closedir(d);
			goto out;
		}
		close(fd);
		crash_point("upgrade:link");
	}
	if (d)
		closedir(d);
	for (int h = 0; h < NR_HOST_HOOKS; h++) {
		int fd;

		snprintf(p, sizeof(p), "%s/links/host-%s", st->dir, host_hook_names[h]);
		if (bpf_program__fd(host_progs[h]) < 0 || (fd = bpf_obj_get(p)) < 0)
			continue;
		if (bpf_link_update(fd, bpf_program__fd(host_progs[h]), NULL) != 0) {
			seterr(err, "upgrade: update link host-%s: %s", host_hook_names[h], strerror(errno));
			close(fd);
			goto out;
		}
		close(fd);
	}
	for (int h = 0; h < NR_HOST_HOOKS; h++) {
		if (bpf_program__fd(host_progs[h]) < 0)
			continue;
		snprintf(np, sizeof(np), "%s/%s-new", st->dir, host_hook_names[h]);
		snprintf(p, sizeof(p), "%s/%s", st->dir, host_hook_names[h]);
		unlink(np);
		if (bpf_obj_pin(bpf_program__fd(host_progs[h]), np) != 0 || rename(np, p) != 0) {
			seterr(err, "upgrade: pin %s: %s", p, strerror(errno));
			goto out;
		}
		if (st->host_prog_fd[h] >= 0)
			close(st->host_prog_fd[h]);
		st->host_prog_fd[h] = dup(bpf_program__fd(host_progs[h]));
	}
	for (int h = 0; h < NR_HOOKS; h++) {
		snprintf(np, sizeof(np), "%s/%s-new", st->dir, hook_names[h]);
		snprintf(p, sizeof(p), "%s/%s", st->dir, hook_names[h]);
		unlink(np);
		if (bpf_obj_pin(bpf_program__fd(progs[h]), np) != 0 || rename(np, p) != 0) {
			seterr(err, "upgrade: pin %s: %s", p, strerror(errno));
			goto out;
		}
		close(st->prog_fd[h]);
		st->prog_fd[h] = dup(bpf_program__fd(progs[h]));
	}
	crash_point("upgrade:pinned");
	if (bpf_map_lookup_elem(st->config_fd, &zero, &cfg) != 0) {
		seterr(err, "upgrade: read config: %s", strerror(errno));
		goto out;
	}
	cfg.prog_build = prog_build();
	if (bpf_map_update_elem(st->config_fd, &zero, &cfg, BPF_ANY) != 0) {
		seterr(err, "upgrade: write config: %s", strerror(errno));
		goto out;
	}
	ret = 0;
out:
	hostlo_bpf__destroy(skel);
	return ret;
}

/* A crashed run can leave its private directory behind; nothing in it was ever in use. */
static void remove_stale_tmp(struct state *st)
{
	DIR *d = opendir(st->bpffs);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char p[PATH_MAX];

		if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", st->bpffs, de->d_name);
		remove_tree(p);
	}
	closedir(d);
}

int state_open(struct state *st, enum open_mode mode, char *err)
{
	bool create = mode == OPEN_CREATE;
	const char *env = state_bpffs_path();
	struct stat sb;
	int ret;

	memset(st, 0, sizeof(*st));
	st->lock_fd = -1;
	for (int i = 0; i < NR_MAPS; i++)
		*map_fd(st, i) = -1; /* not 0: closing "unset" fds would close stdin, or a server's socket */
	for (int i = 0; i < NR_HOOKS; i++)
		st->prog_fd[i] = -1;
	for (int i = 0; i < NR_HOST_HOOKS; i++)
		st->host_prog_fd[i] = -1;
	if (strlen(env) >= sizeof(st->bpffs))
		return seterr(err, "HOSTLO_BPFFS: path too long");
	snprintf(st->bpffs, sizeof(st->bpffs), "%s", env);
	snprintf(st->dir, sizeof(st->dir), "%s/hostlo", st->bpffs);
	libbpf_set_print(libbpf_log);

	if (!is_bpffs(st->bpffs)) {
		if (!create)
			return 0; /* no bpffs: nothing of hostlo can exist */
		if (mount_bpffs(st->bpffs, err))
			return -1;
	}
	if (take_lock(st, err))
		return -1;
	crash_point("lock:held");
	remove_stale_tmp(st);
	if (mode == OPEN_LOCK_ONLY)
		return 0;
	if (stat(st->dir, &sb) != 0) {
		if (!create)
			return 0;
		if (create_pinned(st, err))
			return -1;
	}
	ret = open_pinned(st, err);
	if (ret == -EPROTO)
		return -1;
	if (ret < 0) {
		/* an incomplete directory is what a crash in teardown leaves: finish the teardown */
		teardown(st);
		if (!create)
			return 0;
		if (create_pinned(st, err))
			return -1;
		ret = open_pinned(st, err);
		if (ret < 0)
			return ret == -EPROTO ? -1 : seterr(err, "bpffs %s: %s", st->dir, strerror(-ret));
	}
	if (create) {
		struct hostlo_config cfg;
		__u32 zero = 0;

		if (bpf_map_lookup_elem(st->config_fd, &zero, &cfg) != 0)
			return seterr(err, "read config map: %s", strerror(errno));
		if (cfg.prog_build != prog_build() && upgrade_programs(st, err))
			return -1;
	}
	return 0;
}

void state_close(struct state *st)
{
	close_fds(st);
	if (st->lock_fd >= 0)
		close(st->lock_fd); /* releases the lock */
	st->lock_fd = -1;
}

static void link_path(const struct state *st, uint64_t id, int hook, char *buf, size_t len)
{
	snprintf(buf, len, "%s/links/%llu-%s", st->dir, (unsigned long long)id, hook_names[hook]);
}

static __u32 fd_prog_id(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

/*
 * A pinned link counts only while it still attaches a program to this very cgroup for this hook
 * (a removed cgroup leaves a defunct link behind). Returns its fd, or -1; *prog_id is its program.
 */
static int live_link(const struct state *st, uint64_t id, int hook, __u32 *prog_id)
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
	    info.cgroup.cgroup_id != id || info.cgroup.attach_type != hook_types[hook]) {
		close(fd);
		return -1;
	}
	*prog_id = info.prog_id;
	return fd;
}

static bool link_ok(const struct state *st, uint64_t id, int hook)
{
	__u32 prog_id;
	int fd = live_link(st, id, hook, &prog_id);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static void unpin_links(const struct state *st, uint64_t id)
{
	char p[PATH_MAX];

	for (int h = 0; h < NR_HOOKS; h++) {
		link_path(st, id, h, p, sizeof(p));
		unlink(p);
	}
}

static int read_config(struct state *st, struct hostlo_config *cfg, char *err)
{
	__u32 zero = 0;

	if (bpf_map_lookup_elem(st->config_fd, &zero, cfg) != 0)
		return seterr(err, "read config map: %s", strerror(errno));
	return 0;
}

static int write_config(struct state *st, const struct hostlo_config *cfg, char *err)
{
	__u32 zero = 0;

	if (bpf_map_update_elem(st->config_fd, &zero, cfg, BPF_ANY) != 0)
		return seterr(err, "update config map: %s", strerror(errno));
	return 0;
}

static int collect_keys(int fd, size_t key_size, void **keys, size_t *n, char *err)
{
	char cur[64], next[64];
	void *prev = NULL;
	size_t cap = 0;

	*keys = NULL;
	*n = 0;
	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		if (*n == cap) {
			void *k = realloc(*keys, (cap = cap ? cap * 2 : 64) * key_size);

			if (!k) {
				free(*keys);
				*keys = NULL;
				return seterr(err, "out of memory");
			}
			*keys = k;
		}
		memcpy((char *)*keys + *n * key_size, next, key_size);
		(*n)++;
		memcpy(cur, next, key_size);
		prev = cur;
	}
	return 0;
}

static int u64_cmp(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return *x < *y ? -1 : *x > *y;
}

int state_attached(struct state *st, uint64_t **ids, size_t *n, char *err)
{
	void *keys;

	*ids = NULL;
	*n = 0;
	if (!st->present)
		return 0;
	if (collect_keys(st->rules_fd, sizeof(uint64_t), &keys, n, err))
		return -1;
	*ids = keys;
	if (*n)
		qsort(*ids, *n, sizeof(**ids), u64_cmp);
	return 0;
}

static size_t count_attached(struct state *st)
{
	uint64_t *ids;
	size_t n;
	char err[ERRLEN];

	if (state_attached(st, &ids, &n, err))
		return 1; /* unknown: keep the shared objects */
	free(ids);
	return n;
}

/* Builds a rules map sized to exactly its entries (a small rule set costs little kernel memory). */
static int make_rules_map(const struct ruleset *rs, char *err)
{
	size_t n = ruleset_entries(rs);
	struct hostlo_rule_key *keys = calloc(n ? n : 1, sizeof(*keys));
	struct hostlo_rule_val *vals = calloc(n ? n : 1, sizeof(*vals));
	__u32 count = (__u32)n;
	int fd = -1;

	if (!keys || !vals) {
		seterr(err, "rules: out of memory");
		goto out;
	}
	if (n > HOSTLO_MAX_RULE_ENTRIES) {
		seterr(err, "rules: %zu ports in all, at most %d", n, HOSTLO_MAX_RULE_ENTRIES);
		goto out;
	}
	fd = bpf_map_create(BPF_MAP_TYPE_HASH, "hostlo_cg_rules", sizeof(*keys), sizeof(*vals),
			    n ? (__u32)n : 1, NULL);
	if (fd < 0) {
		seterr(err, "create rules map: %s", strerror(errno));
		goto out;
	}
	ruleset_expand(rs, keys, vals);
	if (n && bpf_map_update_batch(fd, keys, vals, &count, NULL) != 0) {
		seterr(err, "fill rules map: %s", strerror(errno));
		close(fd);
		fd = -1;
	}
out:
	free(keys);
	free(vals);
	return fd;
}

static bool same_rules(const struct ruleset *a, const struct ruleset *b)
{
	char x[160], y[160];

	if (a->n != b->n)
		return false;
	for (int i = 0; i < a->n; i++) {
		if (a->r[i].host_ifindex != b->r[i].host_ifindex)
			return false;
		rule_format(&a->r[i], x, sizeof(x));
		rule_format(&b->r[i], y, sizeof(y));
		if (strcmp(x, y) != 0)
			return false;
	}
	return true;
}

/* Attaching again with the same rules changes nothing in the kernel, not even a map's id. */
static bool unchanged(struct state *st, uint64_t id, const struct ruleset *rs)
{
	struct ruleset *now = malloc(sizeof(*now)), *want = malloc(sizeof(*want));
	size_t n = ruleset_entries(rs);
	struct hostlo_rule_key *k = calloc(n ? n : 1, sizeof(*k));
	struct hostlo_rule_val *v = calloc(n ? n : 1, sizeof(*v));
	char err[ERRLEN];
	bool same = false;

	if (now && want && k && v && state_rules(st, id, now, err) == 0) {
		ruleset_expand(rs, k, v); /* the canonical form of what was asked: merged as the kernel's */
		same = ruleset_collapse(k, v, n, want, err) == 0 && same_rules(now, want);
		for (int h = 0; same && h < NR_HOOKS; h++) {
			__u32 prog_id;
			int fd = live_link(st, id, h, &prog_id);

			same = fd >= 0 && prog_id == fd_prog_id(st->prog_fd[h]);
			if (fd >= 0)
				close(fd);
		}
	}
	free(now);
	free(want);
	free(k);
	free(v);
	return same;
}

int state_attach(struct state *st, const struct cgroup *cg, const struct ruleset *rs, char *err)
{
	struct hostlo_config cfg, saved_cfg;
	bool created[NR_HOOKS] = { false };
	int rules_fd, cg_fd = -1, old_rules_fd = -1, ret = -1;
	__u64 id = cg->id;
	__u32 old_inner_id;
	char p[PATH_MAX], scratch[ERRLEN];

	if (cg->level < 1 || cg->level > HOSTLO_MAX_LEVEL)
		return seterr(err, "cgroup %s: cannot attach at level %d (1-%d)", cg->rel, cg->level, HOSTLO_MAX_LEVEL);
	if (unchanged(st, cg->id, rs))
		return 0; /* the same rules, fully linked to the current programs: nothing to do */
	rules_fd = make_rules_map(rs, err);
	if (rules_fd < 0)
		return -1;
	crash_point("attach:rules-map");
	cg_fd = open(cg->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg_fd < 0) {
		seterr(err, "cgroup %s: %s", cg->rel, strerror(errno));
		goto out;
	}
	/* keep the previous rules, to put them back if this attach fails half-way */
	if (bpf_map_lookup_elem(st->rules_fd, &id, &old_inner_id) == 0)
		old_rules_fd = bpf_map_get_fd_by_id(old_inner_id);
	if (read_config(st, &cfg, err))
		goto out;
	saved_cfg = cfg;

	/* rules before programs: a program never runs for this cgroup without its rules */
	if (bpf_map_update_elem(st->rules_fd, &id, &rules_fd, BPF_ANY) != 0) {
		seterr(err, "set rules of %s: %s%s", cg->rel, strerror(errno),
		     errno == E2BIG ? " (too many attached cgroups)" : "");
		goto out;
	}
	crash_point("attach:rules-set");
	cfg.level_mask |= 1ULL << cg->level;
	if ((__u32)cg->level > cfg.max_level)
		cfg.max_level = (__u32)cg->level;
	if (write_config(st, &cfg, err))
		goto restore;
	crash_point("attach:config");

	for (int h = 0; h < NR_HOOKS; h++) {
		__u32 prog_id;
		int link = live_link(st, id, h, &prog_id);

		if (link >= 0) {
			/* another build's program: swap it in place, the cgroup is never without one */
			if (prog_id != fd_prog_id(st->prog_fd[h]) && bpf_link_update(link, st->prog_fd[h], NULL) != 0) {
				seterr(err, "update %s of %s: %s", hook_names[h], cg->rel, strerror(errno));
				close(link);
				goto restore;
			}
			close(link);
			continue;
		}
		link_path(st, id, h, p, sizeof(p));
		unlink(p); /* stale: its cgroup or program is gone */
		link = bpf_link_create(st->prog_fd[h], cg_fd, hook_types[h], NULL);
		if (link < 0) {
			seterr(err, "attach %s to %s: %s%s", hook_names[h], cg->rel, strerror(errno),
			     errno == EPERM ? " (needs CAP_NET_ADMIN)" : "");
			goto restore;
		}
		/* an unpinned link dies with this process, so a crash here leaves nothing attached */
		if (bpf_obj_pin(link, p) != 0) {
			seterr(err, "pin %s: %s", p, strerror(errno));
			close(link);
			goto restore;
		}
		created[h] = true;
		close(link);
		crash_point("attach:linked");
	}
	ret = 0;
	goto out;

restore:
	for (int h = 0; h < NR_HOOKS; h++) {
		if (created[h]) {
			link_path(st, id, h, p, sizeof(p));
			unlink(p);
		}
	}
	if (old_rules_fd >= 0)
		bpf_map_update_elem(st->rules_fd, &id, &old_rules_fd, BPF_ANY);
	else
		bpf_map_delete_elem(st->rules_fd, &id);
	write_config(st, &saved_cfg, scratch); /* the first failure is the one to report */
out:
	if (ret && !count_attached(st))
		teardown(st); /* nothing else uses the shared objects: leave nothing new pinned */
	if (old_rules_fd >= 0)
		close(old_rules_fd);
	if (cg_fd >= 0)
		close(cg_fd);
	close(rules_fd);
	return ret;
}

/* Drops the counter rows that match: of one attachment (attach_id), or of vanished cgroups. */
static void drop_stats(struct state *st, uint64_t attach_id, struct cgtree *tree)
{
	struct hostlo_stats_key *keys;
	size_t n;
	char err[ERRLEN];

	if (collect_keys(st->stats_fd, sizeof(*keys), (void **)&keys, &n, err))
		return;
	for (size_t i = 0; i < n; i++) {
		bool drop = attach_id ? keys[i].attach_id == attach_id :
			    !cgtree_find(tree, keys[i].cgroup_id) || bpf_map_lookup_elem(st->rules_fd,
			    &keys[i].attach_id, &(__u32){ 0 }) != 0;
		if (drop)
			bpf_map_delete_elem(st->stats_fd, &keys[i]);
	}
	free(keys);
}

/* The level mask is a superset while detaching; recomputed here from the cgroups still attached. */
static int recompute_config(struct state *st, struct cgtree *tree, char *err)
{
	struct hostlo_config cfg;
	uint64_t *ids;
	size_t n;

	if (read_config(st, &cfg, err) || state_attached(st, &ids, &n, err))
		return -1;
	cfg.level_mask = 0;
	cfg.max_level = 0;
	for (size_t i = 0; i < n; i++) {
		const struct cgnode *node = cgtree_find(tree, ids[i]);
		int level = node ? node->level : HOSTLO_MAX_LEVEL; /* unknown: keep it findable */

		cfg.level_mask |= 1ULL << level;
		if ((__u32)level > cfg.max_level)
			cfg.max_level = (__u32)level;
	}
	free(ids);
	return write_config(st, &cfg, err);
}

/* Links, then rules, then counters; the shared objects go with the last attachment. */
static int detach_one(struct state *st, uint64_t id, struct cgtree *tree, char *err)
{
	unpin_links(st, id);
	crash_point("detach:unlinked");
	if (bpf_map_delete_elem(st->rules_fd, &id) != 0 && errno != ENOENT)
		return seterr(err, "remove rules of cgroup %llu: %s", (unsigned long long)id, strerror(errno));
	crash_point("detach:rules");
	drop_stats(st, id, tree);
	crash_point("detach:stats");
	if (recompute_config(st, tree, err))
		return -1;
	if (!count_attached(st))
		teardown(st);
	return 0;
}

int state_detach(struct state *st, uint64_t id, struct cgtree *tree, char *err)
{
	__u32 inner;

	if (!st->present || bpf_map_lookup_elem(st->rules_fd, &id, &inner) != 0)
		return 1;
	return detach_one(st, id, tree, err) ? -1 : 0;
}

void state_detach_all(struct state *st)
{
	teardown(st);
}

/* Link pins are named "<cgroup id>-<hook>". */
static int pinned_link_ids(struct state *st, uint64_t **ids, size_t *n)
{
	char links[PATH_MAX];
	struct dirent *de;
	size_t cap = 0;
	DIR *d;

	*ids = NULL;
	*n = 0;
	snprintf(links, sizeof(links), "%s/links", st->dir);
	d = opendir(links);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		unsigned long long id;
		char hook[16];

		if (sscanf(de->d_name, "%llu-%15s", &id, hook) != 2)
			continue;
		if (*n == cap) {
			uint64_t *x = realloc(*ids, (cap = cap ? cap * 2 : 64) * sizeof(*x));

			if (!x)
				break;
			*ids = x;
		}
		(*ids)[(*n)++] = id;
	}
	closedir(d);
	return 0;
}

/*
 * Whether every hook of the cgroup has its link. Usually a count of the link pins (one readdir for
 * all cgroups, so a command stays fast with thousands attached); thorough asks the kernel about each.
 */
static bool fully_linked(const struct state *st, uint64_t id, const uint64_t *linked, size_t nl, bool thorough)
{
	size_t pins = 0;

	if (thorough) {
		for (int h = 0; h < NR_HOOKS; h++)
			if (!link_ok(st, id, h))
				return false;
		return true;
	}
	for (size_t i = 0; i < nl; i++)
		pins += linked[i] == id;
	return pins == NR_HOOKS;
}

int state_gc(struct state *st, struct cgtree *tree, bool keep_empty, bool thorough, char *err)
{
	uint64_t *ids, *linked;
	size_t n, nl;
	int removed = 0;
	__u32 inner;

	if (!st->present)
		return 0;
	if (state_attached(st, &ids, &n, err))
		return -1;
	pinned_link_ids(st, &linked, &nl);
	if (nl)
		qsort(linked, nl, sizeof(*linked), u64_cmp);
	/* gone cgroups, and attachments a crash left without all their links */
	for (size_t i = 0; i < n; i++) {
		uint64_t *first = nl ? bsearch(&ids[i], linked, nl, sizeof(*linked), u64_cmp) : NULL;
		size_t from = 0, count = 0;

		if (first) { /* the run of pins for this id, around the one bsearch found */
			from = (size_t)(first - linked);
			while (from > 0 && linked[from - 1] == ids[i])
				from--;
			while (from + count < nl && linked[from + count] == ids[i])
				count++;
		}
		if (cgtree_find(tree, ids[i]) && fully_linked(st, ids[i], linked + from, count, thorough))
			continue;
		unpin_links(st, ids[i]);
		bpf_map_delete_elem(st->rules_fd, &ids[i]);
		drop_stats(st, ids[i], tree);
		removed++;
		crash_point("gc:removed");
	}
	free(ids);
	/* links whose rules are gone: a crash between the two steps of a detach */
	for (size_t i = 0; i < nl; i++)
		if ((i == 0 || linked[i] != linked[i - 1]) && bpf_map_lookup_elem(st->rules_fd, &linked[i], &inner) != 0)
			unpin_links(st, linked[i]);
	free(linked);
	drop_stats(st, 0, tree);
	if (recompute_config(st, tree, err))
		return -1;
	if (!keep_empty && !count_attached(st))
		teardown(st);
	return removed;
}

int state_rules(struct state *st, uint64_t id, struct ruleset *rs, char *err)
{
	struct hostlo_rule_key *keys = NULL;
	struct hostlo_rule_val *vals = NULL;
	size_t n = 0;
	__u32 inner_id;
	int fd, ret = -1;

	if (bpf_map_lookup_elem(st->rules_fd, &id, &inner_id) != 0)
		return seterr(err, "cgroup %llu: not attached", (unsigned long long)id);
	fd = bpf_map_get_fd_by_id(inner_id);
	if (fd < 0)
		return seterr(err, "rules of cgroup %llu: %s", (unsigned long long)id, strerror(errno));
	if (collect_keys(fd, sizeof(*keys), (void **)&keys, &n, err))
		goto out;
	vals = calloc(n ? n : 1, sizeof(*vals));
	if (!vals) {
		seterr(err, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (bpf_map_lookup_elem(fd, &keys[i], &vals[i]) != 0) {
			seterr(err, "rules of cgroup %llu: %s", (unsigned long long)id, strerror(errno));
			goto out;
		}
	}
	ret = ruleset_collapse(keys, vals, n, rs, err);
	for (int i = 0; ret == 0 && i < rs->n; i++) {
		struct rule *r = &rs->r[i];

		if (!r->host_ifindex)
			continue;
		r->host_listening = 0;
		for (unsigned p = r->port_min; p <= r->port_max; p++) {
			unsigned t = r->to_port ? r->to_port + (p - r->port_min) : p;

			r->host_listening += listener_present(st, (uint16_t)t);
		}
	}
out:
	free(keys);
	free(vals);
	close(fd);
	return ret;
}

int state_stats(struct state *st, struct stats_row **rows, size_t *n, char *err)
{
	int ncpu = libbpf_num_possible_cpus();
	struct hostlo_stats_key *keys;
	struct hostlo_stats_val *vals;

	*rows = NULL;
	*n = 0;
	if (!st->present)
		return 0;
	if (ncpu < 1)
		return seterr(err, "stats: cannot count CPUs: %s", strerror(-ncpu));
	if (collect_keys(st->stats_fd, sizeof(*keys), (void **)&keys, n, err))
		return -1;
	vals = calloc((size_t)ncpu, sizeof(*vals));
	*rows = calloc(*n ? *n : 1, sizeof(**rows));
	if (!vals || !*rows) {
		free(keys);
		free(vals);
		free(*rows);
		*rows = NULL;
		return seterr(err, "out of memory");
	}
	size_t out = 0;

	for (size_t i = 0; i < *n; i++) {
		if (bpf_map_lookup_elem(st->stats_fd, &keys[i], vals) != 0)
			continue; /* removed meanwhile */
		struct stats_row *r = &(*rows)[out++];

		r->cgroup_id = keys[i].cgroup_id;
		r->attach_id = keys[i].attach_id;
		for (int c = 0; c < ncpu; c++)
			for (int k = 0; k < HOSTLO_CNT_USED; k++)
				r->count[k] += vals[c].count[k];
	}
	*n = out;
	free(keys);
	free(vals);
	return 0;
}

int state_tracers(struct state *st, int delta, char *err)
{
	struct hostlo_config cfg;

	if (read_config(st, &cfg, err))
		return -1;
	if (delta < 0 && cfg.tracers == 0)
		return 0;
	cfg.tracers = (__u32)((int)cfg.tracers + delta);
	return write_config(st, &cfg, err);
}

uint64_t state_drops(struct state *st)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 *v = calloc(ncpu > 0 ? (size_t)ncpu : 1, sizeof(*v)), sum = 0;
	__u32 zero = 0;

	if (v && ncpu > 0 && bpf_map_lookup_elem(st->drops_fd, &zero, v) == 0)
		for (int i = 0; i < ncpu; i++)
			sum += v[i];
	free(v);
	return sum;
}

/* ---- host side ---- */

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

/* The target ports of a steering rule, into a bitmap of 65536 bits. */
static void steer_ports_of(const struct rule *r, uint8_t *bits)
{
	for (unsigned p = r->port_min; p <= r->port_max; p++) {
		unsigned t = r->to_port ? r->to_port + (p - r->port_min) : p;

		bits[t / 8] |= (uint8_t)(1u << (t % 8));
	}
}

static bool listener_present(struct state *st, uint16_t port)
{
	struct hostlo_listener_key k = { .port = port };
	__u64 cookie;

	return bpf_map_lookup_elem(st->listeners_fd, &k, &cookie) == 0;
}

/* The socket inodes listening on 127.0.0.1 on a wanted port in this netns (/proc/self/net/tcp). */
static size_t loopback_listeners(const uint8_t *want, unsigned long *inodes, uint16_t *ports, size_t max)
{
	FILE *f = fopen("/proc/self/net/tcp", "r");
	char line[512];
	size_t n = 0;

	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		unsigned addr, port, state;
		unsigned long inode;

		/* sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode; the address raw */
		if (sscanf(line, " %*d: %8X:%X %*s %X %*s %*s %*s %*s %*s %lu", &addr, &port, &state, &inode) != 4)
			continue;
		if (addr == htonl(INADDR_LOOPBACK) && state == 0x0A /* TCP_LISTEN */ && port < 65536 &&
		    (want[port / 8] & (1u << (port % 8))) && inode) {
			inodes[n] = inode;
			ports[n++] = (uint16_t)port;
		}
	}
	fclose(f);
	return n;
}

/* Finds a process holding socket inode, and takes a copy of its descriptor (pidfd_getfd). */
static int socket_by_inode(unsigned long inode)
{
	char want[64], p[64], link[64];
	struct dirent *pe, *fe;
	DIR *proc = opendir("/proc");
	int sock = -1;

	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	while (proc && sock < 0 && (pe = readdir(proc))) {
		int pid = atoi(pe->d_name);
		DIR *fds;

		if (pid <= 0)
			continue;
		snprintf(p, sizeof(p), "/proc/%d/fd", pid);
		if (!(fds = opendir(p)))
			continue;
		while (sock < 0 && (fe = readdir(fds))) {
			char fp[64 + NAME_MAX + 2];
			ssize_t l;

			snprintf(fp, sizeof(fp), "%s/%s", p, fe->d_name);
			l = readlink(fp, link, sizeof(link) - 1);
			if (l <= 0)
				continue;
			link[l] = '\0';
			if (strcmp(link, want) == 0) {
				int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

				if (pidfd >= 0) {
					sock = (int)syscall(SYS_pidfd_getfd, pidfd, atoi(fe->d_name), 0);
					close(pidfd);
				}
			}
		}
		closedir(fds);
	}
	if (proc)
		closedir(proc);
	return sock;
}

/* Listeners that were already open: hostlo_sockops sees only those that start listening later. */
static void add_open_listeners(struct state *st, const uint8_t *want)
{
	enum { MAX = 1024 };
	unsigned long inodes[MAX];
	uint16_t ports[MAX];
	size_t n = loopback_listeners(want, inodes, ports, MAX);

	for (size_t i = 0; i < n; i++) {
		struct hostlo_listener_key k = { .port = ports[i] };
		int fd;

		if (listener_present(st, ports[i]) || (fd = socket_by_inode(inodes[i])) < 0)
			continue;
		__u64 v = (__u64)fd;

		bpf_map_update_elem(st->listeners_fd, &k, &v, BPF_ANY); /* failing: a socket it cannot hold */
		close(fd);
	}
}

/* A pinned host link that still attaches its program where it should; else the pin is removed. */
static bool host_link_ok(const struct state *st, int h, const char *path, uint64_t where)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	int fd = bpf_obj_get(path);
	bool ok;

	if (fd < 0)
		return false;
	ok = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && info.prog_id == fd_prog_id(st->host_prog_fd[h]) &&
	     (h == 0 ? info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == where :
		       info.type == BPF_LINK_TYPE_NETNS && info.netns.netns_ino == where);
	close(fd);
	if (!ok)
		unlink(path);
	return ok;
}

static int host_links_up(struct state *st, const char *mnt, char *err)
{
	const char *targets[NR_HOST_HOOKS] = { mnt, "/proc/self/ns/net" };

	for (int h = 0; h < NR_HOST_HOOKS; h++) {
		char p[PATH_MAX];
		struct stat sb;
		int tfd, link;

		snprintf(p, sizeof(p), "%s/links/host-%s", st->dir, host_hook_names[h]);
		if (stat(targets[h], &sb) != 0)
			return seterr(err, "host side: %s: %s", targets[h], strerror(errno));
		if (host_link_ok(st, h, p, sb.st_ino))
			continue;
		tfd = open(targets[h], O_RDONLY | O_CLOEXEC);
		if (tfd < 0)
			return seterr(err, "host side: %s: %s", targets[h], strerror(errno));
		link = bpf_link_create(st->host_prog_fd[h], tfd, host_hook_types[h], NULL);
		close(tfd);
		if (link < 0)
			return seterr(err, "host side: attach %s to %s: %s", host_hook_names[h], targets[h], strerror(errno));
		if (bpf_obj_pin(link, p) != 0) {
			close(link);
			return seterr(err, "pin %s: %s", p, strerror(errno));
		}
		close(link);
		crash_point("host:linked");
	}
	return 0;
}

static void host_links_down(struct state *st)
{
	char p[PATH_MAX];

	for (int h = 0; h < NR_HOST_HOOKS; h++) {
		snprintf(p, sizeof(p), "%s/links/host-%s", st->dir, host_hook_names[h]);
		unlink(p);
	}
}

static __u64 netns_cookie(void)
{
	__u64 cookie = 0;
	socklen_t len = sizeof(cookie);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s >= 0) {
		if (getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0)
			cookie = 0;
		close(s);
	}
	return cookie;
}

/* Steering ports exist; host link pins exist (0, 1 or 2 of them). */
static void host_side_state(struct state *st, bool *ports, int *pins)
{
	char p[PATH_MAX];
	__u16 key;

	*ports = bpf_map_get_next_key(st->ports_fd, NULL, &key) == 0;
	*pins = 0;
	for (int h = 0; h < NR_HOST_HOOKS; h++) {
		snprintf(p, sizeof(p), "%s/links/host-%s", st->dir, host_hook_names[h]);
		*pins += access(p, F_OK) == 0;
	}
}

int state_host_sync(struct state *st, const char *mnt, enum host_sync how, char *err)
{
	uint8_t *want = calloc(65536 / 8, 1);
	struct ruleset *rs = malloc(sizeof(*rs));
	uint64_t *ids = NULL;
	__u16 *keys = NULL;
	size_t n = 0, nk = 0;
	bool any = false;
	int ret = -1;

	bool ports;
	int pins;

	if (st->present && how != HOST_SYNC_FULL) {
		/* a map probe and two stats, rather than a read of every attachment's rules */
		host_side_state(st, &ports, &pins);
		bool idle = !ports && !pins, whole = ports && pins == NR_HOST_HOOKS;

		/* a pass when something may have changed, or a crash left the host side half set up */
		if (!idle && !(how == HOST_SYNC_CHECK && whole))
			how = HOST_SYNC_FULL;
	}
	if (!st->present || how != HOST_SYNC_FULL) {
		free(want);
		free(rs);
		return 0;
	}
	if (!want || !rs) {
		seterr(err, "out of memory");
		goto out;
	}
	if (state_attached(st, &ids, &n, err))
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (state_rules(st, ids[i], rs, err))
			goto out;
		for (int j = 0; j < rs->n; j++) {
			if (rs->r[j].host_ifindex) {
				steer_ports_of(&rs->r[j], want);
				any = true;
			}
		}
	}
	if (any && st->host_prog_fd[0] < 0) {
		any = false; /* rules made on a kernel that has them, programs pinned by one that has not */
	}
	struct hostlo_config cfg;
	__u64 here = netns_cookie();

	if (read_config(st, &cfg, err))
		goto out;
	/*
	 * The host side belongs to the network namespace of the hostlo that made the steering rules.
	 * Another namespace (an init container's, a pod's) leaves it as it is: its links, its listeners.
	 */
	if (any && cfg.host_netns_cookie && cfg.host_netns_cookie != here) {
		ret = 0;
		goto out;
	}
	if (!any) {
		host_links_down(st); /* programs first: nothing is steered while the maps are emptied */
		if (cfg.host_netns_cookie) {
			cfg.host_netns_cookie = 0;
			if (write_config(st, &cfg, err))
				goto out;
		}
	}
	/* ports no rule names any longer: forget them and their listeners; then add the new ones */
	if (collect_keys(st->ports_fd, sizeof(*keys), (void **)&keys, &nk, err))
		goto out;
	for (size_t i = 0; i < nk; i++) {
		if (any && (want[keys[i] / 8] & (1u << (keys[i] % 8))))
			continue;
		struct hostlo_listener_key k = { .port = keys[i] };

		bpf_map_delete_elem(st->ports_fd, &keys[i]);
		bpf_map_delete_elem(st->listeners_fd, &k);
	}
	if (!any) {
		ret = 0;
		goto out;
	}
	for (unsigned p = 0; p < 65536; p++) {
		__u16 port = (__u16)p;
		__u8 one = 1;

		if ((want[p / 8] & (1u << (p % 8))) && bpf_map_update_elem(st->ports_fd, &port, &one, BPF_ANY) != 0) {
			seterr(err, "host side: steering port %u: %s", p, strerror(errno));
			goto out;
		}
	}
	if (cfg.host_netns_cookie != here) {
		cfg.host_netns_cookie = here;
		if (write_config(st, &cfg, err))
			goto out;
	}
	/* the program that picks up listeners first, so one that starts meanwhile is not missed */
	if (host_links_up(st, mnt, err))
		goto out;
	add_open_listeners(st, want);
	ret = 0;
out:
	free(want);
	free(rs);
	free(ids);
	free(keys);
	return ret;
}
