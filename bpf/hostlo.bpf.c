// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * hostlo.bpf.c: cgroup sock_addr programs that redirect loopback connects and datagrams to a host,
 * widen loopback binds, and show the application the loopback address it asked for.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "hostlo.h"

/* Verdicts of a cgroup sock_addr program: hostlo never rejects a syscall. */
#define SYS_PROCEED 1

#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define IPPROTO_MPTCP_ 262

#define LOOPBACK4 0x7f000001 /* 127.0.0.1, host order */

/* Every attached cgroup's rules (see struct hostlo_rule_key); filled and emptied by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HOSTLO_MAX_ALL_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct hostlo_rule_key);
	__type(value, struct hostlo_rule_val);
} hostlo_rules SEC(".maps");

/* attached cgroup id -> the live generation of its rules (struct hostlo_attached). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HOSTLO_MAX_CGROUPS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct hostlo_attached);
} hostlo_attached SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, HOSTLO_MAX_LEAVES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct hostlo_stats_key);
	__type(value, struct hostlo_stats_val);
} hostlo_stats SEC(".maps");

/* The attached cgroups' own rows (struct hostlo_counts): one per cgroup, shared by its programs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE);
	__type(key, __u64);
	__type(value, struct hostlo_counts);
} hostlo_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hostlo_config);
} hostlo_config SEC(".maps");

/* Per-socket translation state; freed by the kernel with the socket, so it cannot outgrow them. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct hostlo_sock);
} hostlo_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, HOSTLO_EVENTS_BYTES);
} hostlo_events SEC(".maps");

/* Host side: the redirected connections the host may steer (see struct hostlo_flow). LRU: a flow
 * whose close was never seen (the programs replaced meanwhile) ages out instead of filling it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, HOSTLO_MAX_FLOWS);
	__type(key, struct hostlo_flow);
	__type(value, struct hostlo_flow_val);
} hostlo_flows SEC(".maps");

/* Host side: the host's listeners on 127.0.0.1 / [::1] for the ports steering rules name. The kernel
 * drops a socket from it when it closes; a restarted service is put back by hostlo_sockops. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, HOSTLO_MAX_LISTENERS);
	__type(key, struct hostlo_listener_key);
	__type(value, __u64);
} hostlo_listeners SEC(".maps");

/* Host side: the target ports of every steering rule (kept by the loader: the union over attachments). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u16);
	__type(value, __u8);
} hostlo_steer_ports SEC(".maps");

/* Host side: the host services' accepted sockets marked by builds before HOSTLO_FLOW_ACCEPTED (struct
 * hostlo_peer): only read, so that connections accepted before an upgrade keep showing 127.0.0.1. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct hostlo_peer);
} hostlo_peers SEC(".maps");

/* Events that did not fit in the ring buffer (a reader too slow, or none left after a crash). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hostlo_drops SEC(".maps");

/* Redirected TCP connects the host side is to note, from connect to hostlo_sockops (struct hostlo_handoff). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, HOSTLO_MAX_HANDOFFS);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, __u64);
	__type(value, struct hostlo_handoff);
} hostlo_handoff SEC(".maps");

/* The same hand-off through per-CPU slots (struct hostlo_handoff_slot): the *_percpu programs only. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HOSTLO_HANDOFF_SLOTS);
	__type(key, __u32);
	__type(value, struct hostlo_handoff_slot);
} hostlo_handoff_slots SEC(".maps");

/*
 * listen() calls on the machine, counted by hostlo_sockops on the cgroup2 root (TCP_LISTEN_CB, which
 * the kernel raises once the socket is in the listening hash). Pinned, so every build's programs share it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hostlo_listen_epoch SEC(".maps");

/*
 * A CPU's last "nothing listens on loopback:port here" answers (slot: port % LISTEN_MEMO_SLOTS), each a
 * tag of the caller's network namespace, the port, the loopback form, rules_version and the listen epoch
 * it was found under (listen_memo()): it holds until the next listen() anywhere. One aligned word, so a
 * reader sees a whole tag or another whole one. Only positive answers are expensive to get wrong (a
 * connect redirected away from a local listener), and those are never kept.
 */
#define LISTEN_MEMO_SLOTS 16
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LISTEN_MEMO_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} hostlo_listen_memo SEC(".maps");

/*
 * Set only by the loader's test builds (the verifier drops what it guards when it is 0): a connect's
 * hand-off claims the next CPU's slot, as if the task moved before its connection started; or finds
 * every slot taken, as if other connects held them. And a claim never taken back made stale sooner.
 */
const volatile __u32 hostlo_test_handoff = 0;
#define TEST_HANDOFF_OTHER_CPU 1
#define TEST_HANDOFF_SPILL 2
const volatile __u64 hostlo_handoff_stale_ns = HOSTLO_HANDOFF_STALE_NS;

/*
 * The TCP sockets this CPU redirected last, by socket cookie (slot: cookie % HOSTLO_REDIRECT_SLOTS). With
 * nested attachments a connect meets hostlo's program once per attached cgroup on its path, and the
 * later runs see the target the first wrote: this tells them it is no direct connect. The runs of one
 * call are back to back on one CPU (the kernel disables migration across a cgroup's programs).
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HOSTLO_REDIRECT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} hostlo_redirected SEC(".maps");

/*
 * The programs are attached to many cgroups at once, so they find their rules from the caller: the
 * nearest ancestor (or the caller's own cgroup) that is attached, and its rule for this port. Only
 * levels that hold an attachment are probed, deepest first, so the usual case is two lookups.
 */
static __always_inline struct hostlo_rule_val *lookup_rule(const struct hostlo_config *cfg, __u8 kind, __u16 port,
							   __u64 *attach_id)
{
	struct hostlo_rule_key key = { .port = port, .kind = kind };
	__u64 mask = cfg->level_mask;
	__u32 top = cfg->max_level;

	*attach_id = 0;
	for (__u32 i = 0; i < HOSTLO_MAX_LEVEL; i++) {
		if (i >= top)
			break;
		__u32 level = top - i;
		if (!(mask & (1ULL << level)))
			continue;
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);
		if (!id)
			continue;
		struct hostlo_attached *a = bpf_map_lookup_elem(&hostlo_attached, &id);
		if (a) {
			*attach_id = id;
			key.attach_id = id;
			key.gen = a->gen;
			return bpf_map_lookup_elem(&hostlo_rules, &key);
		}
	}
	return NULL;
}

/*
 * A CPU's last answers of lookup_rule, by caller cgroup, port and kind: the walk over levels and the two
 * hash lookups cost more than the rest of a connect's program. An answer holds while the loader's
 * rules_version is the one it was found under (the loader makes it odd while it changes which rules
 * apply, and no answer is kept or used then). Per CPU, so no lock, but a task can be preempted on this
 * CPU (migration is disabled, preemption is not): a reader that a writer interrupts sees seq change,
 * and two writers interleaved (one preempted mid-write by the other, on a fully preemptible kernel)
 * can leave one's key beside the other's rule under an even seq, which the check catches: it is a hash
 * of the whole slot as its writer meant it, computed from the writer's own copy. Either way the reader
 * looks the rule up.
 */
