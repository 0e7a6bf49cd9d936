/* hostside.c: steering redirected connects to host services that listen only on 127.0.0.1. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <bpf/bpf.h>
#include "crashpoint.h"
#include "hostside.h"
#include "links.h"
#include "mapio.h"
#include "preflight.h"
#include "ruletab.h"
#include "objects.h"
#include "target.h"
#include "util.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

static bool listener_present(struct state *st, uint16_t port)
{
	struct hostlo_listener_key k = { .port = port };
	__u64 cookie;

	return bpf_map_lookup_elem(st->listeners_fd, &k, &cookie) == 0;
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

static bool wanted(const uint8_t *want, unsigned port)
{
	return want[port / 8] & (1u << (port % 8));
}

/* The listeners of one sock_diag reply batch that are on 127.0.0.1 and a wanted port. */
static bool take_listeners(const char *buf, ssize_t len, const uint8_t *want, unsigned long *inodes,
			   uint16_t *ports, size_t *n, size_t max)
{
	for (const struct nlmsghdr *h = (const struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)len); h = NLMSG_NEXT(h, len)) {
		const struct inet_diag_msg *m = NLMSG_DATA(h);
		unsigned port;

		if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR)
			return true;
		port = ntohs(m->id.idiag_sport);
		if (*n < max && m->id.idiag_src[0] == htonl(INADDR_LOOPBACK) && wanted(want, port) && m->idiag_inode) {
			inodes[*n] = m->idiag_inode;
			ports[(*n)++] = (uint16_t)port;
		}
	}
	return false;
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
		done = take_listeners(buf, len, want, inodes, ports, &n, max);
	}
	close(fd);
	return n;
}

/* A copy (pidfd_getfd) of fd number fdnum of process pid. */
static int copy_fd(int pid, int fdnum)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), fd;

	if (pidfd < 0)
		return -1;
	fd = (int)syscall(SYS_pidfd_getfd, pidfd, fdnum, 0);
	close(pidfd);
	return fd;
}

/* The descriptor of process pid that is socket:[inode], copied; -1 when it has none. */
static int socket_of(int pid, const char *want)
{
	char dir[64], fp[64 + NAME_MAX + 2], link[64];
	struct dirent *fe;
	int sock = -1;
	DIR *fds;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
	if (!(fds = opendir(dir)))
		return -1;
	while (sock < 0 && (fe = readdir(fds))) {
		ssize_t l;

		snprintf(fp, sizeof(fp), "%s/%s", dir, fe->d_name);
		l = readlink(fp, link, sizeof(link) - 1);
		if (l <= 0)
			continue;
		link[l] = '\0';
		if (strcmp(link, want) == 0)
			sock = copy_fd(pid, atoi(fe->d_name));
	}
	closedir(fds);
	return sock;
}

/* Finds a process holding socket inode, and takes a copy of its descriptor. */
static int socket_by_inode(unsigned long inode)
{
	DIR *proc = opendir("/proc");
	struct dirent *pe;
	char want[64];
	int sock = -1;

	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	while (proc && sock < 0 && (pe = readdir(proc)))
		if (atoi(pe->d_name) > 0)
			sock = socket_of(atoi(pe->d_name), want);
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
		__u64 v;
		int fd;

		if (listener_present(st, ports[i]) || (fd = socket_by_inode(inodes[i])) < 0)
			continue;
		v = (__u64)fd;
		bpf_map_update_elem(st->listeners_fd, &k, &v, BPF_ANY); /* failing: a socket it cannot hold */
		close(fd);
	}
}

/* The pin at path is a link of hook h's program, on where (a cgroup id, or a netns inode). */
static bool host_link_matches(const struct state *st, int h, const char *path, uint64_t where)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	int fd = bpf_obj_get(path);
	bool ok;

	if (fd < 0)
		return false;
	ok = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && info.prog_id == fd_prog_id(st->host_prog_fd[h]) &&
	     (host_hook_defs[h].type != BPF_SK_LOOKUP ?
		      info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == where &&
			      info.cgroup.attach_type == host_hook_defs[h].type :
		      info.type == BPF_LINK_TYPE_NETNS && info.netns.netns_ino == where);
	close(fd);
	return ok;
}

/* A pinned host link that still attaches its program where it should; else the pin is removed. */
static bool host_link_ok(const struct state *st, int h, const char *path, uint64_t where)
{
	if (host_link_matches(st, h, path, where))
		return true;
	unlink(path);
	return false;
}

/* The host hooks linked while some rule steers: always these; the others only when wanted. */
#define HOST_HOOKS_CORE ((1u << HOST_HOOK_SOCKOPS) | (1u << HOST_HOOK_LOOKUP))
#define HOST_HOOKS_PEER ((1u << HOST_HOOK_PEER4) | (1u << HOST_HOOK_SOCKNAME4))

