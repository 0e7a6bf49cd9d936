/* links.h: the pinned bpf_links that attach hostlo's programs to cgroups, named "<cgroup id>-<hook>". */
#ifndef HOSTLO_LINKS_H
#define HOSTLO_LINKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>

struct state;

void link_path(const struct state *st, uint64_t id, int hook, char *buf, size_t len);
/* The pin of a host-side program's link (links/host-<name>). */
void host_link_path(const struct state *st, int host_hook, char *buf, size_t len);
/* A link pin's name: its cgroup id and hook; false for any other name. */
bool link_pin_parse(const char *name, uint64_t *id, int *hook);
/* The id of the program fd refers to, 0 when unknown. */
__u32 fd_prog_id(int fd);
/* A pinned link that still attaches a program to this very cgroup for this hook: its fd, or -1;
 * *prog_id is its program. */
int link_live(const struct state *st, uint64_t id, int hook, __u32 *prog_id);
bool link_ok(const struct state *st, uint64_t id, int hook);
/* Links hook's program to the cgroup open as cg_fd and pins the link. 0, or -1 with err. */
int link_create(const struct state *st, uint64_t id, int hook, int cg_fd, const char *rel, char *err);
void links_unpin(const struct state *st, uint64_t id);
/* Calls fn for each link pin, until fn returns non-zero; returns that. */
int links_each(const struct state *st, int (*fn)(uint64_t id, int hook, const char *name, void *ctx), void *ctx);
/* The cgroup id of every link pin (one per pin, unsorted); caller frees. */
void links_pinned_ids(const struct state *st, uint64_t **ids, size_t *n);

#endif
