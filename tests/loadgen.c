/* loadgen.c: bounded connect load for the reliability tests: THREADS threads make TOTAL connects in all
 * to ADDR:PORT (connect, read the server's one-line reply, close), stopping early after SECONDS.
 * Prints "connects=N ok=N failed=N" and how many replies of each kind came back ("host-a=N ...").
 *
 *   loadgen ADDR PORT THREADS TOTAL SECONDS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_KINDS 8

static struct sockaddr_in target;
static atomic_long next_id, ok, failed;
static long total;
static time_t deadline;
static struct { char text[64]; atomic_long n; } kinds[MAX_KINDS];
static pthread_mutex_t kinds_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_error[64];

static void tally(const char *reply)
{
	pthread_mutex_lock(&kinds_lock);
	for (int i = 0; i < MAX_KINDS; i++) {
		if (!kinds[i].text[0])
			snprintf(kinds[i].text, sizeof(kinds[i].text), "%s", reply);
		if (strcmp(kinds[i].text, reply) == 0) {
			kinds[i].n++;
			break;
		}
	}
	pthread_mutex_unlock(&kinds_lock);
}

static void *worker(void *arg)
{
	struct timeval tv = { .tv_sec = 5 };

	(void)arg;
	while (atomic_fetch_add(&next_id, 1) < total && time(NULL) < deadline) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		char buf[64];
		ssize_t n = -1;

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(fd, (struct sockaddr *)&target, sizeof(target)) == 0)
			n = read(fd, buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = '\0';
			buf[strcspn(buf, "\n")] = '\0';
			tally(buf);
			ok++;
		} else {
			if (!failed++)
				snprintf(first_error, sizeof(first_error), "%s", n == 0 ? "EOF" : strerrorname_np(errno));
		}
		close(fd);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[64];
	int threads;

	if (argc != 6 || inet_pton(AF_INET, argv[1], &target.sin_addr) != 1) {
		fprintf(stderr, "usage: loadgen ADDR PORT THREADS TOTAL SECONDS\n");
		return 2;
	}
	target.sin_family = AF_INET;
	target.sin_port = htons((unsigned short)atoi(argv[2]));
	threads = atoi(argv[3]);
	total = atol(argv[4]);
	deadline = time(NULL) + atoi(argv[5]);
	if (threads < 1 || threads > 64 || total < 1)
		return 2;
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	printf("connects=%ld ok=%ld failed=%ld", (long)ok + (long)failed, (long)ok, (long)failed);
	for (int i = 0; i < MAX_KINDS && kinds[i].text[0]; i++)
		printf(" %s=%ld", kinds[i].text, (long)kinds[i].n);
	if (failed)
		printf(" first_error=%s", first_error);
	putchar('\n');
	return failed ? 1 : 0;
}
