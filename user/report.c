/* report.c: everything hostlo prints; each printer writes the text and the JSON from the same rows,
 * and text tables keep their columns aligned however long a cgroup path or a name is. */
#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include <json-c/json.h>
#include "preflight.h"
#include "report.h"

/* The text tables' columns: at least this wide; on a terminal, never wider (longer values are cut). */
#define CGROUP_WIDTH 40
#define NAME_WIDTH 20
#define ATTACHED_WIDTH 24

static const char *const counter_names[HOSTLO_CNT_USED] = {
	[HOSTLO_CNT_CONNECT_REDIRECTED] = "connect_redirected",
	[HOSTLO_CNT_BIND_REWRITTEN] = "bind_rewritten",
	[HOSTLO_CNT_UDP_REDIRECTED] = "udp_redirected",
	[HOSTLO_CNT_UDP_REPLY_RESTORED] = "udp_reply_restored",
	[HOSTLO_CNT_CONNECT_KEPT_LOCAL] = "connect_kept_local",
	[HOSTLO_CNT_PEER_RESTORED] = "peer_restored",
	[HOSTLO_CNT_HOST_STEERED] = "host_steered",
	[HOSTLO_CNT_HOST_PEER_LOCAL] = "host_peer_local",
};

static json_object *rule_json(const struct rule *r)
{
	json_object *o = json_object_new_object();
	char buf[128], addr[INET_ADDRSTRLEN] = "";

	rule_format(r, buf, sizeof(buf));
	json_object_object_add(o, "rule", json_object_new_string(buf));
	json_object_object_add(o, "kind", json_object_new_string(r->kind == RULE_CONNECT ? "connect" : "bind"));
	if (r->kind == RULE_CONNECT) {
		json_object_object_add(o, "proto", json_object_new_string(r->proto == PROTO_UDP ? "udp" : "tcp"));
		json_object_object_add(o, "always", json_object_new_boolean(r->always));
		if (r->proto == PROTO_TCP)
			json_object_object_add(o, "real_peer", json_object_new_boolean(r->real_peer));
	}
	json_object_object_add(o, "port_min", json_object_new_int(r->port_min));
	json_object_object_add(o, "port_max", json_object_new_int(r->port_max));
	if (r->has_addr)
		inet_ntop(AF_INET, &r->addr, addr, sizeof(addr));
	json_object_object_add(o, "addr", r->has_addr ? json_object_new_string(addr) : NULL);
	if (r->kind == RULE_CONNECT)
		json_object_object_add(o, "to_port_min", json_object_new_int(r->to_port ? r->to_port : r->port_min));
	if (r->kind == RULE_CONNECT && r->proto == PROTO_TCP) {
		json_object *h = NULL;
		char ifname[IF_NAMESIZE] = "";

		if (r->host_unsupported) {
			h = json_object_new_object();
			json_object_object_add(h, "unsupported", json_object_new_string(kernel_host_side_missing()));
		} else if (r->host_ifindex) {
			h = json_object_new_object();
			json_object_object_add(h, "interface", if_indextoname(r->host_ifindex, ifname) ?
					       json_object_new_string(ifname) : NULL);
			json_object_object_add(h, "ports", json_object_new_int(r->port_max - r->port_min + 1));
			json_object_object_add(h, "listening", r->host_listening < 0 ? NULL :
					       json_object_new_int(r->host_listening));
			/* what the host service sees as the client's address */
			json_object_object_add(h, "service_sees", json_object_new_string(r->real_peer ? "container" : "127.0.0.1"));
		}
		json_object_object_add(o, "host_loopback", h);
	}
	return o;
}

json_object *ruleset_json(const struct ruleset *rs)
{
	json_object *a = json_object_new_array();

	for (int i = 0; i < rs->n; i++)
		json_object_array_add(a, rule_json(&rs->r[i]));
	return a;
}

/* " (host loopback: listening)": a steering rule, and whether the host has its listeners now. */
static size_t host_note(const struct rule *r, char *buf, size_t len)
{
	unsigned ports = (unsigned)(r->port_max - r->port_min) + 1;

	if (r->host_unsupported)
		return (size_t)snprintf(buf, len, " (host loopback: %s)", kernel_host_side_missing());
	if (r->host_listening < 0)
		return (size_t)snprintf(buf, len, " (host loopback too)");
	if (ports == 1)
		return (size_t)snprintf(buf, len, " (host loopback: %s)", r->host_listening ? "listening" : "no listener");
	return (size_t)snprintf(buf, len, " (host loopback: %d of %u listening)", r->host_listening, ports);
}

