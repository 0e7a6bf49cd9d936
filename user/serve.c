/* serve.c: `hostlo serve`: /metrics (the Prometheus text of stats --prometheus) and /healthz over
 * HTTP, on libmicrohttpd; a bounded number of connections, each with a timeout; stops on SIGTERM. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "serve.h"
#include "util.h"

#ifdef HOSTLO_NO_SERVE
int serve_run(const struct sockaddr_in *at, serve_render_fn render, void *ctx)
{
	(void)at;
	(void)render;
	(void)ctx;
	/* the static binary carries no HTTP library (libmicrohttpd's static TLS dependencies are not packaged) */
	errorf("serve: not in this static build: run the dynamic hostlo or the hostlo-agent image (make image-agent)");
	return EXIT_FAIL;
}
#else
#include <dlfcn.h>
#include <microhttpd.h>

#define MAX_CONNECTIONS 16

/*
 * libmicrohttpd is opened here, not linked: it brings GnuTLS and a dozen libraries whose loading
 * and constructors cost every hostlo command about 3 ms at start, and only serve needs them.
 */
#define LIBMICROHTTPD "libmicrohttpd.so.12"
static struct {
	struct MHD_Daemon *(*start_daemon)(unsigned, uint16_t, MHD_AcceptPolicyCallback, void *,
					   MHD_AccessHandlerCallback, void *, ...);
	void (*stop_daemon)(struct MHD_Daemon *);
	struct MHD_Response *(*create_response_from_buffer)(size_t, void *, enum MHD_ResponseMemoryMode);
	enum MHD_Result (*add_response_header)(struct MHD_Response *, const char *, const char *);
	enum MHD_Result (*queue_response)(struct MHD_Connection *, unsigned, struct MHD_Response *);
	void (*destroy_response)(struct MHD_Response *);
} mhd;

static int load_mhd(void)
{
	void *h = dlopen(LIBMICROHTTPD, RTLD_NOW | RTLD_LOCAL);

	if (!h) {
		errorf("serve: cannot load %s: %s (Debian: apt install libmicrohttpd12)", LIBMICROHTTPD, dlerror());
		return -1;
	}
	*(void **)&mhd.start_daemon = dlsym(h, "MHD_start_daemon");
	*(void **)&mhd.stop_daemon = dlsym(h, "MHD_stop_daemon");
	*(void **)&mhd.create_response_from_buffer = dlsym(h, "MHD_create_response_from_buffer");
	*(void **)&mhd.add_response_header = dlsym(h, "MHD_add_response_header");
	*(void **)&mhd.queue_response = dlsym(h, "MHD_queue_response");
	*(void **)&mhd.destroy_response = dlsym(h, "MHD_destroy_response");
	if (!mhd.start_daemon || !mhd.stop_daemon || !mhd.create_response_from_buffer || !mhd.add_response_header ||
	    !mhd.queue_response || !mhd.destroy_response) {
		errorf("serve: %s lacks a function hostlo uses: %s", LIBMICROHTTPD, dlerror());
		return -1;
	}
	return 0;
}
#define CONNECTION_TIMEOUT_S 10

struct server {
	serve_render_fn render;
	void *ctx;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type, char *body, size_t len,
			     enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = mhd.create_response_from_buffer(len, body, mode);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	mhd.add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = mhd.queue_response(c, status, r);
	mhd.destroy_response(r);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *upload, size_t *upload_size, void **state)
{
	static char ok[] = "ok\n", missing[] = "not found: try /metrics or /healthz\n", only_get[] = "GET only\n",
		    failed[] = "hostlo could not read its counters; see its log\n";
	struct server *s = cls;
	char *body;
	size_t len;

	(void)version;
	(void)upload;
	(void)upload_size;
	(void)state;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", only_get, strlen(only_get), MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/healthz") == 0)
		return reply(c, MHD_HTTP_OK, "text/plain", ok, strlen(ok), MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/metrics") != 0)
		return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", missing, strlen(missing), MHD_RESPMEM_PERSISTENT);
	if (s->render(s->ctx, &body, &len) != 0)
		return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", failed, strlen(failed),
			     MHD_RESPMEM_PERSISTENT);
	return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4", body, len, MHD_RESPMEM_MUST_FREE);
}

int serve_run(const struct sockaddr_in *at, serve_render_fn render, void *ctx)
{
	struct server s = { .render = render, .ctx = ctx };
	char where[INET_ADDRSTRLEN + 8];
	struct MHD_Daemon *d;
	int one = 1, fd, sig;
	sigset_t stop;

	if (load_mhd())
		return EXIT_FAIL;
	inet_ntop(AF_INET, &at->sin_addr, where, sizeof(where));
	snprintf(where + strlen(where), sizeof(where) - strlen(where), ":%u", ntohs(at->sin_port));
	/* our own listening socket, so a busy port is reported plainly */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (const struct sockaddr *)at, sizeof(*at)) != 0 || listen(fd, 64) != 0) {
		errorf("serve %s: cannot listen: %s", where, strerror(errno));
		if (fd >= 0)
			close(fd);
		return EXIT_FAIL;
	}
	/* SIGINT and SIGTERM are taken by sigwait below, in this thread only */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	d = mhd.start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle, &s,
			     MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_END);
	if (!d) {
		errorf("serve %s: cannot start the HTTP server", where);
		close(fd);
		return EXIT_FAIL;
	}
	fprintf(stderr, "hostlo: serving http://%s/metrics and /healthz (SIGTERM or Ctrl-C to stop)\n", where);
	sigwait(&stop, &sig);
	mhd.stop_daemon(d);
	close(fd);
	fprintf(stderr, "hostlo: serve: stopped (%s)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	return EXIT_OK;
}
#endif
