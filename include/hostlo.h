/* hostlo.h: the contract between the BPF programs and the loader (map keys, values, limits). */
#ifndef HOSTLO_H
#define HOSTLO_H

#include <linux/types.h>

/* Bumped whenever a map's key or value layout changes: a loader refuses pinned maps of another ABI. */
#define HOSTLO_ABI_VERSION 13

/* Deepest cgroup level an attachment can sit at (level 0 is the cgroup2 root, never attached). */
#define HOSTLO_MAX_LEVEL 63

#define HOSTLO_MAX_CGROUPS 16384         /* attached cgroups */
#define HOSTLO_MAX_LEAVES 65536          /* counter rows (caller's leaf cgroup x attached cgroup) */
#define HOSTLO_MAX_RULE_ENTRIES 196608   /* per attached cgroup: every port of every kind */
#define HOSTLO_MAX_ALL_RULES 524288      /* rule entries of all attached cgroups together: room for
                                            a full cgroup's swap (old and new); a read of them all
                                            scans this many buckets (about 1 ms) */
#define HOSTLO_MAX_FLOWS 65536           /* steered connections alive at once (host side) */
#define HOSTLO_MAX_LISTENERS 4096        /* host loopback listeners held for steering */

/* What a rule entry matches. */
enum hostlo_kind {
	HOSTLO_KIND_CONNECT_TCP = 1,     /* connect() of a SOCK_STREAM socket to loopback */
	HOSTLO_KIND_BIND = 2,            /* bind() to loopback, any socket type */
	HOSTLO_KIND_CONNECT_UDP = 3,     /* connect() or sendmsg() of a SOCK_DGRAM socket to loopback */
	HOSTLO_KIND_PEER_TCP = 4,        /* the reverse of TCP connect entries, keyed by the target's port:
	                                    val.addr the target, val.port the loopback port asked for
	                                    (network order). getpeername reads it; connect marks a direct
	                                    connect to such a target (see struct hostlo_sock) */
};

/* hostlo_rule_val.flags */
#define HOSTLO_RULE_ALWAYS 0x1           /* redirect even when the caller's netns has a local listener */
#define HOSTLO_RULE_STEER 0x2            /* TCP to the gateway: the host may hand it to its loopback listener */
#define HOSTLO_RULE_REAL_PEER 0x4        /* HOSTLO_RULE_STEER: the host service sees the container's address,
                                            not 127.0.0.1 (--real-peer) */
#define HOSTLO_RULE_NOHOST 0x8           /* TCP to the gateway, on a kernel without the host side: report only */
#define HOSTLO_RULE_RECORD 0x10          /* TCP: another entry's reverse has this target port, so the
                                            peer entry cannot tell them apart: each socket is recorded */

/*
 * hostlo_rules key: one entry per port of an attached cgroup (ranges are expanded, so a lookup is one
 * hash probe), and per target port of its TCP rules one HOSTLO_KIND_PEER_TCP entry. A TCP connect
 * redirected by a rule whose peer entry leads back to it keeps no state of its own: getpeername finds
 * the loopback port from the peer entry. Peer entries of replaced rules are carried into the new
 * generation (unless a new rule takes their target port), so connections made earlier still show
 * what they asked for. Every rule set written gets a new generation; hostlo_attached names the live one. A new
 * rule set is written under its own generation and made live by one update of hostlo_attached, so a
 * concurrent call sees the old rules or the new ones, whole. Entries of other generations are never
 * read; a later hostlo command removes them.
 */
struct hostlo_rule_key {
	__u64 attach_id;                 /* the attached cgroup's id */
	__u32 gen;                       /* the rule set's generation */
	__u16 port;                      /* host order */
	__u8 kind;                       /* enum hostlo_kind */
	__u8 pad;                        /* zero */
};

/* hostlo_attached value, keyed by the attached cgroup's id. */
struct hostlo_attached {
	__u32 gen;                       /* the live generation of its rules */
	__u32 entries;                   /* its entries (peer entries not counted) */
	__u32 stale_gen;                 /* the generation it replaced, not yet removed (with stale > 0) */
	__u32 stale;                     /* that generation's entries */
	__u8 level;                      /* its depth in the cgroup2 tree */
	__u8 steers;                     /* some rule has HOSTLO_RULE_STEER */
	__u8 origin;                     /* who set the rules (user space only): 0 the command line, as
	                                    builds before this field wrote it; 1 labels, 2 config (watch) */
	__u8 pad[5];
};

