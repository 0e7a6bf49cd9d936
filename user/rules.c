/* rules.c: --connect/--bind rule parsing and the mapping between rules and per-port map entries. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rules.h"
#include "util.h"

/* Whole decimal number 1-65535, nothing else (no sign, space or hex). */
static int parse_port(const char *s, size_t len, uint16_t *out, const char *opt, const char *arg, char *err)
{
	unsigned long v = 0;

	if (len == 0)
		return seterr(err, "%s %s: missing port number", opt, arg);
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return seterr(err, "%s %s: '%.*s' is not a port number", opt, arg, (int)len, s);
		v = v * 10 + (unsigned long)(s[i] - '0');
		if (v > 65535)
			break;
	}
	if (v < 1 || v > 65535)
		return seterr(err, "%s %s: port '%.*s' is out of range (1-65535)", opt, arg, (int)len, s);
	*out = (uint16_t)v;
	return 0;
}

static int parse_range(const char *s, size_t len, struct rule *r, const char *opt, const char *arg, char *err)
{
	const char *dash = memchr(s, '-', len);

	if (!dash) {
		if (parse_port(s, len, &r->port_min, opt, arg, err))
			return -1;
		r->port_max = r->port_min;
		return 0;
	}
	if (parse_port(s, (size_t)(dash - s), &r->port_min, opt, arg, err) ||
	    parse_port(dash + 1, len - (size_t)(dash - s) - 1, &r->port_max, opt, arg, err))
		return -1;
	if (r->port_max < r->port_min)
		return seterr(err, "%s %s: range '%.*s' is reversed", opt, arg, (int)len, s);
	return 0;
}

/* An IPv4 address in dotted-quad form that is safe as a target: never loopback (that would loop). */
static int parse_addr(const char *s, size_t len, uint32_t *out, bool wildcard_ok, const char *opt,
		      const char *arg, char *err)
{
	char buf[INET6_ADDRSTRLEN + 1];
	struct in6_addr a6;
	struct in_addr a;
	uint32_t h;

	if (len == 0)
		return seterr(err, "%s %s: missing address after '='", opt, arg);
	if (len >= sizeof(buf))
		return seterr(err, "%s %s: '%.*s' is not an IPv4 address", opt, arg, (int)len, s);
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, &a) != 1) {
		if (inet_pton(AF_INET6, buf, &a6) == 1)
			return seterr(err, "%s %s: '%s' is IPv6; targets are IPv4 (::1 callers reach them v4-mapped)",
				    opt, arg, buf);
		return seterr(err, "%s %s: '%s' is not an IPv4 address", opt, arg, buf);
	}
	h = ntohl(a.s_addr);
	if ((h >> 24) == 127)
		return seterr(err, "%s %s: '%s' is a loopback address: the rule would loop back to loopback",
			    opt, arg, buf);
	if (h == 0 && !wildcard_ok)
		return seterr(err, "%s %s: '%s' is the wildcard address, not a host to connect to", opt, arg, buf);
	if ((h >> 28) == 14 || h == 0xffffffffu)
		return seterr(err, "%s %s: '%s' is a multicast or broadcast address", opt, arg, buf);
	*out = a.s_addr;
	return 0;
}

