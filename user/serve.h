/* serve.h: the HTTP endpoint for Prometheus (hostlo serve). */
#ifndef HOSTLO_SERVE_H
#define HOSTLO_SERVE_H

#include <netinet/in.h>
#include <stddef.h>

/* Renders the /metrics body into a malloc'd buffer; 0 on success. */
typedef int (*serve_render_fn)(void *ctx, char **body, size_t *len);

/* Serves until SIGINT or SIGTERM; an exit status. */
int serve_run(const struct sockaddr_in *at, serve_render_fn render, void *ctx);

#endif