/* With seen (list): what the host service sees as the client of each rule to this host, too. */
static void rules_text(const struct ruleset *rs, char *buf, size_t len, bool seen)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; i < rs->n && n < len; i++) {
		char one[128];

		rule_format(&rs->r[i], one, sizeof(one));
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? " " : "", one);
		if ((rs->r[i].host_ifindex || rs->r[i].host_unsupported) && n < len)
			n += host_note(&rs->r[i], buf + n, len - n);
		if (seen && rs->r[i].host_ifindex && n < len)
			n += (size_t)snprintf(buf + n, len - n, " (host service sees %s)",
					      rs->r[i].real_peer ? "the container's address" : "127.0.0.1");
	}
}

void ruleset_text(const struct ruleset *rs, char *buf, size_t len)
{
	rules_text(rs, buf, len, false);
}

static void print_json(json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
					      JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* One line a record, for streams read line by line (--watch, gc --every, trace). */
static void print_json_line(json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* Prints o as print asks, and lets it go. */
static void emit(json_object *o, void (*print)(json_object *))
{
	print(o);
	json_object_put(o);
}

/* Characters, not bytes: a UTF-8 continuation byte starts none. */
static size_t text_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xC0) != 0x80;
	return w;
}

void table_cell(char *buf, size_t len, const char *value, size_t width, bool cut)
{
	size_t w = text_width(value), keep = cut && w > width && width ? width - 1 : w, chars = 0, n = 0;

	for (const char *p = value; *p && n + 1 < len; p++) {
		if (((unsigned char)*p & 0xC0) != 0x80 && chars++ == keep)
			break;
		buf[n++] = *p;
	}
	if (keep < w && n + sizeof("…") <= len) {
		memcpy(buf + n, "…", sizeof("…") - 1);
		n += sizeof("…") - 1;
		keep++;
	}
	for (; keep < width && n + 1 < len; keep++)
		buf[n++] = ' ';
	buf[n] = '\0';
}

/* A column: its minimum width on a terminal (a longer value is cut there), else as wide as its widest
 * value, so a pipe gets every value whole and the rows still line up. */
struct column {
	size_t width;
	bool cut;
};

static struct column column_of(size_t min)
{
	struct column c = { .width = min, .cut = isatty(STDOUT_FILENO) };

	return c;
}

static void column_fit(struct column *c, const char *value)
{
	size_t w = text_width(value);

	if (!c->cut && w > c->width)
		c->width = w;
}

static void put_cell(const struct column *c, const char *value)
{
	char buf[PATH_MAX + 64];

	table_cell(buf, sizeof(buf), value, c->width, c->cut);
	fputs(buf, stdout);
}

static void label_json(json_object *o, const struct cgroup_label *l, uint64_t id)
{
	json_object_object_add(o, "cgroup", json_object_new_string(l->rel));
	json_object_object_add(o, "cgroup_id", json_object_new_uint64(id));
	json_object_object_add(o, "container", l->container[0] ? json_object_new_string(l->container) : NULL);
	json_object_object_add(o, "name", l->name ? json_object_new_string(l->name) : NULL);
}

/* The short ID and name columns, "-" where there is none. */
static void put_label(const struct cgroup_label *l, const struct column *name)
{
	printf("%-12.12s  ", l->container[0] ? l->container : "-");
	put_cell(name, l->name ? l->name : "-");
}

static json_object *attachment_json(const struct attachment *a)
{
	json_object *o = json_object_new_object();

	label_json(o, &a->label, a->id);
	json_object_object_add(o, "origin", json_object_new_string(rule_origin_name(a->rules.origin)));
	json_object_object_add(o, "rules", ruleset_json(&a->rules));
	return o;
}

