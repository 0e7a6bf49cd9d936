/* sockprobe.c: the "application" of the tests: real sockets, and what they see, printed one per line.
 *
 *   sockprobe serve ADDR PORT REPLY SECONDS   listen; answer every client with REPLY; stop after SECONDS
 *   sockprobe connect ADDR PORT [COUNT [FROM]]  connect COUNT times (from local port FROM); print
 *                                             "peer=A:P got=REPLY" or "error=ERRNO_NAME"; exit 1 on any failure
 *   sockprobe hold ADDR PORT FILE             connect, print "peer=A:P" and "ready", wait until FILE
 *                                             exists, print "peer=A:P" again ("error=timeout" and exit 1
 *                                             if FILE did not appear within 30 s)
 *   sockprobe bind ADDR PORT SECONDS          bind+listen; print "local=A:P", answer one client "bound"
 *   sockprobe late ADDR PORT FILE             serve one client as a service that asks late: print
 *                                             "accepted=A:P" (accept's peer), answer "hello", wait for
 *                                             the client to close, print "late=A:P name=A:P" (getpeername,
 *                                             getsockname) and "waiting"; close once FILE exists, print "closed"
 *   sockprobe udpserve ADDR PORT REPLY SECONDS  answer every datagram with REPLY
 *   sockprobe udpfan ADDR LO HI              one socket sends to ports LO..HI, then prints each reply
 *   sockprobe udp ADDR PORT [connected]       send one datagram (sendto, or connect+send); print
 *                                             "from=A:P got=REPLY" as recvfrom saw it, or "error=..."
 *
 * A line "ready" on stdout means the listener is up. Addresses print as A:P or [A6]:P.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int parse(const char *addr, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((unsigned short)atoi(port));
		*len = sizeof(*a4);
		return AF_INET;
	}
	if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((unsigned short)atoi(port));
		*len = sizeof(*a6);
		return AF_INET6;
	}
	fprintf(stderr, "sockprobe: bad address %s\n", addr);
	exit(2);
}

static const char *fmt(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)ss;

		inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(s->sin_port));
	} else {
		const struct sockaddr_in6 *s = (const void *)ss;

		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(s->sin6_port));
	}
	return buf;
}

static void timeouts(int fd)
{
	struct timeval tv = { .tv_sec = 3 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int listener(const char *addr, const char *port)
{
	struct sockaddr_storage ss, local;
	socklen_t len, llen = sizeof(local);
	int one = 1, fd = socket(parse(addr, port, &ss, &len), SOCK_STREAM, 0);
	char buf[80];

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 128)) {
		printf("error=%s\n", strerrorname_np(errno));
		exit(1);
	}
	getsockname(fd, (struct sockaddr *)&local, &llen);
	printf("local=%s\nready\n", fmt(&local, buf, sizeof(buf)));
	fflush(stdout);
	return fd;
}

/* Serves until the deadline; each client gets one line. */
static int serve(int fd, const char *reply, int seconds, int max_clients)
{
	time_t end = time(NULL) + seconds;

	for (int served = 0; served != max_clients && time(NULL) < end;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 200) <= 0)
			continue;
		int c = accept(fd, NULL, NULL);

		if (c < 0)
			continue;
		timeouts(c);
		if (write(c, reply, strlen(reply)) < 0 || write(c, "\n", 1) < 0)
			perror("sockprobe: write");
		close(c);
		served++;
	}
	return 0;
}

