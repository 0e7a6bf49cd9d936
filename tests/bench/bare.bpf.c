// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bare.bpf.c: the yardstick of `make bench`'s hook cost. The least a loopback redirect can be: one
 * array read for the target, the address compared, the target written. No rules per cgroup, no
 * local-listener check, no counter, no per-socket state, no getpeername view. bench.sh attaches it to
 * a cgroup of its own and measures it in the same run, on the same connect loop, as hostlo's hooks.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

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

SEC("cgroup/connect4")
int bare_connect4(struct bpf_sock_addr *ctx)
{
	struct bare_target *t;

	if (ctx->user_ip4 != bpf_htonl(0x7f000001))
		return 1;
	t = target(0, ctx->user_port);
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

char LICENSE[] SEC("license") = "Dual BSD/GPL";
