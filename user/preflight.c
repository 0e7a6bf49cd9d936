/* preflight.c: the kernel version (one uname parser) and the capabilities a command needs, checked
 * up front so the error names what is missing instead of a bare EPERM from the kernel. */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>
#include "preflight.h"
#include "util.h"

#define MIN_KERNEL_MAJOR 5
#define MIN_KERNEL_MINOR 10

enum { CAP_NET_ADMIN_ = 12, CAP_SYS_ADMIN_ = 21, CAP_BPF_ = 39 }; /* older libc headers lack CAP_BPF */

/* "5.10.0-28-amd64" -> 5, 10; u keeps the whole release for messages. */
static int read_release(struct utsname *u, int *major, int *minor)
{
	if (uname(u) != 0 || sscanf(u->release, "%d.%d", major, minor) != 2)
		return -1;
	return 0;
}

static bool version_at_least(int have_major, int have_minor, int major, int minor)
{
	return have_major > major || (have_major == major && have_minor >= minor);
}

int kernel_version(int *major, int *minor)
{
	struct utsname u;

	return read_release(&u, major, minor);
}

bool kernel_at_least(int major, int minor)
{
	int have_major, have_minor;

	return kernel_version(&have_major, &have_minor) == 0 &&
	       version_at_least(have_major, have_minor, major, minor);
}

void preflight_memlock_for_links(void)
{
	static bool done;
	struct rlimit r = { RLIM_INFINITY, RLIM_INFINITY };

	if (done || kernel_at_least(5, 11))
		return;
	done = true;
	/* without CAP_SYS_RESOURCE only up to the hard limit */
	if (setrlimit(RLIMIT_MEMLOCK, &r) != 0 && getrlimit(RLIMIT_MEMLOCK, &r) == 0) {
		r.rlim_cur = r.rlim_max;
		setrlimit(RLIMIT_MEMLOCK, &r);
	}
}

bool kernel_has_host_side(void)
{
	return kernel_at_least(5, 17);
}

const char *kernel_host_side_missing(void)
{
	static char why[64];
	int major = 0, minor = 0;

	kernel_version(&major, &minor);
	snprintf(why, sizeof(why), "needs Linux 5.17, this is %d.%d", major, minor);
	return why;
}

int preflight_not_setuid(char *err)
{
	if (getuid() != geteuid() || getgid() != getegid())
		return seterr(err, "refusing to run setuid or setgid");
	return 0;
}

int preflight_kernel(char *err)
{
	struct utsname u;
	int major, minor;

	if (read_release(&u, &major, &minor))
		return 0; /* cannot tell: let the kernel answer */
	if (version_at_least(major, minor, MIN_KERNEL_MAJOR, MIN_KERNEL_MINOR))
		return 0;
	return seterr(err, "kernel %s: too old, hostlo needs Linux %d.%d or newer (cgroup bpf_link, getpeername and recvmsg hooks, batched map access)",
		      u.release, MIN_KERNEL_MAJOR, MIN_KERNEL_MINOR);
}

/* Bit n of CapEff. */
static bool has_cap(int cap)
{
	char line[256];
	unsigned long long eff = 0;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return true; /* cannot tell: let the kernel answer */
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	fclose(f);
	return eff & (1ULL << cap);
}

int preflight_privileges(const char *cmd, bool mount_needed, char *err)
{
	const char *missing = NULL;

	if (!has_cap(CAP_BPF_) && !has_cap(CAP_SYS_ADMIN_))
		missing = "CAP_BPF (or CAP_SYS_ADMIN)";
	else if (!has_cap(CAP_NET_ADMIN_))
		missing = "CAP_NET_ADMIN";
	else if (mount_needed && !has_cap(CAP_SYS_ADMIN_))
		missing = "CAP_SYS_ADMIN";
	if (!missing)
		return 0;
	return seterr(err, "%s: permission denied: missing %s (run as root, or with CAP_BPF + CAP_NET_ADMIN + CAP_SYS_ADMIN)",
		      cmd, missing);
}
