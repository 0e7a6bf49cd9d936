/* docker.c: the Docker Engine API client: hand-written HTTP/1.0 over the unix socket, no libcurl. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "docker.h"
#include "util.h"

#define DOCKER_SOCK "/var/run/docker.sock"
#define DOCKER_TIMEOUT_S 5
#define DOCKER_MAX_REPLY (16 << 20)
#define EVENT_MAX_LINE (1 << 20)

const char *docker_socket(char *err)
{
	const char *host = getenv("DOCKER_HOST");

	if (!host || !host[0])
		return DOCKER_SOCK;
	if (strncmp(host, "unix://", 7) == 0)
		return host + 7;
	seterr(err, "DOCKER_HOST %s: only unix:// sockets are supported", host);
	return NULL;
}

/*
 * Connects and sends "GET path" as HTTP/1.0, so the reply is neither chunked nor kept alive: the body
 * (for /events, newline-separated JSON) runs until the engine closes. Returns the fd or -1 with err.
 */
static int docker_request(const char *path, char *err)
{
	struct timeval tv = { .tv_sec = DOCKER_TIMEOUT_S };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *sock = docker_socket(err);
	char req[1024];
	int fd, n;

	if (!sock)
		return -1;
	if (strlen(sock) >= sizeof(sa.sun_path))
		return seterr(err, "Docker at %s: socket path too long", sock);
	strcpy(sa.sun_path, sock);
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: docker\r\n\r\n", path);
	if (n < 0 || (size_t)n >= sizeof(req))
		return seterr(err, "Docker at %s: request too long", sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return seterr(err, "Docker at %s: %s", sock, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		seterr(err, "Docker at %s: not reachable: %s", sock, strerror(errno));
		close(fd);
		return -1;
	}
	if (write(fd, req, (size_t)n) != n) {
		seterr(err, "Docker at %s: %s", sock, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* The status code of an HTTP reply; -1 when it is not one. */
static int http_status(const char *buf)
{
	int status;

	return sscanf(buf, "HTTP/%*d.%*d %d", &status) == 1 ? status : -1;
}

int docker_get(const char *path, json_object **json, char *err)
{
	size_t len = 0, cap = 65536;
	char *buf = NULL, *body, serr[ERRLEN];
	const char *sock = docker_socket(serr);
	int fd, status = -1;
	ssize_t r;

	*json = NULL;
	fd = docker_request(path, err);
	if (fd < 0)
		return -1;
	buf = malloc(cap + 1);
	while (buf && (r = read(fd, buf + len, cap - len)) > 0) {
		len += (size_t)r;
		if (len == cap) {
			char *b = cap < DOCKER_MAX_REPLY ? realloc(buf, (cap *= 2) + 1) : NULL;

			if (!b) {
				seterr(err, "Docker at %s: reply too large", sock);
				goto out;
			}
			buf = b;
		}
	}
	if (!buf || len == 0) {
		seterr(err, "Docker at %s: no reply", sock);
		goto out;
	}
	buf[len] = '\0';
	body = strstr(buf, "\r\n\r\n");
	status = http_status(buf);
	if (status < 0 || !body) {
		seterr(err, "Docker at %s: not an HTTP reply", sock);
		status = -1;
		goto out;
	}
	*json = json_tokener_parse(body + 4);
out:
	free(buf);
	close(fd);
	return status;
}

static const char *str_at(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) ?
		       json_object_get_string(v) : "";
}

static void ctr_from_json(struct docker_ctr *c, json_object *o)
{
	json_object *names, *labels, *hc;
	const char *name = "";

	memset(c, 0, sizeof(*c));
	snprintf(c->id, sizeof(c->id), "%s", str_at(o, "Id"));
	if (json_object_object_get_ex(o, "Names", &names) && json_object_is_type(names, json_type_array) &&
	    json_object_array_length(names) > 0)
		name = json_object_get_string(json_object_array_get_idx(names, 0));
	snprintf(c->name, sizeof(c->name), "%s", name && name[0] == '/' ? name + 1 : name ? name : "");
	snprintf(c->image, sizeof(c->image), "%s", str_at(o, "Image"));
	if (json_object_object_get_ex(o, "HostConfig", &hc))
		snprintf(c->network, sizeof(c->network), "%s", str_at(hc, "NetworkMode"));
	if (json_object_object_get_ex(o, "Labels", &labels) && json_object_is_type(labels, json_type_object))
		c->labels = json_object_get(labels);
}

int docker_list(bool all, const char *id, struct docker_ctr **out, size_t *n, char *err)
{
	json_object *j;
	char path[256];
	int status;
	size_t len;

	*out = NULL;
	*n = 0;
	/* filters={"id":["<id>"]}, URL-encoded */
	snprintf(path, sizeof(path), "/containers/json?all=%d%s%s%s", all, id ? "&filters=%7B%22id%22%3A%5B%22" : "",
		 id ? id : "", id ? "%22%5D%7D" : "");
	status = docker_get(path, &j, err);
	if (status < 0)
		return -1;
	if (status != 200 || !json_object_is_type(j, json_type_array)) {
		json_object_put(j);
		return seterr(err, "Docker: GET /containers/json: HTTP status %d", status);
	}
	len = json_object_array_length(j);
	*out = calloc(len ? len : 1, sizeof(**out));
	if (!*out) {
		json_object_put(j);
		return seterr(err, "out of memory");
	}
	for (size_t i = 0; i < len; i++) {
		ctr_from_json(&(*out)[*n], json_object_array_get_idx(j, i));
		/* a prefix filter matches more than the one asked for: keep the exact ID only */
		if (strlen((*out)[*n].id) != DOCKER_ID_LEN || (id && strcmp((*out)[*n].id, id) != 0))
			docker_ctr_clear(&(*out)[*n]);
		else
			(*n)++;
	}
	json_object_put(j);
	return 0;
}

void docker_ctr_clear(struct docker_ctr *c)
{
	json_object_put(c->labels);
	memset(c, 0, sizeof(*c));
}

void docker_ctr_copy(struct docker_ctr *dst, const struct docker_ctr *src)
{
	*dst = *src;
	dst->labels = json_object_get(src->labels);
}

void docker_ctrs_free(struct docker_ctr *c, size_t n)
{
	for (size_t i = 0; c && i < n; i++)
		docker_ctr_clear(&c[i]);
	free(c);
}

int docker_network_gateway(const char *mode, uint32_t *gw, char *err)
{
	json_object *j, *ipam, *cfg;
	char path[320];
	int status, ret = -1;

	if (!mode[0] || strcmp(mode, "host") == 0 || strcmp(mode, "none") == 0 || strncmp(mode, "container:", 10) == 0)
		return 1;
	if (strspn(mode, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != strlen(mode))
		return seterr(err, "network %s: not a network name", mode);
	snprintf(path, sizeof(path), "/networks/%s", strcmp(mode, "default") == 0 ? "bridge" : mode);
	status = docker_get(path, &j, err);
	if (status < 0)
		return -1;
	if (status == 200 && json_object_object_get_ex(j, "IPAM", &ipam) &&
	    json_object_object_get_ex(ipam, "Config", &cfg) && json_object_is_type(cfg, json_type_array)) {
		for (size_t i = 0; ret && i < json_object_array_length(cfg); i++) {
			struct in_addr a;

			if (inet_pton(AF_INET, str_at(json_object_array_get_idx(cfg, i), "Gateway"), &a) == 1) {
				*gw = a.s_addr;
				ret = 0;
			}
		}
	}
	if (ret)
		seterr(err, "network %s: no IPv4 gateway in its IPAM config (HTTP status %d)", mode, status);
	json_object_put(j);
	return ret;
}

int docker_events_open(struct docker_events *ev, char *err)
{
	memset(ev, 0, sizeof(*ev));
	/* filters={"type":["container"]}, URL-encoded */
	ev->fd = docker_request("/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D", err);
	if (ev->fd < 0)
		return -1;
	if (fcntl(ev->fd, F_SETFL, fcntl(ev->fd, F_GETFL) | O_NONBLOCK) != 0) {
		seterr(err, "Docker events: %s", strerror(errno));
		docker_events_close(ev);
		return -1;
	}
	return 0;
}

/* Hands each complete line to cb and keeps the rest; checks the HTTP header first. */
static int events_consume(struct docker_events *ev, void (*cb)(json_object *, void *), void *ctx, char *err)
{
	char *start = ev->buf, *nl;

	ev->buf[ev->len] = '\0';
	if (!ev->header_done) {
		char *end = strstr(ev->buf, "\r\n\r\n");
		int status;

		if (!end)
			return 0;
		status = http_status(ev->buf);
		if (status != 200)
			return seterr(err, "Docker events: HTTP status %d", status);
		ev->header_done = true;
		start = end + 4;
	}
	while ((nl = memchr(start, '\n', ev->len - (size_t)(start - ev->buf)))) {
		json_object *o;

		*nl = '\0';
		o = json_tokener_parse(start);
		if (o)
			cb(o, ctx);
		json_object_put(o);
		start = nl + 1;
	}
	ev->len -= (size_t)(start - ev->buf);
	memmove(ev->buf, start, ev->len);
	return 0;
}

int docker_events_read(struct docker_events *ev, void (*cb)(json_object *event, void *ctx), void *ctx, char *err)
{
	for (;;) {
		ssize_t r;

		if (ev->cap - ev->len < 4096) {
			char *b = ev->cap < EVENT_MAX_LINE ? realloc(ev->buf, ev->cap * 2 + 8192 + 1) : NULL;

			if (!b)
				return seterr(err, "Docker events: an event longer than %d bytes", EVENT_MAX_LINE);
			ev->buf = b;
			ev->cap = ev->cap * 2 + 8192;
		}
		r = read(ev->fd, ev->buf + ev->len, ev->cap - ev->len);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (r < 0)
			return seterr(err, "Docker events: %s", strerror(errno));
		if (r == 0)
			return 1;
		ev->len += (size_t)r;
		if (events_consume(ev, cb, ctx, err))
			return -1;
	}
}

void docker_events_close(struct docker_events *ev)
{
	if (ev->fd >= 0)
		close(ev->fd);
	free(ev->buf);
	memset(ev, 0, sizeof(*ev));
	ev->fd = -1;
}