struct rule_memo {
	__u32 seq;                       /* odd while being written */
	__u32 version;                   /* rules_version it was found under */
	__u64 cgroup_id;                 /* the caller's own cgroup */
	__u64 attach_id;
	__u16 port;                      /* host order */
	__u8 kind;
	__u8 found;                      /* 0: no rule (also worth remembering); val is zero then */
	__u32 check;                     /* memo_check() of the fields, by their writer */
	struct hostlo_rule_val val;
};

#define RULE_MEMO_SLOTS 8            /* per CPU, by port and kind */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RULE_MEMO_SLOTS);
	__type(key, __u32);
	__type(value, struct rule_memo);
} hostlo_rule_memo SEC(".maps");

/* Keeps the compiler from moving memory accesses across it: seq is read before and after the fields. */
#define barrier_() asm volatile("" ::: "memory")

static __always_inline __u32 read_once(const __u32 *p)
{
	return *(const volatile __u32 *)p;
}

static __always_inline void write_once(__u32 *p, __u32 v)
{
	*(volatile __u32 *)p = v;
}

static __always_inline __u64 read_once64(const __u64 *p)
{
	return *(const volatile __u64 *)p;
}

/* Compare-and-swap (Linux 5.12; an older kernel rejects a program that holds one, reached or not):
 * only in the *_percpu programs. */
static __always_inline __u64 cas64(__u64 *p, __u64 old, __u64 new)
{
	return __sync_val_compare_and_swap(p, old, new);
}

static __always_inline __u64 mix(__u64 h, __u64 w)
{
	h = (h ^ w) * 0xff51afd7ed558ccdULL;
	return h ^ (h >> 32);
}

static __always_inline __u32 memo_check(__u32 version, __u64 cg, __u64 attach_id, __u16 port, __u8 kind, __u8 found,
					const struct hostlo_rule_val *v)
{
	__u64 h = 0x9e3779b97f4a7c15ULL;

	h = mix(h, (__u64)version << 32 | (__u64)port << 16 | (__u64)kind << 8 | found);
	h = mix(h, cg);
	h = mix(h, attach_id);
	h = mix(h, (__u64)v->addr << 32 | (__u64)v->port << 16 | v->flags);
	h = mix(h, v->host_ifindex);
	return (__u32)h;
}

/* The memo's answer (1 with a rule in *buf, 0 for none), or -1 when it has none for this call. */
static __always_inline int memo_get(const struct rule_memo *m, __u32 version, __u64 cg, __u16 port, __u8 kind,
				    __u64 *attach_id, struct hostlo_rule_val *buf)
{
	__u32 seq = read_once(&m->seq), check;
	__u8 found;

	barrier_();
	if ((seq & 1) || m->version != version || m->cgroup_id != cg || m->port != port || m->kind != kind)
		return -1;
	found = m->found;
	*attach_id = m->attach_id;
	*buf = m->val;
	check = m->check;
	barrier_();
	if (read_once(&m->seq) != seq || check != memo_check(version, cg, *attach_id, port, kind, found, buf))
		return -1;
	return found;
}

static __always_inline void memo_put(struct rule_memo *m, __u32 version, __u64 cg, __u16 port, __u8 kind,
				     __u64 attach_id, const struct hostlo_rule_val *r)
{
	struct hostlo_rule_val v = r ? *r : (struct hostlo_rule_val){};
	/* from this writer's own copy, never read back from the slot another writer may be filling */
	__u32 check = memo_check(version, cg, attach_id, port, kind, r != NULL, &v);
	__u32 seq = read_once(&m->seq) | 1;

	write_once(&m->seq, seq);
	barrier_();
	m->version = version;
	m->cgroup_id = cg;
	m->port = port;
	m->kind = kind;
	m->found = r != NULL;
	m->attach_id = attach_id;
	m->val = v;
	m->check = check;
	barrier_();
	write_once(&m->seq, seq + 1);
}

/* The caller's (in cgroup cg) rule for this port and kind, copied to *buf (returned), or NULL. */
static __always_inline struct hostlo_rule_val *find_rule(__u8 kind, __u32 user_port, __u64 cg, __u64 *attach_id,
							 struct hostlo_rule_val *buf)
{
	__u16 port = bpf_ntohs((__u16)user_port);
	__u32 zero = 0, slot = (port ^ kind) & (RULE_MEMO_SLOTS - 1), version;
	struct hostlo_config *cfg = bpf_map_lookup_elem(&hostlo_config, &zero);
	struct rule_memo *m = bpf_map_lookup_elem(&hostlo_rule_memo, &slot);
	struct hostlo_rule_val *r;
	int found;

	if (!cfg)
		return NULL;
	version = read_once(&cfg->rules_version);
	barrier_(); /* the version before the lookup: a change after it makes what is found here stale */
	if (m && !(version & 1)) {
		found = memo_get(m, version, cg, port, kind, attach_id, buf);
		if (found >= 0)
			return found ? buf : NULL;
	}
	r = lookup_rule(cfg, kind, port, attach_id);
	if (r)
		*buf = *r;
	if (m && !(version & 1))
		memo_put(m, version, cg, port, kind, *attach_id, r ? buf : NULL);
	return r ? buf : NULL;
}

/* addr may be a TCP rule's target: beyond loopback, the only addresses hostlo looks at. */
static __always_inline int peer_target(__be32 addr)
{
	__u32 zero = 0;
	struct hostlo_config *cfg = bpf_map_lookup_elem(&hostlo_config, &zero);

	if (!cfg)
		return 0;
	__u32 n = cfg->npeer_addrs;

	if (n > HOSTLO_PEER_ADDRS)
		return 1;
	for (__u32 i = 0; i < HOSTLO_PEER_ADDRS; i++)
		if (i < n && cfg->peer_addrs[i] == addr)
			return 1;
	return 0;
}

/* The caller's peer entry for the TCP target addr:port (val.port: the loopback port it stands for), or NULL. */
static __always_inline struct hostlo_rule_val *find_peer(__be32 addr, __be16 port, __u64 *attach_id,
							 struct hostlo_rule_val *buf)
{
	struct hostlo_rule_val *p;

	if (!peer_target(addr))
		return NULL;
	p = find_rule(HOSTLO_KIND_PEER_TCP, (__u32)port, bpf_get_current_cgroup_id(), attach_id, buf);
	return p && p->addr == addr ? p : NULL;
}

