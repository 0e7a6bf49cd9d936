/* netns.h: what a container's network namespace has: its default gateway, its loopback listeners;
 * and which of this host's interfaces holds an address. */
#ifndef HOSTLO_NETNS_H
#define HOSTLO_NETNS_H

#include <stdint.h>
#include "target.h"

/* The default IPv4 gateway (network order) in the network namespace of process pid. */
int default_gateway(const struct sysenv *env, int pid, uint32_t *gw, char *err);
/* The interface of hostlo's own network namespace that holds IPv4 addr (network order), or 0. */
unsigned local_ifindex(uint32_t addr);
/* A port in [lo, hi] with a TCP listener on 127.0.0.1 or ::1 in the network namespace of some process
 * in the cgroup or below it (0 when none); *pid is that process. */
int loopback_listener(const struct sysenv *env, const char *cgpath, unsigned lo, unsigned hi, int *pid);

#endif
