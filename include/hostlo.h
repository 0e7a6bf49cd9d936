/* hostlo.h: the contract between the BPF programs and the loader (map keys, values, limits). */
#ifndef HOSTLO_H
#define HOSTLO_H

#include <linux/types.h>

/* Bumped whenever a map's key or value layout changes: a loader refuses pinned maps of another ABI. */
#define HOSTLO_ABI_VERSION 1

/* Deepest cgroup level an attachment can sit at (level 0 is the cgroup2 root, never attached). */
#define HOSTLO_MAX_LEVEL 63

#define HOSTLO_MAX_CGROUPS 16384         /* attached cgroups */
#define HOSTLO_MAX_LEAVES 65536          /* counter rows (caller's leaf cgroup x attached cgroup) */
#define HOSTLO_MAX_RULE_ENTRIES 196608   /* per attached cgroup: every port of every kind */

/* What a rule entry matches. */
enum hostlo_kind {
	HOSTLO_KIND_CONNECT_TCP = 1,     /* connect() of a SOCK_STREAM socket to loopback */
	HOSTLO_KIND_BIND = 2,            /* bind() to loopback, any socket type */
};

/* Inner rules map key: one entry per port (ranges are expanded, so a lookup is one hash probe). */
struct hostlo_rule_key {
	__u16 port;                      /* host order */
	__u8 kind;                       /* enum hostlo_kind */
	__u8 pad;                        /* zero */
};

struct hostlo_rule_val {
	__be32 addr;                     /* network order; for HOSTLO_KIND_BIND the IPv4 bind address */
	__be16 port;                     /* network order; 0 keeps the port the caller asked for */
	__u16 flags;                     /* zero; reserved */
};

/* Counter indices; each row of hostlo_stats holds HOSTLO_NR_COUNTERS slots, some reserved. */
enum hostlo_counter {
	HOSTLO_CNT_CONNECT_REDIRECTED = 0,
	HOSTLO_CNT_BIND_REWRITTEN = 1,
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

/* hostlo_config[0] */
struct hostlo_config {
	__u64 level_mask;                /* bit L set: some attached cgroup sits at level L */
	__u32 max_level;                 /* highest L set in level_mask, 0 when nothing is attached */
	__u32 abi_version;               /* HOSTLO_ABI_VERSION of the loader that created the maps */
};

#endif /* HOSTLO_H */
