/* opts.h: one command's options: parsed, and checked as far as the command line alone can tell. */
#ifndef HOSTLO_OPTS_H
#define HOSTLO_OPTS_H

#include <stdbool.h>
#include <netinet/in.h>
#include "rules.h"

struct opts {
	const char *cgroup, *pid, *container, *cgroup_root;
	bool self, parent, prometheus;
	struct ruleset rules;
	bool json, dry_run, all, help, create;
	const char *watch, *every, *listen, *config;
	long watch_s, every_s;          /* checked seconds, 0: not given */
	struct sockaddr_in listen_at;   /* serve */
};

/* Each returns 0, or EXIT_USAGE after one line on stderr naming the bad token. */
/* Parses cmd's options, taking only those its allowed list names ("cgroup pid j v h"). */
int parse_opts(const char *cmd, const char *allowed, int argc, char **argv, struct opts *o);
int check_attach(struct opts *o);   /* a TARGET and a RULE */
int check_detach(struct opts *o);   /* a TARGET or --all */
int check_stats(struct opts *o);    /* --prometheus alone; --watch in seconds */
int check_gc(struct opts *o);       /* --every in seconds */
int check_serve(struct opts *o);    /* --listen an IPv4 ADDR:PORT (default 127.0.0.1:9477) */

bool has_target(const struct opts *o);
/* "hostlo: <fmt with arg> (see 'hostlo --help')" */
void usage_error(const char *fmt, const char *arg);

#endif