void print_attach(const struct attachment *a, bool dry_run, bool json)
{
	char rules[4096];

	if (json) {
		json_object *o = attachment_json(a);

		if (dry_run)
			json_object_object_add(o, "dry_run", json_object_new_boolean(1));
		emit(o, print_json);
		return;
	}
	ruleset_text(&a->rules, rules, sizeof(rules));
	printf("%s %s (cgroup id %llu): %s\n", dry_run ? "would attach" : "attached", a->label.rel,
	       (unsigned long long)a->id, rules);
}

void warn_listening(int port, const char *rel, int pid)
{
	fprintf(stderr, "hostlo: warning: port %d already listens on loopback in %s (pid %d): the app must "
		"rebind (restart) to be reachable; to cover apps from their start, attach before they start "
		"(an init container, or the runtime's parent cgroup, e.g. --cgroup /docker)\n",
		port, rel, pid);
}

void print_detached(const char *rel)
{
	if (rel)
		printf("detached %s\n", rel);
	else
		printf("detached everything\n");
}

static void list_text(const struct attachment *a, size_t n)
{
	struct column cgroup = column_of(CGROUP_WIDTH), name = column_of(NAME_WIDTH);

	for (size_t i = 0; i < n; i++) {
		column_fit(&cgroup, a[i].label.rel);
		column_fit(&name, a[i].label.name ? a[i].label.name : "-");
	}
	printf("%-*s %-10s %-12s  %-*s %-6s %s\n", (int)cgroup.width, "CGROUP", "ID", "CONTAINER", (int)name.width,
	       "NAME", "ORIGIN", "RULES");
	for (size_t i = 0; i < n; i++) {
		char rules[4096];

		rules_text(&a[i].rules, rules, sizeof(rules), true);
		put_cell(&cgroup, a[i].label.rel);
		printf(" %-10llu ", (unsigned long long)a[i].id);
		put_label(&a[i].label, &name);
		printf(" %-6s %s\n", rule_origin_name(a[i].rules.origin), rules);
	}
}

void print_list(const struct attachment *a, size_t n, bool json)
{
	if (json) {
		json_object *arr = json_object_new_array();

		for (size_t i = 0; i < n; i++)
			json_object_array_add(arr, attachment_json(&a[i]));
		emit(arr, print_json);
	} else if (!n) {
		puts("nothing attached");
	} else {
		list_text(a, n);
	}
}

static const char *const counter_help[HOSTLO_CNT_USED] = {
	[HOSTLO_CNT_CONNECT_REDIRECTED] = "TCP connects to a loopback address redirected to the rule's target.",
	[HOSTLO_CNT_BIND_REWRITTEN] = "Binds to a loopback address rewritten to the rule's address.",
	[HOSTLO_CNT_UDP_REDIRECTED] = "UDP connects and datagrams to a loopback address redirected to the target.",
	[HOSTLO_CNT_UDP_REPLY_RESTORED] = "UDP replies shown to the application as coming from the loopback address.",
	[HOSTLO_CNT_CONNECT_KEPT_LOCAL] = "Connects and datagrams left local because a listener had the port.",
	[HOSTLO_CNT_PEER_RESTORED] = "getpeername() calls answered with the loopback address the application asked for.",
	[HOSTLO_CNT_HOST_STEERED] = "Redirected connections accepted by a host service listening on the host's loopback only.",
	[HOSTLO_CNT_HOST_PEER_LOCAL] = "Redirected connections whose host service was shown the client as 127.0.0.1.",
};

/* Label values escape backslash, double quote and newline (the text exposition format's rule). */
static void label_value(FILE *f, const char *v)
{
	for (; v && *v; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f);
		if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

void print_prometheus(FILE *f, const struct stat_line *l, size_t n)
{
	for (int c = 0; c < HOSTLO_CNT_USED; c++) {
		fprintf(f, "# HELP hostlo_%s_total %s\n# TYPE hostlo_%s_total counter\n", counter_names[c], counter_help[c],
			counter_names[c]);
		for (size_t i = 0; i < n; i++) {
			fprintf(f, "hostlo_%s_total{cgroup=\"", counter_names[c]);
			label_value(f, l[i].label.rel);
			fputs("\",container=\"", f);
			label_value(f, l[i].label.container);
			fputs("\",name=\"", f);
			label_value(f, l[i].label.name);
			fputs("\",attached_cgroup=\"", f);
			label_value(f, l[i].attach_rel);
			fprintf(f, "\"} %llu\n", (unsigned long long)l[i].row.count[c]);
		}
	}
}

int prometheus_text(const struct stat_line *l, size_t n, char **body, size_t *len)
{
	FILE *f = open_memstream(body, len);

	if (!f)
		return -1;
	print_prometheus(f, l, n);
	return fclose(f) == 0 ? 0 : -1;
}

static json_object *stats_json(const struct stat_line *l, size_t n)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_new_object();

		label_json(o, &l[i].label, l[i].row.cgroup_id);
		json_object_object_add(o, "attached_cgroup", json_object_new_string(l[i].attach_rel));
		json_object_object_add(o, "attached_cgroup_id", json_object_new_uint64(l[i].row.attach_id));
		for (int c = 0; c < HOSTLO_CNT_USED; c++)
			json_object_object_add(o, counter_names[c], json_object_new_uint64(l[i].row.count[c]));
		json_object_array_add(arr, o);
	}
	return arr;
}

