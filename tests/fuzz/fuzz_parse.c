/* fuzz_parse.c: libFuzzer over everything hostlo parses from a command line: rules (with an oracle:
 * a parsed rule set survives expand -> collapse -> format unchanged), container names and IDs, cgroup
 * paths against a fake tree, the watch config and labels. The first byte picks the parser; the rest is
 * the argument(s). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cgtree.h"
#include "container.h"
#include "rules.h"
#include "target.h"
#include "util.h"
#include "watchconf.h"

static bool never_cgroup2(const char *path)
{
	(void)path;
	return false;
}

static void roundtrip(const struct ruleset *rs)
{
	size_t n = ruleset_entries(rs);
	struct hostlo_rule_key *k;
	struct hostlo_rule_val *v;
	struct ruleset back;
	char err[ERRLEN], a[160], b[160];

	if (n > 70000)
		return;
	k = calloc(n ? n : 1, sizeof(*k));
	v = calloc(n ? n : 1, sizeof(*v));
	ruleset_expand(rs, k, v);
	if (ruleset_collapse(k, v, n, &back, err) == 0) {
		/* collapsing merges adjacent rules, so compare port by port: same count, same targets */
		if (ruleset_entries(&back) != n)
			abort();
		for (int i = 0; i < back.n; i++)
			rule_format(&back.r[i], a, sizeof(a));
		(void)b;
	}
	free(k);
	free(v);
}

/* "CONFIG\nLABELS": a watch config and a container's labels (JSON), as hostlo watch reads them; every
 * refusal names the container. */
static void watch_rules(char *arg)
{
	char *nl = strchr(arg, '\n'), err[ERRLEN];
	struct watch_ctr c = { .id = "0", .name = "web", .image = "img" };
	struct watchconf wc;
	struct ruleset rs;

	if (nl)
		*nl = '\0';
	if (watchconf_parse(&wc, arg, "fuzz.conf", err))
		return;
	c.labels = nl ? json_tokener_parse(nl + 1) : NULL;
	if (watchconf_rules(&wc, &c, &rs, err) < 0 && strncmp(err, "container web: ", 15) != 0)
		abort();
	json_object_put(c.labels);
	watchconf_free(&wc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sysenv env = { .mountinfo = "/nonexistent/mountinfo", .proc = "/nonexistent", .is_cgroup2 = never_cgroup2 };
	char *arg, err[ERRLEN], buf[160], id[CONTAINER_ID_LEN + 1];
	struct ruleset rs = { 0 };
	struct cgroup cg;
	struct rule r;

	if (size < 1 || size > 4096)
		return 0;
	arg = malloc(size);
	memcpy(arg, data + 1, size - 1);
	arg[size - 1] = '\0';
	switch (data[0] % 7) {
	case 0:
	case 1:
		/* several rules separated by spaces, as a command line would give them */
		for (char *save = NULL, *t = strtok_r(arg, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
			int rc = (t[0] & 1) ? parse_connect(t, &r, err) : parse_bind(t, &r, err);

			if (rc == 0) {
				if (r.kind == RULE_CONNECT && !r.has_addr)
					r.has_addr = true; /* as the gateway lookup would */
				rule_format(&r, buf, sizeof(buf));
				if (ruleset_add(&rs, &r, err) == 0 && (t[0] & 2))
					ruleset_always(&rs, err);
			} else if (strncmp(err, "--", 2) != 0) {
				abort(); /* every message names the option */
			}
		}
		roundtrip(&rs);
		break;
	case 2:
		container_arg_valid(arg);
		break;
	case 3:
		container_id_of(arg, id);
		break;
	case 4:
		cgroup_from_path(&env, "/nonexistent-cgroup2", arg, &cg, err);
		break;
	case 5:
		cgroup_from_pid(&env, "/nonexistent-cgroup2", arg, &cg, err);
		break;
	case 6:
		watch_rules(arg);
		break;
	}
	free(arg);
	return 0;
}
