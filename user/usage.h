/* usage.h: the help text: the whole of it (hostlo --help, the README's usage block) or one command's. */
#ifndef HOSTLO_USAGE_H
#define HOSTLO_USAGE_H

#include <stdbool.h>
#include <stddef.h>

/* Every command: synopses holds each one's line ("hostlo attach  TARGET RULE... [--dry-run] [-j]"). */
void usage_all(const char *const *synopses, size_t n);
/* One command: its synopsis, the options it takes (words as its allowed list names them: "cgroup j"),
 * and its examples. */
void usage_command(const char *name, const char *synopsis, const char *options);

/* Whether the space-separated list has this exact word ("cgroup" is not "cgroup-root"). */
bool word_in(const char *list, const char *word);

#endif