static int do_connect(const char *addr, const char *port, int count, int from)
{
	int failed = 0;

	for (int i = 0; i < count; i++) {
		struct sockaddr_storage ss, peer;
		socklen_t len, plen = sizeof(peer);
		char got[128] = "", buf[80];
		int fd = socket(parse(addr, port, &ss, &len), SOCK_STREAM, 0);
		ssize_t n;

		timeouts(fd);
		if (from) {
			struct sockaddr_storage local;
			socklen_t llen;
			char fp[8];

			snprintf(fp, sizeof(fp), "%d", from);
			parse(ss.ss_family == AF_INET ? "0.0.0.0" : "::", fp, &local, &llen);
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int));
			if (bind(fd, (struct sockaddr *)&local, llen) != 0) {
				printf("error=%s\n", strerrorname_np(errno));
				close(fd);
				return 1;
			}
		}
		if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
			printf("error=%s\n", strerrorname_np(errno));
			failed = 1;
			close(fd);
			continue;
		}
		getpeername(fd, (struct sockaddr *)&peer, &plen);
		n = read(fd, got, sizeof(got) - 1);
		got[n > 0 ? n : 0] = '\0';
		got[strcspn(got, "\n")] = '\0';
		printf("peer=%s got=%s\n", fmt(&peer, buf, sizeof(buf)), got);
		close(fd);
	}
	return failed;
}

static int wait_file(const char *file)
{
	for (int i = 0; access(file, F_OK) != 0; i++) {
		if (i == 300) {
			printf("error=timeout\n");
			return 1;
		}
		usleep(100000);
	}
	return 0;
}

/* One connection held open across something the test does meanwhile (a rule change). */
static int hold(const char *addr, const char *port, const char *file)
{
	struct sockaddr_storage ss, peer;
	socklen_t len, plen = sizeof(peer);
	char buf[80];
	int fd = socket(parse(addr, port, &ss, &len), SOCK_STREAM, 0);

	timeouts(fd);
	if (connect(fd, (struct sockaddr *)&ss, len) != 0 || getpeername(fd, (struct sockaddr *)&peer, &plen) != 0) {
		printf("error=%s\n", strerrorname_np(errno));
		return 1;
	}
	printf("peer=%s\nready\n", fmt(&peer, buf, sizeof(buf)));
	if (wait_file(file))
		return 1;
	plen = sizeof(peer);
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) != 0) {
		printf("error=%s\n", strerrorname_np(errno));
		return 1;
	}
	printf("peer=%s\n", fmt(&peer, buf, sizeof(buf)));
	return 0;
}

/* A service that asks for its client's address only after the client has gone (Redis computes
 * CLIENT LIST's addr lazily), and keeps the connection until the test has looked at the host side. */
static int late(int fd, const char *file)
{
	struct sockaddr_storage peer, name;
	socklen_t plen = sizeof(peer), nlen = sizeof(name);
	char a[80], b[80], c;
	int conn = accept(fd, (struct sockaddr *)&peer, &plen);

	if (conn < 0) {
		printf("error=%s\n", strerrorname_np(errno));
		return 1;
	}
	printf("accepted=%s\n", fmt(&peer, a, sizeof(a)));
	timeouts(conn);
	if (write(conn, "hello\n", 6) != 6 || read(conn, &c, 1) != 0) {
		printf("error=%s\n", errno ? strerrorname_np(errno) : "client did not close");
		return 1;
	}
	plen = sizeof(peer);
	if (getpeername(conn, (struct sockaddr *)&peer, &plen) != 0 || getsockname(conn, (struct sockaddr *)&name, &nlen) != 0) {
		printf("error=%s\n", strerrorname_np(errno));
		return 1;
	}
	printf("late=%s name=%s\nwaiting\n", fmt(&peer, a, sizeof(a)), fmt(&name, b, sizeof(b)));
	if (wait_file(file))
		return 1;
	close(conn);
	printf("closed\n");
	return 0;
}

static int udp_socket(const char *addr, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
	int fd = socket(parse(addr, port, ss, len), SOCK_DGRAM, 0);

	timeouts(fd);
	return fd;
}

static int udp_serve(const char *addr, const char *port, const char *reply, int seconds)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = udp_socket(addr, port, &ss, &len);
	time_t end = time(NULL) + seconds;
	char buf[80];

	if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
		printf("error=%s\n", strerrorname_np(errno));
		return 1;
	}
	printf("local=%s\nready\n", fmt(&ss, buf, sizeof(buf)));
	while (time(NULL) < end) {
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		char msg[512];
		ssize_t n = recvfrom(fd, msg, sizeof(msg), 0, (struct sockaddr *)&from, &flen);

		if (n >= 0 && sendto(fd, reply, strlen(reply), 0, (struct sockaddr *)&from, flen) < 0)
			perror("sockprobe: sendto");
	}
	return 0;
}