int parse_connect(const char *arg, struct rule *r, char *err)
{
	const char *opt = "--connect", *p = arg, *eq, *colon;

	memset(r, 0, sizeof(*r));
	r->host_listening = -1;
	r->kind = RULE_CONNECT;
	colon = strchr(p, ':');
	eq = strchr(p, '=');
	if (colon && (!eq || colon < eq)) {
		size_t plen = (size_t)(colon - p);

		if (plen == 3 && strncmp(p, "tcp", 3) == 0)
			r->proto = PROTO_TCP;
		else if (plen == 3 && strncmp(p, "udp", 3) == 0)
			r->proto = PROTO_UDP;
		else
			return seterr(err, "%s %s: unknown protocol '%.*s' (supported: tcp, udp)", opt, arg, (int)plen, p);
		p = colon + 1;
	}
	if (parse_range(p, eq ? (size_t)(eq - p) : strlen(p), r, opt, arg, err))
		return -1;
	if (!eq)
		return 0;

	const char *a = eq + 1, *pc = strrchr(a, ':');

	if (pc && (strchr(a, ':') != pc || a[0] == '['))
		pc = NULL; /* an IPv6 address: let parse_addr say so */

	if (parse_addr(a, pc ? (size_t)(pc - a) : strlen(a), &r->addr, false, opt, arg, err))
		return -1;
	r->has_addr = true;
	if (pc) {
		if (parse_port(pc + 1, strlen(pc + 1), &r->to_port, opt, arg, err))
			return -1;
		if ((unsigned)r->to_port + (r->port_max - r->port_min) > 65535)
			return seterr(err, "%s %s: target ports run past 65535", opt, arg);
	}
	return 0;
}

int parse_bind(const char *arg, struct rule *r, char *err)
{
	const char *opt = "--bind", *eq = strchr(arg, '=');

	memset(r, 0, sizeof(*r));
	r->host_listening = -1;
	r->kind = RULE_BIND;
	r->has_addr = true; /* 0.0.0.0 unless given */
	if (parse_range(arg, eq ? (size_t)(eq - arg) : strlen(arg), r, opt, arg, err))
		return -1;
	if (eq && parse_addr(eq + 1, strlen(eq + 1), &r->addr, true, opt, arg, err))
		return -1;
	return 0;
}

int ruleset_add(struct ruleset *rs, const struct rule *r, char *err)
{
	char a[64], b[64];

	for (int i = 0; i < rs->n; i++) {
		const struct rule *o = &rs->r[i];

		if (o->kind != r->kind || o->proto != r->proto || r->port_max < o->port_min || r->port_min > o->port_max)
			continue;
		rule_ports(r, a, sizeof(a));
		rule_ports(o, b, sizeof(b));
		return seterr(err, "%s %s: overlaps %s %s", rule_option(r), a, rule_option(o), b);
	}
	if (rs->n >= MAX_RULES)
		return seterr(err, "%s: too many rules (at most %d)", rule_option(r), MAX_RULES);
	rs->r[rs->n++] = *r;
	return 0;
}

int ruleset_always(struct ruleset *rs, char *err)
{
	if (!rs->n || rs->r[rs->n - 1].kind != RULE_CONNECT)
		return seterr(err, "--always: applies to the --connect rule before it, and there is none");
	rs->r[rs->n - 1].always = true;
	return 0;
}

int ruleset_real_peer(struct ruleset *rs, char *err)
{
	const struct rule *r = rs->n ? &rs->r[rs->n - 1] : NULL;

	if (!r || r->kind != RULE_CONNECT || r->proto != PROTO_TCP)
		return seterr(err, "--real-peer: applies to the tcp --connect rule before it, and there is none");
	rs->r[rs->n - 1].real_peer = true;
	return 0;
}

const char *rule_option(const struct rule *r)
{
	return r->kind == RULE_CONNECT ? "--connect" : "--bind";
}

void rule_ports(const struct rule *r, char *buf, size_t len)
{
	const char *proto = r->kind == RULE_BIND ? "" : r->proto == PROTO_UDP ? "udp:" : "tcp:";

	if (r->port_min == r->port_max)
		snprintf(buf, len, "%s%u", proto, r->port_min);
	else
		snprintf(buf, len, "%s%u-%u", proto, r->port_min, r->port_max);
}

void rule_target(const struct rule *r, char *buf, size_t len)
{
	char a[INET_ADDRSTRLEN] = "gateway";

	if (r->has_addr)
		inet_ntop(AF_INET, &r->addr, a, sizeof(a));
	if (r->to_port)
		snprintf(buf, len, "%s:%u", a, r->to_port);
	else
		snprintf(buf, len, "%s", a);
}

