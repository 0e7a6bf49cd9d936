/* main.c: the hostlo command line: one do_<command> per verb, dispatched from a table. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include "attach.h"
#include "cgtree.h"
#include "container.h"
#include "counters.h"
#include "hostside.h"
#include "netns.h"
#include "report.h"
#include "rules.h"
#include "ruletab.h"
#include "serve.h"
#include "state.h"
#include "target.h"
#include "trace.h"
#include "util.h"

#ifndef HOSTLO_VERSION
#define HOSTLO_VERSION "unknown"
#endif

#define MIN_KERNEL_MAJOR 5
#define MIN_KERNEL_MINOR 10

static const char usage_text[] =
"Usage: hostlo COMMAND [OPTIONS]\n"
"\n"
"  hostlo attach  TARGET RULE... [--dry-run] [-j]\n"
"  hostlo detach  TARGET | --all\n"
"  hostlo list    [-j]\n"
"  hostlo stats   [TARGET] [-j | --prometheus] [--watch SECONDS]\n"
"  hostlo gc      [--every SECONDS] [-j]\n"
"  hostlo trace   [TARGET] [-j]\n"
"  hostlo serve   [--listen ADDR:PORT]\n"
"  hostlo version\n"
"  hostlo help | --help | COMMAND --help\n"
"\n"
"TARGET  --cgroup PATH   a cgroup v2 directory: a path under the cgroup2 mount\n"
"                        (/sys/fs/cgroup/unified/docker/ID) or as /proc/PID/cgroup names it,\n"
"                        relative to the cgroup2 root (/docker/ID or docker/ID)\n"
"        --self [--parent]\n"
"                        the cgroup hostlo runs in, or its parent (an init container's pod),\n"
"                        found in the host's cgroup2 tree even in a private cgroup namespace\n"
"        --pid PID       the cgroup v2 cgroup of process PID\n"
"        --container ID|NAME\n"
"                        a container's cgroup: a full ID or unique ID prefix (Docker, Podman,\n"
"                        containerd, Kubernetes and CRI-O layouts), or a Docker name (asked of\n"
"                        the Docker API at $DOCKER_HOST or /var/run/docker.sock)\n"
"RULE    --connect [tcp:|udp:]PORT[-PORT][=ADDR[:PORT]] [--always]\n"
"                        connects (and, for udp, datagrams) to 127.0.0.1, ::1 or ::ffff:127.0.0.1\n"
"                        on PORT (or the range) go to ADDR (IPv4) instead, on the same port or\n"
"                        from :PORT on. Without =ADDR: the default IPv4 gateway of the target's\n"
"                        network namespace, read from a process in the cgroup; when that is an\n"
"                        address of this host, a TCP connect there also reaches a host service\n"
"                        that listens only on 127.0.0.1 (and only these connects do).\n"
"                        The app still sees the address it asked for (getpeername, a reply's\n"
"                        source). A port with a listener in the caller's own netns stays local,\n"
"                        unless --always\n"
"        --bind PORT[-PORT][=ADDR]\n"
"                        binds to 127.0.0.1 on those ports become binds to ADDR (default\n"
"                        0.0.0.0); binds to ::1 on those ports become binds to ::\n"
"OPTIONS -j, --json      print JSON\n"
"        --dry-run       resolve and print the plan, attach nothing\n"
"        --all           (detach) remove every attachment and everything hostlo pinned\n"
"        --prometheus    (stats) the Prometheus text format: hostlo_<counter>_total\n"
"        --watch SECONDS (stats) refresh every SECONDS, showing what changed in each interval\n"
"        --every SECONDS (gc) run forever: a pass, then the counters, every SECONDS\n"
"        --listen ADDR:PORT\n"
"                        (serve) where to serve /metrics and /healthz (default 127.0.0.1:9477)\n"
"        --cgroup-root PATH\n"
"                        where the host's cgroup2 tree is mounted (default: from mountinfo)\n"
"        -v, --verbose   more detail on errors (the libbpf and verifier log)\n"
"\n"
"attach sets the cgroup's complete rule set: attaching again replaces it atomically. The\n"
"programs and rules are pinned in bpffs (/sys/fs/bpf/hostlo, or $HOSTLO_BPFFS/hostlo) and stay\n"
"after hostlo exits; they cover the cgroup and every cgroup below it. stats has one row per\n"
"calling process's own cgroup (one per container when attached at their parent). Every\n"
"command but attach (kept fast with thousands attached) first removes the attachments of\n"
"cgroups that no longer exist; gc does only that.\n"
"trace prints each rewrite as it happens (time, container, pid, command, what became what)\n"
"until Ctrl-C, then how many events were dropped; the programs make no event otherwise.\n"
"serve answers /metrics (what stats --prometheus prints, after a gc) and /healthz over HTTP.\n"
"\n"
"EXAMPLES\n"
"  hostlo attach --cgroup /docker --connect 5432 --bind 3000\n"
"  hostlo attach --container web --connect 5432\n"
"  hostlo attach --pid 4242 --connect 8000-8010=198.18.0.1 --connect 6380=198.18.0.1:6379\n"
"  hostlo stats -j\n"
"  hostlo detach --cgroup /docker\n"
"\n"
"Exit status: 0 success, 1 the request could not be carried out, 2 malformed command line.\n";

static void usage_error(const char *fmt, const char *arg)
{
	fputs("hostlo: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs(" (see 'hostlo --help')\n", stderr);
}

struct opts {
	const char *cgroup, *pid, *container, *cgroup_root, *every, *watch, *listen;
	bool self, parent, prometheus;
	struct ruleset rules;
	bool json, dry_run, all, help;
};

enum { OPT_CGROUP = 256, OPT_PID, OPT_CONNECT, OPT_BIND, OPT_DRY_RUN, OPT_ALL, OPT_CONTAINER, OPT_ALWAYS,
       OPT_SELF, OPT_PARENT, OPT_CGROUP_ROOT, OPT_EVERY, OPT_PROMETHEUS, OPT_WATCH, OPT_LISTEN };

/* Whether the space-separated list has this exact word ("cgroup" is not "cgroup-root"). */
static bool allows(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

/* Parses one command's options; allowed lists which of them the command takes. Returns 0 or 2. */
static int parse_opts(const char *cmd, int argc, char **argv, const char *allowed, struct opts *o)
{
	static const struct option longopts[] = {
		{ "cgroup", required_argument, NULL, OPT_CGROUP },
		{ "pid", required_argument, NULL, OPT_PID },
		{ "connect", required_argument, NULL, OPT_CONNECT },
		{ "bind", required_argument, NULL, OPT_BIND },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "all", no_argument, NULL, OPT_ALL },
		{ "container", required_argument, NULL, OPT_CONTAINER },
		{ "always", no_argument, NULL, OPT_ALWAYS },
		{ "self", no_argument, NULL, OPT_SELF },
		{ "parent", no_argument, NULL, OPT_PARENT },
		{ "cgroup-root", required_argument, NULL, OPT_CGROUP_ROOT },
		{ "every", required_argument, NULL, OPT_EVERY },
		{ "prometheus", no_argument, NULL, OPT_PROMETHEUS },
		{ "watch", required_argument, NULL, OPT_WATCH },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char err[ERRLEN];
	int c, idx;

	memset(o, 0, sizeof(*o));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+:jvh", longopts, &idx)) != -1) {
		const char *name = c >= 256 ? longopts[c - 256].name : NULL;
		char flag[2] = { (char)c, 0 };
		struct rule r;

		if (c == '?' || c == ':') {
			const char *bad = argv[optind - 1];

			usage_error(c == '?' ? "%s: unknown option" : "%s: missing argument", bad);
			return EXIT_USAGE;
		}
		if (!allows(allowed, name ? name : flag)) {
			fprintf(stderr, "hostlo: %s: %s%s is not an option of %s (see 'hostlo %s --help')\n", cmd,
				name ? "--" : "-", name ? name : flag, cmd, cmd);
			return EXIT_USAGE;
		}
		switch (c) {
		case OPT_PID:
			if (optarg[strspn(optarg, "0123456789")] || !optarg[0] || optarg[0] == '0') {
				errorf("--pid %s: not a process id", optarg);
				return EXIT_USAGE;
			}
			/* fall through */
		case OPT_CONTAINER:
			if (c == OPT_CONTAINER && !container_arg_valid(optarg)) {
				errorf("--container %s: not a container name or ID", optarg);
				return EXIT_USAGE;
			}
			/* fall through */
		case OPT_CGROUP:
		case OPT_SELF:
			if (o->cgroup || o->pid || o->container || o->self) {
				fprintf(stderr, "hostlo: %s: give one TARGET (--cgroup, --pid, --container or --self), not two\n",
					cmd);
				return EXIT_USAGE;
			}
			if (c == OPT_SELF)
				o->self = true;
			else
				*(c == OPT_CGROUP ? &o->cgroup : c == OPT_PID ? &o->pid : &o->container) = optarg;
			break;
		case OPT_PARENT: o->parent = true; break;
		case OPT_CGROUP_ROOT: o->cgroup_root = optarg; break;
		case OPT_EVERY: o->every = optarg; break;
		case OPT_PROMETHEUS: o->prometheus = true; break;
		case OPT_WATCH: o->watch = optarg; break;
		case OPT_LISTEN: o->listen = optarg; break;
		case OPT_CONNECT:
		case OPT_BIND:
			if ((c == OPT_CONNECT ? parse_connect : parse_bind)(optarg, &r, err) ||
			    ruleset_add(&o->rules, &r, err)) {
				errorf("%s", err);
				return EXIT_USAGE;
			}
			break;
		case OPT_ALWAYS:
			if (ruleset_always(&o->rules, err)) {
				errorf("%s", err);
				return EXIT_USAGE;
			}
			break;
		case OPT_DRY_RUN: o->dry_run = true; break;
		case OPT_ALL: o->all = true; break;
		case 'j': o->json = true; break;
		case 'v': verbose++; break;
		case 'h': o->help = true; break;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hostlo: %s: unexpected argument '%s' (see 'hostlo %s --help')\n", cmd, argv[optind], cmd);
		return EXIT_USAGE;
	}
	if (o->parent && !o->self) {
		fprintf(stderr, "hostlo: %s: --parent goes with --self (see 'hostlo %s --help')\n", cmd, cmd);
		return EXIT_USAGE;
	}
	return 0;
}

static int kernel_supported(void)
{
	struct utsname u;
	int major = 0, minor = 0;

	if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2)
		return 1; /* cannot tell: let the kernel answer */
	if (major > MIN_KERNEL_MAJOR || (major == MIN_KERNEL_MAJOR && minor >= MIN_KERNEL_MINOR))
		return 1;
	errorf("kernel %s: too old, hostlo needs Linux %d.%d or newer (cgroup bpf_link, getpeername and recvmsg hooks, batched map access)",
	       u.release, MIN_KERNEL_MAJOR, MIN_KERNEL_MINOR);
	return 0;
}

