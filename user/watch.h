/* watch.h: hostlo watch, the agent that attaches containers' rules from labels and config as they start. */
#ifndef HOSTLO_WATCH_H
#define HOSTLO_WATCH_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Runs in the foreground until SIGTERM or SIGINT (exit 0, attachments stay); SIGHUP reloads config.
 * mnt is the cgroup2 mount; config the file (NULL: the default, which may be absent). Returns an exit
 * status: 1 when it cannot start (unreadable config, no inotify, no access to bpffs).
 */
int watch_run(const char *mnt, const char *config, bool json);

/* The pid of the agent that runs for this bpffs ($HOSTLO_BPFFS), or 0 when none does. */
int watch_agent_pid(void);

/* The agent's pid file for this bpffs, keyed on the path $HOSTLO_BPFFS resolves to (realpath when it
 * exists, trailing slashes gone): /run/hostlo-watch.pid for /sys/fs/bpf, else PATH.watch.pid beside
 * that mount. bpffs gets PATH. */
void watch_pid_path(char *buf, size_t len, char *bpffs, size_t blen);

#endif