struct hostlo_rule_val {
	__be32 addr;                     /* network order; for HOSTLO_KIND_BIND the IPv4 bind address */
	__be16 port;                     /* network order; 0 keeps the port the caller asked for */
	__u16 flags;                     /* HOSTLO_RULE_* */
	__u32 host_ifindex;              /* HOSTLO_RULE_STEER: the host interface that holds addr */
};

/* Counter indices; each row of hostlo_stats holds HOSTLO_NR_COUNTERS slots, some reserved. */
enum hostlo_counter {
	HOSTLO_CNT_CONNECT_REDIRECTED = 0,
	HOSTLO_CNT_BIND_REWRITTEN = 1,
	HOSTLO_CNT_UDP_REDIRECTED = 2,   /* UDP connect() or sendmsg() redirected */
	HOSTLO_CNT_UDP_REPLY_RESTORED = 3, /* a datagram's source shown as the loopback address asked for */
	HOSTLO_CNT_CONNECT_KEPT_LOCAL = 4, /* matched a rule, but a local listener has the port */
	HOSTLO_CNT_PEER_RESTORED = 5,    /* getpeername() shown the loopback address asked for */
	HOSTLO_CNT_HOST_STEERED = 6,     /* a redirected connection accepted by a host loopback listener */
	HOSTLO_CNT_HOST_PEER_LOCAL = 7,  /* a host service shown 127.0.0.1 as the client of a redirected connection */
	HOSTLO_CNT_USED,                 /* counters in use by this ABI */
	HOSTLO_NR_COUNTERS = 16,         /* slots per row, so counters can be added without a new ABI */
};

/* hostlo_stats key: the caller's own (leaf) cgroup, and the attached ancestor whose rules matched. */
struct hostlo_stats_key {
	__u64 cgroup_id;
	__u64 attach_id;
};

struct hostlo_stats_val {
	__u64 count[HOSTLO_NR_COUNTERS];
};

/*
 * hostlo_counts: the rows of an attached cgroup's processes, kept in that cgroup's storage (per CPU),
 * which its programs reach without a lookup: its own processes' (cgroup_id == attach_id, a container
 * attached by itself) and those of the first HOSTLO_BELOW_ROWS cgroups below it that count on this CPU
 * (the containers of a pod attached as a whole; their connects, counted by the *_percpu programs),
 * each claimed by compare-and-swap of its id and kept until the cgroup is attached afresh (after a
 * detach), which zeroes the storage. Counted there only while owner is the
 * cgroup's id: the loader zeroes it before a new attachment's rules are live and writes owner once its
 * programs are linked; until then, and for every other row (more cgroups below it, counters past
 * HOSTLO_BELOW_COUNTERS, the host side's counters), hostlo_stats. The kernel keeps a cgroup's storage
 * until the cgroup goes: a detached cgroup's is not read.
 */
#define HOSTLO_BELOW_ROWS 4
#define HOSTLO_BELOW_COUNTERS 8
struct hostlo_below_row {
	__u64 cgroup_id;                 /* 0: free */
	__u64 count[HOSTLO_BELOW_COUNTERS];
};

struct hostlo_counts {
	struct hostlo_stats_val v;
	struct hostlo_below_row below[HOSTLO_BELOW_ROWS];
	__u64 owner;                     /* last: the loader's write of a CPU's copy reaches it after the
	                                    zeroed counts, so no program counts into a row not yet zeroed */
};

/* What the application asked for, so it can be shown again (getpeername, recvmsg). */
enum hostlo_orig {
	HOSTLO_ORIG_NONE = 0,
	HOSTLO_ORIG_LO4 = 1,             /* 127.0.0.1 on an AF_INET socket */
	HOSTLO_ORIG_LO6 = 2,             /* ::1 */
	HOSTLO_ORIG_LO4_MAPPED = 3,      /* ::ffff:127.0.0.1 */
};

struct hostlo_xlat {
	__be32 target_addr;              /* network order: where the socket really talks to */
	__be16 target_port;              /* network order */
	__be16 orig_port;                /* network order: the loopback port the app asked for */
	__u8 orig;                       /* enum hostlo_orig */
	__u8 flags;                      /* HOSTLO_XLAT_* */
	__u8 pad[2];
};

#define HOSTLO_XLAT_LOCAL_PEER 0x1       /* the host service is to see the client as 127.0.0.1 */

