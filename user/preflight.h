/* preflight.h: what hostlo checks before it asks the kernel: its version and our capabilities. */
#ifndef HOSTLO_PREFLIGHT_H
#define HOSTLO_PREFLIGHT_H

#include <stdbool.h>

/* The running kernel's major.minor, from uname(2): 0, or -1 when the release cannot be read. */
int kernel_version(int *major, int *minor);
/* Whether the running kernel is major.minor or newer; false when its version cannot be read (a
 * feature is used only where the kernel is known to have it). */
bool kernel_at_least(int major, int minor);
/* Linux before 5.11 charges BPF memory to RLIMIT_MEMLOCK: raises it (once per process) so a link can
 * allocate its cgroup's counter storage. libbpf raises it only in the run that loads the object. */
void preflight_memlock_for_links(void);
/* Whether this kernel can steer to host loopback listeners (sk_lookup with ingress_ifindex: 5.17). */
bool kernel_has_host_side(void);
/* Why it cannot, for people: "needs Linux 5.17, this is 5.10". */
const char *kernel_host_side_missing(void);

/* Each returns 0, or -1 with a message in err (ERRLEN bytes). */
/* Refuses a setuid or setgid run: it would hand kernel-wide redirection to whoever runs the binary. */
int preflight_not_setuid(char *err);
/* Refuses a kernel older than what hostlo needs; a release it cannot read lets the kernel answer. */
int preflight_kernel(char *err);
/* Names the first missing capability of what cmd needs (CAP_SYS_ADMIN too when it may mount bpffs). */
int preflight_privileges(const char *cmd, bool mount_needed, char *err);

#endif