/* Bit n of CapEff; checked up front so the error names the missing capability. */
static bool has_cap(int cap)
{
	char line[256];
	unsigned long long eff = 0;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return true; /* cannot tell: let the kernel answer */
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	fclose(f);
	return eff & (1ULL << cap);
}

static int check_privileges(const char *cmd, bool mount_needed)
{
	enum { CAP_NET_ADMIN_ = 12, CAP_SYS_ADMIN_ = 21, CAP_BPF_ = 39 };
	const char *missing = NULL;

	if (!has_cap(CAP_BPF_) && !has_cap(CAP_SYS_ADMIN_))
		missing = "CAP_BPF (or CAP_SYS_ADMIN)";
	else if (!has_cap(CAP_NET_ADMIN_))
		missing = "CAP_NET_ADMIN";
	else if (mount_needed && !has_cap(CAP_SYS_ADMIN_))
		missing = "CAP_SYS_ADMIN";
	if (!missing)
		return 0;
	errorf("%s: permission denied: missing %s (run as root, or with CAP_BPF + CAP_NET_ADMIN + CAP_SYS_ADMIN)",
	       cmd, missing);
	return -1;
}

static bool has_target(const struct opts *o)
{
	return o->cgroup || o->pid || o->container || o->self;
}

/* The host's cgroup2 tree: --cgroup-root, or found in mountinfo. */
static int find_cgroup2(const struct opts *o, char *mnt, size_t mlen)
{
	char err[ERRLEN];

	if (o->cgroup_root) {
		if (!real_sysenv.is_cgroup2(o->cgroup_root)) {
			errorf("--cgroup-root %s: not a cgroup2 mount", o->cgroup_root);
			return EXIT_FAIL;
		}
		snprintf(mnt, mlen, "%s", o->cgroup_root);
		return 0;
	}
	if (cgroup2_mount(&real_sysenv, mnt, mlen, err)) {
		errorf("%s", err);
		return EXIT_FAIL;
	}
	return 0;
}