static int udp_ask(const char *addr, const char *port, int connected)
{
	struct sockaddr_storage ss, from, peer;
	socklen_t len, flen = sizeof(from), plen = sizeof(peer);
	int fd = udp_socket(addr, port, &ss, &len);
	char got[128] = "", a[80], b[80];
	ssize_t n;

	if (connected ? connect(fd, (struct sockaddr *)&ss, len) != 0 || send(fd, "ask", 3, 0) != 3 :
			sendto(fd, "ask", 3, 0, (struct sockaddr *)&ss, len) != 3) {
		printf("error=%s\n", strerrorname_np(errno));
		return 1;
	}
	n = recvfrom(fd, got, sizeof(got) - 1, 0, (struct sockaddr *)&from, &flen);
	if (n < 0) {
		printf("error=%s\n", strerrorname_np(errno));
		return 1;
	}
	got[n] = '\0';
	if (connected && getpeername(fd, (struct sockaddr *)&peer, &plen) == 0)
		printf("peer=%s ", fmt(&peer, b, sizeof(b)));
	printf("from=%s got=%s\n", fmt(&from, a, sizeof(a)), got);
	return 0;
}

static int udp_fan(const char *addr, int lo, int hi)
{
	struct sockaddr_storage ss, from;
	socklen_t len, flen;
	char port[8], got[128], a[80];
	int fd = -1, failed = 0;

	for (int p = lo; p <= hi; p++) {
		snprintf(port, sizeof(port), "%d", p);
		if (fd < 0)
			fd = udp_socket(addr, port, &ss, &len);
		parse(addr, port, &ss, &len);
		if (sendto(fd, "ask", 3, 0, (struct sockaddr *)&ss, len) != 3)
			failed = printf("error=%s\n", strerrorname_np(errno));
	}
	for (int p = lo; p <= hi; p++) {
		ssize_t n;

		flen = sizeof(from);
		n = recvfrom(fd, got, sizeof(got) - 1, 0, (struct sockaddr *)&from, &flen);
		if (n < 0) {
			printf("error=%s\n", strerrorname_np(errno));
			return 1;
		}
		got[n] = '\0';
		printf("from=%s got=%s\n", fmt(&from, a, sizeof(a)), got);
	}
	return failed != 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc == 6 && strcmp(argv[1], "serve") == 0)
		return serve(listener(argv[2], argv[3]), argv[4], atoi(argv[5]), -1);
	if (argc >= 4 && argc <= 6 && strcmp(argv[1], "connect") == 0)
		return do_connect(argv[2], argv[3], argc >= 5 ? atoi(argv[4]) : 1, argc == 6 ? atoi(argv[5]) : 0);
	if (argc == 5 && strcmp(argv[1], "hold") == 0)
		return hold(argv[2], argv[3], argv[4]);
	if (argc == 5 && strcmp(argv[1], "bind") == 0)
		return serve(listener(argv[2], argv[3]), "bound", atoi(argv[4]), 1);
	if (argc == 5 && strcmp(argv[1], "late") == 0)
		return late(listener(argv[2], argv[3]), argv[4]);
	if (argc == 6 && strcmp(argv[1], "udpserve") == 0)
		return udp_serve(argv[2], argv[3], argv[4], atoi(argv[5]));
	if (argc == 5 && strcmp(argv[1], "udpfan") == 0)
		return udp_fan(argv[2], atoi(argv[3]), atoi(argv[4]));
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "udp") == 0)
		return udp_ask(argv[2], argv[3], argc == 5 && strcmp(argv[4], "connected") == 0);
	fprintf(stderr, "usage: sockprobe serve ADDR PORT REPLY SECONDS | connect ADDR PORT [COUNT [FROM]] | "
			"hold ADDR PORT FILE | bind ADDR PORT SECONDS | late ADDR PORT FILE | udpserve ADDR PORT REPLY SECONDS | udp ADDR PORT [connected] | "
			"udpfan ADDR LO HI\n");
	return 2;
}