/* Links the hooks in the mask hooks (and unlinks the others). */
static int host_links_up(struct state *st, const char *mnt, unsigned hooks, char *err)
{
	const char *targets[NR_HOST_HOOKS] = { [HOST_HOOK_SOCKOPS] = mnt, [HOST_HOOK_LOOKUP] = "/proc/self/ns/net",
					       [HOST_HOOK_PEER4] = mnt, [HOST_HOOK_SOCKNAME4] = mnt };

	for (int h = 0; h < NR_HOST_HOOKS; h++) {
		char p[PATH_MAX];
		struct stat sb;
		int tfd, link;

		host_link_path(st, h, p, sizeof(p));
		if (!(hooks & (1u << h))) {
			unlink(p);
			continue;
		}
		if (stat(targets[h], &sb) != 0)
			return seterr(err, "host side: %s: %s", targets[h], strerror(errno));
		if (host_link_ok(st, h, p, sb.st_ino))
			continue;
		tfd = open(targets[h], O_RDONLY | O_CLOEXEC);
		if (tfd < 0)
			return seterr(err, "host side: %s: %s", targets[h], strerror(errno));
		link = bpf_link_create(st->host_prog_fd[h], tfd, host_hook_defs[h].type, NULL);
		close(tfd);
		if (link < 0)
			return seterr(err, "host side: attach %s to %s: %s", host_hook_defs[h].name, targets[h], strerror(errno));
		if (bpf_obj_pin(link, p) != 0) {
			close(link);
			return seterr(err, "pin %s: %s", p, strerror(errno));
		}
		close(link);
		crash_point("host:linked");
	}
	return 0;
}

/* Host link pins that exist, as a mask of enum host_hook. */
static unsigned host_links_pinned(struct state *st, bool unpin)
{
	char p[PATH_MAX];
	unsigned pins = 0;

	for (int h = 0; h < NR_HOST_HOOKS; h++) {
		host_link_path(st, h, p, sizeof(p));
		pins |= access(p, F_OK) == 0 ? 1u << h : 0;
		if (unpin)
			unlink(p);
	}
	return pins;
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

static bool sockops_linked(struct state *st, const char *mnt);

/* Whether this command needs the full pass: steering rules came or went (pending), the host side is
 * half set up, or the programs keep listener answers without the sockops link that ends them (a link
 * detached from outside). A map probe and a few stats, rather than a read of every attachment's rules. */
static bool full_pass_needed(struct state *st, const char *mnt, enum host_sync how)
{
	struct hostlo_config c;
	char err[ERRLEN];
	__u16 key;
	bool ports, idle, whole;
	unsigned pins;

	if (how == HOST_SYNC_FULL)
		return true;
	ports = bpf_map_get_next_key(st->ports_fd, NULL, &key) == 0;
	pins = host_links_pinned(st, false);
	idle = !ports && !pins;
	whole = ports && (pins & HOST_HOOKS_CORE) == HOST_HOOKS_CORE;
	if (state_config_read(st, &c, err) != 0 || c.host_pending || (c.listen_memo && !sockops_linked(st, mnt)))
		return true;
	return !idle && !(how == HOST_SYNC_CHECK && whole);
}

/* The target port of every live steering entry, one pass over the rule entries; false when none.
 * local: some of them shows the host service a loopback client (no --real-peer). */
static int steering_ports(struct state *st, uint8_t *want, bool *any, bool *local, char *err)
{
	struct attached_table t;

	*any = false;
	*local = false;
	if (ruletab_load_all(st, &t, err))
		return -1;
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
		*any = true;
		*local |= !(v->flags & HOSTLO_RULE_REAL_PEER);
	}
	attached_free(&t);
	return 0;
}

/* Ports no rule names any longer: forgotten with their listeners; then the wanted ones added. */
static int set_ports(struct state *st, const uint8_t *want, bool any, char *err)
{
	__u16 *keys = NULL;
	size_t nk = 0;
	__u8 one = 1;

	if (map_keys(st->ports_fd, sizeof(*keys), (void **)&keys, &nk, err))
		return -1;
	for (size_t i = 0; i < nk; i++) {
		struct hostlo_listener_key k = { .port = keys[i] };

		if (any && wanted(want, keys[i]))
			continue;
		bpf_map_delete_elem(st->ports_fd, &keys[i]);
		bpf_map_delete_elem(st->listeners_fd, &k);
	}
	free(keys);
	for (unsigned p = 0; any && p < 65536; p++) {
		__u16 port = (__u16)p;

		if (wanted(want, p) && bpf_map_update_elem(st->ports_fd, &port, &one, BPF_ANY) != 0)
			return seterr(err, "host side: steering port %u: %s", p, strerror(errno));
	}
	return 0;
}

