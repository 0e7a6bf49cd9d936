/* rules.h: parsing, checking and (de)serialising --connect/--bind rules; pure, no kernel access. */
#ifndef HOSTLO_RULES_H
#define HOSTLO_RULES_H

#include <stdbool.h>
#include <stdint.h>
#include "hostlo.h"

#define MAX_RULES 256

enum rule_kind { RULE_CONNECT, RULE_BIND };

enum rule_proto { PROTO_TCP, PROTO_UDP };

struct rule {
	enum rule_kind kind;
	enum rule_proto proto;        /* connect rules */
	bool always;                  /* connect: redirect even when a local listener has the port */
	bool real_peer;               /* tcp connect to this host: its service sees the container's address,
	                                 not 127.0.0.1 (--real-peer) */
	uint16_t port_min, port_max;  /* host order, inclusive */
	bool has_addr;                /* connect without =ADDR: the target's gateway, filled in later */
	uint32_t addr;                /* network order */
	uint16_t to_port;             /* host order: first port of the target range, 0 = same ports */
	uint32_t host_ifindex;        /* tcp connect to the gateway, which is this host interface's address:
	                                 the host hands it to its 127.0.0.1 / [::1] listener (0: it does not) */
	int host_listening;           /* report only: target ports with such a listener now, -1 unknown */
	bool host_unsupported;        /* tcp connect to the gateway on a kernel without the host side (< 5.17) */
};

/* Who asked for a rule set: recorded with the attachment, so hostlo watch changes only its own. */
enum rule_origin { RULE_ORIGIN_CLI = 0, RULE_ORIGIN_LABEL = 1, RULE_ORIGIN_CONFIG = 2 };

/* "cli", "label" or "config". */
const char *rule_origin_name(int origin);

struct ruleset {
	uint8_t origin;               /* enum rule_origin */
	int n;
	struct rule r[MAX_RULES];
};

/* Each returns 0, or -1 with a message naming the bad token in err (ERRLEN bytes). */
int parse_connect(const char *arg, struct rule *out, char *err);
int parse_bind(const char *arg, struct rule *out, char *err);
/* Adds a rule, refusing a port that another rule of the same kind already covers. */
int ruleset_add(struct ruleset *rs, const struct rule *r, char *err);
/* --always: applies to the --connect rule just before it. */
int ruleset_always(struct ruleset *rs, char *err);
/* --real-peer: applies to the tcp --connect rule just before it. */
int ruleset_real_peer(struct ruleset *rs, char *err);

/* "--connect tcp:5432=198.18.0.1 [--always] [--real-peer]" or "--bind 3000=0.0.0.0": canonical, re-parseable. */
void rule_format(const struct rule *r, char *buf, size_t len);
const char *rule_option(const struct rule *r);  /* "--connect" or "--bind" */
void rule_ports(const struct rule *r, char *buf, size_t len); /* "tcp:5432" or "3000-3010" */
void rule_target(const struct rule *r, char *buf, size_t len); /* "198.18.0.1:5432" */

/* A set of ports (host order), one bit each. */
struct portset {
	uint8_t bit[65536 / 8];
};
/* Adds p to s: whether it was there already. */
bool portset_add(struct portset *s, uint16_t p);

/* Number of per-port map entries the rule set expands to. */
size_t ruleset_entries(const struct ruleset *rs);
/* Fills keys/vals (ruleset_entries() each). Every connect rule must have its address by now. A TCP entry
 * whose target port an earlier one leads to as well gets HOSTLO_RULE_RECORD. */
void ruleset_expand(const struct ruleset *rs, struct hostlo_rule_key *keys, struct hostlo_rule_val *vals);
/* The peer entries (HOSTLO_KIND_PEER_TCP) of expanded entries, into pk/pv (room for n): how many. */
size_t ruleset_peers(const struct hostlo_rule_key *keys, const struct hostlo_rule_val *vals, size_t n,
		     struct hostlo_rule_key *pk, struct hostlo_rule_val *pv);
/* Rebuilds rules from map entries (any order), merging runs of ports into ranges. */
int ruleset_collapse(const struct hostlo_rule_key *keys, const struct hostlo_rule_val *vals, size_t n,
		     struct ruleset *rs, char *err);

#endif
