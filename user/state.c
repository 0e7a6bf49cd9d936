/* state.c: opening hostlo's objects as one: the lock, then what is pinned (created when asked). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <bpf/libbpf.h>
#include "crashpoint.h"
#include "pins.h"
#include "state.h"
#include "util.h"

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (!verbose || (level == LIBBPF_DEBUG && verbose < 2))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

const char *state_bpffs_path(void)
{
	const char *env = getenv("HOSTLO_BPFFS");

	return env && env[0] ? env : "/sys/fs/bpf";
}

bool state_bpffs_mounted(void)
{
	return pins_is_bpffs(state_bpffs_path());
}

/* The pinned objects, created when mode asks and they are absent (or half torn down by a crash). */
static int open_or_create(struct state *st, bool create, char *err)
{
	struct stat sb;
	int ret;

	if (stat(st->dir, &sb) != 0) {
		if (!create)
			return 0;
		if (pins_create(st, err))
			return -1;
	}
	ret = pins_open(st, err);
	if (ret == -EPROTO)
		return -1;
	if (ret < 0) {
		/* an incomplete directory is what a crash in teardown leaves: finish the teardown */
		pins_teardown(st);
		if (!create)
			return 0;
		if (pins_create(st, err))
			return -1;
		ret = pins_open(st, err);
		if (ret < 0)
			return ret == -EPROTO ? -1 : seterr(err, "bpffs %s: %s", st->dir, strerror(-ret));
	}
	return 0;
}

int state_open(struct state *st, enum open_mode mode, char *err)
{
	bool create = mode == OPEN_CREATE;
	const char *env = state_bpffs_path();
	struct hostlo_config cfg;

	memset(st, 0, sizeof(*st));
	st->lock_fd = -1;
	state_unset_fds(st);
	if (strlen(env) >= sizeof(st->bpffs))
		return seterr(err, "HOSTLO_BPFFS: path too long");
	snprintf(st->bpffs, sizeof(st->bpffs), "%s", env);
	snprintf(st->dir, sizeof(st->dir), "%s/hostlo", st->bpffs);
	libbpf_set_print(libbpf_log);

	if (!pins_is_bpffs(st->bpffs)) {
		if (!create)
			return 0; /* no bpffs: nothing of hostlo can exist */
		if (pins_mount(st->bpffs, err))
			return -1;
	}
	if (pins_lock(st, err))
		return -1;
	crash_point("lock:held");
	pins_remove_stale_tmp(st);
	if (mode == OPEN_LOCK_ONLY)
		return 0;
	if (open_or_create(st, create, err))
		return -1;
	if (!create || !st->present)
		return 0;
	if (state_config_read(st, &cfg, err))
		return -1;
	return cfg.prog_build != pins_build_id() ? pins_upgrade(st, err) : 0;
}

void state_close(struct state *st)
{
	state_close_objects(st);
	state_close_fd(&st->lock_fd); /* releases the lock */
}

