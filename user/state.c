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
#include <linux/inet_diag.h>
#include <linux/magic.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
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
#define NR_MAPS 10
static const char *const map_names[NR_MAPS] = { "rules", "stats", "config", "socks", "events", "drops",
						"flows", "listeners", "steerports", "attached" };
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
		skel->maps.hostlo_listeners, skel->maps.hostlo_steer_ports, skel->maps.hostlo_attached,
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
			      &st->drops_fd, &st->flows_fd, &st->listeners_fd, &st->ports_fd, &st->attached_fd };

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
	free(st->dump_keys);
	free(st->dump_vals);
	st->dump_keys = NULL;
	st->dump_vals = NULL;
	st->dump_n = 0;
	st->dump_valid = false;
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

/*
 * Every entry of a hash map, in batches of thousands (a syscall each, not two per entry). vsize is
 * the value size as user space sees it (times the CPUs for a per-CPU map). Caller frees both.
 */
static int dump_map(int fd, size_t ksize, size_t vsize, void **keys, void **vals, size_t *n, char *err)
{
	size_t cap = 0;
	__u32 token;
	bool first = true;

	*keys = *vals = NULL;
	*n = 0;
	for (;;) {
		if (cap - *n < 1024) {
			size_t ncap = cap ? cap * 2 : 4096;
			void *k = realloc(*keys, ncap * ksize), *v = k ? realloc(*vals, ncap * vsize) : NULL;

			if (k)
				*keys = k;
			if (!k || !v)
				goto nomem;
			*vals = v;
			cap = ncap;
		}
		__u32 count = (__u32)(cap - *n);
		int r = bpf_map_lookup_batch(fd, first ? NULL : &token, &token, (char *)*keys + *n * ksize,
					     (char *)*vals + *n * vsize, &count, NULL);

		*n += count; /* valid even with ENOENT: the last batch */
		first = false;
		if (r < 0 && errno == ENOENT)
			return 0;
		if (r < 0) {
			int e = errno;

			free(*keys);
			free(*vals);
			*keys = *vals = NULL;
			*n = 0;
			return seterr(err, "read map: %s", strerror(e));
		}
	}
nomem:
	free(*keys);
	free(*vals);
	*keys = *vals = NULL;
	*n = 0;
	return seterr(err, "out of memory");
}

static int collect_keys(int fd, size_t key_size, void **keys, size_t *n, char *err)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	size_t vsize;
	void *vals;

	if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
		return seterr(err, "map info: %s", strerror(errno));
	vsize = info.value_size;
	if (info.type == BPF_MAP_TYPE_PERCPU_HASH || info.type == BPF_MAP_TYPE_LRU_PERCPU_HASH)
		vsize = ((vsize + 7) & ~(size_t)7) * (size_t)libbpf_num_possible_cpus();
	if (dump_map(fd, key_size, vsize, keys, &vals, n, err))
		return -1;
	free(vals);
	return 0;
}

static int u64_cmp(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return *x < *y ? -1 : *x > *y;
}

/* hostlo_attached as read in one batch: ids sorted, vals in the same order. Caller frees both. */
struct attached_table {
	uint64_t *ids;
	struct hostlo_attached *vals;
	size_t n;
};

static void attached_free(struct attached_table *t)
{
	free(t->ids);
	free(t->vals);
	memset(t, 0, sizeof(*t));
}

struct attached_pair {
	uint64_t id;
	struct hostlo_attached a;
};

static int pair_cmp(const void *a, const void *b)
{
	return u64_cmp(&((const struct attached_pair *)a)->id, &((const struct attached_pair *)b)->id);
}

