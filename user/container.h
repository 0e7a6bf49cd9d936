/* container.h: container IDs in cgroup paths; names from the Docker Engine API (docker.c). */
#ifndef HOSTLO_CONTAINER_H
#define HOSTLO_CONTAINER_H

#include <stdbool.h>
#include <stddef.h>
#include "cgtree.h"

#define CONTAINER_ID_LEN 64

/* The container ID in a cgroup path: its deepest component named by a known runtime layout
 * (docker cgroupfs and kubepods "<id>", "docker-<id>.scope", "libpod-<id>.scope",
 * "cri-containerd-<id>.scope", "crio-<id>.scope"). Returns false when the path holds none. */
bool container_id_of(const char *rel, char id[CONTAINER_ID_LEN + 1]);

/* Finds the cgroup of the container named by arg: a full ID, a Docker name, or a unique ID prefix.
 * Returns 0 and the cgroup's rel path, or -1 with a message (ambiguous prefixes list candidates). */
int container_cgroup(struct cgtree *t, const char *mnt, const char *arg, char *rel, size_t len, char *err);

/* Docker names by container ID, from one /containers/json call; empty when Docker does not answer. */
struct docker_names {
	size_t n;
	struct { char id[CONTAINER_ID_LEN + 1]; char *name; } *e;
};
void docker_names_load(struct docker_names *dn);
const char *docker_name(const struct docker_names *dn, const char *id);
void docker_names_free(struct docker_names *dn);

/* Docker names are [a-zA-Z0-9][a-zA-Z0-9_.-]*, optionally with Docker's leading '/'. */
bool container_arg_valid(const char *arg);

#endif