/* A counter's column title: its name in capitals, as wide as the name. */
static void put_counter_title(const char *name)
{
	char up[32];
	size_t k;

	for (k = 0; name[k] && k + 1 < sizeof(up); k++)
		up[k] = (char)(name[k] >= 'a' && name[k] <= 'z' ? name[k] - 32 : name[k]);
	up[k] = '\0';
	printf(" %s", up);
}

static void stats_text(const struct stat_line *l, size_t n)
{
	struct column cgroup = column_of(CGROUP_WIDTH), name = column_of(NAME_WIDTH),
		      attached = column_of(ATTACHED_WIDTH);

	for (size_t i = 0; i < n; i++) {
		column_fit(&cgroup, l[i].label.rel);
		column_fit(&name, l[i].label.name ? l[i].label.name : "-");
		column_fit(&attached, l[i].attach_rel);
	}
	printf("%-*s %-12s  %-*s %-*s", (int)cgroup.width, "CGROUP", "CONTAINER", (int)name.width, "NAME",
	       (int)attached.width, "ATTACHED AT");
	for (int c = 0; c < HOSTLO_CNT_USED; c++)
		put_counter_title(counter_names[c]);
	putchar('\n');
	for (size_t i = 0; i < n; i++) {
		put_cell(&cgroup, l[i].label.rel);
		putchar(' ');
		put_label(&l[i].label, &name);
		putchar(' ');
		put_cell(&attached, l[i].attach_rel);
		for (int c = 0; c < HOSTLO_CNT_USED; c++)
			printf(" %*llu", (int)strlen(counter_names[c]), (unsigned long long)l[i].row.count[c]);
		putchar('\n');
	}
}

void print_stats(const struct stat_line *l, size_t n, bool json)
{
	if (json)
		emit(stats_json(l, n), print_json);
	else if (!n)
		puts("no counters (nothing attached, or no matching call yet)");
	else
		stats_text(l, n);
}

struct stat_line *stats_change(const struct stat_line *lines, size_t n, const struct stat_line *prev, size_t pn)
{
	struct stat_line *shown = calloc(n ? n : 1, sizeof(*shown));

	for (size_t i = 0; shown && i < n; i++) {
		shown[i] = lines[i];
		for (size_t k = 0; k < pn; k++) {
			if (prev[k].row.cgroup_id != lines[i].row.cgroup_id || prev[k].row.attach_id != lines[i].row.attach_id)
				continue;
			for (int c = 0; c < HOSTLO_CNT_USED; c++)
				shown[i].row.count[c] -= prev[k].row.count[c];
		}
	}
	return shown;
}

void print_stats_interval(const struct stat_line *changes, size_t n, long seconds, bool json)
{
	time_t t = time(NULL);
	char when[16];

	if (json) {
		emit(stats_json(changes, n), print_json_line);
	} else {
		strftime(when, sizeof(when), "%H:%M:%S", localtime(&t));
		if (isatty(STDOUT_FILENO))
			fputs("\033[H\033[2J", stdout);
		printf("%s  changes in the last %ld s\n", when, seconds);
		print_stats(changes, n, false);
	}
	fflush(stdout);
}