/* Resolves --cgroup/--pid/--container. Returns 0, or an exit status. */
static int resolve_target(const struct opts *o, char *mnt, size_t mlen, struct cgroup *cg)
{
	char err[ERRLEN], rel[PATH_MAX];
	struct cgtree tree;
	int rc;

	if ((rc = find_cgroup2(o, mnt, mlen)))
		return rc;
	if (o->self) {
		if (cgtree_load(&tree, mnt, err)) {
			errorf("%s", err);
			return EXIT_FAIL;
		}
		rc = cgroup_self(&real_sysenv, mnt, &tree, o->parent, cg, err);
		cgtree_free(&tree);
		if (rc) {
			errorf("%s", err);
			return EXIT_FAIL;
		}
		return 0;
	}
	if (o->container) {
		if (cgtree_load(&tree, mnt, err)) {
			errorf("%s", err);
			return EXIT_FAIL;
		}
		rc = container_cgroup(&tree, mnt, o->container, rel, sizeof(rel), err);
		cgtree_free(&tree);
		if (rc || cgroup_from_path(&real_sysenv, mnt, rel, cg, err)) {
			errorf("%s", err);
			return EXIT_FAIL;
		}
		return 0;
	}
	if (o->cgroup ? cgroup_from_path(&real_sysenv, mnt, o->cgroup, cg, err) :
			cgroup_from_pid(&real_sysenv, mnt, o->pid, cg, err)) {
		errorf("%s", err);
		return EXIT_FAIL;
	}
	return 0;
}

