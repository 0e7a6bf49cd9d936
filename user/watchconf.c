/* watchconf.c: from a container's labels, or the watch config file, to the rule set it asks for. */
#define _GNU_SOURCE
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "util.h"
#include "watchconf.h"

#define CONFIG_MAX (1 << 20)

static json_object *member(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* A list of rules: a string (comma-separated items) or an array of such strings. */
static bool list_ok(json_object *v)
{
	if (json_object_is_type(v, json_type_string))
		return true;
	if (!json_object_is_type(v, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(v); i++)
		if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string))
			return false;
	return true;
}

static int entry_check(json_object *e, size_t i, const char *path, char *err)
{
	static const char *const selectors[] = { "name", "image", "label" };
	bool selects = false;

	if (!json_object_is_type(e, json_type_object))
		return seterr(err, "%s: entry %zu: not an object", path, i + 1);
	json_object_object_foreach(e, key, val) {
		bool known = strcmp(key, "connect") == 0 || strcmp(key, "bind") == 0;

		for (size_t s = 0; s < sizeof(selectors) / sizeof(selectors[0]); s++) {
			if (strcmp(key, selectors[s]) != 0)
				continue;
			if (!json_object_is_type(val, json_type_string) || !json_object_get_string(val)[0])
				return seterr(err, "%s: entry %zu: %s: not a non-empty string", path, i + 1, key);
			known = selects = true;
		}
		if (!known)
			return seterr(err, "%s: entry %zu: unknown key \"%s\" (name, image, label, connect, bind)", path,
				      i + 1, key);
		if ((strcmp(key, "connect") == 0 || strcmp(key, "bind") == 0) && !list_ok(val))
			return seterr(err, "%s: entry %zu: %s: not a string or an array of strings", path, i + 1, key);
	}
	if (!selects)
		return seterr(err, "%s: entry %zu: selects nothing: give name, image or label", path, i + 1);
	if (!member(e, "connect") && !member(e, "bind"))
		return seterr(err, "%s: entry %zu: no rules: give connect or bind", path, i + 1);
	return 0;
}

int watchconf_parse(struct watchconf *wc, const char *text, const char *path, char *err)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *root, *entries;
	enum json_tokener_error jerr;

	memset(wc, 0, sizeof(*wc));
	snprintf(wc->path, sizeof(wc->path), "%s", path);
	if (!tok)
		return seterr(err, "%s: out of memory", path);
	root = json_tokener_parse_ex(tok, text, (int)strlen(text) + 1);
	jerr = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (!root || jerr != json_tokener_success) {
		json_object_put(root);
		return seterr(err, "%s: not JSON: %s", path, json_tokener_error_desc(jerr));
	}
	if (!json_object_is_type(root, json_type_object) || !(entries = member(root, "containers")) ||
	    !json_object_is_type(entries, json_type_array) || json_object_object_length(root) != 1) {
		json_object_put(root);
		return seterr(err, "%s: want an object with one key, \"containers\": an array of entries", path);
	}
	for (size_t i = 0; i < json_object_array_length(entries); i++) {
		if (entry_check(json_object_array_get_idx(entries, i), i, path, err)) {
			json_object_put(root);
			return -1;
		}
	}
	wc->entries = json_object_get(entries);
	json_object_put(root);
	return 0;
}

int watchconf_load(struct watchconf *wc, const char *path, bool missing_ok, char *err)
{
	FILE *f = fopen(path, "re");
	char *text;
	size_t n;
	int ret;

	memset(wc, 0, sizeof(*wc));
	snprintf(wc->path, sizeof(wc->path), "%s", path);
	if (!f) {
		if (errno == ENOENT && missing_ok)
			return 0;
		return seterr(err, "config %s: %s", path, strerror(errno));
	}
	text = malloc(CONFIG_MAX + 1);
	n = text ? fread(text, 1, CONFIG_MAX + 1, f) : 0;
	fclose(f);
	if (!text)
		return seterr(err, "config %s: out of memory", path);
	if (n > CONFIG_MAX) {
		free(text);
		return seterr(err, "config %s: larger than %d bytes", path, CONFIG_MAX);
	}
	text[n] = '\0';
	ret = watchconf_parse(wc, text, path, err);
	free(text);
	return ret;
}

void watchconf_free(struct watchconf *wc)
{
	json_object_put(wc->entries);
	wc->entries = NULL;
}

