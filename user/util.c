/* util.c: one error style for the whole loader: "hostlo: <what>: <why>" on one line (JSON under -j). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <json-c/json.h>
#include "util.h"

int verbose;
static bool json_errors;

void errors_as_json(bool on)
{
	json_errors = on;
}

/* One line still: a program reading -j output parses stderr as it parses stdout. */
static void error_json(const char *msg)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "error", json_object_new_string(msg));
	fprintf(stderr, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

void errorf(const char *fmt, ...)
{
	char msg[4 * ERRLEN]; /* err buffers, and paths around them */
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (json_errors)
		error_json(msg);
	else
		fprintf(stderr, "hostlo: %s\n", msg);
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