/* For commands whose TARGET is optional: resolve it when given, else just find the cgroup2 tree. */
static int target_or_tree(const struct opts *o, char *mnt, size_t mlen, struct cgroup *cg)
{
	return has_target(o) ? resolve_target(o, mnt, mlen, cg) : find_cgroup2(o, mnt, mlen);
}

/* Opens the pinned state and removes what vanished cgroups or crashed runs left; with removed (the
 * gc command), every link is checked with the kernel, not only counted. */
static int open_and_gc(struct state *st, enum open_mode mode, const char *mnt, struct cgtree *tree, int *removed)
{
	char err[ERRLEN];
	int n;

	if (state_open(st, mode, err) || cgtree_open(tree, mnt, err) ||
	    (n = state_gc(st, tree, mode == OPEN_CREATE, removed != NULL, err)) < 0 ||
	    state_host_sync(st, mnt, removed ? HOST_SYNC_FULL : n > 0 ? HOST_SYNC_CHANGED : HOST_SYNC_CHECK, err)) {
		errorf("%s", err);
		return EXIT_FAIL;
	}
	if (removed)
		*removed = n;
	return 0;
}

static int fill_gateways(struct ruleset *rs, const struct cgroup *cg)
{
	char err[ERRLEN], rule[128];
	uint32_t gw = 0;
	int pid = 0;

	for (int i = 0; i < rs->n; i++) {
		struct rule *r = &rs->r[i];

		if (r->has_addr)
			continue;
		if (!pid) {
			pid = cgroup_some_pid(cg->path);
			if (!pid) {
				rule_format(r, rule, sizeof(rule));
				errorf("%s: cgroup %s has no process to read the gateway from; give %s=ADDR", rule,
				       cg->rel, rule);
				return EXIT_FAIL;
			}
			if (default_gateway(&real_sysenv, pid, &gw, err)) {
				errorf("%s", err);
				return EXIT_FAIL;
			}
		}
		r->addr = gw;
		r->has_addr = true;
		/* the gateway is this host: a service on the host's loopback only is reached too */
		if (r->proto == PROTO_TCP && hostside_supported())
			r->host_ifindex = local_ifindex(gw);
		else if (r->proto == PROTO_TCP)
			r->host_unsupported = local_ifindex(gw) != 0; /* said by attach and list */
	}
	return 0;
}

/* Rules act at bind() time: an app already listening on loopback is not reached until it rebinds. */
static void warn_existing_listeners(const struct ruleset *rs, const struct cgroup *cg)
{
	for (int i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->r[i];
		int pid = 0, port;

		if (r->kind != RULE_BIND)
			continue;
		port = loopback_listener(&real_sysenv, cg->path, r->port_min, r->port_max, &pid);
		if (port)
			fprintf(stderr, "hostlo: warning: port %d already listens on loopback in %s (pid %d): the app must "
				"rebind (restart) to be reachable; to cover apps from their start, attach before they start "
				"(an init container, or the runtime's parent cgroup, e.g. --cgroup /docker)\n",
				port, cg->rel, pid);
	}
}

