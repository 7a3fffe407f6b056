/*
 * cache.h - the cap on cached file values (--cache-size, docs/consistency.md).
 *
 * Every file node's value buffer is accounted here. When the total passes the cap, the values
 * of the files used longest ago (last open or read) that nobody holds open and that hold no
 * local changes are dropped, down to 90% of the cap; such a file is read from etcd again at
 * its next access. Metadata (names, revisions, sizes) stays.
 */
#ifndef ETCDFS_CACHE_H
#define ETCDFS_CACHE_H

#include <stdint.h>

/* A value buffer grew (delta > 0) or shrank/was freed (delta < 0). Any context. */
void cache_account(int64_t delta);
/* Bytes held by value buffers now. */
uint64_t cache_value_bytes(void);
/* Evicts when over the cap. Call holding no node lock (it locks the victims one at a time). */
void cache_trim(void);
/* Values dropped so far (for the stats view). */
uint64_t cache_evictions(void);

#endif