void print_gc(int removed, const struct stat_line *l, size_t n, bool every, bool json)
{
	if (json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "removed", json_object_new_int(removed));
		if (every)
			json_object_object_add(o, "stats", stats_json(l, n));
		emit(o, every ? print_json_line : print_json);
	} else {
		printf("gc: removed %d attachment%s of cgroups that no longer exist\n", removed, removed == 1 ? "" : "s");
		if (every)
			print_stats(l, n, false);
	}
	fflush(stdout);
}

void print_version(const char *version, bool json)
{
	if (json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "version", json_object_new_string(version));
		json_object_object_add(o, "abi", json_object_new_int(HOSTLO_ABI_VERSION));
		json_object_object_add(o, "libbpf", json_object_new_string(libbpf_version_string()));
		emit(o, print_json);
	} else {
		printf("hostlo %s (BPF ABI %d, libbpf %s)\n", version, HOSTLO_ABI_VERSION, libbpf_version_string());
	}
}

static const char *orig_addr(__u8 orig)
{
	return orig == HOSTLO_ORIG_LO6 ? "[::1]" : orig == HOSTLO_ORIG_LO4_MAPPED ? "[::ffff:127.0.0.1]" : "127.0.0.1";
}

/* Where the event's socket went: "198.18.0.1:5432", "[::]:3000", or "kept local". */
static void event_to(const struct hostlo_event *e, char *buf, size_t len)
{
	char addr[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &e->to_addr, addr, sizeof(addr));
	if (e->kind == HOSTLO_EV_KEPT_LOCAL)
		snprintf(buf, len, "kept local");
	else if (e->kind == HOSTLO_EV_BIND_REWRITTEN && e->orig == HOSTLO_ORIG_LO6)
		snprintf(buf, len, "[::]:%u", ntohs(e->to_port));
	else
		snprintf(buf, len, "%s%s%s:%u", e->family6 ? "[::ffff:" : "", addr, e->family6 ? "]" : "", ntohs(e->to_port));
}

/* "20:01:07.412", local time. */
static void event_time(long long real_ns, char *buf, size_t len)
{
	time_t secs = (time_t)(real_ns / 1000000000);
	size_t n = strftime(buf, len, "%H:%M:%S", localtime(&secs));

	snprintf(buf + n, len - n, ".%03lld", real_ns / 1000000 % 1000);
}

void print_event(const struct hostlo_event *e, const struct cgroup_label *l, long long real_ns, bool json)
{
	static const char *const kinds[] = { [HOSTLO_EV_REDIRECTED] = "redirect",
					     [HOSTLO_EV_KEPT_LOCAL] = "kept_local",
					     [HOSTLO_EV_BIND_REWRITTEN] = "bind",
					     [HOSTLO_EV_PEER_LOCAL] = "peer_local" };
	const char *proto = e->proto == IPPROTO_UDP ? "udp" : "tcp";
	char from[64], to[64], when[32], comm[17];

	snprintf(comm, sizeof(comm), "%.16s", e->comm);
	snprintf(from, sizeof(from), "%s:%u", orig_addr(e->orig), ntohs(e->orig_port));
	event_to(e, to, sizeof(to));
	if (e->kind == HOSTLO_EV_PEER_LOCAL) { /* the host service (pid, comm) sees the container's client as local */
		char addr[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &e->to_addr, addr, sizeof(addr));
		snprintf(from, sizeof(from), "%s:%u", addr, ntohs(e->to_port));
		snprintf(to, sizeof(to), "127.0.0.1:%u", ntohs(e->orig_port));
	}
	if (json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "time_ns", json_object_new_int64(real_ns));
		label_json(o, l, e->cgroup_id);
		json_object_object_add(o, "pid", json_object_new_int((int)e->pid));
		json_object_object_add(o, "comm", json_object_new_string(comm));
		json_object_object_add(o, "event", json_object_new_string(kinds[e->kind]));
		json_object_object_add(o, "proto", json_object_new_string(proto));
		json_object_object_add(o, "from", json_object_new_string(from));
		json_object_object_add(o, "to", json_object_new_string(to));
		emit(o, print_json_line);
	} else {
		event_time(real_ns, when, sizeof(when));
		printf("%s %-12.12s %-16s %7u %-15s %-10s %s %s -> %s\n", when, l->container[0] ? l->container : "-", l->rel,
		       e->pid, comm, kinds[e->kind], proto, from, to);
	}
	fflush(stdout);
}