static int do_attach(int argc, char **argv)
{
	struct attachment a = { 0 };
	struct cgtree tree = { 0 };
	struct state st = { .lock_fd = -1 };
	char mnt[PATH_MAX], err[ERRLEN], rules[4096];
	struct cgroup cg;
	struct opts o;
	int ret;

	ret = parse_opts("attach", argc, argv, "cgroup pid container self parent cgroup-root connect always bind dry-run j v h", &o);
	if (ret || o.help)
		return ret ? ret : (fputs(usage_text, stdout), 0);
	if (!has_target(&o)) {
		usage_error("attach: %s", "missing TARGET (--cgroup PATH, --pid PID, --container ID|NAME or --self)");
		return EXIT_USAGE;
	}
	if (!o.rules.n) {
		usage_error("attach: %s", "missing RULE (--connect or --bind)");
		return EXIT_USAGE;
	}
	if ((ret = resolve_target(&o, mnt, sizeof(mnt), &cg)))
		return ret;
	if (cg.level == 0) {
		errorf("attach: refusing the cgroup2 root: it holds every process on the host; name a container's cgroup or its parent");
		return EXIT_FAIL;
	}
	if ((ret = fill_gateways(&o.rules, &cg)))
		return ret;
	a.id = cg.id;
	a.label.rel = cg.rel;
	container_id_of(cg.rel, a.label.container);
	a.rules = o.rules;
	ruleset_text(&o.rules, rules, sizeof(rules));
	if (o.dry_run) {
		if (o.json) {
			json_object *j = attachment_json(&a);

			json_object_object_add(j, "dry_run", json_object_new_boolean(1));
			print_json(j);
			json_object_put(j);
		} else {
			printf("would attach %s (cgroup id %llu): %s\n", cg.rel, (unsigned long long)cg.id, rules);
		}
		return 0;
	}
	if (!kernel_supported() || check_privileges("attach", !o.self))
		return EXIT_FAIL;
	if (o.self && !state_bpffs_mounted()) {
		/* a bpffs mounted here, in the container's own mount namespace, would vanish with it */
		errorf("attach --self: %s is not a bpffs: mount the host's /sys/fs/bpf into the container",
		       state_bpffs_path());
		return EXIT_FAIL;
	}
	/* no gc of other cgroups here: attach stays fast with thousands attached (list, stats and gc do it) */
	if (state_open(&st, OPEN_CREATE, err) || state_repair_attach(&st, cg.id, err) ||
	    (!st.present && (state_close(&st), state_open(&st, OPEN_CREATE, err)))) {
		errorf("%s", err);
		ret = EXIT_FAIL;
	}
	/* the host side needs a full pass only when steering rules come or go (state_attach marks it) */
	enum host_sync how = HOST_SYNC_CHECK;

	if (!ret && (state_attach(&st, &cg, &o.rules, err) || state_host_sync(&st, mnt, how, err))) {
		errorf("%s", err);
		ret = EXIT_FAIL;
	}
	if (!ret) {
		/* a steering rule shows whether the host's listener was found */
		state_listening(&st, &a.rules);
		ruleset_text(&a.rules, rules, sizeof(rules));
		warn_existing_listeners(&o.rules, &cg);
		if (o.json) {
			json_object *j = attachment_json(&a);

			print_json(j);
			json_object_put(j);
		} else {
			printf("attached %s (cgroup id %llu): %s\n", cg.rel, (unsigned long long)cg.id, rules);
		}
	}
	cgtree_free(&tree);
	state_close(&st);
	return ret;
}

static int do_detach(int argc, char **argv)
{
	struct state st = { .lock_fd = -1 };
	struct cgtree tree = { 0 };
	char mnt[PATH_MAX], err[ERRLEN];
	struct cgroup cg;
	struct opts o;
	int ret;

	ret = parse_opts("detach", argc, argv, "cgroup pid container self parent cgroup-root all j v h", &o);
	if (ret || o.help)
		return ret ? ret : (fputs(usage_text, stdout), 0);
	if (o.all == has_target(&o)) {
		usage_error("detach: %s", "give either TARGET (--cgroup PATH, --pid PID, --container ID|NAME or --self) or --all");
		return EXIT_USAGE;
	}
	if (check_privileges("detach", false))
		return EXIT_FAIL;
	if (o.all) {
		if (state_open(&st, OPEN_LOCK_ONLY, err)) {
			errorf("%s", err);
			return EXIT_FAIL;
		}
		state_detach_all(&st);
		state_close(&st);
		printf("detached everything\n");
		return 0;
	}
	if ((ret = resolve_target(&o, mnt, sizeof(mnt), &cg)))
		return ret;
	ret = open_and_gc(&st, OPEN_EXISTING, mnt, &tree, NULL);
	if (!ret) {
		switch (state_detach(&st, cg.id, &tree, err)) {
		case 0:
			if (state_host_sync(&st, mnt, HOST_SYNC_CHANGED, err)) {
				errorf("%s", err);
				ret = EXIT_FAIL;
				break;
			}
			printf("detached %s\n", cg.rel);
			break;
		case 1:
			errorf("detach %s: not attached", cg.rel);
			ret = EXIT_FAIL;
			break;
		default:
			errorf("%s", err);
			ret = EXIT_FAIL;
		}
	}
	cgtree_free(&tree);
	state_close(&st);
	return ret;
}

static const char *name_of(struct cgtree *tree, uint64_t id)
{
	const struct cgnode *n = cgtree_find(tree, id);

	return n ? n->rel : "(gone)";
}

static void label(struct cgroup_label *l, const char *rel, struct docker_names *dn, bool *names_loaded)
{
	l->rel = rel;
	l->name = NULL;
	if (!container_id_of(rel, l->container)) {
		l->container[0] = '\0';
		return;
	}
	if (!*names_loaded) {
		docker_names_load(dn); /* one API call, and only when some cgroup is a container's */
		*names_loaded = true;
	}
	l->name = docker_name(dn, l->container);
}

