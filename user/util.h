/* util.h: error reporting and exit codes shared by every part of the loader. */
#ifndef HOSTLO_UTIL_H
#define HOSTLO_UTIL_H

#include <stdbool.h>
#include <stddef.h>

enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,    /* a well-formed request that cannot be carried out */
	EXIT_USAGE = 2,   /* a malformed command line */
};

/* Room for one error line; parsers fill it, the CLI prints it as "hostlo: <msg>". */
#define ERRLEN 512

/* Prints "hostlo: <fmt>" as one line on stderr; after errors_as_json(true), {"error":"<fmt>"}. */
void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Under -j, once the command line is read (its mistakes stay text: they may come before the -j). */
void errors_as_json(bool on);
/* Formats into an ERRLEN buffer; returns -1 so callers can `return seterr(err, ...)`. */
int seterr(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

extern int verbose;

/* qsort/bsearch order of uint64_t values (cgroup ids). */
int u64_cmp(const void *a, const void *b);

#endif
