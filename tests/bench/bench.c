/* bench.c: the load generator and echo server of `make bench`. Every loop is bounded in count and time.
 *
 *   bench serve ADDR PORT SECONDS        echo server: each byte read is written back; one client at a time
 *   bench rate ADDR PORT SECONDS MAX     connect, send 1 byte, receive 1 byte, close (SO_LINGER 0), in a loop;
 *                                        prints "conns=N secs=S rate=R cpu_us_per_conn=C failed=F"
 *   bench latency ADDR PORT COUNT        one connection, COUNT 1-byte requests and replies; prints
 *                                        "count=N p50_us=A p99_us=B failed=F"
 *   bench mix SECONDS BATCH NAME=CGROUP,NETNS,ADDR,PORT...
 *                                        the rate loop of several paths taking turns: one client per path,
 *                                        each in its cgroup directory and network namespace (/run/netns/X;
 *                                        "-": the caller's), BATCH connections per turn, the order rotating
 *                                        every round, until SECONDS; prints "round=R NAME=RATE..." per round
 *                                        and "path=NAME conns=N secs=S rate=R cpu_us_per_conn=C failed=F";
 *                                        exit 1 when a client could not run (failed connects: in failed=)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in addr_of(const char *a, const char *p)
{
	struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(p)) };

	if (inet_pton(AF_INET, a, &s.sin_addr) != 1) {
		fprintf(stderr, "bench: bad address %s\n", a);
		exit(2);
	}
	return s;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
	struct rusage u;

	getrusage(RUSAGE_SELF, &u);
	return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

static void timeouts(int fd)
{
	struct timeval tv = { .tv_sec = 3 };
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int serve(struct sockaddr_in sa, int seconds)
{
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	double end = now() + seconds;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 1024)) {
		perror("bench: listen");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (now() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		char b[1];
		int c;

		/* with the peer's address, as real services ask for it (the getpeername hooks run) */
		if (poll(&p, 1, 200) <= 0 || (c = accept(fd, (struct sockaddr *)&peer, &plen)) < 0)
			continue;
		timeouts(c);
		while (read(c, b, 1) == 1 && write(c, b, 1) == 1)
			;
		close(c);
	}
	return 0;
}

/* One connection of the rate loop: connect, 1 byte each way, close; 1 when it failed. */
static int one_connection(struct sockaddr_in sa)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), failed;
	char b = 'x';

	timeouts(fd);
	/* an abortive close leaves no TIME_WAIT: tens of thousands of those in one namespace would make
	 * every later connect hunt for a free port, and measure that instead of the path */
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &(struct linger){ .l_onoff = 1, .l_linger = 0 }, sizeof(struct linger));
	failed = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1;
	close(fd);
	return failed;
}

