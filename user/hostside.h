/*
 * hostside.h: steering redirected connects to host services that listen only on 127.0.0.1: the
 * steering ports, the host's loopback listeners held for them, and the two host programs (sockops on
 * the cgroup2 root, sk_lookup on the host netns), linked only while some rule steers.
 */
#ifndef HOSTLO_HOSTSIDE_H
#define HOSTLO_HOSTSIDE_H

#include <stdbool.h>
#include "rules.h"

struct state;

/* Whether this kernel can steer to host loopback listeners (sk_lookup with ingress_ifindex: 5.17). */
bool hostside_supported(void);
const char *hostside_unsupported(void);

/*
 * Makes the kernel match the steering rules of every attachment: the ports, the host's loopback
 * listeners already open on them, and the two host programs. mnt is the cgroup2 mount. Idempotent;
 * every command runs it, and how says when the full pass (a read of every attachment's rules) is needed.
 */
enum host_sync {
	HOST_SYNC_FULL,     /* rules that steer were just set, or gc: always a full pass */
	HOST_SYNC_CHANGED,  /* attachments went away: a full pass if anything steers */
	HOST_SYNC_CHECK,    /* any other command: a full pass only if the host side is half set up */
};
int state_host_sync(struct state *st, const char *mnt, enum host_sync how, char *err);

/* For each rule that steers: how many of its ports have a host listener on 127.0.0.1 now. */
void state_listening(struct state *st, struct ruleset *rs);

#endif