static int do_list(int argc, char **argv)
{
	struct state st = { .lock_fd = -1 };
	struct attachment *a = NULL;
	struct docker_names dn = { 0 };
	bool names_loaded = false;
	struct cgtree tree = { 0 };
	char mnt[PATH_MAX], err[ERRLEN];
	uint64_t *ids = NULL;
	struct opts o;
	size_t n = 0;
	int ret;

	ret = parse_opts("list", argc, argv, "cgroup-root j v h", &o);
	if (ret || o.help)
		return ret ? ret : (fputs(usage_text, stdout), 0);
	if (check_privileges("list", false))
		return EXIT_FAIL;
	if ((ret = find_cgroup2(&o, mnt, sizeof(mnt))))
		return ret;
	ret = open_and_gc(&st, OPEN_EXISTING, mnt, &tree, NULL);
	if (!ret && state_attached(&st, &ids, &n, err)) {
		errorf("%s", err);
		ret = EXIT_FAIL;
	}
	if (!ret) {
		a = calloc(n ? n : 1, sizeof(*a));
		for (size_t i = 0; a && i < n && !ret; i++) {
			a[i].id = ids[i];
			label(&a[i].label, name_of(&tree, ids[i]), &dn, &names_loaded);
			if (state_rules(&st, ids[i], &a[i].rules, err)) {
				errorf("%s", err);
				ret = EXIT_FAIL;
			}
			state_listening(&st, &a[i].rules);
		}
		if (!ret)
			print_list(a, n, o.json);
	}
	free(a);
	free(ids);
	docker_names_free(&dn);
	cgtree_free(&tree);
	state_close(&st);
	return ret;
}

static int line_cmp(const void *x, const void *y)
{
	const struct stat_line *a = x, *b = y;
	int c = strcmp(a->label.rel, b->label.rel);

	return c ? c : strcmp(a->attach_rel, b->attach_rel);
}

/* A row belongs to TARGET when the caller's cgroup is TARGET or below it, or TARGET is attached. */
static bool in_target(const struct stat_line *l, const struct cgroup *cg)
{
	size_t n = strlen(cg->rel);

	return l->row.attach_id == cg->id || l->row.cgroup_id == cg->id ||
	       (strncmp(l->label.rel, cg->rel, n) == 0 && (l->label.rel[n] == '/' || n == 1));
}

/* The counter rows, labelled and sorted, restricted to filter when given; caller frees. */
static int stat_lines(struct state *st, struct cgtree *tree, const struct cgroup *filter,
		      struct docker_names *dn, struct stat_line **out, size_t *m)
{
	struct stats_row *rows = NULL;
	bool names_loaded = false;
	char err[ERRLEN];
	size_t n = 0;

	*out = NULL;
	*m = 0;
	if (state_stats(st, &rows, &n, err)) {
		errorf("%s", err);
		return EXIT_FAIL;
	}
	*out = calloc(n ? n : 1, sizeof(**out));
	for (size_t i = 0; *out && i < n; i++) {
		struct stat_line l = {
			.label.rel = name_of(tree, rows[i].cgroup_id),
			.attach_rel = name_of(tree, rows[i].attach_id),
			.row = rows[i],
		};

		if (filter && !in_target(&l, filter))
			continue;
		label(&l.label, l.label.rel, dn, &names_loaded);
		(*out)[(*m)++] = l;
	}
	free(rows);
	if (*m)
		qsort(*out, *m, sizeof(**out), line_cmp);
	return 0;
}

/* A whole number of seconds, 1-86400, or 0 after an error message (exit 2). */
static long seconds_arg(const char *opt, const char *v)
{
	char *end;
	long n = strtol(v, &end, 10);

	if (*end || end == v || n < 1 || n > 86400) {
		errorf("%s %s: not a number of seconds (1-86400)", opt, v);
		return 0;
	}
	return n;
}

/* One read of the counters, labelled; with prev (--watch), each count becomes its change since then. */
static int stats_once(const struct opts *o, const char *mnt, const struct cgroup *filter, struct stat_line **lines,
		      size_t *m, struct docker_names *dn)
{
	struct state st = { .lock_fd = -1 };
	struct cgtree tree = { 0 };
	int ret;

	(void)o;
	docker_names_free(dn); /* the previous interval's names */
	ret = open_and_gc(&st, OPEN_EXISTING, mnt, &tree, NULL);
	if (!ret)
		ret = stat_lines(&st, &tree, filter, dn, lines, m);
	/* labels point into the tree: keep the strings, drop the tree */
	for (size_t i = 0; !ret && i < *m; i++) {
		(*lines)[i].label.rel = strdup((*lines)[i].label.rel);
		(*lines)[i].attach_rel = strdup((*lines)[i].attach_rel);
		if ((*lines)[i].label.name)
			(*lines)[i].label.name = strdup((*lines)[i].label.name);
	}
	cgtree_free(&tree);
	state_close(&st);
	return ret;
}

