/* crashpoint.h: named steps where a test build dies or stalls, as a crash or a slow run would there. */
#ifndef HOSTLO_CRASHPOINT_H
#define HOSTLO_CRASHPOINT_H

#ifdef HOSTLO_CRASH_POINTS
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Test builds only (make test-builds): HOSTLO_CRASH_AT=step dies with SIGKILL, HOSTLO_STALL_AT=step
 * sleeps 2 s, so the reliability suite can stop a run at every step that changes the kernel. */
static inline void crash_point(const char *step)
{
	const char *at = getenv("HOSTLO_CRASH_AT"), *stall = getenv("HOSTLO_STALL_AT");

	if (stall && strcmp(stall, step) == 0)
		sleep(2);
	if (at && strcmp(at, step) == 0)
		raise(SIGKILL);
}
#else
#define crash_point(step) ((void)0)
#endif

#endif
