/* report.c: list and stats output; the text table and the JSON come from the same rows. */
#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include "hostside.h"
#include "report.h"

static const char *const counter_names[HOSTLO_CNT_USED] = {
	[HOSTLO_CNT_CONNECT_REDIRECTED] = "connect_redirected",
	[HOSTLO_CNT_BIND_REWRITTEN] = "bind_rewritten",
	[HOSTLO_CNT_UDP_REDIRECTED] = "udp_redirected",
	[HOSTLO_CNT_UDP_REPLY_RESTORED] = "udp_reply_restored",
	[HOSTLO_CNT_CONNECT_KEPT_LOCAL] = "connect_kept_local",
	[HOSTLO_CNT_PEER_RESTORED] = "peer_restored",
	[HOSTLO_CNT_HOST_STEERED] = "host_steered",
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
			json_object_object_add(h, "unsupported", json_object_new_string(hostside_unsupported()));
		} else if (r->host_ifindex) {
			h = json_object_new_object();
			json_object_object_add(h, "interface", if_indextoname(r->host_ifindex, ifname) ?
					       json_object_new_string(ifname) : NULL);
			json_object_object_add(h, "ports", json_object_new_int(r->port_max - r->port_min + 1));
			json_object_object_add(h, "listening", r->host_listening < 0 ? NULL :
					       json_object_new_int(r->host_listening));
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
		return (size_t)snprintf(buf, len, " (host loopback: %s)", hostside_unsupported());
	if (r->host_listening < 0)
		return (size_t)snprintf(buf, len, " (host loopback too)");
	if (ports == 1)
		return (size_t)snprintf(buf, len, " (host loopback: %s)", r->host_listening ? "listening" : "no listener");
	return (size_t)snprintf(buf, len, " (host loopback: %d of %u listening)", r->host_listening, ports);
}

void ruleset_text(const struct ruleset *rs, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; i < rs->n && n < len; i++) {
		char one[128];

		rule_format(&rs->r[i], one, sizeof(one));
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? " " : "", one);
		if ((rs->r[i].host_ifindex || rs->r[i].host_unsupported) && n < len)
			n += host_note(&rs->r[i], buf + n, len - n);
	}
}

void print_json(json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
					      JSON_C_TO_STRING_NOSLASHESCAPE));
}

static void label_json(json_object *o, const struct cgroup_label *l, uint64_t id)
{
	json_object_object_add(o, "cgroup", json_object_new_string(l->rel));
	json_object_object_add(o, "cgroup_id", json_object_new_uint64(id));
	json_object_object_add(o, "container", l->container[0] ? json_object_new_string(l->container) : NULL);
	json_object_object_add(o, "name", l->name ? json_object_new_string(l->name) : NULL);
}

/* Short ID and name columns, "-" where there is none. */
static void label_text(const struct cgroup_label *l, char *buf, size_t len)
{
	snprintf(buf, len, "%-12.12s  %-20s", l->container[0] ? l->container : "-", l->name ? l->name : "-");
}

json_object *attachment_json(const struct attachment *a)
{
	json_object *o = json_object_new_object();

	label_json(o, &a->label, a->id);
	json_object_object_add(o, "rules", ruleset_json(&a->rules));
	return o;
}

void print_list(const struct attachment *a, size_t n, bool json)
{
	if (json) {
		json_object *arr = json_object_new_array();

		for (size_t i = 0; i < n; i++)
			json_object_array_add(arr, attachment_json(&a[i]));
		print_json(arr);
		json_object_put(arr);
		return;
	}
	if (!n) {
		puts("nothing attached");
		return;
	}
	printf("%-40s %-10s %-12s  %-20s %s\n", "CGROUP", "ID", "CONTAINER", "NAME", "RULES");
	for (size_t i = 0; i < n; i++) {
		char rules[4096], label[128];

		ruleset_text(&a[i].rules, rules, sizeof(rules));
		label_text(&a[i].label, label, sizeof(label));
		printf("%-40s %-10llu %s %s\n", a[i].label.rel, (unsigned long long)a[i].id, label, rules);
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

json_object *stats_json(const struct stat_line *l, size_t n)
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

void print_stats(const struct stat_line *l, size_t n, bool json)
{
	if (json) {
		json_object *arr = stats_json(l, n);

		print_json(arr);
		json_object_put(arr);
		return;
	}
	if (!n) {
		puts("no counters (nothing attached, or no matching call yet)");
		return;
	}
	printf("%-40s %-12s  %-20s %-24s", "CGROUP", "CONTAINER", "NAME", "ATTACHED AT");
	for (int c = 0; c < HOSTLO_CNT_USED; c++) {
		char up[32];

		for (size_t k = 0; k <= strlen(counter_names[c]); k++)
			up[k] = (char)(counter_names[c][k] >= 'a' && counter_names[c][k] <= 'z' ?
				       counter_names[c][k] - 32 : counter_names[c][k]);
		printf(" %*s", (int)strlen(up), up);
	}
	putchar('\n');
	for (size_t i = 0; i < n; i++) {
		char label[128];

		label_text(&l[i].label, label, sizeof(label));
		printf("%-40s %s %-24s", l[i].label.rel, label, l[i].attach_rel);
		for (int c = 0; c < HOSTLO_CNT_USED; c++)
			printf(" %*llu", (int)strlen(counter_names[c]), (unsigned long long)l[i].row.count[c]);
		putchar('\n');
	}
}