static void free_lines(struct stat_line *l, size_t n)
{
	for (size_t i = 0; l && i < n; i++) {
		free((char *)l[i].label.rel);
		free((char *)l[i].attach_rel);
		free((char *)l[i].label.name);
	}
	free(l);
}

static int do_stats(int argc, char **argv)
{
	struct stat_line *lines = NULL, *prev = NULL;
	struct docker_names dn = { 0 };
	size_t m = 0, pm = 0;
	char mnt[PATH_MAX];
	struct cgroup cg;
	struct opts o;
	long watch = 0;
	int ret;

	ret = parse_opts("stats", argc, argv, "cgroup pid container self parent cgroup-root prometheus watch j v h", &o);
	if (ret || o.help)
		return ret ? ret : (fputs(usage_text, stdout), 0);
	if (o.prometheus && (o.json || o.watch)) {
		usage_error("stats: %s", "--prometheus goes alone (no -j, no --watch)");
		return EXIT_USAGE;
	}
	if (o.watch && !(watch = seconds_arg("--watch", o.watch)))
		return EXIT_USAGE;
	if (check_privileges("stats", false))
		return EXIT_FAIL;
	if ((ret = target_or_tree(&o, mnt, sizeof(mnt), &cg)))
		return ret;
	for (;;) {
		ret = stats_once(&o, mnt, has_target(&o) ? &cg : NULL, &lines, &m, &dn);
		if (ret)
			break;
		if (!watch) {
			if (o.prometheus)
				print_prometheus(stdout, lines, m);
			else
				print_stats(lines, m, o.json);
			break;
		}
		/* --watch: what changed in the last interval, per row (rows new since then count from 0) */
		struct stat_line *shown = calloc(m ? m : 1, sizeof(*shown));

		for (size_t i = 0; shown && i < m; i++) {
			shown[i] = lines[i];
			for (size_t k = 0; k < pm; k++)
				if (prev[k].row.cgroup_id == lines[i].row.cgroup_id && prev[k].row.attach_id == lines[i].row.attach_id)
					for (int c = 0; c < HOSTLO_CNT_USED; c++)
						shown[i].row.count[c] -= prev[k].row.count[c];
		}
		if (prev || o.json) {
			time_t t = time(NULL);
			char when[16];

			strftime(when, sizeof(when), "%H:%M:%S", localtime(&t));
			if (o.json) {
				json_object *j = stats_json(shown, m);

				puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
				json_object_put(j);
			} else {
				if (isatty(STDOUT_FILENO))
					fputs("\033[H\033[2J", stdout);
				printf("%s  changes in the last %ld s%s\n", when, watch, prev ? "" : " (since start)");
				print_stats(shown, m, false);
			}
			fflush(stdout);
		}
		free(shown);
		free_lines(prev, pm);
		prev = lines;
		pm = m;
		lines = NULL;
		sleep((unsigned)watch);
	}
	free_lines(lines, m);
	free_lines(prev, pm);
	docker_names_free(&dn);
	return ret;
}

/* One gc pass; with every, the counters too, as a node agent's log line (one JSON object a pass with -j). */
static int gc_pass(const struct opts *o, const char *mnt, bool every)
{
	struct state st = { .lock_fd = -1 };
	struct stat_line *lines = NULL;
	struct docker_names dn = { 0 };
	struct cgtree tree = { 0 };
	int ret, removed = 0;
	size_t m = 0;

	ret = open_and_gc(&st, OPEN_EXISTING, mnt, &tree, &removed);
	if (!ret && every)
		ret = stat_lines(&st, &tree, NULL, &dn, &lines, &m);
	if (!ret && o->json) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "removed", json_object_new_int(removed));
		if (every)
			json_object_object_add(j, "stats", stats_json(lines, m));
		puts(json_object_to_json_string_ext(j, every ? JSON_C_TO_STRING_PLAIN : JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
	} else if (!ret) {
		printf("gc: removed %d attachment%s of cgroups that no longer exist\n", removed, removed == 1 ? "" : "s");
		if (every)
			print_stats(lines, m, false);
	}
	fflush(stdout);
	free(lines);
	docker_names_free(&dn);
	cgtree_free(&tree);
	state_close(&st); /* never hold the lock between passes */
	return ret;
}

static int do_gc(int argc, char **argv)
{
	char mnt[PATH_MAX];
	struct opts o;
	long every;
	int ret;

	ret = parse_opts("gc", argc, argv, "cgroup-root every j v h", &o);
	if (ret || o.help)
		return ret ? ret : (fputs(usage_text, stdout), 0);
	every = 0;
	if (o.every && !(every = seconds_arg("--every", o.every)))
		return EXIT_USAGE;
	if (check_privileges("gc", false))
		return EXIT_FAIL;
	if ((ret = find_cgroup2(&o, mnt, sizeof(mnt))))
		return ret;
	if (!every)
		return gc_pass(&o, mnt, false);
	for (;;) {
		if ((ret = gc_pass(&o, mnt, true)))
			return ret;
		sleep((unsigned)every);
	}
}