static int attached_load(struct state *st, struct attached_table *t, char *err)
{
	struct attached_pair *pairs;
	void *k, *v;

	memset(t, 0, sizeof(*t));
	if (!st->present)
		return 0;
	if (dump_map(st->attached_fd, sizeof(uint64_t), sizeof(struct hostlo_attached), &k, &v, &t->n, err))
		return -1;
	t->ids = k;
	t->vals = v;
	pairs = malloc((t->n ? t->n : 1) * sizeof(*pairs));
	if (!pairs) {
		attached_free(t);
		return seterr(err, "out of memory");
	}
	for (size_t i = 0; i < t->n; i++)
		pairs[i] = (struct attached_pair){ t->ids[i], t->vals[i] };
	qsort(pairs, t->n, sizeof(*pairs), pair_cmp);
	for (size_t i = 0; i < t->n; i++) {
		t->ids[i] = pairs[i].id;
		t->vals[i] = pairs[i].a;
	}
	free(pairs);
	return 0;
}

static const struct hostlo_attached *attached_find(const struct attached_table *t, uint64_t id)
{
	uint64_t *hit = t->n ? bsearch(&id, t->ids, t->n, sizeof(id), u64_cmp) : NULL;

	return hit ? &t->vals[hit - t->ids] : NULL;
}