/* Per-CPU rows, but a task can be preempted mid-update on a preemptible kernel: add atomically. */
static __always_inline void count_row(__u64 cgroup_id, __u64 attach_id, enum hostlo_counter c)
{
	struct hostlo_stats_key key = { .cgroup_id = cgroup_id, .attach_id = attach_id };
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

/*
 * Counter c of the row of cgroup cg (below the attached one) in this CPU's copy of its storage: the row
 * that has cg's id, or the first free one, claimed by compare-and-swap (a task preempted on this CPU
 * may claim beside another); NULL when the rows are taken by other cgroups (the hash counts then).
 */
static __always_inline __u64 *below_counter(struct hostlo_counts *own, __u64 cg, enum hostlo_counter c)
{
	for (int i = 0; i < HOSTLO_BELOW_ROWS; i++) {
		struct hostlo_below_row *r = &own->below[i];
		__u64 id = read_once64(&r->cgroup_id);

		if (!id)
			id = cas64(&r->cgroup_id, 0, cg) ?: cg;
		if (id == cg)
			return &r->count[c];
	}
	return NULL;
}

/*
 * Counts a call of a process in cgroup cg whose rule is attach_id's, from a program attached to a
 * cgroup: the attached cgroup's own processes in its storage (see struct hostlo_counts; the program
 * that redirects is the one attached to the caller's nearest attached cgroup), any other row in the hash.
 */
static __always_inline void count_in(__u64 cg, __u64 attach_id, enum hostlo_counter c, int below_rows)
{
	struct hostlo_counts *own = bpf_get_local_storage(&hostlo_counts, 0);
	__u64 *below = NULL;

	if (own->owner == attach_id) {
		if (cg == attach_id) {
			__sync_fetch_and_add(&own->v.count[c], 1);
			return;
		}
		if (below_rows && c < HOSTLO_BELOW_COUNTERS)
			below = below_counter(own, cg, c);
		if (below) {
			__sync_fetch_and_add(below, 1);
			return;
		}
	}
	count_row(cg, attach_id, c);
}

/* The rows below an attached cgroup are claimed by compare-and-swap, which a kernel before 5.12 rejects
 * in any program it is asked to load: only the *_percpu connects (redirect4/6) count there. */
static __always_inline void count(__u64 cg, __u64 attach_id, enum hostlo_counter c)
{
	count_in(cg, attach_id, c, 0);
}

/* One trace event, only while a `hostlo trace` runs: otherwise a single array read is all it costs. */
static __always_inline void trace_row(struct bpf_sock_addr *ctx, __u64 cgroup_id, __u8 kind, __u8 orig, __u64 attach_id,
				      __be32 to_addr, __be16 to_port)
{
	__u32 zero = 0;
	struct hostlo_config *cfg = bpf_map_lookup_elem(&hostlo_config, &zero);
	struct hostlo_event *e;

	if (!cfg || !cfg->tracers)
		return;
	e = bpf_ringbuf_reserve(&hostlo_events, sizeof(*e), 0);
	if (!e) {
		__u64 *drops = bpf_map_lookup_elem(&hostlo_drops, &zero);

		if (drops)
			__sync_fetch_and_add(drops, 1);
		return;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->cgroup_id = cgroup_id;
	e->attach_id = attach_id;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->kind = kind;
	e->proto = ctx->protocol == IPPROTO_UDP ? IPPROTO_UDP : IPPROTO_TCP;
	e->orig = orig;
	e->family6 = ctx->family == 10 /* AF_INET6 */;
	e->to_addr = to_addr;
	e->orig_port = (__be16)ctx->user_port;
	e->to_port = to_port ? to_port : (__be16)ctx->user_port;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
}

/* The rule kind for this socket's connect or datagram, 0 for sockets hostlo never redirects. */
static __always_inline __u8 connect_kind(struct bpf_sock_addr *ctx)
{
	if (ctx->type == SOCK_STREAM && (ctx->protocol == IPPROTO_TCP || ctx->protocol == IPPROTO_MPTCP_))
		return HOSTLO_KIND_CONNECT_TCP;
	if (ctx->type == SOCK_DGRAM && ctx->protocol == IPPROTO_UDP)
		return HOSTLO_KIND_CONNECT_UDP;
	return 0;
}

/* Which loopback form an AF_INET6 address is: ::1, ::ffff:127.0.0.1, or neither. */
static __always_inline __u8 loopback6(struct bpf_sock_addr *ctx)
{
	if (ctx->user_ip6[0] || ctx->user_ip6[1])
		return HOSTLO_ORIG_NONE;
	if (!ctx->user_ip6[2])
		return ctx->user_ip6[3] == bpf_htonl(1) ? HOSTLO_ORIG_LO6 : HOSTLO_ORIG_NONE;
	if (ctx->user_ip6[2] == bpf_htonl(0xffff) && ctx->user_ip6[3] == bpf_htonl(LOOPBACK4))
		return HOSTLO_ORIG_LO4_MAPPED;
	return HOSTLO_ORIG_NONE;
}

/*
 * This CPU's memo slot for a TCP connect's local-listener answer (see hostlo_listen_memo), with in *tag
 * what it holds while "none" stands; NULL while no answer may be kept (the loader is changing rules, or
 * nothing counts listen() calls: config.listen_memo). The epoch is read before the socket lookup and a
 * listen() advances it after its socket is in the listening hash, so a lookup that missed a listener was
 * made under an epoch that listener's listen() has since ended (x86 keeps loads in order; elsewhere the
 * loader keeps rules_version odd, and this memo unused, as for the rule memo).
 */
static __always_inline __u64 *listen_memo(struct bpf_sock_addr *ctx, __u8 orig, __u64 *tag)
{
	__u32 zero = 0, slot = bpf_ntohs((__u16)ctx->user_port) % LISTEN_MEMO_SLOTS, version;
	struct hostlo_config *cfg = bpf_map_lookup_elem(&hostlo_config, &zero);
	__u64 *epoch = bpf_map_lookup_elem(&hostlo_listen_epoch, &zero), h = 0x9e3779b97f4a7c15ULL;

	if (!cfg || !epoch)
		return NULL;
	version = read_once(&cfg->rules_version);
	barrier_();
	if ((version & 1) || !read_once(&cfg->listen_memo))
		return NULL;
	h = mix(h, bpf_get_netns_cookie(ctx));
	h = mix(h, (__u64)version << 32 | (__u64)(__u16)ctx->user_port << 8 | orig);
	h = mix(h, read_once64(epoch));
	barrier_();
	*tag = h | 1; /* never 0, what a slot holds before its first answer */
	return bpf_map_lookup_elem(&hostlo_listen_memo, &slot);
}

/* Something in the caller's own network namespace listens on the loopback address and port asked for. */
static __always_inline int local_listener(struct bpf_sock_addr *ctx, __u8 kind, __u8 orig)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u64 *memo = NULL, tag = 0;
	__u32 size;

	if (kind == HOSTLO_KIND_CONNECT_TCP) {
		memo = listen_memo(ctx, orig, &tag);
		if (memo && *memo == tag)
			return 0;
	}

	if (orig == HOSTLO_ORIG_LO6) {
		t.ipv6.daddr[3] = bpf_htonl(1);
		t.ipv6.dport = (__be16)ctx->user_port;
		size = sizeof(t.ipv6);
	} else {
		t.ipv4.daddr = bpf_htonl(LOOPBACK4);
		t.ipv4.dport = (__be16)ctx->user_port;
		size = sizeof(t.ipv4);
	}
	if (kind == HOSTLO_KIND_CONNECT_UDP)
		sk = bpf_sk_lookup_udp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
	else
		sk = bpf_skc_lookup_tcp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk) {
		if (memo)
			*memo = tag;
		return 0;
	}
	bpf_sk_release(sk);
	return 1;
}

/* The rule that redirects this loopback call, or NULL to leave it alone (no rule, or kept local). */
static __always_inline struct hostlo_rule_val *decide(struct bpf_sock_addr *ctx, __u8 kind, __u8 orig, __u64 cg,
						      __u64 *attach_id, struct hostlo_rule_val *buf)
{
	struct hostlo_rule_val *to = find_rule(kind, ctx->user_port, cg, attach_id, buf);

	if (!to)
		return NULL;
	if (!(to->flags & HOSTLO_RULE_ALWAYS) && local_listener(ctx, kind, orig)) {
		count(cg, *attach_id, HOSTLO_CNT_CONNECT_KEPT_LOCAL);
		trace_row(ctx, cg, HOSTLO_EV_KEPT_LOCAL, orig, *attach_id, bpf_htonl(LOOPBACK4), 0);
		return NULL;
	}
	return to;
}

