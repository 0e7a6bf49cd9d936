/* state.h: opening hostlo's objects as one: the lock, then what is pinned (created when asked). */
#ifndef HOSTLO_STATE_H
#define HOSTLO_STATE_H

#include <stdbool.h>
#include "objects.h"

enum open_mode {
	OPEN_EXISTING,   /* open what is pinned, if anything */
	OPEN_CREATE,     /* mount bpffs when needed, load and pin the shared objects if absent */
	OPEN_LOCK_ONLY,  /* only take the lock: for removing whatever is there, whichever build pinned it */
};

/* Where hostlo pins: /sys/fs/bpf, or $HOSTLO_BPFFS; and whether a bpffs is mounted there. */
const char *state_bpffs_path(void);
bool state_bpffs_mounted(void);

/* Takes the lock (serialising every hostlo on this bpffs), then opens as mode says. 0, or -1 with err. */
int state_open(struct state *st, enum open_mode mode, char *err);
void state_close(struct state *st);

#endif
