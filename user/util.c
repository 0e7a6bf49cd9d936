/* util.c: one error style for the whole loader: "hostlo: <what>: <why>" on one line. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include "util.h"

int verbose;

void errorf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("hostlo: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int seterr(char *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, ERRLEN, fmt, ap);
	va_end(ap);
	return -1;
}

int u64_cmp(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return *x < *y ? -1 : *x > *y;
}