void rule_format(const struct rule *r, char *buf, size_t len)
{
	char ports[32], target[48];
	const char *always = r->always ? " --always" : "", *real = r->real_peer ? " --real-peer" : "";

	rule_ports(r, ports, sizeof(ports));
	if (r->kind == RULE_CONNECT && !r->has_addr) {
		snprintf(buf, len, "%s %s%s%s", rule_option(r), ports, always, real);
		return;
	}
	rule_target(r, target, sizeof(target));
	snprintf(buf, len, "%s %s=%s%s%s", rule_option(r), ports, target, always, real);
}

size_t ruleset_entries(const struct ruleset *rs)
{
	size_t n = 0;

	for (int i = 0; i < rs->n; i++)
		n += (size_t)(rs->r[i].port_max - rs->r[i].port_min) + 1;
	return n;
}

static void mark_recorded(struct hostlo_rule_key *keys, struct hostlo_rule_val *vals, size_t n);

void ruleset_expand(const struct ruleset *rs, struct hostlo_rule_key *keys, struct hostlo_rule_val *vals)
{
	size_t n = 0;

	for (int i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->r[i];

		for (unsigned p = r->port_min; p <= r->port_max; p++, n++) {
			memset(&keys[n], 0, sizeof(keys[n]));
			memset(&vals[n], 0, sizeof(vals[n]));
			keys[n].port = (uint16_t)p;
			keys[n].kind = r->kind == RULE_BIND ? HOSTLO_KIND_BIND :
				       r->proto == PROTO_UDP ? HOSTLO_KIND_CONNECT_UDP : HOSTLO_KIND_CONNECT_TCP;
			vals[n].addr = r->addr;
			vals[n].flags = (r->always ? HOSTLO_RULE_ALWAYS : 0) | (r->host_ifindex ? HOSTLO_RULE_STEER : 0) |
					(r->real_peer ? HOSTLO_RULE_REAL_PEER : 0) |
					(r->host_unsupported ? HOSTLO_RULE_NOHOST : 0);
			vals[n].host_ifindex = r->host_ifindex;
			if (r->to_port)
				vals[n].port = htons((uint16_t)(r->to_port + (p - r->port_min)));
		}
	}
	mark_recorded(keys, vals, n);
}

/* The target port a TCP connect entry leads to (host order). */
static uint16_t target_port(const struct hostlo_rule_key *k, const struct hostlo_rule_val *v)
{
	return v->port ? ntohs(v->port) : k->port;
}

bool portset_add(struct portset *s, uint16_t p)
{
	bool had = s->bit[p / 8] & (1u << (p % 8));

	s->bit[p / 8] |= (uint8_t)(1u << (p % 8));
	return had;
}

/*
 * A peer entry is keyed by the target's port alone, so of the TCP entries that lead to one target
 * port the first has it and the others are recorded per socket (HOSTLO_RULE_RECORD).
 */
static void mark_recorded(struct hostlo_rule_key *keys, struct hostlo_rule_val *vals, size_t n)
{
	struct portset taken = { 0 };

	for (size_t i = 0; i < n; i++)
		if (keys[i].kind == HOSTLO_KIND_CONNECT_TCP && portset_add(&taken, target_port(&keys[i], &vals[i])))
			vals[i].flags |= HOSTLO_RULE_RECORD;
}

size_t ruleset_peers(const struct hostlo_rule_key *keys, const struct hostlo_rule_val *vals, size_t n,
		     struct hostlo_rule_key *pk, struct hostlo_rule_val *pv)
{
	size_t m = 0;

	for (size_t i = 0; i < n; i++) {
		if (keys[i].kind != HOSTLO_KIND_CONNECT_TCP || (vals[i].flags & HOSTLO_RULE_RECORD))
			continue;
		pk[m] = (struct hostlo_rule_key){ .attach_id = keys[i].attach_id, .gen = keys[i].gen,
						  .port = target_port(&keys[i], &vals[i]), .kind = HOSTLO_KIND_PEER_TCP };
		pv[m++] = (struct hostlo_rule_val){ .addr = vals[i].addr, .port = htons(keys[i].port) };
	}
	return m;
}

