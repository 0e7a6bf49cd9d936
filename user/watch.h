/* watch.h: hostlo watch, the agent that attaches containers' rules from labels and config as they start. */
#ifndef HOSTLO_WATCH_H
#define HOSTLO_WATCH_H

#include <stdbool.h>

/*
 * Runs in the foreground until SIGTERM or SIGINT (exit 0, attachments stay); SIGHUP reloads config.
 * mnt is the cgroup2 mount; config the file (NULL: the default, which may be absent). Returns an exit
 * status: 1 when it cannot start (unreadable config, no inotify, no access to bpffs).
 */
int watch_run(const char *mnt, const char *config, bool json);

/* The pid of the agent that runs for this bpffs ($HOSTLO_BPFFS), or 0 when none does. */
int watch_agent_pid(void);

#endif