#define HOSTLO_UDP_XLATS 4               /* per socket: reverse entries for unconnected UDP */

/*
 * Per-socket state in socket storage: the kernel frees it with the socket. Only what the rules cannot
 * tell: UDP sockets; TCP sockets whose rule has HOSTLO_RULE_RECORD or that asked for
 * ::ffff:127.0.0.1; and TCP sockets connected directly to a rule's target (peer.orig
 * HOSTLO_ORIG_NONE), which are to see the real peer.
 */
struct hostlo_sock {
	__u64 attach_id;                 /* the attached cgroup whose rule redirected this socket */
	struct hostlo_xlat peer;         /* the connect() redirect, for getpeername and connected UDP */
	struct hostlo_xlat udp[HOSTLO_UDP_XLATS]; /* sendmsg() redirects, replaced oldest first */
	__u32 next;                      /* next udp[] slot to replace */
	__u32 steer_ifindex;             /* peer came from a HOSTLO_RULE_STEER rule: its host interface */
	__u64 cgroup_id;                 /* the connecting process's own cgroup, for the host's counter */
};

/*
 * Host side. A redirected TCP connection that may be steered, as the host sees its SYN: the
 * container's source, the gateway and port. Written when the connection starts, removed when it
 * closes; the host's sk_lookup program hands only these to a loopback listener. One that is to show
 * a loopback client and that a host service accepted (HOSTLO_FLOW_ACCEPTED) is that service's socket's
 * mark: it stays until that socket closes, however long the client has been gone.
 */
struct hostlo_flow {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
};

struct hostlo_flow_val {
	__u64 cgroup_id;                 /* counter row: the container's cgroup ... */
	__u64 attach_id;                 /* ... and the attachment whose rule redirected it */
	__u32 ifindex;                   /* the SYN must arrive on this host interface */
	__u32 flags;                     /* HOSTLO_FLOW_* (builds before them wrote 0 here) */
};

#define HOSTLO_FLOW_LOCAL_PEER 0x1       /* the host service accepting it sees the client as 127.0.0.1 */
#define HOSTLO_FLOW_STEERED 0x2          /* hostlo_lookup handed it to a host loopback listener */
#define HOSTLO_FLOW_ACCEPTED 0x4         /* a host service accepted it: its socket removes the flow */
#define HOSTLO_FLOW_SHOWN 0x8            /* counted and traced (once per connection) */

/*
 * hostlo_peers value: the mark in socket storage that builds before HOSTLO_FLOW_ACCEPTED gave a host
 * service's accepted socket whose client is a flow with HOSTLO_FLOW_LOCAL_PEER (a socket storage
 * allocated per connection). Now only read, so that connections accepted before an in-place upgrade
 * keep showing 127.0.0.1 and the client's port; with HOSTLO_PEER_STEERED getsockname() 127.0.0.1 too.
 */
struct hostlo_peer {
	__u64 cgroup_id;                 /* the container's cgroup (counter row, trace) ... */
	__u64 attach_id;                 /* ... and the attachment whose rule redirected it */
	__u32 flags;                     /* HOSTLO_PEER_* */
	__u32 pad;
};

#define HOSTLO_PEER_STEERED 0x1          /* accepted through a host loopback listener */
#define HOSTLO_PEER_SHOWN 0x2            /* counted and traced (once per connection) */

/*
 * hostlo_handoff value, keyed by socket cookie: a redirected TCP connect with no socket storage that
 * the host side is to note as a flow. Written by connect, taken by hostlo_sockops when the connection
 * starts (microseconds later, same syscall); an LRU, so a connect that failed before then ages out.
 */
struct hostlo_handoff {
	__u64 cgroup_id;
	__u64 attach_id;
	__be32 target_addr;
	__be16 target_port;
	__u8 xlat_flags;                 /* HOSTLO_XLAT_* */
	__u8 pad;
	__u32 ifindex;
	__u32 pad2;
};

#define HOSTLO_MAX_HANDOFFS 4096

/*
 * hostlo_handoff_slots, per CPU (Linux 5.19+, where a program can read another CPU's slot): the same
 * hand-off without a hash update. connect claims the slot cookie % HOSTLO_HANDOFF_SLOTS of its CPU by
 * compare-and-swap of the cookie (0: free); a slot taken by another connect sends it to hostlo_handoff
 * instead. hostlo_sockops takes it back on its CPU, or on any CPU when the task moved between the two.
 * A claim that was never taken (the connect failed before the connection started) is reclaimed after
 * HOSTLO_HANDOFF_STALE_NS: long, as a TCP_FASTOPEN_CONNECT socket starts its connection only at its
 * first write (a stale claim only sends the hand-offs of its slot to the hash meanwhile).
 */
