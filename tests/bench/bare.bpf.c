// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bare.bpf.c: the yardstick of `make bench`'s hook cost. The least a loopback redirect can be: one
 * array read for the target, the address compared, the target written. No rules per cgroup, no
 * local-listener check, no counter, no per-socket state, no getpeername view. bench.sh attaches it to
 * a cgroup of its own and measures it in the same run, on the same connect loop, as hostlo's hooks.
 *
 * Beside it, two floors: the bare rewrite plus one kernel facility hostlo's connect4 relies on, each
 * on a cgroup of its own, so the report shows what that facility alone costs on the running kernel
 * (the per-socket state that getpeername and the host side read; the local-listener lookup).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "hostlo.h"

struct bare_target {
	__be32 addr;  /* the host's address */
	__be16 port;  /* the one port redirected, network order */
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2); /* 0: the connect4 loop's target, 1: connect6's */
	__type(key, __u32);
	__type(value, struct bare_target);
} bare_target SEC(".maps");

static __always_inline struct bare_target *target(__u32 slot, __u32 port)
{
	struct bare_target *t = bpf_map_lookup_elem(&bare_target, &slot);

	return t && t->port == (__be16)port ? t : 0;
}

/* connect4's target: a connect to 127.0.0.1 on the redirected port, or 0 */
static __always_inline struct bare_target *target4(struct bpf_sock_addr *ctx)
{
	return ctx->user_ip4 == bpf_htonl(0x7f000001) ? target(0, ctx->user_port) : 0;
}

SEC("cgroup/connect4")
int bare_connect4(struct bpf_sock_addr *ctx)
{
	struct bare_target *t = target4(ctx);

	if (t)
		ctx->user_ip4 = t->addr;
	return 1;
}

/* ::1 to the target's v4-mapped address, as hostlo's connect6 does */
SEC("cgroup/connect6")
int bare_connect6(struct bpf_sock_addr *ctx)
{
	struct bare_target *t;

	if (ctx->user_ip6[0] || ctx->user_ip6[1] || ctx->user_ip6[2] || ctx->user_ip6[3] != bpf_htonl(1))
		return 1;
	t = target(1, ctx->user_port);
	if (t) {
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = t->addr;
	}
	return 1;
}

/* The floors' per-socket state: the same value as hostlo's, created the same way. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct hostlo_sock);
} floor_socks SEC(".maps");

/* The bare rewrite plus socket storage created on every redirected connect, as hostlo's remember(). */
SEC("cgroup/connect4")
int floor_state_connect4(struct bpf_sock_addr *ctx)
{
	struct bare_target *t = target4(ctx);
	struct hostlo_sock *s;

	if (!t)
		return 1;
	s = bpf_sk_storage_get(&floor_socks, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (s)
		s->peer.target_addr = t->addr;
	ctx->user_ip4 = t->addr;
	return 1;
}

/* The bare rewrite plus the local-listener check: one socket lookup in the caller's namespace. */
SEC("cgroup/connect4")
int floor_listener_connect4(struct bpf_sock_addr *ctx)
{
	struct bpf_sock_tuple tuple = {};
	struct bare_target *t = target4(ctx);
	struct bpf_sock *sk;

	if (!t)
		return 1;
	tuple.ipv4.daddr = bpf_htonl(0x7f000001);
	tuple.ipv4.dport = (__be16)ctx->user_port;
	sk = bpf_skc_lookup_tcp(ctx, &tuple, sizeof(tuple.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (sk) {
		bpf_sk_release(sk);
		return 1;
	}
	ctx->user_ip4 = t->addr;
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
