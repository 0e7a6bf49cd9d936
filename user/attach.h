/* attach.h: attaching a cgroup (rules, then links), detaching it, and gc of what is gone or half-done. */
#ifndef HOSTLO_ATTACH_H
#define HOSTLO_ATTACH_H

#include <stdbool.h>
#include <stdint.h>
#include "rules.h"
#include "target.h"

struct state;
struct cgtree;

/* Sets cg's complete rule set: a new attachment, or an atomic swap of an existing one's rules.
 * 0, or -1 with err and nothing changed. */
int state_attach(struct state *st, const struct cgroup *cg, const struct ruleset *rs, char *err);
/* An attach of another cgroup (not self) killed while linking: keep it if whole, else remove it.
 * May remove the last attachment, and with it everything pinned (st->present turns false). */
int state_repair_attach(struct state *st, uint64_t self, char *err);
/* 0 when detached, 1 when cg was not attached, -1 on error. */
int state_detach(struct state *st, uint64_t id, struct cgtree *tree, char *err);
void state_detach_all(struct state *st);
/* Removes what belongs to cgroups that no longer exist and anything a crashed run left half-done;
 * thorough asks the kernel about every link rather than counting pins. Returns how many attachments
 * it removed, or -1 with err. */
int state_gc(struct state *st, struct cgtree *tree, bool keep_empty, bool thorough, char *err);

#endif
