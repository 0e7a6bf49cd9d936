/* pins.c: hostlo's directory in bpffs: the lock, the mount, creating, opening and upgrading the pins. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "hostlo.skel.h"
#include "crashpoint.h"
#include "links.h"
#include "objects.h"
#include "preflight.h"
#include "pins.h"
#include "util.h"

#define TMP_PREFIX "hostlo-new-" /* bpffs refuses names with a dot */
#define LOCK_WAIT_S 30

bool pins_is_bpffs(const char *path)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 && sf.f_type == BPF_FS_MAGIC;
}

/*
 * Unlinks every pin in dir but those keep() keeps (NULL: none), then dir itself once empty; pins hold
 * the only references, so the kernel frees them.
 */
static void remove_tree_but(const char *dir, bool (*keep)(const char *name))
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char p[PATH_MAX + NAME_MAX + 2];

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 || (keep && keep(de->d_name)))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (de->d_type == DT_DIR)
			remove_tree_but(p, keep);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static void remove_tree(const char *dir)
{
	remove_tree_but(dir, NULL);
}

static bool host_link_pin(const char *name)
{
	return strncmp(name, "host-", 5) == 0;
}

/*
 * Links first, so no program stays attached after its rules are gone; then the shared objects. The
 * cgroups' links before the host side's: while a connect program runs, the sockops link must still
 * count listen() calls, or a CPU's "no local listener" answer could outlive a new listener (listen_memo).
 */
void pins_teardown(struct state *st)
{
	char links[PATH_MAX];

	state_close_objects(st);
	snprintf(links, sizeof(links), "%s/links", st->dir);
	remove_tree_but(links, host_link_pin);
	remove_tree(links);
	crash_point("teardown:links");
	remove_tree(st->dir);
}

int pins_lock(struct state *st, char *err)
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

int pins_mount(const char *path, char *err)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return seterr(err, "bpffs %s: cannot create: %s", path, strerror(errno));
	if (mount("bpf", path, "bpf", 0, "mode=0700") != 0)
		return seterr(err, "bpffs %s: cannot mount: %s%s", path, strerror(errno),
			    errno == EPERM ? " (needs CAP_SYS_ADMIN)" : "");
	return 0;
}

static int get_pinned(const char *dir, const char *name)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return bpf_obj_get(p);
}

int pins_open(struct state *st, char *err)
{
	struct hostlo_config cfg;
	__u32 zero = 0;

	/* the ABI first: another build's pins are to be reported, never mistaken for a broken state */
	st->config_fd = get_pinned(st->dir, map_defs[MAP_CONFIG].name);
	if (st->config_fd < 0 || bpf_map_lookup_elem(st->config_fd, &zero, &cfg) != 0)
		return -errno;
	if (cfg.abi_version != HOSTLO_ABI_VERSION) {
		seterr(err, "bpffs %s: pinned by a hostlo with ABI %u, this one has ABI %u: detach --all with that build first",
		       st->dir, cfg.abi_version, HOSTLO_ABI_VERSION);
		return -EPROTO;
	}
	for (int i = 0; i < NR_MAPS; i++)
		if (i != MAP_CONFIG && (*state_map_fd(st, i) = get_pinned(st->dir, map_defs[i].name)) < 0)
			return -errno;
	for (int i = 0; i < NR_HOOKS; i++)
		if ((st->prog_fd[i] = get_pinned(st->dir, hook_defs[i].name)) < 0)
			return -errno;
	/* absent when the kernel that loaded them could not run them */
	for (int i = 0; i < NR_HOST_HOOKS; i++)
		st->host_prog_fd[i] = get_pinned(st->dir, host_hook_defs[i].name);
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

/* The kernel runs the *_percpu programs (bpf/hostlo.bpf.c): decided when the object is opened. */
static bool use_percpu;

static struct bpf_program *skel_prog_at(struct hostlo_bpf *skel, size_t off)
{
	return *(struct bpf_program **)((char *)skel + off);
}

/* The program of d this kernel loads. */
static struct bpf_program *skel_prog(struct hostlo_bpf *skel, const struct prog_def *d)
{
	return skel_prog_at(skel, use_percpu && d->percpu_off ? d->percpu_off : d->skel_off);
}

/* The other build of d, never loaded; NULL when d has one build. */
static struct bpf_program *skel_prog_unused(struct hostlo_bpf *skel, const struct prog_def *d)
{
	return d->percpu_off ? skel_prog_at(skel, use_percpu ? d->skel_off : d->percpu_off) : NULL;
}

/*
 * A sock_ops program can read another CPU's slot of a per-CPU map (Linux 5.19; compare-and-swap came
 * with 5.12): what the *_percpu programs need. A probe, not the version: distributions backport.
 */
static bool kernel_runs_percpu(void)
{
	return kernel_has_host_side() &&
	       libbpf_probe_bpf_helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_map_lookup_percpu_elem, NULL) == 1;
}