/*
 * The host has a listener on 127.0.0.1 for the target port. Without one there is nothing to steer
 * to, so the connection is not noted for the host at all (the usual case when the service listens
 * on the gateway or 0.0.0.0): no flow entry, no close callback.
 */
static __always_inline int host_listener(__be16 port)
{
	struct hostlo_listener_key key = { .port = bpf_ntohs(port) };
	struct bpf_sock *l = bpf_map_lookup_elem(&hostlo_listeners, &key);

	if (!l)
		return 0;
	bpf_sk_release(l);
	return 1;
}

/*
 * Whether the host notes this TCP connect to the gateway as a flow (its host interface, or 0), and
 * what the host service is to see (HOSTLO_XLAT_*): a flow is needed to steer it to a loopback
 * listener, or to show the service a loopback client (unless the rule says --real-peer).
 */
static __always_inline __u32 host_flow(const struct hostlo_rule_val *to, __be16 port, __u8 *flags)
{
	*flags = to->flags & HOSTLO_RULE_REAL_PEER ? 0 : HOSTLO_XLAT_LOCAL_PEER;
	return *flags || host_listener(port) ? to->host_ifindex : 0;
}

static __always_inline __u32 handoff_check(__u64 cookie, __u64 since, const struct hostlo_handoff *h)
{
	__u64 x = 0x9e3779b97f4a7c15ULL;

	x = mix(x, cookie);
	x = mix(x, since);
	x = mix(x, h->cgroup_id);
	x = mix(x, h->attach_id);
	x = mix(x, (__u64)h->target_addr << 32 | (__u64)h->target_port << 16 | h->xlat_flags);
	x = mix(x, h->ifindex);
	return (__u32)x;
}

/* The slot of this CPU for the cookie, or of the next one (test builds: see hostlo_test_handoff). */
static __always_inline struct hostlo_handoff_slot *handoff_slot(__u32 *key)
{
	if (hostlo_test_handoff == TEST_HANDOFF_OTHER_CPU) {
		__u32 next = bpf_get_smp_processor_id() + 1;
		struct hostlo_handoff_slot *s = bpf_map_lookup_percpu_elem(&hostlo_handoff_slots, key, next);

		return s ? s : bpf_map_lookup_percpu_elem(&hostlo_handoff_slots, key, 0);
	}
	return bpf_map_lookup_elem(&hostlo_handoff_slots, key);
}

/*
 * Puts the hand-off in a slot this connect claims (see struct hostlo_handoff_slot): 1, or 0 when the
 * slot is held by another connect. The check is written last: until then the slot is neither taken
 * nor reclaimed, so a writer preempted here loses nothing to another.
 */
static __always_inline int handoff_put_slot(__u64 cookie, const struct hostlo_handoff *h)
{
	__u32 key = (__u32)(cookie % HOSTLO_HANDOFF_SLOTS);
	struct hostlo_handoff_slot *s = handoff_slot(&key);
	__u64 now = bpf_ktime_get_coarse_ns(), old, since;
	struct hostlo_handoff held;

	if (!s || hostlo_test_handoff == TEST_HANDOFF_SPILL)
		return 0;
	old = cas64(&s->cookie, 0, cookie);
	if (old && old != cookie) {
		/* held: reclaimed only when whole and stale (its connect failed before the connection started) */
		since = s->since;
		held = s->h;
		if (s->check != handoff_check(old, since, &held) || now - since < hostlo_handoff_stale_ns ||
		    cas64(&s->cookie, old, cookie) != old)
			return 0;
	}
	s->since = now;
	s->h = *h;
	barrier_();
	s->check = handoff_check(cookie, now, h);
	return 1;
}

/*
 * A steered connect with no record: hostlo_sockops takes this to note the host flow. Through a
 * per-CPU slot (percpu programs: every steered connect, so that sockops finds one for each and looks
 * no further) or the hash (ifindex 0: nothing for the host to note, so nothing handed off).
 */
static __always_inline void hand_off(struct bpf_sock_addr *ctx, const struct hostlo_xlat *x, __u64 cg,
				     __u64 attach_id, __u32 ifindex, int percpu)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct hostlo_handoff h = {
		.cgroup_id = cg,
		.attach_id = attach_id,
		.target_addr = x->target_addr,
		.target_port = x->target_port,
		.xlat_flags = x->flags,
		.ifindex = ifindex,
	};

	if (percpu && handoff_put_slot(cookie, &h))
		return;
	if (ifindex)
		bpf_map_update_elem(&hostlo_handoff, &cookie, &h, BPF_ANY);
}

/*
 * Records what the app asked for, to show it again later. Failing here only loses that view. A TCP
 * connect its peer entry leads back to needs no record: a socket record costs an allocation (several
 * times the rest of the program), so it is made only where the rules cannot tell.
 */
static __always_inline void remember(struct bpf_sock_addr *ctx, const struct hostlo_rule_val *to, __u8 orig,
				     __u8 kind, __u64 cg, __u64 attach_id, int connected, int percpu)
{
	struct hostlo_xlat x = {
		.target_addr = to->addr,
		.target_port = to->port ? to->port : (__be16)ctx->user_port,
		.orig_port = (__be16)ctx->user_port,
		.orig = orig,
	};
	int tcp = kind == HOSTLO_KIND_CONNECT_TCP;
	int record = !connected || !tcp || orig == HOSTLO_ORIG_LO4_MAPPED || (to->flags & HOSTLO_RULE_RECORD);
	struct hostlo_sock *s = bpf_sk_storage_get(&hostlo_socks, ctx->sk, 0, record ? BPF_SK_STORAGE_GET_F_CREATE : 0);

	if (connected) {
		/* hostlo_sockops turns this into a host flow once the source address is known */
		int steered = tcp && (to->flags & HOSTLO_RULE_STEER);
		__u32 steer = steered ? host_flow(to, x.target_port, &x.flags) : 0;

		if (!s) {
			if (steered)
				hand_off(ctx, &x, cg, attach_id, steer, percpu);
			return;
		}
		s->attach_id = attach_id;
		s->peer = x;
		s->steer_ifindex = steer;
		s->cgroup_id = cg;
		return;
	}
	if (!s)
		return;
	s->attach_id = attach_id;
	for (int i = 0; i < HOSTLO_UDP_XLATS; i++)
		if (s->udp[i].target_addr == x.target_addr && s->udp[i].target_port == x.target_port &&
		    s->udp[i].orig_port == x.orig_port && s->udp[i].orig == x.orig)
			return;
	__u32 slot = s->next & (HOSTLO_UDP_XLATS - 1);

	s->udp[slot] = x;
	s->next = slot + 1;
}

/* Keeps clang from reusing a ctx field's address computed earlier: the verifier refuses a write
 * through a ctx pointer that is not ctx itself plus a constant. */
#define fresh_ctx(ctx) asm volatile("" : "+r"(ctx))

static __always_inline void set_target4(struct bpf_sock_addr *ctx, const struct hostlo_rule_val *to)
{
	fresh_ctx(ctx);
	ctx->user_ip4 = to->addr;
	if (to->port)
		ctx->user_port = to->port;
}

