/* opts.c: the command line of one command: getopt_long over every option hostlo has, refusing
 * those the command does not take, rules parsed as they come; then what the options alone can tell. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "container.h"
#include "opts.h"
#include "usage.h"
#include "util.h"

void usage_error(const char *fmt, const char *arg)
{
	fputs("hostlo: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs(" (see 'hostlo --help')\n", stderr);
}

bool has_target(const struct opts *o)
{
	return o->cgroup || o->pid || o->container || o->self;
}

enum { OPT_CGROUP = 256, OPT_PID, OPT_CONNECT, OPT_BIND, OPT_DRY_RUN, OPT_ALL, OPT_CONTAINER, OPT_ALWAYS,
       OPT_SELF, OPT_PARENT, OPT_CGROUP_ROOT, OPT_EVERY, OPT_PROMETHEUS, OPT_WATCH, OPT_LISTEN, OPT_CREATE, OPT_CONFIG, OPT_REAL_PEER };

/* Indexed by OPT_* - 256: an option's word is its name. */
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
	{ "create", no_argument, NULL, OPT_CREATE },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "real-peer", no_argument, NULL, OPT_REAL_PEER },
	{ "json", no_argument, NULL, 'j' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

/* --cgroup, --pid, --container, --self: one of them, checked as far as the text can be. */
static int take_target(const char *cmd, int c, const char *arg, struct opts *o)
{
	if (c == OPT_PID && (arg[strspn(arg, "0123456789")] || !arg[0] || arg[0] == '0')) {
		errorf("--pid %s: not a process id", arg);
		return EXIT_USAGE;
	}
	if (c == OPT_CONTAINER && !container_arg_valid(arg)) {
		errorf("--container %s: not a container name or ID", arg);
		return EXIT_USAGE;
	}
	if (has_target(o)) {
		fprintf(stderr, "hostlo: %s: give one TARGET (--cgroup, --pid, --container or --self), not two\n", cmd);
		return EXIT_USAGE;
	}
	if (c == OPT_SELF)
		o->self = true;
	else
		*(c == OPT_CGROUP ? &o->cgroup : c == OPT_PID ? &o->pid : &o->container) = arg;
	return 0;
}

/* --connect, --bind, --always and --real-peer, parsed into the rule set as they come. */
static int take_rule(int c, const char *arg, struct opts *o)
{
	char err[ERRLEN];
	struct rule r;

	if (c == OPT_ALWAYS ? ruleset_always(&o->rules, err) : c == OPT_REAL_PEER ? ruleset_real_peer(&o->rules, err) :
	    (c == OPT_CONNECT ? parse_connect : parse_bind)(arg, &r, err) || ruleset_add(&o->rules, &r, err)) {
		errorf("%s", err);
		return EXIT_USAGE;
	}
	return 0;
}

static int take_option(const char *cmd, int c, const char *arg, struct opts *o)
{
	switch (c) {
	case OPT_CGROUP: case OPT_PID: case OPT_CONTAINER: case OPT_SELF:
		return take_target(cmd, c, arg, o);
	case OPT_CONNECT: case OPT_BIND: case OPT_ALWAYS: case OPT_REAL_PEER:
		return take_rule(c, arg, o);
	case OPT_PARENT: o->parent = true; break;
	case OPT_CGROUP_ROOT: o->cgroup_root = arg; break;
	case OPT_EVERY: o->every = arg; break;
	case OPT_PROMETHEUS: o->prometheus = true; break;
	case OPT_WATCH: o->watch = arg; break;
	case OPT_LISTEN: o->listen = arg; break;
	case OPT_DRY_RUN: o->dry_run = true; break;
	case OPT_CREATE: o->create = true; break;
	case OPT_CONFIG: o->config = optarg; break;
	case OPT_ALL: o->all = true; break;
	case 'j': o->json = true; break;
	case 'v': verbose++; break;
	case 'h': o->help = true; break;
	}
	return 0;
}

int parse_opts(const char *cmd, const char *allowed, int argc, char **argv, struct opts *o)
{
	int c, idx, ret;

	memset(o, 0, sizeof(*o));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+:jvh", longopts, &idx)) != -1) {
		const char *name = c >= 256 ? longopts[c - 256].name : NULL;
		char flag[2] = { (char)c, 0 };

		if (c == '?' || c == ':') {
			usage_error(c == '?' ? "%s: unknown option" : "%s: missing argument", argv[optind - 1]);
			return EXIT_USAGE;
		}
		if (!word_in(allowed, name ? name : flag)) {
			fprintf(stderr, "hostlo: %s: %s%s is not an option of %s (see 'hostlo %s --help')\n", cmd,
				name ? "--" : "-", name ? name : flag, cmd, cmd);
			return EXIT_USAGE;
		}
		if ((ret = take_option(cmd, c, optarg, o)))
			return ret;
	}
	if (optind < argc) {
		fprintf(stderr, "hostlo: %s: unexpected argument '%s' (see 'hostlo %s --help')\n", cmd, argv[optind],
			cmd);
		return EXIT_USAGE;
	}
	if (o->parent && !o->self) {
		fprintf(stderr, "hostlo: %s: --parent goes with --self (see 'hostlo %s --help')\n", cmd, cmd);
		return EXIT_USAGE;
	}
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

int check_attach(struct opts *o)
{
	if (!has_target(o)) {
		usage_error("attach: %s", "missing TARGET (--cgroup PATH, --pid PID, --container ID|NAME or --self)");
		return EXIT_USAGE;
	}
	if (!o->rules.n) {
		usage_error("attach: %s", "missing RULE (--connect or --bind)");
		return EXIT_USAGE;
	}
	if (o->create && !o->cgroup) {
		usage_error("attach: %s", "--create makes a --cgroup PATH, and needs one");
		return EXIT_USAGE;
	}
	return 0;
}

int check_detach(struct opts *o)
{
	if (o->all == has_target(o)) {
		usage_error("detach: %s", "give either TARGET (--cgroup PATH, --pid PID, --container ID|NAME or --self) or --all");
		return EXIT_USAGE;
	}
	return 0;
}

int check_stats(struct opts *o)
{
	if (o->prometheus && (o->json || o->watch)) {
		usage_error("stats: %s", "--prometheus goes alone (no -j, no --watch)");
		return EXIT_USAGE;
	}
	if (o->watch && !(o->watch_s = seconds_arg("--watch", o->watch)))
		return EXIT_USAGE;
	return 0;
}

int check_gc(struct opts *o)
{
	if (o->every && !(o->every_s = seconds_arg("--every", o->every)))
		return EXIT_USAGE;
	return 0;
}

int check_serve(struct opts *o)
{
	const char *listen = o->listen ? o->listen : "127.0.0.1:9477";
	char host[64];
	unsigned port;
	int n;

	o->listen_at.sin_family = AF_INET;
	if (sscanf(listen, "%63[0-9.]:%u%n", host, &port, &n) != 2 || listen[n] || port < 1 || port > 65535 ||
	    inet_pton(AF_INET, host, &o->listen_at.sin_addr) != 1) {
		errorf("--listen %s: not an IPv4 ADDR:PORT", listen);
		return EXIT_USAGE;
	}
	o->listen_at.sin_port = htons((unsigned short)port);
	return 0;
}