int state_attached(struct state *st, uint64_t **ids, size_t *n, char *err)
{
	struct attached_table t;

	*ids = NULL;
	*n = 0;
	if (attached_load(st, &t, err))
		return -1;
	*ids = t.ids;
	*n = t.n;
	free(t.vals);
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

/* Every rule entry of every attached cgroup, read in batches; kept until this process changes them. */
static int rules_dump(struct state *st, char *err)
{
	void *k, *v;

	if (st->dump_valid)
		return 0;
	free(st->dump_keys);
	free(st->dump_vals);
	st->dump_keys = NULL;
	st->dump_vals = NULL;
	if (dump_map(st->rules_fd, sizeof(*st->dump_keys), sizeof(*st->dump_vals), &k, &v, &st->dump_n, err))
		return -1;
	st->dump_keys = k;
	st->dump_vals = v;
	st->dump_valid = true;
	return 0;
}

/* Removes the entries of cgroup id of generation gen (0: every generation). */
static int delete_entries(struct state *st, uint64_t id, __u32 gen, char *err)
{
	if (rules_dump(st, err))
		return -1;
	for (size_t i = 0; i < st->dump_n; i++) {
		const struct hostlo_rule_key *k = &st->dump_keys[i];

		if (k->attach_id == id && (!gen || k->gen == gen) &&
		    bpf_map_delete_elem(st->rules_fd, k) != 0 && errno != ENOENT)
			return seterr(err, "remove rules of cgroup %llu: %s", (unsigned long long)id, strerror(errno));
	}
	st->dump_valid = false;
	return 0;
}

/* The rule set as map entries of cgroup id, generation gen; caller frees *keys and *vals. */
static int expand_entries(const struct ruleset *rs, uint64_t id, __u32 gen, struct hostlo_rule_key **keys,
			  struct hostlo_rule_val **vals, size_t *n, char *err)
{
	*n = ruleset_entries(rs);
	if (*n > HOSTLO_MAX_RULE_ENTRIES)
		return seterr(err, "rules: %zu ports in all, at most %d", *n, HOSTLO_MAX_RULE_ENTRIES);
	*keys = calloc(*n ? *n : 1, sizeof(**keys));
	*vals = calloc(*n ? *n : 1, sizeof(**vals));
	if (!*keys || !*vals) {
		free(*keys);
		free(*vals);
		return seterr(err, "rules: out of memory");
	}
	ruleset_expand(rs, *keys, *vals);
	for (size_t i = 0; i < *n; i++) {
		(*keys)[i].attach_id = id;
		(*keys)[i].gen = gen;
	}
	return 0;
}

/*
 * Removes the rule entries no call can reach: of cgroups no longer attached, of generations a swap
 * replaced (no longer live since an earlier hostlo run, so no program still reads them), of crashed
 * runs. A read of every entry (about 1 ms): gc, and an attach that finds the map full, run it.
 */
static int sweep_rules(struct state *st, char *err)
{
	struct attached_table t;

	if (attached_load(st, &t, err) || rules_dump(st, err)) {
		attached_free(&t);
		return -1;
	}
	for (size_t i = 0; i < st->dump_n; i++) {
		const struct hostlo_rule_key *k = &st->dump_keys[i];
		const struct hostlo_attached *a = attached_find(&t, k->attach_id);

		if (!a || a->gen != k->gen) {
			bpf_map_delete_elem(st->rules_fd, k);
			st->dump_valid = false;
		}
	}
	for (size_t i = 0; i < t.n; i++) {
		if (t.vals[i].stale) {
			t.vals[i].stale = 0;
			bpf_map_update_elem(st->attached_fd, &t.ids[i], &t.vals[i], BPF_EXIST);
		}
	}
	attached_free(&t);
	return 0;
}

static int write_entries(struct state *st, const struct ruleset *rs, uint64_t id, __u32 gen, char *err)
{
	struct hostlo_rule_key *keys;
	struct hostlo_rule_val *vals;
	size_t n;
	int ret = 0;

	if (expand_entries(rs, id, gen, &keys, &vals, &n, err))
		return -1;
	__u32 count = (__u32)n;

	st->dump_valid = false;
	int e = n && bpf_map_update_batch(st->rules_fd, keys, vals, &count, NULL) != 0 ? errno : 0;

	if (e == E2BIG) {
		/* full: make room by removing what no call can reach (replaced generations), then again */
		count = (__u32)n;
		if (sweep_rules(st, err) != 0)
			e = E2BIG;
		else
			e = bpf_map_update_batch(st->rules_fd, keys, vals, &count, NULL) != 0 ? errno : 0;
		st->dump_valid = false;
	}
	if (e)
		ret = seterr(err, "set rules: %s%s", strerror(e),
			     e == E2BIG ? " (too many rule entries over all attached cgroups)" : "");
	free(keys);
	free(vals);
	return ret;
}

/* Attaching again with the same rules changes nothing in the kernel, not even a generation. */
static bool unchanged(struct state *st, uint64_t id, const struct ruleset *rs)
{
	struct hostlo_rule_key *keys = NULL;
	struct hostlo_rule_val *vals = NULL, now;
	struct hostlo_attached a;
	char err[ERRLEN];
	size_t n;
	bool same;

	if (bpf_map_lookup_elem(st->attached_fd, &id, &a) != 0 || expand_entries(rs, id, a.gen, &keys, &vals, &n, err))
		return false;
	same = a.entries == n && a.origin == rs->origin;
	for (size_t i = 0; same && i < n; i++)
		same = bpf_map_lookup_elem(st->rules_fd, &keys[i], &now) == 0 && memcmp(&now, &vals[i], sizeof(now)) == 0;
	for (int h = 0; same && h < NR_HOOKS; h++) {
		__u32 prog_id;
		int fd = live_link(st, id, h, &prog_id);

		same = fd >= 0 && prog_id == fd_prog_id(st->prog_fd[h]);
		if (fd >= 0)
			close(fd);
	}
	free(keys);
	free(vals);
	return same;
}

static int detach_one(struct state *st, uint64_t id, struct cgtree *tree, char *err);

/*
 * An attach of another cgroup was killed while creating its links (attach skips the gc that would
 * find it): complete means keep it, else remove it, so it is never left half linked.
 */
int state_repair_attach(struct state *st, uint64_t self, char *err)
{
	struct hostlo_config cfg;
	uint64_t id;
	bool whole = true;

	if (!st->present)
		return 0;
	if (read_config(st, &cfg, err))
		return -1;
	id = cfg.attach_pending;
	if (!id)
		return 0;
	for (int h = 0; whole && h < NR_HOOKS; h++)
		whole = link_ok(st, id, h);
	if (!whole && id != self && detach_one(st, id, NULL, err))
		return -1;
	if (!st->present)
		return 0; /* it was the last attachment: everything is gone, nothing to clear */
	if (read_config(st, &cfg, err))
		return -1;
	cfg.attach_pending = 0;
	return write_config(st, &cfg, err);
}

int state_attach(struct state *st, const struct cgroup *cg, const struct ruleset *rs, char *err)
{
	struct hostlo_config cfg, saved_cfg;
	struct hostlo_attached cur, next = { .level = (__u8)cg->level, .entries = (__u32)ruleset_entries(rs),
					     .origin = rs->origin };

	for (int i = 0; i < rs->n; i++)
		next.steers |= rs->r[i].host_ifindex != 0;
	bool created[NR_HOOKS] = { false }, was;
	int cg_fd = -1, ret = -1;
	__u64 id = cg->id;
	char p[PATH_MAX], scratch[ERRLEN];

	if (cg->level < 1 || cg->level > HOSTLO_MAX_LEVEL)
		return seterr(err, "cgroup %s: cannot attach at level %d (1-%d)", cg->rel, cg->level, HOSTLO_MAX_LEVEL);
	if (unchanged(st, cg->id, rs))
		return 0; /* the same rules, fully linked to the current programs: nothing to do */
	if (read_config(st, &cfg, err))
		return -1;
	was = bpf_map_lookup_elem(st->attached_fd, &id, &cur) == 0;
	/* a generation never handed out before (kept even if this attach fails): entries a crashed
	 * attach left behind can never become live */
	next.gen = ++cfg.last_gen ? cfg.last_gen : ++cfg.last_gen;
	if (next.steers || (was && cur.steers))
		cfg.host_pending = 1; /* steering rules come or go: the host side follows, now or next command */
	if (write_config(st, &cfg, err))
		return -1;
	saved_cfg = cfg;
	if (was) {
		/* the live generation becomes stale; one that is stale already goes now (a second swap
		 * before any gc: it stopped being live in an earlier run, no program still reads it) */
		if (cur.stale) {
			if (delete_entries(st, id, cur.stale_gen, err))
				goto restore;
			cur.stale = 0; /* what a failed attach puts back */
		}
		next.stale_gen = cur.gen;
		next.stale = cur.entries;
	}
	if (write_entries(st, rs, id, next.gen, err))
		goto restore;
	crash_point("attach:rules-map");
	cg_fd = open(cg->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg_fd < 0) {
		seterr(err, "cgroup %s: %s", cg->rel, strerror(errno));
		goto restore;
	}

	/* rules before programs: a program never runs for this cgroup without its rules; this one
	 * update makes the new generation live, so a concurrent call sees the old rules or the new, whole */
	if (bpf_map_update_elem(st->attached_fd, &id, &next, BPF_ANY) != 0) {
		seterr(err, "set rules of %s: %s%s", cg->rel, strerror(errno),
		     errno == E2BIG ? " (too many attached cgroups)" : "");
		goto restore;
	}
	crash_point("attach:rules-set");
	cfg.level_mask |= 1ULL << cg->level;
	if ((__u32)cg->level > cfg.max_level)
		cfg.max_level = (__u32)cg->level;
	cfg.attach_pending = id; /* a crash before all links exist: the next command removes the attachment */
	if (write_config(st, &cfg, err))
		goto restore_config;
	crash_point("attach:config");

	for (int h = 0; h < NR_HOOKS; h++) {
		__u32 prog_id;
		int link = live_link(st, id, h, &prog_id);

		if (link >= 0) {
			/* another build's program: swap it in place, the cgroup is never without one */
			if (prog_id != fd_prog_id(st->prog_fd[h]) && bpf_link_update(link, st->prog_fd[h], NULL) != 0) {
				seterr(err, "update %s of %s: %s", hook_names[h], cg->rel, strerror(errno));
				close(link);
				goto restore_config;
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
			goto restore_config;
		}
		/* an unpinned link dies with this process, so a crash here leaves nothing attached */
		if (bpf_obj_pin(link, p) != 0) {
			seterr(err, "pin %s: %s", p, strerror(errno));
			close(link);
			goto restore_config;
		}
		created[h] = true;
		close(link);
		crash_point("attach:linked");
	}
	cfg.attach_pending = 0;
	if (write_config(st, &cfg, err))
		goto restore_config;
	ret = 0;
	goto out;

restore_config:
restore:
	for (int h = 0; h < NR_HOOKS; h++) {
		if (created[h]) {
			link_path(st, id, h, p, sizeof(p));
			unlink(p);
		}
	}
	if (was) {
		bpf_map_update_elem(st->attached_fd, &id, &cur, BPF_ANY);
	} else {
		bpf_map_delete_elem(st->attached_fd, &id);
	}
	/* the new generation's entries stay until a gc: a call that read it just before the rollback
	 * still finds its rule */
	write_config(st, &saved_cfg, scratch);
out:
	if (ret && !count_attached(st))
		teardown(st); /* nothing else uses the shared objects: leave nothing new pinned */
	if (cg_fd >= 0)
		close(cg_fd);
	return ret;
}

/* Drops the counter rows that match: of one attachment (attach_id), or of vanished cgroups. */
static void drop_stats(struct state *st, uint64_t attach_id, struct cgtree *tree)
{
	struct hostlo_stats_key *keys;
	size_t n;
	char err[ERRLEN];

	struct attached_table t;

	if (attached_load(st, &t, err))
		return;
	if (collect_keys(st->stats_fd, sizeof(*keys), (void **)&keys, &n, err)) {
		attached_free(&t);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		bool drop = attach_id ? keys[i].attach_id == attach_id :
			    !attached_find(&t, keys[i].attach_id) || !cgtree_find(tree, keys[i].cgroup_id);
		if (drop)
			bpf_map_delete_elem(st->stats_fd, &keys[i]);
	}
	free(keys);
	attached_free(&t);
}

/* The level mask is a superset while detaching; recomputed here from the cgroups still attached. */
static int recompute_config(struct state *st, char *err)
{
	struct hostlo_config cfg;
	struct attached_table t;

	if (read_config(st, &cfg, err) || attached_load(st, &t, err))
		return -1;
	cfg.level_mask = 0;
	cfg.max_level = 0;
	for (size_t i = 0; i < t.n; i++) {
		int level = t.vals[i].level;

		cfg.level_mask |= 1ULL << level;
		if ((__u32)level > cfg.max_level)
			cfg.max_level = (__u32)level;
	}
	attached_free(&t);
	return write_config(st, &cfg, err);
}

/* Links, then rules, then counters; the shared objects go with the last attachment. */
static int detach_one(struct state *st, uint64_t id, struct cgtree *tree, char *err)
{
	struct hostlo_attached a;
	struct hostlo_config cfg;

	if (bpf_map_lookup_elem(st->attached_fd, &id, &a) == 0 && a.steers) {
		if (read_config(st, &cfg, err))
			return -1;
		cfg.host_pending = 1; /* its steering ports go: the host side follows */
		if (write_config(st, &cfg, err))
			return -1;
	}
	unpin_links(st, id);
	crash_point("detach:unlinked");
	if (bpf_map_delete_elem(st->attached_fd, &id) != 0 && errno != ENOENT)
		return seterr(err, "remove rules of cgroup %llu: %s", (unsigned long long)id, strerror(errno));
	crash_point("detach:rules");
	if (delete_entries(st, id, 0, err))
		return -1;
	drop_stats(st, id, tree);
	crash_point("detach:stats");
	if (recompute_config(st, err))
		return -1;
	if (!count_attached(st))
		teardown(st);
	return 0;
}

int state_detach(struct state *st, uint64_t id, struct cgtree *tree, char *err)
{
	struct hostlo_attached a;

	if (!st->present || bpf_map_lookup_elem(st->attached_fd, &id, &a) != 0)
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
		struct hostlo_attached a;
		struct hostlo_config cfg;

		if (bpf_map_lookup_elem(st->attached_fd, &ids[i], &a) == 0 && a.steers && read_config(st, &cfg, err) == 0) {
			cfg.host_pending = 1;
			write_config(st, &cfg, err);
		}
		unpin_links(st, ids[i]);
		bpf_map_delete_elem(st->attached_fd, &ids[i]);
		removed++; /* its counters go with the vanished ones, below */
		crash_point("gc:removed");
	}
	free(ids);
	struct attached_table t;

	if (attached_load(st, &t, err)) {
		free(linked);
		return -1;
	}
	/* links whose rules are gone: a crash between the two steps of a detach */
	for (size_t i = 0; i < nl; i++)
		if ((i == 0 || linked[i] != linked[i - 1]) && !attached_find(&t, linked[i]))
			unpin_links(st, linked[i]);
	free(linked);
	attached_free(&t);
	if (sweep_rules(st, err))
		return -1;
	drop_stats(st, 0, tree);
	if (recompute_config(st, err))
		return -1;
	struct hostlo_config cfg;

	/* an attach killed while linking: found above by its missing links, nothing pending now */
	if (read_config(st, &cfg, err) == 0 && cfg.attach_pending) {
		cfg.attach_pending = 0;
		write_config(st, &cfg, err);
	}
	if (!keep_empty && !count_attached(st))
		teardown(st);
	return removed;
}

void state_listening(struct state *st, struct ruleset *rs)
{
	for (int i = 0; i < rs->n; i++) {
		struct rule *r = &rs->r[i];

		if (!r->host_ifindex)
			continue;
		r->host_listening = 0;
		for (unsigned p = r->port_min; p <= r->port_max; p++) {
			unsigned t = r->to_port ? r->to_port + (p - r->port_min) : p;

			r->host_listening += listener_present(st, (uint16_t)t);
		}
	}
}

int state_rules(struct state *st, uint64_t id, struct ruleset *rs, char *err)
{
	struct hostlo_rule_key *keys = NULL;
	struct hostlo_rule_val *vals = NULL;
	struct hostlo_attached a;
	size_t n = 0;
	int ret = -1;

	if (bpf_map_lookup_elem(st->attached_fd, &id, &a) != 0)
		return seterr(err, "cgroup %llu: not attached", (unsigned long long)id);
	if (rules_dump(st, err))
		return -1;
	keys = calloc(a.entries ? a.entries : 1, sizeof(*keys));
	vals = calloc(a.entries ? a.entries : 1, sizeof(*vals));
	if (!keys || !vals) {
		seterr(err, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < st->dump_n && n < a.entries; i++) {
		if (st->dump_keys[i].attach_id == id && st->dump_keys[i].gen == a.gen) {
			keys[n] = st->dump_keys[i];
			vals[n++] = st->dump_vals[i];
		}
	}
	ret = ruleset_collapse(keys, vals, n, rs, err);
	rs->origin = a.origin;
	if (ret == 0)
		state_listening(st, rs);
out:
	free(keys);
	free(vals);
	return ret;
}

int state_stats(struct state *st, struct stats_row **rows, size_t *n, char *err)
{
	int ncpu = libbpf_num_possible_cpus();
	struct hostlo_stats_key *keys;
	struct hostlo_stats_val *vals;
	void *k, *v;

	*rows = NULL;
	*n = 0;
	if (!st->present)
		return 0;
	if (ncpu < 1)
		return seterr(err, "stats: cannot count CPUs: %s", strerror(-ncpu));
	/* one batch read: a row per CPU per counter row */
	if (dump_map(st->stats_fd, sizeof(*keys), sizeof(*vals) * (size_t)ncpu, &k, &v, n, err))
		return -1;
	keys = k;
	vals = v;
	*rows = calloc(*n ? *n : 1, sizeof(**rows));
	if (!*rows) {
		free(keys);
		free(vals);
		return seterr(err, "out of memory");
	}
	for (size_t i = 0; i < *n; i++) {
		struct stats_row *r = &(*rows)[i];

		r->cgroup_id = keys[i].cgroup_id;
		r->attach_id = keys[i].attach_id;
		for (int c = 0; c < ncpu; c++)
			for (int j = 0; j < HOSTLO_CNT_USED; j++)
				r->count[j] += vals[i * (size_t)ncpu + (size_t)c].count[j];
	}
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

static bool listener_present(struct state *st, uint16_t port)
{
	struct hostlo_listener_key k = { .port = port };
	__u64 cookie;

	return bpf_map_lookup_elem(st->listeners_fd, &k, &cookie) == 0;
}

/*
 * The socket inodes listening on 127.0.0.1 on a wanted port in this netns. Asked of the kernel with
 * sock_diag, which filters by state itself: /proc/net/tcp would list every TIME_WAIT socket too (tens
 * of thousands on a busy host).
 */
static size_t loopback_listeners(const uint8_t *want, unsigned long *inodes, uint16_t *ports, size_t max)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} q = {
		.nlh = { .nlmsg_len = sizeof(q), .nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP },
		.req = { .sdiag_family = AF_INET, .sdiag_protocol = IPPROTO_TCP, .idiag_states = 1 << 10 /* TCP_LISTEN */ },
	};
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	static char buf[32768];
	size_t n = 0;
	bool done = false;

	if (fd < 0)
		return 0;
	if (send(fd, &q, sizeof(q), 0) != (ssize_t)sizeof(q)) {
		close(fd);
		return 0;
	}
	while (!done) {
		ssize_t len = recv(fd, buf, sizeof(buf), 0);

		if (len <= 0)
			break;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)len); h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
				done = true;
				break;
			}
			const struct inet_diag_msg *m = NLMSG_DATA(h);
			unsigned port = ntohs(m->id.idiag_sport);

			if (n < max && m->id.idiag_src[0] == htonl(INADDR_LOOPBACK) && (want[port / 8] & (1u << (port % 8))) &&
			    m->idiag_inode) {
				inodes[n] = m->idiag_inode;
				ports[n++] = (uint16_t)port;
			}
		}
	}
	close(fd);
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

