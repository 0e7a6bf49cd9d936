/* crashpoint.h: named steps where a test build dies or stalls, as a crash or a slow run would there. */
#ifndef HOSTLO_CRASHPOINT_H
#define HOSTLO_CRASHPOINT_H

#ifdef HOSTLO_CRASH_POINTS
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Test builds only (make test-builds): HOSTLO_CRASH_AT=step dies with SIGKILL, HOSTLO_STALL_AT=step
 * sleeps 2 s, so the reliability suite can stop a run at every step that changes the kernel. A stall
 * first creates the file HOSTLO_STALL_MARK names, so a test waits for the step to be reached rather
 * than guessing how long that takes (under qemu TCG it can take longer than any fixed sleep). */
static inline void crash_point(const char *step)
{
	const char *at = getenv("HOSTLO_CRASH_AT"), *stall = getenv("HOSTLO_STALL_AT");

	if (stall && strcmp(stall, step) == 0) {
		const char *mark = getenv("HOSTLO_STALL_MARK");

		if (mark)
			close(open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
		sleep(2);
	}
	if (at && strcmp(at, step) == 0)
		raise(SIGKILL);
}
#else
#define crash_point(step) ((void)0)
#endif

#endif