/* Records the netns the host side belongs to (0: none), and that it matches the rules when done. */
static int set_owner(struct state *st, __u64 cookie, bool done, char *err)
{
	struct hostlo_config cfg;

	if (state_config_read(st, &cfg, err))
		return -1;
	if (cfg.host_netns_cookie == cookie && (!done || !cfg.host_pending))
		return 0;
	cfg.host_netns_cookie = cookie;
	if (done)
		cfg.host_pending = 0;
	return state_config_write(st, &cfg, err);
}

/*
 * config.listen_memo: on only while the sockops link on the cgroup2 root counts every listen(), so it is
 * turned off before that link goes or is replaced, and on after it is in. Inside a rules_version change
 * (written odd, then the next even value), so no answer kept before it is used after it.
 */
static int listen_memo_set(struct state *st, bool on, char *err)
{
	struct hostlo_config cfg;

	if (state_config_read(st, &cfg, err))
		return -1;
	if (cfg.listen_memo == on)
		return 0;
	config_version_changing(&cfg);
	cfg.listen_memo = on;
	if (state_config_write(st, &cfg, err))
		return -1;
	config_version_changed(&cfg);
	return state_config_write(st, &cfg, err);
}

/* The sockops link on the cgroup2 root at mnt is hostlo's, as host_links_up would leave it. */
static bool sockops_linked(struct state *st, const char *mnt)
{
	char p[PATH_MAX];
	struct stat sb;

	host_link_path(st, HOST_HOOK_SOCKOPS, p, sizeof(p));
	return stat(mnt, &sb) == 0 && host_link_matches(st, HOST_HOOK_SOCKOPS, p, sb.st_ino);
}

/*
 * The flows left once the programs are gone: a host service's open connection keeps its flow, and no
 * close callback runs now to remove it. Emptied, so that none is taken for a later connection of the
 * same 4-tuple when the host side comes back.
 */
static int flows_clear(struct state *st, char *err)
{
	struct hostlo_flow *keys = NULL;
	size_t nk = 0;

	if (map_keys(st->flows_fd, sizeof(*keys), (void **)&keys, &nk, err))
		return -1;
	for (size_t i = 0; i < nk; i++)
		bpf_map_delete_elem(st->flows_fd, &keys[i]);
	free(keys);
	return 0;
}

/* No rule steers: programs first, so nothing is steered while the maps are emptied. */
static int host_side_down(struct state *st, const uint8_t *want, char *err)
{
	if (listen_memo_set(st, false, err))
		return -1;
	host_links_pinned(st, true);
	if (set_owner(st, 0, false, err) || set_ports(st, want, false, err) || flows_clear(st, err))
		return -1;
	return set_owner(st, 0, true, err);
}

static int host_side_up(struct state *st, const char *mnt, const uint8_t *want, __u64 here, bool local, char *err)
{
	if (set_ports(st, want, true, err) || set_owner(st, here, false, err))
		return -1;
	/* the program that picks up listeners first, so one that starts meanwhile is not missed */
	if (host_links_up(st, mnt, HOST_HOOKS_CORE | (local ? HOST_HOOKS_PEER : 0), err))
		return -1;
	add_open_listeners(st, want);
	if (listen_memo_set(st, true, err))
		return -1;
	return set_owner(st, here, true, err);
}

int state_host_sync(struct state *st, const char *mnt, enum host_sync how, char *err)
{
	uint8_t *want;
	struct hostlo_config cfg;
	__u64 here;
	bool any, local;
	int ret = -1;

	if (!st->present || !full_pass_needed(st, mnt, how))
		return 0;
	/*
	 * A partial cgroup2 view (a cgroup namespace's own mount: a pod's, a container's) does not reach
	 * the cgroup2 root the host side is linked to: it is left as it is, never moved to that subtree.
	 */
	if (cgroup2_partial(mnt))
		return 0;
	crash_point("host:sync");
	if (!(want = calloc(65536 / 8, 1)))
		return seterr(err, "out of memory");
	if (steering_ports(st, want, &any, &local, err) || state_config_read(st, &cfg, err))
		goto out;
	any = any && st->host_prog_fd[HOST_HOOK_SOCKOPS] >= 0; /* rules made on a kernel that has them,
								  programs pinned by one that has not */
	/* whoever owns the host side: no listener answer is kept without the link that ends it (one about
	 * to be replaced below, or detached from outside) */
	if (!sockops_linked(st, mnt) && listen_memo_set(st, false, err))
		goto out;
	here = netns_cookie();
	/*
	 * The host side belongs to the network namespace of the hostlo that made the steering rules.
	 * Another namespace (an init container's, a pod's) leaves it as it is: its links, its listeners.
	 */
	if (any && cfg.host_netns_cookie && cfg.host_netns_cookie != here)
		ret = 0;
	else
		ret = any ? host_side_up(st, mnt, want, here, local, err) : host_side_down(st, want, err);
out:
	free(want);
	return ret;
}
