// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* hostlo.bpf.c: cgroup sock_addr programs that redirect loopback connects and widen loopback binds. */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "hostlo.h"

/* Verdicts of a cgroup sock_addr program: hostlo never rejects a syscall. */
#define SYS_PROCEED 1

#define SOCK_STREAM 1
#define IPPROTO_MPTCP_ 262

#define LOOPBACK4 0x7f000001 /* 127.0.0.1, host order */

/* Template for the per-cgroup rule maps that user space creates, sized to their rule count. */
struct rules_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	/* sizes, not BTF types: clang emits types this deep as forward declarations only */
	__uint(key_size, sizeof(struct hostlo_rule_key));
	__uint(value_size, sizeof(struct hostlo_rule_val));
};

/* attached cgroup id -> its rules; swapping the inner map replaces a rule set atomically. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, HOSTLO_MAX_CGROUPS);
	__type(key, __u64);
	__array(values, struct rules_inner);
} hostlo_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, HOSTLO_MAX_LEAVES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct hostlo_stats_key);
	__type(value, struct hostlo_stats_val);
} hostlo_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hostlo_config);
} hostlo_config SEC(".maps");

/*
 * The programs are attached to many cgroups at once, so they find their rules from the caller:
 * the nearest ancestor (or the caller's own cgroup) that has a rule set. Only levels that hold an
 * attachment are probed, deepest first, so the usual case is one lookup.
 */
static __always_inline void *find_rules(__u64 *attach_id)
{
	__u32 zero = 0;
	struct hostlo_config *cfg = bpf_map_lookup_elem(&hostlo_config, &zero);

	if (!cfg)
		return NULL;
	__u64 mask = cfg->level_mask;
	__u32 top = cfg->max_level;

	for (__u32 i = 0; i < HOSTLO_MAX_LEVEL; i++) {
		if (i >= top)
			break;
		__u32 level = top - i;
		if (!(mask & (1ULL << level)))
			continue;
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);
		if (!id)
			continue;
		void *rules = bpf_map_lookup_elem(&hostlo_rules, &id);
		if (rules) {
			*attach_id = id;
			return rules;
		}
	}
	return NULL;
}

static __always_inline struct hostlo_rule_val *find_rule(__u8 kind, __u32 user_port, __u64 *attach_id)
{
	struct hostlo_rule_key key = { .port = bpf_ntohs((__u16)user_port), .kind = kind };
	void *rules = find_rules(attach_id);

	if (!rules)
		return NULL;
	return bpf_map_lookup_elem(rules, &key);
}

/* Per-CPU rows, but a task can be preempted mid-update on a preemptible kernel: add atomically. */
static __always_inline void count(__u64 attach_id, enum hostlo_counter c)
{
	struct hostlo_stats_key key = { .cgroup_id = bpf_get_current_cgroup_id(), .attach_id = attach_id };
	struct hostlo_stats_val *row = bpf_map_lookup_elem(&hostlo_stats, &key);

	if (!row) {
		struct hostlo_stats_val zero = {};

		bpf_map_update_elem(&hostlo_stats, &key, &zero, BPF_NOEXIST);
		row = bpf_map_lookup_elem(&hostlo_stats, &key);
		if (!row)
			return; /* table full: the rewrite still happens, only the count is lost */
	}
	__sync_fetch_and_add(&row->count[c], 1);
}

static __always_inline int is_tcp(struct bpf_sock_addr *ctx)
{
	return ctx->type == SOCK_STREAM &&
	       (ctx->protocol == IPPROTO_TCP || ctx->protocol == IPPROTO_MPTCP_);
}

static __always_inline int is_loopback6(struct bpf_sock_addr *ctx)
{
	/* ::1, or the v4-mapped ::ffff:127.0.0.1 that dual-stack apps use for "localhost" */
	if (ctx->user_ip6[0] || ctx->user_ip6[1])
		return 0;
	if (!ctx->user_ip6[2])
		return ctx->user_ip6[3] == bpf_htonl(1);
	return ctx->user_ip6[2] == bpf_htonl(0xffff) && ctx->user_ip6[3] == bpf_htonl(LOOPBACK4);
}

SEC("cgroup/connect4")
int hostlo_connect4(struct bpf_sock_addr *ctx)
{
	struct hostlo_rule_val *to;
	__u64 attach_id;

	if (!is_tcp(ctx) || ctx->user_ip4 != bpf_htonl(LOOPBACK4))
		return SYS_PROCEED;
	to = find_rule(HOSTLO_KIND_CONNECT_TCP, ctx->user_port, &attach_id);
	if (!to)
		return SYS_PROCEED;
	ctx->user_ip4 = to->addr;
	if (to->port)
		ctx->user_port = to->port;
	count(attach_id, HOSTLO_CNT_CONNECT_REDIRECTED);
	return SYS_PROCEED;
}

/* An IPv6 connect to ::1 reaches the IPv4 target through its v4-mapped address. */
SEC("cgroup/connect6")
int hostlo_connect6(struct bpf_sock_addr *ctx)
{
	struct hostlo_rule_val *to;
	__u64 attach_id;

	if (!is_tcp(ctx) || !is_loopback6(ctx))
		return SYS_PROCEED;
	to = find_rule(HOSTLO_KIND_CONNECT_TCP, ctx->user_port, &attach_id);
	if (!to)
		return SYS_PROCEED;
	ctx->user_ip6[0] = 0;
	ctx->user_ip6[1] = 0;
	ctx->user_ip6[2] = bpf_htonl(0xffff);
	ctx->user_ip6[3] = to->addr;
	if (to->port)
		ctx->user_port = to->port;
	count(attach_id, HOSTLO_CNT_CONNECT_REDIRECTED);
	return SYS_PROCEED;
}

SEC("cgroup/bind4")
int hostlo_bind4(struct bpf_sock_addr *ctx)
{
	struct hostlo_rule_val *to;
	__u64 attach_id;

	if (ctx->user_ip4 != bpf_htonl(LOOPBACK4))
		return SYS_PROCEED;
	to = find_rule(HOSTLO_KIND_BIND, ctx->user_port, &attach_id);
	if (!to)
		return SYS_PROCEED;
	ctx->user_ip4 = to->addr;
	count(attach_id, HOSTLO_CNT_BIND_REWRITTEN);
	return SYS_PROCEED;
}

/* A bind to ::1 on a rule's port becomes a bind to :: (the IPv6 wildcard). */
SEC("cgroup/bind6")
int hostlo_bind6(struct bpf_sock_addr *ctx)
{
	struct hostlo_rule_val *to;
	__u64 attach_id;

	if (ctx->user_ip6[0] || ctx->user_ip6[1] || ctx->user_ip6[2] || ctx->user_ip6[3] != bpf_htonl(1))
		return SYS_PROCEED;
	to = find_rule(HOSTLO_KIND_BIND, ctx->user_port, &attach_id);
	if (!to)
		return SYS_PROCEED;
	ctx->user_ip6[3] = 0;
	count(attach_id, HOSTLO_CNT_BIND_REWRITTEN);
	return SYS_PROCEED;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