struct hostlo_handoff_slot {
	__u64 cookie;                    /* the socket's cookie, 0 while free */
	__u64 since;                     /* bpf_ktime_get_coarse_ns() of the claim */
	struct hostlo_handoff h;
	__u32 check;                     /* a hash of cookie, since and h by their writer: a slot whose
	                                    writer has not finished is neither taken nor reclaimed */
	__u32 pad;
};

#define HOSTLO_HANDOFF_SLOTS 16
#define HOSTLO_HANDOFF_STALE_NS (600ULL * 1000000000)
#define HOSTLO_REDIRECT_SLOTS 16          /* hostlo_redirected: per CPU */

/* hostlo_listeners key: a host socket listening on 127.0.0.1:port. */
struct hostlo_listener_key {
	__u16 port;                      /* host order */
	__u16 pad;                       /* zero */
};

/* hostlo_config[0] */
struct hostlo_config {
	__u64 level_mask;                /* bit L set: some attached cgroup sits at level L */
	__u32 max_level;                 /* highest L set in level_mask, 0 when nothing is attached */
	__u32 abi_version;               /* HOSTLO_ABI_VERSION of the loader that created the maps */
	__u64 prog_build;                /* hash of the BPF object whose programs are pinned and linked */
	__u32 tracers;                   /* running `hostlo trace`s: events are made only while it is > 0 */
	__u32 last_gen;                  /* the last rule-set generation handed out */
	__u64 host_netns_cookie;         /* the host's network namespace: only its listeners are steered to */
	__u64 attach_pending;            /* a cgroup whose links an attach is creating: whole or removed next */
	__u32 host_pending;              /* the host side may not match the rules: the next command syncs it */
	__u32 npeer_addrs;               /* target addresses of every TCP peer entry; more than
	                                    HOSTLO_PEER_ADDRS: peer_addrs is not used, every address is checked */
	__be32 peer_addrs[8];            /* a connect or getpeername to any other address is none of hostlo's */
	__u32 rules_version;             /* changed around every change of which rules apply (attached cgroups,
	                                    generations, levels): odd while one is under way. The programs'
	                                    per-CPU memo of rules found holds only for the version it saw */
	__u32 listen_memo;               /* 1 while hostlo_sockops is linked on the cgroup2 root, so every
	                                    listen() on the machine advances hostlo_listen_epoch: a CPU may
	                                    then keep "no local listener" answers until the next one. Set
	                                    and cleared inside a rules_version change */
};
#define HOSTLO_PEER_ADDRS 8

#define HOSTLO_EVENTS_BYTES (256 * 1024) /* the trace ring buffer */

/* What a traced call was. */
enum hostlo_event_kind {
	HOSTLO_EV_REDIRECTED = 1,        /* connect (tcp or udp) or datagram sent to the target instead */
	HOSTLO_EV_KEPT_LOCAL = 2,        /* matched a rule, left alone: a local listener has the port */
	HOSTLO_EV_BIND_REWRITTEN = 3,    /* bind to loopback became a bind to the rule's address */
	HOSTLO_EV_PEER_LOCAL = 4,        /* a host service was shown 127.0.0.1 as a redirected client: pid and
	                                    comm are the service's, cgroup_id the container's; to_addr and
	                                    to_port the client's real address, orig_port its port */
};

/* One traced rewrite, from the ring buffer hostlo_events. */
struct hostlo_event {
	__u64 ts_ns;                     /* bpf_ktime_get_ns() */
	__u64 cgroup_id;                 /* the caller's own cgroup */
	__u64 attach_id;                 /* the attached cgroup whose rule matched */
	__u32 pid;                       /* the caller's process (tgid), in the initial pid namespace */
	__u8 kind;                       /* enum hostlo_event_kind */
	__u8 proto;                      /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 orig;                       /* enum hostlo_orig: the loopback form asked for */
	__u8 family6;                    /* 1 when the socket is AF_INET6 */
	__be32 to_addr;                  /* network order: the target (or bind address) */
	__be16 orig_port;                /* network order */
	__be16 to_port;                  /* network order */
	char comm[16];
};

#endif /* HOSTLO_H */
