/* netns.c: what a container's network namespace has: its default gateway, its loopback listeners;
 * and which of this host's interfaces holds an address. Read from /proc/PID/net: no setns needed. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "netns.h"
#include "util.h"

/* /proc/PID/net/route is the routing table of PID's network namespace: no setns needed. */
int default_gateway(const struct sysenv *env, int pid, uint32_t *gw, char *err)
{
	char path[PATH_MAX], *line = NULL;
	unsigned best_metric = ~0u;
	size_t cap = 0;
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%d/net/route", env->proc, pid);
	f = fopen(path, "re");
	if (!f)
		return seterr(err, "gateway: cannot read %s: %s", path, strerror(errno));
	while (getline(&line, &cap, f) > 0) {
		unsigned dest, gate, flags, metric, mask;
		char ifname[64];

		/* Iface Destination Gateway Flags RefCnt Use Metric Mask ...; addresses in raw (network) order */
		if (sscanf(line, "%63s %x %x %x %*d %*d %u %x", ifname, &dest, &gate, &flags, &metric, &mask) != 6)
			continue;
		if (dest != 0 || mask != 0 || !(flags & 0x2 /* RTF_GATEWAY */) || !(flags & 0x1 /* RTF_UP */))
			continue;
		if (!found || metric < best_metric) {
			*gw = gate;
			best_metric = metric;
			found = 1;
		}
	}
	free(line);
	fclose(f);
	if (!found)
		return seterr(err, "gateway: the network namespace of pid %d has no default IPv4 route; give --connect PORT=ADDR",
			    pid);
	return 0;
}

unsigned local_ifindex(uint32_t addr)
{
	struct ifaddrs *ifs, *i;
	unsigned idx = 0;

	if (getifaddrs(&ifs) != 0)
		return 0;
	for (i = ifs; i && !idx; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
		    ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == addr)
			idx = if_nametoindex(i->ifa_name);
	freeifaddrs(ifs);
	return idx;
}

/* A TCP socket listening on 127.0.0.1 or ::1 on a port in [lo, hi], read from /proc/PID/net/tcp{,6}. */
static int netns_loopback_listener(const struct sysenv *env, int pid, unsigned lo, unsigned hi)
{
	static const char *const files[] = { "tcp", "tcp6" };
	static const char *const loopback[] = { "0100007F", "00000000000000000000000001000000" };

	for (int f = 0; f < 2; f++) {
		char path[PATH_MAX], *line = NULL;
		size_t cap = 0;
		int found = 0;
		FILE *fp;

		snprintf(path, sizeof(path), "%s/%d/net/%s", env->proc, pid, files[f]);
		fp = fopen(path, "re");
		if (!fp)
			continue;
		while (!found && getline(&line, &cap, fp) > 0) {
			char addr[40];
			unsigned port, st;

			/* sl local_address:port rem_address:port st ...; 0A is TCP_LISTEN */
			if (sscanf(line, " %*d: %39[0-9A-F]:%x %*[0-9A-F]:%*x %x", addr, &port, &st) == 3 && st == 0x0A &&
			    strcmp(addr, loopback[f]) == 0 && port >= lo && port <= hi)
				found = (int)port;
		}
		free(line);
		fclose(fp);
		if (found)
			return found;
	}
	return 0;
}

static int listener_in(const struct sysenv *env, const char *dir, unsigned lo, unsigned hi, int *pid, int depth)
{
	char path[PATH_MAX];
	struct dirent *de;
	int port = 0, p;
	FILE *f;
	DIR *d;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "re");
	/* one process per network namespace would do; a few per cgroup keep this cheap */
	for (int i = 0; f && !port && i < 8 && fscanf(f, "%d", &p) == 1; i++)
		if ((port = netns_loopback_listener(env, p, lo, hi)))
			*pid = p;
	if (f)
		fclose(f);
	if (port || depth > 16 || !(d = opendir(dir)))
		return port;
	while (!port && (de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		port = listener_in(env, path, lo, hi, pid, depth + 1);
	}
	closedir(d);
	return port;
}

int loopback_listener(const struct sysenv *env, const char *cgpath, unsigned lo, unsigned hi, int *pid)
{
	return listener_in(env, cgpath, lo, hi, pid, 0);
}