/* An IPv6 socket reaches the IPv4 target through its v4-mapped address. */
static __always_inline void set_target6(struct bpf_sock_addr *ctx, const struct hostlo_rule_val *to)
{
	fresh_ctx(ctx);
	ctx->user_ip6[0] = 0;
	ctx->user_ip6[1] = 0;
	ctx->user_ip6[2] = bpf_htonl(0xffff);
	ctx->user_ip6[3] = to->addr;
	if (to->port)
		ctx->user_port = to->port;
}

/* Attachments at two levels or more: some may nest, so a call can meet hostlo's program twice. */
static __always_inline int may_nest(void)
{
	__u32 zero = 0;
	struct hostlo_config *cfg = bpf_map_lookup_elem(&hostlo_config, &zero);

	return cfg && (cfg->level_mask & (cfg->level_mask - 1));
}

/*
 * A TCP connect straight to a rule's target, not through loopback: its getpeername is to show that
 * target, not the loopback port the peer entry leads back to, so this (rare) socket is recorded.
 */
static __always_inline void mark_direct(struct bpf_sock_addr *ctx, __be32 addr, __be16 port)
{
	struct hostlo_rule_val rule;
	__u64 attach_id, cookie;
	struct hostlo_sock *s;
	__u64 *last;
	__u32 slot;

	if (!find_peer(addr, port, &attach_id, &rule))
		return;
	cookie = bpf_get_socket_cookie(ctx);
	slot = (__u32)(cookie % HOSTLO_REDIRECT_SLOTS);
	last = may_nest() ? bpf_map_lookup_elem(&hostlo_redirected, &slot) : NULL;
	/* an earlier run of this call redirected it. (Should a preemption between the runs let another
	 * redirect take the slot, this socket is recorded as direct: its getpeername shows the target, its
	 * hand-off still reaches the host side.) */
	if (last && *last == cookie)
		return;
	s = bpf_sk_storage_get(&hostlo_socks, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!s)
		return;
	s->attach_id = attach_id;
	s->peer = (struct hostlo_xlat){ .target_addr = addr, .target_port = port, .orig = HOSTLO_ORIG_NONE };
}

/* For the later runs of this call (nested attachments): see hostlo_redirected. */
static __always_inline void note_redirect(struct bpf_sock_addr *ctx)
{
	__u64 cookie;
	__u32 slot;
	__u64 *last;

	if (!may_nest())
		return;
	cookie = bpf_get_socket_cookie(ctx);
	slot = (__u32)(cookie % HOSTLO_REDIRECT_SLOTS);
	last = bpf_map_lookup_elem(&hostlo_redirected, &slot);
	if (last)
		*last = cookie;
}

static __always_inline enum hostlo_counter redirect_counter(__u8 kind)
{
	return kind == HOSTLO_KIND_CONNECT_UDP ? HOSTLO_CNT_UDP_REDIRECTED : HOSTLO_CNT_CONNECT_REDIRECTED;
}

static __always_inline int redirect4(struct bpf_sock_addr *ctx, int connected, int percpu)
{
	__u8 kind = connect_kind(ctx);
	struct hostlo_rule_val rule, *to;
	__u64 attach_id, cg;

	if (!kind || (!connected && kind != HOSTLO_KIND_CONNECT_UDP))
		return SYS_PROCEED;
	if (ctx->user_ip4 != bpf_htonl(LOOPBACK4)) {
		if (kind == HOSTLO_KIND_CONNECT_TCP)
			mark_direct(ctx, ctx->user_ip4, (__be16)ctx->user_port);
		return SYS_PROCEED;
	}
	cg = bpf_get_current_cgroup_id();
	to = decide(ctx, kind, HOSTLO_ORIG_LO4, cg, &attach_id, &rule);
	if (!to)
		return SYS_PROCEED;
	if (kind == HOSTLO_KIND_CONNECT_TCP)
		note_redirect(ctx);
	remember(ctx, to, HOSTLO_ORIG_LO4, kind, cg, attach_id, connected, percpu);
	trace_row(ctx, cg, HOSTLO_EV_REDIRECTED, HOSTLO_ORIG_LO4, attach_id, to->addr, to->port);
	set_target4(ctx, to);
	count_in(cg, attach_id, redirect_counter(kind), percpu);
	return SYS_PROCEED;
}

static __always_inline int redirect6(struct bpf_sock_addr *ctx, int percpu)
{
	__u8 kind = connect_kind(ctx), orig;
	struct hostlo_rule_val rule, *to;
	__u64 attach_id, cg;

	if (!kind)
		return SYS_PROCEED;
	orig = loopback6(ctx);
	if (orig == HOSTLO_ORIG_NONE) {
		/* the IPv4 targets, reached through their v4-mapped addresses */
		if (kind == HOSTLO_KIND_CONNECT_TCP && !ctx->user_ip6[0] && !ctx->user_ip6[1] &&
		    ctx->user_ip6[2] == bpf_htonl(0xffff))
			mark_direct(ctx, ctx->user_ip6[3], (__be16)ctx->user_port);
		return SYS_PROCEED;
	}
	cg = bpf_get_current_cgroup_id();
	to = decide(ctx, kind, orig, cg, &attach_id, &rule);
	if (!to)
		return SYS_PROCEED;
	if (kind == HOSTLO_KIND_CONNECT_TCP)
		note_redirect(ctx);
	remember(ctx, to, orig, kind, cg, attach_id, 1, percpu);
	trace_row(ctx, cg, HOSTLO_EV_REDIRECTED, orig, attach_id, to->addr, to->port);
	set_target6(ctx, to);
	count_in(cg, attach_id, redirect_counter(kind), percpu);
	return SYS_PROCEED;
}

/*
 * connect4, connect6 and sockops come in two builds, of which the loader loads one: *_percpu hand
 * a steered connect to the host side through a per-CPU slot (needs Linux 5.19: compare-and-swap, and
 * another CPU's slot for a task that moved); the others through the hash, as any kernel can.
 */
SEC("cgroup/connect4")
int hostlo_connect4(struct bpf_sock_addr *ctx)
{
#ifdef HOSTLO_TEST_VARIANT
	/* test builds only: other instructions, same behaviour, as another hostlo build would pin */
	if (ctx->user_port == 0)
		return SYS_PROCEED;
#endif
	return redirect4(ctx, 1, 0);
}

SEC("cgroup/connect4")
int hostlo_connect4_percpu(struct bpf_sock_addr *ctx)
{
#ifdef HOSTLO_TEST_VARIANT
	if (ctx->user_port == 0)
		return SYS_PROCEED;
#endif
	return redirect4(ctx, 1, 1);
}

SEC("cgroup/connect6")
int hostlo_connect6(struct bpf_sock_addr *ctx)
{
	return redirect6(ctx, 0);
}

SEC("cgroup/connect6")
int hostlo_connect6_percpu(struct bpf_sock_addr *ctx)
{
	return redirect6(ctx, 1);
}

/* Unconnected UDP: sendto() a loopback address. */
SEC("cgroup/sendmsg4")
int hostlo_sendmsg4(struct bpf_sock_addr *ctx)
{
	return redirect4(ctx, 0, 0);
}

/*
 * No sendmsg6 program: the kernel refuses (ENOTSUPP) a sendmsg6 rewrite to a v4-mapped address, so an
 * unconnected datagram to [::1] cannot reach an IPv4 target and is left alone. One to
 * [::ffff:127.0.0.1] takes the kernel's IPv4 path and meets sendmsg4.
 */