struct entry {
	struct hostlo_rule_key k;
	struct hostlo_rule_val v;
};

/* Display order: tcp connects, udp connects, binds. */
static int kind_rank(__u8 kind)
{
	return kind == HOSTLO_KIND_CONNECT_TCP ? 0 : kind == HOSTLO_KIND_CONNECT_UDP ? 1 : 2;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->k.kind != y->k.kind)
		return kind_rank(x->k.kind) < kind_rank(y->k.kind) ? -1 : 1;
	return x->k.port < y->k.port ? -1 : x->k.port > y->k.port;
}

/* The next port continues the run when it maps to the same address and the next target port. */
static bool continues(const struct rule *r, const struct entry *e)
{
	unsigned want = r->to_port ? r->to_port + (e->k.port - r->port_min) : 0;

	return e->k.port == r->port_max + 1 && e->v.addr == r->addr && ntohs(e->v.port) == want &&
	       !!(e->v.flags & HOSTLO_RULE_ALWAYS) == r->always && e->v.host_ifindex == r->host_ifindex &&
	       !!(e->v.flags & HOSTLO_RULE_REAL_PEER) == r->real_peer &&
	       !!(e->v.flags & HOSTLO_RULE_NOHOST) == r->host_unsupported;
}

int ruleset_collapse(const struct hostlo_rule_key *keys, const struct hostlo_rule_val *vals, size_t n,
		     struct ruleset *rs, char *err)
{
	struct entry *e = calloc(n ? n : 1, sizeof(*e));

	if (!e)
		return seterr(err, "rules: out of memory");
	for (size_t i = 0; i < n; i++) {
		e[i].k = keys[i];
		e[i].v = vals[i];
	}
	qsort(e, n, sizeof(*e), entry_cmp);
	rs->n = 0;
	for (size_t i = 0; i < n; i++) {
		struct rule *last = rs->n ? &rs->r[rs->n - 1] : NULL;
		enum rule_kind kind = e[i].k.kind == HOSTLO_KIND_BIND ? RULE_BIND : RULE_CONNECT;
		enum rule_proto proto = e[i].k.kind == HOSTLO_KIND_CONNECT_UDP ? PROTO_UDP : PROTO_TCP;

		if (last && last->kind == kind && last->proto == proto && continues(last, &e[i])) {
			last->port_max = e[i].k.port;
			continue;
		}
		if (rs->n >= MAX_RULES) {
			free(e);
			return seterr(err, "rules: more than %d rules in the kernel map", MAX_RULES);
		}
		rs->r[rs->n++] = (struct rule){
			.kind = kind, .proto = proto, .port_min = e[i].k.port, .port_max = e[i].k.port,
			.has_addr = true, .addr = e[i].v.addr, .to_port = ntohs(e[i].v.port),
			.always = e[i].v.flags & HOSTLO_RULE_ALWAYS,
			.real_peer = e[i].v.flags & HOSTLO_RULE_REAL_PEER,
			.host_ifindex = (e[i].v.flags & HOSTLO_RULE_STEER) ? e[i].v.host_ifindex : 0,
			.host_listening = -1,
			.host_unsupported = e[i].v.flags & HOSTLO_RULE_NOHOST,
		};
	}
	free(e);
	return 0;
}

const char *rule_origin_name(int origin)
{
	static const char *const names[] = {
		[RULE_ORIGIN_CLI] = "cli", [RULE_ORIGIN_LABEL] = "label", [RULE_ORIGIN_CONFIG] = "config",
	};

	return origin >= 0 && origin < (int)(sizeof(names) / sizeof(names[0])) ? names[origin] : "unknown";
}
