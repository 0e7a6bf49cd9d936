/* loadgen.c: bounded connect load for the reliability tests: THREADS threads make TOTAL connects in all
 * to ADDR:PORT (connect, read the server's one-line reply, close), stopping early after SECONDS.
 * Prints "connects=N ok=N failed=N" and how many replies of each kind came back ("host-a=N ...").
 *
 *   loadgen ADDR PORT THREADS TOTAL SECONDS
 *
 * With LOADGEN_PAUSE_DIR=DIR it pauses halfway, so a test can change something between two known halves
 * instead of racing the load: once the first TOTAL/2 connects are done it creates DIR/half and waits for
 * DIR/go; connect number TOTAL/2 is made alone after that, then DIR/resumed is created and the rest go on.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_KINDS 8

static struct sockaddr_in target;
static atomic_long next_id, ok, failed, done;
static atomic_int resumed;
static long total;
static const char *pause_dir;
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

static void pause_file(const char *name, int create)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", pause_dir, name);
	if (create) {
		close(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
		return;
	}
	while (access(path, F_OK) != 0 && time(NULL) < deadline)
		usleep(10000);
}

/* Connect id may start: the halfway pause (LOADGEN_PAUSE_DIR) holds it until its turn. */
static void wait_turn(long id)
{
	long half = total / 2;

	if (!pause_dir || id < half)
		return;
	if (id > half) {
		while (!resumed && time(NULL) < deadline)
			usleep(1000);
		return;
	}
	while (done < half && time(NULL) < deadline)
		usleep(1000);
	pause_file("half", 1);
	pause_file("go", 0);
}

static void *worker(void *arg)
{
	struct timeval tv = { .tv_sec = 5 };
	long id;

	(void)arg;
	while ((id = atomic_fetch_add(&next_id, 1)) < total && time(NULL) < deadline) {
		int fd;
		char buf[64];
		ssize_t n = -1;

		wait_turn(id);
		fd = socket(AF_INET, SOCK_STREAM, 0);

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
		done++;
		if (pause_dir && id == total / 2) {
			pause_file("resumed", 1);
			resumed = 1;
		}
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
	pause_dir = getenv("LOADGEN_PAUSE_DIR");
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