/*
 * What the socket's record says of the address the kernel is about to show (a peer or a datagram's
 * source): the translation that produced it, one with orig HOSTLO_ORIG_NONE for a direct connect to
 * it, or NULL. Matching on the target keeps a re-connected or unrelated socket untouched.
 */
static __always_inline struct hostlo_xlat *reverse(struct hostlo_sock *s, __be32 addr, __be16 port, int udp)
{
	if (s->peer.target_port && s->peer.target_addr == addr && s->peer.target_port == port)
		return &s->peer;
	if (!udp)
		return NULL;
	for (int i = 0; i < HOSTLO_UDP_XLATS; i++)
		if (s->udp[i].orig && s->udp[i].target_addr == addr && s->udp[i].target_port == port)
			return &s->udp[i];
	return NULL;
}

/*
 * The loopback form and port the app asked for, for the address addr:port the kernel is about to
 * show; 0 to show it unchanged. The socket's record decides when it has one for that address; a TCP
 * socket without one was redirected by a rule its peer entry leads back to, or is none of hostlo's.
 */
static __always_inline __u8 asked(struct bpf_sock_addr *ctx, __be32 addr, __be16 port, int udp, __u8 unrecorded,
				  __be16 *orig_port, __u64 *attach_id)
{
	struct hostlo_sock *s = bpf_sk_storage_get(&hostlo_socks, ctx->sk, 0, 0);
	struct hostlo_xlat *x = s ? reverse(s, addr, port, udp) : NULL;
	struct hostlo_rule_val rule, *p;

	if (x) {
		*orig_port = x->orig_port;
		*attach_id = s->attach_id;
		return x->orig;
	}
	if (udp || ctx->type != SOCK_STREAM)
		return HOSTLO_ORIG_NONE;
	p = find_peer(addr, port, attach_id, &rule);
	if (!p)
		return HOSTLO_ORIG_NONE;
	*orig_port = p->port;
	return unrecorded;
}

static __always_inline int restore4(struct bpf_sock_addr *ctx, int udp, enum hostlo_counter c)
{
	__be16 orig_port;
	__u64 attach_id;

	if (asked(ctx, ctx->user_ip4, (__be16)ctx->user_port, udp, HOSTLO_ORIG_LO4, &orig_port, &attach_id) !=
	    HOSTLO_ORIG_LO4)
		return SYS_PROCEED;
	ctx->user_ip4 = bpf_htonl(LOOPBACK4);
	ctx->user_port = orig_port;
	count(bpf_get_current_cgroup_id(), attach_id, c);
	return SYS_PROCEED;
}

static __always_inline int restore6(struct bpf_sock_addr *ctx, int udp, enum hostlo_counter c)
{
	__be16 orig_port;
	__u64 attach_id;
	__u8 orig;

	if (ctx->user_ip6[0] || ctx->user_ip6[1] || ctx->user_ip6[2] != bpf_htonl(0xffff))
		return SYS_PROCEED;
	/* an IPv6 socket asked for ::ffff:127.0.0.1 is recorded: unrecorded, it asked for ::1 */
	orig = asked(ctx, ctx->user_ip6[3], (__be16)ctx->user_port, udp, HOSTLO_ORIG_LO6, &orig_port, &attach_id);
	if (orig == HOSTLO_ORIG_NONE)
		return SYS_PROCEED;
	/* LO4 here: a v4-mapped datagram that went through sendmsg4 on this IPv6 socket */
	if (orig == HOSTLO_ORIG_LO6) {
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = bpf_htonl(1);
	} else {
		ctx->user_ip6[3] = bpf_htonl(LOOPBACK4);
	}
	ctx->user_port = orig_port;
	count(bpf_get_current_cgroup_id(), attach_id, c);
	return SYS_PROCEED;
}

/* After a redirected connect, getpeername() shows the loopback address the app connected to. */
SEC("cgroup/getpeername4")
int hostlo_getpeername4(struct bpf_sock_addr *ctx)
{
	return restore4(ctx, 0, HOSTLO_CNT_PEER_RESTORED);
}

SEC("cgroup/getpeername6")
int hostlo_getpeername6(struct bpf_sock_addr *ctx)
{
	return restore6(ctx, 0, HOSTLO_CNT_PEER_RESTORED);
}

/* Replies to a redirected datagram come "from" the loopback address it was sent to. */
SEC("cgroup/recvmsg4")
int hostlo_recvmsg4(struct bpf_sock_addr *ctx)
{
	return restore4(ctx, 1, HOSTLO_CNT_UDP_REPLY_RESTORED);
}

SEC("cgroup/recvmsg6")
int hostlo_recvmsg6(struct bpf_sock_addr *ctx)
{
	return restore6(ctx, 1, HOSTLO_CNT_UDP_REPLY_RESTORED);
}

SEC("cgroup/bind4")
int hostlo_bind4(struct bpf_sock_addr *ctx)
{
	struct hostlo_rule_val rule, *to;
	__u64 attach_id, cg;

	if (ctx->user_ip4 != bpf_htonl(LOOPBACK4))
		return SYS_PROCEED;
	cg = bpf_get_current_cgroup_id();
	to = find_rule(HOSTLO_KIND_BIND, ctx->user_port, cg, &attach_id, &rule);
	if (!to)
		return SYS_PROCEED;
	ctx->user_ip4 = to->addr;
	count(cg, attach_id, HOSTLO_CNT_BIND_REWRITTEN);
	trace_row(ctx, cg, HOSTLO_EV_BIND_REWRITTEN, HOSTLO_ORIG_LO4, attach_id, to->addr, 0);
	return SYS_PROCEED;
}

/* A bind to ::1 on a rule's port becomes a bind to :: (the IPv6 wildcard). */
SEC("cgroup/bind6")
int hostlo_bind6(struct bpf_sock_addr *ctx)
{
	struct hostlo_rule_val rule, *to;
	__u64 attach_id, cg;

	if (loopback6(ctx) != HOSTLO_ORIG_LO6)
		return SYS_PROCEED;
	cg = bpf_get_current_cgroup_id();
	to = find_rule(HOSTLO_KIND_BIND, ctx->user_port, cg, &attach_id, &rule);
	if (!to)
		return SYS_PROCEED;
	ctx->user_ip6[3] = 0;
	count(cg, attach_id, HOSTLO_CNT_BIND_REWRITTEN);
	trace_row(ctx, cg, HOSTLO_EV_BIND_REWRITTEN, HOSTLO_ORIG_LO6, attach_id, 0, 0);
	return SYS_PROCEED;
}

/*
 * Host side, two programs that exist only while some rule steers.
 *
 * hostlo_sockops (on the cgroup2 root, so it sees every TCP socket of the host and its containers):
 * - a connection hostlo redirected with a steering rule gets a hostlo_flows entry when it starts
 *   (its source address and port are known only then) and loses it when it closes;
 * - a host socket that starts listening on 127.0.0.1, on a port some steering rule names,
 *   in the host's own network namespace, is put in hostlo_listeners (so a restarted service is too).
 */
static __always_inline void flow_of(struct bpf_sock_ops *ctx, struct hostlo_flow *f)
{
	f->saddr = ctx->local_ip4;
	f->daddr = ctx->remote_ip4;
	f->sport = bpf_htons((__u16)ctx->local_port);
	/* remote_port holds the network-order port in its upper half: ntohl gives it in host order */
	f->dport = bpf_htons((__u16)bpf_ntohl(ctx->remote_port));
}