#ifdef HOSTLO_CRASH_POINTS
/* test builds only: HOSTLO_TEST_HANDOFF=hash|other-cpu|spill|stale-1s (see hostlo_test_handoff) */
static void test_handoff(struct hostlo_bpf *skel)
{
	const char *how = getenv("HOSTLO_TEST_HANDOFF");

	if (!how)
		return;
	if (!strcmp(how, "hash"))
		use_percpu = false;
	skel->rodata->hostlo_test_handoff = !strcmp(how, "other-cpu") ? 1 : !strcmp(how, "spill") ? 2 : 0;
	if (!strcmp(how, "stale-1s"))
		skel->rodata->hostlo_handoff_stale_ns = 1000000000ULL;
}
#endif


static struct bpf_map *skel_map(struct hostlo_bpf *skel, enum map m)
{
	return *(struct bpf_map **)((char *)skel + map_defs[m].skel_off);
}

/* The BPF object, opened; the host programs left out where the kernel would reject the whole object. */
static struct hostlo_bpf *open_object(void)
{
	struct hostlo_bpf *skel = hostlo_bpf__open();

	if (!skel)
		return NULL;
	use_percpu = kernel_runs_percpu();
#ifdef HOSTLO_CRASH_POINTS
	test_handoff(skel);
#endif
	for (int i = 0; i < NR_HOOKS; i++)
		if (skel_prog_unused(skel, &hook_defs[i]))
			bpf_program__set_autoload(skel_prog_unused(skel, &hook_defs[i]), false);
	for (int i = 0; i < NR_HOST_HOOKS; i++) {
		if (skel_prog_unused(skel, &host_hook_defs[i]))
			bpf_program__set_autoload(skel_prog_unused(skel, &host_hook_defs[i]), false);
		if (!kernel_has_host_side())
			bpf_program__set_autoload(skel_prog(skel, &host_hook_defs[i]), false);
	}
#ifdef HOSTLO_CRASH_POINTS
	/* test builds only: a program the verifier rejects, to see how a rejection is reported */
	if (getenv("HOSTLO_TEST_BAD_PROG"))
		bpf_program__set_type(skel_prog(skel, &hook_defs[HOOK_CONNECT4]), BPF_PROG_TYPE_SOCKET_FILTER);
#endif
	return skel;
}

static int load_object(struct hostlo_bpf *skel, const char *what, char *err)
{
	int e;

	if (hostlo_bpf__load(skel) == 0)
		return 0;
	e = errno;
	return seterr(err, "%s: %s%s", what, strerror(e),
		      e == EPERM ? " (needs CAP_BPF or CAP_SYS_ADMIN, and CAP_NET_ADMIN)" :
		      verbose ? "" : " (run with -v for the verifier log)");
}

static int pin_object(struct hostlo_bpf *skel, const char *dir, char *err)
{
	for (int i = 0; i < NR_MAPS; i++)
		if (pin_fd(bpf_map__fd(skel_map(skel, i)), dir, map_defs[i].name, err))
			return -1;
	for (int i = 0; i < NR_HOOKS; i++)
		if (pin_fd(bpf_program__fd(skel_prog(skel, &hook_defs[i])), dir, hook_defs[i].name, err))
			return -1;
	for (int i = 0; i < NR_HOST_HOOKS; i++) {
		int fd = bpf_program__fd(skel_prog(skel, &host_hook_defs[i]));

		if (fd >= 0 && pin_fd(fd, dir, host_hook_defs[i].name, err))
			return -1;
	}
	return 0;
}

/*
 * Loads the object once and pins it in a private directory that is renamed into place: other
 * hostlo runs see either no state or a complete one, never a half-pinned set.
 */
int pins_create(struct state *st, char *err)
{
	struct hostlo_config cfg = { .abi_version = HOSTLO_ABI_VERSION, .prog_build = pins_build_id() };
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
	if (!(skel = open_object())) {
		seterr(err, "load BPF object: %s", strerror(errno));
		goto out;
	}
	if (load_object(skel, "load BPF programs", err))
		goto out;
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.hostlo_config), &zero, &cfg, BPF_ANY) != 0) {
		seterr(err, "init config map: %s", strerror(errno));
		goto out;
	}
	if (pin_object(skel, tmp, err))
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