/* One item of a list: a RULE argument, for connect optionally ending in '!' (--always). */
static int add_item(struct ruleset *rs, enum rule_kind kind, const char *item, size_t len, const char *where,
		    char *err)
{
	char arg[128], why[ERRLEN], prefix[160];
	bool always = false;
	struct rule r;
	size_t skip;

	if (len >= sizeof(arg))
		return seterr(err, "%s: bad value \"%.*s...\": too long", where, 40, item);
	memcpy(arg, item, len);
	arg[len] = '\0';
	if (len == 0)
		return seterr(err, "%s: bad value \"\": an empty item", where);
	if (arg[len - 1] == '!') {
		if (kind != RULE_CONNECT)
			return seterr(err, "%s: bad value \"%s\": '!' (--always) is for connect items", where, arg);
		always = true;
		arg[len - 1] = '\0';
	}
	if ((kind == RULE_CONNECT ? parse_connect : parse_bind)(arg, &r, why) || ruleset_add(rs, &r, why) ||
	    (always && ruleset_always(rs, why))) {
		/* the parser names the option and the argument: say it once, with the value as written */
		snprintf(prefix, sizeof(prefix), "%s %s: ", kind == RULE_CONNECT ? "--connect" : "--bind", arg);
		skip = strncmp(why, prefix, strlen(prefix)) == 0 ? strlen(prefix) : 0;
		return seterr(err, "%s: bad value \"%.*s\": %s", where, (int)len, item, why + skip);
	}
	return 0;
}

/* A comma-separated list; spaces around items are allowed. */
static int add_list(struct ruleset *rs, enum rule_kind kind, const char *list, const char *where, char *err)
{
	const char *p = list;

	if (!p[strspn(p, " \t")])
		return 0;
	for (;;) {
		size_t len = strcspn(p, ",");
		const char *s = p, *e = p + len;

		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (add_item(rs, kind, s, (size_t)(e - s), where, err))
			return -1;
		if (!p[len])
			return 0;
		p += len + 1;
	}
}

static const char *label_of(const struct watch_ctr *c, const char *key)
{
	json_object *v = c->labels ? member(c->labels, key) : NULL;

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static bool entry_matches(json_object *e, const struct watch_ctr *c)
{
	json_object *name = member(e, "name"), *image = member(e, "image"), *label = member(e, "label");

	if (name && fnmatch(json_object_get_string(name), c->name ? c->name : "", 0) != 0)
		return false;
	if (image && fnmatch(json_object_get_string(image), c->image ? c->image : "", 0) != 0)
		return false;
	if (label) {
		const char *sel = json_object_get_string(label), *eq = strchr(sel, '=');
		char key[256];
		const char *v;

		snprintf(key, sizeof(key), "%.*s", eq ? (int)(eq - sel) : (int)strlen(sel), sel);
		v = label_of(c, key);
		if (!v || (eq && strcmp(v, eq + 1) != 0))
			return false;
	}
	return true;
}

static int entry_rules(const struct watchconf *wc, size_t i, json_object *e, const struct watch_ctr *c,
		       struct ruleset *rs, char *err)
{
	static const struct { const char *key; enum rule_kind kind; } lists[] = {
		{ "connect", RULE_CONNECT }, { "bind", RULE_BIND },
	};

	for (size_t l = 0; l < 2; l++) {
		json_object *v = member(e, lists[l].key);
		char where[512];

		if (!v)
			continue;
		snprintf(where, sizeof(where), "container %s: %s entry %zu: %s", c->name, wc->path, i + 1, lists[l].key);
		if (json_object_is_type(v, json_type_string)) {
			if (add_list(rs, lists[l].kind, json_object_get_string(v), where, err))
				return -1;
			continue;
		}
		for (size_t k = 0; k < json_object_array_length(v); k++)
			if (add_list(rs, lists[l].kind, json_object_get_string(json_object_array_get_idx(v, k)), where, err))
				return -1;
	}
	return 0;
}

int watchconf_rules(const struct watchconf *wc, const struct watch_ctr *c, struct ruleset *rs, char *err)
{
	const char *connect = label_of(c, WATCH_LABEL_CONNECT), *bind = label_of(c, WATCH_LABEL_BIND);
	char where[512];

	memset(rs, 0, sizeof(*rs));
	if (connect || bind) {
		rs->origin = RULE_ORIGIN_LABEL;
		snprintf(where, sizeof(where), "container %s: %s", c->name, WATCH_LABEL_CONNECT);
		if (connect && add_list(rs, RULE_CONNECT, connect, where, err))
			return -1;
		snprintf(where, sizeof(where), "container %s: %s", c->name, WATCH_LABEL_BIND);
		if (bind && add_list(rs, RULE_BIND, bind, where, err))
			return -1;
		return rs->n > 0;
	}
	for (size_t i = 0; wc && wc->entries && i < json_object_array_length(wc->entries); i++) {
		json_object *e = json_object_array_get_idx(wc->entries, i);

		if (!entry_matches(e, c))
			continue;
		rs->origin = RULE_ORIGIN_CONFIG;
		if (entry_rules(wc, i, e, c, rs, err))
			return -1;
		return rs->n > 0;
	}
	return 0;
}