/*
 * Takes the hand-off a slot holds for this cookie: 1, or 0 when it holds none. The slot is freed
 * either way (only this socket's connect wrote it); one whose check fails was overwritten: nothing.
 */
static __always_inline int handoff_take_slot(struct hostlo_handoff_slot *s, __u64 cookie, struct hostlo_handoff *h)
{
	__u64 since;
	__u32 check;

	if (!s || s->cookie != cookie)
		return 0;
	since = s->since;
	*h = s->h;
	check = s->check;
	if (cas64(&s->cookie, cookie, 0) != cookie)
		return 0; /* reclaimed meanwhile */
	return check == handoff_check(cookie, since, h);
}

struct handoff_search {
	__u64 cookie;
	__u32 key;
	int found;
	struct hostlo_handoff h;
};

/* bpf_loop callback over the CPUs: stops at the slot that holds the cookie, or past the last CPU. */
static long handoff_search_cpu(__u32 cpu, void *data)
{
	struct handoff_search *q = data;
	struct hostlo_handoff_slot *s = bpf_map_lookup_percpu_elem(&hostlo_handoff_slots, &q->key, cpu);

	if (!s)
		return 1;
	q->found = handoff_take_slot(s, q->cookie, &q->h);
	return q->found;
}

#define HANDOFF_MAX_CPUS 8192 /* Debian's NR_CPUS */

/*
 * A connection to a steering rule's target address and port: the only ones a hand-off can be for.
 * (More target addresses than the config holds: every address may be one.)
 */
static __always_inline int steered_target(struct bpf_sock_ops *ctx)
{
	__u16 port = (__u16)bpf_ntohl(ctx->remote_port);

	return peer_target(ctx->remote_ip4) && bpf_map_lookup_elem(&hostlo_steer_ports, &port);
}

/*
 * What connect left for the host side: the socket's record when it steers, else the hand-off, taken
 * once; 0 for nothing. (A socket recorded as a direct connect can have a hand-off too: see mark_direct.)
 * percpu: this CPU's slot first, then the hash (a slot that was taken), then every CPU's slot (the task
 * moved to another CPU between connect and here) but only for a connection to a steered target.
 */
static __always_inline int flow_handed(struct bpf_sock_ops *ctx, struct hostlo_handoff *h, int percpu)
{
	struct hostlo_sock *s = bpf_sk_storage_get(&hostlo_socks, ctx->sk, 0, 0);
	struct hostlo_handoff *p;
	__u64 cookie;
	__u32 key;

	if (s && s->steer_ifindex) {
		*h = (struct hostlo_handoff){ .cgroup_id = s->cgroup_id, .attach_id = s->attach_id,
					      .target_addr = s->peer.target_addr, .target_port = s->peer.target_port,
					      .xlat_flags = s->peer.flags, .ifindex = s->steer_ifindex };
		return 1;
	}
	cookie = bpf_get_socket_cookie(ctx);
	key = (__u32)(cookie % HOSTLO_HANDOFF_SLOTS);
	if (percpu && handoff_take_slot(bpf_map_lookup_elem(&hostlo_handoff_slots, &key), cookie, h))
		return h->ifindex != 0;
	p = bpf_map_lookup_elem(&hostlo_handoff, &cookie);
	if (p) {
		*h = *p;
		bpf_map_delete_elem(&hostlo_handoff, &cookie);
		return 1;
	}
	if (percpu && steered_target(ctx)) {
		struct handoff_search q = { .cookie = cookie, .key = key };

		bpf_loop(HANDOFF_MAX_CPUS, handoff_search_cpu, &q, 0);
		if (q.found) {
			*h = q.h;
			return h->ifindex != 0;
		}
	}
	return 0;
}

