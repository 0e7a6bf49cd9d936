/* mapio.h: whole-map reads in batches (a syscall per thousands of entries, not two per entry). */
#ifndef HOSTLO_MAPIO_H
#define HOSTLO_MAPIO_H

#include <stddef.h>

/* Every entry of a hash map. vsize is the value size as user space sees it (times the CPUs for a
 * per-CPU map). 0 and both arrays (caller frees), or -1 with err and nothing to free. */
int map_dump(int fd, size_t ksize, size_t vsize, void **keys, void **vals, size_t *n, char *err);
/* Every key of a hash map, whatever its value size. */
int map_keys(int fd, size_t ksize, void **keys, size_t *n, char *err);

#endif
