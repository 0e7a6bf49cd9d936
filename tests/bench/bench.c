/* bench.c: the load generator and echo server of `make bench`. Every loop is bounded in count and time.
 *
 *   bench serve ADDR PORT SECONDS        echo server: each byte read is written back; one client at a time
 *   bench rate ADDR PORT SECONDS MAX     connect, send 1 byte, receive 1 byte, close (SO_LINGER 0), in a loop;
 *                                        prints "conns=N secs=S rate=R cpu_us_per_conn=C failed=F"
 *   bench latency ADDR PORT COUNT        one connection, COUNT 1-byte requests and replies; prints
 *                                        "count=N p50_us=A p99_us=B failed=F"
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
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

static int rate(struct sockaddr_in sa, double seconds, long max)
{
	double start = now(), cpu0 = cpu_seconds(), elapsed;
	long n = 0, failed = 0;

	while (n < max && (elapsed = now() - start) < seconds) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		char b = 'x';

		timeouts(fd);
		/* an abortive close leaves no TIME_WAIT: tens of thousands of those in one namespace would make
		 * every later connect hunt for a free port, and measure that instead of the path */
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &(struct linger){ .l_onoff = 1, .l_linger = 0 }, sizeof(struct linger));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1)
			failed++;
		close(fd);
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

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 5 && strcmp(argv[1], "serve") == 0)
		return serve(addr_of(argv[2], argv[3]), atoi(argv[4]));
	if (argc == 6 && strcmp(argv[1], "rate") == 0)
		return rate(addr_of(argv[2], argv[3]), atof(argv[4]), atol(argv[5]));
	if (argc == 5 && strcmp(argv[1], "latency") == 0 && atol(argv[4]) > 0)
		return latency(addr_of(argv[2], argv[3]), atol(argv[4]));
	fprintf(stderr, "usage: bench serve ADDR PORT SECONDS | rate ADDR PORT SECONDS MAX | latency ADDR PORT COUNT\n");
	return 2;
}