static int do_trace(int argc, char **argv)
{
	struct state st = { .lock_fd = -1 };
	struct cgtree tree = { 0 };
	char mnt[PATH_MAX];
	struct cgroup cg;
	struct opts o;
	int ret;

	ret = parse_opts("trace", argc, argv, "cgroup pid container self parent cgroup-root j v h", &o);
	if (ret || o.help)
		return ret ? ret : (fputs(usage_text, stdout), 0);
	if (check_privileges("trace", false))
		return EXIT_FAIL;
	if ((ret = target_or_tree(&o, mnt, sizeof(mnt), &cg)))
		return ret;
	ret = open_and_gc(&st, OPEN_EXISTING, mnt, &tree, NULL);
	cgtree_free(&tree);
	if (!ret)
		ret = trace_run(&st, mnt, has_target(&o) ? &cg : NULL, o.json);
	state_close(&st);
	return ret;
}

/* /metrics: every scrape is a command of its own, with its gc, under the lock for a moment. */
static int render_metrics(void *ctx, char **body, size_t *len)
{
	const struct opts *o = ctx;
	struct stat_line *lines = NULL;
	struct docker_names dn = { 0 };
	char mnt[PATH_MAX];
	size_t m = 0;
	FILE *f;
	int ret = find_cgroup2(o, mnt, sizeof(mnt));

	if (!ret)
		ret = stats_once(o, mnt, NULL, &lines, &m, &dn);
	if (!ret && (f = open_memstream(body, len))) {
		print_prometheus(f, lines, m);
		fclose(f);
	} else if (!ret) {
		ret = EXIT_FAIL;
	}
	free_lines(lines, m);
	docker_names_free(&dn);
	return ret;
}

static int do_serve(int argc, char **argv)
{
	struct sockaddr_in at = { .sin_family = AF_INET };
	const char *listen = "127.0.0.1:9477";
	char host[64];
	unsigned port;
	struct opts o;
	int ret, n;

	ret = parse_opts("serve", argc, argv, "listen cgroup-root v h", &o);
	if (ret || o.help)
		return ret ? ret : (fputs(usage_text, stdout), 0);
	if (o.listen)
		listen = o.listen;
	if (sscanf(listen, "%63[0-9.]:%u%n", host, &port, &n) != 2 || listen[n] || port < 1 || port > 65535 ||
	    inet_pton(AF_INET, host, &at.sin_addr) != 1) {
		errorf("--listen %s: not an IPv4 ADDR:PORT", listen);
		return EXIT_USAGE;
	}
	at.sin_port = htons((unsigned short)port);
	if (check_privileges("serve", false))
		return EXIT_FAIL;
	return serve_run(&at, render_metrics, &o);
}

static int do_version(int argc, char **argv)
{
	struct opts o;
	int ret = parse_opts("version", argc, argv, "j v h", &o);

	if (ret)
		return ret;
	if (o.json) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "version", json_object_new_string(HOSTLO_VERSION));
		json_object_object_add(j, "abi", json_object_new_int(HOSTLO_ABI_VERSION));
		json_object_object_add(j, "libbpf", json_object_new_string(libbpf_version_string()));
		print_json(j);
		json_object_put(j);
	} else {
		printf("hostlo %s (BPF ABI %d, libbpf %s)\n", HOSTLO_VERSION, HOSTLO_ABI_VERSION,
		       libbpf_version_string());
	}
	return 0;
}

static int do_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs(usage_text, stdout);
	return 0;
}

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "attach", do_attach },
	{ "detach", do_detach },
	{ "list", do_list },
	{ "stats", do_stats },
	{ "gc", do_gc },
	{ "trace", do_trace },
	{ "serve", do_serve },
	{ "version", do_version },
	{ "help", do_help },
};

int main(int argc, char **argv)
{
	const char *cmd;

	/* setuid would hand kernel-wide redirection to whoever runs the binary */
	if (getuid() != geteuid() || getgid() != getegid()) {
		errorf("refusing to run setuid or setgid");
		return EXIT_FAIL;
	}
	while (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--verbose") == 0)) {
		verbose++;
		argv++;
		argc--;
	}
	if (argc < 2) {
		usage_error("%s", "missing COMMAND");
		return EXIT_USAGE;
	}
	cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)
		return do_help(0, NULL);
	if (strcmp(cmd, "--version") == 0)
		cmd = "version";
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd, commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	usage_error("%s: unknown command", cmd);
	return EXIT_USAGE;
}
