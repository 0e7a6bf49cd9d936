/* mapio.c: whole-map reads in batches (a syscall per thousands of entries, not two per entry). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "mapio.h"
#include "util.h"

static void dump_free(void **keys, void **vals, size_t *n)
{
	free(*keys);
	free(*vals);
	*keys = *vals = NULL;
	*n = 0;
}

/* Room for at least 1024 more entries. */
static int dump_grow(size_t ksize, size_t vsize, void **keys, void **vals, size_t n, size_t *cap)
{
	size_t ncap = *cap ? *cap * 2 : 4096;
	void *k, *v;

	if (*cap - n >= 1024)
		return 0;
	if (!(k = realloc(*keys, ncap * ksize)))
		return -1;
	*keys = k;
	if (!(v = realloc(*vals, ncap * vsize)))
		return -1;
	*vals = v;
	*cap = ncap;
	return 0;
}

int map_dump(int fd, size_t ksize, size_t vsize, void **keys, void **vals, size_t *n, char *err)
{
	size_t cap = 0;
	__u32 token;
	bool first = true;

	*keys = *vals = NULL;
	*n = 0;
	for (;;) {
		__u32 count;
		int r;

		if (dump_grow(ksize, vsize, keys, vals, *n, &cap)) {
			dump_free(keys, vals, n);
			return seterr(err, "out of memory");
		}
		count = (__u32)(cap - *n);
		r = bpf_map_lookup_batch(fd, first ? NULL : &token, &token, (char *)*keys + *n * ksize,
					 (char *)*vals + *n * vsize, &count, NULL);
		*n += count; /* valid even with ENOENT: the last batch */
		first = false;
		if (r < 0 && errno == ENOENT)
			return 0;
		if (r < 0) {
			int e = errno;

			dump_free(keys, vals, n);
			return seterr(err, "read map: %s", strerror(e));
		}
	}
}

int map_keys(int fd, size_t ksize, void **keys, size_t *n, char *err)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	size_t vsize;
	void *vals;

	if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
		return seterr(err, "map info: %s", strerror(errno));
	vsize = info.value_size;
	if (info.type == BPF_MAP_TYPE_PERCPU_HASH || info.type == BPF_MAP_TYPE_LRU_PERCPU_HASH)
		vsize = ((vsize + 7) & ~(size_t)7) * (size_t)libbpf_num_possible_cpus();
	if (map_dump(fd, ksize, vsize, keys, &vals, n, err))
		return -1;
	free(vals);
	return 0;
}
