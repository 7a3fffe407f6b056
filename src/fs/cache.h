/*
 * cache.h - keeping the daemon within --cache-size (docs/consistency.md, "Memory").
 *
 * What the daemon caches is accounted here: file values (node buffers), and metadata: a node
 * (its struct and key) for every name the kernel holds, and directory listings (their entries,
 * values of listed files included). When the total passes the cap, a background thread (the
 * keeper) brings it back under 90% of the cap, cheapest first: values of files used longest ago
 * that nobody holds open and that hold no local changes; then the listings read longest ago;
 * then it asks the kernel to forget the names of idle files used longest ago (the kernel then
 * forgets their inodes, and the daemon frees their nodes). Whatever is dropped is read from
 * etcd again at its next use. When values alone pass the cap, the thread that read the last
 * one evicts at once, without waiting for the keeper.
 *
 * The keeper also hands memory freed in bulk (a large listing dropped, thousands of names
 * forgotten) back to the system with malloc_trim, at most once a second.
 */
#ifndef ETCDFS_CACHE_H
#define ETCDFS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How long the daemon trusts a cached listing or attribute: --cache-timeout, or much longer
 * while the watch on the prefix keeps the cache coherent (docs/consistency.md). */
int64_t cache_trust_ns(void);

/* A value buffer grew (delta > 0) or shrank/was freed (delta < 0). Any context. */
void cache_account(int64_t delta);
/* Node or listing memory grew or shrank (estimated bytes, allocator overhead included). */
void cache_account_meta(int64_t delta);
/* What a node (a directory: is_dir) with a key of key_len bytes costs, for cache_account_meta (a
 * directory's part included). */
size_t cache_node_bytes(size_t key_len, bool is_dir);
/* What a file's part costs (inode.h: file_part), for cache_account_meta. */
size_t cache_file_part_bytes(void);
/* What one listing entry costs, for cache_account_meta: its struct and its block (inode.h),
 * given the bytes the block holds besides the component: a display name kept apart from it
 * and a value, each with its terminator (0 when absent). */
size_t cache_entry_bytes(size_t name_bytes, size_t comp_len, size_t val_bytes);

/* Bytes held by value buffers now. */
uint64_t cache_value_bytes(void);
/* Bytes held by nodes and listings now (estimated). */
uint64_t cache_meta_bytes(void);

/* Call after adding to the cache, holding no node lock: evicts values when they alone pass
 * the cap, and wakes the keeper when everything together does. */
void cache_trim(void);

/* Starts the keeper (after the session exists: it sends the kernel notifications). Returns 0
 * or an errno; without it the cap holds for values only. */
int cache_keeper_start(void);
/* Stops it (before the session is destroyed). */
void cache_keeper_stop(void);

typedef struct cache_counters {
    uint64_t evictions;        /* values dropped */
    uint64_t listings_dropped; /* directory listings dropped */
    uint64_t names_forgotten;  /* names the kernel was asked to forget */
    uint64_t malloc_trims;     /* times freed memory was handed back to the system */
} cache_counters;
void cache_get_counters(cache_counters *out);

#endif
