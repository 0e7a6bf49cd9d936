/* docker.h: the Docker Engine API over its unix socket (HTTP/1.0 by hand): GET, containers, events. */
#ifndef HOSTLO_DOCKER_H
#define HOSTLO_DOCKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#define DOCKER_ID_LEN 64

/* The socket: $DOCKER_HOST (unix:// only) or /var/run/docker.sock; NULL with err set otherwise. */
const char *docker_socket(char *err);

/* GET path; returns the HTTP status (body parsed into *json when it is JSON, else NULL), or -1 with err. */
int docker_get(const char *path, json_object **json, char *err);

/* A container as /containers/json describes it: what decides the rules it asks for. */
struct docker_ctr {
	char id[DOCKER_ID_LEN + 1];
	char name[256];        /* without Docker's leading '/' */
	char image[256];
	char network[256];     /* HostConfig.NetworkMode: default, bridge, host, none, container:ID or a network name */
	json_object *labels;   /* a reference of its own (an object of strings), or NULL */
};

/* Running containers (all: stopped and created ones too); with id, only that one (0 or 1 entries).
 * Served from the engine's in-memory view: it answers while the container is starting (an inspect
 * waits for the start to finish). Caller frees with docker_ctrs_free. Returns 0 or -1 with err. */
int docker_list(bool all, const char *id, struct docker_ctr **out, size_t *n, char *err);
void docker_ctrs_free(struct docker_ctr *c, size_t n);
void docker_ctr_copy(struct docker_ctr *dst, const struct docker_ctr *src);
void docker_ctr_clear(struct docker_ctr *c);

/* The IPv4 gateway (network order) of a container network mode, from the network's IPAM config.
 * Returns 0, 1 when the mode has no gateway of its own (host, none, container:...), or -1 with err. */
int docker_network_gateway(const char *mode, uint32_t *gw, char *err);

/* The events stream: one JSON object a line until the engine closes it. fd is non-blocking, for poll(). */
struct docker_events {
	int fd;                /* -1 when closed */
	char *buf;
	size_t len, cap;
	bool header_done;
};
/* Connects and asks for container events; 0 or -1 with err. */
int docker_events_open(struct docker_events *ev, char *err);
/* Reads what is there and calls cb once for each complete event. Returns 0 while the stream is open,
 * 1 when the engine closed it (reconnecting is the caller's), -1 with err. */
int docker_events_read(struct docker_events *ev, void (*cb)(json_object *event, void *ctx), void *ctx, char *err);
void docker_events_close(struct docker_events *ev);

#endif