static int rate(struct sockaddr_in sa, double seconds, long max)
{
	double start = now(), cpu0 = cpu_seconds(), elapsed;
	long n = 0, failed = 0;

	while (n < max && (elapsed = now() - start) < seconds) {
		failed += one_connection(sa);
		n++;
	}
	elapsed = now() - start;
	printf("conns=%ld secs=%.3f rate=%.1f cpu_us_per_conn=%.2f failed=%ld\n", n, elapsed, (double)n / elapsed,
	       (cpu_seconds() - cpu0) * 1e6 / (double)(n ? n : 1), failed);
	return failed != 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int latency(struct sockaddr_in sa, long count)
{
	double *t = calloc((size_t)count, sizeof(*t));
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	long failed = 0;

	timeouts(fd);
	if (!t || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		printf("count=0 p50_us=0 p99_us=0 failed=%ld\n", count);
		return 1;
	}
	for (long i = 0; i < count; i++) {
		double s = now();
		char b = 'x';

		if (write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1)
			failed++;
		t[i] = (now() - s) * 1e6;
	}
	close(fd);
	qsort(t, (size_t)count, sizeof(*t), cmp_double);
	printf("count=%ld p50_us=%.2f p99_us=%.2f failed=%ld\n", count, t[count / 2], t[count * 99 / 100], failed);
	free(t);
	return failed != 0;
}

/*
 * mix: the paths' rate loops taking turns in short batches, so that whatever else the machine does
 * (neighbours, frequency, a busy CPU) falls on every path alike; a round's rates are side by side.
 */
struct turn {
	long conns, failed;
	double secs, cpu;
};

struct path {
	char *name, *cgroup, *netns;
	struct sockaddr_in sa;
	int cmd, res;                    /* pipes to and from its client */
	pid_t pid;
	struct turn total;
};

static int path_of(char *spec, struct path *p)
{
	char *eq = strchr(spec, '='), *f[4];

	if (!eq)
		return -1;
	*eq = 0;
	p->name = spec;
	f[0] = strtok(eq + 1, ",");
	for (int i = 1; i < 4; i++)
		f[i] = f[i - 1] ? strtok(NULL, ",") : NULL;
	if (!f[3])
		return -1;
	p->cgroup = f[0], p->netns = f[1];
	p->sa = addr_of(f[2], f[3]);
	return 0;
}

/* The client of one path: moves into its cgroup and namespace, then runs a batch per byte it is sent. */
static void mix_client(struct path *p, long batch, int cmd, int res)
{
	char c, pid[32];
	int fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (strcmp(p->cgroup, "-") != 0) {
		char file[4096];

		snprintf(file, sizeof(file), "%s/cgroup.procs", p->cgroup);
		snprintf(pid, sizeof(pid), "%d", getpid());
		if ((fd = open(file, O_WRONLY)) < 0 || write(fd, pid, strlen(pid)) < 0) {
			fprintf(stderr, "bench: mix: join %s: %m\n", p->cgroup);
			_exit(1);
		}
		close(fd);
	}
	if (strcmp(p->netns, "-") != 0 && ((fd = open(p->netns, O_RDONLY)) < 0 || setns(fd, CLONE_NEWNET) != 0)) {
		fprintf(stderr, "bench: mix: enter %s: %m\n", p->netns);
		_exit(1);
	}
	while (read(cmd, &c, 1) == 1) {
		struct turn t = { .conns = batch };
		double t0 = now(), c0 = cpu_seconds();

		for (long i = 0; i < batch; i++)
			t.failed += one_connection(p->sa);
		t.secs = now() - t0;
		t.cpu = cpu_seconds() - c0;
		if (write(res, &t, sizeof(t)) != sizeof(t))
			break;
	}
	_exit(0);
}

static int mix(double seconds, long batch, int n, char **specs)
{
	struct path *paths = calloc((size_t)n, sizeof(*paths));
	double end = now() + seconds;
	int rc = 0;

	signal(SIGPIPE, SIG_IGN); /* a client that could not start: said below, not a silent death */
	for (int i = 0; i < n; i++) {
		int cmd[2], res[2];

		if (path_of(specs[i], &paths[i]) != 0) {
			fprintf(stderr, "bench: mix: %s: want NAME=CGROUP,NETNS,ADDR,PORT\n", specs[i]);
			return 2;
		}
		if (pipe(cmd) || pipe(res) || (paths[i].pid = fork()) < 0) {
			perror("bench: mix");
			return 1;
		}
		if (paths[i].pid == 0) {
			close(cmd[1]), close(res[0]);
			for (int j = 0; j < i; j++) /* the earlier clients' pipes: theirs alone, or they never see the end */
				close(paths[j].cmd), close(paths[j].res);
			mix_client(&paths[i], batch, cmd[0], res[1]);
		}
		close(cmd[0]), close(res[1]);
		paths[i].cmd = cmd[1], paths[i].res = res[0];
	}
	for (int r = 1; rc == 0 && now() < end; r++) {
		double rates[n];

		for (int k = 0; k < n; k++) {
			/* rotating by one each round, and backwards every other cycle of n rounds: no path always
			 * follows the same one */
			int shift = (r - 1) % n, at = ((r - 1) / n) % 2 ? (n - 1 - k + shift) % n : (k + shift) % n;
			struct path *p = &paths[at];
			struct turn t;

			if (write(p->cmd, "g", 1) != 1 || read(p->res, &t, sizeof(t)) != sizeof(t)) {
				fprintf(stderr, "bench: mix: the client of %s is gone\n", p->name);
				rc = 1;
				break;
			}
			p->total.conns += t.conns, p->total.failed += t.failed;
			p->total.secs += t.secs, p->total.cpu += t.cpu;
			rates[p - paths] = (double)t.conns / t.secs;
		}
		if (rc)
			break;
		printf("round=%d", r);
		for (int i = 0; i < n; i++)
			printf(" %s=%.1f", paths[i].name, rates[i]);
		printf("\n");
	}
	for (int i = 0; i < n; i++) {
		struct turn *t = &paths[i].total;

		close(paths[i].cmd);
		waitpid(paths[i].pid, NULL, 0);
		printf("path=%s conns=%ld secs=%.3f rate=%.1f cpu_us_per_conn=%.2f failed=%ld\n", paths[i].name, t->conns,
		       t->secs, t->secs > 0 ? (double)t->conns / t->secs : 0, t->cpu * 1e6 / (double)(t->conns ? t->conns : 1),
		       t->failed);
	}
	free(paths);
	return rc;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 5 && strcmp(argv[1], "serve") == 0)
		return serve(addr_of(argv[2], argv[3]), atoi(argv[4]));
	if (argc == 6 && strcmp(argv[1], "rate") == 0)
		return rate(addr_of(argv[2], argv[3]), atof(argv[4]), atol(argv[5]));
	if (argc == 5 && strcmp(argv[1], "latency") == 0 && atol(argv[4]) > 0)
		return latency(addr_of(argv[2], argv[3]), atol(argv[4]));
	if (argc >= 5 && strcmp(argv[1], "mix") == 0 && atol(argv[3]) > 0)
		return mix(atof(argv[2]), atol(argv[3]), argc - 4, argv + 4);
	fprintf(stderr, "usage: bench serve ADDR PORT SECONDS | rate ADDR PORT SECONDS MAX | latency ADDR PORT COUNT |\n"
			"       mix SECONDS BATCH NAME=CGROUP,NETNS,ADDR,PORT...\n");
	return 2;
}