/* FNV-1a over the embedded ELF bytes. */
__u64 pins_build_id(void)
{
	size_t len;
	const unsigned char *p = hostlo_bpf__elf_bytes(&len);
	__u64 h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

struct relink {
	struct state *st;
	struct hostlo_bpf *skel;
	char *err;
};

/* Points one live cgroup link at this build's program for its hook. */
static int relink_cgroup(uint64_t id, int hook, const char *name, void *ctx)
{
	struct relink *r = ctx;
	__u32 prog_id;
	int fd = link_live(r->st, id, hook, &prog_id), ret = 0;

	if (fd < 0)
		return 0; /* gc's business */
	if (bpf_link_update(fd, bpf_program__fd(skel_prog(r->skel, &hook_defs[hook])), NULL) != 0)
		ret = seterr(r->err, "upgrade: update link %s: %s", name, strerror(errno));
	close(fd);
	crash_point("upgrade:link");
	return ret;
}

static int relink_host(struct state *st, struct hostlo_bpf *skel, char *err)
{
	for (int h = 0; h < NR_HOST_HOOKS; h++) {
		int prog = bpf_program__fd(skel_prog(skel, &host_hook_defs[h])), fd, ok;
		char p[PATH_MAX];

		host_link_path(st, h, p, sizeof(p));
		if (prog < 0 || (fd = bpf_obj_get(p)) < 0)
			continue;
		ok = bpf_link_update(fd, prog, NULL) == 0;
		close(fd);
		if (!ok)
			return seterr(err, "upgrade: update link host-%s: %s", host_hook_defs[h].name, strerror(errno));
	}
	return 0;
}

/* Pins prog under name, replacing the old pin in one rename; *fd becomes a copy of it. */
static int repin(struct state *st, int prog, const char *name, int *fd, char *err)
{
	char p[PATH_MAX], np[PATH_MAX];

	snprintf(np, sizeof(np), "%s/%s-new", st->dir, name);
	snprintf(p, sizeof(p), "%s/%s", st->dir, name);
	unlink(np);
	if (bpf_obj_pin(prog, np) != 0 || rename(np, p) != 0)
		return seterr(err, "upgrade: pin %s: %s", p, strerror(errno));
	if (*fd >= 0)
		close(*fd);
	*fd = dup(prog);
	return 0;
}

static int repin_programs(struct state *st, struct hostlo_bpf *skel, char *err)
{
	for (int h = 0; h < NR_HOST_HOOKS; h++) {
		int prog = bpf_program__fd(skel_prog(skel, &host_hook_defs[h]));

		if (prog >= 0 && repin(st, prog, host_hook_defs[h].name, &st->host_prog_fd[h], err))
			return -1;
	}
	for (int h = 0; h < NR_HOOKS; h++)
		if (repin(st, bpf_program__fd(skel_prog(skel, &hook_defs[h])), hook_defs[h].name, &st->prog_fd[h], err))
			return -1;
	return 0;
}

/*
 * The pinned programs come from another hostlo build: load this build's programs against the pinned
 * maps, swap every link to them in place (bpf_link_update: never a moment without a program), then
 * re-pin them and record the build last, so a crash at any step is redone by the next attach.
 */
int pins_upgrade(struct state *st, char *err)
{
	struct hostlo_bpf *skel = open_object();
	struct hostlo_config cfg;
	int ret = -1;

	if (!skel)
		return seterr(err, "upgrade: open BPF object: %s", strerror(errno));
	for (int i = 0; i < NR_MAPS; i++) {
		if (bpf_map__reuse_fd(skel_map(skel, i), *state_map_fd(st, i)) != 0) {
			seterr(err, "upgrade: reuse map %s: %s", map_defs[i].name, strerror(errno));
			goto out;
		}
	}
	if (load_object(skel, "upgrade: load BPF programs", err))
		goto out;
	crash_point("upgrade:loaded");
	if (links_each(st, relink_cgroup, &(struct relink){ st, skel, err }) || relink_host(st, skel, err) || repin_programs(st, skel, err))
		goto out;
	crash_point("upgrade:pinned");
	if (state_config_read(st, &cfg, err))
		goto out;
	cfg.prog_build = pins_build_id();
	ret = state_config_write(st, &cfg, err);
out:
	hostlo_bpf__destroy(skel);
	return ret;
}

/* A crashed run can leave its private directory behind; nothing in it was ever in use. */
void pins_remove_stale_tmp(struct state *st)
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
