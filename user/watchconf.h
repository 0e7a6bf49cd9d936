/* watchconf.h: the rules a container asks for, from its io.hostlo.* labels or the watch config file; pure. */
#ifndef HOSTLO_WATCHCONF_H
#define HOSTLO_WATCHCONF_H

#include <json-c/json.h>
#include "rules.h"

#define WATCH_LABEL_CONNECT "io.hostlo.connect"
#define WATCH_LABEL_BIND "io.hostlo.bind"
#define WATCH_CONFIG_DEFAULT "/etc/hostlo/watch.conf"

/* What selects a container: Docker's view of it. */
struct watch_ctr {
	const char *id, *name, *image;
	json_object *labels;   /* an object of strings, or NULL */
};

/*
 * The config file, JSON:
 *   { "containers": [ { "name": "web-*", "image": "nginx*", "label": "tier=front",
 *                       "connect": ["5432", "udp:53", "6380=198.18.0.1:6379"], "bind": ["3000"] } ] }
 * name and image are fnmatch(3) globs, label is KEY or KEY=VALUE; an entry needs one selector at
 * least and matches when all of its selectors do. The first matching entry gives the rules.
 */
struct watchconf {
	char path[256];
	json_object *entries;  /* the "containers" array; NULL: no file, no entries */
};

/* Parses the config text (path names it in errors). Returns 0, or -1 with err naming the bad part. */
int watchconf_parse(struct watchconf *wc, const char *text, const char *path, char *err);
/* Reads and parses path; a missing file is an empty config when missing_ok. */
int watchconf_load(struct watchconf *wc, const char *path, bool missing_ok, char *err);
void watchconf_free(struct watchconf *wc);

/*
 * The rules container c asks for. Labels win: a container with an io.hostlo.connect or io.hostlo.bind
 * label gets exactly what its labels say (origin label), and the config file is not read for it;
 * otherwise the first config entry that matches it (origin config). Items are the CLI's RULE
 * arguments, comma-separated in a label; a connect item ending in '!' is --always.
 * Returns 1 with rs filled, 0 when it asks for nothing, -1 with err naming the container and the value.
 */
int watchconf_rules(const struct watchconf *wc, const struct watch_ctr *c, struct ruleset *rs, char *err);

#endif