/* The last step of a full host pass: the host side matches the rules now. */
static int clear_host_pending(struct state *st, char *err)
{
	struct hostlo_config cfg;

	if (read_config(st, &cfg, err))
		return -1;
	if (!cfg.host_pending)
		return 0;
	cfg.host_pending = 0;
	return write_config(st, &cfg, err);
}

int state_host_sync(struct state *st, const char *mnt, enum host_sync how, char *err)
{
	uint8_t *want = calloc(65536 / 8, 1);
	__u16 *keys = NULL;
	size_t nk = 0;
	bool any = false, ports;
	int ret = -1, pins;

	if (st->present && how != HOST_SYNC_FULL) {
		/* a map probe and two stats, rather than a read of every attachment's rules */
		host_side_state(st, &ports, &pins);
		bool idle = !ports && !pins, whole = ports && pins == NR_HOST_HOOKS;

		struct hostlo_config c;
		bool pending = read_config(st, &c, err) != 0 || c.host_pending;

		/* a pass when steering rules came or went (pending), or the host side is half set up */
		if (pending || (!idle && !(how == HOST_SYNC_CHECK && whole)))
			how = HOST_SYNC_FULL;
	}
	if (!st->present || how != HOST_SYNC_FULL) {
		free(want);
		return 0;
	}
	crash_point("host:sync");
	if (!want) {
		seterr(err, "out of memory");
		goto out;
	}
	struct attached_table t;

	/* one pass over every rule entry: the live steering ones name their target port */
	if (attached_load(st, &t, err) || rules_dump(st, err)) {
		attached_free(&t);
		goto out;
	}
	for (size_t i = 0; i < st->dump_n; i++) {
		const struct hostlo_rule_key *k = &st->dump_keys[i];
		const struct hostlo_rule_val *v = &st->dump_vals[i];
		const struct hostlo_attached *a;
		unsigned port;

		if (k->kind != HOSTLO_KIND_CONNECT_TCP || !(v->flags & HOSTLO_RULE_STEER) ||
		    !(a = attached_find(&t, k->attach_id)) || a->gen != k->gen)
			continue;
		port = v->port ? ntohs(v->port) : k->port;
		want[port / 8] |= (uint8_t)(1u << (port % 8));
		any = true;
	}
	attached_free(&t);
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
		ret = clear_host_pending(st, err);
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
	ret = clear_host_pending(st, err);
out:
	free(want);
	free(keys);
	return ret;
}