static __always_inline void flow_started(struct bpf_sock_ops *ctx, int percpu)
{
	struct hostlo_handoff h;
	struct hostlo_flow f = {};

	if (!ctx->sk || !flow_handed(ctx, &h, percpu))
		return;
	flow_of(ctx, &f);
	/* the socket may have been connected elsewhere since: only the redirected peer is steered */
	if (f.daddr != h.target_addr || f.dport != h.target_port)
		return;
	struct hostlo_flow_val v = { .cgroup_id = h.cgroup_id, .attach_id = h.attach_id, .ifindex = h.ifindex,
				     .flags = h.xlat_flags & HOSTLO_XLAT_LOCAL_PEER ? HOSTLO_FLOW_LOCAL_PEER : 0 };

	if (bpf_map_update_elem(&hostlo_flows, &f, &v, BPF_ANY) == 0)
		bpf_sock_ops_cb_flags_set(ctx, ctx->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* Any listen() on the machine ends every CPU's "no local listener" answers (see listen_memo). */
static __always_inline void listen_counted(void)
{
	__u32 zero = 0;
	__u64 *epoch = bpf_map_lookup_elem(&hostlo_listen_epoch, &zero);

	if (epoch)
		__sync_fetch_and_add(epoch, 1);
}

static __always_inline void listener_started(struct bpf_sock_ops *ctx)
{
	struct hostlo_listener_key key = { .port = (__u16)ctx->local_port };
	__u32 zero = 0;
	struct hostlo_config *cfg = bpf_map_lookup_elem(&hostlo_config, &zero);

	/* IPv4 only: the steered flows are IPv4, and the kernel makes a socket bound to [::1] v6-only */
	if (ctx->family != 2 /* AF_INET */ || ctx->local_ip4 != bpf_htonl(LOOPBACK4))
		return;
	if (!cfg || !cfg->host_netns_cookie || bpf_get_netns_cookie(ctx) != cfg->host_netns_cookie)
		return; /* a container's own loopback listener: never the host's */
	if (!bpf_map_lookup_elem(&hostlo_steer_ports, &key.port))
		return;
	bpf_sock_hash_update(ctx, &hostlo_listeners, &key, BPF_ANY);
}

/* The flow an accepted socket belongs to, as its client noted it. One field at a time: the verifier
 * refuses the 8-byte load the compiler would make of remote_ip4 and local_ip4 side by side. */
static __always_inline void accepted_of(struct bpf_sock_ops *ctx, struct hostlo_flow *f)
{
	f->saddr = read_once(&ctx->remote_ip4);
	f->daddr = read_once(&ctx->local_ip4);
	f->sport = bpf_htons((__u16)bpf_ntohl(ctx->remote_port));
	f->dport = bpf_htons((__u16)ctx->local_port);
}

static __always_inline int in_host_netns(void *ctx)
{
	__u32 zero = 0;
	struct hostlo_config *cfg = bpf_map_lookup_elem(&hostlo_config, &zero);

	return cfg && cfg->host_netns_cookie && bpf_get_netns_cookie(ctx) == cfg->host_netns_cookie;
}

/*
 * A host service's socket accepted a flow that is to show a loopback client: the flow is marked
 * accepted and now lives as long as this socket (its close callback removes it), so the
 * getpeername4 / getsockname4 programs below find it by the socket's 4-tuple however late the
 * service asks. No allocation: the flow's entry is the mark. Only in the host's network namespace;
 * only sockets whose local address is a rule's target can be one (the rest pay no lookup).
 */
static __always_inline void peer_accepted(struct bpf_sock_ops *ctx)
{
	struct hostlo_flow f;
	struct hostlo_flow_val *v;

	if (!peer_target(ctx->local_ip4))
		return;
	accepted_of(ctx, &f);
	v = bpf_map_lookup_elem(&hostlo_flows, &f);
	if (!v || !(v->flags & HOSTLO_FLOW_LOCAL_PEER) || !in_host_netns(ctx))
		return;
	/*
	 * A note is accepted once. One already accepted was left by an earlier socket of this 4-tuple (its
	 * close not seen while the programs were unlinked, or the mark written into an entry another flow
	 * reused under us): removed, so that this socket, and any later one, shows its real address.
	 */
	if (v->flags & HOSTLO_FLOW_ACCEPTED) {
		bpf_map_delete_elem(&hostlo_flows, &f);
		return;
	}
	v->flags |= HOSTLO_FLOW_ACCEPTED;
	bpf_sock_ops_cb_flags_set(ctx, ctx->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

#define TCP_CLOSE_ 7

/*
 * A socket with a flow closed: its client, unless a host service accepted the flow (that socket
 * removes it when it closes), or the host service's socket. The client's form is tried first; a
 * socket of neither finds nothing. The accepted socket removes its flow before the kernel unhashes
 * it, so no new connection of the same 4-tuple can have been accepted meanwhile.
 */
static __always_inline void flow_closed(struct bpf_sock_ops *ctx)
{
	struct hostlo_flow f = {};
	struct hostlo_flow_val *v;

	flow_of(ctx, &f);
	v = bpf_map_lookup_elem(&hostlo_flows, &f);
	if (v) {
		if (!(v->flags & HOSTLO_FLOW_ACCEPTED))
			bpf_map_delete_elem(&hostlo_flows, &f);
		return;
	}
	accepted_of(ctx, &f);
	v = bpf_map_lookup_elem(&hostlo_flows, &f);
	if (v && (v->flags & HOSTLO_FLOW_ACCEPTED))
		bpf_map_delete_elem(&hostlo_flows, &f);
}

static __always_inline int sockops(struct bpf_sock_ops *ctx, int percpu)
{
	switch (ctx->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		flow_started(ctx, percpu);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (ctx->args[1] == TCP_CLOSE_)
			flow_closed(ctx);
		break;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		listen_counted();
		listener_started(ctx);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		peer_accepted(ctx);
		break;
	}
	return 1;
}

SEC("sockops")
int hostlo_sockops(struct bpf_sock_ops *ctx)
{
	return sockops(ctx, 0);
}

SEC("sockops")
int hostlo_sockops_percpu(struct bpf_sock_ops *ctx)
{
	return sockops(ctx, 1);
}

/*
 * hostlo_lookup (on the host's network namespace): a SYN for gateway:port that belongs to a flow
 * above, arriving on the interface that holds the gateway address, goes to the host's listener on
 * 127.0.0.1:port. Anything else, or no such listener: the kernel's usual lookup.
 */
SEC("sk_lookup")
int hostlo_lookup(struct bpf_sk_lookup *ctx)
{
	struct hostlo_flow f = {};
	struct hostlo_flow_val *v;
	struct hostlo_listener_key key = {};
	struct bpf_sock *sk;
	long err;

	if (ctx->family != 2 /* AF_INET */ || ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	f.saddr = ctx->remote_ip4;
	f.daddr = ctx->local_ip4;
	f.sport = ctx->remote_port;
	f.dport = bpf_htons((__u16)ctx->local_port);
	v = bpf_map_lookup_elem(&hostlo_flows, &f);
	if (!v || v->ifindex != ctx->ingress_ifindex)
		return SK_PASS;
	key.port = (__u16)ctx->local_port;
	sk = bpf_map_lookup_elem(&hostlo_listeners, &key);
	if (!sk)
		return SK_PASS;
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (err == 0) {
		v->flags |= HOSTLO_FLOW_STEERED;
		count_row(v->cgroup_id, v->attach_id, HOSTLO_CNT_HOST_STEERED);
	}
	return SK_PASS;
}

/*
 * Host side, two more programs on the cgroup2 root, linked only while some steering rule shows a
 * loopback client: for a socket whose flow peer_accepted() marked, accept() and getpeername() give
 * 127.0.0.1 and the client's own port, and getsockname() gives 127.0.0.1:PORT where the connection
 * was steered to a loopback listener. Any other socket: nothing changed, and a lookup only when
 * its local address is a rule's target.
 */
/* The socket's peer port, network order. A 4-byte load: the field was that wide before Linux 5.18,
 * which still accepts the load, so one build loads everywhere. */
static __always_inline __be16 sock_dport(const struct bpf_sock *sk)
{
	return (__be16)*(const volatile __u32 *)&sk->dst_port;
}

struct host_peer {
	__u64 cgroup_id;
	__u64 attach_id;
	__u32 *flags;                    /* the flow's, or the older build's mark's */
	__u32 steered, shown;            /* the bits of *flags that say so */
};

static __always_inline int host_peer(struct bpf_sock_addr *ctx, struct host_peer *h)
{
	struct bpf_sock *sk = ctx->sk;
	struct hostlo_peer *p;
	struct hostlo_flow f;
	struct hostlo_flow_val *v;

	if (!sk)
		return 0;
	if (peer_target(sk->src_ip4)) {
		f.saddr = sk->dst_ip4;
		f.daddr = sk->src_ip4;
		f.sport = sock_dport(sk);
		f.dport = bpf_htons((__u16)sk->src_port);
		v = bpf_map_lookup_elem(&hostlo_flows, &f);
		if (v && (v->flags & HOSTLO_FLOW_ACCEPTED)) {
			*h = (struct host_peer){ .cgroup_id = v->cgroup_id, .attach_id = v->attach_id, .flags = &v->flags,
						 .steered = HOSTLO_FLOW_STEERED, .shown = HOSTLO_FLOW_SHOWN };
			return 1;
		}
	}
	p = bpf_sk_storage_get(&hostlo_peers, sk, 0, 0);
	if (!p)
		return 0;
	*h = (struct host_peer){ .cgroup_id = p->cgroup_id, .attach_id = p->attach_id, .flags = &p->flags,
				 .steered = HOSTLO_PEER_STEERED, .shown = HOSTLO_PEER_SHOWN };
	return 1;
}

SEC("cgroup/getpeername4")
int hostlo_host_peer4(struct bpf_sock_addr *ctx)
{
	struct host_peer h;
	__be32 real = ctx->user_ip4;

	if (!host_peer(ctx, &h))
		return SYS_PROCEED;
	ctx->user_ip4 = bpf_htonl(LOOPBACK4);
	if (*h.flags & h.shown)
		return SYS_PROCEED;
	*h.flags |= h.shown;
	count_row(h.cgroup_id, h.attach_id, HOSTLO_CNT_HOST_PEER_LOCAL);
	trace_row(ctx, h.cgroup_id, HOSTLO_EV_PEER_LOCAL, HOSTLO_ORIG_LO4, h.attach_id, real, (__be16)ctx->user_port);
	return SYS_PROCEED;
}

SEC("cgroup/getsockname4")
int hostlo_host_name4(struct bpf_sock_addr *ctx)
{
	struct host_peer h;

	if (host_peer(ctx, &h) && (*h.flags & h.steered))
		ctx->user_ip4 = bpf_htonl(LOOPBACK4);
	return SYS_PROCEED;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
