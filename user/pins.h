/* pins.h: hostlo's directory in bpffs: the lock, the mount, creating, opening and upgrading the pins. */
#ifndef HOSTLO_PINS_H
#define HOSTLO_PINS_H

#include <stdbool.h>
#include <linux/types.h>

struct state;

bool pins_is_bpffs(const char *path);
/* Mounts a bpffs at path (made if absent). 0, or -1 with err. */
int pins_mount(const char *path, char *err);
/* The bpffs-wide lock every hostlo takes, waited for up to 30 s. 0, or -1 with err. */
int pins_lock(struct state *st, char *err);
/* Removes what a crashed pins_create left in its private directory. */
void pins_remove_stale_tmp(struct state *st);
/* Loads the BPF object and pins it whole, or nothing. 0, or -1 with err. */
int pins_create(struct state *st, char *err);
/* Opens what is pinned: 0; -EPROTO (err set) for another ABI's pins; another -errno when incomplete. */
int pins_open(struct state *st, char *err);
/* Identifies this binary's BPF object. */
__u64 pins_build_id(void);
/* Replaces the pinned programs (another build's) with this build's, in every link, in place. */
int pins_upgrade(struct state *st, char *err);
/* Removes every pin, links first; the kernel frees what they held. */
void pins_teardown(struct state *st);

#endif
